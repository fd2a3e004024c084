/* Unit tests of the binary task/result batches (bus/wire.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_subject.h"
#include "cl_wire.h"

static void add_task(cl_buf *b, uint64_t id, const char *reply, const void *in, uint32_t in_len,
                     uint8_t type)
{
    cl_task t = {
        .task_id = id,
        .deadline_us = 1700000000000000ull + id,
        .slo_us = 100000,
        .input_type = type,
        .reply_len = (uint16_t)strlen(reply),
        .reply = reply,
        .input_len = in_len,
        .input = in,
    };
    assert_int_equal(cl_wire_tasks_add(b, &t), CL_OK);
}

static void test_tasks_round_trip_keeps_every_field(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    assert_int_equal(cl_wire_count(&b), 0);
    const double d[2] = {1.5, -2.25};
    add_task(&b, 7, "clipper.fe.abc.results", d, sizeof(d), CL_INPUT_DOUBLES);
    add_task(&b, 8, "clipper.fe.def.results", NULL, 0, CL_INPUT_BYTES);
    add_task(&b, UINT64_MAX, "r", "hello", 5, CL_INPUT_STRINGS);
    assert_int_equal(cl_wire_count(&b), 3);

    cl_task *t = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_tasks_decode(b.data, b.len, &t, &n, &err), CL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(t[0].task_id, 7);
    assert_int_equal(t[0].deadline_us, 1700000000000007ull);
    assert_int_equal(t[0].slo_us, 100000);
    assert_int_equal(t[0].input_type, CL_INPUT_DOUBLES);
    assert_int_equal(t[0].reply_len, strlen("clipper.fe.abc.results"));
    assert_memory_equal(t[0].reply, "clipper.fe.abc.results", t[0].reply_len);
    assert_int_equal(t[0].input_len, sizeof(d));
    double back[2];
    memcpy(back, t[0].input, sizeof(back));
    assert_true(back[0] == 1.5 && back[1] == -2.25);
    assert_memory_equal(t[1].reply, "clipper.fe.def.results", t[1].reply_len);
    assert_int_equal(t[1].input_len, 0);
    assert_true(t[2].task_id == UINT64_MAX);
    assert_memory_equal(t[2].input, "hello", 5);
    free(t);
    cl_buf_deinit(&b);
}

static void test_results_round_trip_keeps_every_field(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_results_begin(&b), CL_OK);
    assert_int_equal(cl_wire_results_add(&b, 1, CL_RESULT_OK, "[1,2]", 5), CL_OK);
    assert_int_equal(cl_wire_results_add(&b, 2, CL_RESULT_MODEL_ERROR, "boom", 4), CL_OK);
    assert_int_equal(cl_wire_results_add(&b, 3, CL_RESULT_EXPIRED, NULL, 0), CL_OK);
    assert_int_equal(cl_wire_count(&b), 3);
    cl_result *r = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_results_decode(b.data, b.len, &r, &n, &err), CL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].task_id, 1);
    assert_int_equal(r[0].status, CL_RESULT_OK);
    assert_int_equal(r[0].len, 5);
    assert_memory_equal(r[0].data, "[1,2]", 5);
    assert_int_equal(r[1].status, CL_RESULT_MODEL_ERROR);
    assert_memory_equal(r[1].data, "boom", 4);
    assert_int_equal(r[2].status, CL_RESULT_EXPIRED);
    assert_int_equal(r[2].len, 0);
    free(r);
    cl_buf_deinit(&b);
}

static void test_empty_batches_decode_to_zero_items(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    cl_err err;
    uint32_t n = 99;
    cl_task *t = NULL;
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    assert_int_equal(cl_wire_tasks_decode(b.data, b.len, &t, &n, &err), CL_OK);
    assert_int_equal(n, 0);
    free(t);
    cl_result *r = NULL;
    assert_int_equal(cl_wire_results_begin(&b), CL_OK);
    assert_int_equal(cl_wire_results_decode(b.data, b.len, &r, &n, &err), CL_OK);
    assert_int_equal(n, 0);
    free(r);
    cl_buf_deinit(&b);
}

static void test_every_truncation_of_a_task_batch_is_rejected(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 1, "reply.subject", "abcdef", 6, CL_INPUT_BYTES);
    add_task(&b, 2, "r2", "xy", 2, CL_INPUT_STRINGS);
    for (size_t len = 0; len < b.len; len++) {
        cl_task *t = NULL;
        uint32_t n = 0;
        cl_err err = {0};
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees over-reads */
        memcpy(copy, b.data, len);
        assert_int_equal(cl_wire_tasks_decode(copy, len, &t, &n, &err), CL_ERR_INVALID);
        assert_int_equal(err.code, CL_ERR_INVALID);
        assert_true(strlen(err.msg) > 0);
        free(copy);
    }
    cl_buf_deinit(&b);
}

