/* Integration tests of the admin actor (actors/admin) run in-process on a
 * real nats-server and driven over the bus with cl_bus_request: every
 * command's success and error texts, bad JSON, wrong types, unknown
 * commands, and that the admin keeps answering after bad input. Each test
 * gets its own prefix, hence its own state bucket. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_admin.h"
#include "cl_artifact.h"
#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_json.h"
#include "cl_kv.h"
#include "cl_replicas.h"
#include "cl_state.h"
#include "cl_subject.h"
#include "cl_test_nats.h"

static int test_counter;

static struct {
    char prefix[32];
    cl_bus *bus;
    cl_admin *admin;
    cl_bus *bus2;
    cl_admin *admin2;
} fx;

static const char ADD_APP_SCHEMA[] =
    "\n  {\n   \"name\" := string,\n   \"input_type\" := \"integers\" | \"bytes\" | \"floats\" | "
    "\"doubles\" | \"strings\",\n   \"default_output\" := string,\n   \"latency_slo_micros\" := "
    "int\n  }\n";

static const char VALID_TYPES[] =
    "Valid input types: bytes, integers, floats, doubles, strings (aliases: byte, b, ints, "
    "integer, int, i, float, f, double, d, string, str, strs, s)";

static cl_bus *connect_bus(const char *prefix)
{
    cl_bus *bus = NULL;
    assert_int_equal(cl_test_bus_connect(&bus, &cl_test_srv, prefix), 0);
    return bus;
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.prefix, sizeof(fx.prefix), "adm%d", ++test_counter);
    fx.bus = connect_bus(fx.prefix);
    cl_err err;
    if (cl_admin_start(&fx.admin, fx.bus, &err) != CL_OK) {
        fprintf(stderr, "admin start: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cl_admin_free(fx.admin2);
    cl_admin_free(fx.admin);
    cl_bus_free(fx.bus2);
    cl_bus_free(fx.bus);
    memset(&fx, 0, sizeof(fx));
    return 0;
}

/* Sends body to <prefix>.admin.<cmd> on bus; returns the parsed reply,
 * checked to be {"ok": bool, ...}. */
static cJSON *call_on(cl_bus *bus, const char *cmd, const char *body)
{
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    if (cl_subj_admin(subject, fx.prefix, cmd, &err) != CL_OK)
        fail_msg("subject: %s", err.msg);
    cl_msg *reply = NULL;
    cl_status st = cl_bus_request(bus, subject, body, strlen(body), 5000, &reply);
    if (st != CL_OK)
        fail_msg("request %s %s: %s", cmd, body, cl_status_text(st));
    cJSON *root = NULL;
    if (cl_json_parse_object(&root, cl_msg_data(reply), cl_msg_len(reply), &err) != CL_OK)
        fail_msg("reply to %s is not a JSON object: %.*s", cmd, (int)cl_msg_len(reply),
                 (const char *)cl_msg_data(reply));
    cl_msg_free(reply);
    if (!cJSON_IsBool(cJSON_GetObjectItem(root, "ok")))
        fail_msg("reply to %s has no boolean 'ok'", cmd);
    return root;
}

static cJSON *call(const char *cmd, const char *body)
{
    return call_on(fx.bus, cmd, body);
}

static char *show(const cJSON *j)
{
    return cJSON_PrintUnformatted(j);
}

/* The result of a successful call (detached; cJSON_Delete it). */
static cJSON *ok_result(const char *cmd, const char *body)
{
    cJSON *r = call(cmd, body);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
        fail_msg("%s %s failed: %s", cmd, body, show(r));
    cJSON *result = cJSON_DetachItemFromObject(r, "result");
    cJSON_Delete(r);
    if (result == NULL)
        fail_msg("%s: success without a result", cmd);
    return result;
}

static void expect_text(const char *cmd, const char *body, const char *expected)
{
    cJSON *res = ok_result(cmd, body);
    if (!cJSON_IsString(res) || strcmp(res->valuestring, expected) != 0)
        fail_msg("%s %s: expected result \"%s\", got %s", cmd, body, expected, show(res));
    cJSON_Delete(res);
}

/* The error text of a failed call (static copy). */
static const char *error_of(const char *cmd, const char *body)
{
    static char text[4096];
    cJSON *r = call(cmd, body);
    if (!cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")))
        fail_msg("%s %s: expected a failure, got %s", cmd, body, show(r));
    cJSON *e = cJSON_GetObjectItem(r, "error");
    if (!cJSON_IsString(e))
        fail_msg("%s: failure without an error text: %s", cmd, show(r));
    if (cJSON_GetObjectItem(r, "result") != NULL)
        fail_msg("%s: failure with a result: %s", cmd, show(r));
    snprintf(text, sizeof(text), "%s", e->valuestring);
    cJSON_Delete(r);
    return text;
}

static void expect_error(const char *cmd, const char *body, const char *expected)
{
    const char *got = error_of(cmd, body);
    if (strcmp(got, expected) != 0)
        fail_msg("%s %s:\n expected error \"%s\"\n got            \"%s\"", cmd, body, expected,
                 got);
}

static void expect_error_has(const char *cmd, const char *body, const char *part)
{
    const char *got = error_of(cmd, body);
    if (strstr(got, part) == NULL)
        fail_msg("%s %s: error \"%s\" does not contain \"%s\"", cmd, body, got, part);
}

static void expect_json(const char *cmd, const char *body, const char *expected_json)
{
    cJSON *res = ok_result(cmd, body);
    cJSON *want = cJSON_Parse(expected_json);
    assert_non_null(want);
    if (!cJSON_Compare(res, want, 1))
        fail_msg("%s %s:\n expected %s\n got      %s", cmd, body, expected_json, show(res));
    cJSON_Delete(want);
    cJSON_Delete(res);
}

static void add_app(const char *name, const char *type)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"input_type\":\"%s\",\"default_output\":\"-1\","
             "\"latency_slo_micros\":100000}",
             name, type);
    cJSON_Delete(ok_result("add_app", body));
}

