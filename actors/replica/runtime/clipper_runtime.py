"""The model runtime that runs inside the replica's embedded CPython.

The C side (actors/replica/py.c) imports this module once and calls:

* ``check_versions(...)`` before anything else, to refuse an artifact pickled
  by another Python or cloudpickle with a message naming both;
* ``install_packages(pkgs)`` when the model version has pkgs_to_install
  (pip, in a child process, into a cached per-package-list directory that
  then goes first on sys.path);
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

import fcntl
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
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
RUNTIME_PYSPARK = "pyspark"

# How many of the model's innermost stack frames go into the error text
# sent back with the queries (the log gets the whole traceback).
ERROR_FRAMES = 3
# Cap on the error text sent back with each query.
ERROR_TEXT_MAX = 4000

_THIS_FILE = os.path.abspath(__file__)


class PredictionError(Exception):
    """The model returned something Clipper would have rejected."""


class LoadError(Exception):
    """The artifact could not be turned into a callable; str() is the cause.

    detail, when set, is what goes to the log instead of a traceback (pip's
    whole output, for instance)."""

    def __init__(self, cause, detail=None):
        Exception.__init__(self, cause)
        self.detail = detail


# ---------------------------------------------------------------- versions


def _major_minor(text):
    """(major, minor) of a version text like "3.11.7" or "2.1.0", or None."""
    parts = str(text or "").split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or "x")
    except (ValueError, IndexError):
        return None


def _cloudpickle_version():
    try:
        import cloudpickle
        return cloudpickle.__version__
    except Exception:  # noqa: BLE001 - only for messages and checks
        return "unknown"


def version_mismatch_text(model, version, python_version, cloudpickle_version):
    """The message for an artifact pickled by other versions than ours."""
    what = "model %s:%s" % (model, version) if model else "the model"
    return ("%s was pickled with Python %s / cloudpickle %s, this replica runs "
            "Python %d.%d.%d / cloudpickle %s; deploy from matching versions (or run "
            "replicas with that Python, CLIPPER_PYTHON_HOME)"
            % (what, python_version or "unknown", cloudpickle_version or "unknown",
               sys.version_info[0], sys.version_info[1], sys.version_info[2],
               _cloudpickle_version()))


def check_versions(model, version, python_version, cloudpickle_version):
    """Compares the versions the artifact was pickled with to ours.

    Raises LoadError for a different Python major.minor (code objects do
    not load, or worse, load with the wrong bytecode) or a different
    cloudpickle major version. Returns a warning text ("" when none) for a
    different cloudpickle minor version: those often load, so loading is
    tried and a failure then names the versions (see load_model). Empty
    recorded versions (deployed by an older client) are not checked.
    """
    py = _major_minor(python_version)
    if py is not None and py != tuple(sys.version_info[:2]):
        raise LoadError("cannot load: " + version_mismatch_text(
            model, version, python_version, cloudpickle_version))
    cp = _major_minor(cloudpickle_version)
    ours = _major_minor(_cloudpickle_version())
    if cp is not None and ours is not None and cp != ours:
        if cp[0] != ours[0]:
            raise LoadError("cannot load: " + version_mismatch_text(
                model, version, python_version, cloudpickle_version))
        return ("%s; trying to load it anyway (a different cloudpickle minor "
                "version often works)" % version_mismatch_text(
                    model, version, python_version, cloudpickle_version))
    return ""


def _differs(python_version, cloudpickle_version):
    """Whether recorded versions differ from ours (micro Python versions
    and cloudpickle patch versions included)."""
    ours_py = "%d.%d.%d" % tuple(sys.version_info[:3])
    return bool((python_version and python_version != ours_py) or
                (cloudpickle_version and cloudpickle_version != _cloudpickle_version()))


# ---------------------------------------------------------------- packages

PIP_TIMEOUT_S = 300.0
# The lines of pip's output quoted in a failure's cause (all go to the log).
PIP_TAIL_LINES = 4
_STAMP = ".clipper-installed"


def pip_python():
    """The python executable to run pip with: the one this interpreter is.

    The replica embeds libpython with home = sys.base_prefix, so that
    prefix's bin/python<major>.<minor> is the same build with the same
    site-packages (sys.executable and sys._base_executable name the
    embedding program, not a python). CLIPPER_PIP_PYTHON overrides it.
    """
    env = os.environ.get("CLIPPER_PIP_PYTHON")
    if env:
        if not os.access(env, os.X_OK):
            raise LoadError("CLIPPER_PIP_PYTHON=%s is not an executable file" % env)
        return env
    major, minor = sys.version_info[:2]
    for name in ("python%d.%d" % (major, minor), "python%d" % major):
        path = os.path.join(sys.base_prefix, "bin", name)
        if os.access(path, os.X_OK):
            return path
    raise LoadError(
        "cannot install packages: the replica's Python home %s has no "
        "bin/python%d.%d to run pip with (set CLIPPER_PIP_PYTHON)"
        % (sys.base_prefix, major, minor))


def packages_dir(pkgs):
    """The directory the package list pkgs is installed into.

    Keyed by a hash of the list and of this Python's major.minor (a wheel
    is built for one Python), so replicas of versions with the same list,
    on one host, share one install. Under CLIPPER_PKG_DIR, else a directory
    of this user's under the temporary directory.
    """
    # Imported here: hashlib loads OpenSSL, which a replica without
    # packages has no need for (and whose allocations live until exit).
    import hashlib

    base = os.environ.get("CLIPPER_PKG_DIR") or os.path.join(
        tempfile.gettempdir(), "clipper-%d" % os.getuid(), "pkgs")
    key = json.dumps({"python": "%d.%d" % tuple(sys.version_info[:2]),
                      "pkgs": list(pkgs)}, sort_keys=True)
    return os.path.join(base, hashlib.sha256(key.encode("utf-8")).hexdigest()[:32])


def _pip_error_lines(text, n, width=300):
    """pip's last lines that say what went wrong: its "ERROR:" lines when
    it printed some (the retries and warnings before them are noise), else
    its last n lines; each cut to width characters."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    chosen = (errors or lines)[-n:]
    return "\n".join(ln if len(ln) <= width else ln[:width - 3] + "..." for ln in chosen)


