/* The NATS service API (ADR-32) over plain subscriptions: answers PING,
 * INFO and STATS on $SRV.<VERB>, $SRV.<VERB>.<name> and
 * $SRV.<VERB>.<name>.<id>. Request counts are service-wide: STATS reports
 * them in one endpoint entry named "all". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_clock.h"
#include "cl_log.h"
#include "cl_service.h"

enum { VERB_PING, VERB_INFO, VERB_STATS, VERB_COUNT };
static const char *const verbs[VERB_COUNT] = {"PING", "INFO", "STATS"};
static const char *const types[VERB_COUNT] = {
    "io.nats.micro.v1.ping_response",
    "io.nats.micro.v1.info_response",
    "io.nats.micro.v1.stats_response",
};

typedef struct {
    struct cl_service *svc;
    int verb;
} sub_ctx;

struct cl_service {
    cl_bus *bus;
    char *name, *version, *description;
    char **endpoints;
    size_t n_endpoints;
    cl_service_stats_cb stats;
    void *closure;
    char id[23];
    char started[40];
    pthread_mutex_t mu;
    uint64_t num_requests, num_errors, processing_ns;
    sub_ctx ctx[VERB_COUNT];
    cl_sub *subs[VERB_COUNT * 3];
};

static bool name_ok(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Endpoint name: the subject's last element that is not a wildcard. */
static void endpoint_name(const char *subject, char *out, size_t cap)
{
    const char *best = subject;
    size_t best_len = strlen(subject);
    const char *p = subject;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!(n == 1 && (p[0] == '*' || p[0] == '>'))) {
            best = p;
            best_len = n;
        }
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    snprintf(out, cap, "%.*s", (int)best_len, best);
}

static cJSON *base_reply(struct cl_service *svc, int verb)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "type", types[verb]);
    cJSON_AddStringToObject(o, "name", svc->name);
    cJSON_AddStringToObject(o, "id", svc->id);
    cJSON_AddStringToObject(o, "version", svc->version);
    cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
    return o;
}

static cJSON *info_reply(struct cl_service *svc)
{
    cJSON *o = base_reply(svc, VERB_INFO);
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "description", svc->description);
    cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
    for (size_t i = 0; eps != NULL && i < svc->n_endpoints; i++) {
        cJSON *e = cJSON_CreateObject();
        char name[128];
        endpoint_name(svc->endpoints[i], name, sizeof(name));
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddStringToObject(e, "subject", svc->endpoints[i]);
        cJSON_AddItemToObject(e, "metadata", cJSON_CreateObject());
        cJSON_AddItemToArray(eps, e);
    }
    return o;
}

static cJSON *stats_reply(struct cl_service *svc)
{
    cJSON *o = base_reply(svc, VERB_STATS);
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "started", svc->started);
    pthread_mutex_lock(&svc->mu);
    uint64_t req = svc->num_requests, errs = svc->num_errors, ns = svc->processing_ns;
    pthread_mutex_unlock(&svc->mu);
    cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", "all");
    cJSON_AddStringToObject(e, "subject", svc->n_endpoints > 0 ? svc->endpoints[0] : "");
    cJSON_AddNumberToObject(e, "num_requests", (double)req);
    cJSON_AddNumberToObject(e, "num_errors", (double)errs);
    cJSON_AddStringToObject(e, "last_error", "");
    cJSON_AddNumberToObject(e, "processing_time", (double)ns);
    cJSON_AddNumberToObject(e, "average_processing_time", req ? (double)(ns / req) : 0.0);
    cJSON *data = cJSON_CreateObject();
    if (svc->stats != NULL && data != NULL)
        svc->stats(svc->closure, data);
    cJSON_AddItemToObject(e, "data", data);
    cJSON_AddItemToArray(eps, e);
    return o;
}

