/* The management REST (actors/admin/admin_http.c) under many connections
 * and with requests whose body length is ambiguous: a real nats-server, a
 * real admin actor in-process, raw TCP clients (tests/harness/cl_test_http.h).
 *
 * The probe that motivated these found 3 980 of 5 000 concurrent pings
 * answered with nothing: the door ran a thread per connection, whose
 * libmicrohttpd accepts and at once closes every connection over its
 * limit (1 020 by default). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl_admin.h"
#include "cl_admin_http.h"
#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_test_http.h"
#include "cl_test_nats.h"

#define FLOOD 5000

static int test_counter;

static struct {
    char prefix[32];
    cl_bus *bus;
    cl_admin *admin;
    cl_admin_http *http;
    int port;
} fx;

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.prefix, sizeof(fx.prefix), "restlim%d", ++test_counter);
    if (cl_test_bus_connect(&fx.bus, &cl_test_srv, fx.prefix) != 0)
        return -1;
    cl_err err;
    if (cl_admin_start(&fx.admin, fx.bus, &err) != CL_OK) {
        fprintf(stderr, "admin start: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The door with the defaults 'clipper run admin' uses. */
static int setup_default(void **state)
{
    if (setup(state) != 0)
        return -1;
    cl_err err;
    if (cl_admin_http_start(&fx.http, fx.bus, "127.0.0.1", 0, &err) != CL_OK) {
        fprintf(stderr, "admin http start: %s\n", err.msg);
        return -1;
    }
    fx.port = cl_admin_http_port(fx.http);
    return fx.port > 0 ? 0 : -1;
}

/* A door with small limits: 5 per address, idle for 2 s. */
static int setup_small(void **state)
{
    if (setup(state) != 0)
        return -1;
    cl_admin_http_opts o;
    cl_admin_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.max_per_address = 5;
    o.idle_timeout_s = 2;
    cl_err err;
    if (cl_admin_http_start_with(&fx.http, fx.bus, &o, &err) != CL_OK) {
        fprintf(stderr, "admin http start: %s\n", err.msg);
        return -1;
    }
    fx.port = cl_admin_http_port(fx.http);
    return fx.port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cl_admin_http_free(fx.http);
    cl_admin_free(fx.admin);
    cl_bus_free(fx.bus);
    memset(&fx, 0, sizeof(fx));
    return 0;
}

/* ---- many connections at once ------------------------------------------ */

static void test_5000_concurrent_pings_are_all_answered(void **state)
{
    (void)state;
    /* Both ends of every connection are in this process. */
    long nofile = cl_test_raise_nofile();
    int n = FLOOD;
    if (nofile < 2L * FLOOD + 512) {
        n = (int)((nofile - 512) / 2);
        print_message("only %d connections fit this process's file limit (%ld)\n", n, nofile);
    }
    static const char req[] = "GET /admin/ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    uint64_t t0 = cl_mono_us();
    cl_test_http_flood_result r;
    cl_test_http_flood(fx.port, req, n, 200, 25000, &r);
    long ms = (long)((cl_mono_us() - t0) / 1000);
    print_message("%d concurrent pings: %d answered 200 (the slowest after %ld ms), %d other "
                  "(last %d), %d closed unanswered, %d timed out, %d not opened; %ld ms in all\n",
                  n, r.ok, r.slowest_ms, r.other, r.last_other, r.closed, r.timed_out,
                  r.not_opened, ms);
    assert_int_equal(r.not_opened, 0);
    assert_int_equal(r.closed, 0);
    assert_int_equal(r.timed_out, 0);
    assert_int_equal(r.ok, n);
    /* And the door still answers afterwards. */
    cl_test_http_reply rep;
    assert_int_equal(cl_test_http_raw(NULL, fx.port, req, &rep, 5000), 200);
    assert_string_equal(rep.body, "PONG");
}

static const char PING[] = "GET /admin/ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

