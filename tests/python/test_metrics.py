"""Metrics end to end on a real cluster: Clipper's JSON on GET /metrics of
the query port (what inspect_instance() reads), the Prometheus text format
on the metrics port (get_metric_addr()), linted by promtool, and scraped by
a real Prometheus server."""
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from clipper_admin.deployers import python as python_deployer

from conftest import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def picky(xs):
    if any(x[0] < 0 for x in xs):
        raise ValueError("negative input is not allowed")
    return [str(x[0] * 2) for x in xs]


@pytest.fixture(scope="module")
def traffic(cluster):
    """Sends a known mix of queries once; returns what each metric must say."""
    served = unique("served")
    nolink = unique("nolink")
    python_deployer.create_endpoint(cluster.conn, served, "doubles", picky,
                                    default_output="-1.0", slo_micros=3000000)
    cluster.conn.register_application(nolink, "doubles", "-1.0", 100000)
    for x in (1.0, 2.0, 3.0):  # predicted (distinct inputs: no cache hit)
        status, reply = cluster.http("/{}/predict".format(served), {"input": [x]})
        assert status == 200 and reply["default"] is False, reply
    status, reply = cluster.http("/{}/predict".format(served), {"input": [-1.0]})
    assert status == 500 and reply["error"] == "Model error", reply
    for _ in range(2):  # default: no model linked
        status, reply = cluster.http("/{}/predict".format(nolink), {"input": [1.0]})
        assert status == 200 and reply["default"] is True, reply
    status, _ = cluster.http("/{}/predict".format(served), b"{not json")
    assert status == 400
    status, _ = cluster.http("/{}/predict".format(unique("nosuchapp")), {"input": [1.0]})
    assert status == 404
    return {"served": served, "nolink": nolink}


# ---- Clipper's JSON ---------------------------------------------------------

def entries(doc, category):
    """{name: fields} of one category of Clipper's metrics document."""
    out = {}
    for e in doc[category]:
        out.update(e)
    return out


def test_inspect_instance_has_clippers_names_and_counts(cluster, traffic):
    served, nolink = traffic["served"], traffic["nolink"]
    doc = cluster.conn.inspect_instance()
    assert list(doc) == ["counters", "ratio_counters", "meters", "histograms"]
    counters = entries(doc, "counters")
    ratios = entries(doc, "ratio_counters")
    meters = entries(doc, "meters")
    hists = entries(doc, "histograms")
    # Every leaf is a string, as Clipper's property-tree writer made them.
    for cat in (counters, ratios, meters, hists):
        for fields in cat.values():
            assert all(isinstance(v, str) for v in fields.values()), fields

    assert counters["app:{}:num_predictions".format(served)]["count"] == "4"
    assert counters["app:{}:num_predictions".format(nolink)]["count"] == "2"
    assert ratios["app:{}:default_prediction_ratio".format(nolink)]["ratio"] == "1"
    assert ratios["app:{}:default_prediction_ratio".format(served)]["ratio"] == "0"
    assert "app:{}:prediction_throughput".format(served) in meters
    lat = hists["app:{}:prediction_latency".format(served)]
    assert lat["unit"] == "microseconds" and lat["size"] == "4"
    assert int(counters["internal:aggregate_num_predictions"]["count"]) >= 6

    model = "model:{}:1".format(served)
    assert counters[model + ":num_predictions"]["count"] == "4"
    assert model + ":prediction_throughput" in meters
    assert hists[model + ":prediction_latency"]["size"] == "4"
    assert model + ":cache_hit_ratio" in ratios
    # From the router's snapshot: 4 tasks went out in batches.
    batch = hists[model + ":batch_size"]
    assert batch["unit"] == "queries"
    assert 1 <= int(batch["size"]) <= 4 and 1 <= float(batch["mean"]) <= 4
    delay = hists["internal:rpc_request_queueing_delay"]
    assert delay["unit"] == "microseconds" and int(delay["size"]) >= 4
    for name in ("internal:prediction_cache_lookups",):
        assert name in counters
    assert "internal:prediction_cache_hit_ratio" in ratios
    assert "internal:aggregate_model_throughput" in meters


