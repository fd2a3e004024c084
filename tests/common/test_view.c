/* Integration tests of the watched state view (actors/common/view.c)
 * against a real nats-server with JetStream. */
#include <pthread.h>
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
#include "cl_kv.h"
#include "cl_test_nats.h"
#include "cl_view.h"

typedef struct {
    cl_bus *bus;
    cl_kv *kv;
    cl_view *view;
    pthread_mutex_t mu;
    char keys[64][64]; /* on_change keys in order; "" for NULL */
    int n_keys;
    int saw_view_in_null_callback;
} fixture;

static fixture fx;

static void on_change(void *closure, const char *key)
{
    fixture *f = closure;
    pthread_mutex_lock(&f->mu);
    if (key == NULL && f->view != NULL)
        f->saw_view_in_null_callback = 1;
    if (f->n_keys < 64)
        snprintf(f->keys[f->n_keys++], 64, "%s", key ? key : "");
    pthread_mutex_unlock(&f->mu);
}

static void open_bucket(const char *prefix)
{
    memset(&fx, 0, sizeof(fx));
    pthread_mutex_init(&fx.mu, NULL);
    assert_int_equal(cl_test_bus_connect_kv(&fx.bus, &fx.kv, &cl_test_srv, prefix), 0);
}

static int teardown(void **state)
{
    (void)state;
    cl_view_free(fx.view);
    cl_kv_free(fx.kv);
    cl_bus_free(fx.bus);
    pthread_mutex_destroy(&fx.mu);
    memset(&fx, 0, sizeof(fx));
    return 0;
}

static void put(const char *key, const char *value)
{
    cl_err err;
    if (cl_kv_put(fx.kv, key, value, strlen(value), NULL, &err) != CL_OK)
        fail_msg("put %s: %s", key, err.msg);
}

static void del(const char *key)
{
    cl_err err;
    if (cl_kv_delete(fx.kv, key, &err) != CL_OK)
        fail_msg("delete %s: %s", key, err.msg);
}

static const char *app_json(const char *name, const char *default_output)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"name\":\"%s\",\"input_type\":\"doubles\",\"default_output\":\"%s\","
             "\"latency_slo_micros\":20000,\"linked_models\":[]}",
             name, default_output);
    return buf;
}

static const char *model_json(const char *name, const char *version, int replicas)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"model_name\":\"%s\",\"model_version\":\"%s\",\"input_type\":\"doubles\","
             "\"labels\":[],\"container_name\":\"c\",\"model_data_path\":\"p\","
             "\"batch_size\":-1,\"num_replicas\":%d,\"runtime\":\"python-closure\","
             "\"artifact_sha256\":\"\",\"artifact_size\":0}",
             name, version, replicas);
    return buf;
}

static bool saw_key(const char *key)
{
    pthread_mutex_lock(&fx.mu);
    bool found = false;
    for (int i = 0; i < fx.n_keys && !found; i++)
        found = strcmp(fx.keys[i], key) == 0;
    pthread_mutex_unlock(&fx.mu);
    return found;
}

/* Polls until the callback reported key (at most 5 s). */
static void wait_key(const char *key)
{
    for (int i = 0; i < 500 && !saw_key(key); i++)
        cl_sleep_ms(10);
    if (!saw_key(key))
        fail_msg("no change callback for '%s'", key);
}

/* Passes &fx.view itself: the view is published before on_change(NULL)
 * runs, so the callback can already see it. */
static void start_view(void)
{
    cl_err err;
    if (cl_view_start(&fx.view, fx.kv, on_change, &fx, &err) != CL_OK)
        fail_msg("view start: %s", err.msg);
}

static void clear_keys(void)
{
    pthread_mutex_lock(&fx.mu);
    fx.n_keys = 0;
    pthread_mutex_unlock(&fx.mu);
}

