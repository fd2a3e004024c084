/* The bus: the only module that includes the NATS client (cnats).
 *
 * Everything the actors and tools need from NATS is here: connections with
 * reconnect, publish, subscribe (callback or pull), request/reply, and the
 * message view. cnats types never cross this header; cl_msg and cl_sub are
 * opaque.
 *
 * Threads: callbacks run on cnats delivery threads. A callback must not
 * block and must not call cl_bus_request(); hand work to a thread of your
 * own (or use a pull subscription, cl_bus_subscribe_sync + cl_sub_next). */
#ifndef CL_BUS_H
#define CL_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_status.h"

#define CL_DEFAULT_NATS_URL "nats://127.0.0.1:4222"
#define CL_DEFAULT_PREFIX "clipper"

/* Every connection pings its server this often and takes it for dead when
 * this many pings in a row go unanswered: a server whose host went silent
 * is left within 1 to 1.5 s. */
/* The largest message the nats-server configurations the product writes
 * allow (max_payload: clipper start, the hosts scripts, Docker): an input
 * or an output up to about this size crosses the bus in one message, and
 * the frontend, router and replica split batches below the server's limit.
 * nats-server's own default is 1 MiB; a frontend on a server that allows
 * less than this says so when it starts. */
#define CL_BUS_MAX_PAYLOAD (32 * 1024 * 1024)

#define CL_BUS_PING_INTERVAL_MS 500
#define CL_BUS_MAX_PINGS_OUT 2

typedef struct cl_bus cl_bus;
typedef struct cl_sub cl_sub;
typedef struct cl_msg cl_msg;

typedef struct {
    const char *url;       /* NULL: CL_DEFAULT_NATS_URL. Comma-separated list allowed. */
    const char *name;      /* connection name shown by nats-server; may be NULL */
    const char *prefix;    /* subject prefix; NULL: CL_DEFAULT_PREFIX */
    bool send_asap;        /* write each publish at once (latency) instead of
                              letting the flusher batch them (throughput) */
    int connect_timeout_ms; /* 0: 2000 */
    bool retry_forever;    /* keep trying the first connect instead of failing */
    int resend_silent_ms;  /* cl_bus_request_resend sends again after this
                              long without a reply, doubling; 0:
                              CL_BUS_RESEND_SILENT_MS, negative: only after a
                              reconnect */
    int state_replicas;    /* JetStream replicas of the state bucket and the
                              artifact stream, when this connection is the one
                              that creates them (1 to 5; 0: 1). A cluster of
                              three nats-servers keeps them on 3. */
    /* Identity. NULL: connect as nobody in particular, as before. */
    const char *nkey_file; /* a credential file (cl_nkey.h): connect as that
                              NKey user. Read once, at connect; the seed is
                              kept in the bus (for reconnects), not re-read.
                              With retry_forever a refused credential (or
                              certificate) is retried forever too: cnats
                              retries the first connect whatever failed. */
    /* TLS. All NULL: plain TCP unless the URL says tls://, as before. */
    const char *tls_ca_file;   /* verify the server's certificate with this CA
                                  (PEM; added to the system's CAs, which cnats
                                  always trusts too). TLS is then required,
                                  whatever the URL's scheme. */
    const char *tls_cert_file; /* client certificate (PEM) and its key: both */
    const char *tls_key_file;  /* or neither */
    const char *tls_name;      /* the name the server's certificate must carry;
                                  NULL: the host of the URL (an IP address
                                  matches the certificate's IP entries) */
} cl_bus_opts;

void cl_bus_opts_init(cl_bus_opts *opts);

/* Connects. On failure err says which URL could not be reached and why:
 * CL_ERR_UNREACHABLE when no server answered; CL_ERR_DENIED when the server
 * refused the credential (or asked for one), when its certificate did not
 * verify, or when TLS was asked for and it offers none; the file's own
 * error when the credential file cannot be used (cl_nkey_read_file).
 * Every connection of the bus (its own, cl_loop_open's) uses the
 * same identity and TLS. Once connected, the connection reconnects forever
 * on its own. */
cl_status cl_bus_connect(cl_bus **out, const cl_bus_opts *opts, cl_err *err) CL_MUST_USE;
/* Flushes, closes and frees. NULL is a no-op. */
void cl_bus_free(cl_bus *bus);

const char *cl_bus_prefix(const cl_bus *bus); /* valid for the bus' lifetime */
const char *cl_bus_url(const cl_bus *bus);
/* The server's max payload in bytes (1 MiB by default). */
int64_t cl_bus_max_payload(const cl_bus *bus);
bool cl_bus_is_connected(const cl_bus *bus);

cl_status cl_bus_publish(cl_bus *bus, const char *subject, const void *data, size_t len)
    CL_MUST_USE;
cl_status cl_bus_publish_request(cl_bus *bus, const char *subject, const char *reply,
                                 const void *data, size_t len) CL_MUST_USE;
/* Pushes buffered outgoing data now (a round trip to the server). */
cl_status cl_bus_flush(cl_bus *bus, int timeout_ms) CL_MUST_USE;

