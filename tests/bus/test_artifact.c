/* Integration tests of chunked, digest-checked, immutable artifacts
 * (bus/artifact.c) on a real nats-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
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

/* A JetStream API request; returns the reply parsed (cJSON_Delete it). */
static cJSON *js_api(cl_bus *b, const char *subject, const char *body)
{
    cl_msg *m = NULL;
    if (cl_bus_request(b, subject, body, strlen(body), 5000, &m) != CL_OK)
        fail_msg("no answer on %s", subject);
    cJSON *o = cJSON_ParseWithLength(cl_msg_data(m), cl_msg_len(m));
    cl_msg_free(m);
    assert_non_null(o);
    return o;
}

/* Purges one subject of the stream, as only an operator (or
 * cl_artifact_delete, for a whole version) can. */
static void purge_subject(cl_bus *b, const char *stream, const char *subject)
{
    char api[200], body[300];
    snprintf(api, sizeof(api), "$JS.API.STREAM.PURGE.%s", stream);
    snprintf(body, sizeof(body), "{\"filter\":\"%s\"}", subject);
    cJSON *o = js_api(b, api, body);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "success")));
    cJSON_Delete(o);
}

static void publish_plain(cl_bus *b, const char *subject, const void *data, size_t len)
{
    assert_int_equal(cl_bus_publish(b, subject, data, len), CL_OK);
    assert_int_equal(cl_bus_flush(b, 2000), CL_OK);
}

static void test_corrupted_chunk_gives_digest_mismatch(void **state)
{
    (void)state;
    size_t n = 2 * 1024 * 1024;
    uint8_t *data = random_bytes(n, 2);
    cl_err err;
    assert_int_equal(cl_artifact_put(bus, "corrupt", "1", data, n, NULL, &err), CL_OK);
    /* Only an operator's purge makes room for other bytes on chunk 0 (a
     * plain publish is refused, below); then the digest catches them. */
    size_t chunk = (size_t)cl_bus_max_payload(bus) - 4096;
    uint8_t *bad = random_bytes(chunk, 3);
    char subj[256];
    snprintf(subj, sizeof(subj), "%s.artifact.corrupt.1.c.0", cl_bus_prefix(bus));
    purge_subject(bus, "CLIPPER_ARTIFACTS", subj);
    publish_plain(bus, subj, bad, chunk);
    void *back = NULL;
    size_t len;
    assert_int_equal(cl_artifact_get(bus, "corrupt", "1", &back, &len, NULL, &err), CL_ERR_DIGEST);
    assert_non_null(strstr(err.msg, "corrupt"));
    assert_non_null(strstr(err.msg, "SHA-256"));
    assert_null(back);
    /* A truncated chunk is caught too. */
    purge_subject(bus, "CLIPPER_ARTIFACTS", subj);
    publish_plain(bus, subj, bad, 10);
    assert_int_equal(cl_artifact_get(bus, "corrupt", "1", &back, &len, NULL, &err), CL_ERR_DIGEST);
    assert_non_null(strstr(err.msg, "chunk 0 has 10 bytes"));
    free(bad);
    free(data);
}

static void test_plain_publish_cannot_replace_a_stored_manifest_or_chunk(void **state)
{
    (void)state;
    cl_err err;
    size_t n = 2 * 1024 * 1024 + 9;
    uint8_t *data = random_bytes(n, 6);
    char sha[CL_SHA256_HEX];
    assert_int_equal(cl_artifact_put(bus, "probe", "1", data, n, sha, &err), CL_OK);
    /* What the outside probe did: a forged manifest (and chunk) by a plain
     * publish. The stream keeps the stored ones. */
    char subj[256];
    snprintf(subj, sizeof(subj), "%s.artifact.probe.1.meta", cl_bus_prefix(bus));
    const char *forged = "{\"size\":3,\"chunks\":1,\"chunk_size\":3,\"sha256\":"
                         "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}";
    publish_plain(bus, subj, forged, strlen(forged));
    snprintf(subj, sizeof(subj), "%s.artifact.probe.1.c.0", cl_bus_prefix(bus));
    publish_plain(bus, subj, "abc", 3);
    void *back = NULL;
    size_t len = 0;
    char got[CL_SHA256_HEX];
    if (cl_artifact_get(bus, "probe", "1", &back, &len, got, &err) != CL_OK)
        fail_msg("get after the forged publishes: %s", err.msg);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    assert_string_equal(got, sha);
    free(back);
    /* A JetStream publish (which waits for the stream's answer) is refused
     * with the reason. */
    cl_msg *m = NULL;
    assert_int_equal(cl_bus_request(bus, subj, "abc", 3, 2000, &m), CL_OK);
    assert_non_null(strstr(cl_msg_data(m), "maximum messages per subject exceeded"));
    cl_msg_free(m);
    free(data);
}

