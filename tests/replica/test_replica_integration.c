/* Integration tests of the replica actor: a real nats-server (harness), the
 * model entry and artifact stored as the admin would, the replica started as
 * a process (replica_under_test), and the test playing the router: it
 * watches heartbeats and pulls, sends work batches and reads the results. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "cl_artifact.h"
#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_kv.h"
#include "cl_replicas.h"
#include "cl_state.h"
#include "cl_subject.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"
#include "cl_wire.h"
#include "replica_test_util.h"

#define PREFIX "rtest"
#define READY_TIMEOUT_MS 30000 /* interpreter + numpy start, slower under sanitizers */
#define FAIL_TIMEOUT_MS 10000
#define MAX_STATES 64
#define MAX_RESULTS 16

static cl_bus *bus;
static cl_kv *kv;

typedef struct {
    char model[64];
    uint32_t id;
    pid_t pid;
    cl_sub *all; /* everything under PREFIX, in publish order per publisher */
    char hb[CL_SUBJECT_MAX];
    char pull[CL_SUBJECT_MAX];
    char work[CL_SUBJECT_MAX];
    char reply[CL_SUBJECT_MAX];
    /* what the replica did, as seen on the bus */
    char states[MAX_STATES][16];
    int n_states;
    char cause[1024];
    char hb_input_type[16];
    uint64_t incarnation; /* of this run's first heartbeat; all carry the same */
    int pulls;
    int pulls_before_ready;
    int pulls_after_stopped;
    cl_msg *results[MAX_RESULTS];
    int n_results;
} fixture;

/* ------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    if (cl_test_nats_group_setup(state) != 0)
        return -1;
    if (cl_test_bus_connect_kv(&bus, &kv, &cl_test_srv, PREFIX) != 0) {
        cl_test_nats_group_teardown(state);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    cl_kv_free(kv);
    cl_bus_free(bus);
    return cl_test_nats_group_teardown(state);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    *state = f;
    return 0;
}

static void reset_observations(fixture *f)
{
    for (int i = 0; i < f->n_results; i++)
        cl_msg_free(f->results[i]);
    f->n_results = 0;
    f->n_states = 0;
    f->pulls = f->pulls_before_ready = f->pulls_after_stopped = 0;
    f->cause[0] = '\0';
    f->incarnation = 0;
}

static void stop_replica(fixture *f)
{
    cl_test_kill(f->pid);
    f->pid = 0;
    cl_sub_free(f->all);
    f->all = NULL;
    reset_observations(f);
}

static int teardown(void **state)
{
    fixture *f = *state;
    stop_replica(f);
    free(f);
    return 0;
}

/* Stores the model entry (and the artifact, when data is not NULL) as the
 * admin actor does. sha_override replaces the entry's digest. */
static void store_model(const char *model, int input_type, const char *runtime, const void *data,
                        size_t len, const char *sha_override)
{
    cl_err err;
    char digest[CL_SHA256_HEX] = "";
    if (data)
        assert_int_equal(cl_artifact_put(bus, model, "1", data, len, digest, &err), CL_OK);
    cl_model m = {
        .name = (char *)model,
        .version = "1",
        .input_type = input_type,
        .container_name = "NO_CONTAINER",
        .model_data_path = "DEPRECATED",
        .batch_size = -1,
        .num_replicas = 1,
        .runtime = (char *)runtime,
        .artifact_sha256 = (char *)(sha_override ? sha_override : digest),
        .artifact_size = (int64_t)len,
    };
    cJSON *j = cl_model_to_json(&m);
    assert_non_null(j);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char key[CL_KEY_MAX];
    assert_int_equal(cl_key_model(key, model, "1", &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, key, text, strlen(text), NULL, &err), CL_OK);
    free(text);
}

static void store_test_model(const char *model, int input_type, const char *make_name)
{
    size_t len = 0;
    void *data = rt_make_model(make_name, &len);
    assert_non_null(data);
    store_model(model, input_type, "python-closure", data, len, NULL);
    free(data);
}

