/* What a supervisor tells the cluster and Prometheus (see cl_sv_report.h). */
#include "cl_sv_report.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "cl_clock.h"
#include "cl_httpd.h"
#include "cl_log.h"
#include "cl_subject.h"

#define PUBLISH_EVERY_MS 2000

struct cl_sv_report {
    cl_sv *sv;
    cl_bus *bus;     /* NULL: no bus */
    cl_sub *list_sub;
    char status_subject[CL_SUBJECT_MAX];
    struct MHD_Daemon *daemon;
    int port;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool poked;
};

static char *status_text(cl_sv_report *r)
{
    cJSON *j = cl_sv_status_json(r->sv);
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

static void publish(cl_sv_report *r)
{
    char *s = status_text(r);
    if (s == NULL)
        return;
    /* While the bus is down (the supervisor may be restarting the
     * nats-server itself) the status waits for the next round. Best effort:
     * a status lost on the way is published again next round too. */
    if (cl_bus_is_connected(r->bus))
        cl_status_ignore(cl_bus_publish(r->bus, r->status_subject, s, strlen(s)));
    free(s);
}

static void on_list(cl_bus *bus, cl_msg *msg, void *closure)
{
    cl_sv_report *r = closure;
    char *s = status_text(r);
    if (s != NULL && cl_msg_reply(msg) != NULL)
        cl_status_ignore(cl_msg_respond(bus, msg, s, strlen(s))); /* the asker retries or times out */
    free(s);
    cl_msg_free(msg);
}

static void *report_main(void *arg)
{
    cl_sv_report *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += PUBLISH_EVERY_MS / 1000;
        while (!r->stop && !r->poked) {
            if (pthread_cond_timedwait(&r->cv, &r->mu, &until) != 0)
                break;
        }
        if (r->stop)
            break;
        r->poked = false;
        pthread_mutex_unlock(&r->mu);
        publish(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *type,
                                 char *body)
{
    const char *text = body ? body : "out of memory\n";
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(text), (void *)text, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    cl_sv_report *r = cls;
    (void)version;
    (void)upload;
    if (*con_cls == NULL) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    const char *plain = "text/plain; charset=utf-8";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_text(conn, 405, plain, strdup("use GET\n"));
    if (strcmp(url, "/metrics") == 0) {
        cl_buf b;
        cl_buf_init(&b);
        if (cl_sv_prometheus(r->sv, &b) != CL_OK || cl_buf_terminate(&b) != CL_OK) {
            cl_buf_deinit(&b);
            return send_text(conn, 500, plain, NULL);
        }
        return send_text(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
                         cl_buf_steal(&b, NULL));
    }
    if (strcmp(url, "/status") == 0)
        return send_text(conn, 200, "application/json", status_text(r));
    char *msg = malloc(700);
    if (msg != NULL)
        snprintf(msg, 700,
                 "No route for %.500s: a supervisor serves GET /metrics (Prometheus text) and "
                 "GET /status (JSON)\n",
                 url);
    return send_text(conn, 404, plain, msg);
}

cl_status cl_sv_report_start(cl_sv_report **out, cl_sv *sv, const cl_sv_report_opts *o,
                             cl_err *err)
{
    cl_sv_report *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    r->sv = sv;
    r->port = -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    cl_status s = CL_OK;
    if (o->nats_url != NULL) {
        cl_bus_opts bo;
        cl_bus_opts_init(&bo);
        bo.url = o->nats_url;
        bo.prefix = o->prefix;
        bo.name = "clipper-supervisor";
        bo.nkey_file = o->creds_file;
        bo.tls_ca_file = o->tls_ca_file;
        bo.tls_name = o->tls_name;
        bo.retry_forever = true;
        s = cl_bus_connect(&r->bus, &bo, err);
        char list[CL_SUBJECT_MAX];
        if (s == CL_OK)
            s = cl_subj_supervisor(r->status_subject, o->prefix, "status", err);
        if (s == CL_OK)
            s = cl_subj_supervisor(list, o->prefix, "list", err);
        if (s == CL_OK)
            s = cl_bus_subscribe(&r->list_sub, r->bus, list, NULL, on_list, r);
        if (s != CL_OK)
            s = cl_err_set(err, s, "cannot subscribe to %s", list);
        if (s == CL_OK) {
            int rc = pthread_create(&r->thread, NULL, report_main, r);
            if (rc != 0)
                s = cl_err_set(err, CL_ERR_NOMEM, "cannot start the status thread: %s",
                               strerror(rc));
            r->thread_started = rc == 0;
        }
    }
    if (s == CL_OK && o->metrics_port >= 0) {
        cl_httpd_opts ho = {
            .what = "the supervisor's metrics",
            .host = o->metrics_host ? o->metrics_host : "0.0.0.0",
            .port = o->metrics_port,
            .flags = MHD_USE_INTERNAL_POLLING_THREAD,
            .handler = on_http,
            .handler_cls = r,
            .connection_timeout_s = 10,
            .reuse_address = true,
        };
        s = cl_httpd_start(&r->daemon, &r->port, &ho, err);
    }
    if (s != CL_OK) {
        cl_sv_report_free(r);
        return s;
    }
    *out = r;
    return CL_OK;
}

int cl_sv_report_port(const cl_sv_report *r)
{
    return r ? r->port : -1;
}

void cl_sv_report_changed(cl_sv_report *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->poked = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void cl_sv_report_free(cl_sv_report *r)
{
    if (r == NULL)
        return;
    if (r->daemon != NULL)
        MHD_stop_daemon(r->daemon);
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->thread_started)
        pthread_join(r->thread, NULL);
    cl_sub_free(r->list_sub);
    cl_bus_free(r->bus);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
