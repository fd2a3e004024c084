"""What the container managers share: the model replicas, which every
manager asks for over the bus (the container-manager actor starts them,
whatever runs it), and the checks of start_clipper's arguments.
"""
import json
import time

from ._admin import admin_call
from ._bus import Bus, BusError, NoResponders
from .exceptions import ClipperException


def ping_admin(bus, timeout_ms):
    """True when an admin actor answers on bus (any reply counts)."""
    for command, body in (("ping", b"{}"), ("get_all_applications", b'{"verbose": false}')):
        try:
            bus.admin(command, body, timeout_ms)
            return True
        except NoResponders:
            continue
        except BusError:
            return False
    return False


def check_start_args(manager, cache_size, num_frontend_replicas, max_frontends=1):
    """Clipper's refusal of frontend scale-out (beyond max_frontends: a
    LocalContainerManager runs two, which share the query port), and a
    valid cache size."""
    if (isinstance(num_frontend_replicas, bool) or not isinstance(num_frontend_replicas, int)
            or num_frontend_replicas < 1):
        raise ClipperException(
            "num_frontend_replicas must be a whole number >= 1, got {!r}".format(
                num_frontend_replicas))
    if max_frontends > 1 and num_frontend_replicas > max_frontends:
        raise ClipperException(
            "{} runs at most {} query frontends on this machine (they share the query "
            "port), got num_frontend_replicas={}".format(manager, max_frontends,
                                                         num_frontend_replicas))
    if num_frontend_replicas > max_frontends:
        raise ClipperException(
            "{}'s query frontend scale-out hasn't been "
            "implemented. Please set num_frontend_replicas=1 or start more frontends "
            "with 'clipper run frontend'.".format(manager))
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
        raise ClipperException(
            "cache_size must be a whole number of bytes (0 turns the prediction cache "
            "off), got {!r}".format(cache_size))


def cluster_exists(cluster_name):
    """Clipper's refusal to start a cluster that runs already."""
    return ClipperException(
        "Cluster {} cannot be started because it already exists. Please use "
        "ClipperConnection.connect() to connect to it.".format(cluster_name))


def _start_failure(name, version, managed):
    """What to say when a cm.status row of name:version has failed its
    last two starts (its start_error), or None."""
    for r in managed or []:
        if (r.get("start_failures") or 0) >= 2 and r.get("start_error"):
            return "The container manager cannot start replicas of model {}:{}: {}".format(
                name, version, r["start_error"])
    return None


