#!/usr/bin/env python3
"""The peer servers of the benchmark: the product's HTTP path against the
serving systems a user would pick instead, measured in one run, on one
machine, by the same client (wrk with tests/bench/wrk_post.lua).

Peers (servers in tests/bench/peers/, each in a venv of its own made by
tests/bench/peers/setup.sh; a peer whose venv is missing is recorded as
{"skipped": reason}):

  pytriton       NVIDIA PyTriton: Python callables (@batch) behind Triton's
                 C++ HTTP server and dynamic batcher (peers/pytriton_app.py);
  triton_python  Triton without PyTriton: the tritonserver binary of the same
                 wheel with plain Python-backend models (peers/
                 triton_python_app.py). The wheel ships no backend but
                 python (no identity or other C++ backend), so this, not a
                 Python-free Triton, is the Triton anchor: Triton's own
                 overhead plus its Python-backend stub;
  litserve       Lightning's LitServe: FastAPI/uvicorn front, inference
                 worker processes, its own batching (peers/litserve_app.py);
  mlserver       Seldon's MLServer: custom runtimes, parallel workers,
                 adaptive batching (peers/mlserver_app.py).

Each serves the suite's two models: a no-op (one output per input) and the
batching model (5 ms + 0.05 ms per input per call, one call at a time).
Each peer runs with the settings found best on this 2-core machine (PEERS
below: the settings, what else was tried, and why; `--tune PEER` reruns
the comparison). The product is the suite's own cluster: apps "noop" and
"batch-adaptive" (20 ms SLO, adaptive batching), one replica each.

Request bodies (the same payload everywhere: two doubles):
  * the product and LitServe: the suite's body, {"input":[1.0,2.0]};
  * Triton (both) and MLServer: KServe v2 JSON on POST
    /v2/models/<noop|batch>/infer, one FP64 tensor INPUT of shape [1,2]
    (batch dimension first, as Triton's dynamic batcher and MLServer's
    adaptive batching want it):
    {"inputs":[{"name":"INPUT","shape":[1,2],"datatype":"FP64","data":[1.0,2.0]}]}.

Figures, for the product and every peer (results under "peers"):
  * noop_light: wrk -c1 -t1, p50/p90/p99/p99.9 (us);
  * noop_saturation: wrk at 16, 64 and 256 connections, every run kept;
    noop_best_rps and its connection count;
  * batch_light: the batching model at one connection;
  * batch_goodput: the batching model at 4, 8, ... 256 connections (until
    fewer than half the answers are good ones and goodput falls); goodput =
    predictions within 20 ms per second, best over the sweep. wrk has no
    per-request timing in Lua, so the share of answers within 20 ms comes
    from its latency histogram (wrk_post.lua, done()); defaults (the
    product's "default":true, its answer when it misses the SLO) and
    non-2xx answers are then taken off that count as if they had all been
    fast: goodput_rps, a lower bound for the product, exact for a peer that
    answers everything 2xx (each run also has goodput_upper_rps, as if they
    had all been slow; the two differ only where there are defaults);
  * memory_mb: resident memory of the whole process tree (sum of VmRSS, and
    of Pss, which counts pages shared between forked workers once) once
    loaded and after the load. For the product: every process of the
    cluster except replicas of the suite's other apps;
  * start_s: launch to the first answer from each model (the slower of the
    two). For the product: a second, fresh cluster (start_clipper, then
    create_endpoint of both apps) to the first prediction of each.
  * ratios[peer]: every figure as product / peer.

Large inputs (results under ["peers"]["large"], PyTriton only; the product
with the same sizes is measured elsewhere): one query carries a single
input row of 100 KiB (102 400 bytes), 1 MiB (1 048 576) or 8 MiB
(8 388 608) of raw tensor data, to models large_fp64 and large_u8 that
answer one 1.0 (pytriton_app.py --models large). Bodies, read by wrk from a
file (wrk_post.lua, $WRK_BODY_FILE):
  * fp64_binary / u8_binary: Triton's binary tensor extension, Content-Type
    application/octet-stream, header Inference-Header-Content-Length: <n>,
    body = n bytes of JSON header
    {"inputs":[{"name":"INPUT","shape":[1,N],"datatype":"FP64"|"UINT8",
      "parameters":{"binary_data_size":B}}],
     "outputs":[{"name":"OUTPUT","parameters":{"binary_data":false}}]}
    then the B raw bytes (little-endian doubles i/N, or bytes i % 251);
  * fp64_json: the same doubles as KServe v2 JSON text ("data":[...], each
    with Python's repr), the format the product's own JSON API compares to.
  Each at 2, 8 and 32 connections; mb_per_s = raw tensor bytes x answers
  per second / 10^6 (B x rps, whatever the body's size), best of the sweep;
  memory_mb_after_load: PyTriton's process tree after them all.

Usage: bench_suite.py's "peers" scenario calls run(suite). Standalone:

    python3 tests/bench/bench_peers.py --smoke      # start each, one answer, stop
    python3 tests/bench/bench_peers.py --tune pytriton [--seconds 3]

Venv pythons: $CLIPPER_BENCH_PYTRITON_PYTHON, $CLIPPER_BENCH_LITSERVE_PYTHON,
$CLIPPER_BENCH_MLSERVER_PYTHON, by default build/peers-venv-<name>/bin/python
under the repository root.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEER_DIR = os.path.join(HERE, "peers")
LUA = os.path.join(HERE, "wrk_post.lua")
SLO_US = 20000
PRODUCT_BODY = '{"input":[1.0,2.0]}'  # bench_suite.BODY; run() takes it from there

# Connection counts of the sweeps.
NOOP_CONNS = (16, 64, 256)
BATCH_CONNS = (4, 8, 16, 32, 64, 128, 256)
LARGE_SIZES = (("100KiB", 100 * 1024), ("1MiB", 1024 * 1024), ("8MiB", 8 * 1024 * 1024))
LARGE_CONNS = (2, 8, 32)

# Every peer: its server, its venv, the settings it runs with and why, and
# what else was tried (--tune runs them all through the same sweeps). The
# settings were compared with `--tune` on the 2-core development machine
# while other work ran on it; differences under ~20% were within its noise.
PEERS = {
    "pytriton": {
        "what": "NVIDIA PyTriton (Triton's C++ HTTP server and dynamic batcher, Python "
                "callables in the user's process over ZeroMQ/shared memory)",
        "script": "pytriton_app.py", "venv": "pytriton", "api": "v2",
        "settings": {"noop-max-batch": 256, "noop-delay-us": 0, "noop-instances": 1,
                     "batch-max-batch": 256, "batch-delay-us": 2000, "batch-instances": 1},
        "why": "two --tune rounds (3-4 s runs): no-op about 2.9-3.2k/s at 64-256 "
               "connections whatever the batch cap (64 or 256), a 200 us queue delay or a "
               "second instance (which competes for the 2 cores) changed it; the cap kept "
               "at 256 so that a batch takes all that queued during a call. Batching "
               "model: a 2 ms queue delay gave the best goodput within 20 ms (0 and "
               "0.5 ms made smaller batches, each paying PyTriton's per-call hops; 5 ms "
               "ate the SLO). One instance of the batching model: one batch at a time, "
               "as the product's replica",
        "tried": [{"noop-max-batch": 64}, {"noop-delay-us": 200}, {"noop-instances": 2},
                  {"batch-delay-us": 0}, {"batch-delay-us": 500}, {"batch-delay-us": 5000}],
        "package": "nvidia-pytriton",
    },
    "triton_python": {
        "what": "Triton's tritonserver from the nvidia-pytriton wheel with plain Python-"
                "backend models, no PyTriton proxy (the wheel has no C++ backend)",
        "script": "triton_python_app.py", "venv": "pytriton", "api": "v2",
        "settings": {"noop-max-batch": 256, "noop-delay-us": 0, "noop-instances": 2,
                     "batch-max-batch": 256, "batch-delay-us": 2000, "batch-instances": 1},
        "why": "two --tune rounds: two no-op instances (stub processes) were the best no-op "
               "throughput both times (about 17-19k/s against 14-15k/s with one); a batch "
               "cap of 256 at least as good as 64; a 200 us queue delay no better. "
               "Batching model as for pytriton: 2 ms queue delay, one instance",
        "tried": [{"noop-instances": 1}, {"noop-max-batch": 64}, {"noop-delay-us": 200},
                  {"batch-delay-us": 500}, {"batch-delay-us": 5000}],
        "package": "nvidia-pytriton",
    },
    "litserve": {
        "what": "Lightning LitServe (uvicorn/FastAPI API server, inference worker "
                "processes, its own batching)",
        "script": "litserve_app.py", "venv": "litserve", "api": "json",
        "settings": {"workers": 1, "api-servers": 2, "fast-queue": True,
                     "max-batch-size": 64, "batch-timeout-ms": 2.0},
        "why": "two --tune rounds: two API-server processes doubled the no-op throughput "
               "(about 1.0-1.4k/s against 0.7k/s with one: the HTTP/JSON side is what "
               "saturates); ZeroMQ (fast_queue) at least as good as multiprocessing queues; "
               "a second inference worker per API only added processes; batching 64 / 2 ms "
               "no worse than 16 or 5 ms (goodput within 20 ms about 0.3-0.45k/s at 4-16 "
               "connections in every variant)",
        "tried": [{"api-servers": 1}, {"fast-queue": False}, {"workers": 2},
                  {"batch-timeout-ms": 5.0}, {"max-batch-size": 16}],
        "package": "litserve",
        # Its main process ignores a SIGTERM of its own for over 15 s; one
        # to the whole group stops it at once.
        "term_group": True,
    },
    "mlserver": {
        "what": "Seldon MLServer (FastAPI/uvicorn, custom runtimes, parallel inference "
                "workers, adaptive batching)",
        "script": "mlserver_app.py", "venv": "mlserver", "api": "v2",
        "settings": {"parallel-workers": 0, "noop-max-batch": 0, "batch-max-batch": 128,
                     "batch-batch-ms": 2.0},
        "why": "two --tune rounds: parallel_workers 0 (models in the HTTP server's process) "
               "gave 2.7-3.5k/s on the no-op against 0.5-0.9k/s with MLServer's default of "
               "1 worker process or 2 (each request crosses a process boundary there); "
               "adaptive batching of the no-op no better; for the batching model 128 / 2 ms "
               "(1 and 5 ms were not better beyond the noise of this shared machine)",
        "tried": [{"parallel-workers": 1}, {"parallel-workers": 2},
                  {"noop-max-batch": 32, "noop-batch-ms": 1.0},
                  {"batch-batch-ms": 1.0}, {"batch-batch-ms": 5.0}],
        "package": "mlserver",
    },
}


def log(msg):
    print("[peers %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def venv_python(venv):
    var = "CLIPPER_BENCH_%s_PYTHON" % venv.upper()
    return os.environ.get(var) or os.path.join(ROOT, "build", "peers-venv-" + venv, "bin",
                                               "python"), var


def v2_body(values):
    return json.dumps({"inputs": [{"name": "INPUT", "shape": [1, len(values)],
                                   "datatype": "FP64", "data": values}]},
                      separators=(",", ":"))


# ---- processes ------------------------------------------------------------------------

def tree(root):
    """root and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def proc_kb(pid, path, field):
    try:
        with open("/proc/%d/%s" % (pid, path)) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def memory_mb(pids):
    """Resident MB of these processes: the sum of VmRSS (pages shared by
    forked workers counted in each) and of Pss (shared pages split)."""
    rss = pss = 0
    n = 0
    for pid in pids:
        r = proc_kb(pid, "status", "VmRSS")
        if r is None:
            continue
        n += 1
        rss += r
        pss += proc_kb(pid, "smaps_rollup", "Pss") or 0
    return {"rss": round(rss / 1024.0, 1), "pss": round(pss / 1024.0, 1), "processes": n}


