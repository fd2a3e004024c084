/* Per-model replica identities (see cl_identity.h). */
#include "cl_identity.h"

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "cl_artifact.h"
#include "cl_log.h"
#include "cl_proc.h"

void cl_model_identity_name(const char *model, char out[80])
{
    bool plain = strlen(model) <= 53;
    for (const char *c = model; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
    if (plain) {
        snprintf(out, 80, "replica-of-%s", model);
        return;
    }
    char hex[CL_SHA256_HEX];
    cl_sha256_hex(model, strlen(model), hex);
    snprintf(out, 80, "replica-of-%.32s", hex);
}

/* Runs 'clipper creds VERB ...' (argv) and waits for it (at most 30 s). */
static CL_MUST_USE cl_status run_creds(char *const argv[], cl_err *err)
{
    pid_t pid;
    cl_proc_opts po = {.stdout_fd = -1, .stderr_fd = -1};
    cl_status s = cl_proc_spawn(&pid, argv, &po, err);
    if (s != CL_OK)
        return s;
    int code = 0;
    if (!cl_proc_wait(pid, 30000, &code)) {
        (void)cl_proc_stop(pid, 1000);
        return cl_err_set(err, CL_ERR_TIMEOUT, "'%s creds %s' did not end within 30 s", argv[0],
                          argv[2]);
    }
    if (code != 0) {
        char how[64];
        cl_proc_describe(code, how, sizeof(how));
        return cl_err_set(err, CL_ERR_IO, "'%s creds %s' failed (%s; its message is above)",
                          argv[0], argv[2], how);
    }
    return CL_OK;
}

cl_status cl_model_creds(const char *clipper, const char *data_dir, const char *prefix,
                         const char *model, char *creds, bool *issued, cl_err *err)
{
    *issued = false;
    char name[80], record[PATH_MAX];
    cl_model_identity_name(model, name);
    if (snprintf(creds, PATH_MAX, "%s/secrets/creds/%s.creds", data_dir, name) >= PATH_MAX ||
        snprintf(record, sizeof(record), "%s/secrets/identities/%s.json", data_dir, name) >=
            (int)sizeof(record))
        return cl_err_set(err, CL_ERR_INVALID, "the data directory's path is too long");
    bool have_creds = access(creds, F_OK) == 0, have_record = access(record, F_OK) == 0;
    if (have_creds && have_record)
        return CL_OK;
    if (have_record) {
        /* Its seed is gone: the identity cannot be used; a new one. */
        char *revoke[] = {(char *)clipper, "creds",       "revoke",       name,
                          "--data-dir",    (char *)data_dir, "--prefix", (char *)prefix,
                          NULL};
        cl_status s = run_creds(revoke, err);
        if (s != CL_OK)
            return s;
    }
    if (have_creds)
        unlink(creds);
    char *issue[] = {(char *)clipper, "creds",    "issue",    "--role",         "replica",
                     "--model",       (char *)model, "--name", name,            "--out",
                     creds,           "--data-dir", (char *)data_dir, "--prefix", (char *)prefix,
                     NULL};
    cl_status s = run_creds(issue, err);
    if (s == CL_OK) {
        *issued = true;
        cl_info("replicas of model %s connect as '%s' (scoped to it)", model, name);
    }
    return s;
}