static void test_view_loads_existing_state_before_start_returns(void **state)
{
    (void)state;
    open_bucket("view1");
    put("app.a1", app_json("a1", "d1"));
    put("model.m.1", model_json("m", "1", 2));
    put("current.m", "{\"model_version\":\"1\"}");
    start_view();
    cl_view_rdlock(fx.view);
    const cl_app *app = cl_view_app(fx.view, "a1");
    assert_non_null(app);
    assert_string_equal(app->default_output, "d1");
    const cl_model *m = cl_view_model(fx.view, "m", "1");
    assert_non_null(m);
    assert_int_equal(m->num_replicas, 2);
    assert_string_equal(cl_view_current(fx.view, "m"), "1");
    assert_int_equal(cl_view_app_count(fx.view), 1);
    assert_int_equal(cl_view_model_count(fx.view), 1);
    assert_ptr_equal(cl_view_app_at(fx.view, 0), app);
    assert_ptr_equal(cl_view_model_at(fx.view, 0), m);
    assert_null(cl_view_app(fx.view, "nope"));
    assert_null(cl_view_model(fx.view, "m", "2"));
    assert_null(cl_view_current(fx.view, "other"));
    cl_view_unlock(fx.view);
    /* The initial load is announced once, with NULL, and not key by key. */
    wait_key("");
    assert_false(saw_key("app.a1"));
}

static void test_view_on_empty_bucket_starts_empty(void **state)
{
    (void)state;
    open_bucket("view2");
    start_view();
    cl_view_rdlock(fx.view);
    assert_int_equal(cl_view_app_count(fx.view), 0);
    assert_int_equal(cl_view_model_count(fx.view), 0);
    cl_view_unlock(fx.view);
    wait_key("");
    pthread_mutex_lock(&fx.mu);
    assert_int_equal(fx.saw_view_in_null_callback, 1);
    pthread_mutex_unlock(&fx.mu);
}

static void test_view_sees_create_update_and_delete(void **state)
{
    (void)state;
    open_bucket("view3");
    start_view();
    put("app.shop", app_json("shop", "first"));
    wait_key("app.shop");
    cl_view_rdlock(fx.view);
    assert_string_equal(cl_view_app(fx.view, "shop")->default_output, "first");
    cl_view_unlock(fx.view);

    clear_keys();
    put("app.shop", app_json("shop", "second"));
    wait_key("app.shop");
    cl_view_rdlock(fx.view);
    assert_string_equal(cl_view_app(fx.view, "shop")->default_output, "second");
    assert_int_equal(cl_view_app_count(fx.view), 1);
    cl_view_unlock(fx.view);

    put("model.m.1", model_json("m", "1", 0));
    put("model.m.2", model_json("m", "2", 3));
    put("current.m", "{\"model_version\":\"2\"}");
    wait_key("current.m");
    cl_view_rdlock(fx.view);
    assert_int_equal(cl_view_model_count(fx.view), 2);
    assert_string_equal(cl_view_current(fx.view, "m"), "2");
    assert_int_equal(cl_view_model(fx.view, "m", "2")->num_replicas, 3);
    cl_view_unlock(fx.view);

    clear_keys();
    del("app.shop");
    del("model.m.1");
    del("current.m");
    wait_key("current.m");
    cl_view_rdlock(fx.view);
    assert_null(cl_view_app(fx.view, "shop"));
    assert_null(cl_view_model(fx.view, "m", "1"));
    assert_non_null(cl_view_model(fx.view, "m", "2"));
    assert_null(cl_view_current(fx.view, "m"));
    assert_int_equal(cl_view_app_count(fx.view), 0);
    cl_view_unlock(fx.view);
    assert_true(saw_key("app.shop"));
    assert_true(saw_key("model.m.1"));
}

