/* Integration tests of the kubernetes backend against a REAL Kubernetes
 * cluster (KUBECONFIG; `bash images/kube/kube.sh start` makes one on this
 * machine): no mock of the API server anywhere; a test that cannot reach
 * it fails.
 *
 * The manager runs in this process with --backend kubernetes; replica pods
 * run the real replica in the project's image (localhost/clipper/python-
 * closure:latest, imported into the node by `kube.sh images`) and join a
 * nats-server this test starts on the node's address, so they become ready
 * through their own heartbeats and probes. Every count is read from the
 * API server by label, not only from what the manager reports. Each test
 * has a cluster name of its own; all run in one namespace made for the run
 * and deleted after it. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cl_artifact.h"
#include "cl_backend.h"
#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_kube.h"
#include "cl_kv.h"
#include "cl_manager.h"
#include "cl_state.h"
#include "cl_test_nats.h"
#include "cl_test_util.h"
#include "cl_wire.h"
#include "manager_test_util.h"
#include "replica_test_util.h"

#define LABEL_CLUSTER "ai.clipper.container.label"
#define LABEL_MODEL "ai.clipper.model_container.label"
#define MISSING_IMAGE "localhost/clipper/does-not-exist:latest"

static cl_kube *api;
static char kubeconfig[1024];
static char ns[64];
static char node_addr[64];
static cl_test_nats srv;
static void *sum_artifact;
static size_t sum_len;
static int clusters_made;

typedef struct {
    char cluster[48];
    char prefix[48];
    cl_bus *bus;
    cl_kv *kv;
    cl_manager *mgr;
} fixture;

/* ---- the API, as the test sees it ----------------------------------------- */

static cJSON *api_get(const char *path)
{
    cJSON *reply = NULL;
    cl_err err;
    cl_status s = cl_kube_request(api, "GET", path, NULL, &reply, "test GET", &err);
    if (s != CL_OK)
        fail_msg("GET %s: %s", path, err.msg);
    return reply;
}

/* The pods of a cluster (and model, when not NULL), by label. */
static cJSON *list_pods(const fixture *fx, const char *model)
{
    char sel[300], path[700];
    if (model != NULL)
        snprintf(sel, sizeof(sel), "%s%%3D%s%%2C%s%%3D%s_1", LABEL_CLUSTER, fx->cluster,
                 LABEL_MODEL, model);
    else
        snprintf(sel, sizeof(sel), "%s%%3D%s", LABEL_CLUSTER, fx->cluster);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=%s", ns, sel);
    cJSON *list = api_get(path);
    cJSON *items = cJSON_DetachItemFromObject(list, "items");
    cJSON_Delete(list);
    return items;
}

static bool pod_ready(const cJSON *pod)
{
    if (cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "metadata"), "deletionTimestamp"))
        return false;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "status"), "conditions"))
    {
        const cJSON *t = cJSON_GetObjectItem(c, "type"), *s = cJSON_GetObjectItem(c, "status");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "Ready") == 0)
            return cJSON_IsString(s) && strcmp(s->valuestring, "True") == 0;
    }
    return false;
}

static const char *pod_name(const cJSON *pod)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "metadata"), "name")->valuestring;
}

/* Pods of model (Ready ones when ready_only) as the API lists them. */
static int count_pods(const fixture *fx, const char *model, bool ready_only)
{
    cJSON *items = list_pods(fx, model);
    int n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, items)
    {
        bool deleting =
            cJSON_GetObjectItem(cJSON_GetObjectItem(p, "metadata"), "deletionTimestamp") != NULL;
        n += ready_only ? pod_ready(p) : !deleting;
    }
    cJSON_Delete(items);
    return n;
}

/* Waits until model has exactly want Ready pods and no others. */
static void wait_ready_pods(const fixture *fx, const char *model, int want, int timeout_s)
{
    uint64_t deadline = cl_mono_us() + (uint64_t)timeout_s * 1000000u;
    int ready = -1, all = -1;
    while (cl_mono_us() < deadline) {
        ready = count_pods(fx, model, true);
        all = count_pods(fx, model, false);
        if (ready == want && all == want)
            return;
        cl_sleep_ms(250);
    }
    fail_msg("model %s of cluster %s: wanted %d ready pods, have %d ready of %d after %d s",
             model, fx->cluster, want, ready, all, timeout_s);
}

