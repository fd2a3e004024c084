/* Integration tests of the container manager against a real nats-server:
 * model entries are written to the KV bucket, the manager runs in this
 * process with fake_replica as its replica program, and the tests count
 * the children it really has (from /proc), not only what it reports. */
#include <dirent.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_kv.h"
#include "cl_manager.h"
#include "cl_placement.h"
#include "cl_state.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"
#include "manager_test_util.h"
#include "cl_wire.h"

#ifndef FAKE_REPLICA
#error "FAKE_REPLICA must name the fake replica program"
#endif
#ifndef MANAGER_PROC
#error "MANAGER_PROC must name the manager test program"
#endif

typedef struct {
    char prefix[40];
    char log_dir[256];
    cl_bus *bus;
    cl_kv *kv;
    cl_manager *mgr;
    int saved_stderr; /* >= 0 while stderr is captured */
    char stderr_path[300];
} fixture;

/* ---- helpers ---------------------------------------------------------- */

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Live (not zombie) fake replicas whose parent is ppid and whose model
 * starts with model_prefix (NULL: any). */
static int live_replicas(int ppid, const char *model_prefix, int *pids, int max)
{
    int count = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        char state, comm[64];
        int parent;
        if (!cl_test_proc_stat(pid, &state, &parent, comm, sizeof(comm)) || parent != ppid ||
            state == 'Z' || strcmp(comm, "fake_replica") != 0)
            continue;
        if (model_prefix != NULL) {
            char path[64];
            snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
            size_t n = 0;
            char *cmd = cl_test_read_file(path, &n);
            if (cmd == NULL)
                continue;
            bool match = false;
            for (size_t i = 0; i + 1 < n; i += strlen(cmd + i) + 1) {
                if (strcmp(cmd + i, "--model") == 0) {
                    const char *m = cmd + i + strlen(cmd + i) + 1;
                    match = strncmp(m, model_prefix, strlen(model_prefix)) == 0;
                    break;
                }
            }
            free(cmd);
            if (!match)
                continue;
        }
        if (count < max)
            pids[count] = pid;
        count++;
    }
    closedir(d);
    return count;
}

static int count_replicas(const char *model_prefix)
{
    int pids[256];
    return live_replicas(getpid(), model_prefix, pids, 256);
}

/* Waits up to timeout_ms for count_replicas(model) == want. */
static bool wait_count(const char *model, int want, int timeout_ms)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    do {
        if (count_replicas(model) == want)
            return true;
        cl_sleep_ms(50);
    } while (cl_mono_us() < until);
    return count_replicas(model) == want;
}

/* Kills whatever fake replicas a failed test left behind. */
static void kill_leftovers(int ppid)
{
    int pids[256];
    int n = live_replicas(ppid, NULL, pids, 256);
    for (int i = 0; i < n && i < 256; i++) {
        kill(pids[i], SIGKILL);
        int st;
        waitpid(pids[i], &st, 0);
    }
}

static void put_model(fixture *fx, const char *name, const char *version, int64_t replicas)
{
    mt_put_model(fx->kv, name, version, replicas);
}

static void delete_model(fixture *fx, const char *name, const char *version)
{
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_model(key, name, version, &err), CL_OK);
    assert_int_equal(cl_kv_delete(fx->kv, key, &err), CL_OK);
}

/* Asks <p>.cm.<command> and returns the parsed reply. */
static cJSON *cm_request(fixture *fx, const char *command)
{
    return mt_cm_request(fx->bus, fx->prefix, command);
}

/* The status entry of model:version #n, or NULL (borrowed from list). */
static const cJSON *status_entry(const cJSON *list, const char *model, int n)
{
    return mt_status_entry(list, model, n);
}

