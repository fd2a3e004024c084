/* Clipper's management REST (libmicrohttpd), translated into the admin
 * actor's NATS commands (cl_admin_http.h). Nothing here reads or writes
 * the cluster state: a request becomes one request to <p>.admin.<command>
 * and its reply envelope becomes the HTTP response, so the door works
 * whichever admin process answers.
 *
 * One MHD thread reads requests; a complete one is suspended and queued
 * for a pool of worker threads, which send it to the admin (a blocking
 * request, up to the timeout), keep the answer and resume the connection;
 * the MHD thread then sends it. So a connection costs no thread: the door
 * used to run a thread per connection, and libmicrohttpd closes, in that
 * mode, every connection over its limit as soon as it is accepted (a burst
 * of 5000 got 3980 empty answers); with one event loop, connections over
 * the limit wait in the listen backlog instead. A request that waited its
 * whole timeout in the queue is answered 503 without being sent. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "cl_admin_http.h"
#include "cl_httpd.h"
#include "cl_buf.h"
#include "cl_clock.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_subject.h"

/* Bodies over the cap but under this are read (and dropped) before the 413. */
#define DRAIN_MAX (16ULL * CL_ADMIN_HTTP_MAX_BODY)

/* Clipper's management routes (POST /admin/<command>); ping is GET. */
static const char *const commands[] = {
    "add_app",
    "delete_app",
    "add_model_links",
    "delete_model_links",
    "add_model",
    "set_model_version",
    "delete_versioned_model",
    "get_all_applications",
    "get_application",
    "get_linked_models",
    "get_all_models",
    "get_model",
    "get_all_containers",
    "get_container",
    "get_state",
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

enum route { ROUTE_NOT_FOUND, ROUTE_COMMAND, ROUTE_PING };

typedef struct http_req {
    struct http_req *next; /* in the workers' queue */
    struct MHD_Connection *conn;
    int route;
    const char *command; /* the command (static), for ROUTE_COMMAND and ROUTE_PING */
    bool method_ok;
    bool too_large;
    bool queued;   /* suspended, for a worker */
    bool answered; /* a worker left the answer below and resumed it */
    cl_buf body;
    uint64_t deadline_us; /* monotonic: the answer is due by then */
    unsigned status;
    char *text;
} http_req;

struct cl_admin_http {
    cl_bus *bus; /* borrowed */
    cl_httpd *door;
    atomic_int timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a request queued, or stopping */
    pthread_cond_t idle_cv; /* active dropped to 0 */
    http_req *head, **tail;
    bool stopping;
    size_t active; /* requests between their first call and completion */
    pthread_t workers[CL_ADMIN_HTTP_WORKERS];
    int n_workers;
};

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                 const char *allow)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    /* Clipper's management frontend labels every answer JSON, the plain
     * texts included; clients rely on the status, not the type. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* "/admin/<name>" or "/admin/<name>/": the route and its command. */
static int parse_route(const char *url, const char **command)
{
    static const char base[] = "/admin/";
    *command = NULL;
    if (strncmp(url, base, sizeof(base) - 1) != 0)
        return ROUTE_NOT_FOUND;
    const char *name = url + sizeof(base) - 1;
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '/')
        n--;
    if (n == 4 && strncmp(name, "ping", 4) == 0) {
        *command = "ping";
        return ROUTE_PING;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strlen(commands[i]) == n && strncmp(name, commands[i], n) == 0) {
            *command = commands[i];
            return ROUTE_COMMAND;
        }
    }
    return ROUTE_NOT_FOUND;
}

static enum MHD_Result not_found(struct MHD_Connection *conn, const char *method, const char *url)
{
    char text[2048];
    int off = snprintf(text, sizeof(text), "No route for %s %.600s. Routes: GET /admin/ping, "
                                           "POST /admin/<command> where <command> is one of: ",
                       method, url);
    for (size_t i = 0; i < N_COMMANDS && off > 0 && (size_t)off < sizeof(text); i++)
        off += snprintf(text + off, sizeof(text) - (size_t)off, "%s%s", i ? ", " : "",
                        commands[i]);
    return send_text(conn, 404, text, NULL);
}

