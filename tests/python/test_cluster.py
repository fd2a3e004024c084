"""End to end: a real cluster started by LocalContainerManager(nats_url=None)
on free ports; closures deployed with create_endpoint and queried over NATS
(Bus.predict) and HTTP."""
import base64
import json
import os
import socket
import sys
import time
import uuid

import pytest

from clipper_admin import (ClipperConnection, ClipperException, LocalContainerManager,
                           UnconnectedException)
from clipper_admin._bus import BusError
from clipper_admin.deployers import python as python_deployer

from conftest import (alive, processes_mentioning, start_cluster, stop_cluster,
                      stop_test_models, wait_until)

NO_MODEL = "No connected models found for query"
SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO"


@pytest.fixture(autouse=True)
def stop_models_after_each_test(request):
    yield
    stop_test_models(request)


def both(cluster, app, body):
    """The answer over NATS and over HTTP: (nats_reply, (status, http_reply))."""
    return cluster.nats(app, body), cluster.http("/{}/predict".format(app), body)


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


# ---- deploy and query each input type ---------------------------------------

def test_doubles_endpoint_answers_over_nats_and_http(cluster):
    app = unique("doubles")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: [str(sum(x)) for x in xs],
                                    default_output="-1.0", slo_micros=2000000)
    nats, (status, http) = both(cluster, app, {"input": [1.5, 2.0, 3.25]})
    for reply in (nats, http):
        assert reply["output"] == 6.75
        assert reply["default"] is False
        assert "default_explanation" not in reply
        assert isinstance(reply["query_id"], int)
    assert status == 200


def test_integers_endpoint(cluster):
    app = unique("ints")
    python_deployer.create_endpoint(
        cluster.conn, app, "integers",
        lambda xs: ["{}:{}".format(x.dtype, int(sum(x))) for x in xs], slo_micros=2000000)
    nats, (status, http) = both(cluster, app, {"input": [1, 2, 3, -10]})
    assert status == 200
    assert nats["output"] == http["output"] == "int32:-4"


def test_floats_endpoint(cluster):
    app = unique("floats")
    python_deployer.create_endpoint(
        cluster.conn, app, "floats",
        lambda xs: ["{}:{}".format(x.dtype, float(sum(x))) for x in xs], slo_micros=2000000)
    nats, (status, http) = both(cluster, app, {"input": [0.5, 0.25]})
    assert status == 200
    assert nats["output"] == http["output"] == "float32:0.75"


def test_strings_endpoint(cluster):
    app = unique("strings")

    def reverse(xs):
        return [(x.decode() if isinstance(x, bytes) else x)[::-1] for x in xs]

    python_deployer.create_endpoint(cluster.conn, app, "strings", reverse,
                                    slo_micros=2000000)
    nats, (status, http) = both(cluster, app, {"input": "hello world"})
    assert status == 200
    assert nats["output"] == http["output"] == "dlrow olleh"


def test_bytes_endpoint(cluster):
    app = unique("bytes")
    python_deployer.create_endpoint(
        cluster.conn, app, "bytes",
        lambda xs: ["{}:{}".format(len(x), (x.tobytes() if hasattr(x, "tobytes")
                                            else bytes(x)).hex()) for x in xs],
        slo_micros=2000000)
    raw = b"\x00\x01\xfe\x7f"
    nats, (status, http) = both(cluster, app, {"input": base64.b64encode(raw).decode()})
    assert status == 200
    assert nats["output"] == http["output"] == "4:0001fe7f"


def test_input_batch_answers_each_input_in_order(cluster):
    app = unique("batch")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: [str(sum(x)) for x in xs],
                                    slo_micros=2000000)
    body = {"input_batch": [[1.0], [2.0, 3.0], [4.0, 4.0, 4.0]]}
    nats, (status, http) = both(cluster, app, body)
    assert status == 200
    for reply in (nats, http):
        outs = [p["output"] for p in reply["batch_predictions"]]
        assert outs == [1.0, 5.0, 12.0]
        assert all(p["default"] is False for p in reply["batch_predictions"])
        ids = [p["query_id"] for p in reply["batch_predictions"]]
        assert len(set(ids)) == 3


# ---- defaults ---------------------------------------------------------------

def test_default_output_when_no_model_is_linked(cluster):
    app = unique("nolink")
    cluster.conn.register_application(app, "doubles", "-1.0", 100000)
    nats, (status, http) = both(cluster, app, {"input": [1.0]})
    assert status == 200
    for reply in (nats, http):
        assert reply["default"] is True
        assert reply["output"] == -1.0
        assert reply["default_explanation"] == NO_MODEL


