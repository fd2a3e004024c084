/* Starting a libmicrohttpd daemon the way every HTTP door of the project
 * does it (the frontend's queries and metrics, the admin's management
 * REST): resolve the host, bind it (IPv4 or IPv6, port 0 picks a free
 * one), log errors through MHD, and say clearly why a bind failed.
 *
 * cl_httpd_serve also makes the door survive connection floods:
 *
 *   total      at most max_connections open at once; over it libmicrohttpd
 *              stops accepting and new connections wait in the kernel's
 *              listen backlog (backlog, capped by net.core.somaxconn) until
 *              one closes, so a burst of good clients is served late, not
 *              refused. The limit is fitted to the process's open-file
 *              limit, whose soft value is raised to the hard one if needed.
 *   per address at most max_per_address from one client address (an IPv6
 *              client by its /64). A few more are accepted to be told why:
 *              a request on one is answered 503 with the door's error body
 *              and the connection closed; one that says nothing is closed
 *              after CL_HTTPD_REFUSED_TIMEOUT_S. Beyond those, connections
 *              are closed as soon as they are accepted.
 *   idle       connection_timeout_s closes a connection that sends nothing
 *              for that long (a suspended one, waiting for its answer, is
 *              not idle).
 *   framing    a request whose body length is ambiguous is refused before
 *              the door's handler sees it: two different Content-Length
 *              headers, Content-Length with Transfer-Encoding, or
 *              Transfer-Encoding twice (400); a transfer coding other than
 *              chunked (501). libmicrohttpd would read the first length,
 *              or follow chunked, where a proxy in front may have read the
 *              other: the bytes left over would become a smuggled request.
 *              The connection is closed after the answer.
 *
 *   token      with a bearer token, a request without "Authorization:
 *              Bearer <token>" is answered 401 (WWW-Authenticate: Bearer
 *              realm="clipper", the door's error body) before the door's
 *              handler sees it, on every route of the door. The token is
 *              kept only as its SHA-256, and a presented one is hashed and
 *              compared in constant time (CRYPTO_memcmp), so neither its
 *              length nor how much of it is right shows in the timing.
 *   TLS        with a certificate and key (PEM files, read at start), the
 *              door serves HTTPS only (libmicrohttpd with GnuTLS).
 *
 * Refusals are counted (cl_httpd_get_stats) and logged at most once every
 * ten seconds per door, with the number left out. */
#ifndef CL_HTTPD_H
#define CL_HTTPD_H

#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "cl_status.h"

/* The listen backlog asked for by default; Linux caps it at
 * net.core.somaxconn (4096 by default since Linux 5.4). */
#define CL_HTTPD_DEFAULT_BACKLOG 8192
/* How long a connection over its address's limit may take to send the
 * request that is answered 503, before it is closed. */
#define CL_HTTPD_REFUSED_TIMEOUT_S 1

/* The body of a refusal (status 400, 401, 501 or 503) in the door's style,
 * malloc'd (NULL when out of memory): error is a short title ("Bad
 * request"), cause says why. */
typedef char *(*cl_httpd_render_fn)(int status, const char *error, const char *cause);

