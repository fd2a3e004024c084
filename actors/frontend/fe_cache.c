/* The prediction cache (see fe_cache.h): a chained hash table of entries,
 * READY entries on an LRU list, byte accounting. */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cl_log.h"
#include "fe_cache.h"

enum { PENDING, READY };

struct cl_fe_cache_entry {
    cl_fe_cache_entry *next;                /* hash chain */
    cl_fe_cache_entry *lru_prev, *lru_next; /* READY only; head = most recent */
    uint64_t hash;
    size_t cost;      /* counted bytes */
    uint32_t input_len;
    uint16_t model_len, version_len;
    uint8_t input_type;
    uint8_t state;
    /* READY */
    char *out;
    size_t out_len;
    /* PENDING */
    uint64_t task_id, task_deadline;
    cl_fe_cache_waiter *w;
    size_t n_w, cap_w;
    /* model '\0' version '\0' input */
    char key[];
};

/* The overhead we count must cover what an entry really costs besides its
 * key and output: its header and its bucket slot (the waiter array of a
 * pending entry is transient and not counted). */
static_assert(sizeof(cl_fe_cache_entry) + sizeof(void *) <= CL_FE_CACHE_OVERHEAD,
              "CL_FE_CACHE_OVERHEAD is smaller than an entry");

struct cl_fe_cache {
    pthread_mutex_t mu;
    cl_fe_cache_entry **buckets;
    size_t mask; /* buckets - 1, a power of two minus one */
    size_t entries, pending, bytes, capacity;
    uint64_t evictions, lookups, hits;
    cl_fe_cache_entry *lru_head, *lru_tail;
};

#define FIRST_BUCKETS 1024u

uint64_t cl_fe_cache_hash(const cl_fe_cache_key *k)
{
    /* Each part seeds the next (no state struct: its layout is not part
     * of the shared library's ABI). The NULs keep ("ab","c") and ("a","bc")
     * apart; a hit compares the whole key anyway. */
    uint64_t h = XXH3_64bits(k->model, strlen(k->model) + 1);
    h = XXH3_64bits_withSeed(k->version, strlen(k->version) + 1, h);
    h = XXH3_64bits_withSeed(&k->input_type, 1, h);
    return XXH3_64bits_withSeed(k->input_len > 0 ? k->input : "", k->input_len, h);
}

cl_status cl_fe_cache_new(cl_fe_cache **out, size_t capacity)
{
    cl_fe_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return CL_ERR_NOMEM;
    c->buckets = calloc(FIRST_BUCKETS, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return CL_ERR_NOMEM;
    }
    c->mask = FIRST_BUCKETS - 1;
    c->capacity = capacity;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return CL_OK;
}

static void entry_free(cl_fe_cache_entry *e)
{
    free(e->out);
    free(e->w);
    free(e);
}

