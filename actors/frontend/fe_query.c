/* One query's life: prepare, commit, finish, deliver (see fe_core.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cl_clock.h"
#include "cl_log.h"
#include "fe_core.h"

/* Clipper's query ids: one process-wide counter from 0. */
static atomic_uint_fast64_t next_query_id;

#define OOM_BODY "{\"error\":\"Internal error\",\"cause\":\"The frontend ran out of memory\"}"

static fe_query *query_of_timer(cl_fe_timer *t)
{
    return (fe_query *)(void *)t; /* the timer is the first member */
}

static char *xstrdup(const char *s)
{
    return strdup(s ? s : "");
}

static char *printf_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *printf_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

cl_fe_reply cl_fe_error_reply(int status, const char *error, const char *cause)
{
    cl_fe_reply r = {status, cl_fe_encode_error(error, cause ? cause : "out of memory")};
    return r;
}

static cl_fe_reply json_error(const char *what, const char *schema)
{
    char *cause = cl_fe_json_error_cause(what, schema);
    cl_fe_reply r = cl_fe_error_reply(400, "Json error", cause);
    free(cause);
    return r;
}

/* The smallest reply to n inputs is {"batch_predictions":[E,E,...]} with
 * each E {"query_id":0,"output":0,"default":false}: 23 + 42 n bytes. */
#define REPLY_MIN_FIXED 23
#define REPLY_MIN_PER_INPUT 42

/* The most inputs one request may carry, on either door (HTTP and NATS
 * take the same requests): as many as the smallest possible reply holds
 * in one bus message. A larger batch could never be answered over NATS,
 * so it is refused before any work. */
static size_t max_inputs(const cl_frontend *fe)
{
    return fe->max_payload > REPLY_MIN_FIXED + REPLY_MIN_PER_INPUT
               ? (fe->max_payload - REPLY_MIN_FIXED) / REPLY_MIN_PER_INPUT
               : 1;
}

static cl_fe_reply batch_too_large(const cl_frontend *fe, size_t n)
{
    char *cause = printf_alloc("The request has %zu inputs; at most %zu are taken per request (as "
                               "many as a reply can hold in one %zu-byte bus message). Send "
                               "fewer inputs per request.",
                               n, max_inputs(fe), fe->max_payload);
    cl_fe_reply r = cl_fe_error_reply(413, "Batch too large", cause);
    free(cause);
    return r;
}

static cl_fe_reply unknown_app(const char *app)
{
    char *cause = printf_alloc("No application named '%s' is registered", app);
    cl_fe_reply r = cl_fe_error_reply(404, "Unknown application", cause);
    free(cause);
    return r;
}

static void query_free(fe_query *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->e[i].text);
    free(q->reply);
    free(q->app);
    free(q->default_output);
    free(q->model);
    free(q->version);
    free(q);
}

static fe_query *query_new(size_t n, const char *app, const char *default_output,
                           uint64_t start_us)
{
    fe_query *q = calloc(1, sizeof(*q) + n * sizeof(q->e[0]));
    if (q == NULL)
        return NULL;
    q->timer.pos = SIZE_MAX;
    q->n = q->remaining = n;
    q->start_us = start_us;
    q->app = xstrdup(app);
    q->default_output = xstrdup(default_output);
    if (q->app == NULL || q->default_output == NULL) {
        query_free(q);
        return NULL;
    }
    uint64_t first = atomic_fetch_add(&next_query_id, n);
    for (size_t i = 0; i < n; i++) {
        q->e[i].query_id = first + i;
        q->e[i].kind = -1;
    }
    return q;
}

static bool is_default(int kind)
{
    return kind == CL_FE_ANSWER_NO_MODEL || kind == CL_FE_ANSWER_SLO;
}

/* Encodes q's reply and records its metrics. */
static char *render(cl_frontend *fe, fe_query *q, int *status)
{
    uint64_t now = cl_mono_us();
    uint64_t latency = now - q->start_us;
    cl_fe_answer stack[16];
    cl_fe_answer *a = q->n <= 16 ? stack : malloc(q->n * sizeof(*a));
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < q->n; i++) {
        const fe_entry *e = &q->e[i];
        a[i] = (cl_fe_answer){e->query_id, e->kind, e->text, e->len};
        cl_fe_metrics_answer(fe->metrics, q->app, latency,
                             e->kind == CL_FE_ANSWER_NO_MODEL      ? CL_FE_OUTCOME_NO_MODEL
                             : e->kind == CL_FE_ANSWER_SLO         ? CL_FE_OUTCOME_SLO
                             : e->kind == CL_FE_ANSWER_MODEL_ERROR ? CL_FE_OUTCOME_MODEL_ERROR
                                                                   : CL_FE_OUTCOME_OUTPUT,
                             now);
        if (q->model != NULL && !is_default(e->kind))
            cl_fe_metrics_model(fe->metrics, q->model, q->version, latency, now);
    }
    char *body = cl_fe_encode_answers(a, q->n, q->default_output, status);
    if (a != stack)
        free(a);
    return body;
}

/* Sends q's reply (NATS or HTTP) and frees q. Never called with fe->mu held.
 * On the io thread a NATS reply shares the turn's one write. */
