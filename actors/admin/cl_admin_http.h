/* Clipper's management REST (port 1338) as a door onto the admin actor.
 *
 *   POST /admin/<command>   body sent as is to <p>.admin.<command>
 *   GET  /admin/ping        <p>.admin.ping -> "PONG"
 *
 * The server keeps no state of its own: every request becomes one NATS
 * request to the admin command, answered by whichever admin process the
 * queue group picks, and the reply envelope becomes Clipper's response:
 * 200 with the result (a string as plain text, anything else as JSON
 * text), or 400 with the error text. Every response is Content-Type
 * application/json, as in Clipper. Where Clipper had no answer we give
 * one: 404 for an unknown route, 405 for a wrong method, 413 for a body
 * over the cap, 503 when no admin answers, and, before a request reaches
 * the admin, 400 for an ambiguous body length, 503 for a connection over
 * its address's limit and, with a token, 401 for a request without it
 * (cl_httpd.h). */
#ifndef CL_ADMIN_HTTP_H
#define CL_ADMIN_HTTP_H

#include "cl_bus.h"
#include "cl_status.h"

#define CL_ADMIN_HTTP_PORT 1338
/* How long a request waits for the admin actor's reply. */
#define CL_ADMIN_HTTP_TIMEOUT_MS 5000
/* The largest request body taken (bigger ones get 413). */
#define CL_ADMIN_HTTP_MAX_BODY (1024 * 1024)
/* Under many connections (actors/common/cl_httpd.h): at most 1024 open at
 * once, more wait in the listen backlog, so a burst of 5000 is served, not
 * refused; no per-address limit by default (management clients are few
 * and often one host; one address may hold every connection, and others
 * then wait at most the idle timeout); an idle connection goes after 15 s.
 * Connections cost a descriptor each, no thread: WORKERS threads send the
 * requests to the admin actor, which answers one at a time anyway. */
#define CL_ADMIN_HTTP_MAX_CONNECTIONS 1024u
#define CL_ADMIN_HTTP_MAX_PER_ADDRESS 0u
#define CL_ADMIN_HTTP_IDLE_TIMEOUT_S 15u
#define CL_ADMIN_HTTP_WORKERS 8

typedef struct cl_admin_http cl_admin_http;

/* The management REST deploys code: by default only this host reaches it
 * (Clipper listened on 0.0.0.0). */
#define CL_ADMIN_HTTP_HOST "127.0.0.1"

typedef struct {
    const char *host;         /* NULL: CL_ADMIN_HTTP_HOST */
    int port;                 /* 0 picks a free one */
    unsigned max_connections; /* 0: CL_ADMIN_HTTP_MAX_CONNECTIONS, lowered to fit the
                               * open-file limit */
    unsigned max_per_address; /* 0: no per-address limit */
    unsigned idle_timeout_s;  /* 0: CL_ADMIN_HTTP_IDLE_TIMEOUT_S */
    /* HTTPS: a PEM certificate and its unencrypted key, both or neither
     * (cl_httpd.h); NULL: plain HTTP. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* A bearer token for every route: the first line of this file (mode
     * 0600; cl_httpd_read_token); NULL: none. Files are read at start. */
    const char *token_file;
} cl_admin_http_opts;

/* The defaults on CL_ADMIN_HTTP_HOST:CL_ADMIN_HTTP_PORT. */
void cl_admin_http_opts_init(cl_admin_http_opts *o);

/* Serves HTTP on o's host and port and sends every command over bus
 * (borrowed; it must outlive the server) to the admin actors of the bus'
 * prefix. */
cl_status cl_admin_http_start_with(cl_admin_http **out, cl_bus *bus,
                                   const cl_admin_http_opts *o, cl_err *err) CL_MUST_USE;
/* The same with the defaults on host:port (port 0 picks a free one). */
cl_status cl_admin_http_start(cl_admin_http **out, cl_bus *bus, const char *host, int port,
                              cl_err *err) CL_MUST_USE;
/* The bound port (the chosen one when started with port 0). */
int cl_admin_http_port(const cl_admin_http *h);
/* How long a request waits for the admin (default CL_ADMIN_HTTP_TIMEOUT_MS);
 * for tests of the 503 answer. */
void cl_admin_http_set_timeout(cl_admin_http *h, int timeout_ms);
/* Stops serving (waits for the requests in flight) and frees. NULL is a no-op. */
void cl_admin_http_free(cl_admin_http *h);

#endif
