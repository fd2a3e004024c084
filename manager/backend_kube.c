/* The kubernetes backend (declarative, see cl_backend.h): a Deployment per
 * model version, through the Kubernetes API (cl_kube.h).
 *
 * Two watches (the cluster's replica Deployments and their pods) keep a
 * cache of what the API server has, on threads of their own; every change
 * pokes the manager (cfg->changed). apply compares the wanted state with
 * the cached Deployments and makes only the calls that differ: create a
 * missing one, patch spec.replicas, replace a spec whose template changed
 * (told by a hash of it in an annotation), delete one no longer wanted.
 * pods reads the pod cache and turns what the kubelet says (waiting
 * reasons, last terminations, scheduling) into cm.status rows. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <xxhash.h>

#include "cl_backend.h"
#include "cl_clock.h"
#include "cl_kube.h"
#include "cl_log.h"
#include "cl_replica_image.h"
#include "cl_replicas.h"

#define DEFAULT_IMAGE "localhost/clipper/python-closure:latest"
#define PYSPARK_IMAGE "localhost/clipper/pyspark:latest"
#define LABEL_CLUSTER "ai.clipper.container.label"
#define LABEL_MODEL "ai.clipper.model_container.label"
#define ANN_MODEL "ai.clipper.model"
#define ANN_VERSION "ai.clipper.model_version"
#define ANN_RUNTIME "ai.clipper.runtime"
#define ANN_HASH "ai.clipper.spec-hash"
#define DEPLOYMENT_NAME_MAX 46 /* + "-<rs hash>-<5>" stays a 63-byte host name */
#define SECOND_FAILURE_US 1000000u /* a start error still there this much later */
#define SECRET_MOUNT "/run/clipper/identity" /* the replicas' identity (a Secret volume) */
#define WARN_EVERY_US 30000000u
#define TAIL_LINES 40
#define MAX_TRACKED 256

/* Per wanted model version: its Deployment and how applying it went. */
typedef struct {
    char *model;
    char *version;
    char dep[64];
    unsigned replicas;
    char error[512];   /* the last apply's failure, "" when it went well */
    unsigned failures; /* applies that failed in a row */
} version_state;

/* A start error seen on a pod, since when (to count it twice). */
typedef struct {
    char key[200]; /* pod uid + reason */
    uint64_t first_us;
    bool seen; /* in the current pass */
} failure_seen;

/* The restart count last seen of a pod's container (to log each end). */
typedef struct {
    char uid[64];
    unsigned restarts;
    bool seen;
} restart_seen;

typedef struct kube_backend kube_backend;

/* One watched collection and its cache (name -> object). */
typedef struct {
    kube_backend *kb;
    cJSON *cache; /* guarded by kb->mu */
    cl_kube_watch *w;
} watched;

struct kube_backend {
    cl_backend base;
    cl_kube *api; /* the reconcile thread's connection */
    char *ns;
    char *nats_url;
    char *prefix;
    char *cluster;
    char cluster_label[64];
    char *pull_policy;
    char *secret;   /* the replicas' identity (cl_backend_config.kube_secret) or NULL */
    char *tls_name; /* or NULL */
    cl_image_table images;
    void (*changed)(void *closure);
    void *changed_closure;
    pthread_mutex_t mu;
    watched deps;
    watched pods;
    /* Reconcile thread only. */
    version_state *vs;
    size_t n_vs;
    failure_seen fs[MAX_TRACKED];
    size_t n_fs;
    restart_seen rs[MAX_TRACKED];
    size_t n_rs;
    uint64_t warned_us;
};

/* ---- JSON helpers ---------------------------------------------------------- */

static const cJSON *jget(const cJSON *o, const char *path)
{
    /* "a.b.c": nested objects. */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok != NULL && cur != NULL;
         tok = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cur;
}

static const char *jstr(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *ann(const cJSON *o, const char *key)
{
    const cJSON *a = jget(o, "metadata.annotations");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static uint64_t parse_time_us(const char *t)
{
    /* RFC 3339 as the API writes it: 2026-12-06T15:20:01Z */
    if (t == NULL)
        return 0;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL)
        return 0;
    time_t s = timegm(&tm);
    return s > 0 ? (uint64_t)s * 1000000u : 0;
}

static void notify(kube_backend *kb)
{
    if (kb->changed != NULL)
        kb->changed(kb->changed_closure);
}

static void on_watch(void *closure, cl_kube_event ev, const cJSON *obj)
{
    watched *wd = closure;
    kube_backend *kb = wd->kb;
    const char *name = jstr(obj, "metadata.name");
    pthread_mutex_lock(&kb->mu);
    if (ev == CL_KUBE_RESET) {
        cJSON_Delete(wd->cache);
        wd->cache = cJSON_CreateObject();
    } else if (wd->cache != NULL && name != NULL) {
        if (ev == CL_KUBE_DELETED) {
            cJSON_DeleteItemFromObjectCaseSensitive(wd->cache, name);
        } else if (ev == CL_KUBE_ADDED || ev == CL_KUBE_MODIFIED) {
            cJSON *copy = cJSON_Duplicate(obj, true);
            if (copy != NULL) {
                /* Who changed which field: large and never read here. */
                cJSON_DeleteItemFromObjectCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(copy, "metadata"), "managedFields");
                if (cJSON_GetObjectItemCaseSensitive(wd->cache, name) != NULL)
                    cJSON_ReplaceItemInObjectCaseSensitive(wd->cache, name, copy);
                else
                    cJSON_AddItemToObject(wd->cache, name, copy);
            }
        }
    }
    pthread_mutex_unlock(&kb->mu);
    if (ev != CL_KUBE_RESET)
        notify(kb);
}

