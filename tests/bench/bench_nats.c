/* Load generator over the project's bus (cnats underneath).
 *
 * One client measures, against any request/reply subject:
 *   - sequential latency: one request at a time on a connection that writes
 *     each message at once (send_asap), p50/p99/p99.9 over --count requests;
 *   - pipelined throughput: --window requests kept outstanding on a
 *     connection that lets cnats batch writes, for --seconds;
 *   - open-loop load (--rate R): requests sent on a fixed schedule of R a
 *     second whatever the replies do, latency counted from each request's
 *     scheduled time (no coordinated omission), every reply classified as a
 *     prediction, a default or an error, and requests never answered counted
 *     as lost.
 *
 * With --echo it also serves a bare echo responder on the subject, which is
 * the floor: the best request/reply the bus allows. The echo is a process
 * of its own (this program again, --serve-echo), so that the CPU time of
 * the client ("cpu_s") and of the echo ("echo_cpu_s") are counted apart.
 * It writes its replies in one of three ways (--echo-mode), each the best
 * in some regime: "asap" (each reply written at once), "buffered" (cnats'
 * flusher gathers them, about every millisecond) and "loop" (a cl_loop:
 * one read, the callbacks, one write, as the frontend, the router and the
 * replica do).
 * With --http-floor PORT it serves, until killed, a constant JSON reply over
 * HTTP with libmicrohttpd configured as the frontend configures it: the
 * floor for the HTTP load generator.
 * Prints one JSON object per measurement on stdout. */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "cl_loop.h"

/* How the echo writes its replies (see the top of the file). */
typedef enum { ECHO_ASAP, ECHO_BUFFERED, ECHO_LOOP, ECHO_MODES } echo_mode;
static const char *const echo_mode_name[ECHO_MODES] = {"asap", "buffered", "loop"};

static int parse_echo_mode(const char *s)
{
    for (int m = 0; m < ECHO_MODES; m++)
        if (strcmp(s, echo_mode_name[m]) == 0)
            return m;
    return -1;
}

typedef struct {
    const char *url;
    const char *subject;
    const char *body;
    size_t body_len;
    int count;
    int window;
    double seconds;
    int echo;
    /* How the echo writes in each run: --echo gives asap for the
     * sequential run, buffered for the pipelined one and asap for the open
     * loop; --echo-asap, --echo-buffered and --echo-mode change them. */
    echo_mode echo_seq, echo_pipe, echo_open;
    const char *echo_reply; /* the echo answers this instead of the request */
    int warmup;        /* sequential: requests before the measured ones */
    int timeout_ms;    /* sequential: wait this long for each reply */
    const char *label;
    double rate;       /* open-loop requests a second; 0: no open-loop run */
    uint64_t slo_us;   /* open-loop: a prediction later than this is late */
    int grace_ms;      /* open-loop: wait this long for the last replies */
    int http_floor;    /* serve the HTTP floor on this port */
    const char *timeline; /* open-loop: one line per request written here */
    int vary;             /* open-loop: request i's first input number is i */
    int resend_ms;        /* open-loop: send a request again after this long
                             without a reply, doubling (0: never) */
    int burst;            /* open-loop: write each burst of due requests in
                             one write (a flush) instead of each at once */
} bench_opts;

/* A reply that is a default output or an error is counted apart: a fast
 * wrong answer must not pass for a fast right one. */
static int reply_is_bad(const cl_msg *msg)
{
    const char *d = cl_msg_data(msg);
    return strstr(d, "\"default\":true") != NULL || strstr(d, "\"error\"") != NULL;
}

static int connect_bus(cl_bus **bus, const char *url, bool asap);

/* ---- the echo: a process of its own (--serve-echo) -------------------- */

typedef struct {
    echo_mode mode;
    cl_sub *sub;
    cl_loop *loop;
    const char *reply; /* NULL: the request itself */
    size_t reply_len;
} echo_ctx;

static void echo_cb(cl_bus *bus, cl_msg *msg, void *closure)
{
    echo_ctx *e = closure;
    const void *data = e->reply ? (const void *)e->reply : cl_msg_data(msg);
    size_t len = e->reply ? e->reply_len : cl_msg_len(msg);
    const char *to = cl_msg_reply(msg);
    /* Best effort: an echo not sent shows as a request without an answer. */
    if (to != NULL) {
        if (e->mode == ECHO_LOOP) {
            cl_status_ignore(cl_loop_publish(e->loop, to, data, len));
        } else {
            cl_status_ignore(cl_bus_publish(bus, to, data, len));
        }
    }
    cl_msg_free(msg);
}

/* --serve-echo MODE: answers every request on o->subject until SIGTERM;
 * writes "ready" on stdout once nats-server has the subscription. */
