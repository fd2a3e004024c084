/* Unit tests: predict and feedback body decoding (actors/frontend/fe_decode.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_wire.h"
#include "fe_decode.h"

typedef struct {
    cl_fe_doc doc;
    cl_fe_inputs in;
    cl_err err;
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    cl_fe_inputs_init(&f.in);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cl_fe_doc_deinit(&f->doc);
    cl_fe_inputs_deinit(&f->in);
    return 0;
}

/* Parses body and decodes it for type; returns the status. */
static CL_MUST_USE cl_status decode(fixture *f, const char *body, int type)
{
    cl_fe_doc_deinit(&f->doc);
    cl_status s = cl_fe_doc_parse(&f->doc, body, strlen(body), &f->err);
    if (s != CL_OK)
        return s;
    return cl_fe_decode_inputs(&f->doc, type, &f->in, &f->err);
}

static void expect_error(fixture *f, const char *body, int type, const char *what)
{
    assert_int_equal(decode(f, body, type), CL_ERR_INVALID);
    if (strstr(f->err.msg, what) == NULL)
        fail_msg("error for %s was '%s', expected it to contain '%s'", body, f->err.msg, what);
}

static void test_decode_doubles_with_decimal_points_gives_float64_bytes(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": [1.5, -2.0, 3e2]}", CL_INPUT_DOUBLES), CL_OK);
    assert_int_equal(f->in.n, 1);
    assert_false(f->in.batch);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 24);
    double d[3];
    memcpy(d, cl_fe_input_data(&f->in, 0), sizeof(d));
    assert_true(d[0] == 1.5 && d[1] == -2.0 && d[2] == 300.0);
}

static void test_decode_doubles_written_as_integers_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [1, 2]}", CL_INPUT_DOUBLES,
                 "Array input of type Number is not of type double");
}

static void test_decode_doubles_with_one_integer_among_decimals_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [1.0, 2, 3.0]}", CL_INPUT_DOUBLES,
                 "is not of type double");
}

static void test_decode_doubles_with_a_string_element_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [1.0, \"2.0\"]}", CL_INPUT_DOUBLES,
                 "Array input of type String is not of type double");
}

static void test_decode_doubles_integer_literal_elsewhere_does_not_shift_literals(void **state)
{
    /* Numbers before "input" in the document must not be confused with
     * the input's own literals. */
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"x\": [1, 2, {\"y\": 3}], \"input\": [4.0, 5.5]}",
                            CL_INPUT_DOUBLES),
                     CL_OK);
    double d[2];
    memcpy(d, cl_fe_input_data(&f->in, 0), sizeof(d));
    assert_true(d[0] == 4.0 && d[1] == 5.5);
    expect_error(f, "{\"x\": [1.0, 2.0], \"input\": [4, 5.5]}", CL_INPUT_DOUBLES,
                 "not of type double");
}

static void test_decode_doubles_integer_beyond_64_bits_counts_as_double(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": [123456789012345678901234]}", CL_INPUT_DOUBLES),
                     CL_OK);
}

static void test_decode_doubles_in_a_string_container_returns_type_mismatch(void **state)
{
    expect_error(*state, "{\"input\": \"1.0\"}", CL_INPUT_DOUBLES,
                 "Type mismatch! JSON key input expected type Arraybut found type String");
}

static void test_decode_empty_numeric_input_returns_400(void **state)
{
    fixture *f = *state;
    expect_error(f, "{\"input\": []}", CL_INPUT_DOUBLES,
                 "Array input is empty; an input of type double must hold at least one number");
    expect_error(f, "{\"input\": []}", CL_INPUT_INTEGERS, "input of type int must hold");
    expect_error(f, "{\"input\": []}", CL_INPUT_FLOATS, "input of type float must hold");
    expect_error(f, "{\"input_batch\": [[1.0], [2.0, 3.0], []]}", CL_INPUT_DOUBLES,
                 "Array input 2 of input_batch is empty");
    expect_error(f, "{\"uid\": 1, \"input\": [], \"label\": 1.0}", CL_INPUT_DOUBLES,
                 "Array input is empty");
}

