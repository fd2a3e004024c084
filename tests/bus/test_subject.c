/* Unit tests of subject tokens, builders and splitting (bus/subject.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cl_subject.h"

static void test_plain_names_are_valid_tokens(void **state)
{
    (void)state;
    cl_err err;
    assert_true(cl_token_valid("my-app_1", "application name", &err));
    assert_true(cl_token_valid("v1:2@x", "model version", &err));
    char max[CL_TOKEN_MAX + 1];
    memset(max, 'a', CL_TOKEN_MAX);
    max[CL_TOKEN_MAX] = '\0';
    assert_true(cl_token_valid(max, "model name", &err));
}

static void check_invalid(const char *token, const char *expect)
{
    cl_err err = {0};
    assert_false(cl_token_valid(token, "application name", &err));
    assert_int_equal(err.code, CL_ERR_INVALID);
    if (strstr(err.msg, expect) == NULL)
        fail_msg("message '%s' lacks '%s'", err.msg, expect);
}

static void test_a_dot_in_a_name_is_rejected_with_a_clear_message(void **state)
{
    (void)state;
    cl_err err;
    assert_false(cl_token_valid("a.b", "application name", &err));
    assert_string_equal(err.msg, "application name 'a.b' is not valid: it may not contain '.'");
}

static void test_wildcards_slash_and_whitespace_are_rejected(void **state)
{
    (void)state;
    check_invalid("a*", "it may not contain '*'");
    check_invalid(">", "it may not contain '>'");
    check_invalid("a/b", "it may not contain '/'");
    check_invalid("a b", "whitespace");
    check_invalid("a\tb", "whitespace");
    check_invalid("caf\xc3\xa9", "printable ASCII");
    check_invalid("a\x01", "printable ASCII");
}

static void test_empty_and_too_long_names_are_rejected(void **state)
{
    (void)state;
    check_invalid("", "application name is empty");
    check_invalid(NULL, "application name is empty");
    char big[CL_TOKEN_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    check_invalid(big, "129 bytes long");
}

static void test_builders_follow_the_protocol_layout(void **state)
{
    (void)state;
    char s[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_predict(s, "clipper", "app1", &err), CL_OK);
    assert_string_equal(s, "clipper.predict.app1");
    assert_int_equal(cl_subj_update(s, "clipper", "app1", &err), CL_OK);
    assert_string_equal(s, "clipper.update.app1");
    assert_int_equal(cl_subj_admin(s, "c2", "add_app", &err), CL_OK);
    assert_string_equal(s, "c2.admin.add_app");
    assert_int_equal(cl_subj_route_task(s, "clipper", "m", "1", &err), CL_OK);
    assert_string_equal(s, "clipper.route.task.m.1");
    assert_int_equal(cl_subj_route_pull(s, "clipper", "m", "1", &err), CL_OK);
    assert_string_equal(s, "clipper.route.pull.m.1");
    assert_int_equal(cl_subj_replica_work(s, "clipper", "m", "1", "3", &err), CL_OK);
    assert_string_equal(s, "clipper.replica.work.m.1.3");
    assert_int_equal(cl_subj_replica_hb(s, "clipper", "m", "1", "3", &err), CL_OK);
    assert_string_equal(s, "clipper.replica.hb.m.1.3");
    assert_int_equal(cl_subj_fe_results(s, "clipper", "fe7", &err), CL_OK);
    assert_string_equal(s, "clipper.fe.fe7.results");
    assert_int_equal(cl_subj_cm(s, "clipper", "add_replica", &err), CL_OK);
    assert_string_equal(s, "clipper.cm.add_replica");
}

static void test_builders_name_the_bad_part(void **state)
{
    (void)state;
    char s[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_predict(s, "clipper", "a.b", &err), CL_ERR_INVALID);
    assert_string_equal(err.msg, "application name 'a.b' is not valid: it may not contain '.'");
    assert_int_equal(cl_subj_route_task(s, "clipper", "m", "v*", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "model version 'v*'"));
    assert_int_equal(cl_subj_replica_work(s, "clipper", "m>", "1", "0", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "model name 'm>'"));
    assert_int_equal(cl_subj_replica_hb(s, "clipper", "m", "1", "", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "replica id is empty"));
    assert_int_equal(cl_subj_fe_results(s, "clipper", "f e", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "frontend id"));
    assert_int_equal(cl_subj_admin(s, "clipper", "x/y", &err), CL_ERR_INVALID);
    assert_non_null(strstr(err.msg, "admin command"));
}

static void test_bad_prefixes_are_rejected(void **state)
{
    (void)state;
    char s[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_predict(s, "", "a", &err), CL_ERR_INVALID);
    assert_int_equal(cl_subj_predict(s, "clip*", "a", &err), CL_ERR_INVALID);
    assert_int_equal(cl_subj_predict(s, "a..b", "a", &err), CL_ERR_INVALID);
    assert_int_equal(cl_subj_predict(s, "a.b", "app", &err), CL_OK);
    assert_string_equal(s, "a.b.predict.app");
}

static void test_generic_builder_joins_and_checks_size(void **state)
{
    (void)state;
    char s[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subject_build(s, &err, "p", "x", "y", "z", (const char *)NULL), CL_OK);
    assert_string_equal(s, "p.x.y.z");
    assert_int_equal(cl_subject_build(s, &err, "p", (const char *)NULL), CL_OK);
    assert_string_equal(s, "p");
    assert_int_equal(cl_subject_build(s, &err, "p", "x.y", (const char *)NULL), CL_ERR_INVALID);
    char tok[CL_TOKEN_MAX + 1];
    memset(tok, 't', CL_TOKEN_MAX);
    tok[CL_TOKEN_MAX] = '\0';
    assert_int_equal(cl_subject_build(s, &err, "p", tok, tok, tok, tok, (const char *)NULL),
                     CL_ERR_TOO_LARGE);
}

static void test_split_returns_tokens_and_refuses_too_many(void **state)
{
    (void)state;
    char s[] = "clipper.replica.work.m.1.3";
    char *t[8];
    assert_int_equal(cl_subject_split(s, t, 8), 6);
    assert_string_equal(t[0], "clipper");
    assert_string_equal(t[3], "m");
    assert_string_equal(t[5], "3");
    char s2[] = "a.b.c";
    assert_int_equal(cl_subject_split(s2, t, 2), -1);
    char s3[] = "one";
    assert_int_equal(cl_subject_split(s3, t, 1), 1);
    assert_string_equal(t[0], "one");
    char s4[] = "";
    assert_int_equal(cl_subject_split(s4, t, 4), 0);
}

static void test_publish_subjects_refuse_what_breaks_a_nats_connection(void **state)
{
    (void)state;
    const char *good[] = {"a", "clipper.fe.x1.results", "_INBOX.AbC-1_2", "a.b.c.d~!#$%&"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cl_err err;
        if (!cl_subj_valid_publish(good[i], strlen(good[i]), &err))
            fail_msg("'%s' refused: %s", good[i], err.msg);
    }
    const struct {
        const char *s;
        size_t len;
        const char *why;
    } bad[] = {
#define S(x, why) {x, sizeof(x) - 1, why}
        S("", "empty"),
        S("a\r\nPUB b 1", "printable ASCII"),
        S("a b", "printable ASCII"),
        S("a\tb", "printable ASCII"),
        S("a\0b", "byte 0x00"),
        S("a.*", "wildcard"),
        S("a.>", "wildcard"),
        S("a*b", "wildcard"),
        S("a..b", "empty element"),
        S(".a", "empty element"),
        S("a.", "empty element"),
        S("a.\xff", "byte 0xff"),
#undef S
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_err err;
        if (cl_subj_valid_publish(bad[i].s, bad[i].len, &err))
            fail_msg("subject %zu accepted", i);
        if (strstr(err.msg, bad[i].why) == NULL)
            fail_msg("subject %zu: '%s' does not say '%s'", i, err.msg, bad[i].why);
        /* The message shows the subject without its control bytes. */
        for (const char *p = err.msg; *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
    }
    char longs[CL_SUBJECT_MAX];
    memset(longs, 'a', sizeof(longs));
    cl_err err;
    assert_true(cl_subj_valid_publish(longs, CL_SUBJECT_MAX - 1, &err));
    assert_false(cl_subj_valid_publish(longs, CL_SUBJECT_MAX, &err));
    assert_non_null(strstr(err.msg, "at most 511"));
    assert_false(cl_subj_valid_publish(NULL, 0, NULL));
}

