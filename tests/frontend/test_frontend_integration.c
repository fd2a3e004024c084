/* Integration tests: the frontend in-process against a real nats-server.
 *
 * The test writes apps, models and current versions into the KV bucket,
 * starts a frontend (HTTP on a free port), and plays the router and the
 * replicas itself: a thread pulls <p>.route.task.> and answers each task
 * on its reply subject according to the model it was sent to:
 *
 *   echo     the sum of the inputs (numbers), the text itself (strings),
 *            the hex of the bytes (bytes): status 0
 *   err      status 1 (model error)      expired  status 2
 *   norep    status 3 (no replica)       lost     status 4
 *   slow     holds the tasks (the deadline answers); released on demand
 *
 * Requests go over NATS (cl_bus_request) and HTTP (libcurl). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "cl_bus.h"
#include "cl_buf.h"
#include "cl_clock.h"
#include "cl_frontend.h"
#include "cl_kv.h"
#include "cl_state.h"
#include "cl_test_nats.h"
#include "cl_wire.h"
#include "fe_core.h" /* the cache tests look at queries in flight and cache stats */

#define PREFIX "fetest"
#define SLOW_SLO_US 300000
#define MAX_BODY (1024 * 1024)

/* ---- the fake router -------------------------------------------------- */

typedef struct {
    uint64_t id;
    char reply[128];
} held_task;

typedef struct {
    cl_bus *bus;
    cl_sub *sub;
    pthread_t th;
    volatile int stop;
    pthread_mutex_t mu;
    size_t msgs, tasks;
    char replies[8][128]; /* distinct result subjects seen */
    size_t n_replies;
    char last_subject[256];
    uint8_t last_input[256];
    size_t last_input_len;
    uint8_t last_type;
    uint64_t last_deadline, last_slo;
    held_task held[64];
    size_t n_held;
} router;

static CL_MUST_USE cl_status echo(const cl_task *t, cl_buf *out)
{
    double sum = 0;
    cl_status s = CL_OK;
    switch (t->input_type) {
    case CL_INPUT_DOUBLES:
        for (uint32_t i = 0; i + 8 <= t->input_len; i += 8) {
            double d;
            memcpy(&d, t->input + i, 8);
            sum += d;
        }
        s = cl_buf_printf(out, "%g", sum);
        break;
    case CL_INPUT_FLOATS:
        for (uint32_t i = 0; i + 4 <= t->input_len; i += 4) {
            float f;
            memcpy(&f, t->input + i, 4);
            sum += f;
        }
        s = cl_buf_printf(out, "%g", sum);
        break;
    case CL_INPUT_INTEGERS: {
        long long n = 0;
        for (uint32_t i = 0; i + 4 <= t->input_len; i += 4) {
            int32_t v;
            memcpy(&v, t->input + i, 4);
            n += v;
        }
        s = cl_buf_printf(out, "%lld", n);
        break;
    }
    case CL_INPUT_STRINGS:
        s = cl_buf_append(out, t->input, t->input_len);
        break;
    default:
        for (uint32_t i = 0; s == CL_OK && i < t->input_len; i++)
            s = cl_buf_printf(out, "%02x", t->input[i]);
        break;
    }
    return s;
}

/* Runs on the fake router's thread too, so it does not assert: a result
 * that is not sent fails the test that waits for it, and stderr says why. */
static void send_result(router *r, const char *reply, size_t reply_len, uint64_t id,
                        uint8_t status, const void *data, uint32_t len)
{
    char subject[256];
    snprintf(subject, sizeof(subject), "%.*s", (int)reply_len, reply);
    cl_buf b;
    cl_buf_init(&b);
    cl_status s = cl_wire_results_begin(&b);
    if (s == CL_OK)
        s = cl_wire_results_add(&b, id, status, data, len);
    if (s == CL_OK)
        s = cl_bus_publish(r->bus, subject, b.data, b.len);
    if (s != CL_OK)
        fprintf(stderr, "fake router: cannot send the result of task %llu: %s\n",
                (unsigned long long)id, cl_status_text(s));
    cl_buf_deinit(&b);
}

static void record(router *r, const char *subject, const cl_task *t, uint32_t n)
{
    pthread_mutex_lock(&r->mu);
    r->msgs++;
    r->tasks += n;
    snprintf(r->last_subject, sizeof(r->last_subject), "%s", subject);
    const cl_task *last = &t[n - 1];
    r->last_input_len = last->input_len < sizeof(r->last_input) ? last->input_len
                                                                 : sizeof(r->last_input);
    memcpy(r->last_input, last->input, r->last_input_len);
    r->last_type = last->input_type;
    r->last_deadline = last->deadline_us;
    r->last_slo = last->slo_us;
    for (uint32_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < r->n_replies; k++)
            if (strlen(r->replies[k]) == t[i].reply_len &&
                memcmp(r->replies[k], t[i].reply, t[i].reply_len) == 0)
                seen = true;
        if (!seen && r->n_replies < 8)
            snprintf(r->replies[r->n_replies++], 128, "%.*s", (int)t[i].reply_len, t[i].reply);
    }
    pthread_mutex_unlock(&r->mu);
}

static void *router_main(void *arg)
{
    router *r = arg;
    while (!r->stop) {
        cl_msg *m = NULL;
        if (cl_sub_next(r->sub, &m, 50) != CL_OK)
            continue;
        cl_task *t = NULL;
        uint32_t n = 0;
        cl_err err;
        if (cl_wire_tasks_decode(cl_msg_data(m), cl_msg_len(m), &t, &n, &err) != CL_OK || n == 0) {
            fprintf(stderr, "fake router: bad task batch: %s\n", err.msg);
            free(t);
            cl_msg_free(m);
            continue;
        }
        const char *subject = cl_msg_subject(m);
        record(r, subject, t, n);
        const char *model = subject + strlen(PREFIX ".route.task.");
        for (uint32_t i = 0; i < n; i++) {
            if (strncmp(model, "echo.", 5) == 0) {
                cl_buf out;
                cl_buf_init(&out);
                if (echo(&t[i], &out) == CL_OK)
                    send_result(r, t[i].reply, t[i].reply_len, t[i].task_id, CL_RESULT_OK,
                                out.data ? (const void *)out.data : "", (uint32_t)out.len);
                else
                    fprintf(stderr, "fake router: out of memory echoing task %llu\n",
                            (unsigned long long)t[i].task_id);
                cl_buf_deinit(&out);
            } else if (strncmp(model, "err.", 4) == 0) {
                const char *e = "ValueError: the model cannot handle this input";
                send_result(r, t[i].reply, t[i].reply_len, t[i].task_id, CL_RESULT_MODEL_ERROR,
                            e, (uint32_t)strlen(e));
            } else if (strncmp(model, "expired.", 8) == 0) {
                send_result(r, t[i].reply, t[i].reply_len, t[i].task_id, CL_RESULT_EXPIRED, "", 0);
            } else if (strncmp(model, "norep.", 6) == 0) {
                send_result(r, t[i].reply, t[i].reply_len, t[i].task_id, CL_RESULT_NO_REPLICA,
                            "", 0);
            } else if (strncmp(model, "lost.", 5) == 0) {
                send_result(r, t[i].reply, t[i].reply_len, t[i].task_id,
                            CL_RESULT_REPLICA_LOST, "", 0);
            } else { /* slow: hold */
                pthread_mutex_lock(&r->mu);
                if (r->n_held < 64) {
                    held_task *h = &r->held[r->n_held++];
                    h->id = t[i].task_id;
                    snprintf(h->reply, sizeof(h->reply), "%.*s", (int)t[i].reply_len,
                             t[i].reply);
                }
                pthread_mutex_unlock(&r->mu);
            }
        }
        free(t);
        cl_msg_free(m);
    }
    return NULL;
}

/* Sends "late" outputs for every held task. */
static size_t release_held(router *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_held;
    for (size_t i = 0; i < n; i++)
        send_result(r, r->held[i].reply, strlen(r->held[i].reply), r->held[i].id, CL_RESULT_OK,
                    "\"late\"", 6);
    r->n_held = 0;
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(cl_bus_flush(r->bus, 1000), CL_OK);
    return n;
}

