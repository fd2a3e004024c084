/* Helpers shared by the replica tests: test artifacts from make_model.py,
 * and replica processes that die with the test. */
#ifndef REPLICA_TEST_UTIL_H
#define REPLICA_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Runs `python3 make_model.py name <tmp>` and returns the artifact bytes
 * (malloc'd) or NULL. */
void *rt_make_model(const char *name, size_t *len);

/* Starts argv[0] with argv; the child gets SIGKILL when the test dies.
 * Returns its pid or -1. */
pid_t rt_spawn(char *const argv[]);
/* Waits up to timeout_ms for pid to exit. Returns its exit code (128+sig
 * when killed by a signal) or -1 on timeout. */
int rt_wait_exit(pid_t pid, int timeout_ms);
/* SIGKILLs and reaps pid if it still runs (for teardowns). */
void rt_kill(pid_t pid);

#endif
