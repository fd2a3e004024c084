/* clipper_admin._bus: the Python package's door to the NATS bus.
 *
 * A thin CPython wrapper over bus/cl_bus.h, cl_subject.h and cl_artifact.h:
 * one class, Bus, with blocking request/reply, the admin and predict
 * subjects of a cluster prefix, and model artifacts on JetStream. Every
 * blocking call runs with the GIL released. Errors become BusError (or its
 * subclasses BusTimeout and NoResponders) carrying the text of the cl_err
 * that described them, and the status name in the exception's `status`.
 *
 * Lifetime: a call in flight holds the connection (busy count, changed only
 * with the GIL held); close() while calls are in flight marks the object
 * closed and the last call out frees the connection. Nothing Python runs
 * without the GIL, and no cnats type appears here. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cl_artifact.h"
#include "cl_bus.h"
#include "cl_clock.h"
#include "cl_log.h"
#include "cl_subject.h"

typedef struct {
    PyObject_HEAD
    cl_bus *bus;
    PyObject *url;    /* str */
    PyObject *prefix; /* str */
    int busy;         /* calls in flight with the GIL released */
    bool closed;
} BusObject;

typedef struct {
    PyObject *bus_error;
    PyObject *bus_timeout;
    PyObject *no_responders;
    PyTypeObject *bus_type;
} module_state;

static PyModuleDef busmodule;

