/* Unit tests of the router's metrics (rstats.c, cl__sched_snapshot):
 * histogram bucketing at and around the bounds, cumulative buckets in the
 * snapshot, and the per-version counters the scheduler keeps while it
 * queues, dispatches, expires and sheds. No bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_wire.h"
#include "rsched.h"

#define T0 1000000000000ull
#define M0 5000000ull
#define MS 1000ull

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(v);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static double at(const cJSON *arr, int i)
{
    const cJSON *v = cJSON_GetArrayItem(arr, i);
    assert_non_null(v);
    return v->valuedouble;
}

static void test_values_fall_in_the_first_bucket_whose_bound_they_do_not_exceed(void **state)
{
    (void)state;
    static const uint64_t bounds[] = {1, 2, 4};
    cl_hist h;
    cl_hist_init(&h, bounds, 3);
    const uint64_t values[] = {0, 1, 2, 3, 4, 5, 1000};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        cl_hist_observe(&h, values[i]);
    assert_int_equal(h.counts[0], 2); /* 0, 1 (a bound is inclusive: le) */
    assert_int_equal(h.counts[1], 1); /* 2 */
    assert_int_equal(h.counts[2], 2); /* 3, 4 */
    assert_int_equal(h.counts[3], 2); /* 5, 1000: +Inf */
    assert_int_equal(h.count, 7);
    assert_int_equal(h.sum, 1015);
    assert_int_equal(h.min, 0);
    assert_int_equal(h.max, 1000);

    cJSON *j = cl__hist_json(&h);
    assert_non_null(j);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bounds");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "buckets");
    assert_int_equal(cJSON_GetArraySize(b), 3);
    assert_int_equal(cJSON_GetArraySize(c), 4);
    /* Cumulative, the last equal to count. */
    assert_true(at(c, 0) == 2 && at(c, 1) == 3 && at(c, 2) == 5 && at(c, 3) == 7);
    assert_true(num(j, "count") == 7 && num(j, "sum") == 1015 && num(j, "max") == 1000);
    assert_true(num(j, "sumsq") == 0 + 1 + 4 + 9 + 16 + 25 + 1e6);
    cJSON_Delete(j);
}

static void test_merge_adds_buckets_and_keeps_min_and_max(void **state)
{
    (void)state;
    cl_hist a, b;
    cl_hist_init(&a, cl__delay_bounds_us, cl__n_delay_bounds);
    cl_hist_init(&b, cl__delay_bounds_us, cl__n_delay_bounds);
    cl_hist_observe(&a, 70);
    cl_hist_observe(&b, 30);
    cl_hist_observe(&b, 20000000);
    cl_hist_merge(&a, &b);
    assert_int_equal(a.count, 3);
    assert_int_equal(a.min, 30);
    assert_int_equal(a.max, 20000000);
    assert_int_equal(a.counts[0], 1);                  /* 30 <= 50 */
    assert_int_equal(a.counts[1], 1);                  /* 70 <= 100 */
    assert_int_equal(a.counts[cl__n_delay_bounds], 1); /* over 10 s */
}

/* ---- the scheduler's counters ---------------------------------------- */

typedef struct {
    cl__sched s;
    cl__outbox ob;
} fixture;

static int64_t batch_size_of(void *closure, const char *model, const char *version)
{
    (void)closure;
    (void)model;
    (void)version;
    return 4; /* at most 4 tasks a batch */
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    cl__sched_init(&f->s, "px", batch_size_of, f);
    cl__outbox_init(&f->ob, 1024 * 1024);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cl__out_msg *m = cl__outbox_take(&f->ob);
    while (m != NULL) {
        cl__out_msg *next = m->next;
        cl__out_msg_free(m);
        m = next;
    }
    cl__outbox_deinit(&f->ob);
    cl__sched_deinit(&f->s);
    free(f);
    return 0;
}

static void drop_output(fixture *f)
{
    cl__out_msg *m = cl__outbox_take(&f->ob);
    while (m != NULL) {
        cl__out_msg *next = m->next;
        cl__out_msg_free(m);
        m = next;
    }
}

static void send(fixture *f, uint64_t first_id, size_t n, uint64_t deadline, uint64_t wall,
                 uint64_t mono)
{
    cl__rtask *t[16];
    uint8_t input[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < n; i++) {
        t[i] = cl__rtask_copy(first_id + i, deadline, 100000, CL_INPUT_BYTES, "px.fe.a.results",
                              15, input, sizeof(input));
        assert_non_null(t[i]);
    }
    cl__sched_tasks(&f->s, &f->ob, "m", "1", t, n, wall, mono);
}

static const cJSON *version_of(const cJSON *snap, const char *model, const char *version)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(snap, "versions"))
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(v, "model")->valuestring, model) == 0 &&
            strcmp(cJSON_GetObjectItemCaseSensitive(v, "version")->valuestring, version) == 0)
            return v;
    }
    return NULL;
}

