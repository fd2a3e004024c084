/* Integration tests of the router against a real nats-server: the router
 * runs in-process, and the test plays the frontend (publishes task batches,
 * reads result batches on its reply subjects) and the replicas (heartbeats,
 * pulls, reads work on their replica subjects).
 *
 * One nats-server serves the whole file; each test uses its own subject
 * prefix, hence its own subjects and KV bucket. The router's $SRV.STATS
 * (queue depths, ready replicas) is how a test knows the router has seen
 * what it sent before taking the next step, instead of sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_json.h"
#include "cl_kv.h"
#include "cl_replicas.h"
#include "cl_router.h"
#include "cl_state.h"
#include "cl_subject.h"
#include "cl_test_nats.h"
#include "cl_wire.h"

#define MS 1000ull
#define SEC (1000 * MS)

static int test_counter;

typedef struct {
    char prefix[32];
    cl_bus *bus;  /* the test's: frontend and replicas */
    cl_bus *rbus; /* the router's */
    cl_kv *kv;
    cl_router *router;
    char reply[CL_SUBJECT_MAX]; /* the frontend's results subject */
    cl_sub *results;
} fixture;

typedef struct {
    uint64_t id;
    uint8_t status;
} result;

/* ---- fixture ----------------------------------------------------------- */

static cl_bus *connect_bus(const char *prefix, bool asap)
{
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.prefix = prefix;
    o.send_asap = asap;
    o.name = asap ? "router-under-test" : "router-test";
    cl_bus *bus = NULL;
    cl_test_bus_connect_opts(&bus, &cl_test_srv, &o);
    return bus;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    *state = f;
    snprintf(f->prefix, sizeof(f->prefix), "rt%d", ++test_counter);
    f->bus = connect_bus(f->prefix, false);
    f->rbus = connect_bus(f->prefix, true);
    if (f->bus == NULL || f->rbus == NULL)
        return -1;
    cl_err err;
    if (cl_kv_open(&f->kv, f->bus, &err) != CL_OK) {
        fprintf(stderr, "kv: %s\n", err.msg);
        return -1;
    }
    /* The results of model m's tasks (most tests'); send_tasks names its
     * model's. */
    snprintf(f->reply, sizeof(f->reply), "%s.fe.test.results.m", f->prefix);
    char any[CL_SUBJECT_MAX];
    snprintf(any, sizeof(any), "%s.fe.test.results.*", f->prefix);
    if (cl_bus_subscribe_sync(&f->results, f->bus, any, NULL) != CL_OK)
        return -1;
    return cl_bus_flush(f->bus, 2000) == CL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL)
        return 0;
    cl_router_free(f->router);
    cl_sub_free(f->results);
    cl_kv_free(f->kv);
    cl_bus_free(f->rbus);
    cl_bus_free(f->bus);
    free(f);
    return 0;
}

/* Registers model:version with batch_size in KV, as the admin would. */
static void put_model(fixture *f, const char *model, const char *version, int64_t batch_size)
{
    cl_model m = {
        .name = (char *)model,
        .version = (char *)version,
        .input_type = CL_INPUT_BYTES,
        .labels = NULL,
        .n_labels = 0,
        .container_name = "NO_CONTAINER",
        .model_data_path = "",
        .batch_size = batch_size,
        .num_replicas = 1,
        .runtime = "python-closure",
        .artifact_sha256 = "",
        .artifact_size = 0,
    };
    cJSON *j = cl_model_to_json(&m);
    assert_non_null(j);
    char *s = cl_json_print(j);
    cJSON_Delete(j);
    assert_non_null(s);
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_model(key, model, version, &err), CL_OK);
    assert_int_equal(cl_kv_put(f->kv, key, s, strlen(s), NULL, &err), CL_OK);
    free(s);
}

static void start_router(fixture *f)
{
    cl_err err;
    cl_status s = cl_router_start(&f->router, f->rbus, &err);
    if (s != CL_OK)
        fail_msg("cl_router_start: %s", err.msg);
}

/* ---- playing the frontend ------------------------------------------------ */

