/* Several managers sharing a cluster's replicas (see cl_placement.h). */
#include "cl_placement.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <xxhash.h>

#include "cl_clock.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_subject.h"

/* model:version as one number: the seed of the version's order of the
 * hosts, and the key of a version a manager cannot run. */
static uint64_t version_key(const char *model, const char *version)
{
    return XXH3_64bits_withSeed(version, strlen(version) + 1,
                                XXH3_64bits(model, strlen(model) + 1));
}

unsigned cl_place_share(const char *model, const char *version, unsigned wanted,
                        const char *const *hosts, const char *const *ids, size_t n, size_t me)
{
    if (n == 0 || me >= n)
        return 0;
    /* The version's own order of the hosts: by a hash of the version and
     * the host's name (not its id, so a manager that restarts keeps its
     * place), ties (two managers calling themselves the same) by id. */
    XXH64_hash_t seed = version_key(model, version);
    XXH64_hash_t mine = XXH3_64bits_withSeed(hosts[me], strlen(hosts[me]), seed);
    size_t before = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == me)
            continue;
        XXH64_hash_t h = XXH3_64bits_withSeed(hosts[i], strlen(hosts[i]), seed);
        if (h > mine || (h == mine && strcmp(ids[i], ids[me]) < 0))
            before++;
    }
    return (unsigned)(wanted / n + (before < wanted % n ? 1 : 0));
}

typedef struct {
    char host[CL_PLACE_HOST_MAX];
    char id[23];
    bool draining;
    uint64_t last_us;
    uint64_t cannot[CL_PLACE_CANNOT_MAX]; /* version_key of what it cannot run */
    size_t n_cannot;
} peer;

/* A version this manager cannot run, until when, and why. */
typedef struct {
    uint64_t key;
    uint64_t until_us;
    char model[CL_PLACE_NAME_MAX];
    char version[CL_PLACE_NAME_MAX];
    char why[160];
} cannot_entry;

struct cl_placement {
    cl_bus *bus;
    char host[CL_PLACE_HOST_MAX];
    char id[23];
    char subject[CL_SUBJECT_MAX];
    atomic_bool draining;
    uint64_t started_us;
    void (*changed)(void *closure);
    void *closure;
    cl_sub *sub;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t self_heard_us; /* our own last hello came back then (0: never) */
    peer *peers;
    size_t n, cap;
    cannot_entry cannot[CL_PLACE_CANNOT_MAX];
    size_t n_cannot;

    pthread_t thread;
    bool thread_started;
};

static bool printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* This manager's entry for key, or NULL. Called with mu held. */
static cannot_entry *find_cannot(cl_placement *p, uint64_t key)
{
    for (size_t i = 0; i < p->n_cannot; i++)
        if (p->cannot[i].key == key)
            return &p->cannot[i];
    return NULL;
}

/* c as JSON: {"model","version"} in a hello; with detail also "why" and
 * "retry_in_s" (from now_us), for cm.hosts. */
static cJSON *cannot_json(const cannot_entry *c, bool detail, uint64_t now_us)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddStringToObject(o, "version", c->version);
    if (detail) {
        cJSON_AddStringToObject(o, "why", c->why);
        uint64_t left = c->until_us > now_us ? c->until_us - now_us : 0;
        cJSON_AddNumberToObject(o, "retry_in_s", (double)(left / 1000000u));
    }
    return o;
}

/* Forgets the versions this manager could not run whose time is up: it
 * tries them again (the host may have been fixed). Called with mu held. */
static void expire_cannot(cl_placement *p, uint64_t now_us)
{
    for (size_t i = 0; i < p->n_cannot;) {
        if (now_us >= p->cannot[i].until_us) {
            cl_info("placement: this manager (%s) tries %s:%s again", p->host,
                    p->cannot[i].model, p->cannot[i].version);
            p->cannot[i] = p->cannot[--p->n_cannot];
        } else {
            i++;
        }
    }
}

