/* See cl_httpd.h. libmicrohttpd's own per-IP limit is not used: it closes
 * a connection without telling us, so it could be neither counted nor
 * answered. The door counts connections per address itself, from MHD's
 * connection notifications (the only place a connection's start and end
 * are both seen), and refuses in the accept policy callback.
 *
 * TLS and bearer tokens use OpenSSL's libcrypto for what libmicrohttpd
 * does not say clearly (a certificate and key that do not match) or does
 * not do (a constant-time comparison); libmicrohttpd's GnuTLS serves the
 * TLS itself. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cl_clock.h"
#include "cl_file.h"
#include "cl_httpd.h"
#include "cl_log.h"

/* File descriptors kept for everything else a process holds (bus
 * connections, logs, epoll and wake-up descriptors). */
#define FD_RESERVE 128
/* The smallest limit worth serving with. */
#define MIN_CONNECTIONS 16
#define NOTE_EVERY_US (10 * 1000000ULL)
/* The largest PEM file read (a certificate chain is a few KiB). */
#define PEM_FILE_MAX (1024 * 1024)
/* The largest token file read (the token is its first line). */
#define TOKEN_FILE_MAX (64 * 1024)
#define DIGEST_LEN 32 /* SHA-256 */

/* ---- the process's open-file budget -------------------------------------- */

/* Connections promised to the doors running in this process: each door's
 * limit must fit in what the others left. */
static pthread_mutex_t budget_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long budget_promised;

static unsigned long soft_nofile(bool raise, unsigned long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (raise && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need &&
        rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            cl_info("raised the open-file limit from %lu to its hard limit %lu",
                    (unsigned long)was, (unsigned long)rl.rlim_max);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)INT32_MAX : (unsigned long)rl.rlim_cur;
}

/* The limit a door gets: o's, or its default fitted to the budget. */
static CL_MUST_USE cl_status reserve_fds(const cl_httpd_opts *o, unsigned *limit, cl_err *err)
{
    bool explicit_limit = o->max_connections > 0;
    unsigned want = explicit_limit ? o->max_connections : o->default_max_connections;
    if (want == 0)
        want = 1024;
    pthread_mutex_lock(&budget_mu);
    unsigned long soft = soft_nofile(true, budget_promised + want + FD_RESERVE);
    unsigned long left = soft > budget_promised + FD_RESERVE
                             ? soft - budget_promised - FD_RESERVE : 0;
    cl_status st = CL_OK;
    if (want > left) {
        if (explicit_limit || left < MIN_CONNECTIONS) {
            st = cl_err_set(err, CL_ERR_INVALID,
                            "cannot serve %s with %s %u: this process may open %lu files "
                            "(ulimit -n), of which %lu are left for it; lower the limit or "
                            "raise ulimit -n",
                            o->what, o->max_connections_option ? o->max_connections_option
                                                               : "a connection limit of",
                            want, soft, left);
        } else {
            cl_warn("%s: at most %lu connections at once, not %u: this process may open only "
                    "%lu files (ulimit -n)",
                    o->what, left, want, soft);
            want = (unsigned)left;
        }
    }
    if (st == CL_OK)
        budget_promised += want;
    pthread_mutex_unlock(&budget_mu);
    *limit = want;
    return st;
}

static void release_fds(unsigned limit)
{
    pthread_mutex_lock(&budget_mu);
    budget_promised -= limit < budget_promised ? limit : budget_promised;
    pthread_mutex_unlock(&budget_mu);
}

/* ---- connections per address --------------------------------------------- */

/* An open-addressing table (linear probing, deletion by backward shift)
 * of the addresses with open connections. It holds at most as many as the
 * door has connections, and has twice that many slots: it never fills. */
typedef struct {
    uint8_t key[16];
    uint32_t count; /* 0: empty */
} addr_slot;

/* The address a connection counts against: IPv4 in its mapped form, IPv6
 * by its /64 (a host commonly holds a whole /64, so counting its single
 * addresses would limit nothing). False for other families. */
static bool addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a->s6_addr, 16);
        } else {
            memcpy(key, a->s6_addr, 8);
            key[8] = 1; /* never a mapped IPv4 key */
        }
        return true;
    }
    return false;
}

