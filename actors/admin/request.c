/* Reading admin request bodies and building replies.
 *
 * Field errors use Clipper's phrasing ("JSON object does not have required
 * key: name", "Type mismatch! JSON key ... expected type String but found
 * type Number") wrapped as Clipper wraps them: "Error parsing JSON: <what>.
 * Expected JSON schema: <schema>". Type names are rapidjson's, as Clipper
 * printed them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "cl_json.h"
#include "cl_wire.h"

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

void cl__admin_reply_reset(admin_reply *rep)
{
    cJSON_Delete(rep->result);
    cJSON_Delete(rep->skipped);
    free(rep->error);
    rep->result = NULL;
    rep->skipped = NULL;
    rep->error = NULL;
}

void cl__admin_ok_text(admin_reply *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    cl__admin_reply_reset(rep);
    rep->result = s ? cJSON_CreateString(s) : NULL;
    free(s);
    if (rep->result == NULL)
        rep->error = strdup("Internal error: out of memory");
}

void cl__admin_ok_json(admin_reply *rep, cJSON *value)
{
    cl__admin_reply_reset(rep);
    rep->result = value;
    if (value == NULL)
        rep->error = strdup("Internal error: out of memory");
}

void cl__admin_fail(admin_reply *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    cl__admin_reply_reset(rep);
    rep->error = s ? s : strdup("Internal error: out of memory");
}

static bool parse_error(admin_req *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool parse_error(admin_req *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *what = vformat(fmt, ap);
    va_end(ap);
    cl__admin_fail(q->rep, "Error parsing JSON: %s. Expected JSON schema: %s",
                   what ? what : "out of memory", q->schema);
    free(what);
    return false;
}

bool cl__req_parse(admin_req *q, const void *data, size_t len, const char *schema,
                   admin_reply *rep)
{
    q->root = NULL;
    q->schema = schema;
    q->rep = rep;
    cl_err err;
    if (cl_json_parse_body(&q->root, data, len, &err) != CL_OK) {
        /* A NUL in a name, a duplicate key: the text is JSON, its content
         * is refused (cl_json_parse says which field). */
        bool syntax = strncmp(err.msg, "malformed JSON", 14) == 0;
        return parse_error(q, "%s%s", syntax ? "JSON parse error: " : "", err.msg);
    }
    if (!cJSON_IsObject(q->root))
        return parse_error(q, "Can only get key-value pair from an object, but the body is %s %s",
                           cJSON_IsArray(q->root) ? "an" : "a", cl_json_clipper_type_name(q->root));
    return true;
}

void cl__req_done(admin_req *q)
{
    cJSON_Delete(q->root);
    q->root = NULL;
}

static const cJSON *field(admin_req *q, const char *key, bool required)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(q->root, key);
    if (item == NULL && required)
        parse_error(q, "JSON object does not have required key: %s", key);
    return item;
}

static bool mismatch(admin_req *q, const char *key, const char *want, const cJSON *item)
{
    return parse_error(q, "Type mismatch! JSON key %s expected type %s but found type %s", key,
                       want, cl_json_clipper_type_name(item));
}

static bool as_string(admin_req *q, const char *key, const cJSON *item, const char **out)
{
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return mismatch(q, key, "String", item);
    *out = item->valuestring;
    return true;
}

static bool as_int(admin_req *q, const char *key, const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return mismatch(q, key, "Number", item);
    double d = item->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return parse_error(q, "JSON key %s expected an integer but found %g", key, d);
    /* Beyond 2^53 a JSON number no longer holds an exact integer. */
    if (fabs(d) > 9007199254740992.0)
        return parse_error(q, "JSON key %s holds %.0f, which is too large", key, d);
    *out = (int64_t)d;
    return true;
}

bool cl__req_string(admin_req *q, const char *key, const char **out)
{
    const cJSON *item = field(q, key, true);
    return item != NULL && as_string(q, key, item, out);
}

bool cl__req_int(admin_req *q, const char *key, int64_t *out)
{
    const cJSON *item = field(q, key, true);
    return item != NULL && as_int(q, key, item, out);
}

bool cl__req_bool(admin_req *q, const char *key, bool *out)
{
    const cJSON *item = field(q, key, true);
    if (item == NULL)
        return false;
    if (!cJSON_IsBool(item))
        return mismatch(q, key, "bool", item);
    *out = cJSON_IsTrue(item);
    return true;
}

bool cl__req_string_array(admin_req *q, const char *key, const cJSON **out)
{
    const cJSON *item = field(q, key, true);
    if (item == NULL)
        return false;
    if (!cJSON_IsArray(item))
        return mismatch(q, key, "Array", item);
    int i = 0;
    const cJSON *el;
    cJSON_ArrayForEach(el, item)
    {
        if (!cJSON_IsString(el))
            return parse_error(q, "Array input of type %s is not of type string (JSON key %s, "
                                  "element %d)",
                               cl_json_clipper_type_name(el), key, i);
        i++;
    }
    *out = item;
    return true;
}

bool cl__req_model(admin_req *q, const void *data, size_t len, const char *schema,
                   const char **name, const char **version, admin_reply *rep)
{
    return cl__req_parse(q, data, len, schema, rep) && cl__req_string(q, "model_name", name) &&
           cl__req_string(q, "model_version", version);
}

bool cl__req_input_type(admin_req *q, int *out)
{
    const char *name;
    if (!cl__req_string(q, "input_type", &name))
        return false;
    int type = cl_input_type_parse(name);
    if (type < 0) {
        cl__admin_fail(q->rep, "Invalid input_type '%s'. %s", name, cl__valid_input_types);
        return false;
    }
    *out = type;
    return true;
}

bool cl__req_opt_string(admin_req *q, const char *key, const char **out)
{
    const cJSON *item = field(q, key, false);
    return item == NULL || as_string(q, key, item, out);
}

bool cl__req_opt_int(admin_req *q, const char *key, int64_t *out)
{
    const cJSON *item = field(q, key, false);
    return item == NULL || as_int(q, key, item, out);
}
