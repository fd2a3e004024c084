/* --exit-after-bus-loss: a replica that outlives its manager (the local
 * backend's) must not outlive the whole cluster. When its bus has been
 * unreachable for the given time (the nats-server, and so the cluster
 * around it, is gone: a supervised nats-server is back within a second)
 * it stops as if told to.
 *
 * The watch looks at the bus every half second until it is freed, which
 * the replica does before it frees the bus (a watch still looking at a
 * freed bus crashed replicas as they stopped). */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "replica_internal.h"

#define LOOK_EVERY_MS 500

struct cl__bus_watch {
    cl_bus *bus;
    int secs;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    bool stop;
};

/* Waits LOOK_EVERY_MS or until told to stop; true when told. */
static bool wait_or_stop(cl__bus_watch *w)
{
    struct timespec until = cl_mono_deadline(LOOK_EVERY_MS);
    pthread_mutex_lock(&w->mu);
    while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0) {
    }
    bool stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

static void *watch_main(void *arg)
{
    cl__bus_watch *w = arg;
    uint64_t lost_since = 0;
    while (!wait_or_stop(w)) {
        uint64_t now = cl_mono_us();
        if (cl_bus_is_connected(w->bus)) {
            lost_since = 0;
            continue;
        }
        if (lost_since == 0)
            lost_since = now;
        if (now - lost_since >= (uint64_t)w->secs * 1000000u) {
            cl_warn("the bus has been unreachable for %d s (--exit-after-bus-loss): stopping",
                    w->secs);
            cl_actor_request_stop();
            break;
        }
    }
    return NULL;
}

cl__bus_watch *cl__replica_watch_bus(cl_bus *bus, int secs)
{
    if (secs <= 0)
        return NULL;
    cl__bus_watch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        cl_warn("cannot start the bus watch (out of memory): --exit-after-bus-loss is off");
        return NULL;
    }
    w->bus = bus;
    w->secs = secs;
    cl_cond_init_monotonic(&w->cv);
    pthread_mutex_init(&w->mu, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        cl_warn("cannot start the bus watch: --exit-after-bus-loss is off");
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void cl__replica_watch_free(cl__bus_watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
