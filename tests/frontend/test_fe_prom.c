/* Unit tests: the Prometheus text format (fe_prom.h), the frontend's
 * families (cl_fe_metrics_prom), the router's families from its snapshot,
 * and Clipper's JSON histograms estimated from the router's buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fe_metrics.h"
#include "fe_prom.h"

static char *take(cl_fe_prom *p)
{
    char *s = cl_fe_prom_take(p);
    assert_non_null(s);
    return s;
}

/* Asserts that text has line as a whole line. */
static void has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    }
    fail_msg("no line '%s' in:\n%s", line, text);
}

static void test_label_values_are_escaped(void **state)
{
    (void)state;
    cl_fe_prom p;
    cl_fe_prom_init(&p);
    cl_fe_prom_family(&p, "x_total", "counter", "Help with a \\ backslash\nand a newline.");
    cl_fe_prom_sample(&p, "x_total", (const char *const[]){"app", "a\"b\\c\nd", NULL}, 3);
    cl_fe_prom_sample(&p, "x_total", NULL, 0.5);
    char *s = take(&p);
    assert_string_equal(s, "# HELP x_total Help with a \\\\ backslash\\nand a newline.\n"
                           "# TYPE x_total counter\n"
                           "x_total{app=\"a\\\"b\\\\c\\nd\"} 3\n"
                           "x_total 0.5\n");
    free(s);
    cl_fe_prom_deinit(&p);
}

static void test_numbers_read_back_the_same(void **state)
{
    (void)state;
    char s[32];
    cl_fe_prom_number(s, 12);
    assert_string_equal(s, "12");
    cl_fe_prom_number(s, 0.0005);
    assert_string_equal(s, "0.0005");
    cl_fe_prom_number(s, 1.0 / 0.0);
    assert_string_equal(s, "+Inf");
    cl_fe_prom_number(s, 0.0 / 0.0);
    assert_string_equal(s, "NaN");
    cl_fe_prom_number(s, 0.1 + 0.2);
    assert_true(strtod(s, NULL) == 0.1 + 0.2);
}

static void test_histogram_has_cumulative_buckets_sum_and_count(void **state)
{
    (void)state;
    cl_fe_prom p;
    cl_fe_prom_init(&p);
    const double bounds[] = {0.001, 0.01};
    const uint64_t cum[] = {1, 3, 4};
    cl_fe_prom_histogram(&p, "lat_seconds", (const char *const[]){"app", "a", NULL}, bounds, 2,
                         cum, 2.5);
    char *s = take(&p);
    assert_string_equal(s, "lat_seconds_bucket{app=\"a\",le=\"0.001\"} 1\n"
                           "lat_seconds_bucket{app=\"a\",le=\"0.01\"} 3\n"
                           "lat_seconds_bucket{app=\"a\",le=\"+Inf\"} 4\n"
                           "lat_seconds_sum{app=\"a\"} 2.5\n"
                           "lat_seconds_count{app=\"a\"} 4\n");
    free(s);
    cl_fe_prom_deinit(&p);
}

