/* The frontend's HTTP doors under connection floods and with requests
 * whose body length is ambiguous: a real nats-server, frontends
 * in-process, raw TCP clients (tests/harness/cl_test_http.h) playing
 * several client addresses (127.0.0.1, 127.0.0.2, ...).
 *
 * The app "nolink" has no model, so the frontend answers its queries at
 * once with the default output: a good query needs no router here.
 *
 * The probe that motivated these found that about 1 022 idle connections
 * from one address took the query port down for up to 300 s: the door
 * had libmicrohttpd's default limit (1 020), stopped accepting at it, and
 * closed idle connections only after 300 s. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_frontend.h"
#include "cl_kv.h"
#include "cl_state.h"
#include "cl_test_http.h"
#include "cl_test_nats.h"

#define PREFIX "fehttp"
#define QUERY "POST /nolink/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" \
              "Content-Length: 16\r\nConnection: close\r\n\r\n{\"input\": [1.0]}"

static struct {
    cl_test_nats srv;
    cl_bus *bus;    /* the frontends' */
    cl_bus *client; /* the test's */
    cl_kv *kv;
} W;

static cl_frontend *fe;
static int fds[4096];
static int n_fds;

static int group_setup(void **state)
{
    (void)state;
    memset(&W, 0, sizeof(W));
    cl_test_raise_nofile();
    if (cl_test_nats_start(&W.srv) != 0 || cl_test_bus_connect(&W.bus, &W.srv, PREFIX) != 0 ||
        cl_test_bus_connect_kv(&W.client, &W.kv, &W.srv, PREFIX) != 0)
        return -1;
    char key[CL_KEY_MAX];
    cl_err err;
    static const char app[] = "{\"name\":\"nolink\",\"input_type\":\"doubles\",\"default_output\":"
                              "\"DEFAULT\",\"latency_slo_micros\":2000000,\"linked_models\":[]}";
    if (cl_key_app(key, "nolink", &err) != CL_OK ||
        cl_kv_put(W.kv, key, app, strlen(app), NULL, &err) != CL_OK) {
        fprintf(stderr, "cannot register the app: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cl_kv_free(W.kv);
    cl_bus_free(W.client);
    cl_bus_free(W.bus);
    cl_test_nats_stop(&W.srv);
    return 0;
}

static void start(const cl_frontend_opts *o)
{
    cl_err err;
    if (cl_frontend_start(&fe, W.bus, o, &err) != CL_OK)
        fail_msg("frontend: %s", err.msg);
}

/* The defaults of 'clipper run frontend', on free ports of 127.0.0.1. */
static void opts_default(cl_frontend_opts *o)
{
    cl_frontend_opts_init(o);
    o->http_host = "127.0.0.1";
    o->http_port = 0;
    o->metrics_port = 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < n_fds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    n_fds = 0;
    cl_frontend_free(fe);
    fe = NULL;
    return 0;
}

static int port(void)
{
    return cl_frontend_http_port(fe);
}

/* Opens n idle connections from address from, kept in fds. */
static void open_idle(const char *from, int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(n_fds < (int)(sizeof(fds) / sizeof(fds[0])));
        int fd = cl_test_tcp_connect(from, "127.0.0.1", port(), 2000);
        if (fd < 0)
            fail_msg("connection %d from %s could not be opened", i, from);
        fds[n_fds++] = fd;
    }
}

/* Waits (up to timeout_ms) until the server has closed want of fds[from..to);
 * returns how many it closed. Closed ones are closed here too (set to -1). */
static int closed_by_server(int from, int to, int want, int timeout_ms)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000;
    int closed = 0;
    for (;;) {
        for (int i = from; i < to; i++) {
            if (fds[i] >= 0 && cl_test_wait_closed(fds[i], 0) >= 0) {
                close(fds[i]);
                fds[i] = -1;
                closed++;
            }
        }
        if (closed >= want || cl_mono_us() >= until)
            return closed;
        usleep(20000);
    }
}

static void expect_default_answer(const cl_test_http_reply *r)
{
    if (r->status != 200 || strstr(r->body, "\"default\":true") == NULL)
        fail_msg("expected the app's default, got %d %s", r->status, r->body);
}

/* The value of the Prometheus sample line that starts with prefix, or -1. */
static double scrape(const char *prefix)
{
    cl_test_http_reply r;
    int status = cl_test_http_raw(NULL, cl_frontend_metrics_port(fe),
                                  "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                                  &r, 5000);
    assert_int_equal(status, 200);
    for (const char *l = r.body; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, strlen(prefix)) == 0)
            return atof(l + strlen(prefix));
    return -1;
}

