/* The local backend: replicas are child processes of the manager.
 *
 * Each replica runs '<command> run replica --nats URL --prefix P --model M
 * --version V' in a process group of its own (so stopping it also stops
 * what it spawned, a JVM for PySpark for instance) and appends its output
 * to <log_dir>/<model>_<version>-<n>.log, so a restarted replica keeps the
 * history of the ones before it.
 *
 * A replica outlives its manager: when the manager is killed the replicas
 * keep serving, and the next manager (its supervisor restarts it) adopts
 * them: it finds in /proc the processes of this user whose command line is
 * a replica of the same bus URL and prefix, and waits on them through a
 * pidfd (they are not its children, so how they end is not known). A
 * manager that stops normally stops its replicas. A replica whose bus stays
 * unreachable for a minute (everything around it is gone) exits on its
 * own: --exit-after-bus-loss 60. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cl_backend.h"
#include "cl_identity.h"
#include "cl_log.h"
#include "cl_proc.h"

#define HEADER_MARK " clipper manager starts:"
#define BUS_LOSS_EXIT_S "60"

typedef struct {
    cl_backend base;
    char *nats_url;
    char *creds;  /* or NULL */
    char *identities; /* the cluster's data directory (per-model identities), or NULL */
    char *host;       /* --host-name of its replicas; others' are not adopted */
    char *tls_ca; /* or NULL */
    char *prefix;
    char *log_dir;
    char *command;
    cl_backend_replica *live; /* started, not yet reported ended */
    size_t n_live;
    size_t cap_live;
} local_backend;

static void signal_group(int pid, int sig)
{
    /* The replica leads its own process group; fall back to the pid alone
     * in case the group is already gone. */
    if (kill(-pid, sig) != 0)
        kill(pid, sig);
}

