"""Deploy PySpark models to Clipper.

The model is saved with PySpark's own API (``model.save(path)`` for
``pyspark.ml`` models, ``model.save(sc, path)`` for ``pyspark.mllib``
models) and its class recorded; the function ``func(spark, model, inputs)``
is cloudpickled as for Python closures. Both travel over the bus as one
artifact, a gzip'd tar of ``func.pkl``, ``metadata.json`` and
``pyspark_model_data/`` (Clipper's file names). A replica running the
"pyspark" runtime starts one SparkSession in local mode, loads the model
once with its class's ``load``, reports ready, and then calls
``func(spark, model, inputs)`` once per batch; the function returns one
string per input. Inputs arrive as for closures (numpy arrays for numeric
types, ``bytes`` for strings).

The replicas' Python needs pyspark, and their host a Java runtime.
"""
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile

from ..exceptions import ClipperException
from ..clipper_admin import validate_pkgs_to_install
from .python import _check_python_version, pickled_with, serialize_function

logger = logging.getLogger(__name__)

PYSPARK_RUNTIME = "pyspark"
MODEL_DIR = "pyspark_model_data"


def _model_api(pyspark_model):
    """("ml" or "mllib", the model's class as "module.Name")."""
    cls = type(pyspark_model)
    qualified = "{}.{}".format(cls.__module__, cls.__qualname__)
    for api in ("ml", "mllib"):
        if any(c.__module__.startswith("pyspark.{}.".format(api)) for c in cls.__mro__):
            if "<locals>" in cls.__qualname__:
                raise ClipperException(
                    "pyspark_model's class {} is defined inside a function: the replicas "
                    "load the model by importing its class".format(qualified))
            return api, qualified
    raise ClipperException(
        "pyspark_model must be a pyspark.ml or pyspark.mllib model, got a {}".format(qualified))


def _save_model(pyspark_model, api, sc, path):
    if api == "mllib" and sc is None:
        raise ClipperException(
            "sc must be the SparkContext of a pyspark.mllib model (its save needs it)")
    try:
        if api == "ml":
            pyspark_model.save(path)
        else:
            pyspark_model.save(sc, path)
    except Exception as e:  # noqa: BLE001 - Spark's errors are many kinds
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClipperException("Cannot save the PySpark model with its save(): {}".format(first))


def serialize_model(func, pyspark_model, sc):
    """The artifact: a gzip'd tar of func.pkl, metadata.json and the model
    as Spark saved it."""
    api, model_class = _model_api(pyspark_model)
    func_data = serialize_function(func)
    tmp = tempfile.mkdtemp(prefix="clipper-pyspark-")
    try:
        _save_model(pyspark_model, api, sc, os.path.join(tmp, MODEL_DIR))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in (("func.pkl", func_data),
                               ("metadata.json", json.dumps(
                                   {"model_class": model_class, "api": api}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            tar.add(os.path.join(tmp, MODEL_DIR), arcname=MODEL_DIR)
        return buf.getvalue()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def create_endpoint(clipper_conn,
                    name,
                    input_type,
                    func,
                    pyspark_model,
                    sc,
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
    """Registers an app, deploys the PySpark model as version `version` of
    model `name`, and links the two (Clipper's signature).

    func(spark, model, inputs) takes the replica's SparkSession, the loaded
    model and a batch of inputs and returns one string per input.
    pyspark_model is a pyspark.ml or pyspark.mllib model; sc the
    SparkContext (needed to save a pyspark.mllib model). The other
    parameters are those of deployers.python.create_endpoint.
    """
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_pyspark_model(clipper_conn, name, version, input_type, func, pyspark_model, sc,
                         base_image, labels, registry, num_replicas, batch_size,
                         pkgs_to_install, resources=resources)
    clipper_conn.link_model_to_app(name, name)


def deploy_pyspark_model(clipper_conn,
                         name,
                         version,
                         input_type,
                         func,
                         pyspark_model,
                         sc,
                         base_image="default",
                         labels=None,
                         registry=None,
                         num_replicas=1,
                         batch_size=-1,
                         pkgs_to_install=None,
                         ready_timeout_s=None,
                         resources=None):
    """Deploys a PySpark model and its function as version `version` of
    model `name`, and waits until a replica has started its SparkSession
    and loaded the model (ready_timeout_s, default
    clipper_conn.replica_ready_timeout_s). A replica that cannot load the
    model makes this raise ClipperException with its cause.
    """
    _check_python_version()
    pkgs = validate_pkgs_to_install(pkgs_to_install)
    if not callable(func):
        raise ClipperException("func must be callable as func(spark, model, inputs)")
    if registry is not None:
        logger.info("registry %s is unused: no image is built", registry)
    data = serialize_model(func, pyspark_model, sc)
    container_name = PYSPARK_RUNTIME if base_image == "default" else base_image
    py_version, cp_version = pickled_with()
    clipper_conn.deploy_artifact(name, str(version), input_type, data, container_name,
                                 runtime=PYSPARK_RUNTIME, labels=labels,
                                 num_replicas=num_replicas, batch_size=batch_size,
                                 ready_timeout_s=ready_timeout_s, pkgs_to_install=pkgs,
                                 python_version=py_version, cloudpickle_version=cp_version,
                                 resources=resources)
    logger.info("PySpark model saved")
