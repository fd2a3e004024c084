/* Predict and feedback body decoding (see fe_decode.h). */
#include <endian.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cl_json.h"
#include "cl_wire.h"
#include "fe_decode.h"

const char CL_FE_PREDICT_SCHEMA[] =
    "\n  {\n   \"input\" := [double] | [int] | [string] | [byte] | [float],\n  }\n";
const char CL_FE_UPDATE_SCHEMA[] = "\n  {\n   \"uid\" := string,\n   \"input\" := [double] | "
                                   "[int] | [string] | [byte] | [float],\n   \"label\" := "
                                   "double\n  }\n";

/* rapidjson's IsFloat range. */
#define FLOAT_LIMIT 3.4028234e38

void cl_fe_inputs_init(cl_fe_inputs *in)
{
    memset(in, 0, sizeof(*in));
    cl_buf_init(&in->data);
}

void cl_fe_inputs_deinit(cl_fe_inputs *in)
{
    if (in == NULL)
        return;
    free(in->off);
    cl_buf_deinit(&in->data);
    cl_fe_inputs_init(in);
}

char *cl_fe_json_error_cause(const char *what, const char *schema)
{
    cl_buf b;
    cl_buf_init(&b);
    if (cl_buf_printf(&b, "Error parsing JSON: %s. Expected JSON schema: %s", what, schema) !=
        CL_OK) {
        cl_buf_deinit(&b);
        return NULL;
    }
    return cl_buf_steal(&b, NULL);
}

static CL_MUST_USE cl_status nomem(cl_err *err)
{
    return cl_err_set(err, CL_ERR_NOMEM, "out of memory while decoding the inputs");
}

static CL_MUST_USE cl_status require_object(const cl_fe_doc *doc, cl_err *err)
{
    if (!cJSON_IsObject(doc->root))
        return cl_err_set(err, CL_ERR_INVALID,
                          "Can only get key-value pair from an object, not from type %s",
                          cl_json_clipper_type_name(doc->root));
    return CL_OK;
}

/* Clipper's check_kv_type_and_return: present and of the expected type. */
static CL_MUST_USE cl_status get_typed(const cJSON *obj, const char *key, int type,
                                       const char *type_name, const cJSON **out, cl_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL)
        return cl_err_set(err, CL_ERR_INVALID, "JSON object does not have required key: %s", key);
    if ((v->type & 0xff) != type)
        return cl_err_set(err, CL_ERR_INVALID,
                          "Type mismatch! JSON key %s expected type %sbut found type %s", key,
                          type_name, cl_json_clipper_type_name(v));
    *out = v;
    return CL_OK;
}

cl_status cl_fe_decode_version(const cl_fe_doc *doc, const char **version, cl_err *err)
{
    *version = NULL;
    if (require_object(doc, err) != CL_OK)
        return CL_ERR_INVALID;
    if (cJSON_GetObjectItemCaseSensitive(doc->root, "version") == NULL)
        return CL_OK;
    const cJSON *v = NULL;
    if (get_typed(doc->root, "version", cJSON_String, "String", &v, err) != CL_OK)
        return CL_ERR_INVALID;
    if (doc->n_nul_strs > 0 && cl_fe_doc_str_has_nul(doc, cl_fe_doc_str_index(doc, v)))
        return cl_err_set(err, CL_ERR_INVALID,
                          "JSON key version holds a NUL character (\\u0000), which a version "
                          "may not hold");
    *version = v->valuestring;
    return CL_OK;
}

static CL_MUST_USE cl_status put_bytes(cl_buf *b, const void *p, size_t n, cl_err *err)
{
    return cl_buf_append(b, p, n) == CL_OK ? CL_OK : nomem(err);
}

/* One element of a numeric array: checks it the way rapidjson's IsDouble /
 * IsFloat / IsInt did and appends its little-endian bytes. *num is the
 * index of the element's literal in doc->nums when it is a number. */
