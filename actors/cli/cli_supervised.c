/* 'clipper run --supervised [supervisor options] ACTOR [actor options]':
 * one actor under a supervisor (cl_supervisor.h), for hosts other than the
 * one 'clipper start' runs on, and for systemd units.
 *
 * The actor runs as 'clipper run ACTOR ...' (a child of this process,
 * which dies with it: PR_SET_PDEATHSIG); when it ends it is restarted with
 * backoff, and when it ends too often (--max-restarts within
 * --restart-period) this command exits 1 so that what started it (systemd's
 * Restart=, an operator) decides. The supervisor's status goes on the
 * actor's bus (<p>.sv.status, <p>.sv.list) and, with --supervisor-port, over
 * HTTP (/metrics, /status). SIGINT/SIGTERM/SIGHUP stop the actor (SIGTERM,
 * then SIGKILL after --stop-grace-ms) and exit 0.
 *
 * 'exec --name NAME PROGRAM [ARGS...]' supervises another program the same
 * way (the deployment scripts run nats-server so); its status goes to the
 * bus named by --supervisor-nats/--supervisor-prefix. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl_actor.h"
#include "cl_log.h"
#include "cl_proc.h"
#include "cl_supervisor.h"
#include "cl_sv_report.h"
#include "cli_internal.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clipper run --supervised [options] ACTOR [actor options]\n"
            "       clipper run --supervised [options] exec --name NAME PROGRAM [ARGS...]\n"
            "\n"
            "Runs 'clipper run ACTOR [actor options]' under a supervisor: restarted when it\n"
            "ends (at once after a healthy run, then with a backoff up to --backoff-max-ms),\n"
            "exit 1 when it ends more than --max-restarts times within --restart-period\n"
            "seconds. Its status is on the actor's bus (<prefix>.sv.status, and the answer to\n"
            "<prefix>.sv.list requests). 'exec' supervises another program (nats-server,\n"
            "say) the same way, under NAME; its status goes to --supervisor-nats.\n"
            "\n"
            "options (before ACTOR):\n"
            "  --supervisor-port N  serve GET /metrics (Prometheus) and GET /status (JSON)\n"
            "                    on port N (default: none)\n"
            "  --supervisor-host H  the address it listens on (default 0.0.0.0)\n"
            "  --supervisor-creds FILE  the supervisor's own identity (role supervisor) for\n"
            "                    its status on the bus (default: the actor's --creds)\n"
            "  --supervisor-nats URL, --supervisor-prefix P, --supervisor-tls-ca FILE\n"
            "                    the bus (and its CA) the status goes to (default: the\n"
            "                    actor's --nats, --prefix and --tls-ca; exec: needed)\n"
            "  --max-restarts N  default 10\n"
            "  --restart-period S  default 60\n"
            "  --backoff-max-ms N  default 5000\n"
            "  --stop-grace-ms N  how long the actor has to stop on SIGTERM (default 20000)\n"
            "  -h, --help        show this help\n");
}

static int take_long(const char *opt, int argc, char **argv, int *i, long lo, long hi,
                     long *out, int *r)
{
    const char *v = NULL;
    *r = cl_actor_take_value("clipper run --supervised", opt, argc, argv, i, &v);
    if (*r <= 0)
        return *r;
    return cl__cli_parse_int("clipper run --supervised", opt, v, lo, hi, out) == 0 ? 1 : -1;
}

int cl__cli_supervised(int argc, char **argv)
{
    /* argv[0] is "--supervised". Signals first, before any thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    cl_log_set_name("supervisor");

    cl_sv_opts so;
    cl_sv_opts_init(&so);
    long port = -1, grace = 20000, n;
    const char *host = "0.0.0.0";
    const char *sv_creds = NULL, *sv_nats = NULL, *sv_prefix = NULL, *sv_ca = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        int r;
        const char *v = NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        int t;
        if ((t = take_long("--supervisor-port", argc, argv, &i, 0, 65535, &port, &r)) != 0) {
            if (t < 0)
                return 2;
        } else if ((r = cl_actor_take_value("clipper run --supervised", "--supervisor-host",
                                            argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            host = v;
        } else if ((r = cl_actor_take_value("clipper run --supervised", "--supervisor-creds",
                                            argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            sv_creds = v;
        } else if ((r = cl_actor_take_value("clipper run --supervised", "--supervisor-nats",
                                            argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            sv_nats = v;
        } else if ((r = cl_actor_take_value("clipper run --supervised", "--supervisor-prefix",
                                            argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            sv_prefix = v;
        } else if ((r = cl_actor_take_value("clipper run --supervised", "--supervisor-tls-ca",
                                            argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            sv_ca = v;
        } else if ((t = take_long("--max-restarts", argc, argv, &i, 1, 64, &n, &r)) != 0) {
            if (t < 0)
                return 2;
            so.max_restarts = (unsigned)n;
        } else if ((t = take_long("--restart-period", argc, argv, &i, 1, 86400, &n, &r)) != 0) {
            if (t < 0)
                return 2;
            so.period_s = (unsigned)n;
        } else if ((t = take_long("--backoff-max-ms", argc, argv, &i, 0, 600000, &n, &r)) != 0) {
            if (t < 0)
                return 2;
            so.backoff_max_ms = (unsigned)n;
        } else if ((t = take_long("--stop-grace-ms", argc, argv, &i, 0, 600000, &grace, &r)) !=
                   0) {
            if (t < 0)
                return 2;
        } else {
            fprintf(stderr, "clipper run --supervised: unknown option '%s' (supervisor options "
                            "come before the actor's name)\n\n",
                    argv[i]);
            usage(stderr);
            return 2;
        }
    }
    static const char *const known[] = {"admin", "router", "frontend", "replica", "manager"};
    const char *actor = i < argc ? argv[i] : NULL;
    bool is_exec = actor != NULL && strcmp(actor, "exec") == 0;
    bool ok = is_exec;
    for (size_t k = 0; actor != NULL && k < sizeof(known) / sizeof(known[0]); k++)
        ok = ok || strcmp(actor, known[k]) == 0;
    if (!ok) {
        fprintf(stderr, "clipper run --supervised: which actor? (admin, router, frontend, "
                        "replica, manager, or exec)%s%s\n\n",
                actor ? "; got " : "", actor ? actor : "");
        usage(stderr);
        return 2;
    }
    cl_actor_opts ao;
    cl_actor_opts_init(&ao);
    char exe[PATH_MAX];
    cl_err err;
    char **child = NULL;
    if (is_exec) {
        /* exec --name NAME PROGRAM [ARGS...] */
        const char *name = NULL;
        int at = i + 1;
        int r = cl_actor_take_value("clipper run --supervised exec", "--name", argc, argv, &at,
                                    &name);
        if (r <= 0 || at + 1 >= argc) {
            if (r == 0)
                fprintf(stderr, "clipper run --supervised exec: --name NAME and a program "
                                "are needed\n");
            return 2;
        }
        bool name_ok = name[0] != '\0' && strlen(name) <= 32;
        for (const char *c = name; *c && name_ok; c++)
            name_ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                      *c == '_';
        if (!name_ok) {
            fprintf(stderr, "clipper run --supervised exec: bad name '%s' (1 to 32 of "
                            "[a-z0-9_-])\n",
                    name);
            return 2;
        }
        if (sv_nats == NULL) {
            fprintf(stderr, "clipper run --supervised exec: --supervisor-nats is needed (the "
                            "bus the status goes to)\n");
            return 2;
        }
        actor = name;
        child = calloc((size_t)(argc - at) + 1, sizeof(char *));
        if (child == NULL)
            return 1;
        for (int k = at + 1; k < argc; k++)
            child[k - at - 1] = argv[k];
    } else {
        /* The actor's bus, for the status: its own --nats/--prefix or the
         * environment, as the actor itself reads them. */
        for (int k = i + 1; k < argc; k++) {
            cl_err e;
            int at = k;
            if (cl_actor_parse_common(&ao, argc, argv, &at, &e) > 0)
                k = at;
        }
        if (cl_proc_self_exe(exe, sizeof(exe), &err) != CL_OK) {
            fprintf(stderr, "clipper run --supervised: %s\n", err.msg);
            return 1;
        }
        int child_argc = argc - i + 2;
        child = calloc((size_t)child_argc + 1, sizeof(char *));
        if (child == NULL)
            return 1;
        child[0] = exe;
        child[1] = "run";
        for (int k = i; k < argc; k++)
            child[2 + k - i] = argv[k];
    }
    if (sv_nats != NULL)
        ao.nats_url = sv_nats;
    if (sv_prefix != NULL)
        ao.prefix = sv_prefix;
    if (sv_ca != NULL)
        ao.tls_ca_file = sv_ca;

    cl_sv *sv = NULL;
    cl_sv_report *report = NULL;
    size_t idx = 0;
    int rc = 1;
    cl_sv_child_spec spec = {.name = actor, .argv = child, .out_fd = -1, .new_pgroup = true};
    cl_sv_report_opts ro = {.nats_url = ao.nats_url, .prefix = ao.prefix,
                            .creds_file = sv_creds != NULL ? sv_creds : ao.creds_file,
                            .tls_ca_file = ao.tls_ca_file,
                            .tls_name = ao.tls_name, /* --tls-name, or CLIPPER_TLS_NAME */
                            .metrics_host = host,
                            .metrics_port = (int)port};
    if (cl_sv_new(&sv, &so, NULL, &err) != CL_OK || cl_sv_add(sv, &spec, &idx, &err) != CL_OK ||
        cl_sv_start(sv, idx, &err) != CL_OK ||
        cl_sv_report_start(&report, sv, &ro, &err) != CL_OK) {
        fprintf(stderr, "clipper run --supervised: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "clipper supervisor: %s started (pid %d)\n", actor, (int)cl_sv_pid(sv, idx));
    if (port >= 0)
        fprintf(stderr, "clipper supervisor: /metrics and /status on http://%s:%d\n", host,
                cl_sv_report_port(report));
    unsigned seen = 0;
    for (;;) {
        int next_ms = 1000;
        long gone = cl_sv_tick(sv, &next_ms);
        if (cl_sv_restarts(sv, idx) != seen) {
            seen = cl_sv_restarts(sv, idx);
            cl_sv_report_changed(report);
        }
        if (gone >= 0) {
            fprintf(stderr, "clipper supervisor: %s keeps ending; exiting 1\n", actor);
            goto out;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(next_ms < 1000 ? next_ms : 999) *
                                                      1000000L};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            fprintf(stderr, "clipper supervisor: %s; stopping %s\n", strsignal(sig), actor);
            rc = 0;
            break;
        }
    }
out:
    if (sv != NULL)
        cl_sv_stop(sv, &idx, 1, (int)grace);
    cl_sv_report_free(report);
    cl_sv_free(sv);
    free(child);
    return rc;
}
