/* Unit tests of the embedded interpreter (py_runtime.c) without a bus: one
 * interpreter for the whole program, a model loaded per test from an
 * artifact written by make_model.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_wire.h"
#include "py_runtime.h"
#include "replica_test_util.h"

static cl_py *py;

static int start_python(void **state)
{
    (void)state;
    cl_err err;
    cl_err_clear(&err);
    if (cl_py_start(&py, RT_PYTHON_HOME, RT_RUNTIME_DIR, &err) != CL_OK) {
        fprintf(stderr, "cl_py_start: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int stop_python(void **state)
{
    (void)state;
    cl_py_free(py);
    return 0;
}

/* Loads make_model.py's NAME; returns the status and the cause (if any). */
static CL_MUST_USE cl_status load(const char *name, const char *runtime, char **cause)
{
    size_t len = 0;
    void *data = rt_make_model(name, &len);
    assert_non_null(data);
    cl_status st = cl_py_load(py, runtime, data, len, NULL, "m", "1", cause);
    free(data);
    return st;
}

static void load_ok(const char *name)
{
    char *cause = NULL;
    cl_status st = load(name, "python-closure", &cause);
    if (st != CL_OK)
        fail_msg("loading %s: %s", name, cause ? cause : "?");
}

static CL_MUST_USE cl_status predict_doubles(const double *values, size_t rows, size_t cols,
                                             cl_py_batch *out)
{
    const uint8_t *inputs[16];
    size_t lens[16];
    for (size_t i = 0; i < rows; i++) {
        inputs[i] = (const uint8_t *)(values + i * cols);
        lens[i] = cols * sizeof(double);
    }
    cl_py_batch_init(out);
    return cl_py_predict(py, CL_INPUT_DOUBLES, inputs, lens, rows, out);
}

static void assert_output(const cl_py_batch *b, size_t i, const char *want)
{
    assert_true(i < b->count);
    char got[512];
    snprintf(got, sizeof(got), "%.*s", (int)b->lens[i], (const char *)b->text.data + b->offsets[i]);
    assert_string_equal(got, want);
}

static void test_doubles_batch_returns_outputs_in_order(void **state)
{
    (void)state;
    load_ok("sum");
    const double v[] = {1, 2, 3, 4, 5, 6};
    cl_py_batch b;
    assert_int_equal(predict_doubles(v, 3, 2, &b), CL_OK);
    assert_int_equal(b.count, 3);
    assert_output(&b, 0, "3.0");
    assert_output(&b, 1, "7.0");
    assert_output(&b, 2, "11.0");
    assert_null(b.error);
    cl_py_batch_deinit(&b);
}

static void test_numpy_array_return_is_converted_like_clippers_closure_container(void **state)
{
    (void)state;
    load_ok("numpy_sum");
    const double v[] = {1.5, 2, 3, 4};
    cl_py_batch b;
    assert_int_equal(predict_doubles(v, 2, 2, &b), CL_OK);
    assert_output(&b, 0, "3.5");
    assert_output(&b, 1, "7.0");
    cl_py_batch_deinit(&b);
}

static void test_exception_is_a_batch_error_with_type_message_and_frames(void **state)
{
    (void)state;
    load_ok("raise");
    const double bad[] = {-1, 2};
    cl_py_batch b;
    assert_int_equal(predict_doubles(bad, 1, 2, &b), CL_ERR_PYTHON);
    assert_non_null(b.error);
    assert_non_null(strstr(b.error, "ValueError: negative input -1.0"));
    assert_non_null(strstr(b.error, "raise_on_negative"));
    assert_int_equal(b.count, 0);
    cl_py_batch_deinit(&b);

    const double good[] = {1, 2};
    assert_int_equal(predict_doubles(good, 1, 2, &b), CL_OK);
    assert_output(&b, 0, "3.0");
    cl_py_batch_deinit(&b);
}

static void test_system_exit_in_the_model_is_only_a_batch_error(void **state)
{
    (void)state;
    load_ok("system_exit");
    const double v[] = {1};
    cl_py_batch b;
    assert_int_equal(predict_doubles(v, 1, 1, &b), CL_ERR_PYTHON);
    assert_non_null(strstr(b.error, "SystemExit"));
    cl_py_batch_deinit(&b);
}

static void test_not_a_list_gets_clippers_text(void **state)
{
    (void)state;
    load_ok("not_list");
    const double v[] = {1, 2};
    cl_py_batch b;
    assert_int_equal(predict_doubles(v, 2, 1, &b), CL_ERR_PYTHON);
    assert_non_null(b.error);
    assert_true(strncmp(b.error, "Model did not return a list", 27) == 0);
    cl_py_batch_deinit(&b);
}

