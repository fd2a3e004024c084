#!/usr/bin/env python3
"""The fault-injection table: a cluster on this machine under an open-loop
load over NATS, one fault per row, and what every query got.

Each row starts from a serving cluster ('clipper start' through
LocalContainerManager, so every actor and the nats-server run under the
supervisor; prediction cache off, so every query reaches a replica; a
closure model with two replicas; two routers, one leading; --frontends
query frontends, 2 by default; application SLO --slo-ms). clipper-bench
sends --rate queries a second for --seconds, each with a different input,
and writes each query's outcome; --fault-at seconds in, the row's fault is
injected. Per row it prints:

  sent, predictions, late predictions (answered more than 1.5 SLO + 50 ms
  after they were sent: a stopped process let them go at last), defaults,
  errors, never answered (of those: sent in
  the SLO before a frontend or the nats-server was killed, so inside it
  at that instant; for a stopped frontend, those it took until its
  supervisor killed it),
  and the time from the fault until predictions resumed for good (the
  scheduled time of the last query after the fault that did not get a
  prediction, minus the fault's time; 0 when none missed),

and checks that the state is intact afterwards (the same applications and
models, and a correct prediction). Rows:

  replica-kill    kill -9 one replica
  router-kill     kill -9 the leading router
  frontend-kill   kill -9 a frontend
  manager-kill    kill -9 the container manager
  admin-kill      kill -9 the admin
  nats-kill       kill -9 the nats-server
  replica-stop    SIGSTOP one replica for --stop-s seconds, then SIGCONT
  router-stop     the same for the leading router
  frontend-stop   the same for a frontend
  manager-stop    the same for the manager
  everything      kill -9 'clipper start', every actor, every replica and the
                  nats-server, then start the cluster again on the same data
                  directory (time to the first prediction is the resume time)

In the rows that kill the nats-server (nats-kill, everything) the client's
own connection goes with it: what it wrote to the dead server before it
noticed is lost in its socket, where no actor can answer it. There the
client does what the product's own clients do (cl_bus_request_resend:
Python's Bus.predict, `clipper predict`; hosts_faults.py does the same for
every row): it sends a query again when no reply came 1 s after its last
send, the wait doubling (clipper-bench --resend). Such a query answered
late counts as late.

Usage: fault_suite.py --bench BUILD/tests/bench/clipper-bench [--rows a,b]
       [--json FILE] [--check]   (--check: exit 1 when a row misses its
       targets: never answered 0 (frontend rows: only those inside it), the
       state intact, and predictions resumed before the row's end)
Needs PYTHONPATH=BUILD/deployers and CLIPPER_BIN (as the python tests)."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timeline import read_timeline  # noqa: E402

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_admin.local_container_manager import _free_port

ROWS = ["replica-kill", "router-kill", "frontend-kill", "manager-kill", "admin-kill",
        "nats-kill", "replica-stop", "router-stop", "frontend-stop", "manager-stop",
        "everything"]



def cmdline(pid):
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def pids_where(pred):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            argv = [a.decode("utf-8", "replace") for a in cmdline(int(e)) if a]
            if argv and pred(argv):
                out.append(int(e))
    return sorted(out)


def router_snapshots(bus, prefix, timeout_ms=1000):
    """Every router's route.stats snapshot (the leader's and the standbys')."""
    return [json.loads(r.decode())
            for r in bus.gather("{}.route.stats".format(prefix), b"", timeout_ms)]


def leading_router(bus, prefix):
    """The "router" part ({host, pid, epoch, leading, routers}) of the
    leader's snapshot; AssertionError unless exactly one router leads."""
    leaders = [s["router"] for s in router_snapshots(bus, prefix) if s["router"]["leading"]]
    assert len(leaders) == 1, leaders
    return leaders[0]


def actor_pids(prefix, kind):
    """'clipper run <kind> ... --prefix <prefix>' processes."""
    def pred(argv):
        return (len(argv) > 2 and argv[1] == "run" and argv[2] == kind and
                "--prefix" in argv and argv[argv.index("--prefix") + 1:][:1] == [prefix])
    return pids_where(pred)


