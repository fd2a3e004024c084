/* A cluster's private CA and the leaf certificates it signs, made with
 * OpenSSL 3's libcrypto (cl_tls_certs.h).
 *
 * Owns the files of one secrets directory and nothing else: it never
 * starts a server or opens a connection. OpenSSL's errors are turned into
 * cl_err here, with OpenSSL's own text, and its error queue is left empty. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cl_file.h"
#include "cl_tls_certs.h"

#define MAX_DAYS 36500              /* a hundred years */
#define RENEW_BEFORE_S (30 * 86400) /* a leaf this close to its end is made again */
#define BACKDATE_S 3600             /* notBefore: an hour ago, for clocks a little behind */
#define CN_MAX 64                   /* ub-common-name (RFC 5280) */
#define NAME_MAX_LEN 64
#define PEM_MAX (64 * 1024)

/* ---- errors ------------------------------------------------------------ */

/* Sets err to "<what>: <OpenSSL's errors>" and empties OpenSSL's queue of
 * this thread, so the next message does not carry stale errors. */
__attribute__((format(printf, 3, 4))) static cl_status ossl_err(cl_err *err, cl_status code,
                                                               const char *fmt, ...)
{
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char detail[256] = "";
    size_t used = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (used + 8 >= sizeof(detail))
            continue; /* keep draining the queue */
        if (used > 0) {
            memcpy(detail + used, "; ", 3);
            used += 2;
        }
        ERR_error_string_n(e, detail + used, sizeof(detail) - used);
        used += strlen(detail + used);
    }
    return cl_err_set(err, code, "%s: %s", what, used > 0 ? detail : "no detail from OpenSSL");
}

/* ---- files ------------------------------------------------------------- */

/* Makes the renames in dir durable. */
static cl_status sync_dir(const char *dir, cl_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cl_err_set(err, cl_status_from_errno(errno), "cannot open %s: %s", dir,
                          strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return cl_err_set(err, CL_ERR_IO, "cannot sync %s: %s", dir, strerror(e));
    return CL_OK;
}

/* mkdir -p, each directory made 0700. An existing one is left as it is. */
static cl_status make_dir(const char *dir, cl_err *err)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
        return cl_err_set(err, CL_ERR_INVALID, "directory name too long: %.100s...", dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) == 0) {
            /* Exactly 0700, whatever the umask took away. */
            if (chmod(p, 0700) != 0)
                return cl_err_set(err, cl_status_from_errno(errno), "cannot chmod %s: %s", p,
                                  strerror(errno));
        } else if (errno != EEXIST) {
            return cl_err_set(err, cl_status_from_errno(errno),
                              "cannot create the directory %s: %s", p,
                              strerror(errno));
        }
        *s = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cl_err_set(err, CL_ERR_INVALID, "%s is not a directory", dir);
    return CL_OK;
}

/* Takes dir/.lock (flock, exclusive): two processes making certificates in
 * one directory at once would otherwise mix their halves of a pair.
 * Returns its descriptor (close it to unlock) or -1 with err set. */
