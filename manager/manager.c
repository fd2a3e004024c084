/* The container manager's reconcile loop and its bus endpoints.
 *
 * One thread of our own owns every replica slot: it polls the backend,
 * compares the live slots with the wanted counts read from the view, starts
 * and stops replicas, and publishes a JSON snapshot for the status and logs
 * requests. It sleeps in poll() on an eventfd (a view change or a stop
 * request) and on each replica's pidfd (it ended), so it reacts at once,
 * and at the latest every reconcile period (which is how it learns that a
 * container ended: the docker backend has no descriptor to wait on). Bus
 * callbacks (view changes, cm.status, cm.logs) never touch the slots: they
 * poke the eventfd or copy the last snapshot, and return. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cl_actor.h"
#include "cl_backend.h"
#include "cl_clock.h"
#include "cl_host.h"
#include "cl_json.h"
#include "cl_kv.h"
#include "cl_log.h"
#include "cl_manager.h"
#include "cl_proc.h"
#include "cl_replicas.h"
#include "cl_service.h"
#include "cl_subject.h"
#include "cl_view.h"
#include "manager_internal.h"

#define BACKOFF_FIRST_US 500000u
#define BACKOFF_MAX_US 30000000u
#define HEALTHY_RUN_US 30000000u /* a replica that ran this long resets its backoff */
#define GIVE_UP_US 10000000u /* after a forced stop, when stopping everything */
#define PAUSED_US 2000000u  /* reconcile passes run at least every 500 ms */

void cl_manager_opts_init(cl_manager_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
}

/* ---- slots --------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *ok)
{
    char *d = s != NULL ? strdup(s) : NULL;
    if (s != NULL && d == NULL)
        *ok = false;
    return d;
}

static slot *slot_add(cl_manager *m, const want *w, unsigned n)
{
    if (m->n_slots == m->cap_slots) {
        size_t cap = m->cap_slots ? m->cap_slots * 2 : 16;
        slot *p = realloc(m->slots, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        m->slots = p;
        m->cap_slots = cap;
    }
    slot *s = &m->slots[m->n_slots];
    memset(s, 0, sizeof(*s));
    bool ok = true;
    s->model = dup_or_null(w->model, &ok);
    s->version = dup_or_null(w->version, &ok);
    s->runtime = dup_or_null(w->runtime, &ok);
    s->container_name = dup_or_null(w->container_name, &ok);
    s->resources = dup_or_null(w->resources, &ok);
    if (!ok) {
        free(s->model);
        free(s->version);
        free(s->runtime);
        free(s->container_name);
        free(s->resources);
        return NULL;
    }
    s->n = n;
    s->state = SLOT_WAITING;
    s->next_start_mono_us = 0; /* start at once */
    m->n_slots++;
    return s;
}

static void slot_remove(cl_manager *m, size_t i)
{
    free(m->slots[i].model);
    free(m->slots[i].version);
    free(m->slots[i].runtime);
    free(m->slots[i].container_name);
    free(m->slots[i].resources);
    m->slots[i] = m->slots[--m->n_slots];
}

static bool slot_is(const slot *s, const char *model, const char *version)
{
    return strcmp(s->model, model) == 0 && strcmp(s->version, version) == 0;
}

/* The lowest replica number not used by any slot of model:version, so log
 * files are reused as replicas come and go. */
static unsigned free_number(const cl_manager *m, const char *model, const char *version)
{
    for (unsigned n = 0;; n++) {
        bool used = false;
        for (size_t i = 0; i < m->n_slots && !used; i++)
            used = slot_is(&m->slots[i], model, version) && m->slots[i].n == n;
        if (!used)
            return n;
    }
}

static const char *const state_names[] = {"running", "stopping", "waiting"};

/* "pid 123" or "container NAME": how the logs name a replica. */
static const char *rep_name(const cl_backend_replica *r, char *buf, size_t size)
{
    if (r->name[0] != '\0')
        snprintf(buf, size, "container %s", r->name);
    else
        snprintf(buf, size, "pid %d", r->pid);
    return buf;
}

static void log_end(const slot *s, const cl_backend_end *end, uint64_t ran_us, uint64_t delay_us)
{
    char how[128], who[300];
    cl_proc_describe(end->exit_code, how, sizeof(how));
    /* An unknown exit code says nothing the error does not. */
    bool code_known = end->exit_code != -1000 || end->error[0] == '\0';
    cl_warn("replica %s:%s #%u (%s) ended after %.1f s: %s%s%s%s; restarting in %.1f s "
            "(%u failure%s in a row). Last lines of %s:\n%s",
            s->model, s->version, s->n, rep_name(&s->rep, who, sizeof(who)),
            (double)ran_us / 1e6, code_known ? how : "",
            end->exit_code == CL_REPLICA_EXIT_CANNOT_SERVE
                ? " (the replica could not load the model)"
                : "",
            code_known && end->error[0] ? "; " : "", end->error, (double)delay_us / 1e6,
            s->fails, s->fails == 1 ? "" : "s", s->log[0] ? s->log : who,
            end->tail[0] ? end->tail : "(no output)");
}

/* A replica we did not ask to stop has ended (or could not start):
 * schedule its restart with exponential backoff. */
static void schedule_restart(slot *s, uint64_t now, uint64_t ran_us)
{
    if (ran_us >= HEALTHY_RUN_US)
        s->fails = 0;
    s->fails++;
    uint64_t delay = BACKOFF_FIRST_US;
    for (unsigned i = 1; i < s->fails && delay < BACKOFF_MAX_US; i++)
        delay *= 2;
    if (delay > BACKOFF_MAX_US)
        delay = BACKOFF_MAX_US;
    s->state = SLOT_WAITING;
    s->next_start_mono_us = now + delay;
    s->next_start_wall_us = cl_wall_us() + delay;
}

/* With other managers, a version this host fails to run again and again
 * (its replicas cannot load the model here: exit code 3; or the backend
 * cannot start them) goes to the managers that can. */
static void maybe_cannot_run(cl_manager *m, const slot *s, uint64_t now, const char *what,
                             unsigned in_a_row)
{
    if (m->place == NULL || in_a_row < CL_PLACE_CANNOT_AFTER)
        return;
    char why[160];
    snprintf(why, sizeof(why), "%s, %u times in a row", what, in_a_row);
    cl_placement_cannot_run(m->place, s->model, s->version, why, now);
}

