/* Shared by the bus/ sources only: cnats handles behind cl_bus. */
#ifndef CL_BUS_INTERNAL_H
#define CL_BUS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include <nats/nats.h>

#include "cl_bus.h"
#include "cl_nkey.h"

struct cl_bus {
    natsConnection *nc;
    char *name;
    int connect_timeout_ms;
    int resend_silent_ms; /* see cl_bus_opts; negative: never */
    int state_replicas; /* 1 .. 5 */
    jsCtx *js; /* created on first use by cl__bus_js */
    pthread_mutex_t js_mu; /* guards js */
    char *prefix;
    char *url;
    /* The servers of url by address, resolved once the first connection is
     * up ("nats://10.88.0.5:4222", ...), or NULL. Later connections (the
     * loop's) try them before the names, so a name server that stalls (as
     * podman's aardvark-dns does for 5 to 20 s while containers start on
     * its network) does not hold them up; the names still serve when the
     * server has moved. */
    char **addr_urls;
    int n_addr_urls;
    /* Identity and TLS (cl_bus_opts), set on every connection of the bus
     * by cl__bus_options. The seed signs the server's nonce at each
     * connect and reconnect; cl_bus_free wipes it. */
    char *nkey_file;                       /* NULL: no credential */
    char nkey_seed[CL_NKEY_SEED_LEN + 1];  /* "" without a credential */
    char nkey_pub[CL_NKEY_PUBLIC_LEN + 1];
    /* "_INBOX.<nkey_pub>" with a credential, else "_INBOX": replies, watch
     * deliveries, gathers and loop syncs come under it, so an identity may
     * be allowed to subscribe only there (bus/roles.c). */
    char inbox_prefix[80];
    bool tls;       /* required: a CA, a client certificate or a name given */
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_name; /* the name the server's certificate must carry */
    /* Subscriptions unsubscribed but not yet destroyed (see bury in
     * bus.c), oldest first. */
    struct cl__grave *graves, *graves_tail;
    pthread_mutex_t graves_mu;
};

/* Options for another connection of this bus to the same server, set up
 * like the first one (reconnects forever, same callbacks); name may be NULL. */
natsStatus cl__bus_options(const cl_bus *bus, const char *name, bool send_asap, natsOptions **out);
/* Translates a cnats status (and its last error text) into err. */
cl_status cl__bus_status(natsStatus s, cl_err *err, const char *what) CL_MUST_USE;
/* The connection's JetStream context (created once, thread-safe). */
cl_status cl__bus_js(cl_bus *bus, jsCtx **out, cl_err *err) CL_MUST_USE;
/* cl_bus_opts.state_replicas as connected (1 .. 5). */
int cl__bus_state_replicas(const cl_bus *bus);

#endif
