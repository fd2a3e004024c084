/* 'clipper admin' and 'clipper predict': one request over the bus, the reply
 * printed for a human or a script.
 *
 * Every failure gets a sentence that says what to do: the bus cannot be
 * reached, nobody serves the subject, nobody answered in time, the body is
 * not JSON, the admin refused the command. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cl_actor.h"
#include "cl_buf.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_subject.h"
#include "cli_internal.h"

#define DEFAULT_TIMEOUT_MS 10000

typedef struct {
    const char *cmd;      /* "clipper admin" */
    cl_actor_opts bus;
    long timeout_ms;
    const char *pos[2];   /* positional arguments */
    int n_pos;
    char creds[4096 + 64]; /* --data-dir's operator identity and CA */
    char ca[4096 + 64];
} request_args;

static void admin_usage(FILE *f)
{
    fprintf(f,
            "usage: clipper admin COMMAND [JSON | -] [options]\n"
            "\n"
            "Sends a management command to the admin actor (<prefix>.admin.COMMAND) with\n"
            "Clipper's management REST body (default {}; '-' reads it from stdin), and\n"
            "prints the result. Exits 1 with the error on stderr when it fails.\n"
            "\n"
            "commands: ping, add_app, delete_app, get_all_applications, get_application,\n"
            "  add_model, get_all_models, get_model, delete_versioned_model,\n"
            "  set_model_version, add_model_links, delete_model_links, get_linked_models,\n"
            "  get_all_containers, get_container, set_num_replicas\n"
            "\n"
            "example: clipper admin add_app '{\"name\": \"hello\", \"input_type\": \"doubles\",\n"
            "           \"default_output\": \"-1.0\", \"latency_slo_micros\": 100000}'\n"
            "\n"
            "options:\n"
            "%s"
            "  --data-dir DIR connect as the operator identity of the cluster started with\n"
            "                 'clipper start --data-dir DIR' (its --creds and --tls-ca)\n"
            "  --timeout MS   how long to wait for the answer (default %d)\n",
            cl_actor_common_usage(), DEFAULT_TIMEOUT_MS);
}

static void predict_usage(FILE *f)
{
    fprintf(f,
            "usage: clipper predict APP JSON [options]\n"
            "\n"
            "Sends a query to application APP over the bus (<prefix>.predict.APP) and prints\n"
            "the reply. JSON is Clipper's predict body, e.g. '{\"input\": [1.0, 2.0]}' or\n"
            "'{\"input_batch\": [[1.0], [2.0]]}'; '-' reads it from stdin. Exits 1 when the\n"
            "reply is an error.\n"
            "\n"
            "options:\n"
            "%s"
            "  --data-dir DIR connect as the operator identity of the cluster started with\n"
            "                 'clipper start --data-dir DIR' (its --creds and --tls-ca)\n"
            "  --timeout MS   how long to wait for the answer (default %d)\n",
            cl_actor_common_usage(), DEFAULT_TIMEOUT_MS);
}

/* Returns 0 to go on, 1 after --help (exit 0), 2 after a usage error. */
static int parse(request_args *a, int argc, char **argv, int max_pos, void (*usage)(FILE *))
{
    /* The bus logs reconnects and the like; a one-shot command shows only
     * its own messages unless CLIPPER_LOG asks for more. */
    if (getenv("CLIPPER_LOG") == NULL)
        cl_log_set_level(CL_LOG_ERROR);
    cl_actor_opts_init(&a->bus);
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    a->n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        cl_err err;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 1;
        }
        int r = cl_actor_parse_common(&a->bus, argc, argv, &i, &err);
        if (r < 0) {
            fprintf(stderr, "%s: %s\n", a->cmd, err.msg);
            return 2;
        }
        if (r > 0)
            continue;
        r = cl_actor_take_value(a->cmd, "--data-dir", argc, argv, &i, &v);
        if (r < 0)
            return 2;
        if (r > 0) {
            /* The operator identity and CA 'clipper start' made there. */
            snprintf(a->creds, sizeof(a->creds), "%s/secrets/creds/operator.creds", v);
            snprintf(a->ca, sizeof(a->ca), "%s/secrets/ca.pem", v);
            if (access(a->creds, R_OK) != 0 || access(a->ca, R_OK) != 0) {
                fprintf(stderr, "%s: %s has no operator identity (%s): was the cluster started "
                                "there with 'clipper start --data-dir %s'?\n",
                        a->cmd, v, a->creds, v);
                return 2;
            }
            a->bus.creds_file = a->creds;
            a->bus.tls_ca_file = a->ca;
            continue;
        }
        r = cl_actor_take_value(a->cmd, "--timeout", argc, argv, &i, &v);
        if (r < 0)
            return 2;
        if (r > 0) {
            if (cl__cli_parse_int(a->cmd, "--timeout", v, 1, 3600000, &a->timeout_ms) != 0)
                return 2;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "%s: unknown option '%s'\n\n", a->cmd, argv[i]);
            usage(stderr);
            return 2;
        }
        if (a->n_pos == max_pos) {
            fprintf(stderr, "%s: unexpected argument '%s' (put the JSON body in one quoted "
                            "argument)\n\n", a->cmd, argv[i]);
            usage(stderr);
            return 2;
        }
        a->pos[a->n_pos++] = argv[i];
    }
    return 0;
}

