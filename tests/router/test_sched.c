/* Unit tests of the router's scheduler (rsched.c) without a bus: each test
 * feeds events with explicit clocks and reads what the scheduler would
 * publish from its outbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_wire.h"
#include "rsched.h"

#define T0 1000000000000ull /* an arbitrary wall clock, µs */
#define M0 5000000ull       /* an arbitrary monotonic clock, µs */
#define MS 1000ull

typedef struct {
    cl__sched s;
    cl__outbox ob;
    int64_t batch_size;
} fixture;

static int64_t batch_size_of(void *closure, const char *model, const char *version)
{
    (void)model;
    (void)version;
    return ((fixture *)closure)->batch_size;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->batch_size = 100;
    cl__sched_init(&f->s, "px", batch_size_of, f);
    cl__outbox_init(&f->ob, 1024 * 1024);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cl__outbox_deinit(&f->ob);
    cl__sched_deinit(&f->s);
    free(f);
    return 0;
}

static cl__rtask *task(uint64_t id, uint64_t deadline, uint32_t slo, const char *reply)
{
    uint8_t input[4] = {1, 2, 3, 4};
    cl__rtask *t = cl__rtask_copy(id, deadline, slo, CL_INPUT_BYTES, reply,
                                  (uint16_t)strlen(reply), input, sizeof(input));
    assert_non_null(t);
    return t;
}

static void send_tasks(fixture *f, cl__rtask **tasks, size_t n, uint64_t wall, uint64_t mono)
{
    cl__sched_tasks(&f->s, &f->ob, "m", "1", tasks, n, wall, mono);
}

/* What one turn published, decoded. */
typedef struct {
    int n_work;
    char work_subject[8][CL_SUBJECT_MAX];
    uint64_t work_ids[8][64];
    uint32_t work_len[8];
    int n_results; /* result messages */
    char result_subject[8][CL_SUBJECT_MAX];
    uint64_t result_ids[8][64];
    uint8_t result_status[8][64];
    uint32_t result_len[8];
} published;

static void take(fixture *f, published *p)
{
    memset(p, 0, sizeof(*p));
    cl__out_msg *m = cl__outbox_take(&f->ob);
    while (m != NULL) {
        cl__out_msg *next = m->next;
        cl_err err;
        if (m->is_work) {
            assert_true(p->n_work < 8);
            cl_task *t;
            uint32_t n;
            assert_int_equal(cl_wire_tasks_decode(m->buf.data, m->buf.len, &t, &n, &err), CL_OK);
            assert_true(n <= 64);
            strcpy(p->work_subject[p->n_work], m->subject);
            for (uint32_t i = 0; i < n; i++)
                p->work_ids[p->n_work][i] = t[i].task_id;
            p->work_len[p->n_work++] = n;
            free(t);
        } else {
            assert_true(p->n_results < 8);
            cl_result *r;
            uint32_t n;
            assert_int_equal(cl_wire_results_decode(m->buf.data, m->buf.len, &r, &n, &err),
                             CL_OK);
            assert_true(n <= 64);
            strcpy(p->result_subject[p->n_results], m->subject);
            for (uint32_t i = 0; i < n; i++) {
                p->result_ids[p->n_results][i] = r[i].task_id;
                p->result_status[p->n_results][i] = r[i].status;
            }
            p->result_len[p->n_results++] = n;
            free(r);
        }
        cl__out_msg_free(m);
        m = next;
    }
}

static void ready_replica(fixture *f, uint32_t id)
{
    cl__sched_replica(&f->s, &f->ob, "m", "1", id, "ready", false, T0, M0);
}