static void addr_text(const uint8_t key[16], char *out, size_t size)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(key, mapped, 12) == 0) {
        inet_ntop(AF_INET, key + 12, out, (socklen_t)size);
        return;
    }
    uint8_t a[16] = {0};
    memcpy(a, key, 8);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, a, text, sizeof(text));
    snprintf(out, size, "%s/64", text);
}

static size_t addr_hash(const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

/* Per connection (MHD's socket context), when addresses are counted. */
typedef struct {
    uint8_t key[16];
    bool counted;
    bool over; /* over its address's limit: refused */
} conn_ctx;

/* A log line at most every NOTE_EVERY_US; the others are counted. */
typedef struct {
    pthread_mutex_t mu;
    uint64_t at_us;
    unsigned long left_out;
} note_limit;

struct cl_httpd {
    struct MHD_Daemon *daemon;
    int port;
    char what[96];
    char per_address_option[48];
    char limit_option[48];
    MHD_AccessHandlerCallback handler;
    void *handler_cls;
    cl_httpd_render_fn render;
    const char *content_type;
    unsigned max_connections, max_per_address;
    unsigned refuse_band; /* accepted over max_per_address to be told why */
    bool fds_reserved;
    atomic_uint connections;
    atomic_uint_fast64_t refused, rejected, unauthorized;
    pthread_mutex_t mu; /* the address table */
    addr_slot *slots;
    size_t mask, used;
    note_limit note_conn, note_mhd, note_auth;
    /* TLS: the PEM texts MHD was given, alive as long as the daemon. */
    char *tls_cert, *tls_key;
    size_t tls_key_len;
    /* The bearer token's SHA-256, when the door has one. */
    bool has_token;
    unsigned char token_digest[DIGEST_LEN];
};

static size_t slot_find(const cl_httpd *h, const uint8_t key[16])
{
    size_t i = addr_hash(key) & h->mask;
    while (h->slots[i].count != 0 && memcmp(h->slots[i].key, key, 16) != 0)
        i = (i + 1) & h->mask;
    return i;
}

/* The count of key after adding one; 0 when the table is full. */
static uint32_t addr_add(cl_httpd *h, const uint8_t key[16])
{
    size_t i = slot_find(h, key);
    if (h->slots[i].count == 0) {
        if (h->used + 1 >= h->mask) /* never with the sizes chosen */
            return 0;
        memcpy(h->slots[i].key, key, 16);
        h->used++;
    }
    return ++h->slots[i].count;
}

static void addr_remove(cl_httpd *h, const uint8_t key[16])
{
    size_t i = slot_find(h, key);
    if (h->slots[i].count == 0 || --h->slots[i].count > 0)
        return;
    h->used--;
    /* Backward shift: move up every later entry of the run that may not
     * sit behind the hole, so lookups never stop at it. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & h->mask;
        if (h->slots[j].count == 0)
            break;
        size_t home = addr_hash(h->slots[j].key) & h->mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        h->slots[i] = h->slots[j];
        i = j;
    }
    h->slots[i].count = 0;
}

static uint32_t addr_count(cl_httpd *h, const uint8_t key[16])
{
    return h->slots[slot_find(h, key)].count;
}

/* ---- logging -------------------------------------------------------------- */

static void note_init(note_limit *n)
{
    pthread_mutex_init(&n->mu, NULL);
    n->at_us = 0;
    n->left_out = 0;
}

static void note(note_limit *n, cl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(note_limit *n, cl_log_level level, const char *fmt, ...)
{
    uint64_t now = cl_mono_us();
    pthread_mutex_lock(&n->mu);
    if (n->at_us != 0 && now - n->at_us < NOTE_EVERY_US) {
        n->left_out++;
        pthread_mutex_unlock(&n->mu);
        return;
    }
    unsigned long left_out = n->left_out;
    n->left_out = 0;
    n->at_us = now;
    pthread_mutex_unlock(&n->mu);
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (left_out > 0)
        cl_log(level, "%s (%lu more left out of the log since the last such line)", text,
               left_out);
    else
        cl_log(level, "%s", text);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    cl_httpd *h = cls;
    char text[400];
    vsnprintf(text, sizeof(text), fmt, ap);
    text[strcspn(text, "\n")] = '\0';
    note(&h->note_mhd, CL_LOG_WARN, "%s: libmicrohttpd: %s", h->what, text);
}

/* ---- MHD's callbacks ------------------------------------------------------- */

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    cl_httpd *h = cls;
    uint8_t key[16];
    if (h->max_per_address == 0 || !addr_key(addr, key))
        return MHD_YES;
    pthread_mutex_lock(&h->mu);
    uint32_t n = addr_count(h, key);
    pthread_mutex_unlock(&h->mu);
    if (n < h->max_per_address + h->refuse_band)
        return MHD_YES;
    atomic_fetch_add(&h->refused, 1);
    char text[64];
    addr_text(key, text, sizeof(text));
    note(&h->note_conn, CL_LOG_WARN,
         "%s: closed a connection from %s at once: it has %u open, over the limit of %u (%s)",
         h->what, text, n, h->max_per_address, h->per_address_option);
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    cl_httpd *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&h->connections, 1);
        conn_ctx *c = *socket_context;
        *socket_context = NULL;
        if (c != NULL && c->counted) {
            pthread_mutex_lock(&h->mu);
            addr_remove(h, c->key);
            pthread_mutex_unlock(&h->mu);
        }
        free(c);
        return;
    }
    unsigned open = atomic_fetch_add(&h->connections, 1) + 1;
    if (open >= h->max_connections)
        note(&h->note_conn, CL_LOG_WARN,
             "%s: %u connections open, the limit (%s): new ones wait in the listen backlog "
             "until one closes",
             h->what, open, h->limit_option);
    if (h->max_per_address == 0)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    conn_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL || ci == NULL || !addr_key(ci->client_addr, c->key)) {
        free(c);
        return;
    }
    pthread_mutex_lock(&h->mu);
    uint32_t n = addr_add(h, c->key);
    pthread_mutex_unlock(&h->mu);
    c->counted = n > 0;
    c->over = n > h->max_per_address;
    *socket_context = c;
    if (!c->over)
        return;
    /* Kept just long enough to answer 503 to what it asks first. */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)CL_HTTPD_REFUSED_TIMEOUT_S);
    atomic_fetch_add(&h->refused, 1);
    char text[64];
    addr_text(c->key, text, sizeof(text));
    note(&h->note_conn, CL_LOG_WARN,
         "%s: refused a connection from %s: it has %u open, over the limit of %u (%s)", h->what,
         text, n, h->max_per_address, h->per_address_option);
}

