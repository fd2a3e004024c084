/* 'clipper run frontend': options, then run until SIGINT/SIGTERM. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_actor.h"
#include "cl_frontend.h"
#include "cl_log.h"

static const char USAGE_LINE[] = "clipper run frontend [options]";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s\n"
            "Takes queries on <prefix>.predict.<app> (NATS) and on HTTP, sends them to the\n"
            "router and answers with the model's output or the app's default output.\n\n"
            "options:\n"
            "  --http-host H  address to serve HTTP on (default 0.0.0.0)\n"
            "  --http-port N  HTTP port (default 1337; 0 picks a free one; -1: no HTTP)\n"
            "  --http-threads N\n"
            "                 0 (default): HTTP is served by the thread that reads the bus;\n"
            "                 N: by N threads of its own (e.g. for many TLS handshakes)\n"
            "  --max-pending N\n"
            "                 tasks in flight before answering 503 (default 1048576)\n"
            "  --cache-size BYTES\n"
            "                 prediction cache size (default 33554432; 0: no cache)\n"
            "  --metrics-port N\n"
            "                 Prometheus metrics port on --http-host (default 1390; 0 picks\n"
            "                 a free one; -1: none)\n"
            "  --http-max-connections N\n"
            "                 connections open at once on the query port, 1 to 1048576\n"
            "                 (default %u, lowered to fit the open-file limit); more wait\n"
            "                 in the listen backlog\n"
            "  --http-max-per-address N\n"
            "                 connections open at once from one client address (an IPv6\n"
            "                 client by its /64); more are refused, with a 503 when they\n"
            "                 send a request (default %u; 0: no limit)\n"
            "  --http-idle-timeout S\n"
            "                 close a connection idle for S seconds, 1 to 3600 (default %u)\n"
            "  --http-tls-cert FILE, --http-tls-key FILE\n"
            "                 serve the query and metrics ports over HTTPS only, with this\n"
            "                 PEM certificate (chain) and its unencrypted PEM key\n"
            "  --metrics-token-file FILE\n"
            "                 the metrics port answers 401 unless a request has\n"
            "                 'Authorization: Bearer <token>', the token being FILE's first\n"
            "                 line; FILE must be mode 600 (env CLIPPER_METRICS_TOKEN_FILE)\n"
            "  --query-token-file FILE\n"
            "                 the same for the query port (predictions, feedback and its\n"
            "                 /metrics); by default it takes no token, as in Clipper (env\n"
            "                 CLIPPER_QUERY_TOKEN_FILE)\n"
            "%s",
            USAGE_LINE, CL_FRONTEND_HTTP_MAX_CONNECTIONS, CL_FRONTEND_HTTP_MAX_PER_ADDRESS,
            CL_FRONTEND_HTTP_IDLE_TIMEOUT_S, cl_actor_common_usage());
}

/* "--name V" or "--name=V": returns V and advances *i, or NULL. */
/* cl_actor_take_value, returning the value (NULL when name is not the
 * argument, or when its value is missing: then *missing is set). */
static const char *value_of(const char *name, int argc, char **argv, int *i, bool *missing)
{
    const char *v = NULL;
    int r = cl_actor_take_value(NULL, name, argc, argv, i, &v);
    if (r < 0)
        *missing = true;
    return r > 0 ? v : NULL;
}

