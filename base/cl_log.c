#include "cl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char log_name[64] = "clipper";
static int log_level = -1;

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

void cl_log(cl_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (!cl_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %-5s [%s] ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[level], log_name);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs of a whole line keeps lines from different threads apart. */
    size_t len = strlen(line);
    if (len + 1 < sizeof(line)) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}
