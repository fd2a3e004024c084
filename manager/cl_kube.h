/* A small Kubernetes API client over HTTPS, with libcurl and cJSON: what
 * the container manager's kubernetes backend and its tests speak to the
 * API server with (core/v1 and apps/v1), instead of kubectl or a client
 * library in another language.
 *
 * Credentials come from a kubeconfig file (YAML, read with libyaml): the
 * cluster's server and CA (a file or inline data, or
 * insecure-skip-tls-verify), and the user's bearer token (inline or a
 * tokenFile) or client certificate and key (files or inline data). Inside
 * a pod they come from its service account instead: the token and CA
 * mounted under /var/run/secrets/kubernetes.io/serviceaccount and the
 * server in KUBERNETES_SERVICE_HOST/PORT. A token file is read again when
 * it changes (service-account tokens are rotated).
 *
 * Every request is bounded in time (connect 3 s, answer 15 s) and fails
 * with a message that says what was being done and what the API server
 * said, e.g.
 *   "creating deployment m-1-at-c in namespace ns: deployments.apps is
 *    forbidden: User "x" cannot create resource ... (HTTP 403 Forbidden)"
 *   "listing pods in namespace ns: cannot reach the Kubernetes API server
 *    at https://10.0.0.1:443: Connection refused"
 * Statuses: CL_ERR_NOT_FOUND (404), CL_ERR_EXISTS (409 AlreadyExists),
 * CL_ERR_CONFLICT (other 409s), CL_ERR_DENIED (401, 403), CL_ERR_INVALID
 * (400, 422, a bad kubeconfig), CL_ERR_UNREACHABLE, CL_ERR_TIMEOUT,
 * CL_ERR_IO (anything else, with the HTTP status in the message).
 *
 * A cl_kube keeps one connection; use it from one thread at a time
 * (cl_kube_clone makes another with the same credentials). A watch runs on
 * a thread of its own with its own connection. */
#ifndef CL_KUBE_H
#define CL_KUBE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "cl_status.h"

#define CL_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

typedef struct cl_kube cl_kube;

typedef struct {
    /* The kubeconfig file. NULL or "": inside a pod (KUBERNETES_SERVICE_HOST
     * set and a service-account token mounted) the pod's service account;
     * else $KUBECONFIG (its first file); else ~/.kube/config. */
    const char *kubeconfig;
    const char *context;   /* NULL: the file's current-context */
    const char *namespace_; /* NULL: the context's namespace; in a pod, its
                               own; else "default" */
    const char *sa_dir;    /* NULL: CL_KUBE_SA_DIR (tests point it elsewhere) */
} cl_kube_opts;

/* Reads the credentials. Does not contact the API server (cl_kube_request
 * does). CL_ERR_NOT_FOUND when there is no kubeconfig and not in a pod;
 * CL_ERR_INVALID naming the file and what is wrong in it (no such
 * context, a user that authenticates with an exec plugin, which this
 * client does not run, ...). */
cl_status cl_kube_new(cl_kube **out, const cl_kube_opts *opts, cl_err *err) CL_MUST_USE;
/* Another client with the same credentials and namespace. */
cl_status cl_kube_clone(cl_kube **out, const cl_kube *k, cl_err *err) CL_MUST_USE;
void cl_kube_free(cl_kube *k);

const char *cl_kube_server(const cl_kube *k);    /* "https://host:port" */
const char *cl_kube_namespace(const cl_kube *k);
/* Where the credentials came from, for messages: "kubeconfig /x (context
 * c, user u)" or "the pod's service account". */
const char *cl_kube_source(const cl_kube *k);

/* One request: method ("GET", "POST", "PUT", "PATCH", "DELETE") on path
 * ("/api/v1/namespaces/ns/pods?labelSelector=..."), with body (JSON or
 * NULL; a PATCH is sent as application/merge-patch+json). On success
 * *reply (when reply is not NULL) is the parsed answer (NULL when it was
 * not JSON); free it with cJSON_Delete. what says what was being done,
 * for messages. */
cl_status cl_kube_request(cl_kube *k, const char *method, const char *path, const cJSON *body,
                          cJSON **reply, const char *what, cl_err *err) CL_MUST_USE;

/* A GET whose answer is text (a pod's log): malloc'd, NUL-terminated. */
cl_status cl_kube_get_text(cl_kube *k, const char *path, char **out, const char *what,
                           cl_err *err) CL_MUST_USE;

