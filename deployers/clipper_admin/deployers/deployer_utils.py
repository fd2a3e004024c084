"""Clipper's helper for custom deployers: save a function where
ClipperConnection.build_model (model_data_path) reads it.

    path = save_python_function(name, func)
    clipper_conn.build_and_deploy_model(name, version, input_type, path, base_image)

The directory holds func.pkl, serialized exactly as deployers.python does it
(cloudpickle, with the modules the function uses from outside the Python
installation pickled by value). The caller removes it when done.
"""
import logging
import os
import tempfile

from .python import serialize_function

logger = logging.getLogger(__name__)

PREDICT_FILE = "func.pkl"


def save_python_function(name, func):
    """Serializes func into a new temporary directory; returns its path."""
    path = os.path.abspath(tempfile.mkdtemp(suffix="-clipper-{}".format(name)))
    with open(os.path.join(path, PREDICT_FILE), "wb") as f:
        f.write(serialize_function(func))
    logger.info("Saved the function of model %s to %s", name, path)
    return path
