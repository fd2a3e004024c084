"""clipper_admin: Clipper 0.4's Python API for the Clipper-over-NATS cluster.

ClipperConnection manages a cluster through a container manager;
LocalContainerManager runs one as processes on this machine around a NATS
bus, DockerContainerManager as containers on a Docker (or podman) engine,
KubernetesContainerManager as pods on a Kubernetes cluster.
deployers.python deploys Python closures. Admin commands travel over NATS
through the C extension clipper_admin._bus.
"""
from __future__ import absolute_import

from .version import __version__, __registry__  # noqa: F401
from .exceptions import ClipperException, UnconnectedException  # noqa: F401
from .clipper_admin import (  # noqa: F401
    ClipperConnection, CLIPPER_TEMP_DIR, DEFAULT_PREDICTION_CACHE_SIZE_BYTES, DEFAULT_LABEL)
from .local_container_manager import LocalContainerManager  # noqa: F401
from .docker_container_manager import DockerContainerManager  # noqa: F401
from .kubernetes_container_manager import KubernetesContainerManager  # noqa: F401
from . import deployers  # noqa: F401

__all__ = [
    "ClipperConnection", "LocalContainerManager", "DockerContainerManager",
    "KubernetesContainerManager", "ClipperException",
    "UnconnectedException",
    "deployers", "__version__", "__registry__", "CLIPPER_TEMP_DIR",
    "DEFAULT_PREDICTION_CACHE_SIZE_BYTES", "DEFAULT_LABEL",
]
