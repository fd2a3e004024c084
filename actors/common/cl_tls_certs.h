/* The private certificate authority of a cluster and the certificates it
 * signs: `clipper start` runs its nats-server with TLS and hands every actor
 * the CA file, so the actors verify the server they connect to.
 *
 * Files live in one directory (<data-dir>/secrets):
 *   ca.pem, ca.key          the CA: certificate 0644, private key 0600
 *   <name>.pem, <name>.key  a leaf it signed (say server.pem/server.key)
 *   .lock                   taken (flock) while a function here runs, so
 *                           two processes never write half a pair each
 * Keys are EC P-256 in PKCS#8 PEM, unencrypted; certificates are signed
 * with SHA-256. Every file is written beside its final name (mode 0600,
 * O_CREAT|O_EXCL), synced and renamed, so a crash never leaves half a file
 * under the final name, and no private key is ever in a file that group or
 * others can read.
 *
 * The functions may be called from any thread; they block on file I/O and
 * key generation (milliseconds). Nothing returned is owned by the caller. */
#ifndef CL_TLS_CERTS_H
#define CL_TLS_CERTS_H

#include <stdbool.h>
#include <stddef.h>

#include "cl_status.h"

/* Makes dir/ca.pem and dir/ca.key unless both exist already: a self-signed
 * CA (basicConstraints critical CA:TRUE pathlen 0, keyUsage critical
 * keyCertSign cRLSign, subject CN=<cn>, 128-bit random serial) valid from
 * an hour ago for `days` days. dir and its missing parents are created
 * with mode 0700.
 *
 * An existing pair is used as it is, after checks; each failure is an
 * error naming the file and saying what to do, and nothing is replaced:
 *   CL_ERR_DENIED   ca.key can be read or written by group or others
 *   CL_ERR_INVALID  a file does not parse, the key does not match the
 *                   certificate, the certificate is no CA, or it expired
 * When only one of the two files exists, a new pair replaces it. */
cl_status cl_tls_ensure_ca(const char *dir, const char *cn, int days, cl_err *err) CL_MUST_USE;

/* Makes dir/<name>.pem and dir/<name>.key: a leaf certificate signed by
 * dir/ca.pem and dir/ca.key (basicConstraints CA:FALSE, keyUsage
 * digitalSignature keyEncipherment, extendedKeyUsage serverAuth clientAuth)
 * for hosts[0..n_hosts): each becomes a subjectAltName, IP: when it parses
 * as an IPv4 or IPv6 address (inet_pton; no brackets), DNS: otherwise; the
 * subject is CN=<hosts[0]> (empty, with a critical subjectAltName, when
 * hosts[0] is longer than the 64 characters a CN may hold). Valid from an
 * hour ago for `days` days, never past the CA's own end.
 *
 * An existing pair is kept unless `replace` is true or it is no longer
 * right: the certificate does not cover every host of hosts, expires
 * within 30 days, does not verify against the current CA, or the key is
 * missing, does not match it, or can be read by group or others. So a
 * restart on another address gets a fresh certificate, and one of `days`
 * <= 30 is made again on every call.
 *
 * name is a file name stem: letters, digits, '.', '_' and '-', not
 * starting with '.', at most 64 characters, not "ca". The CA is checked
 * as in cl_tls_ensure_ca (CL_ERR_DENIED for a readable ca.key,
 * CL_ERR_NOT_FOUND when it is missing). */
cl_status cl_tls_ensure_leaf(const char *dir, const char *name, const char *const *hosts,
                             size_t n_hosts, int days, bool replace, cl_err *err) CL_MUST_USE;

/* Whether the certificate in cert_file verifies against the certificates
 * in ca_file (X509_verify_cert at the current time: signature chain and
 * validity, not host names or purpose). CL_OK when it does; CL_ERR_INVALID
 * with OpenSSL's reason when it does not or a file does not parse;
 * CL_ERR_NOT_FOUND / CL_ERR_DENIED / CL_ERR_IO when a file cannot be read. */
cl_status cl_tls_verify_file(const char *cert_file, const char *ca_file, cl_err *err) CL_MUST_USE;

#endif
