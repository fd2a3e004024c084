/* The docker backend: replicas are containers, made and watched through
 * the Docker Engine REST API (cl_docker.h), never the docker command.
 *
 * Each call of the manager's reconcile thread costs a few short API calls
 * at most: start = create + start; stop = one kill (SIGTERM; the manager
 * forces with SIGKILL after its grace period), so the thread never waits
 * for a container to wind down; poll reads one list of the cluster's
 * replica containers, refreshed at most every LIST_MAX_AGE_US, and
 * inspects only what the list does not settle. A container that has ended
 * (or was removed by hand) is reported once, with its exit code and last
 * log lines, and removed.
 *
 * Replica containers outlive their manager. Each carries labels that say
 * exactly what it runs (cluster, model, version, replica number and id,
 * the bus URL and prefix it joined), so a manager that starts after one
 * was killed adopts the running ones it finds by them (adopt) and keeps
 * serving through them; a manager that stops normally removes them
 * (stop, then free). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "cl_backend.h"
#include "cl_clock.h"
#include "cl_docker.h"
#include "cl_identity.h"
#include "cl_proc.h"
#include "cl_log.h"
#include "cl_replica_image.h"
#include "cl_resources.h"

#define DEFAULT_IMAGE "clipper/python-closure:latest"
#define PYSPARK_IMAGE "clipper/pyspark:latest"
#define LABEL_CLUSTER "ai.clipper.container.label"
#define LABEL_MODEL_CONTAINER "ai.clipper.model_container.label" /* <model>_<version> */
#define LABEL_MODEL "ai.clipper.model"
#define LABEL_VERSION "ai.clipper.version"
#define LABEL_REPLICA "ai.clipper.replica"
#define LABEL_REPLICA_ID "ai.clipper.replica_id"
#define LABEL_NATS "ai.clipper.nats"
#define LABEL_PREFIX "ai.clipper.prefix"
/* Where a replica container finds its identity and the cluster's CA:
 * bind-mounted read-only from the engine host's files (cfg->creds,
 * cfg->tls_ca). */
#define REPLICA_CREDS_PATH "/run/clipper/creds/replica.creds"
#define REPLICA_CA_PATH "/run/clipper/ca.pem"
#define LIST_MAX_AGE_US 250000u
#define WARN_EVERY_US 30000000u
#define TAIL_LINES 40

typedef struct {
    cl_backend_replica rep;
    bool ended;         /* force-stopped and removed: end holds how */
    cl_backend_end end;
} entry;

typedef struct {
    cl_backend base;
    cl_docker *docker;
    char *nats_url;
    char *prefix;
    char *creds;  /* the replica identity's file on the engine's host, or NULL */
    char *tls_ca; /* the CA's file on the engine's host, or NULL */
    char *identities;     /* the cluster's data directory, at the same path here and on
                             the engine's host: each model's replicas get an
                             identity of their own (cl_identity.h); or NULL */
    char *nats_container; /* told to reload (SIGHUP) when an identity is issued */
    char command[PATH_MAX]; /* this program, which issues them */
    cl_image_table images;
    char *network;
    char *cluster;
    cJSON *entrypoint; /* NULL: the image's */
    entry *live;       /* started, not yet reported ended */
    size_t n_live;
    size_t cap_live;
    /* The cluster's replica containers as last listed. */
    cl_docker_container *seen;
    size_t n_seen;
    uint64_t seen_at_us; /* monotonic; 0: never */
    uint64_t warned_us;
} docker_backend;

static void warn_engine(docker_backend *db, const char *msg)
{
    uint64_t now = cl_mono_us();
    if (db->warned_us == 0 || now - db->warned_us >= WARN_EVERY_US) {
        cl_warn("docker backend: %s", msg);
        db->warned_us = now;
    }
}

static entry *find(docker_backend *db, const char *id)
{
    for (size_t i = 0; i < db->n_live; i++) {
        if (strcmp(db->live[i].rep.id, id) == 0)
            return &db->live[i];
    }
    return NULL;
}

