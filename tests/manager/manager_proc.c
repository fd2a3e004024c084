/* The container manager as a process of its own, without the other actors
 * that the clipper program links: lets a test send it SIGTERM. */
#include "cl_manager.h"

int main(int argc, char **argv)
{
    return cl_manager_main(argc, argv);
}
