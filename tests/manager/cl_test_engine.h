/* The container engine for the docker tests: which one, and whether it
 * answers.
 *
 * The engine is $DOCKER_HOST, else the socket images/engine.sh starts
 * (${XDG_RUNTIME_DIR:-/tmp}/clipper-engine/podman.sock) when it exists,
 * else unix:///var/run/docker.sock. Tests run against it for real. When no
 * engine answers the test program fails and says how to start one; with
 * CLIPPER_TEST_NO_ENGINE=1 it is skipped instead (exit 77).
 *
 * The image test containers run is $CLIPPER_TEST_IMAGE, else
 * clipper/base:latest (images/build.sh); it needs sh and sleep only, so
 * clipper/devbox:latest (tests/manager/devbox.sh, busybox) serves too. */
#ifndef CL_TEST_ENGINE_H
#define CL_TEST_ENGINE_H

#include "cl_docker.h"

#define CL_TEST_SKIP 77

/* The engine's address (see above); a static string. */
const char *cl_test_engine_url(void);
/* The image for test containers (see above). */
const char *cl_test_image(void);

/* Connects to the engine, checks it answers and has the test image, and
 * sets DOCKER_HOST to it for child processes. Returns 0 with *out, or the
 * exit code main should return (1 after saying why on stderr, or
 * CL_TEST_SKIP) with *out NULL. */
int cl_test_engine_open(cl_docker **out);

/* Force-removes every container carrying label (key=value); returns how
 * many, -1 when the engine could not list them. */
int cl_test_engine_remove_labelled(cl_docker *d, const char *label);

#endif