static cJSON *get_deployment(const fixture *fx, const char *model, cl_status *st)
{
    char path[600];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/%s-1-at-%s", ns, model,
             fx->cluster);
    cJSON *reply = NULL;
    cl_err err;
    *st = cl_kube_request(api, "GET", path, NULL, &reply, "test GET deployment", &err);
    return reply;
}

static void delete_pod(const char *name, bool now)
{
    char path[600];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s%s", ns, name,
             now ? "?gracePeriodSeconds=0" : "");
    cl_err err;
    cl_status s = cl_kube_request(api, "DELETE", path, NULL, NULL, "test DELETE pod", &err);
    if (s != CL_OK)
        fail_msg("deleting pod %s: %s", name, err.msg);
}

/* ---- the manager's view ---------------------------------------------------- */

/* The cm.status rows of model (cJSON array, delete it). */
static cJSON *status_rows(const fixture *fx, const char *model)
{
    cJSON *all = mt_cm_request(fx->bus, fx->prefix, "status");
    cJSON *rows = cJSON_CreateArray();
    const cJSON *o;
    cJSON_ArrayForEach(o, all)
    {
        const cJSON *m = cJSON_GetObjectItem(o, "model");
        if (cJSON_IsString(m) && strcmp(m->valuestring, model) == 0)
            cJSON_AddItemToArray(rows, cJSON_Duplicate(o, true));
    }
    cJSON_Delete(all);
    return rows;
}

