/* The HTTP doors' TLS and bearer token (actors/common/httpd.c): a door
 * made with cl_httpd_serve on a free port of 127.0.0.1 and a handler that
 * answers "hello" and counts its calls; libcurl as the client. A CA and a
 * server certificate for 127.0.0.1 (IP subjectAltName) are made with the
 * openssl program in a temporary directory, so curl verifies the door the
 * way any client would. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "cl_httpd.h"

#define TOKEN "s3cret-token_0123456789abcdef"

static char dir[64];
static atomic_int handled;

/* ---- files ------------------------------------------------------------------ */

static void path_of(char *out, size_t size, const char *file)
{
    snprintf(out, size, "%s/%s", dir, file);
}

/* Runs a shell command in dir, its output appended to dir/openssl.log. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[2048], line[2304];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "cd %s && (%s) >>openssl.log 2>&1", dir, cmd);
    int rc = system(line);
    if (rc != 0)
        fprintf(stderr, "failed (%d): %s; see %s/openssl.log\n", rc, cmd, dir);
    return rc;
}

static void write_file(const char *file, const char *text, mode_t mode)
{
    char p[128];
    path_of(p, sizeof(p), file);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(p, mode), 0);
}

/* ca.pem/ca.key, a server certificate for 127.0.0.1 signed by it
 * (server.pem/server.key), and a key of no certificate (other.key). */
static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cl-test-httpd-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    static const char ext[] = "basicConstraints=critical,CA:FALSE\n"
                              "keyUsage=critical,digitalSignature\n"
                              "extendedKeyUsage=serverAuth\n"
                              "subjectAltName=IP:127.0.0.1\n";
    char p[128];
    path_of(p, sizeof(p), "server.ext");
    FILE *f = fopen(p, "w");
    if (f == NULL || fputs(ext, f) < 0 || fclose(f) != 0)
        return -1;
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    if (sh("openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=clipper-test-ca "
           "-addext basicConstraints=critical,CA:TRUE "
           "-addext keyUsage=critical,keyCertSign,cRLSign",
           ec) != 0 ||
        sh("openssl req %s -keyout server.key -out server.csr -subj /CN=127.0.0.1", ec) != 0 ||
        sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
           "-out server.pem -days 2 -extfile server.ext") != 0 ||
        sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key") !=
            0 ||
        sh("chmod 600 server.key other.key ca.key") != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the door ------------------------------------------------------------------ */

static enum MHD_Result hello(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &handled;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&handled, 1);
    static const char body[] = "hello\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* The door's error body, recognisable in the answers. */
static char *render(int status, const char *error, const char *cause)
{
    char *out = NULL;
    if (asprintf(&out, "{\"status\":%d,\"error\":\"%s\",\"cause\":\"%s\"}", status, error,
                 cause) < 0)
        return NULL;
    return out;
}

static cl_httpd_opts door_opts(void)
{
    return (cl_httpd_opts){
        .what = "the test door",
        .host = "127.0.0.1",
        .port = 0,
        .flags = MHD_USE_AUTO_INTERNAL_THREAD,
        .handler = hello,
        .connection_timeout_s = 10,
        .default_max_connections = 64,
        .render_error = render,
        .error_content_type = "application/json",
    };
}

static cl_httpd *serve(cl_httpd_opts o)
{
    cl_httpd *h = NULL;
    cl_err err;
    if (cl_httpd_serve(&h, &o, &err) != CL_OK)
        fail_msg("cl_httpd_serve: %s", err.msg);
    return h;
}

/* ---- the client ---------------------------------------------------------------- */

typedef struct {
    CURLcode rc;
    long status;
    char body[1024];
    size_t len;
    char www_authenticate[128];
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    size_t len = size * n, room = sizeof(a->body) - 1 - a->len;
    size_t take = len < room ? len : room;
    memcpy(a->body + a->len, p, take);
    a->len += take;
    a->body[a->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    size_t len = size * n;
    static const char name[] = "WWW-Authenticate:";
    if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        const char *v = p + sizeof(name) - 1;
        while (*v == ' ')
            v++;
        int vlen = (int)(len - (size_t)(v - p));
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
            vlen--;
        snprintf(a->www_authenticate, sizeof(a->www_authenticate), "%.*s", vlen, v);
    }
    return len;
}

