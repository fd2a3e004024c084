/* Encoding of Clipper's predict responses and error bodies.
 *
 *   {"query_id": 17, "output": <output>, "default": false}
 *   {"query_id": 18, "output": <default>, "default": true,
 *    "default_explanation": "No connected models found for query"}
 *   {"batch_predictions": [ {...}, ... ]}   (a batch of one is unwrapped)
 *   {"error": "...", "cause": "..."}
 *
 * Outputs (a model's, or the app's default) are inserted as JSON when
 * they are valid JSON, else as strings. Pure: no bus, no threads. */
#ifndef CL_FE_ENCODE_H
#define CL_FE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

extern const char CL_FE_EXPLAIN_NO_MODEL[]; /* "No connected models found for query" */
extern const char CL_FE_EXPLAIN_SLO[];      /* "Failed to retrieve a prediction ... SLO" */

typedef enum {
    CL_FE_ANSWER_OUTPUT,      /* text is the model's output */
    CL_FE_ANSWER_MODEL_ERROR, /* text says what the model did wrong */
    CL_FE_ANSWER_NO_MODEL,    /* default output, "No connected models ..." */
    CL_FE_ANSWER_SLO          /* default output, "Failed to retrieve ... SLO" */
} cl_fe_answer_kind;

typedef struct {
    uint64_t query_id;
    int kind; /* cl_fe_answer_kind */
    const char *text;
    size_t len;
} cl_fe_answer;

/* The reply to one request with n answers, in input order. A single
 * answer is returned unwrapped (a model error then is HTTP 500); several
 * (or none) as batch_predictions with HTTP 200. default_output is the
 * app's, used by the default kinds. Returns a malloc'd NUL-terminated body
 * and sets *http_status, or NULL on out of memory. */
char *cl_fe_encode_answers(const cl_fe_answer *answers, size_t n, const char *default_output,
                           int *http_status);

/* {"error": error, "cause": cause}; malloc'd, NULL on out of memory. */
char *cl_fe_encode_error(const char *error, const char *cause);

#endif
