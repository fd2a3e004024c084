#include "cl_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

cl_status cl_status_from_errno(int e)
{
    switch (e) {
    case ENOENT:
        return CL_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
        return CL_ERR_DENIED;
    case EEXIST:
        return CL_ERR_EXISTS;
    default:
        return CL_ERR_IO;
    }
}

void cl_file_wipe(void *p, size_t n)
{
    if (p != NULL)
        explicit_bzero(p, n);
}

void cl_file_free(char *buf, size_t len)
{
    if (buf == NULL)
        return;
    cl_file_wipe(buf, len + 1);
    free(buf);
}

static cl_status read_error(cl_err *err, int e, const char *kind, const char *path)
{
    return cl_err_set(err, cl_status_from_errno(e), "cannot read the %s %s: %s", kind, path,
                      strerror(e));
}

cl_status cl_file_read(const char *path, const char *kind, size_t max, bool secret,
                       char **out, size_t *len, mode_t *mode, cl_err *err)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return read_error(err, errno, kind, path);
    struct stat st;
    cl_status s = CL_OK;
    char *buf = NULL;
    size_t n = 0, size = 0;
    if (fstat(fd, &st) != 0) {
        s = read_error(err, errno, kind, path);
    } else if (!S_ISREG(st.st_mode)) {
        s = cl_err_set(err, CL_ERR_INVALID, "the %s %s is not a regular file", kind, path);
    } else if (secret && (st.st_mode & 077) != 0) {
        s = cl_err_set(err, CL_ERR_DENIED, "the %s %s is %s by others (mode %04o); chmod 600 it",
                       kind, path, (st.st_mode & 044) != 0 ? "readable" : "writable or usable",
                       (unsigned)(st.st_mode & 07777));
    } else if ((uint64_t)st.st_size > max) {
        s = cl_err_set(err, CL_ERR_TOO_LARGE, "the %s %s has %lld bytes, more than the %zu taken",
                       kind, path, (long long)st.st_size, max);
    } else if ((buf = malloc((size = (size_t)st.st_size) + 1)) == NULL) {
        s = cl_err_set(err, CL_ERR_NOMEM, "cannot read the %s %s: out of memory", kind, path);
    }
    while (s == CL_OK && n < size) { /* a file that grows meanwhile is cut at its size */
        ssize_t r = read(fd, buf + n, size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            s = read_error(err, errno, kind, path);
        if (r <= 0)
            break; /* one that shrank: what is there */
        n += (size_t)r;
    }
    close(fd);
    if (s != CL_OK) {
        cl_file_free(buf, size); /* it may hold part of a secret */
        return s;
    }
    buf[n] = '\0';
    /* The tail a shrunk file did not fill is cleared, so cl_file_free's
     * length covers everything that was written. */
    memset(buf + n, 0, size + 1 - n);
    *out = buf;
    *len = n;
    if (mode != NULL)
        *mode = st.st_mode & 07777;
    return CL_OK;
}

cl_status cl_file_write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0)
            errno = EIO;
        if (w <= 0)
            return CL_ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return CL_OK;
}

cl_status cl_file_write_beside(const char *path, const char *kind, const void *data, size_t len,
                               mode_t mode, char tmp[PATH_MAX], cl_err *err)
{
    if (snprintf(tmp, PATH_MAX, "%s.tmp-XXXXXX", path) >= PATH_MAX)
        return cl_err_set(err, CL_ERR_INVALID, "the %s's name is too long: %s", kind, path);
    int fd = mkostemp(tmp, O_CLOEXEC); /* 0600, O_EXCL */
    if (fd < 0)
        return cl_err_set(err, cl_status_from_errno(errno), "cannot create the %s %s: %s", kind,
                          path, strerror(errno));
    /* Exactly mode, whatever the umask (fchmod ignores it). */
    cl_status st = fchmod(fd, mode) == 0 ? cl_file_write_all(fd, data, len) : CL_ERR_IO;
    if (st == CL_OK && fsync(fd) != 0)
        st = CL_ERR_IO;
    int e = errno;
    if (close(fd) != 0 && st == CL_OK) {
        e = errno;
        st = CL_ERR_IO;
    }
    if (st != CL_OK) {
        unlink(tmp);
        return cl_err_set(err, st, "cannot write the %s %s: %s", kind, path, strerror(e));
    }
    return CL_OK;
}

cl_status cl_file_write_atomic(const char *path, const char *kind, const void *data, size_t len,
                               mode_t mode, cl_err *err)
{
    char tmp[PATH_MAX];
    cl_status st = cl_file_write_beside(path, kind, data, len, mode, tmp, err);
    if (st != CL_OK)
        return st;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return cl_err_set(err, cl_status_from_errno(e), "cannot write the %s %s: %s", kind, path,
                          strerror(e));
    }
    return CL_OK;
}