/* GET scheme://127.0.0.1:port/x with header (may be NULL); ca NULL: the
 * system's CA bundle. */
static answer get(const char *scheme, int port, const char *ca, const char *header)
{
    answer a = {0};
    char url[96];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/x", scheme, port);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *hs = header != NULL ? curl_slist_append(NULL, header) : NULL;
    char ca_path[128];
    if (ca != NULL) {
        path_of(ca_path, sizeof(ca_path), ca);
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_path);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    a.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return a;
}

static void assert_hello(const answer *a, const char *what)
{
    if (a->rc != CURLE_OK || a->status != 200 || strcmp(a->body, "hello\n") != 0)
        fail_msg("%s: %s, status %ld, body '%s'", what, curl_easy_strerror(a->rc), a->status,
                 a->body);
}

static void assert_401(const answer *a, const char *what, const char *cause_part)
{
    if (a->rc != CURLE_OK || a->status != 401)
        fail_msg("%s: %s, status %ld (want 401), body '%s'", what, curl_easy_strerror(a->rc),
                 a->status, a->body);
    assert_string_equal(a->www_authenticate, "Bearer realm=\"clipper\"");
    if (strstr(a->body, "{\"status\":401,\"error\":\"Unauthorized\"") != a->body ||
        strstr(a->body, cause_part) == NULL)
        fail_msg("%s: the body is not the door's error saying '%s': %s", what, cause_part,
                 a->body);
}

/* ---- TLS ------------------------------------------------------------------------ */

static void test_https_with_the_ca_answers_plain_http_and_an_unknown_ca_fail(void **state)
{
    (void)state;
    char cert[128], key[128];
    path_of(cert, sizeof(cert), "server.pem");
    path_of(key, sizeof(key), "server.key");
    cl_httpd_opts o = door_opts();
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    cl_httpd *h = serve(o);
    int port = cl_httpd_port(h);
    int before = atomic_load(&handled);

    answer a = get("https", port, "ca.pem", NULL);
    assert_hello(&a, "https trusting the test CA");
    assert_int_equal(atomic_load(&handled), before + 1);

    /* Plain HTTP to the TLS port: GnuTLS reads no ClientHello, no HTTP
     * answer comes, the handler never runs. */
    a = get("http", port, NULL, NULL);
    if (a.rc == CURLE_OK)
        fail_msg("plain http to the TLS port was answered %ld: '%s'", a.status, a.body);

    /* The system's CA bundle does not know the test CA. */
    a = get("https", port, NULL, NULL);
    if (a.rc != CURLE_PEER_FAILED_VERIFICATION)
        fail_msg("https without the test CA: %s (want a verification failure)",
                 curl_easy_strerror(a.rc));
    assert_int_equal(atomic_load(&handled), before + 1);
    cl_httpd_free(h);
}

/* cl_httpd_serve with the cert and key given; the error it returns. */
static cl_err serve_fails(const char *cert, const char *key)
{
    char c[128] = "", k[128] = "";
    if (cert != NULL)
        path_of(c, sizeof(c), cert);
    if (key != NULL)
        path_of(k, sizeof(k), key);
    cl_httpd_opts o = door_opts();
    o.tls_cert_file = cert != NULL ? c : NULL;
    o.tls_key_file = key != NULL ? k : NULL;
    cl_httpd *h = NULL;
    cl_err err = {0};
    if (cl_httpd_serve(&h, &o, &err) == CL_OK) {
        cl_httpd_free(h);
        fail_msg("served with cert %s and key %s", cert ? cert : "(none)", key ? key : "(none)");
    }
    return err;
}

static void assert_says(const cl_err *e, const char *a, const char *b)
{
    if (strstr(e->msg, a) == NULL || (b != NULL && strstr(e->msg, b) == NULL))
        fail_msg("the error does not say '%s'%s%s: %s", a, b ? " and " : "", b ? b : "", e->msg);
}

