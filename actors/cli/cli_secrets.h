/* A cluster's identities and TLS material, in <data-dir>/secrets
 * (docs/security.md):
 *
 *   secrets/                 mode 0700
 *     ca.pem, ca.key         the cluster's own CA (ca.key 0600)
 *     server.pem, server.key nats-server's certificate, for 127.0.0.1 and
 *                            localhost (and --tls-host names)
 *     identities/<name>.json {"name","role","public_key","issued"}: who may
 *                            connect; nats-server's users are made from these
 *     creds/<name>.creds     the seeds of the identities `clipper start` runs
 *                            as (one per actor role, and "operator" for the
 *                            Python API and the CLI on this host), 0600
 *
 * `clipper creds init --secrets-mount DIR` (DockerContainerManager) makes
 * the same without starting anything, and also
 *
 *   nats/                    mode 0700, mounted read-only at DIR into a
 *     server.pem, server.key nats-server container: copies of the above
 *     nats-server.auth.conf  the TLS and accounts part of its configuration,
 *                            naming the files under DIR
 *
 * A credential issued for another host (`clipper creds issue`) is written
 * where asked and only its public key stays here. Revoking removes the
 * identity; a running nats-server reloads its configuration (SIGHUP through
 * the pid file) and closes that user's connections at once. */
#ifndef CLI_SECRETS_H
#define CLI_SECRETS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cl_buf.h"
#include "cl_roles.h"

typedef struct {
    char dir[PATH_MAX];     /* <data>/secrets */
    char ca[PATH_MAX + 16]; /* <dir>/ca.pem */
    char cert[PATH_MAX + 16];
    char key[PATH_MAX + 16];
    char account[96]; /* the NATS account of this cluster's prefix */
} cl__secrets;

/* Makes (or finds) the CA, the server certificate and the identities of the
 * actors and the local operator. Prints what is wrong on stderr; -1 then. */
int cl__secrets_ensure(cl__secrets *s, const char *data_abs, const char *prefix);

/* The same, with nats-server's certificate also valid for extra_hosts (at
 * most CL__SECRETS_MAX_HOSTS names or addresses): a certificate that does
 * not cover them all is issued again. */
#define CL__SECRETS_MAX_HOSTS 16
int cl__secrets_ensure_hosts(cl__secrets *s, const char *data_abs, const char *prefix,
                             const char *const *extra_hosts, size_t n_extra);

/* The credential file of the built-in identity of role (its name is the
 * role's name). */
void cl__secrets_creds_path(const cl__secrets *s, cl_role role, char out[PATH_MAX + 64]);

/* Appends the TLS part of nats-server's configuration to b: clients must
 * speak TLS, with the server's certificate of s. -1 (printed) on failure. */
int cl__secrets_tls_conf(const cl__secrets *s, cl_buf *b);

/* Rewrites <data>/nats-server.auth.conf, the accounts part of
 * nats-server's configuration (one account for the cluster, with
 * JetStream, and a user per identity with its role's permissions), which
 * the configuration clipper start writes includes (with the TLS part when
 * the bus has TLS): so 'clipper creds' changes the users and a reload
 * takes them. */
int cl__secrets_rewrite_users(const cl__secrets *s, const char *data_abs, const char *prefix);

/* The directory a JetStream store keeps the cluster's streams in: the
 * account's. A store made before the cluster had identities keeps them in
 * the global account ("$G"): moved once, so the state survives. */
int cl__secrets_migrate_store(const cl__secrets *s, const char *store_dir);

/* clipper creds init|issue|revoke|list ... */
int cl__cli_creds(int argc, char **argv);

#endif
