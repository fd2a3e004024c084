/* A supervisor of processes (see cl_supervisor.h). */
#include "cl_supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl_clock.h"
#include "cl_host.h"
#include "cl_proc.h"

#define WINDOW 64 /* restart times kept for the intensity (max_restarts <= WINDOW) */

typedef struct {
    char *name;
    char **argv;
    int out_fd;
    bool new_pgroup;
    pid_t pid;
    cl_sv_state state;
    unsigned restarts;      /* by the supervisor, over its lifetime */
    unsigned quick_ends;    /* ends in a row after a run shorter than healthy_s */
    uint64_t started_mono_us;
    uint64_t started_wall_us;
    uint64_t next_start_mono_us;
    bool has_exit;
    int last_exit_code;     /* as cl_proc_reaped gives it */
    uint64_t last_exit_wall_us;
    uint64_t window[WINDOW]; /* monotonic times of the last restarts, a ring */
    unsigned window_n;
    unsigned window_head;
    uint64_t stopped_since_us; /* monotonic; 0 while not stopped */
} sv_child;

struct cl_sv {
    cl_sv_opts o;
    char host[256];
    uint64_t started_wall_us;
    pthread_mutex_t lock; /* children's figures, for readers on other threads */
    sv_child *kids;
    size_t n, cap;
};

void cl_sv_opts_init(cl_sv_opts *o)
{
    o->max_restarts = 10;
    o->period_s = 60;
    o->backoff_first_ms = 100;
    o->backoff_max_ms = 5000;
    o->healthy_s = 10;
    o->stopped_kill_ms = 2000;
}

const char *cl_sv_state_name(cl_sv_state s)
{
    switch (s) {
    case CL_SV_IDLE: return "idle";
    case CL_SV_RUNNING: return "running";
    case CL_SV_BACKOFF: return "backoff";
    case CL_SV_GAVE_UP: return "gave_up";
    case CL_SV_STOPPED: return "stopped";
    }
    return "unknown";
}

cl_status cl_sv_new(cl_sv **out, const cl_sv_opts *o, const char *host, cl_err *err)
{
    cl_sv_opts d;
    cl_sv_opts_init(&d);
    if (o == NULL)
        o = &d;
    if (o->max_restarts == 0 || o->max_restarts > WINDOW || o->period_s == 0)
        return cl_err_set(err, CL_ERR_INVALID,
                          "the restart intensity must be 1 to %d restarts within 1 s or more, "
                          "got %u within %u s",
                          WINDOW, o->max_restarts, o->period_s);
    cl_sv *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    sv->o = *o;
    if (sv->o.backoff_max_ms < sv->o.backoff_first_ms)
        sv->o.backoff_max_ms = sv->o.backoff_first_ms;
    if (host != NULL && host[0] != '\0')
        snprintf(sv->host, sizeof(sv->host), "%s", host);
    else
        cl_host_name(sv->host, sizeof(sv->host));
    sv->started_wall_us = cl_wall_us();
    pthread_mutex_init(&sv->lock, NULL);
    *out = sv;
    return CL_OK;
}

static void free_child(sv_child *c)
{
    free(c->name);
    for (size_t i = 0; c->argv != NULL && c->argv[i] != NULL; i++)
        free(c->argv[i]);
    free(c->argv);
    if (c->out_fd >= 0)
        close(c->out_fd);
}

void cl_sv_free(cl_sv *sv)
{
    if (sv == NULL)
        return;
    for (size_t i = 0; i < sv->n; i++)
        free_child(&sv->kids[i]);
    free(sv->kids);
    pthread_mutex_destroy(&sv->lock);
    free(sv);
}

