/* Integration tests of chunked, digest-checked artifacts (bus/artifact.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_artifact.h"
#include "cl_bus.h"
#include "cl_test_nats.h"

static cl_bus *bus;

static int group_setup(void **state)
{
    if (cl_test_nats_group_setup(state) != 0)
        return -1;
    if (cl_test_bus_connect(&bus, &cl_test_srv, NULL) != 0) {
        cl_test_nats_group_teardown(state);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    cl_bus_free(bus);
    return cl_test_nats_group_teardown(state);
}

static uint8_t *random_bytes(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);
    srand(seed);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rand();
    return p;
}

static void test_sha256_of_known_input(void **state)
{
    (void)state;
    char hex[CL_SHA256_HEX];
    cl_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cl_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_three_mib_artifact_round_trips_in_several_chunks(void **state)
{
    (void)state;
    size_t n = 3 * 1024 * 1024 + 17;
    uint8_t *data = random_bytes(n, 1);
    char put_hex[CL_SHA256_HEX], get_hex[CL_SHA256_HEX], want[CL_SHA256_HEX];
    cl_err err;
    cl_sha256_hex(data, n, want);
    if (cl_artifact_put(bus, "big", "1", data, n, put_hex, &err) != CL_OK)
        fail_msg("put: %s", err.msg);
    assert_string_equal(put_hex, want);
    void *back = NULL;
    size_t len = 0;
    if (cl_artifact_get(bus, "big", "1", &back, &len, get_hex, &err) != CL_OK)
        fail_msg("get: %s", err.msg);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    assert_string_equal(get_hex, want);
    /* The manifest, read straight from the stream, says it is chunked. */
    cl_msg *m = NULL;
    const char *req = "{\"last_by_subj\":\"clipper.artifact.big.1.meta\"}";
    assert_int_equal(cl_bus_request(bus, "$JS.API.DIRECT.GET.CLIPPER_ARTIFACTS", req, strlen(req),
                                    2000, &m),
                     CL_OK);
    char expect[200];
    snprintf(expect, sizeof(expect), "{\"size\":%zu,\"chunks\":4,\"chunk_size\":%d,\"sha256\":\"%s\"}",
             n, 1024 * 1024 - 4096, want);
    assert_int_equal(cl_msg_len(m), strlen(expect));
    assert_memory_equal(cl_msg_data(m), expect, strlen(expect));
    cl_msg_free(m);
    free(back);
    free(data);
}

static void test_empty_artifact_round_trips(void **state)
{
    (void)state;
    cl_err err;
    assert_int_equal(cl_artifact_put(bus, "empty", "1", "", 0, NULL, &err), CL_OK);
    void *back = NULL;
    size_t len = 99;
    assert_int_equal(cl_artifact_get(bus, "empty", "1", &back, &len, NULL, &err), CL_OK);
    assert_int_equal(len, 0);
    free(back);
}

static void test_missing_artifact_is_not_found_with_a_clear_message(void **state)
{
    (void)state;
    cl_err err;
    void *back = NULL;
    size_t len;
    assert_int_equal(cl_artifact_get(bus, "nosuch", "7", &back, &len, NULL, &err),
                     CL_ERR_NOT_FOUND);
    assert_string_equal(err.msg, "no artifact stored for model nosuch:7");
    assert_null(back);
}

static void test_bad_model_name_is_rejected(void **state)
{
    (void)state;
    cl_err err;
    assert_int_equal(cl_artifact_put(bus, "a.b", "1", "x", 1, NULL, &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "model name 'a.b' is not valid: it may not contain '.'");
}

static void test_corrupted_chunk_gives_digest_mismatch(void **state)
{
    (void)state;
    size_t n = 2 * 1024 * 1024;
    uint8_t *data = random_bytes(n, 2);
    cl_err err;
    assert_int_equal(cl_artifact_put(bus, "corrupt", "1", data, n, NULL, &err), CL_OK);
    /* Overwrite chunk 0 with same-size garbage: the stream captures it and,
     * keeping one message per subject, replaces the good chunk. */
    size_t chunk = (size_t)cl_bus_max_payload(bus) - 4096;
    uint8_t *bad = random_bytes(chunk, 3);
    char subj[256];
    snprintf(subj, sizeof(subj), "%s.artifact.corrupt.1.c.0", cl_bus_prefix(bus));
    assert_int_equal(cl_bus_publish(bus, subj, bad, chunk), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    void *back = NULL;
    size_t len;
    assert_int_equal(cl_artifact_get(bus, "corrupt", "1", &back, &len, NULL, &err), CL_ERR_DIGEST);
    assert_non_null(strstr(err.msg, "corrupt"));
    assert_non_null(strstr(err.msg, "SHA-256"));
    assert_null(back);
    /* A truncated chunk is caught too. */
    assert_int_equal(cl_bus_publish(bus, subj, bad, 10), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    assert_int_equal(cl_artifact_get(bus, "corrupt", "1", &back, &len, NULL, &err), CL_ERR_DIGEST);
    assert_non_null(strstr(err.msg, "chunk 0 has 10 bytes"));
    free(bad);
    free(data);
}

static void test_re_put_replaces_the_old_artifact(void **state)
{
    (void)state;
    cl_err err;
    size_t n1 = 2 * 1024 * 1024 + 5, n2 = 1000;
    uint8_t *d1 = random_bytes(n1, 4), *d2 = random_bytes(n2, 5);
    assert_int_equal(cl_artifact_put(bus, "re", "1", d1, n1, NULL, &err), CL_OK);
    assert_int_equal(cl_artifact_put(bus, "re", "1", d2, n2, NULL, &err), CL_OK);
    void *back = NULL;
    size_t len;
    assert_int_equal(cl_artifact_get(bus, "re", "1", &back, &len, NULL, &err), CL_OK);
    assert_int_equal(len, n2);
    assert_memory_equal(back, d2, n2);
    free(back);
    /* Other versions are untouched. */
    assert_int_equal(cl_artifact_put(bus, "re", "2", d1, n1, NULL, &err), CL_OK);
    assert_int_equal(cl_artifact_get(bus, "re", "1", &back, &len, NULL, &err), CL_OK);
    assert_int_equal(len, n2);
    free(back);
    free(d1);
    free(d2);
}

static void test_delete_removes_the_artifact(void **state)
{
    (void)state;
    cl_err err;
    assert_int_equal(cl_artifact_put(bus, "del", "1", "abc", 3, NULL, &err), CL_OK);
    assert_int_equal(cl_artifact_delete(bus, "del", "1", &err), CL_OK);
    void *back = NULL;
    size_t len;
    assert_int_equal(cl_artifact_get(bus, "del", "1", &back, &len, NULL, &err), CL_ERR_NOT_FOUND);
    assert_int_equal(cl_artifact_delete(bus, "del", "1", &err), CL_OK);
    assert_int_equal(cl_artifact_delete(bus, "never", "1", &err), CL_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_of_known_input),
        cmocka_unit_test(test_three_mib_artifact_round_trips_in_several_chunks),
        cmocka_unit_test(test_empty_artifact_round_trips),
        cmocka_unit_test(test_missing_artifact_is_not_found_with_a_clear_message),
        cmocka_unit_test(test_bad_model_name_is_rejected),
        cmocka_unit_test(test_corrupted_chunk_gives_digest_mismatch),
        cmocka_unit_test(test_re_put_replaces_the_old_artifact),
        cmocka_unit_test(test_delete_removes_the_artifact),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
