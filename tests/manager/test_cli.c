/* Integration tests of the clipper program: help texts, clear errors, and
 * 'clipper start' bringing a whole cluster up on free ports and taking it
 * down again on SIGINT without leaving a process behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "cl_clock.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"

#ifndef CLIPPER
#error "CLIPPER must name the clipper program"
#endif

#define MAX_OUT 65536

typedef struct {
    int code; /* exit code, or 128 + signal */
    char out[MAX_OUT];
    char err[MAX_OUT];
} result;

static void slurp(FILE *f, char *buf)
{
    rewind(f);
    size_t n = fread(buf, 1, MAX_OUT - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs clipper with the NULL-terminated arguments (after "clipper"), with
 * extra environment "K=V" entries (NULL-terminated, may be NULL), killing
 * it after timeout_ms. */
static void run_env(result *r, const char *const *env, int timeout_ms, const char *const *args)
{
    const char *argv[32];
    int argc = 0;
    argv[argc++] = CLIPPER;
    for (int i = 0; args[i] != NULL && argc < 31; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    pid_t pid = cl_test_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fileno(out), STDOUT_FILENO);
        dup2(fileno(err), STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, STDIN_FILENO);
        for (int i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(CLIPPER, (char *const *)argv);
        _exit(127);
    }
    r->code = cl_test_wait_exit(pid, timeout_ms);
    if (r->code < 0) {
        cl_test_kill(pid);
        fclose(out);
        fclose(err);
        fail_msg("clipper %s did not finish within %d ms", args[0], timeout_ms);
    }
    slurp(out, r->out);
    slurp(err, r->err);
}

#define RUN(r, timeout, ...) \
    run_env((r), NULL, (timeout), (const char *const[]){__VA_ARGS__, NULL})

static result *new_result(void)
{
    result *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    return r;
}

/* ---- help and usage -------------------------------------------------------- */

static void test_help_exits_0_and_lists_the_commands(void **state)
{
    (void)state;
    result *r = new_result();
    RUN(r, 5000, "--help");
    assert_int_equal(r->code, 0);
    const char *cmds[] = {"start", "run", "admin", "predict", "version"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        assert_non_null(strstr(r->out, cmds[i]));
    free(r);
}

static void test_every_subcommand_help_exits_0(void **state)
{
    (void)state;
    const char *const cmds[][3] = {
        {"start", "--help", NULL},   {"run", "--help", NULL},
        {"admin", "--help", NULL},   {"predict", "--help", NULL},
        {"version", "--help", NULL}, {"run", "admin", "--help"},
        {"run", "router", "--help"}, {"run", "frontend", "--help"},
        {"run", "replica", "--help"}, {"run", "manager", "--help"},
    };
    result *r = new_result();
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *args[4] = {cmds[i][0], cmds[i][1], cmds[i][2], NULL};
        run_env(r, NULL, 5000, args);
        if (r->code != 0 || strstr(r->out, "usage") == NULL)
            fail_msg("clipper %s %s %s: exit %d, stdout:\n%s\nstderr:\n%s", cmds[i][0],
                     cmds[i][1], cmds[i][2] ? cmds[i][2] : "", r->code, r->out, r->err);
    }
    free(r);
}

static void test_version_prints_the_version(void **state)
{
    (void)state;
    result *r = new_result();
    RUN(r, 5000, "version");
    assert_int_equal(r->code, 0);
    assert_non_null(strstr(r->out, "clipper 0."));
    free(r);
}

static void test_unknown_subcommand_exits_2_with_a_message(void **state)
{
    (void)state;
    result *r = new_result();
    RUN(r, 5000, "frobnicate");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "unknown command 'frobnicate'"));
    RUN(r, 5000, "run", "toaster");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "unknown actor 'toaster'"));
    RUN(r, 5000, "start", "--bogus");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "unknown argument '--bogus'"));
    RUN(r, 5000, "start", "--http-port", "99999");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "--http-port must be a whole number"));
    RUN(r, 5000, "start", "--admin-port", "abc");
    assert_int_equal(r->code, 2);
    if (strstr(r->err, "--admin-port must be a whole number from -1 to 65535, got 'abc'") == NULL)
        fail_msg("unclear error: %s", r->err);
    RUN(r, 5000, "start", "--admin-port", "0");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "--admin-port needs a port from 1 to 65535, or -1 for none"));
    RUN(r, 5000, "start", "--admin-port", "1337");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "--admin-port 1337 is also the HTTP port"));
    RUN(r, 5000, "start", "--bus-tls", "maybe");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "--bus-tls takes on or off, got 'maybe'"));
    RUN(r, 5000, "start", "--bus-tls", "off", "--nats", "nats://127.0.0.1:1");
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "--bus-tls applies to the nats-server clipper start runs"));
    free(r);
}

