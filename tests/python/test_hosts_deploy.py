"""clipper_admin.hosts on real hosts: the multi-host harness's network
namespaces, each running sshd (tests/hosts/netns_hosts.py), and the script run
from the client namespace, so that ssh, scp and the bus go over their network.

One cluster for the module, on h1..h3 (all: nats, manager, frontend; admin
on h1; routers on h1 and h2); h4 (frontend, manager) joins with add-host and
leaves with drain. remote_dir is ~/clipper: the harness's sshd sets HOME to
each host's own directory. Needs root, iproute2, openssh-server (skips
without them), the clipper program and nats-server: the cluster one
(tests/hosts/netns_hosts.py cluster_nats_server: env
CLIPPER_CLUSTER_NATS_SERVER, else the v2.14.10 .ci/setup builds, else
Debian's).
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from conftest import clipper_bin_or_skip

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
import netns_hosts as nh  # noqa: E402

CLUSTER = "hd"
BASE_ROLES = {"h1": ["nats", "admin", "router", "frontend", "manager"],
              "h2": ["nats", "router", "frontend", "manager"],
              "h3": ["nats", "frontend", "manager"]}
H4_ROLES = ["frontend", "manager"]
APP, MODEL = "sums", "summer"


def cluster_nats_server_or_skip():
    p = nh.cluster_nats_server()
    if p is None:
        pytest.skip("nats-server is not installed")
    return p


class Env(object):
    """The harness, the operator's directory and the inventory."""

    def __init__(self, hs, tmp):
        self.hs = hs
        self.tmp = tmp
        self.data_dir = os.path.join(tmp, "data")
        self.clipper = clipper_bin_or_skip()
        self.nats_server = cluster_nats_server_or_skip()
        self.inventory = self.write_inventory("inventory.toml", BASE_ROLES)

    def remote_dir(self, h):
        return os.path.join(self.hs[h].root, "clipper")

    def inventory_text(self, roles, extra_top="", extra_host=None):
        lines = ['cluster = "{}"'.format(CLUSTER),
                 'data_dir = "{}"'.format(self.data_dir),
                 'remote_dir = "~/clipper"',
                 'clipper = "{}"'.format(self.clipper),
                 'nats_server = "{}"'.format(self.nats_server),
                 'ssh_config = "{}"'.format(self.hs.ssh_config)]
        if extra_top:
            lines.append(extra_top)
        for name, rs in roles.items():
            lines += ["", "[[hosts]]", 'name = "{}"'.format(name),
                      'address = "{}"'.format(self.hs[name].addr), 'ssh = "{}"'.format(name),
                      "roles = [{}]".format(", ".join('"{}"'.format(r) for r in rs))]
            if extra_host and name in extra_host:
                lines.append(extra_host[name])
        return "\n".join(lines) + "\n"

    def write_inventory(self, name, roles, **kw):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(self.inventory_text(roles, **kw))
        return path

    def run(self, *args, inventory=None, timeout=600):
        """python3 -m clipper_admin.hosts ARGS in the client namespace:
        (exit code, stdout + stderr)."""
        argv = ["ip", "netns", "exec", self.hs.client.netns, sys.executable, "-m",
                "clipper_admin.hosts", args[0], inventory or self.inventory] + list(args[1:])
        env = dict(os.environ, CLIPPER_BIN=self.clipper)
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        sys.stdout.write("$ hosts {} ({:.1f} s, exit {})\n{}\n".format(
            " ".join(args), time.monotonic() - t0, p.returncode, out))
        return p.returncode, out

    def status(self, inventory=None):
        rc, out = self.run("status", "--json", inventory=inventory)
        start = out.index("{")
        return rc, json.loads(out[start:out.rindex("}") + 1])

    def processes(self, h):
        """Pids whose command line names h's remote_dir."""
        needle = (self.remote_dir(h) + "/").encode()
        found = []
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open("/proc/{}/cmdline".format(e), "rb") as f:
                    if needle in f.read():
                        found.append(int(e))
            except OSError:
                pass
        return found

    def query(self, h, body, port=1337):
        """POST /<app>/predict to h's frontend from the client namespace."""
        code = ("import json, sys, urllib.request\n"
                "req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), "
                "headers={'Content-Type': 'application/json'})\n"
                "print(urllib.request.urlopen(req, timeout=20).read().decode())\n")
        url = "http://{}:{}/{}/predict".format(self.hs[h].addr, port, APP)
        p = self.hs.exec("client", [sys.executable, "-c", code, url, json.dumps(body)],
                         timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def monitor(self, h, path):
        """nats-server's monitoring JSON of h, fetched from the client namespace."""
        code = ("import sys, urllib.request\n"
                "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())\n")
        p = self.hs.exec("client", [sys.executable, "-c", code,
                                    "http://{}:8222{}".format(self.hs[h].addr, path)],
                         timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def cluster_info(self):
        with open(os.path.join(self.data_dir, "cluster.json")) as f:
            return json.load(f)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    try:
        nh.check_requirements()
    except nh.HarnessUnavailable as e:
        pytest.skip(str(e))
    clipper_bin_or_skip()
    cluster_nats_server_or_skip()
    tmp = str(tmp_path_factory.mktemp("hosts-deploy"))
    hs = nh.Hosts(4, base_dir=os.path.join(tmp, "hosts"))
    hs.up()
    e = None
    try:
        e = Env(hs, tmp)
        yield e
    finally:
        try:
            if e is not None:
                inv = e.write_inventory("teardown.toml", dict(BASE_ROLES, h4=H4_ROLES),
                                        extra_host={"h3": "metrics_port = 1391"})
                e.run("down", inventory=inv, timeout=300)
        finally:
            hs.down()


def connect(env):
    """A ClipperConnection joined to the cluster through cluster.json's
    LocalContainerManager arguments (it starts nothing)."""
    from clipper_admin import ClipperConnection, LocalContainerManager
    cm = LocalContainerManager(**env.cluster_info()["local_container_manager"])

    conn = ClipperConnection(cm)
    conn.connect()
    return conn, cm


def parts_by_host(st):
    out = {}
    for p in st["parts"]:
        out.setdefault(p["host"], {})[p["part"]] = p
    return out


# ---- refused before anything is touched -------------------------------------------

BAD = [
    ("misspelt field", lambda t: t.replace('address = ', 'adress = ', 1),
     r"hosts\[0\] \(h1\)\.adress: unknown field"),
    ("missing address", lambda t: re.sub(r'\naddress = "[^"]*"', "", t, count=1),
     r"hosts\[0\] \(h1\)\.address: missing"),
    ("missing cluster", lambda t: t.replace('cluster = "{}"\n'.format(CLUSTER), ""),
     r"\bcluster: missing"),
    ("two nats hosts", lambda t: t.replace('roles = ["nats", "frontend", "manager"]',
                                           'roles = ["frontend", "manager"]'),
     r"hosts\[\]\.roles: 2 hosts have role nats"),
    ("unknown role", lambda t: t.replace('"frontend", "manager"]', '"frontend", "mangler"]', 1),
     r"hosts\[0\] \(h1\)\.roles: unknown role 'mangler'"),
    ("duplicate name", lambda t: t.replace('name = "h2"', 'name = "h1"'),
     r"hosts\[1\] \(h1\)\.name: duplicate name 'h1'"),
]


@pytest.mark.parametrize("what,edit,message", BAD, ids=[b[0] for b in BAD])
def test_bad_inventory_refused(env, what, edit, message):
    text = edit(env.inventory_text(BASE_ROLES))
    path = os.path.join(env.tmp, "bad.toml")
    with open(path, "w") as f:
        f.write(text)
    rc, out = env.run("up", inventory=path)
    assert rc == 2, out
    assert re.search(message, out), out
    # nothing touched: no secrets made here, no directory there
    assert not os.path.exists(env.data_dir)
    for h in BASE_ROLES:
        assert not os.path.exists(env.remote_dir(h))


def test_unreachable_host_fails_naming_it(env):
    env.hs.link("h3", "down")
    try:
        rc, out = env.run("up", timeout=300)
    finally:
        env.hs.link("h3", "up")
    assert rc == 1, out
    assert re.search(r"error: \[h3\] preflight: cannot reach h3 over ssh", out), out
    for h in BASE_ROLES:
        assert env.processes(h) == []


# ---- up, again, status ---------------------------------------------------------

def test_up_from_nothing(env):
    t0 = time.monotonic()
    rc, out = env.run("up")
    took = time.monotonic() - t0
    assert rc == 0, out
    print("FIGURE up 3 hosts: {:.1f} s".format(took))
    m = re.search(r"^up: done in ([\d.]+) s$", out, re.M)
    assert m, out
    for h, roles in BASE_ROLES.items():
        for part in roles:
            assert re.search(r"^\[{}\] {}: started \(pid \d+\)$".format(h, part), out, re.M), \
                (h, part, out)
    assert "[h1] nats: " in out and "nats cluster hd: 3 servers, routes complete" in out
    # sync_interval: always from nats-server 2.10 on; before, a warning, once
    version = subprocess.run([env.nats_server, "--version"], capture_output=True,
                             text=True).stdout
    print("nats-server: {} ({})".format(version.strip(), env.nats_server))
    old = re.search(r"v2\.([0-9])\.", version)
    warnings = re.findall(r"^warning: .*sync_interval: always", out, re.M)
    assert len(warnings) == (1 if old else 0), out
    for h in BASE_ROLES:
        with open(os.path.join(env.remote_dir(h), "nats", "nats.conf")) as f:
            conf = f.read()
        assert ("sync_interval: always" in conf) == (not old), (h, conf)
    # the summary: every part on its host
    table = out[out.index("cluster hd: 3 host(s), healthy"):]
    for h, roles in BASE_ROLES.items():
        for part in roles:
            assert re.search(r"^  {} +{} +{} +\d+ +running".format(
                h, re.escape(env.hs[h].addr), part), table, re.M), (h, part, table)
    info = env.cluster_info()
    assert info["prefix"] == CLUSTER and info["nats_url"].count("tls://") == 3
    # the secrets: each host has only its own, 0600 in a 0700 directory
    for h, roles in BASE_ROLES.items():
        sec = os.path.join(env.remote_dir(h), "secrets")
        assert oct(os.stat(sec).st_mode & 0o777) == "0o700"
        have = set(os.listdir(sec)) - {"nats"}
        want = {"ca.pem", "supervisor.creds", "replica.creds"} | {
            r + ".creds" for r in roles if r != "nats"}
        assert have == want, (h, have)
        for f in have - {"ca.pem"}:
            assert oct(os.stat(os.path.join(sec, f)).st_mode & 0o777) == "0o600"
        assert sorted(os.listdir(os.path.join(sec, "nats"))) == [
            "nats-server.auth.conf", "server.key", "server.pem"]
    # no secret on a command line
    for h in BASE_ROLES:
        for pid in env.processes(h):
            with open("/proc/{}/cmdline".format(pid), "rb") as f:
                cmd = f.read()
            assert b"SUA" not in cmd and b"-----BEGIN" not in cmd


def test_up_again_changes_nothing(env):
    before = {h: sorted(env.processes(h)) for h in BASE_ROLES}
    rc, out = env.run("up")
    assert rc == 0, out
    assert "started" not in out and "restarting" not in out, out
    for h, roles in BASE_ROLES.items():
        for part in roles:
            assert re.search(r"^\[{}\] {}: unchanged \(pid \d+\)$".format(h, part), out, re.M), \
                (h, part, out)
        assert "[{}] secrets: unchanged".format(h) in out
    assert {h: sorted(env.processes(h)) for h in BASE_ROLES} == before


def test_up_restarts_what_changed(env):
    """h3's frontend gets another metrics port: up restarts it, only it."""
    env.inventory = env.write_inventory("inventory-m.toml", BASE_ROLES,
                                        extra_host={"h3": "metrics_port = 1391"})
    rc, out = env.run("up")
    assert rc == 0, out
    assert "[h3] frontend: command line or files changed: restarting" in out, out
    assert re.search(r"^\[h3\] frontend: started \(pid \d+\)$", out, re.M), out
    assert len(re.findall(r": started \(pid", out)) == 1, out
    with open(os.path.join(env.remote_dir("h3"), "run", "frontend.cmd")) as f:
        assert "--metrics-port 1391" in f.read()


def test_status(env):
    rc, st = env.status()
    assert rc == 0 and st["healthy"], st
    got = parts_by_host(st)
    assert set(got) == set(BASE_ROLES)
    for h, roles in BASE_ROLES.items():
        assert set(got[h]) == set(roles), (h, got[h])
        for part in roles:
            assert got[h][part]["state"] == "running" and got[h][part]["pid"], got[h][part]
    # the NATS cluster: every server has routes to both others (distinct
    # remote_id: nats-server 2.10 and later keep a pool of routes to each)
    for h in BASE_ROLES:
        routes = env.monitor(h, "/routez")["routes"]
        assert len({r["remote_id"] for r in routes}) == 2, (h, routes)
        # and status says so, with the one meta leader
        assert got[h]["nats"]["route_peers"] == 2, got[h]["nats"]
    assert [h for h in BASE_ROLES if got[h]["nats"]["meta_leader"]] == [st["meta_leader"]], st
    # the state bucket and the artifact stream: 3 replicas, one per nats host
    jsz = env.monitor("h2", "/jsz?acc=CLIPPER_{}&streams=true&config=true".format(
        CLUSTER.upper()))
    streams = {x["name"]: x for a in jsz["account_details"] for x in a["stream_detail"]}
    for name in ("KV_{}_state".format(CLUSTER), "{}_ARTIFACTS".format(CLUSTER.upper())):
        assert streams[name]["config"]["num_replicas"] == 3, streams[name]
        c = streams[name]["cluster"]
        # (the peers of the server asked, h2)
        assert {r["name"] for r in c["replicas"]} | {"h2"} == set(BASE_ROLES), c
        assert c["leader"] in BASE_ROLES, c
    leaders = [r for r in st["routers"] if r.get("leading")]
    assert len(leaders) == 1 and leaders[0]["host"] in ("h1", "h2")
    rc, out = env.run("status")
    assert rc == 0 and "cluster hd: healthy" in out, out
    assert out.count("routes to 2 of 2") == 3 and out.count("JetStream meta leader") == 1, out


# ---- a model ----------------------------------------------------------------------

def test_deploy_closure_and_query(env):
    from clipper_admin.deployers import python as python_deployer
    conn, cm = connect(env)
    try:
        conn.register_application(name=APP, input_type="doubles", default_output="-1.0",
                                  slo_micros=5000000)
        offset = 0.5
        python_deployer.deploy_python_closure(
            conn, name=MODEL, version=1, input_type="doubles",
            func=lambda xs: [str(sum(x) + offset) for x in xs])
        conn.link_model_to_app(app_name=APP, model_name=MODEL)
        # three replicas: the managers spread them over the hosts
        conn.set_num_replicas(MODEL, 3, version=1)
    finally:
        cm.bus.close()
    for h in BASE_ROLES:
        r = env.query(h, {"input": [1.0, 2.0, 3.0]})
        assert r["default"] is False and float(r["output"]) == 6.5, (h, r)
    rc, st = env.status()
    assert rc == 0, st
    placed = {h: row for h, row in (st["cm_hosts"] or {}).items()}
    print("placement:", {h: [(v["model"], v["running"]) for v in row.get("versions", [])]
                         for h, row in placed.items()})


# ---- add-host, drain, upgrade -----------------------------------------------------------

def test_add_host(env):
    env.inventory = env.write_inventory("inventory4.toml", dict(BASE_ROLES, h4=H4_ROLES),
                                        extra_host={"h3": "metrics_port = 1391"})
    rc, out = env.run("add-host", "h4")
    assert rc == 0, out
    for part in H4_ROLES:
        assert re.search(r"^\[h4\] {}: started \(pid \d+\)$".format(part), out, re.M), out
    assert not re.search(r"^\[h[123]\] \w+: started", out, re.M), out
    rc, st = env.status()
    assert rc == 0, st
    assert set(parts_by_host(st)["h4"]) == set(H4_ROLES)
    r = env.query("h4", {"input": [2.0, 2.0]})
    assert r["default"] is False and float(r["output"]) == 4.5, r


def test_drain(env):
    conn, cm = connect(env)
    try:
        # one replica per host: h4 gets one too
        conn.set_num_replicas(MODEL, 4, version=1)
    finally:
        cm.bus.close()
    rc, st = env.status()
    on_h4 = sum(v["running"] for v in (st["cm_hosts"] or {}).get("h4", {}).get("versions", []))
    assert on_h4 >= 1, st["cm_hosts"]
    rc, out = env.run("drain", "h4")
    assert rc == 0, out
    assert "[h4] manager: runs no replica now" in out
    assert env.processes("h4") == []
    rc, st = env.status()
    assert rc == 0, st
    assert "h4" in st["drained"]
    total = sum(v["running"] for row in (st["cm_hosts"] or {}).values()
                for v in row.get("versions", []) if v["model"] == MODEL)
    assert total == 4, st["cm_hosts"]
    for h in BASE_ROLES:
        r = env.query(h, {"input": [1.0]})
        assert r["default"] is False, r
    # a nats host cannot be drained
    rc, out = env.run("drain", "h1")
    assert rc == 1 and re.search(r"\[h1\] drain: it runs nats", out), out


def test_rolling_upgrade_loses_no_query(env):
    from clipper_admin._bus import Bus, BusError
    info = env.cluster_info()
    bus = Bus(info["nats_url"], prefix=info["prefix"], creds=info["creds"],
              tls_ca=info["tls_ca"], tls_name=info["tls_name"], name="pytest-load")
    counts = {"ok": 0, "default": 0, "lost": []}
    stop = threading.Event()

    def load():
        while not stop.is_set():
            t = time.time()
            try:
                r = json.loads(bus.predict(APP, b'{"input": [1.0, 1.0]}', 15000))
                counts["default" if r.get("default") else "ok"] += 1
            except BusError as e:
                counts["lost"].append((round(t, 3), str(e)[:60]))
            time.sleep(0.02)
    th = threading.Thread(target=load)
    th.start()
    try:
        t0 = time.monotonic()
        rc, out = env.run("upgrade", timeout=900)
        print("FIGURE upgrade 3 hosts (+1 drained): {:.1f} s".format(time.monotonic() - t0))
    finally:
        stop.set()
        th.join()
        bus.close()
    assert rc == 0, out
    for h, roles in BASE_ROLES.items():
        for part in roles:
            assert re.search(r"^\[{}\] {}: started \(pid \d+\)$".format(h, part), out, re.M), \
                (h, part)
    assert "[h1] nats: lame duck mode" in out
    print("queries during the upgrade:", counts)
    assert counts["ok"] > 100 and counts["default"] == 0, counts
    # A stopping frontend drains its queue subscription (cl_frontend_free):
    # no query it was given goes unanswered.
    assert counts["lost"] == [], "{} of {} queries got no reply: {}".format(
        len(counts["lost"]), counts["ok"] + len(counts["lost"]), counts["lost"])


# ---- down --------------------------------------------------------------------------

def test_down(env):
    rc, out = env.run("down")
    assert rc == 0, out
    assert "down: done in" in out
    for h in list(BASE_ROLES) + ["h4"]:
        assert env.processes(h) == [], h
    rc, out = env.run("down")
    assert rc == 0, out
    assert "stopped" not in out and "killed" not in out
    rc, out = env.run("status")
    assert rc == 1, out
