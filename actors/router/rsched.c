/* Queues, replicas and dispatch: the router's logic without its I/O. See
 * rsched.h. Times: deadlines are wall-clock microseconds (they cross hosts);
 * batch latencies and silences use the monotonic clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_log.h"
#include "cl_replicas.h"
#include "cl_wire.h"
#include "rsched.h"

/* Bytes a task takes in a wire task batch (see cl_wire.h). */
#define TASK_WIRE_OVERHEAD 27u
#define BATCH_HEADER 8u

cl__rtask *cl__rtask_copy(uint64_t task_id, uint64_t deadline_us, uint32_t slo_us,
                          uint8_t input_type, const char *reply, uint16_t reply_len,
                          const uint8_t *input, uint32_t input_len)
{
    cl__rtask *t = malloc(sizeof(*t) + (size_t)reply_len + 1 + input_len);
    if (t == NULL)
        return NULL;
    char *p = (char *)(t + 1);
    memcpy(p, reply, reply_len);
    p[reply_len] = '\0';
    if (input_len > 0)
        memcpy(p + reply_len + 1, input, input_len);
    t->task_id = task_id;
    t->deadline_us = deadline_us;
    t->slo_us = slo_us;
    t->input_type = input_type;
    t->reply_len = reply_len;
    t->input_len = input_len;
    t->arrived_mono_us = 0;
    t->reply = p;
    t->input = (const uint8_t *)(p + reply_len + 1);
    return t;
}

void cl__sched_init(cl__sched *s, const char *prefix, cl__batch_size_fn batch_size,
                    void *closure)
{
    memset(s, 0, sizeof(*s));
    s->prefix = prefix;
    s->batch_size = batch_size;
    s->batch_size_closure = closure;
    s->batch_bound = CL_BATCH_DEFAULT_BOUND;
    s->replica_timeout_us = (uint64_t)CL_REPLICA_TIMEOUT_MS * 1000;
    s->next_batch_seq = 1;
}

static void replica_free(cl__replica *rep)
{
    for (uint32_t i = 0; i < rep->n_inflight; i++)
        free(rep->inflight[i]);
    free(rep->inflight);
    free(rep);
}

static void queue_free(cl__queue *q)
{
    cl_edf_entry e;
    while (cl_edf_pop(&q->heap, &e))
        free(e.item);
    cl_edf_deinit(&q->heap);
    while (q->replicas != NULL) {
        cl__replica *next = q->replicas->next;
        replica_free(q->replicas);
        q->replicas = next;
    }
    free(q);
}

void cl__sched_deinit(cl__sched *s)
{
    while (s->queues != NULL) {
        cl__queue *next = s->queues->next;
        queue_free(s->queues);
        s->queues = next;
    }
    while (s->vstats != NULL) {
        cl__vstats *next = s->vstats->next;
        free(s->vstats);
        s->vstats = next;
    }
}

const cl__vstats *cl__sched_vstats(const cl__sched *s, const char *model, const char *version)
{
    for (const cl__vstats *v = s->vstats; v != NULL; v = v->next)
        if (strcmp(v->model, model) == 0 && strcmp(v->version, version) == 0)
            return v;
    return NULL;
}

static cl__vstats *vstats_get(cl__sched *s, const char *model, const char *version)
{
    cl__vstats *v = (cl__vstats *)cl__sched_vstats(s, model, version);
    if (v != NULL)
        return v;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    strcpy(v->model, model);
    strcpy(v->version, version);
    cl_hist_init(&v->batch_size, cl__batch_bounds, cl__n_batch_bounds);
    cl_hist_init(&v->queueing_delay_us, cl__delay_bounds_us, cl__n_delay_bounds);
    v->next = s->vstats;
    s->vstats = v;
    return v;
}

cl__queue *cl__sched_queue(const cl__sched *s, const char *model, const char *version)
{
    for (cl__queue *q = s->queues; q != NULL; q = q->next)
        if (strcmp(q->model, model) == 0 && strcmp(q->version, version) == 0)
            return q;
    return NULL;
}

