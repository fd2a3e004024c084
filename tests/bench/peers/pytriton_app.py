#!/usr/bin/env python3
"""PyTriton peer of the benchmark (tests/bench/bench_peers.py): the suite's
no-op and batching models as Python callables behind NVIDIA Triton's C++
HTTP server, with Triton's dynamic batcher.

Models (KServe v2 JSON or Triton's binary tensor extension on
POST /v2/models/<name>/infer; the batch dimension is the first one, so one
query of the suite's body {"input":[1.0,2.0]} is an FP64 tensor INPUT of
shape [1,2]):

  noop   one FP64 OUTPUT of shape [1] per input row (1.0), nothing else;
  batch  the same, after sleeping 5 ms + 0.05 ms per input of the batch
         (time.sleep: one batch at a time, as the product's batching model);
  large_fp64, large_u8  (--models large) a no-op over an input row of any
         length, FP64 or UINT8: the large-input measurement.

Request path: tritonserver (C++, HTTP, dynamic batcher) -> Python backend
stub process (one per model instance) -> ZeroMQ and shared memory -> this
process, where the callables run.

Prints "READY <port>" once every model answers a real HTTP request, then
serves until SIGTERM or SIGINT, stops Triton and exits 0.

Settings (options below; bench_peers.py passes the ones it found best on a
2-core machine and records them with the figures):
  --noop-max-batch / --noop-delay-us: dynamic batcher of the no-op. With
    batching the server makes one Python call per batch instead of one per
    request, which is the only way Triton's Python path keeps up with many
    connections.
  --batch-max-batch / --batch-delay-us: the batching model's batcher.
  --noop-instances / --batch-instances: model instances (stub processes
    and proxy threads). bench_peers.py keeps the batching model at one: a
    second instance runs a second batch at the same time, i.e. a second
    replica of the model, which the product's figure does not have.
  --http-threads: Triton's HTTP worker threads.

The Python backend stub shipped in the wheel links libpython3.11 by name; on
this machine the loader finds Debian's (3.11.2) before the interpreter's
own (pyenv 3.11.7), and the stub fails ("'_thread.RLock' object has no
attribute '_recursion_count'"). So LD_LIBRARY_PATH is set to this
interpreter's LIBDIR before Triton starts (it inherits the environment).
"""
import argparse
import os
import signal
import sys
import sysconfig
import threading
import time

import v2_server  # beside this script


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="HTTP port")
    ap.add_argument("--models", choices=("suite", "large"), default="suite",
                    help="suite: noop and batch; large: large_fp64 and large_u8")
    ap.add_argument("--noop-max-batch", type=int, default=64)
    ap.add_argument("--noop-delay-us", type=int, default=0)
    ap.add_argument("--batch-max-batch", type=int, default=256)
    ap.add_argument("--batch-delay-us", type=int, default=1000)
    ap.add_argument("--noop-instances", type=int, default=1)
    ap.add_argument("--batch-instances", type=int, default=1)
    ap.add_argument("--http-threads", type=int, default=0, help="0: Triton's default")
    ap.add_argument("--start-timeout", type=float, default=110.0)
    return ap.parse_args()


ARGS = parse_args()
_libdir = sysconfig.get_config_var("LIBDIR")
if _libdir:
    os.environ["LD_LIBRARY_PATH"] = ":".join(
        x for x in (_libdir, os.environ.get("LD_LIBRARY_PATH")) if x)

import numpy as np  # noqa: E402
from pytriton.decorators import batch  # noqa: E402
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor  # noqa: E402
from pytriton.triton import Triton, TritonConfig  # noqa: E402


@batch
def noop(INPUT):
    return {"OUTPUT": np.ones((INPUT.shape[0], 1), dtype=np.float64)}


@batch
def batching_model(INPUT):
    # A large fixed cost per call and a small cost per input (bench_suite's
    # batching_model).
    time.sleep(0.005 + 0.00005 * INPUT.shape[0])
    return {"OUTPUT": np.ones((INPUT.shape[0], 1), dtype=np.float64)}


def sample(model):
    if model == "large_u8":
        return {"name": "INPUT", "shape": [1, 4], "datatype": "UINT8", "data": [1, 2, 3, 4]}
    return {"name": "INPUT", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}


def post_ok(port, model):
    return v2_server.post_ok(port, model, sample(model))


def main():
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cfg = dict(http_address="127.0.0.1", http_port=ARGS.port, allow_grpc=False,
               allow_metrics=False, log_verbose=0)
    if ARGS.http_threads:
        cfg["http_thread_count"] = ARGS.http_threads
    triton = Triton(config=TritonConfig(**cfg))
    out = [Tensor(name="OUTPUT", dtype=np.float64, shape=(1,))]
    if ARGS.models == "suite":
        binds = [("noop", noop, np.float64, ARGS.noop_max_batch, ARGS.noop_delay_us,
                  ARGS.noop_instances),
                 ("batch", batching_model, np.float64, ARGS.batch_max_batch, ARGS.batch_delay_us,
                  ARGS.batch_instances)]
    else:
        # Large single queries, with the no-op's batcher settings: Triton
        # stacks what queued during a call into the next one.
        binds = [("large_fp64", noop, np.float64, ARGS.noop_max_batch, ARGS.noop_delay_us,
                  ARGS.noop_instances),
                 ("large_u8", noop, np.uint8, ARGS.noop_max_batch, ARGS.noop_delay_us,
                  ARGS.noop_instances)]
    for name, fn, dtype, max_batch, delay_us, instances in binds:
        triton.bind(model_name=name, infer_func=[fn] * instances,
                    inputs=[Tensor(name="INPUT", dtype=dtype, shape=(-1,))], outputs=out,
                    config=ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(
                        max_queue_delay_microseconds=delay_us)), strict=False)
    t0 = time.monotonic()
    try:
        triton.run()
        while not all(post_ok(ARGS.port, b[0]) for b in binds):
            if stop.wait(0.1):
                return 130
            if time.monotonic() - t0 > ARGS.start_timeout:
                print("pytriton_app: not ready after %.0f s" % ARGS.start_timeout,
                      file=sys.stderr, flush=True)
                return 3
        print("pytriton_app: ready in %.1f s" % (time.monotonic() - t0), file=sys.stderr,
              flush=True)
        print("READY %d" % ARGS.port, flush=True)
        stop.wait()
    finally:
        triton.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
