/* Cluster state in the JetStream KV bucket "<prefix>_state": open/create,
 * the CAS writes (create, update), reads, key listing, and watchers that
 * run callbacks from a thread of their own. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "cl_clock.h"
#include "cl_kv.h"
#include "cl_log.h"

struct cl_kv {
    cl_bus *bus;
    jsCtx *js;
    kvStore *store;
    char bucket[128];
    char pre[160]; /* "$KV.<bucket>." */
};

struct cl_kv_watch {
    kvWatcher *w;
    cl_kv_watch_cb cb;
    void *closure;
    pthread_t thread;
    atomic_bool stop;
};

/* Bucket names allow [A-Za-z0-9_-]; anything else in the prefix becomes '_'. */
void cl_kv_bucket_name(const char *prefix, char out[128])
{
    size_t n = 0;
    for (const char *p = prefix; *p != '\0' && n < 120; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        out[n++] = ok ? c : '_';
    }
    memcpy(out + n, "_state", 7);
}

/* How long an actor with an identity waits for the admin to create the
 * bucket it may not create itself. */
#define WAIT_FOR_BUCKET_MS 60000

static cl_status kv_open(cl_kv **out, cl_bus *bus, bool create, cl_err *err)
{
    jsCtx *js;
    cl_status st = cl__bus_js(bus, &js, err);
    if (st != CL_OK)
        return st;
    cl_kv *kv = calloc(1, sizeof(*kv));
    if (kv == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    kv->bus = bus;
    kv->js = js;
    cl_kv_bucket_name(cl_bus_prefix(bus), kv->bucket);
    snprintf(kv->pre, sizeof(kv->pre), "$KV.%s.", kv->bucket);

    natsStatus s = js_KeyValue(&kv->store, js, kv->bucket);
    if (s == NATS_NOT_FOUND && !create) {
        /* Only the admin may create it (bus/roles.c): wait for it. */
        cl_info("waiting for the admin to create the state bucket '%s'", kv->bucket);
        uint64_t until = cl_mono_us() + WAIT_FOR_BUCKET_MS * 1000ull;
        while (s == NATS_NOT_FOUND && cl_mono_us() < until) {
            cl_sleep_ms(200);
            s = js_KeyValue(&kv->store, js, kv->bucket);
        }
    }
    if (s == NATS_NOT_FOUND && create) {
        kvConfig cfg;
        kvConfig_Init(&cfg);
        cfg.Bucket = kv->bucket;
        cfg.History = 1;
        cfg.StorageType = js_FileStorage;
        cfg.Replicas = cl__bus_state_replicas(bus);
        s = js_CreateKeyValue(&kv->store, js, &cfg);
        /* Another process may have created it at the same moment (the
         * server then refuses a differing config); bind to theirs. When
         * there is none, the server's refusal is what to report. */
        if (s != NATS_OK) {
            cl_err why;
            cl_status created = cl__bus_status(s, &why, "creating it");
            s = js_KeyValue(&kv->store, js, kv->bucket);
            if (s != NATS_OK) {
                char what[600];
                snprintf(what, sizeof(what), "cannot open the state bucket '%s' (%d replicas)",
                         kv->bucket, cfg.Replicas);
                st = cl_err_set(err, created, "%s: %s", what, why.msg);
                free(kv);
                return st == CL_ERR_NOT_FOUND ? (err ? (err->code = CL_ERR_BUS) : CL_ERR_BUS)
                                              : st;
            }
        }
    }
    if (s != NATS_OK) {
        char what[200];
        snprintf(what, sizeof(what), "cannot open the state bucket '%s'", kv->bucket);
        st = cl__bus_status(s, err, what);
        if (st == CL_ERR_NOT_FOUND)
            st = err ? (err->code = CL_ERR_BUS) : CL_ERR_BUS;
        free(kv);
        return st;
    }
    *out = kv;
    return CL_OK;
}

cl_status cl_kv_open(cl_kv **out, cl_bus *bus, cl_err *err)
{
    /* Without an identity anyone may create it (an open bus, actors
     * started in any order); with one only the state's owner may. */
    return kv_open(out, bus, !cl_bus_has_identity(bus), err);
}

cl_status cl_kv_open_or_create(cl_kv **out, cl_bus *bus, cl_err *err)
{
    return kv_open(out, bus, true, err);
}

void cl_kv_free(cl_kv *kv)
{
    if (kv == NULL)
        return;
    kvStore_Destroy(kv->store);
    free(kv);
}

static CL_MUST_USE cl_status key_error(natsStatus s, cl_err *err, const char *op, const char *key)
{
    char what[320];
    snprintf(what, sizeof(what), "cannot %s key '%s'", op, key);
    return cl__bus_status(s, err, what);
}

cl_status cl_kv_get(cl_kv *kv, const char *key, char **value, size_t *len, uint64_t *rev,
                    cl_err *err)
{
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, kv->store, key);
    if (s == NATS_NOT_FOUND)
        return cl_err_set(err, CL_ERR_NOT_FOUND, "key '%s' not found", key);
    if (s != NATS_OK)
        return key_error(s, err, "read", key);
    int n = kvEntry_ValueLen(e);
    size_t sz = n > 0 ? (size_t)n : 0;
    char *v = malloc(sz + 1);
    if (v == NULL) {
        kvEntry_Destroy(e);
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    if (sz > 0)
        memcpy(v, kvEntry_Value(e), sz);
    v[sz] = '\0';
    *value = v;
    if (len != NULL)
        *len = sz;
    if (rev != NULL)
        *rev = kvEntry_Revision(e);
    kvEntry_Destroy(e);
    return CL_OK;
}

/* Publishes value to key with an optional expectation on the key's last
 * revision. *wrong_seq tells that the expectation failed. */
static natsStatus put_expect(cl_kv *kv, const char *key, const void *value, size_t len,
                             bool expect_none, uint64_t expect_rev, uint64_t *rev, bool *wrong_seq)
{
    char subj[512];
    *wrong_seq = false;
    if (snprintf(subj, sizeof(subj), "%s%s", kv->pre, key) >= (int)sizeof(subj))
        return NATS_INVALID_ARG;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectNoMessage = expect_none;
    po.ExpectLastSubjectSeq = expect_rev;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, kv->js, subj, value, (int)len, &po, &jerr);
    if (s == NATS_OK && rev != NULL)
        *rev = pa->Sequence;
    if (s != NATS_OK && jerr == JSStreamWrongLastSequenceErr)
        *wrong_seq = true;
    jsPubAck_Destroy(pa);
    return s;
}

