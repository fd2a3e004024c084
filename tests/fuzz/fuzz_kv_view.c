/* Fuzzes the live view of the cluster state that the frontend, the router
 * and the manager keep (actors/common/view.c): its KV watch callback
 * (on_watch, static; this file includes view.c to reach it, so view.o is
 * not linked) on a sequence of changes, as the bucket's watcher delivers
 * them: decoding each record (state.c) and putting it in, replacing or
 * removing it from the view; then every lookup.
 *
 * Input: one change per line, "<key> <value>" for a value put, "<key>"
 * alone for a delete. The view starts empty and loaded.
 *
 * Oracles: after a change the view took, a lookup gives what the change
 * says (the record decoded again from the same value, or nothing after a
 * delete); the view never lists one app, model version or current version
 * twice. */
#include "../../actors/common/view.c"

#include <stdbool.h>
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

static bool took; /* on_change saw the change */

static void on_change(void *closure, const char *key)
{
    (void)closure;
    if (key != NULL)
        took = true;
}

static bool strv_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* What the view holds for key after a change it took. */
static void check(cl_view *v, const char *key, const char *value, size_t len, bool deleted)
{
    cl_err err;
    if (strncmp(key, "app.", 4) == 0) {
        const cl_app *got = cl_view_app(v, key + 4);
        if (deleted) {
            fz_check(got == NULL, "app %s still in the view after its delete", key + 4);
            return;
        }
        cl_app want;
        fz_check(cl_app_from_json(&want, value, len, &err) == CL_OK, "taken but bad: %s", key);
        fz_check(got != NULL && strcmp(got->name, want.name) == 0 &&
                     got->input_type == want.input_type &&
                     got->latency_slo_micros == want.latency_slo_micros &&
                     strcmp(got->default_output, want.default_output) == 0 &&
                     strv_equal(got->linked_models, got->n_linked, want.linked_models,
                                want.n_linked),
                 "the view's app %s is not the value put", key + 4);
        cl_app_deinit(&want);
    } else if (strncmp(key, "model.", 6) == 0) {
        char name[CL_KEY_MAX];
        const char *version;
        fz_check(split_model_key(key + 6, name, sizeof(name), &version), "taken: %s", key);
        const cl_model *got = cl_view_model(v, name, version);
        if (deleted) {
            fz_check(got == NULL, "model %s still in the view after its delete", key + 6);
            return;
        }
        cl_model want;
        fz_check(cl_model_from_json(&want, value, len, &err) == CL_OK, "taken but bad: %s", key);
        fz_check(got != NULL && strcmp(got->version, want.version) == 0 &&
                     got->batch_size == want.batch_size &&
                     got->num_replicas == want.num_replicas &&
                     strcmp(got->runtime, want.runtime) == 0 &&
                     strcmp(got->resources, want.resources) == 0 &&
                     strv_equal(got->labels, got->n_labels, want.labels, want.n_labels),
                 "the view's model %s is not the value put", key + 6);
        cl_model_deinit(&want);
    } else if (strncmp(key, "current.", 8) == 0) {
        const char *got = cl_view_current(v, key + 8);
        if (deleted) {
            fz_check(got == NULL, "current %s still in the view after its delete", key + 8);
            return;
        }
        char *want = cl_current_from_json(value, len, &err);
        fz_check(want != NULL && got != NULL && strcmp(got, want) == 0,
                 "the view's current %s is not the value put", key + 8);
        free(want);
    } else {
        fz_check(false, "the view took the key %s, which is not its", key);
    }
}

static void check_unique(cl_view *v)
{
    size_t n = cl_view_app_count(v);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            fz_check(strcmp(cl_view_app_at(v, i)->name, cl_view_app_at(v, j)->name) != 0,
                     "app %s twice", cl_view_app_at(v, i)->name);
    n = cl_view_model_count(v);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            fz_check(strcmp(cl_view_model_at(v, i)->name, cl_view_model_at(v, j)->name) != 0 ||
                         strcmp(cl_view_model_at(v, i)->version,
                                cl_view_model_at(v, j)->version) != 0,
                     "model %s:%s twice", cl_view_model_at(v, i)->name,
                     cl_view_model_at(v, i)->version);
    for (size_t i = 0; i < v->n_currents; i++)
        for (size_t j = i + 1; j < v->n_currents; j++)
            fz_check(strcmp(v->currents[i].model, v->currents[j].model) != 0,
                     "current %s twice", v->currents[i].model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* cl_view_start without the watch: loaded and published. */
    cl_view *v = calloc(1, sizeof(*v));
    fz_check(v != NULL, "out of memory");
    pthread_rwlock_init(&v->lock, NULL);
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cond, NULL);
    v->on_change = on_change;
    v->loaded = v->published = true;
    v->starter = pthread_self();
    on_watch(v, NULL, NULL, 0, 0, false); /* the end of the initial load */

    const uint8_t *p = data, *end = data + size;
    uint64_t rev = 0;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        const uint8_t *sp = memchr(p, ' ', (size_t)(line_end - p));
        char *key = fz_strndup(p, (size_t)((sp ? sp : line_end) - p));
        bool deleted = sp == NULL;
        size_t len = deleted ? 0 : (size_t)(line_end - sp - 1);
        char *value = NULL;
        if (!deleted) {
            value = malloc(len ? len : 1); /* exact size: reading past it trips ASan */
            fz_check(value != NULL, "out of memory");
            if (len > 0)
                memcpy(value, sp + 1, len);
        }
        took = false;
        on_watch(v, key, value, len, ++rev, deleted);
        if (took)
            check(v, key, value, len, deleted);
        free(value);
        free(key);
        p = nl ? nl + 1 : end;
    }
    check_unique(v);
    v->watch = NULL;
    cl_view_free(v);
    return 0;
}
