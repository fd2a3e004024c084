"""The clipper_admin package without a real cluster: exports, exceptions,
validation, admin replies, and LocalContainerManager's process handling
(driven by a fake `clipper` program that starts a real nats-server)."""
import json
import os
import shutil
import signal
import stat
import sys
import textwrap
import time

import pytest

import clipper_admin
from clipper_admin import (ClipperConnection, ClipperException, LocalContainerManager,
                           UnconnectedException)
from clipper_admin import container_manager
from clipper_admin._admin import admin_call
from clipper_admin._bus import NoResponders
from clipper_admin.deployers import python as python_deployer

from conftest import alive, free_port, nats_server_path, process_tree, processes_mentioning


# ---- exports and constants --------------------------------------------------

def test_package_exports_clippers_public_names():
    for name in ("ClipperConnection", "LocalContainerManager", "ClipperException",
                 "UnconnectedException", "deployers", "__version__", "__registry__",
                 "CLIPPER_TEMP_DIR", "DEFAULT_PREDICTION_CACHE_SIZE_BYTES", "DEFAULT_LABEL"):
        assert hasattr(clipper_admin, name), name
    assert clipper_admin.CLIPPER_TEMP_DIR == "/tmp/clipper"
    assert clipper_admin.DEFAULT_PREDICTION_CACHE_SIZE_BYTES == 33554432
    assert clipper_admin.DEFAULT_LABEL == []
    assert clipper_admin.__registry__ == os.environ.get("CLIPPER_REGISTRY", "clipper")
    from clipper_admin.deployers import python  # noqa: F401


def test_container_manager_constants_match_clipper():
    assert container_manager.CLIPPER_INTERNAL_QUERY_PORT == 1337
    assert container_manager.CLIPPER_INTERNAL_MANAGEMENT_PORT == 1338
    assert container_manager.CLIPPER_INTERNAL_RPC_PORT == 7000
    assert container_manager.CLIPPER_INTERNAL_METRIC_PORT == 1390
    assert container_manager.CLIPPER_INTERNAL_REDIS_PORT == 6379
    assert container_manager.CONTAINERLESS_MODEL_IMAGE == "NO_CONTAINER"
    assert container_manager.CLIPPER_DOCKER_LABEL == "ai.clipper.container.label"
    assert container_manager.CLIPPER_MODEL_CONTAINER_LABEL == "ai.clipper.model_container.label"
    assert container_manager.create_model_container_label("m", "1") == "m_1"
    with pytest.raises(TypeError):
        container_manager.ContainerManager()


def test_build_info_points_at_this_build():
    from clipper_admin import _build_info
    assert _build_info.CLIPPER_BIN.endswith("/actors/cli/clipper")
    assert _build_info.PYTHON_VERSION == "{}.{}".format(*sys.version_info[:2])


# ---- exceptions -------------------------------------------------------------

def test_clipper_exception_keeps_its_message():
    e = ClipperException("boom")
    assert e.msg == "boom" and str(e) == "boom"


def test_unconnected_exception_has_clippers_text():
    e = UnconnectedException()
    assert isinstance(e, ClipperException)
    assert str(e) == (
        "No connection to Clipper cluster. Call ClipperConnection.connect to connect to "
        "an existing cluster or ClipperConnnection.start_clipper to create a new one")


def test_methods_needing_a_cluster_raise_unconnected_before_connect():
    conn = ClipperConnection(LocalContainerManager())
    for call in (lambda: conn.register_application("a", "doubles", "-1", 100000),
                 lambda: conn.link_model_to_app("a", "m"),
                 lambda: conn.get_all_apps(), lambda: conn.get_app_info("a"),
                 lambda: conn.get_all_models(), lambda: conn.get_query_addr(),
                 lambda: conn.get_num_replicas("m", "1"),
                 lambda: conn.set_num_replicas("m", 2, "1"),
                 lambda: conn.unregister_application("a"),
                 lambda: conn.get_all_model_replicas(),
                 lambda: conn.stop_all_model_containers(),
                 lambda: python_deployer.deploy_python_closure(
                     conn, "m", 1, "doubles", lambda xs: xs)):
        with pytest.raises(UnconnectedException):
            call()


# ---- validation -------------------------------------------------------------

@pytest.mark.parametrize("name,version", [("My_Model", "1"), ("model", "v.1"),
                                          ("-model", "1"), ("model", "1-"),
                                          ("model", "")])
