/* Strict JSON decoding over cJSON: getters that name the bad field. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
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

/* ---- UTF-8 and string literals ---------------------------------------- */

static bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence at p (n bytes left), 0 if none
 * (RFC 3629, table 3-7 of Unicode: the second byte's range rules out the
 * overlong forms, the surrogates and what is above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xc2) /* a continuation byte, or an overlong 2-byte form */
        return 0;
    if (c < 0xe0)
        return n >= 2 && is_cont(p[1]) ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || !is_cont(p[1]) || !is_cont(p[2]))
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
            return 0; /* overlong, or a surrogate */
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || !is_cont(p[1]) || !is_cont(p[2]) || !is_cont(p[3]))
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
            return 0; /* overlong, or above U+10FFFF */
        return 4;
    }
    return 0;
}

bool cl_json_utf8_valid(const void *s, size_t len, size_t *bad)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < len;) {
        size_t k = p[i] < 0x80 ? 1 : utf8_seq(p + i, len - i);
        if (k == 0) {
            if (bad != NULL)
                *bad = i;
            return false;
        }
        i += k;
    }
    return true;
}

cJSON *cl_json_add_int(cJSON *object, const char *key, int64_t v)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, v);
    cJSON *item = cJSON_CreateRaw(text);
    if (item == NULL || !cJSON_AddItemToObject(object, key, item)) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

char *cl_json_utf8_repair(const void *s, size_t len)
{
    const unsigned char *p = s;
    static const char fffd[] = "\xEF\xBF\xBD";
    /* At worst every byte becomes three. */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = p[i] == 0 ? 0 : p[i] < 0x80 ? 1 : utf8_seq(p + i, len - i);
        if (k == 0) {
            memcpy(out + n, fffd, 3);
            n += 3;
            i++;
            continue;
        }
        memcpy(out + n, p + i, k);
        n += k;
        i += k;
    }
    out[n] = '\0';
    return out;
}

