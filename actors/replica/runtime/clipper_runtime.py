"""The model runtime that runs inside the replica's embedded CPython.

The C side (actors/replica/py.c) imports this module once and calls:

* ``load_model(runtime, data, tmp_dir)`` to turn an artifact into a callable;
* ``predict(func, input_type, inputs)`` once per batch;
* ``describe_error(exc)`` / ``describe_load_error(exc, ...)`` to turn an
  exception into the text that goes back to the client, and the full
  traceback that goes to the log.

It reproduces the call convention of Clipper 0.4's Python closure container
(containers/python/rpc.py and python_closure_container.py), so that a
function written for Clipper behaves the same here:

* the function is called ONCE with the whole batch;
* numeric inputs of one length arrive as a 2-D numpy array (batch, length)
  of int8 (bytes), int32 (integers), float32 (floats) or float64 (doubles);
  inputs of different lengths as a 1-D numpy object array of 1-D arrays;
* strings arrive as a 1-D numpy object array of Python ``bytes`` (Clipper
  copied each frame with ``tobytes()`` and never decoded it), not ``str``;
* the outputs are ``[str(p) for p in func(inputs)]`` (Clipper's closure
  container), then checked: a list, one output per input, every output a
  str, with Clipper's error texts.

Unlike Clipper, a failed check or an exception is an error for the queries
of that batch only; the replica keeps serving (Clipper's container exited:
ucbrise/clipper#541).

Nothing here talks to the bus or knows about C; it is plain Python and is
unit-tested with python3 (tests/replica/test_clipper_runtime.py).
"""

import os
import pickle
import sys
import traceback

import numpy as np

INPUT_BYTES = 0
INPUT_INTEGERS = 1
INPUT_FLOATS = 2
INPUT_DOUBLES = 3
INPUT_STRINGS = 4

_TYPE_NAMES = {
    INPUT_BYTES: "bytes",
    INPUT_INTEGERS: "integers",
    INPUT_FLOATS: "floats",
    INPUT_DOUBLES: "doubles",
    INPUT_STRINGS: "strings",
}

# Inputs travel little-endian on the bus (bus/cl_wire.h); these dtypes say
# so explicitly and equal the native ones on little-endian hosts.
_DTYPES = {
    INPUT_BYTES: np.dtype("<i1"),
    INPUT_INTEGERS: np.dtype("<i4"),
    INPUT_FLOATS: np.dtype("<f4"),
    INPUT_DOUBLES: np.dtype("<f8"),
}

RUNTIME_PYTHON_CLOSURE = "python-closure"

# How many of the model's innermost stack frames go into the error text
# sent back with the queries (the log gets the whole traceback).
ERROR_FRAMES = 3
# Cap on the error text sent back with each query.
ERROR_TEXT_MAX = 4000

_THIS_FILE = os.path.abspath(__file__)


class PredictionError(Exception):
    """The model returned something Clipper would have rejected."""


class LoadError(Exception):
    """The artifact could not be turned into a callable; str() is the cause."""


# ---------------------------------------------------------------- loading


def load_closure(data, tmp_dir=None):
    """Unpickles a cloudpickled function (the python-closure artifact).

    When tmp_dir is given, <tmp_dir>/modules is put on sys.path first, as
    Clipper's container did with <model path>/modules, so modules the
    function was deployed with can be imported.
    """
    import cloudpickle

    if tmp_dir:
        modules = os.path.join(os.path.abspath(tmp_dir), "modules")
        if modules not in sys.path:
            sys.path.append(modules)
    func = cloudpickle.loads(bytes(data))
    if not callable(func):
        raise LoadError(
            "the artifact unpickled to a %s, not to a callable function"
            % type(func).__name__)
    return func


def load_model(runtime, data, tmp_dir=None):
    """Turns the artifact of a model version into the callable to serve.

    runtime is the model entry's "runtime" ("" means python-closure).
    """
    if runtime in ("", RUNTIME_PYTHON_CLOSURE):
        return load_closure(data, tmp_dir)
    raise LoadError(
        "unknown runtime '%s': this replica serves only '%s' models"
        % (runtime, RUNTIME_PYTHON_CLOSURE))


def _versions():
    try:
        import cloudpickle
        cp = cloudpickle.__version__
    except Exception:  # noqa: BLE001 - only for a message
        cp = "unknown"
    return "Python %d.%d.%d with cloudpickle %s" % (
        sys.version_info[0], sys.version_info[1], sys.version_info[2], cp)


def describe_load_error(exc, model="", version=""):
    """Returns (cause, full_traceback) for an exception raised by load_model.

    The cause names the problem in the user's terms: a missing module and
    how to add it, a Python/cloudpickle version mismatch, or a damaged
    artifact.
    """
    full = "".join(traceback.format_exception(type(exc), exc,
                                              exc.__traceback__))
    what = "model %s:%s" % (model, version) if model else "the model"
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()

    if isinstance(exc, LoadError):
        cause = "cannot load %s: %s" % (what, exc)
    elif isinstance(exc, ImportError):
        name = getattr(exc, "name", None)
        if name:
            cause = ("cannot load %s: its function needs the Python module "
                     "'%s', which is not installed in the replica's Python "
                     "(%s at %s). Add the package that provides it with "
                     "pkgs_to_install when deploying the model, or install "
                     "it into that Python. (%s)"
                     % (what, name, _versions(), sys.prefix, detail))
        else:
            cause = ("cannot load %s: an import failed while unpickling its "
                     "function (%s); a module it needs may be missing: add "
                     "the package with pkgs_to_install when deploying, or "
                     "install it into the replica's Python (%s)."
                     % (what, detail, sys.prefix))
    elif isinstance(exc, (pickle.UnpicklingError, EOFError)):
        cause = ("cannot load %s: its artifact is not a valid cloudpickled "
                 "function (%s)" % (what, detail))
    elif isinstance(exc, (TypeError, AttributeError, ValueError, SystemError,
                          IndexError, KeyError)):
        # What unpickling a function pickled by another Python or
        # cloudpickle version raises: "code() argument 13 must be str",
        # "Can't get attribute '_make_function'", "unsupported pickle
        # protocol", "'str' object does not support item assignment"
        # (ucbrise/clipper#568).
        cause = ("cannot load %s: unpickling its function failed with %s. "
                 "This usually means it was pickled with a different "
                 "Python or cloudpickle version than the replica's (%s); "
                 "deploy it from the same versions."
                 % (what, detail, _versions()))
    else:
        cause = "cannot load %s: %s" % (what, detail)
    return cause[:ERROR_TEXT_MAX], full


