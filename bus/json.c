/* Strict JSON decoding over cJSON: getters that name the bad field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_json.h"

const char *cl_json_clipper_type_name(const cJSON *item)
{
    if (item == NULL)
        return "Null";
    switch (item->type & 0xff) {
    case cJSON_False:
        return "False";
    case cJSON_True:
        return "True";
    case cJSON_Object:
        return "Object";
    case cJSON_Array:
        return "Array";
    case cJSON_String:
        return "String";
    case cJSON_Number:
    case cJSON_Raw:
        return "Number";
    default:
        return "Null";
    }
}

const char *cl_json_type_name(const cJSON *item)
{
    if (item == NULL)
        return "nothing";
    switch (item->type & 0xff) {
    case cJSON_False:
    case cJSON_True:
        return "boolean";
    case cJSON_NULL:
        return "null";
    case cJSON_Number:
        return "number";
    case cJSON_String:
        return "string";
    case cJSON_Array:
        return "array";
    case cJSON_Object:
        return "object";
    case cJSON_Raw:
        return "raw";
    default:
        return "invalid";
    }
}

cl_status cl_json_parse(cJSON **out, const void *data, size_t len, cl_err *err)
{
    *out = NULL;
    if (data == NULL || len == 0)
        return cl_err_set(err, CL_ERR_INVALID, "malformed JSON at offset 0: the body is empty");
    const char *text = data;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root != NULL && end != NULL) {
        /* Only whitespace may follow the value. */
        size_t off = (size_t)(end - text);
        while (off < len && (text[off] == ' ' || text[off] == '\t' || text[off] == '\n' ||
                             text[off] == '\r'))
            off++;
        if (off < len) {
            cJSON_Delete(root);
            root = NULL;
            end = text + off;
        }
    }
    if (root == NULL) {
        size_t off = (end != NULL && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        if (off >= len) {
            return cl_err_set(err, CL_ERR_INVALID,
                              "malformed JSON at offset %zu: unexpected end of input", off);
        }
        char near[24];
        size_t n = 0;
        for (size_t i = off; i < len && n < 20; i++, n++) {
            unsigned char c = (unsigned char)text[i];
            near[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        }
        near[n] = '\0';
        return cl_err_set(err, CL_ERR_INVALID, "malformed JSON at offset %zu: near '%s'", off,
                          near);
    }
    *out = root;
    return CL_OK;
}

cl_status cl_json_parse_object(cJSON **out, const void *data, size_t len, cl_err *err)
{
    cl_status s = cl_json_parse(out, data, len, err);
    if (s != CL_OK)
        return s;
    if (!cJSON_IsObject(*out)) {
        s = cl_err_set(err, CL_ERR_INVALID, "expected a JSON object, got %s",
                       cl_json_type_name(*out));
        cJSON_Delete(*out);
        *out = NULL;
    }
    return s;
}

/* Finds field; CL_ERR_NOT_FOUND when absent (with err set for required use). */
static cl_status lookup(const cJSON *obj, const char *field, const cJSON **item, cl_err *err)
{
    if (!cJSON_IsObject(obj))
        return cl_err_set(err, CL_ERR_INVALID, "expected a JSON object holding '%s', got %s",
                          field, cl_json_type_name(obj));
    *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (*item == NULL)
        return cl_err_set(err, CL_ERR_NOT_FOUND, "missing field '%s'", field);
    return CL_OK;
}

static cl_status wrong_type(const char *field, const char *want, const cJSON *item, cl_err *err)
{
    return cl_err_set(err, CL_ERR_INVALID, "field '%s' must be %s, got %s", field, want,
                      cl_json_type_name(item));
}

static cl_status as_string(const cJSON *item, const char *field, const char **out, cl_err *err)
{
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return wrong_type(field, "a string", item, err);
    *out = item->valuestring;
    return CL_OK;
}

static cl_status as_int(const cJSON *item, const char *field, int64_t *out, cl_err *err)
{
    if (!cJSON_IsNumber(item))
        return wrong_type(field, "an integer", item, err);
    double d = item->valuedouble;
    /* 2^63 is exactly representable; anything at or above it overflows. */
    if (!isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0 ||
        d != (double)(int64_t)d)
        return cl_err_set(err, CL_ERR_INVALID, "field '%s' must be an integer, got %g", field, d);
    *out = (int64_t)d;
    return CL_OK;
}

static cl_status as_bool(const cJSON *item, const char *field, bool *out, cl_err *err)
{
    if (!cJSON_IsBool(item))
        return wrong_type(field, "a boolean", item, err);
    *out = cJSON_IsTrue(item);
    return CL_OK;
}

static cl_status required(cl_status s)
{
    return s == CL_ERR_NOT_FOUND ? CL_ERR_INVALID : s;
}

static void fix_code(cl_err *err, cl_status s)
{
    if (err != NULL)
        err->code = s;
}

cl_status cl_json_get_string(const cJSON *obj, const char *field, const char **out, cl_err *err)
{
    const cJSON *item;
    cl_status s = lookup(obj, field, &item, err);
    if (s != CL_OK) {
        fix_code(err, required(s));
        return required(s);
    }
    return as_string(item, field, out, err);
}

cl_status cl_json_get_int(const cJSON *obj, const char *field, int64_t *out, cl_err *err)
{
    const cJSON *item;
    cl_status s = lookup(obj, field, &item, err);
    if (s != CL_OK) {
        fix_code(err, required(s));
        return required(s);
    }
    return as_int(item, field, out, err);
}

cl_status cl_json_get_bool(const cJSON *obj, const char *field, bool *out, cl_err *err)
{
    const cJSON *item;
    cl_status s = lookup(obj, field, &item, err);
    if (s != CL_OK) {
        fix_code(err, required(s));
        return required(s);
    }
    return as_bool(item, field, out, err);
}

cl_status cl_json_get_array(const cJSON *obj, const char *field, const cJSON **out, cl_err *err)
{
    const cJSON *item;
    cl_status s = lookup(obj, field, &item, err);
    if (s != CL_OK) {
        fix_code(err, required(s));
        return required(s);
    }
    if (!cJSON_IsArray(item))
        return wrong_type(field, "an array", item, err);
    *out = item;
    return CL_OK;
}

cl_status cl_json_get_string_array(const cJSON *obj, const char *field, const cJSON **out,
                                   cl_err *err)
{
    const cJSON *arr;
    cl_status s = cl_json_get_array(obj, field, &arr, err);
    if (s != CL_OK)
        return s;
    int i = 0;
    const cJSON *el;
    cJSON_ArrayForEach(el, arr)
    {
        if (!cJSON_IsString(el))
            return cl_err_set(err, CL_ERR_INVALID,
                              "field '%s' must be an array of strings, but element %d is %s",
                              field, i, cl_json_type_name(el));
        i++;
    }
    *out = arr;
    return CL_OK;
}

/* Optional getters: absent is fine; present must have the right type. */
#define OPTIONAL(conv)                                                                         \
    do {                                                                                       \
        const cJSON *item;                                                                     \
        *present = false;                                                                      \
        if (!cJSON_IsObject(obj))                                                              \
            return lookup(obj, field, &item, err);                                             \
        item = cJSON_GetObjectItemCaseSensitive(obj, field);                                   \
        if (item == NULL)                                                                      \
            return CL_OK;                                                                      \
        cl_status s_ = conv(item, field, out, err);                                            \
        if (s_ == CL_OK)                                                                       \
            *present = true;                                                                   \
        return s_;                                                                             \
    } while (0)

cl_status cl_json_opt_string(const cJSON *obj, const char *field, const char **out, bool *present,
                             cl_err *err)
{
    OPTIONAL(as_string);
}

cl_status cl_json_opt_int(const cJSON *obj, const char *field, int64_t *out, bool *present,
                          cl_err *err)
{
    OPTIONAL(as_int);
}

cl_status cl_json_opt_bool(const cJSON *obj, const char *field, bool *out, bool *present,
                           cl_err *err)
{
    OPTIONAL(as_bool);
}

cl_status cl_json_only_fields(const cJSON *obj, const char *const *allowed, cl_err *err)
{
    if (!cJSON_IsObject(obj))
        return cl_err_set(err, CL_ERR_INVALID, "expected a JSON object, got %s",
                          cl_json_type_name(obj));
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        bool ok = false;
        for (const char *const *a = allowed; a != NULL && *a != NULL; a++) {
            if (item->string != NULL && strcmp(item->string, *a) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok)
            return cl_err_set(err, CL_ERR_INVALID, "unknown field '%s'",
                              item->string ? item->string : "");
    }
    return CL_OK;
}

char *cl_json_print(const cJSON *item)
{
    return cJSON_PrintUnformatted(item);
}
