#!/usr/bin/env python3
"""Ray Serve baseline for the benchmarks: a no-op and a batching model.

Starts a private, lean Ray node (2 CPUs, no dashboard, logs in a temp dir)
and Ray Serve with its HTTP proxy on 127.0.0.1:<port>, and serves two
applications, each taking POST {"input": [doubles]} and answering
{"query_id": 0, "output": 1.0, "default": false}:

  /noop   no-op model, one replica;
  /batch  @serve.batch model, one replica; each batch costs
          5 ms + 0.05 ms per input (asyncio.sleep, as Ray recommends an
          async batch handler), one batch at a time.

Prints "READY <port>" once both answer a real HTTP request, then blocks until
SIGTERM/SIGINT, shuts Serve and Ray down and exits 0, leaving no Ray process.
A failure to start is reported on stderr with a non-zero exit within 120 s.

Run with the Ray venv's python, e.g.:

    /tmp/rayvenv/bin/python tests/bench/ray_serve_app.py --port 8123

Options that make Ray fastest here (measured with wrk on a 2-core machine):
  - max_ongoing_requests high: noop 256, batch 2 * max(batch size, 64), so
    64 connections are never held back by the proxy's router (with Ray's
    default of 5, /noop at 64 connections collapses to ~10 req/s with
    timeouts; batches also need room to fill);
  - access logs off and log level WARNING (no per-request log line);
  - RAY_SERVE_THROUGHPUT_OPTIMIZED=1, Ray's documented high-throughput mode
    (user code and router on the replica's main loop, gRPC proxy->replica,
    buffered logs, GC frozen): about +30% req/s at 64 connections here. It
    runs with RAY_SERVE_ENABLE_DIRECT_INGRESS=0 so Serve's own HTTP proxy
    keeps the single port (direct ingress gives each replica its own port,
    normally fronted by HAProxy, which is not installed). --plain drops
    these environment tweaks.
Left at Ray's defaults (no gain measured): token auth, worker niceness 15.
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="HTTP port")
    ap.add_argument("--max-batch-size", type=int, default=256)
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--noop-max-ongoing", type=int, default=256,
                    help="max_ongoing_requests of the noop replica")
    ap.add_argument("--plain", action="store_true",
                    help="keep Ray's default request-path settings")
    ap.add_argument("--start-timeout", type=float, default=110.0,
                    help="give up if not ready after this many seconds")
    return ap.parse_args()


ARGS = parse_args()

# Environment tweaks must be in place before Ray starts: the raylet and
# every worker (controller, proxy, replicas) inherit this environment.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
if not ARGS.plain:
    os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    os.environ.setdefault("RAY_SERVE_ENABLE_DIRECT_INGRESS", "0")

import ray  # noqa: E402
import psutil  # noqa: E402  (vendored by Ray, importable once ray is)
from ray import serve  # noqa: E402

REPLY = {"query_id": 0, "output": 1.0, "default": False}
QUIET_LOGS = {"enable_access_log": False, "log_level": "WARNING"}


@serve.deployment(num_replicas=1, max_ongoing_requests=ARGS.noop_max_ongoing,
                  logging_config=QUIET_LOGS)
class Noop:
    """No-op model: 1.0 for any input."""

    async def __call__(self, request):
        await request.json()
        return REPLY


@serve.deployment(num_replicas=1,
                  max_ongoing_requests=max(ARGS.max_batch_size, 64) * 2,
                  logging_config=QUIET_LOGS)
class Batch:
    """Batching model: one batch costs 5 ms + 0.05 ms per input."""

    @serve.batch(max_batch_size=ARGS.max_batch_size,
                 batch_wait_timeout_s=ARGS.batch_wait_ms / 1000.0)
    async def predict(self, inputs):
        await asyncio.sleep(0.005 + 0.00005 * len(inputs))
        return [1.0] * len(inputs)

    async def __call__(self, request):
        body = await request.json()
        out = await self.predict(body["input"])
        return {"query_id": 0, "output": out, "default": False}


def post_ok(url):
    """True if a POST of a sample input gets a 200 with the expected body."""
    req = urllib.request.Request(url, data=b'{"input": [1.0, 2.0]}',
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 200 and json.load(r).get("output") == 1.0
    except (OSError, ValueError):
        return False


def our_descendants():
    """Processes started (directly or not) by this script."""
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def shutdown(procs, tmpdir):
    """Stop Serve and Ray, then kill any process of ours that survived."""
    procs = procs + our_descendants()
    for step in (serve.shutdown, ray.shutdown) if ray.is_initialized() else ():
        try:
            step()
        except Exception as e:  # keep going: the kill below is the backstop
            print(f"ray_serve_app: {step.__qualname__}: {e}", file=sys.stderr)
    alive = [p for p in procs if p.is_running()]
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    shutil.rmtree(tmpdir, ignore_errors=True)


def main():
    port = ARGS.port
    # Fail fast if the port is taken (Serve's proxy would retry forever).
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            print(f"ray_serve_app: port {port} unavailable: {e}", file=sys.stderr)
            return 1
    tmpdir = tempfile.mkdtemp(prefix="rsb", dir="/tmp")  # short: socket paths
    stop = threading.Event()
    ready = threading.Event()
    t0 = time.monotonic()

    def on_signal(signum, _frame):
        stop.set()
        if not ready.is_set():
            raise KeyboardInterrupt  # abort start-up, clean up below

    def catch_signals():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    catch_signals()

    # Watchdog: if start-up hangs, kill what we started and fail.
    def watchdog():
        if not ready.wait(ARGS.start_timeout) and not stop.is_set():
            print(f"ray_serve_app: not ready after {ARGS.start_timeout} s, "
                  "giving up", file=sys.stderr, flush=True)
            for p in our_descendants():
                try:
                    p.kill()
                except psutil.Error:
                    pass
            shutil.rmtree(tmpdir, ignore_errors=True)
            os._exit(3)
    threading.Thread(target=watchdog, daemon=True).start()

    procs = []
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 object_store_memory=200 * 1024 * 1024, _temp_dir=tmpdir,
                 log_to_driver=False, logging_level="WARNING",
                 configure_logging=True)
        catch_signals()  # ray.init installs its own (fatal) SIGTERM handler
        serve.start(http_options={"host": "127.0.0.1", "port": port},
                    logging_config=QUIET_LOGS)
        serve.run(Noop.bind(), name="noop", route_prefix="/noop")
        serve.run(Batch.bind(), name="batch", route_prefix="/batch")
        # The proxy learns routes asynchronously: poll until both answer.
        urls = [f"http://127.0.0.1:{port}/{app}" for app in ("noop", "batch")]
        while not all(post_ok(u) for u in urls):
            if stop.wait(0.2):
                raise KeyboardInterrupt
        procs = our_descendants()
        ready.set()
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        if not interrupted:
            print(f"ray_serve_app: failed to start: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
        shutdown(procs, tmpdir)
        return 130 if interrupted else 1

    print(f"ray_serve_app: ready in {time.monotonic() - t0:.1f} s",
          file=sys.stderr, flush=True)
    print(f"READY {port}", flush=True)
    stop.wait()
    shutdown(procs, tmpdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
