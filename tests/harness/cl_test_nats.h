/* Test harness: a real nats-server (with JetStream) on a free port in a
 * temporary directory, for integration tests, and buses connected to it.
 *
 *   cl_test_nats srv;
 *   assert_int_equal(cl_test_nats_start(&srv), 0);
 *   cl_bus *bus;
 *   assert_int_equal(cl_test_bus_connect(&bus, &srv, "myprefix"), 0);
 *   ...
 *   cl_bus_free(bus);
 *   cl_test_nats_stop(&srv);
 *
 * A test program whose tests share one server hands the group fixtures to
 * cmocka and uses cl_test_srv:
 *   return cmocka_run_group_tests(tests, cl_test_nats_group_setup,
 *                                 cl_test_nats_group_teardown);
 *
 * The server binary is $NATS_SERVER, else nats-server on PATH, else the one
 * meson found at configure time. The child dies with the test process
 * (PR_SET_PDEATHSIG), so a crashed test leaves no server behind. Call stop
 * from a cmocka teardown so it also runs when an assertion fails. */
#ifndef CL_TEST_NATS_H
#define CL_TEST_NATS_H

#include "cl_bus.h"
#include "cl_kv.h"

typedef struct {
    int port;
    char host[64]; /* the address it listens on: 127.0.0.1 unless started on another */
    char url[96];  /* nats://<host>:<port> */
    char dir[256]; /* JetStream store dir and server log (nats.log) */
    int pid;       /* 0 when not running */
    char conf[256]; /* config file passed with -c, or "" */
} cl_test_nats;

/* Binds port 0 on 127.0.0.1 and returns the port the kernel chose (-1 on error). */
int cl_test_free_port(void);
/* Starts nats-server -a 127.0.0.1 -p <free port> -js -sd <new temp dir> and
 * waits (at most 5 s) until it accepts TCP connections. 0 on success. */
int cl_test_nats_start(cl_test_nats *srv);
/* The same, listening on host (an IPv4 address of this machine: one that
 * containers or pods can reach, say) instead of 127.0.0.1. */
int cl_test_nats_start_on(cl_test_nats *srv, const char *host);
/* The same, on 127.0.0.1, with the config file conf_path (-c): for
 * authorization and TLS. The flags above win over the file's settings.
 * The caller owns the file; it must outlive the server (restart reads it
 * again). */
int cl_test_nats_start_conf(cl_test_nats *srv, const char *conf_path);
/* SIGTERM, wait, SIGKILL after 3 s; removes the directory. 0 on success.
 * Safe to call twice. */
int cl_test_nats_stop(cl_test_nats *srv);
/* Stops the process and starts it again on the same port and directory
 * (JetStream data persists). 0 on success. */
int cl_test_nats_restart(cl_test_nats *srv);
/* The two halves of a restart, for a test that acts while the server is
 * away: stop the process (the directory stays), then start it again on
 * the same port and directory. */
int cl_test_nats_kill(cl_test_nats *srv);
int cl_test_nats_respawn(cl_test_nats *srv);

/* The server of cl_test_nats_group_setup, between it and the teardown. */
extern cl_test_nats cl_test_srv;
/* cmocka group fixtures: start and stop cl_test_srv. state is unused. */
int cl_test_nats_group_setup(void **state);
int cl_test_nats_group_teardown(void **state);

/* Connects a bus to srv with the cluster prefix (NULL: the default).
 * Returns 0, or -1 with *out NULL after printing why on stderr. */
int cl_test_bus_connect(cl_bus **out, const cl_test_nats *srv, const char *prefix);
/* The same with the caller's options; their url is set to srv's. */
int cl_test_bus_connect_opts(cl_bus **out, const cl_test_nats *srv, cl_bus_opts *opts);
/* Connects as cl_test_bus_connect and opens the cluster-state KV bucket.
 * Returns 0, or -1 with both NULL (nothing left open) after printing why. */
int cl_test_bus_connect_kv(cl_bus **bus, cl_kv **kv, const cl_test_nats *srv,
                           const char *prefix);

#endif
