"""Clipper's management REST (port 1338) on a real cluster started by
LocalContainerManager: every route of the behaviour spec (§2.2) with its
success body and each of its error texts, our answers where Clipper had
none or broke (400 for an invalid input_type, 404, 405, 413), and one
source of truth: the HTTP door and the NATS admin see the same state.

HTTP with the standard library only (http.client)."""
import http.client
import json
import time
import uuid

import pytest

from clipper_admin.deployers import python as python_deployer

CT_JSON = "application/json"
VALID_TYPES = ("Valid input types: bytes, integers, floats, doubles, strings (aliases: byte, "
               "b, ints, integer, int, i, float, f, double, d, string, str, strs, s)")


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def call(cluster, method, path, body=None, raw=None, timeout=30):
    """(status, text, content_type, headers) of one request to the admin port."""
    host, port = cluster.cm.get_admin_addr().rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8")
        return resp.status, text, resp.getheader("Content-Type"), resp
    finally:
        conn.close()


def post(cluster, command, body=None, raw=None):
    status, text, ctype, _ = call(cluster, "POST", "/admin/" + command, body, raw)
    # Clipper labels every answer JSON, its plain texts included.
    assert ctype == CT_JSON, (command, ctype)
    return status, text


def ok_text(cluster, command, body, want):
    assert post(cluster, command, body) == (200, want)


def ok_json(cluster, command, body):
    status, text = post(cluster, command, body)
    assert status == 200, text
    return json.loads(text)


def fails(cluster, command, body, want):
    assert post(cluster, command, body) == (400, want)


def app_body(name, input_type="doubles", default_output="-1.0", slo=100000):
    return {"name": name, "input_type": input_type, "default_output": default_output,
            "latency_slo_micros": slo}


def model_body(name, version="1", input_type="doubles", labels=None, batch_size=-1,
               container="img"):
    return {"model_name": name, "model_version": version, "labels": labels or [],
            "input_type": input_type, "container_name": container,
            "model_data_path": "DEPRECATED", "batch_size": batch_size}


def add_app(cluster, name, input_type="doubles"):
    ok_text(cluster, "add_app", app_body(name, input_type),
            "Successfully added application with name '{}'".format(name))


def add_model(cluster, name, version="1", input_type="doubles"):
    ok_text(cluster, "add_model", model_body(name, version, input_type),
            "Successfully added model with name '{}' and input type '{}'".format(
                name, input_type))


def link(cluster, app, model):
    ok_text(cluster, "add_model_links", {"app_name": app, "model_names": [model]},
            "Successfully linked model with name '{}' to application '{}'".format(model, app))


# ---- ping and applications --------------------------------------------------

def test_ping_answers_pong_through_the_admin(cluster):
    status, text, ctype, _ = call(cluster, "GET", "/admin/ping")
    assert (status, text, ctype) == (200, "PONG", CT_JSON)


def test_add_app_and_a_duplicate(cluster):
    a = unique("app")
    ok_text(cluster, "add_app", app_body(a),
            "Successfully added application with name '{}'".format(a))
    fails(cluster, "add_app", app_body(a), "application '{}' already exists".format(a))


def test_delete_app_and_a_missing_one(cluster):
    a = unique("app")
    add_app(cluster, a)
    ok_text(cluster, "delete_app", {"name": a},
            "Successfully deleted application with name '{}'".format(a))
    fails(cluster, "delete_app", {"name": a}, "Application '{}' does not exist".format(a))


def test_application_listings_and_lookups(cluster):
    a = unique("app")
    add_app(cluster, a, "ints")
    names = ok_json(cluster, "get_all_applications", {"verbose": False})
    assert a in names and all(isinstance(n, str) for n in names)
    want = {"input_type": "integers", "default_output": "-1.0", "latency_slo_micros": 100000,
            "name": a, "linked_models": []}
    verbose = ok_json(cluster, "get_all_applications", {"verbose": True})
    assert want in verbose
    assert ok_json(cluster, "get_application", {"name": a}) == want
    assert ok_json(cluster, "get_application", {"name": unique("nope")}) == {}
    assert ok_json(cluster, "get_linked_models", {"app_name": a}) == []
    missing = unique("nope")
    fails(cluster, "get_linked_models", {"app_name": missing},
          "No application with name '{}' exists.".format(missing))


