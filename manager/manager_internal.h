/* The container manager's internals, shared by its files: manager.c (the
 * loop, the per-replica backends, the bus endpoints) and declared.c (the
 * declarative backends' path). Not part of any public interface. */
#ifndef CL_MANAGER_INTERNAL_H
#define CL_MANAGER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_backend.h"
#include "cl_bus.h"
#include "cl_kv.h"
#include "cl_placement.h"
#include "cl_replicas.h"
#include "cl_service.h"
#include "cl_view.h"

#define MAX_REPLICAS_PER_VERSION 128

/* What a replica's heartbeats said, as the reconcile loop last read them. */
typedef struct {
    bool seen;           /* heard since it (re)started */
    uint64_t last_us;    /* monotonic time of the last one */
    uint32_t replica_id;
    char state[16];      /* as it announced it, or "silent" */
    char cause[1024];
} hb_record;

typedef enum { SLOT_RUNNING, SLOT_STOPPING, SLOT_WAITING } slot_state;

/* One wanted (or being stopped) replica of a model version. */
typedef struct {
    char *model;
    char *version;
    char *runtime;        /* the model record's, NULL when it has none */
    char *container_name; /* the model record's, NULL when it has none */
    char *resources;      /* the model record's, NULL when it has none */
    unsigned n;
    slot_state state;
    bool has_rep;           /* rep is a live backend replica */
    cl_backend_replica rep;
    char log[1024];         /* last known log file */
    unsigned runs;          /* times started; restarts = runs - 1 */
    unsigned fails;         /* consecutive ends that came too soon */
    bool has_exit;
    int last_exit;
    uint64_t started_wall_us;
    uint64_t started_mono_us;
    uint64_t next_start_mono_us; /* SLOT_WAITING */
    uint64_t next_start_wall_us;
    uint64_t stop_deadline_us;   /* SLOT_STOPPING, monotonic */
    bool killed;
    char last_error[512]; /* the last thing that went wrong, "" before any */
    char start_error[512]; /* why the last start failed; "" once one succeeds */
    unsigned start_failures; /* starts that failed in a row */
    /* What the replica's heartbeats say (matched by the replica id the
     * backend chose, else by host and pid). */
    hb_record hb;
} slot;

/* A model version's record, as the reconcile loop needs it. */
typedef struct {
    char *model;
    char *version;
    char *runtime;
    char *container_name;
    char *resources; /* JSON text, or NULL */
    int64_t wanted;
    int64_t active; /* reconcile: this host's slots of it not stopping */
} want;

/* What the heartbeats of one pod (a declarative backend's replica) say,
 * matched by host name. */
typedef struct {
    char pod[256];
    bool seen;           /* in the current pass */
    hb_record hb;
    char last_error[512]; /* killed as hung */
} pod_hb;

struct cl_manager {
    cl_bus *bus;
    cl_kv *kv;
    cl_view *view;
    cl_backend *backend;
    cl_service *svc;
    cl_replicas *replicas;
    uint64_t connected_since_us; /* 0 while the bus is down */
    bool bus_stalled;            /* connected, but our own hellos do not come back */
    uint64_t last_pass_us;       /* the reconcile thread's last pass (monotonic) */
    uint64_t cap_warned_us;
    cl_sub *sub_status;
    cl_sub *sub_logs;
    cl_sub *sub_hosts;
    cl_sub *sub_drain;
    cl_placement *place; /* per-replica backends: the share of each version
                            this host runs; NULL for declarative ones */
    char *log_dir;
    char host[256];
    int reconcile_ms;
    int grace_ms;

    pthread_t thread;
    bool thread_started;
    int wake_fd; /* eventfd: something changed, or stop */
    atomic_bool stop;

    /* Owned by the reconcile thread. */
    cl_backend_found *found; /* adopted at start, not yet given slots */
    size_t n_found;
    slot *slots;
    size_t n_slots;
    size_t cap_slots;
    /* A declarative backend's replicas as last read, and their heartbeats. */
    cl_backend_pod *pods;
    size_t n_pods;
    pod_hb *hbs;
    size_t n_hbs;
    uint64_t apply_warned_us;

    pthread_mutex_t snap_mu; /* the two snapshots */
    char *status_json;
    char *logs_json;
    char *hosts_json;
};

/* The wanted model versions from the view: a malloc'd array (free with
 * cl__free_wanted). */
size_t cl__read_wanted(cl_manager *m, want **out);
void cl__free_wanted(want *w, size_t n);
/* The count of want the manager runs: its wanted count, at least 0 and at
 * most MAX_REPLICAS_PER_VERSION (saying so, at most once a minute). */
int64_t cl__wanted_count(cl_manager *m, const want *w, uint64_t now);
/* Whether our own bus connection is up, and since when (kept in m): silence
 * counts only from then, so a bus outage kills no replica. */
bool cl__bus_up(cl_manager *m, uint64_t now);
/* r heard hb this pass. */
void cl__hb_heard(hb_record *r, const cl_replica_info *hb);
/* r was heard before but not this pass: marks it "silent" once
 * CL_REPLICA_TIMEOUT_MS passed (counted while the bus was up); true once
 * twice that passed: it is hung, and the caller kills it. */
bool cl__hb_hung(const cl_manager *m, hb_record *r, uint64_t now);

/* "2026-12-06T15:20:01.123Z" */
void cl__iso_time(uint64_t wall_us, char *buf, size_t size);

/* declared.c: one reconcile pass with a declarative backend, and its rows
 * of cm.status. */
void cl__declared_reconcile(cl_manager *m);
void cl__declared_rows(const cl_manager *m, cJSON *list);
void cl__declared_free(cl_manager *m);

#endif
