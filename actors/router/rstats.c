/* The router's histogram bounds and their JSON (see rstats.h). */
#include "rstats.h"

const uint64_t cl__batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
const uint32_t cl__n_batch_bounds = sizeof(cl__batch_bounds) / sizeof(cl__batch_bounds[0]);
const uint64_t cl__delay_bounds_us[] = {50,     100,    250,    500,     1000,    2500,
                                        5000,   10000,  25000,  50000,   100000,  250000,
                                        500000, 1000000, 2500000, 5000000, 10000000};
const uint32_t cl__n_delay_bounds = sizeof(cl__delay_bounds_us) / sizeof(cl__delay_bounds_us[0]);

cJSON *cl__hist_json(const cl_hist *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *bounds = cJSON_AddArrayToObject(o, "bounds");
    cJSON *buckets = cJSON_AddArrayToObject(o, "buckets");
    if (bounds == NULL || buckets == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    uint64_t cum = 0;
    for (uint32_t i = 0; i <= h->n_bounds; i++) {
        cum += h->counts[i];
        if (i < h->n_bounds)
            cJSON_AddItemToArray(bounds, cJSON_CreateNumber((double)h->bounds[i]));
        cJSON_AddItemToArray(buckets, cJSON_CreateNumber((double)cum));
    }
    cJSON_AddNumberToObject(o, "count", (double)h->count);
    cJSON_AddNumberToObject(o, "sum", (double)h->sum);
    cJSON_AddNumberToObject(o, "min", (double)h->min);
    cJSON_AddNumberToObject(o, "max", (double)h->max);
    cJSON_AddNumberToObject(o, "sumsq", h->sumsq);
    return o;
}
