/* Binary min-heap ordered by (deadline, arrival sequence). See edf.h. */
#include <stdlib.h>

#include "edf.h"

void cl_edf_init(cl_edf *q)
{
    q->v = NULL;
    q->len = 0;
    q->cap = 0;
    q->next_seq = 0;
}

void cl_edf_deinit(cl_edf *q)
{
    free(q->v);
    cl_edf_init(q);
}

static bool before(const cl_edf_entry *a, const cl_edf_entry *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void sift_up(cl_edf *q, size_t i)
{
    cl_edf_entry e = q->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&e, &q->v[parent]))
            break;
        q->v[i] = q->v[parent];
        i = parent;
    }
    q->v[i] = e;
}

static void sift_down(cl_edf *q, size_t i)
{
    cl_edf_entry e = q->v[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->len)
            break;
        if (child + 1 < q->len && before(&q->v[child + 1], &q->v[child]))
            child++;
        if (!before(&q->v[child], &e))
            break;
        q->v[i] = q->v[child];
        i = child;
    }
    q->v[i] = e;
}

cl_status cl_edf_push(cl_edf *q, uint64_t deadline, void *item)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        cl_edf_entry *v = realloc(q->v, cap * sizeof(*v));
        if (v == NULL)
            return CL_ERR_NOMEM;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->len] = (cl_edf_entry){.deadline = deadline, .seq = q->next_seq++, .item = item};
    sift_up(q, q->len++);
    return CL_OK;
}

bool cl_edf_pop(cl_edf *q, cl_edf_entry *out)
{
    if (q->len == 0)
        return false;
    if (out != NULL)
        *out = q->v[0];
    q->v[0] = q->v[--q->len];
    if (q->len > 0)
        sift_down(q, 0);
    return true;
}

const cl_edf_entry *cl_edf_peek(const cl_edf *q)
{
    return q->len > 0 ? &q->v[0] : NULL;
}
