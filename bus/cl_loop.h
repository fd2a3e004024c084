/* A bus connection read by a thread of the caller's (the hot path).
 *
 * A plain cl_bus connection has cnats' reader thread hand every message to
 * another thread (a callback's delivery thread, or the one waiting in
 * cl_sub_next): two wake-ups per message. A cl_loop is a second connection
 * of the same bus whose socket is read by the thread that calls
 * cl_loop_run; the callbacks of its subscriptions run right there, and
 * what they publish with cl_loop_publish is written once they are all done,
 * in one write. At light load that is one read, the callbacks, one write;
 * under load many messages share each read and each write.
 *
 * Threads: one thread at a time runs the loop (cl_loop_run, cl_loop_sync);
 * the role may pass to another thread, e.g. from the one that starts an
 * actor to its worker. cl_loop_publish may be called from any thread. The
 * callbacks must not block for long: while they run, the connection is not
 * read (a model call on the replica's worker is the one accepted case:
 * nothing else arrives on its loop). */
#ifndef CL_LOOP_H
#define CL_LOOP_H

#include "cl_bus.h"

typedef struct cl_loop cl_loop;

/* Opens the loop's connection (to bus' server, with bus' prefix). */
cl_status cl_loop_open(cl_loop **out, cl_bus *bus, cl_err *err) CL_MUST_USE;
/* Flushes what is still buffered, closes and frees. No thread may run the
 * loop any more. NULL is a no-op. */
void cl_loop_free(cl_loop *loop);

/* Subscribes; cb runs on the thread that runs the loop and owns msg (the
 * bus passed to it is the loop's bus). queue may be NULL. Call it before
 * the loop runs or from the thread that runs it. */
cl_status cl_loop_subscribe(cl_loop *loop, const char *subject, const char *queue, cl_msg_cb cb,
                            void *closure) CL_MUST_USE;
/* Ends the subscription on subject (made with cl_loop_subscribe); its
 * messages not yet handled are dropped. Same threads as cl_loop_subscribe. */
void cl_loop_unsubscribe(cl_loop *loop, const char *subject);
/* While the connection is down (the server restarting), publishes are
 * kept, in order and up to 32 MiB, and sent once the loop has connected
 * and subscribed again, instead of failing. For messages that are better
 * late than never (replies to clients that may still wait). Off by
 * default. Any thread. */
void cl_loop_hold_while_down(cl_loop *loop, bool hold);
/* Ends the wait of a cl_loop_run in progress (or the next one) at once,
 * from any thread: e.g. after setting a flag the loop's runner checks. */
void cl_loop_wake(cl_loop *loop);
/* fn runs at the end of every turn in which a callback ran, before what
 * the turn published is written (e.g. to add batched work to that write). */
void cl_loop_on_turn_end(cl_loop *loop, void (*fn)(void *closure), void *closure);
/* Also waits for fd (readable) in cl_loop_run: a turn in which it is
 * counts as a turn with a callback, so the turn-end hook runs (that hook
 * serves it, e.g. an HTTP server in external mode). One fd per loop; -1
 * stops watching. Same threads as cl_loop_subscribe. */
void cl_loop_watch_fd(cl_loop *loop, int fd);
/* Drains the subscription on subject (made with cl_loop_subscribe) from
 * any thread while another runs the loop: the server stops sending, and
 * the messages already sent are still read and handled by the loop's
 * callbacks. Returns once they have been, or CL_ERR_TIMEOUT. */
cl_status cl_loop_drain(cl_loop *loop, const char *subject, int timeout_ms) CL_MUST_USE;
/* Waits until the server has seen every subscription made so far (a
 * message to ourselves comes back), running the loop meanwhile without
 * calling any callback. CL_ERR_TIMEOUT when it did not within timeout_ms. */
cl_status cl_loop_sync(cl_loop *loop, int timeout_ms) CL_MUST_USE;

/* Waits up to timeout_ms (0: do not wait) for messages, runs their
 * callbacks, then writes what they published. CL_OK when at least one
 * callback ran, CL_ERR_TIMEOUT when none did. */
cl_status cl_loop_run(cl_loop *loop, int timeout_ms) CL_MUST_USE;

/* Publishes on the loop's connection. From a callback of the loop:
 * buffered and written when the callbacks of this turn are done. From any
 * thread outside a turn: written at once (what a full socket does not take
 * is left to the thread that runs the loop). */
cl_status cl_loop_publish(cl_loop *loop, const char *subject, const void *data, size_t len)
    CL_MUST_USE;

cl_bus *cl_loop_bus(const cl_loop *loop);

/* How many times the loop's connection was made again after it was lost
 * (a nats-server restart): a change says what was in flight may be gone. */
uint64_t cl_loop_reconnects(const cl_loop *loop);

#endif
