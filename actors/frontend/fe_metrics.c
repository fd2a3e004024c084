/* Counters, ratios, meters and reservoir histograms (see fe_metrics.h). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cl_hist.h"
#include "fe_metrics.h"

#define TICK_US 5000000ULL /* Clipper's EWMA tick: 5 s */
#define BUCKETS 256

/* Upper bounds (µs) of the fixed latency buckets behind the Prometheus
 * histograms: 100 µs .. 10 s. */
static const uint64_t LAT_BOUNDS_US[] = {100,    250,    500,     1000,    2500,    5000,
                                         10000,  25000,  50000,   100000,  250000,  500000,
                                         1000000, 2500000, 5000000, 10000000};
#define N_LAT_BOUNDS (sizeof(LAT_BOUNDS_US) / sizeof(LAT_BOUNDS_US[0]))

static const char *const ERROR_KIND_NAMES[CL_FE_ERR_KINDS] = {
    "bad_request", "unknown_app", "too_large", "unavailable", "internal", "model_error"};

typedef struct {
    uint64_t count;
    uint64_t start_us;
    uint64_t last_tick_us;
    uint64_t uncounted;
    double ewma[3]; /* 1, 5, 15 minutes; < 0 until the first tick */
} meter;

typedef struct {
    int64_t *samples; /* CL_FE_RESERVOIR slots, allocated on first insert */
    size_t n;         /* samples held */
    uint64_t seen;    /* values offered */
    uint64_t rng;
} histogram;

/* The metrics of one app or one model version. */
typedef struct group {
    struct group *next_bucket;
    struct group *next_order;
    char *key;     /* "app:<app>" or "model:<m>:<v>" */
    char *name;    /* the app, or the model */
    char *version; /* model groups */
    bool is_app;
    uint64_t num;  /* num_predictions */
    uint64_t defaults;
    uint64_t defaults_no_model, defaults_slo; /* app groups */
    uint64_t errors[CL_FE_ERR_KINDS];          /* app groups */
    uint64_t cache_lookups, cache_hits; /* model groups */
    meter thr;
    histogram lat;
    cl_hist lat_b; /* LAT_BOUNDS_US */
} group;

struct cl_fe_metrics {
    pthread_mutex_t mu;
    group *buckets[BUCKETS];
    group *first, *last; /* creation order */
    uint64_t aggregate;
    uint64_t cache_lookups, cache_hits;
    meter model_thr; /* internal:aggregate_model_throughput */
    uint64_t errors_no_app[CL_FE_ERR_KINDS]; /* requests naming no registered app */
};

static const double EWMA_MINUTES[3] = {1, 5, 15};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void meter_init(meter *mt, uint64_t now)
{
    memset(mt, 0, sizeof(*mt));
    mt->start_us = now;
    mt->last_tick_us = now;
    for (int i = 0; i < 3; i++)
        mt->ewma[i] = -1;
}

/* Applies the ticks that have elapsed since the last one (Clipper's EWMA:
 * alpha = 1 - exp(-5 s / window), first tick sets the rate). */
static void meter_tick(meter *mt, uint64_t now)
{
    if (now < mt->last_tick_us + TICK_US)
        return;
    uint64_t ticks = (now - mt->last_tick_us) / TICK_US;
    mt->last_tick_us += ticks * TICK_US;
    if (ticks > 1000)
        ticks = 1000; /* long idle: the rates have decayed to ~0 anyway */
    for (uint64_t t = 0; t < ticks; t++) {
        double rate = (double)mt->uncounted / (TICK_US / 1e6);
        mt->uncounted = 0;
        for (int i = 0; i < 3; i++) {
            double alpha = 1.0 - exp(-(TICK_US / 1e6) / (60.0 * EWMA_MINUTES[i]));
            mt->ewma[i] = mt->ewma[i] < 0 ? rate : mt->ewma[i] + alpha * (rate - mt->ewma[i]);
        }
    }
}