static int serve_echo(const bench_opts *o, echo_mode mode)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* cnats' threads inherit it */
    echo_ctx e = {.mode = mode, .reply = o->echo_reply,
                  .reply_len = o->echo_reply ? strlen(o->echo_reply) : 0};
    cl_bus *bus;
    cl_err err;
    if (connect_bus(&bus, o->url, mode == ECHO_ASAP) != 0)
        return 1;
    int rc = 1;
    if (mode == ECHO_LOOP) {
        if (cl_loop_open(&e.loop, bus, &err) != CL_OK) {
            fprintf(stderr, "bench: echo: %s\n", err.msg);
            goto out;
        }
        if (cl_loop_subscribe(e.loop, o->subject, NULL, echo_cb, &e) != CL_OK ||
            cl_loop_sync(e.loop, 5000) != CL_OK) {
            fprintf(stderr, "bench: echo: cannot subscribe to %s\n", o->subject);
            goto out;
        }
    } else if (cl_bus_subscribe(&e.sub, bus, o->subject, NULL, echo_cb, &e) != CL_OK ||
               cl_bus_flush(bus, 5000) != CL_OK) {
        fprintf(stderr, "bench: echo: cannot subscribe to %s\n", o->subject);
        goto out;
    }
    printf("ready\n");
    fflush(stdout);
    if (mode == ECHO_LOOP) {
        struct timespec zero = {0};
        while (sigtimedwait(&set, NULL, &zero) < 0)
            cl_status_ignore(cl_loop_run(e.loop, 50));
    } else {
        int sig;
        sigwait(&set, &sig);
    }
    rc = 0;
out:
    cl_sub_free(e.sub);
    cl_loop_free(e.loop);
    cl_bus_free(bus);
    return rc;
}

typedef struct {
    pid_t pid; /* 0: none */
    int fd;    /* its stdout */
} echo_server;

/* --creds, --tls-ca and --tls-name: the identity, CA and server name every
 * connection uses. */
static const char *g_creds, *g_tls_ca, *g_tls_name;

extern char **environ;