static void forget(docker_backend *db, entry *e)
{
    *e = db->live[--db->n_live];
}

/* Room for one more live entry. */
static bool reserve_live(docker_backend *db)
{
    if (db->n_live < db->cap_live)
        return true;
    size_t cap = db->cap_live ? db->cap_live * 2 : 8;
    entry *p = realloc(db->live, cap * sizeof(*p));
    if (p == NULL)
        return false;
    db->live = p;
    db->cap_live = cap;
    return true;
}

/* A container name from parts: characters outside [a-zA-Z0-9_.-] become
 * '-', and it starts with a letter or digit, as the engine requires. */
static void container_name(char *out, size_t size, const char *cluster, const char *model,
                           const char *version, unsigned n, unsigned tag)
{
    snprintf(out, size, "%s-%s-%s-%u-%06x", cluster, model, version, n, tag & 0xffffffu);
    for (char *p = out; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            *p = '-';
    }
    if (!((out[0] >= 'a' && out[0] <= 'z') || (out[0] >= 'A' && out[0] <= 'Z') ||
          (out[0] >= '0' && out[0] <= '9')))
        out[0] = 'c';
}

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        /* Cannot really fail for 4 bytes; mix the clock in case it did. */
        v ^= (uint32_t)cl_mono_us() * 2654435761u;
    }
    return v;
}

/* The model's resources as the engine's limits: limits.cpu and
 * limits.memory cap the container, requests.memory is its memory
 * reservation (the admin checked them; anything unreadable is left out). */
static void add_limits(cJSON *host, const char *resources)
{
    cJSON *r = resources && resources[0] ? cJSON_Parse(resources) : NULL;
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(r, "limits");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(r, "requests");
    const cJSON *v;
    double q;
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(lim, "cpu")) &&
        cl_quantity_parse(v->valuestring, &q, NULL) == CL_OK && q > 0)
        cJSON_AddNumberToObject(host, "NanoCpus", (double)(int64_t)(q * 1e9));
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(lim, "memory")) &&
        cl_quantity_parse(v->valuestring, &q, NULL) == CL_OK && q > 0)
        cJSON_AddNumberToObject(host, "Memory", (double)(int64_t)q);
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(req, "memory")) &&
        cl_quantity_parse(v->valuestring, &q, NULL) == CL_OK && q > 0)
        cJSON_AddNumberToObject(host, "MemoryReservation", (double)(int64_t)q);
    cJSON_Delete(r);
}