static void test_every_truncation_of_a_result_batch_is_rejected(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_results_begin(&b), CL_OK);
    assert_int_equal(cl_wire_results_add(&b, 1, 0, "output", 6), CL_OK);
    assert_int_equal(cl_wire_results_add(&b, 2, 1, "e", 1), CL_OK);
    for (size_t len = 0; len < b.len; len++) {
        cl_result *r = NULL;
        uint32_t n = 0;
        cl_err err = {0};
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, b.data, len);
        assert_int_equal(cl_wire_results_decode(copy, len, &r, &n, &err), CL_ERR_INVALID);
        assert_true(strlen(err.msg) > 0);
        free(copy);
    }
    cl_buf_deinit(&b);
}

static void test_truncated_task_names_the_task(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 1, "a", "abc", 3, CL_INPUT_BYTES);
    add_task(&b, 2, "b", "abc", 3, CL_INPUT_BYTES);
    cl_task *t = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_tasks_decode(b.data, b.len - 1, &t, &n, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "truncated in task 1 of 2"));
    cl_buf_deinit(&b);
}

static void test_wrong_magic_is_not_a_batch(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_results_begin(&b), CL_OK);
    cl_task *t = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_tasks_decode(b.data, b.len, &t, &n, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a task batch"));
    cl_result *r = NULL;
    const char garbage[] = "{\"input\": [1,2,3]}";
    assert_int_equal(cl_wire_results_decode(garbage, sizeof(garbage) - 1, &r, &n, &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a result batch"));
    cl_buf_deinit(&b);
}

static void test_huge_claimed_count_is_rejected_without_allocating(void **state)
{
    (void)state;
    uint8_t msg[8 + 27] = {'C', 'L', 'T', '1', 0xff, 0xff, 0xff, 0xff};
    cl_task *t = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_tasks_decode(msg, sizeof(msg), &t, &n, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "claims"));
    uint8_t rmsg[8 + 13] = {'C', 'L', 'R', '1', 0x00, 0x00, 0x01, 0x00};
    cl_result *r = NULL;
    assert_int_equal(cl_wire_results_decode(rmsg, sizeof(rmsg), &r, &n, &err), CL_ERR_INVALID);
}

static void test_oversized_lengths_inside_items_are_rejected(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 1, "r", "abc", 3, CL_INPUT_BYTES);
    /* input_len sits after 8+23+1 bytes; claim 4 GiB. */
    memset(b.data + 8 + 23 + 1, 0xff, 4);
    cl_task *t = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_tasks_decode(b.data, b.len, &t, &n, &err), CL_ERR_INVALID);
    /* reply_len at 8+21: claim 65535. */
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 1, "r", "abc", 3, CL_INPUT_BYTES);
    memset(b.data + 8 + 21, 0xff, 2);
    assert_int_equal(cl_wire_tasks_decode(b.data, b.len, &t, &n, &err), CL_ERR_INVALID);
    assert_int_equal(cl_wire_results_begin(&b), CL_OK);
    assert_int_equal(cl_wire_results_add(&b, 1, 0, "abc", 3), CL_OK);
    memset(b.data + 8 + 9, 0xff, 4);
    cl_result *r = NULL;
    assert_int_equal(cl_wire_results_decode(b.data, b.len, &r, &n, &err), CL_ERR_INVALID);
    cl_buf_deinit(&b);
}

