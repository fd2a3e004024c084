/* Where a model version's replicas run when several container managers,
 * one per host, share a cluster (docs/operation.md, "Several hosts").
 *
 * Every manager says hello on <p>.cm.hello every CL_PLACE_HELLO_MS
 * (JSON {"host","id","draining","cannot"}) and keeps the managers it heard
 * within CL_PLACE_PEER_TIMEOUT_MS. The replicas of a version are spread
 * over the live managers that are not draining and can run it (see
 * CL_PLACE_CANNOT_MAX): they are ordered by a hash of the
 * version and the host (rendezvous hashing, so each version starts at
 * another host and a host's coming or going moves few replicas), and
 * replica i goes to the i-th of them, round and round. Each manager runs
 * its own share and nothing else; no manager decides for another, so there
 * is no leader to lose. A manager that is the only one runs everything, as
 * before there were several. */
#ifndef CL_PLACEMENT_H
#define CL_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_bus.h"
#include "cl_status.h"

#define CL_PLACE_HELLO_MS 200
#define CL_PLACE_PEER_TIMEOUT_MS 1000
/* A starting manager listens this long before it places anything, so
 * that it knows its peers (and does not start every replica itself). */
#define CL_PLACE_SETTLE_MS 600
#define CL_PLACE_HOST_MAX 128
/* A manager whose replicas of a version cannot load the model twice in a
 * row, or whose backend cannot start them twice in a row, says in its
 * hello that it cannot run that version ({"model","version"} in its
 * "cannot" list, at most CL_PLACE_CANNOT_MAX), and the managers that can
 * run it share it; after CL_PLACE_CANNOT_RETRY_MS it tries again. */
#define CL_PLACE_CANNOT_MAX 32
#define CL_PLACE_CANNOT_AFTER 2
#define CL_PLACE_CANNOT_RETRY_MS 120000
#define CL_PLACE_NAME_MAX 128

/* The share of a version's wanted replicas that the manager at index me
 * of hosts (n live, non-draining managers' host names and ids, any order)
 * runs. Pure; the same on every manager that sees the same hosts. */
unsigned cl_place_share(const char *model, const char *version, unsigned wanted,
                        const char *const *hosts, const char *const *ids, size_t n, size_t me);

typedef struct cl_placement cl_placement;

/* Says hello as host (with a fresh id) and listens to the others' hellos;
 * changed (may be NULL) is called from a bus or timer thread when the set
 * of live managers changes. */
cl_status cl_placement_start(cl_placement **out, cl_bus *bus, const char *host,
                             void (*changed)(void *closure), void *closure,
                             cl_err *err) CL_MUST_USE;
void cl_placement_free(cl_placement *p);

void cl_placement_set_draining(cl_placement *p, bool draining);
bool cl_placement_draining(cl_placement *p);
/* Whether the bus carries messages: this manager's own hellos came back
 * within CL_PLACE_PEER_TIMEOUT_MS. A server that stalls (a write to a peer
 * cut off without a word) or a connection that looks up but carries
 * nothing makes every heartbeat and hello fall silent at once; that is no
 * reason to kill replicas or to take over the others' (a fault table row
 * did both before this). */
bool cl_placement_bus_flowing(cl_placement *p, uint64_t now_us);
/* False until CL_PLACE_SETTLE_MS after the start. */
bool cl_placement_settled(cl_placement *p, uint64_t now_us);
/* This manager's share of model:version's wanted replicas (0 while
 * draining); *others: the live managers besides this one (draining ones
 * included). */
unsigned cl_placement_share(cl_placement *p, const char *model, const char *version,
                            unsigned wanted, uint64_t now_us, size_t *others);
/* This manager cannot run model:version (why: a sentence) from now_us for
 * CL_PLACE_CANNOT_RETRY_MS; said at once in a hello. */
void cl_placement_cannot_run(cl_placement *p, const char *model, const char *version,
                             const char *why, uint64_t now_us);
/* Adds the versions this manager cannot run to arr, as
 * {"model","version","why","retry_in_s"}. */
void cl_placement_cannot_json(cl_placement *p, uint64_t now_us, void *cjson_array);
/* The live managers besides this one that take replicas (not draining). */
size_t cl_placement_takers(cl_placement *p);
/* Adds the live managers to arr as {"host","id","draining"} objects. */
void cl_placement_peers_json(cl_placement *p, uint64_t now_us, void *cjson_array);
const char *cl_placement_id(const cl_placement *p);

#endif
