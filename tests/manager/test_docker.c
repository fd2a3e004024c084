/* Integration tests of the Docker Engine client (cl_docker.h) against the
 * real engine (podman's Docker API here; see cl_test_engine.h): containers
 * are created, started, inspected, logged, listed by label, stopped and
 * removed for real, and the engine's errors come back as clear texts. Every
 * container and network is named and labelled with this run's token and
 * removed at the end. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_docker.h"
#include "cl_test_engine.h"

#define RUN_LABEL "ai.clipper.test.run"

static cl_docker *engine;
static char run[32];      /* this run's token: names and label values */
static char run_label[64]; /* RUN_LABEL=<run> */

/* A container config running script under sh, labelled with this run. */
static cJSON *config(const char *script, const char *kind, bool tty)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "Image", cl_test_image());
    const char *cmd[] = {"sh", "-c", script};
    cJSON_AddItemToObject(c, "Cmd", cJSON_CreateStringArray(cmd, 3));
    cJSON_AddBoolToObject(c, "Tty", tty);
    cJSON *labels = cJSON_AddObjectToObject(c, "Labels");
    cJSON_AddStringToObject(labels, RUN_LABEL, run);
    cJSON_AddStringToObject(labels, "ai.clipper.test.kind", kind);
    return c;
}

static void create(const char *name, const char *script, const char *kind, bool tty, char *id,
                   size_t id_size)
{
    cJSON *c = config(script, kind, tty);
    cl_err err;
    cl_status s = cl_docker_create(engine, name, c, id, id_size, &err);
    cJSON_Delete(c);
    if (s != CL_OK)
        fail_msg("%s", err.msg);
}

static void name_of(char *out, size_t size, const char *what)
{
    snprintf(out, size, "cltest-%s-%s", run, what);
}

/* Waits up to timeout_ms until the container's status is want. */
static bool wait_status(const char *id, const char *want, int timeout_ms, cl_docker_state *st)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    cl_err err;
    do {
        if (cl_docker_inspect(engine, id, st, &err) == CL_OK && strcmp(st->status, want) == 0)
            return true;
        cl_sleep_ms(50);
    } while (cl_mono_us() < until);
    return false;
}

/* Waits up to timeout_ms until the container's log holds text. */
static char *wait_log(const char *id, const char *text, int timeout_ms)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    cl_err err;
    char *log = NULL;
    do {
        free(log);
        log = NULL;
        if (cl_docker_logs(engine, id, 0, &log, &err) != CL_OK)
            fail_msg("%s", err.msg);
        if (strstr(log, text) != NULL)
            return log;
        cl_sleep_ms(50);
    } while (cl_mono_us() < until);
    fail_msg("the log of %s never held '%s'; it is:\n%s", id, text, log);
    return NULL;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_ping_answers(void **state)
{
    (void)state;
    cl_err err;
    assert_int_equal(cl_docker_ping(engine, &err), CL_OK);
}

static void test_container_lifecycle_create_start_inspect_logs_stop_remove(void **state)
{
    (void)state;
    char name[128], id[80];
    name_of(name, sizeof(name), "life");
    create(name,
           "echo out-line; echo err-line >&2; trap 'echo got-term; exit 7' TERM; "
           "while :; do sleep 0.1; done",
           "life", false, id, sizeof(id));
    assert_int_equal(strlen(id), 64);
    cl_err err;
    cl_docker_state st;
    assert_int_equal(cl_docker_inspect(engine, id, &st, &err), CL_OK);
    assert_string_equal(st.status, "created");
    assert_false(st.running);
    assert_string_equal(st.name, name);
    assert_string_equal(st.id, id);

    assert_int_equal(cl_docker_start(engine, name, &err), CL_OK);
    assert_int_equal(cl_docker_inspect(engine, name, &st, &err), CL_OK);
    assert_true(st.running);
    assert_string_equal(st.status, "running");
    assert_false(st.tty);

    /* Both streams, demultiplexed: plain lines, no frame headers. */
    char *log = wait_log(name, "err-line", 5000);
    assert_non_null(strstr(log, "out-line\n"));
    assert_int_equal(log[0], 'o');
    assert_null(strchr(log, '\x01'));
    free(log);

    /* stop sends SIGTERM: the trap runs and sets the exit code. */
    assert_int_equal(cl_docker_stop(engine, name, 10, &err), CL_OK);
    assert_int_equal(cl_docker_inspect(engine, name, &st, &err), CL_OK);
    assert_false(st.running);
    assert_string_equal(st.status, "exited");
    assert_int_equal(st.exit_code, 7);
    /* Stopping a stopped container is fine; killing one is a conflict. */
    assert_int_equal(cl_docker_stop(engine, name, 1, &err), CL_OK);
    assert_int_equal(cl_docker_kill(engine, name, "SIGKILL", &err), CL_ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "sending SIGKILL to container"));
    assert_non_null(strstr(err.msg, "(HTTP "));

    log = wait_log(name, "got-term", 2000);
    /* tail keeps the last lines only. */
    free(log);
    assert_int_equal(cl_docker_logs(engine, name, 1, &log, &err), CL_OK);
    assert_string_equal(log, "got-term\n");
    free(log);

    assert_int_equal(cl_docker_remove(engine, name, false, &err), CL_OK);
    assert_int_equal(cl_docker_inspect(engine, id, &st, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "inspecting container"));
    assert_non_null(strstr(err.msg, "(HTTP 404)"));
}