void cl_fe_cache_free(cl_fe_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i <= c->mask; i++) {
        cl_fe_cache_entry *e = c->buckets[i];
        while (e != NULL) {
            cl_fe_cache_entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static size_t key_len(const cl_fe_cache_entry *e)
{
    return (size_t)e->model_len + 1 + e->version_len + 1 + e->input_len;
}

static bool same_key(const cl_fe_cache_entry *e, const cl_fe_cache_key *k, size_t ml, size_t vl)
{
    return e->hash == k->hash && e->input_type == k->input_type && e->model_len == ml &&
           e->version_len == vl && e->input_len == k->input_len &&
           memcmp(e->key, k->model, ml) == 0 && memcmp(e->key + ml + 1, k->version, vl) == 0 &&
           (k->input_len == 0 || memcmp(e->key + ml + vl + 2, k->input, k->input_len) == 0);
}

static void lru_unlink(cl_fe_cache *c, cl_fe_cache_entry *e)
{
    if (e->lru_prev != NULL)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next != NULL)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(cl_fe_cache *c, cl_fe_cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head != NULL)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (c->lru_tail == NULL)
        c->lru_tail = e;
}

/* Unchains e, takes it off the LRU list and the counts, and frees it. */
static void remove_entry(cl_fe_cache *c, cl_fe_cache_entry *e)
{
    cl_fe_cache_entry **p = &c->buckets[e->hash & c->mask];
    while (*p != NULL && *p != e)
        p = &(*p)->next;
    if (*p == e)
        *p = e->next;
    if (e->state == READY)
        lru_unlink(c, e);
    else
        c->pending--;
    c->entries--;
    c->bytes -= e->cost;
    entry_free(e);
}

/* Evicts READY entries, least recently used first, until need more bytes
 * fit. false when they cannot (pending entries fill the rest). */
static bool make_room(cl_fe_cache *c, size_t need)
{
    if (need > c->capacity)
        return false;
    while (c->bytes + need > c->capacity) {
        cl_fe_cache_entry *victim = c->lru_tail; /* READY only: pending ones are not listed */
        if (victim == NULL)
            return false;
        remove_entry(c, victim);
        c->evictions++;
    }
    return true;
}

/* Doubles the buckets when entries outnumber them (best effort). */
static void maybe_grow(cl_fe_cache *c)
{
    if (c->entries <= c->mask + 1)
        return;
    size_t n = (c->mask + 1) * 2;
    cl_fe_cache_entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i <= c->mask; i++) {
        cl_fe_cache_entry *e = c->buckets[i];
        while (e != NULL) {
            cl_fe_cache_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->mask = n - 1;
}

static bool add_waiter(cl_fe_cache_entry *e, cl_fe_cache_waiter w)
{
    if (e->n_w == e->cap_w) {
        size_t ncap = e->cap_w ? e->cap_w * 2 : 4;
        cl_fe_cache_waiter *v = realloc(e->w, ncap * sizeof(*v));
        if (v == NULL)
            return false;
        e->w = v;
        e->cap_w = ncap;
    }
    e->w[e->n_w++] = w;
    return true;
}

cl_fe_cache_outcome cl_fe_cache_lookup(cl_fe_cache *c, const cl_fe_cache_key *k,
                                       cl_fe_cache_waiter w, cl_fe_cache_entry **entry,
                                       const char **out, size_t *out_len)
{
    size_t ml = strlen(k->model), vl = strlen(k->version);
    cl_fe_cache_outcome r = CL_FE_CACHE_BYPASS;
    *entry = NULL;
    pthread_mutex_lock(&c->mu);
    c->lookups++;
    cl_fe_cache_entry *e = c->buckets[k->hash & c->mask];
    while (e != NULL && !same_key(e, k, ml, vl))
        e = e->next;
    if (e != NULL && e->state == READY) {
        c->hits++;
        lru_unlink(c, e);
        lru_push_front(c, e);
        *out = e->out;
        *out_len = e->out_len;
        r = CL_FE_CACHE_HIT;
    } else if (e != NULL) {
        c->hits++;
        if (add_waiter(e, w)) {
            *entry = e;
            r = CL_FE_CACHE_JOINED;
        }
    } else if (ml <= UINT16_MAX && vl <= UINT16_MAX && k->input_len <= UINT32_MAX) {
        size_t klen = ml + vl + 2 + k->input_len;
        size_t cost = klen + CL_FE_CACHE_OVERHEAD;
        if (make_room(c, cost) && (e = calloc(1, sizeof(*e) + klen)) != NULL) {
            e->hash = k->hash;
            e->cost = cost;
            e->model_len = (uint16_t)ml;
            e->version_len = (uint16_t)vl;
            e->input_len = (uint32_t)k->input_len;
            e->input_type = k->input_type;
            e->state = PENDING;
            memcpy(e->key, k->model, ml + 1);
            memcpy(e->key + ml + 1, k->version, vl + 1);
            if (k->input_len > 0)
                memcpy(e->key + ml + vl + 2, k->input, k->input_len);
            if (!add_waiter(e, w)) {
                entry_free(e);
            } else {
                size_t b = k->hash & c->mask;
                e->next = c->buckets[b];
                c->buckets[b] = e;
                c->entries++;
                c->pending++;
                c->bytes += cost;
                maybe_grow(c);
                *entry = e;
                r = CL_FE_CACHE_MISS;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

size_t cl_fe_cache_remove_waiter(cl_fe_cache *c, cl_fe_cache_entry *e, cl_fe_cache_waiter w)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < e->n_w; i++) {
        if (e->w[i].owner == w.owner && e->w[i].idx == w.idx) {
            e->w[i] = e->w[--e->n_w];
            break;
        }
    }
    size_t n = e->n_w;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t cl_fe_cache_waiters(cl_fe_cache *c, const cl_fe_cache_entry *e,
                           const cl_fe_cache_waiter **w)
{
    pthread_mutex_lock(&c->mu);
    *w = e->w;
    size_t n = e->n_w;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t cl_fe_cache_take_waiters(cl_fe_cache *c, cl_fe_cache_entry *e, cl_fe_cache_waiter **w)
{
    pthread_mutex_lock(&c->mu);
    *w = e->w;
    size_t n = e->n_w;
    e->w = NULL;
    e->n_w = e->cap_w = 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void cl_fe_cache_set_task(cl_fe_cache *c, cl_fe_cache_entry *e, uint64_t task_id,
                          uint64_t deadline_us)
{
    pthread_mutex_lock(&c->mu);
    e->task_id = task_id;
    e->task_deadline = deadline_us;
    pthread_mutex_unlock(&c->mu);
}

uint64_t cl_fe_cache_task(cl_fe_cache *c, const cl_fe_cache_entry *e, uint64_t *deadline_us)
{
    pthread_mutex_lock(&c->mu);
    uint64_t id = e->task_id;
    if (deadline_us != NULL)
        *deadline_us = e->task_deadline;
    pthread_mutex_unlock(&c->mu);
    return id;
}

cl_fe_cache_key cl_fe_cache_entry_key(const cl_fe_cache_entry *e)
{
    cl_fe_cache_key k = {
        .model = e->key,
        .version = e->key + e->model_len + 1,
        .input_type = e->input_type,
        .input = e->key + e->model_len + e->version_len + 2,
        .input_len = e->input_len,
        .hash = e->hash,
    };
    return k;
}

bool cl_fe_cache_fill(cl_fe_cache *c, cl_fe_cache_entry *e, const char *out, size_t len)
{
    bool kept = false;
    pthread_mutex_lock(&c->mu);
    size_t cost = key_len(e) + len + CL_FE_CACHE_OVERHEAD;
    if (cost > c->capacity) {
        cl_debug("not caching an output of %zu bytes for %s:%s: the cache holds %zu bytes", len,
                 e->key, e->key + e->model_len + 1, c->capacity);
    } else {
        /* The entry already counts its key and overhead; find room for the
         * output among the other READY entries. */
        char *copy = malloc(len + 1);
        if (copy != NULL && make_room(c, cost - e->cost)) {
            memcpy(copy, out, len);
            copy[len] = '\0';
            e->out = copy;
            e->out_len = len;
            c->bytes += cost - e->cost;
            e->cost = cost;
            e->state = READY;
            c->pending--;
            free(e->w);
            e->w = NULL;
            e->n_w = e->cap_w = 0;
            lru_push_front(c, e);
            kept = true;
        } else {
            free(copy);
        }
    }
    if (!kept)
        remove_entry(c, e);
    pthread_mutex_unlock(&c->mu);
    return kept;
}

size_t cl_fe_cache_forget(cl_fe_cache *c, const char *model, const char *version)
{
    size_t ml = strlen(model), vl = strlen(version), n = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i <= c->mask; i++) {
        cl_fe_cache_entry *e = c->buckets[i];
        while (e != NULL) {
            cl_fe_cache_entry *next = e->next;
            if (e->state == READY && e->model_len == ml && e->version_len == vl &&
                memcmp(e->key, model, ml) == 0 && memcmp(e->key + ml + 1, version, vl) == 0) {
                remove_entry(c, e);
                n++;
            }
            e = next;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

void cl_fe_cache_drop(cl_fe_cache *c, cl_fe_cache_entry *e)
{
    pthread_mutex_lock(&c->mu);
    remove_entry(c, e);
    pthread_mutex_unlock(&c->mu);
}

void cl_fe_cache_stats(const cl_fe_cache *c, struct cl_fe_cache_stats *out)
{
    cl_fe_cache *m = (cl_fe_cache *)c; /* the mutex, only */
    pthread_mutex_lock(&m->mu);
    *out = (struct cl_fe_cache_stats){
        .entries = c->entries,
        .pending = c->pending,
        .bytes = c->bytes,
        .capacity = c->capacity,
        .evictions = c->evictions,
        .lookups = c->lookups,
        .hits = c->hits,
    };
    pthread_mutex_unlock(&m->mu);
}
