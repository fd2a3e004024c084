/* The live-replica table (cl_replicas.h), fed by heartbeats on
 * <p>.replica.hb.>, and the heartbeat codec.
 *
 * An entry changes only by heartbeats of its own incarnation; one of
 * another incarnation under its id is ignored (logged at most every 10 s)
 * until the entry stops or falls silent.
 *
 * The bus callback decodes a heartbeat and updates the table under the
 * mutex; a timer thread removes replicas silent for CL_REPLICA_TIMEOUT_MS,
 * checking every 250 ms. The owner's callback always runs after the mutex
 * is released, so it may call cl_replicas_snapshot. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_clock.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_replicas.h"
#include "cl_subject.h"
#include "cl_wire.h"

#define SWEEP_MS 250

struct cl_replicas {
    cl_bus *bus;
    cl_sub *sub;
    cl_replicas_cb cb;
    void *closure;

    pthread_mutex_t mu;
    cl_replica_info *items;
    size_t n, cap;

    pthread_cond_t wake; /* monotonic clock */
    bool stop;
    bool timer_started;
    pthread_t timer;
    uint64_t bad_logged_us;   /* rate limit for bad-heartbeat warnings */
    uint64_t other_logged_us; /* rate limit for other-incarnation warnings */
};

/* ---- heartbeat codec -------------------------------------------------- */

static const char *const states[] = {"starting", "ready", "failed", "stopped"};

char *cl_heartbeat_encode(const cl_replica_info *info, const char *runtime)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "model_name", info->model);
    cJSON_AddStringToObject(o, "model_version", info->version);
    cJSON_AddNumberToObject(o, "replica_id", (double)info->replica_id);
    cJSON_AddStringToObject(o, "state", info->state);
    cJSON_AddStringToObject(o, "cause", info->cause);
    cJSON_AddStringToObject(o, "host", info->host);
    cJSON_AddNumberToObject(o, "pid", info->pid);
    cJSON_AddStringToObject(o, "input_type", info->input_type);
    cJSON_AddStringToObject(o, "runtime", runtime ? runtime : "");
    if (info->incarnation != 0) { /* 0: none, as an older replica sends */
        char inc[17];
        snprintf(inc, sizeof(inc), "%016" PRIx64, info->incarnation);
        cJSON_AddStringToObject(o, "incarnation", inc);
    }
    char *s = cl_json_print(o);
    cJSON_Delete(o);
    return s;
}

/* Copies a required (or, when opt, optional) string field into a fixed
 * buffer, refusing values that do not fit. */
static CL_MUST_USE cl_status copy_field(const cJSON *o, const char *field, bool opt, char *dst,
                                        size_t cap, cl_err *err)
{
    const char *s = "";
    bool present = true;
    cl_status st = opt ? cl_json_opt_string(o, field, &s, &present, err)
                       : cl_json_get_string(o, field, &s, err);
    if (st != CL_OK)
        return st;
    if (!present)
        s = "";
    if (strlen(s) >= cap)
        return cl_err_set(err, CL_ERR_INVALID, "field '%s' is too long (%zu bytes, at most %zu)",
                          field, strlen(s), cap - 1);
    memcpy(dst, s, strlen(s) + 1);
    return CL_OK;
}

/* 1 to 16 hex digits, not all zero (0 means "none" and is never sent). */
static CL_MUST_USE cl_status parse_incarnation(const char *s, uint64_t *out, cl_err *err)
{
    size_t n = strlen(s);
    uint64_t v = 0;
    bool ok = n >= 1 && n <= 16;
    for (size_t i = 0; ok && i < n; i++) {
        int d = isdigit((unsigned char)s[i])   ? s[i] - '0'
                : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                : s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10
                                               : -1;
        ok = d >= 0;
        v = v << 4 | (uint64_t)(d & 0xf);
    }
    if (!ok || v == 0)
        return cl_err_set(err, CL_ERR_INVALID,
                          "field 'incarnation' must be 1 to 16 hex digits, not all zero, got "
                          "'%.40s'",
                          s);
    *out = v;
    return CL_OK;
}

