/* The Kubernetes API client (cl_kube.h): credentials from a kubeconfig or
 * the pod's service account, one libcurl easy handle per client (HTTPS,
 * HTTP/1.1), JSON with cJSON, YAML with libyaml, base64 with OpenSSL.
 *
 * CURLcode and HTTP statuses become cl_status here and go no further; each
 * message starts with what was being done, so callers pass it on as it is. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <xxhash.h>
#include <yaml.h>

#include "cl_buf.h"
#include "cl_kube.h"
#include "cl_log.h"

#define CONNECT_TIMEOUT_MS 3000L
#define CALL_TIMEOUT_MS 15000L
#define WATCH_SERVER_TIMEOUT_S 240 /* the server ends each watch after this */
#define WATCH_TIMEOUT_MS ((WATCH_SERVER_TIMEOUT_S + 30) * 1000L)
#define MAX_REPLY (64u * 1024u * 1024u)
#define MAX_LINE (4u * 1024u * 1024u) /* one watch event */
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 5000

/* Bytes: inline certificate data, decoded. */
typedef struct {
    unsigned char *data;
    size_t len;
} blob;

/* What a request needs to authenticate, shared by clones (refcounted). */
typedef struct {
    int refs;
    pthread_mutex_t mu; /* token and token_mtime (a token file is re-read) */
    char *server;       /* without a trailing '/' */
    char *ns;
    char *source;
    char *ca_file;
    blob ca;
    bool insecure;
    char *token;
    char *token_file;
    struct timespec token_mtime;
    char *cert_file;
    blob cert;
    char *key_file;
    blob key;
} creds;

struct cl_kube {
    CURL *curl;
    creds *c;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- YAML ------------------------------------------------------------- */

/* Adds v under the container on top of the stack (an array, or an object
 * whose key is pending). */
static bool yaml_attach(cJSON *top, char **key, cJSON *v)
{
    if (cJSON_IsArray(top))
        return cJSON_AddItemToArray(top, v);
    if (*key == NULL)
        return false;
    bool ok = cJSON_AddItemToObject(top, *key, v);
    free(*key);
    *key = NULL;
    return ok;
}

cl_status cl_kube_yaml_parse(const char *text, size_t len, cJSON **out, cl_err *err)
{
    *out = NULL;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    enum { MAX_DEPTH = 64 };
    cJSON *stack[MAX_DEPTH];
    char *keys[MAX_DEPTH];
    int depth = 0;
    cJSON *root = NULL;
    cl_status s = CL_OK;
    bool done = false;
    while (!done && s == CL_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            s = cl_err_set(err, CL_ERR_INVALID, "YAML syntax error at line %zu, column %zu: %s",
                           p.problem_mark.line + 1, p.problem_mark.column + 1,
                           p.problem ? p.problem : "unknown problem");
            break;
        }
        cJSON *v = NULL;
        bool open = false;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            done = ev.type == YAML_STREAM_END_EVENT || root != NULL;
            break;
        case YAML_ALIAS_EVENT:
            s = cl_err_set(err, CL_ERR_INVALID,
                           "YAML aliases (*%s) are not supported (line %zu)",
                           (const char *)ev.data.alias.anchor, ev.start_mark.line + 1);
            break;
        case YAML_SCALAR_EVENT:
            if (depth > 0 && cJSON_IsObject(stack[depth - 1]) && keys[depth - 1] == NULL) {
                keys[depth - 1] = strndup((const char *)ev.data.scalar.value,
                                          ev.data.scalar.length);
                if (keys[depth - 1] == NULL)
                    s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
                break;
            }
            /* A plain null/~ or an empty plain value is null, as YAML says. */
            if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                (ev.data.scalar.length == 0 ||
                 strcmp((const char *)ev.data.scalar.value, "null") == 0 ||
                 strcmp((const char *)ev.data.scalar.value, "~") == 0)) {
                v = cJSON_CreateNull();
            } else {
                char *str = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
                v = str ? cJSON_CreateString(str) : NULL;
                free(str);
            }
            if (v == NULL)
                s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            v = ev.type == YAML_SEQUENCE_START_EVENT ? cJSON_CreateArray() : cJSON_CreateObject();
            open = true;
            if (v == NULL)
                s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
            else if (depth == MAX_DEPTH)
                s = cl_err_set(err, CL_ERR_INVALID, "YAML nested deeper than %d levels (line %zu)",
                               MAX_DEPTH, ev.start_mark.line + 1);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            free(keys[depth]);
            break;
        default:
            break;
        }
        if (v != NULL && s == CL_OK) {
            if (depth == 0) {
                if (root == NULL)
                    root = v;
                else
                    cJSON_Delete(v);
            } else if (!yaml_attach(stack[depth - 1], &keys[depth - 1], v)) {
                cJSON_Delete(v);
                v = NULL;
                s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
            }
            if (v != NULL && open) {
                stack[depth] = v;
                keys[depth] = NULL;
                depth++;
            }
        } else if (v != NULL) {
            cJSON_Delete(v);
        }
        yaml_event_delete(&ev);
    }
    while (depth > 0)
        free(keys[--depth]);
    yaml_parser_delete(&p);
    if (s != CL_OK) {
        cJSON_Delete(root);
        return s;
    }
    if (root == NULL)
        return cl_err_set(err, CL_ERR_INVALID, "the YAML document is empty");
    *out = root;
    return CL_OK;
}