def test_invalid_model_names_are_rejected_with_clippers_text(name, version):
    conn = ClipperConnection(LocalContainerManager())
    with pytest.raises(ClipperException) as info:
        conn.deploy_model(name, version, "doubles", "img")
    bad = name if name != "model" else version
    assert str(info.value).startswith("Invalid value: {}: a model".format(bad))
    assert "DNS-1123" in str(info.value)


def test_valid_model_names_pass_validation():
    for name, version in (("m", "1"), ("my-model-2", "10"), ("a1", "b-2")):
        ClipperConnection._validate_versioned_model_name(name, version)


def test_prefix_is_clipper_for_the_default_cluster_else_its_name():
    assert LocalContainerManager().prefix == "clipper"
    assert LocalContainerManager(cluster_name="team-a").prefix == "team-a"
    assert LocalContainerManager(cluster_name="x", prefix="y").prefix == "y"
    with pytest.raises(ClipperException, match="prefix"):
        LocalContainerManager(cluster_name="bad.name")


def test_addresses_use_the_configured_ports():
    cm = LocalContainerManager(clipper_query_port=11111, clipper_management_port=11112,
                               prometheus_port=11113)
    assert cm.get_query_addr() == "127.0.0.1:11111"
    assert cm.get_admin_addr() == "127.0.0.1:11112"
    assert cm.get_metric_addr() == "127.0.0.1:11113"


# ---- admin replies ----------------------------------------------------------

class FakeBus(object):
    """Answers admin commands from a dict of command -> reply (bytes or callable)."""

    prefix = "clipper"
    url = "nats://fake"
    closed = False

    def __init__(self, replies):
        self.replies = replies
        self.calls = []

    def admin(self, command, body, timeout_ms):
        self.calls.append((command, json.loads(body.decode())))
        reply = self.replies.get(command)
        if reply is None:
            raise NoResponders("no responders on clipper.admin." + command)
        return reply(self.calls[-1][1]) if callable(reply) else reply


def test_admin_ok_reply_returns_the_result():
    bus = FakeBus({"get_all_applications": b'{"ok": true, "result": ["a", "b"]}'})
    assert admin_call(bus, "get_all_applications", {"verbose": False}) == ["a", "b"]
    assert bus.calls == [("get_all_applications", {"verbose": False})]


def test_admin_error_reply_raises_clippers_status_text():
    bus = FakeBus({"add_app": b'{"ok": false, "error": "application \'a\' already exists"}'})
    with pytest.raises(ClipperException) as info:
        admin_call(bus, "add_app", {"name": "a"})
    assert str(info.value) == ("Received error status code: 400 and message: "
                               "application 'a' already exists")


def test_admin_reply_that_is_not_json_is_a_clear_error():
    bus = FakeBus({"x": b"PONG"})
    with pytest.raises(ClipperException, match="not JSON"):
        admin_call(bus, "x", {})


def test_admin_without_responders_says_the_cluster_is_not_running():
    with pytest.raises(ClipperException, match="No admin actor answers on clipper.admin.x"):
        admin_call(FakeBus({}), "x", {})


class FakeManager(object):
    cluster_identifier = "fake"

    def __init__(self, bus):
        self.bus = bus


def test_register_application_sends_clippers_body():
    bus = FakeBus({"add_app": b'{"ok": true, "result": "ok"}'})
    conn = ClipperConnection(FakeManager(bus))
    conn.connected = True
    conn.register_application("app", "doubles", "-1.0", 20000)
    assert bus.calls == [("add_app", {"name": "app", "input_type": "doubles",
                                      "default_output": "-1.0",
                                      "latency_slo_micros": 20000})]


def test_link_and_info_calls_send_clippers_bodies():
    bus = FakeBus({"add_model_links": b'{"ok": true, "result": "ok"}',
                   "get_application": b'{"ok": true, "result": {}}',
                   "get_model": b'{"ok": true, "result": {}}'})
    conn = ClipperConnection(FakeManager(bus))
    conn.connected = True
    conn.link_model_to_app("app", "m")
    assert conn.get_app_info("nope") is None
    assert conn.get_model_info("m", 3) is None
    assert bus.calls == [("add_model_links", {"app_name": "app", "model_names": ["m"]}),
                         ("get_application", {"name": "nope"}),
                         ("get_model", {"model_name": "m", "model_version": "3"})]


def test_a_failed_replica_fails_the_deploy_at_once_with_its_cause():
    containers = {"ok": True, "result": [
        {"model_name": "m", "model_version": "1", "model_replica_id": 0,
         "state": "failed", "cause": "ModuleNotFoundError: No module named 'nothere'"}]}
    bus = FakeBus({"get_all_containers": json.dumps(containers).encode()})
    conn = ClipperConnection(FakeManager(bus))
    conn.connected = True
    start = time.monotonic()
    with pytest.raises(ClipperException, match="No module named 'nothere'"):
        conn.wait_for_model_ready("m", "1", timeout_s=30)
    assert time.monotonic() - start < 5


