/* The frontend's metrics, rendered as Clipper's /metrics JSON (§4.6):
 *
 *   {"counters":[{"<name>":{"count":"12"}}],
 *    "ratio_counters":[{"<name>":{"ratio":"0.25"}}],
 *    "meters":[{"<name>":{"unit":"events per second","rate":"..",
 *               "rate_1min":"..","rate_5min":"..","rate_15min":".."}}],
 *    "histograms":[{"<name>":{"unit":"microseconds","size":"..","min":"..",
 *                   "max":"..","mean":"..","std_dev":"..","p50":"..",
 *                   "p95":"..","p99":".."}}]}
 *
 * Every value is a string, as Clipper's property-tree writer made them.
 * Per app: app:<app>:{num_predictions, default_prediction_ratio,
 * prediction_throughput, prediction_latency}; per model version:
 * model:<m>:<v>:{num_predictions, prediction_throughput,
 * prediction_latency}; internal:aggregate_num_predictions. Histograms keep
 * a bounded reservoir (4096 samples, Vitter's algorithm R). A ratio with a
 * zero denominator reports "0" (Clipper reported NaN, issue #305).
 *
 * Thread-safe (one mutex). Times are monotonic microseconds. No bus. */
#ifndef CL_FE_METRICS_H
#define CL_FE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "cl_status.h"

#define CL_FE_RESERVOIR 4096

typedef struct cl_fe_metrics cl_fe_metrics;

cl_status cl_fe_metrics_new(cl_fe_metrics **out, uint64_t now_us);
void cl_fe_metrics_free(cl_fe_metrics *m);

/* One answered query of app (default or not) with its latency. */
void cl_fe_metrics_app(cl_fe_metrics *m, const char *app, uint64_t latency_us, bool is_default,
                       uint64_t now_us);
/* One answer a model version gave (model errors included). */
void cl_fe_metrics_model(cl_fe_metrics *m, const char *model, const char *version,
                         uint64_t latency_us, uint64_t now_us);
/* Makes sure app's metrics exist (so /metrics lists every app). */
void cl_fe_metrics_touch_app(cl_fe_metrics *m, const char *app, uint64_t now_us);

/* The JSON document (malloc'd), NULL on out of memory. */
char *cl_fe_metrics_json(cl_fe_metrics *m, uint64_t now_us);

/* The percentile (rank in [0,1]) of n sorted samples, interpolated between
 * neighbours (position rank * (n + 1)). 0 when n is 0. */
double cl_fe_percentile(const int64_t *sorted, size_t n, double rank);

#endif
