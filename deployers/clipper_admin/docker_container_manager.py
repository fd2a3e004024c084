"""DockerContainerManager: a Clipper cluster as containers on a Docker engine.

Clipper's main way to run, ``ClipperConnection(DockerContainerManager())
.start_clipper()``, with the same constructor arguments. It talks to the
engine through the Docker Engine REST API (the PyPI package ``docker``; the
engine is the one ``DOCKER_HOST`` names, as for the ``docker`` command;
podman's Docker-compatible service works too).

start_clipper() starts, on the network ``docker_network`` (created when
missing), from the image ``clipper/clipper:latest``:

  <cluster>-nats      nats-server with JetStream; the bus is this system's
                      RPC, so its client port 4222 is published on the host
                      port ``clipper_rpc_port`` (Clipper's RPC port argument),
                      on 127.0.0.1 only
  <cluster>-admin     the admin, Clipper's management REST on 1338, published
                      on ``clipper_management_port``
  <cluster>-router    the router
  <cluster>-frontend  the query frontend: 1337 published on
                      ``clipper_query_port``, its Prometheus metrics 1390 on
                      ``prometheus_port``
  <cluster>-manager   the container manager with its docker backend: it
                      starts one container of ``clipper/python-closure:latest``
                      per model replica on the same network, replaces those
                      that die or are removed, and removes them when it
                      stops. The engine's unix socket is bind-mounted into it.
                      Replicas join the bus by nats-server's address on the
                      network (--replica-nats), not its name: see
                      _nats_ip.

The bus is secure by default, as with ``clipper start`` (docs/security.md):
before the containers start, ``clipper creds init`` (the clipper program on
this host, found as LocalContainerManager finds it) makes the cluster's CA,
nats-server's certificate (for <cluster>-nats, its address on the network,
127.0.0.1 and localhost), an identity per actor role and an ``operator``
identity for this API, in ``data_dir`` (default
~/.clipper/docker/<cluster_name>; stop_all() leaves it, so a restarted
cluster keeps its identities; remove it by hand to forget them):

  <data_dir>/secrets/         the cluster's secrets (as clipper start's)
  <data_dir>/nats/            nats-server's certificate, key and configuration,
                              mounted read-only at /run/clipper/nats in
                              <cluster>-nats: TLS required, one account whose
                              users have their roles' permissions

Each actor container gets only its own role's credential file, mounted
read-only at /run/clipper/creds/<role>.creds, and the CA at
/run/clipper/ca.pem, and connects with --creds/--tls-ca over tls://. The
manager gives each model's replicas an identity of their own, scoped to that
model (docs/security.md, "One identity per model's replicas"): it issues
replica-of-<model> into <data_dir>/secrets/creds/ with 'clipper creds
issue', which rewrites <data_dir>/nats/'s users, makes <cluster>-nats reload
them (SIGHUP through the engine), and bind-mounts that file and the CA into
each replica container the same way; so the manager's container mounts
<data_dir> at the same path (--replica-identities). No secret is in a
container's command or environment. The
processes in the containers run as root (the image's user), which can read
the 0600 files. ``insecure=True`` starts an open bus instead (no identities,
no TLS), as before, and says INSECURE in the log.

The HTTP doors (docs/security.md, "HTTP doors"), keyword-only, as with
LocalContainerManager: ``http_tls_cert`` and ``http_tls_key`` (PEM files)
make the query, metrics and management ports serve HTTPS only;
``admin_token_file``, ``metrics_token_file`` and ``query_token_file`` (files
of mode 0600 whose first line is the token) make the management REST, the
metrics port and the query port answer 401 to a request without
``Authorization: Bearer <token>``. Each file is bind-mounted read-only, on
its own, at /run/clipper/http/<tls.crt|tls.key|admin.token|metrics.token|
query.token> into the admin's and the frontend's containers (only those of
its door), and only that path is on their command lines. The management
REST of a secure cluster wants a token even when none is given: start_clipper
makes one (64 hex digits) in <data_dir>/admin.token (0600) and keeps it, as
KubernetesContainerManager does; admin_token_file() names it. The host paths
of these files (never their contents) are on the containers' labels, so
connect() in another process reads the query port as this one does.

Every container carries Clipper's labels: ``ai.clipper.container.label=
<cluster>``, the role (``ai.clipper.name``), the query/management frontend
labels, and the host ports as port labels, from which connect() (in any
process on this host) rebuilds the addresses. Replica containers carry the
cluster label and ``ai.clipper.model_container.label=<name>_<version>``.

Models are deployed through the bus, as with LocalContainerManager: the
function travels over JetStream, no image is built per model version, and
the manager actor makes the replica containers.

Accepted for compatibility and unused: ``use_centralized_log`` and
``fluentd_port`` (get_logs reads every container's log from the engine),
``redis_ip`` and ``redis_port`` (the state lives in JetStream KV); the image
arguments of start_clipper (the actors all run from ``clipper_image``).
"""
import logging
import os
import re
import secrets
import socket
import threading
import time

from . import _secrets
from ._bus import MAX_PAYLOAD, Bus, BusError
from ._bus_models import BusModels, check_start_args, cluster_exists
from .container_manager import (CLIPPER_DOCKER_LABEL, CLIPPER_DOCKER_PORT_LABELS,
                                nats_server_command,
                                CLIPPER_INTERNAL_MANAGEMENT_PORT,
                                CLIPPER_INTERNAL_METRIC_PORT,
                                CLIPPER_INTERNAL_QUERY_PORT,
                                CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
                                CLIPPER_MODEL_CONTAINER_LABEL, CLIPPER_NAME_LABEL,
                                CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL, ContainerManager,
                                create_model_container_label, resolve_images)
from .exceptions import ClipperException
from .local_container_manager import (DEFAULT_CLUSTER_NAME, _ping, _port_is_free,
                                      cluster_prefix)

logger = logging.getLogger(__name__)

DEFAULT_CLIPPER_IMAGE = "clipper/clipper:latest"
DEFAULT_REPLICA_IMAGE = "clipper/python-closure:latest"
DEFAULT_PYSPARK_IMAGE = "clipper/pyspark:latest"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
ENGINE_SOCKET_IN_MANAGER = "/run/clipper/engine.sock"
NATS_INTERNAL_PORT = 4222
# Where the containers find the cluster's secrets (docs/security.md).
NATS_DIR_IN_CONTAINER = "/run/clipper/nats"   # <data_dir>/nats, nats-server's
CA_IN_CONTAINER = "/run/clipper/ca.pem"
CREDS_IN_CONTAINER = "/run/clipper/creds/{}.creds"
NATS_STORE_IN_CONTAINER = "/tmp/nats"
# The default data_dir: ~/.clipper/docker/<cluster_name>.
DEFAULT_DATA_HOME = os.path.join("~", ".clipper", "docker")
BUILD_HINT = "bash images/build.sh"
ENGINE_HINT = ("is it running? images/engine.sh starts one and prints the DOCKER_HOST "
               "to export")