def test_default_output_when_the_slo_passes(cluster):
    app = unique("slow")

    def slow(xs):
        import time as t
        t.sleep(1.0)
        return [str(len(x)) for x in xs]

    python_deployer.create_endpoint(cluster.conn, app, "doubles", slow,
                                    default_output="too slow", slo_micros=200000)
    start = time.monotonic()
    nats, (status, http) = both(cluster, app, {"input": [1.0]})
    assert status == 200
    for reply in (nats, http):
        assert reply["default"] is True
        assert reply["output"] == "too slow"
        assert reply["default_explanation"] == SLO_MISSED
    # Each answer came at the deadline, not when the model finished.
    assert time.monotonic() - start < 2.0


# ---- errors -----------------------------------------------------------------

def test_unknown_app_is_404_json(cluster):
    status, reply = cluster.http("/no-such-app/predict", {"input": [1.0]})
    assert status == 404
    assert reply["error"] == "Unknown application"
    assert "no-such-app" in reply["cause"]
    nats = cluster.nats("no-such-app", {"input": [1.0]})
    assert nats["error"] == "Unknown application"


def test_malformed_json_is_400_with_clippers_error(cluster):
    app = unique("json")
    cluster.conn.register_application(app, "doubles", "-1.0", 100000)
    for send in (lambda b: cluster.http("/{}/predict".format(app), b),
                 lambda b: (400, cluster.nats(app, b))):
        status, reply = send(b'{"input": [1.0,')
        assert status == 400
        assert reply["error"] == "Json error"
        assert reply["cause"].startswith("Error parsing JSON")
        status, reply = send(b'{"wrong": [1.0]}')
        assert status == 400
        assert reply["error"] == "Json error"
        assert "input or input_batch" in reply["cause"]


def test_wrong_input_type_is_400_with_clippers_error(cluster):
    app = unique("types")
    cluster.conn.register_application(app, "doubles", "-1.0", 100000)
    for body in ({"input": [1, 2]}, {"input": "abc"}, {"input": ["a"]}):
        status, reply = cluster.http("/{}/predict".format(app), body)
        assert status == 400, body
        assert reply["error"] == "Json error"
        assert reply["cause"].startswith("Error parsing JSON")
        nats = cluster.nats(app, body)
        assert nats["error"] == "Json error"


def test_a_model_that_raises_gives_a_clear_error_and_keeps_serving(cluster):
    app = unique("raises")

    def picky(xs):
        if any(x[0] < 0 for x in xs):
            raise ValueError("negative input is not allowed")
        return [str(x[0] * 2) for x in xs]

    python_deployer.create_endpoint(cluster.conn, app, "doubles", picky,
                                    slo_micros=3000000)
    status, reply = cluster.http("/{}/predict".format(app), {"input": [-1.0]})
    assert status == 500
    assert reply["error"] == "Model error"
    assert "negative input is not allowed" in reply["cause"]
    nats = cluster.nats(app, {"input": [-1.0]})
    assert "negative input is not allowed" in nats["cause"]
    # The replica survived: the next query is answered by the model.
    nats, (status, http) = both(cluster, app, {"input": [2.0]})
    assert status == 200
    assert nats["output"] == http["output"] == 4.0


def test_a_model_returning_the_wrong_thing_is_a_clear_error(cluster):
    app = unique("wrongout")
    python_deployer.create_endpoint(cluster.conn, app, "doubles", lambda xs: "not a list",
                                    slo_micros=3000000)
    status, reply = cluster.http("/{}/predict".format(app), {"input": [1.0]})
    assert status == 500
    assert reply["error"] == "Model error"
    assert reply["cause"]


