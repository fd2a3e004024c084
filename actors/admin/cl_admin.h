/* The admin actor's process entry point (dispatched by 'clipper run admin'). */
#ifndef CL_ADMIN_H
#define CL_ADMIN_H

int cl_admin_main(int argc, char **argv);

#endif
