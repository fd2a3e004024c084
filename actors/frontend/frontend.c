/* The frontend actor: its lifecycle and its threads.
 *
 *   io       runs the frontend's bus loop (cl_loop): reads <p>.predict.*
 *            (queue group "frontend") and <p>.fe.<id>.results.*, prepares
 *            and commits each query, fills the queries' entries from the
 *            results, and serves the HTTP door (unless it has threads of
 *            its own, --http-threads N); at the end of each turn the
 *            turn's tasks (one batch per model version) and replies go out
 *            in one write;
 *   update   pulls <p>.update.* and answers feedback;
 *   timer    answers each query still waiting at its deadline.
 *
 * No NATS callback thread ever runs our code, and stopping is: drain,
 * flag, join. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "fe_core.h"

#define POLL_MS 100
/* How long a stopping frontend waits for the queries in flight. */
#define DRAIN_MS 5000
#define OOM_BODY "{\"error\":\"Internal error\",\"cause\":\"The frontend ran out of memory\"}"

void cl_frontend_opts_init(cl_frontend_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->http_host = "0.0.0.0";
    opts->http_port = CL_FE_DEFAULT_PORT;
    opts->http_threads = CL_FE_DEFAULT_THREADS;
    opts->max_pending = CL_FE_DEFAULT_MAX_PENDING;
    opts->max_body = CL_FE_DEFAULT_MAX_BODY;
    opts->cache_bytes = CL_FE_DEFAULT_CACHE_BYTES;
    opts->metrics_port = CL_FE_DEFAULT_METRICS_PORT;
    opts->http_max_connections = 0; /* the default, fitted to the open-file limit */
    opts->http_max_per_address = CL_FRONTEND_HTTP_MAX_PER_ADDRESS;
    opts->http_idle_timeout_s = CL_FRONTEND_HTTP_IDLE_TIMEOUT_S;
}

cl_status cl_fe_publish(cl_frontend *fe, const char *subject, const void *data, size_t len)
{
    /* Without a loop (a start that failed before it was opened). */
    return fe->loop != NULL ? cl_loop_publish(fe->loop, subject, data, len)
                            : cl_bus_publish(fe->bus, subject, data, len);
}

static void respond(cl_frontend *fe, const cl_msg *m, cl_fe_reply *r)
{
    const char *body = r->body ? r->body : OOM_BODY;
    /* A reply subject comes from the sender: one with spaces, CR/LF or
     * wildcards would make our connection publish something else. */
    const char *reply = cl_msg_reply(m);
    cl_err bad;
    cl_status s = CL_OK;
    if (!cl_subj_valid_publish(reply, strlen(reply), &bad)) {
        CL_LOG_LIMITED(CL_LOG_WARN, "not answering on a bad reply subject: %s", bad.msg);
        s = CL_ERR_INVALID;
    } else {
        s = cl_fe_publish(fe, reply, body, strlen(body));
    }
    if (s != CL_OK)
        cl_warn("cannot answer on %s: %s", cl_msg_reply(m), cl_status_text(s));
    cl_service_count(fe->svc, r->status >= 400, 0);
    free(r->body);
    r->body = NULL;
}

/* The last token of <p>.predict.<app> or <p>.update.<app>. */
static const char *app_of(const cl_msg *m)
{
    const char *subject = cl_msg_subject(m);
    const char *dot = strrchr(subject, '.');
    return dot ? dot + 1 : subject;
}

static void handle_predict(cl_frontend *fe, const cl_msg *m, cl_fe_outbox *ob)
{
    const char *reply = cl_msg_reply(m);
    if (reply == NULL || reply[0] == '\0') {
        cl_debug("dropping a predict message on %s without a reply subject", cl_msg_subject(m));
        return;
    }
    cl_fe_prep prep;
    cl_fe_reply r;
    if (!cl_fe_prepare(fe, app_of(m), cl_msg_data(m), cl_msg_len(m), &prep, &r)) {
        respond(fe, m, &r);
        return;
    }
    prep.q->reply = strdup(reply);
    if (prep.q->reply == NULL) {
        cl_fe_prep_deinit(&prep);
        r = cl_fe_error_reply(500, "Internal error", "The frontend ran out of memory");
        respond(fe, m, &r);
        return;
    }
    if (!cl_fe_commit(fe, &prep, ob, &r))
        respond(fe, m, &r);
}

/* Reads the next message of one of the frontend's pull subscriptions:
 * 1 with *m set, 0 when none came (a timeout, or a read error that is
 * logged and backed off from), -1 once the subscription is closed. */