# ---- the client ------------------------------------------------------------------------

def wrk(wrk_path, url, connections, seconds, body=None, body_file=None,
        content_type="application/json", headers=(), slo_us=SLO_US, threads=None):
    """wrk with wrk_post.lua; returns its WRKJSON summary plus the run's
    settings and the client's CPU time."""
    threads = threads or min(2, connections)
    env = dict(os.environ, WRK_BODY=body or "", WRK_BODY_FILE=body_file or "",
               WRK_CONTENT_TYPE=content_type, WRK_HEADERS="\n".join(headers),
               WRK_SLO_US=str(slo_us))
    cmd = [wrk_path, "-t%d" % threads, "-c%d" % connections, "-d%ds" % int(seconds),
           "--timeout", "5s", "-s", LUA, url]
    c0, t0 = children_cpu(), time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    wall, cpu = time.monotonic() - t0, children_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError("wrk failed: %s" % proc.stderr[-800:])
    m = re.search(r"^WRKJSON (.*)$", proc.stdout, re.M)
    if not m:
        raise RuntimeError("wrk printed no summary: %s %s" % (proc.stdout[-800:],
                                                             proc.stderr[-800:]))
    r = json.loads(m.group(1))
    # Answers within the SLO that were predictions: defaults and non-2xx
    # answers taken off as if they had all been fast (wrk's requests are
    # completed answers; a read error or timeout is in none of them).
    good = r["share_within_slo"] * r["requests"] - r["defaults"] - r["non2xx"]
    r["goodput_rps"] = round(max(0.0, good) / (r["duration_us"] / 1e6), 1)
    r["good_share"] = round(max(0.0, good) / max(r["requests"], 1), 4)
    # And as if they had all been slow: the bound the other way.
    upper = min(r["share_within_slo"] * r["requests"], r["requests"] - r["defaults"] - r["non2xx"])
    r["goodput_upper_rps"] = round(max(0.0, upper) / (r["duration_us"] / 1e6), 1)
    r.update(url=url, connections=connections, threads=threads, client_cpu_s=round(cpu, 2),
             client_wall_s=round(wall, 2))
    return r


