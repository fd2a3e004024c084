/* 'clipper start': a whole cluster on this machine, supervised.
 *
 * Starts a nats-server with JetStream (unless --nats names one), then the
 * admin, router, frontend and container manager as 'clipper run ...'
 * children of this executable, waits until the admin answers ping and the
 * frontend's HTTP port (and the admin's management REST port) accept
 * connections, and prints one line on stdout:
 *   clipper: cluster ready nats=<url> prefix=<p> query=http[s]://<host>:<port>
 *            [admin=http[s]://<host>:<port>] [metrics=http[s]://<host>:<port>]
 *            [supervisor=http://<host>:<port>]
 * Then it supervises them (cl_supervisor.h): a child that ends is
 * restarted (the nats-server on the same store; the actors reconnect on
 * their own; a restarted manager adopts the replicas that kept running),
 * with backoff and within a restart intensity; a child restarted too often
 * stops the whole cluster, and 'clipper start' exits 1. Its status is on
 * <p>.sv.status / <p>.sv.list and, with --supervisor-port, over HTTP
 * (/metrics, /status). SIGINT, SIGTERM or SIGHUP stop everything in order:
 * frontend, router and admin; then the manager, which stops its replicas;
 * nats-server last.
 *
 * Every child is in a process group of its own, so a terminal's Ctrl-C
 * reaches only this process and the order above holds, and every child
 * has PR_SET_PDEATHSIG, so no actor outlives a killed 'clipper start'.
 * While the cluster starts, a child that ends is not restarted: the start
 * fails and says why. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "cl_proc.h"
#include "cl_subject.h"
#include "cl_supervisor.h"
#include "cl_sv_report.h"
#include "cli_internal.h"
#include "cli_secrets.h"

#define NATS_READY_MS 15000
#define CLUSTER_READY_MS 60000
#define ACTOR_STOP_MS 10000
#define MANAGER_STOP_MS 20000
#define NATS_STOP_MS 10000

enum { C_NATS, C_ADMIN, C_ROUTER, C_ROUTER2, C_FRONTEND, C_FRONTEND2, C_MANAGER, C_COUNT };

typedef struct {
    const char *prefix;
    const char *nats_arg; /* --nats, or NULL: run our own */
    const char *data_dir;
    const char *log_dir;
    const char *http_host;  /* the query and metrics ports' */
    const char *admin_host; /* the management REST's: 127.0.0.1 unless asked */
    const char *tls_cert;   /* HTTPS on the query, metrics and admin ports */
    const char *tls_key;
    const char *admin_token_file;   /* the management REST's bearer token */
    const char *metrics_token_file; /* the metrics port's */
    const char *query_token_file;   /* the query port's (none by default, as Clipper) */
    long nats_port;
    long http_port;
    long metrics_port; /* -1: none */
    long admin_port;   /* the admin's management REST; -1: none */
    long cache_size;   /* bytes; 0: no cache */
    long sv_port;      /* the supervisor's /metrics and /status; -1: none */
    long routers;      /* 1 or 2: one leads, the other stands by */
    long frontends;    /* 1 or 2: both serve (one NATS queue group, one HTTP port) */
    bool insecure;     /* --insecure: no identities, no TLS */
    bool secure;       /* identities and TLS (cl__secrets) */
    bool bus_tls_off;  /* --bus-tls off: identities without TLS */
    bool tls;          /* the bus speaks TLS (secure and not bus_tls_off) */
    cl__secrets sec;
    cl_sv_opts svo;
    char url[512];
    char exe[PATH_MAX];
    char data_abs[PATH_MAX];
    char log_abs[PATH_MAX];
    char nats_log[PATH_MAX + 32];
    cl_sv *sv;
    size_t kid[C_COUNT];  /* each child's index in sv */
    bool has_kid[C_COUNT];
    const char *names[C_COUNT];
} cluster;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clipper start [options]\n"
            "\n"
            "Starts a whole cluster on this machine: a nats-server with JetStream (unless\n"
            "--nats is given), the admin, router, frontend and container manager. Prints\n"
            "'clipper: cluster ready ...' on stdout once queries can be sent, and runs until\n"
            "Ctrl-C or SIGTERM, which stop everything it started.\n"
            "\n"
            "options:\n"
            "  --nats URL        use this nats-server (with JetStream) instead of starting one\n"
            "  --data-dir DIR    JetStream store and logs (default ./clipper-data)\n"
            "  --nats-port N     port of the nats-server it starts (default 4222)\n"
            "  --prefix P        subject prefix of the cluster (env CLIPPER_PREFIX; default "
            "clipper)\n"
            "  --http-port N     the frontend's HTTP port for queries (default 1337)\n"
            "  --http-host H     the address the query and metrics ports listen on\n"
            "                    (default 0.0.0.0)\n"
            "  --admin-port N    port of Clipper's management REST, served by the admin\n"
            "                    (default 1338; -1: none)\n"
            "  --admin-host H    the address the management REST listens on (default\n"
            "                    127.0.0.1: it deploys code; 0.0.0.0 as in Clipper)\n"
            "  --http-tls-cert FILE, --http-tls-key FILE\n"
            "                    serve the query, metrics and management ports over HTTPS\n"
            "                    only, with this PEM certificate and its unencrypted key\n"
            "  --admin-token-file FILE\n"
            "                    the management REST answers 401 unless a request has\n"
            "                    'Authorization: Bearer <token>', the token being FILE's\n"
            "                    first line (FILE mode 600)\n"
            "  --metrics-token-file FILE\n"
            "                    the same for the Prometheus metrics port\n"
            "  --query-token-file FILE\n"
            "                    the same for the query port (by default it takes none, as\n"
            "                    in Clipper, whose clients send none)\n"
            "  --metrics-port N  Prometheus metrics port of the frontend (default 1390; -1:\n"
            "                    none)\n"
            "  --cache-size B    prediction cache size in bytes (default 33554432; 0: none)\n"
            "  --routers N       1 or 2 (default 2: one leads, the other takes over within\n"
            "                    about 0.35 s when the leader dies)\n"
            "  --frontends N     1 or 2 (default 1); two share the HTTP port and the NATS\n"
            "                    queue group, so one killed costs only its queries in flight\n"
            "                    (only the first serves --metrics-port)\n"
            "  --supervisor-port N  the supervisor's Prometheus /metrics and JSON /status\n"
            "                    (default -1: none; the status is also on <prefix>.sv.status)\n"
            "  --max-restarts N  a child restarted more than N times within --restart-period\n"
            "                    seconds stops the cluster (default 10 within 60)\n"
            "  --restart-period S\n"
            "  --backoff-max-ms N  the longest wait before restarting a child that keeps\n"
            "                    ending quickly (default 5000; the first restart is at once)\n"
            "  --log-dir DIR     nats-server and model replica logs (default DATA/logs)\n"
            "  --insecure        no identities and no TLS on the bus: anyone who reaches\n"
            "                    the nats-server port may do anything (by default each actor\n"
            "                    connects as its own identity with its role's permissions,\n"
            "                    over TLS: docs/security.md)\n"
            "  --bus-tls on|off  off: identities and permissions as by default, but no TLS\n"
            "                    on the nats-server this starts, which listens on 127.0.0.1\n"
            "                    only, where only root could read the traffic; TLS costs\n"
            "                    about a tenth of the query path's throughput and 0.2 ms of\n"
            "                    its latency (docs/benchmarks.md). Default on\n"
            "  -h, --help        show this help\n"
            "\n"
            "Environment: CLIPPER_NATS_SERVER (the nats-server program), CLIPPER_LOG;\n"
            "CLIPPER_ADMIN_TOKEN_FILE and CLIPPER_METRICS_TOKEN_FILE reach the admin and\n"
            "the frontend as the token files' options do.\n");
}

