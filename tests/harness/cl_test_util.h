/* Test harness: what tests repeat around the code under test — child
 * processes that die with the test, reading whole files and /proc entries,
 * and waiting for a counter another thread bumps.
 *
 * Every helper reports failure by its return value (no cmocka here), so a
 * test asserts on it where it wants the test to fail. */
#ifndef CL_TEST_UTIL_H
#define CL_TEST_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* fork() whose child gets SIGKILL when the test process dies (and exits at
 * once when the test already died). Returns as fork() does. */
pid_t cl_test_fork(void);
/* Starts argv[0] with argv in a cl_test_fork child whose signal mask is
 * cleared (the test may block signals). Returns its pid or -1. */
pid_t cl_test_spawn(char *const argv[]);
/* Waits up to timeout_ms for pid to exit. Returns its exit code (128 + sig
 * when killed by a signal), or -1 on timeout or when pid is not a child. */
int cl_test_wait_exit(pid_t pid, int timeout_ms);
/* SIGKILLs and reaps pid if it still runs (for teardowns); pid <= 0 is a
 * no-op. */
void cl_test_kill(pid_t pid);

/* The whole file (also /proc files, which have no size), NUL-terminated and
 * malloc'd; *len (may be NULL) is its length. NULL when it cannot be read. */
char *cl_test_read_file(const char *path, size_t *len);
/* /proc/<pid>/stat: the state letter, the parent and the command name
 * (comm may be NULL). False when the process is gone. */
bool cl_test_proc_stat(int pid, char *state, int *ppid, char *comm, size_t comm_size);

/* Polls *count (read under mu) every 5 ms until it reaches want or
 * timeout_ms passes; returns the last value read. */
int cl_test_wait_count(pthread_mutex_t *mu, const int *count, int want, int timeout_ms);

#endif