static int next_msg(cl_sub *sub, cl_msg **m, const char *what)
{
    *m = NULL;
    cl_status s = cl_sub_next(sub, m, POLL_MS);
    if (s == CL_OK)
        return 1;
    if (s == CL_ERR_CLOSED)
        return -1;
    if (s != CL_ERR_TIMEOUT) {
        cl_warn("reading %s: %s", what, cl_status_text(s));
        cl_sleep_ms(10);
    }
    return 0;
}

/* Loop callbacks (io thread). */
static void on_predict(cl_bus *bus, cl_msg *m, void *closure)
{
    (void)bus;
    cl_frontend *fe = closure;
    handle_predict(fe, m, &fe->io_ob);
    cl_msg_free(m);
}

static void on_results(cl_bus *bus, cl_msg *m, void *closure)
{
    (void)bus;
    cl_frontend *fe = closure;
    cl_result *rs = NULL;
    uint32_t n = 0;
    cl_err err;
    /* <p>.fe.<id>.results.<model>: the subscription gives that form. */
    const char *subject = cl_msg_subject(m), *dot = strrchr(subject, '.');
    if (cl_wire_results_decode(cl_msg_data(m), cl_msg_len(m), &rs, &n, &err) == CL_OK)
        cl_fe_complete(fe, rs, n, dot != NULL ? dot + 1 : subject);
    else
        CL_LOG_LIMITED(CL_LOG_WARN, "ignoring a malformed result batch on %s: %s",
                       fe->results_subject, err.msg);
    free(rs);
    cl_msg_free(m);
}

/* The end of a turn: the HTTP door's pass (replies of the results just
 * read, requests just arrived), then the turn's tasks. */
static void on_turn_end(void *closure)
{
    cl_frontend *fe = closure;
    if (cl_fe_door_on_loop(fe) && fe->http != NULL)
        cl_fe_http_run(fe->http);
    cl_fe_outbox_flush(fe, &fe->io_ob);
}

static void *io_main(void *arg)
{
    cl_frontend *fe = arg;
    bool door = cl_fe_door_on_loop(fe) && fe->http != NULL;
    while (!atomic_load(&fe->stop_all)) {
        int wait_ms = door ? cl_fe_http_wait_ms(fe->http, POLL_MS) : POLL_MS;
        /* No message and nothing on the door's fd: the door may still have
         * work its fd does not announce (see cl_httpd_wait_ms). */
        if (cl_loop_run(fe->loop, wait_ms) == CL_ERR_TIMEOUT && door)
            on_turn_end(fe); /* its tasks are written at once, outside a turn */
    }
    cl_fe_outbox_flush(fe, &fe->io_ob);
    return NULL;
}

static void *update_main(void *arg)
{
    cl_frontend *fe = arg;
    while (!atomic_load(&fe->stop_intake)) {
        cl_msg *m;
        int got = next_msg(fe->update_sub, &m, "feedback requests");
        if (got < 0)
            break;
        if (got == 0)
            continue;
        if (cl_msg_reply(m) != NULL && cl_msg_reply(m)[0] != '\0') {
            cl_fe_reply r = cl_fe_update(fe, app_of(m), cl_msg_data(m), cl_msg_len(m));
            respond(fe, m, &r);
        }
        cl_msg_free(m);
    }
    return NULL;
}

static struct timespec mono_abs(uint64_t us)
{
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    return ts;
}

static void *timer_main(void *arg)
{
    cl_frontend *fe = arg;
    pthread_mutex_lock(&fe->mu);
    while (!atomic_load(&fe->stop_all)) {
        uint64_t now = cl_mono_us();
        cl_fe_timer *t = cl_fe_heap_peek(&fe->heap);
        if (t != NULL && t->deadline <= now) {
            pthread_mutex_unlock(&fe->mu);
            cl_fe_expire(fe, now);
            pthread_mutex_lock(&fe->mu);
            continue;
        }
        /* Re-checked under the lock: a commit that arms an earlier timer
         * signals while we wait, so no wake-up is lost. */
        uint64_t until = t != NULL && t->deadline < now + 1000000 ? t->deadline : now + 1000000;
        struct timespec ts = mono_abs(until);
        fe->timer_until = until;
        pthread_cond_timedwait(&fe->timer_cv, &fe->mu, &ts);
        fe->timer_until = 0;
    }
    pthread_mutex_unlock(&fe->mu);
    return NULL;
}

