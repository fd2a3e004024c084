#!/usr/bin/env python3
"""MLServer peer of the benchmark (tests/bench/bench_peers.py): the suite's
no-op and batching models (mlserver/models.py beside this file) served by
`mlserver start`, queried with KServe v2 JSON on
POST /v2/models/<noop|batch>/infer (one query: an FP64 tensor INPUT of
shape [1,2], as for Triton).

Writes the settings into a temporary model repository (settings.json, and a
model-settings.json per model) from the options below, runs
`mlserver start` on it in this process group, prints "READY <port>" once
both models answer a real HTTP request, and serves until SIGTERM/SIGINT,
when it stops MLServer (SIGTERM to it, SIGKILL after 10 s) and removes the
repository.

Settings (bench_peers.py passes the ones it found best on a 2-core machine
and records them with the figures):
  --parallel-workers: inference worker processes (MLServer's default 1; 0
    runs the models in the HTTP server's own process);
  --noop-max-batch / --noop-batch-ms: adaptive batching of the no-op
    (0: off);
  --batch-max-batch / --batch-batch-ms: adaptive batching of the batching
    model.
Request logging (debug) and metrics are off, gzip too: the answers are a few
bytes, and each of these costs time per request.

Needs MLServer 1.7.1 with uvloop < 0.22 (its worker dies with "There is no
current event loop" under uvloop 0.22+); tests/bench/peers/setup.sh pins it.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

from v2_server import supervise  # noqa: E402 - beside this script


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="HTTP port")
    ap.add_argument("--parallel-workers", type=int, default=1)
    ap.add_argument("--noop-max-batch", type=int, default=0)
    ap.add_argument("--noop-batch-ms", type=float, default=0.0)
    ap.add_argument("--batch-max-batch", type=int, default=128)
    ap.add_argument("--batch-batch-ms", type=float, default=2.0)
    ap.add_argument("--start-timeout", type=float, default=110.0)
    return ap.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_repo(args, root):
    shutil.copy(os.path.join(HERE, "mlserver", "models.py"), root)
    with open(os.path.join(root, "settings.json"), "w") as f:
        json.dump({"host": "127.0.0.1", "http_port": args.port, "grpc_port": free_port(),
                   "metrics_port": free_port(), "metrics_endpoint": None, "debug": False,
                   "gzip_enabled": False, "parallel_workers": args.parallel_workers,
                   "metrics_dir": os.path.join(root, ".metrics")}, f)
    for name, impl, max_batch, batch_ms in (
            ("noop", "models.Noop", args.noop_max_batch, args.noop_batch_ms),
            ("batch", "models.Batch", args.batch_max_batch, args.batch_batch_ms)):
        os.makedirs(os.path.join(root, name))
        ms = {"name": name, "implementation": impl}
        if max_batch > 1:
            ms.update(max_batch_size=max_batch, max_batch_time=batch_ms / 1000.0)
        with open(os.path.join(root, name, "model-settings.json"), "w") as f:
            json.dump(ms, f)


def main():
    args = parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    root = tempfile.mkdtemp(prefix="mlserver-bench-")
    write_repo(args, root)
    mlserver = os.path.join(os.path.dirname(sys.executable), "mlserver")
    proc = subprocess.Popen([mlserver, "start", root], cwd=root)
    try:
        return supervise("mlserver_app: mlserver", proc, args.port, ("noop", "batch"), stop,
                         args.start_timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
