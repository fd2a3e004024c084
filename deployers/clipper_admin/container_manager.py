"""Clipper's container-manager interface and constants.

A container manager starts, finds and stops a cluster's processes. Clipper's
managers drove Docker or Kubernetes; here every actor is on a NATS bus, so a
manager also hands ClipperConnection its connection to that bus (``bus``),
over which every admin command travels.
"""
import abc
import os
import re

from .exceptions import ClipperException

# Clipper's ports and labels, kept for scripts that import them.
CLIPPER_INTERNAL_QUERY_PORT = 1337
CLIPPER_INTERNAL_MANAGEMENT_PORT = 1338
CLIPPER_INTERNAL_RPC_PORT = 7000
CLIPPER_INTERNAL_METRIC_PORT = 1390
CLIPPER_INTERNAL_REDIS_PORT = 6379
CLIPPER_INTERNAL_FLUENTD_PORT = 24224

CLIPPER_DOCKER_LABEL = "ai.clipper.container.label"
CLIPPER_NAME_LABEL = "ai.clipper.name"
CLIPPER_MODEL_CONTAINER_LABEL = "ai.clipper.model_container.label"
CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL = "ai.clipper.query_frontend.label"
CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL = "ai.clipper.management_frontend.label"
CLIPPER_QUERY_FRONTEND_ID_LABEL = "ai.clipper.query_frontend.id"
CONTAINERLESS_MODEL_IMAGE = "NO_CONTAINER"

CLIPPER_DOCKER_PORT_LABELS = {
    'redis': 'ai.clipper.redis.port',
    'query_rest': 'ai.clipper.query_frontend.query.port',
    'query_rpc': 'ai.clipper.query_frontend.rpc.port',
    'management': 'ai.clipper.management.port',
    'metric': 'ai.clipper.metric.port',
    'fluentd': 'ai.clipper.fluentd.port',
}
CLIPPER_METRIC_CONFIG_LABEL = 'ai.clipper.metric.config'
CLIPPER_FLUENTD_CONFIG_LABEL = 'ai.clipper.fluentd.config'

# The delimiter of the model-container label "<name>_<version>": DNS names
# cannot contain '_', so it splits without ambiguity.
_MODEL_CONTAINER_LABEL_DELIMITER = "_"


# An image reference: [registry[:port]/]path[:tag][@digest], no spaces and
# no "=" (the manager actor reads "RUNTIME=IMAGE").
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")

# The images a container manager runs: argument -> environment variable.
IMAGE_ARGS = (("clipper_image", "CLIPPER_IMAGE"), ("replica_image", "CLIPPER_REPLICA_IMAGE"),
              ("pyspark_image", "CLIPPER_PYSPARK_IMAGE"))


def nats_server_command(args):
    """nats-server with args, from a configuration that sets max_payload
    (clipper_admin._bus.MAX_PAYLOAD; nats-server has no command-line flag
    for it): for the containers that start nats-server without a
    configuration file of ours. The file is written in the container's /tmp
    by its shell, and args (passed as "$@", unquoted by nobody) override
    nothing in it."""
    from ._bus import MAX_PAYLOAD
    return ["sh", "-c", 'printf "max_payload: {}\\n" > /tmp/clipper-nats.conf && '
            'exec nats-server -c /tmp/clipper-nats.conf "$@"'.format(int(MAX_PAYLOAD)),
            "nats-server"] + list(args)


def resolve_images(manager, given, defaults):
    """Sets manager.clipper_image, .replica_image and .pyspark_image: each
    the argument given, else its environment variable, else its default
    (defaults: argument -> image); a value that is not an image reference
    raises ClipperException naming the argument."""
    for arg, env in IMAGE_ARGS:
        image = given.get(arg) or os.environ.get(env) or defaults[arg]
        if not isinstance(image, str) or not _IMAGE_RE.match(image):
            raise ClipperException("{} must name an image (such as {}), got {!r}".format(
                arg, defaults[arg], image))
        setattr(manager, arg, image)


def create_model_container_label(name, version):
    return "{name}{delim}{version}".format(
        name=name, delim=_MODEL_CONTAINER_LABEL_DELIMITER, version=version)


def parse_model_container_label(label):
    splits = label.split(_MODEL_CONTAINER_LABEL_DELIMITER)
    if len(splits) != 2:
        raise ValueError(
            "Unable to parse model container label {}".format(label))
    return splits


class ContainerManager(abc.ABC):
    """Starts and stops a cluster and its model replicas.

    Besides Clipper's abstract methods, a manager that is connected exposes
    ``bus`` (a clipper_admin._bus.Bus on the cluster's prefix) and
    ``cluster_identifier``.
    """

    bus = None
    cluster_identifier = None

    @abc.abstractmethod
    def start_clipper(self, query_frontend_image, mgmt_frontend_image,
                      frontend_exporter_image, cache_size,
                      qf_http_thread_pool_size, qf_http_timeout_request,
                      qf_http_timeout_content, num_frontend_replicas):
        # Must leave the manager connected.
        pass

    @abc.abstractmethod
    def connect(self):
        pass

    @abc.abstractmethod
    def deploy_model(self, name, version, input_type, image):
        pass

    @abc.abstractmethod
    def get_num_replicas(self, name, version):
        pass

    @abc.abstractmethod
    def set_num_replicas(self, name, version, input_type, image, num_replicas):
        pass

    @abc.abstractmethod
    def get_logs(self, logging_dir):
        """Copies the cluster's logs into logging_dir; returns their paths."""
        pass

    @abc.abstractmethod
    def stop_models(self, models):
        """Stops the replicas of the given models.

        models is a dict mapping a model name to a list of versions.
        """
        pass

    @abc.abstractmethod
    def stop_all_model_containers(self):
        pass

    @abc.abstractmethod
    def stop_all(self, graceful=True):
        """Stops every process of the cluster this manager started."""
        pass

    def _use_given_http_files(self):
        """The HTTP doors' certificate, key and metrics and query token files
        are those given to the constructor (self._http_given), not those
        connect() learnt from a running cluster; returns what was given,
        for the management token, which each manager keeps its own way."""
        given = self._http_given
        self.http_tls_cert = given.get("http_tls_cert")
        self.http_tls_key = given.get("http_tls_key")
        self.metrics_token_file = given.get("metrics_token_file")
        self.query_token_file = given.get("query_token_file")
        return given

    @abc.abstractmethod
    def get_admin_addr(self):
        pass

    @abc.abstractmethod
    def get_query_addr(self):
        pass

    @abc.abstractmethod
    def get_metric_addr(self):
        pass