/* ---- signals ----------------------------------------------------------- */

static void watched_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGCHLD);
}

/* Waits up to timeout_ms for a signal. Returns SIGINT/SIGTERM/SIGHUP when
 * one asks us to stop, 0 otherwise (timeout, or a child changed state). */
static int wait_signal(int timeout_ms)
{
    sigset_t set;
    watched_signals(&set);
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    return sig == SIGCHLD || sig < 0 ? 0 : sig;
}

/* ---- children ------------------------------------------------------------ */

/* Ticks the supervisor. Returns the index (C_*) of a child that ended and
 * will not be restarted (it was restarted too often), or -1. */
static int tick(cluster *cl, int *next_ms)
{
    long gone = cl_sv_tick(cl->sv, next_ms);
    for (int i = 0; gone >= 0 && i < C_COUNT; i++) {
        if (cl->has_kid[i] && cl->kid[i] == (size_t)gone)
            return i;
    }
    return -1;
}

/* While the cluster starts: the first child that has ended (and so would
 * be restarted), or -1. */
static int ended_while_starting(cluster *cl)
{
    int next_ms;
    (void)cl_sv_tick(cl->sv, &next_ms);
    for (int i = 0; i < C_COUNT; i++) {
        if (cl->has_kid[i] && (cl_sv_restarts(cl->sv, cl->kid[i]) > 0 ||
                               cl_sv_child_state(cl->sv, cl->kid[i]) != CL_SV_RUNNING))
            return i;
    }
    return -1;
}

static void stop_children(cluster *cl, const int *which, int n, int ms)
{
    size_t idx[C_COUNT];
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (cl->has_kid[which[i]])
            idx[k++] = cl->kid[which[i]];
    }
    if (cl->sv != NULL && k > 0)
        cl_sv_stop(cl->sv, idx, k, ms);
}

static void stop_cluster(cluster *cl)
{
    static const int front[] = {C_FRONTEND, C_FRONTEND2, C_ROUTER, C_ROUTER2, C_ADMIN};
    static const int mgr[] = {C_MANAGER};
    static const int nats[] = {C_NATS};
    stop_children(cl, front, 5, ACTOR_STOP_MS);
    stop_children(cl, mgr, 1, MANAGER_STOP_MS);
    stop_children(cl, nats, 1, NATS_STOP_MS);
}