def test_deploy_waits_until_a_replica_is_ready():
    states = iter(["starting", "starting", "ready"])

    def containers(_body):
        return json.dumps({"ok": True, "result": [
            {"model_name": "m", "model_version": "1", "model_replica_id": 0,
             "state": next(states)}]}).encode()

    conn = ClipperConnection(FakeManager(FakeBus({"get_all_containers": containers})))
    conn.connected = True
    conn.wait_for_model_ready("m", 1, timeout_s=10)


def test_deploy_gives_up_after_the_timeout_with_what_it_saw():
    bus = FakeBus({"get_all_containers": b'{"ok": true, "result": []}'})
    conn = ClipperConnection(FakeManager(bus))
    conn.connected = True
    with pytest.raises(ClipperException, match="No replica of model m:1 became ready"):
        conn.wait_for_model_ready("m", "1", timeout_s=0.3)


def test_deploy_python_closure_uploads_then_registers_with_the_artifact_digest():
    uploaded = {}

    class ArtifactBus(FakeBus):
        def put_artifact(self, model, version, data):
            uploaded[(model, version)] = data
            import hashlib
            return hashlib.sha256(data).hexdigest()

    ready = json.dumps({"ok": True, "result": [
        {"model_name": "sum", "model_version": "2", "model_replica_id": 0,
         "state": "ready"}]}).encode()
    bus = ArtifactBus({"get_model": b'{"ok": true, "result": {}}',
                       "get_all_models": b'{"ok": true, "result": []}',
                       "add_model": b'{"ok": true, "result": "ok"}',
                       "get_all_containers": ready})
    conn = ClipperConnection(FakeManager(bus))
    conn.connected = True
    offset = 10

    def add(xs):
        return [str(sum(x) + offset) for x in xs]

    python_deployer.deploy_python_closure(conn, "sum", 2, "doubles", add, num_replicas=1,
                                          batch_size=8, labels=["x"])
    data = uploaded[("sum", "2")]
    import cloudpickle
    assert cloudpickle.loads(data)([[1.0, 2.0]]) == ["13.0"]
    add_model = [body for cmd, body in bus.calls if cmd == "add_model"][0]
    import hashlib
    assert add_model == {
        "model_name": "sum", "model_version": "2", "labels": ["x"], "input_type": "doubles",
        "container_name": "python-closure", "model_data_path": "DEPRECATED", "batch_size": 8,
        "runtime": "python-closure", "artifact_sha256": hashlib.sha256(data).hexdigest(),
        "artifact_size": len(data), "num_replicas": 1,
        "python_version": "{}.{}.{}".format(*sys.version_info[:3]),
        "cloudpickle_version": cloudpickle.__version__}


def test_deploying_an_existing_version_is_refused_before_uploading():
    class NoUploadBus(FakeBus):
        def put_artifact(self, *a):
            raise AssertionError("must not upload")

    bus = NoUploadBus({"get_model": b'{"ok": true, "result": {"model_name": "m"}}'})
    conn = ClipperConnection(FakeManager(bus))
    conn.connected = True
    with pytest.raises(ClipperException, match="already exists"):
        python_deployer.deploy_python_closure(conn, "m", 1, "doubles", lambda xs: xs)


def test_unpicklable_function_is_a_clear_error():
    import threading
    lock = threading.Lock()
    with pytest.raises(ClipperException, match="cloudpickle"):
        python_deployer.serialize_function(lambda xs: [str(lock)] * len(xs))


# ---- LocalContainerManager with a fake `clipper` ----------------------------

FAKE_CLIPPER = textwrap.dedent('''\
    #!{python}
    # A stand-in for `clipper start`: a real nats-server as a child, a stray
    # grandchild in its own session, a ready line, and a mode from the env.
    import os, signal, subprocess, sys, time
    args = sys.argv[1:]
    mode = os.environ.get("FAKE_MODE", "ok")
    def opt(name):
        return args[args.index(name) + 1] if name in args else None
    with open(os.path.join(opt("--log-dir"), "args.txt"), "w") as f:
        f.write(" ".join(args))
    if mode == "fail":
        print("clipper: cannot start the frontend: port in use", flush=True)
        sys.exit(3)
    port = opt("--nats-port")
    nats = subprocess.Popen(["{nats}", "-a", "127.0.0.1", "-p", port, "-js",
                             "-sd", opt("--data-dir")])
    stray = subprocess.Popen(["sleep", "300"], start_new_session=True)
    if mode == "slow":
        time.sleep(300)
    time.sleep(0.5)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *a: (nats.terminate(), nats.wait(), sys.exit(0)))
    print("clipper: cluster ready nats=nats://127.0.0.1:%s prefix=%s query=127.0.0.1:%s"
          % (port, opt("--prefix"), opt("--http-port")), flush=True)
    while True:
        time.sleep(1)
''')