/* The body argument, or stdin for "-". *out is malloc'd. */
static int read_body(const request_args *a, const char *arg, char **out, size_t *len)
{
    cl_buf b;
    cl_buf_init(&b);
    if (strcmp(arg, "-") == 0) {
        char chunk[65536];
        ssize_t n;
        while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) > 0) {
            if (cl_buf_append(&b, chunk, (size_t)n) != CL_OK)
                break;
        }
    } else if (cl_buf_append_str(&b, arg) != CL_OK) {
        cl_buf_deinit(&b);
        fprintf(stderr, "%s: out of memory reading the body\n", a->cmd);
        return -1;
    }
    *out = cl_buf_steal(&b, len);
    if (*out == NULL) {
        fprintf(stderr, "%s: out of memory reading the body\n", a->cmd);
        return -1;
    }
    return 0;
}

/* Validates that body is JSON before anything goes on the bus. */
static bool body_is_json(const request_args *a, const char *body, size_t len)
{
    cJSON *j = NULL;
    cl_err err;
    if (cl_json_parse(&j, body, len, &err) != CL_OK) {
        fprintf(stderr, "%s: the body is not valid JSON: %s\n  body: %.200s%s\n", a->cmd,
                err.msg, body, len > 200 ? "..." : "");
        return false;
    }
    cJSON_Delete(j);
    return true;
}

/* Connects and sends; on success *reply holds the answer. who names the
 * actor expected to answer ("admin", "frontend") for the error texts; a
 * query may be sent twice (the frontend answers each), an admin command
 * is sent once. */
static int send_request(const request_args *a, const char *subject, const char *body, size_t len,
                        const char *who, bool query, cl_msg **reply)
{
    cl_bus_opts bo;
    cl_bus_opts_init(&bo);
    bo.url = a->bus.nats_url;
    bo.prefix = a->bus.prefix;
    bo.name = "clipper-cli";
    bo.send_asap = true;
    bo.nkey_file = a->bus.creds_file;
    bo.tls_ca_file = a->bus.tls_ca_file;
    cl_err err;
    cl_bus *bus = NULL;
    if (cl_bus_connect(&bus, &bo, &err) != CL_OK) {
        fprintf(stderr, "%s: %s\n", a->cmd, err.msg);
        return 1;
    }
    int rc = 1;
    cl_status s = query ? cl_bus_request_resend(bus, subject, body, len, (int)a->timeout_ms, reply)
                        : cl_bus_request(bus, subject, body, len, (int)a->timeout_ms, reply);
    switch (s) {
    case CL_OK:
        rc = 0;
        break;
    case CL_ERR_NO_RESPONDERS:
        fprintf(stderr,
                "%s: no %s is running for prefix '%s' on %s (nobody listens on %s); start a "
                "cluster with 'clipper start', or 'clipper run %s', or check --prefix\n",
                a->cmd, who, a->bus.prefix, a->bus.nats_url, subject, who);
        break;
    case CL_ERR_TIMEOUT:
        fprintf(stderr, "%s: the %s did not answer on %s within %ld ms (raise --timeout if it "
                        "is busy)\n",
                a->cmd, who, subject, a->timeout_ms);
        break;
    case CL_ERR_TOO_LARGE:
        fprintf(stderr, "%s: the body (%zu bytes) is larger than the server's max payload\n",
                a->cmd, len);
        break;
    default:
        fprintf(stderr, "%s: request on %s failed: %s\n", a->cmd, subject, cl_status_text(s));
        break;
    }
    cl_bus_free(bus);
    return rc;
}