static void start_slot(cl_manager *m, slot *s, uint64_t now)
{
    cl_err err;
    cl_err_clear(&err);
    cl_backend_replica rep;
    cl_backend_spec spec = {.model = s->model,
                            .version = s->version,
                            .n = s->n,
                            .runtime = s->runtime,
                            .container_name = s->container_name,
                            .resources = s->resources};
    cl_status st = m->backend->ops->start(m->backend, &spec, &rep, &err);
    s->runs++;
    s->started_wall_us = cl_wall_us();
    s->started_mono_us = now;
    if (st != CL_OK) {
        snprintf(s->last_error, sizeof(s->last_error), "%s", err.msg);
        snprintf(s->start_error, sizeof(s->start_error), "%s", err.msg);
        s->start_failures++;
        schedule_restart(s, now, 0);
        cl_error("cannot start replica %s:%s #%u: %s; trying again in %.1f s", s->model,
                 s->version, s->n, err.msg,
                 (double)(s->next_start_mono_us - now) / 1e6);
        maybe_cannot_run(m, s, now, "the backend cannot start its replicas", s->start_failures);
        return;
    }
    s->rep = rep;
    s->has_rep = true;
    s->start_error[0] = '\0';
    s->start_failures = 0;
    snprintf(s->log, sizeof(s->log), "%s", rep.log);
    s->state = SLOT_RUNNING;
    s->killed = false;
    memset(&s->hb, 0, sizeof(s->hb));
    s->hb.replica_id = rep.has_replica_id ? rep.replica_id : 0;
    char who[300];
    if (rep.log[0] != '\0')
        cl_info("started replica %s:%s #%u (%s, log %s)%s", s->model, s->version, s->n,
                rep_name(&rep, who, sizeof(who)), rep.log, s->runs > 1 ? " as a restart" : "");
    else
        cl_info("started replica %s:%s #%u (%s, id %.12s, replica id %u)%s", s->model,
                s->version, s->n, rep_name(&rep, who, sizeof(who)), rep.id, rep.replica_id,
                s->runs > 1 ? " as a restart" : "");
}

static void stop_slot(cl_manager *m, slot *s, uint64_t now, const char *why)
{
    if (s->state == SLOT_STOPPING)
        return;
    char who[300];
    cl_info("stopping replica %s:%s #%u (%s): %s", s->model, s->version, s->n,
            rep_name(&s->rep, who, sizeof(who)), why);
    m->backend->ops->stop(m->backend, &s->rep, false);
    s->state = SLOT_STOPPING;
    s->stop_deadline_us = now + (uint64_t)m->grace_ms * 1000u;
    s->killed = false;
}

/* ---- reconcile ----------------------------------------------------- */

static void poll_ended(cl_manager *m, uint64_t now)
{
    for (size_t i = 0; i < m->n_slots;) {
        slot *s = &m->slots[i];
        cl_backend_end end;
        if (!s->has_rep || !m->backend->ops->poll(m->backend, &s->rep, &end)) {
            i++;
            continue;
        }
        s->has_rep = false;
        s->has_exit = true;
        s->last_exit = end.exit_code;
        if (end.error[0] != '\0')
            snprintf(s->last_error, sizeof(s->last_error), "%s", end.error);
        if (s->state == SLOT_STOPPING) {
            char how[128], who[300];
            cl_proc_describe(end.exit_code, how, sizeof(how));
            cl_info("replica %s:%s #%u (%s) stopped: %s", s->model, s->version, s->n,
                    rep_name(&s->rep, who, sizeof(who)), how);
            slot_remove(m, i);
            continue;
        }
        uint64_t ran = now - s->started_mono_us;
        schedule_restart(s, now, ran);
        log_end(s, &end, ran, s->next_start_mono_us - now);
        if (end.exit_code == CL_REPLICA_EXIT_CANNOT_SERVE)
            maybe_cannot_run(m, s, now, "its replicas cannot load the model here", s->fails);
        i++;
    }
}

size_t cl__read_wanted(cl_manager *m, want **out)
{
    *out = NULL;
    cl_view_rdlock(m->view);
    size_t count = cl_view_model_count(m->view);
    want *w = count ? calloc(count, sizeof(*w)) : NULL;
    size_t n = 0;
    for (size_t i = 0; w != NULL && i < count; i++) {
        const cl_model *md = cl_view_model_at(m->view, i);
        if (md == NULL || md->name == NULL || md->version == NULL)
            continue;
        bool ok = true;
        w[n].model = dup_or_null(md->name, &ok);
        w[n].version = dup_or_null(md->version, &ok);
        w[n].runtime = dup_or_null(md->runtime, &ok);
        w[n].container_name = dup_or_null(md->container_name, &ok);
        w[n].resources = md->resources && md->resources[0] ? dup_or_null(md->resources, &ok)
                                                           : NULL;
        w[n].wanted = md->num_replicas;
        if (!ok) {
            free(w[n].model);
            free(w[n].version);
            free(w[n].runtime);
            free(w[n].container_name);
            free(w[n].resources);
            continue;
        }
        n++;
    }
    cl_view_unlock(m->view);
    *out = w;
    return n;
}

void cl__free_wanted(want *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(w[i].model);
        free(w[i].version);
        free(w[i].runtime);
        free(w[i].container_name);
        free(w[i].resources);
    }
    free(w);
}

/* Replicas of model:version that said they are ready within the last two
 * and a half heartbeat periods, on any host (those of other managers and
 * hand-started ones too): one that died without a word is not counted for
 * the seconds the table keeps it. */
static int64_t ready_count(const cl_replica_info *live, size_t n, const char *model,
                           const char *version, uint64_t now)
{
    int64_t k = 0;
    uint64_t fresh = (uint64_t)CL_HEARTBEAT_MS * 2500u;
    for (size_t i = 0; i < n; i++)
        k += strcmp(live[i].model, model) == 0 && strcmp(live[i].version, version) == 0 &&
             strcmp(live[i].state, "ready") == 0 && now - live[i].last_seen_us <= fresh;
    return k;
}

