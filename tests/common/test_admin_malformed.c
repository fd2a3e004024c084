/* Integration tests of the admin actor (actors/admin) with malformed
 * records in the state bucket, put there with raw KV writes as a bug or a
 * hand edit would: listings and link checks leave them out (logging each
 * key once) and keep serving the good entries in Clipper's shape, and the
 * delete commands can still remove them. A real nats-server; each test has
 * its own prefix, hence its own bucket. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl_admin.h"
#include "cl_bus.h"
#include "cl_json.h"
#include "cl_kv.h"
#include "cl_subject.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"

static int test_counter;

static struct {
    char prefix[32];
    cl_bus *bus;
    cl_kv *kv;
    cl_admin *admin;
} fx;

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.prefix, sizeof(fx.prefix), "bad%d", ++test_counter);
    if (cl_test_bus_connect_kv(&fx.bus, &fx.kv, &cl_test_srv, fx.prefix) != 0)
        return -1;
    cl_err err;
    if (cl_admin_start(&fx.admin, fx.bus, &err) != CL_OK) {
        fprintf(stderr, "admin start: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cl_admin_free(fx.admin);
    cl_kv_free(fx.kv);
    cl_bus_free(fx.bus);
    memset(&fx, 0, sizeof(fx));
    return 0;
}

/* The whole reply envelope of cmd (cJSON_Delete it). */
static cJSON *call(const char *cmd, const char *body)
{
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_admin(subject, fx.prefix, cmd, &err), CL_OK);
    cl_msg *reply = NULL;
    if (cl_bus_request(fx.bus, subject, body, strlen(body), 5000, &reply) != CL_OK)
        fail_msg("no reply to %s", cmd);
    cJSON *root = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    assert_non_null(root);
    return root;
}

/* The result of a successful call, printed compactly (free it). */
static char *ok(const char *cmd, const char *body)
{
    cJSON *r = call(cmd, body);
    char *text = cJSON_PrintUnformatted(r);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
        fail_msg("%s %s failed: %s", cmd, body, text);
    free(text);
    text = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "result"));
    cJSON_Delete(r);
    return text;
}

static void expect(const char *cmd, const char *body, const char *want)
{
    char *got = ok(cmd, body);
    cJSON *g = cJSON_Parse(got), *w = cJSON_Parse(want);
    assert_non_null(w);
    if (!cJSON_Compare(g, w, 1))
        fail_msg("%s %s:\n expected %s\n got      %s", cmd, body, want, got);
    cJSON_Delete(g);
    cJSON_Delete(w);
    free(got);
}

static void raw_put(const char *key, const char *value)
{
    cl_err err;
    if (cl_kv_put(fx.kv, key, value, strlen(value), NULL, &err) != CL_OK)
        fail_msg("kv put %s: %s", key, err.msg);
}

static void add_app(const char *name)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"input_type\":\"doubles\",\"default_output\":\"-1\","
             "\"latency_slo_micros\":100000}",
             name);
    free(ok("add_app", body));
}

static void add_model(const char *name, const char *version)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"model_name\":\"%s\",\"model_version\":\"%s\",\"labels\":[],\"input_type\":"
             "\"doubles\",\"container_name\":\"img\",\"model_data_path\":\"DEPRECATED\","
             "\"batch_size\":-1}",
             name, version);
    free(ok("add_model", body));
}

/* stderr goes to a file between capture_start and capture_end, which
 * returns what was written (free it). */
static int saved_stderr = -1;
static char capture_path[64];

static void capture_start(void)
{
    snprintf(capture_path, sizeof(capture_path), "/tmp/cl-admin-malformed-XXXXXX");
    int fd = mkstemp(capture_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fd, 2) >= 0);
    close(fd);
}

static char *capture_end(void)
{
    fflush(stderr);
    assert_true(dup2(saved_stderr, 2) >= 0);
    close(saved_stderr);
    saved_stderr = -1;
    char *text = cl_test_read_file(capture_path, NULL);
    unlink(capture_path);
    assert_non_null(text);
    return text;
}

static int count(const char *text, const char *part)
{
    int n = 0;
    for (const char *p = strstr(text, part); p; p = strstr(p + 1, part))
        n++;
    return n;
}

static const char GOOD_APPS[] =
    "[{\"input_type\":\"doubles\",\"default_output\":\"-1\",\"latency_slo_micros\":100000,"
    "\"name\":\"a1\",\"linked_models\":[]},"
    "{\"input_type\":\"doubles\",\"default_output\":\"-1\",\"latency_slo_micros\":100000,"
    "\"name\":\"a3\",\"linked_models\":[]}]";

