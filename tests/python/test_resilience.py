"""Resilience end to end: a cluster keeps its state and keeps answering when
nats-server restarts, and when a replica process is killed.

These start their own nats-server (so the test can restart it) and join it
with LocalContainerManager(nats_url=...)."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer

from conftest import Cluster, free_port, nats_server_path, stop_cluster, wait_port


class RestartableNats(object):
    """A nats-server with JetStream whose store outlives restarts."""

    def __init__(self):
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix="pytest-nats-restart-")
        self.proc = None
        self.url = "nats://127.0.0.1:{}".format(self.port)

    def start(self):
        self.proc = subprocess.Popen(
            [nats_server_path(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", self.store],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port)

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self):
        self.kill()
        shutil.rmtree(self.store, ignore_errors=True)


@pytest.fixture
def nats():
    n = RestartableNats()
    n.start()
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def joined(nats):
    cm = LocalContainerManager(cluster_name="pytest-res-{}".format(uuid.uuid4().hex[:6]),
                               clipper_query_port=free_port(),
                               clipper_management_port=free_port(),
                               prometheus_port=free_port(), nats_url=nats.url)
    conn = ClipperConnection(cm)
    conn.start_clipper()
    c = Cluster(conn, cm)
    try:
        yield c
    finally:
        stop_cluster(c)


def wait_for_output(cluster, app, body, want, timeout=20.0):
    """Queries over HTTP until the output is want; returns the seconds it took."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            status, last = cluster.http("/{}/predict".format(app), body, timeout=5)
            if status == 200 and isinstance(last, dict) and last.get("output") == want \
                    and last.get("default") is False:
                return time.monotonic() - t0
        except OSError as e:
            last = repr(e)
        time.sleep(0.1)
    raise AssertionError("{} did not answer {!r} within {} s; last reply {!r}".format(
        app, want, timeout, last))


def test_state_and_serving_survive_a_nats_server_restart(nats, joined):
    app = "res-" + uuid.uuid4().hex[:6]
    python_deployer.create_endpoint(joined.conn, app, "doubles",
                                    lambda xs: [str(sum(x)) for x in xs],
                                    default_output="-1.0", slo_micros=2000000)
    wait_for_output(joined, app, {"input": [1.0, 2.0]}, 3.0, timeout=5)

    nats.kill()
    time.sleep(1.0)
    nats.start()

    # Every actor reconnects; the frontend's and router's state views and the
    # replica come back without any restart of theirs.
    took = wait_for_output(joined, app, {"input": [2.0, 2.0]}, 4.0, timeout=30)
    print("answering again {:.1f} s after nats-server came back".format(took))
    # Each actor reconnects on its own schedule; the admin may be a moment
    # behind the frontend.
    deadline = time.monotonic() + 15
    while True:
        try:
            apps = joined.conn.get_all_apps()
            break
        except Exception:  # noqa: BLE001 - NoResponders until the admin is back
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert app in apps
    assert joined.conn.get_linked_models(app) == [app]

    # Changes made after the restart reach the frontend (its KV watch works
    # again): a new version becomes current and answers.
    python_deployer.deploy_python_closure(joined.conn, app, 2, "doubles",
                                          lambda xs: [str(10 * sum(x)) for x in xs])
    wait_for_output(joined, app, {"input": [2.0, 2.0]}, 40.0, timeout=30)


def replica_pids(cluster, model):
    rows = cluster.conn.get_all_model_replicas(verbose=True)
    return {r["pid"]: r["model_replica_id"] for r in rows
            if r["model_name"] == model and r.get("state") == "ready"}


def test_a_killed_replica_is_replaced_and_queries_keep_answering(joined):
    app = "kill-" + uuid.uuid4().hex[:6]
    python_deployer.create_endpoint(joined.conn, app, "doubles",
                                    lambda xs: [str(len(x)) for x in xs],
                                    default_output="-1.0", slo_micros=2000000)
    wait_for_output(joined, app, {"input": [1.0, 2.0]}, 2, timeout=5)
    before = replica_pids(joined, app)
    assert len(before) == 1
    (pid, rid), = before.items()

    os.kill(pid, signal.SIGKILL)

    deadline = time.monotonic() + 20
    after = {}
    while time.monotonic() < deadline:
        after = {p: r for p, r in replica_pids(joined, app).items() if p != pid}
        if after:
            break
        time.sleep(0.1)
    assert after, "no new replica of {} after the old one was killed".format(app)
    assert rid not in after.values()
    wait_for_output(joined, app, {"input": [1.0, 2.0, 3.0]}, 3, timeout=10)
