"""ClipperConnection: Clipper 0.4's management API over the NATS bus.

Every management call is an admin command on <prefix>.admin.<command> with
the body Clipper's management REST took (docs/protocol.md), sent through
the container manager's bus. Errors carry Clipper's texts.

Deploying differs from Clipper underneath, not in the API: no image is built
or pushed. The model's artifact (the cloudpickled function) is uploaded to
JetStream, `add_model` registers the version with its artifact digest and
wanted replica count, the container manager actor starts the replicas, and
the call waits until one reports "ready" (or raises at once with the cause
when one reports "failed").
"""
import json
import logging
import os
import re
import ssl
import time
import urllib.request

from ._admin import admin_call
from .container_manager import CONTAINERLESS_MODEL_IMAGE
from .exceptions import ClipperException, UnconnectedException
from .version import __registry__, __version__

DEFAULT_LABEL = []
DEFAULT_PREDICTION_CACHE_SIZE_BYTES = 33554432
CLIPPER_TEMP_DIR = "/tmp/clipper"

# How long a deploy waits for a replica of the new version to be ready.
# Overridable per connection (ClipperConnection.replica_ready_timeout_s) or
# by the environment.
DEFAULT_REPLICA_READY_TIMEOUT_S = float(os.environ.get("CLIPPER_DEPLOY_TIMEOUT_S", "60"))

PYTHON_CLOSURE_RUNTIME = "python-closure"

logging.basicConfig(
    format='%(asctime)s %(levelname)-8s [%(filename)s:%(lineno)d] %(message)s',
    datefmt='%y-%m-%d:%H:%M:%S',
    level=logging.INFO)

logger = logging.getLogger(__name__)

deployment_regex = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


# What an admin accepts in pkgs_to_install (actors/admin/models.c).
PKGS_MAX = 64
PKG_SPEC_MAX = 512


def validate_pkgs_to_install(pkgs_to_install):
    """Checks pkgs_to_install and returns it as a list (empty for None).

    It must be a list or tuple of non-empty str, each a pip requirement
    spec ("numpy==1.26.4", "requests>=2", the path or URL of a wheel):
    one argument to `pip install` each, so no entry may look like an
    option (start with '-') or hold a newline or other control character.
    An entry naming an existing local file or directory is made absolute
    (the replicas run pip in another working directory; on other hosts the
    path must exist there too).
    """
    if pkgs_to_install is None:
        return []
    if not isinstance(pkgs_to_install, (list, tuple)):
        raise ClipperException(
            "pkgs_to_install must be a list of pip requirement strings such as "
            "[\"numpy==1.26.4\"], got {}".format(type(pkgs_to_install).__name__))
    if len(pkgs_to_install) > PKGS_MAX:
        raise ClipperException("pkgs_to_install has {} entries; at most {} are allowed".format(
            len(pkgs_to_install), PKGS_MAX))
    out = []
    for i, p in enumerate(pkgs_to_install):
        why = None
        if not isinstance(p, str):
            why = "is a {}, not a str".format(type(p).__name__)
        elif not p.strip():
            why = "is empty"
        elif len(p.encode("utf-8")) > PKG_SPEC_MAX:
            why = "is longer than {} bytes".format(PKG_SPEC_MAX)
        elif p.strip().startswith("-"):
            why = ("starts with '-': options to pip are not allowed, only requirement "
                   "specs such as \"numpy==1.26.4\"")
        elif any(ord(c) < 0x20 or ord(c) == 0x7f for c in p):
            why = "contains a newline or another control character"
        if why:
            raise ClipperException("pkgs_to_install entry {} ({!r}) {}".format(i, p, why))
        p = p.strip()
        # A wheel or project path given relative to here means nothing in
        # the replica's working directory: send it absolute.
        if (os.sep in p or p.endswith((".whl", ".tar.gz", ".zip"))) and os.path.exists(p):
            p = os.path.abspath(p)
        out.append(p)
    return out