cl_status cl_sv_add(cl_sv *sv, const cl_sv_child_spec *spec, size_t *index, cl_err *err)
{
    if (spec->name == NULL || spec->argv == NULL || spec->argv[0] == NULL)
        return cl_err_set(err, CL_ERR_INVALID, "a supervised child needs a name and a program");
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 8;
        sv_child *p = realloc(sv->kids, cap * sizeof(*p));
        if (p == NULL)
            return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        sv->kids = p;
        sv->cap = cap;
    }
    sv_child c;
    memset(&c, 0, sizeof(c));
    c.out_fd = -1;
    size_t argc = 0;
    while (spec->argv[argc] != NULL)
        argc++;
    c.name = strdup(spec->name);
    c.argv = calloc(argc + 1, sizeof(char *));
    bool ok = c.name != NULL && c.argv != NULL;
    for (size_t i = 0; ok && i < argc; i++)
        ok = (c.argv[i] = strdup(spec->argv[i])) != NULL;
    if (ok && spec->out_fd >= 0) {
        c.out_fd = fcntl(spec->out_fd, F_DUPFD_CLOEXEC, 3);
        if (c.out_fd < 0) {
            free_child(&c);
            return cl_err_set(err, CL_ERR_IO, "cannot keep the output of %s: %s", spec->name,
                              strerror(errno));
        }
    }
    if (!ok) {
        free_child(&c);
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    c.new_pgroup = spec->new_pgroup;
    c.state = CL_SV_IDLE;
    pthread_mutex_lock(&sv->lock);
    sv->kids[sv->n] = c;
    if (index != NULL)
        *index = sv->n;
    sv->n++;
    pthread_mutex_unlock(&sv->lock);
    return CL_OK;
}

/* With the lock held. */
static CL_MUST_USE cl_status start_locked(cl_sv *sv, sv_child *c, cl_err *err)
{
    cl_proc_opts po = {.stdout_fd = c->out_fd,
                       .stderr_fd = c->out_fd,
                       .new_pgroup = c->new_pgroup};
    pid_t pid = 0;
    cl_status s = cl_proc_spawn(&pid, c->argv, &po, err);
    if (s != CL_OK)
        return s;
    (void)sv;
    c->pid = pid;
    c->state = CL_SV_RUNNING;
    c->started_mono_us = cl_mono_us();
    c->started_wall_us = cl_wall_us();
    return CL_OK;
}

cl_status cl_sv_start(cl_sv *sv, size_t i, cl_err *err)
{
    if (i >= sv->n)
        return cl_err_set(err, CL_ERR_INVALID, "no supervised child %zu", i);
    pthread_mutex_lock(&sv->lock);
    cl_status s = sv->kids[i].pid > 0
                      ? cl_err_set(err, CL_ERR_INVALID, "%s already runs", sv->kids[i].name)
                      : start_locked(sv, &sv->kids[i], err);
    pthread_mutex_unlock(&sv->lock);
    return s;
}

/* The restarts of c within the last period, counting one now. */
static unsigned restarts_in_period(const cl_sv *sv, const sv_child *c, uint64_t now)
{
    uint64_t since = now > (uint64_t)sv->o.period_s * 1000000u
                         ? now - (uint64_t)sv->o.period_s * 1000000u
                         : 0;
    unsigned n = 0;
    for (unsigned k = 0; k < c->window_n; k++) {
        if (c->window[(c->window_head + WINDOW - 1 - k) % WINDOW] >= since)
            n++;
    }
    return n;
}

static void note_restart(sv_child *c, uint64_t now)
{
    c->window[c->window_head] = now;
    c->window_head = (c->window_head + 1) % WINDOW;
    if (c->window_n < WINDOW)
        c->window_n++;
}

/* c ended (with the lock held): decide when it restarts, or give up. */
static bool schedule_locked(cl_sv *sv, sv_child *c, int code, uint64_t now)
{
    pid_t was = c->pid;
    char how[128];
    cl_proc_describe(code, how, sizeof(how));
    uint64_t ran = now - c->started_mono_us;
    c->pid = 0;
    c->has_exit = true;
    c->last_exit_code = code;
    c->last_exit_wall_us = cl_wall_us();
    if (restarts_in_period(sv, c, now) >= sv->o.max_restarts) {
        c->state = CL_SV_GAVE_UP;
        fprintf(stderr,
                "clipper supervisor: %s (pid %d, ran %.1f s) %s; it was restarted %u times "
                "within %u s, the most allowed: giving up on it\n",
                c->name, (int)was, (double)ran / 1e6, how, sv->o.max_restarts, sv->o.period_s);
        return true;
    }
    uint64_t delay_ms = 0;
    if (ran >= (uint64_t)sv->o.healthy_s * 1000000u) {
        c->quick_ends = 0;
    } else {
        /* The first quick end after a healthy run restarts at once too;
         * then backoff_first_ms, doubled for each further one. */
        if (c->quick_ends > 0) {
            delay_ms = sv->o.backoff_first_ms;
            for (unsigned k = 1; k < c->quick_ends && delay_ms < sv->o.backoff_max_ms; k++)
                delay_ms *= 2;
            if (delay_ms > sv->o.backoff_max_ms)
                delay_ms = sv->o.backoff_max_ms;
        }
        c->quick_ends++;
    }
    c->state = CL_SV_BACKOFF;
    c->next_start_mono_us = now + delay_ms * 1000u;
    if (delay_ms == 0)
        fprintf(stderr, "clipper supervisor: %s (pid %d, ran %.1f s) %s; restarting it\n",
                c->name, (int)was, (double)ran / 1e6, how);
    else
        fprintf(stderr, "clipper supervisor: %s (pid %d, ran %.1f s) %s; restarting it in %.1f s\n",
                c->name, (int)was, (double)ran / 1e6, how, (double)delay_ms / 1e3);
    return false;
}

