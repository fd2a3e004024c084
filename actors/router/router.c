/* The router actor's shell around its scheduler (rsched.c): subscriptions,
 * the mailbox, the router thread, replica and KV watching, the service API.
 *
 * Threads: the bus callbacks (tasks, pulls) decode their message, then run
 * the scheduler themselves under the router's one mutex (which guards the
 * mailbox and all scheduling state), after any event still in the mailbox,
 * and publish what it produced once the mutex is released: no hand-off to
 * another thread on the hot path. The replica watcher and failed sends
 * post events to the mailbox instead. The router thread takes those in
 * batches the same way, and sleeps on a condition variable timed to the
 * earliest queued deadline, so expired tasks are answered the moment they
 * expire. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_host.h"
#include "cl_json.h"
#include "cl_kv.h"
#include "cl_log.h"
#include "cl_loop.h"
#include "cl_replicas.h"
#include "cl_router.h"
#include "cl_service.h"
#include "cl_subject.h"
#include "cl_view.h"
#include "cl_wire.h"
#include "leader.h"
#include "rsched.h"

/* Longest sleep with nothing queued: bounds how late a silent pull-only
 * replica is noticed and how a wall-clock step can delay expiry. */
#define IDLE_TICK_US 100000u

typedef enum { EV_TASKS, EV_PULL, EV_REPLICA, EV_SEND_FAILED, EV_STEPPED_DOWN } ev_kind;

typedef struct event {
    struct event *next;
    ev_kind kind;
    char model[CL_TOKEN_MAX + 1];
    char version[CL_TOKEN_MAX + 1];
    uint32_t replica_id;      /* pull, replica, send failed */
    uint64_t batch_seq;       /* send failed */
    int64_t completed;        /* pull: batches the replica completed, -1 unknown */
    bool reconnected;         /* pull: sent after the replica's connection came back */
    bool removed;             /* replica */
    char state[16];           /* replica */
    size_t n;                 /* tasks */
    cl__rtask *tasks[];
} event;

struct cl_router {
    cl_bus *bus;
    cl_kv *kv;
    cl_view *view;
    cl_replicas *replicas;
    cl_service *svc;
    cl_sub *stats_sub; /* <p>.route.stats: the metrics snapshot */
    cl_loop *loop; /* carries tasks and pulls; its thread runs their callbacks */
    pthread_t loop_thread;
    bool loop_started;
    atomic_bool loop_stop;
    char task_subject[CL_SUBJECT_MAX];
    char pull_subject[CL_SUBJECT_MAX];
    cl__leader *leader;  /* loop thread only */
    atomic_bool leading; /* a copy for other threads */
    atomic_ullong epoch; /* the leader's epoch, for the stats */
    atomic_bool settled; /* it leads or hears a leader: start may return */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    event *ev_head;
    event **ev_tail;
    uint64_t wake_wall_us; /* when the sleeping router thread wakes; 0 while it runs */
    bool stopping;
    cl__sched sched;

    pthread_t thread;
    bool thread_started;
    atomic_ullong malformed;
};

static void event_free(event *ev)
{
    if (ev == NULL)
        return;
    for (size_t i = 0; i < ev->n; i++)
        free(ev->tasks[i]);
    free(ev);
}

/* Hands ev to the router thread (consumed). Wakes it only when the mailbox
 * was empty: a non-empty mailbox means a wake-up is already pending. */
static void post(cl_router *r, event *ev)
{
    ev->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->stopping) {
        pthread_mutex_unlock(&r->mu);
        event_free(ev);
        return;
    }
    bool was_empty = r->ev_head == NULL;
    *r->ev_tail = ev;
    r->ev_tail = &ev->next;
    if (was_empty)
        pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static int64_t view_batch_size(void *closure, const char *model, const char *version)
{
    cl_router *r = closure;
    int64_t batch_size = CL_BATCH_ADAPTIVE; /* Clipper's default when unregistered */
    cl_view_rdlock(r->view);
    const cl_model *m = cl_view_model(r->view, model, version);
    if (m != NULL)
        batch_size = m->batch_size;
    cl_view_unlock(r->view);
    return batch_size;
}

static void handle(cl_router *r, cl__outbox *ob, event *ev, uint64_t wall, uint64_t mono);
static void publish_all(cl_router *r, cl__out_msg *m);

static void outbox_start(cl_router *r, cl__outbox *ob)
{
    int64_t max_payload = cl_bus_max_payload(r->bus);
    cl__outbox_init(ob, max_payload > 0 ? (size_t)max_payload : 1024 * 1024);
}