static void add_task(cl_buf *b, uint64_t id, uint64_t deadline_us, uint32_t slo_us,
                     const char *reply)
{
    uint8_t input[8];
    memcpy(input, &id, sizeof(id));
    cl_task t = {
        .task_id = id,
        .deadline_us = deadline_us,
        .slo_us = slo_us,
        .input_type = CL_INPUT_BYTES,
        .reply_len = (uint16_t)strlen(reply),
        .reply = reply,
        .input_len = sizeof(input),
        .input = input,
    };
    assert_int_equal(cl_wire_tasks_add(b, &t), CL_OK);
}

static void publish_batch(fixture *f, const char *model, const char *version, cl_buf *b)
{
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_route_task(subject, f->prefix, model, version, &err), CL_OK);
    assert_int_equal(cl_bus_publish(f->bus, subject, b->data, b->len), CL_OK);
    assert_int_equal(cl_bus_flush(f->bus, 2000), CL_OK);
}

/* Sends n tasks with ids[i] and deadline now + rel_us[i] in one batch. */
static void send_tasks(fixture *f, const char *model, const char *version, size_t n,
                       const uint64_t *ids, const uint64_t *rel_us, uint32_t slo_us)
{
    char reply[CL_SUBJECT_MAX];
    snprintf(reply, sizeof(reply), "%s.fe.test.results.%s", f->prefix, model);
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    uint64_t now = cl_wall_us();
    for (size_t i = 0; i < n; i++)
        add_task(&b, ids[i], now + rel_us[i], slo_us, reply);
    publish_batch(f, model, version, &b);
    cl_buf_deinit(&b);
}

static void send_one(fixture *f, const char *model, const char *version, uint64_t id,
                     uint64_t rel_us)
{
    send_tasks(f, model, version, 1, &id, &rel_us, (uint32_t)rel_us);
}

/* Reads one result batch from sub; returns its count (0 on timeout). */
static size_t read_results(cl_sub *sub, int timeout_ms, result *out, size_t max)
{
    cl_msg *m = NULL;
    if (cl_sub_next(sub, &m, timeout_ms) != CL_OK)
        return 0;
    cl_result *r = NULL;
    uint32_t n = 0;
    cl_err err;
    cl_status s = cl_wire_results_decode(cl_msg_data(m), cl_msg_len(m), &r, &n, &err);
    cl_msg_free(m);
    if (s != CL_OK)
        fail_msg("bad result batch: %s", err.msg);
    assert_true(n <= max);
    for (uint32_t i = 0; i < n; i++) {
        out[i].id = r[i].task_id;
        out[i].status = r[i].status;
    }
    free(r);
    return n;
}

/* Reads results until want of them arrived (or timeout); returns the count. */
static size_t collect_results(cl_sub *sub, int timeout_ms, result *out, size_t want)
{
    size_t got = 0;
    uint64_t end = cl_mono_us() + (uint64_t)timeout_ms * MS;
    while (got < want) {
        uint64_t now = cl_mono_us();
        if (now >= end)
            break;
        got += read_results(sub, (int)((end - now) / MS) + 1, out + got, want - got);
    }
    return got;
}

static const result *find_result(const result *r, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].id == id)
            return &r[i];
    return NULL;
}

/* ---- playing a replica ----------------------------------------------------- */

static cl_sub *replica_sub(fixture *f, const char *model, const char *version, uint32_t id)
{
    char subject[CL_SUBJECT_MAX], rid[16];
    cl_err err;
    snprintf(rid, sizeof(rid), "%u", id);
    assert_int_equal(cl_subj_replica_work(subject, f->prefix, model, version, rid, &err), CL_OK);
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&sub, f->bus, subject, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(f->bus, 2000), CL_OK);
    return sub;
}