/* True when pid is stopped by a signal: state 'T' in /proc/<pid>/stat
 * (the field after the command name, which may hold spaces and parens). */
static bool stopped_by_signal(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] == 'T';
}

/* With the lock held: kills c when it has been stopped for too long. */
static void check_stopped(cl_sv *sv, sv_child *c, uint64_t now)
{
    if (sv->o.stopped_kill_ms == 0 || c->pid <= 0 || !stopped_by_signal(c->pid)) {
        c->stopped_since_us = 0;
        return;
    }
    if (c->stopped_since_us == 0) {
        c->stopped_since_us = now;
        return;
    }
    if (now - c->stopped_since_us < (uint64_t)sv->o.stopped_kill_ms * 1000u)
        return;
    fprintf(stderr,
            "clipper supervisor: %s (pid %d) has been stopped by a signal for %.1f s: killing "
            "it, to restart it\n",
            c->name, (int)c->pid, (double)(now - c->stopped_since_us) / 1e6);
    if (!c->new_pgroup || kill(-c->pid, SIGKILL) != 0)
        kill(c->pid, SIGKILL);
    c->stopped_since_us = 0;
}

long cl_sv_tick(cl_sv *sv, int *next_ms)
{
    long gave_up = -1;
    uint64_t now = cl_mono_us();
    uint64_t next = now + 1000000u;
    pthread_mutex_lock(&sv->lock);
    for (size_t i = 0; i < sv->n; i++) {
        sv_child *c = &sv->kids[i];
        int code;
        if (c->state == CL_SV_RUNNING && c->pid > 0)
            check_stopped(sv, c, now);
        if (c->state == CL_SV_RUNNING && c->pid > 0 && cl_proc_reaped(c->pid, &code)) {
            if (c->new_pgroup)
                kill(-c->pid, SIGKILL); /* whatever it left in its group */
            if (schedule_locked(sv, c, code, now) && gave_up < 0)
                gave_up = (long)i;
        }
        if (c->state == CL_SV_BACKOFF) {
            if (c->next_start_mono_us <= now) {
                cl_err err;
                note_restart(c, now);
                c->restarts++;
                if (start_locked(sv, c, &err) != CL_OK) {
                    fprintf(stderr, "clipper supervisor: cannot restart %s: %s\n", c->name,
                            err.msg);
                    c->started_mono_us = now;
                    if (schedule_locked(sv, c, 127, now) && gave_up < 0)
                        gave_up = (long)i;
                } else {
                    fprintf(stderr, "clipper supervisor: %s restarted (pid %d, restart %u)\n",
                            c->name, (int)c->pid, c->restarts);
                }
            }
            if (c->state == CL_SV_BACKOFF && c->next_start_mono_us < next)
                next = c->next_start_mono_us;
        }
    }
    pthread_mutex_unlock(&sv->lock);
    now = cl_mono_us();
    *next_ms = next > now ? (int)((next - now + 999) / 1000) : 0;
    return gave_up;
}

static void signal_child(const sv_child *c, int sig)
{
    if (c->pid <= 0)
        return;
    if (!c->new_pgroup || kill(-c->pid, sig) != 0)
        kill(c->pid, sig);
}