static CL_MUST_USE cl_status put_number(const cl_fe_doc *doc, const cJSON *elem, size_t *num,
                                        int type, cl_buf *b, cl_err *err)
{
    static const char *const names[] = {
        [CL_INPUT_INTEGERS] = "int", [CL_INPUT_FLOATS] = "float", [CL_INPUT_DOUBLES] = "double"};
    bool ok = false;
    uint8_t flags = 0;
    if (cJSON_IsNumber(elem)) {
        if (*num >= doc->n_nums) /* cannot happen: every number was scanned */
            return cl_err_set(err, CL_ERR_INVALID, "internal error: number literal not found");
        flags = doc->nums[(*num)++].flags;
    }
    double d = elem->valuedouble;
    if (cJSON_IsNumber(elem)) {
        switch (type) {
        case CL_INPUT_DOUBLES:
            ok = (flags & CL_FE_NUM_DOUBLE) != 0;
            break;
        case CL_INPUT_FLOATS:
            ok = (flags & CL_FE_NUM_DOUBLE) != 0 && d >= -FLOAT_LIMIT && d <= FLOAT_LIMIT;
            break;
        default:
            ok = (flags & CL_FE_NUM_DOUBLE) == 0 && d >= INT32_MIN && d <= INT32_MAX;
            break;
        }
    }
    if (!ok)
        return cl_err_set(err, CL_ERR_INVALID, "Array input of type %s is not of type %s",
                          cl_json_clipper_type_name(elem), names[type]);
    if (type == CL_INPUT_DOUBLES) {
        uint64_t u;
        memcpy(&u, &d, sizeof(u));
        u = htole64(u);
        return put_bytes(b, &u, sizeof(u), err);
    }
    if (type == CL_INPUT_FLOATS) {
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        u = htole32(u);
        return put_bytes(b, &u, sizeof(u), err);
    }
    uint32_t u = htole32((uint32_t)(int32_t)d);
    return put_bytes(b, &u, sizeof(u), err);
}

/* The elements of one numeric input. batch_index: its place in
 * input_batch, or -1 for "input". An empty array is refused: no model of a
 * numeric type can use an input without a number (Clipper passed it on). */
static CL_MUST_USE cl_status put_numbers(const cl_fe_doc *doc, const cJSON *arr, long batch_index,
                                         size_t *num, int type, cl_buf *b, cl_err *err)
{
    static const char *const names[] = {
        [CL_INPUT_INTEGERS] = "int", [CL_INPUT_FLOATS] = "float", [CL_INPUT_DOUBLES] = "double"};
    if (arr->child == NULL && batch_index < 0)
        return cl_err_set(err, CL_ERR_INVALID,
                          "Array input is empty; an input of type %s must hold at least one "
                          "number",
                          names[type]);
    if (arr->child == NULL)
        return cl_err_set(err, CL_ERR_INVALID,
                          "Array input %ld of input_batch is empty; an input of type %s must "
                          "hold at least one number",
                          batch_index, names[type]);
    for (const cJSON *e = arr->child; e != NULL; e = e->next)
        if (put_number(doc, e, num, type, b, err) != CL_OK)
            return CL_ERR_INVALID;
    return CL_OK;
}

static bool is_base64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Base64 through OpenSSL's decoder, which rejects characters outside the
 * alphabet and input that does not end on a whole quantum. s holds len
 * bytes: a U+0000 in the string is a byte outside the alphabet. */
/* CL_ERR_INVALID, err saying which, when s has a byte outside the base64
 * alphabet; CL_OK when it has none. */
static CL_MUST_USE cl_status check_alphabet(const char *s, size_t len, cl_err *err)
{
    size_t ok = 0;
    while (ok < len && is_base64_char((unsigned char)s[ok]))
        ok++;
    if (ok == len)
        return CL_OK;
    unsigned char c = (unsigned char)s[ok];
    if (c > 0x20 && c < 0x7f)
        return cl_err_set(err, CL_ERR_INVALID,
                          "String input is not valid base64: character '%c' at position %zu "
                          "is outside the base64 alphabet",
                          c, ok);
    return cl_err_set(err, CL_ERR_INVALID,
                      "String input is not valid base64: byte 0x%02x at position %zu is "
                      "outside the base64 alphabet",
                      c, ok);
}

