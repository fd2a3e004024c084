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
 * prediction_latency, cache_hit_ratio, batch_size}; internal:
 * {aggregate_num_predictions, aggregate_model_throughput,
 * prediction_cache_lookups, prediction_cache_hit_ratio,
 * rpc_request_queueing_delay}. batch_size and rpc_request_queueing_delay
 * come from the router's snapshot (<p>.route.stats) when one is given;
 * their percentiles are estimated from its fixed buckets (linear within a
 * bucket, clamped to the exact min and max; mean and std_dev are exact).
 * Latency histograms keep a bounded reservoir (4096 samples, Vitter's
 * algorithm R). A ratio with a zero denominator reports "0" (Clipper
 * reported NaN, issue #305).
 *
 * The same counters, plus fixed-bucket latency histograms (real counts,
 * not the reservoir), defaults by reason and errors by kind, are rendered
 * in the Prometheus text format by cl_fe_metrics_prom.
 *
 * Thread-safe (one mutex). Times are monotonic microseconds. No bus. */
#ifndef CL_FE_METRICS_H
#define CL_FE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_status.h"
#include "fe_prom.h"

#define CL_FE_RESERVOIR 4096

typedef struct cl_fe_metrics cl_fe_metrics;

cl_status cl_fe_metrics_new(cl_fe_metrics **out, uint64_t now_us) CL_MUST_USE;
void cl_fe_metrics_free(cl_fe_metrics *m);

/* How one input of a query was answered. */
typedef enum {
    CL_FE_OUTCOME_OUTPUT,      /* the model's output */
    CL_FE_OUTCOME_NO_MODEL,    /* default: no model, version or replica */
    CL_FE_OUTCOME_SLO,         /* default: the latency SLO passed */
    CL_FE_OUTCOME_MODEL_ERROR, /* the model raised or returned the wrong thing */
} cl_fe_outcome;

/* Why a request got an error reply instead of answers. */
typedef enum {
    CL_FE_ERR_BAD_REQUEST, /* 400: a body or version Clipper refuses */
    CL_FE_ERR_UNKNOWN_APP, /* 404 */
    CL_FE_ERR_TOO_LARGE,   /* 413 */
    CL_FE_ERR_UNAVAILABLE, /* 503: too many in flight, shutting down */
    CL_FE_ERR_INTERNAL,    /* 500 */
    CL_FE_ERR_MODEL_ERROR, /* an input the model failed (counted per input) */
    CL_FE_ERR_KINDS
} cl_fe_error_kind;

/* The kind of an error reply's HTTP status. */
cl_fe_error_kind cl_fe_error_kind_of_status(int status);
/* "bad_request", "unknown_app", ... (the Prometheus label value). */
const char *cl_fe_error_kind_name(cl_fe_error_kind kind);

/* One answered input of app with its query's latency. */
void cl_fe_metrics_answer(cl_fe_metrics *m, const char *app, uint64_t latency_us,
                          cl_fe_outcome outcome, uint64_t now_us);
/* One request of app that got an error reply (app NULL when it names no
 * registered app: an unbounded set of names must not become labels). */
void cl_fe_metrics_error(cl_fe_metrics *m, const char *app, cl_fe_error_kind kind,
                         uint64_t now_us);
/* One answer a model version gave (model errors included). */
void cl_fe_metrics_model(cl_fe_metrics *m, const char *model, const char *version,
                         uint64_t latency_us, uint64_t now_us);
/* One prediction-cache lookup for a model version's input: a hit (a
 * stored output, or a model call already in flight for the same input) or
 * a miss. Feeds internal:prediction_cache_lookups,
 * internal:prediction_cache_hit_ratio and model:<m>:<v>:cache_hit_ratio. */
void cl_fe_metrics_cache(cl_fe_metrics *m, const char *model, const char *version, bool hit,
                         uint64_t now_us);
/* Makes sure app's metrics exist (so /metrics lists every app). */
void cl_fe_metrics_touch_app(cl_fe_metrics *m, const char *app, uint64_t now_us);

/* The JSON document (malloc'd), NULL on out of memory. */
char *cl_fe_metrics_json(cl_fe_metrics *m, uint64_t now_us);
/* The same with the router's snapshot (NULL: none answered), which adds
 * model:<m>:<v>:batch_size and internal:rpc_request_queueing_delay. */
char *cl_fe_metrics_json_with(cl_fe_metrics *m, uint64_t now_us, const cJSON *router);
/* The frontend's Prometheus families: clipper_queries_total{app},
 * clipper_default_outputs_total{app,reason}, clipper_query_errors_total
 * {app,kind}, clipper_query_latency_seconds{app} (histogram),
 * clipper_model_predictions_total{model,version},
 * clipper_model_latency_seconds{model,version} (histogram),
 * clipper_cache_lookups_total / clipper_cache_hits_total{model,version}. */
void cl_fe_metrics_prom(cl_fe_metrics *m, cl_fe_prom *p);

/* Clipper's histogram fields estimated from a router histogram:
 * size, min, max, mean, std_dev, p50, p95, p99 (in the histogram's unit). */
void cl_fe_bucket_summary(const cl_fe_bucket_hist *h, double out[8]);

/* The percentile (rank in [0,1]) of n sorted samples, interpolated between
 * neighbours (position rank * (n + 1)). 0 when n is 0. */
double cl_fe_percentile(const int64_t *sorted, size_t n, double rank);

#endif
