/* A fixed-bucket histogram, what Prometheus calls one: ascending upper
 * bounds (inclusive), a count per bucket plus one for +Inf, and the count,
 * sum, min, max and sum of squares of what was observed (so a reader can
 * give Clipper's mean and std_dev exactly and estimate percentiles from
 * the buckets). Observing is a short scan over at most CL_HIST_MAX bounds
 * and a few additions: no allocation, no lock (the caller holds its own).
 * The router keeps batch sizes and queueing delays in them, the frontend
 * its latencies. */
#ifndef CL_HIST_H
#define CL_HIST_H

#include <stdint.h>

#define CL_HIST_MAX 24

typedef struct {
    const uint64_t *bounds; /* ascending upper bounds (inclusive), static storage */
    uint32_t n_bounds;
    uint64_t counts[CL_HIST_MAX + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count, sum, min, max;
    double sumsq;
} cl_hist;

/* At most CL_HIST_MAX of the bounds are used. */
void cl_hist_init(cl_hist *h, const uint64_t *bounds, uint32_t n_bounds);
void cl_hist_observe(cl_hist *h, uint64_t v);
/* Adds h into into (same bounds). */
void cl_hist_merge(cl_hist *into, const cl_hist *h);

#endif