static void add_model(const char *name, const char *version, const char *type)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"model_name\":\"%s\",\"model_version\":\"%s\",\"labels\":[],\"input_type\":"
             "\"%s\",\"container_name\":\"img\",\"model_data_path\":\"DEPRECATED\","
             "\"batch_size\":-1}",
             name, version, type);
    cJSON_Delete(ok_result("add_model", body));
}

static void link_model(const char *app, const char *model)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"app_name\":\"%s\",\"model_names\":[\"%s\"]}", app, model);
    cJSON_Delete(ok_result("add_model_links", body));
}

/* ---- ping, unknown commands, bad bodies ------------------------------- */

static void test_ping_answers_pong(void **state)
{
    (void)state;
    expect_text("ping", "", "PONG");
    expect_text("ping", "{}", "PONG");
}

static void test_unknown_command_lists_the_known_ones(void **state)
{
    (void)state;
    expect_error("frobnicate", "{}",
                 "Unknown admin command 'frobnicate'. Known commands: add_app, delete_app, "
                 "get_all_applications, get_application, add_model, get_all_models, get_model, "
                 "delete_versioned_model, set_model_version, add_model_links, "
                 "delete_model_links, get_linked_models, get_state, get_all_containers, "
                 "get_container, set_num_replicas, ping");
    expect_text("ping", "", "PONG");
}

static void test_malformed_json_gives_clippers_parse_error_with_the_schema(void **state)
{
    (void)state;
    const char *got = error_of("add_app", "{\"name\": \"a\",");
    assert_true(strncmp(got, "Error parsing JSON: JSON parse error: malformed JSON at offset",
                        strlen("Error parsing JSON: JSON parse error: malformed JSON at offset")) ==
                0);
    char tail[1024];
    snprintf(tail, sizeof(tail), ". Expected JSON schema: %s", ADD_APP_SCHEMA);
    assert_string_equal(got + strlen(got) - strlen(tail), tail);
    expect_error_has("get_all_models", "", "Error parsing JSON: JSON parse error: malformed JSON");
    expect_error_has("add_model_links", "nonsense", "\"model_names\" := [string]");
}

static void test_body_that_is_not_an_object_is_refused(void **state)
{
    (void)state;
    expect_error_has("get_application", "[\"a\"]",
                     "Error parsing JSON: Can only get key-value pair from an object, but the "
                     "body is an Array");
    expect_error_has("get_all_applications", "true", "but the body is a True");
}

static void test_missing_field_gives_clippers_text_and_schema(void **state)
{
    (void)state;
    char want[2048];
    snprintf(want, sizeof(want),
             "Error parsing JSON: JSON object does not have required key: latency_slo_micros. "
             "Expected JSON schema: %s",
             ADD_APP_SCHEMA);
    expect_error("add_app", "{\"name\":\"a\",\"input_type\":\"doubles\",\"default_output\":\"x\"}",
                 want);
    expect_error_has("get_all_applications", "{}",
                     "Error parsing JSON: JSON object does not have required key: verbose. "
                     "Expected JSON schema: \n  {\n    \"verbose\" := bool\n  }\n");
}

static void test_wrong_field_types_give_type_mismatch(void **state)
{
    (void)state;
    expect_error_has("add_app",
                     "{\"name\":\"a\",\"input_type\":\"doubles\",\"default_output\":\"x\","
                     "\"latency_slo_micros\":\"fast\"}",
                     "Error parsing JSON: Type mismatch! JSON key latency_slo_micros expected "
                     "type Number but found type String.");
    expect_error_has("add_app",
                     "{\"name\":7,\"input_type\":\"doubles\",\"default_output\":\"x\","
                     "\"latency_slo_micros\":1}",
                     "Type mismatch! JSON key name expected type String but found type Number");
    expect_error_has("add_app",
                     "{\"name\":\"a\",\"input_type\":\"doubles\",\"default_output\":\"x\","
                     "\"latency_slo_micros\":1.5}",
                     "JSON key latency_slo_micros expected an integer but found 1.5");
    expect_error_has("get_all_models", "{\"verbose\":\"yes\"}",
                     "Type mismatch! JSON key verbose expected type bool but found type String");
    expect_error_has("add_model_links", "{\"app_name\":\"a\",\"model_names\":\"m\"}",
                     "Type mismatch! JSON key model_names expected type Array but found type "
                     "String");
    expect_error_has("add_model_links", "{\"app_name\":\"a\",\"model_names\":[\"m\",null]}",
                     "Array input of type Null is not of type string (JSON key model_names, "
                     "element 1)");
    expect_error_has("get_container",
                     "{\"model_name\":\"m\",\"model_version\":\"1\",\"replica_id\":\"0\"}",
                     "Type mismatch! JSON key replica_id expected type Number but found type "
                     "String");
    expect_text("ping", "", "PONG");
}

static void test_admin_keeps_answering_after_bad_input(void **state)
{
    (void)state;
    const char *bad[] = {"", "\xff\xfe\x00garbage", "{", "[[[[[[[[[[[[[[[[[[[[", "null", "12",
                         "{\"name\":null}", "{\"verbose\":[]}"};
    const char *cmds[] = {"add_app", "add_model", "get_all_models", "delete_app",
                          "set_num_replicas", "get_container", "add_model_links"};
    for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++)
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
            (void)error_of(cmds[c], bad[b]);
    expect_text("ping", "", "PONG");
    add_app("after", "doubles");
    expect_json("get_all_applications", "{\"verbose\":false}", "[\"after\"]");
}

/* ---- applications ----------------------------------------------------- */