@pytest.fixture
def fake_clipper(tmp_path, monkeypatch):
    path = tmp_path / "clipper"
    path.write_text(FAKE_CLIPPER.format(python=sys.executable, nats=nats_server_path()))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CLIPPER_BIN", str(path))
    managers = []

    def make(mode="ok", **kw):
        monkeypatch.setenv("FAKE_MODE", mode)
        cm = LocalContainerManager(cluster_name="fake-{}".format(os.urandom(4).hex()),
                                   clipper_query_port=free_port(),
                                   clipper_management_port=free_port(),
                                   prometheus_port=free_port(), **kw)
        managers.append(cm)
        return cm

    yield make
    for cm in managers:  # never leave a process or a directory behind
        if cm._pid is not None:
            cm.stop_all(graceful=False)
        if cm.log_file:
            shutil.rmtree(os.path.dirname(cm.log_file), ignore_errors=True)


def _run_dir(cm):
    return os.path.dirname(cm.log_file)


def test_start_runs_clipper_start_with_its_options_and_connects(fake_clipper):
    cm = fake_clipper()
    cm.start_clipper()
    try:
        assert cm.bus is not None and cm.bus.connected
        assert cm.bus.prefix == cm.prefix
        with open(os.path.join(cm.log_dir, "args.txt")) as f:
            args = f.read().split()
        assert args[0] == "start"
        assert args[args.index("--prefix") + 1] == cm.prefix
        assert args[args.index("--http-port") + 1] == str(cm.clipper_query_port)
        assert args[args.index("--admin-port") + 1] == str(cm.clipper_management_port)
        assert args[args.index("--metrics-port") + 1] == str(cm.prometheus_port)
        assert args[args.index("--cache-size") + 1] == "33554432"
        assert "--nats-port" in args and "--nats" not in args
        assert cm.bus_url.startswith("nats://127.0.0.1:")
        assert os.path.isdir(cm.data_dir)
        assert cm.data_dir.startswith(clipper_admin.CLIPPER_TEMP_DIR + "/")
        # A second manager of the same name sees the record but nobody
        # answers admin pings, so it may start; connect() finds nobody.
        with pytest.raises(ClipperException, match="No Clipper cluster with prefix"):
            LocalContainerManager(cluster_name=cm.cluster_name).connect()
    finally:
        cm.stop_all()


def test_stop_all_leaves_no_process_behind(fake_clipper):
    cm = fake_clipper()
    cm.start_clipper()
    time.sleep(0.3)
    tree = process_tree(cm._pid)
    assert len(tree) >= 3  # clipper, nats-server, the stray sleep
    data_dir = cm.data_dir
    run_dir = _run_dir(cm)
    cm.stop_all(graceful=True)
    assert alive(tree) == []
    assert processes_mentioning(data_dir) == []
    assert not os.path.exists(data_dir)
    assert not os.path.exists(run_dir)
    assert not os.path.exists(cm._cluster_file())
    assert cm.bus is None


def test_stop_all_not_graceful_kills_at_once(fake_clipper):
    cm = fake_clipper("stubborn")
    cm.start_clipper()
    tree = process_tree(cm._pid)
    start = time.monotonic()
    cm.stop_all(graceful=False)
    assert time.monotonic() - start < 5
    assert alive(tree) == []


def test_a_leader_ignoring_sigterm_is_killed_after_the_timeout(fake_clipper):
    cm = fake_clipper("stubborn")
    cm.stop_timeout_s = 1.0
    cm.start_clipper()
    tree = process_tree(cm._pid)
    start = time.monotonic()
    cm.stop_all(graceful=True)
    assert 0.9 < time.monotonic() - start < 8
    assert alive(tree) == []


def test_clipper_start_failing_raises_with_the_log_tail(fake_clipper):
    cm = fake_clipper("fail")
    with pytest.raises(ClipperException) as info:
        cm.start_clipper()
    assert "exited with code 3" in str(info.value)
    assert "cannot start the frontend: port in use" in str(info.value)
    assert cm._pid is None
    # The log the message names is kept.
    assert cm.log_file in str(info.value) and os.path.isfile(cm.log_file)


