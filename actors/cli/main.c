/* The clipper program: one binary for the whole system.
 *
 *   clipper start ...        a whole cluster on this machine (cli_start.c)
 *   clipper run ACTOR ...    one actor against an existing bus
 *   clipper admin CMD ...    a management command (cli_request.c)
 *   clipper predict APP ...  a query (cli_request.c)
 *   clipper version
 *
 * 'clipper start' and the container manager start the actors and replicas
 * as 'clipper run ...' children of this same executable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_actor.h"
#include "cl_admin.h"
#include "cl_frontend.h"
#include "cl_manager.h"
#include "cl_replica.h"
#include "cl_router.h"
#include "cli_internal.h"
#include "cli_secrets.h"

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *what;
} actors[] = {
    {"admin", cl_admin_main, "management commands; the only writer of the cluster state"},
    {"router", cl_router_main, "per-model queues, batching, dispatch to replicas"},
    {"frontend", cl_frontend_main, "queries over NATS and HTTP"},
    {"replica", cl_replica_main, "one model version (embedded Python)"},
    {"manager", cl_manager_main, "starts and stops replicas to match the wanted counts"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clipper <command> [options]\n"
            "\n"
            "Prediction serving on a NATS bus, compatible with Clipper.\n"
            "\n"
            "commands:\n"
            "  start                 start a whole cluster on this machine (with its own\n"
            "                        nats-server unless --nats is given)\n"
            "  run ACTOR             run one actor against an existing bus\n"
            "                        (admin, router, frontend, replica, manager)\n"
            "  admin COMMAND [JSON]  send a management command (ping, add_app, ...)\n"
            "  predict APP JSON      send a query to an application\n"
            "  creds init|issue|revoke|list  a cluster's secrets and the identities\n"
            "                        that may connect to it\n"
            "  version               print the version\n"
            "  help                  show this help\n"
            "\n"
            "Run 'clipper <command> --help' for the options of a command.\n"
            "Environment: CLIPPER_NATS_URL, CLIPPER_PREFIX, CLIPPER_CREDS, CLIPPER_TLS_CA,\n"
            "CLIPPER_LOG (debug, info, warn, error).\n");
}

static void run_usage(FILE *f)
{
    fprintf(f, "usage: clipper run [--supervised [options]] ACTOR [options]\n\n"
               "Runs one actor against an existing bus until SIGINT or SIGTERM.\n\n"
               "actors:\n");
    for (size_t i = 0; i < sizeof(actors) / sizeof(actors[0]); i++)
        fprintf(f, "  %-9s %s\n", actors[i].name, actors[i].what);
    fprintf(f, "\nRun 'clipper run ACTOR --help' for the options of an actor.\n"
               "'clipper run --supervised [options] ACTOR ...' runs it under a supervisor\n"
               "that restarts it (see 'clipper run --supervised --help').\n");
}

static int run_actor(int argc, char **argv)
{
    /* argv[0] is "run". */
    if (argc < 2) {
        fprintf(stderr, "clipper run: which actor? (admin, router, frontend, replica, "
                        "manager)\n\n");
        run_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        run_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--supervised") == 0)
        return cl__cli_supervised(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof(actors) / sizeof(actors[0]); i++) {
        if (strcmp(argv[1], actors[i].name) == 0)
            return actors[i].main(argc - 1, argv + 1);
    }
    fprintf(stderr, "clipper run: unknown actor '%s' (known: admin, router, frontend, "
                    "replica, manager)\n",
            argv[1]);
    return 2;
}

int cl__cli_parse_int(const char *cmd, const char *option, const char *text, long min, long max,
                      long *out)
{
    if (!cl_actor_parse_long(text, min, max, out)) {
        fprintf(stderr, "%s: %s must be a whole number from %ld to %ld, got '%s'\n", cmd, option,
                min, max, text);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
            printf("usage: clipper version\n\nPrints the version of clipper.\n");
            return 0;
        }
        printf("clipper %s\n", CL_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return run_actor(argc - 1, argv + 1);
    if (strcmp(cmd, "start") == 0)
        return cl__cli_start(argc - 1, argv + 1);
    if (strcmp(cmd, "admin") == 0)
        return cl__cli_admin(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0)
        return cl__cli_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "creds") == 0)
        return cl__cli_creds(argc - 1, argv + 1);
    fprintf(stderr, "clipper: unknown command '%s' (known: start, run, admin, predict, version, "
                    "help)\n",
            cmd);
    return 2;
}
