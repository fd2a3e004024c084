"""KubernetesContainerManager end to end against a real Kubernetes cluster
(the one KUBECONFIG names: for this project `export "$(bash images/kube/kube.sh
start)"`) and the project's images in its nodes' container runtime (`bash
images/build.sh && bash images/kube/kube.sh images`).

Nothing is mocked: clusters are real Deployments, a StatefulSet and Services,
replicas are the Deployments the manager actor makes through the API server,
queries travel over the query Service's NodePort (HTTP) and the NATS
Service's NodePort (the bus). Each test works in a namespace of its own, or
(where isolation is not what is tested) on one cluster shared by the module
in a namespace of its own; every namespace made here is deleted at the end.

Without KUBECONFIG, or when its API server does not answer, these tests fail
(they never skip), saying how to start the cluster.

With pytest -s they print the figures: start_clipper() to ready, a deploy to
its first non-default prediction, a killed replica pod to serving again,
query p50 and throughput through the cluster's Services.
"""
import concurrent.futures
import http.client
import json
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from clipper_admin import ClipperConnection, ClipperException, KubernetesContainerManager
from clipper_admin.container_manager import (CLIPPER_DOCKER_LABEL,
                                             CLIPPER_MODEL_CONTAINER_LABEL, CLIPPER_NAME_LABEL)
from clipper_admin.deployers import python as python_deployer

from conftest import Cluster, dump_logs, stop_test_models, wait_until
from test_docker_cluster import (assert_401, https, make_ca_and_leaf, plain_http_fails,
                                 port_of, token_file)
from test_pyspark import spark  # noqa: F401 - a fixture

RUN = uuid.uuid4().hex[:6]          # this test run
RUN_LABEL = "ai.clipper.pytest.run"   # on the namespaces made here
START_HINT = "run `export \"$(bash images/kube/kube.sh start)\"` (and `bash images/kube/kube.sh " \
             "images` after `bash images/build.sh`)"


# ---- the Kubernetes cluster ---------------------------------------------------

class Kube(object):
    """The API of the cluster in KUBECONFIG, and the namespaces made here."""

    def __init__(self, api):
        from kubernetes import client
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.made = []

    def namespace(self, tag):
        name = "pytest-k8s-{}-{}".format(tag, RUN)
        self.core.create_namespace({"metadata": {"name": name, "labels": {RUN_LABEL: RUN}}})
        self.made.append(name)
        return name

    def delete_namespaces(self):
        for ns in self.made:
            try:
                self.core.delete_namespace(ns, grace_period_seconds=0)
            except Exception as e:  # noqa: BLE001 - housekeeping
                print("cannot delete namespace {}: {}".format(ns, e))

    def labelled(self, ns, cluster_name, *more):
        """"Kind/name" of everything with the cluster label in ns."""
        sel = ",".join(["{}={}".format(CLIPPER_DOCKER_LABEL, cluster_name)] + list(more))
        kinds = (("Deployment", self.apps.list_namespaced_deployment),
                 ("StatefulSet", self.apps.list_namespaced_stateful_set),
                 ("ReplicaSet", self.apps.list_namespaced_replica_set),
                 ("ControllerRevision", self.apps.list_namespaced_controller_revision),
                 ("Pod", self.core.list_namespaced_pod),
                 ("Service", self.core.list_namespaced_service),
                 ("EndpointSlice", self.discovery.list_namespaced_endpoint_slice),
                 ("PersistentVolumeClaim", self.core.list_namespaced_persistent_volume_claim),
                 ("ConfigMap", self.core.list_namespaced_config_map),
                 ("Secret", self.core.list_namespaced_secret),
                 ("ServiceAccount", self.core.list_namespaced_service_account),
                 ("Role", self.rbac.list_namespaced_role),
                 ("RoleBinding", self.rbac.list_namespaced_role_binding))
        out = []
        for kind, fn in kinds:
            out += ["{}/{}".format(kind, o.metadata.name)
                    for o in fn(ns, label_selector=sel).items]
        # Nothing cluster-wide either.
        out += ["ClusterRole/" + o.metadata.name
                for o in self.rbac.list_cluster_role(label_selector=sel).items]
        out += ["ClusterRoleBinding/" + o.metadata.name
                for o in self.rbac.list_cluster_role_binding(label_selector=sel).items]
        return sorted(out)

    def replica_pods(self, cm, app, version=1, ready=None):
        sel = "{}={},{}={}_{}".format(CLIPPER_DOCKER_LABEL, cm.cluster_name,
                                      CLIPPER_MODEL_CONTAINER_LABEL, app, version)
        pods = self.core.list_namespaced_pod(cm.k8s_namespace, label_selector=sel).items
        pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        if ready is not None:
            pods = [p for p in pods if pod_ready(p) == ready]
        return pods


def pod_ready(p):
    return any(c.type == "Ready" and c.status == "True"
               for c in ((p.status.conditions or []) if p.status else []))


@pytest.fixture(scope="module")
def kube():
    path = os.environ.get("KUBECONFIG")
    if not path:
        pytest.fail("KUBECONFIG is not set: these tests need a real Kubernetes cluster; "
                    + START_HINT, pytrace=False)
    if not os.path.isfile(path):
        pytest.fail("KUBECONFIG={} does not exist; {}".format(path, START_HINT), pytrace=False)
    from kubernetes import client, config
    api = config.new_client_from_config(config_file=path, persist_config=False)
    try:
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as e:  # noqa: BLE001
        pytest.fail("the Kubernetes API server of KUBECONFIG={} does not answer ({}); {}"
                    .format(path, str(e)[:300], START_HINT), pytrace=False)
    k = Kube(api)
    try:
        yield k
    finally:
        k.delete_namespaces()


def node_ip(kube):
    """The first node's InternalIP (where NodePorts answer from this host)."""
    for n in kube.core.list_node().items:
        for a in n.status.addresses:
            if a.type == "InternalIP":
                return a.address
    raise AssertionError("no node has an InternalIP")


def node_is_this_machine(kube):
    """True when the node's InternalIP is an address of this machine (then
    its hostPath directories are ours to look at)."""
    import socket
    with socket.socket() as s:
        try:
            s.bind((node_ip(kube), 0))
            return True
        except OSError:
            return False


HOST_DATA_ROOT = "/var/lib/clipper/nats"



def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


def new_manager(namespace, tag, **kw):
    args = dict(cluster_name="{}-{}".format(tag, RUN), namespace=namespace,
                useInternalIP=True)
    args.update(kw)
    return KubernetesContainerManager(**args)


class Clusters(object):
    """Starts clusters; at the end prints their logs when a test failed
    meanwhile, and stops them, even after a failure."""

    def __init__(self, request):
        self.session = request.session
        self.failed_before = request.session.testsfailed
        self.started = []

    def start(self, namespace, tag, start_args=None, **kw):
        cm = new_manager(namespace, tag, **kw)
        conn = ClipperConnection(cm)
        self.started.append(Cluster(conn, cm))
        t0 = time.monotonic()
        conn.start_clipper(**(start_args or {}))
        took = time.monotonic() - t0
        print("FIGURE start_clipper() of {} in namespace {} to ready: {:.2f} s".format(
            cm.cluster_name, namespace, took))
        self.started[-1].start_s = took
        return self.started[-1]

    def close(self):
        for c in reversed(self.started):
            if self.session.testsfailed > self.failed_before:
                dump_logs(c)
            c.conn.stop_all(graceful=False)