static cl__queue *queue_get(cl__sched *s, const char *model, const char *version)
{
    cl__queue *q = cl__sched_queue(s, model, version);
    if (q != NULL)
        return q;
    if (strlen(model) > CL_TOKEN_MAX || strlen(version) > CL_TOKEN_MAX)
        return NULL;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    strcpy(q->model, model);
    strcpy(q->version, version);
    cl_edf_init(&q->heap);
    q->st = vstats_get(s, model, version);
    q->next = s->queues;
    s->queues = q;
    return q;
}

/* Frees q when nothing refers to it any more. */
static void queue_prune(cl__sched *s, cl__queue *q)
{
    if (q->replicas != NULL || cl_edf_len(&q->heap) > 0)
        return;
    for (cl__queue **pp = &s->queues; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            queue_free(q);
            return;
        }
    }
}

cl__replica *cl__sched_replica_find(const cl__queue *q, uint32_t replica_id)
{
    for (cl__replica *rep = q->replicas; rep != NULL; rep = rep->next)
        if (rep->id == replica_id)
            return rep;
    return NULL;
}

static cl__replica *replica_get(cl__sched *s, cl__queue *q, uint32_t replica_id)
{
    cl__replica *rep = cl__sched_replica_find(q, replica_id);
    if (rep != NULL)
        return rep;
    rep = calloc(1, sizeof(*rep));
    if (rep == NULL)
        return NULL;
    rep->id = replica_id;
    cl_batch_policy_init(&rep->policy, s->batch_bound);
    rep->next = q->replicas;
    q->replicas = rep;
    return rep;
}

static bool replica_ready(const cl__replica *rep)
{
    return rep->pulled || rep->hb_ready;
}

static bool queue_ready(const cl__queue *q)
{
    for (const cl__replica *rep = q->replicas; rep != NULL; rep = rep->next)
        if (replica_ready(rep))
            return true;
    return false;
}

static void answer(cl__outbox *ob, const cl__rtask *t, uint8_t status, const char *text)
{
    /* Nothing more to do on a failure: cl__outbox_result logs a dropped
     * result itself, and the frontend answers that query at its deadline. */
    cl_status_ignore(cl__outbox_result(ob, t->reply, t->reply_len, t->task_id, status, text));
}

static void answer_expired(cl__sched *s, cl__outbox *ob, cl__queue *q, cl__rtask *t)
{
    answer(ob, t, CL_RESULT_EXPIRED, "deadline passed before a replica took the task");
    s->stats.expired++;
    if (q != NULL && q->st != NULL)
        q->st->tasks_expired++;
    free(t);
}

/* Load shedding: a task whose deadline will pass before a batch sent now
 * could come back is answered at once (the frontend gives the default
 * output now rather than at the deadline), and the replica's time goes to
 * tasks that can still make theirs. Under overload this is what keeps the
 * accepted queries within their SLO; Clipper sent such tasks on and lost
 * them. */
static void answer_shed(cl__sched *s, cl__outbox *ob, cl__queue *q, cl__rtask *t)
{
    answer(ob, t, CL_RESULT_EXPIRED,
           "deadline would pass before the replica could finish a batch (shed under load)");
    s->stats.shed++;
    if (q->st != NULL)
        q->st->tasks_shed++;
    free(t);
}

static void answer_no_replica(cl__sched *s, cl__outbox *ob, const char *model,
                              const char *version, cl__rtask *t)
{
    char text[2 * CL_TOKEN_MAX + 64];
    snprintf(text, sizeof(text), "no ready replica of model %s:%s", model, version);
    answer(ob, t, CL_RESULT_NO_REPLICA, text);
    s->stats.no_replica++;
    free(t);
}

/* Answers everything queued for q with status 3. */
static void drain_no_replica(cl__sched *s, cl__outbox *ob, cl__queue *q)
{
    cl_edf_entry e;
    while (cl_edf_pop(&q->heap, &e))
        answer_no_replica(s, ob, q->model, q->version, e.item);
}

/* The idle replica that has waited longest, or NULL. */
static cl__replica *pick_idle(cl__queue *q)
{
    cl__replica *best = NULL;
    for (cl__replica *rep = q->replicas; rep != NULL; rep = rep->next)
        if (rep->idle && (best == NULL || rep->idle_since_mono_us < best->idle_since_mono_us))
            best = rep;
    return best;
}