static void deliver(cl_frontend *fe, fe_query *q)
{
    cl_err bad;
    int status = 500;
    char *body = render(fe, q, &status);
    if (body == NULL) {
        status = 500;
        body = strdup(OOM_BODY);
    }
    if (q->http != NULL) {
        cl_fe_http_complete(q->http, status, body);
    } else if (q->reply != NULL && body != NULL &&
               !cl_subj_valid_publish(q->reply, strlen(q->reply), &bad)) {
        /* NATS passes on any reply subject a client gives (wildcards,
         * control bytes): never publish to one. */
        CL_LOG_LIMITED(CL_LOG_WARN, "not answering a query of %s: %s", q->app, bad.msg);
        free(body);
    } else if (q->reply != NULL && body != NULL) {
        size_t len = strlen(body);
        cl_status s = cl_fe_publish(fe, q->reply, body, len);
        if (s == CL_ERR_TOO_LARGE) {
            char *cause = printf_alloc("The reply is %zu bytes; the bus carries at most %zu bytes "
                                       "per message. Send fewer inputs per request.",
                                       len, fe->max_payload);
            char *err = cl_fe_encode_error("Response too large", cause);
            if (err != NULL) {
                s = cl_fe_publish(fe, q->reply, err, strlen(err));
                if (s != CL_OK)
                    CL_LOG_LIMITED(CL_LOG_WARN, "cannot send a reply to %s: %s", q->reply,
                                   cl_status_text(s));
            }
            free(err);
            free(cause);
        } else if (s != CL_OK) {
            CL_LOG_LIMITED(CL_LOG_WARN, "cannot send a reply to %s: %s", q->reply,
                           cl_status_text(s));
        }
        free(body);
    } else {
        free(body);
    }
    if (fe->svc != NULL)
        cl_service_count(fe->svc, status >= 400, (cl_mono_us() - q->start_us) * 1000);
    query_free(q);
}

static void deliver_list(cl_frontend *fe, fe_query *done)
{
    while (done != NULL) {
        fe_query *next = done->next_done;
        deliver(fe, done);
        done = next;
    }
}

/* With fe->mu held: the query has no waiting entry left. */
static void query_done(cl_frontend *fe, fe_query *q, fe_query **done)
{
    cl_fe_heap_remove(&fe->heap, &q->timer);
    q->next_done = *done;
    *done = q;
    if (--fe->n_queries == 0)
        pthread_cond_broadcast(&fe->idle_cv);
}

/* With fe->mu held: fills entry idx (its task id already taken out). */
static void finish_entry(cl_frontend *fe, fe_query *q, uint32_t idx, int kind, const char *text,
                         size_t len, fe_query **done)
{
    fe_entry *e = &q->e[idx];
    if (e->kind != -1)
        return;
    e->kind = kind;
    if (kind == CL_FE_ANSWER_OUTPUT || kind == CL_FE_ANSWER_MODEL_ERROR) {
        e->text = malloc(len + 1);
        if (e->text != NULL) {
            memcpy(e->text, text, len);
            e->text[len] = '\0';
            e->len = len;
        } else {
            e->kind = CL_FE_ANSWER_MODEL_ERROR; /* says so instead of an empty output */
        }
    }
    if (--q->remaining == 0)
        query_done(fe, q, done);
}

static int kind_of(uint8_t status)
{
    switch (status) {
    case CL_RESULT_OK:
        return CL_FE_ANSWER_OUTPUT;
    case CL_RESULT_MODEL_ERROR:
        return CL_FE_ANSWER_MODEL_ERROR;
    case CL_RESULT_EXPIRED:
        return CL_FE_ANSWER_SLO;
    default: /* no replica, replica lost, or a status this build does not know */
        return CL_FE_ANSWER_NO_MODEL;
    }
}

/* ---- the prediction cache ------------------------------------------------
 *
 * With the cache on, an input's task belongs to a pending cache entry, not
 * to the query: the task table maps its id to (entry, CACHE_IDX), and the
 * entry lists its waiters, the query entries that want its output (the one
 * that made it and every identical one that came while it was in flight).
 * When the result comes, every waiter is answered; an ok output is kept.
 *
 * A pending entry never outlives its task (Clipper's entries stayed pending
 * forever when a task expired or its container died, so every later
 * identical query got the default):
 *   - model error, no replica, replica lost: its waiters get that answer
 *     and the entry goes;
 *   - expired (the router's word, or the task's deadline passed here with
 *     no result: the router or the result was lost): waiters whose own
 *     deadline is not later than the task's (or already passed) get the
 *     default, as they would have without the cache; for the others one
 *     new task goes out with the earliest of their deadlines (so a task
 *     the router sheds early is never re-sent with the same deadline);
 *     with none left, the entry goes, so the next identical query sends
 *     a task of its own;
 *   - a waiter whose query's deadline passes gets the default at that
 *     deadline, as without the cache, and leaves the entry; the last one
 *     to leave removes it.
 * All of this runs under fe->mu; new tasks are published after it. */

/* The task table's index for a task owned by a pending cache entry. */
#define CACHE_IDX UINT32_MAX

/* A task re-sent for the waiters of a pending entry, encoded under fe->mu
 * (the entry may go as soon as it is released), published after. */
typedef struct {
    char subject[CL_SUBJECT_MAX];
    uint64_t task_id;
    cl_buf batch;
} fe_resend;

typedef struct {
    fe_resend *v;
    size_t n, cap;
} fe_resends;

static void send_resends(cl_frontend *fe, fe_resends *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        fe_resend *r = &rs->v[i];
        cl_status s = cl_fe_publish(fe, r->subject, r->batch.data, r->batch.len);
        cl_buf_deinit(&r->batch);
        if (s != CL_OK) {
            cl_warn("cannot re-send a task to %s: %s", r->subject, cl_status_text(s));
            cl_result res = {.task_id = r->task_id, .status = CL_RESULT_NO_REPLICA};
            cl_fe_complete(fe, &res, 1, NULL);
        }
    }
    free(rs->v);
    memset(rs, 0, sizeof(*rs));
}