/* This host's share of w's wanted replicas; *shared when other managers
 * take part (or this one drains). -1: not placing yet (just started,
 * still learning who its peers are). */
static int64_t share_of(cl_manager *m, const want *w, int64_t total, uint64_t now, bool *shared)
{
    *shared = false;
    if (m->place == NULL)
        return total;
    if (!cl_placement_settled(m->place, now))
        return -1;
    size_t others = 0;
    unsigned share = cl_placement_share(m->place, w->model, w->version, (unsigned)total, now,
                                        &others);
    *shared = others > 0 || cl_placement_draining(m->place);
    return share;
}

/* Brings model:version to this host's share of its wanted count of active
 * (running or waiting) slots. With other managers, a replica that serves
 * ("ready") is stopped only while the cluster has more ready replicas of
 * the version than it wants: when a host comes back, or this one drains,
 * the others' new replicas are up before this host's go. */
static int want_cmp(const void *x, const void *y)
{
    const want *a = x, *b = y;
    int c = strcmp(a->model, b->model);
    return c != 0 ? c : strcmp(a->version, b->version);
}

/* w->active: counted by reconcile in one pass over the slots. */
static void scale_to(cl_manager *m, const want *w, uint64_t now, const cl_replica_info *live,
                     size_t n_live)
{
    const char *model = w->model, *version = w->version;
    int64_t total = cl__wanted_count(m, w, now);
    bool shared = false;
    int64_t wanted = share_of(m, w, total, now, &shared);
    if (wanted < 0)
        return;
    int64_t active = w->active;
    while (active < wanted) {
        if (slot_add(m, w, free_number(m, model, version)) == NULL) {
            cl_error("out of memory adding a replica of %s:%s", model, version);
            return;
        }
        active++;
    }
    int64_t spare = shared ? ready_count(live, n_live, model, version, now) - total : INT64_MAX;
    while (active > wanted) {
        /* Drop a waiting slot first (nothing runs), then one that does not
         * serve yet, else the highest-numbered running one. */
        size_t pick = m->n_slots;
        int pick_rank = 0;
        for (size_t i = 0; i < m->n_slots; i++) {
            slot *s = &m->slots[i];
            if (!slot_is(s, model, version) || s->state == SLOT_STOPPING)
                continue;
            int rank = s->state == SLOT_WAITING ? 2 : strcmp(s->hb.state, "ready") != 0;
            if (pick == m->n_slots || rank > pick_rank ||
                (rank == pick_rank && s->n > m->slots[pick].n)) {
                pick = i;
                pick_rank = rank;
            }
        }
        if (pick == m->n_slots)
            break;
        if (m->slots[pick].state == SLOT_WAITING) {
            slot_remove(m, pick);
        } else {
            if (pick_rank == 0 && spare <= 0)
                break; /* the version's other replicas are not ready yet */
            if (pick_rank == 0)
                spare--;
            char why[128];
            if (wanted < total)
                snprintf(why, sizeof(why), "placed on other hosts (this one runs %" PRId64
                                           " of %" PRId64 ")",
                         wanted, total);
            else
                snprintf(why, sizeof(why), "scaling down to %" PRId64, wanted);
            stop_slot(m, &m->slots[pick], now, why);
        }
        active--;
    }
}

/* A replica whose heartbeats stopped while its process lives on is hung:
 * kill it, and poll_ended restarts it like any replica that ended. Only
 * replicas heard from before count (a replica that never heartbeats, or a
 * backend without heartbeats, is left alone), and silence is counted only
 * from when our own bus connection was up, so a bus outage kills nothing.
 * The router gives a replica up after CL_REPLICA_TIMEOUT_MS (its batch in
 * flight went to another replica long before: the router hedges an overdue
 * batch); we kill it 1 s later, so a replica that is the only one of its
 * version is replaced in about 5 s rather than left hung. Its heartbeats
 * come from a thread of their own, so a long model call does not silence
 * them: only a stopped, frozen or cut-off process is silent this long. */
static void check_heartbeats(cl_manager *m, uint64_t now)
{
    if (!cl__bus_up(m, now))
        return;
    if (m->place != NULL && !cl_placement_bus_flowing(m->place, now)) {
        /* Connected, yet our own hellos do not come back: the bus is
         * stalled. Silence is counted afresh once it flows again. */
        if (!m->bus_stalled)
            cl_warn("the bus carries nothing (this manager's own hellos do not come "
                    "back): no replica is judged by its silence until it does");
        m->bus_stalled = true;
        m->connected_since_us = 0;
        return;
    }
    if (m->bus_stalled)
        cl_info("the bus carries messages again: replica silence counts from now");
    m->bus_stalled = false;
    cl_replica_info *live = NULL;
    size_t n = cl_replicas_snapshot(m->replicas, NULL, NULL, &live);
    for (size_t i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        bool matchable = s->rep.has_replica_id || s->rep.pid > 0;
        if (s->state != SLOT_RUNNING || !s->has_rep || !matchable)
            continue;
        const cl_replica_info *hb = NULL;
        for (size_t j = 0; j < n && hb == NULL; j++) {
            bool same = s->rep.has_replica_id
                            ? live[j].replica_id == s->rep.replica_id
                            : live[j].pid == s->rep.pid && strcmp(live[j].host, m->host) == 0;
            if (same && strcmp(live[j].model, s->model) == 0 &&
                strcmp(live[j].version, s->version) == 0)
                hb = &live[j];
        }
        if (hb != NULL) {
            cl__hb_heard(&s->hb, hb);
        } else if (cl__hb_hung(m, &s->hb, now)) {
            char who[300];
            cl_warn("replica %s:%s #%u (%s, replica id %u) has sent no heartbeat for %.1f s "
                    "but is still running: killing it to replace it",
                    s->model, s->version, s->n, rep_name(&s->rep, who, sizeof(who)),
                    s->hb.replica_id, (double)(now - s->hb.last_us) / 1e6);
            snprintf(s->last_error, sizeof(s->last_error),
                     "no heartbeat for %.1f s while running: killed as hung",
                     (double)(now - s->hb.last_us) / 1e6);
            m->backend->ops->stop(m->backend, &s->rep, true);
        }
    }
    free(live);
}