/* ---- admin and predict errors ------------------------------------------------ */

static void test_admin_ping_with_unreachable_bus_says_so(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", cl_test_free_port());
    result *r = new_result();
    RUN(r, 10000, "admin", "ping", "--nats", url);
    assert_int_equal(r->code, 1);
    if (strstr(r->err, "cannot reach nats-server") == NULL || strstr(r->err, url) == NULL)
        fail_msg("unclear error: %s", r->err);
    assert_string_equal(r->out, "");
    free(r);
}

static void test_admin_body_that_is_not_json_is_refused_before_sending(void **state)
{
    (void)state;
    result *r = new_result();
    /* No bus at this URL: the body must be rejected before connecting. */
    RUN(r, 5000, "admin", "add_app", "{\"name\": ", "--nats", "nats://127.0.0.1:1");
    assert_int_equal(r->code, 1);
    assert_non_null(strstr(r->err, "not valid JSON"));
    assert_null(strstr(r->err, "cannot reach"));
    free(r);
}

static void test_admin_and_predict_without_actors_say_nobody_answers(void **state)
{
    (void)state;
    cl_test_nats srv;
    assert_int_equal(cl_test_nats_start(&srv), 0);
    result *r = new_result();
    RUN(r, 10000, "admin", "ping", "--nats", srv.url, "--prefix", "lonely");
    int admin_code = r->code;
    char *admin_err = strdup(r->err);
    RUN(r, 10000, "predict", "app1", "{\"input\": [1.0]}", "--nats", srv.url, "--prefix",
        "lonely");
    cl_test_nats_stop(&srv);
    assert_int_equal(admin_code, 1);
    if (strstr(admin_err, "no admin is running") == NULL)
        fail_msg("unclear error: %s", admin_err);
    free(admin_err);
    assert_int_equal(r->code, 1);
    if (strstr(r->err, "no frontend is running") == NULL)
        fail_msg("unclear error: %s", r->err);
    free(r);
}

static void test_start_with_nats_port_taken_says_so(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t alen = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    char port[16], http[16], admin[16], dir[] = "/tmp/cl-cli-test-XXXXXX";
    snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
    snprintf(http, sizeof(http), "%d", cl_test_free_port());
    snprintf(admin, sizeof(admin), "%d", cl_test_free_port());
    assert_non_null(mkdtemp(dir));
    result *r = new_result();
    RUN(r, 10000, "start", "--nats-port", port, "--http-port", http, "--admin-port", admin,
        "--data-dir", dir);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(r->code, 1);
    if (strstr(r->err, "already in use") == NULL || strstr(r->err, port) == NULL)
        fail_msg("unclear error: %s", r->err);
    free(r);
}

static void test_start_with_admin_port_taken_says_so(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t alen = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    char admin[16], http[16], nport[16], dir[] = "/tmp/cl-cli-test-XXXXXX";
    snprintf(admin, sizeof(admin), "%d", ntohs(a.sin_port));
    snprintf(http, sizeof(http), "%d", cl_test_free_port());
    snprintf(nport, sizeof(nport), "%d", cl_test_free_port());
    assert_non_null(mkdtemp(dir));
    result *r = new_result();
    RUN(r, 10000, "start", "--nats-port", nport, "--http-port", http, "--admin-port", admin,
        "--metrics-port", "-1", "--data-dir", dir);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(r->code, 1);
    char want[128];
    /* The management REST listens on 127.0.0.1 unless --admin-host says otherwise. */
    snprintf(want, sizeof(want), "the admin port %s on 127.0.0.1 is already in use", admin);
    if (strstr(r->err, want) == NULL || strstr(r->err, "--admin-port N") == NULL)
        fail_msg("unclear error: %s", r->err);
    free(r);
}

