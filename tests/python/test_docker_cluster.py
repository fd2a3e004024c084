"""DockerContainerManager end to end against a real container engine (the
podman service of images/engine.sh, or any Docker engine DOCKER_HOST names)
and the project's images (bash images/build.sh).

Nothing is mocked: clusters are real containers on real bridge networks,
their replicas are containers the manager actor makes through the engine's
REST API. Each cluster has a unique name, its own network and free host
ports, and is removed (with anything a test started by hand) even when the
test fails.

Without an engine these tests fail, saying so; env CLIPPER_TEST_NO_ENGINE=1
skips them instead.
"""
import http.client
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from clipper_admin import ClipperConnection, ClipperException, DockerContainerManager
from clipper_admin._bus import MAX_PAYLOAD, Bus, BusError
from clipper_admin.container_manager import (CLIPPER_DOCKER_LABEL,
                                             CLIPPER_MODEL_CONTAINER_LABEL)
from clipper_admin.deployers import python as python_deployer
from clipper_admin.docker_container_manager import (DEFAULT_CLIPPER_IMAGE,
                                                    DEFAULT_REPLICA_IMAGE, list_containers)

from conftest import (Cluster, cmdline, dump_logs, free_port, processes_mentioning,
                      wait_until)

RUN = uuid.uuid4().hex[:6]        # this test run
# The images under test (DockerContainerManager's defaults, or the env
# variables it reads).
CLIPPER_IMAGE = os.environ.get("CLIPPER_IMAGE") or DEFAULT_CLIPPER_IMAGE
REPLICA_IMAGE = os.environ.get("CLIPPER_REPLICA_IMAGE") or DEFAULT_REPLICA_IMAGE
HAND_LABEL = "ai.clipper.pytest.run"  # on containers a test starts by hand
# The clusters' secrets (data_dir): one directory for this run (made by the
# first start_clipper, removed with the engine fixture), instead of
# ~/.clipper/docker.
DATA_HOME = os.path.join(tempfile.gettempdir(), "pytest-dk-secrets-" + RUN)


# ---- the engine -------------------------------------------------------------

def _engine_default():
    """DOCKER_HOST, or the socket images/engine.sh serves by default."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    sock = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "clipper-engine",
                        "podman.sock")
    if os.path.exists(sock):
        os.environ["DOCKER_HOST"] = "unix://" + sock
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


@pytest.fixture(scope="module")
def engine():
    """The docker SDK client; fails (or skips with CLIPPER_TEST_NO_ENGINE=1)
    when no engine answers or the images are missing."""
    if os.environ.get("CLIPPER_TEST_NO_ENGINE") == "1":
        pytest.skip("CLIPPER_TEST_NO_ENGINE=1: no container engine for these tests")
    host = _engine_default()
    try:
        import docker
    except ImportError:
        pytest.fail("the Python package 'docker' is not installed (bash .ci/setup "
                    "installs it); set CLIPPER_TEST_NO_ENGINE=1 to skip these tests")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # noqa: BLE001
        pytest.fail("no container engine answers at DOCKER_HOST={} ({}); start one with "
                    "`export \"$(bash images/engine.sh)\"`, or set CLIPPER_TEST_NO_ENGINE=1 "
                    "to skip these tests".format(host, e))
    for image in (CLIPPER_IMAGE, REPLICA_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail("the image {} is missing from the engine at {}; build it with "
                        "`bash images/build.sh`".format(image, host))
    yield client
    # Whatever a failed test left behind.
    for c in client.containers.list(all=True, filters={"label": HAND_LABEL + "=" + RUN}):
        c.remove(force=True)
    client.close()
    shutil.rmtree(DATA_HOME, ignore_errors=True)


def labelled(engine, cluster_name, *labels, running=False):
    filters = ["{}={}".format(CLIPPER_DOCKER_LABEL, cluster_name)] + list(labels)
    return list_containers(engine, not running, {"label": filters})


def replicas_of(engine, cluster_name, model, version, running=True):
    label = "{}={}_{}".format(CLIPPER_MODEL_CONTAINER_LABEL, model, version)
    return labelled(engine, cluster_name, label, running=running)



def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def new_manager(tag, network=None, **kw):
    name = "pytest-dk-{}-{}-{}".format(tag, RUN, uuid.uuid4().hex[:4])
    q, m, r, p = free_ports(4)
    args = dict(cluster_name=name, clipper_query_port=q, clipper_management_port=m,
                clipper_rpc_port=r, prometheus_port=p,
                docker_network=network or name + "-net",
                data_dir=os.path.join(DATA_HOME, name))
    args.update(kw)
    return DockerContainerManager(**args)


def remove_everything(engine, cm):
    """Best-effort removal of a cluster's containers and network."""
    for c in labelled(engine, cm.cluster_name):
        try:
            c.remove(force=True)
        except Exception:  # noqa: BLE001
            pass
    for n in engine.networks.list(names=[cm.docker_network]):
        labels = n.attrs.get("Labels") or {}
        if n.name == cm.docker_network and labels.get(CLIPPER_DOCKER_LABEL) == cm.cluster_name:
            try:
                n.remove()
            except Exception:  # noqa: BLE001
                pass


class Clusters(object):
    """Starts clusters; at the end prints their logs when a test failed
    meanwhile, and removes them, even after a failure."""

    def __init__(self, engine, request):
        self.engine = engine
        self.session = request.session
        self.failed_before = request.session.testsfailed
        self.started = []

    def start(self, tag, network=None, **kw):
        cm = new_manager(tag, network, **kw)
        conn = ClipperConnection(cm)
        self.started.append(Cluster(conn, cm))
        t0 = time.monotonic()
        conn.start_clipper()
        print("start_clipper() of {} took {:.2f} s".format(cm.cluster_name,
                                                          time.monotonic() - t0))
        return self.started[-1]

    def close(self):
        for c in reversed(self.started):
            if self.session.testsfailed > self.failed_before:
                dump_logs(c)
            try:
                c.conn.stop_all(graceful=False)
            finally:
                remove_everything(self.engine, c.cm)
                shutil.rmtree(c.cm.data_dir, ignore_errors=True)


@pytest.fixture
def clusters(engine, request):
    cs = Clusters(engine, request)
    try:
        yield cs
    finally:
        cs.close()


@pytest.fixture(scope="module")
def cluster(engine, request):
    """One cluster shared by the module's tests, on Clipper's defaults
    (docker_ip_address "localhost") but its own network and free ports."""
    cs = Clusters(engine, request)
    try:
        yield cs.start("mod")
    finally:
        cs.close()


def secret(cm, *parts):
    return os.path.join(cm.data_dir, "secrets", *parts)


