/* The frontend's HTTP door (libmicrohttpd), Clipper's query REST:
 *
 *   POST /<app>/predict[/]   predict body -> Clipper's response
 *   POST /<app>/update[/]    feedback body -> "Feedback received? 1"
 *   GET  /metrics            Clipper's metrics JSON
 *   anything else            404 {"error": "Not found", ...}
 *
 * Every response is Content-Type: application/json, as in Clipper. A
 * prediction suspends its connection (MHD_ALLOW_SUSPEND_RESUME) and the
 * thread that completes the query resumes it, so no thread ever waits for
 * a model. By default the door has no thread of its own: the frontend's io
 * thread runs it on its bus loop (frontend.c), so a query read from HTTP,
 * its task, its result and its reply take no thread switch in the
 * frontend, and the tasks of every query read in a turn share one message
 * per model version, as the NATS queries' do. Bodies are capped (413 beyond opts.max_body). The door
 * itself (cl_httpd.h) limits connections in all and per client address,
 * closes idle ones, and refuses ambiguous body lengths, in Clipper's error
 * JSON, before a request gets here. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "cl_clock.h"
#include "cl_log.h"
#include "cl_httpd.h"
#include "fe_core.h"

#define OOM_BODY "{\"error\":\"Internal error\",\"cause\":\"The frontend ran out of memory\"}"

enum route { ROUTE_NOT_FOUND, ROUTE_PREDICT, ROUTE_UPDATE, ROUTE_METRICS };

struct fe_http {
    cl_frontend *fe;
    cl_httpd *door;
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;
    size_t active; /* requests between their first call and completion */
};

struct fe_http_req {
    fe_http *h;
    struct MHD_Connection *conn;
    int route;
    char *app;
    char *what; /* "METHOD url", for the 404 text */
    cl_buf body;
    bool too_large;
    bool suspended;
    int status; /* the reply, once complete (set by cl_fe_http_complete) */
    char *reply;
};

static enum MHD_Result send_reply(struct MHD_Connection *conn, int status, char *body)
{
    if (body == NULL) {
        status = 500;
        body = strdup(OOM_BODY);
        if (body == NULL)
            return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *error,
                                  const char *cause)
{
    return send_reply(conn, status, cl_fe_encode_error(error, cause));
}

/* Splits "/<app>/predict[/]" and "/<app>/update[/]". */
static int parse_route(const char *method, const char *url, char **app)
{
    *app = NULL;
    if (strcmp(url, "/metrics") == 0 || strcmp(url, "/metrics/") == 0)
        return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ? ROUTE_METRICS : ROUTE_NOT_FOUND;
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0 || url[0] != '/')
        return ROUTE_NOT_FOUND;
    const char *name = url + 1;
    const char *slash = strchr(name, '/');
    if (slash == NULL || slash == name)
        return ROUTE_NOT_FOUND;
    const char *verb = slash + 1;
    int route = ROUTE_NOT_FOUND;
    if (strcmp(verb, "predict") == 0 || strcmp(verb, "predict/") == 0)
        route = ROUTE_PREDICT;
    else if (strcmp(verb, "update") == 0 || strcmp(verb, "update/") == 0)
        route = ROUTE_UPDATE;
    if (route != ROUTE_NOT_FOUND)
        *app = strndup(name, (size_t)(slash - name));
    return *app != NULL ? route : ROUTE_NOT_FOUND;
}

static enum MHD_Result not_found(fe_http_req *r)
{
    char cause[700];
    snprintf(cause, sizeof(cause),
             "No route for %.600s. Routes: POST /<app>/predict, POST /<app>/update, "
             "GET /metrics",
             r->what ? r->what : "this request");
    return send_error(r->conn, 404, "Not found", cause);
}

static enum MHD_Result too_large(fe_http_req *r)
{
    char cause[200];
    snprintf(cause, sizeof(cause), "The request body is larger than %zu bytes",
             r->h->fe->opts.max_body);
    return send_error(r->conn, 413, "Request too large", cause);
}

