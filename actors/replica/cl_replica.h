/* The replica actor's process entry point (dispatched by 'clipper run replica'). */
#ifndef CL_REPLICA_H
#define CL_REPLICA_H

int cl_replica_main(int argc, char **argv);

#endif
