/* Tests of the cluster's private CA and TLS certificates
 * (actors/common/tls_certs.c): files and modes, what the certificates say
 * (read back with libcrypto and with the openssl program), when a pair is
 * kept and when made again, refusals, and a real nats-server serving TLS
 * with the leaf. Each test works in a fresh temporary directory. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cl_clock.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"
#include "cl_tls_certs.h"

#define CA_DAYS 3650
#define LEAF_DAYS 825

typedef struct {
    char root[128];    /* mkdtemp: everything of the test is under it */
    char dir[192];     /* root/data/secrets: made by cl_tls_ensure_ca */
    cl_test_nats srv;  /* started by the nats-server test only */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/cl-test-tls-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/data/secrets", f->root);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Runs also when an assertion failed: the nats-server never outlives the test. */
static int teardown(void **state)
{
    fixture *f = *state;
    cl_test_nats_stop(&f->srv);
    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* out = dir/file */
static void path_of(char *out, size_t cap, const char *dir, const char *file)
{
    int n = snprintf(out, cap, "%s/%s", dir, file);
    assert_true(n > 0 && (size_t)n < cap);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static char *slurp(const char *dir, const char *file)
{
    char p[512];
    path_of(p, sizeof(p), dir, file);
    char *s = cl_test_read_file(p, NULL);
    assert_non_null(s);
    return s;
}

/* Whether dir/file has the contents `want`. */
static bool same_bytes(const char *dir, const char *file, const char *want)
{
    char *now = slurp(dir, file);
    bool same = strcmp(now, want) == 0;
    free(now);
    return same;
}

static X509 *load_cert(const char *dir, const char *file)
{
    char p[512];
    path_of(p, sizeof(p), dir, file);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static bool ext_critical(X509 *x, int nid)
{
    int i = X509_get_ext_by_NID(x, nid, -1);
    assert_true(i >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

static void assert_cn(X509 *x, const char *want)
{
    char cn[256];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                          sizeof(cn)) > 0);
    assert_string_equal(cn, want);
}

/* The key of x is EC P-256 and x is signed with ECDSA SHA-256. */
static void assert_p256_sha256(X509 *x)
{
    EVP_PKEY *pk = X509_get0_pubkey(x);
    assert_non_null(pk);
    assert_true(EVP_PKEY_is_a(pk, "EC"));
    char group[64];
    assert_int_equal(EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
}

/* Valid from about an hour ago for exactly `days` days. */
static void assert_validity(X509 *x, int days)
{
    int d, s;
    assert_int_equal(ASN1_TIME_diff(&d, &s, NULL, X509_get0_notBefore(x)), 1);
    assert_int_equal(d, 0);
    assert_in_range(-s, 3600 - 120, 3600 + 5);
    assert_int_equal(ASN1_TIME_diff(&d, &s, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
    assert_int_equal(d, days);
    assert_int_equal(s, 0);
}

static int serial_bits(X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    assert_non_null(bn);
    int bits = BN_num_bits(bn);
    BN_free(bn);
    return bits;
}

/* Runs argv (searched on PATH) in a child that dies with the test, its
 * stdout and stderr into root/run.out, which *out receives (malloc'd).
 * Returns the exit status; a child still running after timeout_ms is
 * killed and counts as -1. */
static int run(const fixture *f, char *const argv[], int timeout_ms, char **out)
{
    char log[256];
    path_of(log, sizeof(log), f->root, "run.out");
    pid_t pid = cl_test_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int rc = cl_test_wait_exit(pid, timeout_ms);
    cl_test_kill(pid);
    *out = cl_test_read_file(log, NULL);
    assert_non_null(*out);
    return rc;
}

static void make_ca(const char *dir)
{
    cl_err err;
    cl_status st = cl_tls_ensure_ca(dir, "clipper test CA", CA_DAYS, &err);
    if (st != CL_OK)
        fail_msg("cl_tls_ensure_ca(%s): %s", dir, err.msg);
}

static void make_leaf(const char *dir, const char *const *hosts, size_t n, int days,
                      bool replace)
{
    cl_err err;
    cl_status st = cl_tls_ensure_leaf(dir, "server", hosts, n, days, replace, &err);
    if (st != CL_OK)
        fail_msg("cl_tls_ensure_leaf(%s): %s", dir, err.msg);
}

static void assert_verifies(const char *dir, const char *ca_dir)
{
    char pem[512], ca[512];
    path_of(pem, sizeof(pem), dir, "server.pem");
    path_of(ca, sizeof(ca), ca_dir, "ca.pem");
    cl_err err;
    cl_status st = cl_tls_verify_file(pem, ca, &err);
    if (st != CL_OK)
        fail_msg("%s does not verify: %s", pem, err.msg);
}

/* ---- the CA --------------------------------------------------------------- */

static void test_ca_is_made_private_with_its_parents_and_kept_on_the_second_call(void **state)
{
    fixture *f = *state;
    mode_t old = umask(0); /* the modes must not come from the umask */
    make_ca(f->dir);
    umask(old);

    char data[256], key[256], pem[256];
    path_of(data, sizeof(data), f->root, "data");
    path_of(key, sizeof(key), f->dir, "ca.key");
    path_of(pem, sizeof(pem), f->dir, "ca.pem");
    assert_int_equal(mode_of(data), 0700);
    assert_int_equal(mode_of(f->dir), 0700);
    assert_int_equal(mode_of(key), 0600);
    assert_int_equal(mode_of(pem), 0644);

    /* Only the pair and the lock: no temporary file is left behind. */
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (strcmp(e->d_name, "ca.pem") != 0 && strcmp(e->d_name, "ca.key") != 0 &&
            strcmp(e->d_name, ".lock") != 0)
            fail_msg("unexpected file %s in %s", e->d_name, f->dir);
    }
    closedir(d);
    assert_int_equal(n, 3);

    char *pem1 = slurp(f->dir, "ca.pem");
    char *key1 = slurp(f->dir, "ca.key");
    assert_non_null(strstr(key1, "-----BEGIN PRIVATE KEY-----"));
    make_ca(f->dir);
    assert_true(same_bytes(f->dir, "ca.pem", pem1));
    assert_true(same_bytes(f->dir, "ca.key", key1));
    free(pem1);
    free(key1);

    X509 *x = load_cert(f->dir, "ca.pem");
    assert_cn(x, "clipper test CA");
    assert_int_equal(X509_check_issued(x, x), X509_V_OK); /* self-signed */
    assert_int_equal(X509_check_ca(x), 1);
    assert_int_equal(X509_get_pathlen(x), 0);
    assert_true(ext_critical(x, NID_basic_constraints));
    assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_true(ext_critical(x, NID_key_usage));
    assert_p256_sha256(x);
    assert_validity(x, CA_DAYS);
    /* 128 random bits: fewer than 100 significant happens once in 2^28. */
    assert_in_range(serial_bits(x), 100, 128);
    X509_free(x);

    cl_err err;
    assert_int_equal(cl_tls_verify_file(pem, pem, &err), CL_OK);
}

static void test_two_cas_have_different_keys_and_serials(void **state)
{
    fixture *f = *state;
    char other[256];
    path_of(other, sizeof(other), f->root, "other");
    make_ca(f->dir);
    make_ca(other);
    X509 *a = load_cert(f->dir, "ca.pem");
    X509 *b = load_cert(other, "ca.pem");
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)),
                         0);
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(b)), 1);
    X509_free(a);
    X509_free(b);
}

