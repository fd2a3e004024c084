/* Fuzzes replica heartbeats (<p>.replica.hb.<model>.<version>.<id>) as
 * every actor that watches replicas takes them: the live-replica table's
 * bus callback (actors/common/replicas.c on_heartbeat, which calls
 * cl_heartbeat_decode) run on each line of the input in turn, so
 * replicas appear, change state and stop; then cl_replicas_snapshot,
 * whole and per model version, as the admin's container listing and the
 * router read it.
 *
 * Oracles: a heartbeat that decodes encodes (cl_heartbeat_encode) and
 * decodes again to the same record; the table never holds a stopped
 * replica or one replica twice, and a filtered snapshot is the matching
 * part of the whole one. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cl_replicas.h"
#include "fuzz_common.h"
#include "fuzz_replicas.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_quiet();
    return 0;
}

static size_t changes;

static void on_change(void *closure, const cl_replica_info *info, bool removed)
{
    (void)closure;
    (void)removed;
    fz_touch(info, sizeof(*info));
    changes++;
}

static bool same(const cl_replica_info *a, const cl_replica_info *b)
{
    return strcmp(a->model, b->model) == 0 && strcmp(a->version, b->version) == 0 &&
           a->replica_id == b->replica_id && strcmp(a->state, b->state) == 0 &&
           strcmp(a->cause, b->cause) == 0 && strcmp(a->host, b->host) == 0 &&
           a->pid == b->pid && strcmp(a->input_type, b->input_type) == 0;
}

static void round_trip(const void *data, size_t len)
{
    cl_replica_info info, back;
    cl_err err;
    if (cl_heartbeat_decode(&info, data, len, &err) != CL_OK)
        return;
    char *text = cl_heartbeat_encode(&info, "python-closure");
    fz_check(text != NULL, "out of memory");
    fz_check(cl_heartbeat_decode(&back, text, strlen(text), &err) == CL_OK,
             "the encoded heartbeat does not decode: %s\n%s", err.msg, text);
    fz_check(same(&info, &back), "the heartbeat changed in a round trip: %s", text);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_replicas *r = fz_replicas_new(on_change, NULL);
    const uint8_t *p = data, *end = data + size;
    while (p <= end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        /* A block of its own, so reading past the line trips ASan. */
        char *exact = malloc(len ? len : 1);
        fz_check(exact != NULL, "out of memory");
        if (len > 0)
            memcpy(exact, p, len);
        round_trip(exact, len);
        free(exact);
        fz_replicas_heartbeat(r, "clipper.replica.hb.m.1.7", p, len);
        if (nl == NULL)
            break;
        p = nl + 1;
    }

    cl_replica_info *all = NULL;
    size_t n = cl_replicas_snapshot(r, NULL, NULL, &all);
    fz_check(all != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        fz_check(strcmp(all[i].state, "stopped") != 0, "a stopped replica is live");
        for (size_t j = i + 1; j < n; j++)
            fz_check(!(all[i].replica_id == all[j].replica_id &&
                       strcmp(all[i].model, all[j].model) == 0 &&
                       strcmp(all[i].version, all[j].version) == 0),
                     "replica %s:%s:%u is listed twice", all[i].model, all[i].version,
                     all[i].replica_id);
    }
    if (n > 0) {
        cl_replica_info *some = NULL;
        size_t want = 0;
        for (size_t i = 0; i < n; i++)
            want += strcmp(all[i].model, all[0].model) == 0 &&
                    strcmp(all[i].version, all[0].version) == 0;
        size_t m = cl_replicas_snapshot(r, all[0].model, all[0].version, &some);
        fz_check(m == want, "%zu replicas of %s:%s, the filtered snapshot has %zu", want,
                 all[0].model, all[0].version, m);
        free(some);
    }
    free(all);
    cl_replicas_free(r);
    return 0;
}