/* Answers status and closes the connection after it. */
static enum MHD_Result refuse(cl_httpd *h, struct MHD_Connection *conn, int status,
                              const char *error, const char *cause)
{
    char *body = h->render ? h->render(status, error, cause) : NULL;
    if (body == NULL) {
        if (asprintf(&body, "%s\n", cause) < 0)
            return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            h->content_type ? h->content_type : "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == MHD_HTTP_UNAUTHORIZED) /* RFC 6750: says which scheme to use */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"clipper\"");
    /* Queued before the body is read: MHD then reads no more of this
     * connection, so nothing left over can be taken for a request. */
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

typedef struct {
    int lengths, codings;
    uint64_t length; /* the first Content-Length */
    bool lengths_differ, length_bad;
    char first[32], other[32]; /* two lengths that differ, for the message */
    char coding[64];
} framing;

/* A Content-Length value: digits only, as libmicrohttpd reads it. */
static bool parse_length(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    if (*v == '\0')
        return false;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
            return false;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return true;
}

static enum MHD_Result on_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    framing *f = cls;
    if (value == NULL)
        value = "";
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        uint64_t n = 0;
        if (!parse_length(value, &n)) {
            f->length_bad = true;
            snprintf(f->other, sizeof(f->other), "%.24s", value);
        } else if (f->lengths == 0) {
            f->length = n;
            snprintf(f->first, sizeof(f->first), "%.24s", value);
        } else if (n != f->length && !f->lengths_differ) {
            f->lengths_differ = true;
            snprintf(f->other, sizeof(f->other), "%.24s", value);
        }
        f->lengths++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (f->codings++ == 0)
            snprintf(f->coding, sizeof(f->coding), "%.48s", value);
    }
    return MHD_YES;
}

/* 0 when the body's length is clear, else the status to refuse with and
 * *error, cause. */
