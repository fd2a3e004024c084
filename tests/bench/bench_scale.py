#!/usr/bin/env python3
"""Cost as work grows (issue 17, item 5): what a query, an admin command, a
frontend's view, the router and the memory of the cluster cost with 1, 100
and 1 000 applications, each with its own model version, and with 100
replicas of one model. The goal is a flat cost per query; this measures
whether it is, and where it is not.

One local cluster (LocalContainerManager, an open bus, cache_size=0, a
cluster name of its own), the same no-op closures and the same C load
generator as bench_suite.py (clipper-bench over NATS):

 1. 100 replicas of one model ("wide", --replicas): the no-op's sequential
    p50 and pipelined throughput (window 256) with 1 replica, then with
    --replicas; the routers' and every actor's CPU over an idle interval,
    the bus traffic that reaches the router (heartbeats, pulls, router
    hellos), and resident memory. The version is then deleted. These
    figures also say what one idle replica costs (private memory, and CPU
    of the replica and of nats-server), which decides how many replicas
    the applications below get.
 2. For each N of --counts (ascending, one cluster: the applications of
    the smaller N stay): applications app0..app<N-1>, each linked to its own
    model m<i> version 1 (a closure answering str(i)). R(N) of them have one
    replica each, R(N) = min(N, as many as fit): all of them while they fit,
    then the ones that have one already and, of the new ones, as many as fit
    spread evenly, the last registered included. The rest have a registered
    version with no replica (a query gets the default output at once: the
    router answers "no replica"). Registering them uses the admin commands
    deploy_python_closure sends (add_app, the artifact upload, add_model
    with no replica, add_model_links) without its client-side
    get_all_models and its wait, and times each command for every
    application added: admin command latency against the number of
    applications already there. Then set_num_replicas gives the chosen
    versions their replica (after the timed commands, so that no replica
    starting competes with them), and the leading router must count them
    all live. Then, at size N:
      * memory: VmRSS, PSS and private memory (smaps_rollup) of every
        process; per application: the growth of the actors' RSS (frontend,
        routers, admin, manager, supervisor, nats-server) over the cluster
        with no application divided by N, and (cleaner) the growth from the
        previous size to the new applications registered before their
        replicas start, per application added, with the rest of the growth
        per replica started; per replica: its own RSS, PSS and private
        memory;
      * idle load: every actor's CPU (the run time of its threads,
        /proc/<pid>/task/*/schedstat) over 10 s with no queries, then the
        bus traffic of that
        idleness counted by a subscriber to <p>.> (the product's own bus
        binding, clipper_admin._bus): heartbeats (<p>.replica.hb.>), pulls
        (<p>.route.pull.>) and router hellos (<p>.route.hello), the three
        kinds of message that reach the leading router when nothing is
        queried. nats-server of `clipper start` has no monitoring port, so
        the subscriber is the count. Bytes are the payload plus the
        subject; the wire adds the MSG line's framing (about 16 bytes);
      * queries, over NATS on <p>.predict.<app>: clipper-bench takes one
        subject, so the sequential p50 is measured by several short runs,
        one per application of a sample spread over the applications with a
        replica (the first and the last registered among them), and the
        pipelined throughput (window 256) on the first and the last; the
        actors' CPU during the pipelined runs; and the p50 of an
        application with no replica (its default output), when there is one;
      * admin commands at size N, each the median of --admin-reps: add_app
        (register_application), get_application (get_app_info),
        get_all_applications (get_all_apps, plain and verbose),
        get_all_models, deploy_python_closure of a new version with one
        replica until it is ready (with the time of each admin command it
        sent), add_model_links (link_model_to_app), and the clean-up
        (stop_versioned_models, unregister_application);
      * the frontend's view: from register_application returning to the
        first query for that app answered with anything but "Unknown
        application", and from link_model_to_app returning to the first
        prediction of the linked model (polling over NATS as fast as one
        client can). A frontend that misses an app in its view reads the
        store itself (bounded by a token bucket, docs/architecture.md), so
        these are what a client sees. The view alone (the KV watch, no
        read of the store) is measured too: from the return of
        register_application to the app appearing in the frontend's
        metrics (GET /metrics, which lists the apps of the view), with the
        time of one scrape, which bounds the resolution (the app has always
        been there at the first scrape: this is an upper bound);
      * bus messages per command: a second connection subscribed to '>'
        counts what one add_app, artifact upload, add_model, link,
        get_application, get_all_applications, get_all_models, delete and
        one query put on the bus (requests to the JetStream API, key
        listings, replies): a command whose count grows with N makes a
        round trip per application or key;
      * with --perf, where the leading router and the frontend spend a
        pipelined run on the last registered app (perf record with DWARF
        call graphs; the top functions by their own and inclusive time).

The machine is shared: its load average at the start and the end is in the
results. Writes <out>/scale.json and, with --plot-python (a Python with
matplotlib), <out>/scale_*.png (p50, throughput, memory, heartbeats,
idle_cpu, view, admin, bus_per_command, setup). The full run (1, 100,
1000 and 100 replicas, --perf) takes about 9 minutes on 2 cores. Usage:

    PYTHONPATH=build/deployers CLIPPER_BIN=build/actors/cli/clipper \\
    python3 tests/bench/bench_scale.py --bench build/tests/bench/clipper-bench \\
        --out docs/bench [--counts 1,100,1000] [--replicas 100] [--quick] [--perf] \\
        [--plot-python build/bench-venv/bin/python]
"""
import argparse
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The actors whose memory is shared by every application (not replicas).
ACTORS = ("frontend", "router (leader)", "router (standby)", "admin", "manager",
          "clipper start (supervisor)", "nats-server")