static const char *row_str(const cJSON *row, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(row, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Waits until some row of model has key containing needle; returns a copy. */
static cJSON *wait_row(const fixture *fx, const char *model, const char *key, const char *needle,
                       int min_failures, int timeout_s)
{
    uint64_t deadline = cl_mono_us() + (uint64_t)timeout_s * 1000000u;
    char last[2000] = "";
    while (cl_mono_us() < deadline) {
        cJSON *rows = status_rows(fx, model);
        const cJSON *r;
        cJSON_ArrayForEach(r, rows)
        {
            const char *v = row_str(r, key);
            const cJSON *f = cJSON_GetObjectItem(r, "start_failures");
            if (v != NULL && strstr(v, needle) != NULL &&
                (min_failures == 0 || (cJSON_IsNumber(f) && f->valueint >= min_failures))) {
                cJSON *copy = cJSON_Duplicate(r, true);
                cJSON_Delete(rows);
                return copy;
            }
        }
        char *text = cJSON_PrintUnformatted(rows);
        snprintf(last, sizeof(last), "%s", text ? text : "");
        free(text);
        cJSON_Delete(rows);
        cl_sleep_ms(250);
    }
    fail_msg("no cm.status row of %s has %s containing '%s' after %d s; rows: %s", model, key,
             needle, timeout_s, last);
    return NULL;
}

/* Waits until want rows of model are running with heartbeat "ready". */
static void wait_ready_rows(const fixture *fx, const char *model, int want, int timeout_s)
{
    uint64_t deadline = cl_mono_us() + (uint64_t)timeout_s * 1000000u;
    int ready = -1;
    while (cl_mono_us() < deadline) {
        cJSON *rows = status_rows(fx, model);
        ready = 0;
        int running = 0;
        const cJSON *r;
        cJSON_ArrayForEach(r, rows)
        {
            const char *st = row_str(r, "state"), *hb = row_str(r, "heartbeat");
            running += st && strcmp(st, "running") == 0;
            ready += st && strcmp(st, "running") == 0 && hb && strcmp(hb, "ready") == 0 &&
                     cJSON_IsNumber(cJSON_GetObjectItem(r, "replica_id"));
        }
        cJSON_Delete(rows);
        if (ready == want && running == want)
            return;
        cl_sleep_ms(250);
    }
    fail_msg("model %s: wanted %d rows running and ready in cm.status, have %d after %d s", model,
             want, ready, timeout_s);
}

/* ---- fixtures ------------------------------------------------------------- */

static void put_sum_model(fixture *fx, const char *model, int64_t replicas,
                          const char *container_name, const char *resources)
{
    cl_err err;
    char digest[CL_SHA256_HEX] = "";
    assert_int_equal(cl_artifact_put(fx->bus, model, "1", sum_artifact, sum_len, digest, &err),
                     CL_OK);
    cl_model m = {.name = (char *)model,
                  .version = "1",
                  .input_type = CL_INPUT_DOUBLES,
                  .container_name = (char *)(container_name ? container_name : "NO_CONTAINER"),
                  .model_data_path = "DEPRECATED",
                  .batch_size = -1,
                  .num_replicas = replicas,
                  .runtime = "python-closure",
                  .artifact_sha256 = digest,
                  .artifact_size = (int64_t)sum_len,
                  .resources = (char *)(resources ? resources : "")};
    cJSON *j = cl_model_to_json(&m);
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char key[CL_KEY_MAX];
    assert_int_equal(cl_key_model(key, model, "1", &err), CL_OK);
    assert_int_equal(cl_kv_put(fx->kv, key, s, strlen(s), NULL, &err), CL_OK);
    free(s);
}

/* A model entry whose artifact is not stored: its replica fails (exit 3). */
static void put_broken_model(fixture *fx, const char *model)
{
    mt_put_model(fx->kv, model, "1", 1);
}

static void set_replicas(fixture *fx, const char *model, int64_t n)
{
    char key[CL_KEY_MAX], *value = NULL;
    size_t len = 0;
    cl_err err;
    assert_int_equal(cl_key_model(key, model, "1", &err), CL_OK);
    assert_int_equal(cl_kv_get(fx->kv, key, &value, &len, NULL, &err), CL_OK);
    cJSON *j = cJSON_ParseWithLength(value, len);
    free(value);
    cJSON_ReplaceItemInObject(j, "num_replicas", cJSON_CreateNumber((double)n));
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    assert_int_equal(cl_kv_put(fx->kv, key, s, strlen(s), NULL, &err), CL_OK);
    free(s);
}

static void delete_model(fixture *fx, const char *model)
{
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_model(key, model, "1", &err), CL_OK);
    assert_int_equal(cl_kv_delete(fx->kv, key, &err), CL_OK);
}

static void start_manager(fixture *fx)
{
    cl_manager_opts o;
    cl_manager_opts_init(&o);
    o.backend = "kubernetes";
    o.kubeconfig = kubeconfig;
    o.kube_namespace = ns;
    o.cluster = fx->cluster;
    o.pull_policy = "Never";
    o.nats_url = srv.url;
    cl_err err;
    if (cl_manager_start(&fx->mgr, fx->bus, &o, &err) != CL_OK)
        fail_msg("the manager does not start: %s", err.msg);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    int n = ++clusters_made;
    snprintf(fx->cluster, sizeof(fx->cluster), "t%d-%d", (int)getpid() % 10000, n);
    snprintf(fx->prefix, sizeof(fx->prefix), "kt%d", n);
    if (cl_test_bus_connect_kv(&fx->bus, &fx->kv, &srv, fx->prefix) != 0)
        return -1;
    *state = fx;
    return 0;
}

/* Removes what a test's cluster left in the namespace. */
static void remove_cluster(const fixture *fx)
{
    char path[600];
    snprintf(path, sizeof(path),
             "/apis/apps/v1/namespaces/%s/deployments?labelSelector=%s%%3D%s", ns, LABEL_CLUSTER,
             fx->cluster);
    cl_err err;
    if (cl_kube_request(api, "DELETE", path, NULL, NULL, "test cleanup", &err) != CL_OK)
        fprintf(stderr, "cleanup: %s\n", err.msg);
    snprintf(path, sizeof(path),
             "/api/v1/namespaces/%s/pods?labelSelector=%s%%3D%s&gracePeriodSeconds=0", ns,
             LABEL_CLUSTER, fx->cluster);
    if (cl_kube_request(api, "DELETE", path, NULL, NULL, "test cleanup", &err) != CL_OK)
        fprintf(stderr, "cleanup: %s\n", err.msg);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    cl_manager_free(fx->mgr);
    remove_cluster(fx);
    cl_kv_free(fx->kv);
    cl_bus_free(fx->bus);
    free(fx);
    return 0;
}

/* The node's InternalIP, which pods reach the host by. */
static void find_node_addr(void)
{
    cJSON *nodes = api_get("/api/v1/nodes");
    const cJSON *node = cJSON_GetArrayItem(cJSON_GetObjectItem(nodes, "items"), 0);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(cJSON_GetObjectItem(node, "status"), "addresses"))
    {
        const cJSON *t = cJSON_GetObjectItem(a, "type"), *v = cJSON_GetObjectItem(a, "address");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "InternalIP") == 0 && cJSON_IsString(v))
            snprintf(node_addr, sizeof(node_addr), "%s", v->valuestring);
    }
    cJSON_Delete(nodes);
    if (node_addr[0] == '\0')
        fail_msg("the cluster's node has no InternalIP address");
}