static void capture_stderr(fixture *fx)
{
    snprintf(fx->stderr_path, sizeof(fx->stderr_path), "%s/manager-stderr.txt", fx->log_dir);
    fflush(stderr);
    fx->saved_stderr = dup(STDERR_FILENO);
    int fd = open(fx->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static void restore_stderr(fixture *fx)
{
    if (fx->saved_stderr < 0)
        return;
    fflush(stderr);
    dup2(fx->saved_stderr, STDERR_FILENO);
    close(fx->saved_stderr);
    fx->saved_stderr = -1;
}

/* ---- fixtures ----------------------------------------------------------- */

static int start_manager(fixture *fx, int grace_ms)
{
    cl_manager_opts o;
    cl_manager_opts_init(&o);
    o.log_dir = fx->log_dir;
    o.replica_cmd = FAKE_REPLICA;
    o.stop_grace_ms = grace_ms;
    cl_err err;
    cl_err_clear(&err);
    if (cl_manager_start(&fx->mgr, fx->bus, &o, &err) != CL_OK) {
        fprintf(stderr, "cl_manager_start: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int setup_bus(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    fx->saved_stderr = -1;
    char token[23];
    cl_bus_new_token(token);
    snprintf(fx->prefix, sizeof(fx->prefix), "t%s", token);
    snprintf(fx->log_dir, sizeof(fx->log_dir), "/tmp/cl-manager-test-XXXXXX");
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
    return start_manager(*state, 1000);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    restore_stderr(fx);
    cl_manager_free(fx->mgr);
    kill_leftovers(getpid());
    cl_kv_free(fx->kv);
    cl_bus_free(fx->bus);
    rm_rf(fx->log_dir);
    free(fx);
    return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_scaling_0_2_1_0_starts_and_stops_children(void **state)
{
    fixture *fx = *state;
    put_model(fx, "scale", "1", 0);
    cl_sleep_ms(1200);
    assert_int_equal(count_replicas("scale"), 0);

    put_model(fx, "scale", "1", 2);
    assert_true(wait_count("scale", 2, 5000));
    cl_sleep_ms(1200); /* and no more than that */
    assert_int_equal(count_replicas("scale"), 2);

    cJSON *st = cm_request(fx, "status");
    assert_int_equal(cJSON_GetArraySize(st), 2);
    for (int n = 0; n < 2; n++) {
        const cJSON *e = status_entry(st, "scale", n);
        assert_non_null(e);
        assert_string_equal(cJSON_GetObjectItem(e, "version")->valuestring, "1");
        assert_string_equal(cJSON_GetObjectItem(e, "state")->valuestring, "running");
        assert_true(cJSON_GetObjectItem(e, "pid")->valueint > 0);
        assert_int_equal(cJSON_GetObjectItem(e, "restarts")->valueint, 0);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "started_at")));
        char want[512];
        snprintf(want, sizeof(want), "/scale_1-%d.log", n);
        const char *log = cJSON_GetObjectItem(e, "log_file")->valuestring;
        assert_non_null(strstr(log, want));
        char *text = cl_test_read_file(log, NULL);
        assert_non_null(text);
        assert_non_null(strstr(text, "fake replica start scale:1"));
        free(text);
    }
    cJSON_Delete(st);

    cJSON *logs = cm_request(fx, "logs");
    const cJSON *files = cJSON_GetObjectItem(logs, "files");
    assert_int_equal(cJSON_GetArraySize(files), 2);
    assert_non_null(strstr(cJSON_GetArrayItem(files, 0)->valuestring, "/scale_1-0.log"));
    assert_non_null(strstr(cJSON_GetArrayItem(files, 1)->valuestring, "/scale_1-1.log"));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(logs, "log_dir")));
    cJSON_Delete(logs);

    put_model(fx, "scale", "1", 1);
    assert_true(wait_count("scale", 1, 5000));
    cl_sleep_ms(1200);
    assert_int_equal(count_replicas("scale"), 1);

    put_model(fx, "scale", "1", 0);
    assert_true(wait_count("scale", 0, 5000));
    /* The status catches up at the manager's next pass. */
    int entries = -1;
    for (int i = 0; i < 40 && entries != 0; i++) {
        st = cm_request(fx, "status");
        entries = cJSON_GetArraySize(st);
        cJSON_Delete(st);
        if (entries != 0)
            cl_sleep_ms(50);
    }
    assert_int_equal(entries, 0);
}

static void test_killed_replica_is_replaced(void **state)
{
    fixture *fx = *state;
    put_model(fx, "victim", "7", 1);
    assert_true(wait_count("victim", 1, 5000));
    int pids[4];
    assert_int_equal(live_replicas(getpid(), "victim", pids, 4), 1);
    int old = pids[0];

    assert_int_equal(kill(old, SIGKILL), 0);
    uint64_t until = cl_mono_us() + 5000000u;
    int now_pid = old;
    while (cl_mono_us() < until) {
        if (live_replicas(getpid(), "victim", pids, 4) == 1 && pids[0] != old) {
            now_pid = pids[0];
            break;
        }
        cl_sleep_ms(50);
    }
    assert_int_not_equal(now_pid, old);

    cJSON *st = cm_request(fx, "status");
    const cJSON *e = status_entry(st, "victim", 0);
    assert_non_null(e);
    assert_int_equal(cJSON_GetObjectItem(e, "restarts")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(e, "last_exit_code")->valueint, -9);
    assert_non_null(strstr(cJSON_GetObjectItem(e, "last_exit")->valuestring, "signal 9"));
    cJSON_Delete(st);
}

