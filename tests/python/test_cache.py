"""End to end: the query frontend's prediction cache (Clipper's §4.2).

Real clusters started by LocalContainerManager, a real Python closure that
records every input it is called with (one line per input in a file under
tmp_path: the replica is another process), queries over HTTP from threads.

* identical queries in flight share one model call, and a repeat after it
  completed is answered from the cache (no model call);
* start_clipper(cache_size=0) turns the cache off: every query calls the
  model and no lookup is counted;
* /metrics (inspect_instance) shows the lookups and the hit ratios move.
"""
import json
import threading
import time
import uuid

import pytest

from clipper_admin.deployers import python as python_deployer

from conftest import serve_cluster, start_cluster

N = 16


@pytest.fixture(scope="module")
def cached():
    # the default cache_size, 32 MiB, as Clipper's
    yield from serve_cluster(start_cluster("cache"))


@pytest.fixture
def uncached():
    yield from serve_cluster(start_cluster("nocache", cache_size=0))


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def recording_model(path):
    """A closure that takes 200 ms per call and appends each input to path."""
    def predict(xs):
        time.sleep(0.2)
        with open(path, "a") as f:
            for x in xs:
                f.write(json.dumps([float(v) for v in x]) + "\n")
        return [str(sum(x)) for x in xs]
    return predict


def calls(path, x):
    """How many times the model was called with input x."""
    want = json.dumps([float(v) for v in x])
    try:
        with open(path) as f:
            return sum(1 for line in f if line.strip() == want)
    except FileNotFoundError:
        return 0


def metric(metrics, section, name, field):
    for entry in metrics[section]:
        if name in entry:
            return float(entry[name][field])
    raise AssertionError("{} not in {}: {}".format(name, section, metrics[section]))


def concurrently(cluster, app, body, n=N):
    """n identical HTTP queries from n threads, released together."""
    replies = [None] * n
    go = threading.Barrier(n)

    def one(i):
        go.wait()
        replies[i] = cluster.http("/{}/predict".format(app), body)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return replies


def deploy(cluster, tmp_path, tag):
    path = str(tmp_path / "{}-calls.log".format(tag))
    app = unique(tag)
    python_deployer.create_endpoint(cluster.conn, app, "doubles", recording_model(path),
                                    default_output="-1.0", slo_micros=20000000)
    # Wait until the replica answers (another input; defaults are not cached).
    deadline = time.monotonic() + 30
    while True:
        status, reply = cluster.http("/{}/predict".format(app), {"input": [0.25]})
        assert status == 200, reply
        if reply["default"] is False:
            break
        assert time.monotonic() < deadline, "the replica never answered: {}".format(reply)
        time.sleep(0.1)
    assert reply["output"] == 0.25, reply
    return app, path


def test_identical_concurrent_queries_call_the_model_once(cached, tmp_path):
    app, path = deploy(cached, tmp_path, "shared")
    before = cached.conn.inspect_instance()
    lookups0 = metric(before, "counters", "internal:prediction_cache_lookups", "count")
    x = [1.0, 2.0, 3.5]

    for reply in concurrently(cached, app, {"input": x}):
        status, body = reply
        assert status == 200, body
        assert body["output"] == 6.5 and body["default"] is False, body
    assert calls(path, x) == 1, "the model was called {} times for one input".format(
        calls(path, x))

    # The same query again, after completion: answered from the cache.
    for reply in concurrently(cached, app, {"input": x}):
        status, body = reply
        assert status == 200 and body["output"] == 6.5 and body["default"] is False, body
    assert calls(path, x) == 1

    after = cached.conn.inspect_instance()
    lookups = metric(after, "counters", "internal:prediction_cache_lookups", "count")
    assert lookups - lookups0 == 2 * N
    assert metric(after, "ratio_counters", "internal:prediction_cache_hit_ratio", "ratio") > 0
    # This model version: 2N - 1 hits of 2N lookups (plus the warm-up's misses).
    ratio = metric(after, "ratio_counters", "model:{}:1:cache_hit_ratio".format(app), "ratio")
    assert 0.5 < ratio < 1.0


def test_a_new_input_or_a_new_version_calls_the_model(cached, tmp_path):
    app, path = deploy(cached, tmp_path, "keys")
    for x in ([1.0], [2.0], [1.0], [2.0]):
        status, body = cached.http("/{}/predict".format(app), {"input": x})
        assert status == 200 and body["output"] == sum(x), body
    assert calls(path, [1.0]) == 1 and calls(path, [2.0]) == 1
    # Version 2 is a new key: its first answer comes from its own model.
    python_deployer.deploy_python_closure(cached.conn, app, 2, "doubles",
                                          lambda xs: ["v2"] * len(xs))
    deadline = time.monotonic() + 10
    while cached.http("/{}/predict".format(app), {"input": [1.0]})[1]["output"] != "v2":
        assert time.monotonic() < deadline, "version 2 never answered [1.0]"
        time.sleep(0.05)
    # Rolling back serves version 1's output again (its entry is its own).
    cached.conn.set_model_version(app, 1)
    deadline = time.monotonic() + 10
    while cached.http("/{}/predict".format(app), {"input": [1.0]})[1]["output"] != 1.0:
        assert time.monotonic() < deadline, "rollback to version 1 not seen"
        time.sleep(0.05)


def test_a_version_deleted_and_deployed_again_does_not_serve_old_outputs(cached, tmp_path):
    # Clipper kept such outputs (its key was name and version only); here a
    # change of the version's record makes the frontend forget them.
    app, path = deploy(cached, tmp_path, "redeploy")
    assert cached.http("/{}/predict".format(app), {"input": [5.0]})[1]["output"] == 5.0
    assert cached.http("/{}/predict".format(app), {"input": [5.0]})[1]["output"] == 5.0
    assert calls(path, [5.0]) == 1  # the second answer came from the cache
    cached.conn.stop_models([app])
    python_deployer.deploy_python_closure(cached.conn, app, 1, "doubles",
                                          lambda xs: ["fixed"] * len(xs))
    deadline = time.monotonic() + 10
    while True:
        reply = cached.http("/{}/predict".format(app), {"input": [5.0]})[1]
        if reply["default"] is False:
            break
        assert time.monotonic() < deadline, "version 1 never answered again: {}".format(reply)
        time.sleep(0.05)
    assert reply["output"] == "fixed", reply


def test_with_the_cache_off_every_query_calls_the_model(uncached, tmp_path):
    app, path = deploy(uncached, tmp_path, "nocache")
    x = [4.0, 4.0]
    for _ in range(4):
        status, body = uncached.http("/{}/predict".format(app), {"input": x})
        assert status == 200 and body["output"] == 8.0 and body["default"] is False, body
    assert calls(path, x) == 4
    for reply in concurrently(uncached, app, {"input": x}, n=4):
        status, body = reply
        assert status == 200 and body["output"] == 8.0, body
    assert calls(path, x) == 8
    metrics = uncached.conn.inspect_instance()
    assert metric(metrics, "counters", "internal:prediction_cache_lookups", "count") == 0
