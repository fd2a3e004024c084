/* Model artifacts on JetStream: chunked put, verified get, delete, and the
 * SHA-256 helper.
 *
 * The stream keeps one message per subject and refuses a second one
 * (discard new, per subject), so a stored chunk or manifest cannot be
 * replaced, not even by a plain NATS publish; single messages cannot be
 * deleted. Purging stays allowed: delete_versioned_model purges a
 * version's subjects so the version can be deployed again, and JetStream
 * cannot clear deny_purge once it is set. Our own publishes also carry
 * "expect no message on this subject", which holds even on a server that
 * ignores the per-subject discard. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "bus_internal.h"
#include "cl_artifact.h"
#include "cl_json.h"
#include "cl_log.h"
#include "cl_subject.h"

#define CHUNK_HEADROOM 4096

void cl_sha256_hex(const void *data, size_t len, char out[CL_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < mdlen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

/* "<PREFIX>_ARTIFACTS": stream names may not hold '.', '*', '>', '/', '\\' or
 * whitespace; we keep [A-Z0-9_-] and map the rest to '_'. */
void cl_artifact_stream_name(const char *prefix, char out[160])
{
    size_t n = 0;
    for (const char *p = prefix; *p != '\0' && n < 120; p++) {
        char c = (char)toupper((unsigned char)*p);
        bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        out[n++] = ok ? c : '_';
    }
    memcpy(out + n, "_ARTIFACTS", 11);
}

typedef struct {
    jsCtx *js;
    char stream[160];
    char base[CL_SUBJECT_MAX]; /* <p>.artifact.<model>.<version> */
    bool direct;
    int64_t max_payload;
} ctx;

/* What makes stored artifacts immutable (see the top of the file). */
static void protect(jsStreamConfig *cfg)
{
    cfg->MaxMsgsPerSubject = 1;
    cfg->Discard = js_DiscardNew;
    cfg->DiscardNewPerSubject = true;
    cfg->DenyDelete = true;
}

static bool is_protected(const jsStreamConfig *cfg)
{
    return cfg != NULL && cfg->MaxMsgsPerSubject == 1 && cfg->Discard == js_DiscardNew &&
           cfg->DiscardNewPerSubject && cfg->DenyDelete;
}

/* A stream made before artifacts were immutable gets the protection now.
 * Not fatal when it cannot: our own puts still never overwrite (they
 * expect no message on each subject), but a plain publish could. */
static void upgrade(ctx *c, jsStreamInfo **si)
{
    jsStreamConfig *cfg = (*si)->Config;
    if (cfg == NULL || is_protected(cfg))
        return;
    protect(cfg);
    jsStreamInfo *up = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_UpdateStream(&up, c->js, cfg, NULL, &jerr);
    if (s != NATS_OK) {
        const char *detail = nats_GetLastError(NULL);
        cl_warn("cannot make the artifact stream %s refuse replacing stored artifacts: %s "
                "(error %d); a plain publish on its subjects can still replace one",
                c->stream, detail && *detail ? detail : natsStatus_GetText(s), (int)jerr);
        return;
    }
    if (!is_protected(up->Config))
        cl_warn("nats-server ignored the artifact stream's per-subject discard (it needs "
                "nats-server 2.9 or later): a plain publish on %s's subjects can still "
                "replace a stored artifact",
                c->stream);
    else
        cl_info("artifact stream %s now refuses to replace stored artifacts", c->stream);
    jsStreamInfo_Destroy(*si);
    *si = up;
}

/* Finds the stream, or creates it (create), with the bus' state replicas;
 * when create, an existing stream of the old, replaceable kind is updated
 * (upgrade). CL_ERR_NOT_FOUND (err not set) when it is not there and not
 * created. */
static CL_MUST_USE cl_status open_stream(ctx *c, cl_bus *bus, bool create, cl_err *err)
{
    cl_status st = cl__bus_js(bus, &c->js, err);
    if (st != CL_OK)
        return st;
    cl_artifact_stream_name(cl_bus_prefix(bus), c->stream);

    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, c->js, c->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND && !create)
        return CL_ERR_NOT_FOUND;
    if (s == NATS_NOT_FOUND) {
        char subjects[CL_SUBJECT_MAX + 16];
        snprintf(subjects, sizeof(subjects), "%s.artifact.>", cl_bus_prefix(bus));
        const char *subj_list[1] = {subjects};
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        cfg.Name = c->stream;
        cfg.Subjects = subj_list;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.AllowDirect = true;
        cfg.Replicas = cl__bus_state_replicas(bus);
        protect(&cfg);
        s = js_AddStream(&si, c->js, &cfg, NULL, &jerr);
        if (s != NATS_OK && jerr == JSStreamNameExistErr) {
            /* Created by someone else meanwhile. */
            s = js_GetStreamInfo(&si, c->js, c->stream, NULL, &jerr);
        }
    }
    if (s == NATS_OK && create)
        upgrade(c, &si);
    if (s != NATS_OK) {
        char what[200];
        snprintf(what, sizeof(what), "cannot use the artifact stream %s", c->stream);
        st = cl__bus_status(s, err, what);
        return st == CL_ERR_NOT_FOUND ? (err ? (err->code = CL_ERR_BUS) : CL_ERR_BUS) : st;
    }
    c->direct = si->Config != NULL && si->Config->AllowDirect;
    c->max_payload = cl_bus_max_payload(bus);
    jsStreamInfo_Destroy(si);
    return CL_OK;
}

