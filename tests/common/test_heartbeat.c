/* Unit tests of the replica heartbeat codec (actors/common/replicas.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_replicas.h"

static const char HB[] = "{\"model_name\":\"m\",\"model_version\":\"1\",\"replica_id\":3,"
                         "\"state\":\"ready\",\"cause\":\"\",\"host\":\"h1\",\"pid\":42,"
                         "\"input_type\":\"doubles\",\"runtime\":\"python-closure\"}";

static const char *decode_error(const char *json)
{
    static cl_err err;
    cl_replica_info info;
    memset(&err, 0, sizeof(err));
    if (cl_heartbeat_decode(&info, json, strlen(json), &err) == CL_OK)
        return "";
    return err.msg;
}

static const char *edit(const char *src, const char *from, const char *to)
{
    static char out[8192];
    const char *p = strstr(src, from);
    assert_non_null(p);
    snprintf(out, sizeof(out), "%.*s%s%s", (int)(p - src), src, to, p + strlen(from));
    return out;
}

static void test_heartbeat_round_trips(void **state)
{
    (void)state;
    cl_replica_info in = {0}, out;
    snprintf(in.model, sizeof(in.model), "sum");
    snprintf(in.version, sizeof(in.version), "2");
    in.replica_id = 4000000000u;
    snprintf(in.state, sizeof(in.state), "failed");
    snprintf(in.cause, sizeof(in.cause), "ImportError: no module named x");
    snprintf(in.host, sizeof(in.host), "node-7");
    in.pid = 1234;
    snprintf(in.input_type, sizeof(in.input_type), "strings");
    char *json = cl_heartbeat_encode(&in, "pyspark");
    assert_non_null(strstr(json, "\"runtime\":\"pyspark\""));
    cl_err err;
    assert_int_equal(cl_heartbeat_decode(&out, json, strlen(json), &err), CL_OK);
    assert_string_equal(out.model, "sum");
    assert_string_equal(out.version, "2");
    assert_int_equal(out.replica_id, 4000000000u);
    assert_string_equal(out.state, "failed");
    assert_string_equal(out.cause, "ImportError: no module named x");
    assert_string_equal(out.host, "node-7");
    assert_int_equal(out.pid, 1234);
    assert_string_equal(out.input_type, "strings");
    free(json);
}

static void test_heartbeat_with_only_required_fields_decodes(void **state)
{
    (void)state;
    const char *json =
        "{\"model_name\":\"m\",\"model_version\":\"1\",\"replica_id\":0,\"state\":\"starting\"}";
    cl_replica_info info;
    cl_err err;
    assert_int_equal(cl_heartbeat_decode(&info, json, strlen(json), &err), CL_OK);
    assert_string_equal(info.state, "starting");
    assert_string_equal(info.host, "");
    assert_string_equal(info.cause, "");
}

static void test_heartbeat_input_type_alias_is_made_canonical(void **state)
{
    (void)state;
    cl_replica_info info;
    cl_err err;
    const char *json = edit(HB, "\"doubles\"", "\"d\"");
    assert_int_equal(cl_heartbeat_decode(&info, json, strlen(json), &err), CL_OK);
    assert_string_equal(info.input_type, "doubles");
}

static void test_heartbeat_with_an_empty_input_type_means_not_known_yet(void **state)
{
    (void)state;
    cl_replica_info info;
    cl_err err;
    const char *json = edit(HB, "\"doubles\"", "\"\"");
    assert_int_equal(cl_heartbeat_decode(&info, json, strlen(json), &err), CL_OK);
    assert_string_equal(info.input_type, "");
    assert_non_null(strstr(decode_error(edit(HB, "\"doubles\"", "\"tensor\"")), "input_type"));
}

static void test_heartbeat_missing_replica_id_names_it(void **state)
{
    (void)state;
    const char *msg = decode_error(edit(HB, "\"replica_id\":3,", ""));
    assert_non_null(strstr(msg, "replica_id"));
    assert_non_null(strstr(msg, "bad heartbeat"));
}

static void test_heartbeat_negative_or_fractional_replica_id_is_refused(void **state)
{
    (void)state;
    assert_non_null(strstr(decode_error(edit(HB, "\"replica_id\":3", "\"replica_id\":-1")),
                           "replica_id"));
    assert_non_null(strstr(decode_error(edit(HB, "\"replica_id\":3", "\"replica_id\":1.5")),
                           "replica_id"));
    assert_non_null(strstr(decode_error(edit(HB, "\"replica_id\":3", "\"replica_id\":\"3\"")),
                           "replica_id"));
}

static void test_heartbeat_unknown_state_is_refused_listing_the_states(void **state)
{
    (void)state;
    const char *msg = decode_error(edit(HB, "\"ready\"", "\"sleepy\""));
    assert_non_null(strstr(msg, "state"));
    assert_non_null(strstr(msg, "starting, ready, failed, stopped"));
}

static void test_heartbeat_with_a_model_name_that_is_not_a_token_is_refused(void **state)
{
    (void)state;
    const char *msg = decode_error(edit(HB, "\"model_name\":\"m\"", "\"model_name\":\"a.b\""));
    assert_non_null(strstr(msg, "model_name"));
}

static void test_heartbeat_too_long_host_is_refused_but_long_cause_is_cut(void **state)
{
    (void)state;
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char field[3100];
    snprintf(field, sizeof(field), "\"host\":\"%s\"", big);
    assert_non_null(strstr(decode_error(edit(HB, "\"host\":\"h1\"", field)), "host"));
    snprintf(field, sizeof(field), "\"cause\":\"%s\"", big);
    const char *json = edit(HB, "\"cause\":\"\"", field);
    cl_replica_info info;
    cl_err err;
    assert_int_equal(cl_heartbeat_decode(&info, json, strlen(json), &err), CL_OK);
    assert_int_equal(strlen(info.cause), sizeof(info.cause) - 1);
}

static void test_heartbeat_garbage_is_refused(void **state)
{
    (void)state;
    assert_non_null(strstr(decode_error("not json"), "malformed"));
    assert_non_null(strstr(decode_error("[]"), "object"));
    cl_replica_info info;
    cl_err err;
    assert_int_equal(cl_heartbeat_decode(&info, "", 0, &err), CL_ERR_INVALID);
}

static void test_heartbeat_incarnation_round_trips_as_sixteen_hex_digits(void **state)
{
    (void)state;
    cl_replica_info in = {0}, out;
    snprintf(in.model, sizeof(in.model), "m");
    snprintf(in.version, sizeof(in.version), "1");
    snprintf(in.state, sizeof(in.state), "ready");
    in.incarnation = 0xfedcba9876543210ull;
    char *json = cl_heartbeat_encode(&in, "python-closure");
    assert_non_null(strstr(json, "\"incarnation\":\"fedcba9876543210\""));
    cl_err err;
    assert_int_equal(cl_heartbeat_decode(&out, json, strlen(json), &err), CL_OK);
    assert_true(out.incarnation == 0xfedcba9876543210ull);
    free(json);
    /* A small one keeps its leading zeros, and fewer digits decode too. */
    in.incarnation = 0x2a;
    json = cl_heartbeat_encode(&in, NULL);
    assert_non_null(strstr(json, "\"incarnation\":\"000000000000002a\""));
    free(json);
    json = (char *)edit(HB, "\"runtime\"", "\"incarnation\":\"2A\",\"runtime\"");
    assert_int_equal(cl_heartbeat_decode(&out, json, strlen(json), &err), CL_OK);
    assert_true(out.incarnation == 0x2a);
}

