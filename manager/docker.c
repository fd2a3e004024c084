/* The Docker Engine REST client (cl_docker.h): one libcurl easy handle per
 * client, talking HTTP/1.1 over the engine's unix socket, JSON with cJSON.
 *
 * CURLcode and HTTP statuses are translated into cl_status here and go no
 * further; every message starts with what was being done ("starting
 * container X") so a caller can pass it on as it is. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <curl/curl.h>

#include "cl_buf.h"
#include "cl_docker.h"

#define API "/v1.41"
#define CONNECT_TIMEOUT_MS 3000L
#define CALL_TIMEOUT_MS 15000L
#define MAX_REPLY (16u * 1024u * 1024u)
#define ENGINE_HINT "is it running? (images/engine.sh starts one)"

struct cl_docker {
    CURL *curl;
    char *url;
    char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- pure helpers ------------------------------------------------------ */

cl_status cl_docker_socket_path(const char *url, const char *source, char *path, size_t size,
                                cl_err *err)
{
    char from[64] = "";
    if (source != NULL)
        snprintf(from, sizeof(from), " (from %s)", source);
    const char *p = NULL;
    if (strncmp(url, "unix://", 7) == 0)
        p = url + 7;
    else if (url[0] == '/')
        p = url;
    if (p == NULL) {
        const char *colon = strstr(url, "://");
        if (colon != NULL)
            return cl_err_set(err, CL_ERR_INVALID,
                              "the container engine address '%s'%s uses %.*s://, which is not "
                              "supported: the engine is reached through its unix socket only "
                              "(unix:///path/to/docker.sock)",
                              url, from, (int)(colon - url), url);
        return cl_err_set(err, CL_ERR_INVALID,
                          "the container engine address '%s'%s is not a unix socket address "
                          "(unix:///path/to/docker.sock)",
                          url, from);
    }
    if (p[0] != '/')
        return cl_err_set(err, CL_ERR_INVALID,
                          "the container engine address '%s'%s must name an absolute socket "
                          "path (unix:///path/to/docker.sock)",
                          url, from);
    size_t n = strlen(p);
    if (n >= size)
        return cl_err_set(err, CL_ERR_INVALID,
                          "the container engine socket path in '%s'%s is too long (%zu bytes, "
                          "at most %zu)",
                          url, from, n, size - 1);
    memcpy(path, p, n + 1);
    return CL_OK;
}

size_t cl_docker_demux(char *buf, size_t len, bool tty)
{
    if (tty)
        return len;
    size_t in = 0, out = 0;
    while (in < len) {
        const unsigned char *h = (const unsigned char *)buf + in;
        if (len - in < 8 || h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) {
            /* Not a frame: a raw stream (a TTY's), or what is left of one. */
            memmove(buf + out, buf + in, len - in);
            out += len - in;
            break;
        }
        size_t size = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
        in += 8;
        if (size > len - in)
            size = len - in; /* cut short: keep what came */
        memmove(buf + out, buf + in, size);
        out += size;
        in += size;
    }
    return out;
}

void cl_docker_error_text(const char *body, size_t len, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsString(m) && m->valuestring[0] != '\0') {
        snprintf(buf, size, "%s", m->valuestring);
    } else {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(buf, body, n);
        buf[n] = '\0';
        /* One line: the engine's text may end in a newline. */
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        if (n == 0)
            snprintf(buf, size, "no error text");
    }
    cJSON_Delete(j);
}

/* ---- transport ------------------------------------------------------------ */

static size_t on_data(char *data, size_t size, size_t nmemb, void *closure)
{
    cl_buf *b = closure;
    size_t n = size * nmemb;
    if (b->len + n > MAX_REPLY || cl_buf_append(b, data, n) != CL_OK)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    return n;
}

/* One request: method path (under /v1.41) with an optional JSON body.
 * On a transport failure, sets err ("<what>: cannot reach ...") and
 * returns its status; otherwise CL_OK with *http and the reply in reply
 * (NUL-terminated). */