static void test_add_app_succeeds_and_a_duplicate_fails(void **state)
{
    (void)state;
    const char *body = "{\"name\":\"shop\",\"input_type\":\"doubles\",\"default_output\":"
                       "\"-1.0\",\"latency_slo_micros\":100000}";
    expect_text("add_app", body, "Successfully added application with name 'shop'");
    expect_error("add_app", body, "application 'shop' already exists");
}

static void test_add_app_with_unknown_input_type_lists_the_valid_ones(void **state)
{
    (void)state;
    char want[512];
    snprintf(want, sizeof(want), "Invalid input_type 'tensors'. %s", VALID_TYPES);
    expect_error("add_app",
                 "{\"name\":\"a\",\"input_type\":\"tensors\",\"default_output\":\"x\","
                 "\"latency_slo_micros\":1000}",
                 want);
    expect_json("get_all_applications", "{\"verbose\":false}", "[]");
}

static void test_add_app_accepts_aliases_and_stores_the_canonical_name(void **state)
{
    (void)state;
    add_app("a1", "d");
    add_app("a2", "str");
    expect_json("get_application", "{\"name\":\"a1\"}",
                "{\"input_type\":\"doubles\",\"default_output\":\"-1\",\"latency_slo_micros\":"
                "100000,\"name\":\"a1\",\"linked_models\":[]}");
    cJSON *r = ok_result("get_application", "{\"name\":\"a2\"}");
    assert_string_equal(cJSON_GetObjectItem(r, "input_type")->valuestring, "strings");
    cJSON_Delete(r);
}

static void test_app_names_that_cannot_be_stored_are_refused_clearly(void **state)
{
    (void)state;
    const char *fmt = "{\"name\":\"%s\",\"input_type\":\"doubles\",\"default_output\":\"x\","
                      "\"latency_slo_micros\":1000}";
    char body[256];
    snprintf(body, sizeof(body), fmt, "a:b");
    expect_error("add_app", body, "Invalid application name supplied: a:b. Contains one of: ',', ':'");
    snprintf(body, sizeof(body), fmt, "a,b");
    expect_error("add_app", body, "Invalid application name supplied: a,b. Contains one of: ',', ':'");
    snprintf(body, sizeof(body), fmt, "a.b");
    expect_error("add_app", body, "application name 'a.b' is not valid: it may not contain '.'");
    snprintf(body, sizeof(body), fmt, "a b");
    expect_error_has("add_app", body, "application name 'a b' is not valid");
    snprintf(body, sizeof(body), fmt, "a#b");
    expect_error_has("add_app", body, "application name 'a#b' is not valid");
    snprintf(body, sizeof(body), fmt, "");
    expect_error_has("add_app", body, "application name is empty");
    expect_json("get_all_applications", "{\"verbose\":false}", "[]");
}

static void test_add_app_with_a_non_positive_slo_is_refused(void **state)
{
    (void)state;
    expect_error("add_app",
                 "{\"name\":\"a\",\"input_type\":\"doubles\",\"default_output\":\"x\","
                 "\"latency_slo_micros\":0}",
                 "latency_slo_micros must be between 1 and 4294967295 microseconds, got 0");
}

static void test_delete_app_succeeds_and_an_unknown_app_fails(void **state)
{
    (void)state;
    add_app("gone", "ints");
    expect_text("delete_app", "{\"name\":\"gone\"}",
                "Successfully deleted application with name 'gone'");
    expect_error("delete_app", "{\"name\":\"gone\"}", "Application 'gone' does not exist");
    expect_error("delete_app", "{\"name\":\"not.valid\"}",
                 "Application 'not.valid' does not exist");
    expect_json("get_application", "{\"name\":\"gone\"}", "{}");
    /* The name is free again. */
    add_app("gone", "ints");
}

static void test_get_all_applications_lists_names_or_clippers_objects(void **state)
{
    (void)state;
    add_app("b", "ints");
    add_app("a", "floats");
    expect_json("get_all_applications", "{\"verbose\":false}", "[\"a\",\"b\"]");
    expect_json("get_all_applications", "{\"verbose\":true}",
                "[{\"input_type\":\"floats\",\"default_output\":\"-1\",\"latency_slo_micros\":"
                "100000,\"name\":\"a\",\"linked_models\":[]},"
                "{\"input_type\":\"integers\",\"default_output\":\"-1\",\"latency_slo_micros\":"
                "100000,\"name\":\"b\",\"linked_models\":[]}]");
    expect_json("get_application", "{\"name\":\"missing\"}", "{}");
}

static void test_get_linked_models_of_an_unknown_app_fails(void **state)
{
    (void)state;
    expect_error("get_linked_models", "{\"app_name\":\"x\"}",
                 "No application with name 'x' exists.");
    add_app("x", "doubles");
    expect_json("get_linked_models", "{\"app_name\":\"x\"}", "[]");
}

static void test_get_state_answers_the_default_output_or_says_the_app_is_unknown(void **state)
{
    (void)state;
    /* Clipper's answer for an unknown app was undefined; ours is clear. */
    expect_error("get_state", "{\"app_name\":\"st\",\"uid\":0}",
                 "No application with name 'st' exists.");
    expect_text("add_app",
                "{\"name\":\"st\",\"input_type\":\"doubles\",\"default_output\":"
                "\"{\\\"label\\\": 7}\",\"latency_slo_micros\":1000}",
                "Successfully added application with name 'st'");
    /* The default output as a raw string, whatever uid is. */
    expect_text("get_state", "{\"app_name\":\"st\",\"uid\":0}", "{\"label\": 7}");
    expect_text("get_state", "{\"app_name\":\"st\",\"uid\":42}", "{\"label\": 7}");
    expect_error("get_state", "{\"app_name\":\"st\"}",
                 "Error parsing JSON: JSON object does not have required key: uid. Expected "
                 "JSON schema: \n  {\n    \"app_name\" := string,\n    \"uid\" := int\n  }\n");
    expect_error_has("get_state", "{\"app_name\":\"st\",\"uid\":\"7\"}",
                     "Type mismatch! JSON key uid expected type Number but found type String");
}

