/* The replica actor's internal pieces, shared between its files and its
 * unit tests: command-line options (opts.c), result batches grouped per
 * reply subject (replies.c) and the heartbeat publisher (heartbeat.c).
 * The embedded interpreter has its own header, py_runtime.h. */
#ifndef CL_REPLICA_INTERNAL_H
#define CL_REPLICA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cl_actor.h"
#include "cl_buf.h"
#include "cl_bus.h"
#include "cl_replicas.h"
#include "cl_status.h"
#include "cl_subject.h"

/* Exit codes of cl_replica_main. */
#define CL_REPLICA_EXIT_OK 0
#define CL_REPLICA_EXIT_ERROR 1  /* could not reach the bus, out of memory */
#define CL_REPLICA_EXIT_USAGE 2  /* bad command line */
#define CL_REPLICA_EXIT_FAILED CL_REPLICA_EXIT_CANNOT_SERVE /* cause in the heartbeat */

/* ------------------------------------------------------------- options */

typedef struct {
    cl_actor_opts actor;   /* --nats, --prefix (and their environment variables) */
    const char *model;     /* --model (required) */
    const char *version;   /* --version (required) */
    uint32_t replica_id;   /* --replica-id, 0 .. 2^31-1 */
    bool replica_id_given; /* false: the caller picks a random one */
    int health_port;       /* --health-port, 1 .. 65535; 0: no health endpoint */
    int exit_after_bus_loss_s; /* --exit-after-bus-loss: exit when the bus has been
                                  unreachable this long; 0: never */
    bool help;             /* --help: print usage, do nothing else */
} cl__replica_opts;

/* Parses argv (argv[0] is the program name) with the shared actor options.
 * Strings point into argv or the environment. CL_ERR_INVALID with err
 * saying what is wrong. */
cl_status cl__replica_opts_parse(cl__replica_opts *opts, int argc, char **argv, cl_err *err)
    CL_MUST_USE;
void cl__replica_usage(FILE *out, const char *program);
/* A random replica id in 1 .. 2^31-1. */
uint32_t cl__replica_random_id(void);
/* The pull body {"replica_id": id, "completed": n} (malloc'd): n is the
 * number of batches answered so far, so the router can tell a repeated
 * idle pull that crossed a new batch from the end of that batch. */
char *cl__replica_pull_body(uint32_t replica_id, uint64_t completed, bool reconnected);

/* ------------------------------------------------ result batches (replies) */

/* One result batch (CLR1) for one reply subject. */
typedef struct {
    char subject[CL_SUBJECT_MAX];
    cl_buf buf;
} cl__reply;

/* The result batches of one task batch: one per reply subject, in the order
 * the subjects first appear, and more than one for a subject when a single
 * batch would exceed max_payload. */
typedef struct {
    cl__reply *items;
    size_t count;
    size_t cap;
    size_t max_payload;
} cl__replies;

void cl__replies_init(cl__replies *r, size_t max_payload);
void cl__replies_deinit(cl__replies *r);
/* Forgets the batches but keeps their memory for the next task batch. */
void cl__replies_reset(cl__replies *r);
/* Adds one result for the reply subject (reply_len bytes, not
 * NUL-terminated). A result too big for any message becomes a status 1
 * result that says so. CL_ERR_INVALID when the subject is empty or too long
 * (the result is dropped), CL_ERR_NOMEM. */
cl_status cl__replies_add(cl__replies *r, const char *reply, size_t reply_len, uint64_t task_id,
                          uint8_t status, const void *data, uint32_t len) CL_MUST_USE;

/* ------------------------------------------------------------ heartbeats */

typedef struct cl__hb cl__hb;

/* Starts publishing info's heartbeat on subject every CL_HEARTBEAT_MS from
 * a thread of its own. info gives model, version, replica_id, host, pid and
 * the first state. */
cl_status cl__hb_start(cl__hb **out, cl_bus *bus, const char *subject, const cl_replica_info *info,
                       cl_err *err) CL_MUST_USE;
/* Sets what the model entry says (input type name and runtime). */
void cl__hb_set_model(cl__hb *hb, const char *input_type, const char *runtime);
/* Changes the state (and cause, may be NULL) and publishes at once. */
void cl__hb_set_state(cl__hb *hb, const char *state, const char *cause);
/* Copies the current state and cause; returns when the thread last beat
 * (monotonic microseconds). */
uint64_t cl__hb_snapshot(cl__hb *hb, char *state, size_t state_size, char *cause,
                         size_t cause_size);
/* Stops the thread (publishes nothing more). NULL is a no-op. */
void cl__hb_free(cl__hb *hb);

/* ------------------------------------------------------------ health */

typedef struct cl__health cl__health;

/* Serves GET /ready and GET /live (health.c) on port, all addresses. */
cl_status cl__health_start(cl__health **out, cl__hb *hb, int port, cl_err *err) CL_MUST_USE;
void cl__health_free(cl__health *h);

/* --exit-after-bus-loss: a thread that stops the replica (as SIGTERM
 * would) once the bus has been unreachable for secs seconds; NULL (0
 * secs, or it could not start: logged): none. Free it (it stops and is
 * joined) before the bus. */
typedef struct cl__bus_watch cl__bus_watch;
cl__bus_watch *cl__replica_watch_bus(cl_bus *bus, int secs);
void cl__replica_watch_free(cl__bus_watch *w);

#endif