/* ---- watches -------------------------------------------------------- */

typedef enum {
    CL_KUBE_RESET,    /* a fresh list follows: forget what you have */
    CL_KUBE_ADDED,    /* object is there (listed, or added) */
    CL_KUBE_MODIFIED, /* object changed */
    CL_KUBE_DELETED,  /* object is gone */
    CL_KUBE_SYNCED,   /* the list is complete; events follow as they happen */
} cl_kube_event;

/* Called on the watch's thread; object is borrowed (NULL for RESET and
 * SYNCED). Must not block for long. */
typedef void (*cl_kube_watch_cb)(void *closure, cl_kube_event ev, const cJSON *object);

typedef struct cl_kube_watch cl_kube_watch;

/* Keeps the objects of a collection (path, e.g.
 * "/apis/apps/v1/namespaces/ns/deployments") that match label_selector
 * (NULL: all) as the API server sees them: lists them (RESET, ADDED...,
 * SYNCED), then streams changes (?watch=1 from the list's
 * resourceVersion, with bookmarks), resuming from the last
 * resourceVersion when a stream ends and listing again when the server
 * says it is too old (410 Gone, an ERROR event) or the stream failed.
 * Failures are retried with backoff (0.2 s doubling to 5 s) and kept for
 * cl_kube_watch_state. Uses a clone of k; k may be freed after. */
cl_status cl_kube_watch_start(cl_kube_watch **out, const cl_kube *k, const char *path,
                              const char *label_selector, cl_kube_watch_cb cb, void *closure,
                              cl_err *err) CL_MUST_USE;
/* The same, resuming from resource_version (NULL or "": list first, as
 * cl_kube_watch_start): it streams the changes since that version, and
 * lists again (RESET, ...) only when the server says it is too old. */
cl_status cl_kube_watch_resume(cl_kube_watch **out, const cl_kube *k, const char *path,
                               const char *label_selector, const char *resource_version,
                               cl_kube_watch_cb cb, void *closure, cl_err *err) CL_MUST_USE;
/* Stops the thread (within about a second) and frees. NULL-safe. */
void cl_kube_watch_free(cl_kube_watch *w);
/* True once a list has completed and no failure since; error (size > 0)
 * gets the last failure ("" when none). */
bool cl_kube_watch_state(cl_kube_watch *w, char *error, size_t size);

/* ---- pure helpers (no server), exposed for the unit tests ------------ */

/* A YAML document as JSON: mappings become objects, sequences arrays and
 * every scalar a string (kubeconfig values are read as text). JSON is
 * YAML, so a JSON kubeconfig reads too. CL_ERR_INVALID with the line and
 * column of a syntax error; anchors and aliases are refused. */
cl_status cl_kube_yaml_parse(const char *text, size_t len, cJSON **out, cl_err *err) CL_MUST_USE;

/* The message of an error reply: a Status object's "message" and its
 * "reason" ("... (NotFound)"), or the body itself, at most size-1 bytes. */
void cl_kube_error_text(const char *body, size_t len, char *buf, size_t size);

/* Splits a watch stream into lines: appends data to buf (*used bytes in
 * it), calls line(closure, text, len) for each complete line (without its
 * newline; empty lines skipped) and keeps the rest. -1 when a line does
 * not fit in size bytes, else 0. */
int cl_kube_split_lines(char *buf, size_t size, size_t *used, const char *data, size_t len,
                        void (*line)(void *closure, const char *text, size_t len),
                        void *closure);

/* ---- names --------------------------------------------------------------- */

/* A DNS-1123 label (lowercase [a-z0-9-], starting and ending with an
 * alphanumeric) of at most max (<= 63) bytes made from text: other
 * characters become '-', and when anything had to change or it is too
 * long, a 6-hex-digit hash of text is appended (kept unique). */
void cl_kube_dns_label(const char *text, size_t max, char *out, size_t size);
/* A label value (<= 63 bytes of [A-Za-z0-9._-], alphanumeric at both
 * ends): text when it is one, else a sanitized form with a hash of text. */
void cl_kube_label_value(const char *text, char *out, size_t size);
/* text escaped for a query string (libcurl's escaping). */
char *cl_kube_escape(const char *text);

#endif
