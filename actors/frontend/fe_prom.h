/* The Prometheus text exposition format (version 0.0.4), written into a
 * buffer: families (# HELP, # TYPE), samples with escaped label values,
 * and histograms (cumulative _bucket lines ending in le="+Inf", _sum,
 * _count). Also renders the router's metrics snapshot (<p>.route.stats,
 * see rsched.h) as clipper_* families. Pure: no bus, no threads.
 *
 * A family's samples must follow its # TYPE line without another family in
 * between, so callers write one family at a time. Errors (out of memory)
 * stick: cl_fe_prom_take then returns NULL. */
#ifndef CL_FE_PROM_H
#define CL_FE_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_buf.h"

#define CL_FE_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct {
    cl_buf buf;
    bool failed;
} cl_fe_prom;

void cl_fe_prom_init(cl_fe_prom *p);
void cl_fe_prom_deinit(cl_fe_prom *p);
/* The text (malloc'd, NUL-terminated), or NULL after an error. p is empty
 * afterwards. */
char *cl_fe_prom_take(cl_fe_prom *p);

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void cl_fe_prom_family(cl_fe_prom *p, const char *name, const char *type, const char *help);
/* name{k="v",...} value. labels: key, value, key, value, ..., NULL (NULL
 * itself for none). Values are escaped (\\, \", \n). */
void cl_fe_prom_sample(cl_fe_prom *p, const char *name, const char *const *labels, double value);
/* name_bucket{...,le="b"} for each bound (cumulative[i] samples <= bounds[i]),
 * name_bucket{...,le="+Inf"} cumulative[n_bounds], name_sum, name_count
 * (= cumulative[n_bounds]). */
void cl_fe_prom_histogram(cl_fe_prom *p, const char *name, const char *const *labels,
                          const double *bounds, size_t n_bounds, const uint64_t *cumulative,
                          double sum);
/* Appends v escaped as a label value (without the quotes). */
cl_status cl_fe_prom_escape(cl_buf *b, const char *v) CL_MUST_USE;
/* A sample value: integers without a fraction, others in the shortest
 * form that reads back the same, +Inf, -Inf, NaN. out: 32 bytes. */
void cl_fe_prom_number(char out[32], double v);

/* The router's families from its snapshot: clipper_router_up (0 when
 * router is NULL, and then nothing else), and per model version
 * clipper_queue_depth, clipper_replicas_live, clipper_replicas_busy,
 * clipper_batches_dispatched_total, clipper_tasks_dispatched_total,
 * clipper_tasks_expired_total, clipper_tasks_shed_total, clipper_batch_size
 * and clipper_router_queueing_delay_seconds (histograms). Entries of a
 * shape this build does not understand are skipped. */
void cl_fe_prom_router(cl_fe_prom *p, const cJSON *router);

/* A histogram as the router sends it ({"bounds","buckets" (cumulative,
 * one more than bounds), "count","sum","min","max","sumsq"}), checked:
 * false when h is not one (or has more than CL_FE_PROM_MAX_BOUNDS bounds). */
#define CL_FE_PROM_MAX_BOUNDS 64
typedef struct {
    size_t n_bounds;
    double bounds[CL_FE_PROM_MAX_BOUNDS];
    uint64_t cumulative[CL_FE_PROM_MAX_BOUNDS + 1];
    double count, sum, min, max, sumsq;
} cl_fe_bucket_hist;
bool cl_fe_bucket_hist_read(const cJSON *h, cl_fe_bucket_hist *out);

#endif