/* Start times (monotonic µs) the fake replica wrote into a log file. */
static int start_times(const char *path, long long *out, int max)
{
    char *text = cl_test_read_file(path, NULL);
    if (text == NULL)
        return 0;
    int n = 0;
    for (char *p = text; (p = strstr(p, "mono_us=")) != NULL; p += 8) {
        if (n < max)
            out[n] = atoll(p + 8);
        n++;
    }
    free(text);
    return n;
}

static void test_replica_exiting_3_is_restarted_with_backoff_and_logged(void **state)
{
    fixture *fx = *state;
    capture_stderr(fx);
    put_model(fx, "crash", "1", 1);
    char log[512];
    snprintf(log, sizeof(log), "%s/crash_1-0.log", fx->log_dir);

    /* Starts at about 0, 0.5, 1.5 and 3.5 s: wait for the fourth. */
    long long t[16];
    uint64_t until = cl_mono_us() + 9000000u;
    while (start_times(log, t, 16) < 4 && cl_mono_us() < until)
        cl_sleep_ms(100);
    int n = start_times(log, t, 16);
    restore_stderr(fx);
    assert_true(n >= 4);
    /* Each wait at least the backoff (0.5 s, 1 s, 2 s) and not far more. */
    long long expect[] = {500000, 1000000, 2000000};
    for (int i = 0; i < 3; i++) {
        long long gap = t[i + 1] - t[i];
        if (gap < expect[i] - 50000 || gap > expect[i] + 1500000)
            fail_msg("restart %d came %lld us after the previous start, expected about %lld", i + 1,
                     gap, expect[i]);
    }

    cJSON *st = cm_request(fx, "status");
    const cJSON *e = status_entry(st, "crash", 0);
    assert_non_null(e);
    assert_int_equal(cJSON_GetObjectItem(e, "last_exit_code")->valueint, 3);
    assert_true(cJSON_GetObjectItem(e, "restarts")->valueint >= 3);
    cJSON_Delete(st);

    /* The manager said why, with the replica's last words. */
    char *said = cl_test_read_file(fx->stderr_path, NULL);
    assert_non_null(said);
    if (strstr(said, "exit code 3") == NULL || strstr(said, "cannot load model crash:1: boom") == NULL)
        fail_msg("manager log lacks the cause:\n%s", said);
    free(said);
}

static void test_deleting_a_model_version_stops_only_its_replicas(void **state)
{
    fixture *fx = *state;
    put_model(fx, "gone", "1", 2);
    put_model(fx, "kept", "1", 1);
    assert_true(wait_count("gone", 2, 5000));
    assert_true(wait_count("kept", 1, 5000));

    delete_model(fx, "gone", "1");
    assert_true(wait_count("gone", 0, 5000));
    cl_sleep_ms(700);
    assert_int_equal(count_replicas("kept"), 1);

    cJSON *st = cm_request(fx, "status");
    assert_int_equal(cJSON_GetArraySize(st), 1);
    assert_non_null(status_entry(st, "kept", 0));
    cJSON_Delete(st);
}

static void test_replica_ignoring_sigterm_is_killed_after_grace(void **state)
{
    fixture *fx = *state; /* grace 1000 ms */
    put_model(fx, "stubborn", "1", 1);
    assert_true(wait_count("stubborn", 1, 5000));
    cl_sleep_ms(300); /* let it install its SIG_IGN */
    uint64_t t0 = cl_mono_us();
    put_model(fx, "stubborn", "1", 0);
    cl_sleep_ms(600);
    assert_int_equal(count_replicas("stubborn"), 1); /* still there: ignores SIGTERM */
    assert_true(wait_count("stubborn", 0, 4000));
    assert_true(cl_mono_us() - t0 >= 900000u);
}

