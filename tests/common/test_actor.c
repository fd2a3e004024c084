/* Unit tests of the actor process plumbing (actors/common/actor.c):
 * common options with environment fallbacks, and stopping. */
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

#include "cl_actor.h"

static void test_opts_default_without_environment(void **state)
{
    (void)state;
    unsetenv("CLIPPER_NATS_URL");
    unsetenv("CLIPPER_PREFIX");
    cl_actor_opts o;
    cl_actor_opts_init(&o);
    assert_string_equal(o.nats_url, CL_DEFAULT_NATS_URL);
    assert_string_equal(o.prefix, CL_DEFAULT_PREFIX);
}

static void test_opts_fall_back_to_the_environment(void **state)
{
    (void)state;
    setenv("CLIPPER_NATS_URL", "nats://10.0.0.1:4000", 1);
    setenv("CLIPPER_PREFIX", "blue", 1);
    cl_actor_opts o;
    cl_actor_opts_init(&o);
    assert_string_equal(o.nats_url, "nats://10.0.0.1:4000");
    assert_string_equal(o.prefix, "blue");
    unsetenv("CLIPPER_NATS_URL");
    unsetenv("CLIPPER_PREFIX");
}

static void test_command_line_overrides_environment_in_both_spellings(void **state)
{
    (void)state;
    setenv("CLIPPER_PREFIX", "blue", 1);
    char *argv[] = {"x", "--nats", "nats://h:1", "--prefix=green", "--other", NULL};
    int argc = 5;
    cl_actor_opts o;
    cl_actor_opts_init(&o);
    cl_err err;
    int i = 1;
    assert_int_equal(cl_actor_parse_common(&o, argc, argv, &i, &err), 1);
    assert_int_equal(i, 2);
    i++;
    assert_int_equal(cl_actor_parse_common(&o, argc, argv, &i, &err), 1);
    assert_int_equal(i, 3);
    i++;
    assert_int_equal(cl_actor_parse_common(&o, argc, argv, &i, &err), 0);
    assert_string_equal(o.nats_url, "nats://h:1");
    assert_string_equal(o.prefix, "green");
    unsetenv("CLIPPER_PREFIX");
}

static void test_missing_value_and_bad_prefix_are_errors(void **state)
{
    (void)state;
    cl_actor_opts o;
    cl_actor_opts_init(&o);
    cl_err err;
    char *argv1[] = {"x", "--nats", NULL};
    int i = 1;
    assert_int_equal(cl_actor_parse_common(&o, 2, argv1, &i, &err), -1);
    assert_non_null(strstr(err.msg, "--nats needs a value"));
    char *argv2[] = {"x", "--prefix", "a*b", NULL};
    i = 1;
    assert_int_equal(cl_actor_parse_common(&o, 3, argv2, &i, &err), -1);
    assert_non_null(strstr(err.msg, "invalid prefix 'a*b'"));
    char *argv3[] = {"x", "--natsy", NULL};
    i = 1;
    assert_int_equal(cl_actor_parse_common(&o, 2, argv3, &i, &err), 0);
}

static void test_state_replicas_from_the_command_line_and_the_environment(void **state)
{
    (void)state;
    cl_actor_opts o;
    setenv("CLIPPER_STATE_REPLICAS", "3", 1);
    cl_actor_opts_init(&o);
    assert_int_equal(o.state_replicas, 3);
    setenv("CLIPPER_STATE_REPLICAS", "9", 1); /* out of range: the default */
    cl_actor_opts_init(&o);
    assert_int_equal(o.state_replicas, 0);
    unsetenv("CLIPPER_STATE_REPLICAS");
    cl_err err;
    char *ok[] = {"x", "--state-replicas", "5", NULL};
    int i = 1;
    assert_int_equal(cl_actor_parse_common(&o, 3, ok, &i, &err), 1);
    assert_int_equal(o.state_replicas, 5);
    assert_int_equal(i, 2);
    const char *bad[] = {"0", "6", "three", ""};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char *argv[] = {"x", "--state-replicas", (char *)bad[k], NULL};
        i = 1;
        assert_int_equal(cl_actor_parse_common(&o, 3, argv, &i, &err), -1);
        assert_non_null(strstr(err.msg, "--state-replicas needs a number from 1 to 5"));
    }
    char *none[] = {"x", "--state-replicas", NULL};
    i = 1;
    assert_int_equal(cl_actor_parse_common(&o, 2, none, &i, &err), -1);
}

