/* The container-manager actor: keeps as many replicas of each model version
 * running as its KV entry wants (num_replicas), through a backend (see
 * cl_backend.h: "local", child processes; "docker", containers through the
 * Docker Engine API; "kubernetes", a Deployment per version through the
 * Kubernetes API, which keeps the count itself: the manager applies the
 * wanted state on every change and reports the pods).
 *
 * It watches the cluster state (cl_view) and reconciles on every change and
 * every 500 ms: starts missing replicas, stops extras (SIGTERM, then
 * SIGKILL after the grace period), stops every replica of a deleted model
 * version, and replaces a replica that ended (a container that exited or
 * was removed by hand). One that keeps ending is
 * restarted after 0.5 s, 1 s, 2 s, ... up to 30 s (the count resets once
 * one has run for 30 s), and each end is logged with the last lines of the
 * replica's output. A replica that has sent heartbeats and then stays
 * silent (twice CL_REPLICA_TIMEOUT_MS) while its process lives is hung: it
 * is killed and so replaced. Heartbeats are matched to replicas by the
 * replica id when the backend chose it (docker), else by host and pid.
 *
 * It answers, on the bus (request/reply, JSON):
 *   <p>.cm.status  -> [{"model","version","replica","state","pid",
 *                       "container_id","container_name","started_at",
 *                       "restarts","last_exit","last_exit_code","last_error",
 *                       "start_error","start_failures","image",
 *                       "log_file","replica_id","heartbeat","cause",
 *                       "next_start_at"}, ...]
 *                     replica is the manager's number for it (0, 1, ...);
 *                     state is "running", "stopping" or "waiting" (ended,
 *                     restart pending, at next_start_at); pid (local) and
 *                     container_id/container_name (docker) are null when
 *                     not that kind or nothing runs; last_exit is e.g.
 *                     "exit code 3" or null; last_error is the last thing
 *                     that went wrong (a failed start, a container removed
 *                     by hand, killed as hung) or null; start_error is
 *                     why the last start failed (no such image, say), null
 *                     once one succeeds, and start_failures how many
 *                     starts failed in a row; image is the image a
 *                     container runs (null when none); log_file is null
 *                     for containers (the engine keeps their log);
 *                     replica_id is the one its heartbeats carry (known
 *                     from the start for docker); heartbeat is the state the
 *                     replica last announced ("starting", "ready", "failed"
 *                     with cause, or "silent") or null before its first.
 *                     With the kubernetes backend a row is a pod (or a
 *                     wanted replica with no pod yet: state "waiting",
 *                     container_name null), container_name its name,
 *                     container_id its container's, restarts the
 *                     kubelet's count, and it has also "pod", "node",
 *                     "phase" and "ready" (its readiness probe passes).
 *   <p>.cm.logs    -> {"host","log_dir","files":[<every file in log_dir>]}
 * (the request body is ignored), and the NATS service API as
 * "clipper-manager". */
#ifndef CL_MANAGER_H
#define CL_MANAGER_H

#include "cl_bus.h"
#include "cl_status.h"

typedef struct cl_manager cl_manager;

#define CL_MANAGER_MAX_RUNTIME_IMAGES 8

typedef struct {
    const char *backend;     /* NULL: "local"; or "docker" */
    const char *log_dir;     /* NULL: ./clipper_logs */
    const char *replica_cmd; /* local: program run as '<cmd> run replica ...'; NULL:
                                env CLIPPER_REPLICA_CMD, else this executable */
    const char *nats_url;    /* the URL given to replicas; NULL: the bus' URL */
    const char *replica_creds;  /* the credential file replicas connect with
                                   (role replica); NULL: none. docker: a file
                                   on the engine's host, which the backend
                                   bind-mounts into each replica container */
    const char *nats_container;     /* docker: the nats-server's container (reloaded
                                       when an identity is issued) */
    const char *replica_identities; /* local, docker: the cluster's data directory, whose
                                       secrets issue each model's replicas an
                                       identity scoped to it (instead of
                                       replica_creds); NULL: none */
    const char *replica_tls_ca; /* the CA replicas verify nats-server with;
                                   NULL: none (no TLS). docker: as
                                   replica_creds */
    const char *host_name;   /* the name this host goes by (placement, status);
                                NULL: cl_host_name() */
    int reconcile_ms;        /* 0: 500 */
    int stop_grace_ms;       /* SIGTERM to SIGKILL; 0: 5000 */
    /* docker backend (see cl_backend_docker_new) */
    const char *docker_host;        /* NULL: $DOCKER_HOST, else unix:///var/run/docker.sock */
    const char *docker_network;     /* required */
    const char *image;              /* python-closure's; NULL: clipper/python-closure:latest */
    const char *runtime_images[CL_MANAGER_MAX_RUNTIME_IMAGES]; /* "RUNTIME=IMAGE" each */
    size_t n_runtime_images;
    const char *cluster;            /* NULL: the bus prefix */
    const char *replica_entrypoint; /* JSON array replacing the image's entrypoint; tests */
    /* kubernetes backend (see cl_backend_kube_new) */
    const char *kubeconfig;     /* NULL: in a pod its service account, else
                                   $KUBECONFIG, else ~/.kube/config */
    const char *kube_context;   /* NULL: the kubeconfig's current context */
    const char *kube_namespace; /* NULL: the context's, or the pod's own */
    const char *pull_policy;    /* NULL: IfNotPresent */
    const char *replica_secret; /* kubernetes: the Secret of the replicas' identity
                                   (replica.creds and ca.pem); NULL: none */
    const char *replica_tls_name; /* the name replicas check nats-server's
                                     certificate for; NULL: the URL's host */
} cl_manager_opts;

void cl_manager_opts_init(cl_manager_opts *opts);

/* Starts watching the state of bus' cluster and reconciling. bus is
 * borrowed and must outlive the manager. */
cl_status cl_manager_start(cl_manager **out, cl_bus *bus, const cl_manager_opts *opts,
                           cl_err *err) CL_MUST_USE;
/* Stops every replica it started (SIGTERM, SIGKILL after the grace period),
 * waits for them (containers: and removes them), and frees. NULL is a
 * no-op. */
void cl_manager_free(cl_manager *m);

/* The process entry point ('clipper run manager'). */
int cl_manager_main(int argc, char **argv);

#endif