def _run_pip(python, target, pkgs, timeout_s):
    """Runs pip; returns (returncode or None on timeout, output text)."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check",
           "--no-input", "--no-warn-script-location", "--target", target]
    cmd += list(pkgs)
    env = dict(os.environ)
    # The child is a plain python: the replica's own PYTHONPATH/PYTHONHOME
    # (the embedded one ignores them) must not change what pip runs on.
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(name, None)
    env.setdefault("PIP_ROOT_USER_ACTION", "ignore")  # a replica may run as root
    # pip stays in the replica's process group, so a container manager
    # that stops the replica's group stops pip with it.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out.decode("utf-8", "replace")


def install_packages(pkgs, timeout_s=None):
    """Installs the pip requirement specs pkgs for this replica.

    pip runs as a child process (`python -m pip install --target DIR ...`,
    which installs into DIR only and so is allowed even in an "externally
    managed" Python) with a timeout (CLIPPER_PIP_TIMEOUT_S, default 300 s).
    DIR is shared by every replica of the same list on this host: an flock
    on DIR.lock lets one install while the others wait, and a stamp file
    marks a finished install, so a restarted replica does not run pip again.
    DIR then goes first on sys.path.

    Returns (dir, output): pip's output, or "" when the install was reused.
    Raises LoadError naming the packages and quoting pip's last lines.
    """
    pkgs = [str(p) for p in pkgs]
    if timeout_s is None:
        try:
            timeout_s = float(os.environ.get("CLIPPER_PIP_TIMEOUT_S") or PIP_TIMEOUT_S)
        except ValueError:
            timeout_s = PIP_TIMEOUT_S
    target = packages_dir(pkgs)
    listed = json.dumps(pkgs)
    if len(listed) > 300:
        listed = listed[:297] + "..."
    what = "installing packages %s" % listed
    try:
        base = os.path.dirname(target)
        os.makedirs(base, mode=0o700, exist_ok=True)
        lock = os.open(target + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise LoadError("%s failed: cannot create the package directory %s: %s"
                        % (what, target, e))
    output = ""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(target, _STAMP)):
            shutil.rmtree(target, ignore_errors=True)  # a partial install
            code, output = _run_pip(pip_python(), target, pkgs, timeout_s)
            if code != 0:
                shutil.rmtree(target, ignore_errors=True)
                if code is None:
                    how = "pip did not finish within %g s (CLIPPER_PIP_TIMEOUT_S)" % timeout_s
                else:
                    how = "pip exited with status %d" % code
                raise LoadError("%s failed: %s:\n%s" % (
                    what, how, _pip_error_lines(output, PIP_TAIL_LINES)), detail=output)
            with open(os.path.join(target, _STAMP), "w") as f:
                json.dump(pkgs, f)
    except OSError as e:
        raise LoadError("%s failed: %s" % (what, e))
    finally:
        os.close(lock)  # releases the lock
    if target not in sys.path:
        sys.path.insert(0, target)
    return target, output


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


def load_model(runtime, data, tmp_dir=None, deployed_with=None):
    """Turns the artifact of a model version into the callable to serve.

    runtime is the model entry's "runtime" ("" means python-closure).
    deployed_with, when given, is (model, version, python_version,
    cloudpickle_version) as the model entry records them: when unpickling
    fails (other than for a missing module) and those differ from ours,
    the error names both versions rather than the bare exception.
    """
    if runtime in ("", RUNTIME_PYTHON_CLOSURE):
        try:
            return load_closure(data, tmp_dir)
        except (LoadError, ImportError):
            raise
        except Exception as e:  # noqa: BLE001 - re-raised with the versions
            if deployed_with and _differs(deployed_with[2], deployed_with[3]):
                detail = "".join(traceback.format_exception_only(type(e), e)).strip()
                raise LoadError("cannot load: %s (unpickling failed with %s)" % (
                    version_mismatch_text(*deployed_with), detail)) from e
            raise
    if runtime == RUNTIME_PYSPARK:
        return load_pyspark(data, tmp_dir)
    raise LoadError(
        "unknown runtime '%s': this replica serves '%s' and '%s' models"
        % (runtime, RUNTIME_PYTHON_CLOSURE, RUNTIME_PYSPARK))


# ---------------------------------------------------------------- pyspark

PYSPARK_MODEL_DIR = "pyspark_model_data"


def _extract_artifact(data, into):
    """Unpacks the pyspark artifact (a gzip'd tar) into the directory into,
    refusing members that are not plain files or directories or that would
    land outside it."""
    import io
    import tarfile

    root = os.path.realpath(into)
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                dest = os.path.realpath(os.path.join(root, m.name))
                if not (m.isfile() or m.isdir()) or \
                        os.path.commonpath([root, dest]) != root:
                    raise LoadError("the pyspark artifact holds a member that is not a "
                                    "plain file inside it: %r" % m.name)
            tar.extractall(root, members=members)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise LoadError("the pyspark artifact is not a readable gzip'd tar: %s" % e) from e
    for need in ("func.pkl", "metadata.json", PYSPARK_MODEL_DIR):
        if not os.path.exists(os.path.join(root, need)):
            raise LoadError("the pyspark artifact has no %s" % need)


def _first_line(exc):
    """The first line of an exception's text (Spark's Java traces are long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def spark_session(app_name):
    """One SparkSession in local mode for the replica's life. The master is
    CLIPPER_SPARK_MASTER (default local[1]); the web UI is off, so replicas
    on one host do not fight over its port."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise LoadError("the pyspark runtime needs a Java runtime: there is no 'java' on "
                        "PATH and JAVA_HOME is not set (install default-jre-headless)")
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise LoadError("the pyspark runtime needs pyspark in the replica's Python (%s): %s"
                        % (sys.executable or sys.prefix, e)) from e
    # The JVM is not ours: a sanitizer runtime preloaded into this process
    # (tests under ASan) must not be preloaded into it.
    preload = os.environ.pop("LD_PRELOAD", None)
    try:
        spark = (SparkSession.builder
                 .master(os.environ.get("CLIPPER_SPARK_MASTER", "local[1]"))
                 .appName(app_name)
                 .config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false")
                 .config("spark.sql.shuffle.partitions", "1")
                 .getOrCreate())
    except Exception as e:  # noqa: BLE001 - py4j and Spark raise many kinds
        raise LoadError("cannot start a SparkSession: %s" % _first_line(e)) from e
    finally:
        if preload is not None:
            os.environ["LD_PRELOAD"] = preload
    spark.sparkContext.setLogLevel(os.environ.get("CLIPPER_SPARK_LOG_LEVEL", "ERROR"))
    return spark


def _model_class(name):
    import importlib

    module, _, attr = name.rpartition(".")
    try:
        cls = importlib.import_module(module)
        for part in attr.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError, ValueError) as e:
        raise LoadError("cannot import the model's class %s in the replica's Python: %s"
                        % (name, e)) from e
    if not hasattr(cls, "load"):
        raise LoadError("the model's class %s has no load()" % name)
    return cls


def load_pyspark(data, tmp_dir=None):
    """The pyspark runtime: unpacks the artifact, starts the SparkSession,
    loads the model once with its class's load, and returns the callable
    that serves a batch: func(spark, model, inputs)."""
    import atexit

    work = tempfile.mkdtemp(prefix="clipper-pyspark-", dir=tmp_dir)
    atexit.register(shutil.rmtree, work, True)
    _extract_artifact(data, work)
    try:
        with open(os.path.join(work, "metadata.json")) as f:
            meta = json.load(f)
        model_class = meta["model_class"]
        api = meta.get("api", "ml")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LoadError("the pyspark artifact's metadata.json is not valid: %s" % e) from e
    with open(os.path.join(work, "func.pkl"), "rb") as f:
        func = load_closure(f.read(), work)
    cls = _model_class(model_class)
    spark = spark_session("clipper-replica")
    path = os.path.join(work, PYSPARK_MODEL_DIR)
    try:
        model = cls.load(spark.sparkContext, path) if api == "mllib" else cls.load(path)
    except Exception as e:  # noqa: BLE001 - Spark's errors are many kinds
        raise LoadError("cannot load the PySpark model with %s.load: %s"
                        % (model_class, _first_line(e))) from e

    def serve(inputs):
        return func(spark, model, inputs)

    serve.spark = spark
    serve.model = model
    return serve


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
        text = str(exc)
        cause = text if text.startswith("cannot load") \
            else "cannot load %s: %s" % (what, text)
        if exc.detail:
            full = exc.detail
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
