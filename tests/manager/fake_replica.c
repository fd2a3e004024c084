/* A stand-in for 'clipper run replica', so the container manager's logic is
 * tested on its own. Started as
 *   fake_replica run replica --nats URL --prefix P --model M --version V
 * it prints one start line (with a monotonic timestamp) and then, by model
 * name: "crash*" exits 3 at once (as a replica that cannot load its model),
 * "hbpicky*" exits 3 on host "hb" and is an "hb*" elsewhere,
 * "stubborn*" ignores SIGTERM, "hang*" sends "ready" heartbeats for 2 s and
 * then goes silent while staying alive (a hung replica), "hb*" sends
 * "ready" heartbeats every 250 ms until SIGTERM (a serving replica, which
 * the placement of several managers counts), anything else runs until
 * SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_host.h"
#include "cl_replicas.h"
#include "cl_subject.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* Connects to the bus and fills in a "ready" heartbeat of this process and
 * its subject; NULL (said on stderr) when it cannot. */
static cl_bus *hb_connect(const char *nats, const char *prefix, const char *model,
                          const char *version, cl_replica_info *info,
                          char subject[CL_SUBJECT_MAX])
{
    cl_bus_opts bo;
    cl_bus_opts_init(&bo);
    bo.url = nats;
    bo.prefix = prefix;
    cl_err err;
    cl_bus *bus = NULL;
    if (cl_bus_connect(&bus, &bo, &err) != CL_OK) {
        fprintf(stderr, "fake replica: %s\n", err.msg);
        return NULL;
    }
    memset(info, 0, sizeof(*info));
    snprintf(info->model, sizeof(info->model), "%s", model);
    snprintf(info->version, sizeof(info->version), "%s", version);
    info->replica_id = (uint32_t)getpid();
    snprintf(info->state, sizeof(info->state), "ready");
    cl_host_name(info->host, sizeof(info->host));
    info->pid = (int)getpid();
    snprintf(info->input_type, sizeof(info->input_type), "doubles");
    char id[16];
    snprintf(id, sizeof(id), "%u", info->replica_id);
    if (cl_subj_replica_hb(subject, prefix, model, version, id, &err) != CL_OK) {
        fprintf(stderr, "fake replica: %s\n", err.msg);
        cl_bus_free(bus);
        return NULL;
    }
    return bus;
}

/* "hb*": ready heartbeats every 250 ms until SIGTERM. */
static int serve_ready(const char *nats, const char *prefix, const char *model,
                       const char *version)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    cl_replica_info info;
    char subject[CL_SUBJECT_MAX];
    cl_bus *bus = hb_connect(nats, prefix, model, version, &info, subject);
    if (bus == NULL)
        return 1;
    char *body = cl_heartbeat_encode(&info, "python-closure");
    while (!stop && body != NULL) {
        cl_status s = cl_bus_publish(bus, subject, body, strlen(body));
        if (s != CL_OK)
            fprintf(stderr, "fake replica: heartbeat not sent: %s\n", cl_status_text(s));
        cl_sleep_ms(250);
    }
    free(body);
    /* As a real replica says when it stops. */
    snprintf(info.state, sizeof(info.state), "stopped");
    body = cl_heartbeat_encode(&info, "python-closure");
    if (body != NULL && (cl_bus_publish(bus, subject, body, strlen(body)) != CL_OK ||
                         cl_bus_flush(bus, 1000) != CL_OK))
        fprintf(stderr, "fake replica: the last heartbeat was not sent\n");
    free(body);
    cl_bus_free(bus);
    printf("fake replica %s:%s stopping\n", model, version);
    return 0;
}

int main(int argc, char **argv)
{
    const char *nats = NULL, *prefix = NULL, *model = NULL, *version = NULL;
    if (argc < 3 || strcmp(argv[1], "run") != 0 || strcmp(argv[2], "replica") != 0) {
        fprintf(stderr, "fake replica: expected 'run replica' first\n");
        return 64;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--nats") == 0)
            nats = argv[i + 1];
        else if (strcmp(argv[i], "--prefix") == 0)
            prefix = argv[i + 1];
        else if (strcmp(argv[i], "--model") == 0)
            model = argv[i + 1];
        else if (strcmp(argv[i], "--version") == 0)
            version = argv[i + 1];
        else if (strcmp(argv[i], "--host-name") == 0)
            setenv("CLIPPER_HOST_NAME", argv[i + 1], 1);
    }
    if (!nats || !prefix || !model || !version) {
        fprintf(stderr, "fake replica: missing --nats, --prefix, --model or --version\n");
        return 64;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    printf("fake replica start %s:%s pid=%d mono_us=%lld\n", model, version, (int)getpid(),
           (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000);
    fflush(stdout);
    if (strncmp(model, "crash", 5) == 0) {
        fprintf(stderr, "cannot load model %s:%s: boom\n", model, version);
        return 3;
    }
    if (strncmp(model, "hang", 4) == 0) {
        cl_replica_info info;
        char subject[CL_SUBJECT_MAX];
        cl_bus *bus = hb_connect(nats, prefix, model, version, &info, subject);
        if (bus == NULL)
            return 1;
        char *body = cl_heartbeat_encode(&info, "python-closure");
        for (int i = 0; i < 3; i++) {
            cl_status s = cl_bus_publish(bus, subject, body, strlen(body));
            if (s == CL_OK)
                s = cl_bus_flush(bus, 1000);
            if (s != CL_OK)
                fprintf(stderr, "fake replica: heartbeat %d not sent: %s\n", i,
                        cl_status_text(s));
            cl_sleep_ms(1000);
        }
        free(body);
        printf("fake replica %s:%s going silent\n", model, version);
        fflush(stdout);
        /* Hung: no more heartbeats, but alive (and connected) until killed. */
        for (;;)
            pause();
    }
    if (strncmp(model, "hbpicky", 7) == 0) {
        /* Cannot be loaded on host "hb" (as a runtime missing there). */
        char host[128];
        cl_host_name(host, sizeof(host));
        if (strcmp(host, "hb") == 0) {
            fprintf(stderr, "cannot load model %s:%s on host hb\n", model, version);
            return CL_REPLICA_EXIT_CANNOT_SERVE;
        }
    }
    if (strncmp(model, "hb", 2) == 0)
        return serve_ready(nats, prefix, model, version);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = strncmp(model, "stubborn", 8) == 0 ? SIG_IGN : on_term;
    sigaction(SIGTERM, &sa, NULL);
    while (!stop)
        pause();
    printf("fake replica %s:%s stopping\n", model, version);
    return 0;
}
