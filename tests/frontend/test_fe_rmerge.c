/* Unit tests: the routers' snapshots added up (fe_rmerge.h) - counters
 * summed over leader and standbys, queue gauges from the leader only,
 * histograms merged bucket by bucket, versions matched by name, and what
 * is not a snapshot left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fe_rmerge.h"

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(item));
    return item->valuedouble;
}

static const cJSON *version(const cJSON *merged, const char *model, const char *v)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(merged, "versions"))
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(e, "model")->valuestring, model) == 0 &&
            strcmp(cJSON_GetObjectItemCaseSensitive(e, "version")->valuestring, v) == 0)
            return e;
    }
    fail_msg("no version %s:%s", model, v);
    return NULL;
}

#define HIST(b1, b2, inf, count, sum, min, max, sumsq)                                         \
    "{\"bounds\":[1,2],\"buckets\":[" #b1 "," #b2 "," #inf "],\"count\":" #count               \
    ",\"sum\":" #sum ",\"min\":" #min ",\"max\":" #max ",\"sumsq\":" #sumsq "}"

/* The leader, which has led since the start. */
static const char *LEADER =
    "{\"versions\":[{\"model\":\"m\",\"version\":\"1\",\"queue_depth\":3,\"replicas_live\":2,"
    "\"replicas_busy\":1,\"batches_dispatched\":10,\"tasks_dispatched\":40,\"tasks_expired\":1,"
    "\"tasks_shed\":0,\"batch_size\":" HIST(2, 5, 10, 10, 40, 1, 8, 200) ",\"queueing_delay_us\":"
    HIST(0, 0, 40, 40, 4000, 50, 300, 500000) "}],"
    "\"queueing_delay_us\":" HIST(0, 0, 40, 40, 4000, 50, 300, 500000) ","
    "\"tasks_received\":41,\"tasks_no_replica\":0,\"tasks_replica_lost\":0,\"tasks_hedged\":2,"
    "\"malformed\":1,\"router\":{\"host\":\"a\",\"pid\":10,\"epoch\":2,\"leading\":true,"
    "\"routers\":2}}";

/* A standby that led before (epoch 1): its counters still count; its
 * gauges are stale and must not. It also knew a version the leader has
 * not seen yet. */
static const char *STANDBY =
    "{\"versions\":[{\"model\":\"m\",\"version\":\"1\",\"queue_depth\":7,\"replicas_live\":2,"
    "\"replicas_busy\":2,\"batches_dispatched\":5,\"tasks_dispatched\":6,\"tasks_expired\":2,"
    "\"tasks_shed\":1,\"batch_size\":" HIST(4, 5, 5, 5, 6, 1, 2, 8) ",\"queueing_delay_us\":"
    HIST(0, 1, 6, 6, 900, 20, 400, 10000) "},"
    "{\"model\":\"old\",\"version\":\"7\",\"queue_depth\":1,\"replicas_live\":1,"
    "\"replicas_busy\":0,\"batches_dispatched\":1,\"tasks_dispatched\":1,\"tasks_expired\":0,"
    "\"tasks_shed\":0,\"batch_size\":" HIST(1, 1, 1, 1, 1, 1, 1, 1) ",\"queueing_delay_us\":"
    HIST(1, 1, 1, 1, 1, 1, 1, 1) "}],"
    "\"queueing_delay_us\":" HIST(1, 2, 7, 7, 901, 1, 400, 10001) ","
    "\"tasks_received\":7,\"tasks_no_replica\":3,\"tasks_replica_lost\":1,\"tasks_hedged\":0,"
    "\"malformed\":0,\"router\":{\"host\":\"b\",\"pid\":20,\"epoch\":2,\"leading\":false,"
    "\"routers\":2}}";

static void test_counters_add_up_gauges_come_from_the_leader(void **state)
{
    (void)state;
    cJSON *s[2] = {parse(LEADER), parse(STANDBY)};
    cJSON *m = cl_fe_router_merge((const cJSON *const *)s, 2);
    assert_non_null(m);
    assert_int_equal(num(m, "tasks_received"), 48);
    assert_int_equal(num(m, "tasks_no_replica"), 3);
    assert_int_equal(num(m, "tasks_replica_lost"), 1);
    assert_int_equal(num(m, "tasks_hedged"), 2);
    assert_int_equal(num(m, "malformed"), 1);
    assert_int_equal(num(m, "skipped"), 0);
    const cJSON *v = version(m, "m", "1");
    assert_int_equal(num(v, "batches_dispatched"), 15);
    assert_int_equal(num(v, "tasks_dispatched"), 46);
    assert_int_equal(num(v, "tasks_expired"), 3);
    assert_int_equal(num(v, "tasks_shed"), 1);
    assert_int_equal(num(v, "queue_depth"), 3);
    assert_int_equal(num(v, "replicas_live"), 2);
    assert_int_equal(num(v, "replicas_busy"), 1);
    /* Only the standby knew this one: counters kept, gauges zero. */
    const cJSON *old = version(m, "old", "7");
    assert_int_equal(num(old, "tasks_dispatched"), 1);
    assert_int_equal(num(old, "queue_depth"), 0);
    assert_int_equal(num(old, "replicas_live"), 0);
    /* Both routers listed, without their own router counts. */
    const cJSON *routers = cJSON_GetObjectItemCaseSensitive(m, "routers");
    assert_int_equal(cJSON_GetArraySize(routers), 2);
    assert_int_equal(num(cJSON_GetArrayItem(routers, 1), "pid"), 20);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(routers, 1),
                                                               "leading")));
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(routers, 0), "routers"));
    cJSON_Delete(m);
    cJSON_Delete(s[0]);
    cJSON_Delete(s[1]);
}

