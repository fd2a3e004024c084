/* What every actor process shares (cl_actor.h): stop signals, the common
 * command-line options and joining the bus.
 *
 * Stopping: SIGINT and SIGTERM are blocked in every thread and read from a
 * signalfd; cl_actor_request_stop writes a byte to a self-pipe. The one
 * waiter polls both, so a signal and a requested stop wake it alike. The
 * descriptors are process-wide, like the signals they stand for. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cl_actor.h"
#include "cl_log.h"
#include "cl_subject.h"

/* The self-pipe's two ends packed into one word, so that concurrent first
 * users agree on one pipe without a lock (-1: not created yet). */
static _Atomic int64_t stop_pipe = -1;
static _Atomic int stop_sigfd = -1;

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

/* Async-signal-safe: pipe2, close and atomics only. */
static bool pipe_ends(int *rd, int *wr)
{
    int64_t packed = atomic_load(&stop_pipe);
    if (packed < 0) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
            return false;
        int64_t mine = ((int64_t)fds[0] << 32) | (uint32_t)fds[1];
        int64_t expected = -1;
        if (atomic_compare_exchange_strong(&stop_pipe, &expected, mine)) {
            packed = mine;
        } else {
            close(fds[0]);
            close(fds[1]);
            packed = expected;
        }
    }
    *rd = (int)(packed >> 32);
    *wr = (int)(uint32_t)packed;
    return true;
}

static int sig_fd(void)
{
    int fd = atomic_load(&stop_sigfd);
    if (fd >= 0)
        return fd;
    sigset_t set;
    stop_signals(&set);
    fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        return -1;
    int expected = -1;
    if (!atomic_compare_exchange_strong(&stop_sigfd, &expected, fd)) {
        close(fd);
        fd = expected;
    }
    return fd;
}

void cl_actor_block_signals(void)
{
    sigset_t set;
    stop_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* A peer closing a socket must not kill the process; writes then fail
     * with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    int rd, wr;
    pipe_ends(&rd, &wr);
    sig_fd();
}