int64_t cl__wanted_count(cl_manager *m, const want *w, uint64_t now)
{
    int64_t wanted = w->wanted < 0 ? 0 : w->wanted;
    if (wanted > MAX_REPLICAS_PER_VERSION) {
        if (m->cap_warned_us == 0 || now - m->cap_warned_us > 60000000u) {
            cl_warn("model %s:%s wants %" PRId64 " replicas; this manager runs at most %d",
                    w->model, w->version, wanted, MAX_REPLICAS_PER_VERSION);
            m->cap_warned_us = now;
        }
        wanted = MAX_REPLICAS_PER_VERSION;
    }
    return wanted;
}

bool cl__bus_up(cl_manager *m, uint64_t now)
{
    if (!cl_bus_is_connected(m->bus)) {
        m->connected_since_us = 0;
        return false;
    }
    if (m->connected_since_us == 0)
        m->connected_since_us = now;
    return true;
}

void cl__hb_heard(hb_record *r, const cl_replica_info *hb)
{
    r->seen = true;
    r->last_us = hb->last_seen_us;
    r->replica_id = hb->replica_id;
    snprintf(r->state, sizeof(r->state), "%s", hb->state);
    snprintf(r->cause, sizeof(r->cause), "%s", hb->cause);
}

bool cl__hb_hung(const cl_manager *m, hb_record *r, uint64_t now)
{
    if (!r->seen)
        return false;
    uint64_t timeout = (uint64_t)CL_REPLICA_TIMEOUT_MS * 1000u;
    uint64_t from = r->last_us > m->connected_since_us ? r->last_us : m->connected_since_us;
    uint64_t silent = now > from ? now - from : 0;
    if (silent >= timeout)
        snprintf(r->state, sizeof(r->state), "silent");
    if (silent < timeout + 1000000u)
        return false;
    r->seen = false; /* killed: not counted again */
    return true;
}

/* Gives the replicas adopted at start their slots: running replicas of
 * wanted versions (scale_to then stops any beyond the wanted count), or
 * stopping ones for versions no longer wanted. */
static void take_found(cl_manager *m, const want *w, size_t nw, uint64_t now)
{
    for (size_t k = 0; k < m->n_found; k++) {
        const cl_backend_found *f = &m->found[k];
        const want *match = NULL;
        for (size_t j = 0; j < nw && match == NULL; j++) {
            if (strcmp(w[j].model, f->model) == 0 && strcmp(w[j].version, f->version) == 0)
                match = &w[j];
        }
        want bare = {.model = (char *)f->model, .version = (char *)f->version};
        unsigned n = f->n;
        for (size_t i = 0; i < m->n_slots && n != UINT_MAX; i++) {
            if (slot_is(&m->slots[i], f->model, f->version) && m->slots[i].n == n)
                n = UINT_MAX;
        }
        if (n == UINT_MAX)
            n = free_number(m, f->model, f->version);
        slot *s = slot_add(m, match ? match : &bare, n);
        if (s == NULL) {
            cl_error("out of memory adopting a replica of %s:%s", f->model, f->version);
            continue;
        }
        s->rep = f->rep;
        s->has_rep = true;
        s->state = SLOT_RUNNING;
        s->runs = 1;
        s->started_mono_us = now;
        s->started_wall_us = cl_wall_us();
        snprintf(s->log, sizeof(s->log), "%s", f->rep.log);
        s->hb.replica_id = f->rep.has_replica_id ? f->rep.replica_id : 0;
        char who[300];
        cl_info("adopted replica %s:%s #%u (%s), left running by an earlier manager%s",
                f->model, f->version, n, rep_name(&f->rep, who, sizeof(who)),
                match ? "" : "; its version is no longer wanted");
        if (match == NULL)
            stop_slot(m, s, now, "its model version was deleted");
    }
    free(m->found);
    m->found = NULL;
    m->n_found = 0;
}

static void reconcile(cl_manager *m)
{
    if (m->backend->ops->apply != NULL) {
        cl__declared_reconcile(m);
        return;
    }
    uint64_t now = cl_mono_us();
    /* A pass long after the last one means this process was not running
     * (stopped, frozen): the heartbeats that arrived meanwhile have not all
     * been read yet, so silence is counted afresh from now. */
    if (m->last_pass_us != 0 && now - m->last_pass_us > PAUSED_US) {
        cl_warn("the manager did not run for %.1f s: counting replica silence afresh",
                (double)(now - m->last_pass_us) / 1e6);
        m->connected_since_us = now;
    }
    m->last_pass_us = now;
    poll_ended(m, now);
    check_heartbeats(m, now);

    want *w;
    size_t nw = cl__read_wanted(m, &w);
    if (m->n_found > 0)
        take_found(m, w, nw, now);
    /* Sorted, so that each slot finds its version in log time: a pass
     * costs the same per replica with 1 or 1000 versions. */
    if (nw > 1)
        qsort(w, nw, sizeof(*w), want_cmp);
    /* Versions no longer in the state: stop all their replicas. The
     * others count their active slots. */
    for (size_t i = 0; i < m->n_slots;) {
        slot *s = &m->slots[i];
        want key = {.model = s->model, .version = s->version};
        want *found = nw > 0 ? bsearch(&key, w, nw, sizeof(*w), want_cmp) : NULL;
        if (found != NULL && s->state != SLOT_STOPPING)
            found->active++;
        if (found != NULL || s->state == SLOT_STOPPING) {
            i++;
        } else if (s->state == SLOT_WAITING) {
            slot_remove(m, i);
        } else {
            stop_slot(m, s, now, "its model version was deleted");
            i++;
        }
    }
    cl_replica_info *live = NULL;
    size_t n_live = m->place != NULL ? cl_replicas_snapshot(m->replicas, NULL, NULL, &live) : 0;
    for (size_t j = 0; j < nw; j++)
        scale_to(m, &w[j], now, live, n_live);
    free(live);
    cl__free_wanted(w, nw);

    for (size_t i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        if (s->state == SLOT_WAITING && s->next_start_mono_us <= now) {
            start_slot(m, s, now);
        } else if (s->state == SLOT_STOPPING && !s->killed && now >= s->stop_deadline_us) {
            char who[300];
            cl_warn("replica %s:%s #%u (%s) did not stop within %d ms; killing it", s->model,
                    s->version, s->n, rep_name(&s->rep, who, sizeof(who)), m->grace_ms);
            m->backend->ops->stop(m->backend, &s->rep, true);
            s->killed = true;
        }
    }
}

