/* Unit tests: the /metrics document (actors/frontend/fe_metrics.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fe_metrics.h"

/* The inner object of metric name in category, or NULL. */
static const cJSON *metric(const cJSON *root, const char *category, const char *name)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, category);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *inner = cJSON_GetObjectItemCaseSensitive(e, name);
        if (inner != NULL)
            return inner;
    }
    return NULL;
}

static const char *field(const cJSON *m, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static cJSON *render(cl_fe_metrics *m, uint64_t now)
{
    char *s = cl_fe_metrics_json(m, now);
    assert_non_null(s);
    cJSON *root = cJSON_Parse(s);
    free(s);
    assert_non_null(root);
    return root;
}

static void test_metrics_have_clippers_categories_in_order(void **state)
{
    (void)state;
    cl_fe_metrics *m;
    assert_int_equal(cl_fe_metrics_new(&m, 0), CL_OK);
    char *s = cl_fe_metrics_json(m, 0);
    assert_non_null(s);
    /* Clipper's categories, in its order; the internal metrics exist from
     * the start (no router snapshot: no rpc_request_queueing_delay). */
    const char *c = strstr(s, "\"counters\":[{\"internal:aggregate_num_predictions\":{\"count\":\"0\"}}"),
               *r = strstr(s, "\"ratio_counters\":[{\"internal:prediction_cache_hit_ratio\""),
               *me = strstr(s, "\"meters\":[{\"internal:aggregate_model_throughput\""),
               *h = strstr(s, "\"histograms\":[]");
    assert_true(s[0] == '{' && c == s + 1);
    assert_true(r != NULL && me != NULL && h != NULL && c < r && r < me && me < h);
    assert_non_null(strstr(s, "{\"internal:prediction_cache_lookups\":{\"count\":\"0\"}}"));
    assert_null(strstr(s, "rpc_request_queueing_delay"));
    free(s);
    cl_fe_metrics_free(m);
}

static void test_metrics_count_predictions_and_default_ratio_as_strings(void **state)
{
    (void)state;
    cl_fe_metrics *m;
    assert_int_equal(cl_fe_metrics_new(&m, 0), CL_OK);
    cl_fe_metrics_answer(m, "a", 100, CL_FE_OUTCOME_OUTPUT, 0);
    cl_fe_metrics_answer(m, "a", 300, CL_FE_OUTCOME_NO_MODEL, 2000);
    cl_fe_metrics_answer(m, "a", 200, CL_FE_OUTCOME_OUTPUT, 3000);
    cl_fe_metrics_answer(m, "a", 400, CL_FE_OUTCOME_OUTPUT, 4000);
    cl_fe_metrics_model(m, "mod", "1", 50, 4000);
    cl_fe_metrics_touch_app(m, "idle", 4000);
    cJSON *root = render(m, 2000000);
    assert_string_equal(field(metric(root, "counters", "app:a:num_predictions"), "count"), "4");
    assert_string_equal(field(metric(root, "counters", "internal:aggregate_num_predictions"),
                              "count"),
                        "4");
    assert_string_equal(
        field(metric(root, "ratio_counters", "app:a:default_prediction_ratio"), "ratio"), "0.25");
    assert_string_equal(
        field(metric(root, "ratio_counters", "app:idle:default_prediction_ratio"), "ratio"), "0");
    const cJSON *h = metric(root, "histograms", "app:a:prediction_latency");
    assert_non_null(h);
    assert_string_equal(field(h, "unit"), "microseconds");
    assert_string_equal(field(h, "size"), "4");
    assert_string_equal(field(h, "min"), "100");
    assert_string_equal(field(h, "max"), "400");
    assert_string_equal(field(h, "mean"), "250");
    assert_string_equal(field(h, "p50"), "250");
    const cJSON *mt = metric(root, "meters", "app:a:prediction_throughput");
    assert_string_equal(field(mt, "unit"), "events per second");
    assert_string_equal(field(mt, "rate"), "2"); /* 4 events in 2 s */
    assert_non_null(metric(root, "counters", "model:mod:1:num_predictions"));
    assert_non_null(metric(root, "histograms", "model:mod:1:prediction_latency"));
    assert_null(metric(root, "ratio_counters", "model:mod:1:default_prediction_ratio"));
    cJSON_Delete(root);
    cl_fe_metrics_free(m);
}

static void test_metrics_reservoir_is_bounded(void **state)
{
    (void)state;
    cl_fe_metrics *m;
    assert_int_equal(cl_fe_metrics_new(&m, 0), CL_OK);
    for (int i = 0; i < 3 * CL_FE_RESERVOIR; i++)
        cl_fe_metrics_answer(m, "a", (uint64_t)(i % 1000), CL_FE_OUTCOME_OUTPUT, 1);
    cJSON *root = render(m, 1);
    const cJSON *h = metric(root, "histograms", "app:a:prediction_latency");
    assert_int_equal(atoi(field(h, "size")), CL_FE_RESERVOIR);
    assert_string_equal(field(metric(root, "counters", "app:a:num_predictions"), "count"), "12288");
    double p99 = atof(field(h, "p99"));
    assert_true(p99 > 900 && p99 <= 999);
    cJSON_Delete(root);
    cl_fe_metrics_free(m);
}

static void test_metrics_meter_ewma_decays_after_ticks(void **state)
{
    (void)state;
    cl_fe_metrics *m;
    assert_int_equal(cl_fe_metrics_new(&m, 0), CL_OK);
    for (int i = 0; i < 50; i++)
        cl_fe_metrics_answer(m, "a", 1, CL_FE_OUTCOME_OUTPUT, 1000);
    cJSON *root = render(m, 5001000); /* one tick: 50 events / 5 s */
    assert_string_equal(
        field(metric(root, "meters", "app:a:prediction_throughput"), "rate_1min"), "10");
    cJSON_Delete(root);
    root = render(m, 65001000); /* 12 empty ticks later */
    double r = atof(field(metric(root, "meters", "app:a:prediction_throughput"), "rate_1min"));
    assert_true(r > 3 && r < 4); /* 10 * exp(-1) */
    cJSON_Delete(root);
    cl_fe_metrics_free(m);
}

static void test_percentile_interpolates_between_neighbours(void **state)
{
    (void)state;
    int64_t v[] = {10, 20, 30, 40};
    assert_true(cl_fe_percentile(v, 4, 0.5) == 25);
    assert_true(cl_fe_percentile(v, 4, 0.0) == 10);
    assert_true(cl_fe_percentile(v, 4, 0.99) == 40);
    assert_true(cl_fe_percentile(v, 0, 0.5) == 0);
    int64_t one[] = {7};
    assert_true(cl_fe_percentile(one, 1, 0.95) == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_have_clippers_categories_in_order),
        cmocka_unit_test(test_metrics_count_predictions_and_default_ratio_as_strings),
        cmocka_unit_test(test_metrics_reservoir_is_bounded),
        cmocka_unit_test(test_metrics_meter_ewma_decays_after_ticks),
        cmocka_unit_test(test_percentile_interpolates_between_neighbours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
