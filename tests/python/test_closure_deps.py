"""Closure dependencies: pkgs_to_install, local modules captured with the
function (Clipper #207), and clear load failures (a pip error, a Python or
cloudpickle version mismatch) that fail the deploy within seconds.

The unit tests need no cluster; the cluster tests deploy to real replicas,
which run real pip. Every cluster test that installs something has an
offline variant (a wheel built here with zipfile); the PyPI ones are skipped
when PyPI cannot be reached.
"""
import base64
import hashlib
import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile

import cloudpickle
import pytest

from clipper_admin import ClipperException
from clipper_admin import _modules
from clipper_admin.clipper_admin import validate_pkgs_to_install
from clipper_admin.deployers import python as python_deployer

from conftest import serve_cluster, start_cluster, stop_test_models

RUNTIME_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "actors",
                           "replica", "runtime")


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def pypi_reachable():
    try:
        with socket.create_connection(("pypi.org", 443), timeout=3):
            return True
    except OSError:
        return False


def importable_here(name):
    return subprocess.run([sys.executable, "-c", "import " + name],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def build_wheel(directory, dist, version, files):
    """A minimal pure-Python wheel (a zip with .dist-info/METADATA, WHEEL and
    RECORD): files maps archive paths to their text. Returns its path."""
    path = os.path.join(str(directory), "{}-{}-py3-none-any.whl".format(dist, version))
    info = "{}-{}.dist-info".format(dist, version)
    entries = dict(files)
    entries[info + "/METADATA"] = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n".format(
        dist, version)
    entries[info + "/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: clipper-tests\n"
                                "Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = []
    for name, text in entries.items():
        data = text.encode("utf-8")
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("{},sha256={},{}".format(name, digest, len(data)))
    record.append(info + "/RECORD,,")
    entries[info + "/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in entries.items():
            z.writestr(name, text)
    return path


def write_script(tmp_path, tag):
    """A user's script dir: helpers_<tag>.py (which uses deep_<tag>.py) and
    script_<tag>.py, which imports helpers at the top and defines predict
    using it. Returns the imported script module; tmp_path is on sys.path
    only while importing it."""
    (tmp_path / "deep_{}.py".format(tag)).write_text(textwrap.dedent("""\
        SUFFIX = "-deep"

        def suffix():
            return SUFFIX
        """))
    (tmp_path / "helpers_{}.py".format(tag)).write_text(textwrap.dedent("""\
        import json
        import deep_{tag}

        class Formatter(object):
            def __init__(self, prefix):
                self.prefix = prefix

            def fmt(self, x):
                return self.prefix + json.dumps(float(x)) + deep_{tag}.suffix()

        def f(x):
            return Formatter("h:").fmt(x)
        """.format(tag=tag)))
    (tmp_path / "script_{}.py".format(tag)).write_text(textwrap.dedent("""\
        import numpy as np
        import helpers_{tag} as helpers

        def predict(xs):
            return [helpers.f(np.sum(x)) for x in xs]
        """.format(tag=tag)))
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module("script_{}".format(tag))
    finally:
        sys.path.remove(str(tmp_path))


def forget_modules(tag):
    for name in list(sys.modules):
        if name.endswith("_" + tag):
            del sys.modules[name]


def load_in_fresh_python(data, cwd):
    """Unpickles data in a new python (whose sys.path lacks the script's
    dir) and calls it on [[1.0, 2.0]]: (returncode, output)."""
    code = ("import sys, cloudpickle; f = cloudpickle.loads(sys.stdin.buffer.read()); "
            "print(f([[1.0, 2.0]]))")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    p = subprocess.run([sys.executable, "-c", code], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, cwd=str(cwd), env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace")


# ---- pkgs_to_install validation (no cluster) ---------------------------------

def test_pkgs_to_install_accepts_lists_of_requirement_specs():
    assert validate_pkgs_to_install(None) == []
    assert validate_pkgs_to_install([]) == []
    assert validate_pkgs_to_install(("numpy==1.26.4", " requests>=2 ")) == [
        "numpy==1.26.4", "requests>=2"]
    assert validate_pkgs_to_install(["/tmp/x-1.0-py3-none-any.whl"]) == [
        "/tmp/x-1.0-py3-none-any.whl"]


def test_a_relative_wheel_path_is_sent_absolute(tmp_path, monkeypatch):
    (tmp_path / "w-1.0-py3-none-any.whl").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert validate_pkgs_to_install(["w-1.0-py3-none-any.whl", "numpy"]) == [
        str(tmp_path / "w-1.0-py3-none-any.whl"), "numpy"]


@pytest.mark.parametrize("bad, says", [
    ("numpy", "must be a list of pip requirement strings"),
    ({"numpy": "1"}, "must be a list"),
    (["numpy", 3], "entry 1 (3) is a int, not a str"),
    ([""], "entry 0 ('') is empty"),
    (["  "], "is empty"),
    (["--index-url=http://evil"], "starts with '-'"),
    (["-r", "reqs.txt"], "starts with '-'"),
    (["numpy\n--pre"], "contains a newline"),
    (["x" * 600], "longer than 512 bytes"),
    (["p{}".format(i) for i in range(65)], "at most 64"),
])
def test_pkgs_to_install_refuses_what_is_not_a_requirement(bad, says):
    with pytest.raises(ClipperException) as info:
        validate_pkgs_to_install(bad)
    assert says in str(info.value)


def test_deploy_refuses_bad_pkgs_before_uploading():
    class NoConnection(object):
        def deploy_artifact(self, *a, **k):
            raise AssertionError("must not deploy")

    with pytest.raises(ClipperException, match="starts with '-'"):
        python_deployer.deploy_python_closure(NoConnection(), "m", 1, "doubles",
                                              lambda xs: xs, pkgs_to_install=["-e", "."])


def test_deploy_passes_pkgs_and_the_versions_that_pickled_the_function():
    seen = {}

    class Recorder(object):
        def deploy_artifact(self, *args, **kwargs):
            seen.update(kwargs)

    python_deployer.deploy_python_closure(Recorder(), "m", 1, "doubles", lambda xs: xs,
                                          pkgs_to_install=("a==1", "b"))
    assert seen["pkgs_to_install"] == ["a==1", "b"]
    assert seen["python_version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert seen["cloudpickle_version"] == cloudpickle.__version__


# ---- the local-module detector (no cluster) -----------------------------------

def test_local_modules_next_to_the_script_are_detected_and_installed_ones_are_not(tmp_path):
    tag = uuid.uuid4().hex[:8]
    script = write_script(tmp_path, tag)
    try:
        names = [m.__name__ for m in _modules.local_modules(script.predict)]
        assert set(names) == {"script_" + tag, "helpers_" + tag, "deep_" + tag}, names
        import json as stdlib_json
        import numpy
        assert not _modules.is_local_module(numpy)
        assert not _modules.is_local_module(stdlib_json)
        assert not _modules.is_local_module(sys)
        assert not _modules.is_local_module(cloudpickle)
        assert _modules.is_local_module(sys.modules["helpers_" + tag])

        def uses_installed_only(xs):
            return [str(numpy.sum(x)) + stdlib_json.dumps(1) for x in xs]

        # Only the module it is defined in (this test file, which is local
        # too: its module-level helpers would travel by value).
        assert [m.__name__ for m in _modules.local_modules(uses_installed_only)] == [
            __name__]
        ns = {"__name__": "__main__", "np": numpy}
        exec("def main_func(xs):\n    return [str(np.sum(x)) for x in xs]\n", ns)
        assert _modules.local_modules(ns["main_func"]) == []
    finally:
        forget_modules(tag)


def test_a_function_using_a_local_module_loads_where_that_module_does_not_exist(tmp_path):
    tag = uuid.uuid4().hex[:8]
    script = write_script(tmp_path, tag)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        # Plain cloudpickle pickles script.predict by reference: a python
        # without the script's directory cannot load it. This is what the
        # capture fixes (and what a replica would run into).
        code, out = load_in_fresh_python(cloudpickle.dumps(script.predict), elsewhere)
        assert code != 0 and "No module named 'script_{}'".format(tag) in out, out

        data = python_deployer.serialize_function(script.predict)
        code, out = load_in_fresh_python(data, elsewhere)
        assert code == 0, out
        assert out.strip() == "['h:3.0-deep']"
        # The registrations were only for that dump.
        for name in ("script_", "helpers_", "deep_"):
            assert not _modules.is_registered_by_value(cloudpickle, sys.modules[name + tag])
        # ... and one the caller made stays.
        helpers = sys.modules["helpers_" + tag]
        cloudpickle.register_pickle_by_value(helpers)
        try:
            python_deployer.serialize_function(script.predict)
            assert _modules.is_registered_by_value(cloudpickle, helpers)
        finally:
            cloudpickle.unregister_pickle_by_value(helpers)
    finally:
        forget_modules(tag)


def test_cloudpickle_here_can_pickle_modules_by_value():
    # The capture needs cloudpickle >= 2.0 (register_pickle_by_value).
    assert _modules.cloudpickle_supports_by_value(cloudpickle)
    major, minor = (int(p) for p in cloudpickle.__version__.split(".")[:2])
    assert (major, minor) >= _modules.MIN_CLOUDPICKLE


# ---- the replica runtime's checks and installs (no cluster) -------------------

@pytest.fixture
def runtime(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(os.path.abspath(RUNTIME_DIR))
    monkeypatch.setenv("CLIPPER_PKG_DIR", str(tmp_path / "pkgs"))
    import clipper_runtime
    return clipper_runtime


def test_runtime_refuses_another_python_naming_both_versions(runtime):
    here = "{}.{}.{}".format(*sys.version_info[:3])
    with pytest.raises(runtime.LoadError) as info:
        runtime.check_versions("m", "1", "3.{}.0".format(sys.version_info[1] - 1),
                               cloudpickle.__version__)
    text = str(info.value)
    assert "model m:1 was pickled with Python 3.{}.0 / cloudpickle {}".format(
        sys.version_info[1] - 1, cloudpickle.__version__) in text
    assert "this replica runs Python {} / cloudpickle {}".format(
        here, cloudpickle.__version__) in text
    with pytest.raises(runtime.LoadError, match="cloudpickle 1.6.0"):
        runtime.check_versions("m", "1", here, "1.6.0")
    # Same versions, unknown versions: nothing to say.
    assert runtime.check_versions("m", "1", here, cloudpickle.__version__) == ""
    assert runtime.check_versions("m", "1", "", "") == ""
    # Another cloudpickle minor: a warning, loading is tried.
    major, minor = cloudpickle.__version__.split(".")[:2]
    other = "{}.{}.0".format(major, int(minor) + 1)
    assert "cloudpickle " + other in runtime.check_versions("m", "1", here, other)


def test_runtime_installs_a_wheel_once_and_reuses_it(runtime, tmp_path):
    dist = "clipdeps_unit_{}".format(uuid.uuid4().hex[:8])
    wheel = build_wheel(tmp_path, dist, "1.0", {dist + "/__init__.py": "VALUE = 42\n"})
    target, output = runtime.install_packages([wheel])
    try:
        assert "Successfully installed" in output
        assert sys.path[0] == target
        assert importlib.import_module(dist).VALUE == 42
        assert os.path.exists(os.path.join(target, ".clipper-installed"))
        # A second replica (or a restart) reuses it without running pip.
        again, output2 = runtime.install_packages([wheel])
        assert again == target and output2 == ""
    finally:
        while target in sys.path:
            sys.path.remove(target)
        sys.modules.pop(dist, None)


def test_runtime_pip_failure_names_the_packages_and_quotes_pip(runtime, tmp_path):
    missing = str(tmp_path / "nothere-1.0-py3-none-any.whl")
    with pytest.raises(runtime.LoadError) as info:
        runtime.install_packages([missing])
    cause, full = runtime.describe_load_error(info.value, "m", "1")
    assert cause.startswith("cannot load model m:1: installing packages")
    assert missing in cause and "pip exited with status" in cause
    assert "ERROR:" in cause  # pip's own words
    assert full == info.value.detail  # the whole of pip's output goes to the log
    # Nothing half-installed is left to be reused.
    assert not os.path.exists(os.path.join(runtime.packages_dir([missing]), ".clipper-installed"))


# ---- on a cluster --------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """conftest's cluster, with the replicas' package cache in a temp dir so
    every run really runs pip."""
    old = os.environ.get("CLIPPER_PKG_DIR")
    os.environ["CLIPPER_PKG_DIR"] = str(tmp_path_factory.mktemp("replica-pkgs"))
    try:
        c = start_cluster("deps")
    finally:
        if old is None:
            os.environ.pop("CLIPPER_PKG_DIR", None)
        else:
            os.environ["CLIPPER_PKG_DIR"] = old
    yield from serve_cluster(c)


@pytest.fixture(autouse=True)
def stop_models_after_each_test(request):
    yield
    stop_test_models(request)


def test_pkgs_to_install_from_a_local_wheel_is_installed_before_loading(cluster, tmp_path):
    dist = "clipdeps_shout_{}".format(uuid.uuid4().hex[:8])
    assert not importable_here(dist)
    wheel = build_wheel(tmp_path, dist, "1.0", {
        dist + "/__init__.py": "def shout(x):\n    return 'shout:%g!' % x\n"})
    exec_ns = {}
    # The function imports the package when it is loaded (a module-level
    # import in its own little module), not only when called.
    exec(textwrap.dedent("""\
        def predict(xs):
            import {dist}
            return [{dist}.shout(float(x[0])) for x in xs]
        """.format(dist=dist)), exec_ns)
    app = unique("wheel")
    python_deployer.create_endpoint(cluster.conn, app, "doubles", exec_ns["predict"],
                                    slo_micros=5000000, pkgs_to_install=[wheel])
    reply = answer(cluster, app, {"input": [2.5]})
    assert reply["output"] == "shout:2.5!", reply
    status, reply = cluster.http("/{}/predict".format(app), {"input": [4.0]})
    assert status == 200 and reply["output"] == "shout:4!"
    # get_model keeps Clipper's shape.
    assert "pkgs_to_install" not in cluster.conn.get_model_info(app, 1)


def test_pkgs_to_install_from_pypi(cluster):
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable from this machine")
    assert not importable_here("pyfiglet"), "pyfiglet must not be installed here"

    def banner(xs):
        import pyfiglet
        return [str(len(pyfiglet.figlet_format("hi"))) + ":" + pyfiglet.__version__
                for _ in xs]

    app = unique("pypi")
    python_deployer.create_endpoint(cluster.conn, app, "doubles", banner,
                                    slo_micros=5000000, pkgs_to_install=["pyfiglet==1.0.2"])
    out = answer(cluster, app, {"input": [1.0]})["output"]
    assert out.endswith(":1.0.2") and int(out.split(":")[0]) > 10, out


def answer(cluster, app, body, timeout_s=5.0):
    """The reply over NATS, asking again while it is the "no model" default
    (the frontend sees a new link through its KV watch, a moment after
    create_endpoint returns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = cluster.nats(app, body)
        if not (reply.get("default") and "No connected models" in
                str(reply.get("default_explanation"))) or time.monotonic() > deadline:
            return reply
        time.sleep(0.05)


def _still_serves(cluster):
    app = unique("alive")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: ["alive"] * len(xs), slo_micros=5000000)
    assert answer(cluster, app, {"input": [1.0]})["output"] == "alive"


def test_a_package_pip_cannot_install_fails_the_deploy_quickly(cluster, tmp_path):
    missing = str(tmp_path / "clipdeps_nothere-1.0-py3-none-any.whl")
    start = time.monotonic()
    with pytest.raises(ClipperException) as info:
        python_deployer.deploy_python_closure(cluster.conn, unique("nopkg"), 1, "doubles",
                                              lambda xs: ["x"] * len(xs),
                                              pkgs_to_install=[missing])
    took = time.monotonic() - start
    text = str(info.value)
    assert took < 60, took
    assert missing in text and "pip exited with status" in text and "ERROR:" in text, text
    _still_serves(cluster)


def test_a_package_that_does_not_exist_on_pypi_fails_the_deploy_naming_it(cluster):
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable from this machine")
    name = "clipper-no-such-package-{}".format(uuid.uuid4().hex[:8])
    start = time.monotonic()
    with pytest.raises(ClipperException) as info:
        python_deployer.deploy_python_closure(cluster.conn, unique("nopypi"), 1, "doubles",
                                              lambda xs: ["x"] * len(xs),
                                              pkgs_to_install=[name])
    assert time.monotonic() - start < 60
    text = str(info.value)
    assert name in text and "No matching distribution found" in text, text
    _still_serves(cluster)


def test_a_local_module_next_to_the_script_is_deployed_with_the_function(cluster, tmp_path):
    tag = uuid.uuid4().hex[:8]
    script = write_script(tmp_path, tag)
    try:
        # The replica's Python has none of these modules.
        for name in ("script_", "helpers_", "deep_"):
            assert not importable_here(name + tag)
        app = unique("local")
        python_deployer.create_endpoint(cluster.conn, app, "doubles", script.predict,
                                        slo_micros=5000000)
        reply = answer(cluster, app, {"input": [1.0, 2.0]})
        assert reply["output"] == "h:3.0-deep", reply
    finally:
        forget_modules(tag)


def test_an_artifact_pickled_by_another_python_fails_at_once_naming_both(cluster):
    here = "{}.{}.{}".format(*sys.version_info[:3])
    other = "3.{}.2".format(sys.version_info[1] - 1)
    data = python_deployer.serialize_function(lambda xs: ["x"] * len(xs))
    name = unique("skew")
    start = time.monotonic()
    with pytest.raises(ClipperException) as info:
        cluster.conn.deploy_artifact(name, "1", "doubles", data, "python-closure",
                                     python_version=other,
                                     cloudpickle_version=cloudpickle.__version__)
    assert time.monotonic() - start < 20
    text = str(info.value)
    assert "model {}:1 was pickled with Python {} / cloudpickle {}".format(
        name, other, cloudpickle.__version__) in text, text
    assert "this replica runs Python {} / cloudpickle {}".format(
        here, cloudpickle.__version__) in text, text


def test_an_artifact_pickled_by_another_cloudpickle_major_fails_naming_it(cluster):
    data = python_deployer.serialize_function(lambda xs: ["x"] * len(xs))
    name = unique("cpskew")
    here = "{}.{}.{}".format(*sys.version_info[:3])
    with pytest.raises(ClipperException) as info:
        cluster.conn.deploy_artifact(name, "1", "doubles", data, "python-closure",
                                     python_version=here, cloudpickle_version="1.6.0")
    assert "/ cloudpickle 1.6.0, this replica runs Python {} / cloudpickle {}".format(
        here, cloudpickle.__version__) in str(info.value)
