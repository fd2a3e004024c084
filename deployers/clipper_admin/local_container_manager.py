"""LocalContainerManager: a whole cluster as processes on this machine.

start_clipper runs `clipper start` (nats-server, admin, router, frontend and
the container manager, which starts model replicas as local processes) in a
process group of its own, logging to a file, and waits for its
"cluster ready" line. stop_all stops everything it started, replicas
included, and leaves no process behind.

The bus:
* ``nats_url=None``: `clipper start` runs a private nats-server with
  JetStream on a free port; its data lives under CLIPPER_TEMP_DIR unless
  ``data_dir`` is given. The cluster is recorded in
  CLIPPER_TEMP_DIR/clusters/<cluster_name>.json so that connect() from
  another process finds it (as Clipper's Docker manager found its containers
  by label).
* ``nats_url="nats://host:4222"``: `clipper start --nats URL` joins that bus,
  and connect() joins a cluster already on it.

The subject prefix is "clipper" for the default cluster name
("default-cluster") and the cluster name otherwise, so two clusters share a
bus without seeing each other; ``prefix`` overrides it.

Clipper's redis_ip, redis_port and clipper_rpc_port are accepted and unused:
state lives in JetStream KV and replicas talk over NATS.

The HTTP ports (docs/security.md, "HTTP doors"), keyword-only and off by
default:
* ``http_tls_cert``, ``http_tls_key``: PEM files; the query, metrics and
  management ports then serve HTTPS only (clients must trust the
  certificate's CA).
* ``admin_token_file``, ``metrics_token_file``, ``query_token_file``:
  files (mode 0600) whose first line is the bearer token the management
  REST, the Prometheus metrics port or the query port then requires
  (``Authorization: Bearer <token>``). The query port takes none by
  default, as in Clipper, whose clients send none.
The management REST listens on 127.0.0.1 (get_admin_addr()).
"""
import atexit
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import _locate, _secrets
from ._bus_models import BusModels, check_start_args, cluster_exists, ping_admin
from ._bus import Bus, BusError
from .container_manager import (CLIPPER_INTERNAL_MANAGEMENT_PORT,
                                CLIPPER_INTERNAL_METRIC_PORT,
                                CLIPPER_INTERNAL_QUERY_PORT,
                                CLIPPER_INTERNAL_REDIS_PORT,
                                CLIPPER_INTERNAL_RPC_PORT, ContainerManager)
from .exceptions import ClipperException

logger = logging.getLogger(__name__)

CLIPPER_TEMP_DIR = "/tmp/clipper"  # Clipper's value; also in clipper_admin
DEFAULT_CLUSTER_NAME = "default-cluster"
DEFAULT_PREFIX = "clipper"
READY_MARK = "cluster ready"

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _free_port():
    """A TCP port that nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _absolute(path):
    """path made absolute (None stays None), so that it names the same file
    to `clipper start` whatever the working directory."""
    return None if path is None else os.path.abspath(path)


def find_unbound_port(start):
    """Clipper's rule: keep the requested port when it is free, else pick one."""
    if start and _port_is_free(start):
        return start
    port = _free_port()
    logger.info("Port %s is in use; using %s instead", start, port)
    return port


# ---- processes -------------------------------------------------------------

