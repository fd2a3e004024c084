#!/usr/bin/env python3
"""Plots of the benchmark suite's results (run by bench_suite.py with a
Python that has matplotlib, the benchmark venv's).

    python bench_plot.py results.json OUT_DIR

Writes OUT_DIR/latency.png, throughput.png, load.png, batching.png,
scaling.png, memory.png, pipeline.png (throughput by pipeline depth),
connections.png (by wrk connections), tail.png (p50/p99/p99.9 at 50% and
90% of saturation), large.png (MB/s of large inputs) and spread.png (the
main ratios over --runs), each from the figures in results.json only (a
plot whose figures are missing is not written).
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


def pipeline(s, out, title):
    f, e = s.get("floor"), s.get("e2e")
    if not (f and e and "nats_by_window" in e):
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, rows in f["nats_by_window"].items():
        ws = sorted(rows, key=int)
        ax.plot([int(w) for w in ws], [rows[w]["throughput_rps"] for w in ws], ":o",
                markersize=3, label="NATS echo (%s)" % mode)
    rows = e["nats_by_window"]
    ws = sorted(rows, key=int)
    ax.plot([int(w) for w in ws], [rows[w]["throughput_rps"] for w in ws], "-o", color="black",
            linewidth=2, label="no-op through the product")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("requests outstanding (clipper-bench --window)")
    ax.set_ylabel("requests/s")
    ax.set_title("NATS throughput by pipeline depth — " + title, fontsize=9)
    ax.legend(fontsize=7)
    save(fig, out, "pipeline.png")


def connections(s, out, title):
    f, e = s.get("floor"), s.get("e2e")
    if not (f and e and "http_by_connections" in e):
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, sc, style in (("HTTP floor", f, ":o"), ("no-op", e, "-o")):
        for kind, rows in sc["http_by_connections"].items():
            cs = sorted(rows, key=int)
            ax.plot([int(c) for c in cs], [rows[c]["rps"] for c in cs], style,
                    label="%s, wrk %s" % (name, "counting answers" if kind == "counted"
                                          else "without its hook"))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("wrk connections")
    ax.set_ylabel("requests/s")
    ax.set_title("HTTP throughput by connections — " + title, fontsize=9)
    ax.legend(fontsize=7)
    save(fig, out, "connections.png")


def least(rows, key):
    rows = [r for r in (rows or {}).values() if isinstance(r, dict) and r.get(key) is not None]
    return min(r[key] for r in rows) if rows else None


def tail(s, out, title):
    e = s.get("e2e")
    if not e or "nats_open_50" not in e or "p999_us" not in e["nats_open_50"]:
        return
    keys = (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, proto in zip(axes, ("NATS", "HTTP")):
        series = {"product (no-op)": [], "floor at the same rate": [],
                  "floor at the same share of its own saturation": []}
        labels = []
        for p in ("50", "90"):
            for k, name in keys:
                labels.append("%s\nat %s%%" % (name, p))
                if proto == "NATS":
                    mine = e.get("nats_open_%s_by_client" % p) or {"x": e.get("nats_open_" + p)}
                    series["product (no-op)"].append(least(mine, k))
                    series["floor at the same rate"].append(
                        least(e.get("floor_open_%s_by_mode" % p), k))
                    series["floor at the same share of its own saturation"].append(
                        (e.get("floor_own_open_" + p) or {}).get(k))
                else:
                    series["product (no-op)"].append((e.get("http_paced_" + p) or {}).get(k))
                    series["floor at the same rate"].append(
                        (e.get("http_floor_paced_" + p) or {}).get(k))
                    series["floor at the same share of its own saturation"].append(
                        (e.get("http_floor_own_paced_" + p) or {}).get(k))
        pos = list(range(len(labels)))
        width = 0.8 / len(series)
        for i, (name, vals) in enumerate(series.items()):
            ax.bar([x - 0.4 + width * (i + 0.5) for x in pos], [v or 0 for v in vals], width,
                   label=name)
        ax.set_xticks(pos)
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("latency (µs, log)")
        ax.set_title("%s (%s)" % (proto, "open loop" if proto == "NATS" else "paced wrk"),
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Tail at 50% and 90% of the product's saturation — " + title, fontsize=9)
    save(fig, out, "tail.png")


# PyTriton's bodies (bench_peers.py, scenarios.peers.large) that carry
# what the product's input types carry.
PEER_BODIES = {"bytes": ("u8_binary",), "doubles": ("fp64_binary", "fp64_json")}


def peer_mbps(peers, kind, n):
    """{series name: [MB/s]} of PyTriton for the product's input type kind,
    at its n sizes (bench_peers' sizes are KiB/MiB where the product's are
    KB/MB: paired by order), read defensively."""
    lg = peers.get("large") if isinstance(peers, dict) else None
    if not isinstance(lg, dict) or lg.get("skipped") or lg.get("failed"):
        return {}
    sizes = lg.get("sizes_bytes") or {}
    labels = sorted(sizes, key=lambda x: sizes[x])[:n]
    out = {}
    for body in PEER_BODIES.get(kind, ()):
        rows = lg.get(body)
        if not isinstance(rows, dict):
            continue
        vals = [(rows.get(x) or {}).get("mb_per_s") for x in labels]
        if any(v is not None for v in vals):
            out["PyTriton, %s (%s)" % (body, "/".join(labels))] = vals + [None] * (n - len(vals))
    return out


def large(s, out, title):
    lg = s.get("large")
    if not lg:
        return
    kinds = [k for k in ("bytes", "doubles") if any(x.startswith(k + "_") for x in lg)]
    if not kinds:
        return
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        sizes = [x for x in lg.get("sizes", []) if "%s_%s" % (kind, x) in lg]
        series = {"product over NATS": "nats_mbps", "NATS echo (floor)": "echo_mbps",
                  "product over HTTP": "http_mbps", "HTTP floor": "http_floor_mbps"}
        vals = {name: [lg["%s_%s" % (kind, x)].get(k) for x in sizes]
                for name, k in series.items()}
        vals.update(peer_mbps(s.get("peers"), kind, len(sizes)))
        pos = list(range(len(sizes)))
        width = 0.8 / max(len(vals), 1)
        for i, (name, v) in enumerate(vals.items()):
            ax.bar([x - 0.4 + width * (i + 0.5) for x in pos], [y or 0 for y in v], width,
                   label=name)
        ax.set_xticks(pos)
        ax.set_xticklabels(sizes)
        ax.set_yscale("log")
        ax.set_xlabel("raw input size (%s)" % ("bytes" if kind == "bytes" else
                                                "8 bytes a double"))
        ax.set_ylabel("MB/s of raw input (log)")
        ax.set_title("%s inputs" % kind, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Large inputs, best window / connections — " + title, fontsize=9)
    save(fig, out, "large.png")


MAIN_RATIOS = ("nats_throughput_vs_echo", "nats_p50_vs_echo", "http_throughput_vs_http_floor",
               "http_p50_vs_http_floor", "nats_p99_at_50%_vs_echo_same_rate",
               "nats_p999_at_50%_vs_echo_same_rate", "http_p99_at_50%_vs_http_floor_same_rate")


def spread(res, out, title):
    sp = (res.get("spread") or {}).get("ratios") or {}
    names = [n for n in MAIN_RATIOS if sp.get(n)] + sorted(
        n for n in sp if n.startswith("peers_") and sp[n])
    if not names:
        return
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(names) + 1.5))
    pos = list(range(len(names)))
    med = [sp[n]["median"] for n in names]
    ax.errorbar(med, pos, xerr=[[m - sp[n]["min"] for m, n in zip(med, names)],
                                [sp[n]["max"] - m for m, n in zip(med, names)]],
                fmt="o", capsize=4)
    for n, y in zip(names, pos):
        ax.plot(sp[n]["runs"], [y] * len(sp[n]["runs"]), "x", color="grey", markersize=4)
    ax.axvline(1, color="grey", linewidth=0.8)
    ax.set_yticks(pos)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("product / reference (median, range and each run)")
    ax.set_title("Main ratios over %d runs — %s" % (res["spread"].get("runs", 1), title),
                 fontsize=9)
    save(fig, out, "spread.png")


def main():
    res_path, out = sys.argv[1], sys.argv[2]
    with open(res_path) as f:
        res = json.load(f)
    m = res["machine"]
    title = "%d cores, %s" % (m["cores"], res["started"][:10])
    s = res["scenarios"]
    for plot in (latency_and_throughput, load, batching, scaling, memory, pipeline, connections,
                 tail, large):
        plot(s, out, title)
    spread(res, out, title)
    print("plots written to %s" % out)


if __name__ == "__main__":
    main()
