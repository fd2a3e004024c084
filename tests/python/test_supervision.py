"""Supervision, failover and adoption end to end, on real clusters started
by LocalContainerManager ('clipper start'): every actor and the nats-server
killed with SIGKILL comes back and the cluster serves; the router's standby
takes over; the manager's replicas outlive it and are adopted; a process
that keeps ending stops the cluster; 'clipper run --supervised' and the
systemd units; and a short slice of the fault-injection table
(tests/fault/fault_suite.py, whose full run is `bash .ci/faults`)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from clipper_admin.deployers import python as python_deployer

from conftest import (clipper_bin_or_skip, free_port, nats_server_path, start_cluster,
                      stop_cluster, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fault"))
import fault_suite  # noqa: E402


def summed(xs):
    return [str(sum(x)) for x in xs]


def prediction(c, app, x=(1.0, 2.0)):
    try:
        r = c.nats(app, {"input": list(x)}, timeout_ms=2000)
    except Exception:  # noqa: BLE001 - not yet
        return None
    return r if r.get("default") is False and r.get("output") == float(sum(x)) else None


def supervisor_status(c):
    raw = c.cm.bus.request("{}.sv.list".format(c.cm.prefix), b"{}", 3000)
    st = json.loads(raw.decode())
    return {k["name"]: k for k in st["children"]}


def restarted(c, name, restarts):
    """The child's entry once it runs again after restarts restarts; None
    meanwhile (also while the bus itself is being restarted)."""
    try:
        k = supervisor_status(c)[name]
    except Exception:  # noqa: BLE001 - the nats-server may be restarting
        return None
    return k if k["restarts"] == restarts and k["state"] == "running" else None


@pytest.fixture
def served():
    c = start_cluster("sv", cache_size=0)
    try:
        c.conn.register_application("sv", "doubles", "-1.0", 1000000)
        python_deployer.deploy_python_closure(c.conn, "sv", 1, "doubles", summed,
                                              num_replicas=2)
        c.conn.link_model_to_app("sv", "sv")
        wait_until("a first prediction", lambda: prediction(c, "sv"), 60, 0.05)
        yield c
    finally:
        stop_cluster(c)


def test_every_killed_process_is_restarted_and_the_cluster_serves(served):
    c = served
    prefix = c.cm.prefix
    port = int(c.cm.bus_url.rsplit(":", 1)[1])
    st = supervisor_status(c)
    assert set(st) == {"nats-server", "admin", "router", "router-2", "frontend", "manager"}, st
    assert all(k["state"] == "running" and k["restarts"] == 0 for k in st.values()), st
    kinds = [("admin", "admin"), ("router", "router"), ("frontend", "frontend"),
             ("manager", "manager"), ("nats-server", None)]
    for name, kind in kinds:
        victims = fault_suite.nats_pids(port) if kind is None else \
            fault_suite.actor_pids(prefix, kind)
        assert victims, name
        before = supervisor_status(c)
        pid = victims[0]
        victim_name = [n for n, k in before.items() if k["pid"] == pid]
        assert victim_name, (name, pid, before)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        k = wait_until("{} restarted".format(victim_name[0]), lambda: restarted(
            c, victim_name[0], before[victim_name[0]]["restarts"] + 1), 30, 0.05)
        wait_until("a prediction after the {} was killed".format(name),
                   lambda: prediction(c, "sv", (float(len(name)), 1.0)), 30, 0.05)
        print("FIGURE kill -9 of the {}: restarted and predicting again after {:.2f} s".format(
            name, time.monotonic() - t0))
        assert k["last_exit_code"] == -9 and "signal 9" in k["last_exit"], k
    # The state survived all of it.
    assert [a["name"] for a in c.conn.get_all_apps(verbose=True)] == ["sv"]


def test_the_standby_router_takes_over_from_a_killed_leader(served):
    c = served
    leader = fault_suite.leading_router(c.cm.bus, c.cm.prefix)["pid"]
    routers = fault_suite.actor_pids(c.cm.prefix, "router")
    assert len(routers) == 2 and leader in routers
    os.kill(leader, signal.SIGKILL)
    t0 = time.monotonic()
    wait_until("a prediction from the new leader", lambda: prediction(c, "sv", (5.0, 1.0)),
               10, 0.01)
    took = time.monotonic() - t0
    print("FIGURE the leading router killed: predictions again after {:.3f} s".format(took))
    new = fault_suite.leading_router(c.cm.bus, c.cm.prefix)
    # The standby, or the killed one's restart if it won the election (both
    # listen; the smaller id takes the lead): anyone but the dead one.
    assert new["pid"] != leader
    assert new["pid"] in fault_suite.actor_pids(c.cm.prefix, "router")
    assert new["epoch"] >= 2


def prom_value(text, name):
    """The value of an unlabelled sample name in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no sample {} in:\n{}".format(name, text))