static CL_MUST_USE cl_status put_base64(const char *s, size_t len, cl_buf *b, cl_err *err)
{
    if (len > INT32_MAX / 2)
        return cl_err_set(err, CL_ERR_INVALID, "Base64 input is too large");
    /* OpenSSL treats '-' as the end of input, so it is refused first; it
     * fails on every other byte outside the alphabet, and only then is the
     * input scanned to say which (a scan of every input cost a quarter of
     * the frontend's time on 8 MB inputs). */
    if (memchr(s, '-', len) != NULL)
        return check_alphabet(s, len, err);
    if (cl_buf_reserve(b, len / 4 * 3 + 80) != CL_OK)
        return nomem(err);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (ctx == NULL)
        return nomem(err);
    EVP_DecodeInit(ctx);
    int n1 = 0, n2 = 0;
    uint8_t *out = b->data + b->len;
    int rc = EVP_DecodeUpdate(ctx, out, &n1, (const unsigned char *)s, (int)len);
    if (rc >= 0)
        rc = EVP_DecodeFinal(ctx, out + n1, &n2);
    EVP_ENCODE_CTX_free(ctx);
    if (rc < 0 && check_alphabet(s, len, err) != CL_OK)
        return CL_ERR_INVALID;
    if (rc < 0)
        return cl_err_set(err, CL_ERR_INVALID,
                          "String input is not valid base64: it has a character outside the "
                          "base64 alphabet or its length is not a multiple of 4");
    b->len += (size_t)n1 + (size_t)n2;
    return CL_OK;
}

/* String value number index of doc, which is item: its whole text (a
 * U+0000 in it is kept, not the end) for strings, its decoded bytes for
 * bytes. tmp: scratch for a string that holds U+0000. */
static CL_MUST_USE cl_status put_string_or_bytes(const cl_fe_doc *doc, const cJSON *item,
                                                 size_t index, int type, cl_buf *tmp, cl_buf *b,
                                                 cl_err *err)
{
    const char *s = NULL;
    size_t len = 0;
    if (cl_fe_doc_string(doc, item, index, tmp, &s, &len) != CL_OK)
        return nomem(err);
    if (type == CL_INPUT_BYTES)
        return put_base64(s, len, b, err);
    return put_bytes(b, s, len, err);
}

static CL_MUST_USE cl_status alloc_offsets(cl_fe_inputs *out, size_t n, cl_err *err)
{
    out->off = calloc(n + 1, sizeof(*out->off));
    if (out->off == NULL)
        return nomem(err);
    out->n = n;
    return CL_OK;
}

/* Clipper's parse_single_input on key ("input"). */
static CL_MUST_USE cl_status decode_single(const cl_fe_doc *doc, const char *key, int type,
                                           cl_fe_inputs *out, cl_err *err)
{
    const cJSON *v = NULL;
    if (alloc_offsets(out, 1, err) != CL_OK)
        return CL_ERR_NOMEM;
    if (type == CL_INPUT_STRINGS || type == CL_INPUT_BYTES) {
        if (get_typed(doc->root, key, cJSON_String, "String", &v, err) != CL_OK)
            return CL_ERR_INVALID;
        size_t index = doc->n_nul_strs > 0 ? cl_fe_doc_str_index(doc, v) : 0;
        cl_buf tmp;
        cl_buf_init(&tmp);
        cl_status s = put_string_or_bytes(doc, v, index, type, &tmp, &out->data, err);
        cl_buf_deinit(&tmp);
        if (s != CL_OK)
            return s;
    } else {
        if (get_typed(doc->root, key, cJSON_Array, "Array", &v, err) != CL_OK)
            return CL_ERR_INVALID;
        size_t num = cl_fe_doc_num_index(doc, v);
        if (put_numbers(doc, v, -1, &num, type, &out->data, err) != CL_OK)
            return CL_ERR_INVALID;
    }
    out->off[1] = out->data.len;
    return CL_OK;
}

static CL_MUST_USE cl_status decode_batch_elements(const cl_fe_doc *doc, const cJSON *v, int type,
                                                   size_t num, size_t str, cl_buf *tmp,
                                                   cl_fe_inputs *out, cl_err *err);

static CL_MUST_USE cl_status decode_batch(const cl_fe_doc *doc, int type, cl_fe_inputs *out,
                                          cl_err *err)
{
    const cJSON *v = NULL;
    if (get_typed(doc->root, "input_batch", cJSON_Array, "Array", &v, err) != CL_OK)
        return CL_ERR_INVALID;
    if (alloc_offsets(out, (size_t)cJSON_GetArraySize(v), err) != CL_OK)
        return CL_ERR_NOMEM;
    out->batch = true;
    size_t num = cl_fe_doc_num_index(doc, v);
    /* Each element is one string value (any other element is refused). */
    size_t str = doc->n_nul_strs > 0 ? cl_fe_doc_str_index(doc, v) : 0;
    cl_buf tmp;
    cl_buf_init(&tmp);
    cl_status s = decode_batch_elements(doc, v, type, num, str, &tmp, out, err);
    cl_buf_deinit(&tmp);
    return s;
}