static void test_histograms_merge_bucket_by_bucket(void **state)
{
    (void)state;
    cJSON *s[2] = {parse(LEADER), parse(STANDBY)};
    cJSON *m = cl_fe_router_merge((const cJSON *const *)s, 2);
    assert_non_null(m);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(version(m, "m", "1"), "batch_size");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(h, "buckets");
    assert_int_equal(cJSON_GetArraySize(b), 3);
    assert_int_equal(cJSON_GetArrayItem(b, 0)->valuedouble, 6);
    assert_int_equal(cJSON_GetArrayItem(b, 1)->valuedouble, 10);
    assert_int_equal(cJSON_GetArrayItem(b, 2)->valuedouble, 15);
    assert_int_equal(num(h, "count"), 15);
    assert_int_equal(num(h, "sum"), 46);
    assert_int_equal(num(h, "min"), 1);
    assert_int_equal(num(h, "max"), 8);
    assert_int_equal(num(h, "sumsq"), 208);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(m, "queueing_delay_us");
    assert_int_equal(num(q, "count"), 47);
    assert_int_equal(num(q, "min"), 1);
    assert_int_equal(num(q, "max"), 400);
    /* The bounds are the same, not added. */
    const cJSON *bounds = cJSON_GetObjectItemCaseSensitive(q, "bounds");
    assert_int_equal(cJSON_GetArrayItem(bounds, 1)->valuedouble, 2);
    cJSON_Delete(m);
    cJSON_Delete(s[0]);
    cJSON_Delete(s[1]);
}

static void test_an_empty_histogram_does_not_move_min_and_max(void **state)
{
    (void)state;
    cJSON *s[2] = {
        parse("{\"versions\":[],\"queueing_delay_us\":" HIST(0, 0, 0, 0, 0, 0, 0, 0) "}"),
        parse("{\"versions\":[],\"queueing_delay_us\":" HIST(0, 1, 1, 1, 70, 70, 70, 4900) "}"),
    };
    cJSON *m = cl_fe_router_merge((const cJSON *const *)s, 2);
    assert_non_null(m);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(m, "queueing_delay_us");
    assert_int_equal(num(q, "min"), 70);
    assert_int_equal(num(q, "max"), 70);
    assert_int_equal(num(q, "count"), 1);
    cJSON_Delete(m);
    cJSON_Delete(s[0]);
    cJSON_Delete(s[1]);
}

static void test_other_bounds_and_non_snapshots_are_skipped(void **state)
{
    (void)state;
    cJSON *s[4] = {
        parse(LEADER),
        /* Another build's bounds: its histogram cannot be added. */
        parse("{\"versions\":[],\"tasks_received\":1,\"queueing_delay_us\":{\"bounds\":[5],"
              "\"buckets\":[1,1],\"count\":1,\"sum\":3,\"min\":3,\"max\":3,\"sumsq\":9}}"),
        parse("{\"error\":\"the router ran out of memory\"}"),
        /* A version without a name. */
        parse("{\"versions\":[{\"model\":1,\"tasks_dispatched\":5}]}"),
    };
    cJSON *m = cl_fe_router_merge((const cJSON *const *)s, 4);
    assert_non_null(m);
    assert_int_equal(num(m, "skipped"), 3);
    assert_int_equal(num(m, "tasks_received"), 42);
    assert_int_equal(num(cJSON_GetObjectItemCaseSensitive(m, "queueing_delay_us"), "count"), 40);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "versions")), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "routers")), 3);
    cJSON_Delete(m);
    for (int i = 0; i < 4; i++)
        cJSON_Delete(s[i]);
    /* Nothing that is a snapshot: nothing to render. */
    cJSON *bad = parse("[1,2]");
    assert_null(cl_fe_router_merge((const cJSON *const *)&bad, 1));
    assert_null(cl_fe_router_merge(NULL, 0));
    cJSON_Delete(bad);
}

static void test_a_gatherer_waits_for_as_many_routers_as_they_hear(void **state)
{
    (void)state;
    cJSON *s[3] = {parse(LEADER),
                   parse("{\"versions\":[],\"router\":{\"routers\":1e9}}"),
                   parse("{\"versions\":[]}")};
    assert_int_equal(cl_fe_router_expected((const cJSON *const *)s, 1), 2);
    /* An absurd count is not believed; no count means one. */
    assert_int_equal(cl_fe_router_expected((const cJSON *const *)&s[1], 2), 1);
    assert_int_equal(cl_fe_router_expected(NULL, 0), 1);
    for (int i = 0; i < 3; i++)
        cJSON_Delete(s[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_add_up_gauges_come_from_the_leader),
        cmocka_unit_test(test_histograms_merge_bucket_by_bucket),
        cmocka_unit_test(test_an_empty_histogram_does_not_move_min_and_max),
        cmocka_unit_test(test_other_bounds_and_non_snapshots_are_skipped),
        cmocka_unit_test(test_a_gatherer_waits_for_as_many_routers_as_they_hear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