static int check_framing(struct MHD_Connection *conn, const char **error, char *cause,
                         size_t size)
{
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, on_header, &f);
    *error = "Bad request";
    if (f.length_bad && f.lengths > 1) {
        snprintf(cause, size, "Content-Length '%s' is not a number of bytes", f.other);
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.lengths_differ) {
        snprintf(cause, size,
                 "Conflicting Content-Length headers (%s and %s): the length of the body is "
                 "ambiguous; send one",
                 f.first, f.other);
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.lengths > 0 && f.codings > 0) {
        snprintf(cause, size,
                 "Both Content-Length and Transfer-Encoding are set: the length of the body is "
                 "ambiguous; send one of them");
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.codings > 1) {
        snprintf(cause, size,
                 "Transfer-Encoding is set %d times: send it once, as chunked", f.codings);
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.codings == 1) {
        const char *c = f.coding;
        size_t n = strlen(c);
        while (*c == ' ' || *c == '\t')
            c++, n--;
        while (n > 0 && (c[n - 1] == ' ' || c[n - 1] == '\t'))
            n--;
        if (n != 7 || strncasecmp(c, "chunked", 7) != 0) {
            *error = "Not implemented";
            snprintf(cause, size,
                     "Transfer-Encoding '%s' is not supported: send the body with "
                     "Content-Length or Transfer-Encoding: chunked",
                     f.coding);
            return MHD_HTTP_NOT_IMPLEMENTED;
        }
    }
    return 0;
}

/* SHA-256 of n bytes of text; false only when libcrypto fails. */
static bool digest(const char *text, size_t n, unsigned char out[DIGEST_LEN])
{
    unsigned int len = 0;
    bool ok = EVP_Digest(text, n, out, &len, EVP_sha256(), NULL) == 1 && len == DIGEST_LEN;
    if (!ok)
        ERR_clear_error();
    return ok;
}

/* 0 when the request carries the door's token, else *cause says what was
 * wrong. The presented token is hashed before the comparison, so it takes
 * the same time whatever its length and however much of it is right. */
static int check_token(const cl_httpd *h, struct MHD_Connection *conn, const char **cause)
{
    const char *v =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    /* RFC 7235: the scheme is case-insensitive, then one or more spaces;
     * blanks after the value are not part of it. */
    size_t n = 0;
    if (v != NULL && strncasecmp(v, "Bearer", 6) == 0 && (v[6] == ' ' || v[6] == '\t')) {
        v += 6 + strspn(v + 6, " \t");
        n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
    }
    if (n == 0) {
        *cause = "This port needs the header 'Authorization: Bearer <token>' with the token "
                 "its operator set; the request had none";
        return MHD_HTTP_UNAUTHORIZED;
    }
    unsigned char got[DIGEST_LEN];
    if (!digest(v, n, got) ||
        CRYPTO_memcmp(got, h->token_digest, sizeof(got)) != 0) {
        *cause = "The bearer token is not this port's: send the token its operator set";
        return MHD_HTTP_UNAUTHORIZED;
    }
    return 0;
}

