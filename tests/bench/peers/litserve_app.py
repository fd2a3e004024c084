#!/usr/bin/env python3
"""LitServe peer of the benchmark (tests/bench/bench_peers.py): the suite's
no-op and batching models as two LitAPIs of one LitServer.

Each takes the product's own body, POST {"input": [doubles]}, and answers
{"query_id": 0, "output": 1.0, "default": false} (Ray's baseline answers
the same):

  /noop   no-op model;
  /batch  batching model: LitServe's own batching (max_batch_size,
          batch_timeout) and one call per batch that sleeps
          5 ms + 0.05 ms per input (time.sleep: one batch at a time per
          inference worker, as the product's batching model).

Request path: uvicorn/FastAPI API-server process(es) -> a queue (Python
multiprocessing, or ZeroMQ with --fast-queue) -> the inference worker
process of the API -> back.

Prints "READY <port>" once both answer a real HTTP request, then serves
until killed. LitServe takes SIGINT as a shutdown only after a long delay
(tens of seconds once loaded), so bench_peers.py stops it by SIGTERM and
then SIGKILL of its process group.

Settings (options below; bench_peers.py passes the ones it found best on a
2-core machine and records them with the figures):
  --workers: inference workers per API (workers_per_device on the CPU);
  --api-servers: uvicorn API-server processes (num_api_servers);
  --fast-queue: ZeroMQ instead of multiprocessing queues between them;
  --max-batch-size / --batch-timeout-ms: the batching API's batcher.
"""
import argparse
import json
import os
import sys
import threading
import time
import urllib.request


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="HTTP port")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--api-servers", type=int, default=1)
    ap.add_argument("--fast-queue", action="store_true")
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-timeout-ms", type=float, default=2.0)
    ap.add_argument("--start-timeout", type=float, default=110.0)
    return ap.parse_args()


ARGS = parse_args()

import litserve as ls  # noqa: E402

REPLY = {"query_id": 0, "output": 1.0, "default": False}


class Noop(ls.LitAPI):
    """No-op model: 1.0 for any input."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        return 1.0

    def encode_response(self, output):
        return REPLY


class Batch(ls.LitAPI):
    """Batching model: one batch costs 5 ms + 0.05 ms per input."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def batch(self, inputs):
        return inputs

    def predict(self, xs):
        time.sleep(0.005 + 0.00005 * len(xs))
        return [1.0] * len(xs)

    def unbatch(self, outputs):
        return outputs

    def encode_response(self, output):
        return {"query_id": 0, "output": output, "default": False}


def post_ok(url):
    req = urllib.request.Request(url, data=b'{"input": [1.0, 2.0]}',
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 200 and json.load(r).get("output") == 1.0
    except (OSError, ValueError):
        return False


def announce_ready(port):
    """Polls both routes from a thread (run() blocks the main one); prints
    READY when they answer, or gives up and exits the process group."""
    t0 = time.monotonic()
    urls = ["http://127.0.0.1:%d/%s" % (port, p) for p in ("noop", "batch")]
    while not all(post_ok(u) for u in urls):
        if time.monotonic() - t0 > ARGS.start_timeout:
            print("litserve_app: not ready after %.0f s" % ARGS.start_timeout, file=sys.stderr,
                  flush=True)
            os.killpg(os.getpgrp(), 9)
        time.sleep(0.1)
    print("litserve_app: ready in %.1f s" % (time.monotonic() - t0), file=sys.stderr, flush=True)
    print("READY %d" % port, flush=True)


def main():
    apis = [Noop(api_path="/noop"),
            Batch(api_path="/batch", max_batch_size=ARGS.max_batch_size,
                  batch_timeout=ARGS.batch_timeout_ms / 1000.0)]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=ARGS.workers,
                          fast_queue=ARGS.fast_queue, timeout=30)
    threading.Thread(target=announce_ready, args=(ARGS.port,), daemon=True).start()
    server.run(host="127.0.0.1", port=ARGS.port, num_api_servers=ARGS.api_servers,
               log_level="warning", generate_client_file=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