/* The body of POST /containers/create for one replica. */
static cJSON *replica_config(const docker_backend *db, const cl_backend_spec *spec,
                             const char *image, uint32_t replica_id, const char *creds)
{
    const char *model = spec->model, *version = spec->version;
    char id[16], num[16], mv[300];
    snprintf(id, sizeof(id), "%u", replica_id);
    snprintf(num, sizeof(num), "%u", spec->n);
    snprintf(mv, sizeof(mv), "%s_%s", model, version);
    const char *cmd[17] = {"clipper", "run", "replica", "--nats", db->nats_url,
                           "--prefix", db->prefix, "--model", model,
                           "--version", version, "--replica-id", id};
    int n = 13;
    /* Only the files' paths in the container: never a secret in Cmd or Env. */
    if (creds != NULL) {
        cmd[n++] = "--creds";
        cmd[n++] = REPLICA_CREDS_PATH;
    }
    if (db->tls_ca != NULL) {
        cmd[n++] = "--tls-ca";
        cmd[n++] = REPLICA_CA_PATH;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "Image", image);
    cJSON_AddItemToObject(c, "Cmd", cJSON_CreateStringArray(cmd, n));
    if (db->entrypoint != NULL)
        cJSON_AddItemToObject(c, "Entrypoint", cJSON_Duplicate(db->entrypoint, true));
    cJSON_AddBoolToObject(c, "Tty", false);
    cJSON *labels = cJSON_AddObjectToObject(c, "Labels");
    cJSON_AddStringToObject(labels, LABEL_CLUSTER, db->cluster);
    cJSON_AddStringToObject(labels, LABEL_MODEL_CONTAINER, mv);
    cJSON_AddStringToObject(labels, LABEL_MODEL, model);
    cJSON_AddStringToObject(labels, LABEL_VERSION, version);
    cJSON_AddStringToObject(labels, LABEL_REPLICA, num);
    cJSON_AddStringToObject(labels, LABEL_REPLICA_ID, id);
    cJSON_AddStringToObject(labels, LABEL_NATS, db->nats_url);
    cJSON_AddStringToObject(labels, LABEL_PREFIX, db->prefix);
    cJSON *host = cJSON_AddObjectToObject(c, "HostConfig");
    cJSON_AddStringToObject(host, "NetworkMode", db->network);
    add_limits(host, spec->resources);
    const struct {
        const char *source, *target;
    } files[] = {{creds, REPLICA_CREDS_PATH}, {db->tls_ca, REPLICA_CA_PATH}};
    cJSON *mounts = NULL;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i].source == NULL)
            continue;
        if (mounts == NULL)
            mounts = cJSON_AddArrayToObject(host, "Mounts");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "Type", "bind");
        cJSON_AddStringToObject(m, "Source", files[i].source);
        cJSON_AddStringToObject(m, "Target", files[i].target);
        cJSON_AddBoolToObject(m, "ReadOnly", true);
        cJSON_AddItemToArray(mounts, m);
    }
    return c;
}

