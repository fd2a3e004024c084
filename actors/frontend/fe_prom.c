/* Prometheus text exposition (see fe_prom.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_prom.h"

void cl_fe_prom_init(cl_fe_prom *p)
{
    cl_buf_init(&p->buf);
    p->failed = false;
}

void cl_fe_prom_deinit(cl_fe_prom *p)
{
    cl_buf_deinit(&p->buf);
}

char *cl_fe_prom_take(cl_fe_prom *p)
{
    if (!p->failed && cl_buf_terminate(&p->buf) != CL_OK)
        p->failed = true;
    if (p->failed) {
        cl_buf_deinit(&p->buf);
        return NULL;
    }
    char *s = cl_buf_steal(&p->buf, NULL);
    if (s == NULL)
        s = strdup("");
    return s;
}

static void put(cl_fe_prom *p, const char *s)
{
    if (!p->failed && cl_buf_append_str(&p->buf, s) != CL_OK)
        p->failed = true;
}

void cl_fe_prom_number(char out[32], double v)
{
    if (isnan(v)) {
        strcpy(out, "NaN");
    } else if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, 32, "%.0f", v);
    } else {
        snprintf(out, 32, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, 32, "%.17g", v);
    }
}

cl_status cl_fe_prom_escape(cl_buf *b, const char *v)
{
    cl_status s = CL_OK;
    for (const char *c = v; s == CL_OK && *c; c++) {
        if (*c == '\\')
            s = cl_buf_append(b, "\\\\", 2);
        else if (*c == '"')
            s = cl_buf_append(b, "\\\"", 2);
        else if (*c == '\n')
            s = cl_buf_append(b, "\\n", 2);
        else
            s = cl_buf_append(b, c, 1);
    }
    return s;
}

void cl_fe_prom_family(cl_fe_prom *p, const char *name, const char *type, const char *help)
{
    put(p, "# HELP ");
    put(p, name);
    put(p, " ");
    /* HELP text escapes only backslash and newline. */
    for (const char *c = help; !p->failed && *c; c++) {
        if (*c == '\\')
            put(p, "\\\\");
        else if (*c == '\n')
            put(p, "\\n");
        else if (cl_buf_append(&p->buf, c, 1) != CL_OK)
            p->failed = true;
    }
    put(p, "\n# TYPE ");
    put(p, name);
    put(p, " ");
    put(p, type);
    put(p, "\n");
}

/* name{labels[,le="le"]} value */
static void line(cl_fe_prom *p, const char *name, const char *suffix, const char *const *labels,
                 const char *le, double value)
{
    put(p, name);
    put(p, suffix);
    bool any = (labels != NULL && labels[0] != NULL) || le != NULL;
    if (any) {
        put(p, "{");
        bool first = true;
        for (size_t i = 0; labels != NULL && labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
            put(p, first ? "" : ",");
            put(p, labels[i]);
            put(p, "=\"");
            if (!p->failed && cl_fe_prom_escape(&p->buf, labels[i + 1]) != CL_OK)
                p->failed = true;
            put(p, "\"");
            first = false;
        }
        if (le != NULL) {
            put(p, first ? "le=\"" : ",le=\"");
            put(p, le);
            put(p, "\"");
        }
        put(p, "}");
    }
    char num[32];
    cl_fe_prom_number(num, value);
    put(p, " ");
    put(p, num);
    put(p, "\n");
}

void cl_fe_prom_sample(cl_fe_prom *p, const char *name, const char *const *labels, double value)
{
    line(p, name, "", labels, NULL, value);
}

void cl_fe_prom_histogram(cl_fe_prom *p, const char *name, const char *const *labels,
                          const double *bounds, size_t n_bounds, const uint64_t *cumulative,
                          double sum)
{
    char le[32];
    for (size_t i = 0; i < n_bounds; i++) {
        cl_fe_prom_number(le, bounds[i]);
        line(p, name, "_bucket", labels, le, (double)cumulative[i]);
    }
    line(p, name, "_bucket", labels, "+Inf", (double)cumulative[n_bounds]);
    line(p, name, "_sum", labels, NULL, sum);
    line(p, name, "_count", labels, NULL, (double)cumulative[n_bounds]);
}

static bool get_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return false;
    *out = v->valuedouble;
    return true;
}

bool cl_fe_bucket_hist_read(const cJSON *h, cl_fe_bucket_hist *out)
{
    const cJSON *bounds = cJSON_GetObjectItemCaseSensitive(h, "bounds");
    const cJSON *buckets = cJSON_GetObjectItemCaseSensitive(h, "buckets");
    if (!cJSON_IsArray(bounds) || !cJSON_IsArray(buckets))
        return false;
    int nb = cJSON_GetArraySize(bounds);
    if (nb < 0 || nb > CL_FE_PROM_MAX_BOUNDS || cJSON_GetArraySize(buckets) != nb + 1)
        return false;
    out->n_bounds = (size_t)nb;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, bounds)
    {
        if (!cJSON_IsNumber(v) || (i > 0 && v->valuedouble <= out->bounds[i - 1]))
            return false;
        out->bounds[i++] = v->valuedouble;
    }
    i = 0;
    cJSON_ArrayForEach(v, buckets)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 ||
            (i > 0 && v->valuedouble < (double)out->cumulative[i - 1]))
            return false;
        out->cumulative[i++] = (uint64_t)v->valuedouble;
    }
    if (!get_num(h, "count", &out->count) || !get_num(h, "sum", &out->sum) ||
        !get_num(h, "min", &out->min) || !get_num(h, "max", &out->max))
        return false;
    if (!get_num(h, "sumsq", &out->sumsq))
        out->sumsq = 0;
    return out->count == (double)out->cumulative[nb];
}

