/* Admin commands on model versions: registration, lookup, the current
 * version, deletion and the wanted replica count, with Clipper's request
 * bodies, checks (in Clipper's order) and texts. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "cl_artifact.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_resources.h"
#include "cl_wire.h"

static const char ADD_MODEL_SCHEMA[] =
    "\n"
    "  {\n"
    "   \"model_name\" := string,\n"
    "   \"model_version\" := string,\n"
    "   \"labels\" := [string],\n"
    "   \"input_type\" := \"integers\" | \"bytes\" | \"floats\" | \"doubles\" | \"strings\",\n"
    "   \"container_name\" := string,\n"
    "   \"model_data_path\" := string,\n"
    "   \"batch_size\" := int,\n"
    "   \"runtime\" := string (optional, default \"python-closure\"),\n"
    "   \"artifact_sha256\" := string (optional),\n"
    "   \"artifact_size\" := int (optional),\n"
    "   \"num_replicas\" := int (optional, default 0),\n"
    "   \"pkgs_to_install\" := [string] (optional),\n"
    "   \"python_version\" := string (optional),\n"
    "   \"cloudpickle_version\" := string (optional),\n"
    "   \"resources\" := {\"requests\": {name: quantity}, \"limits\": {name: quantity}} "
    "(optional)\n"
    "  }\n";

static const char MODEL_SCHEMA[] = "\n"
                                   "  {\n"
                                   "   \"model_name\" := string,\n"
                                   "   \"model_version\" := string\n"
                                   "  }\n";

static const char NUM_REPLICAS_SCHEMA[] = "\n"
                                          "  {\n"
                                          "   \"model_name\" := string,\n"
                                          "   \"model_version\" := string,\n"
                                          "   \"num_replicas\" := int\n"
                                          "  }\n";

#define DEFAULT_BATCH_SIZE -1
#define DEFAULT_RUNTIME "python-closure"
#define CONTAINERLESS "NO_CONTAINER"

/* Clipper's model object plus our fields (batch size, replicas, runtime,
 * artifact). */
static cJSON *model_reply(const cl_model *m, bool is_current)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "model_name", m->name);
    cJSON_AddStringToObject(o, "model_version", m->version);
    cJSON_AddStringToObject(o, "input_type", cl_input_type_name((cl_input_type)m->input_type));
    cJSON *labels = cJSON_AddArrayToObject(o, "labels");
    for (size_t i = 0; labels && i < m->n_labels; i++)
        cJSON_AddItemToArray(labels, cJSON_CreateString(m->labels[i]));
    cJSON_AddStringToObject(o, "container_name", m->container_name);
    cJSON_AddStringToObject(o, "model_data_path", m->model_data_path);
    cJSON_AddBoolToObject(o, "is_current_version", is_current);
    (void)cl_json_add_int(o, "batch_size", m->batch_size);
    (void)cl_json_add_int(o, "num_replicas", m->num_replicas);
    cJSON_AddStringToObject(o, "runtime", m->runtime);
    cJSON_AddStringToObject(o, "artifact_sha256", m->artifact_sha256);
    (void)cl_json_add_int(o, "artifact_size", m->artifact_size);
    return o;
}

/* Is version the current one of model? (false when unknown or on error) */
static bool is_current(cl_admin *a, const char *model, const char *version)
{
    admin_reply scratch = {0};
    char *cur = NULL;
    bool yes = cl__store_current(a, model, &cur, NULL, &scratch) == CL_OK &&
               strcmp(cur, version) == 0;
    free(cur);
    cl__admin_reply_reset(&scratch);
    return yes;
}

#define PKGS_MAX 64      /* entries of pkgs_to_install */
#define PKG_SPEC_MAX 512 /* bytes of one entry */

/* pkgs_to_install: pip requirement specs (or paths/URLs of wheels) handed
 * to `pip install` one argument each. An entry that starts with '-' would
 * be an option to pip, and a control character (a newline) has no place
 * in a requirement; both are refused with the entry named. */