static void test_snapshot_counts_batches_queue_depth_replicas_and_delays(void **state)
{
    fixture *f = *state;
    /* Two ready replicas; one pulls (idle), so the first batch goes to it. */
    cl__sched_replica(&f->s, &f->ob, "m", "1", 1, "ready", false, T0, M0);
    cl__sched_replica(&f->s, &f->ob, "m", "1", 2, "ready", false, T0, M0);
    cl__sched_pull(&f->s, &f->ob, "m", "1", 1, T0, M0);
    /* 10 tasks arrive at M0: 4 go at once (batch limit 4), 6 wait. */
    send(f, 1, 10, T0 + 1000 * MS, T0, M0);
    drop_output(f);
    /* 3 ms later replica 1 comes back: the next 4 go, after 3 ms queued. */
    cl__sched_pull(&f->s, &f->ob, "m", "1", 1, T0 + 3 * MS, M0 + 3 * MS);
    drop_output(f);

    cJSON *snap = cl__sched_snapshot(&f->s);
    assert_non_null(snap);
    const cJSON *v = version_of(snap, "m", "1");
    assert_non_null(v);
    assert_true(num(v, "queue_depth") == 2);
    assert_true(num(v, "replicas_live") == 2);
    assert_true(num(v, "replicas_busy") == 1);
    assert_true(num(v, "batches_dispatched") == 2);
    assert_true(num(v, "tasks_dispatched") == 8);
    assert_true(num(v, "tasks_expired") == 0);
    assert_true(num(v, "tasks_shed") == 0);
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(v, "batch_size");
    const cJSON *buckets = cJSON_GetObjectItemCaseSensitive(bs, "buckets");
    /* Two batches of 4: none <= 1 or <= 2, both <= 4 and above. */
    assert_true(at(buckets, 0) == 0 && at(buckets, 1) == 0 && at(buckets, 2) == 2);
    assert_true(at(buckets, (int)cl__n_batch_bounds) == 2);
    assert_true(num(bs, "count") == 2 && num(bs, "sum") == 8);
    const cJSON *qd = cJSON_GetObjectItemCaseSensitive(v, "queueing_delay_us");
    /* 4 tasks went at once (0 µs), 4 after 3000 µs. */
    assert_true(num(qd, "count") == 8 && num(qd, "sum") == 4 * 3000);
    assert_true(num(qd, "min") == 0 && num(qd, "max") == 3000);
    const cJSON *qb = cJSON_GetObjectItemCaseSensitive(qd, "buckets");
    assert_true(at(qb, 0) == 4); /* <= 50 µs */
    assert_true(at(qb, 4) == 4); /* <= 1000 µs: still only the first four */
    assert_true(at(qb, 5) == 4); /* <= 2500 µs: 3000 is not */
    assert_true(at(qb, 6) == 8); /* <= 5000 µs */
    cJSON_Delete(snap);
}

static void test_expired_and_shed_tasks_are_counted_per_version(void **state)
{
    fixture *f = *state;
    cl__sched_replica(&f->s, &f->ob, "m", "1", 1, "ready", false, T0, M0);
    /* Queued (no idle replica), then their deadline passes. */
    send(f, 1, 3, T0 + 5 * MS, T0, M0);
    cl__sched_expire(&f->s, &f->ob, T0 + 6 * MS, M0 + 6 * MS);
    drop_output(f);
    const cl__vstats *st = cl__sched_vstats(&f->s, "m", "1");
    assert_non_null(st);
    assert_int_equal(st->tasks_expired, 3);
    assert_int_equal(st->tasks_shed, 0);
    assert_int_equal(st->batches_dispatched, 0);
    assert_null(cl__sched_vstats(&f->s, "m", "2"));
}

static void test_counters_outlive_the_queue(void **state)
{
    fixture *f = *state;
    cl__sched_pull(&f->s, &f->ob, "m", "1", 1, T0, M0);
    send(f, 1, 2, T0 + 1000 * MS, T0, M0);
    /* The replica goes away: its queue is freed, its counters are not. */
    cl__sched_replica(&f->s, &f->ob, "m", "1", 1, "stopped", false, T0, M0);
    drop_output(f);
    assert_null(cl__sched_queue(&f->s, "m", "1"));
    cJSON *snap = cl__sched_snapshot(&f->s);
    const cJSON *v = version_of(snap, "m", "1");
    assert_non_null(v);
    assert_true(num(v, "tasks_dispatched") == 2);
    assert_true(num(v, "replicas_live") == 0 && num(v, "queue_depth") == 0);
    cJSON_Delete(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_fall_in_the_first_bucket_whose_bound_they_do_not_exceed),
        cmocka_unit_test(test_merge_adds_buckets_and_keeps_min_and_max),
        cmocka_unit_test_setup_teardown(test_snapshot_counts_batches_queue_depth_replicas_and_delays,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_and_shed_tasks_are_counted_per_version,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_outlive_the_queue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
