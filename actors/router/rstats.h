/* The router's metrics per model version: counters and fixed-bucket
 * histograms (cl_hist: batch sizes, queueing delays), kept by the
 * scheduler under its caller's lock and snapshotted as JSON for
 * <p>.route.stats. */
#ifndef CL_ROUTER_RSTATS_H
#define CL_ROUTER_RSTATS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_hist.h"
#include "cl_subject.h"

/* Batch sizes: 1, 2, 4, ..., 512 tasks. */
extern const uint64_t cl__batch_bounds[];
extern const uint32_t cl__n_batch_bounds;
/* Queueing delays, µs: 50 µs .. 10 s. */
extern const uint64_t cl__delay_bounds_us[];
extern const uint32_t cl__n_delay_bounds;

/* {"bounds":[..], "buckets":[cumulative counts, one per bound, then +Inf],
 *  "count", "sum", "min", "max", "sumsq"}; NULL when out of memory. */
cJSON *cl__hist_json(const cl_hist *h);

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
    cl_hist batch_size;
    cl_hist queueing_delay_us; /* arrival at the router to dispatch */
} cl__vstats;

#endif
