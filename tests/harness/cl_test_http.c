/* Raw HTTP/1.1 over TCP for tests (cl_test_http.h). */
#include "cl_test_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cl_clock.h"

long cl_test_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

static int remaining_ms(uint64_t until_us)
{
    uint64_t now = cl_mono_us();
    return now >= until_us ? 0 : (int)((until_us - now + 999) / 1000);
}

static int open_socket(const char *from, const char *host, int port, struct sockaddr_in *to)
{
    memset(to, 0, sizeof(*to));
    to->sin_family = AF_INET;
    to->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &to->sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (from != NULL) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, from, &me.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

int cl_test_tcp_connect(const char *from, const char *host, int port, int timeout_ms)
{
    struct sockaddr_in to;
    int fd = open_socket(from, host, port, &to);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        if (poll(&p, 1, timeout_ms) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            close(fd);
            return -1;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

int cl_test_wait_closed(int fd, int timeout_ms)
{
    uint64_t start = cl_mono_us();
    uint64_t until = start + (uint64_t)timeout_ms * 1000;
    char buf[4096];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = remaining_ms(until);
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
            return (int)((cl_mono_us() - start) / 1000);
    }
}

/* What a response in buf[0..len) is: -1 while incomplete, else its total
 * length (head + body); sets the status. With closed, what is there is
 * the response. */
static long response_end(const char *buf, size_t len, bool closed, int *status)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    *status = 0;
    if (len >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
        *status = atoi(buf + 9);
    if (end == NULL)
        return closed ? (long)len : -1;
    size_t head = (size_t)(end - buf);
    long clen = -1;
    for (const char *l = strstr(buf, "\r\n"); l != NULL && l + 2 < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            clen = atol(l + 17);
    if (clen >= 0 && len >= head + (size_t)clen)
        return (long)(head + (size_t)clen);
    return closed ? (long)len : -1;
}

/* head + Content-Length of the response starting in buf, or -1 while
 * its head is incomplete or has no Content-Length. */
static long expected_total(const char *buf, size_t len)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    if (end == NULL)
        return -1;
    for (const char *l = strstr(buf, "\r\n"); l != NULL && l + 2 < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            return (long)(end - buf) + atol(l + 17);
    return -1;
}

static void fill_reply(cl_test_http_reply *out, const char *buf, size_t len, int status)
{
    out->status = status;
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    size_t head = end ? (size_t)(end - buf) : len;
    snprintf(out->head, sizeof(out->head), "%.*s", (int)head, buf);
    out->body_len = len - head;
    snprintf(out->body, sizeof(out->body), "%.*s", (int)(len - head), buf + head);
}

int cl_test_http_on(int fd, const char *request, cl_test_http_reply *out, int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    out->status = -1;
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000;
    size_t want = strlen(request), sent = 0;
    while (sent < want) {
        ssize_t n = send(fd, request + sent, want - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, remaining_ms(until)) <= 0)
                return out->status;
            continue;
        }
        break; /* the server may have answered and closed already: read it */
    }
    static __thread char buf[65536];
    size_t len = 0;
    for (;;) {
        int status;
        long end = response_end(buf, len, false, &status);
        if (end >= 0) {
            fill_reply(out, buf, (size_t)end, status);
            return out->status;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, remaining_ms(until));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return out->status; /* -1: timed out */
        ssize_t got = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
        if (got > 0) {
            len += (size_t)got;
            buf[len] = '\0';
            if (len < sizeof(buf) - 1)
                continue;
        } else if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        /* closed, reset or full */
        buf[len] = '\0';
        response_end(buf, len, true, &status);
        fill_reply(out, buf, len, len > 0 ? status : 0);
        return out->status;
    }
}

int cl_test_http_raw(const char *from, int port, const char *request, cl_test_http_reply *out,
                     int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    out->status = -1;
    int fd = cl_test_tcp_connect(from, "127.0.0.1", port, timeout_ms);
    if (fd < 0)
        return -1;
    int s = cl_test_http_on(fd, request, out, timeout_ms);
    close(fd);
    return s;
}

/* ---- many at once ------------------------------------------------------ */

enum { F_CONNECTING, F_READING, F_DONE };

typedef struct {
    int fd;
    int state;
    size_t sent;
    size_t len;
    char buf[512]; /* the start of the response: enough for the status */
    size_t total;  /* bytes received */
} flood_conn;

static void flood_finish(flood_conn *c, int epfd, bool closed, int want, long ms,
                         cl_test_http_flood_result *out)
{
    int status = 0;
    if (c->total > 0)
        response_end(c->buf, c->len, true, &status);
    (void)closed;
    if (c->total == 0)
        out->closed++;
    else if (status == want) {
        out->ok++;
        if (ms > out->slowest_ms)
            out->slowest_ms = ms;
    } else {
        out->other++;
        out->last_other = status;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = F_DONE;
}

void cl_test_http_flood(int port, const char *request, int n, int want, int timeout_ms,
                        cl_test_http_flood_result *out)
{
    memset(out, 0, sizeof(*out));
    flood_conn *c = calloc((size_t)n, sizeof(*c));
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c == NULL || epfd < 0) {
        out->not_opened = n;
        free(c);
        if (epfd >= 0)
            close(epfd);
        return;
    }
    uint64_t start = cl_mono_us();
    uint64_t until = start + (uint64_t)timeout_ms * 1000;
    size_t req_len = strlen(request);
    int open = 0;
    for (int i = 0; i < n; i++) {
        struct sockaddr_in to;
        c[i].fd = open_socket(NULL, "127.0.0.1", port, &to);
        c[i].state = F_DONE;
        if (c[i].fd < 0) {
            out->not_opened++;
            continue;
        }
        if (connect(c[i].fd, (struct sockaddr *)&to, sizeof(to)) != 0 && errno != EINPROGRESS) {
            close(c[i].fd);
            c[i].fd = -1;
            out->not_opened++;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c[i].fd, &ev);
        c[i].state = F_CONNECTING;
        open++;
    }
    struct epoll_event evs[256];
    while (open > 0) {
        int left = remaining_ms(until);
        if (left == 0)
            break;
        int k = epoll_wait(epfd, evs, 256, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        long ms = (long)((cl_mono_us() - start) / 1000);
        for (int e = 0; e < k; e++) {
            flood_conn *f = &c[evs[e].data.u32];
            if (f->state == F_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    flood_finish(f, epfd, true, want, ms, out);
                    open--;
                    continue;
                }
                ssize_t s = send(f->fd, request + f->sent, req_len - f->sent, MSG_NOSIGNAL);
                if (s > 0)
                    f->sent += (size_t)s;
                else if (s < 0 && errno != EAGAIN) {
                    flood_finish(f, epfd, true, want, ms, out);
                    open--;
                    continue;
                }
                if (f->sent == req_len) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
                    epoll_ctl(epfd, EPOLL_CTL_MOD, f->fd, &ev);
                    f->state = F_READING;
                }
                continue;
            }
            char tmp[4096];
            ssize_t got = recv(f->fd, tmp, sizeof(tmp), 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got > 0) {
                size_t room = sizeof(f->buf) - 1 - f->len;
                size_t take = (size_t)got < room ? (size_t)got : room;
                memcpy(f->buf + f->len, tmp, take);
                f->len += take;
                f->buf[f->len] = '\0';
                f->total += (size_t)got;
                long end = expected_total(f->buf, f->len);
                if (end < 0 || f->total < (size_t)end)
                    continue;
            }
            flood_finish(f, epfd, got <= 0, want, ms, out);
            open--;
        }
    }
    for (int i = 0; i < n; i++)
        if (c[i].state != F_DONE) {
            out->timed_out++;
            close(c[i].fd);
        }
    close(epfd);
    free(c);
}
