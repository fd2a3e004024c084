/* Integration tests of the replica table (actors/common/replicas.c) against
 * forged heartbeats, on a real nats-server: a live replica is the replica's
 * own heartbeat publisher (actors/replica/heartbeat.c) with its incarnation,
 * the table is what the router and the admin keep, and the test publishes
 * forged heartbeats under the live replica's id from a third connection. */
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
#include "replica_internal.h"

#define PREFIX "forge"
#define LIVE_ID 7u
#define LIVE_INCARNATION 0x1111222233334444ull

typedef struct {
    char state[16];
    uint64_t incarnation;
    bool removed;
    uint64_t at_us;
} event;

static struct {
    cl_bus *replica_bus, *table_bus, *forger_bus;
    cl__hb *hb;
    cl_replicas *table;
    pthread_mutex_t mu;
    event events[256];
    int n_events;
} fx;

static void on_replica(void *closure, const cl_replica_info *info, bool removed)
{
    (void)closure;
    pthread_mutex_lock(&fx.mu);
    if (fx.n_events < 256 && info->replica_id == LIVE_ID) {
        event *e = &fx.events[fx.n_events++];
        snprintf(e->state, sizeof(e->state), "%s", info->state);
        e->incarnation = info->incarnation;
        e->removed = removed;
        e->at_us = cl_mono_us();
    }
    pthread_mutex_unlock(&fx.mu);
}

static int count_events(void)
{
    pthread_mutex_lock(&fx.mu);
    int n = fx.n_events;
    pthread_mutex_unlock(&fx.mu);
    return n;
}

static event event_at(int i)
{
    pthread_mutex_lock(&fx.mu);
    event e = fx.events[i];
    pthread_mutex_unlock(&fx.mu);
    return e;
}

static void wait_events(int n, int ms)
{
    int got = cl_test_wait_count(&fx.mu, &fx.n_events, n, ms);
    if (got < n)
        fail_msg("expected %d events of replica %u, got %d", n, LIVE_ID, got);
}

static void hb_subject(char *out, uint32_t id)
{
    char rid[16];
    cl_err err;
    snprintf(rid, sizeof(rid), "%u", id);
    assert_int_equal(cl_subj_replica_hb(out, PREFIX, "m", "1", rid, &err), CL_OK);
}

/* Starts the live replica's heartbeat (the replica's own publisher) with
 * incarnation inc, and makes it "ready". */
static void start_live(uint64_t inc)
{
    cl_replica_info info;
    memset(&info, 0, sizeof(info));
    snprintf(info.model, sizeof(info.model), "m");
    snprintf(info.version, sizeof(info.version), "1");
    info.replica_id = LIVE_ID;
    info.incarnation = inc;
    snprintf(info.state, sizeof(info.state), "starting");
    snprintf(info.host, sizeof(info.host), "live-host");
    info.pid = 1234;
    char subject[CL_SUBJECT_MAX];
    hb_subject(subject, LIVE_ID);
    cl_err err;
    if (cl__hb_start(&fx.hb, fx.replica_bus, subject, &info, &err) != CL_OK)
        fail_msg("heartbeat: %s", err.msg);
    cl__hb_set_model(fx.hb, "doubles", "python-closure");
    cl__hb_set_state(fx.hb, "ready", NULL);
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    pthread_mutex_init(&fx.mu, NULL);
    if (cl_test_bus_connect(&fx.replica_bus, &cl_test_srv, PREFIX) != 0 ||
        cl_test_bus_connect(&fx.table_bus, &cl_test_srv, PREFIX) != 0 ||
        cl_test_bus_connect(&fx.forger_bus, &cl_test_srv, PREFIX) != 0)
        return -1;
    cl_err err;
    if (cl_replicas_start(&fx.table, fx.table_bus, on_replica, NULL, &err) != CL_OK)
        return -1;
    if (cl_bus_flush(fx.table_bus, 2000) != CL_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cl__hb_free(fx.hb);
    cl_replicas_free(fx.table);
    cl_bus_free(fx.forger_bus);
    cl_bus_free(fx.table_bus);
    cl_bus_free(fx.replica_bus);
    pthread_mutex_destroy(&fx.mu);
    return 0;
}

/* A heartbeat of replica LIVE_ID in state st from the forger (incarnation
 * 0: the field left out, as an older replica sends). */
static void forge(const char *st, uint64_t inc)
{
    cl_replica_info info;
    memset(&info, 0, sizeof(info));
    snprintf(info.model, sizeof(info.model), "m");
    snprintf(info.version, sizeof(info.version), "1");
    info.replica_id = LIVE_ID;
    info.incarnation = inc;
    snprintf(info.state, sizeof(info.state), "%s", st);
    snprintf(info.cause, sizeof(info.cause), "forged");
    snprintf(info.host, sizeof(info.host), "forger");
    info.pid = 666;
    char *body = cl_heartbeat_encode(&info, "python-closure");
    assert_non_null(body);
    char subject[CL_SUBJECT_MAX];
    hb_subject(subject, LIVE_ID);
    assert_int_equal(cl_bus_publish(fx.forger_bus, subject, body, strlen(body)), CL_OK);
    assert_int_equal(cl_bus_flush(fx.forger_bus, 2000), CL_OK);
    free(body);
}

/* The table's entry of LIVE_ID; false when there is none. */
static bool live_entry(cl_replica_info *out)
{
    cl_replica_info *list = NULL;
    size_t n = cl_replicas_snapshot(fx.table, "m", "1", &list);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (list[i].replica_id == LIVE_ID) {
            *out = list[i];
            found = true;
        }
    }
    free(list);
    return found;
}

