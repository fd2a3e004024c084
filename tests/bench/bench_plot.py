#!/usr/bin/env python3
"""Plots of the benchmark suite's results (run by bench_suite.py with a
Python that has matplotlib, the benchmark venv's).

    python bench_plot.py results.json OUT_DIR

Writes OUT_DIR/latency.png, throughput.png, load.png, batching.png,
scaling.png and memory.png, each from the figures in results.json only.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, out, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=110)
    plt.close(fig)


def bars(ax, labels, values, fmt, color):
    pos = range(len(labels))
    b = ax.bar(pos, values, color=color)
    ax.set_xticks(list(pos))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    for rect, v in zip(b, values):
        ax.annotate(fmt % v, (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center", va="bottom", fontsize=8)


def latency_and_throughput(s, out, title):
    f, e, r = s.get("floor"), s.get("e2e"), s.get("ray", {})
    if not (f and e):
        return
    rows = [("NATS echo\n(floor)", f["nats_sequential"], f["nats_pipelined"]["throughput_rps"]),
            ("no-op\nover NATS", e["nats_sequential"], e["nats_pipelined"]["throughput_rps"]),
            ("HTTP reply\n(floor)", f["http_light"], f["http_saturation"]["rps"]),
            ("no-op\nover HTTP", e["http_light"], e["http_saturation"]["rps"])]
    if "noop_light" in r:
        rows.append(("Ray Serve\nno-op HTTP", r["noop_light"], r["noop_saturation"]["rps"]))
    labels = [x[0] for x in rows]
    fig, ax = plt.subplots(figsize=(8, 4))
    pos = list(range(len(rows)))
    ax.bar([p - 0.2 for p in pos], [x[1]["p50_us"] for x in rows], 0.4, label="p50")
    ax.bar([p + 0.2 for p in pos], [x[1]["p99_us"] for x in rows], 0.4, label="p99")
    for p, x in zip(pos, rows):
        ax.annotate("%d" % x[1]["p50_us"], (p - 0.2, x[1]["p50_us"]), ha="center", va="bottom",
                    fontsize=8)
    ax.set_xticks(pos)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency at light load (µs, log)")
    ax.set_title("Latency, one request at a time — " + title, fontsize=9)
    ax.legend()
    save(fig, out, "latency.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    bars(ax, [x[0].replace("\n", " ") for x in rows], [x[2] for x in rows], "%.0f", "tab:green")
    ax.set_yscale("log")
    ax.set_ylabel("requests/s at saturation (log)")
    ax.set_title("Throughput at saturation — " + title, fontsize=9)
    save(fig, out, "throughput.png")


def load(s, out, title):
    f, e = s.get("floor"), s.get("e2e")
    if not e:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, keys, sat in (("no-op over NATS (open loop)", ("nats_open_50", "nats_open_90"),
                             e["nats_pipelined"]["throughput_rps"]),
                            ("no-op over HTTP (paced wrk)", ("http_paced_50", "http_paced_90"),
                             e["http_saturation"]["rps"])):
        light = e["nats_sequential"] if "NATS" in name else e["http_light"]
        pts = [(0, light["p50_us"], light["p99_us"])]
        for k in keys:
            o = e[k]
            rate = o.get("send_rate") or o.get("rps")
            pts.append((rate / sat, o["p50_us"], o["p99_us"]))
        ax.plot([p[0] * 100 for p in pts], [p[1] for p in pts], "o-", label=name + " p50")
        ax.plot([p[0] * 100 for p in pts], [p[2] for p in pts], "x--", label=name + " p99")
    if f and "floor_open_50" in e:
        pts = [(0, f["nats_sequential"]["p50_us"])] + [
            (e["floor_open_%s" % k]["send_rate"] / e["nats_pipelined"]["throughput_rps"],
             e["floor_open_%s" % k]["p50_us"]) for k in ("50", "90")]
        ax.plot([p[0] * 100 for p in pts], [p[1] for p in pts], "s:", color="grey",
                label="NATS echo (floor) at the same rates, p50")
    ax.set_xlabel("offered load (% of the no-op's saturation throughput)")
    ax.set_ylabel("latency (µs, log)")
    ax.set_yscale("log")
    ax.set_title("Latency under load — " + title, fontsize=9)
    ax.legend(fontsize=7)
    save(fig, out, "load.png")


def batching(s, out, title):
    b = s.get("batching")
    if not b:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, key in (("adaptive batching", "adaptive"), ("batch_size=1", "batch_size_1")):
        steps = b[key]["steps"]
        ax.plot([x["rate"] for x in steps], [x["goodput_rps"] for x in steps], "o-", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (queries/s, open loop)")
    ax.set_ylabel("predictions within the 20 ms SLO per s")
    ax.set_title("Model of 5 ms + 0.05 ms per input: %.0fx — %s" % (b["ratio"], title), fontsize=9)
    ax.legend()
    save(fig, out, "batching.png")


def scaling(s, out, title):
    c = s.get("scaling")
    if not c:
        return
    ns = [1, 2, 4]
    got = [c["replicas_%d" % n]["goodput_rps"] for n in ns]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, got, "o-", label="measured")
    ax.plot(ns, [got[0] * n for n in ns], ":", label="linear from 1 replica")
    ax.set_xticks(ns)
    ax.set_xlabel("replicas")
    ax.set_ylabel("predictions/s")
    ax.set_title("10 ms per batch, batch_size=1: %.2fx from 1 to 4 — %s" % (c["ratio_4_vs_1"], title),
                 fontsize=9)
    ax.legend()
    save(fig, out, "scaling.png")


def memory(s, out, title):
    m = s.get("memory")
    if not m:
        return
    roles = list(m["idle_rss_mb"])
    fig, ax = plt.subplots(figsize=(8, 4))
    pos = list(range(len(roles)))
    ax.bar([p - 0.2 for p in pos], [m["idle_rss_mb"][r] for r in roles], 0.4, label="idle")
    ax.bar([p + 0.2 for p in pos], [m["peak_rss_mb"].get(r, 0) for r in roles], 0.4,
           label="peak (after the load scenarios)")
    ax.set_xticks(pos)
    ax.set_xticklabels(roles, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("resident memory (MB)")
    ax.set_title("Resident memory per process — " + title, fontsize=9)
    ax.legend()
    save(fig, out, "memory.png")


def main():
    res_path, out = sys.argv[1], sys.argv[2]
    with open(res_path) as f:
        res = json.load(f)
    m = res["machine"]
    title = "%d cores, %s" % (m["cores"], res["started"][:10])
    s = res["scenarios"]
    for plot in (latency_and_throughput, load, batching, scaling, memory):
        plot(s, out, title)
    print("plots written to %s" % out)


if __name__ == "__main__":
    main()
