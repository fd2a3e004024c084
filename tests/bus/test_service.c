/* Integration tests of the NATS service API answers (bus/service.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_bus.h"
#include "cl_json.h"
#include "cl_service.h"
#include "cl_test_nats.h"

static cl_bus *bus;

static int group_setup(void **state)
{
    if (cl_test_nats_group_setup(state) != 0)
        return -1;
    if (cl_test_bus_connect(&bus, &cl_test_srv, NULL) != 0) {
        cl_test_nats_group_teardown(state);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    cl_bus_free(bus);
    return cl_test_nats_group_teardown(state);
}

static void add_stats(void *closure, cJSON *data)
{
    cJSON_AddNumberToObject(data, "queue_depth", *(int *)closure);
}

static cl_service *start(const char *name, int *depth)
{
    static const char *const endpoints[] = {"clipper.predict.*", "clipper.update.*", NULL};
    cl_service_info info = {
        .name = name,
        .version = "0.1.0",
        .description = "test actor",
        .endpoints = endpoints,
        .stats = add_stats,
        .closure = depth,
    };
    cl_service *svc = NULL;
    cl_err err;
    if (cl_service_start(&svc, bus, &info, &err) != CL_OK)
        fail_msg("start: %s", err.msg);
    assert_int_equal(cl_bus_flush(bus, 1000), CL_OK);
    return svc;
}

static cJSON *ask(const char *subject)
{
    cl_msg *m = NULL;
    cl_status st = cl_bus_request(bus, subject, "", 0, 2000, &m);
    if (st != CL_OK)
        fail_msg("request %s: %s", subject, cl_status_text(st));
    cJSON *o = NULL;
    cl_err err;
    if (cl_json_parse_object(&o, cl_msg_data(m), cl_msg_len(m), &err) != CL_OK)
        fail_msg("reply: %s", err.msg);
    cl_msg_free(m);
    return o;
}

static void check_common(const cJSON *o, const char *type, const char *name, const char *id)
{
    cl_err err;
    const char *s;
    assert_int_equal(cl_json_get_string(o, "type", &s, &err), CL_OK);
    assert_string_equal(s, type);
    assert_int_equal(cl_json_get_string(o, "name", &s, &err), CL_OK);
    assert_string_equal(s, name);
    assert_int_equal(cl_json_get_string(o, "id", &s, &err), CL_OK);
    assert_string_equal(s, id);
    assert_int_equal(cl_json_get_string(o, "version", &s, &err), CL_OK);
    assert_string_equal(s, "0.1.0");
}

static void test_ping_answers_on_all_three_subjects(void **state)
{
    (void)state;
    int depth = 0;
    cl_service *svc = start("clipper-test", &depth);
    const char *id = cl_service_id(svc);
    assert_int_equal(strlen(id), 22);
    char subj[3][128];
    snprintf(subj[0], sizeof(subj[0]), "$SRV.PING");
    snprintf(subj[1], sizeof(subj[1]), "$SRV.PING.clipper-test");
    snprintf(subj[2], sizeof(subj[2]), "$SRV.PING.clipper-test.%s", id);
    for (int i = 0; i < 3; i++) {
        cJSON *o = ask(subj[i]);
        check_common(o, "io.nats.micro.v1.ping_response", "clipper-test", id);
        cJSON_Delete(o);
    }
    cl_msg *m = NULL;
    assert_int_equal(cl_bus_request(bus, "$SRV.PING.other-service", "", 0, 500, &m),
                     CL_ERR_NO_RESPONDERS);
    cl_service_free(svc);
    assert_int_equal(cl_bus_request(bus, "$SRV.PING.clipper-test", "", 0, 500, &m),
                     CL_ERR_NO_RESPONDERS);
}

static void test_info_lists_description_and_endpoints(void **state)
{
    (void)state;
    int depth = 0;
    cl_service *svc = start("clipper-info", &depth);
    cJSON *o = ask("$SRV.INFO.clipper-info");
    check_common(o, "io.nats.micro.v1.info_response", "clipper-info", cl_service_id(svc));
    cl_err err;
    const char *s;
    assert_int_equal(cl_json_get_string(o, "description", &s, &err), CL_OK);
    assert_string_equal(s, "test actor");
    const cJSON *eps;
    assert_int_equal(cl_json_get_array(o, "endpoints", &eps, &err), CL_OK);
    assert_int_equal(cJSON_GetArraySize(eps), 2);
    assert_int_equal(cl_json_get_string(cJSON_GetArrayItem(eps, 0), "subject", &s, &err), CL_OK);
    assert_string_equal(s, "clipper.predict.*");
    assert_int_equal(cl_json_get_string(cJSON_GetArrayItem(eps, 0), "name", &s, &err), CL_OK);
    assert_string_equal(s, "predict");
    cJSON_Delete(o);
    cl_service_free(svc);
}

static void test_stats_count_requests_errors_and_time(void **state)
{
    (void)state;
    int depth = 7;
    cl_service *svc = start("clipper-stats", &depth);
    cl_service_count(svc, 0, 1000);
    cl_service_count(svc, 1, 3000);
    cl_service_count(svc, 0, 2000);
    char subj[128];
    snprintf(subj, sizeof(subj), "$SRV.STATS.clipper-stats.%s", cl_service_id(svc));
    cJSON *o = ask(subj);
    check_common(o, "io.nats.micro.v1.stats_response", "clipper-stats", cl_service_id(svc));
    cl_err err;
    const char *s;
    assert_int_equal(cl_json_get_string(o, "started", &s, &err), CL_OK);
    assert_int_equal(strlen(s), 20);
    const cJSON *eps;
    assert_int_equal(cl_json_get_array(o, "endpoints", &eps, &err), CL_OK);
    const cJSON *e = cJSON_GetArrayItem(eps, 0);
    int64_t v;
    assert_int_equal(cl_json_get_int(e, "num_requests", &v, &err), CL_OK);
    assert_int_equal(v, 3);
    assert_int_equal(cl_json_get_int(e, "num_errors", &v, &err), CL_OK);
    assert_int_equal(v, 1);
    assert_int_equal(cl_json_get_int(e, "processing_time", &v, &err), CL_OK);
    assert_int_equal(v, 6000);
    assert_int_equal(cl_json_get_int(e, "average_processing_time", &v, &err), CL_OK);
    assert_int_equal(v, 2000);
    const cJSON *data = cJSON_GetObjectItem(e, "data");
    assert_int_equal(cl_json_get_int(data, "queue_depth", &v, &err), CL_OK);
    assert_int_equal(v, 7);
    cJSON_Delete(o);
    cl_service_free(svc);
}

static void test_bad_service_name_is_rejected(void **state)
{
    (void)state;
    cl_service_info info = {.name = "bad name", .version = "1"};
    cl_service *svc = NULL;
    cl_err err;
    assert_int_equal(cl_service_start(&svc, bus, &info, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'bad name'"));
    cl_service_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_answers_on_all_three_subjects),
        cmocka_unit_test(test_info_lists_description_and_endpoints),
        cmocka_unit_test(test_stats_count_requests_errors_and_time),
        cmocka_unit_test(test_bad_service_name_is_rejected),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
