/* Who may do what on the bus: one NATS user per identity, each with the
 * role's publish and subscribe permissions, enforced by nats-server itself
 * (docs/security.md). The permissions are protocol facts (which actor
 * publishes and subscribes to which subject, which JetStream API calls it
 * makes), so they live here, next to the subjects, and are written into
 * nats-server's configuration by whoever runs the server (clipper start).
 *
 * Every identity has its own inbox prefix, "_INBOX.<its public key>": a
 * user may subscribe only there, so no one reads another's replies. */
#ifndef CL_ROLES_H
#define CL_ROLES_H

#include <stdbool.h>
#include <stddef.h>

#include "cl_buf.h"
#include "cl_status.h"

typedef enum {
    CL_ROLE_ADMIN,      /* the admin actor: writes the state and the artifact stream */
    CL_ROLE_FRONTEND,   /* answers predict/update, sends tasks to the router */
    CL_ROLE_ROUTER,     /* queues, batches, dispatches to replicas */
    CL_ROLE_MANAGER,    /* starts and stops replicas */
    CL_ROLE_REPLICA,    /* runs a model: its work, heartbeats, pulls, results */
    CL_ROLE_SUPERVISOR, /* clipper start / clipper run --supervised */
    CL_ROLE_OPERATOR,   /* a person or program that manages: the Python API, clipper admin */
    CL_ROLE_QUERY,      /* a client that asks for predictions and sends feedback */
    CL_ROLE_METRICS,    /* a scraper: router snapshots, service stats, supervisor status */
    CL_ROLE_COUNT
} cl_role;

const char *cl_role_name(cl_role role);
/* CL_ERR_INVALID (naming the roles there are) for an unknown name. */
cl_status cl_role_from_name(const char *name, cl_role *out, cl_err *err) CL_MUST_USE;

/* The inbox prefix of the identity whose NKey public key is pub:
 * "_INBOX." followed by pub. */
#define CL_INBOX_PREFIX_MAX 80
void cl_role_inbox_prefix(char out[CL_INBOX_PREFIX_MAX], const char *pub);

/* A model name a replica identity can be scoped to: a subject token
 * without a quote or backslash (it is quoted in nats-server's
 * configuration). false, saying why in err, otherwise. */
bool cl_role_model_valid(const char *model, cl_err *err);

/* Appends one entry of an accounts' users list in nats-server's
 * configuration syntax:
 *   {nkey: "<pub>", permissions: {publish: {allow: [...]},
 *    subscribe: {allow: [...]}, allow_responses: ...}}  # <comment>
 * for a user of role in the cluster with this subject prefix. model,
 * when not NULL, scopes a replica identity to that model: its work,
 * heartbeats, pulls and artifacts only (CL_ERR_INVALID for another role
 * or a bad name). */
cl_status cl_role_user_conf(cl_buf *out, cl_role role, const char *prefix, const char *pub,
                            const char *model, const char *comment, cl_err *err) CL_MUST_USE;

/* The subjects a role may publish to (publish true) or subscribe to, as
 * NULL-terminated lists of patterns with the placeholders expanded into
 * out (one subject per line); for tests and docs. */
cl_status cl_role_subjects(cl_buf *out, cl_role role, bool publish, const char *prefix,
                           const char *pub, const char *model, cl_err *err) CL_MUST_USE;

#endif
