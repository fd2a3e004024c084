/* Integration tests of the container manager with the docker backend: a
 * real nats-server (model entries written to its KV bucket), the real
 * container engine (cl_test_engine.h), the manager in this process or as
 * a process of its own. Every check counts what the engine really has, by
 * label, not only what the manager reports.
 *
 * Replica containers run the test image with the entrypoint replaced
 * (--replica-entrypoint) by a shell script that prints the replica command
 * it was given and waits for SIGTERM; by model name, "crash*" exits 3 at
 * once and "stubborn*" ignores SIGTERM. The real replica in the real image
 * is the Python end-to-end tests' business. Each test has a cluster name
 * of its own; all run on one network made for this run. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_docker.h"
#include "cl_kv.h"
#include "cl_manager.h"
#include "cl_replicas.h"
#include "cl_state.h"
#include "cl_subject.h"
#include "cl_test_engine.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"
#include "manager_test_util.h"
#include "cl_wire.h"

#ifndef MANAGER_PROC
#error "MANAGER_PROC must name the manager test program"
#endif

#define LABEL_CLUSTER "ai.clipper.container.label"
#define LABEL_MODEL "ai.clipper.model_container.label"

/* $0 is "clipper" (the first word of the replica command), "$@" the rest. */
static const char ENTRYPOINT[] =
    "[\"sh\",\"-c\",\"echo \\\"fake replica: $0 $*\\\"; "
    "case \\\"$*\\\" in *'--model crash'*) echo 'cannot load model: boom' >&2; exit 3;; "
    "*'--model stubborn'*) trap '' TERM;; *) trap 'echo stopping; exit 0' TERM;; esac; "
    "while :; do sleep 0.1; done\"]";

static cl_docker *engine;
static char run[16];      /* this run's token */
static char network[64];  /* the run's network */
static int clusters_made; /* for unique cluster names */

typedef struct {
    char prefix[40];
    char cluster[64];
    char cluster_label[128]; /* ai.clipper.container.label=<cluster> */
    char log_dir[256];
    cl_bus *bus;
    cl_kv *kv;
    cl_manager *mgr;
    pid_t proc; /* a manager process, or 0 */
} fixture;

/* ---- helpers ---------------------------------------------------------- */

static void put_model(fixture *fx, const char *name, const char *version, int64_t replicas)
{
    mt_put_model(fx->kv, name, version, replicas);
}

static cJSON *cm_status(fixture *fx)
{
    return mt_cm_request(fx->bus, fx->prefix, "status");
}

static const cJSON *status_entry(const cJSON *list, const char *model, int n)
{
    return mt_status_entry(list, model, n);
}

/* The cluster's containers of model_version ("m_1"; NULL: any), in any
 * state or only running ones. Free with cl_docker_list_free. */
static size_t containers(const char *cluster_label, const char *model_version, bool running,
                         cl_docker_container **out)
{
    char model[200];
    snprintf(model, sizeof(model), "%s=%s", LABEL_MODEL, model_version ? model_version : "");
    const char *labels[] = {cluster_label, model_version ? model : NULL, NULL};
    cl_docker_container *list = NULL;
    size_t n = 0;
    cl_err err;
    /* podman's list can fail while a container's process ends under it
     * ("read /proc/<pid>/cgroup: no such process", HTTP 500): ask again. */
    cl_status ls = CL_ERR_BUS;
    for (int attempt = 0; attempt < 5 && ls != CL_OK; attempt++) {
        if (attempt > 0)
            cl_sleep_ms(100);
        ls = cl_docker_list(engine, labels, &list, &n, &err);
    }
    if (ls != CL_OK)
        fail_msg("%s", err.msg);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (running && strcmp(list[i].state, "running") != 0) {
            cJSON_Delete(list[i].labels);
            continue;
        }
        list[k++] = list[i];
    }
    *out = list;
    return k;
}

static size_t count(const fixture *fx, const char *model_version, bool running)
{
    cl_docker_container *list;
    size_t n = containers(fx->cluster_label, model_version, running, &list);
    cl_docker_list_free(list, n);
    return n;
}

/* Waits up to timeout_ms until the cluster has exactly want containers of
 * model_version, counting every state (all) or running ones; fails
 * saying what it saw. */
static void expect_count(const fixture *fx, const char *model_version, bool running, size_t want,
                         int timeout_ms)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    size_t n;
    while ((n = count(fx, model_version, running)) != want && cl_mono_us() < until)
        cl_sleep_ms(100);
    if (n != want)
        fail_msg("cluster %s has %zu %s container(s) of %s after %d ms, expected %zu",
                 fx->cluster, n, running ? "running" : "(any state)",
                 model_version ? model_version : "any model", timeout_ms, want);
}

static bool container_exists(const char *id)
{
    cl_docker_state st;
    cl_err err;
    cl_status s = cl_docker_inspect(engine, id, &st, &err);
    if (s != CL_OK && s != CL_ERR_NOT_FOUND)
        fail_msg("%s", err.msg);
    return s == CL_OK;
}

/* The one running container of model_version (fails when not one). */
static void the_container(const fixture *fx, const char *model_version, char *id, size_t size)
{
    cl_docker_container *list;
    size_t n = containers(fx->cluster_label, model_version, true, &list);
    if (n != 1) {
        cl_docker_list_free(list, n);
        fail_msg("expected one running container of %s, found %zu", model_version, n);
    }
    snprintf(id, size, "%s", list[0].id);
    cl_docker_list_free(list, n);
}

/* Waits until model_version's only running container is not old (a
 * replacement); returns it in id. */
static void expect_replaced(const fixture *fx, const char *model_version, const char *old,
                            char *id, size_t size, int timeout_ms)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (cl_mono_us() < until) {
        cl_docker_container *list;
        size_t n = containers(fx->cluster_label, model_version, true, &list);
        bool replaced = n == 1 && strcmp(list[0].id, old) != 0;
        if (replaced)
            snprintf(id, size, "%s", list[0].id);
        cl_docker_list_free(list, n);
        if (replaced)
            return;
        cl_sleep_ms(100);
    }
    fail_msg("the container %.12s of %s was not replaced within %d ms", old, model_version,
             timeout_ms);
}

static void manager_opts(const fixture *fx, cl_manager_opts *o)
{
    cl_manager_opts_init(o);
    o->backend = "docker";
    o->log_dir = fx->log_dir;
    o->docker_host = cl_test_engine_url();
    o->docker_network = network;
    o->image = cl_test_image();
    o->cluster = fx->cluster;
    o->replica_entrypoint = ENTRYPOINT;
    o->stop_grace_ms = 2000;
}

