/* Unit tests: the prediction cache (actors/frontend/fe_cache.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_cache.h"

static int owners[64]; /* stand-ins for queries */

static cl_fe_cache_key key_of(const char *model, const char *version, const char *input)
{
    cl_fe_cache_key k = {model, version, 3, input, strlen(input), 0};
    k.hash = cl_fe_cache_hash(&k);
    return k;
}

/* The counted cost of an entry for (model, version, input) with an output. */
static size_t cost(const char *model, const char *version, const char *input, size_t out_len)
{
    return strlen(model) + 1 + strlen(version) + 1 + strlen(input) + out_len +
           CL_FE_CACHE_OVERHEAD;
}

/* Looks input up for owner i and, on a miss, answers it with output. */
static cl_fe_cache_outcome store(cl_fe_cache *c, const char *input, const char *output, int i)
{
    cl_fe_cache_key k = key_of("m", "1", input);
    cl_fe_cache_entry *e = NULL;
    const char *out = NULL;
    size_t len = 0;
    cl_fe_cache_outcome r =
        cl_fe_cache_lookup(c, &k, (cl_fe_cache_waiter){&owners[i], 0}, &e, &out, &len);
    if (r == CL_FE_CACHE_MISS) {
        cl_fe_cache_waiter *w = NULL;
        assert_int_equal(cl_fe_cache_take_waiters(c, e, &w), 1);
        free(w);
        cl_fe_cache_fill(c, e, output, strlen(output));
    }
    return r;
}

static bool has(cl_fe_cache *c, const char *input, const char *want)
{
    cl_fe_cache_key k = key_of("m", "1", input);
    cl_fe_cache_entry *e = NULL;
    const char *out = NULL;
    size_t len = 0;
    cl_fe_cache_outcome r =
        cl_fe_cache_lookup(c, &k, (cl_fe_cache_waiter){&owners[63], 0}, &e, &out, &len);
    if (r == CL_FE_CACHE_MISS) { /* not there: undo the pending entry it made */
        cl_fe_cache_drop(c, e);
        return false;
    }
    assert_int_equal(r, CL_FE_CACHE_HIT);
    if (want != NULL) {
        assert_int_equal(len, strlen(want));
        assert_memory_equal(out, want, len);
    }
    return true;
}

static void test_miss_then_fill_then_hit_returns_the_output(void **state)
{
    (void)state;
    cl_fe_cache *c = NULL;
    assert_int_equal(cl_fe_cache_new(&c, 1 << 20), CL_OK);
    assert_int_equal(store(c, "x", "42", 0), CL_FE_CACHE_MISS);
    assert_true(has(c, "x", "42"));
    struct cl_fe_cache_stats st;
    cl_fe_cache_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.bytes, cost("m", "1", "x", 2));
    assert_int_equal(st.capacity, 1 << 20);
    assert_int_equal(st.lookups, 2);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.evictions, 0);
    cl_fe_cache_free(c);
}

