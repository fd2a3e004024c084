/* The replica actor: serves one model version.
 *
 * Main thread: joins the bus, heartbeats "starting" (with a random
 * incarnation for this start, cl_replicas.h), reads the model entry from
 * the KV state, fetches the artifact (checked against the entry's digest),
 * starts the embedded Python and loads the function; any failure there is
 * a "failed" heartbeat with its cause and exit code 3. An artifact that is
 * not the registered one cannot mend (stored artifacts are immutable), so
 * then the replica stays up reporting "failed" until it is stopped instead
 * of exiting into a restart loop. Otherwise it subscribes to its work
 * subject, pulls once, heartbeats "ready" and waits for SIGINT/SIGTERM.
 *
 * Worker thread (the only one that calls the model): runs the bus loop
 * (cl_loop) that carries the work subject, so a batch is read and handled
 * on this thread; calls the model once per batch, publishes the results
 * grouped per reply subject and pulls again, all written at once when the
 * batch is done; while idle it repeats the pull every second so a
 * restarted router learns about it. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cl_actor.h"
#include "cl_artifact.h"
#include "cl_clock.h"
#include "cl_host.h"
#include "cl_kv.h"
#include "cl_log.h"
#include "cl_loop.h"
#include "cl_replica.h"
#include "cl_state.h"
#include "cl_wire.h"
#include "py_runtime.h"
#include "replica_internal.h"

#ifndef CL_RUNTIME_DIR
#error "CL_RUNTIME_DIR (the directory of clipper_runtime.py) must be defined by the build"
#endif
#ifndef CL_PYTHON_HOME
#error "CL_PYTHON_HOME (the prefix of the embedded Python) must be defined by the build"
#endif

#define PULL_REPEAT_US 1000000u /* an idle replica pulls again every second */
#define CAUSE_MAX 1024

typedef struct {
    cl__replica_opts opts;
    uint32_t id;
    char id_str[16];
    char hb_subject[CL_SUBJECT_MAX];
    char work_subject[CL_SUBJECT_MAX];
    char pull_subject[CL_SUBJECT_MAX];
    atomic_uint_fast64_t completed; /* work messages answered, said in each pull */

    cl_bus *bus;
    cl_kv *kv;
    cl_service *svc;
    cl__hb *hb;
    cl__health *health;
    cl__bus_watch *watch; /* --exit-after-bus-loss, or NULL */
    cl_py *py;
    cl_model model;
    bool model_decoded;
    cl_loop *loop; /* carries the work subject, run by the worker */
    uint64_t last_pull; /* the worker's, monotonic */
    char leader_subject[CL_SUBJECT_MAX];
    uint64_t leader_epoch; /* the worker's: the leading router's epoch last seen */
    bool pull_reconnected; /* the worker's: the next pull says the loop reconnected */

    pthread_t worker;
    bool worker_started;
    atomic_bool stopping;
    cl__replies replies;          /* the worker's */

    atomic_uint_fast64_t batches;
    atomic_uint_fast64_t queries;
    atomic_uint_fast64_t failed_queries;
    atomic_uint_fast64_t python_us;
} replica;

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* ---------------------------------------------------------------- stats */

static void add_stats(void *closure, cJSON *data)
{
    replica *r = closure;
    cJSON_AddStringToObject(data, "model_name", r->opts.model);
    cJSON_AddStringToObject(data, "model_version", r->opts.version);
    cJSON_AddNumberToObject(data, "replica_id", (double)r->id);
    cJSON_AddNumberToObject(data, "batches", (double)atomic_load(&r->batches));
    cJSON_AddNumberToObject(data, "queries", (double)atomic_load(&r->queries));
    cJSON_AddNumberToObject(data, "model_errors", (double)atomic_load(&r->failed_queries));
    cJSON_AddNumberToObject(data, "python_ms", (double)atomic_load(&r->python_us) / 1000.0);
}

