/* The cluster state schema: applications and model versions as stored in
 * the KV bucket (see bus/cl_kv.h for the keys). One place encodes and
 * decodes them; the admin actor is the only writer.
 *
 *   app.<name>             {"name","input_type","default_output",
 *                           "latency_slo_micros","linked_models":[..]}
 *   model.<name>.<version> {"model_name","model_version","input_type",
 *                           "labels":[..],"container_name","model_data_path",
 *                           "batch_size","num_replicas","runtime",
 *                           "artifact_sha256","artifact_size",
 *                           optional: "pkgs_to_install":[..],
 *                           "python_version","cloudpickle_version",
 *                           "resources":{"requests":{..},"limits":{..}}}
 *   current.<name>         {"model_version": ".."}
 */
#ifndef CL_STATE_H
#define CL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_status.h"

#define CL_KEY_MAX 400

typedef struct {
    char *name;
    int input_type; /* cl_input_type */
    char *default_output;
    int64_t latency_slo_micros;
    char **linked_models;
    size_t n_linked;
} cl_app;

typedef struct {
    char *name;
    char *version;
    int input_type; /* cl_input_type */
    char **labels;
    size_t n_labels;
    char *container_name;  /* image, or "NO_CONTAINER" */
    char *model_data_path;
    int64_t batch_size;    /* -1: adaptive */
    int64_t num_replicas;  /* wanted replica count */
    char *runtime;         /* "python-closure" (default), "pyspark", ... */
    char *artifact_sha256; /* "" when the model has no artifact */
    int64_t artifact_size;
    /* Optional (absent in records written before they existed; encoded only
     * when set): pip requirement specs the replica installs before loading,
     * and the versions of Python ("3.11.7") and cloudpickle ("2.1.0") the
     * artifact was pickled with, "" when unknown. */
    char **pkgs_to_install;
    size_t n_pkgs;
    char *python_version;
    char *cloudpickle_version;
    /* What each replica asks for and may use (cl_resources.h), compact
     * JSON text; "" when not given. */
    char *resources;
} cl_model;

/* Keys. Return CL_ERR_INVALID (with err) when a name is not a valid token. */
cl_status cl_key_app(char out[CL_KEY_MAX], const char *app, cl_err *err) CL_MUST_USE;
cl_status cl_key_model(char out[CL_KEY_MAX], const char *model, const char *version, cl_err *err)
    CL_MUST_USE;
cl_status cl_key_current(char out[CL_KEY_MAX], const char *model, cl_err *err) CL_MUST_USE;

/* Decoding is strict: a missing or mistyped field is an error naming it.
 * On success the struct owns its strings (free with *_deinit). */
cl_status cl_app_from_json(cl_app *app, const char *json, size_t len, cl_err *err) CL_MUST_USE;
cl_status cl_model_from_json(cl_model *model, const char *json, size_t len, cl_err *err)
    CL_MUST_USE;
void cl_app_deinit(cl_app *app);
void cl_model_deinit(cl_model *model);
cl_status cl_app_copy(cl_app *dst, const cl_app *src) CL_MUST_USE;
cl_status cl_model_copy(cl_model *dst, const cl_model *src) CL_MUST_USE;

/* Encoding to the stored JSON (and, for the admin replies, Clipper's
 * shapes). Caller owns the returned cJSON / string. */
cJSON *cl_app_to_json(const cl_app *app);
cJSON *cl_model_to_json(const cl_model *model);
char *cl_current_to_json(const char *version);
/* Returns the version stored in a current.<name> value (malloc'd) or NULL. */
char *cl_current_from_json(const char *json, size_t len, cl_err *err);

#endif
