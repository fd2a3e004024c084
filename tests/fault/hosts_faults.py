#!/usr/bin/env python3
"""The fault table across hosts: a cluster on three real hosts (network
namespaces running sshd, tests/hosts/netns_hosts.py) brought up with
`python3 -m clipper_admin.hosts up`, an open-loop load from a client host,
one host-level fault per row, and what every query got.

The cluster (each row starts from it healthy and serving): h1..h3 all run
nats (a NATS cluster of 3, TLS routes, JetStream R3), a manager and a
frontend; the admin runs on h1, routers on h1 and h2 (one leads). The
frontends' prediction cache is off (inventory frontend_options =
["--cache-size", "0"]) so every query reaches a replica. A Python closure
model (sum of the inputs) has 3 replicas, which the managers spread one per
host; the application's SLO is --slo-ms (100 ms). clipper-bench runs in the
client namespace as a `query` identity (`clipper creds issue --role query`)
with the three servers in its URL list (it connects to the first, and moves to
another when that one goes), sending --rate queries a
second for --seconds, each with another input (--vary); --fault-at seconds
in, the row's fault is injected. Like the product's own clients
(cl_bus_request_resend: Python's Bus.predict, `clipper predict`), it sends a
query again when no reply came 1 s after the last send, the wait doubling
(--resend; --no-client-resend sends each once): a query can go down a route
to a server whose host just went silent, and be lost there before the other
servers give that route up (0.6 s on nats-server 2.14, about 3 s on 2.9,
which notices only when its writes back up). The first reply counts; the
latency is from the query's first scheduled send. Rows:

  host-kill    SIGKILL every process of h3: its nats-server, frontend,
               manager, replica, supervisors and sshd (kill_host)
  link-cut     h3's link down for --cut-s seconds (both veth ends), then up
  netem        50 ms delay and 1% loss on everything h3 sends, from the fault
               to the end of the row
  leader-host  kill_host of the host holding the JetStream meta leader
               (/jsz meta_cluster.leader)

Per row: sent, predictions, late predictions (answered after 1.5 SLO +
50 ms), defaults, errors, never answered, and of those how many were
scheduled within [fault - SLO, fault + 0.2 s] (plausibly inside the dead
host's frontend or nats-server at that instant); the time from the fault
until predictions resumed for good (the scheduled time of the last query
after fault - SLO that did not get a timely prediction, minus the fault's
time, as tests/fault/fault_suite.py computes it); whether the state is
intact (the same applications and models, and a correct prediction); and
whether the host rejoined. A killed host "comes back" the way its init system
would bring it back at boot: its sshd is restarted and `hosts up` is run
again (it starts what is not running); link-cut and netem get nothing but
the link restored or the delay cleared. Rejoined means: its manager answers
<p>.cm.hosts, every nats-server has its 2 routes again (/routez), and its
frontend answers a query over HTTP.

Targets (--check exits 1 when a row misses one): never answered only inside
the fault window; the state intact; predictions resumed (kill rows: within
--resume-target-s, 2 s, of the fault; link-cut: before the row's last
second; netem, whose fault lasts to the row's end: at most
--netem-bad-max-pct, 5%, of the queries after the fault without a timely
prediction); the host rejoined (within --rejoin-timeout-s).

Where the client is: clipper-bench connects to the first server of its list;
--client-on (default auto) starts it again until it is on the
victim's server for kill rows (the worst case: its server dies under it and
it must move) and on another for link-cut and netem (a client whose own
server is cut off is partitioned with it: that measures the client's
link, not the cluster). --client-on victim|other|any overrides it.

Usage: PYTHONPATH=BUILD/deployers CLIPPER_BIN=BUILD/actors/cli/clipper \\
       NATS_SERVER=/usr/sbin/nats-server python3 tests/fault/hosts_faults.py \\
       --bench BUILD/tests/bench/clipper-bench [--rows host-kill,link-cut,netem,leader-host]
       [--rate 300] [--seconds 20] [--fault-at 8] [--json FILE] [--check]
Needs root, iproute2, openssh-server (the harness's requirements), the
clipper program and nats-server. Everything it makes (namespaces, processes,
directories) is removed at the end, on failure too.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
import netns_hosts as nh  # noqa: E402
sys.path.insert(0, HERE)
from timeline import read_timeline  # noqa: E402

ROWS = ["host-kill", "link-cut", "netem", "leader-host"]
KILL_ROWS = ("host-kill", "leader-host")
APP, MODEL = "hf", "hfsum"
BODY = '{"input":[0.5, 1.0]}'
FAULT_ROLES = {"h1": ["nats", "admin", "router", "frontend", "manager"],
               "h2": ["nats", "router", "frontend", "manager"],
               "h3": ["nats", "frontend", "manager"]}


def log(msg):
    sys.stderr.write("[{}] {}\n".format(time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def model(xs):
    return [str(sum(x)) for x in xs]


def _opener():
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(url, body=None, timeout=2.0):
    """GET (or POST body) url, its JSON; None when it does not answer."""
    try:
        req = urllib.request.Request(url, data=body.encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        with _opener().open(req, timeout=timeout) as r:
            return json.loads(r.read().decode())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def clipper_bin():
    b = os.environ.get("CLIPPER_BIN")
    if b and os.access(b, os.X_OK):
        return os.path.abspath(b)
    sys.path.insert(0, os.path.join(HERE, "..", "..", "deployers"))
    from clipper_admin import _locate
    return _locate.clipper_bin()


def nats_server_bin():
    for c in (os.environ.get("NATS_SERVER"), shutil.which("nats-server"), "/usr/sbin/nats-server"):
        if c and os.access(c, os.X_OK):
            return c
    raise RuntimeError("no nats-server (env NATS_SERVER)")


class HostsCluster(object):
    """netns hosts plus a cluster brought up on them with clipper_admin.hosts,
    driven from the client namespace; the operator's bus from here (the root
    namespace reaches the bridge)."""

    def __init__(self, roles, n_hosts=None, tag_prefix="hf", cluster="hf",
                 frontend_options=("--cache-size", "0"), keep=False, timeout=240):
        self.roles = dict(roles)
        self.n_hosts = n_hosts or len(self.roles)
        self.cluster = cluster
        self.frontend_options = list(frontend_options)
        self.keep = keep
        self.timeout = timeout
        self.clipper = clipper_bin()
        self.nats_server = nats_server_bin()
        self.tmp = tempfile.mkdtemp(prefix="clipper-{}-".format(tag_prefix))
        self.tag = "{}{:04x}".format(tag_prefix, random.getrandbits(16))[:8]
        self.hs = nh.Hosts(self.n_hosts, tag=self.tag, base_dir=os.path.join(self.tmp, "hosts"))
        self.data_dir = os.path.join(self.tmp, "data")
        self.inventory = None
        self.cm = None
        self.conn = None
        self.query_creds = os.path.join(self.data_dir, "query.creds")

    # -- the harness and the inventory
    def up_hosts(self):
        nh.check_requirements()
        self.hs.up()
        log("hosts {} up (tag {}, subnet {})".format(", ".join(self.hs.names), self.tag,
                                                     self.hs.subnet))

    def addr(self, h):
        return self.hs[h].addr

    def nats_hosts(self):
        return [h for h, rs in self.roles.items() if "nats" in rs]

    def inventory_text(self, roles):
        lines = ['cluster = "{}"'.format(self.cluster),
                 'data_dir = "{}"'.format(self.data_dir),
                 'remote_dir = "~/clipper"',
                 'clipper = "{}"'.format(self.clipper),
                 'nats_server = "{}"'.format(self.nats_server),
                 'ssh_config = "{}"'.format(self.hs.ssh_config),
                 "frontend_options = [{}]".format(", ".join(
                     json.dumps(o) for o in self.frontend_options))]
        for name, rs in roles.items():
            lines += ["", "[[hosts]]", 'name = "{}"'.format(name),
                      'address = "{}"'.format(self.addr(name)), 'ssh = "{}"'.format(name),
                      "roles = [{}]".format(", ".join('"{}"'.format(r) for r in rs))]
        return "\n".join(lines) + "\n"

    def write_inventory(self, roles=None, name="inventory.toml"):
        if roles is not None:
            self.roles = dict(roles)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(self.inventory_text(self.roles))
        self.inventory = path
        return path

    def remote_dir(self, h):
        return os.path.join(self.hs[h].root, "clipper")

    # -- secrets: the query identity, made before `up` so the servers know it
    def issue_query_identity(self):
        """`clipper creds init` as clipper_admin.hosts runs it, then `clipper
        creds issue --role query`: the first `up` pushes the accounts with the
        query user to every nats host."""
        nats = self.nats_hosts()
        argv = [self.clipper, "creds", "init", "--data-dir", self.data_dir, "--prefix",
                self.cluster, "--secrets-mount", self.remote_dir(nats[0]) + "/secrets/nats",
                "--tls-host", "nats-at-" + self.cluster]
        for h in nats:
            argv += ["--tls-host", self.addr(h)]
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        subprocess.run([self.clipper, "creds", "issue", "--role", "query", "--name", "bench",
                        "--out", self.query_creds, "--data-dir", self.data_dir, "--prefix",
                        self.cluster], check=True, capture_output=True, timeout=120)

    # -- clipper_admin.hosts from the client namespace
    def hosts_cmd(self, *args, timeout=900, quiet=False):
        argv = ["ip", "netns", "exec", self.hs.client.netns, sys.executable, "-m",
                "clipper_admin.hosts", args[0], self.inventory] + list(args[1:]) + [
                    "--timeout", str(self.timeout)]
        env = dict(os.environ, CLIPPER_BIN=self.clipper)
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        took = time.monotonic() - t0
        out = p.stdout + p.stderr
        if not quiet or p.returncode != 0:
            log("hosts {} ({:.1f} s, exit {})".format(" ".join(args), took, p.returncode))
        if p.returncode != 0:
            sys.stderr.write(out[-4000:] + "\n")
        return p.returncode, out, took

    def up(self):
        rc, out, took = self.hosts_cmd("up")
        if rc != 0:
            raise RuntimeError("hosts up failed (exit {}): {}".format(rc, out[-2000:]))
        return took

    def info(self):
        with open(os.path.join(self.data_dir, "cluster.json")) as f:
            return json.load(f)

    # -- the operator's connection (root namespace)
    def connect(self):
        from clipper_admin import ClipperConnection, LocalContainerManager
        self.cm = LocalContainerManager(**self.info()["local_container_manager"])
        self.conn = ClipperConnection(self.cm)
        self.conn.connect()
        return self.conn

    @property
    def bus(self):
        return self.cm.bus

    def gather(self, subject, data=b"{}", timeout_ms=500, max_n=16):
        try:
            raw = self.bus.gather(subject, data, timeout_ms, max_n)
        except Exception:  # noqa: BLE001 - no answer is an answer here
            return []
        out = []
        for r in raw:
            try:
                out.append(json.loads(r.decode()))
            except ValueError:
                pass
        return out

    def cm_hosts(self, n=None):
        """{host: row} from <p>.cm.hosts."""
        n = n or sum(1 for rs in self.roles.values() if "manager" in rs)
        out = {}
        for r in self.gather(self.cluster + ".cm.hosts", b"{}", 600, n):
            rows = r if isinstance(r, list) else r.get("hosts", [r]) if isinstance(r, dict) else []
            for row in rows:
                if isinstance(row, dict) and row.get("host"):
                    out[row["host"]] = row
        return out

    def placement(self, model=MODEL):
        """{host: (running, ready)} of model's replicas per manager."""
        out = {}
        for h, row in self.cm_hosts().items():
            run = ready = 0
            for v in row.get("versions") or []:
                if isinstance(v, dict) and v.get("model") == model:
                    run += int(v.get("running") or 0)
                    ready += int(v.get("ready") or 0)
            out[h] = (run, ready)
        return out

    def monitor(self, h, path, timeout=2.0):
        return http_json("http://{}:8222{}".format(self.addr(h), path), timeout=timeout)

    def routes(self):
        """{nats host: the number of other servers it has a route to, or None}
        (nats-server 2.10 and later keep a pool of routes to each)."""
        from clipper_admin.hosts import route_peers
        out = {}
        for h in self.nats_hosts():
            peers = route_peers(self.monitor(h, "/routez"))
            out[h] = None if peers is None else len(peers)
        return out

    def meta_leader(self):
        for h in self.nats_hosts():
            j = self.monitor(h, "/jsz")
            leader = ((j or {}).get("meta_cluster") or {}).get("leader")
            if leader:
                return leader
        return None

    def frontend_answers(self, h, x=(1.0, 2.0), app=APP, timeout=2.0):
        r = http_json("http://{}:1337/{}/predict".format(self.addr(h), app),
                      json.dumps({"input": list(x)}), timeout=timeout)
        return bool(r) and r.get("default") is False and \
            abs(float(r.get("output", "nan")) - sum(x)) < 1e-9

    def predict(self, x=(1.0, 2.0), app=APP, timeout_ms=2000):
        body = json.dumps({"input": list(x)}).encode()
        return json.loads(self.bus.predict(app, body, timeout_ms).decode())

    def correct_prediction(self, x=(1.0, 2.0)):
        try:
            r = self.predict(x)
        except Exception:  # noqa: BLE001
            return False
        return r.get("default") is False and abs(float(r.get("output")) - sum(x)) < 1e-9

    def state(self):
        apps = sorted(json.dumps(a, sort_keys=True) for a in self.conn.get_all_apps(verbose=True))
        models = sorted(json.dumps(m, sort_keys=True) for m in
                        self.conn.get_all_models(verbose=True))
        return apps, models

    def bench_server(self):
        """The nats host whose server has the clipper-bench connection."""
        found = []
        for h in self.nats_hosts():
            c = self.monitor(h, "/connz?limit=1024", timeout=2.0) or {}
            for conn in c.get("connections") or []:
                if conn.get("name") == "clipper-bench":
                    found.append((conn.get("start") or "", h))
        return max(found)[1] if found else None   # the newest

    def bench_argv(self, bench, app=APP, creds=None):
        info = self.info()
        return [bench, "--nats", info["nats_url"], "--creds", creds or self.query_creds,
                "--tls-ca", info["tls_ca"], "--tls-name", info["tls_name"],
                "--subject", "{}.predict.{}".format(info["prefix"], app)]

    def close(self):
        if self.cm is not None:
            try:
                self.cm.bus.close()
            except Exception:  # noqa: BLE001
                pass
            self.cm = None

    def down(self):
        """Everything away: the cluster (best effort: the namespaces' processes
        are killed with them anyway), the namespaces, the directories."""
        self.close()
        try:
            if self.inventory and self.hs.state == "up":
                self.hosts_cmd("down", timeout=300, quiet=True)
        except Exception as e:  # noqa: BLE001
            log("hosts down: {}".format(e))
        try:
            self.hs.down()
        except Exception as e:  # noqa: BLE001
            log("netns down: {}".format(e))
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log("kept {}".format(self.tmp))