static void test_tasks_without_a_replica_are_answered_3_per_reply_subject(void **state)
{
    fixture *f = *state;
    cl__rtask *t[3] = {task(1, T0 + 100 * MS, 100000, "px.fe.a.results"),
                       task(2, T0 + 100 * MS, 100000, "px.fe.b.results"),
                       task(3, T0 + 100 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, t, 3, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 0);
    assert_int_equal(p.n_results, 2);
    for (int i = 0; i < 2; i++) {
        bool a = strcmp(p.result_subject[i], "px.fe.a.results") == 0;
        assert_int_equal(p.result_len[i], a ? 2 : 1);
        for (uint32_t k = 0; k < p.result_len[i]; k++)
            assert_int_equal(p.result_status[i][k], CL_RESULT_NO_REPLICA);
    }
    assert_int_equal(f->s.stats.no_replica, 3);
}

static void test_replica_that_is_only_starting_does_not_take_tasks(void **state)
{
    fixture *f = *state;
    cl__sched_replica(&f->s, &f->ob, "m", "1", 0, "starting", false, T0, M0);
    cl__rtask *t[1] = {task(1, T0 + 100 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, t, 1, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_status[0][0], CL_RESULT_NO_REPLICA);
}

static void test_task_past_its_deadline_on_arrival_is_answered_2(void **state)
{
    fixture *f = *state;
    ready_replica(f, 0);
    cl__rtask *t[1] = {task(1, T0 - 1, 100000, "px.fe.a.results")};
    send_tasks(f, t, 1, T0, M0);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 0);
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_status[0][0], CL_RESULT_EXPIRED);
}

static void test_pull_dispatches_in_deadline_order_to_the_replica_subject(void **state)
{
    fixture *f = *state;
    ready_replica(f, 7);
    cl__rtask *t[4] = {task(1, T0 + 40 * MS, 100000, "px.fe.a.results"),
                       task(2, T0 + 10 * MS, 100000, "px.fe.a.results"),
                       task(3, T0 + 30 * MS, 100000, "px.fe.a.results"),
                       task(4, T0 + 20 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, t, 4, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 0); /* nobody asked for work yet */
    assert_int_equal(cl__sched_next_deadline(&f->s), T0 + 10 * MS);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 7, T0, M0);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_string_equal(p.work_subject[0], "px.replica.work.m.1.7");
    assert_int_equal(p.work_len[0], 4);
    const uint64_t want[4] = {2, 4, 3, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(p.work_ids[0][i], want[i]);
}

static void test_fixed_batch_size_caps_the_batch(void **state)
{
    fixture *f = *state;
    f->batch_size = 3;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = task((uint64_t)i, T0 + (uint64_t)(i + 1) * 10 * MS, 100000, "px.fe.a.results");
    send_tasks(f, t, 5, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 3);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0 + MS, M0 + MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 2);
    assert_int_equal(p.work_ids[0][0], 3);
}

