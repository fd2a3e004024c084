"""Several hosts: the bus on one host, the cluster's actors on another, a
client and a hand-started replica on the first.

The hosts are network namespaces this test makes (root and iproute2 are
needed; otherwise it is skipped), joined by a veth pair on a /30 of their
own. Nothing leaves the machine.

  host A (ns clA-*): nats-server, the Python client, a replica started by hand
  host B (ns clB-*): `clipper start --nats nats://A:port` (admin, router,
                     frontend, manager and the replicas the manager starts)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

from conftest import clipper_bin_or_skip, nats_server_path

A_ADDR, B_ADDR = "10.231.77.1", "10.231.77.2"


def ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), check=check, capture_output=True, text=True)


@pytest.fixture
def hosts():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make network namespaces")
    tag = uuid.uuid4().hex[:6]
    a, b = "clA-" + tag, "clB-" + tag
    va, vb = "vA" + tag, "vB" + tag
    try:
        ip("netns", "add", a)
        ip("netns", "add", b)
        ip("link", "add", va, "type", "veth", "peer", "name", vb)
        ip("link", "set", va, "netns", a)
        ip("link", "set", vb, "netns", b)
        for ns, dev, addr in ((a, va, A_ADDR), (b, vb, B_ADDR)):
            ip("-n", ns, "addr", "add", addr + "/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        for ns in (a, b):
            ip("netns", "del", ns, check=False)
        pytest.skip("cannot make network namespaces here: {}".format(e.stderr.strip()))
    procs = []

    def spawn(ns, argv, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, start_new_session=True, **kw)
        procs.append(p)
        return p

    try:
        yield a, b, spawn
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for ns in (a, b):
            ip("netns", "del", ns, check=False)


def wait_line(proc, needle, timeout):
    stream = proc.stdout
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if needle in line:
            return line
    raise AssertionError("no '{}' within {} s; output: {}".format(needle, timeout, lines))


CLIENT = textwrap.dedent("""
    import json, subprocess, sys, time, urllib.request
    from clipper_admin import ClipperConnection, LocalContainerManager
    from clipper_admin.deployers import python as python_deployer

    url, b_http, clipper = sys.argv[1], sys.argv[2], sys.argv[3]
    cm = LocalContainerManager(nats_url=url)
    conn = ClipperConnection(cm)
    conn.connect()
    python_deployer.create_endpoint(conn, "far", "doubles",
                                    lambda xs: [str(sum(x)) for x in xs],
                                    default_output="-1.0", slo_micros=2000000)

    def over_nats(x):
        return json.loads(cm.bus.predict("far", json.dumps({"input": x}).encode(), 10000))

    def over_http(x):
        req = urllib.request.Request("http://%s/far/predict" % b_http,
                                     data=json.dumps({"input": x}).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    out = {"nats": over_nats([1.0, 2.0]), "http": over_http([3.0, 4.0])}
    hosts = {r["host"] for r in conn.get_all_model_replicas(verbose=True)}
    out["replica_hosts_before"] = sorted(hosts)

    # A replica on this host, started by hand with only the bus URL and the
    # model version, joins; then the manager's replicas on host B go away.
    mine = subprocess.Popen([clipper, "run", "replica", "--nats", url,
                             "--model", "far", "--version", "1"])
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = conn.get_all_model_replicas(verbose=True)
        if any(r.get("pid") == mine.pid and r.get("state") == "ready" for r in rows):
            break
        time.sleep(0.1)
    conn.set_num_replicas("far", 0, "1")
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = conn.get_all_model_replicas(verbose=True)
        if [r.get("pid") for r in rows] == [mine.pid]:
            break
        time.sleep(0.1)
    out["replicas_after"] = [(r.get("pid") == mine.pid, r.get("state")) for r in rows]
    out["nats_after"] = over_nats([5.0, 6.0])
    mine.terminate()
    mine.wait(timeout=10)
    print("RESULT " + json.dumps(out), flush=True)
""")


def test_actors_on_another_host_serve_a_client_and_a_remote_replica(hosts, tmp_path):
    clipper = os.path.abspath(clipper_bin_or_skip())
    a, b, spawn = hosts
    port = 4222  # inside host A's own namespace: nothing else listens there
    nats_url = "nats://{}:{}".format(A_ADDR, port)
    nats_log = tmp_path / "nats.log"
    spawn(a, [nats_server_path(), "-a", A_ADDR, "-p", str(port), "-js",
              "-sd", str(tmp_path / "js"), "-l", str(nats_log)],
          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (nats_log.exists() and "Server is ready" in nats_log.read_text()):
        assert time.monotonic() < deadline, "nats-server on host A did not start"
        time.sleep(0.05)
    start_log = tmp_path / "clipper-start.log"
    with open(start_log, "w") as log:
        cluster = spawn(b, [clipper, "start", "--nats", nats_url, "--http-host", B_ADDR,
                            "--http-port", "1337", "--data-dir", str(tmp_path / "b")],
                        stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        wait_line(cluster, "cluster ready", 30)
    except AssertionError as e:
        raise AssertionError("{}\nclipper start said:\n{}".format(e, start_log.read_text()[-3000:]))

    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = dict(os.environ)
    client = spawn(a, [sys.executable, str(script), nats_url, B_ADDR + ":1337", clipper],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = client.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(client.pid, signal.SIGKILL)
        out, err = client.communicate()
        raise AssertionError("the client on host A hung; its output:\n" + err[-4000:])
    assert client.returncode == 0, err[-3000:]
    result = json.loads(out.split("RESULT ", 1)[1])

    assert result["nats"]["output"] == 3.0 and result["nats"]["default"] is False
    assert result["http"]["output"] == 7.0 and result["http"]["default"] is False
    assert len(result["replica_hosts_before"]) == 1
    assert result["replicas_after"] == [[True, "ready"]]
    assert result["nats_after"]["output"] == 11.0
    assert result["nats_after"]["default"] is False
