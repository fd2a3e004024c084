/* A live copy of the cluster state, fed by a KV watch on ">" (cl_view.h).
 *
 * The watcher thread owned by cl_kv_watch is the only writer: it decodes
 * each change, applies it under the write lock, releases the lock and then
 * calls on_change. Readers hold the read lock while they look things up.
 * Entries live in arrays (iteration, removal by swapping the last in);
 * each array has a hash index from name (and version) to position, so the
 * lookups made for every query cost the same with 1 or 1000 applications.
 *
 * During the initial load no per-key on_change is made; once it is done
 * on_change(NULL) is called, after cl_view_start has stored *out, so the
 * callback may already use the view. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "cl_clock.h"
#include "cl_log.h"
#include "cl_view.h"

#include <xxhash.h>

#define INITIAL_LOAD_TIMEOUT_S 10

typedef struct {
    char *model;
    char *version;
} current_entry;

/* Which array an index is over. */
enum { IX_APP, IX_MODEL, IX_CURRENT, IX_COUNT };

/* Open addressing with linear probing, at most half full. A slot holds a
 * position + 1 (0: empty). Adding an entry adds its slot; a removal (an
 * administrator's act, rare) rebuilds the index whole. cap 0: no index
 * (out of memory when it was built): lookups scan the array instead. */
typedef struct {
    uint32_t *slot;
    size_t cap;
} name_index;

struct cl_view {
    pthread_rwlock_t lock;
    name_index ix[IX_COUNT];
    cl_app *apps;
    size_t n_apps, cap_apps;
    cl_model *models;
    size_t n_models, cap_models;
    current_entry *currents;
    size_t n_currents, cap_currents;

    cl_kv_watcher *watch;
    cl_view_change_cb on_change;
    void *closure;

    /* Initial-load handshake between cl_view_start and the watcher. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool loaded;    /* watcher saw the NULL key */
    bool published; /* start stored *out: callbacks may run */
    bool abandoned; /* start gave up: never wait for it */
    bool held;      /* cl_view_hold: the watcher waits before applying a change */
    pthread_t starter; /* thread in cl_view_start, which must never wait on itself */
};

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

/* The key of entry i of an array: a name, and for models a version. */
static void key_at(const cl_view *v, int k, size_t i, const char **a, const char **b)
{
    *b = NULL;
    if (k == IX_APP) {
        *a = v->apps[i].name;
    } else if (k == IX_MODEL) {
        *a = v->models[i].name;
        *b = v->models[i].version;
    } else {
        *a = v->currents[i].model;
    }
}

static size_t count_of(const cl_view *v, int k)
{
    return k == IX_APP ? v->n_apps : k == IX_MODEL ? v->n_models : v->n_currents;
}

static size_t key_hash(const char *a, const char *b)
{
    XXH64_hash_t h = XXH3_64bits(a, strlen(a));
    return (size_t)(b != NULL ? XXH3_64bits_withSeed(b, strlen(b), h) : h);
}

static bool key_is(const cl_view *v, int k, size_t i, const char *a, const char *b)
{
    const char *ka, *kb;
    key_at(v, k, i, &ka, &kb);
    return strcmp(ka, a) == 0 && (b == NULL || strcmp(kb, b) == 0);
}

static ssize_t find(const cl_view *v, int k, const char *a, const char *b)
{
    const name_index *ix = &v->ix[k];
    if (ix->cap == 0) {
        for (size_t i = 0; i < count_of(v, k); i++)
            if (key_is(v, k, i, a, b))
                return (ssize_t)i;
        return -1;
    }
    size_t mask = ix->cap - 1;
    for (size_t s = key_hash(a, b) & mask; ix->slot[s] != 0; s = (s + 1) & mask)
        if (key_is(v, k, ix->slot[s] - 1, a, b))
            return (ssize_t)(ix->slot[s] - 1);
    return -1;
}

static void index_put(name_index *ix, const cl_view *v, int k, size_t i)
{
    const char *a, *b;
    key_at(v, k, i, &a, &b);
    size_t mask = ix->cap - 1, s = key_hash(a, b) & mask;
    while (ix->slot[s] != 0)
        s = (s + 1) & mask;
    ix->slot[s] = (uint32_t)(i + 1);
}