static void test_decode_empty_string_input_points_at_bytes(void **state)
{
    fixture *f = *state;
    /* An empty string is an input; its (zero) bytes are never at NULL. */
    assert_int_equal(decode(f, "{\"input\": \"\"}", CL_INPUT_STRINGS), CL_OK);
    assert_int_equal(f->in.n, 1);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 0);
    assert_non_null(cl_fe_input_data(&f->in, 0));
    assert_int_equal(decode(f, "{\"input_batch\": [\"\", \"\"]}", CL_INPUT_BYTES), CL_OK);
    assert_non_null(cl_fe_input_data(&f->in, 1));
    /* Inputs that hold no byte at all: the buffer was never allocated. */
    cl_fe_inputs none;
    cl_fe_inputs_init(&none);
    size_t off[2] = {0, 0};
    none.n = 1;
    none.off = off;
    assert_null(none.data.data);
    assert_non_null(cl_fe_input_data(&none, 0));
    assert_int_equal(cl_fe_input_len(&none, 0), 0);
}

static void test_decode_floats_gives_float32_bytes(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": [0.5, 2.25]}", CL_INPUT_FLOATS), CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 8);
    float v[2];
    memcpy(v, cl_fe_input_data(&f->in, 0), sizeof(v));
    assert_true(v[0] == 0.5f && v[1] == 2.25f);
}

static void test_decode_floats_integer_literal_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [1]}", CL_INPUT_FLOATS,
                 "Array input of type Number is not of type float");
}

static void test_decode_floats_out_of_float_range_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [1.0e39]}", CL_INPUT_FLOATS, "not of type float");
}

static void test_decode_integers_gives_int32_bytes(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": [1, -2, 2147483647, -2147483648]}",
                            CL_INPUT_INTEGERS),
                     CL_OK);
    int32_t v[4];
    assert_int_equal(cl_fe_input_len(&f->in, 0), sizeof(v));
    memcpy(v, cl_fe_input_data(&f->in, 0), sizeof(v));
    assert_true(v[0] == 1 && v[1] == -2 && v[2] == INT32_MAX && v[3] == INT32_MIN);
}

static void test_decode_integers_with_decimal_point_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [1.0]}", CL_INPUT_INTEGERS,
                 "Array input of type Number is not of type int");
}

static void test_decode_integers_beyond_int32_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [2147483648]}", CL_INPUT_INTEGERS, "not of type int");
}

static void test_decode_integers_with_boolean_returns_400(void **state)
{
    expect_error(*state, "{\"input\": [true]}", CL_INPUT_INTEGERS,
                 "Array input of type True is not of type int");
}

static void test_decode_strings_takes_one_json_string(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": \"h\\u00e9llo\"}", CL_INPUT_STRINGS), CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 6);
    assert_memory_equal(cl_fe_input_data(&f->in, 0), "h\xc3\xa9llo", 6);
}

static void test_decode_strings_given_an_array_returns_type_mismatch(void **state)
{
    expect_error(*state, "{\"input\": [\"a\"]}", CL_INPUT_STRINGS,
                 "Type mismatch! JSON key input expected type Stringbut found type Array");
}

static void test_decode_bytes_decodes_base64(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": \"AAEC/w==\"}", CL_INPUT_BYTES), CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 4);
    assert_memory_equal(cl_fe_input_data(&f->in, 0), "\x00\x01\x02\xff", 4);
}

static void test_decode_bytes_empty_string_gives_empty_input(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": \"\"}", CL_INPUT_BYTES), CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 0);
}

static void test_decode_bytes_invalid_base64_returns_400(void **state)
{
    expect_error(*state, "{\"input\": \"ab!d\"}", CL_INPUT_BYTES,
                 "character '!' at position 2 is outside the base64 alphabet");
    /* OpenSSL would stop at '-' and decode what came before. */
    expect_error(*state, "{\"input\": \"-_8=\"}", CL_INPUT_BYTES,
                 "character '-' at position 0 is outside the base64 alphabet");
    expect_error(*state, "{\"input\": \"YWJj-ZGVm\"}", CL_INPUT_BYTES,
                 "character '-' at position 4 is outside the base64 alphabet");
    expect_error(*state, "{\"input\": \"YW\u00e9Jj\"}", CL_INPUT_BYTES,
                 "byte 0xc3 at position 2 is outside the base64 alphabet");
    expect_error(*state, "{\"input\": \"abc\"}", CL_INPUT_BYTES, "not valid base64");
    expect_error(*state, "{\"input\": \"YQ==YQ==\"}", CL_INPUT_BYTES, "not valid base64");
}