class Target:
    """Where and what to send for the no-op and the batching model."""

    def __init__(self, noop_url, batch_url, body, content_type="application/json"):
        self.noop_url, self.batch_url = noop_url, batch_url
        self.body, self.content_type = body, content_type


def measure(wrk_path, t, dur):
    """Every HTTP figure of one target (the product or a peer): dur(full,
    quick) picks the seconds of each run."""
    out = {}

    def run(url, conns, secs, threads=None):
        return wrk(wrk_path, url, conns, secs, body=t.body, content_type=t.content_type,
                   threads=threads)

    out["noop_light"] = run(t.noop_url, 1, dur(10, 3), threads=1)
    sat = {}
    for c in NOOP_CONNS:
        sat[str(c)] = run(t.noop_url, c, dur(5, 2))
    best = max(sat.values(), key=lambda r: r["rps"])
    out["noop_saturation"] = sat
    out["noop_best_rps"] = best["rps"]
    out["noop_best_connections"] = best["connections"]
    out["batch_light"] = run(t.batch_url, 1, dur(5, 2), threads=1)
    steps = {}
    for c in BATCH_CONNS:
        r = run(t.batch_url, c, dur(5, 2))
        steps[str(c)] = r
        log("  batching model at %d connections: %.0f/s, %.1f%% good within 20 ms, goodput "
            "%.0f/s" % (c, r["rps"], 100 * r["good_share"], r["goodput_rps"]))
        # Past the knee: most answers late (or defaults) and goodput falling.
        if r["good_share"] < 0.5 and r["goodput_rps"] < max(
                x["goodput_rps"] for x in steps.values()):
            break
    bestg = max(steps.values(), key=lambda r: r["goodput_rps"])
    out["batch_goodput"] = {"slo_us": SLO_US, "steps": steps,
                            "goodput_rps": bestg["goodput_rps"],
                            "connections": bestg["connections"],
                            "goodput_upper_rps": max(x["goodput_upper_rps"]
                                                     for x in steps.values())}
    return out