static int group_setup(void **state)
{
    (void)state;
    const char *env = getenv("KUBECONFIG");
    if (env == NULL || env[0] == '\0') {
        fprintf(stderr, "KUBECONFIG is not set: these tests need a real Kubernetes cluster; "
                        "start one with: export \"$(bash images/kube/kube.sh start)\"\n");
        return -1;
    }
    snprintf(kubeconfig, sizeof(kubeconfig), "%s", env);
    cl_kube_opts ko = {.kubeconfig = kubeconfig};
    cl_err err;
    if (cl_kube_new(&api, &ko, &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    cJSON *v = NULL;
    if (cl_kube_request(api, "GET", "/version", NULL, &v, "asking the API server's version",
                        &err) != CL_OK) {
        fprintf(stderr, "%s (start one with: export \"$(bash images/kube/kube.sh start)\")\n",
                err.msg);
        return -1;
    }
    cJSON_Delete(v);
    find_node_addr();
    snprintf(ns, sizeof(ns), "clipper-ctest-%d", (int)getpid());
    cJSON *body = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{}}");
    cJSON_AddStringToObject(cJSON_GetObjectItem(body, "metadata"), "name", ns);
    cl_status s = cl_kube_request(api, "POST", "/api/v1/namespaces", body, NULL,
                                  "creating the test namespace", &err);
    cJSON_Delete(body);
    if (s != CL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    /* A namespace's default ServiceAccount comes a moment after it. */
    for (int i = 0; i < 100; i++) {
        char path[300];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/serviceaccounts/default", ns);
        if (cl_kube_request(api, "GET", path, NULL, NULL, "waiting for the service account",
                            &err) == CL_OK)
            break;
        cl_sleep_ms(100);
    }
    if (cl_test_nats_start_on(&srv, node_addr) != 0) {
        fprintf(stderr, "cannot start nats-server on the node address %s\n", node_addr);
        return -1;
    }
    sum_artifact = rt_make_model("sum", &sum_len);
    if (sum_artifact == NULL) {
        fprintf(stderr, "cannot make the test model\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s?gracePeriodSeconds=0", ns);
    cl_err err;
    if (api != NULL && ns[0] != '\0' &&
        cl_kube_request(api, "DELETE", path, NULL, NULL, "deleting the test namespace", &err) !=
            CL_OK)
        fprintf(stderr, "%s\n", err.msg);
    cl_kube_free(api);
    cl_test_nats_stop(&srv);
    free(sum_artifact);
    return 0;
}

/* ---- bad credentials and addresses -------------------------------------- */

static CL_MUST_USE cl_status new_backend(const char *config, const char *namespace_, cl_err *err)
{
    cl_backend_config cfg = {.nats_url = srv.url,
                             .prefix = "x",
                             .kubeconfig = config,
                             .kube_namespace = namespace_,
                             .cluster = "bad-input"};
    cl_backend *b = NULL;
    cl_status s = cl_backend_new(&b, "kubernetes", &cfg, err);
    cl_backend_free(b);
    return s;
}

static const char *state_file(const char *name)
{
    static char path[1200];
    snprintf(path, sizeof(path), "%s", kubeconfig);
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, sizeof(path) - (size_t)(slash ? slash + 1 - path : 0),
             "%s", name);
    return path;
}

static void test_unreachable_api_server(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "/tmp/clipper-kube-unreachable-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "current-context: c\n"
               "clusters: [{name: l, cluster: {server: 'https://127.0.0.1:1', "
               "insecure-skip-tls-verify: true}}]\n"
               "users: [{name: u, user: {token: x}}]\n"
               "contexts: [{name: c, context: {cluster: l, user: u}}]\n");
    fclose(f);
    cl_err err;
    uint64_t t0 = cl_mono_us();
    assert_int_equal(new_backend(path, "default", &err), CL_ERR_UNREACHABLE);
    assert_true(cl_mono_us() - t0 < 5000000u); /* says so at once */
    assert_non_null(strstr(err.msg, "cannot reach the Kubernetes API server at "
                                    "https://127.0.0.1:1"));
    unlink(path);
}

static void test_missing_kubeconfig(void **state)
{
    (void)state;
    cl_err err;
    assert_int_equal(new_backend("/nonexistent/kubeconfig", NULL, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no Kubernetes credentials"));
    assert_non_null(strstr(err.msg, "/nonexistent/kubeconfig"));
}

static void test_missing_namespace(void **state)
{
    (void)state;
    cl_err err;
    assert_int_equal(new_backend(kubeconfig, "no-such-namespace-here", &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "the namespace 'no-such-namespace-here' does not exist"));
}

static void test_user_without_rights_is_denied(void **state)
{
    (void)state;
    cl_err err;
    const char *restricted = state_file("restricted.kubeconfig");
    assert_int_equal(access(restricted, R_OK), 0);
    assert_int_equal(new_backend(restricted, ns, &err), CL_ERR_DENIED);
    if (strstr(err.msg, "forbidden") == NULL)
        fail_msg("not a 'forbidden' message: %s", err.msg);
}

static void test_bad_token_is_refused(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "/tmp/clipper-kube-badtoken-%d.yaml", (int)getpid());
    /* The real server and CA, a token it does not know. */
    cJSON *cfg = NULL;
    size_t len = 0;
    char *text = cl_test_read_file(kubeconfig, &len);
    assert_non_null(text);
    cl_err err;
    assert_int_equal(cl_kube_yaml_parse(text, len, &cfg, &err), CL_OK);
    free(text);
    cJSON *user = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cfg, "users"), 0),
                                      "user");
    cJSON_ReplaceItemInObject(user, "token", cJSON_CreateString("not-a-real-token"));
    char *out = cJSON_Print(cfg); /* JSON is YAML */
    cJSON_Delete(cfg);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(out, f);
    fclose(f);
    free(out);
    assert_int_equal(new_backend(path, ns, &err), CL_ERR_DENIED);
    assert_non_null(strstr(err.msg, "refused the credentials"));
    unlink(path);
}

