/* Fixed or additive-increase/multiplicative-decrease batch sizes. See
 * batch_policy.h. */
#include "batch_policy.h"

void cl_batch_policy_init(cl_batch_policy *p, uint32_t bound)
{
    *p = (cl_batch_policy){.bound = bound ? bound : CL_BATCH_DEFAULT_BOUND, .cap = 1};
}

uint64_t cl_batch_target_us(uint64_t slo_us)
{
    return slo_us / 2;
}

uint32_t cl_batch_policy_limit(const cl_batch_policy *p, int64_t batch_size)
{
    if (batch_size == CL_BATCH_ADAPTIVE)
        return p->cap;
    if (batch_size < 1)
        return 1;
    return batch_size > UINT32_MAX ? UINT32_MAX : (uint32_t)batch_size;
}

static void estimate_add(cl_batch_policy *p, uint32_t size, uint64_t latency_us)
{
    const double k = CL_BATCH_ESTIMATE_DECAY, n = size, l = (double)latency_us;
    p->w = p->w * k + 1;
    p->sn = p->sn * k + n;
    p->snn = p->snn * k + n * n;
    p->sl = p->sl * k + l;
    p->snl = p->snl * k + n * l;
}

uint64_t cl_batch_policy_estimate_us(const cl_batch_policy *p, uint32_t n)
{
    if (p->w <= 0)
        return 0;
    double mean_n = p->sn / p->w, mean_l = p->sl / p->w;
    double var = p->snn / p->w - mean_n * mean_n;
    double est = mean_l;
    /* With batches of (nearly) one size the slope is unknown: the mean
     * latency is the estimate. A negative slope is noise: same. */
    if (var > 0.25) {
        double slope = (p->snl / p->w - mean_n * mean_l) / var;
        if (slope > 0)
            est = mean_l + slope * ((double)n - mean_n);
    }
    return est > 0 ? (uint64_t)est : 0;
}

void cl_batch_policy_observe(cl_batch_policy *p, int64_t batch_size, uint32_t size,
                             uint32_t limit, uint64_t latency_us, uint64_t target_us)
{
    estimate_add(p, size, latency_us);
    if (batch_size != CL_BATCH_ADAPTIVE || target_us == 0)
        return;
    if (latency_us > target_us) {
        /* floor(cap * 0.9) in integers. */
        uint32_t next = (uint32_t)(((uint64_t)p->cap * 9) / 10);
        p->cap = next < 1 ? 1 : next;
    } else if (latency_us < target_us && size >= limit && p->cap < p->bound) {
        p->cap++;
    }
}
