/* The manager with a declarative backend (kubernetes): each pass hands the
 * backend the whole wanted state (apply), reads back what runs (pods),
 * matches each pod with its replica's heartbeats by host name, and deletes
 * a pod whose replica went silent while it runs (hung; the platform
 * replaces it) under the same rule as for the other backends. Nothing is
 * stopped when the manager stops: the platform keeps the replicas and the
 * next manager finds them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_clock.h"
#include "cl_log.h"
#include "cl_manager.h"
#include "cl_proc.h"
#include "manager_internal.h"

#define APPLY_WARN_EVERY_US 30000000u
#define HOST_NAME_MAX_LEN 63 /* a pod's host name is its name, cut there */

static pod_hb *hb_of(cl_manager *m, const char *pod)
{
    for (size_t i = 0; i < m->n_hbs; i++) {
        if (strcmp(m->hbs[i].pod, pod) == 0)
            return &m->hbs[i];
    }
    pod_hb *p = realloc(m->hbs, (m->n_hbs + 1) * sizeof(*p));
    if (p == NULL)
        return NULL;
    m->hbs = p;
    pod_hb *h = &m->hbs[m->n_hbs++];
    memset(h, 0, sizeof(*h));
    snprintf(h->pod, sizeof(h->pod), "%s", pod);
    return h;
}

/* Reads each running pod's heartbeats; kills a pod whose replica was heard
 * and then went silent for twice CL_REPLICA_TIMEOUT_MS (counted only while
 * our own bus connection was up). */
static void check_pod_heartbeats(cl_manager *m, uint64_t now)
{
    bool connected = cl__bus_up(m, now);
    cl_replica_info *live = NULL;
    size_t n = cl_replicas_snapshot(m->replicas, NULL, NULL, &live);
    for (size_t i = 0; i < m->n_hbs; i++)
        m->hbs[i].seen = false;
    for (size_t i = 0; i < m->n_pods; i++) {
        const cl_backend_pod *p = &m->pods[i];
        if (p->name[0] == '\0')
            continue;
        pod_hb *h = hb_of(m, p->name);
        if (h == NULL)
            continue;
        h->seen = true;
        /* The newest heartbeat from the pod's host (a restarted container
         * is a new replica on the same host). */
        const cl_replica_info *hb = NULL;
        for (size_t j = 0; j < n; j++) {
            if (strncmp(live[j].host, p->name, HOST_NAME_MAX_LEN) == 0 &&
                strcmp(live[j].model, p->model) == 0 &&
                strcmp(live[j].version, p->version) == 0 &&
                (hb == NULL || live[j].last_seen_us > hb->last_seen_us))
                hb = &live[j];
        }
        if (hb != NULL) {
            cl__hb_heard(&h->hb, hb);
            continue;
        }
        /* Silence counts only from a replica that runs and said it
         * serves: one that failed or stopped ended on purpose, and a
         * container waiting to restart has nothing to say. */
        bool expected_alive = strcmp(h->hb.state, "failed") != 0 &&
                              strcmp(h->hb.state, "stopped") != 0;
        if (!connected || p->stopping || !p->running || !expected_alive)
            continue;
        if (cl__hb_hung(m, &h->hb, now)) {
            cl_warn("replica %s:%s (pod %s, replica id %u) has sent no heartbeat for %.1f s "
                    "but its pod runs: deleting the pod to replace it",
                    p->model, p->version, p->name, h->hb.replica_id,
                    (double)(now - h->hb.last_us) / 1e6);
            snprintf(h->last_error, sizeof(h->last_error),
                     "no heartbeat for %.1f s while running: pod deleted as hung",
                     (double)(now - h->hb.last_us) / 1e6);
            cl_backend_replica r;
            memset(&r, 0, sizeof(r));
            snprintf(r.name, sizeof(r.name), "%s", p->name);
            m->backend->ops->stop(m->backend, &r, true);
        }
    }
    free(live);
    for (size_t i = 0; i < m->n_hbs;) {
        if (!m->hbs[i].seen)
            m->hbs[i] = m->hbs[--m->n_hbs];
        else
            i++;
    }
}

