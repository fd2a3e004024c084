/* A live, in-memory copy of the cluster state, kept up to date by watching
 * the KV bucket (never by polling). Used by the frontend, router and
 * container manager.
 *
 * Reads take the view's read lock: call cl_view_rdlock, look things up,
 * copy what you need, cl_view_unlock. Pointers returned by lookups are
 * valid only while the lock is held. */
#ifndef CL_VIEW_H
#define CL_VIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "cl_kv.h"
#include "cl_state.h"

typedef struct cl_view cl_view;

/* Called from the watcher thread after the view changed (the write lock is
 * already released). key is the KV key that changed, or NULL after the
 * initial load. Must not block for long. */
typedef void (*cl_view_change_cb)(void *closure, const char *key);

/* Starts watching and returns once the initial state is loaded (or after
 * 10 s with CL_ERR_TIMEOUT). on_change may be NULL. */
cl_status cl_view_start(cl_view **out, cl_kv *kv, cl_view_change_cb on_change, void *closure,
                        cl_err *err) CL_MUST_USE;
void cl_view_free(cl_view *view);

/* For tests of readers that must cope with a view trailing the store:
 * while held, the watcher applies no change (they wait, in order). */
void cl_view_hold(cl_view *view, bool hold);

void cl_view_rdlock(cl_view *view);
void cl_view_unlock(cl_view *view);

/* Lookups (hold the read lock). NULL when absent. */
const cl_app *cl_view_app(const cl_view *view, const char *name);
const cl_model *cl_view_model(const cl_view *view, const char *name, const char *version);
/* The current version of a model name, or NULL. */
const char *cl_view_current(const cl_view *view, const char *model);

/* Iteration (hold the read lock). */
size_t cl_view_app_count(const cl_view *view);
const cl_app *cl_view_app_at(const cl_view *view, size_t i);
size_t cl_view_model_count(const cl_view *view);
const cl_model *cl_view_model_at(const cl_view *view, size_t i);

#endif
