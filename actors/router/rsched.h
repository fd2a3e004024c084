/* The router's scheduling state: one EDF queue per model version, the
 * replicas of each version with their one in-flight batch and batch-size
 * policy, and the counters behind the router's stats.
 *
 * Everything here is single-threaded and free of I/O: each call takes the
 * current time from its caller and writes what must be published into an
 * outbox. router.c serialises the calls under its lock, which lets the unit
 * tests drive the scheduler without a bus. */
#ifndef CL_ROUTER_SCHED_H
#define CL_ROUTER_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "batch_policy.h"
#include "cl_subject.h"
#include "edf.h"
#include "outbox.h"
#include "rstats.h"

/* A queued or in-flight task: an owned copy of a decoded cl_task. */
typedef struct {
    uint64_t task_id;
    uint64_t deadline_us; /* wall clock */
    uint32_t slo_us;
    uint8_t input_type;
    uint16_t reply_len;
    uint32_t input_len;
    uint64_t arrived_mono_us; /* when it reached the router (queueing delay) */
    const char *reply;    /* NUL-terminated, in the same allocation */
    const uint8_t *input; /* in the same allocation */
} cl__rtask;

/* One allocation holding the task and its bytes; free with free(). NULL
 * when out of memory. */
cl__rtask *cl__rtask_copy(uint64_t task_id, uint64_t deadline_us, uint32_t slo_us,
                          uint8_t input_type, const char *reply, uint16_t reply_len,
                          const uint8_t *input, uint32_t input_len);

typedef struct cl__replica {
    struct cl__replica *next;
    uint32_t id;
    bool hb_seen;         /* cl_replicas knows it: heartbeats decide when it is gone */
    bool hb_ready;        /* its last heartbeat said "ready" */
    bool pulled;          /* it pulled at least once: live and ready */
    bool idle;            /* it asked for work and has none */
    uint64_t last_pull_mono_us;
    uint64_t idle_since_mono_us;
    /* The batch in flight (n_inflight > 0 iff one is). */
    cl__rtask **inflight;
    uint32_t n_inflight;
    uint32_t inflight_cap;
    uint32_t inflight_limit;       /* the cap it was cut to */
    int64_t inflight_batch_size;   /* the model's batch_size when dispatched */
    uint64_t inflight_slo_us;      /* smallest SLO in it; 0: unknown */
    uint64_t dispatched_mono_us;
    uint64_t batch_seq;
    uint64_t dispatched;  /* batches sent to it (and not failed to send) */
    bool hedged;          /* its batch in flight is overdue and was copied back
                             to the queue for another replica */
    cl_batch_policy policy;
} cl__replica;

typedef struct cl__queue {
    struct cl__queue *next;
    char model[CL_TOKEN_MAX + 1];
    char version[CL_TOKEN_MAX + 1];
    cl_edf heap; /* of cl__rtask *, by deadline */
    cl__replica *replicas;
    cl__vstats *st; /* this version's counters (NULL only when out of memory) */
} cl__queue;

/* The model version's configured batch_size (-1 adaptive). Called with the
 * scheduler's caller holding its lock; must not call back in. */
typedef int64_t (*cl__batch_size_fn)(void *closure, const char *model, const char *version);

typedef struct {
    uint64_t tasks_received;
    uint64_t batches_dispatched;
    uint64_t tasks_dispatched;
    uint64_t expired;
    uint64_t shed; /* answered early: could not finish before their deadline */
    uint64_t no_replica;
    uint64_t replica_lost;
    uint64_t tasks_hedged; /* copies of an overdue batch's tasks queued again */
    uint64_t batches_completed;
} cl__sched_stats;

typedef struct {
    cl__queue *queues;
    const char *prefix; /* borrowed */
    cl__batch_size_fn batch_size;
    void *batch_size_closure;
    uint32_t batch_bound; /* adaptive upper bound */
    uint64_t replica_timeout_us; /* for replicas only known from their pulls */
    uint64_t next_batch_seq;
    cl__sched_stats stats;
    cl__vstats *vstats; /* per model version, kept until deinit */
} cl__sched;

void cl__sched_init(cl__sched *s, const char *prefix, cl__batch_size_fn batch_size,
                    void *closure);