static void heartbeat(fixture *f, const char *model, const char *version, uint32_t id,
                      const char *state)
{
    cl_replica_info info;
    memset(&info, 0, sizeof(info));
    snprintf(info.model, sizeof(info.model), "%s", model);
    snprintf(info.version, sizeof(info.version), "%s", version);
    info.replica_id = id;
    snprintf(info.state, sizeof(info.state), "%s", state);
    snprintf(info.host, sizeof(info.host), "test");
    info.pid = 1;
    snprintf(info.input_type, sizeof(info.input_type), "bytes");
    char *body = cl_heartbeat_encode(&info, "python-closure");
    assert_non_null(body);
    char subject[CL_SUBJECT_MAX], rid[16];
    cl_err err;
    snprintf(rid, sizeof(rid), "%u", id);
    assert_int_equal(cl_subj_replica_hb(subject, f->prefix, model, version, rid, &err), CL_OK);
    assert_int_equal(cl_bus_publish(f->bus, subject, body, strlen(body)), CL_OK);
    assert_int_equal(cl_bus_flush(f->bus, 2000), CL_OK);
    free(body);
}

static void pull_raw(fixture *f, const char *model, const char *version, const char *body)
{
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_route_pull(subject, f->prefix, model, version, &err), CL_OK);
    assert_int_equal(cl_bus_publish(f->bus, subject, body, strlen(body)), CL_OK);
    assert_int_equal(cl_bus_flush(f->bus, 2000), CL_OK);
}

static void pull(fixture *f, const char *model, const char *version, uint32_t id)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"replica_id\": %u}", id);
    pull_raw(f, model, version, body);
}

/* Reads one work batch; returns its task count (0 on timeout). */
static size_t read_work(cl_sub *sub, int timeout_ms, uint64_t *ids, size_t max)
{
    cl_msg *m = NULL;
    if (cl_sub_next(sub, &m, timeout_ms) != CL_OK)
        return 0;
    cl_task *t = NULL;
    uint32_t n = 0;
    cl_err err;
    cl_status s = cl_wire_tasks_decode(cl_msg_data(m), cl_msg_len(m), &t, &n, &err);
    if (s != CL_OK) {
        cl_msg_free(m);
        fail_msg("bad work batch: %s", err.msg);
    }
    assert_true(n <= max);
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = t[i].task_id;
        /* The router forwards each task unchanged. */
        uint64_t echoed;
        assert_int_equal(t[i].input_len, sizeof(echoed));
        memcpy(&echoed, t[i].input, sizeof(echoed));
        assert_int_equal(echoed, t[i].task_id);
    }
    free(t);
    cl_msg_free(m);
    return n;
}

/* ---- the router's STATS --------------------------------------------------- */

typedef struct {
    int found;
    long depth, replicas, ready, idle;
    double batches, mean_batch, expired, no_replica, replica_lost, malformed;
} router_stats;

static void get_stats(fixture *f, const char *model, const char *version, router_stats *st)
{
    memset(st, 0, sizeof(*st));
    cl_msg *m = NULL;
    assert_int_equal(cl_bus_request(f->bus, "$SRV.STATS.clipper-router", "", 0, 2000, &m), CL_OK);
    cJSON *o = NULL;
    cl_err err;
    assert_int_equal(cl_json_parse_object(&o, cl_msg_data(m), cl_msg_len(m), &err), CL_OK);
    cl_msg_free(m);
    cJSON *eps = cJSON_GetObjectItem(o, "endpoints");
    cJSON *data = cJSON_GetObjectItem(cJSON_GetArrayItem(eps, 0), "data");
    assert_non_null(data);
    cJSON *q;
    cJSON_ArrayForEach(q, cJSON_GetObjectItem(data, "queues"))
    {
        if (strcmp(cJSON_GetObjectItem(q, "model")->valuestring, model) == 0 &&
            strcmp(cJSON_GetObjectItem(q, "version")->valuestring, version) == 0) {
            st->found = 1;
            st->depth = (long)cJSON_GetObjectItem(q, "depth")->valuedouble;
            st->replicas = (long)cJSON_GetObjectItem(q, "replicas")->valuedouble;
            st->ready = (long)cJSON_GetObjectItem(q, "ready_replicas")->valuedouble;
            st->idle = (long)cJSON_GetObjectItem(q, "idle_replicas")->valuedouble;
        }
    }
    st->batches = cJSON_GetObjectItem(data, "batches_dispatched")->valuedouble;
    st->mean_batch = cJSON_GetObjectItem(data, "mean_batch_size")->valuedouble;
    st->expired = cJSON_GetObjectItem(data, "expired")->valuedouble;
    st->no_replica = cJSON_GetObjectItem(data, "no_replica")->valuedouble;
    st->replica_lost = cJSON_GetObjectItem(data, "replica_lost")->valuedouble;
    st->malformed = cJSON_GetObjectItem(data, "malformed")->valuedouble;
    cJSON_Delete(o);
}

