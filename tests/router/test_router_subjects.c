/* Integration tests of the router against a real nats-server: the reply
 * subjects inside task batches come from outside, so a batch whose task
 * replies to a subject that is not a frontend's results subject of this
 * cluster is refused whole as malformed, and nothing is published to it.
 *
 * An outside probe put CR/LF in a reply subject: answering that task
 * made the router's own connection send an admin command, and other
 * malformed subjects made nats-server drop the router's connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_json.h"
#include "cl_router.h"
#include "cl_subject.h"
#include "cl_test_nats.h"
#include "cl_wire.h"

#define SEC 1000000ull

static int test_counter;

typedef struct {
    char prefix[32];
    cl_bus *bus;  /* the test's: plays the frontend and watches */
    cl_bus *rbus; /* the router's */
    cl_router *router;
    char reply[CL_SUBJECT_MAX]; /* the frontend's results subject */
    cl_sub *results;
    cl_sub *elsewhere; /* everything but results, route and service subjects */
} fixture;

static cl_bus *connect_bus(const char *prefix, bool asap)
{
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.prefix = prefix;
    o.send_asap = asap;
    o.name = asap ? "router-under-test" : "router-test";
    cl_bus *bus = NULL;
    cl_test_bus_connect_opts(&bus, &cl_test_srv, &o);
    return bus;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    *state = f;
    snprintf(f->prefix, sizeof(f->prefix), "rs%d", ++test_counter);
    f->bus = connect_bus(f->prefix, false);
    f->rbus = connect_bus(f->prefix, true);
    if (f->bus == NULL || f->rbus == NULL)
        return -1;
    snprintf(f->reply, sizeof(f->reply), "%s.fe.test.results.m", f->prefix);
    char admin[64];
    snprintf(admin, sizeof(admin), "%s.admin.>", f->prefix);
    if (cl_bus_subscribe_sync(&f->results, f->bus, f->reply, NULL) != CL_OK ||
        cl_bus_subscribe_sync(&f->elsewhere, f->bus, admin, NULL) != CL_OK)
        return -1;
    cl_err err;
    if (cl_router_start(&f->router, f->rbus, &err) != CL_OK) {
        fprintf(stderr, "cl_router_start: %s\n", err.msg);
        return -1;
    }
    return cl_bus_flush(f->bus, 2000) == CL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL)
        return 0;
    cl_router_free(f->router);
    cl_sub_free(f->results);
    cl_sub_free(f->elsewhere);
    cl_bus_free(f->rbus);
    cl_bus_free(f->bus);
    free(f);
    return 0;
}

static void add_task(cl_buf *b, uint64_t id, const char *reply, size_t reply_len)
{
    cl_task t = {
        .task_id = id,
        .deadline_us = cl_wall_us() + 5 * SEC,
        .slo_us = 5000000,
        .input_type = CL_INPUT_BYTES,
        .reply_len = (uint16_t)reply_len,
        .reply = reply,
        .input_len = 1,
        .input = (const uint8_t *)"x",
    };
    assert_int_equal(cl_wire_tasks_add(b, &t), CL_OK);
}

/* Publishes a batch to model m version 1 (no replica: the router answers
 * each task "no replica" at once): a good task 1, then task 2 replying to
 * bad (bad_len bytes), then a good task 3. bad NULL: task 2 is good too. */
static void send_batch(fixture *f, uint64_t first, const char *bad, size_t bad_len)
{
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, first, f->reply, strlen(f->reply));
    if (bad != NULL)
        add_task(&b, first + 1, bad, bad_len);
    else
        add_task(&b, first + 1, f->reply, strlen(f->reply));
    add_task(&b, first + 2, f->reply, strlen(f->reply));
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_route_task(subject, f->prefix, "m", "1", &err), CL_OK);
    assert_int_equal(cl_bus_publish(f->bus, subject, b.data, b.len), CL_OK);
    assert_int_equal(cl_bus_flush(f->bus, 2000), CL_OK);
    cl_buf_deinit(&b);
}

/* The ids of the results that come on f->reply within timeout_ms. */
static size_t read_results(fixture *f, int timeout_ms, uint64_t *ids, size_t max)
{
    size_t got = 0;
    uint64_t end = cl_mono_us() + (uint64_t)timeout_ms * 1000;
    while (got < max && cl_mono_us() < end) {
        cl_msg *m = NULL;
        if (cl_sub_next(f->results, &m, 50) != CL_OK)
            continue;
        cl_result *r = NULL;
        uint32_t n = 0;
        cl_err err;
        if (cl_wire_results_decode(cl_msg_data(m), cl_msg_len(m), &r, &n, &err) != CL_OK)
            fail_msg("bad result batch: %s", err.msg);
        for (uint32_t i = 0; i < n && got < max; i++)
            ids[got++] = r[i].task_id;
        free(r);
        cl_msg_free(m);
    }
    return got;
}