static int spawn(cluster *cl, int which, char *const argv[], int out_fd)
{
    cl_sv_child_spec spec = {.name = cl->names[which], .argv = argv, .out_fd = out_fd,
                             .new_pgroup = true};
    cl_err err;
    if (cl_sv_add(cl->sv, &spec, &cl->kid[which], &err) != CL_OK ||
        (cl->has_kid[which] = true, cl_sv_start(cl->sv, cl->kid[which], &err)) != CL_OK) {
        fprintf(stderr, "clipper start: cannot start %s: %s\n", cl->names[which], err.msg);
        return -1;
    }
    return 0;
}

/* ---- network checks ------------------------------------------------------ */

static bool parse_ipv4(const char *host, struct sockaddr_in *a, int port)
{
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    return inet_pton(AF_INET, host, &a->sin_addr) == 1;
}

/* True when something already listens on host:port (EADDRINUSE). */
static bool port_taken(const char *host, int port)
{
    struct sockaddr_in a;
    if (!parse_ipv4(host, &a, port))
        return false; /* a name or IPv6: let the server itself tell */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bool taken = bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

/* True when host:port accepts a TCP connection within timeout_ms. */
static bool tcp_accepts(const char *host, int port, int timeout_ms)
{
    struct sockaddr_in a;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    if (!parse_ipv4(host, &a, port))
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int e = 0;
        socklen_t elen = sizeof(e);
        ok = poll(&p, 1, timeout_ms) == 1 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) == 0 && e == 0;
    }
    close(fd);
    return ok;
}

static void print_tail(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1500];
    struct stat st;
    ssize_t n = 0;
    if (fstat(fd, &st) == 0) {
        off_t from = st.st_size > (off_t)sizeof(buf) - 1 ? st.st_size - (off_t)sizeof(buf) + 1 : 0;
        n = pread(fd, buf, sizeof(buf) - 1, from);
    }
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        fprintf(stderr, "--- last lines of %s:\n%s%s", path, buf, buf[n - 1] == '\n' ? "" : "\n");
    }
}

/* ---- the steps ------------------------------------------------------------ */

static int start_nats(cluster *cl)
{
    char prog[PATH_MAX];
    static const char *const extra[] = {"/usr/sbin", "/usr/bin", "/usr/local/bin",
                                        "/usr/local/sbin", NULL};
    const char *want = getenv("CLIPPER_NATS_SERVER");
    if (want == NULL || want[0] == '\0')
        want = "nats-server";
    if (!cl_proc_find_program(want, extra, prog, sizeof(prog))) {
        fprintf(stderr,
                "clipper start: cannot find the nats-server program ('%s' is not on PATH or "
                "not executable). Install it (e.g. 'apt-get install nats-server'), set "
                "CLIPPER_NATS_SERVER to its path, or pass --nats URL of a running server.\n",
                want);
        return -1;
    }
    if (port_taken("127.0.0.1", (int)cl->nats_port)) {
        fprintf(stderr,
                "clipper start: port %ld on 127.0.0.1 is already in use (another nats-server "
                "or cluster?). Choose another with --nats-port N, or join that server with "
                "--nats nats://127.0.0.1:%ld.\n",
                cl->nats_port, cl->nats_port);
        return -1;
    }
    char store[PATH_MAX + 16], port[16];
    snprintf(store, sizeof(store), "%s/jetstream", cl->data_abs);
    snprintf(port, sizeof(port), "%ld", cl->nats_port);
    snprintf(cl->nats_log, sizeof(cl->nats_log), "%s/nats-server.log", cl->log_abs);
    int fd = open(cl->nats_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "clipper start: cannot open %s: %s\n", cl->nats_log, strerror(errno));
        return -1;
    }
    /* A client that stops answering the server's pings (a stopped or
     * frozen actor) is cut off after about 3 s instead of 2 min, and one
     * that stops reading what the server sends it (the server does not
     * ping a client it is busy writing to) once a write has waited 2 s
     * instead of 10: so a stopped frontend stops receiving its share of
     * the queue group's queries. */
    char conf[PATH_MAX + 32];
    snprintf(conf, sizeof(conf), "%s/nats-server.conf", cl->data_abs);
    /* With identities: TLS, and one account for the cluster whose users
     * are in nats-server.auth.conf, which 'clipper creds' rewrites. */
    if (cl->secure && (cl__secrets_rewrite_users(&cl->sec, cl->data_abs, cl->prefix) != 0 ||
                       cl__secrets_migrate_store(&cl->sec, store) != 0)) {
        close(fd);
        return -1;
    }
    FILE *cf = fopen(conf, "w");
    /* JetStream in the file, not on the command line: nats-server drops
     * command-line JetStream settings when it reloads its configuration
     * (nats-server issue 6606), which 'clipper creds' makes it do. */
    cl_buf tls;
    cl_buf_init(&tls);
    if (cl->tls && (cl__secrets_tls_conf(&cl->sec, &tls) != 0 || cl_buf_terminate(&tls) != CL_OK)) {
        cl_buf_deinit(&tls);
        if (cf != NULL)
            fclose(cf);
        close(fd);
        return -1;
    }
    int written = cf == NULL ? -1
                             : fprintf(cf,
                                       "# written by clipper start\nping_interval: \"1s\"\n"
                                       "ping_max: 3\nwrite_deadline: \"2s\"\n"
                                       "# inputs and outputs larger than the 1 MiB default\n"
                                       "max_payload: %d\njetstream {\n"
                                       "  store_dir: \"%s\"\n}\n%s%s",
                                       CL_BUS_MAX_PAYLOAD, store, cl->tls ? (const char *)tls.data : "",
                                       cl->secure ? "include \"nats-server.auth.conf\"\n" : "");
    cl_buf_deinit(&tls);
    if (cf == NULL || written < 0 || fclose(cf) != 0) {
        fprintf(stderr, "clipper start: cannot write %s: %s\n", conf, strerror(errno));
        close(fd);
        return -1;
    }
    char pidfile[PATH_MAX + 32];
    snprintf(pidfile, sizeof(pidfile), "%s/nats-server.pid", cl->data_abs);
    char *argv[] = {prog, "-c", conf, "-a", "127.0.0.1", "-p", port, "-P", pidfile, NULL};
    fprintf(stderr, "clipper: starting nats-server on 127.0.0.1:%ld (JetStream in %s, log %s)\n",
            cl->nats_port, store, cl->nats_log);
    int rc = spawn(cl, C_NATS, argv, fd);
    close(fd);
    if (rc != 0)
        return -1;
    snprintf(cl->url, sizeof(cl->url), "%s://127.0.0.1:%ld", cl->tls ? "tls" : "nats",
             cl->nats_port);

    uint64_t until = cl_mono_us() + (uint64_t)NATS_READY_MS * 1000u;
    while (!tcp_accepts("127.0.0.1", (int)cl->nats_port, 200)) {
        if (ended_while_starting(cl) == C_NATS) {
            fprintf(stderr, "clipper start: nats-server exited before accepting connections\n");
            print_tail(cl->nats_log);
            return -1;
        }
        int sig = wait_signal(100);
        if (sig != 0) {
            fprintf(stderr, "clipper: %s while starting; stopping\n", strsignal(sig));
            return -1;
        }
        if (cl_mono_us() >= until) {
            fprintf(stderr, "clipper start: nats-server did not accept connections on port %ld "
                            "within %d s\n",
                    cl->nats_port, NATS_READY_MS / 1000);
            print_tail(cl->nats_log);
            return -1;
        }
    }
    return 0;
}