def test_get_state_is_the_default_output_as_a_raw_string(cluster):
    a = unique("app")
    ok_text(cluster, "add_app", app_body(a, default_output='{"label": 3}'),
            "Successfully added application with name '{}'".format(a))
    ok_text(cluster, "get_state", {"app_name": a, "uid": 0}, '{"label": 3}')
    # Clipper's answer for an unknown app was undefined; we say what is wrong.
    missing = unique("nope")
    fails(cluster, "get_state", {"app_name": missing, "uid": 0},
          "No application with name '{}' exists.".format(missing))


# ---- model links --------------------------------------------------------------

def test_add_model_links_checks_in_clippers_order(cluster):
    a, m, m2, other = unique("app"), unique("m"), unique("m2"), unique("ints")
    fails(cluster, "add_model_links", {"app_name": a, "model_names": [m]},
          "No app with name '{}' exists.".format(a))
    add_app(cluster, a)
    fails(cluster, "add_model_links", {"app_name": a, "model_names": [m]},
          "No model with name '{}' exists.".format(m))
    add_model(cluster, other, input_type="integers")
    fails(cluster, "add_model_links", {"app_name": a, "model_names": [other]},
          "Model with name '{}' has incompatible input_type 'integers'. Requested app to link "
          "to has input_type 'doubles'.".format(other))
    add_model(cluster, m)
    add_model(cluster, m2)
    fails(cluster, "add_model_links", {"app_name": a, "model_names": [m, m2]},
          "Applications must be linked with at most one model. Attempted to add links to 2 "
          "models.")
    fails(cluster, "add_model_links", {"app_name": a, "model_names": []},
          "Please provide the name of the model that you want to link to the application "
          "'{}'".format(a))
    link(cluster, a, m)
    fails(cluster, "add_model_links", {"app_name": a, "model_names": [m]},
          "The model with name '{}' is already linked to '{}'".format(m, a))
    fails(cluster, "add_model_links", {"app_name": a, "model_names": [m2]},
          "A model with name {} is already linked to '{}'.".format(m, a))
    assert ok_json(cluster, "get_linked_models", {"app_name": a}) == [m]


def test_delete_model_links_and_both_errors(cluster):
    a, m, m2 = unique("app"), unique("m"), unique("m2")
    fails(cluster, "delete_model_links", {"app_name": a, "model_names": [m]},
          "No app with name {} exists.".format(a))
    add_app(cluster, a)
    add_model(cluster, m)
    link(cluster, a, m)
    fails(cluster, "delete_model_links", {"app_name": a, "model_names": [m2]},
          "Cannot remove nonexistent link between app {} and model {}".format(a, m2))
    ok_text(cluster, "delete_model_links", {"app_name": a, "model_names": [m]}, "Success!")
    assert ok_json(cluster, "get_linked_models", {"app_name": a}) == []


# ---- models -------------------------------------------------------------------

def test_add_model_success_and_each_refusal(cluster):
    m = unique("m")
    fails(cluster, "add_model", model_body(m, batch_size=0),
          "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1")
    fails(cluster, "add_model", model_body("a:b"),
          "Invalid model name supplied: a:b. Contains one of: ',', ':'")
    fails(cluster, "add_model", model_body("a,b"),
          "Invalid model name supplied: a,b. Contains one of: ',', ':'")
    fails(cluster, "add_model", model_body(m, version="1:2"),
          "Invalid model version supplied: 1:2. Contains one of: ',', ':'")
    fails(cluster, "add_model", model_body(m, labels=["ok", "x,y"]),
          "Invalid label supplied: x,y. Contains one of: ',', ':'")
    ok_text(cluster, "add_model", model_body(m, input_type="d"),
            "Successfully added model with name '{}' and input type 'doubles'".format(m))
    fails(cluster, "add_model", model_body(m),
          "model with name '{}' and version '1' already exists".format(m))
    a = unique("app")
    add_app(cluster, a)
    link(cluster, a, m)
    fails(cluster, "add_model", model_body(m, version="2", input_type="strings"),
          "Model with name '{}' is already linked to app '{}' using input type 'doubles'. The "
          "input type you provided for a new version of the model, 'strings', is not "
          "compatible.".format(m, a))