static void test_take_value_reads_both_spellings_and_only_its_own_option(void **state)
{
    (void)state;
    char *argv[] = {"x", "--log-dir", "/a", "--log-dir=/b", "--log-dirx", "--log-dir=", NULL};
    int argc = 6;
    const char *v = NULL;
    int i = 1;
    assert_int_equal(cl_actor_take_value("x", "--log-dir", argc, argv, &i, &v), 1);
    assert_int_equal(i, 2);
    assert_string_equal(v, "/a");
    i = 3;
    assert_int_equal(cl_actor_take_value("x", "--log-dir", argc, argv, &i, &v), 1);
    assert_int_equal(i, 3);
    assert_string_equal(v, "/b");
    i = 4;
    v = NULL;
    assert_int_equal(cl_actor_take_value("x", "--log-dir", argc, argv, &i, &v), 0);
    assert_int_equal(i, 4);
    assert_null(v);
    i = 5;
    assert_int_equal(cl_actor_take_value("x", "--log-dir", argc, argv, &i, &v), 1);
    assert_string_equal(v, "");
}

static void test_take_value_without_a_value_says_which_option(void **state)
{
    (void)state;
    char *argv[] = {"x", "--data-dir", NULL};
    const char *v = NULL;
    int i = 1;
    /* Silent with no command name: the caller reports. */
    assert_int_equal(cl_actor_take_value(NULL, "--data-dir", 2, argv, &i, &v), -1);
    assert_int_equal(i, 1);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    int r = cl_actor_take_value("clipper start", "--data-dir", 2, argv, &i, &v);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char buf[256];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_int_equal(r, -1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "clipper start: option --data-dir needs a value\n");
}

static void test_parse_args_reports_help_and_unknown_arguments(void **state)
{
    (void)state;
    cl_actor_opts o;
    char *ok[] = {"x", "--prefix", "p1", NULL};
    assert_int_equal(cl_actor_parse_args(&o, 3, ok, "x [options]", NULL), 0);
    assert_string_equal(o.prefix, "p1");
    char *bad[] = {"x", "--bogus", NULL};
    assert_int_equal(cl_actor_parse_args(&o, 2, bad, "x [options]", NULL), 2);
    char *help[] = {"x", "--help", NULL};
    assert_int_equal(cl_actor_parse_args(&o, 2, help, "x [options]", "Does x."), 1);
}

static void test_requested_stop_wakes_the_waiter_with_zero(void **state)
{
    (void)state;
    cl_actor_request_stop();
    assert_int_equal(cl_actor_wait_stop(), 0);
}

static void test_sigterm_wakes_the_waiter_with_its_number(void **state)
{
    (void)state;
    cl_actor_block_signals();
    kill(getpid(), SIGTERM);
    assert_int_equal(cl_actor_wait_stop(), SIGTERM);
    raise(SIGINT);
    assert_int_equal(cl_actor_wait_stop(), SIGINT);
}

static void test_connect_to_nowhere_fails_clearly(void **state)
{
    (void)state;
    cl_actor_opts o = {.nats_url = "nats://127.0.0.1:1", .prefix = "p"};
    cl_bus *bus = NULL;
    assert_int_not_equal(cl_actor_connect(&bus, &o, "test", false), CL_OK);
    assert_null(bus);
    cl_actor_opts bad = {.nats_url = "nats://127.0.0.1:1", .prefix = "a b"};
    assert_int_equal(cl_actor_connect(&bus, &bad, "test", false), CL_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_default_without_environment),
        cmocka_unit_test(test_opts_fall_back_to_the_environment),
        cmocka_unit_test(test_command_line_overrides_environment_in_both_spellings),
        cmocka_unit_test(test_missing_value_and_bad_prefix_are_errors),
        cmocka_unit_test(test_state_replicas_from_the_command_line_and_the_environment),
        cmocka_unit_test(test_take_value_reads_both_spellings_and_only_its_own_option),
        cmocka_unit_test(test_take_value_without_a_value_says_which_option),
        cmocka_unit_test(test_parse_args_reports_help_and_unknown_arguments),
        cmocka_unit_test(test_requested_stop_wakes_the_waiter_with_zero),
        cmocka_unit_test(test_sigterm_wakes_the_waiter_with_its_number),
        cmocka_unit_test(test_connect_to_nowhere_fails_clearly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
