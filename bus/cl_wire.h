/* Binary encoding of the hot-path internal messages: task batches
 * (frontend -> router -> replica) and result batches (replica/router ->
 * frontend). Inputs travel as raw bytes (int32/float32/float64 arrays in
 * little-endian, raw bytes, UTF-8 strings), never re-encoded as JSON.
 *
 * All integers are little-endian. Layout:
 *   tasks:   "CLT1" u32 count, then per task:
 *            u64 task_id, u64 deadline_us, u32 slo_us, u8 input_type,
 *            u16 reply_len, reply bytes, u32 input_len, input bytes
 *   results: "CLR1" u32 count, then per result:
 *            u64 task_id, u8 status, u32 len, bytes (output or error text)
 *
 * Decoded items are views into the message buffer: keep the buffer alive
 * while using them. */
#ifndef CL_WIRE_H
#define CL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "cl_buf.h"
#include "cl_status.h"

/* Clipper's input type numbering. */
typedef enum {
    CL_INPUT_BYTES = 0,
    CL_INPUT_INTEGERS = 1,
    CL_INPUT_FLOATS = 2,
    CL_INPUT_DOUBLES = 3,
    CL_INPUT_STRINGS = 4,
    CL__INPUT_COUNT
} cl_input_type;

/* Parses Clipper's names and aliases (bytes|byte|b, integers|ints|integer|
 * int|i, floats|float|f, doubles|double|d, strings|string|str|strs|s).
 * Returns -1 for anything else. */
int cl_input_type_parse(const char *name);
/* Canonical name: "bytes", "integers", "floats", "doubles", "strings". */
const char *cl_input_type_name(cl_input_type t);

typedef enum {
    CL_RESULT_OK = 0,          /* data is the model's output string */
    CL_RESULT_MODEL_ERROR = 1, /* data says what the model did wrong */
    CL_RESULT_EXPIRED = 2,     /* deadline passed before a replica took it */
    CL_RESULT_NO_REPLICA = 3,  /* no connected replica for the model version */
    CL_RESULT_REPLICA_LOST = 4 /* the replica holding it stopped */
} cl_result_status;

typedef struct {
    uint64_t task_id;
    uint64_t deadline_us; /* wall clock, microseconds */
    uint32_t slo_us;
    uint8_t input_type;
    uint16_t reply_len;
    const char *reply; /* subject for the result; not NUL-terminated */
    uint32_t input_len;
    const uint8_t *input;
} cl_task;

typedef struct {
    uint64_t task_id;
    uint8_t status; /* cl_result_status */
    uint32_t len;
    const char *data; /* not NUL-terminated */
} cl_result;

/* Writers append to a cl_buf; begin writes the header, add appends one item
 * and bumps the count. */
cl_status cl_wire_tasks_begin(cl_buf *out) CL_MUST_USE;
cl_status cl_wire_tasks_add(cl_buf *out, const cl_task *task) CL_MUST_USE;
uint32_t cl_wire_count(const cl_buf *buf);

cl_status cl_wire_results_begin(cl_buf *out) CL_MUST_USE;
cl_status cl_wire_results_add(cl_buf *out, uint64_t task_id, uint8_t status, const void *data,
                              uint32_t len) CL_MUST_USE;

/* Decoders. *out is malloc'd (free it); items point into data. A truncated
 * or malformed message gives CL_ERR_INVALID with err saying where. A task
 * batch is malformed as a whole when a task's reply subject is not one a
 * result may be published to (cl_subj_valid_publish). */
cl_status cl_wire_tasks_decode(const void *data, size_t len, cl_task **out, uint32_t *count,
                               cl_err *err) CL_MUST_USE;
cl_status cl_wire_results_decode(const void *data, size_t len, cl_result **out, uint32_t *count,
                                 cl_err *err) CL_MUST_USE;

#endif