static void test_stream_refuses_replacing_on_the_real_server(void **state)
{
    (void)state;
    /* Older servers drop config fields they do not know: read back what
     * this one keeps. */
    cJSON *info = js_api(bus, "$JS.API.STREAM.INFO.CLIPPER_ARTIFACTS", "");
    cJSON *cfg = cJSON_GetObjectItem(info, "config");
    assert_non_null(cfg);
    assert_string_equal(cJSON_GetObjectItem(cfg, "discard")->valuestring, "new");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cfg, "discard_new_per_subject")));
    assert_int_equal(cJSON_GetObjectItem(cfg, "max_msgs_per_subject")->valueint, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cfg, "deny_delete")));
    /* Purging stays allowed: deleting a version purges its artifact. */
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(cfg, "deny_purge")));
    cJSON_Delete(info);
}

static void test_stream_made_with_the_old_settings_is_updated_when_opened(void **state)
{
    (void)state;
    cl_bus *old = NULL;
    assert_int_equal(cl_test_bus_connect(&old, &cl_test_srv, "oldp"), 0);
    /* The stream as the previous version made it: one message per subject,
     * the old one discarded, so a publish replaces what is stored. */
    cJSON *made = js_api(old, "$JS.API.STREAM.CREATE.OLDP_ARTIFACTS",
                         "{\"name\":\"OLDP_ARTIFACTS\",\"subjects\":[\"oldp.artifact.>\"],"
                         "\"storage\":\"file\",\"max_msgs_per_subject\":1,"
                         "\"allow_direct\":true,\"num_replicas\":1}");
    assert_null(cJSON_GetObjectItem(made, "error"));
    cJSON_Delete(made);
    publish_plain(old, "oldp.artifact.x.1.c.0", "one", 3);
    publish_plain(old, "oldp.artifact.x.1.c.0", "two", 3); /* replaces "one" */

    cl_err err;
    if (cl_artifact_open_stream(old, &err) != CL_OK)
        fail_msg("open: %s", err.msg);
    cJSON *info = js_api(old, "$JS.API.STREAM.INFO.OLDP_ARTIFACTS", "");
    cJSON *cfg = cJSON_GetObjectItem(info, "config");
    assert_string_equal(cJSON_GetObjectItem(cfg, "discard")->valuestring, "new");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cfg, "discard_new_per_subject")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cfg, "deny_delete")));
    cJSON_Delete(info);
    /* What was stored stays; a new put works; a plain publish no longer
     * replaces it. */
    assert_int_equal(cl_artifact_put(old, "y", "1", "abc", 3, NULL, &err), CL_OK);
    publish_plain(old, "oldp.artifact.y.1.c.0", "xyz", 3);
    void *back = NULL;
    size_t len = 0;
    assert_int_equal(cl_artifact_get(old, "y", "1", &back, &len, NULL, &err), CL_OK);
    assert_memory_equal(back, "abc", 3);
    free(back);
    cl_bus_free(old);
}

static void test_put_of_other_bytes_is_refused_and_of_the_same_bytes_succeeds(void **state)
{
    (void)state;
    cl_err err;
    size_t n1 = 2 * 1024 * 1024 + 5, n2 = 1000;
    uint8_t *d1 = random_bytes(n1, 4), *d2 = random_bytes(n2, 5);
    char sha1[CL_SHA256_HEX], again[CL_SHA256_HEX];
    assert_int_equal(cl_artifact_put(bus, "re", "1", d1, n1, sha1, &err), CL_OK);
    assert_int_equal(cl_artifact_put(bus, "re", "1", d2, n2, NULL, &err), CL_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "model re:1 already has an artifact"));
    assert_non_null(strstr(err.msg, "cannot be replaced"));
    void *back = NULL;
    size_t len;
    assert_int_equal(cl_artifact_get(bus, "re", "1", &back, &len, NULL, &err), CL_OK);
    assert_int_equal(len, n1);
    assert_memory_equal(back, d1, n1);
    free(back);
    /* A retried upload of the same bytes is fine. */
    assert_int_equal(cl_artifact_put(bus, "re", "1", d1, n1, again, &err), CL_OK);
    assert_string_equal(again, sha1);
    /* Other versions are their own. */
    assert_int_equal(cl_artifact_put(bus, "re", "2", d2, n2, NULL, &err), CL_OK);
    assert_int_equal(cl_artifact_get(bus, "re", "1", &back, &len, NULL, &err), CL_OK);
    assert_int_equal(len, n1);
    free(back);
    free(d1);
    free(d2);
}

