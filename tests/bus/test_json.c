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

/* cl_json_parse_body's refusal of text (len bytes), with its message. */
static void expect_refused(const char *text, size_t len, const char *what)
{
    cJSON *o = NULL;
    cl_err err;
    if (cl_json_parse_body(&o, text, len, &err) == CL_OK) {
        cJSON_Delete(o);
        fail_msg("'%.*s' was accepted", (int)len, text);
    }
    assert_null(o);
    if (strstr(err.msg, what) == NULL)
        fail_msg("'%.*s': '%s' does not say '%s'", (int)len, text, err.msg, what);
}

#define REFUSED(lit, what) expect_refused(lit, sizeof(lit) - 1, what)

static void test_parse_refuses_a_nul_in_a_value_naming_the_field(void **state)
{
    (void)state;
    /* cJSON would cut "a\u0000b" to "a": an app would be created as "a". */
    REFUSED("{\"name\": \"a\\u0000b\"}",
            "field 'name' contains a NUL character (\\u0000), which is not allowed");
    REFUSED("{\"name\": \"ok\", \"labels\": [\"x\", \"\\u0000\"]}", "field 'labels[1]'");
    REFUSED("{\"resources\": {\"limits\": {\"cpu\": \"1\\u0000\"}}}",
            "field 'resources.limits.cpu'");
    REFUSED("\"\\u0000\"", "the JSON string contains a NUL character");
    /* A key "a" before it is not counted as a value. */
    REFUSED("{\"a\": \"x\", \"b\": [\"y\", {\"c\": \"z\\u0000\"}]}", "field 'b[1].c'");
}

static void test_parse_refuses_a_nul_in_a_key(void **state)
{
    (void)state;
    REFUSED("{\"name\\u0000x\": \"a\"}", "a key contains a NUL character");
}

static void test_parse_refuses_text_that_is_not_utf8(void **state)
{
    (void)state;
    REFUSED("{\"name\": \"\xff\"}", "not valid UTF-8");
    REFUSED("{\"name\": \"a\x80\"}", "not valid UTF-8");
    REFUSED("{\"name\": \"\xc0\xaf\"}", "not valid UTF-8");         /* overlong '/' */
    REFUSED("{\"name\": \"\xe0\x80\xaf\"}", "not valid UTF-8");     /* overlong, 3 bytes */
    REFUSED("{\"name\": \"\xf0\x80\x80\xaf\"}", "not valid UTF-8"); /* overlong, 4 bytes */
    REFUSED("{\"name\": \"\xed\xa0\x80\"}", "not valid UTF-8");     /* U+D800 in UTF-8 */
    REFUSED("{\"name\": \"\xf4\x90\x80\x80\"}", "not valid UTF-8"); /* above U+10FFFF */
    REFUSED("{\"name\": \"\xe2\x82\"}", "not valid UTF-8");         /* cut short */
    REFUSED("{\"name\": \"a\\ud800\"}", "offset");                  /* lone high escape */
    REFUSED("{\"name\": \"a\\udc00b\"}", "offset");                 /* lone low escape */
    REFUSED("{\"name\": \"a\x01\"}", "control character");
}

static void test_messages_between_actors_are_not_held_to_utf8(void **state)
{
    (void)state;
    /* A heartbeat's cause cut at its byte limit inside a UTF-8 sequence
     * still reads; a NUL or a key twice does not. */
    const char cut[] = "{\"cause\": \"caf\xc3\"}";
    cJSON *o = NULL;
    cl_err err;
    assert_int_equal(cl_json_parse(&o, cut, sizeof(cut) - 1, &err), CL_OK);
    cJSON_Delete(o);
    assert_int_equal(cl_json_parse_body(&o, cut, sizeof(cut) - 1, &err), CL_ERR_INVALID);
    const char nul[] = "{\"cause\": \"a\\u0000\"}";
    assert_int_equal(cl_json_parse(&o, nul, sizeof(nul) - 1, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "field 'cause' contains a NUL"));
    const char dup[] = "{\"a\": 1, \"a\": 2}";
    assert_int_equal(cl_json_parse_object(&o, dup, sizeof(dup) - 1, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "duplicate key 'a'"));
}