static int start_manager(fixture *fx)
{
    cl_manager_opts o;
    manager_opts(fx, &o);
    cl_err err;
    cl_err_clear(&err);
    if (cl_manager_start(&fx->mgr, fx->bus, &o, &err) != CL_OK) {
        fprintf(stderr, "cl_manager_start: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static pid_t spawn_manager(const fixture *fx)
{
    char *argv[] = {MANAGER_PROC, "--nats", cl_test_srv.url, "--prefix", (char *)fx->prefix,
                    "--log-dir", (char *)fx->log_dir, "--backend", "docker",
                    "--docker-network", network, "--image", (char *)cl_test_image(),
                    "--cluster", (char *)fx->cluster, "--replica-entrypoint", (char *)ENTRYPOINT,
                    NULL};
    return cl_test_spawn(argv);
}

/* Publishes one "ready" heartbeat of model:version as replica id, from a
 * host and pid that are not the manager's (as a container's are not). */
static void heartbeat(fixture *fx, const char *model, const char *version, const char *id)
{
    cl_replica_info info;
    memset(&info, 0, sizeof(info));
    snprintf(info.model, sizeof(info.model), "%s", model);
    snprintf(info.version, sizeof(info.version), "%s", version);
    info.replica_id = (uint32_t)strtoul(id, NULL, 10);
    snprintf(info.state, sizeof(info.state), "ready");
    snprintf(info.host, sizeof(info.host), "a-container-host");
    info.pid = 1;
    snprintf(info.input_type, sizeof(info.input_type), "doubles");
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_replica_hb(subject, fx->prefix, model, version, id, &err), CL_OK);
    char *body = cl_heartbeat_encode(&info, "python-closure");
    assert_int_equal(cl_bus_publish(fx->bus, subject, body, strlen(body)), CL_OK);
    assert_int_equal(cl_bus_flush(fx->bus, 1000), CL_OK);
    free(body);
}

/* ---- fixtures ----------------------------------------------------------- */

static int setup_bus(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char token[23];
    cl_bus_new_token(token);
    snprintf(fx->prefix, sizeof(fx->prefix), "t%s", token);
    snprintf(fx->cluster, sizeof(fx->cluster), "cltest-%s-%d", run, ++clusters_made);
    snprintf(fx->cluster_label, sizeof(fx->cluster_label), "%s=%s", LABEL_CLUSTER, fx->cluster);
    snprintf(fx->log_dir, sizeof(fx->log_dir), "/tmp/cl-manager-docker-XXXXXX");
    if (mkdtemp(fx->log_dir) == NULL)
        return -1;
    if (cl_test_bus_connect_kv(&fx->bus, &fx->kv, &cl_test_srv, fx->prefix) != 0)
        return -1;
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    if (setup_bus(state) != 0)
        return -1;
    return start_manager(*state);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    cl_manager_free(fx->mgr);
    if (fx->proc > 0)
        cl_test_kill(fx->proc);
    int left = cl_test_engine_remove_labelled(engine, fx->cluster_label);
    if (left > 0)
        fprintf(stderr, "removed %d container(s) of %s left behind\n", left, fx->cluster);
    cl_kv_free(fx->kv);
    cl_bus_free(fx->bus);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->log_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->log_dir);
    free(fx);
    return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_replicas_run_as_labelled_containers_and_scale_1_3_1_0(void **state)
{
    fixture *fx = *state;
    put_model(fx, "scale", "1", 1);
    expect_count(fx, "scale_1", true, 1, 10000);
    put_model(fx, "scale", "1", 3);
    expect_count(fx, "scale_1", true, 3, 10000);
    cl_sleep_ms(1200); /* and no more than that */
    assert_int_equal(count(fx, "scale_1", false), 3);

    /* Names, labels and the command as the contract says; the status
     * shows the same containers. */
    cl_docker_container *list;
    size_t n = containers(fx->cluster_label, "scale_1", true, &list);
    assert_int_equal(n, 3);
    cJSON *st = cm_status(fx);
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < n; i++) {
        const char *num = cl_docker_label(&list[i], "ai.clipper.replica");
        const char *rid = cl_docker_label(&list[i], "ai.clipper.replica_id");
        assert_non_null(num);
        assert_non_null(rid);
        /* The exact model and version, besides <model>_<version>. */
        assert_string_equal(cl_docker_label(&list[i], LABEL_MODEL), "scale_1");
        const char *lm = cl_docker_label(&list[i], "ai.clipper.model");
        const char *lv = cl_docker_label(&list[i], "ai.clipper.version");
        assert_string_equal(lm ? lm : "(none)", "scale");
        assert_string_equal(lv ? lv : "(none)", "1");
        int r = atoi(num);
        assert_true(r >= 0 && r < 3);
        seen[r] = true;
        char want[200];
        snprintf(want, sizeof(want), "%s-scale-1-%d-", fx->cluster, r);
        if (strncmp(list[i].name, want, strlen(want)) != 0 ||
            strlen(list[i].name) != strlen(want) + 6)
            fail_msg("container name %s is not %s<6 hex>", list[i].name, want);
        const cJSON *e = status_entry(st, "scale", r);
        assert_non_null(e);
        assert_string_equal(cJSON_GetObjectItem(e, "state")->valuestring, "running");
        assert_string_equal(cJSON_GetObjectItem(e, "container_id")->valuestring, list[i].id);
        assert_string_equal(cJSON_GetObjectItem(e, "container_name")->valuestring, list[i].name);
        assert_int_equal((long long)cJSON_GetObjectItem(e, "replica_id")->valuedouble,
                         atoll(rid));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "pid")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "log_file")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "last_error")));

        char expect[600];
        snprintf(expect, sizeof(expect),
                 "fake replica: clipper run replica --nats %s --prefix %s --model scale "
                 "--version 1 --replica-id %s",
                 cl_test_srv.url, fx->prefix, rid);
        char *log = NULL;
        cl_err err;
        uint64_t until = cl_mono_us() + 5000000u;
        for (;;) {
            assert_int_equal(cl_docker_logs(engine, list[i].id, 0, &log, &err), CL_OK);
            if (strstr(log, expect) != NULL || cl_mono_us() >= until)
                break;
            free(log);
            cl_sleep_ms(50);
        }
        if (strstr(log, expect) == NULL)
            fail_msg("container %s did not get the replica command; its log:\n%s\nwanted: %s",
                     list[i].name, log, expect);
        free(log);
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    cJSON_Delete(st);
    cl_docker_list_free(list, n);

    /* Scaling down removes the containers, not only stops them. */
    put_model(fx, "scale", "1", 1);
    expect_count(fx, "scale_1", false, 1, 10000);
    cl_sleep_ms(1200);
    assert_int_equal(count(fx, "scale_1", true), 1);
    n = containers(fx->cluster_label, "scale_1", true, &list);
    assert_string_equal(cl_docker_label(&list[0], "ai.clipper.replica"), "0");
    cl_docker_list_free(list, n);

    put_model(fx, "scale", "1", 0);
    expect_count(fx, "scale_1", false, 0, 10000);
}