def hand_replica(engine, cluster, model, version):
    """A replica container started by hand with only the NATS URL, the
    prefix, the model's name and version (no Clipper label), and the
    replica identity and the CA mounted as the manager mounts them."""
    cm = cluster.cm
    return engine.containers.run(
        REPLICA_IMAGE,
        ["clipper", "run", "replica", "--nats", "tls://{}-nats:4222".format(cm.cluster_name),
         "--prefix", cm.prefix, "--model", model, "--version", str(version),
         "--creds", "/run/clipper/creds/replica.creds", "--tls-ca", "/run/clipper/ca.pem"],
        name="{}-byhand-{}".format(cm.cluster_name, uuid.uuid4().hex[:4]),
        network=cm.docker_network, detach=True, labels={HAND_LABEL: RUN},
        volumes={secret(cm, "creds", "replica.creds"): {
                     "bind": "/run/clipper/creds/replica.creds", "mode": "ro"},
                 secret(cm, "ca.pem"): {"bind": "/run/clipper/ca.pem", "mode": "ro"}})


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def http_predict(cluster, app, x, timeout=10):
    data = json.dumps({"input": x}).encode()
    req = urllib.request.Request("http://{}/{}/predict".format(cluster.query_addr, app),
                                 data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def first_answer(cluster, app, x, timeout):
    """The first non-default HTTP reply of app to x (the frontend learns of
    a new link a moment after the deploy)."""
    return wait_until("a non-default answer", lambda: (
        lambda r: r if r[0] == 200 and r[1].get("default") is False else None)(
            http_predict(cluster, app, x)), timeout=timeout)[1]


def endpoint(cluster, app, func=lambda xs: [str(sum(x)) for x in xs], replicas=1):
    cluster.conn.register_application(app, "doubles", "-1.0", 3000000)
    python_deployer.deploy_python_closure(cluster.conn, app, 1, "doubles", func,
                                          num_replicas=replicas)
    cluster.conn.link_model_to_app(app, app)


# ---- start, deploy, query ------------------------------------------------------

def test_start_labels_the_cluster_like_clipper(engine, cluster):
    cm = cluster.cm
    got = {c.labels["ai.clipper.name"]: c for c in labelled(engine, cm.cluster_name,
                                                            running=True)}
    assert sorted(got) == ["admin", "frontend", "manager", "nats", "router"]
    for role, c in got.items():
        assert c.name == "{}-{}".format(cm.cluster_name, role)
        assert c.labels["ai.clipper.query_frontend.query.port"] == str(cm.clipper_query_port)
        assert c.labels["ai.clipper.management.port"] == str(cm.clipper_management_port)
        assert c.labels["ai.clipper.query_frontend.rpc.port"] == str(cm.clipper_rpc_port)
        assert c.labels["ai.clipper.metric.port"] == str(cm.prometheus_port)
        assert list(c.attrs["NetworkSettings"]["Networks"]) == [cm.docker_network]
    assert "ai.clipper.query_frontend.label" in got["frontend"].labels
    assert "ai.clipper.management_frontend.label" in got["admin"].labels
    assert cm.get_query_addr() == "localhost:{}".format(cm.clipper_query_port)
    assert cm.get_admin_addr() == "localhost:{}".format(cm.clipper_management_port)
    assert cm.get_metric_addr() == "localhost:{}".format(cm.prometheus_port)
    # Clipper's management REST and the metrics answer on the published ports;
    # the REST (it deploys code) with the token start_clipper made for it.
    with open(cm.admin_token_file()) as f:
        token = f.readline().strip()
    assert cm.admin_token_file() == os.path.join(cm.data_dir, "admin.token")
    assert len(token) == 64 and os.stat(cm.admin_token_file()).st_mode & 0o077 == 0
    ping = "http://{}/admin/ping".format(cm.get_admin_addr())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(ping, timeout=10)
    assert e.value.code == 401
    req = urllib.request.Request(ping, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and r.read() == b"PONG"
    with urllib.request.urlopen("http://{}/metrics".format(cm.get_metric_addr()),
                                timeout=10) as r:
        assert r.status == 200


def test_deploy_a_closure_and_query_it_over_http_and_nats(engine, cluster):
    app = unique("sum")
    cluster.conn.register_application(app, "doubles", "-1.0", 3000000)
    t0 = time.monotonic()
    python_deployer.deploy_python_closure(cluster.conn, app, 1, "doubles",
                                          lambda xs: [str(sum(x)) for x in xs])
    deployed = time.monotonic() - t0
    cluster.conn.link_model_to_app(app, app)
    while True:
        status, reply = http_predict(cluster, app, [1.0, 2.5])
        if status == 200 and reply.get("default") is False:
            break
        assert time.monotonic() - t0 < 60, (status, reply)
        time.sleep(0.05)
    first = time.monotonic() - t0
    print("deploy_python_closure() returned after {:.2f} s; first non-default prediction "
          "after {:.2f} s (aim: under 5 s)".format(deployed, first))
    assert reply["output"] == 3.5
    nats = cluster.nats(app, {"input": [4.0, 5.0]})
    assert nats["output"] == 9.0 and nats["default"] is False
    # Its nats-server takes inputs of MB (max_payload in its configuration):
    # 2 MiB of doubles in one query.
    assert cluster.cm.bus.max_payload == MAX_PAYLOAD
    big = cluster.nats(app, {"input": [0.5] * (1 << 18)})
    assert big["output"] == float(1 << 17) and big["default"] is False, big
    reps = replicas_of(engine, cluster.cm.cluster_name, app, 1)
    assert len(reps) == 1
    assert reps[0].image.tags and any(t.endswith(REPLICA_IMAGE)
                                      for t in reps[0].image.tags)
    assert first < 30


def test_a_closures_pypi_packages_install_inside_its_replica_container(cluster):
    """pip runs inside the replica container (python-closure carries the
    build host's CA bundle, so PyPI answers through the same proxy)."""
    def banner(xs):
        import pyfiglet
        return [str(len(pyfiglet.figlet_format("hi"))) + ":" + pyfiglet.__version__
                for _ in xs]

    app = unique("pypi")
    cluster.conn.register_application(app, "doubles", "-1.0", 5000000)
    python_deployer.deploy_python_closure(cluster.conn, app, 1, "doubles", banner,
                                          pkgs_to_install=["pyfiglet==1.0.2"])
    cluster.conn.link_model_to_app(app, app)
    out = first_answer(cluster, app, [1.0], timeout=60)["output"]
    assert out.endswith(":1.0.2") and int(out.split(":")[0]) > 10, out


def test_scale_1_3_1_counts_containers_by_label(engine, cluster):
    app = unique("scale")
    endpoint(cluster, app)
    name = cluster.cm.cluster_name
    assert len(replicas_of(engine, name, app, 1)) == 1
    cluster.conn.set_num_replicas(app, 3)
    wait_until("3 replica containers", lambda: len(replicas_of(engine, name, app, 1)) == 3)
    assert cluster.conn.get_num_replicas(app) == 3
    reps = replicas_of(engine, name, app, 1)
    assert len({c.labels["ai.clipper.replica_id"] for c in reps}) == 3
    for i in range(10):
        assert cluster.nats(app, {"input": [float(i)]})["output"] == float(i)
    cluster.conn.set_num_replicas(app, 1)
    wait_until("1 replica container",
               lambda: len(replicas_of(engine, name, app, 1, running=False)) == 1)
    assert cluster.conn.get_num_replicas(app) == 1
    assert cluster.nats(app, {"input": [2.0, 2.0]})["output"] == 4.0


class Querier(threading.Thread):
    """Queries an app over HTTP until stopped; keeps every answer."""

    def __init__(self, cluster, app):
        super().__init__(daemon=True)
        self.cluster, self.app = cluster, app
        self.answers = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.answers.append(http_predict(self.cluster, self.app, [1.0, 1.0]))
            except Exception as e:  # noqa: BLE001 - recorded, asserted on
                self.answers.append((None, repr(e)))
            time.sleep(0.02)

    def stop(self):
        self.halt.set()
        self.join(30)


def test_a_killed_or_removed_replica_container_is_replaced_while_queries_answer(
        engine, cluster):
    app = unique("heal")
    endpoint(cluster, app, replicas=2)
    name = cluster.cm.cluster_name
    q = Querier(cluster, app)
    q.start()
    try:
        for how in ("kill", "remove"):
            before = {c.id for c in replicas_of(engine, name, app, 1)}
            assert len(before) == 2
            victim = engine.containers.get(sorted(before)[0])
            if how == "kill":
                victim.kill()
            else:
                victim.remove(force=True)
            t0 = time.monotonic()
            wait_until("a replacement for the {}ed container".format(how), lambda: (
                len(replicas_of(engine, name, app, 1)) == 2
                and {c.id for c in replicas_of(engine, name, app, 1)} != before), 60)
            cluster.cm.wait_for_replicas(app, 1, 2, 60)
            print("{}: replaced and ready after {:.2f} s".format(how,
                                                                 time.monotonic() - t0))
        n = len(q.answers)
        time.sleep(1.0)
    finally:
        q.stop()
    statuses = [s for s, _ in q.answers]
    defaults = [r for s, r in q.answers if s == 200 and r.get("default")]
    print("{} queries during the failures: {} not 200, {} default".format(
        len(q.answers), len([s for s in statuses if s != 200]), len(defaults)))
    assert statuses and all(s == 200 for s in statuses), q.answers[:20]
    # Once replaced, every answer is the model's.
    after = q.answers[n:]
    assert after and all(r["default"] is False and r["output"] == 2.0 for _, r in after)
    # Fewer than a quarter of the answers fell back to the default.
    assert len(defaults) * 4 < len(q.answers)


def test_a_killed_manager_restarted_adopts_its_replica_containers_while_queries_answer(
        engine, clusters):
    """The manager actor is PID 1 of <cluster>-manager, with no supervisor
    in the container and, by default, no restart policy: nothing would
    bring it back. This cluster's containers get the restart policy
    on-failure (extra_container_kwargs; it does not reach the replica
    containers), so the engine restarts the manager when its process is
    killed with SIGKILL. Its replica containers serve throughout and the
    restarted manager adopts them."""
    c = clusters.start("adopt", extra_container_kwargs={
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3}})
    name = c.cm.cluster_name
    app = unique("adopt")
    endpoint(c, app, replicas=2)
    c.cm.wait_for_replicas(app, 1, 2, 60)
    first_answer(c, app, [1.0, 1.0], timeout=60)
    before = sorted(r.id for r in replicas_of(engine, name, app, 1))
    assert len(before) == 2
    manager = engine.containers.get(name + "-manager")
    killed = manager.attrs["State"]["Pid"]

    def restarted():
        manager.reload()
        return manager.status == "running" and manager.attrs["State"]["Pid"] not in (0, killed)

    def adopted():
        try:
            st = json.loads(c.cm.bus.request("{}.cm.status".format(c.cm.prefix), b"{}",
                                             2000).decode())
        except Exception:  # noqa: BLE001 - not answering yet
            return None
        rows = [r for r in (st if isinstance(st, list) else st.get("replicas", []))
                if r.get("model") == app]
        return rows if sorted(r.get("container_id") for r in rows) == before else None

    q = Querier(c, app)
    q.start()
    try:
        time.sleep(0.5)
        os.kill(killed, signal.SIGKILL)
        t0 = time.monotonic()
        wait_until("the engine to restart the manager's container", restarted, 30, 0.05)
        # The restarted manager finds the nats container by name, and podman's
        # name server (aardvark-dns) can stall for tens of seconds while a
        # container (re)joins its network (seen: nothing logged for 30 s);
        # the replicas serve meanwhile, which is what this test is about.
        try:
            rows = wait_until("the restarted manager to list the same replica containers",
                              adopted, 120, 0.1)
        except AssertionError:
            manager.reload()
            print("the manager container ({}, restarts {}) said:\n{}".format(
                manager.status, manager.attrs.get("RestartCount"),
                manager.logs(tail=60).decode(errors="replace")))
            raise
        print("manager killed: restarted by the engine and listing the adopted containers "
              "after {:.2f} s".format(time.monotonic() - t0))
        assert all(r.get("state") == "running" and r.get("restarts") == 0 for r in rows), rows
        time.sleep(3.0)  # long enough for a manager that replaced them to have started others
    finally:
        q.stop()
    # The same containers, and no other.
    assert sorted(r.id for r in replicas_of(engine, name, app, 1, running=False)) == before
    statuses = [s for s, _ in q.answers]
    defaults = [r for s, r in q.answers if s == 200 and r.get("default")]
    print("{} queries while the manager was killed and restarted: {} not 200, {} default"
          .format(len(q.answers), len([s for s in statuses if s != 200]), len(defaults)))
    assert len(q.answers) > 20
    assert all(s == 200 for s in statuses), q.answers[:20]
    assert all(r["default"] is False and r["output"] == 2.0 for _, r in q.answers), [
        r for _, r in q.answers if r["default"] is not False][:5]


def test_a_replica_container_started_by_hand_joins_and_serves(engine, cluster):
    app = unique("hand")
    endpoint(cluster, app)
    mine = hand_replica(engine, cluster, app, 1)
    try:
        # It joins: a second ready replica, whose host is its container.
        wait_until("the hand-started replica to be ready", lambda: len(
            [r for r in cluster.conn.get_all_model_replicas(verbose=True)
             if r.get("model_name") == app and r.get("state") == "ready"]) == 2, 60)
        cluster.conn.set_num_replicas(app, 0)
        wait_until("the manager's replica containers to go",
                   lambda: not replicas_of(engine, cluster.cm.cluster_name, app, 1,
                                           running=False))
        rows = [r for r in cluster.conn.get_all_model_replicas(verbose=True)
                if r.get("model_name") == app and r.get("state") == "ready"]
        assert len(rows) == 1, rows
        for i in range(5):
            reply = cluster.nats(app, {"input": [float(i), 1.0]})
            assert reply["default"] is False and reply["output"] == i + 1.0, reply
        status, reply = http_predict(cluster, app, [3.0])
        assert status == 200 and reply["output"] == 3.0
    finally:
        mine.remove(force=True)


def test_connect_from_a_fresh_manager_finds_the_running_cluster(engine, cluster):
    app = unique("conn")
    endpoint(cluster, app)
    cm = DockerContainerManager(cluster_name=cluster.cm.cluster_name)
    assert cm.clipper_query_port == 1337
    conn = ClipperConnection(cm)
    conn.connect()
    assert cm.bus is not None
    try:
        assert cm.clipper_query_port == cluster.cm.clipper_query_port
        assert cm.clipper_management_port == cluster.cm.clipper_management_port
        assert cm.clipper_rpc_port == cluster.cm.clipper_rpc_port
        assert cm.prometheus_port == cluster.cm.prometheus_port
        assert cm.prefix == cluster.cm.prefix
        assert cm.docker_network == cluster.cm.docker_network
        assert app in conn.get_all_apps()
        assert conn.get_num_replicas(app) == 1
        assert json.loads(cm.bus.predict(app, b'{"input": [1.0, 6.0]}', 10000))["output"] == 7.0
    finally:
        cm.bus.close()


def test_get_logs_writes_each_containers_log(cluster, tmp_path):
    app = unique("logs")
    endpoint(cluster, app, func=lambda xs: ["ok" for _ in xs])
    assert cluster.nats(app, {"input": [1.0]})["output"] == "ok"
    paths = cluster.conn.get_clipper_logs(str(tmp_path / "logs"))
    names = sorted(os.path.basename(p) for p in paths)
    assert all(n.startswith("image_") and ":container_" in n and n.endswith(".log")
               and "/" not in n for n in names), names
    assert len([n for n in names if CLIPPER_IMAGE.replace("/", "_") in n]) == 5, names
    assert [n for n in names if REPLICA_IMAGE.replace("/", "_") in n], names
    texts = {p: open(p, "rb").read().decode("utf-8", "replace") for p in paths}
    assert any("Server is ready" in t for t in texts.values())


def test_stop_models_removes_only_that_models_containers(engine, cluster):
    keep, stop = unique("keep"), unique("stop")
    endpoint(cluster, keep)
    endpoint(cluster, stop, replicas=2)
    name = cluster.cm.cluster_name
    cluster.conn.stop_models([stop])
    assert replicas_of(engine, name, stop, 1, running=False) == []
    assert len(replicas_of(engine, name, keep, 1)) == 1
    assert cluster.nats(keep, {"input": [1.0]})["output"] == 1.0
    cluster.conn.stop_all_model_containers()
    assert labelled(engine, name, CLIPPER_MODEL_CONTAINER_LABEL) == []
    assert len(labelled(engine, name, running=True)) == 5


# ---- the replica's image: the runtime's, or the model's own (base_image) -------

def banner(xs):
    import pyfiglet
    return [str(len(pyfiglet.figlet_format("hi"))) + ":" + pyfiglet.__version__ for _ in xs]


def image_of(container):
    """The image a container was created from, as the engine names it."""
    image = container.attrs["Config"]["Image"]
    for registry in ("localhost/", "docker.io/library/"):
        if image.startswith(registry):
            return image[len(registry):]
    return image


def test_a_model_deployed_with_its_own_base_image_runs_in_that_image(engine, cluster):
    """The seed's way to bake a dependency in instead of pkgs_to_install:
    an image FROM the closure image that pip-installs it, given as
    base_image. The default image does not have the package, so the
    answer can only come from the model's own image."""
    tag = "pytest-dk-own-{}:1".format(RUN)
    dockerfile = "FROM {}\nRUN pip install pyfiglet==1.0.2\n".format(REPLICA_IMAGE)
    t0 = time.monotonic()
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                        forcerm=True, nocache=True, labels={HAND_LABEL: RUN})
    print("built {} FROM {} in {:.1f} s".format(tag, REPLICA_IMAGE, time.monotonic() - t0))
    try:
        out = engine.containers.run(REPLICA_IMAGE, ["python3", "-c", "import pyfiglet"],
                                    remove=True, stderr=True, labels={HAND_LABEL: RUN})
        pytest.fail("the default replica image has pyfiglet, so this test proves "
                    "nothing: {}".format(out))
    except Exception as e:  # noqa: BLE001 - docker.errors.ContainerError
        assert "No module named" in str(e) and "pyfiglet" in str(e), e
    app = unique("own")
    try:
        cluster.conn.register_application(app, "doubles", "-1.0", 5000000)
        python_deployer.deploy_python_closure(cluster.conn, app, 1, "doubles", banner,
                                              base_image=tag)
        cluster.conn.link_model_to_app(app, app)
        out = first_answer(cluster, app, [1.0], timeout=30)["output"]
        assert out.endswith(":1.0.2") and int(out.split(":")[0]) > 10, out
        (c,) = replicas_of(engine, cluster.cm.cluster_name, app, 1)
        assert image_of(c) == tag
        status = [r for r in cluster.cm._managed(app, 1) if r["state"] == "running"]
        assert [r["image"] for r in status] == [tag]
    finally:
        cluster.conn.stop_models([app])
        engine.images.remove(tag, force=True)


