/* 'clipper run manager': the container manager as a process. Parses its
 * options, joins the bus, runs cl_manager until SIGINT/SIGTERM, then stops
 * every replica it started and exits 0. Bad options exit 2, a manager that
 * cannot start (no engine, no such network or image) exits 1. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_actor.h"
#include "cl_docker.h"
#include "cl_log.h"
#include "cl_manager.h"
#include "cl_placement.h"

static const char CMD[] = "clipper run manager";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clipper run manager [options]\n"
            "\n"
            "Runs the container manager: keeps as many replicas of each model version\n"
            "running as the cluster state wants, restarts those that end, and answers\n"
            "<prefix>.cm.status and <prefix>.cm.logs.\n"
            "\n"
            "options:\n"
            "%s"
            "  --backend NAME      where replicas run: local (child processes; default),\n"
            "                      docker (containers, through the Docker Engine API) or\n"
            "                      kubernetes (a Deployment per model version, through the\n"
            "                      Kubernetes API)\n"
            "  --replica-nats URL  the NATS URL replicas connect to (default: --nats)\n"
            "  --replica-creds FILE  the credential replicas connect with (role replica)\n"
            "  --replica-identities DATA  give each model's replicas an\n"
            "                    identity of their own, scoped to that model, issued\n"
            "                    from the secrets of the cluster's data directory DATA\n"
            "                    ('clipper creds issue --model'; clipper start does this).\n"
            "                    docker backend: DATA is the same path in the manager's\n"
            "                    container as on the engine's host, and --nats-container\n"
            "                    NAME is the nats-server's container, told to reload\n"
            "  --replica-tls-ca FILE  the CA replicas verify nats-server with (default:\n"
            "                    --tls-ca)\n"
            "                    docker backend: both are files on the container engine's\n"
            "                    host (absolute paths), bind-mounted read-only into each\n"
            "                    replica container; a manager that runs in a container\n"
            "                    gives their host paths, not its own --tls-ca's\n"
            "  --host-name NAME    the name this host goes by (env CLIPPER_HOST_NAME;\n"
            "                    default: the system's host name). Managers of one\n"
            "                    cluster on several hosts spread each version's replicas\n"
            "                    over the hosts by it (docs/operation.md, \"Several hosts\");\n"
            "                    <prefix>.cm.hosts shows the placement, <prefix>.cm.drain\n"
            "                    {\"host\": NAME} moves a host's replicas to the others\n"
            "  --log-dir DIR       replica logs (default ./clipper_logs, or DATA/logs)\n"
            "  --data-dir DATA     keep replica logs under DATA/logs\n"
            "  --replica-cmd PROG  local: run PROG instead of this program for replicas\n"
            "                      (env CLIPPER_REPLICA_CMD; for tests)\n"
            "\n"
            "docker backend:\n"
            "  --docker-network NET  the network replica containers join (required;\n"
            "                        'host' for the engine host's network)\n"
            "  --docker-host URL     the engine's socket, unix:///path (default: env\n"
            "                        DOCKER_HOST, else " CL_DOCKER_DEFAULT_HOST ")\n"
            "  --image IMG           the image of python-closure replicas (default\n"
            "                        clipper/python-closure:latest)\n"
            "  --image RUNTIME=IMG   the image of another runtime's replicas (default\n"
            "                        pyspark=clipper/pyspark:latest); may be repeated.\n"
            "                        A model deployed with an image of its own (its\n"
            "                        base_image) runs in that image instead\n"
            "  --cluster NAME        value of the label ai.clipper.container.label on\n"
            "                        replica containers (default: the prefix)\n"
            "  --replica-entrypoint JSON  a JSON array replacing the image's entrypoint;\n"
            "                        the replica command becomes its arguments (for tests)\n"
            "\n"
            "kubernetes backend (--image and --cluster as above; the images default to\n"
            "localhost/clipper/python-closure:latest and pyspark=localhost/clipper/pyspark:latest):\n"
            "  --kubeconfig FILE     credentials and API server (default: inside a pod its\n"
            "                        service account, else env KUBECONFIG, else\n"
            "                        ~/.kube/config)\n"
            "  --kube-context NAME   the kubeconfig's context (default: its current one)\n"
            "  --namespace NS        where the Deployments go (default: the context's, or\n"
            "                        the pod's own namespace, else default)\n"
            "  --pull-policy P       the replicas' imagePullPolicy: Always, IfNotPresent\n"
            "                        (default) or Never\n"
            "  --replica-secret NAME  a Secret holding replica.creds and ca.pem: mounted\n"
            "                        read-only (0400) into each replica pod, which connects\n"
            "                        with them (instead of --replica-creds/--replica-tls-ca)\n"
            "  --replica-tls-name NAME  the name replicas check nats-server's certificate\n"
            "                        for (default: --tls-name)\n",
            cl_actor_common_usage());
}

/* Options that do not fit the backend are errors, not silently ignored. */
static int check_backend_options(const cl_manager_opts *o)
{
    const char *b = o->backend ? o->backend : "local";
    bool docker = strcmp(b, "docker") == 0, kube = strcmp(b, "kubernetes") == 0;
    if (!docker && !kube && strcmp(b, "local") != 0) {
        fprintf(stderr, "%s: unknown backend '%s' (this build has: local, docker, kubernetes)\n",
                CMD, b);
        return 2;
    }
    /* Each option and the backends it belongs to. */
    const struct {
        const char *name;
        const char *value;
        bool ok;
        const char *backends;
    } only[] = {
        {"--docker-network", o->docker_network, docker, "the docker backend"},
        {"--docker-host", o->docker_host, docker, "the docker backend"},
        {"--replica-entrypoint", o->replica_entrypoint, docker, "the docker backend"},
        {"--image", o->n_runtime_images ? o->runtime_images[0] : o->image, docker || kube,
         "the docker and kubernetes backends"},
        {"--cluster", o->cluster, docker || kube, "the docker and kubernetes backends"},
        {"--kubeconfig", o->kubeconfig, kube, "the kubernetes backend"},
        {"--kube-context", o->kube_context, kube, "the kubernetes backend"},
        {"--namespace", o->kube_namespace, kube, "the kubernetes backend"},
        {"--pull-policy", o->pull_policy, kube, "the kubernetes backend"},
        {"--replica-secret", o->replica_secret, kube, "the kubernetes backend"},
        {"--replica-tls-name", o->replica_tls_name, kube, "the kubernetes backend"},
        {"--replica-cmd", o->replica_cmd, !docker && !kube, "the local backend"},
    };
    for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++) {
        if (only[i].value != NULL && !only[i].ok) {
            fprintf(stderr, "%s: %s is an option of %s, not of the %s backend\n", CMD,
                    only[i].name, only[i].backends, b);
            return 2;
        }
    }
    if (kube) {
        const char *p = o->pull_policy;
        if (p != NULL && strcmp(p, "Always") != 0 && strcmp(p, "IfNotPresent") != 0 &&
            strcmp(p, "Never") != 0) {
            fprintf(stderr, "%s: --pull-policy must be Always, IfNotPresent or Never, got '%s'\n",
                    CMD, p);
            return 2;
        }
        return 0;
    }
    if (!docker)
        return 0;
    if (o->docker_network == NULL || o->docker_network[0] == '\0') {
        fprintf(stderr,
                "%s: --backend docker needs --docker-network NET, the network replica "
                "containers join ('host' for the engine host's network)\n",
                CMD);
        return 2;
    }
    /* The engine's address (--docker-host, DOCKER_HOST or the default) is
     * checked as the backend will read it; the engine is not asked yet. */
    cl_docker *d = NULL;
    cl_err err;
    if (cl_docker_new(&d, o->docker_host, &err) != CL_OK) {
        fprintf(stderr, "%s: %s\n", CMD, err.msg);
        return 2;
    }
    cl_docker_free(d);
    return 0;
}

