/* Which model replicas are alive, from their heartbeats on
 * <p>.replica.hb.<model>.<version>.<replica>.
 *
 * A replica publishes a heartbeat every CL_HEARTBEAT_MS and at once when
 * its state changes. It is taken as gone when none arrived for
 * CL_REPLICA_TIMEOUT_MS, or at once when it publishes state "stopped".
 *
 * Heartbeat body (JSON):
 *   {"model_name","model_version","replica_id": <int>,
 *    "state": "starting"|"ready"|"failed"|"stopped", "cause": "<why failed>",
 *    "host": "<hostname>", "pid": <int>, "input_type": "<name>",
 *    "runtime": "<runtime>", "incarnation": "<16 hex digits>"}
 *
 * The incarnation is a random 64-bit value a replica picks when it starts;
 * a heartbeat without one (an older replica) has incarnation 0. While a
 * replica is in the table, only heartbeats of its own incarnation change
 * it: a heartbeat that names its id with another incarnation (forged, or
 * a restart whose predecessor was not heard to stop) is ignored until the
 * one in the table stops or falls silent. A "stopped" heartbeat removes a
 * replica; if it was forged with a copied incarnation, the live replica's
 * next heartbeat puts it back, so it costs at most CL_HEARTBEAT_MS. This
 * is robustness, not authentication: heartbeats are not signed. */
#ifndef CL_REPLICAS_H
#define CL_REPLICAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_bus.h"
#include "cl_status.h"

#define CL_HEARTBEAT_MS 1000
#define CL_REPLICA_TIMEOUT_MS 3500
/* The port a replica given --health-port answers GET /ready and GET /live
 * on when a platform probes it (the kubernetes backend's pods). */
#define CL_REPLICA_HEALTH_PORT 9102
/* A replica's exit code when the model cannot be served here (it cannot
 * be loaded: the cause is in its last heartbeat); managers and the
 * Kubernetes backend read it so. */
#define CL_REPLICA_EXIT_CANNOT_SERVE 3

typedef struct {
    char model[128];
    char version[128];
    uint32_t replica_id;
    char state[16];
    char cause[1024];
    char host[128];
    int pid;
    char input_type[16];
    uint64_t incarnation;  /* random per replica start; 0: not sent (an older replica) */
    uint64_t last_seen_us; /* monotonic */
} cl_replica_info;

typedef struct cl_replicas cl_replicas;

/* Called from a bus or timer thread when a replica appears, changes state
 * or is gone (gone: removed=true). Must not block. */
typedef void (*cl_replicas_cb)(void *closure, const cl_replica_info *info, bool removed);

cl_status cl_replicas_start(cl_replicas **out, cl_bus *bus, cl_replicas_cb cb, void *closure,
                            cl_err *err) CL_MUST_USE;
void cl_replicas_free(cl_replicas *r);

/* A malloc'd copy of the live replicas, optionally only those of
 * model:version (either may be NULL for all). Free *out with free(). */
size_t cl_replicas_snapshot(cl_replicas *r, const char *model, const char *version,
                            cl_replica_info **out);

/* Encodes a heartbeat body (malloc'd string) for the replica side. */
char *cl_heartbeat_encode(const cl_replica_info *info, const char *runtime);
/* Decodes one; CL_ERR_INVALID with err naming the bad field. */
cl_status cl_heartbeat_decode(cl_replica_info *info, const void *data, size_t len, cl_err *err)
    CL_MUST_USE;

#endif
