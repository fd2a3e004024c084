/* NKey user keys and credential files (cl_nkey.h): ed25519 through
 * OpenSSL, the NKeys text encoding here (as github.com/nats-io/nkeys,
 * strkey.go and crc16.go, define it). Must not include cnats: its base32
 * and CRC are not public API. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cl_file.h"
#include "cl_nkey.h"

#define PREFIX_SEED (18 << 3) /* base32 'S' */
#define PREFIX_USER (20 << 3) /* base32 'U' */
/* Decoded sizes: [prefix][key][crc16] and [seed prefix, 2 bytes][seed][crc16]. */
#define PUBLIC_RAW (1 + CL_NKEY_RAW_LEN + 2)
#define SEED_RAW (2 + CL_NKEY_RAW_LEN + 2)
/* Far more than a seed and its comment; a bigger file is something else. */
#define CRED_FILE_MAX 4096

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

void cl_nkey_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

/* CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection. */
static uint16_t crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* Appends the CRC of raw[0 .. n-2) to its last two bytes, little endian. */
static void put_crc(unsigned char *raw, size_t n)
{
    uint16_t crc = crc16(raw, n - 2);
    raw[n - 2] = (unsigned char)(crc & 0xff);
    raw[n - 1] = (unsigned char)(crc >> 8);
}

/* base32 without padding: ceil(n * 8 / 5) characters and a NUL. */
static void b32_encode(const unsigned char *in, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            *out++ = b32_alphabet[(acc >> bits) & 31];
        }
    }
    if (bits > 0)
        *out++ = b32_alphabet[(acc << (5 - bits)) & 31];
    *out = '\0';
}

/* What a key's text can get wrong, in the order it is checked. */
static const char *kind_of(char c)
{
    switch (c) {
    case 'A': return "an account";
    case 'O': return "an operator";
    case 'N': return "a server";
    case 'C': return "a cluster";
    default: return "an unknown kind of";
    }
}

/* Checks the shape of a key's text: its first characters (want: "SU" or
 * "U"), its length and its alphabet. Says what is wrong. */
static cl_status check_text(const char *text, size_t len, const char *want, size_t want_len,
                            const char *what, cl_err *err)
{
    size_t np = strlen(want);
    if (len < np || memcmp(text, want, np) != 0) {
        if (want[0] == 'S' && len == CL_NKEY_PUBLIC_LEN && text[0] == 'U')
            return cl_err_set(err, CL_ERR_INVALID,
                              "this is a user public key (U...), not a seed (SU...)");
        if (want[0] == 'S' && len >= 2 && text[0] == 'S')
            return cl_err_set(err, CL_ERR_INVALID,
                              "not a user seed: it starts with \"S%c\", %s seed (user "
                              "seeds start with \"SU\")",
                              text[1], kind_of(text[1]));
        return cl_err_set(err, CL_ERR_INVALID,
                          "an NKey user %s starts with \"%s\", this one with \"%.*s\"", what,
                          want, (int)(len < np ? len : np), text);
    }
    if (len != want_len)
        return cl_err_set(err, CL_ERR_INVALID,
                          "an NKey user %s has %zu characters, this one has %zu", what,
                          want_len, len);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\0' || strchr(b32_alphabet, text[i]) == NULL) {
            unsigned char c = (unsigned char)text[i];
            if (c > ' ' && c < 0x7f)
                return cl_err_set(err, CL_ERR_INVALID,
                                  "character %zu ('%c') is not base32 (A-Z, 2-7)", i + 1, c);
            return cl_err_set(err, CL_ERR_INVALID, "character %zu (byte 0x%02x) is not base32",
                              i + 1, c);
        }
    }
    return CL_OK;
}

/* Decodes len checked characters into out. False when the bits left over
 * after the last whole byte are not zero: a second spelling of the same
 * bytes, which the checksum cannot catch. */