/* A copy of the cached object name (or NULL). */
static cJSON *cached(kube_backend *kb, watched *wd, const char *name)
{
    pthread_mutex_lock(&kb->mu);
    cJSON *o = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(wd->cache, name), true);
    pthread_mutex_unlock(&kb->mu);
    return o;
}

static void warn_rate_limited(kube_backend *kb, const char *msg)
{
    uint64_t now = cl_mono_us();
    if (kb->warned_us == 0 || now - kb->warned_us >= WARN_EVERY_US) {
        cl_warn("kubernetes backend: %s", msg);
        kb->warned_us = now;
    }
}

/* ---- the Deployment of a version ----------------------------------------- */

static void deployment_name(const kube_backend *kb, const char *model, const char *version,
                            char *out, size_t size)
{
    char raw[600];
    snprintf(raw, sizeof(raw), "%s-%s-at-%s", model, version, kb->cluster);
    cl_kube_dns_label(raw, DEPLOYMENT_NAME_MAX, out, size);
}

static void model_label(const char *model, const char *version, char *out, size_t size)
{
    char raw[300];
    snprintf(raw, sizeof(raw), "%s_%s", model, version);
    cl_kube_label_value(raw, out, size);
}

static cJSON *labels_of(const kube_backend *kb, const char *model, const char *version)
{
    char mv[64];
    model_label(model, version, mv, sizeof(mv));
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, LABEL_CLUSTER, kb->cluster_label);
    cJSON_AddStringToObject(l, LABEL_MODEL, mv);
    return l;
}

static cJSON *probe(const char *path, int period_s, int failures, int timeout_s)
{
    cJSON *p = cJSON_CreateObject();
    cJSON *get = cJSON_AddObjectToObject(p, "httpGet");
    cJSON_AddStringToObject(get, "path", path);
    cJSON_AddStringToObject(get, "port", "health");
    cJSON_AddNumberToObject(p, "periodSeconds", period_s);
    cJSON_AddNumberToObject(p, "failureThreshold", failures);
    cJSON_AddNumberToObject(p, "timeoutSeconds", timeout_s);
    return p;
}

/* The Deployment for want (its spec.replicas included), with the hash of
 * everything but the count in an annotation. */
