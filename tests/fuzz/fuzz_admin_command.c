/* Fuzzes the admin actor's commands (<p>.admin.<command>, and the
 * management REST, which forwards bodies unchanged) through their real
 * dispatcher, cl__admin_dispatch (containers.c): the body readers of
 * request.c and every command of apps.c, models.c and containers.c, on a
 * cluster state held by an in-memory stand-in for the KV bucket and a
 * live-replica table fed with heartbeats (fuzz_replicas.c).
 *
 * Input: one command per line, "<command> <body>" (the body is the rest
 * of the line), run in order on the same state, which starts as a small
 * cluster (two apps, three model versions, a current version, two
 * replicas) for every input. Each reply is made into the admin's envelope
 * as admin.c does, with its retries on a lost compare-and-set.
 *
 * The stand-in (cl_kv_get/create/update/delete/keys, cl_artifact_delete)
 * replaces bus/kv.c and bus/artifact.c in this program. Oracles: a reply
 * holds exactly one of a result and an error; the admin uses only keys
 * JetStream takes ([-/_=.A-Za-z0-9], no leading, trailing or double '.'),
 * and writes only records the actors can read back (cl_app_from_json,
 * cl_model_from_json, cl_current_from_json). */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "admin_internal.h"
#include "cl_artifact.h"
#include "cl_json.h"
#include "cl_kv.h"
#include "cl_state.h"
#include "fuzz_common.h"
#include "fuzz_replicas.h"

/* ---- the KV bucket stand-in ------------------------------------------- */

typedef struct {
    char *key;
    char *value;
    uint64_t rev;
} entry;

static struct {
    entry *v;
    size_t n, cap;
    uint64_t rev;
} store;

static bool key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || key[0] == '.' || key[n - 1] == '.' || strstr(key, "..") != NULL)
        return false;
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("-/_=.", *p) == NULL)
            return false;
    return true;
}

static entry *find(const char *key)
{
    fz_check(key_ok(key), "the admin used the key '%s', which JetStream refuses", key);
    for (size_t i = 0; i < store.n; i++)
        if (strcmp(store.v[i].key, key) == 0)
            return &store.v[i];
    return NULL;
}

/* What the admin writes, the other actors must be able to read. */
static void check_record(const char *key, const char *value, size_t len)
{
    cl_err err;
    if (strncmp(key, "app.", 4) == 0) {
        cl_app app;
        fz_check(cl_app_from_json(&app, value, len, &err) == CL_OK,
                 "the admin wrote %s = %s, which does not decode: %s", key, value, err.msg);
        cl_app_deinit(&app);
    } else if (strncmp(key, "model.", 6) == 0) {
        cl_model m;
        fz_check(cl_model_from_json(&m, value, len, &err) == CL_OK,
                 "the admin wrote %s = %s, which does not decode: %s", key, value, err.msg);
        cl_model_deinit(&m);
    } else if (strncmp(key, "current.", 8) == 0) {
        char *v = cl_current_from_json(value, len, &err);
        fz_check(v != NULL, "the admin wrote %s = %s, which does not decode: %s", key, value,
                 err.msg);
        free(v);
    } else {
        fz_check(false, "the admin wrote the key '%s', which no actor reads", key);
    }
}

static void put(const char *key, const void *value, size_t len)
{
    entry *e = find(key);
    if (e == NULL) {
        if (store.n == store.cap) {
            store.cap = store.cap ? store.cap * 2 : 16;
            store.v = realloc(store.v, store.cap * sizeof(*store.v));
            fz_check(store.v != NULL, "out of memory");
        }
        e = &store.v[store.n++];
        e->key = fz_strndup(key, strlen(key));
    } else {
        free(e->value);
    }
    e->value = fz_strndup(value, len);
    e->rev = ++store.rev;
}

static void store_reset(void)
{
    for (size_t i = 0; i < store.n; i++) {
        free(store.v[i].key);
        free(store.v[i].value);
    }
    free(store.v);
    memset(&store, 0, sizeof(store));
}