/* Validates names, builds the base subject, finds (or creates) the stream. */
static CL_MUST_USE cl_status ctx_init(ctx *c, cl_bus *bus, const char *model, const char *version,
                                      bool create, cl_err *err)
{
    if (!cl_token_valid(model, "model name", err) || !cl_token_valid(version, "model version", err))
        return CL_ERR_INVALID;
    cl_status st = cl_subject_build(c->base, err, cl_bus_prefix(bus), "artifact", model, version,
                                    (const char *)NULL);
    if (st != CL_OK)
        return st;
    st = open_stream(c, bus, create, err);
    if (st == CL_ERR_NOT_FOUND)
        return cl_err_set(err, CL_ERR_NOT_FOUND, "no artifact stored for model %s:%s", model,
                          version);
    return st;
}

cl_status cl_artifact_open_stream(cl_bus *bus, cl_err *err)
{
    ctx c;
    memset(&c, 0, sizeof(c));
    return open_stream(&c, bus, true, err);
}

static natsStatus purge(ctx *c)
{
    char filter[CL_SUBJECT_MAX + 4];
    snprintf(filter, sizeof(filter), "%s.>", c->base);
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Purge.Subject = filter;
    jsErrCode jerr = 0;
    return js_PurgeStream(c->js, c->stream, &o, &jerr);
}

/* The last message on subject; NATS_NOT_FOUND when none. */
static natsStatus last_msg(ctx *c, const char *subject, natsMsg **out)
{
    jsErrCode jerr = 0;
    natsStatus s;
    if (c->direct) {
        jsDirectGetMsgOptions dg;
        jsDirectGetMsgOptions_Init(&dg);
        dg.LastBySubject = subject;
        s = js_DirectGetMsg(out, c->js, c->stream, NULL, &dg);
    } else {
        s = js_GetLastMsg(out, c->js, c->stream, subject, NULL, &jerr);
    }
    if (s != NATS_OK && jerr == JSNoMessageFoundErr)
        s = NATS_NOT_FOUND;
    return s;
}

typedef struct {
    int64_t size, chunks, chunk_size;
    char sha[CL_SHA256_HEX];
} manifest;

static CL_MUST_USE cl_status parse_manifest(const natsMsg *m, manifest *mf, cl_err *err)
{
    cJSON *root = NULL;
    const char *sha = NULL;
    cl_status st = cl_json_parse_object(&root, natsMsg_GetData((natsMsg *)m),
                                        (size_t)natsMsg_GetDataLength((natsMsg *)m), err);
    if (st == CL_OK)
        st = cl_json_get_int(root, "size", &mf->size, err);
    if (st == CL_OK)
        st = cl_json_get_int(root, "chunks", &mf->chunks, err);
    if (st == CL_OK)
        st = cl_json_get_int(root, "chunk_size", &mf->chunk_size, err);
    if (st == CL_OK)
        st = cl_json_get_string(root, "sha256", &sha, err);
    if (st == CL_OK && strlen(sha) != 64)
        st = cl_err_set(err, CL_ERR_INVALID, "field 'sha256' must hold 64 hex digits");
    /* size / chunk_size rounded up, written so that a size near INT64_MAX
     * cannot overflow (the fuzzer's finding: size + chunk_size - 1). */
    if (st == CL_OK && (mf->size < 0 || mf->chunks < 0 || mf->chunk_size <= 0 ||
                        mf->chunks != mf->size / mf->chunk_size +
                                          (mf->size % mf->chunk_size != 0)))
        st = cl_err_set(err, CL_ERR_INVALID,
                        "size %" PRId64 ", chunks %" PRId64 " and chunk_size %" PRId64
                        " do not agree",
                        mf->size, mf->chunks, mf->chunk_size);
    if (st == CL_OK) {
        for (int i = 0; i < 64; i++)
            mf->sha[i] = (char)tolower((unsigned char)sha[i]);
        mf->sha[64] = '\0';
    }
    cJSON_Delete(root);
    return st;
}