/* With fe->mu held: answers every waiter of ce with kind and empties it. */
static void ce_answer(cl_frontend *fe, cl_fe_cache_entry *ce, int kind, const char *text,
                      size_t len, fe_query **done)
{
    cl_fe_cache_waiter *w = NULL;
    size_t n = cl_fe_cache_take_waiters(fe->cache, ce, &w);
    for (size_t i = 0; i < n; i++) {
        fe_query *q = w[i].owner;
        q->e[w[i].idx].ce = NULL;
        finish_entry(fe, q, w[i].idx, kind, text, len, done);
    }
    free(w);
}

/* With fe->mu held: ce goes, its task (if still in the table) with it. */
static void ce_drop(cl_frontend *fe, cl_fe_cache_entry *ce)
{
    cl_fe_table_take(&fe->table, cl_fe_cache_task(fe->cache, ce, NULL), NULL);
    cl_fe_cache_drop(fe->cache, ce);
}

/* With fe->mu held: ce's task expired (see above). */
static void ce_retask(cl_frontend *fe, cl_fe_cache_entry *ce, uint64_t now, fe_query **done,
                      fe_resends *rs)
{
    uint64_t cutoff = 0;
    cl_fe_table_take(&fe->table, cl_fe_cache_task(fe->cache, ce, &cutoff), NULL);
    if (cutoff < now)
        cutoff = now;
    const cl_fe_cache_waiter *w = NULL;
    size_t n = cl_fe_cache_waiters(fe->cache, ce, &w);
    for (size_t i = 0; i < n;) {
        fe_query *q = w[i].owner;
        if (q->timer.deadline > cutoff) {
            i++;
            continue;
        }
        cl_fe_cache_waiter gone = w[i];
        q->e[gone.idx].ce = NULL;
        cl_fe_cache_remove_waiter(fe->cache, ce, gone);
        n = cl_fe_cache_waiters(fe->cache, ce, &w);
        finish_entry(fe, q, gone.idx, CL_FE_ANSWER_SLO, NULL, 0, done);
    }
    if (n == 0) {
        cl_fe_cache_drop(fe->cache, ce);
        return;
    }
    fe_query *first = w[0].owner;
    for (size_t i = 1; i < n; i++)
        if (((fe_query *)w[i].owner)->timer.deadline < first->timer.deadline)
            first = w[i].owner;

    cl_fe_cache_key k = cl_fe_cache_entry_key(ce);
    uint64_t id = 0;
    cl_err err;
    bool ok = false;
    if (rs->n == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 4;
        fe_resend *v = realloc(rs->v, ncap * sizeof(*v));
        if (v != NULL) {
            rs->v = v;
            rs->cap = ncap;
        }
    }
    char reply[CL_SUBJECT_MAX];
    if (rs->n < rs->cap &&
        cl_subj_fe_results_model(reply, fe->prefix, fe->id, k.model, &err) == CL_OK &&
        cl_fe_table_add(&fe->table, ce, CACHE_IDX, cl_fe_scope(k.model, strlen(k.model)), &id) ==
            CL_OK) {
        fe_resend *r = &rs->v[rs->n];
        cl_buf_init(&r->batch);
        r->task_id = id;
        cl_task t = {
            .task_id = id,
            .deadline_us = first->deadline_wall,
            .slo_us = first->slo_us > UINT32_MAX ? UINT32_MAX : (uint32_t)first->slo_us,
            .input_type = k.input_type,
            .reply_len = (uint16_t)strlen(reply),
            .reply = reply,
            .input_len = (uint32_t)k.input_len,
            .input = k.input,
        };
        ok = cl_subj_route_task(r->subject, fe->prefix, k.model, k.version, &err) == CL_OK &&
             cl_wire_tasks_begin(&r->batch) == CL_OK && cl_wire_tasks_add(&r->batch, &t) == CL_OK;
        if (ok) {
            rs->n++;
            cl_fe_cache_set_task(fe->cache, ce, id, first->timer.deadline);
        } else {
            cl_buf_deinit(&r->batch);
            cl_fe_table_take(&fe->table, id, NULL);
        }
    }
    if (!ok) {
        cl_warn("cannot re-send the expired task of a shared input of %s:%s; its %zu waiting "
                "queries get the default",
                k.model, k.version, n);
        ce_answer(fe, ce, CL_FE_ANSWER_NO_MODEL, NULL, 0, done);
        cl_fe_cache_drop(fe->cache, ce);
    }
}

/* With fe->mu held: the result of a pending entry's task. */
static void ce_result(cl_frontend *fe, cl_fe_cache_entry *ce, const cl_result *r, uint64_t now,
                      fe_query **done, fe_resends *rs)
{
    int kind = kind_of(r->status);
    if (kind == CL_FE_ANSWER_OUTPUT) {
        ce_answer(fe, ce, kind, r->data, r->len, done);
        cl_fe_cache_fill(fe->cache, ce, r->data, r->len);
    } else if (kind == CL_FE_ANSWER_SLO) {
        ce_retask(fe, ce, now, done, rs);
    } else { /* never cached: model errors, no replica, replica lost */
        ce_answer(fe, ce, kind, r->data, r->len, done);
        cl_fe_cache_drop(fe->cache, ce);
    }
}

uint32_t cl_fe_scope(const char *model, size_t len)
{
    return (uint32_t)XXH3_64bits(model, len);
}

