/* Unit tests: the roles' permissions (bus/roles.c) - names, the subjects
 * each role gets (and does not), and that nats-server itself accepts the
 * configuration they make (nats-server -t). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl_nkey.h"
#include "cl_roles.h"

#define PUB "UAXBNJQAWLUQ7FCNNMJHZLWK2WMOAAD2HWGAF5DJD2JSDKKYCBHPFXMM"

static char *subjects(cl_role role, bool publish, const char *prefix)
{
    cl_buf b;
    cl_buf_init(&b);
    cl_err err = {0};
    assert_int_equal(cl_role_subjects(&b, role, publish, prefix, PUB, NULL, &err), CL_OK);
    assert_int_equal(cl_buf_terminate(&b), CL_OK);
    return cl_buf_steal(&b, NULL);
}

/* Whether list (one subject per line) has line. */
static bool has(const char *list, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = list; (p = strstr(p, line)) != NULL; p++)
        if ((p == list || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void test_names_round_trip_and_unknown_is_explained(void **state)
{
    (void)state;
    for (int r = 0; r < CL_ROLE_COUNT; r++) {
        cl_role back;
        cl_err err = {0};
        assert_int_equal(cl_role_from_name(cl_role_name((cl_role)r), &back, &err), CL_OK);
        assert_int_equal(back, r);
    }
    cl_role x;
    cl_err err = {0};
    assert_int_equal(cl_role_from_name("root", &x, &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown role 'root'"));
    assert_non_null(strstr(err.msg, "replica"));
}

static void test_each_role_gets_what_it_needs_and_no_more(void **state)
{
    (void)state;
    char *qp = subjects(CL_ROLE_QUERY, true, "c1");
    char *qs = subjects(CL_ROLE_QUERY, false, "c1");
    /* A query client predicts and sends feedback; it reads only its inbox. */
    assert_true(has(qp, "c1.predict.*") && has(qp, "c1.update.*"));
    assert_false(has(qp, "c1.admin.*"));
    assert_string_equal(qs, "_INBOX." PUB ".>\n");
    char *rp = subjects(CL_ROLE_REPLICA, true, "c1");
    char *rs = subjects(CL_ROLE_REPLICA, false, "c1");
    /* A replica: heartbeats, pulls, results; reads state and artifacts;
     * never writes them, never answers predictions or sees tasks. */
    assert_true(has(rp, "c1.replica.hb.>") && has(rp, "c1.route.pull.>") &&
                has(rp, "c1.fe.*.results.*"));
    assert_true(has(rp, "$JS.API.DIRECT.GET.C1_ARTIFACTS.>"));
    assert_true(has(rp, "$JS.API.DIRECT.GET.KV_c1_state.>"));
    assert_null(strstr(rp, "$KV."));
    assert_null(strstr(rp, "c1.artifact."));
    assert_null(strstr(rp, "PURGE"));
    assert_null(strstr(rp, "CONSUMER"));
    assert_true(has(rs, "c1.replica.work.>"));
    assert_false(has(rs, "c1.predict.*"));
    assert_false(has(rs, "c1.route.task.>"));
    /* The admin's management REST sends its requests to the admins. */
    char *ap = subjects(CL_ROLE_ADMIN, true, "c1");
    assert_true(has(ap, "c1.admin.*"));
    free(ap);
    /* The control plane answers any inbox (a reload would make nats-server
     * forget what allow_responses let through); the replica, which runs a
     * model's code, answers only requests it received, and a query client
     * answers nothing. */
    const cl_role any[] = {CL_ROLE_ADMIN, CL_ROLE_ROUTER, CL_ROLE_MANAGER, CL_ROLE_SUPERVISOR,
                           CL_ROLE_FRONTEND};
    for (size_t i = 0; i < sizeof(any) / sizeof(any[0]); i++) {
        char *p = subjects(any[i], true, "c1");
        assert_true(has(p, "_INBOX.>"));
        free(p);
    }
    assert_false(has(rp, "_INBOX.>"));
    assert_false(has(qp, "_INBOX.>"));
    /* Only the admin writes the state. */
    for (int r = 0; r < CL_ROLE_COUNT; r++) {
        char *p = subjects((cl_role)r, true, "c1");
        assert_true((strstr(p, "$KV.c1_state.") != NULL) == (r == CL_ROLE_ADMIN));
        /* Nobody subscribes to everything, or to another's inbox. */
        char *s = subjects((cl_role)r, false, "c1");
        assert_false(has(s, ">"));
        assert_false(has(s, "_INBOX.>"));
        free(p);
        free(s);
    }
    free(qp);
    free(qs);
    free(rp);
    free(rs);
}

static void test_the_prefix_keeps_clusters_apart(void **state)
{
    (void)state;
    char *a = subjects(CL_ROLE_FRONTEND, false, "alpha");
    assert_true(has(a, "alpha.predict.*"));
    assert_null(strstr(a, "beta."));
    free(a);
    cl_buf b;
    cl_buf_init(&b);
    cl_err err = {0};
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_QUERY, "bad prefix", PUB, NULL, NULL, &err),
                     CL_ERR_INVALID);
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_QUERY, "ok", "U.>", NULL, NULL, &err),
                     CL_ERR_INVALID);
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_COUNT, "ok", PUB, NULL, NULL, &err),
                     CL_ERR_INVALID);
    cl_buf_deinit(&b);
}

