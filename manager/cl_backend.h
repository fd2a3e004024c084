/* The container manager's backends: where a model replica runs.
 *
 * A backend starts one replica of model:version, stops one, tells whether
 * one has ended (how, and its last lines of output), and lists what it has
 * running. The manager's reconcile loop decides what to start and stop; a
 * backend keeps no wanted counts of its own. Every call is made from the
 * manager's reconcile thread and must not block for long (start may take
 * as long as a fork/exec or a few engine API calls; stop only asks).
 *
 * Backends: "local" (child processes, backend_local.c) and "docker"
 * (containers through the Docker Engine API, backend_docker.c). A new one
 * (Kubernetes API) embeds cl_backend as its first member and fills a
 * cl_backend_ops. */
#ifndef CL_BACKEND_H
#define CL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_status.h"

typedef struct cl_backend cl_backend;

/* One replica as the backend knows it. */
typedef struct {
    char id[80];    /* the backend's name for it: a pid, a container id */
    int pid;        /* local processes; 0 when not a local process */
    char name[256]; /* its container's name; "" when it is not a container */
    char log[1024]; /* the file its output goes to; "" when the backend keeps
                       it (a container's log: see cl_backend_end.tail) */
    char image[256]; /* the image its container runs; "" when not a container */
    int wait_fd;    /* readable once it has ended (a pidfd), owned by the backend;
                       -1 when the backend cannot tell (the manager then polls) */
    bool has_replica_id; /* the backend chose the replica's id ('clipper run
                            replica --replica-id'): its heartbeats are matched
                            by it. Otherwise by host and pid. */
    uint32_t replica_id;
} cl_backend_replica;

/* What to start: replica number n (0, 1, ...) of model:version, and what
 * its model record says it runs. */
typedef struct {
    const char *model;
    const char *version;
    unsigned n;
    const char *runtime;        /* the record's runtime ("python-closure",
                                   "pyspark", ...); NULL or "": python-closure */
    const char *container_name; /* the record's container_name (Clipper's
                                   image field): the runtime's name, "default",
                                   one of Clipper's stock image names, or an
                                   image of the user's; NULL: none */
} cl_backend_spec;

/* How a replica ended, as poll reports it. */
typedef struct {
    int exit_code;   /* >= 0, minus the signal that ended it, or -1000 when
                        not known (a container removed by someone else) */
    char error[512]; /* what the backend knows beyond the exit code ("" if
                        nothing): the container was removed by hand, it ran
                        out of memory, the engine's error */
    char tail[1200]; /* the last lines of its output ("" when none) */
} cl_backend_end;

/* Whatever a backend needs to start a replica that joins the bus. */
typedef struct {
    const char *nats_url; /* the URL replicas connect to */
    const char *prefix;   /* the cluster's subject prefix */
    const char *log_dir;  /* where output is kept (local backend) */
    const char *command;  /* local backend: program run as '<command> run replica ...';
                             NULL: this executable */
    /* docker backend */
    const char *docker_host;    /* engine address; NULL: $DOCKER_HOST, else the default */
    const char *network;        /* the network replica containers join (required) */
    const char *image;          /* the python-closure runtime's image;
                                   NULL: clipper/python-closure:latest */
    const char *const *runtime_images; /* "RUNTIME=IMAGE" each: the image of
                                          another runtime's replicas (pyspark:
                                          clipper/pyspark:latest by default) */
    size_t n_runtime_images;
    const char *cluster;        /* label ai.clipper.container.label; NULL: the prefix */
    const char *entrypoint;     /* JSON array of strings replacing the image's
                                   entrypoint (the replica command becomes its
                                   arguments); NULL: the image's. For tests. */
} cl_backend_config;

typedef struct {
    const char *name;
    /* Starts the replica spec names. */
    cl_status (*start)(cl_backend *b, const cl_backend_spec *spec, cl_backend_replica *out,
                       cl_err *err);
    /* Asks it to stop: SIGTERM (force: kill it now). Does not wait for it
     * to end. */
    void (*stop)(cl_backend *b, const cl_backend_replica *r, bool force);
    /* True once it has ended, with how in *end. After true, r is finished
     * with (a container has been removed). */
    bool (*poll)(cl_backend *b, const cl_backend_replica *r, cl_backend_end *end);
    /* The replicas started and not yet reported ended by poll: a malloc'd
     * array (free it) and its length. */
    size_t (*list)(cl_backend *b, cl_backend_replica **out);
    /* Kills and removes whatever is still running, then frees. NULL-safe
     * via cl_backend_free. */
    void (*free)(cl_backend *b);
} cl_backend_ops;

struct cl_backend {
    const cl_backend_ops *ops;
};

/* Creates the backend named name ("local", "docker"; NULL: "local").
 * CL_ERR_INVALID naming the known backends when there is no such one. */
cl_status cl_backend_new(cl_backend **out, const char *name, const cl_backend_config *cfg,
                         cl_err *err);
void cl_backend_free(cl_backend *b);

/* The local backend: each replica is a child process
 * '<command> run replica --nats URL --prefix P --model M --version V'
 * with its output appended to <log_dir>/<model>_<version>-<n>.log. */
cl_status cl_backend_local_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err);

/* The docker backend: each replica is a container on cfg->network running
 *   clipper run replica --nats URL --prefix P --model M --version V --replica-id ID
 * named <cluster>-<model>-<version>-<n>-<6 hex> and labelled
 *   ai.clipper.container.label=<cluster>
 *   ai.clipper.model_container.label=<model>_<version>
 *   ai.clipper.replica=<n>, ai.clipper.replica_id=<ID>.
 * Creating it checks that the engine answers, the network and the image
 * exist (each a clear error), and removes the replica containers of the
 * cluster a killed manager left behind. A stop is a signal (SIGTERM, or
 * SIGKILL when forced); an ended container is removed once poll has read
 * its exit code and last lines.
 *
 * Its image: the model's container_name when that names an image of the
 * user's (a base_image given at deploy); otherwise (the runtime's name,
 * "default", none, or one of Clipper's stock images such as
 * clipper/pyspark-container:0.4.1, which do not exist here) the image of
 * the model's runtime: cfg->image for python-closure, cfg->runtime_images
 * for the others (pyspark: clipper/pyspark:latest unless given). A runtime
 * with no image is a start error saying how to give one. Creating the
 * backend fails when the python-closure image is missing, and warns for
 * the other runtimes' images. */
cl_status cl_backend_docker_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err);

#endif