/* --image IMG (python-closure's) or --image RUNTIME=IMG. */
static int take_image(cl_manager_opts *o, const char *v)
{
    if (strchr(v, '=') == NULL) {
        if (o->image != NULL) {
            fprintf(stderr, "%s: --image is given twice ('%s' and '%s'); another runtime's image "
                            "is given as --image RUNTIME=IMG\n",
                    CMD, o->image, v);
            return -1;
        }
        o->image = v;
        return 0;
    }
    if (o->n_runtime_images == CL_MANAGER_MAX_RUNTIME_IMAGES) {
        fprintf(stderr, "%s: at most %d --image RUNTIME=IMG\n", CMD,
                CL_MANAGER_MAX_RUNTIME_IMAGES);
        return -1;
    }
    o->runtime_images[o->n_runtime_images++] = v;
    return 0;
}

int cl_manager_main(int argc, char **argv)
{
    cl_actor_block_signals();
    cl_log_set_name("manager");
    cl_actor_opts aopts;
    cl_actor_opts_init(&aopts);
    cl_manager_opts mopts;
    cl_manager_opts_init(&mopts);
    const char *data_dir = NULL;
    char log_dir_buf[4096];
    cl_err err;
    cl_err_clear(&err);

    for (int i = 1; i < argc; i++) {
        int r = cl_actor_parse_common(&aopts, argc, argv, &i, &err);
        if (r < 0) {
            fprintf(stderr, "%s: %s\n", CMD, err.msg);
            return 2;
        }
        if (r > 0)
            continue;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if ((r = cl_actor_take_value(CMD, "--backend", argc, argv, &i, &mopts.backend)) != 0 ||
            (r = cl_actor_take_value(CMD, "--log-dir", argc, argv, &i, &mopts.log_dir)) != 0 ||
            (r = cl_actor_take_value(CMD, "--data-dir", argc, argv, &i, &data_dir)) != 0 ||
            (r = cl_actor_take_value(CMD, "--replica-cmd", argc, argv, &i,
                                     &mopts.replica_cmd)) != 0 ||
            (r = cl_actor_take_value(CMD, "--replica-nats", argc, argv, &i, &mopts.nats_url)) !=
                0 ||
            (r = cl_actor_take_value(CMD, "--replica-creds", argc, argv, &i,
                                     &mopts.replica_creds)) != 0 ||
            (r = cl_actor_take_value(CMD, "--replica-identities", argc, argv, &i,
                                     &mopts.replica_identities)) != 0 ||
            (r = cl_actor_take_value(CMD, "--nats-container", argc, argv, &i,
                                     &mopts.nats_container)) != 0 ||
            (r = cl_actor_take_value(CMD, "--replica-tls-ca", argc, argv, &i,
                                     &mopts.replica_tls_ca)) != 0 ||
            (r = cl_actor_take_value(CMD, "--docker-network", argc, argv, &i,
                                     &mopts.docker_network)) != 0 ||
            (r = cl_actor_take_value(CMD, "--docker-host", argc, argv, &i,
                                     &mopts.docker_host)) != 0 ||
            (r = cl_actor_take_value(CMD, "--cluster", argc, argv, &i, &mopts.cluster)) != 0 ||
            (r = cl_actor_take_value(CMD, "--replica-entrypoint", argc, argv, &i,
                                     &mopts.replica_entrypoint)) != 0 ||
            (r = cl_actor_take_value(CMD, "--kubeconfig", argc, argv, &i, &mopts.kubeconfig)) !=
                0 ||
            (r = cl_actor_take_value(CMD, "--kube-context", argc, argv, &i,
                                     &mopts.kube_context)) != 0 ||
            (r = cl_actor_take_value(CMD, "--namespace", argc, argv, &i,
                                     &mopts.kube_namespace)) != 0 ||
            (r = cl_actor_take_value(CMD, "--pull-policy", argc, argv, &i,
                                     &mopts.pull_policy)) != 0 ||
            (r = cl_actor_take_value(CMD, "--replica-secret", argc, argv, &i,
                                     &mopts.replica_secret)) != 0 ||
            (r = cl_actor_take_value(CMD, "--replica-tls-name", argc, argv, &i,
                                     &mopts.replica_tls_name)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        const char *host_name;
        if ((r = cl_actor_take_value(CMD, "--host-name", argc, argv, &i, &host_name)) != 0) {
            if (r < 0)
                return 2;
            if (host_name[0] == '\0' || strlen(host_name) >= CL_PLACE_HOST_MAX ||
                strpbrk(host_name, " \t\r\n\"\\") != NULL) {
                fprintf(stderr, "%s: --host-name needs 1 to %d characters without spaces or "
                                "quotes, got '%s'\n",
                        CMD, CL_PLACE_HOST_MAX - 1, host_name);
                return 2;
            }
            /* The replicas it starts inherit it (their heartbeats name it). */
            setenv("CLIPPER_HOST_NAME", host_name, 1);
            mopts.host_name = host_name;
            continue;
        }
        const char *image;
        if ((r = cl_actor_take_value(CMD, "--image", argc, argv, &i, &image)) != 0) {
            if (r < 0 || take_image(&mopts, image) != 0)
                return 2;
            continue;
        }
        fprintf(stderr, "%s: unknown option '%s'\n\n", CMD, argv[i]);
        usage(stderr);
        return 2;
    }
    if (check_backend_options(&mopts) != 0)
        return 2;
    /* Replicas verify the same server the manager does. */
    if (mopts.replica_tls_ca == NULL)
        mopts.replica_tls_ca = aopts.tls_ca_file;
    if (mopts.replica_tls_name == NULL && strcmp(mopts.backend ? mopts.backend : "local",
                                                 "kubernetes") == 0)
        mopts.replica_tls_name = aopts.tls_name;
    if (mopts.log_dir == NULL && data_dir != NULL) {
        snprintf(log_dir_buf, sizeof(log_dir_buf), "%s/logs", data_dir);
        mopts.log_dir = log_dir_buf;
    }

    cl_bus *bus = NULL;
    cl_manager *m = NULL;
    int rc = 1;
    if (cl_actor_connect(&bus, &aopts, "clipper-manager", false) != CL_OK)
        goto out;
    if (cl_manager_start(&m, bus, &mopts, &err) != CL_OK) {
        cl_error("cannot start the container manager: %s", err.msg);
        goto out;
    }
    int sig = cl_actor_wait_stop();
    cl_info("stopping (%s); stopping every replica first", sig ? strsignal(sig) : "requested");
    rc = 0;
out:
    cl_manager_free(m);
    cl_bus_free(bus);
    return rc;
}