/* ---------------------------------------------------------------- start */

static CL_MUST_USE cl_status build_subjects(replica *r, cl_err *err)
{
    const char *p = cl_bus_prefix(r->bus);
    cl_status st = cl_subj_replica_hb(r->hb_subject, p, r->opts.model, r->opts.version, r->id_str, err);
    if (st == CL_OK)
        st = cl_subj_replica_work(r->work_subject, p, r->opts.model, r->opts.version, r->id_str, err);
    if (st == CL_OK)
        st = cl_subj_route_pull(r->pull_subject, p, r->opts.model, r->opts.version, err);
    return st;
}

/* A random, non-zero 64-bit value naming this start of the replica: the
 * replica table lets only heartbeats of the incarnation it knows change
 * a live replica's entry (cl_replicas.h). */
static uint64_t new_incarnation(void)
{
    uint64_t v = 0;
    while (v == 0) {
        if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
            /* No entropy source: fall back to the bus' unique tokens. */
            char token[23];
            cl_bus_new_token(token);
            for (const char *p = token; *p; p++)
                v = v * 1099511628211u + (uint8_t)*p;
            v ^= cl_mono_us() ^ (uint64_t)getpid() << 32;
        }
    }
    return v;
}

static CL_MUST_USE cl_status start_heartbeat(replica *r, cl_err *err)
{
    cl_replica_info info;
    memset(&info, 0, sizeof(info));
    info.incarnation = new_incarnation();
    snprintf(info.model, sizeof(info.model), "%s", r->opts.model);
    snprintf(info.version, sizeof(info.version), "%s", r->opts.version);
    info.replica_id = r->id;
    snprintf(info.state, sizeof(info.state), "starting");
    cl_host_name(info.host, sizeof(info.host));
    info.pid = (int)getpid();
    return cl__hb_start(&r->hb, r->bus, r->hb_subject, &info, err);
}

/* Reads and decodes model.<name>.<version>. */
static CL_MUST_USE cl_status read_model(replica *r, char *cause)
{
    const char *m = r->opts.model, *v = r->opts.version;
    char key[CL_KEY_MAX];
    char *value = NULL;
    size_t len = 0;
    cl_err err;
    cl_err_clear(&err);

    cl_status st = cl_kv_open(&r->kv, r->bus, &err);
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "cannot open the cluster state: %s", err.msg);
        return st;
    }
    st = cl_key_model(key, m, v, &err);
    if (st == CL_OK)
        st = cl_kv_get(r->kv, key, &value, &len, NULL, &err);
    if (st == CL_ERR_NOT_FOUND) {
        snprintf(cause, CAUSE_MAX,
                 "model %s:%s is not registered (the cluster state has no key '%s')", m, v, key);
        return st;
    }
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "cannot read model %s:%s from the cluster state: %s", m, v,
                 err.msg);
        return st;
    }
    st = cl_model_from_json(&r->model, value, len, &err);
    free(value);
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "the cluster state's entry for model %s:%s is invalid: %s", m,
                 v, err.msg);
        return st;
    }
    r->model_decoded = true;
    if (r->model.input_type < 0 || r->model.input_type >= CL__INPUT_COUNT) {
        snprintf(cause, CAUSE_MAX, "model %s:%s has an unknown input type (%d)", m, v,
                 r->model.input_type);
        return CL_ERR_INVALID;
    }
    return CL_OK;
}

/* Fetches the artifact; its manifest is checked against the model entry's
 * digest and size before any chunk is read, and its bytes against the
 * manifest. CL_ERR_DIGEST for an artifact that is not the registered one,
 * corrupt or with a malformed manifest: none of these mends by itself. */