static void test_get_all_applications_leaves_out_a_malformed_record(void **state)
{
    (void)state;
    add_app("a1");
    add_app("a3");
    raw_put("app.a2", "{\"name\":\"a2\",\"input_type\":\"doubles\"}"); /* fields missing */
    raw_put("app.a4", "not json at all");
    raw_put("app.a5", "{\"name\":\"someone-else\",\"input_type\":\"doubles\","
                      "\"default_output\":\"-1\",\"latency_slo_micros\":1,"
                      "\"linked_models\":[]}"); /* another app's record */
    expect("get_all_applications", "{\"verbose\":true}", GOOD_APPS);
    expect("get_all_applications", "{\"verbose\":false}", "[\"a1\",\"a3\"]");
    /* The one app that is fine is still readable on its own; the bad one
     * says what is wrong with it. */
    expect("get_application", "{\"name\":\"a1\"}",
           "{\"input_type\":\"doubles\",\"default_output\":\"-1\","
           "\"latency_slo_micros\":100000,\"name\":\"a1\",\"linked_models\":[]}");
    cJSON *r = call("get_application", "{\"name\":\"a2\"}");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
    assert_non_null(strstr(cJSON_GetObjectItem(r, "error")->valuestring, "app.a2"));
    cJSON_Delete(r);
    /* The envelope says which keys were left out, and why. */
    cJSON *env = call("get_all_applications", "{\"verbose\":true}");
    cJSON *skipped = cJSON_GetObjectItem(env, "skipped");
    assert_int_equal(cJSON_GetArraySize(skipped), 3);
    const char *keys[] = {"app.a2", "app.a4", "app.a5"};
    for (int i = 0; i < 3; i++) {
        cJSON *one = cJSON_GetArrayItem(skipped, i);
        assert_string_equal(cJSON_GetObjectItem(one, "key")->valuestring, keys[i]);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(one, "error")));
    }
    assert_non_null(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(skipped, 2), "error")->valuestring,
                           "holds application 'someone-else'"));
    cJSON_Delete(env);
    /* A listing with nothing left out has no "skipped". */
    free(ok("delete_app", "{\"name\":\"a2\"}"));
    free(ok("delete_app", "{\"name\":\"a4\"}"));
    free(ok("delete_app", "{\"name\":\"a5\"}"));
    env = call("get_all_applications", "{\"verbose\":false}");
    assert_null(cJSON_GetObjectItem(env, "skipped"));
    cJSON_Delete(env);
}

static void test_a_malformed_key_is_logged_once_not_at_every_listing(void **state)
{
    (void)state;
    add_app("good");
    raw_put("app.broken", "[1,2,3]");
    capture_start();
    for (int i = 0; i < 3; i++) {
        free(ok("get_all_applications", "{\"verbose\":true}"));
        free(ok("get_all_applications", "{\"verbose\":false}"));
    }
    char *log = capture_end();
    if (count(log, "malformed record 'app.broken'") != 1)
        fail_msg("expected one log line naming 'app.broken', got:\n%s", log);
    assert_int_equal(count(log, "'app.good'"), 0);
    free(log);
}

static void test_get_all_models_leaves_out_malformed_records(void **state)
{
    (void)state;
    add_model("m", "1");
    add_model("m", "3");
    raw_put("model.m.2", "{\"model_name\":\"m\"}");
    raw_put("model.x.1", "{\"model_name\":\"y\",\"model_version\":\"1\",\"input_type\":\"doubles\","
                         "\"labels\":[],\"container_name\":\"c\",\"model_data_path\":\"p\","
                         "\"batch_size\":-1,\"num_replicas\":0,\"runtime\":\"python-closure\","
                         "\"artifact_sha256\":\"\",\"artifact_size\":0}");
    raw_put("current.m", "{\"nope\":1}"); /* a bad current mark: m's versions are not current */
    expect("get_all_models", "{\"verbose\":false}", "[\"m:1\",\"m:3\"]");
    char *verbose = ok("get_all_models", "{\"verbose\":true}");
    cJSON *list = cJSON_Parse(verbose);
    assert_int_equal(cJSON_GetArraySize(list), 2);
    const cJSON *first = cJSON_GetArrayItem(list, 0), *second = cJSON_GetArrayItem(list, 1);
    assert_string_equal(cJSON_GetObjectItem(first, "model_version")->valuestring, "1");
    assert_string_equal(cJSON_GetObjectItem(second, "model_version")->valuestring, "3");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(first, "is_current_version")));
    cJSON_Delete(list);
    free(verbose);
}

static void test_a_malformed_app_does_not_block_registering_and_linking_models(void **state)
{
    (void)state;
    add_app("a");
    raw_put("app.zz", "{\"name\":\"zz\"}");
    /* add_model checks every app's links; the malformed one is passed over. */
    add_model("m", "1");
    free(ok("add_model_links", "{\"app_name\":\"a\",\"model_names\":[\"m\"]}"));
    expect("get_linked_models", "{\"app_name\":\"a\"}", "[\"m\"]");
    add_model("m", "2");
    expect("set_model_version", "{\"model_name\":\"m\",\"model_version\":\"1\"}",
           "\"Successfully set model with name 'm' to version '1'\"");
}

static void test_delete_removes_a_malformed_app_or_model_record(void **state)
{
    (void)state;
    raw_put("app.junk", "{}");
    raw_put("model.junk.1", "{}");
    expect("delete_app", "{\"name\":\"junk\"}",
           "\"Successfully deleted application with name 'junk'\"");
    expect("delete_versioned_model", "{\"model_name\":\"junk\",\"model_version\":\"1\"}",
           "\"Successfully deleted model with name 'junk' and version '1'\"");
    char *value = NULL;
    size_t len = 0;
    cl_err err;
    assert_int_equal(cl_kv_get(fx.kv, "app.junk", &value, &len, NULL, &err), CL_ERR_NOT_FOUND);
    assert_int_equal(cl_kv_get(fx.kv, "model.junk.1", &value, &len, NULL, &err), CL_ERR_NOT_FOUND);
    expect("get_all_applications", "{\"verbose\":true}", "[]");
    expect("get_all_models", "{\"verbose\":true}", "[]");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_get_all_applications_leaves_out_a_malformed_record),
        T(test_a_malformed_key_is_logged_once_not_at_every_listing),
        T(test_get_all_models_leaves_out_malformed_records),
        T(test_a_malformed_app_does_not_block_registering_and_linking_models),
        T(test_delete_removes_a_malformed_app_or_model_record),
    };
#undef T
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