# ---- peers ---------------------------------------------------------------------------

def settings_args(settings):
    args = []
    for k, v in settings.items():
        if v is True:
            args.append("--" + k)
        elif v is not False:
            args += ["--" + k, str(v)]
    return args


class Peer:
    """One running peer server, in a process group of its own. Never
    stopped by SIGINT: PyTriton and LitServe ignore it for tens of seconds
    once loaded; see stop()."""

    def __init__(self, name, settings=None, extra=()):
        spec = PEERS[name]
        self.name, self.spec = name, spec
        self.python, self.var = venv_python(spec["venv"])
        self.settings = dict(spec["settings"], **(settings or {}))
        self.extra = list(extra)
        self.proc = None
        self.port = None

    def missing(self):
        if not os.path.exists(self.python):
            return ("no venv python at %s (set %s, or run tests/bench/peers/setup.sh)"
                    % (self.python, self.var))
        return None

    def target(self, body):
        base = "http://127.0.0.1:%d" % self.port
        if self.spec["api"] == "v2":
            vals = json.loads(body)["input"]
            return Target(base + "/v2/models/noop/infer", base + "/v2/models/batch/infer",
                          v2_body(vals))
        return Target(base + "/noop", base + "/batch", body)

    def version(self):
        try:
            out = subprocess.run([self.python, "-c", "import importlib.metadata as m; "
                                  "print(m.version(%r))" % self.spec["package"]],
                                 capture_output=True, text=True, timeout=60)
            return out.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            return None

    def start(self, body, timeout=120):
        """Launches the server; returns {model: seconds from launch to its
        first good answer}."""
        self.port = free_port()
        self.errlog = tempfile.TemporaryFile(mode="w+")
        cmd = ([self.python, os.path.join(PEER_DIR, self.spec["script"]), "--port",
                str(self.port)] + settings_args(self.settings) + self.extra)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.errlog,
                                     cwd=tempfile.gettempdir(), start_new_session=True)
        if "--models" in self.extra:
            return {}
        t = self.target(body)
        pending = {"noop": t.noop_url, "batch": t.batch_url}
        first = {}
        while pending:
            for model, url in list(pending.items()):
                if answer_ok(url, t.body, t.content_type, self.spec["api"]):
                    first[model] = round(time.monotonic() - t0, 3)
                    del pending[model]
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d: %s" % (self.name, self.proc.returncode,
                                                              self.stderr_tail()))
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("%s: no answer within %d s: %s" % (self.name, timeout,
                                                                       self.stderr_tail()))
            time.sleep(0.02)
        return first

    def wait_ready(self, urls_bodies, timeout=120):
        t0 = time.monotonic()
        for url, body, ctype, headers in urls_bodies:
            while not answer_ok(url, body, ctype, self.spec["api"], headers):
                if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                    raise RuntimeError("%s: %s never answered: %s" % (self.name, url,
                                                                       self.stderr_tail()))
                time.sleep(0.1)

    def stderr_tail(self):
        try:
            self.errlog.seek(0)
            return self.errlog.read()[-1500:]
        except (OSError, ValueError):
            return ""

    def pids(self):
        return tree(self.proc.pid) if self.proc else []

    def stop(self):
        """SIGTERM to the server script first (each stops its server cleanly:
        PyTriton removes its workspace and shared memory only then), then
        SIGTERM to the group (at once for LitServe), then SIGKILL of
        whatever is left."""
        if not self.proc:
            return
        pids = self.pids()
        steps = ((None, 15), (signal.SIGTERM, 5))
        for sig, wait in steps[1:] if self.spec.get("term_group") else steps:
            try:
                if sig is None:
                    self.proc.send_signal(signal.SIGTERM)
                else:
                    os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(alive(p) for p in pids):
                time.sleep(0.1)
        for pid in pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