# ---- Prometheus text ----------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prom(text):
    """{(name, frozenset(labels)): value}, checking every line's syntax."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert line == "" or re.match(r"^# (HELP|TYPE) \S+ ", line), line
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: {!r}".format(line)
        labels = {}
        body = m.group(2) or ""
        pos = 0
        while pos < len(body):
            lm = LABEL.match(body, pos)
            assert lm, "bad labels in {!r}".format(line)
            labels[lm.group(1)] = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n"
                                         else e.group(1), lm.group(2))
            pos = lm.end()
        samples[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return samples


def get_prom(cluster):
    url = "http://{}/metrics".format(cluster.conn.get_metric_addr())
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return r.read().decode("utf-8")


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in samples, "no sample {} {}".format(name, labels)
    return samples[key]


def test_prometheus_text_counts_the_queries_and_passes_promtool(cluster, traffic):
    served, nolink = traffic["served"], traffic["nolink"]
    text = get_prom(cluster)
    s = parse_prom(text)
    assert value(s, "clipper_queries_total", app=served) == 4
    assert value(s, "clipper_queries_total", app=nolink) == 2
    assert value(s, "clipper_default_outputs_total", app=nolink, reason="no_model") == 2
    assert value(s, "clipper_default_outputs_total", app=served, reason="no_model") == 0
    assert value(s, "clipper_default_outputs_total", app=served, reason="slo") == 0
    assert value(s, "clipper_query_errors_total", app=served, kind="bad_request") == 1
    assert value(s, "clipper_query_errors_total", app=served, kind="model_error") == 1
    assert value(s, "clipper_query_errors_total", app="", kind="unknown_app") >= 1
    assert value(s, "clipper_query_latency_seconds_count", app=served) == 4
    assert value(s, "clipper_query_latency_seconds_bucket", app=served, le="+Inf") == 4
    assert value(s, "clipper_model_predictions_total", model=served, version="1") == 4
    assert value(s, "clipper_model_latency_seconds_count", model=served, version="1") == 4
    assert value(s, "clipper_cache_lookups_total", model=served, version="1") >= 0
    assert value(s, "clipper_router_up") == 1
    assert value(s, "clipper_replicas_live", model=served, version="1") == 1
    assert value(s, "clipper_queue_depth", model=served, version="1") == 0
    assert value(s, "clipper_tasks_dispatched_total", model=served, version="1") == 4
    assert value(s, "clipper_tasks_shed_total", model=served, version="1") == 0
    assert value(s, "clipper_tasks_expired_total", model=served, version="1") == 0
    assert value(s, "clipper_batch_size_sum", model=served, version="1") == 4
    assert value(s, "clipper_router_queueing_delay_seconds_count", model=served,
                 version="1") == 4
    assert [k for k in s if k[0] == "clipper_frontend_info"], "no clipper_frontend_info"

    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip("promtool is not installed ({}); .ci/setup installs the Debian "
                    "prometheus package".format(PROMTOOL))
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert lint.returncode == 0, lint.stdout.decode()
    assert lint.stdout.decode().strip() == "", lint.stdout.decode()


def test_prometheus_port_refuses_other_paths_and_methods(cluster, traffic):
    addr = cluster.conn.get_metric_addr()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen("http://{}/other".format(addr), timeout=10)
    assert e.value.code == 404
    req = urllib.request.Request("http://{}/metrics".format(addr), data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
    # And it still serves.
    assert "clipper_queries_total" in get_prom(cluster)


# ---- a real Prometheus ------------------------------------------------------

def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read().decode())


def test_a_real_prometheus_scrapes_the_frontend(cluster, traffic, tmp_path):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("{} is not installed; .ci/setup installs the Debian prometheus "
                    "package".format(PROMETHEUS))
    served = traffic["served"]
    target = cluster.conn.get_metric_addr()
    web = "127.0.0.1:{}".format(free_port())
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: clipper\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
        "    static_configs:\n      - targets: ['{}']\n".format(target))
    log = open(str(tmp_path / "prometheus.log"), "wb")
    proc = subprocess.Popen(
        [PROMETHEUS, "--config.file={}".format(config),
         "--storage.tsdb.path={}".format(tmp_path / "data"),
         "--web.listen-address={}".format(web)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, "prometheus exited: {}".format(
                (tmp_path / "prometheus.log").read_text()[-2000:])
            try:
                targets = get_json("http://{}/api/v1/targets".format(web))
                active = targets["data"]["activeTargets"]
                health = [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in active]
                if any(t["health"] == "up" for t in active):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the target never came up: {}".format(health))

        query = 'clipper_queries_total{{app="{}"}}'.format(served)
        url = "http://{}/api/v1/query?{}".format(web, urllib.parse.urlencode({"query": query}))
        result = None
        while time.monotonic() < deadline:
            result = get_json(url)
            if result["status"] == "success" and result["data"]["result"]:
                break
            time.sleep(0.5)
        assert result["status"] == "success", result
        series = result["data"]["result"]
        assert len(series) == 1, series
        assert series[0]["metric"]["app"] == served
        assert series[0]["metric"]["job"] == "clipper"
        assert float(series[0]["value"][1]) == 4
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.poll() is not None
    with pytest.raises(OSError):
        os.killpg(proc.pid, 0)  # no process of its group is left
