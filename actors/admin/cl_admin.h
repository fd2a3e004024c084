/* The admin actor: Clipper's management commands on <p>.admin.<command>
 * (queue group "admin"), the only writer of the cluster state.
 *
 * cl_admin_main is the process entry point (dispatched by 'clipper run
 * admin'); cl_admin_start/cl_admin_free run the same actor inside another
 * process (tests, a single-process cluster). */
#ifndef CL_ADMIN_H
#define CL_ADMIN_H

#include "cl_bus.h"
#include "cl_status.h"

int cl_admin_main(int argc, char **argv);

typedef struct cl_admin cl_admin;

/* Opens the state bucket, starts the live-replica table, the NATS service
 * API ("clipper-admin") and the worker thread that answers the commands.
 * bus is borrowed and must outlive the admin. */
cl_status cl_admin_start(cl_admin **out, cl_bus *bus, cl_err *err) CL_MUST_USE;
/* Stops answering, joins the worker and frees. NULL is a no-op. */
void cl_admin_free(cl_admin *a);

#endif
