/* The router actor's process entry point (dispatched by 'clipper run router'). */
#ifndef CL_ROUTER_H
#define CL_ROUTER_H

int cl_router_main(int argc, char **argv);

#endif
