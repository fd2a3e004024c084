/* Strict JSON decoding over cJSON. Every getter names the field that is
 * missing or has the wrong type in err, e.g.
 *   "field 'latency_slo_micros' must be an integer, got string". */
#ifndef CL_JSON_H
#define CL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cl_buf.h"
#include "cl_status.h"

/* Parses data (len bytes, need not be NUL-terminated). On failure err says
 * where ("malformed JSON at offset N: ..."). *out must be cJSON_Delete'd.
 * Stricter than cJSON: a key may appear once per object, and no string or
 * key may hold U+0000 (cJSON would cut it there): "field 'name' contains a
 * NUL character (\u0000), which is not allowed". */
cl_status cl_json_parse(cJSON **out, const void *data, size_t len, cl_err *err) CL_MUST_USE;
/* cl_json_parse for a body from a client (an admin command): the text must
 * also be UTF-8 (no overlong forms, no surrogates), without raw control
 * characters in strings. Messages between actors are parsed without these
 * two checks: they are what cJSON printed, and a text one of them cut at a
 * byte count (a heartbeat's cause) may end inside a UTF-8 sequence. */
cl_status cl_json_parse_body(cJSON **out, const void *data, size_t len, cl_err *err) CL_MUST_USE;
/* Like cl_json_parse but also requires the top level to be an object. */
cl_status cl_json_parse_object(cJSON **out, const void *data, size_t len, cl_err *err) CL_MUST_USE;

/* Required fields. The returned string is borrowed from obj. */
cl_status cl_json_get_string(const cJSON *obj, const char *field, const char **out, cl_err *err)
    CL_MUST_USE;
cl_status cl_json_get_int(const cJSON *obj, const char *field, int64_t *out, cl_err *err)
    CL_MUST_USE;
cl_status cl_json_get_bool(const cJSON *obj, const char *field, bool *out, cl_err *err) CL_MUST_USE;
cl_status cl_json_get_array(const cJSON *obj, const char *field, const cJSON **out, cl_err *err)
    CL_MUST_USE;
/* An array whose every element is a string. */
cl_status cl_json_get_string_array(const cJSON *obj, const char *field, const cJSON **out, cl_err *err)
    CL_MUST_USE;

/* Optional fields: CL_OK and *present=false when absent; a present field of
 * the wrong type is still an error. */
cl_status cl_json_opt_string(const cJSON *obj, const char *field, const char **out, bool *present, cl_err *err)
    CL_MUST_USE;
cl_status cl_json_opt_int(const cJSON *obj, const char *field, int64_t *out, bool *present, cl_err *err)
    CL_MUST_USE;
cl_status cl_json_opt_bool(const cJSON *obj, const char *field, bool *out, bool *present, cl_err *err)
    CL_MUST_USE;

/* Rejects fields not in allowed (NULL-terminated): "unknown field 'x'". */
cl_status cl_json_only_fields(const cJSON *obj, const char *const *allowed, cl_err *err)
    CL_MUST_USE;

/* Adds an integer that prints exactly: cJSON prints a number with 15
 * significant digits when that reads back within its own epsilon, so an
 * integer from about 4.5e15 came back 1 or 2 off. Written as raw JSON text
 * ("%" PRId64), so the object is for printing, not for reading back with
 * cJSON's getters. NULL when out of memory. */
cJSON *cl_json_add_int(cJSON *object, const char *key, int64_t v);

/* ---- what cJSON does not check, for other strict parsers too ---- */

/* Whether s[0..len) is UTF-8 as RFC 3629 has it: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. On false *bad (may
 * be NULL) is the offset of the first byte of the first bad sequence. */
bool cl_json_utf8_valid(const void *s, size_t len, size_t *bad);
/* A NUL-terminated copy of s[0..len) that is UTF-8: each byte of a bad
 * sequence becomes U+FFFD, as Python's errors="replace" does, and a NUL
 * byte becomes U+FFFD too (a C string would end there). NULL when out of
 * memory. For text that goes to a client but came from a model. */
char *cl_json_utf8_repair(const void *s, size_t len);

/* Checks the JSON string literal that starts at t[*pos] (its opening
 * quote): UTF-8, no raw control character, valid escapes, \u escapes of
 * surrogates only as a high-low pair. Returns NULL and moves *pos past the
 * closing quote, with *nul set when the string holds U+0000; or returns
 * why it is bad (a static sentence, rapidjson's words where it has them)
 * with *pos at the offending byte. */
const char *cl_json_scan_string(const char *t, size_t len, size_t *pos, bool *nul);

/* Appends the bytes of the string literal at t[pos] (its opening quote,
 * checked by cl_json_scan_string) to out, escapes resolved and U+0000
 * kept. CL_ERR_NOMEM, or CL_ERR_INVALID for a literal it would refuse. */
cl_status cl_json_unescape(const char *t, size_t len, size_t pos, cl_buf *out) CL_MUST_USE;

/* Refuses an object, at any depth under item, that holds a key twice:
 * "duplicate key 'k'" (with " in 'path'" when nested). */
cl_status cl_json_unique_keys(const cJSON *item, cl_err *err) CL_MUST_USE;

/* "string", "number", "object", ... for messages. */
const char *cl_json_type_name(const cJSON *item);
/* rapidjson's names ("String", "Number", "Array", "Null", ...), which
 * Clipper's error texts show; NULL is "Null". */
const char *cl_json_clipper_type_name(const cJSON *item);

/* Unformatted serialisation; caller frees with free(). NULL on OOM. */
char *cl_json_print(const cJSON *item);

#endif
