/* Helpers the container-manager tests share (local and docker backends):
 * a model version in the state bucket, the manager's status over the bus.
 * They fail the running cmocka test on any error. */
#ifndef MANAGER_TEST_UTIL_H
#define MANAGER_TEST_UTIL_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_bus.h"
#include "cl_kv.h"

/* Writes model name:version (a python closure of doubles) wanting replicas. */
void mt_put_model(cl_kv *kv, const char *name, const char *version, int64_t replicas);
/* The same with the record's runtime and container_name. */
void mt_put_model_as(cl_kv *kv, const char *name, const char *version, int64_t replicas,
                     const char *runtime, const char *container_name);
/* The same with the record's resources (JSON text, as cl_resources.h). */
void mt_put_model_res(cl_kv *kv, const char *name, const char *version, int64_t replicas,
                      const char *resources);
/* Asks <prefix>.cm.<command> and returns the parsed reply (cJSON_Delete it). */
cJSON *mt_cm_request(cl_bus *bus, const char *prefix, const char *command);
/* The status entry of model #n in a cm.status list, or NULL (borrowed). */
const cJSON *mt_status_entry(const cJSON *list, const char *model, int n);

#endif
