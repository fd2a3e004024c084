/* Integration tests of the bus' identities (cl_bus_opts: nkey_file, tls_*)
 * against a real nats-server that requires TLS and NKey users: a CA and
 * server certificates made with the openssl command at setup, users made
 * with cl_nkey_user_new. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nats/nats.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_loop.h"
#include "cl_nkey.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"

/* Everything the tests share: made once by setup. */
static char dir[64];
static cl_test_nats srv; /* TLS with server.pem, users alice and watcher */
/* alice may publish on a.> and subscribe to _INBOX.> and a.>; watcher may
 * do anything; stranger is a valid key the server does not know. */
static char alice_cred[128], watcher_cred[128], stranger_cred[128];
static char alice_pub[CL_NKEY_PUBLIC_LEN + 1], watcher_pub[CL_NKEY_PUBLIC_LEN + 1];
static char ca[128], wrong_ca[128];
/* A second server some tests start; stopped by stop_extra even when the
 * test fails half-way. */
static cl_test_nats extra;

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Runs a shell command (openssl), its output into dir/setup.log. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd) - 100)
        return -1;
    memmove(cmd + 2, cmd, (size_t)n + 1);
    memcpy(cmd, "( ", 2);
    snprintf(cmd + n + 2, sizeof(cmd) - (size_t)n - 2, " ) >>%s/setup.log 2>&1", dir);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "failed (%d): %s\n", rc, cmd);
    return rc;
}

/* A CA (name.pem, name.key) for the tests' certificates. */
static int make_ca(const char *name)
{
    return sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
              "-nodes -keyout %s.key -out %s.pem -days 2 -subj /CN=clipper-test-%s",
              dir, name, name, name);
}

/* A certificate (name.pem, name.key) signed by ca.pem for the given use
 * (serverAuth or clientAuth) and subjectAltName. */
static int make_cert(const char *name, const char *use, const char *san)
{
    return sh("cd %s && printf 'subjectAltName=%s\\nextendedKeyUsage=%s\\n' > %s.ext && "
              "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout %s.key -out %s.csr -subj /CN=%s && "
              "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
              "-days 2 -extfile %s.ext -out %s.pem",
              dir, san, use, name, name, name, name, name, name, name);
}

static int make_user(const char *name, char *cred, size_t cap, char *pub)
{
    char seed[CL_NKEY_SEED_LEN + 1];
    cl_err err;
    snprintf(cred, cap, "%s/%s.cred", dir, name);
    cl_status st = cl_nkey_user_new(seed, pub, &err);
    if (st == CL_OK)
        st = cl_nkey_write_file(cred, seed, "Clipper credential: test user", &err);
    cl_nkey_wipe(seed, sizeof(seed));
    if (st != CL_OK)
        fprintf(stderr, "user %s: %s\n", name, err.msg);
    return st == CL_OK ? 0 : -1;
}

/* A server config (dir/<name>.conf): the two users, TLS with the server
 * certificate cert, and client certificates required when verify. */
static int write_conf(const char *name, const char *cert, bool verify, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.conf", dir, name);
    FILE *f = fopen(out, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "authorization {\n"
            "  users = [\n"
            "    {nkey: %s, permissions: {publish: [\"a.>\"], subscribe: [\"_INBOX.>\", "
            "\"a.>\"]}}\n"
            "    {nkey: %s}\n"
            "  ]\n"
            "}\n"
            "tls {\n"
            "  cert_file: \"%s/%s.pem\"\n"
            "  key_file: \"%s/%s.key\"\n"
            "  ca_file: \"%s/ca.pem\"\n"
            "  verify: %s\n"
            "  timeout: 5\n"
            "}\n",
            alice_pub, watcher_pub, dir, cert, dir, cert, dir, verify ? "true" : "false");
    return fclose(f) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cl-test-auth-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char stranger_pub[CL_NKEY_PUBLIC_LEN + 1], conf[160];
    path_of(ca, sizeof(ca), "ca.pem");
    path_of(wrong_ca, sizeof(wrong_ca), "wrongca.pem");
    if (make_ca("ca") != 0 || make_ca("wrongca") != 0 ||
        make_cert("server", "serverAuth", "IP:127.0.0.1,DNS:localhost") != 0 ||
        make_cert("other", "serverAuth", "DNS:otherhost") != 0 ||
        make_cert("client", "clientAuth", "DNS:clipper-client") != 0)
        return -1;
    if (make_user("alice", alice_cred, sizeof(alice_cred), alice_pub) != 0 ||
        make_user("watcher", watcher_cred, sizeof(watcher_cred), watcher_pub) != 0 ||
        make_user("stranger", stranger_cred, sizeof(stranger_cred), stranger_pub) != 0)
        return -1;
    if (write_conf("main", "server", false, conf, sizeof(conf)) != 0)
        return -1;
    return cl_test_nats_start_conf(&srv, conf);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    int rc = cl_test_nats_stop(&srv);
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}

