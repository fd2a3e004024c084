/* The frontend's insides, shared by its own files only: the actor's state,
 * a query in flight, and the steps every intake (NATS, HTTP) goes through:
 *
 *   prepare  decode and validate the body, resolve the model version from
 *            the view; either an immediate reply (error, default, empty
 *            batch) or a prepared query;
 *   commit   register the query's tasks in the table and arm its deadline
 *            timer, then append the tasks to an outbox (coalesced per
 *            model version) that the caller flushes;
 *   finish   results, deadlines and send failures fill the query's
 *            entries; the last one delivers the reply (NATS publish or
 *            HTTP resume) outside the lock.
 *
 * One mutex (fe->mu) guards the task table, the deadline heap, every
 * query's entries and the prediction cache's pending entries (the cache
 * also has a mutex of its own, for its stats; it is taken inside fe->mu).
 * Nothing here blocks on the network while holding it. */
#ifndef CL_FE_CORE_H
#define CL_FE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cl_buf.h"
#include "cl_bus.h"
#include "cl_frontend.h"
#include "cl_kv.h"
#include "cl_loop.h"
#include "cl_service.h"
#include "cl_subject.h"
#include "cl_view.h"
#include "cl_wire.h"
#include "fe_cache.h"
#include "fe_decode.h"
#include "fe_encode.h"
#include "fe_metrics.h"
#include "fe_pending.h"

#define CL_FE_DEFAULT_PORT 1337
#define CL_FE_DEFAULT_METRICS_PORT 1390
#define CL_FE_DEFAULT_CACHE_BYTES ((size_t)33554432)
/* HTTP on the io thread's loop; N > 0: libmicrohttpd's own N threads. */
#define CL_FE_DEFAULT_THREADS 0
#define CL_FE_DEFAULT_MAX_PENDING (1u << 20)
/* The largest HTTP body by default: the bus' own limit. A body is JSON,
 * larger than the raw input it carries (about 2.4x for doubles, 1.33x for
 * base64 bytes), so an 8 MB tensor of doubles (about 19 MB of JSON) fits;
 * what is still too large for the bus once decoded is refused with 413. */
#define CL_FE_DEFAULT_MAX_BODY ((size_t)CL_BUS_MAX_PAYLOAD)
/* Outgoing task batches: at most this many tasks before they are
 * published even in the middle of a turn. */
#define CL_FE_BATCH_MAX_TASKS 1024
/* Fixed bytes of one encoded task besides its reply subject and input. */
#define CL_FE_TASK_OVERHEAD 27
#define CL_FE_BATCH_HEADER 8

typedef struct fe_http fe_http;
typedef struct fe_http_req fe_http_req;
typedef struct fe_exporter fe_exporter;

typedef struct {
    uint64_t query_id;
    uint64_t task_id;
    int kind; /* cl_fe_answer_kind, or -1 while waiting */
    char *text;
    size_t len;
    /* With the cache: the pending entry this entry waits on (task_id is
     * then unused: the entry's task is in the table under the cache
     * entry, see fe_query.c), or NULL. */
    cl_fe_cache_entry *ce;
} fe_entry;

typedef struct fe_query {
    cl_fe_timer timer; /* deadline; first member (see query_of_timer) */
    struct fe_query *next_done;
    fe_http_req *http; /* HTTP origin, or NULL */
    char *reply;       /* NATS reply subject, or NULL */
    char *app;
    char *default_output;
    char *model, *version;
    uint64_t start_us; /* monotonic */
    uint64_t deadline_wall, slo_us; /* what a task for it carries (a cache re-send) */
    size_t n, remaining;
    fe_entry e[];
} fe_query;

typedef struct {
    int status; /* HTTP status */
    char *body; /* malloc'd, NUL-terminated; NULL means out of memory */
} cl_fe_reply;

typedef struct {
    fe_query *q;
    cl_fe_inputs in;
    int input_type;
    uint64_t slo_us;
    uint64_t start_wall; /* wall clock when the query arrived: deadline = start_wall + slo */
    char subject[CL_SUBJECT_MAX]; /* <p>.route.task.<model>.<version> */
    char reply[CL_SUBJECT_MAX];   /* <p>.fe.<id>.results.<model>: its tasks' results */
    size_t reply_len;
    uint32_t scope; /* cl_fe_scope(model): only results on reply answer its tasks */
} cl_fe_prep;

typedef struct {
    char subject[CL_SUBJECT_MAX];
    cl_buf buf;
    uint32_t count;
} fe_out_batch;

/* Task batches waiting to be published, one per model version. Owned by
 * one thread. */
typedef struct {
    fe_out_batch *v;
    size_t n, cap;
} cl_fe_outbox;

struct cl_frontend {
    cl_bus *bus;
    const char *prefix;
    char id[23];
    char results_subject[CL_SUBJECT_MAX]; /* <p>.fe.<id>.results.*: what it
                                             subscribes to (.<model> for each
                                             model's tasks) */
    size_t max_payload;
    cl_frontend_opts opts;
    char *http_host;

    cl_kv *kv;
    cl_view *view;
    cl_service *svc;
    cl_fe_metrics *metrics;
    cl_fe_cache *cache; /* NULL when opts.cache_bytes is 0 */

