"""KubernetesContainerManager: a Clipper cluster on Kubernetes.

Clipper's ``ClipperConnection(KubernetesContainerManager(...)).start_clipper()``,
with Clipper's constructor arguments, against any Kubernetes cluster the
Python package ``kubernetes`` can reach (a kubeconfig file, or the service
account of the pod it runs in).

start_clipper() creates in ``namespace``, from the image ``clipper_image``
(every actor and nats-server are in it):

  ServiceAccount, Role, RoleBinding  manager-at-<cluster>: what the container
                      manager may do, in this namespace only (Deployments;
                      reading, watching and deleting pods; pods' logs)
  StatefulSet nats-at-<cluster>   nats-server with JetStream (1 replica); its
                      store survives the pod (see "State" below)
  Service nats-at-<cluster>       its client port 4222
  Deployment mgmt-frontend-at-<cluster>   the admin; Clipper's management REST
                      on 1338, Service mgmt-frontend-at-<cluster>
  Deployment router-at-<cluster>  the router
  Deployment query-frontend-at-<cluster>  ``num_frontend_replicas`` query
                      frontends, all behind the Service query-frontend-at-
                      <cluster> (1337) and, for their Prometheus text, the
                      Service metrics-at-<cluster> (1390)
  Deployment manager-at-<cluster> the container manager with its kubernetes
                      backend: one Deployment <model>-<version>-at-<cluster>
                      per model version, from ``replica_image`` (Python
                      closures) or ``pyspark_image`` (PySpark models)

There is no cluster DNS to rely on: the pods join the bus by the NATS
Service's ClusterIP (``--nats nats://<ClusterIP>:4222``), not its name.
With ``nats_replicas=3`` NATS is a cluster of three servers (a Service per
server, nats-<i>-at-<cluster>, carries the routes between them and the
actors' --nats list) and the state is kept on all three.

Every object carries Clipper's labels ``ai.clipper.container.label=<cluster>``
and ``ai.clipper.name=<role>``; the model replicas the manager makes carry
the cluster label and ``ai.clipper.model_container.label=<name>_<version>``.
Everything this class lists or deletes is selected by the cluster label in
the namespace, so clusters of other names, or in other namespaces, are never
touched.

Clipper's ``service_types`` here (the keys are Clipper's; each value is
ClusterIP, NodePort or LoadBalancer, all NodePort by default):

  'query'       the query frontends' Service (HTTP 1337)
  'management'  the admin's Service (Clipper's management REST, 1338)
  'metric'      the frontends' Prometheus text port (1390)
  'query-rpc'   the NATS Service (4222): the bus is this system's RPC, as
                DockerContainerManager publishes NATS on clipper_rpc_port
  'redis'       accepted and unused (the state lives in JetStream KV)

Addresses (get_query_addr, get_admin_addr, get_metric_addr and the bus this
client joins): a NodePort on a node's address (ExternalDNS, or with
``useInternalIP=True`` the InternalIP, as Clipper), a LoadBalancer's ingress
address, or a ClusterIP (reachable from inside the cluster's network only).
With ``kubernetes_proxy_addr`` (``kubectl proxy``) the HTTP addresses go
through the API server's service proxy, as Clipper's did; the bus cannot (it
is not HTTP), so it is still found as above unless ``nats_url`` is given.

State: cluster state and model artifacts live in nats-server's JetStream
store, on a volume that outlives the NATS pod. When the cluster has a default
StorageClass, that volume is a PersistentVolumeClaim from the StatefulSet's
volumeClaimTemplates; otherwise (no provisioner, as on a bare single-node
cluster) it is a hostPath directory per cluster, /var/lib/clipper/nats/
<namespace>/<cluster>, and the NATS pod is pinned to the node that holds it.
stop_all() removes either (the PVC, or the directory by a short-lived pod on
that node): like Clipper's stop_all, which removed its Redis, it loses the
state.

Security (docs/security.md): the bus is secure by default, as with ``clipper
start``. Before nats-server starts, ``clipper creds init`` (the clipper program
on this host) makes the cluster's CA, nats-server's certificate (for the name
nats-at-<cluster>, which every client checks it for, and the addresses of
the NATS Services, which the routes between servers check), an identity per
actor role and an ``operator`` identity for this API, in ``data_dir``
(default ~/.clipper/kubernetes/<namespace>/<cluster>; stop_all() leaves it).
They go to Kubernetes as Secrets, mounted read-only (mode 0400) and never in
a command line or the environment:

  Secret nats-secrets-at-<cluster>  nats-server's certificate, key, the CA
                      and its configuration: TLS required of every client,
                      one account whose users have their roles' permissions;
                      with several servers, routes over TLS that both ends
                      verify with the cluster's CA
  Secret identity-<role>-at-<cluster>  one per actor role (admin, router,
                      frontend, manager, replica): its credential file and
                      the CA; the manager mounts the replica one into each
                      replica pod (--replica-secret)

The actors join by tls://<ClusterIP>:4222 with --creds, --tls-ca and
--tls-name nats-at-<cluster>; this client joins as the operator identity.
``insecure=True`` starts an open bus (no identities, no TLS), as before, and
says INSECURE in the log.

The management REST wants a bearer token (it deploys code and its Service is
a NodePort by default): made once (64 hex digits) in <data_dir>/admin.token
(0600), kept, and mounted into the admin from the Secret
admin-token-at-<cluster>; admin_token_file() names it. An insecure cluster's
REST takes none unless admin_token_file= is given.

The HTTP doors (docs/security.md, "HTTP doors"), keyword-only, as with the
other managers: ``http_tls_cert`` and ``http_tls_key`` (PEM files) make the
query, metrics and management ports serve HTTPS only; ``admin_token_file``,
``metrics_token_file`` and ``query_token_file`` (files of mode 0600 whose
first line is the token) make the management REST, the metrics port and the
query port answer 401 to a request without ``Authorization: Bearer
<token>``. They go to Secrets (mode 0400 in the pods, only the paths on the
command lines): http-tls-at-<cluster> (type kubernetes.io/tls: tls.crt,
tls.key) mounted at /run/clipper/http-tls into the admin and the frontends,
admin-token-at-<cluster>, metrics-token-at-<cluster> and
query-token-at-<cluster> into the pods of their door. The kubelet's probes of
a port with TLS or a token knock on it (tcpSocket) instead of asking it. The
host paths of the files (no content) are annotations of the cluster's
Services, so connect() on the same host reads the query port as
start_clipper() did. Through ``kubernetes_proxy_addr`` a door with a token
always answers 401: the API server keeps the Authorization header for
itself.

Accepted for compatibility and unused: ``redis_ip`` and ``redis_port``; the
image arguments of start_clipper (every actor runs from ``clipper_image``)
and its qf_http_* arguments.
"""
import json
import logging
import os
import re
import secrets
import socket
import time
import urllib.error
import urllib.request

from . import _secrets
from ._bus import MAX_PAYLOAD, Bus, BusError
from ._bus_models import BusModels, cluster_exists
from .container_manager import (CLIPPER_DOCKER_LABEL, CLIPPER_INTERNAL_MANAGEMENT_PORT,
                                nats_server_command,
                                CLIPPER_INTERNAL_METRIC_PORT, CLIPPER_INTERNAL_QUERY_PORT,
                                CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
                                CLIPPER_MODEL_CONTAINER_LABEL, CLIPPER_NAME_LABEL,
                                CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL, ContainerManager,
                                resolve_images)
from .docker_container_manager import HTTP_LABELS, http_door_files
from .exceptions import ClipperException
from .local_container_manager import DEFAULT_CLUSTER_NAME, _ping, cluster_prefix

logger = logging.getLogger(__name__)

DEFAULT_CLIPPER_IMAGE = "localhost/clipper/clipper:latest"
DEFAULT_REPLICA_IMAGE = "localhost/clipper/python-closure:latest"
DEFAULT_PYSPARK_IMAGE = "localhost/clipper/pyspark:latest"
NATS_INTERNAL_PORT = 4222
NATS_MONITOR_PORT = 8222
KUBE_HINT = ("is the cluster running? For this project's test cluster, "
             "`bash images/kube/kube.sh start` starts one and prints the KUBECONFIG to export")
IMAGES_HINT = "bash images/build.sh && bash images/kube/kube.sh images"

# Clipper's service types and their defaults.
CLUSTER_IP = 'ClusterIP'
NODE_PORT = 'NodePort'
LOAD_BALANCER = 'LoadBalancer'
EXTERNAL_NAME = 'ExternalName'
OFFICIAL_K8S_SERVICE_TYPE = [CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME]
DEFAULT_CLIPPER_SERVICE_TYPES = {
    'redis': NODE_PORT,
    'management': NODE_PORT,
    'query': NODE_PORT,
    'query-rpc': NODE_PORT,
    'metric': NODE_PORT,
}

PULL_POLICIES = ("Always", "IfNotPresent", "Never")

# The roles (the value of ai.clipper.name; <role>-at-<cluster> names the
# role's objects, as Clipper named its mgmt-frontend, query-frontend and
# metrics Services).
ROLE_NATS = "nats"
ROLE_MGMT = "mgmt-frontend"
ROLE_ROUTER = "router"
ROLE_QUERY = "query-frontend"
ROLE_METRICS = "metrics"
ROLE_MANAGER = "manager"
ROLE_NATS_CLEANUP = "nats-cleanup"
ACTOR_ROLES = (ROLE_MGMT, ROLE_ROUTER, ROLE_QUERY, ROLE_MANAGER)

# Which Service serves which service_types key, and on which port.
# A Service per NATS server of a NATS cluster (nats_replicas > 1): with no
# cluster DNS, the servers' routes and the actors' --nats name these
# Services' ClusterIPs, known before the pods start.
ROLE_NATS_PEER = "nats-peer"
NATS_ROUTE_PORT = 6222

_SERVICES = (  # (service_types key, role of the Service, port, role of the pods it selects)
    ('query-rpc', ROLE_NATS, NATS_INTERNAL_PORT, ROLE_NATS),
    ('management', ROLE_MGMT, CLIPPER_INTERNAL_MANAGEMENT_PORT, ROLE_MGMT),
    ('query', ROLE_QUERY, CLIPPER_INTERNAL_QUERY_PORT, ROLE_QUERY),
    ('metric', ROLE_METRICS, CLIPPER_INTERNAL_METRIC_PORT, ROLE_QUERY),
)