def test_the_routers_metrics_add_up_over_leader_and_standby(served):
    """A leader that stops leading keeps its counters as a standby; the
    frontend's Prometheus door adds every router's snapshot up."""
    import urllib.request
    c = served
    prefix = c.cm.prefix
    first = fault_suite.leading_router(c.cm.bus, prefix)["pid"]
    for i in range(30):
        assert prediction(c, "sv", (float(i), 1.0)), i
    # A leader stopped for 1 s (less than the supervisor's 2 s before it
    # kills a stopped child) loses the lead, and steps down when it resumes.
    os.kill(first, signal.SIGSTOP)
    try:
        wait_until("the standby leading",
                   lambda: any(s["router"]["leading"] and s["router"]["pid"] != first
                               for s in fault_suite.router_snapshots(c.cm.bus, prefix, 300)),
                   10, 0.05)
    finally:
        time.sleep(0.2)
        os.kill(first, signal.SIGCONT)

    def two_routers_one_leader():
        snaps = fault_suite.router_snapshots(c.cm.bus, prefix)
        by_pid = {s["router"]["pid"]: s for s in snaps}
        if len(snaps) != 2 or first not in by_pid or by_pid[first]["router"]["leading"]:
            return None
        return by_pid

    wait_until("the old leader standing by", two_routers_one_leader, 10, 0.05)
    for i in range(30):
        assert prediction(c, "sv", (float(i), 2.0)), i
    by_pid = two_routers_one_leader()
    assert by_pid is not None
    old = by_pid.pop(first)
    new = list(by_pid.values())[0]
    # Each counted its own share: the standby kept what it counted.
    assert old["tasks_received"] >= 30 and new["tasks_received"] >= 30, (old, new)
    url = "http://{}/metrics".format(c.cm.get_metric_addr())
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert prom_value(text, "clipper_routers_answered") == 2
    assert prom_value(text, "clipper_router_tasks_received_total") == \
        old["tasks_received"] + new["tasks_received"]
    dispatched = [line for line in text.splitlines()
                  if line.startswith("clipper_tasks_dispatched_total{")]
    assert len(dispatched) == 1, dispatched
    assert float(dispatched[0].split()[-1]) == sum(
        v["tasks_dispatched"] for s in (old, new) for v in s["versions"]), dispatched
    print("FIGURE routers' metrics added up: {} + {} tasks received".format(
        old["tasks_received"], new["tasks_received"]))


def test_replicas_outlive_a_killed_manager_and_are_adopted(served):
    c = served
    replicas = fault_suite.actor_pids(c.cm.prefix, "replica")
    assert len(replicas) == 2
    manager = fault_suite.actor_pids(c.cm.prefix, "manager")
    assert len(manager) == 1
    os.kill(manager[0], signal.SIGKILL)
    # The replicas never stop serving.
    for i in range(20):
        assert prediction(c, "sv", (float(i), 0.5)) is not None
        time.sleep(0.05)
    wait_until("a new manager", lambda: fault_suite.actor_pids(c.cm.prefix, "manager") not in
               ([], manager), 10)

    def adopted():
        try:
            st = json.loads(c.cm.bus.request("{}.cm.status".format(c.cm.prefix), b"{}",
                                             2000).decode())
        except Exception:  # noqa: BLE001 - not answering yet
            return None
        rows = [r for r in (st if isinstance(st, list) else st.get("replicas", []))
                if r.get("model") == "sv"]
        return rows if sorted(r.get("pid") for r in rows) == sorted(replicas) else None
    rows = wait_until("the new manager lists the same replica processes", adopted, 15, 0.1)
    assert all(r.get("state") == "running" for r in rows), rows
    # Nothing else started; the same two processes serve.
    time.sleep(1.5)
    assert fault_suite.actor_pids(c.cm.prefix, "replica") == replicas
    assert prediction(c, "sv", (7.0, 1.0)) is not None
    # Scaling still works on adopted replicas: down to one stops one of them.
    c.conn.set_num_replicas("sv", 1)
    wait_until("one replica", lambda: len(fault_suite.actor_pids(c.cm.prefix, "replica")) == 1,
               20)
    assert fault_suite.actor_pids(c.cm.prefix, "replica")[0] in replicas


