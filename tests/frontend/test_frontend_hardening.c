/* Integration tests: what an outside probe sent the frontend, over NATS
 * and HTTP, against a real nats-server. The test plays the router: it
 * answers each task with the hex of the input's bytes, and counts tasks.
 *
 *   - a string input holding U+0000 reaches the model whole;
 *   - bytes that are not UTF-8 (bad bytes, overlong forms, surrogates)
 *     and a key given twice are refused with 400 and Clipper's error JSON;
 *   - an empty numeric input is refused with 400;
 *   - a batch larger than a reply can ever carry is refused with 413,
 *     saying the limit, before any task is sent. */
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
#include "cl_frontend.h"
#include "cl_kv.h"
#include "cl_state.h"
#include "cl_test_nats.h"
#include "cl_wire.h"

#define PREFIX "fehard"

/* ---- the fake router -------------------------------------------------- */

typedef struct {
    cl_bus *bus;
    cl_sub *sub;
    pthread_t th;
    volatile int stop;
    pthread_mutex_t mu;
    size_t tasks;
} router;

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
        if (cl_wire_tasks_decode(cl_msg_data(m), cl_msg_len(m), &t, &n, &err) != CL_OK) {
            fprintf(stderr, "fake router: bad task batch: %s\n", err.msg);
            cl_msg_free(m);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        r->tasks += n;
        pthread_mutex_unlock(&r->mu);
        for (uint32_t i = 0; i < n; i++) {
            cl_buf out, b;
            cl_buf_init(&out);
            cl_buf_init(&b);
            /* Not asserted on this thread: a result that is not sent fails
             * the test that waits for it, and stderr says why. */
            cl_status s = cl_buf_append_str(&out, "\"");
            for (uint32_t k = 0; s == CL_OK && k < t[i].input_len; k++)
                s = cl_buf_printf(&out, "%02x", t[i].input[k]);
            if (s == CL_OK)
                s = cl_buf_append_str(&out, "\"");
            if (s == CL_OK)
                s = cl_wire_results_begin(&b);
            if (s == CL_OK)
                s = cl_wire_results_add(&b, t[i].task_id, CL_RESULT_OK, out.data,
                                        (uint32_t)out.len);
            char subject[256];
            snprintf(subject, sizeof(subject), "%.*s", (int)t[i].reply_len, t[i].reply);
            if (s == CL_OK)
                s = cl_bus_publish(r->bus, subject, b.data, b.len);
            if (s != CL_OK)
                fprintf(stderr, "fake router: cannot answer task %llu: %s\n",
                        (unsigned long long)t[i].task_id, cl_status_text(s));
            cl_buf_deinit(&b);
            cl_buf_deinit(&out);
        }
        free(t);
        cl_msg_free(m);
    }
    return NULL;
}

