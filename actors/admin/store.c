/* The admin's reads and writes of the cluster state in the KV bucket.
 * Reads go straight to the bucket (not to a watched view) so a command
 * always sees the writes of the command before it. Writes use create or
 * compare-and-set so two admins never lose each other's changes.
 *
 * A malformed record (a value that does not decode, or a key that is not
 * <kind>.<name>) fails the commands that name it, but not the listings
 * or the link checks that merely pass it: those leave it out, as the
 * other actors' views do, and log its key (once per SKIP_LOG_US).
 *
 * Listings and link checks read all the values under a prefix in one pass
 * (cl_kv_values: the server pushes them to one watcher), not key by key:
 * with 1000 applications that is the difference between one round trip
 * and a thousand. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "cl_clock.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_wire.h"

#define SET_CURRENT_TRIES 16
#define SKIP_LOG_US (600 * 1000000ull) /* a malformed key is logged once per 10 minutes */
#define SKIP_LOG_KEYS 64

/* Which malformed keys were logged when. Process-wide, like the log it
 * limits: a dashboard that lists every second must not flood it. */
static struct {
    pthread_mutex_t mu;
    struct {
        char key[CL_SUBJECT_MAX + CL_KEY_MAX];
        uint64_t at_us;
    } seen[SKIP_LOG_KEYS];
} skip_log = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Logs that key of the bucket of a's prefix is left out, unless it was
 * logged within SKIP_LOG_US. */
static void log_skipped(cl_admin *a, const char *key, const char *why)
{
    char id[sizeof(skip_log.seen[0].key)];
    snprintf(id, sizeof(id), "%s/%s", cl_bus_prefix(a->bus), key);
    uint64_t now = cl_mono_us();
    bool due = true;
    pthread_mutex_lock(&skip_log.mu);
    size_t slot = 0;
    for (size_t i = 0; i < SKIP_LOG_KEYS; i++) {
        if (strcmp(skip_log.seen[i].key, id) == 0) {
            slot = i;
            due = now - skip_log.seen[i].at_us >= SKIP_LOG_US;
            break;
        }
        if (skip_log.seen[i].at_us < skip_log.seen[slot].at_us)
            slot = i; /* the oldest, or an empty one, makes room */
    }
    if (due) {
        snprintf(skip_log.seen[slot].key, sizeof(skip_log.seen[slot].key), "%s", id);
        skip_log.seen[slot].at_us = now;
    }
    pthread_mutex_unlock(&skip_log.mu);
    if (due)
        cl_warn("admin: leaving the malformed record '%s' of the cluster state (prefix '%s') "
                "out of listings: %s (logged once per %llu minutes)",
                key, cl_bus_prefix(a->bus), why, SKIP_LOG_US / 60000000ull);
}

/* An error text without the "Internal error: " a command would show. */
static const char *plain(const char *text)
{
    static const char internal_prefix[] = "Internal error: ";
    if (text == NULL)
        return "malformed";
    if (strncmp(text, internal_prefix, sizeof(internal_prefix) - 1) == 0)
        return text + sizeof(internal_prefix) - 1;
    return text;
}

static CL_MUST_USE cl_status internal(admin_reply *rep, const char *what, const char *key,
                                      const cl_err *err)
{
    cl__admin_fail(rep, "Internal error: cannot %s '%s' in the cluster state: %s", what, key,
                   err->msg);
    return err->code != CL_OK ? err->code : CL_ERR_BUS;
}

/* Gets key; CL_ERR_NOT_FOUND untouched, other errors reported. */
static CL_MUST_USE cl_status get(cl_admin *a, const char *key, char **value, size_t *len,
                                 uint64_t *rev, admin_reply *rep)
{
    cl_err err;
    cl_status st = cl_kv_get(a->kv, key, value, len, rev, &err);
    if (st == CL_OK || st == CL_ERR_NOT_FOUND)
        return st;
    return internal(rep, "read", key, &err);
}

/* What an entry of the bucket decodes to. */
typedef enum { ENTRY_APP, ENTRY_MODEL, ENTRY_CURRENT } entry_kind;

/* Decodes the value of key into out (a cl_app, a cl_model, or a char *
 * for a current version); a failure is reported. */