static void test_decode_bytes_given_a_number_returns_type_mismatch(void **state)
{
    expect_error(*state, "{\"input\": 5}", CL_INPUT_BYTES,
                 "Type mismatch! JSON key input expected type Stringbut found type Number");
}

static void test_decode_batch_of_doubles_keeps_input_order(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input_batch\": [[1.0], [2.0, 3.0], [4.0]]}", CL_INPUT_DOUBLES),
                     CL_OK);
    assert_true(f->in.batch);
    assert_int_equal(f->in.n, 3);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 8);
    assert_int_equal(cl_fe_input_len(&f->in, 1), 16);
    assert_int_equal(cl_fe_input_len(&f->in, 2), 8);
    double d;
    memcpy(&d, cl_fe_input_data(&f->in, 1) + 8, sizeof(d));
    assert_true(d == 3.0);
}

static void test_decode_batch_with_non_array_element_returns_400(void **state)
{
    expect_error(*state, "{\"input_batch\": [[1.0], 2.0]}", CL_INPUT_DOUBLES,
                 "Array input of type Number is not of type array");
}

static void test_decode_batch_with_integer_in_second_input_returns_400(void **state)
{
    expect_error(*state, "{\"input_batch\": [[1.0], [2]]}", CL_INPUT_DOUBLES,
                 "not of type double");
}

static void test_decode_batch_given_an_object_returns_type_mismatch(void **state)
{
    expect_error(*state, "{\"input_batch\": {\"a\": 1}}", CL_INPUT_INTEGERS,
                 "Type mismatch! JSON key input_batch expected type Arraybut found type Object");
}

static void test_decode_batch_of_strings_and_bytes(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input_batch\": [\"ab\", \"\", \"c\"]}", CL_INPUT_STRINGS),
                     CL_OK);
    assert_int_equal(f->in.n, 3);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 2);
    assert_memory_equal(cl_fe_input_data(&f->in, 2), "c", 1);
    expect_error(f, "{\"input_batch\": [\"ab\", 3]}", CL_INPUT_STRINGS,
                 "Array input of type Number is not of type string");
    assert_int_equal(decode(f, "{\"input_batch\": [\"YQ==\", \"YmM=\"]}", CL_INPUT_BYTES), CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 1), 2);
    expect_error(f, "{\"input_batch\": [\"YQ==\", null]}", CL_INPUT_BYTES,
                 "PredictionData of type Null is not of type base64-encoded string");
}

static void test_decode_empty_batch_gives_no_inputs(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input_batch\": []}", CL_INPUT_INTEGERS), CL_OK);
    assert_int_equal(f->in.n, 0);
}

static void test_decode_missing_input_returns_400(void **state)
{
    expect_error(*state, "{\"inputs\": [1.0]}", CL_INPUT_DOUBLES,
                 "JSON object does not have required keys input or input_batch");
}

static void test_decode_keys_are_case_sensitive(void **state)
{
    expect_error(*state, "{\"Input\": [1.0]}", CL_INPUT_DOUBLES, "required keys input");
}

static void test_decode_top_level_array_returns_400(void **state)
{
    expect_error(*state, "[1.0]", CL_INPUT_DOUBLES, "Can only get key-value pair from an object");
}

static void test_decode_malformed_json_names_the_offset(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": [1.0,", CL_INPUT_DOUBLES), CL_ERR_INVALID);
    assert_non_null(strstr(f->err.msg, "JSON parse error: "));
    assert_non_null(strstr(f->err.msg, "(offset "));
    assert_int_equal(decode(f, "", CL_INPUT_DOUBLES), CL_ERR_INVALID);
    assert_non_null(strstr(f->err.msg, "The document is empty."));
    assert_int_equal(decode(f, "{\"input\": [1.0]} x", CL_INPUT_DOUBLES), CL_ERR_INVALID);
    assert_non_null(strstr(f->err.msg, "must not be followed by other values"));
    assert_non_null(strstr(f->err.msg, "(offset 17)"));
}