void cl__declared_reconcile(cl_manager *m)
{
    uint64_t now = cl_mono_us();
    want *w = NULL;
    size_t nw = cl__read_wanted(m, &w);
    cl_backend_want *bw = nw ? calloc(nw, sizeof(*bw)) : NULL;
    if (nw > 0 && bw == NULL) {
        cl_error("out of memory reconciling %zu model versions", nw);
        cl__free_wanted(w, nw);
        return;
    }
    for (size_t i = 0; i < nw; i++) {
        int64_t n = cl__wanted_count(m, &w[i], now);
        bw[i] = (cl_backend_want){.spec = {.model = w[i].model,
                                           .version = w[i].version,
                                           .runtime = w[i].runtime,
                                           .container_name = w[i].container_name,
                                           .resources = w[i].resources},
                                  .replicas = (unsigned)n};
    }
    cl_err err;
    cl_err_clear(&err);
    cl_status s = m->backend->ops->apply(m->backend, bw, nw, &err);
    if (s != CL_OK && (m->apply_warned_us == 0 || now - m->apply_warned_us >= APPLY_WARN_EVERY_US)) {
        cl_warn("cannot make the %s backend run what the cluster state wants (trying again on "
                "every change): %s",
                m->backend->ops->name, err.msg);
        m->apply_warned_us = now;
    } else if (s == CL_OK && m->apply_warned_us != 0) {
        cl_info("the %s backend runs what the cluster state wants again", m->backend->ops->name);
        m->apply_warned_us = 0;
    }
    free(bw);
    cl__free_wanted(w, nw);
    free(m->pods);
    m->pods = NULL;
    m->n_pods = m->backend->ops->pods(m->backend, &m->pods);
    check_pod_heartbeats(m, now);
}

static void add_str_or_null(cJSON *o, const char *key, const char *v)
{
    if (v != NULL && v[0] != '\0')
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

void cl__declared_rows(const cl_manager *m, cJSON *list)
{
    /* Numbered per version in the order the backend lists them. */
    for (size_t i = 0; i < m->n_pods; i++) {
        const cl_backend_pod *p = &m->pods[i];
        unsigned number = 0;
        for (size_t j = 0; j < i; j++)
            number += strcmp(m->pods[j].model, p->model) == 0 &&
                      strcmp(m->pods[j].version, p->version) == 0;
        const pod_hb *h = NULL;
        for (size_t j = 0; j < m->n_hbs && p->name[0] != '\0' && h == NULL; j++) {
            if (strcmp(m->hbs[j].pod, p->name) == 0)
                h = &m->hbs[j];
        }
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            return;
        cJSON_AddItemToArray(list, o);
        cJSON_AddStringToObject(o, "model", p->model);
        cJSON_AddStringToObject(o, "version", p->version);
        cJSON_AddNumberToObject(o, "replica", number);
        const char *state = p->name[0] == '\0' ? "waiting" : p->stopping ? "stopping" : "running";
        cJSON_AddStringToObject(o, "state", state);
        cJSON_AddNullToObject(o, "pid");
        add_str_or_null(o, "container_id", p->container_id);
        add_str_or_null(o, "container_name", p->name);
        add_str_or_null(o, "pod", p->name);
        add_str_or_null(o, "node", p->node);
        add_str_or_null(o, "phase", p->phase);
        cJSON_AddBoolToObject(o, "ready", p->ready);
        if (p->started_wall_us != 0) {
            char t[48];
            cl__iso_time(p->started_wall_us, t, sizeof(t));
            cJSON_AddStringToObject(o, "started_at", t);
        } else {
            cJSON_AddNullToObject(o, "started_at");
        }
        cJSON_AddNumberToObject(o, "restarts", p->restarts);
        if (p->has_exit) {
            char how[128];
            cl_proc_describe(p->last_exit, how, sizeof(how));
            cJSON_AddStringToObject(o, "last_exit", how);
            cJSON_AddNumberToObject(o, "last_exit_code", p->last_exit);
        } else {
            cJSON_AddNullToObject(o, "last_exit");
            cJSON_AddNullToObject(o, "last_exit_code");
        }
        cJSON_AddNullToObject(o, "log_file");
        if (h != NULL && h->hb.state[0] != '\0' && !p->stopping) {
            cJSON_AddNumberToObject(o, "replica_id", h->hb.replica_id);
            cJSON_AddStringToObject(o, "heartbeat", h->hb.state);
            if (h->hb.cause[0] != '\0')
                cJSON_AddStringToObject(o, "cause", h->hb.cause);
        } else {
            cJSON_AddNullToObject(o, "replica_id");
            cJSON_AddNullToObject(o, "heartbeat");
        }
        add_str_or_null(o, "last_error",
                        h != NULL && h->last_error[0] != '\0' ? h->last_error : p->last_error);
        add_str_or_null(o, "start_error", p->start_error);
        cJSON_AddNumberToObject(o, "start_failures", p->start_failures);
        add_str_or_null(o, "image", p->image);
    }
}

void cl__declared_free(cl_manager *m)
{
    free(m->pods);
    m->pods = NULL;
    m->n_pods = 0;
    free(m->hbs);
    m->hbs = NULL;
    m->n_hbs = 0;
}
