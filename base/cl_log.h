/* Logging to stderr with a level, a timestamp and the actor's name.
 * Thread-safe; one line per call. The level comes from CLIPPER_LOG
 * (debug, info, warn, error; default info). */
#ifndef CL_LOG_H
#define CL_LOG_H

typedef enum { CL_LOG_DEBUG, CL_LOG_INFO, CL_LOG_WARN, CL_LOG_ERROR } cl_log_level;

/* Sets the name printed on every line (for example "frontend"). The string
 * is copied. Call once, early, from main. */
void cl_log_set_name(const char *name);
void cl_log_set_level(cl_log_level level);
int cl_log_enabled(cl_log_level level);

void cl_log(cl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define cl_debug(...) cl_log(CL_LOG_DEBUG, __VA_ARGS__)
#define cl_info(...) cl_log(CL_LOG_INFO, __VA_ARGS__)
#define cl_warn(...) cl_log(CL_LOG_WARN, __VA_ARGS__)
#define cl_error(...) cl_log(CL_LOG_ERROR, __VA_ARGS__)

#endif