static void test_container_removed_by_hand_is_replaced(void **state)
{
    fixture *fx = *state;
    put_model(fx, "victim", "7", 1);
    expect_count(fx, "victim_7", true, 1, 10000);
    char old[80], now_id[80];
    the_container(fx, "victim_7", old, sizeof(old));
    cl_err err;
    assert_int_equal(cl_docker_remove(engine, old, true, &err), CL_OK);
    expect_replaced(fx, "victim_7", old, now_id, sizeof(now_id), 10000);
    assert_int_equal(count(fx, "victim_7", false), 1);

    cJSON *st = cm_status(fx);
    const cJSON *e = status_entry(st, "victim", 0);
    assert_non_null(e);
    assert_int_equal(cJSON_GetObjectItem(e, "restarts")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(e, "last_exit_code")->valueint, -1000);
    const cJSON *le = cJSON_GetObjectItem(e, "last_error");
    if (!cJSON_IsString(le) || strstr(le->valuestring, "removed outside the manager") == NULL)
        fail_msg("last_error does not say the container was removed: %s",
                 cJSON_IsString(le) ? le->valuestring : "null");
    assert_string_equal(cJSON_GetObjectItem(e, "container_id")->valuestring, now_id);
    cJSON_Delete(st);
}

static void test_container_killed_by_hand_is_removed_and_replaced(void **state)
{
    fixture *fx = *state;
    put_model(fx, "killed", "1", 1);
    expect_count(fx, "killed_1", true, 1, 10000);
    char old[80], now_id[80];
    the_container(fx, "killed_1", old, sizeof(old));
    cl_err err;
    assert_int_equal(cl_docker_kill(engine, old, "SIGKILL", &err), CL_OK);
    expect_replaced(fx, "killed_1", old, now_id, sizeof(now_id), 10000);
    /* The exited one was removed once read. */
    assert_false(container_exists(old));
    assert_int_equal(count(fx, "killed_1", false), 1);
    cJSON *st = cm_status(fx);
    const cJSON *e = status_entry(st, "killed", 0);
    assert_non_null(e);
    assert_int_equal(cJSON_GetObjectItem(e, "last_exit_code")->valueint, 137);
    cJSON_Delete(st);
}

static void test_container_exiting_3_is_restarted_and_each_one_removed(void **state)
{
    fixture *fx = *state;
    put_model(fx, "crash", "1", 1);
    /* Starts at about 0, 0.5, 1.5 s: wait for the third run. */
    int restarts = 0;
    uint64_t until = cl_mono_us() + 10000000u;
    cJSON *st = NULL;
    while (restarts < 2 && cl_mono_us() < until) {
        cJSON_Delete(st);
        st = cm_status(fx);
        const cJSON *e = status_entry(st, "crash", 0);
        restarts = e ? cJSON_GetObjectItem(e, "restarts")->valueint : 0;
        /* Never more than the one it is restarting. */
        assert_true(count(fx, "crash_1", false) <= 1);
        cl_sleep_ms(100);
    }
    assert_true(restarts >= 2);
    const cJSON *e = status_entry(st, "crash", 0);
    assert_int_equal(cJSON_GetObjectItem(e, "last_exit_code")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItem(e, "last_exit")->valuestring, "exit code 3");
    cJSON_Delete(st);
}

static void test_container_ignoring_sigterm_is_killed_and_removed_after_grace(void **state)
{
    fixture *fx = *state; /* grace 2000 ms */
    put_model(fx, "stubborn", "1", 1);
    expect_count(fx, "stubborn_1", true, 1, 10000);
    cl_sleep_ms(500); /* let its trap be set */
    uint64_t t0 = cl_mono_us();
    put_model(fx, "stubborn", "1", 0);
    cl_sleep_ms(1200);
    assert_int_equal(count(fx, "stubborn_1", true), 1); /* SIGTERM did nothing */
    expect_count(fx, "stubborn_1", false, 0, 6000);
    assert_true(cl_mono_us() - t0 >= 1900000u);
}

static void test_stopping_the_manager_removes_its_containers_only(void **state)
{
    fixture *fx = *state;
    put_model(fx, "a", "1", 2);
    put_model(fx, "b", "2", 1);
    expect_count(fx, "a_1", true, 2, 10000);
    expect_count(fx, "b_2", true, 1, 10000);

    /* Another cluster's replica container, and one of ours with no
     * replica id (not a replica: the cluster's nats, say). */
    char other[128], other_id[80], infra[128], infra_id[80];
    snprintf(other, sizeof(other), "%s-other", fx->cluster);
    snprintf(infra, sizeof(infra), "%s-nats", fx->cluster);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "Image", cl_test_image());
    cJSON_AddItemToObject(c, "Cmd",
                          cJSON_CreateStringArray((const char *[]){"sleep", "60"}, 2));
    cJSON *labels = cJSON_AddObjectToObject(c, "Labels");
    cJSON_AddStringToObject(labels, LABEL_CLUSTER, other);
    cJSON_AddStringToObject(labels, LABEL_MODEL, "a_1");
    cJSON_AddStringToObject(labels, "ai.clipper.replica_id", "1");
    cl_err err;
    assert_int_equal(cl_docker_create(engine, other, c, other_id, sizeof(other_id), &err), CL_OK);
    cJSON_DeleteItemFromObject(labels, "ai.clipper.replica_id");
    cJSON_DeleteItemFromObject(labels, LABEL_MODEL);
    cJSON_ReplaceItemInObject(labels, LABEL_CLUSTER, cJSON_CreateString(fx->cluster));
    assert_int_equal(cl_docker_create(engine, infra, c, infra_id, sizeof(infra_id), &err), CL_OK);
    cJSON_Delete(c);

    uint64_t t0 = cl_mono_us();
    cl_manager_free(fx->mgr);
    fx->mgr = NULL;
    assert_true(cl_mono_us() - t0 < 5000000u); /* they ended on SIGTERM */
    assert_int_equal(count(fx, "a_1", false), 0);
    assert_int_equal(count(fx, "b_2", false), 0);
    assert_true(container_exists(other_id));
    assert_true(container_exists(infra_id));
    assert_int_equal(cl_docker_remove(engine, other_id, true, &err), CL_OK);
    assert_int_equal(cl_docker_remove(engine, infra_id, true, &err), CL_OK);
}

