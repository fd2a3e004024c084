/* The runtime -> image table and the choice of a model's image
 * (cl_replica_image.h), shared by the docker and kubernetes backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_replica_image.h"

const char *cl_spec_runtime(const cl_backend_spec *spec)
{
    return spec->runtime != NULL && spec->runtime[0] != '\0' ? spec->runtime
                                                             : CL_CLOSURE_RUNTIME;
}

const char *cl_image_of(const cl_image_table *t, const char *runtime)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->e[i].runtime, runtime) == 0)
            return t->e[i].image;
    }
    return NULL;
}

/* One of the images Clipper's deployers chose by default
 * ([registry/]clipper/python36-closure-container:0.4.1, .../pyspark-container,
 * ...): Clipper scripts pass them as base_image, and here they stand for
 * the runtime's own image. */
static bool clipper_stock_image(const char *name)
{
    static const char *const stock[] = {"python-closure-container", "python27-closure-container",
                                        "python35-closure-container", "python36-closure-container",
                                        "python37-closure-container", "pyspark-container",
                                        "pyspark27-container", "pyspark35-container",
                                        "pyspark36-container", "pyspark37-container"};
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", name);
    char *at = strchr(buf, '@'); /* a digest */
    if (at != NULL)
        *at = '\0';
    char *last = strrchr(buf, '/');
    if (last == NULL)
        return false;
    char *tag = strchr(last, ':');
    if (tag != NULL)
        *tag = '\0';
    *last = '\0';
    const char *owner = strrchr(buf, '/');
    owner = owner != NULL ? owner + 1 : buf;
    if (strcmp(owner, "clipper") != 0)
        return false;
    for (size_t i = 0; i < sizeof(stock) / sizeof(stock[0]); i++) {
        if (strcmp(last + 1, stock[i]) == 0)
            return true;
    }
    return false;
}

cl_status cl_image_choose(const cl_image_table *t, const cl_backend_spec *spec,
                          const char **image, bool *users, cl_err *err)
{
    const char *runtime = cl_spec_runtime(spec), *cn = spec->container_name;
    *users = cn != NULL && cn[0] != '\0' && strcmp(cn, "default") != 0 &&
             strcmp(cn, "NO_CONTAINER") != 0 && strcmp(cn, runtime) != 0 &&
             cl_image_of(t, cn) == NULL && !clipper_stock_image(cn);
    if (*users) {
        *image = cn;
        return CL_OK;
    }
    *image = cl_image_of(t, runtime);
    if (*image != NULL)
        return CL_OK;
    return cl_err_set(err, CL_ERR_INVALID,
                      "model %s:%s has runtime '%s', for which this manager has no replica "
                      "image; start the manager with --image %s=IMAGE, or deploy the model "
                      "with an image (base_image) whose 'clipper run replica' runs it",
                      spec->model, spec->version, runtime, runtime);
}

static CL_MUST_USE cl_status set_image(cl_image_table *t, const char *runtime, size_t runtime_len,
                                       const char *image, cl_err *err)
{
    size_t i = 0;
    while (i < t->n && (strlen(t->e[i].runtime) != runtime_len ||
                        strncmp(t->e[i].runtime, runtime, runtime_len) != 0))
        i++;
    if (i == CL_MAX_RUNTIME_IMAGES)
        return cl_err_set(err, CL_ERR_INVALID, "more than %d runtime images given",
                          CL_MAX_RUNTIME_IMAGES);
    char *img = strdup(image);
    if (img == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    if (i == t->n) {
        if ((t->e[i].runtime = strndup(runtime, runtime_len)) == NULL) {
            free(img);
            return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
        }
        t->e[i].image = NULL;
        t->n++;
    }
    free(t->e[i].image);
    t->e[i].image = img;
    return CL_OK;
}

cl_status cl_image_table_init(cl_image_table *t, const char *closure_image,
                              const char *pyspark_image, const cl_backend_config *cfg,
                              cl_err *err)
{
    memset(t, 0, sizeof(*t));
    cl_status s;
    const char *closure = cfg->image && cfg->image[0] ? cfg->image : closure_image;
    if ((s = set_image(t, CL_CLOSURE_RUNTIME, strlen(CL_CLOSURE_RUNTIME), closure, err)) !=
            CL_OK ||
        (s = set_image(t, CL_PYSPARK_RUNTIME, strlen(CL_PYSPARK_RUNTIME), pyspark_image, err)) !=
            CL_OK)
        return s;
    for (size_t i = 0; i < cfg->n_runtime_images; i++) {
        const char *v = cfg->runtime_images[i];
        const char *eq = strchr(v, '=');
        if (eq == NULL || eq == v || eq[1] == '\0')
            return cl_err_set(err, CL_ERR_INVALID,
                              "a runtime's image is given as RUNTIME=IMAGE (for example "
                              "pyspark=clipper/pyspark:latest), got '%.200s'",
                              v);
        size_t len = (size_t)(eq - v);
        for (size_t j = 0; j < i; j++) {
            if (strncmp(cfg->runtime_images[j], v, len + 1) == 0)
                return cl_err_set(err, CL_ERR_INVALID,
                                  "the image of runtime '%.*s' is given twice ('%.200s' and "
                                  "'%.200s')",
                                  (int)len, v, cfg->runtime_images[j], v);
        }
        if (len == strlen(CL_CLOSURE_RUNTIME) && strncmp(v, CL_CLOSURE_RUNTIME, len) == 0 &&
            cfg->image != NULL && cfg->image[0] != '\0')
            return cl_err_set(err, CL_ERR_INVALID,
                              "the image of runtime 'python-closure' is given twice ('%.200s' "
                              "and '%.200s')",
                              cfg->image, v);
        if ((s = set_image(t, v, len, eq + 1, err)) != CL_OK)
            return s;
    }
    return CL_OK;
}

void cl_image_table_free(cl_image_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].runtime);
        free(t->e[i].image);
    }
    t->n = 0;
}

void cl_image_table_describe(const cl_image_table *t, char *buf, size_t size)
{
    size_t used = 0;
    if (size > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < t->n && used < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s=%s", i ? ", " : "", t->e[i].runtime,
                         t->e[i].image);
        used += w > 0 ? (size_t)w : 0;
    }
}