/* ---- small helpers ------------------------------------------------------- */

void cl_kube_error_text(const char *body, size_t len, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reason");
    if (cJSON_IsString(m) && m->valuestring[0] != '\0') {
        snprintf(buf, size, "%s", m->valuestring);
    } else if (cJSON_IsString(r) && r->valuestring[0] != '\0') {
        snprintf(buf, size, "%s", r->valuestring);
    } else {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(buf, body, n);
        buf[n] = '\0';
        for (char *p = buf; *p; p++) {
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        }
        while (n > 0 && buf[n - 1] == ' ')
            buf[--n] = '\0';
        if (n == 0)
            snprintf(buf, size, "no error text");
    }
    cJSON_Delete(j);
}

int cl_kube_split_lines(char *buf, size_t size, size_t *used, const char *data, size_t len,
                        void (*line)(void *closure, const char *text, size_t len),
                        void *closure)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (*used + take > size)
            return -1;
        memcpy(buf + *used, data, take);
        *used += take;
        if (nl == NULL)
            return 0;
        size_t n = *used;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
        if (n > 0)
            line(closure, buf, n);
        *used = 0;
        data += take + 1;
        len -= take + 1;
    }
    return 0;
}

static bool dns_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Writes text into out (at most max bytes) keeping the characters ok()
 * accepts (after lower-casing when lower) and replacing others by '-';
 * appends "-<6 hex>" of text when anything changed. */
static void sanitize(const char *text, size_t max, bool lower, bool (*ok)(char), char *out,
                     size_t size)
{
    if (size == 0)
        return;
    if (max > size - 1)
        max = size - 1;
    size_t n = strlen(text);
    bool changed = n == 0 || n > max;
    char tmp[512];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof(tmp) - 1; i++) {
        char c = text[i];
        if (lower && c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
            changed = true;
        }
        if (!ok(c)) {
            c = '-';
            changed = true;
        }
        tmp[k++] = c;
    }
    tmp[k] = '\0';
    /* Alphanumeric at both ends. */
    size_t start = 0;
    while (start < k && !alnum(tmp[start]))
        start++;
    while (k > start && !alnum(tmp[k - 1]))
        k--;
    if (start > 0 || k < strlen(tmp))
        changed = true;
    tmp[k] = '\0';
    const char *core = tmp + start;
    if (!changed) {
        snprintf(out, size, "%s", core);
        return;
    }
    unsigned h = (unsigned)(XXH3_64bits(text, n) & 0xffffffu);
    size_t keep = strlen(core);
    if (keep > max - 7)
        keep = max - 7;
    while (keep > 0 && !alnum(core[keep - 1]))
        keep--;
    if (keep == 0)
        snprintf(out, size, "x%06x", h);
    else
        snprintf(out, size, "%.*s-%06x", (int)keep, core, h);
}

static bool dns_ok(char c)
{
    return dns_char(c);
}

static bool label_ok(char c)
{
    return alnum(c) || c == '-' || c == '_' || c == '.';
}

void cl_kube_dns_label(const char *text, size_t max, char *out, size_t size)
{
    sanitize(text, max > 63 ? 63 : max, true, dns_ok, out, size);
}

void cl_kube_label_value(const char *text, char *out, size_t size)
{
    sanitize(text, 63, false, label_ok, out, size);
}

char *cl_kube_escape(const char *text)
{
    char *e = curl_easy_escape(NULL, text, 0);
    if (e == NULL)
        return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}

static CL_MUST_USE cl_status read_file(const char *path, char **out, size_t *len, const char *what,
                                       cl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cl_err_set(err, errno == ENOENT ? CL_ERR_NOT_FOUND : CL_ERR_IO,
                          "cannot read %s %s: %s", what, path, strerror(errno));
    cl_buf b;
    cl_buf_init(&b);
    char chunk[8192];
    size_t n;
    cl_status s = CL_OK;
    while (s == CL_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        s = cl_buf_append(&b, chunk, n);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (s == CL_OK && bad)
        s = cl_err_set(err, CL_ERR_IO, "cannot read %s %s: read error", what, path);
    else if (s == CL_OK)
        s = cl_buf_terminate(&b);
    if (s != CL_OK) {
        cl_buf_deinit(&b);
        if (s == CL_ERR_NOMEM)
            cl_err_set(err, s, "out of memory");
        return s;
    }
    *out = cl_buf_steal(&b, len);
    return CL_OK;
}

/* base64 (whitespace ignored) into a blob, with OpenSSL's decoder. */
static CL_MUST_USE cl_status decode_b64(const char *text, blob *out, const char *what, cl_err *err)
{
    size_t n = strlen(text);
    char *clean = malloc(n + 1);
    if (clean == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '\n' && text[i] != '\r' && text[i] != ' ' && text[i] != '\t')
            clean[k++] = text[i];
    }
    clean[k] = '\0';
    unsigned char *data = malloc(k / 4 * 3 + 4);
    if (data == NULL) {
        free(clean);
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    int got = k % 4 == 0 ? EVP_DecodeBlock(data, (const unsigned char *)clean, (int)k) : -1;
    if (got < 0) {
        free(clean);
        free(data);
        return cl_err_set(err, CL_ERR_INVALID, "%s is not valid base64", what);
    }
    /* EVP_DecodeBlock counts the padding as bytes. */
    size_t len = (size_t)got;
    for (size_t i = k; i > 0 && clean[i - 1] == '=' && len > 0; i--)
        len--;
    free(clean);
    out->data = data;
    out->len = len;
    return CL_OK;
}

/* ---- credentials ------------------------------------------------------- */

static void creds_release(creds *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left > 0)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->server);
    free(c->ns);
    free(c->source);
    free(c->ca_file);
    free(c->ca.data);
    free(c->token);
    free(c->token_file);
    free(c->cert_file);
    free(c->cert.data);
    free(c->key_file);
    free(c->key.data);
    free(c);
}