static CL_MUST_USE cl_status start_thread(pthread_t *th, bool *started, void *(*fn)(void *),
                                          cl_frontend *fe, const char *what, cl_err *err)
{
    int rc = pthread_create(th, NULL, fn, fe);
    if (rc != 0)
        return cl_err_set(err, CL_ERR_NOMEM, "cannot start the %s thread: %s", what,
                          strerror(rc));
    *started = true;
    return CL_OK;
}

static void stats(void *closure, cJSON *data)
{
    cl_frontend *fe = closure;
    pthread_mutex_lock(&fe->mu);
    double queries = (double)fe->n_queries, tasks = (double)fe->table.used;
    pthread_mutex_unlock(&fe->mu);
    cJSON_AddNumberToObject(data, "queries_in_flight", queries);
    cJSON_AddNumberToObject(data, "tasks_in_flight", tasks);
    cJSON_AddStringToObject(data, "results_subject", fe->results_subject);
    cJSON_AddNumberToObject(data, "http_port", cl_frontend_http_port(fe));
}

static CL_MUST_USE cl_status subscribe_public(cl_frontend *fe, cl_sub **out, const char *verb,
                                              cl_err *err)
{
    char subject[CL_SUBJECT_MAX];
    int n = snprintf(subject, sizeof(subject), "%s.%s.*", fe->prefix, verb);
    if (n < 0 || (size_t)n >= sizeof(subject))
        return cl_err_set(err, CL_ERR_TOO_LARGE, "prefix '%s' is too long", fe->prefix);
    cl_status s = cl_bus_subscribe_sync(out, fe->bus, subject, "frontend");
    if (s != CL_OK)
        return cl_err_set(err, s, "cannot subscribe to %s: %s", subject, cl_status_text(s));
    return CL_OK;
}

/* A model version's record changed or went away: its stored outputs may
 * belong to another function now (a version deleted and registered again
 * under the same name), so they are forgotten. Watcher thread. */
static void on_view_change(void *closure, const char *key)
{
    cl_frontend *fe = closure;
    if (key == NULL || strncmp(key, "model.", 6) != 0)
        return;
    char model[CL_KEY_MAX];
    snprintf(model, sizeof(model), "%s", key + 6);
    char *dot = strchr(model, '.'); /* names are subject tokens: no dot */
    if (dot == NULL)
        return;
    *dot = '\0';
    size_t n = cl_fe_cache_forget(fe->cache, model, dot + 1);
    if (n > 0)
        cl_debug("model %s:%s changed: forgot %zu cached outputs", model, dot + 1, n);
}

