/* Who may do what on the bus (see cl_roles.h). The lists below are what
 * each actor was seen to publish and subscribe to (nats-server -DV over a
 * whole deploy, query, update, scale, roll back, delete), nothing more.
 *
 * Placeholders: {p} the cluster's subject prefix, {b} the state bucket,
 * {kv} its stream (KV_{b}), {a} the artifact stream, {i} the identity's
 * inbox prefix, {m} the model a replica identity is scoped to. */
#include "cl_roles.h"

#include <stdio.h>
#include <string.h>

#include "cl_artifact.h"
#include "cl_kv.h"
#include "cl_subject.h"

static const char *const ROLE_NAMES[CL_ROLE_COUNT] = {
    "admin", "frontend", "router", "manager", "replica", "supervisor", "operator", "query",
    "metrics",
};

/* Every identity: its own inbox (replies, watches' deliveries, the bus
 * loop's sync, which it publishes to itself), and the service API that natscli and `clipper` use to list
 * actors ($SRV.PING/INFO/STATS, answered through allow_responses). */
#define OWN_INBOX "{i}.>"
#define SERVICE_API "$SRV.>"
/* The replies of the control plane's responders (admin, router, manager,
 * supervisor): to any inbox. nats-server's allow_responses would be
 * narrower, but it forgets the requests it let through whenever it reloads
 * its users (as it does when an identity is issued or revoked, at every
 * model's first deploy): a reply to a request received before the reload
 * was then refused ("Publish Violation ... _INBOX...") and the asker waited
 * out its timeout. These actors are trusted with the whole cluster anyway;
 * the replica, which runs a model's code, keeps allow_responses. */
#define ANY_INBOX "_INBOX.>"

/* Reading the state bucket: open it, get keys directly, and watch it (an
 * ordered push consumer delivering to the inbox, with flow control). No
 * write, no durable consumer. */
#define STATE_READ_PUB                                                                         \
    "$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.INFO.{kv}",                        \
        "$JS.API.DIRECT.GET.{kv}", "$JS.API.DIRECT.GET.{kv}.>", "$JS.API.STREAM.MSG.GET.{kv}"
#define STATE_WATCH_PUB                                                                        \
    "$JS.API.CONSUMER.CREATE.{kv}", "$JS.API.CONSUMER.CREATE.{kv}.>",                          \
        "$JS.API.CONSUMER.DELETE.{kv}.>", "$JS.API.CONSUMER.INFO.{kv}.>", "$JS.FC.{kv}.>"
/* Reading artifacts: the stream's info and single messages. */
#define ARTIFACT_READ_PUB                                                                      \
    "$JS.API.STREAM.INFO.{a}", "$JS.API.DIRECT.GET.{a}", "$JS.API.DIRECT.GET.{a}.>"

typedef struct {
    const char *const *publish;
    const char *const *subscribe;
    bool responds; /* answers requests: may publish to their reply subjects */
} role_perms;

static const char *const ADMIN_PUB[] = {
    /* The only writer of the state and the artifact stream's settings;
     * its management REST forwards each request to <p>.admin.<command>,
     * answered by any admin of the queue group. */
    "$JS.API.>", "$KV.{b}.>", "$JS.FC.>", "{p}.artifact.>", "{p}.admin.*", OWN_INBOX, ANY_INBOX,
    NULL};
static const char *const ADMIN_SUB[] = {"{p}.admin.*", "{p}.replica.hb.>", OWN_INBOX, SERVICE_API,
                                        NULL};

/* Replies to feedback go out on the frontend's loop connection, which did
 * not receive the requests, and a reply may be sent after the request's
 * allowance expired (a query answered at its deadline), so
 * allow_responses (per connection, time-limited) cannot cover them: the
 * frontend may publish to any inbox. It sees every query and answer
 * anyway. */
static const char *const FRONTEND_PUB[] = {STATE_READ_PUB,    STATE_WATCH_PUB, "{p}.route.task.>",
                                           "{p}.route.stats", "_INBOX.>",      NULL};
static const char *const FRONTEND_SUB[] = {"{p}.predict.*", "{p}.update.*", "{p}.fe.*.results.*",
                                           OWN_INBOX, SERVICE_API, NULL};

