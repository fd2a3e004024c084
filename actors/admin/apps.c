/* Admin commands on applications and their model links, with Clipper's
 * request bodies, checks (in Clipper's order) and texts. */
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_wire.h"

static const char ADD_APP_SCHEMA[] = "\n"
                                     "  {\n"
                                     "   \"name\" := string,\n"
                                     "   \"input_type\" := \"integers\" | \"bytes\" | \"floats\" | "
                                     "\"doubles\" | \"strings\",\n"
                                     "   \"default_output\" := string,\n"
                                     "   \"latency_slo_micros\" := int\n"
                                     "  }\n";

static const char NAME_SCHEMA[] = "\n"
                                  "  {\n"
                                  "    \"name\" := string\n"
                                  "  }\n";

static const char LINKS_SCHEMA[] = "\n"
                                   "  {\n"
                                   "    \"app_name\" := string,\n"
                                   "    \"model_names\" := [string]\n"
                                   "  }\n";

static const char APP_NAME_SCHEMA[] = "\n"
                                      "  {\n"
                                      "    \"app_name\" := string\n"
                                      "  }\n";

const char cl__verbose_schema[] = "\n"
                                  "  {\n"
                                  "    \"verbose\" := bool\n"
                                  "  }\n";

const char cl__valid_input_types[] =
    "Valid input types: bytes, integers, floats, doubles, strings (aliases: byte, b, ints, "
    "integer, int, i, float, f, double, d, string, str, strs, s)";

/* The largest SLO the wire format carries (u32 microseconds). */
#define MAX_SLO_MICROS 4294967295LL

/* Clipper's app object: input_type, default_output, latency_slo_micros,
 * name, linked_models. */
static cJSON *app_reply(const cl_app *app)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "input_type", cl_input_type_name((cl_input_type)app->input_type));
    cJSON_AddStringToObject(o, "default_output", app->default_output);
    (void)cl_json_add_int(o, "latency_slo_micros", app->latency_slo_micros);
    cJSON_AddStringToObject(o, "name", app->name);
    cJSON *links = cJSON_AddArrayToObject(o, "linked_models");
    for (size_t i = 0; links && i < app->n_linked; i++)
        cJSON_AddItemToArray(links, cJSON_CreateString(app->linked_models[i]));
    return o;
}

cl_status cl__cmd_add_app(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name, *default_output;
    int input_type;
    int64_t slo;
    cl_status result = CL_OK;
    if (!cl__req_parse(&q, data, len, ADD_APP_SCHEMA, rep) || !cl__req_string(&q, "name", &name) ||
        !cl__req_input_type(&q, &input_type) ||
        !cl__req_string(&q, "default_output", &default_output) ||
        !cl__req_int(&q, "latency_slo_micros", &slo))
        goto out;
    if (slo <= 0 || slo > MAX_SLO_MICROS) {
        cl__admin_fail(rep, "latency_slo_micros must be between 1 and %lld microseconds, got %lld",
                       MAX_SLO_MICROS, (long long)slo);
        goto out;
    }
    char key[CL_KEY_MAX];
    cl_err err;
    if (!cl__admin_group_ok(name, "application name", rep))
        goto out;
    if (cl_key_app(key, name, &err) != CL_OK) {
        cl__admin_fail(rep, "%s", err.msg);
        goto out;
    }
    cl_app app = {.name = (char *)name,
                  .input_type = input_type,
                  .default_output = (char *)default_output,
                  .latency_slo_micros = slo};
    cl_status st = cl__store_write(a, key, cl_app_to_json(&app), 0, rep);
    if (st == CL_OK)
        cl__admin_ok_text(rep, "Successfully added application with name '%s'", name);
    else if (st == CL_ERR_EXISTS)
        cl__admin_fail(rep, "application '%s' already exists", name);
    else if (st == CL_ERR_CONFLICT)
        result = CL_ERR_CONFLICT;
out:
    cl__req_done(&q);
    return result;
}

cl_status cl__cmd_delete_app(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name;
    if (!cl__req_parse(&q, data, len, NAME_SCHEMA, rep) || !cl__req_string(&q, "name", &name))
        goto out;
    cl_app app;
    cl_status st = cl__store_app(a, name, &app, NULL, rep);
    if (st == CL_ERR_NOT_FOUND) {
        cl__admin_fail(rep, "Application '%s' does not exist", name);
        goto out;
    }
    if (st == CL_ERR_INVALID) /* a malformed record can still be removed */
        cl_warn("delete_app: removing the malformed record of application '%s': %s", name,
                rep->error ? rep->error : "");
    else if (st != CL_OK)
        goto out;
    else
        cl_app_deinit(&app);
    char key[CL_KEY_MAX];
    cl_err err;
    if (cl_key_app(key, name, &err) != CL_OK) {
        cl__admin_fail(rep, "%s", err.msg);
        goto out;
    }
    if (cl__store_delete(a, key, rep) == CL_OK)
        cl__admin_ok_text(rep, "Successfully deleted application with name '%s'", name);
out:
    cl__req_done(&q);
    return CL_OK;
}