def test_clippers_stock_image_names_stand_for_the_runtimes_image(engine, cluster):
    """A Clipper script's base_image names an image of Clipper's, which does
    not exist here: the replica runs the closure runtime's image."""
    app = unique("stock")
    cluster.conn.register_application(app, "doubles", "-1.0", 3000000)
    python_deployer.deploy_python_closure(
        cluster.conn, app, 1, "doubles", lambda xs: [str(sum(x) * 2) for x in xs],
        base_image="clipper/python36-closure-container:0.4.1")
    cluster.conn.link_model_to_app(app, app)
    assert cluster.nats(app, {"input": [1.0, 2.0]})["output"] == 6.0
    (c,) = replicas_of(engine, cluster.cm.cluster_name, app, 1)
    assert image_of(c) == REPLICA_IMAGE.replace("localhost/", "", 1)
    cluster.conn.stop_models([app])


def test_a_base_image_the_engine_lacks_fails_the_deploy_fast_and_keeps_serving(
        engine, cluster):
    app = unique("noimg")
    endpoint(cluster, app)
    assert cluster.nats(app, {"input": [1.0, 2.0]})["output"] == 3.0
    missing = "pytest-dk-none-{}:1".format(RUN)
    t0 = time.monotonic()
    with pytest.raises(ClipperException) as e:
        python_deployer.deploy_python_closure(
            cluster.conn, app, 2, "doubles", lambda xs: [str(-sum(x)) for x in xs],
            base_image=missing)
    took = time.monotonic() - t0
    msg = str(e.value)
    print("a deploy naming a missing image failed after {:.1f} s: {}".format(took, msg))
    assert "The container manager cannot start replicas of model {}:2".format(app) in msg
    assert "names the image '{}'".format(missing) in msg
    assert "The deploy was undone" in msg
    assert took < 20, took  # not the 60 s ready timeout
    # Version 1 still serves, and nothing of version 2 is left.
    assert cluster.conn.get_current_model_version(app) == "1"
    assert cluster.nats(app, {"input": [1.0, 2.0]})["output"] == 3.0
    wait_until("no container of version 2",
               lambda: replicas_of(engine, cluster.cm.cluster_name, app, 2,
                                   running=False) == [], timeout=10)
    cluster.conn.stop_models([app])