static bool inflight_reserve(cl__replica *rep, uint32_t n)
{
    if (n <= rep->inflight_cap)
        return true;
    cl__rtask **v = realloc(rep->inflight, (size_t)n * sizeof(*v));
    if (v == NULL)
        return false;
    rep->inflight = v;
    rep->inflight_cap = n;
    return true;
}

/* The largest batch size up to limit that rep is expected to finish
 * within left_us (its latency estimate grows with the size); 0 when not
 * even one task would. With no estimate yet, limit. */
static uint32_t batch_fit(const cl_batch_policy *p, uint32_t limit, uint64_t left_us)
{
    if (cl_batch_policy_estimate_us(p, 1) > left_us)
        return 0;
    if (cl_batch_policy_estimate_us(p, limit) <= left_us)
        return limit;
    uint32_t lo = 1, hi = limit; /* fits(lo), !fits(hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cl_batch_policy_estimate_us(p, mid) <= left_us)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Sends rep one batch from q. Returns false when nothing was sent (queue
 * empty after dropping expired tasks, or out of memory). */
static bool dispatch_one(cl__sched *s, cl__outbox *ob, cl__queue *q, cl__replica *rep,
                         int64_t batch_size, uint64_t now_wall_us, uint64_t now_mono_us)
{
    const uint32_t policy_limit = cl_batch_policy_limit(&rep->policy, batch_size);
    uint32_t limit = policy_limit;
    size_t cap_hint = cl_edf_len(&q->heap) < limit ? cl_edf_len(&q->heap) : limit;
    if (!inflight_reserve(rep, (uint32_t)(cap_hint ? cap_hint : 1)))
        goto nomem;
    char rid[16];
    snprintf(rid, sizeof(rid), "%u", rep->id);
    cl__out_msg *m = cl__out_msg_new();
    if (m == NULL || cl_wire_tasks_begin(&m->buf) != CL_OK) {
        cl__out_msg_free(m);
        goto nomem;
    }
    cl_err err;
    if (cl_subj_replica_work(m->subject, s->prefix, q->model, q->version, rid, &err) != CL_OK) {
        /* Cannot happen for names that came in on a subject; keep serving. */
        cl_error("cannot build the work subject of replica %u of %s:%s: %s", rep->id, q->model,
                 q->version, err.msg);
        cl__out_msg_free(m);
        return false;
    }
    m->is_work = true;
    strcpy(m->model, q->model);
    strcpy(m->version, q->version);
    m->replica_id = rep->id;

    uint32_t n = 0;
    uint64_t min_slo = 0;
    bool sized = false;
    const cl_edf_entry *top;
    while (n < limit && (top = cl_edf_peek(&q->heap)) != NULL) {
        cl__rtask *t = top->item;
        if (t->deadline_us <= now_wall_us) {
            cl_edf_pop(&q->heap, NULL);
            answer_expired(s, ob, q, t);
            continue;
        }
        if (!sized) {
            /* The first task is the most urgent. When a full batch
             * (policy_limit, or all that is queued) can come back before
             * its deadline, the batch is full. Under overload (more queued
             * than one batch) a task that would force a smaller batch is
             * shed: smaller batches serve fewer queries a second, so more
             * would miss their deadlines next. With no more than one batch
             * queued the batch is cut instead to what can come back before
             * the first task's deadline (less a fifth of its SLO for
             * the way back to its client), and a task that cannot make it
             * even alone is shed. The last task is sent whatever the
             * estimate says: the replica has nothing better to do, and its
             * answer corrects an estimate that a slow batch (say, the
             * first after start-up) made too high. */
            size_t queued = cl_edf_len(&q->heap);
            uint32_t full = queued < policy_limit ? (uint32_t)queued : policy_limit;
            uint64_t left = t->deadline_us - now_wall_us;
            uint64_t guard = t->slo_us / CL__SLO_GUARD_DIV;
            left = left > guard ? left - guard : 0;
            if (cl_batch_policy_estimate_us(&rep->policy, full) > left) {
                uint32_t fit = queued > policy_limit ? 0 : batch_fit(&rep->policy, full, left);
                if (fit == 0 && queued > 1) {
                    cl_edf_pop(&q->heap, NULL);
                    answer_shed(s, ob, q, t);
                    continue;
                }
                limit = fit > 0 ? fit : 1;
            }
            sized = true;
        }
        size_t need = TASK_WIRE_OVERHEAD + t->reply_len + t->input_len;
        if (m->buf.len + need > ob->max_payload) {
            if (n > 0)
                break; /* the rest waits for the next batch */
            /* A task that alone cannot cross the bus (the frontend should
             * never send one): fail it rather than block the queue. */
            cl_edf_pop(&q->heap, NULL);
            cl_warn("task %llu for %s:%s is %zu bytes, more than the bus' max payload",
                    (unsigned long long)t->task_id, q->model, q->version, need);
            answer(ob, t, CL_RESULT_MODEL_ERROR, "task too large for the bus' max payload");
            free(t);
            continue;
        }
        if (!inflight_reserve(rep, n + 1))
            break;
        cl_task wt = {
            .task_id = t->task_id,
            .deadline_us = t->deadline_us,
            .slo_us = t->slo_us,
            .input_type = t->input_type,
            .reply_len = t->reply_len,
            .reply = t->reply,
            .input_len = t->input_len,
            .input = t->input,
        };
        if (cl_wire_tasks_add(&m->buf, &wt) != CL_OK)
            break;
        cl_edf_pop(&q->heap, NULL);
        rep->inflight[n++] = t;
        if (t->slo_us > 0 && (min_slo == 0 || t->slo_us < min_slo))
            min_slo = t->slo_us;
    }
    if (n == 0) {
        cl__out_msg_free(m);
        return false;
    }
    rep->n_inflight = n;
    rep->inflight_limit = policy_limit; /* full means full to the policy's cap */
    rep->inflight_batch_size = batch_size;
    rep->inflight_slo_us = min_slo;
    rep->dispatched_mono_us = now_mono_us;
    rep->batch_seq = s->next_batch_seq++;
    rep->dispatched++;
    rep->idle = false;
    m->batch_seq = rep->batch_seq;
    cl__outbox_push(ob, m);
    s->stats.batches_dispatched++;
    s->stats.tasks_dispatched += n;
    if (q->st != NULL) {
        q->st->batches_dispatched++;
        q->st->tasks_dispatched += n;
        cl_hist_observe(&q->st->batch_size, n);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t arrived = rep->inflight[i]->arrived_mono_us;
            cl_hist_observe(&q->st->queueing_delay_us,
                             arrived != 0 && now_mono_us > arrived ? now_mono_us - arrived : 0);
        }
    }
    return true;

nomem:
    cl_error("out of memory while building a batch for %s:%s; will retry", q->model, q->version);
    return false;
}

