/* The container engine for the docker tests (cl_test_engine.h). */
#include "cl_test_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cl_test_engine_url(void)
{
    static char url[300];
    const char *env = getenv("DOCKER_HOST");
    if (env != NULL && env[0] != '\0')
        return env;
    const char *run = getenv("XDG_RUNTIME_DIR");
    char path[256];
    snprintf(path, sizeof(path), "%s/clipper-engine/podman.sock", run && run[0] ? run : "/tmp");
    if (access(path, F_OK) == 0) {
        snprintf(url, sizeof(url), "unix://%s", path);
        return url;
    }
    return CL_DOCKER_DEFAULT_HOST;
}

const char *cl_test_image(void)
{
    const char *env = getenv("CLIPPER_TEST_IMAGE");
    return env != NULL && env[0] != '\0' ? env : "clipper/base:latest";
}

int cl_test_engine_open(cl_docker **out)
{
    *out = NULL;
    const char *url = cl_test_engine_url();
    const char *skip = getenv("CLIPPER_TEST_NO_ENGINE");
    bool may_skip = skip != NULL && strcmp(skip, "1") == 0;
    cl_docker *d = NULL;
    cl_err err;
    if (cl_docker_new(&d, url, &err) != CL_OK || cl_docker_ping(d, &err) != CL_OK) {
        cl_docker_free(d);
        if (may_skip) {
            fprintf(stderr, "skipped: %s (CLIPPER_TEST_NO_ENGINE=1)\n", err.msg);
            return CL_TEST_SKIP;
        }
        fprintf(stderr,
                "FAILED: these tests need a container engine and none answers:\n  %s\n"
                "Start one with images/engine.sh and export the DOCKER_HOST it prints, or set "
                "CLIPPER_TEST_NO_ENGINE=1 to skip these tests.\n",
                err.msg);
        return 1;
    }
    if (cl_docker_image_check(d, cl_test_image(), &err) != CL_OK) {
        cl_docker_free(d);
        fprintf(stderr,
                "FAILED: %s\n(or set CLIPPER_TEST_IMAGE to an image with sh and sleep, e.g. "
                "clipper/devbox:latest from tests/manager/devbox.sh)\n",
                err.msg);
        return 1;
    }
    setenv("DOCKER_HOST", url, 1);
    *out = d;
    return 0;
}

int cl_test_engine_remove_labelled(cl_docker *d, const char *label)
{
    const char *labels[] = {label, NULL};
    cl_docker_container *list = NULL;
    size_t n = 0;
    cl_err err;
    if (cl_docker_list(d, labels, &list, &n, &err) != CL_OK) {
        fprintf(stderr, "cleaning up: %s\n", err.msg);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (cl_docker_remove(d, list[i].id, true, &err) != CL_OK)
            fprintf(stderr, "cleaning up: %s\n", err.msg);
    }
    cl_docker_list_free(list, n);
    return (int)n;
}
