/* Fuzzes the frontend's decoding of a predict or feedback body: the bytes
 * of an HTTP POST /<app>/predict|update and of a NATS <p>.predict.<app> or
 * <p>.update.<app> request reach the same functions (cl_fe_prepare and
 * cl_fe_update in fe_query.c): cl_fe_doc_parse (fe_json.c), then
 * cl_fe_decode_version and cl_fe_decode_inputs, or cl_fe_decode_update
 * (fe_decode.c), with cl_fe_decode_count, the count the frontend checks
 * its limits with before decoding (it must match what is decoded). Each
 * body is decoded for every input type, and each decoded input is used as
 * the frontend uses it: its bytes read through cl_fe_input_data /
 * cl_fe_input_len, hashed for the prediction cache and put in a task
 * batch (CLT1) that must decode back to the same bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cl_wire.h"
#include "fe_cache.h"
#include "fe_decode.h"
#include "fe_json.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

/* What cl_fe_prepare and queue_tasks do with each decoded input. */
static void use_inputs(const cl_fe_inputs *in, int type)
{
    cl_buf batch;
    cl_buf_init(&batch);
    fz_check(cl_wire_tasks_begin(&batch) == CL_OK, "out of memory");
    static const char reply[] = "clipper.fe.0123456789abcdef.results.m";
    for (size_t i = 0; i < in->n; i++) {
        const uint8_t *p = cl_fe_input_data(in, i);
        size_t len = cl_fe_input_len(in, i);
        fz_check(in->off[i] <= in->off[i + 1] && in->off[i + 1] <= in->data.len,
                 "input %zu spans [%zu, %zu) of %zu bytes", i, in->off[i], in->off[i + 1],
                 in->data.len);
        fz_touch(p, len);
        cl_fe_cache_key k = {"model", "1", (uint8_t)type, p, len, 0};
        (void)cl_fe_cache_hash(&k);
        cl_task t = {
            .task_id = i + 1,
            .deadline_us = 1700000000000000ull,
            .slo_us = 100000,
            .input_type = (uint8_t)type,
            .reply_len = (uint16_t)(sizeof(reply) - 1),
            .reply = reply,
            .input_len = (uint32_t)len,
            .input = p,
        };
        fz_check(cl_wire_tasks_add(&batch, &t) == CL_OK, "out of memory");
    }
    cl_task *tasks = NULL;
    uint32_t n = 0;
    cl_err err;
    fz_check(cl_wire_tasks_decode(batch.data, batch.len, &tasks, &n, &err) == CL_OK,
             "the frontend's own task batch does not decode: %s", err.msg);
    fz_check(n == in->n, "%u tasks decoded, %zu sent", n, in->n);
    for (uint32_t i = 0; i < n; i++)
        fz_check(tasks[i].input_len == cl_fe_input_len(in, i) &&
                     (tasks[i].input_len == 0 ||
                      memcmp(tasks[i].input, cl_fe_input_data(in, i), tasks[i].input_len) == 0),
                 "task %u does not carry input %u's bytes", i, i);
    free(tasks);
    cl_buf_deinit(&batch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    cl_fe_doc doc;
    cl_err err;
    if (cl_fe_doc_parse(&doc, body, size, &err) != CL_OK) {
        /* The reply's cause (both schemas: predict and feedback). */
        free(cl_fe_json_error_cause(err.msg, CL_FE_PREDICT_SCHEMA));
        free(cl_fe_json_error_cause(err.msg, CL_FE_UPDATE_SCHEMA));
        /* cl_fe_update deinits a doc whose parse failed. */
        cl_fe_doc_deinit(&doc);
        return 0;
    }
    const char *version = NULL;
    if (cl_fe_decode_version(&doc, &version, &err) == CL_OK && version != NULL)
        fz_touch(version, strlen(version));

    for (int type = 0; type < CL__INPUT_COUNT; type++) {
        cl_fe_inputs in;
        cl_fe_inputs_init(&in);
        if (cl_fe_decode_inputs(&doc, type, &in, &err) == CL_OK) {
            /* The count the frontend checks its limits with, before decoding. */
            fz_check(cl_fe_decode_count(&doc) == in.n, "cl_fe_decode_count says %zu, %zu decoded",
                     cl_fe_decode_count(&doc), in.n);
            use_inputs(&in, type);
        } else
            free(cl_fe_json_error_cause(err.msg, CL_FE_PREDICT_SCHEMA));
        cl_fe_inputs_deinit(&in);

        int64_t uid = 0;
        double label = 0;
        cl_fe_inputs upd;
        cl_fe_inputs_init(&upd);
        if (cl_fe_decode_update(&doc, type, &uid, &upd, &label, &err) == CL_OK)
            use_inputs(&upd, type);
        else
            free(cl_fe_json_error_cause(err.msg, CL_FE_UPDATE_SCHEMA));
        cl_fe_inputs_deinit(&upd);
    }
    /* An input type the app record could never hold is refused. */
    cl_fe_inputs bad;
    cl_fe_inputs_init(&bad);
    fz_check(cl_fe_decode_inputs(&doc, CL__INPUT_COUNT, &bad, &err) != CL_OK,
             "input type %d accepted", CL__INPUT_COUNT);
    cl_fe_inputs_deinit(&bad);
    cl_fe_doc_deinit(&doc);
    return 0;
}