static void test_unknown_input_type_is_rejected(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 1, "r", "abc", 3, 9);
    cl_task *t = NULL;
    uint32_t n = 0;
    cl_err err;
    assert_int_equal(cl_wire_tasks_decode(b.data, b.len, &t, &n, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown input type 9"));
    cl_buf_deinit(&b);
}

/* Decodes a batch of three tasks whose middle one replies to reply
 * (reply_len bytes): the status. */
static CL_MUST_USE cl_status decode_with_reply(const char *reply, size_t reply_len, cl_err *err)
{
    cl_buf b;
    cl_buf_init(&b);
    assert_int_equal(cl_wire_tasks_begin(&b), CL_OK);
    add_task(&b, 1, "p.fe.a.results", "x", 1, CL_INPUT_BYTES);
    cl_task t = {.task_id = 2, .input_type = CL_INPUT_BYTES, .reply_len = (uint16_t)reply_len,
                 .reply = reply, .input_len = 1, .input = (const uint8_t *)"y"};
    assert_int_equal(cl_wire_tasks_add(&b, &t), CL_OK);
    add_task(&b, 3, "p.fe.a.results", "z", 1, CL_INPUT_BYTES);
    cl_task *out = NULL;
    uint32_t n = 0;
    cl_status s = cl_wire_tasks_decode(b.data, b.len, &out, &n, err);
    if (s == CL_OK)
        free(out);
    cl_buf_deinit(&b);
    return s;
}

static void test_reply_subject_with_crlf_refuses_the_whole_batch(void **state)
{
    (void)state;
    /* The probe's: a reply that makes the publisher's own connection send
     * an admin command. */
    const char inject[] = "p.fe.a.results 2\r\nPUB p.admin.delete_app 12\r\n{\"name\":\"x\"}";
    cl_err err;
    assert_int_equal(decode_with_reply(inject, sizeof(inject) - 1, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "task 1 has a bad reply subject"));
}

static void test_reply_subjects_nats_would_refuse_are_refused(void **state)
{
    (void)state;
    char longs[CL_SUBJECT_MAX + 8];
    memset(longs, 'a', sizeof(longs));
    const struct {
        const char *s;
        size_t len;
    } bad[] = {
#define S(x) {x, sizeof(x) - 1}
        S(""),
        S("p.fe.a.results\n"),
        S("p.fe a.results"),
        S("p.fe.\0.results"),
        S("p.fe.*.results"),
        S("p.fe.>"),
        S("p..fe.a.results"),
        S(".p.fe.a.results"),
        S("p.fe.a.results."),
        S("p.fe.\x7f.results"),
        S("p.fe.\xc3\xa9.results"),
#undef S
        {longs, CL_SUBJECT_MAX},
        {longs, sizeof(longs)},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_err err;
        if (decode_with_reply(bad[i].s, bad[i].len, &err) != CL_ERR_INVALID)
            fail_msg("reply subject %zu was accepted", i);
        assert_non_null(strstr(err.msg, "bad reply subject"));
    }
    cl_err err;
    assert_int_equal(decode_with_reply(longs, CL_SUBJECT_MAX - 1, &err), CL_OK);
    assert_int_equal(decode_with_reply("_INBOX.abc-DEF_1", 16, &err), CL_OK);
}

static void test_random_garbage_never_crashes_the_decoders(void **state)
{
    (void)state;
    srand(42);
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand() % 64);
        uint8_t *buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        if (len >= 4 && round % 2 == 0)
            memcpy(buf, round % 4 ? "CLT1" : "CLR1", 4);
        cl_task *t = NULL;
        cl_result *r = NULL;
        uint32_t n = 0;
        cl_err err;
        if (cl_wire_tasks_decode(buf, len, &t, &n, &err) == CL_OK)
            free(t);
        if (cl_wire_results_decode(buf, len, &r, &n, &err) == CL_OK)
            free(r);
        free(buf);
    }
}

static void test_input_type_names_and_aliases_parse(void **state)
{
    (void)state;
    assert_int_equal(cl_input_type_parse("doubles"), CL_INPUT_DOUBLES);
    assert_int_equal(cl_input_type_parse("d"), CL_INPUT_DOUBLES);
    assert_int_equal(cl_input_type_parse("ints"), CL_INPUT_INTEGERS);
    assert_int_equal(cl_input_type_parse("str"), CL_INPUT_STRINGS);
    assert_int_equal(cl_input_type_parse("b"), CL_INPUT_BYTES);
    assert_int_equal(cl_input_type_parse("float"), CL_INPUT_FLOATS);
    assert_int_equal(cl_input_type_parse("tensor"), -1);
    assert_int_equal(cl_input_type_parse(NULL), -1);
    assert_string_equal(cl_input_type_name(CL_INPUT_FLOATS), "floats");
    assert_string_equal(cl_input_type_name((cl_input_type)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tasks_round_trip_keeps_every_field),
        cmocka_unit_test(test_results_round_trip_keeps_every_field),
        cmocka_unit_test(test_empty_batches_decode_to_zero_items),
        cmocka_unit_test(test_every_truncation_of_a_task_batch_is_rejected),
        cmocka_unit_test(test_every_truncation_of_a_result_batch_is_rejected),
        cmocka_unit_test(test_truncated_task_names_the_task),
        cmocka_unit_test(test_wrong_magic_is_not_a_batch),
        cmocka_unit_test(test_huge_claimed_count_is_rejected_without_allocating),
        cmocka_unit_test(test_oversized_lengths_inside_items_are_rejected),
        cmocka_unit_test(test_unknown_input_type_is_rejected),
        cmocka_unit_test(test_reply_subject_with_crlf_refuses_the_whole_batch),
        cmocka_unit_test(test_reply_subjects_nats_would_refuse_are_refused),
        cmocka_unit_test(test_random_garbage_never_crashes_the_decoders),
        cmocka_unit_test(test_input_type_names_and_aliases_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