/* The KV protocol marks a deleted or purged key by a message with the
 * header KV-Operation: DEL or PURGE (NATS ADR-8); a value has none. */
#define KV_OP_HEADER "KV-Operation"

/* The last message on key's subject, read directly from the bucket's
 * stream: whether it is a delete marker, and its revision. NATS_NOT_FOUND
 * when the subject has none. */
static natsStatus last_message(cl_kv *kv, const char *key, bool *deleted, uint64_t *rev)
{
    char subj[512], stream[160];
    if (snprintf(subj, sizeof(subj), "%s%s", kv->pre, key) >= (int)sizeof(subj))
        return NATS_INVALID_ARG;
    snprintf(stream, sizeof(stream), "KV_%s", kv->bucket);
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetLastMsg(&m, kv->js, stream, subj, NULL, &jerr);
    if (s != NATS_OK)
        return s;
    const char *op = NULL;
    *deleted = natsMsgHeader_Get(m, KV_OP_HEADER, &op) == NATS_OK && op != NULL &&
               (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
    *rev = natsMsg_GetSequence(m);
    natsMsg_Destroy(m);
    return NATS_OK;
}

static bool key_ok(const char *key, cl_err *err)
{
    if (key == NULL || key[0] == '\0')
        return cl_err_set(err, CL_ERR_INVALID, "key is empty"), false;
    for (const char *p = key; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '/' || c == '\\' || c == '=';
        if (!ok)
            return cl_err_set(err, CL_ERR_INVALID,
                              "key '%s' is not valid: it may contain only letters, digits and "
                              "'._-/\\=' (found '%c')",
                              key, c),
                   false;
    }
    if (key[0] == '.' || key[strlen(key) - 1] == '.' || strstr(key, "..") != NULL)
        return cl_err_set(err, CL_ERR_INVALID, "key '%s' is not valid: it has an empty element",
                          key),
               false;
    return true;
}

cl_status cl_kv_create(cl_kv *kv, const char *key, const void *value, size_t len, uint64_t *rev,
                       cl_err *err)
{
    if (!key_ok(key, err))
        return CL_ERR_INVALID;
    bool wrong;
    natsStatus s = put_expect(kv, key, value, len, true, 0, rev, &wrong);
    if (s == NATS_OK)
        return CL_OK;
    if (!wrong)
        return key_error(s, err, "create", key);
    /* The subject has a message: a live value, or a delete marker that we
     * may replace (compare-and-set on the marker's revision). One direct
     * read of the subject's last message says which; kvStore_History would
     * make and delete a consumer for it, and under load (eight creates at
     * once in the tests) that took over 5 s now and then. */
    bool deleted;
    uint64_t last_rev;
    s = last_message(kv, key, &deleted, &last_rev);
    if (s == NATS_NOT_FOUND)
        return cl_err_set(err, CL_ERR_CONFLICT, "key '%s' changed while creating it", key);
    if (s != NATS_OK)
        return key_error(s, err, "create", key);
    if (!deleted)
        return cl_err_set(err, CL_ERR_EXISTS, "key '%s' already exists", key);
    s = put_expect(kv, key, value, len, false, last_rev, rev, &wrong);
    if (s == NATS_OK)
        return CL_OK;
    if (wrong) {
        return cl_err_set(err, CL_ERR_EXISTS, "key '%s' already exists", key);
    }
    return key_error(s, err, "create", key);
}

cl_status cl_kv_put(cl_kv *kv, const char *key, const void *value, size_t len, uint64_t *rev,
                    cl_err *err)
{
    if (!key_ok(key, err))
        return CL_ERR_INVALID;
    uint64_t r = 0;
    natsStatus s = kvStore_Put(&r, kv->store, key, value, (int)len);
    if (s != NATS_OK)
        return key_error(s, err, "write", key);
    if (rev != NULL)
        *rev = r;
    return CL_OK;
}

cl_status cl_kv_update(cl_kv *kv, const char *key, const void *value, size_t len,
                       uint64_t last_rev, uint64_t *rev, cl_err *err)
{
    if (!key_ok(key, err))
        return CL_ERR_INVALID;
    bool wrong;
    natsStatus s = put_expect(kv, key, value, len, last_rev == 0, last_rev, rev, &wrong);
    if (s == NATS_OK)
        return CL_OK;
    if (wrong) {
        return cl_err_set(err, CL_ERR_CONFLICT,
                          "key '%s' was changed by someone else (its revision is no longer %llu)",
                          key, (unsigned long long)last_rev);
    }
    return key_error(s, err, "update", key);
}

cl_status cl_kv_delete(cl_kv *kv, const char *key, cl_err *err)
{
    if (!key_ok(key, err))
        return CL_ERR_INVALID;
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, kv->store, key);
    kvEntry_Destroy(e);
    if (s == NATS_NOT_FOUND) {
        return CL_OK;
    }
    s = kvStore_Delete(kv->store, key);
    if (s != NATS_OK)
        return key_error(s, err, "delete", key);
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

/* How long cl_kv_values waits for the next value before giving up. */
#define VALUES_NEXT_MS 5000

/* One pass over the current values of the keys matching pattern (their
 * keys alone when meta_only), ending at the watcher's marker. */
static cl_status values_pass(cl_kv *kv, const char *pattern, bool meta_only, cl_kv_value_cb cb,
                             void *closure, cl_err *err)
{
    kvWatchOptions o;
    kvWatchOptions_Init(&o);
    o.IgnoreDeletes = true;
    o.MetaOnly = meta_only;
    kvWatcher *w = NULL;
    natsStatus s = kvStore_Watch(&w, kv->store, pattern, &o);
    char what[300];
    if (s != NATS_OK) {
        snprintf(what, sizeof(what), "cannot read the state keys '%s'", pattern);
        return cl__bus_status(s, err, what);
    }
    for (;;) {
        kvEntry *e = NULL;
        s = kvWatcher_Next(&e, w, VALUES_NEXT_MS);
        if (s != NATS_OK || e == NULL) /* NULL: the last of the current values */
            break;
        int n = kvEntry_ValueLen(e);
        cb(closure, kvEntry_Key(e), meta_only ? "" : kvEntry_ValueString(e),
           meta_only || n < 0 ? 0 : (size_t)n, kvEntry_Revision(e));
        kvEntry_Destroy(e);
    }
    kvWatcher_Destroy(w);
    if (s != NATS_OK) {
        snprintf(what, sizeof(what), "reading the state keys '%s'", pattern);
        return cl__bus_status(s, err, what);
    }
    return CL_OK;
}

cl_status cl_kv_values(cl_kv *kv, const char *pattern, cl_kv_value_cb cb, void *closure,
                       cl_err *err)
{
    return values_pass(kv, pattern, false, cb, closure, err);
}

typedef struct {
    char **v;
    size_t n, cap;
    bool nomem;
} keys_acc;

static void add_key(void *closure, const char *key, const char *value, size_t len, uint64_t rev)
{
    (void)value;
    (void)len;
    (void)rev;
    keys_acc *acc = closure;
    if (acc->nomem)
        return;
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? 2 * acc->cap : 16;
        char **v = realloc(acc->v, cap * sizeof(*v));
        if (v == NULL) {
            acc->nomem = true;
            return;
        }
        acc->v = v;
        acc->cap = cap;
    }
    if ((acc->v[acc->n] = strdup(key)) == NULL)
        acc->nomem = true;
    else
        acc->n++;
}

