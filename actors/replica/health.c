/* The replica's health endpoint (--health-port), for a platform that
 * probes its containers (the kubernetes backend's pods):
 *   GET /ready  200 "ready" while the heartbeat says "ready"; else 503
 *               with the state (and the cause of a failure).
 *   GET /live   200 while the heartbeat thread has beaten within three
 *               periods (whether or not the bus took the beat: a bus
 *               outage is no reason to restart a replica); else 503.
 * Anything else is 404. It reads only the heartbeat's state, never the
 * model, so a long batch does not make it late. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "cl_clock.h"
#include "cl_httpd.h"
#include "replica_internal.h"

struct cl__health {
    struct MHD_Daemon *daemon;
    cl__hb *hb;
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    cl__health *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /ready and GET /live\n");
    char st[16], cause[1024], text[1200];
    uint64_t last_us = cl__hb_snapshot(h->hb, st, sizeof(st), cause, sizeof(cause));
    if (strcmp(url, "/ready") == 0) {
        if (strcmp(st, "ready") == 0)
            return answer(c, MHD_HTTP_OK, "ready\n");
        snprintf(text, sizeof(text), "%s%s%s\n", st, cause[0] ? ": " : "", cause);
        return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, text);
    }
    if (strcmp(url, "/live") == 0) {
        uint64_t age = cl_mono_us() - last_us;
        if (age <= 3u * CL_HEARTBEAT_MS * 1000u)
            return answer(c, MHD_HTTP_OK, "live\n");
        snprintf(text, sizeof(text), "no heartbeat for %.1f s\n", (double)age / 1e6);
        return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, text);
    }
    return answer(c, MHD_HTTP_NOT_FOUND, "only GET /ready and GET /live\n");
}

cl_status cl__health_start(cl__health **out, cl__hb *hb, int port, cl_err *err)
{
    cl__health *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    h->hb = hb;
    int bound = 0;
    cl_httpd_opts o = {
        .what = "the replica's health checks",
        .host = "0.0.0.0",
        .port = port,
        .flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
        .handler = handle,
        .handler_cls = h,
        .connection_timeout_s = 5,
        .reuse_address = true,
    };
    cl_status s = cl_httpd_start(&h->daemon, &bound, &o, err);
    if (s != CL_OK) {
        free(h);
        return s;
    }
    *out = h;
    return CL_OK;
}

void cl__health_free(cl__health *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
