/* The frontend's metrics doors: Clipper's JSON on GET /metrics of the
 * query port, and the Prometheus text format on its own port
 * (opts.metrics_port, GET /metrics).
 *
 * Both need the routers' snapshots: a NATS request on <p>.route.stats that
 * every router answers, gathered until as many answered as they say there
 * are (or ROUTER_TIMEOUT_MS) and added up (fe_rmerge.h). No HTTP thread
 * waits for it: the handler suspends its connection (as a prediction does)
 * and queues it; one exporter thread takes every request queued, asks the
 * router once for all of them, renders each reply and resumes its
 * connection. So a scrape never blocks the MHD event loops that serve
 * predictions, concurrent scrapes share one request, fe->mu is never held
 * across the request, and the bus is never called from a callback. No
 * router answering is not an error: its entries are left out (JSON) or
 * clipper_router_up is 0 (Prometheus), and the reason is logged at debug. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "cl_httpd.h"
#include "fe_core.h"
#include "fe_prom.h"
#include "fe_rmerge.h"

/* How long a scrape waits for the router's snapshot. */
#define ROUTER_TIMEOUT_MS 250
/* The Prometheus port's own limits (cl_httpd.h): scrapers are few and
 * each holds one connection. */
#define METRICS_MAX_CONNECTIONS 256
#define METRICS_MAX_PER_ADDRESS 64
#define METRICS_IDLE_TIMEOUT_S 30

typedef struct prom_req {
    struct MHD_Connection *conn;
    bool queued;
    bool done;
    int status;
    char *body;
} prom_req;

typedef struct waiter {
    struct waiter *next;
    fe_http_req *http; /* a JSON request of the query port, or */
    prom_req *prom;    /* a Prometheus request of the metrics port */
} waiter;

struct fe_exporter {
    cl_frontend *fe;
    cl_httpd *door;
    int port;
    char subject[CL_SUBJECT_MAX]; /* <p>.route.stats */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    waiter *head, **tail;
    bool stopping;
};

/* Every registered app is listed, as Clipper registered an app's metrics
 * when the app was added. */
static void touch_apps(cl_frontend *fe, uint64_t now)
{
    cl_view_rdlock(fe->view);
    for (size_t i = 0; i < cl_view_app_count(fe->view); i++)
        cl_fe_metrics_touch_app(fe->metrics, cl_view_app_at(fe->view, i)->name, now);
    cl_view_unlock(fe->view);
}

/* Routers a scrape hears from at most (a cluster runs one or two). */
#define MAX_ROUTERS 16

static cJSON *parse_snapshot(const fe_exporter *x, const cl_msg *m)
{
    cJSON *snap = cJSON_ParseWithLength(cl_msg_data(m), cl_msg_len(m));
    if (!cJSON_IsObject(snap) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(snap, "versions"))) {
        cl_debug("metrics: an answer on %s is not a router snapshot: %.200s", x->subject,
                 (const char *)cl_msg_data(m));
        cJSON_Delete(snap);
        return NULL;
    }
    return snap;
}

/* Stop waiting once as many routers answered as any of them hears. */
static bool heard_all(cl_msg *const *replies, size_t n, void *closure)
{
    const fe_exporter *x = closure;
    cJSON *snaps[MAX_ROUTERS] = {0};
    size_t k = 0;
    for (size_t i = 0; i < n && k < MAX_ROUTERS; i++) {
        cJSON *s = parse_snapshot(x, replies[i]);
        if (s != NULL)
            snaps[k++] = s;
    }
    size_t want = cl_fe_router_expected((const cJSON *const *)snaps, k);
    for (size_t i = 0; i < k; i++)
        cJSON_Delete(snaps[i]);
    return k >= want;
}

/* Every router's snapshot, added up (fe_rmerge.h), or NULL (logged at
 * debug) when none came. */
