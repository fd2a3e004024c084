/* The replica as a process of its own, for the integration tests (so they
 * do not depend on the clipper CLI). */
#include "cl_replica.h"

int main(int argc, char **argv)
{
    return cl_replica_main(argc, argv);
}