def validate_resources(resources):
    """Checks that resources is None or a dict (the admin checks its
    contents: actors/common/resources.c) and returns it."""
    if resources is not None and not isinstance(resources, dict):
        raise ClipperException(
            "resources must be a dict such as {{\"requests\": {{\"cpu\": \"500m\", "
            "\"memory\": \"256Mi\"}}, \"limits\": {{\"memory\": \"1Gi\"}}}}, got "
            "{!r}".format(resources))
    return resources


class ClusterAdapter(logging.LoggerAdapter):
    """Prefixes every log line with the cluster's name, as Clipper did."""

    def process(self, msg, kwargs):
        return "[{cluster}] {msg}".format(cluster=self.extra["cluster"], msg=msg), kwargs


class ClipperConnection(object):
    def __init__(self, container_manager):
        """Creates a new ClipperConnection object, the primary way of
        starting and managing a Clipper cluster.

        Parameters
        ----------
        container_manager : ``clipper_admin.container_manager.ContainerManager``
            Which container manager to use, for example
            ``clipper_admin.LocalContainerManager()``.
        """
        self.connected = False
        self.cm = container_manager
        self.logger = ClusterAdapter(logger, {"cluster": self.cm.cluster_identifier})
        self.replica_ready_timeout_s = DEFAULT_REPLICA_READY_TIMEOUT_S
        self._artifacts = {}  # (name, version) -> (sha256, size) from build_model
        self._pkgs = {}  # (name, version) -> pkgs_to_install from build_model

    # ---- plumbing ----------------------------------------------------------

    def _require_connection(self):
        if not self.connected:
            raise UnconnectedException()

    def _admin(self, command, body):
        self._require_connection()
        bus = getattr(self.cm, "bus", None)
        if bus is None or bus.closed:
            raise UnconnectedException()
        return admin_call(bus, command, body)

    @property
    def bus(self):
        """The clipper_admin._bus.Bus of the cluster (for queries over NATS)."""
        self._require_connection()
        return self.cm.bus

    # ---- lifecycle ---------------------------------------------------------

    def start_clipper(self,
                      query_frontend_image='{}/query_frontend:{}'.format(
                          __registry__, __version__),
                      mgmt_frontend_image='{}/management_frontend:{}'.format(
                          __registry__, __version__),
                      frontend_exporter_image='{}/frontend-exporter:{}'.format(
                          __registry__, __version__),
                      cache_size=DEFAULT_PREDICTION_CACHE_SIZE_BYTES,
                      qf_http_thread_pool_size=1,
                      qf_http_timeout_request=5,
                      qf_http_timeout_content=300,
                      num_frontend_replicas=1):
        """Starts a new Clipper cluster and connects to it.

        The image arguments are accepted for compatibility and unused: the
        actors are native processes. cache_size is the prediction cache's
        size in bytes.

        Raises
        ------
        :py:exc:`clipper.ClipperException`
        """
        try:
            self.cm.start_clipper(query_frontend_image, mgmt_frontend_image,
                                  frontend_exporter_image, cache_size,
                                  qf_http_thread_pool_size, qf_http_timeout_request,
                                  qf_http_timeout_content, num_frontend_replicas)
        except ClipperException as e:
            self.logger.warning("Error starting Clipper: {}".format(e.msg))
            raise e
        # The manager waited for the cluster's ready line; make sure the
        # admin answers through the same bus this connection will use.
        deadline = time.monotonic() + 30
        while True:
            try:
                admin_call(self.cm.bus, "get_all_applications", {"verbose": False},
                           timeout_ms=5000, log_errors=False)
                break
            except ClipperException as e:
                if time.monotonic() > deadline:
                    raise ClipperException(
                        "Clipper started but its admin does not answer: {}".format(e.msg))
                self.logger.info("Clipper still initializing.")
                time.sleep(0.5)
        self.logger.info("Clipper is running")
        self.connected = True

    def connect(self):
        """Connects to a running Clipper cluster."""
        self.cm.connect()
        self.connected = True
        self.logger.info("Successfully connected to Clipper cluster at {}".format(
            self.cm.get_query_addr()))

    def stop_all(self, graceful=True):
        """Stops every process of the cluster, model replicas included.

        Parameters
        ----------
        graceful : bool
            When False, processes are killed (SIGKILL) instead of being
            asked to stop.
        """
        self.cm.stop_all(graceful=graceful)
        self.connected = False
        self.logger.info("Stopped all Clipper cluster and all model containers")

    # ---- applications ------------------------------------------------------

    def register_application(self, name, input_type, default_output, slo_micros):
        """Registers a new application with Clipper.

        Parameters
        ----------
        name : str
            The name of the application.
        input_type : str
            One of "integers", "floats", "doubles", "bytes", or "strings".
        default_output : str
            Returned when no prediction is available in time.
        slo_micros : int
            The query latency objective in microseconds.

        Raises
        ------
        :py:exc:`clipper.UnconnectedException`
        :py:exc:`clipper.ClipperException`
        """
        self._admin("add_app", {
            "name": name,
            "input_type": input_type,
            "default_output": default_output,
            "latency_slo_micros": slo_micros,
        })
        self.logger.info("Application {app} was successfully registered".format(app=name))

    def delete_application(self, name):
        self.logger.warning(
            "[DEPRECATED] Use 'unregister_application' API instead of this.")
        self.unregister_application(name)

    def unregister_application(self, name):
        self._admin("delete_app", {"name": name})
        self.logger.info("Application {app} was successfully unregistered".format(app=name))

    def link_model_to_app(self, app_name, model_name):
        """Routes requests from the application to the model (at its
        current version)."""
        self._admin("add_model_links", {"app_name": app_name, "model_names": [model_name]})
        self.logger.info("Model {model} is now linked to application {app}".format(
            model=model_name, app=app_name))

    def unlink_model_from_app(self, app_name, model_name):
        self._admin("delete_model_links", {"app_name": app_name, "model_names": [model_name]})
        self.logger.info("Model {model} is now removed to application {app}".format(
            model=model_name, app=app_name))

    def get_all_apps(self, verbose=False):
        return self._admin("get_all_applications", {"verbose": verbose})

    def get_app_info(self, name):
        info = self._admin("get_application", {"name": name})
        if not info:
            self.logger.warning("Application {} is not registered with Clipper".format(name))
            return None
        return info

    def get_linked_models(self, app_name):
        return self._admin("get_linked_models", {"app_name": app_name})

    # ---- models ------------------------------------------------------------

    @staticmethod
    def _validate_versioned_model_name(name, version):
        for what, value in (("name", name), ("version", version)):
            if deployment_regex.match(value) is None:
                raise ClipperException(
                    "Invalid value: {value}: a model {what} must be a valid DNS-1123 "
                    "subdomain. It must consist of lower case alphanumeric characters, "
                    "'-' or '.', and must start and end with an alphanumeric character "
                    "(e.g. 'example.com', regex used for validation is '{reg}'".format(
                        value=value, what=what, reg=deployment_regex.pattern))

    def build_and_deploy_model(self, name, version, input_type, model_data_path,
                               base_image, labels=None, container_registry=None,
                               num_replicas=1, batch_size=-1, pkgs_to_install=None,
                               resources=None):
        """Uploads the model in model_data_path and deploys it (resources:
        see deploy_model)."""
        self._require_connection()
        validate_resources(resources)
        image = self.build_model(name, version, model_data_path, base_image,
                                 container_registry, pkgs_to_install)
        self.deploy_model(name, version, input_type, image, labels, num_replicas, batch_size,
                          resources=resources)

    def build_model(self, name, version, model_data_path, base_image,
                    container_registry=None, pkgs_to_install=None):
        """Uploads a model's artifact to the cluster's bus.

        No image is built: model_data_path is a directory holding the
        cloudpickled function ``func.pkl`` (what Clipper's deployers wrote)
        or the path of such a file. Its bytes travel over JetStream and the
        replicas load them. Returns the runtime image name to pass to
        deploy_model (base_image). container_registry is unused.
        """
        version = str(version)
        self._validate_versioned_model_name(name, version)
        self._require_connection()
        path = model_data_path
        if os.path.isdir(path):
            path = os.path.join(path, "func.pkl")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ClipperException(
                "Cannot read the model artifact {}: {} (model_data_path must be a "
                "directory holding func.pkl, or such a file)".format(path, e))
        pkgs = validate_pkgs_to_install(pkgs_to_install)
        self._upload_artifact(name, version, data)
        if pkgs:
            # deploy_model registers the version with them.
            self._pkgs[(name, version)] = pkgs
        return base_image

    def _upload_artifact(self, name, version, data):
        """Stores data as the artifact of name:version. A stored artifact
        is immutable (the stream refuses a second message on its subjects),
        so a registered version is refused at once with Clipper's text, and
        other bytes for an unregistered version that has an artifact
        already are refused saying so; the same bytes again are fine."""
        self._require_connection()
        existing = self._admin("get_model", {"model_name": name, "model_version": version})
        if existing:
            msg = ("Received error status code: 400 and message: model with name '{}' and "
                   "version '{}' already exists".format(name, version))
            self.logger.error(msg)
            raise ClipperException(msg)
        from ._bus import BusError
        try:
            sha = self.cm.bus.put_artifact(name, version, data)
        except BusError as e:
            if getattr(e, "status", None) == "ERR_EXISTS":
                msg = ("Cannot upload the artifact of model {}:{}: {}".format(name, version, e))
                self.logger.error(msg)
                raise ClipperException(msg)
            raise ClipperException("Cannot upload the artifact of model {}:{} ({} bytes): "
                                   "{}".format(name, version, len(data), e))
        self._artifacts[(name, version)] = (sha, len(data))
        self.logger.info("Uploaded the artifact of model {}:{} ({} bytes, sha256 {})".format(
            name, version, len(data), sha))
        return sha

    def _discard_unregistered_artifact(self, name, version):
        """After registering name:version failed, removes the artifact
        uploaded for it, so a corrected deploy of that version can upload
        other bytes: a stored artifact is never replaced, only removed (the
        admin's delete_versioned_model does it for registered versions).
        Left alone when the version got registered meanwhile. Best effort:
        a failure is logged, and the deploy's own error is what is raised."""
        from ._bus import BusError
        try:
            if self._admin("get_model", {"model_name": name, "model_version": version}):
                return
            bus = self.cm.bus
            # The artifact stream's name as bus/artifact.c makes it.
            stream = "".join(c.upper() if "a" <= c <= "z" else
                             c if ("A" <= c <= "Z" or "0" <= c <= "9" or c in "_-") else "_"
                             for c in bus.prefix[:120]) + "_ARTIFACTS"
            body = json.dumps({"filter": "{}.artifact.{}.{}.>".format(bus.prefix, name,
                                                                     version)})
            reply = json.loads(bus.request("$JS.API.STREAM.PURGE." + stream,
                                           body.encode("utf-8"), 5000).decode("utf-8"))
            if reply.get("success") is not True:
                raise ValueError(reply.get("error"))
        except (BusError, ClipperException, ValueError) as e:
            self.logger.warning("The artifact uploaded for model {}:{} was not removed after its "
                                "registration failed: {}".format(name, version, e))

    def deploy_model(self, name, version, input_type, image, labels=None, num_replicas=1,
                     batch_size=-1, resources=None):
        """Registers a model version and waits for its replicas.

        When build_model uploaded an artifact for this version, the
        replicas run it with the Python closure runtime.

        resources, optional, is what each replica asks for and may use, as
        Kubernetes writes it: {"requests": {"cpu": "500m", "memory":
        "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}} (either part may
        be left out). KubernetesContainerManager puts it on the replica
        containers, DockerContainerManager turns limits.cpu and
        limits.memory into container limits, LocalContainerManager does not
        use it. The admin refuses a malformed one, naming the bad part.
        """
        version = str(version)
        self._validate_versioned_model_name(name, version)
        self._require_connection()
        validate_resources(resources)
        artifact = self._artifacts.get((name, version))
        runtime = PYTHON_CLOSURE_RUNTIME if artifact is not None else None
        previous = self._current_version_or_none(name)
        try:
            self._add_model(name, version, input_type, image, labels, batch_size,
                            num_replicas, runtime, artifact,
                            pkgs_to_install=self._pkgs.get((name, version)),
                            resources=resources)
        except ClipperException:
            if artifact is not None:
                self._artifacts.pop((name, version), None)
                self._discard_unregistered_artifact(name, version)
            raise
        self._artifacts.pop((name, version), None)
        self._pkgs.pop((name, version), None)
        if num_replicas > 0:
            self._wait_or_undo(name, version, previous, None)

    def _add_model(self, name, version, input_type, container_name, labels, batch_size,
                   num_replicas, runtime=None, artifact=None, pkgs_to_install=None,
                   python_version=None, cloudpickle_version=None, resources=None):
        body = {
            "model_name": name,
            "model_version": version,
            "labels": labels if labels is not None else DEFAULT_LABEL,
            "input_type": input_type,
            "container_name": container_name,
            "model_data_path": "DEPRECATED",
            "batch_size": batch_size,
            "num_replicas": num_replicas,
        }
        if runtime is not None:
            body["runtime"] = runtime
        if artifact is not None:
            body["artifact_sha256"], body["artifact_size"] = artifact
        if pkgs_to_install:
            body["pkgs_to_install"] = list(pkgs_to_install)
        if python_version:
            body["python_version"] = python_version
        if cloudpickle_version:
            body["cloudpickle_version"] = cloudpickle_version
        if resources is not None:
            body["resources"] = validate_resources(resources)
        self._admin("add_model", body)
        self.logger.info("Successfully registered model {name}:{version}".format(
            name=name, version=version))

    def deploy_artifact(self, name, version, input_type, data, container_name,
                        runtime=PYTHON_CLOSURE_RUNTIME, labels=None, num_replicas=1,
                        batch_size=-1, ready_timeout_s=None, pkgs_to_install=None,
                        python_version=None, cloudpickle_version=None, resources=None):
        """Uploads data as the artifact of name:version, registers the
        version for runtime and waits until a replica is ready. What the
        deployers call. pkgs_to_install is installed by each replica before
        it loads the artifact; python_version ("3.11.7") and
        cloudpickle_version ("2.1.0") say what pickled it, and a replica
        running other versions refuses it naming both. resources: see
        deploy_model."""
        version = str(version)
        self._validate_versioned_model_name(name, version)
        self._require_connection()
        pkgs = validate_pkgs_to_install(pkgs_to_install)
        validate_resources(resources)
        sha = self._upload_artifact(name, version, data)
        self._artifacts.pop((name, version), None)
        try:
            previous = self._current_version_or_none(name)
            self._add_model(name, version, input_type, container_name, labels, batch_size,
                            num_replicas, runtime, (sha, len(data)), pkgs_to_install=pkgs,
                            python_version=python_version,
                            cloudpickle_version=cloudpickle_version, resources=resources)
        except ClipperException:
            self._discard_unregistered_artifact(name, version)
            raise
        if num_replicas > 0:
            self._wait_or_undo(name, version, previous, ready_timeout_s)

    def _current_version_or_none(self, name):
        for m in self.get_all_models(verbose=True) or []:
            if m.get("model_name") == name and m.get("is_current_version"):
                return m["model_version"]
        return None

    def _wait_or_undo(self, name, version, previous, timeout_s):
        """Waits for a replica of the version just registered; when none
        becomes ready, undoes the registration so the cluster is as before
        the deploy: the version's replicas stop, the version is removed and
        the previous current version (if any) is current again.

        Clipper started the containers before registering, so a deploy
        that never became ready (its container crash-looping) changed
        nothing that queries see; registering first must not make a failed
        version current and take a serving app to its default output.
        """
        try:
            self.wait_for_model_ready(name, version, timeout_s)
            return
        except ClipperException as e:
            failure = e
        undone = []
        steps = [("its replicas stopped", "set_num_replicas",
                  {"model_name": name, "model_version": version, "num_replicas": 0}),
                 ("version {} removed".format(version), "delete_versioned_model",
                  {"model_name": name, "model_version": version})]
        if previous is not None and previous != version:
            steps.append(("version {} is current again".format(previous), "set_model_version",
                          {"model_name": name, "model_version": previous}))
        for what, command, body in steps:
            try:
                self._admin(command, body)
                undone.append(what)
            except ClipperException as e:
                self.logger.error("Undoing the failed deploy of {}:{}: {} failed: {}".format(
                    name, version, command, e.msg))
        cause = failure.msg.rstrip()
        if not cause.endswith((".", "!", "?")):
            cause += "."
        msg = "{} The deploy was undone: {}.".format(
            cause, ", ".join(undone) if undone else "nothing could be undone")
        self.logger.error(msg)
        raise ClipperException(msg)

    def _wait_router_ready(self, name, version, deadline):
        """Until a router counts a ready replica of name:version. Routers
        learn of replicas from their heartbeats, as the admin does, but a
        moment later or sooner: a query sent as soon as the admin said
        "ready" could otherwise be answered "no ready replica". Every router
        hears the same heartbeats, so the first to answer stands for all.
        Bounded (at most 5 s); a cluster whose routers do not answer is not
        held up. (One request at a time on the connection's own reply
        subscription, not a gather: a gather makes and drops a subscription
        each time.)"""
        from ._bus import BusTimeout
        bus = getattr(self.cm, "bus", None)
        prefix = getattr(self.cm, "prefix", None)
        if bus is None or prefix is None:
            return
        subject = "{}.route.stats".format(prefix)
        until = min(deadline, time.monotonic() + 5.0)
        while time.monotonic() < until:
            try:
                raw = bus.request(subject, b"", 250)
            except BusTimeout:
                continue
            except Exception:  # noqa: BLE001 - no router, or no bus: only a wait
                return
            try:
                snap = json.loads(raw.decode("utf-8"))
            except ValueError:
                return
            # replicas_live: those it would send work to now.
            for v in snap.get("versions") or []:
                if (v.get("model") == name and str(v.get("version")) == version and
                        (v.get("replicas_live") or 0) > 0):
                    return
            time.sleep(0.01)

    def wait_for_model_ready(self, name, version, timeout_s=None):
        """Waits until a replica of name:version reports "ready".

        A replica that reports "failed" raises ClipperException with its
        cause at once (an import error in the function, or pip's error for
        pkgs_to_install, for example). Time a replica spends installing
        pkgs_to_install is not counted against timeout_s.
        """
        timeout_s = self.replica_ready_timeout_s if timeout_s is None else timeout_s
        version = str(version)
        deadline = time.monotonic() + timeout_s
        seen = []
        announced = False
        start_failure = getattr(self.cm, "start_failure", None)
        next_manager_check = time.monotonic() + 0.5
        while True:
            rows = self._admin("get_all_containers", {"verbose": True}) or []
            seen = [r for r in rows if isinstance(r, dict) and r.get("model_name") == name
                    and str(r.get("model_version")) == version]
            for r in seen:
                if r.get("state") == "failed":
                    msg = ("Replica {} of model {}:{} failed: {}".format(
                        r.get("model_replica_id"), name, version,
                        r.get("cause") or "(no cause given)"))
                    self.logger.error(msg)
                    raise ClipperException(msg)
            if any(r.get("state", "ready") == "ready" for r in seen):
                self._wait_router_ready(name, version, deadline)
                self.logger.info("Model {}:{} is ready".format(name, version))
                return
            if start_failure is not None and time.monotonic() >= next_manager_check:
                next_manager_check = time.monotonic() + 0.5
                msg = start_failure(name, version)
                if msg is not None:
                    self.logger.error(msg)
                    raise ClipperException(msg)
            installing = [r for r in seen if r.get("state") == "starting" and
                          str(r.get("cause") or "").startswith("installing packages")]
            if installing:
                # pip's time does not count: the replica bounds it itself
                # (CLIPPER_PIP_TIMEOUT_S) and then reports "failed".
                if not announced:
                    self.logger.info("Model {}:{}: {}".format(name, version,
                                                             installing[0]["cause"]))
                    announced = True
                deadline = max(deadline, time.monotonic() + 1.0)
            if time.monotonic() > deadline:
                msg = ("No replica of model {}:{} became ready within {:.0f} s; replicas "
                       "seen: {}. The replica logs are in get_clipper_logs().".format(
                           name, version, timeout_s, json.dumps(seen) if seen else "none"))
                self.logger.error(msg)
                raise ClipperException(msg)
            time.sleep(0.1)

    def register_model(self, name, version, input_type, image=None, labels=None,
                       batch_size=-1, resources=None):
        """Registers a model version without starting any replica
        (resources: see deploy_model; they apply to replicas started later
        with set_num_replicas)."""
        version = str(version)
        self._add_model(name, version, input_type,
                        image if image is not None else CONTAINERLESS_MODEL_IMAGE,
                        labels, batch_size, 0, resources=resources)

    def get_current_model_version(self, name):
        self._require_connection()
        version = self._current_version_or_none(name)
        if version is None:
            raise ClipperException(
                "No versions of model {} registered with Clipper".format(name))
        return version

    def get_num_replicas(self, name, version=None):
        self._require_connection()
        if version is None:
            version = self.get_current_model_version(name)
        else:
            version = str(version)
        return self.cm.get_num_replicas(name, version)

    def set_num_replicas(self, name, num_replicas, version=None):
        """Sets the number of replicas of a model version (default: the
        current one) and waits until that many are ready."""
        self._require_connection()
        if version is None:
            version = self.get_current_model_version(name)
        else:
            version = str(version)
        model_data = self.get_model_info(name, version)
        if model_data is None:
            raise ClipperException(
                "Cannot add container for non-registered model {name}:{version}".format(
                    name=name, version=version))
        image = model_data.get("container_name")
        if image == CONTAINERLESS_MODEL_IMAGE:
            raise ClipperException(
                "Cannot resize the replica set for containerless model {name}:{version}".format(
                    name=name, version=version))
        self.cm.set_num_replicas(name, version, model_data.get("input_type"), image,
                                 num_replicas)

    def get_all_models(self, verbose=False):
        return self._admin("get_all_models", {"verbose": verbose})

    def get_model_info(self, name, version):
        info = self._admin("get_model", {"model_name": name, "model_version": str(version)})
        if not info:
            self.logger.warning("Model {}:{} is not registered with Clipper.".format(
                name, version))
            return None
        return info

    def get_all_model_replicas(self, verbose=False):
        return self._admin("get_all_containers", {"verbose": verbose})

    def get_model_replica_info(self, name, version, replica_id):
        info = self._admin("get_container", {"model_name": name,
                                             "model_version": str(version),
                                             "replica_id": replica_id})
        if not info:
            self.logger.warning("No model replica {}:{}:{} is registered".format(
                name, version, replica_id))
            return None
        return info

    def set_model_version(self, name, version, num_replicas=None):
        """Makes version the current version of the model (rollback or
        roll-forward); optionally sets its replica count."""
        self._require_connection()
        version = str(version)
        self._admin("set_model_version", {"model_name": name, "model_version": version})
        if num_replicas is not None:
            self.set_num_replicas(name, num_replicas, version)

    # ---- stopping models ---------------------------------------------------

    def _unregister_versioned_models(self, model_versions_dict):
        for name, versions in model_versions_dict.items():
            for version in versions:
                self._admin("delete_versioned_model",
                            {"model_name": name, "model_version": str(version)})
                self.logger.info("Model {}:{} was successfully deleted".format(name, version))

    def _model_versions(self, wanted):
        """{name: [version, ...]} of the registered versions m with wanted(m)."""
        model_dict = {}
        for m in self.get_all_models(verbose=True) or []:
            if wanted(m):
                model_dict.setdefault(m["model_name"], []).append(m["model_version"])
        return model_dict

    def _stop_versions(self, model_versions_dict):
        self.cm.stop_models(model_versions_dict)
        self._unregister_versioned_models(model_versions_dict)
        self.logger.info("Stopped all containers for these models and versions:\n{}".format(
            model_versions_dict))

    def stop_models(self, model_names):
        """Stops every replica of every version of the models and
        unregisters those versions."""
        self._require_connection()
        self._stop_versions(self._model_versions(lambda m: m["model_name"] in model_names))

    def stop_versioned_models(self, model_versions_dict):
        self._require_connection()
        self._stop_versions(model_versions_dict)

    def stop_inactive_model_versions(self, model_names):
        self._require_connection()
        self._stop_versions(self._model_versions(
            lambda m: m["model_name"] in model_names and not m.get("is_current_version")))

    def stop_all_model_containers(self):
        """Stops every model replica and unregisters every model version."""
        self._require_connection()
        model_dict = self._model_versions(lambda m: True)
        self.cm.stop_all_model_containers()
        self._unregister_versioned_models(model_dict)
        self.logger.info("Stopped all Clipper model containers")

    # ---- inspection --------------------------------------------------------

    def get_clipper_logs(self, logging_dir="clipper_logs/"):
        """Copies the cluster's logs into logging_dir; returns their paths."""
        return self.cm.get_logs(logging_dir)

    def inspect_instance(self):
        """The query frontend's metrics (GET /metrics), as a dict."""
        self._require_connection()
        # A query port served over HTTPS (http_tls_cert=...) is read over
        # HTTPS, trusting exactly that certificate: pinned, so neither a CA
        # nor the name it was issued for matters. Through a kubectl proxy
        # (KubernetesContainerManager(kubernetes_proxy_addr=...)) it is plain
        # HTTP to the proxy, and the query token stays here: the API server
        # would take it for a credential of its own.
        cert = getattr(self.cm, "http_tls_cert", None)
        token_file = getattr(self.cm, "query_token_file", None)
        through_proxy = getattr(self.cm, "http_through_proxy", None)
        if callable(through_proxy) and through_proxy("query"):
            cert = token_file = None
        ctx = None
        if cert is not None:
            ctx = ssl.create_default_context(cafile=cert)
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            ctx.check_hostname = False
        url = "{scheme}://{host}/metrics".format(scheme="https" if ctx else "http",
                                                 host=self.cm.get_query_addr())
        req = urllib.request.Request(url)
        try:
            if token_file is not None:  # the query port's token, when it has one
                with open(token_file) as f:
                    req.add_header("Authorization", "Bearer " + f.readline().strip())
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                return json.loads(r.read().decode("utf-8") or "{}")
        except (OSError, ValueError) as e:
            raise ClipperException("Cannot read metrics from {}: {}".format(url, e))

    def get_query_addr(self):
        """The query frontend's HTTP address, "host:port" without scheme."""
        self._require_connection()
        return self.cm.get_query_addr()

    def get_metric_addr(self):
        self._require_connection()
        return self.cm.get_metric_addr()

    def get_admin_addr(self):
        self._require_connection()
        return self.cm.get_admin_addr()

    def test_predict_function(self, query, func, input_type):
        """Runs func on query offline, as a replica would, and returns its
        output; a type mismatch returns the string "Invalid input type"."""
        import numpy as np
        import cloudpickle

        if not self.connected:
            self.connect()
        query_data = list(x for x in list(query.values()))
        query_key = list(query.keys())
        if query_key[0] == "input_batch":
            query_data = query_data[0]
        try:
            flattened_data = [item for sublist in query_data for item in sublist]
        except TypeError:
            return "Invalid input type"
        checks = {
            "integers": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "floats": lambda v: isinstance(v, float),
            "doubles": lambda v: isinstance(v, float),
            "bytes": lambda v: isinstance(v, int),
            "strings": lambda v: isinstance(v, str),
        }
        check = checks.get(input_type)
        if check is None or not all(check(v) for v in flattened_data):
            return "Invalid input type"
        dtypes = {"integers": np.int32, "floats": np.float32, "doubles": np.float64,
                  "bytes": np.int8}
        if input_type == "strings":
            numpy_data = query_data
        else:
            numpy_data = list(np.array(x, dtype=dtypes[input_type]) for x in query_data)
        reloaded = cloudpickle.loads(cloudpickle.dumps(func))
        return reloaded(numpy_data)