static cJSON *fetch_router(fe_exporter *x)
{
    cl_msg *replies[MAX_ROUTERS];
    size_t n = 0;
    cl_status s = cl_bus_gather(x->fe->bus, x->subject, "", 0, ROUTER_TIMEOUT_MS, replies,
                                MAX_ROUTERS, &n, heard_all, x);
    if (s != CL_OK) {
        cl_debug("metrics: no router snapshot on %s: %s", x->subject, cl_status_text(s));
        return NULL;
    }
    cJSON *snaps[MAX_ROUTERS] = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *snap = parse_snapshot(x, replies[i]);
        if (snap != NULL)
            snaps[k++] = snap;
        cl_msg_free(replies[i]);
    }
    cJSON *merged = k > 0 ? cl_fe_router_merge((const cJSON *const *)snaps, k) : NULL;
    for (size_t i = 0; i < k; i++)
        cJSON_Delete(snaps[i]);
    return merged;
}

static void cache_gauges(cl_frontend *fe, cl_fe_prom *p)
{
    if (fe->cache == NULL)
        return;
    /* The cache's stats have a mutex of their own: fe->mu is not needed. */
    struct cl_fe_cache_stats st;
    cl_fe_cache_stats(fe->cache, &st);
    cl_fe_prom_family(p, "clipper_cache_bytes", "gauge",
                      "Bytes of outputs held by the prediction cache.");
    cl_fe_prom_sample(p, "clipper_cache_bytes", NULL, (double)st.bytes);
    cl_fe_prom_family(p, "clipper_cache_entries", "gauge", "Entries in the prediction cache.");
    cl_fe_prom_sample(p, "clipper_cache_entries", NULL, (double)st.entries);
    cl_fe_prom_family(p, "clipper_cache_capacity_bytes", "gauge",
                      "The prediction cache's size limit in bytes.");
    cl_fe_prom_sample(p, "clipper_cache_capacity_bytes", NULL, (double)st.capacity);
    cl_fe_prom_family(p, "clipper_cache_evictions_total", "counter",
                      "Outputs evicted from the prediction cache to make room.");
    cl_fe_prom_sample(p, "clipper_cache_evictions_total", NULL, (double)st.evictions);
}

static void door_family(cl_fe_prom *p, const char *name, const char *type, const char *help,
                        const cl_frontend_door_stats st[2], const bool on[2], int field)
{
    static const char *const doors[2] = {"query", "metrics"};
    cl_fe_prom_family(p, name, type, help);
    for (int d = 0; d < 2; d++) {
        if (!on[d])
            continue;
        double v = field == 0   ? st[d].connections
                   : field == 1 ? st[d].max_connections
                   : field == 2 ? (double)st[d].refused
                                : (double)st[d].rejected;
        cl_fe_prom_sample(p, name, (const char *const[]){"door", doors[d], NULL}, v);
    }
}

static void door_stats(const cl_httpd *door, cl_frontend_door_stats *out)
{
    cl_httpd_stats st;
    cl_httpd_get_stats(door, &st);
    *out = (cl_frontend_door_stats){.connections = st.connections,
                                    .max_connections = st.max_connections,
                                    .max_per_address = st.max_per_address,
                                    .refused = st.refused,
                                    .rejected = st.rejected};
}

/* The HTTP doors' connections and refusals (cl_httpd.h), per port. */
static void door_families(fe_exporter *x, cl_fe_prom *p)
{
    cl_frontend_door_stats st[2];
    bool on[2] = {cl_frontend_query_door_stats(x->fe, &st[0]), false};
    pthread_mutex_lock(&x->mu); /* x->door is set under it once the port is up */
    on[1] = x->door != NULL;
    if (on[1])
        door_stats(x->door, &st[1]);
    pthread_mutex_unlock(&x->mu);
    door_family(p, "clipper_http_connections", "gauge",
                "Connections open on an HTTP port of this frontend (door: query, metrics).", st,
                on, 0);
    door_family(p, "clipper_http_connections_max", "gauge",
                "The most connections an HTTP port keeps open at once; more wait in the listen "
                "backlog.",
                st, on, 1);
    door_family(p, "clipper_http_connections_refused_total", "counter",
                "Connections refused because their client address had too many open (answered "
                "503 when they asked something, else closed).",
                st, on, 2);
    door_family(p, "clipper_http_requests_rejected_total", "counter",
                "Requests refused before routing because the length of their body was ambiguous "
                "(conflicting Content-Length headers, Content-Length with Transfer-Encoding) or "
                "their transfer coding is not supported.",
                st, on, 3);
}

