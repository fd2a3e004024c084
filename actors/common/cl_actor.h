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
    int state_replicas;   /* --state-replicas N (env CLIPPER_STATE_REPLICAS): the
                             JetStream replicas of the state and the artifacts
                             when this actor creates them; 0: 1 */
    const char *creds_file;  /* --creds FILE (env CLIPPER_CREDS): the identity
                                to connect as (docs/security.md); NULL: none */
    const char *tls_ca_file; /* --tls-ca FILE (env CLIPPER_TLS_CA): require TLS
                                and verify the server with this CA; NULL: no TLS */
    const char *tls_name;    /* --tls-name NAME (env CLIPPER_TLS_NAME): the name
                                nats-server's certificate must carry; NULL: the
                                URL's host (cl_bus_opts.tls_name) */
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
                           bool send_asap) CL_MUST_USE;

/* ---- Shared command-line parsing (additive helpers) ----
 *
 * A typical main:
 *   cl_actor_opts opts;
 *   cl_actor_opts_init(&opts);
 *   for (int i = 1; i < argc; i++) {
 *       int r = cl_actor_parse_common(&opts, argc, argv, &i, &err);
 *       if (r < 0) { fprintf(stderr, "%s\n", err.msg); return 2; }
 *       if (r > 0) continue;
 *       ... the actor's own options, else "unknown option" ...
 *   }
 */

/* Fills opts from CLIPPER_NATS_URL and CLIPPER_PREFIX, else the defaults
 * (CL_DEFAULT_NATS_URL, CL_DEFAULT_PREFIX). The strings are borrowed from
 * the environment or argv; they live as long as the process. */
void cl_actor_opts_init(cl_actor_opts *opts);

/* Consumes argv[*i] when it is a common option: "--nats URL", "--nats=URL",
 * "--prefix P", "--prefix=P", "--state-replicas N". On a two-word option *i is advanced past the
 * value. Returns 1 when consumed, 0 when argv[*i] is not a common option,
 * -1 with err set when its value is missing or the prefix is not valid. */
int cl_actor_parse_common(cl_actor_opts *opts, int argc, char **argv, int *i, cl_err *err);

/* Matches argv[*i] against "--name VALUE" or "--name=VALUE". Returns 1 and
 * sets *out (advancing *i past a separate value; "--name=" gives ""), 0 when
 * argv[*i] is not that option, -1 when the value is missing: after printing
 * "<cmd>: option <name> needs a value" on stderr, or silently when cmd is
 * NULL (the caller reports). */
int cl_actor_take_value(const char *cmd, const char *name, int argc, char **argv, int *i,
                        const char **out);

/* A whole decimal number in [lo, hi] (the value of an option), else false. */
bool cl_actor_parse_long(const char *text, long lo, long hi, long *out);

/* The lines describing the common options, for an actor's --help. */
const char *cl_actor_common_usage(void);

/* For actors with no options of their own: parses argv (common options and
 * -h/--help). Returns 0 to run; 1 after printing usage for --help (exit 0);
 * 2 after printing an error and the usage for a bad argument (exit 2).
 * usage_line is e.g. "clipper run admin [options]". */
int cl_actor_parse_args(cl_actor_opts *opts, int argc, char **argv, const char *usage_line,
                        const char *description);

#endif