/* One element of get_all_applications (cl__admin_list). The record is
 * decoded even for a list of names, so both lists leave out the same
 * malformed records (CL_ERR_INVALID). */
static CL_MUST_USE cl_status app_item(cl_admin *a, const cl__entry *e, bool verbose,
                                      void *closure, cJSON **item, admin_reply *rep)
{
    (void)a;
    (void)closure;
    const char *name = e->key + 4; /* "app.<name>" */
    char valid[CL_KEY_MAX];
    cl_err err;
    if (cl_key_app(valid, name, &err) != CL_OK) {
        cl__admin_fail(rep, "the key '%s' does not name an application: %s", e->key, err.msg);
        return CL_ERR_INVALID;
    }
    cl_app app;
    cl_status st = cl__entry_app(e, name, &app, rep);
    if (st == CL_OK) {
        *item = verbose ? app_reply(&app) : cJSON_CreateString(name);
        cl_app_deinit(&app);
    }
    return st;
}

cl_status cl__cmd_get_all_applications(cl_admin *a, const void *data, size_t len,
                                       admin_reply *rep)
{
    return cl__admin_list(a, data, len, "app.", app_item, NULL, rep);
}

cl_status cl__cmd_get_application(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name;
    if (!cl__req_parse(&q, data, len, NAME_SCHEMA, rep) || !cl__req_string(&q, "name", &name))
        goto out;
    cl_app app;
    cl_status st = cl__store_app(a, name, &app, NULL, rep);
    if (st == CL_ERR_NOT_FOUND) {
        cl__admin_ok_json(rep, cJSON_CreateObject());
    } else if (st == CL_OK) {
        cl__admin_ok_json(rep, app_reply(&app));
        cl_app_deinit(&app);
    }
out:
    cl__req_done(&q);
    return CL_OK;
}

cl_status cl__cmd_get_linked_models(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name;
    if (!cl__req_parse(&q, data, len, APP_NAME_SCHEMA, rep) ||
        !cl__req_string(&q, "app_name", &name))
        goto out;
    cl_app app;
    cl_status st = cl__store_app(a, name, &app, NULL, rep);
    if (st == CL_ERR_NOT_FOUND) {
        cl__admin_fail(rep, "No application with name '%s' exists.", name);
    } else if (st == CL_OK) {
        cJSON *list = cJSON_CreateArray();
        for (size_t i = 0; list && i < app.n_linked; i++)
            cJSON_AddItemToArray(list, cJSON_CreateString(app.linked_models[i]));
        cl__admin_ok_json(rep, list);
        cl_app_deinit(&app);
    }
out:
    cl__req_done(&q);
    return CL_OK;
}

static const char STATE_SCHEMA[] = "\n"
                                   "  {\n"
                                   "    \"app_name\" := string,\n"
                                   "    \"uid\" := int\n"
                                   "  }\n";

/* Clipper's get_state: the app's default output, as a raw string. uid is
 * read (Clipper required it) but, as in Clipper, selects nothing: the
 * only selection policy keeps no per-user state. Clipper's answer for an
 * unknown app was undefined; we fail with get_linked_models' text. */
cl_status cl__cmd_get_state(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *name;
    int64_t uid;
    if (!cl__req_parse(&q, data, len, STATE_SCHEMA, rep) ||
        !cl__req_string(&q, "app_name", &name) || !cl__req_int(&q, "uid", &uid))
        goto out;
    cl_app app;
    cl_status st = cl__store_app(a, name, &app, NULL, rep);
    if (st == CL_ERR_NOT_FOUND) {
        cl__admin_fail(rep, "No application with name '%s' exists.", name);
    } else if (st == CL_OK) {
        cl__admin_ok_text(rep, "%s", app.default_output);
        cl_app_deinit(&app);
    }
out:
    cl__req_done(&q);
    return CL_OK;
}

/* The input type of model's current version: CL_OK, CL_ERR_NOT_FOUND, or
 * an internal error in rep. */
static CL_MUST_USE cl_status current_input_type(cl_admin *a, const char *model, int *type,
                                                admin_reply *rep)
{
    char *version = NULL;
    cl_status st = cl__store_current(a, model, &version, NULL, rep);
    if (st != CL_OK)
        return st;
    cl_model m;
    st = cl__store_model(a, model, version, &m, NULL, rep);
    free(version);
    if (st == CL_OK) {
        *type = m.input_type;
        cl_model_deinit(&m);
    }
    return st;
}

/* The start of add_model_links and delete_model_links: the request and
 * the app it names, with its revision. CL_ERR_NOT_FOUND when there is no
 * such app (rep untouched); another error with rep filled. */
static CL_MUST_USE cl_status links_request(cl_admin *a, admin_req *q, const void *data, size_t len,
                                           const char **app_name, const cJSON **names, cl_app *app,
                                           uint64_t *rev, admin_reply *rep)
{
    if (!cl__req_parse(q, data, len, LINKS_SCHEMA, rep) ||
        !cl__req_string(q, "app_name", app_name) ||
        !cl__req_string_array(q, "model_names", names))
        return CL_ERR_INVALID;
    return cl__store_app(a, *app_name, app, rev, rep);
}