/* One running replica container of the cluster as the engine lists it,
 * with its labels ("" when it lacks one). */
typedef struct {
    char id[80];
    char name[256];
    char model[128];
    char version[128];
    char replica[16];
    char replica_id[16];
} labelled_container;

static void copy_label(const cl_docker_container *c, const char *key, char *dst, size_t size)
{
    const char *v = cl_docker_label(c, key);
    snprintf(dst, size, "%s", v ? v : "");
}

/* The cluster's running containers of model_version ("m_1"; NULL: any)
 * into out (at most max); returns how many there are. */
static size_t running_containers(const fixture *fx, const char *model_version,
                                 labelled_container *out, size_t max)
{
    cl_docker_container *list;
    size_t n = containers(fx->cluster_label, model_version, true, &list);
    for (size_t i = 0; i < n && i < max; i++) {
        labelled_container *c = &out[i];
        snprintf(c->id, sizeof(c->id), "%s", list[i].id);
        snprintf(c->name, sizeof(c->name), "%s", list[i].name);
        copy_label(&list[i], "ai.clipper.model", c->model, sizeof(c->model));
        copy_label(&list[i], "ai.clipper.version", c->version, sizeof(c->version));
        copy_label(&list[i], "ai.clipper.replica", c->replica, sizeof(c->replica));
        copy_label(&list[i], "ai.clipper.replica_id", c->replica_id, sizeof(c->replica_id));
    }
    cl_docker_list_free(list, n);
    return n;
}

/* The cm.status entry of the replica in container id, or NULL (borrowed). */
static const cJSON *status_of_container(const cJSON *list, const char *id)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        const cJSON *c = cJSON_GetObjectItem(o, "container_id");
        if (cJSON_IsString(c) && strcmp(c->valuestring, id) == 0)
            return o;
    }
    return NULL;
}

/* Runs a manager process until its replicas of model_version (want of
 * them) run, then kills it with SIGKILL: it cannot clean up. */
static void run_and_kill_manager(fixture *fx, const char *model_version, size_t want)
{
    fx->proc = spawn_manager(fx);
    assert_true(fx->proc > 0);
    expect_count(fx, model_version, true, want, 15000);
    assert_int_equal(kill(fx->proc, SIGKILL), 0);
    assert_int_equal(cl_test_wait_exit(fx->proc, 5000), 128 + SIGKILL);
    fx->proc = 0;
}

static void test_a_killed_managers_replicas_keep_running_and_the_next_one_adopts_them(
    void **state)
{
    fixture *fx = *state; /* no manager yet */
    /* Two versions with one old-style label, ai.clipper.model_container.label
     * =ad_opt_1_0: only the exact model and version labels tell them apart. */
    put_model(fx, "ad_opt", "1_0", 2);
    put_model(fx, "ad", "opt_1_0", 1);
    run_and_kill_manager(fx, "ad_opt_1_0", 3);
    labelled_container old[4];
    assert_int_equal(running_containers(fx, NULL, old, 4), 3);
    cl_sleep_ms(700);
    for (size_t i = 0; i < 3; i++) {
        if (!container_exists(old[i].id))
            fail_msg("container %s did not outlive its killed manager", old[i].name);
    }

    /* The next manager takes them as they are: none removed, none new. */
    assert_int_equal(start_manager(fx), 0);
    for (size_t i = 0; i < 3; i++) {
        if (!container_exists(old[i].id))
            fail_msg("the new manager removed container %s instead of adopting it",
                     old[i].name);
    }
    cJSON *st = NULL;
    size_t shown = 0;
    for (int waited = 0; waited <= 5000 && shown < 3; waited += 100) {
        cJSON_Delete(st);
        st = cm_status(fx);
        shown = 0;
        for (size_t i = 0; i < 3; i++)
            shown += status_of_container(st, old[i].id) != NULL;
        if (shown < 3)
            cl_sleep_ms(100);
    }
    if (shown < 3)
        fail_msg("cm.status shows %zu of the 3 adopted containers", shown);
    unsigned of_ad_opt = 0, of_ad = 0;
    for (size_t i = 0; i < 3; i++) {
        const cJSON *e = status_of_container(st, old[i].id);
        const char *model = cJSON_GetObjectItem(e, "model")->valuestring;
        const char *version = cJSON_GetObjectItem(e, "version")->valuestring;
        of_ad_opt += strcmp(model, "ad_opt") == 0 && strcmp(version, "1_0") == 0;
        of_ad += strcmp(model, "ad") == 0 && strcmp(version, "opt_1_0") == 0;
        /* Its exact labels, which adoption read. */
        assert_string_equal(old[i].model, model);
        assert_string_equal(old[i].version, version);
        assert_string_equal(cJSON_GetObjectItem(e, "state")->valuestring, "running");
        assert_string_equal(cJSON_GetObjectItem(e, "container_name")->valuestring, old[i].name);
        assert_int_equal(cJSON_GetObjectItem(e, "replica")->valueint, atoi(old[i].replica));
        assert_int_equal((long long)cJSON_GetObjectItem(e, "replica_id")->valuedouble,
                         atoll(old[i].replica_id));
        assert_int_equal(cJSON_GetObjectItem(e, "restarts")->valueint, 0);
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "last_error")));
        /* The image as the engine names it ("localhost/..." on podman). */
        const char *image = cJSON_GetObjectItem(e, "image")->valuestring;
        size_t li = strlen(image), lt = strlen(cl_test_image());
        if (li < lt || strcmp(image + li - lt, cl_test_image()) != 0)
            fail_msg("adopted container %s shows image '%s', not %s", old[i].name, image,
                     cl_test_image());
    }
    assert_int_equal(of_ad_opt, 2);
    assert_int_equal(of_ad, 1);
    cJSON_Delete(st);

    cl_sleep_ms(1500); /* and it starts none of its own meanwhile */
    assert_int_equal(count(fx, NULL, false), 3);
    labelled_container now[4];
    assert_int_equal(running_containers(fx, NULL, now, 4), 3);
    for (size_t i = 0; i < 3; i++) {
        bool same = false;
        for (size_t j = 0; j < 3; j++)
            same = same || strcmp(now[i].id, old[j].id) == 0;
        if (!same)
            fail_msg("container %s is new: the old ones were not adopted", now[i].name);
        /* Never restarted: its command ran once. */
        char *log = NULL;
        cl_err err;
        assert_int_equal(cl_docker_logs(engine, now[i].id, 0, &log, &err), CL_OK);
        const char *first = strstr(log, "fake replica:");
        assert_non_null(first);
        assert_null(strstr(first + 1, "fake replica:"));
        free(log);
    }

    /* Their heartbeats are matched by the replica ids the labels carry. */
    size_t ready = 0;
    for (int i = 0; i < 30 && ready < 3; i++) {
        for (size_t k = 0; k < 3; k++)
            heartbeat(fx, old[k].model, old[k].version, old[k].replica_id);
        cl_sleep_ms(100);
        st = cm_status(fx);
        ready = 0;
        for (size_t k = 0; k < 3; k++) {
            const cJSON *e = status_of_container(st, old[k].id);
            const cJSON *h = e ? cJSON_GetObjectItem(e, "heartbeat") : NULL;
            ready += cJSON_IsString(h) && strcmp(h->valuestring, "ready") == 0;
        }
        cJSON_Delete(st);
    }
    assert_int_equal(ready, 3);

    /* A manager that stops normally removes what it adopted too. */
    cl_manager_free(fx->mgr);
    fx->mgr = NULL;
    assert_int_equal(count(fx, NULL, false), 0);
}

