/* A model's resources: what each of its replicas asks for and may use, as
 * Kubernetes writes them (Clipper had no such thing):
 *   {"requests": {"cpu": "500m", "memory": "256Mi"},
 *    "limits":   {"cpu": "2", "memory": "1Gi"}}
 * Either part may be left out. Resource names: cpu, memory,
 * ephemeral-storage, or an extended resource with a '/' in its name
 * (nvidia.com/gpu). Values are Kubernetes quantities: a decimal number
 * with an optional suffix (m, k, M, G, T, P, E, or Ki, Mi, Gi, Ti, Pi, Ei)
 * or exponent, as a string (a JSON number is taken as its text). A request
 * above its limit is refused, as the API server would.
 *
 * The kubernetes backend puts them on the replica's container; the docker
 * backend turns limits.cpu and limits.memory into the container's CPU and
 * memory limits; the local backend does not use them. */
#ifndef CL_RESOURCES_H
#define CL_RESOURCES_H

#include <cjson/cJSON.h>

#include "cl_status.h"

/* The value of a quantity ("500m" -> 0.5, "1Gi" -> 1073741824).
 * CL_ERR_INVALID saying why when it is not one. */
cl_status cl_quantity_parse(const char *text, double *out, cl_err *err) CL_MUST_USE;

/* Checks a resources object and returns a normalised copy (values as
 * strings) in *out. CL_ERR_INVALID naming the bad part:
 *   "resources.limits.memory: '1 GB' is not a quantity (...)". */
cl_status cl_resources_normalise(const cJSON *in, cJSON **out, cl_err *err) CL_MUST_USE;

#endif