# ---- several clusters; stopping ----------------------------------------------

def test_two_named_clusters_side_by_side_stay_isolated(engine, cluster, clusters):
    # On the module cluster's network, as Clipper's clusters shared
    # "clipper_network"; the same app name in both.
    other = clusters.start("two", network=cluster.cm.docker_network)
    app = unique("same")
    endpoint(cluster, app, func=lambda xs: ["first" for _ in xs])
    endpoint(other, app, func=lambda xs: ["second" for _ in xs])
    for c, want in ((cluster, "first"), (other, "second")):
        assert c.nats(app, {"input": [1.0]})["output"] == want
        status, reply = http_predict(c, app, [1.0])
        assert status == 200 and reply["output"] == want
    assert cluster.cm.prefix != other.cm.prefix
    assert len(replicas_of(engine, cluster.cm.cluster_name, app, 1)) == 1
    assert len(replicas_of(engine, other.cm.cluster_name, app, 1)) == 1
    mine = {c.id for c in labelled(engine, cluster.cm.cluster_name)}
    # Scaling one does not touch the other.
    other.conn.set_num_replicas(app, 2)
    assert len(replicas_of(engine, cluster.cm.cluster_name, app, 1)) == 1
    other.conn.stop_all()
    assert labelled(engine, other.cm.cluster_name) == []
    # The first cluster is untouched, its network too.
    assert {c.id for c in labelled(engine, cluster.cm.cluster_name, running=True)} == mine
    assert engine.networks.list(names=[cluster.cm.docker_network])
    assert cluster.nats(app, {"input": [1.0]})["output"] == "first"