static void test_one_batch_in_flight_per_replica_until_it_pulls(void **state)
{
    fixture *f = *state;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *a[1] = {task(1, T0 + 50 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, a, 1, T0, M0);
    cl__rtask *b[1] = {task(2, T0 + 50 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, b, 1, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 1);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0 + MS, M0 + MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 2);
}

static void test_repeat_pull_that_crossed_a_batch_does_not_complete_it(void **state)
{
    fixture *f = *state;
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 0, false, T0, M0);
    cl__rtask *a[1] = {task(1, T0 + 50 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, a, 1, T0, M0);
    cl__rtask *b[1] = {task(2, T0 + 50 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, b, 1, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    /* The replica's idle repeat (still 0 completed) crossed batch 1. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 0, false, T0 + MS, M0 + MS);
    take(f, &p);
    assert_int_equal(p.n_work, 0);
    /* Batch 1 done: now task 2 goes. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 1, false, T0 + 2 * MS, M0 + 2 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 2);
}

static void test_a_pull_after_a_reconnect_queues_the_batch_in_flight_again_at_once(void **state)
{
    fixture *f = *state;
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 5, false, T0, M0);
    cl__rtask *a[1] = {task(1, T0 + 5000 * MS, 10000000, "px.fe.a.results")};
    send_tasks(f, a, 1, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    /* 4 ms later the replica's connection came back: the batch may have
     * been sent before its subscription was: it goes out again now, not
     * at the replica's next repeat a second later. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 5, true, T0 + 4 * MS, M0 + 4 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 1);
    /* Without the flag the same pull is a repeat that crossed the batch. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 5, false, T0 + 8 * MS, M0 + 8 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 0);
}

static void test_an_overdue_batch_is_hedged_to_another_ready_replica(void **state)
{
    fixture *f = *state;
    /* Two replicas; replica 0 takes task 1, then stops answering. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 0, false, T0, M0);
    cl__rtask *a[1] = {task(1, T0 + 5000 * MS, 10000000, "px.fe.a.results")};
    send_tasks(f, a, 1, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 7, 0, false, T0 + MS, M0 + MS);
    take(f, &p);
    assert_int_equal(p.n_work, 0); /* nothing queued for it */
    /* Before the hedge time (no pace known: 250 ms) nothing moves. */
    cl__sched_expire(&f->s, &f->ob, T0 + 200 * MS, M0 + 200 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 0);
    /* After it, a copy of task 1 goes to replica 7. */
    cl__sched_expire(&f->s, &f->ob, T0 + 260 * MS, M0 + 260 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 1);
    assert_int_equal(f->s.stats.tasks_hedged, 1);
    /* Hedged once only. */
    cl__sched_expire(&f->s, &f->ob, T0 + 600 * MS, M0 + 600 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 0);
    assert_int_equal(f->s.stats.tasks_hedged, 1);
}

static void test_a_batch_lost_on_the_way_is_queued_again_on_a_later_idle_pull(void **state)
{
    fixture *f = *state;
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 5, false, T0, M0);
    cl__rtask *a[2] = {task(1, T0 + 5000 * MS, 10000000, "px.fe.a.results"),
                       task(2, T0 + 5000 * MS, 10000000, "px.fe.a.results")};
    send_tasks(f, a, 2, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 2);
    /* A second later the replica, idle all along, pulls again with the same
     * count: the batch never reached it, so it is sent again, not dropped. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 5, false, T0 + 1000 * MS, M0 + 1000 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 2);
    assert_int_equal(p.work_ids[0][0], 1);
    assert_int_equal(p.work_ids[0][1], 2);
    assert_int_equal(p.n_results, 0);
    /* And it completes normally. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 6, false, T0 + 1001 * MS, M0 + 1001 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 0);
}

static void test_pull_count_above_what_was_sent_resyncs_after_a_router_restart(void **state)
{
    fixture *f = *state;
    /* A new router meets a replica that has answered 41 batches before. */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 41, false, T0, M0);
    cl__rtask *a[1] = {task(1, T0 + 50 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, a, 1, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 41, false, T0 + MS, M0 + MS);
    cl__rtask *b[1] = {task(2, T0 + 50 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, b, 1, T0 + MS, M0 + MS);
    take(f, &p);
    assert_int_equal(p.n_work, 0); /* 41 < 42 sent: still in flight */
    cl__sched_pull_counted(&f->s, &f->ob, "m", "1", 0, 42, false, T0 + 2 * MS, M0 + 2 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 2);
}

static void test_two_replicas_share_one_queue(void **state)
{
    fixture *f = *state;
    f->batch_size = 2;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 1, T0, M0);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 2, T0, M0 + 1);
    cl__rtask *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = task((uint64_t)i, T0 + (uint64_t)(i + 1) * 10 * MS, 100000, "px.fe.a.results");
    send_tasks(f, t, 4, T0, M0 + 2);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 2);
    /* The replica idle longest gets the earliest tasks. */
    assert_string_equal(p.work_subject[0], "px.replica.work.m.1.1");
    assert_int_equal(p.work_ids[0][0], 0);
    assert_int_equal(p.work_ids[0][1], 1);
    assert_string_equal(p.work_subject[1], "px.replica.work.m.1.2");
    assert_int_equal(p.work_ids[1][0], 2);
    assert_int_equal(p.work_ids[1][1], 3);
}

static void test_adaptive_cap_grows_when_full_and_fast(void **state)
{
    fixture *f = *state;
    f->batch_size = CL_BATCH_ADAPTIVE;
    uint64_t mono = M0;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, mono);
    uint32_t sizes[4];
    for (int round = 0; round < 4; round++) {
        cl__rtask *t[8];
        for (int i = 0; i < 8; i++)
            t[i] = task((uint64_t)(round * 100 + i), T0 + 900 * MS, 100000, "px.fe.a.results");
        send_tasks(f, t, 8, T0, mono);
        published p;
        take(f, &p);
        assert_int_equal(p.n_work, 1);
        sizes[round] = p.work_len[0];
        mono += 5 * MS; /* well under the 100 ms SLO */
        cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, mono);
        /* Drain whatever is left so each round starts with an empty queue. */
        take(f, &p);
        while (p.n_work > 0) {
            mono += MS;
            cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, mono);
            take(f, &p);
        }
    }
    assert_int_equal(sizes[0], 1);
    assert_true(sizes[1] > sizes[0]);
    assert_true(sizes[3] > sizes[2]);
}