/* How long the loop may sleep: until the next periodic pass, a pending
 * restart or a stop deadline, whichever comes first. */
static uint64_t next_wait_us(const cl_manager *m)
{
    uint64_t now = cl_mono_us();
    uint64_t wait = (uint64_t)m->reconcile_ms * 1000u;
    for (size_t i = 0; i < m->n_slots; i++) {
        const slot *s = &m->slots[i];
        uint64_t at = 0;
        if (s->state == SLOT_WAITING)
            at = s->next_start_mono_us;
        else if (s->state == SLOT_STOPPING && !s->killed)
            at = s->stop_deadline_us;
        else
            continue;
        uint64_t d = at > now ? at - now : 0;
        if (d < wait)
            wait = d;
    }
    return wait < 10000 ? 10000 : wait;
}

/* ---- snapshots for the bus endpoints -------------------------------- */

void cl__iso_time(uint64_t wall_us, char *buf, size_t size)
{
    time_t t = (time_t)(wall_us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03uZ", base, (unsigned)(wall_us % 1000000u / 1000u));
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file in the log directory (current and past replicas, and what
 * else keeps its log there), sorted, as absolute paths. */
static void add_log_files(const cl_manager *m, cJSON *files)
{
    DIR *d = opendir(m->log_dir);
    if (d == NULL)
        return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || (e->d_type != DT_REG && e->d_type != DT_UNKNOWN))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **p = realloc(names, ncap * sizeof(*p));
            if (p == NULL)
                break;
            names = p;
            cap = ncap;
        }
        if (asprintf(&names[n], "%s/%s", m->log_dir, e->d_name) >= 0)
            n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), compare_str);
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(files, cJSON_CreateString(names[i]));
        free(names[i]);
    }
    free(names);
}

/* The answer to <p>.cm.hosts: this manager's host, whether it drains,
 * the managers it hears, and per version its share and what runs here. */
static char *hosts_snapshot(cl_manager *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    uint64_t now = cl_mono_us();
    cJSON_AddStringToObject(o, "host", m->host);
    cJSON_AddStringToObject(o, "backend", m->backend->ops->name);
    cJSON_AddBoolToObject(o, "draining", m->place != NULL && cl_placement_draining(m->place));
    if (m->place != NULL)
        cJSON_AddStringToObject(o, "id", cl_placement_id(m->place));
    cJSON *peers = cJSON_AddArrayToObject(o, "managers");
    if (m->place != NULL && peers != NULL)
        cl_placement_peers_json(m->place, now, peers);
    cJSON *cannot = cJSON_AddArrayToObject(o, "cannot_run");
    if (m->place != NULL && cannot != NULL)
        cl_placement_cannot_json(m->place, now, cannot);
    cJSON *versions = cJSON_AddArrayToObject(o, "versions");
    want *w = NULL;
    size_t nw = m->view != NULL ? cl__read_wanted(m, &w) : 0; /* NULL while starting */
    for (size_t j = 0; j < nw && versions != NULL; j++) {
        int64_t total = cl__wanted_count(m, &w[j], now);
        bool shared;
        int64_t share = share_of(m, &w[j], total, now, &shared);
        int running = 0, ready = 0;
        for (size_t i = 0; i < m->n_slots; i++) {
            const slot *sl = &m->slots[i];
            if (slot_is(sl, w[j].model, w[j].version) && sl->state == SLOT_RUNNING) {
                running++;
                ready += strcmp(sl->hb.state, "ready") == 0;
            }
        }
        cJSON *v = cJSON_CreateObject();
        if (v == NULL)
            break;
        cJSON_AddStringToObject(v, "model", w[j].model);
        cJSON_AddStringToObject(v, "version", w[j].version);
        cJSON_AddNumberToObject(v, "wanted", (double)total);
        cJSON_AddNumberToObject(v, "share", (double)(share < 0 ? 0 : share));
        cJSON_AddNumberToObject(v, "running", running);
        cJSON_AddNumberToObject(v, "ready", ready);
        cJSON_AddItemToArray(versions, v);
    }
    cl__free_wanted(w, nw);
    char *text = cl_json_print(o);
    cJSON_Delete(o);
    return text;
}

