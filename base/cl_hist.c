/* See cl_hist.h. */
#include "cl_hist.h"

void cl_hist_init(cl_hist *h, const uint64_t *bounds, uint32_t n_bounds)
{
    *h = (cl_hist){.bounds = bounds, .n_bounds = n_bounds > CL_HIST_MAX ? CL_HIST_MAX : n_bounds};
}

void cl_hist_observe(cl_hist *h, uint64_t v)
{
    uint32_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += v;
    h->sumsq += (double)v * (double)v;
}

void cl_hist_merge(cl_hist *into, const cl_hist *h)
{
    if (h->count == 0)
        return;
    for (uint32_t i = 0; i <= into->n_bounds && i <= h->n_bounds; i++)
        into->counts[i] += h->counts[i];
    if (into->count == 0 || h->min < into->min)
        into->min = h->min;
    if (h->max > into->max)
        into->max = h->max;
    into->count += h->count;
    into->sum += h->sum;
    into->sumsq += h->sumsq;
}