static const char *const ROUTER_PUB[] = {STATE_READ_PUB,       STATE_WATCH_PUB,
                                         "{p}.replica.work.>", "{p}.route.hello",
                                         "{p}.route.leader",   "{p}.fe.*.results.*", OWN_INBOX,
                                         ANY_INBOX,            NULL};
static const char *const ROUTER_SUB[] = {"{p}.route.task.>",  "{p}.route.pull.>",
                                         "{p}.route.hello",   "{p}.route.stats",
                                         "{p}.replica.hb.>",  OWN_INBOX,
                                         SERVICE_API,         NULL};

/* Managers on several hosts say hello to one another (placement). */
static const char *const MANAGER_PUB[] = {STATE_READ_PUB, STATE_WATCH_PUB, "{p}.cm.hello",
                                          OWN_INBOX, ANY_INBOX, NULL};
static const char *const MANAGER_SUB[] = {"{p}.cm.*", "{p}.replica.hb.>", OWN_INBOX, SERVICE_API,
                                          NULL};

/* A replica runs a model's code: it reads its record and its artifact,
 * takes work, and says it is alive, idle, and what it computed. */
static const char *const REPLICA_PUB[] = {STATE_READ_PUB,      ARTIFACT_READ_PUB,
                                          "{p}.replica.hb.>",  "{p}.route.pull.>",
                                          "{p}.fe.*.results.*",  OWN_INBOX,
                                          NULL};
/* route.hello: what replicas of before route.leader subscribed to (a
 * rolling upgrade runs both). */
static const char *const REPLICA_SUB[] = {"{p}.replica.work.>", "{p}.route.leader",
                                          "{p}.route.hello", OWN_INBOX, SERVICE_API, NULL};

/* A replica identity scoped to one model (the manager issues one per
 * model): the same, for that model's subjects and artifacts only. It
 * reads an artifact's chunks by subject ($JS.API.DIRECT.GET.<stream>.
 * <subject>, bus/artifact.c), so the server can tell whose they are. */
static const char *const MODEL_REPLICA_PUB[] = {
    STATE_READ_PUB,        "$JS.API.STREAM.INFO.{a}", "$JS.API.DIRECT.GET.{a}.{p}.artifact.{m}.>",
    "{p}.replica.hb.{m}.>", "{p}.route.pull.{m}.>",    "{p}.fe.*.results.{m}",
    OWN_INBOX,             NULL};
static const char *const MODEL_REPLICA_SUB[] = {"{p}.replica.work.{m}.>", "{p}.route.leader",
                                                "{p}.route.hello", OWN_INBOX, SERVICE_API, NULL};
static const role_perms MODEL_REPLICA = {MODEL_REPLICA_PUB, MODEL_REPLICA_SUB, true};

static const char *const SUPERVISOR_PUB[] = {"{p}.sv.status", "{p}.admin.ping", OWN_INBOX,
                                             ANY_INBOX, NULL};
static const char *const SUPERVISOR_SUB[] = {"{p}.sv.list", OWN_INBOX, NULL};

/* An operator manages through the admin (which alone writes the state),
 * uploads artifacts (the stream keeps the first message of each subject:
 * nothing stored can be replaced), removes the artifact of a version whose
 * registration failed, and may query, read metrics and supervisors. */
static const char *const OPERATOR_PUB[] = {
    "{p}.admin.*",       "{p}.artifact.>",  ARTIFACT_READ_PUB, "$JS.API.STREAM.PURGE.{a}",
    "{p}.cm.*",          "{p}.predict.*",   "{p}.update.*",    "{p}.route.stats",
    "{p}.sv.list",       SERVICE_API,       OWN_INBOX, NULL};
static const char *const OPERATOR_SUB[] = {"{p}.sv.status", OWN_INBOX, NULL};

static const char *const QUERY_PUB[] = {"{p}.predict.*", "{p}.update.*", OWN_INBOX, NULL};
static const char *const QUERY_SUB[] = {OWN_INBOX, NULL};

static const char *const METRICS_PUB[] = {"{p}.route.stats", "{p}.sv.list", SERVICE_API,
                                          OWN_INBOX, NULL};
static const char *const METRICS_SUB[] = {"{p}.sv.status", OWN_INBOX, NULL};