static void test_start_without_nats_server_program_says_so(void **state)
{
    (void)state;
    char http[16], nport[16], dir[] = "/tmp/cl-cli-test-XXXXXX";
    snprintf(http, sizeof(http), "%d", cl_test_free_port());
    snprintf(nport, sizeof(nport), "%d", cl_test_free_port());
    assert_non_null(mkdtemp(dir));
    result *r = new_result();
    const char *env[] = {"CLIPPER_NATS_SERVER=/nonexistent/nats-server", NULL};
    const char *args[] = {"start", "--nats-port", nport, "--http-port", http, "--admin-port",
                          "-1", "--data-dir", dir, NULL};
    run_env(r, env, 10000, args);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(r->code, 1);
    if (strstr(r->err, "cannot find the nats-server program") == NULL)
        fail_msg("unclear error: %s", r->err);
    free(r);
}

/* ---- a whole cluster --------------------------------------------------------- */

static int parent_of(int pid)
{
    char state;
    int ppid;
    return cl_test_proc_stat(pid, &state, &ppid, NULL, 0) ? ppid : -1;
}

/* Every process below root (children, grandchildren, ...). */
static int descendants(int root, int *out, int max)
{
    int n = 0;
    bool grew = true;
    while (grew) {
        grew = false;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            int pid = atoi(e->d_name);
            if (pid <= 0)
                continue;
            bool known = false;
            for (int i = 0; i < n && !known; i++)
                known = out[i] == pid;
            if (known)
                continue;
            int pp = parent_of(pid);
            bool below = pp == root;
            for (int i = 0; i < n && !below; i++)
                below = out[i] == pp;
            if (below && n < max) {
                out[n++] = pid;
                grew = true;
            }
        }
        if (d != NULL)
            closedir(d);
    }
    return n;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    strncat(ud, p, size * n < 63 ? size * n : 63);
    return size * n;
}

static bool alive(int pid)
{
    char state;
    int ppid;
    return cl_test_proc_stat(pid, &state, &ppid, NULL, 0) && state != 'Z';
}

