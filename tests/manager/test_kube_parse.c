/* The Kubernetes client's pure parts (no API server): YAML, kubeconfig
 * files (written here, read by cl_kube_new), the in-pod credentials, error
 * texts, the watch stream's line splitter, names and label values; and
 * model resources (quantities, requests and limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cl_kube.h"
#include "cl_resources.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/clipper-kube-parse-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* ---- YAML --------------------------------------------------------------- */

static void test_yaml_maps_lists_scalars(void **state)
{
    (void)state;
    const char *y = "a: 1\n"
                    "b:\n"
                    "  - x\n"
                    "  - {k: v, n: null}\n"
                    "c: 'quoted: yes'\n"
                    "d: true\n"
                    "e:\n";
    cJSON *j = NULL;
    cl_err err;
    assert_int_equal(cl_kube_yaml_parse(y, strlen(y), &j, &err), CL_OK);
    assert_string_equal(cJSON_GetObjectItem(j, "a")->valuestring, "1");
    const cJSON *b = cJSON_GetObjectItem(j, "b");
    assert_int_equal(cJSON_GetArraySize(b), 2);
    assert_string_equal(cJSON_GetArrayItem(b, 0)->valuestring, "x");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(b, 1), "k")->valuestring, "v");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(b, 1), "n")));
    assert_string_equal(cJSON_GetObjectItem(j, "c")->valuestring, "quoted: yes");
    assert_string_equal(cJSON_GetObjectItem(j, "d")->valuestring, "true");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "e")));
    cJSON_Delete(j);
}

static void test_yaml_json_is_yaml(void **state)
{
    (void)state;
    const char *y = "{\"clusters\": [{\"name\": \"c\", \"cluster\": {\"server\": \"https://h\"}}]}";
    cJSON *j = NULL;
    cl_err err;
    assert_int_equal(cl_kube_yaml_parse(y, strlen(y), &j, &err), CL_OK);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "clusters"), 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "cluster"), "server")->valuestring,
                        "https://h");
    cJSON_Delete(j);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    cJSON *j = NULL;
    cl_err err;
    const char *bad = "a: [1, 2\nb: c\n";
    assert_int_equal(cl_kube_yaml_parse(bad, strlen(bad), &j, &err), CL_ERR_INVALID);
    assert_null(j);
    assert_non_null(strstr(err.msg, "line"));
    const char *alias = "a: &x 1\nb: *x\n";
    assert_int_equal(cl_kube_yaml_parse(alias, strlen(alias), &j, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "aliases"));
    assert_int_equal(cl_kube_yaml_parse("", 0, &j, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "empty"));
}

/* ---- kubeconfig ------------------------------------------------------------ */

/* A kubeconfig with two contexts; the CA is inline ("hello" in base64). */
static const char KUBECONFIG[] = "apiVersion: v1\n"
                                 "kind: Config\n"
                                 "current-context: tok\n"
                                 "clusters:\n"
                                 "- name: local\n"
                                 "  cluster:\n"
                                 "    server: https://172.30.0.1:6443/\n"
                                 "    certificate-authority-data: aGVsbG8=\n"
                                 "- name: other\n"
                                 "  cluster:\n"
                                 "    server: https://other:443\n"
                                 "    certificate-authority: certs/ca.crt\n"
                                 "users:\n"
                                 "- name: admin\n"
                                 "  user:\n"
                                 "    token: abc\n"
                                 "- name: certuser\n"
                                 "  user:\n"
                                 "    client-certificate: certs/u.crt\n"
                                 "    client-key: certs/u.key\n"
                                 "- name: execuser\n"
                                 "  user:\n"
                                 "    exec:\n"
                                 "      command: aws\n"
                                 "- name: halfcert\n"
                                 "  user:\n"
                                 "    client-certificate: u.crt\n"
                                 "contexts:\n"
                                 "- name: tok\n"
                                 "  context: {cluster: local, user: admin, namespace: ml}\n"
                                 "- name: cert\n"
                                 "  context: {cluster: other, user: certuser}\n"
                                 "- name: exec\n"
                                 "  context: {cluster: other, user: execuser}\n"
                                 "- name: half\n"
                                 "  context: {cluster: other, user: halfcert}\n"
                                 "- name: nocluster\n"
                                 "  context: {cluster: missing, user: admin}\n";