def test_inputs_and_outputs_above_nats_default_1_mib_are_served(cluster):
    """nats-server's default max_payload is 1 MiB; the configuration clipper
    start writes allows MAX_PAYLOAD (32 MiB), so inputs and outputs of
    several MB cross the bus whole, over NATS and HTTP."""
    from clipper_admin._bus import MAX_PAYLOAD
    assert cluster.cm.bus.max_payload == MAX_PAYLOAD == 32 << 20
    app = unique("big")
    python_deployer.create_endpoint(
        cluster.conn, app, "bytes",
        lambda xs: ["{}:{}".format(len(x), sum(bytes(x[:4]))) for x in xs],
        slo_micros=20000000)
    for size in (2 << 20, 8 << 20):  # an image tensor's bytes, base64 in the JSON
        raw = bytes(range(256)) * (size // 256)
        body = {"input": base64.b64encode(raw).decode()}
        nats, (status, http) = both(cluster, app, body)
        assert status == 200, http
        for reply in (nats, http):
            assert reply["output"] == "{}:{}".format(size, 0 + 1 + 2 + 3), reply
            assert reply["default"] is False, reply
    # 4 MiB of doubles (512 Ki numbers; 2 MB of JSON), and an output of 3 MB
    app2 = unique("bigout")
    python_deployer.create_endpoint(
        cluster.conn, app2, "doubles",
        lambda xs: ["{}:{}".format(len(x), "y" * (3 << 20)) for x in xs],
        slo_micros=20000000)
    nats, (status, http) = both(cluster, app2, {"input": [1.5] * (1 << 19)})
    assert status == 200, str(http)[:300]
    for reply in (nats, http):
        assert reply["output"] == "{}:{}".format(1 << 19, "y" * (3 << 20)), str(reply)[:300]
    # 8 MB of doubles written in full precision: about 19 MB of JSON, above
    # what the HTTP door once took (16 MiB), within its 32 MiB now.
    app3 = unique("bigdbl")
    python_deployer.create_endpoint(cluster.conn, app3, "doubles",
                                    lambda xs: ["{}:{}".format(len(x), x[-1]) for x in xs],
                                    slo_micros=20000000)
    doubles = [i / 7.0 for i in range(1 << 20)]
    assert len(json.dumps({"input": doubles})) > 16 << 20
    nats, (status, http) = both(cluster, app3, {"input": doubles})
    assert status == 200, str(http)[:300]
    for reply in (nats, http):
        assert reply["output"] == "{}:{}".format(1 << 20, doubles[-1]), str(reply)[:300]


def test_an_oversized_payload_is_a_clear_error(cluster):
    app = unique("huge")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: [str(len(x)) for x in xs], slo_micros=2000000)
    huge = {"input": [1.5] * (9 << 20)}  # about 45 MB of JSON: above the bus' 32 MiB
    with pytest.raises(BusError, match="exceeds the server's max payload"):
        cluster.nats(app, huge)
    # Over HTTP the frontend's body limit (32 MiB) says so first, from the
    # Content-Length alone (a client that sent the whole body would find
    # the connection closed under it).
    host, port = cluster.query_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall("POST /{}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     "\r\nContent-Length: {}\r\n\r\n".format(app, 45 << 20).encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, text = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert json.loads(text.decode())["error"], text
    # And the frontend still answers.
    nats = cluster.nats(app, {"input": [1.0, 2.0]})
    assert nats["output"] == 2


def test_a_closure_importing_a_missing_module_fails_the_deploy_naming_it(cluster, tmp_path):
    # Under a "site-packages" directory it counts as an installed package,
    # which the deployer does not capture (a local module would travel with
    # the function: test_closure_deps.py), so the replica lacks it.
    modname = "clipper_test_missing_{}".format(uuid.uuid4().hex[:8])
    tmp_path = tmp_path / "site-packages"
    tmp_path.mkdir()
    (tmp_path / (modname + ".py")).write_text("def f(x):\n    return str(x)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        mod = __import__(modname)

        def uses_module(xs):
            return [mod.f(x) for x in xs]

        start = time.monotonic()
        with pytest.raises(ClipperException) as info:
            python_deployer.deploy_python_closure(cluster.conn, unique("missing"), 1,
                                                  "doubles", uses_module)
        assert modname in str(info.value)
        assert time.monotonic() - start < 20
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(modname, None)


# ---- management -------------------------------------------------------------

def test_admin_refusals_raise_clippers_text(cluster):
    app = unique("dup")
    cluster.conn.register_application(app, "doubles", "-1.0", 100000)
    with pytest.raises(ClipperException) as info:
        cluster.conn.register_application(app, "doubles", "-1.0", 100000)
    assert str(info.value) == ("Received error status code: 400 and message: "
                               "application '{}' already exists".format(app))
    with pytest.raises(ClipperException, match="Received error status code: 400"):
        cluster.conn.link_model_to_app(app, "no-such-model")


def test_apps_models_and_versions_are_listed(cluster):
    app = unique("info")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: [str(x[0]) for x in xs], slo_micros=2000000)
    assert app in cluster.conn.get_all_apps()
    info = cluster.conn.get_app_info(app)
    assert info["name"] == app and info["linked_models"] == [app]
    assert info["input_type"] == "doubles"
    assert cluster.conn.get_linked_models(app) == [app]
    assert "{}:1".format(app) in cluster.conn.get_all_models()
    assert cluster.conn.get_current_model_version(app) == "1"
    model = cluster.conn.get_model_info(app, 1)
    assert model["model_name"] == app and model["is_current_version"] is True
    replicas = cluster.conn.get_all_model_replicas(verbose=True)
    assert any(r["model_name"] == app and r["state"] == "ready" for r in replicas)
    assert cluster.conn.get_num_replicas(app) == 1
    assert cluster.conn.get_app_info("not-there") is None


def test_new_version_and_rollback(cluster):
    app = unique("versions")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: ["v1"] * len(xs), slo_micros=2000000)
    python_deployer.deploy_python_closure(cluster.conn, app, 2, "doubles",
                                          lambda xs: ["v2"] * len(xs))
    assert cluster.conn.get_current_model_version(app) == "2"
    assert cluster.nats(app, {"input": [1.0]})["output"] == "v2"
    cluster.conn.set_model_version(app, 1)
    deadline = time.monotonic() + 5
    while cluster.nats(app, {"input": [1.0]})["output"] != "v1":
        assert time.monotonic() < deadline, "rollback not seen by the frontend"
        time.sleep(0.05)
    # A version already registered is refused before anything is uploaded.
    with pytest.raises(ClipperException, match="already exists"):
        python_deployer.deploy_python_closure(cluster.conn, app, 2, "doubles",
                                              lambda xs: ["v2b"] * len(xs))


