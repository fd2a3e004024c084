/* Clipper's management REST (libmicrohttpd), translated into the admin
 * actor's NATS commands (cl_admin_http.h). Nothing here reads or writes
 * the cluster state: a request becomes one request to <p>.admin.<command>
 * and its reply envelope becomes the HTTP response, so the door works
 * whichever admin process answers.
 *
 * A request blocks its thread while the admin answers (up to the
 * timeout), so the daemon runs a thread per connection: a slow command
 * never holds up another client. Admin traffic is light. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "cl_admin_http.h"
#include "cl_httpd.h"
#include "cl_buf.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_subject.h"

#define CONNECTION_TIMEOUT_S 300 /* an idle keep-alive connection is closed after this */
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

struct cl_admin_http {
    cl_bus *bus; /* borrowed */
    struct MHD_Daemon *daemon;
    int port;
    atomic_int timeout_ms;
};

typedef struct {
    int route;
    const char *command; /* the command (static), for ROUTE_COMMAND and ROUTE_PING */
    bool method_ok;
    bool too_large;
    cl_buf body;
} http_req;

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

/* Sends the command to the admin and answers with its reply. */
static enum MHD_Result forward(cl_admin_http *h, struct MHD_Connection *conn, http_req *r)
{
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    if (cl_subj_admin(subject, cl_bus_prefix(h->bus), r->command, &err) != CL_OK) {
        char text[sizeof(err.msg) + 32];
        snprintf(text, sizeof(text), "Internal error: %s", err.msg);
        return send_text(conn, 500, text, NULL);
    }
    const char *body = r->route == ROUTE_PING ? "{}" : (r->body.data ? (char *)r->body.data : "");
    size_t len = r->route == ROUTE_PING ? 2 : r->body.len;
    int timeout_ms = atomic_load(&h->timeout_ms);
    cl_msg *reply = NULL;
    cl_status st = cl_bus_request(h->bus, subject, body, len, timeout_ms, &reply);
    if (st == CL_ERR_TOO_LARGE)
        return send_text(conn, 413, "The request body is larger than the bus takes", NULL);
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
        return send_text(conn, 503, text, NULL);
    }

    cJSON *env = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(env, "ok");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(env, "result");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(env, "error");
    enum MHD_Result ret;
    if (cJSON_IsTrue(ok) && result != NULL) {
        if (cJSON_IsString(result)) {
            ret = send_text(conn, 200, result->valuestring, NULL);
        } else {
            char *json = cl_json_print(result);
            ret = json ? send_text(conn, 200, json, NULL)
                       : send_text(conn, 500, "Internal error: out of memory", NULL);
            free(json);
        }
    } else if (cJSON_IsFalse(ok) && cJSON_IsString(error)) {
        ret = send_text(conn, 400, error->valuestring, NULL);
    } else {
        char text[CL_SUBJECT_MAX + 400];
        snprintf(text, sizeof(text),
                 "The admin actor on %s sent a reply that is not {\"ok\": ...}: %.300s", subject,
                 (const char *)cl_msg_data(reply));
        cl_warn("%s", text);
        ret = send_text(conn, 502, text, NULL);
    }
    cJSON_Delete(env);
    cl_msg_free(reply);
    return ret;
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
    if (r->route == ROUTE_NOT_FOUND)
        return not_found(conn, method, url);
    if (!r->method_ok)
        return wrong_method(conn, r, method);
    if (r->too_large)
        return too_large(conn);
    return forward(h, conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    http_req *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    cl_buf_deinit(&r->body);
    free(r);
}

cl_status cl_admin_http_start(cl_admin_http **out, cl_bus *bus, const char *host, int port,
                              cl_err *err)
{
    cl_admin_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    h->bus = bus;
    atomic_init(&h->timeout_ms, CL_ADMIN_HTTP_TIMEOUT_MS);
    /* A request waits for the admin's reply: a thread per connection, so
     * a slow command never holds up another client. */
    cl_httpd_opts ho = {
        .what = "the management REST",
        .host = host,
        .port = port,
        .flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO,
        .handler = on_request,
        .handler_cls = h,
        .completed = on_completed,
        .completed_cls = h,
        .connection_timeout_s = CONNECTION_TIMEOUT_S,
    };
    cl_status st = cl_httpd_start(&h->daemon, &h->port, &ho, err);
    if (st != CL_OK) {
        free(h);
        return st;
    }
    *out = h;
    return CL_OK;
}

int cl_admin_http_port(const cl_admin_http *h)
{
    return h->port;
}

void cl_admin_http_set_timeout(cl_admin_http *h, int timeout_ms)
{
    atomic_store(&h->timeout_ms, timeout_ms > 0 ? timeout_ms : CL_ADMIN_HTTP_TIMEOUT_MS);
}

void cl_admin_http_free(cl_admin_http *h)
{
    if (h == NULL)
        return;
    if (h->daemon != NULL)
        MHD_stop_daemon(h->daemon);
    free(h);
}
