/* Unit tests of the router's batch-size policy (fixed and AIMD). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "batch_policy.h"

#define SLO 10000u

static void test_fixed_batch_size_caps_every_batch(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    assert_int_equal(cl_batch_policy_limit(&p, 8), 8);
    /* Feedback never moves a fixed size. */
    cl_batch_policy_observe(&p, 8, 8, 8, SLO / 2, SLO);
    cl_batch_policy_observe(&p, 8, 8, 8, SLO * 3, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, 8), 8);
    assert_int_equal(cl_batch_policy_limit(&p, 1), 1);
}

static void test_fixed_batch_size_below_one_counts_as_one(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    assert_int_equal(cl_batch_policy_limit(&p, 0), 1);
    assert_int_equal(cl_batch_policy_limit(&p, -7), 1);
}

static void test_adaptive_starts_at_one(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 1);
}

static void test_full_batch_under_slo_grows_by_one(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    for (uint32_t want = 2; want <= 6; want++) {
        uint32_t limit = cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE);
        cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, limit, limit, SLO / 2, SLO);
        assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), want);
    }
}

static void test_partial_batch_under_slo_does_not_grow(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    p.cap = 5;
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 4, 5, SLO / 2, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 5);
}

static void test_latency_exactly_at_slo_holds_the_cap(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    p.cap = 5;
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 5, 5, SLO, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 5);
}

static void test_latency_over_slo_backs_off_by_ten_percent(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    p.cap = 100;
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 100, 100, SLO + 1, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 90);
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 90, 90, SLO * 2, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 81);
    /* floor(81 * 0.9) = floor(72.9) = 72; a partial batch backs off too. */
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 3, 81, SLO * 2, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 72);
}

static void test_backoff_of_small_caps_floors_and_stops_at_one(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    p.cap = 9;
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 9, 9, SLO * 2, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 8); /* floor(8.1) */
    p.cap = 2;
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 2, 2, SLO * 2, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 1); /* floor(1.8) */
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 1, 1, SLO * 2, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 1); /* max(1, 0) */
}

static void test_growth_stops_at_the_bound(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 4);
    for (int i = 0; i < 10; i++) {
        uint32_t limit = cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE);
        cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, limit, limit, 1, SLO);
    }
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 4);
}

static void test_default_bound_is_1024(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    assert_int_equal(p.bound, CL_BATCH_DEFAULT_BOUND);
    assert_int_equal(CL_BATCH_DEFAULT_BOUND, 1024);
    p.cap = 1024;
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 1024, 1024, 1, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 1024);
}

static void test_grow_then_back_off_then_grow_again(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    for (int i = 0; i < 19; i++) {
        uint32_t limit = cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE);
        cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, limit, limit, SLO / 2, SLO);
    }
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 20);
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 20, 20, SLO + 500, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 18);
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 18, 18, SLO / 2, SLO);
    assert_int_equal(cl_batch_policy_limit(&p, CL_BATCH_ADAPTIVE), 19);
}

static void test_target_is_half_the_slo(void **state)
{
    (void)state;
    assert_int_equal(cl_batch_target_us(20000), 10000);
    assert_int_equal(cl_batch_target_us(0), 0);
}

static void test_no_target_leaves_the_adaptive_cap_alone(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    p.cap = 5;
    cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, 5, 5, 1, 0);
    assert_int_equal(p.cap, 5);
    assert_true(cl_batch_policy_estimate_us(&p, 5) > 0); /* but it is measured */
}

static void test_estimate_is_zero_before_any_batch(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    assert_int_equal(cl_batch_policy_estimate_us(&p, 1), 0);
    assert_int_equal(cl_batch_policy_estimate_us(&p, 100), 0);
}

static void test_estimate_of_one_batch_size_is_its_mean_latency(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    cl_batch_policy_observe(&p, 1, 1, 1, 9000, SLO);
    cl_batch_policy_observe(&p, 1, 1, 1, 11000, SLO);
    uint64_t e = cl_batch_policy_estimate_us(&p, 1);
    assert_true(e > 9000 && e < 11000);
    /* No slope is known: other sizes get the same figure. */
    assert_int_equal(cl_batch_policy_estimate_us(&p, 50), e);
}

static void test_estimate_follows_a_fixed_plus_per_task_cost(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    /* 5 ms a batch + 50 us a task, as the benchmark's batching model. */
    for (uint32_t n = 10; n <= 100; n += 10)
        cl_batch_policy_observe(&p, CL_BATCH_ADAPTIVE, n, n, 5000 + 50 * n, 1000000);
    uint64_t e200 = cl_batch_policy_estimate_us(&p, 200);
    uint64_t e1 = cl_batch_policy_estimate_us(&p, 1);
    assert_true(e200 > 14900 && e200 < 15100);
    assert_true(e1 > 4990 && e1 < 5100);
}

static void test_estimate_ignores_a_negative_slope(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    cl_batch_policy_observe(&p, 8, 2, 8, 9000, SLO);
    cl_batch_policy_observe(&p, 8, 8, 8, 3000, SLO);
    uint64_t e = cl_batch_policy_estimate_us(&p, 100);
    assert_true(e >= 3000 && e <= 9000);
}

static void test_estimate_forgets_old_batches(void **state)
{
    (void)state;
    cl_batch_policy p;
    cl_batch_policy_init(&p, 0);
    for (int i = 0; i < 50; i++)
        cl_batch_policy_observe(&p, 1, 1, 1, 50000, SLO);
    for (int i = 0; i < 30; i++)
        cl_batch_policy_observe(&p, 1, 1, 1, 1000, SLO);
    assert_true(cl_batch_policy_estimate_us(&p, 1) < 1100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_batch_size_caps_every_batch),
        cmocka_unit_test(test_fixed_batch_size_below_one_counts_as_one),
        cmocka_unit_test(test_adaptive_starts_at_one),
        cmocka_unit_test(test_full_batch_under_slo_grows_by_one),
        cmocka_unit_test(test_partial_batch_under_slo_does_not_grow),
        cmocka_unit_test(test_latency_exactly_at_slo_holds_the_cap),
        cmocka_unit_test(test_latency_over_slo_backs_off_by_ten_percent),
        cmocka_unit_test(test_backoff_of_small_caps_floors_and_stops_at_one),
        cmocka_unit_test(test_growth_stops_at_the_bound),
        cmocka_unit_test(test_default_bound_is_1024),
        cmocka_unit_test(test_grow_then_back_off_then_grow_again),
        cmocka_unit_test(test_target_is_half_the_slo),
        cmocka_unit_test(test_no_target_leaves_the_adaptive_cap_alone),
        cmocka_unit_test(test_estimate_is_zero_before_any_batch),
        cmocka_unit_test(test_estimate_of_one_batch_size_is_its_mean_latency),
        cmocka_unit_test(test_estimate_follows_a_fixed_plus_per_task_cost),
        cmocka_unit_test(test_estimate_ignores_a_negative_slope),
        cmocka_unit_test(test_estimate_forgets_old_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
