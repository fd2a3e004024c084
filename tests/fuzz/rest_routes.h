/* The route matchers of the two HTTP doors, made reachable for
 * fuzz_rest_paths.c: both are static functions named parse_route, so each
 * is reached through a file of its own that includes its source
 * (rest_admin.c: actors/admin/admin_http.c; rest_frontend.c:
 * actors/frontend/fe_http.c). */
#ifndef CL_FUZZ_REST_ROUTES_H
#define CL_FUZZ_REST_ROUTES_H

/* admin_http.c: 0 not found, 1 a command, 2 ping; *command is static. */
int fz_admin_route(const char *url, const char **command);
/* fe_http.c: 0 not found, 1 predict, 2 update, 3 metrics; *app is
 * malloc'd (or NULL). */
int fz_fe_route(const char *method, const char *url, char **app);

#endif
