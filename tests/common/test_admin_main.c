/* Process-level tests of the admin's entry point (cl_admin_main, run by
 * admin_runner): options, a clear error when the bus is unreachable,
 * serving commands, and a clean exit on SIGTERM and SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <curl/curl.h>

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
    assert_non_null(strstr(out, "--http-port N"));
    assert_non_null(strstr(out, "--http-host H"));
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

static void test_bad_http_options_exit_two_with_a_clear_error(void **state)
{
    (void)state;
    const char *const bad[][2] = {{"--http-port", "abc"}, {"--http-port", "70000"},
                                  {"--http-port", "-2"}, {"--http-host", ""}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *args[] = {"admin", (char *)bad[i][0], (char *)bad[i][1], NULL};
        int fd;
        child = spawn(args, &fd);
        char out[4096];
        int st = collect(child, fd, out, sizeof(out));
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
        char want[128];
        snprintf(want, sizeof(want), "error: %s needs", bad[i][0]);
        if (strstr(out, want) == NULL || strstr(out, "usage: clipper run admin") == NULL)
            fail_msg("%s '%s': unclear error:\n%s", bad[i][0], bad[i][1], out);
    }
    /* The value may not be missing either. */
    char *args[] = {"admin", "--http-port", NULL};
    int fd;
    child = spawn(args, &fd);
    char out[4096];
    int st = collect(child, fd, out, sizeof(out));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_non_null(strstr(out, "--http-port needs a port number"));
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    strncat(ud, p, size * n < 63 ? size * n : 63);
    return size * n;
}

static void test_serves_the_management_rest_on_the_port_it_logs(void **state)
{
    (void)state;
    char *args[] = {"admin", "--nats", cl_test_srv.url, "--prefix", "mainrest",
                    "--http-host", "127.0.0.1", "--http-port", "0", NULL};
    int fd;
    child = spawn(args, &fd);
    /* Read the log until it names the bound port. */
    static const char mark[] = "management REST on http://127.0.0.1:";
    char out[16384] = "";
    size_t n = 0;
    const char *at = NULL;
    uint64_t until = cl_mono_us() + 20000000u;
    while ((at = strstr(out, mark)) == NULL && cl_mono_us() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) == 1) {
            ssize_t r = read(fd, out + n, sizeof(out) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            out[n] = '\0';
        }
    }
    if (at == NULL)
        fail_msg("the admin did not log its management REST port:\n%s", out);
    int port = atoi(at + strlen(mark));
    assert_true(port > 0);
    char url[96], body[64] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/ping", port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    kill(child, SIGTERM);
    int st = collect(child, fd, out + n, sizeof(out) - n);
    if (rc != CURLE_OK || status != 200 || strcmp(body, "PONG") != 0)
        fail_msg("GET /admin/ping: %s, status %ld, body '%s'", curl_easy_strerror(rc), status,
                 body);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_a_taken_http_port_exits_one_naming_it(void **state)
{
    (void)state;
    int port = cl_test_free_port();
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    /* The first admin holds the port; a second cannot take it. */
    char *args1[] = {"admin", "--nats", cl_test_srv.url, "--prefix", "maintaken",
                     "--http-host", "127.0.0.1", "--http-port", port_s, NULL};
    int fd1;
    pid_t first = spawn(args1, &fd1);
    bool listening = false;
    for (int i = 0; i < 200 && !listening; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        listening = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(s);
        if (!listening)
            cl_sleep_ms(50);
    }
    char *args2[] = {"admin", "--nats", cl_test_srv.url, "--prefix", "maintaken",
                     "--http-host", "127.0.0.1", "--http-port", port_s, NULL};
    int fd2;
    child = spawn(args2, &fd2);
    char out[8192];
    int st = collect(child, fd2, out, sizeof(out));
    kill(first, SIGTERM);
    char out1[8192];
    collect(first, fd1, out1, sizeof(out1));
    assert_true(listening);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char want[96];
    snprintf(want, sizeof(want), "cannot serve the management REST on 127.0.0.1:%d", port);
    if (strstr(out, want) == NULL || strstr(out, "--http-port") == NULL)
        fail_msg("unclear error:\n%s", out);
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
    /* No HTTP: port 1338 may be in use on a test machine. */
    char *args[] = {"admin", "--nats", cl_test_srv.url, "--prefix", (char *)prefix,
                    "--http-port", "-1", NULL};
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
    assert_non_null(strstr(out, "management REST disabled"));
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
        cmocka_unit_test_teardown(test_bad_http_options_exit_two_with_a_clear_error, teardown),
        cmocka_unit_test_teardown(test_unreachable_bus_exits_one_naming_the_url, teardown),
        cmocka_unit_test_teardown(test_serves_the_management_rest_on_the_port_it_logs, teardown),
        cmocka_unit_test_teardown(test_a_taken_http_port_exits_one_naming_it, teardown),
        cmocka_unit_test_teardown(test_serves_commands_and_exits_cleanly_on_sigterm, teardown),
        cmocka_unit_test_teardown(test_serves_commands_and_exits_cleanly_on_sigint, teardown),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