# The subject prefix of the cluster, so that connect() need not guess it.
CLIPPER_PREFIX_LABEL = "ai.clipper.prefix"
# The host directory of the cluster's secrets (a path, no secret): on the
# containers of a secure cluster only, so connect() finds the operator
# identity and the CA.
CLIPPER_DATA_DIR_LABEL = "ai.clipper.data_dir"
# On a network start_clipper created: the cluster that created it.
CLIPPER_NETWORK_LABEL = CLIPPER_DOCKER_LABEL

# The HTTP doors' files (docs/security.md, "HTTP doors"): (the constructor
# argument, the file's name in HTTP_DIR_IN_CONTAINER, {container role: the
# actor's option}), and the label holding the file's host path (a path, no
# secret) on the cluster's containers, for connect().
HTTP_DIR_IN_CONTAINER = "/run/clipper/http"
HTTP_DOOR_FILES = (
    ("http_tls_cert", "tls.crt", {"admin": "--http-tls-cert", "frontend": "--http-tls-cert"}),
    ("http_tls_key", "tls.key", {"admin": "--http-tls-key", "frontend": "--http-tls-key"}),
    ("admin_token_file", "admin.token", {"admin": "--http-token-file"}),
    ("metrics_token_file", "metrics.token", {"frontend": "--metrics-token-file"}),
    ("query_token_file", "query.token", {"frontend": "--query-token-file"}),
)
HTTP_LABELS = {"http_tls_cert": "ai.clipper.http.tls-cert",
               "admin_token_file": "ai.clipper.http.admin-token-file",
               "metrics_token_file": "ai.clipper.http.metrics-token-file",
               "query_token_file": "ai.clipper.http.query-token-file"}
TOKEN_MAX = 4096   # what the doors accept (docs/security.md)

# Container names: what the engine accepts.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

# Keys of extra_container_kwargs that start_clipper sets itself.
_RESERVED_KWARGS = ("image", "command", "entrypoint", "name", "network", "network_mode",
                    "detach", "ports", "remove", "auto_remove")

# The published host ports: (key of CLIPPER_DOCKER_PORT_LABELS, the
# constructor argument and attribute that holds it).
_PORTS = (("query_rest", "clipper_query_port"), ("management", "clipper_management_port"),
          ("query_rpc", "clipper_rpc_port"), ("metric", "prometheus_port"))


def http_door_files(who, **given):
    """{argument: absolute path} of the HTTP doors' files among given
    (http_tls_cert, http_tls_key, admin_token_file, metrics_token_file,
    query_token_file; None ones left out), checked as the actors will check
    them, so that a bad one is a ClipperException naming its argument before
    anything is created: the certificate and its key go together; each is a
    readable file; a token file is one only its owner may read (mode 0600;
    the doors refuse others) whose first line is the token (printable ASCII
    without spaces, at most 4096 bytes). who is the manager's class name."""
    if (given.get("http_tls_cert") is None) != (given.get("http_tls_key") is None):
        raise ClipperException("http_tls_cert and http_tls_key go together: give both")
    out = {}
    for arg, _, _ in HTTP_DOOR_FILES:
        value = given.get(arg)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ClipperException("{} must be the path of a file, got {!r}".format(arg, value))
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.isfile(path):
            raise ClipperException(
                "{} {} does not exist or is not a file; give {}({}=...) the path of "
                "{}".format(arg, path, who, arg,
                            "a PEM certificate" if arg == "http_tls_cert" else
                            "its unencrypted PEM key" if arg == "http_tls_key" else
                            "a file holding the token (openssl rand -hex 32 > FILE; "
                            "chmod 600 FILE)"))
        try:
            with open(path, "rb") as f:
                first = f.readline(TOKEN_MAX + 2)
            mode = os.stat(path).st_mode & 0o777
        except OSError as e:
            raise ClipperException("{} {} cannot be read: {}".format(arg, path, e))
        if arg.endswith("token_file"):
            if mode & 0o077:
                raise ClipperException(
                    "{} {} may be read by group or others (mode {:o}), and the HTTP doors "
                    "refuse such token files: chmod 600 {}".format(arg, path, mode, path))
            token = first.strip()
            if not token or len(token) > TOKEN_MAX or any(
                    c <= 0x20 or c >= 0x7f for c in token):
                raise ClipperException(
                    "{} {}: its first line must be the token, 1 to {} printable ASCII "
                    "characters without spaces (openssl rand -hex 32 > FILE)".format(
                        arg, path, TOKEN_MAX))
        out[arg] = path
    return out


def _engine_unavailable(host, err):
    return ClipperException(
        "Cannot reach the container engine at {} ({}); {}.".format(host, err, ENGINE_HINT))