static void test_bad_certificate_and_key_files_are_errors_naming_the_file(void **state)
{
    (void)state;
    cl_err e = serve_fails("missing.pem", "server.key");
    assert_int_equal(e.code, CL_ERR_NOT_FOUND);
    assert_says(&e, "TLS certificate file", "missing.pem");

    e = serve_fails("server.pem", "missing.key");
    assert_int_equal(e.code, CL_ERR_NOT_FOUND);
    assert_says(&e, "TLS key file", "missing.key");

    e = serve_fails("server.key", "server.key"); /* a key where the certificate goes */
    assert_int_equal(e.code, CL_ERR_INVALID);
    assert_says(&e, "server.key holds no PEM certificate", NULL);

    e = serve_fails("server.pem", "server.pem"); /* a certificate where the key goes */
    assert_int_equal(e.code, CL_ERR_INVALID);
    assert_says(&e, "server.pem holds no unencrypted PEM private key", NULL);

    e = serve_fails("server.pem", "other.key");
    assert_int_equal(e.code, CL_ERR_INVALID);
    assert_says(&e, "other.key does not match the certificate in", "server.pem");

    e = serve_fails("server.pem", "."); /* the directory itself */
    assert_says(&e, "is not a regular file", NULL);

    e = serve_fails("server.pem", NULL);
    assert_says(&e, "a certificate file and no key file", NULL);
    e = serve_fails(NULL, "server.key");
    assert_says(&e, "a key file and no certificate file", NULL);

    /* The bare daemon cannot keep the PEM memory: it refuses TLS rather
     * than serve without. */
    cl_httpd_opts o = door_opts();
    o.tls_cert_file = "x.pem";
    o.tls_key_file = "x.key";
    struct MHD_Daemon *d = NULL;
    int port = 0;
    cl_err err;
    assert_int_equal(cl_httpd_start(&d, &port, &o, &err), CL_ERR_INVALID);
    assert_null(d);
}

/* ---- bearer tokens ------------------------------------------------------------------ */

static void test_token_door_refuses_without_the_right_token_before_the_handler(void **state)
{
    (void)state;
    cl_httpd_opts o = door_opts();
    o.bearer_token = TOKEN;
    cl_httpd *h = serve(o);
    int port = cl_httpd_port(h);
    int before = atomic_load(&handled);

    answer a = get("http", port, NULL, NULL);
    assert_401(&a, "no Authorization header", "the request had none");

    char same_length[] = "Authorization: Bearer " TOKEN;
    same_length[strlen(same_length) - 1] ^= 1; /* one bit of the last character */
    a = get("http", port, NULL, same_length);
    assert_401(&a, "a wrong token of the same length", "is not this port's");

    a = get("http", port, NULL, "Authorization: Bearer x");
    assert_401(&a, "a shorter token", "is not this port's");
    a = get("http", port, NULL, "Authorization: Bearer " TOKEN TOKEN);
    assert_401(&a, "the token twice", "is not this port's");
    static char longer[8192];
    int n = snprintf(longer, sizeof(longer), "Authorization: Bearer ");
    memset(longer + n, 'a', sizeof(longer) - (size_t)n - 1);
    a = get("http", port, NULL, longer);
    assert_401(&a, "an 8 KiB token", "is not this port's");

    a = get("http", port, NULL, "Authorization: Basic " TOKEN);
    assert_401(&a, "another scheme", "the request had none");
    a = get("http", port, NULL, "Authorization: Bearer" TOKEN);
    assert_401(&a, "no space after Bearer", "the request had none");
    a = get("http", port, NULL, "Authorization: Bearer ");
    assert_401(&a, "an empty token", "the request had none");
    assert_int_equal(atomic_load(&handled), before);

    a = get("http", port, NULL, "Authorization: Bearer " TOKEN);
    assert_hello(&a, "the right token");
    a = get("http", port, NULL, "Authorization: bearer  " TOKEN "  ");
    assert_hello(&a, "the scheme in lower case, blanks around the token");
    assert_int_equal(atomic_load(&handled), before + 2);

    cl_httpd_stats st;
    cl_httpd_get_stats(h, &st);
    assert_int_equal(st.unauthorized, 8);
    cl_httpd_free(h);
}