static void router_reset(router *r)
{
    pthread_mutex_lock(&r->mu);
    r->msgs = r->tasks = 0;
    r->n_replies = 0;
    pthread_mutex_unlock(&r->mu);
}

/* ---- fixture ---------------------------------------------------------- */

typedef struct {
    cl_test_nats srv;
    cl_bus *bus;    /* the frontend's connection */
    cl_bus *client; /* the test's: requests and the fake router */
    cl_kv *kv;
    cl_frontend *fe;
    int port;
    router r;
} world;

static world W;

static void put(const char *key, const char *json)
{
    cl_err err;
    if (cl_kv_put(W.kv, key, json, strlen(json), NULL, &err) != CL_OK)
        fail_msg("cannot write %s: %s", key, err.msg);
}

static void put_app(const char *name, const char *type, const char *def, long slo,
                    const char *model)
{
    char key[CL_KEY_MAX], json[512];
    cl_err err;
    assert_int_equal(cl_key_app(key, name, &err), CL_OK);
    snprintf(json, sizeof(json),
             "{\"name\":\"%s\",\"input_type\":\"%s\",\"default_output\":\"%s\","
             "\"latency_slo_micros\":%ld,\"linked_models\":[%s%s%s]}",
             name, type, def, slo, model ? "\"" : "", model ? model : "", model ? "\"" : "");
    put(key, json);
}

static void put_model(const char *name, const char *version, bool current)
{
    char key[CL_KEY_MAX], json[768];
    cl_err err;
    assert_int_equal(cl_key_model(key, name, version, &err), CL_OK);
    snprintf(json, sizeof(json),
             "{\"model_name\":\"%s\",\"model_version\":\"%s\",\"input_type\":\"doubles\","
             "\"labels\":[],\"container_name\":\"NO_CONTAINER\",\"model_data_path\":\"DEPRECATED\","
             "\"batch_size\":-1,\"num_replicas\":1,\"runtime\":\"python-closure\","
             "\"artifact_sha256\":\"\",\"artifact_size\":0}",
             name, version);
    put(key, json);
    if (current) {
        assert_int_equal(cl_key_current(key, name, &err), CL_OK);
        snprintf(json, sizeof(json), "{\"model_version\":\"%s\"}", version);
        put(key, json);
    }
}

static cl_bus *connect_bus(void)
{
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.prefix = PREFIX;
    o.send_asap = true;
    cl_bus *b = NULL;
    assert_int_equal(cl_test_bus_connect_opts(&b, &W.srv, &o), 0);
    return b;
}

static int group_setup(void **state)
{
    (void)state;
    memset(&W, 0, sizeof(W));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cl_test_nats_start(&W.srv) != 0)
        return -1;
    W.bus = connect_bus();
    W.client = connect_bus();
    cl_err err;
    if (cl_kv_open(&W.kv, W.client, &err) != CL_OK) {
        fprintf(stderr, "kv: %s\n", err.msg);
        return -1;
    }
    put_model("echo", "1", true);
    put_model("echo", "2", false);
    put_model("err", "1", true);
    put_model("slow", "1", true);
    put_model("expired", "1", true);
    put_model("norep", "1", true);
    put_model("lost", "1", true);
    put_model("ghost", "1", false); /* registered, but no current version */
    put_app("dbl", "doubles", "-1.0", 2000000, "echo");
    put_app("flt", "floats", "-1.0", 2000000, "echo");
    put_app("ints", "integers", "0", 2000000, "echo");
    put_app("strs", "strings", "none", 2000000, "echo");
    put_app("bytes", "bytes", "none", 2000000, "echo");
    put_app("nolink", "doubles", "DEFAULT", 2000000, NULL);
    put_app("nocur", "doubles", "[0]", 2000000, "ghost");
    put_app("err", "doubles", "0", 2000000, "err");
    put_app("slow", "doubles", "\\\"late default\\\"", SLOW_SLO_US, "slow");
    put_app("expired", "doubles", "0", 2000000, "expired");
    put_app("norep", "doubles", "0", 2000000, "norep");
    put_app("lost", "doubles", "0", 2000000, "lost");
    put_app("cslow", "doubles", "\\\"long default\\\"", 3000000, "slow"); /* slow, longer SLO */

    W.r.bus = W.client;
    pthread_mutex_init(&W.r.mu, NULL);
    if (cl_bus_subscribe_sync(&W.r.sub, W.client, PREFIX ".route.task.>", NULL) != CL_OK)
        return -1;
    assert_int_equal(cl_bus_flush(W.client, 1000), CL_OK);
    pthread_create(&W.r.th, NULL, router_main, &W.r);

    cl_frontend_opts o;
    cl_frontend_opts_init(&o);
    o.metrics_port = 0; /* a free port: never the default 1390 */
    o.http_host = "127.0.0.1";
    o.http_port = 0;
    o.max_body = MAX_BODY;
    /* These tests count the tasks each query sends, so no cache here; the
     * test_cache_* tests start frontends with one. */
    o.cache_bytes = 0;
    if (cl_frontend_start(&W.fe, W.bus, &o, &err) != CL_OK) {
        fprintf(stderr, "frontend: %s\n", err.msg);
        return -1;
    }
    W.port = cl_frontend_http_port(W.fe);
    return W.port > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cl_frontend_free(W.fe);
    if (W.r.sub != NULL) {
        W.r.stop = 1;
        pthread_join(W.r.th, NULL);
        cl_sub_free(W.r.sub);
    }
    cl_kv_free(W.kv);
    cl_bus_free(W.client);
    cl_bus_free(W.bus);
    cl_test_nats_stop(&W.srv);
    curl_global_cleanup();
    return 0;
}

/* ---- clients ---------------------------------------------------------- */

static cJSON *nats_predict(const char *verb, const char *app, const char *body)
{
    char subject[256];
    snprintf(subject, sizeof(subject), PREFIX ".%s.%s", verb, app);
    cl_msg *reply = NULL;
    cl_status s = cl_bus_request(W.client, subject, body, strlen(body), 5000, &reply);
    if (s != CL_OK)
        fail_msg("request on %s: %s", subject, cl_status_text(s));
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    if (j == NULL)
        fail_msg("reply on %s is not JSON: %.*s", subject, (int)cl_msg_len(reply),
                 (const char *)cl_msg_data(reply));
    cl_msg_free(reply);
    return j;
}

static char *nats_text(const char *subject, const char *body)
{
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(W.client, subject, body, strlen(body), 5000, &reply), CL_OK);
    char *s = strndup(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    return s;
}

typedef struct {
    long status;
    char *body;
    char ctype[128];
    double seconds;
} http_reply;

static size_t on_data(char *p, size_t size, size_t n, void *closure)
{
    /* Short of memory: 0 makes curl fail the transfer. */
    return cl_buf_append(closure, p, size * n) == CL_OK ? size * n : 0;
}

typedef struct {
    const char *data;
    size_t len, off;
} upload;

static size_t on_read(char *p, size_t size, size_t n, void *closure)
{
    upload *u = closure;
    size_t k = size * n < u->len - u->off ? size * n : u->len - u->off;
    memcpy(p, u->data + u->off, k);
    u->off += k;
    return k;
}

static http_reply http_req(const char *method, const char *path, const char *body, size_t len,
                           bool chunked)
{
    http_reply r = {0};
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", W.port, path);
    CURL *c = curl_easy_init();
    cl_buf b;
    cl_buf_init(&b);
    struct curl_slist *h = NULL;
    upload u = {body, len, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (strcmp(method, "POST") == 0) {
        h = curl_slist_append(h, "Content-Type: application/json");
        if (chunked) {
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &u);
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.ctype, sizeof(r.ctype), "%s", ct ? ct : "");
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r.seconds);
    assert_int_equal(cl_buf_terminate(&b), CL_OK);
    r.body = cl_buf_steal(&b, NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static http_reply http_post(const char *path, const char *body)
{
    return http_req("POST", path, body, strlen(body), false);
}

static cJSON *http_json(http_reply *r, long want_status)
{
    if (r->status != want_status)
        fail_msg("HTTP status %ld, wanted %ld; body: %s", r->status, want_status, r->body);
    assert_string_equal(r->ctype, "application/json");
    cJSON *j = cJSON_Parse(r->body);
    if (j == NULL)
        fail_msg("HTTP body is not JSON: %s", r->body);
    free(r->body);
    r->body = NULL;
    return j;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) {
        char *s = cJSON_PrintUnformatted(o);
        fail_msg("'%s' is not a string in %s", k, s);
    }
    return v->valuestring;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) {
        char *s = cJSON_PrintUnformatted(o);
        fail_msg("'%s' is not a number in %s", k, s);
    }
    return v->valuedouble;
}