static CL_MUST_USE cl_status docker_start(cl_backend *b, const cl_backend_spec *spec,
                                          cl_backend_replica *out, cl_err *err)
{
    docker_backend *db = (docker_backend *)b;
    const char *image;
    bool users;
    cl_status s = cl_image_choose(&db->images, spec, &image, &users, err);
    if (s != CL_OK)
        return s;
    if (!reserve_live(db))
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    entry e;
    memset(&e, 0, sizeof(e));
    e.rep.wait_fd = -1;
    e.rep.has_replica_id = true;
    e.rep.replica_id = random_u32() & 0x7fffffffu; /* the replica takes 0 .. 2^31-1 */
    snprintf(e.rep.image, sizeof(e.rep.image), "%s", image);
    container_name(e.rep.name, sizeof(e.rep.name), db->cluster, spec->model, spec->version,
                   spec->n, random_u32());
    char scoped[PATH_MAX];
    const char *creds = db->creds;
    if (db->identities != NULL) {
        bool issued = false;
        s = cl_model_creds(db->command, db->identities, db->prefix, spec->model, scoped,
                           &issued, err);
        if (s != CL_OK) {
            cl_err_prefix(err, "no identity for the replicas of model %s", spec->model);
            return s;
        }
        creds = scoped;
        /* nats-server runs in a container of its own: 'creds issue'
         * rewrote its users (DATA/nats/), and it reloads them on SIGHUP. */
        cl_err kerr;
        if (issued && db->nats_container != NULL &&
            cl_docker_kill(db->docker, db->nats_container, "SIGHUP", &kerr) != CL_OK)
            cl_warn("docker backend: cannot make nats-server reload its users, so the new "
                    "identity of model %s's replicas is not known yet: %s",
                    spec->model, kerr.msg);
    }
    cJSON *config = replica_config(db, spec, image, e.rep.replica_id, creds);
    if (config == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    s = cl_docker_create(db->docker, e.rep.name, config, e.rep.id, sizeof(e.rep.id), err);
    cJSON_Delete(config);
    if (s == CL_ERR_NOT_FOUND && users) {
        /* The engine's text points at images/build.sh, which does not
         * make the user's images: name the runtime's image to build on. */
        const char *base = cl_image_of(&db->images, cl_spec_runtime(spec));
        return cl_err_set(err, s,
                          "model %s:%s names the image '%s' (its container_name, the "
                          "base_image it was deployed with), which the container engine at "
                          "%s does not have; build it%s%s%s, or deploy with "
                          "base_image=\"default\"",
                          spec->model, spec->version, image, cl_docker_url(db->docker),
                          base ? " (FROM " : "", base ? base : "", base ? ")" : "");
    }
    if (s == CL_ERR_NOT_FOUND) {
        cl_err why = *err;
        return cl_err_set(err, s, "model %s:%s (runtime %s): %s", spec->model, spec->version,
                          cl_spec_runtime(spec), why.msg);
    }
    if (s != CL_OK)
        return s;
    /* By name from here on: messages then name what the operator sees. */
    s = cl_docker_start(db->docker, e.rep.name, err);
    if (s != CL_OK) {
        cl_err rm;
        if (cl_docker_remove(db->docker, e.rep.name, true, &rm) != CL_OK)
            cl_warn("docker backend: %s", rm.msg);
        return s;
    }
    db->live[db->n_live++] = e;
    *out = e.rep;
    return CL_OK;
}

/* What cl_docker_inspect said of a container: its status, and the state
 * (s == CL_OK) or the error. */
typedef struct {
    cl_status s;
    cl_docker_state st;
    cl_err err;
} inspected;

/* The container has ended or is to go: reads how (when it is still
 * there), its last lines, and removes it. known: what the caller has just
 * inspected, or NULL to inspect it here. */
static void finish(docker_backend *db, const cl_backend_replica *r, const inspected *known,
                   cl_backend_end *end)
{
    memset(end, 0, sizeof(*end));
    end->exit_code = -1000;
    inspected here;
    if (known == NULL) {
        here.s = cl_docker_inspect(db->docker, r->name, &here.st, &here.err);
        known = &here;
    }
    cl_status s = known->s;
    const cl_docker_state *st = &known->st;
    cl_err err;
    if (s == CL_ERR_NOT_FOUND) {
        snprintf(end->error, sizeof(end->error),
                 "container %s (%.12s) is gone: it was removed outside the manager", r->name,
                 r->id);
        return;
    }
    if (s != CL_OK) {
        snprintf(end->error, sizeof(end->error), "%s", known->err.msg);
    } else {
        if (!st->running)
            end->exit_code = st->exit_code;
        if (st->oom_killed)
            snprintf(end->error, sizeof(end->error), "container %s ran out of memory (OOM killed)",
                     r->name);
        else if (st->error[0] != '\0')
            snprintf(end->error, sizeof(end->error), "container %.200s: %.290s", r->name,
                     st->error);
    }
    char *text = NULL;
    if (cl_docker_logs(db->docker, r->name, TAIL_LINES, &text, &err) == CL_OK) {
        size_t len = strlen(text);
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            text[--len] = '\0';
        const char *from = text;
        if (len >= sizeof(end->tail)) {
            /* The end of it, from a whole line. */
            from = text + len - (sizeof(end->tail) - 1);
            const char *nl = strchr(from, '\n');
            if (nl != NULL)
                from = nl + 1;
        }
        snprintf(end->tail, sizeof(end->tail), "%s", from);
        free(text);
    }
    s = cl_docker_remove(db->docker, r->name, true, &err);
    if (s != CL_OK && s != CL_ERR_NOT_FOUND)
        cl_warn("docker backend: %s", err.msg);
}

static void docker_stop(cl_backend *b, const cl_backend_replica *r, bool force)
{
    docker_backend *db = (docker_backend *)b;
    entry *e = find(db, r->id);
    if (e == NULL || e->ended)
        return;
    cl_err err;
    cl_status s = cl_docker_kill(db->docker, r->name, force ? "SIGKILL" : "SIGTERM", &err);
    if (s != CL_OK && s != CL_ERR_CONFLICT && s != CL_ERR_NOT_FOUND)
        cl_warn("docker backend: %s", err.msg);
    if (force && (s == CL_OK || s == CL_ERR_CONFLICT)) {
        /* Killed (or ended already): remove it now too, keeping how it
         * ended for poll. Gone already: poll says so. Not reached (the
         * engine failed): poll and a later stop try again. */
        finish(db, r, NULL, &e->end);
        e->ended = true;
    }
}

/* Every replica container of this cluster, ours or not. */
static CL_MUST_USE cl_status list_replicas(docker_backend *db, cl_docker_container **list,
                                           size_t *n, cl_err *err)
{
    char cluster[600];
    snprintf(cluster, sizeof(cluster), "%s=%s", LABEL_CLUSTER, db->cluster);
    const char *labels[] = {cluster, LABEL_REPLICA_ID, NULL};
    return cl_docker_list(db->docker, labels, list, n, err);
}

/* Refreshes the list of the cluster's replica containers when it is older
 * than LIST_MAX_AGE_US. False when the engine cannot be asked. */
static bool refresh_seen(docker_backend *db)
{
    uint64_t now = cl_mono_us();
    if (db->seen_at_us != 0 && now - db->seen_at_us < LIST_MAX_AGE_US)
        return true;
    cl_docker_container *list = NULL;
    size_t n = 0;
    cl_err err;
    if (list_replicas(db, &list, &n, &err) != CL_OK) {
        warn_engine(db, err.msg);
        return false;
    }
    cl_docker_list_free(db->seen, db->n_seen);
    db->seen = list;
    db->n_seen = n;
    db->seen_at_us = now;
    return true;
}

static bool is_ended_state(const char *state)
{
    return strcmp(state, "exited") == 0 || strcmp(state, "dead") == 0 ||
           strcmp(state, "stopped") == 0;
}

static bool docker_poll(cl_backend *b, const cl_backend_replica *r, cl_backend_end *end)
{
    docker_backend *db = (docker_backend *)b;
    entry *e = find(db, r->id);
    if (e == NULL) {
        memset(end, 0, sizeof(*end));
        end->exit_code = -1000;
        return true;
    }
    if (e->ended) {
        *end = e->end;
        forget(db, e);
        return true;
    }
    if (!refresh_seen(db))
        return false; /* cannot tell: the engine is unreachable (warned) */
    for (size_t i = 0; i < db->n_seen; i++) {
        if (strcmp(db->seen[i].id, r->id) == 0) {
            if (!is_ended_state(db->seen[i].state))
                return false;
            break;
        }
    }
    /* Ended, or not in the list: gone, or started after the list was made. */
    inspected now;
    now.s = cl_docker_inspect(db->docker, r->name, &now.st, &now.err);
    if (now.s == CL_OK && !is_ended_state(now.st.status))
        return false;
    if (now.s != CL_OK && now.s != CL_ERR_NOT_FOUND) {
        warn_engine(db, now.err.msg);
        return false;
    }
    finish(db, r, &now, end);
    forget(db, e);
    return true;
}

static size_t docker_list(cl_backend *b, cl_backend_replica **out)
{
    docker_backend *db = (docker_backend *)b;
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < db->n_live; i++)
        n += !db->live[i].ended;
    if (n == 0 || (*out = malloc(n * sizeof(**out))) == NULL)
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < db->n_live; i++) {
        if (!db->live[i].ended)
            (*out)[k++] = db->live[i].rep;
    }
    return n;
}