/* The Prometheus page (malloc'd), NULL when out of memory. */
static char *render_prom(fe_exporter *x, const cJSON *router)
{
    cl_frontend *fe = x->fe;
    cl_fe_prom p;
    cl_fe_prom_init(&p);
    cl_fe_prom_family(&p, "clipper_frontend_info", "gauge",
                      "This frontend's id (results come on <prefix>.fe.<id>.results) and "
                      "version; always 1.");
    cl_fe_prom_sample(&p, "clipper_frontend_info",
                      (const char *const[]){"id", fe->id, "version", CL_VERSION, NULL}, 1);
    cl_fe_metrics_prom(fe->metrics, &p);
    cache_gauges(fe, &p);
    door_families(x, &p);
    cl_fe_prom_router(&p, router);
    return cl_fe_prom_take(&p);
}

static void prom_complete(prom_req *pr, int status, char *body)
{
    pr->status = status;
    pr->body = body;
    pr->done = true;
    MHD_resume_connection(pr->conn);
}

/* Renders and sends every reply of list (router may be NULL). */
static void answer(fe_exporter *x, waiter *list, const cJSON *router)
{
    cl_frontend *fe = x->fe;
    uint64_t now = cl_mono_us();
    touch_apps(fe, now);
    while (list != NULL) {
        waiter *next = list->next;
        if (list->http != NULL)
            cl_fe_http_complete(list->http, 200, cl_fe_metrics_json_with(fe->metrics, now, router));
        else
            prom_complete(list->prom, 200, render_prom(x, router));
        free(list);
        list = next;
    }
}

static void *exporter_main(void *arg)
{
    fe_exporter *x = arg;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        while (x->head == NULL && !x->stopping)
            pthread_cond_wait(&x->cv, &x->mu);
        waiter *list = x->head;
        bool stopping = x->stopping;
        x->head = NULL;
        x->tail = &x->head;
        pthread_mutex_unlock(&x->mu);
        if (list != NULL) {
            /* While stopping the bus may be going away: answer without. */
            cJSON *router = stopping ? NULL : fetch_router(x);
            answer(x, list, router);
            cJSON_Delete(router);
        }
        pthread_mutex_lock(&x->mu);
        if (stopping && x->head == NULL)
            break;
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* Queues w for the exporter thread; false when it is stopping (the
 * caller answers at once). */
static bool enqueue(fe_exporter *x, waiter *w)
{
    pthread_mutex_lock(&x->mu);
    bool ok = !x->stopping && x->thread_started;
    if (ok) {
        w->next = NULL;
        *x->tail = w;
        x->tail = &w->next;
        pthread_cond_signal(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    return ok;
}

void cl_fe_exporter_json(fe_exporter *x, fe_http_req *req)
{
    waiter *w = calloc(1, sizeof(*w));
    if (w != NULL) {
        w->http = req;
        if (enqueue(x, w))
            return;
        free(w);
    }
    /* Out of memory or stopping: the frontend's own metrics, no router. */
    uint64_t now = cl_mono_us();
    touch_apps(x->fe, now);
    cl_fe_http_complete(req, 200, cl_fe_metrics_json(x->fe->metrics, now));
}

/* ---- the Prometheus port --------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *conn, int status, const char *type,
                                 char *body, const char *allow)
{
    if (body == NULL) {
        status = 500;
        type = "text/plain; charset=utf-8";
        body = strdup("the frontend ran out of memory\n");
        if (body == NULL)
            return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static char *text(const char *fmt, const char *arg)
{
    char *s = NULL;
    if (asprintf(&s, fmt, arg) < 0)
        s = NULL;
    return s;
}

static enum MHD_Result on_prom(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version,
                               const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    fe_exporter *x = cls;
    prom_req *pr = *con_cls;
    if (pr == NULL) {
        pr = calloc(1, sizeof(*pr));
        if (pr == NULL)
            return MHD_NO;
        pr->conn = conn;
        *con_cls = pr;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0; /* a body is never used */
        return MHD_YES;
    }
    if (pr->done) {
        char *body = pr->body;
        pr->body = NULL;
        return send_text(conn, pr->status, CL_FE_PROM_CONTENT_TYPE, body, NULL);
    }
    const char *plain = "text/plain; charset=utf-8";
    if (strcmp(url, "/metrics") != 0)
        return send_text(conn, 404, plain,
                         text("No route for %.600s: this port serves only GET /metrics "
                              "(Prometheus text format)\n", url),
                         NULL);
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && !head)
        return send_text(conn, 405, plain,
                         text("Method %.100s is not allowed on /metrics: use GET\n", method),
                         "GET, HEAD");
    waiter *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return send_text(conn, 500, plain, NULL, NULL);
    w->prom = pr;
    pr->queued = true;
    /* Suspended before the exporter thread can see it, so its resume
     * always finds a suspended connection. */
    MHD_suspend_connection(conn);
    if (!enqueue(x, w)) {
        free(w);
        prom_complete(pr, 503, strdup("the frontend is stopping\n"));
    }
    return MHD_YES;
}