static void test_an_exited_or_unlabelled_leftover_is_removed_not_adopted(void **state)
{
    fixture *fx = *state; /* no manager yet */
    put_model(fx, "rest", "1", 2);
    run_and_kill_manager(fx, "rest_1", 2);
    labelled_container old[3];
    assert_int_equal(running_containers(fx, "rest_1", old, 3), 2);
    const labelled_container *exited = &old[0], *alive = &old[1];
    cl_err err;
    assert_int_equal(cl_docker_kill(engine, exited->id, "SIGKILL", &err), CL_OK);
    expect_count(fx, "rest_1", true, 1, 5000);

    /* A running replica container as an older manager labelled them:
     * no exact model and version. */
    char legacy[128], legacy_id[80];
    snprintf(legacy, sizeof(legacy), "%s-rest-1-1-legacy", fx->cluster);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "Image", cl_test_image());
    cJSON_AddItemToObject(c, "Cmd", cJSON_CreateStringArray((const char *[]){"sleep", "60"}, 2));
    cJSON *labels = cJSON_AddObjectToObject(c, "Labels");
    cJSON_AddStringToObject(labels, LABEL_CLUSTER, fx->cluster);
    cJSON_AddStringToObject(labels, LABEL_MODEL, "rest_1");
    cJSON_AddStringToObject(labels, "ai.clipper.replica", "1");
    cJSON_AddStringToObject(labels, "ai.clipper.replica_id", "12345");
    cJSON *host = cJSON_AddObjectToObject(c, "HostConfig");
    cJSON_AddStringToObject(host, "NetworkMode", network);
    assert_int_equal(cl_docker_create(engine, legacy, c, legacy_id, sizeof(legacy_id), &err),
                     CL_OK);
    cJSON_Delete(c);
    assert_int_equal(cl_docker_start(engine, legacy_id, &err), CL_OK);
    expect_count(fx, "rest_1", true, 2, 5000);

    /* Removed while the manager starts; the running one kept. */
    assert_int_equal(start_manager(fx), 0);
    assert_false(container_exists(exited->id));
    assert_false(container_exists(legacy_id));
    if (!container_exists(alive->id))
        fail_msg("the new manager removed the running container %s instead of adopting it",
                 alive->name);
    /* It starts one to make up the two. */
    expect_count(fx, "rest_1", true, 2, 10000);
    cl_sleep_ms(1200);
    assert_int_equal(count(fx, "rest_1", false), 2);
    assert_true(container_exists(alive->id));
    cJSON *st = cm_status(fx);
    const cJSON *e = status_of_container(st, alive->id);
    assert_non_null(e);
    assert_int_equal(cJSON_GetObjectItem(e, "replica")->valueint, atoi(alive->replica));
    assert_int_equal(cJSON_GetObjectItem(e, "restarts")->valueint, 0);
    const cJSON *other = mt_status_entry(st, "rest", 1 - atoi(alive->replica));
    assert_non_null(other);
    const cJSON *oid = cJSON_GetObjectItem(other, "container_id");
    assert_true(cJSON_IsString(oid));
    assert_true(strcmp(oid->valuestring, alive->id) != 0 &&
                strcmp(oid->valuestring, exited->id) != 0);
    cJSON_Delete(st);
}

static void test_sigterm_of_manager_process_removes_its_containers(void **state)
{
    fixture *fx = *state;
    put_model(fx, "term", "1", 2);
    fx->proc = spawn_manager(fx);
    assert_true(fx->proc > 0);
    expect_count(fx, "term_1", true, 2, 15000);
    assert_int_equal(kill(fx->proc, SIGTERM), 0);
    int code = cl_test_wait_exit(fx->proc, 15000);
    fx->proc = code < 0 ? fx->proc : 0;
    assert_int_equal(code, 0);
    assert_int_equal(count(fx, "term_1", false), 0);
}

