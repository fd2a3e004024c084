/* Which router leads: one router of a cluster dispatches (it subscribes to
 * route.task and route.pull), the others stand by, hot: they watch the same
 * heartbeats and state, and one takes over within about 0.35 s of the
 * leader going silent (killed, stopped, cut off).
 *
 * Every router publishes a hello on <p>.route.hello every HELLO_MS:
 * {"id": "<random token>", "leader": true|false, "epoch": N}. A router is
 * live while its hellos arrive (DEAD_MS). A standby takes the lead when no
 * live router leads, after listening for LISTEN_MS since it started, and
 * only if its id is the smallest among the live standbys; it leads with an
 * epoch one above every epoch it has seen. Two leaders (a partition that
 * healed, a stopped leader that resumed): the higher epoch keeps the lead
 * (on a tie the smaller id), the other steps down. Replicas answer a new
 * leader's first hello with a pull at once. Tasks the old leader held are
 * not sent again: they get the default output at their deadline.
 *
 * Everything runs on the router's loop thread: cl__leader_tick between
 * turns, the hello callback inside them. */
#ifndef CL_ROUTER_LEADER_H
#define CL_ROUTER_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "cl_loop.h"

#define CL_LEADER_HELLO_MS 100
#define CL_LEADER_ANNOUNCE_MS 1000 /* route.leader, to the replicas */
#define CL_LEADER_DEAD_MS 350
#define CL_LEADER_LISTEN_MS 250

typedef struct cl__leader cl__leader;

/* Called on the loop thread when this router starts (true) or stops
 * (false) leading. */
typedef void (*cl__leader_cb)(void *closure, bool leading);

cl_status cl__leader_new(cl__leader **out, cl_loop *loop, const char *prefix, cl__leader_cb cb,
                         void *closure, cl_err *err) CL_MUST_USE;
/* Publishes a hello when one is due and decides; returns how long the loop
 * may wait before the next tick (ms). */
int cl__leader_tick(cl__leader *l);
bool cl__leader_leading(const cl__leader *l);
/* This router leads or hears a live leader (as of the last tick). */
bool cl__leader_known(const cl__leader *l);
uint64_t cl__leader_epoch(const cl__leader *l);
/* Live routers, this one included (as of the last tick); any thread. */
unsigned cl__leader_routers(const cl__leader *l);
void cl__leader_free(cl__leader *l);

#endif