static void test_readable_ca_key_is_refused_naming_the_mode(void **state)
{
    fixture *f = *state;
    make_ca(f->dir);
    char key[256];
    path_of(key, sizeof(key), f->dir, "ca.key");
    char *key1 = slurp(f->dir, "ca.key");

    static const mode_t bad[] = {0644, 0640, 0604, 0660};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(chmod(key, bad[i]), 0);
        char want[16];
        snprintf(want, sizeof(want), "0%03o", (unsigned)bad[i]);
        cl_err err;
        assert_int_equal(cl_tls_ensure_ca(f->dir, "clipper test CA", CA_DAYS, &err),
                         CL_ERR_DENIED);
        assert_non_null(strstr(err.msg, "mode is"));
        assert_non_null(strstr(err.msg, want));
        assert_non_null(strstr(err.msg, key));
        const char *hosts[] = {"127.0.0.1"};
        assert_int_equal(cl_tls_ensure_leaf(f->dir, "server", hosts, 1, LEAF_DAYS, false, &err),
                         CL_ERR_DENIED);
        assert_non_null(strstr(err.msg, want));
    }
    /* Left as it was, and nothing signed with it. */
    assert_true(same_bytes(f->dir, "ca.key", key1));
    assert_int_equal(mode_of(key), 0660);
    char leaf[256];
    path_of(leaf, sizeof(leaf), f->dir, "server.pem");
    assert_int_equal(access(leaf, F_OK), -1);
    free(key1);

    assert_int_equal(chmod(key, 0600), 0);
    make_ca(f->dir);
    const char *hosts[] = {"127.0.0.1"};
    make_leaf(f->dir, hosts, 1, LEAF_DAYS, false);
}