static CL_MUST_USE cl_status fetch_artifact(replica *r, void **data, size_t *len, char *cause)
{
    const char *m = r->opts.model, *v = r->opts.version;
    const char *want = r->model.artifact_sha256 ? r->model.artifact_sha256 : "";
    /* An entry without a digest records no size either (artifact_size 0). */
    int64_t want_size = want[0] != '\0' && r->model.artifact_size > 0 ? r->model.artifact_size
                                                                       : -1;
    char digest[CL_SHA256_HEX];
    cl_err err;
    cl_err_clear(&err);
    cl_status st = cl_artifact_get_expected(r->bus, m, v, want, want_size, data, len, digest, &err);
    if (st == CL_ERR_NOT_FOUND) {
        snprintf(cause, CAUSE_MAX,
                 "no artifact is stored for model %s:%s (deploy its function first, e.g. with "
                 "deploy_python_closure)",
                 m, v);
        return st;
    }
    if (st == CL_ERR_DIGEST || st == CL_ERR_INVALID) {
        /* err names the model and what did not match */
        snprintf(cause, CAUSE_MAX,
                 "%s; stored artifacts cannot be replaced, so delete version %s and deploy it "
                 "again",
                 err.msg, v);
        return CL_ERR_DIGEST;
    }
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "cannot fetch the artifact of model %s:%s: %s", m, v, err.msg);
        return st;
    }
    cl_info("fetched the artifact of model %s:%s (%zu bytes, sha256 %.12s...)", m, v, *len, digest);
    return CL_OK;
}

/* Before the function loads: refuses an artifact pickled by another
 * Python or cloudpickle (the versions the model entry records), then
 * installs the version's pkgs_to_install, saying so in the heartbeat
 * ("starting" with the packages as its cause) while pip runs. */
static CL_MUST_USE cl_status prepare(replica *r, char *cause)
{
    const char *m = r->opts.model, *v = r->opts.version;
    char *warning = NULL, *why = NULL;
    cl_status st = cl_py_check_versions(r->py, m, v, r->model.python_version,
                                        r->model.cloudpickle_version, &warning, &why);
    if (warning)
        cl_warn("%s", warning);
    free(warning);
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "%s", why ? why : "out of memory while checking versions");
        free(why);
        return st;
    }
    if (r->model.n_pkgs == 0)
        return CL_OK;

    char doing[CAUSE_MAX];
    int n = snprintf(doing, sizeof(doing), "installing packages:");
    for (size_t i = 0; i < r->model.n_pkgs && n > 0 && (size_t)n < sizeof(doing); i++)
        n += snprintf(doing + n, sizeof(doing) - (size_t)n, " %s", r->model.pkgs_to_install[i]);
    cl_info("model %s:%s: %s", m, v, doing);
    cl__hb_set_state(r->hb, "starting", doing);
    uint64_t t0 = cl_mono_us();
    st = cl_py_install(r->py, r->model.pkgs_to_install, r->model.n_pkgs, m, v, &why);
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "%s", why ? why : "out of memory while installing packages");
        free(why);
        return st;
    }
    cl_info("packages of model %s:%s ready in %.1f s", m, v, (double)(cl_mono_us() - t0) / 1e6);
    cl__hb_set_state(r->hb, "starting", NULL);
    return CL_OK;
}

