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
  floor, e2e (NATS and HTTP), peers (tests/bench/bench_peers.py), large
  (inputs of 100 KB to 8 MB), batching, scaling, coldstart, memory,
  overload, ray, kubernetes (the same no-op through a KubernetesContainerManager
  cluster's Services, with the same clients; needs KUBECONFIG).

Throughput is swept over the client's pipeline depth (NATS, --window) and
wrk's connections (HTTP), for the product and for the floors alike, and
compared best to best; every depth is kept in results.json. With --runs N
the measuring scenarios (floor, e2e, peers, large) are repeated N times in
the same cluster, one after the other, and every ratio and target gets its
median and range over the runs (results.json "spread"); a target is met
when its median meets it.

Writes <out>/results.json (everything), <out>/results.csv (one row per
figure) and, when matplotlib is importable by --plot-python, PNG plots.
Usage (after `bash .ci/setup`; `bash .ci/bench` does all of it):

    PYTHONPATH=build/deployers python3 tests/bench/bench_suite.py \\
        --bench build/tests/bench/clipper-bench --out docs/bench \\
        [--ray-python build/bench-venv/bin/python] [--quick] [--runs 3]
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
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_admin._locate import clipper_bin
from clipper_admin.local_container_manager import _descendants

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = '{"input":[1.0,2.0]}'
SCENARIOS = ("floor", "e2e", "peers", "large", "batching", "scaling", "coldstart", "memory",
             "overload", "ray", "security", "kubernetes")
# The scenarios --runs repeats, in this order in each run.
MEASURING = ("floor", "e2e", "peers", "large")
# Pipeline depths (clipper-bench --window) and wrk connections swept for
# the saturation figures of the product and the floors.
WINDOWS = (1, 16, 64, 256, 1024, 4096)
CONNECTIONS = (1, 16, 64, 256, 512)
# How the echo writes its replies (clipper-bench --echo-mode): each is the
# best in some regime, so the floor is the best of them. In the open loop
# "buffered" (cnats' flusher, a millisecond's wait) is left out.
ECHO_MODES = ("buffered", "asap", "loop")
OPEN_ECHO_MODES = ("asap", "loop")
# How the open-loop client writes (clipper-bench --burst or not): each
# request at once, or each burst of requests due together in one write.
CLIENT_WRITES = ("asap", "burst")
# The large-input scenario: raw input sizes (bytes as the model gets them:
# the bytes of a "bytes" input, 8 bytes per double of a "doubles" one).
LARGE_SIZES = (("100KB", 100000), ("1MB", 1000000), ("8MB", 8000000))
LARGE_SLO_US = 5000000
# Requests in flight for the large inputs stay under this many bytes of
# body: nats-server cuts a client whose pending writes pass 64 MB.
LARGE_INFLIGHT = 48000000
# The frontend's HTTP body limit (opts.max_body, CL_FE_DEFAULT_MAX_BODY).
FRONTEND_MAX_BODY = 32 << 20


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
               slo_us=100000, echo=False, grace_ms=3000, echo_buffered=False, auth=(),
               echo_mode=None, body_file=None, warmup=None, timeout_ms=None, echo_reply=None,
               burst=False):
    """Runs clipper-bench; returns its rows by kind. echo_mode: the echo
    writes in that mode in every run (else --echo's defaults: at once for
    latency, buffered for throughput, at once or with echo_buffered
    buffered in the open loop). body_file: the body from a file. burst: the
    open loop writes the requests due together in one write (clipper-bench
    --burst) instead of each at once."""
    cmd = [args.bench, "--nats", url] + list(auth) + ["--subject", subject, "--label", label,
           "--count", str(count), "--window", str(window), "--seconds", str(seconds),
           "--slo-us", str(slo_us), "--grace-ms", str(grace_ms)]
    cmd += ["--body-file", body_file] if body_file else ["--body", BODY]
    if rate:
        cmd += ["--rate", str(rate)]
    if burst:
        cmd.append("--burst")
    if warmup is not None:
        cmd += ["--warmup", str(warmup)]
    if timeout_ms is not None:
        cmd += ["--timeout-ms", str(timeout_ms)]
    if echo_mode:
        cmd += ["--echo-mode", echo_mode]
    elif echo:
        cmd.append("--echo-buffered" if echo_buffered else "--echo")
    if echo_reply is not None:
        cmd += ["--echo-reply", echo_reply]
    out, wall, cpu = run_client(cmd)
    rows = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rows[r["kind"]] = r
    for r in rows.values():
        if r["kind"] == "open":
            r["client_writes"] = "burst" if burst else "asap"
        # clipper-bench counts its own CPU time (cpu_s) apart from the
        # echo's (echo_cpu_s, a process of its own); the cores each used
        # over the measurement say whether the client could have limited it.
        r["client_cpu_s"] = round(r.get("cpu_s", cpu), 2)
        r["client_wall_s"] = round(wall, 2)
        span = r.get("seconds") or wall
        r["client_cores"] = round(r.get("cpu_s", cpu) / max(span, 1e-3), 2)
        if "echo_cpu_s" in r:
            r["echo_cores"] = round(r["echo_cpu_s"] / max(span, 1e-3), 2)
    return rows


# ---- HTTP: wrk ---------------------------------------------------------------

def wrk(args, url, connections, seconds, threads=None, rate=None, count=True, body_file=None,
        timeout_s=5):
    """wrk against url with the suite's POST body (or body_file's). With
    rate, each connection waits a fixed delay between requests so that
    connections/delay is the wanted rate (wrk has no open-loop mode; the
    achieved rate is reported). count=False: no Lua hook per response (no
    count of defaults and non-2xx answers; wrk itself still counts statuses
    of 400 and above as errors), which costs wrk less."""
    threads = threads or min(2, connections)
    env = dict(os.environ, WRK_BODY=BODY, WRK_DELAY_MS="0", WRK_COUNT="1" if count else "0",
               WRK_BODY_FILE=body_file or "")
    if rate:
        env["WRK_DELAY_MS"] = "%d" % max(1, round(connections * 1000.0 / rate))
    cmd = [args.wrk, "-t%d" % threads, "-c%d" % connections, "-d%ds" % max(1, round(seconds)),
           "--timeout", "%ds" % timeout_s, "-s", os.path.join(HERE, "wrk_post.lua"), url]
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
             client_wall_s=round(wall, 2), client_cores=round(cpu / max(wall, 1e-3), 2))
    if rate:
        r["target_rate"] = rate
    return r