static void publish_snapshot(cl_manager *m)
{
    cJSON *list = cJSON_CreateArray();
    cJSON *logs = cJSON_CreateObject();
    cJSON *files = cJSON_CreateArray();
    if (list == NULL || logs == NULL || files == NULL)
        goto out;
    if (m->backend->ops->apply != NULL)
        cl__declared_rows(m, list);
    for (size_t i = 0; i < m->n_slots; i++) {
        const slot *s = &m->slots[i];
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            goto out;
        cJSON_AddItemToArray(list, o);
        cJSON_AddStringToObject(o, "model", s->model);
        cJSON_AddStringToObject(o, "version", s->version);
        cJSON_AddNumberToObject(o, "replica", s->n);
        cJSON_AddStringToObject(o, "state", state_names[s->state]);
        if (s->has_rep && s->rep.pid > 0)
            cJSON_AddNumberToObject(o, "pid", s->rep.pid);
        else
            cJSON_AddNullToObject(o, "pid");
        if (s->has_rep && s->rep.name[0] != '\0') {
            cJSON_AddStringToObject(o, "container_id", s->rep.id);
            cJSON_AddStringToObject(o, "container_name", s->rep.name);
        } else {
            cJSON_AddNullToObject(o, "container_id");
            cJSON_AddNullToObject(o, "container_name");
        }
        if (s->runs > 0) {
            char t[48];
            cl__iso_time(s->started_wall_us, t, sizeof(t));
            cJSON_AddStringToObject(o, "started_at", t);
        } else {
            cJSON_AddNullToObject(o, "started_at");
        }
        cJSON_AddNumberToObject(o, "restarts", s->runs > 0 ? s->runs - 1 : 0);
        if (s->has_exit) {
            char how[128];
            cl_proc_describe(s->last_exit, how, sizeof(how));
            cJSON_AddStringToObject(o, "last_exit", how);
            cJSON_AddNumberToObject(o, "last_exit_code", s->last_exit);
        } else {
            cJSON_AddNullToObject(o, "last_exit");
            cJSON_AddNullToObject(o, "last_exit_code");
        }
        if (s->log[0])
            cJSON_AddStringToObject(o, "log_file", s->log);
        else
            cJSON_AddNullToObject(o, "log_file");
        if (s->hb.state[0] != '\0' && s->state == SLOT_RUNNING) {
            cJSON_AddNumberToObject(o, "replica_id", s->hb.replica_id);
            cJSON_AddStringToObject(o, "heartbeat", s->hb.state);
            if (s->hb.cause[0] != '\0')
                cJSON_AddStringToObject(o, "cause", s->hb.cause);
        } else {
            /* A backend that chose the id knows it before any heartbeat. */
            if (s->has_rep && s->rep.has_replica_id)
                cJSON_AddNumberToObject(o, "replica_id", s->rep.replica_id);
            else
                cJSON_AddNullToObject(o, "replica_id");
            cJSON_AddNullToObject(o, "heartbeat");
        }
        if (s->last_error[0] != '\0')
            cJSON_AddStringToObject(o, "last_error", s->last_error);
        else
            cJSON_AddNullToObject(o, "last_error");
        if (s->start_error[0] != '\0')
            cJSON_AddStringToObject(o, "start_error", s->start_error);
        else
            cJSON_AddNullToObject(o, "start_error");
        cJSON_AddNumberToObject(o, "start_failures", s->start_failures);
        if (s->has_rep && s->rep.image[0] != '\0')
            cJSON_AddStringToObject(o, "image", s->rep.image);
        else
            cJSON_AddNullToObject(o, "image");
        if (s->state == SLOT_WAITING) {
            char t[48];
            cl__iso_time(s->next_start_wall_us, t, sizeof(t));
            cJSON_AddStringToObject(o, "next_start_at", t);
        }
    }
    add_log_files(m, files);
    char *hj = hosts_snapshot(m);
    pthread_mutex_lock(&m->snap_mu);
    free(m->hosts_json);
    m->hosts_json = hj;
    pthread_mutex_unlock(&m->snap_mu);
    cJSON_AddStringToObject(logs, "host", m->host);
    cJSON_AddStringToObject(logs, "log_dir", m->log_dir);
    cJSON_AddItemToObject(logs, "files", files);
    files = NULL;
    char *sj = cl_json_print(list);
    char *lj = cl_json_print(logs);
    if (sj == NULL || lj == NULL) {
        free(sj);
        free(lj);
        goto out;
    }
    pthread_mutex_lock(&m->snap_mu);
    free(m->status_json);
    free(m->logs_json);
    m->status_json = sj;
    m->logs_json = lj;
    pthread_mutex_unlock(&m->snap_mu);
out:
    cJSON_Delete(list);
    cJSON_Delete(logs);
    cJSON_Delete(files);
}

/* ---- the thread ----------------------------------------------------- */

static void sleep_until_event(cl_manager *m, uint64_t wait_us);

static void stop_everything(cl_manager *m)
{
    uint64_t now = cl_mono_us();
    for (size_t i = 0; i < m->n_slots;) {
        if (m->slots[i].state == SLOT_WAITING) {
            slot_remove(m, i);
            continue;
        }
        stop_slot(m, &m->slots[i], now, "the manager is stopping");
        i++;
    }
    while (m->n_slots > 0) {
        now = cl_mono_us();
        poll_ended(m, now);
        for (size_t i = 0; i < m->n_slots;) {
            slot *s = &m->slots[i];
            char who[300];
            if (!s->killed && now >= s->stop_deadline_us) {
                cl_warn("replica %s:%s #%u (%s) did not stop within %d ms; killing it",
                        s->model, s->version, s->n, rep_name(&s->rep, who, sizeof(who)),
                        m->grace_ms);
                m->backend->ops->stop(m->backend, &s->rep, true);
                s->killed = true;
            } else if (s->killed && now >= s->stop_deadline_us + GIVE_UP_US) {
                /* The backend cannot tell (a container engine gone away):
                 * do not hang the stop; freeing the backend tries once more. */
                cl_warn("replica %s:%s #%u (%s) was killed but not seen to end within %.0f s; "
                        "giving up on it",
                        s->model, s->version, s->n, rep_name(&s->rep, who, sizeof(who)),
                        (double)GIVE_UP_US / 1e6);
                slot_remove(m, i);
                continue;
            }
            i++;
        }
        if (m->n_slots > 0)
            sleep_until_event(m, 50000);
    }
    publish_snapshot(m);
}

static void wake(cl_manager *m)
{
    if (m->wake_fd < 0)
        return;
    uint64_t one = 1;
    ssize_t w = write(m->wake_fd, &one, sizeof(one));
    (void)w; /* a saturated counter already means "wake up" */
}

/* Sleeps until woken, a replica ends, or wait_us passes. */
static void sleep_until_event(cl_manager *m, uint64_t wait_us)
{
    struct pollfd fds[1 + 256];
    nfds_t n = 0;
    fds[n++] = (struct pollfd){.fd = m->wake_fd, .events = POLLIN};
    for (size_t i = 0; i < m->n_slots && n < sizeof(fds) / sizeof(fds[0]); i++) {
        if (m->slots[i].has_rep && m->slots[i].rep.wait_fd >= 0)
            fds[n++] = (struct pollfd){.fd = m->slots[i].rep.wait_fd, .events = POLLIN};
    }
    int timeout = (int)((wait_us + 999) / 1000);
    if (poll(fds, n, timeout) > 0 && (fds[0].revents & POLLIN)) {
        uint64_t count;
        ssize_t r = read(m->wake_fd, &count, sizeof(count));
        (void)r;
    }
}

static void *run(void *arg)
{
    cl_manager *m = arg;
    while (!atomic_load(&m->stop)) {
        reconcile(m);
        publish_snapshot(m);
        sleep_until_event(m, next_wait_us(m));
    }
    stop_everything(m);
    return NULL;
}

static void on_backend_change(void *closure)
{
    wake(closure);
}