static CL_MUST_USE cl_status decode_entry(const char *key, entry_kind kind, const char *value,
                                          size_t len, void *out, admin_reply *rep)
{
    cl_err err;
    cl_status st = CL_OK;
    switch (kind) {
    case ENTRY_APP:
        st = cl_app_from_json(out, value, len, &err);
        break;
    case ENTRY_MODEL:
        st = cl_model_from_json(out, value, len, &err);
        break;
    case ENTRY_CURRENT:
        *(char **)out = cl_current_from_json(value, len, &err);
        st = *(char **)out != NULL ? CL_OK : CL_ERR_INVALID;
        break;
    }
    if (st != CL_OK)
        return internal(rep, "decode", key, &err);
    return CL_OK;
}

/* Reads key and decodes it into out (decode_entry). CL_ERR_NOT_FOUND
 * untouched, other errors reported. */
static CL_MUST_USE cl_status read_entry(cl_admin *a, const char *key, entry_kind kind, void *out,
                                        uint64_t *rev, admin_reply *rep)
{
    char *value = NULL;
    size_t len = 0;
    cl_status st = get(a, key, &value, &len, rev, rep);
    if (st != CL_OK)
        return st;
    st = decode_entry(key, kind, value, len, out, rep);
    free(value);
    return st;
}

/* As the frontend's view: a record under app.<name> that holds another
 * application is not that app. */
static CL_MUST_USE cl_status app_named(const char *key, const char *name, cl_app *app,
                                       cl_status st, admin_reply *rep)
{
    if (st == CL_OK && strcmp(app->name, name) != 0) {
        cl__admin_fail(rep, "Internal error: '%s' in the cluster state holds application '%.128s'",
                       key, app->name);
        cl_app_deinit(app);
        return CL_ERR_INVALID;
    }
    return st;
}

static CL_MUST_USE cl_status model_named(const char *key, const char *name, const char *version,
                                         cl_model *m, cl_status st, admin_reply *rep)
{
    if (st == CL_OK && (strcmp(m->name, name) != 0 || strcmp(m->version, version) != 0)) {
        cl__admin_fail(rep, "Internal error: '%s' in the cluster state holds model '%.128s:%.128s'",
                       key, m->name, m->version);
        cl_model_deinit(m);
        return CL_ERR_INVALID;
    }
    return st;
}

cl_status cl__store_app(cl_admin *a, const char *name, cl_app *app, uint64_t *rev,
                        admin_reply *rep)
{
    char key[CL_KEY_MAX];
    if (cl_key_app(key, name, NULL) != CL_OK)
        return CL_ERR_NOT_FOUND;
    return app_named(key, name, app, read_entry(a, key, ENTRY_APP, app, rev, rep), rep);
}

cl_status cl__store_model(cl_admin *a, const char *name, const char *version, cl_model *m,
                          uint64_t *rev, admin_reply *rep)
{
    char key[CL_KEY_MAX];
    if (cl_key_model(key, name, version, NULL) != CL_OK)
        return CL_ERR_NOT_FOUND;
    return model_named(key, name, version, m,
                       read_entry(a, key, ENTRY_MODEL, m, rev, rep), rep);
}

cl_status cl__entry_app(const cl__entry *e, const char *name, cl_app *app, admin_reply *rep)
{
    return app_named(e->key, name, app,
                     decode_entry(e->key, ENTRY_APP, e->value, e->len, app, rep), rep);
}

cl_status cl__entry_model(const cl__entry *e, const char *name, const char *version,
                          cl_model *m, admin_reply *rep)
{
    return model_named(e->key, name, version, m,
                       decode_entry(e->key, ENTRY_MODEL, e->value, e->len, m, rep), rep);
}

char *cl__entries_current(const cl__entry *entries, size_t n, const char *model)
{
    char key[CL_KEY_MAX];
    if (n == 0 || cl_key_current(key, model, NULL) != CL_OK)
        return NULL; /* bsearch takes no NULL array, even empty */
    cl__entry probe = {.key = key};
    const cl__entry *e = bsearch(&probe, entries, n, sizeof(*entries), cl__entry_cmp);
    admin_reply scratch = {0};
    char *version = NULL;
    if (e != NULL && decode_entry(key, ENTRY_CURRENT, e->value, e->len, &version, &scratch) !=
                         CL_OK)
        version = NULL;
    cl__admin_reply_reset(&scratch);
    return version;
}

int cl__entry_cmp(const void *x, const void *y)
{
    return strcmp(((const cl__entry *)x)->key, ((const cl__entry *)y)->key);
}

typedef struct {
    cl__entry *v;
    size_t n, cap;
    bool nomem;
} entries_acc;