static void start_replica(fixture *f, const char *model, uint32_t id)
{
    cl_err err;
    char id_str[16];
    snprintf(f->model, sizeof(f->model), "%s", model);
    f->id = id;
    snprintf(id_str, sizeof(id_str), "%u", (unsigned)id);
    assert_int_equal(cl_subj_replica_hb(f->hb, PREFIX, model, "1", id_str, &err), CL_OK);
    assert_int_equal(cl_subj_replica_work(f->work, PREFIX, model, "1", id_str, &err), CL_OK);
    assert_int_equal(cl_subj_route_pull(f->pull, PREFIX, model, "1", &err), CL_OK);
    snprintf(f->reply, sizeof(f->reply), "%s.fe.t.results.%s", PREFIX, model);
    assert_int_equal(cl_bus_subscribe_sync(&f->all, bus, PREFIX ".>", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);

    char *argv[] = {RT_REPLICA_EXE, "--nats", cl_test_srv.url, "--prefix", PREFIX, "--model",
                    (char *)model, "--version", "1", "--replica-id", id_str, NULL};
    f->pid = cl_test_spawn(argv);
    assert_true(f->pid > 0);
}

/* ------------------------------------------------------ watching the bus */

static bool seen_state(const fixture *f, const char *state)
{
    for (int i = 0; i < f->n_states; i++)
        if (strcmp(f->states[i], state) == 0)
            return true;
    return false;
}

static void record(fixture *f, cl_msg *msg)
{
    const char *subject = cl_msg_subject(msg);
    if (strcmp(subject, f->hb) == 0) {
        cl_replica_info info;
        cl_err err;
        assert_int_equal(cl_heartbeat_decode(&info, cl_msg_data(msg), cl_msg_len(msg), &err),
                         CL_OK);
        assert_string_equal(info.model, f->model);
        assert_string_equal(info.version, "1");
        assert_int_equal(info.replica_id, f->id);
        assert_int_equal(info.pid, f->pid);
        assert_true(info.incarnation != 0);
        if (f->incarnation == 0)
            f->incarnation = info.incarnation;
        assert_true(info.incarnation == f->incarnation);
        if (f->n_states < MAX_STATES)
            snprintf(f->states[f->n_states++], sizeof(f->states[0]), "%s", info.state);
        if (info.cause[0])
            snprintf(f->cause, sizeof(f->cause), "%s", info.cause);
        snprintf(f->hb_input_type, sizeof(f->hb_input_type), "%s", info.input_type);
        cl_msg_free(msg);
    } else if (strcmp(subject, f->pull) == 0) {
        cJSON *o = cJSON_ParseWithLength(cl_msg_data(msg), cl_msg_len(msg));
        assert_non_null(o);
        cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "replica_id");
        assert_true(cJSON_IsNumber(id));
        assert_true(id->valuedouble == (double)f->id);
        cJSON_Delete(o);
        f->pulls++;
        if (!seen_state(f, "ready"))
            f->pulls_before_ready++;
        if (seen_state(f, "stopped"))
            f->pulls_after_stopped++;
        cl_msg_free(msg);
    } else if (strcmp(subject, f->reply) == 0 && f->n_results < MAX_RESULTS) {
        f->results[f->n_results++] = msg;
    } else {
        cl_msg_free(msg); /* our own work batches, artifact chunks */
    }
}

typedef bool (*until_fn)(const fixture *f, const void *arg);

/* Records bus traffic until until(f, arg) holds or timeout_ms passes. */
static bool pump(fixture *f, int timeout_ms, until_fn until, const void *arg)
{
    uint64_t end = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (!until(f, arg)) {
        uint64_t now = cl_mono_us();
        if (now >= end)
            return false;
        cl_msg *msg = NULL;
        cl_status st = cl_sub_next(f->all, &msg, (int)((end - now) / 1000u) + 1);
        if (st == CL_OK)
            record(f, msg);
        else if (st != CL_ERR_TIMEOUT)
            return false;
    }
    return true;
}

static bool has_state(const fixture *f, const void *state)
{
    return seen_state(f, state);
}

static bool has_results(const fixture *f, const void *n)
{
    return f->n_results >= *(const int *)n;
}

static bool has_pulls(const fixture *f, const void *n)
{
    return f->pulls >= *(const int *)n;
}

static bool never(const fixture *f, const void *arg)
{
    (void)f;
    (void)arg;
    return false;
}

static void wait_ready(fixture *f)
{
    if (!pump(f, READY_TIMEOUT_MS, has_state, "ready"))
        fail_msg("replica of %s never became ready (last cause: '%s')", f->model, f->cause);
}