static void test_heartbeats_match_by_replica_id_and_a_silent_container_is_replaced(void **state)
{
    fixture *fx = *state;
    put_model(fx, "hb", "1", 1);
    expect_count(fx, "hb_1", true, 1, 10000);
    cl_docker_container *list;
    size_t n = containers(fx->cluster_label, "hb_1", true, &list);
    assert_int_equal(n, 1);
    char old[80], rid[16];
    snprintf(old, sizeof(old), "%s", list[0].id);
    snprintf(rid, sizeof(rid), "%s", cl_docker_label(&list[0], "ai.clipper.replica_id"));
    cl_docker_list_free(list, n);

    /* Heartbeats with its replica id count, from whatever host and pid. */
    bool ready = false;
    for (int i = 0; i < 30 && !ready; i++) {
        heartbeat(fx, "hb", "1", rid);
        cl_sleep_ms(100);
        cJSON *st = cm_status(fx);
        const cJSON *e = status_entry(st, "hb", 0);
        const cJSON *h = e ? cJSON_GetObjectItem(e, "heartbeat") : NULL;
        ready = cJSON_IsString(h) && strcmp(h->valuestring, "ready") == 0;
        if (ready)
            assert_int_equal((long long)cJSON_GetObjectItem(e, "replica_id")->valuedouble,
                             atoll(rid));
        cJSON_Delete(st);
    }
    assert_true(ready);
    for (int i = 0; i < 3; i++) {
        heartbeat(fx, "hb", "1", rid);
        cl_sleep_ms(500);
    }

    /* Then silence while the container runs: hung, killed, replaced. */
    uint64_t t0 = cl_mono_us();
    char now_id[80];
    expect_replaced(fx, "hb_1", old, now_id, sizeof(now_id), 20000);
    assert_true(cl_mono_us() - t0 >= 5000000u); /* not before 2 x 3.5 s of silence */
    assert_false(container_exists(old));
    cJSON *st = cm_status(fx);
    const cJSON *e = status_entry(st, "hb", 0);
    assert_non_null(e);
    assert_non_null(strstr(cJSON_GetObjectItem(e, "last_error")->valuestring, "killed as hung"));
    assert_int_equal(cJSON_GetObjectItem(e, "last_exit_code")->valueint, 137);
    cJSON_Delete(st);
}

static void test_container_that_cannot_start_shows_last_error_and_leaves_nothing(void **state)
{
    fixture *fx = *state;
    cl_manager_opts o;
    manager_opts(fx, &o);
    o.replica_entrypoint = "[\"/no/such/program\"]";
    cl_err err;
    assert_int_equal(cl_manager_start(&fx->mgr, fx->bus, &o, &err), CL_OK);
    put_model(fx, "nostart", "1", 1);
    const cJSON *le = NULL;
    cJSON *st = NULL;
    for (int i = 0; i < 50 && !cJSON_IsString(le); i++) {
        cJSON_Delete(st);
        cl_sleep_ms(100);
        st = cm_status(fx);
        const cJSON *e = status_entry(st, "nostart", 0);
        le = e ? cJSON_GetObjectItem(e, "last_error") : NULL;
    }
    if (!cJSON_IsString(le) || strstr(le->valuestring, "starting container ") == NULL ||
        strstr(le->valuestring, "/no/such/program") == NULL)
        fail_msg("last_error does not say why it cannot start: %s",
                 cJSON_IsString(le) ? le->valuestring : "null");
    const cJSON *e = status_entry(st, "nostart", 0);
    assert_string_equal(cJSON_GetObjectItem(e, "state")->valuestring, "waiting");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "container_id")));
    cJSON_Delete(st);
    /* A failed start removes its container; the manager keeps retrying
     * (0.5 s, 1 s, 2 s, ...), so a retry's container may exist for a few
     * milliseconds: one left over would be there every time we look. */
    int left = -1;
    for (int i = 0; i < 40 && left != 0; i++) {
        left = count(fx, "nostart_1", false);
        if (left != 0)
            cl_sleep_ms(50);
    }
    assert_int_equal(left, 0);
}

/* "localhost/clipper/base:latest" and "clipper/base:latest" are one image. */
static const char *short_image(const char *image)
{
    return strncmp(image, "localhost/", 10) == 0 ? image + 10 : image;
}

/* Three distinct images with sh for replica containers: the test image
 * and two of the project's images, which images/build.sh makes. */
static void three_images(const char *out[3])
{
    const char *candidates[] = {cl_test_image(), "clipper/base:latest", "clipper/clipper:latest",
                                "clipper/python-closure:latest"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]) && n < 3; i++) {
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(short_image(out[j]), short_image(candidates[i])) == 0;
        if (dup)
            continue;
        cl_err err;
        if (cl_docker_image_check(engine, candidates[i], &err) != CL_OK)
            fail_msg("this test needs the image %s: %s", candidates[i], err.msg);
        out[n++] = candidates[i];
    }
    assert_int_equal(n, 3);
}

/* The status entry of model #0 once its start_failures reaches at least
 * min (NULL after timeout_ms). Free *list. */
static const cJSON *wait_start_failures(fixture *fx, const char *model, int min, cJSON **list,
                                        int timeout_ms)
{
    *list = NULL;
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        cJSON_Delete(*list);
        *list = cm_status(fx);
        const cJSON *e = status_entry(*list, model, 0);
        const cJSON *f = e ? cJSON_GetObjectItem(e, "start_failures") : NULL;
        if (cJSON_IsNumber(f) && f->valueint >= min)
            return e;
        cl_sleep_ms(100);
    }
    return NULL;
}

static void expect_start_error_of(fixture *fx, const char *model, const char *const *texts)
{
    cJSON *list;
    const cJSON *e = wait_start_failures(fx, model, 2, &list, 8000);
    if (e == NULL)
        fail_msg("model %s: no two failed starts in cm.status within 8 s", model);
    const cJSON *se = cJSON_GetObjectItem(e, "start_error");
    for (size_t i = 0; texts[i] != NULL; i++) {
        if (!cJSON_IsString(se) || strstr(se->valuestring, texts[i]) == NULL)
            fail_msg("model %s: start_error lacks '%s': %s", model, texts[i],
                     cJSON_IsString(se) ? se->valuestring : "null");
    }
    assert_string_equal(cJSON_GetObjectItem(e, "state")->valuestring, "waiting");
    cJSON_Delete(list);
    char mv[128];
    snprintf(mv, sizeof(mv), "%s_1", model);
    assert_int_equal(count(fx, mv, false), 0);
}

/* The image of model_version's one running container, by the engine. */
static void expect_image(const fixture *fx, const char *model_version, const char *image)
{
    char id[80];
    expect_count(fx, model_version, true, 1, 10000);
    the_container(fx, model_version, id, sizeof(id));
    cl_docker_state st;
    cl_err err;
    if (cl_docker_inspect(engine, id, &st, &err) != CL_OK)
        fail_msg("%s", err.msg);
    if (strcmp(short_image(st.image), short_image(image)) != 0)
        fail_msg("the container of %s runs %s, expected %s", model_version, st.image, image);
}