def test_a_process_that_keeps_ending_stops_the_cluster(tmp_path):
    exe = clipper_bin_or_skip()
    nport, http, admin = free_port(), free_port(), free_port()
    env = dict(os.environ, CLIPPER_NATS_SERVER=nats_server_path())
    p = subprocess.Popen([exe, "start", "--nats-port", str(nport), "--http-port", str(http),
                          "--admin-port", str(admin), "--metrics-port", "-1",
                          "--data-dir", str(tmp_path), "--prefix", "svloop",
                          "--max-restarts", "2", "--restart-period", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = p.stdout.readline().decode()
        assert "cluster ready" in line, line
        for _ in range(3):
            pids = fault_suite.actor_pids("svloop", "admin")
            wait_until("an admin", lambda: fault_suite.actor_pids("svloop", "admin"), 10, 0.02)
            pids = fault_suite.actor_pids("svloop", "admin")
            os.kill(pids[0], signal.SIGKILL)
            wait_until("the admin gone", lambda: pids[0] not in
                       fault_suite.actor_pids("svloop", "admin"), 10, 0.02)
        code = p.wait(60)
        err = p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
    assert code == 1, err
    assert "giving up on it" in err and "the admin keeps ending" in err, err
    assert not fault_suite.actor_pids("svloop", "router"), "actors outlived clipper start"


def test_clipper_run_supervised(tmp_path):
    exe = clipper_bin_or_skip()
    # Bad usage says what is wrong.
    r = subprocess.run([exe, "run", "--supervised"], capture_output=True, text=True)
    assert r.returncode == 2 and "which actor?" in r.stderr
    r = subprocess.run([exe, "run", "--supervised", "--max-restarts", "0", "router"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--max-restarts must be a whole number from 1 to 64" in r.stderr
    r = subprocess.run([exe, "run", "--supervised", "--bogus", "router"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr
    # A replica of a model that does not exist ends at once, again and
    # again: the supervisor gives up and exits 1.
    nats = subprocess.Popen([nats_server_path(), "-a", "127.0.0.1", "-p", str(free_port()),
                             "-js", "-sd", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = None
    try:
        url = "nats://127.0.0.1:{}".format(nats.args[4])
        time.sleep(0.5)
        r = subprocess.run([exe, "run", "--supervised", "--max-restarts", "2", "replica",
                            "--nats", url, "--prefix", "svrun", "--model", "nope",
                            "--version", "1"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, r.stderr
        assert "giving up on it" in r.stderr and "replica keeps ending; exiting 1" in r.stderr
        # A router under it: killed, restarted; SIGTERM stops both, exit 0.
        sv = subprocess.Popen([exe, "run", "--supervised", "--supervisor-port", "0", "router",
                               "--nats", url, "--prefix", "svrun"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until("a router", lambda: fault_suite.actor_pids("svrun", "router"), 10, 0.02)
        first = fault_suite.actor_pids("svrun", "router")[0]
        os.kill(first, signal.SIGKILL)
        wait_until("another router", lambda: fault_suite.actor_pids("svrun", "router") not in
                   ([], [first]), 10, 0.02)
        sv.send_signal(signal.SIGTERM)
        assert sv.wait(30) == 0
        err = sv.stderr.read().decode()
        assert "router restarted (pid" in err and "stopping router" in err, err
        assert not fault_suite.actor_pids("svrun", "router")
    finally:
        nats.kill()
        nats.wait()


def test_the_systemd_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian's systemd package)")
    exe = clipper_bin_or_skip()
    units = os.path.join(HERE, "..", "..", "deployers", "systemd")
    for name in ("clipper@.service", "clipper-nats.service"):
        text = open(os.path.join(units, name)).read()
        text = text.replace("/usr/local/bin/clipper", exe).replace("/usr/sbin/nats-server",
                                                                   nats_server_path())
        (tmp_path / name).write_text(text)
    # A template is verified through an instance of it.
    os.symlink(str(tmp_path / "clipper@.service"), str(tmp_path / "clipper@router.service"))
    for unit in ("clipper@router.service", "clipper-nats.service"):
        r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)],
                           capture_output=True, text=True)
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if unit.split("@")[0] in l or "clipper" in l]
        assert r.returncode == 0 and not problems, (unit, r.stdout, r.stderr)


def test_a_slice_of_the_fault_table():
    """Six rows of `bash .ci/faults`, shorter: never-answered 0 (but the
    queries inside a killed nats-server, or inside a stopped frontend when
    its supervisor killed it), the state intact, predictions back before
    each row ends. The figures are printed."""
    bench = os.path.join(os.path.dirname(os.environ["CLIPPER_BIN"]), "..", "..", "tests",
                         "bench", "clipper-bench")
    assert os.access(bench, os.X_OK), bench
    tmp = tempfile.mkdtemp(prefix="faults-")
    out, logs = os.path.join(tmp, "slice.json"), os.path.join(tmp, "failing-rows.log")
    r = subprocess.run([sys.executable, fault_suite.__file__, "--bench", bench,
                        "--rows", "router-kill,frontend-kill,manager-kill,nats-kill,replica-stop,"
                        "frontend-stop",
                        "--rate", "200", "--seconds", "9", "--fault-at", "3", "--stop-s", "3",
                        "--json", out, "--failure-logs", logs, "--check"],
                       capture_output=True, text=True, timeout=600)
    print(r.stdout[-3000:])
    rows = json.load(open(out))
    for row in rows:
        print("FIGURE fault {}".format(json.dumps(row)))
    if r.returncode != 0:
        # Last, where a CI log's tail shows it: what the cluster of each
        # failing row said before it failed.
        print(r.stderr[-2000:])
        if os.path.exists(logs):
            print(open(logs).read())
    assert r.returncode == 0, [row for row in rows if not row.get("ok")]
    assert [row["row"] for row in rows] == ["router-kill", "frontend-kill", "manager-kill",
                                            "nats-kill", "replica-stop", "frontend-stop"]
