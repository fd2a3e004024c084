/* get_all_containers and get_container: Clipper's container listing,
 * answered from the live-replica table (heartbeats) instead of Redis,
 * and the command table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "cl_wire.h"

static const char CONTAINER_SCHEMA[] = "\n"
                                       "  {\n"
                                       "    \"model_name\" := string,\n"
                                       "    \"model_version\" := string,\n"
                                       "    \"replica_id\" := int\n"
                                       "  }\n";

static int cmp_replica(const void *x, const void *y)
{
    const cl_replica_info *a = x, *b = y;
    int c = strcmp(a->model, b->model);
    if (c == 0)
        c = strcmp(a->version, b->version);
    if (c == 0)
        c = a->replica_id < b->replica_id ? -1 : a->replica_id > b->replica_id;
    return c;
}

/* Clipper's container object plus the heartbeat's state, cause, host and
 * pid. The input type comes from the heartbeat, else from the model. */
static cJSON *container_reply(cl_admin *a, const cl_replica_info *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    char id[2 * CL_TOKEN_MAX + 2];
    snprintf(id, sizeof(id), "%s:%s", r->model, r->version);
    cJSON_AddStringToObject(o, "model_id", id);
    cJSON_AddStringToObject(o, "model_name", r->model);
    cJSON_AddStringToObject(o, "model_version", r->version);
    cJSON_AddNumberToObject(o, "model_replica_id", r->replica_id);
    const char *type = r->input_type;
    cl_model m = {0};
    admin_reply scratch = {0};
    if (type[0] == '\0' && cl__store_model(a, r->model, r->version, &m, NULL, &scratch) == CL_OK)
        type = cl_input_type_name((cl_input_type)m.input_type);
    cJSON_AddStringToObject(o, "input_type", type);
    cl_model_deinit(&m);
    cl__admin_reply_reset(&scratch);
    cJSON_AddStringToObject(o, "state", r->state);
    cJSON_AddStringToObject(o, "cause", r->cause);
    cJSON_AddStringToObject(o, "host", r->host);
    cJSON_AddNumberToObject(o, "pid", r->pid);
    return o;
}

cl_status cl__cmd_get_all_containers(cl_admin *a, const void *data, size_t len,
                                     admin_reply *rep)
{
    admin_req q;
    bool verbose;
    if (!cl__req_parse(&q, data, len, cl__verbose_schema, rep) ||
        !cl__req_bool(&q, "verbose", &verbose))
        goto out;
    cl_replica_info *live = NULL;
    size_t n = cl_replicas_snapshot(a->replicas, NULL, NULL, &live);
    if (n > 1)
        qsort(live, n, sizeof(*live), cmp_replica);
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; list && i < n; i++) {
        if (verbose) {
            cJSON_AddItemToArray(list, container_reply(a, &live[i]));
        } else {
            char id[2 * CL_TOKEN_MAX + 16];
            snprintf(id, sizeof(id), "%s:%s:%u", live[i].model, live[i].version,
                     live[i].replica_id);
            cJSON_AddItemToArray(list, cJSON_CreateString(id));
        }
    }
    free(live);
    cl__admin_ok_json(rep, list);
out:
    cl__req_done(&q);
    return CL_OK;
}

cl_status cl__cmd_get_container(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name, *version;
    int64_t replica_id;
    if (!cl__req_model(&q, data, len, CONTAINER_SCHEMA, &name, &version, rep) ||
        !cl__req_int(&q, "replica_id", &replica_id))
        goto out;
    cl_replica_info *live = NULL;
    size_t n = cl_replicas_snapshot(a->replicas, name, version, &live);
    cJSON *found = NULL;
    for (size_t i = 0; i < n && found == NULL; i++)
        if ((int64_t)live[i].replica_id == replica_id)
            found = container_reply(a, &live[i]);
    free(live);
    cl__admin_ok_json(rep, found ? found : cJSON_CreateObject());
out:
    cl__req_done(&q);
    return CL_OK;
}

static CL_MUST_USE cl_status cmd_ping(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    (void)a;
    (void)data;
    (void)len;
    cl__admin_ok_text(rep, "PONG");
    return CL_OK;
}

static const struct {
    const char *name;
    admin_handler fn;
} commands[] = {
    {"add_app", cl__cmd_add_app},
    {"delete_app", cl__cmd_delete_app},
    {"get_all_applications", cl__cmd_get_all_applications},
    {"get_application", cl__cmd_get_application},
    {"add_model", cl__cmd_add_model},
    {"get_all_models", cl__cmd_get_all_models},
    {"get_model", cl__cmd_get_model},
    {"delete_versioned_model", cl__cmd_delete_versioned_model},
    {"set_model_version", cl__cmd_set_model_version},
    {"add_model_links", cl__cmd_add_model_links},
    {"delete_model_links", cl__cmd_delete_model_links},
    {"get_linked_models", cl__cmd_get_linked_models},
    {"get_state", cl__cmd_get_state},
    {"get_all_containers", cl__cmd_get_all_containers},
    {"get_container", cl__cmd_get_container},
    {"set_num_replicas", cl__cmd_set_num_replicas},
    {"ping", cmd_ping},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

void cl__admin_known_commands(char *out, size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_COMMANDS && off < cap; i++) {
        int n = snprintf(out + off, cap - off, "%s%s", i ? ", " : "", commands[i].name);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

cl_status cl__admin_dispatch(cl_admin *a, const char *command, const void *data, size_t len,
                             admin_reply *rep)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, command) == 0)
            return commands[i].fn(a, data, len, rep);
    char known[1024];
    cl__admin_known_commands(known, sizeof(known));
    cl__admin_fail(rep, "Unknown admin command '%s'. Known commands: %s", command, known);
    return CL_OK;
}
