/* Fuzzes the artifact manifest a replica reads from JetStream
 * (<p>.artifact.<model>.<version>.meta, {"size","chunks","chunk_size",
 * "sha256"}) before it fetches the chunks: parse_manifest in
 * bus/artifact.c, a static function; this file includes artifact.c to
 * reach it (so the real parser runs on a real cnats message, and the
 * bus library's artifact.o is not linked).
 *
 * Oracle: an accepted manifest describes chunks that cl_artifact_get can
 * fetch and copy: size, chunks and chunk_size agree (chunks - 1 full
 * chunks and a last one of 1 .. chunk_size bytes, or no chunk for an
 * empty artifact), and the digest is 64 lowercase characters. */
#include "../../bus/artifact.c"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    /* cnats' message destructor needs the library opened. */
    return nats_Open(-1) == NATS_OK ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INT32_MAX)
        return 0;
    natsMsg *m = NULL;
    fz_check(natsMsg_Create(&m, "clipper.artifact.m.1.meta", NULL, (const char *)data,
                            (int)size) == NATS_OK,
             "cannot make a message");
    manifest mf;
    cl_err err;
    if (parse_manifest(m, &mf, &err) == CL_OK) {
        fz_check(strlen(mf.sha) == 64, "digest of %zu characters", strlen(mf.sha));
        for (int i = 0; i < 64; i++)
            fz_check(!isupper((unsigned char)mf.sha[i]), "digest not lowercase");
        fz_check(mf.size >= 0 && mf.chunks >= 0 && mf.chunk_size > 0, "negative sizes");
        if (mf.size == 0) {
            fz_check(mf.chunks == 0, "an empty artifact in %lld chunks", (long long)mf.chunks);
        } else {
            /* The last chunk holds size - (chunks - 1) * chunk_size bytes. */
            __int128 full = (__int128)(mf.chunks - 1) * mf.chunk_size;
            fz_check(mf.chunks >= 1 && full < mf.size && mf.size - full <= mf.chunk_size,
                     "size %lld, chunks %lld and chunk_size %lld do not agree",
                     (long long)mf.size, (long long)mf.chunks, (long long)mf.chunk_size);
        }
    }
    cl_msg_free((cl_msg *)m); /* the bus' own free: no hand-off to cnats' GC thread */
    return 0;
}
