/* Unit tests of the admin's request-body reading (actors/admin/request.c):
 * what cJSON alone would let through. A name holding U+0000 was cut there
 * (an app "a\u0000b" was created as "a"); bytes that are not UTF-8 and a
 * key given twice were taken. Each is refused with Clipper's wrapping and
 * a text that names the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin_internal.h"

#define SCHEMA "{\"name\" := string}"

/* Parses body (len bytes) and reads "name": the reply's error, or NULL
 * with *name set (a copy) when both worked. */
static char *read_name(const char *body, size_t len, char **name)
{
    admin_reply rep = {0};
    admin_req q;
    const char *got = NULL;
    *name = NULL;
    if (cl__req_parse(&q, body, len, SCHEMA, &rep) && cl__req_string(&q, "name", &got))
        *name = strdup(got);
    cl__req_done(&q);
    char *error = rep.error != NULL ? strdup(rep.error) : NULL;
    cl__admin_reply_reset(&rep);
    return error;
}

static void expect_refused(const char *body, size_t len, const char *what)
{
    char *name = NULL;
    char *error = read_name(body, len, &name);
    if (error == NULL)
        fail_msg("'%.*s' was read as name '%s'", (int)len, body, name ? name : "(null)");
    if (strstr(error, what) == NULL)
        fail_msg("'%.*s': '%s' does not say '%s'", (int)len, body, error, what);
    /* Clipper's wrapping, with the schema. */
    assert_non_null(strstr(error, "Error parsing JSON: "));
    assert_non_null(strstr(error, "Expected JSON schema: " SCHEMA));
    free(error);
    free(name);
}

#define REFUSED(lit, what) expect_refused(lit, sizeof(lit) - 1, what)

static void test_name_with_nul_is_refused_naming_the_field(void **state)
{
    (void)state;
    REFUSED("{\"name\": \"a\\u0000b\"}",
            "Error parsing JSON: field 'name' contains a NUL character (\\u0000), which is not "
            "allowed. Expected");
    REFUSED("{\"name\": \"app\", \"candidate_model_names\": [\"m\", \"m\\u0000x\"]}",
            "field 'candidate_model_names[1]' contains a NUL character");
    REFUSED("{\"name\": \"app\", \"default_output\": \"\\u0000\"}", "field 'default_output'");
    REFUSED("{\"na\\u0000me\": \"app\"}", "a key contains a NUL character");
}

static void test_text_that_is_not_utf8_is_refused(void **state)
{
    (void)state;
    REFUSED("{\"name\": \"\xff\"}", "JSON parse error: malformed JSON at offset 10: Invalid "
                                    "encoding in string: it is not valid UTF-8.");
    REFUSED("{\"name\": \"\xc0\xaf\"}", "not valid UTF-8");
    REFUSED("{\"name\": \"\xed\xa0\x80\"}", "not valid UTF-8");
    REFUSED("{\"name\": \"\\udc00\"}", "JSON parse error: malformed JSON at offset");
}

static void test_duplicate_keys_are_refused(void **state)
{
    (void)state;
    REFUSED("{\"name\": \"a\", \"name\": \"b\"}", "Error parsing JSON: duplicate key 'name'.");
}

static void test_a_good_body_is_read(void **state)
{
    (void)state;
    const char body[] = "{\"name\": \"caf\xc3\xa9-app\", \"x\": \"\\u00e9\"}";
    char *name = NULL;
    char *error = read_name(body, sizeof(body) - 1, &name);
    if (error != NULL)
        fail_msg("refused: %s", error);
    assert_string_equal(name, "caf\xc3\xa9-app");
    free(name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_with_nul_is_refused_naming_the_field),
        cmocka_unit_test(test_text_that_is_not_utf8_is_refused),
        cmocka_unit_test(test_duplicate_keys_are_refused),
        cmocka_unit_test(test_a_good_body_is_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