# On the cluster's Services: its NATS subject prefix (connect() need not
# guess it). On the NATS StatefulSet: where its JetStream store is.
PREFIX_ANNOTATION = "ai.clipper.prefix"
NATS_DATA_ANNOTATION = "ai.clipper.nats.host-path"
# On the cluster's Services when its bus is secure: the name nats-server's
# certificate carries (connect() then joins with an identity).
TLS_NAME_ANNOTATION = "ai.clipper.bus.tls-name"
# Where the pods find their secrets (Secret volumes, read-only, 0400).
NATS_SECRETS_MOUNT = "/run/clipper/nats"
IDENTITY_MOUNT = "/run/clipper/identity"
ADMIN_TOKEN_MOUNT = "/run/clipper/admin-token"
# The HTTP doors' Secrets (docs/security.md, "HTTP doors"): the certificate
# and key (admin and frontends), the metrics and query ports' tokens.
HTTP_TLS_MOUNT = "/run/clipper/http-tls"
METRICS_TOKEN_MOUNT = "/run/clipper/metrics-token"
QUERY_TOKEN_MOUNT = "/run/clipper/query-token"
SECRET_MODE = 0o400
# The identity each actor connects as (bus/roles.c), by its role here.
_IDENTITIES = {"mgmt-frontend": "admin", "router": "router", "query-frontend": "frontend",
               "manager": "manager"}
DEFAULT_DATA_HOME = os.path.join("~", ".clipper", "kubernetes")
NATS_NODE_ANNOTATION = "ai.clipper.nats.node"
# On the replica pods the manager makes (manager/backend_kube.c).
MODEL_ANNOTATION = "ai.clipper.model"
VERSION_ANNOTATION = "ai.clipper.model_version"

HOST_DATA_ROOT = "/var/lib/clipper/nats"
NATS_DATA_MOUNT = "/data"
DEFAULT_STORAGE_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                                     "storageclass.beta.kubernetes.io/is-default-class")