void cl_fe_complete(cl_frontend *fe, const cl_result *results, size_t n, const char *model)
{
    fe_query *done = NULL;
    fe_resends rs = {0};
    uint64_t now = 0;
    uint32_t scope = model != NULL ? cl_fe_scope(model, strlen(model)) : 0;
    size_t foreign = 0;
    pthread_mutex_lock(&fe->mu);
    for (size_t i = 0; i < n; i++) {
        uint32_t idx = 0;
        bool other = false;
        void *owner = model == NULL
                          ? cl_fe_table_take(&fe->table, results[i].task_id, &idx)
                          : cl_fe_table_take_scoped(&fe->table, results[i].task_id, scope, &idx,
                                                    &other);
        foreign += other;
        if (owner == NULL)
            continue; /* late: the query was already answered; or not this model's */
        if (idx == CACHE_IDX) {
            if (now == 0)
                now = cl_mono_us();
            ce_result(fe, owner, &results[i], now, &done, &rs);
            continue;
        }
        finish_entry(fe, owner, idx, kind_of(results[i].status), results[i].data,
                     results[i].len, &done);
    }
    pthread_mutex_unlock(&fe->mu);
    if (foreign > 0)
        CL_LOG_LIMITED(CL_LOG_WARN,
                       "ignoring %zu results for tasks of another model than %s, whose results "
                       "subject they came on",
                       foreign, model);
    deliver_list(fe, done);
    if (rs.n > 0 || rs.v != NULL)
        send_resends(fe, &rs);
}

/* With fe->mu held: answers q's waiting entries with kind. rs NULL: no
 * task is re-sent for the other waiters of a shared input (shutdown). */
static void answer_rest(cl_frontend *fe, fe_query *q, int kind, uint64_t now, fe_query **done,
                        fe_resends *rs)
{
    for (size_t i = 0; i < q->n && q->remaining > 0; i++) {
        if (q->e[i].kind != -1)
            continue;
        cl_fe_cache_entry *ce = q->e[i].ce;
        if (ce == NULL)
            cl_fe_table_take(&fe->table, q->e[i].task_id, NULL);
        q->e[i].ce = NULL;
        finish_entry(fe, q, (uint32_t)i, kind, NULL, 0, done);
        if (ce != NULL) {
            size_t left = cl_fe_cache_remove_waiter(fe->cache, ce, (cl_fe_cache_waiter){q, (uint32_t)i});
            uint64_t task_deadline = 0;
            cl_fe_cache_task(fe->cache, ce, &task_deadline);
            if (left == 0)
                ce_drop(fe, ce);
            else if (rs != NULL && task_deadline <= now)
                ce_retask(fe, ce, now, done, rs); /* no result came by its deadline */
        }
    }
}

uint64_t cl_fe_expire(cl_frontend *fe, uint64_t now_us)
{
    fe_query *done = NULL;
    fe_resends rs = {0};
    pthread_mutex_lock(&fe->mu);
    cl_fe_timer *t;
    while ((t = cl_fe_heap_peek(&fe->heap)) != NULL && t->deadline <= now_us)
        answer_rest(fe, query_of_timer(t), CL_FE_ANSWER_SLO, now_us, &done, &rs);
    t = cl_fe_heap_peek(&fe->heap);
    uint64_t next = t ? t->deadline : 0;
    pthread_mutex_unlock(&fe->mu);
    deliver_list(fe, done);
    if (rs.n > 0 || rs.v != NULL)
        send_resends(fe, &rs);
    return next;
}

void cl_fe_expire_all(cl_frontend *fe)
{
    fe_query *done = NULL;
    pthread_mutex_lock(&fe->mu);
    cl_fe_timer *t;
    while ((t = cl_fe_heap_peek(&fe->heap)) != NULL)
        answer_rest(fe, query_of_timer(t), CL_FE_ANSWER_NO_MODEL, 0, &done, NULL);
    pthread_mutex_unlock(&fe->mu);
    deliver_list(fe, done);
}

/* Answers a query that needs no model (no link, no current version). */
static cl_fe_reply answer_now(cl_frontend *fe, fe_query *q, int kind)
{
    for (size_t i = 0; i < q->n; i++)
        q->e[i].kind = kind;
    cl_fe_reply r = {500, NULL};
    r.body = render(fe, q, &r.status);
    query_free(q);
    return r;
}

void cl_fe_prep_deinit(cl_fe_prep *prep)
{
    query_free(prep->q);
    prep->q = NULL;
    cl_fe_inputs_deinit(&prep->in);
}

/* What a query needs to know about its app, from the view or the store. */
typedef struct {
    bool app_found;
    int input_type;
    int64_t slo;
    char *default_output;
    char *linked;  /* the app's (first) linked model, or NULL */
    size_t n_linked;
    char *current; /* linked's current version, or NULL */
    bool pinned;   /* a version was asked for and linked has it */
} fe_facts;

static void facts_deinit(fe_facts *f)
{
    free(f->default_output);
    free(f->linked);
    free(f->current);
    memset(f, 0, sizeof(*f));
}

static void facts_from_view(cl_frontend *fe, const char *app_name, const char *version,
                            fe_facts *f)
{
    memset(f, 0, sizeof(*f));
    cl_view_rdlock(fe->view);
    const cl_app *app = cl_view_app(fe->view, app_name);
    if (app != NULL) {
        f->app_found = true;
        f->input_type = app->input_type;
        f->slo = app->latency_slo_micros;
        f->default_output = xstrdup(app->default_output);
        f->n_linked = app->n_linked;
        if (app->n_linked > 0) {
            const char *linked = app->linked_models[0];
            f->linked = xstrdup(linked);
            if (version != NULL) {
                f->pinned = cl_view_model(fe->view, linked, version) != NULL;
            } else {
                const char *cur = cl_view_current(fe->view, linked);
                f->current = cur != NULL ? xstrdup(cur) : NULL;
            }
        }
    }
    cl_view_unlock(fe->view);
}

