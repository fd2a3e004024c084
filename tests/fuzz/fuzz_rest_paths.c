/* Fuzzes the route matching of the HTTP doors on the URL (and method) a
 * client sends: the management REST (actors/admin/admin_http.c:
 * "/admin/<command>[/]", "/admin/ping") and the query REST
 * (actors/frontend/fe_http.c: "/<app>/predict[/]", "/<app>/update[/]",
 * "/metrics"). Both matchers are static (parse_route); rest_admin.c and
 * rest_frontend.c include their sources to reach them, so the doors' own
 * code runs. Then what each door does with a match: the admin door makes
 * the command's subject (cl_subj_admin), the frontend looks the app up by
 * its KV key (cl_key_app) and its NATS twin (cl_subj_predict).
 *
 * Input: "<method>\n<url>", or a URL alone (method POST); libmicrohttpd
 * hands the doors NUL-terminated strings, so a NUL ends them here too.
 *
 * Oracles: a matched URL is exactly the route's pattern; an admin route
 * names a command whose subject can be built. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_state.h"
#include "cl_subject.h"
#include "fuzz_common.h"
#include "rest_routes.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

static bool is(const char *url, const char *a, const char *b)
{
    char want[1024];
    snprintf(want, sizeof(want), "%s%s", a, b);
    if (strcmp(url, want) == 0)
        return true;
    snprintf(want, sizeof(want), "%s%s/", a, b);
    return strcmp(url, want) == 0;
}

static void admin(const char *url)
{
    const char *command = NULL;
    int route = fz_admin_route(url, &command);
    if (route == 0) {
        fz_check(command == NULL, "no route but command %s", command);
        return;
    }
    fz_check(command != NULL && is(url, "/admin/", command), "%s routed to %s", url, command);
    fz_check(route != 2 || strcmp(command, "ping") == 0, "%s is ping as %s", url, command);
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    fz_check(cl_subj_admin(subject, "clipper", command, &err) == CL_OK,
             "no subject for command %s: %s", command, err.msg);
}

static void frontend(const char *method, const char *url)
{
    char *app = NULL;
    int route = fz_fe_route(method, url, &app);
    if (route == 0 || route == 3) {
        fz_check(app == NULL, "%s %s: route %d with app %s", method, url, route, app);
        fz_check(route == 0 || is(url, "/metrics", ""), "%s routed to metrics", url);
        return;
    }
    fz_check(app != NULL && app[0] != '\0' && strchr(app, '/') == NULL,
             "%s routed with app '%s'", url, app ? app : "(null)");
    char prefix[1024];
    snprintf(prefix, sizeof(prefix), "/%s/", app);
    fz_check(is(url, prefix, route == 1 ? "predict" : "update"), "%s routed as app %s", url, app);
    char key[CL_KEY_MAX], subject[CL_SUBJECT_MAX];
    cl_err err;
    (void)cl_key_app(key, app, &err);
    (void)cl_subj_predict(subject, "clipper", app, &err);
    free(app);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *method = NULL;
    const uint8_t *rest;
    size_t len;
    fz_split(data, size, &method, &rest, &len);
    char *url = fz_strndup(rest, len);
    admin(url);
    frontend(method ? method : "POST", url);
    frontend("GET", url);
    free(url);
    free(method);
    return 0;
}
