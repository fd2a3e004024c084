/* The live-replica table of actors/common/replicas.c without a bus, for
 * the harnesses: fuzz_replicas.c includes replicas.c, so the real table
 * code (its heartbeat callback, snapshot and free) runs on messages the
 * harness makes. No sweeper thread: replicas are removed only by a
 * "stopped" heartbeat. */
#ifndef CL_FUZZ_REPLICAS_H
#define CL_FUZZ_REPLICAS_H

#include <stddef.h>

#include "cl_replicas.h"

/* An empty table; cb (may be NULL) is called as cl_replicas_start's is. */
cl_replicas *fz_replicas_new(cl_replicas_cb cb, void *closure);
/* Delivers one heartbeat body (len bytes) on subject, as the bus would. */
void fz_replicas_heartbeat(cl_replicas *r, const char *subject, const void *data, size_t len);

#endif