/* The client's address for a log line (an IPv6 one by its /64). */
static void client_text(struct MHD_Connection *conn, char *out, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    uint8_t key[16];
    if (ci != NULL && addr_key(ci->client_addr, key))
        addr_text(key, out, size);
    else
        snprintf(out, size, "an unknown address");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    cl_httpd *h = cls;
    if (*con_cls == NULL) { /* the request's first call: its headers are in */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        const conn_ctx *c = ci != NULL ? ci->socket_context : NULL;
        if (c != NULL && c->over) {
            char cause[256];
            snprintf(cause, sizeof(cause),
                     "Too many connections from your address: this port serves at most %u at "
                     "once from one address; close idle ones or try again later",
                     h->max_per_address);
            return refuse(h, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Service unavailable", cause);
        }
        const char *error;
        char cause[256];
        int status = check_framing(conn, &error, cause, sizeof(cause));
        if (status != 0) {
            atomic_fetch_add(&h->rejected, 1);
            cl_debug("%s: refused %s %.200s: %s", h->what, method, url, cause);
            return refuse(h, conn, status, error, cause);
        }
        const char *why;
        if (h->has_token && check_token(h, conn, &why) != 0) {
            atomic_fetch_add(&h->unauthorized, 1);
            char from[64];
            client_text(conn, from, sizeof(from));
            note(&h->note_auth, CL_LOG_WARN, "%s: refused %s %.200s from %s: no valid bearer token",
                 h->what, method, url, from);
            return refuse(h, conn, MHD_HTTP_UNAUTHORIZED, "Unauthorized", why);
        }
    }
    return h->handler(h->handler_cls, conn, url, method, version, upload_data, upload_size,
                      con_cls);
}

/* ---- files: certificates, keys, tokens --------------------------------------- */

/* Refuses to prompt for a pass phrase (OpenSSL's default would read the
 * terminal): an encrypted key is an error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Checks what GnuTLS would refuse with a vague log line: the files hold a
 * certificate and an unencrypted key, and the key is the certificate's. */
static CL_MUST_USE cl_status check_pair(const cl_httpd_opts *o, const char *cert_pem,
                                        const char *key_pem, cl_err *err)
{
    cl_status st = CL_OK;
    BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *cert = cb != NULL ? PEM_read_bio_X509(cb, NULL, no_passphrase, NULL) : NULL;
    EVP_PKEY *key = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL) : NULL;
    if (cb == NULL || kb == NULL)
        st = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    else if (cert == NULL)
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the TLS certificate file %s holds no PEM certificate (-----BEGIN "
                        "CERTIFICATE-----)",
                        o->tls_cert_file);
    else if (key == NULL)
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the TLS key file %s holds no unencrypted PEM private key (an "
                        "encrypted one is not taken: 'openssl pkey -in KEY -out PLAIN' "
                        "decrypts it)",
                        o->tls_key_file);
    else if (X509_check_private_key(cert, key) != 1)
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the TLS key file %s does not match the certificate in %s: give the "
                        "key the certificate was issued for",
                        o->tls_key_file, o->tls_cert_file);
    else if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        cl_warn("%s: the TLS certificate in %s has expired: clients will refuse it",
                o->what, o->tls_cert_file);
    ERR_clear_error(); /* nothing of ours left for another libcrypto user */
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    return st;
}

static CL_MUST_USE cl_status load_tls(cl_httpd *h, const cl_httpd_opts *o, cl_err *err)
{
    bool cert = o->tls_cert_file != NULL && o->tls_cert_file[0] != '\0';
    bool key = o->tls_key_file != NULL && o->tls_key_file[0] != '\0';
    if (!cert && !key)
        return CL_OK;
    if (cert != key)
        return cl_err_set(err, CL_ERR_INVALID,
                          "cannot serve %s over TLS with a %s file and no %s file: give both",
                          o->what, cert ? "certificate" : "key", cert ? "key" : "certificate");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return cl_err_set(err, CL_ERR_INVALID,
                          "cannot serve %s over TLS: this libmicrohttpd was built without TLS "
                          "(GnuTLS); install one built with it (Debian's libmicrohttpd12 is) "
                          "or serve without a certificate and key",
                          o->what);
    size_t len;
    mode_t mode;
    cl_status st = cl_file_read(o->tls_cert_file, "TLS certificate file", PEM_FILE_MAX, false,
                         &h->tls_cert, &len, &mode, err);
    if (st == CL_OK)
        st = cl_file_read(o->tls_key_file, "TLS key file", PEM_FILE_MAX, false, &h->tls_key,
                   &h->tls_key_len, &mode, err);
    if (st != CL_OK)
        return st;
    /* Warned, not refused: a key shared with a web server's group
     * (Debian's ssl-cert) is common practice. */
    if ((mode & 077) != 0)
        cl_warn("%s: the TLS key file %s may be used by group or others (mode %04o); chmod "
                "600 it",
                o->what, o->tls_key_file, (unsigned)mode);
    return check_pair(o, h->tls_cert, h->tls_key, err);
}

