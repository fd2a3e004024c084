/* Integration tests of the management REST (actors/admin/admin_http.c):
 * a real nats-server, a real admin actor in-process, the HTTP server on a
 * free port, libcurl as the client. They check the translation HTTP <->
 * <p>.admin.<command>: Clipper's statuses and bodies, our answers where
 * Clipper had none (404, 405, 413, 503), and that the server holds no
 * state of its own (a change over HTTP is seen over NATS and back, and
 * another process's admin answers its requests). Every text of every
 * command is covered over the bus by test_admin.c and, through a whole
 * cluster, by tests/python/test_management_rest.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "cl_admin.h"
#include "cl_admin_http.h"
#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_subject.h"
#include "cl_test_nats.h"

static int test_counter;

static struct {
    char prefix[32];
    cl_bus *bus;
    cl_admin *admin;
    cl_admin_http *http;
    int port;
} fx;

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.prefix, sizeof(fx.prefix), "rest%d", ++test_counter);
    if (cl_test_bus_connect(&fx.bus, &cl_test_srv, fx.prefix) != 0)
        return -1;
    cl_err err;
    if (cl_admin_start(&fx.admin, fx.bus, &err) != CL_OK) {
        fprintf(stderr, "admin start: %s\n", err.msg);
        return -1;
    }
    if (cl_admin_http_start(&fx.http, fx.bus, "127.0.0.1", 0, &err) != CL_OK) {
        fprintf(stderr, "admin http start: %s\n", err.msg);
        return -1;
    }
    fx.port = cl_admin_http_port(fx.http);
    return fx.port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cl_admin_http_free(fx.http);
    cl_admin_free(fx.admin);
    cl_bus_free(fx.bus);
    memset(&fx, 0, sizeof(fx));
    return 0;
}

typedef struct {
    long status;
    char body[65536];
    size_t len;
    char content_type[128];
    char allow[64];
} response;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    response *r = ud;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    size_t take = len < room ? len : room;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    response *r = ud;
    size_t len = size * n;
    if (len > 7 && strncasecmp(p, "Allow: ", 7) == 0)
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)strcspn(p + 7, "\r\n"), p + 7);
    return len;
}

/* method path [body] against port; the response in a static buffer. */
static response *request_on(int port, const char *method, const char *path, const char *body,
                            size_t len)
{
    static response r;
    memset(&r, 0, sizeof(r));
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: no response: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.content_type, sizeof(r.content_type), "%s", ct ? ct : "");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return &r;
}

static response *post(const char *command, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "/admin/%s", command);
    return request_on(fx.port, "POST", path, body, strlen(body));
}

static void expect(const response *r, long status, const char *body)
{
    if (r->status != status || strcmp(r->body, body) != 0)
        fail_msg("expected %ld '%s'\n     got %ld '%s'", status, body, r->status, r->body);
    /* Clipper labels every answer JSON, its plain texts included. */
    assert_string_equal(r->content_type, "application/json");
}

static void expect_has(const response *r, long status, const char *part)
{
    if (r->status != status || strstr(r->body, part) == NULL)
        fail_msg("expected %ld with '%s'\n     got %ld '%s'", status, part, r->status, r->body);
    assert_string_equal(r->content_type, "application/json");
}

static const char APP_BODY[] = "{\"name\":\"a\",\"input_type\":\"doubles\",\"default_output\":"
                               "\"-1.0\",\"latency_slo_micros\":100000}";

/* ---- Clipper's mapping -------------------------------------------------- */

static void test_ping_goes_through_the_admin_and_answers_pong(void **state)
{
    (void)state;
    expect(request_on(fx.port, "GET", "/admin/ping", NULL, 0), 200, "PONG");
    /* Without the admin the door is up but says nobody answers. */
    cl_admin_free(fx.admin);
    fx.admin = NULL;
    response *r = request_on(fx.port, "GET", "/admin/ping", NULL, 0);
    char want[128];
    snprintf(want, sizeof(want), "The admin actor does not answer on %s.admin.ping", fx.prefix);
    expect_has(r, 503, want);
}

static void test_text_results_are_plain_text_and_errors_are_400_text(void **state)
{
    (void)state;
    expect(post("add_app", APP_BODY), 200, "Successfully added application with name 'a'");
    expect(post("add_app", APP_BODY), 400, "application 'a' already exists");
    expect(post("delete_app", "{\"name\":\"zz\"}"), 400, "Application 'zz' does not exist");
    expect(post("get_state", "{\"app_name\":\"a\",\"uid\":0}"), 200, "-1.0");
}