static void docker_free(cl_backend *b)
{
    docker_backend *db = (docker_backend *)b;
    for (size_t i = 0; db->docker != NULL && i < db->n_live; i++) {
        if (db->live[i].ended)
            continue;
        cl_err err;
        cl_status s = cl_docker_remove(db->docker, db->live[i].rep.name, true, &err);
        if (s == CL_OK)
            cl_info("removed replica container %s", db->live[i].rep.name);
        else if (s != CL_ERR_NOT_FOUND)
            cl_warn("docker backend: %s", err.msg);
    }
    cl_docker_list_free(db->seen, db->n_seen);
    cl_docker_free(db->docker);
    cJSON_Delete(db->entrypoint);
    free(db->live);
    free(db->nats_url);
    free(db->prefix);
    free(db->creds);
    free(db->tls_ca);
    free(db->identities);
    free(db->nats_container);
    cl_image_table_free(&db->images);
    free(db->network);
    free(db->cluster);
    free(db);
}

/* A replica id or number label: its value, when it is a number no larger
 * than max. */
static bool label_number(const cl_docker_container *c, const char *key, unsigned long max,
                         unsigned long *out)
{
    const char *v = cl_docker_label(c, key);
    if (v == NULL || v[0] < '0' || v[0] > '9')
        return false;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*end != '\0' || n > max)
        return false;
    *out = n;
    return true;
}