/* A token a client can send as it is: printable ASCII, no spaces. */
static bool token_ok(const char *t, size_t n)
{
    if (n == 0 || n > CL_HTTPD_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~')
            return false;
    return true;
}

static CL_MUST_USE cl_status load_token(cl_httpd *h, const cl_httpd_opts *o, cl_err *err)
{
    if (o->bearer_token == NULL)
        return CL_OK;
    if (!token_ok(o->bearer_token, strlen(o->bearer_token)))
        return cl_err_set(err, CL_ERR_INVALID,
                          "the bearer token of %s must be 1 to %d printable characters "
                          "without spaces",
                          o->what, CL_HTTPD_TOKEN_MAX);
    if (!digest(o->bearer_token, strlen(o->bearer_token), h->token_digest))
        return cl_err_set(err, CL_ERR_NOMEM, "cannot hash the bearer token of %s (libcrypto)",
                          o->what);
    h->has_token = true;
    return CL_OK;
}

cl_status cl_httpd_read_token(char **out, const char *path, const char *option, cl_err *err)
{
    char kind[96];
    snprintf(kind, sizeof(kind), "token file (%s)", option ? option : "bearer token");
    char *text = NULL;
    size_t len = 0;
    mode_t mode;
    cl_status st = cl_file_read(path, kind, TOKEN_FILE_MAX, true, &text, &len, &mode, err);
    if (st != CL_OK)
        return st;
    char *t = text + strspn(text, " \t");
    size_t n = strcspn(t, "\r\n");
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    if (n == 0)
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the %s %s has no token on its first line: write it there (e.g. "
                        "openssl rand -hex 32 > FILE; chmod 600 FILE)",
                        kind, path);
    else if (!token_ok(t, n))
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the token in the %s %s must be 1 to %d printable characters without "
                        "spaces (e.g. openssl rand -hex 32)",
                        kind, path, CL_HTTPD_TOKEN_MAX);
    char *token = st == CL_OK ? strndup(t, n) : NULL;
    if (st == CL_OK && token == NULL)
        st = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    cl_file_free(text, len);
    if (st == CL_OK)
        *out = token;
    return st;
}

void cl_httpd_token_free(char *token)
{
    if (token == NULL)
        return;
    OPENSSL_cleanse(token, strlen(token));
    free(token);
}

/* ---- starting ------------------------------------------------------------- */

/* Resolves and binds; extra (ended by MHD_OPTION_END) is added to the
 * common options. h (NULL for a bare daemon) gets MHD's log lines. */
static CL_MUST_USE cl_status start_daemon(struct MHD_Daemon **out, int *port_out,
                                          const cl_httpd_opts *o, cl_httpd *h,
                                          MHD_AcceptPolicyCallback apc,
                                          MHD_AccessHandlerCallback handler, void *handler_cls,
                                          const struct MHD_OptionItem *extra, cl_err *err)
{
    if (o->port < 0 || o->port > 65535)
        return cl_err_set(err, CL_ERR_INVALID, "the port for %s must be 0 to 65535, got %d",
                          o->what, o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", o->port);
    int rc = getaddrinfo(o->host, port, &hints, &ai);
    if (rc != 0)
        return cl_err_set(err, CL_ERR_INVALID, "cannot serve %s on host '%s': %s", o->what,
                          o->host, gai_strerror(rc));
    unsigned flags = o->flags | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    bool tls = h != NULL && h->tls_cert != NULL;
    if (tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem options[16];
    size_t n = 0;
    if (h != NULL) /* first, or MHD logs what comes before it itself */
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h};
    if (tls) {
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
    }
    options[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    options[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                           (intptr_t)o->connection_timeout_s, NULL};
    if (o->reuse_address)
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL};
    if (o->completed != NULL)
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                               (intptr_t)o->completed, o->completed_cls};
    if (o->thread_pool > 1) /* a pool of one is no pool: MHD warns */
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                               (intptr_t)o->thread_pool, NULL};
    for (size_t i = 0; extra != NULL && extra[i].option != MHD_OPTION_END && n + 1 < 16; i++)
        options[n++] = extra[i];
    options[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    errno = 0;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)o->port, apc, h, handler,
                                            handler_cls, MHD_OPTION_ARRAY, options,
                                            MHD_OPTION_END);
    int saved = errno;
    freeaddrinfo(ai);
    if (d == NULL)
        return cl_err_set(err, CL_ERR_IO, "cannot serve %s on %s:%d: %s%s", o->what, o->host,
                          o->port, saved ? strerror(saved) : "the port is in use or not allowed",
                          tls ? " (or GnuTLS refused the certificate or key: see "
                                "libmicrohttpd's line above)"
                              : "");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info != NULL ? info->port : o->port;
    *out = d;
    return CL_OK;
}

