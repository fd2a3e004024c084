/* Which router leads (see leader.h). */
#include "leader.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cl_clock.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_subject.h"

#define MAX_PEERS 32

typedef struct {
    char id[24];
    bool leader;
    uint64_t epoch;
    uint64_t heard_us; /* monotonic */
} peer;

struct cl__leader {
    cl_loop *loop;
    cl__leader_cb cb;
    void *closure;
    char subject[CL_SUBJECT_MAX];
    char leader_subject[CL_SUBJECT_MAX]; /* <p>.route.leader */
    uint64_t next_announce_us;
    char id[24];
    bool leading;
    uint64_t epoch;      /* ours while leading; else the highest seen */
    uint64_t started_us;  /* or when the bus came back: listen before deciding */
    bool bus_was_down;
    uint64_t next_hello_us;
    bool known; /* this router leads, or hears a live leader */
    peer peers[MAX_PEERS];
    size_t n_peers;
    atomic_uint routers; /* n_peers + 1 after each tick, for other threads */
};

static peer *find_peer(cl__leader *l, const char *id)
{
    for (size_t i = 0; i < l->n_peers; i++) {
        if (strcmp(l->peers[i].id, id) == 0)
            return &l->peers[i];
    }
    return NULL;
}

static void on_hello(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    cl__leader *l = closure;
    cJSON *j = NULL;
    cl_err err;
    const char *id = NULL;
    bool leader = false;
    int64_t epoch = 0;
    if (cl_json_parse_object(&j, cl_msg_data(msg), cl_msg_len(msg), &err) != CL_OK ||
        cl_json_get_string(j, "id", &id, &err) != CL_OK ||
        cl_json_get_bool(j, "leader", &leader, &err) != CL_OK ||
        cl_json_get_int(j, "epoch", &epoch, &err) != CL_OK || epoch < 0 ||
        strlen(id) >= sizeof(l->peers[0].id)) {
        CL_LOG_LIMITED(CL_LOG_WARN, "ignoring a malformed router hello: %s",
                       id == NULL || epoch < 0 ? err.msg : "bad id or epoch");
        goto out;
    }
    if (strcmp(id, l->id) == 0)
        goto out; /* our own */
    uint64_t now = cl_mono_us();
    peer *p = find_peer(l, id);
    if (p == NULL) {
        /* Forget the longest-silent peer when full. */
        if (l->n_peers == MAX_PEERS) {
            size_t old = 0;
            for (size_t i = 1; i < l->n_peers; i++)
                if (l->peers[i].heard_us < l->peers[old].heard_us)
                    old = i;
            l->peers[old] = l->peers[--l->n_peers];
        }
        p = &l->peers[l->n_peers++];
        memset(p, 0, sizeof(*p));
        snprintf(p->id, sizeof(p->id), "%s", id);
    }
    p->leader = leader;
    p->epoch = (uint64_t)epoch;
    p->heard_us = now;
out:
    cJSON_Delete(j);
    cl_msg_free(msg);
}

static void say_hello(cl__leader *l)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"id\":\"%s\",\"leader\":%s,\"epoch\":%" PRIu64 "}",
                     l->id, l->leading ? "true" : "false", l->epoch);
    /* Best effort: a hello lost while the bus is down is sent again in HELLO_MS. */
    cl_status_ignore(cl_loop_publish(l->loop, l->subject, body, (size_t)n));
    uint64_t now = cl_mono_us();
    if (l->leading && now >= l->next_announce_us) {
        /* The same, to the replicas; lost, it goes again in ANNOUNCE_MS. */
        cl_status_ignore(cl_loop_publish(l->loop, l->leader_subject, body, (size_t)n));
        l->next_announce_us = now + CL_LEADER_ANNOUNCE_MS * 1000u;
    }
}

static void set_leading(cl__leader *l, bool leading, const char *why)
{
    l->leading = leading;
    cl_info("router %s %s (epoch %" PRIu64 "): %s", l->id,
            leading ? "leads" : "stands by", l->epoch, why);
    /* Subscribed (or not) first: the hello makes replicas pull at once. */
    l->cb(l->closure, leading);
    l->next_announce_us = 0; /* a new leader tells the replicas at once */
    say_hello(l);
    l->next_hello_us = cl_mono_us() + CL_LEADER_HELLO_MS * 1000u;
}