static module_state *state_of_module(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

static module_state *state_of_type(PyTypeObject *tp)
{
    PyObject *module = PyType_GetModuleByDef(tp, &busmodule);
    return module != NULL ? state_of_module(module) : NULL;
}

/* Raises the exception class that matches the status, with msg as its
 * text and the status name in .status. Returns NULL for `return raise_...`. */
static PyObject *raise_status(module_state *st, cl_status code, const char *msg)
{
    PyObject *cls = st->bus_error;
    if (code == CL_ERR_TIMEOUT)
        cls = st->bus_timeout;
    else if (code == CL_ERR_NO_RESPONDERS)
        cls = st->no_responders;
    else if (code == CL_ERR_NOMEM)
        return PyErr_NoMemory();
    PyObject *exc = PyObject_CallFunction(cls, "s", msg);
    if (exc == NULL)
        return NULL;
    PyObject *name = PyUnicode_FromString(cl_status_name(code));
    if (name == NULL || PyObject_SetAttrString(exc, "status", name) < 0) {
        Py_XDECREF(name);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(name);
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *raise_err(module_state *st, const cl_err *err)
{
    return raise_status(st, err->code, err->msg);
}

/* Takes the connection for one blocking call; NULL (with BusError set)
 * when the Bus is closed. Pair with release_bus. GIL held. */
static cl_bus *acquire_bus(BusObject *self, module_state *st)
{
    if (self->closed || self->bus == NULL) {
        raise_status(st, CL_ERR_CLOSED, "this Bus is closed; create a new clipper_admin._bus.Bus");
        return NULL;
    }
    self->busy++;
    return self->bus;
}

/* GIL held. Frees the connection when close() came while the call ran. */
static void release_bus(BusObject *self)
{
    self->busy--;
    if (self->closed && self->busy == 0 && self->bus != NULL) {
        cl_bus *bus = self->bus;
        self->bus = NULL;
        Py_BEGIN_ALLOW_THREADS
        cl_bus_free(bus);
        Py_END_ALLOW_THREADS
    }
}

static int check_timeout(int timeout_ms)
{
    if (timeout_ms <= 0) {
        PyErr_Format(PyExc_ValueError, "timeout_ms must be positive, got %d", timeout_ms);
        return -1;
    }
    return 0;
}

/* The request/reply core shared by request, admin and predict. */
/* resend: a request that may be sent twice (a prediction) is sent again
 * when the connection reconnects before its reply came. */
static PyObject *do_request(BusObject *self, module_state *st, const char *subject,
                            Py_buffer *data, int timeout_ms, bool resend)
{
    if (check_timeout(timeout_ms) < 0)
        return NULL;
    cl_bus *bus = acquire_bus(self, st);
    if (bus == NULL)
        return NULL;
    int64_t max_payload = cl_bus_max_payload(bus);
    if (max_payload > 0 && data->len > max_payload) {
        release_bus(self);
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "request of %zd bytes to %s exceeds the server's max payload of %lld bytes",
                 data->len, subject, (long long)max_payload);
        return raise_status(st, CL_ERR_TOO_LARGE, msg);
    }
    cl_msg *reply = NULL;
    cl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = resend ? cl_bus_request_resend(bus, subject, data->buf, (size_t)data->len, timeout_ms,
                                       &reply)
               : cl_bus_request(bus, subject, data->buf, (size_t)data->len, timeout_ms, &reply);
    Py_END_ALLOW_THREADS
    release_bus(self);

    if (s == CL_OK && cl_msg_is_no_responders(reply)) {
        cl_msg_free(reply);
        reply = NULL;
        s = CL_ERR_NO_RESPONDERS;
    }
    if (s != CL_OK) {
        cl_err err;
        switch (s) {
        case CL_ERR_NO_RESPONDERS:
            cl_err_set(&err, s, "no responders on %s: no actor is listening there", subject);
            break;
        case CL_ERR_TIMEOUT:
            cl_err_set(&err, s, "no reply on %s within %d ms", subject, timeout_ms);
            break;
        case CL_ERR_UNREACHABLE:
            cl_err_set(&err, s, "request on %s failed: the connection to %s is lost (%s)",
                       subject, PyUnicode_AsUTF8(self->url), cl_status_text(s));
            break;
        default:
            cl_err_set(&err, s, "request on %s failed: %s", subject, cl_status_text(s));
            break;
        }
        return raise_err(st, &err);
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)cl_msg_data(reply),
                                              (Py_ssize_t)cl_msg_len(reply));
    cl_msg_free(reply);
    return out;
}

/* ---- Bus methods ---- */

static int Bus_init(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"url",   "prefix", "name",     "connect_timeout_ms",
                             "creds", "tls_ca", "tls_name", NULL};
    const char *url = NULL;
    const char *prefix = CL_DEFAULT_PREFIX;
    const char *name = "clipper_admin";
    const char *creds = NULL, *tls_ca = NULL, *tls_name = NULL;
    int connect_timeout_ms = 2000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|ssizzz:Bus", kwlist, &url, &prefix, &name,
                                     &connect_timeout_ms, &creds, &tls_ca, &tls_name))
        return -1;
    module_state *st = state_of_type(Py_TYPE(self));
    if (st == NULL)
        return -1;
    if (self->bus != NULL || self->busy > 0) {
        PyErr_SetString(PyExc_RuntimeError, "Bus.__init__ called twice");
        return -1;
    }
    if (connect_timeout_ms <= 0) {
        PyErr_Format(PyExc_ValueError, "connect_timeout_ms must be positive, got %d",
                     connect_timeout_ms);
        return -1;
    }
    cl_err err;
    cl_err_clear(&err);
    if (!cl_token_valid(prefix, "subject prefix", &err)) {
        PyErr_SetString(PyExc_ValueError, err.msg);
        return -1;
    }
    cl_bus_opts opts;
    cl_bus_opts_init(&opts);
    opts.url = url;
    opts.prefix = prefix;
    opts.name = name;
    opts.send_asap = true;
    opts.connect_timeout_ms = connect_timeout_ms;
    opts.nkey_file = creds;
    opts.tls_ca_file = tls_ca;
    opts.tls_name = tls_name;
    cl_bus *bus = NULL;
    cl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cl_bus_connect(&bus, &opts, &err);
    Py_END_ALLOW_THREADS
    if (s != CL_OK) {
        if (err.msg[0] == '\0')
            cl_err_set(&err, s, "cannot reach nats-server at %s: %s", url, cl_status_text(s));
        raise_err(st, &err);
        return -1;
    }
    PyObject *u = PyUnicode_FromString(url);
    PyObject *p = PyUnicode_FromString(prefix);
    if (u == NULL || p == NULL) {
        Py_XDECREF(u);
        Py_XDECREF(p);
        Py_BEGIN_ALLOW_THREADS
        cl_bus_free(bus);
        Py_END_ALLOW_THREADS
        return -1;
    }
    Py_XSETREF(self->url, u);
    Py_XSETREF(self->prefix, p);
    self->bus = bus;
    self->closed = false;
    return 0;
}