/* The router's part needs a NATS request: suspended, as a prediction, and
 * resumed by the exporter's thread (fe_exporter.c), which lives as long as
 * the HTTP server (started before it, freed after it). */
static enum MHD_Result metrics(fe_http_req *r)
{
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    cl_fe_exporter_json(r->h->fe->exporter, r);
    return MHD_YES;
}

static enum MHD_Result predict(fe_http_req *r)
{
    cl_frontend *fe = r->h->fe;
    cl_fe_prep prep;
    cl_fe_reply reply;
    const char *body = r->body.data ? (const char *)r->body.data : "";
    if (!cl_fe_prepare(fe, r->app, body, r->body.len, &prep, &reply))
        return send_reply(r->conn, reply.status, reply.body);
    /* Suspend before the query becomes visible to the threads that may
     * complete it; they resume the connection with the reply. */
    prep.q->http = r;
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    if (cl_fe_door_on_loop(fe)) {
        /* On the io thread: the task joins the turn's batches, published
         * at the end of the turn with the NATS queries' tasks. */
        if (!cl_fe_commit(fe, &prep, &fe->io_ob, &reply))
            cl_fe_http_complete(r, reply.status, reply.body);
        return MHD_YES;
    }
    cl_fe_outbox ob;
    cl_fe_outbox_init(&ob);
    if (!cl_fe_commit(fe, &prep, &ob, &reply))
        cl_fe_http_complete(r, reply.status, reply.body);
    cl_fe_outbox_flush(fe, &ob);
    cl_fe_outbox_deinit(&ob);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    fe_http *h = cls;
    fe_http_req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return MHD_NO;
        r->h = h;
        r->conn = conn;
        cl_buf_init(&r->body);
        r->route = parse_route(method, url, &r->app);
        if (asprintf(&r->what, "%s %s", method, url) < 0)
            r->what = NULL;
        *con_cls = r;
        pthread_mutex_lock(&h->mu);
        h->active++;
        pthread_mutex_unlock(&h->mu);
        if (r->route == ROUTE_PREDICT || r->route == ROUTE_UPDATE) {
            /* A declared length over the cap is refused before reading. */
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl != NULL && strtoull(cl, NULL, 10) > h->fe->opts.max_body) {
                r->too_large = true;
                return too_large(r);
            }
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!r->too_large && r->route != ROUTE_NOT_FOUND) {
            if (r->body.len + *upload_size > h->fe->opts.max_body ||
                cl_buf_append(&r->body, upload_data, *upload_size) != CL_OK) {
                r->too_large = true;
                cl_buf_deinit(&r->body);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->suspended) {
        /* Resumed: the reply is ready. */
        char *reply = r->reply;
        r->reply = NULL;
        return send_reply(conn, r->status, reply);
    }
    if (r->route == ROUTE_NOT_FOUND)
        return not_found(r);
    if (r->route == ROUTE_METRICS)
        return metrics(r);
    if (r->too_large)
        return too_large(r);
    if (atomic_load(&h->fe->stop_intake))
        return send_error(conn, 503, "Service unavailable", "The frontend is shutting down");
    if (r->route == ROUTE_UPDATE) {
        cl_fe_reply reply = cl_fe_update(h->fe, r->app, (const char *)r->body.data,
                                         r->body.len);
        return send_reply(conn, reply.status, reply.body);
    }
    return predict(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    fe_http *h = cls;
    fe_http_req *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    free(r->reply);
    free(r->app);
    free(r->what);
    cl_buf_deinit(&r->body);
    free(r);
    pthread_mutex_lock(&h->mu);
    if (--h->active == 0)
        pthread_cond_broadcast(&h->idle_cv);
    pthread_mutex_unlock(&h->mu);
}

void cl_fe_http_complete(fe_http_req *req, int status, char *body)
{
    req->status = status;
    req->reply = body;
    MHD_resume_connection(req->conn);
}

/* The door's refusals (connection limits, ambiguous body lengths) in
 * Clipper's error JSON, like every other answer of this port. */
static char *render_error(int status, const char *error, const char *cause)
{
    (void)status;
    return cl_fe_encode_error(error, cause);
}

cl_status cl_fe_http_start(fe_http **out, cl_frontend *fe, cl_err *err)
{
    const cl_frontend_opts *o = &fe->opts;
    fe_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    h->fe = fe;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->idle_cv, NULL);
    char *token = NULL;
    if (o->query_token_file != NULL) {
        cl_status st = cl_httpd_read_token(&token, o->query_token_file, "--query-token-file",
                                           err);
        if (st != CL_OK) {
            cl_fe_http_free(h);
            return st;
        }
    }
    cl_httpd_opts ho = {
        .what = "HTTP queries",
        .host = o->http_host,
        .port = o->http_port,
        /* Threads of its own, or run by the io thread's loop (epoll, and
         * an ITC so that a resume from another thread wakes that loop). */
        .flags = o->http_threads > 0
                     ? MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME
                     : MHD_USE_EPOLL | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME,
        .handler = on_request,
        .handler_cls = h,
        .completed = on_completed,
        .completed_cls = h,
        .connection_timeout_s = o->http_idle_timeout_s,
        .thread_pool = o->http_threads > 0 ? (unsigned)o->http_threads : 0,
        .reuse_address = true,
        .max_connections = o->http_max_connections,
        .default_max_connections = CL_FRONTEND_HTTP_MAX_CONNECTIONS,
        .max_connections_option = "--http-max-connections",
        .max_per_address = o->http_max_per_address,
        .max_per_address_option = "--http-max-per-address",
        .render_error = render_error,
        .error_content_type = "application/json",
        .tls_cert_file = o->tls_cert_file,
        .tls_key_file = o->tls_key_file,
        .bearer_token = token,
    };
    cl_status st = cl_httpd_serve(&h->door, &ho, err);
    cl_httpd_token_free(token); /* the door keeps only its hash */
    if (st != CL_OK) {
        cl_fe_http_free(h);
        return st;
    }
    *out = h;
    return CL_OK;
}

