/* The replica's heartbeat: published every CL_HEARTBEAT_MS from a thread of
 * its own (so a long model call never silences it), and at once, from the
 * caller's thread, whenever the state changes. Never touches Python. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cl_clock.h"
#include "cl_log.h"
#include "replica_internal.h"

struct cl__hb {
    cl_bus *bus;
    char subject[CL_SUBJECT_MAX];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    cl_replica_info info; /* guarded by lock */
    char runtime[64];     /* guarded by lock */
    bool stop;            /* guarded by lock */
    uint64_t beat_us;     /* guarded by lock: when the last one went out */
    pthread_t thread;
};

/* Publishes the current heartbeat. Holds the lock, so beats never go out of
 * order (publishing only copies into the connection's buffer). */
/* The shared encoder always writes "input_type", and decoders refuse an
 * empty one; until the model entry is read (or when it cannot be) the type
 * is unknown, so the field is left out instead. */
static char *encode_locked(cl__hb *hb)
{
    char *body = cl_heartbeat_encode(&hb->info, hb->runtime);
    if (!body || hb->info.input_type[0])
        return body;
    cJSON *o = cJSON_Parse(body);
    free(body);
    if (!o)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "input_type");
    body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return body;
}

static void publish_locked(cl__hb *hb)
{
    hb->beat_us = cl_mono_us();
    char *body = encode_locked(hb);
    if (!body) {
        cl_warn("cannot encode the heartbeat (out of memory)");
        return;
    }
    cl_status st = cl_bus_publish(hb->bus, hb->subject, body, strlen(body));
    if (st != CL_OK)
        cl_debug("heartbeat not published: %s", cl_status_text(st));
    free(body);
}

static void *run(void *arg)
{
    cl__hb *hb = arg;
    struct timespec next;
    pthread_mutex_lock(&hb->lock);
    publish_locked(hb);
    next = cl_mono_deadline(CL_HEARTBEAT_MS);
    while (!hb->stop) {
        if (pthread_cond_timedwait(&hb->wake, &hb->lock, &next) == 0) {
            /* Woken: a state change was just published (or stop). */
            next = cl_mono_deadline(CL_HEARTBEAT_MS);
            continue;
        }
        publish_locked(hb);
        next = cl_mono_deadline(CL_HEARTBEAT_MS);
    }
    pthread_mutex_unlock(&hb->lock);
    return NULL;
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

cl_status cl__hb_start(cl__hb **out, cl_bus *bus, const char *subject, const cl_replica_info *info,
                       cl_err *err)
{
    cl__hb *hb = calloc(1, sizeof(*hb));
    if (!hb)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory for the heartbeat");
    hb->bus = bus;
    copy(hb->subject, sizeof(hb->subject), subject);
    hb->info = *info;

    pthread_mutex_init(&hb->lock, NULL);
    cl_cond_init_monotonic(&hb->wake);

    if (pthread_create(&hb->thread, NULL, run, hb) != 0) {
        pthread_cond_destroy(&hb->wake);
        pthread_mutex_destroy(&hb->lock);
        free(hb);
        return cl_err_set(err, CL_ERR_NOMEM, "cannot start the heartbeat thread");
    }
    *out = hb;
    return CL_OK;
}

void cl__hb_set_model(cl__hb *hb, const char *input_type, const char *runtime)
{
    pthread_mutex_lock(&hb->lock);
    copy(hb->info.input_type, sizeof(hb->info.input_type), input_type);
    copy(hb->runtime, sizeof(hb->runtime), runtime);
    pthread_mutex_unlock(&hb->lock);
}

void cl__hb_set_state(cl__hb *hb, const char *state, const char *cause)
{
    pthread_mutex_lock(&hb->lock);
    copy(hb->info.state, sizeof(hb->info.state), state);
    copy(hb->info.cause, sizeof(hb->info.cause), cause);
    publish_locked(hb);
    /* Restart the period so the next beat comes a full period later. */
    pthread_cond_signal(&hb->wake);
    pthread_mutex_unlock(&hb->lock);
}

uint64_t cl__hb_snapshot(cl__hb *hb, char *state, size_t state_size, char *cause,
                         size_t cause_size)
{
    pthread_mutex_lock(&hb->lock);
    copy(state, state_size, hb->info.state);
    copy(cause, cause_size, hb->info.cause);
    uint64_t at = hb->beat_us;
    pthread_mutex_unlock(&hb->lock);
    return at;
}

void cl__hb_free(cl__hb *hb)
{
    if (!hb)
        return;
    pthread_mutex_lock(&hb->lock);
    hb->stop = true;
    pthread_cond_signal(&hb->wake);
    pthread_mutex_unlock(&hb->lock);
    pthread_join(hb->thread, NULL);
    pthread_cond_destroy(&hb->wake);
    pthread_mutex_destroy(&hb->lock);
    free(hb);
}
