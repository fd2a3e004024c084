"""The C extension clipper_admin._bus against a real nats-server (and, for
timeouts, a fake server that accepts but never answers)."""
import gc
import os
import socket
import threading
import time

import pytest

from clipper_admin import _bus
from clipper_admin._bus import Bus, BusError, BusTimeout, NoResponders

from conftest import free_port


class SilentNatsServer(object):
    """Speaks just enough NATS to let a client connect, then never delivers
    a message: every request to it times out."""

    def __init__(self, send_info=True):
        self.send_info = send_info
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "nats://127.0.0.1:{}".format(self.port)

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        if self.send_info:
            conn.sendall(b'INFO {"server_id":"fake","version":"2.9.10","proto":1,'
                         b'"headers":true,"max_payload":1048576,"host":"127.0.0.1","port":'
                         + str(self.port).encode() + b'}\r\n')
        buf = b""
        conn.settimeout(0.1)
        while not self.stop:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                if line.startswith(b"PING") and self.send_info:
                    conn.sendall(b"PONG\r\n")

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_server():
    s = SilentNatsServer()
    try:
        yield s
    finally:
        s.close()


def test_exceptions_form_a_hierarchy_under_bus_error():
    assert issubclass(BusError, Exception)
    assert issubclass(BusTimeout, BusError)
    assert issubclass(NoResponders, BusError)
    assert _bus.DEFAULT_PREFIX == "clipper"


def test_unreachable_url_raises_bus_error_naming_the_url():
    url = "nats://127.0.0.1:{}".format(free_port())
    with pytest.raises(BusError) as info:
        Bus(url, connect_timeout_ms=500)
    assert url in str(info.value)
    assert info.value.status == "ERR_UNREACHABLE"


def test_connect_has_defaults_and_properties(nats_url):
    with Bus(nats_url) as bus:
        assert bus.url == nats_url
        assert bus.prefix == "clipper"
        assert bus.connected
        assert not bus.closed
        assert bus.max_payload >= 1024 * 1024
        assert nats_url in repr(bus)
    with Bus(nats_url, "other", "a-test", 1000) as bus:
        assert bus.prefix == "other"


def test_invalid_prefix_is_rejected(nats_url):
    with pytest.raises(ValueError, match="prefix"):
        Bus(nats_url, prefix="a.b")


def test_admin_without_admin_actor_raises_no_responders(nats_url):
    with Bus(nats_url, prefix="nobody-home") as bus:
        with pytest.raises(NoResponders) as info:
            bus.admin("get_all_applications", b'{"verbose": false}', 2000)
    assert "nobody-home.admin.get_all_applications" in str(info.value)
    assert info.value.status == "ERR_NO_RESPONDERS"


def test_predict_without_frontend_raises_no_responders(nats_url):
    with Bus(nats_url) as bus:
        with pytest.raises(NoResponders, match="clipper.predict.some-app"):
            bus.predict("some-app", b'{"input": [1.0]}', 2000)


def test_request_without_reply_raises_bus_timeout(silent_server):
    with Bus(silent_server.url) as bus:
        start = time.monotonic()
        with pytest.raises(BusTimeout) as info:
            bus.request("anything", b"x", 300)
        assert 0.25 < time.monotonic() - start < 5
    assert "within 300 ms" in str(info.value)
    assert info.value.status == "ERR_TIMEOUT"


def test_request_releases_the_gil(silent_server):
    with Bus(silent_server.url) as bus:
        counter = [0]
        done = threading.Event()

        def spin():
            while not done.is_set():
                counter[0] += 1

        t = threading.Thread(target=spin)
        t.start()
        try:
            with pytest.raises(BusTimeout):
                bus.request("anything", b"x", 500)
            during = counter[0]
        finally:
            done.set()
            t.join()
    # With the GIL held for the whole request, the spinner would be stuck.
    assert during > 1000