static double malformed(fixture *f)
{
    cl_msg *m = NULL;
    assert_int_equal(cl_bus_request(f->bus, "$SRV.STATS.clipper-router", "", 0, 2000, &m), CL_OK);
    cJSON *o = NULL;
    cl_err err;
    assert_int_equal(cl_json_parse_object(&o, cl_msg_data(m), cl_msg_len(m), &err), CL_OK);
    cl_msg_free(m);
    cJSON *eps = cJSON_GetObjectItem(o, "endpoints");
    cJSON *data = cJSON_GetObjectItem(cJSON_GetArrayItem(eps, 0), "data");
    double v = cJSON_GetObjectItem(data, "malformed")->valuedouble;
    cJSON_Delete(o);
    return v;
}

static void wait_malformed(fixture *f, double want)
{
    uint64_t end = cl_mono_us() + 3 * SEC;
    while (malformed(f) < want && cl_mono_us() < end)
        cl_sleep_ms(5);
    assert_int_equal((long)malformed(f), (long)want);
}

/* The router still answers a good batch, on a connection it still has. */
static void expect_still_serving(fixture *f, uint64_t first)
{
    send_batch(f, first, NULL, 0);
    uint64_t ids[8];
    assert_int_equal(read_results(f, 3000, ids, 3), 3);
    assert_int_equal(ids[0], first);
    assert_int_equal(ids[2], first + 2);
}

/* Waits until the router takes tasks (a router leads, and subscribes to
 * route.task, a moment after it starts): a good batch is answered. */
static void wait_serving(fixture *f)
{
    uint64_t ids[8];
    uint64_t end = cl_mono_us() + 5 * SEC;
    for (uint64_t first = 900; cl_mono_us() < end; first += 3) {
        send_batch(f, first, NULL, 0);
        if (read_results(f, 250, ids, 3) > 0) {
            read_results(f, 100, ids, 8); /* the rest of it */
            return;
        }
    }
    fail_msg("the router never answered a task batch");
}

static void test_reply_subject_with_crlf_refuses_the_batch_and_injects_nothing(void **state)
{
    fixture *f = *state;
    wait_serving(f);
    char inject[CL_SUBJECT_MAX];
    int n = snprintf(inject, sizeof(inject),
                     "%s 2\r\nPUB %s.admin.delete_app 12\r\n{\"name\":\"x\"}", f->reply,
                     f->prefix);
    send_batch(f, 1, inject, (size_t)n);
    wait_malformed(f, 1);
    /* The whole batch is refused: not even its good tasks are answered. */
    uint64_t ids[8];
    assert_int_equal(read_results(f, 300, ids, 8), 0);
    cl_msg *m = NULL;
    assert_int_equal(cl_sub_next(f->elsewhere, &m, 200), CL_ERR_TIMEOUT);
    expect_still_serving(f, 11);
}

static void test_reply_subjects_nats_refuses_are_refused(void **state)
{
    fixture *f = *state;
    wait_serving(f);
    char longs[1000];
    memset(longs, 'a', sizeof(longs));
    const struct {
        const char *s;
        size_t len;
    } bad[] = {
#define S(x) {x, sizeof(x) - 1}
        S(""), S("a b"), S("a.*"), S("a.>"), S("a..b"), S("a\tb"), S("a\0b"),
#undef S
        {longs, sizeof(longs)}, /* PUB with it passes the server's max control line */
    };
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++)
        send_batch(f, 100 + 10 * i, bad[i].s, bad[i].len);
    wait_malformed(f, (double)n);
    uint64_t ids[8];
    assert_int_equal(read_results(f, 300, ids, 8), 0);
    expect_still_serving(f, 1000);
}

static void test_reply_outside_the_clusters_frontends_is_refused(void **state)
{
    fixture *f = *state;
    wait_serving(f);
    char admin[CL_SUBJECT_MAX], other[CL_SUBJECT_MAX], model[CL_SUBJECT_MAX];
    snprintf(admin, sizeof(admin), "%s.admin.ping", f->prefix);
    snprintf(other, sizeof(other), "x%s.fe.test.results.m", f->prefix);
    /* Another model's results subject: a replica of that model may answer there. */
    snprintf(model, sizeof(model), "%s.fe.test.results.n", f->prefix);
    send_batch(f, 1, admin, strlen(admin));
    send_batch(f, 11, other, strlen(other));
    send_batch(f, 21, model, strlen(model));
    wait_malformed(f, 3);
    uint64_t ids[8];
    assert_int_equal(read_results(f, 300, ids, 8), 0);
    cl_msg *m = NULL;
    assert_int_equal(cl_sub_next(f->elsewhere, &m, 200), CL_ERR_TIMEOUT);
    expect_still_serving(f, 31);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reply_subject_with_crlf_refuses_the_batch_and_injects_nothing),
        T(test_reply_subjects_nats_refuses_are_refused),
        T(test_reply_outside_the_clusters_frontends_is_refused),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
