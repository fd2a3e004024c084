/* Fuzzes the cluster-state records read from the KV bucket (<p>_state)
 * by the admin (store.c), the frontend (fe_query.c, on a view miss), the
 * views of the router, the manager and the frontend (view.c) and the
 * replica (replica.c): cl_app_from_json, cl_model_from_json (with its
 * resources, actors/common/resources.c) and cl_current_from_json
 * (actors/common/state.c). Every input is decoded as each of the three.
 *
 * Oracles: a record that decodes is copied (cl_app_copy, cl_model_copy)
 * and encodes (cl_*_to_json) to a record that decodes to the same values
 * and encodes to the same text again; its names make KV keys or are
 * refused, never overflow one. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cl_json.h"
#include "cl_state.h"
#include "fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

static bool strv_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool app_equal(const cl_app *a, const cl_app *b)
{
    return strcmp(a->name, b->name) == 0 && a->input_type == b->input_type &&
           strcmp(a->default_output, b->default_output) == 0 &&
           a->latency_slo_micros == b->latency_slo_micros &&
           strv_equal(a->linked_models, a->n_linked, b->linked_models, b->n_linked);
}

static bool model_equal(const cl_model *a, const cl_model *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->version, b->version) == 0 &&
           a->input_type == b->input_type &&
           strv_equal(a->labels, a->n_labels, b->labels, b->n_labels) &&
           strcmp(a->container_name, b->container_name) == 0 &&
           strcmp(a->model_data_path, b->model_data_path) == 0 &&
           a->batch_size == b->batch_size && a->num_replicas == b->num_replicas &&
           strcmp(a->runtime, b->runtime) == 0 &&
           strcmp(a->artifact_sha256, b->artifact_sha256) == 0 &&
           a->artifact_size == b->artifact_size &&
           strv_equal(a->pkgs_to_install, a->n_pkgs, b->pkgs_to_install, b->n_pkgs) &&
           strcmp(a->python_version, b->python_version) == 0 &&
           strcmp(a->cloudpickle_version, b->cloudpickle_version) == 0 &&
           strcmp(a->resources, b->resources) == 0;
}

static char *print(cJSON *o)
{
    fz_check(o != NULL, "the record does not encode (out of memory?)");
    char *text = cl_json_print(o);
    fz_check(text != NULL, "out of memory");
    cJSON_Delete(o);
    return text;
}

static void keys(const char *name, const char *version)
{
    char key[CL_KEY_MAX];
    cl_err err;
    if (cl_key_app(key, name, &err) == CL_OK)
        fz_check(strlen(key) < CL_KEY_MAX, "key too long");
    if (cl_key_current(key, name, &err) == CL_OK)
        fz_check(strlen(key) < CL_KEY_MAX, "key too long");
    if (version != NULL && cl_key_model(key, name, version, &err) == CL_OK)
        fz_check(strlen(key) < CL_KEY_MAX, "key too long");
}

static void app(const char *json, size_t len)
{
    cl_app a, b, c;
    cl_err err;
    if (cl_app_from_json(&a, json, len, &err) != CL_OK)
        return;
    keys(a.name, NULL);
    for (size_t i = 0; i < a.n_linked; i++)
        keys(a.linked_models[i], NULL);
    fz_check(cl_app_copy(&c, &a) == CL_OK && app_equal(&a, &c), "the app's copy differs");
    char *text = print(cl_app_to_json(&a));
    fz_check(cl_app_from_json(&b, text, strlen(text), &err) == CL_OK,
             "the encoded app does not decode: %s\n%s", err.msg, text);
    fz_check(app_equal(&a, &b), "the app changed in a round trip: %s", text);
    char *again = print(cl_app_to_json(&b));
    fz_check(strcmp(text, again) == 0, "the app encodes as %s, then as %s", text, again);
    free(again);
    free(text);
    cl_app_deinit(&a);
    cl_app_deinit(&b);
    cl_app_deinit(&c);
}

static void model(const char *json, size_t len)
{
    cl_model a, b, c;
    cl_err err;
    if (cl_model_from_json(&a, json, len, &err) != CL_OK)
        return;
    keys(a.name, a.version);
    fz_check(cl_model_copy(&c, &a) == CL_OK && model_equal(&a, &c), "the model's copy differs");
    char *text = print(cl_model_to_json(&a));
    fz_check(cl_model_from_json(&b, text, strlen(text), &err) == CL_OK,
             "the encoded model does not decode: %s\n%s", err.msg, text);
    fz_check(model_equal(&a, &b), "the model changed in a round trip: %s", text);
    char *again = print(cl_model_to_json(&b));
    fz_check(strcmp(text, again) == 0, "the model encodes as %s, then as %s", text, again);
    free(again);
    free(text);
    cl_model_deinit(&a);
    cl_model_deinit(&b);
    cl_model_deinit(&c);
}

static void current(const char *json, size_t len)
{
    cl_err err;
    char *v = cl_current_from_json(json, len, &err);
    if (v == NULL)
        return;
    char *text = cl_current_to_json(v);
    fz_check(text != NULL, "out of memory");
    char *back = cl_current_from_json(text, strlen(text), &err);
    fz_check(back != NULL && strcmp(back, v) == 0, "the current version changed: %s", text);
    free(back);
    free(text);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    app(json, size);
    model(json, size);
    current(json, size);
    return 0;
}
