/* Integration tests of connections, publish/subscribe and request/reply
 * (bus/bus.c) against a real nats-server. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"

static cl_bus *connect_bus(void)
{
    cl_bus *bus = NULL;
    assert_int_equal(cl_test_bus_connect(&bus, &cl_test_srv, NULL), 0);
    return bus;
}

static void test_connect_to_unreachable_url_names_the_url(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", cl_test_free_port());
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.url = url;
    o.connect_timeout_ms = 500;
    cl_bus *bus = NULL;
    cl_err err = {0};
    assert_int_equal(cl_bus_connect(&bus, &o, &err), CL_ERR_UNREACHABLE);
    assert_null(bus);
    assert_int_equal(err.code, CL_ERR_UNREACHABLE);
    if (strstr(err.msg, url) == NULL)
        fail_msg("message does not name %s: %s", url, err.msg);
}

/* A comma-separated list is several servers: the one that answers serves,
 * wherever it stands in the list (spaces after commas allowed). */
static void test_a_url_list_connects_to_the_server_that_answers(void **state)
{
    (void)state;
    char lists[2][200];
    int dead = cl_test_free_port();
    snprintf(lists[0], sizeof(lists[0]), "nats://127.0.0.1:%d,%s", dead, cl_test_srv.url);
    snprintf(lists[1], sizeof(lists[1]), "%s, nats://127.0.0.1:%d", cl_test_srv.url, dead);
    for (int i = 0; i < 2; i++) {
        cl_bus_opts o;
        cl_bus_opts_init(&o);
        o.url = lists[i];
        o.connect_timeout_ms = 500;
        cl_bus *bus = NULL;
        cl_err err = {0};
        if (cl_bus_connect(&bus, &o, &err) != CL_OK)
            fail_msg("%s: %s", lists[i], err.msg);
        assert_true(cl_bus_is_connected(bus));
        cl_bus_free(bus);
    }
}

static void test_connected_bus_reports_its_settings(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    assert_true(cl_bus_is_connected(bus));
    assert_string_equal(cl_bus_prefix(bus), CL_DEFAULT_PREFIX);
    assert_string_equal(cl_bus_url(bus), cl_test_srv.url);
    assert_true(cl_bus_max_payload(bus) == 1024 * 1024);
    cl_bus_free(bus);
    cl_bus_free(NULL);
}

typedef struct {
    pthread_mutex_t mu;
    int count;
    char last[64];
} inbox;

static void on_msg(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    inbox *in = closure;
    pthread_mutex_lock(&in->mu);
    in->count++;
    snprintf(in->last, sizeof(in->last), "%.*s", (int)cl_msg_len(msg),
             (const char *)cl_msg_data(msg));
    pthread_mutex_unlock(&in->mu);
    cl_msg_free(msg);
}

static int wait_count(inbox *in, int want, int timeout_ms)
{
    return cl_test_wait_count(&in->mu, &in->count, want, timeout_ms);
}

static void test_published_messages_reach_callback_subscribers(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    inbox in = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe(&sub, bus, "t.pubsub.*", NULL, on_msg, &in), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    for (int i = 0; i < 10; i++) {
        char body[16];
        int n = snprintf(body, sizeof(body), "m%d", i);
        assert_int_equal(cl_bus_publish(bus, "t.pubsub.x", body, (size_t)n), CL_OK);
    }
    assert_int_equal(cl_bus_publish(bus, "t.other", "no", 2), CL_OK);
    assert_int_equal(wait_count(&in, 10, 2000), 10);
    assert_string_equal(in.last, "m9");
    cl_sub_free(sub);
    /* After cl_sub_free no callback runs. */
    assert_int_equal(cl_bus_publish(bus, "t.pubsub.x", "late", 4), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    cl_sleep_ms(50);
    assert_int_equal(in.count, 10);
    cl_bus_free(bus);
}

static void test_pull_subscription_delivers_and_times_out(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&sub, bus, "t.pull", NULL), CL_OK);
    cl_msg *m = NULL;
    assert_int_equal(cl_sub_next(sub, &m, 0), CL_ERR_TIMEOUT);
    assert_int_equal(cl_sub_next(sub, &m, 50), CL_ERR_TIMEOUT);
    assert_int_equal(cl_bus_publish(bus, "t.pull", "hello", 5), CL_OK);
    assert_int_equal(cl_bus_publish(bus, "t.pull", "again", 5), CL_OK);
    assert_int_equal(cl_sub_next(sub, &m, 2000), CL_OK);
    assert_string_equal(cl_msg_subject(m), "t.pull");
    assert_int_equal(cl_msg_len(m), 5);
    assert_memory_equal(cl_msg_data(m), "hello", 5);
    assert_null(cl_msg_reply(m));
    cl_msg_free(m);
    cl_sleep_ms(50);
    assert_int_equal(cl_sub_pending(sub), 1);
    assert_int_equal(cl_sub_next(sub, &m, 0), CL_OK);
    cl_msg_free(m);
    cl_sub_free(sub);
    cl_sub_free(NULL);
    cl_bus_free(bus);
}

