#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_state.h"
#include "cl_wire.h"
#include "manager_test_util.h"

void mt_put_model(cl_kv *kv, const char *name, const char *version, int64_t replicas)
{
    mt_put_model_as(kv, name, version, replicas, "python-closure", "NO_CONTAINER");
}

static void put(cl_kv *kv, const char *name, const char *version, int64_t replicas,
                const char *runtime, const char *container_name, const char *resources)
{
    cl_model m;
    memset(&m, 0, sizeof(m));
    m.name = (char *)name;
    m.version = (char *)version;
    m.input_type = CL_INPUT_DOUBLES;
    m.container_name = (char *)container_name;
    m.model_data_path = "DEPRECATED";
    m.batch_size = -1;
    m.num_replicas = replicas;
    m.runtime = (char *)runtime;
    m.artifact_sha256 = "";
    m.resources = (char *)(resources ? resources : "");
    cJSON *j = cl_model_to_json(&m);
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char key[CL_KEY_MAX];
    cl_err err;
    assert_int_equal(cl_key_model(key, name, version, &err), CL_OK);
    assert_int_equal(cl_kv_put(kv, key, s, strlen(s), NULL, &err), CL_OK);
    free(s);
}

cJSON *mt_cm_request(cl_bus *bus, const char *prefix, const char *command)
{
    char subject[256];
    snprintf(subject, sizeof(subject), "%s.cm.%s", prefix, command);
    cl_msg *reply = NULL;
    assert_int_equal(cl_bus_request(bus, subject, "{}", 2, 3000, &reply), CL_OK);
    cJSON *j = cJSON_ParseWithLength(cl_msg_data(reply), cl_msg_len(reply));
    cl_msg_free(reply);
    assert_non_null(j);
    return j;
}

const cJSON *mt_status_entry(const cJSON *list, const char *model, int n)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        const cJSON *mm = cJSON_GetObjectItem(o, "model");
        const cJSON *r = cJSON_GetObjectItem(o, "replica");
        if (cJSON_IsString(mm) && strcmp(mm->valuestring, model) == 0 && cJSON_IsNumber(r) &&
            r->valueint == n)
            return o;
    }
    return NULL;
}

void mt_put_model_as(cl_kv *kv, const char *name, const char *version, int64_t replicas,
                     const char *runtime, const char *container_name)
{
    put(kv, name, version, replicas, runtime, container_name, NULL);
}

void mt_put_model_res(cl_kv *kv, const char *name, const char *version, int64_t replicas,
                      const char *resources)
{
    put(kv, name, version, replicas, "python-closure", "NO_CONTAINER", resources);
}