/* With mu held: handles and frees every event in the mailbox, in order. */
static void handle_mailbox(cl_router *r, cl__outbox *ob, uint64_t wall, uint64_t mono)
{
    event *ev = r->ev_head;
    r->ev_head = NULL;
    r->ev_tail = &r->ev_head;
    while (ev != NULL) {
        event *next = ev->next;
        handle(r, ob, ev, wall, mono);
        event_free(ev);
        ev = next;
    }
}

/* Runs ev on the calling bus thread: under mu, after whatever the mailbox
 * still holds (so events keep their order), then publishes outside the
 * lock. Frees ev when owned. */
static void run_now(cl_router *r, event *ev, bool owned)
{
    cl__outbox ob;
    pthread_mutex_lock(&r->mu);
    if (r->stopping) {
        pthread_mutex_unlock(&r->mu);
        if (owned)
            event_free(ev);
        return;
    }
    outbox_start(r, &ob);
    uint64_t wall = cl_wall_us(), mono = cl_mono_us();
    handle_mailbox(r, &ob, wall, mono);
    handle(r, &ob, ev, wall, mono);
    if (owned)
        event_free(ev);
    /* Newly queued tasks may expire before the router thread would wake. */
    if (cl__sched_next_deadline(&r->sched) < r->wake_wall_us)
        pthread_cond_signal(&r->cond);
    cl__out_msg *out = cl__outbox_take(&ob);
    pthread_mutex_unlock(&r->mu);
    publish_all(r, out);
}

/* ---- bus side: decode and run ---------------------------------------- */

/* Reads model and version from "<prefix>.<kind>.<model>.<version>". */
static bool parse_subject(const cl_router *r, const char *subject, const char *kind,
                          char model[CL_TOKEN_MAX + 1], char version[CL_TOKEN_MAX + 1],
                          cl_err *err)
{
    const char *prefix = cl_bus_prefix(r->bus);
    size_t pl = strlen(prefix), kl = strlen(kind);
    if (strncmp(subject, prefix, pl) != 0 || subject[pl] != '.' ||
        strncmp(subject + pl + 1, kind, kl) != 0 || subject[pl + 1 + kl] != '.') {
        cl_err_set(err, CL_ERR_INVALID, "subject is not %s.%s.<model>.<version>", prefix, kind);
        return false;
    }
    const char *rest = subject + pl + 1 + kl + 1;
    const char *dot = strchr(rest, '.');
    if (dot == NULL || strchr(dot + 1, '.') != NULL || dot == rest || dot[1] == '\0' ||
        (size_t)(dot - rest) > CL_TOKEN_MAX || strlen(dot + 1) > CL_TOKEN_MAX) {
        cl_err_set(err, CL_ERR_INVALID, "subject must end in exactly <model>.<version>");
        return false;
    }
    memcpy(model, rest, (size_t)(dot - rest));
    model[dot - rest] = '\0';
    strcpy(version, dot + 1);
    return true;
}

static void count_malformed(cl_router *r)
{
    atomic_fetch_add(&r->malformed, 1);
    cl_service_count(r->svc, 1, 0);
}

/* Every task's result goes to a frontend of this cluster, on the results
 * subject of the task's model: a reply subject elsewhere (another prefix,
 * an admin subject, another model's results) refuses the whole batch. */
static bool replies_valid(const cl_router *r, const char *model, const cl_task *tasks,
                          uint32_t n, cl_err *err)
{
    const char *prefix = cl_bus_prefix(r->bus);
    for (uint32_t i = 0; i < n; i++) {
        cl_err why;
        if (!cl_subj_is_fe_results(tasks[i].reply, tasks[i].reply_len, prefix, model, &why)) {
            cl_err_set(err, CL_ERR_INVALID, "task %u has a bad reply subject: %s", i, why.msg);
            return false;
        }
    }
    return true;
}