static void test_view_ignores_a_bad_value_and_keeps_serving(void **state)
{
    (void)state;
    open_bucket("view4");
    put("app.ok", app_json("ok", "x"));
    put("app.bad", "{\"name\":\"bad\"}");
    start_view();
    cl_view_rdlock(fx.view);
    assert_non_null(cl_view_app(fx.view, "ok"));
    assert_null(cl_view_app(fx.view, "bad"));
    cl_view_unlock(fx.view);
    put("app.bad", "not json at all");
    put("app.next", app_json("next", "y"));
    wait_key("app.next");
    cl_view_rdlock(fx.view);
    assert_non_null(cl_view_app(fx.view, "next"));
    assert_null(cl_view_app(fx.view, "bad"));
    cl_view_unlock(fx.view);
}

/* Hundreds of entries: the indexes grow several times over, removals from
 * the middle move the last entry into the hole, and every lookup still
 * finds exactly what the store holds (including names that run into their
 * versions: m1 version 2 is not m version 12). */
static void test_view_finds_every_entry_among_hundreds(void **state)
{
    (void)state;
    open_bucket("view5");
    start_view();
    enum { N = 300 };
    char key[64], name[32], version[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        snprintf(key, sizeof(key), "app.%s", name);
        put(key, app_json(name, name));
        snprintf(name, sizeof(name), "m%d", i / 3);
        snprintf(version, sizeof(version), "%d", i % 3 + 1);
        snprintf(key, sizeof(key), "model.%s.%s", name, version);
        put(key, model_json(name, version, i));
    }
    put("model.m.12", model_json("m", "12", 7));
    for (int i = 0; i < N / 3; i++) {
        snprintf(key, sizeof(key), "current.m%d", i);
        put(key, i % 2 ? "{\"model_version\":\"2\"}" : "{\"model_version\":\"3\"}");
    }
    /* The watch delivers in order: a last key seen means all were (the
     * fixture records only the first 64 keys). */
    clear_keys();
    put("app.last", app_json("last", "x"));
    wait_key("app.last");
    /* Every third application and the first version of every model go. */
    for (int i = 0; i < N; i += 3) {
        snprintf(key, sizeof(key), "app.a%d", i);
        del(key);
        snprintf(key, sizeof(key), "model.m%d.1", i / 3);
        del(key);
    }
    del("current.m7");
    clear_keys();
    del("app.last");
    wait_key("app.last");
    cl_view_rdlock(fx.view);
    assert_int_equal(cl_view_app_count(fx.view), N - N / 3);
    assert_int_equal(cl_view_model_count(fx.view), N - N / 3 + 1);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        const cl_app *app = cl_view_app(fx.view, name);
        if (i % 3 == 0) {
            assert_null(app);
        } else {
            assert_non_null(app);
            assert_string_equal(app->default_output, name);
        }
        snprintf(name, sizeof(name), "m%d", i / 3);
        snprintf(version, sizeof(version), "%d", i % 3 + 1);
        const cl_model *m = cl_view_model(fx.view, name, version);
        if (i % 3 == 0) {
            assert_null(m);
        } else {
            assert_non_null(m);
            assert_int_equal(m->num_replicas, i);
        }
    }
    assert_int_equal(cl_view_model(fx.view, "m", "12")->num_replicas, 7);
    assert_int_equal(cl_view_model(fx.view, "m1", "2")->num_replicas, 4);
    assert_null(cl_view_model(fx.view, "m", "1"));
    assert_null(cl_view_model(fx.view, "m12", ""));
    for (int i = 0; i < N / 3; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        const char *cur = cl_view_current(fx.view, name);
        if (i == 7)
            assert_null(cur);
        else
            assert_string_equal(cur, i % 2 ? "2" : "3");
    }
    assert_null(cl_view_current(fx.view, "m100"));
    cl_view_unlock(fx.view);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_view_loads_existing_state_before_start_returns, teardown),
        cmocka_unit_test_teardown(test_view_on_empty_bucket_starts_empty, teardown),
        cmocka_unit_test_teardown(test_view_sees_create_update_and_delete, teardown),
        cmocka_unit_test_teardown(test_view_ignores_a_bad_value_and_keeps_serving, teardown),
        cmocka_unit_test_teardown(test_view_finds_every_entry_among_hundreds, teardown),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
