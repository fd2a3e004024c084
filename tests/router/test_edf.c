/* Unit tests of the router's earliest-deadline-first heap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "edf.h"

static void test_pop_on_empty_heap_returns_false(void **state)
{
    (void)state;
    cl_edf q;
    cl_edf_init(&q);
    cl_edf_entry e;
    assert_false(cl_edf_pop(&q, &e));
    assert_null(cl_edf_peek(&q));
    assert_int_equal(cl_edf_len(&q), 0);
    cl_edf_deinit(&q);
}

static void test_items_come_out_by_earliest_deadline(void **state)
{
    (void)state;
    cl_edf q;
    cl_edf_init(&q);
    static int items[5];
    const uint64_t deadlines[5] = {50, 10, 40, 20, 30};
    for (int i = 0; i < 5; i++)
        assert_int_equal(cl_edf_push(&q, deadlines[i], &items[i]), CL_OK);
    assert_int_equal(cl_edf_len(&q), 5);
    assert_int_equal(cl_edf_peek(&q)->deadline, 10);
    assert_ptr_equal(cl_edf_peek(&q)->item, &items[1]);
    const int want[5] = {1, 3, 4, 2, 0};
    for (int i = 0; i < 5; i++) {
        cl_edf_entry e;
        assert_true(cl_edf_pop(&q, &e));
        assert_ptr_equal(e.item, &items[want[i]]);
        assert_int_equal(e.deadline, deadlines[want[i]]);
    }
    assert_false(cl_edf_pop(&q, NULL));
    cl_edf_deinit(&q);
}

static void test_equal_deadlines_keep_arrival_order(void **state)
{
    (void)state;
    cl_edf q;
    cl_edf_init(&q);
    static int items[20];
    /* Interleave two deadlines so ties must be resolved across sifts. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(cl_edf_push(&q, i % 2 ? 100 : 200, &items[i]), CL_OK);
    for (int i = 1; i < 20; i += 2) {
        cl_edf_entry e;
        assert_true(cl_edf_pop(&q, &e));
        assert_ptr_equal(e.item, &items[i]);
    }
    for (int i = 0; i < 20; i += 2) {
        cl_edf_entry e;
        assert_true(cl_edf_pop(&q, &e));
        assert_ptr_equal(e.item, &items[i]);
    }
    cl_edf_deinit(&q);
}

static void test_many_random_items_come_out_sorted_and_ties_stable(void **state)
{
    (void)state;
    enum { N = 20000 };
    cl_edf q;
    cl_edf_init(&q);
    uintptr_t *order = calloc(N, sizeof(*order));
    assert_non_null(order);
    srand(12345);
    /* Few distinct deadlines, so there are many ties; the item is its
     * arrival index. Pops are mixed in to exercise the heap while it grows. */
    size_t popped = 0;
    uint64_t last_deadline = 0;
    uintptr_t last_index = 0;
    for (uintptr_t i = 0; i < N; i++) {
        assert_int_equal(cl_edf_push(&q, 1000 + (uint64_t)(rand() % 500), (void *)(i + 1)),
                         CL_OK);
        if (i % 7 == 6) {
            cl_edf_entry e;
            assert_true(cl_edf_pop(&q, &e));
            popped++;
            (void)e;
        }
    }
    assert_int_equal(cl_edf_len(&q), N - popped);
    size_t n = 0;
    cl_edf_entry e;
    while (cl_edf_pop(&q, &e)) {
        uintptr_t index = (uintptr_t)e.item;
        if (n > 0) {
            assert_true(e.deadline >= last_deadline);
            if (e.deadline == last_deadline)
                assert_true(index > last_index);
        }
        last_deadline = e.deadline;
        last_index = index;
        order[n++] = index;
    }
    assert_int_equal(n, N - popped);
    free(order);
    cl_edf_deinit(&q);
}

static void test_deinit_leaves_an_empty_reusable_heap(void **state)
{
    (void)state;
    cl_edf q;
    cl_edf_init(&q);
    int a;
    assert_int_equal(cl_edf_push(&q, 5, &a), CL_OK);
    cl_edf_deinit(&q);
    assert_int_equal(cl_edf_len(&q), 0);
    assert_int_equal(cl_edf_push(&q, 7, &a), CL_OK);
    assert_int_equal(cl_edf_peek(&q)->deadline, 7);
    cl_edf_deinit(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop_on_empty_heap_returns_false),
        cmocka_unit_test(test_items_come_out_by_earliest_deadline),
        cmocka_unit_test(test_equal_deadlines_keep_arrival_order),
        cmocka_unit_test(test_many_random_items_come_out_sorted_and_ties_stable),
        cmocka_unit_test(test_deinit_leaves_an_empty_reusable_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
