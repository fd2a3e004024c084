/* Process-level tests of the admin's entry point (cl_admin_main, run by
 * admin_runner): options, a clear error when the bus is unreachable,
 * serving commands, and a clean exit on SIGTERM and SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_subject.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"

#ifndef ADMIN_RUNNER
#error "ADMIN_RUNNER must name the admin_runner executable"
#endif

static pid_t child;

/* Kills a child a failed test left behind. */
static int teardown(void **state)
{
    (void)state;
    cl_test_kill(child);
    child = 0;
    return 0;
}

/* Starts the runner with args; its stdout+stderr go to out_fd's pipe. */
static pid_t spawn(char *const args[], int *out_fd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = cl_test_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        execv(ADMIN_RUNNER, args);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* Reads everything the child wrote until it exits; returns its status. */
static int collect(pid_t pid, int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r > 0 && n + (size_t)r < cap - 1) {
            n += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
    buf[n] = '\0';
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    child = 0;
    return status;
}

static void test_help_prints_usage_and_exits_zero(void **state)
{
    (void)state;
    char *args[] = {"admin", "--help", NULL};
    int fd;
    child = spawn(args, &fd);
    char out[4096];
    int st = collect(child, fd, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(out, "usage: clipper run admin"));
    assert_non_null(strstr(out, "--nats URL"));
    assert_non_null(strstr(out, "--prefix P"));
}

static void test_unknown_option_exits_two_with_an_error(void **state)
{
    (void)state;
    char *args[] = {"admin", "--frobnicate", NULL};
    int fd;
    child = spawn(args, &fd);
    char out[4096];
    int st = collect(child, fd, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_non_null(strstr(out, "unknown argument '--frobnicate'"));
}

static void test_unreachable_bus_exits_one_naming_the_url(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", cl_test_free_port());
    char *args[] = {"admin", "--nats", url, NULL};
    int fd;
    child = spawn(args, &fd);
    char out[4096];
    int st = collect(child, fd, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char want[128];
    snprintf(want, sizeof(want), "cannot reach nats-server at %s", url);
    if (strstr(out, want) == NULL)
        fail_msg("output does not say '%s':\n%s", want, out);
}

/* Runs the admin, waits until it answers ping, stops it with sig. */
static void serve_then_stop_with(int sig, const char *prefix)
{
    char *args[] = {"admin", "--nats", cl_test_srv.url, "--prefix", (char *)prefix, NULL};
    int fd;
    child = spawn(args, &fd);
    cl_bus *bus = NULL;
    assert_int_equal(cl_test_bus_connect(&bus, &cl_test_srv, prefix), 0);
    cl_err err;
    char subject[CL_SUBJECT_MAX];
    assert_int_equal(cl_subj_admin(subject, prefix, "ping", &err), CL_OK);
    bool answered = false;
    for (int i = 0; i < 100 && !answered; i++) {
        cl_msg *reply = NULL;
        if (cl_bus_request(bus, subject, "", 0, 500, &reply) == CL_OK) {
            answered = strstr(cl_msg_data(reply), "\"PONG\"") != NULL;
            cl_msg_free(reply);
        } else {
            cl_sleep_ms(50);
        }
    }
    cl_bus_free(bus);
    assert_true(answered);
    kill(child, sig);
    char out[16384];
    int st = collect(child, fd, out, sizeof(out));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("admin did not exit cleanly (status %d):\n%s", st, out);
    assert_non_null(strstr(out, "stopping"));
}

static void test_serves_commands_and_exits_cleanly_on_sigterm(void **state)
{
    (void)state;
    serve_then_stop_with(SIGTERM, "mainterm");
}

static void test_serves_commands_and_exits_cleanly_on_sigint(void **state)
{
    (void)state;
    serve_then_stop_with(SIGINT, "mainint");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_help_prints_usage_and_exits_zero, teardown),
        cmocka_unit_test_teardown(test_unknown_option_exits_two_with_an_error, teardown),
        cmocka_unit_test_teardown(test_unreachable_bus_exits_one_naming_the_url, teardown),
        cmocka_unit_test_teardown(test_serves_commands_and_exits_cleanly_on_sigterm, teardown),
        cmocka_unit_test_teardown(test_serves_commands_and_exits_cleanly_on_sigint, teardown),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