static enum MHD_Result wrong_method(struct MHD_Connection *conn, const http_req *r,
                                    const char *method)
{
    const char *want = r->route == ROUTE_PING ? "GET" : "POST";
    char text[256];
    snprintf(text, sizeof(text), "Method %s is not allowed on /admin/%s; use %s", method,
             r->command, want);
    return send_text(conn, 405, text, want);
}

static enum MHD_Result too_large(struct MHD_Connection *conn)
{
    char text[128];
    snprintf(text, sizeof(text), "The request body is larger than %d bytes",
             CL_ADMIN_HTTP_MAX_BODY);
    return send_text(conn, 413, text, NULL);
}

/* Keeps the answer on r (text copied) for the MHD thread to send. */
static void answer(http_req *r, unsigned status, const char *text)
{
    r->text = strdup(text);
    r->status = r->text != NULL ? status : 500; /* NULL: "out of memory" is sent */
}

/* Sends the command to the admin and keeps its reply as r's answer. A
 * worker's thread. */
static void forward(cl_admin_http *h, http_req *r)
{
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    if (cl_subj_admin(subject, cl_bus_prefix(h->bus), r->command, &err) != CL_OK) {
        char text[sizeof(err.msg) + 32];
        snprintf(text, sizeof(text), "Internal error: %s", err.msg);
        answer(r, 500, text);
        return;
    }
    const char *body = r->route == ROUTE_PING ? "{}" : (r->body.data ? (char *)r->body.data : "");
    size_t len = r->route == ROUTE_PING ? 2 : r->body.len;
    int timeout_ms = atomic_load(&h->timeout_ms);
    uint64_t now = cl_mono_us();
    /* What is left of the request's time after its wait in the queue. */
    int left_ms = r->deadline_us > now ? (int)((r->deadline_us - now) / 1000) : 0;
    cl_msg *reply = NULL;
    cl_status st = left_ms > 0
                       ? cl_bus_request(h->bus, subject, body, len, left_ms, &reply)
                       : CL_ERR_TIMEOUT;
    if (st == CL_ERR_TOO_LARGE) {
        answer(r, 413, "The request body is larger than the bus takes");
        return;
    }
    if (st != CL_OK) {
        char text[CL_SUBJECT_MAX + 160];
        if (st == CL_ERR_NO_RESPONDERS)
            snprintf(text, sizeof(text),
                     "The admin actor does not answer on %s: no admin is running on this bus "
                     "(start one with 'clipper run admin')",
                     subject);
        else if (st == CL_ERR_TIMEOUT)
            snprintf(text, sizeof(text),
                     "The admin actor does not answer on %s: no reply within %d ms", subject,
                     timeout_ms);
        else
            snprintf(text, sizeof(text), "The admin actor does not answer on %s: %s", subject,
                     cl_status_text(st));
        cl_warn("%s", text);
        answer(r, 503, text);
        return;
    }

    cJSON *env = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(env, "ok");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(env, "result");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(env, "error");
    if (cJSON_IsTrue(ok) && result != NULL) {
        if (cJSON_IsString(result)) {
            answer(r, 200, result->valuestring);
        } else {
            char *json = cl_json_print(result);
            if (json != NULL)
                answer(r, 200, json);
            else
                answer(r, 500, "Internal error: out of memory");
            free(json);
        }
    } else if (cJSON_IsFalse(ok) && cJSON_IsString(error)) {
        answer(r, 400, error->valuestring);
    } else {
        char text[CL_SUBJECT_MAX + 400];
        snprintf(text, sizeof(text),
                 "The admin actor on %s sent a reply that is not {\"ok\": ...}: %.300s", subject,
                 (const char *)cl_msg_data(reply));
        cl_warn("%s", text);
        answer(r, 502, text);
    }
    cJSON_Delete(env);
    cl_msg_free(reply);
}

