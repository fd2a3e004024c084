/* Unit tests of the rate-limited log lines (base/cl_log.h): a burst, then
 * one line per interval that says how many were suppressed. The clock is
 * the test's, so nothing here sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl_log.h"

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

static void test_bucket_passes_a_burst_then_one_per_interval(void **state)
{
    (void)state;
    cl_log_limit l = CL_LOG_LIMIT_INIT;
    uint64_t t0 = 5000000, suppressed = 99;
    for (unsigned i = 0; i < CL_LOG_BURST; i++) {
        assert_true(cl_log_limit_take(&l, t0, &suppressed));
        assert_int_equal(suppressed, 0);
    }
    for (int i = 0; i < 1000; i++)
        assert_false(cl_log_limit_take(&l, t0 + (uint64_t)i, &suppressed));
    /* Just before an interval: still nothing. */
    assert_false(cl_log_limit_take(&l, t0 + CL_LOG_INTERVAL_US - 1, &suppressed));
    /* One interval later one line passes and carries the count. */
    assert_true(cl_log_limit_take(&l, t0 + CL_LOG_INTERVAL_US, &suppressed));
    assert_int_equal(suppressed, 1001);
    assert_false(cl_log_limit_take(&l, t0 + CL_LOG_INTERVAL_US + 1, &suppressed));
    /* A long quiet refills the burst, no more. */
    uint64_t later = t0 + 1000 * CL_LOG_INTERVAL_US;
    for (unsigned i = 0; i < CL_LOG_BURST; i++)
        assert_true(cl_log_limit_take(&l, later, &suppressed));
    assert_false(cl_log_limit_take(&l, later, &suppressed));
    /* A clock that steps back does not refill it. */
    assert_false(cl_log_limit_take(&l, t0, &suppressed));
}

/* Runs fn with stderr going to a file; returns what it wrote (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long n = ftell(tmp);
    assert_true(n >= 0);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    rewind(tmp);
    assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p != NULL; p = strstr(p + 1, what))
        n++;
    return n;
}

/* One call site, as a decoder of outside messages would have it. */
static void log_malformed(int i)
{
    CL_LOG_LIMITED(CL_LOG_WARN, "ignoring malformed message %d", i);
}

static void flood(void)
{
    fake_now = 1000000;
    for (int i = 0; i < 100000; i++)
        log_malformed(i);
    fake_now += CL_LOG_INTERVAL_US;
    log_malformed(-1);
    log_malformed(-2);
}

static void test_a_flood_of_malformed_messages_writes_a_burst_and_a_count(void **state)
{
    (void)state;
    cl_log_set_level(CL_LOG_INFO);
    cl_log_set_clock(fake_clock);
    char *out = capture_stderr(flood);
    cl_log_set_clock(NULL);
    assert_int_equal(count(out, "\n"), CL_LOG_BURST + 1);
    assert_int_equal(count(out, "ignoring malformed message"), CL_LOG_BURST + 1);
    assert_non_null(strstr(out, "ignoring malformed message 9\n"));
    char want[96];
    snprintf(want, sizeof(want), "ignoring malformed message -1 [%u similar lines suppressed]\n",
             100000 - CL_LOG_BURST);
    if (strstr(out, want) == NULL)
        fail_msg("no '%s' in:\n%s", want, out);
    assert_null(strstr(out, "message -2"));
    free(out);
}

static void log_quiet(int i)
{
    CL_LOG_LIMITED(CL_LOG_WARN, "quiet site %d", i);
}

static void quiet_level(void)
{
    fake_now = 1;
    cl_log_set_level(CL_LOG_ERROR);
    for (int i = 0; i < 50; i++)
        log_quiet(i); /* off: must cost no token */
    cl_log_set_level(CL_LOG_INFO);
    for (int i = 0; i < 12; i++)
        log_quiet(i);
}

static void test_a_level_that_is_off_costs_no_token(void **state)
{
    (void)state;
    cl_log_set_clock(fake_clock);
    char *out = capture_stderr(quiet_level);
    cl_log_set_clock(NULL);
    assert_int_equal(count(out, "quiet site"), CL_LOG_BURST);
    assert_non_null(strstr(out, "quiet site 0\n"));
    assert_null(strstr(out, "suppressed"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_passes_a_burst_then_one_per_interval),
        cmocka_unit_test(test_a_flood_of_malformed_messages_writes_a_burst_and_a_count),
        cmocka_unit_test(test_a_level_that_is_off_costs_no_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
