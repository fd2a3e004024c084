/* The container manager's backends: where a model replica runs.
 *
 * A backend starts one replica of model:version, stops one, tells whether
 * one has ended (and how), shows the end of its output, and lists what it
 * has running. The manager's reconcile loop decides what to start and stop;
 * a backend keeps no wanted counts of its own. Every call is made from the
 * manager's reconcile thread and must not block for long (start may take
 * as long as a fork/exec or one API call).
 *
 * A new backend (Docker Engine API, Kubernetes API) embeds cl_backend as
 * its first member and fills a cl_backend_ops. */
#ifndef CL_BACKEND_H
#define CL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "cl_status.h"

typedef struct cl_backend cl_backend;

/* One replica as the backend knows it. */
typedef struct {
    char id[64];    /* the backend's name for it: a pid, a container id */
    int pid;        /* local processes; 0 when not a local process */
    char log[1024]; /* where its output goes: a file path, or a backend URL */
    int wait_fd;    /* readable once it has ended (a pidfd), owned by the backend;
                       -1 when the backend cannot tell (the manager then polls) */
} cl_backend_replica;

/* Whatever a backend needs to start a replica that joins the bus. */
typedef struct {
    const char *nats_url; /* the URL replicas connect to */
    const char *prefix;   /* the cluster's subject prefix */
    const char *log_dir;  /* where output is kept (local backend) */
    const char *command;  /* local backend: program run as '<command> run replica ...';
                             NULL: this executable */
} cl_backend_config;

typedef struct {
    const char *name;
    /* Starts replica number n (0, 1, ...) of model:version. */
    cl_status (*start)(cl_backend *b, const char *model, const char *version, unsigned n,
                       cl_backend_replica *out, cl_err *err);
    /* Asks it to stop (force: kill it now). Does not wait. */
    void (*stop)(cl_backend *b, const cl_backend_replica *r, bool force);
    /* True once it has ended; *exit_code is its exit code (>= 0) or minus
     * the signal that ended it. After true, r is finished with. */
    bool (*poll)(cl_backend *b, const cl_backend_replica *r, int *exit_code);
    /* The last lines of its output (at most size-1 bytes, NUL-terminated;
     * empty when there is none). */
    void (*tail)(cl_backend *b, const cl_backend_replica *r, char *buf, size_t size);
    /* The replicas started and not yet reported ended by poll: a malloc'd
     * array (free it) and its length. */
    size_t (*list)(cl_backend *b, cl_backend_replica **out);
    /* Kills and reaps whatever is still running, then frees. NULL-safe via
     * cl_backend_free. */
    void (*free)(cl_backend *b);
} cl_backend_ops;

struct cl_backend {
    const cl_backend_ops *ops;
};

/* Creates the backend named name ("local"). CL_ERR_INVALID naming the
 * known backends when there is no such one. */
cl_status cl_backend_new(cl_backend **out, const char *name, const cl_backend_config *cfg,
                         cl_err *err);
void cl_backend_free(cl_backend *b);

/* The local backend: each replica is a child process
 * '<command> run replica --nats URL --prefix P --model M --version V'
 * with its output appended to <log_dir>/<model>_<version>-<n>.log. */
cl_status cl_backend_local_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err);

#endif