/* Appends "name value" to argv (NULL-terminated, with room for two more)
 * when value is set. */
static void add_option(char **argv, const char *name, const char *value)
{
    if (value == NULL)
        return;
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    argv[n++] = (char *)name;
    argv[n++] = (char *)value;
    argv[n] = NULL;
}

/* Appends to argv (which has room for 6 more) the identity of role and the
 * CA, when the cluster has identities. */
static void add_identity(const cluster *cl, char **argv, cl_role role, char creds[PATH_MAX + 64])
{
    if (!cl->secure)
        return;
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    cl__secrets_creds_path(&cl->sec, role, creds);
    argv[n++] = "--creds";
    argv[n++] = creds;
    if (cl->tls) {
        argv[n++] = "--tls-ca";
        argv[n++] = (char *)cl->sec.ca;
    }
    argv[n] = NULL;
}

static int start_actors(cluster *cl)
{
    char http_port[16], metrics_port[16], cache_size[24], admin_port[16];
    snprintf(http_port, sizeof(http_port), "%ld", cl->http_port);
    snprintf(admin_port, sizeof(admin_port), "%ld", cl->admin_port);
    snprintf(metrics_port, sizeof(metrics_port), "%ld", cl->metrics_port);
    snprintf(cache_size, sizeof(cache_size), "%ld", cl->cache_size);
    char *url = cl->url, *prefix = (char *)cl->prefix, *exe = cl->exe;
    char *admin[32] = {exe, "run", "admin", "--nats", url, "--prefix", prefix,
                       "--http-port", admin_port, "--http-host", (char *)cl->admin_host, NULL};
    char *router[32] = {exe, "run", "router", "--nats", url, "--prefix", prefix, NULL};
    char *frontend[32] = {exe, "run", "frontend", "--nats", url, "--prefix", prefix,
                          "--http-port", http_port, "--http-host", (char *)cl->http_host,
                          "--metrics-port", metrics_port, "--cache-size", cache_size, NULL};
    /* A second frontend shares the HTTP port (SO_REUSEPORT: the kernel
     * spreads connections) and the NATS queue group; only the first serves
     * the metrics port. */
    char *frontend2[32] = {exe, "run", "frontend", "--nats", url, "--prefix", prefix,
                           "--http-port", http_port, "--http-host", (char *)cl->http_host,
                           "--metrics-port", "-1", "--cache-size", cache_size, NULL};
    char **https[] = {admin, frontend, frontend2};
    for (size_t i = 0; i < sizeof(https) / sizeof(https[0]); i++) {
        add_option(https[i], "--http-tls-cert", cl->tls_cert);
        add_option(https[i], "--http-tls-key", cl->tls_key);
    }
    add_option(admin, "--http-token-file", cl->admin_token_file);
    add_option(frontend, "--metrics-token-file", cl->metrics_token_file);
    add_option(frontend, "--query-token-file", cl->query_token_file);
    add_option(frontend2, "--query-token-file", cl->query_token_file);
    char *manager[32] = {exe, "run", "manager", "--nats", url, "--prefix", prefix,
                         "--log-dir", cl->log_abs, NULL};
    /* Each actor connects as its own role's identity; the manager hands
     * its replicas theirs. */
    char creds[6][PATH_MAX + 64];
    add_identity(cl, admin, CL_ROLE_ADMIN, creds[0]);
    add_identity(cl, router, CL_ROLE_ROUTER, creds[1]);
    add_identity(cl, frontend, CL_ROLE_FRONTEND, creds[2]);
    add_identity(cl, frontend2, CL_ROLE_FRONTEND, creds[3]);
    add_identity(cl, manager, CL_ROLE_MANAGER, creds[4]);
    if (cl->secure) {
        size_t n = 0;
        while (manager[n] != NULL)
            n++;
        if (cl->nats_arg == NULL) {
            /* Our nats-server: the manager issues each model's replicas an
             * identity scoped to that model, and 'clipper creds' makes the
             * server reload. */
            manager[n++] = "--replica-identities";
            manager[n++] = cl->data_abs;
        } else {
            /* Someone else's server does not reload our users: the
             * replicas share the replica identity. */
            cl__secrets_creds_path(&cl->sec, CL_ROLE_REPLICA, creds[5]);
            manager[n++] = "--replica-creds";
            manager[n++] = creds[5];
        }
        manager[n] = NULL;
    }
    fprintf(stderr, "clipper: starting the admin, %s, frontend and manager (prefix '%s')\n",
            cl->routers > 1 ? "two routers (one leads, one stands by)" : "router", cl->prefix);
    /* Actors write only logs; stdout stays ours, for the ready line. */
    if (spawn(cl, C_ADMIN, admin, STDERR_FILENO) != 0 ||
        spawn(cl, C_ROUTER, router, STDERR_FILENO) != 0 ||
        (cl->routers > 1 && spawn(cl, C_ROUTER2, router, STDERR_FILENO) != 0) ||
        spawn(cl, C_FRONTEND, frontend, STDERR_FILENO) != 0 ||
        (cl->frontends > 1 && spawn(cl, C_FRONTEND2, frontend2, STDERR_FILENO) != 0) ||
        spawn(cl, C_MANAGER, manager, STDERR_FILENO) != 0)
        return -1;
    return 0;
}

