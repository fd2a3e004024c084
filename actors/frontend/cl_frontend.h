/* The frontend actor's process entry point (dispatched by 'clipper run frontend'),
 * and an in-process API (used by the tests and by anything embedding a frontend).
 *
 * A frontend takes queries on <p>.predict.<app> (NATS request/reply, queue
 * group "frontend") and on HTTP (POST /<app>/predict), validates them the
 * way Clipper did, sends one task per input to the router, and answers
 * with the model's outputs or, at the latency SLO, the app's default. See
 * docs/protocol.md "The flow of one query" and actors/frontend/README.md. */
#ifndef CL_FRONTEND_H
#define CL_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_bus.h"
#include "cl_status.h"

int cl_frontend_main(int argc, char **argv);

typedef struct cl_frontend cl_frontend;

/* The query port's defaults under many connections. 4096 open at once
 * cost as many descriptors and at most 32 KiB of buffers each; one address
 * may hold a quarter of them, enough for a load balancer or a benchmark
 * with 1000 connections, too few to take the port from everyone else. An
 * idle connection goes after 30 s, longer than the keep-alive of common
 * clients and balancers between requests, and a tenth of Clipper's 300 s. */
#define CL_FRONTEND_HTTP_MAX_CONNECTIONS 4096u
#define CL_FRONTEND_HTTP_MAX_PER_ADDRESS 1024u
#define CL_FRONTEND_HTTP_IDLE_TIMEOUT_S 30u

typedef struct {
    const char *http_host; /* NULL: "0.0.0.0" */
    int http_port;         /* 1337 by default; 0: a free port; -1: no HTTP */
    int http_threads;      /* 0: HTTP on the bus loop's thread; N: MHD's own N */
    uint32_t max_pending;  /* tasks in flight before 503; 0: 1 << 20 */
    size_t max_body;       /* largest HTTP body before 413; 0: 32 MiB */
    size_t cache_bytes;    /* prediction cache size in bytes (Clipper's
                            * --prediction_cache_size; default 32 MiB); 0: no cache */
    int metrics_port;      /* Prometheus text metrics on http_host:metrics_port
                            * (default 1390; 0 picks a free one; -1: none) */
    /* The query port under many connections (see docs/operation.md):
     * at most http_max_connections open at once (0: 4096, lowered to fit
     * the open-file limit; more wait in the listen backlog), at most
     * http_max_per_address from one client address (default 1024; 0: no
     * limit; more are refused, with a 503 when they ask something), and a
     * connection idle for http_idle_timeout_s is closed (0: 30). */
    unsigned http_max_connections;
    unsigned http_max_per_address;
    unsigned http_idle_timeout_s;
    /* HTTPS on the query and metrics ports: a PEM certificate and its
     * unencrypted key, both or neither (cl_httpd.h); NULL: plain HTTP. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* The metrics port's bearer token: the first line of this file (mode
     * 0600; cl_httpd_read_token); NULL: none. Files are read at start. */
    const char *metrics_token_file;
    /* The query port's, likewise; NULL (the default): none, as Clipper's
     * clients send none. With one, every request to the query port
     * (predictions, feedback, Clipper's JSON /metrics) needs it. */
    const char *query_token_file;
} cl_frontend_opts;

void cl_frontend_opts_init(cl_frontend_opts *opts);

/* Starts a frontend on bus (borrowed: it must outlive the frontend; open
 * it with send_asap for latency). Loads the cluster state, subscribes,
 * starts HTTP. opts may be NULL for the defaults. */
cl_status cl_frontend_start(cl_frontend **out, cl_bus *bus, const cl_frontend_opts *opts,
                            cl_err *err) CL_MUST_USE;
/* Stops taking queries, lets the ones in flight finish (each gets its
 * answer, at the latest at its deadline), then frees. NULL is a no-op. */
void cl_frontend_free(cl_frontend *fe);
/* The HTTP port actually bound (useful with http_port 0), or -1 without HTTP. */
int cl_frontend_http_port(const cl_frontend *fe);
/* The Prometheus metrics port actually bound, or -1 without one. */
int cl_frontend_metrics_port(const cl_frontend *fe);
/* This frontend's id: results come on <p>.fe.<id>.results. */
const char *cl_frontend_id(const cl_frontend *fe);

/* How an HTTP door of the frontend stands (any thread). */
typedef struct {
    unsigned connections;     /* open now */
    unsigned max_connections; /* the limit in force */
    unsigned max_per_address; /* 0: none */
    uint64_t refused;  /* connections refused: over the per-address limit */
    uint64_t rejected; /* requests refused for an ambiguous body length */
} cl_frontend_door_stats;

/* The query port's counts; false without HTTP. */
bool cl_frontend_query_door_stats(const cl_frontend *fe, cl_frontend_door_stats *out);
/* The Prometheus port's counts; false without one. */
bool cl_frontend_metrics_door_stats(const cl_frontend *fe, cl_frontend_door_stats *out);

#endif