/* ---- model links ------------------------------------------------------ */

static void test_add_model_links_checks_in_clippers_order(void **state)
{
    (void)state;
    expect_error("add_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\"]}",
                 "No app with name 'app' exists.");
    add_app("app", "doubles");
    expect_error("add_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\"]}",
                 "No model with name 'm' exists.");
    add_model("ints-model", "1", "ints");
    expect_error("add_model_links", "{\"app_name\":\"app\",\"model_names\":[\"ints-model\"]}",
                 "Model with name 'ints-model' has incompatible input_type 'integers'. "
                 "Requested app to link to has input_type 'doubles'.");
    expect_error("add_model_links", "{\"app_name\":\"app\",\"model_names\":[]}",
                 "Please provide the name of the model that you want to link to the "
                 "application 'app'");
    add_model("m", "1", "doubles");
    add_model("n", "1", "doubles");
    expect_error("add_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\",\"n\"]}",
                 "Applications must be linked with at most one model. Attempted to add links "
                 "to 2 models.");
    expect_text("add_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\"]}",
                "Successfully linked model with name 'm' to application 'app'");
    expect_error("add_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\"]}",
                 "The model with name 'm' is already linked to 'app'");
    expect_error("add_model_links", "{\"app_name\":\"app\",\"model_names\":[\"n\"]}",
                 "A model with name m is already linked to 'app'.");
    expect_json("get_linked_models", "{\"app_name\":\"app\"}", "[\"m\"]");
    cJSON *app = ok_result("get_application", "{\"name\":\"app\"}");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(app, "linked_models"), 0)->valuestring,
                        "m");
    cJSON_Delete(app);
}

static void test_delete_model_links_removes_a_link_or_says_why_not(void **state)
{
    (void)state;
    expect_error("delete_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\"]}",
                 "No app with name app exists.");
    add_app("app", "doubles");
    expect_error("delete_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\"]}",
                 "Cannot remove nonexistent link between app app and model m");
    add_model("m", "1", "doubles");
    link_model("app", "m");
    expect_text("delete_model_links", "{\"app_name\":\"app\",\"model_names\":[\"m\"]}",
                "Success!");
    expect_json("get_linked_models", "{\"app_name\":\"app\"}", "[]");
    link_model("app", "m");
    expect_json("get_linked_models", "{\"app_name\":\"app\"}", "[\"m\"]");
}

/* ---- models ----------------------------------------------------------- */

static const char MODEL_BODY[] =
    "{\"model_name\":\"m\",\"model_version\":\"1\",\"labels\":[\"l1\"],\"input_type\":\"doubles\","
    "\"container_name\":\"img\",\"model_data_path\":\"DEPRECATED\",\"batch_size\":-1}";

static void test_add_model_makes_it_current_and_a_duplicate_fails(void **state)
{
    (void)state;
    expect_text("add_model", MODEL_BODY,
                "Successfully added model with name 'm' and input type 'doubles'");
    expect_error("add_model", MODEL_BODY, "model with name 'm' and version '1' already exists");
    expect_json("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}",
                "{\"model_name\":\"m\",\"model_version\":\"1\",\"input_type\":\"doubles\","
                "\"labels\":[\"l1\"],\"container_name\":\"img\",\"model_data_path\":"
                "\"DEPRECATED\",\"is_current_version\":true,\"batch_size\":-1,\"num_replicas\":0,"
                "\"runtime\":\"python-closure\",\"artifact_sha256\":\"\",\"artifact_size\":0}");
    add_model("m", "2", "d");
    cJSON *v1 = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(v1, "is_current_version")));
    cJSON_Delete(v1);
    cJSON *v2 = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"2\"}");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(v2, "is_current_version")));
    cJSON_Delete(v2);
    expect_json("get_model", "{\"model_name\":\"m\",\"model_version\":\"9\"}", "{}");
}

/* The stored model.<name>.<version> record, decoded. */
static void stored_model(const char *name, const char *version, cl_model *m)
{
    cl_kv *kv = NULL;
    cl_err err;
    char key[CL_KEY_MAX], *value = NULL;
    size_t len = 0;
    assert_int_equal(cl_kv_open(&kv, fx.bus, &err), CL_OK);
    assert_int_equal(cl_key_model(key, name, version, &err), CL_OK);
    assert_int_equal(cl_kv_get(kv, key, &value, &len, NULL, &err), CL_OK);
    if (cl_model_from_json(m, value, len, &err) != CL_OK)
        fail_msg("stored model %s: %s", value, err.msg);
    free(value);
    cl_kv_free(kv);
}