/* True once <p>.admin.ping answers {"ok": true, ...}. */
static bool admin_answers(cl_bus *bus, const char *subject)
{
    cl_msg *reply = NULL;
    if (cl_bus_request(bus, subject, "{}", 2, 1000, &reply) != CL_OK)
        return false;
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"));
    cJSON_Delete(j);
    cl_msg_free(reply);
    return ok;
}

static cl_bus *connect_bus(const cluster *cl)
{
    cl_bus_opts bo;
    cl_bus_opts_init(&bo);
    bo.url = cl->url;
    bo.prefix = cl->prefix;
    bo.name = "clipper-start";
    char creds[PATH_MAX + 64];
    if (cl->secure) {
        cl__secrets_creds_path(&cl->sec, CL_ROLE_SUPERVISOR, creds);
        bo.nkey_file = creds;
        bo.tls_ca_file = cl->tls ? cl->sec.ca : NULL;
    }
    cl_err err;
    cl_bus *bus = NULL;
    if (cl_bus_connect(&bus, &bo, &err) != CL_OK) {
        fprintf(stderr, "clipper start: %s\n", err.msg);
        return NULL;
    }
    return bus;
}

static int wait_ready(cluster *cl, cl_bus *bus)
{
    char ping[CL_SUBJECT_MAX];
    cl_err err;
    if (cl_subj_admin(ping, cl->prefix, "ping", &err) != CL_OK) {
        fprintf(stderr, "clipper start: %s\n", err.msg);
        return -1;
    }
    bool admin_ok = false, http_ok = false, rest_ok = cl->admin_port < 0;
    int rc = -1;
    uint64_t until = cl_mono_us() + (uint64_t)CLUSTER_READY_MS * 1000u;
    for (;;) {
        int died = ended_while_starting(cl);
        if (died >= 0) {
            fprintf(stderr, "clipper start: the %s stopped while the cluster was starting (its "
                            "messages are above); stopping\n",
                    cl->names[died]);
            if (died == C_NATS)
                print_tail(cl->nats_log);
            break;
        }
        if (!admin_ok)
            admin_ok = admin_answers(bus, ping);
        if (!http_ok)
            http_ok = tcp_accepts(cl->http_host, (int)cl->http_port, 200);
        if (!rest_ok)
            rest_ok = tcp_accepts(cl->admin_host, (int)cl->admin_port, 200);
        if (admin_ok && http_ok && rest_ok) {
            rc = 0;
            break;
        }
        if (cl_mono_us() >= until) {
            fprintf(stderr, "clipper start: the cluster was not ready within %d s (%s)\n",
                    CLUSTER_READY_MS / 1000,
                    !admin_ok  ? "the admin does not answer ping"
                    : !http_ok ? "the frontend's HTTP port does not accept connections"
                               : "the admin's management REST port does not accept "
                                 "connections");
            break;
        }
        int sig = wait_signal(100);
        if (sig != 0) {
            fprintf(stderr, "clipper: %s while starting; stopping\n", strsignal(sig));
            break;
        }
    }
    return rc;
}

