/* The cluster state schema (cl_state.h): KV keys for apps, model versions
 * and current versions, and the strict JSON encoding of their values.
 * This file owns the stored format; it does no I/O. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_json.h"
#include "cl_resources.h"
#include "cl_state.h"
#include "cl_subject.h"
#include "cl_wire.h"

/* A name must be a subject token (it appears in subjects) and also a valid
 * JetStream KV key element, which allows only [A-Za-z0-9_=-] besides the
 * separators. */
static bool name_valid(const char *name, const char *what, cl_err *err)
{
    if (!cl_token_valid(name, what, err))
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && c != '-' && c != '_' && c != '=') {
            cl_err_set(err, CL_ERR_INVALID,
                       "%s '%s' is not valid: it may contain only letters, digits, '-', '_' "
                       "and '=' (found '%c')",
                       what, name, c);
            return false;
        }
    }
    return true;
}

static CL_MUST_USE cl_status key_print(char out[CL_KEY_MAX], cl_err *err, const char *fmt,
                                       const char *a, const char *b)
{
    int n = b ? snprintf(out, CL_KEY_MAX, fmt, a, b) : snprintf(out, CL_KEY_MAX, fmt, a);
    if (n < 0 || n >= CL_KEY_MAX)
        return cl_err_set(err, CL_ERR_TOO_LARGE, "key for '%s' is too long", a);
    return CL_OK;
}

cl_status cl_key_app(char out[CL_KEY_MAX], const char *app, cl_err *err)
{
    if (!name_valid(app, "application name", err))
        return CL_ERR_INVALID;
    return key_print(out, err, "app.%s", app, NULL);
}

cl_status cl_key_model(char out[CL_KEY_MAX], const char *model, const char *version, cl_err *err)
{
    if (!name_valid(model, "model name", err) || !name_valid(version, "model version", err))
        return CL_ERR_INVALID;
    return key_print(out, err, "model.%s.%s", model, version);
}

cl_status cl_key_current(char out[CL_KEY_MAX], const char *model, cl_err *err)
{
    if (!name_valid(model, "model name", err))
        return CL_ERR_INVALID;
    return key_print(out, err, "current.%s", model, NULL);
}

/* ---- helpers ---------------------------------------------------------- */

static char **strv_from_array(const cJSON *arr, size_t *n)
{
    int count = cJSON_GetArraySize(arr);
    *n = 0;
    char **v = calloc(count > 0 ? (size_t)count : 1, sizeof(char *));
    if (v == NULL)
        return NULL;
    const cJSON *el;
    cJSON_ArrayForEach(el, arr)
    {
        v[*n] = strdup(el->valuestring);
        if (v[*n] == NULL) {
            for (size_t i = 0; i < *n; i++)
                free(v[i]);
            free(v);
            *n = 0;
            return NULL;
        }
        (*n)++;
    }
    return v;
}

static void strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char **strv_copy(char *const *src, size_t n)
{
    char **v = calloc(n > 0 ? n : 1, sizeof(char *));
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(src[i]);
        if (v[i] == NULL) {
            strv_free(v, i);
            return NULL;
        }
    }
    return v;
}

static cJSON *strv_to_json(char *const *v, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (s == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, s);
    }
    return arr;
}

static CL_MUST_USE cl_status get_dup(const cJSON *obj, const char *field, char **out, cl_err *err)
{
    const char *s;
    cl_status st = cl_json_get_string(obj, field, &s, err);
    if (st != CL_OK)
        return st;
    *out = strdup(s);
    return *out ? CL_OK : cl_err_set(err, CL_ERR_NOMEM, "out of memory");
}

static CL_MUST_USE cl_status get_input_type(const cJSON *obj, int *out, cl_err *err)
{
    const char *s;
    cl_status st = cl_json_get_string(obj, "input_type", &s, err);
    if (st != CL_OK)
        return st;
    int t = cl_input_type_parse(s);
    if (t < 0)
        return cl_err_set(err, CL_ERR_INVALID,
                          "field 'input_type' must be one of bytes, integers, floats, doubles, "
                          "strings, got '%s'",
                          s);
    *out = t;
    return CL_OK;
}

static CL_MUST_USE cl_status get_strv(const cJSON *obj, const char *field, char ***out, size_t *n,
                                      cl_err *err)
{
    const cJSON *arr;
    cl_status st = cl_json_get_string_array(obj, field, &arr, err);
    if (st != CL_OK)
        return st;
    *out = strv_from_array(arr, n);
    return *out ? CL_OK : cl_err_set(err, CL_ERR_NOMEM, "out of memory");
}

/* Optional fields: absent is an empty list / "" (records written before
 * the field existed); present with the wrong type is an error naming it. */
static CL_MUST_USE cl_status get_opt_strv(const cJSON *obj, const char *field, char ***out,
                                          size_t *n, cl_err *err)
{
    *n = 0;
    if (cJSON_GetObjectItemCaseSensitive(obj, field) != NULL)
        return get_strv(obj, field, out, n, err);
    *out = calloc(1, sizeof(char *));
    return *out ? CL_OK : cl_err_set(err, CL_ERR_NOMEM, "out of memory");
}

