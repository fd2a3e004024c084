"""Fixtures for the clipper_admin tests.

* nats_url: a throwaway nats-server with JetStream on a free port in a temp
  dir, killed after the test.
* cluster: a real cluster started through LocalContainerManager(nats_url=None)
  on free ports (never 1337, 1338 or 4222), shared by a module's tests and
  always stopped, after which no process of it may remain.
* fresh_cluster: the same, for one test.

The package under test is the one meson built (PYTHONPATH=<builddir>/deployers);
CLIPPER_BIN names the built `clipper` program.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

from clipper_admin.local_container_manager import _alive, _descendants, _free_port

# The package's own helpers: a port nothing listens on, and a process with
# its descendants as {pid: starttime} (starttime tells a reused pid apart).
free_port = _free_port
process_tree = _descendants


def nats_server_path():
    for p in (os.environ.get("NATS_SERVER"), shutil.which("nats-server"),
              "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if p and os.access(p, os.X_OK):
            return p
    pytest.skip("nats-server is not installed")


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError("nothing listens on port {} after {} s".format(port, timeout))


@pytest.fixture
def nats_url():
    port = free_port()
    store = tempfile.mkdtemp(prefix="pytest-nats-")
    proc = subprocess.Popen(
        [nats_server_path(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
        yield "nats://127.0.0.1:{}".format(port)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(store, ignore_errors=True)


def clipper_bin_or_skip():
    path = os.environ.get("CLIPPER_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("the clipper program is not built ({})".format(path))
    return path


# ---- processes --------------------------------------------------------------

def wait_until(what, cond, timeout=60.0, interval=0.2):
    """cond()'s first true value, polled every interval; AssertionError
    naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after {:.0f} s waiting for {}".format(timeout,
                                                                                  what))
        time.sleep(interval)


def alive(procs):
    """The pids of procs (a process_tree) that still run."""
    return [pid for pid, start in procs.items() if _alive(pid, start)]


def cmdline(pid):
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def processes_mentioning(text):
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and int(e) != os.getpid() and text in cmdline(int(e))]


# ---- clusters ---------------------------------------------------------------

class Cluster(object):
    """A started cluster: conn (ClipperConnection), cm, and helpers."""

    def __init__(self, conn, cm):
        self.conn = conn
        self.cm = cm

    @property
    def query_addr(self):
        return self.cm.get_query_addr()

    def http(self, path, body, content_type="application/json", timeout=30):
        """POST body (bytes or JSON-able) to the query frontend; (status, parsed)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request("http://{}{}".format(self.query_addr, path), data=data,
                                     headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        try:
            return status, json.loads(text.decode())
        except ValueError:
            return status, text.decode("utf-8", "replace")

    def nats(self, app, body, timeout_ms=30000):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return json.loads(self.cm.bus.predict(app, data, timeout_ms).decode())


def start_cluster(tag, cm_args=None, **start_args):
    """A cluster started with ClipperConnection.start_clipper(**start_args);
    cm_args are more LocalContainerManager arguments (TLS, token files)."""
    clipper_bin_or_skip()
    from clipper_admin import ClipperConnection, LocalContainerManager
    name = "pytest-{}-{}".format(tag, uuid.uuid4().hex[:8])
    cm = LocalContainerManager(cluster_name=name, clipper_query_port=free_port(),
                               clipper_management_port=free_port(),
                               prometheus_port=free_port(), nats_url=None, **(cm_args or {}))
    conn = ClipperConnection(cm)
    try:
        conn.start_clipper(**start_args)
    except BaseException:
        conn.stop_all(graceful=False)
        raise
    return Cluster(conn, cm)


def stop_cluster(cluster):
    """Stops the cluster and checks that nothing of it is left."""
    cm = cluster.cm
    tree = process_tree(cm._pid) if cm._pid else {}
    run_dir = os.path.dirname(cm.log_file) if cm.log_file else None
    cluster.conn.stop_all(graceful=True)
    deadline = time.monotonic() + 5
    while alive(tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = alive(tree)
    stray = processes_mentioning(run_dir) if run_dir else []
    for pid in set(left) | set(stray):  # never leave them, even on failure
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, "processes left after stop_all: {}".format(
        [(p, cmdline(p)) for p in left])
    assert not stray, "processes of the cluster's run dir left: {}".format(
        [(p, cmdline(p)) for p in stray])
    return tree


def dump_logs(cluster):
    """Prints the tail of the cluster's logs (shown by pytest on failure)."""
    try:
        logdir = tempfile.mkdtemp(prefix="pytest-clipper-logs-")
        for path in cluster.conn.get_clipper_logs(logdir):
            with open(path, "rb") as f:
                tail = f.read()[-4000:].decode("utf-8", "replace")
            print("==== {} ====\n{}".format(os.path.basename(path), tail))
        shutil.rmtree(logdir, ignore_errors=True)
    except Exception as e:  # noqa: BLE001 - diagnostics only
        print("cannot read the cluster's logs: {}".format(e))


def serve_cluster(c):
    """Yields a started cluster, then prints its logs and stops it (fixtures)."""
    try:
        yield c
    finally:
        dump_logs(c)
        stop_cluster(c)


def stop_test_models(request, unregister_apps=False):
    """After a test using the module's shared `cluster`: stops every model
    it deployed (and unregisters its apps), so the cluster stays small."""
    if "cluster" not in request.fixturenames:
        return
    c = request.getfixturevalue("cluster")
    try:
        names = sorted({m.split(":")[0] for m in c.conn.get_all_models()})
        if names:
            c.conn.stop_models(names)
        if unregister_apps:
            for app in c.conn.get_all_apps():
                c.conn.unregister_application(app)
    except Exception as e:  # noqa: BLE001 - housekeeping, reported not failed
        print("could not clean up after {}: {}".format(request.node.name, e))


@pytest.fixture(scope="module")
def cluster():
    yield from serve_cluster(start_cluster("mod"))


@pytest.fixture
def fresh_cluster():
    yield from serve_cluster(start_cluster("one"))