static void test_add_model_records_pkgs_to_install_and_versions(void **state)
{
    (void)state;
    const char *fmt = "{\"model_name\":\"m\",\"model_version\":\"%s\",\"labels\":[],"
                      "\"input_type\":\"doubles\",\"container_name\":\"c\",\"model_data_path\":"
                      "\"p\",\"batch_size\":-1%s}";
    char body[1024];
    snprintf(body, sizeof(body), fmt, "1",
             ",\"pkgs_to_install\":[\"pyfiglet==1.0.2\",\"/tmp/w-1.0-py3-none-any.whl\"],"
             "\"python_version\":\"3.11.7\",\"cloudpickle_version\":\"2.1.0\"");
    cJSON_Delete(ok_result("add_model", body));
    cl_model m;
    stored_model("m", "1", &m);
    assert_int_equal(m.n_pkgs, 2);
    assert_string_equal(m.pkgs_to_install[0], "pyfiglet==1.0.2");
    assert_string_equal(m.pkgs_to_install[1], "/tmp/w-1.0-py3-none-any.whl");
    assert_string_equal(m.python_version, "3.11.7");
    assert_string_equal(m.cloudpickle_version, "2.1.0");
    cl_model_deinit(&m);
    /* get_model keeps Clipper's shape: no new fields. */
    cJSON *info = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}");
    assert_null(cJSON_GetObjectItem(info, "pkgs_to_install"));
    assert_null(cJSON_GetObjectItem(info, "python_version"));
    cJSON_Delete(info);
    /* Without them, the record has none. */
    snprintf(body, sizeof(body), fmt, "2", "");
    cJSON_Delete(ok_result("add_model", body));
    stored_model("m", "2", &m);
    assert_int_equal(m.n_pkgs, 0);
    assert_string_equal(m.python_version, "");
    cl_model_deinit(&m);

    /* Wrong types and bad entries are refused, naming what was wrong. */
    snprintf(body, sizeof(body), fmt, "3", ",\"pkgs_to_install\":\"numpy\"");
    expect_error_has("add_model", body,
                     "Type mismatch! JSON key pkgs_to_install expected type Array but found "
                     "type String");
    snprintf(body, sizeof(body), fmt, "3", ",\"pkgs_to_install\":[\"numpy\",3]");
    expect_error_has("add_model", body, "(JSON key pkgs_to_install, element 1)");
    snprintf(body, sizeof(body), fmt, "3", ",\"pkgs_to_install\":[\"numpy\",\"\"]");
    expect_error("add_model", body, "pkgs_to_install entry 1 ('') is empty");
    snprintf(body, sizeof(body), fmt, "3", ",\"pkgs_to_install\":[\"--index-url=http://x\"]");
    expect_error_has("add_model", body,
                     "pkgs_to_install entry 0 ('--index-url=http://x') starts with '-'");
    snprintf(body, sizeof(body), fmt, "3", ",\"pkgs_to_install\":[\"a\\nb\"]");
    expect_error_has("add_model", body, "contains a control character");
    snprintf(body, sizeof(body), fmt, "3", ",\"python_version\":3.11");
    expect_error_has("add_model", body,
                     "JSON key python_version expected type String but found type Number");
    snprintf(body, sizeof(body), fmt, "3", ",\"python_version\":\"three\"");
    expect_error("add_model", body,
                 "python_version must look like \"3.11.7\" (digits and dots), got 'three'");
    snprintf(body, sizeof(body), fmt, "3", ",\"cloudpickle_version\":\"2.1 .0\"");
    expect_error("add_model", body, "cloudpickle_version must look like \"2.1.0\", got '2.1 .0'");
    /* None of those was stored, and the admin still answers. */
    expect_json("get_model", "{\"model_name\":\"m\",\"model_version\":\"3\"}", "{}");
}

static void test_add_model_batch_size_must_be_positive_or_minus_one(void **state)
{
    (void)state;
    const char *fmt = "{\"model_name\":\"m\",\"model_version\":\"1\",\"labels\":[],"
                      "\"input_type\":\"doubles\",\"container_name\":\"c\",\"model_data_path\":"
                      "\"p\",\"batch_size\":%d}";
    char body[512];
    snprintf(body, sizeof(body), fmt, 0);
    expect_error("add_model", body,
                 "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1");
    snprintf(body, sizeof(body), fmt, -5);
    expect_error("add_model", body,
                 "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1");
    snprintf(body, sizeof(body), fmt, 16);
    cJSON_Delete(ok_result("add_model", body));
    cJSON *m = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}");
    assert_int_equal(cJSON_GetObjectItem(m, "batch_size")->valueint, 16);
    cJSON_Delete(m);
    expect_error_has("add_model",
                     "{\"model_name\":\"m\",\"model_version\":\"2\",\"labels\":[],\"input_type\":"
                     "\"doubles\",\"container_name\":\"c\",\"model_data_path\":\"p\"}",
                     "JSON object does not have required key: batch_size");
}

static void test_add_model_refuses_separators_and_bad_names(void **state)
{
    (void)state;
    const char *fmt = "{\"model_name\":\"%s\",\"model_version\":\"%s\",\"labels\":[\"%s\"],"
                      "\"input_type\":\"doubles\",\"container_name\":\"c\",\"model_data_path\":"
                      "\"p\",\"batch_size\":-1}";
    char body[512];
    snprintf(body, sizeof(body), fmt, "a:b", "1", "l");
    expect_error("add_model", body, "Invalid model name supplied: a:b. Contains one of: ',', ':'");
    snprintf(body, sizeof(body), fmt, "m", "1,2", "l");
    expect_error("add_model", body,
                 "Invalid model version supplied: 1,2. Contains one of: ',', ':'");
    snprintf(body, sizeof(body), fmt, "m", "1", "x:y");
    expect_error("add_model", body, "Invalid label supplied: x:y. Contains one of: ',', ':'");
    snprintf(body, sizeof(body), fmt, "m", "1.0", "l");
    expect_error("add_model", body, "model version '1.0' is not valid: it may not contain '.'");
    snprintf(body, sizeof(body), fmt, "m/x", "1", "l");
    expect_error_has("add_model", body, "model name 'm/x' is not valid");
    snprintf(body, sizeof(body), fmt, "m", "1", "l");
    char bad_type[512];
    snprintf(bad_type, sizeof(bad_type), "%s", body);
    char *t = strstr(bad_type, "doubles");
    memcpy(t, "doublez", 7);
    char want[512];
    snprintf(want, sizeof(want), "Invalid input_type 'doublez'. %s", VALID_TYPES);
    expect_error("add_model", bad_type, want);
    expect_json("get_all_models", "{\"verbose\":false}", "[]");
}

