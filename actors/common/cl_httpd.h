/* Starting a libmicrohttpd daemon the way every HTTP door of the project
 * does it (the frontend's queries and metrics, the admin's management
 * REST): resolve the host, bind it (IPv4 or IPv6, port 0 picks a free
 * one), log errors through MHD, and say clearly why a bind failed. */
#ifndef CL_HTTPD_H
#define CL_HTTPD_H

#include <stdbool.h>

#include <microhttpd.h>

#include "cl_status.h"

typedef struct {
    const char *what; /* for errors: "serve <what> on host:port" */
    const char *host;
    int port;          /* 0: a free port */
    unsigned flags;    /* MHD threading flags; IPv6 and the error log are added */
    MHD_AccessHandlerCallback handler;
    void *handler_cls;
    MHD_RequestCompletedCallback completed; /* may be NULL */
    void *completed_cls;
    unsigned connection_timeout_s;
    unsigned thread_pool; /* > 1: MHD_OPTION_THREAD_POOL_SIZE */
    bool reuse_address;
} cl_httpd_opts;

/* Starts the daemon; *port_out gets the port actually bound. */
cl_status cl_httpd_start(struct MHD_Daemon **out, int *port_out, const cl_httpd_opts *o,
                         cl_err *err);

#endif
