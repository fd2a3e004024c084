/* Integration tests of the live-replica table (actors/common/replicas.c):
 * heartbeats published on a real nats-server make replicas appear, change
 * state, and disappear on "stopped" or after the silence timeout. */
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
#include "cl_replicas.h"
#include "cl_subject.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"

typedef struct {
    char model[128];
    char version[128];
    uint32_t id;
    char state[16];
    bool removed;
} event;

static struct {
    cl_bus *bus;
    cl_replicas *reps;
    pthread_mutex_t mu;
    event events[64];
    int n_events;
} fx;

static int group_setup(void **state)
{
    pthread_mutex_init(&fx.mu, NULL);
    return cl_test_nats_group_setup(state);
}

static int group_teardown(void **state)
{
    int rc = cl_test_nats_group_teardown(state);
    pthread_mutex_destroy(&fx.mu);
    return rc;
}

static void on_replica(void *closure, const cl_replica_info *info, bool removed)
{
    (void)closure;
    pthread_mutex_lock(&fx.mu);
    if (fx.n_events < 64) {
        event *e = &fx.events[fx.n_events++];
        snprintf(e->model, sizeof(e->model), "%s", info->model);
        snprintf(e->version, sizeof(e->version), "%s", info->version);
        e->id = info->replica_id;
        snprintf(e->state, sizeof(e->state), "%s", info->state);
        e->removed = removed;
    }
    pthread_mutex_unlock(&fx.mu);
}

static int setup(void **state)
{
    (void)state;
    fx.n_events = 0;
    if (cl_test_bus_connect(&fx.bus, &cl_test_srv, "reps") != 0)
        return -1;
    cl_err err;
    if (cl_replicas_start(&fx.reps, fx.bus, on_replica, NULL, &err) != CL_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cl_replicas_free(fx.reps);
    cl_bus_free(fx.bus);
    fx.reps = NULL;
    fx.bus = NULL;
    return 0;
}

static void heartbeat(const char *model, const char *version, uint32_t id, const char *st)
{
    cl_replica_info info = {0};
    snprintf(info.model, sizeof(info.model), "%s", model);
    snprintf(info.version, sizeof(info.version), "%s", version);
    info.replica_id = id;
    snprintf(info.state, sizeof(info.state), "%s", st);
    snprintf(info.host, sizeof(info.host), "test-host");
    info.pid = 99;
    snprintf(info.input_type, sizeof(info.input_type), "doubles");
    char *body = cl_heartbeat_encode(&info, "python-closure");
    char subject[CL_SUBJECT_MAX], rid[16];
    snprintf(rid, sizeof(rid), "%u", id);
    cl_err err;
    assert_int_equal(cl_subj_replica_hb(subject, "reps", model, version, rid, &err), CL_OK);
    assert_int_equal(cl_bus_publish(fx.bus, subject, body, strlen(body)), CL_OK);
    assert_int_equal(cl_bus_flush(fx.bus, 1000), CL_OK);
    free(body);
}

static int count_events(void)
{
    pthread_mutex_lock(&fx.mu);
    int n = fx.n_events;
    pthread_mutex_unlock(&fx.mu);
    return n;
}

/* Waits until at least n events arrived (at most ms). */
static void wait_events(int n, unsigned ms)
{
    int got = cl_test_wait_count(&fx.mu, &fx.n_events, n, (int)ms);
    if (got < n)
        fail_msg("expected %d replica events, got %d", n, got);
}

static event event_at(int i)
{
    pthread_mutex_lock(&fx.mu);
    event e = fx.events[i];
    pthread_mutex_unlock(&fx.mu);
    return e;
}

static void test_heartbeat_makes_a_replica_appear_once(void **state)
{
    (void)state;
    heartbeat("m", "1", 0, "starting");
    wait_events(1, 3000);
    event e = event_at(0);
    assert_string_equal(e.model, "m");
    assert_string_equal(e.version, "1");
    assert_int_equal(e.id, 0);
    assert_false(e.removed);
    /* The same state again is not a change. */
    heartbeat("m", "1", 0, "starting");
    cl_sleep_ms(200);
    assert_int_equal(count_events(), 1);
    cl_replica_info *list = NULL;
    size_t n = cl_replicas_snapshot(fx.reps, NULL, NULL, &list);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].host, "test-host");
    assert_int_equal(list[0].pid, 99);
    assert_true(list[0].last_seen_us > 0);
    free(list);
}