@pytest.mark.parametrize("graceful", [True, False])
def test_stop_all_leaves_no_container_network_or_process(engine, clusters, graceful):
    c = clusters.start("stop")
    app = unique("gone")
    endpoint(c, app, replicas=2)
    name, network = c.cm.cluster_name, c.cm.docker_network
    ids = [x.id for x in labelled(engine, name)]
    assert len(ids) == 7
    assert processes_mentioning(name)   # the actors' command lines name the cluster
    t0 = time.monotonic()
    if graceful:
        c.conn.stop_all(graceful=True)
    else:
        # Clipper's stop_all needs no connection: a manager that never
        # connected finds the cluster (and its network) by the labels.
        fresh = DockerContainerManager(cluster_name=name)
        assert fresh.docker_network != network
        ClipperConnection(fresh).stop_all(graceful=False)
    print("stop_all(graceful={}) took {:.2f} s".format(graceful, time.monotonic() - t0))
    assert labelled(engine, name) == []
    assert [n for n in engine.networks.list(names=[network]) if n.name == network] == []
    left = wait_until_gone(lambda: processes_mentioning(name) + [
        p for i in ids for p in processes_mentioning(i[:12])])
    assert not left, [(p, cmdline(p)) for p in left]


def wait_until_gone(find, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        left = find()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


# ---- identities and TLS on the bus (docs/security.md) -------------------------

ROLES = ("admin", "router", "frontend", "manager")


def public_key(cm, name):
    with open(secret(cm, "identities", name + ".json")) as f:
        return json.load(f)["public_key"]


def test_the_bus_requires_tls_and_a_credential(engine, cluster):
    cm = cluster.cm
    url = cm.get_bus_url()
    assert url == "tls://127.0.0.1:{}".format(cm.clipper_rpc_port)
    assert cm.bus_auth_args() == ["--creds", secret(cm, "creds", "operator.creds"),
                                  "--tls-ca", secret(cm, "ca.pem")]
    nats = engine.containers.get(cm.cluster_name + "-nats")
    # Published on the host's loopback only.
    bindings = nats.attrs["HostConfig"]["PortBindings"]["4222/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [
        ("127.0.0.1", str(cm.clipper_rpc_port))], bindings
    # So is the management REST, which deploys code (with its token).
    admin = engine.containers.get(cm.cluster_name + "-admin")
    bindings = admin.attrs["HostConfig"]["PortBindings"]["1338/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [
        ("127.0.0.1", str(cm.clipper_management_port))], bindings
    # No credential at all: refused by the nats container.
    with pytest.raises(BusError) as e:
        Bus(url, prefix=cm.prefix, tls_ca=secret(cm, "ca.pem"), connect_timeout_ms=3000)
    assert "Authorization Violation" in str(e.value), str(e.value)
    # Plain NATS to it: no TLS, no connection.
    with pytest.raises(BusError):
        Bus(url.replace("tls://", "nats://"), prefix=cm.prefix, connect_timeout_ms=3000)


def test_a_replica_identity_cannot_ask_the_admin(engine, cluster):
    cm = cluster.cm
    subject = cm.prefix + ".admin.set_num_replicas"
    rep = Bus(cm.get_bus_url(), prefix=cm.prefix, name="attacker",
              creds=secret(cm, "creds", "replica.creds"), tls_ca=secret(cm, "ca.pem"),
              connect_timeout_ms=3000)
    try:
        with pytest.raises(BusError):
            rep.admin("set_num_replicas", json.dumps(
                {"model_name": "x", "model_version": "1", "num_replicas": 64}).encode(), 1500)
    finally:
        rep.close()
    want = 'Publish Violation - Nkey "{}", Subject "{}"'.format(public_key(cm, "replica"),
                                                                subject)
    nats = engine.containers.get(cm.cluster_name + "-nats")
    wait_until("the nats container to log: " + want,
               lambda: want in nats.logs().decode("utf-8", "replace"), 5, 0.05)


def test_containers_get_only_their_own_identity_as_read_only_files(engine, cluster):
    """Each actor's container mounts its own role's credential and the CA,
    read-only, mode 0600 inside; a replica container the manager made
    mounts the replica identity; no seed or secret file's content is in
    any container's command or environment."""
    cm = cluster.cm
    app = unique("own-id")
    endpoint(cluster, app)
    assert cluster.nats(app, {"input": [1.0, 2.0]})["output"] == 3.0
    secrets = []
    for root, _, files in os.walk(secret(cm)):
        for f in files:
            if f.endswith((".creds", ".key")):
                with open(os.path.join(root, f)) as fh:
                    secrets += [line for line in fh.read().splitlines()
                                if len(line) >= 40 and not line.startswith(("#", "-----"))]
    assert len(secrets) >= 9     # 7 seeds, and the two keys' base64 lines
    containers = labelled(engine, cm.cluster_name, running=True)
    roles = {c.labels.get("ai.clipper.name") or "replica": c for c in containers}
    assert sorted(roles) == ["admin", "frontend", "manager", "nats", "replica", "router"]
    for c in containers:
        cfg = c.attrs["Config"]
        text = json.dumps([cfg.get("Env"), cfg.get("Cmd"), cfg.get("Entrypoint"),
                           c.attrs.get("Args")])
        assert not re.search(r"SU[A-Z2-7]{40,}", text), (c.name, text)
        assert not [x for x in secrets if x in text], c.name
    for role, c in roles.items():
        mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
        if role == "nats":
            m = mounts["/run/clipper/nats"]
            assert m["Source"] == os.path.join(cm.data_dir, "nats") and not m["RW"]
            assert "-c" in c.attrs["Config"]["Cmd"]
            continue
        own = "/run/clipper/creds/{}.creds".format(role)
        # A replica's is its model's own identity, issued by the manager.
        assert mounts[own]["Source"] == secret(cm, "creds", (
            "replica-of-" + c.labels["ai.clipper.model"] if role == "replica" else role) +
            ".creds")
        assert mounts["/run/clipper/ca.pem"]["Source"] == secret(cm, "ca.pem")
        assert not mounts[own]["RW"] and not mounts["/run/clipper/ca.pem"]["RW"]
        assert not [d for d in mounts if d.startswith("/run/clipper/creds/") and d != own]
        cmd = c.attrs["Config"]["Cmd"]
        assert cmd[cmd.index("--creds") + 1] == own and "--tls-ca" in cmd, cmd
        code, out = c.exec_run(["stat", "-L", "-c", "%a", own])
        assert code == 0 and out.decode().strip() in ("400", "600"), (role, code, out)
    manager_cmd = roles["manager"].attrs["Config"]["Cmd"]
    assert manager_cmd[manager_cmd.index("--replica-identities") + 1] == cm.data_dir
    assert manager_cmd[manager_cmd.index("--nats-container") + 1] == cm.cluster_name + "-nats"
    assert "--replica-creds" not in manager_cmd
    assert manager_cmd[manager_cmd.index("--replica-nats") + 1].startswith("tls://")
    cluster.conn.stop_models([app])


def test_each_model_s_replica_containers_get_an_identity_of_their_own(engine, cluster):
    """The manager issues replica-of-<model> (scoped to the model), makes the
    nats container reload, and mounts it into the model's replica
    containers: with it, another model's work and artifact are refused by
    nats-server; revoked (and the server told to reload), its holder is
    cut off, and the model's next replica gets a new identity."""
    cm = cluster.cm
    app = unique("scoped")
    endpoint(cluster, app)
    assert cluster.nats(app, {"input": [1.0, 2.0]})["output"] == 3.0
    name = "replica-of-" + app
    with open(secret(cm, "identities", name + ".json")) as f:
        record = json.load(f)
    assert record["role"] == "replica" and record["model"] == app, record
    mine = secret(cm, "creds", name + ".creds")
    assert oct(os.stat(mine).st_mode & 0o777) == "0o600"
    conf = open(os.path.join(cm.data_dir, "nats", "nats-server.auth.conf")).read()
    assert '"{}.replica.work.{}.>"'.format(cm.prefix, app) in conf
    nats = engine.containers.get(cm.cluster_name + "-nats")
    rep = Bus(cm.get_bus_url(), prefix=cm.prefix, name="scoped", creds=mine,
              tls_ca=secret(cm, "ca.pem"), connect_timeout_ms=3000)
    try:
        assert rep.listen(cm.prefix + ".replica.work.other.>", 300) == []
        want = 'Subscription Violation - Nkey "{}", Subject "{}.replica.work.other.>"'.format(
            record["public_key"], cm.prefix)
        wait_until("the nats container to log: " + want,
                   lambda: want in nats.logs().decode("utf-8", "replace"), 5, 0.05)
    finally:
        rep.close()
    # Revoked: its key is refused once nats-server reloads (the CLI cannot
    # signal a server in a container: the engine does), and the model's
    # replica is replaced under a new identity.
    from clipper_admin import _locate
    subprocess.run([_locate.clipper_bin(), "creds", "revoke", name, "--data-dir", cm.data_dir,
                    "--prefix", cm.prefix], check=True, capture_output=True, timeout=30)
    nats.kill(signal="SIGHUP")
    with pytest.raises(BusError):
        Bus(cm.get_bus_url(), prefix=cm.prefix, name="revoked", creds=mine,
            tls_ca=secret(cm, "ca.pem"), connect_timeout_ms=3000).close()
    for c in replicas_of(engine, cm.cluster_name, app, 1):
        c.kill()
    wait_until("a new identity for the model's replicas",
               lambda: os.path.exists(secret(cm, "identities", name + ".json")), 60, 0.2)
    with open(secret(cm, "identities", name + ".json")) as f:
        assert json.load(f)["public_key"] != record["public_key"]
    wait_until("the model to answer under its new identity",
               lambda: cluster.nats(app, {"input": [2.0, 2.0]}, 2000).get("output") == 4.0,
               90, 0.5)
    cluster.conn.stop_models([app])


def test_insecure_starts_an_open_bus_and_says_so(engine, clusters, caplog):
    with caplog.at_level(logging.WARNING, logger="clipper_admin"):
        c = clusters.start("open", insecure=True)
    assert any("INSECURE" in r.getMessage() for r in caplog.records), caplog.text
    cm = c.cm
    assert cm.get_bus_url().startswith("nats://") and cm.bus_auth_args() == []
    assert not os.path.exists(cm.data_dir)
    with Bus(cm.get_bus_url(), prefix=cm.prefix, connect_timeout_ms=3000) as bus:
        assert bus.admin("ping", b"{}", 5000)
        # nats-server from its command line still takes inputs of MB
        assert bus.max_payload == MAX_PAYLOAD
    # Its management REST takes no token (as Clipper's), unless given one.
    assert cm.admin_token_file() is None
    with urllib.request.urlopen("http://{}/admin/ping".format(cm.get_admin_addr()),
                                timeout=10) as r:
        assert r.status == 200
    for x in labelled(engine, cm.cluster_name, running=True):
        assert "ai.clipper.data_dir" not in x.labels
        assert not [m for m in x.attrs["Mounts"] if m["Destination"].startswith(
            ("/run/clipper/creds", "/run/clipper/ca.pem", "/run/clipper/nats"))]
    # A fresh manager finds it open too.
    fresh = DockerContainerManager(cluster_name=cm.cluster_name)
    ClipperConnection(fresh).connect()
    try:
        assert fresh.get_bus_url().startswith("nats://")
    finally:
        fresh.bus.close()


# ---- the HTTP doors: TLS and bearer tokens (docs/security.md) ------------------

REALM = 'Bearer realm="clipper"'


def openssl(cwd, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, "openssl {} failed: {}".format(" ".join(args), r.stderr)


def make_ca_and_leaf(d, hosts=("localhost", "127.0.0.1")):
    """d/ca.pem, and d/leaf.pem with its key d/leaf.key, signed by it, for
    hosts (names and addresses), made with the openssl program."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=clipper-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl(d, "req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj",
            "/CN=" + hosts[0])
    san = ",".join(("IP:" if re.match(r"^[0-9.]+$", h) else "DNS:") + h for h in hosts)
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName={}\n".format(san))
    openssl(d, "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    os.chmod(os.path.join(d, "leaf.key"), 0o600)
    return {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "leaf.pem"),
            "key": os.path.join(d, "leaf.key")}


def token_file(path, token):
    """A token file only its owner may read, as the doors require."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def https(host, port, method, path, ca, token=None, body=None, timeout=30):
    """(status, text, response) over HTTPS trusting ca (None: the system's
    CAs), with "Authorization: Bearer token" when token is given."""
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace"), r
    finally:
        conn.close()


def plain_http_fails(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        raise AssertionError("plain HTTP to the TLS port {} was answered {}".format(
            port, r.status))
    except (http.client.HTTPException, OSError):
        pass
    finally:
        conn.close()


def assert_401(answer, what):
    status, text, r = answer
    assert status == 401, (what, status, text)
    assert r.getheader("WWW-Authenticate") == REALM, (what, r.getheaders())


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def test_https_and_tokens_on_the_query_metrics_and_management_ports(engine, clusters,
                                                                     tmp_path):
    """One cluster with a certificate (its CA made here) and a token per
    door: predictions over HTTPS with the query token, 401 without a
    token, no plain HTTP, the metrics port and the management REST each
    with its own token; the files are mounted one by one, read-only, and
    no token is in a container's command or environment; inspect_instance()
    reads the query port over HTTPS, here and from a manager that only
    connected."""
    d = str(tmp_path)
    pki = make_ca_and_leaf(d)
    tokens = {door: "{}-{}".format(door, uuid.uuid4().hex) for door in
              ("admin", "metrics", "query")}
    c = clusters.start("doors", http_tls_cert=pki["cert"], http_tls_key=pki["key"],
                       **{door + "_token_file": token_file(os.path.join(d, door + ".token"),
                                                           tok)
                          for door, tok in tokens.items()})
    cm, ca = c.cm, pki["ca"]
    query, metrics, admin = (port_of(a) for a in (cm.get_query_addr(), cm.get_metric_addr(),
                                                 cm.get_admin_addr()))
    app = unique("tls")
    endpoint(c, app)
    path = "/{}/predict".format(app)

    def answered():
        status, text, _ = https("localhost", query, "POST", path, ca, tokens["query"],
                                {"input": [1.0, 2.5]})
        assert status == 200, text
        reply = json.loads(text)
        return reply if reply["default"] is False else None
    assert wait_until("a non-default answer over HTTPS", answered, 60)["output"] == 3.5
    # The certificate names 127.0.0.1 too.
    status, _, _ = https("127.0.0.1", query, "POST", path, ca, tokens["query"],
                         {"input": [1.0]})
    assert status == 200
    for token, what in ((None, "no token"), (tokens["metrics"], "the metrics token")):
        assert_401(https("127.0.0.1", query, "POST", path, ca, token, {"input": [1.0]}), what)
    plain_http_fails("127.0.0.1", query)
    with pytest.raises(ssl.SSLCertVerificationError):   # the system's CAs only
        https("127.0.0.1", query, "POST", path, None, tokens["query"], {"input": [1.0]})

    assert_401(https("127.0.0.1", metrics, "GET", "/metrics", ca), "metrics, no token")
    assert_401(https("127.0.0.1", metrics, "GET", "/metrics", ca, tokens["query"]),
               "metrics, the query token")
    status, text, _ = https("127.0.0.1", metrics, "GET", "/metrics", ca, tokens["metrics"])
    assert status == 200 and "clipper_frontend_info" in text, text[:300]
    plain_http_fails("127.0.0.1", metrics)

    assert cm.admin_token_file() == os.path.join(d, "admin.token")
    assert_401(https("127.0.0.1", admin, "GET", "/admin/ping", ca), "admin, no token")
    status, text, _ = https("127.0.0.1", admin, "GET", "/admin/ping", ca, tokens["admin"])
    assert (status, text) == (200, "PONG")
    plain_http_fails("127.0.0.1", admin)

    metrics_json = c.conn.inspect_instance()
    assert any(app in json.dumps(v) for v in metrics_json.values()), metrics_json

    # Each file on its own, read-only, where the options say; no token in a
    # command or the environment.
    want = {"admin": {"/run/clipper/http/tls.crt": pki["cert"],
                      "/run/clipper/http/tls.key": pki["key"],
                      "/run/clipper/http/admin.token": os.path.join(d, "admin.token")},
            "frontend": {"/run/clipper/http/tls.crt": pki["cert"],
                         "/run/clipper/http/tls.key": pki["key"],
                         "/run/clipper/http/metrics.token": os.path.join(d, "metrics.token"),
                         "/run/clipper/http/query.token": os.path.join(d, "query.token")}}
    for x in labelled(engine, cm.cluster_name, running=True):
        role = x.labels.get("ai.clipper.name")
        cfg = x.attrs["Config"]
        text = json.dumps([cfg.get("Env"), cfg.get("Cmd"), x.attrs.get("Args")])
        assert not [t for t in tokens.values() if t in text], (x.name, text)
        mounts = {m["Destination"]: m for m in x.attrs["Mounts"]
                  if m["Destination"].startswith("/run/clipper/http")}
        assert {k: m["Source"] for k, m in mounts.items()} == want.get(role, {}), x.name
        assert not [m for m in mounts.values() if m["RW"]], x.name
        for dst in want.get(role, {}):
            assert dst in cfg["Cmd"], (x.name, cfg["Cmd"])

    # A manager that only connects learns the files' paths from the labels.
    fresh = DockerContainerManager(cluster_name=cm.cluster_name)
    conn = ClipperConnection(fresh)
    conn.connect()
    try:
        assert (fresh.http_tls_cert, fresh.query_token_file, fresh.admin_token_file()) == (
            pki["cert"], os.path.join(d, "query.token"), os.path.join(d, "admin.token"))
        assert isinstance(conn.inspect_instance(), dict)
    finally:
        fresh.bus.close()


def test_bad_http_door_files_are_refused_before_anything_is_created(engine, tmp_path):
    d = str(tmp_path)
    cert = os.path.join(d, "cert.pem")
    with open(cert, "w") as f:
        f.write("not checked here: the actor reads it\n")
    good = token_file(os.path.join(d, "good.token"), "t0ken")
    loose = os.path.join(d, "loose.token")
    with open(loose, "w") as f:
        f.write("t0ken\n")
    os.chmod(loose, 0o644)
    empty = token_file(os.path.join(d, "empty.token"), "")
    missing = os.path.join(d, "missing.pem")
    cases = [
        (dict(http_tls_cert=cert), "http_tls_cert and http_tls_key go together: give both"),
        (dict(http_tls_key=cert), "http_tls_cert and http_tls_key go together: give both"),
        (dict(http_tls_cert=cert, http_tls_key=missing),
         "http_tls_key {} does not exist or is not a file".format(missing)),
        (dict(query_token_file=missing),
         "query_token_file {} does not exist or is not a file".format(missing)),
        (dict(metrics_token_file=d), "metrics_token_file {} does not exist".format(d)),
        (dict(admin_token_file=loose),
         "admin_token_file {} may be read by group or others (mode 644)".format(loose)),
        (dict(query_token_file=empty), "query_token_file {}: its first line".format(empty)),
    ]
    name = "pytest-dk-badhttp-" + RUN
    for kw, want in cases:
        with pytest.raises(ClipperException) as e:
            ClipperConnection(new_manager(
                "badhttp", cluster_name=name,
                admin_token_file=kw.pop("admin_token_file", good), **kw)).start_clipper()
        assert want in str(e.value), (kw, str(e.value))
    # Refused by the constructor: no container, no secrets.
    assert labelled(engine, name) == []
    assert not os.path.exists(os.path.join(DATA_HOME, name))
    # Relative paths are made absolute.
    cwd = os.getcwd()
    os.chdir(d)
    try:
        cm = new_manager("relhttp", query_token_file="good.token")
    finally:
        os.chdir(cwd)
    assert cm.query_token_file == good and cm.admin_token_file() == os.path.join(
        cm.data_dir, "admin.token")


# ---- bad input ---------------------------------------------------------------

def test_a_second_start_of_the_same_cluster_is_refused_with_clippers_error(engine, cluster):
    cm = new_manager("dup", cluster_name=cluster.cm.cluster_name)
    before = {c.id for c in labelled(engine, cluster.cm.cluster_name)}
    with pytest.raises(ClipperException) as e:
        ClipperConnection(cm).start_clipper()
    assert str(e.value) == (
        "Cluster {} cannot be started because it already exists. Please use "
        "ClipperConnection.connect() to connect to it.".format(cluster.cm.cluster_name))
    assert {c.id for c in labelled(engine, cluster.cm.cluster_name)} == before


@pytest.mark.parametrize("how", ["clipper_image", "replica_image", "env"])
def test_an_unknown_image_is_a_clear_error(engine, monkeypatch, how):
    missing = "clipper/no-such-image-{}:latest".format(RUN)
    if how == "env":
        monkeypatch.setenv("CLIPPER_REPLICA_IMAGE", missing)
        cm = new_manager("img")
    else:
        cm = new_manager("img", **{how: missing})
    try:
        with pytest.raises(ClipperException) as e:
            ClipperConnection(cm).start_clipper()
        assert missing in str(e.value)
        assert "bash images/build.sh" in str(e.value)
        assert labelled(engine, cm.cluster_name) == []
        assert not [n for n in engine.networks.list(names=[cm.docker_network])
                    if n.name == cm.docker_network]
    finally:
        remove_everything(engine, cm)


def test_an_engine_that_is_not_running_is_a_clear_error(monkeypatch, tmp_path):
    dead = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)           # a socket file nobody accepts on
    s.close()
    for url in ("unix://" + dead, "unix://" + str(tmp_path / "missing.sock")):
        monkeypatch.setenv("DOCKER_HOST", url)
        cm = new_manager("dead")
        for call in (ClipperConnection(cm).start_clipper, ClipperConnection(cm).connect,
                     ClipperConnection(cm).stop_all):
            with pytest.raises(ClipperException) as e:
                call()
            msg = str(e.value)
            assert msg.startswith("Cannot reach the container engine at " + url), msg
            assert "images/engine.sh" in msg


def test_a_host_port_already_taken_is_a_clear_error(engine):
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        for arg in ("clipper_query_port", "clipper_management_port", "clipper_rpc_port",
                    "prometheus_port"):
            cm = new_manager("port")
            setattr(cm, arg, taken)
            try:
                with pytest.raises(ClipperException) as e:
                    ClipperConnection(cm).start_clipper()
                assert "Port {} ({}) is already in use".format(taken, arg) in str(e.value)
                assert labelled(engine, cm.cluster_name) == []
            finally:
                remove_everything(engine, cm)


def test_connect_to_a_cluster_that_does_not_run_is_a_clear_error(engine):
    cm = new_manager("none")
    with pytest.raises(ClipperException, match="No running container of cluster '{}'".format(
            cm.cluster_name)):
        ClipperConnection(cm).connect()


def test_bad_arguments_are_refused_at_once():
    with pytest.raises(ClipperException, match="\"host\" docker network"):
        DockerContainerManager(docker_network="host")
    with pytest.raises(ClipperException, match="clipper_query_port must be a TCP port"):
        DockerContainerManager(clipper_query_port=70000)
    with pytest.raises(ClipperException, match="may not set name"):
        DockerContainerManager(extra_container_kwargs={"name": "x"})
    with pytest.raises(ClipperException, match="pyspark_image must name an image"):
        DockerContainerManager(pyspark_image="pyspark=x:1")
    with pytest.raises(ClipperException, match="replica_image must name an image"):
        DockerContainerManager(replica_image=7)
    with pytest.raises(ClipperException, match="scale-out hasn't been implemented"):
        ClipperConnection(DockerContainerManager()).start_clipper(num_frontend_replicas=2)
    cm = DockerContainerManager(cluster_name="team-a",
                                extra_container_kwargs={"labels": {"team": "a"}})
    assert cm.prefix == "team-a" and cm.cluster_identifier == "team-a"
    assert cm.common_labels == {"team": "a", CLIPPER_DOCKER_LABEL: "team-a"}
    assert DockerContainerManager().prefix == "clipper"
    # Secrets under the home directory by default, one directory per cluster.
    assert cm.data_dir == os.path.expanduser("~/.clipper/docker/team-a")
    with pytest.raises(ClipperException, match="cannot be bind-mounted"):
        DockerContainerManager(data_dir="/tmp/a:b")


def test_creds_init_makes_and_keeps_the_secrets_and_refuses_bad_input(tmp_path):
    """`clipper creds init`, which start_clipper runs; no engine needed."""
    from clipper_admin import _locate
    import subprocess

    def init(*args):
        return subprocess.run([_locate.clipper_bin(), "creds", "init", "--data-dir",
                               str(tmp_path / "d"), "--prefix", "p"] + list(args),
                              capture_output=True, text=True, timeout=30)

    r = init("--secrets-mount", "relative/dir")
    assert r.returncode == 2 and "--secrets-mount must be an absolute path" in r.stderr, r.stderr
    r = init("--tls-host", "not a name")
    assert r.returncode == 1 and "'not a name'" in r.stderr, r.stderr
    r = init("--tls-host", "c-nats", "--secrets-mount", "/run/clipper/nats")
    assert r.returncode == 0, r.stderr
    d = tmp_path / "d"
    for f in ("nats/server.pem", "nats/server.key", "secrets/creds/operator.creds"):
        assert os.stat(str(d / f)).st_mode & 0o077 == 0, f
    assert os.stat(str(d / "nats")).st_mode & 0o777 == 0o700
    conf = (d / "nats" / "nats-server.auth.conf").read_text()
    assert 'cert_file: "/run/clipper/nats/server.pem"' in conf
    assert 'key_file: "/run/clipper/nats/server.key"' in conf and "CLIPPER_P" in conf
    before = (d / "secrets" / "identities" / "operator.json").read_text()
    cert = (d / "nats" / "server.pem").read_text()
    # Again with one more address: the identities stay, the certificate is
    # issued again, and its copy follows.
    r = init("--tls-host", "c-nats", "--tls-host", "10.1.2.3",
             "--secrets-mount", "/run/clipper/nats")
    assert r.returncode == 0, r.stderr
    assert (d / "secrets" / "identities" / "operator.json").read_text() == before
    assert (d / "nats" / "server.pem").read_text() != cert
    assert (d / "nats" / "server.pem").read_text() == (d / "secrets" / "server.pem").read_text()


def test_extra_container_kwargs_reach_the_cluster_containers(engine, clusters):
    c = clusters.start("extra", extra_container_kwargs={
        "labels": {"team": "blue"}, "environment": {"CLIPPER_TEST_MARK": RUN}})
    cs = labelled(engine, c.cm.cluster_name, "team=blue", running=True)
    assert len(cs) == 5
    for x in cs:
        env = x.attrs["Config"]["Env"]
        assert "CLIPPER_TEST_MARK=" + RUN in env
    manager = [x for x in cs if x.labels["ai.clipper.name"] == "manager"][0]
    assert "DOCKER_HOST=unix:///run/clipper/engine.sock" in manager.attrs["Config"]["Env"]