/* The view follows the store through a KV watch, so it can trail a write
 * the admin has already confirmed by the watch's delivery time: a client
 * that registers an app or links a model and queries at once could be
 * told the app does not exist, or get the default output. On such a miss
 * the store is asked directly. A token bucket bounds those reads (a burst
 * of STORE_CHECK_BURST, then STORE_CHECK_PER_S a second), so a flood of
 * queries for unknown apps costs little on the thread that takes queries. */
#define STORE_CHECK_BURST 32.0
#define STORE_CHECK_PER_S 200.0

static bool store_check_allowed(cl_frontend *fe)
{
    uint64_t now = cl_mono_us();
    pthread_mutex_lock(&fe->store_check_mu);
    if (fe->store_check_at_us == 0) {
        fe->store_check_tokens = STORE_CHECK_BURST;
    } else {
        fe->store_check_tokens += (double)(now - fe->store_check_at_us) / 1e6 * STORE_CHECK_PER_S;
        if (fe->store_check_tokens > STORE_CHECK_BURST)
            fe->store_check_tokens = STORE_CHECK_BURST;
    }
    fe->store_check_at_us = now;
    bool ok = fe->store_check_tokens >= 1.0;
    if (ok)
        fe->store_check_tokens -= 1.0;
    pthread_mutex_unlock(&fe->store_check_mu);
    return ok;
}

static bool facts_miss(const fe_facts *f, const char *version)
{
    if (!f->app_found || f->linked == NULL)
        return true;
    return version != NULL ? !f->pinned : f->current == NULL;
}

/* Like facts_from_view, from the KV store itself. false when the store
 * could not be read (the view's facts stand). */
static bool facts_from_store(cl_frontend *fe, const char *app_name, const char *version,
                             fe_facts *f)
{
    char key[CL_KEY_MAX], *value = NULL;
    size_t len = 0;
    cl_err err;
    fe_facts got = {0};
    if (cl_key_app(key, app_name, &err) != CL_OK)
        return false;
    cl_status st = cl_kv_get(fe->kv, key, &value, &len, NULL, &err);
    if (st == CL_OK) {
        cl_app app;
        st = cl_app_from_json(&app, value, len, &err);
        free(value);
        if (st != CL_OK)
            goto fail;
        got.app_found = true;
        got.input_type = app.input_type;
        got.slo = app.latency_slo_micros;
        got.default_output = xstrdup(app.default_output);
        got.n_linked = app.n_linked;
        got.linked = app.n_linked > 0 ? xstrdup(app.linked_models[0]) : NULL;
        cl_app_deinit(&app);
    } else if (st != CL_ERR_NOT_FOUND) {
        goto fail;
    }
    if (got.linked != NULL && version == NULL && cl_key_current(key, got.linked, &err) == CL_OK) {
        st = cl_kv_get(fe->kv, key, &value, &len, NULL, &err);
        if (st == CL_OK) {
            got.current = cl_current_from_json(value, len, &err);
            free(value);
        } else if (st != CL_ERR_NOT_FOUND) {
            goto fail;
        }
    }
    if (got.linked != NULL && version != NULL &&
        cl_key_model(key, got.linked, version, &err) == CL_OK) {
        st = cl_kv_get(fe->kv, key, &value, &len, NULL, &err);
        if (st == CL_OK)
            free(value);
        else if (st != CL_ERR_NOT_FOUND)
            goto fail;
        got.pinned = st == CL_OK;
    }
    facts_deinit(f);
    *f = got;
    return true;
fail:
    cl_debug("app %s: reading the state store failed (%s); answering from the view", app_name,
             err.msg);
    facts_deinit(&got);
    return false;
}

/* The app's facts: the view's, or the store's when the view misses. */
static void facts_get(cl_frontend *fe, const char *app_name, const char *version, fe_facts *f)
{
    facts_from_view(fe, app_name, version, f);
    if (facts_miss(f, version) && store_check_allowed(fe))
        (void)facts_from_store(fe, app_name, version, f);
}

/* What the app resolves to. Returns 0 to route (*model and *ver set: the
 * facts' strings, moved out of f), 1 for "no model" (default output), 2
 * for an error reply (*reply set), 3 for an unknown app. */
static int resolve(fe_facts *f, const char *app_name, const char *version, char **model,
                   char **ver, cl_fe_reply *reply)
{
    if (!f->app_found)
        return 3;
    char *cause = NULL;
    if (version != NULL) {
        if (f->linked == NULL)
            cause = printf_alloc("No model is linked to application %s", app_name);
        else if (f->n_linked > 1)
            cause = printf_alloc("Too many models linked to application %s", app_name);
        else if (!f->pinned)
            cause = printf_alloc("Requested version: %s does not exist for model: %s", version,
                                 f->linked);
    }
    if (cause != NULL) {
        *reply = cl_fe_error_reply(400, "Query processing error", cause);
        free(cause);
        return 2;
    }
    if (version == NULL && f->current == NULL)
        return 1;
    *model = f->linked;
    f->linked = NULL;
    if (version != NULL) {
        *ver = xstrdup(version);
    } else {
        *ver = f->current;
        f->current = NULL;
    }
    if (*model == NULL || *ver == NULL) {
        *reply = cl_fe_error_reply(500, "Internal error", "The frontend ran out of memory");
        return 2;
    }
    return 0;
}

/* The subjects of a model version's tasks and of their results, and the
 * model's scope, for the last few versions this thread routed to: building
 * them (each token checked, then formatted) took a tenth of the io
 * thread's time under load. Keyed by frontend too: a process may run
 * several (the tests do). */