static void test_client_certificate_works(void **state)
{
    (void)state;
    cl_err err;
    const char *cert = state_file("admin-cert.kubeconfig");
    assert_int_equal(access(cert, R_OK), 0);
    if (new_backend(cert, ns, &err) != CL_OK)
        fail_msg("%s", err.msg);
}

/* ---- the backend at work ------------------------------------------------- */

static void test_deploy_scale_replace_and_remove(void **state)
{
    fixture *fx = *state;
    start_manager(fx);
    uint64_t t0 = cl_mono_us();
    put_sum_model(fx, "sum", 1, NULL, "{\"requests\":{\"cpu\":\"50m\",\"memory\":\"64Mi\"}}");
    wait_ready_pods(fx, "sum", 1, 60);
    wait_ready_rows(fx, "sum", 1, 30);
    printf("# one replica pod ready %.2f s after the model entry was written\n",
           (double)(cl_mono_us() - t0) / 1e6);

    /* The Deployment is what the backend says it makes. */
    cl_status st;
    cJSON *d = get_deployment(fx, "sum", &st);
    assert_int_equal(st, CL_OK);
    const cJSON *spec = cJSON_GetObjectItem(d, "spec");
    assert_int_equal(cJSON_GetObjectItem(spec, "replicas")->valueint, 1);
    const cJSON *c = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "template"), "spec"),
                            "containers"),
        0);
    assert_string_equal(cJSON_GetObjectItem(c, "image")->valuestring,
                        "localhost/clipper/python-closure:latest");
    assert_string_equal(cJSON_GetObjectItem(c, "imagePullPolicy")->valuestring, "Never");
    assert_non_null(cJSON_GetObjectItem(c, "readinessProbe"));
    assert_non_null(cJSON_GetObjectItem(c, "livenessProbe"));
    const cJSON *req = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "resources"), "requests");
    assert_string_equal(cJSON_GetObjectItem(req, "memory")->valuestring, "64Mi");
    const cJSON *labels = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "metadata"), "labels");
    assert_string_equal(cJSON_GetObjectItem(labels, LABEL_CLUSTER)->valuestring, fx->cluster);
    assert_string_equal(cJSON_GetObjectItem(labels, LABEL_MODEL)->valuestring, "sum_1");
    cJSON_Delete(d);

    /* 1 -> 3 -> 1, counted by label. */
    t0 = cl_mono_us();
    set_replicas(fx, "sum", 3);
    wait_ready_pods(fx, "sum", 3, 60);
    wait_ready_rows(fx, "sum", 3, 30);
    printf("# scaled 1 -> 3 ready in %.2f s\n", (double)(cl_mono_us() - t0) / 1e6);

    /* A pod deleted by hand is replaced by Kubernetes, and serves. */
    cJSON *pods = list_pods(fx, "sum");
    char victim[256];
    snprintf(victim, sizeof(victim), "%s", pod_name(cJSON_GetArrayItem(pods, 0)));
    cJSON_Delete(pods);
    t0 = cl_mono_us();
    delete_pod(victim, true);
    wait_ready_pods(fx, "sum", 3, 60);
    wait_ready_rows(fx, "sum", 3, 30);
    printf("# a pod deleted by hand: 3 ready again in %.2f s\n",
           (double)(cl_mono_us() - t0) / 1e6);
    pods = list_pods(fx, "sum");
    const cJSON *p;
    cJSON_ArrayForEach(p, pods)
    {
        assert_string_not_equal(pod_name(p), victim);
    }
    cJSON_Delete(pods);

    set_replicas(fx, "sum", 1);
    wait_ready_pods(fx, "sum", 1, 60);
    wait_ready_rows(fx, "sum", 1, 30);

    /* The version leaves the state: its Deployment goes. */
    delete_model(fx, "sum");
    uint64_t deadline = cl_mono_us() + 30000000u;
    do {
        cJSON_Delete(get_deployment(fx, "sum", &st));
        if (st == CL_ERR_NOT_FOUND)
            break;
        cl_sleep_ms(200);
    } while (cl_mono_us() < deadline);
    assert_int_equal(st, CL_ERR_NOT_FOUND);
    deadline = cl_mono_us() + 30000000u;
    while (count_pods(fx, "sum", false) > 0 && cl_mono_us() < deadline)
        cl_sleep_ms(200);
    assert_int_equal(count_pods(fx, "sum", false), 0);
}