static void on_view_change(void *closure, const char *key)
{
    cl_manager *m = closure;
    if (key != NULL && strncmp(key, "model.", 6) != 0)
        return;
    wake(m);
}

static void on_replica_change(void *closure, const cl_replica_info *info, bool removed)
{
    (void)info;
    (void)removed;
    wake(closure);
}

static void on_request(cl_bus *bus, cl_msg *msg, void *closure)
{
    cl_manager *m = closure;
    uint64_t t0 = cl_mono_us();
    const char *dot = strrchr(cl_msg_subject(msg), '.');
    bool logs = dot != NULL && strcmp(dot + 1, "logs") == 0;
    bool hosts = dot != NULL && strcmp(dot + 1, "hosts") == 0;
    pthread_mutex_lock(&m->snap_mu);
    char *reply = strdup(logs    ? (m->logs_json ? m->logs_json : "{}")
                         : hosts ? (m->hosts_json ? m->hosts_json : "{}")
                                 : (m->status_json ? m->status_json : "[]"));
    pthread_mutex_unlock(&m->snap_mu);
    cl_status s;
    if (reply != NULL) {
        s = cl_msg_respond(bus, msg, reply, strlen(reply));
    } else {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        s = cl_msg_respond(bus, msg, oom, sizeof(oom) - 1);
    }
    if (s != CL_OK)
        CL_LOG_LIMITED(CL_LOG_WARN, "cannot answer %s: %s", cl_msg_subject(msg),
                       cl_status_text(s));
    free(reply);
    cl_service_count(m->svc, reply == NULL || s != CL_OK, (cl_mono_us() - t0) * 1000u);
    cl_msg_free(msg);
}

static void drain_reply(cl_bus *bus, cl_msg *msg, cJSON *o)
{
    char *text = cl_json_print(o);
    cl_status s = text != NULL ? cl_msg_respond(bus, msg, text, strlen(text)) : CL_ERR_NOMEM;
    if (s != CL_OK)
        CL_LOG_LIMITED(CL_LOG_WARN, "cannot answer %s: %s", cl_msg_subject(msg),
                       cl_status_text(s));
    free(text);
}

/* <p>.cm.drain {"host": H, "drain": true|false}: the manager of host H
 * (only it answers) stops taking replicas, so the others start this host's
 * share, and stops its own as theirs become ready; "drain": false takes
 * replicas again. Refused while no other manager would take them. */
static void on_drain(cl_bus *bus, cl_msg *msg, void *closure)
{
    cl_manager *m = closure;
    cJSON *req = NULL, *rep = cJSON_CreateObject();
    const char *host = NULL;
    bool drain = true, has_drain = false;
    cl_err err;
    static const char *const fields[] = {"host", "drain", NULL};
    if (rep == NULL)
        goto out;
    if (cl_json_parse_body(&req, cl_msg_data(msg), cl_msg_len(msg), &err) != CL_OK ||
        !cJSON_IsObject(req) ||
        (err.msg[0] = '\0', cl_json_only_fields(req, fields, &err) != CL_OK) ||
        cl_json_get_string(req, "host", &host, &err) != CL_OK ||
        cl_json_opt_bool(req, "drain", &drain, &has_drain, &err) != CL_OK) {
        /* Every manager sees a bad request; the one on the asker's host
         * cannot be told apart, so each answers (the first reply wins). */
        if (err.msg[0] == '\0')
            snprintf(err.msg, sizeof(err.msg), "the body must be a JSON object");
        cJSON_AddStringToObject(rep, "error", err.msg);
        drain_reply(bus, msg, rep);
        goto out;
    }
    if (strcmp(host, m->host) != 0)
        goto out; /* another host's manager answers */
    cJSON_AddStringToObject(rep, "host", m->host);
    if (m->place == NULL) {
        cJSON_AddStringToObject(rep, "error", "this manager's backend places its replicas "
                                              "itself (Kubernetes): there is nothing to drain");
    } else if (drain && cl_placement_takers(m->place) == 0) {
        cJSON_AddStringToObject(rep, "error",
                                "no other manager takes replicas: draining this host would "
                                "leave its replicas nowhere to go");
    } else {
        cl_placement_set_draining(m->place, drain);
        cJSON_AddBoolToObject(rep, "draining", drain);
        wake(m);
    }
    drain_reply(bus, msg, rep);
out:
    cJSON_Delete(req);
    cJSON_Delete(rep);
    cl_msg_free(msg);
}

static void on_placement_change(void *closure)
{
    wake(closure);
}

/* ---- lifecycle ------------------------------------------------------- */

static void stats_cb(void *closure, cJSON *data)
{
    cl_manager *m = closure;
    pthread_mutex_lock(&m->snap_mu);
    cJSON *list = m->status_json ? cJSON_Parse(m->status_json) : NULL;
    pthread_mutex_unlock(&m->snap_mu);
    int running = 0, waiting = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
        if (cJSON_IsString(st) && strcmp(st->valuestring, "running") == 0)
            running++;
        else if (cJSON_IsString(st) && strcmp(st->valuestring, "waiting") == 0)
            waiting++;
    }
    cJSON_Delete(list);
    cJSON_AddNumberToObject(data, "replicas_running", running);
    cJSON_AddNumberToObject(data, "replicas_waiting", waiting);
}

