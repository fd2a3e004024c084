/* Connections, publish/subscribe and request/reply over cnats. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus_internal.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "cl_subject.h"

struct cl_sub {
    natsSubscription *sub;
    cl_bus *bus;
    cl_msg_cb cb;
    void *closure;
    /* Callback subscriptions: cnats calls on_complete once the delivery
     * thread is done with the subscription; cl_sub_free waits for it. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool complete;
    bool free_on_complete; /* freed from its own callback */
};

static void sweep_graves(cl_bus *bus, uint64_t min_age_us);

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static natsStatus init_status = NATS_OK;
/* The subscription whose callback runs on this thread, if any. */
static _Thread_local cl_sub *current_sub;

static void init_nats(void)
{
    /* -1 keeps cnats' default spin count. */
    init_status = nats_Open(-1);
}

void cl_bus_opts_init(cl_bus_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
}

cl_status cl__bus_status(natsStatus s, cl_err *err, const char *what)
{
    cl_status code;
    switch (s) {
    case NATS_OK:
        return CL_OK;
    case NATS_TIMEOUT:
        code = CL_ERR_TIMEOUT;
        break;
    case NATS_NO_RESPONDERS:
        code = CL_ERR_NO_RESPONDERS;
        break;
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
        code = CL_ERR_UNREACHABLE;
        break;
    case NATS_NOT_FOUND:
        code = CL_ERR_NOT_FOUND;
        break;
    case NATS_NO_MEMORY:
        code = CL_ERR_NOMEM;
        break;
    case NATS_MAX_PAYLOAD:
        code = CL_ERR_TOO_LARGE;
        break;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
        code = CL_ERR_INVALID;
        break;
    default:
        code = CL_ERR_BUS;
        break;
    }
    const char *detail = nats_GetLastError(NULL);
    if (detail == NULL || detail[0] == '\0')
        detail = natsStatus_GetText(s);
    return cl_err_set(err, code, "%s: %s", what, detail);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    /* Runs later on cnats' callback thread, possibly after cl_bus_free:
     * look only at nc (which cnats keeps alive), never at our cl_bus. */
    natsConnStatus st = natsConnection_Status(nc);
    if (st == NATS_CONN_STATUS_CLOSED || st == NATS_CONN_STATUS_DRAINING_SUBS ||
        st == NATS_CONN_STATUS_DRAINING_PUBS)
        return;
    cl_warn("disconnected from nats-server; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    cl_info("reconnected to nats-server");
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
                           void *closure)
{
    (void)closure;
    const char *subj = sub != NULL ? natsSubscription_GetSubject(sub) : NULL;
    /* The server's words ("Permissions Violation for Publish to \"b.x\"",
     * "Authorization Violation") say more than the status' name. cnats
     * keeps them in the connection for the errors the server sent (the
     * others leave an older text there), and another error may overwrite
     * them meanwhile: read a bounded copy, and only while they match. */
    const char *text = NULL;
    bool from_server = err == NATS_NOT_PERMITTED || err == NATS_CONNECTION_AUTH_FAILED ||
                       err == NATS_ERR;
    if (!from_server || natsConnection_GetLastError(nc, &text) != err || text == NULL ||
        text[0] == '\0')
        text = natsStatus_GetText(err);
    cl_warn("bus error%s%s: %.200s", subj ? " on " : "", subj ? subj : "", text);
}

/* One server URL of a comma-separated list, split into what goes before
 * the host ("nats://user:pw@"), the host and what follows it (":4222"). */
typedef struct {
    char head[256];
    char host[256];
    char tail[64];
} url_parts;

static bool split_url(const char *url, size_t len, url_parts *p)
{
    while (len > 0 && (*url == ' ' || *url == '\t'))
        url++, len--;
    while (len > 0 && (url[len - 1] == ' ' || url[len - 1] == '\t'))
        len--;
    const char *end = url + len;
    const char *host = url;
    for (const char *c = url; c + 2 < end; c++) {
        if (c[0] == ':' && c[1] == '/' && c[2] == '/') {
            host = c + 3;
            break;
        }
    }
    for (const char *c = host; c < end; c++)
        if (*c == '@')
            host = c + 1; /* user info ends at the last '@' */
    const char *host_end;
    if (host < end && *host == '[') { /* an IPv6 literal: nothing to resolve */
        return false;
    } else {
        host_end = memchr(host, ':', (size_t)(end - host));
        if (host_end == NULL)
            host_end = end;
    }
    size_t nhead = (size_t)(host - url), nhost = (size_t)(host_end - host),
           ntail = (size_t)(end - host_end);
    if (nhost == 0 || nhead >= sizeof(p->head) || nhost >= sizeof(p->host) ||
        ntail >= sizeof(p->tail))
        return false;
    memcpy(p->head, url, nhead);
    p->head[nhead] = '\0';
    memcpy(p->host, host, nhost);
    p->host[nhost] = '\0';
    memcpy(p->tail, host_end, ntail);
    p->tail[ntail] = '\0';
    return true;
}

/* Fills bus->addr_urls with each named server of bus->url by its IPv4
 * address. TLS URLs keep their names (the certificate names the host). */
static void resolve_servers(cl_bus *bus)
{
    const char *u = bus->url;
    while (*u != '\0') {
        const char *comma = strchr(u, ',');
        size_t len = comma ? (size_t)(comma - u) : strlen(u);
        url_parts p;
        struct in_addr a;
        if (split_url(u, len, &p) && strncmp(p.head, "tls:", 4) != 0 &&
            inet_pton(AF_INET, p.host, &a) != 1) {
            struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
            struct addrinfo *res = NULL;
            if (getaddrinfo(p.host, NULL, &hints, &res) == 0) {
                for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
                    char ip[INET_ADDRSTRLEN];
                    const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
                    if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) == NULL)
                        continue;
                    size_t n = strlen(p.head) + strlen(ip) + strlen(p.tail) + 1;
                    char *s = malloc(n);
                    char **grown = realloc(bus->addr_urls,
                                           (size_t)(bus->n_addr_urls + 1) * sizeof(char *));
                    if (s == NULL || grown == NULL) {
                        free(s);
                        if (grown != NULL)
                            bus->addr_urls = grown;
                        break;
                    }
                    snprintf(s, n, "%s%s%s", p.head, ip, p.tail);
                    bus->addr_urls = grown;
                    bus->addr_urls[bus->n_addr_urls++] = s;
                }
                freeaddrinfo(res);
            }
        }
        u += len;
        if (*u == ',')
            u++;
    }
}