static bool b32_decode(const char *in, size_t len, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 5) | (uint32_t)(strchr(b32_alphabet, in[i]) - b32_alphabet);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    return (acc & ((1u << bits) - 1)) == 0;
}

/* The text of a key into raw (n bytes: prefix, key, CRC), fully checked. */
static cl_status decode_key(const char *text, size_t len, const char *want, const char *what,
                            unsigned char *raw, size_t n, cl_err *err)
{
    size_t want_len = (n * 8 + 4) / 5;
    cl_status st = check_text(text, len, want, want_len, what, err);
    if (st != CL_OK)
        return st;
    if (!b32_decode(text, len, raw))
        return cl_err_set(err, CL_ERR_INVALID,
                          "its last character ('%c') cannot end an NKey user %s", text[len - 1],
                          what);
    uint16_t crc = (uint16_t)(raw[n - 2] | raw[n - 1] << 8);
    if (crc != crc16(raw, n - 2))
        return cl_err_set(err, CL_ERR_INVALID,
                          "its checksum does not match: a character is wrong (mistyped or "
                          "corrupted)");
    return CL_OK;
}

static cl_status openssl_failed(cl_err *err, const char *what)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    return cl_err_set(err, CL_ERR_NOMEM, "OpenSSL cannot %s: %s", what,
                      why != NULL ? why : "unknown error");
}

/* The ed25519 public key of a raw seed, as NKey text. */
static cl_status public_of(const unsigned char seed[CL_NKEY_RAW_LEN],
                           char pub[CL_NKEY_PUBLIC_LEN + 1], cl_err *err)
{
    unsigned char raw[PUBLIC_RAW];
    size_t n = CL_NKEY_RAW_LEN;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, CL_NKEY_RAW_LEN);
    bool ok = k != NULL && EVP_PKEY_get_raw_public_key(k, raw + 1, &n) == 1 &&
              n == CL_NKEY_RAW_LEN;
    EVP_PKEY_free(k); /* OpenSSL wipes its copy of the seed */
    if (!ok)
        return openssl_failed(err, "derive an ed25519 public key");
    raw[0] = PREFIX_USER;
    put_crc(raw, sizeof(raw));
    b32_encode(raw, sizeof(raw), pub);
    return CL_OK;
}

cl_status cl_nkey_user_new(char seed[CL_NKEY_SEED_LEN + 1], char pub[CL_NKEY_PUBLIC_LEN + 1],
                           cl_err *err)
{
    unsigned char raw[SEED_RAW];
    raw[0] = PREFIX_SEED | (PREFIX_USER >> 5);
    raw[1] = (PREFIX_USER & 31) << 3;
    cl_status st = CL_OK;
    if (RAND_bytes(raw + 2, CL_NKEY_RAW_LEN) != 1)
        st = openssl_failed(err, "read random bytes for a seed");
    if (st == CL_OK)
        st = public_of(raw + 2, pub, err);
    if (st == CL_OK) {
        put_crc(raw, sizeof(raw));
        b32_encode(raw, sizeof(raw), seed);
    }
    cl_nkey_wipe(raw, sizeof(raw));
    return st;
}

/* public_from_seed on len characters of text (not NUL-terminated). */
static cl_status public_from_seed(const char *text, size_t len, char pub[CL_NKEY_PUBLIC_LEN + 1],
                                  cl_err *err)
{
    unsigned char raw[SEED_RAW];
    cl_status st = decode_key(text, len, "SU", "seed", raw, sizeof(raw), err);
    if (st == CL_OK)
        st = public_of(raw + 2, pub, err);
    cl_nkey_wipe(raw, sizeof(raw));
    return st;
}

cl_status cl_nkey_public_from_seed(const char *seed, char pub[CL_NKEY_PUBLIC_LEN + 1],
                                   cl_err *err)
{
    if (seed == NULL)
        return cl_err_set(err, CL_ERR_INVALID, "no NKey seed given");
    return public_from_seed(seed, strlen(seed), pub, err);
}

