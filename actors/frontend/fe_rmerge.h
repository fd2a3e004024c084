/* The routers' metrics, added up. Every router of a cluster answers
 * <p>.route.stats with its own snapshot (docs/protocol.md); the exporter
 * gathers them and renders one, made here:
 *
 *  - counters (batches and tasks dispatched, expired, shed; tasks received,
 *    without a replica, lost with one, hedged; malformed messages) are the
 *    sums over every router that answered, standbys included: a router that
 *    led before keeps what it counted then;
 *  - gauges of the queues (queue_depth, replicas_live, replicas_busy) come
 *    from the routers that lead (one, or two for the instant a partition
 *    heals): a standby holds no queue, and what it last saw of the replicas
 *    is stale;
 *  - histograms (batch sizes, queueing delays) are merged bucket by bucket:
 *    counts, sums and sums of squares add up, min and max are the extremes.
 *    A histogram whose bounds differ from the first one seen (routers of
 *    different builds) is left out, and the merge says so in "skipped";
 *  - per model version, entries are matched on (model, version).
 *
 * The result has the shape of one snapshot, so everything that renders a
 * snapshot renders it, plus "routers": [{host, pid, epoch, leading}, ...]
 * for the routers that answered, and "skipped": N. */
#ifndef CL_FE_RMERGE_H
#define CL_FE_RMERGE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Merges n snapshots (objects with a "versions" array; others are skipped)
 * into a new object. NULL when out of memory or when none is a snapshot. */
cJSON *cl_fe_router_merge(const cJSON *const *snaps, size_t n);

/* How many routers the snapshots say there are: the most any of them hears
 * ("router": {"routers": N}); 1 when none says. A gatherer stops waiting
 * once it has that many. */
size_t cl_fe_router_expected(const cJSON *const *snaps, size_t n);

#endif