static size_t tasks_seen(router *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->tasks;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* ---- fixture ---------------------------------------------------------- */

typedef struct {
    cl_test_nats srv;
    cl_bus *bus;    /* the frontend's */
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

static void put_app(const char *name, const char *type)
{
    char key[CL_KEY_MAX], json[512];
    cl_err err;
    assert_int_equal(cl_key_app(key, name, &err), CL_OK);
    snprintf(json, sizeof(json),
             "{\"name\":\"%s\",\"input_type\":\"%s\",\"default_output\":\"-1\","
             "\"latency_slo_micros\":5000000,\"linked_models\":[\"echo\"]}",
             name, type);
    put(key, json);
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
    char key[CL_KEY_MAX];
    assert_int_equal(cl_key_model(key, "echo", "1", &err), CL_OK);
    put(key, "{\"model_name\":\"echo\",\"model_version\":\"1\",\"input_type\":\"doubles\","
             "\"labels\":[],\"container_name\":\"NO_CONTAINER\",\"model_data_path\":\"x\","
             "\"batch_size\":-1,\"num_replicas\":1,\"runtime\":\"python-closure\","
             "\"artifact_sha256\":\"\",\"artifact_size\":0}");
    assert_int_equal(cl_key_current(key, "echo", &err), CL_OK);
    put(key, "{\"model_version\":\"1\"}");
    put_app("dbl", "doubles");
    put_app("strs", "strings");
    put_app("bytes", "bytes");

    W.r.bus = W.client;
    pthread_mutex_init(&W.r.mu, NULL);
    if (cl_bus_subscribe_sync(&W.r.sub, W.client, PREFIX ".route.task.>", NULL) != CL_OK)
        return -1;
    assert_int_equal(cl_bus_flush(W.client, 1000), CL_OK);
    pthread_create(&W.r.th, NULL, router_main, &W.r);

    cl_frontend_opts o;
    cl_frontend_opts_init(&o);
    o.metrics_port = -1;
    o.http_host = "127.0.0.1";
    o.http_port = 0;
    o.cache_bytes = 0; /* every input is a task */
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

/* ---- clients: both doors, one answer ---------------------------------- */

typedef struct {
    long status; /* HTTP; 0 over NATS */
    cJSON *json;
} answer;

static answer nats_predict(const char *app, const char *body, size_t len)
{
    char subject[256];
    snprintf(subject, sizeof(subject), PREFIX ".predict.%s", app);
    cl_msg *reply = NULL;
    cl_status s = cl_bus_request(W.client, subject, body, len, 10000, &reply);
    if (s != CL_OK)
        fail_msg("request on %s: %s", subject, cl_status_text(s));
    answer a = {0, cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply))};
    if (a.json == NULL)
        fail_msg("reply on %s is not JSON: %.*s", subject, (int)cl_msg_len(reply),
                 (const char *)cl_msg_data(reply));
    cl_msg_free(reply);
    return a;
}

static size_t on_data(char *p, size_t size, size_t n, void *closure)
{
    /* Short of memory: 0 makes curl fail the transfer. */
    return cl_buf_append(closure, p, size * n) == CL_OK ? size * n : 0;
}

static answer http_predict(const char *app, const char *body, size_t len)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s/predict", W.port, app);
    CURL *c = curl_easy_init();
    cl_buf b;
    cl_buf_init(&b);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("POST %s: %s", url, curl_easy_strerror(rc));
    answer a = {0, NULL};
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    a.json = cJSON_ParseWithLength((const char *)b.data, b.len);
    if (a.json == NULL)
        fail_msg("HTTP body is not JSON: %.*s", (int)b.len, (const char *)b.data);
    cl_buf_deinit(&b);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return a;
}

typedef answer (*door)(const char *app, const char *body, size_t len);
static const door doors[] = {nats_predict, http_predict};

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The answer is Clipper's error JSON with this error, a cause holding
 * what, and (over HTTP) this status. */
static void expect_error(answer a, long status, const char *error, const char *what)
{
    char *text = cJSON_PrintUnformatted(a.json);
    if ((a.status != 0 && a.status != status) || strcmp(str(a.json, "error"), error) != 0 ||
        strstr(str(a.json, "cause"), what) == NULL)
        fail_msg("wanted %ld %s with '%s', got %ld %s", status, error, what, a.status, text);
    free(text);
    cJSON_Delete(a.json);
}

/* ---- tests ------------------------------------------------------------ */

static void test_string_with_nul_reaches_the_model_whole(void **state)
{
    (void)state;
    const char body[] = "{\"input\": \"a\\u0000b\"}";
    for (size_t d = 0; d < 2; d++) {
        answer a = doors[d]("strs", body, sizeof(body) - 1);
        assert_true(a.status == 0 || a.status == 200);
        /* The fake model answers the hex of the bytes it got. */
        if (strcmp(str(a.json, "output"), "610062") != 0) {
            char *text = cJSON_PrintUnformatted(a.json);
            fail_msg("door %zu: the model got other bytes: %s", d, text);
        }
        cJSON_Delete(a.json);
    }
}

