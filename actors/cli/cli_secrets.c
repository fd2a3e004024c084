/* A cluster's identities and TLS material (see cli_secrets.h), and
 * 'clipper creds'. */
#include "cli_secrets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cl_actor.h"
#include "cl_buf.h"
#include "cl_file.h"
#include "cl_json.h"
#include "cl_nkey.h"
#include "cl_proc.h"
#include "cl_subject.h"
#include "cl_tls_certs.h"
#include "cli_internal.h"

#define CA_DAYS 3650
#define CERT_DAYS 825
#define NAME_MAX_LEN 64

/* The identities clipper start runs its own processes as. */
static const cl_role BUILT_IN[] = {CL_ROLE_ADMIN,   CL_ROLE_FRONTEND,   CL_ROLE_ROUTER,
                                   CL_ROLE_MANAGER, CL_ROLE_REPLICA,    CL_ROLE_SUPERVISOR,
                                   CL_ROLE_OPERATOR};

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (const char *c = name; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    }
    return true;
}

static int make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        fprintf(stderr, "clipper: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "clipper: %s is not a directory\n", path);
        return -1;
    }
    /* Secrets are ours alone, even in a directory made before. */
    if ((st.st_mode & 0777) != mode && chmod(path, mode) != 0) {
        fprintf(stderr, "clipper: cannot chmod %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void account_name(const char *prefix, char out[96])
{
    size_t n = 0;
    n += (size_t)snprintf(out, 96, "CLIPPER_");
    for (const char *c = prefix; *c != '\0' && n < 94; c++) {
        char u = (*c >= 'a' && *c <= 'z') ? (char)(*c - 'a' + 'A') : *c;
        out[n++] = (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ? u : '_';
    }
    out[n] = '\0';
}

static void identity_path(const cl__secrets *s, const char *name, char out[PATH_MAX + 96])
{
    snprintf(out, PATH_MAX + 96, "%s/identities/%s.json", s->dir, name);
}

/* Writes text to path (mode), atomically: a temporary file renamed. */
/* Writes text to path atomically, with exactly mode (cl_file.h). */
static int write_file(const char *path, const char *text, mode_t mode)
{
    cl_err err;
    if (cl_file_write_atomic(path, "file", text, strlen(text), mode, &err) != CL_OK) {
        fprintf(stderr, "clipper: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Records an identity (public key only; a replica's model when it is
 * scoped to one). */
static int register_identity(const cl__secrets *s, const char *name, cl_role role,
                             const char *model, const char *pub)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "role", cl_role_name(role));
    if (model != NULL)
        cJSON_AddStringToObject(j, "model", model);
    cJSON_AddStringToObject(j, "public_key", pub);
    (void)cl_json_add_int(j, "issued", (int64_t)time(NULL));
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (text == NULL) {
        fprintf(stderr, "clipper: out of memory\n");
        return -1;
    }
    char path[PATH_MAX + 96];
    identity_path(s, name, path);
    int rc = write_file(path, text, 0644);
    free(text);
    return rc;
}

typedef struct {
    char name[NAME_MAX_LEN + 1];
    cl_role role;
    char model[CL_TOKEN_MAX + 1]; /* "" when not scoped to one */
    char pub[CL_NKEY_PUBLIC_LEN + 1];
} identity;

/* Reads identities/<file>; -1 (printed, naming the file) when it is not
 * one: a bad record is left out, never half used. */
static int read_identity(const char *path, identity *out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "clipper: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    cJSON *j = NULL;
    cl_err err;
    const char *name = NULL, *role = NULL, *pub = NULL, *model = NULL;
    bool has_model = false;
    int rc = -1;
    if (cl_json_parse_object(&j, buf, n, &err) != CL_OK ||
        cl_json_get_string(j, "name", &name, &err) != CL_OK ||
        cl_json_get_string(j, "role", &role, &err) != CL_OK ||
        cl_json_get_string(j, "public_key", &pub, &err) != CL_OK ||
        cl_json_opt_string(j, "model", &model, &has_model, &err) != CL_OK ||
        cl_role_from_name(role, &out->role, &err) != CL_OK ||
        (model != NULL && !cl_role_model_valid(model, &err))) {
        fprintf(stderr, "clipper: leaving out the identity in %s: %s\n", path, err.msg);
    } else if (!name_ok(name) || !cl_nkey_public_valid(pub)) {
        fprintf(stderr, "clipper: leaving out the identity in %s: bad name or public key\n",
                path);
    } else if (model != NULL && out->role != CL_ROLE_REPLICA) {
        fprintf(stderr, "clipper: leaving out the identity in %s: only a replica identity is "
                        "scoped to a model\n",
                path);
    } else {
        snprintf(out->name, sizeof(out->name), "%s", name);
        snprintf(out->model, sizeof(out->model), "%s", model ? model : "");
        snprintf(out->pub, sizeof(out->pub), "%s", pub);
        rc = 0;
    }
    cJSON_Delete(j);
    return rc;
}

void cl__secrets_creds_path(const cl__secrets *s, cl_role role, char out[PATH_MAX + 64])
{
    snprintf(out, PATH_MAX + 64, "%s/creds/%s.creds", s->dir, cl_role_name(role));
}

/* Makes a new identity: its seed in creds_file (0600), its public key
 * registered. */
static int issue(const cl__secrets *s, const char *name, cl_role role, const char *model,
                 const char *creds_file, const char *prefix)
{
    char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1];
    cl_err err;
    char comment[512];
    snprintf(comment, sizeof(comment), "Clipper credential: %s (role %s%s%s), cluster prefix %s",
             name, cl_role_name(role), model ? " of model " : "", model ? model : "", prefix);
    int rc = -1;
    if (cl_nkey_user_new(seed, pub, &err) != CL_OK ||
        cl_nkey_write_file(creds_file, seed, comment, &err) != CL_OK)
        fprintf(stderr, "clipper: cannot make the credential %s: %s\n", creds_file, err.msg);
    else
        rc = register_identity(s, name, role, model, pub);
    cl_nkey_wipe(seed, sizeof(seed));
    return rc;
}

static int paths(cl__secrets *s, const char *data_abs, const char *prefix)
{
    memset(s, 0, sizeof(*s));
    if ((size_t)snprintf(s->dir, sizeof(s->dir), "%s/secrets", data_abs) >= sizeof(s->dir)) {
        fprintf(stderr, "clipper: the data directory's path is too long\n");
        return -1;
    }
    snprintf(s->ca, sizeof(s->ca), "%s/ca.pem", s->dir);
    snprintf(s->cert, sizeof(s->cert), "%s/server.pem", s->dir);
    snprintf(s->key, sizeof(s->key), "%s/server.key", s->dir);
    account_name(prefix, s->account);
    return 0;
}

int cl__secrets_ensure(cl__secrets *s, const char *data_abs, const char *prefix)
{
    return cl__secrets_ensure_hosts(s, data_abs, prefix, NULL, 0);
}

int cl__secrets_ensure_hosts(cl__secrets *s, const char *data_abs, const char *prefix,
                             const char *const *extra_hosts, size_t n_extra)
{
    if (n_extra > CL__SECRETS_MAX_HOSTS) {
        fprintf(stderr, "clipper: at most %d extra names for nats-server's certificate\n",
                CL__SECRETS_MAX_HOSTS);
        return -1;
    }
    if (paths(s, data_abs, prefix) != 0)
        return -1;
    char sub[PATH_MAX + 32];
    if (make_dir(s->dir, 0700) != 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s/identities", s->dir);
    if (make_dir(sub, 0700) != 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s/creds", s->dir);
    if (make_dir(sub, 0700) != 0)
        return -1;
    cl_err err;
    char cn[160];
    snprintf(cn, sizeof(cn), "Clipper cluster %s", prefix);
    const char *hosts[3 + CL__SECRETS_MAX_HOSTS] = {"127.0.0.1", "localhost", "::1"};
    for (size_t i = 0; i < n_extra; i++)
        hosts[3 + i] = extra_hosts[i];
    if (cl_tls_ensure_ca(s->dir, cn, CA_DAYS, &err) != CL_OK ||
        cl_tls_ensure_leaf(s->dir, "server", hosts, 3 + n_extra, CERT_DAYS, false, &err) !=
            CL_OK) {
        fprintf(stderr, "clipper: cannot make the cluster's TLS certificates in %s: %s\n", s->dir,
                err.msg);
        return -1;
    }
    for (size_t i = 0; i < sizeof(BUILT_IN) / sizeof(BUILT_IN[0]); i++) {
        char creds[PATH_MAX + 64], rec[PATH_MAX + 96];
        cl__secrets_creds_path(s, BUILT_IN[i], creds);
        identity_path(s, cl_role_name(BUILT_IN[i]), rec);
        if (access(creds, F_OK) == 0 && access(rec, F_OK) == 0)
            continue;
        /* Half made (a crash between the two files): made again. */
        unlink(creds);
        if (issue(s, cl_role_name(BUILT_IN[i]), BUILT_IN[i], NULL, creds, prefix) != 0)
            return -1;
    }
    return 0;
}

/* Calls fn for each valid identity, in name order. */
static int each_identity(const cl__secrets *s, int (*fn)(const identity *, void *), void *arg)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/identities", s->dir);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "clipper: cannot list %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *f = list[i]->d_name;
        size_t len = strlen(f);
        if (rc == 0 && len > 5 && strcmp(f + len - 5, ".json") == 0) {
            char path[PATH_MAX + 320];
            snprintf(path, sizeof(path), "%s/%s", dir, f);
            identity id;
            if (read_identity(path, &id) == 0)
                rc = fn(&id, arg);
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

typedef struct {
    cl_buf *buf;
    const char *prefix;
} conf_arg;

static int add_user(const identity *id, void *arg)
{
    conf_arg *c = arg;
    cl_err err;
    char comment[320];
    snprintf(comment, sizeof(comment), "%s (%s%s%s)", id->name, cl_role_name(id->role),
             id->model[0] ? " of model " : "", id->model);
    if (cl_role_user_conf(c->buf, id->role, c->prefix, id->pub, id->model[0] ? id->model : NULL,
                          comment, &err) != CL_OK) {
        fprintf(stderr, "clipper: cannot write the user %s: %s\n", id->name, err.msg);
        return -1;
    }
    return 0;
}

int cl__secrets_tls_conf(const cl__secrets *s, cl_buf *b)
{
    /* Within 2 s of connecting. */
    if (cl_buf_printf(b, "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n  timeout: 2\n}\n",
                      s->cert, s->key) != CL_OK) {
        fprintf(stderr, "clipper: out of memory\n");
        return -1;
    }
    return 0;
}

/* Appends the accounts part of nats-server's configuration to b. */
static int accounts_conf(const cl__secrets *s, const char *prefix, cl_buf *b)
{
    conf_arg arg = {b, prefix};
    if (cl_buf_printf(b, "accounts {\n  %s: {\n    jetstream: enabled\n    users: [\n",
                      s->account) != CL_OK ||
        each_identity(s, add_user, &arg) != 0 ||
        cl_buf_append_str(b, "    ]\n  }\n}\n") != CL_OK) {
        fprintf(stderr, "clipper: cannot write nats-server's accounts\n");
        return -1;
    }
    return 0;
}

int cl__secrets_migrate_store(const cl__secrets *s, const char *store_dir)
{
    char global[PATH_MAX + 32], ours[PATH_MAX + 128];
    snprintf(global, sizeof(global), "%s/jetstream/$G", store_dir);
    snprintf(ours, sizeof(ours), "%s/jetstream/%s", store_dir, s->account);
    if (access(global, F_OK) != 0 || access(ours, F_OK) == 0)
        return 0;
    if (rename(global, ours) != 0) {
        fprintf(stderr, "clipper: cannot move the state made before the cluster had "
                        "identities (%s to %s): %s\n",
                global, ours, strerror(errno));
        return -1;
    }
    fprintf(stderr, "clipper: the cluster now has identities: its state moved to the account "
                    "%s (%s)\n",
            s->account, ours);
    return 0;
}

/* ---- clipper creds --------------------------------------------------------- */

static void creds_usage(FILE *f)
{
    fprintf(f,
            "usage: clipper creds init [--tls-host NAME]... [--secrets-mount DIR] [options]\n"
            "       clipper creds issue --role ROLE --name NAME --out FILE [--model M] [options]\n"
            "       clipper creds revoke NAME [options]\n"
            "       clipper creds list [options]\n"
            "\n"
            "Issues, revokes and lists the identities that may connect to a cluster started\n"
            "with 'clipper start' (docs/security.md). A running nats-server reloads at once:\n"
            "a revoked identity's connections are closed.\n"
            "\n"
            "'init' makes (or keeps) a cluster's secrets without starting it, as 'clipper\n"
            "start' does on its first start: the CA, nats-server's certificate (for\n"
            "127.0.0.1, localhost, ::1 and each --tls-host), an identity per actor role and\n"
            "the operator's. With --secrets-mount DIR it also writes DATA/nats/ (mode 0700)\n"
            "for a nats-server in a container that mounts that directory read-only at DIR:\n"
            "server.pem, server.key and nats-server.auth.conf, whose file names are under\n"
            "DIR (DockerContainerManager runs it; docs/security.md).\n"
            "\n"
            "roles: admin, frontend, router, manager, replica, supervisor (actors on other\n"
            "hosts), operator (the Python API, 'clipper admin'), query (predict and\n"
            "update only), metrics (router stats, service stats, supervisor status).\n"
            "A replica identity issued with --model M serves that model only: its work,\n"
            "heartbeats, pulls and artifacts (the manager issues one per model itself).\n"
            "\n"
            "options:\n"
            "  --data-dir DIR  the cluster's data directory (default ./clipper-data)\n"
            "  --prefix P      the cluster's subject prefix (env CLIPPER_PREFIX; default clipper)\n"
            "  --model M       issue: scope a replica identity to model M\n"
            "  --tls-host NAME init: another name or address nats-server's certificate is\n"
            "                  valid for (may be repeated)\n"
            "  --secrets-mount DIR  init: write DATA/nats/ for a container that mounts it at\n"
            "                  DIR (an absolute path)\n"
            "  -h, --help      show this help\n");
}

/* Tells a running nats-server (pid file in the data dir) to reload. */
static void reload_server(const char *data_abs)
{
    char pidfile[PATH_MAX + 32];
    snprintf(pidfile, sizeof(pidfile), "%s/nats-server.pid", data_abs);
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid > 1 && kill((pid_t)pid, SIGHUP) == 0)
        fprintf(stderr, "clipper: nats-server (pid %ld) reloads its users\n", pid);
    else
        fprintf(stderr, "clipper: no running nats-server of this data directory; the change "
                        "takes effect at its next start\n");
}

static int print_identity(const identity *id, void *arg)
{
    (void)arg;
    printf("%-24s %-10s %-16s %s\n", id->name, cl_role_name(id->role),
           id->model[0] ? id->model : "-", id->pub);
    return 0;
}

/* Copies the text file src (at most 1 MiB) to dst (mode), atomically; the
 * copy in memory is wiped (src may be a private key). */
static int copy_file(const char *src, const char *dst, mode_t mode)
{
    char *buf = NULL;
    size_t len = 0;
    cl_err err;
    if (cl_file_read(src, "PEM file", 1 << 20, false, &buf, &len, NULL, &err) != CL_OK) {
        fprintf(stderr, "clipper: %s\n", err.msg);
        return -1;
    }
    int rc = -1;
    if (memchr(buf, '\0', len) != NULL)
        fprintf(stderr, "clipper: %s is not a PEM file (it holds a NUL byte)\n", src);
    else
        rc = write_file(dst, buf, mode);
    cl_file_free(buf, len);
    return rc;
}

/* A path nats-server's configuration may quote: absolute, no quote,
 * backslash or control character. */
static bool mount_ok(const char *dir)
{
    if (dir[0] != '/' || strlen(dir) > PATH_MAX / 2)
        return false;
    for (const char *c = dir; *c; c++) {
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
    }
    return true;
}

/* Writes what cl__secrets_write_nats_conf writes to path (atomically). */
/* Writes nats-server's accounts part, after its TLS part when tls, to
 * path (atomically). */
static int write_conf_file(const cl__secrets *s, const char *prefix, bool tls, const char *path)
{
    cl_buf b;
    cl_buf_init(&b);
    int rc = (tls && cl__secrets_tls_conf(s, &b) != 0) || accounts_conf(s, prefix, &b) != 0 ||
                     cl_buf_terminate(&b) != CL_OK
                 ? -1
                 : write_file(path, (const char *)b.data, 0600);
    cl_buf_deinit(&b);
    return rc;
}

/* DATA/nats/nats-server.auth.conf for a container that mounts DATA/nats
 * at mount: the TLS part naming the server's files there, and the users. */
static int write_mounted_conf(const cl__secrets *s, const char *dir, const char *prefix,
                              const char *mount)
{
    char conf[PATH_MAX + 48];
    snprintf(conf, sizeof(conf), "%s/nats-server.auth.conf", dir);
    cl__secrets in = *s;
    snprintf(in.cert, sizeof(in.cert), "%s/server.pem", mount);
    snprintf(in.key, sizeof(in.key), "%s/server.key", mount);
    return write_conf_file(&in, prefix, true, conf);
}

/* DATA/nats/ for a nats-server container that mounts it read-only at
 * mount: copies of the server's certificate and key, the TLS and accounts
 * configuration naming them under mount, and the mount's path (in
 * DATA/nats/mount), so that issuing or revoking an identity later
 * rewrites that configuration too. */
static int write_mounted(const cl__secrets *s, const char *data_abs, const char *prefix,
                         const char *mount, char dir[PATH_MAX + 16])
{
    snprintf(dir, PATH_MAX + 16, "%s/nats", data_abs);
    char pem[PATH_MAX + 32], key[PATH_MAX + 32], where[PATH_MAX + 32];
    snprintf(pem, sizeof(pem), "%s/server.pem", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    snprintf(where, sizeof(where), "%s/mount", dir);
    char line[PATH_MAX + 2];
    snprintf(line, sizeof(line), "%s\n", mount);
    if (make_dir(dir, 0700) != 0 || copy_file(s->cert, pem, 0600) != 0 ||
        copy_file(s->key, key, 0600) != 0 || write_file(where, line, 0600) != 0)
        return -1;
    return write_mounted_conf(s, dir, prefix, mount);
}

/* clipper creds init: the secrets of a cluster that clipper start does not
 * run (DockerContainerManager's). */
static int creds_init(const char *cmd, const char *data_dir, const char *prefix,
                      const char *const *hosts, size_t n_hosts, const char *mount)
{
    cl_err err;
    char data_abs[PATH_MAX];
    if (mount != NULL && !mount_ok(mount)) {
        fprintf(stderr, "%s init: --secrets-mount must be an absolute path without quotes, "
                        "backslashes or control characters, got '%s'\n",
                cmd, mount);
        return 2;
    }
    if (cl_proc_mkdirs(data_dir, &err) != CL_OK) {
        fprintf(stderr, "%s init: data directory: %s\n", cmd, err.msg);
        return 1;
    }
    if (realpath(data_dir, data_abs) == NULL) {
        fprintf(stderr, "%s init: data directory %s: %s\n", cmd, data_dir, strerror(errno));
        return 1;
    }
    cl__secrets s;
    char dir[PATH_MAX + 16];
    if (cl__secrets_ensure_hosts(&s, data_abs, prefix, hosts, n_hosts) != 0 ||
        (mount != NULL && write_mounted(&s, data_abs, prefix, mount, dir) != 0))
        return 1;
    if (mount != NULL)
        fprintf(stderr, "clipper: the cluster's secrets are in %s; nats-server's files (for %s) "
                        "in %s\n",
                s.dir, mount, dir);
    else
        fprintf(stderr, "clipper: the cluster's secrets are in %s\n", s.dir);
    return 0;
}

int cl__cli_creds(int argc, char **argv)
{
    const char *cmd = "clipper creds";
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        creds_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    const char *data_dir = "clipper-data", *role_name = NULL, *name = NULL, *out = NULL;
    const char *model = NULL;
    const char *mount = NULL, *hosts[CL__SECRETS_MAX_HOSTS];
    size_t n_hosts = 0;
    bool init = strcmp(verb, "init") == 0;
    const char *prefix = getenv("CLIPPER_PREFIX");
    if (prefix == NULL || prefix[0] == '\0')
        prefix = "clipper";
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            creds_usage(stdout);
            return 0;
        } else if ((r = cl_actor_take_value(cmd, "--data-dir", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            data_dir = v;
        } else if ((r = cl_actor_take_value(cmd, "--prefix", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            prefix = v;
        } else if ((r = cl_actor_take_value(cmd, "--role", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            role_name = v;
        } else if ((r = cl_actor_take_value(cmd, "--name", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            name = v;
        } else if ((r = cl_actor_take_value(cmd, "--out", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            out = v;
        } else if ((r = cl_actor_take_value(cmd, "--model", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return 2;
            model = v;
        } else if (init && (r = cl_actor_take_value(cmd, "--secrets-mount", argc, argv, &i,
                                                    &v)) != 0) {
            if (r < 0)
                return 2;
            mount = v;
        } else if (init && (r = cl_actor_take_value(cmd, "--tls-host", argc, argv, &i, &v)) !=
                               0) {
            if (r < 0)
                return 2;
            if (n_hosts == CL__SECRETS_MAX_HOSTS || v[0] == '\0') {
                fprintf(stderr, "%s init: --tls-host needs a name or address (at most %d)\n",
                        cmd, CL__SECRETS_MAX_HOSTS);
                return 2;
            }
            hosts[n_hosts++] = v;
        } else if (strcmp(verb, "revoke") == 0 && name == NULL && argv[i][0] != '-') {
            name = argv[i];
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n\n", cmd, argv[i]);
            creds_usage(stderr);
            return 2;
        }
    }
    if (init)
        return creds_init(cmd, data_dir, prefix, hosts, n_hosts, mount);
    char data_abs[PATH_MAX];
    if (realpath(data_dir, data_abs) == NULL) {
        fprintf(stderr, "%s: no data directory %s: %s (start the cluster once with 'clipper "
                        "start --data-dir %s')\n",
                cmd, data_dir, strerror(errno), data_dir);
        return 1;
    }
    cl__secrets s;
    if (paths(&s, data_abs, prefix) != 0)
        return 1;
    char ids[PATH_MAX + 32];
    snprintf(ids, sizeof(ids), "%s/identities", s.dir);
    if (access(ids, F_OK) != 0) {
        fprintf(stderr, "%s: %s has no identities: start the cluster once with 'clipper start "
                        "--data-dir %s'\n",
                cmd, data_dir, data_dir);
        return 1;
    }
    if (strcmp(verb, "list") == 0)
        return each_identity(&s, print_identity, NULL) == 0 ? 0 : 1;
    if (strcmp(verb, "issue") == 0) {
        cl_role role;
        cl_err err;
        if (role_name == NULL || name == NULL || out == NULL) {
            fprintf(stderr, "%s issue: --role, --name and --out are needed\n", cmd);
            return 2;
        }
        if (cl_role_from_name(role_name, &role, &err) != CL_OK) {
            fprintf(stderr, "%s issue: %s\n", cmd, err.msg);
            return 2;
        }
        if (!name_ok(name)) {
            fprintf(stderr, "%s issue: bad name '%s': 1 to %d of [A-Za-z0-9_-]\n", cmd, name,
                    NAME_MAX_LEN);
            return 2;
        }
        if (model != NULL && role != CL_ROLE_REPLICA) {
            fprintf(stderr, "%s issue: --model scopes a replica identity; role %s has none\n",
                    cmd, cl_role_name(role));
            return 2;
        }
        if (model != NULL && !cl_role_model_valid(model, &err)) {
            fprintf(stderr, "%s issue: %s\n", cmd, err.msg);
            return 2;
        }
        char rec[PATH_MAX + 96];
        identity_path(&s, name, rec);
        if (access(rec, F_OK) == 0) {
            fprintf(stderr, "%s issue: an identity named '%s' exists; revoke it first or "
                            "choose another name\n",
                    cmd, name);
            return 1;
        }
        if (access(out, F_OK) == 0) {
            fprintf(stderr, "%s issue: %s exists; not overwriting a credential\n", cmd, out);
            return 1;
        }
        if (issue(&s, name, role, model, out, prefix) != 0)
            return 1;
        if (cl__secrets_rewrite_users(&s, data_abs, prefix) != 0)
            return 1;
        reload_server(data_abs);
        fprintf(stderr, "clipper: issued '%s' (role %s%s%s) in %s; give it with the cluster's "
                        "CA (%s)\n",
                name, cl_role_name(role), model ? " of model " : "", model ? model : "", out,
                s.ca);
        return 0;
    }
    if (strcmp(verb, "revoke") == 0) {
        if (name == NULL || !name_ok(name)) {
            fprintf(stderr, "%s revoke: name the identity to revoke\n", cmd);
            return 2;
        }
        char rec[PATH_MAX + 96];
        identity_path(&s, name, rec);
        if (unlink(rec) != 0) {
            fprintf(stderr, "%s revoke: no identity named '%s' (%s)\n", cmd, name,
                    strerror(errno));
            return 1;
        }
        /* A seed kept in the cluster's own creds/ goes too (a built-in
         * identity's, or one the manager issued for a model's replicas):
         * the next start, or the manager, makes a new one. */
        char creds[PATH_MAX + 96];
        snprintf(creds, sizeof(creds), "%s/creds/%s.creds", s.dir, name);
        unlink(creds);
        if (cl__secrets_rewrite_users(&s, data_abs, prefix) != 0)
            return 1;
        reload_server(data_abs);
        fprintf(stderr, "clipper: revoked '%s'\n", name);
        return 0;
    }
    fprintf(stderr, "%s: unknown command '%s' (init, issue, revoke or list)\n\n", cmd, verb);
    creds_usage(stderr);
    return 2;
}

int cl__secrets_rewrite_users(const cl__secrets *s, const char *data_abs, const char *prefix)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/nats-server.auth.conf", data_abs);
    if (write_conf_file(s, prefix, false, path) != 0)
        return -1;
    /* The copy for a nats-server in a container (creds init --secrets-mount). */
    char dir[PATH_MAX + 16], where[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/nats", data_abs);
    snprintf(where, sizeof(where), "%s/mount", dir);
    if (access(where, F_OK) != 0)
        return 0;
    char *text = NULL;
    size_t len = 0;
    cl_err err;
    if (cl_file_read(where, "the nats-server container's mount", PATH_MAX, false, &text, &len,
                     NULL, &err) != CL_OK) {
        fprintf(stderr, "clipper: %s\n", err.msg);
        return -1;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    int rc = -1;
    if (!mount_ok(text))
        fprintf(stderr, "clipper: %s does not hold an absolute path without quotes\n", where);
    else
        rc = write_mounted_conf(s, dir, prefix, text);
    cl_file_free(text, len);
    return rc;
}