/* Waits for the "failed" heartbeat and the exit code 3; returns the cause. */
static const char *wait_failed(fixture *f)
{
    if (!pump(f, FAIL_TIMEOUT_MS, has_state, "failed"))
        fail_msg("replica of %s did not report failed", f->model);
    assert_false(seen_state(f, "ready"));
    assert_int_equal(cl_test_wait_exit(f->pid, 5000), 3);
    f->pid = 0;
    return f->cause;
}

/* ------------------------------------------------------- work and results */

typedef struct {
    uint64_t id;
    uint8_t status;
    char text[2048];
} result;

static void send_batch(fixture *f, uint8_t type, const void *const *inputs, const size_t *lens,
                       size_t n, uint64_t first_id)
{
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    for (size_t i = 0; i < n; i++) {
        cl_task t = {
            .task_id = first_id + i,
            .deadline_us = cl_wall_us() + 10000000u,
            .slo_us = 10000000u,
            .input_type = type,
            .reply_len = (uint16_t)strlen(f->reply),
            .reply = f->reply,
            .input_len = (uint32_t)lens[i],
            .input = inputs[i],
        };
        assert_int_equal(cl_wire_tasks_add(&b, &t), CL_OK);
    }
    assert_int_equal(cl_bus_publish(bus, f->work, b.data, b.len), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    cl_buf_deinit(&b);
}

static void send_doubles(fixture *f, const double *v, size_t rows, size_t cols, uint64_t first)
{
    const void *inputs[16];
    size_t lens[16];
    for (size_t i = 0; i < rows; i++) {
        inputs[i] = v + i * cols;
        lens[i] = cols * sizeof(double);
    }
    send_batch(f, CL_INPUT_DOUBLES, inputs, lens, rows, first);
}

/* Waits for the next result message and decodes it into out (n results). */
static void next_results(fixture *f, result *out, uint32_t want)
{
    int need = 1;
    if (!pump(f, 15000, has_results, &need))
        fail_msg("no results from the replica of %s", f->model);
    cl_msg *msg = f->results[0];
    memmove(f->results, f->results + 1, (size_t)(f->n_results - 1) * sizeof(f->results[0]));
    f->n_results--;
    cl_result *res = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_results_decode(cl_msg_data(msg), cl_msg_len(msg), &res, &n, &err),
                     CL_OK);
    assert_int_equal(n, want);
    for (uint32_t i = 0; i < n; i++) {
        out[i].id = res[i].task_id;
        out[i].status = res[i].status;
        snprintf(out[i].text, sizeof(out[i].text), "%.*s", (int)res[i].len, res[i].data);
    }
    free(res);
    cl_msg_free(msg);
}

static void sigterm_and_expect_clean_exit(fixture *f)
{
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    assert_true(pump(f, 10000, has_state, "stopped"));
    assert_int_equal(cl_test_wait_exit(f->pid, 10000), 0);
    f->pid = 0;
}

/* ------------------------------------------------------------- serving */

static void test_doubles_batch_returns_the_functions_outputs_in_order(void **state)
{
    fixture *f = *state;
    store_test_model("sum", CL_INPUT_DOUBLES, "sum");
    start_replica(f, "sum", 7);
    wait_ready(f);
    assert_string_equal(f->states[0], "starting");
    assert_string_equal(f->hb_input_type, "doubles");
    assert_true(f->pulls_before_ready >= 1); /* pulled before announcing ready */

    const double v[] = {1, 2, 3, 4, 5, 6};
    send_doubles(f, v, 3, 2, 100);
    result r[3];
    next_results(f, r, 3);
    const char *want[] = {"3.0", "7.0", "11.0"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].id, 100 + i);
        assert_int_equal(r[i].status, CL_RESULT_OK);
        assert_string_equal(r[i].text, want[i]);
    }
    /* It pulls again once the batch is answered. */
    int pulls = f->pulls + 1;
    assert_true(pump(f, 3000, has_pulls, &pulls));

    /* The service API counts the batch and names the model. */
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(bus, "$SRV.STATS.clipper-replica", "", 0, 3000, &reply),
                     CL_OK);
    cJSON *stats = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    assert_non_null(stats);
    assert_string_equal(cJSON_GetObjectItem(stats, "name")->valuestring, "clipper-replica");
    cJSON *ep = cJSON_GetArrayItem(cJSON_GetObjectItem(stats, "endpoints"), 0);
    assert_non_null(ep);
    assert_int_equal(cJSON_GetObjectItem(ep, "num_requests")->valueint, 1);
    cJSON *data = cJSON_GetObjectItem(ep, "data");
    assert_string_equal(cJSON_GetObjectItem(data, "model_name")->valuestring, "sum");
    assert_int_equal(cJSON_GetObjectItem(data, "queries")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(data, "replica_id")->valueint, 7);
    cJSON_Delete(stats);

    sigterm_and_expect_clean_exit(f);
}