def wait_for(what, cond, timeout, period=0.25):
    """Polls cond() -> (ok, detail) until ok; returns seconds taken; raises
    RuntimeError naming what (with the last detail) after timeout."""
    t0 = time.monotonic()
    last = None
    while True:
        ok, last = cond()
        if ok:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("{}: not within {:.0f} s ({})".format(what, timeout, last))
        time.sleep(period)


# ---- the fault table --------------------------------------------------------------


class FaultTable(object):
    def __init__(self, args):
        self.args = args
        self.c = HostsCluster(FAULT_ROLES, tag_prefix="hf", cluster="hf", keep=args.keep)

    def setup(self):
        c = self.c
        t0 = time.monotonic()
        c.up_hosts()
        c.write_inventory()
        c.issue_query_identity()
        took = c.up()
        log("cluster up in {:.1f} s".format(took))
        c.connect()
        from clipper_admin.deployers import python as python_deployer
        c.conn.register_application(APP, "doubles", "-1.0", self.args.slo_ms * 1000)
        python_deployer.deploy_python_closure(c.conn, name=MODEL, version=1,
                                              input_type="doubles", func=model, num_replicas=3)
        c.conn.link_model_to_app(APP, MODEL)
        self.wait_healthy("after deploy")
        log("setup done in {:.1f} s".format(time.monotonic() - t0))

    def health(self):
        """(ok, what is wrong)."""
        c = self.c
        why = []
        pl = c.placement()
        for h in FAULT_ROLES:
            run, ready = pl.get(h, (None, None))
            if run is None:
                why.append("{}: no cm.hosts answer".format(h))
            elif (run, ready) != (1, 1):
                why.append("{}: {} running / {} ready".format(h, run, ready))
        r = c.routes()
        why += ["{}: {} routes".format(h, n) for h, n in r.items() if n != 2]
        if not c.meta_leader():
            why.append("no JetStream meta leader")
        for h in FAULT_ROLES:
            if not c.frontend_answers(h):
                why.append("{}: frontend does not answer".format(h))
        if not c.correct_prediction():
            why.append("no correct prediction over NATS")
        return not why, "; ".join(why)

    def wait_healthy(self, when, timeout=None):
        took = wait_for("healthy cluster " + when, self.health,
                        timeout or self.args.healthy_timeout_s, period=0.5)
        log("healthy {} ({:.1f} s)".format(when, took))
        return took

    def rejoined(self, h):
        c = self.c

        def cond():
            why = []
            if h not in c.cm_hosts():
                why.append("its manager does not answer cm.hosts")
            r = c.routes()
            why += ["{}: {} routes".format(x, n) for x, n in r.items() if n != 2]
            if not c.frontend_answers(h):
                why.append("its frontend does not answer")
            return not why, "; ".join(why)
        return cond

    def start_bench(self, argv, victim, want):
        """Starts clipper-bench in the client namespace; with want 'victim' or
        'other', starts it again until it is connected to the victim's
        nats-server, or to another one (the bus takes the first server of its
        list: each attempt puts the next one first).
        Returns (process, the nats host it is on, attempts)."""
        c = self.c
        i = argv.index("--nats") + 1
        urls = argv[i].split(",")
        for attempt in range(1, 31):
            k = (attempt - 1) % len(urls)
            argv = argv[:i] + [",".join(urls[k:] + urls[:k])] + argv[i + 1:]
            bench = c.hs.popen("client", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            on, t0 = None, time.monotonic()
            while on is None and time.monotonic() - t0 < 3.0 and bench.poll() is None:
                time.sleep(0.1)
                on = c.bench_server()
            if want == "any" or (on is not None and (on == victim) == (want == "victim")):
                return bench, on, attempt
            bench.kill()
            bench.communicate()
        raise RuntimeError("clipper-bench did not land on the {} server in 30 tries".format(
            want))

    def run_row(self, row):
        a, c = self.args, self.c
        self.ensure_healthy(row)
        victim = "h3"
        if row == "leader-host":
            victim = c.meta_leader()
            if victim not in FAULT_ROLES:
                raise RuntimeError("meta leader {!r} is not a host of the cluster".format(victim))
        want = a.client_on
        if want == "auto":
            want = "victim" if row in KILL_ROWS else "other"
        before = c.state()
        timeline = os.path.join(c.tmp, "timeline-{}-{}.txt".format(row, int(time.time())))
        argv = c.bench_argv(a.bench) + [
            "--body", BODY, "--vary", "--rate", str(a.rate), "--seconds", str(a.seconds),
            "--slo-us", str(a.slo_ms * 1000), "--grace-ms", "5000", "--timeline", timeline,
            "--label", row] + (["--resend"] if a.client_resend else [])
        t_start = time.monotonic()
        bench, bench_on, attempts = self.start_bench(argv, victim, want)
        fault = {}

        def inject():
            # (the fault thread: link-cut restores the link and times the
            # rejoin while the load runs)
            try:
                fault["t"] = time.time()
                if row in KILL_ROWS:
                    fault["note"] = "killed {} processes of {}".format(
                        len(c.hs.kill_host(victim)), victim)
                elif row == "link-cut":
                    c.hs.link(victim, "down")
                    time.sleep(a.cut_s)
                    c.hs.link(victim, "up")
                    fault["restored"] = time.monotonic()
                    fault["note"] = "link of {} down {:.1f} s".format(victim, a.cut_s)
                    fault["rejoin"] = self.time_rejoin(victim, fault["restored"])
                elif row == "netem":
                    m = c.hs.netem(victim, a.netem_delay_ms, a.netem_loss_pct)
                    fault["note"] = "{} ms delay, {:g}% loss on {} ({}) to the row's end".format(
                        a.netem_delay_ms, a.netem_loss_pct, victim, m.get("method"))
            except Exception as e:  # noqa: BLE001 - reported with the row
                fault["error"] = repr(e)
        th = threading.Thread(target=inject, daemon=True)
        try:
            time.sleep(max(0.0, a.fault_at - (time.monotonic() - t_start)))
            th.start()
            out, err = bench.communicate(timeout=a.seconds + 180)
        finally:
            if bench.poll() is None:
                bench.kill()
                bench.wait()
            if row == "netem":
                th.join(30)
                c.hs.netem_clear(victim)
                fault["restored"] = time.monotonic()
        th.join(a.rejoin_timeout_s + 60)
        if "error" in fault:
            raise RuntimeError("injecting {}: {}".format(row, fault["error"]))
        if bench.returncode != 0:
            raise RuntimeError("clipper-bench failed (exit {}): {} {}".format(
                bench.returncode, err.decode()[-1500:], out.decode()[-500:]))
        summary = {}
        for line in out.decode().splitlines():
            if line.startswith("{"):
                summary = json.loads(line)
        res = analyse(timeline, fault["t"], a.slo_ms, inside_after_s=0.2)
        res.update(row=row, host=victim, fault=fault["note"], bench_server=bench_on,
                   client_on=want, bench_attempts=attempts,
                   client_resends=a.client_resend, resent=summary.get("resent"),
                   duplicates=summary.get("duplicates"),
                   p50_ms=round(summary.get("pred_p50_us", 0) / 1000, 2),
                   p99_ms=round(summary.get("pred_p99_us", 0) / 1000, 2))
        # Coming back.
        if row in KILL_ROWS:
            res["comes_back"] = ("sshd restarted and `hosts up` run, as its init system "
                                 "would at boot")
            t0 = time.monotonic()
            c.hs.restart_sshd(victim)
            rc, _, took = c.hosts_cmd("up")
            res["hosts_up_s"] = round(took, 1)
            res["hosts_up_rc"] = rc
            res.update(self.time_rejoin(victim, t0))
        elif row == "link-cut":
            res["comes_back"] = "by itself: nothing done but the link restored"
            res.update(fault["rejoin"])
        else:
            res["comes_back"] = "by itself: nothing done but netem cleared"
            res.update(self.time_rejoin(victim, fault["restored"]))
        try:
            self.wait_healthy("after " + row)
            res["healthy_again"] = True
        except RuntimeError as e:
            res["healthy_again"] = False
            res["health_problem"] = str(e)
        res["correct_prediction"] = c.correct_prediction()
        try:
            after = c.state()
            res["state_intact"] = after == before and res["correct_prediction"]
        except Exception as e:  # noqa: BLE001
            res["state_intact"] = False
            res["state_problem"] = repr(e)[:300]
        res["placement_after"] = {h: list(v) for h, v in sorted(c.placement().items())}
        # Targets.
        if row in KILL_ROWS:
            resumed_ok = res["resume_s"] <= a.resume_target_s
        elif row == "netem":
            # The fault lasts to the row's end: nothing to resume from. The
            # target is the share of queries after it without a timely
            # prediction instead.
            resumed_ok = res["bad_after_fault_pct"] <= a.netem_bad_max_pct
        else:
            resumed_ok = res["last_bad_at"] is None or res["last_bad_at"] < res["last_at"] - 1.0
        res["resumed_ok"] = resumed_ok
        res["ok"] = bool(res["never_answered"] - res["never_in_window"] == 0 and
                         res["state_intact"] and resumed_ok and res["rejoined"])
        return res

    def time_rejoin(self, h, t0):
        """{rejoined, rejoin_s (from t0, monotonic)[, rejoin_problem]}."""
        try:
            wait_for("{} rejoins".format(h), self.rejoined(h),
                     self.args.rejoin_timeout_s - (time.monotonic() - t0))
            return {"rejoined": True, "rejoin_s": round(time.monotonic() - t0, 2)}
        except RuntimeError as e:
            return {"rejoined": False, "rejoin_s": round(time.monotonic() - t0, 2),
                    "rejoin_problem": str(e)}

    def ensure_healthy(self, row):
        try:
            self.wait_healthy("before " + row)
        except RuntimeError as e:
            log("{}; running `hosts up` once".format(e))
            for h in FAULT_ROLES:
                self.c.hs.restart_sshd(h)
                self.c.hs.link(h, "up")
            self.c.up()
            self.wait_healthy("before " + row)


def analyse(timeline, t_fault, slo_ms, inside_after_s=0.2):
    """Counts of a clipper-bench timeline around a fault at t_fault (Unix s),
    as tests/fault/fault_suite.py counts them."""
    rows, counts = read_timeline(timeline)
    slo = slo_ms / 1000.0
    late_us = int(slo_ms * 1000 * 1.5) + 50000
    late = [r for r in rows if r[1] == 1 and r[2] > late_us]
    bad_after = [r[0] for r in rows if (r[1] != 1 or r[2] > late_us) and r[0] >= t_fault - slo]
    never = [r for r in rows if r[1] == 0]
    in_window = [r for r in never if t_fault - slo <= r[0] <= t_fault + inside_after_s]
    # bad answers (not a timely prediction) per second from the fault
    per_s = {}
    for at in bad_after:
        k = int(at - t_fault) if at >= t_fault else -1
        per_s[k] = per_s.get(k, 0) + 1
    return {
        "bad_per_s": [per_s.get(k, 0) for k in range(-1, int(rows[-1][0] - t_fault) + 1)]
        if rows else [],
        "sent": len(rows), "predictions": counts[1] - len(late), "late": len(late),
        "defaults": counts[2], "errors": counts[3], "never_answered": counts[0],
        "never_in_window": len(in_window),
        "never_first_s": round(min(r[0] for r in never) - t_fault, 3) if never else None,
        "never_last_s": round(max(r[0] for r in never) - t_fault, 3) if never else None,
        "resume_s": round(max(0.0, max(bad_after) - t_fault), 3) if bad_after else 0.0,
        "bad_after_fault": len(bad_after),
        "bad_after_fault_pct": round(100.0 * len(bad_after) / max(1, sum(
            1 for r in rows if r[0] >= t_fault - slo)), 2),
        "last_bad_at": max(bad_after) if bad_after else None,
        "last_at": rows[-1][0] if rows else None,
    }


def print_table(results):
    fmt = "{:<12} {:>3} {:>6} {:>6} {:>5} {:>5} {:>4} {:>6} {:>7} {:>8} {:>6} {:>7} {:>8} {}"
    hdr = fmt.format(
        "row", "on", "sent", "pred", "late", "dflt", "err", "never", "in-win", "resume", "bad%",
        "state", "rejoin", "ok")
    print(hdr)
    for r in results:
        if "error" in r:
            print("{:<12} error: {}".format(r["row"], r["error"]))
            continue
        print(fmt.format(
            r["row"], r["host"], r["sent"], r["predictions"], r["late"], r["defaults"],
            r["errors"], r["never_answered"], r["never_in_window"],
            "-" if r["row"] == "netem" else "{:.2f}s".format(r["resume_s"]),
            "{:.1f}".format(r["bad_after_fault_pct"]),
            "intact" if r["state_intact"] else "LOST",
            "{:.0f}s".format(r["rejoin_s"]) if r["rejoined"] else "NO",
            "yes" if r["ok"] else "NO"))


def figure_line(r):
    if "error" in r:
        return "FIGURE hosts-faults {}: error {}".format(r["row"], r["error"][:200])
    return ("FIGURE hosts-faults {row} ({fault}; client on {bench_server}): sent {sent}, "
            "predictions {predictions}, late {late}, defaults {defaults}, errors {errors}, "
            "never answered {never_answered} ({never_in_window} within [fault - SLO, fault + "
            "0.2 s]), {resent} sent again, {resumed}, state {state}, rejoined {rej} "
            "({comes_back}; {rejoin_s} s), ok {ok_s}").format(
                state="intact" if r["state_intact"] else "LOST",
                resumed=("{:.1f}% of the queries after the fault without a timely prediction "
                         "(the fault lasts to the row's end)".format(r["bad_after_fault_pct"])
                         if r["row"] == "netem" else
                         "resumed {:.2f} s after the fault".format(r["resume_s"])),
                rej="yes" if r["rejoined"] else "NO", ok_s="yes" if r["ok"] else "NO",
                **{k: v for k, v in r.items() if k != "ok"})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", required=True, help="BUILD/tests/bench/clipper-bench")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--rate", type=int, default=300)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--fault-at", type=float, default=8)
    p.add_argument("--slo-ms", type=int, default=100)
    p.add_argument("--cut-s", type=float, default=5.0, help="link-cut: seconds down")
    p.add_argument("--netem-delay-ms", type=float, default=50)
    p.add_argument("--netem-loss-pct", type=float, default=1.0)
    p.add_argument("--netem-bad-max-pct", type=float, default=5.0,
                   help="netem: the most queries after the fault without a timely "
                        "prediction, in percent (default 5)")
    p.add_argument("--resume-target-s", type=float, default=2.0)
    p.add_argument("--rejoin-timeout-s", type=float, default=120)
    p.add_argument("--healthy-timeout-s", type=float, default=120)
    p.add_argument("--client-on", choices=["auto", "any", "victim", "other"], default="auto",
                   help="the nats-server clipper-bench must be connected to (it is started "
                        "again until it is): auto = the victim's for kill rows (it loses its "
                        "server and must move), another for link-cut and netem (whose "
                        "client would otherwise be partitioned with the victim); any = "
                        "where it lands")
    p.add_argument("--no-client-resend", dest="client_resend", action="store_false",
                   help="clipper-bench sends each query once (by default it sends a query "
                        "again after 1 s without a reply, doubling, as the product's "
                        "clients do: cl_bus_request_resend)")
    p.add_argument("--json")
    p.add_argument("--check", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args(argv)
    a.bench = os.path.abspath(a.bench)
    rows = [r for r in a.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error("unknown rows {} (known: {})".format(unknown, ", ".join(ROWS)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    t = FaultTable(a)
    try:
        try:
            t.setup()
        except Exception as e:  # noqa: BLE001 - reported, then cleaned up
            log("setup failed: {!r}".format(e))
            results.append({"row": "setup", "ok": False, "error": repr(e)[:800]})
            rows = []
        for row in rows:
            try:
                res = t.run_row(row)
            except Exception as e:  # noqa: BLE001 - reported as the row's result
                res = {"row": row, "ok": False, "error": repr(e)[:800]}
            results.append(res)
            print("FAULT " + json.dumps(res, default=str), flush=True)
            print(figure_line(res), flush=True)
    finally:
        t.c.down()
    print_table(results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if any(r["row"] == "setup" for r in results):
        return 1
    if a.check and not (results and all(r.get("ok") for r in results)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