static const role_perms PERMS[CL_ROLE_COUNT] = {
    [CL_ROLE_ADMIN] = {ADMIN_PUB, ADMIN_SUB, false},
    /* Not allow_responses: "_INBOX.>" covers its replies, and the server
     * would record every query's reply subject for a minute (it slowed
     * the query path sixfold at 60 000 queries a second). */
    [CL_ROLE_FRONTEND] = {FRONTEND_PUB, FRONTEND_SUB, false},
    [CL_ROLE_ROUTER] = {ROUTER_PUB, ROUTER_SUB, false},
    [CL_ROLE_MANAGER] = {MANAGER_PUB, MANAGER_SUB, false},
    [CL_ROLE_REPLICA] = {REPLICA_PUB, REPLICA_SUB, true},
    [CL_ROLE_SUPERVISOR] = {SUPERVISOR_PUB, SUPERVISOR_SUB, false},
    [CL_ROLE_OPERATOR] = {OPERATOR_PUB, OPERATOR_SUB, false},
    [CL_ROLE_QUERY] = {QUERY_PUB, QUERY_SUB, false},
    [CL_ROLE_METRICS] = {METRICS_PUB, METRICS_SUB, false},
};

const char *cl_role_name(cl_role role)
{
    return role >= 0 && role < CL_ROLE_COUNT ? ROLE_NAMES[role] : "unknown";
}

cl_status cl_role_from_name(const char *name, cl_role *out, cl_err *err)
{
    for (int r = 0; r < CL_ROLE_COUNT; r++) {
        if (name != NULL && strcmp(name, ROLE_NAMES[r]) == 0) {
            *out = (cl_role)r;
            return CL_OK;
        }
    }
    char list[160] = "";
    for (int r = 0; r < CL_ROLE_COUNT; r++) {
        strncat(list, r ? ", " : "", sizeof(list) - strlen(list) - 1);
        strncat(list, ROLE_NAMES[r], sizeof(list) - strlen(list) - 1);
    }
    return cl_err_set(err, CL_ERR_INVALID, "unknown role '%s': the roles are %s",
                      name ? name : "(none)", list);
}

void cl_role_inbox_prefix(char out[CL_INBOX_PREFIX_MAX], const char *pub)
{
    snprintf(out, CL_INBOX_PREFIX_MAX, "_INBOX.%s", pub);
}

typedef struct {
    const char *p, *b, *a, *i, *m;
    char kv[160];
} names;

/* Appends pattern with its placeholders expanded. */
static cl_status expand(cl_buf *out, const char *pattern, const names *n)
{
    cl_status s = CL_OK;
    for (const char *c = pattern; *c != '\0' && s == CL_OK;) {
        const char *with = NULL;
        size_t skip = 0;
        if (strncmp(c, "{p}", 3) == 0)
            with = n->p, skip = 3;
        else if (strncmp(c, "{b}", 3) == 0)
            with = n->b, skip = 3;
        else if (strncmp(c, "{a}", 3) == 0)
            with = n->a, skip = 3;
        else if (strncmp(c, "{i}", 3) == 0)
            with = n->i, skip = 3;
        else if (strncmp(c, "{m}", 3) == 0 && n->m != NULL)
            with = n->m, skip = 3;
        else if (strncmp(c, "{kv}", 4) == 0)
            with = n->kv, skip = 4;
        if (with != NULL) {
            s = cl_buf_append_str(out, with);
            c += skip;
        } else {
            s = cl_buf_append(out, c, 1);
            c++;
        }
    }
    return s;
}

bool cl_role_model_valid(const char *model, cl_err *err)
{
    if (!cl_token_valid(model, "model name", err))
        return false;
    /* Quoted in nats-server's configuration, which has no escapes we rely on. */
    if (strpbrk(model, "\"\\") != NULL) {
        cl_err_set(err, CL_ERR_INVALID,
                   "model name '%s' holds a quote or a backslash: no identity can be scoped to it",
                   model);
        return false;
    }
    return true;
}

