/* Unit tests of the cluster-state schema (actors/common/state.c): keys,
 * strict decoding with errors that name the field, encoding round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_json.h"
#include "cl_state.h"
#include "cl_wire.h"

static const char APP_JSON[] = "{\"name\":\"shop\",\"input_type\":\"doubles\",\"default_output\":"
                               "\"-1.0\",\"latency_slo_micros\":100000,\"linked_models\":[\"m\"]}";

static const char MODEL_JSON[] =
    "{\"model_name\":\"m\",\"model_version\":\"1\",\"input_type\":\"ints\",\"labels\":[\"a\","
    "\"b\"],\"container_name\":\"img\",\"model_data_path\":\"/tmp/m\",\"batch_size\":-1,"
    "\"num_replicas\":2,\"runtime\":\"python-closure\",\"artifact_sha256\":\"\","
    "\"artifact_size\":0}";

/* Decodes json as an app and returns the error text (empty on success). */
static const char *app_error(const char *json)
{
    static cl_err err;
    cl_app app;
    memset(&err, 0, sizeof(err));
    if (cl_app_from_json(&app, json, strlen(json), &err) == CL_OK) {
        cl_app_deinit(&app);
        return "";
    }
    return err.msg;
}

static const char *model_error(const char *json)
{
    static cl_err err;
    cl_model m;
    memset(&err, 0, sizeof(err));
    if (cl_model_from_json(&m, json, strlen(json), &err) == CL_OK) {
        cl_model_deinit(&m);
        return "";
    }
    return err.msg;
}

/* Replaces the first "from" in src by "to" (static buffer). */
static const char *edit(const char *src, const char *from, const char *to)
{
    static char out[2048];
    const char *p = strstr(src, from);
    assert_non_null(p);
    snprintf(out, sizeof(out), "%.*s%s%s", (int)(p - src), src, to, p + strlen(from));
    return out;
}

static void test_keys_join_kind_and_names(void **state)
{
    (void)state;
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_app(key, "shop", &err), CL_OK);
    assert_string_equal(key, "app.shop");
    assert_int_equal(cl_key_model(key, "m-1", "v_2", &err), CL_OK);
    assert_string_equal(key, "model.m-1.v_2");
    assert_int_equal(cl_key_current(key, "m", &err), CL_OK);
    assert_string_equal(key, "current.m");
}

static void test_key_with_a_dot_is_refused_naming_what(void **state)
{
    (void)state;
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_app(key, "a.b", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "application name 'a.b'"));
    assert_int_equal(cl_key_model(key, "m", "1.0", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "model version '1.0'"));
    assert_int_equal(cl_key_current(key, "", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "model name"));
}

static void test_key_with_a_character_kv_cannot_store_is_refused(void **state)
{
    (void)state;
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_app(key, "a#b", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "application name 'a#b' is not valid"));
    assert_non_null(strstr(err.msg, "'#'"));
    assert_int_equal(cl_key_model(key, "m", "a*", &err), CL_ERR_INVALID);
    assert_int_equal(cl_key_app(key, "with space", &err), CL_ERR_INVALID);
}

static void test_app_round_trips_through_json(void **state)
{
    (void)state;
    cl_app app, back;
    cl_err err;
    assert_int_equal(cl_app_from_json(&app, APP_JSON, strlen(APP_JSON), &err), CL_OK);
    assert_string_equal(app.name, "shop");
    assert_int_equal(app.input_type, CL_INPUT_DOUBLES);
    assert_string_equal(app.default_output, "-1.0");
    assert_int_equal(app.latency_slo_micros, 100000);
    assert_int_equal(app.n_linked, 1);
    assert_string_equal(app.linked_models[0], "m");
    cJSON *j = cl_app_to_json(&app);
    char *text = cl_json_print(j);
    assert_int_equal(cl_app_from_json(&back, text, strlen(text), &err), CL_OK);
    assert_string_equal(back.name, "shop");
    assert_int_equal(back.input_type, CL_INPUT_DOUBLES);
    assert_string_equal(cJSON_GetObjectItem(j, "input_type")->valuestring, "doubles");
    assert_int_equal(back.n_linked, 1);
    free(text);
    cJSON_Delete(j);
    cl_app_deinit(&back);
    cl_app_deinit(&app);
}