# ---------------------------------------------------------------- predict


def convert_inputs(input_type, inputs):
    """Builds the batch the function receives, exactly as Clipper did.

    inputs is a list of bytes objects, one per query, holding the query's
    raw input (little-endian numbers, raw bytes or UTF-8).
    """
    n = len(inputs)
    if input_type == INPUT_STRINGS:
        # Clipper passed strings as bytes (frame.tobytes()), never str:
        # functions written for it call .decode() themselves.
        batch = np.empty(n, dtype=object)
        for i, item in enumerate(inputs):
            batch[i] = bytes(item)
        return batch

    dtype = _DTYPES.get(input_type)
    if dtype is None:
        raise PredictionError("unknown input type %r" % (input_type,))
    size = dtype.itemsize
    for i, item in enumerate(inputs):
        if len(item) % size:
            raise PredictionError(
                "input %d has %d bytes, which is not a whole number of %s "
                "(%d bytes each)" % (i, len(item), _TYPE_NAMES[input_type],
                                     size))

    lengths = set(len(item) for item in inputs)
    if len(lengths) <= 1:
        # One length: a 2-D array (batch, length). Writable, like Clipper's
        # (it was a view of a reused bytearray; ours is fresh per batch).
        width = (lengths.pop() // size) if lengths else 0
        joined = bytearray(b"".join(inputs))
        return np.frombuffer(joined, dtype=dtype).reshape(n, width)

    # Different lengths: an object array of 1-D arrays.
    batch = np.empty(n, dtype=object)
    for i, item in enumerate(inputs):
        batch[i] = np.frombuffer(bytearray(item), dtype=dtype)
    return batch


def check_outputs(outputs, n):
    """Clipper's checks on what the model returned (rpc.py), over every
    output rather than only the first."""
    if not isinstance(outputs, list):
        raise PredictionError("Model did not return a list. Found %s"
                              % type(outputs))
    if len(outputs) != n:
        raise PredictionError(
            "Expected model to return %d outputs, found %d outputs"
            % (n, len(outputs)))
    for i, out in enumerate(outputs):
        if not isinstance(out, str):
            raise PredictionError(
                "Model must return a list of strs. Found %s at index %d"
                % (type(out), i))
    return outputs


def _stringify(preds):
    """Clipper's closure container returned [str(p) for p in func(x)].

    That accepted any iterable; we keep that (numpy arrays, tuples, lists
    of numbers all work as they did) but reject what Clipper turned into
    nonsense or a bare TypeError: a non-iterable, a string or bytes (whose
    characters it would have served one per query), a mapping.
    """
    if isinstance(preds, (str, bytes, bytearray, dict)) or \
            not hasattr(preds, "__iter__"):
        raise PredictionError("Model did not return a list. Found %s"
                              % type(preds))
    return [str(p) for p in preds]


def predict(func, input_type, inputs, coerce=True):
    """Calls func once with the whole batch; returns one str per input.

    coerce=True is Clipper's python-closure behaviour (outputs go through
    str()); coerce=False is the bare RPC contract, where the function must
    itself return a list of str. Raises PredictionError when the outputs
    fail the checks, and lets the model's own exceptions through (the C
    side turns both into an error for the queries of the batch).
    """
    n = len(inputs)
    if n == 0:
        return []
    batch = convert_inputs(input_type, inputs)
    outputs = func(batch)
    if coerce:
        outputs = _stringify(outputs)
    return check_outputs(outputs, n)


def describe_error(exc):
    """Returns (cause, full_traceback or None) for an exception from predict.

    cause is what the queries get back: Clipper's text for a failed output
    check; otherwise the exception's type and message followed by the
    model's innermost frames (this module's own frames left out).
    """
    if isinstance(exc, PredictionError):
        # The traceback would only show this module: the text says it all.
        return str(exc)[:ERROR_TEXT_MAX], None
    full = "".join(traceback.format_exception(type(exc), exc,
                                              exc.__traceback__))
    head = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    # Keep the frames below the last one of this module: the model's own.
    ours = [i for i, f in enumerate(frames)
            if os.path.abspath(f.filename) == _THIS_FILE]
    if ours:
        frames = frames[ours[-1] + 1:]
    cause = head
    if frames:
        cause += "\nTraceback (most recent call last):\n" + "".join(
            traceback.format_list(frames[-ERROR_FRAMES:])).rstrip()
    if len(cause) > ERROR_TEXT_MAX:
        cause = cause[:ERROR_TEXT_MAX - 3] + "..."
    return cause, full
