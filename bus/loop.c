/* The loop connection (see cl_loop.h): cnats' external event-loop mode
 * (natsOptions_SetEventLoop) driven by poll(2) on the caller's thread.
 *
 * In that mode cnats starts no reader or flusher thread: reading happens
 * in natsConnection_ProcessReadEvent (called here when the socket is
 * readable; it parses and queues the messages on our pull subscriptions,
 * which the same thread then drains), and a publish only appends to the
 * connection's buffer and asks for a write event, which we serve with
 * natsConnection_ProcessWriteEvent. Only one thread at a time may call
 * ProcessWriteEvent (flush_mu): a second call on an emptied buffer would
 * write 0 bytes, which cnats takes for a closed connection.
 *
 * Reconnecting: cnats 3.4 keeps its protocol parser across a reconnect in
 * this mode (nats-io/nats.c#1007), so a disconnect in the middle of a
 * message would leave the new connection misparsed. The loop's connection
 * therefore never reconnects by itself (max reconnect 0: a disconnect
 * closes it); the thread running the loop builds a new connection, with a
 * new parser, and subscribes again, retrying every 100 ms while the server
 * is away. Publishes from other threads take nc_lock for reading; the
 * rebuild takes it for writing. Messages published while no connection is
 * up fail (the callers' own recovery covers them: the router requeues a
 * lost batch, the frontend answers at the deadline). */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus_internal.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "cl_loop.h"

/* How often a closed loop connection is built again while the server is
 * away. A refused connect costs little, and until the loop's subscriptions
 * are back a request on them gets "no responders". */
#define REBUILD_MS 100
/* What cl_loop_hold_while_down keeps for the next connection, at most. */
#define HELD_MAX_BYTES (32u << 20)

/* A message published while the connection was down, kept for the next. */
typedef struct held_msg {
    struct held_msg *next;
    char *subject;
    size_t len;
    unsigned char data[];
} held_msg;

typedef struct {
    natsSubscription *sub;
    char *subject;
    char *queue;
    cl_msg_cb cb;
    void *closure;
    atomic_bool draining; /* cl_loop_drain: never subscribed again */
} loop_sub;

struct cl_loop {
    cl_bus *bus;
    natsConnection *nc;
    int efd; /* eventfd: wakes the thread waiting in poll */

    pthread_mutex_t mu; /* guards fd and reading, set by cnats from any thread */
    int fd;             /* the attached socket, -1 when detached */
    bool reading;       /* cnats wants read events */
    atomic_bool want_write; /* cnats has output buffered */
    pthread_mutex_t flush_mu; /* one ProcessWriteEvent at a time */
    pthread_rwlock_t nc_lock; /* nc replaced by a rebuild (writer) */
    uint64_t next_rebuild_us; /* monotonic: when to try again */

    loop_sub *subs; /* the runner's */
    size_t n_subs, cap_subs;
    void (*turn_end)(void *closure);
    void *turn_end_closure;
    int watch_fd; /* cl_loop_watch_fd, -1: none */
    /* cl_loop_hold_while_down: publishes while no connection is up wait
     * here (in order, up to HELD_MAX_BYTES) and go out after a rebuild. */
    atomic_bool hold;
    pthread_mutex_t held_mu;
    held_msg *held_head, **held_tail;
    size_t held_bytes;
    atomic_uint_fast64_t connects; /* successful (re)connections */
};

/* The loop whose callbacks run on this thread: its publishes wait for the
 * end of the turn. */
static _Thread_local cl_loop *in_turn;
/* The loop this thread is publishing on and will flush itself. */
static _Thread_local cl_loop *flushing;

static void wake(cl_loop *l)
{
    uint64_t one = 1;
    ssize_t n = write(l->efd, &one, sizeof(one));
    (void)n; /* EAGAIN: a wake-up is already pending */
}

/* ---- cnats' event-loop callbacks (any thread, cnats' lock held) ------ */

static natsStatus ev_attach(void **data, void *loop, natsConnection *nc, natsSock fd)
{
    (void)nc;
    cl_loop *l = loop;
    *data = l;
    pthread_mutex_lock(&l->mu);
    l->fd = (int)fd;
    l->reading = true;
    pthread_mutex_unlock(&l->mu);
    wake(l);
    return NATS_OK;
}

static natsStatus ev_read(void *data, bool add)
{
    cl_loop *l = data;
    pthread_mutex_lock(&l->mu);
    l->reading = add;
    pthread_mutex_unlock(&l->mu);
    if (in_turn != l)
        wake(l);
    return NATS_OK;
}