static void hello(cl_placement *p)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    cJSON_AddStringToObject(o, "host", p->host);
    cJSON_AddStringToObject(o, "id", p->id);
    cJSON_AddBoolToObject(o, "draining", atomic_load(&p->draining));
    cJSON *cannot = cJSON_AddArrayToObject(o, "cannot");
    pthread_mutex_lock(&p->mu);
    expire_cannot(p, cl_mono_us());
    for (size_t i = 0; cannot != NULL && i < p->n_cannot; i++) {
        cJSON *v = cannot_json(&p->cannot[i], false, 0);
        if (v == NULL)
            break;
        cJSON_AddItemToArray(cannot, v);
    }
    pthread_mutex_unlock(&p->mu);
    char *buf = cJSON_PrintUnformatted(o);
    if (buf != NULL) {
        cl_status s = cl_bus_publish(p->bus, p->subject, buf, strlen(buf));
        if (s != CL_OK)
            CL_LOG_LIMITED(CL_LOG_WARN, "cannot say hello on %s: %s", p->subject,
                           cl_status_text(s));
    }
    cJSON_free(buf);
    cJSON_Delete(o);
}

/* A hello's "cannot" (absent from managers older than it: nothing): the
 * keys of at most CL_PLACE_CANNOT_MAX well-formed entries. */
static size_t read_cannot(const cJSON *o, uint64_t *keys)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "cannot"), *v;
    size_t n = 0;
    if (!cJSON_IsArray(arr))
        return 0;
    cJSON_ArrayForEach(v, arr)
    {
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(v, "model");
        const cJSON *version = cJSON_GetObjectItemCaseSensitive(v, "version");
        if (n == CL_PLACE_CANNOT_MAX || !cJSON_IsString(model) || !cJSON_IsString(version))
            continue;
        keys[n++] = version_key(model->valuestring, version->valuestring);
    }
    return n;
}

/* Another manager's hello: recorded (a new one, or one that starts or
 * stops draining, changes the placement). */