static void test_kill_and_forced_remove_of_a_running_container(void **state)
{
    (void)state;
    char name[128], id[80];
    name_of(name, sizeof(name), "kill");
    /* Ignores SIGTERM: only SIGKILL ends it. */
    create(name, "trap '' TERM; echo up; while :; do sleep 0.1; done", "kill", false, id,
           sizeof(id));
    cl_err err;
    assert_int_equal(cl_docker_start(engine, id, &err), CL_OK);
    free(wait_log(id, "up", 5000));
    assert_int_equal(cl_docker_kill(engine, id, "SIGTERM", &err), CL_OK);
    cl_sleep_ms(500);
    cl_docker_state st;
    assert_int_equal(cl_docker_inspect(engine, id, &st, &err), CL_OK);
    assert_true(st.running);
    assert_int_equal(cl_docker_kill(engine, id, "SIGKILL", &err), CL_OK);
    assert_true(wait_status(id, "exited", 5000, &st));
    assert_int_equal(st.exit_code, 137);

    /* A running one needs force to go. */
    char id2[80], name2[128];
    name_of(name2, sizeof(name2), "force");
    create(name2, "while :; do sleep 0.1; done", "kill", false, id2, sizeof(id2));
    assert_int_equal(cl_docker_start(engine, id2, &err), CL_OK);
    assert_int_not_equal(cl_docker_remove(engine, id2, false, &err), CL_OK);
    assert_non_null(strstr(err.msg, "removing container"));
    assert_int_equal(cl_docker_remove(engine, id2, true, &err), CL_OK);
    assert_int_equal(cl_docker_inspect(engine, id2, &st, &err), CL_ERR_NOT_FOUND);
    assert_int_equal(cl_docker_remove(engine, id, true, &err), CL_OK);
}

static void test_tty_container_logs_are_raw(void **state)
{
    (void)state;
    char name[128], id[80];
    name_of(name, sizeof(name), "tty");
    create(name, "echo from-a-tty; sleep 30", "tty", true, id, sizeof(id));
    cl_err err;
    assert_int_equal(cl_docker_start(engine, id, &err), CL_OK);
    cl_docker_state st;
    assert_int_equal(cl_docker_inspect(engine, id, &st, &err), CL_OK);
    assert_true(st.tty);
    char *log = wait_log(id, "from-a-tty", 5000);
    assert_int_equal(strncmp(log, "from-a-tty", 10), 0);
    free(log);
    assert_int_equal(cl_docker_remove(engine, id, true, &err), CL_OK);
}

static void test_list_by_label_finds_exactly_the_labelled(void **state)
{
    (void)state;
    char a[128], b[128], ida[80], idb[80];
    name_of(a, sizeof(a), "list-a");
    name_of(b, sizeof(b), "list-b");
    create(a, "sleep 30", "list-a", false, ida, sizeof(ida));
    create(b, "sleep 30", "list-b", false, idb, sizeof(idb));
    cl_err err;
    assert_int_equal(cl_docker_start(engine, ida, &err), CL_OK);

    const char *only_a[] = {run_label, "ai.clipper.test.kind=list-a", NULL};
    cl_docker_container *list = NULL;
    size_t n = 0;
    assert_int_equal(cl_docker_list(engine, only_a, &list, &n, &err), CL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, ida);
    assert_string_equal(list[0].name, a);
    assert_string_equal(list[0].state, "running");
    assert_string_equal(cl_docker_label(&list[0], RUN_LABEL), run);
    assert_null(cl_docker_label(&list[0], "no.such.label"));
    cl_docker_list_free(list, n);

    /* A key alone matches any value; all=true lists created ones too. */
    const char *any_kind[] = {run_label, "ai.clipper.test.kind", NULL};
    assert_int_equal(cl_docker_list(engine, any_kind, &list, &n, &err), CL_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].id, ida) == 0 || strcmp(list[i].id, idb) == 0)
            found++;
        if (strcmp(list[i].id, idb) == 0)
            assert_string_equal(list[i].state, "created");
    }
    assert_int_equal(found, 2);
    cl_docker_list_free(list, n);

    const char *nobody[] = {"ai.clipper.test.kind=nobody-has-this", NULL};
    assert_int_equal(cl_docker_list(engine, nobody, &list, &n, &err), CL_OK);
    assert_int_equal(n, 0);
    cl_docker_list_free(list, n);

    assert_int_equal(cl_docker_remove(engine, ida, true, &err), CL_OK);
    assert_int_equal(cl_docker_remove(engine, idb, true, &err), CL_OK);
}