static void test_state_change_is_reported_and_snapshot_filters(void **state)
{
    (void)state;
    heartbeat("m", "1", 0, "starting");
    heartbeat("m", "2", 5, "ready");
    heartbeat("other", "1", 1, "ready");
    wait_events(3, 3000);
    heartbeat("m", "1", 0, "ready");
    wait_events(4, 3000);
    event e = event_at(3);
    assert_string_equal(e.state, "ready");
    assert_false(e.removed);

    cl_replica_info *list = NULL;
    assert_int_equal(cl_replicas_snapshot(fx.reps, "m", NULL, &list), 2);
    free(list);
    assert_int_equal(cl_replicas_snapshot(fx.reps, "m", "2", &list), 1);
    assert_int_equal(list[0].replica_id, 5);
    free(list);
    assert_int_equal(cl_replicas_snapshot(fx.reps, NULL, "1", &list), 2);
    free(list);
    assert_int_equal(cl_replicas_snapshot(fx.reps, "none", NULL, &list), 0);
    free(list);
}

static void test_stopped_heartbeat_removes_at_once(void **state)
{
    (void)state;
    heartbeat("m", "1", 7, "ready");
    wait_events(1, 3000);
    uint64_t t0 = cl_mono_us();
    heartbeat("m", "1", 7, "stopped");
    wait_events(2, 3000);
    assert_true(cl_mono_us() - t0 < 1000000);
    event e = event_at(1);
    assert_true(e.removed);
    assert_int_equal(e.id, 7);
    cl_replica_info *list = NULL;
    assert_int_equal(cl_replicas_snapshot(fx.reps, NULL, NULL, &list), 0);
    free(list);
}

static void test_silent_replica_is_removed_after_the_timeout(void **state)
{
    (void)state;
    heartbeat("m", "1", 2, "ready");
    heartbeat("m", "1", 3, "ready");
    wait_events(2, 3000);
    uint64_t t0 = cl_mono_us();
    /* Replica 3 keeps beating; replica 2 falls silent. */
    while (count_events() < 3 && cl_mono_us() - t0 < 6000000) {
        heartbeat("m", "1", 3, "ready");
        cl_sleep_ms(300);
    }
    uint64_t waited_ms = (cl_mono_us() - t0) / 1000;
    assert_int_equal(count_events(), 3);
    event e = event_at(2);
    assert_true(e.removed);
    assert_int_equal(e.id, 2);
    assert_true(waited_ms >= CL_REPLICA_TIMEOUT_MS - 100);
    assert_true(waited_ms < CL_REPLICA_TIMEOUT_MS + 1500);
    cl_replica_info *list = NULL;
    assert_int_equal(cl_replicas_snapshot(fx.reps, NULL, NULL, &list), 1);
    assert_int_equal(list[0].replica_id, 3);
    free(list);
}

static void test_bad_heartbeats_are_ignored(void **state)
{
    (void)state;
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_replica_hb(subject, "reps", "m", "1", "0", &err), CL_OK);
    const char *junk[] = {"", "nope", "{\"model_name\":\"m\"}", "[1]",
                          "{\"model_name\":\"m\",\"model_version\":\"1\",\"replica_id\":1,"
                          "\"state\":\"zombie\"}"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(cl_bus_publish(fx.bus, subject, junk[i], strlen(junk[i])), CL_OK);
    heartbeat("m", "1", 1, "ready");
    wait_events(1, 3000);
    cl_sleep_ms(100);
    assert_int_equal(count_events(), 1);
    assert_int_equal(event_at(0).id, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_heartbeat_makes_a_replica_appear_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_state_change_is_reported_and_snapshot_filters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stopped_heartbeat_removes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_replica_is_removed_after_the_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_heartbeats_are_ignored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