static void test_per_address_limit_and_idle_timeout_apply(void **state)
{
    (void)state;
    int idle[5];
    uint64_t t0 = cl_mono_us();
    for (int i = 0; i < 5; i++) {
        idle[i] = cl_test_tcp_connect("127.0.0.1", "127.0.0.1", fx.port, 2000);
        assert_true(idle[i] >= 0);
    }
    /* Let the door count them before the sixth comes. */
    usleep(100000);
    cl_test_http_reply r;
    assert_int_equal(cl_test_http_raw("127.0.0.1", fx.port, PING, &r, 3000), 503);
    print_message("a sixth connection from 127.0.0.1: %d %s\n", r.status, r.body);
    assert_non_null(strstr(r.body, "Too many connections from your address"));
    assert_non_null(strstr(r.head, "Content-Type: application/json"));
    assert_int_equal(cl_test_http_raw("127.0.0.2", fx.port, PING, &r, 3000), 200);
    assert_string_equal(r.body, "PONG");
    for (int i = 0; i < 5; i++) {
        int ms = cl_test_wait_closed(idle[i], 6000);
        long since = (long)((cl_mono_us() - t0) / 1000);
        close(idle[i]);
        assert_true(ms >= 0);
        assert_true(since >= 1500 && since <= 4500);
    }
    /* The door forgets them once libmicrohttpd has cleaned them up, which
     * on a busy machine can come a moment after the client saw the close:
     * the address is served again within a second. */
    int status = 0;
    uint64_t until = cl_mono_us() + 1000000u;
    while ((status = cl_test_http_raw("127.0.0.1", fx.port, PING, &r, 3000)) != 200 &&
           cl_mono_us() < until)
        usleep(20000);
    assert_int_equal(status, 200);
}

static void test_options_are_validated_with_clear_errors(void **state)
{
    (void)state;
    static const struct {
        const char *opt, *value, *says;
    } bad[] = {
        {"--http-max-connections", "0", "--http-max-connections needs a number of connections "
                                        "from 1 to 1048576 (got '0')"},
        {"--http-max-per-address", "x", "--http-max-per-address needs a number of connections "
                                        "from 0 (no limit) to 1048576 (got 'x')"},
        {"--http-idle-timeout", "0", "--http-idle-timeout needs a number of seconds from 1 to "
                                     "3600 (got '0')"},
    };
    char path[] = "/tmp/admin-http-limits-XXXXXX";
    int out = mkstemp(path);
    assert_true(out >= 0);
    unlink(path);
    int saved = dup(2);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ftruncate(out, 0), 0);
        lseek(out, 0, SEEK_SET);
        fflush(stderr);
        dup2(out, 2);
        char *argv[] = {"admin", (char *)bad[i].opt, (char *)bad[i].value, NULL};
        int rc = cl_admin_main(3, argv);
        fflush(stderr);
        dup2(saved, 2);
        char text[4096] = {0};
        ssize_t n = pread(out, text, sizeof(text) - 1, 0);
        assert_true(n > 0);
        if (rc != 2 || strstr(text, bad[i].says) == NULL)
            fail_msg("%s %s: exit %d, said: %.300s", bad[i].opt, bad[i].value, rc, text);
    }
    close(saved);
    close(out);
}

/* ---- ambiguous body lengths --------------------------------------------- */

static void test_conflicting_content_lengths_are_refused_with_400(void **state)
{
    (void)state;
    cl_test_http_reply r;
    /* The first length covers the body, the second only "{}": which one a
     * proxy in front believed decides what the next request is. */
    static const char two[] = "POST /admin/get_all_applications HTTP/1.1\r\nHost: t\r\n"
                              "Content-Length: 17\r\nContent-Length: 2\r\n\r\n"
                              "{\"verbose\":false}";
    assert_int_equal(cl_test_http_raw(NULL, fx.port, two, &r, 5000), 400);
    assert_non_null(strstr(r.body, "Content-Length"));
    assert_non_null(strstr(r.head, "Connection: close"));

    static const char both[] = "POST /admin/get_all_applications HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 17\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "11\r\n{\"verbose\":false}\r\n0\r\n\r\n";
    assert_int_equal(cl_test_http_raw(NULL, fx.port, both, &r, 5000), 400);
    assert_non_null(strstr(r.body, "Transfer-Encoding"));

    /* The same length twice is not ambiguous, and either framing alone works. */
    static const char same[] = "POST /admin/get_all_applications HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 17\r\nContent-Length: 17\r\n"
                               "Connection: close\r\n\r\n{\"verbose\":false}";
    assert_int_equal(cl_test_http_raw(NULL, fx.port, same, &r, 5000), 200);
    assert_string_equal(r.body, "[]");
    static const char chunked[] = "POST /admin/get_all_applications HTTP/1.1\r\nHost: t\r\n"
                                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                  "11\r\n{\"verbose\":false}\r\n0\r\n\r\n";
    assert_int_equal(cl_test_http_raw(NULL, fx.port, chunked, &r, 5000), 200);
    assert_string_equal(r.body, "[]");
}

static int group_setup(void **state)
{
    cl_test_raise_nofile();
    return cl_test_nats_group_setup(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_5000_concurrent_pings_are_all_answered,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_conflicting_content_lengths_are_refused_with_400,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_per_address_limit_and_idle_timeout_apply,
                                        setup_small, teardown),
        cmocka_unit_test(test_options_are_validated_with_clear_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, cl_test_nats_group_teardown);
}