int cl_fe_http_poll_fd(const fe_http *h)
{
    return cl_httpd_poll_fd(h->door);
}

void cl_fe_http_run(fe_http *h)
{
    cl_httpd_run(h->door);
}

int cl_fe_http_wait_ms(fe_http *h, int max_ms)
{
    return cl_httpd_wait_ms(h->door, max_ms);
}

int cl_fe_http_port(const fe_http *h)
{
    return cl_httpd_port(h->door);
}

bool cl_frontend_query_door_stats(const cl_frontend *fe, cl_frontend_door_stats *out)
{
    if (fe == NULL)
        return false;
    /* fe->http is set and cleared under fe->mu (frontend.c): a scrape on
     * the exporter's thread may ask while the frontend starts or stops. */
    cl_frontend *m = (cl_frontend *)fe;
    cl_httpd_stats st;
    pthread_mutex_lock(&m->mu);
    bool on = fe->http != NULL;
    if (on)
        cl_httpd_get_stats(fe->http->door, &st);
    pthread_mutex_unlock(&m->mu);
    if (on)
        *out = (cl_frontend_door_stats){.connections = st.connections,
                                        .max_connections = st.max_connections,
                                        .max_per_address = st.max_per_address,
                                        .refused = st.refused,
                                        .rejected = st.rejected};
    return on;
}

void cl_fe_http_wait_idle(fe_http *h, int timeout_ms)
{
    uint64_t until = cl_wall_us() + (uint64_t)timeout_ms * 1000;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000),
                          .tv_nsec = (long)(until % 1000000) * 1000};
    pthread_mutex_lock(&h->mu);
    while (h->active > 0)
        if (pthread_cond_timedwait(&h->idle_cv, &h->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&h->mu);
}

void cl_fe_http_free(fe_http *h)
{
    if (h == NULL)
        return;
    cl_httpd_free(h->door);
    pthread_cond_destroy(&h->idle_cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
