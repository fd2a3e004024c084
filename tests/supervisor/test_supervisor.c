/* The supervisor (actors/supervisor): restarts, backoff, the restart
 * intensity, stopping, and what it reports (status JSON, Prometheus text).
 * Children are /bin/sh one-liners. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl_clock.h"
#include "cl_supervisor.h"

static cl_sv *new_sv(unsigned max, unsigned period_s, unsigned first_ms, unsigned healthy_s)
{
    cl_sv_opts o;
    cl_sv_opts_init(&o);
    o.max_restarts = max;
    o.period_s = period_s;
    o.backoff_first_ms = first_ms;
    o.backoff_max_ms = 400;
    o.healthy_s = healthy_s;
    cl_sv *sv = NULL;
    cl_err err;
    assert_int_equal(cl_sv_new(&sv, &o, "testhost", &err), CL_OK);
    return sv;
}

static size_t add(cl_sv *sv, const char *name, const char *script)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    cl_sv_child_spec spec = {.name = name, .argv = argv, .out_fd = -1, .new_pgroup = true};
    size_t i;
    cl_err err;
    assert_int_equal(cl_sv_add(sv, &spec, &i, &err), CL_OK);
    assert_int_equal(cl_sv_start(sv, i, &err), CL_OK);
    return i;
}

/* Ticks until cond or timeout; returns the last tick's result. */
static long tick_until(cl_sv *sv, bool (*cond)(cl_sv *, size_t), size_t i, int timeout_ms)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    long gone = -1;
    while (cl_mono_us() < until) {
        int next;
        gone = cl_sv_tick(sv, &next);
        if (gone >= 0 || cond(sv, i))
            return gone;
        cl_sleep_ms(next < 20 ? next : 20);
    }
    return gone;
}

static bool restarted_once(cl_sv *sv, size_t i)
{
    return cl_sv_restarts(sv, i) >= 1 && cl_sv_child_state(sv, i) == CL_SV_RUNNING;
}

static void test_a_killed_child_is_restarted_at_once_and_reported(void **state)
{
    (void)state;
    cl_sv *sv = new_sv(10, 60, 100, 10);
    size_t i = add(sv, "sleeper", "exec sleep 30");
    pid_t first = cl_sv_pid(sv, i);
    assert_true(first > 0);
    assert_int_equal(kill(first, SIGKILL), 0);
    uint64_t t0 = cl_mono_us();
    assert_int_equal(tick_until(sv, restarted_once, i, 3000), -1);
    uint64_t took = cl_mono_us() - t0;
    assert_true(restarted_once(sv, i));
    assert_int_not_equal(cl_sv_pid(sv, i), first);
    /* The first restart after a healthy run waits for nothing: the 100 ms
     * backoff would show. */
    if (took > 90000u)
        fail_msg("the first restart took %.1f ms", (double)took / 1e3);

    cJSON *st = cl_sv_status_json(sv);
    const cJSON *kid = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 0);
    assert_string_equal(cJSON_GetObjectItem(st, "host")->valuestring, "testhost");
    assert_string_equal(cJSON_GetObjectItem(kid, "name")->valuestring, "sleeper");
    assert_string_equal(cJSON_GetObjectItem(kid, "state")->valuestring, "running");
    assert_int_equal(cJSON_GetObjectItem(kid, "restarts")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(kid, "last_exit_code")->valueint, -9);
    assert_non_null(strstr(cJSON_GetObjectItem(kid, "last_exit")->valuestring, "signal 9"));
    cJSON_Delete(st);

    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_sv_prometheus(sv, &b), CL_OK);
    assert_int_equal(cl_buf_terminate(&b), CL_OK);
    const char *text = (const char *)b.data;
    assert_non_null(strstr(text, "# TYPE clipper_supervised_restarts_total counter\n"));
    assert_non_null(strstr(text, "clipper_supervised_restarts_total{host=\"testhost\","
                                 "process=\"sleeper\"} 1\n"));
    assert_non_null(strstr(text, "clipper_supervised_up{host=\"testhost\",process=\"sleeper\"} 1\n"));
    assert_non_null(strstr(text, "clipper_supervised_last_exit_code{host=\"testhost\","
                                 "process=\"sleeper\"} -9\n"));
    assert_non_null(strstr(text, "clipper_supervised_state{host=\"testhost\",process=\"sleeper\","
                                 "state=\"running\"} 1\n"));
    cl_buf_deinit(&b);

    size_t which[] = {i};
    cl_sv_stop(sv, which, 1, 2000);
    assert_int_equal(cl_sv_child_state(sv, i), CL_SV_STOPPED);
    assert_int_equal(cl_sv_pid(sv, i), 0);
    /* Stopped children are not restarted. */
    int next;
    assert_int_equal(cl_sv_tick(sv, &next), -1);
    assert_int_equal(cl_sv_child_state(sv, i), CL_SV_STOPPED);
    cl_sv_free(sv);
}

