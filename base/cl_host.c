/* See cl_host.h. */
#include "cl_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void cl_host_name(char *out, size_t size)
{
    if (size == 0)
        return;
    const char *env = getenv("CLIPPER_HOST_NAME");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, size, "%s", env);
        return;
    }
    out[size - 1] = '\0';
    if (gethostname(out, size - 1) != 0 || out[0] == '\0')
        snprintf(out, size, "unknown");
}