static cJSON *deployment(const kube_backend *kb, const cl_backend_want *w, const char *name,
                         const char *image, cl_err *err)
{
    const cl_backend_spec *sp = &w->spec;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "apiVersion", "apps/v1");
    cJSON_AddStringToObject(d, "kind", "Deployment");
    cJSON *md = cJSON_AddObjectToObject(d, "metadata");
    cJSON_AddStringToObject(md, "name", name);
    cJSON_AddStringToObject(md, "namespace", kb->ns);
    cJSON_AddItemToObject(md, "labels", labels_of(kb, sp->model, sp->version));
    cJSON *anns = cJSON_AddObjectToObject(md, "annotations");
    cJSON_AddStringToObject(anns, ANN_MODEL, sp->model);
    cJSON_AddStringToObject(anns, ANN_VERSION, sp->version);

    cJSON *spec = cJSON_AddObjectToObject(d, "spec");
    cJSON *sel = cJSON_AddObjectToObject(spec, "selector");
    cJSON_AddItemToObject(sel, "matchLabels", labels_of(kb, sp->model, sp->version));
    cJSON_AddNumberToObject(spec, "revisionHistoryLimit", 2);
    /* A changed template rolls one new pod in before an old one goes. */
    cJSON *strategy = cJSON_AddObjectToObject(spec, "strategy");
    cJSON_AddStringToObject(strategy, "type", "RollingUpdate");
    cJSON *ru = cJSON_AddObjectToObject(strategy, "rollingUpdate");
    cJSON_AddNumberToObject(ru, "maxSurge", 1);
    cJSON_AddNumberToObject(ru, "maxUnavailable", 0);

    cJSON *tmpl = cJSON_AddObjectToObject(spec, "template");
    cJSON *tmd = cJSON_AddObjectToObject(tmpl, "metadata");
    cJSON_AddItemToObject(tmd, "labels", labels_of(kb, sp->model, sp->version));
    cJSON *tann = cJSON_AddObjectToObject(tmd, "annotations");
    cJSON_AddStringToObject(tann, ANN_MODEL, sp->model);
    cJSON_AddStringToObject(tann, ANN_VERSION, sp->version);
    cJSON_AddStringToObject(tann, ANN_RUNTIME, cl_spec_runtime(sp));
    cJSON *ps = cJSON_AddObjectToObject(tmpl, "spec");
    /* A replica needs the bus, not the Kubernetes API. */
    cJSON_AddBoolToObject(ps, "automountServiceAccountToken", false);
    cJSON_AddBoolToObject(ps, "enableServiceLinks", false);
    cJSON_AddNumberToObject(ps, "terminationGracePeriodSeconds", 10);
    cJSON *containers = cJSON_AddArrayToObject(ps, "containers");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(containers, c);
    cJSON_AddStringToObject(c, "name", "replica");
    cJSON_AddStringToObject(c, "image", image);
    cJSON_AddStringToObject(c, "imagePullPolicy", kb->pull_policy);
    char port[16];
    snprintf(port, sizeof(port), "%d", CL_REPLICA_HEALTH_PORT);
    const char *cmd[20] = {"clipper", "run",       "replica",  "--nats",         kb->nats_url,
                           "--prefix", kb->prefix, "--model",  sp->model,        "--version",
                           sp->version, "--health-port", port};
    int n = 13;
    if (kb->secret != NULL) {
        /* The identity as files of a Secret volume: only their paths are in
         * the pod's spec, never a secret. */
        cmd[n++] = "--creds";
        cmd[n++] = SECRET_MOUNT "/replica.creds";
        cmd[n++] = "--tls-ca";
        cmd[n++] = SECRET_MOUNT "/ca.pem";
    }
    if (kb->tls_name != NULL) {
        cmd[n++] = "--tls-name";
        cmd[n++] = kb->tls_name;
    }
    cJSON_AddItemToObject(c, "command", cJSON_CreateStringArray(cmd, n));
    if (kb->secret != NULL) {
        cJSON *mount = cJSON_CreateObject();
        cJSON_AddStringToObject(mount, "name", "clipper-identity");
        cJSON_AddStringToObject(mount, "mountPath", SECRET_MOUNT);
        cJSON_AddBoolToObject(mount, "readOnly", true);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "volumeMounts"), mount);
        cJSON *vol = cJSON_CreateObject();
        cJSON_AddStringToObject(vol, "name", "clipper-identity");
        cJSON *sec = cJSON_AddObjectToObject(vol, "secret");
        cJSON_AddStringToObject(sec, "secretName", kb->secret);
        /* 0400: a credential file others may read is refused
         * (cl_nkey_read_file); Kubernetes' default is 0644. */
        cJSON_AddNumberToObject(sec, "defaultMode", 0400);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(ps, "volumes"), vol);
    }
    cJSON *ports = cJSON_AddArrayToObject(c, "ports");
    cJSON *hp = cJSON_CreateObject();
    cJSON_AddItemToArray(ports, hp);
    cJSON_AddStringToObject(hp, "name", "health");
    cJSON_AddNumberToObject(hp, "containerPort", CL_REPLICA_HEALTH_PORT);
    /* Ready once its heartbeat says so; restarted when it stops answering
     * at all (stopped, or its heartbeat thread stuck). */
    cJSON_AddItemToObject(c, "readinessProbe", probe("/ready", 1, 1, 1));
    cJSON_AddItemToObject(c, "livenessProbe", probe("/live", 2, 3, 2));
    cJSON *sc = cJSON_AddObjectToObject(c, "securityContext");
    cJSON_AddBoolToObject(sc, "allowPrivilegeEscalation", false);
    if (sp->resources != NULL && sp->resources[0] != '\0') {
        cJSON *r = cJSON_Parse(sp->resources);
        if (!cJSON_IsObject(r)) {
            cJSON_Delete(r);
            cJSON_Delete(d);
            cl_err_set(err, CL_ERR_INVALID,
                       "model %s:%s has resources that are not a JSON object: %.200s",
                       sp->model, sp->version, sp->resources);
            return NULL;
        }
        cJSON_AddItemToObject(c, "resources", r);
    }
    /* The hash: of all of it but the count, which scaling changes. */
    char *text = cJSON_PrintUnformatted(d);
    if (text == NULL) {
        cJSON_Delete(d);
        cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    char hash[20];
    snprintf(hash, sizeof(hash), "%016" PRIx64, (uint64_t)XXH3_64bits(text, strlen(text)));
    free(text);
    cJSON_AddStringToObject(anns, ANN_HASH, hash);
    cJSON_AddNumberToObject(spec, "replicas", w->replicas);
    return d;
}

static version_state *state_of(kube_backend *kb, const char *model, const char *version)
{
    for (size_t i = 0; i < kb->n_vs; i++) {
        if (strcmp(kb->vs[i].model, model) == 0 && strcmp(kb->vs[i].version, version) == 0)
            return &kb->vs[i];
    }
    return NULL;
}

static void free_states(version_state *vs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(vs[i].model);
        free(vs[i].version);
    }
    free(vs);
}

