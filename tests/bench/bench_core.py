#!/usr/bin/env python3
"""Core benchmark: the bus floor against the product, same client, same run.

Starts a private cluster (its own nats-server) with clipper_admin, deploys a
no-op closure, and drives both a bare NATS echo responder and the product's
<prefix>.predict.<app> with the same C load generator (clipper-bench):
sequential latency (p50/p99, one request at a time, sent at once) and
pipelined throughput (a window of outstanding requests, writes batched).

Prints a table with the ratios to the floor and writes the raw figures as
JSON. Usage (after `bash .ci/setup`):

    PYTHONPATH=build/deployers python3 tests/bench/bench_core.py \
        --bench build/tests/bench/clipper-bench [--out bench-core.json]
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_bench(bench, url, subject, label, args, echo=False, body='{"input":[1.0,2.0]}'):
    cmd = [bench, "--nats", url, "--subject", subject, "--label", label,
           "--count", str(args.count), "--window", str(args.window),
           "--seconds", str(args.seconds), "--body", body]
    if echo:
        cmd.append("--echo")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["kind"]: r for r in rows}


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version()}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path of the clipper-bench program")
    ap.add_argument("--count", type=int, default=5000, help="sequential requests")
    ap.add_argument("--window", type=int, default=256, help="outstanding requests")
    ap.add_argument("--seconds", type=float, default=5.0, help="pipelined duration")
    ap.add_argument("--out", default="bench-core.json", help="raw results (JSON)")
    args = ap.parse_args()

    cm = LocalContainerManager(clipper_query_port=free_port(),
                               clipper_management_port=free_port())
    conn = ClipperConnection(cm)
    conn.start_clipper()
    try:
        python_deployer.create_endpoint(conn, "noop", "doubles",
                                        lambda xs: ["1.0"] * len(xs),
                                        slo_micros=2000000)
        url = cm.bus_url
        prefix = cm.prefix
        # Let the frontend's view settle before measuring.
        time.sleep(0.5)
        floor = run_bench(args.bench, url, "bench.echo", "echo", args, echo=True)
        prod = run_bench(args.bench, url, "%s.predict.noop" % prefix, "noop-closure", args)
    finally:
        conn.stop_all()

    fs, fp = floor["sequential"], floor["pipelined"]
    ps, pp = prod["sequential"], prod["pipelined"]
    result = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "floor": floor, "product": prod,
        "ratios": {
            "p50_latency_vs_floor": ps["p50_us"] / max(fs["p50_us"], 1),
            "p99_latency_vs_floor": ps["p99_us"] / max(fs["p99_us"], 1),
            "throughput_vs_floor": pp["throughput_rps"] / max(fp["throughput_rps"], 1),
        },
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    print("machine: %(cpu)s, %(cores)s cores, kernel %(kernel)s" % result["machine"])
    print("%-22s %10s %10s %14s %8s" % ("", "p50 (us)", "p99 (us)", "throughput/s", "bad"))
    for name, s, p in (("NATS echo (floor)", fs, fp), ("no-op closure", ps, pp)):
        print("%-22s %10d %10d %14.0f %8d" % (name, s["p50_us"], s["p99_us"],
                                              p["throughput_rps"], s["bad"] + p["bad"]))
    r = result["ratios"]
    print("%-22s %9.2fx %9.2fx %13.2fx" % ("product / floor", r["p50_latency_vs_floor"],
                                          r["p99_latency_vs_floor"], r["throughput_vs_floor"]))
    print("targets: p50 <= 3x floor, throughput >= 0.5x floor; raw figures in %s" % args.out)
    if ps["bad"] + pp["bad"]:
        print("WARNING: %d replies were defaults or errors" % (ps["bad"] + pp["bad"]),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