static CL_MUST_USE cl_status decode_batch_elements(const cl_fe_doc *doc, const cJSON *v, int type,
                                                   size_t num, size_t str, cl_buf *tmp,
                                                   cl_fe_inputs *out, cl_err *err)
{
    size_t i = 0;
    for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
        if (type == CL_INPUT_STRINGS && !cJSON_IsString(e))
            return cl_err_set(err, CL_ERR_INVALID, "Array input of type %s is not of type string",
                              cl_json_clipper_type_name(e));
        if (type == CL_INPUT_BYTES && !cJSON_IsString(e))
            return cl_err_set(err, CL_ERR_INVALID,
                              "PredictionData of type %s is not of type base64-encoded string",
                              cl_json_clipper_type_name(e));
        if (type == CL_INPUT_STRINGS || type == CL_INPUT_BYTES) {
            cl_status s = put_string_or_bytes(doc, e, str++, type, tmp, &out->data, err);
            if (s != CL_OK)
                return s;
        } else {
            if (!cJSON_IsArray(e))
                return cl_err_set(err, CL_ERR_INVALID,
                                  "Array input of type %s is not of type array",
                                  cl_json_clipper_type_name(e));
            if (put_numbers(doc, e, (long)i, &num, type, &out->data, err) != CL_OK)
                return CL_ERR_INVALID;
        }
        out->off[i + 1] = out->data.len;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status check_type(int type, cl_err *err)
{
    if (type < 0 || type >= CL__INPUT_COUNT)
        return cl_err_set(err, CL_ERR_INVALID, "input_type is not a valid type");
    return CL_OK;
}

size_t cl_fe_decode_count(const cl_fe_doc *doc)
{
    if (!cJSON_IsObject(doc->root))
        return 0;
    if (cJSON_GetObjectItemCaseSensitive(doc->root, "input") != NULL)
        return 1;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(doc->root, "input_batch");
    return cJSON_IsArray(b) ? (size_t)cJSON_GetArraySize(b) : 0;
}

cl_status cl_fe_decode_inputs(const cl_fe_doc *doc, int input_type, cl_fe_inputs *out,
                              cl_err *err)
{
    cl_fe_inputs_deinit(out);
    cl_status s = check_type(input_type, err);
    if (s == CL_OK)
        s = require_object(doc, err);
    if (s != CL_OK)
        return s;
    if (cJSON_GetObjectItemCaseSensitive(doc->root, "input") != NULL)
        s = decode_single(doc, "input", input_type, out, err);
    else if (cJSON_GetObjectItemCaseSensitive(doc->root, "input_batch") != NULL)
        s = decode_batch(doc, input_type, out, err);
    else
        s = cl_err_set(err, CL_ERR_INVALID,
                       "JSON object does not have required keys input or input_batch");
    if (s != CL_OK)
        cl_fe_inputs_deinit(out);
    return s;
}

cl_status cl_fe_decode_update(const cl_fe_doc *doc, int input_type, int64_t *uid,
                              cl_fe_inputs *input, double *label, cl_err *err)
{
    cl_fe_inputs_deinit(input);
    const cJSON *v = NULL;
    cl_status s = check_type(input_type, err);
    if (s == CL_OK)
        s = require_object(doc, err);
    if (s == CL_OK)
        s = get_typed(doc->root, "uid", cJSON_Number, "Number", &v, err);
    if (s != CL_OK)
        return s;
    const cl_fe_num *lit = &doc->nums[cl_fe_doc_num_index(doc, v)];
    char buf[72];
    snprintf(buf, sizeof(buf), "%.*s", (int)(lit->len < 64 ? lit->len : 64),
             doc->text + lit->off);
    errno = 0;
    long long u = strtoll(buf, NULL, 10);
    if ((lit->flags & CL_FE_NUM_DOUBLE) || errno == ERANGE)
        return cl_err_set(err, CL_ERR_INVALID, "PredictionData of type Number is not of type long");
    *uid = u;
    s = decode_single(doc, "input", input_type, input, err);
    if (s == CL_OK)
        s = get_typed(doc->root, "label", cJSON_Number, "Number", &v, err);
    if (s != CL_OK) {
        cl_fe_inputs_deinit(input);
        return s;
    }
    *label = v->valuedouble;
    return CL_OK;
}