static CL_MUST_USE cl_status request(cl_docker *d, const char *method, const char *path,
                                     const char *body, long timeout_ms, long *http, cl_buf *reply,
                                     const char *what, cl_err *err)
{
    cl_buf_reset(reply);
    char url[4096];
    if (snprintf(url, sizeof(url), "http://localhost" API "%s", path) >= (int)sizeof(url))
        return cl_err_set(err, CL_ERR_INVALID, "%s: request path too long", what);
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = d->curl;
    curl_easy_reset(c);
    struct curl_slist *headers = NULL;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->socket);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    if (strcmp(method, "GET") != 0) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, "Expect:");
        if (headers == NULL)
            return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
        }
    }
    CURLcode rc = curl_easy_perform(c);
    long os_errno = 0;
    curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
    curl_slist_free_all(headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    if (rc == CURLE_OK) {
        if (cl_buf_terminate(reply) != CL_OK)
            return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
        return CL_OK;
    }
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        (rc == CURLE_GOT_NOTHING && reply->len == 0)) {
        const char *why = os_errno != 0 ? strerror((int)os_errno)
                                        : (errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return cl_err_set(err, CL_ERR_UNREACHABLE,
                          "%s: cannot reach the container engine at %s: connecting to %s: %s; "
                          ENGINE_HINT,
                          what, d->url, d->socket, why);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return cl_err_set(err, CL_ERR_TIMEOUT,
                          "%s: the container engine at %s did not answer within %.1f s", what,
                          d->url, (double)timeout_ms / 1000.0);
    if (rc == CURLE_WRITE_ERROR)
        return cl_err_set(err, CL_ERR_TOO_LARGE,
                          "%s: the container engine's reply is larger than %u bytes", what,
                          MAX_REPLY);
    return cl_err_set(err, CL_ERR_IO, "%s: talking to the container engine at %s: %s", what,
                      d->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/* The error of an HTTP status >= 300: "<what>: <engine's message> (HTTP n)". */
static CL_MUST_USE cl_status http_error(long http, const cl_buf *reply, const char *what,
                                        cl_err *err)
{
    char text[400];
    cl_docker_error_text((const char *)reply->data, reply->len, text, sizeof(text));
    cl_status s = CL_ERR_IO;
    if (http == 404)
        s = CL_ERR_NOT_FOUND;
    else if (http == 409 || strstr(text, "already in use") != NULL ||
             strstr(text, "already exists") != NULL || strstr(text, "state improper") != NULL)
        s = CL_ERR_CONFLICT; /* podman answers these with 500 */
    else if (http == 400)
        s = CL_ERR_INVALID;
    return cl_err_set(err, s, "%s: %s (HTTP %ld)", what, text, http);
}

/* A request whose reply is a JSON value (or nothing) on success (2xx, or
 * 304: already so, as the engine answers starting a running container):
 * parses it into *json when json is not NULL. */
static CL_MUST_USE cl_status call(cl_docker *d, const char *method, const char *path,
                                  const char *body, long timeout_ms, cJSON **json, const char *what,
                                  cl_err *err)
{
    cl_buf reply;
    cl_buf_init(&reply);
    long http = 0;
    cl_status s = request(d, method, path, body, timeout_ms, &http, &reply, what, err);
    if (s != CL_OK)
        goto out;
    if (http != 304 && (http < 200 || http >= 300)) {
        s = http_error(http, &reply, what, err);
        goto out;
    }
    if (json != NULL) {
        *json = cJSON_ParseWithLength((const char *)reply.data, reply.len);
        if (*json == NULL)
            s = cl_err_set(err, CL_ERR_IO, "%s: the container engine's reply is not JSON: %.80s",
                           what, reply.len ? (const char *)reply.data : "(empty)");
    }
out:
    cl_buf_deinit(&reply);
    return s;
}

/* path + a URL-escaped id: "/containers/<id><rest>". */
static CL_MUST_USE cl_status object_path(cl_docker *d, char *out, size_t size, const char *kind,
                                         const char *id, const char *rest, cl_err *err)
{
    char *esc = curl_easy_escape(d->curl, id, 0);
    if (esc == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    int n = snprintf(out, size, "/%s/%s%s", kind, esc, rest ? rest : "");
    curl_free(esc);
    if (n < 0 || (size_t)n >= size)
        return cl_err_set(err, CL_ERR_INVALID, "the %s name '%.100s' is too long", kind, id);
    return CL_OK;
}

/* call() on "/<kind>/<id, URL-escaped><rest>". */
static CL_MUST_USE cl_status object_call(cl_docker *d, const char *method, const char *kind,
                                         const char *id, const char *rest, long timeout_ms,
                                         cJSON **json, const char *what, cl_err *err)
{
    char path[512];
    cl_status s = object_path(d, path, sizeof(path), kind, id, rest, err);
    if (s != CL_OK)
        return s;
    return call(d, method, path, NULL, timeout_ms, json, what, err);
}

static void copy_string(const cJSON *o, const char *key, char *dst, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(dst, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* ---- client ------------------------------------------------------------------ */

cl_status cl_docker_new(cl_docker **out, const char *url, cl_err *err)
{
    const char *source = "--docker-host";
    if (url == NULL || url[0] == '\0') {
        url = getenv("DOCKER_HOST");
        source = "DOCKER_HOST";
        if (url == NULL || url[0] == '\0') {
            url = CL_DOCKER_DEFAULT_HOST;
            source = NULL;
        }
    }
    cl_docker *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    cl_status s = cl_docker_socket_path(url, source, d->socket, sizeof(d->socket), err);
    if (s != CL_OK)
        goto fail;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        s = cl_err_set(err, CL_ERR_IO, "cannot initialise libcurl: %s",
                       curl_easy_strerror(global_rc));
        goto fail;
    }
    d->url = strdup(url);
    d->curl = curl_easy_init();
    if (d->url == NULL || d->curl == NULL) {
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = d;
    return CL_OK;
fail:
    cl_docker_free(d);
    return s;
}

void cl_docker_free(cl_docker *d)
{
    if (d == NULL)
        return;
    if (d->curl != NULL)
        curl_easy_cleanup(d->curl);
    free(d->url);
    free(d);
}

const char *cl_docker_url(const cl_docker *d)
{
    return d->url;
}

cl_status cl_docker_ping(cl_docker *d, cl_err *err)
{
    return call(d, "GET", "/_ping", NULL, CALL_TIMEOUT_MS, NULL,
                "asking the container engine whether it runs", err);
}

cl_status cl_docker_create(cl_docker *d, const char *name, const cJSON *config, char *id,
                           size_t id_size, cl_err *err)
{
    char what[320];
    snprintf(what, sizeof(what), "creating container %s", name);
    char *body = cJSON_PrintUnformatted(config);
    char *esc = curl_easy_escape(d->curl, name, 0);
    cJSON *reply = NULL;
    cl_status s;
    if (body == NULL || esc == NULL) {
        s = cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
        goto out;
    }
    char path[600];
    if (snprintf(path, sizeof(path), "/containers/create?name=%s", esc) >= (int)sizeof(path)) {
        s = cl_err_set(err, CL_ERR_INVALID, "%s: the name is too long", what);
        goto out;
    }
    s = call(d, "POST", path, body, CALL_TIMEOUT_MS, &reply, what, err);
    /* The engine's part of the message, after "<what>: ". */
    const char *engine_said = err != NULL && strlen(err->msg) > strlen(what) + 2
                                  ? err->msg + strlen(what) + 2
                                  : "";
    if (s == CL_ERR_NOT_FOUND && strstr(engine_said, "image") != NULL) {
        const cJSON *image = cJSON_GetObjectItemCaseSensitive(config, "Image");
        char engine[400];
        snprintf(engine, sizeof(engine), "%s", engine_said);
        s = cl_err_set(err, CL_ERR_NOT_FOUND,
                       "%s: the container engine at %s has no image '%s'; build the images "
                       "with images/build.sh (%s)",
                       what, d->url, cJSON_IsString(image) ? image->valuestring : "?", engine);
        goto out;
    }
    if (s != CL_OK)
        goto out;
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(reply, "Id");
    if (!cJSON_IsString(cid) || cid->valuestring[0] == '\0') {
        s = cl_err_set(err, CL_ERR_IO, "%s: the container engine's reply has no \"Id\"", what);
        goto out;
    }
    if (strlen(cid->valuestring) >= id_size) {
        s = cl_err_set(err, CL_ERR_IO, "%s: the container id '%s' is too long", what,
                       cid->valuestring);
        goto out;
    }
    snprintf(id, id_size, "%s", cid->valuestring);
out:
    cJSON_Delete(reply);
    free(body);
    curl_free(esc);
    return s;
}

/* POST /containers/<id>/<action><query>. */
static CL_MUST_USE cl_status container_post(cl_docker *d, const char *id, const char *action,
                                            const char *query, long timeout_ms, const char *what,
                                            cl_err *err)
{
    char rest[128];
    snprintf(rest, sizeof(rest), "/%s%s", action, query ? query : "");
    return object_call(d, "POST", "containers", id, rest, timeout_ms, NULL, what, err);
}

cl_status cl_docker_start(cl_docker *d, const char *id, cl_err *err)
{
    char what[320];
    snprintf(what, sizeof(what), "starting container %s", id);
    return container_post(d, id, "start", NULL, CALL_TIMEOUT_MS, what, err);
}

cl_status cl_docker_stop(cl_docker *d, const char *id, int timeout_s, cl_err *err)
{
    char what[320], query[32];
    snprintf(what, sizeof(what), "stopping container %s", id);
    if (timeout_s < 0)
        timeout_s = 0;
    snprintf(query, sizeof(query), "?t=%d", timeout_s);
    return container_post(d, id, "stop", query, CALL_TIMEOUT_MS + timeout_s * 1000L, what, err);
}

cl_status cl_docker_kill(cl_docker *d, const char *id, const char *signal, cl_err *err)
{
    char what[320], query[48];
    snprintf(what, sizeof(what), "sending %s to container %s", signal, id);
    char *esc = curl_easy_escape(d->curl, signal, 0);
    if (esc == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    int n = snprintf(query, sizeof(query), "?signal=%s", esc);
    curl_free(esc);
    if (n < 0 || (size_t)n >= sizeof(query))
        return cl_err_set(err, CL_ERR_INVALID, "%s: bad signal name", what);
    return container_post(d, id, "kill", query, CALL_TIMEOUT_MS, what, err);
}

cl_status cl_docker_remove(cl_docker *d, const char *id, bool force, cl_err *err)
{
    char what[320];
    snprintf(what, sizeof(what), "removing container %s", id);
    return object_call(d, "DELETE", "containers", id, force ? "?force=true&v=true" : "?v=true",
                       CALL_TIMEOUT_MS, NULL, what, err);
}

cl_status cl_docker_inspect(cl_docker *d, const char *id, cl_docker_state *out, cl_err *err)
{
    char what[320];
    snprintf(what, sizeof(what), "inspecting container %s", id);
    cJSON *j = NULL;
    cl_status s = object_call(d, "GET", "containers", id, "/json", CALL_TIMEOUT_MS, &j, what, err);
    if (s != CL_OK)
        return s;
    memset(out, 0, sizeof(*out));
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(j, "State");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(j, "Config");
    if (!cJSON_IsObject(state)) {
        cJSON_Delete(j);
        return cl_err_set(err, CL_ERR_IO, "%s: the container engine's reply has no \"State\"",
                          what);
    }
    copy_string(j, "Id", out->id, sizeof(out->id));
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "Name");
    const char *nm = cJSON_IsString(name) ? name->valuestring : "";
    snprintf(out->name, sizeof(out->name), "%s", nm[0] == '/' ? nm + 1 : nm);
    copy_string(state, "Status", out->status, sizeof(out->status));
    copy_string(state, "Error", out->error, sizeof(out->error));
    out->running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Running"));
    out->oom_killed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "OOMKilled"));
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(state, "ExitCode");
    out->exit_code = cJSON_IsNumber(code) ? code->valueint : 0;
    out->tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(config, "Tty"));
    copy_string(config, "Image", out->image, sizeof(out->image));
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(j, "HostConfig");
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(host, "Memory");
    const cJSON *cpus = cJSON_GetObjectItemCaseSensitive(host, "NanoCpus");
    out->memory_limit = cJSON_IsNumber(mem) ? (int64_t)mem->valuedouble : 0;
    out->nano_cpus = cJSON_IsNumber(cpus) ? (int64_t)cpus->valuedouble : 0;
    cJSON_Delete(j);
    return CL_OK;
}

cl_status cl_docker_list(cl_docker *d, const char *const *labels, cl_docker_container **out,
                         size_t *count, cl_err *err)
{
    *out = NULL;
    *count = 0;
    const char *what = "listing containers";
    cJSON *filters = cJSON_CreateObject();
    cJSON *wanted = cJSON_AddArrayToObject(filters, "label");
    for (size_t i = 0; labels != NULL && labels[i] != NULL; i++)
        cJSON_AddItemToArray(wanted, cJSON_CreateString(labels[i]));
    /* {"label": ["k=v", ...]}: Docker reads this older list form as well as
     * its map form, and podman reads only the list form. */
    char *text = cJSON_PrintUnformatted(filters);
    cJSON_Delete(filters);
    char *esc = text ? curl_easy_escape(d->curl, text, 0) : NULL;
    free(text);
    if (esc == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
    cl_buf path;
    cl_buf_init(&path);
    cl_status s = cl_buf_printf(&path, "/containers/json?all=true&filters=%s", esc);
    curl_free(esc);
    if (s == CL_OK)
        s = cl_buf_terminate(&path);
    if (s != CL_OK) {
        cl_buf_deinit(&path);
        return cl_err_set(err, s, "%s: out of memory", what);
    }
    cJSON *j = NULL;
    s = call(d, "GET", (const char *)path.data, NULL, CALL_TIMEOUT_MS, &j, what, err);
    cl_buf_deinit(&path);
    if (s != CL_OK)
        return s;
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return cl_err_set(err, CL_ERR_IO, "%s: the container engine's reply is not a list", what);
    }
    size_t n = (size_t)cJSON_GetArraySize(j);
    cl_docker_container *list = n ? calloc(n, sizeof(*list)) : NULL;
    if (n > 0 && list == NULL) {
        cJSON_Delete(j);
        return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
    }
    size_t k = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, j)
    {
        cl_docker_container *c = &list[k++];
        copy_string(o, "Id", c->id, sizeof(c->id));
        copy_string(o, "State", c->state, sizeof(c->state));
        copy_string(o, "Image", c->image, sizeof(c->image));
        const cJSON *names = cJSON_GetObjectItemCaseSensitive(o, "Names");
        const cJSON *first = cJSON_GetArrayItem(names, 0);
        const char *nm = cJSON_IsString(first) ? first->valuestring : "";
        snprintf(c->name, sizeof(c->name), "%s", nm[0] == '/' ? nm + 1 : nm);
        const cJSON *lab = cJSON_GetObjectItemCaseSensitive(o, "Labels");
        c->labels = cJSON_IsObject(lab) ? cJSON_Duplicate(lab, true) : cJSON_CreateObject();
    }
    cJSON_Delete(j);
    *out = list;
    *count = n;
    return CL_OK;
}

void cl_docker_list_free(cl_docker_container *list, size_t count)
{
    for (size_t i = 0; list != NULL && i < count; i++)
        cJSON_Delete(list[i].labels);
    free(list);
}

const char *cl_docker_label(const cl_docker_container *c, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->labels, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

cl_status cl_docker_logs(cl_docker *d, const char *id, int tail, char **out, cl_err *err)
{
    *out = NULL;
    cl_docker_state st;
    cl_status s = cl_docker_inspect(d, id, &st, err);
    if (s != CL_OK)
        return s;
    char what[320], query[96], path[512];
    snprintf(what, sizeof(what), "reading the log of container %s", id);
    if (tail > 0)
        snprintf(query, sizeof(query), "/logs?stdout=true&stderr=true&tail=%d", tail);
    else
        snprintf(query, sizeof(query), "/logs?stdout=true&stderr=true&tail=all");
    s = object_path(d, path, sizeof(path), "containers", id, query, err);
    if (s != CL_OK)
        return s;
    cl_buf reply;
    cl_buf_init(&reply);
    long http = 0;
    s = request(d, "GET", path, NULL, CALL_TIMEOUT_MS, &http, &reply, what, err);
    if (s == CL_OK && (http < 200 || http >= 300))
        s = http_error(http, &reply, what, err);
    if (s == CL_OK) {
        reply.len = cl_docker_demux((char *)reply.data, reply.len, st.tty);
        s = cl_buf_terminate(&reply);
        if (s == CL_OK)
            *out = cl_buf_steal(&reply, NULL);
        else
            cl_err_set(err, s, "%s: out of memory", what);
    }
    cl_buf_deinit(&reply);
    return s;
}

cl_status cl_docker_image_check(cl_docker *d, const char *image, cl_err *err)
{
    char what[320], path[512];
    snprintf(what, sizeof(what), "looking up image %s", image);
    /* Image names keep their '/' in the path: /images/clipper/base:latest/json. */
    if (snprintf(path, sizeof(path), "/images/%s/json", image) >= (int)sizeof(path) ||
        strpbrk(image, "?#% ") != NULL)
        return cl_err_set(err, CL_ERR_INVALID, "'%.100s' is not an image name", image);
    cl_status s = call(d, "GET", path, NULL, CALL_TIMEOUT_MS, NULL, what, err);
    if (s == CL_ERR_NOT_FOUND)
        return cl_err_set(err, CL_ERR_NOT_FOUND,
                          "the container engine at %s has no image '%s'; build the images with "
                          "images/build.sh",
                          d->url, image);
    return s;
}

cl_status cl_docker_network_inspect(cl_docker *d, const char *name, cl_err *err)
{
    char what[320];
    snprintf(what, sizeof(what), "looking up network %s", name);
    return object_call(d, "GET", "networks", name, NULL, CALL_TIMEOUT_MS, NULL, what, err);
}

cl_status cl_docker_network_create(cl_docker *d, const char *name, const cJSON *labels,
                                   cl_err *err)
{
    char what[320];
    snprintf(what, sizeof(what), "creating network %s", name);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "Name", name);
    cJSON_AddStringToObject(body, "Driver", "bridge");
    /* Docker answers a second network of one name with 201 unless asked. */
    cJSON_AddBoolToObject(body, "CheckDuplicate", true);
    if (labels != NULL)
        cJSON_AddItemToObject(body, "Labels", cJSON_Duplicate(labels, true));
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (text == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
    cl_status s = call(d, "POST", "/networks/create", text, CALL_TIMEOUT_MS, NULL, what, err);
    free(text);
    return s;
}

cl_status cl_docker_network_remove(cl_docker *d, const char *name, cl_err *err)
{
    char what[320];
    snprintf(what, sizeof(what), "removing network %s", name);
    return object_call(d, "DELETE", "networks", name, NULL, CALL_TIMEOUT_MS, NULL, what, err);
}
