/* Subjects are built and validated here and nowhere else.
 *
 * Layout (<p> is the cluster's prefix, "clipper" by default):
 *   <p>.predict.<app>                  public: Clipper predict body -> response
 *   <p>.update.<app>                   public: Clipper feedback body
 *   <p>.admin.<command>                admin commands (request/reply, JSON)
 *   <p>.route.task.<model>.<version>   frontend -> router: task batches (wire)
 *   <p>.route.pull.<model>.<version>   replica -> router: "idle, send work" (JSON)
 *   <p>.route.stats                    request -> router: its metrics snapshot (JSON)
 *   <p>.replica.work.<model>.<version>.<replica>  router -> replica: batch (wire)
 *   <p>.replica.hb.<model>.<version>.<replica>    replica heartbeat (JSON)
 *   <p>.fe.<frontend>.results.<model>  replica/router -> frontend: results of
 *                                      that model's tasks (wire)
 *   <p>.cm.<command>                   container manager commands (JSON)
 *   <p>.artifact.<model>.<version>.>   artifact chunks on JetStream
 */
#ifndef CL_SUBJECT_H
#define CL_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "cl_status.h"

#define CL_SUBJECT_MAX 512
#define CL_TOKEN_MAX 128

/* A token is one subject element: 1..CL_TOKEN_MAX bytes of printable ASCII
 * without '.', '*', '>', whitespace or '/'. Returns false and explains in
 * err (naming what, e.g. "application name") when it is not. */
bool cl_token_valid(const char *token, const char *what, cl_err *err);

/* Joins prefix and tokens with '.', validating each token. tokens ends with
 * NULL. Returns CL_ERR_INVALID (with err) on a bad token, CL_ERR_TOO_LARGE
 * when out (CL_SUBJECT_MAX bytes) is too small. */
cl_status cl_subject_build(char out[CL_SUBJECT_MAX], cl_err *err, const char *prefix, ...)
    __attribute__((sentinel)) CL_MUST_USE;

/* Convenience builders (all validate their tokens). */
cl_status cl_subj_predict(char out[CL_SUBJECT_MAX], const char *prefix, const char *app, cl_err *err)
    CL_MUST_USE;
cl_status cl_subj_update(char out[CL_SUBJECT_MAX], const char *prefix, const char *app, cl_err *err)
    CL_MUST_USE;
cl_status cl_subj_admin(char out[CL_SUBJECT_MAX], const char *prefix, const char *command, cl_err *err)
    CL_MUST_USE;
cl_status cl_subj_route_task(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                             const char *version, cl_err *err) CL_MUST_USE;
cl_status cl_subj_route_pull(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                             const char *version, cl_err *err) CL_MUST_USE;
cl_status cl_subj_route_stats(char out[CL_SUBJECT_MAX], const char *prefix, cl_err *err)
    CL_MUST_USE;
cl_status cl_subj_replica_work(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                               const char *version, const char *replica, cl_err *err) CL_MUST_USE;
cl_status cl_subj_replica_hb(char out[CL_SUBJECT_MAX], const char *prefix, const char *model,
                             const char *version, const char *replica, cl_err *err) CL_MUST_USE;
/* <p>.fe.<frontend>.results: a frontend's results subjects start so (it
 * subscribes to this followed by ".*"). */
cl_status cl_subj_fe_results(char out[CL_SUBJECT_MAX], const char *prefix, const char *frontend,
                             cl_err *err) CL_MUST_USE;
/* <p>.fe.<frontend>.results.<model>: where the results of a task of model
 * go. The model is in the subject so that nats-server lets a replica
 * identity scoped to a model answer its own model's tasks only, and the
 * frontend takes from it only results of tasks of that model. */
cl_status cl_subj_fe_results_model(char out[CL_SUBJECT_MAX], const char *prefix,
                                   const char *frontend, const char *model, cl_err *err)
    CL_MUST_USE;
cl_status cl_subj_cm(char out[CL_SUBJECT_MAX], const char *prefix, const char *command, cl_err *err)
    CL_MUST_USE;
/* <p>.route.hello: every router says, every 100 ms, who it is and whether
 * it leads (JSON {"id","leader","epoch"}): the routers' election. */
cl_status cl_subj_route_hello(char out[CL_SUBJECT_MAX], const char *prefix, cl_err *err)
    CL_MUST_USE;
/* <p>.route.leader: the leading router's hello (the same JSON), at once
 * when it takes the lead and then every second; replicas follow it (a new
 * leader makes them pull at once). Ten times rarer than route.hello, whose
 * every message would wake every replica. */
cl_status cl_subj_route_leader(char out[CL_SUBJECT_MAX], const char *prefix, cl_err *err)
    CL_MUST_USE;
/* <p>.sv.status (each supervisor's status, published) and <p>.sv.list
 * (request: every supervisor answers with its status). */
cl_status cl_subj_supervisor(char out[CL_SUBJECT_MAX], const char *prefix, const char *what,
                             cl_err *err) CL_MUST_USE;

/* Checks a subject taken from a message before anything publishes to it:
 * 1..CL_SUBJECT_MAX-1 bytes of printable ASCII (no whitespace, CR, LF,
 * NUL), no wildcard ('*', '>'), no empty element. subject need not be
 * NUL-terminated. Returns false and says why in err when it is not. */
bool cl_subj_valid_publish(const char *subject, size_t len, cl_err *err);
/* The same, and of the form <prefix>.fe.<frontend id>.results.<model> (a
 * frontend's results subject for a model's tasks); prefix NULL accepts any
 * prefix, model NULL any model. */
bool cl_subj_is_fe_results(const char *subject, size_t len, const char *prefix,
                           const char *model, cl_err *err);

/* Splits subject into at most max tokens in place (subject is modified).
 * Returns the count, or -1 when there are more than max. */
int cl_subject_split(char *subject, char **tokens, int max);

#endif