cl_status cl_httpd_start(struct MHD_Daemon **out, int *port_out, const cl_httpd_opts *o,
                         cl_err *err)
{
    if (o->tls_cert_file != NULL || o->tls_key_file != NULL || o->bearer_token != NULL)
        return cl_err_set(err, CL_ERR_INVALID,
                          "cannot serve %s: TLS and bearer tokens are served by cl_httpd_serve "
                          "only",
                          o->what);
    return start_daemon(out, port_out, o, NULL, NULL, o->handler, o->handler_cls, NULL, err);
}

cl_status cl_httpd_serve(cl_httpd **out, const cl_httpd_opts *o, cl_err *err)
{
    cl_httpd *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    snprintf(h->what, sizeof(h->what), "%s", o->what ? o->what : "HTTP");
    snprintf(h->limit_option, sizeof(h->limit_option), "%s",
             o->max_connections_option ? o->max_connections_option : "the connection limit");
    snprintf(h->per_address_option, sizeof(h->per_address_option), "%s",
             o->max_per_address_option ? o->max_per_address_option : "per address");
    h->handler = o->handler;
    h->handler_cls = o->handler_cls;
    h->render = o->render_error;
    h->content_type = o->error_content_type;
    h->max_per_address = o->max_per_address;
    h->refuse_band = o->max_per_address / 4 + 16;
    pthread_mutex_init(&h->mu, NULL);
    note_init(&h->note_conn);
    note_init(&h->note_mhd);
    note_init(&h->note_auth);
    cl_status st = load_tls(h, o, err);
    if (st == CL_OK)
        st = load_token(h, o, err);
    if (st == CL_OK)
        st = reserve_fds(o, &h->max_connections, err);
    if (st != CL_OK)
        goto fail;
    h->fds_reserved = true;
    if (h->max_per_address > 0) {
        size_t slots = 64;
        while (slots < 2 * (size_t)h->max_connections + 2)
            slots *= 2;
        h->slots = calloc(slots, sizeof(*h->slots));
        if (h->slots == NULL) {
            st = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        h->mask = slots - 1;
    }
    const struct MHD_OptionItem extra[] = {
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)h->max_connections, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE,
         (intptr_t)(o->backlog > 0 ? o->backlog : CL_HTTPD_DEFAULT_BACKLOG), NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
        {MHD_OPTION_END, 0, NULL},
    };
    st = start_daemon(&h->daemon, &h->port, o, h, accept_policy, on_request, h, extra, err);
    if (st != CL_OK)
        goto fail;
    *out = h;
    return CL_OK;
fail:
    cl_httpd_free(h);
    return st;
}

int cl_httpd_port(const cl_httpd *h)
{
    return h->port;
}

void cl_httpd_get_stats(const cl_httpd *h, cl_httpd_stats *out)
{
    cl_httpd *m = (cl_httpd *)h; /* the atomics are read only */
    out->connections = atomic_load(&m->connections);
    out->max_connections = h->max_connections;
    out->max_per_address = h->max_per_address;
    out->refused = atomic_load(&m->refused);
    out->rejected = atomic_load(&m->rejected);
    out->unauthorized = atomic_load(&m->unauthorized);
}

int cl_httpd_poll_fd(const cl_httpd *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    return info != NULL ? info->epoll_fd : -1;
}

void cl_httpd_run(cl_httpd *h)
{
    if (MHD_run(h->daemon) != MHD_YES)
        CL_LOG_LIMITED(CL_LOG_WARN, "%s: libmicrohttpd could not run its connections", h->what);
}

int cl_httpd_wait_ms(cl_httpd *h, int max_ms)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(h->daemon, &ms) != MHD_YES || ms > (MHD_UNSIGNED_LONG_LONG)max_ms)
        return max_ms;
    return (int)ms;
}

void cl_httpd_free(cl_httpd *h)
{
    if (h == NULL)
        return;
    if (h->daemon != NULL)
        MHD_stop_daemon(h->daemon);
    if (h->fds_reserved)
        release_fds(h->max_connections);
    free(h->slots);
    /* After the daemon stopped: nothing reads them any more. */
    cl_file_free(h->tls_key, h->tls_key_len);
    free(h->tls_cert);
    OPENSSL_cleanse(h->token_digest, sizeof(h->token_digest));
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->note_conn.mu);
    pthread_mutex_destroy(&h->note_mhd.mu);
    pthread_mutex_destroy(&h->note_auth.mu);
    free(h);
}