# The cluster name is in every object's name (<role>-at-<cluster>; the NATS
# pod's controller-revision-hash label "nats-at-<cluster>-<10>" must stay
# within 63 bytes) and is the value of the cluster label.
CLUSTER_NAME_MAX = 40
_CLUSTER_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# A pod's container waiting for one of these will not start by waiting.
_STUCK_REASONS = ("ErrImageNeverPull", "InvalidImageName", "ImagePullBackOff",
                  "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                  "CrashLoopBackOff")
_IMAGE_REASONS = ("ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName")


def _kube():
    """The kubernetes package's client and config modules."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise ClipperException(
            "KubernetesContainerManager needs the Python package 'kubernetes' "
            "(pip install kubernetes)")
    return client, config


def _short(err, limit=300):
    text = str(err)
    return text if len(text) <= limit else text[:limit] + "..."


def _api_message(e):
    """The message of an ApiException: the Status object's, else its reason."""
    try:
        body = json.loads(e.body)
        if isinstance(body, dict) and body.get("message"):
            return body["message"]
    except (TypeError, ValueError):
        pass
    return e.reason or "HTTP {}".format(e.status)


class _NotFound(Exception):
    """An API object that does not exist (HTTP 404)."""


class KubernetesApiError(ClipperException):
    """The API server refused a request; status is its HTTP status."""

    def __init__(self, msg, status):
        super(KubernetesApiError, self).__init__(msg)
        self.status = status


def validate_service_types(st):
    """service_types with Clipper's checks and texts; the defaults for None."""
    res = dict(DEFAULT_CLIPPER_SERVICE_TYPES)
    if st is None:
        return res
    if not isinstance(st, dict):
        raise ClipperException(
            "service_types must be 'dict' type: {}".format(st))
    if set(st.keys()) != set(DEFAULT_CLIPPER_SERVICE_TYPES.keys()):
        raise ClipperException(
            "service_types has unknown keys: {}".format(st.keys()))
    if any(v not in OFFICIAL_K8S_SERVICE_TYPE for v in set(st.values())):
        raise ClipperException(
            "service_types has unknown values: {}".format(st.values()))
    if EXTERNAL_NAME in st.values():
        raise ClipperException(
            "Clipper does not support '{}' service".format(EXTERNAL_NAME))
    res.update(st)
    return res


class KubernetesContainerManager(BusModels, ContainerManager):
    """Runs a Clipper cluster on Kubernetes.

    Clipper's arguments:

    cluster_name : str
        Names the cluster's objects (<role>-at-<cluster>) and is the value
        of the label ai.clipper.container.label on each: 1 to 40 lower case
        letters, digits or '-', starting and ending with a letter or digit.
    kubernetes_proxy_addr : str, optional
        The address of a ``kubectl proxy``: get_query_addr, get_admin_addr
        and get_metric_addr then return the API server's service proxy URLs.
    redis_ip, redis_port
        Accepted and unused: the state lives in JetStream KV.
    useInternalIP : bool
        Use the nodes' InternalIP when none has an ExternalDNS address.
    namespace : str
        Where the cluster's objects go (default "default").
    service_types : dict, optional
        Clipper's keys, each ClusterIP, NodePort or LoadBalancer (default
        all NodePort): 'query' is the query frontends' Service (1337),
        'management' the admin's (1338), 'metric' the frontends' Prometheus
        text port (1390), 'query-rpc' the NATS Service (4222; the bus is
        this system's RPC), 'redis' is unused.
    create_namespace_if_not_exists : bool
        Create ``namespace`` when it does not exist (else Clipper's error).

    Besides Clipper's arguments (keywords only):

    prefix : str, optional
        The cluster's NATS subject prefix: "clipper" for the default cluster
        name, the cluster name otherwise (as the other managers).
    kubeconfig : str, optional
        The kubeconfig file. Default: inside a pod its service account,
        else env KUBECONFIG, else ~/.kube/config.
    context : str, optional
        The kubeconfig's context (default: its current context).
    clipper_image : str, optional
        The image of nats-server and the actors (env CLIPPER_IMAGE, default
        localhost/clipper/clipper:latest).
    replica_image : str, optional
        The image of Python closure replicas (env CLIPPER_REPLICA_IMAGE,
        default localhost/clipper/python-closure:latest).
    pyspark_image : str, optional
        The image of PySpark model replicas (env CLIPPER_PYSPARK_IMAGE,
        default localhost/clipper/pyspark:latest).
    image_pull_policy : str, optional
        Always, IfNotPresent or Never, for every pod of the cluster and its
        replicas. Default: Never when every image is a localhost/ one
        (images loaded into the nodes' container runtime, as
        images/kube/kube.sh images does), IfNotPresent otherwise.
    nats_url : str, optional
        How this client reaches the cluster's bus. Default: from the NATS
        Service (a NodePort on a node's address, a LoadBalancer's ingress,
        or its ClusterIP when its type is ClusterIP).
    nats_replicas : int, optional
        1 (default): one nats-server. 3 or 5: a NATS cluster of that many
        servers (routes between them, JetStream clustered), and the cluster
        state and artifacts kept on 3 of them (JetStream replicas 3; the
        actors run with --state-replicas 3), so losing one server loses
        nothing and the bus goes on.
    data_dir : str, optional
        Where the cluster's secrets are kept on this host (default
        ~/.clipper/kubernetes/<namespace>/<cluster>).
    insecure : bool, optional
        Start the cluster without identities and TLS on the bus; logged as
        INSECURE.
    http_tls_cert, http_tls_key : str, optional
        PEM files (the certificate, leaf first, and its unencrypted key):
        the query, metrics and management ports then serve HTTPS only.
    admin_token_file, metrics_token_file, query_token_file : str, optional
        Files (mode 0600) whose first line is the bearer token the
        management REST, the Prometheus metrics port or the query port
        then wants. The management REST of a secure cluster has one by
        default (admin_token_file() names it); the query port takes none
        by default, as in Clipper.

    A model deployed with a base_image of its own runs in that image (with
    the pull policy Never, it must be in the nodes' container runtime too);
    Clipper's stock names stand for the runtime's image. A model's
    ``resources`` (requests and limits, see ClipperConnection.deploy_model)
    go on its replica containers.
    """

    start_timeout_s = 180.0     # start_clipper: until every actor answers
    stop_timeout_s = 120.0      # stop_all: until nothing of the cluster is left
    replicas_timeout_s = 120.0  # set_num_replicas: until the replicas are ready
    removal_timeout_s = 60.0    # stop_models: until the replica pods are gone
    request_timeout = (5, 30)   # each API call: (connect, read) seconds
    termination_grace_s = 10    # the pods' terminationGracePeriodSeconds
    nats_storage_size = "1Gi"   # the JetStream PVC's request (default StorageClass)

    def __init__(self, cluster_name=DEFAULT_CLUSTER_NAME, kubernetes_proxy_addr=None,
                 redis_ip=None, redis_port=6379, useInternalIP=False, namespace='default',
                 service_types=None, create_namespace_if_not_exists=False, *, prefix=None,
                 kubeconfig=None, context=None, clipper_image=None, replica_image=None,
                 pyspark_image=None, image_pull_policy=None, nats_url=None, nats_replicas=1,
                 data_dir=None, insecure=False, http_tls_cert=None, http_tls_key=None,
                 admin_token_file=None, metrics_token_file=None, query_token_file=None):
        if not isinstance(cluster_name, str) or len(cluster_name) > CLUSTER_NAME_MAX or \
                not _CLUSTER_NAME_RE.match(cluster_name):
            raise ClipperException(
                "Invalid cluster_name {!r}: it names the cluster's Kubernetes objects "
                "(<role>-at-<cluster>) and is the value of the label {}, so it must be 1 to "
                "{} lower case letters, digits or '-', starting and ending with a letter or "
                "digit".format(cluster_name, CLIPPER_DOCKER_LABEL, CLUSTER_NAME_MAX))
        prefix = cluster_prefix(cluster_name, prefix)
        if not isinstance(namespace, str) or len(namespace) > 63 or \
                not _NAMESPACE_RE.match(namespace):
            raise ClipperException(
                "Invalid namespace {!r}: a Kubernetes namespace is 1 to 63 lower case "
                "letters, digits or '-', starting and ending with a letter or "
                "digit".format(namespace))
        self.service_types = validate_service_types(service_types)
        if kubernetes_proxy_addr is not None and (
                not isinstance(kubernetes_proxy_addr, str) or not kubernetes_proxy_addr):
            raise ClipperException(
                "kubernetes_proxy_addr must be the address of a kubectl proxy (such as "
                "\"127.0.0.1:8001\"), got {!r}".format(kubernetes_proxy_addr))
        if nats_url is not None and (not isinstance(nats_url, str) or
                                     not nats_url.startswith(("nats://", "tls://"))):
            raise ClipperException(
                "nats_url must be a NATS URL such as nats://host:4222, got {!r}".format(
                    nats_url))
        for arg, value in (("kubeconfig", kubeconfig), ("context", context)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ClipperException("{} must be a non-empty str, got {!r}".format(
                    arg, value))
        resolve_images(self, {"clipper_image": clipper_image, "replica_image": replica_image,
                              "pyspark_image": pyspark_image},
                       {"clipper_image": DEFAULT_CLIPPER_IMAGE,
                        "replica_image": DEFAULT_REPLICA_IMAGE,
                        "pyspark_image": DEFAULT_PYSPARK_IMAGE})
        images = (self.clipper_image, self.replica_image, self.pyspark_image)
        if image_pull_policy is None:
            image_pull_policy = "Never" if all(i.startswith("localhost/") for i in images) \
                else "IfNotPresent"
        if image_pull_policy not in PULL_POLICIES:
            raise ClipperException(
                "image_pull_policy must be one of {}, got {!r}".format(
                    ", ".join(PULL_POLICIES), image_pull_policy))

        self.cluster_name = cluster_name
        self.prefix = prefix
        self.kubernetes_proxy_addr = kubernetes_proxy_addr
        self.use_k8s_proxy = kubernetes_proxy_addr is not None
        self.redis_ip = redis_ip
        self.redis_port = redis_port
        self.useInternalIP = useInternalIP
        self.image_pull_policy = image_pull_policy
        self.nats_url = nats_url
        self.kubeconfig = kubeconfig
        self.context = context
        self.bus = None
        self.external_node_hosts = None
        self._addrs = {}        # service_types key -> (host, port), from connect()
        if isinstance(nats_replicas, bool) or nats_replicas not in (1, 3, 5):
            raise ClipperException(
                "nats_replicas must be 1, 3 or 5 (a JetStream cluster needs an odd number of "
                "servers for a quorum), got {!r}".format(nats_replicas))
        self._nats_replicas = nats_replicas
        self._nats_urls = None  # the URLs the pods join the bus by, from start_clipper
        if data_dir is not None and (not isinstance(data_dir, str) or not data_dir):
            raise ClipperException("data_dir must be a directory path, got {!r}".format(
                data_dir))
        self._insecure = bool(insecure)
        # The HTTP doors' files: checked now, copied into Secrets by
        # start_clipper.
        http = http_door_files("KubernetesContainerManager", http_tls_cert=http_tls_cert,
                               http_tls_key=http_tls_key, admin_token_file=admin_token_file,
                               metrics_token_file=metrics_token_file,
                               query_token_file=query_token_file)
        self._http_given = http
        self._use_given_http_files()

        self._api_client, self._source = self._load_config()
        self.kube_server = self._api_client.configuration.host
        client, _ = _kube()
        self._core = client.CoreV1Api(self._api_client)
        self._apps = client.AppsV1Api(self._api_client)
        self._rbac = client.RbacAuthorizationV1Api(self._api_client)
        self.k8s_namespace = self._ensure_namespace(namespace, create_namespace_if_not_exists)
        self.namespace = self.k8s_namespace
        self.data_dir = os.path.abspath(os.path.expanduser(
            data_dir if data_dir is not None else
            os.path.join(DEFAULT_DATA_HOME, self.k8s_namespace, cluster_name)))
        # As Clipper computed it.
        if self.k8s_namespace != "default":
            self.cluster_identifier = "{cluster}".format(cluster=self.cluster_name)
        else:
            self.cluster_identifier = "{ns}-{cluster}".format(
                ns=self.k8s_namespace, cluster=self.cluster_name)
        logger.info("Your service_types are %s", self.service_types)

    # ---- the API server ----------------------------------------------------

    def _load_config(self):
        """(ApiClient, where its credentials came from), or ClipperException."""
        client, config = _kube()
        in_pod = (os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(
            "/var/run/secrets/kubernetes.io/serviceaccount/token"))
        cfg = client.Configuration()
        cfg.retries = 1   # urllib3's: one more try on a broken connection, not three
        if self.kubeconfig is None and in_pod:
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException as e:
                raise ClipperException(
                    "Cannot use this pod's service account for the Kubernetes API: "
                    "{}".format(e))
            return client.ApiClient(cfg), "this pod's service account"
        if self.kubeconfig is not None:
            path, source = self.kubeconfig, "given as kubeconfig="
        elif os.environ.get("KUBECONFIG"):
            path, source = os.environ["KUBECONFIG"], "from env KUBECONFIG"
        else:
            path, source = os.path.expanduser("~/.kube/config"), "the default location"
        files = [p for p in path.split(os.pathsep) if p]
        missing = [p for p in files if not os.path.isfile(p)]
        if not files or len(missing) == len(files):
            raise ClipperException(
                "No kubeconfig: {} ({}) does not exist, and this is not a pod with a "
                "service account. Pass kubeconfig= or set KUBECONFIG to the file of your "
                "cluster; {}".format(path, source, KUBE_HINT))
        try:
            config.load_kube_config(config_file=path, context=self.context,
                                    client_configuration=cfg, persist_config=False)
        except (config.ConfigException, OSError, ValueError, TypeError, KeyError) as e:
            raise ClipperException(
                "Cannot load the kubeconfig {} ({}){}: {}".format(
                    path, source,
                    " with context {!r}".format(self.context) if self.context else "",
                    _short(e)))
        return client.ApiClient(cfg), "{} ({})".format(path, source)

    def _unreachable(self, err):
        return ClipperException(
            "Cannot reach the Kubernetes API server at {} (credentials from {}): {}; "
            "{}".format(self.kube_server, self._source, _short(err), KUBE_HINT))

    def _call(self, what, fn, *args, **kwargs):
        """fn(*args, **kwargs) with a timeout; 404 raises _NotFound, any other
        refusal or a network error a ClipperException saying what failed."""
        client, _ = _kube()
        import urllib3
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return fn(*args, **kwargs)
        except client.ApiException as e:
            if e.status == 404:
                raise _NotFound(_api_message(e))
            if e.status in (401, 403):
                raise KubernetesApiError(
                    "The Kubernetes API server at {} refused to {} (HTTP {}): {}. The "
                    "credentials from {} {}.".format(
                        self.kube_server, what, e.status, _api_message(e), self._source,
                        "are not accepted" if e.status == 401 else "are not allowed to do this"),
                    e.status)
            if not e.status:
                raise self._unreachable(e.reason or e)
            raise KubernetesApiError("The Kubernetes API server at {} refused to {}: {} "
                                     "(HTTP {})".format(self.kube_server, what,
                                                        _api_message(e), e.status), e.status)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise self._unreachable(e)

    def _ensure_namespace(self, namespace, create):
        try:
            self._call("read namespace " + namespace, self._core.read_namespace, namespace)
            return namespace
        except _NotFound:
            pass
        except KubernetesApiError as e:
            if e.status != 403:
                raise
            # Credentials limited to the namespace may not read the namespace
            # object; what they may do there is found out when they do it.
            logger.info("Cannot read namespace %s (forbidden); assuming it exists", namespace)
            return namespace
        if not create:
            msg = ("Error connecting to Kubernetes cluster. Namespace does not exist. You can "
                   "pass in KubernetesContainerManager(create_namespace_if_not_exists=True) "
                   "to crate this namespcae")
            logger.error(msg)
            raise ClipperException("{} (namespace '{}' on the API server at {})".format(
                msg, namespace, self.kube_server))
        client, _ = _kube()
        try:
            self._call("create namespace " + namespace, self._core.create_namespace,
                       {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace}})
        except KubernetesApiError as e:
            if e.status != 409:   # 409: made by someone else meanwhile
                logger.error("Exception creating Kubernetes namespace: %s", e.msg)
                raise ClipperException("Could not create Kubernetes namespace. "
                                       "Reason: {}".format(e.msg))
        logger.info("Created Kubernetes namespace %s", namespace)
        return namespace

    def _selector(self, *more):
        return ",".join(["{}={}".format(CLIPPER_DOCKER_LABEL, self.cluster_name)] +
                        list(more))

    def _list(self, what, fn, *more):
        """The items of one of the cluster's collections, selected by label."""
        return self._call("list the {} of cluster {} in namespace {}".format(
            what, self.cluster_name, self.k8s_namespace), fn, self.k8s_namespace,
            label_selector=self._selector(*more)).items

    def _pods(self, *more):
        return self._list("pods", self._core.list_namespaced_pod, *more)

    def _services(self):
        """{role: V1Service} of the cluster's Services."""
        return {s.metadata.labels.get(CLIPPER_NAME_LABEL): s
                for s in self._list("services", self._core.list_namespaced_service)}

    def _name(self, role):
        return "{}-at-{}".format(role, self.cluster_name)

    # ---- addresses ---------------------------------------------------------

    def _require_addr(self, key):
        if key not in self._addrs:
            raise ClipperException(
                "KubernetesContainerManager does not know the addresses of cluster {} yet; "
                "call ClipperConnection.connect() or start_clipper() first".format(
                    self.cluster_name))
        return self._addrs[key]

    def _http_addr(self, key, role, port):
        if self.http_through_proxy(key):
            # The API server speaks HTTPS to a port that serves it when the
            # Service's name says "https:".
            return ("{proxy_addr}/api/v1/namespaces/{ns}/services/{scheme}{svc}:{port}/proxy"
                    .format(proxy_addr=self.kubernetes_proxy_addr, ns=self.k8s_namespace,
                            scheme="https:" if self.http_tls_cert else "",
                            svc=self._name(role), port=port))
        return "{}:{}".format(*self._require_addr(key))

    def http_through_proxy(self, key):
        """True when the address of the service_types key ('query',
        'management', 'metric') goes through the kubectl proxy
        (kubernetes_proxy_addr), which clients speak plain HTTP to, without
        the door's certificate or token."""
        return self.use_k8s_proxy and self.service_types.get(key) != LOAD_BALANCER

    def get_query_addr(self):
        return self._http_addr('query', ROLE_QUERY, CLIPPER_INTERNAL_QUERY_PORT)

    def get_admin_addr(self):
        return self._http_addr('management', ROLE_MGMT, CLIPPER_INTERNAL_MANAGEMENT_PORT)

    def get_metric_addr(self):
        return self._http_addr('metric', ROLE_METRICS, CLIPPER_INTERNAL_METRIC_PORT)

    def get_bus_url(self):
        """The NATS URL this client joins the cluster's bus by (tls://
        unless the cluster is insecure)."""
        if self.nats_url is not None:
            return self.nats_url
        return "{}://{}:{}".format("nats" if self._insecure else "tls",
                                   *self._require_addr('query-rpc'))

    def _tls_name(self):
        """The name nats-server's certificate carries, which every client
        checks: the pods reach the servers by several ClusterIPs, this
        client by a NodePort or a forwarded port."""
        return self._name(ROLE_NATS)

    def _bus_auth(self):
        """The operator identity and the CA in data_dir, as Bus arguments;
        {} for an insecure cluster."""
        if self._insecure:
            return {}
        creds = _secrets.creds_file(self.data_dir, "operator")
        if not os.path.exists(creds):
            raise ClipperException(
                "The bus of cluster {} needs an identity, and there is none in {}: give the "
                "data_dir start_clipper() made it in (KubernetesContainerManager(data_dir="
                "...)), or one with an operator identity from 'clipper creds issue'".format(
                    self.cluster_name, self.data_dir))
        return {"creds": creds, "tls_ca": _secrets.ca_file(self.data_dir),
                "tls_name": self._tls_name()}

    def bus_auth_args(self):
        """The identity and CA this manager joins the bus with, as options
        of the clipper programs ([] on an open bus)."""
        auth = self._bus_auth()
        if not auth:
            return []
        return ["--creds", auth["creds"], "--tls-ca", auth["tls_ca"], "--tls-name",
                auth["tls_name"]]

    def _node_hosts(self):
        """The nodes' addresses as Clipper chose them: ExternalDNS, else (with
        useInternalIP) InternalIP, else Clipper's error."""
        if self.external_node_hosts:
            return self.external_node_hosts
        nodes = self._call("list the nodes", self._core.list_node).items
        hosts = [a.address for n in nodes for a in (n.status.addresses or [])
                 if a.type == "ExternalDNS"]
        if not hosts and self.useInternalIP:
            logger.warning("No external node addresses found. Using Internal IP address")
            hosts = [a.address for n in nodes for a in (n.status.addresses or [])
                     if a.type == "InternalIP"]
        if not hosts:
            msg = ("Error connecting to Kubernetes cluster. No external node addresses found. "
                   "You may pass in KubernetesContainerManager(useInternalIP=True) to connect "
                   "to local Kubernetes cluster")
            logger.error(msg)
            raise ClipperException(msg)
        logger.info("Found %d nodes: %s", len(hosts), ", ".join(hosts))
        self.external_node_hosts = hosts
        return hosts

    def _learn_addresses(self, services, keys=None):
        """Reads the type and address of each Service (those of the
        service_types keys given, default all) into service_types and
        _addrs; (service_types key, why) of those without an address yet."""
        pending = []
        addrs = dict(self._addrs) if keys is not None else {}
        for key, role, port, _ in _SERVICES:
            if keys is not None and key not in keys:
                continue
            svc = services.get(role)
            if svc is None:
                raise ClipperException(
                    "Cluster '{}' in namespace {} has no Service {} (the {} service): it was "
                    "not started by KubernetesContainerManager, or is being removed".format(
                        self.cluster_name, self.k8s_namespace, self._name(role), key))
            kind = svc.spec.type
            self.service_types[key] = kind
            if key == 'query-rpc' and self.nats_url is not None:
                continue
            if key != 'query-rpc' and self.use_k8s_proxy and kind != LOAD_BALANCER:
                continue
            sport = next((p for p in svc.spec.ports or [] if p.port == port), None)
            if kind == LOAD_BALANCER:
                ingress = (svc.status.load_balancer.ingress or []) if (
                    svc.status and svc.status.load_balancer) else []
                host = next((i.ip or i.hostname for i in ingress if i.ip or i.hostname), None)
                if host is None:
                    pending.append((key, "the LoadBalancer Service {} has no ingress address "
                                         "yet".format(svc.metadata.name)))
                    continue
                addrs[key] = (host, port)
            elif kind == NODE_PORT:
                if sport is None or not sport.node_port:
                    pending.append((key, "the Service {} has no NodePort".format(
                        svc.metadata.name)))
                    continue
                addrs[key] = (self._node_hosts()[0], sport.node_port)
            elif kind == CLUSTER_IP:
                addrs[key] = (svc.spec.cluster_ip, port)
            else:
                raise ClipperException("Unknown service_type of {}: {}".format(key, kind))
        self._addrs = addrs
        nats = services.get(ROLE_NATS)
        prefix = (nats.metadata.annotations or {}).get(PREFIX_ANNOTATION) if nats else None
        if prefix:
            self.prefix = prefix
        return pending

    # ---- start -------------------------------------------------------------

    def start_clipper(self, query_frontend_image=None, mgmt_frontend_image=None,
                      frontend_exporter_image=None, cache_size=33554432,
                      qf_http_thread_pool_size=1, qf_http_timeout_request=5,
                      qf_http_timeout_content=300, num_frontend_replicas=1):
        """Creates the cluster's objects and waits until it answers.

        num_frontend_replicas query frontends run behind one Service. The
        image arguments and the qf_http_* arguments are accepted for
        compatibility and unused: every actor runs from clipper_image.
        """
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ClipperException(
                "cache_size must be a whole number of bytes (0 turns the prediction cache "
                "off), got {!r}".format(cache_size))
        if isinstance(num_frontend_replicas, bool) or not isinstance(
                num_frontend_replicas, int) or num_frontend_replicas < 1:
            raise ClipperException("num_frontend_replicas must be a whole number >= 1, got "
                                   "{!r}".format(num_frontend_replicas))
        self._refuse_existing()
        self._use_given_http_files()
        if self._insecure:
            logger.warning("Cluster %s is INSECURE (insecure=True): its bus has no identities "
                           "and no TLS, so whoever reaches it may deploy code (docs/security.md)",
                           self.cluster_name)
        storage = self._nats_storage()
        try:
            self._create_rbac()
            nats_urls = self._start_nats(storage)
            self._create_actors(nats_urls, cache_size, num_frontend_replicas)
            self._wait_ready()
        except BaseException:
            if self.bus is not None:
                self.bus.close()
                self.bus = None
            try:
                self._remove_cluster(graceful=False)
            except Exception as e:  # noqa: BLE001 - the first error is the one to see
                logger.error("Removing what the failed start of cluster %s created failed: "
                             "%s", self.cluster_name, e)
            raise
        logger.info("Started cluster %s in namespace %s: query %s, admin %s, bus %s",
                    self.cluster_name, self.k8s_namespace, self.get_query_addr(),
                    self.get_admin_addr(), self.get_bus_url())

    def _refuse_existing(self):
        workloads = (self._list("deployments", self._apps.list_namespaced_deployment,
                                CLIPPER_NAME_LABEL) +
                     self._list("statefulsets", self._apps.list_namespaced_stateful_set))
        if workloads:
            raise cluster_exists(self.cluster_name)
        left = self._left()
        if left:
            raise ClipperException(
                "Cluster {} has objects left in namespace {} ({}); remove them with "
                "ClipperConnection(KubernetesContainerManager(cluster_name={!r}, "
                "namespace={!r})).stop_all() before starting it again".format(
                    self.cluster_name, self.k8s_namespace, ", ".join(left[:10]),
                    self.cluster_name, self.k8s_namespace))

    def _labels(self, role, extra=None):
        labels = {CLIPPER_DOCKER_LABEL: self.cluster_name, CLIPPER_NAME_LABEL: role}
        labels.update(extra or {})
        return labels

    def _metadata(self, role, name=None, extra_labels=None, annotations=None):
        md = {"name": name or self._name(role), "namespace": self.k8s_namespace,
              "labels": self._labels(role, extra_labels)}
        if annotations:
            md["annotations"] = annotations
        return md

    def _create(self, kind, fn, body):
        name = body["metadata"]["name"]
        return self._call("create {} {} in namespace {}".format(kind, name, self.k8s_namespace),
                          fn, self.k8s_namespace, body)

    def _create_rbac(self):
        """The manager's ServiceAccount, and a Role in this namespace only."""
        name = self._name(ROLE_MANAGER)
        self._create("ServiceAccount", self._core.create_namespaced_service_account, {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": self._metadata(ROLE_MANAGER)})
        self._create("Role", self._rbac.create_namespaced_role, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": self._metadata(ROLE_MANAGER),
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["pods"],
                 "verbs": ["get", "list", "watch", "delete"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ]})
        self._create("RoleBinding", self._rbac.create_namespaced_role_binding, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": self._metadata(ROLE_MANAGER),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name,
                          "namespace": self.k8s_namespace}]})

    def _service(self, key, role, port, selects):
        annotations = {PREFIX_ANNOTATION: self.prefix}
        if not self._insecure:
            annotations[TLS_NAME_ANNOTATION] = self._tls_name()
        # Where the HTTP doors' files are on this host (no content): for
        # connect().
        for arg, path in self._http_files().items():
            if arg in HTTP_LABELS:
                annotations[HTTP_LABELS[arg]] = path
        return {
            "apiVersion": "v1", "kind": "Service",
            "metadata": self._metadata(role, annotations=annotations),
            "spec": {"type": self.service_types[key],
                     "selector": {CLIPPER_DOCKER_LABEL: self.cluster_name,
                                  CLIPPER_NAME_LABEL: selects},
                     "ports": [{"name": str(port), "port": port, "targetPort": port,
                                "protocol": "TCP"}]}}

    def _container(self, role, command, ports=(), readiness=None, liveness=None):
        c = {"name": role, "image": self.clipper_image,
             "imagePullPolicy": self.image_pull_policy, "command": command,
             "ports": [{"name": name, "containerPort": port, "protocol": "TCP"}
                       for name, port in ports],
             "securityContext": {"allowPrivilegeEscalation": False}}
        if readiness:
            c["readinessProbe"] = readiness
        if liveness:
            c["livenessProbe"] = liveness
        return c

    def _pod_template(self, role, container, extra_labels=None, service_account=None,
                      volumes=None, node_selector=None):
        spec = {"containers": [container],
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": self.termination_grace_s,
                "automountServiceAccountToken": service_account is not None}
        if service_account is not None:
            spec["serviceAccountName"] = service_account
        if volumes:
            spec["volumes"] = volumes
        if node_selector:
            spec["nodeSelector"] = node_selector
        return {"metadata": {"labels": self._labels(role, extra_labels)}, "spec": spec}

    @staticmethod
    def _tcp_probe(port, period_s, failures, initial_delay_s=0):
        return {"tcpSocket": {"port": port}, "periodSeconds": period_s, "timeoutSeconds": 2,
                "failureThreshold": failures, "initialDelaySeconds": initial_delay_s}

    @staticmethod
    def _http_probe(path, port, period_s, failures, initial_delay_s=0):
        return {"httpGet": {"path": path, "port": port}, "periodSeconds": period_s,
                "timeoutSeconds": 2, "failureThreshold": failures,
                "initialDelaySeconds": initial_delay_s}

    def _deployment(self, role, template, replicas=1, recreate=False, extra_labels=None):
        d = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": self._metadata(role, extra_labels=extra_labels),
             "spec": {"replicas": replicas, "revisionHistoryLimit": 2,
                      "selector": {"matchLabels": {CLIPPER_DOCKER_LABEL: self.cluster_name,
                                                   CLIPPER_NAME_LABEL: role}},
                      "template": template}}
        if recreate:
            # Never two at once (two managers would fight over the replicas).
            d["spec"]["strategy"] = {"type": "Recreate"}
        return d

    # ---- NATS --------------------------------------------------------------

    def _host_data_dir(self):
        return "{}/{}/{}".format(HOST_DATA_ROOT, self.k8s_namespace, self.cluster_name)

    def _nats_storage(self):
        """Where JetStream keeps its store: ("pvc", storage class) when the
        cluster has a default StorageClass, else ("hostPath", node or None)."""
        client, _ = _kube()
        try:
            classes = self._call("list the storage classes",
                                 client.StorageV1Api(self._api_client).list_storage_class).items
        except KubernetesApiError as e:
            if e.status != 403:
                raise
            classes = []
            logger.warning("Cannot list the storage classes (forbidden): the JetStream store "
                           "goes to a hostPath directory")
        for sc in classes:
            anns = sc.metadata.annotations or {}
            if any(anns.get(a) == "true" for a in DEFAULT_STORAGE_CLASS_ANNOTATIONS):
                return ("pvc", sc.metadata.name)
        # A hostPath: the NATS pod must come back to the node that has it.
        try:
            nodes = self._call("list the nodes", self._core.list_node).items
        except KubernetesApiError as e:
            if e.status != 403:
                raise
            logger.warning("Cannot list the nodes (forbidden): the NATS pod is not pinned to a "
                           "node, and its store survives it only on the same node")
            return ("hostPath", None)
        usable = []
        for n in nodes:
            ready = any(c.type == "Ready" and c.status == "True"
                        for c in (n.status.conditions or []))
            tainted = any(t.effect in ("NoSchedule", "NoExecute")
                          for t in (n.spec.taints or []))
            if ready and not n.spec.unschedulable and not tainted:
                usable.append(n)
        if not usable:
            raise ClipperException(
                "No node of the Kubernetes cluster at {} is Ready and schedulable for the "
                "cluster's NATS pod (nodes: {})".format(
                    self.kube_server, ", ".join(n.metadata.name for n in nodes) or "none"))
        node = sorted(usable, key=lambda n: n.metadata.name)[0]
        return ("hostPath", node)

    def _start_nats(self, storage):
        """The NATS StatefulSet and Service; the URLs the pods join the bus
        by (the Service's ClusterIP, or with nats_replicas > 1 each server's
        own Service) once its pods are ready and this client has joined.

        With nats_replicas > 1 the servers form a NATS cluster: routes
        between them through a Service per server (there is no cluster DNS),
        JetStream clustered, each server with a store of its own (a PVC per
        pod, or a directory per pod under the cluster's host directory)."""
        role = ROLE_NATS
        name = self._name(role)
        n = self._nats_replicas
        command = ["nats-server", "-js", "-p", str(NATS_INTERNAL_PORT),
                   "-m", str(NATS_MONITOR_PORT), "-sd", NATS_DATA_MOUNT,
                   "--server_name", name if n == 1 else "$(POD_NAME)"]
        ports = [("client", NATS_INTERNAL_PORT), ("monitor", NATS_MONITOR_PORT)]
        peers = self._create_nats_peers(name) if n > 1 else []
        if not self._insecure:
            # TLS and the users (and, with several servers, the routes) in
            # the configuration file; the store and ports as before.
            self._make_secrets(peers)
            command[1:1] = ["-c", NATS_SECRETS_MOUNT + "/clipper.conf"]
        if peers and not self._insecure:
            ports.append(("cluster", NATS_ROUTE_PORT))
            self._nats_urls = ",".join("tls://{}:{}".format(ip, NATS_INTERNAL_PORT)
                                       for ip in peers)
        elif peers:
            # Every server solicits every peer's Service (its own included,
            # which nats-server recognises and drops) and learns the rest
            # by gossip.
            command += ["--cluster", "nats://0.0.0.0:{}".format(NATS_ROUTE_PORT),
                        "--cluster_name", "clipper-" + self.cluster_name,
                        "--routes", ",".join("nats-route://{}:{}".format(ip, NATS_ROUTE_PORT)
                                             for ip in peers)]
            ports.append(("cluster", NATS_ROUTE_PORT))
            self._nats_urls = ",".join("nats://{}:{}".format(ip, NATS_INTERNAL_PORT)
                                       for ip in peers)
        if self._insecure:
            # (the secure one sets max_payload in clipper.conf)
            command = nats_server_command(command[1:])
        # Alive while its monitoring port answers (a TCP probe of the client
        # port would be a TLS handshake cut short, logged every time).
        container = self._container(
            role, command, ports=ports,
            readiness=self._http_probe("/healthz", NATS_MONITOR_PORT, 1, 3),
            liveness=self._http_probe("/varz", NATS_MONITOR_PORT, 10, 6))
        container["volumeMounts"] = [{"name": "data", "mountPath": NATS_DATA_MOUNT}]
        secret_volumes = []
        if not self._insecure:
            container["volumeMounts"].append({"name": "nats-secrets",
                                              "mountPath": NATS_SECRETS_MOUNT,
                                              "readOnly": True})
            secret_volumes = [self._secret_volume("nats-secrets",
                                                  self._name("nats-secrets"))]
        if n > 1:
            container["env"] = [{"name": "POD_NAME",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        annotations = {}
        spec = {"serviceName": name, "replicas": n,
                "selector": {"matchLabels": {CLIPPER_DOCKER_LABEL: self.cluster_name,
                                             CLIPPER_NAME_LABEL: role}},
                # All at once: a JetStream cluster is ready only with a quorum.
                "podManagementPolicy": "Parallel"}
        kind, where = storage
        if kind == "pvc":
            spec["template"] = self._pod_template(role, container, volumes=secret_volumes)
            spec["volumeClaimTemplates"] = [{
                "metadata": {"name": "data", "labels": self._labels(role)},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": where,
                         "resources": {"requests": {"storage": self.nats_storage_size}}}}]
            spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete",
                                                            "whenScaled": "Delete"}
            logger.info("The JetStream store of cluster %s is a PersistentVolumeClaim of "
                        "storage class %s", self.cluster_name, where)
        else:
            path = self._host_data_dir()
            selector = None
            annotations[NATS_DATA_ANNOTATION] = path
            if n > 1:
                # A directory per server; the servers are not pinned to one
                # node (a server that comes back elsewhere catches up from
                # the others).
                container["volumeMounts"][0]["subPathExpr"] = "$(POD_NAME)"
                where = None
            if where is not None:
                hostname = (where.metadata.labels or {}).get("kubernetes.io/hostname")
                selector = {"kubernetes.io/hostname": hostname} if hostname else None
                annotations[NATS_NODE_ANNOTATION] = where.metadata.name
            spec["template"] = self._pod_template(
                role, container, node_selector=selector,
                volumes=[{"name": "data",
                          "hostPath": {"path": path, "type": "DirectoryOrCreate"}}] +
                secret_volumes)
            logger.info("The JetStream store of cluster %s is the directory %s on node %s "
                        "(the cluster has no default StorageClass)", self.cluster_name, path,
                        where.metadata.name if where is not None else "(any)")
        md = self._metadata(role, annotations=annotations)
        self._create("StatefulSet", self._apps.create_namespaced_stateful_set, {
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": md, "spec": spec})
        svc = self._create("Service", self._core.create_namespaced_service,
                           self._service('query-rpc', role, NATS_INTERNAL_PORT, role))
        if self._nats_urls is None:
            self._nats_urls = "{}://{}:{}".format("nats" if self._insecure else "tls",
                                                  svc.spec.cluster_ip, NATS_INTERNAL_PORT)
        self._wait_bus()
        return self._nats_urls

    def _make_secrets(self, peers):
        """The cluster's secrets (`clipper creds init`, in data_dir) as
        Secrets: nats-server's (with its configuration: the users, TLS, and
        with several servers the routes), and one identity per actor role."""
        _secrets.creds_init(
            self.data_dir, self.prefix, [self._tls_name()] + list(peers), NATS_SECRETS_MOUNT,
            "cluster {}; choose another with KubernetesContainerManager(data_dir=...)".format(
                self.cluster_name))
        conf = ["# written by KubernetesContainerManager (docs/security.md)",
                "# inputs and outputs larger than the 1 MiB default",
                "max_payload: {}".format(MAX_PAYLOAD),
                'include "nats-server.auth.conf"']
        if peers:
            # Routes over TLS, both ends showing a certificate of the
            # cluster's CA: only the cluster's own servers may route.
            conf += ["cluster {",
                     '  name: "clipper-{}"'.format(self.cluster_name),
                     '  listen: "0.0.0.0:{}"'.format(NATS_ROUTE_PORT),
                     "  routes: [{}]".format(", ".join(
                         '"nats-route://{}:{}"'.format(ip, NATS_ROUTE_PORT) for ip in peers)),
                     "  tls {",
                     '    cert_file: "{}/server.pem"'.format(NATS_SECRETS_MOUNT),
                     '    key_file: "{}/server.key"'.format(NATS_SECRETS_MOUNT),
                     '    ca_file: "{}/ca.pem"'.format(NATS_SECRETS_MOUNT),
                     "    verify: true",
                     "    timeout: 2",
                     "  }",
                     "}"]
        ca = _secrets.read_text(_secrets.ca_file(self.data_dir), "the cluster's CA")
        data = {"clipper.conf": "\n".join(conf) + "\n", "ca.pem": ca}
        for f in ("server.pem", "server.key", "nats-server.auth.conf"):
            data[f] = _secrets.read_text(os.path.join(self.data_dir, "nats", f),
                                         "nats-server's file")
        self._create_secret(ROLE_NATS, self._name("nats-secrets"), data)
        for identity in sorted(set(_IDENTITIES.values())) + ["replica"]:
            self._create_secret(
                "identity-" + identity, self._name("identity-" + identity),
                {identity + ".creds": _secrets.read_text(
                    _secrets.creds_file(self.data_dir, identity), "the credential file"),
                 "ca.pem": ca})

    def admin_token_file(self):
        """The file holding the bearer token the management REST wants
        ('Authorization: Bearer <token>'): admin_token_file= when given,
        else <data_dir>/admin.token; None for an insecure cluster without
        admin_token_file=, whose REST takes none."""
        if self._admin_token_given is not None:
            return self._admin_token_given
        return None if self._insecure else os.path.join(self.data_dir, "admin.token")

    def _admin_token(self):
        """The management REST's token: admin_token_file='s, or made once
        (64 hex digits) in data_dir and kept."""
        path = self.admin_token_file()
        if self._admin_token_given is not None:
            return self._token(path, "admin_token_file")
        try:
            with open(path) as f:
                token = f.readline().strip()
            if token:
                return token
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ClipperException("Cannot read the management REST's token {}: {}".format(
                path, e))
        token = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token

    @staticmethod
    def _token(path, arg):
        """The token in path (its first line; checked by http_door_files)."""
        try:
            with open(path) as f:
                return f.readline().strip()
        except OSError as e:
            raise ClipperException("Cannot read {} {}: {}".format(arg, path, e))

    def _http_files(self):
        """{argument: host path} of the HTTP doors' files in use."""
        files = {"http_tls_cert": self.http_tls_cert, "http_tls_key": self.http_tls_key,
                 "admin_token_file": self.admin_token_file(),
                 "metrics_token_file": self.metrics_token_file,
                 "query_token_file": self.query_token_file}
        return {k: v for k, v in files.items() if v is not None}

    def _make_http_secrets(self):
        """The HTTP doors' Secrets: the certificate and key, and a token per
        door that has one (the management REST's by default)."""
        if self.http_tls_cert is not None:
            self._create_secret("http-tls", self._name("http-tls"), {
                "tls.crt": _secrets.read_text(self.http_tls_cert, "http_tls_cert"),
                "tls.key": _secrets.read_text(self.http_tls_key, "http_tls_key")},
                kind="kubernetes.io/tls")
        if self.admin_token_file() is not None:
            self._create_secret(ROLE_MGMT, self._name("admin-token"),
                                {"admin.token": self._admin_token() + "\n"})
        for arg, door in (("metrics_token_file", "metrics"), ("query_token_file", "query")):
            path = getattr(self, arg)
            if path is not None:
                self._create_secret(ROLE_QUERY, self._name(door + "-token"),
                                    {door + ".token": self._token(path, arg) + "\n"})

    def _create_secret(self, role, name, data, kind="Opaque"):
        self._create("Secret", self._core.create_namespaced_secret, {
            "apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": self._metadata(role, name=name), "stringData": data})

    @staticmethod
    def _secret_volume(volume, secret):
        # 0400: a credential file others may read is refused.
        return {"name": volume, "secret": {"secretName": secret, "defaultMode": SECRET_MODE}}

    def _with_identity(self, role, container, template_kw):
        """container (an actor's) connecting as its role's identity, from
        the Secret mounted into its pod."""
        if self._insecure:
            return
        identity = _IDENTITIES[role]
        container["command"] += ["--creds", "{}/{}.creds".format(IDENTITY_MOUNT, identity),
                                 "--tls-ca", IDENTITY_MOUNT + "/ca.pem",
                                 "--tls-name", self._tls_name()]
        if role == ROLE_MANAGER:
            container["command"] += ["--replica-secret", self._name("identity-replica")]
        self._mount_secret(container, template_kw, "identity", "identity-" + identity,
                           IDENTITY_MOUNT)

    def _mount_secret(self, container, template_kw, volume, secret, mount):
        """The Secret <secret>-at-<cluster> mounted read-only (0400) at
        mount in container."""
        container.setdefault("volumeMounts", []).append(
            {"name": volume, "mountPath": mount, "readOnly": True})
        template_kw.setdefault("volumes", []).append(
            self._secret_volume(volume, self._name(secret)))

    def _with_http_doors(self, role, container, template_kw):
        """container (the admin's or a frontend's) serving its doors with
        the certificate and the tokens, from their Secrets."""
        if role not in (ROLE_MGMT, ROLE_QUERY):
            return
        if self.http_tls_cert is not None:
            self._mount_secret(container, template_kw, "http-tls", "http-tls", HTTP_TLS_MOUNT)
            container["command"] += ["--http-tls-cert", HTTP_TLS_MOUNT + "/tls.crt",
                                     "--http-tls-key", HTTP_TLS_MOUNT + "/tls.key"]
        if role == ROLE_MGMT:
            doors = (("admin-token", ADMIN_TOKEN_MOUNT, "admin.token", "--http-token-file",
                      self.admin_token_file()),)
        else:
            doors = (("metrics-token", METRICS_TOKEN_MOUNT, "metrics.token",
                      "--metrics-token-file", self.metrics_token_file),
                     ("query-token", QUERY_TOKEN_MOUNT, "query.token", "--query-token-file",
                      self.query_token_file))
        for secret, mount, name, option, path in doors:
            if path is not None:
                self._mount_secret(container, template_kw, secret, secret, mount)
                container["command"] += [option, "{}/{}".format(mount, name)]

    def _create_nats_peers(self, statefulset):
        """A ClusterIP Service per server of the NATS StatefulSet (its pod
        <statefulset>-<i>, client and route ports); their ClusterIPs."""
        ips = []
        for i in range(self._nats_replicas):
            pod = "{}-{}".format(statefulset, i)
            md = self._metadata(ROLE_NATS_PEER, name="nats-{}-at-{}".format(i, self.cluster_name))
            svc = self._create("Service", self._core.create_namespaced_service, {
                "apiVersion": "v1", "kind": "Service", "metadata": md,
                "spec": {"type": CLUSTER_IP,
                         "selector": {CLIPPER_DOCKER_LABEL: self.cluster_name,
                                      CLIPPER_NAME_LABEL: ROLE_NATS,
                                      "statefulset.kubernetes.io/pod-name": pod},
                         # Routes must reach a server before it is ready.
                         "publishNotReadyAddresses": True,
                         "ports": [{"name": "client", "port": NATS_INTERNAL_PORT,
                                    "targetPort": NATS_INTERNAL_PORT},
                                   {"name": "cluster", "port": NATS_ROUTE_PORT,
                                    "targetPort": NATS_ROUTE_PORT}]}})
            ips.append(svc.spec.cluster_ip)
        return ips

    def _wait_bus(self):
        """Until the NATS pod is ready and this client joined the bus."""
        deadline = time.monotonic() + self.start_timeout_s
        last = "its pod is not ready"
        while True:
            pods = self._pods("{}={}".format(CLIPPER_NAME_LABEL, ROLE_NATS))
            self._raise_if_stuck(pods)
            if pods and all(_pod_ready(p) for p in pods):
                pending = self._learn_addresses(self._services(), ('query-rpc',))
                last = "; ".join(why for _, why in pending)
                if not pending:
                    try:
                        self.bus = Bus(self.get_bus_url(), prefix=self.prefix,
                                       name="clipper_admin", connect_timeout_ms=1000,
                                       **self._bus_auth())
                        return
                    except BusError as e:
                        last = "this client cannot join it at {}: {}".format(
                            self.get_bus_url(), e)
            if time.monotonic() > deadline:
                raise ClipperException(
                    "The nats-server of cluster {} was not ready within {:.0f} s: {}. {}".format(
                        self.cluster_name, self.start_timeout_s, last,
                        self._describe_workloads([ROLE_NATS])).rstrip())
            time.sleep(0.2)

    # ---- the actors --------------------------------------------------------

    def _create_actors(self, nats, cache_size, num_frontend_replicas):
        self._make_http_secrets()
        # A port with TLS or a token answers the kubelet's HTTP probes with
        # a failed handshake or 401: those probes knock on it instead (the
        # actor's answer on the bus is what start_clipper waits for).
        tls = self.http_tls_cert is not None
        ask_admin = not tls and self.admin_token_file() is None
        ask_query = not tls and self.query_token_file is None
        bus = ["--nats", nats, "--prefix", self.prefix]
        if self._nats_replicas > 1:
            bus += ["--state-replicas", "3"]
        mgmt = CLIPPER_INTERNAL_MANAGEMENT_PORT
        query = CLIPPER_INTERNAL_QUERY_PORT
        metric = CLIPPER_INTERNAL_METRIC_PORT
        # The admin listens on 127.0.0.1 unless told otherwise: its Service
        # and probes reach the pod's address, so it must listen on 0.0.0.0.
        specs = [
            (ROLE_MGMT, self._container(
                ROLE_MGMT, ["clipper", "run", "admin"] + bus +
                ["--http-host", "0.0.0.0", "--http-port", str(mgmt)],
                ports=(("http", mgmt),),
                readiness=self._http_probe("/admin/ping", mgmt, 1, 3) if ask_admin
                else self._tcp_probe(mgmt, 1, 3),
                liveness=self._http_probe("/admin/ping", mgmt, 10, 6, 10) if ask_admin
                else self._tcp_probe(mgmt, 10, 6, 10)),
             {"extra_labels": {CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL: ""}}, {}),
            (ROLE_ROUTER, self._container(ROLE_ROUTER, ["clipper", "run", "router"] + bus),
             {}, {"recreate": True}),
            (ROLE_QUERY, self._container(
                ROLE_QUERY, ["clipper", "run", "frontend"] + bus +
                ["--http-host", "0.0.0.0", "--http-port", str(query),
                 "--metrics-port", str(metric), "--cache-size", str(cache_size)],
                ports=(("http", query), ("metrics", metric)),
                readiness=self._http_probe("/metrics", query, 1, 3) if ask_query
                else self._tcp_probe(query, 1, 3),
                liveness=self._http_probe("/metrics", query, 10, 6, 10) if ask_query
                else self._tcp_probe(query, 10, 6, 10)),
             {"extra_labels": {CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL: ""}},
             {"replicas": num_frontend_replicas}),
            (ROLE_MANAGER, self._container(
                ROLE_MANAGER, ["clipper", "run", "manager"] + bus +
                ["--backend", "kubernetes", "--namespace", self.k8s_namespace,
                 "--cluster", self.cluster_name, "--image", self.replica_image,
                 "--image", "pyspark=" + self.pyspark_image,
                 "--pull-policy", self.image_pull_policy, "--replica-nats", nats]),
             {"service_account": self._name(ROLE_MANAGER)}, {"recreate": True}),
        ]
        for role, container, template_kw, deployment_kw in specs:
            self._with_identity(role, container, template_kw)
            self._with_http_doors(role, container, template_kw)
            template = self._pod_template(role, container, **template_kw)
            self._create("Deployment", self._apps.create_namespaced_deployment,
                         self._deployment(role, template,
                                          extra_labels=template_kw.get("extra_labels"),
                                          **deployment_kw))
        for key, role, port, selects in _SERVICES:
            if role != ROLE_NATS:
                self._create("Service", self._core.create_namespaced_service,
                             self._service(key, role, port, selects))

    def _wait_ready(self):
        """Until every actor pod is ready, the admin answers on the bus, the
        manager answers cm.status and the query and management addresses
        accept connections; raises at once when a pod of the cluster cannot
        start."""
        deadline = time.monotonic() + self.start_timeout_s
        checks = {  # what is not so yet: (the address it needs, the check)
            "not every actor pod is ready": (None, self._actors_ready),  # first: see below
            "the admin does not answer {}.admin.ping".format(self.prefix):
                (None, lambda: _ping(self.bus, 2000)),
            "the container manager does not answer {}.cm.status".format(self.prefix):
                (None, lambda: self._manager_answers(2000)),
            "the query frontend's address does not accept connections":
                ('query', lambda: self._reachable('query', "/metrics")),
            "the management REST's address does not accept connections":
                ('management', lambda: self._reachable('management', "/admin/ping")),
        }
        actors = "not every actor pod is ready"
        while True:
            pending = dict(self._learn_addresses(self._services()))
            for what, (needs, check) in list(checks.items()):
                # A NodePort is knocked on only once its pods are ready: a SYN
                # refused while its Service has no endpoint leaves a conntrack
                # entry without DNAT on the node, which refuses a later
                # connection from the same source port (Kubernetes issue 48719).
                if needs is not None and actors in checks:
                    continue
                if needs not in pending and check():
                    del checks[what]
            if not checks and not pending:
                return
            self._raise_if_stuck(self._pods(CLIPPER_NAME_LABEL))
            if time.monotonic() > deadline:
                why = list(pending.values()) + [w for w, (needs, _) in checks.items()
                                                if needs not in pending]
                raise ClipperException(
                    "Cluster {} was not ready within {:.0f} s: {}. {}".format(
                        self.cluster_name, self.start_timeout_s, "; ".join(why),
                        self._describe_workloads(ACTOR_ROLES)).rstrip())
            time.sleep(0.2)

    def _actors_ready(self):
        deps = self._list("deployments", self._apps.list_namespaced_deployment,
                          CLIPPER_NAME_LABEL)
        return len(deps) == len(ACTOR_ROLES) and all(
            d.status is not None and (d.status.ready_replicas or 0) >= d.spec.replicas
            and (d.status.updated_replicas or 0) >= d.spec.replicas for d in deps)

    def _reachable(self, key, path):
        if self.http_through_proxy(key):
            # Through the API server's service proxy: an HTTP answer counts.
            addr = self.get_query_addr() if key == 'query' else self.get_admin_addr()
            url = addr if addr.startswith(("http://", "https://")) else "http://" + addr
            try:
                with urllib.request.urlopen(url + path, timeout=2) as r:
                    return r.status == 200
            except urllib.error.HTTPError as e:
                return e.code == 401  # the port wants its token: it answers
            except (OSError, urllib.error.URLError, ValueError):
                return False
        host, port = self._require_addr(key)
        return _tcp_accepts(host, port)

    def _manager_answers(self, timeout_ms):
        try:
            self.bus.request("{}.cm.status".format(self.prefix), b"{}", timeout_ms)
            return True
        except BusError:
            return False

    # ---- pods: what is wrong with them ---------------------------------------

    def _raise_if_stuck(self, pods):
        """ClipperException naming the first pod that will not start by
        waiting (an image the node lacks, a container that keeps ending)."""
        for p in pods:
            why = self._pod_problem(p)
            if why:
                raise ClipperException(
                    "Pod {} of cluster {} in namespace {} cannot start: {}".format(
                        p.metadata.name, self.cluster_name, self.k8s_namespace, why))

    def _pod_problem(self, pod):
        if pod.status is None:
            return None
        if pod.status.phase == "Failed":
            return "it failed ({}: {})".format(pod.status.reason or "Failed",
                                               pod.status.message or "no message")
        for cs in pod.status.container_statuses or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting is None or waiting.reason not in _STUCK_REASONS:
                continue
            if waiting.reason in _IMAGE_REASONS:
                hint = ("the pull policy is Never, so the image must be in the node's "
                        "container runtime: load the project's images with `{}`, or name "
                        "images the nodes can pull with image_pull_policy='IfNotPresent'"
                        .format(IMAGES_HINT) if waiting.reason == "ErrImageNeverPull" else
                        "check the image name and that the nodes can pull it")
                return "container {} is waiting: {} for image {} on node {} ({}); {}".format(
                    cs.name, waiting.reason, cs.image, pod.spec.node_name or "?",
                    waiting.message or "no message", hint)
            if waiting.reason == "CrashLoopBackOff":
                term = cs.last_state.terminated if cs.last_state else None
                how = ("exit code {}{}".format(term.exit_code, " ({})".format(term.reason)
                                               if term.reason else "")
                       if term is not None else "unknown")
                return ("container {} keeps ending (CrashLoopBackOff, restarted {} time(s); "
                        "last: {}); its log ends with:\n{}".format(
                            cs.name, cs.restart_count, how,
                            self._log_tail(pod.metadata.name, cs.name, previous=True)))
            return "container {} is waiting: {}: {}".format(
                cs.name, waiting.reason, waiting.message or "no message")
        return None

    def _log_tail(self, pod, container, previous=False, lines=30):
        try:
            text = self._call("read the log of pod " + pod,
                              self._core.read_namespaced_pod_log, pod, self.k8s_namespace,
                              container=container, previous=previous, tail_lines=lines)
        except (ClipperException, _NotFound) as e:
            return "(cannot read its log: {})".format(_short(e))
        return (text or "").rstrip() or "(empty)"

    def _describe_workloads(self, roles):
        """What the pods of roles are doing, for an error message."""
        parts = []
        pods = self._pods(CLIPPER_NAME_LABEL)
        for role in roles:
            mine = [p for p in pods if p.metadata.labels.get(CLIPPER_NAME_LABEL) == role]
            if not mine:
                kind = "StatefulSet" if role == ROLE_NATS else "Deployment"
                warning = self._last_warning(kind, self._name(role))
                parts.append("{} {} has no pod{}".format(
                    kind, self._name(role), ": " + warning if warning else ""))
                continue
            for p in mine:
                if not _pod_ready(p):
                    parts.append("pod {}: {}".format(p.metadata.name, _pod_state(p)))
        return ("Not ready: " + "; ".join(parts)) if parts else ""

    def _last_warning(self, kind, name):
        try:
            events = self._call(
                "list the events of " + name, self._core.list_namespaced_event,
                self.k8s_namespace,
                field_selector="involvedObject.kind={},involvedObject.name={}".format(
                    kind, name)).items
        except (ClipperException, _NotFound):
            return None
        warnings = [e for e in events if e.type == "Warning"]
        if not warnings:
            return None
        last = warnings[-1]
        return "{}: {}".format(last.reason, last.message)

    # ---- connect -----------------------------------------------------------

    def connect(self):
        """Finds the running cluster by its labels and joins its bus."""
        if self.bus is not None and not self.bus.closed and _ping(self.bus, 5000):
            return
        services = self._services()
        if not services:
            raise ClipperException(
                "No Service of cluster '{}' in namespace {} on the Kubernetes API server at "
                "{} (none has the label {}={}). Start it with "
                "ClipperConnection.start_clipper().".format(
                    self.cluster_name, self.k8s_namespace, self.kube_server,
                    CLIPPER_DOCKER_LABEL, self.cluster_name))
        pending = self._learn_addresses(services)
        if pending:
            raise ClipperException("Could not connect to Clipper Kubernetes cluster. "
                                   "Reason: {}".format("; ".join(w for _, w in pending)))
        # Whether the bus is secure is on its Service: an open cluster is
        # joined openly whatever insecure= said.
        nats = services.get(ROLE_NATS)
        if nats is not None:
            anns = nats.metadata.annotations or {}
            self._insecure = TLS_NAME_ANNOTATION not in anns
        self._adopt_http_files(services.get(ROLE_QUERY), services.get(ROLE_MGMT))
        self._join_bus("The Services of cluster '{}' exist".format(self.cluster_name))

    def _use_given_http_files(self):
        """As ContainerManager's (not the files connect() learnt from a
        running cluster's Services)."""
        given = super()._use_given_http_files()
        self._admin_token_given = given.get("admin_token_file")  # see admin_token_file()

    def _adopt_http_files(self, query, mgmt):
        """The HTTP doors' files the cluster was started with, from its
        Services' annotations, unless this manager was given its own; only
        those that exist on this host (start_clipper may have run on
        another)."""
        def annotated(svc, arg):
            path = ((svc.metadata.annotations or {}) if svc is not None else {}).get(
                HTTP_LABELS[arg])
            return path if path and os.path.isfile(path) else None
        if self.http_tls_cert is None:
            self.http_tls_cert = annotated(query, "http_tls_cert")
        for arg in ("metrics_token_file", "query_token_file"):
            if getattr(self, arg) is None:
                setattr(self, arg, annotated(query, arg))
        if self._admin_token_given is None:
            self._admin_token_given = annotated(mgmt, "admin_token_file")

    # ---- models ------------------------------------------------------------
    # Through the bus (BusModels), as the other managers: the same admin
    # commands and the same wait for the replicas the manager actor reports.

    def stop_models(self, models):
        """Sets the replicas of each version to 0; waits until their pods
        are gone."""
        BusModels.stop_models(self, models)
        wanted = {(name, str(v)) for name, versions in models.items() for v in versions}
        self._wait_replica_pods_gone(lambda mv: mv in wanted)

    def stop_all_model_containers(self):
        BusModels.stop_all_model_containers(self)
        self._wait_replica_pods_gone(lambda mv: True)

    def replica_pods(self, name=None, version=None):
        """The pods of model replicas of the cluster (of name:version when given)."""
        pods = self._pods(CLIPPER_MODEL_CONTAINER_LABEL)
        return [p for p in pods if (name is None or _pod_model(p)[0] == name) and (
            version is None or _pod_model(p)[1] == str(version))]

    def _wait_replica_pods_gone(self, selected):
        self._wait_gone(lambda: [p.metadata.name for p in self.replica_pods()
                                 if selected(_pod_model(p))], "Replica pods")

    # ---- logs --------------------------------------------------------------

    def get_logs(self, logging_dir):
        """Writes the log of each container of each pod of the cluster
        (replicas included) to logging_dir/<pod>_<n>.log, as Clipper named
        them, and a restarted container's previous log to
        <pod>_<n>.previous.log; returns the paths."""
        logging_dir = os.path.abspath(os.path.expanduser(logging_dir))
        os.makedirs(logging_dir, exist_ok=True)
        paths = []
        for pod in self._pods():
            statuses = (pod.status.container_statuses or []) if pod.status else []
            for i, c in enumerate(statuses):
                logs = [(False, "{}_{}.log".format(pod.metadata.name, i))]
                if c.restart_count:
                    logs.append((True, "{}_{}.previous.log".format(pod.metadata.name, i)))
                for previous, file_name in logs:
                    try:
                        text = self._call("read the log of pod " + pod.metadata.name,
                                          self._core.read_namespaced_pod_log,
                                          pod.metadata.name, self.k8s_namespace,
                                          container=c.name, previous=previous)
                    except _NotFound:
                        continue    # removed meanwhile
                    except KubernetesApiError as e:
                        if e.status == 400:
                            continue    # not started yet: no log
                        raise
                    path = os.path.join(logging_dir, file_name)
                    with open(path, "w") as f:
                        f.write(text or "")
                    paths.append(path)
        return paths

    # ---- stop --------------------------------------------------------------

    def stop_all(self, graceful=True):
        """Deletes every object of the cluster in the namespace: its
        workloads, the replica Deployments the manager made, Services,
        RBAC and the JetStream store (PVC or hostPath directory), and waits
        until nothing with the cluster label is left. The manager goes
        first, so that it makes nothing more; then the actors and replicas
        while the bus still runs; nats-server last. graceful=False deletes
        with gracePeriodSeconds=0. Needs no connect(). Other clusters are
        left alone."""
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        self._remove_cluster(graceful)
        logger.info("Stopped all Clipper cluster and all model containers")

    def _remove_cluster(self, graceful):
        grace = None if graceful else 0
        data = self._nats_data()
        deadline = time.monotonic() + self.stop_timeout_s
        role = lambda r: "{}={}".format(CLIPPER_NAME_LABEL, r)  # noqa: E731
        # The manager first: it would make replica Deployments again.
        self._delete_workloads(grace, role(ROLE_MANAGER))
        self._wait_pods_gone(deadline, role(ROLE_MANAGER))
        # The actors and the replicas, while the bus runs.
        self._delete_workloads(grace, "{} notin ({})".format(CLIPPER_NAME_LABEL, ROLE_NATS))
        self._wait_pods_gone(deadline, "{} notin ({})".format(CLIPPER_NAME_LABEL, ROLE_NATS))
        # Then everything.
        while True:
            self._delete_all(grace)
            if not self._pods() or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if data is not None:
            self._remove_host_data(data, deadline)
        while True:
            left = self._left()
            if not left:
                return
            if time.monotonic() > deadline:
                raise ClipperException(
                    "Objects of cluster {} in namespace {} are still there {:.0f} s after "
                    "stop_all: {}".format(self.cluster_name, self.k8s_namespace,
                                          self.stop_timeout_s, ", ".join(left)))
            self._delete_all(grace)
            time.sleep(0.5)

    def _delete_opts(self, grace):
        kw = {"propagation_policy": "Background"}
        if grace is not None:
            kw["grace_period_seconds"] = grace
        return kw

    def _delete_workloads(self, grace, *more):
        """The Deployments and StatefulSets selected, then their pods."""
        sel = self._selector(*more)
        for what, fn in (("deployments", self._apps.delete_collection_namespaced_deployment),
                         ("statefulsets", self._apps.delete_collection_namespaced_stateful_set),
                         ("replicasets", self._apps.delete_collection_namespaced_replica_set),
                         ("pods", self._core.delete_collection_namespaced_pod)):
            try:
                self._call("delete the {} of cluster {}".format(what, self.cluster_name), fn,
                           self.k8s_namespace, label_selector=sel, **self._delete_opts(grace))
            except _NotFound:
                pass

    def _wait_pods_gone(self, deadline, *more):
        while self._pods(*more) and time.monotonic() < deadline:
            time.sleep(0.3)

    def _delete_all(self, grace):
        self._delete_workloads(grace)
        sel = self._selector()
        opts = self._delete_opts(grace)
        for what, fn in (
                ("controllerrevisions",
                 self._apps.delete_collection_namespaced_controller_revision),
                ("persistentvolumeclaims",
                 self._core.delete_collection_namespaced_persistent_volume_claim),
                ("serviceaccounts", self._core.delete_collection_namespaced_service_account),
                ("rolebindings", self._rbac.delete_collection_namespaced_role_binding),
                ("roles", self._rbac.delete_collection_namespaced_role),
                ("secrets", self._core.delete_collection_namespaced_secret)):
            try:
                self._call("delete the {} of cluster {}".format(what, self.cluster_name), fn,
                           self.k8s_namespace, label_selector=sel, **opts)
            except _NotFound:
                pass
        # Services one by one (deletecollection of Services is recent).
        for svc in self._list("services", self._core.list_namespaced_service):
            if svc.metadata.deletion_timestamp is None:
                try:
                    self._call("delete Service " + svc.metadata.name,
                               self._core.delete_namespaced_service, svc.metadata.name,
                               self.k8s_namespace)
                except _NotFound:
                    pass

    def _left(self):
        """"Kind/name" of each object with the cluster label in the namespace."""
        client, _ = _kube()
        discovery = client.DiscoveryV1Api(self._api_client)
        kinds = (("Deployment", self._apps.list_namespaced_deployment),
                 ("StatefulSet", self._apps.list_namespaced_stateful_set),
                 ("ReplicaSet", self._apps.list_namespaced_replica_set),
                 ("ControllerRevision", self._apps.list_namespaced_controller_revision),
                 ("Pod", self._core.list_namespaced_pod),
                 ("Service", self._core.list_namespaced_service),
                 ("EndpointSlice", discovery.list_namespaced_endpoint_slice),
                 ("PersistentVolumeClaim", self._core.list_namespaced_persistent_volume_claim),
                 ("ServiceAccount", self._core.list_namespaced_service_account),
                 ("Role", self._rbac.list_namespaced_role),
                 ("RoleBinding", self._rbac.list_namespaced_role_binding),
                 ("Secret", self._core.list_namespaced_secret))
        left = []
        for kind, fn in kinds:
            left += ["{}/{}".format(kind, o.metadata.name) for o in self._list(kind, fn)]
        return left

    def _nats_data(self):
        """(host directory, node, images to remove it with, pull policy) of
        the cluster's hostPath JetStream store, or None (a PVC, or no NATS
        StatefulSet)."""
        try:
            sts = self._call("read StatefulSet " + self._name(ROLE_NATS),
                             self._apps.read_namespaced_stateful_set, self._name(ROLE_NATS),
                             self.k8s_namespace)
        except _NotFound:
            return None
        path = (sts.metadata.annotations or {}).get(NATS_DATA_ANNOTATION)
        if not path:
            return None
        node = (sts.metadata.annotations or {}).get(NATS_NODE_ANNOTATION)
        if node is None:    # not pinned: where its pod runs
            pods = self._pods("{}={}".format(CLIPPER_NAME_LABEL, ROLE_NATS))
            node = next((p.spec.node_name for p in pods if p.spec.node_name), None)
        c = sts.spec.template.spec.containers[0]
        # Any image with rm in it will do: nats-server's first; when that
        # one is missing on the node (the reason the start failed, say),
        # the replicas'.
        images = []
        for image in (c.image, self.clipper_image, self.replica_image, self.pyspark_image):
            if image not in images:
                images.append(image)
        return path, node, images, c.image_pull_policy

    def _remove_host_data(self, data, deadline):
        """Removes the hostPath store (and its namespace's directory when
        that is left empty) by a pod on its node."""
        path, node, images, pull_policy = data
        if node is None:
            logger.warning("The JetStream store of cluster %s is the directory %s on a node "
                           "that is not known any more: remove it by hand", self.cluster_name,
                           path)
            return
        if path.startswith(HOST_DATA_ROOT + "/") and path.count("/") == \
                HOST_DATA_ROOT.count("/") + 2:
            # <root>/<namespace>/<cluster>: the namespace's directory too.
            mount, (ns_dir, leaf) = HOST_DATA_ROOT, path[len(HOST_DATA_ROOT) + 1:].split("/")
            script = 'rm -rf -- "/host/$1/$2" && { rmdir -- "/host/$1" 2>/dev/null || true; }'
            args = [ns_dir, leaf]
        else:
            mount, leaf = path.rsplit("/", 1)
            script = 'rm -rf -- "/host/$1"'
            args = [leaf]
        outcome = "no image to run"
        for image in images:
            outcome = self._run_cleanup_pod(node, image, pull_policy, mount,
                                            ["sh", "-c", script, "sh"] + args, deadline)
            if outcome == "Succeeded" or time.monotonic() > deadline:
                break
        if outcome != "Succeeded":
            logger.warning("Removing the JetStream store %s of cluster %s on node %s did not "
                           "succeed (%s): remove it by hand", path, self.cluster_name, node,
                           outcome)

    def _run_cleanup_pod(self, node, image, pull_policy, host_dir, command, deadline):
        """Runs command in a pod of image on node with host_dir at /host;
        "Succeeded", or what went wrong. The pod is deleted after."""
        name = self._name(ROLE_NATS_CLEANUP)
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": self._metadata(ROLE_NATS_CLEANUP, name=name),
            "spec": {"nodeName": node, "restartPolicy": "Never",
                     "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "cleanup", "image": image,
                                     "imagePullPolicy": pull_policy, "command": command,
                                     "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                     "volumes": [{"name": "host", "hostPath": {"path": host_dir,
                                                                "type": "Directory"}}]}}
        try:
            self._create("Pod", self._core.create_namespaced_pod, body)
        except ClipperException as e:
            return e.msg
        outcome = "timed out"
        try:
            while time.monotonic() < deadline:
                try:
                    pod = self._call("read pod " + name, self._core.read_namespaced_pod, name,
                                     self.k8s_namespace)
                except _NotFound:
                    outcome = "its pod was deleted"
                    break
                if pod.status and pod.status.phase in ("Succeeded", "Failed"):
                    outcome = pod.status.phase
                    if outcome == "Failed":
                        outcome += ": " + self._log_tail(name, "cleanup")
                    break
                problem = self._pod_problem(pod)
                if problem:
                    outcome = problem
                    break
                time.sleep(0.3)
        finally:
            try:
                self._call("delete pod " + name, self._core.delete_namespaced_pod, name,
                           self.k8s_namespace, grace_period_seconds=0)
            except _NotFound:
                pass
            # Gone before the next one of the same name is made.
            while time.monotonic() < deadline:
                try:
                    self._call("read pod " + name, self._core.read_namespaced_pod, name,
                               self.k8s_namespace)
                except _NotFound:
                    break
                time.sleep(0.2)
        return outcome

    def __repr__(self):
        return ("KubernetesContainerManager(cluster_name={!r}, namespace={!r}, prefix={!r}, "
                "server={!r})".format(self.cluster_name, self.k8s_namespace, self.prefix,
                                      self.kube_server))