static void *worker_main(void *arg)
{
    cl_admin_http *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->head == NULL && !h->stopping)
            pthread_cond_wait(&h->work_cv, &h->mu);
        http_req *r = h->head;
        if (r == NULL) /* stopping, and nothing is left */
            break;
        h->head = r->next;
        if (h->head == NULL)
            h->tail = &h->head;
        bool stopping = h->stopping;
        pthread_mutex_unlock(&h->mu);
        if (stopping)
            answer(r, 503, "The management REST is stopping");
        else
            forward(h, r);
        r->answered = true;
        MHD_resume_connection(r->conn);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Suspends r's connection for a worker; false when the door is stopping
 * (the caller answers at once). */
static bool enqueue(cl_admin_http *h, struct MHD_Connection *conn, http_req *r)
{
    r->conn = conn;
    r->deadline_us = cl_mono_us() + (uint64_t)atomic_load(&h->timeout_ms) * 1000;
    r->next = NULL;
    pthread_mutex_lock(&h->mu);
    bool ok = !h->stopping && h->n_workers > 0;
    if (ok) {
        /* Suspended before a worker can see it, so its resume always finds
         * a suspended connection. */
        r->queued = true;
        MHD_suspend_connection(conn);
        *h->tail = r;
        h->tail = &r->next;
        pthread_cond_signal(&h->work_cv);
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    cl_admin_http *h = cls;
    http_req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return MHD_NO;
        cl_buf_init(&r->body);
        r->route = parse_route(url, &r->command);
        r->method_ok = strcmp(method, r->route == ROUTE_PING ? MHD_HTTP_METHOD_GET
                                                             : MHD_HTTP_METHOD_POST) == 0;
        *con_cls = r;
        pthread_mutex_lock(&h->mu);
        h->active++;
        pthread_mutex_unlock(&h->mu);
        if (r->route == ROUTE_COMMAND && r->method_ok) {
            /* A declared length far over the cap is refused before reading.
             * One just over it is read and dropped, then refused: a client
             * that sends its whole body before reading (Python's
             * http.client) would otherwise see a broken pipe, not the 413. */
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
            unsigned long long declared = cl != NULL ? strtoull(cl, NULL, 10) : 0;
            if (declared > CL_ADMIN_HTTP_MAX_BODY)
                r->too_large = true;
            if (declared > DRAIN_MAX)
                return too_large(conn);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!r->too_large && r->route == ROUTE_COMMAND && r->method_ok) {
            if (r->body.len + *upload_size > CL_ADMIN_HTTP_MAX_BODY ||
                cl_buf_append(&r->body, upload_data, *upload_size) != CL_OK) {
                r->too_large = true;
                cl_buf_deinit(&r->body);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->answered)
        return send_text(conn, r->status, r->text ? r->text : "Internal error: out of memory",
                         NULL);
    if (r->queued)
        return MHD_YES; /* resumed by a spurious wake-up: not answered yet */
    if (r->route == ROUTE_NOT_FOUND)
        return not_found(conn, method, url);
    if (!r->method_ok)
        return wrong_method(conn, r, method);
    if (r->too_large)
        return too_large(conn);
    if (!enqueue(h, conn, r))
        return send_text(conn, 503, "The management REST is stopping", NULL);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    cl_admin_http *h = cls;
    http_req *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    cl_buf_deinit(&r->body);
    free(r->text);
    free(r);
    pthread_mutex_lock(&h->mu);
    if (--h->active == 0)
        pthread_cond_broadcast(&h->idle_cv);
    pthread_mutex_unlock(&h->mu);
}

/* The door's refusals (connection limits, ambiguous body lengths): plain
 * texts labelled JSON, as every answer of this door (send_text). */
static char *render_error(int status, const char *error, const char *cause)
{
    (void)status;
    (void)error;
    return strdup(cause);
}

void cl_admin_http_opts_init(cl_admin_http_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = CL_ADMIN_HTTP_HOST;
    o->port = CL_ADMIN_HTTP_PORT;
    o->max_per_address = CL_ADMIN_HTTP_MAX_PER_ADDRESS;
    o->idle_timeout_s = CL_ADMIN_HTTP_IDLE_TIMEOUT_S;
}

cl_status cl_admin_http_start_with(cl_admin_http **out, cl_bus *bus,
                                   const cl_admin_http_opts *o, cl_err *err)
{
    cl_admin_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    h->bus = bus;
    atomic_init(&h->timeout_ms, CL_ADMIN_HTTP_TIMEOUT_MS);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->work_cv, NULL);
    pthread_cond_init(&h->idle_cv, NULL);
    h->tail = &h->head;
    cl_status st = CL_OK;
    char *token = NULL;
    for (int i = 0; i < CL_ADMIN_HTTP_WORKERS; i++) {
        int rc = pthread_create(&h->workers[i], NULL, worker_main, h);
        if (rc != 0) {
            st = cl_err_set(err, CL_ERR_NOMEM, "cannot start the management REST's threads: %s",
                            strerror(rc));
            goto fail;
        }
        h->n_workers++;
    }
    if (o->token_file != NULL) {
        st = cl_httpd_read_token(&token, o->token_file, "--http-token-file", err);
        if (st != CL_OK)
            goto fail;
    }
    cl_httpd_opts ho = {
        .what = "the management REST",
        .host = o->host ? o->host : CL_ADMIN_HTTP_HOST,
        .port = o->port,
        .flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME,
        .handler = on_request,
        .handler_cls = h,
        .completed = on_completed,
        .completed_cls = h,
        .connection_timeout_s = o->idle_timeout_s > 0 ? o->idle_timeout_s
                                                      : CL_ADMIN_HTTP_IDLE_TIMEOUT_S,
        .max_connections = o->max_connections,
        .default_max_connections = CL_ADMIN_HTTP_MAX_CONNECTIONS,
        .max_connections_option = "--http-max-connections",
        .max_per_address = o->max_per_address,
        .max_per_address_option = "--http-max-per-address",
        .render_error = render_error,
        .error_content_type = "application/json",
        .tls_cert_file = o->tls_cert_file,
        .tls_key_file = o->tls_key_file,
        .bearer_token = token,
    };
    st = cl_httpd_serve(&h->door, &ho, err);
    if (st != CL_OK)
        goto fail;
    cl_httpd_token_free(token); /* the door keeps only its hash */
    *out = h;
    return CL_OK;
fail:
    cl_httpd_token_free(token);
    cl_admin_http_free(h);
    return st;
}

cl_status cl_admin_http_start(cl_admin_http **out, cl_bus *bus, const char *host, int port,
                              cl_err *err)
{
    cl_admin_http_opts o;
    cl_admin_http_opts_init(&o);
    o.host = host;
    o.port = port;
    return cl_admin_http_start_with(out, bus, &o, err);
}

int cl_admin_http_port(const cl_admin_http *h)
{
    return cl_httpd_port(h->door);
}

void cl_admin_http_set_timeout(cl_admin_http *h, int timeout_ms)
{
    atomic_store(&h->timeout_ms, timeout_ms > 0 ? timeout_ms : CL_ADMIN_HTTP_TIMEOUT_MS);
}

void cl_admin_http_free(cl_admin_http *h)
{
    if (h == NULL)
        return;
    /* The workers finish the request each is sending and answer the
     * queued ones 503; new requests are answered 503 at once. Then every
     * suspended connection has been resumed, as MHD_stop_daemon needs. */
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->work_cv);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->n_workers; i++)
        pthread_join(h->workers[i], NULL);
    h->n_workers = 0;
    /* Let the answers go out. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 2;
    pthread_mutex_lock(&h->mu);
    while (h->door != NULL && h->active > 0)
        if (pthread_cond_timedwait(&h->idle_cv, &h->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&h->mu);
    cl_httpd_free(h->door);
    pthread_cond_destroy(&h->idle_cv);
    pthread_cond_destroy(&h->work_cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