int cl__leader_tick(cl__leader *l)
{
    uint64_t now = cl_mono_us();
    /* Without the bus nobody is heard: that says nothing about the others
     * (the nats-server may be restarting under all of us). Decide nothing
     * until the bus is back and the others have had LISTEN_MS to be heard
     * again, and forget nobody meanwhile. */
    if (!cl_bus_is_connected(cl_loop_bus(l->loop))) {
        l->bus_was_down = true;
        return 50;
    }
    if (l->bus_was_down) {
        l->bus_was_down = false;
        l->started_us = now;
        for (size_t i = 0; i < l->n_peers; i++)
            l->peers[i].heard_us = now;
    }
    const uint64_t dead = CL_LEADER_DEAD_MS * 1000u;
    /* Drop the silent; learn the highest epoch and whether a live one leads. */
    const peer *lead = NULL;
    bool smallest = true;
    for (size_t i = 0; i < l->n_peers;) {
        peer *p = &l->peers[i];
        if (now - p->heard_us > dead) {
            l->peers[i] = l->peers[--l->n_peers];
            continue;
        }
        if (p->leader && (lead == NULL || p->epoch > lead->epoch ||
                          (p->epoch == lead->epoch && strcmp(p->id, lead->id) < 0)))
            lead = p;
        if (!p->leader && strcmp(p->id, l->id) < 0)
            smallest = false;
        if (!l->leading && p->epoch > l->epoch)
            l->epoch = p->epoch;
        i++;
    }
    if (l->leading) {
        if (lead != NULL && (lead->epoch > l->epoch ||
                             (lead->epoch == l->epoch && strcmp(lead->id, l->id) < 0))) {
            char why[96];
            snprintf(why, sizeof(why), "router %s leads with epoch %" PRIu64, lead->id,
                     lead->epoch);
            l->epoch = lead->epoch;
            set_leading(l, false, why);
        }
    } else if (lead == NULL && smallest && now - l->started_us >= CL_LEADER_LISTEN_MS * 1000u) {
        l->epoch++;
        set_leading(l, true, l->n_peers == 0 ? "no other router answers"
                                             : "no live router leads");
    }
    l->known = l->leading || lead != NULL;
    atomic_store(&l->routers, (unsigned)l->n_peers + 1u);
    if (now >= l->next_hello_us) {
        say_hello(l);
        l->next_hello_us = now + CL_LEADER_HELLO_MS * 1000u;
    }
    uint64_t wait = l->next_hello_us > now ? l->next_hello_us - now : 0;
    /* Look again soon while deciding matters (no leader yet). */
    if (!l->leading && lead == NULL && wait > 50000u)
        wait = 50000u;
    return (int)(wait / 1000u) + 1;
}

bool cl__leader_known(const cl__leader *l)
{
    return l->known;
}

bool cl__leader_leading(const cl__leader *l)
{
    return l->leading;
}

uint64_t cl__leader_epoch(const cl__leader *l)
{
    return l->epoch;
}

unsigned cl__leader_routers(const cl__leader *l)
{
    return atomic_load(&l->routers);
}

cl_status cl__leader_new(cl__leader **out, cl_loop *loop, const char *prefix, cl__leader_cb cb,
                         void *closure, cl_err *err)
{
    cl__leader *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    l->loop = loop;
    l->cb = cb;
    l->closure = closure;
    cl_bus_new_token(l->id);
    l->started_us = cl_mono_us();
    atomic_init(&l->routers, 1u);
    cl_status s = cl_subj_route_hello(l->subject, prefix, err);
    if (s == CL_OK)
        s = cl_subj_route_leader(l->leader_subject, prefix, err);
    if (s == CL_OK) {
        s = cl_loop_subscribe(loop, l->subject, NULL, on_hello, l);
        if (s != CL_OK)
            cl_err_set(err, s, "cannot subscribe to %s: %s", l->subject, cl_status_text(s));
    }
    if (s != CL_OK) {
        free(l);
        return s;
    }
    *out = l;
    return CL_OK;
}

void cl__leader_free(cl__leader *l)
{
    free(l);
}