cl_status cl_nkey_public_raw(const char *pub, unsigned char out[CL_NKEY_RAW_LEN], cl_err *err)
{
    if (pub == NULL)
        return cl_err_set(err, CL_ERR_INVALID, "no NKey public key given");
    unsigned char raw[PUBLIC_RAW];
    cl_status st = decode_key(pub, strlen(pub), "U", "public key", raw, sizeof(raw), err);
    if (st == CL_OK)
        memcpy(out, raw + 1, CL_NKEY_RAW_LEN);
    return st;
}

bool cl_nkey_public_valid(const char *pub)
{
    unsigned char raw[CL_NKEY_RAW_LEN];
    return cl_nkey_public_raw(pub, raw, NULL) == CL_OK;
}

/* ---- credential files -------------------------------------------------- */

cl_status cl_nkey_write_file(const char *path, const char *seed, const char *comment,
                             cl_err *err)
{
    char pub[CL_NKEY_PUBLIC_LEN + 1];
    cl_status st = cl_nkey_public_from_seed(seed, pub, err);
    if (st != CL_OK) {
        cl_err_prefix(err, "not writing %s", path);
        return st;
    }
    if (comment != NULL && strpbrk(comment, "\r\n") != NULL)
        return cl_err_set(err, CL_ERR_INVALID,
                          "not writing %s: the comment must be one line (it has a newline)",
                          path);
    char text[CRED_FILE_MAX];
    int n = comment != NULL ? snprintf(text, sizeof(text), "# %s\n%s\n", comment, seed)
                            : snprintf(text, sizeof(text), "%s\n", seed);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        cl_nkey_wipe(text, sizeof(text));
        return cl_err_set(err, CL_ERR_TOO_LARGE, "not writing %s: the comment is too long",
                          path);
    }
    char tmp[PATH_MAX];
    st = cl_file_write_beside(path, "credential file", text, strlen(text), 0600, tmp, err);
    cl_nkey_wipe(text, sizeof(text));
    if (st != CL_OK)
        return st;
    /* link, unlike rename, fails when path exists: a credential is never
     * replaced behind the back of whoever holds it. */
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST)
            return cl_err_set(err, CL_ERR_EXISTS,
                              "%s exists already; remove it first to replace that identity",
                              path);
        return cl_err_set(err, e == EACCES ? CL_ERR_DENIED : CL_ERR_IO,
                          "cannot create the credential file %s: %s", path, strerror(e));
    }
    unlink(tmp);
    return CL_OK;
}

/* The first line (after blanks) that starts with "SU": its start and
 * length up to the next blank or line end. NULL when there is none. */
static const char *find_seed(const char *text, size_t *len)
{
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (p[0] == 'S' && p[1] == 'U') {
            *len = strcspn(p, " \t\r\n");
            return p;
        }
        p += strcspn(p, "\n");
        if (*p == '\n')
            p++;
    }
    return NULL;
}

cl_status cl_nkey_read_file(const char *path, char seed[CL_NKEY_SEED_LEN + 1], cl_err *err)
{
    seed[0] = '\0';
    char *text = NULL;
    size_t n = 0;
    cl_status st = cl_file_read(path, "credential file", CRED_FILE_MAX, true, &text, &n, NULL, err);
    if (st != CL_OK)
        return st;
    size_t len = 0;
    const char *s = find_seed(text, &len);
    char pub[CL_NKEY_PUBLIC_LEN + 1];
    if (s == NULL) {
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the credential file %s holds no NKey user seed (a line starting "
                        "with SU)",
                        path);
    } else {
        st = public_from_seed(s, len, pub, err);
        if (st != CL_OK)
            cl_err_prefix(err, "the seed in the credential file %s is not valid", path);
        else
            memcpy(seed, s, CL_NKEY_SEED_LEN);
        seed[st == CL_OK ? CL_NKEY_SEED_LEN : 0] = '\0';
    }
    cl_file_free(text, n);
    return st;
}
