"""Deploy pure Python functions (closures) to Clipper.

The function is cloudpickled here and uploaded over the bus; a replica
(an embedded CPython running the "python-closure" runtime) loads it and
calls it with a whole batch of inputs as a list-like (numpy arrays for
numeric types, bytes objects for strings), exactly as Clipper's Python
closure container did. It must return a list of strings, one per input.

No Docker image is built per model; registry is accepted for
compatibility and unused. base_image is the image replica containers run
on a DockerContainerManager cluster: "default" (or one of Clipper's stock
names) is the python-closure runtime's image, anything else an image of
yours built FROM it (with packages baked in by `RUN pip install ...`).
Replicas that run as processes (LocalContainerManager) ignore it.

pkgs_to_install travels with the model version: each replica pip-installs
the list before it loads the function. Modules the function uses that are
not installed packages (a helpers.py next to the script) are captured with
it, pickled by value (see clipper_admin._modules). The Python and
cloudpickle versions the function was pickled with are recorded too, so a
replica that runs other versions refuses it with a message naming both.
"""
import io
import logging
import pickle
import sys

import cloudpickle

from .. import _locate, _modules
from ..clipper_admin import PYTHON_CLOSURE_RUNTIME, validate_pkgs_to_install
from ..exceptions import ClipperException

logger = logging.getLogger(__name__)

# Pickle protocol of the function: 4 loads in every Python 3 the replica
# may embed (3.4+); the replica must run the same minor Python as the
# caller for cloudpickled code objects to load, which deploy checks.
PICKLE_PROTOCOL = 4


def serialize_function(func):
    """The bytes a replica loads: cloudpickle of func, with the local
    modules it uses pickled by value (they do not exist on the replicas)."""
    buf = io.BytesIO()
    try:
        with _modules.pickled_by_value(func, cloudpickle):
            cloudpickle.CloudPickler(buf, protocol=PICKLE_PROTOCOL).dump(func)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise ClipperException(
            "Cannot serialize the function with cloudpickle: {}. Everything the "
            "function captures must be picklable.".format(e))
    return buf.getvalue()


def pickled_with():
    """(python_version, cloudpickle_version) recorded with the artifact."""
    return ("{}.{}.{}".format(*sys.version_info[:3]),
            str(getattr(cloudpickle, "__version__", "")))


def _check_python_version():
    runtime = _locate.runtime_python_version()
    local = _locate.local_python_version()
    if runtime is not None and runtime != local:
        raise ClipperException(
            "Python closures can only be deployed from Python {runtime}: the replicas "
            "embed Python {runtime} and a cloudpickled function does not load across "
            "Python versions (this is Python {local})".format(runtime=runtime, local=local))


def create_endpoint(clipper_conn,
                    name,
                    input_type,
                    func,
                    default_output="None",
                    version=1,
                    slo_micros=3000000,
                    labels=None,
                    registry=None,
                    base_image="default",
                    num_replicas=1,
                    batch_size=-1,
                    pkgs_to_install=None,
                    resources=None):
    """Registers an app, deploys the function as a model and links them.

    Parameters
    ----------
    clipper_conn : :py:meth:`clipper_admin.ClipperConnection`
        A connection to a running cluster.
    name : str
        The name of both the application and the model.
    input_type : str
        One of "integers", "floats", "doubles", "bytes", or "strings".
    func : function
        Takes a list of inputs, returns a list of strings of the same length.
    default_output : str, optional
        Returned when no prediction is available within slo_micros.
    version : str, optional
        The model version (any object; str(version) is used).
    slo_micros : int, optional
        The application's latency objective in microseconds.
    labels : list(str), optional
    registry : str, optional
        Unused (no image is built).
    base_image : str, optional
        The image replica containers run (DockerContainerManager,
        KubernetesContainerManager); "default" means the python-closure
        runtime's image.
    num_replicas : int, optional
    batch_size : int, optional
        A fixed batch size, or -1 for adaptive batching.
    pkgs_to_install : list(str), optional
        pip requirement specs (e.g. "pyfiglet==1.0.2", or the path of a
        wheel the replicas' hosts can read) that each replica installs
        before loading the function, into a directory shared by the
        replicas of the same list on a host. A package pip cannot install
        fails the deploy with pip's error.
    resources : dict, optional
        What each replica asks for and may use, as Kubernetes writes it:
        {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {...}}
        (see ClipperConnection.deploy_model).
    """
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_python_closure(clipper_conn, name, version, input_type, func, base_image,
                          labels, registry, num_replicas, batch_size, pkgs_to_install,
                          resources=resources)
    clipper_conn.link_model_to_app(name, name)


def deploy_python_closure(clipper_conn,
                          name,
                          version,
                          input_type,
                          func,
                          base_image="default",
                          labels=None,
                          registry=None,
                          num_replicas=1,
                          batch_size=-1,
                          pkgs_to_install=None,
                          ready_timeout_s=None,
                          resources=None):
    """Deploys a Python function as version `version` of model `name`.

    Uploads the cloudpickled function over the bus, registers the version
    (which becomes the model's current version), and waits until a replica
    is ready (ready_timeout_s, default clipper_conn.replica_ready_timeout_s,
    60 s). A replica that cannot load or start the function makes this
    raise ClipperException with the replica's cause (for example the
    module an import could not find) as soon as it reports it.

    Parameters are those of :py:func:`create_endpoint`.
    """
    _check_python_version()
    pkgs = validate_pkgs_to_install(pkgs_to_install)
    if registry is not None:
        logger.info("registry %s is unused: no image is built", registry)
    data = serialize_function(func)
    container_name = PYTHON_CLOSURE_RUNTIME if base_image == "default" else base_image
    py_version, cp_version = pickled_with()
    clipper_conn.deploy_artifact(name, str(version), input_type, data, container_name,
                                 runtime=PYTHON_CLOSURE_RUNTIME, labels=labels,
                                 num_replicas=num_replicas, batch_size=batch_size,
                                 ready_timeout_s=ready_timeout_s, pkgs_to_install=pkgs,
                                 python_version=py_version, cloudpickle_version=cp_version,
                                 resources=resources)
    logger.info("Python closure saved")