static void test_a_new_manager_adopts_the_running_replicas(void **state)
{
    fixture *fx = *state;
    start_manager(fx);
    put_sum_model(fx, "adopt", 2, NULL, NULL);
    wait_ready_pods(fx, "adopt", 2, 60);
    cJSON *before = list_pods(fx, "adopt");
    /* The manager goes: the replicas stay. */
    cl_manager_free(fx->mgr);
    fx->mgr = NULL;
    cl_sleep_ms(2000);
    assert_int_equal(count_pods(fx, "adopt", true), 2);
    /* A new one finds them: same pods, none made or deleted. */
    start_manager(fx);
    wait_ready_rows(fx, "adopt", 2, 30);
    cJSON *after = list_pods(fx, "adopt");
    assert_int_equal(cJSON_GetArraySize(after), 2);
    const cJSON *a;
    cJSON_ArrayForEach(a, after)
    {
        bool found = false;
        const cJSON *b;
        cJSON_ArrayForEach(b, before) found = found || strcmp(pod_name(a), pod_name(b)) == 0;
        assert_true(found);
    }
    cJSON_Delete(before);
    cJSON_Delete(after);
}

static void test_missing_image_is_a_start_error_at_once(void **state)
{
    fixture *fx = *state;
    start_manager(fx);
    uint64_t t0 = cl_mono_us();
    put_sum_model(fx, "noimage", 1, MISSING_IMAGE, NULL);
    cJSON *row = wait_row(fx, "noimage", "start_error", "ErrImageNeverPull", 2, 30);
    printf("# a missing image reported as a start error (2 failures) in %.2f s\n",
           (double)(cl_mono_us() - t0) / 1e6);
    assert_non_null(strstr(row_str(row, "start_error"), MISSING_IMAGE));
    assert_string_equal(row_str(row, "image"), MISSING_IMAGE);
    cJSON_Delete(row);
}

static void test_a_crash_looping_replica_is_reported(void **state)
{
    fixture *fx = *state;
    start_manager(fx);
    put_broken_model(fx, "broken");
    /* Its heartbeat says why, at once. */
    cJSON *row = wait_row(fx, "broken", "cause", "no artifact is stored", 0, 60);
    assert_string_equal(row_str(row, "heartbeat"), "failed");
    cJSON_Delete(row);
    /* The kubelet restarts it with backoff (10 s, 20 s, ...): the row says it keeps ending,
     * and how. */
    row = wait_row(fx, "broken", "start_error", "CrashLoopBackOff", 2, 90);
    assert_non_null(strstr(row_str(row, "start_error"), "exit code 3"));
    assert_string_equal(row_str(row, "last_exit"), "exit code 3");
    cJSON_Delete(row);
}