typedef struct {
    const char *what; /* for errors: "serve <what> on host:port" */
    const char *host;
    int port;          /* 0: a free port */
    unsigned flags;    /* MHD threading flags; IPv6 and the error log are added */
    MHD_AccessHandlerCallback handler; /* must set *con_cls on its first call */
    void *handler_cls;
    MHD_RequestCompletedCallback completed; /* may be NULL */
    void *completed_cls;
    unsigned connection_timeout_s; /* idle connections are closed after this */
    unsigned thread_pool; /* > 1: MHD_OPTION_THREAD_POOL_SIZE */
    bool reuse_address;

    /* The rest is used by cl_httpd_serve only. */
    unsigned max_connections;         /* 0: default_max_connections */
    unsigned default_max_connections; /* lowered, with a warning, to fit the
                                       * open-file limit; an explicit
                                       * max_connections that does not fit
                                       * is an error */
    const char *max_connections_option; /* named in that error and in logs */
    unsigned max_per_address;           /* 0: no per-address limit */
    const char *max_per_address_option; /* named in logs */
    unsigned backlog;                   /* 0: CL_HTTPD_DEFAULT_BACKLOG */
    cl_httpd_render_fn render_error;    /* NULL: the cause and a newline */
    const char *error_content_type;     /* of the refusals; NULL: text/plain */
    /* TLS: both set, the door serves HTTPS with the certificate (PEM, the
     * leaf first, a chain may follow) and its unencrypted PEM key. The
     * files are read at start and kept in memory while the daemon runs
     * (the key is wiped at free). A missing or unreadable file, one with
     * no PEM certificate or key, a key that does not match the
     * certificate, one set without the other, or a libmicrohttpd without
     * TLS support is an error naming the file or the cause. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* NULL: no token. Else printable ASCII without spaces; only its hash
     * is kept, so the caller may wipe it once the door is started. */
    const char *bearer_token;
} cl_httpd_opts;

/* The longest bearer token taken, in bytes. */
#define CL_HTTPD_TOKEN_MAX 4096

/* Starts a bare daemon, without the limits above (their fields are
 * ignored; libmicrohttpd's defaults apply). *port_out gets the port
 * actually bound. Stop it with MHD_stop_daemon. For small internal doors:
 * it has no TLS and no token (nothing would own the PEM memory), and
 * refuses opts that ask for them rather than serve without. */
cl_status cl_httpd_start(struct MHD_Daemon **out, int *port_out, const cl_httpd_opts *o,
                         cl_err *err) CL_MUST_USE;

typedef struct cl_httpd cl_httpd;

/* Starts a door with the limits above. The handler sees only requests
 * that passed them; the completed callback may see *con_cls NULL (a
 * request refused before the handler). */
cl_status cl_httpd_serve(cl_httpd **out, const cl_httpd_opts *o, cl_err *err) CL_MUST_USE;
/* The port actually bound. */
int cl_httpd_port(const cl_httpd *h);

typedef struct {
    unsigned connections;     /* open now */
    unsigned max_connections; /* the limit in force */
    unsigned max_per_address; /* 0: none */
    uint64_t refused;  /* connections refused: over the per-address limit */
    uint64_t rejected; /* requests refused for an ambiguous body length */
    uint64_t unauthorized; /* requests refused for a missing or wrong token */
} cl_httpd_stats;

/* A snapshot of the counts (any thread). */
void cl_httpd_get_stats(const cl_httpd *h, cl_httpd_stats *out);
/* A door started without an internal thread (flags MHD_USE_EPOLL |
 * MHD_USE_ITC, no MHD_USE_INTERNAL_POLLING_THREAD) is run by its owner:
 * the fd to wait on (readable when the door has work: a connection, a
 * request's bytes, a resume from another thread), and one pass over that
 * work, never blocking. Both from the one thread that runs the door. */
int cl_httpd_poll_fd(const cl_httpd *h);
void cl_httpd_run(cl_httpd *h);
/* How long the owner may wait on the fd before the door must run again
 * (work the fd will not announce: libmicrohttpd's epoll is edge-triggered,
 * so a connection with more to do is kept on a list of its own; and
 * connection timeouts), capped at max_ms. */
int cl_httpd_wait_ms(cl_httpd *h, int max_ms);
/* Stops the daemon (every suspended connection must have been resumed)
 * and frees. NULL is a no-op. */
void cl_httpd_free(cl_httpd *h);

/* Reads a bearer token from the first line of path (blanks around it and
 * the line end left out). The file must be a regular file that group and
 * others cannot use (chmod 600), as the credential files; option names
 * where path came from, for the errors ("--metrics-token-file"). *out is
 * malloc'd: release it with cl_httpd_token_free, which wipes it. */
cl_status cl_httpd_read_token(char **out, const char *path, const char *option,
                              cl_err *err) CL_MUST_USE;
/* Wipes and frees a token of cl_httpd_read_token. NULL is a no-op. */
void cl_httpd_token_free(char *token);

#endif