static void test_other_results_are_json_text(void **state)
{
    (void)state;
    expect(post("add_app", APP_BODY), 200, "Successfully added application with name 'a'");
    expect(post("get_all_applications", "{\"verbose\":false}"), 200, "[\"a\"]");
    expect(post("get_all_applications", "{\"verbose\":true}"), 200,
           "[{\"input_type\":\"doubles\",\"default_output\":\"-1.0\",\"latency_slo_micros\":"
           "100000,\"name\":\"a\",\"linked_models\":[]}]");
    expect(post("get_application", "{\"name\":\"nope\"}"), 200, "{}");
    expect(post("get_linked_models", "{\"app_name\":\"a\"}"), 200, "[]");
    expect(post("get_all_models", "{\"verbose\":false}"), 200, "[]");
    expect(post("get_model", "{\"model_name\":\"m\",\"model_version\":\"1\"}"), 200, "{}");
    expect(post("get_all_containers", "{\"verbose\":true}"), 200, "[]");
    expect(post("get_container", "{\"model_name\":\"m\",\"model_version\":\"1\","
                                 "\"replica_id\":0}"),
           200, "{}");
}

/* ---- what Clipper got wrong or had no answer for ------------------------- */

static void test_invalid_input_type_is_a_400_not_a_dropped_connection(void **state)
{
    (void)state;
    /* Clipper's handler threw and sent nothing; we say what was wrong. */
    expect_has(post("add_app", "{\"name\":\"a\",\"input_type\":\"tensors\",\"default_output\":"
                               "\"x\",\"latency_slo_micros\":1000}"),
               400, "Invalid input_type 'tensors'. Valid input types: bytes, integers");
    expect(post("get_all_applications", "{\"verbose\":false}"), 200, "[]");
}

static void test_bodies_that_are_not_json_get_clippers_parse_error(void **state)
{
    (void)state;
    response *r = post("add_app", "{\"name\": ");
    expect_has(r, 400, "Error parsing JSON: ");
    assert_non_null(strstr(r->body, "Expected JSON schema: "));
    expect_has(post("get_all_models", ""), 400, "Error parsing JSON: ");
}

static void test_unknown_routes_get_404_naming_the_valid_ones(void **state)
{
    (void)state;
    response *r = request_on(fx.port, "POST", "/admin/frobnicate", "{}", 2);
    expect_has(r, 404, "No route for POST /admin/frobnicate");
    assert_non_null(strstr(r->body, "GET /admin/ping"));
    assert_non_null(strstr(r->body, "add_app"));
    assert_non_null(strstr(r->body, "get_state"));
    expect_has(request_on(fx.port, "GET", "/", NULL, 0), 404, "No route for GET /");
    /* Only Clipper's commands are routes, not every command of the bus. */
    expect_has(request_on(fx.port, "POST", "/admin/set_num_replicas", "{}", 2), 404,
               "No route for POST /admin/set_num_replicas");
}

static void test_wrong_methods_get_405_with_allow(void **state)
{
    (void)state;
    response *r = request_on(fx.port, "GET", "/admin/add_app", NULL, 0);
    expect(r, 405, "Method GET is not allowed on /admin/add_app; use POST");
    assert_string_equal(r->allow, "POST");
    r = request_on(fx.port, "POST", "/admin/ping", "{}", 2);
    expect(r, 405, "Method POST is not allowed on /admin/ping; use GET");
    assert_string_equal(r->allow, "GET");
    r = request_on(fx.port, "DELETE", "/admin/delete_app", NULL, 0);
    expect_has(r, 405, "use POST");
    /* A trailing slash is the same route. */
    expect(request_on(fx.port, "GET", "/admin/ping/", NULL, 0), 200, "PONG");
}

static void test_bodies_over_the_cap_get_413_and_the_server_keeps_serving(void **state)
{
    (void)state;
    size_t n = CL_ADMIN_HTTP_MAX_BODY + 10;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    response *r = request_on(fx.port, "POST", "/admin/add_app", big, n);
    free(big);
    expect_has(r, 413, "larger than 1048576 bytes");
    expect(request_on(fx.port, "GET", "/admin/ping", NULL, 0), 200, "PONG");
}

static void drop(cl_bus *bus, cl_msg *msg, void *closure)
{
    (void)bus;
    (void)closure;
    cl_msg_free(msg); /* never answers */
}