/* Makes the Deployment of one wanted version what it should be. */
static CL_MUST_USE cl_status apply_one(kube_backend *kb, const cl_backend_want *w, const char *name,
                                       cl_err *err)
{
    const cl_backend_spec *sp = &w->spec;
    const char *image;
    bool users;
    cl_status s = cl_image_choose(&kb->images, sp, &image, &users, err);
    if (s != CL_OK)
        return s;
    cJSON *want = deployment(kb, w, name, image, err);
    if (want == NULL)
        return err->code;
    char base[256];
    snprintf(base, sizeof(base), "/apis/apps/v1/namespaces/%s/deployments", kb->ns);
    char path[512], what[600];
    snprintf(path, sizeof(path), "%s/%s", base, name);
    cJSON *cur = cached(kb, &kb->deps, name);
    if (cur == NULL) {
        snprintf(what, sizeof(what), "creating deployment %s in namespace %s", name, kb->ns);
        s = cl_kube_request(kb->api, "POST", base, want, NULL, what, err);
        if (s == CL_OK) {
            cl_info("kubernetes backend: created deployment %s (model %s:%s, %u replica%s, "
                    "image %s)",
                    name, sp->model, sp->version, w->replicas, w->replicas == 1 ? "" : "s",
                    image);
        } else if (s == CL_ERR_EXISTS) {
            /* Made since our watch last looked: compare with it. */
            snprintf(what, sizeof(what), "reading deployment %s in namespace %s", name, kb->ns);
            s = cl_kube_request(kb->api, "GET", path, NULL, &cur, what, err);
        }
    }
    if (s == CL_OK && cur != NULL) {
        const char *m = ann(cur, ANN_MODEL), *v = ann(cur, ANN_VERSION);
        const char *have = ann(cur, ANN_HASH), *hash = ann(want, ANN_HASH);
        const cJSON *r = jget(cur, "spec.replicas");
        if (m == NULL || v == NULL || strcmp(m, sp->model) != 0 || strcmp(v, sp->version) != 0) {
            s = cl_err_set(err, CL_ERR_CONFLICT,
                           "deployment %s in namespace %s is not model %s:%s's (it is %s:%s); "
                           "remove it or use another cluster name",
                           name, kb->ns, sp->model, sp->version, m ? m : "?", v ? v : "?");
        } else if (have == NULL || strcmp(have, hash) != 0) {
            /* The template changed: replace the spec (the Deployment rolls
             * its pods). The resourceVersion makes a racing change a 409,
             * tried again on the next pass. */
            cJSON *md = cJSON_GetObjectItemCaseSensitive(want, "metadata");
            const char *rv = jstr(cur, "metadata.resourceVersion");
            if (rv != NULL)
                cJSON_AddStringToObject(md, "resourceVersion", rv);
            snprintf(what, sizeof(what), "updating deployment %s in namespace %s", name,
                     kb->ns);
            s = cl_kube_request(kb->api, "PUT", path, want, NULL, what, err);
            if (s == CL_OK)
                cl_info("kubernetes backend: updated deployment %s (model %s:%s): its pod "
                        "template changed (image %s)",
                        name, sp->model, sp->version, image);
        } else if (!cJSON_IsNumber(r) || r->valueint != (int)w->replicas) {
            cJSON *patch = cJSON_CreateObject();
            cJSON_AddNumberToObject(cJSON_AddObjectToObject(patch, "spec"), "replicas",
                                    w->replicas);
            snprintf(what, sizeof(what), "scaling deployment %s in namespace %s to %u", name,
                     kb->ns, w->replicas);
            s = cl_kube_request(kb->api, "PATCH", path, patch, NULL, what, err);
            cJSON_Delete(patch);
            if (s == CL_OK)
                cl_info("kubernetes backend: scaled deployment %s (model %s:%s) from %d to %u",
                        name, sp->model, sp->version, cJSON_IsNumber(r) ? r->valueint : -1,
                        w->replicas);
        }
    }
    cJSON_Delete(cur);
    cJSON_Delete(want);
    return s;
}

static CL_MUST_USE cl_status kube_apply(cl_backend *b, const cl_backend_want *wants, size_t n,
                                        cl_err *err)
{
    kube_backend *kb = (kube_backend *)b;
    version_state *vs = n ? calloc(n, sizeof(*vs)) : NULL;
    if (n > 0 && vs == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    char watch_error[512];
    bool synced = cl_kube_watch_state(kb->deps.w, watch_error, sizeof(watch_error));
    cl_status first = CL_OK;
    for (size_t i = 0; i < n; i++) {
        const cl_backend_want *w = &wants[i];
        version_state *v = &vs[i];
        v->model = strdup(w->spec.model);
        v->version = strdup(w->spec.version);
        if (v->model == NULL || v->version == NULL) {
            free_states(vs, i + 1);
            return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        }
        v->replicas = w->replicas;
        deployment_name(kb, w->spec.model, w->spec.version, v->dep, sizeof(v->dep));
        const version_state *old = state_of(kb, w->spec.model, w->spec.version);
        cl_err e;
        cl_err_clear(&e);
        cl_status s;
        if (!synced && watch_error[0] == '\0') {
            /* The first list is on its way; it wakes the manager. */
            s = CL_OK;
        } else if (!synced) {
            /* Not knowing what is there, creating would only collide. */
            s = cl_err_set(&e, CL_ERR_UNREACHABLE, "the deployments are not known: %s",
                           watch_error);
        } else {
            s = apply_one(kb, w, v->dep, &e);
        }
        if (s == CL_ERR_CONFLICT && strncmp(e.msg, "deployment ", 11) != 0) {
            /* Someone changed it as we did: the watch shows it, next pass. */
            s = CL_OK;
        }
        if (s != CL_OK) {
            snprintf(v->error, sizeof(v->error), "%s", e.msg);
            v->failures = (old ? old->failures : 0) + 1;
            if (first == CL_OK) {
                first = s;
                if (err != NULL)
                    *err = e;
            }
        }
    }
    /* Deployments of versions no longer wanted. */
    if (synced) {
        pthread_mutex_lock(&kb->mu);
        size_t count = (size_t)cJSON_GetArraySize(kb->deps.cache);
        char (*gone)[64] = count ? calloc(count, sizeof(*gone)) : NULL;
        size_t ng = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, kb->deps.cache)
        {
            bool wanted = false;
            for (size_t i = 0; i < n && !wanted; i++)
                wanted = strcmp(vs[i].dep, d->string) == 0;
            /* Only what a manager made (it carries the model annotation). */
            if (!wanted && gone != NULL && jget(d, "metadata.deletionTimestamp") == NULL &&
                ann(d, ANN_MODEL) != NULL)
                snprintf(gone[ng++], sizeof(gone[0]), "%s", d->string);
        }
        pthread_mutex_unlock(&kb->mu);
        for (size_t i = 0; i < ng; i++) {
            char path[512], what[600];
            snprintf(path, sizeof(path),
                     "/apis/apps/v1/namespaces/%s/deployments/%s?propagationPolicy=Background",
                     kb->ns, gone[i]);
            snprintf(what, sizeof(what), "deleting deployment %s in namespace %s", gone[i],
                     kb->ns);
            cl_err e;
            cl_status s = cl_kube_request(kb->api, "DELETE", path, NULL, NULL, what, &e);
            if (s == CL_OK)
                cl_info("kubernetes backend: deleted deployment %s: its model version is no "
                        "longer in the cluster state",
                        gone[i]);
            else if (s != CL_ERR_NOT_FOUND)
                warn_rate_limited(kb, e.msg);
        }
        free(gone);
    }
    free_states(kb->vs, kb->n_vs);
    kb->vs = vs;
    kb->n_vs = n;
    return first;
}