static void add_entry(void *closure, const char *key, const char *value, size_t len,
                      uint64_t rev)
{
    (void)rev;
    entries_acc *acc = closure;
    if (acc->nomem)
        return;
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? 2 * acc->cap : 64;
        cl__entry *v = realloc(acc->v, cap * sizeof(*v));
        if (v == NULL) {
            acc->nomem = true;
            return;
        }
        acc->v = v;
        acc->cap = cap;
    }
    cl__entry e = {.key = strdup(key), .value = malloc(len + 1), .len = len};
    if (e.key == NULL || e.value == NULL) {
        free(e.key);
        free(e.value);
        acc->nomem = true;
        return;
    }
    memcpy(e.value, value, len);
    e.value[len] = '\0';
    acc->v[acc->n++] = e;
}

cl_status cl__store_entries(cl_admin *a, const char *prefix, cl__entry **out, size_t *n,
                            admin_reply *rep)
{
    *out = NULL;
    *n = 0;
    char pattern[CL_KEY_MAX + 2];
    snprintf(pattern, sizeof(pattern), "%s>", prefix);
    entries_acc acc = {0};
    cl_err err;
    cl_status st = cl_kv_values(a->kv, pattern, add_entry, &acc, &err);
    if (st == CL_OK && acc.nomem)
        st = cl_err_set(&err, CL_ERR_NOMEM, "out of memory");
    if (st != CL_OK) {
        cl__store_entries_free(acc.v, acc.n);
        return internal(rep, "read the keys under", prefix, &err);
    }
    if (acc.n > 1)
        qsort(acc.v, acc.n, sizeof(*acc.v), cl__entry_cmp);
    *out = acc.v;
    *n = acc.n;
    return CL_OK;
}

void cl__store_entries_free(cl__entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(entries[i].key);
        free(entries[i].value);
    }
    free(entries);
}