static cl_status names_of(names *n, const char *prefix, const char *pub, const char *model,
                          char bucket[128], char stream[160], char inbox[CL_INBOX_PREFIX_MAX],
                          cl_err *err)
{
    if (prefix == NULL || prefix[0] == '\0' || strpbrk(prefix, " \t\r\n\"\\*>") != NULL)
        return cl_err_set(err, CL_ERR_INVALID, "bad cluster prefix '%s'", prefix ? prefix : "");
    if (pub == NULL || pub[0] == '\0' || strpbrk(pub, " \t\r\n\"\\.*>") != NULL)
        return cl_err_set(err, CL_ERR_INVALID, "bad public key '%s'", pub ? pub : "");
    cl_kv_bucket_name(prefix, bucket);
    cl_artifact_stream_name(prefix, stream);
    cl_role_inbox_prefix(inbox, pub);
    n->p = prefix;
    n->b = bucket;
    n->a = stream;
    n->i = inbox;
    n->m = model;
    snprintf(n->kv, sizeof(n->kv), "KV_%s", bucket);
    if (model != NULL && !cl_role_model_valid(model, err))
        return CL_ERR_INVALID;
    return CL_OK;
}

/* The permissions of role, scoped to model (NULL: not scoped); NULL with
 * err set when the role cannot be scoped. */
static const role_perms *perms_of(cl_role role, const char *model, cl_err *err)
{
    if (role < 0 || role >= CL_ROLE_COUNT) {
        cl_err_set(err, CL_ERR_INVALID, "unknown role %d", (int)role);
        return NULL;
    }
    if (model == NULL)
        return &PERMS[role];
    if (role == CL_ROLE_REPLICA)
        return &MODEL_REPLICA;
    cl_err_set(err, CL_ERR_INVALID, "only a replica identity is scoped to a model, not a %s one",
               cl_role_name(role));
    return NULL;
}

static cl_status list_conf(cl_buf *out, const char *const *patterns, const names *n)
{
    cl_status s = cl_buf_append_str(out, "[");
    for (size_t k = 0; patterns[k] != NULL && s == CL_OK; k++) {
        s = cl_buf_append_str(out, k ? ", \"" : "\"");
        if (s == CL_OK)
            s = expand(out, patterns[k], n);
        if (s == CL_OK)
            s = cl_buf_append_str(out, "\"");
    }
    return s == CL_OK ? cl_buf_append_str(out, "]") : s;
}

cl_status cl_role_user_conf(cl_buf *out, cl_role role, const char *prefix, const char *pub,
                            const char *model, const char *comment, cl_err *err)
{
    const role_perms *r = perms_of(role, model, err);
    if (r == NULL)
        return CL_ERR_INVALID;
    names n;
    char bucket[128], stream[160], inbox[CL_INBOX_PREFIX_MAX];
    cl_status s = names_of(&n, prefix, pub, model, bucket, stream, inbox, err);
    if (s != CL_OK)
        return s;
    s = cl_buf_printf(out, "      {nkey: \"%s\", permissions: {publish: {allow: ", pub);
    if (s == CL_OK)
        s = list_conf(out, r->publish, &n);
    if (s == CL_OK)
        s = cl_buf_append_str(out, "}, subscribe: {allow: ");
    if (s == CL_OK)
        s = list_conf(out, r->subscribe, &n);
    /* A responder may answer each request once, within a minute. */
    if (s == CL_OK)
        s = cl_buf_printf(out, "}%s}}", r->responds ? ", allow_responses: {max: 1, expires: \"1m\"}"
                                                    : "");
    if (s == CL_OK && comment != NULL && comment[0] != '\0') {
        s = cl_buf_append_str(out, "  # ");
        /* One line: a newline would end the comment. */
        for (const char *c = comment; *c != '\0' && s == CL_OK; c++)
            s = cl_buf_append(out, *c == '\n' || *c == '\r' ? " " : c, 1);
    }
    if (s == CL_OK)
        s = cl_buf_append_str(out, "\n");
    return s == CL_OK ? CL_OK : cl_err_set(err, s, "out of memory");
}

cl_status cl_role_subjects(cl_buf *out, cl_role role, bool publish, const char *prefix,
                           const char *pub, const char *model, cl_err *err)
{
    const role_perms *r = perms_of(role, model, err);
    if (r == NULL)
        return CL_ERR_INVALID;
    names n;
    char bucket[128], stream[160], inbox[CL_INBOX_PREFIX_MAX];
    cl_status s = names_of(&n, prefix, pub, model, bucket, stream, inbox, err);
    const char *const *patterns = publish ? r->publish : r->subscribe;
    for (size_t k = 0; s == CL_OK && patterns[k] != NULL; k++) {
        s = expand(out, patterns[k], &n);
        if (s == CL_OK)
            s = cl_buf_append_str(out, "\n");
    }
    return s;
}
