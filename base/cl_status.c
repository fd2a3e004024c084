#include "cl_status.h"

#include <stdio.h>
#include <string.h>

static const char *const names[] = {
#define CL__STATUS_NAME(name, text) #name,
    CL_STATUS_MAP(CL__STATUS_NAME)
#undef CL__STATUS_NAME
};

static const char *const texts[] = {
#define CL__STATUS_TEXT(name, text) text,
    CL_STATUS_MAP(CL__STATUS_TEXT)
#undef CL__STATUS_TEXT
};

const char *cl_status_name(cl_status s)
{
    return (unsigned)s < CL__STATUS_COUNT ? names[s] : "ERR_UNKNOWN";
}

const char *cl_status_text(cl_status s)
{
    return (unsigned)s < CL__STATUS_COUNT ? texts[s] : "unknown status";
}

cl_status cl_err_vset(cl_err *err, cl_status code, const char *fmt, va_list ap)
{
    if (err != NULL) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return code;
}

cl_status cl_err_set(cl_err *err, cl_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void cl_err_clear(cl_err *err)
{
    if (err != NULL) {
        err->code = CL_OK;
        err->msg[0] = '\0';
    }
}

void cl_err_prefix(cl_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    char head[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%.200s: %.*s", head, (int)(sizeof(err->msg) - 204), old);
}
