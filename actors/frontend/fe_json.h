/* Strict JSON text for the frontend's public bodies and for model outputs.
 *
 * cJSON does the parsing. It keeps only a double per number, so it cannot
 * tell `1` from `1.0`, which Clipper does (a `doubles` input must be written
 * with a decimal point or an exponent); and it accepts a few things RFC 8259
 * does not (`01`, `1.`, raw control characters). After cJSON has accepted a
 * text, one lexical pass over the same text records every number literal
 * (where it is, how it was written) in document order and rejects what a
 * strict parser would reject. No bus, no threads: pure functions. */
#ifndef CL_FE_JSON_H
#define CL_FE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_status.h"

/* The literal was stored as a double by a strict parser: it has a fraction
 * or an exponent, or it is an integer too large for 64 bits. */
#define CL_FE_NUM_DOUBLE 0x1

typedef struct {
    uint32_t off;  /* offset of the literal in the text */
    uint32_t len;  /* its length */
    uint8_t flags; /* CL_FE_NUM_* */
} cl_fe_num;

typedef struct {
    cJSON *root;
    const char *text; /* borrowed: the parsed text, for literal look-ups */
    cl_fe_num *nums;  /* every number literal, in document order */
    size_t n_nums;
} cl_fe_doc;

/* Parses len bytes of text (which must stay alive while doc is used). On
 * failure returns CL_ERR_INVALID and sets err->msg to Clipper's text
 * "JSON parse error: <what> (offset N)\n". */
cl_status cl_fe_doc_parse(cl_fe_doc *doc, const char *text, size_t len, cl_err *err);
void cl_fe_doc_deinit(cl_fe_doc *doc);

/* The index in doc->nums of the first number literal inside or after item
 * (in document order). item must belong to doc. */
size_t cl_fe_doc_num_index(const cl_fe_doc *doc, const cJSON *item);

/* The number of number literals inside item, recursively. */
size_t cl_fe_count_numbers(const cJSON *item);

/* A model output or a default output as Clipper returns it: the text
 * itself when it is valid JSON (inserted verbatim, so "-1.0" stays -1.0),
 * else the text as a JSON string. NULL on out of memory. */
cJSON *cl_fe_output_value(const char *text, size_t len);
/* Whether text is valid JSON; [*start, *end) is then the value without the
 * whitespace (and byte-order mark) around it, else the whole text. */
bool cl_fe_output_json_span(const char *text, size_t len, size_t *start, size_t *end);

#endif