/* Runs until asked to stop. Returns the exit code. */
static int supervise(cluster *cl, cl_sv_report *report)
{
    unsigned seen = 0;
    for (;;) {
        int next_ms = 1000;
        int gone = tick(cl, &next_ms);
        unsigned restarts = 0;
        for (int i = 0; i < C_COUNT; i++)
            restarts += cl->has_kid[i] ? cl_sv_restarts(cl->sv, cl->kid[i]) : 0;
        if (restarts != seen) {
            seen = restarts;
            cl_sv_report_changed(report);
        }
        if (gone >= 0) {
            fprintf(stderr, "clipper: the %s keeps ending (restarted too often); stopping the "
                            "cluster\n",
                    cl->names[gone]);
            if (gone == C_NATS)
                print_tail(cl->nats_log);
            return 1;
        }
        int sig = wait_signal(next_ms < 1000 ? next_ms : 1000);
        if (sig != 0) {
            fprintf(stderr, "clipper: %s; stopping the cluster\n", strsignal(sig));
            return 0;
        }
    }
}

/* A port that may be turned off: 1 to 65535, or -1 for none. */
static int parse_optional_port(const char *option, const char *text, long *out)
{
    if (cl__cli_parse_int("clipper start", option, text, -1, 65535, out) != 0)
        return -1;
    if (*out == 0) {
        fprintf(stderr, "clipper start: %s needs a port from 1 to 65535, or -1 for none\n",
                option);
        return -1;
    }
    return 0;
}

