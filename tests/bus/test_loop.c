/* Integration tests of the bus loop (bus/loop.c): a connection read by the
 * thread that runs it, callbacks on that thread, one write per turn,
 * against a real nats-server. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus_internal.h" /* white box: the name a server goes by */
#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_loop.h"
#include "cl_test_nats.h"

typedef struct {
    cl_loop *loop;
    int count;
    pthread_t thread;
    char last[64];
    const char *forward; /* publish each message here twice, if set */
} seen;

static void on_msg(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    seen *s = closure;
    s->count++;
    s->thread = pthread_self();
    snprintf(s->last, sizeof(s->last), "%.*s", (int)cl_msg_len(msg),
             (const char *)cl_msg_data(msg));
    if (s->forward != NULL) {
        assert_int_equal(cl_loop_publish(s->loop, s->forward, "one", 3), CL_OK);
        assert_int_equal(cl_loop_publish(s->loop, s->forward, "two", 3), CL_OK);
    }
    cl_msg_free(msg);
}

/* Runs the loop until s->count reaches want or timeout_ms passes. */
static int run_until(cl_loop *loop, seen *s, int want, int timeout_ms)
{
    uint64_t end = cl_mono_us() + (uint64_t)timeout_ms * 1000;
    while (s->count < want && cl_mono_us() < end)
        cl_status_ignore(cl_loop_run(loop, 50)); /* CL_ERR_TIMEOUT: nothing came yet */
    return s->count;
}

static void open_both(cl_bus **bus, cl_loop **loop)
{
    assert_int_equal(cl_test_bus_connect(bus, &cl_test_srv, "lt"), 0);
    cl_err err = {0};
    assert_int_equal(cl_loop_open(loop, *bus, &err), CL_OK);
}