static void test_unknown_image_names_it_and_the_build_script(void **state)
{
    (void)state;
    char name[128], id[80];
    name_of(name, sizeof(name), "noimage");
    cJSON *c = config("true", "noimage", false);
    cJSON_ReplaceItemInObject(c, "Image", cJSON_CreateString("clipper/no-such-image:latest"));
    cl_err err;
    assert_int_equal(cl_docker_create(engine, name, c, id, sizeof(id), &err), CL_ERR_NOT_FOUND);
    cJSON_Delete(c);
    if (strstr(err.msg, "creating container ") == NULL ||
        strstr(err.msg, "no image 'clipper/no-such-image:latest'") == NULL ||
        strstr(err.msg, "images/build.sh") == NULL || strstr(err.msg, "(HTTP 404)") == NULL)
        fail_msg("unclear: %s", err.msg);
    assert_int_equal(cl_docker_image_check(engine, "clipper/no-such-image:latest", &err),
                     CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "'clipper/no-such-image:latest'"));
    assert_non_null(strstr(err.msg, "images/build.sh"));
    assert_int_equal(cl_docker_image_check(engine, cl_test_image(), &err), CL_OK);
}

static void test_name_in_use_is_a_conflict(void **state)
{
    (void)state;
    char name[128], id[80], id2[80];
    name_of(name, sizeof(name), "twice");
    create(name, "true", "twice", false, id, sizeof(id));
    cJSON *c = config("true", "twice", false);
    cl_err err;
    assert_int_equal(cl_docker_create(engine, name, c, id2, sizeof(id2), &err), CL_ERR_CONFLICT);
    cJSON_Delete(c);
    assert_non_null(strstr(err.msg, "already in use"));
    assert_int_equal(cl_docker_remove(engine, id, true, &err), CL_OK);
}

static void test_missing_container_texts_say_404(void **state)
{
    (void)state;
    const char *ghost = "cltest-no-such-container";
    cl_err err;
    cl_docker_state st;
    assert_int_equal(cl_docker_inspect(engine, ghost, &st, &err), CL_ERR_NOT_FOUND);
    assert_int_equal(cl_docker_remove(engine, ghost, true, &err), CL_ERR_NOT_FOUND);
    if (strstr(err.msg, "removing container cltest-no-such-container: ") != err.msg ||
        strstr(err.msg, "(HTTP 404)") == NULL)
        fail_msg("unclear: %s", err.msg);
    assert_int_equal(cl_docker_start(engine, ghost, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "starting container cltest-no-such-container"));
    char *log = NULL;
    assert_int_equal(cl_docker_logs(engine, ghost, 5, &log, &err), CL_ERR_NOT_FOUND);
    assert_null(log);
}

static void test_network_create_inspect_remove(void **state)
{
    (void)state;
    char net[128];
    name_of(net, sizeof(net), "net");
    cl_err err;
    assert_int_equal(cl_docker_network_inspect(engine, net, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "(HTTP 404)"));
    cJSON *labels = cJSON_CreateObject();
    cJSON_AddStringToObject(labels, RUN_LABEL, run);
    assert_int_equal(cl_docker_network_create(engine, net, labels, &err), CL_OK);
    assert_int_equal(cl_docker_network_inspect(engine, net, &err), CL_OK);
    assert_int_equal(cl_docker_network_create(engine, net, labels, &err), CL_ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "creating network"));
    cJSON_Delete(labels);

    /* Two containers on it reach each other by name. */
    char srv[128], cli[128], ids[80], idc[80];
    name_of(srv, sizeof(srv), "net-srv");
    name_of(cli, sizeof(cli), "net-cli");
    cJSON *c = config("while :; do sleep 0.1; done", "net", false);
    cJSON *host = cJSON_AddObjectToObject(c, "HostConfig");
    cJSON_AddStringToObject(host, "NetworkMode", net);
    assert_int_equal(cl_docker_create(engine, srv, c, ids, sizeof(ids), &err), CL_OK);
    char script[400];
    snprintf(script, sizeof(script),
             "for i in 1 2 3 4 5 6 7 8 9 10; do getent hosts %s && exit 0; "
             "nslookup %s >/dev/null 2>&1 && echo resolved && exit 0; sleep 0.3; done; exit 1",
             srv, srv);
    const char *cmd[] = {"sh", "-c", script};
    cJSON_ReplaceItemInObject(c, "Cmd", cJSON_CreateStringArray(cmd, 3));
    assert_int_equal(cl_docker_create(engine, cli, c, idc, sizeof(idc), &err), CL_OK);
    cJSON_Delete(c);
    assert_int_equal(cl_docker_start(engine, ids, &err), CL_OK);
    assert_int_equal(cl_docker_start(engine, idc, &err), CL_OK);
    cl_docker_state st;
    assert_true(wait_status(idc, "exited", 10000, &st));
    if (st.exit_code != 0) {
        char *log = NULL;
        /* Best effort: the logs only add to the failure message below. */
        cl_status_ignore(cl_docker_logs(engine, idc, 0, &log, &err));
        fail_msg("%s could not resolve %s by name: exit %d\n%s", cli, srv, st.exit_code,
                 log ? log : "");
    }
    assert_int_equal(cl_docker_remove(engine, idc, true, &err), CL_OK);
    assert_int_equal(cl_docker_remove(engine, ids, true, &err), CL_OK);

    assert_int_equal(cl_docker_network_remove(engine, net, &err), CL_OK);
    assert_int_equal(cl_docker_network_inspect(engine, net, &err), CL_ERR_NOT_FOUND);
}

