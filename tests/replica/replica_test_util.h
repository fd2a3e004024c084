/* Helpers shared by the replica tests: test artifacts from make_model.py.
 * Replica processes that die with the test: cl_test_util.h. */
#ifndef REPLICA_TEST_UTIL_H
#define REPLICA_TEST_UTIL_H

#include <stddef.h>

/* Runs `python3 make_model.py name <tmp>` and returns the artifact bytes
 * (malloc'd) or NULL. */
void *rt_make_model(const char *name, size_t *len);

#endif