/* Hands queued tasks to idle replicas until one or the other runs out. */
static void dispatch(cl__sched *s, cl__outbox *ob, cl__queue *q, uint64_t now_wall_us,
                     uint64_t now_mono_us)
{
    if (cl_edf_len(&q->heap) == 0 || pick_idle(q) == NULL)
        return;
    int64_t batch_size = s->batch_size ? s->batch_size(s->batch_size_closure, q->model,
                                                       q->version)
                                       : CL_BATCH_ADAPTIVE;
    cl__replica *rep;
    while (cl_edf_len(&q->heap) > 0 && (rep = pick_idle(q)) != NULL)
        if (!dispatch_one(s, ob, q, rep, batch_size, now_wall_us, now_mono_us))
            break;
}

void cl__sched_tasks(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                     cl__rtask **tasks, size_t n, uint64_t now_wall_us, uint64_t now_mono_us)
{
    cl__queue *q = cl__sched_queue(s, model, version);
    bool ready = q != NULL && queue_ready(q);
    s->stats.tasks_received += n;
    for (size_t i = 0; i < n; i++) {
        cl__rtask *t = tasks[i];
        t->arrived_mono_us = now_mono_us;
        if (!ready) {
            answer_no_replica(s, ob, model, version, t);
        } else if (t->deadline_us <= now_wall_us) {
            answer_expired(s, ob, q, t);
        } else if (cl_edf_push(&q->heap, t->deadline_us, t) != CL_OK) {
            cl_error("out of memory queueing task %llu", (unsigned long long)t->task_id);
            answer(ob, t, CL_RESULT_NO_REPLICA, "router out of memory");
            free(t);
        }
    }
    if (ready)
        dispatch(s, ob, q, now_wall_us, now_mono_us);
}