static void check_described(const char *json, const char *batch_dtype, int batch_dims,
                            const char *item_type, const char *item_dtype)
{
    cJSON *o = cJSON_Parse(json);
    if (!o)
        fail_msg("not JSON: %s", json);
    assert_string_equal(cJSON_GetObjectItem(o, "batch_type")->valuestring, "ndarray");
    assert_string_equal(cJSON_GetObjectItem(o, "batch_dtype")->valuestring, batch_dtype);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "batch_shape")), batch_dims);
    assert_string_equal(cJSON_GetObjectItem(o, "item_type")->valuestring, item_type);
    assert_string_equal(cJSON_GetObjectItem(o, "item_dtype")->valuestring, item_dtype);
    cJSON_Delete(o);
}

static void test_each_input_type_converts_as_clipper_did(void **state)
{
    fixture *f = *state;
    result r[2];

    /* bytes, one length: a 2-D int8 array (signed, as Clipper had it) */
    store_test_model("desc-bytes", CL_INPUT_BYTES, "describe");
    start_replica(f, "desc-bytes", 11);
    wait_ready(f);
    const uint8_t b0[] = {1, 0xff}, b1[] = {2, 3};
    const void *bin[] = {b0, b1};
    size_t blen[] = {2, 2};
    send_batch(f, CL_INPUT_BYTES, bin, blen, 2, 1);
    next_results(f, r, 2);
    assert_int_equal(r[0].status, CL_RESULT_OK);
    check_described(r[0].text, "int8", 2, "ndarray", "int8");
    assert_non_null(strstr(r[0].text, "\"value\": [1, -1]"));
    stop_replica(f);

    /* integers of different lengths: an object array of 1-D int32 arrays */
    store_test_model("desc-ints", CL_INPUT_INTEGERS, "describe");
    start_replica(f, "desc-ints", 12);
    wait_ready(f);
    const int32_t i0[] = {1, -2}, i1[] = {3};
    const void *iin[] = {i0, i1};
    size_t ilen[] = {8, 4};
    send_batch(f, CL_INPUT_INTEGERS, iin, ilen, 2, 1);
    next_results(f, r, 2);
    check_described(r[0].text, "object", 1, "ndarray", "int32");
    assert_non_null(strstr(r[0].text, "\"value\": [1, -2]"));
    assert_non_null(strstr(r[1].text, "\"value\": [3]"));
    stop_replica(f);

    /* floats, one length: a 2-D float32 array */
    store_test_model("desc-floats", CL_INPUT_FLOATS, "describe");
    start_replica(f, "desc-floats", 13);
    wait_ready(f);
    const float f0[] = {1.5f, 2.5f}, f1[] = {-1.0f, 0.0f};
    const void *fin[] = {f0, f1};
    size_t flen[] = {8, 8};
    send_batch(f, CL_INPUT_FLOATS, fin, flen, 2, 1);
    next_results(f, r, 2);
    check_described(r[1].text, "float32", 2, "ndarray", "float32");
    assert_non_null(strstr(r[0].text, "\"value\": [1.5, 2.5]"));
    stop_replica(f);

    /* doubles, one length: a 2-D float64 array */
    store_test_model("desc-doubles", CL_INPUT_DOUBLES, "describe");
    start_replica(f, "desc-doubles", 14);
    wait_ready(f);
    const double d[] = {0.25, 0.5};
    send_doubles(f, d, 2, 1, 1);
    next_results(f, r, 2);
    check_described(r[0].text, "float64", 2, "ndarray", "float64");
    assert_non_null(strstr(r[1].text, "\"value\": [0.5]"));
    stop_replica(f);

    /* strings: an object array of bytes (Clipper never decoded them) */
    store_test_model("desc-strings", CL_INPUT_STRINGS, "describe");
    start_replica(f, "desc-strings", 15);
    wait_ready(f);
    const void *sin[] = {"h\xc3\xa9llo", "x"};
    size_t slen[] = {6, 1};
    send_batch(f, CL_INPUT_STRINGS, sin, slen, 2, 1);
    next_results(f, r, 2);
    check_described(r[0].text, "object", 1, "bytes", "");
    assert_non_null(strstr(r[0].text, "\"value\": \"h\\u00e9llo\""));
}