cl_status cl_heartbeat_decode(cl_replica_info *info, const void *data, size_t len, cl_err *err)
{
    memset(info, 0, sizeof(*info));
    cJSON *o = NULL;
    cl_status st = cl_json_parse_object(&o, data, len, err);
    if (st != CL_OK)
        goto out;
    if ((st = copy_field(o, "model_name", false, info->model, sizeof(info->model), err)) != CL_OK ||
        (st = copy_field(o, "model_version", false, info->version, sizeof(info->version), err)) !=
            CL_OK)
        goto out;
    if (!cl_token_valid(info->model, "field 'model_name'", err) ||
        !cl_token_valid(info->version, "field 'model_version'", err)) {
        st = CL_ERR_INVALID;
        goto out;
    }
    int64_t id;
    if ((st = cl_json_get_int(o, "replica_id", &id, err)) != CL_OK)
        goto out;
    if (id < 0 || id > (int64_t)UINT32_MAX) {
        st = cl_err_set(err, CL_ERR_INVALID, "field 'replica_id' must be between 0 and %u, got %lld",
                        UINT32_MAX, (long long)id);
        goto out;
    }
    info->replica_id = (uint32_t)id;
    if ((st = copy_field(o, "state", false, info->state, sizeof(info->state), err)) != CL_OK)
        goto out;
    bool known = false;
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        known = known || strcmp(info->state, states[i]) == 0;
    if (!known) {
        st = cl_err_set(err, CL_ERR_INVALID,
                        "field 'state' must be one of starting, ready, failed, stopped, got '%s'",
                        info->state);
        goto out;
    }
    /* The cause is a free text: a long one is cut, not refused. */
    const char *cause = "";
    bool present;
    if ((st = cl_json_opt_string(o, "cause", &cause, &present, err)) != CL_OK)
        goto out;
    snprintf(info->cause, sizeof(info->cause), "%s", present ? cause : "");
    if ((st = copy_field(o, "host", true, info->host, sizeof(info->host), err)) != CL_OK)
        goto out;
    int64_t pid = 0;
    if ((st = cl_json_opt_int(o, "pid", &pid, &present, err)) != CL_OK)
        goto out;
    if (pid < 0 || pid > 0x7fffffff) {
        st = cl_err_set(err, CL_ERR_INVALID, "field 'pid' must be a process id, got %lld",
                        (long long)pid);
        goto out;
    }
    info->pid = (int)pid;
    const char *itype = "";
    if ((st = cl_json_opt_string(o, "input_type", &itype, &present, err)) != CL_OK)
        goto out;
    if (present && itype[0] != '\0') { /* "" means not known yet */
        int t = cl_input_type_parse(itype);
        if (t < 0) {
            st = cl_err_set(err, CL_ERR_INVALID,
                            "field 'input_type' must be one of bytes, integers, floats, doubles, "
                            "strings, got '%.40s'",
                            itype);
            goto out;
        }
        snprintf(info->input_type, sizeof(info->input_type), "%s",
                 cl_input_type_name((cl_input_type)t));
    }
    const char *runtime;
    if ((st = cl_json_opt_string(o, "runtime", &runtime, &present, err)) != CL_OK)
        goto out;
    const char *inc = "";
    if ((st = cl_json_opt_string(o, "incarnation", &inc, &present, err)) != CL_OK)
        goto out;
    if (present && (st = parse_incarnation(inc, &info->incarnation, err)) != CL_OK)
        goto out;
out:
    cJSON_Delete(o);
    if (st != CL_OK)
        cl_err_prefix(err, "bad heartbeat");
    return st;
}

/* ---- the table -------------------------------------------------------- */