void cl_sv_stop(cl_sv *sv, const size_t *which, size_t n, int grace_ms)
{
    pthread_mutex_lock(&sv->lock);
    bool any = false;
    for (size_t k = 0; k < n; k++) {
        if (which[k] >= sv->n)
            continue;
        sv_child *c = &sv->kids[which[k]];
        if (c->state != CL_SV_RUNNING)
            c->state = CL_SV_STOPPED; /* a pending restart is off */
        if (c->pid > 0) {
            signal_child(c, SIGTERM);
            any = true;
        }
    }
    pthread_mutex_unlock(&sv->lock);
    if (!any)
        return;
    uint64_t until = cl_mono_us() + (uint64_t)grace_ms * 1000u;
    for (;;) {
        bool alive = false;
        pthread_mutex_lock(&sv->lock);
        for (size_t k = 0; k < n; k++) {
            if (which[k] >= sv->n)
                continue;
            sv_child *c = &sv->kids[which[k]];
            int code;
            if (c->pid > 0 && cl_proc_reaped(c->pid, &code)) {
                c->pid = 0;
                c->has_exit = true;
                c->last_exit_code = code;
                c->last_exit_wall_us = cl_wall_us();
                c->state = CL_SV_STOPPED;
            }
            alive = alive || c->pid > 0;
        }
        pthread_mutex_unlock(&sv->lock);
        if (!alive)
            return;
        if (cl_mono_us() >= until)
            break;
        cl_sleep_ms(20);
    }
    pthread_mutex_lock(&sv->lock);
    for (size_t k = 0; k < n; k++) {
        if (which[k] >= sv->n)
            continue;
        sv_child *c = &sv->kids[which[k]];
        if (c->pid <= 0)
            continue;
        fprintf(stderr, "clipper supervisor: %s (pid %d) did not stop within %d ms; killing it\n",
                c->name, (int)c->pid, grace_ms);
        signal_child(c, SIGKILL);
        int code;
        if (cl_proc_wait(c->pid, -1, &code)) {
            c->has_exit = true;
            c->last_exit_code = code;
            c->last_exit_wall_us = cl_wall_us();
        }
        c->pid = 0;
        c->state = CL_SV_STOPPED;
    }
    pthread_mutex_unlock(&sv->lock);
}

pid_t cl_sv_pid(cl_sv *sv, size_t i)
{
    pthread_mutex_lock(&sv->lock);
    pid_t p = i < sv->n ? sv->kids[i].pid : 0;
    pthread_mutex_unlock(&sv->lock);
    return p;
}

cl_sv_state cl_sv_child_state(cl_sv *sv, size_t i)
{
    pthread_mutex_lock(&sv->lock);
    cl_sv_state s = i < sv->n ? sv->kids[i].state : CL_SV_IDLE;
    pthread_mutex_unlock(&sv->lock);
    return s;
}

unsigned cl_sv_restarts(cl_sv *sv, size_t i)
{
    pthread_mutex_lock(&sv->lock);
    unsigned r = i < sv->n ? sv->kids[i].restarts : 0;
    pthread_mutex_unlock(&sv->lock);
    return r;
}

/* Names never change after cl_sv_add; n only grows from the owner's thread. */
const char *cl_sv_name(const cl_sv *sv, size_t i)
{
    return i < sv->n ? sv->kids[i].name : NULL;
}

size_t cl_sv_count(const cl_sv *sv)
{
    return sv->n;
}

static void iso_time(uint64_t wall_us, char *buf, size_t size)
{
    time_t t = (time_t)(wall_us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03uZ", base, (unsigned)(wall_us % 1000000u / 1000u));
}

cJSON *cl_sv_status_json(cl_sv *sv)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *kids = cJSON_AddArrayToObject(j, "children");
    char when[48];
    cJSON_AddStringToObject(j, "host", sv->host);
    cJSON_AddNumberToObject(j, "pid", (double)getpid());
    iso_time(sv->started_wall_us, when, sizeof(when));
    cJSON_AddStringToObject(j, "started_at", when);
    uint64_t now = cl_mono_us();
    pthread_mutex_lock(&sv->lock);
    for (size_t i = 0; kids != NULL && i < sv->n; i++) {
        const sv_child *c = &sv->kids[i];
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "name", c->name);
        cJSON_AddStringToObject(k, "state", cl_sv_state_name(c->state));
        cJSON_AddNumberToObject(k, "pid", (double)c->pid);
        cJSON_AddNumberToObject(k, "restarts", c->restarts);
        if (c->started_wall_us != 0) {
            iso_time(c->started_wall_us, when, sizeof(when));
            cJSON_AddStringToObject(k, "started_at", when);
        }
        if (c->has_exit) {
            char how[128];
            cl_proc_describe(c->last_exit_code, how, sizeof(how));
            cJSON_AddStringToObject(k, "last_exit", how);
            cJSON_AddNumberToObject(k, "last_exit_code", c->last_exit_code);
            iso_time(c->last_exit_wall_us, when, sizeof(when));
            cJSON_AddStringToObject(k, "last_exit_at", when);
        }
        if (c->state == CL_SV_BACKOFF)
            cJSON_AddNumberToObject(k, "next_start_in_ms",
                                    c->next_start_mono_us > now
                                        ? (double)((c->next_start_mono_us - now) / 1000u)
                                        : 0);
        cJSON_AddItemToArray(kids, k);
    }
    pthread_mutex_unlock(&sv->lock);
    return j;
}

