/* A bare process around cl_admin_main, for the process-level admin tests
 * (the real entry point is 'clipper run admin'). */
#include "cl_admin.h"

int main(int argc, char **argv)
{
    return cl_admin_main(argc, argv);
}