/* ---- floods -------------------------------------------------------------- */

static void test_idle_flood_from_one_address_is_refused_and_others_are_served(void **state)
{
    (void)state;
    cl_frontend_opts o;
    opts_default(&o);
    start(&o);
    /* More idle connections from one address than its default limit (1024)
     * allows, and more than libmicrohttpd's own default (1020). */
    enum { PER_ADDRESS = 1024, FLOOD = 1400 };
    uint64_t t0 = cl_mono_us();
    open_idle("127.0.0.1", FLOOD);
    long opened_ms = (long)((cl_mono_us() - t0) / 1000);
    /* (a) every connection over the limit is closed promptly... */
    int refused = closed_by_server(0, FLOOD, FLOOD - PER_ADDRESS, 3000);
    long refused_ms = (long)((cl_mono_us() - t0) / 1000);
    print_message("%d idle connections from 127.0.0.1 opened in %ld ms; the server closed %d of "
                  "them within %ld ms of the first\n",
                  FLOOD, opened_ms, refused, refused_ms);
    assert_int_equal(refused, FLOOD - PER_ADDRESS);
    /* ...and those within it are kept (no more are closed). */
    assert_int_equal(closed_by_server(0, FLOOD, 1, 300), 0);

    /* One more from that address that asks something is told why. */
    cl_test_http_reply r;
    uint64_t t1 = cl_mono_us();
    assert_int_equal(cl_test_http_raw("127.0.0.1", port(), QUERY, &r, 3000), 503);
    print_message("a query on connection %d from 127.0.0.1: %d in %ld ms: %s\n", FLOOD + 1,
                  r.status, (long)((cl_mono_us() - t1) / 1000), r.body);
    assert_non_null(strstr(r.body, "\"error\":\"Service unavailable\""));
    assert_non_null(strstr(r.body, "connections"));

    /* (b) a good query from another address is answered at once. */
    t1 = cl_mono_us();
    cl_test_http_raw("127.0.0.2", port(), QUERY, &r, 2000);
    print_message("a query from 127.0.0.2 meanwhile: %d in %ld ms\n", r.status,
                  (long)((cl_mono_us() - t1) / 1000));
    expect_default_answer(&r);

    /* The refusals are counted in the Prometheus metrics. */
    double counted = scrape("clipper_http_connections_refused_total{door=\"query\"} ");
    print_message("clipper_http_connections_refused_total{door=\"query\"} %.0f\n", counted);
    assert_true(counted >= FLOOD - PER_ADDRESS + 1);
}

static void test_idle_connections_are_closed_after_the_idle_timeout(void **state)
{
    (void)state;
    cl_frontend_opts o;
    opts_default(&o);
    o.http_idle_timeout_s = 2;
    start(&o);
    uint64_t t0 = cl_mono_us();
    open_idle("127.0.0.1", 3);
    /* A keep-alive connection that asked once, then went quiet. */
    int fd = cl_test_tcp_connect("127.0.0.1", "127.0.0.1", port(), 2000);
    assert_true(fd >= 0);
    fds[n_fds++] = fd;
    cl_test_http_reply r;
    cl_test_http_on(fd,
                    "POST /nolink/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n"
                    "{\"input\": [1.0]}",
                    &r, 2000);
    expect_default_answer(&r);
    assert_null(strstr(r.head, "Connection: close"));
    for (int i = 0; i < n_fds; i++) {
        int ms = cl_test_wait_closed(fds[i], 6000);
        long since = (long)((cl_mono_us() - t0) / 1000);
        print_message("connection %d closed by the server %ld ms after it opened\n", i, since);
        assert_true(ms >= 0);
        assert_true(since >= 1500 && since <= 4500);
    }
    /* The door serves as before. */
    cl_test_http_raw("127.0.0.1", port(), QUERY, &r, 2000);
    expect_default_answer(&r);
}

