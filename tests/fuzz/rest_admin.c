/* See rest_routes.h. */
#include "../../actors/admin/admin_http.c"

#include "rest_routes.h"

int fz_admin_route(const char *url, const char **command)
{
    return parse_route(url, command);
}