static void test_app_decode_missing_field_names_it(void **state)
{
    (void)state;
    const char *msg = app_error(edit(APP_JSON, "\"latency_slo_micros\":100000,", ""));
    assert_non_null(strstr(msg, "latency_slo_micros"));
    assert_non_null(strstr(msg, "missing"));
    msg = app_error(edit(APP_JSON, ",\"linked_models\":[\"m\"]", ""));
    assert_non_null(strstr(msg, "linked_models"));
}

static void test_app_decode_wrong_type_names_the_field_and_type(void **state)
{
    (void)state;
    const char *msg = app_error(edit(APP_JSON, "100000", "\"fast\""));
    assert_non_null(strstr(msg, "latency_slo_micros"));
    assert_non_null(strstr(msg, "string"));
    msg = app_error(edit(APP_JSON, "[\"m\"]", "[3]"));
    assert_non_null(strstr(msg, "linked_models"));
    msg = app_error(edit(APP_JSON, "100000", "1.5"));
    assert_non_null(strstr(msg, "latency_slo_micros"));
}

static void test_app_decode_unknown_input_type_names_it(void **state)
{
    (void)state;
    const char *msg = app_error(edit(APP_JSON, "doubles", "tensors"));
    assert_non_null(strstr(msg, "input_type"));
    assert_non_null(strstr(msg, "tensors"));
}

static void test_app_decode_malformed_json_says_where(void **state)
{
    (void)state;
    const char *msg = app_error("{\"name\": ");
    assert_non_null(strstr(msg, "offset"));
    msg = app_error("[1,2]");
    assert_non_null(strstr(msg, "object"));
}

static void test_model_round_trips_through_json(void **state)
{
    (void)state;
    cl_model m, back;
    cl_err err;
    assert_int_equal(cl_model_from_json(&m, MODEL_JSON, strlen(MODEL_JSON), &err), CL_OK);
    assert_string_equal(m.name, "m");
    assert_string_equal(m.version, "1");
    assert_int_equal(m.input_type, CL_INPUT_INTEGERS);
    assert_int_equal(m.n_labels, 2);
    assert_string_equal(m.labels[1], "b");
    assert_int_equal(m.batch_size, -1);
    assert_int_equal(m.num_replicas, 2);
    assert_string_equal(m.runtime, "python-closure");
    cJSON *j = cl_model_to_json(&m);
    char *text = cl_json_print(j);
    assert_int_equal(cl_model_from_json(&back, text, strlen(text), &err), CL_OK);
    assert_string_equal(back.container_name, "img");
    assert_string_equal(back.model_data_path, "/tmp/m");
    assert_int_equal(back.num_replicas, 2);
    assert_string_equal(cJSON_GetObjectItem(j, "input_type")->valuestring, "integers");
    free(text);
    cJSON_Delete(j);
    cl_model_deinit(&back);
    cl_model_deinit(&m);
}

static void test_model_decode_missing_or_mistyped_field_names_it(void **state)
{
    (void)state;
    assert_non_null(strstr(model_error(edit(MODEL_JSON, ",\"runtime\":\"python-closure\"", "")),
                           "runtime"));
    assert_non_null(strstr(model_error(edit(MODEL_JSON, "\"num_replicas\":2", "\"num_replicas\":\"2\"")),
                           "num_replicas"));
    assert_non_null(strstr(model_error(edit(MODEL_JSON, "[\"a\",", "[1,")), "labels"));
    assert_non_null(strstr(model_error(edit(MODEL_JSON, "\"batch_size\":-1", "\"batch_size\":null")),
                           "batch_size"));
}

