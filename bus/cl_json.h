/* Strict JSON decoding over cJSON. Every getter names the field that is
 * missing or has the wrong type in err, e.g.
 *   "field 'latency_slo_micros' must be an integer, got string". */
#ifndef CL_JSON_H
#define CL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_status.h"

/* Parses data (len bytes, need not be NUL-terminated). On failure err says
 * where ("malformed JSON at offset N: ..."). *out must be cJSON_Delete'd. */
cl_status cl_json_parse(cJSON **out, const void *data, size_t len, cl_err *err);
/* Like cl_json_parse but also requires the top level to be an object. */
cl_status cl_json_parse_object(cJSON **out, const void *data, size_t len, cl_err *err);

/* Required fields. The returned string is borrowed from obj. */
cl_status cl_json_get_string(const cJSON *obj, const char *field, const char **out, cl_err *err);
cl_status cl_json_get_int(const cJSON *obj, const char *field, int64_t *out, cl_err *err);
cl_status cl_json_get_bool(const cJSON *obj, const char *field, bool *out, cl_err *err);
cl_status cl_json_get_array(const cJSON *obj, const char *field, const cJSON **out, cl_err *err);
/* An array whose every element is a string. */
cl_status cl_json_get_string_array(const cJSON *obj, const char *field, const cJSON **out, cl_err *err);

/* Optional fields: CL_OK and *present=false when absent; a present field of
 * the wrong type is still an error. */
cl_status cl_json_opt_string(const cJSON *obj, const char *field, const char **out, bool *present, cl_err *err);
cl_status cl_json_opt_int(const cJSON *obj, const char *field, int64_t *out, bool *present, cl_err *err);
cl_status cl_json_opt_bool(const cJSON *obj, const char *field, bool *out, bool *present, cl_err *err);

/* Rejects fields not in allowed (NULL-terminated): "unknown field 'x'". */
cl_status cl_json_only_fields(const cJSON *obj, const char *const *allowed, cl_err *err);

/* "string", "number", "object", ... for messages. */
const char *cl_json_type_name(const cJSON *item);
/* rapidjson's names ("String", "Number", "Array", "Null", ...), which
 * Clipper's error texts show; NULL is "Null". */
const char *cl_json_clipper_type_name(const cJSON *item);

/* Unformatted serialisation; caller frees with free(). NULL on OOM. */
char *cl_json_print(const cJSON *item);

#endif
