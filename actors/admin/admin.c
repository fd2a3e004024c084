/* The admin actor's lifecycle: a pull subscription on <p>.admin.* in queue
 * group "admin", read by one worker thread of its own (so no bus callback
 * ever waits on the KV store), the reply envelope, and the process entry
 * point, which also starts the management REST (admin_http.c). The
 * commands themselves are in apps.c, models.c, containers.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "cl_artifact.h"
#include "cl_admin_http.h"
#include "cl_actor.h"
#include "cl_clock.h"
#include "cl_json.h"
#include "cl_log.h"

#define POLL_MS 200
#define CONFLICT_TRIES 16

/* {"ok":true,"result":...} (with "skipped":[{"key","error"}] when a listing
 * left malformed records out) or {"ok":false,"error":"..."}; consumes rep. */
static char *envelope(admin_reply *rep, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    if (o != NULL) {
        cJSON_AddBoolToObject(o, "ok", rep->error == NULL);
        if (rep->error == NULL) {
            cJSON_AddItemToObject(o, "result", rep->result);
            rep->result = NULL;
            if (rep->skipped != NULL) {
                cJSON_AddItemToObject(o, "skipped", rep->skipped);
                rep->skipped = NULL;
            }
        } else {
            cJSON_AddStringToObject(o, "error", rep->error);
        }
    }
    char *text = o ? cl_json_print(o) : NULL;
    cJSON_Delete(o);
    cl__admin_reply_reset(rep);
    *len = text ? strlen(text) : 0;
    return text;
}

static bool is_query(const char *command)
{
    return strncmp(command, "get_", 4) == 0 || strcmp(command, "ping") == 0;
}

static void handle(cl_admin *a, cl_msg *msg)
{
    uint64_t t0 = cl_mono_us();
    const char *subject = cl_msg_subject(msg);
    const char *command = strlen(subject) > a->command_offset ? subject + a->command_offset : "";
    admin_reply rep = {0};
    for (int tries = 1;; tries++) {
        cl_status st = cl__admin_dispatch(a, command, cl_msg_data(msg), cl_msg_len(msg), &rep);
        if (st != CL_ERR_CONFLICT)
            break;
        cl__admin_reply_reset(&rep);
        if (tries == CONFLICT_TRIES) {
            cl__admin_fail(&rep, "Internal error: the cluster state kept changing during %s; "
                                 "try again",
                           command);
            break;
        }
        cl_debug("%s: lost a compare-and-set race, retrying", command);
    }
    bool ok = rep.error == NULL;
    if (!ok) /* one line: a parse error's schema stays out of the log */
        CL_LOG_LIMITED(CL_LOG_INFO, "%s failed: %.*s", command, (int)strcspn(rep.error, "\n"),
                       rep.error);
    else if (!is_query(command) && cJSON_IsString(rep.result))
        cl_info("%s: %s", command, rep.result->valuestring);
    else
        cl_debug("%s: ok", command);

    /* Counted before replying, so a STATS right after the reply sees it. */
    cl_service_count(a->svc, !ok, (cl_mono_us() - t0) * 1000);
    size_t len;
    char *text = envelope(&rep, &len);
    cl_status st = text ? cl_msg_respond(a->bus, msg, text, len) : CL_ERR_NOMEM;
    if (st == CL_ERR_TOO_LARGE) {
        free(text);
        cl__admin_fail(&rep, "The reply to %s is too large for the bus (%zu bytes)", command,
                       len);
        text = envelope(&rep, &len);
        st = text ? cl_msg_respond(a->bus, msg, text, len) : CL_ERR_NOMEM;
    }
    if (st != CL_OK)
        cl_warn("%s: cannot send the reply: %s", command, cl_status_text(st));
    free(text);
    cl_msg_free(msg);
}

static void *worker(void *arg)
{
    cl_admin *a = arg;
    while (!atomic_load(&a->stop)) {
        cl_msg *msg = NULL;
        cl_status st = cl_sub_next(a->sub, &msg, POLL_MS);
        if (st == CL_ERR_TIMEOUT)
            continue;
        if (st == CL_ERR_CLOSED)
            break;
        if (st != CL_OK) {
            cl_warn("admin: reading requests failed: %s", cl_status_text(st));
            cl_sleep_ms(POLL_MS);
            continue;
        }
        handle(a, msg);
    }
    return NULL;
}

