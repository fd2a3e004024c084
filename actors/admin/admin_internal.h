/* Shared by the admin actor's sources only: the actor's state, the reply
 * under construction, request-field readers with Clipper's error texts,
 * and cluster-state helpers. */
#ifndef CL_ADMIN_INTERNAL_H
#define CL_ADMIN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include <cjson/cJSON.h>

#include "cl_admin.h"
#include "cl_bus.h"
#include "cl_kv.h"
#include "cl_replicas.h"
#include "cl_service.h"
#include "cl_state.h"
#include "cl_subject.h"

struct cl_admin {
    cl_bus *bus; /* borrowed */
    cl_kv *kv;
    cl_replicas *replicas;
    cl_service *svc;
    cl_sub *sub; /* pull subscription on <p>.admin.*, queue group "admin" */
    char subject[CL_SUBJECT_MAX];
    size_t command_offset; /* where <command> starts in a request subject */
    pthread_t worker;
    bool worker_started;
    atomic_bool stop;
};

/* One command's outcome: exactly one of result (success) and error. */
typedef struct {
    cJSON *result;
    char *error;
    cJSON *skipped; /* with a result: the malformed records a listing left out,
                       [{"key","error"}], sent beside it as "skipped"; or NULL */
} admin_reply;

void cl__admin_reply_reset(admin_reply *rep);
/* Success with a JSON string result (printf-style). */
void cl__admin_ok_text(admin_reply *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Success with a JSON value (consumed; NULL means out of memory). */
void cl__admin_ok_json(admin_reply *rep, cJSON *value);
void cl__admin_fail(admin_reply *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A request body being read. Every reader fills rep with Clipper's parse
 * error ("Error parsing JSON: <what>. Expected JSON schema: <schema>") and
 * returns false when the field is missing or has the wrong type. */
typedef struct {
    cJSON *root;
    const char *schema;
    admin_reply *rep;
} admin_req;

bool cl__req_parse(admin_req *q, const void *data, size_t len, const char *schema,
                   admin_reply *rep);
void cl__req_done(admin_req *q);
bool cl__req_string(admin_req *q, const char *key, const char **out);
bool cl__req_int(admin_req *q, const char *key, int64_t *out);
bool cl__req_bool(admin_req *q, const char *key, bool *out);
bool cl__req_string_array(admin_req *q, const char *key, const cJSON **out);
/* Parses the body and reads its "model_name" and "model_version" (the
 * start of every command on one model version). */
bool cl__req_model(admin_req *q, const void *data, size_t len, const char *schema,
                   const char **name, const char **version, admin_reply *rep);
/* "input_type", a name or alias of one (cl_input_type); an unknown one
 * fails with Clipper's "Invalid input_type ..." text. */
bool cl__req_input_type(admin_req *q, int *out);
/* Optional fields: absent leaves *out untouched; a wrong type fails. */
bool cl__req_opt_string(admin_req *q, const char *key, const char **out);
bool cl__req_opt_int(admin_req *q, const char *key, int64_t *out);

/* ---- cluster state (store.c) ----
 * Readers return CL_OK, CL_ERR_NOT_FOUND when the entry is absent (or its
 * name could never be a key), or another code with rep holding an
 * "Internal error: ..." text. */
cl_status cl__store_app(cl_admin *a, const char *name, cl_app *app, uint64_t *rev,
                        admin_reply *rep) CL_MUST_USE;
cl_status cl__store_model(cl_admin *a, const char *name, const char *version, cl_model *m,
                          uint64_t *rev, admin_reply *rep) CL_MUST_USE;
cl_status cl__store_current(cl_admin *a, const char *name, char **version, uint64_t *rev,
                            admin_reply *rep) CL_MUST_USE;
/* A key of the bucket and its value (NUL-terminated, len bytes). */
typedef struct {
    char *key;
    char *value;
    size_t len;
} cl__entry;
/* The current values of the keys under prefix (which ends in '.'), read in
 * one pass, sorted by key; free with cl__store_entries_free. */
cl_status cl__store_entries(cl_admin *a, const char *prefix, cl__entry **entries, size_t *n,
                            admin_reply *rep) CL_MUST_USE;
void cl__store_entries_free(cl__entry *entries, size_t n);
int cl__entry_cmp(const void *x, const void *y); /* by key */
/* Decode an entry of app.<name> / model.<name>.<version> as cl__store_app
 * and cl__store_model decode what they read (CL_ERR_INVALID: malformed,
 * rep says why). */
cl_status cl__entry_app(const cl__entry *e, const char *name, cl_app *app,
                        admin_reply *rep) CL_MUST_USE;
cl_status cl__entry_model(const cl__entry *e, const char *name, const char *version,
                          cl_model *m, admin_reply *rep) CL_MUST_USE;
/* The current version of model among sorted current.* entries (malloc'd),
 * or NULL when it has none or it does not decode. */
char *cl__entries_current(const cl__entry *entries, size_t n, const char *model);
/* Keys under prefix, sorted; free with cl_kv_keys_free. */
cl_status cl__store_keys(cl_admin *a, const char *prefix, char ***keys, size_t *n,
                         admin_reply *rep) CL_MUST_USE;
/* Writes value (consumed) at key: created when rev is 0, else
 * compare-and-set on rev. CL_ERR_EXISTS and CL_ERR_CONFLICT are returned
 * without touching rep; other failures fill it. */
cl_status cl__store_write(cl_admin *a, const char *key, cJSON *value, uint64_t rev,
                          admin_reply *rep) CL_MUST_USE;
/* Writes value (consumed) over revision rev (> 0) of key. CL_ERR_CONFLICT,
 * without touching rep, when the entry changed meanwhile (the command
 * must run again); other failures fill rep. */
cl_status cl__store_update(cl_admin *a, const char *key, cJSON *value, uint64_t rev,
                           admin_reply *rep) CL_MUST_USE;
/* Deletes key; a failure fills rep with an "Internal error: ..." text. */
cl_status cl__store_delete(cl_admin *a, const char *key, admin_reply *rep) CL_MUST_USE;
/* Makes version the current one of model (create / compare-and-set,
 * retried on races). */
cl_status cl__store_set_current(cl_admin *a, const char *model, const char *version,
                                admin_reply *rep) CL_MUST_USE;
/* Clipper's input-type check for a model version about to become current:
 * every app linked to model must share its input type. CL_ERR_INVALID
 * with rep filled when one does not. */
cl_status cl__store_check_links(cl_admin *a, const char *model, int input_type,
                                admin_reply *rep) CL_MUST_USE;

/* get_all_applications and get_all_models: reads {"verbose": bool}, then
 * answers a list with one element per entry under prefix, in key order,
 * made by item (a name, or an object when verbose; closure is item's).
 * item returns CL_ERR_INVALID with rep saying why to leave a malformed
 * record out (logged, and listed in rep->skipped), and another error, with
 * rep filled, to fail. */
typedef cl_status (*admin_list_item)(cl_admin *a, const cl__entry *e, bool verbose,
                                     void *closure, cJSON **item, admin_reply *rep) CL_MUST_USE;
cl_status cl__admin_list(cl_admin *a, const void *data, size_t len, const char *prefix,
                         admin_list_item item, void *closure, admin_reply *rep) CL_MUST_USE;

/* Clipper's check for names grouped in its Redis values, kept for its
 * text: "Invalid <what> supplied: <value>. Contains one of: ',', ':'". */
bool cl__admin_group_ok(const char *value, const char *what, admin_reply *rep);

/* Shared texts. */
extern const char cl__verbose_schema[];    /* {"verbose" := bool} */
extern const char cl__valid_input_types[]; /* "Valid input types: ..." */

/* The command handlers (apps.c, models.c, containers.c). Each fills rep;
 * CL_ERR_CONFLICT asks for a rerun after a lost compare-and-set. */
typedef cl_status (*admin_handler)(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_add_app(cl_admin *a, const void *data, size_t len, admin_reply *rep) CL_MUST_USE;
cl_status cl__cmd_delete_app(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_get_all_applications(cl_admin *a, const void *data, size_t len,
                                       admin_reply *rep) CL_MUST_USE;
cl_status cl__cmd_get_application(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_get_linked_models(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_get_state(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_add_model_links(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_delete_model_links(cl_admin *a, const void *data, size_t len,
                                     admin_reply *rep) CL_MUST_USE;
cl_status cl__cmd_add_model(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_get_all_models(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_get_model(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_delete_versioned_model(cl_admin *a, const void *data, size_t len,
                                         admin_reply *rep) CL_MUST_USE;
cl_status cl__cmd_set_model_version(cl_admin *a, const void *data, size_t len,
                                    admin_reply *rep) CL_MUST_USE;
cl_status cl__cmd_set_num_replicas(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;
cl_status cl__cmd_get_all_containers(cl_admin *a, const void *data, size_t len,
                                     admin_reply *rep) CL_MUST_USE;
cl_status cl__cmd_get_container(cl_admin *a, const void *data, size_t len, admin_reply *rep)
    CL_MUST_USE;

/* Runs one command. Returns CL_ERR_CONFLICT when a compare-and-set write
 * lost a race and the whole command must run again (rep is then reset). */
cl_status cl__admin_dispatch(cl_admin *a, const char *command, const void *data, size_t len,
                             admin_reply *rep) CL_MUST_USE;
/* Writes the comma-separated list of the commands (for the unknown-command
 * error) into out. */
void cl__admin_known_commands(char *out, size_t cap);

#endif
