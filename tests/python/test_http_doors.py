"""The HTTP doors' TLS and bearer tokens on a real cluster
(docs/security.md, "HTTP doors"): LocalContainerManager(http_tls_cert=...,
http_tls_key=..., admin_token_file=..., metrics_token_file=...) runs
`clipper start` with --http-tls-cert/--http-tls-key, --admin-token-file and
--metrics-token-file.

* the management REST answers 401 (WWW-Authenticate: Bearer) without its
  token or with another, and Clipper's answers with it, over HTTPS;
* the Prometheus port likewise, with a token of its own;
* the query port serves Clipper's /<app>/predict over HTTPS (no token:
  Clipper's clients send none), and refuses plain HTTP and clients that do
  not trust the CA;
* the management REST listens on 127.0.0.1 only, the query port on every
  interface.

The CA and the server certificate (127.0.0.1 as an IP subjectAltName) are
made with the openssl program; the clients are the standard library's,
with an ssl context that trusts that CA."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import uuid

import pytest

from clipper_admin.deployers import python as python_deployer

from conftest import serve_cluster, start_cluster

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
QUERY_TOKEN = "query-" + uuid.uuid4().hex
REALM = 'Bearer realm="clipper"'


def openssl(cwd, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, "openssl {} failed: {}".format(" ".join(args), r.stderr)


def make_ca_and_server_cert(d):
    """ca.pem and server.pem/server.key for 127.0.0.1, signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=clipper-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl(d, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    os.chmod(os.path.join(d, "server.key"), 0o600)


def write_secret(path, text):
    """A file only its owner may read, as the doors require of token files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("http-doors"))
    make_ca_and_server_cert(d)
    cm_args = {
        "http_tls_cert": os.path.join(d, "server.pem"),
        "http_tls_key": os.path.join(d, "server.key"),
        "admin_token_file": write_secret(os.path.join(d, "admin.token"), ADMIN_TOKEN + "\n"),
        "metrics_token_file": write_secret(os.path.join(d, "metrics.token"),
                                           METRICS_TOKEN + "\n"),
        "query_token_file": write_secret(os.path.join(d, "query.token"), QUERY_TOKEN + "\n"),
    }
    c = start_cluster("doors", cm_args=cm_args)
    c.ca = os.path.join(d, "ca.pem")
    yield from serve_cluster(c)


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def request(port, method, path, ca=None, token=None, body=None, timeout=30):
    """(status, text, headers) over HTTPS trusting ca (None: the system's
    CAs), with "Authorization: Bearer token" when token is given."""
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace"), r
    finally:
        conn.close()


def plain_http_fails(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        raise AssertionError("plain HTTP to the TLS port {} was answered {}".format(
            port, r.status))
    except (http.client.HTTPException, OSError):
        pass
    finally:
        conn.close()


def assert_401(answer, what):
    status, text, r = answer
    assert status == 401, (what, status, text)
    assert r.getheader("WWW-Authenticate") == REALM, (what, r.getheaders())
    assert "bearer" in text.lower(), (what, text)  # the door's cause, not an empty body


# ---- the management REST ------------------------------------------------------

def test_management_rest_needs_its_token(secured):
    port = port_of(secured.cm.get_admin_addr())
    assert_401(request(port, "GET", "/admin/ping", secured.ca), "no token")
    assert_401(request(port, "GET", "/admin/ping", secured.ca, token="wrong"), "a wrong token")
    assert_401(request(port, "GET", "/admin/ping", secured.ca, token=METRICS_TOKEN),
               "the metrics port's token")
    assert_401(request(port, "POST", "/admin/add_app", secured.ca,
                       body={"name": "nope", "input_type": "doubles", "default_output": "-1",
                             "latency_slo_micros": 100000}),
               "a command without the token")
    assert "nope" not in secured.conn.get_all_apps()

    status, text, _ = request(port, "GET", "/admin/ping", secured.ca, token=ADMIN_TOKEN)
    assert (status, text) == (200, "PONG")
    status, text, _ = request(port, "POST", "/admin/get_all_applications", secured.ca,
                              token=ADMIN_TOKEN, body={"verbose": False})
    assert status == 200 and isinstance(json.loads(text), list), text
    plain_http_fails(port)


# ---- the Prometheus port --------------------------------------------------------

def test_metrics_port_needs_its_own_token(secured):
    port = port_of(secured.cm.get_metric_addr())
    assert_401(request(port, "GET", "/metrics", secured.ca), "no token")
    assert_401(request(port, "GET", "/metrics", secured.ca, token=ADMIN_TOKEN),
               "the admin's token")
    status, text, r = request(port, "GET", "/metrics", secured.ca, token=METRICS_TOKEN)
    assert status == 200, text
    assert "clipper_frontend_info" in text and r.getheader("WWW-Authenticate") is None
    plain_http_fails(port)


# ---- the query port -----------------------------------------------------------------

def test_query_port_serves_predictions_over_https(secured):
    app = "tls-{}".format(uuid.uuid4().hex[:6])
    python_deployer.create_endpoint(secured.conn, app, "doubles",
                                    lambda xs: [str(sum(x)) for x in xs],
                                    default_output="-1.0", slo_micros=20000000)
    port = port_of(secured.cm.get_query_addr())
    path = "/{}/predict".format(app)
    deadline = time.monotonic() + 60
    while True:  # until the replica answers rather than the default
        status, text, _ = request(port, "POST", path, secured.ca, token=QUERY_TOKEN,
                                  body={"input": [1.0, 2.5]})
        assert status == 200, text
        reply = json.loads(text)
        if reply["default"] is False:
            break
        assert time.monotonic() < deadline, "the replica never answered: {}".format(reply)
        time.sleep(0.2)
    assert reply["output"] == 3.5, reply

    plain_http_fails(port)
    with pytest.raises(ssl.SSLCertVerificationError):
        request(port, "POST", path, token=QUERY_TOKEN, body={"input": [1.0]})  # system CAs

    # The query port's own token (query_token_file): none, another door's,
    # or a wrong one is refused before the query reaches a handler.
    for token, what in ((None, "no token"), (METRICS_TOKEN, "the metrics token"),
                        (QUERY_TOKEN + "x", "a wrong token")):
        assert_401(request(port, "POST", path, secured.ca, token=token,
                           body={"input": [1.0, 2.5]}), what)
        assert_401(request(port, "GET", "/metrics", secured.ca, token=token), what)

    # ClipperConnection reads the query port's metrics over HTTPS too,
    # trusting the port's own certificate.
    metrics = secured.conn.inspect_instance()
    assert any(app in json.dumps(v) for v in metrics.values()), metrics


# ---- where the doors listen -----------------------------------------------------------

def outward_address():
    """This host's address on its default route, or None (nothing is sent:
    connecting a UDP socket only picks the route)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


def accepts(addr, port):
    with socket.socket() as s:
        s.settimeout(3)
        return s.connect_ex((addr, port)) == 0


def test_management_rest_listens_on_loopback_only(secured):
    addr = outward_address()
    if addr is None:
        pytest.skip("this host has no address other than loopback")
    assert accepts("127.0.0.1", port_of(secured.cm.get_admin_addr()))
    assert not accepts(addr, port_of(secured.cm.get_admin_addr())), (
        "the management REST answers on {}".format(addr))
    assert accepts(addr, port_of(secured.cm.get_query_addr()))
