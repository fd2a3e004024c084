/* The frontend's prediction cache (Clipper's §4.2, with its stuck-pending
 * bug fixed by the frontend's use of it, see fe_query.c).
 *
 * Key: (model name, model version, input type, input bytes). The app is
 * not part of the key, as in Clipper: two apps linked to the same model
 * version share outputs. A new model version is a new key, so a rollback
 * or a new version never serves another version's output.
 *
 * An entry is
 *   PENDING  a task is in flight for this key; it holds its waiters, the
 *            query entries (opaque owner, index) that want its output;
 *   READY    it holds a model's output (status ok only: errors, expiries
 *            and lost replicas are never stored).
 *
 * Bounded in bytes: every entry costs its key bytes + its output bytes +
 * CL_FE_CACHE_OVERHEAD. Clipper counted only the output bytes, so a cache
 * of small outputs for large inputs could grow without bound; we bound the
 * memory. READY entries are evicted least recently used first until a new
 * one fits; PENDING entries are never evicted (they count, so when pending
 * keys fill the cache a lookup says BYPASS and the query goes uncached).
 * An output larger than the whole cache is not stored.
 *
 * The hash is XXH3-64 (libxxhash) of the key; a hit compares the whole key,
 * so a hash collision never gives another input's output.
 *
 * Thread-safe: every function takes the cache's own mutex, so the stats can
 * be read from any thread. The frontend also calls it under fe->mu, which
 * keeps a pending entry and its waiters consistent with the queries. No bus. */
#ifndef CL_FE_CACHE_H
#define CL_FE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_status.h"

/* Fixed bytes counted per entry besides its key and output: the entry's
 * header and its hash bucket slot (checked against sizeof in fe_cache.c). */
#define CL_FE_CACHE_OVERHEAD 128

typedef struct cl_fe_cache cl_fe_cache;
typedef struct cl_fe_cache_entry cl_fe_cache_entry;

typedef struct {
    const char *model;
    const char *version;
    uint8_t input_type;
    const void *input;
    size_t input_len;
    uint64_t hash; /* cl_fe_cache_hash(); set by hand only to force collisions in tests */
} cl_fe_cache_key;

typedef struct {
    void *owner;  /* the query */
    uint32_t idx; /* its entry */
} cl_fe_cache_waiter;

/* A struct tag, not a typedef: the function reading it has the same name. */
struct cl_fe_cache_stats {
    size_t entries;   /* READY + PENDING */
    size_t pending;   /* PENDING */
    size_t bytes;     /* counted bytes (key + output + overhead per entry) */
    size_t capacity;  /* the bound on bytes */
    uint64_t evictions, lookups, hits; /* hits: READY or PENDING found */
};

typedef enum {
    CL_FE_CACHE_MISS,   /* a new PENDING entry, the waiter its first: send a task */
    CL_FE_CACHE_HIT,    /* a READY entry: *out is its output */
    CL_FE_CACHE_JOINED, /* a PENDING entry: the waiter waits for its task */
    CL_FE_CACHE_BYPASS  /* no room (pending keys fill it) or out of memory: go uncached */
} cl_fe_cache_outcome;

/* The key's hash (XXH3-64 over model, version, type and input). Pure. */
uint64_t cl_fe_cache_hash(const cl_fe_cache_key *k);

/* capacity > 0 bytes. */
cl_status cl_fe_cache_new(cl_fe_cache **out, size_t capacity) CL_MUST_USE;
/* Frees every entry (waiters of pending ones are the caller's business). */
void cl_fe_cache_free(cl_fe_cache *c);

/* Looks k up (k->hash set) for waiter w and counts the lookup. HIT: *out
 * and *out_len point at the stored output, valid until the next call that
 * changes the cache (copy it before). MISS and JOINED: *entry is the
 * pending entry w now waits on. */
cl_fe_cache_outcome cl_fe_cache_lookup(cl_fe_cache *c, const cl_fe_cache_key *k,
                                       cl_fe_cache_waiter w, cl_fe_cache_entry **entry,
                                       const char **out, size_t *out_len);
/* Removes w from a pending entry's waiters; returns how many remain. */
size_t cl_fe_cache_remove_waiter(cl_fe_cache *c, cl_fe_cache_entry *e, cl_fe_cache_waiter w);
/* A pending entry's waiters (borrowed, valid until the entry changes). */
size_t cl_fe_cache_waiters(cl_fe_cache *c, const cl_fe_cache_entry *e,
                           const cl_fe_cache_waiter **w);
/* Empties a pending entry's waiter list and hands it over (malloc'd, free it). */
size_t cl_fe_cache_take_waiters(cl_fe_cache *c, cl_fe_cache_entry *e, cl_fe_cache_waiter **w);
/* The task in flight for a pending entry: its id and (monotonic) deadline. */
void cl_fe_cache_set_task(cl_fe_cache *c, cl_fe_cache_entry *e, uint64_t task_id,
                          uint64_t deadline_us);
uint64_t cl_fe_cache_task(cl_fe_cache *c, const cl_fe_cache_entry *e, uint64_t *deadline_us);
/* The key a pending entry was made for (borrowed; hash set). */
cl_fe_cache_key cl_fe_cache_entry_key(const cl_fe_cache_entry *e);
/* The model answered a pending entry (its waiters taken already): stores
 * the output (READY), evicting older READY entries to make room. Returns
 * false when it is not kept (larger than the cache, no room, out of
 * memory): the entry is then removed. e is not to be used after either. */
bool cl_fe_cache_fill(cl_fe_cache *c, cl_fe_cache_entry *e, const char *out, size_t len);
/* Removes a pending entry (its task failed or nobody waits any more). Any
 * waiters left are forgotten. */
/* Removes every stored output of model:version (walks the whole table;
 * for the rare change of a version's record: a deleted version registered
 * again under the same name must not be answered with the old function's
 * outputs). Pending entries stay: their tasks are answered as usual.
 * Returns how many were removed. */
size_t cl_fe_cache_forget(cl_fe_cache *c, const char *model, const char *version);
void cl_fe_cache_drop(cl_fe_cache *c, cl_fe_cache_entry *e);

/* A consistent snapshot; any thread. */
void cl_fe_cache_stats(const cl_fe_cache *c, struct cl_fe_cache_stats *out);

#endif