cl_status cl_admin_start(cl_admin **out, cl_bus *bus, cl_err *err)
{
    cl_admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    a->bus = bus;
    atomic_init(&a->stop, false);
    cl_status st = cl_kv_open_or_create(&a->kv, bus, err);
    if (st != CL_OK) {
        cl_err_prefix(err, "cannot open the cluster state");
        goto fail;
    }
    /* Made here, with the cluster's replicas, before a deployer's first
     * upload would make it with its own connection's. */
    st = cl_artifact_open_stream(bus, err);
    if (st != CL_OK) {
        cl_err_prefix(err, "cannot open the artifact stream");
        goto fail;
    }
    st = cl_replicas_start(&a->replicas, bus, NULL, NULL, err);
    if (st != CL_OK)
        goto fail;
    st = cl_subject_build(a->subject, err, cl_bus_prefix(bus), "admin", NULL);
    if (st != CL_OK)
        goto fail;
    a->command_offset = strlen(a->subject) + 1;
    if (a->command_offset + 2 > sizeof(a->subject)) {
        st = cl_err_set(err, CL_ERR_TOO_LARGE, "subject prefix is too long");
        goto fail;
    }
    strcat(a->subject, ".*");
    st = cl_bus_subscribe_sync(&a->sub, bus, a->subject, "admin");
    if (st != CL_OK) {
        cl_err_set(err, st, "cannot subscribe to %s: %s", a->subject, cl_status_text(st));
        goto fail;
    }
    const char *endpoints[] = {a->subject, NULL};
    cl_service_info info = {.name = "clipper-admin",
                            .version = CL_VERSION,
                            .description = "Clipper management commands on <prefix>.admin.<command>",
                            .endpoints = endpoints};
    st = cl_service_start(&a->svc, bus, &info, err);
    if (st != CL_OK)
        goto fail;
    if (pthread_create(&a->worker, NULL, worker, a) != 0) {
        st = cl_err_set(err, CL_ERR_NOMEM, "cannot start the admin worker thread");
        goto fail;
    }
    a->worker_started = true;
    /* The subscription is known to the server once this returns, so a
     * request sent right after start is answered. */
    st = cl_bus_flush(bus, 2000);
    if (st != CL_OK)
        cl_warn("admin: nats-server did not confirm the subscription to %s: %s; a command "
                "sent at once may go unanswered",
                a->subject, cl_status_text(st));
    *out = a;
    return CL_OK;
fail:
    cl_admin_free(a);
    return st;
}

void cl_admin_free(cl_admin *a)
{
    if (a == NULL)
        return;
    atomic_store(&a->stop, true);
    if (a->worker_started)
        pthread_join(a->worker, NULL);
    cl_sub_free(a->sub);
    cl_service_free(a->svc);
    cl_replicas_free(a->replicas);
    cl_kv_free(a->kv);
    free(a);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clipper run admin [options]\n"
            "Answers Clipper's management commands on <prefix>.admin.<command>; the only\n"
            "writer of the cluster state. Also serves them as Clipper's management REST\n"
            "(POST /admin/<command>, GET /admin/ping) on HTTP.\n\n"
            "options:\n"
            "  --http-host H  address to serve the management REST on (default %s:\n"
            "                 this host only; 0.0.0.0: every interface, as in Clipper)\n"
            "  --http-port N  its port (default %d; 0 picks a free one; -1: no HTTP)\n"
            "  --http-tls-cert FILE, --http-tls-key FILE\n"
            "                 serve it over HTTPS only, with this PEM certificate (chain)\n"
            "                 and its unencrypted PEM key\n"
            "  --http-token-file FILE\n"
            "                 answer 401 unless a request has 'Authorization: Bearer\n"
            "                 <token>', the token being FILE's first line; FILE must be\n"
            "                 mode 600 (env CLIPPER_ADMIN_TOKEN_FILE)\n"
            "  --http-max-connections N\n"
            "                 connections open at once, 1 to 1048576 (default %u, lowered to\n"
            "                 fit the open-file limit); more wait in the listen backlog\n"
            "  --http-max-per-address N\n"
            "                 connections open at once from one client address (an IPv6\n"
            "                 client by its /64); more are refused (default 0: no limit)\n"
            "  --http-idle-timeout S\n"
            "                 close a connection idle for S seconds, 1 to 3600 (default %u)\n"
            "%s",
            CL_ADMIN_HTTP_HOST, CL_ADMIN_HTTP_PORT, CL_ADMIN_HTTP_MAX_CONNECTIONS,
            CL_ADMIN_HTTP_IDLE_TIMEOUT_S,
            cl_actor_common_usage());
}