def alive(pid):
    """True if pid runs (a zombie, dead but not reaped, does not count)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def answer_ok(url, body, content_type, api, headers=()):
    """True if one POST gets a 200 with the model's answer."""
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": content_type}
    for line in headers:
        k, v = line.split(":", 1)
        h[k.strip()] = v.strip()
    try:
        req = urllib.request.Request(url, data=body, headers=h)
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status != 200:
                return False
            out = json.loads(r.read().decode())
    except (OSError, ValueError):
        return False
    if api == "v2":
        return out.get("outputs", [{}])[0].get("data") == [1.0]
    if api == "product":
        return out.get("default") is False
    return out.get("output") == 1.0


# ---- large inputs (PyTriton) ----------------------------------------------------------------

def large_body(kind, nbytes):
    """(body bytes, content type, extra headers, raw tensor bytes, model)."""
    if kind == "u8_binary":
        raw = bytes(i % 251 for i in range(nbytes))
        dtype, n, model = "UINT8", nbytes, "large_u8"
    else:
        n = nbytes // 8
        vals = [i / n for i in range(n)]
        dtype, model = "FP64", "large_fp64"
        if kind == "fp64_json":
            return (v2_body(vals).encode(), "application/json", (), n * 8, model)
        raw = struct.pack("<%dd" % n, *vals)
    head = json.dumps({"inputs": [{"name": "INPUT", "shape": [1, n], "datatype": dtype,
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "OUTPUT", "parameters": {"binary_data": False}}]},
                      separators=(",", ":")).encode()
    return (head + raw, "application/octet-stream",
            ("Inference-Header-Content-Length: %d" % len(head),), len(raw), model)