static void on_tasks(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    cl_router *r = closure;
    uint64_t t0 = cl_mono_us();
    const char *subject = cl_msg_subject(msg);
    cl_task *tasks = NULL;
    uint32_t n = 0;
    event *ev = NULL;
    cl_err err;
    char model[CL_TOKEN_MAX + 1], version[CL_TOKEN_MAX + 1];
    if (!parse_subject(r, subject, "route.task", model, version, &err) ||
        cl_wire_tasks_decode(cl_msg_data(msg), cl_msg_len(msg), &tasks, &n, &err) != CL_OK ||
        !replies_valid(r, model, tasks, n, &err)) {
        CL_LOG_LIMITED(CL_LOG_WARN, "ignoring malformed task batch on %s: %s", subject, err.msg);
        count_malformed(r);
        goto out;
    }
    ev = calloc(1, sizeof(*ev) + (size_t)n * sizeof(ev->tasks[0]));
    if (ev == NULL) {
        cl_error("out of memory: dropping a batch of %u tasks on %s", n, subject);
        goto out;
    }
    ev->kind = EV_TASKS;
    strcpy(ev->model, model);
    strcpy(ev->version, version);
    for (uint32_t i = 0; i < n; i++) {
        const cl_task *t = &tasks[i];
        cl__rtask *c = cl__rtask_copy(t->task_id, t->deadline_us, t->slo_us, t->input_type,
                                      t->reply, t->reply_len, t->input, t->input_len);
        if (c == NULL) {
            cl_error("out of memory: dropping task %llu on %s", (unsigned long long)t->task_id,
                     subject);
            continue;
        }
        ev->tasks[ev->n++] = c;
    }
    if (ev->n > 0) {
        run_now(r, ev, true);
        ev = NULL;
    }
    cl_service_count(r->svc, 0, (cl_mono_us() - t0) * 1000);
out:
    event_free(ev);
    free(tasks);
    cl_msg_free(msg);
}

static CL_MUST_USE cl_status decode_pull(const void *data, size_t len, uint32_t *replica_id,
                                         int64_t *completed, bool *reconnected, cl_err *err)
{
    cJSON *obj = NULL;
    int64_t id;
    bool has_completed = false;
    cl_status s = cl_json_parse_object(&obj, data, len, err);
    if (s == CL_OK)
        s = cl_json_get_int(obj, "replica_id", &id, err);
    if (s == CL_OK && (id < 0 || id > UINT32_MAX))
        s = cl_err_set(err, CL_ERR_INVALID, "field 'replica_id' must be in 0..%u, got %lld",
                       UINT32_MAX, (long long)id);
    if (s == CL_OK)
        s = cl_json_opt_int(obj, "completed", completed, &has_completed, err);
    if (s == CL_OK && has_completed && *completed < 0)
        s = cl_err_set(err, CL_ERR_INVALID, "field 'completed' must be >= 0, got %lld",
                       (long long)*completed);
    if (s == CL_OK && !has_completed)
        *completed = -1;
    bool has_reconnected = false;
    *reconnected = false;
    if (s == CL_OK)
        s = cl_json_opt_bool(obj, "reconnected", reconnected, &has_reconnected, err);
    if (s == CL_OK)
        *replica_id = (uint32_t)id;
    cJSON_Delete(obj);
    return s;
}

static void on_pull(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    cl_router *r = closure;
    uint64_t t0 = cl_mono_us();
    const char *subject = cl_msg_subject(msg);
    cl_err err;
    char model[CL_TOKEN_MAX + 1], version[CL_TOKEN_MAX + 1];
    uint32_t id = 0;
    int64_t completed = -1;
    bool reconnected = false;
    if (!parse_subject(r, subject, "route.pull", model, version, &err) ||
        decode_pull(cl_msg_data(msg), cl_msg_len(msg), &id, &completed, &reconnected, &err) !=
            CL_OK) {
        CL_LOG_LIMITED(CL_LOG_WARN, "ignoring malformed pull on %s: %s", subject, err.msg);
        count_malformed(r);
        goto out;
    }
    event ev = {.kind = EV_PULL, .replica_id = id, .completed = completed,
                .reconnected = reconnected};
    strcpy(ev.model, model);
    strcpy(ev.version, version);
    run_now(r, &ev, false);
    cl_service_count(r->svc, 0, (cl_mono_us() - t0) * 1000);
out:
    cl_msg_free(msg);
}

static void on_replica(void *closure, const cl_replica_info *info, bool removed)
{
    cl_router *r = closure;
    if (strlen(info->model) > CL_TOKEN_MAX || strlen(info->version) > CL_TOKEN_MAX)
        return;
    event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        cl_error("out of memory: dropping a change of replica %u of %s:%s", info->replica_id,
                 info->model, info->version);
        return;
    }
    ev->kind = EV_REPLICA;
    snprintf(ev->model, sizeof(ev->model), "%s", info->model);
    snprintf(ev->version, sizeof(ev->version), "%s", info->version);
    snprintf(ev->state, sizeof(ev->state), "%s", info->state);
    ev->replica_id = info->replica_id;
    ev->removed = removed;
    post(r, ev);
}

