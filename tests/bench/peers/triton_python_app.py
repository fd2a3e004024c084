#!/usr/bin/env python3
"""Triton without PyTriton, the peer benchmark's Triton anchor
(tests/bench/bench_peers.py): the `tritonserver` binary shipped in the
nvidia-pytriton wheel, serving the suite's no-op and batching models as
plain Python-backend models (triton_python/model.py beside this file), with
Triton's dynamic batcher. Same HTTP API and bodies as pytriton_app.py
(KServe v2 on POST /v2/models/<noop|batch>/infer, one query an FP64 tensor
INPUT of shape [1,2]).

Why Python and not a native backend: the wheel (nvidia-pytriton 0.7.0,
Triton 2.51) ships exactly one backend, python (backends/python), and no
identity or other C++ backend; Triton's core cannot serve a model without
one (its only built-in platform, ensemble, needs composing models). So the
leanest Triton this machine can run is tritonserver -> Python-backend stub
(one process per model instance, over shared memory) -> model.py: PyTriton's
path minus its extra hop (ZeroMQ to the user's own process).

Run with the PyTriton venv's python (it finds the wheel's files from the
pytriton package). Writes a model repository and a backend directory (the
wheel's python backend with the stub for this interpreter's version) into a
temp dir, starts tritonserver in this process group, prints "READY <port>"
once both models answer, serves until SIGTERM/SIGINT, then stops it.

Settings (bench_peers.py passes the ones it found best on a 2-core machine
and records them with the figures): --noop-max-batch / --noop-delay-us and
--batch-max-batch / --batch-delay-us, the dynamic batcher of each model;
--noop-instances / --batch-instances, model instances (stub processes; the
batching model stays at one: one batch at a time, as the product's);
--http-threads, Triton's HTTP worker threads.

The stub links libpython3.x by name: LD_LIBRARY_PATH gets this
interpreter's LIBDIR first (else Debian's libpython 3.11.2 is loaded under
pyenv's 3.11.7 and the stub fails) and the wheel's nvidia_pytriton.libs (the
stub's RPATH is relative to its place in the wheel). PATH gets this venv's
bin first: the embedded interpreter takes its prefix, so its numpy, from the
python on PATH; with pyenv's, its numpy 2 breaks the stub's tensors ("output
tensor shape does not match size of output"), as seen here.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

from v2_server import supervise  # noqa: E402 - beside this script


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="HTTP port")
    ap.add_argument("--noop-max-batch", type=int, default=64)
    ap.add_argument("--noop-delay-us", type=int, default=0)
    ap.add_argument("--batch-max-batch", type=int, default=256)
    ap.add_argument("--batch-delay-us", type=int, default=1000)
    ap.add_argument("--noop-instances", type=int, default=1)
    ap.add_argument("--batch-instances", type=int, default=1)
    ap.add_argument("--http-threads", type=int, default=0, help="0: Triton's default")
    ap.add_argument("--start-timeout", type=float, default=110.0)
    return ap.parse_args()


def wheel_dir():
    import pytriton
    return os.path.join(os.path.dirname(pytriton.__file__), "tritonserver")


CONFIG = """name: "%(name)s"
backend: "python"
max_batch_size: %(max_batch)d
input [ { name: "INPUT" data_type: TYPE_FP64 dims: [ -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP64 dims: [ 1 ] } ]
dynamic_batching { max_queue_delay_microseconds: %(delay_us)d }
instance_group [ { count: %(instances)d kind: KIND_CPU } ]
parameters { key: "batching_model" value: { string_value: "%(batching)s" } }
"""


def write_dirs(args, root):
    """The backend directory and the model repository under root."""
    src = wheel_dir()
    backends = os.path.join(root, "backends")
    py = os.path.join(backends, "python")
    os.makedirs(py)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        os.symlink(os.path.join(src, "backends", "python", f), os.path.join(py, f))
    stub = os.path.join(src, "python_backend_stubs", "%d.%d" % sys.version_info[:2],
                        "triton_python_backend_stub")
    shutil.copy(stub, os.path.join(py, "triton_python_backend_stub"))
    repo = os.path.join(root, "models")
    for name, max_batch, delay_us, instances, batching in (
            ("noop", args.noop_max_batch, args.noop_delay_us, args.noop_instances, "0"),
            ("batch", args.batch_max_batch, args.batch_delay_us, args.batch_instances, "1")):
        os.makedirs(os.path.join(repo, name, "1"))
        shutil.copy(os.path.join(HERE, "triton_python", "model.py"),
                    os.path.join(repo, name, "1", "model.py"))
        with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
            f.write(CONFIG % dict(name=name, max_batch=max_batch, delay_us=delay_us,
                                  instances=instances, batching=batching))
    return backends, repo


def main():
    args = parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    root = tempfile.mkdtemp(prefix="triton-bench-")
    backends, repo = write_dirs(args, root)
    env = dict(os.environ)
    # The wheel's own libraries: the copied stub's relative RPATH misses them.
    libs = [sysconfig.get_config_var("LIBDIR"),
            os.path.join(os.path.dirname(wheel_dir()), os.pardir, "nvidia_pytriton.libs"),
            env.get("LD_LIBRARY_PATH")]
    env["LD_LIBRARY_PATH"] = ":".join(x for x in libs if x)
    # The stub's embedded interpreter finds its prefix (so its site-packages)
    # from the python on PATH, as PyTriton arranges it.
    env["PATH"] = os.path.dirname(sys.executable) + ":" + env.get("PATH", "")
    cmd = [os.path.join(wheel_dir(), "bin", "tritonserver"), "--model-repository", repo,
           "--backend-directory", backends, "--http-address", "127.0.0.1",
           "--http-port", str(args.port), "--allow-grpc", "false", "--allow-metrics", "false",
           "--log-verbose", "0", "--log-info", "false"]
    if args.http_threads:
        cmd += ["--http-thread-count", str(args.http_threads)]
    proc = subprocess.Popen(cmd, env=env)
    try:
        # SIGINT: Triton's graceful stop.
        return supervise("triton_python_app: tritonserver", proc, args.port, ("noop", "batch"),
                         stop, args.start_timeout, stop_signal=signal.SIGINT, stop_wait_s=15)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