static void test_add_model_optional_fields_have_defaults_and_are_checked(void **state)
{
    (void)state;
    const char *sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"model_name\":\"m\",\"model_version\":\"1\",\"labels\":[],\"input_type\":"
             "\"strings\",\"container_name\":\"c\",\"model_data_path\":\"p\",\"batch_size\":4,"
             "\"runtime\":\"pyspark\",\"artifact_sha256\":\"%s\",\"artifact_size\":4,"
             "\"num_replicas\":3}",
             sha);
    cJSON_Delete(ok_result("add_model", body));
    cJSON *m = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}");
    assert_string_equal(cJSON_GetObjectItem(m, "runtime")->valuestring, "pyspark");
    assert_string_equal(cJSON_GetObjectItem(m, "artifact_sha256")->valuestring, sha);
    assert_int_equal(cJSON_GetObjectItem(m, "artifact_size")->valueint, 4);
    assert_int_equal(cJSON_GetObjectItem(m, "num_replicas")->valueint, 3);
    cJSON_Delete(m);

    const char *fmt = "{\"model_name\":\"m\",\"model_version\":\"2\",\"labels\":[],"
                      "\"input_type\":\"strings\",\"container_name\":\"c\",\"model_data_path\":"
                      "\"p\",\"batch_size\":-1,%s}";
    snprintf(body, sizeof(body), fmt, "\"num_replicas\":-1");
    expect_error("add_model", body, "num_replicas must be zero or positive, got -1");
    snprintf(body, sizeof(body), fmt, "\"artifact_sha256\":\"ABC\"");
    expect_error("add_model", body,
                 "artifact_sha256 must be a SHA-256 digest in 64 lowercase hex digits, got 'ABC'");
    snprintf(body, sizeof(body), fmt, "\"artifact_size\":-4");
    expect_error("add_model", body, "artifact_size must be zero or positive, got -4");
    snprintf(body, sizeof(body), fmt, "\"runtime\":\"\"");
    expect_error("add_model", body,
                 "runtime must not be empty (for example \"python-closure\")");
    snprintf(body, sizeof(body), fmt, "\"runtime\":5");
    expect_error_has("add_model", body,
                     "Type mismatch! JSON key runtime expected type String but found type Number");
    expect_json("get_all_models", "{\"verbose\":false}", "[\"m:1\"]");
}

static void test_get_all_models_lists_ids_or_clippers_objects(void **state)
{
    (void)state;
    add_model("b", "1", "ints");
    add_model("a", "1", "ints");
    add_model("a", "2", "ints");
    expect_json("get_all_models", "{\"verbose\":false}", "[\"a:1\",\"a:2\",\"b:1\"]");
    cJSON *all = ok_result("get_all_models", "{\"verbose\":true}");
    assert_int_equal(cJSON_GetArraySize(all), 3);
    cJSON *a1 = cJSON_GetArrayItem(all, 0);
    assert_string_equal(cJSON_GetObjectItem(a1, "model_name")->valuestring, "a");
    assert_string_equal(cJSON_GetObjectItem(a1, "model_version")->valuestring, "1");
    assert_string_equal(cJSON_GetObjectItem(a1, "input_type")->valuestring, "integers");
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(a1, "labels")));
    assert_string_equal(cJSON_GetObjectItem(a1, "container_name")->valuestring, "img");
    assert_string_equal(cJSON_GetObjectItem(a1, "model_data_path")->valuestring, "DEPRECATED");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a1, "is_current_version")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(all, 1), "is_current_version")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(all, 2), "is_current_version")));
    cJSON_Delete(all);
}

static void test_set_model_version_rolls_back_and_checks_links(void **state)
{
    (void)state;
    expect_error("set_model_version", "{\"model_name\":\"m\",\"model_version\":\"1\"}",
                 "Cannot set version for nonexistent model 'm'");
    add_model("m", "1", "doubles");
    add_model("m", "2", "ints");
    expect_error("set_model_version", "{\"model_name\":\"m\",\"model_version\":\"3\"}",
                 "Cannot set non-existent version '3' for model with name 'm'");
    expect_text("set_model_version", "{\"model_name\":\"m\",\"model_version\":\"1\"}",
                "Successfully set model with name 'm' to version '1'");
    cJSON *v1 = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(v1, "is_current_version")));
    cJSON_Delete(v1);
    add_app("app", "doubles");
    link_model("app", "m");
    expect_error("set_model_version", "{\"model_name\":\"m\",\"model_version\":\"2\"}",
                 "Model with name 'm' is already linked to app 'app' using input type "
                 "'doubles'. The input type you provided for a new version of the model, "
                 "'integers', is not compatible.");
    expect_error("add_model",
                 "{\"model_name\":\"m\",\"model_version\":\"3\",\"labels\":[],\"input_type\":"
                 "\"bytes\",\"container_name\":\"c\",\"model_data_path\":\"p\",\"batch_size\":-1}",
                 "Model with name 'm' is already linked to app 'app' using input type "
                 "'doubles'. The input type you provided for a new version of the model, "
                 "'bytes', is not compatible.");
}

static void test_delete_versioned_model_removes_it_its_current_mark_and_artifact(void **state)
{
    (void)state;
    expect_error("delete_versioned_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}",
                 "model with name 'm' and version '1' does not exist");
    add_model("m", "1", "doubles");
    add_model("m", "2", "doubles");
    cl_err err;
    assert_int_equal(cl_artifact_put(fx.bus, "m", "2", "abcd", 4, NULL, &err), CL_OK);
    /* Deleting a version that is not current keeps the current one. */
    expect_text("delete_versioned_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}",
                "Successfully deleted model with name 'm' and version '1'");
    cJSON *v2 = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"2\"}");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(v2, "is_current_version")));
    cJSON_Delete(v2);
    expect_text("delete_versioned_model", "{\"model_name\":\"m\",\"model_version\":\"2\"}",
                "Successfully deleted model with name 'm' and version '2'");
    expect_json("get_all_models", "{\"verbose\":false}", "[]");
    expect_error("set_model_version", "{\"model_name\":\"m\",\"model_version\":\"2\"}",
                 "Cannot set version for nonexistent model 'm'");
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(cl_artifact_get(fx.bus, "m", "2", &data, &len, NULL, &err), CL_ERR_NOT_FOUND);
    /* A re-registered version becomes current again. */
    add_model("m", "2", "doubles");
    cJSON *again = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"2\"}");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(again, "is_current_version")));
    cJSON_Delete(again);
}