/* Frees every queued and in-flight task without answering. */
void cl__sched_deinit(cl__sched *s);

/* A batch is planned to come back a fifth of the tightest SLO before its
 * deadline: the rest is for the reply's way from the frontend to the
 * client and the request's way in, which the frontend's deadline does not
 * see. */
#define CL__SLO_GUARD_DIV 5u

/* Takes ownership of tasks[0..n) (not of the array): queues them, or
 * answers them at once (no ready replica: 3; deadline passed: 2). Then
 * dispatches to idle replicas; a task whose deadline would pass before the
 * replica's estimated batch latency is shed when its turn comes (2). */
void cl__sched_tasks(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                     cl__rtask **tasks, size_t n, uint64_t now_wall_us, uint64_t now_mono_us);
/* A replica asked for work: it is live, ready and idle; its batch in
 * flight, if any, is done (its latency feeds the batch-size policy). */
void cl__sched_pull(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                    uint32_t replica_id, uint64_t now_wall_us, uint64_t now_mono_us);
/* A repeat pull can cross a batch only within a round trip of its
 * dispatch; one that comes later than this from an idle replica means the
 * batch was lost, and its tasks are queued again. */
#define CL__LOST_BATCH_US 250000u
/* The same, with the number of batches the replica says it has completed
 * (-1: not said). A pull whose count is below the batches sent to it is a
 * repeat that crossed a batch on its way: it proves the replica alive but
 * does not complete the batch in flight, unless reconnected (the replica's
 * connection was made again since: what was sent before it may be lost,
 * so the batch is queued again at once). */
void cl__sched_pull_counted(cl__sched *s, cl__outbox *ob, const char *model,
                            const char *version, uint32_t replica_id, int64_t completed,
                            bool reconnected, uint64_t now_wall_us, uint64_t now_mono_us);
/* A heartbeat state change ("starting", "ready", ...) or a removal. A
 * removed, "failed" or "stopped" replica's batch in flight is answered 4;
 * when the version has no ready replica left its queue is answered 3. */
void cl__sched_replica(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                       uint32_t replica_id, const char *state, bool removed,
                       uint64_t now_wall_us, uint64_t now_mono_us);
/* Publishing a work batch failed: its tasks go back to the queue and the
 * replica waits for its next pull. */
void cl__sched_send_failed(cl__sched *s, cl__outbox *ob, const char *model, const char *version,
                           uint32_t replica_id, uint64_t batch_seq, uint64_t now_wall_us,
                           uint64_t now_mono_us);
/* Answers every queued task whose deadline has passed (2), and drops
 * replicas known only from pulls that went silent. */
void cl__sched_expire(cl__sched *s, cl__outbox *ob, uint64_t now_wall_us, uint64_t now_mono_us);
/* The earliest deadline still queued (wall clock), or UINT64_MAX. */
uint64_t cl__sched_next_deadline(const cl__sched *s);
/* Answers every queued task with status and text (at shutdown). */
void cl__sched_drain(cl__sched *s, cl__outbox *ob, uint8_t status, const char *text);
/* Adds queue depths and counters to a STATS "data" object. */
void cl__sched_stats_json(const cl__sched *s, cJSON *data);
/* The metrics snapshot answered on <p>.route.stats (docs/protocol.md):
 *   {"versions":[{"model","version","queue_depth","replicas_live",
 *                 "replicas_busy","batches_dispatched","tasks_dispatched",
 *                 "tasks_expired","tasks_shed","batch_size":<hist>,
 *                 "queueing_delay_us":<hist>}, ...],
 *    "queueing_delay_us":<hist over all versions>, "tasks_received",
 *    "tasks_no_replica", "tasks_replica_lost"}
 * with <hist> as cl__hist_json. NULL when out of memory. */
cJSON *cl__sched_snapshot(const cl__sched *s);
/* The counters of model:version, or NULL when it never had a queue. */
const cl__vstats *cl__sched_vstats(const cl__sched *s, const char *model, const char *version);
/* The queue of model:version, or NULL. */
cl__queue *cl__sched_queue(const cl__sched *s, const char *model, const char *version);
cl__replica *cl__sched_replica_find(const cl__queue *q, uint32_t replica_id);

#endif
