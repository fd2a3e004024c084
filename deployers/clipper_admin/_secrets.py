"""A cluster's secrets on this host, for the container managers that run
nats-server themselves (docs/security.md): `clipper creds init` makes (or
keeps) the CA, nats-server's certificate, an identity per actor role and
the operator's, in <data_dir>/secrets, and nats-server's part of them in
<data_dir>/nats (certificate, key, the TLS and accounts configuration naming
the files where they are mounted)."""
import os
import subprocess

from . import _locate
from .exceptions import ClipperException


def creds_init(data_dir, prefix, hosts, mount, who):
    """Runs `clipper creds init` for the cluster of prefix in data_dir (made
    0700 when missing), nats-server's certificate valid for hosts too, its
    configuration naming the files under mount. who names the cluster and
    the manager's argument in errors ("cluster x; choose another with
    KubernetesContainerManager(data_dir=...)")."""
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        raise ClipperException("Cannot create the data directory {} of {} (its secrets): "
                               "{}".format(data_dir, who, e))
    args = [_locate.clipper_bin(), "creds", "init", "--data-dir", data_dir, "--prefix", prefix,
            "--secrets-mount", mount]
    for host in hosts:
        args += ["--tls-host", host]
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ClipperException("Cannot run {}: {}".format(" ".join(args), e))
    if r.returncode != 0:
        raise ClipperException(
            "Cannot make the secrets of {} in {} ({} exited with code {}): {}".format(
                who, data_dir, " ".join(args[:3]), r.returncode, r.stderr.strip()))


def creds_file(data_dir, identity):
    """The credential file of a built-in identity (a role's name, or
    "operator")."""
    return os.path.join(data_dir, "secrets", "creds", identity + ".creds")


def ca_file(data_dir):
    return os.path.join(data_dir, "secrets", "ca.pem")


def read_text(path, what):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise ClipperException("Cannot read {} {}: {}".format(what, path, e))