/* Blocking request/reply. Never call from a bus callback. On success *reply
 * is owned by the caller (cl_msg_free). CL_ERR_NO_RESPONDERS when nobody
 * listens, CL_ERR_TIMEOUT when nobody answered in time. */
cl_status cl_bus_request(cl_bus *bus, const char *subject, const void *data, size_t len,
                         int timeout_ms, cl_msg **reply) CL_MUST_USE;

/* cl_bus_request for a request that may be sent twice (a prediction): when
 * the connection reconnects while no reply has come (its server stopped or
 * went into lame duck mode, taking the request or its reply with it), the
 * request is sent again on the new connection, and the first reply
 * answers it. So it is when no reply came CL_BUS_RESEND_SILENT_MS after
 * the last send, the wait doubling each time: a request can be lost
 * without the connection noticing, on a route to a server whose host went
 * silent, in the second or so before that server's peers give it up.
 * Same results as cl_bus_request. */
#define CL_BUS_RESEND_SILENT_MS 1000
cl_status cl_bus_request_resend(cl_bus *bus, const char *subject, const void *data, size_t len,
                                int timeout_ms, cl_msg **reply) CL_MUST_USE;
/* Scatter-gather: publishes data on subject with a fresh inbox as its
 * reply subject and collects the replies of every responder, until `max`
 * came, `enough` (may be NULL) returns true for the replies so far, or
 * timeout_ms passed. Never call from a bus callback. out[0..*n) are owned
 * by the caller (cl_msg_free each). CL_OK when at least one reply came
 * (the others may have timed out); CL_ERR_NO_RESPONDERS when nobody
 * listens, CL_ERR_TIMEOUT when nobody answered in time. */
typedef bool (*cl_gather_fn)(cl_msg *const *replies, size_t n, void *closure);
cl_status cl_bus_gather(cl_bus *bus, const char *subject, const void *data, size_t len,
                        int timeout_ms, cl_msg **out, size_t max, size_t *n,
                        cl_gather_fn enough, void *closure) CL_MUST_USE;

/* Callback subscription. The callback owns msg and must cl_msg_free it. */
typedef void (*cl_msg_cb)(cl_bus *bus, cl_msg *msg, void *closure);
/* queue may be NULL (every subscriber gets every message) or a queue group. */
cl_status cl_bus_subscribe(cl_sub **out, cl_bus *bus, const char *subject, const char *queue,
                           cl_msg_cb cb, void *closure) CL_MUST_USE;
/* Pull subscription: read it with cl_sub_next from a thread of your own. */
cl_status cl_bus_subscribe_sync(cl_sub **out, cl_bus *bus, const char *subject,
                                const char *queue) CL_MUST_USE;
/* Next message, waiting up to timeout_ms (0: do not wait). CL_ERR_TIMEOUT
 * when none arrived; CL_ERR_CLOSED once the subscription is gone. */
cl_status cl_sub_next(cl_sub *sub, cl_msg **out, int timeout_ms) CL_MUST_USE;
/* Messages received by the client but not yet delivered to the callback. */
int cl_sub_pending(cl_sub *sub);
/* Drains a pull subscription: the server stops sending it messages (a
 * queue group's other members get them), and those already received are
 * still read with cl_sub_next; cl_sub_drained waits (up to timeout_ms)
 * until they have been. Past timeout_ms after the drain began the rest
 * are dropped. NULL is a no-op. */
cl_status cl_sub_drain(cl_sub *sub, int timeout_ms) CL_MUST_USE;
cl_status cl_sub_drained(cl_sub *sub, int timeout_ms) CL_MUST_USE;
/* Unsubscribes and frees. After it returns no callback of sub runs. NULL is a no-op. */
void cl_sub_free(cl_sub *sub);

const char *cl_msg_subject(const cl_msg *msg);
const char *cl_msg_reply(const cl_msg *msg); /* NULL when none */
const void *cl_msg_data(const cl_msg *msg);  /* NUL-terminated by cnats */
size_t cl_msg_len(const cl_msg *msg);
/* True when a request got the "no responders" status instead of a reply. */
bool cl_msg_is_no_responders(const cl_msg *msg);
/* Publishes data to the message's reply subject (no-op when it has none). */
cl_status cl_msg_respond(cl_bus *bus, const cl_msg *msg, const void *data, size_t len) CL_MUST_USE;
void cl_msg_free(cl_msg *msg);

/* The prefix of this connection's inboxes: "_INBOX.<public key>" when it
 * connected with a credential (its identity may subscribe only there),
 * else "_INBOX". Valid for the bus' lifetime. */
const char *cl_bus_inbox_prefix(const cl_bus *bus);
/* Whether the bus connected with a credential (cl_bus_opts.nkey_file). */
bool cl_bus_has_identity(const cl_bus *bus);

/* A unique token usable in subjects (for inboxes and ids): [A-Za-z0-9]{22}. */
void cl_bus_new_token(char out[23]);

/* Internal: cnats handle for the other bus modules (kv, artifact). */
struct __natsConnection;

#endif
