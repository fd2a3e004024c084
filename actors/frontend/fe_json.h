/* Strict JSON text for the frontend's public bodies and for model outputs.
 *
 * cJSON does the parsing. It keeps only a double per number, so it cannot
 * tell `1` from `1.0`, which Clipper does (a `doubles` input must be written
 * with a decimal point or an exponent); it accepts a few things RFC 8259
 * does not (`01`, `1.`, raw control characters, bytes that are not UTF-8);
 * and it ends a string at U+0000. After cJSON has accepted a text, one
 * lexical pass over the same text records every number literal (where it
 * is, how it was written) and every string value holding U+0000, in
 * document order, and rejects what a strict parser would reject. A body
 * (cl_fe_doc_parse) must also not repeat a key in an object nor put U+0000
 * in a key. No bus, no threads: pure functions. */
#ifndef CL_FE_JSON_H
#define CL_FE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_buf.h"
#include "cl_status.h"

/* The literal was stored as a double by a strict parser: it has a fraction
 * or an exponent, or it is an integer too large for 64 bits. */
#define CL_FE_NUM_DOUBLE 0x1

typedef struct {
    uint32_t off;  /* offset of the literal in the text */
    uint32_t len;  /* its length */
    uint8_t flags; /* CL_FE_NUM_* */
} cl_fe_num;

/* A string value (not a key) that holds U+0000, which cJSON's valuestring
 * cuts short: its number among the document's string values, in document
 * order, and where its literal starts (the opening quote). */
typedef struct {
    size_t index;
    uint32_t off;
} cl_fe_nul_str;

typedef struct {
    cJSON *root;
    const char *text; /* borrowed: the parsed text, for literal look-ups */
    size_t len;       /* of text */
    cl_fe_num *nums;  /* every number literal, in document order */
    size_t n_nums;
    cl_fe_nul_str *nul_strs; /* string values holding U+0000, in document order */
    size_t n_nul_strs;
} cl_fe_doc;

/* Parses len bytes of text (which must stay alive while doc is used). On
 * failure returns CL_ERR_INVALID and sets err->msg to Clipper's text
 * "JSON parse error: <what> (offset N)\n". */
cl_status cl_fe_doc_parse(cl_fe_doc *doc, const char *text, size_t len, cl_err *err) CL_MUST_USE;
void cl_fe_doc_deinit(cl_fe_doc *doc);

/* The index in doc->nums of the first number literal inside or after item
 * (in document order). item must belong to doc. */
size_t cl_fe_doc_num_index(const cl_fe_doc *doc, const cJSON *item);

/* The number of number literals inside item, recursively. */
size_t cl_fe_count_numbers(const cJSON *item);

/* The number, among doc's string values in document order, of the first
 * string value inside or after item. item must belong to doc. */
size_t cl_fe_doc_str_index(const cl_fe_doc *doc, const cJSON *item);
/* The whole text of string value number index, which is item (a string of
 * doc): *s and *len point into item's valuestring, or, when it holds
 * U+0000, into tmp, where it is decoded from the text with its NULs. tmp
 * is reset first. CL_ERR_NOMEM. */
cl_status cl_fe_doc_string(const cl_fe_doc *doc, const cJSON *item, size_t index, cl_buf *tmp,
                           const char **s, size_t *len) CL_MUST_USE;
/* Whether string value number index holds U+0000. */
bool cl_fe_doc_str_has_nul(const cl_fe_doc *doc, size_t index);

/* A model output or a default output as Clipper returns it: the text
 * itself when it is valid JSON (inserted verbatim, so "-1.0" stays -1.0),
 * else the text as a JSON string. NULL on out of memory. */
cJSON *cl_fe_output_value(const char *text, size_t len);
/* Whether text is valid JSON; [*start, *end) is then the value without the
 * whitespace (and byte-order mark) around it, else the whole text. */
bool cl_fe_output_json_span(const char *text, size_t len, size_t *start, size_t *end);

#endif
