/* Helpers shared by the replica tests (see replica_test_util.h). */
#include "replica_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cl_test_util.h"

#ifndef RT_PYTHON3
#error "RT_PYTHON3 must be defined by the build"
#endif
#ifndef RT_MAKE_MODEL
#error "RT_MAKE_MODEL must be defined by the build"
#endif

void *rt_make_model(const char *name, size_t *len)
{
    char path[] = "/tmp/replica-test-model-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    close(fd);
    char *argv[] = {(char *)RT_PYTHON3, (char *)RT_MAKE_MODEL, (char *)name, path, NULL};
    pid_t pid = cl_test_spawn(argv);
    int rc = pid > 0 ? cl_test_wait_exit(pid, 30000) : -1;
    if (rc != 0) {
        cl_test_kill(pid);
        unlink(path);
        fprintf(stderr, "make_model.py %s failed (%d)\n", name, rc);
        return NULL;
    }
    void *data = cl_test_read_file(path, len);
    unlink(path);
    return data;
}
