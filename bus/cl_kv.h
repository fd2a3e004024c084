/* Cluster state in a file-backed JetStream KV bucket ("<prefix>_state").
 *
 * Keys (values are JSON objects):
 *   app.<name>                applications (with their linked_models)
 *   model.<name>.<version>    registered model versions (with num_replicas)
 *   current.<name>            {"model_version": "..."}: the current version
 *
 * Writers use create (fails if present) and update (compare-and-set on the
 * revision) so concurrent admins cannot lose each other's changes. Readers
 * watch: cl_kv_watch calls back for every existing value, then once with
 * key NULL ("initial state loaded"), then for every change, from a thread
 * of its own. */
#ifndef CL_KV_H
#define CL_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_bus.h"
#include "cl_status.h"

typedef struct cl_kv cl_kv;
/* The watcher type is cl_kv_watcher: a type cannot share the name of the
 * function cl_kv_watch. */
typedef struct cl_kv_watch cl_kv_watcher;

/* Opens the cluster's bucket, creating it (file storage) if needed. */
cl_status cl_kv_open(cl_kv **out, cl_bus *bus, cl_err *err) CL_MUST_USE;
/* The same, for the state's owner (the admin): with an identity, only it
 * may create the bucket (bus/roles.c), so cl_kv_open waits up to 60 s for
 * it there instead of creating it; without one, both create it. */
cl_status cl_kv_open_or_create(cl_kv **out, cl_bus *bus, cl_err *err) CL_MUST_USE;
/* The state bucket of the cluster with this prefix: "<prefix>_state", with
 * every byte outside [A-Za-z0-9_-] made '_' (JetStream's rule). */
void cl_kv_bucket_name(const char *prefix, char out[128]);
void cl_kv_free(cl_kv *kv);

/* *value is malloc'd and NUL-terminated (free it). CL_ERR_NOT_FOUND when the
 * key is absent or deleted. rev may be NULL. */
cl_status cl_kv_get(cl_kv *kv, const char *key, char **value, size_t *len, uint64_t *rev,
                    cl_err *err) CL_MUST_USE;
/* CL_ERR_EXISTS when the key holds a value. rev may be NULL. */
cl_status cl_kv_create(cl_kv *kv, const char *key, const void *value, size_t len, uint64_t *rev,
                       cl_err *err) CL_MUST_USE;
cl_status cl_kv_put(cl_kv *kv, const char *key, const void *value, size_t len, uint64_t *rev,
                    cl_err *err) CL_MUST_USE;
/* CL_ERR_CONFLICT when the key's revision is no longer last_rev. */
cl_status cl_kv_update(cl_kv *kv, const char *key, const void *value, size_t len,
                       uint64_t last_rev, uint64_t *rev, cl_err *err) CL_MUST_USE;
/* Deleting an absent key is CL_OK. */
cl_status cl_kv_delete(cl_kv *kv, const char *key, cl_err *err) CL_MUST_USE;
/* Keys currently holding values that start with prefix (NULL: all).
 * *keys is a malloc'd array of malloc'd strings; free with cl_kv_keys_free. */
cl_status cl_kv_keys(cl_kv *kv, const char *prefix, char ***keys, size_t *count, cl_err *err)
    CL_MUST_USE;
void cl_kv_keys_free(char **keys, size_t count);

/* A key's current value, as cl_kv_values gives it (borrowed for the call). */
typedef void (*cl_kv_value_cb)(void *closure, const char *key, const char *value, size_t len,
                               uint64_t rev);
/* The current value of every key matching pattern (NATS wildcards, e.g.
 * "app.>"), read in one pass: one watcher to which the server pushes them
 * all, instead of a request per key. cb runs on the calling thread; a
 * failure part way returns an error after some calls. */
cl_status cl_kv_values(cl_kv *kv, const char *pattern, cl_kv_value_cb cb, void *closure,
                       cl_err *err) CL_MUST_USE;

/* key is NULL exactly once, after the initial values (even when the bucket
 * is empty). value is NULL and len 0 when deleted. Borrowed for the call. */
typedef void (*cl_kv_watch_cb)(void *closure, const char *key, const char *value, size_t len,
                               uint64_t rev, bool deleted);
/* Watches keys matching pattern (NATS wildcards, e.g. "app.*" or ">").
 * Runs cb from its own thread until cl_kv_watch_free. */
cl_status cl_kv_watch(cl_kv_watcher **out, cl_kv *kv, const char *pattern, cl_kv_watch_cb cb,
                      void *closure, cl_err *err) CL_MUST_USE;
/* Stops the watcher and joins its thread; no callback runs after. */
void cl_kv_watch_free(cl_kv_watcher *w);

#endif