static natsStatus ev_write(void *data, bool add)
{
    cl_loop *l = data;
    atomic_store(&l->want_write, add);
    /* Output from cnats itself (pings, subscriptions, a reconnect) on
     * another thread: the thread running the loop writes it. */
    if (add && in_turn != l && flushing != l)
        wake(l);
    return NATS_OK;
}

static natsStatus ev_detach(void *data)
{
    cl_loop *l = data;
    pthread_mutex_lock(&l->mu);
    l->fd = -1;
    l->reading = false;
    pthread_mutex_unlock(&l->mu);
    wake(l);
    return NATS_OK;
}

/* ---- the loop --------------------------------------------------------- */

static void rebuild(cl_loop *l);
static bool loop_closed(const cl_loop *l);

/* Writes what cnats buffered (as much as the socket takes now). */
static void flush_pending(cl_loop *l)
{
    if (!atomic_load(&l->want_write))
        return;
    pthread_mutex_lock(&l->flush_mu);
    if (atomic_load(&l->want_write))
        natsConnection_ProcessWriteEvent(l->nc);
    pthread_mutex_unlock(&l->flush_mu);
}

/* Waits up to timeout_ms for the socket (or a wake-up, or the watched
 * fd), then reads once. True when the watched fd is readable. */
static bool wait_and_read(cl_loop *l, int timeout_ms)
{
    pthread_mutex_lock(&l->mu);
    int fd = l->fd;
    bool reading = l->reading;
    pthread_mutex_unlock(&l->mu);
    short events = 0;
    if (fd >= 0) {
        if (reading)
            events |= POLLIN;
        if (atomic_load(&l->want_write))
            events |= POLLOUT;
    }
    /* The eventfd, the watched fd (an fd of -1 is skipped by poll), then
     * the connection's socket when there is something to wait for. */
    struct pollfd p[3] = {{.fd = l->efd, .events = POLLIN},
                          {.fd = l->watch_fd, .events = POLLIN},
                          {.fd = fd, .events = events}};
    nfds_t np = events ? 3 : 2;
    if (poll(p, np, timeout_ms) <= 0)
        return false;
    if (p[0].revents & POLLIN) {
        uint64_t v;
        ssize_t n = read(l->efd, &v, sizeof(v));
        (void)n;
    }
    if (np == 3 && (p[2].revents & (POLLIN | POLLERR | POLLHUP)))
        natsConnection_ProcessReadEvent(l->nc); /* a failure starts cnats' reconnect */
    return l->watch_fd >= 0 && (p[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

/* Runs the callbacks of every message queued on our subscriptions. */
static size_t dispatch(cl_loop *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n_subs; i++) {
        loop_sub *ls = &l->subs[i];
        int pending = 0;
        if (ls->sub == NULL || natsSubscription_GetPending(ls->sub, &pending, NULL) != NATS_OK)
            continue;
        if (pending == 0 && atomic_load(&ls->draining)) {
            /* An empty draining subscription: asking it for a message lets
             * cnats see that the drain is complete. */
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, ls->sub, 0) == NATS_OK) {
                ls->cb(l->bus, (cl_msg *)m, ls->closure);
                n++;
            }
            continue;
        }
        for (; pending > 0; pending--) {
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, ls->sub, 0) != NATS_OK)
                break;
            ls->cb(l->bus, (cl_msg *)m, ls->closure);
            n++;
        }
    }
    return n;
}

cl_status cl_loop_run(cl_loop *l, int timeout_ms)
{
    if (loop_closed(l)) {
        rebuild(l);
        if (loop_closed(l)) {
            /* Still away: wait (a wake-up or the timeout), then try again. */
            struct pollfd p = {.fd = l->efd, .events = POLLIN};
            int wait_ms = timeout_ms < REBUILD_MS ? timeout_ms : REBUILD_MS;
            if (poll(&p, 1, wait_ms) > 0) {
                uint64_t v;
                ssize_t n = read(l->efd, &v, sizeof(v));
                (void)n;
            }
            return CL_ERR_TIMEOUT;
        }
    }
    in_turn = l;
    flush_pending(l);
    size_t n = dispatch(l); /* left over from cl_loop_sync */
    if (n == 0) {
        bool watched = wait_and_read(l, timeout_ms);
        n = dispatch(l) + (watched ? 1 : 0);
    }
    if (n > 0 && l->turn_end != NULL)
        l->turn_end(l->turn_end_closure);
    flush_pending(l);
    in_turn = NULL;
    return n > 0 ? CL_OK : CL_ERR_TIMEOUT;
}

