/* A supervisor of operating-system processes, after Erlang/OTP's: each
 * child is restarted when it ends (one_for_one, every child permanent),
 * with a backoff, and within a restart intensity: more than max_restarts
 * restarts within period_s seconds and the supervisor gives up on that
 * child, which its owner escalates (clipper start stops the cluster and
 * exits 1; 'clipper run --supervised' exits 1, so that systemd or whatever
 * started it decides).
 *
 * A child that is stopped (it cannot answer anyone, but NATS keeps giving
 * it its share of a queue group's messages) counts as hung: after
 * stopped_kill_ms it is killed, and restarted as if it had crashed.
 *
 * Backoff: a child that ran at least healthy_s seconds is restarted at
 * once; one that ended sooner waits backoff_first_ms, doubled for each
 * quick end in a row, up to backoff_max_ms.
 *
 * The supervisor is driven by its owner's loop: cl_sv_tick reaps what
 * ended (waitpid on its own children only) and starts what is due. The
 * status (cl_sv_status_json, cl_sv_prometheus) may be read from any
 * thread. */
#ifndef CL_SUPERVISOR_H
#define CL_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "cl_buf.h"
#include "cl_status.h"

typedef struct cl_sv cl_sv;

typedef struct {
    unsigned max_restarts;     /* intensity: at most this many restarts of a child ... */
    unsigned period_s;         /* ... within this many seconds (default 10 in 60) */
    unsigned backoff_first_ms; /* the wait after a quick end (default 100) */
    unsigned backoff_max_ms;   /* its cap (default 5000) */
    unsigned healthy_s;        /* a child that ran this long restarts at once (default 10) */
    unsigned stopped_kill_ms;  /* a child stopped by a signal (SIGSTOP, SIGTSTP: state T
                                  in /proc) this long is killed and restarted like one
                                  that crashed (default 2000; 0: never). A child stopped
                                  under a debugger (state t) is left alone. */
} cl_sv_opts;

typedef enum {
    CL_SV_IDLE,    /* added, not started */
    CL_SV_RUNNING, /* its process runs */
    CL_SV_BACKOFF, /* ended; restarts at next_start */
    CL_SV_GAVE_UP, /* ended too often: not restarted */
    CL_SV_STOPPED  /* stopped by its owner */
} cl_sv_state;

typedef struct {
    const char *name;   /* "nats-server", "router", ... (a label value) */
    char *const *argv;  /* argv[0] a path or a name in PATH; copied */
    int out_fd;         /* stdout and stderr go here (dup'd); -1: inherit */
    bool new_pgroup;    /* a process group of its own */
} cl_sv_child_spec;

void cl_sv_opts_init(cl_sv_opts *o);

/* host: the label the status carries (NULL: this machine's host name). */
cl_status cl_sv_new(cl_sv **out, const cl_sv_opts *o, const char *host, cl_err *err) CL_MUST_USE;
void cl_sv_free(cl_sv *sv);

/* Adds a child (not started); *index gets its index. */
cl_status cl_sv_add(cl_sv *sv, const cl_sv_child_spec *spec, size_t *index, cl_err *err)
    CL_MUST_USE;

/* Starts child i now (it must not run). */
cl_status cl_sv_start(cl_sv *sv, size_t i, cl_err *err) CL_MUST_USE;

/* Reaps children that ended, says so on stderr, and starts those whose
 * backoff has passed. Returns the index of a child it gave up on in this
 * call (-1: none); *next_ms is how long the owner may wait before the next
 * tick is due (at most 1000). */
long cl_sv_tick(cl_sv *sv, int *next_ms);

/* SIGTERM to the children in which[] (a process group when they have
 * one), waits up to grace_ms, then SIGKILL; they are not restarted. */
void cl_sv_stop(cl_sv *sv, const size_t *which, size_t n, int grace_ms);

/* The pid of child i (0 when it does not run), its state and restarts. */
pid_t cl_sv_pid(cl_sv *sv, size_t i);
cl_sv_state cl_sv_child_state(cl_sv *sv, size_t i);
unsigned cl_sv_restarts(cl_sv *sv, size_t i);
const char *cl_sv_name(const cl_sv *sv, size_t i);
size_t cl_sv_count(const cl_sv *sv);

/* "running", "backoff", ... */
const char *cl_sv_state_name(cl_sv_state s);

/* {"host","pid","started_at","children":[{"name","state","pid","restarts",
 *  "started_at","last_exit","last_exit_code","last_exit_at","next_start_in_ms"}]}
 * (times ISO 8601 UTC). Caller frees. */
cJSON *cl_sv_status_json(cl_sv *sv);

/* Appends the Prometheus text of the children's figures to out. */
cl_status cl_sv_prometheus(cl_sv *sv, cl_buf *out) CL_MUST_USE;

#endif
