/* The frontend's bookkeeping of queries in flight:
 *
 *  - a task table: task id -> (owner, index), a slot array with a
 *    generation counter per slot, so a lookup is one array access and a
 *    late result for a finished task (stale generation) is recognised;
 *  - a deadline heap: a binary min-heap of timers embedded in their
 *    owners, each knowing its position so it can be removed when the
 *    owner completes before its deadline.
 *
 * Task ids are (generation << 32) | slot, never 0. Not thread-safe: the
 * frontend guards both with one mutex. No bus. */
#ifndef CL_FE_PENDING_H
#define CL_FE_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_status.h"

typedef struct {
    uint32_t gen;
    uint32_t next_free; /* while free: next free slot, UINT32_MAX ends */
    void *owner;        /* NULL while free */
    uint32_t idx;
    uint32_t scope;     /* who may answer it (the frontend: a tag of its model) */
} cl_fe_slot;

typedef struct {
    cl_fe_slot *slots;
    uint32_t cap;  /* slots allocated */
    uint32_t max;  /* bound on tasks in flight */
    uint32_t used;
    uint32_t free_head;
} cl_fe_table;

cl_status cl_fe_table_init(cl_fe_table *t, uint32_t max) CL_MUST_USE;
void cl_fe_table_deinit(cl_fe_table *t);
/* Room for n more tasks? */
static inline bool cl_fe_table_room(const cl_fe_table *t, size_t n)
{
    return (size_t)t->used + n <= t->max;
}
/* Gives (owner, idx) a task id. CL_ERR_TOO_LARGE when max are in flight,
 * CL_ERR_NOMEM when the table cannot grow. */
cl_status cl_fe_table_add(cl_fe_table *t, void *owner, uint32_t idx, uint32_t scope,
                          uint64_t *task_id) CL_MUST_USE;
/* Removes task_id and returns its owner (and *idx), or NULL when the id is
 * unknown or already finished. */
void *cl_fe_table_take(cl_fe_table *t, uint64_t task_id, uint32_t *idx);
/* The same, for an answer from scope: a task added with another scope is
 * left in place and NULL returned (*foreign set true). */
void *cl_fe_table_take_scoped(cl_fe_table *t, uint64_t task_id, uint32_t scope, uint32_t *idx,
                              bool *foreign);

typedef struct {
    uint64_t deadline; /* monotonic microseconds */
    size_t pos;        /* index in the heap while armed, SIZE_MAX otherwise */
} cl_fe_timer;

typedef struct {
    cl_fe_timer **v;
    size_t len;
    size_t cap;
} cl_fe_heap;

void cl_fe_heap_init(cl_fe_heap *h);
void cl_fe_heap_deinit(cl_fe_heap *h);
cl_status cl_fe_heap_push(cl_fe_heap *h, cl_fe_timer *t) CL_MUST_USE;
/* Disarms t if armed (no-op otherwise). */
void cl_fe_heap_remove(cl_fe_heap *h, cl_fe_timer *t);
/* The earliest timer, NULL when none. */
static inline cl_fe_timer *cl_fe_heap_peek(const cl_fe_heap *h)
{
    return h->len ? h->v[0] : NULL;
}

#endif