typedef struct {
    const char *key;  /* in each version's object */
    const char *name; /* the family */
    const char *type;
    const char *help;
} router_family;

static const router_family FAMILIES[] = {
    {"queue_depth", "clipper_queue_depth", "gauge",
     "Tasks queued at the router for a model version, waiting for a replica."},
    {"replicas_live", "clipper_replicas_live", "gauge",
     "Replicas of a model version that are ready (heartbeat or pull)."},
    {"replicas_busy", "clipper_replicas_busy", "gauge",
     "Replicas of a model version with a batch in flight."},
    {"batches_dispatched", "clipper_batches_dispatched_total", "counter",
     "Batches the router sent to replicas of a model version."},
    {"tasks_dispatched", "clipper_tasks_dispatched_total", "counter",
     "Tasks the router sent to replicas of a model version."},
    {"tasks_expired", "clipper_tasks_expired_total", "counter",
     "Tasks whose deadline passed while queued at the router."},
    {"tasks_shed", "clipper_tasks_shed_total", "counter",
     "Tasks answered at once because their deadline would pass before a batch could "
     "come back (shed under load)."},
};

static bool version_labels(const cJSON *v, const char *labels[5])
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(v, "model");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(v, "version");
    if (!cJSON_IsString(model) || !cJSON_IsString(version))
        return false;
    labels[0] = "model";
    labels[1] = model->valuestring;
    labels[2] = "version";
    labels[3] = version->valuestring;
    labels[4] = NULL;
    return true;
}

static void router_hist(cl_fe_prom *p, const cJSON *versions, const char *key, const char *name,
                        const char *help, double divisor)
{
    cl_fe_prom_family(p, name, "histogram", help);
    const cJSON *v;
    cJSON_ArrayForEach(v, versions)
    {
        const char *labels[5];
        cl_fe_bucket_hist h;
        if (!version_labels(v, labels) ||
            !cl_fe_bucket_hist_read(cJSON_GetObjectItemCaseSensitive(v, key), &h))
            continue;
        for (size_t i = 0; i < h.n_bounds; i++)
            h.bounds[i] /= divisor; /* division: 100 / 1e6 is 0.0001 exactly, 100 * 1e-6 is not */
        cl_fe_prom_histogram(p, name, labels, h.bounds, h.n_bounds, h.cumulative, h.sum / divisor);
    }
}

void cl_fe_prom_router(cl_fe_prom *p, const cJSON *router)
{
    cl_fe_prom_family(p, "clipper_router_up", "gauge",
                      "1 when a router answered this scrape's stats request, else 0.");
    cl_fe_prom_sample(p, "clipper_router_up", NULL, router != NULL ? 1 : 0);
    cl_fe_prom_family(p, "clipper_routers_answered", "gauge",
                      "Routers (the leader and the standbys) whose snapshots this scrape "
                      "added up.");
    const cJSON *routers = cJSON_GetObjectItemCaseSensitive(router, "routers");
    cl_fe_prom_sample(p, "clipper_routers_answered", NULL,
                      cJSON_IsArray(routers) ? cJSON_GetArraySize(routers) : router != NULL);
    if (router == NULL)
        return;
    const cJSON *versions = cJSON_GetObjectItemCaseSensitive(router, "versions");
    if (!cJSON_IsArray(versions))
        versions = NULL;
    for (size_t f = 0; f < sizeof(FAMILIES) / sizeof(FAMILIES[0]); f++) {
        cl_fe_prom_family(p, FAMILIES[f].name, FAMILIES[f].type, FAMILIES[f].help);
        const cJSON *v;
        cJSON_ArrayForEach(v, versions)
        {
            const char *labels[5];
            double value;
            if (version_labels(v, labels) && get_num(v, FAMILIES[f].key, &value))
                cl_fe_prom_sample(p, FAMILIES[f].name, labels, value);
        }
    }
    router_hist(p, versions, "batch_size", "clipper_batch_size",
                "Tasks per batch the router sent to a replica.", 1);
    router_hist(p, versions, "queueing_delay_us", "clipper_router_queueing_delay_seconds",
                "Time a task waited at the router, from its arrival to its dispatch.", 1e6);
    static const struct {
        const char *key, *name, *help;
    } totals[] = {
        {"tasks_received", "clipper_router_tasks_received_total",
         "Tasks the routers received from frontends."},
        {"tasks_no_replica", "clipper_router_tasks_no_replica_total",
         "Tasks the router answered at once because their model version had no ready replica."},
        {"tasks_replica_lost", "clipper_router_tasks_replica_lost_total",
         "Tasks answered with an error because their replica went away with their batch."},
        {"tasks_hedged", "clipper_router_tasks_hedged_total",
         "Tasks of an overdue batch the router sent again to another, idle replica."},
    };
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        double v;
        if (!get_num(router, totals[i].key, &v))
            continue;
        cl_fe_prom_family(p, totals[i].name, "counter", totals[i].help);
        cl_fe_prom_sample(p, totals[i].name, NULL, v);
    }
}