cl_status cl_manager_start(cl_manager **out, cl_bus *bus, const cl_manager_opts *opts,
                           cl_err *err)
{
    cl_manager_opts defaults;
    cl_manager_opts_init(&defaults);
    if (opts == NULL)
        opts = &defaults;
    cl_status s = CL_OK;
    cl_manager *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    m->bus = bus;
    m->reconcile_ms = opts->reconcile_ms > 0 ? opts->reconcile_ms : 500;
    m->grace_ms = opts->stop_grace_ms > 0 ? opts->stop_grace_ms : 5000;
    pthread_mutex_init(&m->snap_mu, NULL);
    atomic_init(&m->stop, false);
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->wake_fd < 0) {
        s = cl_err_set(err, CL_ERR_IO, "cannot create an eventfd: %s", strerror(errno));
        goto fail;
    }
    if (opts->host_name != NULL && opts->host_name[0] != '\0')
        snprintf(m->host, sizeof(m->host), "%s", opts->host_name);
    else
        cl_host_name(m->host, sizeof(m->host));

    const char *cmd = opts->replica_cmd;
    if (cmd == NULL || cmd[0] == '\0')
        cmd = getenv("CLIPPER_REPLICA_CMD");
    cl_backend_config cfg = {
        .nats_url = opts->nats_url ? opts->nats_url : cl_bus_url(bus),
        .prefix = cl_bus_prefix(bus),
        .host = m->host,
        .creds = opts->replica_creds,
        .identities = opts->replica_identities,
        .nats_container = opts->nats_container,
        .tls_ca = opts->replica_tls_ca,
        .log_dir = opts->log_dir ? opts->log_dir : "./clipper_logs",
        .command = cmd,
        .docker_host = opts->docker_host,
        .network = opts->docker_network,
        .image = opts->image,
        .runtime_images = opts->runtime_images,
        .n_runtime_images = opts->n_runtime_images,
        .cluster = opts->cluster,
        .entrypoint = opts->replica_entrypoint,
        .kubeconfig = opts->kubeconfig,
        .kube_context = opts->kube_context,
        .kube_namespace = opts->kube_namespace,
        .pull_policy = opts->pull_policy,
        .kube_secret = opts->replica_secret,
        .tls_name = opts->replica_tls_name,
        .changed = on_backend_change,
        .changed_closure = m,
    };
    s = cl_backend_new(&m->backend, opts->backend, &cfg, err);
    if (s != CL_OK)
        goto fail;
    if (m->backend->ops->adopt != NULL)
        m->n_found = m->backend->ops->adopt(m->backend, &m->found);
    char abs_dir[4096];
    m->log_dir = strdup(realpath(cfg.log_dir, abs_dir) ? abs_dir : cfg.log_dir);
    if (m->log_dir == NULL) {
        s = cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    publish_snapshot(m);

    char subj_status[CL_SUBJECT_MAX], subj_logs[CL_SUBJECT_MAX], subj_hosts[CL_SUBJECT_MAX],
        subj_drain[CL_SUBJECT_MAX];
    s = cl_subj_cm(subj_status, cl_bus_prefix(bus), "status", err);
    if (s == CL_OK)
        s = cl_subj_cm(subj_logs, cl_bus_prefix(bus), "logs", err);
    if (s == CL_OK)
        s = cl_subj_cm(subj_hosts, cl_bus_prefix(bus), "hosts", err);
    if (s == CL_OK)
        s = cl_subj_cm(subj_drain, cl_bus_prefix(bus), "drain", err);
    if (s != CL_OK)
        goto fail;
    const char *endpoints[] = {subj_status, subj_logs, subj_hosts, subj_drain, NULL};
    char description[128];
    snprintf(description, sizeof(description),
             "Clipper container manager: runs model replicas (backend %s)",
             m->backend->ops->name);
    cl_service_info info = {
        .name = "clipper-manager",
        .version = CL_VERSION,
        .description = description,
        .endpoints = endpoints,
        .stats = stats_cb,
        .closure = m,
    };
    s = cl_service_start(&m->svc, bus, &info, err);
    if (s != CL_OK)
        goto fail;
    s = cl_bus_subscribe(&m->sub_status, bus, subj_status, NULL, on_request, m);
    if (s == CL_OK)
        s = cl_bus_subscribe(&m->sub_logs, bus, subj_logs, NULL, on_request, m);
    if (s == CL_OK)
        s = cl_bus_subscribe(&m->sub_hosts, bus, subj_hosts, NULL, on_request, m);
    if (s == CL_OK)
        s = cl_bus_subscribe(&m->sub_drain, bus, subj_drain, NULL, on_drain, m);
    if (s != CL_OK) {
        cl_err_set(err, s, "cannot subscribe to %s: %s", subj_status, cl_status_text(s));
        goto fail;
    }

    s = cl_replicas_start(&m->replicas, bus, on_replica_change, m, err);
    if (s != CL_OK)
        goto fail;
    /* Replicas one by one (local, Docker): several managers share them;
     * a declarative backend (Kubernetes) has one scheduler already. */
    if (m->backend->ops->apply == NULL) {
        s = cl_placement_start(&m->place, bus, m->host, on_placement_change, m, err);
        if (s != CL_OK)
            goto fail;
    }
    s = cl_kv_open(&m->kv, bus, err);
    if (s != CL_OK)
        goto fail;
    s = cl_view_start(&m->view, m->kv, on_view_change, m, err);
    if (s != CL_OK)
        goto fail;
    if (pthread_create(&m->thread, NULL, run, m) != 0) {
        s = cl_err_set(err, CL_ERR_NOMEM, "cannot create the reconcile thread");
        goto fail;
    }
    m->thread_started = true;
    cl_info("container manager running (backend %s, logs in %s)", m->backend->ops->name,
            m->log_dir);
    *out = m;
    return CL_OK;
fail:
    cl_manager_free(m);
    return s;
}

void cl_manager_free(cl_manager *m)
{
    if (m == NULL)
        return;
    /* Requests first, so nobody reads a snapshot being torn down. */
    cl_sub_free(m->sub_status);
    cl_sub_free(m->sub_logs);
    cl_sub_free(m->sub_hosts);
    cl_sub_free(m->sub_drain);
    /* Said at once, so the other managers start this host's replicas
     * while ours stop. */
    if (m->place != NULL)
        cl_placement_set_draining(m->place, true);
    if (m->thread_started) {
        atomic_store(&m->stop, true);
        wake(m);
        pthread_join(m->thread, NULL);
    }
    cl_placement_free(m->place);
    cl_view_free(m->view);
    cl_kv_free(m->kv);
    cl_replicas_free(m->replicas);
    cl_service_free(m->svc);
    cl_backend_free(m->backend);
    cl__declared_free(m);
    for (size_t i = 0; i < m->n_slots; i++) {
        free(m->slots[i].model);
        free(m->slots[i].version);
        free(m->slots[i].runtime);
        free(m->slots[i].container_name);
        free(m->slots[i].resources);
    }
    free(m->slots);
    free(m->found);
    free(m->status_json);
    free(m->logs_json);
    free(m->hosts_json);
    free(m->log_dir);
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    pthread_mutex_destroy(&m->snap_mu);
    free(m);
}