static void write_header(int fd, char *const argv[])
{
    char line[2048];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int n = (int)strftime(line, sizeof(line), "--- %Y-%m-%dT%H:%M:%SZ" HEADER_MARK, &tm);
    for (size_t i = 0; argv[i] != NULL && n > 0 && (size_t)n < sizeof(line); i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", argv[i]);
    if (n > 0 && (size_t)n < sizeof(line) - 1) {
        line[n++] = '\n';
        ssize_t w = write(fd, line, (size_t)n);
        (void)w;
    }
}

/* The replica reads its runtime from the model's record; the
 * container_name has nothing to choose here. */
static CL_MUST_USE cl_status local_start(cl_backend *b, const cl_backend_spec *spec,
                                         cl_backend_replica *out, cl_err *err)
{
    local_backend *lb = (local_backend *)b;
    const char *model = spec->model, *version = spec->version;
    unsigned n = spec->n;
    cl_backend_replica r;
    memset(&r, 0, sizeof(r));
    r.wait_fd = -1;
    char scoped[PATH_MAX];
    const char *creds = lb->creds;
    if (lb->identities != NULL) {
        bool issued = false;
        cl_status s = cl_model_creds(lb->command, lb->identities, lb->prefix, model, scoped,
                                     &issued, err);
        if (s != CL_OK) {
            cl_err_prefix(err, "no identity for the replicas of model %s", model);
            return s;
        }
        creds = scoped;
    }
    if (snprintf(r.log, sizeof(r.log), "%s/%s_%s-%u.log", lb->log_dir, model, version, n) >=
        (int)sizeof(r.log))
        return cl_err_set(err, CL_ERR_INVALID, "log file path too long for %s:%s", model, version);
    if (lb->n_live == lb->cap_live) {
        size_t cap = lb->cap_live ? lb->cap_live * 2 : 8;
        cl_backend_replica *p = realloc(lb->live, cap * sizeof(*p));
        if (p == NULL)
            return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        lb->live = p;
        lb->cap_live = cap;
    }
    int fd = open(r.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cl_err_set(err, CL_ERR_IO, "cannot open the replica's log file %s: %s", r.log,
                          strerror(errno));
    char *argv[24] = {lb->command, "run", "replica", "--nats", lb->nats_url,
                      "--prefix", lb->prefix, "--model", (char *)model,
                      "--version", (char *)version, "--exit-after-bus-loss", BUS_LOSS_EXIT_S,
                      "--host-name", lb->host};
    size_t k = 15;
    /* The credential's path, not the secret: ps shows the command line. */
    if (creds != NULL) {
        argv[k++] = "--creds";
        argv[k++] = (char *)creds;
    }
    if (lb->tls_ca != NULL) {
        argv[k++] = "--tls-ca";
        argv[k++] = lb->tls_ca;
    }
    argv[k] = NULL;
    write_header(fd, argv);
    cl_proc_opts po = {.stdout_fd = fd, .stderr_fd = fd, .new_pgroup = true,
                       .outlive_parent = true};
    pid_t pid;
    cl_status s = cl_proc_spawn(&pid, argv, &po, err);
    if (s != CL_OK) {
        char line[700];
        int len = snprintf(line, sizeof(line), "--- %s\n", err ? err->msg : "cannot start");
        if (len > 0) {
            ssize_t w = write(fd, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
            (void)w;
        }
        close(fd);
        return s;
    }
    close(fd);
    r.pid = (int)pid;
    snprintf(r.id, sizeof(r.id), "%d", r.pid);
    /* A pidfd lets the manager sleep until a replica ends instead of
     * finding out at its next periodic pass. */
    r.wait_fd = pidfd_open(pid, 0);
    lb->live[lb->n_live++] = r;
    *out = r;
    return CL_OK;
}

static void local_stop(cl_backend *b, const cl_backend_replica *r, bool force)
{
    (void)b;
    if (r->pid > 0)
        signal_group(r->pid, force ? SIGKILL : SIGTERM);
}

static void forget(local_backend *lb, int pid)
{
    for (size_t i = 0; i < lb->n_live; i++) {
        if (lb->live[i].pid == pid) {
            if (lb->live[i].wait_fd >= 0)
                close(lb->live[i].wait_fd);
            lb->live[i] = lb->live[--lb->n_live];
            return;
        }
    }
}

/* The last lines of the replica's log file (of its last run only), at
 * most size-1 bytes. */
static void local_tail(const cl_backend_replica *r, char *buf, size_t size)
{
    buf[0] = '\0';
    if (size < 2)
        return;
    int fd = open(r->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        size_t want = size - 1;
        off_t from = st.st_size > (off_t)want ? st.st_size - (off_t)want : 0;
        ssize_t n = pread(fd, buf, want, from);
        if (n > 0) {
            buf[n] = '\0';
            /* Start at a whole line when the read began mid-file. */
            char *start = buf;
            if (from > 0) {
                char *nl = strchr(buf, '\n');
                if (nl != NULL)
                    start = nl + 1;
            }
            /* Only the last run: skip past the header write_header put
             * before it, when it is in the window. */
            for (char *h = start; (h = strstr(h, HEADER_MARK)) != NULL; h++) {
                char *nl = strchr(h, '\n');
                if (nl != NULL)
                    start = nl + 1;
            }
            memmove(buf, start, strlen(start) + 1);
            size_t len = strlen(buf);
            while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                buf[--len] = '\0';
        }
    }
    close(fd);
}

/* For a replica that is not our child (adopted): true once it has ended. */
static bool adopted_ended(const cl_backend_replica *r)
{
    if (r->wait_fd >= 0) {
        struct pollfd p = {.fd = r->wait_fd, .events = POLLIN};
        return poll(&p, 1, 0) > 0;
    }
    return kill(r->pid, 0) != 0 && errno == ESRCH;
}

static bool local_poll(cl_backend *b, const cl_backend_replica *r, cl_backend_end *end)
{
    local_backend *lb = (local_backend *)b;
    int code;
    if (!cl_proc_reaped(r->pid, &code))
        return false;
    if (code == -1000 && !adopted_ended(r))
        return false; /* adopted: not our child, still running */
    /* Whatever the replica left in its group goes with it. */
    kill(-r->pid, SIGKILL);
    end->exit_code = code;
    end->error[0] = '\0';
    local_tail(r, end->tail, sizeof(end->tail));
    forget(lb, r->pid);
    return true;
}

static size_t local_list(cl_backend *b, cl_backend_replica **out)
{
    local_backend *lb = (local_backend *)b;
    *out = NULL;
    if (lb->n_live == 0)
        return 0;
    *out = malloc(lb->n_live * sizeof(**out));
    if (*out == NULL)
        return 0;
    memcpy(*out, lb->live, lb->n_live * sizeof(**out));
    return lb->n_live;
}

/* argv of /proc/<pid>/cmdline, split in place into buf; count or -1. */
static int read_cmdline(int pid, char *buf, size_t size, char **argv, int max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    int argc = 0;
    for (char *p = buf; p < buf + n && argc < max; p += strlen(p) + 1)
        argv[argc++] = p;
    return argc;
}

static const char *option_value(char **argv, int argc, const char *name)
{
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    }
    return NULL;
}

/* The replica number in its log file's name <log_dir>/<model>_<version>-<n>.log. */
static unsigned number_from_log(const local_backend *lb, const char *log, const char *model,
                                const char *version)
{
    char want[PATH_MAX + 300];
    int len = snprintf(want, sizeof(want), "%s/%s_%s-", lb->log_dir, model, version);
    if (len <= 0 || (size_t)len >= sizeof(want) || strncmp(log, want, (size_t)len) != 0)
        return UINT_MAX;
    char *end;
    unsigned long n = strtoul(log + len, &end, 10);
    return end != log + len && strcmp(end, ".log") == 0 && n < 100000 ? (unsigned)n : UINT_MAX;
}

static size_t local_adopt(cl_backend *b, cl_backend_found **out)
{
    local_backend *lb = (local_backend *)b;
    *out = NULL;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 1 || pid == (long)getpid())
            continue;
        char path[64];
        struct stat st;
        snprintf(path, sizeof(path), "/proc/%ld", pid);
        if (stat(path, &st) != 0 || st.st_uid != getuid())
            continue;
        char buf[8192], *argv[64];
        int argc = read_cmdline((int)pid, buf, sizeof(buf), argv, 64);
        if (argc < 3 || strcmp(argv[1], "run") != 0 || strcmp(argv[2], "replica") != 0)
            continue;
        const char *nats = option_value(argv, argc, "--nats");
        const char *prefix = option_value(argv, argc, "--prefix");
        const char *model = option_value(argv, argc, "--model");
        const char *version = option_value(argv, argc, "--version");
        /* Another host's (several hosts may share one kernel: network
         * namespaces) is left to its own manager. */
        const char *host = option_value(argv, argc, "--host-name");
        if (host != NULL && strcmp(host, lb->host) != 0)
            continue;
        if (nats == NULL || prefix == NULL || model == NULL || version == NULL ||
            strcmp(nats, lb->nats_url) != 0 || strcmp(prefix, lb->prefix) != 0 ||
            strlen(model) >= sizeof((*out)->model) || strlen(version) >= sizeof((*out)->version))
            continue;
        /* Only the leader of its own process group, as we start them (not
         * a child it spawned that happens to look alike). */
        if (getpgid((pid_t)pid) != (pid_t)pid)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            cl_backend_found *p = realloc(*out, nc * sizeof(*p));
            if (p == NULL)
                break;
            *out = p;
            cap = nc;
        }
        if (lb->n_live == lb->cap_live) {
            size_t nc = lb->cap_live ? lb->cap_live * 2 : 8;
            cl_backend_replica *p = realloc(lb->live, nc * sizeof(*p));
            if (p == NULL)
                break;
            lb->live = p;
            lb->cap_live = nc;
        }
        cl_backend_found *f = &(*out)[n];
        memset(f, 0, sizeof(*f));
        f->rep.pid = (int)pid;
        snprintf(f->rep.id, sizeof(f->rep.id), "%ld", pid);
        char fd1[64];
        snprintf(fd1, sizeof(fd1), "/proc/%ld/fd/1", pid);
        ssize_t ll = readlink(fd1, f->rep.log, sizeof(f->rep.log) - 1);
        f->rep.log[ll > 0 ? ll : 0] = '\0';
        f->rep.wait_fd = pidfd_open((pid_t)pid, 0);
        snprintf(f->model, sizeof(f->model), "%s", model);
        snprintf(f->version, sizeof(f->version), "%s", version);
        f->n = number_from_log(lb, f->rep.log, model, version);
        lb->live[lb->n_live++] = f->rep;
        n++;
    }
    closedir(d);
    return n;
}