static void test_queue_group_delivers_each_message_once(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    inbox a = {.mu = PTHREAD_MUTEX_INITIALIZER}, b = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cl_sub *sa = NULL, *sb = NULL;
    assert_int_equal(cl_bus_subscribe(&sa, bus, "t.q", "workers", on_msg, &a), CL_OK);
    assert_int_equal(cl_bus_subscribe(&sb, bus, "t.q", "workers", on_msg, &b), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cl_bus_publish(bus, "t.q", "x", 1), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    uint64_t end = cl_mono_us() + 2000000;
    while (a.count + b.count < 100 && cl_mono_us() < end)
        cl_sleep_ms(5);
    cl_sleep_ms(50);
    assert_int_equal(a.count + b.count, 100);
    cl_sub_free(sa);
    cl_sub_free(sb);
    cl_bus_free(bus);
}

static void on_echo(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)closure;
    char out[128];
    int n = snprintf(out, sizeof(out), "echo:%.*s", (int)cl_msg_len(msg),
                     (const char *)cl_msg_data(msg));
    /* Not asserted on cnats' thread: a lost echo fails the request's assertion. */
    cl_status_ignore(cl_msg_respond(bus, msg, out, (size_t)n));
    cl_msg_free(msg);
}

static void test_request_gets_the_reply(void **state)
{
    (void)state;
    cl_bus *server = connect_bus();
    cl_bus *client = connect_bus();
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe(&sub, server, "t.echo", NULL, on_echo, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(server, 1000), CL_OK);
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(client, "t.echo", "ping", 4, 2000, &reply), CL_OK);
    assert_false(cl_msg_is_no_responders(reply));
    assert_int_equal(cl_msg_len(reply), 9);
    assert_memory_equal(cl_msg_data(reply), "echo:ping", 9);
    cl_msg_free(reply);
    cl_sub_free(sub);
    cl_bus_free(client);
    cl_bus_free(server);
}

static void test_request_without_listener_gives_no_responders(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    cl_msg *reply = NULL;
    uint64_t t0 = cl_mono_us();
    assert_int_equal(cl_bus_request(bus, "t.nobody.home", "x", 1, 3000, &reply),
                     CL_ERR_NO_RESPONDERS);
    /* Answered by the server at once, not by the timeout. */
    assert_true(cl_mono_us() - t0 < 1500000);
    cl_bus_free(bus);
}

static void on_silent(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    (void)closure;
    cl_msg_free(msg);
}

static void test_request_to_a_silent_listener_times_out(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe(&sub, bus, "t.silent", NULL, on_silent, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(bus, "t.silent", "x", 1, 200, &reply), CL_ERR_TIMEOUT);
    cl_sub_free(sub);
    cl_bus_free(bus);
}

static bool two_came(cl_msg *const *replies, size_t n, void *closure)
{
    (void)replies;
    *(size_t *)closure = n;
    return n >= 2;
}