static void test_raising_function_fails_its_batch_and_the_next_batch_works(void **state)
{
    fixture *f = *state;
    store_test_model("raiser", CL_INPUT_DOUBLES, "raise");
    start_replica(f, "raiser", 21);
    wait_ready(f);

    const double bad[] = {2, -1};
    send_doubles(f, bad, 2, 1, 1);
    result r[2];
    next_results(f, r, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].status, CL_RESULT_MODEL_ERROR);
        assert_non_null(strstr(r[i].text, "ValueError: negative input -1.0"));
        assert_non_null(strstr(r[i].text, "in raise_on_negative")); /* the model's frame */
    }

    const double good[] = {1, 2};
    send_doubles(f, good, 1, 2, 3);
    next_results(f, r, 1);
    assert_int_equal(r[0].id, 3);
    assert_int_equal(r[0].status, CL_RESULT_OK);
    assert_string_equal(r[0].text, "3.0");
    assert_false(seen_state(f, "failed"));
}

static void test_wrong_returns_get_clippers_error_texts(void **state)
{
    fixture *f = *state;
    result r[2];
    const double v[] = {1, 2};

    store_test_model("notlist", CL_INPUT_DOUBLES, "not_list");
    start_replica(f, "notlist", 31);
    wait_ready(f);
    send_doubles(f, v, 2, 1, 1);
    next_results(f, r, 2);
    assert_int_equal(r[0].status, CL_RESULT_MODEL_ERROR);
    assert_true(strncmp(r[0].text, "Model did not return a list", 27) == 0);
    /* and it keeps serving */
    send_doubles(f, v, 1, 1, 3);
    next_results(f, r, 1);
    assert_int_equal(r[0].status, CL_RESULT_MODEL_ERROR);
    stop_replica(f);

    store_test_model("wronglen", CL_INPUT_DOUBLES, "wrong_len");
    start_replica(f, "wronglen", 32);
    wait_ready(f);
    send_doubles(f, v, 2, 1, 1);
    next_results(f, r, 2);
    assert_int_equal(r[1].status, CL_RESULT_MODEL_ERROR);
    assert_string_equal(r[1].text, "Expected model to return 2 outputs, found 1 outputs");
    stop_replica(f);

    /* Non-str outputs: Clipper's closure container returned
     * [str(p) for p in func(x)], so they are served as their str(). */
    store_test_model("nonstr", CL_INPUT_DOUBLES, "non_str");
    start_replica(f, "nonstr", 33);
    wait_ready(f);
    send_doubles(f, v, 2, 1, 1);
    next_results(f, r, 2);
    assert_int_equal(r[0].status, CL_RESULT_OK);
    assert_string_equal(r[0].text, "1.0");
}

static void test_task_of_another_input_type_gets_an_error_and_the_rest_are_served(void **state)
{
    fixture *f = *state;
    store_test_model("mixed", CL_INPUT_DOUBLES, "sum");
    start_replica(f, "mixed", 41);
    wait_ready(f);
    const double d[] = {1, 2};
    const int32_t i[] = {1, 2};
    const void *in[] = {d, i};
    size_t lens[] = {16, 8};
    /* one batch holding a doubles task and an integers task */
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    for (int k = 0; k < 2; k++) {
        cl_task t = {.task_id = (uint64_t)k + 1,
                     .deadline_us = cl_wall_us() + 10000000u,
                     .slo_us = 10000000u,
                     .input_type = k == 0 ? CL_INPUT_DOUBLES : CL_INPUT_INTEGERS,
                     .reply_len = (uint16_t)strlen(f->reply),
                     .reply = f->reply,
                     .input_len = (uint32_t)lens[k],
                     .input = in[k]};
        assert_int_equal(cl_wire_tasks_add(&b, &t), CL_OK);
    }
    assert_int_equal(cl_bus_publish(bus, f->work, b.data, b.len), CL_OK);
    cl_buf_deinit(&b);
    result r[2];
    next_results(f, r, 2);
    assert_int_equal(r[0].status, CL_RESULT_OK);
    assert_string_equal(r[0].text, "3.0");
    assert_int_equal(r[1].status, CL_RESULT_MODEL_ERROR);
    assert_string_equal(r[1].text,
                        "Input type integers does not match the model's input type doubles");
}