static creds *creds_new(void)
{
    creds *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->refs = 1;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0] != '\0' ? v->valuestring : NULL;
}

/* The entry named name in the list key ("clusters": [{"name", "cluster":
 * {...}}]), its inner object (inner) or NULL. */
static const cJSON *named(const cJSON *cfg, const char *key, const char *inner, const char *name)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const char *n = jstr(e, "name");
        if (n != NULL && strcmp(n, name) == 0) {
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, inner);
            return cJSON_IsObject(in) ? in : NULL;
        }
    }
    return NULL;
}

/* A path from the kubeconfig: relative ones are relative to its directory. */
static char *config_path(const char *dir, const char *p)
{
    char *out = NULL;
    if (p[0] == '/' || dir == NULL)
        return strdup(p);
    if (asprintf(&out, "%s/%s", dir, p) < 0)
        return NULL;
    return out;
}

static CL_MUST_USE cl_status take_path(char **dst, const char *dir, const char *value, cl_err *err)
{
    if (value == NULL)
        return CL_OK;
    if ((*dst = config_path(dir, value)) == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

static CL_MUST_USE cl_status load_kubeconfig(creds *c, const char *file, const char *context,
                                             const char *ns, cl_err *err)
{
    char *text = NULL;
    size_t len = 0;
    cl_status s = read_file(file, &text, &len, "the kubeconfig", err);
    if (s != CL_OK)
        return s;
    cJSON *cfg = NULL;
    s = cl_kube_yaml_parse(text, len, &cfg, err);
    free(text);
    if (s != CL_OK) {
        cl_err_prefix(err, "kubeconfig %s", file);
        return s;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");

    const char *ctx_name = context ? context : jstr(cfg, "current-context");
    const cJSON *ctx = ctx_name ? named(cfg, "contexts", "context", ctx_name) : NULL;
    const char *cluster_name = ctx ? jstr(ctx, "cluster") : NULL;
    const char *user_name = ctx ? jstr(ctx, "user") : NULL;
    const cJSON *cluster = cluster_name ? named(cfg, "clusters", "cluster", cluster_name) : NULL;
    const cJSON *user = user_name ? named(cfg, "users", "user", user_name) : NULL;
    const char *server = cluster ? jstr(cluster, "server") : NULL;
    if (ctx_name == NULL) {
        s = cl_err_set(err, CL_ERR_INVALID,
                       "kubeconfig %s names no current-context (and none was given)", file);
    } else if (ctx == NULL) {
        s = cl_err_set(err, CL_ERR_INVALID, "kubeconfig %s has no context named '%s'", file,
                       ctx_name);
    } else if (cluster == NULL) {
        s = cl_err_set(err, CL_ERR_INVALID,
                       "kubeconfig %s: context '%s' names cluster '%s', which is not in the "
                       "file's clusters",
                       file, ctx_name, cluster_name ? cluster_name : "(none)");
    } else if (server == NULL) {
        s = cl_err_set(err, CL_ERR_INVALID, "kubeconfig %s: cluster '%s' has no server", file,
                       cluster_name);
    } else if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0) {
        s = cl_err_set(err, CL_ERR_INVALID,
                       "kubeconfig %s: cluster '%s' has server '%s', which is not an http(s):// "
                       "URL",
                       file, cluster_name, server);
    }
    if (s == CL_OK && user_name != NULL && user == NULL)
        s = cl_err_set(err, CL_ERR_INVALID,
                       "kubeconfig %s: context '%s' names user '%s', which is not in the file's "
                       "users",
                       file, ctx_name, user_name);
    if (s == CL_OK && user != NULL) {
        static const char *const unsupported[][2] = {
            {"exec", "an exec plugin (a credential helper program)"},
            {"auth-provider", "an auth-provider plugin"},
            {"password", "a user name and password (basic auth, which Kubernetes removed)"}};
        for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
            bool has_token = jstr(user, "token") || jstr(user, "tokenFile") ||
                             jstr(user, "client-certificate") ||
                             jstr(user, "client-certificate-data");
            if (cJSON_GetObjectItemCaseSensitive(user, unsupported[i][0]) != NULL && !has_token)
                s = cl_err_set(err, CL_ERR_INVALID,
                               "kubeconfig %s: user '%s' authenticates with %s, which this "
                               "client does not support; give it a token, a tokenFile or a "
                               "client certificate and key",
                               file, user_name, unsupported[i][1]);
        }
    }
    if (s == CL_OK) {
        const char *v;
        c->server = strdup(server);
        size_t n = c->server ? strlen(c->server) : 0;
        while (n > 0 && c->server[n - 1] == '/')
            c->server[--n] = '\0';
        v = jstr(cluster, "insecure-skip-tls-verify");
        c->insecure = v != NULL && strcmp(v, "true") == 0;
        s = take_path(&c->ca_file, dir, jstr(cluster, "certificate-authority"), err);
        if (s == CL_OK && (v = jstr(cluster, "certificate-authority-data")) != NULL)
            s = decode_b64(v, &c->ca, "certificate-authority-data", err);
        if (s == CL_OK && user != NULL) {
            if ((v = jstr(user, "token")) != NULL && (c->token = strdup(v)) == NULL)
                s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
            if (s == CL_OK)
                s = take_path(&c->token_file, dir, jstr(user, "tokenFile"), err);
            if (s == CL_OK)
                s = take_path(&c->cert_file, dir, jstr(user, "client-certificate"), err);
            if (s == CL_OK)
                s = take_path(&c->key_file, dir, jstr(user, "client-key"), err);
            if (s == CL_OK && (v = jstr(user, "client-certificate-data")) != NULL)
                s = decode_b64(v, &c->cert, "client-certificate-data", err);
            if (s == CL_OK && (v = jstr(user, "client-key-data")) != NULL)
                s = decode_b64(v, &c->key, "client-key-data", err);
            bool has_cert = c->cert_file || c->cert.data;
            bool has_key = c->key_file || c->key.data;
            if (s == CL_OK && has_cert != has_key)
                s = cl_err_set(err, CL_ERR_INVALID,
                               "kubeconfig %s: user '%s' has a client %s but no client %s", file,
                               user_name, has_cert ? "certificate" : "key",
                               has_cert ? "key" : "certificate");
            if (s != CL_OK && err != NULL && err->code == CL_ERR_INVALID &&
                strncmp(err->msg, "kubeconfig", 10) != 0)
                cl_err_prefix(err, "kubeconfig %s: user '%s'", file, user_name);
        }
        const char *ctx_ns = jstr(ctx, "namespace");
        if (s == CL_OK) {
            c->ns = strdup(ns ? ns : ctx_ns ? ctx_ns : "default");
            if (asprintf(&c->source, "kubeconfig %s (context %s, user %s)", file, ctx_name,
                         user_name ? user_name : "none") < 0)
                c->source = NULL;
            if (c->server == NULL || c->ns == NULL || c->source == NULL)
                s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        }
    }
    cJSON_Delete(cfg);
    return s;
}

static CL_MUST_USE cl_status load_in_cluster(creds *c, const char *sa_dir, const char *ns,
                                             cl_err *err)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || host[0] == '\0')
        return cl_err_set(err, CL_ERR_NOT_FOUND, "not in a pod (KUBERNETES_SERVICE_HOST unset)");
    bool v6 = strchr(host, ':') != NULL;
    if (asprintf(&c->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
                 port && port[0] ? port : "443") < 0) {
        c->server = NULL;
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    if (asprintf(&c->token_file, "%s/token", sa_dir) < 0 ||
        asprintf(&c->ca_file, "%s/ca.crt", sa_dir) < 0) {
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    char *own = NULL;
    if (ns == NULL) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/namespace", sa_dir);
        size_t len;
        cl_err ignored;
        if (read_file(path, &own, &len, "the pod's namespace", &ignored) == CL_OK) {
            while (len > 0 && (own[len - 1] == '\n' || own[len - 1] == ' '))
                own[--len] = '\0';
        }
    }
    c->ns = strdup(ns ? ns : own && own[0] ? own : "default");
    free(own);
    c->source = strdup("the pod's service account");
    if (c->ns == NULL || c->source == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

static bool in_a_pod(const char *sa_dir)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    char path[4096];
    snprintf(path, sizeof(path), "%s/token", sa_dir);
    return host != NULL && host[0] != '\0' && access(path, R_OK) == 0;
}

/* The token to send: the inline one, or the token file's content, read
 * again when the file changed. */
static CL_MUST_USE cl_status current_token(creds *c, char *out, size_t size, cl_err *err)
{
    out[0] = '\0';
    pthread_mutex_lock(&c->mu);
    cl_status s = CL_OK;
    if (c->token_file != NULL) {
        struct stat st;
        if (stat(c->token_file, &st) != 0) {
            s = cl_err_set(err, CL_ERR_DENIED, "cannot read the token file %s: %s",
                           c->token_file, strerror(errno));
        } else if (c->token == NULL || st.st_mtim.tv_sec != c->token_mtime.tv_sec ||
                   st.st_mtim.tv_nsec != c->token_mtime.tv_nsec) {
            char *text = NULL;
            size_t len = 0;
            s = read_file(c->token_file, &text, &len, "the token file", err);
            if (s == CL_OK) {
                while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
                                   text[len - 1] == ' '))
                    text[--len] = '\0';
                free(c->token);
                c->token = text;
                c->token_mtime = st.st_mtim;
            }
        }
    }
    if (s == CL_OK && c->token != NULL) {
        if (strlen(c->token) >= size)
            s = cl_err_set(err, CL_ERR_INVALID, "the bearer token is longer than %zu bytes",
                           size - 1);
        else
            snprintf(out, size, "%s", c->token);
    }
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* ---- clients ------------------------------------------------------------- */