static void test_an_admin_that_does_not_answer_gives_503_after_the_timeout(void **state)
{
    (void)state;
    /* A second cluster prefix whose "admin" takes requests and never replies. */
    cl_bus *bus2 = NULL;
    char prefix2[48];
    snprintf(prefix2, sizeof(prefix2), "%sx", fx.prefix);
    assert_int_equal(cl_test_bus_connect(&bus2, &cl_test_srv, prefix2), 0);
    cl_sub *mute = NULL;
    char subject[CL_SUBJECT_MAX];
    snprintf(subject, sizeof(subject), "%s.admin.*", prefix2);
    assert_int_equal(cl_bus_subscribe(&mute, bus2, subject, "admin", drop, NULL), CL_OK);
    assert_int_equal(cl_bus_flush(bus2, 2000), CL_OK);
    cl_admin_http *h2 = NULL;
    cl_err err;
    assert_int_equal(cl_admin_http_start(&h2, bus2, "127.0.0.1", 0, &err), CL_OK);
    cl_admin_http_set_timeout(h2, 300);
    uint64_t t0 = cl_mono_us();
    response *r = request_on(cl_admin_http_port(h2), "POST", "/admin/add_app", APP_BODY,
                             strlen(APP_BODY));
    uint64_t took = cl_mono_us() - t0;
    char want[128];
    snprintf(want, sizeof(want), "The admin actor does not answer on %s.admin.add_app: no reply "
                                 "within 300 ms",
             prefix2);
    expect(r, 503, want);
    assert_true(took >= 250000 && took < 5000000);
    cl_sub_free(mute);
    /* No responders at all: answered at once. */
    t0 = cl_mono_us();
    r = request_on(cl_admin_http_port(h2), "GET", "/admin/ping", NULL, 0);
    expect_has(r, 503, "no admin is running on this bus");
    assert_true(cl_mono_us() - t0 < 250000);
    cl_admin_http_free(h2);
    cl_bus_free(bus2);
    /* The first door was never affected. */
    expect(request_on(fx.port, "GET", "/admin/ping", NULL, 0), 200, "PONG");
}

/* ---- one source of truth ------------------------------------------------- */

static char *nats_call(const char *cmd, const char *body)
{
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_admin(subject, fx.prefix, cmd, &err), CL_OK);
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(fx.bus, subject, body, strlen(body), 5000, &reply), CL_OK);
    char *text = strndup(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    return text;
}

static void test_http_and_nats_see_the_same_state(void **state)
{
    (void)state;
    expect(post("add_app", APP_BODY), 200, "Successfully added application with name 'a'");
    char *seen = nats_call("get_all_applications", "{\"verbose\":false}");
    assert_string_equal(seen, "{\"ok\":true,\"result\":[\"a\"]}");
    free(seen);
    free(nats_call("add_app", "{\"name\":\"b\",\"input_type\":\"ints\",\"default_output\":\"0\","
                              "\"latency_slo_micros\":1000}"));
    expect(post("get_all_applications", "{\"verbose\":false}"), 200, "[\"a\",\"b\"]");
}

static void test_a_door_without_an_admin_of_its_own_is_served_by_another(void **state)
{
    (void)state;
    /* A second bus connection (as another process would have) with only
     * the HTTP door: the admin on fx.bus answers its requests. */
    cl_bus *bus2 = NULL;
    assert_int_equal(cl_test_bus_connect(&bus2, &cl_test_srv, fx.prefix), 0);
    cl_admin_http *h2 = NULL;
    cl_err err;
    assert_int_equal(cl_admin_http_start(&h2, bus2, "127.0.0.1", 0, &err), CL_OK);
    int p2 = cl_admin_http_port(h2);
    expect(request_on(p2, "POST", "/admin/add_app", APP_BODY, strlen(APP_BODY)), 200,
           "Successfully added application with name 'a'");
    expect(post("get_application", "{\"name\":\"a\"}"), 200,
           "{\"input_type\":\"doubles\",\"default_output\":\"-1.0\",\"latency_slo_micros\":"
           "100000,\"name\":\"a\",\"linked_models\":[]}");
    cl_admin_http_free(h2);
    cl_bus_free(bus2);
}

static void test_a_taken_port_is_a_clear_error(void **state)
{
    (void)state;
    cl_admin_http *h2 = NULL;
    cl_err err;
    cl_status st = cl_admin_http_start(&h2, fx.bus, "127.0.0.1", fx.port, &err);
    assert_int_not_equal(st, CL_OK);
    char want[96];
    snprintf(want, sizeof(want), "cannot serve the management REST on 127.0.0.1:%d", fx.port);
    if (strstr(err.msg, want) == NULL)
        fail_msg("unclear error: %s", err.msg);
    st = cl_admin_http_start(&h2, fx.bus, "no such host.invalid", 0, &err);
    assert_int_not_equal(st, CL_OK);
    assert_non_null(strstr(err.msg, "cannot serve the management REST on host 'no such host.invalid'"));
}

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cl_test_nats_group_setup(state);
}

static int group_teardown(void **state)
{
    int r = cl_test_nats_group_teardown(state);
    curl_global_cleanup();
    return r;
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ping_goes_through_the_admin_and_answers_pong),
        T(test_text_results_are_plain_text_and_errors_are_400_text),
        T(test_other_results_are_json_text),
        T(test_invalid_input_type_is_a_400_not_a_dropped_connection),
        T(test_bodies_that_are_not_json_get_clippers_parse_error),
        T(test_unknown_routes_get_404_naming_the_valid_ones),
        T(test_wrong_methods_get_405_with_allow),
        T(test_bodies_over_the_cap_get_413_and_the_server_keeps_serving),
        T(test_an_admin_that_does_not_answer_gives_503_after_the_timeout),
        T(test_http_and_nats_see_the_same_state),
        T(test_a_door_without_an_admin_of_its_own_is_served_by_another),
        T(test_a_taken_port_is_a_clear_error),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