static void test_fe_results_subjects_must_have_the_clusters_prefix(void **state)
{
    (void)state;
    char s[CL_SUBJECT_MAX];
    cl_err err;
    assert_int_equal(cl_subj_fe_results_model(s, "clipper", "fe7", "sum", &err), CL_OK);
    assert_string_equal(s, "clipper.fe.fe7.results.sum");
    assert_int_equal(cl_subj_fe_results_model(s, "clipper", "fe7", "a.b", &err), CL_ERR_INVALID);
    const char *ok[] = {"clipper.fe.abc.results.m", "a.b.fe.x.results.m"};
    assert_true(cl_subj_is_fe_results(ok[0], strlen(ok[0]), "clipper", NULL, NULL));
    assert_true(cl_subj_is_fe_results(ok[0], strlen(ok[0]), NULL, NULL, NULL));
    assert_true(cl_subj_is_fe_results(ok[0], strlen(ok[0]), "clipper", "m", NULL));
    assert_true(cl_subj_is_fe_results(ok[1], strlen(ok[1]), "a.b", NULL, NULL));
    /* Another model's results subject is not this task's. */
    assert_false(cl_subj_is_fe_results(ok[0], strlen(ok[0]), "clipper", "mm", &err));
    assert_non_null(strstr(err.msg, ".results.mm"));
    assert_false(cl_subj_is_fe_results(ok[0], strlen(ok[0]), "clipper", "", &err));
    const char *bad[] = {"other.fe.abc.results.m", "clipper.admin.delete_app",
                         "clipper.fe.results.m", "clipper.fe..results.m", "fe.abc.results.m",
                         "clipper.fe.abc.results", "clipper.fe.abc.results.", "clipper.fe.abc",
                         "clipperx.fe.abc.results.m", "xclipper.fe.abc.results.m",
                         "clipper.fe.a*.results.m", "clipper.fe.abc.results.m.n",
                         "clipper.fe.abc.results.*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cl_subj_is_fe_results(bad[i], strlen(bad[i]), "clipper", NULL, &err))
            fail_msg("'%s' accepted", bad[i]);
        assert_true(strlen(err.msg) > 0);
    }
    assert_false(cl_subj_is_fe_results("x.admin.y.z", 11, NULL, NULL, &err));
    assert_non_null(strstr(err.msg, "<prefix>.fe.<id>.results.<model>"));
    /* Only the given length counts. */
    assert_true(cl_subj_is_fe_results("p.fe.a.results.m.more", 16, "p", "m", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names_are_valid_tokens),
        cmocka_unit_test(test_a_dot_in_a_name_is_rejected_with_a_clear_message),
        cmocka_unit_test(test_wildcards_slash_and_whitespace_are_rejected),
        cmocka_unit_test(test_empty_and_too_long_names_are_rejected),
        cmocka_unit_test(test_builders_follow_the_protocol_layout),
        cmocka_unit_test(test_builders_name_the_bad_part),
        cmocka_unit_test(test_bad_prefixes_are_rejected),
        cmocka_unit_test(test_generic_builder_joins_and_checks_size),
        cmocka_unit_test(test_split_returns_tokens_and_refuses_too_many),
        cmocka_unit_test(test_publish_subjects_refuse_what_breaks_a_nats_connection),
        cmocka_unit_test(test_fe_results_subjects_must_have_the_clusters_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