static int stop_extra(void **state)
{
    (void)state;
    return cl_test_nats_stop(&extra);
}

/* Options for srv as the user of cred (NULL: none) trusting ca_file. */
static cl_bus_opts opts_for(const char *cred, const char *ca_file)
{
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.url = srv.url;
    o.nkey_file = cred;
    o.tls_ca_file = ca_file;
    o.connect_timeout_ms = 2000;
    return o;
}

static cl_bus *connect_as(const char *cred)
{
    cl_bus_opts o = opts_for(cred, ca);
    cl_bus *bus = NULL;
    cl_err err = {0};
    if (cl_bus_connect(&bus, &o, &err) != CL_OK)
        fail_msg("connect as %s: %s", cred, err.msg);
    return bus;
}

/* Connects with o, which must fail with code; returns the message. */
static const char *refused(cl_bus_opts *o, cl_status code)
{
    static cl_err err;
    cl_bus *bus = NULL;
    cl_status st = cl_bus_connect(&bus, o, &err);
    if (st == CL_OK) {
        cl_bus_free(bus);
        fail_msg("connected to %s, which should have been refused", o->url);
    }
    assert_null(bus);
    if (st != code)
        fail_msg("%s instead of %s: %s", cl_status_name(st), cl_status_name(code), err.msg);
    print_message("refused as expected: %s\n", err.msg);
    return err.msg;
}

static void assert_contains(const char *msg, const char *want)
{
    /* (GCC with UBSan warns of a NULL msg unless told there is none.) */
    const char *text = msg != NULL ? msg : "(null)";
    if (strstr(text, want) == NULL)
        fail_msg("expected \"%s\" in: %s", want, text);
}

/* The next message on sub within timeout_ms as "subject:data", or "". */
static void next_msg(cl_sub *sub, int timeout_ms, char *out, size_t cap)
{
    cl_msg *m = NULL;
    out[0] = '\0';
    if (cl_sub_next(sub, &m, timeout_ms) != CL_OK)
        return;
    snprintf(out, cap, "%s:%.*s", cl_msg_subject(m), (int)cl_msg_len(m),
             (const char *)cl_msg_data(m));
    cl_msg_free(m);
}

static void test_the_right_key_and_ca_connect_and_use_the_allowed_subjects(void **state)
{
    (void)state;
    cl_bus *bus = connect_as(alice_cred);
    assert_true(cl_bus_is_connected(bus));
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&sub, bus, "a.>", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(bus, 2000), CL_OK);
    assert_int_equal(cl_bus_publish(bus, "a.x", "hello", 5), CL_OK);
    char got[64];
    next_msg(sub, 2000, got, sizeof(got));
    assert_string_equal(got, "a.x:hello");
    /* A loop's connection is the same user over the same TLS. */
    cl_err err = {0};
    cl_loop *loop = NULL;
    if (cl_loop_open(&loop, bus, &err) != CL_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(cl_loop_publish(loop, "a.b", "on the loop", 11), CL_OK);
    next_msg(sub, 2000, got, sizeof(got));
    assert_string_equal(got, "a.b:on the loop");
    cl_loop_free(loop);
    cl_sub_free(sub);
    cl_bus_free(bus);
}

typedef struct {
    int count;
    char last[64];
} seen;

static void on_loop_msg(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    seen *s = closure;
    s->count++;
    snprintf(s->last, sizeof(s->last), "%.*s", (int)cl_msg_len(msg),
             (const char *)cl_msg_data(msg));
    cl_msg_free(msg);
}