static CL_MUST_USE cl_status client_new(cl_kube **out, creds *c, cl_err *err)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return cl_err_set(err, CL_ERR_IO, "cannot initialise libcurl: %s",
                          curl_easy_strerror(global_rc));
    cl_kube *k = calloc(1, sizeof(*k));
    if (k == NULL || (k->curl = curl_easy_init()) == NULL) {
        free(k);
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    k->c = c;
    *out = k;
    return CL_OK;
}

cl_status cl_kube_new(cl_kube **out, const cl_kube_opts *opts, cl_err *err)
{
    *out = NULL;
    cl_kube_opts none = {0};
    if (opts == NULL)
        opts = &none;
    const char *sa_dir = opts->sa_dir ? opts->sa_dir : CL_KUBE_SA_DIR;
    creds *c = creds_new();
    if (c == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    cl_status s;
    const char *file = opts->kubeconfig;
    char home_config[4096], first[4096];
    if ((file == NULL || file[0] == '\0') && in_a_pod(sa_dir)) {
        s = load_in_cluster(c, sa_dir, opts->namespace_, err);
    } else {
        const char *why = "--kubeconfig";
        if (file == NULL || file[0] == '\0') {
            const char *env = getenv("KUBECONFIG");
            if (env != NULL && env[0] != '\0') {
                /* A list of files: the first one here. */
                snprintf(first, sizeof(first), "%s", env);
                char *colon = strchr(first, ':');
                if (colon != NULL)
                    *colon = '\0';
                file = first;
                why = "$KUBECONFIG";
            } else {
                const char *home = getenv("HOME");
                snprintf(home_config, sizeof(home_config), "%s/.kube/config",
                         home ? home : "");
                file = home_config;
                why = "the default";
            }
        }
        s = load_kubeconfig(c, file, opts->context, opts->namespace_, err);
        if (s == CL_ERR_NOT_FOUND)
            cl_err_set(err, s,
                       "no Kubernetes credentials: not in a pod, and the kubeconfig %s (%s) "
                       "does not exist; give one with --kubeconfig or KUBECONFIG",
                       file, why);
    }
    if (s == CL_OK)
        s = client_new(out, c, err);
    if (s != CL_OK)
        creds_release(c);
    return s;
}

cl_status cl_kube_clone(cl_kube **out, const cl_kube *k, cl_err *err)
{
    pthread_mutex_lock(&k->c->mu);
    k->c->refs++;
    pthread_mutex_unlock(&k->c->mu);
    cl_status s = client_new(out, k->c, err);
    if (s != CL_OK)
        creds_release(k->c);
    return s;
}

void cl_kube_free(cl_kube *k)
{
    if (k == NULL)
        return;
    curl_easy_cleanup(k->curl);
    creds_release(k->c);
    free(k);
}

const char *cl_kube_server(const cl_kube *k)
{
    return k->c->server;
}

const char *cl_kube_namespace(const cl_kube *k)
{
    return k->c->ns;
}

const char *cl_kube_source(const cl_kube *k)
{
    return k->c->source;
}

/* ---- requests ------------------------------------------------------------ */

typedef struct {
    CURL *curl;
    cl_buf *reply;
    /* A watch: lines go to on_line instead of reply (unless the status is
     * an error: then its body goes to reply). */
    bool status_read;
    char *line_buf;
    size_t line_used;
    void (*on_line)(void *closure, const char *text, size_t len);
    void *closure;
    bool too_long;
    const atomic_bool *stop; /* NULL: never */
} transfer;

static size_t on_data(char *data, size_t size, size_t nmemb, void *closure)
{
    transfer *t = closure;
    size_t n = size * nmemb;
    if (t->on_line != NULL && !t->status_read) {
        long http = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &http);
        t->status_read = true;
        if (http < 200 || http >= 300)
            t->on_line = NULL;
    }
    if (t->on_line != NULL) {
        if (cl_kube_split_lines(t->line_buf, MAX_LINE, &t->line_used, data, n, t->on_line,
                                t->closure) != 0) {
            t->too_long = true;
            return 0;
        }
        return n;
    }
    if (t->reply->len + n > MAX_REPLY || cl_buf_append(t->reply, data, n) != CL_OK)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    return n;
}

