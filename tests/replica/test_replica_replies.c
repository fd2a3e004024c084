/* Unit tests of the replica's result batches: grouped per reply subject,
 * split below the max payload, oversized outputs turned into errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_wire.h"
#include "replica_internal.h"

#define ADD(r, subj, id, st, text)                                                           \
    cl__replies_add((r), (subj), strlen(subj), (id), (st), (text), (uint32_t)strlen(text))

static void decode(const cl__reply *b, cl_result **out, uint32_t *n)
{
    cl_err err;
    assert_int_equal(cl_wire_results_decode(b->buf.data, b->buf.len, out, n, &err), CL_OK);
}

static void test_results_are_grouped_per_reply_subject_in_first_seen_order(void **state)
{
    (void)state;
    cl__replies r;
    cl__replies_init(&r, 1 << 20);
    assert_int_equal(ADD(&r, "p.fe.b.results", 1, 0, "one"), CL_OK);
    assert_int_equal(ADD(&r, "p.fe.a.results", 2, 1, "boom"), CL_OK);
    assert_int_equal(ADD(&r, "p.fe.b.results", 3, 0, "three"), CL_OK);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.items[0].subject, "p.fe.b.results");
    assert_string_equal(r.items[1].subject, "p.fe.a.results");

    cl_result *res;
    uint32_t n;
    decode(&r.items[0], &res, &n);
    assert_int_equal(n, 2);
    assert_int_equal(res[0].task_id, 1);
    assert_int_equal(res[0].status, 0);
    assert_memory_equal(res[0].data, "one", 3);
    assert_int_equal(res[1].task_id, 3);
    assert_memory_equal(res[1].data, "three", 5);
    free(res);
    decode(&r.items[1], &res, &n);
    assert_int_equal(n, 1);
    assert_int_equal(res[0].task_id, 2);
    assert_int_equal(res[0].status, 1);
    assert_memory_equal(res[0].data, "boom", 4);
    free(res);
    cl__replies_deinit(&r);
}

static void test_a_subject_gets_more_batches_when_one_would_exceed_the_max_payload(void **state)
{
    (void)state;
    cl__replies r;
    /* header 8 + two results of 13 + 10 bytes fit in 60, a third does not */
    cl__replies_init(&r, 60);
    for (uint64_t id = 0; id < 5; id++)
        assert_int_equal(ADD(&r, "s.x", id, 0, "0123456789"), CL_OK);
    assert_int_equal(r.count, 3);
    uint64_t next = 0;
    for (size_t i = 0; i < r.count; i++) {
        assert_true(r.items[i].buf.len <= 60);
        assert_string_equal(r.items[i].subject, "s.x");
        cl_result *res;
        uint32_t n;
        decode(&r.items[i], &res, &n);
        for (uint32_t k = 0; k < n; k++)
            assert_int_equal(res[k].task_id, next++);
        free(res);
    }
    assert_int_equal(next, 5);
    cl__replies_deinit(&r);
}

static void test_output_larger_than_any_message_becomes_an_error_saying_so(void **state)
{
    (void)state;
    cl__replies r;
    cl__replies_init(&r, 200);
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ADD(&r, "s.x", 9, 0, big), CL_OK);
    cl_result *res;
    uint32_t n;
    decode(&r.items[0], &res, &n);
    assert_int_equal(n, 1);
    assert_int_equal(res[0].task_id, 9);
    assert_int_equal(res[0].status, CL_RESULT_MODEL_ERROR);
    char text[256];
    snprintf(text, sizeof(text), "%.*s", (int)res[0].len, res[0].data);
    assert_non_null(strstr(text, "299 bytes"));
    assert_non_null(strstr(text, "max payload"));
    free(res);
    cl__replies_deinit(&r);
}

static void test_empty_or_too_long_reply_subject_is_invalid(void **state)
{
    (void)state;
    cl__replies r;
    cl__replies_init(&r, 1 << 20);
    assert_int_equal(cl__replies_add(&r, "", 0, 1, 0, "x", 1), CL_ERR_INVALID);
    char longs[CL_SUBJECT_MAX + 10];
    memset(longs, 'a', sizeof(longs));
    assert_int_equal(cl__replies_add(&r, longs, sizeof(longs), 1, 0, "x", 1), CL_ERR_INVALID);
    assert_int_equal(r.count, 0);
    cl__replies_deinit(&r);
}

static void test_reply_subject_a_publish_would_break_is_invalid(void **state)
{
    (void)state;
    cl__replies r;
    cl__replies_init(&r, 1 << 20);
    /* Published as it is, this one would send an admin command on the
     * replica's own connection. */
    const char *bad[] = {"p.fe.a.results 3\r\nPUB p.admin.delete_app 2\r\n{}", "p.fe.a b.results",
                         "p.fe.*.results", "p.fe.>", "p..results", "p.fe.\x01.results"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ADD(&r, bad[i], 1, 0, "x") != CL_ERR_INVALID)
            fail_msg("'%s' was taken", bad[i]);
    assert_int_equal(cl__replies_add(&r, "p.fe\0.a", 8, 1, 0, "x", 1), CL_ERR_INVALID);
    assert_int_equal(r.count, 0);
    cl__replies_deinit(&r);
}

static void test_reset_forgets_batches_for_the_next_task_batch(void **state)
{
    (void)state;
    cl__replies r;
    cl__replies_init(&r, 1 << 20);
    for (int i = 0; i < 6; i++) {
        char subj[32];
        snprintf(subj, sizeof(subj), "s.%d", i);
        assert_int_equal(ADD(&r, subj, (uint64_t)i, 0, "v"), CL_OK);
    }
    assert_int_equal(r.count, 6);
    cl__replies_reset(&r);
    assert_int_equal(r.count, 0);
    assert_int_equal(ADD(&r, "s.9", 1, 0, "w"), CL_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(cl_wire_count(&r.items[0].buf), 1);
    cl__replies_deinit(&r);
    cl__replies_deinit(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_are_grouped_per_reply_subject_in_first_seen_order),
        cmocka_unit_test(test_a_subject_gets_more_batches_when_one_would_exceed_the_max_payload),
        cmocka_unit_test(test_output_larger_than_any_message_becomes_an_error_saying_so),
        cmocka_unit_test(test_empty_or_too_long_reply_subject_is_invalid),
        cmocka_unit_test(test_reply_subject_a_publish_would_break_is_invalid),
        cmocka_unit_test(test_reset_forgets_batches_for_the_next_task_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