static void local_free(cl_backend *b)
{
    local_backend *lb = (local_backend *)b;
    for (size_t i = 0; i < lb->n_live; i++) {
        int code;
        signal_group(lb->live[i].pid, SIGKILL);
        cl_proc_wait(lb->live[i].pid, -1, &code);
        if (lb->live[i].wait_fd >= 0)
            close(lb->live[i].wait_fd);
    }
    free(lb->live);
    free(lb->nats_url);
    free(lb->creds);
    free(lb->identities);
    free(lb->host);
    free(lb->tls_ca);
    free(lb->prefix);
    free(lb->log_dir);
    free(lb->command);
    free(lb);
}

static const cl_backend_ops local_ops = {
    .name = "local",
    .start = local_start,
    .stop = local_stop,
    .poll = local_poll,
    .list = local_list,
    .adopt = local_adopt,
    .free = local_free,
};

cl_status cl_backend_local_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err)
{
    char exe[PATH_MAX];
    if (cfg->command != NULL && cfg->command[0] != '\0') {
        if (!cl_proc_find_program(cfg->command, NULL, exe, sizeof(exe)))
            return cl_err_set(err, CL_ERR_NOT_FOUND,
                              "the replica command '%s' is not an executable program",
                              cfg->command);
    } else {
        cl_status s = cl_proc_self_exe(exe, sizeof(exe), err);
        if (s != CL_OK)
            return s;
    }
    const char *log_dir = cfg->log_dir ? cfg->log_dir : "./clipper_logs";
    cl_status s = cl_proc_mkdirs(log_dir, err);
    if (s != CL_OK) {
        cl_err_prefix(err, "log directory");
        return s;
    }
    char abs_dir[PATH_MAX];
    if (realpath(log_dir, abs_dir) == NULL)
        return cl_err_set(err, CL_ERR_IO, "cannot resolve the log directory %s: %s", log_dir,
                          strerror(errno));
    local_backend *lb = calloc(1, sizeof(*lb));
    if (lb == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    lb->base.ops = &local_ops;
    lb->nats_url = strdup(cfg->nats_url ? cfg->nats_url : "nats://127.0.0.1:4222");
    lb->creds = cfg->creds ? strdup(cfg->creds) : NULL;
    lb->identities = cfg->identities ? strdup(cfg->identities) : NULL;
    lb->host = strdup(cfg->host && cfg->host[0] ? cfg->host : "localhost");
    lb->tls_ca = cfg->tls_ca ? strdup(cfg->tls_ca) : NULL;
    lb->prefix = strdup(cfg->prefix ? cfg->prefix : "clipper");
    lb->log_dir = strdup(abs_dir);
    lb->command = strdup(exe);
    if (!lb->nats_url || !lb->prefix || !lb->log_dir || !lb->command ||
        (cfg->creds && !lb->creds) || (cfg->tls_ca && !lb->tls_ca) ||
        (cfg->identities && !lb->identities) || !lb->host) {
        local_free(&lb->base);
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    cl_debug("local backend: replicas run '%s run replica', logs in %s", exe, abs_dir);
    *out = &lb->base;
    return CL_OK;
}

cl_status cl_backend_new(cl_backend **out, const char *name, const cl_backend_config *cfg,
                         cl_err *err)
{
    if (name == NULL || strcmp(name, "local") == 0)
        return cl_backend_local_new(out, cfg, err);
    if (strcmp(name, "docker") == 0)
        return cl_backend_docker_new(out, cfg, err);
    if (strcmp(name, "kubernetes") == 0)
        return cl_backend_kube_new(out, cfg, err);
    return cl_err_set(err, CL_ERR_INVALID,
                      "unknown backend '%s' (this build knows: local, docker, kubernetes)",
                      name);
}

void cl_backend_free(cl_backend *b)
{
    if (b != NULL)
        b->ops->free(b);
}