def test_model_listings_lookups_and_versions(cluster):
    m = unique("m")
    add_model(cluster, m, "1")
    add_model(cluster, m, "2")  # a new version becomes the current one
    ids = ok_json(cluster, "get_all_models", {"verbose": False})
    assert "{}:1".format(m) in ids and "{}:2".format(m) in ids
    verbose = [o for o in ok_json(cluster, "get_all_models", {"verbose": True})
               if o["model_name"] == m]
    assert sorted((o["model_version"], o["is_current_version"]) for o in verbose) == [
        ("1", False), ("2", True)]
    clipper_fields = {"model_name": m, "model_version": "1", "input_type": "doubles",
                      "labels": [], "container_name": "img", "model_data_path": "DEPRECATED",
                      "is_current_version": False}
    got = ok_json(cluster, "get_model", {"model_name": m, "model_version": "1"})
    # Clipper's fields, exactly; we add batch_size, num_replicas, runtime and
    # the artifact's digest and size (documented in docs/protocol.md).
    assert {k: got[k] for k in clipper_fields} == clipper_fields
    assert ok_json(cluster, "get_model", {"model_name": m, "model_version": "9"}) == {}

    missing = unique("nope")
    fails(cluster, "set_model_version", {"model_name": missing, "model_version": "1"},
          "Cannot set version for nonexistent model '{}'".format(missing))
    fails(cluster, "set_model_version", {"model_name": m, "model_version": "9"},
          "Cannot set non-existent version '9' for model with name '{}'".format(m))
    ok_text(cluster, "set_model_version", {"model_name": m, "model_version": "1"},
            "Successfully set model with name '{}' to version '1'".format(m))
    assert ok_json(cluster, "get_model", {"model_name": m, "model_version": "1"})[
        "is_current_version"] is True

    ok_text(cluster, "delete_versioned_model", {"model_name": m, "model_version": "2"},
            "Successfully deleted model with name '{}' and version '2'".format(m))
    fails(cluster, "delete_versioned_model", {"model_name": m, "model_version": "2"},
          "model with name '{}' and version '2' does not exist".format(m))
    assert "{}:2".format(m) not in ok_json(cluster, "get_all_models", {"verbose": False})


def test_set_model_version_checks_linked_apps_input_type(cluster):
    m, a = unique("m"), unique("app")
    add_model(cluster, m, "1", "strings")
    add_model(cluster, m, "2", "doubles")
    add_app(cluster, a, "doubles")
    link(cluster, a, m)
    fails(cluster, "set_model_version", {"model_name": m, "model_version": "1"},
          "Model with name '{}' is already linked to app '{}' using input type 'doubles'. The "
          "input type you provided for a new version of the model, 'strings', is not "
          "compatible.".format(m, a))


# ---- containers -----------------------------------------------------------------

def test_container_listings_and_lookups(cluster):
    m = unique("cm")
    python_deployer.deploy_python_closure(cluster.conn, m, 1, "doubles",
                                          lambda xs: [str(len(x)) for x in xs])
    try:
        want_id = "{}:1:".format(m)
        deadline = time.monotonic() + 60
        ids = []
        while time.monotonic() < deadline:
            ids = [i for i in ok_json(cluster, "get_all_containers", {"verbose": False})
                   if i.startswith(want_id)]
            if ids:
                break
            time.sleep(0.2)
        assert len(ids) == 1, ids
        replica_id = int(ids[0].rsplit(":", 1)[1])
        verbose = [o for o in ok_json(cluster, "get_all_containers", {"verbose": True})
                   if o["model_name"] == m]
        want = {"model_id": "{}:1".format(m), "model_name": m, "model_version": "1",
                "model_replica_id": replica_id, "input_type": "doubles"}
        assert len(verbose) == 1
        # Clipper's fields, exactly; we add state, cause, host and pid.
        assert {k: verbose[0][k] for k in want} == want
        one = ok_json(cluster, "get_container",
                      {"model_name": m, "model_version": "1", "replica_id": replica_id})
        assert {k: one[k] for k in want} == want
        assert ok_json(cluster, "get_container",
                       {"model_name": m, "model_version": "1", "replica_id": 999}) == {}
    finally:
        cluster.conn.stop_models([m])


