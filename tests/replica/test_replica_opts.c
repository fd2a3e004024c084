/* Unit tests of the replica's command line, random ids and pull body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "replica_internal.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static int clear_env(void **state)
{
    (void)state;
    unsetenv("CLIPPER_NATS_URL");
    unsetenv("CLIPPER_PREFIX");
    return 0;
}

static void test_all_options_are_parsed(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--nats", "nats://127.0.0.1:5555", "--prefix=other", "--model=m1",
                    "--version", "7", "--replica-id", "42", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_OK);
    assert_string_equal(o.actor.nats_url, "nats://127.0.0.1:5555");
    assert_string_equal(o.actor.prefix, "other");
    assert_string_equal(o.model, "m1");
    assert_string_equal(o.version, "7");
    assert_true(o.replica_id_given);
    assert_int_equal(o.replica_id, 42);
    assert_false(o.help);
}

static void test_replica_id_defaults_to_not_given(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--model", "m", "--version", "1", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_OK);
    assert_false(o.replica_id_given);
}

static void test_missing_model_is_an_error_naming_it(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--version", "1", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--model"));
}

static void test_missing_version_is_an_error_naming_it(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--model", "m", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--version"));
}

static void test_option_without_value_is_an_error(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--version", "1", "--model", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--model needs a value"));
}

static void test_bad_replica_ids_are_rejected(void **state)
{
    (void)state;
    const char *bad[] = {"-1", "2147483648", "abc", "12x", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"replica", "--model", "m", "--version", "1", "--replica-id",
                        (char *)bad[i], NULL};
        cl__replica_opts o;
        cl_err err;
        assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_ERR_INVALID);
        assert_non_null(strstr(err.msg, "--replica-id"));
    }
    char *argv[] = {"replica", "--model", "m", "--version", "1", "--replica-id", "2147483647",
                    NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_OK);
    assert_int_equal(o.replica_id, 2147483647u);
}

static void test_unknown_argument_is_rejected_naming_it(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--model", "m", "--version", "1", "--frobnicate", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--frobnicate"));
}

static void test_model_name_with_a_dot_is_rejected(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--model", "a.b", "--version", "1", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "model name"));
}

static void test_help_needs_nothing_else(void **state)
{
    (void)state;
    char *argv[] = {"replica", "--help", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_OK);
    assert_true(o.help);
}

static void test_environment_gives_nats_url_and_prefix(void **state)
{
    (void)state;
    setenv("CLIPPER_NATS_URL", "nats://10.0.0.1:4333", 1);
    setenv("CLIPPER_PREFIX", "envprefix", 1);
    char *argv[] = {"replica", "--model", "m", "--version", "1", NULL};
    cl__replica_opts o;
    cl_err err;
    assert_int_equal(cl__replica_opts_parse(&o, ARGC(argv), argv, &err), CL_OK);
    assert_string_equal(o.actor.nats_url, "nats://10.0.0.1:4333");
    assert_string_equal(o.actor.prefix, "envprefix");
    clear_env(NULL);
}

static void test_random_ids_are_nonzero_31_bit_and_vary(void **state)
{
    (void)state;
    uint32_t first = cl__replica_random_id();
    bool differs = false;
    for (int i = 0; i < 64; i++) {
        uint32_t id = cl__replica_random_id();
        assert_true(id > 0 && id <= 0x7fffffffu);
        differs |= id != first;
    }
    assert_true(differs);
}

static void test_pull_body_is_json_with_the_replica_id_and_completed_count(void **state)
{
    (void)state;
    char *body = cl__replica_pull_body(2147483647u, 42, false);
    assert_non_null(body);
    cJSON *o = cJSON_Parse(body);
    assert_non_null(o);
    cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "replica_id");
    assert_true(cJSON_IsNumber(id));
    assert_true(id->valuedouble == 2147483647.0);
    cJSON *done = cJSON_GetObjectItemCaseSensitive(o, "completed");
    assert_true(cJSON_IsNumber(done));
    assert_true(done->valuedouble == 42.0);
    assert_int_equal(cJSON_GetArraySize(o), 2);
    cJSON_Delete(o);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_all_options_are_parsed, clear_env),
        cmocka_unit_test_setup(test_replica_id_defaults_to_not_given, clear_env),
        cmocka_unit_test_setup(test_missing_model_is_an_error_naming_it, clear_env),
        cmocka_unit_test_setup(test_missing_version_is_an_error_naming_it, clear_env),
        cmocka_unit_test_setup(test_option_without_value_is_an_error, clear_env),
        cmocka_unit_test_setup(test_bad_replica_ids_are_rejected, clear_env),
        cmocka_unit_test_setup(test_unknown_argument_is_rejected_naming_it, clear_env),
        cmocka_unit_test_setup(test_model_name_with_a_dot_is_rejected, clear_env),
        cmocka_unit_test_setup(test_help_needs_nothing_else, clear_env),
        cmocka_unit_test_setup(test_environment_gives_nats_url_and_prefix, clear_env),
        cmocka_unit_test(test_random_ids_are_nonzero_31_bit_and_vary),
        cmocka_unit_test(test_pull_body_is_json_with_the_replica_id_and_completed_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