static void test_half_a_ca_is_made_again_and_a_mismatched_one_refused(void **state)
{
    fixture *f = *state;
    char pem[256], other[256], other_pem[256];
    path_of(pem, sizeof(pem), f->dir, "ca.pem");
    path_of(other, sizeof(other), f->root, "other");
    path_of(other_pem, sizeof(other_pem), other, "ca.pem");

    /* ca.pem lost (a crash between the writes): a new pair. */
    make_ca(f->dir);
    char *key1 = slurp(f->dir, "ca.key");
    assert_int_equal(unlink(pem), 0);
    make_ca(f->dir);
    assert_false(same_bytes(f->dir, "ca.key", key1));
    free(key1);
    assert_int_equal(cl_tls_verify_file(pem, pem, NULL), CL_OK);

    /* Another CA's certificate beside our key: refused, not replaced. */
    make_ca(other);
    char *theirs = slurp(other, "ca.pem");
    FILE *fp = fopen(pem, "w");
    assert_non_null(fp);
    fputs(theirs, fp);
    fclose(fp);
    free(theirs);
    cl_err err;
    assert_int_equal(cl_tls_ensure_ca(f->dir, "clipper test CA", CA_DAYS, &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "does not belong"));
    assert_non_null(strstr(err.msg, pem));

    /* Not PEM at all: the file and OpenSSL's reason. */
    fp = fopen(pem, "w");
    assert_non_null(fp);
    fputs("not a certificate\n", fp);
    fclose(fp);
    assert_int_equal(cl_tls_ensure_ca(f->dir, "clipper test CA", CA_DAYS, &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, pem));
    assert_non_null(strstr(err.msg, "no start line"));
    const char *hosts[] = {"localhost"};
    assert_int_equal(cl_tls_ensure_leaf(f->dir, "server", hosts, 1, LEAF_DAYS, false, &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "no start line"));
}

/* ---- leaves --------------------------------------------------------------- */