static bool flag(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsBool(v));
    return cJSON_IsTrue(v);
}

/* A model answer: {"query_id": n, "output": <number want>, "default": false}. */
static void expect_output(const cJSON *j, double want)
{
    assert_true(num(j, "query_id") >= 0);
    assert_false(flag(j, "default"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "default_explanation"));
    assert_true(num(j, "output") == want);
}

static void expect_default(const cJSON *j, const char *explanation)
{
    assert_true(flag(j, "default"));
    assert_string_equal(str(j, "default_explanation"), explanation);
}

static const char NO_MODEL[] = "No connected models found for query";
static const char SLO[] = "Failed to retrieve a prediction response within the specified latency SLO";

/* The frontend still answers a good query on both doors. */
static void expect_serving(void)
{
    cJSON *j = nats_predict("predict", "dbl", "{\"input\": [1.25, 1.0]}");
    expect_output(j, 2.25);
    cJSON_Delete(j);
    http_reply r = http_post("/dbl/predict", "{\"input\": [0.5]}");
    j = http_json(&r, 200);
    expect_output(j, 0.5);
    cJSON_Delete(j);
}

/* ---- tests ------------------------------------------------------------ */

static void test_predict_over_nats_returns_the_model_output(void **state)
{
    (void)state;
    router_reset(&W.r);
    cJSON *j = nats_predict("predict", "dbl", "{\"input\": [1.5, 2.5]}");
    expect_output(j, 4);
    cJSON_Delete(j);
    /* The task went to the current version with the app's SLO. */
    pthread_mutex_lock(&W.r.mu);
    assert_string_equal(W.r.last_subject, PREFIX ".route.task.echo.1");
    assert_int_equal(W.r.last_slo, 2000000);
    uint64_t now = cl_wall_us();
    assert_true(W.r.last_deadline > now && W.r.last_deadline <= now + 2000000);
    char want[128];
    snprintf(want, sizeof(want), PREFIX ".fe.%s.results.echo", cl_frontend_id(W.fe));
    assert_string_equal(W.r.replies[0], want);
    pthread_mutex_unlock(&W.r.mu);
}

static void test_predict_over_http_returns_the_model_output(void **state)
{
    (void)state;
    http_reply r = http_post("/dbl/predict", "{\"input\": [1.5, 2.5, 3.0]}");
    cJSON *j = http_json(&r, 200);
    expect_output(j, 7);
    cJSON_Delete(j);
    r = http_post("/dbl/predict/", "{\"input\": [1.0]}");
    j = http_json(&r, 200);
    expect_output(j, 1);
    cJSON_Delete(j);
}

static void test_inputs_arrive_as_raw_little_endian_bytes(void **state)
{
    (void)state;
    cJSON *j = nats_predict("predict", "ints", "{\"input\": [1, -2, 40]}");
    expect_output(j, 39);
    cJSON_Delete(j);
    pthread_mutex_lock(&W.r.mu);
    assert_int_equal(W.r.last_type, CL_INPUT_INTEGERS);
    assert_int_equal(W.r.last_input_len, 12);
    assert_memory_equal(W.r.last_input, "\x01\x00\x00\x00\xfe\xff\xff\xff\x28\x00\x00\x00", 12);
    pthread_mutex_unlock(&W.r.mu);

    j = nats_predict("predict", "flt", "{\"input\": [0.5, 0.25]}");
    expect_output(j, 0.75);
    cJSON_Delete(j);
    pthread_mutex_lock(&W.r.mu);
    assert_int_equal(W.r.last_type, CL_INPUT_FLOATS);
    assert_memory_equal(W.r.last_input, "\x00\x00\x00\x3f\x00\x00\x80\x3e", 8);
    pthread_mutex_unlock(&W.r.mu);

    /* Strings arrive as UTF-8; a JSON-looking output comes back as JSON. */
    j = nats_predict("predict", "strs", "{\"input\": \"{\\\"k\\\": \\\"v\\\"}\"}");
    assert_string_equal(str(cJSON_GetObjectItemCaseSensitive(j, "output"), "k"), "v");
    cJSON_Delete(j);
    j = nats_predict("predict", "strs", "{\"input\": \"plain text\"}");
    assert_string_equal(str(j, "output"), "plain text");
    cJSON_Delete(j);

    /* Bytes arrive decoded; "0001ff" is not JSON, so it is a string. */
    j = nats_predict("predict", "bytes", "{\"input\": \"AAH/\"}");
    assert_string_equal(str(j, "output"), "0001ff");
    cJSON_Delete(j);
    pthread_mutex_lock(&W.r.mu);
    assert_int_equal(W.r.last_input_len, 3);
    assert_memory_equal(W.r.last_input, "\x00\x01\xff", 3);
    pthread_mutex_unlock(&W.r.mu);
}

static void test_batch_predictions_keep_input_order_with_consecutive_ids(void **state)
{
    (void)state;
    const char *body = "{\"input_batch\": [[1.0], [2.0, 0.5], [3.0]]}";
    for (int door = 0; door < 2; door++) {
        cJSON *j;
        if (door == 0) {
            j = nats_predict("predict", "dbl", body);
        } else {
            http_reply r = http_post("/dbl/predict", body);
            j = http_json(&r, 200);
        }
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "batch_predictions");
        assert_int_equal(cJSON_GetArraySize(arr), 3);
        double want[] = {1, 2.5, 3};
        double first = num(cJSON_GetArrayItem(arr, 0), "query_id");
        for (int i = 0; i < 3; i++) {
            expect_output(cJSON_GetArrayItem(arr, i), want[i]);
            assert_true(num(cJSON_GetArrayItem(arr, i), "query_id") == first + i);
        }
        cJSON_Delete(j);
    }
    /* A batch of one is unwrapped; an empty batch is an empty list. */
    cJSON *j = nats_predict("predict", "dbl", "{\"input_batch\": [[4.0]]}");
    expect_output(j, 4);
    cJSON_Delete(j);
    j = nats_predict("predict", "dbl", "{\"input_batch\": []}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "batch_predictions")),
                     0);
    cJSON_Delete(j);
}

static void test_no_linked_model_or_no_current_version_gives_the_default(void **state)
{
    (void)state;
    cJSON *j = nats_predict("predict", "nolink", "{\"input\": [1.0]}");
    expect_default(j, NO_MODEL);
    assert_string_equal(str(j, "output"), "DEFAULT");
    cJSON_Delete(j);
    http_reply r = http_post("/nocur/predict", "{\"input_batch\": [[1.0], [2.0]]}");
    j = http_json(&r, 200);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "batch_predictions");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        expect_default(e, NO_MODEL);
        /* The default output "[0]" is JSON, so it comes back as an array. */
        assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(e, "output")));
    }
    cJSON_Delete(j);
    /* Validation still applies to a defaulted query. */
    j = nats_predict("predict", "nolink", "{\"input\": [1]}");
    assert_string_equal(str(j, "error"), "Json error");
    cJSON_Delete(j);
}

static void test_router_statuses_become_defaults_with_clippers_explanations(void **state)
{
    (void)state;
    cJSON *j = nats_predict("predict", "norep", "{\"input\": [1.0]}");
    expect_default(j, NO_MODEL);
    assert_true(num(j, "output") == 0);
    cJSON_Delete(j);
    j = nats_predict("predict", "lost", "{\"input\": [1.0]}");
    expect_default(j, NO_MODEL);
    cJSON_Delete(j);
    j = nats_predict("predict", "expired", "{\"input\": [1.0]}");
    expect_default(j, SLO);
    cJSON_Delete(j);
}

