/* How many tasks the router may send a replica in one batch.
 *
 * Fixed: when the model's batch_size is not -1, every batch is capped at it.
 * Adaptive (batch_size == -1): additive increase, multiplicative decrease,
 * as in the Clipper paper (NSDI '17, section 4.3), kept per replica. The
 * router measures each batch's latency from dispatch to the replica's next
 * pull and reports it here with the batch's tightest SLO:
 *   - latency under the SLO and the batch was full: cap += 1;
 *   - latency over the SLO: cap = max(1, floor(cap * 0.9));
 *   - otherwise (not full, or exactly at the SLO): unchanged.
 * The cap starts at 1 and never exceeds the policy's bound.
 *
 * The latency a batch aims at is not the whole SLO but half of it
 * (cl_batch_target_us): while a replica works on one batch, the next
 * batch's tasks wait in the queue, so a task can spend up to one batch's
 * latency waiting and one being served. Clipper compared the batch latency
 * with the whole SLO, so under load its queries waited past their SLO.
 *
 * The policy also estimates how long a batch of n tasks will take on this
 * replica (cl_batch_policy_estimate_us): an exponentially weighted least-
 * squares line latency = a + b * n over the recent batches, whatever the
 * batch_size. The router uses it to shed tasks that cannot finish before
 * their deadline instead of spending the replica on them.
 *
 * Pure: no clock, no I/O, no locking. */
#ifndef CL_BATCH_POLICY_H
#define CL_BATCH_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define CL_BATCH_ADAPTIVE (-1)
#define CL_BATCH_DEFAULT_BOUND 1024u

typedef struct {
    uint32_t cap;   /* adaptive cap, 1..bound */
    uint32_t bound; /* largest adaptive cap */
    /* Exponentially weighted sums over completed batches of size n and
     * latency l: weight, n, n^2, l, n*l. */
    double w, sn, snn, sl, snl;
} cl_batch_policy;

/* Weight of the past in the latency estimate, per batch observed. */
#define CL_BATCH_ESTIMATE_DECAY 0.8

/* The batch latency the adaptive cap aims at for a batch whose tightest
 * SLO is slo_us: half of it. */
uint64_t cl_batch_target_us(uint64_t slo_us);

/* bound 0 means CL_BATCH_DEFAULT_BOUND. */
void cl_batch_policy_init(cl_batch_policy *p, uint32_t bound);

/* The largest batch to send now, given the model's configured batch_size
 * (CL_BATCH_ADAPTIVE or a fixed size; a fixed size below 1 counts as 1). */
uint32_t cl_batch_policy_limit(const cl_batch_policy *p, int64_t batch_size);

/* Feeds back one completed batch: its size, the limit it was cut to, its
 * latency and the latency it aimed at (cl_batch_target_us of its tightest
 * SLO; both in microseconds). Only changes the cap when batch_size is
 * CL_BATCH_ADAPTIVE and target_us is not 0; always feeds the latency
 * estimate. */
void cl_batch_policy_observe(cl_batch_policy *p, int64_t batch_size, uint32_t size,
                             uint32_t limit, uint64_t latency_us, uint64_t target_us);

/* How long a batch of n tasks is expected to take from dispatch to its
 * results, from the batches seen so far; 0 when none was seen. */
uint64_t cl_batch_policy_estimate_us(const cl_batch_policy *p, uint32_t n);

#endif
