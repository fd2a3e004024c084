/* Fuzzes the router's reading of a replica's pull (<p>.route.pull.<model>.
 * <version>, body {"replica_id": n, "completed": n}): the subject parser
 * and the body decoder of actors/router/router.c (parse_subject and
 * decode_pull, both static; this file includes router.c to reach them,
 * so the router's own code runs, and does not link the router library's
 * router.o). The same subject parser reads task batches' subjects
 * (route.task), tried on the same subject.
 *
 * Input: "<subject>\n<body>", or a body alone (on
 * clipper.route.pull.m.1). The bus prefix is "clipper".
 *
 * Oracles: a parsed subject gives tokens that fit and rebuild the
 * subject; a pull the replica writes (cl__replica_pull_body,
 * actors/replica/opts.c) with the decoded values decodes to them again. */
#include "../../actors/router/router.c"

#include "bus_internal.h"
#include "fuzz_common.h"
#include "replica_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

static void subject(const cl_router *r, const char *subj, const char *kind)
{
    char model[CL_TOKEN_MAX + 1], version[CL_TOKEN_MAX + 1];
    cl_err err;
    if (!parse_subject(r, subj, kind, model, version, &err))
        return;
    fz_check(strlen(model) <= CL_TOKEN_MAX && strlen(version) <= CL_TOKEN_MAX,
             "tokens too long");
    char again[2 * CL_SUBJECT_MAX];
    snprintf(again, sizeof(again), "clipper.%s.%s.%s", kind, model, version);
    fz_check(strcmp(again, subj) == 0, "%s parsed as %s . %s", subj, model, version);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_bus bus;
    memset(&bus, 0, sizeof(bus));
    bus.prefix = (char *)"clipper";
    cl_router r;
    memset(&r, 0, sizeof(r));
    r.bus = &bus;

    char *subj = NULL;
    const uint8_t *body;
    size_t len;
    fz_split(data, size, &subj, &body, &len);
    subject(&r, subj ? subj : "clipper.route.pull.m.1", "route.pull");
    subject(&r, subj ? subj : "clipper.route.task.m.1", "route.task");
    free(subj);

    /* A block of its own, so reading past the body trips ASan. */
    uint8_t *copy = malloc(len ? len : 1);
    fz_check(copy != NULL, "out of memory");
    if (len > 0)
        memcpy(copy, body, len);
    uint32_t id = 0;
    int64_t completed = -1;
    bool reconnected = false;
    cl_err err;
    if (decode_pull(copy, len, &id, &completed, &reconnected, &err) == CL_OK &&
        completed <= (int64_t)1 << 53) {
        char *text = cl__replica_pull_body(id, completed < 0 ? 0 : (uint64_t)completed,
                                           reconnected);
        fz_check(text != NULL, "out of memory");
        uint32_t id2 = 0;
        int64_t completed2 = -1;
        bool reconnected2 = false;
        fz_check(decode_pull(text, strlen(text), &id2, &completed2, &reconnected2, &err) ==
                     CL_OK,
                 "the replica's pull %s does not decode: %s", text, err.msg);
        fz_check(id2 == id && completed2 == (completed < 0 ? 0 : completed) &&
                     reconnected2 == reconnected,
                 "pull %s decodes as %u, %lld, %d", text, id2, (long long)completed2,
                 (int)reconnected2);
        free(text);
    }
    free(copy);
    return 0;
}
