/* Binary task/result batches (see cl_wire.h for the layout). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cl_subject.h"
#include "cl_wire.h"

static const char TASKS_MAGIC[4] = {'C', 'L', 'T', '1'};
static const char RESULTS_MAGIC[4] = {'C', 'L', 'R', '1'};

static const struct {
    const char *name;
    cl_input_type type;
} input_aliases[] = {
    {"bytes", CL_INPUT_BYTES},       {"byte", CL_INPUT_BYTES},       {"b", CL_INPUT_BYTES},
    {"integers", CL_INPUT_INTEGERS}, {"ints", CL_INPUT_INTEGERS},    {"integer", CL_INPUT_INTEGERS},
    {"int", CL_INPUT_INTEGERS},      {"i", CL_INPUT_INTEGERS},       {"floats", CL_INPUT_FLOATS},
    {"float", CL_INPUT_FLOATS},      {"f", CL_INPUT_FLOATS},         {"doubles", CL_INPUT_DOUBLES},
    {"double", CL_INPUT_DOUBLES},    {"d", CL_INPUT_DOUBLES},        {"strings", CL_INPUT_STRINGS},
    {"string", CL_INPUT_STRINGS},    {"str", CL_INPUT_STRINGS},      {"strs", CL_INPUT_STRINGS},
    {"s", CL_INPUT_STRINGS},
};

int cl_input_type_parse(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(input_aliases) / sizeof(input_aliases[0]); i++)
        if (strcmp(name, input_aliases[i].name) == 0)
            return (int)input_aliases[i].type;
    return -1;
}

const char *cl_input_type_name(cl_input_type t)
{
    static const char *const names[] = {"bytes", "integers", "floats", "doubles", "strings"};
    return (unsigned)t < CL__INPUT_COUNT ? names[t] : "unknown";
}

/* Little-endian stores and loads; memcpy keeps them alignment-safe. */
static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static CL_MUST_USE cl_status begin(cl_buf *out, const char magic[4])
{
    cl_buf_reset(out);
    if (cl_buf_reserve(out, 8) != CL_OK)
        return CL_ERR_NOMEM;
    memcpy(out->data, magic, 4);
    put_u32(out->data + 4, 0);
    out->len = 8;
    return CL_OK;
}

static void bump(cl_buf *out)
{
    put_u32(out->data + 4, get_u32(out->data + 4) + 1);
}

uint32_t cl_wire_count(const cl_buf *buf)
{
    return buf->len >= 8 ? get_u32(buf->data + 4) : 0;
}

cl_status cl_wire_tasks_begin(cl_buf *out)
{
    return begin(out, TASKS_MAGIC);
}

cl_status cl_wire_tasks_add(cl_buf *out, const cl_task *t)
{
    size_t need = 8 + 8 + 4 + 1 + 2 + t->reply_len + 4 + t->input_len;
    if (cl_buf_reserve(out, need) != CL_OK)
        return CL_ERR_NOMEM;
    uint8_t *p = out->data + out->len;
    put_u64(p, t->task_id);
    put_u64(p + 8, t->deadline_us);
    put_u32(p + 16, t->slo_us);
    p[20] = t->input_type;
    put_u16(p + 21, t->reply_len);
    if (t->reply_len > 0)
        memcpy(p + 23, t->reply, t->reply_len);
    p += 23 + t->reply_len;
    put_u32(p, t->input_len);
    if (t->input_len > 0)
        memcpy(p + 4, t->input, t->input_len);
    out->len += need;
    bump(out);
    return CL_OK;
}

cl_status cl_wire_results_begin(cl_buf *out)
{
    return begin(out, RESULTS_MAGIC);
}

cl_status cl_wire_results_add(cl_buf *out, uint64_t task_id, uint8_t status, const void *data,
                              uint32_t len)
{
    size_t need = 8 + 1 + 4 + len;
    if (cl_buf_reserve(out, need) != CL_OK)
        return CL_ERR_NOMEM;
    uint8_t *p = out->data + out->len;
    put_u64(p, task_id);
    p[8] = status;
    put_u32(p + 9, len);
    if (len > 0)
        memcpy(p + 13, data, len);
    out->len += need;
    bump(out);
    return CL_OK;
}