/* Polls STATS until model:version has depth queued tasks and ready ready
 * replicas (-1: any), for at most 3 s. */
static void wait_router(fixture *f, const char *model, const char *version, long depth,
                        long ready)
{
    router_stats st;
    uint64_t end = cl_mono_us() + 3 * SEC;
    do {
        get_stats(f, model, version, &st);
        if (st.found && (depth < 0 || st.depth == depth) && (ready < 0 || st.ready == ready))
            return;
        cl_sleep_ms(5);
    } while (cl_mono_us() < end);
    fail_msg("router never reached depth %ld, ready %ld for %s:%s (found %d, depth %ld, "
             "ready %ld)",
             depth, ready, model, version, st.found, st.depth, st.ready);
}

/* How a test's replica tells the router it is ready. */
enum { BY_PULL = 1, BY_HEARTBEAT = 2, BY_BOTH = BY_PULL | BY_HEARTBEAT };

/* The usual start: registers m:1 with batch_size, starts the router, makes
 * replica id of m:1 ready (a "ready" heartbeat, then a pull, as ready_by
 * says) and waits until the router counts it. Returns the replica's work
 * subscription. */
static cl_sub *start_with_replica(fixture *f, int64_t batch_size, uint32_t id, int ready_by)
{
    put_model(f, "m", "1", batch_size);
    start_router(f);
    cl_sub *work = replica_sub(f, "m", "1", id);
    if (ready_by & BY_HEARTBEAT)
        heartbeat(f, "m", "1", id, "ready");
    if (ready_by & BY_PULL)
        pull(f, "m", "1", id);
    wait_router(f, "m", "1", 0, 1);
    return work;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_tasks_without_replica_are_answered_no_replica_at_once(void **state)
{
    fixture *f = *state;
    start_router(f);
    char other[CL_SUBJECT_MAX];
    snprintf(other, sizeof(other), "%s.fe.other.results.m", f->prefix);
    cl_sub *other_sub = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&other_sub, f->bus, other, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(f->bus, 2000), CL_OK);

    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    uint64_t now = cl_wall_us();
    add_task(&b, 1, now + 5 * SEC, 5000000, f->reply);
    add_task(&b, 2, now + 5 * SEC, 5000000, other);
    add_task(&b, 3, now + 5 * SEC, 5000000, f->reply);
    uint64_t t0 = cl_mono_us();
    publish_batch(f, "m", "1", &b);
    cl_buf_deinit(&b);

    /* One result batch per reply subject, with every task of it. */
    result r[4];
    size_t n = read_results(f->results, 1000, r, 4);
    uint64_t took = cl_mono_us() - t0;
    assert_int_equal(n, 2);
    assert_int_equal(r[0].id, 1);
    assert_int_equal(r[1].id, 3);
    assert_int_equal(r[0].status, CL_RESULT_NO_REPLICA);
    assert_int_equal(r[1].status, CL_RESULT_NO_REPLICA);
    n = read_results(other_sub, 1000, r, 4);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].id, 2);
    assert_int_equal(r[0].status, CL_RESULT_NO_REPLICA);
    /* "At once": far inside the 5 s deadline. */
    assert_true(took < 500 * MS);
    cl_sub_free(other_sub);
}

static void test_pull_before_heartbeat_counts_as_ready_and_gets_work(void **state)
{
    fixture *f = *state;
    cl_sub *work = start_with_replica(f, 10, 4, BY_PULL);
    send_one(f, "m", "1", 42, 5 * SEC);
    uint64_t ids[16];
    assert_int_equal(read_work(work, 2000, ids, 16), 1);
    assert_int_equal(ids[0], 42);
    cl_sub_free(work);
}