class BusModels(object):
    """The model methods of ContainerManager, over the cluster's bus.

    Needs self.bus, self.cluster_name and self.replicas_timeout_s."""

    def _require_bus(self):
        if self.bus is None or self.bus.closed:
            raise ClipperException(
                "{} is not connected to cluster {}; call "
                "ClipperConnection.connect() or start_clipper() first".format(
                    type(self).__name__, self.cluster_name))
        return self.bus

    def _replicas(self, name, version):
        rows = admin_call(self._require_bus(), "get_all_containers", {"verbose": True}) or []
        return [r for r in rows if isinstance(r, dict)
                and r.get("model_name") == name and str(r.get("model_version")) == str(version)]

    def _bus_auth(self):
        """The identity and CA to join the bus with, as Bus arguments
        (creds=, tls_ca=); {} for an open bus. Managers that make
        identities override it."""
        return {}

    def _join_bus(self, found):
        """Joins the cluster's bus at self.get_bus_url() (closing the bus
        held before) and checks that its admin answers. found says what was
        found of the cluster ("The containers of cluster 'x' run"), for the
        error when no admin answers."""
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        try:
            bus = Bus(self.get_bus_url(), prefix=self.prefix, name="clipper_admin",
                      **self._bus_auth())
        except BusError as e:
            raise ClipperException("Cannot connect to the bus of cluster {} at {}: {}".format(
                self.cluster_name, self.get_bus_url(), e))
        if not ping_admin(bus, 5000):
            bus.close()
            raise ClipperException(
                "{}, but no admin answers on {} (prefix '{}'); see "
                "ClipperConnection.get_clipper_logs()".format(found, self.get_bus_url(),
                                                              self.prefix))
        self.bus = bus

    def _wait_gone(self, left_now, what):
        """Polls left_now() (the names of what is still there) until it is
        empty; after self.removal_timeout_s raises naming what is left."""
        deadline = time.monotonic() + self.removal_timeout_s
        while True:
            left = left_now()
            if not left:
                return
            if time.monotonic() > deadline:
                raise ClipperException("{} still exist {:.0f} s after they were asked to stop: "
                                       "{}".format(what, self.removal_timeout_s,
                                                   ", ".join(sorted(left))))
            time.sleep(0.2)

    def _managed(self, name, version):
        """The replicas of name:version that the container manager runs, from
        its <prefix>.cm.status, or None when no manager answers. Replicas
        started by hand elsewhere join and serve but are not counted here."""
        bus = self._require_bus()
        status = "{}.cm.status".format(bus.prefix)
        try:
            # Managers on several hosts each run a share (docs/operation.md,
            # "Placement"): ask how many there are, then each of them.
            others = 0
            try:
                hosts = json.loads(bus.request("{}.cm.hosts".format(bus.prefix), b"{}",
                                               5000).decode("utf-8"))
                if isinstance(hosts, dict) and isinstance(hosts.get("managers"), list):
                    others = len(hosts["managers"])
            except (BusError, ValueError):
                others = 0  # a manager from before placement: it answers alone
            if others == 0:
                replies = [bus.request(status, b"{}", 5000)]
            else:
                replies = bus.gather(status, b"{}", 2000, others + 1)
            rows = []
            for raw in replies:
                part = json.loads(raw.decode("utf-8"))
                if isinstance(part, list):
                    rows.extend(part)
        except (BusError, ValueError):
            return None
        if not replies:
            return None
        return [r for r in rows if isinstance(r, dict) and r.get("model") == name
                and str(r.get("version")) == str(version)]

    def start_failure(self, name, version):
        """Why the container manager cannot start replicas of name:version
        (the engine has no such image, say), once two starts in a row have
        failed, or None. The manager keeps trying, with backoff."""
        return _start_failure(name, version, self._managed(name, version))

    def deploy_model(self, name, version, input_type, image, num_replicas=1):
        """Asks for num_replicas replicas of an already registered model version."""
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name, version):
        return len([r for r in self._replicas(name, version)
                    if r.get("state", "ready") not in ("failed", "stopped")])

    def set_num_replicas(self, name, version, input_type, image, num_replicas):
        admin_call(self._require_bus(), "set_num_replicas", {
            "model_name": name, "model_version": str(version),
            "num_replicas": int(num_replicas)})
        self.wait_for_replicas(name, version, int(num_replicas), self.replicas_timeout_s)

    def wait_for_replicas(self, name, version, wanted, timeout_s):
        """Waits until `wanted` replicas of name:version that the container
        manager runs are ready and no more than `wanted` are live (replicas
        started by hand elsewhere are not counted; without a manager, every
        live replica is). A replica that reports "failed" raises
        ClipperException with its cause at once."""
        deadline = time.monotonic() + timeout_s
        rows = []
        while True:
            rows = self._replicas(name, version)
            for r in rows:
                if r.get("state") == "failed":
                    raise ClipperException(
                        "Replica {} of model {}:{} failed: {}".format(
                            r.get("model_replica_id"), name, version,
                            r.get("cause") or "(no cause given)"))
            live = [r for r in rows if r.get("state", "ready") != "stopped"]
            ready = [r for r in live if r.get("state", "ready") == "ready"]
            managed = self._managed(name, version)
            if managed is not None:
                ids = {r.get("replica_id") for r in managed
                       if r.get("state") in ("running", "stopping")}
                live = [r for r in live if r.get("model_replica_id") in ids]
                ready = [r for r in ready if r.get("model_replica_id") in ids]
                running = len([r for r in managed if r.get("state") in ("running", "stopping")])
                if len(ready) >= wanted and running <= wanted:
                    return ready
            elif len(ready) >= wanted and len(live) <= wanted:
                return ready
            why = _start_failure(name, version, managed)
            if why is not None:
                raise ClipperException(why)
            if time.monotonic() > deadline:
                raise ClipperException(
                    "Model {}:{} did not reach {} ready replica(s) within {:.0f} s; "
                    "replicas now: {}".format(name, version, wanted, timeout_s,
                                              json.dumps(rows)))
            time.sleep(0.2)

    def stop_models(self, models):
        for name, versions in models.items():
            for version in versions:
                admin_call(self._require_bus(), "set_num_replicas", {
                    "model_name": name, "model_version": str(version), "num_replicas": 0})

    def stop_all_model_containers(self):
        models = admin_call(self._require_bus(), "get_all_models", {"verbose": True}) or []
        for m in models:
            admin_call(self._require_bus(), "set_num_replicas", {
                "model_name": m["model_name"], "model_version": str(m["model_version"]),
                "num_replicas": 0})
