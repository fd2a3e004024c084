/* The replica's embedded CPython: the only code that includes Python.h.
 *
 * One interpreter per process. cl_py_start initialises it in the calling
 * thread (the main thread) with an isolated PyConfig, imports the runtime
 * module (actors/replica/runtime/clipper_runtime.py) and releases the GIL.
 * The other calls take the GIL themselves (PyGILState_Ensure) and may come
 * from any thread. No Python exception escapes: each is logged with its
 * traceback and handed back as text. Python types never cross this header. */
#ifndef CL_PY_RUNTIME_H
#define CL_PY_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "cl_buf.h"
#include "cl_status.h"

typedef struct cl_py cl_py;

/* Starts the interpreter with python_home as its home (where the standard
 * library and site-packages with cloudpickle and numpy are) and runtime_dir
 * first on sys.path. The interpreter is never finalised (see py_runtime.c),
 * so a process can start it once: a second call is CL_ERR_EXISTS. */
cl_status cl_py_start(cl_py **out, const char *python_home, const char *runtime_dir, cl_err *err)
    CL_MUST_USE;

/* Loads the artifact (len bytes) of model:version as its runtime says
 * (runtime "" or "python-closure": a cloudpickled function). tmp_dir may be
 * NULL; else <tmp_dir>/modules goes on sys.path. On failure, CL_ERR_PYTHON
 * (or CL_ERR_NOMEM) and *cause, malloc'd, says what was wrong in the user's
 * terms (missing module, version mismatch, damaged artifact, ...). */
cl_status cl_py_load(cl_py *py, const char *runtime, const void *data, size_t len,
                     const char *tmp_dir, const char *model, const char *version, char **cause)
    CL_MUST_USE;

/* Compares the Python and cloudpickle versions model:version was pickled
 * with (as its model entry records them; "" or NULL: unknown, not checked)
 * to the interpreter's, and remembers them so that a failing cl_py_load
 * names them. CL_OK, with *warning (malloc'd) set when only cloudpickle's
 * minor version differs (loading is then tried); CL_ERR_PYTHON with *cause
 * (malloc'd) naming both sides when the artifact cannot load here. */
cl_status cl_py_check_versions(cl_py *py, const char *model, const char *version,
                               const char *python_version, const char *cloudpickle_version,
                               char **warning, char **cause) CL_MUST_USE;

/* Installs the n pip requirement specs pkgs with pip in a child process
 * (clipper_runtime.install_packages: a per-list directory shared by the
 * replicas of this host, reused once complete) and puts that directory
 * first on sys.path. pip's output goes to the log. CL_ERR_PYTHON with
 * *cause (malloc'd) naming the packages and quoting pip's last lines. */
cl_status cl_py_install(cl_py *py, char *const *pkgs, size_t n, const char *model,
                        const char *version, char **cause) CL_MUST_USE;

/* The outputs of one batch, or the error that replaced them. */
typedef struct {
    size_t count;     /* outputs, equal to the number of inputs on success */
    cl_buf text;      /* the outputs' UTF-8 bytes, back to back */
    size_t *offsets;  /* output i is text.data[offsets[i]], lens[i] bytes */
    size_t *lens;
    char *error;      /* set (malloc'd) when the model failed the batch */
    uint64_t call_us; /* time spent in Python (conversion, model, checks) */
} cl_py_batch;

void cl_py_batch_init(cl_py_batch *b);
void cl_py_batch_deinit(cl_py_batch *b);

/* Calls the loaded model once with the n inputs (input i is lens[i] bytes
 * at inputs[i]; input_type a cl_input_type). CL_OK with n outputs in *out;
 * CL_ERR_PYTHON with out->error when the model raised or returned something
 * wrong (Clipper's texts); CL_ERR_INVALID when nothing is loaded. */
cl_status cl_py_predict(cl_py *py, int input_type, const uint8_t *const *inputs,
                        const size_t *lens, size_t n, cl_py_batch *out) CL_MUST_USE;

/* Drops the loaded model and the runtime module (the interpreter stays).
 * NULL is a no-op. */
void cl_py_free(cl_py *py);

#endif