static int lock_dir(const char *dir, cl_err *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/.lock", dir) >= (int)sizeof(path)) {
        cl_err_set(err, CL_ERR_INVALID, "directory name too long: %.100s...", dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        cl_err_set(err, cl_status_from_errno(errno), "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            cl_err_set(err, CL_ERR_IO, "cannot lock %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* 1 when path exists, 0 when it does not, -1 (err set) when stat fails. */
static int exists(const char *path, cl_err *err)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    cl_err_set(err, cl_status_from_errno(errno), "cannot stat %s: %s", path, strerror(errno));
    return -1;
}

/* ---- PEM ---------------------------------------------------------------- */

/* The passphrase callback for reading keys: there is none. Without it,
 * OpenSSL would prompt on the terminal for an encrypted key. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static cl_status read_cert(const char *path, X509 **out, cl_err *err)
{
    char *buf;
    size_t len;
    cl_status st = cl_file_read(path, "certificate file", PEM_MAX, false, &buf, &len, NULL, err);
    if (st != CL_OK)
        return st;
    BIO *b = BIO_new_mem_buf(buf, -1);
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    cl_file_free(buf, len);
    if (x == NULL)
        return ossl_err(err, CL_ERR_INVALID, "cannot read a PEM certificate from %s", path);
    *out = x;
    return CL_OK;
}

/* Reads the private key in path. *mode gets the file's permission bits. */
static cl_status read_key(const char *path, EVP_PKEY **out, mode_t *mode, cl_err *err)
{
    char *buf;
    size_t len;
    cl_status st = cl_file_read(path, "private key file", PEM_MAX, false, &buf, &len, mode, err);
    if (st != CL_OK)
        return st;
    BIO *b = BIO_new_mem_buf(buf, -1);
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    cl_file_free(buf, len);
    if (k == NULL)
        return ossl_err(err, CL_ERR_INVALID,
                        "cannot read an unencrypted PEM private key from %s", path);
    *out = k;
    return CL_OK;
}

/* Writes key (0600) and then cert (0644). A crash in between leaves a key
 * that does not match the certificate beside it, which the next call
 * notices and mends. */
static cl_status write_pair(const char *cert_path, const char *key_path, X509 *cert,
                            EVP_PKEY *key, cl_err *err)
{
    cl_status st;
    /* Secure-memory BIO: its buffer is cleared when freed. */
    BIO *kb = BIO_new(BIO_s_secmem());
    BIO *cb = BIO_new(BIO_s_mem());
    if (kb == NULL || cb == NULL ||
        !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(cb, cert)) {
        st = ossl_err(err, CL_ERR_NOMEM, "cannot PEM-encode %s and %s", key_path, cert_path);
        goto out;
    }
    char *p;
    long n = BIO_get_mem_data(kb, &p);
    st = cl_file_write_atomic(key_path, "private key file", p, (size_t)n, 0600, err);
    if (st != CL_OK)
        goto out;
    n = BIO_get_mem_data(cb, &p);
    st = cl_file_write_atomic(cert_path, "certificate file", p, (size_t)n, 0644, err);
out:
    BIO_free(kb);
    BIO_free(cb);
    return st;
}

/* ---- making certificates ------------------------------------------------ */

/* The length of host's address in ip (4 or 16), or 0 when it is a name. */
static int host_ip(const char *host, unsigned char ip[16])
{
    if (inet_pton(AF_INET, host, ip) == 1)
        return 4;
    if (inet_pton(AF_INET6, host, ip) == 1)
        return 16;
    return 0;
}

static cl_status check_host(const char *host, cl_err *err)
{
    if (host == NULL || host[0] == '\0')
        return cl_err_set(err, CL_ERR_INVALID, "a host of the certificate is empty");
    unsigned char ip[16];
    if (host_ip(host, ip) > 0)
        return CL_OK;
    size_t n = strlen(host);
    if (n > 253)
        return cl_err_set(err, CL_ERR_INVALID, "host '%.60s...' is longer than a DNS name may be",
                          host);
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '*'))
            return cl_err_set(err, CL_ERR_INVALID,
                              "host '%.100s' is neither an IP address nor a DNS name "
                              "(character %zu is not a letter, digit, '-', '.', '_' or '*')",
                              host, i + 1);
    }
    return CL_OK;
}

typedef struct {
    const char *cn;           /* subject CN; NULL: an empty subject */
    int days;
    bool ca;
    const char *const *hosts; /* subjectAltName entries (leaf) */
    size_t n_hosts;
    X509 *issuer;             /* NULL: self-signed */
    EVP_PKEY *issuer_key;
} cert_spec;

static bool add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (ext == NULL)
        return false;
    bool ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* subjectAltName built entry by entry rather than from a "DNS:a,IP:b"
 * string, so no host can smuggle in an entry of its own. */