static int parse(cluster *cl, int argc, char **argv)
{
    const char *cmd = "clipper start";
    cl_actor_opts ao;
    cl_actor_opts_init(&ao);
    cl->prefix = ao.prefix;
    cl->data_dir = "./clipper-data";
    cl->http_host = "0.0.0.0";
    cl->admin_host = "127.0.0.1";
    cl->nats_port = 4222;
    cl->http_port = 1337;
    cl->metrics_port = 1390;
    cl->admin_port = 1338;
    cl->cache_size = 33554432;
    cl->sv_port = -1;
    cl->routers = 2;
    cl->frontends = 1;
    cl_sv_opts_init(&cl->svo);
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strncmp(argv[i], "--prefix", 8) == 0 && (argv[i][8] == '\0' || argv[i][8] == '=')) {
            cl_err err;
            if (cl_actor_parse_common(&ao, argc, argv, &i, &err) < 0) {
                fprintf(stderr, "clipper start: %s\n", err.msg);
                return 2;
            }
            cl->prefix = ao.prefix;
            continue;
        }
        if (strcmp(argv[i], "--insecure") == 0) {
            cl->insecure = true;
            continue;
        }
        if ((r = cl_actor_take_value(cmd, "--bus-tls", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
                fprintf(stderr, "%s: --bus-tls takes on or off, got '%s'\n", cmd, v);
                return 2;
            }
            cl->bus_tls_off = strcmp(v, "off") == 0;
            continue;
        }
        if ((r = cl_actor_take_value(cmd, "--nats", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            cl->nats_arg = v;
        } else if ((r = cl_actor_take_value(cmd, "--data-dir", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            cl->data_dir = v;
        } else if ((r = cl_actor_take_value(cmd, "--log-dir", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            cl->log_dir = v;
        } else if ((r = cl_actor_take_value(cmd, "--http-host", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            cl->http_host = v;
        } else if ((r = cl_actor_take_value(cmd, "--admin-host", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            cl->admin_host = v;
        } else if ((r = cl_actor_take_value(cmd, "--http-tls-cert", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            cl->tls_cert = v;
        } else if ((r = cl_actor_take_value(cmd, "--http-tls-key", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            cl->tls_key = v;
        } else if ((r = cl_actor_take_value(cmd, "--admin-token-file", argc, argv, &i, &v)) !=
                   0) {
            if (r < 0)
                return 2;
            cl->admin_token_file = v;
        } else if ((r = cl_actor_take_value(cmd, "--metrics-token-file", argc, argv, &i, &v)) !=
                   0) {
            if (r < 0)
                return 2;
            cl->metrics_token_file = v;
        } else if ((r = cl_actor_take_value(cmd, "--query-token-file", argc, argv, &i, &v)) !=
                   0) {
            if (r < 0)
                return 2;
            cl->query_token_file = v;
        } else if ((r = cl_actor_take_value(cmd, "--nats-port", argc, argv, &i, &v)) != 0) {
            if (r < 0 || cl__cli_parse_int(cmd, "--nats-port", v, 1, 65535, &cl->nats_port) != 0)
                return 2;
        } else if ((r = cl_actor_take_value(cmd, "--http-port", argc, argv, &i, &v)) != 0) {
            if (r < 0 || cl__cli_parse_int(cmd, "--http-port", v, 1, 65535, &cl->http_port) != 0)
                return 2;
        } else if ((r = cl_actor_take_value(cmd, "--metrics-port", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_optional_port("--metrics-port", v, &cl->metrics_port) != 0)
                return 2;
        } else if ((r = cl_actor_take_value(cmd, "--admin-port", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_optional_port("--admin-port", v, &cl->admin_port) != 0)
                return 2;
        } else if ((r = cl_actor_take_value(cmd, "--supervisor-port", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_optional_port("--supervisor-port", v, &cl->sv_port) != 0)
                return 2;
        } else if ((r = cl_actor_take_value(cmd, "--routers", argc, argv, &i, &v)) != 0) {
            if (r < 0 || cl__cli_parse_int(cmd, "--routers", v, 1, 2, &cl->routers) != 0)
                return 2;
        } else if ((r = cl_actor_take_value(cmd, "--frontends", argc, argv, &i, &v)) != 0) {
            if (r < 0 || cl__cli_parse_int(cmd, "--frontends", v, 1, 2, &cl->frontends) != 0)
                return 2;
        } else if ((r = cl_actor_take_value(cmd, "--max-restarts", argc, argv, &i, &v)) != 0) {
            long n;
            if (r < 0 || cl__cli_parse_int(cmd, "--max-restarts", v, 1, 64, &n) != 0)
                return 2;
            cl->svo.max_restarts = (unsigned)n;
        } else if ((r = cl_actor_take_value(cmd, "--restart-period", argc, argv, &i, &v)) != 0) {
            long n;
            if (r < 0 || cl__cli_parse_int(cmd, "--restart-period", v, 1, 86400, &n) != 0)
                return 2;
            cl->svo.period_s = (unsigned)n;
        } else if ((r = cl_actor_take_value(cmd, "--backoff-max-ms", argc, argv, &i, &v)) != 0) {
            long n;
            if (r < 0 || cl__cli_parse_int(cmd, "--backoff-max-ms", v, 0, 600000, &n) != 0)
                return 2;
            cl->svo.backoff_max_ms = (unsigned)n;
        } else if ((r = cl_actor_take_value(cmd, "--cache-size", argc, argv, &i, &v)) != 0) {
            if (r < 0 ||
                cl__cli_parse_int(cmd, "--cache-size", v, 0, 1L << 40, &cl->cache_size) != 0)
                return 2;
        } else {
            fprintf(stderr, "clipper start: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (cl->nats_arg != NULL && cl->nats_arg[0] == '\0') {
        fprintf(stderr, "clipper start: --nats needs a URL\n");
        return 2;
    }
    if (cl->http_host[0] == '\0' || cl->admin_host[0] == '\0') {
        fprintf(stderr, "clipper start: --%s-host needs a host name or address\n",
                cl->http_host[0] == '\0' ? "http" : "admin");
        return 2;
    }
    if ((cl->tls_cert == NULL) != (cl->tls_key == NULL)) {
        fprintf(stderr, "clipper start: --http-tls-cert and --http-tls-key go together: give "
                        "both\n");
        return 2;
    }
    if (cl->admin_port > 0 &&
        (cl->admin_port == cl->http_port || cl->admin_port == cl->metrics_port)) {
        fprintf(stderr, "clipper start: --admin-port %ld is also the %s port; choose another\n",
                cl->admin_port, cl->admin_port == cl->http_port ? "HTTP" : "metrics");
        return 2;
    }
    return 0;
}

static int prepare_dirs(cluster *cl)
{
    cl_err err;
    char log_dir[PATH_MAX];
    if (cl_proc_mkdirs(cl->data_dir, &err) != CL_OK) {
        fprintf(stderr, "clipper start: data directory: %s\n", err.msg);
        return -1;
    }
    if (realpath(cl->data_dir, cl->data_abs) == NULL) {
        fprintf(stderr, "clipper start: data directory %s: %s\n", cl->data_dir, strerror(errno));
        return -1;
    }
    if (cl->log_dir == NULL) {
        snprintf(log_dir, sizeof(log_dir), "%.*s/logs", PATH_MAX - 8, cl->data_abs);
        cl->log_dir = log_dir;
    }
    if (cl_proc_mkdirs(cl->log_dir, &err) != CL_OK) {
        fprintf(stderr, "clipper start: log directory: %s\n", err.msg);
        return -1;
    }
    if (realpath(cl->log_dir, cl->log_abs) == NULL) {
        fprintf(stderr, "clipper start: log directory %s: %s\n", cl->log_dir, strerror(errno));
        return -1;
    }
    cl->log_dir = cl->log_abs;
    return 0;
}

/* True (after saying so) when something listens on host:port already;
 * port -1 (turned off) is never in use. */
static bool port_in_use(const char *host, long port, const char *what, const char *option,
                        bool optional)
{
    if (port < 0 || !port_taken(host, (int)port))
        return false;
    fprintf(stderr, "clipper start: the %s port %ld on %s is already in use; choose another with "
                    "%s N%s\n",
            what, port, host, option, optional ? " (or -1 for none)" : "");
    return true;
}

int cl__cli_start(int argc, char **argv)
{
    /* Before any thread exists, so every thread (cnats') inherits the mask
     * and the signals wait for sigtimedwait. */
    sigset_t set;
    watched_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    cl_log_set_name("start");

    static cluster cl;
    memset(&cl, 0, sizeof(cl));
    static const char *const names[C_COUNT] = {"nats-server", "admin",      "router",
                                               "router-2",    "frontend",   "frontend-2",
                                               "manager"};
    for (int i = 0; i < C_COUNT; i++)
        cl.names[i] = names[i];
    int r = parse(&cl, argc, argv);
    if (r != 0)
        return r == 1 ? 0 : 2;

    cl_err err;
    if (cl_proc_self_exe(cl.exe, sizeof(cl.exe), &err) != CL_OK) {
        fprintf(stderr, "clipper start: %s\n", err.msg);
        return 1;
    }
    if (cl.bus_tls_off && cl.nats_arg != NULL) {
        fprintf(stderr, "clipper start: --bus-tls applies to the nats-server clipper start runs, "
                        "not to one given with --nats (its URL says whether it speaks TLS)\n");
        return 2;
    }
    if (prepare_dirs(&cl) != 0)
        return 1;
    /* Identities and TLS unless asked by name not to. With --nats (a
     * server run by someone else) only when this data directory has them
     * already (made by an earlier start, matching that server's users). */
    char secrets_dir[PATH_MAX + 16];
    snprintf(secrets_dir, sizeof(secrets_dir), "%s/secrets", cl.data_abs);
    cl.secure = !cl.insecure && (cl.nats_arg == NULL || access(secrets_dir, F_OK) == 0);
    cl.tls = cl.secure && !cl.bus_tls_off;
    if (cl.secure && !cl.tls)
        fprintf(stderr, "clipper: the bus has identities and permissions but no TLS (--bus-tls "
                        "off): its nats-server listens on 127.0.0.1 only\n");
    if (cl.secure && cl__secrets_ensure(&cl.sec, cl.data_abs, cl.prefix) != 0)
        return 1;
    if (!cl.secure)
        fprintf(stderr, "clipper: INSECURE: the bus has no identities and no TLS%s; anyone who "
                        "reaches %s may deploy code and read every query\n",
                cl.insecure ? " (--insecure)" : " (--nats without secrets in the data directory)",
                cl.nats_arg != NULL ? cl.nats_arg : "its port");
    if (port_in_use(cl.http_host, cl.http_port, "HTTP", "--http-port", false) ||
        port_in_use(cl.http_host, cl.metrics_port, "metrics", "--metrics-port", true) ||
        port_in_use(cl.admin_host, cl.admin_port, "admin", "--admin-port", true) ||
        port_in_use(cl.http_host, cl.sv_port, "supervisor", "--supervisor-port", true))
        return 1;
    if (cl_sv_new(&cl.sv, &cl.svo, NULL, &err) != CL_OK) {
        fprintf(stderr, "clipper start: %s\n", err.msg);
        return 2;
    }

    int rc = 1;
    cl_bus *bus = NULL;
    cl_sv_report *report = NULL;
    if (cl.nats_arg != NULL) {
        snprintf(cl.url, sizeof(cl.url), "%s", cl.nats_arg);
    } else if (start_nats(&cl) != 0) {
        goto out;
    }
    if ((bus = connect_bus(&cl)) == NULL)
        goto out;
    if (start_actors(&cl) != 0 || wait_ready(&cl, bus) != 0)
        goto out;
    /* Our own connection is not needed while the cluster runs; the
     * supervisor's report has one of its own that outlasts the server. */
    cl_bus_free(bus);
    bus = NULL;
    char sv_creds[PATH_MAX + 64];
    cl__secrets_creds_path(&cl.sec, CL_ROLE_SUPERVISOR, sv_creds);
    cl_sv_report_opts ro = {.nats_url = cl.url, .prefix = cl.prefix,
                            .creds_file = cl.secure ? sv_creds : NULL,
                            .tls_ca_file = cl.tls ? cl.sec.ca : NULL,
                            .metrics_host = cl.http_host, .metrics_port = (int)cl.sv_port};
    if (cl_sv_report_start(&report, cl.sv, &ro, &err) != CL_OK) {
        fprintf(stderr, "clipper start: %s\n", err.msg);
        goto out;
    }

    const char *shown = strcmp(cl.http_host, "0.0.0.0") == 0 ? "127.0.0.1" : cl.http_host;
    const char *admin_shown = strcmp(cl.admin_host, "0.0.0.0") == 0 ? "127.0.0.1"
                                                                     : cl.admin_host;
    const char *scheme = cl.tls_cert != NULL ? "https" : "http";
    char admin[320] = "", metrics[320] = "", svm[320] = "";
    if (cl.admin_port > 0)
        snprintf(admin, sizeof(admin), " admin=%s://%s:%ld", scheme, admin_shown,
                 cl.admin_port);
    if (cl.metrics_port > 0)
        snprintf(metrics, sizeof(metrics), " metrics=%s://%s:%ld", scheme, shown,
                 cl.metrics_port);
    if (cl.sv_port > 0)
        snprintf(svm, sizeof(svm), " supervisor=http://%s:%ld", shown, cl.sv_port);
    printf("clipper: cluster ready nats=%s prefix=%s query=%s://%s:%ld%s%s%s\n", cl.url,
           cl.prefix, scheme, shown, cl.http_port, admin, metrics, svm);
    fflush(stdout);
    rc = supervise(&cl, report);
out:
    cl_bus_free(bus);
    stop_cluster(&cl);
    cl_sv_report_free(report);
    cl_sv_free(cl.sv);
    fprintf(stderr, "clipper: cluster stopped\n");
    return rc;
}
