"""Clipper 0.4 parity: every public method of ClipperConnection against a real
cluster, and Clipper's query semantics (§1.3 and §2.1 of
shared/reference/clipper-behaviour.md).

Each test checks what the method returns and what it changed in the cluster.
Where this product deliberately differs from Clipper (a bug fix), the test
says so in a comment starting with "Clipper:".
"""
import base64
import json
import os
import time
import uuid

import cloudpickle
import pytest

from clipper_admin import ClipperException, UnconnectedException
from clipper_admin.deployers import python as python_deployer

from conftest import stop_test_models

NO_MODEL = "No connected models found for query"
BAD = "Received error status code: 400 and message: "


@pytest.fixture(autouse=True)
def stop_models_after_each_test(request):
    yield
    stop_test_models(request, unregister_apps=True)


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def refused(text):
    """The exact ClipperException text of an admin refusal."""
    return BAD + text


def until(check, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def write_func_pkl(directory, func):
    """What Clipper's deployers wrote: a directory holding func.pkl."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "func.pkl"), "wb") as f:
        cloudpickle.dump(func, f)
    return directory


# ---- applications -----------------------------------------------------------

def test_register_list_inspect_and_unregister_applications(cluster):
    conn = cluster.conn
    app = unique("apps")
    assert conn.register_application(app, "doubles", "-1.0", 150000) is None
    assert app in conn.get_all_apps()
    verbose = [a for a in conn.get_all_apps(verbose=True) if a["name"] == app]
    assert verbose == [{"name": app, "input_type": "doubles", "default_output": "-1.0",
                        "latency_slo_micros": 150000, "linked_models": []}]
    assert conn.get_app_info(app) == verbose[0]
    assert conn.get_app_info(unique("missing")) is None
    assert conn.get_linked_models(app) == []

    with pytest.raises(ClipperException) as e:
        conn.register_application(app, "doubles", "-1.0", 150000)
    assert str(e.value) == refused("application '{}' already exists".format(app))

    # Input-type aliases are stored under their canonical name (§2.2 notes).
    alias = unique("alias")
    conn.register_application(alias, "str", "none", 100000)
    assert conn.get_app_info(alias)["input_type"] == "strings"
    # Clipper: an unknown input_type made the management frontend drop the
    # connection without an answer; here it is a clear refusal.
    with pytest.raises(ClipperException, match=BAD):
        conn.register_application(unique("badtype"), "tensors", "x", 100000)

    conn.unregister_application(app)
    assert app not in conn.get_all_apps()
    with pytest.raises(ClipperException) as e:
        conn.unregister_application(app)
    assert str(e.value) == refused("Application '{}' does not exist".format(app))
    # The deprecated name still works.
    conn.delete_application(alias)
    assert alias not in conn.get_all_apps()


def test_link_and_unlink_models(cluster):
    conn = cluster.conn
    app, model = unique("links"), unique("m")
    conn.register_application(app, "doubles", "-1.0", 100000)
    with pytest.raises(ClipperException) as e:
        conn.link_model_to_app(app, model)
    assert str(e.value) == refused("No model with name '{}' exists.".format(model))
    conn.register_model(model, "1", "doubles")
    assert conn.link_model_to_app(app, model) is None
    assert conn.get_linked_models(app) == [model]
    assert conn.get_app_info(app)["linked_models"] == [model]
    with pytest.raises(ClipperException) as e:
        conn.link_model_to_app(app, model)
    assert str(e.value) == refused(
        "The model with name '{}' is already linked to '{}'".format(model, app))
    other = unique("ints")
    conn.register_model(other, "1", "ints")
    with pytest.raises(ClipperException) as e:
        conn.link_model_to_app(app, other)
    assert str(e.value) == refused(
        "Model with name '{}' has incompatible input_type 'integers'. Requested app to link "
        "to has input_type 'doubles'.".format(other))
    conn.unlink_model_from_app(app, model)
    assert conn.get_linked_models(app) == []
    with pytest.raises(ClipperException) as e:
        conn.unlink_model_from_app(app, model)
    assert str(e.value) == refused(
        "Cannot remove nonexistent link between app {} and model {}".format(app, model))


# ---- models, versions, replicas ---------------------------------------------

def test_register_model_versions_and_set_model_version(cluster):
    conn = cluster.conn
    m = unique("reg")
    with pytest.raises(ClipperException) as e:
        conn.get_current_model_version(m)
    assert str(e.value) == "No versions of model {} registered with Clipper".format(m)
    # register_model starts nothing and makes the version current.
    conn.register_model(m, 1, "doubles", labels=["a", "b"])
    assert "{}:1".format(m) in conn.get_all_models()
    assert conn.get_current_model_version(m) == "1"
    info = conn.get_model_info(m, 1)
    clippers = {"model_name": m, "model_version": "1", "input_type": "doubles",
                "labels": ["a", "b"], "container_name": "NO_CONTAINER",
                "model_data_path": "DEPRECATED", "is_current_version": True}
    # Clipper's seven fields, exactly; ours (batch_size, num_replicas,
    # runtime, artifact_*) come in addition (docs/protocol.md).
    assert {k: info[k] for k in clippers} == clippers
    assert info["num_replicas"] == 0 and info["batch_size"] == -1
    assert conn.get_model_info(m, 9) is None
    conn.register_model(m, "2", "doubles")
    assert conn.get_current_model_version(m) == "2"
    verbose = {v["model_version"]: v for v in conn.get_all_models(verbose=True)
               if v["model_name"] == m}
    assert verbose["1"]["is_current_version"] is False
    assert verbose["2"]["is_current_version"] is True
    assert conn.set_model_version(m, 1) is None
    assert conn.get_current_model_version(m) == "1"
    with pytest.raises(ClipperException) as e:
        conn.set_model_version(m, "7")
    assert str(e.value) == refused(
        "Cannot set non-existent version '7' for model with name '{}'".format(m))
    with pytest.raises(ClipperException) as e:
        conn.set_model_version(unique("nope"), "1")
    assert "Cannot set version for nonexistent model" in str(e.value)
    with pytest.raises(ClipperException) as e:
        conn.register_model(m, "1", "doubles")
    assert str(e.value) == refused(
        "model with name '{}' and version '1' already exists".format(m))
    # A containerless model cannot be scaled, an unknown version cannot be.
    with pytest.raises(ClipperException) as e:
        conn.set_num_replicas(m, 2)
    assert str(e.value) == "Cannot resize the replica set for containerless model {}:1".format(m)
    with pytest.raises(ClipperException) as e:
        conn.set_num_replicas(m, 2, version="5")
    assert str(e.value) == "Cannot add container for non-registered model {}:5".format(m)


def test_build_model_and_deploy_model_from_a_model_data_path(cluster, tmp_path):
    conn = cluster.conn
    app = unique("built")
    conn.register_application(app, "doubles", "-1.0", 3000000)
    # build_and_deploy_model: a folder holding func.pkl, as Clipper's
    # deployers wrote it; the artifact travels over the bus, no image build.
    path = write_func_pkl(str(tmp_path / "v1"), lambda xs: [str(2 * x[0]) for x in xs])
    conn.build_and_deploy_model(app, 1, "doubles", path, "clipper/python-closure-container")
    conn.link_model_to_app(app, app)
    assert cluster.http("/{}/predict".format(app), {"input": [2.5]})[1]["output"] == 5.0
    # build_model returns an image name that deploy_model accepts; Clipper's
    # own helper for custom deployers writes the folder.
    from clipper_admin.deployers.deployer_utils import save_python_function
    path = save_python_function(app, lambda xs: [str(3 * x[0]) for x in xs])
    assert os.path.isfile(os.path.join(path, "func.pkl"))
    image = conn.build_model(app, "2", path, "clipper/python-closure-container")
    assert isinstance(image, str) and image
    conn.deploy_model(app, "2", "doubles", image, num_replicas=1, batch_size=4)
    assert conn.get_current_model_version(app) == "2"
    until(lambda: cluster.http("/{}/predict".format(app), {"input": [2.0]})[1]["output"] == 6.0,
          "the frontend did not switch to version 2")
    # A model_data_path without func.pkl is a clear error before anything
    # is registered.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ClipperException, match="func.pkl"):
        conn.build_model(app, "3", str(empty), "img")
    assert conn.get_model_info(app, 3) is None
    # Names are validated as Clipper did (DNS-1123 without dots).
    with pytest.raises(ClipperException, match="Invalid value: Bad_Name"):
        conn.build_model("Bad_Name", "1", path, "img")


def test_replicas_are_listed_counted_and_scaled(cluster):
    conn = cluster.conn
    app = unique("reps")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["r"] * len(xs),
                                    slo_micros=3000000)
    assert conn.get_num_replicas(app) == 1
    assert conn.get_num_replicas(app, version=1) == 1
    names = [r for r in conn.get_all_model_replicas() if r.startswith(app + ":1:")]
    assert len(names) == 1
    replica_id = int(names[0].split(":")[2])
    verbose = [r for r in conn.get_all_model_replicas(verbose=True) if r["model_name"] == app]
    assert verbose[0]["model_id"] == "{}:1".format(app)
    assert verbose[0]["model_version"] == "1"
    assert verbose[0]["model_replica_id"] == replica_id
    assert verbose[0]["input_type"] == "doubles"
    info = conn.get_model_replica_info(app, 1, replica_id)
    assert info["model_replica_id"] == replica_id and info["model_name"] == app
    assert conn.get_model_replica_info(app, 1, replica_id + 1000) is None
    conn.set_num_replicas(app, 2)
    assert conn.get_num_replicas(app) == 2
    until(lambda: len([r for r in conn.get_all_model_replicas()
                       if r.startswith(app + ":1:")]) == 2, "second replica not listed")


def test_rollback_with_set_model_version_and_num_replicas(cluster):
    conn = cluster.conn
    app = unique("roll")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["one"] * len(xs),
                                    slo_micros=3000000)
    python_deployer.deploy_python_closure(conn, app, 2, "doubles",
                                          lambda xs: ["two"] * len(xs))
    until(lambda: cluster.nats(app, {"input": [1.0]})["output"] == "two", "v2 not served")
    conn.set_model_version(app, "1", num_replicas=2)
    assert conn.get_current_model_version(app) == "1"
    assert conn.get_num_replicas(app, "1") == 2
    until(lambda: cluster.nats(app, {"input": [1.0]})["output"] == "one", "rollback not served")
    # Roll forward again.
    conn.set_model_version(app, 2)
    until(lambda: cluster.http("/{}/predict".format(app), {"input": [1.0]})[1]["output"] == "two",
          "roll-forward not served")


def test_stop_inactive_versioned_and_all_model_containers(cluster):
    conn = cluster.conn
    app = unique("stop")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["a"] * len(xs),
                                    slo_micros=3000000)
    python_deployer.deploy_python_closure(conn, app, 2, "doubles", lambda xs: ["b"] * len(xs))
    python_deployer.deploy_python_closure(conn, app, 3, "doubles", lambda xs: ["c"] * len(xs))
    conn.set_model_version(app, 2)
    # Only the versions that are not current go.
    conn.stop_inactive_model_versions([app])
    assert sorted(m for m in conn.get_all_models() if m.startswith(app + ":")) == \
        ["{}:2".format(app)]
    until(lambda: not [r for r in conn.get_all_model_replicas()
                       if r.startswith(app + ":1:") or r.startswith(app + ":3:")],
          "replicas of inactive versions still listed")
    assert cluster.nats(app, {"input": [1.0]})["output"] == "b"

    other = unique("other")
    python_deployer.create_endpoint(conn, other, "doubles", lambda xs: ["o"] * len(xs),
                                    slo_micros=3000000)
    conn.stop_versioned_models({other: ["1"]})
    assert conn.get_model_info(other, 1) is None
    reply = cluster.nats(other, {"input": [1.0]})
    assert reply["default"] is True and reply["default_explanation"] == NO_MODEL

    conn.stop_all_model_containers()
    assert conn.get_all_models() == []
    until(lambda: conn.get_all_model_replicas() == [], "replicas left after stop_all_model_"
          "containers")


# ---- inspection and addresses -----------------------------------------------

def test_logs_addresses_and_inspect_instance(cluster, tmp_path):
    conn = cluster.conn
    app = unique("inspect")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["1"] * len(xs),
                                    slo_micros=3000000)
    for _ in range(3):
        cluster.http("/{}/predict".format(app), {"input": [1.0]})
    metrics = conn.inspect_instance()
    counters = {k: v for d in metrics["counters"] for k, v in d.items()}
    assert counters["app:{}:num_predictions".format(app)] == {"count": "3"}
    assert "model:{}:1:num_predictions".format(app) in counters
    histograms = {k: v for d in metrics["histograms"] for k, v in d.items()}
    assert histograms["app:{}:prediction_latency".format(app)]["unit"] == "microseconds"

    for addr in (conn.get_query_addr(), conn.get_metric_addr(), conn.get_admin_addr()):
        host, port = addr.rsplit(":", 1)
        assert "://" not in addr and host and int(port) > 0

    logs = conn.get_clipper_logs(logging_dir=str(tmp_path / "logs"))
    assert logs and all(os.path.isfile(p) for p in logs)
    assert all(os.path.dirname(p) == str(tmp_path / "logs") for p in logs)


def test_test_predict_function_runs_the_function_offline(cluster):
    conn = cluster.conn

    def total(xs):
        return [str(sum(x)) for x in xs]

    assert conn.test_predict_function({"input": [1.0, 2.0]}, total, "doubles") == ["3.0"]
    assert conn.test_predict_function({"input_batch": [[1, 2], [3, 4]]}, total,
                                      "integers") == ["3", "7"]
    assert conn.test_predict_function({"input": [1, 2]}, total, "doubles") == \
        "Invalid input type"
    # Clipper: its check tested "string" instead of "strings", so a strings
    # model always came back "Invalid input type".
    assert conn.test_predict_function({"input": "ab"}, lambda xs: list(xs),
                                      "strings") == ["ab"]


def test_methods_refuse_before_connect_or_after_stop():
    from clipper_admin import ClipperConnection, LocalContainerManager
    conn = ClipperConnection(LocalContainerManager(cluster_name=unique("unconnected")))
    for call in (lambda: conn.get_all_apps(), lambda: conn.register_application(
            "a", "doubles", "x", 1), lambda: conn.get_query_addr(),
            lambda: conn.stop_all_model_containers(), lambda: conn.inspect_instance()):
        with pytest.raises(UnconnectedException):
            call()


# ---- query semantics (§2.1) ---------------------------------------------------

ECHO_TYPES = {
    # input type: (good single input, what the echo model returns for it,
    #              bad inputs with the start of their "cause")
    "doubles": ([1.5, 2.0], "2", [([1, 2], "Error parsing JSON: Array input of type Number is "
                                   "not of type double"),
                                  ("1.5", "Type mismatch! JSON key input expected type Array"
                                   "but found type String")]),
    "floats": ([0.5], "1", [([1], "Error parsing JSON"), (["a"], "Error parsing JSON")]),
    "integers": ([1, 2, 3], "3", [([1.5], "Error parsing JSON"),
                                  ([2 ** 40], "Error parsing JSON")]),
    "strings": ("hello", "5", [(["a", "b"], "Type mismatch!"), (5, "Type mismatch!")]),
    "bytes": (base64.b64encode(b"\x01\x02\x03\x04").decode(), "4",
              [("not base64!", "Error parsing JSON"), ([1, 2], "Type mismatch!")]),
}


@pytest.mark.parametrize("input_type", sorted(ECHO_TYPES))
def test_each_input_type_accepts_good_and_rejects_bad_input(cluster, input_type):
    good, expected, bads = ECHO_TYPES[input_type]
    app = unique(input_type)
    python_deployer.create_endpoint(cluster.conn, app, input_type,
                                    lambda xs: [str(len(x)) for x in xs], slo_micros=3000000)
    status, reply = cluster.http("/{}/predict".format(app), {"input": good})
    assert status == 200 and reply["output"] == json.loads(expected), reply
    status, reply = cluster.http("/{}/predict".format(app), {"input_batch": [good, good]})
    assert status == 200
    assert [p["output"] for p in reply["batch_predictions"]] == [json.loads(expected)] * 2
    for bad, cause in bads:
        for status, reply in (cluster.http("/{}/predict".format(app), {"input": bad}),
                              (400, cluster.nats(app, {"input": bad}))):
            assert status == 400, (bad, reply)
            assert reply["error"] == "Json error" and cause in reply["cause"], reply
    # Bad input changed nothing: the app still answers.
    assert cluster.nats(app, {"input": good})["output"] == json.loads(expected)


def test_outputs_are_parsed_as_json_when_they_are_json(cluster):
    app = unique("outputs")
    outs = {1.0: "abc", 2.0: "[1, 2]", 3.0: "7", 4.0: '{"k": "v"}', 5.0: "1.5e3"}
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: [outs[x[0]] for x in xs],
                                    default_output="-1.0", slo_micros=3000000)
    got = cluster.http("/{}/predict".format(app),
                       {"input_batch": [[k] for k in sorted(outs)]})[1]["batch_predictions"]
    assert [p["output"] for p in got] == ["abc", [1, 2], 7, {"k": "v"}, 1500.0]
    # Query ids are distinct per input.
    assert len({p["query_id"] for p in got}) == len(outs)
    # Clipper's route regex allowed a trailing slash; every reply is JSON.
    import urllib.request
    req = urllib.request.Request("http://{}/{}/predict/".format(cluster.query_addr, app),
                                 data=json.dumps({"input": [3.0]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        assert json.loads(r.read())["output"] == 7
    # A one-result batch comes back unwrapped, as in Clipper.
    single = cluster.http("/{}/predict".format(app), {"input_batch": [[1.0]]})[1]
    assert "batch_predictions" not in single and single["output"] == "abc"
    # The default output is parsed the same way ("-1.0" -> -1.0).
    cluster.conn.unlink_model_from_app(app, app)
    reply = cluster.http("/{}/predict".format(app), {"input": [1.0]})[1]
    assert reply == {"query_id": reply["query_id"], "output": -1.0, "default": True,
                     "default_explanation": NO_MODEL}


def test_version_pinning(cluster):
    conn = cluster.conn
    app = unique("pin")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["v1"] * len(xs),
                                    slo_micros=3000000)
    python_deployer.deploy_python_closure(conn, app, 2, "doubles", lambda xs: ["v2"] * len(xs))
    until(lambda: cluster.nats(app, {"input": [1.0]})["output"] == "v2", "v2 not current")
    assert cluster.nats(app, {"input": [1.0], "version": "1"})["output"] == "v1"
    status, reply = cluster.http("/{}/predict".format(app), {"input": [1.0], "version": "1"})
    assert status == 200 and reply["output"] == "v1"
    status, reply = cluster.http("/{}/predict".format(app), {"input": [1.0], "version": "9"})
    assert status == 400
    assert reply == {"error": "Query processing error",
                     "cause": "Requested version: 9 does not exist for model: {}".format(app)}
    # Clipper: with no linked model it indexed an empty vector (undefined
    # behaviour); here it is a 400 that says why.
    lonely = unique("nolink")
    conn.register_application(lonely, "doubles", "-1.0", 100000)
    status, reply = cluster.http("/{}/predict".format(lonely), {"input": [1.0], "version": "1"})
    assert status == 400 and reply["error"] == "Query processing error"
    assert lonely in reply["cause"]


def test_update_feedback_is_accepted(cluster):
    app = unique("update")
    cluster.conn.register_application(app, "doubles", "-1.0", 100000)
    status, reply = cluster.http("/{}/update".format(app),
                                 {"uid": 4, "input": [1.0, 2.0], "label": 1.0})
    assert status == 200 and reply == "Feedback received? 1"
    status, reply = cluster.http("/{}/update".format(app), {"uid": 4})
    assert status == 400 and "Error parsing JSON" in json.dumps(reply)


# ---- Clipper's bugs, fixed ---------------------------------------------------

def test_unknown_and_deleted_apps_answer_404_at_once(cluster):
    conn = cluster.conn
    # Clipper: an unknown app got no HTTP response at all (connection closed).
    status, reply = cluster.http("/{}/predict".format(unique("ghost")), {"input": [1.0]})
    assert status == 404 and reply["error"] == "Unknown application"
    app = unique("deleted")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["x"] * len(xs),
                                    slo_micros=3000000)
    assert cluster.nats(app, {"input": [1.0]})["output"] == "x"
    # Clipper: the route of a deleted app stayed live until the frontend
    # restarted (it listened for the wrong Redis event).
    conn.unregister_application(app)
    until(lambda: cluster.http("/{}/predict".format(app), {"input": [1.0]})[0] == 404,
          "a deleted app still answers", timeout=2.0)
    assert cluster.nats(app, {"input": [1.0]})["error"] == "Unknown application"


def test_a_model_exception_does_not_kill_the_replica(cluster):
    conn = cluster.conn
    app = unique("raises")

    def picky(xs):
        if any(x[0] < 0 for x in xs):
            raise ValueError("negative input")
        return [str(x[0]) for x in xs]

    python_deployer.create_endpoint(conn, app, "doubles", picky, slo_micros=3000000,
                                    batch_size=1)
    replicas = [r for r in conn.get_all_model_replicas(verbose=True) if r["model_name"] == app]
    status, reply = cluster.http("/{}/predict".format(app), {"input": [-1.0]})
    # Clipper: the exception killed the container, and later queries got
    # "No connected models found for query".
    assert status == 500 and "negative input" in reply["cause"]
    assert cluster.nats(app, {"input": [2.0]})["output"] == 2.0
    after = [r for r in conn.get_all_model_replicas(verbose=True) if r["model_name"] == app]
    assert [r["model_replica_id"] for r in after] == [r["model_replica_id"] for r in replicas]


def test_a_failed_deploy_is_undone_and_the_app_keeps_serving(cluster):
    # Clipper started containers before registering, so a version that
    # never came up changed nothing queries see. Here registration comes
    # first, so a failed deploy is undone: the app keeps its version.
    conn = cluster.conn
    app = unique("undo")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["v1"] * len(xs),
                                    slo_micros=3000000)
    started = time.monotonic()
    with pytest.raises(ClipperException) as e:
        # An image with no uploaded artifact: the replica cannot load it.
        conn.deploy_model(app, "2", "doubles", "someone/some-image:2")
    assert time.monotonic() - started < 30
    assert "no artifact is stored for model {}:2".format(app) in str(e.value)
    assert "The deploy was undone: its replicas stopped, version 2 removed, version 1 is " \
        "current again." in str(e.value)
    assert conn.get_current_model_version(app) == "1"
    assert conn.get_model_info(app, 2) is None
    assert cluster.nats(app, {"input": [1.0]})["output"] == "v1"
    until(lambda: not [r for r in conn.get_all_model_replicas() if r.startswith(app + ":2:")],
          "the failed version's replicas are still listed")
    # The same version can be deployed again once it works.
    python_deployer.deploy_python_closure(conn, app, 2, "doubles", lambda xs: ["v2"] * len(xs))
    until(lambda: cluster.nats(app, {"input": [1.0]})["output"] == "v2", "v2 not served")