static void test_model_version_and_type_are_part_of_the_key(void **state)
{
    (void)state;
    cl_fe_cache *c = NULL;
    assert_int_equal(cl_fe_cache_new(&c, 1 << 20), CL_OK);
    assert_int_equal(store(c, "x", "v1", 0), CL_FE_CACHE_MISS);
    cl_fe_cache_entry *e = NULL;
    const char *out;
    size_t len;
    cl_fe_cache_key k2 = key_of("m", "2", "x");
    assert_int_equal(cl_fe_cache_lookup(c, &k2, (cl_fe_cache_waiter){&owners[1], 0}, &e, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_drop(c, e);
    cl_fe_cache_key km = key_of("n", "1", "x");
    assert_int_equal(cl_fe_cache_lookup(c, &km, (cl_fe_cache_waiter){&owners[1], 0}, &e, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_drop(c, e);
    cl_fe_cache_key kt = key_of("m", "1", "x");
    kt.input_type = 4;
    kt.hash = cl_fe_cache_hash(&kt);
    assert_int_equal(cl_fe_cache_lookup(c, &kt, (cl_fe_cache_waiter){&owners[1], 0}, &e, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_drop(c, e);
    /* ("m1", "") and ("m", "1") hash and compare apart. */
    cl_fe_cache_key ks = key_of("m1", "", "x");
    assert_int_equal(cl_fe_cache_lookup(c, &ks, (cl_fe_cache_waiter){&owners[1], 0}, &e, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_drop(c, e);
    assert_true(has(c, "x", "v1"));
    cl_fe_cache_free(c);
}

static void test_bytes_stay_bounded_and_the_least_recently_used_goes_first(void **state)
{
    (void)state;
    size_t one = cost("m", "1", "a", 10);
    cl_fe_cache *c = NULL;
    assert_int_equal(cl_fe_cache_new(&c, 3 * one), CL_OK); /* room for three */
    assert_int_equal(store(c, "a", "0123456789", 0), CL_FE_CACHE_MISS);
    assert_int_equal(store(c, "b", "0123456789", 1), CL_FE_CACHE_MISS);
    assert_int_equal(store(c, "c", "0123456789", 2), CL_FE_CACHE_MISS);
    assert_true(has(c, "a", NULL)); /* a is now the most recent; b the least */
    assert_int_equal(store(c, "d", "0123456789", 3), CL_FE_CACHE_MISS);
    struct cl_fe_cache_stats st;
    cl_fe_cache_stats(c, &st);
    assert_true(st.bytes <= st.capacity);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 1);
    /* b went (a miss would itself make room, so absent keys are checked
     * last); the hits below make the order (oldest first) a, c, d. */
    assert_true(has(c, "a", NULL));
    assert_true(has(c, "c", NULL));
    assert_true(has(c, "d", NULL));
    /* A bigger
     * output evicts as many as it needs, oldest first: a to make room for
     * its pending entry, then c for its output; d stays. */
    char big[151];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(store(c, "e", big, 4), CL_FE_CACHE_MISS);
    cl_fe_cache_stats(c, &st);
    assert_true(st.bytes <= st.capacity);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.entries, 2);
    assert_true(has(c, "e", big));
    assert_true(has(c, "d", NULL));
    assert_false(has(c, "a", NULL));
    assert_false(has(c, "c", NULL));
    assert_false(has(c, "b", NULL));
    cl_fe_cache_free(c);
}

static void test_pending_entries_are_never_evicted(void **state)
{
    (void)state;
    size_t one = cost("m", "1", "a", 10);
    cl_fe_cache *c = NULL;
    assert_int_equal(cl_fe_cache_new(&c, 2 * one), CL_OK);
    cl_fe_cache_key kp = key_of("m", "1", "p");
    cl_fe_cache_entry *p = NULL;
    const char *out;
    size_t len;
    assert_int_equal(cl_fe_cache_lookup(c, &kp, (cl_fe_cache_waiter){&owners[0], 0}, &p, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    /* Ready entries come and go around it... */
    for (int i = 0; i < 10; i++) {
        char in[8];
        snprintf(in, sizeof(in), "r%d", i);
        store(c, in, "0123456789", 1);
    }
    /* ...and it is still there, pending, with its waiter. */
    assert_int_equal(cl_fe_cache_lookup(c, &kp, (cl_fe_cache_waiter){&owners[1], 0}, &p, &out,
                                        &len),
                     CL_FE_CACHE_JOINED);
    const cl_fe_cache_waiter *w = NULL;
    assert_int_equal(cl_fe_cache_waiters(c, p, &w), 2);
    struct cl_fe_cache_stats st;
    cl_fe_cache_stats(c, &st);
    assert_int_equal(st.pending, 1);
    assert_true(st.bytes <= st.capacity);
    /* When pending keys fill the cache, a new key is not cached at all. */
    cl_fe_cache_key kq = key_of("m", "1", "q");
    cl_fe_cache_entry *q = NULL;
    assert_int_equal(cl_fe_cache_lookup(c, &kq, (cl_fe_cache_waiter){&owners[2], 0}, &q, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_key kr = key_of("m", "1", "s");
    cl_fe_cache_entry *r = NULL;
    assert_int_equal(cl_fe_cache_lookup(c, &kr, (cl_fe_cache_waiter){&owners[3], 0}, &r, &out,
                                        &len),
                     CL_FE_CACHE_BYPASS);
    assert_null(r);
    cl_fe_cache_drop(c, q);
    cl_fe_cache_drop(c, p);
    cl_fe_cache_stats(c, &st);
    assert_int_equal(st.pending, 0);
    cl_fe_cache_free(c);
}

static void test_an_output_larger_than_the_cache_is_not_cached(void **state)
{
    (void)state;
    cl_fe_cache *c = NULL;
    /* Room for a's entry and b's pending one (its key counts while it
     * waits), not for b's output. */
    size_t cap = 2 * cost("m", "1", "a", 10);
    assert_int_equal(cl_fe_cache_new(&c, cap), CL_OK);
    assert_int_equal(store(c, "a", "0123456789", 0), CL_FE_CACHE_MISS);
    char *big = malloc(cap + 1);
    memset(big, 'y', cap);
    big[cap] = '\0';
    assert_int_equal(store(c, "b", big, 1), CL_FE_CACHE_MISS);
    assert_false(has(c, "b", NULL));
    assert_true(has(c, "a", "0123456789")); /* nothing was evicted for it */
    struct cl_fe_cache_stats st;
    cl_fe_cache_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.evictions, 0);
    free(big);
    cl_fe_cache_free(c);
}

static void test_a_hash_collision_never_gives_another_inputs_output(void **state)
{
    (void)state;
    cl_fe_cache *c = NULL;
    assert_int_equal(cl_fe_cache_new(&c, 1 << 20), CL_OK);
    cl_fe_cache_key a = key_of("m", "1", "aaaa");
    cl_fe_cache_key b = key_of("m", "1", "bbbb");
    a.hash = b.hash = 0x1234; /* forced: same bucket, same hash */
    cl_fe_cache_entry *ea = NULL, *eb = NULL;
    const char *out = NULL;
    size_t len = 0;
    assert_int_equal(cl_fe_cache_lookup(c, &a, (cl_fe_cache_waiter){&owners[0], 0}, &ea, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_waiter *w;
    cl_fe_cache_take_waiters(c, ea, &w);
    free(w);
    cl_fe_cache_fill(c, ea, "A", 1);
    assert_int_equal(cl_fe_cache_lookup(c, &b, (cl_fe_cache_waiter){&owners[1], 0}, &eb, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_take_waiters(c, eb, &w);
    free(w);
    cl_fe_cache_fill(c, eb, "B", 1);
    assert_int_equal(cl_fe_cache_lookup(c, &a, (cl_fe_cache_waiter){&owners[2], 0}, &ea, &out,
                                        &len),
                     CL_FE_CACHE_HIT);
    assert_memory_equal(out, "A", 1);
    assert_int_equal(cl_fe_cache_lookup(c, &b, (cl_fe_cache_waiter){&owners[2], 0}, &eb, &out,
                                        &len),
                     CL_FE_CACHE_HIT);
    assert_memory_equal(out, "B", 1);
    /* Same length, same hash, one byte apart: still a miss. */
    cl_fe_cache_key a2 = key_of("m", "1", "aaab");
    a2.hash = 0x1234;
    cl_fe_cache_entry *e2 = NULL;
    assert_int_equal(cl_fe_cache_lookup(c, &a2, (cl_fe_cache_waiter){&owners[3], 0}, &e2, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    cl_fe_cache_drop(c, e2);
    cl_fe_cache_free(c);
}

static void test_waiters_join_leave_and_are_handed_over(void **state)
{
    (void)state;
    cl_fe_cache *c = NULL;
    assert_int_equal(cl_fe_cache_new(&c, 1 << 20), CL_OK);
    cl_fe_cache_key k = key_of("m", "1", "w");
    cl_fe_cache_entry *e = NULL, *e2 = NULL;
    const char *out;
    size_t len;
    assert_int_equal(cl_fe_cache_lookup(c, &k, (cl_fe_cache_waiter){&owners[0], 0}, &e, &out,
                                        &len),
                     CL_FE_CACHE_MISS);
    for (int i = 1; i < 10; i++) {
        assert_int_equal(cl_fe_cache_lookup(c, &k, (cl_fe_cache_waiter){&owners[i], (uint32_t)i},
                                            &e2, &out, &len),
                         CL_FE_CACHE_JOINED);
        assert_ptr_equal(e2, e);
    }
    cl_fe_cache_set_task(c, e, 77, 1000);
    uint64_t deadline = 0;
    assert_int_equal(cl_fe_cache_task(c, e, &deadline), 77);
    assert_int_equal(deadline, 1000);
    cl_fe_cache_key back = cl_fe_cache_entry_key(e);
    assert_string_equal(back.model, "m");
    assert_string_equal(back.version, "1");
    assert_int_equal(back.input_len, 1);
    assert_memory_equal(back.input, "w", 1);
    assert_int_equal(back.hash, k.hash);
    assert_int_equal(cl_fe_cache_remove_waiter(c, e, (cl_fe_cache_waiter){&owners[4], 4}), 9);
    assert_int_equal(cl_fe_cache_remove_waiter(c, e, (cl_fe_cache_waiter){&owners[4], 4}), 9);
    cl_fe_cache_waiter *w = NULL;
    size_t n = cl_fe_cache_take_waiters(c, e, &w);
    assert_int_equal(n, 9);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        int who = (int)((int *)w[i].owner - owners);
        assert_true(who != 4);
        assert_int_equal(w[i].idx, (uint32_t)who);
        seen |= 1 << who;
    }
    assert_int_equal(seen, 0x3ff & ~(1 << 4));
    free(w);
    const cl_fe_cache_waiter *none;
    assert_int_equal(cl_fe_cache_waiters(c, e, &none), 0);
    assert_true(cl_fe_cache_fill(c, e, "out", 3));
    struct cl_fe_cache_stats st;
    cl_fe_cache_stats(c, &st);
    assert_int_equal(st.lookups, 10);
    assert_int_equal(st.hits, 9);
    assert_int_equal(st.pending, 0);
    cl_fe_cache_free(c);
}

static void test_many_entries_grow_the_table_and_stay_findable(void **state)
{
    (void)state;
    cl_fe_cache *c = NULL;
    assert_int_equal(cl_fe_cache_new(&c, 64 << 20), CL_OK);
    char in[32], out[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(in, sizeof(in), "in%d", i);
        snprintf(out, sizeof(out), "out%d", i);
        assert_int_equal(store(c, in, out, 0), CL_FE_CACHE_MISS);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(in, sizeof(in), "in%d", i);
        snprintf(out, sizeof(out), "out%d", i);
        assert_true(has(c, in, out));
    }
    struct cl_fe_cache_stats st;
    cl_fe_cache_stats(c, &st);
    assert_int_equal(st.entries, 5000);
    cl_fe_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_then_fill_then_hit_returns_the_output),
        cmocka_unit_test(test_model_version_and_type_are_part_of_the_key),
        cmocka_unit_test(test_bytes_stay_bounded_and_the_least_recently_used_goes_first),
        cmocka_unit_test(test_pending_entries_are_never_evicted),
        cmocka_unit_test(test_an_output_larger_than_the_cache_is_not_cached),
        cmocka_unit_test(test_a_hash_collision_never_gives_another_inputs_output),
        cmocka_unit_test(test_waiters_join_leave_and_are_handed_over),
        cmocka_unit_test(test_many_entries_grow_the_table_and_stay_findable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
