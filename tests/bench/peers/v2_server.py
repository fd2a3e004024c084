"""What the peer servers that speak KServe v2 share (mlserver_app.py,
triton_python_app.py, pytriton_app.py): the probe that says a model
answers, and the supervision of a server run as a child process until the
bench stops it. Imported from the script's own directory, so it uses the
standard library only (each peer runs in a venv of its own)."""
import json
import signal
import subprocess
import sys
import time
import urllib.request

FP64_SAMPLE = {"name": "INPUT", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}


def post_ok(port, model, tensor=FP64_SAMPLE):
    """True when model answers one v2 inference with the output [1.0]."""
    body = json.dumps({"inputs": [tensor]}).encode()
    req = urllib.request.Request("http://127.0.0.1:%d/v2/models/%s/infer" % (port, model),
                                 data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 200 and json.load(r)["outputs"][0]["data"] == [1.0]
    except (OSError, ValueError, KeyError, IndexError):
        return False


def supervise(what, proc, port, models, stop, start_timeout, stop_signal=signal.SIGTERM,
              stop_wait_s=10):
    """Waits until every model answers (then prints READY <port> for the
    bench), and until stop is set; stops proc with stop_signal (killed after
    stop_wait_s). Returns the script's exit code: 0, 1 when the server
    exited, 3 when it was not ready in time, 130 when stopped before."""
    t0 = time.monotonic()
    try:
        while not all(post_ok(port, m) for m in models):
            if proc.poll() is not None:
                print("%s exited with %d" % (what, proc.returncode), file=sys.stderr, flush=True)
                return 1
            if stop.wait(0.1):
                return 130
            if time.monotonic() - t0 > start_timeout:
                print("%s: not ready after %.0f s" % (what, start_timeout), file=sys.stderr,
                      flush=True)
                return 3
        print("%s: ready in %.1f s" % (what, time.monotonic() - t0), file=sys.stderr, flush=True)
        print("READY %d" % port, flush=True)
        while not stop.wait(0.5):
            if proc.poll() is not None:
                print("%s exited with %d" % (what, proc.returncode), file=sys.stderr, flush=True)
                return 1
        return 0
    finally:
        if proc.poll() is None:
            proc.send_signal(stop_signal)
            try:
                proc.wait(stop_wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