cl_status cl_kv_get(cl_kv *kv, const char *key, char **value, size_t *len, uint64_t *rev,
                    cl_err *err)
{
    (void)kv;
    entry *e = find(key);
    if (e == NULL)
        return cl_err_set(err, CL_ERR_NOT_FOUND, "no key %s", key);
    *value = fz_strndup(e->value, strlen(e->value));
    if (len != NULL)
        *len = strlen(e->value);
    if (rev != NULL)
        *rev = e->rev;
    return CL_OK;
}

cl_status cl_kv_create(cl_kv *kv, const char *key, const void *value, size_t len, uint64_t *rev,
                       cl_err *err)
{
    (void)kv;
    if (find(key) != NULL)
        return cl_err_set(err, CL_ERR_EXISTS, "key %s exists", key);
    check_record(key, value, len);
    put(key, value, len);
    if (rev != NULL)
        *rev = store.rev;
    return CL_OK;
}

cl_status cl_kv_update(cl_kv *kv, const char *key, const void *value, size_t len,
                       uint64_t last_rev, uint64_t *rev, cl_err *err)
{
    (void)kv;
    entry *e = find(key);
    if (e == NULL || e->rev != last_rev)
        return cl_err_set(err, CL_ERR_CONFLICT, "key %s changed", key);
    check_record(key, value, len);
    put(key, value, len);
    if (rev != NULL)
        *rev = store.rev;
    return CL_OK;
}

cl_status cl_kv_delete(cl_kv *kv, const char *key, cl_err *err)
{
    (void)kv;
    (void)err;
    entry *e = find(key);
    if (e != NULL) {
        free(e->key);
        free(e->value);
        *e = store.v[--store.n];
    }
    return CL_OK;
}

cl_status cl_kv_keys(cl_kv *kv, const char *prefix, char ***keys, size_t *count, cl_err *err)
{
    (void)kv;
    (void)err;
    char **out = calloc(store.n ? store.n : 1, sizeof(char *));
    fz_check(out != NULL, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < store.n; i++)
        if (prefix == NULL || strncmp(store.v[i].key, prefix, strlen(prefix)) == 0)
            out[n++] = fz_strndup(store.v[i].key, strlen(store.v[i].key));
    *keys = out;
    *count = n;
    return CL_OK;
}

/* The admin asks for "<prefix>>": every key under prefix, with its value. */
cl_status cl_kv_values(cl_kv *kv, const char *pattern, cl_kv_value_cb cb, void *closure,
                       cl_err *err)
{
    (void)kv;
    (void)err;
    size_t plen = strlen(pattern);
    fz_check(plen > 0 && pattern[plen - 1] == '>', "the admin reads a prefix");
    plen--;
    for (size_t i = 0; i < store.n; i++)
        if (strncmp(store.v[i].key, pattern, plen) == 0 && strlen(store.v[i].key) > plen)
            cb(closure, store.v[i].key, store.v[i].value, strlen(store.v[i].value),
               store.v[i].rev);
    return CL_OK;
}

void cl_kv_keys_free(char **keys, size_t count)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(keys[i]);
    free(keys);
}

cl_status cl_artifact_delete(cl_bus *bus, const char *model, const char *version, cl_err *err)
{
    (void)bus;
    (void)model;
    (void)version;
    (void)err;
    return CL_OK;
}

/* ---- the cluster every input starts from ------------------------------ */

static const char *const initial[][2] = {
    {"app.hello", "{\"name\":\"hello\",\"input_type\":\"doubles\",\"default_output\":\"-1.0\","
                  "\"latency_slo_micros\":100000,\"linked_models\":[\"doubles\"]}"},
    {"app.words", "{\"name\":\"words\",\"input_type\":\"strings\",\"default_output\":\"\","
                  "\"latency_slo_micros\":20000,\"linked_models\":[]}"},
    {"model.doubles.1",
     "{\"model_name\":\"doubles\",\"model_version\":\"1\",\"input_type\":\"doubles\","
     "\"labels\":[\"a\"],\"container_name\":\"NO_CONTAINER\",\"model_data_path\":\"\","
     "\"batch_size\":-1,\"num_replicas\":1,\"runtime\":\"python-closure\","
     "\"artifact_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
     "\"artifact_size\":0}"},
    {"model.doubles.2",
     "{\"model_name\":\"doubles\",\"model_version\":\"2\",\"input_type\":\"doubles\","
     "\"labels\":[],\"container_name\":\"img:2\",\"model_data_path\":\"/m\","
     "\"batch_size\":8,\"num_replicas\":2,\"runtime\":\"python-closure\","
     "\"artifact_sha256\":\"\",\"artifact_size\":0,\"pkgs_to_install\":[\"numpy\"],"
     "\"resources\":{\"limits\":{\"cpu\":\"2\",\"memory\":\"1Gi\"}}}"},
    {"model.words.1",
     "{\"model_name\":\"words\",\"model_version\":\"1\",\"input_type\":\"strings\","
     "\"labels\":[],\"container_name\":\"NO_CONTAINER\",\"model_data_path\":\"\","
     "\"batch_size\":1,\"num_replicas\":0,\"runtime\":\"pyspark\","
     "\"artifact_sha256\":\"\",\"artifact_size\":0}"},
    {"current.doubles", "{\"model_version\":\"1\"}"},
};