static void test_resources_become_container_limits(void **state)
{
    fixture *fx = *state;
    cl_err err;
    mt_put_model_res(fx->kv, "limited", "1", 1,
                     "{\"requests\":{\"memory\":\"64Mi\"},"
                     "\"limits\":{\"cpu\":\"500m\",\"memory\":\"256Mi\"}}");
    mt_put_model(fx->kv, "free", "1", 1);
    char id[80];
    cl_docker_state st;
    expect_count(fx, "limited_1", true, 1, 10000);
    the_container(fx, "limited_1", id, sizeof(id));
    if (cl_docker_inspect(engine, id, &st, &err) != CL_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(st.memory_limit, 256 * 1024 * 1024);
    assert_int_equal(st.nano_cpus, 500000000);
    expect_count(fx, "free_1", true, 1, 10000);
    the_container(fx, "free_1", id, sizeof(id));
    if (cl_docker_inspect(engine, id, &st, &err) != CL_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(st.memory_limit, 0);
    assert_int_equal(st.nano_cpus, 0);
}

static void test_image_follows_the_runtime_and_the_models_own_image(void **state)
{
    fixture *fx = *state;
    const char *img[3];
    three_images(img);
    char spark[300];
    snprintf(spark, sizeof(spark), "pyspark=%s", img[1]);
    cl_manager_opts o;
    manager_opts(fx, &o);
    o.image = img[0];
    o.runtime_images[o.n_runtime_images++] = spark;
    o.runtime_images[o.n_runtime_images++] = "tensorflow=cltest/no-such-tf-image:1";
    cl_err err;
    if (cl_manager_start(&fx->mgr, fx->bus, &o, &err) != CL_OK)
        fail_msg("a runtime image that is not there must only warn: %s", err.msg);

    /* The runtime decides when the model names no image of its own:
     * its runtime's name, "default", or one of Clipper's stock images. */
    mt_put_model_as(fx->kv, "closure", "1", 1, "python-closure", "python-closure");
    mt_put_model_as(fx->kv, "spark", "1", 1, "pyspark", "pyspark");
    mt_put_model_as(fx->kv, "stock", "1", 1, "pyspark", "clipper/pyspark-container:0.4.1");
    mt_put_model_as(fx->kv, "stockpy", "1", 1, "python-closure",
                    "docker.io/clipper/python36-closure-container:0.4.1");
    mt_put_model_as(fx->kv, "dflt", "1", 1, "pyspark", "default");
    /* An image of the user's (base_image) wins over the runtime's. */
    mt_put_model_as(fx->kv, "own", "1", 1, "pyspark", img[2]);
    expect_image(fx, "closure_1", img[0]);
    expect_image(fx, "spark_1", img[1]);
    expect_image(fx, "stock_1", img[1]);
    expect_image(fx, "stockpy_1", img[0]);
    expect_image(fx, "dflt_1", img[1]);
    expect_image(fx, "own_1", img[2]);
    cJSON *list = cm_status(fx);
    const cJSON *e = status_entry(list, "own", 0);
    assert_non_null(e);
    assert_string_equal(cJSON_GetObjectItem(e, "image")->valuestring, img[2]);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "start_error")));
    assert_int_equal(cJSON_GetObjectItem(e, "start_failures")->valueint, 0);
    cJSON_Delete(list);

    /* Each way of not having an image: the model's own, a runtime whose
     * image is missing, a runtime with none. Nothing is left behind, and
     * the others keep running. */
    char build_on[320];
    snprintf(build_on, sizeof(build_on), "build it (FROM %s)", img[0]);
    mt_put_model_as(fx->kv, "missing", "1", 1, "python-closure", "cltest/no-such-image:7");
    expect_start_error_of(fx, "missing",
                          (const char *[]){"model missing:1 names the image "
                                           "'cltest/no-such-image:7'",
                                           build_on, "base_image", NULL});
    mt_put_model_as(fx->kv, "tf", "1", 1, "tensorflow", "default");
    expect_start_error_of(fx, "tf",
                          (const char *[]){"model tf:1 (runtime tensorflow)",
                                           "cltest/no-such-tf-image:1", "images/build.sh", NULL});
    mt_put_model_as(fx->kv, "onnx", "1", 1, "onnx", "onnx");
    expect_start_error_of(fx, "onnx",
                          (const char *[]){"model onnx:1 has runtime 'onnx'",
                                           "--image onnx=IMAGE", NULL});
    expect_count(fx, "closure_1", true, 1, 1000);
    expect_count(fx, "own_1", true, 1, 1000);
}

/* cl_manager_start with one docker setting changed must fail with status
 * want and a message holding each of texts. */
static void expect_start_error(fixture *fx, cl_manager_opts *o, cl_status want,
                               const char *const *texts)
{
    cl_manager *m = NULL;
    cl_err err;
    cl_err_clear(&err);
    cl_status s = cl_manager_start(&m, fx->bus, o, &err);
    if (m != NULL)
        cl_manager_free(m);
    if (s != want)
        fail_msg("got %s (%s), expected %s", cl_status_name(s), err.msg, cl_status_name(want));
    for (size_t i = 0; texts[i] != NULL; i++) {
        if (strstr(err.msg, texts[i]) == NULL)
            fail_msg("'%s' lacks '%s'", err.msg, texts[i]);
    }
    assert_null(m);
}

static void test_bad_docker_settings_are_clear_errors(void **state)
{
    fixture *fx = *state; /* no manager */
    cl_manager_opts o;
    char missing_net[128];
    snprintf(missing_net, sizeof(missing_net), "cltest-%s-no-such-net", run);

    manager_opts(fx, &o);
    o.docker_network = NULL;
    expect_start_error(fx, &o, CL_ERR_INVALID, (const char *[]){"--docker-network", NULL});

    manager_opts(fx, &o);
    o.docker_network = missing_net;
    expect_start_error(fx, &o, CL_ERR_NOT_FOUND,
                       (const char *[]){"the network 'cltest-", "does not exist", NULL});

    manager_opts(fx, &o);
    o.image = "clipper/no-such-image:latest";
    expect_start_error(fx, &o, CL_ERR_NOT_FOUND,
                       (const char *[]){"no image 'clipper/no-such-image:latest'",
                                        "images/build.sh", NULL});

    manager_opts(fx, &o);
    o.docker_host = "unix:///tmp/cltest-no-engine-here.sock";
    expect_start_error(fx, &o, CL_ERR_UNREACHABLE,
                       (const char *[]){"cannot reach the container engine at "
                                        "unix:///tmp/cltest-no-engine-here.sock",
                                        "images/engine.sh", NULL});

    manager_opts(fx, &o);
    o.docker_host = "tcp://127.0.0.1:2375";
    expect_start_error(fx, &o, CL_ERR_INVALID, (const char *[]){"'tcp://127.0.0.1:2375'", NULL});

    manager_opts(fx, &o);
    o.replica_entrypoint = "sh -c x";
    expect_start_error(fx, &o, CL_ERR_INVALID, (const char *[]){"JSON array", NULL});

    manager_opts(fx, &o);
    o.runtime_images[o.n_runtime_images++] = "pyspark";
    expect_start_error(fx, &o, CL_ERR_INVALID,
                       (const char *[]){"RUNTIME=IMAGE", "got 'pyspark'", NULL});

    manager_opts(fx, &o);
    o.runtime_images[o.n_runtime_images++] = "pyspark=a:1";
    o.runtime_images[o.n_runtime_images++] = "pyspark=b:2";
    expect_start_error(fx, &o, CL_ERR_INVALID,
                       (const char *[]){"runtime 'pyspark' is given twice", NULL});

    manager_opts(fx, &o);
    o.runtime_images[o.n_runtime_images++] = "python-closure=b:2";
    expect_start_error(fx, &o, CL_ERR_INVALID,
                       (const char *[]){"runtime 'python-closure' is given twice", NULL});

    manager_opts(fx, &o);
    o.backend = "nomad";
    expect_start_error(fx, &o, CL_ERR_INVALID,
                       (const char *[]){"unknown backend 'nomad'", "local, docker, kubernetes",
                                        NULL});
}