/* The bus' servers by address (see addr_urls), then its URL list (each
 * URL a server of its own: natsOptions_SetURL takes a single URL, so a
 * comma-separated list is handed over as a list). */
static natsStatus set_servers(natsOptions *no, const cl_bus *bus)
{
    if (bus->n_addr_urls == 0 && strchr(bus->url, ',') == NULL)
        return natsOptions_SetURL(no, bus->url);
    int n = 0;
    for (const char *c = bus->url; *c; c++)
        n += *c == ',';
    n += 1 + bus->n_addr_urls;
    char *copy = strdup(bus->url);
    const char **servers = calloc((size_t)n, sizeof(*servers));
    natsStatus s = NATS_NO_MEMORY;
    if (copy != NULL && servers != NULL) {
        int k = 0;
        for (int i = 0; i < bus->n_addr_urls; i++)
            servers[k++] = bus->addr_urls[i];
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (*t != '\0')
                servers[k++] = t;
        }
        s = natsOptions_SetServers(no, servers, k);
        /* In the order given, never shuffled: the first server is the
         * actor's own (the hosts scripts put each host's own nats-server
         * first), so that an actor shares its fate with its host rather
         * than with a random one. cnats' default shuffle put actors of
         * healthy hosts on a cut host's server, where they sat until the
         * link came back. Addresses come before the names. */
        if (s == NATS_OK)
            s = natsOptions_SetNoRandomize(no, true);
    }
    free(servers);
    free(copy);
    return s;
}

/* cnats before 3.8 leaves a signature whose first byte is 0 out of CONNECT
 * (its base64 encoder took that byte for the end of a string:
 * nats-io/nats.c#705), and the server refuses the connection as an
 * "Authorization Violation": one connect in 256. The ed25519 signature of
 * a nonce is always the same, so the cure is another nonce, that is
 * another connection: sign_nonce fails such a connect as NATS_NO_SERVER,
 * which every connect of the bus tries again (connect_nc, cl_loop_open,
 * cnats' reconnects), and says so in sig_retry. */
#define NATS_VERSION_SENDS_ZERO_SIG 0x030800
static _Thread_local bool sig_retry;

/* cnats asks for the server's nonce to be signed at every connect and
 * reconnect, on the connecting thread; closure is the bus' seed. */
static natsStatus sign_nonce(char **custom_err, unsigned char **sig, int *sig_len,
                             const char *nonce, void *closure)
{
    natsStatus s = nats_Sign(closure, nonce, sig, sig_len);
    if (s == NATS_OK && *sig_len > 0 && (*sig)[0] == 0 &&
        nats_GetVersionNumber() < NATS_VERSION_SENDS_ZERO_SIG) {
        free(*sig); /* cnats allocates with malloc and frees what we return */
        *sig = NULL;
        *sig_len = 0;
        *custom_err = strdup("cnats would send this nonce's signature empty "
                             "(nats-io/nats.c#705): connecting again");
        sig_retry = true;
        return NATS_NO_SERVER;
    }
    return s;
}

/* natsConnection_Connect, again while sign_nonce wants another nonce. */
static natsStatus connect_nc(natsConnection **nc, natsOptions *no)
{
    natsStatus s;
    int tries = 0;
    do {
        sig_retry = false;
        s = natsConnection_Connect(nc, no);
    } while (s != NATS_OK && sig_retry && ++tries < 8);
    return s;
}

/* The bus' credential and TLS settings, on one connection's options. */
static natsStatus set_identity(natsOptions *no, const cl_bus *bus)
{
    natsStatus s = NATS_OK;
    if (bus->nkey_pub[0] != '\0') {
        s = natsOptions_SetNKey(no, bus->nkey_pub, sign_nonce, (void *)bus->nkey_seed);
        if (s == NATS_OK)
            s = natsOptions_SetCustomInboxPrefix(no, bus->inbox_prefix);
    }
    if (!bus->tls)
        return s;
    if (s == NATS_OK)
        s = natsOptions_SetSecure(no, true);
    if (s == NATS_OK && bus->tls_ca_file != NULL)
        s = natsOptions_LoadCATrustedCertificates(no, bus->tls_ca_file);
    if (s == NATS_OK && bus->tls_cert_file != NULL)
        s = natsOptions_LoadCertificatesChain(no, bus->tls_cert_file, bus->tls_key_file);
    /* Without an expected name, cnats checks the host of the URL it
     * dials only when built with NATS_FORCE_HOST_VERIFICATION (upstream's
     * default, Debian's too), else none at all; and the bus dials servers
     * by address (addr_urls) too. A name set here is checked on every
     * server whatever the build and the URL. */
    if (s == NATS_OK && bus->tls_name != NULL)
        s = natsOptions_SetExpectedHostname(no, bus->tls_name);
    return s;
}