# ---- pods --------------------------------------------------------------------

def _pod_ready(pod):
    return any(c.type == "Ready" and c.status == "True"
               for c in ((pod.status.conditions or []) if pod.status else []))


def _pod_model(pod):
    anns = pod.metadata.annotations or {}
    return anns.get(MODEL_ANNOTATION), anns.get(VERSION_ANNOTATION)


def _pod_state(pod):
    """"Pending (ContainerCreating)", "Running, not ready", ..."""
    st = pod.status
    if st is None:
        return "no status yet"
    words = [st.phase or "?"]
    for c in st.conditions or []:
        if c.type == "PodScheduled" and c.status == "False":
            words.append("({}: {})".format(c.reason, c.message))
    for cs in st.container_statuses or []:
        if cs.state and cs.state.waiting:
            words.append("({})".format(cs.state.waiting.reason))
        elif cs.state and cs.state.running and not cs.ready:
            words.append("(running, not ready)")
    return " ".join(words)


def _tcp_accepts(host, port, timeout_s=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


__all__ = ["KubernetesContainerManager", "DEFAULT_CLIPPER_IMAGE", "DEFAULT_REPLICA_IMAGE",
           "DEFAULT_PYSPARK_IMAGE", "DEFAULT_CLIPPER_SERVICE_TYPES", "validate_service_types"]