/* The replica's batch in flight came back (it pulled again). */
static void complete_batch(cl__sched *s, cl__replica *rep, uint64_t now_mono_us)
{
    if (rep->n_inflight == 0)
        return;
    uint64_t latency = now_mono_us - rep->dispatched_mono_us;
    uint64_t target = rep->inflight_slo_us > 0 ? cl_batch_target_us(rep->inflight_slo_us) : 0;
    cl_batch_policy_observe(&rep->policy, rep->inflight_batch_size, rep->n_inflight,
                            rep->inflight_limit, latency, target);
    for (uint32_t i = 0; i < rep->n_inflight; i++)
        free(rep->inflight[i]);
    rep->n_inflight = 0;
    rep->hedged = false;
    s->stats.batches_completed++;
}

/* Puts rep's batch in flight back in its queue (it never reached the
 * replica); a task that cannot be queued is answered "replica lost". */
static void requeue_inflight(cl__sched *s, cl__outbox *ob, cl__queue *q, cl__replica *rep)
{
    for (uint32_t i = 0; i < rep->n_inflight; i++) {
        cl__rtask *t = rep->inflight[i];
        if (cl_edf_push(&q->heap, t->deadline_us, t) != CL_OK) {
            answer(ob, t, CL_RESULT_REPLICA_LOST, "could not send the task to its replica");
            free(t);
        }
    }
    s->stats.batches_dispatched--;
    s->stats.tasks_dispatched -= rep->n_inflight;
    /* The per-version counters only grow (they are Prometheus counters):
     * the batch counts as dispatched once more when it goes out again. */
    rep->n_inflight = 0;
    rep->hedged = false;
}

void cl__sched_pull(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                    uint32_t replica_id, uint64_t now_wall_us, uint64_t now_mono_us)
{
    cl__sched_pull_counted(s, ob, model, version, replica_id, -1, false, now_wall_us,
                           now_mono_us);
}

void cl__sched_pull_counted(cl__sched *s, cl__outbox *ob, const char *model,
                            const char *version, uint32_t replica_id, int64_t completed,
                            bool reconnected, uint64_t now_wall_us, uint64_t now_mono_us)
{
    cl__queue *q = queue_get(s, model, version);
    cl__replica *rep = q ? replica_get(s, q, replica_id) : NULL;
    if (rep == NULL) {
        cl_error("out of memory tracking replica %u of %s:%s", replica_id, model, version);
        return;
    }
    if (!rep->pulled && !rep->hb_seen)
        cl_info("replica %u of %s:%s is ready (pulled before its first heartbeat)", replica_id,
                model, version);
    rep->pulled = true;
    rep->last_pull_mono_us = now_mono_us;
    if (completed >= 0) {
        if (rep->n_inflight > 0 && (uint64_t)completed < rep->dispatched) {
            /* A pull sent after the replica's connection came back says
             * what was sent before may be gone with the old connection. */
            if (!reconnected && now_mono_us - rep->dispatched_mono_us < CL__LOST_BATCH_US)
                return; /* a repeat pull that crossed the batch now in flight */
            /* An idle replica that never got the batch sent long ago: it was
             * lost on the way (say, while nats-server restarted). A busy
             * replica does not repeat its pull, so this cannot be a batch
             * it is still working on. */
            cl_warn("batch of %u tasks to replica %u of %s:%s was lost on the way; queueing "
                    "it again",
                    rep->n_inflight, rep->id, q->model, q->version);
            requeue_inflight(s, ob, q, rep);
        }
        /* Also after a router restart, when the replica has done more than
         * this router sent. */
        rep->dispatched = (uint64_t)completed;
    }
    complete_batch(s, rep, now_mono_us);
    if (!rep->idle) {
        rep->idle = true;
        rep->idle_since_mono_us = now_mono_us;
    }
    dispatch(s, ob, q, now_wall_us, now_mono_us);
}

