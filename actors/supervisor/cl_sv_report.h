/* What a supervisor tells others about its children:
 *  - on the bus (when given one): the status JSON (cl_sv_status_json) on
 *    <p>.sv.status every 2 s and whenever cl_sv_report_changed is called,
 *    and as the reply to a request on <p>.sv.list (every supervisor of the
 *    cluster answers: gather the replies for the whole cluster);
 *  - over HTTP (when given a port): GET /metrics in Prometheus text and
 *    GET /status (the JSON).
 * Its bus connection keeps trying while the nats-server is down (the
 * supervisor may be restarting that very server). */
#ifndef CL_SV_REPORT_H
#define CL_SV_REPORT_H

#include "cl_bus.h"
#include "cl_supervisor.h"

typedef struct cl_sv_report cl_sv_report;

typedef struct {
    const char *nats_url;     /* NULL: no bus */
    const char *prefix;
    const char *creds_file;   /* the identity to connect as (role supervisor); NULL: none */
    const char *tls_ca_file;  /* require TLS, verified with this CA; NULL: no TLS */
    const char *tls_name;     /* the name the server's certificate carries; NULL: the URL's host */
    const char *metrics_host; /* NULL: 0.0.0.0 */
    int metrics_port;         /* -1: no HTTP; 0: a free port */
} cl_sv_report_opts;

cl_status cl_sv_report_start(cl_sv_report **out, cl_sv *sv, const cl_sv_report_opts *o,
                             cl_err *err) CL_MUST_USE;
/* The metrics port bound, or -1. */
int cl_sv_report_port(const cl_sv_report *r);
/* Publishes the status now (a child ended or was restarted). */
void cl_sv_report_changed(cl_sv_report *r);
void cl_sv_report_free(cl_sv_report *r);

#endif