class DockerContainerManager(BusModels, ContainerManager):
    """Runs a Clipper cluster as containers on a Docker (or podman) engine.

    Besides Clipper's arguments:

    prefix : str, optional
        The cluster's NATS subject prefix: "clipper" for the default cluster
        name, the cluster name otherwise (as LocalContainerManager).
    clipper_image : str, optional
        The image of nats-server and the actors (env CLIPPER_IMAGE, default
        clipper/clipper:latest).
    replica_image : str, optional
        The image the manager runs Python closure replicas from (env
        CLIPPER_REPLICA_IMAGE, default clipper/python-closure:latest).
    pyspark_image : str, optional
        The image of PySpark model replicas (env CLIPPER_PYSPARK_IMAGE,
        default clipper/pyspark:latest: the closure image plus a Java
        runtime and pyspark).
    data_dir : str, keyword-only, optional
        Where the cluster's secrets are kept on this host (default
        ~/.clipper/docker/<cluster_name>). stop_all() leaves it.
        connect() finds it by the containers' ai.clipper.data_dir label
        unless it is given.
    insecure : bool, keyword-only, optional
        Start the cluster without identities and TLS on the bus (anyone
        who reaches its port may deploy code); logged as INSECURE.
    http_tls_cert, http_tls_key : str, keyword-only, optional
        PEM files (the certificate, leaf first, and its unencrypted key):
        the query, metrics and management ports then serve HTTPS only.
    admin_token_file, metrics_token_file, query_token_file : str,
    keyword-only, optional
        Files (mode 0600) whose first line is the bearer token the
        management REST, the Prometheus metrics port or the query port
        then wants. The management REST of a secure cluster has one by
        default (admin_token_file() names it); the query port takes none
        by default, as in Clipper.

    A model deployed with a base_image of its own (an image built FROM
    one of these, with more packages in it) runs in that image; Clipper's
    stock names (clipper/python-closure-container:0.4.1, ...) stand for
    the images above.

    extra_container_kwargs is a dict of keyword arguments of the docker
    SDK's ``containers.run`` for the cluster's own containers (nats-server
    and the actors): its ``labels`` are merged into Clipper's labels,
    ``environment`` and ``volumes`` are merged with the manager's own, and
    every other key is passed as is; the keys start_clipper sets itself
    (image, command, entrypoint, name, network, network_mode, detach, ports)
    are refused. Nothing of it reaches the model replica containers, which
    the manager actor creates with the replica image's defaults.
    """

    start_timeout_s = 90.0     # how long start_clipper waits for the actors
    stop_timeout_s = 10.0      # graceful stop per container, then SIGKILL
    replicas_timeout_s = 90.0  # set_num_replicas: containers start in ~1 s each
    removal_timeout_s = 30.0   # stop_models: until the replica containers are gone

    def __init__(self, cluster_name=DEFAULT_CLUSTER_NAME, docker_ip_address="localhost",
                 use_centralized_log=False, fluentd_port=24224, clipper_query_port=1337,
                 clipper_management_port=1338, clipper_rpc_port=7000, redis_ip=None,
                 redis_port=6379, prometheus_port=9090, docker_network="clipper_network",
                 extra_container_kwargs=None, prefix=None, clipper_image=None,
                 replica_image=None, pyspark_image=None, *, data_dir=None, insecure=False,
                 http_tls_cert=None, http_tls_key=None, admin_token_file=None,
                 metrics_token_file=None, query_token_file=None):
        if not isinstance(cluster_name, str) or not _NAME_RE.match(cluster_name):
            raise ClipperException(
                "Invalid cluster_name {!r}: it names the cluster's containers "
                "(<cluster>-nats, ...), so it must be 1 to 63 letters, digits, '_', '.' "
                "or '-', starting with a letter or digit".format(cluster_name))
        prefix = cluster_prefix(cluster_name, prefix)
        if docker_network == "host":
            raise ClipperException(
                "DockerContainerManager does not support running Clipper on the "
                "\"host\" docker network. Please pick a different network name")
        if not isinstance(docker_network, str) or not _NAME_RE.match(docker_network):
            raise ClipperException(
                "Invalid docker_network {!r}: a network name is 1 to 63 letters, digits, "
                "'_', '.' or '-'".format(docker_network))
        given = {"clipper_query_port": clipper_query_port,
                 "clipper_management_port": clipper_management_port,
                 "clipper_rpc_port": clipper_rpc_port, "prometheus_port": prometheus_port}
        seen = {}
        for _, arg in _PORTS:
            port = given[arg]
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ClipperException(
                    "{} must be a TCP port number from 1 to 65535, got {!r}".format(arg, port))
            if port in seen:
                raise ClipperException(
                    "{} and {} are both {}: each host port can be published once".format(
                        seen[port], arg, port))
            seen[port] = arg
        if not isinstance(docker_ip_address, str) or not docker_ip_address:
            raise ClipperException(
                "docker_ip_address must be the host name or address where the engine "
                "publishes ports, got {!r}".format(docker_ip_address))
        self.extra_container_kwargs, self.common_labels = _split_extra_kwargs(
            extra_container_kwargs)
        if use_centralized_log:
            logger.warning("use_centralized_log is not supported (no Fluentd); get_logs "
                           "reads every container's log from the engine")
        self.cluster_name = cluster_name
        self.cluster_identifier = cluster_name
        self.prefix = prefix
        self.docker_ip_address = docker_ip_address
        self.use_centralized_log = use_centralized_log
        self.fluentd_port = fluentd_port
        self.clipper_query_port = clipper_query_port
        self.clipper_management_port = clipper_management_port
        self.clipper_rpc_port = clipper_rpc_port
        self.redis_ip = redis_ip
        self.redis_port = redis_port
        self.prometheus_port = prometheus_port
        self.docker_network = docker_network
        resolve_images(self, {"clipper_image": clipper_image, "replica_image": replica_image,
                              "pyspark_image": pyspark_image},
                       {"clipper_image": DEFAULT_CLIPPER_IMAGE,
                        "replica_image": DEFAULT_REPLICA_IMAGE,
                        "pyspark_image": DEFAULT_PYSPARK_IMAGE})
        self.common_labels[CLIPPER_DOCKER_LABEL] = cluster_name
        if data_dir is not None and (not isinstance(data_dir, str) or not data_dir):
            raise ClipperException("data_dir must be a directory path, got {!r}".format(
                data_dir))
        self._data_dir_given = data_dir is not None
        self.data_dir = _host_path(data_dir if data_dir is not None else
                                   os.path.join(DEFAULT_DATA_HOME, cluster_name), "data_dir")
        self._insecure = bool(insecure)
        # The HTTP doors' files, bind-mounted one by one into the containers.
        http = http_door_files("DockerContainerManager", http_tls_cert=http_tls_cert,
                               http_tls_key=http_tls_key, admin_token_file=admin_token_file,
                               metrics_token_file=metrics_token_file,
                               query_token_file=query_token_file)
        for arg, path in http.items():
            _host_path(path, arg)
        self._http_given = http
        self._use_given_http_files()
        self.bus = None
        self._client = None

    # ---- the engine --------------------------------------------------------

    @staticmethod
    def engine_url():
        """The engine's address: env DOCKER_HOST or Docker's default socket."""
        return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    def _engine(self):
        """The docker SDK client, once the engine answered a ping."""
        if self._client is not None:
            return self._client
        try:
            import docker
        except ImportError:
            raise ClipperException(
                "DockerContainerManager needs the Python package 'docker' "
                "(pip install docker)")
        host = self.engine_url()
        try:
            client = docker.from_env()
            client.ping()
        except Exception as e:  # noqa: BLE001 - docker, requests and socket errors alike
            raise _engine_unavailable(host, _short(e))
        self._client = client
        return client

    def _engine_socket(self):
        """The host path of the engine's unix socket, for the manager container."""
        url = self.engine_url()
        if not url.startswith("unix://"):
            raise ClipperException(
                "The container manager runs in a container and reaches the engine through "
                "its unix socket, bind-mounted; DOCKER_HOST is {} (only unix:///path is "
                "supported)".format(url))
        return url[len("unix://"):]

    def _containers(self, stopped=True, extra_filters=None, **filters):
        """The cluster's containers (stopped ones too unless stopped=False)."""
        labels = ["{}={}".format(CLIPPER_DOCKER_LABEL, self.cluster_name)]
        labels += extra_filters or []
        filters["label"] = labels
        return self._call("list the containers of cluster " + self.cluster_name,
                          list_containers, self._engine(), stopped, filters)

    def _call(self, what, fn, *args, **kwargs):
        """fn(*args, **kwargs); an engine error becomes a ClipperException."""
        import docker
        import requests
        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as e:
            raise ClipperException("The container engine at {} refused to {}: {}".format(
                self.engine_url(), what, e.explanation or e))
        except (requests.exceptions.RequestException, OSError) as e:
            raise _engine_unavailable(self.engine_url(), _short(e))

    def _require_image(self, image, what):
        import docker
        try:
            self._call("inspect image " + image, self._engine().images.get, image)
        except docker.errors.NotFound:
            raise ClipperException(
                "The image {} ({}) is not in the container engine at {}; build the "
                "project's images with `{}`".format(image, what, self.engine_url(),
                                                    BUILD_HINT))

    # ---- addresses ---------------------------------------------------------

    def get_query_addr(self):
        return "{}:{}".format(self.docker_ip_address, self.clipper_query_port)

    def get_admin_addr(self):
        return "{}:{}".format(self.docker_ip_address, self.clipper_management_port)

    def get_metric_addr(self):
        return "{}:{}".format(self.docker_ip_address, self.prometheus_port)

    def get_bus_url(self):
        """The NATS URL of the cluster's bus as seen from this host (its port
        is published on 127.0.0.1 only); tls:// unless insecure."""
        return "{}://127.0.0.1:{}".format(self._scheme(), self.clipper_rpc_port)

    def _scheme(self):
        return "nats" if self._insecure else "tls"

    def _nats_name(self):
        return "{}-nats".format(self.cluster_name)

    def _internal_nats_url(self):
        return "{}://{}:{}".format(self._scheme(), self._nats_name(), NATS_INTERNAL_PORT)

    # ---- identities and TLS (docs/security.md) -----------------------------

    def _creds_file(self, role):
        return _secrets.creds_file(self.data_dir, role)

    def _ca_file(self):
        return _secrets.ca_file(self.data_dir)

    def _bus_auth(self):
        """The operator identity and the CA in data_dir, as Bus arguments;
        {} for an insecure cluster."""
        if self._insecure:
            return {}
        return {"creds": self._creds_file("operator"), "tls_ca": self._ca_file()}

    def bus_auth_args(self):
        """The identity and CA this manager joins the bus with, as the
        command-line options of the clipper programs ('--creds F --tls-ca
        F'; [] on an open bus), with get_bus_url(): for tools such as
        clipper-bench or 'clipper admin'."""
        auth = self._bus_auth()
        return ["--creds", auth["creds"], "--tls-ca", auth["tls_ca"]] if auth else []

    def _make_secrets(self, hosts):
        """Makes (or keeps) the cluster's secrets with `clipper creds init`,
        nats-server's certificate valid for hosts too, and writes
        data_dir/nats/ for the nats container."""
        _secrets.creds_init(
            self.data_dir, self.prefix, hosts, NATS_DIR_IN_CONTAINER,
            "cluster {}; choose another with DockerContainerManager(data_dir=...)".format(
                self.cluster_name))
        conf = os.path.join(self.data_dir, "nats", "nats-server.conf")
        text = ("# written by DockerContainerManager: nats-server in {} (docs/security.md)\n"
                "port: {}\n"
                "# inputs and outputs larger than the 1 MiB default\n"
                "max_payload: {}\n"
                "# JetStream in the file: nats-server drops command-line JetStream\n"
                "# settings when it reloads its configuration.\n"
                "jetstream {{\n  store_dir: \"{}\"\n}}\n"
                "include \"nats-server.auth.conf\"\n").format(
                    self._nats_name(), NATS_INTERNAL_PORT, MAX_PAYLOAD,
                    NATS_STORE_IN_CONTAINER)
        tmp = conf + ".tmp{}".format(os.getpid())
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)
        os.replace(tmp, conf)

    def _secret_volumes(self, role):
        """The read-only mounts of role's container: its own identity and
        the CA (single files); nats-server's directory for the nats one."""
        if self._insecure:
            return {}
        if role == "nats":
            return {os.path.join(self.data_dir, "nats"): {"bind": NATS_DIR_IN_CONTAINER,
                                                          "mode": "ro"}}
        return {self._creds_file(role): {"bind": CREDS_IN_CONTAINER.format(role),
                                         "mode": "ro"},
                self._ca_file(): {"bind": CA_IN_CONTAINER, "mode": "ro"}}

    def _auth_args(self, role):
        if self._insecure:
            return []
        return ["--creds", CREDS_IN_CONTAINER.format(role), "--tls-ca", CA_IN_CONTAINER]

    # ---- the HTTP doors (docs/security.md, "HTTP doors") -----------------

    def _use_given_http_files(self):
        """As ContainerManager's (not the files connect() learnt from a
        running cluster's labels)."""
        given = super()._use_given_http_files()
        # The management REST's token file (see admin_token_file()): given,
        # or learnt by connect() (then None means none).
        self._admin_token = given.get("admin_token_file")
        self._admin_token_known = self._admin_token is not None

    def admin_token_file(self):
        """The file holding the bearer token the management REST wants
        ('Authorization: Bearer <token>'): admin_token_file= when given,
        else <data_dir>/admin.token for a secure cluster (start_clipper
        makes it); None when the REST takes none (an insecure cluster
        without admin_token_file=)."""
        if self._admin_token is not None or self._admin_token_known or self._insecure:
            return self._admin_token
        return os.path.join(self.data_dir, "admin.token")

    def _make_admin_token(self):
        """The default management REST token of a secure cluster: made once
        (64 hex digits, 0600) in data_dir, then kept."""
        path = self.admin_token_file()
        if path is None or self._admin_token is not None:
            return
        try:
            with open(path) as f:
                if f.readline().strip():
                    return
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ClipperException("Cannot read the management REST's token {}: {}".format(
                path, e))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")

    def _http_files(self):
        """{argument: host path} of the HTTP doors' files in use."""
        files = {"http_tls_cert": self.http_tls_cert, "http_tls_key": self.http_tls_key,
                 "admin_token_file": self.admin_token_file(),
                 "metrics_token_file": self.metrics_token_file,
                 "query_token_file": self.query_token_file}
        return {k: v for k, v in files.items() if v is not None}

    def _http_mounts(self, role):
        """(read-only bind mounts, options) of role's container for its
        doors' files: each file on its own under /run/clipper/http, the
        option naming that path (a file given for two arguments is mounted
        once)."""
        files = self._http_files()
        volumes, args = {}, []
        for arg, name, options in HTTP_DOOR_FILES:
            if arg not in files or role not in options:
                continue
            src = files[arg]
            if src not in volumes:
                volumes[src] = {"bind": "{}/{}".format(HTTP_DIR_IN_CONTAINER, name),
                                "mode": "ro"}
            args += [options[role], volumes[src]["bind"]]
        return volumes, args

    def _reload_nats(self, nats):
        """Makes nats-server read its configuration again (SIGHUP) and waits
        until its log says it did."""
        before = _log_text(nats).count("Reloaded server configuration")
        self._call("signal container " + nats.name, nats.kill, signal="SIGHUP")
        deadline = time.monotonic() + 15.0
        while True:
            text = _log_text(nats)
            if text.count("Reloaded server configuration") > before:
                return
            if "Failed to reload" in text:
                raise ClipperException(
                    "nats-server of cluster {} did not take its new certificate; its log "
                    "ends with:\n{}".format(self.cluster_name, _log_tail(nats)))
            if time.monotonic() > deadline:
                raise ClipperException(
                    "nats-server of cluster {} did not reload its configuration within "
                    "15 s; its log ends with:\n{}".format(self.cluster_name, _log_tail(nats)))
            time.sleep(0.05)

    # ---- start -------------------------------------------------------------

    def start_clipper(self, query_frontend_image=None, mgmt_frontend_image=None,
                      frontend_exporter_image=None, cache_size=33554432,
                      qf_http_thread_pool_size=1, qf_http_timeout_request=5,
                      qf_http_timeout_content=300, num_frontend_replicas=1):
        """Starts the cluster's containers and waits until it answers.

        The image arguments and the HTTP thread/timeout arguments are
        accepted for compatibility and unused: every actor runs from
        clipper_image.
        """
        check_start_args("Docker container manager", cache_size, num_frontend_replicas)
        engine = self._engine()
        socket_path = self._engine_socket()
        self._require_image(self.clipper_image, "nats-server and the actors")
        self._require_image(self.replica_image, "model replicas")
        try:
            self._require_image(self.pyspark_image, "PySpark model replicas")
        except ClipperException as e:
            # Only PySpark models need it: the cluster starts without it.
            logger.warning("%s. PySpark models cannot be deployed until it is there.", e.msg)
        self._refuse_existing()
        self._refuse_taken_ports()
        if self._insecure:
            logger.warning(
                "INSECURE: cluster %s's bus has no identities and no TLS (insecure=True): "
                "any container on network %s, and anyone on this host (port %s), may "
                "deploy code and read every query", self.cluster_name, self.docker_network,
                self.clipper_rpc_port)
        else:
            self._make_secrets([self._nats_name()])
        # What connect() learnt of a cluster that ran before does not carry
        # over to this one.
        self._use_given_http_files()
        self._make_admin_token()
        created_network = self._ensure_network(engine)
        started = []
        try:
            self._run_cluster(cache_size, socket_path, started)
            self._wait_ready(started)
        except BaseException:
            self._remove_containers(started, graceful=False)
            if created_network:
                self._remove_network_if_unused()
            if self.bus is not None:
                self.bus.close()
                self.bus = None
            raise
        logger.info("Started cluster %s: query %s, admin %s, bus %s", self.cluster_name,
                    self.get_query_addr(), self.get_admin_addr(), self.get_bus_url())

    def _refuse_existing(self):
        running = self._containers(stopped=False)
        if running:
            raise cluster_exists(self.cluster_name)
        left = self._containers()
        if left:
            raise ClipperException(
                "Cluster {} has stopped containers left ({}); remove them with "
                "ClipperConnection(DockerContainerManager(cluster_name={!r})).stop_all() "
                "before starting it again".format(
                    self.cluster_name, ", ".join(sorted(c.name for c in left)),
                    self.cluster_name))

    def _refuse_taken_ports(self):
        for _, arg in _PORTS:
            port = getattr(self, arg)
            if not _port_is_free(port):
                raise ClipperException(
                    "Port {} ({}) is already in use on this host; choose another with "
                    "DockerContainerManager({}=...)".format(port, arg, arg))

    def _ensure_network(self, engine):
        """Creates docker_network unless it exists; True when it created it."""
        net = self._network()
        if net is not None:
            return False
        try:
            self._call("create network " + self.docker_network, engine.networks.create,
                       self.docker_network, driver="bridge",
                       labels={CLIPPER_NETWORK_LABEL: self.cluster_name})
        except ClipperException:
            if self._network() is None:   # not a race with another creator
                raise
            return False
        return True

    def _network(self, name=None):
        """The network name (default docker_network), or None."""
        name = name or self.docker_network
        nets = self._call("list networks", self._engine().networks.list, names=[name])
        for n in nets:
            if n.name == name:
                return n
        return None

    def _labels(self, role, extra=None):
        labels = dict(self.common_labels)
        labels[CLIPPER_NAME_LABEL] = role
        labels[CLIPPER_PREFIX_LABEL] = self.prefix
        if not self._insecure:
            labels[CLIPPER_DATA_DIR_LABEL] = self.data_dir
        for arg, path in self._http_files().items():
            if arg in HTTP_LABELS:
                labels[HTTP_LABELS[arg]] = path
        for key, arg in _PORTS:
            labels[CLIPPER_DOCKER_PORT_LABELS[key]] = str(getattr(self, arg))
        labels.update(extra or {})
        return labels

    def _specs(self, cache_size, socket_path):
        """(role, command, extra run kwargs) of each container, in start order."""
        bus = ["--nats", self._internal_nats_url(), "--prefix", self.prefix]
        if self._insecure:
            nats = nats_server_command(["-js", "-p", str(NATS_INTERNAL_PORT), "-sd",
                                        NATS_STORE_IN_CONTAINER])
        else:
            nats = ["nats-server", "-c", NATS_DIR_IN_CONTAINER + "/nats-server.conf"]
        # Each model's replicas get an identity of their own, which the
        # manager issues from the data directory: mounted at the same path,
        # so the replica containers it starts mount the files by it.
        manager_auth = [] if self._insecure else [
            "--replica-identities", self.data_dir,
            "--nats-container", "{}-nats".format(self.cluster_name),
            "--replica-tls-ca", self._ca_file()]
        manager_volumes = {socket_path: {"bind": ENGINE_SOCKET_IN_MANAGER, "mode": "rw"}}
        if not self._insecure:
            manager_volumes[self.data_dir] = {"bind": self.data_dir, "mode": "rw"}
        return [
            # The bus port on 127.0.0.1 only: this API reaches it there.
            ("nats", nats,
             {"ports": {"{}/tcp".format(NATS_INTERNAL_PORT):
                        ("127.0.0.1", self.clipper_rpc_port)}}),
            # The admin listens on 127.0.0.1 unless told otherwise; in its
            # container that is unreachable through the published port. The
            # management REST deploys code: besides its token (a secure
            # cluster's default), its port is published on the host's
            # loopback only, as the bus's, unless the cluster is insecure
            # (Clipper published it everywhere).
            ("admin", ["clipper", "run", "admin"] + bus + [
                "--http-host", "0.0.0.0",
                "--http-port", str(CLIPPER_INTERNAL_MANAGEMENT_PORT)],
             {"ports": {"{}/tcp".format(CLIPPER_INTERNAL_MANAGEMENT_PORT):
                        self.clipper_management_port if self._insecure else
                        ("127.0.0.1", self.clipper_management_port)},
              "labels": {CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL: ""}}),
            ("router", ["clipper", "run", "router"] + bus, {}),
            ("frontend", ["clipper", "run", "frontend"] + bus + [
                "--http-host", "0.0.0.0", "--http-port", str(CLIPPER_INTERNAL_QUERY_PORT),
                "--metrics-port", str(CLIPPER_INTERNAL_METRIC_PORT),
                "--cache-size", str(cache_size)],
             {"ports": {"{}/tcp".format(CLIPPER_INTERNAL_QUERY_PORT): self.clipper_query_port,
                        "{}/tcp".format(CLIPPER_INTERNAL_METRIC_PORT): self.prometheus_port},
              "labels": {CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL: ""}}),
            ("manager", ["clipper", "run", "manager"] + bus + [
                "--backend", "docker", "--docker-network", self.docker_network,
                "--image", self.replica_image, "--image", "pyspark=" + self.pyspark_image,
                "--cluster", self.cluster_name] + manager_auth,
             {"volumes": manager_volumes,
              "environment": {"DOCKER_HOST": "unix://" + ENGINE_SOCKET_IN_MANAGER}}),
        ]

    def _run_cluster(self, cache_size, socket_path, started):
        replica_nats = None
        for role, command, extra in self._specs(cache_size, socket_path):
            if role != "nats":
                command = command[:3] + self._auth_args(role) + command[3:]
            extra = dict(extra)
            secret = self._secret_volumes(role)
            http_volumes, http_args = self._http_mounts(role)
            secret.update(http_volumes)
            command = command + http_args
            if secret:
                extra["volumes"] = _merged(extra.get("volumes"), secret)
            if replica_nats is not None:
                # The actors, like the replicas, reach the bus by its
                # address first (the name stays in the list): a restarted
                # actor's name lookup through aardvark-dns stalled for
                # over 30 s while containers came and went. Over TLS by
                # the address alone: a client checks one name on every
                # server of its list, and the certificate carries both.
                internal = self._internal_nats_url()
                url = replica_nats + "," + internal if self._insecure else replica_nats
                command = [url if a == internal else a for a in command]
                if role == "manager":
                    command = command + ["--replica-nats", replica_nats]
            kwargs = dict(self.extra_container_kwargs)
            for key in ("environment", "volumes"):
                if key in extra:
                    kwargs[key] = _merged(kwargs.get(key), extra[key])
            if "ports" in extra:
                kwargs["ports"] = extra["ports"]
            name = "{}-{}".format(self.cluster_name, role)
            container = self._call(
                "start container {} ({})".format(name, self.clipper_image),
                self._engine().containers.run, self.clipper_image, command, name=name,
                network=self.docker_network, detach=True,
                labels=self._labels(role, extra.get("labels")), **kwargs)
            started.append(container)
            if role == "nats":
                # The actors connect at once: the bus must accept them.
                self.bus = self._wait_bus(started)
                ip = self._nats_ip(container)
                if ip is not None:
                    replica_nats = "{}://{}:{}".format(self._scheme(), ip, NATS_INTERNAL_PORT)
                    if not self._insecure:
                        # They connect by its address, which its certificate
                        # must carry: known only now.
                        self._make_secrets([self._nats_name(), ip])
                        self._reload_nats(container)

    def _nats_ip(self, nats):
        """The address replicas join the bus by: nats-server's address on the
        network, not its name. Replicas start while containers come and go,
        and then the engine's name server can take 5 s or more to answer
        (podman 4's aardvark-dns reloads on every container start and stop),
        which delayed replicas by as much as 40 s or failed their connection
        ("No server available"). None (use the name) when the engine does not
        say the address. nats-server's certificate is then made valid for it
        too (TLS checks the address the client dialled)."""
        try:
            self._call("inspect container " + nats.name, nats.reload)
        except Exception:  # noqa: BLE001 - the name still works
            return None
        nets = (nats.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        ip = (nets.get(self.docker_network) or {}).get("IPAddress")
        return ip or None

    def _check_running(self, containers):
        """Raises when one of containers has stopped, with its log's tail."""
        for c in containers:
            try:
                self._call("inspect container " + c.name, c.reload)
            except Exception as e:  # noqa: BLE001 - gone by hand counts as stopped
                raise ClipperException("Container {} of cluster {} is gone while the cluster "
                                       "was starting: {}".format(c.name, self.cluster_name,
                                                                _short(e)))
            if c.status not in ("created", "running"):
                state = c.attrs.get("State", {})
                raise ClipperException(
                    "Container {} of cluster {} stopped while the cluster was starting "
                    "(status {}, exit code {}); its log ends with:\n{}".format(
                        c.name, self.cluster_name, c.status, state.get("ExitCode"),
                        _log_tail(c)))

    def _wait_bus(self, started):
        """A Bus on the cluster's nats-server once it accepts clients."""
        deadline = time.monotonic() + self.start_timeout_s
        last = None
        while True:
            try:
                return Bus(self.get_bus_url(), prefix=self.prefix, name="clipper_admin",
                           connect_timeout_ms=1000, **self._bus_auth())
            except BusError as e:
                last = e
            self._check_running(started)
            if time.monotonic() > deadline:
                raise ClipperException(
                    "The nats-server of cluster {} does not accept clients on {} after "
                    "{:.0f} s: {}".format(self.cluster_name, self.get_bus_url(),
                                          self.start_timeout_s, last))
            time.sleep(0.1)

    def _wait_ready(self, started):
        """Until the admin answers on the bus, the manager answers cm.status
        and the query and management ports accept connections."""
        deadline = time.monotonic() + self.start_timeout_s
        checks = {
            "the admin does not answer {}.admin.ping".format(self.prefix):
                lambda: _ping(self.bus, 2000),
            "the container manager does not answer {}.cm.status".format(self.prefix):
                lambda: self._manager_answers(2000),
            "the query frontend's port {} does not accept connections".format(
                self.clipper_query_port):
                lambda: _tcp_accepts(self.docker_ip_address, self.clipper_query_port),
            "the management REST port {} does not accept connections".format(
                self.clipper_management_port):
                lambda: _tcp_accepts(self.docker_ip_address, self.clipper_management_port),
        }
        while checks:
            for what in list(checks):
                if checks[what]():
                    del checks[what]
            if not checks:
                break
            self._check_running(started)
            if time.monotonic() > deadline:
                raise ClipperException(
                    "Cluster {} was not ready within {:.0f} s: {}".format(
                        self.cluster_name, self.start_timeout_s, "; ".join(checks)))
            time.sleep(0.1)

    def _manager_answers(self, timeout_ms):
        try:
            self.bus.request("{}.cm.status".format(self.prefix), b"{}", timeout_ms)
            return True
        except BusError:
            return False

    # ---- connect -----------------------------------------------------------

    def connect(self):
        """Finds the running cluster by its labels and joins its bus."""
        if self.bus is not None and not self.bus.closed and _ping(self.bus, 5000):
            return
        running = self._containers(stopped=False)
        if not running:
            raise ClipperException(
                "No running container of cluster '{}' on the container engine at {} (none "
                "has the label {}={}). Start it with ClipperConnection.start_clipper()."
                .format(self.cluster_name, self.engine_url(), CLIPPER_DOCKER_LABEL,
                        self.cluster_name))
        labels = {}
        network = None
        for c in sorted(running, key=lambda c: c.labels.get(CLIPPER_NAME_LABEL) != "nats"):
            for key, value in c.labels.items():
                labels.setdefault(key, value)
            if network is None:
                nets = c.attrs.get("NetworkSettings", {}).get("Networks") or {}
                network = next(iter(nets), None)
        ports = {}
        for key, attr in _PORTS:
            value = labels.get(CLIPPER_DOCKER_PORT_LABELS[key])
            if value is None or not value.isdigit():
                raise ClipperException(
                    "The containers of cluster '{}' carry no {} label: they were not "
                    "started by DockerContainerManager".format(
                        self.cluster_name, CLIPPER_DOCKER_PORT_LABELS[key]))
            ports[attr] = int(value)
        for attr, value in ports.items():
            setattr(self, attr, value)
        self.prefix = labels.get(CLIPPER_PREFIX_LABEL, self.prefix)
        if network:
            self.docker_network = network
        # Secure unless its containers say otherwise (no data_dir label:
        # started with insecure=True, or by an older DockerContainerManager).
        data_dir = labels.get(CLIPPER_DATA_DIR_LABEL)
        self._insecure = not data_dir
        if data_dir and not self._data_dir_given:
            self.data_dir = data_dir
        # The HTTP doors' files the cluster was started with (their host
        # paths), unless this manager was given its own.
        if self.http_tls_cert is None:
            self.http_tls_cert = labels.get(HTTP_LABELS["http_tls_cert"])
        for arg in ("metrics_token_file", "query_token_file"):
            if getattr(self, arg) is None:
                setattr(self, arg, labels.get(HTTP_LABELS[arg]))
        if not self._admin_token_known:
            self._admin_token = labels.get(HTTP_LABELS["admin_token_file"])
            self._admin_token_known = True
        self._join_bus("The containers of cluster '{}' run".format(self.cluster_name))

    # ---- models ------------------------------------------------------------
    # Through the bus (BusModels), as LocalContainerManager: the same admin
    # commands and the same wait for the replicas the manager actor reports.

    def stop_models(self, models):
        """Sets the replicas of each version to 0; waits until their
        containers are gone."""
        BusModels.stop_models(self, models)
        self._wait_removed(["{}={}".format(CLIPPER_MODEL_CONTAINER_LABEL,
                                           create_model_container_label(name, version))
                            for name, versions in models.items() for version in versions])

    def stop_all_model_containers(self):
        BusModels.stop_all_model_containers(self)
        self._wait_removed([CLIPPER_MODEL_CONTAINER_LABEL])

    def _wait_removed(self, label_filters):
        """Until no container of the cluster matches any of label_filters."""
        self._wait_gone(lambda: [c.name for f in label_filters
                                 for c in self._containers(extra_filters=[f])],
                        "Replica containers")

    # ---- logs --------------------------------------------------------------

    def get_logs(self, logging_dir):
        """Writes each container's log of the cluster (replicas included) to
        logging_dir/image_<image>:container_<id>.log; returns the paths."""
        logging_dir = os.path.abspath(os.path.expanduser(logging_dir))
        os.makedirs(logging_dir, exist_ok=True)
        paths = []
        import docker
        for c in self._containers():
            image = (c.attrs.get("Config") or {}).get("Image") or c.image.short_id
            path = os.path.join(logging_dir, "image_{}:container_{}.log".format(
                image.replace("/", "_"), c.short_id))
            try:
                data = c.logs(stdout=True, stderr=True)
            except docker.errors.APIError as e:
                if container_gone(e):
                    continue    # removed meanwhile (a replica the manager replaced)
                raise ClipperException("Cannot read the log of container {}: {}".format(
                    c.name, e.explanation or e))
            with open(path, "wb") as f:
                f.write(data)
            paths.append(path)
        return paths

    # ---- stop --------------------------------------------------------------

    def stop_all(self, graceful=True):
        """Removes every container of the cluster, replicas included: the
        manager first (it removes its replicas), then the actors and
        replicas, nats-server last; each stopped (SIGTERM, then SIGKILL after
        stop_timeout_s) or killed when graceful is False. The cluster's
        network goes too when a DockerContainerManager created it and no
        container is left on it. Other clusters are left alone. Needs no
        connect(): the containers are found by the cluster label.

        The cluster's secrets in data_dir stay (as LocalContainerManager
        leaves a data_dir it was given): the next start_clipper() keeps its
        CA and identities. Remove the directory to forget them."""
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        self._engine()
        # The manager first (it removes its replicas and makes no more),
        # then the actors and any replica left, nats-server last: an actor
        # stops at once while the bus is up.
        containers = self._containers()
        # The networks they are on (this manager may not have connected).
        networks = {self.docker_network}
        for c in containers:
            networks.update((c.attrs.get("NetworkSettings") or {}).get("Networks") or {})
        for step in (lambda role: role == "manager", lambda role: role != "nats",
                     lambda role: True):
            now = [c for c in containers if step(c.labels.get(CLIPPER_NAME_LABEL))]
            self._remove_containers(now, graceful)
            containers = [c for c in containers if c not in now]
        # Replicas a dying manager may have made meanwhile.
        deadline = time.monotonic() + self.removal_timeout_s
        while True:
            left = self._containers()
            if not left:
                break
            if time.monotonic() > deadline:
                raise ClipperException("Containers of cluster {} are still there after "
                                       "stop_all: {}".format(
                                           self.cluster_name,
                                           ", ".join(sorted(c.name for c in left))))
            self._remove_containers(left, graceful)
        for name in sorted(networks):
            self._remove_network_if_unused(name)
        logger.info("Stopped all Clipper cluster and all model containers")

    def _remove_containers(self, containers, graceful):
        """Stops (or kills) containers in parallel, then removes them."""
        import docker

        def one(c):
            try:
                if graceful:
                    c.stop(timeout=int(self.stop_timeout_s))
                else:
                    c.kill()
            except docker.errors.APIError:
                pass    # already stopped or gone: remove() settles it
            try:
                c.remove(force=True, v=True)
            except docker.errors.APIError as e:
                if not container_gone(e):   # stop_all lists again and retries
                    logger.warning("Cannot remove container %s: %s", c.name,
                                   e.explanation or e)
        threads = [threading.Thread(target=one, args=(c,)) for c in containers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _remove_network_if_unused(self, name=None):
        """Removes the network name (default docker_network) when a
        DockerContainerManager created it (it carries the cluster label),
        that cluster has no container left and no container is attached to
        it."""
        import docker
        net = self._network(name)
        if net is None:
            return
        creator = (net.attrs.get("Labels") or {}).get(CLIPPER_NETWORK_LABEL)
        if creator is None:
            return      # not ours: the user's network
        if creator != self.cluster_name and self._call(
                "list containers", list_containers, self._engine(), True,
                {"label": "{}={}".format(CLIPPER_DOCKER_LABEL, creator)}):
            return      # its creator still runs
        attached = self._call("list containers", list_containers, self._engine(), True,
                              {"network": net.name})
        if attached:
            return
        try:
            net.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            # A cluster that just started on it; it removes the network later.
            logger.info("Network %s stays: %s", net.name, e.explanation or e)

    def __repr__(self):
        return ("DockerContainerManager(cluster_name={!r}, prefix={!r}, network={!r}, "
                "engine={!r}, data_dir={!r}{})".format(
                    self.cluster_name, self.prefix, self.docker_network, self.engine_url(),
                    self.data_dir, ", insecure=True" if self._insecure else ""))


def container_gone(err):
    """True when err says the container does not exist (any more): docker's
    404, or podman's 500 "does not exist in database" for a container
    removed while it was being inspected."""
    import docker
    if isinstance(err, docker.errors.NotFound):
        return True
    text = str(getattr(err, "explanation", None) or err).lower()
    return isinstance(err, docker.errors.APIError) and (
        "no such container" in text or "does not exist" in text)


def list_containers(client, stopped, filters):
    """The containers matching filters (docker SDK objects), stopped ones
    too when stopped; those removed while being listed are left out."""
    out = []
    for row in client.api.containers(all=stopped, filters=filters):
        try:
            out.append(client.containers.get(row["Id"]))
        except Exception as e:  # noqa: BLE001 - re-raised unless it is gone
            if not container_gone(e):
                raise
    return out


def _split_extra_kwargs(extra):
    """(kwargs for containers.run, labels) from extra_container_kwargs."""
    if extra is None:
        return {}, {}
    if not isinstance(extra, dict):
        raise ClipperException("extra_container_kwargs must be a dict of keyword arguments "
                               "of docker's containers.run, got {}".format(
                                   type(extra).__name__))
    kwargs = dict(extra)
    reserved = sorted(k for k in kwargs if k in _RESERVED_KWARGS)
    if reserved:
        raise ClipperException(
            "extra_container_kwargs may not set {}: DockerContainerManager sets them for "
            "each container".format(", ".join(reserved)))
    labels = kwargs.pop("labels", None) or {}
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ClipperException("extra_container_kwargs['labels'] must be a dict of str to "
                               "str, got {!r}".format(labels))
    if CLIPPER_DOCKER_LABEL in labels:
        raise ClipperException(
            "extra_container_kwargs['labels'] may not set {}: it holds the cluster "
            "name".format(CLIPPER_DOCKER_LABEL))
    return kwargs, dict(labels)


def _merged(user, ours):
    """The user's environment or volumes (dict or list) with ours added."""
    if user is None:
        return dict(ours)
    if isinstance(user, dict):
        merged = dict(user)
        merged.update(ours)
        return merged
    if isinstance(ours, dict) and all(isinstance(v, str) for v in ours.values()):
        return list(user) + ["{}={}".format(k, v) for k, v in ours.items()]
    return list(user) + ["{}:{}:{}".format(k, v["bind"], v.get("mode", "rw"))
                         for k, v in ours.items()]


def _host_path(path, arg):
    """path made absolute; refused when a bind mount cannot name it (the
    engine's "SRC:DST:MODE" syntax). arg is the constructor argument that
    gave it."""
    path = os.path.abspath(os.path.expanduser(path))
    if ":" in path or "," in path or any(ord(c) < 0x20 for c in path):
        raise ClipperException(
            "{} {!r} cannot be bind-mounted into containers (':', ',' or a control "
            "character in it); choose another with DockerContainerManager({}=...)"
            .format(arg, path, arg))
    return path


def _log_text(container):
    try:
        return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - read again on the next poll
        return ""


def _tcp_accepts(host, port, timeout_s=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _short(err):
    text = str(err)
    return text if len(text) <= 300 else text[:300] + "..."


def _log_tail(container, lines=30):
    try:
        data = container.logs(stdout=True, stderr=True, tail=lines)
    except Exception as e:  # noqa: BLE001 - diagnostics only
        return "(cannot read its log: {})".format(_short(e))
    return data.decode("utf-8", "replace").rstrip() or "(empty)"


__all__ = ["DockerContainerManager", "DEFAULT_CLIPPER_IMAGE", "DEFAULT_REPLICA_IMAGE",
           "DEFAULT_PYSPARK_IMAGE"]