static PyObject *Bus_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    BusObject *self = (BusObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->bus = NULL;
    self->busy = 0;
    self->closed = true; /* until __init__ connects */
    self->url = PyUnicode_FromString("");
    self->prefix = PyUnicode_FromString("");
    if (self->url == NULL || self->prefix == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void Bus_dealloc(BusObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* No call can be in flight: each holds a reference to self. */
    if (self->bus != NULL) {
        cl_bus *bus = self->bus;
        self->bus = NULL;
        Py_BEGIN_ALLOW_THREADS
        cl_bus_free(bus);
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(self->url);
    Py_CLEAR(self->prefix);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Bus_request(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"subject", "data", "timeout_ms", NULL};
    const char *subject = NULL;
    Py_buffer data = {0};
    int timeout_ms = 5000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sy*|i:request", kwlist, &subject, &data,
                                     &timeout_ms))
        return NULL;
    module_state *st = state_of_type(Py_TYPE(self));
    PyObject *out = st != NULL ? do_request(self, st, subject, &data, timeout_ms, false) : NULL;
    PyBuffer_Release(&data);
    return out;
}

/* Scatter-gather: every responder's reply within timeout_ms. */
static PyObject *Bus_gather(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"subject", "data", "timeout_ms", "max", NULL};
    const char *subject = NULL;
    Py_buffer data = {0};
    int timeout_ms = 1000;
    int max = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sy*|ii:gather", kwlist, &subject, &data,
                                     &timeout_ms, &max))
        return NULL;
    PyObject *out = NULL;
    cl_msg **replies = NULL;
    size_t n = 0;
    module_state *st = state_of_type(Py_TYPE(self));
    if (st == NULL || check_timeout(timeout_ms) < 0)
        goto done;
    if (max <= 0 || max > 4096) {
        PyErr_Format(PyExc_ValueError, "max must be between 1 and 4096, got %d", max);
        goto done;
    }
    replies = calloc((size_t)max, sizeof(*replies));
    if (replies == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    cl_bus *bus = acquire_bus(self, st);
    if (bus == NULL)
        goto done;
    cl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cl_bus_gather(bus, subject, data.buf, (size_t)data.len, timeout_ms, replies, (size_t)max,
                      &n, NULL, NULL);
    Py_END_ALLOW_THREADS
    release_bus(self);
    if (s != CL_OK && s != CL_ERR_TIMEOUT && s != CL_ERR_NO_RESPONDERS) {
        cl_err err;
        cl_err_set(&err, s, "gather on %s failed: %s", subject, cl_status_text(s));
        raise_err(st, &err);
        goto done;
    }
    out = PyList_New(0);
    for (size_t i = 0; out != NULL && i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)cl_msg_data(replies[i]),
                                                (Py_ssize_t)cl_msg_len(replies[i]));
        if (b == NULL || PyList_Append(out, b) < 0)
            Py_CLEAR(out);
        Py_XDECREF(b);
    }
done:
    for (size_t i = 0; i < n; i++)
        cl_msg_free(replies[i]);
    free(replies);
    PyBuffer_Release(&data);
    return out;
}