static void test_leaf_for_addresses_and_names_verifies_here_and_with_openssl(void **state)
{
    fixture *f = *state;
    make_ca(f->dir);
    mode_t old = umask(0);
    const char *hosts[] = {"127.0.0.1", "localhost", "::1"};
    make_leaf(f->dir, hosts, 3, LEAF_DAYS, false);
    umask(old);

    char key[256], pem[256], ca[256];
    path_of(key, sizeof(key), f->dir, "server.key");
    path_of(pem, sizeof(pem), f->dir, "server.pem");
    path_of(ca, sizeof(ca), f->dir, "ca.pem");
    assert_int_equal(mode_of(key), 0600);
    assert_int_equal(mode_of(pem), 0644);
    assert_verifies(f->dir, f->dir);

    char *out;
    char *verify[] = {"openssl", "verify", "-CAfile", ca, pem, NULL};
    int rc = run(f, verify, 10000, &out);
    if (rc != 0 || strstr(out, "server.pem: OK") == NULL)
        fail_msg("openssl verify exited %d: %s", rc, out);
    free(out);
    /* As a TLS server and as a client, for each of its names. */
    char *verify_server[] = {"openssl", "verify", "-CAfile", ca, "-purpose", "sslserver",
                             "-verify_ip", "::1", pem, NULL};
    rc = run(f, verify_server, 10000, &out);
    if (rc != 0)
        fail_msg("openssl verify -purpose sslserver -verify_ip ::1 exited %d: %s", rc, out);
    free(out);
    char *verify_client[] = {"openssl", "verify", "-CAfile", ca, "-purpose", "sslclient",
                             "-verify_hostname", "localhost", pem, NULL};
    rc = run(f, verify_client, 10000, &out);
    if (rc != 0)
        fail_msg("openssl verify -purpose sslclient -verify_hostname exited %d: %s", rc, out);
    free(out);
    char *wrong_ip[] = {"openssl", "verify", "-CAfile", ca, "-verify_ip", "10.9.9.9", pem, NULL};
    rc = run(f, wrong_ip, 10000, &out);
    assert_int_not_equal(rc, 0);
    free(out);

    char *san[] = {"openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", pem, NULL};
    rc = run(f, san, 10000, &out);
    if (rc != 0 || strstr(out, "IP Address:127.0.0.1") == NULL ||
        strstr(out, "DNS:localhost") == NULL || strstr(out, "IP Address:0:0:0:0:0:0:0:1") == NULL)
        fail_msg("openssl x509 -ext subjectAltName exited %d: %s", rc, out);
    /* ::1 is an address, not a name, and no address became a name. */
    assert_null(strstr(out, "DNS:::1"));
    assert_null(strstr(out, "DNS:127"));
    free(out);

    char *key_text = slurp(f->dir, "server.key");
    assert_non_null(strstr(key_text, "-----BEGIN PRIVATE KEY-----"));
    free(key_text);

    X509 *x = load_cert(f->dir, "server.pem");
    X509 *cax = load_cert(f->dir, "ca.pem");
    assert_cn(x, "127.0.0.1");
    assert_int_equal(X509_check_issued(cax, x), X509_V_OK);
    assert_int_equal(X509_check_ca(x), 0);
    assert_true(ext_critical(x, NID_basic_constraints));
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    assert_int_equal(X509_get_extended_key_usage(x) & (XKU_SSL_SERVER | XKU_SSL_CLIENT),
                     XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_false(ext_critical(x, NID_subject_alt_name));
    assert_p256_sha256(x);
    assert_validity(x, LEAF_DAYS);
    assert_in_range(serial_bits(x), 100, 128);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(x, "example.com", 0, 0, NULL), 1);
    X509_free(x);
    X509_free(cax);
}