int cl_actor_wait_stop(void)
{
    int rd, wr;
    if (!pipe_ends(&rd, &wr)) {
        cl_error("cannot create the stop pipe: %s", strerror(errno));
        return 0;
    }
    struct pollfd fds[2] = {{.fd = rd, .events = POLLIN}, {.fd = sig_fd(), .events = POLLIN}};
    nfds_t n = fds[1].fd >= 0 ? 2 : 1;
    for (;;) {
        int r = poll(fds, n, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            cl_error("waiting for a stop signal failed: %s", strerror(errno));
            return 0;
        }
        if (fds[0].revents & POLLIN) {
            char c;
            if (read(rd, &c, 1) == 1)
                return 0;
        }
        if (n == 2 && (fds[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(fds[1].fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                return (int)si.ssi_signo;
        }
    }
}

void cl_actor_request_stop(void)
{
    int saved = errno;
    int rd, wr;
    if (pipe_ends(&rd, &wr)) {
        /* A full pipe already holds a wake-up; nothing is lost. */
        ssize_t w = write(wr, "s", 1);
        (void)w;
    }
    errno = saved;
}

/* ---- options ---------------------------------------------------------- */

static bool prefix_ok(const char *prefix, cl_err *err)
{
    char subject[CL_SUBJECT_MAX];
    if (cl_subject_build(subject, err, prefix, "admin", NULL) != CL_OK) {
        cl_err_prefix(err, "invalid prefix '%s'", prefix ? prefix : "");
        return false;
    }
    return true;
}

void cl_actor_opts_init(cl_actor_opts *opts)
{
    const char *url = getenv("CLIPPER_NATS_URL");
    const char *prefix = getenv("CLIPPER_PREFIX");
    opts->nats_url = url && url[0] ? url : CL_DEFAULT_NATS_URL;
    opts->prefix = prefix && prefix[0] ? prefix : CL_DEFAULT_PREFIX;
    const char *replicas = getenv("CLIPPER_STATE_REPLICAS");
    long n = 0;
    opts->state_replicas =
        replicas && cl_actor_parse_long(replicas, 1, 5, &n) ? (int)n : 0;
    const char *creds = getenv("CLIPPER_CREDS");
    const char *ca = getenv("CLIPPER_TLS_CA");
    opts->creds_file = creds && creds[0] ? creds : NULL;
    opts->tls_ca_file = ca && ca[0] ? ca : NULL;
    const char *tls_name = getenv("CLIPPER_TLS_NAME");
    opts->tls_name = tls_name && tls_name[0] ? tls_name : NULL;
}

bool cl_actor_parse_long(const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int cl_actor_take_value(const char *cmd, const char *name, int argc, char **argv, int *i,
                        const char **out)
{
    size_t len = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, len) != 0)
        return 0;
    if (a[len] == '=') {
        *out = a + len + 1;
        return 1;
    }
    if (a[len] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        if (cmd != NULL)
            fprintf(stderr, "%s: option %s needs a value\n", cmd, name);
        return -1;
    }
    *out = argv[++*i];
    return 1;
}

int cl_actor_parse_common(cl_actor_opts *opts, int argc, char **argv, int *i, cl_err *err)
{
    const char *replicas;
    int rr = cl_actor_take_value(NULL, "--state-replicas", argc, argv, i, &replicas);
    if (rr != 0) {
        long n = 0;
        if (rr < 0 || !cl_actor_parse_long(replicas, 1, 5, &n)) {
            cl_err_set(err, CL_ERR_INVALID,
                       "option --state-replicas needs a number from 1 to 5 (JetStream "
                       "replicas), got '%s'",
                       rr < 0 ? "" : replicas);
            return -1;
        }
        opts->state_replicas = (int)n;
        return 1;
    }
    static const char *const files[] = {"--creds", "--tls-ca"};
    for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
        const char *value;
        int r = cl_actor_take_value(NULL, files[k], argc, argv, i, &value);
        if (r == 0)
            continue;
        if (r < 0 || value[0] == '\0') {
            cl_err_set(err, CL_ERR_INVALID, "option %s needs a file name", files[k]);
            return -1;
        }
        if (k == 0)
            opts->creds_file = value;
        else
            opts->tls_ca_file = value;
        return 1;
    }
    const char *tls_name;
    int tr = cl_actor_take_value(NULL, "--tls-name", argc, argv, i, &tls_name);
    if (tr != 0) {
        if (tr < 0 || tls_name[0] == '\0') {
            cl_err_set(err, CL_ERR_INVALID,
                       "option --tls-name needs the name nats-server's certificate carries");
            return -1;
        }
        opts->tls_name = tls_name;
        return 1;
    }
    static const char *const names[] = {"--nats", "--prefix"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        const char *value;
        int r = cl_actor_take_value(NULL, names[k], argc, argv, i, &value);
        if (r == 0)
            continue;
        if (r < 0) {
            cl_err_set(err, CL_ERR_INVALID, "option %s needs a value (%s)", names[k],
                       k == 0 ? "a URL such as nats://127.0.0.1:4222" : "a subject prefix such as clipper");
            return -1;
        }
        if (value[0] == '\0') {
            cl_err_set(err, CL_ERR_INVALID, "option %s needs a non-empty value", names[k]);
            return -1;
        }
        if (k == 0) {
            opts->nats_url = value;
        } else {
            if (!prefix_ok(value, err))
                return -1;
            opts->prefix = value;
        }
        return 1;
    }
    return 0;
}

const char *cl_actor_common_usage(void)
{
    return "  --nats URL     nats-server to join, comma-separated list allowed\n"
           "                 (env CLIPPER_NATS_URL; default " CL_DEFAULT_NATS_URL ")\n"
           "  --prefix P     subject prefix of the cluster (env CLIPPER_PREFIX; default " CL_DEFAULT_PREFIX ")\n"
           "  --state-replicas N  JetStream replicas of the cluster state and artifacts\n"
           "                 when this actor creates them: 1 (default) to 5; 3 on a\n"
           "                 cluster of three nats-servers (env CLIPPER_STATE_REPLICAS)\n"
           "  --creds FILE   connect as the identity in FILE ('clipper creds'; env\n"
           "                 CLIPPER_CREDS)\n"
           "  --tls-ca FILE  require TLS and verify nats-server with this CA (env\n"
           "                 CLIPPER_TLS_CA)\n"
           "  --tls-name NAME  the name nats-server's certificate must carry (default:\n"
           "                 the URL's host; needed when --nats lists several hosts;\n"
           "                 env CLIPPER_TLS_NAME)\n"
           "  -h, --help     show this help\n";
}

static void usage(FILE *f, const char *usage_line, const char *description)
{
    fprintf(f, "usage: %s\n", usage_line);
    if (description != NULL)
        fprintf(f, "%s\n", description);
    fprintf(f, "\noptions:\n%s", cl_actor_common_usage());
}

int cl_actor_parse_args(cl_actor_opts *opts, int argc, char **argv, const char *usage_line,
                        const char *description)
{
    cl_actor_opts_init(opts);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout, usage_line, description);
            return 1;
        }
        cl_err err;
        int r = cl_actor_parse_common(opts, argc, argv, &i, &err);
        if (r > 0)
            continue;
        if (r == 0)
            cl_err_set(&err, CL_ERR_INVALID, "unknown argument '%s'", argv[i]);
        fprintf(stderr, "error: %s\n\n", err.msg);
        usage(stderr, usage_line, description);
        return 2;
    }
    return 0;
}

/* ---- joining the bus -------------------------------------------------- */

cl_status cl_actor_connect(cl_bus **out, const cl_actor_opts *opts, const char *name,
                           bool send_asap)
{
    cl_actor_opts defaults;
    cl_actor_opts_init(&defaults);
    const char *url = opts && opts->nats_url ? opts->nats_url : defaults.nats_url;
    const char *prefix = opts && opts->prefix ? opts->prefix : defaults.prefix;
    cl_err err;
    if (!prefix_ok(prefix, &err)) {
        cl_error("%s", err.msg);
        return CL_ERR_INVALID;
    }
    cl_bus_opts bo;
    cl_bus_opts_init(&bo);
    bo.url = url;
    bo.prefix = prefix;
    bo.name = name;
    bo.send_asap = send_asap;
    bo.state_replicas = opts ? opts->state_replicas : defaults.state_replicas;
    bo.nkey_file = opts ? opts->creds_file : defaults.creds_file;
    bo.tls_ca_file = opts ? opts->tls_ca_file : defaults.tls_ca_file;
    bo.tls_name = opts ? opts->tls_name : defaults.tls_name;
    /* Said first: a connect that hangs (a name the resolver is slow to
     * answer) shows where it hangs. */
    cl_info("connecting to %s (prefix '%s', %s, %s)", url, prefix,
            bo.nkey_file ? "with a credential" : "without a credential",
            bo.tls_ca_file ? "TLS" : "no TLS");
    cl_status st = cl_bus_connect(out, &bo, &err);
    if (st != CL_OK) {
        if (strstr(err.msg, url) != NULL)
            cl_error("%s", err.msg);
        else
            cl_error("cannot reach nats-server at %s: %s", url, err.msg);
        return st;
    }
    cl_info("connected to %s (prefix '%s')", url, prefix);
    return CL_OK;
}