cl_status cl__store_current(cl_admin *a, const char *name, char **version, uint64_t *rev,
                            admin_reply *rep)
{
    char key[CL_KEY_MAX];
    if (cl_key_current(key, name, NULL) != CL_OK)
        return CL_ERR_NOT_FOUND;
    return read_entry(a, key, ENTRY_CURRENT, version, rev, rep);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

cl_status cl__store_keys(cl_admin *a, const char *prefix, char ***keys, size_t *n,
                         admin_reply *rep)
{
    cl_err err;
    cl_status st = cl_kv_keys(a->kv, prefix, keys, n, &err);
    if (st != CL_OK)
        return internal(rep, "list the keys under", prefix, &err);
    if (*n > 1)
        qsort(*keys, *n, sizeof(char *), cmp_str);
    return CL_OK;
}

/* Writes text (consumed): created when rev is 0, else compare-and-set. */
static CL_MUST_USE cl_status write_text(cl_admin *a, const char *key, char *text, uint64_t rev,
                                        admin_reply *rep)
{
    if (text == NULL) {
        cl__admin_fail(rep, "Internal error: out of memory");
        return CL_ERR_NOMEM;
    }
    cl_err err;
    cl_status st = rev == 0 ? cl_kv_create(a->kv, key, text, strlen(text), NULL, &err)
                            : cl_kv_update(a->kv, key, text, strlen(text), rev, NULL, &err);
    free(text);
    if (st == CL_OK || st == CL_ERR_EXISTS || st == CL_ERR_CONFLICT)
        return st;
    return internal(rep, "write", key, &err);
}

cl_status cl__store_write(cl_admin *a, const char *key, cJSON *value, uint64_t rev,
                          admin_reply *rep)
{
    char *text = value ? cl_json_print(value) : NULL;
    cJSON_Delete(value);
    return write_text(a, key, text, rev, rep);
}

cl_status cl__store_update(cl_admin *a, const char *key, cJSON *value, uint64_t rev,
                           admin_reply *rep)
{
    cl_status st = cl__store_write(a, key, value, rev, rep);
    return st == CL_ERR_EXISTS ? CL_ERR_CONFLICT : st;
}

cl_status cl__store_delete(cl_admin *a, const char *key, admin_reply *rep)
{
    cl_err err;
    if (cl_kv_delete(a->kv, key, &err) == CL_OK)
        return CL_OK;
    cl__admin_fail(rep, "Internal error: cannot delete '%s' from the cluster state: %s", key,
                   err.msg);
    return err.code != CL_OK ? err.code : CL_ERR_BUS;
}

cl_status cl__store_set_current(cl_admin *a, const char *model, const char *version,
                                admin_reply *rep)
{
    char key[CL_KEY_MAX];
    cl_err err;
    if (cl_key_current(key, model, &err) != CL_OK) {
        cl__admin_fail(rep, "%s", err.msg);
        return CL_ERR_INVALID;
    }
    for (int i = 0; i < SET_CURRENT_TRIES; i++) {
        char *old = NULL;
        uint64_t rev = 0;
        cl_status st = cl__store_current(a, model, &old, &rev, rep);
        free(old);
        if (st == CL_ERR_NOT_FOUND)
            rev = 0;
        else if (st != CL_OK)
            return st;
        st = write_text(a, key, cl_current_to_json(version), rev, rep);
        if (st != CL_ERR_EXISTS && st != CL_ERR_CONFLICT)
            return st;
    }
    cl__admin_fail(rep, "Internal error: '%s' kept changing while setting it; try again", key);
    return CL_ERR_CONFLICT;
}

cl_status cl__store_check_links(cl_admin *a, const char *model, int input_type,
                                admin_reply *rep)
{
    cl__entry *apps = NULL;
    size_t n = 0;
    cl_status st = cl__store_entries(a, "app.", &apps, &n, rep);
    if (st != CL_OK)
        return st;
    for (size_t i = 0; i < n && st == CL_OK; i++) {
        cl_app app;
        admin_reply one = {0};
        cl_status gs = cl__entry_app(&apps[i], apps[i].key + 4, &app, &one);
        if (gs != CL_OK) /* malformed: the frontend ignores it too */
            log_skipped(a, apps[i].key, plain(one.error));
        cl__admin_reply_reset(&one);
        if (gs != CL_OK)
            continue;
        for (size_t j = 0; j < app.n_linked; j++) {
            if (strcmp(app.linked_models[j], model) == 0 && app.input_type != input_type) {
                cl__admin_fail(
                    rep,
                    "Model with name '%s' is already linked to app '%s' using input type '%s'. "
                    "The input type you provided for a new version of the model, '%s', is not "
                    "compatible.",
                    model, app.name, cl_input_type_name((cl_input_type)app.input_type),
                    cl_input_type_name((cl_input_type)input_type));
                st = CL_ERR_INVALID;
                break;
            }
        }
        cl_app_deinit(&app);
    }
    cl__store_entries_free(apps, n);
    return st;
}

bool cl__admin_group_ok(const char *value, const char *what, admin_reply *rep)
{
    if (strchr(value, ',') == NULL && strchr(value, ':') == NULL)
        return true;
    cl__admin_fail(rep, "Invalid %s supplied: %s. Contains one of: ',', ':'", what, value);
    return false;
}

cl_status cl__admin_list(cl_admin *a, const void *data, size_t len, const char *prefix,
                         admin_list_item item, void *closure, admin_reply *rep)
{
    admin_req q;
    bool verbose;
    cl__entry *entries = NULL;
    size_t n = 0;
    if (!cl__req_parse(&q, data, len, cl__verbose_schema, rep) ||
        !cl__req_bool(&q, "verbose", &verbose))
        goto out;
    if (cl__store_entries(a, prefix, &entries, &n, rep) != CL_OK)
        goto out;
    cJSON *list = cJSON_CreateArray();
    cJSON *skipped = cJSON_CreateArray();
    for (size_t i = 0; list && skipped && i < n; i++) {
        cJSON *one = NULL;
        admin_reply item_rep = {0};
        cl_status st = item(a, &entries[i], verbose, closure, &one, &item_rep);
        if (st == CL_ERR_INVALID) {
            /* Malformed: left out, and said so. */
            const char *why = plain(item_rep.error);
            log_skipped(a, entries[i].key, why);
            cJSON *entry = cJSON_CreateObject();
            cJSON_AddStringToObject(entry, "key", entries[i].key);
            cJSON_AddStringToObject(entry, "error", why);
            cJSON_AddItemToArray(skipped, entry);
        } else if (st == CL_OK) {
            cJSON_AddItemToArray(list, one);
        } else {
            cl__admin_fail(rep, "%s", item_rep.error ? item_rep.error : "Internal error");
            cl__admin_reply_reset(&item_rep);
            cJSON_Delete(list);
            cJSON_Delete(skipped);
            goto out;
        }
        cl__admin_reply_reset(&item_rep);
    }
    /* The good entries keep Clipper's shape; which keys were left out
     * goes beside them in the envelope ("skipped"). */
    cl__admin_ok_json(rep, list);
    if (rep->error == NULL && cJSON_GetArraySize(skipped) > 0)
        rep->skipped = skipped;
    else
        cJSON_Delete(skipped);
out:
    cl__store_entries_free(entries, n);
    cl__req_done(&q);
    return CL_OK;
}