static void on_hello(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    cl_placement *p = closure;
    cJSON *o = NULL;
    const char *host = NULL, *id = NULL;
    bool draining = false;
    cl_err err;
    if (cl_json_parse_object(&o, cl_msg_data(msg), cl_msg_len(msg), &err) != CL_OK ||
        cl_json_get_string(o, "host", &host, &err) != CL_OK ||
        cl_json_get_string(o, "id", &id, &err) != CL_OK ||
        cl_json_get_bool(o, "draining", &draining, &err) != CL_OK) {
        CL_LOG_LIMITED(CL_LOG_WARN, "ignoring a malformed manager hello: %s", err.msg);
    } else if (!printable(host, CL_PLACE_HOST_MAX) || !printable(id, 23)) {
        CL_LOG_LIMITED(CL_LOG_WARN, "ignoring a manager hello with a bad host or id");
    } else if (strcmp(id, p->id) == 0) {
        pthread_mutex_lock(&p->mu);
        p->self_heard_us = cl_mono_us();
        pthread_mutex_unlock(&p->mu);
    } else {
        bool changed = false;
        pthread_mutex_lock(&p->mu);
        peer *e = NULL;
        for (size_t i = 0; i < p->n && e == NULL; i++)
            if (strcmp(p->peers[i].id, id) == 0)
                e = &p->peers[i];
        if (e == NULL && p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 8;
            peer *np = cap <= 4096 ? realloc(p->peers, cap * sizeof(*np)) : NULL;
            if (np != NULL) {
                p->peers = np;
                p->cap = cap;
            }
        }
        if (e == NULL && p->n < p->cap) {
            e = &p->peers[p->n++];
            memset(e, 0, sizeof(*e));
            snprintf(e->id, sizeof(e->id), "%s", id);
            snprintf(e->host, sizeof(e->host), "%s", host);
            e->draining = draining;
            changed = true;
            cl_info("placement: manager %s (%s) joined", host, id);
        }
        if (e != NULL) {
            if (e->draining != draining) {
                changed = true;
                cl_info("placement: manager %s %s draining", e->host,
                        draining ? "is" : "stopped");
            }
            e->draining = draining;
            e->last_us = cl_mono_us();
            uint64_t keys[CL_PLACE_CANNOT_MAX];
            size_t nk = read_cannot(o, keys);
            if (nk != e->n_cannot || memcmp(keys, e->cannot, nk * sizeof(*keys)) != 0) {
                changed = true;
                memcpy(e->cannot, keys, nk * sizeof(*keys));
                e->n_cannot = nk;
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (changed && p->changed != NULL)
            p->changed(p->closure);
    }
    cJSON_Delete(o);
    cl_msg_free(msg);
}

/* Says hello, and forgets managers not heard for the timeout. */
static void *hello_main(void *arg)
{
    cl_placement *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pthread_mutex_unlock(&p->mu);
        hello(p);
        pthread_mutex_lock(&p->mu);
        uint64_t now = cl_mono_us();
        bool gone = false;
        /* While our own hellos do not come back, the bus does not carry
         * messages (a stalled or cut-off server): the others' silence
         * says nothing about them. */
        bool flowing = now - p->self_heard_us <= (uint64_t)CL_PLACE_PEER_TIMEOUT_MS * 1000u;
        for (size_t i = 0; flowing && i < p->n;) {
            if (now - p->peers[i].last_us > (uint64_t)CL_PLACE_PEER_TIMEOUT_MS * 1000u) {
                cl_warn("placement: manager %s (%s) not heard for %d ms: its replicas are "
                        "placed on the others",
                        p->peers[i].host, p->peers[i].id, CL_PLACE_PEER_TIMEOUT_MS);
                p->peers[i] = p->peers[--p->n];
                gone = true;
            } else {
                i++;
            }
        }
        if (gone && p->changed != NULL) {
            pthread_mutex_unlock(&p->mu);
            p->changed(p->closure);
            pthread_mutex_lock(&p->mu);
        }
        if (p->stop)
            break;
        struct timespec ts = cl_mono_deadline(CL_PLACE_HELLO_MS);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

cl_status cl_placement_start(cl_placement **out, cl_bus *bus, const char *host,
                             void (*changed)(void *closure), void *closure, cl_err *err)
{
    if (host == NULL || !printable(host, CL_PLACE_HOST_MAX))
        return cl_err_set(err, CL_ERR_INVALID,
                          "the host name must be 1 to %d printable characters, got '%s'",
                          CL_PLACE_HOST_MAX - 1, host ? host : "");
    cl_placement *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    p->bus = bus;
    snprintf(p->host, sizeof(p->host), "%s", host);
    cl_bus_new_token(p->id);
    p->changed = changed;
    p->closure = closure;
    p->started_us = cl_mono_us();
    atomic_init(&p->draining, false);
    pthread_mutex_init(&p->mu, NULL);
    cl_cond_init_monotonic(&p->cv);
    cl_status s = cl_subj_cm(p->subject, cl_bus_prefix(bus), "hello", err);
    if (s == CL_OK) {
        s = cl_bus_subscribe(&p->sub, bus, p->subject, NULL, on_hello, p);
        if (s != CL_OK)
            cl_err_set(err, s, "cannot subscribe to %s: %s", p->subject, cl_status_text(s));
    }
    if (s == CL_OK) {
        if (pthread_create(&p->thread, NULL, hello_main, p) != 0)
            s = cl_err_set(err, CL_ERR_NOMEM, "cannot start the placement thread");
        else
            p->thread_started = true;
    }
    if (s != CL_OK) {
        cl_placement_free(p);
        return s;
    }
    *out = p;
    return CL_OK;
}

void cl_placement_free(cl_placement *p)
{
    if (p == NULL)
        return;
    cl_sub_free(p->sub);
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->peers);
    free(p);
}

void cl_placement_set_draining(cl_placement *p, bool draining)
{
    if (atomic_exchange(&p->draining, draining) != draining) {
        cl_info("placement: this manager (%s) %s", p->host,
                draining ? "drains: its replicas move to the other managers"
                         : "takes replicas again");
        hello(p);
    }
}

bool cl_placement_draining(cl_placement *p)
{
    return atomic_load(&p->draining);
}

bool cl_placement_bus_flowing(cl_placement *p, uint64_t now_us)
{
    pthread_mutex_lock(&p->mu);
    uint64_t heard = p->self_heard_us;
    pthread_mutex_unlock(&p->mu);
    uint64_t limit = (uint64_t)CL_PLACE_PEER_TIMEOUT_MS * 1000u;
    /* Just started: nothing came back yet, and nothing is known to be wrong. */
    if (heard == 0)
        return now_us - p->started_us <= limit + (uint64_t)CL_PLACE_SETTLE_MS * 1000u;
    return now_us - heard <= limit;
}

bool cl_placement_settled(cl_placement *p, uint64_t now_us)
{
    return now_us - p->started_us >= (uint64_t)CL_PLACE_SETTLE_MS * 1000u;
}

const char *cl_placement_id(const cl_placement *p)
{
    return p->id;
}

/* Whether peer e takes replicas of the version of key. */
static bool peer_takes(const peer *e, uint64_t key)
{
    if (e->draining)
        return false;
    for (size_t i = 0; i < e->n_cannot; i++)
        if (e->cannot[i] == key)
            return false;
    return true;
}


unsigned cl_placement_share(cl_placement *p, const char *model, const char *version,
                            unsigned wanted, uint64_t now_us, size_t *others)
{
    bool draining = atomic_load(&p->draining);
    uint64_t key = version_key(model, version);
    pthread_mutex_lock(&p->mu);
    expire_cannot(p, now_us);
    *others = p->n;
    size_t n = 0;
    const char **hosts = malloc((p->n + 1) * sizeof(*hosts));
    const char **ids = malloc((p->n + 1) * sizeof(*ids));
    unsigned share = 0;
    if (hosts != NULL && ids != NULL) {
        /* The managers that take replicas and can run this version; when
         * none can, every one that takes replicas (each tries, with its
         * backoff, and says why it fails) rather than nobody. */
        bool me_can = find_cannot(p, key) == NULL;
        bool any_can = !draining && me_can;
        for (size_t i = 0; i < p->n && !any_can; i++)
            any_can = peer_takes(&p->peers[i], key);
        for (size_t i = 0; i < p->n; i++) {
            if (!p->peers[i].draining && (!any_can || peer_takes(&p->peers[i], key))) {
                hosts[n] = p->peers[i].host;
                ids[n++] = p->peers[i].id;
            }
        }
        if (!draining && (me_can || !any_can)) {
            hosts[n] = p->host;
            ids[n] = p->id;
            share = cl_place_share(model, version, wanted, hosts, ids, n + 1, n);
        }
    } else {
        share = draining ? 0 : wanted; /* out of memory: as if alone */
    }
    pthread_mutex_unlock(&p->mu);
    free(hosts);
    free(ids);
    return share;
}

size_t cl_placement_takers(cl_placement *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += !p->peers[i].draining;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void cl_placement_peers_json(cl_placement *p, uint64_t now_us, void *cjson_array)
{
    cJSON *arr = cjson_array;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            break;
        cJSON_AddStringToObject(o, "host", p->peers[i].host);
        cJSON_AddStringToObject(o, "id", p->peers[i].id);
        cJSON_AddBoolToObject(o, "draining", p->peers[i].draining);
        cJSON_AddNumberToObject(o, "heard_ms_ago",
                                (double)(now_us - p->peers[i].last_us) / 1000.0);
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&p->mu);
}

void cl_placement_cannot_run(cl_placement *p, const char *model, const char *version,
                             const char *why, uint64_t now_us)
{
    uint64_t key = version_key(model, version);
    bool fresh = false;
    pthread_mutex_lock(&p->mu);
    cannot_entry *e = find_cannot(p, key);
    if (e == NULL && p->n_cannot < CL_PLACE_CANNOT_MAX) {
        e = &p->cannot[p->n_cannot++];
        fresh = true;
    }
    if (e != NULL) {
        e->key = key;
        e->until_us = now_us + (uint64_t)CL_PLACE_CANNOT_RETRY_MS * 1000u;
        snprintf(e->model, sizeof(e->model), "%s", model);
        snprintf(e->version, sizeof(e->version), "%s", version);
        snprintf(e->why, sizeof(e->why), "%s", why);
    }
    pthread_mutex_unlock(&p->mu);
    if (fresh) {
        cl_warn("placement: this manager (%s) cannot run %s:%s (%s): its replicas go to the "
                "managers that can, and it tries again in %d s",
                p->host, model, version, why, CL_PLACE_CANNOT_RETRY_MS / 1000);
        hello(p);
    } else if (e == NULL) {
        CL_LOG_LIMITED(CL_LOG_WARN, "placement: already %d versions this manager cannot run; "
                       "%s:%s is not said",
                       CL_PLACE_CANNOT_MAX, model, version);
    }
}

void cl_placement_cannot_json(cl_placement *p, uint64_t now_us, void *cjson_array)
{
    cJSON *arr = cjson_array;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_cannot; i++) {
        cJSON *o = cannot_json(&p->cannot[i], true, now_us);
        if (o == NULL)
            break;
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&p->mu);
}
