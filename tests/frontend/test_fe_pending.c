/* Unit tests: the task table and the deadline heap (actors/frontend/fe_pending.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_pending.h"

static void test_table_take_returns_owner_and_index_once(void **state)
{
    (void)state;
    cl_fe_table t;
    assert_int_equal(cl_fe_table_init(&t, 16), CL_OK);
    int owner;
    uint64_t id = 0;
    assert_int_equal(cl_fe_table_add(&t, &owner, 5, 0, &id), CL_OK);
    assert_true(id != 0);
    uint32_t idx = 0;
    assert_ptr_equal(cl_fe_table_take(&t, id, &idx), &owner);
    assert_int_equal(idx, 5);
    assert_null(cl_fe_table_take(&t, id, &idx)); /* a late duplicate is dropped */
    assert_int_equal(t.used, 0);
    cl_fe_table_deinit(&t);
}

/* An answer from another scope (a replica of another model) neither takes
 * the task nor removes it; its own scope's answer does. */
static void test_table_scoped_take_leaves_another_scope_s_task(void **state)
{
    (void)state;
    cl_fe_table t;
    assert_int_equal(cl_fe_table_init(&t, 16), CL_OK);
    int owner;
    uint64_t id = 0;
    assert_int_equal(cl_fe_table_add(&t, &owner, 3, 77, &id), CL_OK);
    uint32_t idx = 0;
    bool foreign = false;
    assert_null(cl_fe_table_take_scoped(&t, id, 78, &idx, &foreign));
    assert_true(foreign);
    assert_int_equal(t.used, 1);
    assert_ptr_equal(cl_fe_table_take_scoped(&t, id, 77, &idx, &foreign), &owner);
    assert_false(foreign);
    assert_int_equal(idx, 3);
    assert_null(cl_fe_table_take_scoped(&t, id, 77, &idx, &foreign)); /* late duplicate */
    assert_false(foreign);
    assert_int_equal(t.used, 0);
    cl_fe_table_deinit(&t);
}

static void test_table_reused_slot_does_not_match_an_old_id(void **state)
{
    (void)state;
    cl_fe_table t;
    assert_int_equal(cl_fe_table_init(&t, 1), CL_OK);
    int a, b;
    uint64_t old_id, new_id;
    assert_int_equal(cl_fe_table_add(&t, &a, 0, 0, &old_id), CL_OK);
    assert_non_null(cl_fe_table_take(&t, old_id, NULL));
    assert_int_equal(cl_fe_table_add(&t, &b, 0, 0, &new_id), CL_OK);
    assert_true(new_id != old_id);
    assert_null(cl_fe_table_take(&t, old_id, NULL));
    assert_ptr_equal(cl_fe_table_take(&t, new_id, NULL), &b);
    cl_fe_table_deinit(&t);
}

static void test_table_refuses_beyond_max_and_grows_below_it(void **state)
{
    (void)state;
    cl_fe_table t;
    assert_int_equal(cl_fe_table_init(&t, 3000), CL_OK);
    int owner;
    uint64_t *ids = calloc(3000, sizeof(*ids));
    for (uint32_t i = 0; i < 3000; i++)
        assert_int_equal(cl_fe_table_add(&t, &owner, i, 0, &ids[i]), CL_OK);
    assert_false(cl_fe_table_room(&t, 1));
    uint64_t extra;
    assert_int_equal(cl_fe_table_add(&t, &owner, 0, 0, &extra), CL_ERR_TOO_LARGE);
    for (uint32_t i = 0; i < 3000; i++) {
        uint32_t idx;
        assert_ptr_equal(cl_fe_table_take(&t, ids[i], &idx), &owner);
        assert_int_equal(idx, i);
    }
    assert_true(cl_fe_table_room(&t, 3000));
    assert_null(cl_fe_table_take(&t, 0, NULL));
    assert_null(cl_fe_table_take(&t, ((uint64_t)1 << 32) | 99999, NULL));
    free(ids);
    cl_fe_table_deinit(&t);
}

static void test_heap_pops_in_deadline_order_and_removes_from_the_middle(void **state)
{
    (void)state;
    cl_fe_heap h;
    cl_fe_heap_init(&h);
    enum { N = 200 };
    cl_fe_timer t[N];
    for (int i = 0; i < N; i++) {
        t[i].deadline = (uint64_t)((i * 7919) % N);
        assert_int_equal(cl_fe_heap_push(&h, &t[i]), CL_OK);
    }
    /* Remove every third timer, wherever it sits. */
    for (int i = 0; i < N; i += 3) {
        cl_fe_heap_remove(&h, &t[i]);
        assert_int_equal(t[i].pos, SIZE_MAX);
        cl_fe_heap_remove(&h, &t[i]); /* second removal is a no-op */
    }
    uint64_t last = 0;
    size_t popped = 0;
    cl_fe_timer *top;
    while ((top = cl_fe_heap_peek(&h)) != NULL) {
        assert_true(top->deadline >= last);
        last = top->deadline;
        cl_fe_heap_remove(&h, top);
        popped++;
    }
    assert_int_equal(popped, N - (N + 2) / 3);
    cl_fe_heap_deinit(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_take_returns_owner_and_index_once),
        cmocka_unit_test(test_table_reused_slot_does_not_match_an_old_id),
        cmocka_unit_test(test_table_scoped_take_leaves_another_scope_s_task),
        cmocka_unit_test(test_table_refuses_beyond_max_and_grows_below_it),
        cmocka_unit_test(test_heap_pops_in_deadline_order_and_removes_from_the_middle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