static void test_dispatch_follows_earliest_deadline_first(void **state)
{
    fixture *f = *state;
    cl_sub *work = start_with_replica(f, 10, 0, BY_PULL);
    /* Occupy the replica, then queue tasks out of deadline order. */
    send_one(f, "m", "1", 100, 5 * SEC);
    uint64_t ids[16];
    assert_int_equal(read_work(work, 2000, ids, 16), 1);
    const uint64_t a_ids[3] = {1, 2, 3};
    const uint64_t a_rel[3] = {4 * SEC, 2 * SEC, 6 * SEC};
    send_tasks(f, "m", "1", 3, a_ids, a_rel, 1000000);
    const uint64_t b_ids[2] = {4, 5};
    const uint64_t b_rel[2] = {3 * SEC, 1 * SEC};
    send_tasks(f, "m", "1", 2, b_ids, b_rel, 1000000);
    wait_router(f, "m", "1", 5, -1);

    pull(f, "m", "1", 0);
    assert_int_equal(read_work(work, 2000, ids, 16), 5);
    const uint64_t want[5] = {5, 2, 4, 1, 3};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ids[i], want[i]);
    cl_sub_free(work);
}

static void test_batch_is_capped_by_the_model_batch_size(void **state)
{
    fixture *f = *state;
    /* Ready, but has not asked for work. */
    cl_sub *work = start_with_replica(f, 3, 0, BY_HEARTBEAT);
    uint64_t task_ids[7], rel[7];
    for (int i = 0; i < 7; i++) {
        task_ids[i] = (uint64_t)i + 1;
        rel[i] = 5 * SEC + (uint64_t)i * MS;
    }
    send_tasks(f, "m", "1", 7, task_ids, rel, 5000000);
    wait_router(f, "m", "1", 7, 1);

    uint64_t ids[16];
    size_t sizes[3];
    for (int i = 0; i < 3; i++) {
        pull(f, "m", "1", 0);
        sizes[i] = read_work(work, 2000, ids, 16);
    }
    assert_int_equal(sizes[0], 3);
    assert_int_equal(sizes[1], 3);
    assert_int_equal(sizes[2], 1);
    assert_int_equal(ids[0], 7);
    router_stats st;
    get_stats(f, "m", "1", &st);
    assert_int_equal((long)st.batches, 3);
    assert_true(st.mean_batch > 2.3 && st.mean_batch < 2.4); /* 7 / 3 */
    cl_sub_free(work);
}

static void test_adaptive_batch_grows_under_slo_and_backs_off_over_it(void **state)
{
    fixture *f = *state;
    cl_sub *work = start_with_replica(f, -1, 0, BY_HEARTBEAT);
    enum { N = 40 };
    uint64_t task_ids[N], rel[N];
    for (int i = 0; i < N; i++) {
        task_ids[i] = (uint64_t)i + 1;
        rel[i] = 20 * SEC;
    }
    const uint32_t slo = 100000; /* 100 ms */
    send_tasks(f, "m", "1", N, task_ids, rel, slo);
    wait_router(f, "m", "1", N, 1);

    uint64_t ids[N];
    size_t sizes[7];
    /* Five fast round trips (each batch full, well under the SLO)... */
    for (int i = 0; i < 5; i++) {
        pull(f, "m", "1", 0);
        sizes[i] = read_work(work, 2000, ids, N);
    }
    /* ...then two slow ones: the replica holds each batch past the SLO. */
    for (int i = 5; i < 7; i++) {
        cl_sleep_ms(150);
        pull(f, "m", "1", 0);
        sizes[i] = read_work(work, 2000, ids, N);
    }
    const size_t want[7] = {1, 2, 3, 4, 5, 4 /* floor(5 * 0.9) */, 3 /* floor(4 * 0.9) */};
    for (int i = 0; i < 7; i++)
        assert_int_equal(sizes[i], want[i]);
    cl_sub_free(work);
}

