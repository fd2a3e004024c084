/* 'clipper run manager': the container manager as a process. Parses its
 * options, joins the bus, runs cl_manager until SIGINT/SIGTERM, then stops
 * every replica it started and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_actor.h"
#include "cl_log.h"
#include "cl_manager.h"

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
            "  --backend NAME      where replicas run: local (child processes; default)\n"
            "  --log-dir DIR       replica logs (default ./clipper_logs, or DATA/logs)\n"
            "  --data-dir DATA     keep replica logs under DATA/logs\n"
            "  --replica-cmd PROG  run PROG instead of this program for replicas\n"
            "                      (env CLIPPER_REPLICA_CMD; for tests)\n",
            cl_actor_common_usage());
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
                                     &mopts.replica_cmd)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        fprintf(stderr, "%s: unknown option '%s'\n\n", CMD, argv[i]);
        usage(stderr);
        return 2;
    }
    if (mopts.backend != NULL && strcmp(mopts.backend, "local") != 0) {
        fprintf(stderr, "%s: unknown backend '%s' (this build has: local)\n", CMD, mopts.backend);
        return 2;
    }
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