/* Why the replica container c, which an earlier manager left, cannot be
 * adopted (NULL: it can, with its model, version and replica id): it
 * must run and carry the labels docker_start gives, with this manager's
 * bus URL and prefix (a replica on another bus would never be heard). */
static const char *not_adoptable(const docker_backend *db, const cl_docker_container *c,
                                 const char **model, const char **version, uint32_t *replica_id)
{
    *model = cl_docker_label(c, LABEL_MODEL);
    *version = cl_docker_label(c, LABEL_VERSION);
    const char *nats = cl_docker_label(c, LABEL_NATS);
    const char *prefix = cl_docker_label(c, LABEL_PREFIX);
    unsigned long id;
    if (strcmp(c->state, "running") != 0)
        return "it does not run";
    if (*model == NULL || *version == NULL || nats == NULL || prefix == NULL)
        return "it lacks the labels " LABEL_MODEL ", " LABEL_VERSION ", " LABEL_NATS " and "
               LABEL_PREFIX " (an older manager's)";
    if (!label_number(c, LABEL_REPLICA_ID, 0x7fffffffu, &id))
        return "its " LABEL_REPLICA_ID " label is not a replica id";
    if (strlen(*model) >= sizeof(((cl_backend_found *)0)->model) ||
        strlen(*version) >= sizeof(((cl_backend_found *)0)->version))
        return "its model name or version is too long";
    if (strcmp(nats, db->nats_url) != 0 || strcmp(prefix, db->prefix) != 0)
        return "it joined another bus (URL or prefix)";
    *replica_id = (uint32_t)id;
    return NULL;
}

/* Takes the cluster's running replica containers as ours; removes those
 * that have ended (or cannot be told apart), as nothing else would. */