static void test_version_pinning_routes_to_that_version_or_explains_why_not(void **state)
{
    (void)state;
    cJSON *j = nats_predict("predict", "dbl", "{\"input\": [2.0], \"version\": \"2\"}");
    expect_output(j, 2);
    cJSON_Delete(j);
    pthread_mutex_lock(&W.r.mu);
    assert_string_equal(W.r.last_subject, PREFIX ".route.task.echo.2");
    pthread_mutex_unlock(&W.r.mu);

    http_reply r = http_post("/dbl/predict", "{\"input\": [2.0], \"version\": \"9\"}");
    j = http_json(&r, 400);
    assert_string_equal(str(j, "error"), "Query processing error");
    assert_string_equal(str(j, "cause"), "Requested version: 9 does not exist for model: echo");
    cJSON_Delete(j);

    j = nats_predict("predict", "nolink", "{\"input\": [2.0], \"version\": \"1\"}");
    assert_string_equal(str(j, "error"), "Query processing error");
    assert_string_equal(str(j, "cause"), "No model is linked to application nolink");
    cJSON_Delete(j);

    r = http_post("/dbl/predict", "{\"input\": [2.0], \"version\": 2}");
    j = http_json(&r, 400);
    assert_string_equal(str(j, "error"), "Json error");
    assert_non_null(strstr(str(j, "cause"), "JSON key version expected type Stringbut found "
                                            "type Number"));
    cJSON_Delete(j);
    expect_serving();
}

static void test_slo_expiry_answers_the_default_at_the_deadline(void **state)
{
    (void)state;
    uint64_t t0 = cl_mono_us();
    cJSON *j = nats_predict("predict", "slow", "{\"input\": [1.0]}");
    uint64_t took = cl_mono_us() - t0;
    expect_default(j, SLO);
    assert_string_equal(str(j, "output"), "late default");
    cJSON_Delete(j);
    if (took < SLOW_SLO_US || took > SLOW_SLO_US + 400000)
        fail_msg("the SLO default came after %llu us, expected about %d us",
                 (unsigned long long)took, SLOW_SLO_US);

    http_reply r = http_post("/slow/predict", "{\"input_batch\": [[1.0], [2.0]]}");
    j = http_json(&r, 200);
    assert_true(r.seconds >= SLOW_SLO_US / 1e6 && r.seconds < SLOW_SLO_US / 1e6 + 0.4);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "batch_predictions");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    expect_default(cJSON_GetArrayItem(arr, 1), SLO);
    cJSON_Delete(j);

    /* Results that come after the deadline are dropped quietly. */
    assert_true(release_held(&W.r) >= 3);
    cl_sleep_ms(50);
    expect_serving();
}

static void test_model_error_is_500_alone_and_an_entry_in_a_batch(void **state)
{
    (void)state;
    http_reply r = http_post("/err/predict", "{\"input\": [1.0]}");
    cJSON *j = http_json(&r, 500);
    assert_string_equal(str(j, "error"), "Model error");
    assert_string_equal(str(j, "cause"), "ValueError: the model cannot handle this input");
    cJSON_Delete(j);
    j = nats_predict("predict", "err", "{\"input_batch\": [[1.0], [2.0]]}");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "batch_predictions");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        assert_true(num(e, "query_id") >= 0);
        assert_string_equal(str(e, "error"), "Model error");
        assert_non_null(strstr(str(e, "cause"), "ValueError"));
    }
    cJSON_Delete(j);
    expect_serving();
}

static void test_unknown_app_is_404_on_both_doors(void **state)
{
    (void)state;
    http_reply r = http_post("/nosuch/predict", "{\"input\": [1.0]}");
    cJSON *j = http_json(&r, 404);
    assert_string_equal(str(j, "error"), "Unknown application");
    assert_string_equal(str(j, "cause"), "No application named 'nosuch' is registered");
    cJSON_Delete(j);
    j = nats_predict("predict", "nosuch", "not even json");
    assert_string_equal(str(j, "error"), "Unknown application");
    cJSON_Delete(j);
    expect_serving();
}

static void test_malformed_json_is_400_and_the_frontend_keeps_serving(void **state)
{
    (void)state;
    const char *bad[] = {"{\"input\": [1.0,", "", "[1.0]", "{\"input\": [1]}", "{\"inputs\": []}",
                         "{\"input\": \"x\"}", "{\"input\": [01.0]}", "\xff\xfe"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_reply r = http_post("/dbl/predict", bad[i]);
        cJSON *j = http_json(&r, 400);
        assert_string_equal(str(j, "error"), "Json error");
        assert_non_null(strstr(str(j, "cause"), "Error parsing JSON: "));
        assert_non_null(strstr(str(j, "cause"), "Expected JSON schema"));
        cJSON_Delete(j);
        j = nats_predict("predict", "dbl", bad[i]);
        assert_string_equal(str(j, "error"), "Json error");
        cJSON_Delete(j);
    }
    http_reply r = http_post("/dbl/predict", "{\"input\": [1.0,");
    cJSON *j = http_json(&r, 400);
    assert_non_null(strstr(str(j, "cause"), "JSON parse error: "));
    assert_non_null(strstr(str(j, "cause"), "(offset "));
    cJSON_Delete(j);
    expect_serving();
}

static void test_oversized_body_is_413_and_the_frontend_keeps_serving(void **state)
{
    (void)state;
    size_t len = 2 * MAX_BODY;
    char *big = malloc(len);
    memset(big, ' ', len);
    memcpy(big, "{\"input\": [", 11);
    for (int chunked = 0; chunked < 2; chunked++) {
        http_reply r = http_req("POST", "/dbl/predict", big, len, chunked);
        cJSON *j = http_json(&r, 413);
        assert_string_equal(str(j, "error"), "Request too large");
        assert_non_null(strstr(str(j, "cause"), "1048576"));
        cJSON_Delete(j);
        expect_serving();
    }
    free(big);
}

static void test_other_routes_are_404_json(void **state)
{
    (void)state;
    const char *cases[][2] = {{"GET", "/dbl/predict"}, {"POST", "/dbl"},
                              {"POST", "/dbl/predict/x"}, {"POST", "/metrics"},
                              {"DELETE", "/dbl/predict"}, {"GET", "/"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_reply r = http_req(cases[i][0], cases[i][1], "{}", 2, false);
        cJSON *j = http_json(&r, 404);
        assert_string_equal(str(j, "error"), "Not found");
        cJSON_Delete(j);
    }
    expect_serving();
}

static void test_metrics_count_predictions_per_app_as_strings(void **state)
{
    (void)state;
    expect_serving();
    http_reply r = http_req("GET", "/metrics", NULL, 0, false);
    cJSON *j = http_json(&r, 200);
    const cJSON *e, *counters = cJSON_GetObjectItemCaseSensitive(j, "counters");
    const char *count = NULL;
    cJSON_ArrayForEach(e, counters)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "app:dbl:num_predictions");
        if (m != NULL)
            count = str(m, "count");
    }
    assert_non_null(count);
    assert_true(atoi(count) >= 2);
    bool ratio = false, hist = false;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "ratio_counters"))
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "app:nolink:default_prediction_ratio");
        if (m != NULL)
            ratio = atof(str(m, "ratio")) == 1.0;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "histograms"))
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "app:dbl:prediction_latency");
        if (m != NULL)
            hist = atof(str(m, "p99")) > 0 && strcmp(str(m, "unit"), "microseconds") == 0;
    }
    assert_true(ratio);
    assert_true(hist);
    cJSON_Delete(j);
}

static void test_update_answers_feedback_received_and_explains_errors(void **state)
{
    (void)state;
    const char *good = "{\"uid\": 4, \"input\": [1.0, 2.0], \"label\": 1}";
    http_reply r = http_post("/dbl/update", good);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    assert_string_equal(r.body, "Feedback received? 1");
    free(r.body);
    r = http_post("/dbl/update/", "{\"uid\": 4, \"input\": [1], \"label\": 1.0}");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "Error parsing JSON: Array input of type Number is not of "
                                   "type double. Expected JSON schema: "));
    assert_non_null(strstr(r.body, "\"label\" := double"));
    free(r.body);
    char *t = nats_text(PREFIX ".update.dbl", good);
    assert_string_equal(t, "Feedback received? 1");
    free(t);
    t = nats_text(PREFIX ".update.dbl", "{\"input\": [1.0], \"label\": 1.0}");
    assert_non_null(strstr(t, "JSON object does not have required key: uid"));
    free(t);
    r = http_post("/nosuch/update", good);
    cJSON *j = http_json(&r, 404);
    assert_string_equal(str(j, "error"), "Unknown application");
    cJSON_Delete(j);
    expect_serving();
}

