/* Small files that may hold secrets: credential seeds, private keys,
 * bearer tokens, certificates.
 *
 * Reading takes the whole of a regular file up to a bound, refuses (when
 * asked) one that group or others may use, and wipes what it read before
 * freeing it. Writing makes a new file beside the target with its mode set
 * from the start (never readable by others, even for a moment), syncs it,
 * and then renames or links it into place, so a reader sees the old file
 * or all of the new one. Errors name the file and what it is ("the TLS key
 * file /x/y: ..."). */
#ifndef CL_FILE_H
#define CL_FILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cl_status.h"

/* The status an errno value stands for (ENOENT: not found, EACCES/EPERM:
 * denied, EEXIST: exists; anything else: I/O). */
cl_status cl_status_from_errno(int e);

/* Reads the whole of the regular file path, at most max bytes, into a
 * malloc'd, NUL-terminated buffer (*out, *len bytes before the NUL; free it
 * with cl_file_free). kind names the file in errors ("credential file").
 * secret: refuse a file whose mode gives group or others any access
 * (CL_ERR_DENIED, "chmod 600 it"), as ssh does with private keys: whoever
 * else can read it holds the secret, whoever can write it chooses it.
 * *mode (may be NULL) gets the file's permission bits. */
CL_MUST_USE cl_status cl_file_read(const char *path, const char *kind, size_t max, bool secret,
                                   char **out, size_t *len, mode_t *mode, cl_err *err);

/* Wipes buf (len bytes and its NUL, as cl_file_read returned it) and frees
 * it. NULL is allowed. */
void cl_file_free(char *buf, size_t len);

/* Overwrites n bytes at p with zeros in a way the compiler keeps. */
void cl_file_wipe(void *p, size_t n);

/* Writes all n bytes to fd, retrying short writes and EINTR. CL_ERR_IO
 * with errno set on failure. */
CL_MUST_USE cl_status cl_file_write_all(int fd, const void *p, size_t n);

/* Writes data to a new file beside path (its name in tmp), with exactly
 * mode (whatever the umask), synced. The caller renames or links it into
 * place, or unlinks it. */
CL_MUST_USE cl_status cl_file_write_beside(const char *path, const char *kind, const void *data,
                                           size_t len, mode_t mode, char tmp[PATH_MAX],
                                           cl_err *err);

/* cl_file_write_beside, then renamed over path: path holds either its old
 * contents or all of the new. */
CL_MUST_USE cl_status cl_file_write_atomic(const char *path, const char *kind, const void *data,
                                           size_t len, mode_t mode, cl_err *err);

#endif