def log(msg):
    print("[scale %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def const_model(value):
    """A no-op closure that answers value: each application's own model,
    whose answer says which model answered."""
    def predict(xs):
        return [value] * len(xs)
    return predict


def noop(xs):
    return ["1.0"] * len(xs)


# ---- /proc ----------------------------------------------------------------------

def cpu_s(pid):
    """CPU seconds pid has used: the sum of its threads' run time in
    /proc/<pid>/task/*/schedstat (nanoseconds; utime+stime of
    /proc/<pid>/stat count in clock ticks, 10 ms, too coarse for an idle
    actor over a few seconds), or utime+stime when schedstat is missing;
    None when the process is gone. A thread that ends between two readings
    takes its time with it: the actors' threads live as long as they do."""
    try:
        total = 0
        tasks = os.listdir("/proc/%d/task" % pid)
        for tid in tasks:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        if tasks and total:
            return total / 1e9
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def smaps(pid):
    """{"rss_kb", "pss_kb", "private_kb"} of pid (smaps_rollup), or None."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        return None
    return {"rss_kb": out.get("Rss", 0), "pss_kb": out.get("Pss", 0),
            "private_kb": out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)}


def mem_available_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    return None


# ---- the measurements ---------------------------------------------------------------

class Scale:
    def __init__(self, args):
        self.args = args
        self.q = args.quick
        self.res = {"started": None, "quick": bool(args.quick), "counts": args.counts,
                    "wide": {}, "sizes": [], "setup": []}
        self.cm = self.conn = None
        self.n_apps = 0          # applications app0..app<n_apps-1> registered
        self.served = []         # indices of the applications whose version has a replica
        self.cap = None          # replicas the applications may have (decided after 'wide')

    def dur(self, full, quick):
        return quick if self.q else full

    # -- cluster ------------------------------------------------------------------------
    def start_cluster(self):
        from bench_suite import free_port
        from clipper_admin import ClipperConnection, LocalContainerManager
        self.http_port = free_port()
        self.cm = LocalContainerManager(cluster_name="scale-%d" % os.getpid(),
                                        clipper_query_port=self.http_port,
                                        clipper_management_port=free_port(),
                                        prometheus_port=free_port(), insecure=True)
        self.conn = ClipperConnection(self.cm)
        # Every query is a model call (bench_suite.py says why).
        self.conn.start_clipper(cache_size=0)
        self.prefix = self.cm.prefix
        self.url = self.cm.bus_url
        log("cluster up: NATS %s, prefix %s, HTTP %d" % (self.url, self.prefix, self.http_port))

    def subj(self, app):
        return "%s.predict.%s" % (self.prefix, app)

    def routers(self):
        """{pid: leading} from every router's <p>.route.stats."""
        out = {}
        for raw in self.cm.bus.gather(self.prefix + ".route.stats", b"", 1000, 8):
            try:
                r = json.loads(raw.decode())["router"]
                out[int(r["pid"])] = bool(r["leading"])
            except (ValueError, KeyError, TypeError):
                pass
        return out

    def live_replicas(self):
        """Replicas the leading router would send work to, per version."""
        for raw in self.cm.bus.gather(self.prefix + ".route.stats", b"", 1000, 8):
            snap = json.loads(raw.decode())
            if snap.get("router", {}).get("leading"):
                return {"%s:%s" % (v["model"], v["version"]): v["replicas_live"]
                        for v in snap.get("versions", [])}
        return {}

    def wait_live(self, total, timeout_s):
        """Until the leading router counts `total` live replicas."""
        deadline = time.monotonic() + timeout_s
        while True:
            live = sum(self.live_replicas().values())
            if live >= total:
                return live
            if time.monotonic() > deadline:
                raise RuntimeError("only %d of %d replicas live after %.0f s"
                                   % (live, total, timeout_s))
            time.sleep(0.5)

    def roles(self):
        """{pid: role} with the routers told apart (leader / standby)."""
        from bench_suite import processes
        roles = processes(self.cm)
        leading = self.routers()
        for pid, role in roles.items():
            if role == "router":
                roles[pid] = "router (leader)" if leading.get(pid) else "router (standby)"
        return roles

    # -- memory, CPU, bus ------------------------------------------------------------------
    def memory(self):
        """Resident memory of every process; replicas summarised."""
        actors, reps = {}, []
        for pid, role in self.roles().items():
            m = smaps(pid)
            if m is None:
                continue
            if role.startswith("replica "):
                reps.append(m)
            else:
                key = role if role not in actors else "%s (pid %d)" % (role, pid)
                actors[key] = {k[:-3] + "_mb": round(v / 1024.0, 2) for k, v in m.items()}
        out = {"actors_mb": actors,
               "actors_rss_total_mb": round(sum(a["rss_mb"] for a in actors.values()), 2),
               "replicas": len(reps)}
        if reps:
            for k in ("rss_kb", "pss_kb", "private_kb"):
                vals = [r[k] for r in reps]
                name = k[:-3]
                out["replica_%s_mean_mb" % name] = round(statistics.mean(vals) / 1024.0, 2)
                out["replica_%s_total_mb" % name] = round(sum(vals) / 1024.0, 1)
        return out

    def cpu_over(self, seconds=None, during=None):
        """CPU share (cores) of each actor, and of all replicas together,
        over `seconds` of idleness or while during() runs."""
        roles = self.roles()
        c0 = {pid: cpu_s(pid) for pid in roles}
        t0 = time.monotonic()
        result = during() if during else time.sleep(seconds)
        dt = time.monotonic() - t0
        c1 = {pid: cpu_s(pid) for pid in roles}
        out, reps = {}, 0.0
        n_reps = 0
        for pid, role in roles.items():
            if c0[pid] is None or c1[pid] is None:
                continue
            share = (c1[pid] - c0[pid]) / dt
            if role.startswith("replica "):
                reps += share
                n_reps += 1
            else:
                out[role] = round(share, 4)
        out["replicas_total"] = round(reps, 4)
        out["replicas"] = n_reps
        out["seconds"] = round(dt, 2)
        return out, result

    def bus_load(self, seconds):
        """Messages and bytes a second on <p>.> while idle, by kind."""
        t0 = time.monotonic()
        msgs = self.cm.bus.listen(self.prefix + ".>", int(seconds * 1000), 10 ** 7)
        dt = time.monotonic() - t0
        kinds = {}
        skip = len(self.prefix) + 1
        for subject, data in msgs:
            rest = subject[skip:]
            if rest.startswith("replica.hb."):
                kind = "heartbeat"
            elif rest.startswith("route.pull."):
                kind = "pull"
            elif rest == "route.hello":
                kind = "router_hello"
            else:
                kind = rest.split(".")[0] + "." + (rest.split(".") + [""])[1]
            k = kinds.setdefault(kind, {"msgs": 0, "payload_bytes": 0, "bytes": 0})
            k["msgs"] += 1
            k["payload_bytes"] += len(data)
            k["bytes"] += len(data) + len(subject)
        out = {"seconds": round(dt, 2)}
        for kind, k in kinds.items():
            out[kind] = {"msgs_per_s": round(k["msgs"] / dt, 1),
                         "bytes_per_s": round(k["bytes"] / dt, 1),
                         "payload_bytes_per_s": round(k["payload_bytes"] / dt, 1),
                         "mean_payload_bytes": round(k["payload_bytes"] / k["msgs"], 1)}
        # What reaches the leading router when nothing is queried: every
        # heartbeat, every pull, every router's hello (its own included).
        to = [out[k] for k in ("heartbeat", "pull", "router_hello") if k in out]
        out["to_leading_router"] = {"msgs_per_s": round(sum(x["msgs_per_s"] for x in to), 1),
                                    "bytes_per_s": round(sum(x["bytes_per_s"] for x in to), 1)}
        return out

    def idle(self):
        secs = self.dur(10, 3)
        time.sleep(self.dur(3, 1))  # the replicas' start-up is over
        cpu, _ = self.cpu_over(secs)
        return {"cpu_cores": cpu, "bus": self.bus_load(self.dur(5, 2))}

    # -- queries ------------------------------------------------------------------------------
    def seq(self, app, count):
        from bench_suite import nats_bench
        return nats_bench(self.args, self.url, self.subj(app), "scale-seq-" + app, count=count,
                          window=0)["sequential"]

    def pipe(self, app, seconds):
        from bench_suite import nats_bench
        return nats_bench(self.args, self.url, self.subj(app), "scale-pipe-" + app, count=0,
                          window=256, seconds=seconds)["pipelined"]

    def warm(self, app, n=20):
        from bench_suite import nats_predict
        for _ in range(n):
            nats_predict(self.cm, app)

    def queries(self, served, unserved=None):
        """Sequential runs over a sample of the served apps, pipelined on
        the first and the last, and the p50 of an app with no replica."""
        k = min(len(served), self.dur(5, 3))
        idx = sorted({round(i * (len(served) - 1) / max(k - 1, 1)) for i in range(k)})
        sample = [served[i] for i in idx]
        count = self.dur(2000, 300)
        out = {"sample": sample, "sequential_count": count, "sequential": {}}
        for app in sample:
            self.warm(app)
            r = self.seq(app, count)
            out["sequential"][app] = r
            log("  %s: p50 %d us, p99 %d us, %d bad" % (app, r["p50_us"], r["p99_us"], r["bad"]))
        p50s = [r["p50_us"] for r in out["sequential"].values()]
        out["p50_us_median"] = median(p50s)
        out["p50_us_min"], out["p50_us_max"] = min(p50s), max(p50s)
        out["p99_us_median"] = median([r["p99_us"] for r in out["sequential"].values()])
        out["bad"] = sum(r["bad"] for r in out["sequential"].values())
        pipe_apps = [sample[0]] if (self.q or len(sample) == 1) else [sample[0], sample[-1]]
        secs = self.dur(4, 1.5)
        runs = {}

        def run_pipes():
            for app in pipe_apps:
                runs[app] = self.pipe(app, secs)
        cpu, _ = self.cpu_over(during=run_pipes)
        out["pipelined"] = runs
        out["throughput_rps_mean"] = round(statistics.mean(r["throughput_rps"]
                                                           for r in runs.values()), 1)
        out["pipelined_bad"] = sum(r["bad"] for r in runs.values())
        out["cpu_cores_during_pipelined"] = cpu
        for app, r in runs.items():
            log("  %s pipelined: %.0f/s, %d bad" % (app, r["throughput_rps"], r["bad"]))
        if unserved:
            r = self.seq(unserved, self.dur(1000, 200))
            out["no_replica_app"] = {"app": unserved, "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                                     "answers_default": r["bad"]}
        return out

    # -- 1. many replicas of one model ----------------------------------------------------------
    def wide(self):
        from clipper_admin.deployers import python as python_deployer
        n = self.args.replicas
        out = {"replicas": n}
        python_deployer.create_endpoint(self.conn, "wide", "doubles", noop, slo_micros=100000)
        self.warm("wide")
        for label, count in (("one", 1), ("many", n)):
            if count > 1:
                log("wide: %d replicas" % count)
                t0 = time.monotonic()
                self.conn._admin("set_num_replicas", {"model_name": "wide", "model_version": "1",
                                                      "num_replicas": count})
                self.wait_live(count, 60 + count)
                out["scale_up_s"] = round(time.monotonic() - t0, 2)
                self.warm("wide", 200)
            log("wide, %d replica(s): idle" % count)
            row = {"idle": self.idle(), "memory": self.memory()}
            log("wide, %d replica(s): queries" % count)
            seq = self.seq("wide", self.dur(3000, 500))
            secs = self.dur(5, 2)
            cpu, pipe = self.cpu_over(during=lambda: self.pipe("wide", secs))
            row.update(sequential=seq, pipelined=pipe, cpu_cores_during_pipelined=cpu)
            log("  p50 %d us, %.0f/s pipelined; leading router %.2f%% of a core idle" % (
                seq["p50_us"], pipe["throughput_rps"],
                100 * row["idle"]["cpu_cores"].get("router (leader)", 0)))
            out[label] = row
        one, many = out["one"], out["many"]
        out["throughput_ratio_many_vs_one"] = round(
            many["pipelined"]["throughput_rps"] / one["pipelined"]["throughput_rps"], 3)
        out["p50_ratio_many_vs_one"] = round(many["sequential"]["p50_us"] /
                                             one["sequential"]["p50_us"], 3)
        # What one more idle replica costs, from the difference.
        d = n - 1
        ic1, icn = one["idle"]["cpu_cores"], many["idle"]["cpu_cores"]
        per = {"replica_cpu_cores": (icn["replicas_total"] - ic1["replicas_total"]) / d,
               "nats_server_cpu_cores": (icn.get("nats-server", 0) - ic1.get("nats-server", 0)) / d,
               "leading_router_cpu_cores": (icn.get("router (leader)", 0) -
                                            ic1.get("router (leader)", 0)) / d,
               "private_mb": many["memory"]["replica_private_mean_mb"],
               "rss_mb": many["memory"]["replica_rss_mean_mb"],
               "pss_mb": many["memory"]["replica_pss_mean_mb"]}
        per["idle_cpu_cores_all"] = (sum(v for k, v in icn.items() if isinstance(v, float) and
                                         k not in ("seconds",)) -
                                     sum(v for k, v in ic1.items() if isinstance(v, float) and
                                         k not in ("seconds",))) / d
        out["per_idle_replica"] = {k: round(v, 5) for k, v in per.items()}
        log("wide: removing the version")
        t0 = time.monotonic()
        self.conn.stop_versioned_models({"wide": ["1"]})
        self.conn.unregister_application("wide")
        self.wait_no_replicas(60)
        out["teardown_s"] = round(time.monotonic() - t0, 2)
        self.res["wide"] = out

    def wait_no_replicas(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while any(r.startswith("replica ") for r in self.roles().values()):
            if time.monotonic() > deadline:
                raise RuntimeError("replicas still running %.0f s after their version was "
                                   "deleted" % timeout_s)
            time.sleep(0.5)

    def decide_cap(self):
        """How many of the applications get a replica: as many as fit in a
        third of the memory available now (by a replica's private memory)
        and in --replica-cpu-budget cores of idle load (a replica's own CPU
        and what it costs nats-server, both measured by 'wide'), or
        --max-app-replicas."""
        per = self.res["wide"]["per_idle_replica"]
        avail = mem_available_mb()
        by_mem = int(avail / 3 / max(per["private_mb"], 1.0))
        cpu_each = max(per["replica_cpu_cores"] + per["nats_server_cpu_cores"], 1e-5)
        by_cpu = int(self.args.replica_cpu_budget / cpu_each)
        cap = min(by_mem, by_cpu)
        if self.args.max_app_replicas is not None:
            cap = self.args.max_app_replicas
        self.cap = max(cap, 1)
        self.res["replica_cap"] = {
            "cap": self.cap, "by_memory": by_mem, "by_cpu": by_cpu,
            "mem_available_mb": round(avail), "memory_budget_mb": round(avail / 3),
            "replica_private_mb": per["private_mb"],
            "cpu_budget_cores": self.args.replica_cpu_budget,
            "idle_cpu_cores_per_replica_incl_nats": round(cpu_each, 5),
            "forced": self.args.max_app_replicas is not None}
        log("replicas for the applications: at most %d (memory allows %d, idle CPU %d)"
            % (self.cap, by_mem, by_cpu))

    # -- 2. N applications -------------------------------------------------------------------
    def add_apps(self, upto):
        """Registers app<i> with its own model m<i>, version 1, up to upto,
        timing every admin command; then gives the first self.cap versions
        one replica each (set_num_replicas), so that no replica starting
        up competes with the commands being timed."""
        from clipper_admin.clipper_admin import PYTHON_CLOSURE_RUNTIME
        from clipper_admin.deployers.python import pickled_with, serialize_function
        py_version, cp_version = pickled_with()
        times = {"add_app": [], "put_artifact": [], "add_model": [], "add_model_links": []}
        start, first_replica = self.n_apps, len(self.served)
        t_all = time.monotonic()
        for i in range(start, upto):
            app, model = "app%d" % i, "m%d" % i
            data = serialize_function(const_model(str(i)))
            t0 = time.monotonic()
            self.conn.register_application(app, "doubles", "None", 100000)
            t1 = time.monotonic()
            sha = self.cm.bus.put_artifact(model, "1", data)
            t2 = time.monotonic()
            self.conn._admin("add_model", {
                "model_name": model, "model_version": "1", "labels": [],
                "input_type": "doubles", "container_name": PYTHON_CLOSURE_RUNTIME,
                "model_data_path": "DEPRECATED", "batch_size": -1,
                "num_replicas": 0, "runtime": PYTHON_CLOSURE_RUNTIME,
                "artifact_sha256": sha, "artifact_size": len(data),
                "python_version": py_version, "cloudpickle_version": cp_version})
            t3 = time.monotonic()
            self.conn.link_model_to_app(app, model)
            t4 = time.monotonic()
            for k, v in (("add_app", t1 - t0), ("put_artifact", t2 - t1),
                         ("add_model", t3 - t2), ("add_model_links", t4 - t3)):
                times[k].append(v)
            if (i + 1) % 100 == 0:
                log("  %d applications registered" % (i + 1))
        self.n_apps = upto
        t_registered = time.monotonic()
        # Memory with the new applications and no new replica: what the
        # applications alone cost (size() compares it with the last size).
        time.sleep(self.dur(2, 1))
        self.mem_registered = self.memory()
        # Which of the new ones get a replica: all while the cap allows,
        # else as many as it allows spread evenly over them, the last one
        # included (an app at the end of the frontend's list of apps).
        budget, new = self.cap - len(self.served), upto - start
        if budget >= new:
            chosen = list(range(start, upto))
        elif budget == 1:
            chosen = [upto - 1]
        elif budget > 1:
            chosen = sorted({start + round(j * (new - 1) / (budget - 1)) for j in range(budget)})
        else:
            chosen = []
        for i in chosen:
            self.conn._admin("set_num_replicas", {"model_name": "m%d" % i, "model_version": "1",
                                                  "num_replicas": 1})
            self.served.append(i)
        # Medians per block of consecutive applications: the latency of
        # each command against how many applications were there already.
        n = upto - start
        block = max(1, min(100, n // 5)) if n >= 5 else 1
        blocks = []
        for b in range(0, n, block):
            row = {"apps_before": start + b, "apps": min(block, n - b)}
            for k, v in times.items():
                row[k + "_ms"] = round(1000 * median(v[b:b + block]), 3)
            blocks.append(row)
        self.res["setup"].extend(blocks)
        wanted = len(self.served)
        self.wait_live(wanted, 60 + wanted)
        return {"register_seconds": round(t_registered - t_all, 1),
                "replicas_started": wanted - first_replica,
                "replicas_ready_s": round(time.monotonic() - t_registered, 1)}

    def scrape_has(self, app):
        """(True when GET /metrics of the frontend lists app, the scrape's seconds)."""
        t0 = time.monotonic()
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.http_port,
                                    timeout=10) as r:
            body = r.read().decode("utf-8", "replace")
        return ('"%s' % app) in body or ("app_name=\"%s\"" % app) in body or \
            ("%s:" % app) in body, time.monotonic() - t0

    def poll_until(self, app, done, timeout_s=10.0):
        """Polls app over NATS until done(reply); (seconds, polls)."""
        t0 = time.monotonic()
        polls = 0
        body = b'{"input":[1.0,2.0]}'
        while True:
            polls += 1
            try:
                raw = self.cm.bus.request(self.subj(app), body, 2000)
                if done(json.loads(raw.decode())):
                    return time.monotonic() - t0, polls
            except Exception:  # noqa: BLE001 - a timeout is only one more poll
                pass
            if time.monotonic() - t0 > timeout_s:
                return None, polls

    def admin_at_size(self, n):
        """Admin command latencies and view update times at size n."""
        from clipper_admin.deployers import python as python_deployer
        reps = self.args.admin_reps or self.dur(5, 3)
        t = {k: [] for k in ("register_application", "get_app_info", "get_all_apps",
                             "get_all_apps_verbose", "get_all_models", "deploy_to_ready",
                             "link_model_to_app", "stop_versioned_models",
                             "unregister_application", "view_register_client_s",
                             "view_link_client_s", "view_register_metrics_s", "metrics_scrape_s")}
        breakdown = []
        polls = {"register": [], "link": [], "metrics_scrapes": []}

        def timed(key, fn, *a, **kw):
            t0 = time.monotonic()
            r = fn(*a, **kw)
            t[key].append(time.monotonic() - t0)
            return r

        real_admin = self.conn._admin
        for i in range(reps):
            app, model = "probe-a%d-%d" % (n, i), "probe-m%d-%d" % (n, i)
            timed("register_application", self.conn.register_application, app, "doubles",
                  "None", 100000)
            s, p = self.poll_until(app, lambda r: r.get("error") != "Unknown application")
            t["view_register_client_s"].append(s)
            polls["register"].append(p)
            timed("get_app_info", self.conn.get_app_info, app)
            timed("get_all_apps", self.conn.get_all_apps)
            timed("get_all_apps_verbose", self.conn.get_all_apps, True)
            timed("get_all_models", self.conn.get_all_models)
            # deploy_python_closure, with the time of each admin command it sends.
            sent = {}

            def counting(command, body, _sent=sent):
                t0 = time.monotonic()
                try:
                    return real_admin(command, body)
                finally:
                    c = _sent.setdefault(command, [0, 0.0])
                    c[0] += 1
                    c[1] += time.monotonic() - t0
            self.conn._admin = counting
            try:
                timed("deploy_to_ready", python_deployer.deploy_python_closure, self.conn, model,
                      1, "doubles", const_model("probe"))
            finally:
                self.conn._admin = real_admin
            breakdown.append({c: {"calls": v[0], "ms": round(1000 * v[1], 2)}
                              for c, v in sent.items()})
            timed("link_model_to_app", self.conn.link_model_to_app, app, model)
            s, p = self.poll_until(app, lambda r: r.get("default") is False)
            t["view_link_client_s"].append(s)
            polls["link"].append(p)
            timed("stop_versioned_models", self.conn.stop_versioned_models, {model: ["1"]})
            timed("unregister_application", self.conn.unregister_application, app)
        # The view alone: an app appearing in the frontend's metrics, which
        # list the view's apps and never read the store.
        for i in range(reps):
            app = "probe-v%d-%d" % (n, i)
            self.conn.register_application(app, "doubles", "None", 100000)
            t1 = time.monotonic()
            seen, scrapes = None, 0
            while time.monotonic() - t1 < 10:
                found, scrape = self.scrape_has(app)
                scrapes += 1
                t["metrics_scrape_s"].append(scrape)
                if found:
                    seen = time.monotonic() - t1
                    break
            # Found by the first scrape: the view had it within one scrape.
            t["view_register_metrics_s"].append(seen)
            polls["metrics_scrapes"].append(scrapes)
            self.conn.unregister_application(app)
        out = {}
        for k, v in t.items():
            ms = [1000 * x for x in v if x is not None]
            out[k + ("" if k.endswith("_s") else "_ms")] = {
                "median_ms": round(median(ms), 3) if ms else None,
                "min_ms": round(min(ms), 3) if ms else None,
                "max_ms": round(max(ms), 3) if ms else None, "n": len(ms),
                "failed": sum(1 for x in v if x is None)}
        out["deploy_admin_commands"] = breakdown
        out["view_polls"] = polls
        self.wait_no_replicas_of("probe-m", 30)
        return out

    def bus_messages(self, n, app):
        """The bus messages one admin command (and, to compare, one query)
        causes at size n, counted by a second connection subscribed to
        every subject ('>') while it runs, the cluster's idle traffic
        (heartbeats, pulls, hellos, statuses) left out: how many round
        trips to the state store (JetStream API requests, their replies on
        inboxes, key listings delivered to inboxes) each command makes."""
        import threading
        from clipper_admin._bus import Bus
        from clipper_admin.clipper_admin import PYTHON_CLOSURE_RUNTIME
        from clipper_admin.deployers.python import serialize_function
        data = serialize_function(const_model("spy"))
        a, m = "spy-a%d" % n, "spy-m%d" % n
        state = {}

        def add_model():
            self.conn._admin("add_model", {
                "model_name": m, "model_version": "1", "labels": [], "input_type": "doubles",
                "container_name": PYTHON_CLOSURE_RUNTIME, "model_data_path": "DEPRECATED",
                "batch_size": -1, "num_replicas": 0, "runtime": PYTHON_CLOSURE_RUNTIME,
                "artifact_sha256": state["sha"], "artifact_size": len(data)})

        def put():
            state["sha"] = self.cm.bus.put_artifact(m, "1", data)
        commands = [
            ("add_app", lambda: self.conn.register_application(a, "doubles", "None", 100000)),
            ("put_artifact", put), ("add_model", add_model),
            ("add_model_links", lambda: self.conn.link_model_to_app(a, m)),
            ("get_application", lambda: self.conn.get_app_info(a)),
            ("get_all_applications", lambda: self.conn.get_all_apps()),
            ("get_all_models", lambda: self.conn.get_all_models()),
            ("query " + app, lambda: self.cm.bus.request(self.subj(app), b'{"input":[1.0,2.0]}',
                                                          5000)),
            ("delete_model_links", lambda: self.conn.unlink_model_from_app(a, m)),
            ("delete_versioned_model", lambda: self.conn._admin(
                "delete_versioned_model", {"model_name": m, "model_version": "1"})),
            ("delete_app", lambda: self.conn.unregister_application(a))]
        background = ("replica.hb.", "route.pull.", "route.hello", "cm.hello", "sv.status")
        skip = len(self.prefix) + 1
        out = {}
        spy = Bus(self.url, prefix=self.prefix, name="scale-spy")
        try:
            for name, fn in commands:
                got = {}
                listen_ms = 3000 if n < 500 else 6000
                th = threading.Thread(target=lambda: got.update(
                    msgs=spy.listen(">", listen_ms, 10 ** 6)))
                th.start()
                time.sleep(0.4)  # subscribed
                t0 = time.monotonic()
                fn()
                took = time.monotonic() - t0
                th.join()
                kinds = {}
                for subject, body in got.get("msgs", []):
                    if subject.startswith(self.prefix + ".") and \
                            subject[skip:].startswith(background):
                        continue
                    if subject.startswith("$JS.API."):
                        kind = "$JS.API." + subject.split(".")[2]
                    elif subject.startswith("_INBOX."):
                        kind = "_INBOX (replies, key listings)"
                    elif subject.startswith("$KV."):
                        kind = "$KV (writes, watch deliveries, key listings)"
                    elif subject.startswith(self.prefix + "."):
                        kind = subject[skip:].split(".")[0]
                    else:
                        kind = subject.split(".")[0]
                    k = kinds.setdefault(kind, [0, 0])
                    k[0] += 1
                    k[1] += len(body)
                out[name] = {"ms": round(1000 * took, 2),
                             "msgs": sum(k[0] for k in kinds.values()),
                             "bytes": sum(k[1] for k in kinds.values()),
                             "by_kind": {k: {"msgs": v[0], "bytes": v[1]}
                                         for k, v in kinds.items()}}
        finally:
            spy.close()
        return out

    def wait_no_replicas_of(self, prefix, timeout_s):
        deadline = time.monotonic() + timeout_s
        while any(r.startswith("replica " + prefix) for r in self.roles().values()):
            if time.monotonic() > deadline:
                return
            time.sleep(0.3)

    def size(self, n, baseline):
        log("N=%d: registering applications %d..%d" % (n, self.n_apps, n - 1))
        row = {"apps": n}
        row["setup"] = self.add_apps(n)
        row["apps_with_replica"] = len(self.served)
        row["apps_without_replica"] = n - len(self.served)
        log("N=%d: %d with a replica; idle load" % (n, len(self.served)))
        row["idle"] = self.idle()
        row["memory"] = self.memory()
        m = row["memory"]
        m["split"] = self.memory_split(n, baseline, self.mem_registered, m,
                                       row["setup"]["replicas_started"])
        grow = m["actors_rss_total_mb"] - baseline["actors_rss_total_mb"]
        row["memory"]["actors_rss_growth_mb"] = round(grow, 2)
        row["memory"]["actors_rss_growth_kb_per_app"] = round(1024 * grow / n, 2)
        row["memory"]["actors_rss_growth_by_actor_mb"] = {
            a: round(v["rss_mb"] - baseline["actors_mb"].get(a, {}).get("rss_mb", 0), 2)
            for a, v in m["actors_mb"].items()}
        log("N=%d: queries" % n)
        served = ["app%d" % i for i in sorted(self.served)]
        have = set(self.served)
        unserved = next(("app%d" % i for i in range(n - 1, -1, -1) if i not in have), None)
        row["queries"] = self.queries(served, unserved)
        log("N=%d: admin commands and view updates" % n)
        row["admin"] = self.admin_at_size(n)
        a = row["admin"]
        log("  add_app %.1f ms, deploy %.0f ms, link %.1f ms, get_all_apps %.1f ms, view "
            "(client) %.1f ms, view (metrics) %.1f ms" % (
                a["register_application_ms"]["median_ms"], a["deploy_to_ready_ms"]["median_ms"],
                a["link_model_to_app_ms"]["median_ms"], a["get_all_apps_ms"]["median_ms"],
                a["view_register_client_s"]["median_ms"] or -1,
                a["view_register_metrics_s"]["median_ms"] or -1))
        log("N=%d: bus messages per command" % n)
        row["bus_messages_per_command"] = self.bus_messages(n, served[-1])
        log("  " + ", ".join("%s %d" % (k, v["msgs"])
                             for k, v in row["bus_messages_per_command"].items()))
        if self.args.perf:
            log("N=%d: profiles (perf)" % n)
            row["profile"] = self.profiles(n, served)
        self.res["sizes"].append(row)

    # -- where the time goes ----------------------------------------------------------------
    def perf_top(self, pids, during, tag, top=15):
        """Samples each of pids with perf (999 Hz, DWARF call graphs) while
        during() runs; for each pid the top symbols by their own time
        ("top_self", any library) and the product's functions by the time
        spent in them and what they call ("top_inclusive": a libc strcmp is
        counted in the function of ours that called it)."""
        procs = {}
        for pid in pids:
            path = os.path.join(self.args.out, "perf-%s-%d.data" % (tag, pid))
            procs[pid] = (path, subprocess.Popen(
                ["perf", "record", "-F", "999", "--call-graph", "dwarf", "-o", path,
                 "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)  # perf attached
        try:
            during()
        finally:
            for path, proc in procs.values():
                proc.send_signal(signal.SIGINT)
            for path, proc in procs.values():
                proc.wait(60)
        line = re.compile(r"^\s+([\d.]+)%\s+(?:([\d.]+)%\s+)?(\S+)\s+\[.\]\s+(.+?)(\s+-)*\s*$")
        out = {}
        for pid, (path, _) in procs.items():
            res = {}
            for key, extra in (("top_self", ["--no-children"]), ("top_inclusive", ["--children"])):
                rep = subprocess.run(["perf", "report", "-i", path, "--stdio", "-g", "none",
                                      "--sort", "dso,symbol", "--percent-limit", "0.5"] + extra,
                                     capture_output=True, text=True, timeout=600)
                rows = []
                for text in rep.stdout.splitlines():
                    m = line.match(text)
                    if not m:
                        continue
                    if key == "top_inclusive":
                        if m.group(3) != "clipper":
                            continue
                        rows.append([float(m.group(1)), m.group(4)])
                    else:
                        rows.append([float(m.group(1)), "%s %s" % (m.group(3), m.group(4))])
                res[key] = rows[:top if key == "top_self" else 2 * top]
                n_samples = re.search(r"# Samples: (\S+)", rep.stdout)
                res["samples"] = n_samples.group(1) if n_samples else None
            out[str(pid)] = res
            os.unlink(path)
        return out

    def profiles(self, n, served):
        """Where the leading router and the frontend spend a pipelined run
        at size n (an extra run after the measurements, so perf disturbs no
        figure). The admin is not profiled: it spends its time waiting for
        the state store, which bus_messages counts instead."""
        roles = self.roles()
        by_role = {r: p for p, r in roles.items()}
        out = {}
        hot = [by_role[r] for r in ("router (leader)", "frontend") if r in by_role]
        app = served[-1]
        prof = self.perf_top(hot, lambda: self.pipe(app, self.dur(4, 1.5)), "query")
        out["pipelined_" + app] = {roles[int(pid)]: v for pid, v in prof.items()}
        return out

    def memory_split(self, n, baseline, registered, final, replicas_added):
        """The actors' memory growth split in two: per application (from the
        last size, or the baseline, to the new applications registered with
        no new replica) and per replica (from there to the new replicas
        live). nats-server is shown apart: its RSS moves by megabytes with
        its garbage collector and its connections (one per replica), which
        makes a few applications' worth unreadable."""
        prev = self.res["sizes"][-1]["memory"] if self.res["sizes"] else baseline
        prev_n = self.res["sizes"][-1]["apps"] if self.res["sizes"] else 0
        added = n - prev_n

        def per(a, b, count):
            d = {k: round(1024 * (v["rss_mb"] - a["actors_mb"].get(k, {}).get("rss_mb", 0)) /
                          count, 2) for k, v in b["actors_mb"].items()}
            return d, round(sum(d.values()), 2), round(sum(v for k, v in d.items()
                                                          if k != "nats-server"), 2)
        out = {"apps_added": added, "replicas_added": replicas_added}
        out["kb_per_app_by_actor"], out["kb_per_app"], out["kb_per_app_without_nats_server"] = \
            per(prev, registered, added)
        if replicas_added:
            (out["actor_kb_per_replica_by_actor"], out["actor_kb_per_replica"],
             out["actor_kb_per_replica_without_nats_server"]) = per(registered, final,
                                                                  replicas_added)
        return out

    def per_app_slopes(self):
        """Memory per application between consecutive sizes."""
        rows = self.res["sizes"]
        for prev, cur in zip(rows, rows[1:]):
            d = cur["apps"] - prev["apps"]
            grow = cur["memory"]["actors_rss_total_mb"] - prev["memory"]["actors_rss_total_mb"]
            cur["memory"]["actors_rss_kb_per_app_since_previous"] = round(1024 * grow / d, 2)
            cur["memory"]["by_actor_kb_per_app_since_previous"] = {
                a: round(1024 * (v["rss_mb"] - prev["memory"]["actors_mb"].get(a, {}).get(
                    "rss_mb", 0)) / d, 2) for a, v in cur["memory"]["actors_mb"].items()}

    def flatness(self):
        """Each per-query figure at the largest size against the smallest."""
        rows = self.res["sizes"]
        if len(rows) < 2:
            return
        a, b = rows[0], rows[-1]
        f = {"from_apps": a["apps"], "to_apps": b["apps"]}

        def ratio(name, x, y):
            if x is not None and y:
                f[name] = round(x / y, 3)
        ratio("p50_ratio", b["queries"]["p50_us_median"], a["queries"]["p50_us_median"])
        ratio("throughput_ratio", b["queries"]["throughput_rps_mean"],
              a["queries"]["throughput_rps_mean"])
        ratio("leading_router_idle_cpu_ratio",
              b["idle"]["cpu_cores"].get("router (leader)"),
              a["idle"]["cpu_cores"].get("router (leader)"))
        for k in ("register_application_ms", "deploy_to_ready_ms", "link_model_to_app_ms",
                  "get_app_info_ms", "get_all_apps_ms", "view_register_client_s",
                  "view_link_client_s", "view_register_metrics_s"):
            ratio(k.replace("_ms", "").replace("_s", "") + "_ratio",
                  b["admin"][k]["median_ms"], a["admin"][k]["median_ms"])
        self.res["flatness"] = f

    def run(self):
        self.res["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        from bench_suite import machine
        self.res["machine"] = machine()
        # A shared machine: how busy it was says how far to trust a figure.
        self.res["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
        t_run = time.monotonic()
        self.start_cluster()
        try:
            time.sleep(2)
            self.res["empty"] = {"memory": self.memory(), "idle": self.idle()}
            if self.args.replicas > 0:
                log("wide: one model, 1 then %d replicas" % self.args.replicas)
                self.wide()
                self.decide_cap()
            else:
                self.cap = self.args.max_app_replicas or 1
            time.sleep(2)
            # The baseline of memory per application: no application, after 'wide'.
            base = self.memory()
            self.res["baseline_before_apps"] = base
            for n in self.args.counts:
                self.size(n, base)
            self.per_app_slopes()
            self.flatness()
        finally:
            t0 = time.monotonic()
            self.conn.stop_all()
            self.res["stop_all_s"] = round(time.monotonic() - t0, 1)
        self.res["wall_s"] = round(time.monotonic() - t_run, 1)
        self.res["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return self.res


# ---- report -------------------------------------------------------------------------------

def print_table(res):
    w = res.get("wide") or {}
    if w:
        print("\n%d replicas of one no-op model against 1:" % w["replicas"])
        for label in ("one", "many"):
            r = w[label]
            ic = r["idle"]["cpu_cores"]
            print("  %-5s p50 %6d us  p99 %6d us  %8.0f/s  idle: leading router %.2f%%, "
                  "nats-server %.2f%%, replicas %.2f%% of a core; to the router %.0f msgs/s "
                  "%.0f B/s" % (label, r["sequential"]["p50_us"], r["sequential"]["p99_us"],
                                r["pipelined"]["throughput_rps"],
                                100 * ic.get("router (leader)", 0), 100 * ic.get("nats-server", 0),
                                100 * ic["replicas_total"],
                                r["idle"]["bus"]["to_leading_router"]["msgs_per_s"],
                                r["idle"]["bus"]["to_leading_router"]["bytes_per_s"]))
        print("  per idle replica: %s" % json.dumps(w["per_idle_replica"]))
    if "replica_cap" in res:
        print("replicas for the applications: %s" % json.dumps(res["replica_cap"]))
    fmt = "%6s %6s %7s %7s %8s %7s %7s %7s %7s %8s %8s %8s %8s %8s %8s"
    print("\n" + fmt % ("apps", "w/rep", "p50 us", "p99 us", "req/s", "kB/app", "w/o nats",
                        "rtr %", "mgr %", "to rtr/s", "add_app", "add_mdl", "deploy",
                        "allapps", "view ms"))
    for r in res["sizes"]:
        q, a, m, i = r["queries"], r["admin"], r["memory"], r["idle"]
        bm = r.get("bus_messages_per_command", {}).get("add_model", {})
        print(fmt % (r["apps"], r["apps_with_replica"], q["p50_us_median"], q["p99_us_median"],
                     "%.0f" % q["throughput_rps_mean"], "%.1f" % m["split"]["kb_per_app"],
                     "%.1f" % m["split"]["kb_per_app_without_nats_server"],
                     "%.2f" % (100 * i["cpu_cores"].get("router (leader)", 0)),
                     "%.2f" % (100 * i["cpu_cores"].get("manager", 0)),
                     "%.0f" % i["bus"]["to_leading_router"]["msgs_per_s"],
                     "%.1f" % a["register_application_ms"]["median_ms"],
                     "%.1f" % bm.get("ms", -1),
                     "%.0f" % a["deploy_to_ready_ms"]["median_ms"],
                     "%.1f" % a["get_all_apps_ms"]["median_ms"],
                     "%.1f" % (a["view_register_client_s"]["median_ms"] or -1)))
    print("(kB/app: the actors' RSS growth per application added since the previous size, "
          "before any new replica; rtr %, mgr %: idle CPU of the leading router and the "
          "manager, % of a core; add_mdl: one add_model, no replica)")
    for r in res["sizes"]:
        print("bus messages per command at %d apps: %s" % (r["apps"], ", ".join(
            "%s %d" % (k, v["msgs"]) for k, v in r.get("bus_messages_per_command", {}).items())))
    if "flatness" in res:
        print("\nlargest / smallest size: %s" % json.dumps(res["flatness"]))
    print("wall time %.0f s" % res.get("wall_s", 0))


# ---- plots (run with --plot-python: needs only matplotlib) -----------------------------------

def plot(path, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(path) as f:
        res = json.load(f)
    rows = res["sizes"]
    if not rows:
        return
    ns = [r["apps"] for r in rows]
    title = "%s, %d cores" % (res["machine"]["cpu"][:30], res["machine"]["cores"])

    def fig(name, series, ylabel, what, logy=False):
        f, ax = plt.subplots(figsize=(6.5, 4))
        for label, ys, style in series:
            pts = [(n, y) for n, y in zip(ns, ys) if y is not None and (y > 0 or not logy)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
                for x, y in pts:
                    ax.annotate("%.3g" % y, (x, y), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("applications, each with its own model version (log)")
        ax.set_ylabel(ylabel)
        ax.set_title("%s — %s" % (what, title), fontsize=9)
        if not logy:
            ax.set_ylim(bottom=min([0] + [y for _, ys, _ in series for y in ys
                                          if y is not None]))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:  # e.g. memory per application with no size of 50 or more
            ax.text(0.5, 0.5, "no figure at these sizes", ha="center", transform=ax.transAxes)
        f.tight_layout()
        f.savefig(os.path.join(out, name), dpi=110)
        plt.close(f)

    fig("scale_p50.png",
        [("p50, median over the sampled apps", [r["queries"]["p50_us_median"] for r in rows], "o-"),
         ("p99, median", [r["queries"]["p99_us_median"] for r in rows], "s--"),
         ("p50 of an app with no replica (default)",
          [r["queries"].get("no_replica_app", {}).get("p50_us") for r in rows], "^:")],
        "latency, one query at a time (µs)", "Query latency over NATS")
    def pipe_at(r, which):
        runs = r["queries"]["pipelined"]
        app = r["queries"]["sample"][0 if which == "first" else -1]
        return runs[app]["throughput_rps"] if app in runs else None
    fig("scale_throughput.png",
        [("app0, the first registered", [pipe_at(r, "first") for r in rows], "o-"),
         ("the last registered with a replica", [pipe_at(r, "last") for r in rows], "s-")],
        "queries a second (pipelined, window 256, one replica)", "Throughput")
    def split(r, k):
        sp = r["memory"].get("split") or {}
        # One or a few applications are below the noise of nats-server's RSS.
        return sp.get(k) if sp.get("apps_added", 0) >= 50 else None
    fig("scale_memory.png",
        [("all actors, new apps registered, no new replica",
          [split(r, "kb_per_app") for r in rows], "o-"),
         ("the same without nats-server", [split(r, "kb_per_app_without_nats_server")
                                           for r in rows], "s-"),
         ("actors' RSS growth / N, replicas included",
          [r["memory"]["actors_rss_growth_kb_per_app"] if r["apps"] >= 50 else None
           for r in rows], "^--")],
        "kB per application (RSS)", "Memory per application (actors)")
    fig("scale_heartbeats.png",
        [("msgs/s reaching the leading router (heartbeats, pulls, hellos)",
          [r["idle"]["bus"]["to_leading_router"]["msgs_per_s"] for r in rows], "o-"),
         ("leading router's idle CPU (% of a core × 100)",
          [100 * 100 * r["idle"]["cpu_cores"].get("router (leader)", 0) for r in rows], "s--")],
        "per second", "Idle load on the router")
    fig("scale_view.png",
        [("register → query not 'unknown' (client)",
          [r["admin"]["view_register_client_s"]["median_ms"] for r in rows], "o-"),
         ("link → first prediction (client)",
          [r["admin"]["view_link_client_s"]["median_ms"] for r in rows], "s-"),
         ("register → app in the view (metrics)",
          [r["admin"]["view_register_metrics_s"]["median_ms"] for r in rows], "^--"),
         ("one metrics scrape",
          [r["admin"]["metrics_scrape_s"]["median_ms"] for r in rows], "x:")],
        "ms", "Frontend view update", logy=True)
    fig("scale_admin.png",
        [(k, [r["admin"][k + "_ms"]["median_ms"] for r in rows], s)
         for k, s in (("register_application", "o-"), ("get_app_info", "s-"),
                      ("get_all_apps", "^-"), ("get_all_models", "v-"),
                      ("link_model_to_app", "d-"), ("deploy_to_ready", "x--"))],
        "ms (median)", "Admin commands at size N", logy=True)
    roles = ("router (leader)", "router (standby)", "frontend", "admin", "manager",
             "nats-server")
    fig("scale_idle_cpu.png",
        [(role, [100 * r["idle"]["cpu_cores"].get(role, 0) for r in rows], "o-")
         for role in roles] +
        [("all replicas", [100 * r["idle"]["cpu_cores"]["replicas_total"] for r in rows], "s--")],
        "% of a core, no queries (log)", "Idle CPU of each actor", logy=True)
    cmds = [k for k in (rows[-1].get("bus_messages_per_command") or {}) if k != "put_artifact"]
    if cmds:
        fig("scale_bus_per_command.png",
            [(k if not k.startswith("query") else "one query",
              [(r.get("bus_messages_per_command") or {}).get(k, {}).get("msgs") if
               not k.startswith("query") else
               next((v["msgs"] for c, v in (r.get("bus_messages_per_command") or {}).items()
                     if c.startswith("query")), None) for r in rows], "o-")
             for k in cmds],
            "bus messages", "Bus messages one command causes", logy=True)
    setup = res.get("setup") or []
    if setup:
        f, ax = plt.subplots(figsize=(6.5, 4))
        xs = [max(s["apps_before"], 1) for s in setup]
        for k in ("add_app", "put_artifact", "add_model", "add_model_links"):
            ax.plot(xs, [s[k + "_ms"] for s in setup], ".-", label=k)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("applications already registered (log)")
        ax.set_ylabel("ms (median of each block)")
        ax.set_title("Registering the applications — " + title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        f.tight_layout()
        f.savefig(os.path.join(out, "scale_setup.png"), dpi=110)
        plt.close(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="path of the clipper-bench program")
    ap.add_argument("--out", default="bench-results", help="directory for scale.json and plots")
    ap.add_argument("--counts", default="1,100,1000",
                    help="numbers of applications, comma-separated (default 1,100,1000)")
    ap.add_argument("--replicas", type=int, default=100,
                    help="replicas of one model for the 'wide' part (0 skips it; default 100)")
    ap.add_argument("--max-app-replicas", type=int,
                    help="replicas the applications get at most (default: as many as fit, "
                         "decided from what 'wide' measured)")
    ap.add_argument("--replica-cpu-budget", type=float, default=0.5,
                    help="cores of idle load the applications' replicas may cost (default 0.5)")
    ap.add_argument("--admin-reps", type=int, help="repetitions of each admin command "
                    "(default 5, 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test, not figures)")
    ap.add_argument("--perf", action="store_true",
                    help="at each size, also profile (perf record) the leading router and the "
                         "frontend in a pipelined run")
    ap.add_argument("--plot-python", help="python with matplotlib for the plots")
    ap.add_argument("--plot-only", metavar="SCALE_JSON", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plot_only:
        plot(args.plot_only, args.out)
        return 0
    if not args.bench:
        ap.error("--bench is required")
    try:
        args.counts = sorted({int(x) for x in args.counts.split(",") if x.strip()})
    except ValueError:
        ap.error("--counts takes numbers, such as 1,100,1000")
    if not args.counts or args.counts[0] < 1:
        ap.error("--counts takes positive numbers")
    os.makedirs(args.out, exist_ok=True)
    sys.path.insert(0, HERE)
    # One line per application registered would drown the progress lines.
    logging.getLogger("clipper_admin").setLevel(logging.WARNING)

    res = Scale(args).run()
    path = os.path.join(args.out, "scale.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print_table(res)
    if args.plot_python and os.path.exists(args.plot_python):
        subprocess.run([args.plot_python, os.path.abspath(__file__), "--plot-only", path,
                        "--out", args.out], check=True)
    print("raw results: %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