static void meter_mark(meter *mt, uint64_t now)
{
    meter_tick(mt, now);
    mt->count++;
    mt->uncounted++;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void hist_insert(histogram *h, int64_t v)
{
    if (h->samples == NULL) {
        h->samples = malloc(CL_FE_RESERVOIR * sizeof(*h->samples));
        if (h->samples == NULL)
            return;
    }
    h->seen++;
    if (h->n < CL_FE_RESERVOIR) {
        h->samples[h->n++] = v;
        return;
    }
    uint64_t j = xorshift(&h->rng) % h->seen;
    if (j < CL_FE_RESERVOIR)
        h->samples[j] = v;
}

static void group_free(group *g)
{
    free(g->lat.samples);
    free(g->key);
    free(g->name);
    free(g->version);
    free(g);
}

/* The group of app (version NULL) or of model:version, made on first use. */
static group *find(cl_fe_metrics *m, const char *name, const char *version, uint64_t now)
{
    char key[600];
    bool is_app = version == NULL;
    if (is_app)
        snprintf(key, sizeof(key), "app:%s", name);
    else
        snprintf(key, sizeof(key), "model:%s:%s", name, version);
    uint64_t h = hash(key);
    group **b = &m->buckets[h % BUCKETS];
    for (group *g = *b; g != NULL; g = g->next_bucket)
        if (strcmp(g->key, key) == 0)
            return g;
    group *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->key = strdup(key);
    g->name = strdup(name);
    g->version = is_app ? NULL : strdup(version);
    if (g->key == NULL || g->name == NULL || (!is_app && g->version == NULL)) {
        group_free(g);
        return NULL;
    }
    g->is_app = is_app;
    meter_init(&g->thr, now);
    g->lat.rng = h | 1;
    cl_hist_init(&g->lat_b, LAT_BOUNDS_US, N_LAT_BOUNDS);
    g->next_bucket = *b;
    *b = g;
    if (m->last)
        m->last->next_order = g;
    else
        m->first = g;
    m->last = g;
    return g;
}

cl_status cl_fe_metrics_new(cl_fe_metrics **out, uint64_t now_us)
{
    cl_fe_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return CL_ERR_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    meter_init(&m->model_thr, now_us);
    *out = m;
    return CL_OK;
}

void cl_fe_metrics_free(cl_fe_metrics *m)
{
    if (m == NULL)
        return;
    for (group *g = m->first, *next; g != NULL; g = next) {
        next = g->next_order;
        group_free(g);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

cl_fe_error_kind cl_fe_error_kind_of_status(int status)
{
    switch (status) {
    case 400:
        return CL_FE_ERR_BAD_REQUEST;
    case 404:
        return CL_FE_ERR_UNKNOWN_APP;
    case 413:
        return CL_FE_ERR_TOO_LARGE;
    case 503:
        return CL_FE_ERR_UNAVAILABLE;
    default:
        return CL_FE_ERR_INTERNAL;
    }
}

const char *cl_fe_error_kind_name(cl_fe_error_kind kind)
{
    return (unsigned)kind < CL_FE_ERR_KINDS ? ERROR_KIND_NAMES[kind] : "internal";
}

void cl_fe_metrics_answer(cl_fe_metrics *m, const char *app, uint64_t latency_us,
                          cl_fe_outcome outcome, uint64_t now_us)
{
    pthread_mutex_lock(&m->mu);
    group *g = find(m, app, NULL, now_us);
    if (g != NULL) {
        g->num++;
        g->defaults_no_model += outcome == CL_FE_OUTCOME_NO_MODEL;
        g->defaults_slo += outcome == CL_FE_OUTCOME_SLO;
        g->defaults += outcome == CL_FE_OUTCOME_NO_MODEL || outcome == CL_FE_OUTCOME_SLO;
        g->errors[CL_FE_ERR_MODEL_ERROR] += outcome == CL_FE_OUTCOME_MODEL_ERROR;
        meter_mark(&g->thr, now_us);
        hist_insert(&g->lat, (int64_t)latency_us);
        cl_hist_observe(&g->lat_b, latency_us);
    }
    m->aggregate++;
    pthread_mutex_unlock(&m->mu);
}

void cl_fe_metrics_error(cl_fe_metrics *m, const char *app, cl_fe_error_kind kind,
                         uint64_t now_us)
{
    if ((unsigned)kind >= CL_FE_ERR_KINDS)
        kind = CL_FE_ERR_INTERNAL;
    pthread_mutex_lock(&m->mu);
    group *g = app != NULL ? find(m, app, NULL, now_us) : NULL;
    if (g != NULL)
        g->errors[kind]++;
    else
        m->errors_no_app[kind]++;
    pthread_mutex_unlock(&m->mu);
}

void cl_fe_metrics_model(cl_fe_metrics *m, const char *model, const char *version,
                         uint64_t latency_us, uint64_t now_us)
{
    pthread_mutex_lock(&m->mu);
    group *g = find(m, model, version, now_us);
    if (g != NULL) {
        g->num++;
        meter_mark(&g->thr, now_us);
        hist_insert(&g->lat, (int64_t)latency_us);
        cl_hist_observe(&g->lat_b, latency_us);
    }
    meter_mark(&m->model_thr, now_us);
    pthread_mutex_unlock(&m->mu);
}

void cl_fe_metrics_cache(cl_fe_metrics *m, const char *model, const char *version, bool hit,
                         uint64_t now_us)
{
    pthread_mutex_lock(&m->mu);
    group *g = find(m, model, version, now_us);
    if (g != NULL) {
        g->cache_lookups++;
        g->cache_hits += hit ? 1 : 0;
    }
    m->cache_lookups++;
    m->cache_hits += hit ? 1 : 0;
    pthread_mutex_unlock(&m->mu);
}

void cl_fe_metrics_touch_app(cl_fe_metrics *m, const char *app, uint64_t now_us)
{
    pthread_mutex_lock(&m->mu);
    (void)find(m, app, NULL, now_us);
    pthread_mutex_unlock(&m->mu);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

double cl_fe_percentile(const int64_t *sorted, size_t n, double rank)
{
    if (n == 0)
        return 0;
    double pos = rank * (double)(n + 1);
    if (pos <= 1)
        return (double)sorted[0];
    if (pos >= (double)n)
        return (double)sorted[n - 1];
    size_t lo = (size_t)floor(pos) - 1;
    double frac = pos - floor(pos);
    return (double)sorted[lo] + frac * (double)(sorted[lo + 1] - sorted[lo]);
}

/* Leaf values are strings, as Clipper's writer made them. */
static bool put_num(cJSON *o, const char *key, double v)
{
    char s[64];
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(s, sizeof(s), "%.0f", v);
    else
        snprintf(s, sizeof(s), "%.10g", v);
    return cJSON_AddStringToObject(o, key, s) != NULL;
}

/* Appends {"<name>": {...}} to arr and returns the inner object. */
static cJSON *entry(cJSON *arr, const char *prefix, const char *suffix)
{
    char name[700];
    snprintf(name, sizeof(name), "%s:%s", prefix, suffix);
    cJSON *wrap = cJSON_CreateObject();
    cJSON *inner = cJSON_CreateObject();
    if (wrap == NULL || inner == NULL || !cJSON_AddItemToObject(wrap, name, inner)) {
        cJSON_Delete(wrap);
        cJSON_Delete(inner);
        return NULL;
    }
    inner = cJSON_GetObjectItemCaseSensitive(wrap, name);
    if (!cJSON_AddItemToArray(arr, wrap)) {
        cJSON_Delete(wrap);
        return NULL;
    }
    return inner;
}

static bool put_meter(cJSON *arr, const char *prefix, const char *suffix, const meter *mt,
                      uint64_t now)
{
    cJSON *o = entry(arr, prefix, suffix);
    double secs = (double)(now - mt->start_us) / 1e6;
    bool ok = o != NULL && cJSON_AddStringToObject(o, "unit", "events per second") != NULL &&
              put_num(o, "rate", secs > 0 ? (double)mt->count / secs : 0);
    static const char *const names[3] = {"rate_1min", "rate_5min", "rate_15min"};
    for (int i = 0; ok && i < 3; i++)
        ok = put_num(o, names[i], mt->ewma[i] < 0 ? 0 : mt->ewma[i]);
    return ok;
}

/* The value below which a fraction rank of h's samples fall, assuming
 * they spread evenly within a bucket (as Prometheus' histogram_quantile),
 * clamped to the exact min and max. */
static double bucket_quantile(const cl_fe_bucket_hist *h, double rank)
{
    size_t n = h->n_bounds;
    double total = (double)h->cumulative[n];
    if (total <= 0)
        return 0;
    double target = rank * total;
    size_t i = 0;
    while (i < n && (double)h->cumulative[i] < target)
        i++;
    double below = i > 0 ? (double)h->cumulative[i - 1] : 0;
    double in_bucket = (double)h->cumulative[i] - below;
    double lo = i > 0 ? h->bounds[i - 1] : h->min;
    double hi = i < n ? h->bounds[i] : h->max;
    if (lo < h->min)
        lo = h->min;
    if (hi > h->max)
        hi = h->max;
    if (hi < lo)
        hi = lo;
    double v = in_bucket > 0 ? lo + (hi - lo) * (target - below) / in_bucket : hi;
    return v < h->min ? h->min : v > h->max ? h->max : v;
}

void cl_fe_bucket_summary(const cl_fe_bucket_hist *h, double out[8])
{
    double n = h->count;
    double mean = n > 0 ? h->sum / n : 0;
    double var = n > 0 ? h->sumsq / n - mean * mean : 0;
    out[0] = n;
    out[1] = n > 0 ? h->min : 0;
    out[2] = n > 0 ? h->max : 0;
    out[3] = mean;
    out[4] = var > 0 ? sqrt(var) : 0;
    out[5] = bucket_quantile(h, 0.50);
    out[6] = bucket_quantile(h, 0.95);
    out[7] = bucket_quantile(h, 0.99);
}

/* A Clipper histogram entry from a router histogram; a malformed one is
 * left out. */
static bool put_bucket_hist(cJSON *arr, const char *prefix, const char *suffix,
                            const char *unit, const cJSON *router_hist)
{
    cl_fe_bucket_hist h;
    if (!cl_fe_bucket_hist_read(router_hist, &h))
        return true;
    double v[8];
    cl_fe_bucket_summary(&h, v);
    static const char *const names[8] = {"size", "min", "max", "mean",
                                         "std_dev", "p50", "p95", "p99"};
    cJSON *o = entry(arr, prefix, suffix);
    bool ok = o != NULL && cJSON_AddStringToObject(o, "unit", unit) != NULL;
    for (int i = 0; ok && i < 8; i++)
        ok = put_num(o, names[i], v[i]);
    return ok;
}

static bool put_hist(cJSON *arr, const group *g, int64_t *scratch)
{
    cJSON *o = entry(arr, g->key, "prediction_latency");
    if (o == NULL)
        return false;
    size_t n = g->lat.n;
    double mean = 0, var = 0;
    if (n > 0) {
        memcpy(scratch, g->lat.samples, n * sizeof(*scratch));
        qsort(scratch, n, sizeof(*scratch), cmp_i64);
        for (size_t i = 0; i < n; i++)
            mean += (double)scratch[i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++)
            var += ((double)scratch[i] - mean) * ((double)scratch[i] - mean);
        var /= (double)n;
    }
    return cJSON_AddStringToObject(o, "unit", "microseconds") != NULL &&
           put_num(o, "size", (double)n) && put_num(o, "min", n ? (double)scratch[0] : 0) &&
           put_num(o, "max", n ? (double)scratch[n - 1] : 0) && put_num(o, "mean", mean) &&
           put_num(o, "std_dev", sqrt(var)) &&
           put_num(o, "p50", cl_fe_percentile(scratch, n, 0.50)) &&
           put_num(o, "p95", cl_fe_percentile(scratch, n, 0.95)) &&
           put_num(o, "p99", cl_fe_percentile(scratch, n, 0.99));
}

char *cl_fe_metrics_json(cl_fe_metrics *m, uint64_t now_us)
{
    return cl_fe_metrics_json_with(m, now_us, NULL);
}

char *cl_fe_metrics_json_with(cl_fe_metrics *m, uint64_t now_us, const cJSON *router)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *counters = cJSON_AddArrayToObject(root, "counters");
    cJSON *ratios = cJSON_AddArrayToObject(root, "ratio_counters");
    cJSON *meters = cJSON_AddArrayToObject(root, "meters");
    cJSON *hists = cJSON_AddArrayToObject(root, "histograms");
    int64_t *scratch = malloc(CL_FE_RESERVOIR * sizeof(*scratch));
    bool ok = root && counters && ratios && meters && hists && scratch;

    pthread_mutex_lock(&m->mu);
    cJSON *o = ok ? entry(counters, "internal", "aggregate_num_predictions") : NULL;
    ok = o != NULL && put_num(o, "count", (double)m->aggregate);
    o = ok ? entry(counters, "internal", "prediction_cache_lookups") : NULL;
    ok = o != NULL && put_num(o, "count", (double)m->cache_lookups);
    o = ok ? entry(ratios, "internal", "prediction_cache_hit_ratio") : NULL;
    ok = o != NULL && put_num(o, "ratio", m->cache_lookups ? (double)m->cache_hits /
                                                                  (double)m->cache_lookups
                                                            : 0);
    for (group *g = m->first; ok && g != NULL; g = g->next_order) {
        meter_tick(&g->thr, now_us);
        o = entry(counters, g->key, "num_predictions");
        ok = o != NULL && put_num(o, "count", (double)g->num);
        if (ok && g->is_app) {
            o = entry(ratios, g->key, "default_prediction_ratio");
            ok = o != NULL && put_num(o, "ratio", g->num ? (double)g->defaults / g->num : 0);
        } else if (ok) {
            o = entry(ratios, g->key, "cache_hit_ratio");
            ok = o != NULL && put_num(o, "ratio", g->cache_lookups ? (double)g->cache_hits /
                                                                         (double)g->cache_lookups
                                                                   : 0);
        }
        ok = ok && put_meter(meters, g->key, "prediction_throughput", &g->thr, now_us) &&
             put_hist(hists, g, scratch);
    }
    meter_tick(&m->model_thr, now_us);
    ok = ok && put_meter(meters, "internal", "aggregate_model_throughput", &m->model_thr, now_us);
    pthread_mutex_unlock(&m->mu);

    /* From the router: per model version batch sizes, and the time tasks
     * waited in its queues (Clipper's RPC request queueing delay). */
    const cJSON *versions = cJSON_GetObjectItemCaseSensitive(router, "versions");
    if (!cJSON_IsArray(versions))
        versions = NULL;
    const cJSON *v;
    cJSON_ArrayForEach(v, versions)
    {
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(v, "model");
        const cJSON *version = cJSON_GetObjectItemCaseSensitive(v, "version");
        if (!ok || !cJSON_IsString(model) || !cJSON_IsString(version))
            continue;
        char prefix[600];
        snprintf(prefix, sizeof(prefix), "model:%s:%s", model->valuestring, version->valuestring);
        ok = put_bucket_hist(hists, prefix, "batch_size", "queries",
                             cJSON_GetObjectItemCaseSensitive(v, "batch_size"));
    }
    if (ok && router != NULL)
        ok = put_bucket_hist(hists, "internal", "rpc_request_queueing_delay", "microseconds",
                             cJSON_GetObjectItemCaseSensitive(router, "queueing_delay_us"));

    free(scratch);
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* ---- Prometheus ------------------------------------------------------ */

static void prom_latency(cl_fe_prom *p, const char *name, const char *const *labels,
                         const cl_hist *b)
{
    double bounds[N_LAT_BOUNDS];
    uint64_t cum[N_LAT_BOUNDS + 1];
    uint64_t c = 0;
    for (size_t i = 0; i <= N_LAT_BOUNDS; i++) {
        if (i < N_LAT_BOUNDS)
            bounds[i] = (double)LAT_BOUNDS_US[i] / 1e6;
        c += b->counts[i];
        cum[i] = c;
    }
    cl_fe_prom_histogram(p, name, labels, bounds, N_LAT_BOUNDS, cum, (double)b->sum / 1e6);
}

void cl_fe_metrics_prom(cl_fe_metrics *m, cl_fe_prom *p)
{
    pthread_mutex_lock(&m->mu);
    cl_fe_prom_family(p, "clipper_queries_total", "counter",
                      "Inputs of an app answered (model output, default or model error).");
    for (const group *g = m->first; g != NULL; g = g->next_order)
        if (g->is_app)
            cl_fe_prom_sample(p, "clipper_queries_total",
                              (const char *const[]){"app", g->name, NULL}, (double)g->num);

    cl_fe_prom_family(p, "clipper_default_outputs_total", "counter",
                      "Inputs answered with the app's default output, by reason: no_model (no "
                      "linked model, version or ready replica) or slo (the latency SLO passed).");
    for (const group *g = m->first; g != NULL; g = g->next_order) {
        if (!g->is_app)
            continue;
        cl_fe_prom_sample(p, "clipper_default_outputs_total",
                          (const char *const[]){"app", g->name, "reason", "no_model", NULL},
                          (double)g->defaults_no_model);
        cl_fe_prom_sample(p, "clipper_default_outputs_total",
                          (const char *const[]){"app", g->name, "reason", "slo", NULL},
                          (double)g->defaults_slo);
    }

    cl_fe_prom_family(p, "clipper_query_errors_total", "counter",
                      "Requests answered with an error, by kind (model_error counts inputs). "
                      "app is empty when the request named no registered app.");
    for (const group *g = m->first; g != NULL; g = g->next_order) {
        if (!g->is_app)
            continue;
        for (int k = 0; k < CL_FE_ERR_KINDS; k++)
            if (g->errors[k] > 0)
                cl_fe_prom_sample(p, "clipper_query_errors_total",
                                  (const char *const[]){"app", g->name, "kind",
                                                        ERROR_KIND_NAMES[k], NULL},
                                  (double)g->errors[k]);
    }
    for (int k = 0; k < CL_FE_ERR_KINDS; k++)
        if (m->errors_no_app[k] > 0)
            cl_fe_prom_sample(p, "clipper_query_errors_total",
                              (const char *const[]){"app", "", "kind", ERROR_KIND_NAMES[k], NULL},
                              (double)m->errors_no_app[k]);

    cl_fe_prom_family(p, "clipper_query_latency_seconds", "histogram",
                      "Time from a query's arrival at the frontend to its answer.");
    for (const group *g = m->first; g != NULL; g = g->next_order)
        if (g->is_app)
            prom_latency(p, "clipper_query_latency_seconds",
                         (const char *const[]){"app", g->name, NULL}, &g->lat_b);

    cl_fe_prom_family(p, "clipper_model_predictions_total", "counter",
                      "Answers a model version gave (outputs and model errors).");
    for (const group *g = m->first; g != NULL; g = g->next_order)
        if (!g->is_app)
            cl_fe_prom_sample(p, "clipper_model_predictions_total",
                              (const char *const[]){"model", g->name, "version", g->version, NULL},
                              (double)g->num);

    cl_fe_prom_family(p, "clipper_model_latency_seconds", "histogram",
                      "Latency of the queries a model version answered, at the frontend.");
    for (const group *g = m->first; g != NULL; g = g->next_order)
        if (!g->is_app)
            prom_latency(p, "clipper_model_latency_seconds",
                         (const char *const[]){"model", g->name, "version", g->version, NULL},
                         &g->lat_b);

    cl_fe_prom_family(p, "clipper_cache_lookups_total", "counter",
                      "Prediction cache lookups for a model version.");
    for (const group *g = m->first; g != NULL; g = g->next_order)
        if (!g->is_app)
            cl_fe_prom_sample(p, "clipper_cache_lookups_total",
                              (const char *const[]){"model", g->name, "version", g->version, NULL},
                              (double)g->cache_lookups);
    cl_fe_prom_family(p, "clipper_cache_hits_total", "counter",
                      "Prediction cache lookups that found an output (or one in flight).");
    for (const group *g = m->first; g != NULL; g = g->next_order)
        if (!g->is_app)
            cl_fe_prom_sample(p, "clipper_cache_hits_total",
                              (const char *const[]){"model", g->name, "version", g->version, NULL},
                              (double)g->cache_hits);
    pthread_mutex_unlock(&m->mu);
}
