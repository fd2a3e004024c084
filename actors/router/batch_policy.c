/* Fixed or additive-increase/multiplicative-decrease batch sizes. See
 * batch_policy.h. */
#include "batch_policy.h"

void cl_batch_policy_init(cl_batch_policy *p, uint32_t bound)
{
    p->bound = bound ? bound : CL_BATCH_DEFAULT_BOUND;
    p->cap = 1;
}

uint32_t cl_batch_policy_limit(const cl_batch_policy *p, int64_t batch_size)
{
    if (batch_size == CL_BATCH_ADAPTIVE)
        return p->cap;
    if (batch_size < 1)
        return 1;
    return batch_size > UINT32_MAX ? UINT32_MAX : (uint32_t)batch_size;
}

void cl_batch_policy_observe(cl_batch_policy *p, int64_t batch_size, uint32_t size,
                             uint32_t limit, uint64_t latency_us, uint64_t slo_us)
{
    if (batch_size != CL_BATCH_ADAPTIVE)
        return;
    if (latency_us > slo_us) {
        /* floor(cap * 0.9) in integers. */
        uint32_t next = (uint32_t)(((uint64_t)p->cap * 9) / 10);
        p->cap = next < 1 ? 1 : next;
    } else if (latency_us < slo_us && size >= limit && p->cap < p->bound) {
        p->cap++;
    }
}