/* Forgets rep, answering its batch in flight with "replica lost". */
static void replica_remove(cl__sched *s, cl__outbox *ob, cl__queue *q, cl__replica *rep,
                           const char *why)
{
    char text[2 * CL_TOKEN_MAX + 128];
    snprintf(text, sizeof(text), "replica %u of model %s:%s was lost (%s)", rep->id, q->model,
             q->version, why);
    if (rep->n_inflight > 0)
        cl_warn("%s with %u tasks in flight", text, rep->n_inflight);
    else
        cl_info("replica %u of %s:%s is gone (%s)", rep->id, q->model, q->version, why);
    /* A hedged batch's tasks were copied back to the queue (or left to the
     * frontend's deadline when too late for that): answering them "lost"
     * now would beat the copies' answers. */
    for (uint32_t i = 0; i < rep->n_inflight && !rep->hedged; i++) {
        answer(ob, rep->inflight[i], CL_RESULT_REPLICA_LOST, text);
        s->stats.replica_lost++;
    }
    for (cl__replica **pp = &q->replicas; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == rep) {
            *pp = rep->next;
            break;
        }
    }
    replica_free(rep);
}

/* After a replica left or stopped being ready. Frees q if unused. */
static void after_replica_change(cl__sched *s, cl__outbox *ob, cl__queue *q,
                                 uint64_t now_wall_us, uint64_t now_mono_us)
{
    if (!queue_ready(q))
        drain_no_replica(s, ob, q);
    else
        dispatch(s, ob, q, now_wall_us, now_mono_us);
    queue_prune(s, q);
}

void cl__sched_replica(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                       uint32_t replica_id, const char *state, bool removed,
                       uint64_t now_wall_us, uint64_t now_mono_us)
{
    bool gone = removed || strcmp(state, "stopped") == 0 || strcmp(state, "failed") == 0;
    cl__queue *q = gone ? cl__sched_queue(s, model, version) : queue_get(s, model, version);
    if (q == NULL) {
        if (!gone)
            cl_error("out of memory tracking replica %u of %s:%s", replica_id, model, version);
        return;
    }
    if (gone) {
        cl__replica *rep = cl__sched_replica_find(q, replica_id);
        if (rep != NULL)
            replica_remove(s, ob, q, rep,
                           strcmp(state, "stopped") == 0  ? "stopped"
                           : strcmp(state, "failed") == 0 ? "failed"
                                                          : "no heartbeat in time");
    } else {
        cl__replica *rep = replica_get(s, q, replica_id);
        if (rep == NULL) {
            cl_error("out of memory tracking replica %u of %s:%s", replica_id, model, version);
            return;
        }
        if (!rep->hb_seen || rep->hb_ready != (strcmp(state, "ready") == 0))
            cl_info("replica %u of %s:%s is %s", replica_id, model, version, state);
        rep->hb_seen = true;
        rep->hb_ready = strcmp(state, "ready") == 0;
    }
    after_replica_change(s, ob, q, now_wall_us, now_mono_us);
}

void cl__sched_send_failed(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                           uint32_t replica_id, uint64_t batch_seq, uint64_t now_wall_us,
                           uint64_t now_mono_us)
{
    cl__queue *q = cl__sched_queue(s, model, version);
    cl__replica *rep = q ? cl__sched_replica_find(q, replica_id) : NULL;
    if (rep == NULL || rep->batch_seq != batch_seq || rep->n_inflight == 0)
        return; /* already done or gone */
    requeue_inflight(s, ob, q, rep);
    if (rep->dispatched > 0)
        rep->dispatched--; /* it never got it, so it will not count it */
    rep->idle = false; /* until it pulls again */
    dispatch(s, ob, q, now_wall_us, now_mono_us);
}

/* A batch in flight this much longer than its replica's pace says it
 * should take is overdue: the replica may be hung (stopped, swapping, cut
 * off). Its heartbeats would tell only after CL_REPLICA_TIMEOUT_MS. */
#define HEDGE_FACTOR 4u
#define HEDGE_MIN_US 25000u     /* never sooner than this */
#define HEDGE_UNKNOWN_US 250000u /* with no estimate of its pace yet */

static uint64_t hedge_after_us(const cl__replica *rep)
{
    uint64_t est = cl_batch_policy_estimate_us(&rep->policy, rep->n_inflight);
    uint64_t after = est > 0 ? HEDGE_FACTOR * est : HEDGE_UNKNOWN_US;
    return after < HEDGE_MIN_US ? HEDGE_MIN_US : after;
}

/* Hedges rep's overdue batch: copies of its tasks whose deadline leaves
 * room go back to the queue, for another replica (whichever answer reaches
 * the frontend first counts; it ignores the second). Only when another
 * replica of the version is idle: copies that would wait behind busy
 * replicas add load and gain nothing; the batch is hedged later then. */
