/* Strict JSON text: cJSON parse plus one lexical pass (see fe_json.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_json.h"
#include "fe_json.h"

/* Longest number literal cJSON itself accepts (its buffer is 64 bytes). */
#define NUM_TEXT_MAX 64

static CL_MUST_USE cl_status parse_error(cl_err *err, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static CL_MUST_USE cl_status parse_error(cl_err *err, size_t offset, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return cl_err_set(err, CL_ERR_INVALID, "JSON parse error: %s (offset %zu)\n", what, offset);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_num_char(char c)
{
    return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static size_t skip_bom(const char *t, size_t len)
{
    if (len >= 3 && (unsigned char)t[0] == 0xEF && (unsigned char)t[1] == 0xBB &&
        (unsigned char)t[2] == 0xBF)
        return 3;
    return 0;
}

/* Explains why cJSON stopped at pos. cJSON reports the last byte when it
 * ran out of input, so a value-ending byte there means "incomplete". */
static CL_MUST_USE cl_status cjson_error(cl_err *err, const char *t, size_t len, size_t pos)
{
    size_t i = skip_bom(t, len);
    while (i < len && is_ws(t[i]))
        i++;
    if (i >= len)
        return parse_error(err, i, "The document is empty.");
    if (pos >= len)
        pos = len - 1;
    char c = t[pos];
    if (pos == len - 1 && (c == '}' || c == ']' || c == '"' || c == ',' || c == ':' ||
                           c == '[' || c == '{' || is_digit(c) || is_ws(c) || c == 'e' ||
                           c == 'l'))
        return parse_error(err, len, "Unexpected end of the document.");
    if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
        return parse_error(err, pos, "Invalid value or unexpected character '%c'.", c);
    return parse_error(err, pos, "Invalid value or unexpected byte 0x%02x.", (unsigned char)c);
}

/* Checks one number literal t[s..e) against RFC 8259 and classifies it. */
static CL_MUST_USE cl_status check_number(const char *t, size_t s, size_t e, uint8_t *flags,
                                          cl_err *err)
{
    size_t p = s;
    bool is_double = false;
    if (p < e && t[p] == '-')
        p++;
    if (p < e && t[p] == '0') {
        p++;
    } else if (p < e && t[p] >= '1' && t[p] <= '9') {
        while (p < e && is_digit(t[p]))
            p++;
    } else {
        goto bad;
    }
    if (p < e && t[p] == '.') {
        p++;
        if (p >= e || !is_digit(t[p]))
            goto bad;
        while (p < e && is_digit(t[p]))
            p++;
        is_double = true;
    }
    if (p < e && (t[p] == 'e' || t[p] == 'E')) {
        p++;
        if (p < e && (t[p] == '+' || t[p] == '-'))
            p++;
        if (p >= e || !is_digit(t[p]))
            goto bad;
        while (p < e && is_digit(t[p]))
            p++;
        is_double = true;
    }
    if (p != e)
        goto bad;

    char buf[NUM_TEXT_MAX + 1];
    size_t n = e - s;
    if (n > NUM_TEXT_MAX)
        return parse_error(err, s, "Number literal longer than %d characters.", NUM_TEXT_MAX);
    memcpy(buf, t + s, n);
    buf[n] = '\0';
    if (!is_double) {
        /* Integers beyond 64 bits are stored as doubles by a strict parser. */
        errno = 0;
        if (buf[0] == '-')
            (void)strtoll(buf, NULL, 10);
        else
            (void)strtoull(buf, NULL, 10);
        if (errno == ERANGE)
            is_double = true;
    }
    if (is_double && isinf(strtod(buf, NULL)))
        return parse_error(err, s, "Number too big to be stored in double.");
    *flags = is_double ? CL_FE_NUM_DOUBLE : 0;
    return CL_OK;
bad:
    return parse_error(err, s, "Invalid number '%.*s'.", (int)(e - s > 40 ? 40 : e - s), t + s);
}

static CL_MUST_USE cl_status push_num(cl_fe_doc *doc, size_t *cap, size_t off, size_t len,
                                      uint8_t flags)
{
    if (doc->n_nums == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        cl_fe_num *p = realloc(doc->nums, ncap * sizeof(*p));
        if (p == NULL)
            return CL_ERR_NOMEM;
        doc->nums = p;
        *cap = ncap;
    }
    doc->nums[doc->n_nums++] = (cl_fe_num){(uint32_t)off, (uint32_t)len, flags};
    return CL_OK;
}

static CL_MUST_USE cl_status push_nul_str(cl_fe_doc *doc, size_t *cap, size_t index, size_t off)
{
    if (doc->n_nul_strs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        cl_fe_nul_str *p = realloc(doc->nul_strs, ncap * sizeof(*p));
        if (p == NULL)
            return CL_ERR_NOMEM;
        doc->nul_strs = p;
        *cap = ncap;
    }
    doc->nul_strs[doc->n_nul_strs++] = (cl_fe_nul_str){index, (uint32_t)off};
    return CL_OK;
}

/* The lexical pass over a text cJSON has accepted. body: a request body,
 * where U+0000 in a key is refused (cJSON would cut the key short). */
static CL_MUST_USE cl_status scan(cl_fe_doc *doc, const char *t, size_t len, bool body, cl_err *err)
{
    size_t cap = 0, nul_cap = 0, strs = 0;
    size_t i = skip_bom(t, len);
    while (i < len) {
        char c = t[i];
        if (c == '"') {
            size_t start = i;
            bool nul = false;
            const char *why = cl_json_scan_string(t, len, &i, &nul);
            if (why != NULL)
                return parse_error(err, i, "%s", why);
            size_t j = i;
            while (j < len && is_ws(t[j]))
                j++;
            bool key = j < len && t[j] == ':';
            if (nul && key && body)
                return parse_error(err, start,
                                   "An object key holds a NUL character (\\u0000), which a key "
                                   "may not hold.");
            if (nul && !key && push_nul_str(doc, &nul_cap, strs, start) != CL_OK)
                return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
            strs += !key;
            continue;
        }
        if (c == '-' || is_digit(c)) {
            size_t s = i;
            while (i < len && is_num_char(t[i]))
                i++;
            uint8_t flags = 0;
            if (check_number(t, s, i, &flags, err) != CL_OK)
                return CL_ERR_INVALID;
            if (push_num(doc, &cap, s, i - s, flags) != CL_OK)
                return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
            continue;
        }
        if ((unsigned char)c < 0x20 && !is_ws(c))
            return parse_error(err, i, "Invalid character 0x%02x outside a string.",
                               (unsigned char)c);
        i++;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status doc_parse(cl_fe_doc *doc, const char *text, size_t len, bool body,
                                       cl_err *err)
{
    memset(doc, 0, sizeof(*doc));
    if (len > UINT32_MAX)
        return parse_error(err, 0, "The document is larger than 4 GiB.");
    const char *end = NULL;
    cJSON *root = len > 0 ? cJSON_ParseWithLengthOpts(text, len, &end, 0) : NULL;
    if (root == NULL)
        return cjson_error(err, text, len, end != NULL ? (size_t)(end - text) : 0);
    size_t pos = (size_t)(end - text);
    while (pos < len && is_ws(text[pos]))
        pos++;
    if (pos < len) {
        cJSON_Delete(root);
        return parse_error(err, pos, "The document root must not be followed by other values.");
    }
    doc->root = root;
    doc->text = text;
    doc->len = len;
    cl_err dup;
    cl_status s = scan(doc, text, len, body, err);
    if (s == CL_OK && body && (s = cl_json_unique_keys(root, &dup)) != CL_OK) {
        if (s == CL_ERR_NOMEM)
            cl_err_set(err, s, "out of memory");
        else
            cl_err_set(err, s,
                       "JSON parse error: The document has a %s; a key may appear once in an "
                       "object.\n",
                       dup.msg);
    }
    if (s != CL_OK) {
        cl_fe_doc_deinit(doc);
        return err ? err->code : s;
    }
    return CL_OK;
}

cl_status cl_fe_doc_parse(cl_fe_doc *doc, const char *text, size_t len, cl_err *err)
{
    return doc_parse(doc, text, len, true, err);
}

void cl_fe_doc_deinit(cl_fe_doc *doc)
{
    if (doc == NULL)
        return;
    cJSON_Delete(doc->root);
    free(doc->nums);
    free(doc->nul_strs);
    memset(doc, 0, sizeof(*doc));
}

static bool count_until(const cJSON *node, const cJSON *target, size_t *count)
{
    if (node == target)
        return true;
    if (cJSON_IsNumber(node)) {
        (*count)++;
        return false;
    }
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        if (count_until(c, target, count))
            return true;
    return false;
}

size_t cl_fe_doc_num_index(const cl_fe_doc *doc, const cJSON *item)
{
    size_t n = 0;
    count_until(doc->root, item, &n);
    return n;
}

size_t cl_fe_count_numbers(const cJSON *item)
{
    size_t n = 0;
    count_until(item, NULL, &n);
    return n;
}

static bool count_strings_until(const cJSON *node, const cJSON *target, size_t *count)
{
    if (node == target)
        return true;
    if (cJSON_IsString(node)) {
        (*count)++;
        return false;
    }
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        if (count_strings_until(c, target, count))
            return true;
    return false;
}

size_t cl_fe_doc_str_index(const cl_fe_doc *doc, const cJSON *item)
{
    size_t n = 0;
    count_strings_until(doc->root, item, &n);
    return n;
}

/* The entry of doc->nul_strs for string value index, or NULL. */
static const cl_fe_nul_str *nul_str(const cl_fe_doc *doc, size_t index)
{
    size_t lo = 0, hi = doc->n_nul_strs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (doc->nul_strs[mid].index == index)
            return &doc->nul_strs[mid];
        if (doc->nul_strs[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool cl_fe_doc_str_has_nul(const cl_fe_doc *doc, size_t index)
{
    return nul_str(doc, index) != NULL;
}

cl_status cl_fe_doc_string(const cl_fe_doc *doc, const cJSON *item, size_t index, cl_buf *tmp,
                           const char **s, size_t *len)
{
    const cl_fe_nul_str *ns = nul_str(doc, index);
    if (ns == NULL) {
        *s = item->valuestring;
        *len = strlen(item->valuestring);
        return CL_OK;
    }
    cl_buf_reset(tmp);
    cl_status st = cl_json_unescape(doc->text, doc->len, ns->off, tmp);
    if (st != CL_OK)
        return st;
    *s = (const char *)tmp->data;
    *len = tmp->len;
    return CL_OK;
}

bool cl_fe_output_json_span(const char *text, size_t len, size_t *start, size_t *end)
{
    cl_fe_doc doc;
    bool valid = doc_parse(&doc, text, len, false, NULL) == CL_OK;
    cl_fe_doc_deinit(&doc);
    size_t s = 0, e = len;
    if (valid) {
        s = skip_bom(text, len);
        while (s < e && is_ws(text[s]))
            s++;
        while (e > s && is_ws(text[e - 1]))
            e--;
    }
    *start = s;
    *end = e;
    return valid;
}

cJSON *cl_fe_output_value(const char *text, size_t len)
{
    size_t s, e;
    bool valid = cl_fe_output_json_span(text, len, &s, &e);
    if (!valid) {
        /* Text, as a JSON string: a model's bytes that are not UTF-8 (or
         * hold a NUL) are repaired, so the reply stays RFC 8259 JSON. */
        char *text_copy = cl_json_utf8_repair(text, len);
        cJSON *v = text_copy != NULL ? cJSON_CreateString(text_copy) : NULL;
        free(text_copy);
        return v;
    }
    char *copy = malloc(e - s + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, text + s, e - s);
    copy[e - s] = '\0';
    cJSON *v = cJSON_CreateRaw(copy);
    free(copy);
    return v;
}
