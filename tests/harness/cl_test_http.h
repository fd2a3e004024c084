/* Test harness: raw HTTP/1.1 over TCP, for tests that must control what
 * libcurl would not send (two Content-Length headers, a connection that
 * never speaks) or open thousands of connections at once.
 *
 *   int fd = cl_test_tcp_connect("127.0.0.2", "127.0.0.1", port, 1000);
 *   int ms = cl_test_wait_closed(fd, 5000);      // the server hung up after ms
 *
 *   cl_test_http_reply r;
 *   cl_test_http_raw(NULL, port, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", &r, 2000);
 *
 * Every 127.x.y.z address is this machine's loopback on Linux, so a test
 * plays several clients by binding its sockets to 127.0.0.2, 127.0.0.3 ...
 * Helpers report failure by their return value (no cmocka here). */
#ifndef CL_TEST_HTTP_H
#define CL_TEST_HTTP_H

#include <stddef.h>

/* Raises this process's open-file soft limit to its hard limit; returns
 * the soft limit now in force. */
long cl_test_raise_nofile(void);

/* A TCP connection to host:port from the local address from (NULL: any),
 * waiting at most timeout_ms for the handshake. The socket is blocking.
 * Returns it, or -1. */
int cl_test_tcp_connect(const char *from, const char *host, int port, int timeout_ms);

/* Waits until the peer closes fd (end of file or a reset), discarding what
 * it sends. Returns the milliseconds waited, or -1 when fd is still open
 * after timeout_ms. Does not close fd. */
int cl_test_wait_closed(int fd, int timeout_ms);

typedef struct {
    int status;       /* the status code; 0: closed with no response; -1: timed out */
    char head[2048];  /* status line and headers, NUL-terminated (truncated) */
    char body[8192];  /* NUL-terminated (truncated) */
    size_t body_len;
} cl_test_http_reply;

/* Sends request (raw bytes, NUL-terminated) on a new connection from the
 * local address from (NULL: any) to 127.0.0.1:port and reads one response:
 * up to its Content-Length, or until the server closes. Returns
 * out->status. */
int cl_test_http_raw(const char *from, int port, const char *request, cl_test_http_reply *out,
                     int timeout_ms);
/* The same on an open connection (not closed afterwards). */
int cl_test_http_on(int fd, const char *request, cl_test_http_reply *out, int timeout_ms);

/* n requests at once, each on its own connection to 127.0.0.1:port, all
 * connecting together (non-blocking, one epoll loop): how they ended. */
typedef struct {
    int ok;         /* answered with status want */
    int other;      /* answered with another status */
    int closed;     /* the server closed or reset the connection without answering */
    int timed_out;  /* no answer within the timeout */
    int not_opened; /* the client could not open the socket */
    int last_other; /* the last other status seen */
    long slowest_ms; /* the slowest answer with status want */
} cl_test_http_flood_result;

void cl_test_http_flood(int port, const char *request, int n, int want, int timeout_ms,
                        cl_test_http_flood_result *out);

#endif