enum { ROUTE_MEMO = 4 };
typedef struct {
    const cl_frontend *fe;
    char model[CL_SUBJECT_MAX], version[CL_SUBJECT_MAX];
    char subject[CL_SUBJECT_MAX], reply[CL_SUBJECT_MAX];
    size_t reply_len;
    uint32_t scope;
} route_memo;
static _Thread_local route_memo memo[ROUTE_MEMO];
static _Thread_local unsigned memo_next;

static CL_MUST_USE cl_status route_of(cl_frontend *fe, const char *model, const char *version,
                                      cl_fe_prep *prep, cl_err *err)
{
    route_memo *m = NULL;
    for (unsigned i = 0; i < ROUTE_MEMO && m == NULL; i++)
        if (memo[i].fe == fe && strcmp(memo[i].model, model) == 0 &&
            strcmp(memo[i].version, version) == 0)
            m = &memo[i];
    if (m == NULL) {
        size_t lm = strlen(model), lv = strlen(version);
        route_memo fresh = {.fe = fe};
        cl_status s = lm < sizeof(fresh.model) && lv < sizeof(fresh.version) ? CL_OK
                      : cl_err_set(err, CL_ERR_TOO_LARGE, "the model name or version is too long");
        if (s == CL_OK)
            s = cl_subj_route_task(fresh.subject, fe->prefix, model, version, err);
        if (s == CL_OK)
            s = cl_subj_fe_results_model(fresh.reply, fe->prefix, fe->id, model, err);
        if (s != CL_OK)
            return s;
        memcpy(fresh.model, model, lm + 1);
        memcpy(fresh.version, version, lv + 1);
        fresh.reply_len = strlen(fresh.reply);
        fresh.scope = cl_fe_scope(model, lm);
        m = &memo[memo_next++ % ROUTE_MEMO];
        *m = fresh;
    }
    memcpy(prep->subject, m->subject, sizeof(prep->subject));
    memcpy(prep->reply, m->reply, m->reply_len + 1);
    prep->reply_len = m->reply_len;
    prep->scope = m->scope;
    return CL_OK;
}

bool cl_fe_prepare(cl_frontend *fe, const char *app, const char *body, size_t len,
                   cl_fe_prep *prep, cl_fe_reply *reply)
{
    uint64_t start = cl_mono_us();
    memset(prep, 0, sizeof(*prep));
    cl_fe_inputs_init(&prep->in);
    prep->start_wall = cl_wall_us();

    /* The body is parsed first only to learn a pinned version: the route
     * exists only for a registered app, whatever the body (404 before any
     * 400 about the body). */
    cl_fe_doc doc;
    cl_err err, doc_err;
    const char *version = NULL;
    bool parsed = cl_fe_doc_parse(&doc, body, len, &doc_err) == CL_OK;
    bool version_ok = parsed && cl_fe_decode_version(&doc, &version, &doc_err) == CL_OK;
    fe_facts facts;
    facts_get(fe, app, version_ok ? version : NULL, &facts);
    if (!facts.app_found) {
        if (parsed)
            cl_fe_doc_deinit(&doc);
        facts_deinit(&facts);
        *reply = unknown_app(app);
        cl_fe_metrics_error(fe->metrics, NULL, CL_FE_ERR_UNKNOWN_APP, start);
        return false;
    }
    char *default_output = facts.default_output;
    facts.default_output = NULL;

    char *model = NULL, *ver = NULL;
    int input_type = facts.input_type;
    int64_t slo = facts.slo;
    bool routed = false;
    if (!parsed) {
        *reply = json_error(doc_err.msg, CL_FE_PREDICT_SCHEMA);
        goto out_nodoc;
    }
    if (!version_ok) {
        *reply = json_error(doc_err.msg, CL_FE_PREDICT_SCHEMA);
        goto out;
    }
    int outcome = resolve(&facts, app, version, &model, &ver, reply);
    if (outcome == 3) {
        *reply = unknown_app(app);
        goto out;
    }
    if (outcome == 2)
        goto out;
    size_t n_inputs = cl_fe_decode_count(&doc);
    if (n_inputs > max_inputs(fe)) {
        *reply = batch_too_large(fe, n_inputs);
        goto out;
    }
    if (cl_fe_decode_inputs(&doc, input_type, &prep->in, &err) != CL_OK) {
        *reply = err.code == CL_ERR_NOMEM
                     ? cl_fe_error_reply(500, "Internal error", err.msg)
                     : json_error(err.msg, CL_FE_PREDICT_SCHEMA);
        goto out;
    }
    fe_query *q = query_new(prep->in.n, app, default_output, start);
    if (q == NULL) {
        *reply = cl_fe_error_reply(500, "Internal error", "The frontend ran out of memory");
        goto out;
    }
    if (prep->in.n == 0) {
        *reply = answer_now(fe, q, CL_FE_ANSWER_OUTPUT);
        goto out;
    }
    if (outcome == 1 || route_of(fe, model, ver, prep, &err) != CL_OK) {
        if (outcome != 1)
            cl_warn("app %s: cannot route to %s:%s: %s", app, model, ver, err.msg);
        *reply = answer_now(fe, q, CL_FE_ANSWER_NO_MODEL);
        goto out;
    }
    for (size_t i = 0; i < prep->in.n; i++) {
        size_t need = CL_FE_BATCH_HEADER + CL_FE_TASK_OVERHEAD + prep->reply_len +
                      cl_fe_input_len(&prep->in, i);
        if (need > fe->max_payload) {
            char *cause = printf_alloc(
                "Input %zu is %zu bytes once encoded; the bus carries at most %zu bytes per "
                "message",
                i, need, fe->max_payload);
            *reply = cl_fe_error_reply(413, "Input too large", cause);
            free(cause);
            query_free(q);
            goto out;
        }
    }
    q->model = model;
    q->version = ver;
    model = ver = NULL;
    prep->q = q;
    prep->input_type = input_type;
    prep->slo_us = slo > 0 ? (uint64_t)slo : 0;
    routed = true;
out:
    cl_fe_doc_deinit(&doc);
out_nodoc:
    facts_deinit(&facts);
    free(default_output);
    free(model);
    free(ver);
    if (!routed)
        cl_fe_inputs_deinit(&prep->in);
    if (!routed && reply->status >= 400)
        cl_fe_metrics_error(fe->metrics, reply->status == 404 ? NULL : app,
                            cl_fe_error_kind_of_status(reply->status), start);
    return routed;
}

