/* Fuzzes what the frontend makes of a model's output: the bytes a replica
 * returns in a result batch (or the app's default_output) become Clipper's
 * predict reply through cl_fe_encode_answers (fe_encode.c), which inserts
 * an output that is valid JSON as it is (cl_fe_output_json_span,
 * cl_fe_output_value in fe_json.c) and any other output as a string.
 *
 * Oracles: every reply is strict JSON (the frontend's own test,
 * cl_fe_output_json_span, accepts it, UTF-8 included), whatever bytes the
 * model returned; a single answer's "output" is the model's output: its
 * JSON text as it is when the output is JSON, else the same text as a
 * string, with each byte of a sequence that is not UTF-8 (and each NUL)
 * made U+FFFD (crashes/fe_output-non-utf8-output-makes-reply-non-utf8 was
 * the finding: such bytes went into the reply as they were). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cl_json.h"
#include "fe_encode.h"
#include "fe_json.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

/* The reply must be strict JSON (by the frontend's own test for output
 * text, cl_fe_output_json_span: RFC 8259, where a name may repeat in an
 * object); returns its tree (cJSON_Delete it). */
static cJSON *check_reply(const char *body)
{
    fz_check(body != NULL, "no reply (out of memory?)");
    cJSON *root = cJSON_Parse(body);
    fz_check(root != NULL, "the reply is not JSON: %s", body);
    size_t s, e;
    fz_check(cl_fe_output_json_span(body, strlen(body), &s, &e),
             "the reply is not strict JSON: %s", body);
    return root;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int status = 0;

    /* One answer with the model's output (the fast path when it is JSON). */
    cl_fe_answer one = {17, CL_FE_ANSWER_OUTPUT, text, size};
    char *body = cl_fe_encode_answers(&one, 1, "-1", &status);
    fz_check(status == 200, "status %d for an output", status);
    cJSON *reply = check_reply(body);
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
        /* Not JSON: the text as a string, made UTF-8. */
        char *want = cl_json_utf8_repair(text, size);
        fz_check(want != NULL, "out of memory");
        fz_check(cJSON_IsString(out) && strcmp(out->valuestring, want) == 0,
                 "output %s is not the model's text", body);
        if (fz_utf8_valid(data, size) && memchr(data, 0, size) == NULL)
            fz_check(strlen(want) == size && memcmp(want, text, size) == 0,
                     "UTF-8 output %s was changed", body);
        free(want);
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
    cJSON_Delete(check_reply(body));
    free(body);

    cl_fe_answer batch[3] = {
        {1, CL_FE_ANSWER_OUTPUT, text, size},
        {2, CL_FE_ANSWER_NO_MODEL, NULL, 0},
        {3, CL_FE_ANSWER_SLO, NULL, 0},
    };
    body = cl_fe_encode_answers(&batch[1], 1, s, &status);
    cJSON_Delete(check_reply(body));
    free(body);
    body = cl_fe_encode_answers(batch, 3, s, &status);
    fz_check(status == 200, "status %d for a batch", status);
    cJSON_Delete(check_reply(body));
    free(body);
    free(s);
    return 0;
}