static CL_MUST_USE cl_status load(replica *r, char *cause)
{
    void *data = NULL;
    size_t len = 0;
    cl_err err;
    cl_err_clear(&err);

    cl_status st = read_model(r, cause);
    if (st != CL_OK)
        return st;
    cl__hb_set_model(r->hb, cl_input_type_name((cl_input_type)r->model.input_type),
                     r->model.runtime);

    st = fetch_artifact(r, &data, &len, cause);
    if (st != CL_OK)
        return st;

    const char *home = env_or("CLIPPER_PYTHON_HOME", CL_PYTHON_HOME);
    const char *runtime_dir = env_or("CLIPPER_RUNTIME_DIR", CL_RUNTIME_DIR);
    uint64_t t0 = cl_mono_us();
    st = cl_py_start(&r->py, home, runtime_dir, &err);
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "cannot start the embedded Python: %s", err.msg);
        free(data);
        return st;
    }
    st = prepare(r, cause);
    if (st != CL_OK) {
        free(data);
        return st;
    }
    char *why = NULL;
    st = cl_py_load(r->py, r->model.runtime, data, len, NULL, r->opts.model, r->opts.version, &why);
    free(data);
    if (st != CL_OK) {
        snprintf(cause, CAUSE_MAX, "%s", why ? why : "out of memory while loading the model");
        free(why);
        return st;
    }
    cl_info("loaded model %s:%s (runtime %s, input type %s) in %.1f ms", r->opts.model,
            r->opts.version,
            r->model.runtime && *r->model.runtime ? r->model.runtime : "python-closure",
            cl_input_type_name((cl_input_type)r->model.input_type),
            (double)(cl_mono_us() - t0) / 1000.0);
    return CL_OK;
}

/* ----------------------------------------------------------------- work */

/* on_loop: with the worker's batch (its results and this pull share one
 * write); otherwise on the bus' connection, in order with the heartbeats. */
static void pull(replica *r, bool on_loop)
{
    char *body = cl__replica_pull_body(r->id, atomic_load(&r->completed), r->pull_reconnected);
    r->pull_reconnected = false;
    size_t len = body ? strlen(body) : 0;
    cl_status st = body == NULL ? CL_ERR_NOMEM
                   : on_loop    ? cl_loop_publish(r->loop, r->pull_subject, body, len)
                                : cl_bus_publish(r->bus, r->pull_subject, body, len);
    if (st != CL_OK)
        cl_warn("pull not published: %s", cl_status_text(st));
    free(body);
}

static void add_result(replica *r, const cl_task *t, uint8_t status, const void *data, size_t len)
{
    cl_status st = cl__replies_add(&r->replies, t->reply, t->reply_len, t->task_id, status, data,
                                   (uint32_t)len);
    if (st == CL_ERR_INVALID)
        CL_LOG_LIMITED(CL_LOG_WARN,
                       "task %llu has no valid reply subject; its result is dropped",
                       (unsigned long long)t->task_id);
    else if (st != CL_OK)
        cl_error("cannot build the result of task %llu: %s", (unsigned long long)t->task_id,
                 cl_status_text(st));
}