/* A label value: backslash, double quote and newline escaped. */
static CL_MUST_USE cl_status label(cl_buf *out, const char *s)
{
    cl_status st = CL_OK;
    for (; st == CL_OK && *s; s++) {
        if (*s == '\\' || *s == '"')
            st = cl_buf_printf(out, "\\%c", *s);
        else if (*s == '\n')
            st = cl_buf_append_str(out, "\\n");
        else
            st = cl_buf_append(out, s, 1);
    }
    return st;
}

static CL_MUST_USE cl_status sample(cl_buf *out, const char *metric, const cl_sv *sv,
                                    const char *child, const char *extra, double v)
{
    cl_status s = cl_buf_printf(out, "%s{host=\"", metric);
    if (s == CL_OK)
        s = label(out, sv->host);
    if (s == CL_OK)
        s = cl_buf_append_str(out, "\",process=\"");
    if (s == CL_OK)
        s = label(out, child);
    if (s == CL_OK)
        s = cl_buf_printf(out, "\"%s} %.17g\n", extra ? extra : "", v);
    return s;
}

cl_status cl_sv_prometheus(cl_sv *sv, cl_buf *out)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"clipper_supervised_restarts_total", "counter",
         "Restarts of a supervised process by its supervisor."},
        {"clipper_supervised_up", "gauge", "1 while the supervised process runs."},
        {"clipper_supervised_state", "gauge",
         "The supervised process's state (1 for the current one)."},
        {"clipper_supervised_last_exit_code", "gauge",
         "How it last ended: its exit code, or minus the signal that killed it."},
        {"clipper_supervised_last_exit_timestamp_seconds", "gauge",
         "When it last ended (Unix time)."},
        {"clipper_supervised_start_timestamp_seconds", "gauge",
         "When its current process started (Unix time)."},
    };
    static const cl_sv_state states[] = {CL_SV_RUNNING, CL_SV_BACKOFF, CL_SV_GAVE_UP,
                                         CL_SV_STOPPED};
    cl_status s = CL_OK;
    pthread_mutex_lock(&sv->lock);
    for (size_t k = 0; s == CL_OK && k < sizeof(m) / sizeof(m[0]); k++) {
        s = cl_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
                          m[k].type);
        for (size_t i = 0; s == CL_OK && i < sv->n; i++) {
            const sv_child *c = &sv->kids[i];
            switch (k) {
            case 0: s = sample(out, m[k].name, sv, c->name, NULL, c->restarts); break;
            case 1:
                s = sample(out, m[k].name, sv, c->name, NULL, c->state == CL_SV_RUNNING);
                break;
            case 2:
                for (size_t q = 0; s == CL_OK && q < sizeof(states) / sizeof(states[0]); q++) {
                    char extra[48];
                    snprintf(extra, sizeof(extra), ",state=\"%s\"", cl_sv_state_name(states[q]));
                    s = sample(out, m[k].name, sv, c->name, extra, c->state == states[q]);
                }
                break;
            case 3:
                if (c->has_exit)
                    s = sample(out, m[k].name, sv, c->name, NULL, c->last_exit_code);
                break;
            case 4:
                if (c->has_exit)
                    s = sample(out, m[k].name, sv, c->name, NULL,
                               (double)c->last_exit_wall_us / 1e6);
                break;
            default:
                if (c->state == CL_SV_RUNNING)
                    s = sample(out, m[k].name, sv, c->name, NULL,
                               (double)c->started_wall_us / 1e6);
                break;
            }
        }
    }
    pthread_mutex_unlock(&sv->lock);
    return s;
}