static void test_hung_replica_is_killed_and_replaced(void **state)
{
    fixture *fx = *state;
    put_model(fx, "hang", "1", 1);
    assert_true(wait_count("hang", 1, 5000));
    int pids[4];
    assert_int_equal(live_replicas(getpid(), "hang", pids, 4), 1);
    int first = pids[0];

    /* Its heartbeats show in the status. */
    bool seen_ready = false;
    for (int i = 0; i < 40 && !seen_ready; i++) {
        cJSON *st = cm_request(fx, "status");
        const cJSON *e = status_entry(st, "hang", 0);
        const cJSON *hb = e ? cJSON_GetObjectItem(e, "heartbeat") : NULL;
        seen_ready = cJSON_IsString(hb) && strcmp(hb->valuestring, "ready") == 0 &&
                     cJSON_GetObjectItem(e, "replica_id")->valueint == first;
        cJSON_Delete(st);
        if (!seen_ready)
            cl_sleep_ms(100);
    }
    assert_true(seen_ready);

    /* Silent from about 3 s on: gone for the table at 6.5 s, killed at about
     * 10 s, restarted 0.5 s later. */
    uint64_t t0 = cl_mono_us();
    int now_pid = first;
    while (cl_mono_us() - t0 < 20000000u) {
        if (live_replicas(getpid(), "hang", pids, 4) == 1 && pids[0] != first) {
            now_pid = pids[0];
            break;
        }
        cl_sleep_ms(100);
    }
    assert_int_not_equal(now_pid, first);
    assert_true(cl_mono_us() - t0 >= 4000000u); /* not before it went silent */
    cJSON *st = cm_request(fx, "status");
    const cJSON *e = status_entry(st, "hang", 0);
    assert_non_null(e);
    assert_int_equal(cJSON_GetObjectItem(e, "last_exit_code")->valueint, -9);
    cJSON_Delete(st);
}

static void test_manager_answers_the_nats_service_api(void **state)
{
    fixture *fx = *state;
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(fx->bus, "$SRV.INFO.clipper-manager", "", 0, 3000, &reply),
                     CL_OK);
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "clipper-manager");
    char *text = cJSON_PrintUnformatted(j);
    char want[128];
    snprintf(want, sizeof(want), "%s.cm.status", fx->prefix);
    if (strstr(text, want) == NULL)
        fail_msg("INFO does not list %s: %s", want, text);
    free(text);
    cJSON_Delete(j);
}