static void test_set_num_replicas_stores_the_wanted_count(void **state)
{
    (void)state;
    expect_error("set_num_replicas",
                 "{\"model_name\":\"m\",\"model_version\":\"1\",\"num_replicas\":2}",
                 "model with name 'm' and version '1' does not exist");
    add_model("m", "1", "doubles");
    expect_text("set_num_replicas",
                "{\"model_name\":\"m\",\"model_version\":\"1\",\"num_replicas\":2}",
                "Successfully set the number of replicas of model 'm' version '1' to 2");
    cJSON *m = ok_result("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}");
    assert_int_equal(cJSON_GetObjectItem(m, "num_replicas")->valueint, 2);
    cJSON_Delete(m);
    expect_error("set_num_replicas",
                 "{\"model_name\":\"m\",\"model_version\":\"1\",\"num_replicas\":-1}",
                 "num_replicas must be zero or positive, got -1");
    expect_error_has("set_num_replicas",
                     "{\"model_name\":\"m\",\"model_version\":\"1\",\"num_replicas\":\"2\"}",
                     "Type mismatch! JSON key num_replicas expected type Number");
    expect_error_has("set_num_replicas", "{\"model_name\":\"m\",\"model_version\":\"1\"}",
                     "JSON object does not have required key: num_replicas");
    cJSON_Delete(ok_result("add_model",
                           "{\"model_name\":\"bare\",\"model_version\":\"1\",\"labels\":[],"
                           "\"input_type\":\"doubles\",\"container_name\":\"NO_CONTAINER\","
                           "\"model_data_path\":\"p\",\"batch_size\":-1}"));
    expect_error("set_num_replicas",
                 "{\"model_name\":\"bare\",\"model_version\":\"1\",\"num_replicas\":1}",
                 "Cannot resize the replica set for containerless model bare:1");
    expect_text("set_num_replicas",
                "{\"model_name\":\"bare\",\"model_version\":\"1\",\"num_replicas\":0}",
                "Successfully set the number of replicas of model 'bare' version '1' to 0");
}

/* ---- containers ------------------------------------------------------- */

static void heartbeat(const char *model, const char *version, uint32_t id, const char *st)
{
    cl_replica_info info = {0};
    snprintf(info.model, sizeof(info.model), "%s", model);
    snprintf(info.version, sizeof(info.version), "%s", version);
    info.replica_id = id;
    snprintf(info.state, sizeof(info.state), "%s", st);
    snprintf(info.cause, sizeof(info.cause), "%s", strcmp(st, "failed") ? "" : "boom");
    snprintf(info.host, sizeof(info.host), "h");
    info.pid = 4242;
    char *body = cl_heartbeat_encode(&info, "python-closure");
    char subject[CL_SUBJECT_MAX], rid[16];
    snprintf(rid, sizeof(rid), "%u", id);
    cl_err err;
    assert_int_equal(cl_subj_replica_hb(subject, fx.prefix, model, version, rid, &err), CL_OK);
    assert_int_equal(cl_bus_publish(fx.bus, subject, body, strlen(body)), CL_OK);
    assert_int_equal(cl_bus_flush(fx.bus, 1000), CL_OK);
    free(body);
}

static void test_containers_come_from_live_heartbeats(void **state)
{
    (void)state;
    expect_json("get_all_containers", "{\"verbose\":false}", "[]");
    add_model("m", "1", "floats");
    heartbeat("m", "1", 1, "ready");
    heartbeat("m", "1", 0, "failed");
    cJSON *list = NULL;
    for (int i = 0; i < 100; i++) {
        list = ok_result("get_all_containers", "{\"verbose\":false}");
        if (cJSON_GetArraySize(list) == 2)
            break;
        cJSON_Delete(list);
        list = NULL;
        cl_sleep_ms(20);
    }
    assert_non_null(list);
    cJSON_Delete(list);
    expect_json("get_all_containers", "{\"verbose\":false}", "[\"m:1:0\",\"m:1:1\"]");
    expect_json("get_all_containers", "{\"verbose\":true}",
                "[{\"model_id\":\"m:1\",\"model_name\":\"m\",\"model_version\":\"1\","
                "\"model_replica_id\":0,\"input_type\":\"floats\",\"state\":\"failed\","
                "\"cause\":\"boom\",\"host\":\"h\",\"pid\":4242},"
                "{\"model_id\":\"m:1\",\"model_name\":\"m\",\"model_version\":\"1\","
                "\"model_replica_id\":1,\"input_type\":\"floats\",\"state\":\"ready\","
                "\"cause\":\"\",\"host\":\"h\",\"pid\":4242}]");
    expect_json("get_container", "{\"model_name\":\"m\",\"model_version\":\"1\",\"replica_id\":1}",
                "{\"model_id\":\"m:1\",\"model_name\":\"m\",\"model_version\":\"1\","
                "\"model_replica_id\":1,\"input_type\":\"floats\",\"state\":\"ready\","
                "\"cause\":\"\",\"host\":\"h\",\"pid\":4242}");
    expect_json("get_container", "{\"model_name\":\"m\",\"model_version\":\"1\",\"replica_id\":7}",
                "{}");
    heartbeat("m", "1", 1, "stopped");
    for (int i = 0; i < 100; i++) {
        list = ok_result("get_all_containers", "{\"verbose\":false}");
        int n = cJSON_GetArraySize(list);
        cJSON_Delete(list);
        if (n == 1)
            break;
        cl_sleep_ms(20);
    }
    expect_json("get_all_containers", "{\"verbose\":false}", "[\"m:1:0\"]");
}

