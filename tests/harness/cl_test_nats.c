/* Starts and stops throwaway nats-server processes for integration tests,
 * and connects buses to them (cl_test_nats.h). */
#include "cl_test_nats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_clock.h"
#include "cl_test_util.h"

#ifndef CL_TEST_NATS_SERVER
#define CL_TEST_NATS_SERVER "nats-server"
#endif

int cl_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t alen = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    /* Never hand out the ports other clusters on this machine may use. */
    if (port == 4222 || port == 1337 || port == 1338)
        return cl_test_free_port();
    return port;
}

/* $NATS_SERVER, else nats-server found on PATH, else the configured path. */
static void find_server(char *out, size_t cap)
{
    const char *env = getenv("NATS_SERVER");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, cap, "%s", env);
        return;
    }
    const char *path = getenv("PATH");
    if (path != NULL) {
        char *copy = strdup(path);
        char *save = NULL;
        for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d != NULL;
             d = strtok_r(NULL, ":", &save)) {
            char cand[512];
            snprintf(cand, sizeof(cand), "%s/nats-server", d);
            if (access(cand, X_OK) == 0) {
                snprintf(out, cap, "%s", cand);
                free(copy);
                return;
            }
        }
        free(copy);
    }
    snprintf(out, cap, "%s", CL_TEST_NATS_SERVER);
}

static int accepts(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void print_log(const cl_test_nats *srv)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/nats.log", srv->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    fprintf(stderr, "--- %s ---\n", path);
    while (fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

/* Forks and execs the server on srv->port and srv->dir, then waits for it. */
static int spawn(cl_test_nats *srv)
{
    char bin[512];
    find_server(bin, sizeof(bin));
    char port[16], log[300];
    snprintf(port, sizeof(port), "%d", srv->port);
    snprintf(log, sizeof(log), "%s/nats.log", srv->dir);
    pid_t pid = cl_test_fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (srv->conf[0] != '\0')
            execl(bin, bin, "-c", srv->conf, "-a", srv->host, "-p", port, "-js", "-sd", srv->dir,
                  (char *)NULL);
        else
            execl(bin, bin, "-a", srv->host, "-p", port, "-js", "-sd", srv->dir, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    srv->pid = (int)pid;
    uint64_t deadline = cl_mono_us() + 5000000u;
    while (cl_mono_us() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            srv->pid = 0;
            fprintf(stderr, "nats-server (%s) exited at start on port %d\n", bin, srv->port);
            print_log(srv);
            return -1;
        }
        if (accepts(srv->host, srv->port))
            return 0;
        cl_sleep_ms(20);
    }
    fprintf(stderr, "nats-server (%s) did not accept connections on port %d within 5 s\n", bin,
            srv->port);
    print_log(srv);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    srv->pid = 0;
    return -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int cl_test_nats_start(cl_test_nats *srv)
{
    return cl_test_nats_start_on(srv, "127.0.0.1");
}

/* cl_test_nats_start_on, with a config file when conf_path is not NULL. */
static int start(cl_test_nats *srv, const char *host, const char *conf_path)
{
    memset(srv, 0, sizeof(*srv));
    snprintf(srv->host, sizeof(srv->host), "%s", host);
    if (conf_path != NULL)
        snprintf(srv->conf, sizeof(srv->conf), "%s", conf_path);
    /* The store goes on tmpfs when there is one: on disk, a burst of
     * writeback (a sanitizer build just linked) stalls JetStream's writes
     * for seconds, past the tests' request timeouts. */
    bool made = false;
    if (access("/dev/shm", W_OK) == 0) {
        snprintf(srv->dir, sizeof(srv->dir), "/dev/shm/cl-test-nats-XXXXXX");
        made = mkdtemp(srv->dir) != NULL;
    }
    if (!made)
        snprintf(srv->dir, sizeof(srv->dir), "/tmp/cl-test-nats-XXXXXX");
    if (!made && mkdtemp(srv->dir) == NULL) {
        perror("mkdtemp");
        srv->dir[0] = '\0';
        return -1;
    }
    /* The port may be taken between our probe and the server's bind: retry. */
    for (int attempt = 0; attempt < 3; attempt++) {
        srv->port = cl_test_free_port();
        if (srv->port <= 0)
            continue;
        snprintf(srv->url, sizeof(srv->url), "nats://%s:%d", srv->host, srv->port);
        if (spawn(srv) == 0)
            return 0;
    }
    nftw(srv->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    srv->dir[0] = '\0';
    return -1;
}

int cl_test_nats_start_on(cl_test_nats *srv, const char *host)
{
    return start(srv, host, NULL);
}

int cl_test_nats_start_conf(cl_test_nats *srv, const char *conf_path)
{
    return start(srv, "127.0.0.1", conf_path);
}

static int kill_server(cl_test_nats *srv)
{
    if (srv->pid <= 0)
        return 0;
    pid_t pid = (pid_t)srv->pid;
    kill(pid, SIGTERM);
    uint64_t deadline = cl_mono_us() + 3000000u;
    int rc = 0;
    for (;;) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            break;
        if (cl_mono_us() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            rc = -1;
            break;
        }
        cl_sleep_ms(20);
    }
    srv->pid = 0;
    return rc;
}

int cl_test_nats_stop(cl_test_nats *srv)
{
    int rc = kill_server(srv);
    if (srv->dir[0] != '\0') {
        nftw(srv->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        srv->dir[0] = '\0';
    }
    return rc;
}

int cl_test_nats_kill(cl_test_nats *srv)
{
    return kill_server(srv);
}

int cl_test_nats_restart(cl_test_nats *srv)
{
    kill_server(srv);
    return cl_test_nats_respawn(srv);
}

int cl_test_nats_respawn(cl_test_nats *srv)
{
    /* The old listener may linger a moment; retry the same port. */
    for (int attempt = 0; attempt < 20; attempt++) {
        if (spawn(srv) == 0)
            return 0;
        cl_sleep_ms(100);
    }
    return -1;
}

/* ---- one server per test program ------------------------------------- */

cl_test_nats cl_test_srv;

int cl_test_nats_group_setup(void **state)
{
    (void)state;
    return cl_test_nats_start(&cl_test_srv);
}

int cl_test_nats_group_teardown(void **state)
{
    (void)state;
    return cl_test_nats_stop(&cl_test_srv);
}

/* ---- buses ----------------------------------------------------------- */

int cl_test_bus_connect_opts(cl_bus **out, const cl_test_nats *srv, cl_bus_opts *opts)
{
    *out = NULL;
    opts->url = srv->url;
    cl_err err;
    if (cl_bus_connect(out, opts, &err) != CL_OK) {
        fprintf(stderr, "connect to %s: %s\n", srv->url, err.msg);
        *out = NULL;
        return -1;
    }
    return 0;
}

int cl_test_bus_connect(cl_bus **out, const cl_test_nats *srv, const char *prefix)
{
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.prefix = prefix; /* NULL: the default */
    return cl_test_bus_connect_opts(out, srv, &o);
}

int cl_test_bus_connect_kv(cl_bus **bus, cl_kv **kv, const cl_test_nats *srv,
                           const char *prefix)
{
    *kv = NULL;
    if (cl_test_bus_connect(bus, srv, prefix) != 0)
        return -1;
    cl_err err;
    if (cl_kv_open(kv, *bus, &err) != CL_OK) {
        fprintf(stderr, "open the state bucket: %s\n", err.msg);
        *kv = NULL;
        cl_bus_free(*bus);
        *bus = NULL;
        return -1;
    }
    return 0;
}