static bool add_san(X509 *x, const char *const *hosts, size_t n, bool critical)
{
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    bool ok = gens != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        GENERAL_NAME *gn = GENERAL_NAME_new();
        ok = gn != NULL;
        unsigned char ip[16];
        int iplen = host_ip(hosts[i], ip);
        if (ok && iplen > 0) {
            ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
            ok = os != NULL && ASN1_OCTET_STRING_set(os, ip, iplen) == 1;
            if (ok)
                GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
            else
                ASN1_OCTET_STRING_free(os);
        } else if (ok) {
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();
            ok = s != NULL && ASN1_STRING_set(s, hosts[i], -1) == 1;
            if (ok)
                GENERAL_NAME_set0_value(gn, GEN_DNS, s);
            else
                ASN1_IA5STRING_free(s);
        }
        if (ok && sk_GENERAL_NAME_push(gens, gn) <= 0)
            ok = false;
        if (!ok)
            GENERAL_NAME_free(gn); /* not in gens */
    }
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical ? 1 : 0,
                                 X509V3_ADD_DEFAULT) == 1;
    GENERAL_NAMES_free(gens);
    return ok;
}

/* A new key and a certificate for it as s says. */
static cl_status make_cert(const cert_spec *s, X509 **out_cert, EVP_PKEY **out_key, cl_err *err)
{
    const char *what = "generate an EC P-256 key";
    X509 *x = NULL;
    X509_NAME *name = NULL;
    BIGNUM *serial = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL)
        goto fail;

    what = "start the certificate";
    x = X509_new();
    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 || X509_set_pubkey(x, key) != 1)
        goto fail;

    what = "make a random serial number";
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        goto fail;
    serial = BN_bin2bn(raw, sizeof(raw), NULL);
    if (serial == NULL || (BN_is_zero(serial) && BN_one(serial) != 1) ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL)
        goto fail;

    what = "set the validity";
    if (X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), s->days, -BACKDATE_S, NULL) == NULL)
        goto fail;
    if (s->issuer != NULL &&
        ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(s->issuer)) > 0 &&
        X509_set1_notAfter(x, X509_get0_notAfter(s->issuer)) != 1)
        goto fail;

    what = "set the subject";
    name = X509_NAME_new();
    if (name == NULL ||
        (s->cn != NULL && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                                     (const unsigned char *)s->cn, -1, -1,
                                                     0) != 1) ||
        X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, s->issuer != NULL ? X509_get_subject_name(s->issuer) : name) !=
            1)
        goto fail;

    /* The issuer must be set in the context before authorityKeyIdentifier,
     * which copies its subjectKeyIdentifier; a self-signed CA leaves that
     * extension out (RFC 5280 4.2.1.1 allows it). */
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, s->issuer != NULL ? s->issuer : x, x, NULL, NULL, 0);
    what = "add the extensions";
    if (s->ca) {
        if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
            !add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
            !add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
            goto fail;
    } else {
        if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
            !add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
            !add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") ||
            !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
            /* "keyid", not "keyid:always": a CA brought by the operator
             * may have no subjectKeyIdentifier to copy. */
            !add_ext(x, &ctx, NID_authority_key_identifier, "keyid"))
            goto fail;
        what = "add the subjectAltName";
        /* An empty subject requires a critical subjectAltName (RFC 5280 4.2.1.6). */
        if (!add_san(x, s->hosts, s->n_hosts, s->cn == NULL))
            goto fail;
    }

    what = "sign the certificate";
    if (X509_sign(x, s->issuer_key != NULL ? s->issuer_key : key, EVP_sha256()) <= 0)
        goto fail;

    X509_NAME_free(name);
    BN_free(serial);
    *out_cert = x;
    *out_key = key;
    return CL_OK;

fail:;
    cl_status st = ossl_err(err, CL_ERR_NOMEM, "cannot %s", what);
    X509_NAME_free(name);
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(key);
    return st;
}