cl_status cl_kv_keys(cl_kv *kv, const char *prefix, char ***keys, size_t *count, cl_err *err)
{
    *keys = NULL;
    *count = 0;
    /* A prefix of whole tokens ("app.", "model.m.") is a subject filter:
     * the server sends those keys only. Any other prefix filters here. */
    size_t plen = prefix ? strlen(prefix) : 0;
    char pattern[512];
    bool tokens = plen > 0 && prefix[plen - 1] == '.' && plen + 2 <= sizeof(pattern);
    snprintf(pattern, sizeof(pattern), "%s>", tokens ? prefix : "");
    keys_acc acc = {0};
    cl_status st = values_pass(kv, pattern, true, add_key, &acc, err);
    if (st == CL_OK && acc.nomem)
        st = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    if (st != CL_OK) {
        cl_kv_keys_free(acc.v, acc.n);
        return st;
    }
    size_t n = 0;
    for (size_t i = 0; i < acc.n; i++) {
        if (plen > 0 && strncmp(acc.v[i], prefix, plen) != 0)
            free(acc.v[i]);
        else
            acc.v[n++] = acc.v[i];
    }
    *keys = acc.v;
    *count = n;
    return CL_OK;
}

static void *watch_main(void *arg)
{
    cl_kv_watcher *w = arg;
    bool initial = true;
    while (!atomic_load(&w->stop)) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, w->w, 200);
        if (s == NATS_TIMEOUT) {
            continue;
        }
        if (s != NATS_OK) {
            if (!atomic_load(&w->stop))
                cl_warn("state watcher stopped: %s", natsStatus_GetText(s));
            break;
        }
        if (e == NULL) {
            if (initial) {
                initial = false;
                w->cb(w->closure, NULL, NULL, 0, 0, false);
            }
            continue;
        }
        kvOperation op = kvEntry_Operation(e);
        bool deleted = op == kvOp_Delete || op == kvOp_Purge;
        /* Before the marker only existing values count. */
        if (!(initial && deleted)) {
            int n = kvEntry_ValueLen(e);
            w->cb(w->closure, kvEntry_Key(e), deleted ? NULL : kvEntry_ValueString(e),
                  deleted || n < 0 ? 0 : (size_t)n, kvEntry_Revision(e), deleted);
        }
        kvEntry_Destroy(e);
    }
    return NULL;
}

cl_status cl_kv_watch(cl_kv_watcher **out, cl_kv *kv, const char *pattern, cl_kv_watch_cb cb,
                      void *closure, cl_err *err)
{
    cl_kv_watcher *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    w->cb = cb;
    w->closure = closure;
    atomic_init(&w->stop, false);
    natsStatus s = (pattern == NULL || strcmp(pattern, ">") == 0)
                       ? kvStore_WatchAll(&w->w, kv->store, NULL)
                       : kvStore_Watch(&w->w, kv->store, pattern, NULL);
    if (s != NATS_OK) {
        free(w);
        char what[300];
        snprintf(what, sizeof(what), "cannot watch state keys '%s'", pattern ? pattern : ">");
        return cl__bus_status(s, err, what);
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        kvWatcher_Destroy(w->w);
        free(w);
        return cl_err_set(err, CL_ERR_NOMEM, "cannot start the state watcher thread");
    }
    *out = w;
    return CL_OK;
}

void cl_kv_watch_free(cl_kv_watcher *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, true);
    kvWatcher_Stop(w->w);
    pthread_join(w->thread, NULL);
    kvWatcher_Destroy(w->w);
    free(w);
}