static bool never(cl_sv *sv, size_t i)
{
    (void)sv;
    (void)i;
    return false;
}

static void test_a_child_that_keeps_ending_backs_off_then_is_given_up(void **state)
{
    (void)state;
    /* At most 3 restarts within 60 s; backoff 50 ms doubling to 400. */
    cl_sv *sv = new_sv(3, 60, 50, 10);
    size_t i = add(sv, "crasher", "exit 3");
    uint64_t t0 = cl_mono_us();
    long gone = tick_until(sv, never, i, 5000);
    uint64_t took = cl_mono_us() - t0;
    assert_int_equal(gone, (long)i);
    assert_int_equal(cl_sv_child_state(sv, i), CL_SV_GAVE_UP);
    assert_int_equal(cl_sv_restarts(sv, i), 3);
    /* Restarts at once, then after 50 and 100 ms: at least 150 ms in all,
     * and well under the 5 s we allowed. */
    if (took < 150000u || took > 3000000u)
        fail_msg("three restarts and the give-up took %.1f ms", (double)took / 1e3);
    cJSON *st = cl_sv_status_json(sv);
    const cJSON *kid = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 0);
    assert_string_equal(cJSON_GetObjectItem(kid, "state")->valuestring, "gave_up");
    assert_int_equal(cJSON_GetObjectItem(kid, "last_exit_code")->valueint, 3);
    cJSON_Delete(st);
    cl_sv_free(sv);
}

static void test_children_are_independent_one_for_one(void **state)
{
    (void)state;
    cl_sv *sv = new_sv(10, 60, 100, 10);
    size_t a = add(sv, "a", "exec sleep 30");
    size_t b = add(sv, "b", "exec sleep 30");
    pid_t pb = cl_sv_pid(sv, b);
    assert_int_equal(kill(cl_sv_pid(sv, a), SIGKILL), 0);
    assert_int_equal(tick_until(sv, restarted_once, a, 3000), -1);
    assert_int_equal(cl_sv_pid(sv, b), pb); /* b untouched */
    assert_int_equal(cl_sv_restarts(sv, b), 0);
    size_t both[] = {a, b};
    cl_sv_stop(sv, both, 2, 2000);
    cl_sv_free(sv);
}

static void test_a_child_stopped_by_a_signal_is_killed_and_restarted(void **state)
{
    (void)state;
    cl_sv *sv = new_sv(10, 60, 100, 10); /* stopped_kill_ms: the default 2000 */
    size_t i = add(sv, "frozen", "exec sleep 30");
    pid_t first = cl_sv_pid(sv, i);
    assert_int_equal(kill(first, SIGSTOP), 0);
    uint64_t t0 = cl_mono_us();
    assert_int_equal(tick_until(sv, restarted_once, i, 6000), -1);
    uint64_t took = cl_mono_us() - t0;
    assert_true(restarted_once(sv, i));
    assert_int_not_equal(cl_sv_pid(sv, i), first);
    if (took < 1900000u || took > 4000000u)
        fail_msg("the stopped child was restarted after %.2f s (want about 2 s)",
                 (double)took / 1e6);
    cJSON *st = cl_sv_status_json(sv);
    const cJSON *kid = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 0);
    assert_int_equal(cJSON_GetObjectItem(kid, "last_exit_code")->valueint, -9);
    cJSON_Delete(st);
    size_t which[] = {i};
    cl_sv_stop(sv, which, 1, 2000);
    cl_sv_free(sv);
}

static void test_bad_options_are_refused(void **state)
{
    (void)state;
    cl_sv_opts o;
    cl_sv_opts_init(&o);
    o.max_restarts = 0;
    cl_sv *sv = NULL;
    cl_err err;
    assert_int_equal(cl_sv_new(&sv, &o, NULL, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "restart intensity"));
    cl_sv_opts_init(&o);
    assert_int_equal(cl_sv_new(&sv, &o, NULL, &err), CL_OK);
    char *none[] = {NULL};
    cl_sv_child_spec spec = {.name = "x", .argv = none, .out_fd = -1};
    assert_int_equal(cl_sv_add(sv, &spec, NULL, &err), CL_ERR_INVALID);
    char *bad[] = {"/nonexistent/program", NULL};
    spec.argv = bad;
    size_t i;
    assert_int_equal(cl_sv_add(sv, &spec, &i, &err), CL_OK);
    assert_int_not_equal(cl_sv_start(sv, i, &err), CL_OK);
    assert_non_null(strstr(err.msg, "/nonexistent/program"));
    cl_sv_free(sv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_killed_child_is_restarted_at_once_and_reported),
        cmocka_unit_test(test_a_child_that_keeps_ending_backs_off_then_is_given_up),
        cmocka_unit_test(test_children_are_independent_one_for_one),
        cmocka_unit_test(test_a_child_stopped_by_a_signal_is_killed_and_restarted),
        cmocka_unit_test(test_bad_options_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