static void test_text_that_is_not_utf8_gets_400(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"input\": \"\xff\"}",
        "{\"input\": \"\xc0\xaf\"}",             /* overlong '/' */
        "{\"input\": \"\xe0\x80\xaf\"}",         /* overlong, 3 bytes */
        "{\"input\": \"\xed\xa0\x80\"}",         /* U+D800 encoded in UTF-8 */
        "{\"input\": \"\xed\xb0\x80\xed\xa0\x80\"}",
        "{\"input\": \"\\ud800\"}",              /* a lone escape */
        "{\"input\": \"x\\udc00\"}",
    };
    size_t before = tasks_seen(&W.r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (size_t d = 0; d < 2; d++)
            expect_error(doors[d]("strs", bad[i], strlen(bad[i])), 400, "Json error",
                         "Error parsing JSON: JSON parse error: ");
    expect_error(http_predict("strs", bad[0], strlen(bad[0])), 400, "Json error",
                 "Invalid encoding in string: it is not valid UTF-8. (offset 11)");
    assert_int_equal(tasks_seen(&W.r), before);
}

static void test_duplicate_keys_get_400(void **state)
{
    (void)state;
    const char body[] = "{\"input\": [1.0], \"input\": [2.0]}";
    for (size_t d = 0; d < 2; d++)
        expect_error(doors[d]("dbl", body, sizeof(body) - 1), 400, "Json error",
                     "duplicate key 'input'");
}

static void test_empty_numeric_input_gets_400(void **state)
{
    (void)state;
    const char *bodies[] = {"{\"input\": []}", "{\"input_batch\": [[1.0], []]}"};
    for (size_t i = 0; i < 2; i++)
        for (size_t d = 0; d < 2; d++)
            expect_error(doors[d]("dbl", bodies[i], strlen(bodies[i])), 400, "Json error",
                         "is empty; an input of type double must hold at least one number");
}

static void test_a_batch_no_reply_can_carry_is_refused_before_any_task(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_buf_append_str(&b, "{\"input_batch\": ["), CL_OK);
    for (int i = 0; i < 50000; i++)
        assert_int_equal(cl_buf_append_str(&b, i ? ", [1.0]" : "[1.0]"), CL_OK);
    assert_int_equal(cl_buf_append_str(&b, "]}"), CL_OK);
    size_t before = tasks_seen(&W.r);
    for (size_t d = 0; d < 2; d++)
        expect_error(doors[d]("dbl", (const char *)b.data, b.len), 413, "Batch too large",
                     "The request has 50000 inputs; at most ");
    /* The limit is said, and follows from the bus' max payload. */
    answer a = nats_predict("dbl", (const char *)b.data, b.len);
    int64_t mp = cl_bus_max_payload(W.bus);
    char want[128];
    snprintf(want, sizeof(want), "at most %lld are taken per request (as many as a reply can "
             "hold in one %lld-byte bus message)",
             (long long)((mp - 23) / 42), (long long)mp);
    expect_error(a, 413, "Batch too large", want);
    cl_buf_deinit(&b);
    /* Not one task went out. */
    assert_int_equal(tasks_seen(&W.r), before);
    /* A batch within the limit is served. */
    const char ok[] = "{\"input_batch\": [[1.0], [2.0]]}";
    answer fine = nats_predict("dbl", ok, sizeof(ok) - 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(fine.json, "batch_predictions")), 2);
    cJSON_Delete(fine.json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_with_nul_reaches_the_model_whole),
        cmocka_unit_test(test_text_that_is_not_utf8_gets_400),
        cmocka_unit_test(test_duplicate_keys_get_400),
        cmocka_unit_test(test_empty_numeric_input_gets_400),
        cmocka_unit_test(test_a_batch_no_reply_can_carry_is_refused_before_any_task),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
