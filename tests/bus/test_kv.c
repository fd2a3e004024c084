/* Integration tests of the cluster-state KV bucket (bus/kv.c). */
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
#include "cl_test_util.h"

/* Each test uses its own prefix, hence its own bucket. */
static cl_bus *connect_bus(const char *prefix)
{
    cl_bus *bus = NULL;
    assert_int_equal(cl_test_bus_connect(&bus, &cl_test_srv, prefix), 0);
    return bus;
}

static cl_kv *open_kv(cl_bus *bus)
{
    cl_kv *kv = NULL;
    cl_err err;
    if (cl_kv_open(&kv, bus, &err) != CL_OK)
        fail_msg("kv open: %s", err.msg);
    return kv;
}

static void test_create_then_get_returns_value_and_revision(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv1");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    uint64_t rev = 0, rev2 = 0;
    assert_int_equal(cl_kv_create(kv, "app.a", "{\"x\":1}", 7, &rev, &err), CL_OK);
    assert_true(rev > 0);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(cl_kv_get(kv, "app.a", &v, &len, &rev2, &err), CL_OK);
    assert_int_equal(len, 7);
    assert_string_equal(v, "{\"x\":1}");
    assert_true(rev == rev2);
    free(v);
    assert_int_equal(cl_kv_get(kv, "app.missing", &v, &len, NULL, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "app.missing"));
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static void test_create_of_an_existing_key_fails_with_exists(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv2");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    assert_int_equal(cl_kv_create(kv, "app.a", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_create(kv, "app.a", "2", 1, NULL, &err), CL_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "app.a"));
    char *v = NULL;
    assert_int_equal(cl_kv_get(kv, "app.a", &v, NULL, NULL, &err), CL_OK);
    assert_string_equal(v, "1");
    free(v);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static void test_update_with_a_stale_revision_conflicts(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv3");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    uint64_t r1, r2, r3;
    assert_int_equal(cl_kv_create(kv, "model.m.1", "a", 1, &r1, &err), CL_OK);
    assert_int_equal(cl_kv_update(kv, "model.m.1", "b", 1, r1, &r2, &err), CL_OK);
    assert_true(r2 > r1);
    assert_int_equal(cl_kv_update(kv, "model.m.1", "c", 1, r1, &r3, &err), CL_ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "model.m.1"));
    char *v = NULL;
    uint64_t rev;
    assert_int_equal(cl_kv_get(kv, "model.m.1", &v, NULL, &rev, &err), CL_OK);
    assert_string_equal(v, "b");
    assert_true(rev == r2);
    free(v);
    /* Put ignores revisions. */
    assert_int_equal(cl_kv_put(kv, "model.m.1", "d", 1, &r3, &err), CL_OK);
    assert_true(r3 > r2);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static void test_delete_removes_and_create_works_again(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv4");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    assert_int_equal(cl_kv_create(kv, "current.a", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_delete(kv, "current.a", &err), CL_OK);
    char *v = NULL;
    assert_int_equal(cl_kv_get(kv, "current.a", &v, NULL, NULL, &err), CL_ERR_NOT_FOUND);
    assert_int_equal(cl_kv_delete(kv, "current.a", &err), CL_OK);
    assert_int_equal(cl_kv_delete(kv, "never.there", &err), CL_OK);
    /* A deleted key can be created again (over its delete marker). */
    assert_int_equal(cl_kv_create(kv, "current.a", "2", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_create(kv, "current.a", "3", 1, NULL, &err), CL_ERR_EXISTS);
    assert_int_equal(cl_kv_get(kv, "current.a", &v, NULL, NULL, &err), CL_OK);
    assert_string_equal(v, "2");
    free(v);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static void test_invalid_keys_are_rejected_with_a_message(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv5");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    assert_int_equal(cl_kv_put(kv, "app.a b", "1", 1, NULL, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'app.a b' is not valid"));
    assert_int_equal(cl_kv_create(kv, "app..x", "1", 1, NULL, &err), CL_ERR_INVALID);
    assert_int_equal(cl_kv_update(kv, "", "1", 1, 1, NULL, &err), CL_ERR_INVALID);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_keys_lists_live_keys_by_prefix(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv6");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    char **keys = NULL;
    size_t n = 99;
    assert_int_equal(cl_kv_keys(kv, NULL, &keys, &n, &err), CL_OK);
    assert_int_equal(n, 0);
    cl_kv_keys_free(keys, n);
    assert_int_equal(cl_kv_put(kv, "app.a", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "app.b", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "app.c", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "model.m.1", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_delete(kv, "app.c", &err), CL_OK);
    assert_int_equal(cl_kv_keys(kv, "app.", &keys, &n, &err), CL_OK);
    assert_int_equal(n, 2);
    qsort(keys, n, sizeof(*keys), cmp_str);
    assert_string_equal(keys[0], "app.a");
    assert_string_equal(keys[1], "app.b");
    cl_kv_keys_free(keys, n);
    assert_int_equal(cl_kv_keys(kv, NULL, &keys, &n, &err), CL_OK);
    assert_int_equal(n, 3);
    cl_kv_keys_free(keys, n);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

typedef struct {
    char got[8][80]; /* "key=value@rev>0" in the order given */
    int n;
} values_seen;

static void on_value(void *closure, const char *key, const char *value, size_t len, uint64_t rev)
{
    values_seen *v = closure;
    if (v->n < 8)
        snprintf(v->got[v->n++], sizeof(v->got[0]), "%s=%.*s@%d", key, (int)len, value,
                 rev > 0);
}

static int cmp_got(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_values_reads_the_current_value_of_each_matching_key(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv16");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    values_seen v = {0};
    /* An empty bucket: no value, and no wait. */
    uint64_t t0 = cl_mono_us();
    assert_int_equal(cl_kv_values(kv, "app.>", on_value, &v, &err), CL_OK);
    assert_int_equal(v.n, 0);
    assert_true(cl_mono_us() - t0 < 2000000);
    assert_int_equal(cl_kv_put(kv, "app.a", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "app.b", "old", 3, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "app.b", "new", 3, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "app.c", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "model.m.1", "m", 1, NULL, &err), CL_OK);
    /* The last key written is deleted: the pass still ends. */
    assert_int_equal(cl_kv_delete(kv, "app.c", &err), CL_OK);
    assert_int_equal(cl_kv_values(kv, "app.>", on_value, &v, &err), CL_OK);
    assert_int_equal(v.n, 2);
    qsort(v.got, (size_t)v.n, sizeof(v.got[0]), cmp_got);
    assert_string_equal(v.got[0], "app.a=1@1");
    assert_string_equal(v.got[1], "app.b=new@1");
    v.n = 0;
    assert_int_equal(cl_kv_values(kv, "model.*.*", on_value, &v, &err), CL_OK);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.got[0], "model.m.1=m@1");
    v.n = 0;
    assert_int_equal(cl_kv_values(kv, ">", on_value, &v, &err), CL_OK);
    assert_int_equal(v.n, 3);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

typedef struct {
    char key[64];
    char value[64];
    bool deleted;
    bool marker;
} event;

typedef struct {
    pthread_mutex_t mu;
    event ev[64];
    int n;
    pthread_t thread;
    bool wrong_thread;
} recorder;

static void on_watch(void *closure, const char *key, const char *value, size_t len, uint64_t rev,
                     bool deleted)
{
    (void)rev;
    recorder *r = closure;
    pthread_mutex_lock(&r->mu);
    if (r->n == 0)
        r->thread = pthread_self();
    else if (!pthread_equal(r->thread, pthread_self()))
        r->wrong_thread = true;
    if (r->n < 64) {
        event *e = &r->ev[r->n++];
        e->marker = key == NULL;
        snprintf(e->key, sizeof(e->key), "%s", key ? key : "");
        snprintf(e->value, sizeof(e->value), "%.*s", (int)len, value ? value : "");
        e->deleted = deleted;
    }
    pthread_mutex_unlock(&r->mu);
}

static int wait_events(recorder *r, int want)
{
    return cl_test_wait_count(&r->mu, &r->n, want, 3000);
}

static void test_watch_sends_initial_values_then_marker_then_changes(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv7");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    assert_int_equal(cl_kv_put(kv, "app.a", "A", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "app.b", "B", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "app.gone", "G", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_delete(kv, "app.gone", &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "model.m.1", "M", 1, NULL, &err), CL_OK);
    recorder r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cl_kv_watcher *w = NULL;
    assert_int_equal(cl_kv_watch(&w, kv, "app.*", on_watch, &r, &err), CL_OK);
    assert_int_equal(wait_events(&r, 3), 3);
    /* Initial values only (the deleted key is not an existing value). */
    assert_string_equal(r.ev[0].key, "app.a");
    assert_string_equal(r.ev[0].value, "A");
    assert_false(r.ev[0].deleted);
    assert_string_equal(r.ev[1].key, "app.b");
    assert_true(r.ev[2].marker);
    assert_int_equal(cl_kv_put(kv, "app.c", "C", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, "model.m.2", "X", 1, NULL, &err), CL_OK); /* not watched */
    assert_int_equal(cl_kv_delete(kv, "app.a", &err), CL_OK);
    assert_int_equal(wait_events(&r, 5), 5);
    assert_string_equal(r.ev[3].key, "app.c");
    assert_string_equal(r.ev[3].value, "C");
    assert_false(r.ev[3].deleted);
    assert_string_equal(r.ev[4].key, "app.a");
    assert_true(r.ev[4].deleted);
    assert_string_equal(r.ev[4].value, "");
    cl_sleep_ms(100);
    cl_kv_watch_free(w);
    int after = r.n;
    assert_int_equal(cl_kv_put(kv, "app.d", "D", 1, NULL, &err), CL_OK);
    cl_sleep_ms(100);
    assert_int_equal(r.n, after);
    assert_int_equal(after, 5); /* exactly one marker, no stray events */
    assert_false(r.wrong_thread);
    cl_kv_watch_free(NULL);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static void test_watch_of_an_empty_bucket_still_sends_the_marker(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kv8");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    recorder r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cl_kv_watcher *w = NULL;
    assert_int_equal(cl_kv_watch(&w, kv, ">", on_watch, &r, &err), CL_OK);
    assert_int_equal(wait_events(&r, 1), 1);
    assert_true(r.ev[0].marker);
    assert_int_equal(cl_kv_put(kv, "x", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(wait_events(&r, 2), 2);
    assert_string_equal(r.ev[1].key, "x");
    cl_kv_watch_free(w);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static void test_two_processes_opening_at_once_share_one_bucket(void **state)
{
    (void)state;
    cl_bus *a = connect_bus("kv9");
    cl_bus *b = connect_bus("kv9");
    cl_kv *ka = open_kv(a);
    cl_kv *kb = open_kv(b);
    cl_err err;
    assert_int_equal(cl_kv_create(ka, "app.x", "1", 1, NULL, &err), CL_OK);
    assert_int_equal(cl_kv_create(kb, "app.x", "1", 1, NULL, &err), CL_ERR_EXISTS);
    cl_kv_free(ka);
    cl_kv_free(kb);
    cl_bus_free(a);
    cl_bus_free(b);
}

typedef struct {
    cl_bus *bus;
    cl_kv *kv;
    cl_status st;
    pthread_barrier_t *go;
} opener;

static void *open_main(void *arg)
{
    opener *o = arg;
    cl_err err;
    pthread_barrier_wait(o->go);
    o->st = cl_kv_open(&o->kv, o->bus, &err);
    return NULL;
}

typedef struct {
    cl_kv *kv;
    cl_status st;
    pthread_barrier_t *go;
} creator;

static void *create_main(void *arg)
{
    creator *c = arg;
    cl_err err;
    pthread_barrier_wait(c->go);
    c->st = cl_kv_create(c->kv, "app.contested", "v", 1, NULL, &err);
    return NULL;
}

/* Eight creates of a key at once, each over the delete marker the last
 * round left (the admin's add_app race): exactly one wins and the others
 * are told it exists, every round. Prints the slowest round. */
static void test_racing_creates_over_a_delete_marker_have_one_winner(void **state)
{
    (void)state;
    enum { N = 8, ROUNDS = 20 };
    cl_bus *bus[2] = {connect_bus("kvcas"), connect_bus("kvcas")};
    cl_kv *kv[2] = {open_kv(bus[0]), open_kv(bus[1])};
    cl_err err;
    uint64_t slowest = 0;
    for (int round = 0; round < ROUNDS; round++) {
        creator c[N];
        pthread_t th[N];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N);
        uint64_t t0 = cl_mono_us();
        for (int i = 0; i < N; i++) {
            c[i] = (creator){.kv = kv[i % 2], .go = &go};
            pthread_create(&th[i], NULL, create_main, &c[i]);
        }
        for (int i = 0; i < N; i++)
            pthread_join(th[i], NULL);
        uint64_t took = cl_mono_us() - t0;
        slowest = took > slowest ? took : slowest;
        pthread_barrier_destroy(&go);
        int won = 0;
        for (int i = 0; i < N; i++) {
            if (c[i].st != CL_OK && c[i].st != CL_ERR_EXISTS)
                fail_msg("round %d: a create ended with %s", round, cl_status_name(c[i].st));
            won += c[i].st == CL_OK;
        }
        assert_int_equal(won, 1);
        assert_int_equal(cl_kv_delete(kv[0], "app.contested", &err), CL_OK);
    }
    printf("%d rounds of %d racing creates: the slowest took %.1f ms\n", ROUNDS, N,
           (double)slowest / 1000.0);
    for (int i = 0; i < 2; i++) {
        cl_kv_free(kv[i]);
        cl_bus_free(bus[i]);
    }
}

static void test_concurrent_first_opens_all_succeed(void **state)
{
    (void)state;
    enum { N = 4 };
    opener o[N];
    pthread_t th[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        o[i] = (opener){.bus = connect_bus("kvrace"), .go = &go};
        pthread_create(&th[i], NULL, open_main, &o[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    cl_err err;
    for (int i = 0; i < N; i++)
        assert_int_equal(o[i].st, CL_OK);
    assert_int_equal(cl_kv_put(o[0].kv, "k", "v", 1, NULL, &err), CL_OK);
    char *v = NULL;
    assert_int_equal(cl_kv_get(o[N - 1].kv, "k", &v, NULL, NULL, &err), CL_OK);
    free(v);
    for (int i = 0; i < N; i++) {
        cl_kv_free(o[i].kv);
        cl_bus_free(o[i].bus);
    }
}

static void test_prefix_with_odd_characters_gets_a_valid_bucket(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("my.cluster-2");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    assert_int_equal(cl_kv_put(kv, "k", "v", 1, NULL, &err), CL_OK);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

static void test_values_survive_a_server_restart(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus("kvp");
    cl_kv *kv = open_kv(bus);
    cl_err err;
    assert_int_equal(cl_kv_create(kv, "app.persist", "kept", 4, NULL, &err), CL_OK);
    cl_kv_free(kv);
    cl_bus_free(bus);
    assert_int_equal(cl_test_nats_restart(&cl_test_srv), 0);
    bus = connect_bus("kvp");
    kv = open_kv(bus);
    char *v = NULL;
    assert_int_equal(cl_kv_get(kv, "app.persist", &v, NULL, NULL, &err), CL_OK);
    assert_string_equal(v, "kept");
    free(v);
    cl_kv_free(kv);
    cl_bus_free(bus);
}

/* The state's replicas reach the server: a single nats-server refuses
 * three, saying so; the default (1) is what every other test uses. */
static void test_state_replicas_reach_the_server(void **state)
{
    (void)state;
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.prefix = "kvrepl";
    o.state_replicas = 3;
    cl_bus *bus = NULL;
    assert_int_equal(cl_test_bus_connect_opts(&bus, &cl_test_srv, &o), 0);
    cl_kv *kv = NULL;
    cl_err err;
    assert_int_not_equal(cl_kv_open(&kv, bus, &err), CL_OK);
    assert_null(kv);
    if (strstr(err.msg, "cannot open the state bucket") == NULL ||
        strstr(err.msg, "replicas") == NULL)
        fail_msg("not a clear refusal: %s", err.msg);
    cl_bus_free(bus);
    o.state_replicas = 6;
    cl_bus_opts_init(&o);
    o.state_replicas = 6;
    o.url = cl_test_srv.url;
    assert_int_equal(cl_bus_connect(&bus, &o, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "must be 1 to 5"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_then_get_returns_value_and_revision),
        cmocka_unit_test(test_state_replicas_reach_the_server),
        cmocka_unit_test(test_create_of_an_existing_key_fails_with_exists),
        cmocka_unit_test(test_update_with_a_stale_revision_conflicts),
        cmocka_unit_test(test_delete_removes_and_create_works_again),
        cmocka_unit_test(test_invalid_keys_are_rejected_with_a_message),
        cmocka_unit_test(test_keys_lists_live_keys_by_prefix),
        cmocka_unit_test(test_values_reads_the_current_value_of_each_matching_key),
        cmocka_unit_test(test_watch_sends_initial_values_then_marker_then_changes),
        cmocka_unit_test(test_watch_of_an_empty_bucket_still_sends_the_marker),
        cmocka_unit_test(test_two_processes_opening_at_once_share_one_bucket),
        cmocka_unit_test(test_concurrent_first_opens_all_succeed),
        cmocka_unit_test(test_racing_creates_over_a_delete_marker_have_one_winner),
        cmocka_unit_test(test_prefix_with_odd_characters_gets_a_valid_bucket),
        cmocka_unit_test(test_values_survive_a_server_restart),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