static void test_adaptive_cap_backs_off_when_slow(void **state)
{
    fixture *f = *state;
    f->batch_size = CL_BATCH_ADAPTIVE;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__queue *q = cl__sched_queue(&f->s, "m", "1");
    cl__replica *rep = cl__sched_replica_find(q, 0);
    rep->policy.cap = 20;
    cl__rtask *t[20];
    for (int i = 0; i < 20; i++)
        t[i] = task((uint64_t)i, T0 + 900 * MS, 10000, "px.fe.a.results");
    send_tasks(f, t, 20, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.work_len[0], 20);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0 + 50 * MS); /* 50 ms > 10 ms SLO */
    assert_int_equal(rep->policy.cap, 18);
}

/* Replica 0 takes one batch of n tasks that comes back after took_ms: the
 * router learns its pace. Leaves the clock at T0/M0 + took_ms. */
static void teach_pace(fixture *f, int n, uint64_t took_ms)
{
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t[8];
    for (int i = 0; i < n; i++)
        t[i] = task((uint64_t)(1000 + i), T0 + 900 * MS, 1000000, "px.fe.a.results");
    send_tasks(f, t, (size_t)n, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.work_len[0], n);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0 + took_ms * MS, M0 + took_ms * MS);
    take(f, &p);
}

static void test_tasks_that_cannot_finish_in_time_are_shed_2_and_the_rest_dispatched(void **state)
{
    fixture *f = *state;
    f->batch_size = 1;
    teach_pace(f, 1, 10); /* a batch takes 10 ms */
    /* For the idle replica: a task with 4 ms left and one with 50 ms. */
    cl__rtask *t[2] = {task(2, T0 + 14 * MS, 20000, "px.fe.a.results"),
                       task(3, T0 + 60 * MS, 20000, "px.fe.a.results")};
    send_tasks(f, t, 2, T0 + 10 * MS, M0 + 10 * MS);
    published p;
    take(f, &p);
    /* Task 2 would need ~10 ms with 4 ms left: answered at once, 2. */
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_len[0], 1);
    assert_int_equal(p.result_ids[0][0], 2);
    assert_int_equal(p.result_status[0][0], CL_RESULT_EXPIRED);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 3);
    assert_int_equal(f->s.stats.shed, 1);
    assert_int_equal(f->s.stats.expired, 0);
}

static void test_under_overload_urgent_tasks_are_shed_to_keep_batches_full(void **state)
{
    fixture *f = *state;
    f->batch_size = 4;
    teach_pace(f, 4, 10); /* a batch of four takes 10 ms */
    /* Ten queued for the idle replica: three have 5 ms left. */
    uint64_t now = T0 + 10 * MS, mono = M0 + 10 * MS;
    cl__rtask *t[10];
    for (int i = 0; i < 10; i++)
        t[i] = task((uint64_t)(10 + i), now + (i < 3 ? 5 : 50) * MS, 20000, "px.fe.a.results");
    send_tasks(f, t, 10, now, mono);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 4); /* full, not cut to 5 ms' worth */
    for (int i = 0; i < 4; i++)
        assert_true(p.work_ids[0][i] >= 13);
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_len[0], 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(p.result_status[0][i], CL_RESULT_EXPIRED);
    assert_int_equal(f->s.stats.shed, 3);
}

static void test_the_last_queued_task_is_sent_even_when_it_seems_too_late(void **state)
{
    fixture *f = *state;
    f->batch_size = 1;
    /* A first batch that took 80 ms (a replica warming up)... */
    teach_pace(f, 1, 80);
    /* ...must not make every later 20 ms task be shed: one alone is sent,
     * and its answer teaches the router the real pace. */
    cl__rtask *t = task(2, T0 + 100 * MS, 20000, "px.fe.a.results");
    send_tasks(f, &t, 1, T0 + 80 * MS, M0 + 80 * MS);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_ids[0][0], 2);
    assert_int_equal(f->s.stats.shed, 0);
}