static void test_decode_rejects_what_rfc8259_rejects(void **state)
{
    fixture *f = *state;
    const char *bad[] = {"{\"input\": [01.0]}", "{\"input\": [1.]}", "{\"input\": [1.e5]}",
                         "{\"input\": [-]}", "{\"input\": \"a\tb\"}", "{\"input\": [1.0]}\x01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (decode(f, bad[i], CL_INPUT_DOUBLES) != CL_ERR_INVALID ||
            strstr(f->err.msg, "JSON parse error") == NULL)
            fail_msg("'%s' was not rejected as a parse error (%s)", bad[i], f->err.msg);
    }
}

static void test_decode_body_with_nul_byte_returns_400(void **state)
{
    fixture *f = *state;
    const char body[] = "{\"input\": [1.0]}\0garbage";
    cl_fe_doc_deinit(&f->doc);
    assert_int_equal(cl_fe_doc_parse(&f->doc, body, sizeof(body) - 1, &f->err), CL_ERR_INVALID);
}

static void test_decode_input_is_preferred_over_input_batch(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input_batch\": [[1]], \"input\": [7]}", CL_INPUT_INTEGERS),
                     CL_OK);
    assert_false(f->in.batch);
    int32_t v;
    memcpy(&v, cl_fe_input_data(&f->in, 0), sizeof(v));
    assert_int_equal(v, 7);
}

static CL_MUST_USE cl_status parse(fixture *f, const char *body)
{
    cl_fe_doc_deinit(&f->doc);
    return cl_fe_doc_parse(&f->doc, body, strlen(body), &f->err);
}

static void test_decode_version_must_be_a_string(void **state)
{
    fixture *f = *state;
    const char *v = NULL;
    assert_int_equal(parse(f, "{\"version\": \"2\", \"input\": [1]}"), CL_OK);
    assert_int_equal(cl_fe_decode_version(&f->doc, &v, &f->err), CL_OK);
    assert_string_equal(v, "2");
    assert_int_equal(parse(f, "{\"version\": 2}"), CL_OK);
    assert_int_equal(cl_fe_decode_version(&f->doc, &v, &f->err), CL_ERR_INVALID);
    assert_non_null(
        strstr(f->err.msg, "JSON key version expected type Stringbut found type Number"));
    assert_int_equal(parse(f, "{\"input\": [1]}"), CL_OK);
    assert_int_equal(cl_fe_decode_version(&f->doc, &v, &f->err), CL_OK);
    assert_null(v);
}

static void test_decode_update_reads_uid_input_and_label(void **state)
{
    fixture *f = *state;
    const char *body = "{\"uid\": 9007199254740993, \"input\": [1.0, 2.0], \"label\": 3}";
    int64_t uid = 0;
    double label = 0;
    assert_int_equal(parse(f, body), CL_OK);
    assert_int_equal(cl_fe_decode_update(&f->doc, CL_INPUT_DOUBLES, &uid, &f->in, &label, &f->err),
                     CL_OK);
    assert_true(uid == 9007199254740993LL);
    assert_true(label == 3.0);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 16);
}

static void test_decode_update_errors_name_the_field(void **state)
{
    fixture *f = *state;
    struct {
        const char *body;
        const char *what;
    } cases[] = {
        {"{\"input\": [1.0], \"label\": 1.0}", "JSON object does not have required key: uid"},
        {"{\"uid\": \"u\", \"input\": [1.0], \"label\": 1.0}",
         "Type mismatch! JSON key uid expected type Numberbut found type String"},
        {"{\"uid\": 1.5, \"input\": [1.0], \"label\": 1.0}", "is not of type long"},
        {"{\"uid\": 1, \"label\": 1.0}", "JSON object does not have required key: input"},
        {"{\"uid\": 1, \"input\": [1.0]}", "JSON object does not have required key: label"},
        {"{\"uid\": 1, \"input\": [1.0], \"label\": \"x\"}",
         "JSON key label expected type Numberbut found type String"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t uid;
        double label;
        assert_int_equal(parse(f, cases[i].body), CL_OK);
        assert_int_equal(
            cl_fe_decode_update(&f->doc, CL_INPUT_DOUBLES, &uid, &f->in, &label, &f->err),
            CL_ERR_INVALID);
        if (strstr(f->err.msg, cases[i].what) == NULL)
            fail_msg("%s: got '%s'", cases[i].body, f->err.msg);
    }
}

static void test_decode_string_with_nul_reaches_the_model_whole(void **state)
{
    fixture *f = *state;
    assert_int_equal(decode(f, "{\"input\": \"a\\u0000b\"}", CL_INPUT_STRINGS), CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 3);
    assert_memory_equal(cl_fe_input_data(&f->in, 0), "a\0b", 3);
    /* In a batch, after keys and other strings, escapes and all. */
    const char *body = "{\"version\": \"1\", \"input_batch\": "
                       "[\"x\", \"\\u0000\\n\\u00e9\\u0000\", \"\", \"z\\u0000\"]}";
    assert_int_equal(decode(f, body, CL_INPUT_STRINGS), CL_OK);
    assert_int_equal(f->in.n, 4);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 1);
    assert_int_equal(cl_fe_input_len(&f->in, 1), 5);
    assert_memory_equal(cl_fe_input_data(&f->in, 1), "\0\n\xc3\xa9\0", 5);
    assert_int_equal(cl_fe_input_len(&f->in, 2), 0);
    assert_int_equal(cl_fe_input_len(&f->in, 3), 2);
    assert_memory_equal(cl_fe_input_data(&f->in, 3), "z\0", 2);
    /* Feedback takes its input the same way. */
    int64_t uid;
    double label;
    assert_int_equal(parse(f, "{\"uid\": 1, \"input\": \"a\\u0000\", \"label\": 1.0}"), CL_OK);
    assert_int_equal(
        cl_fe_decode_update(&f->doc, CL_INPUT_STRINGS, &uid, &f->in, &label, &f->err), CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 2);
}