static void test_missing_replica_program_is_a_clear_error(void **state)
{
    fixture *fx = *state;
    cl_manager_opts o;
    cl_manager_opts_init(&o);
    o.log_dir = fx->log_dir;
    o.replica_cmd = "/nonexistent/replica-program";
    cl_err err;
    cl_err_clear(&err);
    cl_manager *m = NULL;
    assert_int_equal(cl_manager_start(&m, fx->bus, &o, &err), CL_ERR_NOT_FOUND);
    assert_null(m);
    assert_non_null(strstr(err.msg, "/nonexistent/replica-program"));

    o.replica_cmd = FAKE_REPLICA;
    o.backend = "nomad";
    assert_int_equal(cl_manager_start(&m, fx->bus, &o, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown backend 'nomad'"));

    /* The docker backend wants its network before it asks the engine anything. */
    o.backend = "docker";
    assert_int_equal(cl_manager_start(&m, fx->bus, &o, &err), CL_ERR_INVALID);
    assert_null(m);
    assert_non_null(strstr(err.msg, "--docker-network"));
}

static void test_status_ignores_a_garbage_request_body(void **state)
{
    fixture *fx = *state;
    put_model(fx, "body", "1", 1);
    assert_true(wait_count("body", 1, 5000));
    char subject[256];
    snprintf(subject, sizeof(subject), "%s.cm.status", fx->prefix);
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(fx->bus, subject, "\x01garbage{", 9, 3000, &reply), CL_OK);
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    assert_true(cJSON_IsArray(j));
    assert_non_null(status_entry(j, "body", 0));
    cJSON_Delete(j);
}

/* The manager as a process: SIGTERM stops every replica before it exits 0. */
static void test_sigterm_of_manager_process_leaves_no_replica(void **state)
{
    fixture *fx = *state; /* no in-process manager for this one */
    put_model(fx, "orphan", "1", 2);
    char *argv[] = {MANAGER_PROC, "--nats", cl_test_srv.url, "--prefix", fx->prefix,
                    "--log-dir", fx->log_dir, "--replica-cmd", FAKE_REPLICA, NULL};
    pid_t mgr = cl_test_spawn(argv);
    assert_true(mgr > 0);
    int pids[8];
    int n = 0;
    uint64_t until = cl_mono_us() + 8000000u;
    while ((n = live_replicas(mgr, "orphan", pids, 8)) < 2 && cl_mono_us() < until)
        cl_sleep_ms(50);
    if (n != 2) {
        cl_test_kill(mgr);
        fail_msg("the manager process started %d replicas, expected 2", n);
    }
    assert_int_equal(kill(mgr, SIGTERM), 0);
    int code = cl_test_wait_exit(mgr, 10000);
    if (code < 0) {
        cl_test_kill(mgr);
        kill(pids[0], SIGKILL);
        kill(pids[1], SIGKILL);
        fail_msg("the manager did not exit within 10 s of SIGTERM");
    }
    assert_int_equal(code, 0); /* exited by itself (128 + n: killed by signal n) */
    for (int i = 0; i < 2; i++) {
        errno = 0;
        if (kill(pids[i], 0) == 0 || errno != ESRCH) {
            kill(pids[i], SIGKILL);
            fail_msg("replica pid %d outlived its manager", pids[i]);
        }
    }
}

static void test_manager_process_rejects_unknown_backend(void **state)
{
    (void)state;
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        execl(MANAGER_PROC, MANAGER_PROC, "--backend", "nomad", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
}

/* ---- several managers: placement ----------------------------------------- */

/* The share function spreads evenly, every replica somewhere, and a host
 * leaving moves only what it ran. */
static void test_place_share_spreads_evenly_and_moves_little(void **state)
{
    (void)state;
    const char *hosts[] = {"h1", "h2", "h3"}, *ids[] = {"a", "b", "c"};
    for (unsigned wanted = 0; wanted <= 7; wanted++) {
        unsigned sum = 0, lo = UINT32_MAX, hi = 0;
        for (size_t me = 0; me < 3; me++) {
            unsigned k = cl_place_share("m", "1", wanted, hosts, ids, 3, me);
            sum += k;
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        }
        assert_int_equal(sum, wanted);
        assert_true(hi - lo <= 1);
    }
    /* h3 leaves: h1 and h2 each keep at least what they had. */
    for (unsigned wanted = 1; wanted <= 6; wanted++) {
        for (size_t me = 0; me < 2; me++) {
            unsigned before = cl_place_share("m", "1", wanted, hosts, ids, 3, me);
            unsigned after = cl_place_share("m", "1", wanted, hosts, ids, 2, me);
            assert_true(after >= before);
        }
    }
    /* Versions of one replica start on different hosts. */
    int on[3] = {0, 0, 0};
    for (int v = 0; v < 60; v++) {
        char version[8];
        snprintf(version, sizeof(version), "%d", v);
        for (size_t me = 0; me < 3; me++)
            on[me] += (int)cl_place_share("m", version, 1, hosts, ids, 3, me);
    }
    for (size_t me = 0; me < 3; me++)
        assert_true(on[me] >= 10);
    assert_int_equal(cl_place_share("m", "1", 3, hosts, ids, 0, 0), 0);
}

typedef struct {
    int running[2]; /* per manager host "ha", "hb" */
    bool draining[2];
    int answers;
} placement_view;

/* Every manager's answer to <p>.cm.hosts (gathered for 300 ms), parsed:
 * an array (empty when none answered); the caller deletes it. */
static cJSON *hosts_replies(fixture *fx)
{
    cJSON *all = cJSON_CreateArray();
    char subject[256];
    snprintf(subject, sizeof(subject), "%s.cm.hosts", fx->prefix);
    cl_msg *out[8];
    size_t n = 0;
    if (cl_bus_gather(fx->bus, subject, "{}", 2, 300, out, 8, &n, NULL, NULL) != CL_OK)
        return all;
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_ParseWithLength(cl_msg_data(out[i]), cl_msg_len(out[i]));
        if (j != NULL)
            cJSON_AddItemToArray(all, j);
        cl_msg_free(out[i]);
    }
    return all;
}

/* What each manager says it runs of model:1 (<p>.cm.hosts, gathered). */
static placement_view hosts_view(fixture *fx, const char *model)
{
    placement_view v = {{-1, -1}, {false, false}, 0};
    cJSON *all = hosts_replies(fx);
    const cJSON *j;
    cJSON_ArrayForEach(j, all)
    {
        const cJSON *host = cJSON_GetObjectItem(j, "host");
        int who = cJSON_IsString(host) ? (strcmp(host->valuestring, "ha") == 0   ? 0
                                          : strcmp(host->valuestring, "hb") == 0 ? 1
                                                                                  : -1)
                                       : -1;
        if (who >= 0) {
            v.answers++;
            v.draining[who] = cJSON_IsTrue(cJSON_GetObjectItem(j, "draining"));
            v.running[who] = 0;
            const cJSON *ver;
            cJSON_ArrayForEach(ver, cJSON_GetObjectItem(j, "versions"))
            {
                const cJSON *m = cJSON_GetObjectItem(ver, "model");
                if (cJSON_IsString(m) && strcmp(m->valuestring, model) == 0)
                    v.running[who] = cJSON_GetObjectItem(ver, "running")->valueint;
            }
        }
    }
    cJSON_Delete(all);
    return v;
}

static bool wait_split(fixture *fx, const char *model, int a, int b, int timeout_ms)
{
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    do {
        placement_view v = hosts_view(fx, model);
        if (v.running[0] == a && v.running[1] == b && count_replicas(model) == a + (b > 0 ? b : 0))
            return true;
        cl_sleep_ms(50);
    } while (cl_mono_us() < until);
    placement_view v = hosts_view(fx, model);
    fprintf(stderr, "wanted %d + %d, managers say %d + %d, %d processes\n", a, b, v.running[0],
            v.running[1], count_replicas(model));
    return false;
}

static cl_manager *start_named(fixture *fx, const char *host)
{
    cl_manager_opts o;
    cl_manager_opts_init(&o);
    o.log_dir = fx->log_dir;
    o.replica_cmd = FAKE_REPLICA;
    o.stop_grace_ms = 1000;
    o.host_name = host;
    cl_err err;
    cl_manager *m = NULL;
    if (cl_manager_start(&m, fx->bus, &o, &err) != CL_OK)
        fail_msg("cl_manager_start: %s", err.msg);
    return m;
}

static int setup_ha(void **state)
{
    if (setup_bus(state) != 0)
        return -1;
    fixture *fx = *state;
    fx->mgr = start_named(fx, "ha");
    return 0;
}

/* Sends <p>.cm.drain body and returns the first answer (NULL: none). */
static cJSON *drain_request(fixture *fx, const char *body)
{
    char subject[256];
    snprintf(subject, sizeof(subject), "%s.cm.drain", fx->prefix);
    cl_msg *reply = NULL;
    if (cl_bus_request(fx->bus, subject, body, strlen(body), 1000, &reply) != CL_OK)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    return j;
}

/* Two managers (hosts ha and hb) share a version's replicas; when one
 * goes, the other runs them all; when it comes back they share again, and
 * the version never has fewer ready replicas than it wants while they
 * move; a drained host gives its replicas away first. */
static void test_two_managers_share_take_over_and_drain(void **state)
{
    fixture *fx = *state;
    cl_manager *b = start_named(fx, "hb");
    put_model(fx, "hbshare", "1", 4);
    assert_true(wait_split(fx, "hbshare", 2, 2, 8000));

    /* hb stops: ha runs all four. */
    uint64_t t0 = cl_mono_us();
    cl_manager_free(b);
    assert_true(wait_split(fx, "hbshare", 4, -1, 8000));
    print_message("FIGURE placement: the other host runs all 4 replicas %.2f s after one "
                  "manager stopped\n",
                  (double)(cl_mono_us() - t0) / 1e6);

    /* hb comes back: 2 + 2 again, never fewer than 4 serving meanwhile. */
    b = start_named(fx, "hb");
    int least = 99;
    uint64_t until = cl_mono_us() + 10000000u;
    bool split = false;
    while (!split && cl_mono_us() < until) {
        placement_view v = hosts_view(fx, "hbshare");
        int n = count_replicas("hbshare");
        least = n < least ? n : least;
        split = v.running[0] == 2 && v.running[1] == 2 && n == 4;
        cl_sleep_ms(20);
    }
    if (!split) {
        placement_view v = hosts_view(fx, "hbshare");
        fprintf(stderr, "after hb came back: managers say %d + %d, %d processes\n",
                v.running[0], v.running[1], count_replicas("hbshare"));
        cJSON *st = cm_request(fx, "hosts");
        char *t = cJSON_Print(st);
        fprintf(stderr, "%s\n", t);
        free(t);
        cJSON_Delete(st);
    }
    assert_true(split);
    if (least < 4)
        fprintf(stderr, "least: %d\n", least);
    assert_true(least >= 4);

    /* A drain of hb: ha takes its two first, then hb has none. */
    cJSON *r = drain_request(fx, "{\"host\": \"hb\"}");
    assert_non_null(r);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "draining")));
    cJSON_Delete(r);
    assert_true(wait_split(fx, "hbshare", 4, 0, 8000));
    placement_view v = hosts_view(fx, "hbshare");
    assert_true(v.draining[1]);
    /* Undrained, it takes its share again. */
    r = drain_request(fx, "{\"host\": \"hb\", \"drain\": false}");
    assert_non_null(r);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "draining")));
    cJSON_Delete(r);
    assert_true(wait_split(fx, "hbshare", 2, 2, 8000));

    /* Bad requests are answered with what was wrong; an unknown host by nobody. */
    r = drain_request(fx, "{\"host\": 7}");
    assert_non_null(r);
    assert_non_null(strstr(cJSON_GetObjectItem(r, "error")->valuestring, "host"));
    cJSON_Delete(r);
    r = drain_request(fx, "{\"host\": \"hb\", \"surprise\": 1}");
    assert_non_null(r);
    assert_non_null(strstr(cJSON_GetObjectItem(r, "error")->valuestring, "surprise"));
    cJSON_Delete(r);
    assert_null(drain_request(fx, "{\"host\": \"nowhere\"}"));

    cl_manager_free(b);
    assert_true(wait_split(fx, "hbshare", 4, -1, 8000));
    /* The last manager taking replicas cannot drain. */
    r = drain_request(fx, "{\"host\": \"ha\"}");
    assert_non_null(r);
    assert_non_null(strstr(cJSON_GetObjectItem(r, "error")->valuestring, "no other manager"));
    cJSON_Delete(r);
}