/* Starts this program as an echo in `mode` and waits until it is ready. */
static int echo_start(echo_server *srv, const bench_opts *o, echo_mode mode)
{
    const char *argv[20];
    int n = 0;
    argv[n++] = "clipper-bench";
    argv[n++] = "--serve-echo";
    argv[n++] = echo_mode_name[mode];
    argv[n++] = "--nats";
    argv[n++] = o->url;
    argv[n++] = "--subject";
    argv[n++] = o->subject;
    if (o->echo_reply) {
        argv[n++] = "--echo-reply";
        argv[n++] = o->echo_reply;
    }
    const char *flag[] = {"--creds", "--tls-ca", "--tls-name"};
    const char *val[] = {g_creds, g_tls_ca, g_tls_name};
    for (int i = 0; i < 3; i++)
        if (val[i] != NULL) {
            argv[n++] = flag[i];
            argv[n++] = val[i];
        }
    argv[n] = NULL;
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    int e = posix_spawn(&srv->pid, "/proc/self/exe", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (e != 0) {
        fprintf(stderr, "bench: cannot start the echo: %s\n", strerror(e));
        close(fds[0]);
        srv->pid = 0;
        return -1;
    }
    srv->fd = fds[0];
    char line[16] = {0};
    struct pollfd p = {.fd = srv->fd, .events = POLLIN};
    ssize_t got = poll(&p, 1, 15000) == 1 ? read(srv->fd, line, sizeof(line) - 1) : -1;
    if (got <= 0 || strncmp(line, "ready", 5) != 0) {
        fprintf(stderr, "bench: the echo did not start\n");
        kill(srv->pid, SIGKILL);
        waitpid(srv->pid, NULL, 0);
        close(srv->fd);
        srv->pid = 0;
        return -1;
    }
    return 0;
}

static double tv_s(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

/* Stops the echo; returns the CPU seconds it used (0 when none ran). */
static double echo_stop(echo_server *srv)
{
    if (srv->pid <= 0)
        return 0;
    kill(srv->pid, SIGTERM);
    struct rusage ru;
    int status;
    double cpu = 0;
    if (wait4(srv->pid, &status, 0, &ru) == srv->pid)
        cpu = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
    close(srv->fd);
    srv->pid = 0;
    return cpu;
}

/* CPU seconds this process (the client) has used so far. */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentile p (of 100, or of 1000 for pct1000) of n sorted values. */
static uint64_t pct(const uint64_t *sorted, size_t n, int p)
{
    return n ? sorted[(n - 1) * (size_t)p / 100] : 0;
}

static uint64_t pct1000(const uint64_t *sorted, size_t n, int p)
{
    return n ? sorted[(n - 1) * (size_t)p / 1000] : 0;
}

static int connect_bus(cl_bus **bus, const char *url, bool asap)
{
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.url = url;
    o.nkey_file = g_creds;
    o.tls_ca_file = g_tls_ca;
    o.tls_name = g_tls_name;
    o.name = "clipper-bench";
    o.send_asap = asap;
    cl_err err;
    if (cl_bus_connect(bus, &o, &err) != CL_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int sequential(const bench_opts *o, FILE *out)
{
    cl_bus *bus;
    if (connect_bus(&bus, o->url, true) != 0)
        return -1;
    uint64_t *lat = calloc((size_t)o->count, sizeof(*lat));
    size_t len = o->body_len;
    int ok = 0, bad = 0;
    /* Warm up connections, caches and the interpreter on the other side. */
    for (int i = 0; i < o->warmup; i++) {
        cl_msg *r;
        if (cl_bus_request(bus, o->subject, o->body, len, o->timeout_ms, &r) == CL_OK)
            cl_msg_free(r);
    }
    for (int i = 0; i < o->count; i++) {
        cl_msg *r;
        uint64_t t0 = cl_mono_us();
        if (cl_bus_request(bus, o->subject, o->body, len, o->timeout_ms, &r) != CL_OK)
            continue;
        lat[ok++] = cl_mono_us() - t0;
        bad += reply_is_bad(r);
        cl_msg_free(r);
    }
    qsort(lat, (size_t)ok, sizeof(*lat), cmp_u64);
    if (ok == 0) {
        fprintf(stderr, "bench: no request to %s was answered\n", o->subject);
        free(lat);
        cl_bus_free(bus);
        return -1;
    }
    fprintf(out, "{\"label\":\"%s\",\"kind\":\"sequential\",\"subject\":\"%s\",\"requests\":%d,"
            "\"answered\":%d,\"bad\":%d,\"bytes\":%zu,\"p50_us\":%" PRIu64 ",\"p90_us\":%" PRIu64
            ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64 "}",
            o->label, o->subject, o->count, ok, bad, len, lat[ok / 2], lat[ok * 9 / 10],
            lat[ok * 99 / 100], lat[(size_t)ok * 999 / 1000], lat[ok - 1]);
    free(lat);
    cl_bus_free(bus);
    return 0;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int outstanding;
    uint64_t done;
    uint64_t bad;
    uint64_t *sent_at; /* per slot, monotonic us */
    uint64_t *lat;
    size_t nlat, caplat;
    int window;
} pipe_state;

static void reply_cb(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    pipe_state *st = closure;
    const char *subj = cl_msg_subject(msg);
    const char *dot = strrchr(subj, '.');
    int slot = dot ? atoi(dot + 1) : 0;
    uint64_t now = cl_mono_us();
    int bad = reply_is_bad(msg);
    pthread_mutex_lock(&st->mu);
    st->bad += (uint64_t)bad;
    if (slot >= 0 && slot < st->window && st->nlat < st->caplat)
        st->lat[st->nlat++] = now - st->sent_at[slot];
    st->outstanding--;
    st->done++;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    cl_msg_free(msg);
}

static int pipelined(const bench_opts *o, FILE *out)
{
    cl_bus *bus;
    if (connect_bus(&bus, o->url, false) != 0)
        return -1;
    pipe_state st = {.window = o->window};
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.cv, NULL);
    st.sent_at = calloc((size_t)o->window, sizeof(uint64_t));
    st.caplat = 4000000;
    st.lat = calloc(st.caplat, sizeof(uint64_t));
    char token[23], inbox[160], reply[192];
    cl_bus_new_token(token);
    /* Replies come under the connection's own inbox prefix: an identity
     * may subscribe only there (docs/security.md). */
    snprintf(inbox, sizeof(inbox), "%s.%s.*", cl_bus_inbox_prefix(bus), token);
    cl_sub *sub;
    if (cl_bus_subscribe(&sub, bus, inbox, NULL, reply_cb, &st) != CL_OK) {
        fprintf(stderr, "bench: cannot subscribe\n");
        return -1;
    }
    if (cl_bus_flush(bus, 2000) != CL_OK) {
        fprintf(stderr, "bench: nats-server did not confirm the subscription\n");
        cl_sub_free(sub);
        return -1;
    }
    size_t len = o->body_len;
    uint64_t sent = 0, unsent = 0, start = cl_mono_us();
    uint64_t end = start + (uint64_t)(o->seconds * 1e6);
    int slot = 0;
    pthread_mutex_lock(&st.mu);
    while (cl_mono_us() < end) {
        while (st.outstanding >= o->window) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&st.cv, &st.mu, &ts);
            if (cl_mono_us() >= end)
                break;
        }
        if (cl_mono_us() >= end)
            break;
        st.outstanding++;
        st.sent_at[slot] = cl_mono_us();
        pthread_mutex_unlock(&st.mu);
        snprintf(reply, sizeof(reply), "%s.%s.%d", cl_bus_inbox_prefix(bus), token, slot);
        cl_status ps = cl_bus_publish_request(bus, o->subject, reply, o->body, len);
        pthread_mutex_lock(&st.mu);
        if (ps != CL_OK) {
            st.outstanding--; /* it never left: its slot is free again */
            unsent++;
            continue;
        }
        sent++;
        slot = (slot + 1) % o->window;
    }
    uint64_t done = st.done, bad = st.bad;
    pthread_mutex_unlock(&st.mu);
    double secs = (double)(cl_mono_us() - start) / 1e6;
    if (unsent > 0)
        fprintf(stderr, "bench: %" PRIu64 " requests could not be published\n", unsent);
    /* Let stragglers land before tearing down. */
    cl_sleep_ms(500);
    cl_sub_free(sub);
    pthread_mutex_lock(&st.mu);
    size_t n = st.nlat;
    qsort(st.lat, n, sizeof(uint64_t), cmp_u64);
    pthread_mutex_unlock(&st.mu);
    fprintf(out, "{\"label\":\"%s\",\"kind\":\"pipelined\",\"subject\":\"%s\",\"window\":%d,"
            "\"seconds\":%.2f,\"bytes\":%zu,\"sent\":%" PRIu64 ",\"answered\":%" PRIu64
            ",\"bad\":%" PRIu64 ",\"throughput_rps\":%.0f,\"p50_us\":%" PRIu64 ",\"p90_us\":%" PRIu64
            ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 "}",
            o->label, o->subject, o->window, secs, len, sent, done, bad, (double)done / secs,
            pct(st.lat, n, 50), pct(st.lat, n, 90), pct(st.lat, n, 99), pct1000(st.lat, n, 999));
    free(st.sent_at);
    free(st.lat);
    cl_bus_free(bus);
    return 0;
}

/* ---- open-loop load -------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    uint64_t *sched;   /* scheduled send time of request i, monotonic us */
    uint64_t *sent_at; /* when request i was actually handed to the bus */
    uint64_t *lat;     /* latency of reply i (0: not answered) */
    uint8_t *kind;     /* 0 none, 1 prediction, 2 default, 3 error */
    uint64_t *last_send; /* --resend-ms: when request i was last sent */
    uint8_t *sends;      /* --resend-ms: how often request i was sent */
    uint64_t total;
    uint64_t answered, dup, resent;
    uint64_t oldest; /* --resend-ms: no request before it is unanswered */
} open_state;