def nats_pids(port):
    return pids_where(lambda a: os.path.basename(a[0]) == "nats-server" and "-p" in a and
                      a[a.index("-p") + 1:][:1] == [str(port)])


def model(xs):
    return [str(sum(x)) for x in xs]


class SamePorts(LocalContainerManager):
    """Starts its nats-server on the port of the cluster before it, so a
    cluster started again after the 'everything' row is where the load
    generator is."""
    nats_port = None

    def _start_args(self, binary, nats_port, *rest):
        return super()._start_args(binary, self.nats_port or nats_port, *rest)


class Ctx(object):
    def __init__(self, args):
        self.args = args
        self.tag = uuid.uuid4().hex[:6]
        self.data_dir = tempfile.mkdtemp(prefix="clipper-faults-")
        self.app = "faults"
        self.cm = None
        self.conn = None
        self.fixed_nats_port = None  # the 'everything' row starts again on it

    def start(self):
        # A free port can be taken by someone else before 'clipper start'
        # binds it: try again with others.
        for attempt in range(3):
            try:
                return self._start()
            except Exception as e:  # noqa: BLE001 - retried, then raised
                if "already in use" not in str(e) or attempt == 2:
                    raise

    def _start(self):
        port = self.fixed_nats_port or _free_port()
        self.cm = SamePorts(cluster_name="faults-" + self.tag,
                            clipper_query_port=_free_port(),
                            clipper_management_port=_free_port(),
                            prometheus_port=_free_port(), nats_url=None, data_dir=self.data_dir)
        self.cm.nats_port = port
        self.conn = ClipperConnection(self.cm)
        t0 = time.monotonic()
        self.conn.start_clipper(cache_size=0, num_frontend_replicas=self.args.frontends)
        self.fixed_nats_port = port
        return time.monotonic() - t0

    def deploy(self):
        self.conn.register_application(self.app, "doubles", "-1.0",
                                       self.args.slo_ms * 1000)
        python_deployer.deploy_python_closure(self.conn, self.app, 1, "doubles", model,
                                              num_replicas=2)
        self.conn.link_model_to_app(self.app, self.app)
        self.wait_prediction(60)

    def predict(self, x, timeout_ms=2000):
        body = json.dumps({"input": x}).encode()
        return json.loads(self.cm.bus.predict(self.app, body, timeout_ms).decode())

    def wait_prediction(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        seen = {}  # what the tries got, by kind: says a deaf frontend from defaults
        while time.monotonic() < deadline:
            try:
                last = self.predict([1.0, 2.0])
                if last.get("default") is False and last.get("output") == 3.0:
                    return time.monotonic()
                kind = "default" if last.get("default") else "wrong output"
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = repr(e)
                kind = type(e).__name__
            seen[kind] = seen.get(kind, 0) + 1
            time.sleep(0.02)
        raise RuntimeError("no prediction within {} s (tries: {}; last: {})".format(
            timeout, seen, last))

    def state(self):
        apps = sorted(json.dumps(a, sort_keys=True) for a in
                      self.conn.get_all_apps(verbose=True))
        models = sorted(json.dumps(m, sort_keys=True) for m in
                        self.conn.get_all_models(verbose=True))
        return apps, models

    @property
    def prefix(self):
        return self.cm.prefix

    @property
    def url(self):
        return self.cm.bus_url

    @property
    def nats_port(self):
        return int(self.url.rsplit(":", 1)[1])

    def replicas(self):
        return actor_pids(self.prefix, "replica")

    def stop(self):
        if self.args.logs and self.cm is not None and self.cm.log_file:
            os.makedirs(self.args.logs, exist_ok=True)
            for src in [self.cm.log_file] + [os.path.join(self.cm.log_dir, f) for f in
                                             os.listdir(self.cm.log_dir or ".")]:
                try:
                    shutil.copy(src, os.path.join(self.args.logs, "{}-{}".format(
                        self.row, os.path.basename(src))))
                except OSError:
                    pass
        if self.conn is not None:
            try:
                self.conn.stop_all(graceful=False)
            except Exception as e:  # noqa: BLE001 - best effort at the end
                print("stop_all: {}".format(e), file=sys.stderr)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def print_log_tail(ctx, row, out, lines=60):
    """What the cluster said before a row failed: the last lines of its
    start log (every actor's lines, the supervisor's) and of the
    nats-server's, written to out (a file, or stdout)."""
    cm = ctx.cm
    if cm is None or not getattr(cm, "log_file", None):
        return
    paths = [cm.log_file]
    if cm.log_dir and os.path.isdir(cm.log_dir):
        paths += [os.path.join(cm.log_dir, f) for f in sorted(os.listdir(cm.log_dir))
                  if f.startswith("nats")]
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
        except OSError as e:
            tail = ["(cannot read: {})".format(e)]
        print("---- {}: the last lines of {} ----".format(row, path), file=out)
        print("\n".join(tail), file=out, flush=True)


def one(pids, what):
    if not pids:
        raise RuntimeError("no {} process found".format(what))
    return pids[0]


def inject(ctx, row):
    """Injects the row's fault; returns what to do at the end (or None)."""
    kind, action = row.rsplit("-", 1) if row != "everything" else ("everything", "kill")
    if row == "everything":
        start_pid = ctx.cm._pid
        victims = [start_pid] + [p for k in ("admin", "router", "frontend", "manager",
                                             "replica") for p in actor_pids(ctx.prefix, k)]
        victims += nats_pids(ctx.nats_port)
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        ctx.cm._proc.wait()
        ctx.cm._proc = None
        t0 = time.monotonic()
        ctx.start()
        ctx.restart_s = time.monotonic() - t0
        return None
    if kind == "nats":
        pid = one(nats_pids(ctx.nats_port), "nats-server")
    elif kind == "router":
        pid = int(leading_router(ctx.cm.bus, ctx.prefix)["pid"])
    elif kind == "replica":
        pid = one(ctx.replicas(), "replica")
    else:
        pid = one(actor_pids(ctx.prefix, kind), kind)
    if action == "kill":
        os.kill(pid, signal.SIGKILL)
        return None
    os.kill(pid, signal.SIGSTOP)

    def resume():
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # killed meanwhile (the manager kills a replica silent for 4.5 s)
    return resume


def run_row(ctx, row):
    a = ctx.args
    before = ctx.state()
    timeline = os.path.join(ctx.data_dir, "timeline-{}.txt".format(row))
    subject = "{}.predict.{}".format(ctx.prefix, ctx.app)
    bench = subprocess.Popen(
        [a.bench, "--nats", ctx.url] + ctx.cm.bus_auth_args() +
        ["--subject", subject, "--body", '{"input":[0.5, 1.0]}',
         "--vary", "--rate", str(a.rate), "--seconds", str(a.seconds),
         "--slo-us", str(a.slo_ms * 1000), "--grace-ms", "5000", "--timeline", timeline,
         "--label", row] + (["--resend"] if row in ("nats-kill", "everything") else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(a.fault_at)
    t_fault = time.time()
    undo = inject(ctx, row)
    if undo is not None:
        time.sleep(a.stop_s)
        undo()
    out, err = bench.communicate(timeout=a.seconds + 120)
    if bench.returncode != 0:
        # The exit status says a crash (a negative signal number) from a
        # refusal with nothing printed.
        raise RuntimeError("clipper-bench failed (exit status {}): {}; its last output: "
                           "{}".format(bench.returncode, err.decode()[-2000:],
                                       out.decode()[-500:]))
    if a.logs:
        os.makedirs(a.logs, exist_ok=True)
        shutil.copy(timeline, os.path.join(a.logs, "{}-timeline.txt".format(row)))
        with open(os.path.join(a.logs, "{}-fault-at.txt".format(row)), "w") as f:
            f.write("{:.6f}\n".format(t_fault))
    rows, counts = read_timeline(timeline)
    slo = a.slo_ms / 1000.0
    # A prediction that came long after its deadline (a stopped process let
    # it go at last) is no better than a default for its client.
    late_us = int(a.slo_ms * 1000 * 1.5) + 50000
    late = [r for r in rows if r[1] == 1 and r[2] > late_us]
    bad_after = [r[0] for r in rows if (r[1] != 1 or r[2] > late_us) and r[0] >= t_fault - slo]
    resume = max(0.0, max(bad_after) - t_fault) if bad_after else 0.0
    if row == "everything":
        resume = max(resume, getattr(ctx, "restart_s", 0.0))
    # Queries inside the killed frontend, or inside the killed nats-server
    # (accepted by it, not yet delivered), at that instant: sent within the
    # SLO before the kill and never answered. Nothing can answer those.
    inside = 0
    if row in ("frontend-kill", "nats-kill", "everything"):
        inside = len([r for r in rows
                      if r[1] == 0 and t_fault - slo - 0.05 <= r[0] <= t_fault + 0.05])
    elif row == "frontend-stop":
        # A stopped frontend keeps getting its share of the queue group's
        # queries until its supervisor kills it (stopped 2 s, seen within
        # 1 s more): those were inside it when it was killed.
        inside = len([r for r in rows
                      if r[1] == 0 and t_fault - slo - 0.05 <= r[0] <= t_fault + 3.5])
    # The state after the row, once the cluster serves again.
    ctx.wait_prediction(60)
    after = ctx.state()
    res = {
        "row": row, "sent": len(rows), "predictions": counts[1] - len(late),
        "late_predictions": len(late), "defaults": counts[2],
        "errors": counts[3], "never_answered": counts[0], "inside_frontend": inside,
        "resume_s": round(resume, 3), "state_intact": before == after,
        "last_bad_after_s": round(max(bad_after) - t_fault, 3) if bad_after else None,
    }
    if row == "everything":
        res["restart_s"] = round(getattr(ctx, "restart_s", 0.0), 3)
    res["ok"] = (res["never_answered"] - inside == 0 and res["state_intact"] and
                 (not bad_after or max(bad_after) < rows[-1][0] - 1.0))
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", required=True)
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--rate", type=int, default=300)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--fault-at", type=float, default=8)
    p.add_argument("--stop-s", type=float, default=10)
    p.add_argument("--slo-ms", type=int, default=100)
    p.add_argument("--frontends", type=int, default=2,
                   help="query frontends (clipper start --frontends; default 2)")
    p.add_argument("--json")
    p.add_argument("--failure-logs", help="append the log tails of failing rows to this file "
                   "(default: print them)")
    p.add_argument("--logs", help="copy each row's cluster logs into this directory")
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    rows = [r for r in a.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error("unknown rows {} (known: {})".format(unknown, ", ".join(ROWS)))
    results = []
    for row in rows:
        ctx = Ctx(a)
        ctx.row = row
        phase = "start"
        try:
            start_s = ctx.start()
            phase = "deploy"
            ctx.deploy()
            phase = "row"
            res = run_row(ctx, row)
            res["start_s"] = round(start_s, 2)
        except Exception as e:  # noqa: BLE001 - reported as the row's result
            res = {"row": row, "ok": False, "phase": phase, "error": repr(e)[:500]}
        if not res.get("ok"):
            if a.failure_logs:
                with open(a.failure_logs, "a") as f:
                    print_log_tail(ctx, row, f)
            else:
                print_log_tail(ctx, row, sys.stdout)
        ctx.stop()
        results.append(res)
        print("FAULT " + json.dumps(res), flush=True)
    hdr = "{:<14} {:>6} {:>6} {:>5} {:>6} {:>5} {:>6} {:>7} {:>8} {:>6} {}".format(
        "row", "sent", "pred", "late", "dflt", "err", "never", "inside", "resume", "state", "ok")
    print(hdr)
    for r in results:
        if "error" in r:
            print("{:<14} error: {}".format(r["row"], r["error"]))
            continue
        print("{:<14} {:>6} {:>6} {:>5} {:>6} {:>5} {:>6} {:>7} {:>7.2f}s {:>6} {}".format(
            r["row"], r["sent"], r["predictions"], r["late_predictions"], r["defaults"],
            r["errors"],
            r["never_answered"], r["inside_frontend"], r["resume_s"],
            "intact" if r["state_intact"] else "LOST", "yes" if r["ok"] else "NO"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if a.check and not all(r.get("ok") for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
