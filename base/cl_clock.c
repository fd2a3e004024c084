#define _POSIX_C_SOURCE 200809L
#include "cl_clock.h"

#include <time.h>

static uint64_t read_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t cl_wall_us(void)
{
    return read_us(CLOCK_REALTIME);
}

uint64_t cl_mono_us(void)
{
    return read_us(CLOCK_MONOTONIC);
}

void cl_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}
