"""Where the `clipper` program and nats-server are.

The order is: the environment (CLIPPER_BIN, NATS_SERVER), then the paths the
build recorded in _build_info.py (when they still exist), then PATH.
"""
import os
import shutil
import sys

from .exceptions import ClipperException

try:
    from . import _build_info
except ImportError:  # a copy of the package without a build
    _build_info = None


def _recorded(name):
    value = getattr(_build_info, name, "") if _build_info is not None else ""
    return value if value and os.access(value, os.X_OK) else None


def clipper_bin():
    env = os.environ.get("CLIPPER_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise ClipperException(
                "CLIPPER_BIN={} is not an executable file".format(env))
        return env
    found = _recorded("CLIPPER_BIN") or shutil.which("clipper")
    if found is None:
        raise ClipperException(
            "Cannot find the 'clipper' program: set CLIPPER_BIN, put it on PATH, "
            "or build the project (meson) so that clipper_admin records where it is")
    return found


def nats_server():
    """The nats-server to use, or None (then `clipper start` finds its own)."""
    env = os.environ.get("NATS_SERVER")
    if env and os.access(env, os.X_OK):
        return env
    return _recorded("NATS_SERVER") or shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server")
         if os.access(p, os.X_OK)), None)


def runtime_python_version():
    """The Python "major.minor" the replicas embed, when the build says so."""
    value = getattr(_build_info, "PYTHON_VERSION", "") if _build_info else ""
    return value or None


def local_python_version():
    return "{}.{}".format(sys.version_info[0], sys.version_info[1])