static void on_stats(void *closure, cJSON *data)
{
    cl_router *r = closure;
    pthread_mutex_lock(&r->mu);
    cl__sched_stats_json(&r->sched, data);
    pthread_mutex_unlock(&r->mu);
    cJSON_AddNumberToObject(data, "malformed", (double)atomic_load(&r->malformed));
}

/* <p>.route.stats: the metrics snapshot (rsched.h), built under the lock
 * (a walk over the versions, no I/O) and sent after it. Runs on a cnats
 * thread, away from the loop that carries tasks and pulls. */
static void on_route_stats(cl_bus *bus, cl_msg *msg, void *closure)
{
    cl_router *r = closure;
    const char *reply = cl_msg_reply(msg);
    cl_err err;
    /* Every router answers, standbys too: their counters (from when they
     * led) still count, and the exporter adds them up (fe_rmerge.c). */
    if (reply == NULL || reply[0] == '\0') {
        cl_msg_free(msg);
        return;
    }
    if (!cl_subj_valid_publish(reply, strlen(reply), &err)) {
        CL_LOG_LIMITED(CL_LOG_WARN, "ignoring a stats request on %s: bad reply subject: %s",
                       cl_msg_subject(msg), err.msg);
        count_malformed(r);
        cl_msg_free(msg);
        return;
    }
    pthread_mutex_lock(&r->mu);
    cJSON *snap = cl__sched_snapshot(&r->sched);
    pthread_mutex_unlock(&r->mu);
    if (snap != NULL) {
        cJSON_AddNumberToObject(snap, "malformed", (double)atomic_load(&r->malformed));
        /* Which router answered, whether it leads, and how many routers
         * it hears (itself included): a gatherer waits for that many. */
        cJSON *who = cJSON_AddObjectToObject(snap, "router");
        char host[256];
        cl_host_name(host, sizeof(host));
        cJSON_AddStringToObject(who, "host", host);
        cJSON_AddNumberToObject(who, "pid", (double)getpid());
        cJSON_AddNumberToObject(who, "epoch", (double)atomic_load(&r->epoch));
        cJSON_AddBoolToObject(who, "leading", atomic_load(&r->leading));
        cJSON_AddNumberToObject(who, "routers", (double)cl__leader_routers(r->leader));
    }
    char *text = snap != NULL ? cJSON_PrintUnformatted(snap) : NULL;
    cJSON_Delete(snap);
    const char *body = text != NULL ? text : "{\"error\":\"the router ran out of memory\"}";
    cl_status s = cl_msg_respond(bus, msg, body, strlen(body));
    if (s != CL_OK)
        CL_LOG_LIMITED(CL_LOG_WARN, "cannot answer a stats request on %s: %s", reply,
                       cl_status_text(s));
    free(text);
    cl_msg_free(msg);
}

/* ---- the router thread ----------------------------------------------- */

static void handle(cl_router *r, cl__outbox *ob, event *ev, uint64_t wall, uint64_t mono)
{
    cl__sched *s = &r->sched;
    switch (ev->kind) {
    case EV_TASKS:
        cl__sched_tasks(s, ob, ev->model, ev->version, ev->tasks, ev->n, wall, mono);
        ev->n = 0; /* the scheduler owns them now */
        break;
    case EV_PULL:
        cl__sched_pull_counted(s, ob, ev->model, ev->version, ev->replica_id, ev->completed,
                               ev->reconnected,
                               wall, mono);
        break;
    case EV_REPLICA:
        cl__sched_replica(s, ob, ev->model, ev->version, ev->replica_id, ev->state, ev->removed,
                          wall, mono);
        break;
    case EV_SEND_FAILED:
        cl__sched_send_failed(s, ob, ev->model, ev->version, ev->replica_id, ev->batch_seq,
                              wall, mono);
        break;
    case EV_STEPPED_DOWN:
        /* Another router leads now: what is queued here gets the default at
         * once rather than waiting for its deadline. */
        cl__sched_drain(s, ob, CL_RESULT_NO_REPLICA, "this router stopped leading");
        break;
    }
}

/* Sleeps (mu held) until an event arrives, a queued deadline passes, or
 * the idle tick elapses. */