static void test_expired_tasks_are_answered_promptly_and_never_dispatched(void **state)
{
    fixture *f = *state;
    /* Busy: will not pull for now. */
    cl_sub *work = start_with_replica(f, 10, 0, BY_HEARTBEAT);
    const uint64_t task_ids[4] = {1, 2, 3, 4};
    const uint64_t rel[4] = {50 * MS, 60 * MS, 70 * MS, 10 * SEC};
    uint64_t sent = cl_wall_us();
    send_tasks(f, "m", "1", 4, task_ids, rel, 50000);

    result r[8];
    size_t n = collect_results(f->results, 2000, r, 3);
    uint64_t last = cl_wall_us();
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].status, CL_RESULT_EXPIRED);
        assert_true(r[i].id >= 1 && r[i].id <= 3);
    }
    /* Answered right after the last deadline (sent + 70 ms), not at some
     * client timeout: allow 150 ms for scheduling on a loaded machine. */
    assert_true(last - sent < 220 * MS);
    assert_true(last - sent >= 50 * MS);

    /* The replica now asks for work and gets only the live task. */
    pull(f, "m", "1", 0);
    uint64_t ids[8];
    assert_int_equal(read_work(work, 2000, ids, 8), 1);
    assert_int_equal(ids[0], 4);
    router_stats st;
    get_stats(f, "m", "1", &st);
    assert_int_equal((long)st.expired, 3);
    cl_sub_free(work);
}

static void test_one_batch_in_flight_per_replica(void **state)
{
    fixture *f = *state;
    cl_sub *work = start_with_replica(f, 10, 0, BY_PULL);
    send_one(f, "m", "1", 1, 5 * SEC);
    uint64_t ids[16];
    assert_int_equal(read_work(work, 2000, ids, 16), 1);
    send_one(f, "m", "1", 2, 5 * SEC);
    send_one(f, "m", "1", 3, 5 * SEC);
    wait_router(f, "m", "1", 2, -1);
    /* Nothing more until the replica pulls. */
    assert_int_equal(read_work(work, 300, ids, 16), 0);
    pull(f, "m", "1", 0);
    assert_int_equal(read_work(work, 2000, ids, 16), 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    cl_sub_free(work);
}

static void test_two_replicas_share_one_queue(void **state)
{
    fixture *f = *state;
    put_model(f, "m", "1", 2);
    start_router(f);
    cl_sub *w0 = replica_sub(f, "m", "1", 0);
    cl_sub *w1 = replica_sub(f, "m", "1", 1);
    heartbeat(f, "m", "1", 0, "ready");
    heartbeat(f, "m", "1", 1, "ready");
    wait_router(f, "m", "1", 0, 2);
    const uint64_t task_ids[5] = {1, 2, 3, 4, 5};
    const uint64_t rel[5] = {1 * SEC, 2 * SEC, 3 * SEC, 4 * SEC, 5 * SEC};
    send_tasks(f, "m", "1", 5, task_ids, rel, 5000000);
    wait_router(f, "m", "1", 5, 2);

    uint64_t a[4], b[4], c[4];
    pull(f, "m", "1", 0);
    assert_int_equal(read_work(w0, 2000, a, 4), 2);
    pull(f, "m", "1", 1);
    assert_int_equal(read_work(w1, 2000, b, 4), 2);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[1], 2);
    assert_int_equal(b[0], 3);
    assert_int_equal(b[1], 4);
    /* Replica 1 finishes first and takes the rest; replica 0 is still busy. */
    pull(f, "m", "1", 1);
    assert_int_equal(read_work(w1, 2000, c, 4), 1);
    assert_int_equal(c[0], 5);
    assert_int_equal(read_work(w0, 200, c, 4), 0);
    cl_sub_free(w0);
    cl_sub_free(w1);
}

static void test_stopped_replica_answers_in_flight_lost_and_queued_no_replica(void **state)
{
    fixture *f = *state;
    cl_sub *work = start_with_replica(f, 1, 0, BY_BOTH);
    const uint64_t task_ids[2] = {1, 2};
    const uint64_t rel[2] = {5 * SEC, 6 * SEC};
    send_tasks(f, "m", "1", 2, task_ids, rel, 5000000);
    uint64_t ids[4];
    assert_int_equal(read_work(work, 2000, ids, 4), 1);
    assert_int_equal(ids[0], 1);
    wait_router(f, "m", "1", 1, 1);

    uint64_t t0 = cl_mono_us();
    heartbeat(f, "m", "1", 0, "stopped");
    result r[4];
    assert_int_equal(collect_results(f->results, 2000, r, 2), 2);
    assert_true(cl_mono_us() - t0 < 1 * SEC);
    const result *lost = find_result(r, 2, 1), *queued = find_result(r, 2, 2);
    assert_non_null(lost);
    assert_non_null(queued);
    assert_int_equal(lost->status, CL_RESULT_REPLICA_LOST);
    assert_int_equal(queued->status, CL_RESULT_NO_REPLICA);
    cl_sub_free(work);
}