static void on_prom_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    prom_req *pr = *con_cls;
    if (pr == NULL)
        return;
    *con_cls = NULL;
    free(pr->body);
    free(pr);
}

static CL_MUST_USE cl_status start_daemon(fe_exporter *x, cl_err *err)
{
    const cl_frontend_opts *o = &x->fe->opts;
    char *token = NULL;
    if (o->metrics_token_file != NULL) {
        cl_status st = cl_httpd_read_token(&token, o->metrics_token_file,
                                           "--metrics-token-file", err);
        if (st != CL_OK)
            return st;
    }
    cl_httpd_opts ho = {
        .what = "Prometheus metrics",
        .host = o->http_host,
        .port = o->metrics_port,
        .flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME,
        .handler = on_prom,
        .handler_cls = x,
        .completed = on_prom_completed,
        .completed_cls = x,
        .connection_timeout_s = METRICS_IDLE_TIMEOUT_S,
        .reuse_address = true,
        .default_max_connections = METRICS_MAX_CONNECTIONS,
        .max_per_address = METRICS_MAX_PER_ADDRESS,
        .max_per_address_option = "the metrics port's per-address limit",
        .max_connections_option = "the metrics port's connection limit",
        .tls_cert_file = o->tls_cert_file,
        .tls_key_file = o->tls_key_file,
        .bearer_token = token,
    };
    cl_httpd *door = NULL;
    cl_status st = cl_httpd_serve(&door, &ho, err);
    bool has_token = token != NULL;
    cl_httpd_token_free(token); /* the door keeps only its hash */
    if (st == CL_OK) {
        pthread_mutex_lock(&x->mu); /* a scrape may already be rendering */
        x->door = door;
        x->port = cl_httpd_port(door);
        pthread_mutex_unlock(&x->mu);
        cl_info("Prometheus metrics on %s://%s:%d/metrics%s", o->tls_cert_file ? "https" : "http",
                o->http_host, x->port, has_token ? " (bearer token required)" : "");
    }
    return st;
}

cl_status cl_fe_exporter_start(fe_exporter **out, cl_frontend *fe, cl_err *err)
{
    fe_exporter *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    x->fe = fe;
    x->port = -1;
    x->tail = &x->head;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    cl_status s = cl_subj_route_stats(x->subject, fe->prefix, err);
    if (s == CL_OK) {
        int rc = pthread_create(&x->thread, NULL, exporter_main, x);
        if (rc != 0)
            s = cl_err_set(err, CL_ERR_NOMEM, "cannot start the metrics thread: %s",
                           strerror(rc));
        else
            x->thread_started = true;
    }
    if (s == CL_OK && fe->opts.metrics_port >= 0)
        s = start_daemon(x, err);
    if (s != CL_OK) {
        cl_fe_exporter_free(x);
        return s;
    }
    *out = x;
    return CL_OK;
}

int cl_fe_exporter_port(const fe_exporter *x)
{
    return x != NULL ? x->port : -1;
}

bool cl_frontend_metrics_door_stats(const cl_frontend *fe, cl_frontend_door_stats *out)
{
    if (fe == NULL || fe->exporter == NULL || fe->exporter->door == NULL)
        return false;
    door_stats(fe->exporter->door, out);
    return true;
}

void cl_fe_exporter_free(fe_exporter *x)
{
    if (x == NULL)
        return;
    /* The thread answers everything queued (without asking the router),
     * then ends; later requests are answered at once (enqueue fails). So
     * no connection is left suspended when the daemon stops. */
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    if (x->thread_started)
        pthread_join(x->thread, NULL);
    x->thread_started = false;
    cl_httpd_free(x->door);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x);
}
