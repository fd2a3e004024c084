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
 * (containers through the Docker Engine API, backend_docker.c) start and
 * stop one replica at a time. A declarative backend ("kubernetes",
 * backend_kube.c: a Deployment per model version) is told the whole wanted
 * state instead (apply) and reports what runs (pods); the platform keeps
 * the counts and replaces what ends. Each embeds cl_backend as its first
 * member and fills a cl_backend_ops. */
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

/* A replica that an earlier manager started and that still runs, as a
 * backend finds it (adopt). */
typedef struct {
    cl_backend_replica rep;
    char model[128];
    char version[128];
    unsigned n; /* its replica number when known (its log file, a label); else UINT_MAX */
} cl_backend_found;

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
    const char *resources;      /* the record's resources (JSON text:
                                   {"requests": {...}, "limits": {...}}, see
                                   cl_resources.h), or NULL */
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

/* A model version a declarative backend is to run, and how many of it. */
typedef struct {
    cl_backend_spec spec; /* spec.n is not used */
    unsigned replicas;
} cl_backend_want;

/* One replica a declarative backend runs (a pod), or wants and has not
 * got yet (name ""), as cm.status shows it. */
typedef struct {
    char model[128];
    char version[128];
    char name[256];        /* the pod's name (its host name); "" when none yet */
    char container_id[128]; /* "containerd://..." or "" */
    char node[128];
    char phase[16];        /* Pending, Running, Succeeded, Failed, Unknown; "" */
    char image[256];
    bool ready;            /* passes its readiness probe */
    bool running;          /* its container runs now (not waiting to restart) */
    bool stopping;         /* being deleted */
    unsigned restarts;     /* of its container, by the platform */
    bool has_exit;
    int last_exit;         /* how its container last ended (as exit_code) */
    char last_error[512];  /* e.g. it ran out of memory; "" */
    char start_error[512]; /* why it does not run: no such image, cannot be
                              scheduled, keeps crashing, the API refused; "" */
    unsigned start_failures; /* in a row, as seen by the backend */
    uint64_t started_wall_us; /* 0: not started */
} cl_backend_pod;

/* Whatever a backend needs to start a replica that joins the bus. */
typedef struct {
    const char *nats_url; /* the URL replicas connect to */
    const char *creds;    /* their credential file; NULL: none. local: the path
                             the replica opens; docker: a file on the engine's
                             host, bind-mounted read-only into each replica
                             container (absolute path) */
    const char *tls_ca;   /* the CA they verify nats-server with; NULL: no TLS.
                             As creds for each backend */
    const char *prefix;   /* the cluster's subject prefix */
    const char *host;     /* the name this host goes by: local replicas get it
                             (--host-name) and only this host's are adopted */
    const char *log_dir;  /* where output is kept (local backend) */
    const char *command;  /* local backend: program run as '<command> run replica ...';
                             NULL: this executable */
    const char *nats_container; /* docker backend: the nats-server container, told to
                                   reload (SIGHUP) when an identity is issued */
    const char *identities; /* local and docker backends: the cluster's data directory; each
                               model's replicas get an identity of their own,
                               scoped to it, issued with '<command> creds issue
                               --model' (kept in its secrets/creds/). NULL:
                               every replica connects with creds */
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
    /* kubernetes backend (image, runtime_images and cluster as for docker) */
    const char *kubeconfig;     /* NULL: in a pod its service account, else
                                   $KUBECONFIG, else ~/.kube/config */
    const char *kube_context;   /* NULL: the kubeconfig's current context */
    const char *kube_namespace; /* NULL: the context's, or the pod's own */
    const char *pull_policy;    /* Always, IfNotPresent, Never; NULL: IfNotPresent */
    const char *kube_secret;    /* kubernetes: the Secret holding replica.creds and
                                   ca.pem, mounted read-only (0400) into each
                                   replica pod; NULL: replicas without identity */
    const char *tls_name;       /* kubernetes: the name nats-server's certificate
                                   carries, for replicas to check (--tls-name);
                                   NULL: the URL's host */
    /* Called, from any thread, when what a declarative backend runs has
     * changed (so the manager looks again at once). NULL: none. */
    void (*changed)(void *closure);
    void *changed_closure;
} cl_backend_config;