static void test_silent_replica_loses_its_batch_after_the_timeout(void **state)
{
    fixture *f = *state;
    cl_sub *work = start_with_replica(f, 10, 3, BY_BOTH);
    uint64_t t0 = cl_mono_us();
    send_one(f, "m", "1", 9, 30 * SEC);
    uint64_t ids[4];
    assert_int_equal(read_work(work, 2000, ids, 4), 1);
    /* The replica goes silent: no heartbeat, no pull. */
    result r[2];
    assert_int_equal(collect_results(f->results, 6000, r, 1), 1);
    uint64_t took = cl_mono_us() - t0;
    assert_int_equal(r[0].id, 9);
    assert_int_equal(r[0].status, CL_RESULT_REPLICA_LOST);
    assert_true(took >= (CL_REPLICA_TIMEOUT_MS - 100) * MS);
    assert_true(took < (CL_REPLICA_TIMEOUT_MS + 1500) * MS);
    /* And the version now has no replica. */
    send_one(f, "m", "1", 10, 5 * SEC);
    assert_int_equal(read_results(f->results, 1000, r, 2), 1);
    assert_int_equal(r[0].status, CL_RESULT_NO_REPLICA);
    cl_sub_free(work);
}

static void test_malformed_task_batches_and_pulls_are_ignored_and_router_keeps_serving(
    void **state)
{
    fixture *f = *state;
    put_model(f, "m", "1", 10);
    start_router(f);
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_route_task(subject, f->prefix, "m", "1", &err), CL_OK);
    /* Not a task batch at all. */
    assert_int_equal(cl_bus_publish(f->bus, subject, "hello", 5), CL_OK);
    /* A task batch cut short. */
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 1, cl_wall_us() + 5 * SEC, 5000000, f->reply);
    assert_int_equal(cl_bus_publish(f->bus, subject, b.data, b.len - 3), CL_OK);
    /* A valid batch on a subject without a version. */
    char bad_subject[CL_SUBJECT_MAX];
    snprintf(bad_subject, sizeof(bad_subject), "%s.route.task.m", f->prefix);
    assert_int_equal(cl_bus_publish(f->bus, bad_subject, b.data, b.len), CL_OK);
    cl_buf_deinit(&b);
    /* A batch for model m whose results would go to another model's
     * results subject (where a replica of that model could answer). */
    char elsewhere[CL_SUBJECT_MAX];
    snprintf(elsewhere, sizeof(elsewhere), "%s.fe.test.results.other", f->prefix);
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 2, cl_wall_us() + 5 * SEC, 5000000, elsewhere);
    assert_int_equal(cl_bus_publish(f->bus, subject, b.data, b.len), CL_OK);
    cl_buf_deinit(&b);
    /* Pulls that are not JSON, lack replica_id, or have a bad one. */
    pull_raw(f, "m", "1", "not json");
    pull_raw(f, "m", "1", "{}");
    pull_raw(f, "m", "1", "{\"replica_id\": \"zero\"}");
    pull_raw(f, "m", "1", "{\"replica_id\": -4}");

    router_stats st;
    uint64_t end = cl_mono_us() + 3 * SEC;
    do {
        get_stats(f, "m", "1", &st);
        if (st.malformed >= 8)
            break;
        cl_sleep_ms(5);
    } while (cl_mono_us() < end);
    assert_int_equal((long)st.malformed, 8);
    assert_false(st.found); /* no replica was made up from a bad pull */

    /* Still serving: a real replica and a real task go through. */
    cl_sub *work = replica_sub(f, "m", "1", 0);
    pull(f, "m", "1", 0);
    wait_router(f, "m", "1", 0, 1);
    send_one(f, "m", "1", 77, 5 * SEC);
    uint64_t ids[4];
    assert_int_equal(read_work(work, 2000, ids, 4), 1);
    assert_int_equal(ids[0], 77);
    /* The frontend got nothing for the malformed messages. */
    result r[2];
    assert_int_equal(read_results(f->results, 100, r, 2), 0);
    cl_sub_free(work);
}