static void test_burst_of_nats_queries_is_coalesced_into_fewer_task_messages(void **state)
{
    (void)state;
    enum { N = 400 };
    cl_sub *inbox = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&inbox, W.client, "burst.replies", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(W.client, 1000), CL_OK);
    router_reset(&W.r);
    for (int i = 0; i < N; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"input\": [%d.0]}", i);
        assert_int_equal(cl_bus_publish_request(W.client, PREFIX ".predict.dbl", "burst.replies",
                                                body, strlen(body)),
                         CL_OK);
    }
    assert_int_equal(cl_bus_flush(W.client, 1000), CL_OK);
    double sum = 0;
    for (int i = 0; i < N; i++) {
        cl_msg *m = NULL;
        if (cl_sub_next(inbox, &m, 5000) != CL_OK)
            fail_msg("only %d of %d replies arrived", i, N);
        cJSON *j = cJSON_ParseWithLength(cl_msg_data(m), cl_msg_len(m));
        assert_false(flag(j, "default"));
        sum += num(j, "output");
        cJSON_Delete(j);
        cl_msg_free(m);
    }
    assert_true(sum == (double)N * (N - 1) / 2);
    pthread_mutex_lock(&W.r.mu);
    size_t msgs = W.r.msgs, tasks = W.r.tasks;
    pthread_mutex_unlock(&W.r.mu);
    assert_int_equal(tasks, N);
    print_message("%zu tasks came in %zu task messages\n", tasks, msgs);
    if (msgs >= tasks)
        fail_msg("%zu tasks came in %zu messages: no coalescing under load", tasks, msgs);
    cl_sub_free(inbox);
}

static void test_two_frontends_in_the_queue_group_both_answer(void **state)
{
    (void)state;
    cl_bus *bus2 = connect_bus();
    cl_frontend_opts o;
    cl_frontend_opts_init(&o);
    o.metrics_port = 0; /* a free port: never the default 1390 */
    o.http_port = -1;
    o.cache_bytes = 0; /* each query must reach a frontend's tasks */
    cl_frontend *fe2 = NULL;
    cl_err err;
    if (cl_frontend_start(&fe2, bus2, &o, &err) != CL_OK)
        fail_msg("second frontend: %s", err.msg);
    assert_int_equal(cl_frontend_http_port(fe2), -1);
    router_reset(&W.r);
    for (int i = 0; i < 60; i++) {
        cJSON *j = nats_predict("predict", "dbl", "{\"input\": [1.0]}");
        expect_output(j, 1);
        cJSON_Delete(j);
    }
    pthread_mutex_lock(&W.r.mu);
    size_t n = W.r.n_replies;
    bool first = false, second = false;
    for (size_t i = 0; i < n; i++) {
        first |= strstr(W.r.replies[i], cl_frontend_id(W.fe)) != NULL;
        second |= strstr(W.r.replies[i], cl_frontend_id(fe2)) != NULL;
    }
    pthread_mutex_unlock(&W.r.mu);
    assert_true(first);
    assert_true(second);
    cl_frontend_free(fe2);
    cl_bus_free(bus2);
    expect_serving();
}

/* A frontend that stops answers every query the bus already gave it: a
 * burst of queries over NATS goes to two frontends of the queue group, one
 * stops in the middle of it, and every query gets its answer (the stopping
 * one drains its subscription instead of dropping what it received). */
static void test_a_stopping_frontend_answers_every_query_it_was_given(void **state)
{
    (void)state;
    enum { N = 400 };
    cl_bus *bus2 = connect_bus();
    cl_frontend_opts o;
    cl_frontend_opts_init(&o);
    o.metrics_port = 0;
    o.http_port = -1;
    o.cache_bytes = 0;
    cl_frontend *fe2 = NULL;
    cl_err err;
    if (cl_frontend_start(&fe2, bus2, &o, &err) != CL_OK)
        fail_msg("second frontend: %s", err.msg);
    cl_sub *inbox = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&inbox, W.client, "_INBOX.stopping.>", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(W.client, 2000), CL_OK);
    const char *body = "{\"input\": [2.0]}";
    for (int i = 0; i < N; i++) {
        char reply[64];
        snprintf(reply, sizeof(reply), "_INBOX.stopping.%d", i);
        assert_int_equal(cl_bus_publish_request(W.client, PREFIX ".predict.dbl", reply, body,
                                                strlen(body)),
                         CL_OK);
        if (i == N / 2)
            assert_int_equal(cl_bus_flush(W.client, 2000), CL_OK);
    }
    assert_int_equal(cl_bus_flush(W.client, 2000), CL_OK);
    cl_frontend_free(fe2); /* while queries are still arriving */
    cl_bus_free(bus2);
    int got = 0;
    cl_msg *m = NULL;
    while (got < N && cl_sub_next(inbox, &m, 3000) == CL_OK) {
        cJSON *j = cJSON_ParseWithLength(cl_msg_data(m), cl_msg_len(m));
        expect_output(j, 2);
        cJSON_Delete(j);
        cl_msg_free(m);
        got++;
    }
    cl_sub_free(inbox);
    assert_int_equal(got, N);
    expect_serving();
}

typedef struct {
    int port;
    const char *path, *body;
    http_reply reply;
} bg_request;

static void *bg_post(void *arg)
{
    bg_request *b = arg;
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", b->port, b->path);
    CURL *c = curl_easy_init();
    cl_buf out;
    cl_buf_init(&out);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    b->reply.status = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    if (b->reply.status == 0)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &b->reply.status);
    if (cl_buf_terminate(&out) != CL_OK)
        b->reply.status = -1; /* out of memory: as if no answer came */
    b->reply.body = cl_buf_steal(&out, NULL);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_full_frontend_answers_503_and_a_stopping_one_answers_what_it_holds(void **state)
{
    (void)state;
    cl_bus *bus2 = connect_bus();
    cl_frontend_opts o;
    cl_frontend_opts_init(&o);
    o.metrics_port = 0; /* a free port: never the default 1390 */
    o.http_host = "127.0.0.1";
    o.http_port = 0;
    o.max_pending = 2;
    cl_frontend *fe2 = NULL;
    cl_err err;
    if (cl_frontend_start(&fe2, bus2, &o, &err) != CL_OK)
        fail_msg("small frontend: %s", err.msg);
    int port = cl_frontend_http_port(fe2);

    bg_request big = {port, "/slow/predict", "{\"input_batch\": [[1.0], [2.0], [3.0]]}", {0}};
    bg_post(&big);
    assert_int_equal(big.reply.status, 503);
    cJSON *j = cJSON_Parse(big.reply.body);
    assert_string_equal(str(j, "error"), "Service unavailable");
    cJSON_Delete(j);
    free(big.reply.body);

    /* A query in flight when the frontend stops still gets its answer. */
    bg_request held = {port, "/slow/predict", "{\"input\": [1.0]}", {0}};
    pthread_t th;
    pthread_create(&th, NULL, bg_post, &held);
    cl_sleep_ms(100);
    cl_frontend_free(fe2);
    pthread_join(th, NULL);
    assert_int_equal(held.reply.status, 200);
    j = cJSON_Parse(held.reply.body);
    assert_non_null(j);
    assert_true(flag(j, "default"));
    cJSON_Delete(j);
    free(held.reply.body);
    cl_bus_free(bus2);
    release_held(&W.r);
    expect_serving();
}

typedef struct {
    int id;
    int port;
    int bad;
} http_worker;