/* The loop's connection (cnats' event-loop mode) authenticates and
 * speaks TLS too. watcher: cl_loop_sync talks on _CL_LOOP_SYNC.<token>,
 * which alice may not use. */
static void test_a_loop_connection_uses_the_identity_and_tls(void **state)
{
    (void)state;
    cl_bus *bus = connect_as(watcher_cred);
    cl_loop *loop = NULL;
    cl_err err = {0};
    if (cl_loop_open(&loop, bus, &err) != CL_OK)
        fail_msg("%s", err.msg);
    seen s = {0};
    assert_int_equal(cl_loop_subscribe(loop, "a.loop", NULL, on_loop_msg, &s), CL_OK);
    assert_int_equal(cl_loop_sync(loop, 3000), CL_OK);
    assert_int_equal(cl_bus_publish(bus, "a.loop", "looped", 6), CL_OK);
    uint64_t end = cl_mono_us() + 3000000;
    while (s.count == 0 && cl_mono_us() < end)
        cl_status_ignore(cl_loop_run(loop, 50)); /* CL_ERR_TIMEOUT: not yet */
    assert_int_equal(s.count, 1);
    assert_string_equal(s.last, "looped");
    cl_loop_free(loop);
    cl_bus_free(bus);
}

/* Runs with stderr in a file, to read what the bus logs. */
static int stderr_to(const char *path)
{
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static void stderr_back(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

static bool file_gets(const char *path, const char *want, int timeout_ms)
{
    uint64_t end = cl_mono_us() + (uint64_t)timeout_ms * 1000;
    do {
        char *text = cl_test_read_file(path, NULL);
        bool found = text != NULL && strstr(text, want) != NULL;
        free(text);
        if (found)
            return true;
        cl_sleep_ms(20);
    } while (cl_mono_us() < end);
    return false;
}

/* The server drops a publish outside the user's permissions and says so
 * asynchronously (-ERR): the publish itself and the flush succeed. What
 * shows it: the message never reaches a subscriber allowed to see it, and
 * the bus logs the server's words. */
static void test_publishing_outside_the_permissions_is_refused_and_logged(void **state)
{
    (void)state;
    cl_bus *watcher = connect_as(watcher_cred);
    cl_sub *sub = NULL;
    assert_int_equal(cl_bus_subscribe_sync(&sub, watcher, ">", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(watcher, 2000), CL_OK);
    cl_bus *alice = connect_as(alice_cred);
    char log[128];
    path_of(log, sizeof(log), "publish.log");
    int saved = stderr_to(log);
    assert_int_equal(cl_bus_publish(alice, "b.x", "forbidden", 9), CL_OK);
    assert_int_equal(cl_bus_publish(alice, "a.y", "allowed", 7), CL_OK);
    assert_int_equal(cl_bus_flush(alice, 2000), CL_OK);
    bool logged = file_gets(log, "Permissions Violation for Publish to \"b.x\"", 3000);
    stderr_back(saved);
    char *text = cl_test_read_file(log, NULL);
    if (!logged)
        fail_msg("no permissions violation logged; the log has: %s", text ? text : "(none)");
    free(text);
    /* In order on one connection: had b.x passed, it would come first. */
    char got[64];
    next_msg(sub, 2000, got, sizeof(got));
    assert_string_equal(got, "a.y:allowed");
    next_msg(sub, 200, got, sizeof(got));
    assert_string_equal(got, "");
    assert_true(cl_bus_is_connected(alice)); /* a violation does not close it */
    cl_sub_free(sub);
    cl_bus_free(alice);
    cl_bus_free(watcher);
}

static void test_subscribing_outside_the_permissions_gets_nothing(void **state)
{
    (void)state;
    cl_bus *alice = connect_as(alice_cred);
    cl_bus *watcher = connect_as(watcher_cred);
    char log[128];
    path_of(log, sizeof(log), "subscribe.log");
    int saved = stderr_to(log);
    cl_sub *sub = NULL;
    /* cnats subscribes at once; the server refuses it asynchronously. */
    assert_int_equal(cl_bus_subscribe_sync(&sub, alice, "b.>", NULL), CL_OK);
    assert_int_equal(cl_bus_flush(alice, 2000), CL_OK);
    bool logged = file_gets(log, "Permissions Violation for Subscription to \"b.>\"", 3000);
    stderr_back(saved);
    assert_true(logged);
    assert_int_equal(cl_bus_publish(watcher, "b.z", "secret", 6), CL_OK);
    assert_int_equal(cl_bus_flush(watcher, 2000), CL_OK);
    char got[64];
    next_msg(sub, 300, got, sizeof(got));
    assert_string_equal(got, "");
    cl_sub_free(sub);
    cl_bus_free(watcher);
    cl_bus_free(alice);
}

static void test_no_credential_is_refused_with_a_clear_error(void **state)
{
    (void)state;
    cl_bus_opts o = opts_for(NULL, ca);
    const char *msg = refused(&o, CL_ERR_DENIED);
    assert_contains(msg, srv.url);
    assert_contains(msg, "wants a credential");
    assert_contains(msg, "Authorization Violation");
}

static void test_an_unknown_key_is_refused_naming_its_file(void **state)
{
    (void)state;
    cl_bus_opts o = opts_for(stranger_cred, ca);
    const char *msg = refused(&o, CL_ERR_DENIED);
    char want[400];
    snprintf(want, sizeof(want), "nats-server at %s refused the credential in %s", srv.url,
             stranger_cred);
    assert_contains(msg, want);
    assert_contains(msg, "Authorization Violation");
}

static void test_an_unusable_credential_file_is_refused_before_connecting(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof(path), "open.cred");
    char *text = cl_test_read_file(alice_cred, NULL);
    assert_non_null(text);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    assert_int_equal(chmod(path, 0644), 0);
    cl_bus_opts o = opts_for(path, ca);
    const char *msg = refused(&o, CL_ERR_DENIED);
    assert_contains(msg, path);
    assert_contains(msg, "readable by others (mode 0644); chmod 600 it");
    path_of(path, sizeof(path), "missing.cred");
    o = opts_for(path, ca);
    assert_contains(refused(&o, CL_ERR_NOT_FOUND), path);
}

static void test_a_wrong_ca_is_refused_with_a_tls_error_naming_the_ca_file(void **state)
{
    (void)state;
    cl_bus_opts o = opts_for(alice_cred, wrong_ca);
    const char *msg = refused(&o, CL_ERR_DENIED);
    assert_contains(msg, srv.url);
    assert_contains(msg, "did not verify against the CA in");
    assert_contains(msg, wrong_ca);
    /* A CA file that is not there is named before any connection. */
    char path[128];
    path_of(path, sizeof(path), "no-such-ca.pem");
    o = opts_for(alice_cred, path);
    msg = refused(&o, CL_ERR_NOT_FOUND);
    assert_contains(msg, "TLS CA file");
    assert_contains(msg, path);
}

/* Without any TLS option cnats still follows a server that requires TLS,
 * but can verify it only against the system's CAs. */
static void test_a_tls_server_is_refused_without_its_ca(void **state)
{
    (void)state;
    cl_bus_opts o = opts_for(alice_cred, NULL);
    const char *msg = refused(&o, CL_ERR_DENIED);
    assert_contains(msg, "did not verify against the system's CAs");
    assert_contains(msg, "pass the cluster's CA file");
}

/* cnats checks the name in the certificate only when given one: the bus
 * gives tls_name, else the URL's host. */
static void test_the_certificate_must_carry_the_expected_name(void **state)
{
    (void)state;
    cl_bus_opts o = opts_for(alice_cred, ca);
    o.tls_name = "otherhost";
    const char *msg = refused(&o, CL_ERR_DENIED);
    assert_contains(msg, "did not verify");
    assert_contains(msg, "for the name otherhost");
    cl_bus *bus = NULL;
    cl_err err = {0};
    o.tls_name = "localhost";
    if (cl_bus_connect(&bus, &o, &err) != CL_OK)
        fail_msg("tls_name localhost: %s", err.msg);
    cl_bus_free(bus);
    char url[96];
    snprintf(url, sizeof(url), "tls://localhost:%d", srv.port);
    o = opts_for(alice_cred, ca);
    o.url = url;
    if (cl_bus_connect(&bus, &o, &err) != CL_OK)
        fail_msg("%s: %s", url, err.msg);
    cl_bus_free(bus);
    /* One name for all servers: a list of different hosts needs tls_name. */
    char list[200];
    snprintf(list, sizeof(list), "nats://127.0.0.1:%d, nats://localhost:%d", srv.port, srv.port);
    o = opts_for(alice_cred, ca);
    o.url = list;
    assert_contains(refused(&o, CL_ERR_INVALID), "set tls_name");
    o.tls_name = "localhost";
    if (cl_bus_connect(&bus, &o, &err) != CL_OK)
        fail_msg("%s: %s", list, err.msg);
    cl_bus_free(bus);
}

/* A certificate the right CA signed for another host is refused by
 * default: the URL's host is checked. */
static void test_a_certificate_for_another_host_is_refused_by_default(void **state)
{
    (void)state;
    char conf[160];
    assert_int_equal(write_conf("other", "other", false, conf, sizeof(conf)), 0);
    assert_int_equal(cl_test_nats_start_conf(&extra, conf), 0);
    cl_bus_opts o = opts_for(alice_cred, ca);
    o.url = extra.url;
    assert_contains(refused(&o, CL_ERR_DENIED), "for the name 127.0.0.1");
    o.tls_name = "otherhost";
    cl_err err = {0};
    cl_bus *bus = NULL;
    if (cl_bus_connect(&bus, &o, &err) != CL_OK)
        fail_msg("tls_name otherhost: %s", err.msg);
    cl_bus_free(bus);
}

/* A server that verifies clients takes the bus with a client certificate
 * and refuses it without. */
static void test_a_client_certificate_is_presented_when_given(void **state)
{
    (void)state;
    char conf[160], cert[128], key[128];
    assert_int_equal(write_conf("verify", "server", true, conf, sizeof(conf)), 0);
    assert_int_equal(cl_test_nats_start_conf(&extra, conf), 0);
    path_of(cert, sizeof(cert), "client.pem");
    path_of(key, sizeof(key), "client.key");
    cl_bus_opts o = opts_for(alice_cred, ca);
    o.url = extra.url;
    o.tls_cert_file = cert;
    cl_bus *bus = NULL;
    cl_err err = {0};
    assert_int_equal(cl_bus_connect(&bus, &o, &err), CL_ERR_INVALID);
    assert_contains(err.msg, "tls_key_file");
    o.tls_key_file = key;
    if (cl_bus_connect(&bus, &o, &err) != CL_OK)
        fail_msg("with a client certificate: %s", err.msg);
    cl_bus_free(bus);
    o.tls_cert_file = o.tls_key_file = NULL;
    const char *msg = refused(&o, CL_ERR_DENIED);
    assert_contains(msg, extra.url);
    assert_contains(msg, "pass a client certificate");
}

/* TLS asked for (a CA given) from a server that offers none: refused,
 * not quietly sent in the clear. */
static void test_a_server_without_tls_is_refused_when_tls_is_asked_for(void **state)
{
    (void)state;
    assert_int_equal(cl_test_nats_start(&extra), 0);
    cl_bus_opts o = opts_for(NULL, ca);
    o.url = extra.url;
    assert_contains(refused(&o, CL_ERR_DENIED), "does not offer TLS");
}

/* ---- a signature that starts with a zero byte -------------------------
 *
 * cnats before 3.8 sends CONNECT without the signature when its first byte
 * is 0 (nats-io/nats.c#705): one nonce in 256. A fake server offers such a
 * nonce first, then ordinary ones, and records what each CONNECT carried. */

typedef struct {
    int fd;            /* listening */
    char bad_nonce[64]; /* alice's signature of it starts with 0 */
    int connects;      /* CONNECTs received */
    int unsigned_connects;
    int accepted;
} fake_server;

/* Answers one client: INFO with a nonce, PONG to every PING, until EOF. */
static void fake_serve(fake_server *f, int c)
{
    char info[512];
    int n = snprintf(info, sizeof(info),
                     "INFO {\"server_id\":\"fake\",\"version\":\"2.9.10\",\"proto\":1,"
                     "\"headers\":true,\"max_payload\":1048576,\"auth_required\":true,"
                     "\"nonce\":\"%s\"}\r\n",
                     f->accepted == 1 ? f->bad_nonce : "an-ordinary-nonce");
    if (write(c, info, (size_t)n) != n)
        return;
    char buf[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(c, buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t)r;
        buf[len] = '\0';
        char *eol;
        while ((eol = strstr(buf, "\r\n")) != NULL) {
            *eol = '\0';
            if (strncmp(buf, "CONNECT ", 8) == 0) {
                f->connects++;
                f->unsigned_connects += strstr(buf, "\"sig\":\"") == NULL;
            } else if (strcmp(buf, "PING") == 0 && write(c, "PONG\r\n", 6) != 6) {
                return;
            }
            len -= (size_t)(eol + 2 - buf);
            memmove(buf, eol + 2, len + 1);
        }
    }
}

static void *fake_main(void *arg)
{
    fake_server *f = arg;
    int c;
    while ((c = accept(f->fd, NULL, NULL)) >= 0) {
        f->accepted++;
        fake_serve(f, c);
        close(c);
    }
    return NULL;
}

/* A nonce whose signature with seed starts with a zero byte. */
static void find_bad_nonce(const char *seed, char *out, size_t cap)
{
    for (int i = 0;; i++) {
        snprintf(out, cap, "zero-first-byte-%d", i);
        unsigned char *sig = NULL;
        int len = 0;
        assert_int_equal(nats_Sign(seed, out, &sig, &len), NATS_OK);
        bool zero = sig[0] == 0;
        free(sig);
        if (zero)
            return;
    }
}

static void test_a_signature_starting_with_a_zero_byte_is_never_sent_empty(void **state)
{
    (void)state;
    fake_server f = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(f.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(f.fd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(listen(f.fd, 8), 0);
    char seed[CL_NKEY_SEED_LEN + 1];
    cl_err err = {0};
    assert_int_equal(cl_nkey_read_file(alice_cred, seed, &err), CL_OK);
    find_bad_nonce(seed, f.bad_nonce, sizeof(f.bad_nonce));
    cl_nkey_wipe(seed, sizeof(seed));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fake_main, &f), 0);
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", ntohs(a.sin_port));
    cl_bus_opts o;
    cl_bus_opts_init(&o);
    o.url = url;
    o.nkey_file = alice_cred;
    cl_bus *bus = NULL;
    cl_status st = cl_bus_connect(&bus, &o, &err);
    cl_bus_free(bus);
    shutdown(f.fd, SHUT_RDWR); /* ends accept */
    pthread_join(th, NULL);
    close(f.fd);
    if (st != CL_OK)
        fail_msg("%s", err.msg);
    print_message("%d connection(s), %d CONNECT(s), %d without a signature\n", f.accepted,
                  f.connects, f.unsigned_connects);
    assert_true(f.connects >= 1);
    assert_int_equal(f.unsigned_connects, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_right_key_and_ca_connect_and_use_the_allowed_subjects),
        cmocka_unit_test(test_a_loop_connection_uses_the_identity_and_tls),
        cmocka_unit_test(test_publishing_outside_the_permissions_is_refused_and_logged),
        cmocka_unit_test(test_subscribing_outside_the_permissions_gets_nothing),
        cmocka_unit_test(test_no_credential_is_refused_with_a_clear_error),
        cmocka_unit_test(test_an_unknown_key_is_refused_naming_its_file),
        cmocka_unit_test(test_an_unusable_credential_file_is_refused_before_connecting),
        cmocka_unit_test(test_a_wrong_ca_is_refused_with_a_tls_error_naming_the_ca_file),
        cmocka_unit_test(test_a_tls_server_is_refused_without_its_ca),
        cmocka_unit_test(test_the_certificate_must_carry_the_expected_name),
        cmocka_unit_test_teardown(test_a_certificate_for_another_host_is_refused_by_default, stop_extra),
        cmocka_unit_test_teardown(test_a_client_certificate_is_presented_when_given, stop_extra),
        cmocka_unit_test_teardown(test_a_server_without_tls_is_refused_when_tls_is_asked_for, stop_extra),
        cmocka_unit_test(test_a_signature_starting_with_a_zero_byte_is_never_sent_empty),
    };
    /* Before any bus: the test signs with nats_Sign, which needs it. */
    if (nats_Open(-1) != NATS_OK)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