# ---- where we deliberately differ from Clipper ----------------------------------

def test_an_invalid_input_type_is_a_400_not_a_dropped_connection(cluster):
    # Clipper's handler threw and sent no response at all; we say what was wrong.
    a = unique("app")
    fails(cluster, "add_app", app_body(a, input_type="tensors"),
          "Invalid input_type 'tensors'. " + VALID_TYPES)
    fails(cluster, "add_model", model_body(unique("m"), input_type="tensors"),
          "Invalid input_type 'tensors'. " + VALID_TYPES)
    assert ok_json(cluster, "get_application", {"name": a}) == {}


def test_a_body_that_is_not_json_gets_clippers_parse_error(cluster):
    status, text = post(cluster, "add_app", raw=b'{"name": ')
    assert status == 400
    assert text.startswith("Error parsing JSON: ")
    assert '. Expected JSON schema: \n  {\n   "name" := string,' in text
    status, text = post(cluster, "get_all_applications", raw=b"{}")
    assert status == 400
    assert text == ("Error parsing JSON: JSON object does not have required key: verbose. "
                    "Expected JSON schema: \n  {\n    \"verbose\" := bool\n  }\n")


def test_an_unknown_route_is_404_naming_the_valid_ones(cluster):
    # Clipper's answer to an unknown route is not specified; ours names the valid ones.
    status, text, ctype, _ = call(cluster, "POST", "/admin/frobnicate", {})
    assert status == 404 and ctype == CT_JSON
    assert text.startswith("No route for POST /admin/frobnicate. Routes: GET /admin/ping, "
                           "POST /admin/<command>")
    assert "add_app" in text and "get_state" in text


def test_a_wrong_method_is_405(cluster):
    # Clipper's answer to a wrong method is not specified; 405 with Allow says what to use.
    status, text, _, resp = call(cluster, "GET", "/admin/add_app")
    assert (status, text) == (405, "Method GET is not allowed on /admin/add_app; use POST")
    assert resp.getheader("Allow") == "POST"
    status, text, _, resp = call(cluster, "POST", "/admin/ping", {})
    assert (status, text) == (405, "Method POST is not allowed on /admin/ping; use GET")
    assert resp.getheader("Allow") == "GET"


def test_a_body_over_the_cap_is_413(cluster):
    # Clipper set no cap we know of; ours keeps a runaway client from filling memory.
    status, text = post(cluster, "add_app", raw=b" " * (1024 * 1024 + 1))
    assert status == 413
    assert text == "The request body is larger than 1048576 bytes"


def test_after_all_the_bad_requests_the_door_still_serves(cluster):
    for method, path, raw in [("POST", "/admin/add_app", b"\xff\xfe"),
                              ("POST", "/admin/add_app", b"[]"),
                              ("GET", "/admin/get_model", None),
                              ("PUT", "/admin/ping", b"x"),
                              ("POST", "/nope", b"{}")]:
        status, _, _, _ = call(cluster, method, path, raw=raw)
        assert 400 <= status < 500
    a = unique("after")
    add_app(cluster, a)
    assert call(cluster, "GET", "/admin/ping")[:2] == (200, "PONG")


# ---- one source of truth ----------------------------------------------------------

def test_http_and_the_nats_admin_see_the_same_state(cluster):
    over_http = unique("http")
    add_app(cluster, over_http)
    assert over_http in cluster.conn.get_all_apps()
    over_nats = unique("nats")
    cluster.conn.register_application(over_nats, "floats", "0", 20000)
    assert over_nats in ok_json(cluster, "get_all_applications", {"verbose": False})
    assert ok_json(cluster, "get_application", {"name": over_nats})["input_type"] == "floats"
    cluster.conn.delete_application(over_http)
    assert ok_json(cluster, "get_application", {"name": over_http}) == {}