static CL_MUST_USE cl_status get_opt_dup(const cJSON *obj, const char *field, char **out,
                                         cl_err *err)
{
    const char *s = "";
    bool present = false;
    cl_status st = cl_json_opt_string(obj, field, &s, &present, err);
    if (st != CL_OK)
        return st;
    *out = strdup(present ? s : "");
    return *out ? CL_OK : cl_err_set(err, CL_ERR_NOMEM, "out of memory");
}

/* The optional resources object, checked and kept as compact JSON text
 * ("" when absent). */
static CL_MUST_USE cl_status get_opt_resources(const cJSON *obj, char **out, cl_err *err)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(obj, "resources");
    cJSON *norm = NULL;
    if (r == NULL || cJSON_IsNull(r)) {
        *out = strdup("");
    } else {
        cl_status st = cl_resources_normalise(r, &norm, err);
        if (st != CL_OK)
            return st;
        *out = cJSON_PrintUnformatted(norm);
        cJSON_Delete(norm);
    }
    return *out ? CL_OK : cl_err_set(err, CL_ERR_NOMEM, "out of memory");
}

static CL_MUST_USE cl_status parse_object(cJSON **root, const char *json, size_t len,
                                          const char *what, cl_err *err)
{
    cl_status st = cl_json_parse_object(root, json, len, err);
    if (st != CL_OK)
        cl_err_prefix(err, "%s", what);
    return st;
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    cJSON_AddStringToObject(o, k, v ? v : "");
}

static void add_int(cJSON *o, const char *k, int64_t v)
{
    /* Exactly, however large (cl_json_add_int). */
    (void)cl_json_add_int(o, k, v);
}

/* ---- applications ----------------------------------------------------- */

cl_status cl_app_from_json(cl_app *app, const char *json, size_t len, cl_err *err)
{
    memset(app, 0, sizeof(*app));
    cJSON *root = NULL;
    cl_status st = parse_object(&root, json, len, "application", err);
    if (st != CL_OK)
        return st;
    if ((st = get_dup(root, "name", &app->name, err)) != CL_OK ||
        (st = get_input_type(root, &app->input_type, err)) != CL_OK ||
        (st = get_dup(root, "default_output", &app->default_output, err)) != CL_OK ||
        (st = cl_json_get_int(root, "latency_slo_micros", &app->latency_slo_micros, err)) !=
            CL_OK ||
        (st = get_strv(root, "linked_models", &app->linked_models, &app->n_linked, err)) !=
            CL_OK) {
        cl_err_prefix(err, "application");
        cl_app_deinit(app);
    }
    cJSON_Delete(root);
    return st;
}

void cl_app_deinit(cl_app *app)
{
    if (app == NULL)
        return;
    free(app->name);
    free(app->default_output);
    strv_free(app->linked_models, app->n_linked);
    memset(app, 0, sizeof(*app));
}

cl_status cl_app_copy(cl_app *dst, const cl_app *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->input_type = src->input_type;
    dst->latency_slo_micros = src->latency_slo_micros;
    dst->name = strdup(src->name ? src->name : "");
    dst->default_output = strdup(src->default_output ? src->default_output : "");
    dst->linked_models = strv_copy(src->linked_models, src->n_linked);
    dst->n_linked = src->n_linked;
    if (dst->name == NULL || dst->default_output == NULL || dst->linked_models == NULL) {
        if (dst->linked_models == NULL)
            dst->n_linked = 0;
        cl_app_deinit(dst);
        return CL_ERR_NOMEM;
    }
    return CL_OK;
}

cJSON *cl_app_to_json(const cl_app *app)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    add_str(o, "name", app->name);
    add_str(o, "input_type", cl_input_type_name((cl_input_type)app->input_type));
    add_str(o, "default_output", app->default_output);
    add_int(o, "latency_slo_micros", app->latency_slo_micros);
    cJSON *links = strv_to_json(app->linked_models, app->n_linked);
    if (links == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "linked_models", links);
    return o;
}

/* ---- model versions --------------------------------------------------- */