/* Each worker sends its own inputs over HTTP and checks each answer. */
static void *http_worker_main(void *arg)
{
    http_worker *w = arg;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/dbl/predict", w->port);
    CURL *c = curl_easy_init();
    for (int i = 0; i < 50; i++) {
        char body[64];
        double v = w->id * 1000 + i;
        snprintf(body, sizeof(body), "{\"input\": [%.1f]}", v);
        cl_buf out;
        cl_buf_init(&out);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        /* Out of memory counts as a bad answer (not asserted on this thread). */
        cJSON *j = status == 200 && cl_buf_terminate(&out) == CL_OK
                       ? cJSON_Parse((const char *)out.data)
                       : NULL;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "output");
        if (!cJSON_IsNumber(o) || o->valuedouble != v)
            w->bad++;
        cJSON_Delete(j);
        cl_buf_deinit(&out);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* 8 clients, 50 queries each, on port: how many answers were wrong. */
static int concurrent_http_clients(int port)
{
    enum { N = 8 };
    pthread_t th[N];
    http_worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (http_worker){i, port, 0};
        pthread_create(&th[i], NULL, http_worker_main, &w[i]);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    return bad;
}

/* The door on the io thread's loop (the default): concurrent queries are
 * read, sent and answered by that one thread, and their tasks share
 * messages. */
static void test_concurrent_http_clients_each_get_their_own_answer(void **state)
{
    (void)state;
    router_reset(&W.r);
    assert_int_equal(concurrent_http_clients(W.port), 0);
    pthread_mutex_lock(&W.r.mu);
    size_t msgs = W.r.msgs, tasks = W.r.tasks;
    pthread_mutex_unlock(&W.r.mu);
    assert_int_equal(tasks, 400);
    print_message("400 HTTP queries came in %zu task messages\n", msgs);
}

/* --http-threads N: the door has threads of its own, as before the loop. */
static void test_http_on_threads_of_its_own_answers_concurrent_clients(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    cl_frontend_opts o;
    cl_frontend_opts_init(&o);
    o.http_host = "127.0.0.1";
    o.http_port = 0;
    o.metrics_port = -1;
    o.cache_bytes = 0;
    o.http_threads = 2;
    cl_frontend *fe = NULL;
    cl_err err;
    if (cl_frontend_start(&fe, bus, &o, &err) != CL_OK)
        fail_msg("frontend with 2 HTTP threads: %s", err.msg);
    assert_int_equal(concurrent_http_clients(cl_frontend_http_port(fe)), 0);
    cl_frontend_free(fe);
    cl_bus_free(bus);
}

/* ---- the prediction cache ------------------------------------------------ */

static size_t router_count(const size_t *field)
{
    pthread_mutex_lock(&W.r.mu);
    size_t n = *field;
    pthread_mutex_unlock(&W.r.mu);
    return n;
}

static size_t fe_queries(cl_frontend *fe)
{
    pthread_mutex_lock(&fe->mu);
    size_t n = fe->n_queries;
    pthread_mutex_unlock(&fe->mu);
    return n;
}

/* Waits up to ms for *field (a router counter) to reach want. */
static bool router_reaches(const size_t *field, size_t want, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (router_count(field) >= want)
            return true;
        cl_sleep_ms(5);
    }
    return router_count(field) >= want;
}

static bool fe_holds(cl_frontend *fe, size_t want, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (fe_queries(fe) >= want)
            return true;
        cl_sleep_ms(5);
    }
    return false;
}

/* A frontend of its own (HTTP only is used) with a cache of cache_bytes. */
static cl_frontend *start_cache_fe(size_t cache_bytes, cl_bus **bus, int *port)
{
    *bus = connect_bus();
    cl_frontend_opts o;
    cl_frontend_opts_init(&o);
    o.metrics_port = 0; /* a free port: never the default 1390 */
    o.http_host = "127.0.0.1";
    o.http_port = 0;
    o.cache_bytes = cache_bytes;
    o.metrics_port = -1;
    cl_frontend *fe = NULL;
    cl_err err;
    if (cl_frontend_start(&fe, *bus, &o, &err) != CL_OK)
        fail_msg("frontend with a cache of %zu bytes: %s", cache_bytes, err.msg);
    *port = cl_frontend_http_port(fe);
    /* Nothing held from an earlier test; count from 0. */
    release_held(&W.r);
    router_reset(&W.r);
    return fe;
}

static void stop_cache_fe(cl_frontend *fe, cl_bus *bus)
{
    cl_frontend_free(fe);
    cl_bus_free(bus);
}

static struct cl_fe_cache_stats cache_stats(cl_frontend *fe)
{
    struct cl_fe_cache_stats st;
    assert_non_null(fe->cache);
    cl_fe_cache_stats(fe->cache, &st);
    return st;
}

/* The reply of b, parsed; fails unless its HTTP status is want. */
static cJSON *bg_json(bg_request *b, long want)
{
    if (b->reply.status != want)
        fail_msg("%s: HTTP %ld (wanted %ld): %s", b->path, b->reply.status, want,
                 b->reply.body ? b->reply.body : "");
    cJSON *j = cJSON_Parse(b->reply.body);
    if (j == NULL)
        fail_msg("%s: not JSON: %s", b->path, b->reply.body);
    free(b->reply.body);
    b->reply.body = NULL;
    return j;
}

static void expect_text_output(const cJSON *j, const char *want)
{
    assert_false(flag(j, "default"));
    assert_string_equal(str(j, "output"), want);
}

static void test_cache_identical_concurrent_queries_share_one_task_and_repeats_hit(void **state)
{
    (void)state;
    enum { N = 16 };
    cl_bus *bus;
    int port;
    cl_frontend *fe = start_cache_fe(1 << 20, &bus, &port);
    bg_request q[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        q[i] = (bg_request){port, "/cslow/predict", "{\"input\": [7.0, 7.0]}", {0}};
        pthread_create(&th[i], NULL, bg_post, &q[i]);
    }
    /* All N wait in the frontend while the fake router holds the task. */
    assert_true(fe_holds(fe, N, 5000));
    assert_true(router_reaches(&W.r.n_held, 1, 2000));
    cl_sleep_ms(50); /* a second task, if one were sent, would arrive now */
    assert_int_equal(router_count(&W.r.tasks), 1);
    assert_int_equal(release_held(&W.r), 1);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cJSON *j = bg_json(&q[i], 200);
        expect_text_output(j, "late");
        cJSON_Delete(j);
    }
    /* Again, after completion: answered from the cache, no task. */
    bg_request again = {port, "/cslow/predict", "{\"input\": [7.0, 7.0]}", {0}};
    bg_post(&again);
    cJSON *j = bg_json(&again, 200);
    expect_text_output(j, "late");
    cJSON_Delete(j);
    assert_int_equal(router_count(&W.r.tasks), 1);
    assert_int_equal(router_count(&W.r.n_held), 0);

    /* Identical inputs inside one batch share a task too. */
    bg_request batch = {port, "/dbl/predict", "{\"input_batch\": [[3.0], [3.0], [4.0], [3.0]]}",
                        {0}};
    bg_post(&batch);
    j = bg_json(&batch, 200);
    const cJSON *preds = cJSON_GetObjectItemCaseSensitive(j, "batch_predictions");
    assert_int_equal(cJSON_GetArraySize(preds), 4);
    const double want[] = {3, 3, 4, 3};
    for (int i = 0; i < 4; i++)
        expect_output(cJSON_GetArrayItem(preds, i), want[i]);
    cJSON_Delete(j);
    assert_int_equal(router_count(&W.r.tasks), 3);

    struct cl_fe_cache_stats st = cache_stats(fe);
    assert_int_equal(st.lookups, N + 1 + 4);
    assert_int_equal(st.hits, (N - 1) + 1 + 2);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.entries, 3);
    assert_true(st.bytes > 0 && st.bytes <= st.capacity);

    /* Clipper's metrics say so too: 21 lookups, 18 of them hits. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    CURL *c = curl_easy_init();
    cl_buf out;
    cl_buf_init(&out);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    assert_int_equal(cl_buf_terminate(&out), CL_OK);
    assert_non_null(strstr((const char *)out.data,
                           "{\"internal:prediction_cache_lookups\":{\"count\":\"21\"}}"));
    assert_non_null(strstr((const char *)out.data, "\"internal:prediction_cache_hit_ratio\":"
                                                   "{\"ratio\":\"0.857"));
    assert_non_null(strstr((const char *)out.data, "model:slow:1:cache_hit_ratio"));
    cl_buf_deinit(&out);
    stop_cache_fe(fe, bus);
}

static void test_cache_off_sends_a_task_for_every_query(void **state)
{
    (void)state;
    cl_bus *bus;
    int port;
    cl_frontend *fe = start_cache_fe(0, &bus, &port);
    assert_null(fe->cache);
    for (int i = 0; i < 3; i++) {
        bg_request b = {port, "/dbl/predict", "{\"input\": [1.5, 1.5]}", {0}};
        bg_post(&b);
        cJSON *j = bg_json(&b, 200);
        expect_output(j, 3.0);
        cJSON_Delete(j);
    }
    assert_int_equal(router_count(&W.r.tasks), 3);
    stop_cache_fe(fe, bus);
}

static void test_cache_entry_of_a_task_that_never_answers_is_removed(void **state)
{
    (void)state;
    cl_bus *bus;
    int port;
    cl_frontend *fe = start_cache_fe(1 << 20, &bus, &port);
    /* The router holds the task and never answers (it stands for a lost
     * router or a lost result): the query gets the default at its SLO. */
    bg_request first = {port, "/slow/predict", "{\"input\": [9.0]}", {0}};
    bg_post(&first);
    cJSON *j = bg_json(&first, 200);
    expect_default(j, SLO);
    cJSON_Delete(j);
    assert_int_equal(cache_stats(fe).pending, 0);
    /* Clipper left the entry pending forever, so this one would join it
     * and get the default too; here it sends a task of its own and gets
     * the model's output. */
    bg_request second = {port, "/slow/predict", "{\"input\": [9.0]}", {0}};
    pthread_t th;
    pthread_create(&th, NULL, bg_post, &second);
    assert_true(router_reaches(&W.r.tasks, 2, 2000));
    release_held(&W.r); /* the first task's late output is dropped, the second's answers */
    pthread_join(th, NULL);
    j = bg_json(&second, 200);
    expect_text_output(j, "late");
    cJSON_Delete(j);
    stop_cache_fe(fe, bus);
}

