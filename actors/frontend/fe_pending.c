/* Task table and deadline heap (see fe_pending.h). */
#include <stdlib.h>
#include <string.h>

#include "fe_pending.h"

#define FIRST_CAP 1024u
#define NONE UINT32_MAX

cl_status cl_fe_table_init(cl_fe_table *t, uint32_t max)
{
    memset(t, 0, sizeof(*t));
    t->max = max ? max : 1;
    t->free_head = NONE;
    return CL_OK;
}

void cl_fe_table_deinit(cl_fe_table *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

static CL_MUST_USE cl_status grow(cl_fe_table *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : FIRST_CAP;
    if (ncap > t->max)
        ncap = t->max;
    if (ncap <= t->cap)
        return CL_ERR_TOO_LARGE;
    cl_fe_slot *s = realloc(t->slots, (size_t)ncap * sizeof(*s));
    if (s == NULL)
        return CL_ERR_NOMEM;
    /* Thread the new slots onto the free list, lowest index first. */
    for (uint32_t i = ncap; i-- > t->cap;) {
        s[i] = (cl_fe_slot){.gen = 1, .next_free = t->free_head, .owner = NULL, .idx = 0};
        t->free_head = i;
    }
    t->slots = s;
    t->cap = ncap;
    return CL_OK;
}

cl_status cl_fe_table_add(cl_fe_table *t, void *owner, uint32_t idx, uint32_t scope,
                          uint64_t *task_id)
{
    if (t->used >= t->max)
        return CL_ERR_TOO_LARGE;
    if (t->free_head == NONE) {
        cl_status s = grow(t);
        if (s != CL_OK)
            return s;
    }
    uint32_t i = t->free_head;
    cl_fe_slot *s = &t->slots[i];
    t->free_head = s->next_free;
    s->owner = owner;
    s->idx = idx;
    s->scope = scope;
    t->used++;
    *task_id = ((uint64_t)s->gen << 32) | i;
    return CL_OK;
}

static void *take(cl_fe_table *t, uint64_t task_id, bool scoped, uint32_t scope, uint32_t *idx,
                  bool *foreign)
{
    uint32_t i = (uint32_t)task_id;
    uint32_t gen = (uint32_t)(task_id >> 32);
    if (i >= t->cap)
        return NULL;
    cl_fe_slot *s = &t->slots[i];
    if (s->owner == NULL || s->gen != gen)
        return NULL;
    if (scoped && s->scope != scope) {
        *foreign = true;
        return NULL;
    }
    void *owner = s->owner;
    if (idx)
        *idx = s->idx;
    s->owner = NULL;
    s->gen = s->gen == UINT32_MAX ? 1 : s->gen + 1; /* never 0: ids stay non-zero */
    s->next_free = t->free_head;
    t->free_head = i;
    t->used--;
    return owner;
}

void *cl_fe_table_take(cl_fe_table *t, uint64_t task_id, uint32_t *idx)
{
    return take(t, task_id, false, 0, idx, NULL);
}

void *cl_fe_table_take_scoped(cl_fe_table *t, uint64_t task_id, uint32_t scope, uint32_t *idx,
                              bool *foreign)
{
    *foreign = false;
    return take(t, task_id, true, scope, idx, foreign);
}

void cl_fe_heap_init(cl_fe_heap *h)
{
    memset(h, 0, sizeof(*h));
}

void cl_fe_heap_deinit(cl_fe_heap *h)
{
    for (size_t i = 0; i < h->len; i++)
        h->v[i]->pos = SIZE_MAX;
    free(h->v);
    memset(h, 0, sizeof(*h));
}

static void place(cl_fe_heap *h, size_t i, cl_fe_timer *t)
{
    h->v[i] = t;
    t->pos = i;
}

static void sift_up(cl_fe_heap *h, size_t i)
{
    cl_fe_timer *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->deadline <= t->deadline)
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(cl_fe_heap *h, size_t i)
{
    cl_fe_timer *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && h->v[c + 1]->deadline < h->v[c]->deadline)
            c++;
        if (t->deadline <= h->v[c]->deadline)
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, t);
}

cl_status cl_fe_heap_push(cl_fe_heap *h, cl_fe_timer *t)
{
    if (h->len == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 256;
        cl_fe_timer **v = realloc(h->v, ncap * sizeof(*v));
        if (v == NULL)
            return CL_ERR_NOMEM;
        h->v = v;
        h->cap = ncap;
    }
    h->v[h->len] = t;
    t->pos = h->len++;
    sift_up(h, t->pos);
    return CL_OK;
}

void cl_fe_heap_remove(cl_fe_heap *h, cl_fe_timer *t)
{
    size_t i = t->pos;
    if (i >= h->len || h->v[i] != t)
        return;
    t->pos = SIZE_MAX;
    cl_fe_timer *last = h->v[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    if (i > 0 && h->v[(i - 1) / 2]->deadline > last->deadline)
        sift_up(h, i);
    else
        sift_down(h, i);
}
