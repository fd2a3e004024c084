/* Unit tests of the strict JSON getters (bus/json.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_json.h"

static cJSON *parse(const char *text)
{
    cJSON *o = NULL;
    cl_err err;
    assert_int_equal(cl_json_parse_object(&o, text, strlen(text), &err), CL_OK);
    return o;
}

static void test_parse_accepts_a_buffer_without_terminator(void **state)
{
    (void)state;
    const char text[] = "{\"a\":1}GARBAGE";
    cJSON *o = NULL;
    cl_err err;
    assert_int_equal(cl_json_parse(&o, text, 7, &err), CL_OK);
    int64_t a;
    assert_int_equal(cl_json_get_int(o, "a", &a, &err), CL_OK);
    assert_int_equal(a, 1);
    cJSON_Delete(o);
}

static void test_malformed_json_reports_the_offset(void **state)
{
    (void)state;
    cJSON *o = NULL;
    cl_err err;
    const char *text = "{\"a\": tru}";
    assert_int_equal(cl_json_parse(&o, text, strlen(text), &err), CL_ERR_INVALID);
    assert_null(o);
    assert_non_null(strstr(err.msg, "malformed JSON at offset 6"));
    text = "{\"a\": 1";
    assert_int_equal(cl_json_parse(&o, text, strlen(text), &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "malformed JSON at offset"));
    assert_int_equal(cl_json_parse(&o, "", 0, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "empty"));
    text = "{} {}";
    assert_int_equal(cl_json_parse(&o, text, strlen(text), &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "offset 3"));
}

static void test_parse_object_rejects_other_top_levels(void **state)
{
    (void)state;
    cJSON *o = NULL;
    cl_err err;
    assert_int_equal(cl_json_parse_object(&o, "[1]", 3, &err), CL_ERR_INVALID);
    assert_null(o);
    assert_string_equal(err.msg, "expected a JSON object, got array");
}

static void test_getters_return_values_of_the_right_type(void **state)
{
    (void)state;
    cJSON *o = parse("{\"s\":\"x\",\"i\":-42,\"b\":true,\"a\":[1],\"sa\":[\"p\",\"q\"],"
                     "\"big\":9007199254740992}");
    cl_err err;
    const char *s;
    int64_t i;
    bool b;
    const cJSON *a;
    assert_int_equal(cl_json_get_string(o, "s", &s, &err), CL_OK);
    assert_string_equal(s, "x");
    assert_int_equal(cl_json_get_int(o, "i", &i, &err), CL_OK);
    assert_int_equal(i, -42);
    assert_int_equal(cl_json_get_int(o, "big", &i, &err), CL_OK);
    assert_true(i == 9007199254740992LL);
    assert_int_equal(cl_json_get_bool(o, "b", &b, &err), CL_OK);
    assert_true(b);
    assert_int_equal(cl_json_get_array(o, "a", &a, &err), CL_OK);
    assert_int_equal(cJSON_GetArraySize(a), 1);
    assert_int_equal(cl_json_get_string_array(o, "sa", &a, &err), CL_OK);
    assert_int_equal(cJSON_GetArraySize(a), 2);
    cJSON_Delete(o);
}

static void test_wrong_types_name_the_field_and_the_actual_type(void **state)
{
    (void)state;
    cJSON *o = parse("{\"latency_slo_micros\":\"100\",\"f\":1.5,\"n\":null,\"sa\":[\"a\",2],"
                     "\"o\":{}}");
    cl_err err;
    int64_t i;
    const char *s;
    bool b;
    const cJSON *a;
    assert_int_equal(cl_json_get_int(o, "latency_slo_micros", &i, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "field 'latency_slo_micros' must be an integer, got string");
    assert_int_equal(cl_json_get_int(o, "f", &i, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "field 'f' must be an integer, got 1.5");
    assert_int_equal(cl_json_get_string(o, "f", &s, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "field 'f' must be a string, got number");
    assert_int_equal(cl_json_get_bool(o, "n", &b, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "field 'n' must be a boolean, got null");
    assert_int_equal(cl_json_get_array(o, "o", &a, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "field 'o' must be an array, got object");
    assert_int_equal(cl_json_get_string_array(o, "sa", &a, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "field 'sa' must be an array of strings, but element 1 is number");
    cJSON_Delete(o);
}

static void test_missing_required_field_is_named(void **state)
{
    (void)state;
    cJSON *o = parse("{}");
    cl_err err;
    const char *s;
    assert_int_equal(cl_json_get_string(o, "name", &s, &err), CL_ERR_INVALID);
    assert_int_equal(err.code, CL_ERR_INVALID);
    assert_string_equal(err.msg, "missing field 'name'");
    cJSON_Delete(o);
}

static void test_optional_fields_may_be_absent_but_not_mistyped(void **state)
{
    (void)state;
    cJSON *o = parse("{\"v\":\"1\",\"n\":3,\"t\":false}");
    cl_err err;
    bool present = true;
    const char *s;
    int64_t i;
    bool b;
    assert_int_equal(cl_json_opt_string(o, "absent", &s, &present, &err), CL_OK);
    assert_false(present);
    assert_int_equal(cl_json_opt_string(o, "v", &s, &present, &err), CL_OK);
    assert_true(present);
    assert_string_equal(s, "1");
    assert_int_equal(cl_json_opt_int(o, "n", &i, &present, &err), CL_OK);
    assert_true(present);
    assert_int_equal(i, 3);
    assert_int_equal(cl_json_opt_bool(o, "t", &b, &present, &err), CL_OK);
    assert_true(present);
    assert_false(b);
    assert_int_equal(cl_json_opt_int(o, "v", &i, &present, &err), CL_ERR_INVALID);
    assert_false(present);
    assert_string_equal(err.msg, "field 'v' must be an integer, got string");
    assert_int_equal(cl_json_opt_bool(o, "n", &b, &present, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "field 'n' must be a boolean, got number");
    cJSON_Delete(o);
}

static void test_only_fields_rejects_unknown_fields(void **state)
{
    (void)state;
    cJSON *o = parse("{\"name\":\"a\",\"x\":1}");
    cl_err err;
    const char *const ok[] = {"name", "x", NULL};
    const char *const strict[] = {"name", NULL};
    assert_int_equal(cl_json_only_fields(o, ok, &err), CL_OK);
    assert_int_equal(cl_json_only_fields(o, strict, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "unknown field 'x'");
    cJSON_Delete(o);
}

static void test_getters_on_a_non_object_say_so(void **state)
{
    (void)state;
    cJSON *arr = cJSON_CreateArray();
    cl_err err;
    const char *s;
    bool present;
    assert_int_equal(cl_json_get_string(arr, "a", &s, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "got array"));
    assert_int_equal(cl_json_opt_string(arr, "a", &s, &present, &err), CL_ERR_INVALID);
    cJSON_Delete(arr);
}

static void test_type_names_and_print(void **state)
{
    (void)state;
    cJSON *o = parse("{\"a\":[true,null,\"s\",1]}");
    const cJSON *a = cJSON_GetObjectItem(o, "a");
    assert_string_equal(cl_json_type_name(cJSON_GetArrayItem(a, 0)), "boolean");
    assert_string_equal(cl_json_type_name(cJSON_GetArrayItem(a, 1)), "null");
    assert_string_equal(cl_json_type_name(cJSON_GetArrayItem(a, 2)), "string");
    assert_string_equal(cl_json_type_name(cJSON_GetArrayItem(a, 3)), "number");
    assert_string_equal(cl_json_type_name(a), "array");
    assert_string_equal(cl_json_type_name(o), "object");
    char *text = cl_json_print(o);
    assert_string_equal(text, "{\"a\":[true,null,\"s\",1]}");
    free(text);
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_a_buffer_without_terminator),
        cmocka_unit_test(test_malformed_json_reports_the_offset),
        cmocka_unit_test(test_parse_object_rejects_other_top_levels),
        cmocka_unit_test(test_getters_return_values_of_the_right_type),
        cmocka_unit_test(test_wrong_types_name_the_field_and_the_actual_type),
        cmocka_unit_test(test_missing_required_field_is_named),
        cmocka_unit_test(test_optional_fields_may_be_absent_but_not_mistyped),
        cmocka_unit_test(test_only_fields_rejects_unknown_fields),
        cmocka_unit_test(test_getters_on_a_non_object_say_so),
        cmocka_unit_test(test_type_names_and_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