cl_status cl_model_from_json(cl_model *m, const char *json, size_t len, cl_err *err)
{
    memset(m, 0, sizeof(*m));
    cJSON *root = NULL;
    cl_status st = parse_object(&root, json, len, "model", err);
    if (st != CL_OK)
        return st;
    if ((st = get_dup(root, "model_name", &m->name, err)) != CL_OK ||
        (st = get_dup(root, "model_version", &m->version, err)) != CL_OK ||
        (st = get_input_type(root, &m->input_type, err)) != CL_OK ||
        (st = get_strv(root, "labels", &m->labels, &m->n_labels, err)) != CL_OK ||
        (st = get_dup(root, "container_name", &m->container_name, err)) != CL_OK ||
        (st = get_dup(root, "model_data_path", &m->model_data_path, err)) != CL_OK ||
        (st = cl_json_get_int(root, "batch_size", &m->batch_size, err)) != CL_OK ||
        (st = cl_json_get_int(root, "num_replicas", &m->num_replicas, err)) != CL_OK ||
        (st = get_dup(root, "runtime", &m->runtime, err)) != CL_OK ||
        (st = get_dup(root, "artifact_sha256", &m->artifact_sha256, err)) != CL_OK ||
        (st = cl_json_get_int(root, "artifact_size", &m->artifact_size, err)) != CL_OK ||
        (st = get_opt_strv(root, "pkgs_to_install", &m->pkgs_to_install, &m->n_pkgs, err)) !=
            CL_OK ||
        (st = get_opt_dup(root, "python_version", &m->python_version, err)) != CL_OK ||
        (st = get_opt_dup(root, "cloudpickle_version", &m->cloudpickle_version, err)) != CL_OK ||
        (st = get_opt_resources(root, &m->resources, err)) != CL_OK) {
        cl_err_prefix(err, "model");
        cl_model_deinit(m);
    }
    cJSON_Delete(root);
    return st;
}

void cl_model_deinit(cl_model *m)
{
    if (m == NULL)
        return;
    free(m->name);
    free(m->version);
    strv_free(m->labels, m->n_labels);
    free(m->container_name);
    free(m->model_data_path);
    free(m->runtime);
    free(m->artifact_sha256);
    strv_free(m->pkgs_to_install, m->n_pkgs);
    free(m->python_version);
    free(m->cloudpickle_version);
    free(m->resources);
    memset(m, 0, sizeof(*m));
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

cl_status cl_model_copy(cl_model *dst, const cl_model *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->input_type = src->input_type;
    dst->batch_size = src->batch_size;
    dst->num_replicas = src->num_replicas;
    dst->artifact_size = src->artifact_size;
    dst->name = dup_or_empty(src->name);
    dst->version = dup_or_empty(src->version);
    dst->labels = strv_copy(src->labels, src->n_labels);
    dst->n_labels = dst->labels ? src->n_labels : 0;
    dst->container_name = dup_or_empty(src->container_name);
    dst->model_data_path = dup_or_empty(src->model_data_path);
    dst->runtime = dup_or_empty(src->runtime);
    dst->artifact_sha256 = dup_or_empty(src->artifact_sha256);
    dst->pkgs_to_install = strv_copy(src->pkgs_to_install, src->n_pkgs);
    dst->n_pkgs = dst->pkgs_to_install ? src->n_pkgs : 0;
    dst->python_version = dup_or_empty(src->python_version);
    dst->cloudpickle_version = dup_or_empty(src->cloudpickle_version);
    dst->resources = dup_or_empty(src->resources);
    if (!dst->name || !dst->version || !dst->labels || !dst->container_name ||
        !dst->model_data_path || !dst->runtime || !dst->artifact_sha256 ||
        !dst->pkgs_to_install || !dst->python_version || !dst->cloudpickle_version ||
        !dst->resources) {
        cl_model_deinit(dst);
        return CL_ERR_NOMEM;
    }
    return CL_OK;
}

cJSON *cl_model_to_json(const cl_model *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    add_str(o, "model_name", m->name);
    add_str(o, "model_version", m->version);
    add_str(o, "input_type", cl_input_type_name((cl_input_type)m->input_type));
    cJSON *labels = strv_to_json(m->labels, m->n_labels);
    if (labels == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "labels", labels);
    add_str(o, "container_name", m->container_name);
    add_str(o, "model_data_path", m->model_data_path);
    add_int(o, "batch_size", m->batch_size);
    add_int(o, "num_replicas", m->num_replicas);
    add_str(o, "runtime", m->runtime);
    add_str(o, "artifact_sha256", m->artifact_sha256);
    add_int(o, "artifact_size", m->artifact_size);
    /* Written only when set, so records without them stay as they were. */
    if (m->n_pkgs > 0) {
        cJSON *pkgs = strv_to_json(m->pkgs_to_install, m->n_pkgs);
        if (pkgs == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, "pkgs_to_install", pkgs);
    }
    if (m->python_version && m->python_version[0])
        add_str(o, "python_version", m->python_version);
    if (m->cloudpickle_version && m->cloudpickle_version[0])
        add_str(o, "cloudpickle_version", m->cloudpickle_version);
    if (m->resources && m->resources[0]) {
        cJSON *r = cJSON_Parse(m->resources);
        if (r == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, "resources", r);
    }
    return o;
}

/* ---- current versions ------------------------------------------------- */

char *cl_current_to_json(const char *version)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    add_str(o, "model_version", version);
    char *s = cl_json_print(o);
    cJSON_Delete(o);
    return s;
}

char *cl_current_from_json(const char *json, size_t len, cl_err *err)
{
    cJSON *root = NULL;
    if (parse_object(&root, json, len, "current version", err) != CL_OK)
        return NULL;
    char *v = NULL;
    if (get_dup(root, "model_version", &v, err) != CL_OK)
        cl_err_prefix(err, "current version");
    cJSON_Delete(root);
    return v;
}