/* ---- pods -------------------------------------------------------------------- */

static failure_seen *track_failure(kube_backend *kb, const char *uid, const char *reason,
                                   uint64_t now)
{
    char key[200];
    snprintf(key, sizeof(key), "%s/%s", uid, reason);
    for (size_t i = 0; i < kb->n_fs; i++) {
        if (strcmp(kb->fs[i].key, key) == 0) {
            kb->fs[i].seen = true;
            return &kb->fs[i];
        }
    }
    if (kb->n_fs == MAX_TRACKED)
        return NULL;
    failure_seen *f = &kb->fs[kb->n_fs++];
    snprintf(f->key, sizeof(f->key), "%s", key);
    f->first_us = now;
    f->seen = true;
    return f;
}

static bool config_reason(const char *r)
{
    static const char *const reasons[] = {
        "ErrImageNeverPull",   "ErrImagePull",         "ImagePullBackOff", "InvalidImageName",
        "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
        "ImageInspectError",   "ErrImageInspect"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (strcmp(r, reasons[i]) == 0)
            return true;
    }
    return false;
}

/* How a terminated state ended, as an exit code (minus the signal), and
 * its words. */
static void describe_end(const cJSON *term, int *code, char *words, size_t size)
{
    const cJSON *ec = cJSON_GetObjectItemCaseSensitive(term, "exitCode");
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(term, "signal");
    const char *reason = jstr(term, "reason");
    /* A container runtime says 128 + n for a process that signal n ended. */
    int signal = cJSON_IsNumber(sig) && sig->valueint > 0 ? sig->valueint
                 : cJSON_IsNumber(ec) && ec->valueint > 128 && ec->valueint < 128 + 65
                     ? ec->valueint - 128
                     : 0;
    *code = signal > 0 ? -signal : cJSON_IsNumber(ec) ? ec->valueint : -1000;
    if (reason != NULL && strcmp(reason, "OOMKilled") == 0)
        snprintf(words, size, "it ran out of memory (OOMKilled, exit code %d)",
                 cJSON_IsNumber(ec) ? ec->valueint : -1);
    else if (signal > 0)
        snprintf(words, size, "killed by signal %d (%s)%s%s%s", signal, strsignal(signal),
                 reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
    else if (cJSON_IsNumber(ec))
        snprintf(words, size, "exit code %d%s%s%s%s", ec->valueint,
                 ec->valueint == CL_REPLICA_EXIT_CANNOT_SERVE
                     ? " (the replica could not load the model)"
                     : "",
                 reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
    else
        snprintf(words, size, "%s", reason ? reason : "ended");
}

/* Logs each end of a pod's container once, with its last lines. */
static void log_restart(kube_backend *kb, const cl_backend_pod *p, const char *uid,
                        unsigned restarts, const char *how)
{
    restart_seen *r = NULL;
    for (size_t i = 0; i < kb->n_rs && r == NULL; i++) {
        if (strcmp(kb->rs[i].uid, uid) == 0)
            r = &kb->rs[i];
    }
    if (r == NULL && kb->n_rs < MAX_TRACKED) {
        r = &kb->rs[kb->n_rs++];
        snprintf(r->uid, sizeof(r->uid), "%s", uid);
        r->restarts = 0;
    }
    if (r == NULL)
        return;
    r->seen = true;
    if (restarts <= r->restarts)
        return;
    r->restarts = restarts;
    char path[600], what[600];
    snprintf(path, sizeof(path),
             "/api/v1/namespaces/%s/pods/%s/log?previous=true&tailLines=%d", kb->ns, p->name,
             TAIL_LINES);
    snprintf(what, sizeof(what), "reading the log of pod %s", p->name);
    char *text = NULL;
    cl_err e;
    if (cl_kube_get_text(kb->api, path, &text, what, &e) != CL_OK)
        text = NULL;
    size_t len = text ? strlen(text) : 0;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    cl_warn("replica %s:%s (pod %s on %s) ended: %s; Kubernetes restarts it (%u restart%s). "
            "Last lines:\n%s",
            p->model, p->version, p->name, p->node[0] ? p->node : "?", how, restarts,
            restarts == 1 ? "" : "s", len ? text : "(no output)");
    free(text);
}

/* Fills p from a pod object. */
static void read_pod(kube_backend *kb, const cJSON *pod, cl_backend_pod *p, uint64_t now)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->model, sizeof(p->model), "%s", ann(pod, ANN_MODEL) ? ann(pod, ANN_MODEL) : "");
    snprintf(p->version, sizeof(p->version), "%s",
             ann(pod, ANN_VERSION) ? ann(pod, ANN_VERSION) : "");
    const char *name = jstr(pod, "metadata.name"), *uid = jstr(pod, "metadata.uid");
    snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
    snprintf(p->node, sizeof(p->node), "%s",
             jstr(pod, "spec.nodeName") ? jstr(pod, "spec.nodeName") : "");
    snprintf(p->phase, sizeof(p->phase), "%s",
             jstr(pod, "status.phase") ? jstr(pod, "status.phase") : "");
    p->stopping = jget(pod, "metadata.deletionTimestamp") != NULL;
    p->started_wall_us = parse_time_us(jstr(pod, "status.startTime"));
    const cJSON *containers = jget(pod, "spec.containers");
    const char *image = jstr(cJSON_GetArrayItem(containers, 0), "image");
    snprintf(p->image, sizeof(p->image), "%s", image ? image : "");
    const cJSON *cond;
    cJSON_ArrayForEach(cond, jget(pod, "status.conditions"))
    {
        const char *type = jstr(cond, "type"), *status = jstr(cond, "status");
        if (type == NULL || status == NULL)
            continue;
        if (strcmp(type, "Ready") == 0)
            p->ready = strcmp(status, "True") == 0;
        if (strcmp(type, "PodScheduled") == 0 && strcmp(status, "False") == 0) {
            const char *reason = jstr(cond, "reason"), *msg = jstr(cond, "message");
            snprintf(p->start_error, sizeof(p->start_error),
                     "pod %.63s cannot be scheduled (%.40s): %.370s", p->name,
                     reason ? reason : "Unschedulable", msg ? msg : "no reason given");
            failure_seen *f = track_failure(kb, uid ? uid : p->name, "Unschedulable", now);
            p->start_failures = f && now - f->first_us >= SECOND_FAILURE_US ? 2 : 1;
        }
    }
    const cJSON *cs = cJSON_GetArrayItem(jget(pod, "status.containerStatuses"), 0);
    if (cs == NULL)
        return;
    const char *cid = jstr(cs, "containerID");
    snprintf(p->container_id, sizeof(p->container_id), "%s", cid ? cid : "");
    p->running = jget(cs, "state.running") != NULL;
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(cs, "restartCount");
    p->restarts = cJSON_IsNumber(rc) && rc->valueint > 0 ? (unsigned)rc->valueint : 0;
    const cJSON *last = jget(cs, "lastState.terminated");
    char how[200] = "";
    if (last != NULL) {
        describe_end(last, &p->last_exit, how, sizeof(how));
        p->has_exit = true;
        snprintf(p->last_error, sizeof(p->last_error), "its container ended: %.200s", how);
        if (p->restarts > 0 && uid != NULL)
            log_restart(kb, p, uid, p->restarts, how);
    }
    const cJSON *waiting = jget(cs, "state.waiting");
    const char *reason = jstr(waiting, "reason"), *msg = jstr(waiting, "message");
    if (reason == NULL)
        return;
    if (strcmp(reason, "ErrImageNeverPull") == 0) {
        snprintf(p->start_error, sizeof(p->start_error),
                 "pod %.63s: image %.100s is not on node %.40s and the pull policy is Never "
                 "(ErrImageNeverPull). Load it into the node (images/kube/kube.sh images "
                 "does), or use an image the nodes can pull with pull policy IfNotPresent "
                 "(the manager's --pull-policy, KubernetesContainerManager's "
                 "image_pull_policy).",
                 p->name, p->image, p->node[0] ? p->node : "?");
    } else if (strcmp(reason, "CrashLoopBackOff") == 0) {
        snprintf(p->start_error, sizeof(p->start_error),
                 "pod %.63s: its replica keeps ending (CrashLoopBackOff, restarted %u time%s; "
                 "last: %.200s)",
                 p->name, p->restarts, p->restarts == 1 ? "" : "s", how[0] ? how : "unknown");
        p->start_failures = p->restarts;
        return;
    } else if (config_reason(reason)) {
        snprintf(p->start_error, sizeof(p->start_error), "pod %.63s: %.40s: %.370s", p->name,
                 reason, msg ? msg : "no message");
    } else {
        return; /* ContainerCreating, PodInitializing: on its way */
    }
    failure_seen *f = track_failure(kb, uid ? uid : p->name, reason, now);
    p->start_failures = f && now - f->first_us >= SECOND_FAILURE_US ? 2 : 1;
}

