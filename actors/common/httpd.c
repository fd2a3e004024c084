/* See cl_httpd.h. */
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cl_httpd.h"

cl_status cl_httpd_start(struct MHD_Daemon **out, int *port_out, const cl_httpd_opts *o,
                         cl_err *err)
{
    if (o->port < 0 || o->port > 65535)
        return cl_err_set(err, CL_ERR_INVALID, "the port for %s must be 0 to 65535, got %d",
                          o->what, o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", o->port);
    int rc = getaddrinfo(o->host, port, &hints, &ai);
    if (rc != 0)
        return cl_err_set(err, CL_ERR_INVALID, "cannot serve %s on host '%s': %s", o->what,
                          o->host, gai_strerror(rc));
    unsigned flags = o->flags | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->connection_timeout_s, NULL},
        {MHD_OPTION_END, 0, NULL}, /* reuse address */
        {MHD_OPTION_END, 0, NULL}, /* completion callback */
        {MHD_OPTION_END, 0, NULL}, /* thread pool */
        {MHD_OPTION_END, 0, NULL},
    };
    size_t n = 2;
    if (o->reuse_address)
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL};
    if (o->completed != NULL)
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                               (intptr_t)o->completed, o->completed_cls};
    if (o->thread_pool > 1) /* a pool of one is no pool: MHD warns */
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                               (intptr_t)o->thread_pool, NULL};
    errno = 0;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, o->handler,
                                            o->handler_cls, MHD_OPTION_ARRAY, options,
                                            MHD_OPTION_END);
    int saved = errno;
    freeaddrinfo(ai);
    if (d == NULL)
        return cl_err_set(err, CL_ERR_IO, "cannot serve %s on %s:%d: %s", o->what, o->host,
                          o->port, saved ? strerror(saved) : "the port is in use or not allowed");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info != NULL ? info->port : o->port;
    *out = d;
    return CL_OK;
}
