/* The --exit-after-bus-loss watch (bus_watch.c) against a real
 * nats-server: once freed it never looks at the bus again (a watch that
 * outlived the bus crashed replicas as they stopped: a use-after-free
 * that ASan reports at once and the plain build as a segfault in
 * natsConnection_Status), and it stops the replica when the bus stays
 * away. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_test_nats.h"
#include "replica_internal.h"

static void a_freed_watch_never_looks_at_the_bus_again(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 6; i++) {
        cl_bus *bus = NULL;
        assert_int_equal(cl_test_bus_connect(&bus, &cl_test_srv, "watch"), 0);
        cl__bus_watch *w = cl__replica_watch_bus(bus, 60);
        assert_non_null(w);
        /* Free it at different points of its half-second look. */
        cl_sleep_ms(i * 110);
        cl__replica_watch_free(w);
        cl_bus_free(bus);
    }
    /* A watch still running would look at a freed bus within 500 ms. */
    cl_sleep_ms(700);
}

static void no_watch_when_off(void **state)
{
    (void)state;
    cl_bus *bus = NULL;
    assert_int_equal(cl_test_bus_connect(&bus, &cl_test_srv, "watch"), 0);
    assert_null(cl__replica_watch_bus(bus, 0));
    cl__replica_watch_free(NULL); /* allowed */
    cl_bus_free(bus);
}

/* Last: it stops the server. */
static void the_replica_stops_when_the_bus_stays_away(void **state)
{
    (void)state;
    cl_bus *bus = NULL;
    assert_int_equal(cl_test_bus_connect(&bus, &cl_test_srv, "watch"), 0);
    cl__bus_watch *w = cl__replica_watch_bus(bus, 1);
    assert_non_null(w);
    cl_sleep_ms(600); /* connected: nothing happens */
    uint64_t t0 = cl_mono_us();
    assert_int_equal(cl_test_nats_stop(&cl_test_srv), 0);
    /* Requested (0), not a signal; after about a second away. */
    assert_int_equal(cl_actor_wait_stop(), 0);
    uint64_t took_ms = (cl_mono_us() - t0) / 1000;
    assert_true(took_ms >= 900 && took_ms < 5000);
    cl__replica_watch_free(w);
    cl_bus_free(bus);
}

int main(void)
{
    cl_actor_block_signals();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_freed_watch_never_looks_at_the_bus_again),
        cmocka_unit_test(no_watch_when_off),
        cmocka_unit_test(the_replica_stops_when_the_bus_stays_away),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