/* Why a Deployment has fewer pods than it wants, from its conditions. */
static void deployment_problem(const cJSON *d, char *out, size_t size)
{
    out[0] = '\0';
    const cJSON *cond;
    cJSON_ArrayForEach(cond, jget(d, "status.conditions"))
    {
        const char *type = jstr(cond, "type"), *status = jstr(cond, "status");
        const char *msg = jstr(cond, "message"), *reason = jstr(cond, "reason");
        if (type == NULL || status == NULL)
            continue;
        bool bad = (strcmp(type, "ReplicaFailure") == 0 && strcmp(status, "True") == 0) ||
                   (strcmp(type, "Progressing") == 0 && strcmp(status, "False") == 0);
        if (bad)
            snprintf(out, size, "deployment %.63s: %.370s (%.40s)", d->string ? d->string : "?",
                     msg ? msg : "no message", reason ? reason : type);
    }
}

static size_t kube_pods(cl_backend *b, cl_backend_pod **out)
{
    kube_backend *kb = (kube_backend *)b;
    *out = NULL;
    uint64_t now = cl_mono_us();
    for (size_t i = 0; i < kb->n_fs; i++)
        kb->fs[i].seen = false;
    for (size_t i = 0; i < kb->n_rs; i++)
        kb->rs[i].seen = false;
    /* Copy the cache out: reading a pod may ask the API (its log). */
    pthread_mutex_lock(&kb->mu);
    cJSON *pods = cJSON_Duplicate(kb->pods.cache, true);
    cJSON *deps = cJSON_Duplicate(kb->deps.cache, true);
    pthread_mutex_unlock(&kb->mu);
    size_t npods = (size_t)cJSON_GetArraySize(pods);
    size_t cap = npods;
    for (size_t i = 0; i < kb->n_vs; i++)
        cap += kb->vs[i].replicas;
    cl_backend_pod *list = cap ? calloc(cap, sizeof(*list)) : NULL;
    size_t n = 0;
    const cJSON *pod;
    cJSON_ArrayForEach(pod, pods)
    {
        if (list == NULL || n == cap)
            break;
        read_pod(kb, pod, &list[n], now);
        if (list[n].model[0] != '\0')
            n++;
    }
    /* Wanted replicas with no pod yet, and why. */
    for (size_t i = 0; list != NULL && i < kb->n_vs; i++) {
        const version_state *v = &kb->vs[i];
        size_t have = 0;
        for (size_t j = 0; j < n; j++) {
            have += !list[j].stopping && strcmp(list[j].model, v->model) == 0 &&
                    strcmp(list[j].version, v->version) == 0;
        }
        char why[512] = "";
        unsigned failures = 0;
        if (v->error[0] != '\0') {
            snprintf(why, sizeof(why), "%s", v->error);
            failures = v->failures;
        } else {
            deployment_problem(cJSON_GetObjectItemCaseSensitive(deps, v->dep), why,
                               sizeof(why));
            failures = why[0] ? 2 : 0;
        }
        for (size_t k = have; k < v->replicas && n < cap; k++) {
            cl_backend_pod *p = &list[n++];
            memset(p, 0, sizeof(*p));
            snprintf(p->model, sizeof(p->model), "%s", v->model);
            snprintf(p->version, sizeof(p->version), "%s", v->version);
            snprintf(p->start_error, sizeof(p->start_error), "%s", why);
            p->start_failures = failures;
        }
    }
    cJSON_Delete(pods);
    cJSON_Delete(deps);
    /* Forget what is no longer there. */
    for (size_t i = 0; i < kb->n_fs;) {
        if (!kb->fs[i].seen)
            kb->fs[i] = kb->fs[--kb->n_fs];
        else
            i++;
    }
    for (size_t i = 0; i < kb->n_rs;) {
        if (!kb->rs[i].seen)
            kb->rs[i] = kb->rs[--kb->n_rs];
        else
            i++;
    }
    if (n == 0) {
        free(list);
        list = NULL;
    }
    *out = list;
    return n;
}

