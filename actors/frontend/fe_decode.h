/* Decoding of Clipper's predict and feedback bodies into raw input bytes.
 *
 * The rules and error texts are Clipper 0.4's (clipper-behaviour.md §2.1):
 * `{"input": X}` or `{"input_batch": [X, ...]}`, optional `"version"`;
 * doubles and floats must be written with a decimal point or an exponent,
 * integers must be int32 literals, strings are one JSON string, bytes one
 * base64 string. Inputs become the bytes a task carries: little-endian
 * int32 / float32 / float64 arrays, the decoded bytes, or UTF-8.
 *
 * On a bad body the functions return CL_ERR_INVALID with err->msg set to
 * Clipper's "what" (e.g. "Array input of type Number is not of type
 * double"); cl_fe_json_error_cause() turns it into the full cause. Pure:
 * no bus, no threads. */
#ifndef CL_FE_DECODE_H
#define CL_FE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_buf.h"
#include "cl_status.h"
#include "fe_json.h"

/* Clipper's schema texts, quoted in every "Json error" cause. */
extern const char CL_FE_PREDICT_SCHEMA[];
extern const char CL_FE_UPDATE_SCHEMA[];

/* Decoded inputs: input i is data.data[off[i] .. off[i + 1]). */
typedef struct {
    size_t n;
    size_t *off; /* n + 1 entries */
    cl_buf data;
    bool batch; /* came as "input_batch" */
} cl_fe_inputs;

void cl_fe_inputs_init(cl_fe_inputs *in);
void cl_fe_inputs_deinit(cl_fe_inputs *in);

/* Never NULL: an empty input (an empty string) has no bytes to point to,
 * and NULL + 0 is undefined in C. */
static inline const uint8_t *cl_fe_input_data(const cl_fe_inputs *in, size_t i)
{
    return in->data.data != NULL ? in->data.data + in->off[i] : (const uint8_t *)"";
}

static inline size_t cl_fe_input_len(const cl_fe_inputs *in, size_t i)
{
    return in->off[i + 1] - in->off[i];
}

/* Checks that the document is an object and reads its optional "version"
 * (a string; borrowed from doc). *version is NULL when absent. */
cl_status cl_fe_decode_version(const cl_fe_doc *doc, const char **version, cl_err *err) CL_MUST_USE;

/* How many inputs the body holds, before decoding them: 1 for "input", the
 * length of "input_batch" when it is an array, else 0 (decoding then says
 * what is wrong). For a limit checked before any work is done. */
size_t cl_fe_decode_count(const cl_fe_doc *doc);

/* Decodes "input" (preferred when both are present, as in Clipper) or
 * "input_batch" for input_type (a cl_input_type). A numeric input must
 * hold at least one number; a string input is taken whole, U+0000 and all
 * (cJSON would cut it there). */
cl_status cl_fe_decode_inputs(const cl_fe_doc *doc, int input_type, cl_fe_inputs *out,
                              cl_err *err) CL_MUST_USE;

/* The feedback body {"uid": int64, "input": X, "label": number}. Clipper
 * required a decimal point in label; any number is accepted here. */
cl_status cl_fe_decode_update(const cl_fe_doc *doc, int input_type, int64_t *uid,
                              cl_fe_inputs *input, double *label, cl_err *err) CL_MUST_USE;

/* "Error parsing JSON: <what>. Expected JSON schema: <schema>" (malloc'd;
 * NULL on out of memory). */
char *cl_fe_json_error_cause(const char *what, const char *schema);

#endif
