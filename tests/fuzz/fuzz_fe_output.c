/* Fuzzes what the frontend makes of a model's output: the bytes a replica
 * returns in a result batch (or the app's default_output) become Clipper's
 * predict reply through cl_fe_encode_answers (fe_encode.c), which inserts
 * an output that is valid JSON as it is (cl_fe_output_json_span,
 * cl_fe_output_value in fe_json.c) and any other output as a string.
 *
 * Oracles: every reply is JSON, and strict JSON (the frontend's own test,
 * cl_fe_output_json_span, accepts it, UTF-8 included) when the output is
 * UTF-8; a single answer's "output" is the model's output: its JSON text
 * as it is when the output is JSON, else the same text as a string.
 *
 * Known (crashes/fe_output-non-utf8-output-makes-reply-non-utf8): an
 * output that is not UTF-8 goes into the reply byte for byte, so the reply
 * is not UTF-8 (RFC 8259 requires it; a strict client refuses it). The
 * harness tolerates that so it goes on past it; FUZZ_STRICT_UTF8=1 in the
 * environment requires strict JSON of every reply, to reproduce it. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fe_encode.h"
#include "fe_json.h"
#include "fuzz_common.h"

static bool strict_utf8; /* see the known finding above */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    strict_utf8 = getenv("FUZZ_STRICT_UTF8") != NULL;
    return 0;
}

/* The reply must be JSON, strict JSON when strict (by the frontend's own
 * test for output text, cl_fe_output_json_span: RFC 8259, where a name
 * may repeat in an object); returns its tree (cJSON_Delete it). */
static cJSON *check_reply(const char *body, bool strict)
{
    fz_check(body != NULL, "no reply (out of memory?)");
    cJSON *root = cJSON_Parse(body);
    fz_check(root != NULL, "the reply is not JSON: %s", body);
    size_t s, e;
    if (strict || strict_utf8)
        fz_check(cl_fe_output_json_span(body, strlen(body), &s, &e),
                 "the reply is not strict JSON: %s", body);
    return root;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int status = 0;
    bool utf8 = fz_utf8_valid(data, size);

    /* One answer with the model's output (the fast path when it is JSON). */
    cl_fe_answer one = {17, CL_FE_ANSWER_OUTPUT, text, size};
    char *body = cl_fe_encode_answers(&one, 1, "-1", &status);
    fz_check(status == 200, "status %d for an output", status);
    cJSON *reply = check_reply(body, utf8);
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(reply, "output");
    fz_check(out != NULL, "no output in %s", body);
    size_t s0, e0;
    if (cl_fe_output_json_span(text, size, &s0, &e0)) {
        /* JSON: inserted as it is, without the whitespace around it. */
        char *want = malloc(e0 - s0 + sizeof("\"output\":"));
        fz_check(want != NULL, "out of memory");
        memcpy(want, "\"output\":", sizeof("\"output\":") - 1);
        memcpy(want + sizeof("\"output\":") - 1, text + s0, e0 - s0);
        want[sizeof("\"output\":") - 1 + e0 - s0] = '\0';
        fz_check(strstr(body, want) != NULL, "output %s is not the model's JSON", body);
        free(want);
    } else {
        /* Not JSON: the text as a string, up to a NUL (C strings end there). */
        size_t n = strnlen(text, size);
        fz_check(cJSON_IsString(out) && strlen(out->valuestring) == n &&
                     memcmp(out->valuestring, text, n) == 0,
                 "output %s is not the model's text", body);
    }
    cJSON_Delete(reply);
    free(body);

    /* cl_fe_output_value on its own, printed as cJSON would print it. */
    cJSON *v = cl_fe_output_value(text, size);
    fz_check(v != NULL, "out of memory");
    free(cJSON_PrintUnformatted(v));
    cJSON_Delete(v);

    /* The output as a model error's text, and as the app's default output
     * (a C string, from the app record). */
    char *s = fz_strndup(data, size);
    cl_fe_answer err_one = {18, CL_FE_ANSWER_MODEL_ERROR, text, size};
    body = cl_fe_encode_answers(&err_one, 1, s, &status);
    fz_check(status == 500, "status %d for a model error", status);
    cJSON_Delete(check_reply(body, utf8));
    free(body);

    cl_fe_answer batch[3] = {
        {1, CL_FE_ANSWER_OUTPUT, text, size},
        {2, CL_FE_ANSWER_NO_MODEL, NULL, 0},
        {3, CL_FE_ANSWER_SLO, NULL, 0},
    };
    body = cl_fe_encode_answers(&batch[1], 1, s, &status);
    cJSON_Delete(check_reply(body, utf8));
    free(body);
    body = cl_fe_encode_answers(batch, 3, s, &status);
    fz_check(status == 200, "status %d for a batch", status);
    cJSON_Delete(check_reply(body, utf8));
    free(body);
    free(s);
    return 0;
}
