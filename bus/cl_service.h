/* The NATS service API (ADR-32) answered with plain subscriptions, since
 * cnats 3.4 has no micro framework: $SRV.PING, $SRV.INFO and $SRV.STATS,
 * each also as $SRV.<VERB>.<name> and $SRV.<VERB>.<name>.<id>.
 *
 * name is "clipper-<actor>" (for example "clipper-frontend"), version the
 * product's version. The stats callback may add an actor's own figures. */
#ifndef CL_SERVICE_H
#define CL_SERVICE_H

#include <cjson/cJSON.h>

#include "cl_bus.h"
#include "cl_status.h"

typedef struct cl_service cl_service;

/* Called (from a bus thread, must not block) to fill "data" in STATS with
 * the actor's figures; may be NULL. */
typedef void (*cl_service_stats_cb)(void *closure, cJSON *data);

typedef struct {
    const char *name;        /* e.g. "clipper-router" */
    const char *version;     /* e.g. "0.1.0" */
    const char *description;
    const char *const *endpoints; /* subjects the actor serves, NULL-terminated; may be NULL */
    cl_service_stats_cb stats;
    void *closure;
} cl_service_info;

cl_status cl_service_start(cl_service **out, cl_bus *bus, const cl_service_info *info, cl_err *err)
    CL_MUST_USE;
/* Counts a handled request (and an error when is_error) for STATS. Thread-safe. */
void cl_service_count(cl_service *svc, int is_error, uint64_t processing_ns);
const char *cl_service_id(const cl_service *svc);
void cl_service_free(cl_service *svc);

#endif
