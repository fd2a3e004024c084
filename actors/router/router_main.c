/* 'clipper run router': options, signals, and the router's lifetime. */
#include <string.h>

#include "cl_actor.h"
#include "cl_log.h"
#include "cl_router.h"

int cl_router_main(int argc, char **argv)
{
    cl_actor_opts opts;
    int rc = cl_actor_parse_args(&opts, argc, argv, "clipper run router [options]",
                                 "Queues tasks per model version by deadline, sizes batches "
                                 "(fixed or adaptive)\nand hands them to replicas that ask for "
                                 "work.");
    if (rc != 0)
        return rc == 1 ? 0 : 2;

    cl_log_set_name("router");
    cl_actor_block_signals();
    cl_bus *bus = NULL;
    if (cl_actor_connect(&bus, &opts, "clipper-router", true) != CL_OK)
        return 1; /* cl_actor_connect said why */
    cl_router *router = NULL;
    cl_err err;
    if (cl_router_start(&router, bus, &err) != CL_OK) {
        cl_error("%s", err.msg);
        cl_bus_free(bus);
        return 1;
    }
    cl_info("serving %s.route.> on %s", cl_bus_prefix(bus), cl_bus_url(bus));
    int sig = cl_actor_wait_stop();
    cl_info("stopping (%s)", sig ? strsignal(sig) : "requested");
    cl_router_free(router);
    cl_bus_free(bus);
    return 0;
}