static void test_malformed_work_batch_is_dropped_and_the_replica_keeps_serving(void **state)
{
    fixture *f = *state;
    store_test_model("garbage", CL_INPUT_DOUBLES, "sum");
    start_replica(f, "garbage", 42);
    wait_ready(f);
    assert_int_equal(cl_bus_publish(bus, f->work, "not a batch", 11), CL_OK);
    const double v[] = {4, 5};
    send_doubles(f, v, 1, 2, 9);
    result r[1];
    next_results(f, r, 1);
    assert_int_equal(r[0].id, 9);
    assert_string_equal(r[0].text, "9.0");
}

static void test_idle_replica_repeats_its_pull_and_heartbeat_every_second(void **state)
{
    fixture *f = *state;
    store_test_model("idle", CL_INPUT_DOUBLES, "sum");
    start_replica(f, "idle", 43);
    wait_ready(f);
    int pulls = f->pulls, states = f->n_states;
    pump(f, 2600, never, NULL);
    assert_true(f->pulls - pulls >= 2);
    assert_true(f->pulls - pulls <= 4);
    assert_true(f->n_states - states >= 2);
    assert_string_equal(f->states[f->n_states - 1], "ready");
}

/* A router that takes the lead announces itself on <p>.route.leader; an
 * idle replica pulls at once (the new leader knows nothing of it), and
 * only once per new epoch. The routers' election chatter on
 * <p>.route.hello (ten a second from each router) no longer reaches it. */
static bool pulls_since(const fixture *f, const void *n)
{
    return f->pulls >= *(const int *)n;
}