static void test_wrong_length_gets_clippers_text(void **state)
{
    (void)state;
    load_ok("wrong_len");
    const double v[] = {1, 2, 3};
    cl_py_batch b;
    assert_int_equal(predict_doubles(v, 3, 1, &b), CL_ERR_PYTHON);
    assert_string_equal(b.error, "Expected model to return 3 outputs, found 1 outputs");
    cl_py_batch_deinit(&b);
}

static void test_non_str_outputs_go_through_str_like_clipper(void **state)
{
    (void)state;
    load_ok("non_str");
    const double v[] = {1, 2, 3, 4};
    cl_py_batch b;
    assert_int_equal(predict_doubles(v, 2, 2, &b), CL_OK);
    assert_output(&b, 0, "2.0");
    assert_output(&b, 1, "2.0");
    cl_py_batch_deinit(&b);
}

static void test_strings_arrive_as_bytes_objects(void **state)
{
    (void)state;
    load_ok("describe");
    const uint8_t *inputs[] = {(const uint8_t *)"h\xc3\xa9", (const uint8_t *)"xyz"};
    size_t lens[] = {3, 3};
    cl_py_batch b;
    cl_py_batch_init(&b);
    assert_int_equal(cl_py_predict(py, CL_INPUT_STRINGS, inputs, lens, 2, &b), CL_OK);
    char got[512];
    snprintf(got, sizeof(got), "%.*s", (int)b.lens[0], (const char *)b.text.data);
    assert_non_null(strstr(got, "\"item_type\": \"bytes\""));
    assert_non_null(strstr(got, "\"batch_dtype\": \"object\""));
    assert_non_null(strstr(got, "\"value\": \"h\\u00e9\""));
    cl_py_batch_deinit(&b);
}

static void test_corrupted_pickle_is_a_load_error_saying_so(void **state)
{
    (void)state;
    char *cause = NULL;
    assert_int_equal(load("corrupt", "python-closure", &cause), CL_ERR_PYTHON);
    assert_non_null(cause);
    assert_non_null(strstr(cause, "model m:1"));
    assert_non_null(strstr(cause, "not a valid cloudpickled function"));
    free(cause);
}

static void test_missing_module_names_it_and_pkgs_to_install(void **state)
{
    (void)state;
    char *cause = NULL;
    assert_int_equal(load("missing_module", "python-closure", &cause), CL_ERR_PYTHON);
    assert_non_null(strstr(cause, "'clipper_test_missing_mod'"));
    assert_non_null(strstr(cause, "pkgs_to_install"));
    free(cause);
}

static void test_pickle_from_another_python_says_version_mismatch(void **state)
{
    (void)state;
    char *cause = NULL;
    assert_int_equal(load("version_skew", "python-closure", &cause), CL_ERR_PYTHON);
    assert_non_null(strstr(cause, "code expected at least"));
    assert_non_null(strstr(cause, "different Python or cloudpickle version"));
    assert_non_null(strstr(cause, "cloudpickle 2."));
    free(cause);
}

static void test_unknown_runtime_is_a_load_error_naming_it(void **state)
{
    (void)state;
    char *cause = NULL;
    assert_int_equal(load("sum", "tensorflow", &cause), CL_ERR_PYTHON);
    assert_non_null(strstr(cause, "unknown runtime 'tensorflow'"));
    free(cause);
}

static void test_artifact_that_is_not_callable_is_a_load_error(void **state)
{
    (void)state;
    char *cause = NULL;
    assert_int_equal(load("not_callable", "", &cause), CL_ERR_PYTHON);
    assert_non_null(strstr(cause, "not to a callable"));
    free(cause);
}

static void test_a_second_interpreter_is_refused(void **state)
{
    (void)state;
    cl_py *other = NULL;
    cl_err err;
    cl_err_clear(&err);
    assert_int_equal(cl_py_start(&other, RT_PYTHON_HOME, RT_RUNTIME_DIR, &err), CL_ERR_EXISTS);
    assert_null(other);
}

static void test_wrong_python_home_is_refused_with_a_clear_error(void **state)
{
    (void)state;
    cl_py *other = NULL;
    cl_err err;
    cl_err_clear(&err);
    assert_int_equal(cl_py_start(&other, "/nonexistent", RT_RUNTIME_DIR, &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "CLIPPER_PYTHON_HOME"));
    assert_int_equal(cl_py_start(&other, RT_PYTHON_HOME, "/nonexistent", &err), CL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "CLIPPER_RUNTIME_DIR"));
}