/* Returns 0 to run, 1 to exit 0 (help), 2 on a bad argument. */
static int parse(int argc, char **argv, cl_actor_opts *opts, cl_admin_http_opts *http)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 1;
        }
        cl_err err;
        int r = cl_actor_parse_common(opts, argc, argv, &i, &err);
        if (r < 0) {
            fprintf(stderr, "error: %s\n\n", err.msg);
            usage(stderr);
            return 2;
        }
        if (r > 0)
            continue;
        const char *v = NULL, *bad = NULL;
        long n = 0;
        if ((r = cl_actor_take_value(NULL, "--http-host", argc, argv, &i, &v)) != 0) {
            if (r < 0 || v[0] == '\0')
                bad = "--http-host needs a host name or address";
            else
                http->host = v;
        } else if ((r = cl_actor_take_value(NULL, "--http-port", argc, argv, &i, &v)) != 0) {
            if (r < 0 || !cl_actor_parse_long(v, -1, 65535, &n))
                bad = "--http-port needs a port number from 0 to 65535, or -1 for no HTTP";
            else
                http->port = (int)n;
        } else if ((r = cl_actor_take_value(NULL, "--http-max-connections", argc, argv, &i,
                                            &v)) != 0) {
            if (r < 0 || !cl_actor_parse_long(v, 1, 1L << 20, &n))
                bad = "--http-max-connections needs a number of connections from 1 to 1048576";
            else
                http->max_connections = (unsigned)n;
        } else if ((r = cl_actor_take_value(NULL, "--http-max-per-address", argc, argv, &i,
                                            &v)) != 0) {
            if (r < 0 || !cl_actor_parse_long(v, 0, 1L << 20, &n))
                bad = "--http-max-per-address needs a number of connections from 0 (no limit) "
                      "to 1048576";
            else
                http->max_per_address = (unsigned)n;
        } else if ((r = cl_actor_take_value(NULL, "--http-idle-timeout", argc, argv, &i, &v)) !=
                   0) {
            if (r < 0 || !cl_actor_parse_long(v, 1, 3600, &n))
                bad = "--http-idle-timeout needs a number of seconds from 1 to 3600";
            else
                http->idle_timeout_s = (unsigned)n;
        } else if ((r = cl_actor_take_value(NULL, "--http-tls-cert", argc, argv, &i, &v)) != 0) {
            if (r < 0 || v[0] == '\0')
                bad = "--http-tls-cert needs a file name";
            else
                http->tls_cert_file = v;
        } else if ((r = cl_actor_take_value(NULL, "--http-tls-key", argc, argv, &i, &v)) != 0) {
            if (r < 0 || v[0] == '\0')
                bad = "--http-tls-key needs a file name";
            else
                http->tls_key_file = v;
        } else if ((r = cl_actor_take_value(NULL, "--http-token-file", argc, argv, &i, &v)) !=
                   0) {
            if (r < 0 || v[0] == '\0')
                bad = "--http-token-file needs a file name";
            else
                http->token_file = v;
        } else {
            fprintf(stderr, "error: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (bad != NULL) {
            if (r < 0)
                fprintf(stderr, "error: %s (the value is missing)\n\n", bad);
            else
                fprintf(stderr, "error: %s (got '%s')\n\n", bad, v);
            usage(stderr);
            return 2;
        }
    }
    if ((http->tls_cert_file == NULL) != (http->tls_key_file == NULL)) {
        fprintf(stderr, "error: --http-tls-cert and --http-tls-key go together: give both\n\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

int cl_admin_main(int argc, char **argv)
{
    cl_log_set_name("admin");
    cl_actor_opts opts;
    cl_actor_opts_init(&opts);
    cl_admin_http_opts http_opts;
    cl_admin_http_opts_init(&http_opts);
    /* Or from the environment (systemd units, containers), as --creds. */
    const char *token_file = getenv("CLIPPER_ADMIN_TOKEN_FILE");
    if (token_file != NULL && token_file[0] != '\0')
        http_opts.token_file = token_file;
    int r = parse(argc, argv, &opts, &http_opts);
    if (r != 0)
        return r == 1 ? 0 : 2;
    cl_actor_block_signals();
    cl_bus *bus = NULL;
    if (cl_actor_connect(&bus, &opts, "clipper-admin", false) != CL_OK)
        return 1;
    cl_admin *a = NULL;
    cl_err err;
    if (cl_admin_start(&a, bus, &err) != CL_OK) {
        cl_error("cannot start the admin: %s", err.msg);
        cl_bus_free(bus);
        return 1;
    }
    /* After the admin is up, so the first HTTP request finds it. */
    cl_admin_http *http = NULL;
    if (http_opts.port >= 0 && cl_admin_http_start_with(&http, bus, &http_opts, &err) != CL_OK) {
        cl_error("cannot start the management REST: %s%s", err.msg,
                 err.code == CL_ERR_IO ? " (choose another port with --http-port N, or -1 for "
                                         "none)"
                                       : "");
        cl_admin_free(a);
        cl_bus_free(bus);
        return 1;
    }
    if (http != NULL)
        cl_info("serving %s.admin.* (queue group admin) and the management REST on "
                "%s://%s:%d%s",
                opts.prefix, http_opts.tls_cert_file ? "https" : "http", http_opts.host,
                cl_admin_http_port(http),
                http_opts.token_file ? " (bearer token required)" : "");
    else
        cl_info("serving %s.admin.* (queue group admin); management REST disabled",
                opts.prefix);
    int sig = cl_actor_wait_stop();
    cl_info("stopping (%s)", sig ? strsignal(sig) : "stop requested");
    cl_admin_http_free(http);
    cl_admin_free(a);
    cl_bus_free(bus);
    return 0;
}
