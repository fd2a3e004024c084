/* An earliest-deadline-first queue: a binary min-heap of opaque items keyed
 * by an absolute deadline. Items with equal deadlines come out in the order
 * they went in (a sequence number breaks ties), so a burst of tasks with the
 * same deadline keeps its arrival order.
 *
 * Not thread-safe: the router owns each queue from its one thread. The heap
 * never frees or touches its items. */
#ifndef CL_EDF_H
#define CL_EDF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_status.h"

typedef struct {
    uint64_t deadline;
    uint64_t seq;
    void *item;
} cl_edf_entry;

typedef struct {
    cl_edf_entry *v;
    size_t len;
    size_t cap;
    uint64_t next_seq;
} cl_edf;

void cl_edf_init(cl_edf *q);
/* Frees the heap's storage, not the items. */
void cl_edf_deinit(cl_edf *q);

cl_status cl_edf_push(cl_edf *q, uint64_t deadline, void *item) CL_MUST_USE;
/* Removes the earliest entry into *out; false when empty. out may be NULL. */
bool cl_edf_pop(cl_edf *q, cl_edf_entry *out);
/* The earliest entry without removing it, or NULL when empty. Valid until
 * the next push or pop. */
const cl_edf_entry *cl_edf_peek(const cl_edf *q);

static inline size_t cl_edf_len(const cl_edf *q)
{
    return q->len;
}

#endif