static cl_fe_reply refused(cl_frontend *fe, const char *refusal)
{
    char *cause = printf_alloc("%s (at most %u tasks in flight)", refusal, fe->table.max);
    cl_fe_reply r = cl_fe_error_reply(503, "Service unavailable", cause);
    free(cause);
    return r;
}

/* Appends the tasks of a committed query to the outbox (ids[i] 0: input i
 * needs no task), then frees ids and prep. A task the outbox refuses is
 * answered "no replica" at once. */
static bool queue_tasks(cl_frontend *fe, cl_fe_prep *prep, cl_fe_outbox *ob, uint64_t *ids,
                        size_t n)
{
    uint64_t slo = prep->slo_us;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0)
            continue;
        cl_task t = {
            .task_id = ids[i],
            .deadline_us = prep->start_wall + slo,
            .slo_us = slo > UINT32_MAX ? UINT32_MAX : (uint32_t)slo,
            .input_type = (uint8_t)prep->input_type,
            .reply_len = (uint16_t)prep->reply_len,
            .reply = prep->reply,
            .input_len = (uint32_t)cl_fe_input_len(&prep->in, i),
            .input = cl_fe_input_data(&prep->in, i),
        };
        if (cl_fe_outbox_add(fe, ob, prep->subject, &t) != CL_OK) {
            cl_result r = {.task_id = ids[i], .status = CL_RESULT_NO_REPLICA};
            cl_fe_complete(fe, &r, 1, NULL);
        }
    }
    free(ids);
    cl_fe_prep_deinit(prep);
    return true;
}

/* cl_fe_commit with the cache on: each input is looked up first (hashed
 * before taking fe->mu); only misses (and inputs the cache cannot take)
 * send a task. */
static bool commit_cached(cl_frontend *fe, cl_fe_prep *prep, cl_fe_outbox *ob,
                          cl_fe_reply *reply)
{
    fe_query *q = prep->q;
    size_t n = q->n;
    /* ids[i]: the task to send for input i, 0 for none; then the hashes,
     * then each lookup's outcome. */
    uint64_t *ids = malloc(n * (2 * sizeof(uint64_t) + 1));
    if (ids == NULL) {
        *reply = cl_fe_error_reply(500, "Internal error", "The frontend ran out of memory");
        cl_fe_prep_deinit(prep);
        return false;
    }
    uint64_t *hashes = ids + n;
    uint8_t *outcome = (uint8_t *)(hashes + n);
    for (size_t i = 0; i < n; i++) {
        cl_fe_cache_key k = {q->model, q->version, (uint8_t)prep->input_type,
                             cl_fe_input_data(&prep->in, i), cl_fe_input_len(&prep->in, i), 0};
        hashes[i] = cl_fe_cache_hash(&k);
    }
    /* For the metrics, after q may be gone (names fit a subject token). */
    char model[CL_SUBJECT_MAX], version[CL_SUBJECT_MAX];
    snprintf(model, sizeof(model), "%s", q->model);
    snprintf(version, sizeof(version), "%s", q->version);
    q->slo_us = prep->slo_us;
    q->deadline_wall = prep->start_wall + prep->slo_us;

    const char *refusal = NULL;
    fe_query *done = NULL;
    pthread_mutex_lock(&fe->mu);
    q->timer.deadline = q->start_us + prep->slo_us;
    if (atomic_load(&fe->stop_intake))
        refusal = "The frontend is shutting down";
    else if (!cl_fe_table_room(&fe->table, n))
        refusal = "Too many queries are in flight; try again later";
    else if (cl_fe_heap_push(&fe->heap, &q->timer) != CL_OK)
        refusal = "The frontend ran out of memory";
    if (refusal == NULL) {
        fe->n_queries++;
        if (q->timer.deadline < fe->timer_until)
            pthread_cond_signal(&fe->timer_cv);
        for (size_t i = 0; i < n; i++) {
            cl_fe_cache_key k = {q->model, q->version, (uint8_t)prep->input_type,
                                 cl_fe_input_data(&prep->in, i), cl_fe_input_len(&prep->in, i),
                                 hashes[i]};
            cl_fe_cache_entry *ce = NULL;
            const char *out = NULL;
            size_t out_len = 0;
            ids[i] = 0;
            outcome[i] = (uint8_t)cl_fe_cache_lookup(
                fe->cache, &k, (cl_fe_cache_waiter){q, (uint32_t)i}, &ce, &out, &out_len);
            switch (outcome[i]) {
            case CL_FE_CACHE_HIT:
                finish_entry(fe, q, (uint32_t)i, CL_FE_ANSWER_OUTPUT, out, out_len, &done);
                break;
            case CL_FE_CACHE_JOINED:
                q->e[i].ce = ce;
                break;
            case CL_FE_CACHE_MISS:
                if (cl_fe_table_add(&fe->table, ce, CACHE_IDX, prep->scope, &ids[i]) != CL_OK) {
                    ids[i] = 0;
                    cl_fe_cache_drop(fe->cache, ce);
                    finish_entry(fe, q, (uint32_t)i, CL_FE_ANSWER_NO_MODEL, NULL, 0, &done);
                } else {
                    q->e[i].ce = ce;
                    cl_fe_cache_set_task(fe->cache, ce, ids[i], q->timer.deadline);
                }
                break;
            default: /* BYPASS: this input goes uncached */
                if (cl_fe_table_add(&fe->table, q, (uint32_t)i, prep->scope, &ids[i]) != CL_OK) {
                    ids[i] = 0;
                    finish_entry(fe, q, (uint32_t)i, CL_FE_ANSWER_NO_MODEL, NULL, 0, &done);
                } else {
                    q->e[i].task_id = ids[i];
                }
                break;
            }
        }
    }
    pthread_mutex_unlock(&fe->mu);
    if (refusal != NULL) {
        cl_fe_metrics_error(fe->metrics, q->app, CL_FE_ERR_UNAVAILABLE, cl_mono_us());
        *reply = refused(fe, refusal);
        free(ids);
        cl_fe_prep_deinit(prep);
        return false;
    }
    /* From here q may be answered and freed by another thread (or is on
     * done, answered from the cache alone). */
    prep->q = NULL;
    deliver_list(fe, done);
    uint64_t now = cl_mono_us();
    for (size_t i = 0; i < n; i++)
        cl_fe_metrics_cache(fe->metrics, model, version,
                             outcome[i] == CL_FE_CACHE_HIT || outcome[i] == CL_FE_CACHE_JOINED,
                             now);
    return queue_tasks(fe, prep, ob, ids, n);
}