static void test_kubeconfig_current_context(void **state)
{
    (void)state;
    const char *path = write_file("config", KUBECONFIG);
    cl_kube_opts o = {.kubeconfig = path};
    cl_kube *k = NULL;
    cl_err err;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_OK);
    assert_string_equal(cl_kube_server(k), "https://172.30.0.1:6443"); /* no trailing '/' */
    assert_string_equal(cl_kube_namespace(k), "ml");
    assert_non_null(strstr(cl_kube_source(k), "context tok"));
    assert_non_null(strstr(cl_kube_source(k), "user admin"));
    cl_kube *clone = NULL;
    assert_int_equal(cl_kube_clone(&clone, k, &err), CL_OK);
    cl_kube_free(k);
    assert_string_equal(cl_kube_server(clone), "https://172.30.0.1:6443");
    cl_kube_free(clone);
}

static void test_kubeconfig_context_and_namespace(void **state)
{
    (void)state;
    const char *path = write_file("config", KUBECONFIG);
    cl_kube_opts o = {.kubeconfig = path, .context = "cert"};
    cl_kube *k = NULL;
    cl_err err;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_OK);
    assert_string_equal(cl_kube_server(k), "https://other:443");
    assert_string_equal(cl_kube_namespace(k), "default");
    cl_kube_free(k);
    o.namespace_ = "given";
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_OK);
    assert_string_equal(cl_kube_namespace(k), "given");
    cl_kube_free(k);
}

static void expect_config_error(const char *context, const char *needle)
{
    const char *path = write_file("config", KUBECONFIG);
    cl_kube_opts o = {.kubeconfig = path, .context = context};
    cl_kube *k = NULL;
    cl_err err;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_ERR_INVALID);
    assert_null(k);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("'%s' not in: %s", needle, err.msg);
    assert_non_null(strstr(err.msg, path));
}

static void test_kubeconfig_errors(void **state)
{
    (void)state;
    expect_config_error("nope", "no context named 'nope'");
    expect_config_error("exec", "exec plugin");
    expect_config_error("half", "client certificate but no client key");
    expect_config_error("nocluster", "names cluster 'missing'");
    cl_kube *k = NULL;
    cl_err err;
    const char *bad = write_file("bad", "current-context: x\ncontexts: [\n");
    cl_kube_opts o = {.kubeconfig = bad};
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "YAML syntax error"));
    const char *b64 = write_file("b64", "current-context: c\n"
                                        "clusters: [{name: l, cluster: {server: 'https://h', "
                                        "certificate-authority-data: '!!notbase64'}}]\n"
                                        "contexts: [{name: c, context: {cluster: l}}]\n");
    o.kubeconfig = b64;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "base64"));
    const char *scheme = write_file("scheme", "current-context: c\n"
                                           "clusters: [{name: l, cluster: {server: 'ftp://h'}}]\n"
                                           "contexts: [{name: c, context: {cluster: l}}]\n");
    o.kubeconfig = scheme;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not an http(s):// URL"));
}

static void test_kubeconfig_missing(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof(path), "%s/does-not-exist", dir);
    cl_kube_opts o = {.kubeconfig = path, .sa_dir = dir};
    cl_kube *k = NULL;
    cl_err err;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no Kubernetes credentials"));
    assert_non_null(strstr(err.msg, path));
    /* KUBECONFIG names the file when none is given (its first entry). */
    char env[700];
    snprintf(env, sizeof(env), "%s:/elsewhere", path);
    setenv("KUBECONFIG", env, 1);
    unsetenv("KUBERNETES_SERVICE_HOST");
    o.kubeconfig = NULL;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "$KUBECONFIG"));
    unsetenv("KUBECONFIG");
}

