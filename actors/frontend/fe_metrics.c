/* Counters, ratios, meters and reservoir histograms (see fe_metrics.h). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fe_metrics.h"

#define TICK_US 5000000ULL /* Clipper's EWMA tick: 5 s */
#define BUCKETS 256

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
    bool is_app;
    uint64_t num;  /* num_predictions */
    uint64_t defaults;
    meter thr;
    histogram lat;
} group;

struct cl_fe_metrics {
    pthread_mutex_t mu;
    group *buckets[BUCKETS];
    group *first, *last; /* creation order */
    uint64_t aggregate;
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

static group *find(cl_fe_metrics *m, const char *key, bool is_app, uint64_t now)
{
    uint64_t h = hash(key);
    group **b = &m->buckets[h % BUCKETS];
    for (group *g = *b; g != NULL; g = g->next_bucket)
        if (strcmp(g->key, key) == 0)
            return g;
    group *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->key = strdup(key)) == NULL) {
        free(g);
        return NULL;
    }
    g->is_app = is_app;
    meter_init(&g->thr, now);
    g->lat.rng = h | 1;
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
    (void)now_us;
    cl_fe_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return CL_ERR_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return CL_OK;
}

void cl_fe_metrics_free(cl_fe_metrics *m)
{
    if (m == NULL)
        return;
    for (group *g = m->first, *next; g != NULL; g = next) {
        next = g->next_order;
        free(g->lat.samples);
        free(g->key);
        free(g);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void app_key(char *out, size_t size, const char *app)
{
    snprintf(out, size, "app:%s", app);
}

void cl_fe_metrics_app(cl_fe_metrics *m, const char *app, uint64_t latency_us, bool is_default,
                       uint64_t now_us)
{
    char key[600];
    app_key(key, sizeof(key), app);
    pthread_mutex_lock(&m->mu);
    group *g = find(m, key, true, now_us);
    if (g != NULL) {
        g->num++;
        g->defaults += is_default ? 1 : 0;
        meter_mark(&g->thr, now_us);
        hist_insert(&g->lat, (int64_t)latency_us);
    }
    m->aggregate++;
    pthread_mutex_unlock(&m->mu);
}

void cl_fe_metrics_model(cl_fe_metrics *m, const char *model, const char *version,
                         uint64_t latency_us, uint64_t now_us)
{
    char key[600];
    snprintf(key, sizeof(key), "model:%s:%s", model, version);
    pthread_mutex_lock(&m->mu);
    group *g = find(m, key, false, now_us);
    if (g != NULL) {
        g->num++;
        meter_mark(&g->thr, now_us);
        hist_insert(&g->lat, (int64_t)latency_us);
    }
    pthread_mutex_unlock(&m->mu);
}

void cl_fe_metrics_touch_app(cl_fe_metrics *m, const char *app, uint64_t now_us)
{
    char key[600];
    app_key(key, sizeof(key), app);
    pthread_mutex_lock(&m->mu);
    (void)find(m, key, true, now_us);
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

static bool put_meter(cJSON *arr, const group *g, uint64_t now)
{
    cJSON *o = entry(arr, g->key, "prediction_throughput");
    double secs = (double)(now - g->thr.start_us) / 1e6;
    bool ok = o != NULL && cJSON_AddStringToObject(o, "unit", "events per second") != NULL &&
              put_num(o, "rate", secs > 0 ? (double)g->thr.count / secs : 0);
    static const char *const names[3] = {"rate_1min", "rate_5min", "rate_15min"};
    for (int i = 0; ok && i < 3; i++)
        ok = put_num(o, names[i], g->thr.ewma[i] < 0 ? 0 : g->thr.ewma[i]);
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
    for (group *g = m->first; ok && g != NULL; g = g->next_order) {
        meter_tick(&g->thr, now_us);
        o = entry(counters, g->key, "num_predictions");
        ok = o != NULL && put_num(o, "count", (double)g->num);
        if (ok && g->is_app) {
            o = entry(ratios, g->key, "default_prediction_ratio");
            ok = o != NULL && put_num(o, "ratio", g->num ? (double)g->defaults / g->num : 0);
        }
        ok = ok && put_meter(meters, g, now_us) && put_hist(hists, g, scratch);
    }
    pthread_mutex_unlock(&m->mu);

    free(scratch);
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}