static PyObject *Bus_publish(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"subject", "data", NULL};
    const char *subject = NULL;
    Py_buffer data = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sy*:publish", kwlist, &subject, &data))
        return NULL;
    module_state *st = state_of_type(Py_TYPE(self));
    cl_bus *bus = st != NULL ? acquire_bus(self, st) : NULL;
    if (bus == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    cl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cl_bus_publish(bus, subject, data.buf, (size_t)data.len);
    if (s == CL_OK)
        s = cl_bus_flush(bus, 2000);
    Py_END_ALLOW_THREADS
    release_bus(self);
    PyBuffer_Release(&data);
    if (s != CL_OK) {
        cl_err err;
        cl_err_set(&err, s, "publish on %s failed: %s", subject, cl_status_text(s));
        return raise_err(st, &err);
    }
    Py_RETURN_NONE;
}

/* Subscribes to subject for timeout_ms and returns what came: for tools
 * and tests (what may this identity see?). */
static PyObject *Bus_listen(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"subject", "timeout_ms", "max", NULL};
    const char *subject = NULL;
    int timeout_ms = 1000;
    int max = 1000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|ii:listen", kwlist, &subject, &timeout_ms,
                                     &max))
        return NULL;
    module_state *st = state_of_type(Py_TYPE(self));
    if (st == NULL || check_timeout(timeout_ms) < 0)
        return NULL;
    if (max <= 0) {
        PyErr_Format(PyExc_ValueError, "max must be positive, got %d", max);
        return NULL;
    }
    cl_bus *bus = acquire_bus(self, st);
    if (bus == NULL)
        return NULL;
    PyObject *out = PyList_New(0);
    cl_sub *sub = NULL;
    cl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cl_bus_subscribe_sync(&sub, bus, subject, NULL);
    Py_END_ALLOW_THREADS
    if (s != CL_OK) {
        release_bus(self);
        Py_XDECREF(out);
        cl_err err;
        cl_err_set(&err, s, "cannot subscribe to %s: %s", subject, cl_status_text(s));
        return raise_err(st, &err);
    }
    uint64_t end = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (out != NULL && PyList_GET_SIZE(out) < max) {
        uint64_t now = cl_mono_us();
        if (now >= end)
            break;
        cl_msg *m = NULL;
        Py_BEGIN_ALLOW_THREADS
        s = cl_sub_next(sub, &m, (int)((end - now + 999u) / 1000u));
        Py_END_ALLOW_THREADS
        if (s != CL_OK)
            break;
        PyObject *t = Py_BuildValue("(sy#)", cl_msg_subject(m), (const char *)cl_msg_data(m),
                                    (Py_ssize_t)cl_msg_len(m));
        cl_msg_free(m);
        if (t == NULL || PyList_Append(out, t) < 0)
            Py_CLEAR(out);
        Py_XDECREF(t);
    }
    Py_BEGIN_ALLOW_THREADS
    cl_sub_free(sub);
    Py_END_ALLOW_THREADS
    release_bus(self);
    return out;
}

typedef cl_status (*subject_fn)(char out[CL_SUBJECT_MAX], const char *prefix, const char *token,
                                cl_err *err);

/* admin and predict: build <prefix>.<kind>.<token>, then request. */
static PyObject *request_on(BusObject *self, PyObject *args, PyObject *kwds, const char *fmt,
                            char **kwlist, subject_fn build, int default_timeout_ms)
{
    const char *token = NULL;
    Py_buffer data = {0};
    int timeout_ms = default_timeout_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, &token, &data, &timeout_ms))
        return NULL;
    PyObject *out = NULL;
    module_state *st = state_of_type(Py_TYPE(self));
    if (st == NULL)
        goto out;
    char subject[CL_SUBJECT_MAX];
    cl_err err;
    cl_err_clear(&err);
    cl_status s = build(subject, PyUnicode_AsUTF8(self->prefix), token, &err);
    if (s != CL_OK) {
        PyErr_SetString(PyExc_ValueError, err.msg[0] ? err.msg : cl_status_text(s));
        goto out;
    }
    out = do_request(self, st, subject, &data, timeout_ms, build == cl_subj_predict);