static void test_gather_collects_every_responder(void **state)
{
    (void)state;
    cl_bus *a = connect_bus(), *b = connect_bus(), *c = connect_bus(), *client = connect_bus();
    cl_sub *subs[3] = {NULL, NULL, NULL};
    cl_bus *servers[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cl_bus_subscribe(&subs[i], servers[i], "t.all", NULL, on_echo, NULL),
                         CL_OK);
        assert_int_equal(cl_bus_flush(servers[i], 1000), CL_OK);
    }
    cl_msg *out[8];
    size_t n = 0;
    /* All three, within the time given. */
    assert_int_equal(cl_bus_gather(client, "t.all", "hi", 2, 300, out, 8, &n, NULL, NULL), CL_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(cl_msg_data(out[i]), "echo:hi", 7);
        cl_msg_free(out[i]);
    }
    /* Stops as soon as the callback says enough, well before the timeout. */
    size_t seen_n = 0;
    uint64_t t0 = cl_mono_us();
    assert_int_equal(
        cl_bus_gather(client, "t.all", "x", 1, 5000, out, 8, &n, two_came, &seen_n), CL_OK);
    assert_true(cl_mono_us() - t0 < 2500000);
    assert_int_equal(n, 2);
    assert_int_equal(seen_n, 2);
    cl_msg_free(out[0]);
    cl_msg_free(out[1]);
    /* And at max. */
    assert_int_equal(cl_bus_gather(client, "t.all", "x", 1, 5000, out, 1, &n, NULL, NULL), CL_OK);
    assert_int_equal(n, 1);
    cl_msg_free(out[0]);
    assert_int_equal(cl_bus_gather(client, "t.all", "x", 1, 300, out, 0, &n, NULL, NULL),
                     CL_ERR_INVALID);
    for (int i = 0; i < 3; i++)
        cl_sub_free(subs[i]);
    cl_bus_free(a);
    cl_bus_free(b);
    cl_bus_free(c);
    cl_bus_free(client);
}