/* A prediction only when the reply has an output and is not a default: a
 * "no responders" status (nobody subscribed: the frontend was down) or any
 * other reply is an error. */
static int reply_kind(const cl_msg *msg)
{
    const char *d = cl_msg_data(msg);
    if (strstr(d, "\"default\":true") != NULL)
        return 2;
    if (cl_msg_is_no_responders(msg) || strstr(d, "\"error\"") != NULL ||
        strstr(d, "\"output\"") == NULL)
        return 3;
    return 1;
}

static void open_reply_cb(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    open_state *st = closure;
    uint64_t now = cl_mono_us();
    const char *dot = strrchr(cl_msg_subject(msg), '.');
    uint64_t i = dot ? strtoull(dot + 1, NULL, 10) : UINT64_MAX;
    int k = reply_kind(msg);
    pthread_mutex_lock(&st->mu);
    if (i < st->total && st->kind[i] == 0) {
        st->kind[i] = (uint8_t)k;
        st->lat[i] = now > st->sched[i] ? now - st->sched[i] : 1;
        st->answered++;
    } else {
        st->dup++;
    }
    pthread_mutex_unlock(&st->mu);
    cl_msg_free(msg);
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* What request i sends: the body, with --vary its first number after the
 * first '[' replaced by i (a number written with a point stays a double,
 * "7.5"); and its reply subject, "<inbox prefix>.<token>.<i>". */
typedef struct {
    const bench_opts *o;
    cl_bus *bus;
    const char *token;
    const char *vary_at, *vary_rest;
    bool vary_dot;
} open_sender;

/* A request that could not be published has no reply: it is counted lost
 * after the grace period, as it should be. */
static void open_send(const open_sender *os, uint64_t i)
{
    char reply[192], varied[4096];
    snprintf(reply, sizeof(reply), "%s.%s.%" PRIu64, cl_bus_inbox_prefix(os->bus), os->token, i);
    const char *body = os->o->body;
    size_t len = os->o->body_len;
    if (os->o->vary && os->vary_at != NULL) {
        int n = snprintf(varied, sizeof(varied), "%.*s%" PRIu64 "%s%s",
                         (int)(os->vary_at - body), body, i, os->vary_dot ? ".5" : "",
                         os->vary_rest);
        if (n <= 0 || (size_t)n >= sizeof(varied))
            return;
        body = varied;
        len = (size_t)n;
    }
    cl_status_ignore(cl_bus_publish_request(os->bus, os->o->subject, reply, body, len));
}

/* --resend-ms: sends again each request of [0, sent) with no reply after
 * resend_ms since its last send, the wait doubling with each send, as the
 * product's clients do (cl_bus_request_resend). */
static void open_resend(const open_sender *os, open_state *st, uint64_t sent)
{
    enum { MAX_AT_ONCE = 512 };
    uint64_t again[MAX_AT_ONCE];
    size_t n = 0;
    uint64_t now = cl_mono_us();
    pthread_mutex_lock(&st->mu);
    while (st->oldest < sent && st->kind[st->oldest] != 0)
        st->oldest++;
    for (uint64_t i = st->oldest; i < sent && n < MAX_AT_ONCE; i++) {
        if (st->kind[i] != 0)
            continue;
        unsigned shift = st->sends[i] > 10 ? 10u : (unsigned)st->sends[i] - 1u;
        uint64_t wait = ((uint64_t)os->o->resend_ms * 1000u) << shift;
        if (now - st->last_send[i] < wait)
            continue;
        st->last_send[i] = now;
        if (st->sends[i] < UINT8_MAX)
            st->sends[i]++;
        st->resent++;
        again[n++] = i;
    }
    pthread_mutex_unlock(&st->mu);
    for (size_t k = 0; k < n; k++)
        open_send(os, again[k]);
}

static int open_loop(const bench_opts *o, FILE *out)
{
    /* Each request is written when it is due (send_asap): a buffered
     * connection would hold it for cnats' flusher, about a millisecond.
     * With --burst the connection is buffered and each burst of requests
     * due together is flushed at once: one write (and a PING) per burst,
     * so that at high rates the client's own writes do not hold it back
     * (the flush waits for the PONG, and what fell due meanwhile makes the
     * next burst). */
    cl_bus *bus;
    if (connect_bus(&bus, o->url, !o->burst) != 0)
        return -1;
    open_state st = {.total = (uint64_t)(o->rate * o->seconds)};
    if (st.total == 0) {
        fprintf(stderr, "bench: --rate %g for %g s sends nothing\n", o->rate, o->seconds);
        cl_bus_free(bus);
        return -1;
    }
    pthread_mutex_init(&st.mu, NULL);
    st.sched = calloc(st.total, sizeof(uint64_t));
    st.lat = calloc(st.total, sizeof(uint64_t));
    st.kind = calloc(st.total, 1);
    st.sent_at = calloc(st.total, sizeof(uint64_t));
    st.last_send = calloc(st.total, sizeof(uint64_t));
    st.sends = calloc(st.total, 1);
    char token[23], inbox[160];
    cl_bus_new_token(token);
    /* Replies come under the connection's own inbox prefix: an identity
     * may subscribe only there (docs/security.md). */
    snprintf(inbox, sizeof(inbox), "%s.%s.*", cl_bus_inbox_prefix(bus), token);
    cl_sub *sub;
    if (st.sched == NULL || st.lat == NULL || st.kind == NULL || st.sent_at == NULL ||
        st.last_send == NULL || st.sends == NULL ||
        cl_bus_subscribe(&sub, bus, inbox, NULL, open_reply_cb, &st) != CL_OK) {
        fprintf(stderr, "bench: cannot set up the open-loop run\n");
        return -1;
    }
    if (cl_bus_flush(bus, 2000) != CL_OK) {
        fprintf(stderr, "bench: nats-server did not confirm the subscription\n");
        cl_sub_free(sub);
        return -1;
    }
    open_sender os = {.o = o, .bus = bus, .token = token};
    /* --vary: the first number after the first '[' becomes the request's index. */
    os.vary_at = strchr(o->body, '[');
    if (os.vary_at != NULL) {
        os.vary_at++;
        os.vary_rest = os.vary_at + strcspn(os.vary_at, ",]");
        os.vary_dot = memchr(os.vary_at, '.', (size_t)(os.vary_rest - os.vary_at)) != NULL;
    }
    uint64_t start = cl_mono_us() + 1000, sent = 0, max_behind = 0, resend_check = 0;
    double gap = 1e6 / o->rate;
    while (sent < st.total) {
        uint64_t now = cl_mono_us();
        if (o->resend_ms > 0 && now >= resend_check) {
            open_resend(&os, &st, sent);
            resend_check = now + 10000; /* every 10 ms */
        }
        uint64_t due = now < start ? 0 : (uint64_t)((double)(now - start) / gap) + 1;
        if (due > st.total)
            due = st.total;
        if (sent >= due) {
            uint64_t next = start + (uint64_t)((double)sent * gap);
            sleep_us(next > now ? next - now : 0);
            continue;
        }
        for (; sent < due; sent++) {
            uint64_t at = start + (uint64_t)((double)sent * gap);
            if (now - at > max_behind && now > at)
                max_behind = now - at;
            pthread_mutex_lock(&st.mu);
            st.sched[sent] = at;
            st.sent_at[sent] = st.last_send[sent] = cl_mono_us();
            st.sends[sent] = 1;
            pthread_mutex_unlock(&st.mu);
            open_send(&os, sent);
        }
        if (o->burst)
            cl_status_ignore(cl_bus_flush(bus, 1000));
    }
    double send_secs = (double)(cl_mono_us() - start) / 1e6;
    /* What this does not get out is never answered and counted lost below. */
    cl_status_ignore(cl_bus_flush(bus, 5000));
    /* Every request is answered by its deadline (a prediction or a
     * default), so what has no reply after the grace period is lost. */
    uint64_t wait_until = cl_mono_us() + (uint64_t)o->grace_ms * 1000;
    for (;;) {
        pthread_mutex_lock(&st.mu);
        uint64_t a = st.answered;
        pthread_mutex_unlock(&st.mu);
        if (a >= st.total || cl_mono_us() >= wait_until)
            break;
        if (o->resend_ms > 0) {
            open_resend(&os, &st, st.total);
            cl_status_ignore(cl_bus_flush(bus, 1000));
        }
        cl_sleep_ms(10);
    }
    cl_sub_free(sub);
    pthread_mutex_lock(&st.mu);
    uint64_t counts[4] = {0}, in_slo = 0, in_slo_sent = 0;
    uint64_t *all = malloc(st.total * sizeof(uint64_t)), *good = malloc(st.total * sizeof(uint64_t));
    size_t nall = 0, ngood = 0;
    for (uint64_t i = 0; i < st.total; i++) {
        counts[st.kind[i]]++;
        if (st.kind[i] == 0)
            continue;
        all[nall++] = st.lat[i];
        if (st.kind[i] == 1) {
            good[ngood++] = st.lat[i];
            in_slo += st.lat[i] <= o->slo_us;
            /* The same, counted from when the request really left: the
             * difference is this client's own lag in sending. */
            uint64_t lag = st.sent_at[i] > st.sched[i] ? st.sent_at[i] - st.sched[i] : 0;
            in_slo_sent += st.lat[i] - (lag < st.lat[i] ? lag : 0) <= o->slo_us;
        }
    }
    uint64_t dup = st.dup, resent = st.resent;
    pthread_mutex_unlock(&st.mu);
    if (o->timeline != NULL) {
        /* "<scheduled send, Unix µs> <kind: 0 never answered, 1 prediction,
         * 2 default, 3 error> <latency µs>" per request, for the fault suite. */
        FILE *tf = fopen(o->timeline, "w");
        int64_t to_wall = (int64_t)cl_wall_us() - (int64_t)cl_mono_us();
        for (uint64_t i = 0; tf != NULL && i < st.total; i++)
            fprintf(tf, "%" PRId64 " %u %" PRIu64 "\n", (int64_t)st.sched[i] + to_wall,
                    (unsigned)st.kind[i], st.lat[i]);
        if (tf == NULL || fclose(tf) != 0)
            fprintf(stderr, "bench: cannot write the timeline %s\n", o->timeline);
    }
    qsort(all, nall, sizeof(uint64_t), cmp_u64);
    qsort(good, ngood, sizeof(uint64_t), cmp_u64);
    fprintf(out, "{\"label\":\"%s\",\"kind\":\"open\",\"subject\":\"%s\",\"rate\":%.0f,\"seconds\":%.2f,"
           "\"sent\":%" PRIu64 ",\"send_rate\":%.0f,\"max_send_lag_us\":%" PRIu64
           ",\"answered\":%" PRIu64 ",\"predictions\":%" PRIu64 ",\"defaults\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64
           ",\"resent\":%" PRIu64
           ",\"slo_us\":%" PRIu64 ",\"predictions_in_slo\":%" PRIu64
           ",\"predictions_in_slo_from_send\":%" PRIu64 ",\"goodput_rps\":%.0f"
           ",\"p50_us\":%" PRIu64 ",\"p90_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64
           ",\"max_us\":%" PRIu64 ",\"pred_p50_us\":%" PRIu64 ",\"pred_p99_us\":%" PRIu64
           ",\"pred_p999_us\":%" PRIu64 ",\"pred_max_us\":%" PRIu64 ",\"bytes\":%zu}",
           o->label, o->subject, o->rate, send_secs, st.total, (double)st.total / send_secs,
           max_behind, nall, counts[1], counts[2], counts[3], counts[0], dup, resent, o->slo_us, in_slo,
           in_slo_sent,
           (double)in_slo / send_secs, pct(all, nall, 50), pct(all, nall, 90), pct(all, nall, 99),
           pct1000(all, nall, 999), nall ? all[nall - 1] : 0, pct(good, ngood, 50),
           pct(good, ngood, 99), pct1000(good, ngood, 999), ngood ? good[ngood - 1] : 0,
           o->body_len);
    free(all);
    free(good);
    free(st.sched);
    free(st.sent_at);
    free(st.lat);
    free(st.kind);
    free(st.last_send);
    free(st.sends);
    cl_bus_free(bus);
    return 0;
}

/* ---- HTTP floor ------------------------------------------------------ */

static const char floor_body[] = "{\"query_id\":0,\"output\":1.0,\"default\":false}";

static enum MHD_Result floor_request(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size != 0) { /* consume the body, answer on the last call */
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof(floor_body) - 1, (void *)floor_body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static int http_floor(int port)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
        floor_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bench: cannot serve HTTP on port %d\n", port);
        return 1;
    }
    printf("{\"kind\":\"http-floor\",\"port\":%d}\n", port);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: clipper-bench --nats URL --subject S [--body JSON|--body-file F] [--count N]\n"
            "                     [--window W] [--seconds S] [--echo|--echo-asap] [--label L]\n"
            "                     [--creds FILE --tls-ca FILE [--tls-name NAME]]\n"
            "  --creds F   connect as the identity in F, --tls-ca over TLS (docs/security.md)\n"
            "  --tls-name NAME  the name nats-server's certificate must carry (default: the\n"
            "              URL's host; needed when --nats lists servers on several hosts)\n"
            "  --body-file F  send the contents of F (for bodies too large for argv)\n"
            "  --echo      also serve an echo responder on S (the bus floor), a process of\n"
            "              its own; it sends at once for the latency run and buffered for\n"
            "              throughput\n"
            "  --echo-asap the throughput echo sends each reply at once too\n"
            "  --echo-buffered  the open-loop echo lets cnats batch its writes (it\n"
            "              writes each at once otherwise)\n"
            "  --echo-mode M  the echo writes as M in every run: asap, buffered or loop\n"
            "              (cl_loop)\n"
            "  --echo-reply TEXT  the echo answers TEXT instead of the request\n"
            "  --serve-echo M  only serve the echo (as --echo-mode M) until SIGTERM\n"
            "  --count N   sequential requests for the latency figure (default 5000; 0 skips)\n"
            "  --warmup N  sequential requests before the measured ones (default 50)\n"
            "  --timeout-ms MS  sequential: how long to wait for each reply (default 5000)\n"
            "  --window W  outstanding requests for throughput (default 256; 0 skips)\n"
            "  --rate R    open loop: R requests a second for --seconds (instead of\n"
            "              --count/--window), with --slo-us US and --grace-ms MS\n"
            "  --http-floor PORT  serve a constant JSON reply over HTTP until killed\n"
            "  --timeline FILE  open loop: write each request's scheduled time (Unix us),\n"
            "              outcome (0 none, 1 prediction, 2 default, 3 error) and latency\n"
            "  --burst     open loop: write the requests due together in one write\n"
            "              (a flush per burst) instead of each at once\n"
            "  --vary      open loop: request i's body has its first number replaced by i\n"
            "              (so a prediction cache cannot answer it)\n"
            "  --resend-ms MS  open loop: send a request again after MS without a reply,\n"
            "              the wait doubling each time; --resend: the product's clients'\n"
            "              wait (CL_BUS_RESEND_SILENT_MS, cl_bus_request_resend)\n"
            "Each measurement is a JSON line; cpu_s is this client's CPU time in it,\n"
            "echo_cpu_s the echo's (the whole life of its process).\n");
}