cl_status cl_loop_sync(cl_loop *l, int timeout_ms)
{
    /* Under the connection's own inbox prefix: an identity may subscribe
     * there (bus/roles.c). */
    char token[23], subject[160];
    cl_bus_new_token(token);
    snprintf(subject, sizeof(subject), "%s.sync.%s", cl_bus_inbox_prefix(l->bus), token);
    natsSubscription *sub = NULL;
    natsStatus ns = natsConnection_SubscribeSync(&sub, l->nc, subject);
    flushing = l;
    if (ns == NATS_OK)
        ns = natsConnection_Publish(l->nc, subject, "", 0);
    flushing = NULL;
    cl_status s = cl__bus_status(ns, NULL, "loop sync");
    uint64_t deadline = cl_mono_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000;
    while (s == CL_OK) {
        flush_pending(l);
        int pending = 0;
        if (natsSubscription_GetPending(sub, &pending, NULL) == NATS_OK && pending > 0)
            break;
        uint64_t now = cl_mono_us();
        if (now >= deadline) {
            s = CL_ERR_TIMEOUT;
            break;
        }
        wait_and_read(l, (int)((deadline - now + 999) / 1000));
    }
    if (sub != NULL) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        flush_pending(l);
    }
    return s;
}

/* ---- lifecycle and API ------------------------------------------------ */

/* A new connection for the loop, in event-loop mode, not reconnecting. */
static natsStatus loop_connect(cl_loop *l)
{
    char name[256];
    snprintf(name, sizeof(name), "%s (loop)", l->bus->name);
    natsOptions *no = NULL;
    natsStatus s = cl__bus_options(l->bus, name, true, &no);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(no, 0);
    if (s == NATS_OK)
        s = natsOptions_SetEventLoop(no, l, ev_attach, ev_read, ev_write, ev_detach);
    if (s == NATS_OK)
        s = natsConnection_Connect(&l->nc, no);
    natsOptions_Destroy(no);
    if (s != NATS_OK)
        l->nc = NULL;
    return s;
}

static natsStatus sub_open(cl_loop *l, loop_sub *ls)
{
    natsSubscription *sub = NULL;
    natsStatus s = ls->queue ? natsConnection_QueueSubscribeSync(&sub, l->nc, ls->subject, ls->queue)
                             : natsConnection_SubscribeSync(&sub, l->nc, ls->subject);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s != NATS_OK && sub != NULL) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        sub = NULL;
    }
    ls->sub = sub;
    return s;
}

/* Keeps a publish for the next connection; false when not holding or
 * full. */
static bool hold_msg(cl_loop *l, const char *subject, const void *data, size_t len)
{
    if (!atomic_load(&l->hold))
        return false;
    held_msg *h = malloc(sizeof(*h) + len);
    char *subj = strdup(subject);
    pthread_mutex_lock(&l->held_mu);
    bool ok = h != NULL && subj != NULL && l->held_bytes + len <= HELD_MAX_BYTES;
    if (ok) {
        h->next = NULL;
        h->subject = subj;
        h->len = len;
        memcpy(h->data, data, len);
        *l->held_tail = h;
        l->held_tail = &h->next;
        l->held_bytes += len;
    }
    pthread_mutex_unlock(&l->held_mu);
    if (!ok) {
        free(h);
        free(subj);
        CL_LOG_LIMITED(CL_LOG_WARN, "bus loop: no connection and %zu bytes held already: "
                                    "a message to %s is lost", (size_t)HELD_MAX_BYTES, subject);
    }
    return ok;
}

/* The held messages, in order, on the new connection (nc_lock held for
 * writing). One that fails now is dropped: the connection is gone again. */
static void send_held(cl_loop *l)
{
    pthread_mutex_lock(&l->held_mu);
    held_msg *h = l->held_head;
    size_t n = 0;
    l->held_head = NULL;
    l->held_tail = &l->held_head;
    l->held_bytes = 0;
    pthread_mutex_unlock(&l->held_mu);
    while (h != NULL) {
        held_msg *next = h->next;
        cl_status_ignore(cl__bus_status(
            natsConnection_Publish(l->nc, h->subject, h->data, (int)h->len), NULL, ""));
        n++;
        free(h->subject);
        free(h);
        h = next;
    }
    if (n > 0)
        cl_info("bus loop: sent the %zu messages published while the connection was down", n);
}

static void free_held(cl_loop *l)
{
    for (held_msg *h = l->held_head, *next; h != NULL; h = next) {
        next = h->next;
        free(h->subject);
        free(h);
    }
    l->held_head = NULL;
}

/* On the loop's thread: the connection closed (the server went away, or
 * a protocol error): build a new one and subscribe again. */