bool cl_fe_commit(cl_frontend *fe, cl_fe_prep *prep, cl_fe_outbox *ob, cl_fe_reply *reply)
{
    if (fe->cache != NULL)
        return commit_cached(fe, prep, ob, reply);
    fe_query *q = prep->q;
    size_t n = q->n;
    uint64_t *ids = malloc(n * sizeof(*ids));
    const char *refusal = NULL;
    if (ids == NULL) {
        *reply = cl_fe_error_reply(500, "Internal error", "The frontend ran out of memory");
        cl_fe_prep_deinit(prep);
        return false;
    }
    pthread_mutex_lock(&fe->mu);
    if (atomic_load(&fe->stop_intake)) {
        refusal = "The frontend is shutting down";
    } else if (!cl_fe_table_room(&fe->table, n)) {
        refusal = "Too many queries are in flight; try again later";
    } else {
        size_t i = 0;
        for (; i < n; i++)
            if (cl_fe_table_add(&fe->table, q, (uint32_t)i, prep->scope, &ids[i]) != CL_OK)
                break;
        q->timer.deadline = q->start_us + prep->slo_us;
        if (i < n || cl_fe_heap_push(&fe->heap, &q->timer) != CL_OK) {
            while (i-- > 0)
                cl_fe_table_take(&fe->table, ids[i], NULL);
            refusal = "The frontend ran out of memory";
        } else {
            for (i = 0; i < n; i++)
                q->e[i].task_id = ids[i];
            fe->n_queries++;
            /* Wake the timer thread only when it would sleep past this
             * deadline (a running one looks at the heap before waiting). */
            if (q->timer.deadline < fe->timer_until)
                pthread_cond_signal(&fe->timer_cv);
        }
    }
    pthread_mutex_unlock(&fe->mu);
    if (refusal != NULL) {
        cl_fe_metrics_error(fe->metrics, q->app, CL_FE_ERR_UNAVAILABLE, cl_mono_us());
        *reply = refused(fe, refusal);
        free(ids);
        cl_fe_prep_deinit(prep);
        return false;
    }
    /* From here q belongs to the table: another thread may answer and free
     * it at any moment, so only ids and prep->in are used. */
    prep->q = NULL;
    return queue_tasks(fe, prep, ob, ids, n);
}

cl_fe_reply cl_fe_update(cl_frontend *fe, const char *app, const char *body, size_t len)
{
    /* An app registered a moment ago is known here even before the view
     * has it (the store is asked, as for queries). */
    fe_facts f;
    facts_from_view(fe, app, NULL, &f);
    if (!f.app_found && store_check_allowed(fe))
        (void)facts_from_store(fe, app, NULL, &f);
    bool found = f.app_found;
    int input_type = f.input_type;
    facts_deinit(&f);
    if (!found)
        return unknown_app(app);

    cl_fe_doc doc;
    cl_err err;
    cl_fe_inputs in;
    cl_fe_inputs_init(&in);
    int64_t uid = 0;
    double label = 0;
    cl_fe_reply r = {200, NULL};
    if (cl_fe_doc_parse(&doc, body, len, &err) != CL_OK ||
        cl_fe_decode_update(&doc, input_type, &uid, &in, &label, &err) != CL_OK) {
        /* Clipper answered feedback errors in plain text. */
        r.status = 400;
        r.body = cl_fe_json_error_cause(err.msg, CL_FE_UPDATE_SCHEMA);
    } else {
        /* Feedback is accepted and, as in Clipper, not used by any policy. */
        r.body = strdup("Feedback received? 1");
    }
    cl_fe_doc_deinit(&doc);
    cl_fe_inputs_deinit(&in);
    return r;
}