static void announce(const char *subject, int epoch)
{
    char body[96];
    int n = snprintf(body, sizeof(body), "{\"id\":\"r1\",\"leader\":true,\"epoch\":%d}", epoch);
    assert_int_equal(cl_bus_publish(bus, subject, body, (size_t)n), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
}

/* Waits for the idle replica's next repeated pull: the one after it is a
 * second away, so a pull within 600 ms of what the test does next is that
 * act's doing. */
static void just_after_a_repeat(fixture *f)
{
    int want = f->pulls + 1;
    assert_true(pump(f, 3000, pulls_since, &want));
}

static void test_idle_replica_pulls_at_once_when_a_new_leader_is_announced(void **state)
{
    fixture *f = *state;
    store_test_model("lead", CL_INPUT_DOUBLES, "sum");
    start_replica(f, "lead", 44);
    wait_ready(f);
    cl_err err;
    char leader[CL_SUBJECT_MAX], hello[CL_SUBJECT_MAX];
    assert_int_equal(cl_subj_route_leader(leader, PREFIX, &err), CL_OK);
    assert_int_equal(cl_subj_route_hello(hello, PREFIX, &err), CL_OK);
    announce(leader, 5); /* the first leader it hears of: nothing to tell it */
    pump(f, 300, never, NULL);
    /* Each new epoch on route.leader: a pull at once. */
    for (int epoch = 6; epoch <= 8; epoch++) {
        just_after_a_repeat(f);
        int want = f->pulls + 1;
        uint64_t t0 = cl_mono_us();
        announce(leader, epoch);
        assert_true(pump(f, 600, pulls_since, &want));
        print_message("epoch %d: pull %.1f ms after the announcement\n", epoch,
                      (double)(cl_mono_us() - t0) / 1000.0);
    }
    /* The same epoch again, or a new one on route.hello (the routers'
     * election, which replicas no longer follow): no pull of its own. */
    just_after_a_repeat(f);
    int before = f->pulls;
    announce(leader, 8);
    announce(hello, 9);
    pump(f, 600, never, NULL);
    assert_int_equal(f->pulls, before);
}

/* ------------------------------------------------------------- stopping */

static void test_sigterm_answers_the_batch_in_hand_then_stops_with_exit_0(void **state)
{
    fixture *f = *state;
    store_test_model("slow", CL_INPUT_DOUBLES, "slow_sum");
    start_replica(f, "slow", 51);
    wait_ready(f);
    const double v[] = {1, 2};
    send_doubles(f, v, 1, 2, 5);
    usleep(300 * 1000); /* the model is now sleeping in the batch */
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    assert_true(pump(f, 10000, has_state, "stopped"));
    result r[1];
    next_results(f, r, 1);
    assert_int_equal(r[0].id, 5);
    assert_int_equal(r[0].status, CL_RESULT_OK);
    assert_string_equal(r[0].text, "3.0");
    assert_int_equal(cl_test_wait_exit(f->pid, 10000), 0);
    f->pid = 0;
    assert_int_equal(f->pulls_after_stopped, 0);
}

/* -------------------------------------------------------------- failing */

static void test_unregistered_model_fails_with_a_cause_and_exit_code_3(void **state)
{
    fixture *f = *state;
    start_replica(f, "nosuchmodel", 61);
    const char *cause = wait_failed(f);
    assert_non_null(strstr(cause, "model nosuchmodel:1 is not registered"));
}

static void test_missing_artifact_fails_with_a_cause_and_exit_code_3(void **state)
{
    fixture *f = *state;
    store_model("noartifact", CL_INPUT_DOUBLES, "python-closure", NULL, 0, NULL);
    start_replica(f, "noartifact", 62);
    const char *cause = wait_failed(f);
    assert_non_null(strstr(cause, "no artifact is stored for model noartifact:1"));
}

static void test_corrupted_pickle_fails_with_a_cause_and_exit_code_3(void **state)
{
    fixture *f = *state;
    store_test_model("badpickle", CL_INPUT_DOUBLES, "corrupt");
    start_replica(f, "badpickle", 63);
    const char *cause = wait_failed(f);
    assert_non_null(strstr(cause, "model badpickle:1"));
    assert_non_null(strstr(cause, "not a valid cloudpickled function"));
}

static void test_function_importing_a_missing_module_fails_naming_it(void **state)
{
    fixture *f = *state;
    store_test_model("nomodule", CL_INPUT_DOUBLES, "missing_module");
    start_replica(f, "nomodule", 64);
    const char *cause = wait_failed(f);
    assert_non_null(strstr(cause, "'clipper_test_missing_mod'"));
    assert_non_null(strstr(cause, "pkgs_to_install"));
}

static void test_function_pickled_by_another_python_fails_saying_so(void **state)
{
    fixture *f = *state;
    store_test_model("skew", CL_INPUT_DOUBLES, "version_skew");
    start_replica(f, "skew", 68);
    const char *cause = wait_failed(f);
    assert_non_null(strstr(cause, "different Python or cloudpickle version"));
}

/* An artifact that is not the registered one cannot mend, so the replica
 * does not exit into a restart loop: it keeps reporting "failed" with the
 * cause until it is stopped, then says "stopped" and exits 3. */
static const char *wait_failed_and_staying(fixture *f)
{
    if (!pump(f, FAIL_TIMEOUT_MS, has_state, "failed"))
        fail_msg("replica of %s did not report failed", f->model);
    assert_false(seen_state(f, "ready"));
    int beats = f->n_states;
    pump(f, 2 * CL_HEARTBEAT_MS + 500, never, NULL);
    assert_true(f->n_states >= beats + 2);
    assert_string_equal(f->states[f->n_states - 1], "failed");
    assert_int_equal(cl_test_wait_exit(f->pid, 0), -1); /* still running */
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    assert_true(pump(f, 5000, has_state, "stopped"));
    assert_int_equal(cl_test_wait_exit(f->pid, 5000), 3);
    f->pid = 0;
    return f->cause;
}

static void test_plain_publish_over_a_stored_artifact_changes_nothing(void **state)
{
    fixture *f = *state;
    store_test_model("badchunk", CL_INPUT_DOUBLES, "sum");
    /* What an outside probe did: chunk and manifest "replaced" by plain
     * publishes. The stream refuses both; the replica serves. */
    char subj[CL_SUBJECT_MAX];
    snprintf(subj, sizeof(subj), "%s.artifact.badchunk.1.c.0", PREFIX);
    assert_int_equal(cl_bus_publish(bus, subj, "garbage", 7), CL_OK);
    snprintf(subj, sizeof(subj), "%s.artifact.badchunk.1.meta", PREFIX);
    const char *forged = "{\"size\":7,\"chunks\":1,\"chunk_size\":7,\"sha256\":\"3e4b8ae8c7"
                         "3a1a7e1e4c1e6e05b3fc6d4ea7e2bd4ec2c4e0c8bbc6ac2bd2b0d7f2\"}";
    assert_int_equal(cl_bus_publish(bus, subj, forged, strlen(forged)), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    start_replica(f, "badchunk", 65);
    wait_ready(f);
}

static void test_corrupted_artifact_chunk_fails_and_stays_failed(void **state)
{
    fixture *f = *state;
    store_test_model("corruptchunk", CL_INPUT_DOUBLES, "sum");
    /* Only a purge (an operator's) makes room for other bytes. */
    char subj[CL_SUBJECT_MAX], body[CL_SUBJECT_MAX + 32];
    snprintf(subj, sizeof(subj), "%s.artifact.corruptchunk.1.c.0", PREFIX);
    snprintf(body, sizeof(body), "{\"filter\":\"%s\"}", subj);
    cl_msg *m = NULL;
    assert_int_equal(cl_bus_request(bus, "$JS.API.STREAM.PURGE.RTEST_ARTIFACTS", body,
                                    strlen(body), 5000, &m),
                     CL_OK);
    assert_non_null(strstr(cl_msg_data(m), "\"success\":true"));
    cl_msg_free(m);
    assert_int_equal(cl_bus_publish(bus, subj, "garbage", 7), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    start_replica(f, "corruptchunk", 69);
    const char *cause = wait_failed_and_staying(f);
    assert_non_null(strstr(cause, "artifact of corruptchunk:1 is corrupt"));
    assert_non_null(strstr(cause, "delete version 1 and deploy it again"));
}

static void test_artifact_not_matching_the_model_entry_digest_fails_and_stays_failed(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    void *data = rt_make_model("sum", &len);
    assert_non_null(data);
    store_model("otherdigest", CL_INPUT_DOUBLES, "python-closure", data, len,
                "0000000000000000000000000000000000000000000000000000000000000000");
    free(data);
    start_replica(f, "otherdigest", 66);
    const char *cause = wait_failed_and_staying(f);
    assert_non_null(strstr(cause, "the artifact stored for model otherdigest:1 is not the one "
                              "registered"));
    assert_non_null(strstr(cause, "the model record expects 0000"));
}

static void test_unknown_runtime_fails_naming_it(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    void *data = rt_make_model("sum", &len);
    assert_non_null(data);
    store_model("weirdrt", CL_INPUT_DOUBLES, "tensorflow", data, len, NULL);
    free(data);
    start_replica(f, "weirdrt", 67);
    const char *cause = wait_failed(f);
    assert_non_null(strstr(cause, "unknown runtime 'tensorflow'"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_doubles_batch_returns_the_functions_outputs_in_order),
        T(test_each_input_type_converts_as_clipper_did),
        T(test_raising_function_fails_its_batch_and_the_next_batch_works),
        T(test_wrong_returns_get_clippers_error_texts),
        T(test_task_of_another_input_type_gets_an_error_and_the_rest_are_served),
        T(test_malformed_work_batch_is_dropped_and_the_replica_keeps_serving),
        T(test_idle_replica_repeats_its_pull_and_heartbeat_every_second),
        T(test_idle_replica_pulls_at_once_when_a_new_leader_is_announced),
        T(test_sigterm_answers_the_batch_in_hand_then_stops_with_exit_0),
        T(test_unregistered_model_fails_with_a_cause_and_exit_code_3),
        T(test_missing_artifact_fails_with_a_cause_and_exit_code_3),
        T(test_corrupted_pickle_fails_with_a_cause_and_exit_code_3),
        T(test_function_importing_a_missing_module_fails_naming_it),
        T(test_function_pickled_by_another_python_fails_saying_so),
        T(test_plain_publish_over_a_stored_artifact_changes_nothing),
        T(test_corrupted_artifact_chunk_fails_and_stays_failed),
        T(test_artifact_not_matching_the_model_entry_digest_fails_and_stays_failed),
        T(test_unknown_runtime_fails_naming_it),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
