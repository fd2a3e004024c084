/* Status codes shared by every module, generated from one table.
 *
 * Foreign error types (natsStatus, CURLcode, errno, Python exceptions) are
 * translated into these once, in the module that owns the foreign library;
 * none crosses a public header. */
#ifndef CL_STATUS_H
#define CL_STATUS_H

#include <stdarg.h>

#define CL_STATUS_MAP(X)                                                    \
    X(OK, "ok")                                                             \
    X(ERR_NOMEM, "out of memory")                                           \
    X(ERR_INVALID, "invalid argument")                                      \
    X(ERR_NOT_FOUND, "not found")                                           \
    X(ERR_EXISTS, "already exists")                                         \
    X(ERR_CONFLICT, "concurrent modification")                              \
    X(ERR_TIMEOUT, "timed out")                                             \
    X(ERR_UNREACHABLE, "cannot reach nats-server")                          \
    X(ERR_NO_RESPONDERS, "no actor is listening on that subject")           \
    X(ERR_BUS, "bus error")                                                 \
    X(ERR_IO, "I/O error")                                                  \
    X(ERR_PYTHON, "python error")                                           \
    X(ERR_DIGEST, "digest mismatch")                                        \
    X(ERR_TOO_LARGE, "too large")                                           \
    X(ERR_CLOSED, "closed")                                                 \
    X(ERR_DENIED, "permission denied")

typedef enum {
#define CL__STATUS_ENUM(name, text) CL_##name,
    CL_STATUS_MAP(CL__STATUS_ENUM)
#undef CL__STATUS_ENUM
    CL__STATUS_COUNT
} cl_status;

/* Every function that returns a cl_status is declared CL_MUST_USE, so a
 * caller that drops the status gets a warning (an error under -Werror):
 * prototypes carry it after the parameter list, as `__attribute__((format))`
 * is written; static functions before the return type (GCC takes no
 * attribute after the parameters of a definition). Function pointer types
 * that return a status carry it too. cl_err_set and cl_err_vset do not:
 * they return the code they were given, for `return cl_err_set(...)`.
 *
 * GCC's warn_unused_result is not silenced by a (void) cast. A status that
 * is deliberately dropped goes through cl_status_ignore, with the reason in
 * a comment on the same line or just above, so a reader sees why the
 * failure cannot matter there, such as "best effort: the next heartbeat
 * publishes again" or "the connection is closing anyway":
 *
 *     cl_status_ignore(cl_bus_publish(bus, subject, body, n));
 *
 * A failure that matters is handled instead: logged with cl_status_text,
 * counted, or returned. */
#define CL_MUST_USE __attribute__((warn_unused_result))

static inline void cl_status_ignore(cl_status s)
{
    (void)s;
}

/* A status plus a human-readable message that says what was wrong. */
typedef struct {
    cl_status code;
    char msg[512];
} cl_err;

/* Short name ("ERR_TIMEOUT") and generic text ("timed out") of a status. */
const char *cl_status_name(cl_status s);
const char *cl_status_text(cl_status s);

/* Sets err (which may be NULL) and returns code, so callers can write
 * `return cl_err_set(err, CL_ERR_INVALID, "field '%s' ...", name);`. */
cl_status cl_err_set(cl_err *err, cl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
cl_status cl_err_vset(cl_err *err, cl_status code, const char *fmt, va_list ap);
void cl_err_clear(cl_err *err);

/* Prepends "what: " to an existing message (for context while unwinding). */
void cl_err_prefix(cl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