static void handle_batch(replica *r, const cl_msg *msg)
{
    cl_task *tasks = NULL;
    uint32_t n = 0;
    cl_err err;
    cl_err_clear(&err);
    if (cl_wire_tasks_decode(cl_msg_data(msg), cl_msg_len(msg), &tasks, &n, &err) != CL_OK) {
        CL_LOG_LIMITED(CL_LOG_WARN, "dropping a malformed work batch (%zu bytes): %s",
                       cl_msg_len(msg), err.msg);
        return;
    }
    uint64_t t0 = cl_mono_us();
    const int type = r->model.input_type;
    const uint8_t **inputs = calloc(n ? n : 1, sizeof(*inputs));
    size_t *lens = calloc(n ? n : 1, sizeof(*lens));
    size_t *slot = calloc(n ? n : 1, sizeof(*slot)); /* task -> model input, or SIZE_MAX */
    cl_py_batch out;
    cl_py_batch_init(&out);
    cl_status st = CL_ERR_NOMEM;
    size_t m = 0;
    if (inputs && lens && slot) {
        for (uint32_t i = 0; i < n; i++) {
            if (tasks[i].input_type != type) {
                slot[i] = SIZE_MAX;
                continue;
            }
            inputs[m] = tasks[i].input;
            lens[m] = tasks[i].input_len;
            slot[i] = m++;
        }
        st = m ? cl_py_predict(r->py, type, inputs, lens, m, &out) : CL_OK;
    }

    cl__replies_reset(&r->replies);
    uint64_t failed = 0;
    for (uint32_t i = 0; i < n; i++) {
        const cl_task *t = &tasks[i];
        if (!slot || slot[i] == SIZE_MAX) {
            char text[200];
            int len = slot ? snprintf(text, sizeof(text),
                                      "Input type %s does not match the model's input type %s",
                                      cl_input_type_name((cl_input_type)t->input_type),
                                      cl_input_type_name((cl_input_type)type))
                           : snprintf(text, sizeof(text), "The replica ran out of memory");
            add_result(r, t, CL_RESULT_MODEL_ERROR, text, (size_t)len);
            failed++;
        } else if (st == CL_OK) {
            add_result(r, t, CL_RESULT_OK, out.text.data + out.offsets[slot[i]],
                       out.lens[slot[i]]);
        } else {
            const char *text = out.error ? out.error : "The replica ran out of memory";
            add_result(r, t, CL_RESULT_MODEL_ERROR, text, strlen(text));
            failed++;
        }
    }
    for (size_t i = 0; i < r->replies.count; i++) {
        const cl__reply *b = &r->replies.items[i];
        cl_status pst = cl_loop_publish(r->loop, b->subject, b->buf.data, b->buf.len);
        if (pst != CL_OK)
            cl_warn("cannot publish %u results to %s: %s", cl_wire_count(&b->buf), b->subject,
                    cl_status_text(pst));
    }

    uint64_t total_us = cl_mono_us() - t0;
    atomic_fetch_add(&r->batches, 1);
    atomic_fetch_add(&r->queries, n);
    atomic_fetch_add(&r->failed_queries, failed);
    atomic_fetch_add(&r->python_us, out.call_us);
    if (r->svc)
        cl_service_count(r->svc, failed > 0, total_us * 1000u);
    cl_debug("batch of %u: python call %.3f ms, total %.3f ms, %llu failed", n,
             (double)out.call_us / 1000.0, (double)total_us / 1000.0, (unsigned long long)failed);

    cl_py_batch_deinit(&out);
    free(slot);
    free(lens);
    free(inputs);
    free(tasks);
}

/* A work batch, on the worker thread (a callback of its loop). */
static void on_work(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    replica *r = closure;
    handle_batch(r, msg);
    cl_msg_free(msg);
    atomic_fetch_add(&r->completed, 1);
    if (atomic_load(&r->stopping))
        return; /* the batch in hand is answered; take no more */
    pull(r, true); /* goes out with the results, in the same write */
    r->last_pull = cl_mono_us();
}

/* The leading router's hello (<p>.route.leader; leader.h in the router),
 * on the worker thread. A new
 * leader (a router took over from one that died) knows nothing of this
 * replica's being idle: pull at once instead of at the next repeat. A busy
 * replica pulls when its batch is done anyway. */
static void on_hello(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    replica *r = closure;
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(msg), cl_msg_len(msg));
    const cJSON *leader = cJSON_GetObjectItemCaseSensitive(j, "leader");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    if (cJSON_IsTrue(leader) && cJSON_IsNumber(epoch) && epoch->valuedouble >= 0 &&
        (uint64_t)epoch->valuedouble != r->leader_epoch) {
        bool first = r->leader_epoch == 0;
        r->leader_epoch = (uint64_t)epoch->valuedouble;
        if (!first && !atomic_load(&r->stopping)) {
            pull(r, true);
            r->last_pull = cl_mono_us();
        }
    }
    cJSON_Delete(j);
    cl_msg_free(msg);
}