static ssize_t find(const cl_replicas *r, const cl_replica_info *info)
{
    for (size_t i = 0; i < r->n; i++) {
        const cl_replica_info *e = &r->items[i];
        if (e->replica_id == info->replica_id && strcmp(e->model, info->model) == 0 &&
            strcmp(e->version, info->version) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static void on_heartbeat(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    cl_replicas *r = closure;
    cl_replica_info info;
    cl_err err;
    if (cl_heartbeat_decode(&info, cl_msg_data(msg), cl_msg_len(msg), &err) != CL_OK) {
        uint64_t now = cl_mono_us();
        pthread_mutex_lock(&r->mu);
        bool log = now - r->bad_logged_us > 10 * 1000000ull || r->bad_logged_us == 0;
        if (log)
            r->bad_logged_us = now;
        pthread_mutex_unlock(&r->mu);
        if (log)
            cl_warn("replicas: ignoring message on %s: %s", cl_msg_subject(msg), err.msg);
        cl_msg_free(msg);
        return;
    }
    cl_msg_free(msg);
    info.last_seen_us = cl_mono_us();

    bool notify = false, removed = false, log_other = false;
    uint64_t live_incarnation = 0;
    pthread_mutex_lock(&r->mu);
    ssize_t i = find(r, &info);
    if (i >= 0 && r->items[i].incarnation != info.incarnation) {
        /* Another incarnation under a live replica's id: forged, or a
         * restart whose predecessor was not heard to stop. The one in the
         * table keeps its state until it stops or falls silent; then the
         * newcomer's next heartbeat admits it. */
        live_incarnation = r->items[i].incarnation;
        log_other = r->other_logged_us == 0 ||
                    info.last_seen_us - r->other_logged_us >= 10 * 1000000ull;
        if (log_other)
            r->other_logged_us = info.last_seen_us;
    } else if (strcmp(info.state, "stopped") == 0) {
        if (i >= 0) {
            r->items[i] = r->items[--r->n];
            notify = removed = true;
        }
    } else if (i >= 0) {
        cl_replica_info *e = &r->items[i];
        notify = strcmp(e->state, info.state) != 0 || strcmp(e->cause, info.cause) != 0;
        *e = info;
    } else {
        if (r->n == r->cap) {
            size_t ncap = r->cap ? r->cap * 2 : 16;
            cl_replica_info *p = realloc(r->items, ncap * sizeof(*p));
            if (p != NULL) {
                r->items = p;
                r->cap = ncap;
            }
        }
        if (r->n < r->cap) {
            r->items[r->n++] = info;
            notify = true;
        } else {
            cl_error("replicas: out of memory adding %s:%s:%u", info.model, info.version,
                     info.replica_id);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (log_other)
        cl_warn("replicas: ignoring a '%s' heartbeat of %s:%s:%u from incarnation %016" PRIx64
                " (host '%s', pid %d): the live replica with that id is incarnation %016" PRIx64,
                info.state, info.model, info.version, info.replica_id, info.incarnation, info.host,
                info.pid, live_incarnation);
    if (notify && r->cb)
        r->cb(r->closure, &info, removed);
}

/* Removes silent replicas every SWEEP_MS until stopped. */
static void *sweeper(void *arg)
{
    cl_replicas *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec ts = cl_mono_deadline(SWEEP_MS);
        while (!r->stop && pthread_cond_timedwait(&r->wake, &r->mu, &ts) != ETIMEDOUT) {
        }
        if (r->stop)
            break;
        uint64_t now = cl_mono_us();
        cl_replica_info gone[32];
        size_t n_gone = 0;
        for (size_t i = 0; i < r->n && n_gone < sizeof(gone) / sizeof(gone[0]);) {
            if (now - r->items[i].last_seen_us > (uint64_t)CL_REPLICA_TIMEOUT_MS * 1000) {
                gone[n_gone++] = r->items[i];
                r->items[i] = r->items[--r->n];
            } else {
                i++;
            }
        }
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n_gone; i++) {
            cl_info("replicas: %s:%s:%u is gone (silent for %d ms)", gone[i].model,
                    gone[i].version, gone[i].replica_id, CL_REPLICA_TIMEOUT_MS);
            if (r->cb)
                r->cb(r->closure, &gone[i], true);
        }
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

cl_status cl_replicas_start(cl_replicas **out, cl_bus *bus, cl_replicas_cb cb, void *closure,
                            cl_err *err)
{
    char subject[CL_SUBJECT_MAX];
    cl_status st = cl_subject_build(subject, err, cl_bus_prefix(bus), "replica", "hb", NULL);
    if (st != CL_OK)
        return st;
    if (strlen(subject) + 3 > sizeof(subject))
        return cl_err_set(err, CL_ERR_TOO_LARGE, "subject prefix is too long");
    strcat(subject, ".>");

    cl_replicas *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    r->bus = bus;
    r->cb = cb;
    r->closure = closure;
    pthread_mutex_init(&r->mu, NULL);
    cl_cond_init_monotonic(&r->wake);

    if (pthread_create(&r->timer, NULL, sweeper, r) != 0) {
        cl_replicas_free(r);
        return cl_err_set(err, CL_ERR_NOMEM, "cannot start the replica timeout thread");
    }
    r->timer_started = true;
    st = cl_bus_subscribe(&r->sub, bus, subject, NULL, on_heartbeat, r);
    if (st != CL_OK) {
        cl_replicas_free(r);
        return cl_err_set(err, st, "cannot subscribe to %s: %s", subject, cl_status_text(st));
    }
    *out = r;
    return CL_OK;
}

void cl_replicas_free(cl_replicas *r)
{
    if (r == NULL)
        return;
    cl_sub_free(r->sub); /* no heartbeat callback runs after this */
    if (r->timer_started) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->wake);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->timer, NULL);
    }
    free(r->items);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

size_t cl_replicas_snapshot(cl_replicas *r, const char *model, const char *version,
                            cl_replica_info **out)
{
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    size_t n = 0;
    cl_replica_info *copy = malloc((r->n ? r->n : 1) * sizeof(*copy));
    if (copy != NULL) {
        for (size_t i = 0; i < r->n; i++) {
            const cl_replica_info *e = &r->items[i];
            if ((model == NULL || strcmp(e->model, model) == 0) &&
                (version == NULL || strcmp(e->version, version) == 0))
                copy[n++] = *e;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (copy == NULL)
        return 0;
    *out = copy;
    return n;
}