/* The code unit of the 4 hex digits at t[at]. */
static bool hex4(const char *t, size_t len, size_t at, unsigned *out)
{
    if (at > len || len - at < 4)
        return false;
    unsigned v = 0;
    for (size_t i = at; i < at + 4; i++) {
        char c = t[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return false;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return true;
}

/* The \\uXXXX escape whose backslash is t[i]: its code point and length (6, or 12 for a
 * surrogate pair); 0 with *why set when it is not a valid one. */
static size_t unicode_escape(const char *t, size_t len, size_t i, unsigned *cp, const char **why)
{
    unsigned hi, lo;
    if (!hex4(t, len, i + 2, &hi)) {
        *why = "Incorrect hex digit after \\u escape in string.";
        return 0;
    }
    if (hi < 0xd800 || hi > 0xdfff) {
        *cp = hi;
        return 6;
    }
    if (hi <= 0xdbff && len - i >= 12 && t[i + 6] == '\\' && t[i + 7] == 'u' &&
        hex4(t, len, i + 8, &lo) && lo >= 0xdc00 && lo <= 0xdfff) {
        *cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
        return 12;
    }
    *why = "The surrogate pair in string is invalid.";
    return 0;
}

/* cl_json_scan_string; with encoding false, UTF-8 and raw control
 * characters are not checked (cJSON takes both). */
static const char *scan_string(const char *t, size_t len, size_t *pos, bool *nul, bool encoding)
{
    size_t i = *pos + 1;
    const char *why = NULL;
    *nul = false;
    while (i < len) {
        unsigned char c = (unsigned char)t[i];
        size_t k = 1;
        if (c == '"') {
            *pos = i + 1;
            return NULL;
        } else if (c < 0x20 && encoding) {
            why = "Invalid encoding in string: a control character must be escaped.";
        } else if (c == '\\' && i + 1 < len && t[i + 1] == 'u') {
            unsigned cp = 1;
            k = unicode_escape(t, len, i, &cp, &why);
            *nul |= k > 0 && cp == 0;
        } else if (c == '\\') {
            k = 2;
            if (i + 1 >= len || t[i + 1] == '\0' || strchr("\"\\/bfnrt", t[i + 1]) == NULL)
                why = "Invalid escape character in string.";
        } else if (c >= 0x80 && encoding) {
            k = utf8_seq((const unsigned char *)t + i, len - i);
            if (k == 0)
                why = "Invalid encoding in string: it is not valid UTF-8.";
        }
        if (why != NULL) {
            *pos = i;
            return why;
        }
        i += k;
    }
    *pos = len;
    return "Missing a closing quotation mark in string.";
}

const char *cl_json_scan_string(const char *t, size_t len, size_t *pos, bool *nul)
{
    return scan_string(t, len, pos, nul, true);
}

static size_t utf8_put(uint8_t out[4], unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

cl_status cl_json_unescape(const char *t, size_t len, size_t pos, cl_buf *out)
{
    size_t end = pos;
    bool nul;
    if (pos >= len || t[pos] != '"' || cl_json_scan_string(t, len, &end, &nul) != NULL)
        return CL_ERR_INVALID;
    end--; /* the closing quote */
    for (size_t i = pos + 1; i < end;) {
        size_t run = i;
        while (run < end && t[run] != '\\')
            run++;
        if (cl_buf_append(out, t + i, run - i) != CL_OK)
            return CL_ERR_NOMEM;
        if (run == end)
            break;
        uint8_t u[4];
        size_t n = 1;
        char e = t[run + 1];
        size_t k = 2;
        switch (e) {
        case 'b': u[0] = '\b'; break;
        case 'f': u[0] = '\f'; break;
        case 'n': u[0] = '\n'; break;
        case 'r': u[0] = '\r'; break;
        case 't': u[0] = '\t'; break;
        case 'u': {
            unsigned cp = 0;
            const char *why = NULL;
            k = unicode_escape(t, len, run, &cp, &why);
            n = utf8_put(u, cp);
            break;
        }
        default: u[0] = (uint8_t)e; break; /* '"', '\\', '/' */
        }
        if (cl_buf_append(out, u, n) != CL_OK)
            return CL_ERR_NOMEM;
        i = run + k;
    }
    return CL_OK;
}

/* ---- duplicate keys ---------------------------------------------------- */

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key of obj that appears twice, or NULL. Small objects are compared
 * pairwise; larger ones sorted, so a body of many keys stays O(n log n). */
static CL_MUST_USE cl_status find_duplicate(const cJSON *obj, const char **dup)
{
    size_t n = 0;
    *dup = NULL;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        n++;
    if (n <= 16) {
        for (const cJSON *a = obj->child; a != NULL; a = a->next)
            for (const cJSON *b = a->next; b != NULL; b = b->next)
                if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0) {
                    *dup = a->string;
                    return CL_OK;
                }
        return CL_OK;
    }
    const char **keys = malloc(n * sizeof(*keys));
    if (keys == NULL)
        return CL_ERR_NOMEM;
    size_t k = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        if (c->string != NULL)
            keys[k++] = c->string;
    qsort(keys, k, sizeof(*keys), cmp_keys);
    for (size_t i = 1; i < k && *dup == NULL; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            *dup = keys[i];
    free(keys);
    return CL_OK;
}

/* Appends ".key" or "[i]" to path (of cap bytes; a long one is cut). */
static void path_push(char *path, size_t cap, const cJSON *parent, const cJSON *child, int index)
{
    size_t n = strlen(path);
    if (n + 1 >= cap)
        return;
    if (cJSON_IsObject(parent))
        snprintf(path + n, cap - n, "%s%s", n > 0 ? "." : "", child->string ? child->string : "");
    else
        snprintf(path + n, cap - n, "[%d]", index);
}

static CL_MUST_USE cl_status unique_keys(const cJSON *item, char *path, size_t cap, cl_err *err)
{
    if (!cJSON_IsObject(item) && !cJSON_IsArray(item))
        return CL_OK;
    if (cJSON_IsObject(item)) {
        const char *dup = NULL;
        if (find_duplicate(item, &dup) != CL_OK)
            return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        if (dup != NULL)
            return cl_err_set(err, CL_ERR_INVALID, "duplicate key '%.100s'%s%s%s", dup,
                              path[0] ? " in '" : "", path, path[0] ? "'" : "");
    }
    size_t keep = strlen(path);
    int i = 0;
    for (const cJSON *c = item->child; c != NULL; c = c->next, i++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c))
            continue;
        path_push(path, cap, item, c, i);
        cl_status s = unique_keys(c, path, cap, err);
        path[keep] = '\0';
        if (s != CL_OK)
            return s;
    }
    return CL_OK;
}

cl_status cl_json_unique_keys(const cJSON *item, cl_err *err)
{
    char path[160] = "";
    return unique_keys(item, path, sizeof(path), err);
}

/* ---- parsing ----------------------------------------------------------- */

/* Finds string value number target (in document order; keys are not
 * values) under item and writes its path. */
static bool find_string(const cJSON *item, size_t target, size_t *count, char *path, size_t cap)
{
    if (cJSON_IsString(item))
        return (*count)++ == target;
    size_t keep = strlen(path);
    int i = 0;
    for (const cJSON *c = item->child; c != NULL; c = c->next, i++) {
        path_push(path, cap, item, c, i);
        if (find_string(c, target, count, path, cap))
            return true;
        path[keep] = '\0';
    }
    return false;
}

/* What cJSON accepts and should not (see cl_json.h), over a text it has
 * parsed into root; the encoding only for a body (see cl_json_parse_body). */
static CL_MUST_USE cl_status check_text(const cJSON *root, const char *t, size_t len, bool body,
                                        cl_err *err)
{
    size_t values = 0, nul_value = SIZE_MAX;
    for (size_t i = 0; i < len;) {
        if (t[i] != '"') {
            i++; /* outside strings cJSON has checked every byte */
            continue;
        }
        size_t start = i;
        bool nul = false;
        const char *why = scan_string(t, len, &i, &nul, body);
        if (why != NULL)
            return cl_err_set(err, CL_ERR_INVALID, "malformed JSON at offset %zu: %s", i, why);
        size_t j = i;
        while (j < len && (t[j] == ' ' || t[j] == '\t' || t[j] == '\n' || t[j] == '\r'))
            j++;
        bool key = j < len && t[j] == ':';
        if (nul && key)
            return cl_err_set(err, CL_ERR_INVALID,
                              "malformed JSON at offset %zu: a key contains a NUL character "
                              "(\\u0000), which is not allowed",
                              start);
        if (nul && nul_value == SIZE_MAX)
            nul_value = values;
        values += !key;
    }
    if (nul_value != SIZE_MAX) {
        char path[160] = "";
        size_t count = 0;
        find_string(root, nul_value, &count, path, sizeof(path));
        if (path[0] == '\0')
            return cl_err_set(err, CL_ERR_INVALID,
                              "the JSON string contains a NUL character (\\u0000), which is "
                              "not allowed");
        return cl_err_set(err, CL_ERR_INVALID,
                          "field '%s' contains a NUL character (\\u0000), which is not allowed",
                          path);
    }
    return cl_json_unique_keys(root, err);
}

static CL_MUST_USE cl_status parse(cJSON **out, const void *data, size_t len, bool body,
                                   cl_err *err)
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
    cl_status s = check_text(root, text, len, body, err);
    if (s != CL_OK) {
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return CL_OK;
}

cl_status cl_json_parse(cJSON **out, const void *data, size_t len, cl_err *err)
{
    return parse(out, data, len, false, err);
}

cl_status cl_json_parse_body(cJSON **out, const void *data, size_t len, cl_err *err)
{
    return parse(out, data, len, true, err);
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
static CL_MUST_USE cl_status lookup(const cJSON *obj, const char *field, const cJSON **item,
                                    cl_err *err)
{
    if (!cJSON_IsObject(obj))
        return cl_err_set(err, CL_ERR_INVALID, "expected a JSON object holding '%s', got %s",
                          field, cl_json_type_name(obj));
    *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (*item == NULL)
        return cl_err_set(err, CL_ERR_NOT_FOUND, "missing field '%s'", field);
    return CL_OK;
}

static CL_MUST_USE cl_status wrong_type(const char *field, const char *want, const cJSON *item,
                                        cl_err *err)
{
    return cl_err_set(err, CL_ERR_INVALID, "field '%s' must be %s, got %s", field, want,
                      cl_json_type_name(item));
}

static CL_MUST_USE cl_status as_string(const cJSON *item, const char *field, const char **out,
                                       cl_err *err)
{
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return wrong_type(field, "a string", item, err);
    *out = item->valuestring;
    return CL_OK;
}

static CL_MUST_USE cl_status as_int(const cJSON *item, const char *field, int64_t *out, cl_err *err)
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

static CL_MUST_USE cl_status as_bool(const cJSON *item, const char *field, bool *out, cl_err *err)
{
    if (!cJSON_IsBool(item))
        return wrong_type(field, "a boolean", item, err);
    *out = cJSON_IsTrue(item);
    return CL_OK;
}

static CL_MUST_USE cl_status required(cl_status s)
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