/* The whole of file path, NUL-terminated; *len its size. NULL on error. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

typedef int (*measure_fn)(const bench_opts *o, FILE *out);

/* Runs one measurement with an echo in `mode` when o->echo, and prints its
 * JSON line with the CPU seconds of this client and of the echo added. */
static int measure(const bench_opts *o, measure_fn fn, echo_mode mode)
{
    echo_server srv = {0};
    if (o->echo && echo_start(&srv, o, mode) != 0)
        return -1;
    char *row = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&row, &n);
    if (out == NULL) {
        echo_stop(&srv);
        return -1;
    }
    double cpu0 = self_cpu_s();
    int rc = fn(o, out);
    double cpu = self_cpu_s() - cpu0;
    fclose(out);
    double echo_cpu = echo_stop(&srv);
    char *end = rc == 0 && row != NULL ? strrchr(row, '}') : NULL;
    if (end != NULL) {
        *end = '\0';
        printf("%s,\"cpu_s\":%.3f", row, cpu);
        if (o->echo)
            printf(",\"echo_mode\":\"%s\",\"echo_cpu_s\":%.3f", echo_mode_name[mode], echo_cpu);
        printf("}\n");
        fflush(stdout);
    }
    free(row);
    return end != NULL ? 0 : -1;
}

int main(int argc, char **argv)
{
    bench_opts o = {.url = CL_DEFAULT_NATS_URL, .subject = NULL, .body = "{\"input\":[1.0]}",
                    .count = 5000, .window = 256, .seconds = 5, .label = "run",
                    .slo_us = 100000, .grace_ms = 5000, .warmup = 50, .timeout_ms = 5000,
                    .echo_seq = ECHO_ASAP, .echo_pipe = ECHO_BUFFERED, .echo_open = ECHO_ASAP};
    const char *body_file = NULL;
    int serve = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--echo") == 0) {
            o.echo = 1;
            continue;
        }
        if (strcmp(a, "--echo-buffered") == 0) {
            o.echo = 1;
            o.echo_open = ECHO_BUFFERED;
            continue;
        }
        if (strcmp(a, "--vary") == 0) {
            o.vary = 1;
            continue;
        }
        if (strcmp(a, "--burst") == 0) {
            o.burst = 1;
            continue;
        }
        if (strcmp(a, "--resend") == 0) {
            o.resend_ms = CL_BUS_RESEND_SILENT_MS;
            continue;
        }
        if (strcmp(a, "--echo-asap") == 0) {
            o.echo = 1;
            o.echo_pipe = ECHO_ASAP;
            continue;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        if (strcmp(a, "--nats") == 0)
            o.url = v;
        else if (strcmp(a, "--creds") == 0)
            g_creds = v;
        else if (strcmp(a, "--tls-ca") == 0)
            g_tls_ca = v;
        else if (strcmp(a, "--tls-name") == 0)
            g_tls_name = v;
        else if (strcmp(a, "--subject") == 0)
            o.subject = v;
        else if (strcmp(a, "--body") == 0)
            o.body = v;
        else if (strcmp(a, "--body-file") == 0)
            body_file = v;
        else if (strcmp(a, "--count") == 0)
            o.count = atoi(v);
        else if (strcmp(a, "--warmup") == 0)
            o.warmup = atoi(v);
        else if (strcmp(a, "--timeout-ms") == 0)
            o.timeout_ms = atoi(v);
        else if (strcmp(a, "--window") == 0)
            o.window = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            o.seconds = atof(v);
        else if (strcmp(a, "--label") == 0)
            o.label = v;
        else if (strcmp(a, "--rate") == 0)
            o.rate = atof(v);
        else if (strcmp(a, "--slo-us") == 0)
            o.slo_us = strtoull(v, NULL, 10);
        else if (strcmp(a, "--grace-ms") == 0)
            o.grace_ms = atoi(v);
        else if (strcmp(a, "--http-floor") == 0)
            o.http_floor = atoi(v);
        else if (strcmp(a, "--timeline") == 0)
            o.timeline = v;
        else if (strcmp(a, "--resend-ms") == 0)
            o.resend_ms = atoi(v);
        else if (strcmp(a, "--echo-reply") == 0)
            o.echo_reply = v;
        else if (strcmp(a, "--echo-mode") == 0 || strcmp(a, "--serve-echo") == 0) {
            int m = parse_echo_mode(v);
            if (m < 0) {
                usage();
                return 2;
            }
            if (a[2] == 's') {
                serve = m;
            } else {
                o.echo = 1;
                o.echo_seq = o.echo_pipe = o.echo_open = (echo_mode)m;
            }
        } else {
            usage();
            return 2;
        }
        i++;
    }
    cl_log_set_name("bench");
    if (o.http_floor > 0)
        return http_floor(o.http_floor);
    if (o.subject == NULL) {
        usage();
        return 2;
    }
    if (serve >= 0)
        return serve_echo(&o, (echo_mode)serve);
    char *file_body = NULL;
    if (body_file != NULL) {
        file_body = read_file(body_file, &o.body_len);
        if (file_body == NULL) {
            fprintf(stderr, "bench: cannot read %s\n", body_file);
            return 1;
        }
        o.body = file_body;
    } else {
        o.body_len = strlen(o.body);
    }
    int rc = 0;
    if (o.rate > 0) {
        rc = measure(&o, open_loop, o.echo_open) == 0 ? 0 : 1;
    } else {
        /* The floor is the best the bus allows in each regime: by default,
         * for latency an echo responder that writes each reply at once,
         * for throughput one that lets cnats batch its writes. */
        if (o.count > 0 && measure(&o, sequential, o.echo_seq) != 0)
            rc = 1;
        if (o.window > 0 && measure(&o, pipelined, o.echo_pipe) != 0)
            rc = 1;
    }
    free(file_body);
    return rc;
}