/* Runs the manager program with args; returns its exit code and what it
 * said on stderr (malloc'd) in *said. */
static int run_manager_proc(const char *const *args, char **said)
{
    char path[] = "/tmp/cl-manager-docker-stderr-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    pid_t p = cl_test_fork();
    assert_true(p >= 0);
    if (p == 0) {
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        char *argv[32];
        int n = 0;
        argv[n++] = MANAGER_PROC;
        for (size_t i = 0; args[i] != NULL && n < 31; i++)
            argv[n++] = (char *)args[i];
        argv[n] = NULL;
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    int code = cl_test_wait_exit(p, 15000);
    if (code < 0)
        cl_test_kill(p);
    *said = cl_test_read_file(path, NULL);
    unlink(path);
    return code;
}

static void test_manager_process_option_errors(void **state)
{
    (void)state;
    struct {
        const char *args[16];
        int code;
        const char *text;
    } cases[] = {
        {{"--backend", "docker", NULL}, 2, "--backend docker needs --docker-network NET"},
        {{"--backend", "docker", "--docker-network", "n", "--docker-host", "tcp://h:2375", NULL},
         2, "'tcp://h:2375' (from --docker-host) uses tcp://"},
        {{"--image", "x", NULL}, 2, "--image is an option of the docker and kubernetes backends"},
        {{"--image", "pyspark=x", NULL}, 2,
         "--image is an option of the docker and kubernetes backends"},
        {{"--backend", "docker", "--docker-network", "n", "--namespace", "x", NULL}, 2,
         "--namespace is an option of the kubernetes backend, not of the docker backend"},
        {{"--backend", "kubernetes", "--docker-network", "n", NULL}, 2,
         "--docker-network is an option of the docker backend, not of the kubernetes backend"},
        {{"--backend", "kubernetes", "--pull-policy", "Sometimes", NULL}, 2,
         "--pull-policy must be Always, IfNotPresent or Never, got 'Sometimes'"},
        {{"--nats", cl_test_srv.url, "--backend", "kubernetes", "--kubeconfig",
          "/nonexistent/kubeconfig", NULL},
         1, "no Kubernetes credentials"},
        {{"--backend", "docker", "--docker-network", "n", "--image", "a", "--image", "b", NULL},
         2,
         "--image is given twice ('a' and 'b')"},
        {{"--backend", "docker", "--docker-network", "n", "--replica-cmd", "x", NULL}, 2,
         "--replica-cmd is an option of the local backend"},
        {{"--backend", "podman", NULL},
         2,
         "unknown backend 'podman' (this build has: local, docker, kubernetes)"},
        {{"--nats", cl_test_srv.url, "--backend", "docker", "--docker-network", network,
          "--docker-host", "unix:///tmp/cltest-no-engine-here.sock", NULL},
         1, "cannot reach the container engine at unix:///tmp/cltest-no-engine-here.sock"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *said = NULL;
        int code = run_manager_proc(cases[i].args, &said);
        if (code != cases[i].code || said == NULL || strstr(said, cases[i].text) == NULL)
            fail_msg("case %zu: exit %d (expected %d), said:\n%s\nexpected it to say: %s", i,
                     code, cases[i].code, said ? said : "(nothing)", cases[i].text);
        free(said);
    }
}

static int group_setup(void **state)
{
    char token[23];
    cl_bus_new_token(token);
    for (char *p = token; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    snprintf(run, sizeof(run), "%.8s", token);
    snprintf(network, sizeof(network), "cltest-%s-net", run);
    cl_err err;
    if (cl_docker_network_create(engine, network, NULL, &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return cl_test_nats_group_setup(state);
}

static int group_teardown(void **state)
{
    cl_err err;
    if (cl_docker_network_remove(engine, network, &err) != CL_OK)
        fprintf(stderr, "%s\n", err.msg);
    return cl_test_nats_group_teardown(state);
}

int main(void)
{
    int rc = cl_test_engine_open(&engine);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_replicas_run_as_labelled_containers_and_scale_1_3_1_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_removed_by_hand_is_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_container_killed_by_hand_is_removed_and_replaced,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_exiting_3_is_restarted_and_each_one_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_container_ignoring_sigterm_is_killed_and_removed_after_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopping_the_manager_removes_its_containers_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_killed_managers_replicas_keep_running_and_the_next_one_adopts_them, setup_bus,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_an_exited_or_unlabelled_leftover_is_removed_not_adopted, setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_of_manager_process_removes_its_containers,
                                        setup_bus, teardown),
        cmocka_unit_test_setup_teardown(
            test_heartbeats_match_by_replica_id_and_a_silent_container_is_replaced, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_container_that_cannot_start_shows_last_error_and_leaves_nothing, setup_bus,
            teardown),
        cmocka_unit_test_setup_teardown(test_resources_become_container_limits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_image_follows_the_runtime_and_the_models_own_image,
                                        setup_bus, teardown),
        cmocka_unit_test_setup_teardown(test_bad_docker_settings_are_clear_errors, setup_bus,
                                        teardown),
        cmocka_unit_test(test_manager_process_option_errors),
    };
    /* DOCKER_TEST_FILTER=test_a_killed* runs only the tests it matches. */
    const char *filter = getenv("DOCKER_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    cl_docker_free(engine);
    return rc;
}