static void test_start_reaches_ready_answers_ping_and_sigint_leaves_nothing(void **state)
{
    (void)state;
    char nport[16], http[16], admin[16], dir[] = "/tmp/cl-cli-test-XXXXXX", url[64];
    int np = cl_test_free_port();
    snprintf(nport, sizeof(nport), "%d", np);
    snprintf(http, sizeof(http), "%d", cl_test_free_port());
    snprintf(admin, sizeof(admin), "%d", cl_test_free_port());
    /* Its own nats-server: identities and TLS (docs/security.md). */
    snprintf(url, sizeof(url), "tls://127.0.0.1:%d", np);
    assert_non_null(mkdtemp(dir));
    char errpath[128];
    snprintf(errpath, sizeof(errpath), "%s.stderr", dir);

    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = cl_test_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(e, STDERR_FILENO);
        close(pipefd[0]);
        execl(CLIPPER, CLIPPER, "start", "--nats-port", nport, "--http-port", http,
              "--admin-port", admin, "--data-dir", dir, "--prefix", "clitest", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);

    /* Read stdout until the ready line (or the program ends). */
    char out[4096] = "";
    size_t len = 0;
    uint64_t until = cl_mono_us() + 90000000u;
    bool ready = false;
    while (!ready && cl_mono_us() < until) {
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        if (poll(&p, 1, 200) == 1) {
            ssize_t n = read(pipefd[0], out + len, sizeof(out) - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            out[len] = '\0';
            ready = strstr(out, "cluster ready") != NULL && strchr(out, '\n') != NULL;
        }
    }
    close(pipefd[0]);
    int kids[256];
    int nkids = descendants(pid, kids, 256);
    result *r = new_result();
    int router = 0;
    long rest_status = 0;
    char rest_body[64] = "";
    CURLcode rest_rc = CURLE_OK;
    if (ready) {
        /* The CLI connects as the cluster's operator identity. */
        RUN(r, 15000, "admin", "ping", "--nats", url, "--prefix", "clitest", "--data-dir", dir);
        /* The management REST answers on the port of the ready line. */
        char rest_url[96];
        snprintf(rest_url, sizeof(rest_url), "http://127.0.0.1:%s/admin/ping", admin);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, rest_url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, rest_body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        rest_rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rest_status);
        curl_easy_cleanup(c);
        /* An actor that dies is reported. */
        for (int i = 0; i < nkids && router == 0; i++) {
            char path[64];
            snprintf(path, sizeof(path), "/proc/%d/cmdline", kids[i]);
            size_t n = 0;
            char *cmd = cl_test_read_file(path, &n);
            if (cmd == NULL)
                continue;
            for (size_t k = 0; k + 1 < n; k++)
                if (cmd[k] == '\0')
                    cmd[k] = ' ';
            if (strstr(cmd, " run router ") != NULL)
                router = kids[i];
            free(cmd);
        }
        if (router > 0)
            kill(router, SIGKILL);
        cl_sleep_ms(1500);
    }

    kill(pid, SIGINT);
    int code = cl_test_wait_exit(pid, 40000);
    if (code < 0)
        cl_test_kill(pid);
    cl_sleep_ms(100);
    int left = 0;
    for (int i = 0; i < nkids; i++) {
        if (alive(kids[i])) {
            left++;
            kill(kids[i], SIGKILL);
        }
    }
    static char errtext[65536];
    errtext[0] = '\0';
    char *said_err = cl_test_read_file(errpath, NULL);
    if (said_err != NULL)
        snprintf(errtext, sizeof(errtext), "%s", said_err);
    free(said_err);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, errpath);
    assert_int_equal(system(cmd), 0);

    if (!ready)
        fail_msg("no 'cluster ready' line; stdout:\n%s\nstderr:\n%s", out, errtext);
    char want[256];
    snprintf(want, sizeof(want), "clipper: cluster ready nats=%s prefix=clitest query=http://", url);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, http));
    snprintf(want, sizeof(want), "query=http://127.0.0.1:%s admin=http://127.0.0.1:%s", http,
             admin);
    if (strstr(out, want) == NULL)
        fail_msg("the ready line does not say '%s':\n%s", want, out);
    if (rest_rc != CURLE_OK || rest_status != 200 || strcmp(rest_body, "PONG") != 0)
        fail_msg("GET /admin/ping on the admin port: %s, status %ld, body '%s'",
                 curl_easy_strerror(rest_rc), rest_status, rest_body);
    /* nats-server, admin, router, frontend, manager at least */
    if (nkids < 5)
        fail_msg("expected at least 5 processes under clipper start, found %d", nkids);
    if (r->code != 0 || strcmp(r->out, "PONG\n") != 0)
        fail_msg("admin ping: exit %d, stdout '%s', stderr '%s'", r->code, r->out, r->err);
    free(r);
    /* Its supervisor reports how it ended and restarts it. */
    char said[128];
    snprintf(said, sizeof(said), "clipper supervisor: router (pid %d, ran ", router);
    if (router == 0 || strstr(errtext, said) == NULL ||
        strstr(errtext, ") killed by signal 9 (Killed); restarting it") == NULL)
        fail_msg("the router's death was not reported (pid %d); stderr:\n%s", router, errtext);
    if (strstr(errtext, "clipper supervisor: router restarted (pid ") == NULL)
        fail_msg("the router was not restarted; stderr:\n%s", errtext);
    if (code < 0)
        fail_msg("clipper start did not stop within 40 s of SIGINT; stderr:\n%s", errtext);
    assert_int_equal(code, 0); /* exited by itself (128 + n: killed by signal n) */
    if (left != 0)
        fail_msg("%d of %d processes started by clipper start outlived it", left, nkids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_exits_0_and_lists_the_commands),
        cmocka_unit_test(test_every_subcommand_help_exits_0),
        cmocka_unit_test(test_version_prints_the_version),
        cmocka_unit_test(test_unknown_subcommand_exits_2_with_a_message),
        cmocka_unit_test(test_admin_ping_with_unreachable_bus_says_so),
        cmocka_unit_test(test_admin_body_that_is_not_json_is_refused_before_sending),
        cmocka_unit_test(test_admin_and_predict_without_actors_say_nobody_answers),
        cmocka_unit_test(test_start_with_nats_port_taken_says_so),
        cmocka_unit_test(test_start_with_admin_port_taken_says_so),
        cmocka_unit_test(test_start_without_nats_server_program_says_so),
        cmocka_unit_test(test_start_reaches_ready_answers_ping_and_sigint_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