static void wait_for_work(cl_router *r)
{
    while (r->ev_head == NULL && !r->stopping) {
        uint64_t now = cl_wall_us();
        uint64_t next = cl__sched_next_deadline(&r->sched);
        uint64_t wait_us = IDLE_TICK_US;
        if (next != UINT64_MAX) {
            if (next <= now)
                return;
            if (next - now < wait_us)
                wait_us = next - now;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + wait_us * 1000;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        r->wake_wall_us = now + wait_us;
        int rc = pthread_cond_timedwait(&r->cond, &r->mu, &ts);
        r->wake_wall_us = 0;
        if (rc == ETIMEDOUT)
            return;
    }
}

/* Publishes and frees the list (mu not held). A work batch that cannot be
 * sent goes back to its queue. */
static void publish_all(cl_router *r, cl__out_msg *m)
{
    while (m != NULL) {
        cl__out_msg *next = m->next;
        /* On the loop's thread: written at the end of its turn, with the
         * rest of the turn's output; from the router thread: at once. */
        cl_status s = cl_loop_publish(r->loop, m->subject, m->buf.data, m->buf.len);
        if (s != CL_OK) {
            cl_warn("cannot publish a batch of %u %s to %s: %s", cl_wire_count(&m->buf),
                    m->is_work ? "tasks" : "results", m->subject, cl_status_text(s));
            event *ev = m->is_work ? calloc(1, sizeof(*ev)) : NULL;
            if (ev != NULL) {
                ev->kind = EV_SEND_FAILED;
                strcpy(ev->model, m->model);
                strcpy(ev->version, m->version);
                ev->replica_id = m->replica_id;
                ev->batch_seq = m->batch_seq;
                post(r, ev);
            }
        }
        cl__out_msg_free(m);
        m = next;
    }
}

static void *loop_main(void *arg)
{
    cl_router *r = arg;
    while (!atomic_load(&r->loop_stop)) {
        int wait = cl__leader_tick(r->leader);
        atomic_store(&r->settled, cl__leader_known(r->leader));
        /* Its only failure is CL_ERR_TIMEOUT (no message came), which is normal. */
        cl_status_ignore(cl_loop_run(r->loop, wait < 100 ? wait : 100));
    }
    return NULL;
}

/* The loop thread, when this router starts or stops leading: only the
 * leader takes tasks and pulls. */
static void on_leading(void *closure, bool leading)
{
    cl_router *r = closure;
    atomic_store(&r->leading, leading);
    atomic_store(&r->epoch, cl__leader_epoch(r->leader));
    if (leading) {
        cl_status s = cl_loop_subscribe(r->loop, r->task_subject, NULL, on_tasks, r);
        if (s == CL_OK)
            s = cl_loop_subscribe(r->loop, r->pull_subject, NULL, on_pull, r);
        /* The server has the subscriptions before anyone is told (the
         * hello that follows, start returning). */
        if (s == CL_OK)
            s = cl_loop_sync(r->loop, 1000);
        if (s != CL_OK)
            cl_error("the leading router cannot subscribe to its tasks and pulls: %s",
                     cl_status_text(s));
        return;
    }
    cl_loop_unsubscribe(r->loop, r->task_subject);
    cl_loop_unsubscribe(r->loop, r->pull_subject);
    event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        cl_error("out of memory: the queued tasks wait for their deadlines");
        return;
    }
    ev->kind = EV_STEPPED_DOWN;
    post(r, ev);
}

static void *router_thread(void *arg)
{
    cl_router *r = arg;
    cl__outbox ob;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        wait_for_work(r);
        bool stop = r->stopping;
        outbox_start(r, &ob);
        uint64_t wall = cl_wall_us(), mono = cl_mono_us();
        handle_mailbox(r, &ob, wall, mono);
        cl__sched_expire(&r->sched, &ob, wall, mono);
        if (stop)
            cl__sched_drain(&r->sched, &ob, CL_RESULT_NO_REPLICA, "the router stopped");
        cl__out_msg *out = cl__outbox_take(&ob);
        pthread_mutex_unlock(&r->mu);

        publish_all(r, out);
        if (stop)
            break;
        pthread_mutex_lock(&r->mu);
    }
    /* Best effort: the router is stopping; a frontend answers a query whose
     * last result was lost at that query's deadline. */
    cl_status_ignore(cl_bus_flush(r->bus, 1000));
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------- */