static void test_parse_accepts_utf8_and_surrogate_pairs(void **state)
{
    (void)state;
    const char text[] = "{\"name\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \\ud83d\\ude00\"}";
    cJSON *o = NULL;
    cl_err err;
    assert_int_equal(cl_json_parse_body(&o, text, sizeof(text) - 1, &err), CL_OK);
    const char *name;
    assert_int_equal(cl_json_get_string(o, "name", &name, &err), CL_OK);
    assert_string_equal(name, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
    cJSON_Delete(o);
}

static void test_parse_refuses_duplicate_keys(void **state)
{
    (void)state;
    REFUSED("{\"name\": \"a\", \"name\": \"b\"}", "duplicate key 'name'");
    REFUSED("{\"r\": {\"limits\": {\"cpu\": \"1\", \"cpu\": \"2\"}}}",
            "duplicate key 'cpu' in 'r.limits'");
    REFUSED("[{}, {\"a\": 1, \"a\": 1}]", "duplicate key 'a' in '[1]'");
    /* Many keys: compared sorted, not pairwise. */
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_buf_append_str(&b, "{"), CL_OK);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(cl_buf_printf(&b, "\"k%d\": %d, ", i, i), CL_OK);
    assert_int_equal(cl_buf_append_str(&b, "\"k4321\": 0}"), CL_OK);
    expect_refused((const char *)b.data, b.len, "duplicate key 'k4321'");
    cl_buf_deinit(&b);
    /* The same key in two objects is fine. */
    cJSON *o = parse("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}, \"x\": 3}");
    cJSON_Delete(o);
}

static void test_utf8_repair_replaces_each_bad_byte(void **state)
{
    (void)state;
    const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"ok \xc3\xa9", 5, "ok \xc3\xa9"},             /* valid: unchanged */
        {"", 0, ""},
        {"a\x80" "b", 3, "a\xef\xbf\xbd" "b"},            /* a stray continuation byte */
        {"\xff\xfe", 2, "\xef\xbf\xbd\xef\xbf\xbd"}, /* one U+FFFD per bad byte */
        {"x\xe2\x28\xa1", 4, "x\xef\xbf\xbd(\xef\xbf\xbd"},
        {"a\0b", 3, "a\xef\xbf\xbd" "b"},              /* a NUL would end the string */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"end\xc2", 4, "end\xef\xbf\xbd"},              /* cut short */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *r = cl_json_utf8_repair(cases[i].in, cases[i].len);
        assert_non_null(r);
        assert_string_equal(r, cases[i].want);
        assert_true(cl_json_utf8_valid(r, strlen(r), NULL));
        free(r);
    }
}

static void test_utf8_validator(void **state)
{
    (void)state;
    size_t bad = 99;
    assert_true(cl_json_utf8_valid("", 0, &bad));
    assert_true(cl_json_utf8_valid("abc\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 13, &bad));
    assert_true(cl_json_utf8_valid("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8, &bad));
    assert_true(cl_json_utf8_valid("\xed\x9f\xbf\xee\x80\x80", 6, NULL)); /* around surrogates */
    const struct {
        const char *s;
        size_t len, bad;
    } no[] = {
        {"ab\x80", 3, 2},          {"\xc1\xbf", 2, 0},          {"x\xc2", 2, 1},
        {"\xe0\x9f\xbf", 3, 0},    {"\xed\xbf\xbf", 3, 0},      {"\xf0\x8f\xbf\xbf", 4, 0},
        {"\xf4\x90\x80\x80", 4, 0}, {"\xf5\x80\x80\x80", 4, 0}, {"\xfe", 1, 0},
        {"a\xe2\x28\xa1", 4, 1},
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (cl_json_utf8_valid(no[i].s, no[i].len, &bad))
            fail_msg("sequence %zu accepted", i);
        assert_int_equal(bad, no[i].bad);
    }
}

static void test_unescape_keeps_nul_and_decodes_escapes(void **state)
{
    (void)state;
    const char lit[] = "x\"a\\u0000b\\n\\\"\\/\\u00e9\\ud83d\\ude00\"y";
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_json_unescape(lit, sizeof(lit) - 1, 1, &b), CL_OK);
    const char want[] = "a\0b\n\"/\xc3\xa9\xf0\x9f\x98\x80";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.data, want, b.len);
    size_t pos = 1;
    bool nul = false;
    assert_null(cl_json_scan_string(lit, sizeof(lit) - 1, &pos, &nul));
    assert_true(nul);
    assert_int_equal(pos, sizeof(lit) - 2);
    cl_buf_reset(&b);
    assert_int_equal(cl_json_unescape("\"\\ud800\"", 8, 0, &b), CL_ERR_INVALID);
    cl_buf_deinit(&b);
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
        cmocka_unit_test(test_parse_refuses_a_nul_in_a_value_naming_the_field),
        cmocka_unit_test(test_parse_refuses_a_nul_in_a_key),
        cmocka_unit_test(test_parse_refuses_text_that_is_not_utf8),
        cmocka_unit_test(test_messages_between_actors_are_not_held_to_utf8),
        cmocka_unit_test(test_parse_accepts_utf8_and_surrogate_pairs),
        cmocka_unit_test(test_parse_refuses_duplicate_keys),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_utf8_repair_replaces_each_bad_byte),
        cmocka_unit_test(test_unescape_keeps_nul_and_decodes_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
