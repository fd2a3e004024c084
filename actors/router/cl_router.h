/* The router actor: per model-version queues ordered by deadline, batch
 * sizing (fixed or adaptive), dispatch to replicas that asked for work, and
 * expiry of late tasks (docs/protocol.md, "The flow of one query").
 *
 * cl_router_main is the process entry point (dispatched by 'clipper run
 * router'); cl_router_start runs the same actor inside a process on a bus
 * the caller owns (tests, 'clipper start'). */
#ifndef CL_ROUTER_H
#define CL_ROUTER_H

#include "cl_bus.h"
#include "cl_status.h"

int cl_router_main(int argc, char **argv);

typedef struct cl_router cl_router;

/* Opens the cluster's KV state, watches replicas and starts serving
 * <p>.route.> on bus. The bus is borrowed and must outlive the router;
 * connect it with send_asap for latency. Returns once the router serves. */
cl_status cl_router_start(cl_router **out, cl_bus *bus, cl_err *err) CL_MUST_USE;
/* Stops serving, answers tasks still queued with "no replica" (so no
 * frontend waits for its deadline), and frees. NULL is a no-op. */
void cl_router_free(cl_router *r);

#endif