static bool pkgs_ok(const cJSON *pkgs, admin_reply *rep)
{
    int n = cJSON_GetArraySize(pkgs), i = 0;
    if (n > PKGS_MAX) {
        cl__admin_fail(rep, "pkgs_to_install has %d entries; at most %d are allowed", n,
                       PKGS_MAX);
        return false;
    }
    const cJSON *el;
    cJSON_ArrayForEach(el, pkgs)
    {
        const char *p = el->valuestring;
        size_t len = strlen(p);
        const char *why = NULL;
        if (len == 0)
            why = "is empty";
        else if (len > PKG_SPEC_MAX)
            why = "is longer than 512 bytes";
        else if (p[0] == '-')
            why = "starts with '-' (options to pip are not allowed, only requirement specs "
                  "such as \"numpy==1.26.4\")";
        for (const char *c = p; why == NULL && *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                why = "contains a control character (a newline?)";
        if (why) {
            cl__admin_fail(rep, "pkgs_to_install entry %d ('%.80s') %s", i, p, why);
            return false;
        }
        i++;
    }
    return true;
}

/* "3.11.7" (dotted_digits) or "2.1.0"/"3.0.0rc1": starts with a digit, then
 * digits and dots (or letters, '.', '+', '-', '_'); "" (unknown) is fine. */
static bool version_ok(const char *s, bool dotted_digits)
{
    size_t len = strlen(s);
    if (len == 0)
        return true;
    if (len > 64 || !isdigit((unsigned char)s[0]))
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (dotted_digits ? !(isdigit(c) || c == '.')
                          : !(isalnum(c) || c == '.' || c == '+' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool sha256_hex_ok(const char *s)
{
    if (s[0] == '\0')
        return true; /* no artifact */
    if (strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

cl_status cl__cmd_add_model(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    cl_model m = {0};
    const char *name, *version, *container, *data_path;
    const char *runtime = DEFAULT_RUNTIME, *sha = "", *py_version = "", *cp_version = "";
    const cJSON *labels, *pkgs = NULL;
    int input_type;
    int64_t batch_size, artifact_size = 0, num_replicas = 0;
    cl_status result = CL_OK;
    char *resources = NULL;
    if (!cl__req_model(&q, data, len, ADD_MODEL_SCHEMA, &name, &version, rep) ||
        !cl__req_string_array(&q, "labels", &labels) || !cl__req_input_type(&q, &input_type) ||
        !cl__req_string(&q, "container_name", &container) ||
        !cl__req_string(&q, "model_data_path", &data_path) ||
        !cl__req_int(&q, "batch_size", &batch_size) ||
        !cl__req_opt_string(&q, "runtime", &runtime) ||
        !cl__req_opt_string(&q, "artifact_sha256", &sha) ||
        !cl__req_opt_int(&q, "artifact_size", &artifact_size) ||
        !cl__req_opt_int(&q, "num_replicas", &num_replicas) ||
        (cJSON_GetObjectItemCaseSensitive(q.root, "pkgs_to_install") != NULL &&
         !cl__req_string_array(&q, "pkgs_to_install", &pkgs)) ||
        !cl__req_opt_string(&q, "python_version", &py_version) ||
        !cl__req_opt_string(&q, "cloudpickle_version", &cp_version))
        goto out;
    if (batch_size <= 0 && batch_size != DEFAULT_BATCH_SIZE) {
        cl__admin_fail(rep, "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1");
        goto out;
    }
    if (!cl__admin_group_ok(name, "model name", rep) ||
        !cl__admin_group_ok(version, "model version", rep))
        goto out;
    const cJSON *el;
    cJSON_ArrayForEach(el, labels)
    {
        if (!cl__admin_group_ok(el->valuestring, "label", rep))
            goto out;
    }
    char key[CL_KEY_MAX];
    cl_err err;
    if (cl_key_model(key, name, version, &err) != CL_OK) {
        cl__admin_fail(rep, "%s", err.msg);
        goto out;
    }
    if (num_replicas < 0) {
        cl__admin_fail(rep, "num_replicas must be zero or positive, got %lld",
                       (long long)num_replicas);
        goto out;
    }
    if (runtime[0] == '\0') {
        cl__admin_fail(rep, "runtime must not be empty (for example \"%s\")", DEFAULT_RUNTIME);
        goto out;
    }
    if (!sha256_hex_ok(sha)) {
        cl__admin_fail(rep,
                       "artifact_sha256 must be a SHA-256 digest in 64 lowercase hex digits, "
                       "got '%.80s'",
                       sha);
        goto out;
    }
    if (artifact_size < 0) {
        cl__admin_fail(rep, "artifact_size must be zero or positive, got %lld",
                       (long long)artifact_size);
        goto out;
    }
    if (pkgs != NULL && !pkgs_ok(pkgs, rep))
        goto out;
    if (!version_ok(py_version, true)) {
        cl__admin_fail(rep,
                       "python_version must look like \"3.11.7\" (digits and dots), got '%.80s'",
                       py_version);
        goto out;
    }
    if (!version_ok(cp_version, false)) {
        cl__admin_fail(rep, "cloudpickle_version must look like \"2.1.0\", got '%.80s'",
                       cp_version);
        goto out;
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(q.root, "resources");
    if (res != NULL && !cJSON_IsNull(res)) {
        cJSON *norm = NULL;
        cl_err rerr;
        if (cl_resources_normalise(res, &norm, &rerr) != CL_OK) {
            cl__admin_fail(rep, "%s", rerr.msg);
            goto out;
        }
        resources = cJSON_PrintUnformatted(norm);
        cJSON_Delete(norm);
        if (resources == NULL) {
            cl__admin_fail(rep, "Internal error: out of memory");
            goto out;
        }
    }

    cl_status st = cl__store_model(a, name, version, &m, NULL, rep);
    if (st == CL_OK) {
        cl__admin_fail(rep, "model with name '%s' and version '%s' already exists", name,
                       version);
        goto out;
    }
    if (st != CL_ERR_NOT_FOUND)
        goto out;
    if (cl__store_check_links(a, name, input_type, rep) != CL_OK)
        goto out;

    /* The struct borrows the request's strings; only labels are built. */
    cl_model nm = {.name = (char *)name,
                   .version = (char *)version,
                   .input_type = input_type,
                   .container_name = (char *)container,
                   .model_data_path = (char *)data_path,
                   .batch_size = batch_size,
                   .num_replicas = num_replicas,
                   .runtime = (char *)runtime,
                   .artifact_sha256 = (char *)sha,
                   .artifact_size = artifact_size,
                   .python_version = (char *)py_version,
                   .cloudpickle_version = (char *)cp_version,
                   .resources = resources};
    size_t n_labels = (size_t)cJSON_GetArraySize(labels);
    size_t n_pkgs = pkgs ? (size_t)cJSON_GetArraySize(pkgs) : 0;
    const char **label_v = calloc(n_labels ? n_labels : 1, sizeof(char *));
    const char **pkg_v = calloc(n_pkgs ? n_pkgs : 1, sizeof(char *));
    if (label_v == NULL || pkg_v == NULL) {
        free(label_v);
        free(pkg_v);
        cl__admin_fail(rep, "Internal error: out of memory");
        goto out;
    }
    size_t i = 0;
    cJSON_ArrayForEach(el, labels) label_v[i++] = el->valuestring;
    nm.labels = (char **)label_v;
    nm.n_labels = n_labels;
    i = 0;
    if (pkgs != NULL)
        cJSON_ArrayForEach(el, pkgs) pkg_v[i++] = el->valuestring;
    nm.pkgs_to_install = (char **)pkg_v;
    nm.n_pkgs = n_pkgs;
    st = cl__store_write(a, key, cl_model_to_json(&nm), 0, rep);
    free(label_v);
    free(pkg_v);
    if (st == CL_ERR_EXISTS) {
        cl__admin_fail(rep, "model with name '%s' and version '%s' already exists", name,
                       version);
        goto out;
    }
    if (st == CL_ERR_CONFLICT) {
        result = CL_ERR_CONFLICT;
        goto out;
    }
    if (st != CL_OK)
        goto out;
    if (cl__store_set_current(a, name, version, rep) != CL_OK)
        goto out;
    cl__admin_ok_text(rep, "Successfully added model with name '%s' and input type '%s'", name,
                      cl_input_type_name((cl_input_type)input_type));
out:
    free(resources);
    cl_model_deinit(&m);
    cl__req_done(&q);
    return result;
}

/* Splits "model.<name>.<version>" in place. */
static bool split_key(char *key, const char **name, const char **version)
{
    if (strncmp(key, "model.", 6) != 0)
        return false;
    char *dot = strchr(key + 6, '.');
    if (dot == NULL)
        return false;
    *dot = '\0';
    *name = key + 6;
    *version = dot + 1;
    return true;
}

/* The current versions, read once per listing, on the first element that
 * needs them. */
typedef struct {
    bool loaded;
    cl__entry *entries;
    size_t n;
} currents;

/* One element of get_all_models (cl__admin_list). The record is decoded
 * even for a list of names, so both lists leave out the same malformed
 * records (CL_ERR_INVALID). */
static CL_MUST_USE cl_status model_item(cl_admin *a, const cl__entry *e, bool verbose,
                                        void *closure, cJSON **item, admin_reply *rep)
{
    char key[CL_KEY_MAX], valid[CL_KEY_MAX];
    snprintf(key, sizeof(key), "%s", e->key);
    const char *name, *version;
    cl_err err;
    if (!split_key(key, &name, &version) || cl_key_model(valid, name, version, &err) != CL_OK) {
        cl__admin_fail(rep, "the key '%s' does not name a model version (model.<name>.<version>)",
                       e->key);
        return CL_ERR_INVALID;
    }
    cl_model m;
    cl_status st = cl__entry_model(e, name, version, &m, rep);
    if (st != CL_OK)
        return st;
    if (verbose) {
        currents *cur = closure;
        if (!cur->loaded) {
            admin_reply scratch = {0}; /* unknown: no version is said to be current */
            cl_status_ignore(cl__store_entries(a, "current.", &cur->entries, &cur->n, &scratch));
            cl__admin_reply_reset(&scratch);
            cur->loaded = true;
        }
        char *current = cl__entries_current(cur->entries, cur->n, name);
        *item = model_reply(&m, current != NULL && strcmp(current, version) == 0);
        free(current);
    } else {
        char id[2 * CL_KEY_MAX];
        snprintf(id, sizeof(id), "%s:%s", name, version);
        *item = cJSON_CreateString(id);
    }
    cl_model_deinit(&m);
    return CL_OK;
}

cl_status cl__cmd_get_all_models(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    currents cur = {0};
    cl_status st = cl__admin_list(a, data, len, "model.", model_item, &cur, rep);
    cl__store_entries_free(cur.entries, cur.n);
    return st;
}

/* Reads model name:version for a command that needs it to exist; fails
 * with Clipper's text when it does not. */
static CL_MUST_USE cl_status existing_model(cl_admin *a, const char *name, const char *version,
                                            cl_model *m, uint64_t *rev, admin_reply *rep)
{
    cl_status st = cl__store_model(a, name, version, m, rev, rep);
    if (st == CL_ERR_NOT_FOUND)
        cl__admin_fail(rep, "model with name '%s' and version '%s' does not exist", name,
                       version);
    return st;
}

cl_status cl__cmd_get_model(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name, *version;
    if (!cl__req_model(&q, data, len, MODEL_SCHEMA, &name, &version, rep))
        goto out;
    cl_model m;
    cl_status st = cl__store_model(a, name, version, &m, NULL, rep);
    if (st == CL_ERR_NOT_FOUND) {
        cl__admin_ok_json(rep, cJSON_CreateObject());
    } else if (st == CL_OK) {
        cl__admin_ok_json(rep, model_reply(&m, is_current(a, name, version)));
        cl_model_deinit(&m);
    }
out:
    cl__req_done(&q);
    return CL_OK;
}

cl_status cl__cmd_delete_versioned_model(cl_admin *a, const void *data, size_t len,
                                         admin_reply *rep)
{
    admin_req q;
    const char *name, *version;
    if (!cl__req_model(&q, data, len, MODEL_SCHEMA, &name, &version, rep))
        goto out;
    cl_model m;
    cl_status st = existing_model(a, name, version, &m, NULL, rep);
    if (st == CL_ERR_INVALID) /* a malformed record can still be removed */
        cl_warn("delete_versioned_model: removing the malformed record of model %s:%s: %s", name,
                version, rep->error ? rep->error : "");
    else if (st != CL_OK)
        goto out;
    else
        cl_model_deinit(&m);
    char key[CL_KEY_MAX];
    cl_err err;
    if (cl_key_model(key, name, version, &err) != CL_OK) {
        cl__admin_fail(rep, "%s", err.msg);
        goto out;
    }
    if (cl__store_delete(a, key, rep) != CL_OK)
        goto out;
    /* A deleted version stops being current; no other version is picked
     * (as in Clipper). */
    char *cur = NULL;
    if (cl__store_current(a, name, &cur, NULL, rep) == CL_OK && strcmp(cur, version) == 0) {
        if (cl_key_current(key, name, &err) != CL_OK) {
            cl__admin_fail(rep, "%s", err.msg);
            free(cur);
            goto out;
        }
        if (cl__store_delete(a, key, rep) != CL_OK) {
            free(cur);
            goto out;
        }
    }
    free(cur);
    if (cl_artifact_delete(a->bus, name, version, &err) != CL_OK)
        cl_warn("delete_versioned_model: the artifact of %s:%s was not removed: %s", name,
                version, err.msg);
    cl__admin_ok_text(rep, "Successfully deleted model with name '%s' and version '%s'", name,
                      version);
out:
    cl__req_done(&q);
    return CL_OK;
}

cl_status cl__cmd_set_model_version(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name, *version;
    char **keys = NULL;
    size_t n = 0;
    if (!cl__req_model(&q, data, len, MODEL_SCHEMA, &name, &version, rep))
        goto out;
    char prefix[CL_KEY_MAX];
    if (cl_key_current(prefix, name, NULL) == CL_OK) {
        snprintf(prefix, sizeof(prefix), "model.%s.", name);
        if (cl__store_keys(a, prefix, &keys, &n, rep) != CL_OK)
            goto out;
    }
    if (n == 0) {
        cl__admin_fail(rep, "Cannot set version for nonexistent model '%s'", name);
        goto out;
    }
    cl_model m;
    cl_status st = cl__store_model(a, name, version, &m, NULL, rep);
    if (st == CL_ERR_NOT_FOUND) {
        cl__admin_fail(rep, "Cannot set non-existent version '%s' for model with name '%s'",
                       version, name);
        goto out;
    }
    if (st != CL_OK)
        goto out;
    int input_type = m.input_type;
    cl_model_deinit(&m);
    if (cl__store_check_links(a, name, input_type, rep) != CL_OK)
        goto out;
    if (cl__store_set_current(a, name, version, rep) != CL_OK)
        goto out;
    cl__admin_ok_text(rep, "Successfully set model with name '%s' to version '%s'", name,
                      version);
out:
    cl_kv_keys_free(keys, n);
    cl__req_done(&q);
    return CL_OK;
}

cl_status cl__cmd_set_num_replicas(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name, *version;
    int64_t wanted;
    cl_model m = {0};
    uint64_t rev = 0;
    cl_status result = CL_OK;
    if (!cl__req_model(&q, data, len, NUM_REPLICAS_SCHEMA, &name, &version, rep) ||
        !cl__req_int(&q, "num_replicas", &wanted))
        goto out;
    if (wanted < 0) {
        cl__admin_fail(rep, "num_replicas must be zero or positive, got %lld", (long long)wanted);
        goto out;
    }
    if (existing_model(a, name, version, &m, &rev, rep) != CL_OK)
        goto out;
    if (wanted > 0 && strcmp(m.container_name, CONTAINERLESS) == 0 &&
        m.artifact_sha256[0] == '\0') {
        cl__admin_fail(rep, "Cannot resize the replica set for containerless model %s:%s", name,
                       version);
        goto out;
    }
    m.num_replicas = wanted;
    char key[CL_KEY_MAX];
    cl_err err;
    if (cl_key_model(key, name, version, &err) != CL_OK) {
        cl__admin_fail(rep, "%s", err.msg);
        goto out;
    }
    cl_status st = cl__store_update(a, key, cl_model_to_json(&m), rev, rep);
    if (st == CL_ERR_CONFLICT)
        result = CL_ERR_CONFLICT;
    else if (st == CL_OK)
        cl__admin_ok_text(rep,
                          "Successfully set the number of replicas of model '%s' version '%s' "
                          "to %lld",
                          name, version, (long long)wanted);
out:
    cl_model_deinit(&m);
    cl__req_done(&q);
    return result;
}