static void test_decode_bytes_with_nul_returns_400(void **state)
{
    /* Cut at the NUL, "YQ==" would pass as valid base64. */
    expect_error(*state, "{\"input\": \"YQ==\\u0000AAAA\"}", CL_INPUT_BYTES,
                 "byte 0x00 at position 4 is outside the base64 alphabet");
}

static void test_decode_version_or_key_with_nul_returns_400(void **state)
{
    fixture *f = *state;
    const char *v = NULL;
    assert_int_equal(parse(f, "{\"version\": \"1\\u0000x\", \"input\": [1.0]}"), CL_OK);
    assert_int_equal(cl_fe_decode_version(&f->doc, &v, &f->err), CL_ERR_INVALID);
    assert_non_null(strstr(f->err.msg, "JSON key version holds a NUL character"));
    expect_error(f, "{\"input\\u0000x\": [1.0]}", CL_INPUT_DOUBLES,
                 "An object key holds a NUL character");
}

static void test_decode_invalid_utf8_returns_400(void **state)
{
    fixture *f = *state;
    const char *bad[] = {
        "{\"input\": \"\xff\"}",         "{\"input\": \"\xc0\xaf\"}", /* overlong */
        "{\"input\": \"\xed\xa0\x80\"}", /* a surrogate in UTF-8 */
        "{\"input\": \"a\xe2\x82\"}",    "{\"input\": \"\xf8\x88\x80\x80\x80\"}",
        "{\"version\": \"\xfe\", \"input\": \"a\"}", "{\"\xff\": 1, \"input\": \"a\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (decode(f, bad[i], CL_INPUT_STRINGS) != CL_ERR_INVALID ||
            strstr(f->err.msg, "JSON parse error: Invalid encoding in string: it is not valid "
                               "UTF-8. (offset ") == NULL)
            fail_msg("body %zu: '%s'", i, f->err.msg);
    }
    const char *lone[] = {"{\"input\": \"\\ud800\"}", "{\"input\": \"\\udfff x\"}",
                          "{\"input\": \"\\ud800\\u0041\"}"};
    for (size_t i = 0; i < sizeof(lone) / sizeof(lone[0]); i++)
        if (decode(f, lone[i], CL_INPUT_STRINGS) != CL_ERR_INVALID ||
            strstr(f->err.msg, "JSON parse error: ") == NULL)
            fail_msg("lone surrogate %zu: '%s'", i, f->err.msg);
    assert_int_equal(decode(f, "{\"input\": \"\xc3\xa9\\ud83d\\ude00\"}", CL_INPUT_STRINGS),
                     CL_OK);
    assert_int_equal(cl_fe_input_len(&f->in, 0), 6);
}