/* A router that takes the lead says so on <p>.route.leader at once (the
 * replicas pull from it), then once a second; its election hellos go ten
 * times a second on <p>.route.hello, which replicas do not hear. */
static void test_leading_router_announces_itself_once_a_second_on_route_leader(void **state)
{
    fixture *f = *state;
    cl_err err;
    char leader[CL_SUBJECT_MAX], hello[CL_SUBJECT_MAX];
    assert_int_equal(cl_subj_route_leader(leader, f->prefix, &err), CL_OK);
    assert_int_equal(cl_subj_route_hello(hello, f->prefix, &err), CL_OK);
    cl_sub *on_leader = NULL, *on_hello = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&on_leader, f->bus, leader, NULL), CL_OK);
    assert_int_equal(cl_bus_subscribe_sync(&on_hello, f->bus, hello, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(f->bus, 2000), CL_OK);
    start_router(f);
    cl_msg *m = NULL;
    assert_int_equal(cl_sub_next(on_leader, &m, 5000), CL_OK);
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(m), cl_msg_len(m));
    assert_non_null(j);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "leader")));
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "epoch")->valuedouble >= 1);
    cJSON_Delete(j);
    cl_msg_free(m);
    /* Count both for 2.5 s: about 2 announcements against about 25 hellos. */
    int n_leader = 0, n_hello = 0;
    uint64_t end = cl_mono_us() + 2500 * MS;
    for (uint64_t now; (now = cl_mono_us()) < end;) {
        if (cl_sub_next(on_leader, &m, (int)((end - now) / MS) + 1) == CL_OK) {
            n_leader++;
            cl_msg_free(m);
        }
    }
    while (cl_sub_next(on_hello, &m, 0) == CL_OK) {
        n_hello++;
        cl_msg_free(m);
    }
    print_message("in 2.5 s: %d on route.leader, %d on route.hello\n", n_leader, n_hello);
    assert_in_range(n_leader, 1, 4);
    assert_true(n_hello >= 10);
    cl_sub_free(on_leader);
    cl_sub_free(on_hello);
}

static void test_router_answers_queued_tasks_when_it_stops(void **state)
{
    fixture *f = *state;
    put_model(f, "m", "1", 10);
    start_router(f);
    heartbeat(f, "m", "1", 0, "ready");
    wait_router(f, "m", "1", 0, 1);
    send_one(f, "m", "1", 5, 10 * SEC);
    wait_router(f, "m", "1", 1, 1);
    cl_router_free(f->router);
    f->router = NULL;
    result r[2];
    assert_int_equal(read_results(f->results, 1000, r, 2), 1);
    assert_int_equal(r[0].id, 5);
    assert_int_equal(r[0].status, CL_RESULT_NO_REPLICA);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tasks_without_replica_are_answered_no_replica_at_once),
        T(test_pull_before_heartbeat_counts_as_ready_and_gets_work),
        T(test_dispatch_follows_earliest_deadline_first),
        T(test_batch_is_capped_by_the_model_batch_size),
        T(test_adaptive_batch_grows_under_slo_and_backs_off_over_it),
        T(test_expired_tasks_are_answered_promptly_and_never_dispatched),
        T(test_one_batch_in_flight_per_replica),
        T(test_two_replicas_share_one_queue),
        T(test_stopped_replica_answers_in_flight_lost_and_queued_no_replica),
        T(test_silent_replica_loses_its_batch_after_the_timeout),
        T(test_malformed_task_batches_and_pulls_are_ignored_and_router_keeps_serving),
        T(test_router_answers_queued_tasks_when_it_stops),
        T(test_leading_router_announces_itself_once_a_second_on_route_leader),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
