/* The container-manager actor's process entry point ('clipper run manager'). */
#ifndef CL_MANAGER_H
#define CL_MANAGER_H

int cl_manager_main(int argc, char **argv);

#endif
