"""Stored model artifacts are immutable, end to end on a real cluster: a
publish on a deployed version's artifact subjects changes nothing its
replicas load; the uploader refuses other bytes for a version that has an
artifact, and a deploy whose registration failed leaves none behind, so
the corrected deploy of that version works; deleting a version (stop_models)
still frees it for a new deploy.
"""
import json
import time
import uuid

import pytest

from clipper_admin import ClipperException
from clipper_admin.deployers import python as python_deployer

from conftest import stop_test_models


@pytest.fixture(autouse=True)
def stop_models_after_each_test(request):
    yield
    stop_test_models(request, unregister_apps=True)


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def until(cond, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_publish_on_a_deployed_versions_artifact_changes_nothing_replicas_load(cluster):
    conn = cluster.conn
    app = unique("probe")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["v1"] * len(xs),
                                    slo_micros=3000000)
    bus = conn.bus
    # What an outside probe did: a manifest of other bytes on .meta. The
    # stream refuses it (a JetStream publish hears why; a plain one is
    # dropped the same way).
    forged = json.dumps({"size": 3, "chunks": 1, "chunk_size": 3,
                         "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f"
                                   "20015ad"}).encode()
    for part in ("meta", "c.0"):
        reply = bus.request("{}.artifact.{}.1.{}".format(bus.prefix, app, part), forged, 5000)
        assert b"maximum messages per subject exceeded" in reply, reply
    # A replica that starts now loads the registered function.
    conn.set_num_replicas(app, 2)
    assert conn.get_num_replicas(app) == 2
    for _ in range(6):
        assert cluster.nats(app, {"input": [1.0]})["output"] == "v1"


def test_other_bytes_for_a_version_with_a_stored_artifact_are_refused(cluster):
    conn = cluster.conn
    name = unique("orphan")
    # An artifact nobody registered (an upload whose deploy never got to
    # add_model): the same version with other bytes is refused, saying why.
    conn.bus.put_artifact(name, "1", b"not the function")
    with pytest.raises(ClipperException) as e:
        python_deployer.deploy_python_closure(conn, name, 1, "doubles",
                                              lambda xs: ["x"] * len(xs))
    assert "Cannot upload the artifact of model {}:1".format(name) in str(e.value)
    assert "cannot be replaced" in str(e.value)
    assert conn.get_model_info(name, 1) is None
    assert conn.bus.get_artifact(name, "1") == b"not the function"


def test_a_deploy_refused_at_registration_leaves_no_artifact_behind(cluster):
    conn = cluster.conn
    app = unique("links")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["v1"] * len(xs),
                                    slo_micros=3000000)
    # Version 2 as strings: the app linked to the model takes doubles, so
    # add_model refuses it after the upload.
    with pytest.raises(ClipperException, match="is not compatible"):
        python_deployer.deploy_python_closure(conn, app, 2, "strings",
                                              lambda xs: ["wrong"] * len(xs))
    from clipper_admin._bus import BusError
    with pytest.raises(BusError):
        conn.bus.get_artifact(app, "2")
    # The corrected deploy of the same version, with another function.
    python_deployer.deploy_python_closure(conn, app, 2, "doubles", lambda xs: ["v2"] * len(xs))
    until(lambda: cluster.nats(app, {"input": [1.0]})["output"] == "v2", "v2 not served")


def test_a_deleted_version_can_be_deployed_again_with_other_bytes(cluster):
    conn = cluster.conn
    app = unique("again")
    python_deployer.create_endpoint(conn, app, "doubles", lambda xs: ["first"] * len(xs),
                                    slo_micros=3000000)
    with pytest.raises(ClipperException, match="already exists"):
        python_deployer.deploy_python_closure(conn, app, 1, "doubles",
                                              lambda xs: ["second"] * len(xs))
    conn.stop_models([app])
    python_deployer.deploy_python_closure(conn, app, 1, "doubles",
                                          lambda xs: ["second"] * len(xs))
    until(lambda: cluster.nats(app, {"input": [1.0]})["output"] == "second",
          "the version deployed again does not serve its new function")