/* The versions a model entry records, checked before loading. They stay
 * remembered by the interpreter, so each test ends with unknown ones. */
static void test_another_python_is_refused_naming_both_versions(void **state)
{
    (void)state;
    char *warning = NULL, *cause = NULL;
    assert_int_equal(cl_py_check_versions(py, "m", "1", "3.9.1", "2.1.0", &warning, &cause),
                     CL_ERR_PYTHON);
    assert_null(warning);
    assert_non_null(cause);
    assert_non_null(strstr(cause, "model m:1 was pickled with Python 3.9.1 / cloudpickle 2.1.0, "
                                  "this replica runs Python 3."));
    assert_non_null(strstr(cause, "deploy from matching versions"));
    free(cause);
    assert_int_equal(cl_py_check_versions(py, "m", "1", "", "1.6.0", &warning, &cause),
                     CL_ERR_PYTHON);
    assert_non_null(strstr(cause, "cloudpickle 1.6.0, this replica runs"));
    free(cause);
    assert_int_equal(cl_py_check_versions(py, "m", "1", "", "", &warning, &cause), CL_OK);
    assert_null(warning);
    assert_null(cause);
}

static void test_another_cloudpickle_minor_warns_and_a_failed_load_names_it(void **state)
{
    (void)state;
    char *warning = NULL, *cause = NULL;
    assert_int_equal(cl_py_check_versions(py, "m", "1", "", "2.99.0", &warning, &cause), CL_OK);
    assert_non_null(warning);
    assert_non_null(strstr(warning, "cloudpickle 2.99.0"));
    assert_non_null(strstr(warning, "trying to load it anyway"));
    free(warning);
    assert_int_equal(load("version_skew", "python-closure", &cause), CL_ERR_PYTHON);
    assert_non_null(strstr(cause, "model m:1 was pickled with Python unknown / cloudpickle 2.99.0"));
    assert_non_null(strstr(cause, "unpickling failed with TypeError"));
    free(cause);
    /* A good artifact still loads with that warning. */
    load_ok("sum");
    assert_int_equal(cl_py_check_versions(py, "m", "1", "", "", &warning, &cause), CL_OK);
}

static void test_a_package_pip_cannot_install_names_it_and_quotes_pip(void **state)
{
    (void)state;
    char dir[] = "/tmp/clipper-test-pkgs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("CLIPPER_PKG_DIR", dir, 1);
    char wheel[256];
    snprintf(wheel, sizeof(wheel), "%s/nothere-1.0-py3-none-any.whl", dir);
    char *pkgs[] = {wheel};
    char *cause = NULL;
    assert_int_equal(cl_py_install(py, pkgs, 1, "m", "1", &cause), CL_ERR_PYTHON);
    assert_non_null(cause);
    assert_non_null(strstr(cause, "cannot load model m:1: installing packages"));
    assert_non_null(strstr(cause, wheel));
    assert_non_null(strstr(cause, "pip exited with status"));
    assert_non_null(strstr(cause, "ERROR:"));
    free(cause);
    unsetenv("CLIPPER_PKG_DIR");
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_batch_returns_outputs_in_order),
        cmocka_unit_test(test_numpy_array_return_is_converted_like_clippers_closure_container),
        cmocka_unit_test(test_exception_is_a_batch_error_with_type_message_and_frames),
        cmocka_unit_test(test_system_exit_in_the_model_is_only_a_batch_error),
        cmocka_unit_test(test_not_a_list_gets_clippers_text),
        cmocka_unit_test(test_wrong_length_gets_clippers_text),
        cmocka_unit_test(test_non_str_outputs_go_through_str_like_clipper),
        cmocka_unit_test(test_strings_arrive_as_bytes_objects),
        cmocka_unit_test(test_corrupted_pickle_is_a_load_error_saying_so),
        cmocka_unit_test(test_missing_module_names_it_and_pkgs_to_install),
        cmocka_unit_test(test_pickle_from_another_python_says_version_mismatch),
        cmocka_unit_test(test_unknown_runtime_is_a_load_error_naming_it),
        cmocka_unit_test(test_artifact_that_is_not_callable_is_a_load_error),
        cmocka_unit_test(test_a_second_interpreter_is_refused),
        cmocka_unit_test(test_wrong_python_home_is_refused_with_a_clear_error),
        cmocka_unit_test(test_another_python_is_refused_naming_both_versions),
        cmocka_unit_test(test_another_cloudpickle_minor_warns_and_a_failed_load_names_it),
        cmocka_unit_test(test_a_package_pip_cannot_install_names_it_and_quotes_pip),
    };
    return cmocka_run_group_tests(tests, start_python, stop_python);
}
