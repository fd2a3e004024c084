/* Clocks. Deadlines that cross the bus are wall-clock microseconds
 * (hosts are assumed NTP-synchronised); durations measured inside one
 * process use the monotonic clock. */
#ifndef CL_CLOCK_H
#define CL_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

uint64_t cl_wall_us(void);  /* CLOCK_REALTIME in microseconds */
uint64_t cl_mono_us(void);  /* CLOCK_MONOTONIC in microseconds */
void cl_sleep_ms(unsigned ms);

/* Initialises cv so that its timed waits count on CLOCK_MONOTONIC (a wall
 * clock set back or forth neither stretches nor cuts them). */
void cl_cond_init_monotonic(pthread_cond_t *cv);
/* The CLOCK_MONOTONIC time ms from now: the deadline of a timed wait on
 * such a condition variable. */
struct timespec cl_mono_deadline(unsigned ms);

#endif