static void test_gather_without_listener_or_answer(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    cl_msg *out[4];
    size_t n = 7;
    uint64_t t0 = cl_mono_us();
    assert_int_equal(cl_bus_gather(bus, "t.nobody.home", "x", 1, 3000, out, 4, &n, NULL, NULL),
                     CL_ERR_NO_RESPONDERS);
    assert_int_equal(n, 0);
    assert_true(cl_mono_us() - t0 < 1500000);
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe(&sub, bus, "t.quiet", NULL, on_silent, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    assert_int_equal(cl_bus_gather(bus, "t.quiet", "x", 1, 200, out, 4, &n, NULL, NULL),
                     CL_ERR_TIMEOUT);
    assert_int_equal(n, 0);
    cl_sub_free(sub);
    cl_bus_free(bus);
}

static void test_payload_above_max_is_refused(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    size_t n = (size_t)cl_bus_max_payload(bus) + 1;
    char *big = calloc(1, n);
    assert_int_equal(cl_bus_publish(bus, "t.big", big, n), CL_ERR_TOO_LARGE);
    free(big);
    cl_bus_free(bus);
}

typedef struct {
    cl_sub *self;
    atomic_int calls;
} self_free;

static void on_free_self(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    self_free *sf = closure;
    cl_msg_free(msg);
    if (atomic_fetch_add(&sf->calls, 1) == 0)
        cl_sub_free(sf->self);
}

static void test_subscription_may_free_itself_from_its_callback(void **state)
{
    (void)state;
    cl_bus *bus = connect_bus();
    self_free sf = {0};
    atomic_init(&sf.calls, 0);
    assert_int_equal(cl_bus_subscribe(&sf.self, bus, "t.self", NULL, on_free_self, &sf), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cl_bus_publish(bus, "t.self", "x", 1), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    cl_sleep_ms(100);
    assert_int_equal(atomic_load(&sf.calls), 1);
    cl_bus_free(bus);
}

static void test_new_tokens_are_distinct_subject_tokens(void **state)
{
    (void)state;
    char a[23], b[23];
    cl_bus_new_token(a);
    cl_bus_new_token(b);
    assert_int_equal(strlen(a), 22);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 22; i++)
        assert_true((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
                    (a[i] >= '0' && a[i] <= '9'));
}

/* Drops the first request it gets (as if it went with a connection that
 * died), answers the others. */
static atomic_int requests_seen;

static void on_second(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)closure;
    if (atomic_fetch_add(&requests_seen, 1) > 0)
        assert_int_equal(cl_msg_respond(bus, msg, "again", 5), CL_OK);
    cl_msg_free(msg);
}

typedef struct {
    cl_bus *bus;
    cl_status s;
    cl_msg *reply;
    uint64_t took_us;
} resend_call;

static void *call_resend(void *arg)
{
    resend_call *c = arg;
    uint64_t t0 = cl_mono_us();
    c->s = cl_bus_request_resend(c->bus, "t.second", "x", 1, 15000, &c->reply);
    c->took_us = cl_mono_us() - t0;
    return NULL;
}

/* A server bus answering t.second (on_second, requests_seen zeroed) and
 * a client bus whose cl_bus_request_resend sends again after
 * resend_silent_ms without a reply (cl_bus_opts). */
static void resend_pair(int resend_silent_ms, cl_bus **server, cl_bus **client, cl_sub **sub)
{
    *server = connect_bus();
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.resend_silent_ms = resend_silent_ms;
    assert_int_equal(cl_test_bus_connect_opts(client, &cl_test_srv, &o), 0);
    assert_int_equal(cl_bus_subscribe(sub, *server, "t.second", NULL, on_second, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(*server, 1000), CL_OK);
    atomic_store(&requests_seen, 0);
}

/* Without a reconnect, a request with no reply is sent again after the
 * bus' silence, then after twice that: a listener that drops the first
 * answers the second; one that never answers sees 200, 400 ms later. */
static void test_request_resend_sends_again_after_silence(void **state)
{
    (void)state;
    cl_bus *server = NULL, *client = NULL;
    cl_sub *sub = NULL;
    resend_pair(200, &server, &client, &sub);
    cl_msg *reply = NULL;
    uint64_t t0 = cl_mono_us();
    assert_int_equal(cl_bus_request_resend(client, "t.second", "x", 1, 5000, &reply), CL_OK);
    uint64_t took = cl_mono_us() - t0;
    assert_memory_equal(cl_msg_data(reply), "again", 5);
    assert_int_equal(atomic_load(&requests_seen), 2);
    assert_true(took >= 200000u);
    cl_msg_free(reply);

    cl_sub *silent = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&silent, server, "t.silent", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(server, 1000), CL_OK);
    assert_int_equal(cl_bus_request_resend(client, "t.silent", "y", 1, 900, &reply),
                     CL_ERR_TIMEOUT);
    int got = 0;
    cl_msg *m = NULL;
    while (cl_sub_next(silent, &m, 100) == CL_OK) {
        got++;
        cl_msg_free(m);
    }
    assert_int_equal(got, 3); /* at 0, 200 and 600 ms; the next would be at 1400 */
    cl_sub_free(silent);
    cl_sub_free(sub);
    cl_bus_free(client);
    cl_bus_free(server);
}

/* Last: it restarts the group's server. A request whose reply did not come
 * before the connection reconnected is sent again, and answered; without
 * a reconnect it is sent once (a silent listener times out). */
static void test_request_resend_sends_again_after_a_reconnect(void **state)
{
    (void)state;
    cl_bus *server = NULL, *client = NULL;
    cl_sub *sub = NULL;
    resend_pair(-1, &server, &client, &sub); /* only the reconnect sends again */
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request_resend(client, "t.second", "x", 1, 600, &reply),
                     CL_ERR_TIMEOUT);
    assert_int_equal(atomic_load(&requests_seen), 1);

    atomic_store(&requests_seen, 0);
    resend_call c = {.bus = client};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_resend, &c), 0);
    uint64_t until = cl_mono_us() + 5000000u;
    while (atomic_load(&requests_seen) == 0 && cl_mono_us() < until)
        cl_sleep_ms(10);
    assert_int_equal(atomic_load(&requests_seen), 1);
    assert_int_equal(cl_test_nats_restart(&cl_test_srv), 0);
    pthread_join(th, NULL);
    assert_int_equal(c.s, CL_OK);
    assert_int_equal(cl_msg_len(c.reply), 5);
    assert_memory_equal(cl_msg_data(c.reply), "again", 5);
    assert_true(c.took_us < 14000000u);
    assert_int_equal(atomic_load(&requests_seen), 2);
    cl_msg_free(c.reply);
    cl_sub_free(sub);
    cl_bus_free(client);
    cl_bus_free(server);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_to_unreachable_url_names_the_url),
        cmocka_unit_test(test_a_url_list_connects_to_the_server_that_answers),
        cmocka_unit_test(test_connected_bus_reports_its_settings),
        cmocka_unit_test(test_published_messages_reach_callback_subscribers),
        cmocka_unit_test(test_pull_subscription_delivers_and_times_out),
        cmocka_unit_test(test_queue_group_delivers_each_message_once),
        cmocka_unit_test(test_request_gets_the_reply),
        cmocka_unit_test(test_request_without_listener_gives_no_responders),
        cmocka_unit_test(test_request_to_a_silent_listener_times_out),
        cmocka_unit_test(test_gather_collects_every_responder),
        cmocka_unit_test(test_gather_without_listener_or_answer),
        cmocka_unit_test(test_payload_above_max_is_refused),
        cmocka_unit_test(test_subscription_may_free_itself_from_its_callback),
        cmocka_unit_test(test_new_tokens_are_distinct_subject_tokens),
        cmocka_unit_test(test_request_resend_sends_again_after_silence),
        cmocka_unit_test(test_request_resend_sends_again_after_a_reconnect),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
