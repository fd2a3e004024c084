/* Unit tests: strict JSON text and number literals (actors/frontend/fe_json.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_json.h"
#include "fe_json.h"

static void test_json_records_each_number_literal_and_how_it_was_written(void **state)
{
    (void)state;
    const char *t = "{\"s\": \"1.5 inside a string \\\" 2\", \"a\": [1, 2.0, -3e2, 0, -0.5E+1]}";
    cl_fe_doc d;
    cl_err err;
    assert_int_equal(cl_fe_doc_parse(&d, t, strlen(t), &err), CL_OK);
    assert_int_equal(d.n_nums, 5);
    const uint8_t want[] = {0, CL_FE_NUM_DOUBLE, CL_FE_NUM_DOUBLE, 0, CL_FE_NUM_DOUBLE};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(d.nums[i].flags, want[i]);
    assert_memory_equal(t + d.nums[2].off, "-3e2", d.nums[2].len);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(d.root, "a");
    assert_int_equal(cl_fe_doc_num_index(&d, a), 0);
    assert_int_equal(cl_fe_doc_num_index(&d, a->child->next), 1);
    assert_int_equal(cl_fe_count_numbers(d.root), 5);
    cl_fe_doc_deinit(&d);
}

static void test_json_rejects_numbers_rfc8259_rejects(void **state)
{
    (void)state;
    const char *bad[] = {"[01]", "[-01]", "[1.]", "[.5]", "[1e]", "[1.5e+]", "[+1]", "[1e400]",
                         "[- 1]", "[0x10]", "[NaN]", "[Infinity]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_fe_doc d;
        cl_err err;
        if (cl_fe_doc_parse(&d, bad[i], strlen(bad[i]), &err) == CL_OK)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err.msg, "JSON parse error: "));
        assert_non_null(strstr(err.msg, "(offset "));
    }
}

static void test_json_accepts_valid_documents_with_whitespace(void **state)
{
    (void)state;
    const char *good[] = {" {\"a\" : [ 1 , 2.5e-3 ] } \n", "\"x\"", "0", "-0", "null", "[]",
                          "\xEF\xBB\xBF{}", "[\"\\u0041\\n\"]", "1E5"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cl_fe_doc d;
        cl_err err;
        if (cl_fe_doc_parse(&d, good[i], strlen(good[i]), &err) != CL_OK)
            fail_msg("'%s' was rejected: %s", good[i], err.msg);
        cl_fe_doc_deinit(&d);
    }
}

static void test_json_parse_error_of_truncated_document_says_end(void **state)
{
    (void)state;
    cl_fe_doc d;
    cl_err err;
    assert_int_equal(cl_fe_doc_parse(&d, "{\"input\": [1.0", 14, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg,
                        "JSON parse error: Unexpected end of the document. (offset 14)\n");
    assert_int_equal(cl_fe_doc_parse(&d, "  \n ", 4, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "JSON parse error: The document is empty. (offset 4)\n");
    assert_int_equal(cl_fe_doc_parse(&d, "{\"a\" 1}", 7, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unexpected character"));
}

static void test_json_type_names_are_rapidjsons(void **state)
{
    (void)state;
    cJSON *arr = cJSON_Parse("[null, false, true, {}, [], \"s\", 1]");
    const char *want[] = {"Null", "False", "True", "Object", "Array", "String", "Number"};
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) assert_string_equal(cl_json_clipper_type_name(e), want[i++]);
    cJSON_Delete(arr);
}

static void test_json_records_string_values_holding_nul(void **state)
{
    (void)state;
    const char *t = "{\"k\": \"a\", \"l\": [\"b\\u0000\", 1, \"c\"], \"m\": \"\\u0000\"}";
    cl_fe_doc d;
    cl_err err;
    assert_int_equal(cl_fe_doc_parse(&d, t, strlen(t), &err), CL_OK);
    assert_int_equal(d.n_nul_strs, 2);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(d.root, "l");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(d.root, "m");
    assert_int_equal(cl_fe_doc_str_index(&d, l), 1);
    assert_int_equal(cl_fe_doc_str_index(&d, m), 3);
    assert_false(cl_fe_doc_str_has_nul(&d, 0));
    assert_true(cl_fe_doc_str_has_nul(&d, 1));
    assert_false(cl_fe_doc_str_has_nul(&d, 2));
    assert_true(cl_fe_doc_str_has_nul(&d, 3));
    cl_buf tmp;
    cl_buf_init(&tmp);
    const char *s = NULL;
    size_t len = 0;
    assert_int_equal(cl_fe_doc_string(&d, l->child, 1, &tmp, &s, &len), CL_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(s, "b\0", 2);
    assert_int_equal(cl_fe_doc_string(&d, l->child->next->next, 2, &tmp, &s, &len), CL_OK);
    assert_int_equal(len, 1);
    assert_memory_equal(s, "c", 1);
    cl_buf_deinit(&tmp);
    cl_fe_doc_deinit(&d);
}

static void test_json_model_outputs_keep_what_bodies_refuse(void **state)
{
    (void)state;
    /* A body may not repeat a key, but a model's output that does is
     * still JSON and is inserted as it is, as Clipper did. */
    const char *dup = "{\"a\": 1, \"a\": 2}";
    size_t s, e;
    cl_fe_doc d;
    cl_err err;
    assert_int_equal(cl_fe_doc_parse(&d, dup, strlen(dup), &err), CL_ERR_INVALID);
    assert_true(cl_fe_output_json_span(dup, strlen(dup), &s, &e));
    /* Text that is not UTF-8 is not JSON, for outputs as for bodies. */
    assert_false(cl_fe_output_json_span("\"\xff\"", 3, &s, &e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_records_each_number_literal_and_how_it_was_written),
        cmocka_unit_test(test_json_rejects_numbers_rfc8259_rejects),
        cmocka_unit_test(test_json_accepts_valid_documents_with_whitespace),
        cmocka_unit_test(test_json_parse_error_of_truncated_document_says_end),
        cmocka_unit_test(test_json_type_names_are_rapidjsons),
        cmocka_unit_test(test_json_records_string_values_holding_nul),
        cmocka_unit_test(test_json_model_outputs_keep_what_bodies_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