static void test_over_the_total_limit_connections_wait_and_are_served_as_idle_ones_go(void **state)
{
    (void)state;
    cl_frontend_opts o;
    opts_default(&o);
    o.http_max_connections = 40;
    o.http_max_per_address = 0;
    o.http_idle_timeout_s = 2;
    start(&o);
    /* Forty clients hold every connection and say nothing. */
    char from[32];
    uint64_t t0 = cl_mono_us();
    for (int i = 0; i < 40; i++) {
        snprintf(from, sizeof(from), "127.0.1.%d", i + 1);
        open_idle(from, 1);
    }
    cl_frontend_door_stats st;
    for (int i = 0; i < 100 && cl_frontend_query_door_stats(fe, &st) && st.connections < 40; i++)
        usleep(10000);
    assert_int_equal(st.connections, 40);
    assert_int_equal(st.max_connections, 40);
    /* A good client is not refused: it waits in the listen backlog and is
     * served once the idle ones time out (not after Clipper's 300 s). */
    cl_test_http_reply r;
    cl_test_http_raw("127.0.0.2", port(), QUERY, &r, 8000);
    long ms = (long)((cl_mono_us() - t0) / 1000);
    print_message("with 40 of 40 connections idle, a query from 127.0.0.2 was answered %d "
                  "after %ld ms\n",
                  r.status, ms);
    expect_default_answer(&r);
    assert_true(ms >= 1500 && ms <= 5000);
    assert_int_equal(closed_by_server(0, n_fds, 40, 3000), 40);
}

/* The door counts connections per address in a table of its own: its
 * counts must stay exact while many addresses come and go. */
static void test_per_address_counts_stay_exact_as_many_addresses_come_and_go(void **state)
{
    (void)state;
    enum { ADDRS = 300 };
    cl_frontend_opts o;
    opts_default(&o);
    o.http_max_connections = 2048;
    o.http_max_per_address = 2;
    start(&o);
    char from[ADDRS][32];
    for (int a = 0; a < ADDRS; a++) {
        snprintf(from[a], sizeof(from[a]), "127.0.%d.%d", 2 + a / 200, 1 + a % 200);
        open_idle(from[a], 2);
    }
    cl_frontend_door_stats st;
    for (int i = 0; i < 1000 && cl_frontend_query_door_stats(fe, &st) &&
                    st.connections < 2 * ADDRS;
         i++)
        usleep(10000);
    assert_int_equal(st.connections, 2 * ADDRS);
    assert_int_equal(st.refused, 0);
    /* Every other address goes away. */
    for (int a = 0; a < ADDRS; a += 2) {
        close(fds[2 * a]);
        close(fds[2 * a + 1]);
        fds[2 * a] = fds[2 * a + 1] = -1;
    }
    /* (up to 10 s: the door sees the closes as the machine lets it) */
    for (int i = 0; i < 1000 && cl_frontend_query_door_stats(fe, &st) && st.connections > ADDRS;
         i++)
        usleep(10000);
    assert_int_equal(st.connections, ADDRS);
    /* Those that left may ask again; those that stayed are at their limit. */
    int served = 0, refused = 0;
    for (int a = 0; a < ADDRS; a++) {
        cl_test_http_reply r;
        int status = cl_test_http_raw(from[a], port(), QUERY, &r, 3000);
        if (status != (a % 2 == 0 ? 200 : 503))
            fail_msg("a query from %s (%s): %d %s", from[a],
                     a % 2 == 0 ? "no connection open" : "two open", status, r.body);
        served += status == 200;
        refused += status == 503;
    }
    print_message("%d addresses: %d with no connection open were served, %d with two were "
                  "refused\n",
                  ADDRS, served, refused);
    cl_frontend_query_door_stats(fe, &st);
    assert_int_equal(st.refused, ADDRS / 2);
}

static void test_options_are_validated_with_clear_errors(void **state)
{
    (void)state;
    static const struct {
        const char *opt, *value, *says;
    } bad[] = {
        {"--http-max-connections", "0", "--http-max-connections needs a number of connections "
                                        "from 1 to 1048576 (got '0')"},
        {"--http-max-connections", "lots", "(got 'lots')"},
        {"--http-max-per-address", "-1", "--http-max-per-address needs a number of connections "
                                         "from 0 (no limit) to 1048576 (got '-1')"},
        {"--http-idle-timeout", "0", "--http-idle-timeout needs a number of seconds from 1 to "
                                     "3600 (got '0')"},
        {"--http-idle-timeout", "3601", "(got '3601')"},
    };
    char path[] = "/tmp/fe-http-limits-XXXXXX";
    int out = mkstemp(path);
    assert_true(out >= 0);
    unlink(path);
    int saved = dup(2);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ftruncate(out, 0), 0);
        lseek(out, 0, SEEK_SET);
        fflush(stderr);
        dup2(out, 2);
        char *argv[] = {"frontend", (char *)bad[i].opt, (char *)bad[i].value, NULL};
        int rc = cl_frontend_main(3, argv);
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

    /* A limit the process's open files cannot hold is refused at start,
     * naming the option; the default would have been lowered instead. */
    cl_frontend_opts o;
    opts_default(&o);
    o.http_max_connections = 1u << 20;
    cl_err err;
    cl_frontend *big = NULL;
    assert_int_not_equal(cl_frontend_start(&big, W.bus, &o, &err), CL_OK);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "--http-max-connections 1048576"));
    assert_non_null(strstr(err.msg, "ulimit -n"));
}

