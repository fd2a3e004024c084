#!/usr/bin/env python3
"""The benchmark suite: every hop of the product against the bare bus and
against Ray Serve, measured in one run on one machine by the same load
generators.

Load generators (C, so the client is never what limits a figure):
  * clipper-bench (tests/bench/bench_nats.c) over cnats for NATS queries:
    sequential latency, pipelined throughput, open-loop fixed-rate load;
    it also serves the floors (a bare NATS echo, a constant HTTP reply);
  * wrk (Debian) for HTTP, with tests/bench/wrk_post.lua.

Scenarios (see docs/benchmarks.md):
  floor, e2e (NATS and HTTP), batching, scaling, coldstart, memory,
  overload, ray, kubernetes (the same no-op through a KubernetesContainerManager
  cluster's Services, with the same clients; needs KUBECONFIG).

Writes <out>/results.json (everything), <out>/results.csv (one row per
figure) and, when matplotlib is importable by --plot-python, PNG plots.
Usage (after `bash .ci/setup`; `bash .ci/bench` does all of it):

    PYTHONPATH=build/deployers python3 tests/bench/bench_suite.py \\
        --bench build/tests/bench/clipper-bench --out docs/bench \\
        [--ray-python build/bench-venv/bin/python] [--quick]
"""
import argparse
import csv
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_admin.local_container_manager import _descendants

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = '{"input":[1.0,2.0]}'
SCENARIOS = ("floor", "e2e", "batching", "scaling", "coldstart", "memory", "overload", "ray",
             "security", "kubernetes")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def children_cpu():
    """CPU seconds used by finished children (the load generators): with the
    wall time of a run it shows whether the client could have been what
    limited a figure."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_client(cmd, timeout=600):
    """Runs a load generator; returns (stdout, wall seconds, client CPU seconds)."""
    c0, t0 = children_cpu(), time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall, cpu = time.monotonic() - t0, children_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd[:3]), proc.returncode,
                                                   proc.stderr[-800:]))
    return proc.stdout, wall, cpu


# ---- NATS: clipper-bench ---------------------------------------------------

def nats_bench(args, url, subject, label, count=0, window=0, seconds=5.0, rate=0.0,
               slo_us=100000, echo=False, grace_ms=3000, echo_buffered=False, auth=()):
    cmd = [args.bench, "--nats", url] + list(auth) + ["--subject", subject, "--label", label,
           "--count", str(count), "--window", str(window), "--seconds", str(seconds),
           "--body", BODY, "--slo-us", str(slo_us), "--grace-ms", str(grace_ms)]
    if rate:
        cmd += ["--rate", str(rate)]
    if echo:
        cmd.append("--echo-buffered" if echo_buffered else "--echo")
    out, wall, cpu = run_client(cmd)
    rows = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rows[r["kind"]] = r
    for r in rows.values():
        r["client_cpu_s"] = round(cpu, 2)
        r["client_wall_s"] = round(wall, 2)
    return rows


# ---- HTTP: wrk ---------------------------------------------------------------

def wrk(args, url, connections, seconds, threads=None, rate=None):
    """wrk against url with the suite's POST body. With rate, each connection
    waits a fixed delay between requests so that connections/delay is the
    wanted rate (wrk has no open-loop mode; the achieved rate is reported)."""
    threads = threads or min(2, connections)
    env = dict(os.environ, WRK_BODY=BODY, WRK_DELAY_MS="0")
    if rate:
        env["WRK_DELAY_MS"] = "%d" % max(1, round(connections * 1000.0 / rate))
    cmd = [args.wrk, "-t%d" % threads, "-c%d" % connections, "-d%ds" % int(seconds),
           "--timeout", "5s", "-s", os.path.join(HERE, "wrk_post.lua"), url]
    c0 = children_cpu()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    wall, cpu = time.monotonic() - t0, children_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError("wrk failed: %s" % proc.stderr[-800:])
    m = re.search(r"^WRKJSON (.*)$", proc.stdout, re.M)
    if not m:
        raise RuntimeError("wrk printed no summary: %s" % proc.stdout[-800:])
    r = json.loads(m.group(1))
    r.update(url=url, connections=connections, threads=threads, client_cpu_s=round(cpu, 2),
             client_wall_s=round(wall, 2))
    if rate:
        r["target_rate"] = rate
    return r


# ---- the cluster --------------------------------------------------------------

def noop(xs):
    return ["1.0"] * len(xs)


def batching_model(xs):
    # A large fixed cost per call and a small cost per input, as a model
    # that runs one vectorised step per batch.
    time.sleep(0.005 + 0.00005 * len(xs))
    return ["1.0"] * len(xs)


def sleep10(xs):
    time.sleep(0.010)
    return ["1.0"] * len(xs)


def processes(cm):
    """{pid: role} of every process of the local cluster."""
    roles = {}
    for pid in _descendants(cm._pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode() for a in argv if a]
        if not argv:
            continue
        if argv[0].endswith("nats-server"):
            role = "nats-server"
        elif len(argv) > 2 and argv[1] == "run":
            role = argv[2]
            if role == "replica":
                role = "replica %s:%s" % (argv[argv.index("--model") + 1],
                                          argv[argv.index("--version") + 1])
        elif len(argv) > 1 and argv[1] == "start":
            role = "clipper start (supervisor)"
        else:
            role = os.path.basename(argv[0])
        roles[pid] = role
    return roles


def rss_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_snapshot(cm, field):
    out = {}
    for pid, role in sorted(processes(cm).items()):
        kb = rss_kb(pid, field)
        if kb is not None:
            key = role if role not in out else "%s (pid %d)" % (role, pid)
            out[key] = round(kb / 1024.0, 1)
    return out


def wait_live(conn, name, version, n, timeout=30):
    conn.cm.wait_for_replicas(name, version, n, timeout)


def first_prediction(url, timeout_s):
    """Posts a fresh input to url until the answer is the model's (not the
    default); raises after timeout_s."""
    import urllib.request
    deadline = time.monotonic() + timeout_s
    n = 0
    while True:
        n += 1
        body = json.dumps({"input": [float(n), time.monotonic()]}).encode()
        try:
            req = urllib.request.Request(url, data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if json.loads(r.read().decode()).get("default") is False:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("%s gave no prediction within %.0f s" % (url, timeout_s))
        time.sleep(0.02)


def nats_predict(cm, app, body=BODY, timeout_ms=2000):
    raw = cm.bus.request("%s.predict.%s" % (cm.prefix, app), body.encode(), timeout_ms)
    return json.loads(raw.decode())


# ---- scenarios ----------------------------------------------------------------

class Suite:
    def __init__(self, args):
        self.args = args
        self.q = args.quick
        self.res = {"machine": machine(), "started": now_iso(), "quick": bool(args.quick),
                    "scenarios": {}, "targets": {}}
        self.cm = None
        self.conn = None

    def dur(self, full, quick):
        return quick if self.q else full

    def start_cluster(self):
        self.http_port = free_port()
        # A cluster name of its own: never the user's default cluster.
        # An open bus (clipper start --insecure): the floor's echo runs on
        # it too, and the figures stay comparable with earlier runs; the
        # security scenario measures what identities and TLS cost.
        self.cm = LocalContainerManager(cluster_name="bench-%d" % os.getpid(),
                                        clipper_query_port=self.http_port,
                                        clipper_management_port=free_port(), insecure=True)
        self.conn = ClipperConnection(self.cm)
        # The load generators repeat one input: with the prediction cache
        # on, nearly every query would be a cache hit and never reach a
        # model. Off, every query is a model call, as in Ray Serve.
        self.conn.start_clipper(cache_size=0)
        self.url = self.cm.bus_url
        self.prefix = self.cm.prefix
        log("cluster up: NATS %s, HTTP %d" % (self.url, self.http_port))

    def subj(self, app):
        return "%s.predict.%s" % (self.prefix, app)

    def http(self, app):
        return "http://127.0.0.1:%d/%s/predict" % (self.http_port, app)

    def deploy(self, app, func, slo_us, batch_size=-1, replicas=1):
        python_deployer.create_endpoint(self.conn, app, "doubles", func, slo_micros=slo_us,
                                        batch_size=batch_size, num_replicas=replicas)
        # The first queries warm the replica's interpreter.
        for _ in range(20):
            nats_predict(self.cm, app)

    # 1. the floor -------------------------------------------------------------
    def floor(self):
        a = self.args
        r = nats_bench(a, self.url, "bench.echo", "nats-echo", count=self.dur(5000, 1000),
                       window=256, seconds=self.dur(5, 2), echo=True)
        port = free_port()
        srv = subprocess.Popen([a.bench, "--http-floor", str(port)], stdout=subprocess.PIPE,
                               text=True)
        try:
            srv.stdout.readline()
            url = "http://127.0.0.1:%d/floor" % port
            hl = wrk(a, url, 1, self.dur(5, 2), threads=1)
            hs = wrk(a, url, 64, self.dur(5, 2))
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(10)
        self.res["scenarios"]["floor"] = {"nats_sequential": r["sequential"],
                                          "nats_pipelined": r["pipelined"],
                                          "http_light": hl, "http_saturation": hs}

    # 2. end to end, no-op closure ------------------------------------------------
    def e2e(self):
        a = self.args
        secs = self.dur(5, 2)
        r = nats_bench(a, self.url, self.subj("noop"), "noop-nats", count=self.dur(5000, 1000),
                       window=256, seconds=secs)
        sat = r["pipelined"]["throughput_rps"]
        out = {"nats_sequential": r["sequential"], "nats_pipelined": r["pipelined"]}
        for frac in (0.5, 0.9):
            o = nats_bench(a, self.url, self.subj("noop"), "noop-nats-%d" % (frac * 100),
                           rate=round(sat * frac), seconds=secs, slo_us=100000)
            out["nats_open_%d" % (frac * 100)] = o["open"]
            # The bare echo at the same rate: what the bus and this client
            # give at that load. An echo that writes each reply at once is
            # best at low rates, one that batches its writes at high rates:
            # the floor is the better of the two.
            tries = [nats_bench(a, self.url, "bench.echo", "echo-%d" % (frac * 100),
                                rate=round(sat * frac), seconds=secs, echo=True,
                                echo_buffered=buffered)["open"] for buffered in (False, True)]
            out["floor_open_%d" % (frac * 100)] = min(tries, key=lambda x: x["p50_us"])
        out["http_light"] = wrk(a, self.http("noop"), 1, secs, threads=1)
        hs = wrk(a, self.http("noop"), 64, secs)
        out["http_saturation"] = hs
        for frac in (0.5, 0.9):
            out["http_paced_%d" % (frac * 100)] = self.paced(self.http("noop"), hs["rps"] * frac,
                                                             secs)
        self.res["scenarios"]["e2e"] = out

    def paced(self, url, rate, secs):
        """wrk at about `rate` requests a second: connections that each wait
        10 ms between requests. A request's own latency stretches each
        connection's period, so a run that falls short is repeated once
        with proportionally more connections."""
        conns = max(8, int(rate * 0.010))
        r = wrk(self.args, url, min(conns, 1000), secs, rate=rate)
        if r["rps"] < 0.95 * rate:
            conns = int(conns * rate / max(r["rps"], 1.0)) + 1
            r = wrk(self.args, url, min(conns, 1000), secs, rate=rate * conns / max(1, r["connections"]))
            r["target_rate"] = rate
        return r

    # 3. adaptive batching -----------------------------------------------------------
    def sweep(self, app, rate, slo_us, secs):
        """Open-loop load at rising rates (x1.4) until the share of queries
        answered by a prediction within the SLO falls under 95%, then two
        halvings of the last step: the best rate of predictions within the
        SLO is the model's throughput under it."""
        steps = []

        def step(at):
            o = nats_bench(self.args, self.url, self.subj(app), "%s-%d" % (app, at), rate=at,
                           seconds=secs, slo_us=slo_us, grace_ms=2000)["open"]
            o["in_slo_share"] = o["predictions_in_slo"] / max(o["sent"], 1)
            steps.append(o)
            log("  %s at %d/s: %.1f%% predictions within the SLO" % (app, at,
                                                                   100 * o["in_slo_share"]))
            return o["in_slo_share"] >= 0.95

        for _ in range(14):
            if not step(rate):
                break
            rate = int(rate * 1.4)
        # Two halvings between the last good rate and the first bad one.
        good = [x["rate"] for x in steps if x["in_slo_share"] >= 0.95]
        if good and steps[-1]["in_slo_share"] < 0.95:
            lo, hi = max(good), steps[-1]["rate"]
            for _ in range(2):
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if step(mid) else (lo, mid)
        steps.sort(key=lambda x: x["rate"])
        best = max(steps, key=lambda x: x["goodput_rps"])
        return {"steps": steps, "goodput_rps": best["goodput_rps"], "best_rate": best["rate"],
                "sustained_rate": max([x["rate"] for x in steps if x["in_slo_share"] >= 0.99] or [0])}

    def batching(self):
        secs = self.dur(4, 2)
        out = {"adaptive": self.sweep("batch-adaptive", 500, 20000, secs),
               "batch_size_1": self.sweep("batch-size-1", 40, 20000, secs)}
        out["ratio"] = out["adaptive"]["goodput_rps"] / max(out["batch_size_1"]["goodput_rps"], 1e-9)
        self.res["scenarios"]["batching"] = out

    # 4. replica scaling -----------------------------------------------------------------
    def scaling(self):
        a = self.args
        out = {}
        for n in (1, 2, 4):
            if n > 1:
                self.conn.set_num_replicas("sleep10", n)
                time.sleep(1.0)  # the router's view of the new replicas
            r = nats_bench(a, self.url, self.subj("sleep10"), "sleep10-x%d" % n, window=64,
                           seconds=self.dur(5, 3))
            p = r["pipelined"]
            p["goodput_rps"] = round((p["answered"] - p["bad"]) / p["seconds"], 1)
            out["replicas_%d" % n] = p
        self.conn.set_num_replicas("sleep10", 1)
        out["ratio_4_vs_1"] = out["replicas_4"]["goodput_rps"] / max(out["replicas_1"]["goodput_rps"], 1e-9)
        self.res["scenarios"]["scaling"] = out

    # 5. cold start ------------------------------------------------------------------------
    def coldstart(self):
        runs = []
        for i in range(self.dur(5, 2)):
            app, model = "cold%d" % i, "cold-model-%d" % i
            self.conn.register_application(app, "doubles", "-1", 1000000)
            t0 = time.monotonic()
            python_deployer.deploy_python_closure(self.conn, model, 1, "doubles", noop)
            t_deployed = time.monotonic()
            self.conn.link_model_to_app(app, model)
            tries = 0
            while True:
                tries += 1
                r = nats_predict(self.cm, app)
                if not r.get("default"):
                    break
                if time.monotonic() - t0 > 30:
                    raise RuntimeError("cold start: no prediction from %s after 30 s" % model)
            t1 = time.monotonic()
            runs.append({"deploy_returned_s": round(t_deployed - t0, 3),
                         "first_prediction_s": round(t1 - t0, 3), "queries": tries})
            self.conn.stop_models([model])
            self.conn.unregister_application(app)
        firsts = sorted(r["first_prediction_s"] for r in runs)
        self.res["scenarios"]["coldstart"] = {"runs": runs, "median_s": firsts[len(firsts) // 2],
                                              "max_s": firsts[-1]}

    # 7. overload ----------------------------------------------------------------------------
    def overload(self):
        a = self.args
        sat = self.res["scenarios"].get("batching", {}).get("adaptive", {}).get("goodput_rps")
        if not sat:
            sat = self.sweep("batch-adaptive", 500, 20000, 2)["goodput_rps"]
        rate = round(2 * sat)
        secs = self.dur(30, 5)
        r = nats_bench(a, self.url, self.subj("batch-adaptive"), "overload-2x", rate=rate,
                       seconds=secs, slo_us=20000, grace_ms=5000)["open"]
        r["saturation_rps"] = sat
        self.res["scenarios"]["overload"] = r

    # 8. Ray Serve -------------------------------------------------------------------------
    def ray(self):
        a = self.args
        if not a.ray_python or not os.path.exists(a.ray_python):
            self.res["scenarios"]["ray"] = {"skipped": "no Ray Serve venv (--ray-python); "
                                            "`bash .ci/bench` installs one"}
            log("Ray Serve skipped: no --ray-python")
            return
        port = free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen([a.ray_python, os.path.join(HERE, "ray_serve_app.py"),
                                 "--port", str(port)], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError("Ray Serve did not start (see its stderr above)")
            start_s = time.monotonic() - t0
            secs = self.dur(10, 3)
            base = "http://127.0.0.1:%d" % port
            out = {"startup_s": round(start_s, 1)}
            for app, path in (("noop", "/noop"), ("batching", "/batch")):
                out[app + "_light"] = wrk(a, base + path, 1, secs, threads=1)
                out[app + "_saturation"] = wrk(a, base + path, 64, secs)
            out["memory_mb"] = ray_memory(proc.pid)
            # The product under the same load, in the same run.
            out["product_batching_light"] = wrk(a, self.http("batch-adaptive"), 1, secs, threads=1)
            out["product_batching_saturation"] = wrk(a, self.http("batch-adaptive"), 64, secs)
        finally:
            proc.send_signal(signal.SIGTERM)  # it shuts Serve and Ray down
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.res["scenarios"]["ray"] = out

    # 9. the same no-op on Kubernetes ------------------------------------------------
    def kubernetes(self):
        """A KubernetesContainerManager cluster (namespace clipper-bench):
        start_clipper() to ready, deploy to the first prediction, the no-op
        over NATS (its Service's NodePort) and HTTP (the query Service's
        NodePort) with the same clients and settings as e2e, and a replica
        pod deleted to serving again."""
        a = self.args
        if not os.environ.get("KUBECONFIG"):
            self.res["scenarios"]["kubernetes"] = {
                "skipped": "KUBECONFIG is not set (export \"$(bash images/kube/kube.sh start)\")"}
            return
        from clipper_admin import KubernetesContainerManager
        # An open bus, as the suite's local cluster: the figures compare
        # the Services' path with loopback, not TLS with none (the
        # security scenario measures that).
        cm = KubernetesContainerManager(cluster_name="bench-%d" % os.getpid(),
                                        namespace="clipper-bench", useInternalIP=True,
                                        create_namespace_if_not_exists=True, insecure=True)
        conn = ClipperConnection(cm)
        out = {}
        t0 = time.monotonic()
        conn.start_clipper(cache_size=0)
        out["start_clipper_s"] = round(time.monotonic() - t0, 2)
        try:
            http = "http://%s/noop/predict" % cm.get_query_addr()
            t0 = time.monotonic()
            python_deployer.create_endpoint(conn, "noop", "doubles", noop, slo_micros=100000)
            first_prediction(http, 60)
            out["deploy_to_first_prediction_s"] = round(time.monotonic() - t0, 2)
            for _ in range(20):
                first_prediction(http, 5)
            secs = self.dur(5, 2)
            r = nats_bench(a, cm.get_bus_url(), "%s.predict.noop" % cm.prefix, "k8s-noop-nats",
                           count=self.dur(5000, 1000), window=256, seconds=secs)
            out["nats_sequential"] = r["sequential"]
            out["nats_pipelined"] = r["pipelined"]
            out["http_light"] = wrk(a, http, 1, secs, threads=1)
            out["http_saturation"] = wrk(a, http, 64, secs)
            # A replica pod deleted at once: the Deployment makes another.
            pods = [p.metadata.name for p in cm.replica_pods("noop")]
            t0 = time.monotonic()
            cm._core.delete_namespaced_pod(pods[0], cm.k8s_namespace, grace_period_seconds=0)
            # Serving again: a new pod is Ready (its replica said so) and
            # answers; the old one may linger a moment as it is killed.
            deadline = time.monotonic() + 60
            while not [p for p in cm.replica_pods("noop") if p.metadata.name not in pods and
                       any(c.type == "Ready" and c.status == "True"
                           for c in (p.status.conditions or []))]:
                if time.monotonic() > deadline:
                    raise RuntimeError("no replacement pod became Ready within 60 s")
                time.sleep(0.02)
            first_prediction(http, 60)
            out["pod_deleted_to_serving_s"] = round(time.monotonic() - t0, 2)
            out["addresses"] = {"query": cm.get_query_addr(), "bus": cm.get_bus_url()}
        finally:
            conn.stop_all()
        self.res["scenarios"]["kubernetes"] = out

    # the cost of identities and TLS on the bus ----------------------------------
    def security(self):
        """The same no-op, the same client, in the same run: through this
        open cluster and through a second one started as users start it
        (identities and TLS, docs/security.md), whose client connects as
        the operator identity over TLS."""
        a = self.args
        secs = self.dur(5, 2)
        cm = LocalContainerManager(cluster_name="bench-sec-%d" % os.getpid(),
                                   clipper_query_port=free_port(),
                                   clipper_management_port=free_port(),
                                   prometheus_port=free_port())
        conn = ClipperConnection(cm)
        conn.start_clipper(cache_size=0)
        # And identities without TLS (clipper start --bus-tls off).
        cm2 = LocalContainerManager(cluster_name="bench-id-%d" % os.getpid(),
                                    clipper_query_port=free_port(),
                                    clipper_management_port=free_port(),
                                    prometheus_port=free_port(), bus_tls=False)
        conn2 = ClipperConnection(cm2)
        out = {}
        try:
            conn2.start_clipper(cache_size=0)
            for c, m in ((conn, cm), (conn2, cm2)):
                python_deployer.create_endpoint(c, "noop", "doubles", noop, slo_micros=100000)
                for _ in range(20):
                    nats_predict(m, "noop")
            targets = {"open": (self.url, self.subj("noop"), ()),
                       "identities": (cm2.bus_url, "%s.predict.noop" % cm2.prefix,
                                      cm2.bus_auth_args()),
                       "secure": (cm.bus_url, "%s.predict.noop" % cm.prefix,
                                  cm.bus_auth_args())}
            # The sequential p50, and the pipelined throughput at several
            # windows (best to best: a TLS hop adds latency, which a window
            # too small for it would count as lost throughput). Alternating,
            # twice each, so drift on a busy machine hits both.
            windows = (256, 1024, 4096)
            runs = {kind: [] for kind in targets}
            for _ in range(2):
                for kind, (url, subject, kind_auth) in targets.items():
                    runs[kind].append(nats_bench(a, url, subject, "noop-" + kind,
                                                 count=self.dur(5000, 1000), window=0,
                                                 auth=kind_auth)["sequential"])
                for w in windows:
                    for kind, (url, subject, kind_auth) in targets.items():
                        r = nats_bench(a, url, subject, "noop-%s-w%d" % (kind, w), count=0,
                                       window=w, seconds=secs, auth=kind_auth)["pipelined"]
                        runs[kind].append(r)
            for kind, rs in runs.items():
                log("security %s: %s" % (kind, rs))
                seq = [r for r in rs if r["kind"] == "sequential"]
                pipe = [r for r in rs if r["kind"] == "pipelined"]
                best = max(pipe, key=lambda r: r["throughput_rps"])
                out[kind] = {"p50_us": min(r["p50_us"] for r in seq),
                             "throughput_rps": best["throughput_rps"],
                             "best_window": best["window"],
                             "by_window": {str(w): max(r["throughput_rps"] for r in pipe
                                                       if r["window"] == w) for w in windows}}
            out["throughput_ratio"] = (out["secure"]["throughput_rps"] /
                                       out["open"]["throughput_rps"])
            out["p50_added_us"] = out["secure"]["p50_us"] - out["open"]["p50_us"]
            out["identities_throughput_ratio"] = (out["identities"]["throughput_rps"] /
                                                  out["open"]["throughput_rps"])
            out["identities_p50_added_us"] = (out["identities"]["p50_us"] -
                                              out["open"]["p50_us"])
            t0 = time.monotonic()
            r = subprocess.run([os.environ.get("CLIPPER_BIN", "clipper"), "creds", "issue",
                                "--role", "query", "--name", "bench-%d" % os.getpid(), "--out",
                                os.path.join(cm.data_dir, "bench.creds"), "--data-dir",
                                cm.data_dir, "--prefix", cm.prefix],
                               capture_output=True, text=True)
            if r.returncode == 0:
                out["issue_credential_s"] = time.monotonic() - t0
        finally:
            conn2.stop_all()
            conn.stop_all()
        self.res["scenarios"]["security"] = out

    def run(self):
        wanted = self.args.scenarios
        self.start_cluster()
        try:
            if "floor" in wanted:
                log("floor: bare NATS echo and bare HTTP reply")
                self.floor()
            self.deploy("noop", noop, 100000)
            self.deploy("batch-adaptive", batching_model, 20000, batch_size=-1)
            self.deploy("batch-size-1", batching_model, 20000, batch_size=1)
            self.deploy("sleep10", sleep10, 10000000, batch_size=1)
            time.sleep(1.0)
            mem_idle = memory_snapshot(self.cm, "VmRSS")
            for name in ("e2e", "batching", "scaling", "coldstart", "overload", "ray",
                         "security"):
                if name in wanted:
                    log(name)
                    getattr(self, name)()
            if "memory" in wanted:
                self.res["scenarios"]["memory"] = {
                    "idle_rss_mb": mem_idle, "peak_rss_mb": memory_snapshot(self.cm, "VmHWM")}
        finally:
            self.conn.stop_all()
        if "kubernetes" in wanted:
            log("kubernetes")
            self.kubernetes()
        self.res["finished"] = now_iso()
        self.ratios()
        self.targets()
        return self.res

    def ratios(self):
        """Every comparison of the run as a ratio (product / reference)."""
        s, r = self.res["scenarios"], {}

        def ratio(name, a, b):
            if a is not None and b:
                r[name] = round(a / b, 3)

        f, e, ray = s.get("floor"), s.get("e2e"), s.get("ray", {})
        if f and e:
            for k in ("p50_us", "p99_us"):
                ratio("nats_%s_vs_echo" % k[:3], e["nats_sequential"][k], f["nats_sequential"][k])
                ratio("http_%s_vs_http_floor" % k[:3], e["http_light"][k], f["http_light"][k])
            ratio("nats_throughput_vs_echo", e["nats_pipelined"]["throughput_rps"],
                  f["nats_pipelined"]["throughput_rps"])
            ratio("http_throughput_vs_http_floor", e["http_saturation"]["rps"],
                  f["http_saturation"]["rps"])
            for p in ("50", "90"):
                if "floor_open_" + p in e:
                    ratio("nats_p50_at_%s%%_vs_echo_same_rate" % p, e["nats_open_" + p]["p50_us"],
                          e["floor_open_" + p]["p50_us"])
        k = s.get("kubernetes", {})
        if e and "http_light" in k:
            ratio("k8s_nats_p50_vs_local", k["nats_sequential"]["p50_us"],
                  e["nats_sequential"]["p50_us"])
            ratio("k8s_nats_throughput_vs_local", k["nats_pipelined"]["throughput_rps"],
                  e["nats_pipelined"]["throughput_rps"])
            ratio("k8s_http_p50_vs_local", k["http_light"]["p50_us"], e["http_light"]["p50_us"])
            ratio("k8s_http_throughput_vs_local", k["http_saturation"]["rps"],
                  e["http_saturation"]["rps"])
        if e and "noop_light" in ray:
            ratio("http_noop_p50_vs_ray", e["http_light"]["p50_us"], ray["noop_light"]["p50_us"])
            ratio("http_noop_p99_vs_ray", e["http_light"]["p99_us"], ray["noop_light"]["p99_us"])
            ratio("http_noop_throughput_vs_ray", e["http_saturation"]["rps"],
                  ray["noop_saturation"]["rps"])
        if "batching_light" in ray:
            ratio("http_batching_p50_vs_ray", ray["product_batching_light"]["p50_us"],
                  ray["batching_light"]["p50_us"])
            ratio("http_batching_throughput_vs_ray", ray["product_batching_saturation"]["rps"],
                  ray["batching_saturation"]["rps"])
        self.res["ratios"] = r

    # ---- targets --------------------------------------------------------------------------
    def targets(self):
        s, t = self.res["scenarios"], self.res["targets"]

        def put(name, value, goal, ok):
            t[name] = {"value": value, "target": goal, "met": bool(ok)}

        if "floor" in s and "e2e" in s:
            f, e = s["floor"], s["e2e"]
            tr = e["nats_pipelined"]["throughput_rps"] / f["nats_pipelined"]["throughput_rps"]
            lr = e["nats_sequential"]["p50_us"] / f["nats_sequential"]["p50_us"]
            put("nats_throughput_vs_floor", round(tr, 2), ">= 0.5", tr >= 0.5)
            put("nats_p50_vs_floor", round(lr, 2), "<= 3", lr <= 3)
        if "ray" in s and "noop_saturation" in s.get("ray", {}) and "e2e" in s:
            r, e = s["ray"], s["e2e"]
            tr = e["http_saturation"]["rps"] / r["noop_saturation"]["rps"]
            lr = e["http_light"]["p50_us"] / r["noop_light"]["p50_us"]
            put("http_throughput_vs_ray", round(tr, 1), ">= 10", tr >= 10)
            put("http_p50_vs_ray", round(lr, 3), "<= 0.25", lr <= 0.25)
        if "batching" in s:
            x = s["batching"]["ratio"]
            put("adaptive_batching_vs_batch_1", round(x, 1), ">= 10", x >= 10)
        if "scaling" in s:
            x = s["scaling"]["ratio_4_vs_1"]
            put("scaling_1_to_4", round(x, 2), ">= 3.5", x >= 3.5)
        if "coldstart" in s:
            x = s["coldstart"]["max_s"]
            put("cold_start_s", x, "<= 1", x <= 1)
        if "memory" in s:
            idle = s["memory"]["idle_rss_mb"]
            for role in ("frontend", "router"):
                put("idle_rss_mb_" + role, idle.get(role), "< 20", (idle.get(role) or 1e9) < 20)
        if "overload" in s:
            o = s["overload"]
            lost = o["lost"]
            share = o["predictions_in_slo"] / max(o["predictions"], 1)
            held = o["goodput_rps"] / max(o["saturation_rps"], 1)
            put("overload_lost", lost, "== 0", lost == 0)
            put("overload_predictions_in_slo", round(share, 4), ">= 0.99", share >= 0.99)
            put("overload_goodput_vs_saturation", round(held, 2), ">= 0.9", held >= 0.9)


def ray_memory(root):
    """Resident MB of every process of the Ray session started by root."""
    total, rows = 0.0, {}
    for pid in _descendants(root):
        kb = rss_kb(pid)
        if kb is None:
            continue
        try:
            with open("/proc/%d/comm" % pid) as f:
                name = f.read().strip()
        except OSError:
            continue
        rows[name] = round(rows.get(name, 0) + kb / 1024.0, 1)
        total += kb / 1024.0
    rows["total"] = round(total, 1)
    return rows


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- reporting ---------------------------------------------------------------------------

def rows_of(res):
    """Flat (scenario, measurement, metric, value) rows for the CSV."""
    out = []

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(prefix + [str(k)], v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(prefix + [str(i)], v)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            out.append((prefix[0], ".".join(prefix[1:-1]), prefix[-1], node))

    walk([], res["scenarios"])
    return out


def print_table(res):
    s = res["scenarios"]
    m = res["machine"]
    print("\nmachine: %s, %d cores, %.0f GiB, kernel %s" % (m["cpu"], m["cores"], m["memory_gib"],
                                                          m["kernel"]))
    fmt = "%-34s %10s %10s %12s  %s"
    print(fmt % ("", "p50 (us)", "p99 (us)", "req/s", "notes"))

    def line(name, lat, thr, note=""):
        print(fmt % (name, lat.get("p50_us", "") if lat else "", lat.get("p99_us", "") if lat else "",
                     ("%.0f" % thr) if thr else "", note))

    if "floor" in s:
        f = s["floor"]
        line("NATS echo (floor)", f["nats_sequential"], f["nats_pipelined"]["throughput_rps"])
        line("HTTP constant reply (floor)", f["http_light"], f["http_saturation"]["rps"])
    if "e2e" in s:
        e = s["e2e"]
        line("no-op closure over NATS", e["nats_sequential"], e["nats_pipelined"]["throughput_rps"],
             "%d bad; client used %.0f%% of a core" % (
                 e["nats_sequential"]["bad"] + e["nats_pipelined"]["bad"],
                 100 * e["nats_pipelined"]["client_cpu_s"] / e["nats_pipelined"]["client_wall_s"]))
        for k in ("nats_open_50", "nats_open_90"):
            o = e[k]
            line("  at %s%% of saturation (open loop)" % k[-2:], o, o["send_rate"],
                 "%d defaults, %d lost" % (o["defaults"], o["lost"]))
            o = e["floor_open_" + k[-2:]]
            line("  NATS echo at the same rate", o, o["send_rate"])
        hs = e["http_saturation"]
        line("no-op closure over HTTP", e["http_light"], hs["rps"],
             "%d non-2xx, %d defaults; wrk used %.0f%% of a core" % (
                 hs["non2xx"], hs["defaults"], 100 * hs["client_cpu_s"] / hs["client_wall_s"]))
        for k in ("http_paced_50", "http_paced_90"):
            o = e[k]
            line("  at %s%% of saturation (paced)" % k[-2:], o, o["rps"])
    r = s.get("ray", {})
    if "noop_light" in r:
        line("Ray Serve no-op over HTTP", r["noop_light"], r["noop_saturation"]["rps"])
        line("Ray Serve batching over HTTP", r["batching_light"], r["batching_saturation"]["rps"])
        line("product batching over HTTP", r["product_batching_light"],
             r["product_batching_saturation"]["rps"],
             "%d defaults" % r["product_batching_saturation"]["defaults"])
    elif r:
        print("Ray Serve: %s" % r.get("skipped"))
    if "batching" in s:
        b = s["batching"]
        print("adaptive batching (20 ms SLO): %.0f predictions/s within the SLO against %.0f with "
              "batch_size=1: %.1fx" % (b["adaptive"]["goodput_rps"],
                                       b["batch_size_1"]["goodput_rps"], b["ratio"]))
    if "scaling" in s:
        c = s["scaling"]
        print("replica scaling (10 ms per batch): 1: %.0f/s, 2: %.0f/s, 4: %.0f/s: %.2fx"
              % (c["replicas_1"]["goodput_rps"], c["replicas_2"]["goodput_rps"],
                 c["replicas_4"]["goodput_rps"], c["ratio_4_vs_1"]))
    if "coldstart" in s:
        c = s["coldstart"]
        print("cold start (deploy_python_closure to first prediction): median %.3f s, max %.3f s"
              % (c["median_s"], c["max_s"]))
    if "memory" in s:
        mm = s["memory"]
        print("resident memory, MB (idle / peak):")
        for role, mb in mm["idle_rss_mb"].items():
            print("  %-32s %7.1f / %7.1f" % (role, mb, mm["peak_rss_mb"].get(role, float("nan"))))
    if "overload" in s:
        o = s["overload"]
        print("overload at 2x saturation (%d/s for %.0f s, 20 ms SLO): %d sent, %d predictions "
              "(%d within SLO), %d defaults, %d errors, %d lost; prediction p99 %d us"
              % (o["rate"], o["seconds"], o["sent"], o["predictions"], o["predictions_in_slo"],
                 o["defaults"], o["errors"], o["lost"], o["pred_p99_us"]))
    k = s.get("kubernetes", {})
    if "http_light" in k:
        line("no-op on Kubernetes over NATS", k["nats_sequential"],
             k["nats_pipelined"]["throughput_rps"], "through the NATS Service's NodePort")
        line("no-op on Kubernetes over HTTP", k["http_light"], k["http_saturation"]["rps"],
             "through the query Service's NodePort")
        print("Kubernetes: start_clipper %.1f s, deploy to first prediction %.2f s, a replica "
              "pod deleted to serving again %.2f s" % (
                  k["start_clipper_s"], k["deploy_to_first_prediction_s"],
                  k["pod_deleted_to_serving_s"]))
    elif k:
        print("Kubernetes: %s" % k.get("skipped"))
    print("\nratios (product / reference, this run):")
    for name, v in res.get("ratios", {}).items():
        print("  %-40s %8.3f" % (name, v))
    print("\ntargets:")
    for name, t in res["targets"].items():
        print("  %-30s %-12s target %-10s %s" % (name, t["value"], t["target"],
                                                 "met" if t["met"] else "MISSED"))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path of the clipper-bench program")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="path of wrk")
    ap.add_argument("--ray-python", help="python of a venv with ray[serve] (Ray is skipped without)")
    ap.add_argument("--plot-python", help="python with matplotlib for the plots (default: --ray-python)")
    ap.add_argument("--out", default="bench-results", help="directory for results and plots")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test, not figures)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated subset of: " + ", ".join(SCENARIOS))
    args = ap.parse_args()
    args.scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    bad = [x for x in args.scenarios if x not in SCENARIOS]
    if bad:
        ap.error("unknown scenario %s (choose from %s)" % (", ".join(bad), ", ".join(SCENARIOS)))
    if not shutil.which(args.wrk):
        ap.error("wrk not found (Debian package wrk; `bash .ci/bench` installs it)")
    os.makedirs(args.out, exist_ok=True)

    res = Suite(args).run()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("scenario", "measurement", "metric", "value"))
        w.writerows(rows_of(res))
    print_table(res)
    plot_py = args.plot_python or args.ray_python
    if plot_py and os.path.exists(plot_py):
        subprocess.run([plot_py, os.path.join(HERE, "bench_plot.py"),
                        os.path.join(args.out, "results.json"), args.out], check=True)
    print("raw results: %s/results.json, %s/results.csv" % (args.out, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
