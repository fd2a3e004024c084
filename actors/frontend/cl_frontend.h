/* The frontend actor's process entry point (dispatched by 'clipper run frontend'). */
#ifndef CL_FRONTEND_H
#define CL_FRONTEND_H

int cl_frontend_main(int argc, char **argv);

#endif