cl_status cl_router_start(cl_router **out, cl_bus *bus, cl_err *err)
{
    cl_router *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    r->bus = bus;
    r->ev_tail = &r->ev_head;
    pthread_mutex_init(&r->mu, NULL);
    cl_cond_init_monotonic(&r->cond);
    const char *prefix = cl_bus_prefix(bus);
    cl__sched_init(&r->sched, prefix, view_batch_size, r);

    cl_status s = cl_kv_open(&r->kv, bus, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "router: cannot open the cluster state");
        goto fail;
    }
    s = cl_view_start(&r->view, r->kv, NULL, NULL, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "router: cannot load the cluster state");
        goto fail;
    }
    /* Opened before the router thread starts: everything the router
     * publishes goes through it. Its thread starts once subscribed. */
    s = cl_loop_open(&r->loop, bus, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "router: cannot open its bus loop");
        goto fail;
    }
    if (pthread_create(&r->thread, NULL, router_thread, r) != 0) {
        s = cl_err_set(err, CL_ERR_NOMEM, "router: cannot start its thread");
        goto fail;
    }
    r->thread_started = true;
    s = cl_replicas_start(&r->replicas, bus, on_replica, r, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "router: cannot watch replica heartbeats");
        goto fail;
    }
    snprintf(r->task_subject, sizeof(r->task_subject), "%s.route.task.>", prefix);
    snprintf(r->pull_subject, sizeof(r->pull_subject), "%s.route.pull.>", prefix);
    const char *const endpoints[] = {r->task_subject, r->pull_subject, NULL};
    const cl_service_info info = {
        .name = "clipper-router",
        .version = CL_VERSION,
        .description = "Clipper router: per model-version deadline queues, batching, dispatch",
        .endpoints = endpoints,
        .stats = on_stats,
        .closure = r,
    };
    s = cl_service_start(&r->svc, bus, &info, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "router: cannot answer the service API");
        goto fail;
    }
    /* Tasks and pulls are subscribed to once this router leads. */
    s = cl__leader_new(&r->leader, r->loop, prefix, on_leading, r, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "router");
        goto fail;
    }
    /* After the leader: a snapshot says how many routers it hears. */
    char stats_subject[CL_SUBJECT_MAX];
    s = cl_subj_route_stats(stats_subject, prefix, err);
    if (s == CL_OK) {
        s = cl_bus_subscribe(&r->stats_sub, bus, stats_subject, NULL, on_route_stats, r);
        if (s != CL_OK)
            cl_err_set(err, s, "router: cannot subscribe to %s: %s", stats_subject,
                       cl_status_text(s));
    }
    if (s != CL_OK)
        goto fail;
    /* Make sure the server has our interest before we report serving. */
    s = cl_loop_sync(r->loop, 2000);
    if (s != CL_OK) {
        cl_err_set(err, s, "router: nats-server did not confirm the subscriptions: %s",
                   cl_status_text(s));
        goto fail;
    }
    if (pthread_create(&r->loop_thread, NULL, loop_main, r) != 0) {
        s = cl_err_set(err, CL_ERR_NOMEM, "router: cannot start its loop thread");
        goto fail;
    }
    r->loop_started = true;
    /* Returns once the router leads (alone: after listening for
     * CL_LEADER_LISTEN_MS) or knows who does, so that whoever started it
     * can send tasks at once. */
    uint64_t until = cl_mono_us() + (uint64_t)(CL_LEADER_LISTEN_MS + 1000) * 1000u;
    while (!atomic_load(&r->settled) && cl_mono_us() < until)
        cl_sleep_ms(5);
    *out = r;
    return CL_OK;

fail:
    cl_router_free(r);
    return s;
}

void cl_router_free(cl_router *r)
{
    if (r == NULL)
        return;
    if (r->loop_started) {
        /* After the join no callback of the loop runs. */
        atomic_store(&r->loop_stop, true);
        pthread_join(r->loop_thread, NULL);
    }
    cl_sub_free(r->stats_sub); /* after it returns no snapshot is taken */
    cl__leader_free(r->leader);
    cl_replicas_free(r->replicas);
    cl_service_free(r->svc);
    if (r->thread_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    cl_loop_free(r->loop); /* after the router thread's last publish */
    cl_view_free(r->view);
    cl_kv_free(r->kv);
    while (r->ev_head != NULL) {
        event *next = r->ev_head->next;
        event_free(r->ev_head);
        r->ev_head = next;
    }
    cl__sched_deinit(&r->sched);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