static bool hedge(cl__sched *s, cl__queue *q, cl__replica *rep, uint64_t now_wall_us,
                  uint64_t now_mono_us)
{
    bool other = false;
    for (const cl__replica *o = q->replicas; o != NULL && !other; o = o->next)
        other = o != rep && replica_ready(o) && o->idle;
    if (!other)
        return false; /* later, when another is idle (the batch is not marked) */
    uint32_t copied = 0;
    for (uint32_t i = 0; i < rep->n_inflight; i++) {
        const cl__rtask *t = rep->inflight[i];
        if (t->deadline_us <= now_wall_us + HEDGE_MIN_US)
            continue; /* too late to help: the frontend's deadline answers it */
        cl__rtask *c = cl__rtask_copy(t->task_id, t->deadline_us, t->slo_us, t->input_type,
                                      t->reply, t->reply_len, t->input, t->input_len);
        if (c == NULL)
            continue;
        c->arrived_mono_us = now_mono_us;
        if (cl_edf_push(&q->heap, c->deadline_us, c) != CL_OK) {
            free(c);
            continue;
        }
        copied++;
    }
    rep->hedged = true;
    s->stats.tasks_hedged += copied;
    CL_LOG_LIMITED(CL_LOG_WARN,
                   "replica %u of %s:%s has had a batch of %u for %.1f ms (its pace says "
                   "%.1f ms): %u of its tasks go to another replica",
                   rep->id, q->model, q->version, rep->n_inflight,
                   (double)(now_mono_us - rep->dispatched_mono_us) / 1e3,
                   (double)cl_batch_policy_estimate_us(&rep->policy, rep->n_inflight) / 1e3,
                   copied);
    return copied > 0;
}

void cl__sched_expire(cl__sched *s, cl__outbox *ob, uint64_t now_wall_us, uint64_t now_mono_us)
{
    cl__queue *q = s->queues;
    while (q != NULL) {
        cl__queue *next = q->next; /* q may be pruned below */
        const cl_edf_entry *top;
        while ((top = cl_edf_peek(&q->heap)) != NULL && top->deadline <= now_wall_us) {
            cl__rtask *t = top->item;
            cl_edf_pop(&q->heap, NULL);
            answer_expired(s, ob, q, t);
        }
        bool removed = false, hedged = false;
        cl__replica *rep = q->replicas;
        while (rep != NULL) {
            cl__replica *rnext = rep->next;
            if (rep->n_inflight > 0 && !rep->hedged &&
                now_mono_us - rep->dispatched_mono_us > hedge_after_us(rep))
                hedged = hedge(s, q, rep, now_wall_us, now_mono_us) || hedged;
            if (!rep->hb_seen && rep->pulled &&
                now_mono_us - rep->last_pull_mono_us > s->replica_timeout_us) {
                replica_remove(s, ob, q, rep, "silent, and never sent a heartbeat");
                removed = true;
            }
            rep = rnext;
        }
        if (removed)
            after_replica_change(s, ob, q, now_wall_us, now_mono_us);
        else if (hedged)
            dispatch(s, ob, q, now_wall_us, now_mono_us);
        q = next;
    }
}

uint64_t cl__sched_next_deadline(const cl__sched *s)
{
    uint64_t next = UINT64_MAX;
    for (const cl__queue *q = s->queues; q != NULL; q = q->next) {
        const cl_edf_entry *top = cl_edf_peek(&q->heap);
        if (top != NULL && top->deadline < next)
            next = top->deadline;
    }
    return next;
}

void cl__sched_drain(cl__sched *s, cl__outbox *ob, uint8_t status, const char *text)
{
    for (cl__queue *q = s->queues; q != NULL; q = q->next) {
        cl_edf_entry e;
        while (cl_edf_pop(&q->heap, &e)) {
            answer(ob, e.item, status, text);
            free(e.item);
        }
    }
}

