/* Result batches of one task batch, grouped per reply subject (one per
 * frontend) and split below the bus' max payload. Pure data: publishing is
 * the caller's. */
#include <stdlib.h>
#include <string.h>

#include "cl_subject.h"
#include "cl_wire.h"
#include "replica_internal.h"

/* CLR1 framing: 4-byte magic + u32 count, then per result
 * u64 task_id + u8 status + u32 len + bytes. */
#define BATCH_HEADER 8u
#define RESULT_HEADER 13u

void cl__replies_init(cl__replies *r, size_t max_payload)
{
    memset(r, 0, sizeof(*r));
    r->max_payload = max_payload;
}

void cl__replies_deinit(cl__replies *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->cap; i++)
        cl_buf_deinit(&r->items[i].buf);
    free(r->items);
    memset(r, 0, sizeof(*r));
}

void cl__replies_reset(cl__replies *r)
{
    for (size_t i = 0; i < r->count; i++)
        cl_buf_reset(&r->items[i].buf);
    r->count = 0;
}

/* The open batch for subject (the last one with that subject), or NULL. */
static cl__reply *find(cl__replies *r, const char *subject)
{
    for (size_t i = r->count; i-- > 0;)
        if (strcmp(r->items[i].subject, subject) == 0)
            return &r->items[i];
    return NULL;
}

static CL_MUST_USE cl_status open_batch(cl__replies *r, const char *subject, cl__reply **out)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        cl__reply *items = realloc(r->items, cap * sizeof(*items));
        if (!items)
            return CL_ERR_NOMEM;
        for (size_t i = r->cap; i < cap; i++)
            cl_buf_init(&items[i].buf);
        r->items = items;
        r->cap = cap;
    }
    cl__reply *b = &r->items[r->count];
    cl_buf_reset(&b->buf);
    cl_status st = cl_wire_results_begin(&b->buf);
    if (st != CL_OK)
        return st;
    strcpy(b->subject, subject);
    r->count++;
    *out = b;
    return CL_OK;
}

cl_status cl__replies_add(cl__replies *r, const char *reply, size_t reply_len, uint64_t task_id,
                          uint8_t status, const void *data, uint32_t len)
{
    char subject[CL_SUBJECT_MAX];
    /* The decoder checked it; checked again because publishing to a subject
     * with CR/LF or spaces would break the replica's connection. */
    if (!cl_subj_valid_publish(reply, reply_len, NULL))
        return CL_ERR_INVALID;
    memcpy(subject, reply, reply_len);
    subject[reply_len] = '\0';

    char too_big[160];
    if (r->max_payload && BATCH_HEADER + RESULT_HEADER + (size_t)len > r->max_payload) {
        int n = snprintf(too_big, sizeof(too_big),
                         "Model output of %u bytes is larger than the bus' max payload "
                         "(%zu bytes)",
                         (unsigned)len, r->max_payload);
        status = CL_RESULT_MODEL_ERROR;
        data = too_big;
        len = (uint32_t)n;
    }

    cl__reply *b = find(r, subject);
    if (b && r->max_payload && b->buf.len + RESULT_HEADER + len > r->max_payload)
        b = NULL; /* full: start another batch for the same subject */
    if (!b) {
        cl_status st = open_batch(r, subject, &b);
        if (st != CL_OK)
            return st;
    }
    return cl_wire_results_add(&b->buf, task_id, status, data, len);
}