/* ---- service API ---------------------------------------------------- */

static void test_admin_answers_the_nats_service_api_with_its_counts(void **state)
{
    (void)state;
    expect_text("ping", "", "PONG");
    (void)error_of("nope", "{}");
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(fx.bus, "$SRV.PING.clipper-admin", "", 0, 2000, &reply), CL_OK);
    assert_non_null(strstr(cl_msg_data(reply), "clipper-admin"));
    cl_msg_free(reply);
    assert_int_equal(cl_bus_request(fx.bus, "$SRV.STATS.clipper-admin", "", 0, 2000, &reply),
                     CL_OK);
    cJSON *stats = cJSON_Parse(cl_msg_data(reply));
    cl_msg_free(reply);
    assert_non_null(stats);
    char *text = show(stats);
    /* Two requests were handled, one of them an error. */
    assert_non_null(strstr(text, "\"num_requests\":2"));
    assert_non_null(strstr(text, "\"num_errors\":1"));
    free(text);
    cJSON_Delete(stats);
}

/* ---- two admins ------------------------------------------------------- */

typedef struct {
    cl_bus *bus;
    int successes;
} racer;

static void *race_add_app(void *arg)
{
    racer *r = arg;
    cJSON *reply = call_on(r->bus, "add_app",
                           "{\"name\":\"contested\",\"input_type\":\"doubles\",\"default_output\":"
                           "\"x\",\"latency_slo_micros\":1000}");
    r->successes = cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"));
    cJSON_Delete(reply);
    return NULL;
}

static void test_two_admins_never_both_create_the_same_app(void **state)
{
    (void)state;
    fx.bus2 = connect_bus(fx.prefix);
    cl_err err;
    assert_int_equal(cl_admin_start(&fx.admin2, fx.bus2, &err), CL_OK);
    for (int round = 0; round < 3; round++) {
        racer r[8];
        pthread_t t[8];
        for (int i = 0; i < 8; i++) {
            r[i].bus = i % 2 ? fx.bus2 : fx.bus;
            r[i].successes = 0;
            pthread_create(&t[i], NULL, race_add_app, &r[i]);
        }
        int total = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(t[i], NULL);
            total += r[i].successes;
        }
        assert_int_equal(total, 1);
        expect_text("delete_app", "{\"name\":\"contested\"}",
                    "Successfully deleted application with name 'contested'");
    }
}

static void *link_unlink(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 10; i++) {
        cJSON *a = call_on(r->bus, "add_model_links",
                           "{\"app_name\":\"app\",\"model_names\":[\"m\"]}");
        cJSON *b = call_on(r->bus, "delete_model_links",
                           "{\"app_name\":\"app\",\"model_names\":[\"m\"]}");
        r->successes += cJSON_IsTrue(cJSON_GetObjectItem(a, "ok"));
        r->successes -= cJSON_IsTrue(cJSON_GetObjectItem(b, "ok"));
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
    return NULL;
}

/* Links and unlinks race through two admins; every successful link must be
 * matched by exactly one successful unlink, or an update was lost. */
static void test_concurrent_link_changes_lose_no_update(void **state)
{
    (void)state;
    fx.bus2 = connect_bus(fx.prefix);
    cl_err err;
    assert_int_equal(cl_admin_start(&fx.admin2, fx.bus2, &err), CL_OK);
    add_app("app", "doubles");
    add_model("m", "1", "doubles");
    racer r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i].bus = i % 2 ? fx.bus2 : fx.bus;
        r[i].successes = 0;
        pthread_create(&t[i], NULL, link_unlink, &r[i]);
    }
    int balance = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        balance += r[i].successes;
    }
    cJSON *links = ok_result("get_linked_models", "{\"app_name\":\"app\"}");
    assert_int_equal(cJSON_GetArraySize(links), balance);
    cJSON_Delete(links);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ping_answers_pong),
        T(test_unknown_command_lists_the_known_ones),
        T(test_malformed_json_gives_clippers_parse_error_with_the_schema),
        T(test_body_that_is_not_an_object_is_refused),
        T(test_missing_field_gives_clippers_text_and_schema),
        T(test_wrong_field_types_give_type_mismatch),
        T(test_admin_keeps_answering_after_bad_input),
        T(test_add_app_succeeds_and_a_duplicate_fails),
        T(test_add_app_with_unknown_input_type_lists_the_valid_ones),
        T(test_add_app_accepts_aliases_and_stores_the_canonical_name),
        T(test_app_names_that_cannot_be_stored_are_refused_clearly),
        T(test_add_app_with_a_non_positive_slo_is_refused),
        T(test_delete_app_succeeds_and_an_unknown_app_fails),
        T(test_get_all_applications_lists_names_or_clippers_objects),
        T(test_get_linked_models_of_an_unknown_app_fails),
        T(test_get_state_answers_the_default_output_or_says_the_app_is_unknown),
        T(test_add_model_links_checks_in_clippers_order),
        T(test_delete_model_links_removes_a_link_or_says_why_not),
        T(test_add_model_makes_it_current_and_a_duplicate_fails),
        T(test_add_model_batch_size_must_be_positive_or_minus_one),
        T(test_add_model_records_pkgs_to_install_and_versions),
        T(test_add_model_refuses_separators_and_bad_names),
        T(test_add_model_optional_fields_have_defaults_and_are_checked),
        T(test_get_all_models_lists_ids_or_clippers_objects),
        T(test_set_model_version_rolls_back_and_checks_links),
        T(test_delete_versioned_model_removes_it_its_current_mark_and_artifact),
        T(test_set_num_replicas_stores_the_wanted_count),
        T(test_containers_come_from_live_heartbeats),
        T(test_admin_answers_the_nats_service_api_with_its_counts),
        T(test_two_admins_never_both_create_the_same_app),
        T(test_concurrent_link_changes_lose_no_update),
    };
#undef T
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
