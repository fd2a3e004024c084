/* A growable byte buffer. Caller-allocated: cl_buf_init / cl_buf_deinit. */
#ifndef CL_BUF_H
#define CL_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "cl_status.h"

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} cl_buf;

void cl_buf_init(cl_buf *b);
void cl_buf_deinit(cl_buf *b);
void cl_buf_reset(cl_buf *b); /* len = 0, keeps memory */
cl_status cl_buf_reserve(cl_buf *b, size_t extra) CL_MUST_USE;
cl_status cl_buf_append(cl_buf *b, const void *data, size_t len) CL_MUST_USE;
cl_status cl_buf_append_str(cl_buf *b, const char *s) CL_MUST_USE;
cl_status cl_buf_printf(cl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) CL_MUST_USE;
/* Appends a NUL without counting it in len, so data can be used as a C string. */
cl_status cl_buf_terminate(cl_buf *b) CL_MUST_USE;
/* Transfers ownership of the bytes to the caller (NUL-terminated); b becomes empty. */
char *cl_buf_steal(cl_buf *b, size_t *len);

#endif