static size_t docker_adopt(cl_backend *b, cl_backend_found **out)
{
    docker_backend *db = (docker_backend *)b;
    *out = NULL;
    cl_docker_container *list = NULL;
    size_t n = 0, k = 0;
    cl_err err;
    if (list_replicas(db, &list, &n, &err) != CL_OK) {
        cl_warn("docker backend: cannot look for the replica containers an earlier manager "
                "left, so none is adopted: %s",
                err.msg);
        return 0;
    }
    if (n > 0 && (*out = calloc(n, sizeof(**out))) == NULL) {
        cl_error("docker backend: out of memory adopting replica containers");
        cl_docker_list_free(list, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const cl_docker_container *c = &list[i];
        const char *model, *version;
        uint32_t replica_id = 0;
        const char *why = not_adoptable(db, c, &model, &version, &replica_id);
        if (why == NULL && reserve_live(db)) {
            cl_backend_found *f = &(*out)[k++];
            f->rep.wait_fd = -1;
            f->rep.has_replica_id = true;
            f->rep.replica_id = replica_id;
            snprintf(f->rep.id, sizeof(f->rep.id), "%s", c->id);
            snprintf(f->rep.name, sizeof(f->rep.name), "%s", c->name);
            snprintf(f->rep.image, sizeof(f->rep.image), "%s", c->image);
            snprintf(f->model, sizeof(f->model), "%s", model);
            snprintf(f->version, sizeof(f->version), "%s", version);
            unsigned long num;
            f->n = label_number(c, LABEL_REPLICA, 99999, &num) ? (unsigned)num : UINT_MAX;
            entry *e = &db->live[db->n_live++];
            memset(e, 0, sizeof(*e));
            e->rep = f->rep;
            continue;
        }
        cl_err rm;
        cl_status s = cl_docker_remove(db->docker, c->id, true, &rm);
        if (s == CL_OK || s == CL_ERR_NOT_FOUND) {
            if (strcmp(c->state, "running") != 0)
                cl_info("removed replica container %s (%s) of cluster %s, left by an earlier "
                        "manager",
                        c->name, c->state, db->cluster);
            else
                cl_info("removed replica container %s (%s) of cluster %s, left by an earlier "
                        "manager: %s",
                        c->name, c->state, db->cluster, why ? why : "out of memory");
        } else {
            cl_warn("docker backend: removing a replica container left by an earlier "
                    "manager: %s",
                    rm.msg);
        }
    }
    cl_docker_list_free(list, n);
    if (k == 0) {
        free(*out);
        *out = NULL;
    }
    return k;
}

static const cl_backend_ops docker_ops = {
    .name = "docker",
    .start = docker_start,
    .stop = docker_stop,
    .poll = docker_poll,
    .list = docker_list,
    .adopt = docker_adopt,
    .free = docker_free,
};

/* Networks every engine has, or a container's: not looked up. */
static bool builtin_network(const char *net)
{
    return strcmp(net, "host") == 0 || strcmp(net, "none") == 0 || strcmp(net, "bridge") == 0 ||
           strcmp(net, "default") == 0 || strncmp(net, "container:", 10) == 0;
}

static CL_MUST_USE cl_status parse_entrypoint(cJSON **out, const char *text, cl_err *err)
{
    cJSON *j = cJSON_Parse(text);
    bool ok = cJSON_IsArray(j) && cJSON_GetArraySize(j) > 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, j)
    {
        ok = ok && cJSON_IsString(v);
    }
    if (!ok) {
        cJSON_Delete(j);
        return cl_err_set(err, CL_ERR_INVALID,
                          "the replica entrypoint must be a JSON array of strings such as "
                          "[\"sh\",\"-c\",\"...\"], got '%.200s'",
                          text);
    }
    *out = j;
    return CL_OK;
}

/* The python-closure image must be there; another runtime's missing image
 * only stops models of that runtime, so it is a warning. */
static CL_MUST_USE cl_status check_images(docker_backend *db, cl_err *err)
{
    const cl_image_table *t = &db->images;
    cl_status s = cl_docker_image_check(db->docker, t->e[0].image, err);
    if (s != CL_OK)
        return s;
    for (size_t i = 1; i < t->n; i++) {
        cl_err e;
        s = cl_docker_image_check(db->docker, t->e[i].image, &e);
        if (s == CL_ERR_NOT_FOUND)
            cl_warn("docker backend: replicas of %s models cannot start until the image is "
                    "there: %s",
                    t->e[i].runtime, e.msg);
        else if (s != CL_OK)
            return cl_err_set(err, s, "%s", e.msg);
    }
    return CL_OK;
}