static void test_engine_not_running_is_a_clear_error(void **state)
{
    (void)state;
    /* No socket file at all. */
    char url[200];
    snprintf(url, sizeof(url), "unix:///tmp/cltest-%s-nothing.sock", run);
    cl_docker *d = NULL;
    cl_err err;
    assert_int_equal(cl_docker_new(&d, url, &err), CL_OK);
    uint64_t t0 = cl_mono_us();
    assert_int_equal(cl_docker_ping(d, &err), CL_ERR_UNREACHABLE);
    assert_true(cl_mono_us() - t0 < 4000000u);
    char want[300];
    snprintf(want, sizeof(want), "cannot reach the container engine at %s: ", url);
    if (strstr(err.msg, want) == NULL || strstr(err.msg, "No such file or directory") == NULL ||
        strstr(err.msg, "is it running? (images/engine.sh starts one)") == NULL)
        fail_msg("unclear: %s", err.msg);
    cl_docker_free(d);

    /* A socket nobody listens on. */
    char path[108];
    snprintf(path, sizeof(path), "/tmp/cltest-%s-dead.sock", run);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(url, sizeof(url), "unix://%s", path);
    assert_int_equal(cl_docker_new(&d, url, &err), CL_OK);
    char id[80];
    cJSON *c = config("true", "x", false);
    assert_int_equal(cl_docker_create(d, "cltest-never", c, id, sizeof(id), &err),
                     CL_ERR_UNREACHABLE);
    cJSON_Delete(c);
    if (strstr(err.msg, "creating container cltest-never: cannot reach the container engine") ==
            NULL ||
        strstr(err.msg, "Connection refused") == NULL)
        fail_msg("unclear: %s", err.msg);
    cl_docker_free(d);
    close(fd);
    unlink(path);
}

static int group_setup(void **state)
{
    (void)state;
    char token[23];
    cl_bus_new_token(token);
    for (char *p = token; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    snprintf(run, sizeof(run), "%.12s", token);
    snprintf(run_label, sizeof(run_label), "%s=%s", RUN_LABEL, run);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int left = cl_test_engine_remove_labelled(engine, run_label);
    char net[128];
    name_of(net, sizeof(net), "net");
    cl_err err;
    /* The network is left only by a test that failed midway: not found is
     * the usual answer. */
    cl_status st = cl_docker_network_remove(engine, net, &err);
    if (st != CL_OK && st != CL_ERR_NOT_FOUND)
        fprintf(stderr, "cannot remove the network %s: %s\n", net, err.msg);
    if (left > 0)
        fprintf(stderr, "removed %d container(s) a failed test left behind\n", left);
    return 0;
}

int main(void)
{
    int rc = cl_test_engine_open(&engine);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_answers),
        cmocka_unit_test(test_container_lifecycle_create_start_inspect_logs_stop_remove),
        cmocka_unit_test(test_kill_and_forced_remove_of_a_running_container),
        cmocka_unit_test(test_tty_container_logs_are_raw),
        cmocka_unit_test(test_list_by_label_finds_exactly_the_labelled),
        cmocka_unit_test(test_unknown_image_names_it_and_the_build_script),
        cmocka_unit_test(test_name_in_use_is_a_conflict),
        cmocka_unit_test(test_missing_container_texts_say_404),
        cmocka_unit_test(test_network_create_inspect_remove),
        cmocka_unit_test(test_engine_not_running_is_a_clear_error),
    };
    rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    cl_docker_free(engine);
    return rc;
}