static void test_heartbeat_without_incarnation_has_incarnation_zero(void **state)
{
    (void)state;
    cl_replica_info info;
    cl_err err;
    assert_int_equal(cl_heartbeat_decode(&info, HB, strlen(HB), &err), CL_OK);
    assert_true(info.incarnation == 0);
    char *json = cl_heartbeat_encode(&info, "python-closure");
    assert_null(strstr(json, "incarnation"));
    free(json);
}

static void test_heartbeat_bad_incarnation_is_refused_naming_it(void **state)
{
    (void)state;
    const char *bad[] = {"\"\"", "\"0\"", "\"0000000000000000\"", "\"12345678901234567\"",
                         "\"xyz\"", "42", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char field[64];
        snprintf(field, sizeof(field), "\"incarnation\":%s,\"runtime\"", bad[i]);
        const char *msg = decode_error(edit(HB, "\"runtime\"", field));
        if (strstr(msg, "incarnation") == NULL)
            fail_msg("incarnation %s: expected an error naming it, got '%s'", bad[i], msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat_round_trips),
        cmocka_unit_test(test_heartbeat_with_only_required_fields_decodes),
        cmocka_unit_test(test_heartbeat_input_type_alias_is_made_canonical),
        cmocka_unit_test(test_heartbeat_with_an_empty_input_type_means_not_known_yet),
        cmocka_unit_test(test_heartbeat_missing_replica_id_names_it),
        cmocka_unit_test(test_heartbeat_negative_or_fractional_replica_id_is_refused),
        cmocka_unit_test(test_heartbeat_unknown_state_is_refused_listing_the_states),
        cmocka_unit_test(test_heartbeat_with_a_model_name_that_is_not_a_token_is_refused),
        cmocka_unit_test(test_heartbeat_too_long_host_is_refused_but_long_cause_is_cut),
        cmocka_unit_test(test_heartbeat_garbage_is_refused),
        cmocka_unit_test(test_heartbeat_incarnation_round_trips_as_sixteen_hex_digits),
        cmocka_unit_test(test_heartbeat_without_incarnation_has_incarnation_zero),
        cmocka_unit_test(test_heartbeat_bad_incarnation_is_refused_naming_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