/* host's "cannot_run" entry for model:1 in <p>.cm.hosts (a new object,
 * or NULL). */
static cJSON *cannot_entry(fixture *fx, const char *host, const char *model)
{
    cJSON *all = hosts_replies(fx), *found = NULL;
    const cJSON *j;
    cJSON_ArrayForEach(j, all)
    {
        const cJSON *h = cJSON_GetObjectItem(j, "host"), *e;
        if (found == NULL && cJSON_IsString(h) && strcmp(h->valuestring, host) == 0) {
            cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "cannot_run"))
            {
                const cJSON *m = cJSON_GetObjectItem(e, "model");
                if (found == NULL && cJSON_IsString(m) && strcmp(m->valuestring, model) == 0)
                    found = cJSON_Duplicate(e, true);
            }
        }
    }
    cJSON_Delete(all);
    return found;
}

/* A version whose replicas cannot load the model on one host (hb) runs on
 * the hosts that can (ha), and hb says why in <p>.cm.hosts; a version no
 * host can run is still tried on every host rather than on none. */
static void test_a_host_that_cannot_run_a_version_leaves_it_to_those_that_can(void **state)
{
    fixture *fx = *state;
    cl_manager *b = start_named(fx, "hb");
    put_model(fx, "hbpicky", "1", 4);
    assert_true(wait_split(fx, "hbpicky", 4, 0, 15000));
    cJSON *e = cannot_entry(fx, "hb", "hbpicky");
    assert_non_null(e);
    assert_string_equal(cJSON_GetObjectItem(e, "version")->valuestring, "1");
    assert_non_null(strstr(cJSON_GetObjectItem(e, "why")->valuestring, "cannot load"));
    assert_true(cJSON_GetObjectItem(e, "retry_in_s")->valuedouble > 60);
    cJSON_Delete(e);
    assert_null(cannot_entry(fx, "ha", "hbpicky"));

    /* Nobody can: both say so, and both keep trying their share. */
    put_model(fx, "crashboth", "1", 2);
    uint64_t until = cl_mono_us() + 15000000u;
    cJSON *ea = NULL, *eb = NULL;
    while ((ea == NULL || eb == NULL) && cl_mono_us() < until) {
        if (ea == NULL)
            ea = cannot_entry(fx, "ha", "crashboth");
        if (eb == NULL)
            eb = cannot_entry(fx, "hb", "crashboth");
        cl_sleep_ms(100);
    }
    assert_non_null(ea);
    assert_non_null(eb);
    cJSON_Delete(ea);
    cJSON_Delete(eb);
    cJSON *st = cm_request(fx, "hosts");
    assert_non_null(st);
    int share = -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(st, "versions"))
    {
        const cJSON *m = cJSON_GetObjectItem(v, "model");
        if (cJSON_IsString(m) && strcmp(m->valuestring, "crashboth") == 0)
            share = cJSON_GetObjectItem(v, "share")->valueint;
    }
    cJSON_Delete(st);
    assert_int_equal(share, 1);
    /* hbpicky stays where it runs. */
    assert_true(wait_split(fx, "hbpicky", 4, 0, 2000));
    cl_manager_free(b);
}