static void test_unfinished_upload_is_removed_before_a_new_one(void **state)
{
    (void)state;
    /* An upload that stopped after a chunk, before its manifest. */
    char subj[256];
    snprintf(subj, sizeof(subj), "%s.artifact.half.1.c.0", cl_bus_prefix(bus));
    publish_plain(bus, subj, "left over", 9);
    cl_err err;
    if (cl_artifact_put(bus, "half", "1", "fresh", 5, NULL, &err) != CL_OK)
        fail_msg("put over an unfinished upload: %s", err.msg);
    void *back = NULL;
    size_t len = 0;
    assert_int_equal(cl_artifact_get(bus, "half", "1", &back, &len, NULL, &err), CL_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(back, "fresh", 5);
    free(back);
}

static void test_expected_digest_and_size_are_checked_against_the_manifest(void **state)
{
    (void)state;
    cl_err err;
    char sha[CL_SHA256_HEX];
    assert_int_equal(cl_artifact_put(bus, "exp", "1", "abcd", 4, sha, &err), CL_OK);
    void *back = NULL;
    size_t len = 0;
    const char *other = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(cl_artifact_get_expected(bus, "exp", "1", other, 4, &back, &len, NULL, &err),
                     CL_ERR_DIGEST);
    assert_null(back);
    assert_non_null(strstr(err.msg, "is not the one registered"));
    assert_non_null(strstr(err.msg, sha));
    assert_non_null(strstr(err.msg, other));
    assert_int_equal(cl_artifact_get_expected(bus, "exp", "1", sha, 5, &back, &len, NULL, &err),
                     CL_ERR_DIGEST);
    assert_non_null(strstr(err.msg, "(5 bytes)"));
    assert_int_equal(cl_artifact_get_expected(bus, "exp", "1", sha, 4, &back, &len, NULL, &err),
                     CL_OK);
    assert_int_equal(len, 4);
    free(back);
    back = NULL;
    assert_int_equal(cl_artifact_get_expected(bus, "exp", "1", "", -1, &back, &len, NULL, &err),
                     CL_OK);
    free(back);
}

static void test_manifest_with_an_impossible_chunk_size_is_malformed(void **state)
{
    (void)state;
    /* No artifact yet, so a plain publish can still write a manifest: one
     * that asks for a huge buffer is refused before anything is allocated. */
    char subj[256];
    snprintf(subj, sizeof(subj), "%s.artifact.huge.1.meta", cl_bus_prefix(bus));
    const char *forged = "{\"size\":4000000000000,\"chunks\":1,\"chunk_size\":4000000000000,"
                         "\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f"
                         "20015ad\"}";
    publish_plain(bus, subj, forged, strlen(forged));
    cl_err err;
    void *back = NULL;
    size_t len = 0;
    assert_int_equal(cl_artifact_get(bus, "huge", "1", &back, &len, NULL, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "artifact manifest of huge:1 is malformed"));
    assert_non_null(strstr(err.msg, "exceeds the server's max payload"));
    /* And a put for that version says an artifact is there. */
    assert_int_equal(cl_artifact_put(bus, "huge", "1", "x", 1, NULL, &err), CL_ERR_INVALID);
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
    /* The version can then be stored again, with other bytes. */
    assert_int_equal(cl_artifact_put(bus, "del", "1", "defg", 4, NULL, &err), CL_OK);
    assert_int_equal(cl_artifact_get(bus, "del", "1", &back, &len, NULL, &err), CL_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(back, "defg", 4);
    free(back);
    assert_int_equal(cl_artifact_delete(bus, "del", "1", &err), CL_OK);
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
        cmocka_unit_test(test_plain_publish_cannot_replace_a_stored_manifest_or_chunk),
        cmocka_unit_test(test_stream_refuses_replacing_on_the_real_server),
        cmocka_unit_test(test_stream_made_with_the_old_settings_is_updated_when_opened),
        cmocka_unit_test(test_put_of_other_bytes_is_refused_and_of_the_same_bytes_succeeds),
        cmocka_unit_test(test_unfinished_upload_is_removed_before_a_new_one),
        cmocka_unit_test(test_expected_digest_and_size_are_checked_against_the_manifest),
        cmocka_unit_test(test_manifest_with_an_impossible_chunk_size_is_malformed),
        cmocka_unit_test(test_delete_removes_the_artifact),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