static void test_frontend_families_count_answers_defaults_and_errors(void **state)
{
    (void)state;
    cl_fe_metrics *m;
    assert_int_equal(cl_fe_metrics_new(&m, 0), CL_OK);
    cl_fe_metrics_answer(m, "a", 200, CL_FE_OUTCOME_OUTPUT, 1);       /* 0.2 ms */
    cl_fe_metrics_answer(m, "a", 3000, CL_FE_OUTCOME_OUTPUT, 1);      /* 3 ms */
    cl_fe_metrics_answer(m, "a", 100000, CL_FE_OUTCOME_SLO, 1);       /* 100 ms: le 0.1 */
    cl_fe_metrics_answer(m, "a", 50, CL_FE_OUTCOME_NO_MODEL, 1);
    cl_fe_metrics_answer(m, "a", 700, CL_FE_OUTCOME_MODEL_ERROR, 1);
    cl_fe_metrics_error(m, "a", CL_FE_ERR_BAD_REQUEST, 1);
    cl_fe_metrics_error(m, NULL, CL_FE_ERR_UNKNOWN_APP, 1);
    cl_fe_metrics_error(m, NULL, CL_FE_ERR_UNKNOWN_APP, 1);
    cl_fe_metrics_model(m, "mod", "v\"1", 3000, 1);
    cl_fe_metrics_cache(m, "mod", "v\"1", true, 1);
    cl_fe_metrics_cache(m, "mod", "v\"1", false, 1);
    cl_fe_prom p;
    cl_fe_prom_init(&p);
    cl_fe_metrics_prom(m, &p);
    char *s = take(&p);
    has_line(s, "# TYPE clipper_queries_total counter");
    has_line(s, "clipper_queries_total{app=\"a\"} 5");
    has_line(s, "clipper_default_outputs_total{app=\"a\",reason=\"no_model\"} 1");
    has_line(s, "clipper_default_outputs_total{app=\"a\",reason=\"slo\"} 1");
    has_line(s, "clipper_query_errors_total{app=\"a\",kind=\"bad_request\"} 1");
    has_line(s, "clipper_query_errors_total{app=\"a\",kind=\"model_error\"} 1");
    has_line(s, "clipper_query_errors_total{app=\"\",kind=\"unknown_app\"} 2");
    has_line(s, "# TYPE clipper_query_latency_seconds histogram");
    has_line(s, "clipper_query_latency_seconds_bucket{app=\"a\",le=\"0.0001\"} 1");  /* 50 µs */
    has_line(s, "clipper_query_latency_seconds_bucket{app=\"a\",le=\"0.00025\"} 2"); /* +200 */
    has_line(s, "clipper_query_latency_seconds_bucket{app=\"a\",le=\"0.001\"} 3");   /* +700 */
    has_line(s, "clipper_query_latency_seconds_bucket{app=\"a\",le=\"0.005\"} 4");   /* +3000 */
    has_line(s, "clipper_query_latency_seconds_bucket{app=\"a\",le=\"0.05\"} 4");
    has_line(s, "clipper_query_latency_seconds_bucket{app=\"a\",le=\"0.1\"} 5");
    has_line(s, "clipper_query_latency_seconds_bucket{app=\"a\",le=\"+Inf\"} 5");
    has_line(s, "clipper_query_latency_seconds_sum{app=\"a\"} 0.10395");
    has_line(s, "clipper_query_latency_seconds_count{app=\"a\"} 5");
    has_line(s, "clipper_model_predictions_total{model=\"mod\",version=\"v\\\"1\"} 1");
    has_line(s, "clipper_model_latency_seconds_count{model=\"mod\",version=\"v\\\"1\"} 1");
    has_line(s, "clipper_cache_lookups_total{model=\"mod\",version=\"v\\\"1\"} 2");
    has_line(s, "clipper_cache_hits_total{model=\"mod\",version=\"v\\\"1\"} 1");
    /* Each family once, its samples right after its TYPE line. */
    const char *t = strstr(s, "# TYPE clipper_queries_total");
    assert_null(strstr(t + 1, "# TYPE clipper_queries_total"));
    free(s);
    cl_fe_prom_deinit(&p);
    cl_fe_metrics_free(m);
}

static const char *SNAPSHOT =
    "{\"versions\":[{\"model\":\"m\",\"version\":\"1\",\"queue_depth\":3,"
    "\"replicas_live\":2,\"replicas_busy\":1,\"batches_dispatched\":3,"
    "\"tasks_dispatched\":10,\"tasks_expired\":1,\"tasks_shed\":4,"
    "\"batch_size\":{\"bounds\":[1,2,4,8],\"buckets\":[1,1,2,3,3],\"count\":3,\"sum\":10,"
    "\"min\":1,\"max\":5,\"sumsq\":42},"
    "\"queueing_delay_us\":{\"bounds\":[100,1000],\"buckets\":[8,9,10],\"count\":10,"
    "\"sum\":5000,\"min\":0,\"max\":4000,\"sumsq\":16500000}}],"
    "\"queueing_delay_us\":{\"bounds\":[100,1000],\"buckets\":[8,9,10],\"count\":10,"
    "\"sum\":5000,\"min\":0,\"max\":4000,\"sumsq\":16500000},"
    "\"tasks_no_replica\":7}";

static void test_router_families_from_its_snapshot(void **state)
{
    (void)state;
    cJSON *snap = cJSON_Parse(SNAPSHOT);
    assert_non_null(snap);
    cl_fe_prom p;
    cl_fe_prom_init(&p);
    cl_fe_prom_router(&p, snap);
    char *s = take(&p);
    has_line(s, "clipper_router_up 1");
    has_line(s, "clipper_queue_depth{model=\"m\",version=\"1\"} 3");
    has_line(s, "clipper_replicas_live{model=\"m\",version=\"1\"} 2");
    has_line(s, "clipper_tasks_shed_total{model=\"m\",version=\"1\"} 4");
    has_line(s, "clipper_tasks_expired_total{model=\"m\",version=\"1\"} 1");
    has_line(s, "clipper_batch_size_bucket{model=\"m\",version=\"1\",le=\"4\"} 2");
    has_line(s, "clipper_batch_size_bucket{model=\"m\",version=\"1\",le=\"+Inf\"} 3");
    has_line(s, "clipper_batch_size_sum{model=\"m\",version=\"1\"} 10");
    has_line(s, "clipper_router_queueing_delay_seconds_bucket{model=\"m\",version=\"1\",le=\"0.0001\"} 8");
    has_line(s, "clipper_router_queueing_delay_seconds_sum{model=\"m\",version=\"1\"} 0.005");
    has_line(s, "clipper_router_tasks_no_replica_total 7");
    free(s);
    cl_fe_prom_deinit(&p);

    /* No router: only clipper_router_up 0. */
    cl_fe_prom_init(&p);
    cl_fe_prom_router(&p, NULL);
    s = take(&p);
    has_line(s, "clipper_router_up 0");
    assert_null(strstr(s, "clipper_queue_depth"));
    free(s);
    cl_fe_prom_deinit(&p);
    cJSON_Delete(snap);
}