def test_no_ready_line_times_out_with_the_log_tail_and_kills_everything(fake_clipper):
    cm = fake_clipper("slow")
    cm.start_timeout_s = 1.5
    with pytest.raises(ClipperException) as info:
        cm.start_clipper()
    assert "was not ready within 2 s" in str(info.value) or "within 1 s" in str(info.value)
    assert "cluster ready" in str(info.value)
    time.sleep(0.2)
    assert processes_mentioning(_run_dir(cm)) == []


def test_missing_clipper_program_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CLIPPER_BIN", "/nonexistent/clipper")
    with pytest.raises(ClipperException, match="CLIPPER_BIN=/nonexistent/clipper"):
        LocalContainerManager(cluster_name="nobin", clipper_query_port=free_port(),
                              clipper_management_port=free_port(),
                              prometheus_port=free_port()).start_clipper()


def test_joining_a_bus_passes_the_url(fake_clipper, nats_url):
    cm = fake_clipper(nats_url=nats_url)
    args = cm._start_args("/bin/true", None, 1000, 1)
    assert args[args.index("--nats") + 1] == nats_url
    assert "--nats-port" not in args


def test_connect_to_a_bus_without_cluster_raises(nats_url):
    cm = LocalContainerManager(cluster_name="ghost", nats_url=nats_url)
    with pytest.raises(ClipperException, match="No Clipper cluster with prefix 'ghost'"):
        cm.connect()
    conn = ClipperConnection(cm)
    with pytest.raises(ClipperException):
        conn.connect()
    assert not conn.connected


def test_connect_without_bus_or_record_raises():
    cm = LocalContainerManager(cluster_name="never-started-{}".format(os.getpid()))
    with pytest.raises(ClipperException, match="No running cluster named"):
        cm.connect()


def test_atexit_stops_a_cluster_left_running(fake_clipper, tmp_path):
    script = tmp_path / "leave.py"
    script.write_text(textwrap.dedent('''
        import sys
        from clipper_admin import LocalContainerManager
        cm = LocalContainerManager(cluster_name="atexit-{pid}", clipper_query_port={q},
                                   clipper_management_port={a}, prometheus_port={m})
        cm.start_clipper()
        print(cm._pid, cm.data_dir, flush=True)
    '''.format(pid=os.getpid(), q=free_port(), a=free_port(), m=free_port())))
    import subprocess
    env = dict(os.environ, FAKE_MODE="ok")
    out = subprocess.run([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                         timeout=60, check=True).stdout.decode().split()
    pid, data_dir = int(out[0]), out[1]
    time.sleep(0.2)
    assert processes_mentioning(data_dir) == []
    assert not os.path.exists(os.path.dirname(data_dir))
    with pytest.raises(OSError):
        os.kill(pid, 0)


def test_stop_all_from_another_manager_stops_a_recorded_cluster(fake_clipper):
    cm = fake_clipper()
    cm.start_clipper()
    tree = process_tree(cm._pid)
    run_dir = _run_dir(cm)
    other = LocalContainerManager(cluster_name=cm.cluster_name)
    other.stop_all()
    assert alive(tree) == []
    assert not os.path.exists(run_dir)
    cm.stop_all()  # nothing left to stop: only a warning


def test_get_logs_copies_the_cluster_log(fake_clipper, tmp_path):
    cm = fake_clipper()
    cm.start_clipper()
    try:
        paths = cm.get_logs(str(tmp_path / "logs"))
        names = [os.path.basename(p) for p in paths]
        assert "clipper-start.log" in names
        with open(paths[names.index("clipper-start.log")]) as f:
            assert "cluster ready" in f.read()
    finally:
        cm.stop_all()


def test_python_version_mismatch_is_refused(monkeypatch):
    from clipper_admin import _locate
    monkeypatch.setattr(_locate, "runtime_python_version", lambda: "2.7")
    conn = ClipperConnection(FakeManager(FakeBus({})))
    conn.connected = True
    with pytest.raises(ClipperException, match="Python 2.7"):
        python_deployer.deploy_python_closure(conn, "m", 1, "doubles", lambda xs: xs)


def test_signal_module_is_untouched():
    # The package must not install signal handlers in the user's process.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.parametrize("bad", [-1, "32MB", 1.5, True])
def test_a_bad_cache_size_is_refused_before_anything_starts(fake_clipper, bad):
    cm = fake_clipper()
    with pytest.raises(ClipperException, match="cache_size must be a whole number of bytes"):
        cm.start_clipper(cache_size=bad)
    assert cm.bus is None
