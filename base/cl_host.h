/* The name this host goes by in what the actors report (heartbeats,
 * supervisor status, router stats, the manager's placement): the
 * environment's CLIPPER_HOST_NAME when set, else the system's host name.
 * Hosts that share a kernel's host name (network namespaces, containers
 * with the host's UTS namespace) are told apart by setting it. */
#ifndef CL_HOST_H
#define CL_HOST_H

#include <stddef.h>

/* Writes the name (NUL-terminated, cut to size - 1) to out; "unknown" when
 * there is none. */
void cl_host_name(char *out, size_t size);

#endif
