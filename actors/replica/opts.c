/* The replica's command line: which bus, which cluster (the shared actor
 * options), which model version, which replica id. Pure parsing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "replica_internal.h"

void cl__replica_usage(FILE *out, const char *program)
{
    fprintf(out,
            "usage: %s --model NAME --version V [options]\n"
            "\n"
            "Serves one model version: fetches its function from the bus, runs it in\n"
            "an embedded Python, and answers the batches the router sends.\n"
            "\n"
            "options:\n"
            "  --model NAME   model name (required)\n"
            "  --version V    model version (required)\n"
            "  --replica-id N this replica's id, 0..2147483647 (default: random)\n"
            "  --health-port N  answer GET /ready and GET /live on port N (all\n"
            "                 addresses), for a platform's probes (default: none)\n"
            "  --exit-after-bus-loss S  exit (code 1) when the bus has been unreachable\n"
            "                 for S seconds (default 0: never); the local backend's\n"
            "                 replicas, which outlive their manager, use 60\n"
            "  --host-name NAME  the host its heartbeats name (env CLIPPER_HOST_NAME;\n"
            "                 default: the system's host name); the manager that\n"
            "                 started it gives its own\n"
            "%s"
            "\n"
            "Exit codes: 0 stopped by SIGINT/SIGTERM, 1 bus unreachable, 2 bad usage,\n"
            "3 the model cannot be served (the cause is in the log and the heartbeat).\n",
            program ? program : "clipper run replica", cl_actor_common_usage());
}

static CL_MUST_USE cl_status parse_id(const char *text, uint32_t *out, cl_err *err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < 0 || v > 0x7fffffffLL)
        return cl_err_set(err, CL_ERR_INVALID,
                          "--replica-id must be an integer from 0 to 2147483647, got '%s'", text);
    *out = (uint32_t)v;
    return CL_OK;
}

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past a separate
 * value. 1 matched, 0 not this option, -1 value missing (err set). */
/* cl_actor_take_value, plus: an empty value is as bad as none. */
static int take_value(const char *name, int argc, char **argv, int *i, const char **value,
                      cl_err *err)
{
    *value = NULL;
    int r = cl_actor_take_value(NULL, name, argc, argv, i, value);
    if (r == 0)
        return 0;
    if (r < 0 || *value == NULL || **value == '\0') {
        cl_err_set(err, CL_ERR_INVALID, "option %s needs a value", name);
        return -1;
    }
    return 1;
}

cl_status cl__replica_opts_parse(cl__replica_opts *opts, int argc, char **argv, cl_err *err)
{
    memset(opts, 0, sizeof(*opts));
    cl_actor_opts_init(&opts->actor);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        int r = cl_actor_parse_common(&opts->actor, argc, argv, &i, err);
        if (r < 0)
            return CL_ERR_INVALID;
        if (r > 0)
            continue;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            opts->help = true;
            return CL_OK;
        }
        if ((r = take_value("--model", argc, argv, &i, &value, err)) != 0) {
            if (r < 0)
                return CL_ERR_INVALID;
            opts->model = value;
        } else if ((r = take_value("--version", argc, argv, &i, &value, err)) != 0) {
            if (r < 0)
                return CL_ERR_INVALID;
            opts->version = value;
        } else if ((r = take_value("--replica-id", argc, argv, &i, &value, err)) != 0) {
            if (r < 0 || parse_id(value, &opts->replica_id, err) != CL_OK)
                return CL_ERR_INVALID;
            opts->replica_id_given = true;
        } else if ((r = take_value("--health-port", argc, argv, &i, &value, err)) != 0) {
            long port = 0;
            if (r < 0 || !cl_actor_parse_long(value, 1, 65535, &port))
                return r < 0 ? CL_ERR_INVALID
                             : cl_err_set(err, CL_ERR_INVALID,
                                          "--health-port must be a port number from 1 to "
                                          "65535, got '%s'",
                                          value);
            opts->health_port = (int)port;
        } else if ((r = take_value("--host-name", argc, argv, &i, &value, err)) != 0) {
            if (r < 0)
                return CL_ERR_INVALID;
            /* Read by cl_host_name() wherever the host is reported. */
            setenv("CLIPPER_HOST_NAME", value, 1);
        } else if ((r = take_value("--exit-after-bus-loss", argc, argv, &i, &value, err)) != 0) {
            long secs = 0;
            if (r < 0 || !cl_actor_parse_long(value, 0, 86400, &secs))
                return r < 0 ? CL_ERR_INVALID
                             : cl_err_set(err, CL_ERR_INVALID,
                                          "--exit-after-bus-loss must be a whole number of "
                                          "seconds from 0 to 86400, got '%s'",
                                          value);
            opts->exit_after_bus_loss_s = (int)secs;
        } else {
            return cl_err_set(err, CL_ERR_INVALID, "unknown argument '%s'", arg);
        }
    }
    if (!opts->model)
        return cl_err_set(err, CL_ERR_INVALID, "--model NAME is required");
    if (!opts->version)
        return cl_err_set(err, CL_ERR_INVALID, "--version V is required");
    if (!cl_token_valid(opts->model, "model name", err) ||
        !cl_token_valid(opts->version, "model version", err))
        return CL_ERR_INVALID;
    return CL_OK;
}

uint32_t cl__replica_random_id(void)
{
    uint32_t v = 0;
    while (v == 0) {
        if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
            /* No entropy source: fall back to the bus' unique tokens. */
            char token[23];
            cl_bus_new_token(token);
            for (const char *p = token; *p; p++)
                v = v * 31u + (uint8_t)*p;
        }
        v &= 0x7fffffffu;
    }
    return v;
}

char *cl__replica_pull_body(uint32_t replica_id, uint64_t completed, bool reconnected)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    char *out = NULL;
    if (cJSON_AddNumberToObject(obj, "replica_id", (double)replica_id) &&
        cJSON_AddNumberToObject(obj, "completed", (double)completed) &&
        (!reconnected || cJSON_AddTrueToObject(obj, "reconnected")))
        out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return out;
}