typedef struct {
    const char *name;
    /* Starts the replica spec names. */
    cl_status (*start)(cl_backend *b, const cl_backend_spec *spec, cl_backend_replica *out,
                       cl_err *err) CL_MUST_USE;
    /* Asks it to stop: SIGTERM (force: kill it now). Does not wait for it
     * to end. */
    void (*stop)(cl_backend *b, const cl_backend_replica *r, bool force);
    /* True once it has ended, with how in *end. After true, r is finished
     * with (a container has been removed). */
    bool (*poll)(cl_backend *b, const cl_backend_replica *r, cl_backend_end *end);
    /* The replicas started and not yet reported ended by poll: a malloc'd
     * array (free it) and its length. */
    size_t (*list)(cl_backend *b, cl_backend_replica **out);
    /* The replicas of this cluster that an earlier manager (one killed, or
     * one that left them on purpose) started and that still run: the
     * backend takes them as its own (stop, poll and list work on them) and
     * returns them, a malloc'd array (free it), so the manager counts them
     * instead of starting others. Called once, before the first start.
     * NULL: the backend finds none. */
    size_t (*adopt)(cl_backend *b, cl_backend_found **out);
    /* Kills and removes whatever is still running, then frees. NULL-safe
     * via cl_backend_free. A declarative backend leaves what runs to the
     * platform (the next manager adopts it). */
    void (*free)(cl_backend *b);
    /* Declarative backends set these two and leave start, poll and list
     * NULL; stop(r) then deletes the replica named r->name (a pod: the
     * platform replaces it), at once when force.
     * apply makes what runs match wants, the whole wanted state: versions
     * not in it are removed. It returns after a few API calls at most,
     * without waiting for replicas to start. An error (the API refused)
     * also shows in pods, as start_error of the versions it hit. */
    cl_status (*apply)(cl_backend *b, const cl_backend_want *wants, size_t n, cl_err *err)
        CL_MUST_USE;
    /* What runs now, and rows for wanted replicas not running yet: a
     * malloc'd array (free it) and its length. */
    size_t (*pods)(cl_backend *b, cl_backend_pod **out);
} cl_backend_ops;

struct cl_backend {
    const cl_backend_ops *ops;
};

/* Creates the backend named name ("local", "docker", "kubernetes";
 * NULL: "local").
 * CL_ERR_INVALID naming the known backends when there is no such one. */
cl_status cl_backend_new(cl_backend **out, const char *name, const cl_backend_config *cfg,
                         cl_err *err) CL_MUST_USE;
void cl_backend_free(cl_backend *b);

/* The local backend: each replica is a child process
 * '<command> run replica --nats URL --prefix P --model M --version V'
 * with its output appended to <log_dir>/<model>_<version>-<n>.log. */
cl_status cl_backend_local_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err)
    CL_MUST_USE;

/* The docker backend: each replica is a container on cfg->network running
 *   clipper run replica --nats URL --prefix P --model M --version V --replica-id ID
 * (plus --creds /run/clipper/creds/replica.creds and --tls-ca
 * /run/clipper/ca.pem when cfg->creds and cfg->tls_ca name files on the
 * engine's host, which are bind-mounted read-only there as single files;
 * only their paths are in the container's command, never a secret)
 * named <cluster>-<model>-<version>-<n>-<6 hex> and labelled
 *   ai.clipper.container.label=<cluster>
 *   ai.clipper.model_container.label=<model>_<version>
 *   ai.clipper.replica=<n>, ai.clipper.replica_id=<ID>,
 *   ai.clipper.model=<model>, ai.clipper.version=<version>,
 *   ai.clipper.nats=<URL>, ai.clipper.prefix=<P>.
 * Creating it checks that the engine answers, the network and the image
 * exist (each a clear error). adopt takes the running replica containers a
 * killed manager left (same bus and prefix, with those labels) and removes
 * the ended or unlabelled ones. A stop is a signal (SIGTERM, or
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
 * the other runtimes' images. The model's resources become the container's
 * limits: limits.cpu (NanoCpus), limits.memory (Memory) and
 * requests.memory (MemoryReservation). */
cl_status cl_backend_docker_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err)
    CL_MUST_USE;

/* The kubernetes backend (declarative): each model version is a
 * Deployment in the namespace, named <model>-<version>-at-<cluster> (made a
 * DNS label; a hash added when it had to change), with spec.replicas the
 * wanted count, labelled
 *   ai.clipper.container.label=<cluster>
 *   ai.clipper.model_container.label=<model>_<version>
 * (label values; a hash added when they had to change), annotated with the
 * exact model and version, and running
 *   clipper run replica --nats URL --prefix P --model M --version V
 *                       --health-port 9102
 * whose /ready and /live answer the pod's probes. Scaling patches
 * spec.replicas; a changed pod template (another image, resources)
 * replaces the Deployment's spec, rolling. Deployments and pods are
 * watched (never polled). Images as for docker (cl_replica_image.h) with
 * the defaults localhost/clipper/python-closure:latest and
 * localhost/clipper/pyspark:latest. Creating it reads the credentials and
 * checks that the API server answers and the namespace exists. */
cl_status cl_backend_kube_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err)
    CL_MUST_USE;

#endif