static void test_decode_duplicate_keys_return_400(void **state)
{
    fixture *f = *state;
    expect_error(f, "{\"input\": [1.0], \"input\": [2.0]}", CL_INPUT_DOUBLES,
                 "JSON parse error: The document has a duplicate key 'input'");
    expect_error(f, "{\"input_batch\": [[1.0]], \"version\": \"1\", \"version\": \"2\"}",
                 CL_INPUT_DOUBLES, "duplicate key 'version'");
    expect_error(f, "{\"input\": [1.0], \"x\": {\"a\": 1, \"a\": 2}}", CL_INPUT_DOUBLES,
                 "duplicate key 'a' in 'x'");
}

static void test_decode_count_reads_the_number_of_inputs(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse(f, "{\"input\": [1.0, 2.0]}"), CL_OK);
    assert_int_equal(cl_fe_decode_count(&f->doc), 1);
    assert_int_equal(parse(f, "{\"input_batch\": [[1.0], [2.0], [3.0]]}"), CL_OK);
    assert_int_equal(cl_fe_decode_count(&f->doc), 3);
    assert_int_equal(parse(f, "{\"input_batch\": 1}"), CL_OK);
    assert_int_equal(cl_fe_decode_count(&f->doc), 0);
    assert_int_equal(parse(f, "[1]"), CL_OK);
    assert_int_equal(cl_fe_decode_count(&f->doc), 0);
}

static void test_json_error_cause_quotes_clippers_schema(void **state)
{
    (void)state;
    char *cause = cl_fe_json_error_cause("X", CL_FE_PREDICT_SCHEMA);
    assert_string_equal(cause, "Error parsing JSON: X. Expected JSON schema: \n  {\n   \"input\" "
                               ":= [double] | [int] | [string] | [byte] | [float],\n  }\n");
    free(cause);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_decode_doubles_with_decimal_points_gives_float64_bytes),
        T(test_decode_doubles_written_as_integers_returns_400),
        T(test_decode_doubles_with_one_integer_among_decimals_returns_400),
        T(test_decode_doubles_with_a_string_element_returns_400),
        T(test_decode_doubles_integer_literal_elsewhere_does_not_shift_literals),
        T(test_decode_doubles_integer_beyond_64_bits_counts_as_double),
        T(test_decode_doubles_in_a_string_container_returns_type_mismatch),
        T(test_decode_empty_numeric_input_returns_400),
        T(test_decode_empty_string_input_points_at_bytes),
        T(test_decode_floats_gives_float32_bytes),
        T(test_decode_floats_integer_literal_returns_400),
        T(test_decode_floats_out_of_float_range_returns_400),
        T(test_decode_integers_gives_int32_bytes),
        T(test_decode_integers_with_decimal_point_returns_400),
        T(test_decode_integers_beyond_int32_returns_400),
        T(test_decode_integers_with_boolean_returns_400),
        T(test_decode_strings_takes_one_json_string),
        T(test_decode_strings_given_an_array_returns_type_mismatch),
        T(test_decode_bytes_decodes_base64),
        T(test_decode_bytes_empty_string_gives_empty_input),
        T(test_decode_bytes_invalid_base64_returns_400),
        T(test_decode_bytes_given_a_number_returns_type_mismatch),
        T(test_decode_batch_of_doubles_keeps_input_order),
        T(test_decode_batch_with_non_array_element_returns_400),
        T(test_decode_batch_with_integer_in_second_input_returns_400),
        T(test_decode_batch_given_an_object_returns_type_mismatch),
        T(test_decode_batch_of_strings_and_bytes),
        T(test_decode_empty_batch_gives_no_inputs),
        T(test_decode_missing_input_returns_400),
        T(test_decode_keys_are_case_sensitive),
        T(test_decode_top_level_array_returns_400),
        T(test_decode_malformed_json_names_the_offset),
        T(test_decode_rejects_what_rfc8259_rejects),
        T(test_decode_body_with_nul_byte_returns_400),
        T(test_decode_input_is_preferred_over_input_batch),
        T(test_decode_version_must_be_a_string),
        T(test_decode_update_reads_uid_input_and_label),
        T(test_decode_update_errors_name_the_field),
        T(test_decode_string_with_nul_reaches_the_model_whole),
        T(test_decode_bytes_with_nul_returns_400),
        T(test_decode_version_or_key_with_nul_returns_400),
        T(test_decode_invalid_utf8_returns_400),
        T(test_decode_duplicate_keys_return_400),
        T(test_decode_count_reads_the_number_of_inputs),
        T(test_json_error_cause_quotes_clippers_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