out:
    PyBuffer_Release(&data);
    return out;
}

static PyObject *Bus_admin(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"command", "body", "timeout_ms", NULL};
    return request_on(self, args, kwds, "sy*|i:admin", kwlist, cl_subj_admin, 10000);
}

static PyObject *Bus_predict(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"app", "body", "timeout_ms", NULL};
    return request_on(self, args, kwds, "sy*|i:predict", kwlist, cl_subj_predict, 10000);
}

static PyObject *Bus_put_artifact(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"model", "version", "data", NULL};
    const char *model = NULL;
    const char *version = NULL;
    Py_buffer data = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ssy*:put_artifact", kwlist, &model, &version,
                                     &data))
        return NULL;
    PyObject *out = NULL;
    module_state *st = state_of_type(Py_TYPE(self));
    if (st == NULL)
        goto out;
    cl_bus *bus = acquire_bus(self, st);
    if (bus == NULL)
        goto out;
    char digest[CL_SHA256_HEX] = {0};
    cl_err err;
    cl_err_clear(&err);
    cl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cl_artifact_put(bus, model, version, data.buf, (size_t)data.len, digest, &err);
    Py_END_ALLOW_THREADS
    release_bus(self);
    if (s != CL_OK) {
        if (err.msg[0] == '\0')
            cl_err_set(&err, s, "cannot store the artifact of %s:%s: %s", model, version,
                       cl_status_text(s));
        raise_err(st, &err);
        goto out;
    }
    out = PyUnicode_FromString(digest);
out:
    PyBuffer_Release(&data);
    return out;
}

static PyObject *Bus_get_artifact(BusObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"model", "version", NULL};
    const char *model = NULL;
    const char *version = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ss:get_artifact", kwlist, &model, &version))
        return NULL;
    module_state *st = state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    cl_bus *bus = acquire_bus(self, st);
    if (bus == NULL)
        return NULL;
    void *data = NULL;
    size_t len = 0;
    cl_err err;
    cl_err_clear(&err);
    cl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cl_artifact_get(bus, model, version, &data, &len, NULL, &err);
    Py_END_ALLOW_THREADS
    release_bus(self);
    if (s != CL_OK) {
        free(data);
        if (err.msg[0] == '\0')
            cl_err_set(&err, s, "cannot fetch the artifact of %s:%s: %s", model, version,
                       cl_status_text(s));
        return raise_err(st, &err);
    }
    PyObject *out = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    free(data);
    return out;
}

static PyObject *Bus_close(BusObject *self, PyObject *unused)
{
    (void)unused;
    self->closed = true;
    if (self->busy == 0 && self->bus != NULL) {
        cl_bus *bus = self->bus;
        self->bus = NULL;
        Py_BEGIN_ALLOW_THREADS
        cl_bus_free(bus);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *Bus_enter(BusObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self);
}

static PyObject *Bus_exit(BusObject *self, PyObject *args)
{
    (void)args;
    PyObject *r = Bus_close(self, NULL);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *Bus_get_url(BusObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->url);
}

static PyObject *Bus_get_prefix(BusObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->prefix);
}

static PyObject *Bus_get_closed(BusObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->closed || self->bus == NULL);
}

static PyObject *Bus_get_connected(BusObject *self, void *closure)
{
    (void)closure;
    if (self->closed || self->bus == NULL)
        Py_RETURN_FALSE;
    return PyBool_FromLong(cl_bus_is_connected(self->bus));
}

static PyObject *Bus_get_max_payload(BusObject *self, void *closure)
{
    (void)closure;
    module_state *st = state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    cl_bus *bus = acquire_bus(self, st);
    if (bus == NULL)
        return NULL;
    long long n = (long long)cl_bus_max_payload(bus);
    release_bus(self);
    return PyLong_FromLongLong(n);
}