@pytest.fixture
def clusters(kube, request):
    cs = Clusters(request)
    try:
        yield cs
    finally:
        cs.close()


@pytest.fixture(scope="module")
def cluster(kube, request):
    """One cluster shared by the module's tests, in a namespace of its own,
    with two query frontends behind the query Service."""
    ns = kube.namespace("mod")
    cs = Clusters(request)
    try:
        yield cs.start(ns, "mod", start_args={"num_frontend_replicas": 2})
    finally:
        cs.close()


@pytest.fixture(autouse=True)
def stop_models_after_each_test(request):
    yield
    stop_test_models(request)


def endpoint(cluster, app, func=lambda xs: [str(sum(x)) for x in xs], replicas=1,
             slo=3000000, **kw):
    cluster.conn.register_application(app, "doubles", "-1.0", slo)
    python_deployer.deploy_python_closure(cluster.conn, app, 1, "doubles", func,
                                          num_replicas=replicas, **kw)
    cluster.conn.link_model_to_app(app, app)


def first_answer(cluster, app, x, timeout=30):
    """The first non-default HTTP answer of app to x (the frontends learn of
    a new link a moment after the deploy)."""
    def ok():
        status, reply = cluster.http("/{}/predict".format(app), {"input": x}, timeout=10)
        return reply if status == 200 and reply.get("default") is False else None
    return wait_until("a non-default answer from " + app, ok, timeout, 0.05)


# ---- start, deploy, query --------------------------------------------------------