static void rebuild(cl_loop *l)
{
    uint64_t now = cl_mono_us();
    if (now < l->next_rebuild_us)
        return;
    l->next_rebuild_us = now + REBUILD_MS * 1000;
    pthread_rwlock_wrlock(&l->nc_lock);
    for (size_t i = 0; i < l->n_subs; i++) {
        natsSubscription_Destroy(l->subs[i].sub);
        l->subs[i].sub = NULL;
    }
    natsConnection_Destroy(l->nc);
    l->nc = NULL;
    atomic_store(&l->want_write, false);
    natsStatus s = loop_connect(l);
    for (size_t i = 0; s == NATS_OK && i < l->n_subs; i++)
        if (!atomic_load(&l->subs[i].draining))
            s = sub_open(l, &l->subs[i]);
    if (s != NATS_OK && l->nc != NULL) {
        /* Try again from scratch next time. */
        natsConnection_Close(l->nc);
    }
    if (s == NATS_OK)
        send_held(l); /* after the subscriptions, as cnats' own reconnect does */
    pthread_rwlock_unlock(&l->nc_lock);
    if (s == NATS_OK) {
        atomic_fetch_add(&l->connects, 1);
        cl_info("bus loop: connected again to %s", l->bus->url);
    }
}

static bool loop_closed(const cl_loop *l)
{
    return l->nc == NULL || natsConnection_IsClosed(l->nc);
}

cl_status cl_loop_open(cl_loop **out, cl_bus *bus, cl_err *err)
{
    cl_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    l->bus = bus;
    l->fd = -1;
    l->watch_fd = -1;
    l->held_tail = &l->held_head;
    pthread_mutex_init(&l->held_mu, NULL);
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->flush_mu, NULL);
    pthread_rwlock_init(&l->nc_lock, NULL);
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0) {
        cl_loop_free(l);
        return cl_err_set(err, CL_ERR_NOMEM, "cannot create an eventfd for the bus loop");
    }
    /* The bus itself is connected, so a server is there: a failure here is
     * passing (the server busy accepting, a name server slow), and worth a
     * few more tries before the caller gives up. */
    natsStatus s = loop_connect(l);
    for (int i = 0; s == NATS_NO_SERVER && i < 20; i++) {
        nats_Sleep(250);
        s = loop_connect(l);
    }
    if (s != NATS_OK) {
        cl_status st = cl__bus_status(s, err, "cannot open the bus loop's connection");
        cl_loop_free(l);
        return st;
    }
    *out = l;
    return CL_OK;
}

void cl_loop_free(cl_loop *l)
{
    if (l == NULL)
        return;
    if (l->nc != NULL && !natsConnection_IsClosed(l->nc)) {
        for (size_t i = 0; i < l->n_subs; i++)
            if (l->subs[i].sub != NULL)
                natsSubscription_Unsubscribe(l->subs[i].sub);
        /* What the last turn could not write (a full socket buffer). */
        for (int i = 0; i < 100 && atomic_load(&l->want_write); i++) {
            flush_pending(l);
            if (atomic_load(&l->want_write))
                wait_and_read(l, 10);
        }
        natsConnection_Close(l->nc);
    }
    for (size_t i = 0; i < l->n_subs; i++) {
        natsSubscription_Destroy(l->subs[i].sub);
        free(l->subs[i].subject);
        free(l->subs[i].queue);
    }
    free(l->subs);
    natsConnection_Destroy(l->nc);
    if (l->efd >= 0)
        close(l->efd);
    free_held(l);
    pthread_mutex_destroy(&l->held_mu);
    pthread_mutex_destroy(&l->flush_mu);
    pthread_mutex_destroy(&l->mu);
    pthread_rwlock_destroy(&l->nc_lock);
    free(l);
}

cl_status cl_loop_subscribe(cl_loop *l, const char *subject, const char *queue, cl_msg_cb cb,
                            void *closure)
{
    if (l->n_subs == l->cap_subs) {
        size_t cap = l->cap_subs ? 2 * l->cap_subs : 4;
        loop_sub *v = realloc(l->subs, cap * sizeof(*v));
        if (v == NULL)
            return CL_ERR_NOMEM;
        l->subs = v;
        l->cap_subs = cap;
    }
    loop_sub ls = {.subject = strdup(subject), .queue = queue ? strdup(queue) : NULL,
                   .cb = cb, .closure = closure};
    natsStatus s = ls.subject == NULL || (queue && ls.queue == NULL) ? NATS_NO_MEMORY
                                                                     : sub_open(l, &ls);
    if (s != NATS_OK) {
        free(ls.subject);
        free(ls.queue);
        return cl__bus_status(s, NULL, "subscribe");
    }
    l->subs[l->n_subs++] = ls;
    return CL_OK;
}