/* Waits for the live replica to be in the table as "ready". */
static void wait_live_ready(void)
{
    uint64_t end = cl_mono_us() + 5000000u;
    cl_replica_info e;
    while (!(live_entry(&e) && strcmp(e.state, "ready") == 0)) {
        if (cl_mono_us() > end)
            fail_msg("the live replica never showed as ready in the table");
        cl_sleep_ms(10);
    }
    assert_true(e.incarnation == LIVE_INCARNATION);
    assert_string_equal(e.host, "live-host");
}

static void test_forged_stopped_of_another_incarnation_leaves_a_live_replica(void **state)
{
    (void)state;
    start_live(LIVE_INCARNATION);
    wait_live_ready();
    int before = count_events();
    forge("stopped", 0xdeadbeefull); /* a guessed incarnation */
    forge("stopped", 0);             /* none, as an older replica sends */
    /* Two heartbeat periods: a removal would have shown by now. */
    cl_sleep_ms(2 * CL_HEARTBEAT_MS + 200);
    for (int i = before; i < count_events(); i++)
        if (event_at(i).removed)
            fail_msg("a forged 'stopped' removed the live replica");
    cl_replica_info e;
    assert_true(live_entry(&e));
    assert_string_equal(e.state, "ready");
    assert_true(e.incarnation == LIVE_INCARNATION);
}

static void test_forged_state_of_another_incarnation_does_not_change_a_live_replica(void **state)
{
    (void)state;
    start_live(LIVE_INCARNATION);
    wait_live_ready();
    int before = count_events();
    forge("failed", 0x5555ull);
    forge("starting", 0);
    cl_sleep_ms(300);
    cl_replica_info e;
    assert_true(live_entry(&e));
    assert_string_equal(e.state, "ready");
    assert_string_equal(e.cause, "");
    assert_string_equal(e.host, "live-host");
    assert_true(e.incarnation == LIVE_INCARNATION);
    assert_int_equal(count_events(), before);
}

static void test_forged_stop_with_the_copied_incarnation_costs_at_most_one_heartbeat(void **state)
{
    (void)state;
    start_live(LIVE_INCARNATION);
    wait_live_ready();
    int before = count_events();
    /* The incarnation is on the bus for anyone to copy: then the stop
     * counts, and the live replica's next heartbeat puts it back. */
    uint64_t t0 = cl_mono_us();
    forge("stopped", LIVE_INCARNATION);
    wait_events(before + 2, CL_HEARTBEAT_MS + 1000);
    event gone = event_at(before), back = event_at(before + 1);
    assert_true(gone.removed);
    assert_false(back.removed);
    assert_string_equal(back.state, "ready");
    assert_true(back.incarnation == LIVE_INCARNATION);
    assert_true(back.at_us - t0 <= (uint64_t)(CL_HEARTBEAT_MS + 200) * 1000u);
    cl_replica_info e;
    assert_true(live_entry(&e));
    assert_string_equal(e.host, "live-host");
}

static void test_a_new_incarnation_is_admitted_once_the_old_one_falls_silent(void **state)
{
    (void)state;
    /* A replica restarted with the same id (as the docker backend does)
     * after its predecessor died without saying "stopped". */
    start_live(LIVE_INCARNATION);
    wait_live_ready();
    cl__hb_free(fx.hb); /* died: no more heartbeats */
    fx.hb = NULL;
    uint64_t t0 = cl_mono_us();
    start_live(LIVE_INCARNATION + 1);
    uint64_t end = t0 + (uint64_t)(CL_REPLICA_TIMEOUT_MS + 2 * CL_HEARTBEAT_MS) * 1000u;
    cl_replica_info e = {0};
    while (!(live_entry(&e) && e.incarnation == LIVE_INCARNATION + 1)) {
        if (cl_mono_us() > end)
            fail_msg("the restarted replica was not admitted");
        cl_sleep_ms(20);
    }
    /* Not before the old one timed out. */
    assert_true(cl_mono_us() - t0 >= (uint64_t)(CL_REPLICA_TIMEOUT_MS - 1000) * 1000u);
    assert_string_equal(e.state, "ready");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_forged_stopped_of_another_incarnation_leaves_a_live_replica),
        T(test_forged_state_of_another_incarnation_does_not_change_a_live_replica),
        T(test_forged_stop_with_the_copied_incarnation_costs_at_most_one_heartbeat),
        T(test_a_new_incarnation_is_admitted_once_the_old_one_falls_silent),
    };
#undef T
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
