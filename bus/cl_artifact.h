/* Model artifacts on JetStream, chunked below the server's max payload and
 * checked by SHA-256 digest.
 *
 * Stream "<PREFIX>_ARTIFACTS" (file storage, one message per subject):
 *   <p>.artifact.<model>.<version>.c.<index>   chunk index (0-based)
 *   <p>.artifact.<model>.<version>.meta        {"size","chunks","chunk_size","sha256"}
 * The meta message is written last, so its presence means the artifact is
 * complete. A stored artifact is immutable: the stream refuses a second
 * message on a subject (discard new per subject, deny delete), so neither
 * a put nor a plain NATS publish replaces it; cl_artifact_delete (a purge
 * of the version's subjects) is the only way to remove it. */
#ifndef CL_ARTIFACT_H
#define CL_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include "cl_bus.h"
#include "cl_status.h"

#define CL_SHA256_HEX 65 /* 64 hex digits + NUL */

/* Stores data as the artifact of model:version. digest_hex (may be NULL)
 * receives the SHA-256 in lowercase hex. When model:version has an
 * artifact already: CL_OK if it holds the same bytes (a retried upload),
 * else CL_ERR_EXISTS saying so. Chunks of an upload that never wrote its
 * manifest are removed first. */
cl_status cl_artifact_put(cl_bus *bus, const char *model, const char *version, const void *data,
                          size_t len, char digest_hex[CL_SHA256_HEX], cl_err *err) CL_MUST_USE;
/* Fetches and verifies. *data is malloc'd (free it). CL_ERR_NOT_FOUND when
 * there is no complete artifact; CL_ERR_DIGEST when the bytes do not match
 * the manifest; CL_ERR_INVALID when the manifest is malformed. */
cl_status cl_artifact_get(cl_bus *bus, const char *model, const char *version, void **data,
                          size_t *len, char digest_hex[CL_SHA256_HEX], cl_err *err) CL_MUST_USE;
/* The same, checking the manifest against what the model record says
 * before any chunk is read: CL_ERR_DIGEST, naming both, when its SHA-256
 * is not want_sha256 (NULL or "": not checked) or its size is not
 * want_size (negative: not checked). */
cl_status cl_artifact_get_expected(cl_bus *bus, const char *model, const char *version,
                                   const char *want_sha256, int64_t want_size, void **data,
                                   size_t *len, char digest_hex[CL_SHA256_HEX], cl_err *err)
    CL_MUST_USE;
/* Removes the artifact of model:version (absent is CL_OK). */
cl_status cl_artifact_delete(cl_bus *bus, const char *model, const char *version, cl_err *err)
    CL_MUST_USE;

/* Finds the artifact stream, or creates it with the bus' state replicas
 * (cl_bus_opts.state_replicas); the admin does so when it starts. */
cl_status cl_artifact_open_stream(cl_bus *bus, cl_err *err) CL_MUST_USE;
/* The artifact stream of the cluster with this prefix: "<PREFIX>_ARTIFACTS",
 * upper case, every byte outside [A-Z0-9_-] made '_'. */
void cl_artifact_stream_name(const char *prefix, char out[160]);

/* SHA-256 of data as lowercase hex. */
void cl_sha256_hex(const void *data, size_t len, char out[CL_SHA256_HEX]);

#endif