static void test_callbacks_run_on_the_thread_that_runs_the_loop(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    seen s = {.loop = loop};
    assert_int_equal(cl_loop_subscribe(loop, "lt.a", NULL, on_msg, &s), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    assert_int_equal(s.count, 0); /* sync calls no callback */
    assert_int_equal(cl_bus_publish(bus, "lt.a", "hello", 5), CL_OK);
    assert_int_equal(run_until(loop, &s, 1, 3000), 1);
    assert_true(pthread_equal(s.thread, pthread_self()));
    assert_string_equal(s.last, "hello");
    /* Nothing more: a turn with no message says so. */
    assert_int_equal(cl_loop_run(loop, 50), CL_ERR_TIMEOUT);
    cl_loop_free(loop);
    cl_bus_free(bus);
}

static void test_publishes_of_a_callback_go_out_in_order_after_its_turn(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    cl_sub *out = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&out, bus, "lt.out", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    seen s = {.loop = loop, .forward = "lt.out"};
    assert_int_equal(cl_loop_subscribe(loop, "lt.in", NULL, on_msg, &s), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    assert_int_equal(cl_bus_publish(bus, "lt.in", "x", 1), CL_OK);
    assert_int_equal(run_until(loop, &s, 1, 3000), 1);
    const char *want[] = {"one", "two"};
    for (int i = 0; i < 2; i++) {
        cl_msg *m = NULL;
        assert_int_equal(cl_sub_next(out, &m, 3000), CL_OK);
        assert_int_equal(cl_msg_len(m), 3);
        assert_memory_equal(cl_msg_data(m), want[i], 3);
        cl_msg_free(m);
    }
    cl_sub_free(out);
    cl_loop_free(loop);
    cl_bus_free(bus);
}

static void test_publish_outside_a_turn_is_written_at_once(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    cl_sub *out = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&out, bus, "lt.now", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    /* Nobody runs the loop: the publishing thread writes it itself. */
    assert_int_equal(cl_loop_publish(loop, "lt.now", "now", 3), CL_OK);
    cl_msg *m = NULL;
    assert_int_equal(cl_sub_next(out, &m, 3000), CL_OK);
    assert_memory_equal(cl_msg_data(m), "now", 3);
    cl_msg_free(m);
    /* Too large for the server: refused, nothing sent. */
    size_t big = (size_t)cl_bus_max_payload(bus) + 1;
    char *data = calloc(1, big);
    assert_non_null(data);
    assert_int_equal(cl_loop_publish(loop, "lt.now", data, big), CL_ERR_TOO_LARGE);
    free(data);
    cl_sub_free(out);
    cl_loop_free(loop);
    cl_bus_free(bus);
}

static void test_unsubscribed_subject_is_not_delivered_any_more(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    seen a = {.loop = loop}, b = {.loop = loop};
    assert_int_equal(cl_loop_subscribe(loop, "lt.u1", NULL, on_msg, &a), CL_OK);
    assert_int_equal(cl_loop_subscribe(loop, "lt.u2", "q", on_msg, &b), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    cl_loop_unsubscribe(loop, "lt.u1");
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    assert_int_equal(cl_bus_publish(bus, "lt.u1", "gone", 4), CL_OK);
    assert_int_equal(cl_bus_publish(bus, "lt.u2", "here", 4), CL_OK);
    assert_int_equal(run_until(loop, &b, 1, 3000), 1);
    assert_string_equal(b.last, "here");
    /* One more turn for a stray message; CL_ERR_TIMEOUT (none) is the hoped-for answer. */
    cl_status_ignore(cl_loop_run(loop, 100));
    assert_int_equal(a.count, 0);
    cl_loop_free(loop);
    cl_bus_free(bus);
}

/* The bus resolves its server's name once connected, and a loop opened
 * later reaches the server by that address without looking the name up
 * again (podman's name server stalls for seconds while containers start);
 * here the name no longer resolves at all. */
static void test_loop_reaches_the_server_by_address_when_its_name_fails(void **state)
{
    (void)state;
    char url[96];
    snprintf(url, sizeof(url), "nats://localhost:%d", cl_test_srv.port);
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.url = url;
    cl_bus *bus;
    cl_err err = {0};
    assert_int_equal(cl_bus_connect(&bus, &o, &err), CL_OK);
    char want[96];
    snprintf(want, sizeof(want), "nats://127.0.0.1:%d", cl_test_srv.port);
    assert_true(bus->n_addr_urls >= 1);
    assert_string_equal(bus->addr_urls[0], want);

    /* From now on the name does not resolve. */
    free(bus->url);
    char gone[96];
    snprintf(gone, sizeof(gone), "nats://no-such-host.invalid:%d", cl_test_srv.port);
    bus->url = strdup(gone);
    assert_non_null(bus->url);

    /* Without the address a loop cannot connect: the test can fail. */
    int n = bus->n_addr_urls;
    bus->n_addr_urls = 0;
    cl_loop *loop = NULL;
    assert_int_not_equal(cl_loop_open(&loop, bus, &err), CL_OK);
    bus->n_addr_urls = n;

    assert_int_equal(cl_loop_open(&loop, bus, &err), CL_OK);
    seen s = {.loop = loop};
    assert_int_equal(cl_loop_subscribe(loop, "lt.addr", NULL, on_msg, &s), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    assert_int_equal(cl_bus_publish(bus, "lt.addr", "by-address", 10), CL_OK);
    assert_int_equal(run_until(loop, &s, 1, 3000), 1);
    assert_string_equal(s.last, "by-address");
    cl_loop_free(loop);
    cl_bus_free(bus);
}

/* A thread that runs the loop until told to stop, as an actor's io
 * thread does while another thread stops it. */
typedef struct {
    cl_loop *loop;
    atomic_bool stop;
} runner;

static void *run_loop(void *arg)
{
    runner *r = arg;
    while (!atomic_load(&r->stop))
        cl_status_ignore(cl_loop_run(r->loop, 20)); /* CL_ERR_TIMEOUT: idle */
    return NULL;
}

static void test_drain_from_another_thread_handles_what_was_sent_and_nothing_after(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    seen s = {.loop = loop};
    assert_int_equal(cl_loop_subscribe(loop, "lt.d", "q", on_msg, &s), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    runner r = {.loop = loop};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_loop, &r), 0);
    enum { N = 2000 };
    for (int i = 0; i < N; i++)
        assert_int_equal(cl_bus_publish(bus, "lt.d", "x", 1), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    assert_int_equal(cl_loop_drain(loop, "lt.d", 5000), CL_OK);
    /* Drained: everything sent before was handled; nothing after comes. */
    assert_int_equal(cl_bus_publish(bus, "lt.d", "late", 4), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    cl_sleep_ms(100);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(s.count, N);
    assert_string_equal(s.last, "x");
    cl_loop_free(loop);
    cl_bus_free(bus);
}

/* A drain while the server restarts: the connection is built again under
 * the drain, which returns (with whatever the lost connection said)
 * without touching the subscription the rebuild destroyed, and the
 * draining subscription is not made again, while the others are. */
static void test_drain_across_a_server_restart_is_not_subscribed_again(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    seen gone = {.loop = loop}, kept = {.loop = loop};
    assert_int_equal(cl_loop_subscribe(loop, "lt.gone", NULL, on_msg, &gone), CL_OK);
    assert_int_equal(cl_loop_subscribe(loop, "lt.kept", NULL, on_msg, &kept), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    runner r = {.loop = loop};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_loop, &r), 0);
    assert_int_equal(cl_test_nats_restart(&cl_test_srv), 0);
    uint64_t t0 = cl_mono_us();
    cl_status_ignore(cl_loop_drain(loop, "lt.gone", 3000)); /* lost with the connection */
    assert_true(cl_mono_us() - t0 < 4000000);
    uint64_t before = cl_loop_reconnects(loop);
    uint64_t end = cl_mono_us() + 15000000;
    while (cl_loop_reconnects(loop) == before && cl_mono_us() < end)
        cl_sleep_ms(20);
    assert_true(cl_loop_reconnects(loop) > before);
    /* The loop's counts are its thread's until it is joined: publish to
     * both for 3 s (the bus itself may still be reconnecting), then look. */
    for (int i = 0; i < 60; i++) {
        cl_status_ignore(cl_bus_publish(bus, "lt.gone", "no", 2)); /* fails while away */
        cl_status_ignore(cl_bus_publish(bus, "lt.kept", "yes", 3));
        cl_sleep_ms(50);
    }
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    assert_true(kept.count >= 1);
    assert_int_equal(gone.count, 0);
    cl_loop_free(loop);
    cl_bus_free(bus);
}

/* With cl_loop_hold_while_down, what is published while the server is
 * away is sent, in order, once the loop has connected and subscribed
 * again; without it, such a publish fails. The loop receives its own
 * messages, so nothing races its resubscription. */
static void test_publishes_while_the_server_is_away_are_held_and_sent_after(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    seen s = {.loop = loop};
    assert_int_equal(cl_loop_subscribe(loop, "lt.held", NULL, on_msg, &s), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    assert_int_equal(cl_test_nats_kill(&cl_test_srv), 0);
    /* The loop reads the end of its connection. */
    for (int i = 0; i < 10; i++)
        cl_status_ignore(cl_loop_run(loop, 50)); /* the server is away */
    assert_int_not_equal(cl_loop_publish(loop, "lt.held", "lost", 4), CL_OK);
    cl_loop_hold_while_down(loop, true);
    assert_int_equal(cl_loop_publish(loop, "lt.held", "first", 5), CL_OK);
    assert_int_equal(cl_loop_publish(loop, "lt.held", "second", 6), CL_OK);
    assert_int_equal(cl_test_nats_respawn(&cl_test_srv), 0);
    assert_int_equal(run_until(loop, &s, 2, 15000), 2);
    assert_string_equal(s.last, "second");
    /* Nothing else came: "lost" was refused, not kept. */
    run_until(loop, &s, 3, 300);
    assert_int_equal(s.count, 2);
    cl_loop_free(loop);
    cl_bus_free(bus);
}

/* Last: it restarts the group's server. */
static void test_loop_reconnects_and_resubscribes_after_a_server_restart(void **state)
{
    (void)state;
    cl_bus *bus;
    cl_loop *loop;
    open_both(&bus, &loop);
    seen s = {.loop = loop};
    assert_int_equal(cl_loop_subscribe(loop, "lt.r", NULL, on_msg, &s), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 2000), CL_OK);
    assert_int_equal(cl_test_nats_restart(&cl_test_srv), 0);
    /* Publish until the loop has reconnected and receives again. */
    uint64_t end = cl_mono_us() + 15000000;
    while (s.count == 0 && cl_mono_us() < end) {
        /* Fails while the server is away: the next round publishes again. */
        cl_status_ignore(cl_bus_publish(bus, "lt.r", "back", 4));
        run_until(loop, &s, 1, 200);
    }
    assert_true(s.count >= 1);
    assert_string_equal(s.last, "back");
    cl_loop_free(loop);
    cl_bus_free(bus);
    cl_loop_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callbacks_run_on_the_thread_that_runs_the_loop),
        cmocka_unit_test(test_publishes_of_a_callback_go_out_in_order_after_its_turn),
        cmocka_unit_test(test_publish_outside_a_turn_is_written_at_once),
        cmocka_unit_test(test_unsubscribed_subject_is_not_delivered_any_more),
        cmocka_unit_test(test_loop_reaches_the_server_by_address_when_its_name_fails),
        cmocka_unit_test(test_drain_from_another_thread_handles_what_was_sent_and_nothing_after),
        cmocka_unit_test(test_drain_across_a_server_restart_is_not_subscribed_again),
        cmocka_unit_test(test_publishes_while_the_server_is_away_are_held_and_sent_after),
        cmocka_unit_test(test_loop_reconnects_and_resubscribes_after_a_server_restart),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
