/* See rest_routes.h. */
#include "../../actors/frontend/fe_http.c"

#include "rest_routes.h"

int fz_fe_route(const char *method, const char *url, char **app)
{
    return parse_route(method, url, app);
}
