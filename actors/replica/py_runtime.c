/* The embedded CPython (see py_runtime.h). This file is the boundary: a
 * Python exception is caught right after the call that raised it, turned
 * into text by the runtime module (with its traceback, for the log) and
 * cleared; none reaches C control flow, and PyErr_Print (which exits on
 * SystemExit) is never used.
 *
 * The interpreter is initialised once and never finalised: the replica
 * exits right after it stops serving, and Py_FinalizeEx would wait for any
 * non-daemon thread the model started, so a stop could hang. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl_clock.h"
#include "cl_log.h"
#include "py_runtime.h"

#define RUNTIME_MODULE "clipper_runtime"

struct cl_py {
    PyObject *module;
    PyObject *load_model;
    PyObject *predict;
    PyObject *describe_error;
    PyObject *describe_load_error;
    PyObject *func;   /* the loaded model, NULL until cl_py_load succeeds */
    PyObject *deployed_with; /* (model, version, python, cloudpickle), or NULL */
    char *last_error; /* the last batch error logged in full */
};

/* An interpreter can be initialised once per process. */
static atomic_bool interpreter_started;

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer cannot follow the references CPython keeps to its objects
 * (and the interpreter is never finalised), so every live Python object
 * would be reported at exit, and the leak report would change the
 * replica's exit code. Leaks inside the interpreter and numpy are not
 * ours to report; a missing Py_DECREF would not be caught this way anyway. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    /* libcrypto: OpenSSL as loaded by Python's hashlib (the runtime hashes
     * a package list), whose state lives until exit like the interpreter's. */
    return "leak:libpython3\n"
           "leak:_PyObject_\n"
           "leak:PyMem_\n"
           "leak:_multiarray_umath\n"
           "leak:libcrypto.so\n";
}
#endif

/* --------------------------------------------------------------- helpers */

/* Logs a multi-line text one line at a time (log lines are bounded). */
static void log_block(cl_log_level level, const char *text)
{
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        cl_log(level, "  %.*s", n, p);
        p = nl ? nl + 1 : NULL;
    }
}