/* Reads and checks the manifest of c->base. CL_ERR_NOT_FOUND (err not set)
 * when there is none: no artifact, or its upload has not finished. */
static CL_MUST_USE cl_status read_manifest(ctx *c, const char *model, const char *version,
                                           manifest *mf, cl_err *err)
{
    char subj[CL_SUBJECT_MAX + 32];
    snprintf(subj, sizeof(subj), "%s.meta", c->base);
    natsMsg *m = NULL;
    natsStatus s = last_msg(c, subj, &m);
    if (s == NATS_NOT_FOUND)
        return CL_ERR_NOT_FOUND;
    if (s != NATS_OK)
        return cl__bus_status(s, err, "cannot read the artifact manifest");
    cl_status st = parse_manifest(m, mf, err);
    natsMsg_Destroy(m);
    /* A chunk never exceeds the server's max payload: refuse a manifest
     * that says otherwise before anything is allocated for it. */
    if (st == CL_OK && c->max_payload > 0 && mf->chunk_size > c->max_payload)
        st = cl_err_set(err, CL_ERR_INVALID,
                        "chunk_size %" PRId64 " exceeds the server's max payload %" PRId64,
                        mf->chunk_size, c->max_payload);
    if (st != CL_OK)
        cl_err_prefix(err, "artifact manifest of %s:%s is malformed", model, version);
    return st;
}

/* Publishes one message of a new artifact, expecting its subject to be
 * empty. CL_ERR_EXISTS when it is not (someone else stored one). */
static CL_MUST_USE cl_status publish_new(ctx *c, const char *subj, const void *data, size_t len,
                                         const char *what, cl_err *err)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectNoMessage = true;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(NULL, c->js, subj, data, (int)len, &po, &jerr);
    if (s == NATS_OK)
        return CL_OK;
    if (jerr == JSStreamWrongLastSequenceErr || jerr == JSStreamStoreFailedErr) {
        const char *detail = nats_GetLastError(NULL);
        return cl_err_set(err, CL_ERR_EXISTS,
                          "cannot store %s: %s already holds a message (%s); another upload of "
                          "this version ran at the same time",
                          what, subj, detail && *detail ? detail : natsStatus_GetText(s));
    }
    return cl__bus_status(s, err, what);
}

cl_status cl_artifact_put(cl_bus *bus, const char *model, const char *version, const void *data,
                          size_t len, char digest_hex[CL_SHA256_HEX], cl_err *err)
{
    ctx c;
    cl_status st = ctx_init(&c, bus, model, version, true, err);
    if (st != CL_OK)
        return st;
    int64_t max = c.max_payload;
    if (max <= CHUNK_HEADROOM)
        return cl_err_set(err, CL_ERR_BUS, "server max payload %" PRId64 " is too small", max);
    size_t chunk = (size_t)(max - CHUNK_HEADROOM);
    size_t chunks = (len + chunk - 1) / chunk;
    char hex[CL_SHA256_HEX];
    cl_sha256_hex(data, len, hex);

    manifest old;
    st = read_manifest(&c, model, version, &old, err);
    if (st == CL_OK) {
        if (strcmp(old.sha, hex) != 0 || old.size != (int64_t)len)
            return cl_err_set(err, CL_ERR_EXISTS,
                              "model %s:%s already has an artifact (%" PRId64
                              " bytes, SHA-256 %.16s...) and a stored artifact cannot be "
                              "replaced: deploy the new one as a new version, or delete "
                              "version %s first",
                              model, version, old.size, old.sha, version);
        /* The same bytes are stored already (an upload retried). */
        if (digest_hex != NULL)
            memcpy(digest_hex, hex, CL_SHA256_HEX);
        return CL_OK;
    }
    if (st != CL_ERR_NOT_FOUND)
        return st;

    /* No manifest: chunks left by an upload that did not finish go first. */
    natsStatus s = purge(&c);
    if (s != NATS_OK)
        return cl__bus_status(s, err, "cannot remove an unfinished upload of the artifact");
    char subj[CL_SUBJECT_MAX + 32];
    for (size_t i = 0; i < chunks; i++) {
        size_t off = i * chunk;
        size_t n = len - off < chunk ? len - off : chunk;
        snprintf(subj, sizeof(subj), "%s.c.%zu", c.base, i);
        char what[96];
        snprintf(what, sizeof(what), "artifact chunk %zu of %zu", i, chunks);
        st = publish_new(&c, subj, (const char *)data + off, n, what, err);
        if (st != CL_OK)
            return st;
    }
    char meta[256];
    int mlen = snprintf(meta, sizeof(meta),
                        "{\"size\":%zu,\"chunks\":%zu,\"chunk_size\":%zu,\"sha256\":\"%s\"}", len,
                        chunks, chunk, hex);
    snprintf(subj, sizeof(subj), "%s.meta", c.base);
    st = publish_new(&c, subj, meta, (size_t)mlen, "the artifact manifest", err);
    if (st != CL_OK)
        return st;
    if (digest_hex != NULL)
        memcpy(digest_hex, hex, CL_SHA256_HEX);
    return CL_OK;
}

