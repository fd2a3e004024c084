/* See fuzz_replicas.h. Including replicas.c gives this file its static
 * heartbeat callback and struct cl_replicas; the harnesses that use it do
 * not link actors/common's copy of replicas.o (every symbol it defines is
 * defined here). */
#include <nats/nats.h>

#include "../../actors/common/replicas.c"

#include "fuzz_common.h"
#include "fuzz_replicas.h"

cl_replicas *fz_replicas_new(cl_replicas_cb cb, void *closure)
{
    /* cnats' messages need the library opened (once; later calls are cheap). */
    if (nats_Open(-1) != NATS_OK)
        abort();
    cl_replicas *r = calloc(1, sizeof(*r));
    if (r == NULL)
        abort();
    r->cb = cb;
    r->closure = closure;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, NULL);
    return r;
}

void fz_replicas_heartbeat(cl_replicas *r, const char *subject, const void *data, size_t len)
{
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subject, NULL, data, (int)len) != NATS_OK)
        abort();
    on_heartbeat(NULL, (cl_msg *)m, r); /* consumes m */
}
