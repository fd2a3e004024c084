/* An identity of its own for each model's replicas (docs/security.md, "One
 * identity per model's replicas"): issued the first time a replica of the
 * model starts, with '<clipper> creds issue --role replica --model M'
 * against the cluster's data directory, and kept there for the next. The
 * local and Docker backends use it. */
#ifndef CL_IDENTITY_H
#define CL_IDENTITY_H

#include <limits.h>
#include <stdbool.h>

#include "cl_status.h"

/* The identity model's replicas connect as: "replica-of-<model>", or of a
 * digest of the name when it holds characters an identity's name may not
 * (names are [A-Za-z0-9_-], at most 64). */
void cl_model_identity_name(const char *model, char out[80]);

/* The credential file of model's replicas, in data_dir/secrets/creds/
 * (creds, PATH_MAX bytes): issued by running clipper (the clipper program)
 * when there is none, or when its identity was revoked (its seed goes with
 * it: 'clipper creds revoke replica-of-<model>' cuts off whoever holds the
 * old key, and the model's next replicas get a new one). *issued: a new
 * identity was made, so a nats-server that is not this host's child (in a
 * container) must be told to reload. */
cl_status cl_model_creds(const char *clipper, const char *data_dir, const char *prefix,
                         const char *model, char *creds, bool *issued, cl_err *err) CL_MUST_USE;

#endif