def _proc_stat(pid):
    """(ppid, starttime, state) of pid, or None when it is gone."""
    try:
        with open("/proc/{}/stat".format(pid), "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2:].split()
    return int(rest[1]), int(rest[19]), rest[0]


def _descendants(root):
    """{pid: starttime} of root and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append((int(entry), st[1]))
    found = {}
    root_st = _proc_stat(root)
    if root_st is not None:
        found[root] = root_st[1]
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = start
                todo.append(pid)
    return found


def _alive(pid, start):
    st = _proc_stat(pid)
    return st is not None and st[1] == start and st[2] not in ("Z", "X")


def _signal_all(procs, sig):
    for pid, start in procs.items():
        if _alive(pid, start):
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def _wait_gone(procs, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(_alive(p, s) for p, s in procs.items()):
            return True
        time.sleep(0.05)
    return not any(_alive(p, s) for p, s in procs.items())


_ping = ping_admin  # the name the other managers import


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read {}: {})".format(path, e)
    return "\n".join(text.splitlines()[-lines:])


def cluster_prefix(cluster_name, prefix=None):
    """The cluster's NATS subject prefix: prefix when given, else "clipper"
    for the default cluster name and the cluster name otherwise; checked."""
    if prefix is None:
        prefix = DEFAULT_PREFIX if cluster_name == DEFAULT_CLUSTER_NAME else cluster_name
    if not isinstance(prefix, str) or not _TOKEN_RE.match(prefix):
        raise ClipperException(
            "Invalid cluster prefix {!r}: the subject prefix (the cluster name unless "
            "prefix= is given) must be 1 to 64 letters, digits, '-' or '_'".format(prefix))
    return prefix


class LocalContainerManager(BusModels, ContainerManager):
    """Runs a Clipper cluster as local processes around a NATS bus."""

    start_timeout_s = 60.0   # how long start_clipper waits for "cluster ready"
    stop_timeout_s = 15.0    # graceful stop, then SIGKILL
    replicas_timeout_s = 60.0

    def __init__(self, cluster_name=DEFAULT_CLUSTER_NAME, clipper_query_port=1337,
                 clipper_management_port=1338, clipper_rpc_port=7000, redis_ip=None,
                 redis_port=6379, prometheus_port=9090, nats_url=None, data_dir=None,
                 prefix=None, *, http_tls_cert=None, http_tls_key=None,
                 admin_token_file=None, metrics_token_file=None, creds=None, tls_ca=None,
                 insecure=False, query_token_file=None, bus_tls=True, tls_name=None):
        prefix = cluster_prefix(cluster_name, prefix)
        if (http_tls_cert is None) != (http_tls_key is None):
            raise ClipperException("http_tls_cert and http_tls_key go together: give both")
        # An identity and CA to join a cluster's bus with (docs/security.md);
        # by default, the operator identity in data_dir/secrets.
        self._creds = _absolute(creds)
        self._tls_ca = _absolute(tls_ca)
        if tls_name is not None and (not isinstance(tls_name, str) or not tls_name or
                                     any(c.isspace() for c in tls_name)):
            raise ClipperException(
                "tls_name must be the name nats-server's certificate carries (no spaces), "
                "got {!r}".format(tls_name))
        self._tls_name = tls_name
        # start_clipper without identities or TLS on the bus ('clipper start
        # --insecure', which says so in its log).
        self._insecure = bool(insecure)
        # bus_tls=False: identities and permissions without TLS on the
        # nats-server 'clipper start' runs, which listens on 127.0.0.1 only
        # ('clipper start --bus-tls off'; docs/security.md).
        self._bus_tls = bool(bus_tls)
        self.cluster_name = cluster_name
        self.cluster_identifier = cluster_name
        self.prefix = prefix
        self.nats_url = nats_url
        self.data_dir = data_dir
        self.clipper_query_port = clipper_query_port
        self.clipper_management_port = clipper_management_port
        self.clipper_rpc_port = clipper_rpc_port
        self.redis_ip = redis_ip
        self.redis_port = redis_port
        self.prometheus_port = prometheus_port
        self.http_tls_cert = _absolute(http_tls_cert)
        self.http_tls_key = _absolute(http_tls_key)
        self.admin_token_file = _absolute(admin_token_file)
        self.metrics_token_file = _absolute(metrics_token_file)
        self.query_token_file = _absolute(query_token_file)

        self.bus = None
        self.bus_url = nats_url      # the bus in use (private or given)
        self.log_file = None
        self.log_dir = None
        self._proc = None            # the `clipper start` we started
        self._pid = None             # its pid (ours, or found in the state file)
        self._pid_start = None
        self._run_dir = None         # the directory start_clipper created (logs, data)
        self._own_data_dir = False
        self._state_file = None
        self._atexit_registered = False

    # ---- addresses ---------------------------------------------------------

    def get_query_addr(self):
        return "127.0.0.1:{}".format(self.clipper_query_port)

    def get_admin_addr(self):
        return "127.0.0.1:{}".format(self.clipper_management_port)

    def get_metric_addr(self):
        return "127.0.0.1:{}".format(self.prometheus_port)

    def get_bus_url(self):
        return self.bus_url

    # ---- start / connect ---------------------------------------------------

    def _cluster_file(self):
        return os.path.join(CLIPPER_TEMP_DIR, "clusters", "{}.json".format(self.cluster_name))

    def _read_cluster_file(self):
        try:
            with open(self._cluster_file()) as f:
                info = json.load(f)
        except (OSError, ValueError):
            return None
        pid, start = info.get("pid"), info.get("pid_start")
        if not isinstance(pid, int) or not _alive(pid, start):
            return None
        return info

    def _write_cluster_file(self):
        path = self._cluster_file()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        info = {
            "cluster_name": self.cluster_name, "prefix": self.prefix,
            "nats_url": self.bus_url, "pid": self._pid, "pid_start": self._pid_start,
            "query_port": self.clipper_query_port,
            "management_port": self.clipper_management_port,
            "metric_port": self.prometheus_port, "log_file": self.log_file,
            "log_dir": self.log_dir, "data_dir": self.data_dir,
            "own_data_dir": self._own_data_dir, "run_dir": self._run_dir,
        }
        tmp = path + ".tmp{}".format(os.getpid())
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, path)
        self._state_file = path

    def _bus_auth(self):
        """The operator identity and the CA that 'clipper start' made in the
        data directory (docs/security.md), as Bus arguments; {} for a
        cluster without them (started with --insecure, or on a given bus
        without secrets)."""
        if self._creds is not None or self._tls_ca is not None:
            auth = {"creds": self._creds, "tls_ca": self._tls_ca}
            if self._tls_name is not None:
                auth["tls_name"] = self._tls_name
            return auth
        if not self.data_dir:
            return {}
        creds = _secrets.creds_file(self.data_dir, "operator")
        ca = _secrets.ca_file(self.data_dir)
        if os.path.exists(creds) and os.path.exists(ca):
            # A bus without TLS (--bus-tls off) says so by its URL.
            if (self.bus_url or "").startswith("nats://"):
                return {"creds": creds}
            return {"creds": creds, "tls_ca": ca}
        return {}

    def bus_auth_args(self):
        """The identity and CA this manager joins the bus with, as the
        command-line options of the clipper programs ('--creds F --tls-ca
        F'; [] on an open bus): for tools such as clipper-bench."""
        out = []
        for option, key in (("--creds", "creds"), ("--tls-ca", "tls_ca"),
                            ("--tls-name", "tls_name")):
            value = self._bus_auth().get(key)
            if value:
                out += [option, value]
        return out

    def _answers(self, url):
        """True when an admin actor of our prefix answers on url."""
        try:
            with Bus(url, prefix=self.prefix, connect_timeout_ms=2000, **self._bus_auth()) as bus:
                return _ping(bus, 3000)
        except BusError:
            return False

    def _start_args(self, binary, nats_port, cache_size, num_frontend_replicas):
        check_start_args("LocalContainerManager", cache_size, num_frontend_replicas,
                         max_frontends=2)
        args = [binary, "start", "--prefix", self.prefix,
                "--frontends", str(num_frontend_replicas),
                "--http-port", str(self.clipper_query_port),
                "--admin-port", str(self.clipper_management_port),
                "--metrics-port", str(self.prometheus_port),
                "--cache-size", str(cache_size),
                "--data-dir", self.data_dir, "--log-dir", self.log_dir]
        if self.nats_url is not None:
            args += ["--nats", self.nats_url]
        else:
            args += ["--nats-port", str(nats_port)]
        if self._insecure:
            args.append("--insecure")
        if not self._bus_tls and self.nats_url is None:
            args += ["--bus-tls", "off"]
        for option, path in (("--http-tls-cert", self.http_tls_cert),
                             ("--http-tls-key", self.http_tls_key),
                             ("--admin-token-file", self.admin_token_file),
                             ("--metrics-token-file", self.metrics_token_file),
                             ("--query-token-file", self.query_token_file)):
            if path is not None:
                args += [option, path]
        return args

    def start_clipper(self, query_frontend_image=None, mgmt_frontend_image=None,
                      frontend_exporter_image=None, cache_size=33554432,
                      qf_http_thread_pool_size=1, qf_http_timeout_request=5,
                      qf_http_timeout_content=300, num_frontend_replicas=1):
        if self._proc is not None and self._proc.poll() is None:
            raise ClipperException(
                "Cluster {} is already running (started by this LocalContainerManager, "
                "pid {})".format(self.cluster_name, self._proc.pid))
        exists = cluster_exists(self.cluster_name).msg
        if self.nats_url is not None:
            if self._answers(self.nats_url):
                raise ClipperException(
                    exists + " (an admin actor already answers on {}.admin.ping at {})".format(
                        self.prefix, self.nats_url))
        else:
            info = self._read_cluster_file()
            if info is not None and self._answers(info["nats_url"]):
                raise ClipperException(exists + " (pid {}, NATS {})".format(
                    info["pid"], info["nats_url"]))

        binary = _locate.clipper_bin()
        os.makedirs(CLIPPER_TEMP_DIR, exist_ok=True)
        run_dir = tempfile.mkdtemp(prefix="{}-".format(self.cluster_name), dir=CLIPPER_TEMP_DIR)
        self._run_dir = run_dir
        if self.data_dir is None:
            self.data_dir = os.path.join(run_dir, "data")
            self._own_data_dir = True
        else:
            self._own_data_dir = False
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_dir = os.path.join(run_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.log_file = os.path.join(run_dir, "clipper-start.log")

        self.clipper_query_port = find_unbound_port(self.clipper_query_port)
        self.clipper_management_port = find_unbound_port(self.clipper_management_port)
        self.prometheus_port = find_unbound_port(self.prometheus_port)
        nats_port = _free_port() if self.nats_url is None else None
        args = self._start_args(binary, nats_port, cache_size, num_frontend_replicas)

        env = dict(os.environ)
        nats_server = _locate.nats_server()
        if nats_server is not None:
            env.setdefault("CLIPPER_NATS_SERVER", nats_server)
            nats_dir = os.path.dirname(nats_server)
            if nats_dir not in env.get("PATH", "").split(os.pathsep):
                env["PATH"] = env.get("PATH", "") + os.pathsep + nats_dir
        logger.info("Starting cluster %s: %s (log %s)", self.cluster_name, " ".join(args),
                    self.log_file)
        with open(self.log_file, "ab") as log:
            try:
                self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True, close_fds=True)
            except OSError as e:
                raise ClipperException("Cannot run {}: {}".format(binary, e))
        self._pid = self._proc.pid
        st = _proc_stat(self._pid)
        self._pid_start = st[1] if st else None
        if not self._atexit_registered:
            atexit.register(self._atexit)
            self._atexit_registered = True

        ready = self._wait_ready()
        m = re.search(r"nats=(\S+)", ready)
        if m:
            self.bus_url = m.group(1)
        elif self.nats_url is None:
            self.bus_url = "nats://127.0.0.1:{}".format(nats_port)
        try:
            self.bus = Bus(self.bus_url, prefix=self.prefix, name="clipper_admin",
                           **self._bus_auth())
        except BusError as e:
            self._stop_processes(graceful=False, keep_logs=True)
            raise ClipperException("Cluster {} started but its bus is unreachable: {}".format(
                self.cluster_name, e))
        if self.nats_url is None:
            self._write_cluster_file()
        logger.info("Cluster %s is ready (NATS %s, prefix %s, query %s)", self.cluster_name,
                    self.bus_url, self.prefix, self.get_query_addr())

    def _wait_ready(self):
        """The "cluster ready" line, or ClipperException with the log's tail."""
        deadline = time.monotonic() + self.start_timeout_s
        offset = 0
        pending = ""
        while True:
            try:
                with open(self.log_file, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except OSError:
                chunk = b""
            offset += len(chunk)
            pending += chunk.decode("utf-8", "replace")
            lines = pending.split("\n")
            pending = lines.pop()
            for line in lines:
                if READY_MARK in line:
                    return line
            rc = self._proc.poll()
            if rc is not None:
                self._stop_processes(graceful=False, keep_logs=True)
                raise ClipperException(
                    "clipper start exited with code {} before the cluster was ready. "
                    "Last lines of {}:\n{}".format(rc, self.log_file, _tail(self.log_file)))
            if time.monotonic() > deadline:
                self._stop_processes(graceful=False, keep_logs=True)
                raise ClipperException(
                    "Cluster {} was not ready within {:.0f} s (no '{}' line from clipper "
                    "start). Last lines of {}:\n{}".format(
                        self.cluster_name, self.start_timeout_s, READY_MARK, self.log_file,
                        _tail(self.log_file)))
            time.sleep(0.05)

    def connect(self):
        if self.bus is not None and not self.bus.closed:
            if self._answers_on_bus():
                return
            self.bus.close()
            self.bus = None
        if self.nats_url is not None:
            url = self.nats_url
        elif self._proc is not None and self._proc.poll() is None:
            url = self.bus_url
        else:
            info = self._read_cluster_file()
            if info is None:
                raise ClipperException(
                    "No running cluster named '{}' was started on this machine by "
                    "LocalContainerManager (no live entry in {}). Start one with "
                    "ClipperConnection.start_clipper(), or pass nats_url= to join a "
                    "cluster on an existing bus.".format(self.cluster_name,
                                                        self._cluster_file()))
            url = info["nats_url"]
            self.prefix = info.get("prefix", self.prefix)
            self.clipper_query_port = info.get("query_port", self.clipper_query_port)
            self.clipper_management_port = info.get("management_port",
                                                    self.clipper_management_port)
            self.prometheus_port = info.get("metric_port", self.prometheus_port)
            self.log_file = info.get("log_file")
            self.log_dir = info.get("log_dir")
            self._pid, self._pid_start = info["pid"], info.get("pid_start")
            self._state_file = self._cluster_file()
            self._adopt_dirs(info)
        try:
            bus = Bus(url, prefix=self.prefix, name="clipper_admin", **self._bus_auth())
        except BusError as e:
            raise ClipperException("Cannot connect to cluster {}: {}".format(
                self.cluster_name, e))
        self.bus, self.bus_url = bus, url
        if not self._answers_on_bus():
            self.bus.close()
            self.bus = None
            raise ClipperException(
                "No Clipper cluster with prefix '{}' answers on {} (nobody listens on "
                "{}.admin.ping). Start one with ClipperConnection.start_clipper().".format(
                    self.prefix, url, self.prefix))

    def _adopt_dirs(self, info):
        """Takes over what the starter of a recorded cluster would clean up."""
        self.data_dir = info.get("data_dir", self.data_dir)
        self._own_data_dir = bool(info.get("own_data_dir"))
        run_dir = info.get("run_dir")
        if run_dir and os.path.dirname(run_dir) == CLIPPER_TEMP_DIR:
            self._run_dir = run_dir

    def _answers_on_bus(self):
        return _ping(self.bus, 5000)

    def get_logs(self, logging_dir):
        """Copies the cluster's log and every replica log into logging_dir."""
        logging_dir = os.path.abspath(os.path.expanduser(logging_dir))
        os.makedirs(logging_dir, exist_ok=True)
        copied = []
        sources = []
        if self.log_file and os.path.isfile(self.log_file):
            sources.append(self.log_file)
        if self.log_dir and os.path.isdir(self.log_dir):
            for root, _, files in os.walk(self.log_dir):
                sources.extend(os.path.join(root, f) for f in sorted(files))
        for src in sources:
            dst = os.path.join(logging_dir, os.path.basename(src))
            shutil.copyfile(src, dst)
            copied.append(dst)
        return copied

    # ---- stop --------------------------------------------------------------

    def stop_all(self, graceful=True):
        """Stops the cluster this manager started (or found in its record on
        this machine): SIGTERM to `clipper start`, which stops its actors,
        replicas and nats-server; SIGKILL to whatever is left after
        stop_timeout_s, at once when graceful is False."""
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        if self._pid is None and self.nats_url is None:
            info = self._read_cluster_file()
            if info is not None:
                self._pid, self._pid_start = info["pid"], info.get("pid_start")
                self._state_file = self._cluster_file()
                self._adopt_dirs(info)
        if self._pid is None:
            logger.warning("No running cluster %s started by LocalContainerManager on this "
                           "machine; nothing to stop", self.cluster_name)
            return
        self._stop_processes(graceful)
        logger.info("Stopped cluster %s", self.cluster_name)

    def _stop_processes(self, graceful, keep_logs=False):
        """Stops the processes, then removes what start_clipper created: the
        data (unless data_dir was given) and, unless keep_logs or env
        CLIPPER_KEEP_LOGS is set, the logs. A failed start keeps its log,
        which its error message names."""
        pid, start = self._pid, self._pid_start
        # Our own child stays a zombie until we reap it, so its pid (and
        # process group id) cannot be reused before the killpg below.
        own_child = self._proc is not None
        procs = _descendants(pid) if _alive(pid, start) else {}
        if procs:
            if graceful:
                _signal_all({pid: start}, signal.SIGTERM)
                deadline = time.monotonic() + self.stop_timeout_s
                while time.monotonic() < deadline and _alive(pid, start):
                    procs.update(_descendants(pid))
                    time.sleep(0.1)
            procs.update(_descendants(pid))
            # Whatever is left (the leader after the grace period, or a
            # process that outlived it) is killed.
            _signal_all(procs, signal.SIGKILL)
        if own_child:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        self._reap()
        if procs and not _wait_gone(procs, 5.0):
            left = [p for p, s in procs.items() if _alive(p, s)]
            logger.error("Processes of cluster %s still alive after SIGKILL: %s",
                         self.cluster_name, left)
        self._proc = None
        self._pid = None
        self._pid_start = None
        if self._state_file is not None:
            try:
                os.unlink(self._state_file)
            except OSError:
                pass
            self._state_file = None
        if self._own_data_dir and self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._own_data_dir = False
        if self._run_dir is not None and not keep_logs and not os.environ.get(
                "CLIPPER_KEEP_LOGS"):
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def _reap(self):
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass

    def _atexit(self):
        if self._proc is not None and self._proc.poll() is None:
            try:
                self.stop_all(graceful=True)
            except Exception:  # noqa: BLE001 - interpreter exit: best effort
                logger.exception("Stopping cluster %s at exit failed", self.cluster_name)

    def __repr__(self):
        return "LocalContainerManager(cluster_name={!r}, prefix={!r}, nats={!r})".format(
            self.cluster_name, self.prefix, self.bus_url)


# Keep Clipper's constants importable from here as from its docker module.
__all__ = ["LocalContainerManager", "CLIPPER_TEMP_DIR", "find_unbound_port",
           "CLIPPER_INTERNAL_QUERY_PORT", "CLIPPER_INTERNAL_MANAGEMENT_PORT",
           "CLIPPER_INTERNAL_RPC_PORT", "CLIPPER_INTERNAL_METRIC_PORT",
           "CLIPPER_INTERNAL_REDIS_PORT"]