static void test_cache_waiter_with_a_later_deadline_gets_a_new_task(void **state)
{
    (void)state;
    cl_bus *bus;
    int port;
    cl_frontend *fe = start_cache_fe(1 << 20, &bus, &port);
    /* A (300 ms SLO) makes the entry; B (3 s SLO, another app on the same
     * model version) joins it. */
    bg_request a = {port, "/slow/predict", "{\"input\": [5.0]}", {0}};
    bg_request b = {port, "/cslow/predict", "{\"input\": [5.0]}", {0}};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, bg_post, &a);
    assert_true(router_reaches(&W.r.n_held, 1, 2000));
    pthread_create(&tb, NULL, bg_post, &b);
    assert_true(fe_holds(fe, 2, 2000));
    assert_int_equal(router_count(&W.r.tasks), 1);
    /* A's deadline passes with no result: A gets the default, and B is
     * not left waiting on a dead task: one new task goes out for it. */
    pthread_join(ta, NULL);
    cJSON *j = bg_json(&a, 200);
    expect_default(j, SLO);
    cJSON_Delete(j);
    assert_true(router_reaches(&W.r.tasks, 2, 2000));
    release_held(&W.r);
    pthread_join(tb, NULL);
    j = bg_json(&b, 200);
    expect_text_output(j, "late");
    cJSON_Delete(j);
    assert_int_equal(router_count(&W.r.tasks), 2);
    assert_int_equal(cache_stats(fe).pending, 0);
    stop_cache_fe(fe, bus);
}

/* A result for a held task of model slow, sent on model echo's results
 * subject (as a replica of echo, which nats-server lets publish there
 * only, would), does not answer it: the real one does. */
static void test_a_result_on_another_model_s_subject_answers_nothing(void **state)
{
    (void)state;
    bg_request a = {W.port, "/cslow/predict", "{\"input\": [9.0]}", {0}};
    pthread_t ta;
    router_reset(&W.r);
    pthread_create(&ta, NULL, bg_post, &a);
    assert_true(router_reaches(&W.r.n_held, 1, 2000));
    pthread_mutex_lock(&W.r.mu);
    held_task h = W.r.held[0];
    pthread_mutex_unlock(&W.r.mu);
    char forged[CL_SUBJECT_MAX];
    snprintf(forged, sizeof(forged), PREFIX ".fe.%s.results.echo", cl_frontend_id(W.fe));
    assert_non_null(strstr(h.reply, ".results.slow"));
    send_result(&W.r, forged, strlen(forged), h.id, CL_RESULT_OK, "\"FORGED\"", 8);
    assert_int_equal(cl_bus_flush(W.r.bus, 1000), CL_OK);
    cl_sleep_ms(100);
    assert_true(fe_holds(W.fe, 1, 1000)); /* still waiting */
    assert_int_equal(release_held(&W.r), 1);
    pthread_join(ta, NULL);
    cJSON *j = bg_json(&a, 200);
    expect_text_output(j, "late");
    cJSON_Delete(j);
}

/* Answers every held task with status (and nothing), as a router would. */
static size_t answer_held(router *r, uint8_t status)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_held;
    for (size_t i = 0; i < n; i++)
        send_result(r, r->held[i].reply, strlen(r->held[i].reply), r->held[i].id, status, "", 0);
    r->n_held = 0;
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(cl_bus_flush(r->bus, 1000), CL_OK);
    return n;
}

static void test_cache_task_shed_early_is_resent_for_waiters_with_later_deadlines(void **state)
{
    (void)state;
    cl_bus *bus;
    int port;
    cl_frontend *fe = start_cache_fe(1 << 20, &bus, &port);
    bg_request a = {port, "/slow/predict", "{\"input\": [6.0]}", {0}};
    bg_request b = {port, "/cslow/predict", "{\"input\": [6.0]}", {0}};
    pthread_t ta, tb;
    uint64_t t0 = cl_mono_us();
    pthread_create(&ta, NULL, bg_post, &a);
    assert_true(router_reaches(&W.r.n_held, 1, 2000));
    pthread_create(&tb, NULL, bg_post, &b);
    assert_true(fe_holds(fe, 2, 2000));
    /* The router sheds the task before A's deadline ("expired"): A gets
     * the default at once, as it would alone; B's deadline is later, so
     * one new task goes out for it instead of a default. */
    assert_int_equal(answer_held(&W.r, CL_RESULT_EXPIRED), 1);
    pthread_join(ta, NULL);
    assert_true(cl_mono_us() - t0 < SLOW_SLO_US);
    cJSON *j = bg_json(&a, 200);
    expect_default(j, SLO);
    cJSON_Delete(j);
    assert_true(router_reaches(&W.r.n_held, 1, 2000));
    assert_int_equal(router_count(&W.r.tasks), 2);
    release_held(&W.r);
    pthread_join(tb, NULL);
    j = bg_json(&b, 200);
    expect_text_output(j, "late");
    cJSON_Delete(j);
    assert_int_equal(cache_stats(fe).pending, 0);
    stop_cache_fe(fe, bus);
}

static void test_cache_keeps_no_error_expiry_or_lost_replica(void **state)
{
    (void)state;
    cl_bus *bus;
    int port;
    cl_frontend *fe = start_cache_fe(1 << 20, &bus, &port);
    const char *apps[] = {"/err/predict", "/expired/predict", "/norep/predict",
                          "/lost/predict"};
    for (size_t a = 0; a < 4; a++) {
        for (int i = 0; i < 2; i++) {
            bg_request r = {port, apps[a], "{\"input\": [4.0]}", {0}};
            bg_post(&r);
            cJSON *j = bg_json(&r, a == 0 ? 500 : 200);
            if (a == 0)
                assert_string_equal(str(j, "error"), "Model error");
            else
                expect_default(j, a == 1 ? SLO : NO_MODEL);
            cJSON_Delete(j);
        }
        /* The second query sent a task again: nothing was kept. */
        assert_int_equal(router_count(&W.r.tasks), 2 * (a + 1));
    }
    struct cl_fe_cache_stats st = cache_stats(fe);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    stop_cache_fe(fe, bus);
}

/* Sends a query to app until its reply satisfies ok (the view follows the
 * KV bucket asynchronously), at most 3 s. */
static bool eventually(const char *app, bool (*ok)(const cJSON *))
{
    for (int i = 0; i < 150; i++) {
        cJSON *j = nats_predict("predict", app, "{\"input\": [1.0]}");
        bool good = ok(j);
        cJSON_Delete(j);
        if (good)
            return true;
        cl_sleep_ms(20);
    }
    return false;
}