    /* The hot path: one thread (io) runs a bus loop that reads queries
     * (predict_subject, queue group "frontend") and results, serves the
     * HTTP door when it runs on the loop (opts.http_threads 0), and at the
     * end of every turn publishes the turn's tasks (io_ob, one batch per
     * model version) and replies in one write. */
    cl_loop *loop;
    char predict_subject[CL_SUBJECT_MAX]; /* <p>.predict.* */
    cl_fe_outbox io_ob;                   /* the io thread's */
    cl_sub *update_sub;
    pthread_t io_th, update_th, timer_th;
    bool io_started, update_started, timer_started;
    atomic_bool stop_intake; /* no new queries */
    atomic_bool stop_all;    /* results and timer threads end */
    /* fe_query.c: reads of the state store on a view miss (token bucket) */
    pthread_mutex_t store_check_mu;
    double store_check_tokens;
    uint64_t store_check_at_us;

    pthread_mutex_t mu;
    pthread_cond_t timer_cv; /* new earliest deadline, or stop */
    uint64_t timer_until;    /* when the waiting timer thread wakes; 0 while it runs */
    pthread_cond_t idle_cv;  /* n_queries dropped to 0 */
    cl_fe_table table;
    cl_fe_heap heap;
    size_t n_queries;

    fe_http *http;
    fe_exporter *exporter; /* metrics: JSON on the query port, Prometheus port */
};

/* The HTTP door runs on the io thread's bus loop (opts.http_threads 0),
 * not on libmicrohttpd's own threads. */
static inline bool cl_fe_door_on_loop(const cl_frontend *fe)
{
    return fe->opts.http_threads == 0;
}

/* fe_query.c */
bool cl_fe_prepare(cl_frontend *fe, const char *app, const char *body, size_t len,
                   cl_fe_prep *prep, cl_fe_reply *reply);
void cl_fe_prep_deinit(cl_fe_prep *prep);
/* prep->q must have its origin (http or reply) set. Consumes prep. Returns
 * false with *reply (503) when too many tasks are in flight. */
bool cl_fe_commit(cl_frontend *fe, cl_fe_prep *prep, cl_fe_outbox *ob, cl_fe_reply *reply);
cl_fe_reply cl_fe_update(cl_frontend *fe, const char *app, const char *body, size_t len);
cl_fe_reply cl_fe_error_reply(int status, const char *error, const char *cause);
/* Fills the entries of these results (from replicas, the router, or a
 * failed send); late ones are dropped. Takes fe->mu. */
/* Answers the tasks of results. model: the model whose results subject
 * they came on (a task of another model keeps waiting: a replica cannot
 * answer another model's tasks); NULL for answers the frontend makes
 * itself. */
void cl_fe_complete(cl_frontend *fe, const cl_result *results, size_t n, const char *model);
/* The tag of model a task carries in the task table. */
uint32_t cl_fe_scope(const char *model, size_t len);
/* Answers every expired query (timer thread). Returns the next deadline or
 * 0 when none. Takes fe->mu. */
uint64_t cl_fe_expire(cl_frontend *fe, uint64_t now_us);
/* Answers every query still waiting, with the default (shutdown). */
void cl_fe_expire_all(cl_frontend *fe);

/* Publishes on the frontend's loop: from the io thread during a turn it is
 * written at the turn's end, with the rest of the turn's output; from any
 * other thread at once. */
cl_status cl_fe_publish(cl_frontend *fe, const char *subject, const void *data,
                        size_t len) CL_MUST_USE;

/* fe_outbox.c */
void cl_fe_outbox_init(cl_fe_outbox *ob);
void cl_fe_outbox_deinit(cl_fe_outbox *ob);
cl_status cl_fe_outbox_add(cl_frontend *fe, cl_fe_outbox *ob, const char *subject,
                           const cl_task *task) CL_MUST_USE;
void cl_fe_outbox_flush(cl_frontend *fe, cl_fe_outbox *ob);

/* fe_exporter.c: the router's snapshot for /metrics, and the Prometheus
 * port (opts.metrics_port; none when < 0). */
cl_status cl_fe_exporter_start(fe_exporter **out, cl_frontend *fe, cl_err *err) CL_MUST_USE;
int cl_fe_exporter_port(const fe_exporter *x); /* -1 without a Prometheus port */
/* Answers a suspended GET /metrics of the query port (Clipper's JSON) once
 * the router's snapshot came or did not. */
void cl_fe_exporter_json(fe_exporter *x, fe_http_req *req);
/* Answers what is queued, then stops. After the query port's HTTP. */
void cl_fe_exporter_free(fe_exporter *x);

/* fe_http.c */
cl_status cl_fe_http_start(fe_http **out, cl_frontend *fe, cl_err *err) CL_MUST_USE;
int cl_fe_http_port(const fe_http *h);
/* Waits (up to timeout_ms) until no HTTP request is being served. */
void cl_fe_http_wait_idle(fe_http *h, int timeout_ms);
void cl_fe_http_free(fe_http *h);
/* With HTTP on the io thread's loop: the fd that says the door has work,
 * and one pass over that work (io thread only). */
int cl_fe_http_poll_fd(const fe_http *h);
void cl_fe_http_run(fe_http *h);
/* How long the io thread may wait before running the door again. */
int cl_fe_http_wait_ms(fe_http *h, int max_ms);
/* Hands a finished reply to a suspended request and resumes it (any thread).
 * Takes ownership of body. */
void cl_fe_http_complete(fe_http_req *req, int status, char *body);

#endif