static void test_nothing_is_shed_before_the_replica_has_a_pace(void **state)
{
    fixture *f = *state;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t = task(1, T0 + 1, 20000, "px.fe.a.results"); /* 1 us left */
    send_tasks(f, &t, 1, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(f->s.stats.shed, 0);
}

static void test_sweep_answers_expired_queued_tasks_2_and_never_dispatches_them(void **state)
{
    fixture *f = *state;
    ready_replica(f, 0); /* ready but busy: never pulls */
    cl__rtask *t[2] = {task(1, T0 + 5 * MS, 5000, "px.fe.a.results"),
                       task(2, T0 + 500 * MS, 500000, "px.fe.a.results")};
    send_tasks(f, t, 2, T0, M0);
    cl__sched_expire(&f->s, &f->ob, T0 + 6 * MS, M0 + 6 * MS);
    published p;
    take(f, &p);
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_len[0], 1);
    assert_int_equal(p.result_ids[0][0], 1);
    assert_int_equal(p.result_status[0][0], CL_RESULT_EXPIRED);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0 + 7 * MS, M0 + 7 * MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 1);
    assert_int_equal(p.work_ids[0][0], 2);
}

static void test_removed_replica_answers_in_flight_4_and_queued_3(void **state)
{
    fixture *f = *state;
    f->batch_size = 1;
    ready_replica(f, 0);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t[2] = {task(1, T0 + 100 * MS, 100000, "px.fe.a.results"),
                       task(2, T0 + 100 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, t, 2, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    cl__sched_replica(&f->s, &f->ob, "m", "1", 0, "ready", true, T0 + MS, M0 + MS);
    take(f, &p);
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_len[0], 2);
    assert_int_equal(p.result_ids[0][0], 1);
    assert_int_equal(p.result_status[0][0], CL_RESULT_REPLICA_LOST);
    assert_int_equal(p.result_ids[0][1], 2);
    assert_int_equal(p.result_status[0][1], CL_RESULT_NO_REPLICA);
    assert_null(cl__sched_queue(&f->s, "m", "1"));
}

static void test_stopped_heartbeat_removes_the_replica(void **state)
{
    fixture *f = *state;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t[1] = {task(1, T0 + 100 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, t, 1, T0, M0);
    cl__sched_replica(&f->s, &f->ob, "m", "1", 0, "stopped", false, T0 + MS, M0 + MS);
    published p;
    take(f, &p);
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_status[0][0], CL_RESULT_REPLICA_LOST);
}

static void test_pull_only_replica_silent_past_timeout_is_lost(void **state)
{
    fixture *f = *state;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t[1] = {task(1, T0 + 10000 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, t, 1, T0, M0);
    cl__sched_expire(&f->s, &f->ob, T0 + 3000 * MS, M0 + 3000 * MS);
    published p;
    take(f, &p);
    assert_int_equal(p.n_results, 0);
    cl__sched_expire(&f->s, &f->ob, T0 + 3600 * MS, M0 + 3600 * MS);
    take(f, &p);
    assert_int_equal(p.n_results, 1);
    assert_int_equal(p.result_status[0][0], CL_RESULT_REPLICA_LOST);
}

static void test_failed_send_requeues_the_batch_for_the_next_pull(void **state)
{
    fixture *f = *state;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t[2] = {task(1, T0 + 100 * MS, 100000, "px.fe.a.results"),
                       task(2, T0 + 100 * MS, 100000, "px.fe.a.results")};
    send_tasks(f, t, 2, T0, M0);
    cl__out_msg *m = cl__outbox_take(&f->ob);
    assert_non_null(m);
    assert_true(m->is_work);
    uint64_t seq = m->batch_seq;
    cl__out_msg_free(m);
    cl__sched_send_failed(&f->s, &f->ob, "m", "1", 0, seq, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work + p.n_results, 0);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0 + MS, M0 + MS);
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 2);
}