static void test_out_of_memory_is_reported(void **state)
{
    fixture *fx = *state;
    start_manager(fx);
    put_sum_model(fx, "oom", 1, NULL, "{\"limits\":{\"memory\":\"12Mi\"}}");
    cJSON *row = wait_row(fx, "oom", "last_error", "OOMKilled", 0, 90);
    cJSON_Delete(row);
}

/* Starts the manager and one replica of model, ready by both counts. */
static void deploy_one_ready(fixture *fx, const char *model)
{
    start_manager(fx);
    put_sum_model(fx, model, 1, NULL, NULL);
    wait_ready_pods(fx, model, 1, 60);
    wait_ready_rows(fx, model, 1, 30);
}

/* The host pid of the replica process of model (its container's), or 0. */
static pid_t replica_pid(const char *model)
{
    DIR *d = opendir("/proc");
    pid_t found = 0;
    struct dirent *e;
    char want[200];
    int wlen = snprintf(want, sizeof(want), "--model%c%s%c", 0, model, 0);
    while (d != NULL && found == 0 && (e = readdir(d)) != NULL) {
        char path[300];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        size_t len = 0;
        char *cmd = cl_test_read_file(path, &len);
        if (cmd == NULL)
            continue;
        bool replica = len > 20 && strstr(cmd, "clipper") != NULL;
        for (size_t i = 0; replica && i + (size_t)wlen <= len; i++) {
            if (memcmp(cmd + i, want, (size_t)wlen) == 0 &&
                memmem(cmd, len, "replica\0", 8) != NULL) {
                found = (pid_t)atoi(e->d_name);
                break;
            }
        }
        free(cmd);
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static void test_a_killed_container_is_restarted(void **state)
{
    fixture *fx = *state;
    deploy_one_ready(fx, "killme");
    pid_t pid = replica_pid("killme");
    assert_true(pid > 0);
    uint64_t t0 = cl_mono_us();
    assert_int_equal(kill(pid, SIGKILL), 0);
    cJSON *row = wait_row(fx, "killme", "last_exit", "killed", 0, 30);
    cJSON_Delete(row);
    wait_ready_rows(fx, "killme", 1, 60);
    printf("# a replica container killed (SIGKILL): serving again in %.2f s\n",
           (double)(cl_mono_us() - t0) / 1e6);
    /* Kubernetes too calls it ready once its probe passed again. */
    wait_ready_pods(fx, "killme", 1, 30);
}

static void test_a_hung_replica_is_replaced(void **state)
{
    fixture *fx = *state;
    deploy_one_ready(fx, "hang");
    pid_t pid = replica_pid("hang");
    assert_true(pid > 0);
    uint64_t t0 = cl_mono_us();
    assert_int_equal(kill(pid, SIGSTOP), 0);
    /* Stopped: no heartbeat, no probe answer. The liveness probe restarts
     * the container, or the manager deletes the pod, whichever first. */
    uint64_t deadline = cl_mono_us() + 60000000u;
    bool replaced = false;
    while (!replaced && cl_mono_us() < deadline) {
        pid_t now = replica_pid("hang");
        replaced = now > 0 && now != pid;
        cl_sleep_ms(250);
    }
    kill(pid, SIGCONT);
    assert_true(replaced);
    wait_ready_rows(fx, "hang", 1, 60);
    printf("# a stopped (SIGSTOP) replica: replaced and ready in %.2f s\n",
           (double)(cl_mono_us() - t0) / 1e6);
}

static void test_a_foreign_deployment_of_the_same_name_is_an_error(void **state)
{
    fixture *fx = *state;
    /* Someone else's Deployment where the model's would go. */
    char body[2000];
    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
             "\"squat-1-at-%s\",\"labels\":{\"%s\":\"%s\",\"%s\":\"other\"}},\"spec\":{"
             "\"replicas\":0,\"selector\":{\"matchLabels\":{\"app\":\"squat\"}},\"template\":{"
             "\"metadata\":{\"labels\":{\"app\":\"squat\"}},\"spec\":{\"containers\":[{"
             "\"name\":\"c\",\"image\":\"%s\"}]}}}}",
             fx->cluster, LABEL_CLUSTER, fx->cluster, LABEL_MODEL, MISSING_IMAGE);
    cJSON *d = cJSON_Parse(body);
    char path[300];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments", ns);
    cl_err err;
    assert_int_equal(cl_kube_request(api, "POST", path, d, NULL, "test create", &err), CL_OK);
    cJSON_Delete(d);
    start_manager(fx);
    put_sum_model(fx, "squat", 1, NULL, NULL);
    cJSON *row = wait_row(fx, "squat", "start_error", "is not model squat:1's", 2, 30);
    cJSON_Delete(row);
}

/* ---- the watch itself ---------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int resets, synced;
    char names[16][64];
    int n_names;
} watch_seen;

static void on_cm_event(void *closure, cl_kube_event ev, const cJSON *obj)
{
    watch_seen *ws = closure;
    pthread_mutex_lock(&ws->mu);
    if (ev == CL_KUBE_RESET) {
        ws->resets++;
        ws->n_names = 0;
    } else if (ev == CL_KUBE_SYNCED) {
        ws->synced++;
    } else if ((ev == CL_KUBE_ADDED || ev == CL_KUBE_MODIFIED) && ws->n_names < 16) {
        const cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "metadata"), "name");
        snprintf(ws->names[ws->n_names++], sizeof(ws->names[0]), "%s", n->valuestring);
    }
    pthread_mutex_unlock(&ws->mu);
}

static void create_configmap(const char *name)
{
    char body[400], path[300];
    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{\"watch-test\":\"yes\"}},\"data\":{\"k\":\"v\"}}",
             name);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
    cJSON *j = cJSON_Parse(body);
    cl_err err;
    if (cl_kube_request(api, "POST", path, j, NULL, "creating a configmap", &err) != CL_OK)
        fail_msg("%s", err.msg);
    cJSON_Delete(j);
}

/* A watch resumed from a version (here the list's version before two
 * changes) streams what changed since, without listing again, and carries
 * on. (The API server of a young cluster serves any version; the other
 * branch, a version it no longer has, ends in a list: cl_kube.h.) */
static void test_a_resumed_watch_streams_what_changed_since(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps?labelSelector=watch-test%%3Dyes",
             ns);
    cJSON *list = api_get(path);
    char rv[64];
    snprintf(rv, sizeof(rv), "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(list, "metadata"), "resourceVersion")
                 ->valuestring);
    cJSON_Delete(list);
    create_configmap("watch-a");
    watch_seen ws = {.mu = PTHREAD_MUTEX_INITIALIZER};
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
    cl_kube_watch *w = NULL;
    cl_err err;
    assert_int_equal(cl_kube_watch_resume(&w, api, path, "watch-test=yes", rv, on_cm_event, &ws,
                                          &err),
                     CL_OK);
    create_configmap("watch-b");
    uint64_t deadline = cl_mono_us() + 10000000u;
    int n = 0;
    while (n < 2 && cl_mono_us() < deadline) {
        pthread_mutex_lock(&ws.mu);
        n = ws.n_names;
        pthread_mutex_unlock(&ws.mu);
        cl_sleep_ms(20);
    }
    pthread_mutex_lock(&ws.mu);
    assert_int_equal(ws.n_names, 2);
    assert_string_equal(ws.names[0], "watch-a");
    assert_string_equal(ws.names[1], "watch-b");
    assert_int_equal(ws.resets, 0); /* no list */
    assert_int_equal(ws.synced, 0);
    pthread_mutex_unlock(&ws.mu);
    cl_kube_watch_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreachable_api_server),
        cmocka_unit_test(test_missing_kubeconfig),
        cmocka_unit_test(test_missing_namespace),
        cmocka_unit_test(test_user_without_rights_is_denied),
        cmocka_unit_test(test_bad_token_is_refused),
        cmocka_unit_test(test_client_certificate_works),
        cmocka_unit_test(test_a_resumed_watch_streams_what_changed_since),
        cmocka_unit_test_setup_teardown(test_deploy_scale_replace_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_new_manager_adopts_the_running_replicas, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_image_is_a_start_error_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_crash_looping_replica_is_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_killed_container_is_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_hung_replica_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_foreign_deployment_of_the_same_name_is_an_error,
                                        setup, teardown),
    };
    /* KUBE_TEST_FILTER=test_a_hung* runs only the tests it matches. */
    const char *filter = getenv("KUBE_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
