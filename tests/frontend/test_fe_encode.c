/* Unit tests: Clipper's predict response bodies (actors/frontend/fe_encode.h)
 * and output values (fe_json.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_encode.h"
#include "fe_json.h"

static void expect_body(const cl_fe_answer *a, size_t n, const char *default_output,
                        int want_status, const char *want)
{
    int status = 0;
    char *body = cl_fe_encode_answers(a, n, default_output, &status);
    assert_non_null(body);
    assert_int_equal(status, want_status);
    assert_string_equal(body, want);
    free(body);
}

static cl_fe_answer out(uint64_t id, const char *text)
{
    return (cl_fe_answer){id, CL_FE_ANSWER_OUTPUT, text, strlen(text)};
}

static void test_encode_output_that_is_json_is_inserted_as_json(void **state)
{
    (void)state;
    cl_fe_answer a = out(17, "[1, 2.50]");
    expect_body(&a, 1, "x", 200, "{\"query_id\":17,\"output\":[1, 2.50],\"default\":false}");
    a = out(3, " -1.0 \n");
    expect_body(&a, 1, "x", 200, "{\"query_id\":3,\"output\":-1.0,\"default\":false}");
    a = out(4, "{\"label\":\"cat\"}");
    expect_body(&a, 1, "x", 200, "{\"query_id\":4,\"output\":{\"label\":\"cat\"},\"default\":false}");
}

static void test_encode_output_that_is_not_json_is_inserted_as_string(void **state)
{
    (void)state;
    cl_fe_answer a = out(0, "abc");
    expect_body(&a, 1, "x", 200, "{\"query_id\":0,\"output\":\"abc\",\"default\":false}");
    a = out(1, "01"); /* not strict JSON: a string, never invalid output */
    expect_body(&a, 1, "x", 200, "{\"query_id\":1,\"output\":\"01\",\"default\":false}");
    a = out(2, "say \"hi\"\n");
    expect_body(&a, 1, "x", 200,
                "{\"query_id\":2,\"output\":\"say \\\"hi\\\"\\n\",\"default\":false}");
    a = out(5, "");
    expect_body(&a, 1, "x", 200, "{\"query_id\":5,\"output\":\"\",\"default\":false}");
}

/* A model's bytes that are not UTF-8 must not make the reply non-JSON
 * (RFC 8259 requires UTF-8; strict clients refuse anything else). */
static void test_encode_output_that_is_not_utf8_is_repaired(void **state)
{
    (void)state;
    cl_fe_answer a = {6, CL_FE_ANSWER_OUTPUT, "caf\xe9 \xff", 6};
    expect_body(&a, 1, "x", 200,
                "{\"query_id\":6,\"output\":\"caf\xef\xbf\xbd \xef\xbf\xbd\",\"default\":false}");
    cl_fe_answer e = {7, CL_FE_ANSWER_MODEL_ERROR, "bad \x80\0x", 7};
    expect_body(&e, 1, "x", 500,
                "{\"error\":\"Model error\",\"cause\":\"bad \xef\xbf\xbd\xef\xbf\xbdx\"}");
}

static void test_encode_output_is_taken_by_length_not_nul(void **state)
{
    (void)state;
    cl_fe_answer a = {9, CL_FE_ANSWER_OUTPUT, "12345", 2};
    expect_body(&a, 1, "x", 200, "{\"query_id\":9,\"output\":12,\"default\":false}");
}

static void test_encode_default_output_parsed_as_json_when_valid(void **state)
{
    (void)state;
    cl_fe_answer a = {18, CL_FE_ANSWER_NO_MODEL, NULL, 0};
    expect_body(&a, 1, "-1.0", 200,
                "{\"query_id\":18,\"output\":-1.0,\"default\":true,\"default_explanation\":"
                "\"No connected models found for query\"}");
    a.kind = CL_FE_ANSWER_SLO;
    expect_body(&a, 1, "DEFAULT", 200,
                "{\"query_id\":18,\"output\":\"DEFAULT\",\"default\":true,\"default_explanation\":"
                "\"Failed to retrieve a prediction response within the specified latency SLO\"}");
    expect_body(&a, 1, "None", 200,
                "{\"query_id\":18,\"output\":\"None\",\"default\":true,\"default_explanation\":"
                "\"Failed to retrieve a prediction response within the specified latency SLO\"}");
}

static void test_encode_batch_of_one_is_unwrapped(void **state)
{
    (void)state;
    cl_fe_answer a = out(7, "1");
    expect_body(&a, 1, "x", 200, "{\"query_id\":7,\"output\":1,\"default\":false}");
}

static void test_encode_batch_keeps_order_and_mixes_kinds(void **state)
{
    (void)state;
    cl_fe_answer a[3] = {out(10, "1"), {11, CL_FE_ANSWER_MODEL_ERROR, "boom", 4},
                         {12, CL_FE_ANSWER_SLO, NULL, 0}};
    expect_body(a, 3, "0", 200,
                "{\"batch_predictions\":[{\"query_id\":10,\"output\":1,\"default\":false},"
                "{\"query_id\":11,\"error\":\"Model error\",\"cause\":\"boom\"},"
                "{\"query_id\":12,\"output\":0,\"default\":true,\"default_explanation\":"
                "\"Failed to retrieve a prediction response within the specified latency SLO\"}]}");
}

static void test_encode_empty_batch_is_an_empty_list(void **state)
{
    (void)state;
    expect_body(NULL, 0, "x", 200, "{\"batch_predictions\":[]}");
}

static void test_encode_single_model_error_is_500(void **state)
{
    (void)state;
    cl_fe_answer a = {1, CL_FE_ANSWER_MODEL_ERROR, "ValueError: bad", 15};
    expect_body(&a, 1, "x", 500, "{\"error\":\"Model error\",\"cause\":\"ValueError: bad\"}");
}

static void test_encode_error_body(void **state)
{
    (void)state;
    char *b = cl_fe_encode_error("Json error", "Error parsing JSON: \"x\"\n");
    assert_string_equal(b, "{\"error\":\"Json error\",\"cause\":\"Error parsing JSON: \\\"x\\\"\\n\"}");
    free(b);
}

static void test_output_value_with_bom_and_whitespace_is_trimmed(void **state)
{
    (void)state;
    cJSON *v = cl_fe_output_value("\xEF\xBB\xBF [true] ", 11);
    char *s = cJSON_PrintUnformatted(v);
    assert_string_equal(s, "[true]");
    free(s);
    cJSON_Delete(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_output_that_is_json_is_inserted_as_json),
        cmocka_unit_test(test_encode_output_that_is_not_json_is_inserted_as_string),
        cmocka_unit_test(test_encode_output_that_is_not_utf8_is_repaired),
        cmocka_unit_test(test_encode_output_is_taken_by_length_not_nul),
        cmocka_unit_test(test_encode_default_output_parsed_as_json_when_valid),
        cmocka_unit_test(test_encode_batch_of_one_is_unwrapped),
        cmocka_unit_test(test_encode_batch_keeps_order_and_mixes_kinds),
        cmocka_unit_test(test_encode_empty_batch_is_an_empty_list),
        cmocka_unit_test(test_encode_single_model_error_is_500),
        cmocka_unit_test(test_encode_error_body),
        cmocka_unit_test(test_output_value_with_bom_and_whitespace_is_trimmed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