static void test_batch_stays_under_the_max_payload(void **state)
{
    fixture *f = *state;
    cl__outbox_deinit(&f->ob);
    /* Each task: 27 bytes + 15 reply + 4 input = 46; header 8. */
    cl__outbox_init(&f->ob, 8 + 3 * 46 + 10);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 0, T0, M0);
    cl__rtask *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = task((uint64_t)i, T0 + (uint64_t)(i + 1) * MS * 10, 100000, "px.fe.a.results");
    send_tasks(f, t, 5, T0, M0);
    published p;
    take(f, &p);
    assert_int_equal(p.n_work, 1);
    assert_int_equal(p.work_len[0], 3);
}

static void test_drain_answers_everything_queued(void **state)
{
    fixture *f = *state;
    ready_replica(f, 0);
    cl__rtask *t[2] = {task(1, T0 + 100 * MS, 100000, "px.fe.a.results"),
                       task(2, T0 + 100 * MS, 100000, "px.fe.b.results")};
    send_tasks(f, t, 2, T0, M0);
    cl__sched_drain(&f->s, &f->ob, CL_RESULT_NO_REPLICA, "stopping");
    published p;
    take(f, &p);
    assert_int_equal(p.n_results, 2);
    assert_int_equal(cl__sched_next_deadline(&f->s), UINT64_MAX);
}

static void test_result_batches_split_at_the_max_payload(void **state)
{
    fixture *f = *state;
    cl__outbox_deinit(&f->ob);
    /* Each result with the "no ready replica of model m:1" text is 13 + 30
     * bytes; allow three per message. */
    const size_t max = 8 + 3 * 43 + 5;
    cl__outbox_init(&f->ob, max);
    cl__rtask *t[10];
    for (int i = 0; i < 10; i++)
        t[i] = task((uint64_t)i, T0 + 100 * MS, 100000, "px.fe.a.results");
    send_tasks(f, t, 10, T0, M0);
    cl__out_msg *m = cl__outbox_take(&f->ob);
    size_t msgs = 0, results = 0;
    while (m != NULL) {
        cl__out_msg *next = m->next;
        assert_true(m->buf.len <= max);
        assert_string_equal(m->subject, "px.fe.a.results");
        results += cl_wire_count(&m->buf);
        msgs++;
        cl__out_msg_free(m);
        m = next;
    }
    assert_int_equal(results, 10);
    assert_int_equal(msgs, 4);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tasks_without_a_replica_are_answered_3_per_reply_subject),
        T(test_replica_that_is_only_starting_does_not_take_tasks),
        T(test_task_past_its_deadline_on_arrival_is_answered_2),
        T(test_pull_dispatches_in_deadline_order_to_the_replica_subject),
        T(test_fixed_batch_size_caps_the_batch),
        T(test_one_batch_in_flight_per_replica_until_it_pulls),
        T(test_repeat_pull_that_crossed_a_batch_does_not_complete_it),
        T(test_pull_count_above_what_was_sent_resyncs_after_a_router_restart),
        T(test_a_pull_after_a_reconnect_queues_the_batch_in_flight_again_at_once),
        T(test_an_overdue_batch_is_hedged_to_another_ready_replica),
        T(test_a_batch_lost_on_the_way_is_queued_again_on_a_later_idle_pull),
        T(test_two_replicas_share_one_queue),
        T(test_adaptive_cap_grows_when_full_and_fast),
        T(test_adaptive_cap_backs_off_when_slow),
        T(test_tasks_that_cannot_finish_in_time_are_shed_2_and_the_rest_dispatched),
        T(test_nothing_is_shed_before_the_replica_has_a_pace),
        T(test_the_last_queued_task_is_sent_even_when_it_seems_too_late),
        T(test_under_overload_urgent_tasks_are_shed_to_keep_batches_full),
        T(test_sweep_answers_expired_queued_tasks_2_and_never_dispatches_them),
        T(test_removed_replica_answers_in_flight_4_and_queued_3),
        T(test_stopped_heartbeat_removes_the_replica),
        T(test_pull_only_replica_silent_past_timeout_is_lost),
        T(test_failed_send_requeues_the_batch_for_the_next_pull),
        T(test_batch_stays_under_the_max_payload),
        T(test_drain_answers_everything_queued),
        T(test_result_batches_split_at_the_max_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
