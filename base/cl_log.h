/* Logging to stderr with a level, a timestamp and the actor's name.
 * Thread-safe; one line per call. The level comes from CLIPPER_LOG
 * (debug, info, warn, error; default info).
 *
 * Lines caused by messages from outside (a malformed batch, a bad body)
 * go through CL_LOG_LIMITED, so a flood of them cannot fill a disk. */
#ifndef CL_LOG_H
#define CL_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

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

/* ---- rate-limited lines ----------------------------------------------
 *
 * A token bucket per call site: CL_LOG_BURST lines pass at once, then one
 * per CL_LOG_INTERVAL_US. The first line written after some were dropped
 * ends with "[N similar lines suppressed]". */
#define CL_LOG_BURST 10u
#define CL_LOG_INTERVAL_US 10000000ull

typedef struct {
    pthread_mutex_t mu;
    bool started;
    uint32_t tokens;
    uint64_t at_us;      /* time the tokens were last counted up to */
    uint64_t suppressed; /* lines dropped since the last one written */
} cl_log_limit;

#define CL_LOG_LIMIT_INIT {PTHREAD_MUTEX_INITIALIZER, false, 0, 0, 0}

/* Writes the line (at level) when l's bucket has a token at the log clock's
 * time; else counts it as suppressed. A level that is off costs no token. */
void cl_log_limited(cl_log_limit *l, cl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CL_LOG_LIMITED(level, ...)                                                             \
    do {                                                                                       \
        static cl_log_limit cl__log_limit_ = CL_LOG_LIMIT_INIT;                                \
        cl_log_limited(&cl__log_limit_, (level), __VA_ARGS__);                                 \
    } while (0)

/* The bucket itself (for tests): true when a line may be written at
 * now_us, with *suppressed set to the lines dropped since the last one. */
bool cl_log_limit_take(cl_log_limit *l, uint64_t now_us, uint64_t *suppressed);
/* Replaces the monotonic clock the limited lines use (tests); NULL
 * restores it. */
void cl_log_set_clock(uint64_t (*now_us)(void));

#endif