static const char *const heartbeats[] = {
    "{\"model_name\":\"doubles\",\"model_version\":\"1\",\"replica_id\":7,\"state\":\"ready\","
    "\"host\":\"h\",\"pid\":42,\"input_type\":\"doubles\"}",
    "{\"model_name\":\"words\",\"model_version\":\"1\",\"replica_id\":3,\"state\":\"failed\","
    "\"cause\":\"ImportError\",\"host\":\"h\",\"pid\":43}",
};

static bool verbose; /* FUZZ_VERBOSE=1: print each command's reply */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

/* admin.c handle(): the dispatch, its retries, the envelope. */
static void run(cl_admin *a, const char *command, const uint8_t *body, size_t len)
{
    admin_reply rep = {0};
    for (int tries = 1;; tries++) {
        cl_status st = cl__admin_dispatch(a, command, body, len, &rep);
        if (st != CL_ERR_CONFLICT)
            break;
        cl__admin_reply_reset(&rep);
        if (tries == 16) {
            cl__admin_fail(&rep, "Internal error: the cluster state kept changing");
            break;
        }
    }
    fz_check((rep.result == NULL) != (rep.error == NULL),
             "%s: the reply has %s", command, rep.result ? "a result and an error" : "neither");
    cJSON *o = cJSON_CreateObject();
    fz_check(o != NULL, "out of memory");
    cJSON_AddBoolToObject(o, "ok", rep.error == NULL);
    if (rep.error == NULL) {
        cJSON_AddItemToObject(o, "result", rep.result);
        rep.result = NULL;
    } else {
        cJSON_AddStringToObject(o, "error", rep.error);
    }
    char *text = cl_json_print(o);
    fz_check(text != NULL, "%s: the envelope does not print", command);
    if (verbose)
        fprintf(stderr, "%s -> %s\n", command, text);
    free(text);
    cJSON_Delete(o);
    cl__admin_reply_reset(&rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof(initial) / sizeof(initial[0]); i++)
        put(initial[i][0], initial[i][1], strlen(initial[i][1]));
    cl_admin a;
    memset(&a, 0, sizeof(a));
    a.kv = (cl_kv *)&store;
    a.replicas = fz_replicas_new(NULL, NULL);
    for (size_t i = 0; i < sizeof(heartbeats) / sizeof(heartbeats[0]); i++)
        fz_replicas_heartbeat(a.replicas, "clipper.replica.hb.x.1.1", heartbeats[i],
                              strlen(heartbeats[i]));

    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        const uint8_t *sp = memchr(p, ' ', (size_t)(line_end - p));
        const uint8_t *cmd_end = sp ? sp : line_end;
        char *command = fz_strndup(p, (size_t)(cmd_end - p));
        const uint8_t *body = sp ? sp + 1 : line_end;
        /* A block of its own, so reading past the body trips ASan. */
        size_t len = (size_t)(line_end - body);
        uint8_t *copy = malloc(len ? len : 1);
        fz_check(copy != NULL, "out of memory");
        if (len > 0)
            memcpy(copy, body, len);
        run(&a, command, copy, len);
        free(copy);
        free(command);
        p = nl ? nl + 1 : end;
    }
    cl_replicas_free(a.replicas);
    store_reset();
    return 0;
}
