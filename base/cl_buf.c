#include "cl_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cl_buf_init(cl_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cl_buf_deinit(cl_buf *b)
{
    free(b->data);
    cl_buf_init(b);
}

void cl_buf_reset(cl_buf *b)
{
    b->len = 0;
}

cl_status cl_buf_reserve(cl_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return CL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return CL_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return CL_OK;
}

cl_status cl_buf_append(cl_buf *b, const void *data, size_t len)
{
    if (cl_buf_reserve(b, len) != CL_OK)
        return CL_ERR_NOMEM;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return CL_OK;
}

cl_status cl_buf_append_str(cl_buf *b, const char *s)
{
    return cl_buf_append(b, s, strlen(s));
}

cl_status cl_buf_printf(cl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CL_ERR_INVALID;
    if (cl_buf_reserve(b, (size_t)n) != CL_OK)
        return CL_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CL_OK;
}

cl_status cl_buf_terminate(cl_buf *b)
{
    if (cl_buf_reserve(b, 0) != CL_OK)
        return CL_ERR_NOMEM;
    b->data[b->len] = '\0';
    return CL_OK;
}

char *cl_buf_steal(cl_buf *b, size_t *len)
{
    if (cl_buf_terminate(b) != CL_OK)
        return NULL;
    char *p = (char *)b->data;
    if (len != NULL)
        *len = b->len;
    cl_buf_init(b);
    return p;
}
