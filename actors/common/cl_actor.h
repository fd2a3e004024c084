/* What every actor process shares: its command-line options for joining
 * the bus, signal handling, and the service API registration.
 *
 * Each actor's entry point has the shape `int cl_<actor>_main(int argc,
 * char **argv)` and is dispatched from the `clipper run <actor>` command. */
#ifndef CL_ACTOR_H
#define CL_ACTOR_H

#include <stdbool.h>

#include "cl_bus.h"
#include "cl_service.h"

#define CL_VERSION "0.1.0"

typedef struct {
    const char *nats_url; /* --nats URL (env CLIPPER_NATS_URL) */
    const char *prefix;   /* --prefix P (env CLIPPER_PREFIX) */
} cl_actor_opts;

/* Blocks SIGINT and SIGTERM in the calling thread (and so in every thread
 * created after it); cl_actor_wait_stop then receives them. Call first
 * thing in main, before any thread is created. */
void cl_actor_block_signals(void);
/* Waits until SIGINT/SIGTERM arrives or cl_actor_request_stop is called.
 * Returns the signal number (0 for a requested stop). */
int cl_actor_wait_stop(void);
/* Makes cl_actor_wait_stop return (thread-safe, async-signal-safe). */
void cl_actor_request_stop(void);

/* Connects to the bus named by opts, logging a clear error on failure.
 * send_asap as in cl_bus_opts. */
cl_status cl_actor_connect(cl_bus **out, const cl_actor_opts *opts, const char *name,
                           bool send_asap);

#endif
