/* Clipper's predict response and error bodies (see fe_encode.h). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fe_encode.h"

#include "cl_json.h"
#include "fe_json.h"

const char CL_FE_EXPLAIN_NO_MODEL[] = "No connected models found for query";
const char CL_FE_EXPLAIN_SLO[] =
    "Failed to retrieve a prediction response within the specified latency SLO";

static bool add(cJSON *obj, const char *key, cJSON *v)
{
    if (v == NULL)
        return false;
    if (!cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

/* A NUL-terminated copy of a counted string, for cJSON. */
/* A model's text (an error's cause) as a JSON string, made UTF-8. */
static cJSON *counted_string(const char *s, size_t len)
{
    char *c = cl_json_utf8_repair(s, len);
    if (c == NULL)
        return NULL;
    cJSON *v = cJSON_CreateString(c);
    free(c);
    return v;
}

static cJSON *answer_json(const cl_fe_answer *a, const char *default_output)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL && add(o, "query_id", cJSON_CreateNumber((double)a->query_id));
    switch (a->kind) {
    case CL_FE_ANSWER_OUTPUT:
        ok = ok && add(o, "output", cl_fe_output_value(a->text ? a->text : "", a->len)) &&
             add(o, "default", cJSON_CreateFalse());
        break;
    case CL_FE_ANSWER_MODEL_ERROR:
        ok = ok && add(o, "error", cJSON_CreateString("Model error")) &&
             add(o, "cause", counted_string(a->text ? a->text : "", a->len));
        break;
    default: {
        const char *d = default_output ? default_output : "";
        ok = ok && add(o, "output", cl_fe_output_value(d, strlen(d))) &&
             add(o, "default", cJSON_CreateTrue()) &&
             add(o, "default_explanation",
                 cJSON_CreateString(a->kind == CL_FE_ANSWER_SLO ? CL_FE_EXPLAIN_SLO
                                                                : CL_FE_EXPLAIN_NO_MODEL));
        break;
    }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static char *print_and_free(cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* The reply to one query answered with an output that is valid JSON, the
 * common case, written straight out: building and printing a cJSON tree
 * for it cost about twice the instructions (cJSON prints every number with
 * a sprintf and checks it with a sscanf). NULL when the fast path does not
 * apply or on out of memory; *applies says which. */
static char *encode_one_output(const cl_fe_answer *a, bool *applies)
{
    const char *text = a->text ? a->text : "";
    size_t s, e;
    *applies = cl_fe_output_json_span(text, a->len, &s, &e);
    if (!*applies)
        return NULL;
    static const char mid[] = ",\"output\":", tail[] = ",\"default\":false}";
    char head[48];
    int hn = snprintf(head, sizeof(head), "{\"query_id\":%" PRIu64, a->query_id);
    size_t len = (size_t)hn + sizeof(mid) - 1 + (e - s) + sizeof(tail) - 1;
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    char *p = out;
    memcpy(p, head, (size_t)hn), p += hn;
    memcpy(p, mid, sizeof(mid) - 1), p += sizeof(mid) - 1;
    memcpy(p, text + s, e - s), p += e - s;
    memcpy(p, tail, sizeof(tail));
    return out;
}

char *cl_fe_encode_answers(const cl_fe_answer *answers, size_t n, const char *default_output,
                           int *http_status)
{
    *http_status = 200;
    if (n == 1 && answers[0].kind == CL_FE_ANSWER_OUTPUT) {
        bool applies;
        char *body = encode_one_output(&answers[0], &applies);
        if (applies)
            return body;
    }
    if (n == 1) {
        if (answers[0].kind == CL_FE_ANSWER_MODEL_ERROR) {
            *http_status = 500;
            char *cause = cl_json_utf8_repair(answers[0].text ? answers[0].text : "",
                                              answers[0].len);
            if (cause == NULL)
                return NULL;
            char *body = cl_fe_encode_error("Model error", cause);
            free(cause);
            return body;
        }
        return print_and_free(answer_json(&answers[0], default_output));
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    if (root == NULL || !add(root, "batch_predictions", arr)) {
        cJSON_Delete(root);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *a = answer_json(&answers[i], default_output);
        if (a == NULL || !cJSON_AddItemToArray(arr, a)) {
            cJSON_Delete(a);
            cJSON_Delete(root);
            return NULL;
        }
    }
    return print_and_free(root);
}

char *cl_fe_encode_error(const char *error, const char *cause)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !add(o, "error", cJSON_CreateString(error)) ||
        !add(o, "cause", cJSON_CreateString(cause))) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_and_free(o);
}