static char *model_subjects(bool publish, const char *model)
{
    cl_buf b;
    cl_buf_init(&b);
    cl_err err = {0};
    assert_int_equal(cl_role_subjects(&b, CL_ROLE_REPLICA, publish, "c1", PUB, model, &err),
                     CL_OK);
    assert_int_equal(cl_buf_terminate(&b), CL_OK);
    return cl_buf_steal(&b, NULL);
}

/* A replica identity scoped to a model: its model's work, heartbeats,
 * pulls and artifacts, nothing of another model's; other roles and
 * unquotable names cannot be scoped. */
static void test_a_model_replica_gets_its_own_model_only(void **state)
{
    (void)state;
    char *p = model_subjects(true, "sum");
    char *s = model_subjects(false, "sum");
    assert_true(has(s, "c1.replica.work.sum.>"));
    assert_false(has(s, "c1.replica.work.>"));
    assert_true(has(p, "c1.replica.hb.sum.>"));
    assert_true(has(p, "c1.route.pull.sum.>"));
    assert_true(has(p, "$JS.API.DIRECT.GET.C1_ARTIFACTS.c1.artifact.sum.>"));
    assert_false(has(p, "$JS.API.DIRECT.GET.C1_ARTIFACTS.>"));
    assert_false(has(p, "$JS.API.DIRECT.GET.C1_ARTIFACTS"));
    assert_false(has(p, "c1.replica.hb.>"));
    assert_false(has(p, "c1.route.pull.>"));
    assert_null(strstr(p, "$KV."));
    free(p);
    free(s);
    cl_buf b;
    cl_buf_init(&b);
    cl_err err = {0};
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_QUERY, "c1", PUB, "sum", NULL, &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "only a replica identity"));
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_REPLICA, "c1", PUB, "a\"b", NULL, &err),
                     CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "quote"));
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_REPLICA, "c1", PUB, "a.b", NULL, &err),
                     CL_ERR_INVALID);
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_REPLICA, "c1", PUB, "", NULL, &err),
                     CL_ERR_INVALID);
    cl_buf_deinit(&b);
}

/* nats-server -t accepts the users of every role in an account. */
static void test_nats_server_accepts_the_configuration(void **state)
{
    (void)state;
    char dir[] = "/tmp/cl-roles-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/nats.conf", dir);
    cl_buf b;
    cl_buf_init(&b);
    cl_err err = {0};
    assert_int_equal(cl_buf_printf(&b, "jetstream { store_dir: \"%s/js\" }\naccounts {\n"
                                       "  CLUSTER: {\n    jetstream: enabled\n    users: [\n",
                                   dir),
                     CL_OK);
    /* Distinct users (nats-server refuses one key twice), real keys
     * (it checks them). */
    for (int r = 0; r < CL_ROLE_COUNT; r++) {
        char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1];
        assert_int_equal(cl_nkey_user_new(seed, pub, &err), CL_OK);
        assert_int_equal(
            cl_role_user_conf(&b, (cl_role)r, "c1", pub, NULL, cl_role_name((cl_role)r), &err), CL_OK);
    }
    char seed[CL_NKEY_SEED_LEN + 1], pub[CL_NKEY_PUBLIC_LEN + 1];
    assert_int_equal(cl_nkey_user_new(seed, pub, &err), CL_OK);
    assert_int_equal(cl_role_user_conf(&b, CL_ROLE_REPLICA, "c1", pub, "my-model_2", "scoped", &err),
                     CL_OK);
    assert_int_equal(cl_buf_append_str(&b, "    ]\n  }\n}\n"), CL_OK);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    assert_int_equal(fclose(f), 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "nats-server -t -c %s >%s/out 2>&1", path, dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat %s/out %s", dir, path);
        int ignored = system(cmd);
        (void)ignored;
    }
    assert_int_equal(rc, 0);
    cl_buf_deinit(&b);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip_and_unknown_is_explained),
        cmocka_unit_test(test_each_role_gets_what_it_needs_and_no_more),
        cmocka_unit_test(test_the_prefix_keeps_clusters_apart),
        cmocka_unit_test(test_a_model_replica_gets_its_own_model_only),
        cmocka_unit_test(test_nats_server_accepts_the_configuration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
