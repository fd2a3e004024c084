/* Test harness: a real nats-server (with JetStream) on a free port in a
 * temporary directory, for integration tests.
 *
 *   cl_test_nats srv;
 *   assert_int_equal(cl_test_nats_start(&srv), 0);
 *   ... connect to srv.url ...
 *   cl_test_nats_stop(&srv);
 *
 * The server binary is $NATS_SERVER, else nats-server on PATH, else the one
 * meson found at configure time. The child dies with the test process
 * (PR_SET_PDEATHSIG), so a crashed test leaves no server behind. Call stop
 * from a cmocka teardown so it also runs when an assertion fails. */
#ifndef CL_TEST_NATS_H
#define CL_TEST_NATS_H

typedef struct {
    int port;
    char url[64];  /* nats://127.0.0.1:<port> */
    char dir[256]; /* JetStream store dir and server log (nats.log) */
    int pid;       /* 0 when not running */
} cl_test_nats;

/* Binds port 0 on 127.0.0.1 and returns the port the kernel chose (-1 on error). */
int cl_test_free_port(void);
/* Starts nats-server -a 127.0.0.1 -p <free port> -js -sd <new temp dir> and
 * waits (at most 5 s) until it accepts TCP connections. 0 on success. */
int cl_test_nats_start(cl_test_nats *srv);
/* SIGTERM, wait, SIGKILL after 3 s; removes the directory. 0 on success.
 * Safe to call twice. */
int cl_test_nats_stop(cl_test_nats *srv);
/* Stops the process and starts it again on the same port and directory
 * (JetStream data persists). 0 on success. */
int cl_test_nats_restart(cl_test_nats *srv);

#endif