static void on_request(cl_bus *bus, cl_msg *msg, void *closure)
{
    sub_ctx *c = closure;
    cJSON *o = c->verb == VERB_PING   ? base_reply(c->svc, VERB_PING)
               : c->verb == VERB_INFO ? info_reply(c->svc)
                                      : stats_reply(c->svc);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    if (text != NULL)
        cl_status_ignore(cl_msg_respond(bus, msg, text, strlen(text))); /* the asker times out */
    else
        cl_warn("service API: out of memory answering %s", verbs[c->verb]);
    free(text);
    cJSON_Delete(o);
    cl_msg_free(msg);
}

cl_status cl_service_start(cl_service **out, cl_bus *bus, const cl_service_info *info, cl_err *err)
{
    if (info == NULL || !name_ok(info->name))
        return cl_err_set(err, CL_ERR_INVALID,
                          "service name '%s' is not valid: use letters, digits, '_' and '-'",
                          info && info->name ? info->name : "");
    struct cl_service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    svc->bus = bus;
    pthread_mutex_init(&svc->mu, NULL);
    svc->name = strdup(info->name);
    svc->version = strdup(info->version ? info->version : "0.0.0");
    svc->description = strdup(info->description ? info->description : "");
    svc->stats = info->stats;
    svc->closure = info->closure;
    cl_bus_new_token(svc->id);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(svc->started, sizeof(svc->started), "%Y-%m-%dT%H:%M:%SZ", &tm);
    bool oom = svc->name == NULL || svc->version == NULL || svc->description == NULL;
    size_t n = 0;
    while (info->endpoints != NULL && info->endpoints[n] != NULL)
        n++;
    svc->endpoints = calloc(n ? n : 1, sizeof(char *));
    oom = oom || svc->endpoints == NULL;
    for (size_t i = 0; !oom && i < n; i++) {
        svc->endpoints[i] = strdup(info->endpoints[i]);
        oom = svc->endpoints[i] == NULL;
        svc->n_endpoints = i + 1;
    }
    if (oom) {
        cl_service_free(svc);
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < VERB_COUNT; v++) {
        svc->ctx[v].svc = svc;
        svc->ctx[v].verb = v;
        char subj[3][256];
        snprintf(subj[0], sizeof(subj[0]), "$SRV.%s", verbs[v]);
        snprintf(subj[1], sizeof(subj[1]), "$SRV.%s.%s", verbs[v], svc->name);
        snprintf(subj[2], sizeof(subj[2]), "$SRV.%s.%s.%s", verbs[v], svc->name, svc->id);
        for (int k = 0; k < 3; k++) {
            cl_status st = cl_bus_subscribe(&svc->subs[v * 3 + k], bus, subj[k], NULL, on_request,
                                            &svc->ctx[v]);
            if (st != CL_OK) {
                cl_service_free(svc);
                return cl_err_set(err, st, "cannot subscribe to %s: %s", subj[k],
                                  cl_status_text(st));
            }
        }
    }
    *out = svc;
    return CL_OK;
}

void cl_service_count(cl_service *svc, int is_error, uint64_t processing_ns)
{
    if (svc == NULL)
        return;
    pthread_mutex_lock(&svc->mu);
    svc->num_requests++;
    if (is_error)
        svc->num_errors++;
    svc->processing_ns += processing_ns;
    pthread_mutex_unlock(&svc->mu);
}

const char *cl_service_id(const cl_service *svc)
{
    return svc->id;
}

void cl_service_free(cl_service *svc)
{
    if (svc == NULL)
        return;
    for (size_t i = 0; i < sizeof(svc->subs) / sizeof(svc->subs[0]); i++)
        cl_sub_free(svc->subs[i]);
    for (size_t i = 0; i < svc->n_endpoints; i++)
        free(svc->endpoints[i]);
    free(svc->endpoints);
    free(svc->name);
    free(svc->version);
    free(svc->description);
    pthread_mutex_destroy(&svc->mu);
    free(svc);
}