def large(wrk_path, dur, tmp):
    """PyTriton with large single inputs: MB/s of raw tensor bytes at a few
    connection counts, per size and body format."""
    peer = Peer("pytriton", extra=["--models", "large"])
    why = peer.missing()
    if why:
        return {"skipped": why}
    out = {"model_settings": dict(peer.settings), "sizes_bytes": dict(LARGE_SIZES)}
    bodies = {}
    for kind in ("fp64_binary", "u8_binary", "fp64_json"):
        for label, nbytes in LARGE_SIZES:
            path = os.path.join(tmp, "%s-%s.body" % (kind, label))
            body, ctype, headers, raw, model = large_body(kind, nbytes)
            with open(path, "wb") as f:
                f.write(body)
            bodies[(kind, label)] = (path, ctype, headers, raw, model, len(body))
    peer.start(PRODUCT_BODY)
    try:
        base = "http://127.0.0.1:%d/v2/models/" % peer.port
        u8 = json.dumps({"inputs": [{"name": "INPUT", "shape": [1, 2], "datatype": "UINT8",
                                     "data": [1, 2]}]})
        peer.wait_ready([(base + "large_fp64/infer", v2_body([1.0, 2.0]), "application/json", ()),
                         (base + "large_u8/infer", u8, "application/json", ())])
        for (kind, label), (path, ctype, headers, raw, model, blen) in bodies.items():
            url = base + model + "/infer"
            with open(path, "rb") as f:
                if not answer_ok(url, f.read(), ctype, "v2", headers):
                    raise RuntimeError("pytriton rejected the %s %s body: %s" % (
                        kind, label, peer.stderr_tail()))
            runs = {}
            for c in LARGE_CONNS:
                r = wrk(wrk_path, url, c, dur(5, 2), body_file=path, content_type=ctype,
                        headers=headers, slo_us=0)
                r["mb_per_s"] = round(raw * r["rps"] / 1e6, 1)
                runs[str(c)] = r
            best = max(runs.values(), key=lambda r: r["mb_per_s"])
            out.setdefault(kind, {})[label] = {
                "raw_bytes": raw, "body_bytes": blen, "runs": runs, "mb_per_s": best["mb_per_s"],
                "rps": best["rps"], "connections": best["connections"]}
            log("  pytriton %s %s: %.0f MB/s (%.0f/s at %d connections)" % (
                kind, label, best["mb_per_s"], best["rps"], best["connections"]))
        out["memory_mb_after_load"] = memory_mb(peer.pids())
    finally:
        peer.stop()
    return out


# ---- the product ------------------------------------------------------------------------

def product_pids(suite):
    """The suite cluster's processes, less the replicas of apps no peer serves."""
    from bench_suite import processes
    keep = []
    for pid, role in processes(suite.cm).items():
        if role.startswith("replica ") and role.split()[1].split(":")[0] not in (
                "noop", "batch-adaptive"):
            continue
        keep.append(pid)
    return keep


def product_start():
    """A fresh cluster: launch (start_clipper) to the first prediction of the
    no-op and of the batching model, both deployed as the suite deploys them."""
    from clipper_admin import ClipperConnection, LocalContainerManager
    from clipper_admin.deployers import python as python_deployer
    from bench_suite import batching_model, first_prediction, noop
    port = free_port()
    cm = LocalContainerManager(cluster_name="bench-peers-%d" % os.getpid(),
                               clipper_query_port=port, clipper_management_port=free_port(),
                               prometheus_port=free_port(), insecure=True)
    conn = ClipperConnection(cm)
    first = {}
    t0 = time.monotonic()
    try:
        conn.start_clipper(cache_size=0)
        python_deployer.create_endpoint(conn, "noop", "doubles", noop, slo_micros=100000)
        python_deployer.create_endpoint(conn, "batch-adaptive", "doubles", batching_model,
                                        slo_micros=SLO_US, batch_size=-1)
        for app, key in (("noop", "noop"), ("batch-adaptive", "batch")):
            first_prediction("http://127.0.0.1:%d/%s/predict" % (port, app), 60)
            first[key] = round(time.monotonic() - t0, 3)
    finally:
        conn.stop_all()
    return first


# ---- the scenario ----------------------------------------------------------------------

RATIO_KEYS = (("noop_p50_us", ("noop_light", "p50_us")), ("noop_p99_us", ("noop_light", "p99_us")),
              ("noop_p999_us", ("noop_light", "p999_us")), ("noop_best_rps", ("noop_best_rps",)),
              ("batch_p50_us", ("batch_light", "p50_us")),
              ("batch_goodput_rps", ("batch_goodput", "goodput_rps")),
              ("memory_rss_loaded", ("memory_mb", "loaded", "rss")),
              ("memory_rss_after_load", ("memory_mb", "after_load", "rss")),
              ("memory_pss_loaded", ("memory_mb", "loaded", "pss")),
              ("memory_pss_after_load", ("memory_mb", "after_load", "pss")),
              ("start_s", ("start_s",)))