static int on_progress(void *closure, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const transfer *t = closure;
    return t->stop != NULL && atomic_load(t->stop) ? 1 : 0;
}

static void set_blob(CURL *c, CURLoption opt, const blob *b)
{
    struct curl_blob cb = {.data = b->data, .len = b->len, .flags = CURL_BLOB_COPY};
    curl_easy_setopt(c, opt, &cb);
}

/* Performs one request; *http gets the status. On a transport failure,
 * err says what happened and the status is returned. */
static CL_MUST_USE cl_status perform(cl_kube *k, const char *method, const char *path,
                                     const char *body, long timeout_ms, transfer *t, long *http,
                                     const char *what, cl_err *err)
{
    char token[8192];
    cl_status s = current_token(k->c, token, sizeof(token), err);
    if (s != CL_OK) {
        cl_err_prefix(err, "%s", what);
        return s;
    }
    char *url = NULL;
    if (asprintf(&url, "%s%s", k->c->server, path) < 0)
        return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = k->curl;
    curl_easy_reset(c);
    t->curl = c;
    struct curl_slist *h = NULL;
    char auth[8300];
    h = curl_slist_append(h, "Accept: application/json");
    if (token[0] != '\0') {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (body != NULL) {
        h = curl_slist_append(h, strcmp(method, "PATCH") == 0
                                     ? "Content-Type: application/merge-patch+json"
                                     : "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:");
    }
    if (h == NULL) {
        free(url);
        return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    if (k->c->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (k->c->ca.data != NULL) {
        set_blob(c, CURLOPT_CAINFO_BLOB, &k->c->ca);
    } else if (k->c->ca_file != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, k->c->ca_file);
    }
    if (k->c->cert.data != NULL)
        set_blob(c, CURLOPT_SSLCERT_BLOB, &k->c->cert);
    else if (k->c->cert_file != NULL)
        curl_easy_setopt(c, CURLOPT_SSLCERT, k->c->cert_file);
    if (k->c->key.data != NULL)
        set_blob(c, CURLOPT_SSLKEY_BLOB, &k->c->key);
    else if (k->c->key_file != NULL)
        curl_easy_setopt(c, CURLOPT_SSLKEY, k->c->key_file);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(c);
    long os_errno = 0;
    curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
    curl_slist_free_all(h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    memset(token, 0, sizeof(token));
    memset(auth, 0, sizeof(auth));
    free(url);
    if (rc == CURLE_OK)
        return CL_OK;
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return cl_err_set(err, CL_ERR_CLOSED, "%s: stopped", what);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        (rc == CURLE_GOT_NOTHING && *http == 0))
        return cl_err_set(err, CL_ERR_UNREACHABLE,
                          "%s: cannot reach the Kubernetes API server at %s: %s", what,
                          k->c->server, os_errno != 0 ? strerror((int)os_errno) : why);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return cl_err_set(err, CL_ERR_TIMEOUT,
                          "%s: the Kubernetes API server at %s did not answer within %.1f s",
                          what, k->c->server, (double)timeout_ms / 1000.0);
    if (rc == CURLE_WRITE_ERROR && t->too_long)
        return cl_err_set(err, CL_ERR_TOO_LARGE, "%s: a watch event is larger than %u bytes",
                          what, MAX_LINE);
    if (rc == CURLE_WRITE_ERROR)
        return cl_err_set(err, CL_ERR_TOO_LARGE,
                          "%s: the API server's answer is larger than %u bytes", what,
                          MAX_REPLY);
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
        rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CONNECT_ERROR)
        return cl_err_set(err, CL_ERR_DENIED,
                          "%s: TLS with the Kubernetes API server at %s failed (credentials "
                          "from %s): %s",
                          what, k->c->server, k->c->source, why);
    return cl_err_set(err, CL_ERR_IO, "%s: talking to the Kubernetes API server at %s: %s", what,
                      k->c->server, why);
}

/* The status of an HTTP error reply, with err saying what the server said. */
static CL_MUST_USE cl_status http_error(const cl_kube *k, long http, const char *body, size_t len,
                                        const char *what, cl_err *err)
{
    char text[400];
    cl_kube_error_text(body, len, text, sizeof(text));
    cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
    const char *reason = jstr(j, "reason");
    char why[64];
    snprintf(why, sizeof(why), "HTTP %ld%s%s", http, reason ? " " : "", reason ? reason : "");
    cl_status s;
    switch (http) {
    case 400:
    case 422:
        s = CL_ERR_INVALID;
        break;
    case 401:
        s = cl_err_set(err, CL_ERR_DENIED,
                       "%s: the Kubernetes API server at %s refused the credentials from %s: "
                       "%s (%s)",
                       what, k->c->server, k->c->source, text, why);
        cJSON_Delete(j);
        return s;
    case 403:
        s = CL_ERR_DENIED;
        break;
    case 404:
        s = CL_ERR_NOT_FOUND;
        break;
    case 409:
        s = reason != NULL && strcmp(reason, "AlreadyExists") == 0 ? CL_ERR_EXISTS
                                                                   : CL_ERR_CONFLICT;
        break;
    case 504:
        s = CL_ERR_TIMEOUT;
        break;
    default:
        s = CL_ERR_IO;
        break;
    }
    cl_err_set(err, s, "%s: %s (%s)", what, text, why);
    cJSON_Delete(j);
    return s;
}

static CL_MUST_USE cl_status call(cl_kube *k, const char *method, const char *path,
                                  const cJSON *body, cl_buf *reply, const char *what, cl_err *err)
{
    char *text = NULL;
    if (body != NULL && (text = cJSON_PrintUnformatted(body)) == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
    transfer t = {.reply = reply};
    long http = 0;
    cl_status s = perform(k, method, path, text, CALL_TIMEOUT_MS, &t, &http, what, err);
    free(text);
    if (s != CL_OK)
        return s;
    if (cl_buf_terminate(reply) != CL_OK)
        return cl_err_set(err, CL_ERR_NOMEM, "%s: out of memory", what);
    if (http >= 200 && http < 300)
        return CL_OK;
    return http_error(k, http, (const char *)reply->data, reply->len, what, err);
}

cl_status cl_kube_request(cl_kube *k, const char *method, const char *path, const cJSON *body,
                          cJSON **reply, const char *what, cl_err *err)
{
    if (reply != NULL)
        *reply = NULL;
    cl_buf b;
    cl_buf_init(&b);
    cl_status s = call(k, method, path, body, &b, what, err);
    if (s == CL_OK && reply != NULL && b.len > 0)
        *reply = cJSON_ParseWithLength((const char *)b.data, b.len);
    cl_buf_deinit(&b);
    return s;
}

cl_status cl_kube_get_text(cl_kube *k, const char *path, char **out, const char *what,
                           cl_err *err)
{
    *out = NULL;
    cl_buf b;
    cl_buf_init(&b);
    cl_status s = call(k, "GET", path, NULL, &b, what, err);
    if (s == CL_OK)
        *out = cl_buf_steal(&b, NULL);
    cl_buf_deinit(&b);
    if (s == CL_OK && *out == NULL)
        *out = strdup("");
    if (s == CL_OK && *out == NULL)
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    return s;
}

/* ---- watches ---------------------------------------------------------------- */

struct cl_kube_watch {
    cl_kube *k;
    char *path;
    char *selector; /* escaped, or NULL */
    cl_kube_watch_cb cb;
    void *closure;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool synced;
    char error[512];
    char rv[128];        /* the resourceVersion to watch from */
    bool relist;         /* an ERROR event (410 Gone): list again */
    char *line_buf;
};

static void set_state(cl_kube_watch *w, bool synced, const char *error)
{
    pthread_mutex_lock(&w->mu);
    w->synced = synced;
    snprintf(w->error, sizeof(w->error), "%s", error ? error : "");
    pthread_mutex_unlock(&w->mu);
}

bool cl_kube_watch_state(cl_kube_watch *w, char *error, size_t size)
{
    pthread_mutex_lock(&w->mu);
    bool synced = w->synced;
    if (size > 0)
        snprintf(error, size, "%s", w->error);
    pthread_mutex_unlock(&w->mu);
    return synced;
}

static void remember_rv(cl_kube_watch *w, const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *rv = jstr(md, "resourceVersion");
    if (rv != NULL)
        snprintf(w->rv, sizeof(w->rv), "%s", rv);
}

/* Lists the collection, page by page, and hands every object over. */
static CL_MUST_USE cl_status list_all(cl_kube_watch *w, cl_err *err)
{
    char what[600];
    snprintf(what, sizeof(what), "listing %s", w->path);
    char cont[4096] = "";
    bool first = true;
    for (;;) {
        char *path = NULL;
        char *esc = cont[0] ? cl_kube_escape(cont) : NULL;
        int r = asprintf(&path, "%s?limit=500%s%s%s%s", w->path, w->selector ? "&labelSelector=" : "",
                         w->selector ? w->selector : "", esc ? "&continue=" : "", esc ? esc : "");
        free(esc);
        if (r < 0)
            return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        cJSON *list = NULL;
        cl_status s = cl_kube_request(w->k, "GET", path, NULL, &list, what, err);
        free(path);
        if (s != CL_OK)
            return s;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items");
        if (!cJSON_IsArray(items)) {
            cJSON_Delete(list);
            return cl_err_set(err, CL_ERR_IO, "%s: the answer has no items", what);
        }
        if (first)
            w->cb(w->closure, CL_KUBE_RESET, NULL);
        first = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            w->cb(w->closure, CL_KUBE_ADDED, it);
        }
        remember_rv(w, list);
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(list, "metadata");
        const char *next = jstr(md, "continue");
        snprintf(cont, sizeof(cont), "%s", next ? next : "");
        cJSON_Delete(list);
        if (cont[0] == '\0')
            break;
    }
    w->cb(w->closure, CL_KUBE_SYNCED, NULL);
    return CL_OK;
}

static void on_event_line(void *closure, const char *text, size_t len)
{
    cl_kube_watch *w = closure;
    cJSON *ev = cJSON_ParseWithLength(text, len);
    const char *type = jstr(ev, "type");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
    if (type == NULL || !cJSON_IsObject(obj)) {
        cl_warn("kubernetes watch of %s: an event that is not {type, object}: %.200s", w->path,
                text);
    } else if (strcmp(type, "ERROR") == 0) {
        /* Usually 410 Gone: the resourceVersion is too old. List again. */
        char msg[300];
        const char *m = jstr(obj, "message");
        snprintf(msg, sizeof(msg), "%s", m ? m : "an ERROR event");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
        if (!(cJSON_IsNumber(code) && code->valueint == 410))
            cl_warn("kubernetes watch of %s: %s; listing again", w->path, msg);
        w->relist = true;
    } else if (strcmp(type, "BOOKMARK") == 0) {
        remember_rv(w, obj);
    } else {
        cl_kube_event e = strcmp(type, "ADDED") == 0      ? CL_KUBE_ADDED
                          : strcmp(type, "MODIFIED") == 0 ? CL_KUBE_MODIFIED
                          : strcmp(type, "DELETED") == 0  ? CL_KUBE_DELETED
                                                          : CL_KUBE_RESET;
        if (e != CL_KUBE_RESET) {
            remember_rv(w, obj);
            w->cb(w->closure, e, obj);
        }
    }
    cJSON_Delete(ev);
}

/* One watch stream from w->rv until the server ends it (CL_OK), it fails,
 * or stop. */
static CL_MUST_USE cl_status stream(cl_kube_watch *w, cl_err *err)
{
    char *path = NULL;
    char *rv = cl_kube_escape(w->rv);
    int r = asprintf(&path, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d"
                            "&resourceVersion=%s%s%s",
                     w->path, WATCH_SERVER_TIMEOUT_S, rv ? rv : "",
                     w->selector ? "&labelSelector=" : "", w->selector ? w->selector : "");
    free(rv);
    if (r < 0)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    char what[600];
    snprintf(what, sizeof(what), "watching %s", w->path);
    cl_buf errbody;
    cl_buf_init(&errbody);
    transfer t = {.reply = &errbody,
                  .line_buf = w->line_buf,
                  .on_line = on_event_line,
                  .closure = w,
                  .stop = &w->stop};
    long http = 0;
    cl_status s = perform(w->k, "GET", path, NULL, WATCH_TIMEOUT_MS, &t, &http, what, err);
    free(path);
    if (s == CL_OK && (http < 200 || http >= 300)) {
        s = cl_buf_terminate(&errbody);
        if (s == CL_OK)
            s = http_error(w->k, http, (const char *)errbody.data, errbody.len, what, err);
        else
            cl_err_set(err, s, "%s: out of memory", what);
        if (http == 410)
            w->relist = true;
    }
    cl_buf_deinit(&errbody);
    return s;
}

/* Sleeps ms, or until stop. */
static void pause_ms(cl_kube_watch *w, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop)) {
        if (pthread_cond_timedwait(&w->cond, &w->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&w->mu);
}

static void *watch_thread(void *arg)
{
    cl_kube_watch *w = arg;
    int backoff = BACKOFF_FIRST_MS;
    bool need_list = w->rv[0] == '\0'; /* else resume from the given version */
    while (!atomic_load(&w->stop)) {
        cl_err err;
        cl_err_clear(&err);
        cl_status s = CL_OK;
        if (need_list) {
            s = list_all(w, &err);
            if (s == CL_OK) {
                need_list = false;
                w->relist = false;
                set_state(w, true, NULL);
            }
        }
        if (s == CL_OK) {
            s = stream(w, &err);
            if (w->relist)
                need_list = true;
            if (s == CL_OK) {
                backoff = BACKOFF_FIRST_MS;
                continue; /* the server ended it: resume from rv */
            }
        }
        if (atomic_load(&w->stop))
            break;
        /* Failed: say so, wait, list again (events may have been missed). */
        set_state(w, false, err.msg);
        cl_debug("kubernetes watch: %s; again in %d ms", err.msg, backoff);
        need_list = true;
        pause_ms(w, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

/* Frees what a watch holds (its thread not running). */
static void watch_destroy(cl_kube_watch *w)
{
    cl_kube_free(w->k);
    free(w->path);
    free(w->selector);
    free(w->line_buf);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

cl_status cl_kube_watch_start(cl_kube_watch **out, const cl_kube *k, const char *path,
                              const char *label_selector, cl_kube_watch_cb cb, void *closure,
                              cl_err *err)
{
    return cl_kube_watch_resume(out, k, path, label_selector, NULL, cb, closure, err);
}

cl_status cl_kube_watch_resume(cl_kube_watch **out, const cl_kube *k, const char *path,
                               const char *label_selector, const char *resource_version,
                               cl_kube_watch_cb cb, void *closure, cl_err *err)
{
    *out = NULL;
    cl_kube_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->cb = cb;
    w->closure = closure;
    w->path = strdup(path);
    w->selector = label_selector ? cl_kube_escape(label_selector) : NULL;
    w->line_buf = malloc(MAX_LINE);
    if (resource_version != NULL)
        snprintf(w->rv, sizeof(w->rv), "%s", resource_version);
    cl_status s = CL_OK;
    if (w->path == NULL || w->line_buf == NULL || (label_selector && w->selector == NULL))
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    if (s == CL_OK)
        s = cl_kube_clone(&w->k, k, err);
    if (s == CL_OK && pthread_create(&w->thread, NULL, watch_thread, w) != 0)
        s = cl_err_set(err, CL_ERR_NOMEM, "cannot start a watch thread");
    if (s != CL_OK) {
        watch_destroy(w);
        return s;
    }
    *out = w;
    return CL_OK;
}

void cl_kube_watch_free(cl_kube_watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    watch_destroy(w);
}