/* Builds array k's index again, sized for what it holds now. */
static void index_rebuild(cl_view *v, int k)
{
    name_index *ix = &v->ix[k];
    size_t n = count_of(v, k), cap = 16;
    while (cap < 2 * (n + 1))
        cap *= 2;
    free(ix->slot);
    ix->cap = 0;
    ix->slot = calloc(cap, sizeof(*ix->slot));
    if (ix->slot == NULL || n >= UINT32_MAX) {
        cl_warn("view: out of memory for an index: lookups scan instead");
        return;
    }
    ix->cap = cap;
    for (size_t i = 0; i < n; i++)
        index_put(ix, v, k, i);
}

/* Entry i of array k was just appended. */
static void index_added(cl_view *v, int k, size_t i)
{
    name_index *ix = &v->ix[k];
    if (ix->cap == 0 || 2 * (i + 1) > ix->cap)
        index_rebuild(v, k);
    else
        index_put(ix, v, k, i);
}

static ssize_t find_app(const cl_view *v, const char *name)
{
    return find(v, IX_APP, name, NULL);
}

static ssize_t find_model(const cl_view *v, const char *name, const char *version)
{
    return find(v, IX_MODEL, name, version);
}

static ssize_t find_current(const cl_view *v, const char *model)
{
    return find(v, IX_CURRENT, model, NULL);
}

/* Each apply_* runs under the write lock and takes ownership of what it
 * is given. Removal swaps the last element in (order is not kept). */
static void apply_app(cl_view *v, const char *name, cl_app *app)
{
    ssize_t i = find_app(v, name);
    if (app == NULL) {
        if (i >= 0) {
            cl_app_deinit(&v->apps[i]);
            v->apps[i] = v->apps[--v->n_apps];
            index_rebuild(v, IX_APP);
        }
        return;
    }
    if (i >= 0) {
        cl_app_deinit(&v->apps[i]);
        v->apps[i] = *app;
    } else if (grow((void **)&v->apps, &v->cap_apps, v->n_apps, sizeof(cl_app))) {
        v->apps[v->n_apps++] = *app;
        index_added(v, IX_APP, v->n_apps - 1);
    } else {
        cl_error("view: out of memory adding application '%s'", name);
        cl_app_deinit(app);
    }
}

static void apply_model(cl_view *v, const char *name, const char *version, cl_model *m)
{
    ssize_t i = find_model(v, name, version);
    if (m == NULL) {
        if (i >= 0) {
            cl_model_deinit(&v->models[i]);
            v->models[i] = v->models[--v->n_models];
            index_rebuild(v, IX_MODEL);
        }
        return;
    }
    if (i >= 0) {
        cl_model_deinit(&v->models[i]);
        v->models[i] = *m;
    } else if (grow((void **)&v->models, &v->cap_models, v->n_models, sizeof(cl_model))) {
        v->models[v->n_models++] = *m;
        index_added(v, IX_MODEL, v->n_models - 1);
    } else {
        cl_error("view: out of memory adding model '%s:%s'", name, version);
        cl_model_deinit(m);
    }
}

static void apply_current(cl_view *v, const char *model, char *version)
{
    ssize_t i = find_current(v, model);
    if (version == NULL) {
        if (i >= 0) {
            free(v->currents[i].model);
            free(v->currents[i].version);
            v->currents[i] = v->currents[--v->n_currents];
            index_rebuild(v, IX_CURRENT);
        }
        return;
    }
    if (i >= 0) {
        free(v->currents[i].version);
        v->currents[i].version = version;
        return;
    }
    char *m = strdup(model);
    if (m == NULL ||
        !grow((void **)&v->currents, &v->cap_currents, v->n_currents, sizeof(current_entry))) {
        cl_error("view: out of memory adding the current version of '%s'", model);
        free(m);
        free(version);
        return;
    }
    v->currents[v->n_currents++] = (current_entry){m, version};
    index_added(v, IX_CURRENT, v->n_currents - 1);
}