cl_status cl_backend_docker_new(cl_backend **out, const cl_backend_config *cfg, cl_err *err)
{
    if (cfg->network == NULL || cfg->network[0] == '\0')
        return cl_err_set(err, CL_ERR_INVALID,
                          "the docker backend needs the network its replica containers join "
                          "(--docker-network NAME; 'host' for the engine host's network)");
    const char *const files[][2] = {{"--replica-creds", cfg->creds},
                                    {"--replica-tls-ca", cfg->tls_ca}};
    for (size_t i = 0; i < 2; i++) {
        const char *f = files[i][1];
        if (f != NULL && (f[0] != '/' || strlen(f) >= PATH_MAX))
            return cl_err_set(err, CL_ERR_INVALID,
                              "the docker backend bind-mounts the replicas' %s file into "
                              "their containers, so it must be an absolute path on the "
                              "container engine's host, got '%.200s'",
                              files[i][0], f);
    }
    const char *prefix = cfg->prefix ? cfg->prefix : "clipper";
    docker_backend *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    db->base.ops = &docker_ops;
    db->nats_url = strdup(cfg->nats_url ? cfg->nats_url : "nats://127.0.0.1:4222");
    db->prefix = strdup(prefix);
    db->network = strdup(cfg->network);
    db->cluster = strdup(cfg->cluster && cfg->cluster[0] ? cfg->cluster : prefix);
    db->creds = cfg->creds ? strdup(cfg->creds) : NULL;
    db->tls_ca = cfg->tls_ca ? strdup(cfg->tls_ca) : NULL;
    db->identities = cfg->identities ? strdup(cfg->identities) : NULL;
    db->nats_container = cfg->nats_container ? strdup(cfg->nats_container) : NULL;
    cl_status s = CL_OK;
    if (!db->nats_url || !db->prefix || !db->network || !db->cluster ||
        (cfg->creds && !db->creds) || (cfg->tls_ca && !db->tls_ca) ||
        (cfg->identities && !db->identities) || (cfg->nats_container && !db->nats_container)) {
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (db->identities != NULL) {
        if (db->identities[0] != '/') {
            s = cl_err_set(err, CL_ERR_INVALID,
                           "--replica-identities must be the data directory's absolute path "
                           "(the same on the engine's host, whose files the replicas mount), "
                           "got '%.200s'",
                           db->identities);
            goto fail;
        }
        if (cfg->command != NULL && cfg->command[0] != '\0')
            snprintf(db->command, sizeof(db->command), "%s", cfg->command);
        else if ((s = cl_proc_self_exe(db->command, sizeof(db->command), err)) != CL_OK)
            goto fail;
    }
    if ((s = cl_image_table_init(&db->images, DEFAULT_IMAGE, PYSPARK_IMAGE, cfg, err)) != CL_OK)
        goto fail;
    if (cfg->entrypoint != NULL && (s = parse_entrypoint(&db->entrypoint, cfg->entrypoint, err)) !=
                                       CL_OK)
        goto fail;
    if ((s = cl_docker_new(&db->docker, cfg->docker_host, err)) != CL_OK)
        goto fail;
    if ((s = cl_docker_ping(db->docker, err)) != CL_OK)
        goto fail;
    if (!builtin_network(db->network)) {
        s = cl_docker_network_inspect(db->docker, db->network, err);
        if (s == CL_ERR_NOT_FOUND)
            cl_err_set(err, s,
                       "the network '%s' does not exist in the container engine at %s; create "
                       "it first (docker network create %s)",
                       db->network, cl_docker_url(db->docker), db->network);
        if (s != CL_OK)
            goto fail;
    }
    if ((s = check_images(db, err)) != CL_OK)
        goto fail;
    char images[1024];
    cl_image_table_describe(&db->images, images, sizeof(images));
    cl_info("docker backend: engine %s, images %s, network %s, cluster %s, replicas join %s%s%s"
            "%s%s",
            cl_docker_url(db->docker), images, db->network, db->cluster, db->nats_url,
            db->identities ? " as an identity of their model's, issued from "
            : db->creds    ? " as the identity in (host file) "
                           : " without an identity",
            db->identities ? db->identities : db->creds ? db->creds : "",
            db->tls_ca ? ", verifying it with the CA in " : "", db->tls_ca ? db->tls_ca : "");
    *out = &db->base;
    return CL_OK;
fail:
    docker_free(&db->base);
    return s;
}
