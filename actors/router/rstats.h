/* The router's metrics per model version: counters and fixed-bucket
 * histograms (batch sizes, queueing delays), kept by the scheduler under
 * its caller's lock and snapshotted as JSON for <p>.route.stats.
 *
 * A histogram here is what Prometheus calls one: fixed upper bounds, a
 * count per bucket, plus count, sum, min, max and the sum of squares (so a
 * reader can give Clipper's mean and std_dev exactly and estimate
 * percentiles from the buckets). Observing is a short scan over at most
 * CL__HIST_MAX bounds and a few additions: no allocation. */
#ifndef CL_ROUTER_RSTATS_H
#define CL_ROUTER_RSTATS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_subject.h"

#define CL__HIST_MAX 24

typedef struct {
    const uint64_t *bounds; /* ascending upper bounds (inclusive), static storage */
    uint32_t n_bounds;
    uint64_t counts[CL__HIST_MAX + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count, sum, min, max;
    double sumsq;
} cl__hist;

/* Batch sizes: 1, 2, 4, ..., 512 tasks. */
extern const uint64_t cl__batch_bounds[];
extern const uint32_t cl__n_batch_bounds;
/* Queueing delays, µs: 50 µs .. 10 s. */
extern const uint64_t cl__delay_bounds_us[];
extern const uint32_t cl__n_delay_bounds;

void cl__hist_init(cl__hist *h, const uint64_t *bounds, uint32_t n_bounds);
void cl__hist_observe(cl__hist *h, uint64_t v);
/* Adds h into into (same bounds). */
void cl__hist_merge(cl__hist *into, const cl__hist *h);
/* {"bounds":[..], "buckets":[cumulative counts, one per bound, then +Inf],
 *  "count", "sum", "min", "max", "sumsq"}; NULL when out of memory. */
cJSON *cl__hist_json(const cl__hist *h);

/* One model version's counters. Never freed before the scheduler, so
 * counters only grow (a Prometheus counter must not go back), even while
 * the version has no queue. */
typedef struct cl__vstats {
    struct cl__vstats *next;
    char model[CL_TOKEN_MAX + 1];
    char version[CL_TOKEN_MAX + 1];
    uint64_t batches_dispatched;
    uint64_t tasks_dispatched;
    uint64_t tasks_expired;
    uint64_t tasks_shed;
    cl__hist batch_size;
    cl__hist queueing_delay_us; /* arrival at the router to dispatch */
} cl__vstats;

#endif
