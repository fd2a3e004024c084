/* Which image a model's replicas run, for the backends that run images
 * (docker, kubernetes): a table of runtime -> image (python-closure's and
 * pyspark's by default, others given as RUNTIME=IMAGE), and the choice
 * for one model:
 *   - the model's container_name when that names an image of the user's
 *     (a base_image given at deploy);
 *   - otherwise (the runtime's name, "default", none, or one of Clipper's
 *     stock image names such as clipper/pyspark-container:0.4.1, which do
 *     not exist here) the image of the model's runtime. */
#ifndef CL_REPLICA_IMAGE_H
#define CL_REPLICA_IMAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "cl_backend.h"
#include "cl_status.h"

#define CL_CLOSURE_RUNTIME "python-closure"
#define CL_PYSPARK_RUNTIME "pyspark"
#define CL_MAX_RUNTIME_IMAGES 16

typedef struct {
    struct {
        char *runtime;
        char *image;
    } e[CL_MAX_RUNTIME_IMAGES]; /* e[0]: python-closure */
    size_t n;
} cl_image_table;

/* The table: closure_image and pyspark_image as defaults, then cfg->image
 * (python-closure's) and cfg->runtime_images ("RUNTIME=IMAGE" each).
 * CL_ERR_INVALID naming the bad or doubled entry. Free with
 * cl_image_table_free (also after a failure). */
cl_status cl_image_table_init(cl_image_table *t, const char *closure_image,
                              const char *pyspark_image, const cl_backend_config *cfg,
                              cl_err *err) CL_MUST_USE;
void cl_image_table_free(cl_image_table *t);

/* The runtime of spec ("python-closure" when it names none). */
const char *cl_spec_runtime(const cl_backend_spec *spec);
/* The image of runtime, or NULL. */
const char *cl_image_of(const cl_image_table *t, const char *runtime);
/* The image spec's replicas run; *users: it is the model's own
 * container_name. CL_ERR_INVALID saying how to give an image when the
 * runtime has none. */
cl_status cl_image_choose(const cl_image_table *t, const cl_backend_spec *spec,
                          const char **image, bool *users, cl_err *err) CL_MUST_USE;
/* "python-closure=IMG, pyspark=IMG" into buf. */
void cl_image_table_describe(const cl_image_table *t, char *buf, size_t size);

#endif