/* ---- checking certificates ---------------------------------------------- */

/* Whether cert verifies against the trusted certificates of store; *why
 * gets OpenSSL's reason (a static string) when it does not. */
static bool verify_with(X509_STORE *store, X509 *cert, const char **why)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, store, cert, NULL) != 1) {
        *why = "cannot set up the verification (out of memory)";
        X509_STORE_CTX_free(ctx);
        return false;
    }
    bool ok = X509_verify_cert(ctx) == 1;
    if (!ok)
        *why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
    X509_STORE_CTX_free(ctx);
    return ok;
}

static bool verifies_against(X509 *cert, X509 *ca)
{
    X509_STORE *store = X509_STORE_new();
    const char *why;
    bool ok = store != NULL && X509_STORE_add_cert(store, ca) == 1 &&
              verify_with(store, cert, &why);
    X509_STORE_free(store);
    return ok;
}

typedef struct {
    char dir[PATH_MAX];
    char ca_pem[PATH_MAX];
    char ca_key[PATH_MAX];
} ca_paths;

static cl_status ca_paths_init(ca_paths *p, const char *dir, cl_err *err)
{
    if (dir == NULL || dir[0] == '\0')
        return cl_err_set(err, CL_ERR_INVALID, "no directory given for the certificates");
    if (snprintf(p->dir, sizeof(p->dir), "%s", dir) >= (int)sizeof(p->dir) ||
        snprintf(p->ca_pem, sizeof(p->ca_pem), "%s/ca.pem", dir) >= (int)sizeof(p->ca_pem) ||
        snprintf(p->ca_key, sizeof(p->ca_key), "%s/ca.key", dir) >= (int)sizeof(p->ca_key))
        return cl_err_set(err, CL_ERR_INVALID, "directory name too long: %.100s...", dir);
    return CL_OK;
}

/* Reads the CA pair and checks that it can be used: a private key nobody
 * else can read, matching a CA certificate that has not expired. */
static cl_status load_ca(const ca_paths *p, X509 **out_cert, EVP_PKEY **out_key, cl_err *err)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    mode_t mode = 0;
    cl_status st = read_key(p->ca_key, &key, &mode, err);
    /* The mode is refused even when the key does not parse: say the
     * more important thing. */
    if ((st == CL_OK || st == CL_ERR_INVALID) && (mode & 077) != 0) {
        st = cl_err_set(err, CL_ERR_DENIED,
                        "refusing to use the CA key %s: its mode is 0%03o, so group or others "
                        "can get at it (it must be 0600); if nobody else can have read it, "
                        "chmod 600 it, else remove ca.key and ca.pem to make a new CA",
                        p->ca_key, (unsigned)mode);
        goto out;
    }
    if (st == CL_ERR_NOT_FOUND)
        cl_err_prefix(err, "no CA in %s (make it first)", p->dir);
    if (st != CL_OK)
        goto out;
    st = read_cert(p->ca_pem, &cert, err);
    if (st == CL_ERR_NOT_FOUND)
        cl_err_prefix(err, "no CA in %s (make it first)", p->dir);
    if (st != CL_OK)
        goto out;
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the key in %s does not belong to the certificate in %s; remove both "
                        "to make a new CA",
                        p->ca_key, p->ca_pem);
        goto out;
    }
    if (X509_check_ca(cert) == 0) {
        st = cl_err_set(err, CL_ERR_INVALID, "%s is not a CA certificate", p->ca_pem);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
        ERR_clear_error();
        st = cl_err_set(err, CL_ERR_INVALID,
                        "the CA in %s has expired (or its end date does not parse); remove "
                        "ca.pem and ca.key to make a new one, then give every actor the new "
                        "ca.pem",
                        p->ca_pem);
        goto out;
    }
    *out_cert = cert;
    *out_key = key;
    return CL_OK;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return st;
}