static void test_malformed_router_histograms_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"bounds\":[1,2],\"buckets\":[1,2],\"count\":2,\"sum\":1,\"min\":0,\"max\":1}",
        "{\"bounds\":[2,1],\"buckets\":[1,1,2],\"count\":2,\"sum\":1,\"min\":0,\"max\":1}",
        "{\"bounds\":[1,2],\"buckets\":[2,1,2],\"count\":2,\"sum\":1,\"min\":0,\"max\":1}",
        "{\"bounds\":[1,2],\"buckets\":[1,1,2],\"count\":3,\"sum\":1,\"min\":0,\"max\":1}",
        "{\"bounds\":\"x\",\"buckets\":[1],\"count\":1,\"sum\":1,\"min\":0,\"max\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        cl_fe_bucket_hist h;
        assert_false(cl_fe_bucket_hist_read(j, &h));
        cJSON_Delete(j);
    }
}

static void test_clipper_json_gets_batch_size_and_queueing_delay_from_the_router(void **state)
{
    (void)state;
    cJSON *snap = cJSON_Parse(SNAPSHOT);
    cl_fe_metrics *m;
    assert_int_equal(cl_fe_metrics_new(&m, 0), CL_OK);
    char *s = cl_fe_metrics_json_with(m, 1, snap);
    cJSON *root = cJSON_Parse(s);
    assert_non_null(root);
    const cJSON *bs = NULL, *qd = NULL, *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "histograms"))
    {
        if (cJSON_GetObjectItemCaseSensitive(e, "model:m:1:batch_size"))
            bs = cJSON_GetObjectItemCaseSensitive(e, "model:m:1:batch_size");
        if (cJSON_GetObjectItemCaseSensitive(e, "internal:rpc_request_queueing_delay"))
            qd = cJSON_GetObjectItemCaseSensitive(e, "internal:rpc_request_queueing_delay");
    }
    assert_non_null(bs);
    assert_non_null(qd);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(bs, "unit")->valuestring, "queries");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(bs, "size")->valuestring, "3");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(bs, "max")->valuestring, "5");
    /* mean 10/3; std_dev sqrt(42/3 - (10/3)^2) */
    assert_true(atof(cJSON_GetObjectItemCaseSensitive(bs, "mean")->valuestring) > 3.33 &&
                atof(cJSON_GetObjectItemCaseSensitive(bs, "mean")->valuestring) < 3.34);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(qd, "unit")->valuestring,
                        "microseconds");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(qd, "size")->valuestring, "10");
    /* 8 of 10 at most 100 µs: p50 in the first bucket, p99 in the last
     * (1000 .. max 4000). */
    double p50 = atof(cJSON_GetObjectItemCaseSensitive(qd, "p50")->valuestring);
    double p99 = atof(cJSON_GetObjectItemCaseSensitive(qd, "p99")->valuestring);
    assert_true(p50 >= 0 && p50 <= 100);
    assert_true(p99 > 1000 && p99 <= 4000);
    cJSON_Delete(root);
    free(s);
    cl_fe_metrics_free(m);
    cJSON_Delete(snap);
}

static void test_bucket_quantiles_interpolate_within_a_bucket(void **state)
{
    (void)state;
    cl_fe_bucket_hist h = {.n_bounds = 2, .bounds = {10, 20}, .cumulative = {0, 10, 10},
                           .count = 10, .sum = 150, .min = 10, .max = 20, .sumsq = 2300};
    double v[8];
    cl_fe_bucket_summary(&h, v);
    assert_true(v[0] == 10 && v[1] == 10 && v[2] == 20 && v[3] == 15);
    assert_true(v[5] == 15); /* p50: halfway through (10, 20] */
    assert_true(v[6] > 19 && v[6] <= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_numbers_read_back_the_same),
        cmocka_unit_test(test_histogram_has_cumulative_buckets_sum_and_count),
        cmocka_unit_test(test_frontend_families_count_answers_defaults_and_errors),
        cmocka_unit_test(test_router_families_from_its_snapshot),
        cmocka_unit_test(test_malformed_router_histograms_are_refused),
        cmocka_unit_test(test_clipper_json_gets_batch_size_and_queueing_delay_from_the_router),
        cmocka_unit_test(test_bucket_quantiles_interpolate_within_a_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
