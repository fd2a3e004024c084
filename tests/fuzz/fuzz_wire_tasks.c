/* Fuzzes task batches (CLT1, bus/wire.c) as the router and a replica take
 * them off the bus: cl_wire_tasks_decode (which refuses a batch with a
 * reply subject nothing may be published to), then what each does with
 * the tasks. The router (router.c on_tasks) refuses a batch whose replies
 * are not frontends' results subjects of its cluster
 * (cl_subj_is_fe_results) and copies each task with cl__rtask_copy
 * (rsched.c); the replica (replica.c handle_batch) answers each task into
 * result batches grouped per reply subject with cl__replies_add
 * (replies.c), which must decode as CLR1 with every result in place.
 *
 * Oracles: a batch that decodes encodes back (cl_wire_tasks_add) to the
 * same bytes; its reply subjects are publishable (cl_subj_valid_publish),
 * so the replica answers every task. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cl_subject.h"
#include "cl_wire.h"
#include "fuzz_common.h"
#include "replica_internal.h"
#include "rsched.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

/* The router's check and copies (on_tasks), on the prefix "clipper". */
static void as_router(const cl_task *tasks, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (!cl_subj_is_fe_results(tasks[i].reply, tasks[i].reply_len, "clipper", NULL, NULL))
            return;
    for (uint32_t i = 0; i < n; i++) {
        const cl_task *t = &tasks[i];
        cl__rtask *c = cl__rtask_copy(t->task_id, t->deadline_us, t->slo_us, t->input_type,
                                      t->reply, t->reply_len, t->input, t->input_len);
        fz_check(c != NULL, "out of memory");
        fz_check(strlen(c->reply) == t->reply_len &&
                     memcmp(c->reply, t->reply, t->reply_len) == 0,
                 "the copied reply subject differs");
        fz_check(c->input_len == t->input_len &&
                     (t->input_len == 0 || memcmp(c->input, t->input, t->input_len) == 0),
                 "the copied input differs");
        free(c);
    }
}

/* The replica's answers (an echo model), in batches of at most max_payload. */
static void as_replica(const cl_task *tasks, uint32_t n, size_t max_payload)
{
    cl__replies rs;
    cl__replies_init(&rs, max_payload);
    uint32_t added = 0;
    for (uint32_t i = 0; i < n; i++) {
        cl_status st = cl__replies_add(&rs, tasks[i].reply, tasks[i].reply_len, tasks[i].task_id,
                                       (uint8_t)(i % 5), tasks[i].input, tasks[i].input_len);
        fz_check(st == CL_OK, "task %u: cl__replies_add: %s for a reply subject the decoder "
                 "took", i, cl_status_name(st));
        added++;
    }
    uint32_t found = 0;
    for (size_t b = 0; b < rs.count; b++) {
        cl_result *res = NULL;
        uint32_t m = 0;
        cl_err err;
        fz_check(cl_wire_results_decode(rs.items[b].buf.data, rs.items[b].buf.len, &res, &m,
                                        &err) == CL_OK,
                 "the replica's result batch does not decode: %s", err.msg);
        fz_check(max_payload == 0 || rs.items[b].buf.len <= max_payload || m == 1,
                 "a result batch of %zu bytes and %u results is over %zu", rs.items[b].buf.len,
                 m, max_payload);
        for (uint32_t j = 0; j < m; j++)
            fz_touch(res[j].data, res[j].len);
        found += m;
        free(res);
    }
    fz_check(found == added, "%u results added, %u in the batches", added, found);
    cl__replies_deinit(&rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_task *tasks = NULL;
    uint32_t n = 0;
    cl_err err;
    if (cl_wire_tasks_decode(data, size, &tasks, &n, &err) != CL_OK)
        return 0;

    cl_buf again;
    cl_buf_init(&again);
    fz_check(cl_wire_tasks_begin(&again) == CL_OK, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        fz_touch(tasks[i].reply, tasks[i].reply_len);
        fz_touch(tasks[i].input, tasks[i].input_len);
        fz_check(cl_subj_valid_publish(tasks[i].reply, tasks[i].reply_len, &err),
                 "task %u decoded with a reply subject nothing may be published to: %s", i,
                 err.msg);
        fz_check(cl_wire_tasks_add(&again, &tasks[i]) == CL_OK, "out of memory");
    }
    as_router(tasks, n);
    fz_check(cl_wire_count(&again) == n, "count %u, %u tasks", cl_wire_count(&again), n);
    fz_check(again.len <= size && memcmp(again.data, data, again.len) == 0,
             "%u tasks decoded from %zu bytes encode to %zu other bytes", n, size, again.len);
    cl_buf_deinit(&again);

    as_replica(tasks, n, 0);
    as_replica(tasks, n, 64);
    free(tasks);
    return 0;
}