/* Splits "model.<name>.<version>" (names never hold '.'). */
static bool split_model_key(const char *rest, char *name, size_t cap, const char **version)
{
    const char *dot = strchr(rest, '.');
    if (dot == NULL || (size_t)(dot - rest) >= cap || dot[1] == '\0' || strchr(dot + 1, '.'))
        return false;
    memcpy(name, rest, (size_t)(dot - rest));
    name[dot - rest] = '\0';
    *version = dot + 1;
    return true;
}

/* Decodes and applies one change. Returns false when the key is not ours
 * or its value is bad (logged; the view keeps its previous entry). */
static bool apply_change(cl_view *v, const char *key, const char *value, size_t len, bool deleted)
{
    cl_err err;
    if (strncmp(key, "app.", 4) == 0) {
        const char *name = key + 4;
        cl_app app;
        if (!deleted) {
            if (cl_app_from_json(&app, value, len, &err) != CL_OK) {
                CL_LOG_LIMITED(CL_LOG_WARN, "view: ignoring bad value of '%s': %s", key,
                               err.msg);
                return false;
            }
            if (strcmp(app.name, name) != 0) {
                CL_LOG_LIMITED(CL_LOG_WARN, "view: ignoring '%s': it holds application '%s'",
                               key, app.name);
                cl_app_deinit(&app);
                return false;
            }
        }
        pthread_rwlock_wrlock(&v->lock);
        apply_app(v, name, deleted ? NULL : &app);
        pthread_rwlock_unlock(&v->lock);
        return true;
    }
    if (strncmp(key, "model.", 6) == 0) {
        char name[CL_KEY_MAX];
        const char *version;
        if (!split_model_key(key + 6, name, sizeof(name), &version)) {
            CL_LOG_LIMITED(CL_LOG_WARN, "view: ignoring malformed key '%s'", key);
            return false;
        }
        cl_model m;
        if (!deleted) {
            if (cl_model_from_json(&m, value, len, &err) != CL_OK) {
                CL_LOG_LIMITED(CL_LOG_WARN, "view: ignoring bad value of '%s': %s", key,
                               err.msg);
                return false;
            }
            if (strcmp(m.name, name) != 0 || strcmp(m.version, version) != 0) {
                CL_LOG_LIMITED(CL_LOG_WARN, "view: ignoring '%s': it holds model '%s:%s'",
                               key, m.name, m.version);
                cl_model_deinit(&m);
                return false;
            }
        }
        pthread_rwlock_wrlock(&v->lock);
        apply_model(v, name, version, deleted ? NULL : &m);
        pthread_rwlock_unlock(&v->lock);
        return true;
    }
    if (strncmp(key, "current.", 8) == 0) {
        char *version = NULL;
        if (!deleted) {
            version = cl_current_from_json(value, len, &err);
            if (version == NULL) {
                CL_LOG_LIMITED(CL_LOG_WARN, "view: ignoring bad value of '%s': %s", key,
                               err.msg);
                return false;
            }
        }
        pthread_rwlock_wrlock(&v->lock);
        apply_current(v, key + 8, version);
        pthread_rwlock_unlock(&v->lock);
        return true;
    }
    cl_debug("view: ignoring unknown key '%s'", key);
    return false;
}

static void on_watch(void *closure, const char *key, const char *value, size_t len, uint64_t rev,
                     bool deleted)
{
    (void)rev;
    cl_view *v = closure;
    if (key == NULL) {
        /* Initial load done: wake cl_view_start, and wait until it has
         * published the view before telling the owner. */
        pthread_mutex_lock(&v->mu);
        v->loaded = true;
        pthread_cond_broadcast(&v->cond);
        while (!v->published && !v->abandoned && !pthread_equal(pthread_self(), v->starter))
            pthread_cond_wait(&v->cond, &v->mu);
        bool tell = v->published;
        pthread_mutex_unlock(&v->mu);
        if (tell && v->on_change)
            v->on_change(v->closure, NULL);
        return;
    }
    pthread_mutex_lock(&v->mu);
    while (v->held && !v->abandoned)
        pthread_cond_wait(&v->cond, &v->mu);
    pthread_mutex_unlock(&v->mu);
    bool changed = apply_change(v, key, value, len, deleted);
    pthread_mutex_lock(&v->mu);
    bool tell = v->published;
    pthread_mutex_unlock(&v->mu);
    if (changed && tell && v->on_change)
        v->on_change(v->closure, key);
}