/* Returns 0 to run, 1 to exit 0 (help), 2 on a bad argument. */
static int parse(int argc, char **argv, cl_actor_opts *aopts, cl_frontend_opts *fopts)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 1;
        }
        cl_err err;
        int r = cl_actor_parse_common(aopts, argc, argv, &i, &err);
        if (r < 0) {
            fprintf(stderr, "error: %s\n\n", err.msg);
            usage(stderr);
            return 2;
        }
        if (r > 0)
            continue;
        bool missing = false;
        const char *v;
        long n = 0;
        const char *bad = NULL;
        if ((v = value_of("--http-host", argc, argv, &i, &missing)) != NULL) {
            if (v[0] == '\0')
                bad = "--http-host needs a host name or address";
            fopts->http_host = v;
        } else if ((v = value_of("--http-port", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, -1, 65535, &n))
                bad = "--http-port needs a port number from 0 to 65535, or -1 for no HTTP";
            fopts->http_port = (int)n;
        } else if ((v = value_of("--http-threads", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, 0, 1024, &n))
                bad = "--http-threads needs a number from 0 to 1024";
            fopts->http_threads = (int)n;
        } else if ((v = value_of("--max-pending", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, 1, 1L << 30, &n))
                bad = "--max-pending needs a number from 1 to 1073741824";
            fopts->max_pending = (uint32_t)n;
        } else if ((v = value_of("--cache-size", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, 0, 1L << 40, &n))
                bad = "--cache-size needs a size in bytes from 0 to 1099511627776";
            fopts->cache_bytes = (size_t)n;
        } else if ((v = value_of("--metrics-port", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, -1, 65535, &n))
                bad = "--metrics-port needs a port number from 0 to 65535, or -1 for none";
            fopts->metrics_port = (int)n;
        } else if ((v = value_of("--http-max-connections", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, 1, 1L << 20, &n))
                bad = "--http-max-connections needs a number of connections from 1 to 1048576";
            fopts->http_max_connections = (unsigned)n;
        } else if ((v = value_of("--http-max-per-address", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, 0, 1L << 20, &n))
                bad = "--http-max-per-address needs a number of connections from 0 (no limit) "
                      "to 1048576";
            fopts->http_max_per_address = (unsigned)n;
        } else if ((v = value_of("--http-idle-timeout", argc, argv, &i, &missing)) != NULL) {
            if (!cl_actor_parse_long(v, 1, 3600, &n))
                bad = "--http-idle-timeout needs a number of seconds from 1 to 3600";
            fopts->http_idle_timeout_s = (unsigned)n;
        } else if ((v = value_of("--http-tls-cert", argc, argv, &i, &missing)) != NULL) {
            if (v[0] == '\0')
                bad = "--http-tls-cert needs a file name";
            fopts->tls_cert_file = v;
        } else if ((v = value_of("--http-tls-key", argc, argv, &i, &missing)) != NULL) {
            if (v[0] == '\0')
                bad = "--http-tls-key needs a file name";
            fopts->tls_key_file = v;
        } else if ((v = value_of("--metrics-token-file", argc, argv, &i, &missing)) != NULL) {
            if (v[0] == '\0')
                bad = "--metrics-token-file needs a file name";
            fopts->metrics_token_file = v;
        } else if ((v = value_of("--query-token-file", argc, argv, &i, &missing)) != NULL) {
            if (v[0] == '\0')
                bad = "--query-token-file needs a file name";
            fopts->query_token_file = v;
        } else if (missing) {
            bad = "this option needs a value";
        } else {
            fprintf(stderr, "error: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (bad != NULL) {
            fprintf(stderr, "error: %s (got '%s')\n\n", bad, v ? v : argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if ((fopts->tls_cert_file == NULL) != (fopts->tls_key_file == NULL)) {
        fprintf(stderr, "error: --http-tls-cert and --http-tls-key go together: give both\n\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

int cl_frontend_main(int argc, char **argv)
{
    cl_log_set_name("frontend");
    cl_actor_opts aopts;
    cl_actor_opts_init(&aopts);
    cl_frontend_opts fopts;
    cl_frontend_opts_init(&fopts);
    /* Or from the environment (systemd units, containers), as --creds. */
    const char *token_file = getenv("CLIPPER_METRICS_TOKEN_FILE");
    if (token_file != NULL && token_file[0] != '\0')
        fopts.metrics_token_file = token_file;
    const char *query_token_file = getenv("CLIPPER_QUERY_TOKEN_FILE");
    if (query_token_file != NULL && query_token_file[0] != '\0')
        fopts.query_token_file = query_token_file;
    int r = parse(argc, argv, &aopts, &fopts);
    if (r != 0)
        return r == 1 ? 0 : 2;

    cl_actor_block_signals();
    cl_bus *bus = NULL;
    if (cl_actor_connect(&bus, &aopts, "clipper-frontend", true) != CL_OK)
        return 1;
    cl_frontend *fe = NULL;
    cl_err err;
    if (cl_frontend_start(&fe, bus, &fopts, &err) != CL_OK) {
        cl_error("cannot start the frontend: %s", err.msg);
        cl_bus_free(bus);
        return 1;
    }
    int port = cl_frontend_http_port(fe);
    if (port >= 0)
        cl_info("serving %s.predict.* on %s and %s on %s:%d%s", cl_bus_prefix(bus),
                cl_bus_url(bus), fopts.tls_cert_file ? "HTTPS" : "HTTP", fopts.http_host, port,
                fopts.query_token_file ? " (bearer token required)" : "");
    else
        cl_info("serving %s.predict.* on %s (HTTP disabled)", cl_bus_prefix(bus),
                cl_bus_url(bus));
    int sig = cl_actor_wait_stop();
    cl_info("stopping%s: finishing the queries in flight", sig ? " on signal" : "");
    cl_frontend_free(fe);
    cl_bus_free(bus);
    cl_info("stopped");
    return 0;
}