static void test_in_a_pod(void **state)
{
    (void)state;
    char sa[300];
    snprintf(sa, sizeof(sa), "%s/sa", dir);
    mkdir(sa, 0700);
    write_file("sa/token", "tok\n");
    write_file("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
    write_file("sa/namespace", "team-a\n");
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    cl_kube_opts o = {.sa_dir = sa};
    cl_kube *k = NULL;
    cl_err err;
    assert_int_equal(cl_kube_new(&k, &o, &err), CL_OK);
    assert_string_equal(cl_kube_server(k), "https://10.0.0.1:443");
    assert_string_equal(cl_kube_namespace(k), "team-a");
    assert_string_equal(cl_kube_source(k), "the pod's service account");
    cl_kube_free(k);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

/* ---- error texts, lines, names ------------------------------------------- */

static void test_error_text(void **state)
{
    (void)state;
    char buf[200];
    const char *status = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"pods \\\"x\\\" "
                         "not found\",\"reason\":\"NotFound\",\"code\":404}";
    cl_kube_error_text(status, strlen(status), buf, sizeof(buf));
    assert_string_equal(buf, "pods \"x\" not found");
    const char *plain = "404 page not found\n";
    cl_kube_error_text(plain, strlen(plain), buf, sizeof(buf));
    assert_string_equal(buf, "404 page not found");
    cl_kube_error_text("", 0, buf, sizeof(buf));
    assert_string_equal(buf, "no error text");
}

static char lines_seen[8][64];
static int n_lines;

static void on_line(void *closure, const char *text, size_t len)
{
    (void)closure;
    if (n_lines < 8)
        snprintf(lines_seen[n_lines++], sizeof(lines_seen[0]), "%.*s", (int)len, text);
}

static void test_split_lines(void **state)
{
    (void)state;
    char buf[16];
    size_t used = 0;
    n_lines = 0;
    /* Lines split across chunks, CRLF, empty lines. */
    assert_int_equal(cl_kube_split_lines(buf, sizeof(buf), &used, "{\"a\":", 5, on_line, NULL),
                     0);
    assert_int_equal(n_lines, 0);
    assert_int_equal(cl_kube_split_lines(buf, sizeof(buf), &used, "1}\r\n\n{\"b\"", 9, on_line,
                                         NULL),
                     0);
    assert_int_equal(n_lines, 1);
    assert_string_equal(lines_seen[0], "{\"a\":1}");
    assert_int_equal(cl_kube_split_lines(buf, sizeof(buf), &used, ":2}\n", 4, on_line, NULL), 0);
    assert_int_equal(n_lines, 2);
    assert_string_equal(lines_seen[1], "{\"b\":2}");
    /* A line longer than the buffer. */
    used = 0;
    assert_int_equal(cl_kube_split_lines(buf, sizeof(buf), &used, "0123456789abcdefXYZ", 19,
                                         on_line, NULL),
                     -1);
}

static void test_dns_label(void **state)
{
    (void)state;
    char out[80];
    cl_kube_dns_label("sum-1-at-default", 46, out, sizeof(out));
    assert_string_equal(out, "sum-1-at-default");
    /* Changed: made valid and given a hash, so V1 and v1 differ. */
    char a[80], b[80];
    cl_kube_dns_label("m-V1-at-c", 46, a, sizeof(a));
    cl_kube_dns_label("m-v1-at-c", 46, b, sizeof(b));
    assert_string_equal(b, "m-v1-at-c");
    assert_string_not_equal(a, b);
    assert_int_equal(strncmp(a, "m-v1-at-c-", 10), 0);
    cl_kube_dns_label("_under_score_", 46, out, sizeof(out));
    assert_true(out[0] >= 'a' && out[0] <= 'z');
    assert_null(strchr(out, '_'));
    /* Too long: cut, and still unique by hash. */
    char longer[200];
    memset(longer, 'x', 120);
    longer[120] = '\0';
    cl_kube_dns_label(longer, 46, out, sizeof(out));
    assert_true(strlen(out) <= 46);
    for (const char *p = out; *p; p++)
        assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-');
    assert_true(out[strlen(out) - 1] != '-');
}

static void test_label_value(void **state)
{
    (void)state;
    char out[80];
    cl_kube_label_value("sum_1", out, sizeof(out));
    assert_string_equal(out, "sum_1"); /* Clipper's <name>_<version> */
    cl_kube_label_value("Model_V+1", out, sizeof(out));
    assert_null(strchr(out, '+'));
    assert_int_equal(strncmp(out, "Model_V-1-", 10), 0);
    char longer[100];
    memset(longer, 'a', 90);
    longer[90] = '\0';
    cl_kube_label_value(longer, out, sizeof(out));
    assert_true(strlen(out) <= 63);
}

/* ---- resources ----------------------------------------------------------- */

static void test_quantities(void **state)
{
    (void)state;
    double v;
    cl_err err;
    assert_int_equal(cl_quantity_parse("500m", &v, &err), CL_OK);
    assert_true(v > 0.4999 && v < 0.5001);
    assert_int_equal(cl_quantity_parse("2", &v, &err), CL_OK);
    assert_true(v == 2.0);
    assert_int_equal(cl_quantity_parse("256Mi", &v, &err), CL_OK);
    assert_true(v == 268435456.0);
    assert_int_equal(cl_quantity_parse("1.5G", &v, &err), CL_OK);
    assert_true(v == 1.5e9);
    assert_int_equal(cl_quantity_parse("1e3", &v, &err), CL_OK);
    assert_true(v == 1000.0);
    assert_int_equal(cl_quantity_parse("1 GB", &v, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown suffix"));
    assert_int_equal(cl_quantity_parse("lots", &v, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a quantity"));
    assert_int_equal(cl_quantity_parse("10GB", &v, &err), CL_ERR_INVALID);
}

static void expect_resources(const char *json, cl_status want, const char *needle)
{
    cJSON *in = cJSON_Parse(json);
    assert_non_null(in);
    cJSON *out = NULL;
    cl_err err;
    cl_status s = cl_resources_normalise(in, &out, &err);
    cJSON_Delete(in);
    assert_int_equal(s, want);
    if (s == CL_OK) {
        char *text = cJSON_PrintUnformatted(out);
        assert_string_equal(text, needle);
        free(text);
        cJSON_Delete(out);
    } else if (strstr(err.msg, needle) == NULL) {
        fail_msg("'%s' not in: %s", needle, err.msg);
    }
}

static void test_resources(void **state)
{
    (void)state;
    expect_resources("{\"requests\":{\"cpu\":0.5,\"memory\":\"256Mi\"},\"limits\":{\"cpu\":\"1\"}}",
                     CL_OK,
                     "{\"requests\":{\"cpu\":\"0.5\",\"memory\":\"256Mi\"},\"limits\":{\"cpu\":\"1\"}}");
    expect_resources("{\"limits\":{\"nvidia.com/gpu\":\"1\"}}", CL_OK,
                     "{\"limits\":{\"nvidia.com/gpu\":\"1\"}}");
    expect_resources("[]", CL_ERR_INVALID, "resources must be an object");
    expect_resources("{\"cpu\":\"1\"}", CL_ERR_INVALID, "unknown key 'cpu'");
    expect_resources("{\"limits\":{\"disk\":\"1\"}}", CL_ERR_INVALID, "unknown resource 'disk'");
    expect_resources("{\"limits\":{\"memory\":\"1 GB\"}}", CL_ERR_INVALID,
                     "resources.limits.memory:");
    expect_resources("{\"requests\":{\"memory\":true}}", CL_ERR_INVALID,
                     "must be a quantity as a string");
    expect_resources("{\"requests\":{\"cpu\":\"-1\"}}", CL_ERR_INVALID, "negative");
    expect_resources("{\"requests\":{\"memory\":\"2Gi\"},\"limits\":{\"memory\":\"1Gi\"}}",
                     CL_ERR_INVALID, "is more than resources.limits.memory");
    expect_resources("{\"limits\":[]}", CL_ERR_INVALID, "resources.limits must be an object");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_maps_lists_scalars),
        cmocka_unit_test(test_yaml_json_is_yaml),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_kubeconfig_current_context),
        cmocka_unit_test(test_kubeconfig_context_and_namespace),
        cmocka_unit_test(test_kubeconfig_errors),
        cmocka_unit_test(test_kubeconfig_missing),
        cmocka_unit_test(test_in_a_pod),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_split_lines),
        cmocka_unit_test(test_dns_label),
        cmocka_unit_test(test_label_value),
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_resources),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