static void test_leaf_is_kept_while_it_covers_the_hosts_and_made_again_otherwise(void **state)
{
    fixture *f = *state;
    make_ca(f->dir);
    const char *hosts[] = {"127.0.0.1", "localhost"};
    make_leaf(f->dir, hosts, 2, LEAF_DAYS, false);
    char *pem1 = slurp(f->dir, "server.pem");
    char *key1 = slurp(f->dir, "server.key");

    /* The same hosts, or fewer: kept. */
    make_leaf(f->dir, hosts, 2, LEAF_DAYS, false);
    const char *fewer[] = {"localhost"};
    make_leaf(f->dir, fewer, 1, LEAF_DAYS, false);
    assert_true(same_bytes(f->dir, "server.pem", pem1));
    assert_true(same_bytes(f->dir, "server.key", key1));

    /* replace: a new key and certificate for the same hosts. */
    make_leaf(f->dir, hosts, 2, LEAF_DAYS, true);
    assert_false(same_bytes(f->dir, "server.pem", pem1));
    assert_false(same_bytes(f->dir, "server.key", key1));
    assert_verifies(f->dir, f->dir);
    free(pem1);
    free(key1);

    /* Another address (a restart elsewhere): made again, for it only. */
    pem1 = slurp(f->dir, "server.pem");
    const char *moved[] = {"10.1.2.3", "node-a.example", "127.0.0.1"};
    make_leaf(f->dir, moved, 3, LEAF_DAYS, false);
    assert_false(same_bytes(f->dir, "server.pem", pem1));
    free(pem1);
    assert_verifies(f->dir, f->dir);
    X509 *x = load_cert(f->dir, "server.pem");
    assert_cn(x, "10.1.2.3");
    assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
    assert_int_equal(X509_check_host(x, "node-a.example", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    X509_free(x);

    /* A key someone made group-readable: the pair is made again, private. */
    pem1 = slurp(f->dir, "server.pem");
    char key[256];
    path_of(key, sizeof(key), f->dir, "server.key");
    assert_int_equal(chmod(key, 0640), 0);
    make_leaf(f->dir, moved, 3, LEAF_DAYS, false);
    assert_false(same_bytes(f->dir, "server.pem", pem1));
    assert_int_equal(mode_of(key), 0600);
    free(pem1);

    /* The key lost (a crash between the writes): made again. */
    pem1 = slurp(f->dir, "server.pem");
    assert_int_equal(unlink(key), 0);
    make_leaf(f->dir, moved, 3, LEAF_DAYS, false);
    assert_false(same_bytes(f->dir, "server.pem", pem1));
    free(pem1);
}

static void test_leaf_within_30_days_of_its_end_is_made_again(void **state)
{
    fixture *f = *state;
    make_ca(f->dir);
    const char *hosts[] = {"localhost"};
    /* 31 days from an hour ago: more than 30 left, kept. */
    make_leaf(f->dir, hosts, 1, 31, false);
    char *pem1 = slurp(f->dir, "server.pem");
    make_leaf(f->dir, hosts, 1, 31, false);
    assert_true(same_bytes(f->dir, "server.pem", pem1));
    free(pem1);
    /* 10 days: made again on every call. */
    make_leaf(f->dir, hosts, 1, 10, true);
    pem1 = slurp(f->dir, "server.pem");
    make_leaf(f->dir, hosts, 1, 10, false);
    assert_false(same_bytes(f->dir, "server.pem", pem1));
    free(pem1);
    X509 *x = load_cert(f->dir, "server.pem");
    assert_validity(x, 10);
    X509_free(x);
}

static void test_leaf_does_not_verify_against_another_ca(void **state)
{
    fixture *f = *state;
    char other[256], pem[256], other_ca[256];
    path_of(other, sizeof(other), f->root, "other");
    path_of(pem, sizeof(pem), f->dir, "server.pem");
    path_of(other_ca, sizeof(other_ca), other, "ca.pem");
    make_ca(f->dir);
    make_ca(other);
    const char *hosts[] = {"127.0.0.1"};
    make_leaf(f->dir, hosts, 1, LEAF_DAYS, false);
    assert_verifies(f->dir, f->dir);

    cl_err err;
    assert_int_equal(cl_tls_verify_file(pem, other_ca, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, pem));
    assert_non_null(strstr(err.msg, other_ca));
    assert_non_null(strstr(err.msg, "unable to get local issuer certificate"));

    char *out;
    char *verify[] = {"openssl", "verify", "-CAfile", other_ca, pem, NULL};
    int rc = run(f, verify, 10000, &out);
    if (rc == 0 || rc == -1)
        fail_msg("openssl verify against another CA exited %d: %s", rc, out);
    free(out);

    /* The CA replaced: the leaf it no longer signs is made again. */
    char ca_pem[256], ca_key[256];
    path_of(ca_pem, sizeof(ca_pem), f->dir, "ca.pem");
    path_of(ca_key, sizeof(ca_key), f->dir, "ca.key");
    assert_int_equal(unlink(ca_pem), 0);
    assert_int_equal(unlink(ca_key), 0);
    make_ca(f->dir);
    assert_int_equal(cl_tls_verify_file(pem, ca_pem, NULL), CL_ERR_INVALID);
    make_leaf(f->dir, hosts, 1, LEAF_DAYS, false);
    assert_verifies(f->dir, f->dir);
}

static void test_long_name_gets_an_empty_subject_and_a_critical_san(void **state)
{
    fixture *f = *state;
    make_ca(f->dir);
    char host[100];
    memset(host, 'a', 80);
    snprintf(host + 80, sizeof(host) - 80, ".example");
    const char *hosts[] = {host, "127.0.0.1"};
    make_leaf(f->dir, hosts, 2, LEAF_DAYS, false);
    assert_verifies(f->dir, f->dir);
    X509 *x = load_cert(f->dir, "server.pem");
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
    assert_true(ext_critical(x, NID_subject_alt_name));
    assert_int_equal(X509_check_host(x, host, 0, 0, NULL), 1);
    X509_free(x);
}

static void test_bad_arguments_and_missing_files_are_named(void **state)
{
    fixture *f = *state;
    cl_err err;
    const char *hosts[] = {"localhost"};
    assert_int_equal(cl_tls_ensure_ca(NULL, "x", 10, &err), CL_ERR_INVALID);
    assert_int_equal(cl_tls_ensure_ca(f->dir, "", 10, &err), CL_ERR_INVALID);
    assert_int_equal(cl_tls_ensure_ca(f->dir, "x", 0, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not 0"));

    /* No CA yet. */
    char root_ca[256];
    path_of(root_ca, sizeof(root_ca), f->root, "ca.key");
    assert_int_equal(cl_tls_ensure_leaf(f->root, "server", hosts, 1, LEAF_DAYS, false, &err),
                     CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no CA in"));
    assert_non_null(strstr(err.msg, root_ca));

    make_ca(f->dir);
    static const char *const bad_names[] = {"", "ca", "../x", ".hidden", "a/b", "a b"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_int_equal(
            cl_tls_ensure_leaf(f->dir, bad_names[i], hosts, 1, LEAF_DAYS, false, &err),
            CL_ERR_INVALID);
        assert_non_null(strstr(err.msg, "cannot name a certificate"));
    }
    assert_int_equal(cl_tls_ensure_leaf(f->dir, NULL, hosts, 1, LEAF_DAYS, false, &err),
                     CL_ERR_INVALID);
    assert_int_equal(cl_tls_ensure_leaf(f->dir, "server", hosts, 0, LEAF_DAYS, false, &err),
                     CL_ERR_INVALID);
    assert_int_equal(cl_tls_ensure_leaf(f->dir, "server", NULL, 1, LEAF_DAYS, false, &err),
                     CL_ERR_INVALID);
    assert_int_equal(cl_tls_ensure_leaf(f->dir, "server", hosts, 1, 0, false, &err),
                     CL_ERR_INVALID);
    static const char *const bad_hosts[] = {"", "a b", "evil,DNS:x", "[::1]", "h\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        const char *h[] = {"localhost", bad_hosts[i]};
        assert_int_equal(cl_tls_ensure_leaf(f->dir, "server", h, 2, LEAF_DAYS, false, &err),
                         CL_ERR_INVALID);
    }
    const char *with_null[] = {"localhost", NULL};
    assert_int_equal(cl_tls_ensure_leaf(f->dir, "server", with_null, 2, LEAF_DAYS, false, &err),
                     CL_ERR_INVALID);
    char pem[256];
    path_of(pem, sizeof(pem), f->dir, "server.pem");
    assert_int_equal(access(pem, F_OK), -1);

    char ca[256], missing[256];
    path_of(ca, sizeof(ca), f->dir, "ca.pem");
    path_of(missing, sizeof(missing), f->dir, "missing.pem");
    assert_int_equal(cl_tls_verify_file(missing, ca, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(cl_tls_verify_file(ca, missing, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, missing));
}

/* ---- a real nats-server --------------------------------------------------- */

static void write_conf(const char *path, const char *cert, const char *key)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n  timeout: 2\n}\n", cert, key);
    assert_int_equal(fclose(fp), 0);
}

static void test_nats_server_serves_tls_with_the_leaf_and_refuses_a_wrong_key(void **state)
{
    fixture *f = *state;
    make_ca(f->dir);
    const char *hosts[] = {"127.0.0.1", "localhost", "::1"};
    make_leaf(f->dir, hosts, 3, LEAF_DAYS, false);
    char pem[256], key[256], conf[256];
    path_of(pem, sizeof(pem), f->dir, "server.pem");
    path_of(key, sizeof(key), f->dir, "server.key");
    path_of(conf, sizeof(conf), f->root, "nats.conf");
    write_conf(conf, pem, key);

    /* The harness passes -a 127.0.0.1 -p <free port>, so the file holds
     * only the tls block. nats-server reads and checks the pair at start
     * and exits when they do not belong together. */
    assert_int_equal(cl_test_nats_start_conf(&f->srv, conf), 0);
    cl_sleep_ms(1000);
    int status;
    assert_int_equal(waitpid((pid_t)f->srv.pid, &status, WNOHANG), 0); /* still up */
    char log[300];
    snprintf(log, sizeof(log), "%s/nats.log", f->srv.dir);
    char *text = cl_test_read_file(log, NULL);
    assert_non_null(text);
    if (strstr(text, "TLS required for client connections") == NULL)
        fail_msg("nats-server log without TLS:\n%s", text);
    free(text);
    assert_int_equal(cl_test_nats_stop(&f->srv), 0);

    /* The certificate with another leaf's key: refused at start. */
    assert_int_equal(cl_tls_ensure_leaf(f->dir, "other", hosts, 3, LEAF_DAYS, false, NULL),
                     CL_OK);
    char other_key[256], bad_conf[256], port[16];
    path_of(other_key, sizeof(other_key), f->dir, "other.key");
    path_of(bad_conf, sizeof(bad_conf), f->root, "bad.conf");
    write_conf(bad_conf, pem, other_key);
    snprintf(port, sizeof(port), "%d", cl_test_free_port());
    char *out;
    char *argv[] = {"nats-server", "-c", bad_conf, "-a", "127.0.0.1", "-p", port, NULL};
    int rc = run(f, argv, 5000, &out);
    if (rc == 0 || rc == -1 || strstr(out, "private key does not match public key") == NULL)
        fail_msg("nats-server with a mismatched key exited %d: %s", rc, out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_ca_is_made_private_with_its_parents_and_kept_on_the_second_call, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_two_cas_have_different_keys_and_serials, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readable_ca_key_is_refused_naming_the_mode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_half_a_ca_is_made_again_and_a_mismatched_one_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_leaf_for_addresses_and_names_verifies_here_and_with_openssl, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_leaf_is_kept_while_it_covers_the_hosts_and_made_again_otherwise, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_leaf_within_30_days_of_its_end_is_made_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leaf_does_not_verify_against_another_ca, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_name_gets_an_empty_subject_and_a_critical_san,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_and_missing_files_are_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_nats_server_serves_tls_with_the_leaf_and_refuses_a_wrong_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