static PyObject *Bus_repr(BusObject *self)
{
    return PyUnicode_FromFormat("<clipper_admin._bus.Bus url=%R prefix=%R%s>", self->url,
                                self->prefix,
                                self->closed || self->bus == NULL ? " closed" : "");
}

static PyMethodDef Bus_methods[] = {
    {"request", (PyCFunction)(void (*)(void))Bus_request, METH_VARARGS | METH_KEYWORDS,
     "request(subject, data, timeout_ms=5000) -> bytes\n\n"
     "Sends data to subject and returns the reply. Raises NoResponders when\n"
     "nobody listens, BusTimeout when nobody answered in time."},
    {"gather", (PyCFunction)(void (*)(void))Bus_gather, METH_VARARGS | METH_KEYWORDS,
     "gather(subject, data, timeout_ms=1000, max=64) -> list of bytes\n\n"
     "Sends data to subject and returns every reply that came within\n"
     "timeout_ms (or the first max): [] when nobody answered."},
    {"listen", (PyCFunction)(void (*)(void))Bus_listen, METH_VARARGS | METH_KEYWORDS,
     "listen(subject, timeout_ms=1000, max=1000) -> list of (subject, bytes)\n\n"
     "Subscribes to subject (wildcards allowed) for timeout_ms and returns the\n"
     "messages that came (at most max). A subscription nats-server refuses\n"
     "returns []."},
    {"publish", (PyCFunction)(void (*)(void))Bus_publish, METH_VARARGS | METH_KEYWORDS,
     "publish(subject, data)\n\n"
     "Publishes data on subject and flushes. A publish nats-server refuses is\n"
     "dropped by the server (it logs the violation; so does this client)."},
    {"admin", (PyCFunction)(void (*)(void))Bus_admin, METH_VARARGS | METH_KEYWORDS,
     "admin(command, body, timeout_ms=10000) -> bytes\n\n"
     "Request on <prefix>.admin.<command>; body is the JSON request."},
    {"predict", (PyCFunction)(void (*)(void))Bus_predict, METH_VARARGS | METH_KEYWORDS,
     "predict(app, body, timeout_ms=10000) -> bytes\n\n"
     "Request on <prefix>.predict.<app>; body is Clipper's predict JSON."},
    {"put_artifact", (PyCFunction)(void (*)(void))Bus_put_artifact, METH_VARARGS | METH_KEYWORDS,
     "put_artifact(model, version, data) -> str\n\n"
     "Stores data as the artifact of model:version on JetStream and returns\n"
     "its SHA-256 in hex."},
    {"get_artifact", (PyCFunction)(void (*)(void))Bus_get_artifact, METH_VARARGS | METH_KEYWORDS,
     "get_artifact(model, version) -> bytes\n\nFetches and verifies an artifact."},
    {"close", (PyCFunction)Bus_close, METH_NOARGS,
     "close()\n\nFlushes and closes the connection. Further use raises BusError."},
    {"__enter__", (PyCFunction)Bus_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Bus_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Bus_getset[] = {
    {"url", (getter)Bus_get_url, NULL, "the NATS URL this Bus connected to", NULL},
    {"prefix", (getter)Bus_get_prefix, NULL, "the cluster's subject prefix", NULL},
    {"closed", (getter)Bus_get_closed, NULL, "True once close() was called", NULL},
    {"connected", (getter)Bus_get_connected, NULL,
     "True while connected to nats-server (False while reconnecting or closed)", NULL},
    {"max_payload", (getter)Bus_get_max_payload, NULL,
     "the server's max payload in bytes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Bus_slots[] = {
    {Py_tp_doc, (void *)"Bus(url, prefix='clipper', name='clipper_admin', "
                        "connect_timeout_ms=2000, creds=None, tls_ca=None, tls_name=None)\n\n"
                        "A connection to a Clipper cluster's NATS bus, as the identity in\n"
                        "the credential file creds (docs/security.md) and over TLS verified\n"
                        "with the CA file tls_ca, when given; tls_name is the name the\n"
                        "server's certificate must carry (default: the URL's host)."},
    {Py_tp_new, (void *)Bus_new},
    {Py_tp_init, (void *)Bus_init},
    {Py_tp_dealloc, (void *)Bus_dealloc},
    {Py_tp_repr, (void *)Bus_repr},
    {Py_tp_methods, Bus_methods},
    {Py_tp_getset, Bus_getset},
    {0, NULL},
};

static PyType_Spec Bus_spec = {
    .name = "clipper_admin._bus.Bus",
    .basicsize = sizeof(BusObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = Bus_slots,
};

/* ---- module ---- */

static int busmodule_exec(PyObject *module)
{
    module_state *st = state_of_module(module);
    /* The C side logs to stderr; inside a user's Python process only errors
     * are worth a line unless CLIPPER_LOG asks for more. */
    cl_log_set_name("clipper_admin");
    if (getenv("CLIPPER_LOG") == NULL)
        cl_log_set_level(CL_LOG_ERROR);

    st->bus_error = PyErr_NewExceptionWithDoc(
        "clipper_admin._bus.BusError",
        "A bus operation failed; the message says what and why, .status names the code.",
        PyExc_Exception, NULL);
    if (st->bus_error == NULL)
        return -1;
    st->bus_timeout = PyErr_NewExceptionWithDoc("clipper_admin._bus.BusTimeout",
                                                "Nobody answered within the timeout.",
                                                st->bus_error, NULL);
    if (st->bus_timeout == NULL)
        return -1;
    st->no_responders = PyErr_NewExceptionWithDoc(
        "clipper_admin._bus.NoResponders", "No actor listens on the subject.", st->bus_error,
        NULL);
    if (st->no_responders == NULL)
        return -1;
    st->bus_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Bus_spec, NULL);
    if (st->bus_type == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "BusError", st->bus_error) < 0 ||
        PyModule_AddObjectRef(module, "BusTimeout", st->bus_timeout) < 0 ||
        PyModule_AddObjectRef(module, "NoResponders", st->no_responders) < 0 ||
        PyModule_AddType(module, st->bus_type) < 0)
        return -1;
    if (PyModule_AddStringConstant(module, "DEFAULT_PREFIX", CL_DEFAULT_PREFIX) < 0 ||
        PyModule_AddStringConstant(module, "DEFAULT_NATS_URL", CL_DEFAULT_NATS_URL) < 0 ||
        PyModule_AddIntConstant(module, "MAX_PAYLOAD", CL_BUS_MAX_PAYLOAD) < 0)
        return -1;
    return 0;
}

static int busmodule_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = state_of_module(module);
    Py_VISIT(st->bus_error);
    Py_VISIT(st->bus_timeout);
    Py_VISIT(st->no_responders);
    Py_VISIT(st->bus_type);
    return 0;
}

static int busmodule_clear(PyObject *module)
{
    module_state *st = state_of_module(module);
    Py_CLEAR(st->bus_error);
    Py_CLEAR(st->bus_timeout);
    Py_CLEAR(st->no_responders);
    Py_CLEAR(st->bus_type);
    return 0;
}

static void busmodule_free(void *module)
{
    busmodule_clear((PyObject *)module);
}

static PyModuleDef_Slot busmodule_slots[] = {
    {Py_mod_exec, (void *)busmodule_exec},
    {0, NULL},
};

static PyModuleDef busmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "clipper_admin._bus",
    .m_doc = "NATS bus access for clipper_admin, over the project's C bus library.",
    .m_size = sizeof(module_state),
    .m_slots = busmodule_slots,
    .m_traverse = busmodule_traverse,
    .m_clear = busmodule_clear,
    .m_free = busmodule_free,
};

PyMODINIT_FUNC PyInit__bus(void);

PyMODINIT_FUNC PyInit__bus(void)
{
    return PyModuleDef_Init(&busmodule);
}