def test_set_num_replicas_scales_up_and_down(cluster):
    app = unique("scale")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: ["ok"] * len(xs), slo_micros=2000000)
    cluster.conn.set_num_replicas(app, 2)
    assert cluster.conn.get_num_replicas(app) == 2
    cluster.conn.set_num_replicas(app, 1)
    assert cluster.conn.get_num_replicas(app) == 1
    assert cluster.nats(app, {"input": [1.0]})["output"] == "ok"


def test_a_second_connection_joins_over_the_bus(cluster):
    # As an operator: the cluster's identity and CA (docs/security.md).
    secrets = os.path.join(cluster.cm.data_dir, "secrets")
    auth = {"creds": os.path.join(secrets, "creds", "operator.creds"),
            "tls_ca": os.path.join(secrets, "ca.pem")}
    cm = LocalContainerManager(cluster_name=cluster.cm.cluster_name,
                               nats_url=cluster.cm.bus_url, prefix=cluster.cm.prefix, **auth)
    conn = ClipperConnection(cm)
    conn.connect()
    try:
        assert isinstance(conn.get_all_apps(), list)
        # Starting the same cluster again on that bus is refused.
        with pytest.raises(ClipperException, match="already exists"):
            ClipperConnection(LocalContainerManager(
                cluster_name=cluster.cm.cluster_name, nats_url=cluster.cm.bus_url,
                prefix=cluster.cm.prefix, **auth)).start_clipper()
        # Without an identity the bus is closed to it.
        with pytest.raises(ClipperException, match="Authorization Violation"):
            ClipperConnection(LocalContainerManager(
                cluster_name=cluster.cm.cluster_name, nats_url=cluster.cm.bus_url,
                prefix=cluster.cm.prefix, tls_ca=auth["tls_ca"])).connect()
    finally:
        cm.bus.close()


def test_query_addr_and_metrics(cluster):
    assert cluster.conn.get_query_addr() == cluster.cm.get_query_addr()
    assert cluster.conn.get_query_addr().startswith("127.0.0.1:")
    metrics = cluster.conn.inspect_instance()
    assert isinstance(metrics, dict)


# ---- lifecycle --------------------------------------------------------------

def test_stop_all_leaves_no_clipper_or_nats_server_process():
    c = start_cluster("stop")
    try:
        app = unique("x")
        python_deployer.create_endpoint(c.conn, app, "doubles",
                                        lambda xs: ["1"] * len(xs), slo_micros=2000000)
        # The first answers may be the default while the frontends learn
        # the new link (and, on a busy machine, the replica warms up).
        reply = wait_until("a prediction of " + app,
                           lambda: (lambda r: r if r["default"] is False else None)(
                               c.nats(app, {"input": [1.0]})), 30, 0.1)
        assert reply["output"] == 1, reply
        run_dir = os.path.dirname(c.cm.log_file)
        names = set()
        from conftest import cmdline, process_tree
        tree = process_tree(c.cm._pid)
        for pid in tree:
            names.add(os.path.basename(cmdline(pid).split(" ")[0]))
        assert any("nats-server" in n for n in names), names
        assert any("clipper" in n for n in names), names
    finally:
        tree = stop_cluster(c)
    assert alive(tree) == []
    assert processes_mentioning(run_dir) == []
    with pytest.raises(UnconnectedException):
        c.conn.get_all_apps()


def test_stop_models_stops_replicas_and_unregisters_versions(cluster):
    app = unique("stopme")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: ["1"] * len(xs), slo_micros=2000000)
    cluster.conn.stop_models([app])
    assert not [m for m in cluster.conn.get_all_models() if m.startswith(app + ":")]
    deadline = time.monotonic() + 15
    while True:
        live = [r for r in cluster.conn.get_all_model_replicas(verbose=True)
                if r["model_name"] == app and r.get("state") != "stopped"]
        if not live:
            break
        assert time.monotonic() < deadline, "replicas still live: {}".format(live)
        time.sleep(0.2)
    nats = cluster.nats(app, {"input": [1.0]})
    assert nats["default"] is True
