/* Fuzzes result batches (CLR1, bus/wire.c) as the frontend takes them off
 * <p>.fe.<id>.results (frontend.c results_main): cl_wire_results_decode,
 * then each result's bytes, which become the reply (an OK output through
 * cl_fe_output_value, an error text as a string).
 *
 * Oracle: a batch that decodes encodes back (cl_wire_results_add) to the
 * same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cl_wire.h"
#include "fe_json.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_result *res = NULL;
    uint32_t n = 0;
    cl_err err;
    if (cl_wire_results_decode(data, size, &res, &n, &err) != CL_OK)
        return 0;
    cl_buf again;
    cl_buf_init(&again);
    fz_check(cl_wire_results_begin(&again) == CL_OK, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        fz_touch(res[i].data, res[i].len);
        fz_check(cl_wire_results_add(&again, res[i].task_id, res[i].status, res[i].data,
                                     res[i].len) == CL_OK,
                 "out of memory");
        if (res[i].status == CL_RESULT_OK) {
            cJSON *v = cl_fe_output_value(res[i].data, res[i].len);
            fz_check(v != NULL, "out of memory");
            cJSON_Delete(v);
        }
    }
    fz_check(cl_wire_count(&again) == n, "count %u, %u results", cl_wire_count(&again), n);
    fz_check(again.len <= size && memcmp(again.data, data, again.len) == 0,
             "%u results decoded from %zu bytes encode to %zu other bytes", n, size, again.len);
    cl_buf_deinit(&again);
    free(res);
    return 0;
}