static void kube_stop(cl_backend *b, const cl_backend_replica *r, bool force)
{
    kube_backend *kb = (kube_backend *)b;
    if (r->name[0] == '\0')
        return;
    char path[600], what[600];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s%s", kb->ns, r->name,
             force ? "?gracePeriodSeconds=0" : "");
    snprintf(what, sizeof(what), "deleting pod %s in namespace %s", r->name, kb->ns);
    cl_err e;
    cl_status s = cl_kube_request(kb->api, "DELETE", path, NULL, NULL, what, &e);
    if (s != CL_OK && s != CL_ERR_NOT_FOUND)
        cl_warn("kubernetes backend: %s", e.msg);
}

static void kube_free(cl_backend *b)
{
    kube_backend *kb = (kube_backend *)b;
    cl_kube_watch_free(kb->deps.w);
    cl_kube_watch_free(kb->pods.w);
    cJSON_Delete(kb->deps.cache);
    cJSON_Delete(kb->pods.cache);
    cl_kube_free(kb->api);
    free_states(kb->vs, kb->n_vs);
    cl_image_table_free(&kb->images);
    free(kb->ns);
    free(kb->nats_url);
    free(kb->prefix);
    free(kb->cluster);
    free(kb->pull_policy);
    free(kb->secret);
    free(kb->tls_name);
    pthread_mutex_destroy(&kb->mu);
    free(kb);
}