def dig(d, path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def ratios(product, peer):
    out = {}
    keys = RATIO_KEYS + tuple(("noop_rps_%d" % c, ("noop_saturation", str(c), "rps"))
                              for c in NOOP_CONNS)
    for name, path in keys:
        a, b = dig(product, path), dig(peer, path)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            out[name] = round(a / b, 3)
    return out


def run_peer(name, wrk_path, dur, body):
    peer = Peer(name)
    why = peer.missing()
    if why:
        log("%s skipped: %s" % (name, why))
        return {"skipped": why}
    out = {"what": peer.spec["what"], "version": peer.version(), "settings": peer.settings,
           "why_these_settings": peer.spec["why"],
           "tried": [json.dumps(t, sort_keys=True) for t in peer.spec["tried"]]}
    log("%s: starting" % name)
    try:
        first = peer.start(body)
        out["start_s"] = max(first.values())
        out["first_answer_s"] = first
        time.sleep(1.0)
        out["memory_mb"] = {"loaded": memory_mb(peer.pids())}
        t = peer.target(body)
        out["body"] = t.body
        out.update(measure(wrk_path, t, dur))
        out["memory_mb"]["after_load"] = memory_mb(peer.pids())
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log("%s failed: %s" % (name, e))
        out["failed"] = str(e)[-2000:]
    finally:
        peer.stop()
    return out


def run(suite):
    """The "peers" scenario of bench_suite.py: the product (the suite's
    cluster) and every peer, the same figures, the same client."""
    global PRODUCT_BODY
    from bench_suite import BODY
    PRODUCT_BODY = BODY
    wrk_path, dur = suite.args.wrk, suite.dur
    res = {"slo_us": SLO_US, "noop_connections": list(NOOP_CONNS),
           "batch_connections": list(BATCH_CONNS)}
    log("peers: the product")
    product = {"body": BODY, "memory_mb": {"loaded": memory_mb(product_pids(suite))}}
    product.update(measure(wrk_path, Target(suite.http("noop"), suite.http("batch-adaptive"),
                                            BODY), dur))
    product["memory_mb"]["after_load"] = memory_mb(product_pids(suite))
    try:
        first = product_start()
        product["start_s"] = max(first.values())
        product["first_answer_s"] = first
    except Exception as e:  # the other figures stand without it
        log("product start time failed: %s" % e)
        product["start_failed"] = str(e)
    res["product"] = product
    res["ratios"] = {}
    for name in PEERS:
        res[name] = run_peer(name, wrk_path, dur, BODY)
        if "noop_light" in res[name]:
            res["ratios"][name] = ratios(product, res[name])
    log("peers: large inputs to PyTriton")
    tmp = tempfile.mkdtemp(prefix="bench-peers-")
    try:
        res["large"] = large(wrk_path, dur, tmp)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log("large inputs failed: %s" % e)
        res["large"] = {"failed": str(e)[-2000:]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def print_summary(res):
    """The scenario's figures as a table on stdout (for bench_suite's
    print_table)."""
    fmt = "%-14s %8s %8s %8s %9s %5s %8s %9s %5s %13s %13s %7s"
    print("the same wrk client for all; goodput = predictions within %d ms per second; "
          "memory = whole process tree" % (res.get("slo_us", SLO_US) // 1000))
    print(fmt % ("", "noop p50", "p99", "p99.9", "noop /s", "conn", "batch p50", "goodput/s",
                 "conn", "RSS MB ld/aft", "PSS MB ld/aft", "start s"))
    for name in ["product"] + list(PEERS):
        r = res.get(name)
        if not r:
            continue
        if "noop_light" not in r:
            print("%-14s %s" % (name, r.get("skipped") or ("failed: " + r.get("failed", "?")
                                                          [-200:])))
            continue
        m = r.get("memory_mb", {})

        def mem(kind):
            return "%.0f/%.0f" % (m.get("loaded", {}).get(kind, 0),
                                  m.get("after_load", {}).get(kind, 0))

        print(fmt % (name, r["noop_light"]["p50_us"], r["noop_light"]["p99_us"],
                     r["noop_light"]["p999_us"], "%.0f" % r["noop_best_rps"],
                     r["noop_best_connections"], r["batch_light"]["p50_us"],
                     "%.0f" % r["batch_goodput"]["goodput_rps"],
                     r["batch_goodput"]["connections"], mem("rss"), mem("pss"),
                     r.get("start_s", "-")))
    g = res.get("product", {}).get("batch_goodput")
    if g:
        print("  (product goodput counts its default answers as fast; counted as slow: "
              "%.0f/s)" % g["goodput_upper_rps"])
    for name, rat in res.get("ratios", {}).items():
        print("  product / %-13s %s" % (name, ", ".join("%s %.3g" % kv for kv in rat.items())))
    lg = res.get("large", {})
    if "skipped" in lg or "failed" in lg:
        print("large inputs to PyTriton: %s" % (lg.get("skipped") or lg.get("failed")[-300:]))
    for kind in ("fp64_binary", "u8_binary", "fp64_json"):
        for label, r in lg.get(kind, {}).items():
            print("  PyTriton %-11s %-6s %8.1f MB/s of tensor data (%.0f/s at %d connections; "
                  "body %d bytes)" % (kind, label, r["mb_per_s"], r["rps"], r["connections"],
                                      r["body_bytes"]))


# ---- standalone -----------------------------------------------------------------------

def smoke():
    """Starts each peer, checks one answer from each model, stops it."""
    bad = 0
    for name in PEERS:
        peer = Peer(name)
        why = peer.missing()
        if why:
            print("SKIP %-14s %s" % (name, why))
            continue
        try:
            first = peer.start(PRODUCT_BODY, timeout=90)
            t = peer.target(PRODUCT_BODY)
            ok = all(answer_ok(u, t.body, t.content_type, peer.spec["api"])
                     for u in (t.noop_url, t.batch_url))
            mem = memory_mb(peer.pids())
            print("%s %-14s noop and batch answered; first answers %s s; %.0f MB RSS "
                  "(%.0f MB PSS) in %d processes" % ("OK  " if ok else "FAIL", name, first,
                                                     mem["rss"], mem["pss"], mem["processes"]))
            bad += not ok
        except Exception as e:
            print("FAIL %-14s %s" % (name, e))
            bad += 1
        finally:
            peer.stop()
    # The large-input models of PyTriton, one 1 MiB binary query.
    peer = Peer("pytriton", extra=["--models", "large"])
    if not peer.missing():
        try:
            peer.start(PRODUCT_BODY)
            body, ctype, headers, raw, model = large_body("fp64_binary", 1024 * 1024)
            url = "http://127.0.0.1:%d/v2/models/%s/infer" % (peer.port, model)
            deadline = time.monotonic() + 90
            ok = False
            while not ok and time.monotonic() < deadline and peer.proc.poll() is None:
                ok = answer_ok(url, body, ctype, "v2", headers)
                time.sleep(0.2)
            print("%s %-14s large_fp64 answered a 1 MiB binary-tensor query" % (
                "OK  " if ok else "FAIL", "pytriton-large"))
            bad += not ok
        finally:
            peer.stop()
    return 1 if bad else 0


def tune(name, seconds):
    """Runs the peer's settings and each alternative it records through the
    no-op saturation and batching goodput sweeps; prints one line each."""
    wrk_path = shutil.which("wrk") or "wrk"

    def dur(full, quick):
        return seconds

    for alt in [{}] + PEERS[name]["tried"]:
        peer = Peer(name, settings=alt)
        if peer.missing():
            print(peer.missing())
            return 1
        try:
            peer.start(PRODUCT_BODY)
            t = peer.target(PRODUCT_BODY)
            noop = {c: wrk(wrk_path, t.noop_url, c, seconds, body=t.body)["rps"]
                    for c in NOOP_CONNS}
            good = {}
            for c in BATCH_CONNS:
                good[c] = wrk(wrk_path, t.batch_url, c, seconds, body=t.body)["goodput_rps"]
            print("%-60s noop rps %s | batch goodput %s" % (
                json.dumps(alt) if alt else "chosen " + json.dumps(peer.settings),
                " ".join("%d:%.0f" % kv for kv in noop.items()),
                " ".join("%d:%.0f" % kv for kv in good.items())), flush=True)
        except Exception as e:
            print("%-60s failed: %s" % (json.dumps(alt), e), flush=True)
        finally:
            peer.stop()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="start each peer, one answer, stop")
    ap.add_argument("--tune", choices=sorted(PEERS), help="compare a peer's settings")
    ap.add_argument("--seconds", type=int, default=3, help="seconds per wrk run of --tune")
    args = ap.parse_args()
    if args.smoke:
        return smoke()
    if args.tune:
        return tune(args.tune, args.seconds)
    ap.error("give --smoke or --tune (the measurements run inside bench_suite.py)")


if __name__ == "__main__":
    sys.exit(main())
