/* A small Docker Engine REST client (API v1.41) over the engine's unix
 * socket, with libcurl and cJSON. Podman's Docker-compatible service
 * answers it too; this is what the container manager's docker backend and
 * its tests speak to the engine with, instead of the docker command.
 *
 * Every call is one HTTP request with a bounded time (connect 3 s, answer
 * 15 s unless said otherwise) and fails with a message that says what was
 * tried and why:
 *   "starting container X: <the engine's message> (HTTP 500)"
 *   "cannot reach the container engine at unix:///run/docker.sock: ...;
 *    is it running? (images/engine.sh starts one)"
 * Statuses: CL_ERR_NOT_FOUND (HTTP 404: no such container, image or
 * network), CL_ERR_CONFLICT (HTTP 409, or a container not in the state the
 * call needs), CL_ERR_INVALID (HTTP 400, or a bad engine address),
 * CL_ERR_UNREACHABLE (no engine answers), CL_ERR_TIMEOUT, CL_ERR_IO (any
 * other engine error or a reply we cannot read).
 *
 * A cl_docker keeps one connection; use it from one thread at a time. */
#ifndef CL_DOCKER_H
#define CL_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_status.h"

#define CL_DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"

typedef struct cl_docker cl_docker;

/* Opens a client for the engine at url ("unix:///path/to/socket"); NULL
 * or "": $DOCKER_HOST, else CL_DOCKER_DEFAULT_HOST. Does not contact the
 * engine (see cl_docker_ping). CL_ERR_INVALID naming the address and where
 * it came from when it is not a unix socket (tcp://, ssh://, ...). */
cl_status cl_docker_new(cl_docker **out, const char *url, cl_err *err) CL_MUST_USE;
void cl_docker_free(cl_docker *d);
/* The engine's address as given ("unix:///..."); lives as long as d. */
const char *cl_docker_url(const cl_docker *d);

/* GET /_ping: CL_OK when the engine answers. */
cl_status cl_docker_ping(cl_docker *d, cl_err *err) CL_MUST_USE;

/* Creates (does not start) container name with config, the body of
 * POST /containers/create ({"Image", "Cmd", "Labels", "HostConfig", ...};
 * borrowed). Writes its id (NUL-terminated) into id. An image the engine
 * does not have is CL_ERR_NOT_FOUND with a message naming it and saying to
 * build it with images/build.sh; a name in use is CL_ERR_CONFLICT. */
cl_status cl_docker_create(cl_docker *d, const char *name, const cJSON *config, char *id,
                           size_t id_size, cl_err *err) CL_MUST_USE;
cl_status cl_docker_start(cl_docker *d, const char *id, cl_err *err) CL_MUST_USE;
/* SIGTERM, then SIGKILL after timeout_s; waits for it to end (so may take
 * timeout_s seconds). Stopping a stopped container is CL_OK. */
cl_status cl_docker_stop(cl_docker *d, const char *id, int timeout_s, cl_err *err) CL_MUST_USE;
/* Sends signal ("SIGTERM", "SIGKILL") without waiting. CL_ERR_CONFLICT
 * when it is not running. */
cl_status cl_docker_kill(cl_docker *d, const char *id, const char *signal, cl_err *err) CL_MUST_USE;
/* Removes it (force: also when running, killing it) with its anonymous
 * volumes. CL_ERR_NOT_FOUND when there is no such container. */
cl_status cl_docker_remove(cl_docker *d, const char *id, bool force, cl_err *err) CL_MUST_USE;

/* What GET /containers/{id}/json says of a container. */
typedef struct {
    char id[80];
    char name[256];   /* without the leading '/' */
    char status[32];  /* "created", "running", "exited", ... */
    bool running;
    bool oom_killed;
    bool tty;
    int exit_code;    /* meaningful once it has run and ended */
    char error[512];  /* the engine's error for it (a failed start), or "" */
    char image[256];  /* as the container was created with */
    int64_t memory_limit; /* bytes; 0: none */
    int64_t nano_cpus;    /* CPU limit in 1e-9 CPUs; 0: none */
} cl_docker_state;

/* CL_ERR_NOT_FOUND when there is no such container. */
cl_status cl_docker_inspect(cl_docker *d, const char *id, cl_docker_state *out, cl_err *err)
    CL_MUST_USE;

/* One row of GET /containers/json. */
typedef struct {
    char id[80];
    char name[256];  /* without the leading '/' */
    char state[32];  /* "running", "exited", ... */
    char image[256]; /* as the container was created with ("" if not said) */
    cJSON *labels;   /* the engine's object of labels; owned by the list */
} cl_docker_container;

/* Every container (running or not) that carries all of labels: each
 * "key=value" or "key" (any value); NULL-terminated, NULL or empty: all.
 * Free *out with cl_docker_list_free. */
cl_status cl_docker_list(cl_docker *d, const char *const *labels, cl_docker_container **out,
                         size_t *count, cl_err *err) CL_MUST_USE;
void cl_docker_list_free(cl_docker_container *list, size_t count);
/* The value of label key of c, or NULL. Borrowed from c. */
const char *cl_docker_label(const cl_docker_container *c, const char *key);

/* The last tail lines (tail <= 0: all) of the container's stdout and
 * stderr, interleaved as written, demultiplexed (or raw when the container
 * has a TTY): a malloc'd NUL-terminated string in *out. */
cl_status cl_docker_logs(cl_docker *d, const char *id, int tail, char **out, cl_err *err)
    CL_MUST_USE;

/* CL_OK when the image is there; CL_ERR_NOT_FOUND naming it and saying to
 * build it with images/build.sh when not. */
cl_status cl_docker_image_check(cl_docker *d, const char *image, cl_err *err) CL_MUST_USE;

/* CL_OK when the network exists, CL_ERR_NOT_FOUND when not. */
cl_status cl_docker_network_inspect(cl_docker *d, const char *name, cl_err *err) CL_MUST_USE;
/* A bridge network with labels (an object of strings, borrowed; may be
 * NULL). CL_ERR_CONFLICT when one of that name exists. */
cl_status cl_docker_network_create(cl_docker *d, const char *name, const cJSON *labels,
                                   cl_err *err) CL_MUST_USE;
cl_status cl_docker_network_remove(cl_docker *d, const char *name, cl_err *err) CL_MUST_USE;

/* ---- Pure helpers (no engine), exposed for the unit tests. ---- */

/* The socket path of a "unix:///path" address (also a bare "/path") into
 * path. CL_ERR_INVALID naming the address, and source (e.g. "DOCKER_HOST")
 * when not NULL, for any other scheme, a relative or too long path. */
cl_status cl_docker_socket_path(const char *url, const char *source, char *path, size_t size,
                                cl_err *err) CL_MUST_USE;

/* Turns a logs reply into plain text, in place: removes the 8-byte frame
 * headers (stream byte 0-2, three zero bytes, a big-endian length) of the
 * multiplexed stream. Where the data is not a valid frame (a TTY's raw
 * stream, or tty true) the rest is kept as it is. A frame cut short keeps
 * its bytes. Returns the new length. */
size_t cl_docker_demux(char *buf, size_t len, bool tty);

/* The engine's error text from an error reply body ({"message": ...}, or
 * the body itself when it is not that), at most size-1 bytes, into buf. */
void cl_docker_error_text(const char *body, size_t len, char *buf, size_t size);

#endif