static const cl_backend_ops kube_ops = {
    .name = "kubernetes",
    .stop = kube_stop,
    .free = kube_free,
    .apply = kube_apply,
    .pods = kube_pods,
};

static CL_MUST_USE cl_status check_pull_policy(const char *p, cl_err *err)
{
    if (strcmp(p, "Always") == 0 || strcmp(p, "IfNotPresent") == 0 || strcmp(p, "Never") == 0)
        return CL_OK;
    return cl_err_set(err, CL_ERR_INVALID,
                      "the image pull policy must be Always, IfNotPresent or Never, got '%s'",
                      p);
}

cl_status cl_backend_kube_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err)
{
    const char *prefix = cfg->prefix ? cfg->prefix : "clipper";
    kube_backend *kb = calloc(1, sizeof(*kb));
    if (kb == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    kb->base.ops = &kube_ops;
    pthread_mutex_init(&kb->mu, NULL);
    kb->deps.kb = kb;
    kb->pods.kb = kb;
    kb->changed = cfg->changed;
    kb->changed_closure = cfg->changed_closure;
    kb->nats_url = strdup(cfg->nats_url ? cfg->nats_url : "nats://127.0.0.1:4222");
    kb->prefix = strdup(prefix);
    kb->cluster = strdup(cfg->cluster && cfg->cluster[0] ? cfg->cluster : prefix);
    kb->pull_policy = strdup(cfg->pull_policy ? cfg->pull_policy : "IfNotPresent");
    kb->secret = cfg->kube_secret ? strdup(cfg->kube_secret) : NULL;
    kb->tls_name = cfg->tls_name ? strdup(cfg->tls_name) : NULL;
    cl_status s = CL_OK;
    if (!kb->nats_url || !kb->prefix || !kb->cluster || !kb->pull_policy ||
        (cfg->kube_secret && !kb->secret) || (cfg->tls_name && !kb->tls_name)) {
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    cl_kube_label_value(kb->cluster, kb->cluster_label, sizeof(kb->cluster_label));
    if ((s = check_pull_policy(kb->pull_policy, err)) != CL_OK)
        goto fail;
    if ((s = cl_image_table_init(&kb->images, DEFAULT_IMAGE, PYSPARK_IMAGE, cfg, err)) != CL_OK)
        goto fail;
    cl_kube_opts ko = {.kubeconfig = cfg->kubeconfig,
                       .context = cfg->kube_context,
                       .namespace_ = cfg->kube_namespace};
    if ((s = cl_kube_new(&kb->api, &ko, err)) != CL_OK)
        goto fail;
    if ((kb->ns = strdup(cl_kube_namespace(kb->api))) == NULL) {
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* The API answers, and lets us list what we manage. */
    char path[512], what[600];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s", kb->ns);
    snprintf(what, sizeof(what), "reading namespace %s", kb->ns);
    s = cl_kube_request(kb->api, "GET", path, NULL, NULL, what, err);
    if (s == CL_ERR_NOT_FOUND) {
        cl_err_set(err, s,
                   "the namespace '%s' does not exist in the cluster at %s (credentials from "
                   "%s); create it first (kubectl create namespace %s)",
                   kb->ns, cl_kube_server(kb->api), cl_kube_source(kb->api), kb->ns);
        goto fail;
    }
    if (s == CL_ERR_DENIED) {
        /* A Role limited to its namespace may not read the namespace
         * object itself; listing below tells what matters. */
        s = CL_OK;
    }
    if (s != CL_OK)
        goto fail;
    char selector[200];
    snprintf(selector, sizeof(selector), "%s=%s,%s", LABEL_CLUSTER, kb->cluster_label,
             LABEL_MODEL);
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments?limit=1", kb->ns);
    snprintf(what, sizeof(what), "listing deployments in namespace %s", kb->ns);
    if ((s = cl_kube_request(kb->api, "GET", path, NULL, NULL, what, err)) != CL_OK)
        goto fail;
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?limit=1", kb->ns);
    snprintf(what, sizeof(what), "listing pods in namespace %s", kb->ns);
    if ((s = cl_kube_request(kb->api, "GET", path, NULL, NULL, what, err)) != CL_OK)
        goto fail;
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments", kb->ns);
    if ((s = cl_kube_watch_start(&kb->deps.w, kb->api, path, selector, on_watch, &kb->deps,
                                 err)) != CL_OK)
        goto fail;
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods", kb->ns);
    if ((s = cl_kube_watch_start(&kb->pods.w, kb->api, path, selector, on_watch, &kb->pods,
                                 err)) != CL_OK)
        goto fail;
    char images[1024];
    cl_image_table_describe(&kb->images, images, sizeof(images));
    cl_info("kubernetes backend: API server %s (credentials from %s), namespace %s, images %s "
            "(pull policy %s), cluster %s, replicas join %s",
            cl_kube_server(kb->api), cl_kube_source(kb->api), kb->ns, images, kb->pull_policy,
            kb->cluster, kb->nats_url);
    *out = &kb->base;
    return CL_OK;
fail:
    kube_free(&kb->base);
    return s;
}