class HttpFloor:
    """clipper-bench --http-floor on a free port while in a with block."""

    def __init__(self, args):
        self.args = args

    def __enter__(self):
        port = free_port()
        self.proc = subprocess.Popen([self.args.bench, "--http-floor", str(port)],
                                     stdout=subprocess.PIPE, text=True)
        self.proc.stdout.readline()
        return "http://127.0.0.1:%d/floor" % port

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def best_of(rows, key):
    """The row of rows (a list or a dict of rows) with the highest key."""
    rows = list(rows.values()) if isinstance(rows, dict) else list(rows)
    rows = [r for r in rows if isinstance(r, dict) and r.get(key) is not None]
    return max(rows, key=lambda r: r[key]) if rows else None


def least_of(rows, key):
    rows = list(rows.values()) if isinstance(rows, dict) else list(rows)
    rows = [r for r in rows if isinstance(r, dict) and r.get(key) is not None]
    return min(rows, key=lambda r: r[key]) if rows else None


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


def length(xs):
    # The large-input apps: a short answer per input, so what is measured
    # is the input's way in.
    return [str(len(x)) for x in xs]


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
                    "runs_wanted": args.runs, "scenarios": {}, "targets": {}}
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

    def deploy(self, app, func, slo_us, batch_size=-1, replicas=1, input_type="doubles",
               warm_body=BODY):
        python_deployer.create_endpoint(self.conn, app, input_type, func, slo_micros=slo_us,
                                        batch_size=batch_size, num_replicas=replicas)
        # The first queries warm the replica's interpreter.
        for _ in range(20):
            nats_predict(self.cm, app, body=warm_body)

    # sweeps: the saturation figures, best to best ---------------------------------
    def window_sweep(self, subject, label, windows=WINDOWS, modes=(None,), secs=None, **kw):
        """Pipelined throughput at every window (clipper-bench --window):
        {window: row}, or with echo modes {mode: {window: row}}. The
        windows are the outer loop, so drift on a busy machine hits every
        mode alike."""
        secs = secs or self.dur(2, 1)
        out = {m: {} for m in modes}
        for w in windows:
            for m in modes:
                lab = "%s-%sw%d" % (label, m + "-" if m else "", w)
                out[m][str(w)] = nats_bench(self.args, self.url, subject, lab, window=w,
                                            seconds=secs, echo_mode=m, **kw)["pipelined"]
        return out if modes != (None,) else out[None]

    def http_sweep(self, url, connections=CONNECTIONS, secs=None,
                   kinds=("counted", "uncounted"), **kw):
        """wrk at every number of connections, with the Lua hook that counts
        defaults and non-2xx answers and without it (cheaper for wrk):
        {"counted": {connections: row}, "uncounted": {...}}."""
        secs = secs or self.dur(2, 1)
        out = {k: {} for k in kinds}
        for c in connections:
            for kind in out:
                out[kind][str(c)] = wrk(self.args, url, c, secs, threads=1 if c == 1 else None,
                                        count=kind == "counted", **kw)
        return out

    @staticmethod
    def http_best(sweep):
        """http_light: the lowest p50 with one connection; http_saturation:
        the most requests a second of any run. A run without the hook is
        given the defaults and non-2xx answers of the counted run with as
        many connections (counted_run)."""
        light = dict(least_of([sweep[k]["1"] for k in sweep if "1" in sweep[k]], "p50_us"))
        sat = dict(best_of([r for k in sweep for r in sweep[k].values()], "rps"))
        sat["hook_cost"] = Suite.hook_cost(sweep)
        for row in (light, sat):
            c = sweep.get("counted", {}).get(str(row["connections"]))
            if not row["counted"] and c:
                row["counted_run"] = {k: c[k] for k in ("rps", "defaults", "non2xx", "p50_us")}
                row["defaults"], row["non2xx"] = c["defaults"], c["non2xx"]
        return {"http_light": light, "http_saturation": sat}

    # 1. the floor -------------------------------------------------------------
    def floor(self):
        """The bare NATS echo (every write mode, sequential and at every
        window) and the bare libmicrohttpd reply (at every number of wrk
        connections, with and without wrk's per-response hook). The floor
        is the best of each."""
        a = self.args
        seq = {m: nats_bench(a, self.url, "bench.echo", "echo-seq-" + m,
                             count=self.dur(5000, 1000), echo_mode=m)["sequential"]
               for m in ("asap", "loop")}
        by_window = self.window_sweep("bench.echo", "echo", modes=ECHO_MODES)
        out = {"nats_sequential": least_of(seq, "p50_us"), "nats_sequential_by_mode": seq,
               "nats_by_window": by_window,
               "nats_pipelined": best_of([r for m in by_window.values() for r in m.values()],
                                         "throughput_rps")}
        with HttpFloor(a) as url:
            out["http_by_connections"] = self.http_sweep(url)
        out.update(self.http_best(out["http_by_connections"]))
        self.res["scenarios"]["floor"] = out

    @staticmethod
    def hook_cost(sweep):
        """What wrk's per-response Lua hook costs: the best throughput with
        it over the best without (1: nothing)."""
        c = best_of(sweep.get("counted", {}), "rps")
        u = best_of(sweep.get("uncounted", {}), "rps")
        return round(c["rps"] / u["rps"], 3) if c and u and u["rps"] else None

    # 2. end to end, no-op closure ------------------------------------------------
    def e2e(self):
        a = self.args
        tail_secs = self.dur(3, 2)
        r = nats_bench(a, self.url, self.subj("noop"), "noop-nats", count=self.dur(5000, 1000))
        by_window = self.window_sweep(self.subj("noop"), "noop-nats")
        out = {"nats_sequential": r["sequential"], "nats_by_window": by_window,
               "nats_pipelined": best_of(by_window, "throughput_rps")}
        sat = out["nats_pipelined"]["throughput_rps"]
        f = self.res["scenarios"].get("floor")
        # The tail (p99, p99.9) at 50% and 90% of the product's saturation,
        # open loop, with the client writing each request at once and each
        # burst at once; beside the bare echo at the same rate in every
        # write mode, with both clients (the floor is the best of them at
        # each percentile); and the echo at 50% and 90% of its own
        # saturation.
        for frac in (0.5, 0.9):
            p = "%d" % (frac * 100)
            rate = round(sat * frac)
            mine = {w: nats_bench(a, self.url, self.subj("noop"), "noop-nats-%s-%s" % (p, w),
                                  rate=rate, seconds=tail_secs, burst=w == "burst")["open"]
                    for w in CLIENT_WRITES}
            out["nats_open_%s_by_client" % p] = mine
            out["nats_open_" + p] = least_of(mine, "p99_us")
            tries = {"%s, %s client" % (m, w): nats_bench(
                a, self.url, "bench.echo", "echo-%s-%s-%s" % (p, m, w), rate=rate,
                seconds=tail_secs, echo_mode=m, burst=w == "burst")["open"]
                for w in CLIENT_WRITES for m in OPEN_ECHO_MODES}
            out["floor_open_%s_by_mode" % p] = tries
            out["floor_open_" + p] = least_of(tries, "p99_us")
        if f:
            esat = f["nats_pipelined"]["throughput_rps"]
            best = out["floor_open_90"]
            for frac in (0.5, 0.9):
                p = "%d" % (frac * 100)
                o = nats_bench(a, self.url, "bench.echo", "echo-own-" + p, rate=round(esat * frac),
                               seconds=tail_secs, echo_mode=best["echo_mode"],
                               burst=best["client_writes"] == "burst")["open"]
                o["of_saturation_rps"] = esat
                out["floor_own_open_" + p] = o
        out["tail_summary"] = self.tail_summary(out)
        out["http_by_connections"] = self.http_sweep(self.http("noop"))
        out.update(self.http_best(out["http_by_connections"]))
        hsat = out["http_saturation"]["rps"]
        # The same for HTTP, paced: the product, the bare reply at the same
        # rates (both counting answers), and the bare reply at 50% and 90%
        # of its own saturation (without the hook: counted, wrk cannot
        # reach it).
        with HttpFloor(a) as furl:
            for frac in (0.5, 0.9):
                p = "%d" % (frac * 100)
                out["http_paced_" + p] = self.paced(self.http("noop"), hsat * frac, tail_secs)
                out["http_floor_paced_" + p] = self.paced(furl, hsat * frac, tail_secs)
                if f:
                    fsat = f["http_saturation"]["rps"]
                    o = self.paced(furl, fsat * frac, tail_secs, count=False)
                    o["of_saturation_rps"] = fsat
                    out["http_floor_own_paced_" + p] = o
        self.res["scenarios"]["e2e"] = out

    @staticmethod
    def tail_summary(e):
        """Where the NATS tail comes from, in figures: at each load the
        product's and the best echo's p99 and p99.9, how far behind its
        schedule the client fell in each (its own share of the tail: the
        latency counts from the scheduled send), and what writing each
        request at once instead of each burst did to the product's p99."""
        out = {}
        for p in ("50", "90"):
            mine = e.get("nats_open_%s_by_client" % p) or {}
            me, echo = e.get("nats_open_" + p), e.get("floor_open_" + p)
            if not (me and echo):
                continue
            row = {"rate": me["rate"]}
            for who, o in (("product", me), ("echo", echo)):
                row.update({"%s_%s" % (who, k): o.get(k) for k in
                            ("p50_us", "p99_us", "p999_us", "max_us", "max_send_lag_us",
                             "client_writes")})
            row["echo_mode"] = echo.get("echo_mode")
            row["product_defaults"] = me.get("defaults")
            if "asap" in mine and "burst" in mine and mine["burst"]["p99_us"]:
                row["product_p99_asap_vs_burst_client"] = round(
                    mine["asap"]["p99_us"] / mine["burst"]["p99_us"], 2)
            out[p] = row
        return out

    def paced(self, url, rate, secs, count=True):
        """wrk at about `rate` requests a second: connections that each wait
        10 ms between requests. A request's own latency stretches each
        connection's period, so a run that falls short is repeated once
        with proportionally more connections."""
        conns = max(8, int(rate * 0.010))
        r = wrk(self.args, url, min(conns, 1000), secs, rate=rate, count=count)
        if r["rps"] < 0.95 * rate:
            conns = int(conns * rate / max(r["rps"], 1.0)) + 1
            r = wrk(self.args, url, min(conns, 1000), secs, count=count,
                    rate=rate * min(conns, 1000) / max(1, r["connections"]))
            r["target_rate"] = rate
        return r

    # large inputs ----------------------------------------------------------------
    def large_bodies(self):
        """{(input type, size label): (path, body bytes, raw bytes)}: the
        request bodies of the large-input scenario, written once into a
        temporary directory. bytes: {"input": "<base64>"} of random bytes;
        doubles: {"input": [...]} of random doubles, written in full
        (17 significant digits, about 19 bytes of JSON per 8-byte double)."""
        if getattr(self, "_large", None):
            return self._large
        import base64
        import random
        self._large_dir = tempfile.mkdtemp(prefix="clipper-bench-large-")
        rnd = random.Random(17)
        self._large = {}
        for label, size in LARGE_SIZES:
            bodies = {"bytes": {"input": base64.b64encode(rnd.randbytes(size)).decode()},
                      "doubles": {"input": [rnd.random() for _ in range(size // 8)]}}
            for kind, body in bodies.items():
                text = json.dumps(body, separators=(",", ":")).encode()
                path = os.path.join(self._large_dir, "%s-%s.json" % (kind, label))
                with open(path, "wb") as fh:
                    fh.write(text)
                self._large[(kind, label)] = (path, len(text), size)
        return self._large

    def large(self):
        """Inputs of 100 KB, 1 MB and 8 MB (raw: the bytes a model gets;
        8 bytes a double) as bytes (base64 in the JSON) and as doubles, to
        apps whose closure answers each input's length (SLO 5 s, so nothing
        defaults): over NATS (sequential, and pipelined at a few windows)
        and over HTTP (wrk at a few connections, the body from a file),
        beside the floors with the same bodies: the NATS echo answering a
        short reply (so the same bytes cross the bus as to the product and
        back), and the bare HTTP reply. MB/s count the raw input bytes."""
        a = self.args
        secs = self.dur(2, 1)
        short = '{"query_id":0,"output":"1","default":false}'
        modes = ("asap", "buffered", "loop") if not self.q else ("loop",)
        out = {"sizes": [x[0] for x in LARGE_SIZES], "slo_us": LARGE_SLO_US,
               "frontend_max_body": FRONTEND_MAX_BODY, "inflight_limit": LARGE_INFLIGHT}
        for (kind, label), (path, nbody, raw) in sorted(self.large_bodies().items()):
            app = "large-" + kind
            row = {"input_type": kind, "raw_bytes": raw, "body_bytes": nbody}
            # Windows and connections that keep under LARGE_INFLIGHT bytes
            # of bodies in flight; at most three (two with --quick).
            fits = [w for w in (1, 2, 4, 16, 64) if w * nbody <= LARGE_INFLIGHT]
            windows = fits[-self.dur(3, 2):]
            conns = [c for c in (1, 4, 16) if c * nbody <= LARGE_INFLIGHT][-self.dur(3, 2):]
            count = max(5, min(self.dur(200, 50), int(self.dur(400e6, 100e6) / nbody)))
            kw = dict(body_file=path, slo_us=LARGE_SLO_US, grace_ms=10000, timeout_ms=30000)
            log("  large %s %s (%d bytes of JSON): windows %s, connections %s"
                % (kind, label, nbody, windows, conns))
            row["nats_sequential"] = nats_bench(a, self.url, self.subj(app), "large-seq", count=count,
                                                warmup=2, **kw)["sequential"]
            row["echo_sequential"] = nats_bench(a, self.url, "bench.large", "large-echo-seq",
                                                count=count, warmup=2, echo_mode="asap",
                                                echo_reply=short, **kw)["sequential"]
            row["nats_by_window"] = self.window_sweep(self.subj(app), "large-nats", windows,
                                                      secs=secs, **kw)
            row["echo_by_window"] = self.window_sweep("bench.large", "large-echo", windows,
                                                      modes=modes, secs=secs, echo_reply=short,
                                                      **kw)
            pbest = best_of(row["nats_by_window"], "throughput_rps")
            ebest = best_of([r for m in row["echo_by_window"].values() for r in m.values()],
                            "throughput_rps")
            row["nats_mbps"] = round(pbest["throughput_rps"] * raw / 1e6, 1)
            row["echo_mbps"] = round(ebest["throughput_rps"] * raw / 1e6, 1)
            row["nats_best_window"], row["echo_best"] = pbest["window"], {
                "window": ebest["window"], "echo_mode": ebest.get("echo_mode")}
            row["nats_bad"] = sum(r["bad"] for r in row["nats_by_window"].values()) + \
                row["nats_sequential"]["bad"]
            if nbody > FRONTEND_MAX_BODY:
                row["http"] = {"skipped": "a %.1f MB body is above the frontend's HTTP body limit "
                                          "(opts.max_body, %d MiB)" % (nbody / 1e6,
                                                                       FRONTEND_MAX_BODY >> 20),
                               "status": self.http_status(self.http(app), nbody)}
            else:
                hkw = dict(body_file=path, timeout_s=30, secs=secs, kinds=("counted",))
                row["http_by_connections"] = self.http_sweep(self.http(app), conns, **hkw)["counted"]
                with HttpFloor(a) as furl:
                    row["http_floor_by_connections"] = self.http_sweep(furl, conns,
                                                                       **hkw)["counted"]
                hb = best_of(row["http_by_connections"], "rps")
                fb = best_of(row["http_floor_by_connections"], "rps")
                row["http_mbps"] = round(hb["rps"] * raw / 1e6, 1)
                row["http_floor_mbps"] = round(fb["rps"] * raw / 1e6, 1)
                row["http_best_connections"] = hb["connections"]
                row["http_bad"] = sum((r["defaults"] or 0) + (r["non2xx"] or 0) +
                                      r["errors"]["timeout"]
                                      for r in row["http_by_connections"].values())
            out["%s_%s" % (kind, label)] = row
        self.res["scenarios"]["large"] = out

    @staticmethod
    def http_status(url, nbytes):
        """The status the frontend answers a POST announcing nbytes of body
        (Content-Length): a body above its limit is refused from that
        alone (413), before it is sent."""
        from urllib.parse import urlsplit
        u = urlsplit(url)
        with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
            sock.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n" % (u.path, nbytes)).encode())
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
        m = re.match(rb"HTTP/1\.\d (\d+)", head)
        return int(m.group(1)) if m else "no status line: %r" % head[:100]

    # peers: the same models served by other serving systems -----------------------
    def peers(self):
        """tests/bench/bench_peers.py, with the cluster up (the apps "noop"
        and "batch-adaptive" deployed): its run(suite) returns the
        scenario's figures, with a "ratios" dict (product / peer)."""
        try:
            import bench_peers
        except Exception as e:  # not there yet, or broken: the rest still runs
            self.res["scenarios"]["peers"] = {"skipped": "bench_peers cannot be imported: %r" % e}
            log("peers skipped: %r" % e)
            return
        try:
            self.res["scenarios"]["peers"] = bench_peers.run(self)
        except Exception as e:
            traceback.print_exc()
            self.res["scenarios"]["peers"] = {"skipped": "bench_peers.run failed: %r" % e}

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
            r = subprocess.run([clipper_bin(), "creds", "issue",
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
            self.deploy("noop", noop, 100000)
            self.deploy("batch-adaptive", batching_model, 20000, batch_size=-1)
            self.deploy("batch-size-1", batching_model, 20000, batch_size=1)
            self.deploy("sleep10", sleep10, 10000000, batch_size=1)
            if "large" in wanted:
                self.deploy("large-bytes", length, LARGE_SLO_US, input_type="bytes",
                            warm_body='{"input":"AAAA"}')
                self.deploy("large-doubles", length, LARGE_SLO_US)
            time.sleep(1.0)
            mem_idle = memory_snapshot(self.cm, "VmRSS")
            # The measuring scenarios, --runs times: floor and product one
            # after the other, so that drift on a busy machine hits both.
            measuring = [n for n in MEASURING if n in wanted]
            self.res["runs"] = []
            for i in range(self.args.runs if measuring else 0):
                ran = [n for n in measuring if i == 0 or n in self.args.repeat]
                for name in ran:
                    log("%s (run %d of %d)" % (name, i + 1, self.args.runs))
                    self.guarded(name)
                self.res["runs"].append({"scenarios": {
                    n: self.res["scenarios"][n] for n in ran if n in self.res["scenarios"]}})
            for name in ("batching", "scaling", "coldstart", "overload", "ray", "security"):
                if name in wanted:
                    log(name)
                    self.guarded(name)
            if "memory" in wanted:
                self.res["scenarios"]["memory"] = {
                    "idle_rss_mb": mem_idle, "peak_rss_mb": memory_snapshot(self.cm, "VmHWM")}
        finally:
            self.conn.stop_all()
            if getattr(self, "_large_dir", None):
                shutil.rmtree(self._large_dir, ignore_errors=True)
        if "kubernetes" in wanted:
            log("kubernetes")
            self.guarded("kubernetes")
        self.res["finished"] = now_iso()
        self.summarize()
        return self.res

    def guarded(self, name):
        """Runs scenario name; one that fails is recorded with its error (and
        the traceback logged) instead of losing the whole run's figures."""
        try:
            getattr(self, name)()
        except Exception as e:  # noqa: BLE001 - any failure is reported, not hidden
            log("%s failed: %s\n%s" % (name, e, traceback.format_exc()))
            self.res["scenarios"][name] = {"error": "%s: %s" % (type(e).__name__, e)}

    def summarize(self):
        """Ratios and targets of every run, and their spread: the median and
        the range over the runs. res["scenarios"] holds the last run of the
        repeated scenarios (res["runs"] every run); res["ratios"] the
        medians; a target is met when its median meets it."""
        runs = self.res.get("runs") or []
        for r in runs or [{"scenarios": {}}]:
            # A run's own measuring scenarios (one not repeated counts in
            # the first run only) and the scenarios that run once.
            s = {k: v for k, v in self.res["scenarios"].items() if k not in MEASURING or not runs}
            s.update(r["scenarios"])
            r["ratios"] = self.ratios_of(s)
            r["targets"] = self.targets_of(s)
        if not runs:
            runs = [{"ratios": self.ratios_of(self.res["scenarios"]),
                     "targets": self.targets_of(self.res["scenarios"])}]

        def spread(values):
            vals = [v for v in values if v is not None]
            if not vals:
                return None
            return {"median": round(statistics.median(vals), 3), "min": round(min(vals), 3),
                    "max": round(max(vals), 3), "runs": vals}

        names = []
        for r in runs:
            names += [n for n in r["ratios"] if n not in names]
        ratios = {n: spread([r["ratios"].get(n) for r in runs]) for n in names}
        self.res["ratios"] = {n: v["median"] for n, v in ratios.items() if v}
        names = []
        for r in runs:
            names += [n for n in r["targets"] if n not in names]
        targets = {}
        for n in names:
            first = next(r["targets"][n] for r in runs if n in r["targets"])
            sp = spread([r["targets"].get(n, {}).get("value") for r in runs])
            t = {"value": sp["median"] if sp else None, "target": first["target"],
                 "met": bool(sp) and OPS[first["op"]](sp["median"], first["threshold"])}
            if sp and len(sp["runs"]) > 1:
                t.update(min=sp["min"], max=sp["max"], runs=sp["runs"])
            targets[n] = t
        self.res["targets"] = targets
        self.res["spread"] = {"runs": len(runs), "ratios": ratios,
                              "targets": {n: {k: t[k] for k in ("value", "min", "max", "runs")
                                              if k in t} for n, t in targets.items()}}

    @staticmethod
    def ratios_of(s):
        """Every comparison of one run as a ratio (product / reference);
        throughput best to best."""
        s = ok_scenarios(s)
        r = {}

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
            # The same window and connections as before these sweeps, for
            # comparison with earlier runs.
            ratio("nats_throughput_vs_echo_at_window_256",
                  e["nats_by_window"].get("256", {}).get("throughput_rps"),
                  f["nats_by_window"].get("buffered", {}).get("256", {}).get("throughput_rps"))
        if e:
            for p in ("50", "90"):
                tries = e.get("floor_open_%s_by_mode" % p) or {}
                mine = e.get("nats_open_%s_by_client" % p) or {
                    "asap": e.get("nats_open_" + p)}
                for k in ("p50_us", "p99_us", "p999_us"):
                    best, me = least_of(tries, k), least_of(mine, k)
                    if best and me:
                        ratio("nats_%s_at_%s%%_vs_echo_same_rate" % (k[:-3], p), me[k], best[k])
                    if "http_floor_paced_" + p in e:
                        ratio("http_%s_at_%s%%_vs_http_floor_same_rate" % (k[:-3], p),
                              e["http_paced_" + p].get(k), e["http_floor_paced_" + p].get(k))
        lg = s.get("large") or {}
        for key, row in lg.items():
            if not isinstance(row, dict) or "raw_bytes" not in row:
                continue
            ratio("large_%s_nats_mbps_vs_echo" % key, row.get("nats_mbps"), row.get("echo_mbps"))
            ratio("large_%s_nats_p50_vs_echo" % key, row["nats_sequential"]["p50_us"],
                  row["echo_sequential"]["p50_us"])
            ratio("large_%s_http_mbps_vs_http_floor" % key, row.get("http_mbps"),
                  row.get("http_floor_mbps"))
        # Kubernetes and Ray Serve were measured at window 256 and with wrk
        # counting at 1 and 64 connections: against the product's same runs.
        k = s.get("kubernetes", {})
        if e and "http_light" in k:
            ratio("k8s_nats_p50_vs_local", k["nats_sequential"]["p50_us"],
                  e["nats_sequential"]["p50_us"])
            ratio("k8s_nats_throughput_vs_local", k["nats_pipelined"]["throughput_rps"],
                  same_run(e, "nats", "256")["throughput_rps"])
            ratio("k8s_http_p50_vs_local", k["http_light"]["p50_us"],
                  same_run(e, "http", "1")["p50_us"])
            ratio("k8s_http_throughput_vs_local", k["http_saturation"]["rps"],
                  same_run(e, "http", "64")["rps"])
        if e and "noop_light" in ray:
            light = same_run(e, "http", "1")
            ratio("http_noop_p50_vs_ray", light["p50_us"], ray["noop_light"]["p50_us"])
            ratio("http_noop_p99_vs_ray", light["p99_us"], ray["noop_light"]["p99_us"])
            ratio("http_noop_throughput_vs_ray", same_run(e, "http", "64")["rps"],
                  ray["noop_saturation"]["rps"])
        if "batching_light" in ray:
            ratio("http_batching_p50_vs_ray", ray["product_batching_light"]["p50_us"],
                  ray["batching_light"]["p50_us"])
            ratio("http_batching_throughput_vs_ray", ray["product_batching_saturation"]["rps"],
                  ray["batching_saturation"]["rps"])
        for name, v in peer_ratios(s.get("peers")).items():
            r["peers_" + name] = round(v, 3)
        return r

    # ---- targets --------------------------------------------------------------------------
    @staticmethod
    def targets_of(s):
        s = ok_scenarios(s)
        t = {}

        def put(name, value, op, threshold):
            t[name] = {"value": value, "target": "%s %s" % (op, threshold), "op": op,
                       "threshold": threshold,
                       "met": value is not None and OPS[op](value, threshold)}

        if "floor" in s and "e2e" in s:
            f, e = s["floor"], s["e2e"]
            # Best to best: the product's best window against the best echo
            # (any write mode, any window); the sequential p50 against the
            # best echo's.
            tr = e["nats_pipelined"]["throughput_rps"] / f["nats_pipelined"]["throughput_rps"]
            lr = e["nats_sequential"]["p50_us"] / f["nats_sequential"]["p50_us"]
            hr = e["http_saturation"]["rps"] / f["http_saturation"]["rps"]
            put("nats_throughput_vs_best_echo", round(tr, 3), ">=", 0.5)
            put("nats_p50_vs_echo", round(lr, 3), "<=", 1.5)
            put("http_throughput_vs_http_floor", round(hr, 3), ">=", 0.5)
        if "ray" in s and "noop_saturation" in s.get("ray", {}) and "e2e" in s:
            r, e = s["ray"], s["e2e"]
            tr = same_run(e, "http", "64")["rps"] / r["noop_saturation"]["rps"]
            lr = same_run(e, "http", "1")["p50_us"] / r["noop_light"]["p50_us"]
            put("http_throughput_vs_ray", round(tr, 1), ">=", 10)
            put("http_p50_vs_ray", round(lr, 3), "<=", 0.25)
        # Ahead of every peer on throughput and p50, for the no-op and the
        # batching model (bench_peers' ratios, product / peer: noop_best_rps,
        # batch_goodput_rps, noop_p50_us, batch_p50_us).
        for name, v in peer_ratios(s.get("peers")).items():
            low = name.split("_vs_")[0].lower()
            if not low.startswith(("noop", "batch")):
                continue
            if low.endswith(("_rps", "throughput")):
                put("peers_" + name, round(v, 3), ">", 1)
            elif "_p50" in low:
                put("peers_" + name, round(v, 3), "<", 1)
        if "batching" in s:
            x = s["batching"]["ratio"]
            put("adaptive_batching_vs_batch_1", round(x, 1), ">=", 10)
        if "scaling" in s:
            x = s["scaling"]["ratio_4_vs_1"]
            put("scaling_1_to_4", round(x, 2), ">=", 3.5)
        if "coldstart" in s:
            x = s["coldstart"]["max_s"]
            put("cold_start_s", x, "<=", 1)
        if "memory" in s:
            idle = s["memory"]["idle_rss_mb"]
            for role in ("frontend", "router"):
                put("idle_rss_mb_" + role, idle.get(role), "<", 20)
        if "overload" in s:
            o = s["overload"]
            lost = o["lost"]
            share = o["predictions_in_slo"] / max(o["predictions"], 1)
            held = o["goodput_rps"] / max(o["saturation_rps"], 1)
            put("overload_lost", lost, "==", 0)
            put("overload_predictions_in_slo", round(share, 4), ">=", 0.99)
            put("overload_goodput_vs_saturation", round(held, 2), ">=", 0.9)
        return t


OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
       "<": lambda a, b: a < b, "==": lambda a, b: a == b}


def same_run(e, proto, at):
    """The e2e run at window `at` (NATS) or with `at` connections and wrk
    counting (HTTP), for comparisons with figures measured only there;
    the best run when the sweep lacks it."""
    if proto == "nats":
        return e.get("nats_by_window", {}).get(at) or e["nats_pipelined"]
    row = e.get("http_by_connections", {}).get("counted", {}).get(at)
    return row or (e["http_light"] if at == "1" else e["http_saturation"])


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def peer_ratios(p):
    """{name: product / peer} from the peers scenario (bench_peers.py), read
    defensively: its "ratios" dict, either {peer: {figure: ratio}} (as
    "<figure>_vs_<peer>") or flat {name: ratio}."""
    if not isinstance(p, dict) or p.get("skipped"):
        return {}
    out = {}
    for k, v in (p.get("ratios") or {}).items():
        if isinstance(v, dict):
            out.update({"%s_vs_%s" % (name, k): x for name, x in v.items() if is_number(x)})
        elif is_number(v):
            out[str(k)] = v
    return out


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
    for name, sp in (res.get("spread") or {}).get("ratios", {}).items():
        if sp:
            out += [("spread", name, k, sp[k]) for k in ("median", "min", "max")]
    return out


def ok_scenarios(s):
    """The scenarios of s that did not fail (Suite.guarded)."""
    return {k: v for k, v in s.items() if not (isinstance(v, dict) and "error" in v)}


def print_table(res):
    s = ok_scenarios(res["scenarios"])
    for k, v in res["scenarios"].items():
        if k not in s:
            print("%s FAILED: %s" % (k, v["error"]))
    m = res["machine"]
    print("\nmachine: %s, %d cores, %.0f GiB, kernel %s" % (m["cpu"], m["cores"], m["memory_gib"],
                                                          m["kernel"]))
    fmt = "%-34s %10s %10s %12s  %s"
    print(fmt % ("", "p50 (us)", "p99 (us)", "req/s", "notes"))

    def line(name, lat, thr, note=""):
        print(fmt % (name, lat.get("p50_us", "") if lat else "", lat.get("p99_us", "") if lat else "",
                     ("%.0f" % thr) if thr else "", note))

    runs = len(res.get("runs") or [])
    if runs > 1:
        print("(floor, e2e, peers, large: the last of %d runs; ratios and targets below: the "
              "median and range over the runs)" % runs)

    def cores(r):
        return "client %.2f cores" % r["client_cores"] if "client_cores" in r else ""

    def counted(r):
        if r.get("counted"):
            return "%s non-2xx, %s defaults" % (r["non2xx"], r["defaults"])
        c = r.get("counted_run")
        return "wrk without its hook%s" % (
            "; counted at as many connections: %.0f/s, %s non-2xx, %s defaults" % (
                c["rps"], c["non2xx"], c["defaults"]) if c else "")

    if "floor" in s:
        f = s["floor"]
        fp = f["nats_pipelined"]
        line("NATS echo (floor)", f["nats_sequential"], fp["throughput_rps"],
             "best: %s echo; %s echo at window %d; %s, echo %.2f cores" % (
                 f["nats_sequential"].get("echo_mode", "asap"), fp.get("echo_mode", "buffered"),
                 fp["window"], cores(fp), fp.get("echo_cores", 0)))
        hs = f["http_saturation"]
        line("HTTP constant reply (floor)", f["http_light"], hs["rps"],
             "best at %d connections, wrk %s; %s; best counting / best without the hook: %s" % (
                 hs["connections"], "counting" if hs["counted"] else "without its hook",
                 cores(hs), hs.get("hook_cost")))
    if "e2e" in s:
        e = s["e2e"]
        ep = e["nats_pipelined"]
        line("no-op closure over NATS", e["nats_sequential"], ep["throughput_rps"],
             "best at window %d; %d bad; %s" % (ep["window"], e["nats_sequential"]["bad"] +
                                                sum(r["bad"] for r in e["nats_by_window"].values()),
                                                cores(ep)))
        hs = e["http_saturation"]
        line("no-op closure over HTTP", e["http_light"], hs["rps"],
             "best at %d connections; %s; %s" % (hs["connections"], counted(hs), cores(hs)))
    sweeps = [(k, s[k]) for k in ("floor", "e2e") if k in s]
    if sweeps:
        print("\nthroughput (req/s) by pipeline depth (clipper-bench --window):")
        print("  %-22s" % "window" + "".join("%9d" % w for w in WINDOWS))
        for name, sc in sweeps:
            bw = sc["nats_by_window"]
            groups = bw.items() if name == "floor" else [("no-op", bw)]
            for mode, rows in groups:
                label = ("echo " + mode) if name == "floor" else "no-op (product)"
                print("  %-22s" % label + "".join(
                    "%9.0f" % rows[str(w)]["throughput_rps"] if str(w) in rows else "%9s" % "-"
                    for w in WINDOWS))
        print("throughput (req/s) by wrk connections (counted: with the Lua hook that counts "
              "defaults):")
        print("  %-22s" % "connections" + "".join("%9d" % c for c in CONNECTIONS))
        for name, sc in sweeps:
            for kind, rows in sc["http_by_connections"].items():
                print("  %-22s" % ("%s, %s" % ("HTTP floor" if name == "floor" else "no-op",
                                               kind)) + "".join(
                    "%9.0f" % rows[str(c)]["rps"] if str(c) in rows else "%9s" % "-"
                    for c in CONNECTIONS))
    if "e2e" in s:
        e = s["e2e"]
        tf = "  %-58s %9s %8s %8s %8s  %s"
        print("\ntail (latency in us; NATS open loop from the scheduled send, HTTP paced wrk):")
        print(tf % ("", "req/s", "p50", "p99", "p99.9", "notes"))

        def tline(name, o, note=""):
            if o:
                print(tf % (name, "%.0f" % (o.get("send_rate") or o.get("rps") or 0),
                            o.get("p50_us"), o.get("p99_us"), o.get("p999_us", "-"), note))

        for p in ("50", "90"):
            mine = e.get("nats_open_%s_by_client" % p) or {"asap": e.get("nats_open_" + p)}
            for w, o in mine.items():
                tline("no-op over NATS at %s%% of its saturation, %s client" % (p, w), o,
                      "%d defaults, %d lost; send lag up to %d us" % (
                          o["defaults"], o["lost"], o.get("max_send_lag_us", 0)) if o else "")
            tries = e.get("floor_open_%s_by_mode" % p) or {}
            for m, o in tries.items():
                tline("  NATS echo (%s) at the same rate" % m, o,
                      "send lag up to %d us" % o.get("max_send_lag_us", 0))
            o = e.get("floor_own_open_" + p)
            tline("  NATS echo at %s%% of its own saturation" % p, o,
                  "%s echo, %s client; send lag up to %d us" % (
                      o.get("echo_mode"), o.get("client_writes"), o.get("max_send_lag_us", 0))
                  if o else "")
        for p in ("50", "90"):
            o = e.get("http_paced_" + p)
            tline("no-op over HTTP at %s%% of its saturation" % p, o,
                  "%s defaults, %s non-2xx" % (o["defaults"], o["non2xx"]) if o else "")
            tline("  HTTP floor at the same rate", e.get("http_floor_paced_" + p))
            tline("  HTTP floor at %s%% of its own saturation" % p,
                  e.get("http_floor_own_paced_" + p), "wrk without its hook")
    lg = s.get("large")
    if lg:
        print("\nlarge inputs (MB/s of raw input; NATS: best window; HTTP: best connections; "
              "SLO %.0f s):" % (lg["slo_us"] / 1e6))
        lf = "  %-15s %9s %11s %11s %7s %9s %9s %11s %11s %7s  %s"
        print(lf % ("input", "JSON MB", "NATS MB/s", "echo MB/s", "ratio", "p50 ms", "echo ms",
                    "HTTP MB/s", "floor MB/s", "ratio", "bad"))
        for key, row in lg.items():
            if not isinstance(row, dict) or "raw_bytes" not in row:
                continue
            h = row.get("http", {})
            print(lf % (key, "%.2f" % (row["body_bytes"] / 1e6), "%.1f" % row["nats_mbps"],
                        "%.1f" % row["echo_mbps"], "%.2f" % (row["nats_mbps"] /
                                                             max(row["echo_mbps"], 1e-9)),
                        "%.1f" % (row["nats_sequential"]["p50_us"] / 1e3),
                        "%.1f" % (row["echo_sequential"]["p50_us"] / 1e3),
                        "%.1f" % row["http_mbps"] if "http_mbps" in row else "-",
                        "%.1f" % row["http_floor_mbps"] if "http_floor_mbps" in row else "-",
                        "%.2f" % (row["http_mbps"] / max(row["http_floor_mbps"], 1e-9))
                        if "http_mbps" in row else "-",
                        "NATS %d, HTTP %s%s" % (row["nats_bad"], row.get("http_bad", "-"),
                                                "; HTTP: status %s, %s" % (h.get("status"),
                                                                           h["skipped"])
                                                if h.get("skipped") else "")))
    p = s.get("peers")
    if isinstance(p, dict) and p.get("skipped"):
        print("\npeers: %s" % p["skipped"])
    elif p:
        print("\npeers:")
        try:
            import bench_peers
            bench_peers.print_summary(p)
        except Exception as e:  # its format is its own: the JSON has it all
            print("  (no summary: %r)" % e)
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
    sp = res.get("spread") or {}
    many = sp.get("runs", 1) > 1
    print("\nratios (product / reference%s):" % (
        "; median [min-max] over %d runs" % sp["runs"] if many else ", this run"))
    for name, v in res.get("ratios", {}).items():
        x = sp.get("ratios", {}).get(name)
        print("  %-48s %8.3f%s" % (name, v, "  [%.3f-%.3f]" % (x["min"], x["max"])
                                    if many and x else ""))
    print("\ntargets%s:" % (" (met on the median)" if many else ""))
    for name, t in res["targets"].items():
        print("  %-36s %-10s target %-8s %s%s" % (
            name, t["value"], t["target"], "met" if t["met"] else "MISSED",
            "  [%s-%s]" % (t["min"], t["max"]) if "min" in t else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path of the clipper-bench program")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="path of wrk")
    ap.add_argument("--ray-python", help="python of a venv with ray[serve] (Ray is skipped without)")
    ap.add_argument("--plot-python", help="python with matplotlib for the plots (default: --ray-python)")
    ap.add_argument("--out", default="bench-results", help="directory for results and plots")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test, not figures)")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat the measuring scenarios (%s) this many times; ratios and "
                         "targets get their median and range" % ", ".join(MEASURING))
    ap.add_argument("--repeat", default=",".join(MEASURING),
                    help="which of the measuring scenarios --runs repeats (the others run "
                         "once, in the first run); default: all of them")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated subset of: " + ", ".join(SCENARIOS))
    args = ap.parse_args()
    args.scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    bad = [x for x in args.scenarios if x not in SCENARIOS]
    if bad:
        ap.error("unknown scenario %s (choose from %s)" % (", ".join(bad), ", ".join(SCENARIOS)))
    args.repeat = [x.strip() for x in args.repeat.split(",") if x.strip()]
    bad = [x for x in args.repeat if x not in MEASURING]
    if bad:
        ap.error("--repeat: %s is not one of %s" % (", ".join(bad), ", ".join(MEASURING)))
    if args.runs < 1:
        ap.error("--runs must be at least 1")
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