natsStatus cl__bus_options(const cl_bus *bus, const char *name, bool send_asap, natsOptions **out)
{
    natsOptions *no = NULL;
    natsStatus s = natsOptions_Create(&no);
    if (s == NATS_OK)
        s = set_servers(no, bus);
    if (s == NATS_OK && name != NULL)
        s = natsOptions_SetName(no, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(no, bus->connect_timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(no, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(no, 250);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(no, 32 * 1024 * 1024);
    /* A server that dies without closing its sockets (its host's link cut,
     * its power lost) is noticed by pings alone; cnats' default is one
     * every 2 minutes. */
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(no, CL_BUS_PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(no, CL_BUS_MAX_PINGS_OUT);
    if (s == NATS_OK && send_asap)
        s = natsOptions_SetSendAsap(no, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(no, on_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(no, on_reconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(no, on_async_error, NULL);
    /* Pending limits high enough for bursts of queries. */
    if (s == NATS_OK)
        s = natsOptions_SetMaxPendingMsgs(no, 1 << 20);
    if (s == NATS_OK)
        s = set_identity(no, bus);
    if (s != NATS_OK) {
        natsOptions_Destroy(no);
        return s;
    }
    *out = no;
    return NATS_OK;
}

/* The name the server's certificate must carry when opts give none: the
 * host of the URL. cnats checks one name on every server of the list, so
 * servers on different hosts need tls_name (a name their certificates
 * share). */
static cl_status default_tls_name(const char *url, char **out, cl_err *err)
{
    char host[256] = "";
    for (const char *u = url; *u != '\0';) {
        size_t len = strcspn(u, ",");
        url_parts p;
        if (strspn(u, " \t") >= len) {
            /* an empty entry of the list: set_servers skips it too */
        } else if (!split_url(u, len, &p)) {
            return cl_err_set(err, CL_ERR_INVALID,
                              "cannot tell the host of %.*s, to check its TLS certificate "
                              "against: set tls_name",
                              (int)len, u);
        } else if (host[0] == '\0') {
            snprintf(host, sizeof(host), "%s", p.host);
        } else if (strcmp(host, p.host) != 0) {
            return cl_err_set(err, CL_ERR_INVALID,
                              "the servers of %s are on different hosts (%s, %s) and TLS "
                              "checks one name on all of them: set tls_name to the name "
                              "their certificates share",
                              url, host, p.host);
        }
        u += len;
        if (*u == ',')
            u++;
    }
    *out = strdup(host);
    return *out != NULL ? CL_OK : cl_err_set(err, CL_ERR_NOMEM, "out of memory");
}

/* Keeps a copy of an optional setting; false when out of memory. */
static bool dup_opt(char **dst, const char *src)
{
    *dst = src != NULL ? strdup(src) : NULL;
    return src == NULL || *dst != NULL;
}

/* Takes the identity and TLS settings of opts into bus, reading the
 * credential now, so every connection of the bus (and every reconnect)
 * uses them without touching the files again, the CA's aside. */
static cl_status take_identity(cl_bus *bus, const cl_bus_opts *opts, cl_err *err)
{
    snprintf(bus->inbox_prefix, sizeof(bus->inbox_prefix), "_INBOX");
    if (opts == NULL)
        return CL_OK;
    if (opts->nkey_file != NULL) {
        cl_status st = cl_nkey_read_file(opts->nkey_file, bus->nkey_seed, err);
        if (st == CL_OK)
            st = cl_nkey_public_from_seed(bus->nkey_seed, bus->nkey_pub, err);
        if (st != CL_OK)
            return st;
        snprintf(bus->inbox_prefix, sizeof(bus->inbox_prefix), "_INBOX.%s", bus->nkey_pub);
    }
    if ((opts->tls_cert_file == NULL) != (opts->tls_key_file == NULL))
        return cl_err_set(err, CL_ERR_INVALID,
                          "a TLS client certificate goes with its key: set both tls_cert_file "
                          "and tls_key_file, or neither");
    const char *files[] = {opts->tls_ca_file, opts->tls_cert_file, opts->tls_key_file};
    const char *what[] = {"TLS CA file", "TLS client certificate", "TLS client key"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i] != NULL && access(files[i], R_OK) != 0)
            return cl_err_set(err, errno == ENOENT ? CL_ERR_NOT_FOUND : CL_ERR_DENIED,
                              "cannot read the %s %s: %s", what[i], files[i], strerror(errno));
    }
    bus->tls = opts->tls_ca_file != NULL || opts->tls_cert_file != NULL || opts->tls_name != NULL;
    if (!dup_opt(&bus->nkey_file, opts->nkey_file) ||
        !dup_opt(&bus->tls_ca_file, opts->tls_ca_file) ||
        !dup_opt(&bus->tls_cert_file, opts->tls_cert_file) ||
        !dup_opt(&bus->tls_key_file, opts->tls_key_file) ||
        !dup_opt(&bus->tls_name, opts->tls_name))
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    if (bus->tls && bus->tls_name == NULL)
        return default_tls_name(bus->url, &bus->tls_name, err);
    return CL_OK;
}

/* cnats' last error on this thread without its "(conn.c:733): " head. */
static const char *nats_detail(natsStatus s)
{
    const char *d = nats_GetLastError(NULL);
    if (d == NULL || d[0] == '\0')
        return natsStatus_GetText(s);
    const char *body = d[0] == '(' ? strstr(d, "): ") : NULL;
    return body != NULL ? body + 3 : d;
}

/* cnats reports a certificate that did not verify as "SSL handshake error:
 * <X509 error number>:<reason>:..." (its verify callback's text), other
 * handshake failures with OpenSSL's reason, which starts with a letter. */
static bool cert_not_verified(const char *detail)
{
    const char *p = strstr(detail, "SSL handshake error: ");
    return p != NULL && p[21] >= '0' && p[21] <= '9';
}

/* Why natsConnection_Connect failed, in the terms of what the caller gave:
 * the URL, the credential file, the CA file. */
static cl_status connect_error(natsStatus s, const cl_bus *bus, cl_err *err)
{
    const char *detail = nats_detail(s);
    const char *url = bus->url;
    if (s == NATS_CONNECTION_AUTH_FAILED && bus->nkey_file != NULL)
        return cl_err_set(err, CL_ERR_DENIED,
                          "nats-server at %s refused the credential in %s (%s)", url,
                          bus->nkey_file, detail);
    if (s == NATS_CONNECTION_AUTH_FAILED)
        return cl_err_set(err, CL_ERR_DENIED,
                          "nats-server at %s wants a credential (%s): pass an NKey credential "
                          "file",
                          url, detail);
    if (s == NATS_SECURE_CONNECTION_WANTED)
        return cl_err_set(err, CL_ERR_DENIED,
                          "nats-server at %s does not offer TLS, which this connection "
                          "requires (a TLS CA file, client certificate or name was given)",
                          url);
    if (s == NATS_SSL_ERROR && cert_not_verified(detail)) {
        /* No TLS option: a tls:// URL, or cnats following a server that
         * requires TLS; either way only the system's CAs were tried. */
        if (!bus->tls)
            return cl_err_set(err, CL_ERR_DENIED,
                              "the TLS certificate of nats-server at %s did not verify against "
                              "the system's CAs (%s): pass the cluster's CA file",
                              url, detail);
        return cl_err_set(err, CL_ERR_DENIED,
                          "the TLS certificate of nats-server at %s did not verify against %s%s "
                          "for the name %s (%s)",
                          url, bus->tls_ca_file ? "the CA in " : "the system's CAs",
                          bus->tls_ca_file ? bus->tls_ca_file : "", bus->tls_name, detail);
    }
    if (s == NATS_SSL_ERROR)
        return cl_err_set(err, CL_ERR_DENIED, "TLS with nats-server at %s failed (%s)%s%s", url,
                          detail, bus->tls_cert_file ? "; client certificate " : "",
                          bus->tls_cert_file ? bus->tls_cert_file : "");
    /* With TLS 1.3 the server judges the client's certificate after the
     * handshake: a refusal shows as the connection closing instead of the
     * PONG that answers CONNECT. */
    if (s == NATS_PROTOCOL_ERROR && bus->tls && bus->tls_cert_file == NULL)
        return cl_err_set(err, CL_ERR_DENIED,
                          "nats-server at %s closed the TLS connection at connect (%s): if it "
                          "verifies clients, pass a client certificate (tls_cert_file, "
                          "tls_key_file)",
                          url, detail);
    if (s == NATS_PROTOCOL_ERROR && bus->tls)
        return cl_err_set(err, CL_ERR_DENIED,
                          "nats-server at %s closed the TLS connection at connect (%s): it may "
                          "not accept the client certificate %s",
                          url, detail, bus->tls_cert_file);
    cl_err e;
    cl_status code = cl__bus_status(s, &e, "x");
    return cl_err_set(err, s == NATS_NO_SERVER ? CL_ERR_UNREACHABLE : code,
                      "cannot reach nats-server at %s: %s (is nats-server running? start one with "
                      "'clipper start' or pass --nats URL)",
                      url, s == NATS_NO_SERVER ? "no server is listening there" : e.msg + 3);
}

cl_status cl_bus_connect(cl_bus **out, const cl_bus_opts *opts, cl_err *err)
{
    pthread_once(&init_once, init_nats);
    if (init_status != NATS_OK)
        return cl__bus_status(init_status, err, "cannot initialise the NATS client");

    const char *url = opts && opts->url ? opts->url : CL_DEFAULT_NATS_URL;
    const char *prefix = opts && opts->prefix ? opts->prefix : CL_DEFAULT_PREFIX;
    int replicas = opts && opts->state_replicas > 0 ? opts->state_replicas : 1;
    if (replicas > 5)
        return cl_err_set(err, CL_ERR_INVALID,
                          "the state's replicas must be 1 to 5 (JetStream's limit), got %d",
                          replicas);
    cl_bus *bus = calloc(1, sizeof(*bus));
    if (bus == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&bus->js_mu, NULL);
    pthread_mutex_init(&bus->graves_mu, NULL);
    bus->prefix = strdup(prefix);
    bus->url = strdup(url);
    bus->name = strdup(opts && opts->name ? opts->name : "clipper");
    bus->connect_timeout_ms =
        opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 2000;
    bus->resend_silent_ms = opts && opts->resend_silent_ms != 0 ? opts->resend_silent_ms
                                                                 : CL_BUS_RESEND_SILENT_MS;
    bus->state_replicas = replicas;
    cl_status st = bus->prefix != NULL && bus->url != NULL && bus->name != NULL
                       ? take_identity(bus, opts, err)
                       : cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    if (st != CL_OK) {
        cl_bus_free(bus);
        return st;
    }
    natsOptions *no = NULL;
    natsStatus s = cl__bus_options(bus, opts && opts->name ? opts->name : NULL,
                                   opts && opts->send_asap, &no);
    if (s == NATS_OK && opts && opts->retry_forever)
        s = natsOptions_SetRetryOnFailedConnect(no, true, NULL, NULL);
    if (s != NATS_OK) {
        st = cl__bus_status(s, err, "cannot set connection options");
        natsOptions_Destroy(no);
        cl_bus_free(bus);
        return st;
    }
    s = connect_nc(&bus->nc, no);
    natsOptions_Destroy(no);
    if (s != NATS_OK) {
        st = connect_error(s, bus, err);
        cl_bus_free(bus);
        return st;
    }
    resolve_servers(bus);
    *out = bus;
    return CL_OK;
}

void cl_bus_free(cl_bus *bus)
{
    if (bus == NULL)
        return;
    if (bus->nc != NULL) {
        natsConnection_FlushTimeout(bus->nc, 1000);
        natsConnection_Close(bus->nc);
    }
    /* The readers are gone with the connections: no grave can race. */
    sweep_graves(bus, 0);
    pthread_mutex_destroy(&bus->graves_mu);
    jsCtx_Destroy(bus->js);
    natsConnection_Destroy(bus->nc);
    free(bus->name);
    pthread_mutex_destroy(&bus->js_mu);
    free(bus->prefix);
    free(bus->url);
    for (int i = 0; i < bus->n_addr_urls; i++)
        free(bus->addr_urls[i]);
    free(bus->addr_urls);
    cl_nkey_wipe(bus->nkey_seed, sizeof(bus->nkey_seed));
    free(bus->nkey_file);
    free(bus->tls_ca_file);
    free(bus->tls_cert_file);
    free(bus->tls_key_file);
    free(bus->tls_name);
    free(bus);
}

int cl__bus_state_replicas(const cl_bus *bus)
{
    return bus->state_replicas;
}

cl_status cl__bus_js(cl_bus *bus, jsCtx **out, cl_err *err)
{
    natsStatus s = NATS_OK;
    pthread_mutex_lock(&bus->js_mu);
    if (bus->js == NULL) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 5000;
        s = natsConnection_JetStream(&bus->js, bus->nc, &jo);
    }
    *out = bus->js;
    pthread_mutex_unlock(&bus->js_mu);
    return cl__bus_status(s, err, "cannot use JetStream (is nats-server started with -js?)");
}

const char *cl_bus_prefix(const cl_bus *bus)
{
    return bus->prefix;
}

const char *cl_bus_url(const cl_bus *bus)
{
    return bus->url;
}

int64_t cl_bus_max_payload(const cl_bus *bus)
{
    return natsConnection_GetMaxPayload(bus->nc);
}

bool cl_bus_is_connected(const cl_bus *bus)
{
    return natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
}

cl_status cl_bus_publish(cl_bus *bus, const char *subject, const void *data, size_t len)
{
    if (len > (size_t)cl_bus_max_payload(bus))
        return CL_ERR_TOO_LARGE;
    return cl__bus_status(natsConnection_Publish(bus->nc, subject, data, (int)len), NULL, "");
}

cl_status cl_bus_publish_request(cl_bus *bus, const char *subject, const char *reply,
                                 const void *data, size_t len)
{
    if (len > (size_t)cl_bus_max_payload(bus))
        return CL_ERR_TOO_LARGE;
    return cl__bus_status(natsConnection_PublishRequest(bus->nc, subject, reply, data, (int)len),
                          NULL, "");
}

cl_status cl_bus_flush(cl_bus *bus, int timeout_ms)
{
    return cl__bus_status(natsConnection_FlushTimeout(bus->nc, timeout_ms), NULL, "flush");
}

cl_status cl_bus_request(cl_bus *bus, const char *subject, const void *data, size_t len,
                         int timeout_ms, cl_msg **reply)
{
    if (len > (size_t)cl_bus_max_payload(bus))
        return CL_ERR_TOO_LARGE;
    natsMsg *m = NULL;
    natsStatus s = natsConnection_Request(&m, bus->nc, subject, data, (int)len, timeout_ms);
    if (s != NATS_OK)
        return cl__bus_status(s, NULL, "");
    *reply = (cl_msg *)m;
    return CL_OK;
}

/* A fresh inbox of this identity's (<inbox prefix>.<token>) and a pull
 * subscription to it, for the replies of one request. */
static cl_status open_inbox(cl_bus *bus, char inbox[128], cl_sub **sub)
{
    char token[23];
    cl_bus_new_token(token);
    snprintf(inbox, 128, "%s.%s", bus->inbox_prefix, token);
    return cl_bus_subscribe_sync(sub, bus, inbox, NULL);
}

/* How many times the bus' connection has reconnected (cnats' count). */
static uint64_t reconnect_count(cl_bus *bus)
{
    natsStatistics *st = NULL;
    uint64_t n = 0;
    if (natsStatistics_Create(&st) == NATS_OK && natsConnection_GetStats(bus->nc, st) == NATS_OK &&
        natsStatistics_GetCounts(st, NULL, NULL, NULL, NULL, &n) != NATS_OK)
        n = 0;
    natsStatistics_Destroy(st);
    return n;
}

#define RESEND_SLICE_MS 100

cl_status cl_bus_request_resend(cl_bus *bus, const char *subject, const void *data, size_t len,
                                int timeout_ms, cl_msg **reply)
{
    if (len > (size_t)cl_bus_max_payload(bus))
        return CL_ERR_TOO_LARGE;
    char inbox[128];
    cl_sub *sub = NULL;
    cl_status s = open_inbox(bus, inbox, &sub);
    if (s != CL_OK)
        return s;
    uint64_t seen = reconnect_count(bus);
    s = cl_bus_publish_request(bus, subject, inbox, data, len);
    uint64_t end = cl_mono_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000u;
    /* UINT64_MAX: only after a reconnect */
    uint64_t silent_wait_us =
        bus->resend_silent_ms > 0 ? (uint64_t)bus->resend_silent_ms * 1000u : UINT64_MAX;
    uint64_t last_send = cl_mono_us();
    bool resent = false, again = false, none_since = false;
    if (s != CL_OK && s != CL_ERR_TOO_LARGE && s != CL_ERR_INVALID) {
        again = true; /* the connection is between servers: send it once it is back */
        s = CL_OK;
    }
    while (s == CL_OK) {
        uint64_t now = cl_mono_us();
        if (now >= end) {
            s = none_since ? CL_ERR_NO_RESPONDERS : CL_ERR_TIMEOUT;
            break;
        }
        uint64_t left_ms = (end - now + 999u) / 1000u;
        cl_msg *m = NULL;
        s = cl_sub_next(sub, &m, left_ms < RESEND_SLICE_MS ? (int)left_ms : RESEND_SLICE_MS);
        /* cnats gives the server's "no responders" status as a message or
         * as the status itself. */
        bool none = s == CL_ERR_NO_RESPONDERS || (s == CL_OK && cl_msg_is_no_responders(m));
        if (none) {
            cl_msg_free(m);
            if (!resent) {
                s = CL_ERR_NO_RESPONDERS; /* nobody listens: said at once */
                break;
            }
            /* Right after a reconnect the responders may not have
             * subscribed again yet: try again in a moment. */
            again = true;
            none_since = true;
            s = CL_ERR_TIMEOUT;
        } else if (s == CL_OK) {
            *reply = m;
            break;
        } else if (s == CL_ERR_TIMEOUT) {
            none_since = false;
        } else if (s != CL_ERR_CLOSED) {
            /* A transient error of the connection (it is reconnecting):
             * send the request again in a moment. */
            again = true;
            s = CL_ERR_TIMEOUT;
        }
        if (s != CL_ERR_TIMEOUT)
            break;
        /* The connection went and came back meanwhile (its server stopped,
         * lame duck mode): the request or its reply may be lost with the
         * old connection. Send it again on the new one; the first reply
         * to come answers it. */
        uint64_t now_seen = reconnect_count(bus);
        s = CL_OK;
        /* No reply for long: the request may have gone down a route to a
         * server whose host went silent. */
        bool silent = cl_mono_us() - last_send >= silent_wait_us;
        if (now_seen != seen || again || silent) {
            if (silent)
                silent_wait_us *= 2; /* (from at most INT_MAX ms: no overflow) */
            seen = now_seen;
            resent = true;
            again = false;
            last_send = cl_mono_us();
            cl_debug("sending a request on %s again (%s)", subject,
                     silent ? "no reply yet" : "after a reconnect");
            s = cl_bus_publish_request(bus, subject, inbox, data, len);
            if (s != CL_OK && s != CL_ERR_TOO_LARGE && s != CL_ERR_INVALID) {
                again = true; /* not yet: the next slice tries again */
                s = CL_OK;
            }
        }
    }
    cl_sub_free(sub);
    return s;
}

cl_status cl_bus_gather(cl_bus *bus, const char *subject, const void *data, size_t len,
                        int timeout_ms, cl_msg **out, size_t max, size_t *n,
                        cl_gather_fn enough, void *closure)
{
    *n = 0;
    if (len > (size_t)cl_bus_max_payload(bus))
        return CL_ERR_TOO_LARGE;
    if (max == 0)
        return CL_ERR_INVALID;
    char inbox[128];
    cl_sub *sub = NULL;
    cl_status s = open_inbox(bus, inbox, &sub);
    if (s != CL_OK)
        return s;
    s = cl_bus_publish_request(bus, subject, inbox, data, len);
    if (s == CL_OK)
        s = cl_bus_flush(bus, timeout_ms);
    bool no_responders = false;
    uint64_t end = cl_mono_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000u;
    while (s == CL_OK && *n < max) {
        uint64_t now = cl_mono_us();
        if (now >= end)
            break;
        int wait_ms = (int)((end - now + 999u) / 1000u);
        cl_msg *m = NULL;
        cl_status r = cl_sub_next(sub, &m, wait_ms);
        if (r == CL_ERR_TIMEOUT)
            break;
        if (r != CL_OK) {
            s = r;
            break;
        }
        if (cl_msg_is_no_responders(m)) {
            /* The server says so at once when nobody is subscribed. */
            cl_msg_free(m);
            no_responders = true;
            break;
        }
        out[(*n)++] = m;
        if (enough != NULL && enough(out, *n, closure))
            break;
    }
    cl_sub_free(sub);
    if (s != CL_OK) {
        for (size_t i = 0; i < *n; i++)
            cl_msg_free(out[i]);
        *n = 0;
        return s;
    }
    if (*n > 0)
        return CL_OK;
    return no_responders ? CL_ERR_NO_RESPONDERS : CL_ERR_TIMEOUT;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    cl_sub *s = closure;
    cl_sub *outer = current_sub;
    current_sub = s;
    s->cb(s->bus, (cl_msg *)msg, s->closure);
    current_sub = outer;
}

/* cnats before 3.6 (Debian's 3.4.1) lets its reader thread take a
 * subscription from the connection's table, let go of the table's lock and
 * only then lock the subscription (nats-io/nats.c#637): a subscription
 * destroyed by another thread in between is used after it was freed, which
 * crashed or hung the reader (seen: clipper_admin.hosts' bus hung after a
 * gather whose last replies came as it ended). So a subscription is only
 * unsubscribed at once (cl_sub_free: out of the table, no message can find
 * it after the message in hand) and destroyed CL_BUS_GRAVE_MS later, by a
 * later bury or by cl_bus_free once the connections are closed. */
#define CL_BUS_GRAVE_MS 1000

struct cl__grave {
    natsSubscription *sub;
    uint64_t at_us;
    struct cl__grave *next;
};

/* Destroys the graves older than min_age_us (all with 0). */
static void sweep_graves(cl_bus *bus, uint64_t min_age_us)
{
    uint64_t now = cl_mono_us();
    for (;;) {
        pthread_mutex_lock(&bus->graves_mu);
        struct cl__grave *g = bus->graves;
        if (g == NULL || (min_age_us > 0 && now - g->at_us < min_age_us)) {
            pthread_mutex_unlock(&bus->graves_mu);
            return;
        }
        bus->graves = g->next;
        if (bus->graves == NULL)
            bus->graves_tail = NULL;
        pthread_mutex_unlock(&bus->graves_mu);
        natsSubscription_Destroy(g->sub);
        free(g);
    }
}

/* sub: unsubscribed already. */
static void bury(cl_bus *bus, natsSubscription *sub)
{
    struct cl__grave *g = malloc(sizeof(*g));
    if (g == NULL) {
        natsSubscription_Destroy(sub); /* out of memory: the old way */
        return;
    }
    *g = (struct cl__grave){.sub = sub, .at_us = cl_mono_us()};
    pthread_mutex_lock(&bus->graves_mu);
    if (bus->graves_tail != NULL)
        bus->graves_tail->next = g;
    else
        bus->graves = g;
    bus->graves_tail = g;
    pthread_mutex_unlock(&bus->graves_mu);
    sweep_graves(bus, (uint64_t)CL_BUS_GRAVE_MS * 1000u);
}

/* s->sub (if any) unsubscribed already: cl_sub_free and the failed
 * subscribes do so first. */
static void sub_destroy(cl_sub *s)
{
    if (s->sub != NULL)
        bury(s->bus, s->sub);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Runs on the delivery thread after its last callback for s. */
static void on_complete(void *closure)
{
    cl_sub *s = closure;
    pthread_mutex_lock(&s->mu);
    bool self_free = s->free_on_complete;
    s->complete = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (self_free)
        sub_destroy(s);
}

static cl_sub *sub_alloc(cl_bus *bus)
{
    cl_sub *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->bus = bus;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return s;
}

cl_status cl_bus_subscribe(cl_sub **out, cl_bus *bus, const char *subject, const char *queue,
                           cl_msg_cb cb, void *closure)
{
    cl_sub *s = sub_alloc(bus);
    if (s == NULL)
        return CL_ERR_NOMEM;
    s->cb = cb;
    s->closure = closure;
    /* Subscribe in two steps so on_complete is set before any delivery. */
    natsStatus ns = queue ? natsConnection_QueueSubscribe(&s->sub, bus->nc, subject, queue, on_msg, s)
                          : natsConnection_Subscribe(&s->sub, bus->nc, subject, on_msg, s);
    if (ns == NATS_OK)
        ns = natsSubscription_SetOnCompleteCB(s->sub, on_complete, s);
    if (ns == NATS_OK)
        ns = natsSubscription_SetPendingLimits(s->sub, -1, -1);
    if (ns != NATS_OK) {
        cl_status st = cl__bus_status(ns, NULL, "subscribe");
        if (s->sub != NULL) {
            /* The delivery thread may already run: free through cl_sub_free. */
            cl_sub_free(s);
        } else {
            sub_destroy(s);
        }
        return st;
    }
    *out = s;
    return CL_OK;
}

cl_status cl_bus_subscribe_sync(cl_sub **out, cl_bus *bus, const char *subject, const char *queue)
{
    cl_sub *s = sub_alloc(bus);
    if (s == NULL)
        return CL_ERR_NOMEM;
    natsStatus ns = queue ? natsConnection_QueueSubscribeSync(&s->sub, bus->nc, subject, queue)
                          : natsConnection_SubscribeSync(&s->sub, bus->nc, subject);
    if (ns == NATS_OK)
        ns = natsSubscription_SetPendingLimits(s->sub, -1, -1);
    if (ns != NATS_OK) {
        cl_status st = cl__bus_status(ns, NULL, "subscribe");
        natsSubscription_Unsubscribe(s->sub);
        sub_destroy(s);
        return st;
    }
    *out = s;
    return CL_OK;
}

cl_status cl_sub_next(cl_sub *sub, cl_msg **out, int timeout_ms)
{
    natsMsg *m = NULL;
    natsStatus s = natsSubscription_NextMsg(&m, sub->sub, timeout_ms);
    if (s == NATS_OK) {
        *out = (cl_msg *)m;
        return CL_OK;
    }
    if (s == NATS_TIMEOUT)
        return CL_ERR_TIMEOUT;
    if (s == NATS_INVALID_SUBSCRIPTION || s == NATS_CONNECTION_CLOSED)
        return CL_ERR_CLOSED;
    return cl__bus_status(s, NULL, "next message");
}

int cl_sub_pending(cl_sub *sub)
{
    int msgs = 0;
    if (natsSubscription_GetPending(sub->sub, &msgs, NULL) != NATS_OK)
        return 0;
    return msgs;
}

cl_status cl_sub_drain(cl_sub *sub, int timeout_ms)
{
    if (sub == NULL)
        return CL_OK;
    natsStatus s = natsSubscription_DrainTimeout(sub->sub, timeout_ms);
    return s == NATS_OK ? CL_OK : cl__bus_status(s, NULL, "drain a subscription");
}

cl_status cl_sub_drained(cl_sub *sub, int timeout_ms)
{
    if (sub == NULL)
        return CL_OK;
    natsStatus s = natsSubscription_WaitForDrainCompletion(sub->sub, timeout_ms);
    if (s == NATS_TIMEOUT)
        return CL_ERR_TIMEOUT;
    return s == NATS_OK ? CL_OK : cl__bus_status(s, NULL, "wait for a drain");
}

void cl_sub_free(cl_sub *sub)
{
    if (sub == NULL)
        return;
    natsSubscription_Unsubscribe(sub->sub);
    if (sub->cb == NULL) {
        sub_destroy(sub);
        return;
    }
    /* A callback may still be running on the delivery thread: wait until
     * cnats says it is done (on_complete), unless we are that callback, in
     * which case on_complete frees sub once we return. */
    pthread_mutex_lock(&sub->mu);
    if (current_sub == sub && !sub->complete) {
        sub->free_on_complete = true;
        pthread_mutex_unlock(&sub->mu);
        return;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    int rc = 0;
    while (!sub->complete && rc == 0)
        rc = pthread_cond_timedwait(&sub->cv, &sub->mu, &deadline);
    bool complete = sub->complete;
    pthread_mutex_unlock(&sub->mu);
    if (!complete) {
        /* Leak rather than free memory a stuck callback may still use. */
        cl_warn("subscription on %s did not stop within 10 s",
                natsSubscription_GetSubject(sub->sub));
        return;
    }
    sub_destroy(sub);
}

const char *cl_msg_subject(const cl_msg *msg)
{
    return natsMsg_GetSubject((natsMsg *)msg);
}

const char *cl_msg_reply(const cl_msg *msg)
{
    return natsMsg_GetReply((natsMsg *)msg);
}

const void *cl_msg_data(const cl_msg *msg)
{
    return natsMsg_GetData((natsMsg *)msg);
}

size_t cl_msg_len(const cl_msg *msg)
{
    int n = natsMsg_GetDataLength((natsMsg *)msg);
    return n > 0 ? (size_t)n : 0;
}

bool cl_msg_is_no_responders(const cl_msg *msg)
{
    return natsMsg_IsNoResponders((natsMsg *)msg);
}

cl_status cl_msg_respond(cl_bus *bus, const cl_msg *msg, const void *data, size_t len)
{
    const char *reply = cl_msg_reply(msg);
    if (reply == NULL || reply[0] == '\0')
        return CL_OK;
    /* A reply subject comes from whoever sent the request: one with
     * spaces, CR/LF or wildcards would make our own connection publish
     * something else (or make the server drop it). */
    cl_err err;
    if (!cl_subj_valid_publish(reply, strlen(reply), &err)) {
        CL_LOG_LIMITED(CL_LOG_WARN, "not answering on a bad reply subject: %s", err.msg);
        return CL_ERR_INVALID;
    }
    return cl_bus_publish(bus, reply, data, len);
}

/* The head of every natsMsg in cnats 3.4 (src/gc.h: natsGCItem is the
 * first member of struct __natsMsg). This reaches into the library's
 * private layout, so it is used only with the version it was read from;
 * with any other version messages take the library's ordinary path. */
typedef struct {
    void *next;
    void (*free_cb)(void *);
} nats_gc_item;

void cl_msg_free(cl_msg *msg)
{
    if (msg == NULL)
        return;
#if NATS_VERSION_MAJOR == 3 && NATS_VERSION_MINOR == 4
    /* natsMsg_Destroy hands each message to cnats' garbage-collector
     * thread and wakes it when idle: one futex wake and one context switch
     * per message on the hot path. With no collector callback it frees the
     * message (and its headers) right here instead. */
    ((nats_gc_item *)(void *)msg)->free_cb = NULL;
#endif
    natsMsg_Destroy((natsMsg *)msg);
}

const char *cl_bus_inbox_prefix(const cl_bus *bus)
{
    return bus->inbox_prefix;
}

bool cl_bus_has_identity(const cl_bus *bus)
{
    return bus->nkey_pub[0] != '\0';
}

void cl_bus_new_token(char out[23])
{
    /* natsInbox is "_INBOX.<22 chars of NUID>"; reuse the NUID part. */
    natsInbox *inbox = NULL;
    if (natsInbox_Create(&inbox) == NATS_OK) {
        const char *p = strrchr(inbox, '.');
        snprintf(out, 23, "%s", p ? p + 1 : inbox);
        natsInbox_Destroy(inbox);
    } else {
        snprintf(out, 23, "t%llx", (unsigned long long)cl_mono_us());
    }
}
