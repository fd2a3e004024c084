/* Helpers shared by the libFuzzer harnesses of tests/fuzz (header only).
 *
 * A harness hands the decoder the fuzzer's bytes as they are: libFuzzer
 * copies each input into a heap block of exactly its size, so a decoder
 * that reads one byte past the length it was given trips ASan. Where the
 * product passes a C string (a URL from libmicrohttpd, a subject from
 * cnats), fz_strndup makes one. fz_check is an oracle: a property that must
 * hold for every input (a round trip, a reply that is valid JSON); it
 * aborts, which libFuzzer reports as a crash with the input saved. */
#ifndef CL_FUZZ_COMMON_H
#define CL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_log.h"

/* libFuzzer's entry points (it provides main). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A NUL-terminated malloc'd copy of data[0..n) (NULs inside are kept, so
 * the string ends at the first one, as it would for the product). Aborts
 * on out of memory: the fuzzer's inputs are small. */
static inline char *fz_strndup(const void *data, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* Splits data at its first '\n': *head is what comes before (a NUL-
 * terminated copy, free it), *rest and *rest_len what follows (a view into
 * data). Without a '\n', *head is NULL and rest is the whole input. */
static inline void fz_split(const uint8_t *data, size_t size, char **head, const uint8_t **rest,
                            size_t *rest_len)
{
    const uint8_t *nl = size > 0 ? memchr(data, '\n', size) : NULL;
    if (nl == NULL) {
        *head = NULL;
        *rest = data;
        *rest_len = size;
        return;
    }
    *head = fz_strndup(data, (size_t)(nl - data));
    *rest = nl + 1;
    *rest_len = size - (size_t)(nl - data) - 1;
}

#define fz_check(cond, ...)                                                                 \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz oracle failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* Reads every byte of p[0..n) so ASan checks the whole range, and keeps
 * the compiler from dropping the reads. */
static inline void fz_touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= b[i];
    __asm__ volatile("" : : "r"(x));
}

/* Whether p[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static inline int fz_utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Quiet logs: a decoder that warns on bad input would print on every run. */
static inline void fz_quiet(void)
{
    cl_log_set_level(CL_LOG_ERROR);
}

#endif
