/* --exit-after-bus-loss: a replica that outlives its manager (the local
 * backend's) must not outlive the whole cluster. When its bus has been
 * unreachable for the given time (the nats-server, and so the cluster
 * around it, is gone: a supervised nats-server is back within a second)
 * it stops as if told to. */
#include <pthread.h>
#include <stdlib.h>

#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "replica_internal.h"

typedef struct {
    cl_bus *bus;
    int secs;
} watch_args;

static void *watch_main(void *arg)
{
    watch_args a = *(watch_args *)arg;
    free(arg);
    uint64_t lost_since = 0;
    for (;;) {
        cl_sleep_ms(500);
        uint64_t now = cl_mono_us();
        if (cl_bus_is_connected(a.bus)) {
            lost_since = 0;
            continue;
        }
        if (lost_since == 0)
            lost_since = now;
        if (now - lost_since >= (uint64_t)a.secs * 1000000u) {
            cl_warn("the bus has been unreachable for %d s (--exit-after-bus-loss): stopping",
                    a.secs);
            cl_actor_request_stop();
            return NULL;
        }
    }
}

void cl__replica_watch_bus(cl_bus *bus, int secs)
{
    if (secs <= 0)
        return;
    watch_args *a = malloc(sizeof(*a));
    if (a == NULL)
        return;
    a->bus = bus;
    a->secs = secs;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, watch_main, a) != 0) {
        cl_warn("cannot start the bus watch: --exit-after-bus-loss is off");
        free(a);
    }
    pthread_attr_destroy(&at);
}