static void free_data(cl_view *v)
{
    for (size_t i = 0; i < v->n_apps; i++)
        cl_app_deinit(&v->apps[i]);
    for (size_t i = 0; i < v->n_models; i++)
        cl_model_deinit(&v->models[i]);
    for (size_t i = 0; i < v->n_currents; i++) {
        free(v->currents[i].model);
        free(v->currents[i].version);
    }
    free(v->apps);
    free(v->models);
    free(v->currents);
    for (int k = 0; k < IX_COUNT; k++)
        free(v->ix[k].slot);
}

cl_status cl_view_start(cl_view **out, cl_kv *kv, cl_view_change_cb on_change, void *closure,
                        cl_err *err)
{
    cl_view *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    v->on_change = on_change;
    v->closure = closure;
    /* Writers first: a stream of readers on the hot path must not starve
     * the watcher. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&v->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&v->mu, NULL);
    cl_cond_init_monotonic(&v->cond);

    v->starter = pthread_self();
    cl_status st = cl_kv_watch(&v->watch, kv, ">", on_watch, v, err);
    if (st != CL_OK) {
        cl_err_prefix(err, "cannot watch the cluster state");
        v->watch = NULL;
        cl_view_free(v);
        return st;
    }

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += INITIAL_LOAD_TIMEOUT_S;
    pthread_mutex_lock(&v->mu);
    while (!v->loaded) {
        if (pthread_cond_timedwait(&v->cond, &v->mu, &deadline) == ETIMEDOUT && !v->loaded)
            break;
    }
    bool loaded = v->loaded;
    if (loaded) {
        *out = v;
        v->published = true;
    } else {
        v->abandoned = true;
    }
    pthread_cond_broadcast(&v->cond);
    pthread_mutex_unlock(&v->mu);
    if (!loaded) {
        cl_view_free(v);
        return cl_err_set(err, CL_ERR_TIMEOUT,
                          "the cluster state did not load within %d s (is JetStream slow or "
                          "unavailable?)",
                          INITIAL_LOAD_TIMEOUT_S);
    }
    return CL_OK;
}

void cl_view_free(cl_view *v)
{
    if (v == NULL)
        return;
    if (v->watch != NULL) {
        /* Unblocks a watcher waiting in the handshake, then joins it. */
        pthread_mutex_lock(&v->mu);
        v->abandoned = true;
        pthread_cond_broadcast(&v->cond);
        pthread_mutex_unlock(&v->mu);
        cl_kv_watch_free(v->watch);
    }
    free_data(v);
    pthread_rwlock_destroy(&v->lock);
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->cond);
    free(v);
}

void cl_view_hold(cl_view *v, bool hold)
{
    pthread_mutex_lock(&v->mu);
    v->held = hold;
    pthread_cond_broadcast(&v->cond);
    pthread_mutex_unlock(&v->mu);
}

void cl_view_rdlock(cl_view *v)
{
    pthread_rwlock_rdlock(&v->lock);
}

void cl_view_unlock(cl_view *v)
{
    pthread_rwlock_unlock(&v->lock);
}

const cl_app *cl_view_app(const cl_view *v, const char *name)
{
    ssize_t i = name ? find_app(v, name) : -1;
    return i >= 0 ? &v->apps[i] : NULL;
}

const cl_model *cl_view_model(const cl_view *v, const char *name, const char *version)
{
    ssize_t i = (name && version) ? find_model(v, name, version) : -1;
    return i >= 0 ? &v->models[i] : NULL;
}

const char *cl_view_current(const cl_view *v, const char *model)
{
    ssize_t i = model ? find_current(v, model) : -1;
    return i >= 0 ? v->currents[i].version : NULL;
}

size_t cl_view_app_count(const cl_view *v)
{
    return v->n_apps;
}

const cl_app *cl_view_app_at(const cl_view *v, size_t i)
{
    return i < v->n_apps ? &v->apps[i] : NULL;
}

size_t cl_view_model_count(const cl_view *v)
{
    return v->n_models;
}

const cl_model *cl_view_model_at(const cl_view *v, size_t i)
{
    return i < v->n_models ? &v->models[i] : NULL;
}