/* A malloc'd UTF-8 copy of a str (lone surrogates escaped), or NULL. */
static char *utf8_dup(PyObject *s)
{
    if (!s || !PyUnicode_Check(s))
        return NULL;
    Py_ssize_t len = 0;
    const char *u = PyUnicode_AsUTF8AndSize(s, &len);
    if (u)
        return strndup(u, (size_t)len);
    PyErr_Clear();
    PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
    if (!b) {
        PyErr_Clear();
        return NULL;
    }
    char *r = strndup(PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return r;
}

/* Takes the raised exception, normalised and with its traceback attached,
 * and clears the error indicator. NULL when none is set. */
static PyObject *take_exception(void)
{
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyErr_Fetch(&type, &value, &tb);
    if (!type)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    if (!value) {
        value = type;
        type = NULL;
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* "TypeName: message" without help from Python code (last resort). */
static char *exception_fallback(PyObject *exc)
{
    char buf[1024];
    const char *type = exc ? Py_TYPE(exc)->tp_name : "unknown";
    char *msg = NULL;
    if (exc) {
        PyObject *s = PyObject_Str(exc);
        msg = utf8_dup(s);
        Py_XDECREF(s);
        PyErr_Clear();
    }
    snprintf(buf, sizeof(buf), "%s: %s", type, msg ? msg : "(unprintable exception)");
    free(msg);
    return strdup(buf);
}

/* The whole traceback text via traceback.format_exception, or NULL. */
static char *format_traceback(PyObject *exc)
{
    char *out = NULL;
    PyObject *tbmod = PyImport_ImportModule("traceback");
    PyObject *lines = tbmod ? PyObject_CallMethod(tbmod, "format_exception", "O", exc) : NULL;
    PyObject *empty = lines ? PyUnicode_FromString("") : NULL;
    PyObject *joined = empty ? PyUnicode_Join(empty, lines) : NULL;
    out = utf8_dup(joined);
    Py_XDECREF(joined);
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(tbmod);
    PyErr_Clear();
    return out;
}

/* Turns exc into (cause, full traceback) with the runtime's describer
 * (model and version, when given, are passed on) and returns the cause
 * (malloc'd; NULL only when out of memory). *full gets the traceback to log
 * (malloc'd, may be NULL: the runtime leaves it out for its own output
 * checks, whose traceback would only show the runtime). */
static char *describe(PyObject *describer, PyObject *exc, const char *model, const char *version,
                      char **full)
{
    char *cause = NULL;
    bool described = false;
    *full = NULL;
    if (describer && exc) {
        PyObject *res = model ? PyObject_CallFunction(describer, "Oss", exc, model, version)
                              : PyObject_CallOneArg(describer, exc);
        if (res && PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2) {
            cause = utf8_dup(PyTuple_GET_ITEM(res, 0));
            *full = utf8_dup(PyTuple_GET_ITEM(res, 1));
            described = cause != NULL;
        }
        Py_XDECREF(res);
        PyErr_Clear();
    }
    if (!described) {
        free(cause);
        cause = exception_fallback(exc);
        if (exc)
            *full = format_traceback(exc);
    }
    return cause;
}

/* Logs the first line of text after what, then full (if any) line by line. */
static void log_failure(cl_log_level level, const char *what, const char *text, const char *full)
{
    const char *nl = text ? strchr(text, '\n') : NULL;
    int n = text ? (nl ? (int)(nl - text) : (int)strlen(text)) : 0;
    cl_log(level, "%s%s%.*s", what ? what : "", what ? ": " : "", n, text ? text : "");
    if (full)
        log_block(level, full);
}

/* ----------------------------------------------------------------- start */

static CL_MUST_USE cl_status check_dirs(const char *home, const char *runtime_dir, cl_err *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/lib/python%d.%d/os.py", home, PY_MAJOR_VERSION,
             PY_MINOR_VERSION);
    if (access(path, R_OK) != 0)
        return cl_err_set(err, CL_ERR_NOT_FOUND,
                          "the Python home '%s' has no lib/python%d.%d (set CLIPPER_PYTHON_HOME "
                          "to the prefix of a Python %d.%d with cloudpickle and numpy)",
                          home, PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_MAJOR_VERSION,
                          PY_MINOR_VERSION);
    snprintf(path, sizeof(path), "%s/%s.py", runtime_dir, RUNTIME_MODULE);
    if (access(path, R_OK) != 0)
        return cl_err_set(err, CL_ERR_NOT_FOUND,
                          "the runtime directory '%s' has no %s.py (set CLIPPER_RUNTIME_DIR)",
                          runtime_dir, RUNTIME_MODULE);
    return CL_OK;
}

static CL_MUST_USE cl_status init_interpreter(const char *home, cl_err *err)
{
    PyConfig config;
    /* Isolated: ignores PYTHON* variables and the user site directory, and
     * installs no signal handlers (the actor owns SIGINT/SIGTERM). */
    PyConfig_InitIsolatedConfig(&config);
    config.buffered_stdio = 0; /* a model's print() reaches the log at once */
    PyStatus status = PyConfig_SetBytesString(&config, &config.home, home);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        return cl_err_set(err, CL_ERR_PYTHON, "cannot start the embedded Python (home '%s'): %s",
                          home, status.err_msg ? status.err_msg : "unknown error");
    return CL_OK;
}

static CL_MUST_USE cl_status import_runtime(cl_py *py, const char *runtime_dir, cl_err *err)
{
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *dir = PyUnicode_DecodeFSDefault(runtime_dir);
    if (!path || !dir || PyList_Insert(path, 0, dir) != 0) {
        Py_XDECREF(dir);
        goto fail;
    }
    Py_DECREF(dir);

    py->module = PyImport_ImportModule(RUNTIME_MODULE);
    if (!py->module)
        goto fail;
    py->load_model = PyObject_GetAttrString(py->module, "load_model");
    py->predict = PyObject_GetAttrString(py->module, "predict");
    py->describe_error = PyObject_GetAttrString(py->module, "describe_error");
    py->describe_load_error = PyObject_GetAttrString(py->module, "describe_load_error");
    if (!py->load_model || !py->predict || !py->describe_error || !py->describe_load_error)
        goto fail;
    return CL_OK;

fail:;
    PyObject *exc = take_exception();
    char *full = NULL;
    char *cause = describe(NULL, exc, NULL, NULL, &full);
    log_failure(CL_LOG_ERROR, "cannot import the replica runtime", cause, full);
    free(full);
    cl_err_set(err, CL_ERR_PYTHON, "cannot import %s from '%s': %s", RUNTIME_MODULE, runtime_dir,
               cause ? cause : "out of memory");
    free(cause);
    Py_XDECREF(exc);
    return CL_ERR_PYTHON;
}

static void release_refs(cl_py *py)
{
    Py_CLEAR(py->func);
    Py_CLEAR(py->deployed_with);
    Py_CLEAR(py->describe_load_error);
    Py_CLEAR(py->describe_error);
    Py_CLEAR(py->predict);
    Py_CLEAR(py->load_model);
    Py_CLEAR(py->module);
}

cl_status cl_py_start(cl_py **out, const char *python_home, const char *runtime_dir, cl_err *err)
{
    cl_status st = check_dirs(python_home, runtime_dir, err);
    if (st != CL_OK)
        return st;
    if (atomic_exchange(&interpreter_started, true))
        return cl_err_set(err, CL_ERR_EXISTS, "the embedded Python is already started");

    cl_py *py = calloc(1, sizeof(*py));
    if (!py)
        return cl_err_set(err, CL_ERR_NOMEM, "out of memory");
    st = init_interpreter(python_home, err);
    if (st != CL_OK) {
        free(py);
        return st;
    }
    uint64_t t0 = cl_mono_us();
    st = import_runtime(py, runtime_dir, err);
    if (st != CL_OK)
        release_refs(py);
    else
        cl_debug("embedded Python %s started (home %s), runtime imported in %.1f ms", Py_GetVersion(),
                 python_home, (double)(cl_mono_us() - t0) / 1000.0);
    /* From here on the GIL is taken only around calls into Python. */
    (void)PyEval_SaveThread();
    if (st != CL_OK) {
        free(py);
        return st;
    }
    *out = py;
    return CL_OK;
}

/* ------------------------------------------------------------------ load */

cl_status cl_py_load(cl_py *py, const char *runtime, const void *data, size_t len,
                     const char *tmp_dir, const char *model, const char *version, char **cause)
{
    *cause = NULL;
    cl_status st = CL_OK;
    PyGILState_STATE gil = PyGILState_Ensure();

    PyObject *rt = PyUnicode_FromString(runtime ? runtime : "");
    PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    PyObject *tmp = tmp_dir ? PyUnicode_DecodeFSDefault(tmp_dir) : Py_NewRef(Py_None);
    PyObject *func = NULL;
    if (rt && bytes && tmp)
        func = PyObject_CallFunctionObjArgs(py->load_model, rt, bytes, tmp,
                                            py->deployed_with ? py->deployed_with : Py_None,
                                            NULL);
    if (!func) {
        PyObject *exc = take_exception();
        char *full = NULL;
        *cause = describe(py->describe_load_error, exc, model, version, &full);
        log_failure(CL_LOG_ERROR, NULL, *cause, full);
        free(full);
        Py_XDECREF(exc);
        st = *cause ? CL_ERR_PYTHON : CL_ERR_NOMEM;
    } else {
        Py_XSETREF(py->func, func);
    }
    Py_XDECREF(tmp);
    Py_XDECREF(bytes);
    Py_XDECREF(rt);
    PyGILState_Release(gil);
    return st;
}

/* Calls the runtime's function name with args (a new reference, stolen;
 * NULL when building it failed). On an exception, *cause gets its
 * description by describe_load_error (logged with its detail) and the
 * result is NULL. Holds the GIL. */
static PyObject *call_runtime(cl_py *py, const char *name, PyObject *args, const char *model,
                              const char *version, char **cause)
{
    PyObject *res = NULL;
    PyObject *fn = PyObject_GetAttrString(py->module, name);
    if (fn && args)
        res = PyObject_CallObject(fn, args);
    Py_XDECREF(fn);
    Py_XDECREF(args);
    if (!res) {
        PyObject *exc = take_exception();
        char *full = NULL;
        *cause = describe(py->describe_load_error, exc, model, version, &full);
        log_failure(CL_LOG_ERROR, NULL, *cause, full);
        free(full);
        Py_XDECREF(exc);
    }
    return res;
}

cl_status cl_py_check_versions(cl_py *py, const char *model, const char *version,
                               const char *python_version, const char *cloudpickle_version,
                               char **warning, char **cause)
{
    *warning = NULL;
    *cause = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *args = Py_BuildValue("(ssss)", model, version, python_version ? python_version : "",
                                   cloudpickle_version ? cloudpickle_version : "");
    if (args)
        Py_XSETREF(py->deployed_with, Py_NewRef(args));
    PyObject *res = call_runtime(py, "check_versions", args, model, version, cause);
    cl_status st = CL_OK;
    if (!res) {
        st = *cause ? CL_ERR_PYTHON : CL_ERR_NOMEM;
    } else if (PyUnicode_Check(res) && PyUnicode_GET_LENGTH(res) > 0) {
        *warning = utf8_dup(res);
    }
    Py_XDECREF(res);
    PyGILState_Release(gil);
    return st;
}

cl_status cl_py_install(cl_py *py, char *const *pkgs, size_t n, const char *model,
                        const char *version, char **cause)
{
    *cause = NULL;
    cl_status st = CL_OK;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *s = PyUnicode_FromString(pkgs[i]);
        if (!s) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    PyObject *args = list ? PyTuple_Pack(1, list) : NULL;
    Py_XDECREF(list);
    PyObject *res = call_runtime(py, "install_packages", args, model, version, cause);
    if (!res) {
        st = *cause ? CL_ERR_PYTHON : CL_ERR_NOMEM;
    } else if (PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2) {
        char *dir = utf8_dup(PyTuple_GET_ITEM(res, 0));
        char *out = utf8_dup(PyTuple_GET_ITEM(res, 1));
        if (out && *out) {
            cl_info("pip installed the packages of model %s:%s into %s:", model, version,
                    dir ? dir : "?");
            log_block(CL_LOG_INFO, out);
        } else {
            cl_info("the packages of model %s:%s are already installed in %s (reused)", model,
                    version, dir ? dir : "?");
        }
        free(dir);
        free(out);
    }
    Py_XDECREF(res);
    PyErr_Clear();
    PyGILState_Release(gil);
    return st;
}

/* --------------------------------------------------------------- predict */

/* Whether this thread keeps its Python thread state between batches. */
static _Thread_local bool thread_state_pinned;

/* PyGILState_Ensure for a batch. A bare Ensure/Release pair creates and
 * destroys a thread state (and mmaps/munmaps its frame stack) on every call
 * from a thread Python did not create: tens of microseconds per batch. The
 * first call on a thread therefore takes one extra reference that is never
 * released, so the state (one per thread that predicts: the worker) lives
 * as long as the never-finalised interpreter. */
static PyGILState_STATE gil_take(void)
{
    if (!thread_state_pinned) {
        (void)PyGILState_Ensure(); /* the pinning reference */
        (void)PyEval_SaveThread(); /* lets the GIL go, keeps the state */
        thread_state_pinned = true;
    }
    return PyGILState_Ensure();
}

void cl_py_batch_init(cl_py_batch *b)
{
    memset(b, 0, sizeof(*b));
    cl_buf_init(&b->text);
}

void cl_py_batch_deinit(cl_py_batch *b)
{
    if (!b)
        return;
    cl_buf_deinit(&b->text);
    free(b->offsets);
    free(b->lens);
    free(b->error);
    memset(b, 0, sizeof(*b));
}

/* Copies the runtime's list of n str into out. Holds the GIL. */
static CL_MUST_USE cl_status take_outputs(PyObject *res, size_t n, cl_py_batch *out)
{
    if (!PyList_Check(res) || (size_t)PyList_GET_SIZE(res) != n) {
        out->error = strdup("internal error: the replica runtime did not return one output per input");
        return CL_ERR_PYTHON;
    }
    out->offsets = calloc(n ? n : 1, sizeof(size_t));
    out->lens = calloc(n ? n : 1, sizeof(size_t));
    if (!out->offsets || !out->lens)
        return CL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(res, (Py_ssize_t)i);
        Py_ssize_t len = 0;
        const char *u = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
        PyObject *escaped = NULL;
        if (!u && PyUnicode_Check(item)) {
            /* Lone surrogates cannot be UTF-8: escape them visibly. */
            PyErr_Clear();
            escaped = PyUnicode_AsEncodedString(item, "utf-8", "backslashreplace");
            if (escaped) {
                u = PyBytes_AS_STRING(escaped);
                len = PyBytes_GET_SIZE(escaped);
            }
        }
        if (!u) {
            PyErr_Clear();
            out->error = strdup("internal error: the replica runtime returned a non-str output");
            return CL_ERR_PYTHON;
        }
        out->offsets[i] = out->text.len;
        out->lens[i] = (size_t)len;
        cl_status st = cl_buf_append(&out->text, u, (size_t)len);
        Py_XDECREF(escaped);
        if (st != CL_OK)
            return st;
    }
    out->count = n;
    return CL_OK;
}

cl_status cl_py_predict(cl_py *py, int input_type, const uint8_t *const *inputs,
                        const size_t *lens, size_t n, cl_py_batch *out)
{
    if (!py || !py->func) {
        out->error = strdup("no model is loaded");
        return CL_ERR_INVALID;
    }
    cl_status st = CL_OK;
    PyGILState_STATE gil = gil_take();
    uint64_t t0 = cl_mono_us();

    PyObject *res = NULL;
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)inputs[i], (Py_ssize_t)lens[i]);
        if (!b) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, b);
    }
    if (list)
        res = PyObject_CallFunction(py->predict, "OiO", py->func, input_type, list);
    out->call_us = cl_mono_us() - t0;

    if (!res) {
        PyObject *exc = take_exception();
        char *full = NULL;
        out->error = describe(py->describe_error, exc, NULL, NULL, &full);
        Py_XDECREF(exc);
        /* A model that fails every batch the same way logs its traceback
         * once, then one line per batch. */
        bool again = out->error && py->last_error && strcmp(out->error, py->last_error) == 0;
        log_failure(CL_LOG_WARN, again ? "the model failed a batch again" : "the model failed a batch",
                    out->error, again ? NULL : full);
        free(full);
        if (out->error && !again) {
            free(py->last_error);
            py->last_error = strdup(out->error);
        }
        st = out->error ? CL_ERR_PYTHON : CL_ERR_NOMEM;
    } else {
        st = take_outputs(res, n, out);
        if (st == CL_ERR_PYTHON)
            cl_warn("%s", out->error);
    }
    Py_XDECREF(res);
    Py_XDECREF(list);
    PyGILState_Release(gil);
    return st;
}

void cl_py_free(cl_py *py)
{
    if (!py)
        return;
    PyGILState_STATE gil = PyGILState_Ensure();
    release_refs(py);
    PyGILState_Release(gil);
    free(py->last_error);
    free(py);
}