/* Whether the certificate in pem still serves: it and the key in key_path
 * belong together, the key is private, the CA signed it, it has more than
 * 30 days left and it covers every host. Any failure means "no": the pair
 * is made again. */
static bool leaf_is_current(const char *pem, const char *key_path, X509 *ca,
                            const char *const *hosts, size_t n_hosts)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    mode_t mode = 0;
    bool ok = read_key(key_path, &key, &mode, NULL) == CL_OK && (mode & 077) == 0 &&
              read_cert(pem, &cert, NULL) == CL_OK && X509_check_private_key(cert, key) == 1 &&
              verifies_against(cert, ca);
    if (ok) {
        time_t renew = time(NULL) + RENEW_BEFORE_S;
        ok = X509_cmp_time(X509_get0_notAfter(cert), &renew) > 0;
    }
    for (size_t i = 0; ok && i < n_hosts; i++) {
        unsigned char ip[16];
        int iplen = host_ip(hosts[i], ip);
        ok = iplen > 0 ? X509_check_ip(cert, ip, (size_t)iplen, 0) == 1
                       : X509_check_host(cert, hosts[i], 0,
                                         X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

/* ---- public --------------------------------------------------------------- */

static cl_status ensure_ca_locked(const ca_paths *p, const char *cn, int days, cl_err *err)
{
    int have_pem = exists(p->ca_pem, err);
    int have_key = have_pem >= 0 ? exists(p->ca_key, err) : -1;
    if (have_pem < 0 || have_key < 0)
        return err != NULL ? err->code : CL_ERR_IO;
    if (have_pem && have_key) {
        X509 *cert;
        EVP_PKEY *key;
        cl_status st = load_ca(p, &cert, &key, err);
        if (st == CL_OK) {
            X509_free(cert);
            EVP_PKEY_free(key);
        }
        return st;
    }
    /* Half a pair (a crash between the two writes): start afresh. The old
     * certificate goes first, so that a crash below never leaves a new key
     * beside it, which would look like a mismatched pair. */
    if (have_pem && unlink(p->ca_pem) != 0)
        return cl_err_set(err, cl_status_from_errno(errno), "cannot remove %s: %s", p->ca_pem,
                          strerror(errno));
    cert_spec spec = {.cn = cn, .days = days, .ca = true};
    X509 *cert;
    EVP_PKEY *key;
    cl_status st = make_cert(&spec, &cert, &key, err);
    if (st != CL_OK) {
        cl_err_prefix(err, "making the CA %s", p->ca_pem);
        return st;
    }
    st = write_pair(p->ca_pem, p->ca_key, cert, key, err);
    X509_free(cert);
    EVP_PKEY_free(key);
    return st == CL_OK ? sync_dir(p->dir, err) : st;
}

cl_status cl_tls_ensure_ca(const char *dir, const char *cn, int days, cl_err *err)
{
    ca_paths p;
    cl_status st = ca_paths_init(&p, dir, err);
    if (st != CL_OK)
        return st;
    if (cn == NULL || cn[0] == '\0' || strlen(cn) > CN_MAX)
        return cl_err_set(err, CL_ERR_INVALID, "the CA's name must have 1 to %d characters",
                          CN_MAX);
    if (days < 1 || days > MAX_DAYS)
        return cl_err_set(err, CL_ERR_INVALID, "a CA's validity must be 1 to %d days, not %d",
                          MAX_DAYS, days);
    ERR_clear_error();
    st = make_dir(dir, err);
    if (st != CL_OK)
        return st;
    int lock = lock_dir(dir, err);
    if (lock < 0)
        return err != NULL ? err->code : CL_ERR_IO;
    st = ensure_ca_locked(&p, cn, days, err);
    close(lock);
    return st;
}

static cl_status check_name(const char *name, cl_err *err)
{
    size_t n = name != NULL ? strlen(name) : 0;
    bool ok = n > 0 && n <= NAME_MAX_LEN && name[0] != '.' && strcmp(name, "ca") != 0;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (!ok)
        return cl_err_set(err, CL_ERR_INVALID,
                          "'%.80s' cannot name a certificate: use 1 to %d letters, digits, '.', "
                          "'_' or '-', not starting with '.', and not \"ca\"",
                          name != NULL ? name : "", NAME_MAX_LEN);
    return CL_OK;
}

cl_status cl_tls_ensure_leaf(const char *dir, const char *name, const char *const *hosts,
                             size_t n_hosts, int days, bool replace, cl_err *err)
{
    ca_paths p;
    cl_status st = ca_paths_init(&p, dir, err);
    if (st != CL_OK || (st = check_name(name, err)) != CL_OK)
        return st;
    if (hosts == NULL || n_hosts == 0)
        return cl_err_set(err, CL_ERR_INVALID, "a certificate needs at least one host");
    for (size_t i = 0; i < n_hosts; i++)
        if ((st = check_host(hosts[i], err)) != CL_OK)
            return st;
    if (days < 1 || days > MAX_DAYS)
        return cl_err_set(err, CL_ERR_INVALID,
                          "a certificate's validity must be 1 to %d days, not %d", MAX_DAYS, days);
    char pem[PATH_MAX], key_path[PATH_MAX];
    if (snprintf(pem, sizeof(pem), "%s/%s.pem", dir, name) >= (int)sizeof(pem) ||
        snprintf(key_path, sizeof(key_path), "%s/%s.key", dir, name) >= (int)sizeof(key_path))
        return cl_err_set(err, CL_ERR_INVALID, "directory name too long: %.100s...", dir);

    ERR_clear_error();
    int lock = lock_dir(dir, err);
    if (lock < 0)
        return err != NULL ? err->code : CL_ERR_IO;
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    st = load_ca(&p, &ca, &ca_key, err);
    if (st != CL_OK || (!replace && leaf_is_current(pem, key_path, ca, hosts, n_hosts)))
        goto out;
    cert_spec spec = {
        .cn = strlen(hosts[0]) <= CN_MAX ? hosts[0] : NULL,
        .days = days,
        .ca = false,
        .hosts = hosts,
        .n_hosts = n_hosts,
        .issuer = ca,
        .issuer_key = ca_key,
    };
    st = make_cert(&spec, &cert, &key, err);
    if (st != CL_OK) {
        cl_err_prefix(err, "making %s", pem);
        goto out;
    }
    st = write_pair(pem, key_path, cert, key, err);
    if (st == CL_OK)
        st = sync_dir(dir, err);
out:
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    X509_free(cert);
    EVP_PKEY_free(key);
    close(lock);
    return st;
}

cl_status cl_tls_verify_file(const char *cert_file, const char *ca_file, cl_err *err)
{
    if (cert_file == NULL || ca_file == NULL)
        return cl_err_set(err, CL_ERR_INVALID, "no certificate or CA file given");
    ERR_clear_error();
    X509 *cert = NULL;
    cl_status st = read_cert(cert_file, &cert, err);
    if (st != CL_OK)
        return st;
    X509_STORE *store = NULL;
    if (access(ca_file, R_OK) != 0) {
        st = cl_err_set(err, cl_status_from_errno(errno), "cannot read %s: %s", ca_file,
                        strerror(errno));
        goto out;
    }
    store = X509_STORE_new();
    if (store == NULL || X509_STORE_load_file(store, ca_file) != 1) {
        st = ossl_err(err, CL_ERR_INVALID, "cannot load the CA certificates of %s", ca_file);
        goto out;
    }
    const char *why;
    if (!verify_with(store, cert, &why)) {
        ERR_clear_error();
        st = cl_err_set(err, CL_ERR_INVALID, "%s does not verify against %s: %s", cert_file,
                        ca_file, why);
    }
out:
    X509_STORE_free(store);
    X509_free(cert);
    return st;
}
