/* Log lines to stderr, and the token buckets of rate-limited lines. */
#include "cl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cl_clock.h"

static char log_name[64] = "clipper";
static int log_level = -1;
static uint64_t (*log_clock)(void) = NULL;

static int level_from_env(void)
{
    const char *v = getenv("CLIPPER_LOG");
    if (v == NULL)
        return CL_LOG_INFO;
    if (strcasecmp(v, "debug") == 0)
        return CL_LOG_DEBUG;
    if (strcasecmp(v, "warn") == 0)
        return CL_LOG_WARN;
    if (strcasecmp(v, "error") == 0)
        return CL_LOG_ERROR;
    return CL_LOG_INFO;
}

void cl_log_set_name(const char *name)
{
    snprintf(log_name, sizeof(log_name), "%s", name);
}

void cl_log_set_level(cl_log_level level)
{
    log_level = (int)level;
}

int cl_log_enabled(cl_log_level level)
{
    if (log_level < 0)
        log_level = level_from_env();
    return (int)level >= log_level;
}

/* One line: the header, fmt, then suppressed's note when it is not 0. */
static void write_line(cl_log_level level, uint64_t suppressed, const char *fmt, va_list ap)
{
    static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %-5s [%s] ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[level], log_name);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    if (suppressed > 0 && len < sizeof(line))
        snprintf(line + len, sizeof(line) - len, " [%llu similar lines suppressed]",
                 (unsigned long long)suppressed);
    /* One fputs of a whole line keeps lines from different threads apart. */
    len = strlen(line);
    if (len + 1 < sizeof(line)) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}

void cl_log(cl_log_level level, const char *fmt, ...)
{
    if (!cl_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line(level, 0, fmt, ap);
    va_end(ap);
}

bool cl_log_limit_take(cl_log_limit *l, uint64_t now_us, uint64_t *suppressed)
{
    pthread_mutex_lock(&l->mu);
    if (!l->started) {
        l->started = true;
        l->tokens = CL_LOG_BURST;
        l->at_us = now_us;
    } else if (now_us > l->at_us) {
        uint64_t add = (now_us - l->at_us) / CL_LOG_INTERVAL_US;
        if (add > 0) {
            /* Count whole intervals only: the part of one that has passed
             * still counts toward the next token. */
            l->at_us += add * CL_LOG_INTERVAL_US;
            l->tokens = add >= CL_LOG_BURST - l->tokens ? CL_LOG_BURST
                                                        : l->tokens + (uint32_t)add;
        }
    }
    bool ok = l->tokens > 0;
    if (ok) {
        l->tokens--;
        *suppressed = l->suppressed;
        l->suppressed = 0;
    } else {
        l->suppressed++;
        *suppressed = 0;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void cl_log_set_clock(uint64_t (*now_us)(void))
{
    log_clock = now_us;
}

void cl_log_limited(cl_log_limit *l, cl_log_level level, const char *fmt, ...)
{
    if (!cl_log_enabled(level))
        return;
    uint64_t suppressed = 0;
    if (!cl_log_limit_take(l, log_clock != NULL ? log_clock() : cl_mono_us(), &suppressed))
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line(level, suppressed, fmt, ap);
    va_end(ap);
}