static void test_tls_and_token_together(void **state)
{
    (void)state;
    char cert[128], key[128];
    path_of(cert, sizeof(cert), "server.pem");
    path_of(key, sizeof(key), "server.key");
    cl_httpd_opts o = door_opts();
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    o.bearer_token = TOKEN;
    cl_httpd *h = serve(o);
    answer a = get("https", cl_httpd_port(h), "ca.pem", NULL);
    assert_401(&a, "https without a token", "the request had none");
    a = get("https", cl_httpd_port(h), "ca.pem", "Authorization: Bearer " TOKEN);
    assert_hello(&a, "https with the token");
    cl_httpd_free(h);
}

static void test_bad_tokens_are_refused_at_start(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "two words", "tab\there", "new\nline"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_httpd_opts o = door_opts();
        o.bearer_token = bad[i];
        cl_httpd *h = NULL;
        cl_err err;
        assert_int_equal(cl_httpd_serve(&h, &o, &err), CL_ERR_INVALID);
        assert_null(h);
        assert_says(&err, "printable characters without spaces", NULL);
    }
}

/* cl_httpd_read_token on dir/file; the error when it fails. */
static cl_status read_token(const char *file, char **token, cl_err *err)
{
    char p[128];
    path_of(p, sizeof(p), file);
    *token = NULL;
    return cl_httpd_read_token(token, p, "--test-token-file", err);
}

static void test_token_files_give_their_first_line_and_must_be_private(void **state)
{
    (void)state;
    char *t = NULL;
    cl_err err;
    write_file("tok", "  " TOKEN " \r\nsecond line\n", 0600);
    assert_int_equal(read_token("tok", &t, &err), CL_OK);
    assert_string_equal(t, TOKEN);
    cl_httpd_token_free(t);
    write_file("tok-no-newline", TOKEN, 0400);
    assert_int_equal(read_token("tok-no-newline", &t, &err), CL_OK);
    assert_string_equal(t, TOKEN);
    cl_httpd_token_free(t);

    write_file("tok-group", TOKEN "\n", 0640);
    assert_int_equal(read_token("tok-group", &t, &err), CL_ERR_DENIED);
    assert_null(t);
    assert_says(&err, "tok-group is readable by others (mode 0640); chmod 600 it",
                "--test-token-file");
    write_file("tok-world", TOKEN "\n", 0604);
    assert_int_equal(read_token("tok-world", &t, &err), CL_ERR_DENIED);
    write_file("tok-writable", TOKEN "\n", 0620);
    assert_int_equal(read_token("tok-writable", &t, &err), CL_ERR_DENIED);
    assert_says(&err, "writable or usable by others", NULL);

    write_file("tok-empty", "\n" TOKEN "\n", 0600);
    assert_int_equal(read_token("tok-empty", &t, &err), CL_ERR_INVALID);
    assert_says(&err, "has no token on its first line", NULL);
    write_file("tok-space", "two words\n", 0600);
    assert_int_equal(read_token("tok-space", &t, &err), CL_ERR_INVALID);
    assert_says(&err, "printable characters without spaces", NULL);
    assert_int_equal(read_token("tok-missing", &t, &err), CL_ERR_NOT_FOUND);
    assert_says(&err, "tok-missing", NULL);
    assert_null(t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "this libmicrohttpd has no TLS support\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_with_the_ca_answers_plain_http_and_an_unknown_ca_fail),
        cmocka_unit_test(test_bad_certificate_and_key_files_are_errors_naming_the_file),
        cmocka_unit_test(test_token_door_refuses_without_the_right_token_before_the_handler),
        cmocka_unit_test(test_tls_and_token_together),
        cmocka_unit_test(test_bad_tokens_are_refused_at_start),
        cmocka_unit_test(test_token_files_give_their_first_line_and_must_be_private),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