/* ---- ambiguous body lengths ---------------------------------------------- */

static void test_ambiguous_body_lengths_are_refused_with_400(void **state)
{
    (void)state;
    cl_frontend_opts o;
    opts_default(&o);
    start(&o);
    cl_test_http_reply r;
    /* Two lengths: libmicrohttpd reads the first; a proxy in front may
     * have read the second, and the rest becomes "another request". */
    static const char two[] = "POST /nolink/predict HTTP/1.1\r\nHost: t\r\n"
                              "Content-Length: 16\r\nContent-Length: 5\r\n\r\n"
                              "{\"input\": [1.0]}";
    assert_int_equal(cl_test_http_raw(NULL, port(), two, &r, 3000), 400);
    print_message("two Content-Length: %d %s\n", r.status, r.body);
    assert_non_null(strstr(r.body, "\"error\":\"Bad request\""));
    assert_non_null(strstr(r.body, "Content-Length"));
    assert_non_null(strstr(r.head, "Connection: close"));
    assert_non_null(strstr(r.head, "Content-Type: application/json"));

    /* A length and chunked: libmicrohttpd follows chunked, a proxy may not. */
    static const char both[] = "POST /nolink/predict HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "10\r\n{\"input\": [1.0]}\r\n0\r\n\r\n";
    assert_int_equal(cl_test_http_raw(NULL, port(), both, &r, 3000), 400);
    print_message("Content-Length and chunked: %d %s\n", r.status, r.body);
    assert_non_null(strstr(r.body, "Transfer-Encoding"));

    /* A coding libmicrohttpd cannot undo: it would read until the close. */
    static const char gz[] = "POST /nolink/predict HTTP/1.1\r\nHost: t\r\n"
                             "Transfer-Encoding: gzip\r\n\r\n";
    assert_int_equal(cl_test_http_raw(NULL, port(), gz, &r, 3000), 501);
    print_message("Transfer-Encoding: gzip: %d %s\n", r.status, r.body);
    assert_non_null(strstr(r.body, "gzip"));

    /* Chunked twice. */
    static const char te2[] = "POST /nolink/predict HTTP/1.1\r\nHost: t\r\n"
                              "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "10\r\n{\"input\": [1.0]}\r\n0\r\n\r\n";
    assert_int_equal(cl_test_http_raw(NULL, port(), te2, &r, 3000), 400);

    /* Not ambiguous: the same length twice, or either framing alone. */
    static const char same[] = "POST /nolink/predict HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 16\r\nContent-Length: 16\r\n"
                               "Connection: close\r\n\r\n{\"input\": [1.0]}";
    cl_test_http_raw(NULL, port(), same, &r, 3000);
    expect_default_answer(&r);
    cl_test_http_raw(NULL, port(), QUERY, &r, 3000);
    expect_default_answer(&r);
    static const char chunked[] = "POST /nolink/predict HTTP/1.1\r\nHost: t\r\n"
                                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                  "10\r\n{\"input\": [1.0]}\r\n0\r\n\r\n";
    cl_test_http_raw(NULL, port(), chunked, &r, 3000);
    expect_default_answer(&r);

    /* The metrics port goes through the same door. */
    static const char scrape2[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n"
                                  "Content-Length: 0\r\nContent-Length: 7\r\n\r\n";
    assert_int_equal(cl_test_http_raw(NULL, cl_frontend_metrics_port(fe), scrape2, &r, 3000),
                     400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_idle_flood_from_one_address_is_refused_and_others_are_served, teardown),
        cmocka_unit_test_teardown(test_idle_connections_are_closed_after_the_idle_timeout,
                                  teardown),
        cmocka_unit_test_teardown(
            test_over_the_total_limit_connections_wait_and_are_served_as_idle_ones_go, teardown),
        cmocka_unit_test_teardown(
            test_per_address_counts_stay_exact_as_many_addresses_come_and_go, teardown),
        cmocka_unit_test_teardown(test_ambiguous_body_lengths_are_refused_with_400, teardown),
        cmocka_unit_test_teardown(test_options_are_validated_with_clear_errors, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