def test_concurrent_requests_from_threads_each_get_their_error(nats_url):
    with Bus(nats_url) as bus:
        errors = []

        def ask(i):
            try:
                bus.admin("cmd{}".format(i), b"{}", 2000)
            except NoResponders as e:
                errors.append(str(e))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(errors) == 8


def test_invalid_app_name_raises_value_error(nats_url):
    with Bus(nats_url) as bus:
        with pytest.raises(ValueError, match="'.'"):
            bus.predict("bad.app", b"{}", 1000)
        with pytest.raises(ValueError):
            bus.admin("", b"{}", 1000)


def test_timeout_must_be_positive(nats_url):
    with Bus(nats_url) as bus:
        with pytest.raises(ValueError, match="timeout_ms"):
            bus.request("x", b"", 0)


def test_oversized_request_raises_bus_error_saying_so(nats_url):
    with Bus(nats_url) as bus:
        big = b"x" * (bus.max_payload + 1)
        with pytest.raises(BusError) as info:
            bus.predict("app", big, 1000)
    assert "exceeds the server's max payload" in str(info.value)
    assert info.value.status == "ERR_TOO_LARGE"


def test_artifact_roundtrip_across_many_chunks(nats_url):
    data = os.urandom(3 * 1024 * 1024 + 17)
    with Bus(nats_url) as bus:
        digest = bus.put_artifact("model-a", "1", data)
        assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
        import hashlib
        assert digest == hashlib.sha256(data).hexdigest()
        assert bus.get_artifact("model-a", "1") == data
        # A stored artifact is immutable: other bytes are refused, the
        # same bytes again (a retried upload) are fine.
        with pytest.raises(BusError) as info:
            bus.put_artifact("model-a", "1", b"small")
        assert info.value.status == "ERR_EXISTS"
        assert "cannot be replaced" in str(info.value)
        assert bus.get_artifact("model-a", "1") == data
        assert bus.put_artifact("model-a", "1", data) == digest
        assert bus.put_artifact("model-a", "2", b"") is not None
        assert bus.get_artifact("model-a", "2") == b""


def test_missing_artifact_raises_bus_error_not_found(nats_url):
    with Bus(nats_url) as bus:
        with pytest.raises(BusError) as info:
            bus.get_artifact("nothing", "1")
    assert info.value.status == "ERR_NOT_FOUND"
    assert "nothing" in str(info.value)


def test_closed_bus_raises_bus_error_on_use(nats_url):
    bus = Bus(nats_url)
    bus.close()
    bus.close()  # twice is fine
    assert bus.closed and not bus.connected
    for call in (lambda: bus.request("x", b"", 100), lambda: bus.admin("ping", b"", 100),
                 lambda: bus.predict("a", b"", 100), lambda: bus.put_artifact("m", "1", b""),
                 lambda: bus.get_artifact("m", "1"), lambda: bus.max_payload):
        with pytest.raises(BusError, match="closed"):
            call()


def test_close_while_a_request_is_in_flight_is_safe(silent_server):
    bus = Bus(silent_server.url)
    result = []

    def ask():
        try:
            bus.request("x", b"", 800)
        except BusError as e:
            result.append(type(e))

    t = threading.Thread(target=ask)
    t.start()
    time.sleep(0.2)
    bus.close()
    t.join()
    assert result and issubclass(result[0], BusError)
    with pytest.raises(BusError):
        bus.request("x", b"", 100)


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_dropped_buses_are_garbage_collected_and_closed(nats_url):
    Bus(nats_url).close()  # warm up the client library's own threads and fds
    before = _open_fds()
    for _ in range(20):
        b = Bus(nats_url)
        b.admin  # noqa: B018 - touch
        del b
    gc.collect()
    assert _open_fds() <= before + 2


def test_subclass_and_reinit_are_safe(nats_url):
    class MyBus(Bus):
        pass

    b = MyBus(nats_url, prefix="sub")
    assert b.prefix == "sub"
    with pytest.raises(NoResponders):
        b.admin("ping", b"{}", 1000)
    with pytest.raises(RuntimeError):
        b.__init__(nats_url)
    b.close()