cl_status cl_frontend_start(cl_frontend **out, cl_bus *bus, const cl_frontend_opts *opts,
                            cl_err *err)
{
    cl_frontend *fe = calloc(1, sizeof(*fe));
    if (fe == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    fe->bus = bus;
    fe->prefix = cl_bus_prefix(bus);
    cl_frontend_opts_init(&fe->opts);
    if (opts != NULL) {
        fe->opts = *opts;
        if (fe->opts.http_threads <= 0)
            fe->opts.http_threads = CL_FE_DEFAULT_THREADS;
        if (fe->opts.max_pending == 0)
            fe->opts.max_pending = CL_FE_DEFAULT_MAX_PENDING;
        if (fe->opts.max_body == 0)
            fe->opts.max_body = CL_FE_DEFAULT_MAX_BODY;
        if (fe->opts.http_idle_timeout_s == 0)
            fe->opts.http_idle_timeout_s = CL_FRONTEND_HTTP_IDLE_TIMEOUT_S;
    }
    fe->http_host = strdup(fe->opts.http_host ? fe->opts.http_host : "0.0.0.0");
    fe->opts.http_host = fe->http_host;

    pthread_mutex_init(&fe->mu, NULL);
    pthread_mutex_init(&fe->store_check_mu, NULL);
    cl_cond_init_monotonic(&fe->timer_cv);
    pthread_cond_init(&fe->idle_cv, NULL);
    cl_fe_heap_init(&fe->heap);

    cl_status s = CL_OK;
    int64_t mp = cl_bus_max_payload(bus);
    fe->max_payload = mp > 0 ? (size_t)mp : 1024 * 1024;
    if (mp > 0 && mp < CL_BUS_MAX_PAYLOAD)
        cl_warn("nats-server takes messages of at most %lld bytes (its max_payload; the "
                "configurations clipper writes set %d): a query or an output above about that "
                "size is refused with 413",
                (long long)mp, CL_BUS_MAX_PAYLOAD);
    cl_bus_new_token(fe->id);
    if (fe->http_host == NULL || cl_fe_table_init(&fe->table, fe->opts.max_pending) != CL_OK ||
        cl_fe_metrics_new(&fe->metrics, cl_mono_us()) != CL_OK) {
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (fe->opts.cache_bytes > 0 && cl_fe_cache_new(&fe->cache, fe->opts.cache_bytes) != CL_OK) {
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory for the prediction cache");
        goto fail;
    }
    s = cl_subj_fe_results(fe->results_subject, fe->prefix, fe->id, err);
    if (s != CL_OK)
        goto fail;
    if (strlen(fe->results_subject) + 2 >= sizeof(fe->results_subject)) {
        s = cl_err_set(err, CL_ERR_INVALID, "the prefix is too long");
        goto fail;
    }
    strcat(fe->results_subject, ".*"); /* one per model */

    s = cl_kv_open(&fe->kv, bus, err);
    if (s == CL_OK)
        s = cl_view_start(&fe->view, fe->kv, fe->cache ? on_view_change : NULL, fe, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "cannot load the cluster state");
        goto fail;
    }

    int n = snprintf(fe->predict_subject, sizeof(fe->predict_subject), "%s.predict.*",
                     fe->prefix);
    if (n < 0 || (size_t)n >= sizeof(fe->predict_subject)) {
        s = cl_err_set(err, CL_ERR_TOO_LARGE, "prefix '%s' is too long", fe->prefix);
        goto fail;
    }
    cl_fe_outbox_init(&fe->io_ob);
    s = cl_loop_open(&fe->loop, bus, err);
    if (s != CL_OK)
        goto fail;
    cl_loop_on_turn_end(fe->loop, on_turn_end, fe);
    /* A reply (or a task) published while nats-server restarts goes out
     * once the loop is back, late rather than never: a client with a
     * longer timeout, or one that resends, still gets it. */
    cl_loop_hold_while_down(fe->loop, true);
    const char *subject = fe->results_subject;
    s = cl_loop_subscribe(fe->loop, subject, NULL, on_results, fe);
    if (s == CL_OK) {
        subject = fe->predict_subject;
        s = cl_loop_subscribe(fe->loop, subject, "frontend", on_predict, fe);
    }
    if (s != CL_OK) {
        cl_err_set(err, s, "cannot subscribe to %s: %s", subject, cl_status_text(s));
        goto fail;
    }
    s = start_thread(&fe->timer_th, &fe->timer_started, timer_main, fe, "timer", err);
    if (s == CL_OK)
        s = subscribe_public(fe, &fe->update_sub, "update", err);
    if (s != CL_OK)
        goto fail;
    /* The subscriptions are known to the server before we say we are up. */
    s = cl_loop_sync(fe->loop, 2000);
    if (s == CL_OK)
        s = cl_bus_flush(bus, 2000);
    if (s != CL_OK) {
        cl_err_set(err, s, "cannot reach nats-server to register the subscriptions");
        goto fail;
    }
    s = start_thread(&fe->update_th, &fe->update_started, update_main, fe, "update", err);
    /* Metrics before HTTP: the query port's GET /metrics goes through it. */
    if (s == CL_OK)
        s = cl_fe_exporter_start(&fe->exporter, fe, err);
    if (s == CL_OK && fe->opts.http_port >= 0) {
        /* Under fe->mu: a scrape on the exporter's thread reads it. */
        fe_http *http = NULL;
        s = cl_fe_http_start(&http, fe, err);
        pthread_mutex_lock(&fe->mu);
        fe->http = http;
        pthread_mutex_unlock(&fe->mu);
        if (s == CL_OK && cl_fe_door_on_loop(fe))
            cl_loop_watch_fd(fe->loop, cl_fe_http_poll_fd(http));
    }
    /* Last: from here on the io thread owns the loop, the door and io_ob. */
    if (s == CL_OK)
        s = start_thread(&fe->io_th, &fe->io_started, io_main, fe, "io", err);
    if (s != CL_OK)
        goto fail;

    char update[CL_SUBJECT_MAX];
    snprintf(update, sizeof(update), "%s.update.*", fe->prefix);
    const char *const endpoints[] = {fe->predict_subject, update, fe->results_subject, NULL};
    cl_service_info info = {
        .name = "clipper-frontend",
        .version = CL_VERSION,
        .description = "Clipper query frontend: predictions over NATS and HTTP",
        .endpoints = endpoints,
        .stats = stats,
        .closure = fe,
    };
    s = cl_service_start(&fe->svc, bus, &info, err);
    if (s != CL_OK)
        goto fail;
    *out = fe;
    return CL_OK;
fail:
    cl_frontend_free(fe);
    return s;
}

static void join(pthread_t th, bool *started)
{
    if (*started)
        pthread_join(th, NULL);
    *started = false;
}

void cl_frontend_free(cl_frontend *fe)
{
    if (fe == NULL)
        return;
    /* 1. Stop intake. First the bus: the server stops sending us queries
     * (the queue group's other frontends get them) and the io thread reads
     * and answers those already delivered to us, which a plain unsubscribe
     * would drop (a rolling restart lost one or two); then no new query is
     * accepted from here on. */
    cl_status ds = fe->io_started ? cl_loop_drain(fe->loop, fe->predict_subject, DRAIN_MS)
                                  : CL_OK;
    cl_status du = fe->update_started ? cl_sub_drain(fe->update_sub, DRAIN_MS) : CL_OK;
    if (du == CL_OK && fe->update_started)
        du = cl_sub_drained(fe->update_sub, DRAIN_MS);
    if (ds != CL_OK || du != CL_OK)
        cl_warn("the queries already delivered to this frontend may not all be answered: "
                "draining its subscriptions: %s",
                cl_status_text(ds != CL_OK ? ds : du));
    atomic_store(&fe->stop_intake, true);
    join(fe->update_th, &fe->update_started);
    cl_sub_free(fe->update_sub);
    fe->update_sub = NULL;

    /* 2. Let the queries in flight finish (results or deadlines), then
     * answer any left with the default. */
    if (fe->io_started && fe->timer_started) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += DRAIN_MS / 1000;
        pthread_mutex_lock(&fe->mu);
        while (fe->n_queries > 0)
            if (pthread_cond_timedwait(&fe->idle_cv, &fe->mu, &ts) != 0)
                break;
        pthread_mutex_unlock(&fe->mu);
    }
    cl_fe_expire_all(fe);

    /* 3. HTTP: every suspended request has its reply; let them go out
     * (the io thread still runs a door without threads of its own). */
    if (fe->http != NULL)
        cl_fe_http_wait_idle(fe->http, 2000);

    /* 4. The internal threads. */
    atomic_store(&fe->stop_all, true);
    pthread_mutex_lock(&fe->mu);
    pthread_cond_broadcast(&fe->timer_cv);
    pthread_mutex_unlock(&fe->mu);
    join(fe->io_th, &fe->io_started);
    join(fe->timer_th, &fe->timer_started);

    /* 5. The door, no longer run by anyone. */
    if (fe->http != NULL) {
        fe_http *http = fe->http;
        pthread_mutex_lock(&fe->mu);
        fe->http = NULL;
        pthread_mutex_unlock(&fe->mu);
        cl_fe_http_free(http);
    }
    /* After HTTP: it answered the query port's suspended /metrics. */
    cl_fe_exporter_free(fe->exporter);
    fe->exporter = NULL;
    cl_loop_free(fe->loop);
    fe->loop = NULL;
    cl_fe_outbox_deinit(&fe->io_ob);
    /* Last: until here answers were still being counted for STATS. */
    cl_service_free(fe->svc);

    cl_view_free(fe->view);
    cl_kv_free(fe->kv);
    cl_fe_metrics_free(fe->metrics);
    cl_fe_table_deinit(&fe->table);
    cl_fe_heap_deinit(&fe->heap);
    cl_fe_cache_free(fe->cache); /* after cl_fe_expire_all: no entry is pending */
    pthread_cond_destroy(&fe->timer_cv);
    pthread_cond_destroy(&fe->idle_cv);
    pthread_mutex_destroy(&fe->mu);
    pthread_mutex_destroy(&fe->store_check_mu);
    free(fe->http_host);
    free(fe);
}

int cl_frontend_metrics_port(const cl_frontend *fe)
{
    return fe != NULL ? cl_fe_exporter_port(fe->exporter) : -1;
}

int cl_frontend_http_port(const cl_frontend *fe)
{
    if (fe == NULL)
        return -1;
    cl_frontend *m = (cl_frontend *)fe; /* for its mutex only */
    pthread_mutex_lock(&m->mu);
    int port = fe->http != NULL ? cl_fe_http_port(fe->http) : -1;
    pthread_mutex_unlock(&m->mu);
    return port;
}

const char *cl_frontend_id(const cl_frontend *fe)
{
    return fe->id;
}