static void test_model_optional_pkgs_and_versions_round_trip(void **state)
{
    (void)state;
    cl_model m, back, copy;
    cl_err err;
    /* A record without them (written before they existed) decodes empty,
     * and encodes without them. */
    assert_int_equal(cl_model_from_json(&m, MODEL_JSON, strlen(MODEL_JSON), &err), CL_OK);
    assert_int_equal(m.n_pkgs, 0);
    assert_string_equal(m.python_version, "");
    assert_string_equal(m.cloudpickle_version, "");
    cJSON *j = cl_model_to_json(&m);
    assert_null(cJSON_GetObjectItem(j, "pkgs_to_install"));
    assert_null(cJSON_GetObjectItem(j, "python_version"));
    assert_null(cJSON_GetObjectItem(j, "cloudpickle_version"));
    cJSON_Delete(j);
    cl_model_deinit(&m);

    const char *with = edit(MODEL_JSON, "\"artifact_size\":0",
                            "\"artifact_size\":0,\"pkgs_to_install\":[\"a==1\",\"b\"],"
                            "\"python_version\":\"3.11.7\",\"cloudpickle_version\":\"2.1.0\"");
    assert_int_equal(cl_model_from_json(&m, with, strlen(with), &err), CL_OK);
    assert_int_equal(m.n_pkgs, 2);
    assert_string_equal(m.pkgs_to_install[1], "b");
    j = cl_model_to_json(&m);
    char *text = cl_json_print(j);
    assert_int_equal(cl_model_from_json(&back, text, strlen(text), &err), CL_OK);
    assert_int_equal(back.n_pkgs, 2);
    assert_string_equal(back.pkgs_to_install[0], "a==1");
    assert_string_equal(back.python_version, "3.11.7");
    assert_string_equal(back.cloudpickle_version, "2.1.0");
    assert_int_equal(cl_model_copy(&copy, &back), CL_OK);
    cl_model_deinit(&back);
    assert_int_equal(copy.n_pkgs, 2);
    assert_string_equal(copy.pkgs_to_install[1], "b");
    assert_string_equal(copy.cloudpickle_version, "2.1.0");
    cl_model_deinit(&copy);
    free(text);
    cJSON_Delete(j);
    cl_model_deinit(&m);

    /* Present with the wrong type: an error naming the field. */
    assert_non_null(strstr(model_error(edit(MODEL_JSON, "\"artifact_size\":0",
                                            "\"artifact_size\":0,\"pkgs_to_install\":\"a\"")),
                           "pkgs_to_install"));
    assert_non_null(strstr(model_error(edit(MODEL_JSON, "\"artifact_size\":0",
                                            "\"artifact_size\":0,\"pkgs_to_install\":[1]")),
                           "pkgs_to_install"));
    assert_non_null(strstr(model_error(edit(MODEL_JSON, "\"artifact_size\":0",
                                            "\"artifact_size\":0,\"python_version\":3")),
                           "python_version"));
}

static void test_copies_are_deep(void **state)
{
    (void)state;
    cl_app app, copy;
    cl_model m, mcopy;
    cl_err err;
    assert_int_equal(cl_app_from_json(&app, APP_JSON, strlen(APP_JSON), &err), CL_OK);
    assert_int_equal(cl_app_copy(&copy, &app), CL_OK);
    assert_ptr_not_equal(copy.name, app.name);
    assert_ptr_not_equal(copy.linked_models[0], app.linked_models[0]);
    cl_app_deinit(&app);
    assert_string_equal(copy.linked_models[0], "m");
    cl_app_deinit(&copy);
    assert_int_equal(cl_model_from_json(&m, MODEL_JSON, strlen(MODEL_JSON), &err), CL_OK);
    assert_int_equal(cl_model_copy(&mcopy, &m), CL_OK);
    cl_model_deinit(&m);
    assert_string_equal(mcopy.labels[0], "a");
    assert_string_equal(mcopy.runtime, "python-closure");
    cl_model_deinit(&mcopy);
    cl_app_deinit(NULL);
    cl_model_deinit(NULL);
}

static void test_current_version_round_trips(void **state)
{
    (void)state;
    cl_err err;
    char *json = cl_current_to_json("7");
    assert_string_equal(json, "{\"model_version\":\"7\"}");
    char *v = cl_current_from_json(json, strlen(json), &err);
    assert_string_equal(v, "7");
    free(v);
    free(json);
    assert_null(cl_current_from_json("{\"version\":\"7\"}", 15, &err));
    assert_non_null(strstr(err.msg, "model_version"));
    assert_null(cl_current_from_json("{\"model_version\":7}", 19, &err));
    assert_non_null(strstr(err.msg, "model_version"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_join_kind_and_names),
        cmocka_unit_test(test_key_with_a_dot_is_refused_naming_what),
        cmocka_unit_test(test_key_with_a_character_kv_cannot_store_is_refused),
        cmocka_unit_test(test_app_round_trips_through_json),
        cmocka_unit_test(test_app_decode_missing_field_names_it),
        cmocka_unit_test(test_app_decode_wrong_type_names_the_field_and_type),
        cmocka_unit_test(test_app_decode_unknown_input_type_names_it),
        cmocka_unit_test(test_app_decode_malformed_json_says_where),
        cmocka_unit_test(test_model_round_trips_through_json),
        cmocka_unit_test(test_model_decode_missing_or_mistyped_field_names_it),
        cmocka_unit_test(test_model_optional_pkgs_and_versions_round_trip),
        cmocka_unit_test(test_copies_are_deep),
        cmocka_unit_test(test_current_version_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