/* The request itself: reads the body argument (stdin for "-"), checks it
 * is JSON, sends it on subject and parses the reply into *j (NULL when the
 * reply is not JSON; *reply keeps its bytes). Returns 0, or 1 after saying
 * why. The caller frees *reply and *j either way. */
static int exchange(const request_args *a, const char *subject, const char *body_arg,
                    const char *who, bool query, cl_msg **reply, cJSON **j)
{
    char *body = NULL;
    size_t len = 0;
    if (read_body(a, body_arg, &body, &len) != 0)
        return 1;
    int rc = 1;
    if (body_is_json(a, body, len) && send_request(a, subject, body, len, who, query, reply) == 0) {
        *j = cJSON_ParseWithLength(cl_msg_data(*reply), cl_msg_len(*reply));
        rc = 0;
    }
    free(body);
    return rc;
}

static void print_json(const cJSON *j)
{
    char *s = cJSON_Print(j);
    if (s != NULL) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

int cl__cli_admin(int argc, char **argv)
{
    request_args a = {.cmd = "clipper admin"};
    int r = parse(&a, argc, argv, 2, admin_usage);
    if (r != 0)
        return r == 1 ? 0 : 2;
    if (a.n_pos == 0) {
        fprintf(stderr, "clipper admin: which command? (e.g. 'clipper admin ping')\n\n");
        admin_usage(stderr);
        return 2;
    }
    const char *command = a.pos[0];
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    if (cl_subj_admin(subject, a.bus.prefix, command, &err) != CL_OK) {
        fprintf(stderr, "clipper admin: '%s' is not a valid command name: %s\n", command, err.msg);
        return 2;
    }
    int rc = 1;
    cl_msg *reply = NULL;
    cJSON *j = NULL;
    if (exchange(&a, subject, a.n_pos > 1 ? a.pos[1] : "{}", "admin", false, &reply, &j) != 0)
        goto out;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
    if (!cJSON_IsBool(ok)) {
        fprintf(stderr, "clipper admin: unexpected reply from the admin on %s: %.*s\n", subject,
                (int)cl_msg_len(reply), (const char *)cl_msg_data(reply));
        goto out;
    }
    if (cJSON_IsFalse(ok)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        fprintf(stderr, "clipper admin %s: %s\n", command,
                cJSON_IsString(e) ? e->valuestring : "failed (no error text)");
        goto out;
    }
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(j, "result");
    if (cJSON_IsString(result))
        printf("%s\n", result->valuestring);
    else if (result != NULL)
        print_json(result);
    rc = 0;
out:
    fflush(stdout);
    cJSON_Delete(j);
    cl_msg_free(reply);
    return rc;
}

int cl__cli_predict(int argc, char **argv)
{
    request_args a = {.cmd = "clipper predict"};
    int r = parse(&a, argc, argv, 2, predict_usage);
    if (r != 0)
        return r == 1 ? 0 : 2;
    if (a.n_pos < 2) {
        fprintf(stderr, "clipper predict: %s\n\n",
                a.n_pos == 0 ? "which application, and what input?"
                             : "what input? (e.g. '{\"input\": [1.0, 2.0]}')");
        predict_usage(stderr);
        return 2;
    }
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    if (cl_subj_predict(subject, a.bus.prefix, a.pos[0], &err) != CL_OK) {
        fprintf(stderr, "clipper predict: '%s' is not a valid application name: %s\n", a.pos[0],
                err.msg);
        return 2;
    }
    int rc = 1;
    cl_msg *reply = NULL;
    cJSON *j = NULL;
    if (exchange(&a, subject, a.pos[1], "frontend", true, &reply, &j) != 0)
        goto out;
    if (j == NULL) {
        printf("%.*s\n", (int)cl_msg_len(reply), (const char *)cl_msg_data(reply));
        goto out;
    }
    print_json(j);
    rc = cJSON_GetObjectItemCaseSensitive(j, "error") != NULL ? 1 : 0;
out:
    fflush(stdout);
    cJSON_Delete(j);
    cl_msg_free(reply);
    return rc;
}