/* Writes app back at app_name's key over revision rev. CL_ERR_CONFLICT asks
 * for a rerun. */
static CL_MUST_USE cl_status save_app(cl_admin *a, const char *app_name, const cl_app *app,
                                      uint64_t rev, admin_reply *rep)
{
    char key[CL_KEY_MAX];
    cl_err err;
    if (cl_key_app(key, app_name, &err) != CL_OK) {
        cl__admin_fail(rep, "%s", err.msg);
        return CL_ERR_INVALID;
    }
    return cl__store_update(a, key, cl_app_to_json(app), rev, rep);
}

cl_status cl__cmd_add_model_links(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *app_name;
    const cJSON *names;
    cl_app app = {0};
    uint64_t rev = 0;
    cl_status result = CL_OK;
    cl_status st = links_request(a, &q, data, len, &app_name, &names, &app, &rev, rep);
    if (st == CL_ERR_NOT_FOUND)
        cl__admin_fail(rep, "No app with name '%s' exists.", app_name);
    if (st != CL_OK)
        goto out;
    const cJSON *el;
    cJSON_ArrayForEach(el, names)
    {
        int type;
        st = current_input_type(a, el->valuestring, &type, rep);
        if (st == CL_ERR_NOT_FOUND)
            cl__admin_fail(rep, "No model with name '%s' exists.", el->valuestring);
        if (st != CL_OK)
            goto out;
        if (type != app.input_type) {
            cl__admin_fail(rep,
                           "Model with name '%s' has incompatible input_type '%s'. Requested app "
                           "to link to has input_type '%s'.",
                           el->valuestring, cl_input_type_name((cl_input_type)type),
                           cl_input_type_name((cl_input_type)app.input_type));
            goto out;
        }
    }
    int count = cJSON_GetArraySize(names);
    if (count == 0) {
        cl__admin_fail(rep,
                       "Please provide the name of the model that you want to link to the "
                       "application '%s'",
                       app_name);
        goto out;
    }
    if (count > 1) {
        cl__admin_fail(rep,
                       "Applications must be linked with at most one model. Attempted to add "
                       "links to %d models.",
                       count);
        goto out;
    }
    const char *model = cJSON_GetArrayItem(names, 0)->valuestring;
    if (app.n_linked > 0) {
        for (size_t i = 0; i < app.n_linked; i++) {
            if (strcmp(app.linked_models[i], model) == 0) {
                cl__admin_fail(rep, "The model with name '%s' is already linked to '%s'", model,
                               app_name);
                goto out;
            }
        }
        cl__admin_fail(rep, "A model with name %s is already linked to '%s'.",
                       app.linked_models[0], app_name);
        goto out;
    }
    char **links = realloc(app.linked_models, (app.n_linked + 1) * sizeof(char *));
    char *copy = strdup(model);
    if (links == NULL || copy == NULL) {
        if (links != NULL)
            app.linked_models = links;
        free(copy);
        cl__admin_fail(rep, "Internal error: out of memory");
        goto out;
    }
    app.linked_models = links;
    app.linked_models[app.n_linked++] = copy;
    st = save_app(a, app_name, &app, rev, rep);
    if (st == CL_ERR_CONFLICT)
        result = CL_ERR_CONFLICT;
    else if (st == CL_OK)
        cl__admin_ok_text(rep, "Successfully linked model with name '%s' to application '%s'",
                          model, app_name);
out:
    cl_app_deinit(&app);
    cl__req_done(&q);
    return result;
}

cl_status cl__cmd_delete_model_links(cl_admin *a, const void *data, size_t len, admin_reply *rep)
{
    admin_req q;
    const char *app_name;
    const cJSON *names;
    cl_app app = {0};
    uint64_t rev = 0;
    cl_status result = CL_OK;
    cl_status st = links_request(a, &q, data, len, &app_name, &names, &app, &rev, rep);
    if (st == CL_ERR_NOT_FOUND)
        cl__admin_fail(rep, "No app with name %s exists.", app_name);
    if (st != CL_OK)
        goto out;
    const cJSON *el;
    cJSON_ArrayForEach(el, names)
    {
        bool linked = false;
        for (size_t i = 0; i < app.n_linked && !linked; i++)
            linked = strcmp(app.linked_models[i], el->valuestring) == 0;
        if (!linked) {
            cl__admin_fail(rep, "Cannot remove nonexistent link between app %s and model %s",
                           app_name, el->valuestring);
            goto out;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < app.n_linked; i++) {
        bool drop = false;
        cJSON_ArrayForEach(el, names)
        {
            drop = drop || strcmp(app.linked_models[i], el->valuestring) == 0;
        }
        if (drop)
            free(app.linked_models[i]);
        else
            app.linked_models[kept++] = app.linked_models[i];
    }
    app.n_linked = kept;
    st = save_app(a, app_name, &app, rev, rep);
    if (st == CL_ERR_CONFLICT)
        result = CL_ERR_CONFLICT;
    else if (st == CL_OK)
        cl__admin_ok_text(rep, "Success!");
out:
    cl_app_deinit(&app);
    cl__req_done(&q);
    return result;
}
