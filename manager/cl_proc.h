/* Child processes on this machine: spawning them so that they cannot
 * outlive their parent, finding this executable, reaping, describing how a
 * child ended, and stopping one politely then firmly.
 *
 * Used by the local backend of the container manager and by 'clipper
 * start'. Nothing here blocks except cl_proc_stop and cl_proc_wait. */
#ifndef CL_PROC_H
#define CL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cl_status.h"

typedef struct {
    int stdout_fd;   /* -1: inherit */
    int stderr_fd;   /* -1: inherit */
    bool new_pgroup; /* own process group, so a terminal's Ctrl-C reaches only us */
    bool outlive_parent; /* no PR_SET_PDEATHSIG: it keeps running when its parent
                            dies (a replica outlives a killed manager) */
} cl_proc_opts;

/* Forks and execs argv (argv[0] is a path, or a name looked up in PATH).
 * The child gets PR_SET_PDEATHSIG=SIGTERM (sent when the *thread* that
 * spawned it ends) unless opts->outlive_parent, an empty signal mask, default dispositions, and no
 * descriptors beyond 0-2. Returns only after the exec succeeded or failed:
 * a program that cannot be run is an error here (CL_ERR_NOT_FOUND /
 * CL_ERR_IO naming the program), not a child that exits 127. */
cl_status cl_proc_spawn(pid_t *out, char *const argv[], const cl_proc_opts *opts, cl_err *err)
    CL_MUST_USE;

/* The path of the running executable (/proc/self/exe). */
cl_status cl_proc_self_exe(char *buf, size_t size, cl_err *err) CL_MUST_USE;

/* Non-blocking reap of pid. True when it has ended; *code is its exit code
 * (>= 0) or minus the signal that killed it. True with code -1000 when pid
 * is not (or no longer) our child. */
bool cl_proc_reaped(pid_t pid, int *code);

/* Waits up to timeout_ms for pid to end (timeout_ms < 0: forever). */
bool cl_proc_wait(pid_t pid, int timeout_ms, int *code);

/* SIGTERM, wait up to grace_ms, then SIGKILL and wait. Returns how it ended. */
int cl_proc_stop(pid_t pid, int grace_ms);

/* "exit code 3", "killed by signal 9 (Killed)". */
void cl_proc_describe(int code, char *buf, size_t size);

/* Finds an executable named name in PATH (or name itself when it holds a
 * '/'), trying the extra directories too. False when there is none. */
bool cl_proc_find_program(const char *name, const char *const extra_dirs[], char *buf,
                          size_t size);

/* mkdir -p. */
cl_status cl_proc_mkdirs(const char *path, cl_err *err) CL_MUST_USE;

#endif