static void *work_loop(void *arg)
{
    replica *r = arg;
    r->last_pull = cl_mono_us(); /* the main thread pulled before "ready" */
    uint64_t connects = cl_loop_reconnects(r->loop);
    while (!atomic_load(&r->stopping)) {
        /* Idle, the worker wakes only for messages, its next repeated pull,
         * or a stop (stop_worker wakes the loop). */
        uint64_t now = cl_mono_us(), due = r->last_pull + PULL_REPEAT_US;
        int wait_ms = due > now ? (int)((due - now) / 1000u) + 1 : 0;
        cl_status st = cl_loop_run(r->loop, wait_ms);
        /* Back on the bus after an outage (a nats-server restart): the
         * batch or pull in flight may have gone with the server, so tell
         * the router at once rather than at the next repeat. */
        bool back = cl_loop_reconnects(r->loop) != connects;
        connects = cl_loop_reconnects(r->loop);
        r->pull_reconnected = r->pull_reconnected || back;
        if (back || (st == CL_ERR_TIMEOUT && cl_mono_us() - r->last_pull >= PULL_REPEAT_US)) {
            pull(r, true);
            r->last_pull = cl_mono_us();
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static void cleanup(replica *r)
{
    if (r->worker_started) {
        cl_loop_wake(r->loop); /* stopping is set: the worker ends its wait */
        pthread_join(r->worker, NULL);
    }
    cl_loop_free(r->loop);
    r->loop = NULL;
    cl__health_free(r->health);
    r->health = NULL;
    cl__hb_free(r->hb);
    cl_service_free(r->svc);
    cl_py_free(r->py);
    cl_kv_free(r->kv);
    cl__replica_watch_free(r->watch); /* it looks at the bus until then */
    r->watch = NULL;
    cl_bus_free(r->bus); /* flushes what is still buffered */
    if (r->model_decoded)
        cl_model_deinit(&r->model);
    cl__replies_deinit(&r->replies);
}

static int fail(replica *r, const char *cause)
{
    cl_error("replica %s of model %s:%s failed: %s", r->id_str, r->opts.model, r->opts.version,
             cause);
    if (r->hb) {
        cl__hb_set_state(r->hb, "failed", cause);
        /* Best effort: the replica exits next, and the manager sees the
         * exit even when this last heartbeat is lost. */
        cl_status_ignore(cl_bus_flush(r->bus, 2000));
    }
    atomic_store(&r->stopping, true);
    cleanup(r);
    return CL_REPLICA_EXIT_FAILED;
}

/* A failure a restart cannot mend (the stored artifact is not the model
 * entry's): keeps heartbeating "failed" with the cause until SIGINT or
 * SIGTERM, so the container manager sees a running replica that reports
 * why it does not serve instead of restarting it forever. */
static int fail_and_stay(replica *r, const char *cause)
{
    cl_error("replica %s of model %s:%s failed: %s; it stays up reporting this until stopped",
             r->id_str, r->opts.model, r->opts.version, cause);
    cl__hb_set_state(r->hb, "failed", cause);
    /* Best effort: the heartbeat repeats the "failed" state every period. */
    cl_status_ignore(cl_bus_flush(r->bus, 2000));
    int sig = cl_actor_wait_stop();
    cl_info("stopping (%s)", sig ? strsignal(sig) : "requested");
    cl__hb_set_state(r->hb, "stopped", cause);
    atomic_store(&r->stopping, true);
    cleanup(r);
    return CL_REPLICA_EXIT_FAILED;
}

/* True when SIGINT or SIGTERM arrived (they are blocked, so they wait for
 * cl_actor_wait_stop): loading cannot be interrupted, but a replica told
 * to stop meanwhile should not announce itself ready. */
static bool stop_pending(void)
{
    sigset_t pending;
    if (sigpending(&pending) != 0)
        return false;
    return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

static int serve(replica *r)
{
    cl_err err;
    cl_err_clear(&err);
    char cause[CAUSE_MAX] = "";

    if (cl_actor_connect(&r->bus, &r->opts.actor, "clipper-replica", true) != CL_OK) {
        cleanup(r);
        return CL_REPLICA_EXIT_ERROR;
    }
    cl__replies_init(&r->replies, (size_t)cl_bus_max_payload(r->bus));
    r->watch = cl__replica_watch_bus(r->bus, r->opts.exit_after_bus_loss_s);
    if (build_subjects(r, &err) != CL_OK || start_heartbeat(r, &err) != CL_OK ||
        (r->opts.health_port > 0 &&
         cl__health_start(&r->health, r->hb, r->opts.health_port, &err) != CL_OK)) {
        cl_error("%s", err.msg);
        cleanup(r);
        return CL_REPLICA_EXIT_ERROR;
    }

    const char *const endpoints[] = {r->work_subject, NULL};
    cl_service_info svc = {
        .name = "clipper-replica",
        .version = CL_VERSION,
        .description = "Clipper model replica: runs one model version in an embedded Python",
        .endpoints = endpoints,
        .stats = add_stats,
        .closure = r,
    };
    if (cl_service_start(&r->svc, r->bus, &svc, &err) != CL_OK)
        cl_warn("the service API is not available: %s", err.msg); /* not fatal */

    cl_status st = load(r, cause);
    if (st == CL_ERR_DIGEST)
        return fail_and_stay(r, cause);
    if (st != CL_OK)
        return fail(r, cause);

    if (stop_pending()) {
        cl_info("a stop signal arrived while loading: not serving");
    } else {
        if (cl_loop_open(&r->loop, r->bus, &err) != CL_OK ||
            cl_loop_subscribe(r->loop, r->work_subject, NULL, on_work, r) != CL_OK ||
            cl_subj_route_leader(r->leader_subject, cl_bus_prefix(r->bus), &err) != CL_OK ||
            cl_loop_subscribe(r->loop, r->leader_subject, NULL, on_hello, r) != CL_OK ||
            cl_loop_sync(r->loop, 5000) != CL_OK) {
            snprintf(cause, sizeof(cause), "cannot subscribe to %s", r->work_subject);
            return fail(r, cause);
        }
        /* Pull before announcing "ready", so a router that reacts to the
         * heartbeat already has this replica in its idle list. */
        pull(r, false);
        cl__hb_set_state(r->hb, "ready", NULL);
        if (pthread_create(&r->worker, NULL, work_loop, r) != 0)
            return fail(r, "cannot start the worker thread");
        r->worker_started = true;
        cl_info("replica %s of model %s:%s is ready on %s", r->id_str, r->opts.model,
                r->opts.version, r->work_subject);
    }

    int sig = cl_actor_wait_stop();
    cl_info("stopping (%s)", sig ? strsignal(sig) : "requested");
    cl__hb_set_state(r->hb, "stopped", NULL);
    atomic_store(&r->stopping, true);
    if (r->worker_started) {
        cl_loop_wake(r->loop);
        pthread_join(r->worker, NULL); /* finishes the batch in hand */
        r->worker_started = false;
    }
    cleanup(r);
    return CL_REPLICA_EXIT_OK;
}

int cl_replica_main(int argc, char **argv)
{
    cl_actor_block_signals();
    cl_log_set_name("replica");

    replica *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "out of memory\n");
        return CL_REPLICA_EXIT_ERROR;
    }
    cl_err err;
    cl_err_clear(&err);
    const char *program = "clipper run replica";
    if (cl__replica_opts_parse(&r->opts, argc, argv, &err) != CL_OK) {
        fprintf(stderr, "%s: %s\n\n", program, err.msg);
        cl__replica_usage(stderr, program);
        free(r);
        return CL_REPLICA_EXIT_USAGE;
    }
    if (r->opts.help) {
        cl__replica_usage(stdout, program);
        free(r);
        return CL_REPLICA_EXIT_OK;
    }
    r->id = r->opts.replica_id_given ? r->opts.replica_id : cl__replica_random_id();
    snprintf(r->id_str, sizeof(r->id_str), "%u", (unsigned)r->id);
    char name[64];
    snprintf(name, sizeof(name), "replica %s", r->id_str);
    cl_log_set_name(name);

    int rc = serve(r);
    free(r);
    return rc;
}