/* Hellos are read from a bus anyone with the manager role may write: a
 * malformed one is ignored, and a "cannot" list is bounded and read
 * entry by entry (junk entries skipped). A peer that says it cannot run a
 * version gets none of it. */
static void test_hostile_hellos_are_bounded_and_ignored(void **state)
{
    fixture *fx = *state;
    char subject[256];
    snprintf(subject, sizeof(subject), "%s.cm.hello", fx->prefix);
    const char *junk[] = {
        "", "{", "[]", "{\"host\": 1, \"id\": \"x\", \"draining\": false}",
        "{\"host\": \"h\\u0001\", \"id\": \"abc\", \"draining\": false}",
        "{\"host\": \"hz\", \"id\": \"abc\"}",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(cl_bus_publish(fx->bus, subject, junk[i], strlen(junk[i])), CL_OK);
    /* A peer "hx" that cannot run hbnot:1, among 200 entries of junk and
     * others: it is heard, and ha runs both replicas of hbnot:1. */
    size_t cap = 64 * 1024, n = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    n += (size_t)snprintf(body + n, cap - n,
                          "{\"host\": \"hx\", \"id\": \"peerx\", \"draining\": false, "
                          "\"cannot\": [{\"model\": \"hbnot\", \"version\": \"1\"}");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(body + n, cap - n, ", %s",
                              i % 2 ? "7" : "{\"model\": \"m\", \"version\": 3}");
    n += (size_t)snprintf(body + n, cap - n, "]}");
    put_model(fx, "hbnot", "1", 2);
    uint64_t until = cl_mono_us() + 8000000u;
    bool heard = false, all_here = false;
    while (!(heard && all_here) && cl_mono_us() < until) {
        assert_int_equal(cl_bus_publish(fx->bus, subject, body, n), CL_OK);
        cJSON *st = cm_request(fx, "hosts");
        heard = all_here = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(st, "managers"))
        {
            const cJSON *h = cJSON_GetObjectItem(e, "host");
            heard = heard || (cJSON_IsString(h) && strcmp(h->valuestring, "hx") == 0);
        }
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(st, "versions"))
        {
            const cJSON *m = cJSON_GetObjectItem(e, "model");
            if (cJSON_IsString(m) && strcmp(m->valuestring, "hbnot") == 0)
                all_here = cJSON_GetObjectItem(e, "share")->valueint == 2;
        }
        cJSON_Delete(st);
        cl_sleep_ms(100);
    }
    free(body);
    assert_true(heard);
    assert_true(all_here);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scaling_0_2_1_0_starts_and_stops_children, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_killed_replica_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_exiting_3_is_restarted_with_backoff_and_logged,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleting_a_model_version_stops_only_its_replicas,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_ignoring_sigterm_is_killed_after_grace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hung_replica_is_killed_and_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_manager_answers_the_nats_service_api, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_replica_program_is_a_clear_error, setup_bus,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_status_ignores_a_garbage_request_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_of_manager_process_leaves_no_replica,
                                        setup_bus, teardown),
        cmocka_unit_test(test_manager_process_rejects_unknown_backend),
        cmocka_unit_test(test_place_share_spreads_evenly_and_moves_little),
        cmocka_unit_test_setup_teardown(test_two_managers_share_take_over_and_drain, setup_ha,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_host_that_cannot_run_a_version_leaves_it_to_those_that_can, setup_ha,
            teardown),
        cmocka_unit_test_setup_teardown(test_hostile_hellos_are_bounded_and_ignored, setup_ha,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, cl_test_nats_group_setup, cl_test_nats_group_teardown);
}