def test_start_creates_clippers_objects_in_the_namespace(kube, cluster):
    cm = cluster.cm
    ns, name = cm.k8s_namespace, cm.cluster_name
    assert cm.cluster_identifier == name   # not the "default" namespace
    deps = {d.metadata.name: d for d in kube.apps.list_namespaced_deployment(
        ns, label_selector="{}={},{}".format(CLIPPER_DOCKER_LABEL, name,
                                             CLIPPER_NAME_LABEL)).items}
    assert sorted(deps) == sorted("{}-at-{}".format(r, name) for r in (
        "mgmt-frontend", "router", "query-frontend", "manager"))
    frontends = deps["query-frontend-at-" + name]
    assert frontends.spec.replicas == 2 and frontends.status.ready_replicas == 2
    (sts,) = kube.apps.list_namespaced_stateful_set(
        ns, label_selector="{}={}".format(CLIPPER_DOCKER_LABEL, name)).items
    assert sts.metadata.name == "nats-at-" + name
    # No provisioner on the test cluster: the store is a hostPath per cluster.
    vols = sts.spec.template.spec.volumes
    assert vols[0].host_path.path == "/var/lib/clipper/nats/{}/{}".format(ns, name)
    svcs = {s.metadata.name: s for s in kube.core.list_namespaced_service(
        ns, label_selector="{}={}".format(CLIPPER_DOCKER_LABEL, name)).items}
    assert sorted(svcs) == sorted("{}-at-{}".format(r, name) for r in (
        "nats", "mgmt-frontend", "query-frontend", "metrics"))
    assert {s.spec.type for s in svcs.values()} == {"NodePort"}
    ports = {n: s.spec.ports[0].port for n, s in svcs.items()}
    assert ports == {"nats-at-" + name: 4222, "mgmt-frontend-at-" + name: 1338,
                     "query-frontend-at-" + name: 1337, "metrics-at-" + name: 1390}
    # The manager's rights: a Role in the namespace, nothing cluster-wide.
    (role,) = kube.rbac.list_namespaced_role(
        ns, label_selector="{}={}".format(CLIPPER_DOCKER_LABEL, name)).items
    assert {r for rule in role.rules for r in rule.resources} == {"deployments", "pods",
                                                                  "pods/log"}
    assert not kube.rbac.list_cluster_role(
        label_selector="{}={}".format(CLIPPER_DOCKER_LABEL, name)).items
    manager = deps["manager-at-" + name].spec.template.spec
    assert manager.service_account_name == "manager-at-" + name
    cmd = manager.containers[0].command
    assert cmd[:3] == ["clipper", "run", "manager"] and "kubernetes" in cmd
    assert cmd[cmd.index("--replica-nats") + 1] == "tls://{}:4222".format(
        svcs["nats-at-" + name].spec.cluster_ip)
    assert cmd[cmd.index("--replica-secret") + 1] == "identity-replica-at-" + name
    # The addresses: NodePorts on the node's InternalIP (useInternalIP=True).
    ip = node_ip(kube)
    assert cm.get_query_addr() == "{}:{}".format(
        ip, svcs["query-frontend-at-" + name].spec.ports[0].node_port)
    assert cm.get_admin_addr() == "{}:{}".format(
        ip, svcs["mgmt-frontend-at-" + name].spec.ports[0].node_port)
    assert cm.get_metric_addr() == "{}:{}".format(
        ip, svcs["metrics-at-" + name].spec.ports[0].node_port)
    assert cm.get_bus_url() == "tls://{}:{}".format(
        ip, svcs["nats-at-" + name].spec.ports[0].node_port)
    # The secrets: nats-server's and one identity per actor role.
    secrets = sorted(s.metadata.name for s in kube.core.list_namespaced_secret(
        ns, label_selector="{}={}".format(CLIPPER_DOCKER_LABEL, name)).items)
    assert secrets == sorted(["nats-secrets-at-" + name, "admin-token-at-" + name] + [
        "identity-{}-at-{}".format(r, name) for r in ("admin", "frontend", "manager",
                                                        "replica", "router")])
    # Clipper's management REST (with its token: it deploys code and is on a
    # NodePort), the metrics JSON and the Prometheus text answer.
    with open(cm.admin_token_file()) as f:
        token = f.readline().strip()
    assert len(token) == 64 and os.stat(cm.admin_token_file()).st_mode & 0o077 == 0
    ping = "http://{}/admin/ping".format(cm.get_admin_addr())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(ping, timeout=10)
    assert e.value.code == 401
    req = urllib.request.Request(ping, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and b"PONG" in r.read()
    with urllib.request.urlopen("http://{}/metrics".format(cm.get_metric_addr()),
                                timeout=10) as r:
        assert r.status == 200 and b"# " in r.read()
    assert isinstance(cluster.conn.inspect_instance(), dict)


def test_deploy_a_closure_and_query_it_over_http_and_nats(kube, cluster):
    app = unique("sum")
    cluster.conn.register_application(app, "doubles", "-1.0", 3000000)
    t0 = time.monotonic()
    python_deployer.deploy_python_closure(cluster.conn, app, 1, "doubles",
                                          lambda xs: [str(sum(x)) for x in xs])
    deployed = time.monotonic() - t0
    cluster.conn.link_model_to_app(app, app)
    reply = first_answer(cluster, app, [1.0, 2.5], timeout=60)
    first = time.monotonic() - t0
    print("FIGURE deploy_python_closure() returned after {:.2f} s; first non-default "
          "prediction over HTTP after {:.2f} s".format(deployed, first))
    assert reply["output"] == 3.5
    nats = cluster.nats(app, {"input": [4.0, 5.0]})
    assert nats["output"] == 9.0 and nats["default"] is False
    (pod,) = kube.replica_pods(cluster.cm, app)
    c = pod.spec.containers[0]
    assert c.image == "localhost/clipper/python-closure:latest"
    assert c.image_pull_policy == "Never"
    assert pod.metadata.labels[CLIPPER_DOCKER_LABEL] == cluster.cm.cluster_name




def test_a_pyspark_model_runs_in_the_pyspark_image_and_equals_spark(kube, cluster, spark):
    from test_pyspark import expect_logistic_regression_answers
    t0 = time.monotonic()
    app = expect_logistic_regression_answers(spark, cluster)
    print("FIGURE a PySpark model: create_endpoint and every answer checked after {:.2f} s"
          .format(time.monotonic() - t0))
    (pod,) = kube.replica_pods(cluster.cm, app)
    assert pod.spec.containers[0].image == "localhost/clipper/pyspark:latest"


def test_resources_reach_the_replica_containers(kube, cluster):
    app = unique("res")
    resources = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
    endpoint(cluster, app, resources=resources)
    (pod,) = kube.replica_pods(cluster.cm, app)
    r = pod.spec.containers[0].resources
    assert r.requests == {"cpu": "50m", "memory": "64Mi"} and r.limits == {"memory": "1Gi"}
    assert cluster.nats(app, {"input": [1.0, 2.0]})["output"] == 3.0
    with pytest.raises(ClipperException) as e:
        python_deployer.deploy_python_closure(
            cluster.conn, app, 2, "doubles", lambda xs: ["x"] * len(xs),
            resources={"limits": {"memory": "1 GB"}})
    assert "resources.limits.memory" in str(e.value) and "'1 GB'" in str(e.value)
    with pytest.raises(ClipperException, match="resources must be a dict"):
        python_deployer.deploy_python_closure(cluster.conn, app, 2, "doubles",
                                              lambda xs: ["x"] * len(xs), resources="1Gi")
    assert cluster.conn.get_current_model_version(app) == "1"


def test_scale_1_3_1_counted_by_label(kube, cluster):
    app = unique("scale")
    endpoint(cluster, app)
    cm = cluster.cm
    assert len(kube.replica_pods(cm, app)) == 1
    cluster.conn.set_num_replicas(app, 3)
    # Ready on the bus (their heartbeats) when it returns; the kubelet's
    # readiness probe says so a moment later.
    assert len(kube.replica_pods(cm, app)) == 3
    wait_until("3 Ready replica pods", lambda: len(kube.replica_pods(cm, app, ready=True)) == 3,
               30)
    assert cluster.conn.get_num_replicas(app) == 3
    deps = kube.apps.list_namespaced_deployment(cm.k8s_namespace, label_selector="{}={}_1".format(
        CLIPPER_MODEL_CONTAINER_LABEL, app)).items
    assert [d.spec.replicas for d in deps] == [3]
    for i in range(10):
        assert cluster.nats(app, {"input": [float(i)]})["output"] == float(i)
    cluster.conn.set_num_replicas(app, 1)
    wait_until("1 replica pod", lambda: len(kube.replica_pods(cm, app)) == 1)
    assert cluster.conn.get_num_replicas(app) == 1
    assert cluster.nats(app, {"input": [2.0, 2.0]})["output"] == 4.0


class OpenLoop(object):
    """Open-loop HTTP load: a request every 1/rate s whatever the answers
    (each on a worker thread of its own), every outcome recorded."""

    def __init__(self, addr, app, rate_hz=40, timeout_s=10):
        self.addr, self.app, self.rate, self.timeout = addr, app, rate_hz, timeout_s
        self.results = []   # (sent at, status or None, reply or error, latency s)
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=64)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def one(self, sent):
        host, port = self.addr.split(":")
        t = time.monotonic()
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
            c.request("POST", "/{}/predict".format(self.app), body=b'{"input": [1.0, 1.0]}',
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            c.close()
            out = (sent, r.status, json.loads(body), time.monotonic() - t)
        except Exception as e:  # noqa: BLE001 - recorded, asserted on
            out = (sent, None, repr(e), time.monotonic() - t)
        with self.lock:
            self.results.append(out)

    def run(self):
        start = time.monotonic()
        n = 0
        while not self.halt.is_set():
            n += 1
            self.pool.submit(self.one, time.monotonic())
            delay = start + n / self.rate - time.monotonic()
            if delay > 0:
                self.halt.wait(delay)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.halt.set()
        self.thread.join(10)
        self.pool.shutdown(wait=True)
        return sorted(self.results, key=lambda r: r[0])


def host_pids_of(container_id):
    """The pids on this host of a container ("containerd://<id>"), found by
    its id in their cgroup paths; [] when its node is another machine."""
    cid = container_id.split("://", 1)[-1]
    pids = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/{}/cgroup".format(e)) as f:
                    if cid in f.read():
                        pids.append(int(e))
            except OSError:
                pass
    return pids


def test_killed_replicas_are_replaced_while_open_loop_queries_answer(kube, cluster):
    """Two replicas; open-loop load at 40 queries/s over the query Service.
    First a replica's process is killed (SIGKILL, as a crash: Kubernetes
    restarts its container in the same pod), then a replica pod is deleted
    with gracePeriodSeconds=0 (the Deployment makes a new pod). Every query
    must be answered (HTTP 200). A default output counts as answered only
    because it is the app's contract when the SLO would be missed (a
    killed replica's batch in flight is lost and its queries get the
    default at the SLO); the defaults are counted and reported, and must
    stay under 10% of the queries."""
    import signal
    app = unique("heal")
    endpoint(cluster, app, replicas=2, slo=1000000)
    cm = cluster.cm
    assert first_answer(cluster, app, [1.0, 1.0])["output"] == 2.0
    load = OpenLoop(cm.get_query_addr(), app).start()
    windows = []
    try:
        time.sleep(2.0)
        # 1. SIGKILL of a replica's process.
        pods = kube.replica_pods(cm, app)
        assert len(pods) == 2
        victim = sorted(pods, key=lambda p: p.metadata.name)[0]
        restarts = victim.status.container_statuses[0].restart_count
        pids = host_pids_of(victim.status.container_statuses[0].container_id)
        t0 = time.monotonic()
        if pids:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            wait_until("the killed container restarted and Ready", lambda: [
                p for p in kube.replica_pods(cm, app, ready=True)
                if p.metadata.name == victim.metadata.name and
                p.status.container_statuses[0].restart_count > restarts], 60, 0.05)
            pod_s = time.monotonic() - t0
            cm.wait_for_replicas(app, 1, 2, 60)
            windows.append(("SIGKILL of the replica process", t0, pod_s,
                            time.monotonic() - t0))
        else:
            print("the node of pod {} is not this machine: no SIGKILL round".format(
                victim.metadata.name))
        time.sleep(2.0)
        # 2. The pod deleted at once.
        before = {p.metadata.name for p in kube.replica_pods(cm, app)}
        assert len(before) == 2
        t0 = time.monotonic()
        kube.core.delete_namespaced_pod(sorted(before)[0], cm.k8s_namespace,
                                        grace_period_seconds=0)
        wait_until("a replacement pod, Ready", lambda: len(
            [p for p in kube.replica_pods(cm, app, ready=True)
             if p.metadata.name not in before]) == 1, 60, 0.05)
        pod_s = time.monotonic() - t0
        cm.wait_for_replicas(app, 1, 2, 60)
        windows.append(("the pod deleted with gracePeriodSeconds=0", t0, pod_s,
                        time.monotonic() - t0))
        time.sleep(2.0)
    finally:
        results = load.stop()
    failed = [r for r in results if r[1] != 200]
    defaults = [r for r in results if r[1] == 200 and r[2].get("default")]
    lat = sorted(r[3] for r in results if r[1] == 200)
    for what, t0, pod_s, serving_s in windows:
        during = [r for r in results if t0 <= r[0] <= t0 + serving_s + 1.0]
        print("FIGURE {}: its pod Ready again after {:.2f} s, 2 ready replicas on the bus "
              "after {:.2f} s; {} queries sent meanwhile (+1 s), {} of them default".format(
                  what, pod_s, serving_s, len(during),
                  len([r for r in during if r[1] == 200 and r[2].get("default")])))
    print("FIGURE open-loop load at {} q/s over both failures: {} queries, {} failed (no "
          "HTTP 200), {} default outputs; latency p50 {:.1f} ms, max {:.1f} ms".format(
              load.rate, len(results), len(failed), len(defaults),
              1000 * lat[len(lat) // 2], 1000 * lat[-1]))
    if defaults:
        print("  default explanations: {}".format(sorted({r[2].get("default_explanation")
                                                          for r in defaults})))
    assert not failed, failed[:10]
    assert len(results) > 200
    last = windows[-1]
    after = [r for r in results if r[0] > last[1] + last[3] + 1.0]
    assert after and all(r[2]["default"] is False and r[2]["output"] == 2.0 for r in after)
    assert len(defaults) * 10 <= len(results), "more than 10% defaults"


def test_a_three_server_nats_keeps_the_state_and_serves_when_a_server_goes(kube, clusters):
    """nats_replicas=3: three nats-servers in a NATS cluster, the state and
    the artifacts on three JetStream replicas. One server's pod deleted
    while open-loop queries run: every query is answered (HTTP 200), the
    state is all there, the pod comes back and the three are one cluster
    again."""
    ns = kube.namespace("nats3")
    c = clusters.start(ns, "nats3", nats_replicas=3)
    cm = c.cm
    sel = "{}={},{}=nats".format(CLIPPER_DOCKER_LABEL, cm.cluster_name, CLIPPER_NAME_LABEL)
    pods = kube.core.list_namespaced_pod(ns, label_selector=sel).items
    assert len(pods) == 3 and all(pod_ready(p) for p in pods)

    def jsz(pod_ip):
        url = "http://{}:8222/jsz?accounts=true&streams=true&config=true".format(pod_ip)
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read().decode())

    app = unique("r3")
    endpoint(c, app)
    assert first_answer(c, app, [2.0, 3.0])["output"] == 5.0
    # The state bucket and the artifact stream are on three servers.
    info = jsz(pods[0].status.pod_ip)
    streams = {st["name"]: st for a in info.get("account_details", [])
               for st in a.get("stream_detail", [])}
    kv = "KV_{}_state".format(cm.prefix)
    art = "{}_ARTIFACTS".format(cm.prefix.upper())
    assert kv in streams and art in streams, sorted(streams)
    for name in (kv, art):
        assert streams[name]["config"]["num_replicas"] == 3, streams[name]["config"]
        assert len(streams[name]["cluster"].get("replicas", [])) == 2, streams[name]["cluster"]

    load = OpenLoop(cm.get_query_addr(), app).start()
    try:
        time.sleep(2.0)
        victim = sorted(p.metadata.name for p in pods)[0]
        t0 = time.monotonic()
        kube.core.delete_namespaced_pod(victim, ns)
        wait_until("the deleted NATS server back and ready", lambda: len(
            [p for p in kube.core.list_namespaced_pod(ns, label_selector=sel).items
             if pod_ready(p) and p.metadata.deletion_timestamp is None]) == 3, 120, 0.2)
        back_s = time.monotonic() - t0
        time.sleep(2.0)
    finally:
        results = load.stop()
    failed = [r for r in results if r[1] != 200]
    defaults = [r for r in results if r[1] == 200 and r[2].get("default")]
    print("FIGURE 3 NATS servers, one pod deleted under {} q/s: back in {:.1f} s; {} queries, "
          "{} failed, {} default outputs".format(load.rate, back_s, len(results), len(failed),
                                                 len(defaults)))
    assert not failed, failed[:10]
    assert len(defaults) * 10 <= len(results), "more than 10% defaults"
    # Nothing of the state was lost, and a new deploy works.
    assert app in c.conn.get_all_apps()
    app2 = unique("r3b")
    endpoint(c, app2)
    assert first_answer(c, app2, [4.0])["output"] == 4.0


def test_a_replica_pod_deleted_by_hand_is_replaced_and_serves(kube, cluster):
    """One replica, deleted gracefully as `kubectl delete pod` would: the
    Deployment replaces it and the app answers again with the model's
    output."""
    app = unique("hand")
    endpoint(cluster, app)
    cm = cluster.cm
    assert first_answer(cluster, app, [3.0])["output"] == 3.0
    (old,) = kube.replica_pods(cm, app)
    t0 = time.monotonic()
    kube.core.delete_namespaced_pod(old.metadata.name, cm.k8s_namespace)
    wait_until("a new ready replica pod", lambda: [
        p for p in kube.replica_pods(cm, app, ready=True)
        if p.metadata.name != old.metadata.name], 60, 0.05)
    cm.wait_for_replicas(app, 1, 1, 60)
    reply = first_answer(cluster, app, [4.0], timeout=60)
    print("FIGURE a replica pod deleted by hand (graceful, the only replica) -> serving "
          "again after {:.2f} s".format(time.monotonic() - t0))
    assert reply["output"] == 4.0
    assert cluster.nats(app, {"input": [5.0]})["output"] == 5.0
    assert len(kube.replica_pods(cm, app)) == 1


def test_query_latency_and_throughput_through_the_services(cluster):
    """A plain client loop on one kept-alive connection (p50), then eight
    of them for 5 s (throughput), over the query Service's NodePort; and
    the p50 over NATS through the NATS Service's NodePort. Every query has
    an input of its own, so none is answered from the prediction cache."""
    app = unique("perf")
    endpoint(cluster, app, func=lambda xs: [str(x[0]) for x in xs])
    first_answer(cluster, app, [1.0])
    host, port = cluster.cm.get_query_addr().split(":")
    headers = {"Content-Type": "application/json"}
    counter = iter(range(10 ** 9))
    lock = threading.Lock()

    def fresh():
        with lock:
            return float(next(counter))

    def client_loop(n=None, until=None):
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        lat, count = [], 0
        while (n is not None and count < n) or (until is not None and time.monotonic() < until):
            x = fresh()
            body = json.dumps({"input": [x, 2.0]}).encode()
            t = time.perf_counter()
            c.request("POST", "/{}/predict".format(app), body=body, headers=headers)
            r = c.getresponse()
            reply = json.loads(r.read())
            lat.append(time.perf_counter() - t)
            assert r.status == 200 and reply["default"] is False and reply["output"] == x, reply
            count += 1
        c.close()
        return lat

    client_loop(n=50)   # warm: caches, connections
    lat = client_loop(n=500)
    until = time.monotonic() + 5.0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        counts = [len(f.result()) for f in [pool.submit(client_loop, None, until)
                                            for _ in range(8)]]
    nats = []
    for _ in range(300):
        x = fresh()
        t = time.perf_counter()
        reply = cluster.nats(app, {"input": [x, 2.0]})
        nats.append(time.perf_counter() - t)
        assert reply["default"] is False and reply["output"] == x, reply
    print("FIGURE HTTP through the query Service (NodePort {}): sequential p50 {:.3f} ms, p99 "
          "{:.3f} ms (500 queries); 8 clients for 5 s: {:.0f} queries/s".format(
              cluster.cm.get_query_addr(), 1000 * statistics.median(lat),
              1000 * sorted(lat)[int(len(lat) * 0.99)], sum(counts) / 5.0))
    print("FIGURE NATS through the NATS Service (NodePort {}): sequential p50 {:.3f} ms "
          "(300 queries)".format(cluster.cm.get_bus_url(), 1000 * statistics.median(nats)))


def test_connect_from_a_second_process(cluster):
    app = unique("conn")
    endpoint(cluster, app)
    script = textwrap.dedent("""
        import json, sys
        from clipper_admin import ClipperConnection, KubernetesContainerManager
        cm = KubernetesContainerManager(cluster_name=sys.argv[1], namespace=sys.argv[2],
                                        useInternalIP=True)
        conn = ClipperConnection(cm)
        conn.connect()
        reply = json.loads(cm.bus.predict(sys.argv[3], b'{"input": [1.0, 6.0]}', 10000))
        print(json.dumps({"apps": conn.get_all_apps(), "replicas": conn.get_num_replicas(
            sys.argv[3]), "output": reply["output"], "query": cm.get_query_addr(),
            "admin": cm.get_admin_addr(), "prefix": cm.prefix}))
    """)
    out = subprocess.run([sys.executable, "-c", script, cluster.cm.cluster_name,
                          cluster.cm.k8s_namespace, app], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert app in got["apps"] and got["replicas"] == 1 and got["output"] == 7.0
    assert got["query"] == cluster.cm.get_query_addr()
    assert got["admin"] == cluster.cm.get_admin_addr()
    assert got["prefix"] == cluster.cm.prefix


# ---- security: identities and TLS on the bus (docs/security.md) ---------------------

def test_the_bus_wants_identities_tls_and_the_cluster_ca(kube, cluster, tmp_path):
    from clipper_admin._bus import Bus, BusError
    cm = cluster.cm
    url, auth = cm.get_bus_url(), cm._bus_auth()
    assert url.startswith("tls://") and os.path.exists(auth["creds"])

    def refused(what, **kw):
        with pytest.raises(BusError) as e:
            Bus(url if "url" not in kw else kw.pop("url"), prefix=cm.prefix, **kw).close()
        print("refused ({}): {}".format(what, e.value))
        return str(e.value)

    assert "credential" in refused("no credential", tls_ca=auth["tls_ca"],
                                   tls_name=auth["tls_name"])
    # Another cluster's CA (made by clipper creds init in a directory of its own).
    other = str(tmp_path / "other")
    subprocess.run([os.environ.get("CLIPPER_BIN", "clipper"), "creds", "init", "--data-dir",
                    other, "--prefix", "other"], check=True, capture_output=True)
    assert "did not verify" in refused("another CA", creds=auth["creds"],
                                       tls_ca=os.path.join(other, "secrets", "ca.pem"),
                                       tls_name=auth["tls_name"])
    assert "did not verify" in refused("a name the certificate does not carry",
                                       creds=auth["creds"], tls_ca=auth["tls_ca"],
                                       tls_name="somebody-else")
    # The replica identity may not send admin commands: nats-server refuses
    # the publish and says so in its log.
    secrets = os.path.join(cm.data_dir, "secrets")
    with open(os.path.join(secrets, "identities", "replica.json")) as f:
        replica_pub = json.load(f)["public_key"]
    bus = Bus(url, prefix=cm.prefix, creds=os.path.join(secrets, "creds", "replica.creds"),
              tls_ca=auth["tls_ca"], tls_name=auth["tls_name"])
    try:
        with pytest.raises(BusError):
            bus.request("{}.admin.ping".format(cm.prefix), b"{}", 1000)
    finally:
        bus.close()
    want = 'Publish Violation - Nkey "{}", Subject "{}.admin.ping"'.format(replica_pub,
                                                                           cm.prefix)

    def logged():
        log = kube.core.read_namespaced_pod_log("nats-at-" + cm.cluster_name + "-0",
                                                cm.k8s_namespace)
        return want in log
    wait_until("nats-server logging " + want, logged, 10, 0.2)


def test_secrets_are_mounted_0400_and_never_in_a_pod_spec(kube, cluster):
    app = unique("sec")
    endpoint(cluster, app)
    first_answer(cluster, app, [1.0])
    cm = cluster.cm
    seeds = []
    for name in ("admin", "frontend", "manager", "replica", "router", "operator"):
        with open(os.path.join(cm.data_dir, "secrets", "creds", name + ".creds")) as f:
            seeds += [line.strip() for line in f if line.startswith("SU")]
    with open(os.path.join(cm.data_dir, "nats", "server.key")) as f:
        key_body = f.read().splitlines()[1]
    assert len(seeds) == 6
    pods = kube.core.list_namespaced_pod(cm.k8s_namespace, label_selector="{}={}".format(
        CLIPPER_DOCKER_LABEL, cm.cluster_name)).items
    roles = set()
    for p in pods:
        spec = json.dumps(kube.api.sanitize_for_serialization(p.spec))
        assert not any(s in spec for s in seeds) and key_body not in spec, p.metadata.name
        assert '"SU' not in spec, p.metadata.name
        for v in p.spec.volumes or []:
            if v.secret is not None:
                assert v.secret.default_mode == 0o400, (p.metadata.name, v)
                roles.add(v.secret.secret_name)
    # Every actor, nats-server and the replica have theirs, and the admin
    # its REST's token.
    assert {"nats-secrets-at-" + cm.cluster_name, "admin-token-at-" + cm.cluster_name,
            "identity-replica-at-" + cm.cluster_name} <= roles, roles
    assert len(roles) == 7, roles


def test_an_insecure_cluster_is_open_and_says_so(kube, clusters, caplog):
    ns = kube.namespace("open")
    caplog.set_level("WARNING")
    c = clusters.start(ns, "open", insecure=True)
    assert c.cm.get_bus_url().startswith("nats://")
    assert any("INSECURE" in r.getMessage() for r in caplog.records)
    from clipper_admin._bus import MAX_PAYLOAD, Bus
    bus = Bus(c.cm.get_bus_url(), prefix=c.cm.prefix)  # no identity needed
    # nats-server from its command line still takes inputs of MB
    assert bus.max_payload == MAX_PAYLOAD
    bus.close()
    assert not kube.core.list_namespaced_secret(ns, label_selector="{}={}".format(
        CLIPPER_DOCKER_LABEL, c.cm.cluster_name)).items


def test_https_and_tokens_on_the_query_metrics_and_management_services(kube, clusters,
                                                                         tmp_path):
    """A cluster whose doors serve HTTPS with a certificate for the node's
    address (its CA made here), the query and metrics ports with tokens
    of their own and the management REST with its default one: a
    prediction through the query Service's NodePort over HTTPS with the
    query token, 401 without it, no plain HTTP; the files reach the pods
    as Secrets mounted 0400 and the kubelet's probes knock (tcpSocket)."""
    ns = kube.namespace("doors")
    ip = node_ip(kube)
    d = str(tmp_path)
    pki = make_ca_and_leaf(d, (ip,))
    tokens = {door: "{}-{}".format(door, uuid.uuid4().hex) for door in ("metrics", "query")}
    c = clusters.start(ns, "doors", http_tls_cert=pki["cert"], http_tls_key=pki["key"],
                       **{door + "_token_file": token_file(os.path.join(d, door + ".token"),
                                                           tok)
                          for door, tok in tokens.items()})
    cm, ca = c.cm, pki["ca"]
    app = unique("tls")
    endpoint(c, app)
    query = port_of(cm.get_query_addr())
    path = "/{}/predict".format(app)

    def answered():
        status, text, _ = https(ip, query, "POST", path, ca, tokens["query"],
                                {"input": [1.0, 2.5]}, timeout=10)
        reply = json.loads(text) if status == 200 else {}
        return reply if reply.get("default") is False else None
    assert wait_until("a non-default answer over HTTPS", answered, 60, 0.1)["output"] == 3.5
    assert_401(https(ip, query, "POST", path, ca, None, {"input": [1.0]}), "no token")
    plain_http_fails(ip, query)
    metrics = port_of(cm.get_metric_addr())
    assert_401(https(ip, metrics, "GET", "/metrics", ca, tokens["query"]), "another token")
    status, text, _ = https(ip, metrics, "GET", "/metrics", ca, tokens["metrics"])
    assert status == 200 and "clipper_frontend_info" in text, text[:300]
    with open(cm.admin_token_file()) as f:
        admin_token = f.readline().strip()
    status, text, _ = https(ip, port_of(cm.get_admin_addr()), "GET", "/admin/ping", ca,
                            admin_token)
    assert (status, text) == (200, "PONG")
    assert isinstance(c.conn.inspect_instance(), dict)

    name = cm.cluster_name
    tls = kube.core.read_namespaced_secret("http-tls-at-" + name, ns)
    assert tls.type == "kubernetes.io/tls" and sorted(tls.data) == ["tls.crt", "tls.key"]
    for door in ("metrics", "query", "admin"):
        kube.core.read_namespaced_secret("{}-token-at-{}".format(door, name), ns)
    mounted = {"query-frontend": ["http-tls", "query-token", "metrics-token"],
               "mgmt-frontend": ["http-tls", "admin-token"]}
    for role, want in mounted.items():
        spec = kube.apps.read_namespaced_deployment("{}-at-{}".format(role, name),
                                                    ns).spec.template.spec
        text = json.dumps(kube.api.sanitize_for_serialization(spec))
        assert not [t for t in list(tokens.values()) + [admin_token] if t in text], role
        secrets = {v.secret.secret_name: v.secret.default_mode for v in spec.volumes
                   if v.secret is not None}
        assert {"{}-at-{}".format(w, name): 0o400 for w in want}.items() <= \
            secrets.items(), (role, secrets)
        (container,) = spec.containers
        for probe in (container.readiness_probe, container.liveness_probe):
            assert probe.tcp_socket is not None and probe.http_get is None, (role, probe)
        assert "--http-tls-cert" in container.command, container.command


def test_get_logs_writes_each_pods_log(kube, cluster, tmp_path):
    app = unique("logs")
    endpoint(cluster, app, func=lambda xs: ["ok" for _ in xs])
    assert cluster.nats(app, {"input": [1.0]})["output"] == "ok"
    paths = cluster.conn.get_clipper_logs(str(tmp_path / "logs"))
    names = sorted(os.path.basename(p) for p in paths)
    pods = kube.core.list_namespaced_pod(cluster.cm.k8s_namespace, label_selector="{}={}".format(
        CLIPPER_DOCKER_LABEL, cluster.cm.cluster_name)).items
    for p in pods:
        if p.status.phase == "Running":
            assert "{}_0.log".format(p.metadata.name) in names, (p.metadata.name, names)
    # nats, admin, router, 2 frontends, manager and this model's replica at least.
    assert len([n for n in names if not n.endswith(".previous.log")]) >= 7, names
    texts = {os.path.basename(p): open(p).read() for p in paths}
    assert any("kubernetes backend" in t for n, t in texts.items() if "manager-at-" in n)
    (rep,) = kube.replica_pods(cluster.cm, app)
    assert texts["{}_0.log".format(rep.metadata.name)].strip()


def test_stop_models_removes_only_that_models_pods(kube, cluster):
    keep, stop = unique("keep"), unique("stop")
    endpoint(cluster, keep)
    endpoint(cluster, stop, replicas=2)
    cm = cluster.cm
    cluster.conn.stop_models([stop])
    assert kube.replica_pods(cm, stop) == []
    assert len(kube.replica_pods(cm, keep)) == 1
    assert cluster.nats(keep, {"input": [1.0]})["output"] == 1.0
    sel = "{}={}_1".format(CLIPPER_MODEL_CONTAINER_LABEL, stop)
    wait_until("the stopped model's Deployment to go", lambda: not
               kube.apps.list_namespaced_deployment(cm.k8s_namespace, label_selector=sel).items,
               30)
    cluster.conn.stop_all_model_containers()
    assert kube.core.list_namespaced_pod(cm.k8s_namespace, label_selector="{}={},{}".format(
        CLIPPER_DOCKER_LABEL, cm.cluster_name, CLIPPER_MODEL_CONTAINER_LABEL)).items == []


def test_a_missing_base_image_fails_the_deploy_fast_with_errimageneverpull(kube, cluster):
    app = unique("noimg")
    endpoint(cluster, app)
    missing = "localhost/clipper/no-such-image-{}:1".format(RUN)
    t0 = time.monotonic()
    with pytest.raises(ClipperException) as e:
        python_deployer.deploy_python_closure(cluster.conn, app, 2, "doubles",
                                              lambda xs: [str(-sum(x)) for x in xs],
                                              base_image=missing)
    took = time.monotonic() - t0
    msg = str(e.value)
    print("a deploy naming a missing image failed after {:.1f} s: {}".format(took, msg))
    assert "The container manager cannot start replicas of model {}:2".format(app) in msg
    assert "ErrImageNeverPull" in msg and missing in msg
    assert "The deploy was undone" in msg
    assert took < 30, took
    assert cluster.conn.get_current_model_version(app) == "1"
    assert cluster.nats(app, {"input": [1.0, 2.0]})["output"] == 3.0
    wait_until("no pod of version 2", lambda: kube.replica_pods(cluster.cm, app, 2) == [], 30)


def test_a_second_start_of_a_running_cluster_is_refused_with_clippers_error(kube, cluster):
    cm = KubernetesContainerManager(cluster_name=cluster.cm.cluster_name,
                                    namespace=cluster.cm.k8s_namespace, useInternalIP=True)
    before = kube.labelled(cm.k8s_namespace, cm.cluster_name, CLIPPER_NAME_LABEL)
    with pytest.raises(ClipperException) as e:
        ClipperConnection(cm).start_clipper()
    assert str(e.value) == (
        "Cluster {} cannot be started because it already exists. Please use "
        "ClipperConnection.connect() to connect to it.".format(cm.cluster_name))
    assert kube.labelled(cm.k8s_namespace, cm.cluster_name, CLIPPER_NAME_LABEL) == before


def test_connect_without_external_node_addresses_is_clippers_error(cluster):
    cm = KubernetesContainerManager(cluster_name=cluster.cm.cluster_name,
                                    namespace=cluster.cm.k8s_namespace)
    with pytest.raises(ClipperException) as e:
        ClipperConnection(cm).connect()
    assert str(e.value) == (
        "Error connecting to Kubernetes cluster. No external node addresses found. You may "
        "pass in KubernetesContainerManager(useInternalIP=True) to connect to local "
        "Kubernetes cluster")


# ---- several clusters; stopping ---------------------------------------------------

def test_two_clusters_stay_isolated_and_stop_all_leaves_nothing(kube, cluster, clusters):
    """A second cluster in the module cluster's namespace (another name) and
    a third in a namespace of its own; the same app name in all three."""
    other_ns = kube.namespace("iso")
    same_ns = clusters.start(cluster.cm.k8s_namespace, "two")
    own_ns = clusters.start(other_ns, "three")
    app = unique("same")
    for c, out in ((cluster, "first"), (same_ns, "second"), (own_ns, "third")):
        endpoint(c, app, func=lambda xs, out=out: [out for _ in xs])
    for c, out in ((cluster, "first"), (same_ns, "second"), (own_ns, "third")):
        assert c.nats(app, {"input": [1.0]})["output"] == out
        assert first_answer(c, app, [1.0])["output"] == out
        assert len(kube.replica_pods(c.cm, app)) == 1
    assert len({cluster.cm.prefix, same_ns.cm.prefix, own_ns.cm.prefix}) == 3
    mine = kube.labelled(cluster.cm.k8s_namespace, cluster.cm.cluster_name,
                         CLIPPER_NAME_LABEL)
    same_ns.conn.set_num_replicas(app, 2)
    assert len(kube.replica_pods(cluster.cm, app)) == 1
    # stop_all (graceful) of the one in the shared namespace.
    t0 = time.monotonic()
    same_ns.conn.stop_all()
    print("stop_all(graceful=True) took {:.2f} s".format(time.monotonic() - t0))
    assert kube.labelled(same_ns.cm.k8s_namespace, same_ns.cm.cluster_name) == []
    # stop_all (not graceful) of the third from a manager that never connected.
    fresh = KubernetesContainerManager(cluster_name=own_ns.cm.cluster_name,
                                       namespace=other_ns)
    t0 = time.monotonic()
    ClipperConnection(fresh).stop_all(graceful=False)
    print("stop_all(graceful=False) without connect() took {:.2f} s".format(
        time.monotonic() - t0))
    assert kube.labelled(other_ns, own_ns.cm.cluster_name) == []
    # The module cluster is untouched and serves.
    assert kube.labelled(cluster.cm.k8s_namespace, cluster.cm.cluster_name,
                         CLIPPER_NAME_LABEL) == mine
    assert cluster.nats(app, {"input": [1.0]})["output"] == "first"


def test_stop_all_removes_the_jetstream_store_so_a_restart_starts_empty(kube, clusters):
    ns = kube.namespace("store")
    c = clusters.start(ns, "store")
    app = unique("kept")
    endpoint(c, app)
    # The store outlives the NATS pod: the state is there after it is replaced.
    (nats_pod,) = kube.core.list_namespaced_pod(ns, label_selector="{}={},{}=nats".format(
        CLIPPER_DOCKER_LABEL, c.cm.cluster_name, CLIPPER_NAME_LABEL)).items
    # Deleted as a drain would (not forced: two nats-servers must never
    # share the store); the StatefulSet makes it again on the same node.
    t0 = time.monotonic()
    kube.core.delete_namespaced_pod(nats_pod.metadata.name, ns)
    sel = "{}={},{}=nats".format(CLIPPER_DOCKER_LABEL, c.cm.cluster_name, CLIPPER_NAME_LABEL)
    wait_until("a new NATS pod, Ready", lambda: [
        p for p in kube.core.list_namespaced_pod(ns, label_selector=sel).items
        if p.metadata.uid != nats_pod.metadata.uid and pod_ready(p)], 90, 0.1)
    pod_s = time.monotonic() - t0
    wait_until("the state back after the NATS pod was replaced",
               lambda: _apps_or_none(c) == [app], 90, 0.2)
    state_s = time.monotonic() - t0
    wait_until("predictions back after the NATS pod was replaced",
               lambda: _output_or_none(c, app) == 3.0, 90, 0.2)
    print("FIGURE the NATS pod deleted: a new one Ready after {:.2f} s, the state back "
          "(admin answers) after {:.2f} s, predictions over NATS after {:.2f} s".format(
              pod_s, state_s, time.monotonic() - t0))
    store = "{}/{}/{}".format(HOST_DATA_ROOT, ns, c.cm.cluster_name)
    local = node_is_this_machine(kube)
    if local:
        assert os.path.isdir(store) and os.listdir(store), store
    c.conn.stop_all()
    assert kube.labelled(ns, c.cm.cluster_name) == []
    if local:   # the store and its namespace's directory, now empty
        assert not os.path.exists(os.path.dirname(store))
    c2 = clusters.start(ns, "store")
    assert c2.conn.get_all_apps() == []


def _output_or_none(c, app):
    try:
        return c.nats(app, {"input": [1.0, 2.0]}, timeout_ms=5000).get("output")
    except Exception:  # noqa: BLE001 - no responders while the actors reconnect
        return None


def _apps_or_none(c):
    try:
        return c.conn.get_all_apps()
    except ClipperException:
        return None


# ---- bad input ----------------------------------------------------------------------

def test_an_unknown_namespace_is_clippers_error_unless_created(kube):
    ns = "pytest-k8s-none-{}".format(RUN)
    with pytest.raises(ClipperException) as e:
        KubernetesContainerManager(namespace=ns)
    assert str(e.value).startswith(
        "Error connecting to Kubernetes cluster. Namespace does not exist. You can pass in "
        "KubernetesContainerManager(create_namespace_if_not_exists=True) to crate this "
        "namespcae")
    assert ns in str(e.value)
    kube.made.append(ns)
    cm = KubernetesContainerManager(namespace=ns, create_namespace_if_not_exists=True)
    assert kube.core.read_namespace(ns).metadata.name == ns
    assert cm.cluster_identifier == "default-cluster"
    assert KubernetesContainerManager().cluster_identifier == "default-default-cluster"


def test_bad_service_types_are_clippers_errors(kube):
    good = {"redis": "NodePort", "management": "NodePort", "query": "LoadBalancer",
            "query-rpc": "ClusterIP", "metric": "NodePort"}
    cases = [
        (["NodePort"], "service_types must be 'dict' type: ['NodePort']"),
        (dict(good, extra="NodePort"), "service_types has unknown keys: {}".format(
            dict(good, extra="NodePort").keys())),
        ({k: v for k, v in good.items() if k != "redis"},
         "service_types has unknown keys: {}".format(
             {k: v for k, v in good.items() if k != "redis"}.keys())),
        (dict(good, query="Ingress"), "service_types has unknown values: {}".format(
            dict(good, query="Ingress").values())),
        (dict(good, metric="ExternalName"), "Clipper does not support 'ExternalName' service"),
    ]
    for st, msg in cases:
        with pytest.raises(ClipperException) as e:
            KubernetesContainerManager(service_types=st)
        assert str(e.value) == msg
    assert KubernetesContainerManager(service_types=good).service_types == good


def test_a_missing_clipper_image_fails_start_naming_the_pod(kube, clusters):
    ns = kube.namespace("noimg")
    missing = "localhost/clipper/no-such-clipper-{}:latest".format(RUN)
    cm = new_manager(ns, "noimg", clipper_image=missing)
    t0 = time.monotonic()
    with pytest.raises(ClipperException) as e:
        ClipperConnection(cm).start_clipper()
    msg = str(e.value)
    print("start_clipper() without its image failed after {:.1f} s: {}".format(
        time.monotonic() - t0, msg))
    assert msg.startswith("Pod nats-at-{}-0 of cluster".format(cm.cluster_name)), msg
    assert "ErrImageNeverPull" in msg and missing in msg and "images/kube/kube.sh images" in msg
    assert time.monotonic() - t0 < 60
    assert kube.labelled(ns, cm.cluster_name) == []
    if node_is_this_machine(kube):   # the kubelet made it for the NATS pod
        assert not os.path.exists("{}/{}".format(HOST_DATA_ROOT, ns))


def test_no_kubeconfig_and_an_unreachable_api_server_are_clear_errors(monkeypatch, tmp_path):
    missing = str(tmp_path / "missing.kubeconfig")
    monkeypatch.setenv("KUBECONFIG", missing)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClipperException) as e:
        KubernetesContainerManager()
    assert str(e.value).startswith("No kubeconfig: {} (from env KUBECONFIG) does not exist".format(
        missing)), str(e.value)
    with pytest.raises(ClipperException, match="No kubeconfig: .*given as kubeconfig="):
        KubernetesContainerManager(kubeconfig=missing)
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        clusters:
        - name: dead
          cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
        users:
        - name: u
          user: {token: "x"}
        contexts:
        - name: dead
          context: {cluster: dead, user: u}
        current-context: dead
        """))
    t0 = time.monotonic()
    with pytest.raises(ClipperException) as e:
        KubernetesContainerManager(kubeconfig=str(dead))
    assert str(e.value).startswith("Cannot reach the Kubernetes API server at "
                                   "https://127.0.0.1:1"), str(e.value)
    assert "kube.sh start" in str(e.value)
    assert time.monotonic() - t0 < 30


def test_bad_arguments_are_refused_at_once(kube):
    with pytest.raises(ClipperException, match="Invalid cluster_name 'Bad_Name'"):
        KubernetesContainerManager(cluster_name="Bad_Name")
    with pytest.raises(ClipperException, match="image_pull_policy must be one of"):
        KubernetesContainerManager(image_pull_policy="Sometimes")
    with pytest.raises(ClipperException, match="pyspark_image must name an image"):
        KubernetesContainerManager(pyspark_image="pyspark=x:1")
    with pytest.raises(ClipperException, match="Invalid namespace"):
        KubernetesContainerManager(namespace="Not OK")
    with pytest.raises(ClipperException, match="nats_url must be a NATS URL"):
        KubernetesContainerManager(nats_url="127.0.0.1:4222")
    with pytest.raises(ClipperException, match="http_tls_cert and http_tls_key go together"):
        KubernetesContainerManager(http_tls_cert=__file__)
    with pytest.raises(ClipperException, match="query_token_file /nonexistent does not exist"):
        KubernetesContainerManager(query_token_file="/nonexistent")
    assert KubernetesContainerManager().image_pull_policy == "Never"
    assert KubernetesContainerManager(
        replica_image="docker.io/me/closure:1").image_pull_policy == "IfNotPresent"
    cm = KubernetesContainerManager(cluster_name="team-a")
    assert cm.prefix == "team-a" and KubernetesContainerManager().prefix == "clipper"
    with pytest.raises(ClipperException, match="call ClipperConnection.connect"):
        cm.get_query_addr()
    with pytest.raises(ClipperException, match="num_frontend_replicas must be"):
        ClipperConnection(cm).start_clipper(num_frontend_replicas=0)
    proxied = KubernetesContainerManager(cluster_name="team-a",
                                         kubernetes_proxy_addr="127.0.0.1:8001")
    assert proxied.get_query_addr() == (
        "127.0.0.1:8001/api/v1/namespaces/default/services/query-frontend-at-team-a:1337/proxy")
    assert proxied.get_admin_addr() == (
        "127.0.0.1:8001/api/v1/namespaces/default/services/mgmt-frontend-at-team-a:1338/proxy")
    assert proxied.get_metric_addr() == (
        "127.0.0.1:8001/api/v1/namespaces/default/services/metrics-at-team-a:1390/proxy")