static bool is_model_output(const cJSON *j)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "default");
    return cJSON_IsFalse(d);
}

static bool is_unknown_app(const cJSON *j)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    return cJSON_IsString(e) && strcmp(e->valuestring, "Unknown application") == 0;
}

static bool went_to_version_2(const cJSON *j)
{
    (void)j;
    pthread_mutex_lock(&W.r.mu);
    bool v2 = strcmp(W.r.last_subject, PREFIX ".route.task.echo.2") == 0;
    pthread_mutex_unlock(&W.r.mu);
    return v2;
}

static bool went_to_version_1(const cJSON *j)
{
    (void)j;
    pthread_mutex_lock(&W.r.mu);
    bool v1 = strcmp(W.r.last_subject, PREFIX ".route.task.echo.1") == 0;
    pthread_mutex_unlock(&W.r.mu);
    return v1;
}

static void test_cluster_state_changes_apply_without_a_restart(void **state)
{
    (void)state;
    put_app("temp", "doubles", "T", 2000000, "echo");
    assert_true(eventually("temp", is_model_output));
    /* Roll forward to version 2 and back, as set_model_version does. */
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_current(key, "echo", &err), CL_OK);
    put(key, "{\"model_version\":\"2\"}");
    assert_true(eventually("temp", went_to_version_2));
    put(key, "{\"model_version\":\"1\"}");
    assert_true(eventually("temp", went_to_version_1));
    /* A deleted app stops answering at once (Clipper kept its route). */
    assert_int_equal(cl_key_app(key, "temp", &err), CL_OK);
    assert_int_equal(cl_kv_delete(W.kv, key, &err), CL_OK);
    assert_true(eventually("temp", is_unknown_app));
    http_reply r = http_post("/temp/predict", "{\"input\": [1.0]}");
    cJSON *j = http_json(&r, 404);
    cJSON_Delete(j);
}

/* The view follows the store through a watch and can trail a write by its
 * delivery time; a query sent right after the write must still see it
 * (fe_query.c reads the store on a miss). Each round writes, then queries
 * at once with no retry: a new app (a stale view says 404), a new current
 * version (a stale view routes to the old one), a new version pinned by
 * the query (a stale view says it does not exist). */
static bool last_task_went_to(const char *subject)
{
    pthread_mutex_lock(&W.r.mu);
    bool same = strcmp(W.r.last_subject, subject) == 0;
    pthread_mutex_unlock(&W.r.mu);
    return same;
}

static void test_a_query_right_after_a_state_write_sees_it(void **state)
{
    (void)state;
    int misses = 0;
    char app[32], version[32], body[96], subject[128];
    /* The frontend's view sees none of these writes until the end: every
     * answer below comes from reading the store (10 rounds, 30 reads: the
     * read budget's burst is 32). */
    cl_view_hold(W.fe->view, true);
    for (int i = 0; i < 10; i++) {
        snprintf(app, sizeof(app), "ryw%d", i);
        put_app(app, "doubles", "D", 2000000, "echo");
        cJSON *j = nats_predict("predict", app, "{\"input\": [1.0]}");
        misses += is_model_output(j) ? 0 : 1;
        cJSON_Delete(j);

        snprintf(version, sizeof(version), "r%d", i);
        put_model("echo", version, true);
        j = nats_predict("predict", app, "{\"input\": [2.0]}");
        snprintf(subject, sizeof(subject), PREFIX ".route.task.echo.%s", version);
        misses += is_model_output(j) && last_task_went_to(subject) ? 0 : 1;
        cJSON_Delete(j);

        snprintf(version, sizeof(version), "p%d", i);
        put_model("echo", version, false);
        snprintf(body, sizeof(body), "{\"input\": [3.0], \"version\": \"%s\"}", version);
        j = nats_predict("predict", app, body);
        snprintf(subject, sizeof(subject), PREFIX ".route.task.echo.%s", version);
        misses += is_model_output(j) && last_task_went_to(subject) ? 0 : 1;
        cJSON_Delete(j);
    }
    cl_view_hold(W.fe->view, false);
    put_model("echo", "1", true); /* as the other tests expect */
    assert_true(eventually("ryw9", went_to_version_1));
    assert_int_equal(misses, 0);
}

/* Feedback to an app registered a moment ago: the frontend's view has not
 * seen it, the store has (Clipper's /update gave 404 here too, until its
 * own cache caught up). */
static void test_feedback_right_after_registering_the_app_is_accepted(void **state)
{
    (void)state;
    cl_view_hold(W.fe->view, true);
    put_app("rywfb", "doubles", "D", 2000000, NULL);
    http_reply r = http_post("/rywfb/update", "{\"uid\": 4, \"input\": [1.0], \"label\": 1}");
    cl_view_hold(W.fe->view, false);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "Feedback received? 1");
    free(r.body);
}

static void test_service_api_names_the_frontend(void **state)
{
    (void)state;
    char *t = nats_text("$SRV.INFO.clipper-frontend", "");
    cJSON *j = cJSON_Parse(t);
    assert_non_null(j);
    assert_string_equal(str(j, "name"), "clipper-frontend");
    cJSON_Delete(j);
    free(t);
    t = nats_text("$SRV.STATS.clipper-frontend", "");
    assert_non_null(strstr(t, "queries_in_flight"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_over_nats_returns_the_model_output),
        cmocka_unit_test(test_predict_over_http_returns_the_model_output),
        cmocka_unit_test(test_service_api_names_the_frontend),
        cmocka_unit_test(test_inputs_arrive_as_raw_little_endian_bytes),
        cmocka_unit_test(test_batch_predictions_keep_input_order_with_consecutive_ids),
        cmocka_unit_test(test_no_linked_model_or_no_current_version_gives_the_default),
        cmocka_unit_test(test_router_statuses_become_defaults_with_clippers_explanations),
        cmocka_unit_test(test_version_pinning_routes_to_that_version_or_explains_why_not),
        cmocka_unit_test(test_slo_expiry_answers_the_default_at_the_deadline),
        cmocka_unit_test(test_model_error_is_500_alone_and_an_entry_in_a_batch),
        cmocka_unit_test(test_unknown_app_is_404_on_both_doors),
        cmocka_unit_test(test_malformed_json_is_400_and_the_frontend_keeps_serving),
        cmocka_unit_test(test_oversized_body_is_413_and_the_frontend_keeps_serving),
        cmocka_unit_test(test_other_routes_are_404_json),
        cmocka_unit_test(test_metrics_count_predictions_per_app_as_strings),
        cmocka_unit_test(test_update_answers_feedback_received_and_explains_errors),
        cmocka_unit_test(test_burst_of_nats_queries_is_coalesced_into_fewer_task_messages),
        cmocka_unit_test(test_concurrent_http_clients_each_get_their_own_answer),
        cmocka_unit_test(test_http_on_threads_of_its_own_answers_concurrent_clients),
        cmocka_unit_test(test_two_frontends_in_the_queue_group_both_answer),
        cmocka_unit_test(test_a_stopping_frontend_answers_every_query_it_was_given),
        cmocka_unit_test(test_cluster_state_changes_apply_without_a_restart),
        cmocka_unit_test(test_a_query_right_after_a_state_write_sees_it),
        cmocka_unit_test(test_feedback_right_after_registering_the_app_is_accepted),
        cmocka_unit_test(test_full_frontend_answers_503_and_a_stopping_one_answers_what_it_holds),
        cmocka_unit_test(test_cache_identical_concurrent_queries_share_one_task_and_repeats_hit),
        cmocka_unit_test(test_cache_off_sends_a_task_for_every_query),
        cmocka_unit_test(test_cache_entry_of_a_task_that_never_answers_is_removed),
        cmocka_unit_test(test_cache_waiter_with_a_later_deadline_gets_a_new_task),
        cmocka_unit_test(test_cache_task_shed_early_is_resent_for_waiters_with_later_deadlines),
        cmocka_unit_test(test_a_result_on_another_model_s_subject_answers_nothing),
        cmocka_unit_test(test_cache_keeps_no_error_expiry_or_lost_replica),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