cl_status cl_artifact_get_expected(cl_bus *bus, const char *model, const char *version,
                                   const char *want_sha256, int64_t want_size, void **data,
                                   size_t *len, char digest_hex[CL_SHA256_HEX], cl_err *err)
{
    ctx c;
    cl_status st = ctx_init(&c, bus, model, version, false, err);
    if (st != CL_OK)
        return st;
    manifest mf;
    st = read_manifest(&c, model, version, &mf, err);
    if (st == CL_ERR_NOT_FOUND)
        return cl_err_set(err, CL_ERR_NOT_FOUND, "no artifact stored for model %s:%s", model,
                          version);
    if (st != CL_OK)
        return st;
    bool want_sha = want_sha256 != NULL && want_sha256[0] != '\0';
    if ((want_sha && strcasecmp(want_sha256, mf.sha) != 0) ||
        (want_size >= 0 && want_size != mf.size)) {
        char expected[128];
        if (want_size >= 0)
            snprintf(expected, sizeof(expected), "%.64s (%" PRId64 " bytes)",
                     want_sha ? want_sha256 : "(any)", want_size);
        else
            snprintf(expected, sizeof(expected), "%.64s", want_sha256);
        return cl_err_set(err, CL_ERR_DIGEST,
                          "the artifact stored for model %s:%s is not the one registered: its "
                          "manifest says SHA-256 %s (%" PRId64 " bytes), the model record "
                          "expects %s",
                          model, version, mf.sha, mf.size, expected);
    }
    uint8_t *buf = malloc(mf.size > 0 ? (size_t)mf.size : 1);
    if (buf == NULL)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory for a %" PRId64 "-byte artifact",
                          mf.size);
    char subj[CL_SUBJECT_MAX + 32];
    natsMsg *m = NULL;
    size_t off = 0;
    for (int64_t i = 0; i < mf.chunks; i++) {
        snprintf(subj, sizeof(subj), "%s.c.%" PRId64, c.base, i);
        natsStatus s = last_msg(&c, subj, &m);
        if (s == NATS_NOT_FOUND) {
            free(buf);
            return cl_err_set(err, CL_ERR_NOT_FOUND,
                              "artifact of %s:%s is incomplete: chunk %" PRId64 " of %" PRId64
                              " is missing",
                              model, version, i, mf.chunks);
        }
        if (s != NATS_OK) {
            free(buf);
            return cl__bus_status(s, err, "cannot read an artifact chunk");
        }
        int n = natsMsg_GetDataLength(m);
        int64_t want = i + 1 < mf.chunks ? mf.chunk_size : mf.size - (int64_t)off;
        if (n != want) {
            natsMsg_Destroy(m);
            free(buf);
            return cl_err_set(err, CL_ERR_DIGEST,
                              "artifact of %s:%s is corrupt: chunk %" PRId64 " has %d bytes, "
                              "expected %" PRId64,
                              model, version, i, n, want);
        }
        if (n > 0)
            memcpy(buf + off, natsMsg_GetData(m), (size_t)n);
        off += (size_t)n;
        natsMsg_Destroy(m);
    }
    char hex[CL_SHA256_HEX];
    cl_sha256_hex(buf, off, hex);
    if (strcmp(hex, mf.sha) != 0) {
        free(buf);
        return cl_err_set(err, CL_ERR_DIGEST,
                          "artifact of %s:%s is corrupt: its SHA-256 is %s, the manifest says %s",
                          model, version, hex, mf.sha);
    }
    *data = buf;
    if (len != NULL)
        *len = off;
    if (digest_hex != NULL)
        memcpy(digest_hex, hex, CL_SHA256_HEX);
    return CL_OK;
}

cl_status cl_artifact_get(cl_bus *bus, const char *model, const char *version, void **data,
                          size_t *len, char digest_hex[CL_SHA256_HEX], cl_err *err)
{
    return cl_artifact_get_expected(bus, model, version, NULL, -1, data, len, digest_hex, err);
}

cl_status cl_artifact_delete(cl_bus *bus, const char *model, const char *version, cl_err *err)
{
    ctx c;
    cl_status st = ctx_init(&c, bus, model, version, false, err);
    if (st == CL_ERR_NOT_FOUND) {
        cl_err_clear(err);
        return CL_OK;
    }
    if (st != CL_OK)
        return st;
    natsStatus s = purge(&c);
    if (s != NATS_OK)
        return cl__bus_status(s, err, "cannot delete the artifact");
    return CL_OK;
}