void cl__sched_stats_json(const cl__sched *s, cJSON *data)
{
    cJSON *queues = cJSON_AddArrayToObject(data, "queues");
    for (const cl__queue *q = s->queues; q != NULL && queues != NULL; q = q->next) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            break;
        int replicas = 0, ready = 0, idle = 0;
        for (const cl__replica *rep = q->replicas; rep != NULL; rep = rep->next) {
            replicas++;
            ready += replica_ready(rep);
            idle += rep->idle;
        }
        cJSON_AddStringToObject(o, "model", q->model);
        cJSON_AddStringToObject(o, "version", q->version);
        cJSON_AddNumberToObject(o, "depth", (double)cl_edf_len(&q->heap));
        cJSON_AddNumberToObject(o, "replicas", replicas);
        cJSON_AddNumberToObject(o, "ready_replicas", ready);
        cJSON_AddNumberToObject(o, "idle_replicas", idle);
        cJSON_AddItemToArray(queues, o);
    }
    const cl__sched_stats *st = &s->stats;
    cJSON_AddNumberToObject(data, "tasks_received", (double)st->tasks_received);
    cJSON_AddNumberToObject(data, "batches_dispatched", (double)st->batches_dispatched);
    cJSON_AddNumberToObject(data, "tasks_dispatched", (double)st->tasks_dispatched);
    cJSON_AddNumberToObject(data, "shed", (double)st->shed);
    cJSON_AddNumberToObject(data, "mean_batch_size",
                            st->batches_dispatched
                                ? (double)st->tasks_dispatched / (double)st->batches_dispatched
                                : 0.0);
    cJSON_AddNumberToObject(data, "expired", (double)st->expired);
    cJSON_AddNumberToObject(data, "no_replica", (double)st->no_replica);
    cJSON_AddNumberToObject(data, "replica_lost", (double)st->replica_lost);
}

cJSON *cl__sched_snapshot(const cl__sched *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *versions = cJSON_AddArrayToObject(root, "versions");
    if (versions == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    cl_hist all;
    cl_hist_init(&all, cl__delay_bounds_us, cl__n_delay_bounds);
    bool ok = true;
    for (const cl__vstats *v = s->vstats; ok && v != NULL; v = v->next) {
        const cl__queue *q = cl__sched_queue(s, v->model, v->version);
        int live = 0, busy = 0;
        for (const cl__replica *rep = q ? q->replicas : NULL; rep != NULL; rep = rep->next) {
            live += replica_ready(rep);
            busy += rep->n_inflight > 0;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON *bs = cl__hist_json(&v->batch_size);
        cJSON *qd = cl__hist_json(&v->queueing_delay_us);
        ok = o != NULL && bs != NULL && qd != NULL && cJSON_AddItemToArray(versions, o);
        if (!ok) {
            cJSON_Delete(o);
            cJSON_Delete(bs);
            cJSON_Delete(qd);
            break;
        }
        cJSON_AddStringToObject(o, "model", v->model);
        cJSON_AddStringToObject(o, "version", v->version);
        cJSON_AddNumberToObject(o, "queue_depth", q ? (double)cl_edf_len(&q->heap) : 0);
        cJSON_AddNumberToObject(o, "replicas_live", live);
        cJSON_AddNumberToObject(o, "replicas_busy", busy);
        cJSON_AddNumberToObject(o, "batches_dispatched", (double)v->batches_dispatched);
        cJSON_AddNumberToObject(o, "tasks_dispatched", (double)v->tasks_dispatched);
        cJSON_AddNumberToObject(o, "tasks_expired", (double)v->tasks_expired);
        cJSON_AddNumberToObject(o, "tasks_shed", (double)v->tasks_shed);
        cJSON_AddItemToObject(o, "batch_size", bs);
        cJSON_AddItemToObject(o, "queueing_delay_us", qd);
        cl_hist_merge(&all, &v->queueing_delay_us);
    }
    cJSON *qd = ok ? cl__hist_json(&all) : NULL;
    if (qd == NULL || !cJSON_AddItemToObject(root, "queueing_delay_us", qd)) {
        cJSON_Delete(qd);
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddNumberToObject(root, "tasks_received", (double)s->stats.tasks_received);
    cJSON_AddNumberToObject(root, "tasks_no_replica", (double)s->stats.no_replica);
    cJSON_AddNumberToObject(root, "tasks_replica_lost", (double)s->stats.replica_lost);
    cJSON_AddNumberToObject(root, "tasks_hedged", (double)s->stats.tasks_hedged);
    return root;
}
