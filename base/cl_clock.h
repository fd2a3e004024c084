/* Clocks. Deadlines that cross the bus are wall-clock microseconds
 * (hosts are assumed NTP-synchronised); durations measured inside one
 * process use the monotonic clock. */
#ifndef CL_CLOCK_H
#define CL_CLOCK_H

#include <stdint.h>

uint64_t cl_wall_us(void);  /* CLOCK_REALTIME in microseconds */
uint64_t cl_mono_us(void);  /* CLOCK_MONOTONIC in microseconds */
void cl_sleep_ms(unsigned ms);

#endif