void cl_loop_unsubscribe(cl_loop *l, const char *subject)
{
    for (size_t i = 0; i < l->n_subs; i++) {
        if (strcmp(l->subs[i].subject, subject) != 0)
            continue;
        if (l->subs[i].sub != NULL) {
            natsSubscription_Unsubscribe(l->subs[i].sub);
            natsSubscription_Destroy(l->subs[i].sub);
        }
        free(l->subs[i].subject);
        free(l->subs[i].queue);
        l->subs[i] = l->subs[--l->n_subs];
        flush_pending(l);
        return;
    }
}

void cl_loop_wake(cl_loop *l)
{
    wake(l);
}

void cl_loop_hold_while_down(cl_loop *l, bool hold)
{
    atomic_store(&l->hold, hold);
}

void cl_loop_watch_fd(cl_loop *l, int fd)
{
    l->watch_fd = fd;
}

/* The subscription on subject, or NULL (hold nc_lock). */
static natsSubscription *sub_of(const cl_loop *l, const char *subject)
{
    for (size_t i = 0; i < l->n_subs; i++)
        if (strcmp(l->subs[i].subject, subject) == 0)
            return l->subs[i].sub;
    return NULL;
}

cl_status cl_loop_drain(cl_loop *l, const char *subject, int timeout_ms)
{
    pthread_rwlock_rdlock(&l->nc_lock);
    for (size_t i = 0; i < l->n_subs; i++)
        if (strcmp(l->subs[i].subject, subject) == 0)
            atomic_store(&l->subs[i].draining, true);
    natsSubscription *sub = sub_of(l, subject);
    natsStatus s = sub != NULL ? natsSubscription_DrainTimeout(sub, timeout_ms) : NATS_OK;
    pthread_rwlock_unlock(&l->nc_lock);
    wake(l); /* the loop sends the UNSUB and PING and reads the rest */
    if (sub == NULL || s != NATS_OK)
        return s == NATS_OK ? CL_OK : cl__bus_status(s, NULL, "drain a subscription");
    /* Waited for in short slices under nc_lock: a rebuild of the
     * connection (the server lost meanwhile) destroys the subscription,
     * and then there is nothing more to wait for: a draining subscription
     * is not made again. */
    uint64_t deadline = cl_mono_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000;
    for (;;) {
        pthread_rwlock_rdlock(&l->nc_lock);
        s = sub_of(l, subject) == sub ? natsSubscription_WaitForDrainCompletion(sub, 10)
                                      : NATS_OK;
        pthread_rwlock_unlock(&l->nc_lock);
        if (s != NATS_TIMEOUT)
            return s == NATS_OK ? CL_OK : cl__bus_status(s, NULL, "wait for a drain");
        if (cl_mono_us() >= deadline)
            return CL_ERR_TIMEOUT;
    }
}

void cl_loop_on_turn_end(cl_loop *l, void (*fn)(void *closure), void *closure)
{
    l->turn_end = fn;
    l->turn_end_closure = closure;
}

cl_status cl_loop_publish(cl_loop *l, const char *subject, const void *data, size_t len)
{
    if (len > (size_t)cl_bus_max_payload(l->bus))
        return CL_ERR_TOO_LARGE;
    if (in_turn == l) { /* written at the end of the turn */
        natsStatus s = natsConnection_Publish(l->nc, subject, data, (int)len);
        if (s == NATS_CONNECTION_CLOSED && hold_msg(l, subject, data, len))
            return CL_OK;
        return cl__bus_status(s, NULL, "");
    }
    pthread_rwlock_rdlock(&l->nc_lock);
    natsStatus s = NATS_CONNECTION_CLOSED;
    if (l->nc == NULL || natsConnection_IsClosed(l->nc)) {
        if (hold_msg(l, subject, data, len))
            s = NATS_OK;
    } else {
        flushing = l;
        s = natsConnection_Publish(l->nc, subject, data, (int)len);
        flushing = NULL;
        if (s == NATS_OK) {
            flush_pending(l);
            if (atomic_load(&l->want_write))
                wake(l); /* the socket took only part: the loop writes the rest */
        }
    }
    pthread_rwlock_unlock(&l->nc_lock);
    return cl__bus_status(s, NULL, "");
}

uint64_t cl_loop_reconnects(const cl_loop *l)
{
    return atomic_load(&((cl_loop *)l)->connects);
}

cl_bus *cl_loop_bus(const cl_loop *l)
{
    return l->bus;
}