static CL_MUST_USE cl_status header(const uint8_t *p, size_t len, const char magic[4],
                                    const char *what, uint32_t *count, cl_err *err)
{
    if (len < 8 || memcmp(p, magic, 4) != 0)
        return cl_err_set(err, CL_ERR_INVALID, "not a %s message (bad header)", what);
    *count = get_u32(p + 4);
    return CL_OK;
}

cl_status cl_wire_tasks_decode(const void *data, size_t len, cl_task **out, uint32_t *count,
                               cl_err *err)
{
    const uint8_t *p = data;
    uint32_t n;
    cl_status s = header(p, len, TASKS_MAGIC, "task batch", &n, err);
    if (s != CL_OK)
        return s;
    /* Each task needs at least 27 bytes: bounds the allocation by len. */
    if (n > (len - 8) / 27)
        return cl_err_set(err, CL_ERR_INVALID, "task batch claims %u tasks in %zu bytes", n, len);
    cl_task *tasks = calloc(n ? n : 1, sizeof(*tasks));
    if (tasks == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    size_t off = 8;
    for (uint32_t i = 0; i < n; i++) {
        cl_task *t = &tasks[i];
        if (len - off < 23)
            goto truncated;
        t->task_id = get_u64(p + off);
        t->deadline_us = get_u64(p + off + 8);
        t->slo_us = get_u32(p + off + 16);
        t->input_type = p[off + 20];
        t->reply_len = get_u16(p + off + 21);
        off += 23;
        if (len - off < (size_t)t->reply_len + 4)
            goto truncated;
        t->reply = (const char *)p + off;
        off += t->reply_len;
        t->input_len = get_u32(p + off);
        off += 4;
        if (len - off < t->input_len)
            goto truncated;
        t->input = p + off;
        off += t->input_len;
        if (t->input_type >= CL__INPUT_COUNT) {
            unsigned type = t->input_type; /* t dies with tasks */
            free(tasks);
            return cl_err_set(err, CL_ERR_INVALID, "task %u has unknown input type %u", i, type);
        }
        /* Its result is published there: a subject with CR/LF, spaces or
         * wildcards would break (or inject into) the publisher's
         * connection. */
        cl_err why;
        if (!cl_subj_valid_publish(t->reply, t->reply_len, &why)) {
            free(tasks);
            return cl_err_set(err, CL_ERR_INVALID, "task %u has a bad reply subject: %s", i,
                              why.msg);
        }
        continue;
    truncated:
        free(tasks);
        return cl_err_set(err, CL_ERR_INVALID, "task batch truncated in task %u of %u", i, n);
    }
    *out = tasks;
    *count = n;
    return CL_OK;
}

cl_status cl_wire_results_decode(const void *data, size_t len, cl_result **out, uint32_t *count,
                                 cl_err *err)
{
    const uint8_t *p = data;
    uint32_t n;
    cl_status s = header(p, len, RESULTS_MAGIC, "result batch", &n, err);
    if (s != CL_OK)
        return s;
    if (n > (len - 8) / 13)
        return cl_err_set(err, CL_ERR_INVALID, "result batch claims %u results in %zu bytes", n,
                          len);
    cl_result *res = calloc(n ? n : 1, sizeof(*res));
    if (res == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    size_t off = 8;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < 13) {
            free(res);
            return cl_err_set(err, CL_ERR_INVALID, "result batch truncated in result %u of %u", i, n);
        }
        res[i].task_id = get_u64(p + off);
        res[i].status = p[off + 8];
        res[i].len = get_u32(p + off + 9);
        off += 13;
        if (len - off < res[i].len) {
            free(res);
            return cl_err_set(err, CL_ERR_INVALID, "result batch truncated in result %u of %u", i, n);
        }
        res[i].data = (const char *)p + off;
        off += res[i].len;
    }
    *out = res;
    *count = n;
    return CL_OK;
}
