"""A cluster on several hosts, brought up over SSH from an inventory file.

    python3 -m clipper_admin.hosts up INVENTORY          start what is missing or changed
    python3 -m clipper_admin.hosts status INVENTORY [--json]
    python3 -m clipper_admin.hosts down INVENTORY        stop everything (idempotent)
    python3 -m clipper_admin.hosts add-host INVENTORY NAME
    python3 -m clipper_admin.hosts drain INVENTORY NAME
    python3 -m clipper_admin.hosts upgrade INVENTORY     rolling restart, host by host
    (every command also takes --timeout S, the limit of each wait, default 120)

It runs the OpenSSH programs (ssh, scp) as subprocesses, as the operator
would; every host needs a POSIX sh, coreutils, util-linux's setsid, the
clipper program and, on nats hosts, nats-server. The operator's machine needs
this package (with its C extension) and the clipper program (env CLIPPER_BIN,
else the build's, else `clipper` on PATH) to make the cluster's secrets, and
must reach the nats hosts' client port (4222) and monitoring port (8222).

Inventory (TOML)
----------------
    cluster = "prod"                     # required: names the cluster and is its subject
                                         # prefix (letters, digits, _ and -)
    data_dir = "~/.clipper/hosts/prod"   # on the operator's machine: the cluster's
                                         # secrets, made here (default ~/.clipper/hosts/<cluster>)
    remote_dir = "/var/lib/clipper/prod" # required (here or per host): on each host;
                                         # "~" or "~/..." is the ssh user's home there
    clipper = "clipper"                  # the clipper program on the hosts (default clipper)
    nats_server = "nats-server"          # nats-server on the nats hosts (default nats-server;
                                         # 2.10 or later: docs/operation.md)
    ssh_config = ""                      # optional: ssh -F FILE (also scp -F FILE)
    ssh_options = ["-o", "User=clipper"] # optional: more options for ssh and scp
    nats_port = 4222                     # optional: client, route and monitoring ports
    nats_cluster_port = 6222
    nats_monitor_port = 8222
    frontend_options = ["--cache-size", "0"]  # optional: more options for every
                                         # frontend (`clipper run frontend --help`)

    [[hosts]]
    name = "h1"                          # required: [a-z0-9-], unique
    address = "10.200.1.11"              # required: what other hosts and clients connect to
    ssh = "h1"                           # ssh destination (default: address)
    roles = ["nats", "admin", "router", "frontend", "manager"]
    remote_dir = "/srv/clipper"          # optional: this host's own remote_dir
    http_port = 1337                     # frontend: queries (HTTP, on 0.0.0.0)
    metrics_port = 1390                  # frontend: Prometheus metrics (on 0.0.0.0)
    admin_port = 1338                    # admin: management REST (on 127.0.0.1)
    frontend_options = []                # frontend: its own options, instead of the
                                         # top-level list (a change restarts it)

Rules: exactly 1 or 3 hosts with role nats (3 make a NATS cluster with routes
over TLS and JetStream replicated: state bucket and artifact stream R3); at
least one host with each of admin, router, frontend and manager. Two routers
on two hosts are the normal choice: one leads, the other stands by.
Anything else (a missing or unknown field, a wrong type, a duplicate name or
address) is refused with a message naming the field, before any host is
touched.

What runs where
---------------
Each part runs under `clipper run --supervised` (nats-server under its
`exec` mode), started detached with setsid, its output in
<remote_dir>/logs/<part>.log, its supervisor's pid in <remote_dir>/run/<part>.pid
and its exact command line (and a digest of the files it reads) in
<remote_dir>/run/<part>.cmd: `up` restarts a part whose command line or
files changed and leaves the others ("unchanged"). Every process gets
CLIPPER_HOST_NAME=<host name> (the name the supervisors, routers and
managers report) and CLIPPER_TLS_NAME=nats-at-<cluster> (the name in
nats-server's certificate, which carries every nats host's address too;
replicas inherit both). The nats URL list of each host starts with its own
server (or, on hosts without one, a rotation of them).

Secrets: `clipper creds init` in data_dir makes the CA, nats-server's
certificate and an identity per role; each host gets only what it runs
(ca.pem, <role>.creds, supervisor.creds, replica.creds on manager hosts,
nats-server's certificate, key and accounts on nats hosts), by scp, 0600 in
a 0700 directory; no secret is ever on a command line.

After `up`, data_dir/cluster.json tells a client how to join:

    info = json.load(open(DATA + "/cluster.json"))
    Bus(info["nats_url"], prefix=info["prefix"], creds=info["creds"],
        tls_ca=info["tls_ca"], tls_name=info["tls_name"])
    cm = LocalContainerManager(**info["local_container_manager"])  # joins, starts nothing
    conn = ClipperConnection(cm); conn.connect()
    python_deployer.deploy_python_closure(conn, ...)

Exit status: 0 when done (status: healthy), 1 when a step failed (the
message names the host and the step), 2 for a bad inventory or usage.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

ROLES = ("nats", "admin", "router", "manager", "frontend")
START_ORDER = ("nats", "admin", "router", "manager", "frontend")
ACTORS = ("admin", "router", "manager", "frontend")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CLUSTER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STOP_WAIT_S = 20
SUPERVISOR_GRACE_MS = 15000
DEFAULT_TIMEOUT_S = 120.0

TOP_FIELDS = {"cluster", "data_dir", "remote_dir", "clipper", "nats_server", "ssh_config",
              "ssh_options", "nats_port", "nats_cluster_port", "nats_monitor_port", "hosts",
              "frontend_options"}
HOST_FIELDS = {"name", "address", "ssh", "roles", "remote_dir", "http_port", "metrics_port",
               "admin_port", "frontend_options"}


class InventoryError(Exception):
    """A bad inventory: nothing was touched."""


class StepError(Exception):
    """A step failed on a host (host None: on the operator's machine)."""

    def __init__(self, host, step, msg):
        super().__init__(msg)
        self.host, self.step, self.msg = host, step, msg

    def __str__(self):
        where = "[{}] ".format(self.host) if self.host else ""
        return "{}{}: {}".format(where, self.step, self.msg)


# ---- output ------------------------------------------------------------------

_print_lock = threading.Lock()


def say(msg):
    with _print_lock:
        sys.stdout.write(msg + "\n")
        sys.stdout.flush()


def err(msg):
    with _print_lock:
        sys.stdout.flush()
        sys.stderr.write("error: " + msg + "\n")
        sys.stderr.flush()


def hsay(host, part, msg):
    say("[{}] {}: {}".format(host.name if hasattr(host, "name") else host, part, msg))


# ---- the inventory -------------------------------------------------------------

class Host(object):
    def __init__(self, name, address, ssh, roles, remote_dir, http_port, metrics_port,
                 admin_port, index):
        self.name, self.address, self.ssh, self.roles = name, address, ssh, roles
        self.remote_dir_raw = remote_dir
        self.http_port, self.metrics_port, self.admin_port = http_port, metrics_port, admin_port
        self.index = index
        self.frontend_options = []  # more options of its frontend (inventory)
        self.rd = None             # remote_dir made absolute on the host (preflight)
        self.facts = {}            # what preflight found

    def __repr__(self):
        return "Host({})".format(self.name)


class Inventory(object):
    pass


def _field(where, key):
    return "{}.{}".format(where, key) if where else key


def _want_str(d, key, where, required=False, default=None, allow_empty=False):
    if key not in d:
        if required:
            raise InventoryError("{}: missing (required)".format(_field(where, key)))
        return default
    v = d[key]
    if not isinstance(v, str):
        raise InventoryError("{}: must be a string, not {!r}".format(_field(where, key), v))
    if not v and not allow_empty:
        raise InventoryError("{}: must not be empty".format(_field(where, key)))
    return v


def _want_port(d, key, where, default):
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        raise InventoryError("{}: must be a port number 1..65535, not {!r}".format(
            _field(where, key), v))
    return v


def _want_str_list(d, key, where, default):
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, list) or not all(isinstance(o, str) for o in v):
        raise InventoryError("{}: must be a list of strings, not {!r}".format(
            _field(where, key), v))
    return list(v)


def load_inventory(path):
    """Reads and checks the inventory; InventoryError names the field."""
    if tomllib is None:
        raise InventoryError("reading the inventory needs Python 3.11 (tomllib)")
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except OSError as e:
        raise InventoryError("cannot read {}: {}".format(path, e.strerror or e))
    except tomllib.TOMLDecodeError as e:
        raise InventoryError("{} is not valid TOML: {}".format(path, e))
    return check_inventory(d, path)


def check_inventory(d, path="inventory"):
    unknown = sorted(set(d) - TOP_FIELDS)
    if unknown:
        raise InventoryError("{}: unknown field (fields: {})".format(
            unknown[0], ", ".join(sorted(TOP_FIELDS))))
    inv = Inventory()
    inv.path = path
    inv.cluster = _want_str(d, "cluster", "", required=True)
    if not CLUSTER_RE.match(inv.cluster):
        raise InventoryError("cluster: {!r} must be 1 to 64 letters, digits, '_' or '-' "
                             "(it is the subject prefix)".format(inv.cluster))
    inv.prefix = inv.cluster
    inv.data_dir = os.path.abspath(os.path.expanduser(_want_str(
        d, "data_dir", "", default="~/.clipper/hosts/" + inv.cluster)))
    top_rd = _want_str(d, "remote_dir", "")
    inv.clipper = _want_str(d, "clipper", "", default="clipper")
    inv.nats_server = _want_str(d, "nats_server", "", default="nats-server")
    inv.ssh_config = _want_str(d, "ssh_config", "", default="", allow_empty=True)
    opts = d.get("ssh_options", [])
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        raise InventoryError("ssh_options: must be a list of strings, not {!r}".format(opts))
    inv.ssh_options = list(opts)
    inv.frontend_options = _want_str_list(d, "frontend_options", "", [])
    inv.nats_port = _want_port(d, "nats_port", "", 4222)
    inv.cluster_port = _want_port(d, "nats_cluster_port", "", 6222)
    inv.monitor_port = _want_port(d, "nats_monitor_port", "", 8222)
    if len({inv.nats_port, inv.cluster_port, inv.monitor_port}) != 3:
        raise InventoryError("nats_port, nats_cluster_port, nats_monitor_port: must differ")
    hosts = d.get("hosts")
    if hosts is None:
        raise InventoryError("hosts: missing (required: one [[hosts]] table per host)")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, dict) for h in hosts):
        raise InventoryError("hosts: must be a non-empty array of tables ([[hosts]])")
    inv.hosts = []
    names, addrs = {}, {}
    for i, h in enumerate(hosts):
        where = "hosts[{}]".format(i)
        if isinstance(h.get("name"), str) and NAME_RE.match(h["name"]):
            where = "hosts[{}] ({})".format(i, h["name"])
        unknown = sorted(set(h) - HOST_FIELDS)
        if unknown:
            raise InventoryError("{}: unknown field (fields: {})".format(
                _field(where, unknown[0]), ", ".join(sorted(HOST_FIELDS))))
        name = _want_str(h, "name", "hosts[{}]".format(i), required=True)
        if not NAME_RE.match(name):
            raise InventoryError("{}: {!r} must be 1 to 63 of a-z, 0-9 and '-', starting "
                                 "with a letter or digit".format(_field(where, "name"), name))
        where = "hosts[{}] ({})".format(i, name)
        if name in names:
            raise InventoryError("{}: duplicate name {!r} (also hosts[{}])".format(
                _field(where, "name"), name, names[name]))
        names[name] = i
        addr = _want_str(h, "address", where, required=True)
        if re.search(r"[\s/,]", addr):
            raise InventoryError("{}: {!r} is not a host address".format(
                _field(where, "address"), addr))
        if addr in addrs:
            raise InventoryError("{}: duplicate address {!r} (also host {})".format(
                _field(where, "address"), addr, addrs[addr]))
        addrs[addr] = name
        ssh = _want_str(h, "ssh", where, default=addr)
        roles = h.get("roles")
        if roles is None:
            raise InventoryError("{}: missing (required: some of {})".format(
                _field(where, "roles"), ", ".join(ROLES)))
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise InventoryError("{}: must be a non-empty list of role names ({})".format(
                _field(where, "roles"), ", ".join(ROLES)))
        for r in roles:
            if r not in ROLES:
                raise InventoryError("{}: unknown role {!r} (roles: {})".format(
                    _field(where, "roles"), r, ", ".join(ROLES)))
        if len(set(roles)) != len(roles):
            raise InventoryError("{}: a role is listed twice".format(_field(where, "roles")))
        rd = _want_str(h, "remote_dir", where, default=top_rd)
        if rd is None:
            raise InventoryError("remote_dir: missing (required, at the top or in every "
                                 "host; first missing in {})".format(where))
        if not (rd.startswith("/") or rd == "~" or rd.startswith("~/")) or re.search(r"[\s'\"\\$`]", rd):
            raise InventoryError("{}: {!r} must be an absolute path or start with ~/, "
                                 "without spaces or quotes".format(_field(where, "remote_dir"), rd))
        host = Host(name, addr, ssh, [r for r in ROLES if r in roles], rd.rstrip("/") or "/",
                    _want_port(h, "http_port", where, 1337),
                    _want_port(h, "metrics_port", where, 1390),
                    _want_port(h, "admin_port", where, 1338), i)
        if "frontend" in host.roles and host.http_port == host.metrics_port:
            raise InventoryError("{}: http_port and metrics_port must differ".format(where))
        host.frontend_options = _want_str_list(h, "frontend_options", where,
                                               inv.frontend_options)
        inv.hosts.append(host)
    nats = [h for h in inv.hosts if "nats" in h.roles]
    if len(nats) not in (1, 3):
        raise InventoryError(
            "hosts[].roles: {} hosts have role nats ({}); there must be exactly 1 or 3 (a "
            "NATS cluster needs a majority of 3 to keep JetStream writable)".format(
                len(nats), ", ".join(h.name for h in nats) or "none"))
    for role in ACTORS:
        if not any(role in h.roles for h in inv.hosts):
            raise InventoryError("hosts[].roles: no host has role {} (at least one must)".format(
                role))
    inv.nats_hosts = nats
    inv.replicas = 3 if len(nats) == 3 else 1
    inv.tls_name = "nats-at-" + inv.cluster
    inv.by_name = {h.name: h for h in inv.hosts}
    inv.nats_urls = ["tls://{}:{}".format(h.address, inv.nats_port) for h in nats]
    inv.nats_url = ",".join(inv.nats_urls)
    return inv


def host_nats_urls(inv, host):
    """The nats URL list host's processes use: its own server first, else a
    rotation of them (the bus tries them in order)."""
    urls = inv.nats_urls
    if host in inv.nats_hosts:
        k = inv.nats_hosts.index(host)
    else:
        k = host.index % len(urls)
    return urls[k:] + urls[:k]


# ---- ssh ---------------------------------------------------------------------

def _ssh_base(inv, prog):
    argv = [prog]
    if inv.ssh_config:
        argv += ["-F", os.path.expanduser(inv.ssh_config)]
    argv += list(inv.ssh_options)
    argv += ["-o", "BatchMode=yes"]
    if not inv.ssh_config:
        argv += ["-o", "ConnectTimeout=10"]
    return argv


def _short(text, n=15):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return "\n    ".join(lines[-n:])


def ssh_run(inv, host, step, script, timeout=120, check=True):
    """Runs the sh script on host (its text on ssh's stdin); returns stdout.
    StepError(host, step) when ssh cannot reach it or the script fails."""
    argv = _ssh_base(inv, "ssh") + ["-T", host.ssh, "sh -s"]
    try:
        p = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StepError(host.name, step, "ssh {} did not finish within {:.0f} s".format(
            host.ssh, timeout))
    except OSError as e:
        raise StepError(host.name, step, "cannot run ssh: {}".format(e))
    if p.returncode == 255:
        raise StepError(host.name, step, "cannot reach {} over ssh: {}".format(
            host.ssh, _short(p.stderr) or "ssh exited with 255"))
    if check and p.returncode != 0:
        raise StepError(host.name, step, "failed on the host (exit {}): {}".format(
            p.returncode, _short(p.stderr + "\n" + p.stdout)))
    return p.stdout


def scp_to(inv, host, step, files, remote_dir, timeout=120):
    argv = _ssh_base(inv, "scp") + ["-q", "-p"] + list(files) + [
        "{}:{}/".format(host.ssh, remote_dir)]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StepError(host.name, step, "scp to {} did not finish within {:.0f} s".format(
            host.ssh, timeout))
    if p.returncode != 0:
        raise StepError(host.name, step, "scp to {}:{} failed (exit {}): {}".format(
            host.ssh, remote_dir, p.returncode, _short(p.stderr)))


def q(s):
    return shlex.quote(str(s))


# The shell functions every remote script starts with. RD is the host's
# remote_dir; a process is "ours" when it lives and its command line names
# something under RD (pids from pid files are checked so, never trusted).
SH_LIB = r"""
cmdline_of() { tr '\000' ' ' < "/proc/$1/cmdline" 2>/dev/null; }
ours() {
  case "$1" in ''|*[!0-9]*) return 1;; esac
  [ -d "/proc/$1" ] || return 1
  case "$(sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" in
    Z|X|'') return 1;;
  esac
  case "$(cmdline_of "$1")" in *"$RD/"*) return 0;; esac
  return 1
}
pid_of() { head -n 1 "$RD/run/$1.pid" 2>/dev/null; }
check() {  # part want -> unchanged PID | changed PID | dead | absent
  p=$(pid_of "$1")
  if ours "$p"; then
    if [ "$(cat "$RD/run/$1.cmd" 2>/dev/null)" = "$2" ]; then echo "unchanged $p"; else echo "changed $p"; fi
  elif [ -e "$RD/run/$1.pid" ]; then echo "dead"
  else echo "absent"; fi
}
start() {  # part want argv... -> started PID | fail WHY (+ log lines)
  c=$1; want=$2; shift 2
  mkdir -p "$RD/run" "$RD/logs" || { echo "fail cannot create $RD/run"; return; }
  printf '%s\n' "$want" > "$RD/run/$c.cmd.tmp" && mv -f "$RD/run/$c.cmd.tmp" "$RD/run/$c.cmd"
  rm -f "$RD/run/$c.pid"
  printf '%s clipper_admin.hosts: starting %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$c" >> "$RD/logs/$c.log"
  if ! setsid -f sh -c 'echo $$ > "$0"; exec "$@"' "$RD/run/$c.pid" "$@" >> "$RD/logs/$c.log" 2>&1 < /dev/null; then
    echo "fail setsid could not start it"; return
  fi
  i=0
  while [ ! -s "$RD/run/$c.pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
  p=$(pid_of "$c")
  if [ -z "$p" ]; then echo "fail no pid file $RD/run/$c.pid after 5 s"; return; fi
  sleep 0.5
  if ours "$p"; then echo "started $p"; return; fi
  echo "fail it exited at once (log $RD/logs/$c.log)"
  tail -n 12 "$RD/logs/$c.log" | sed 's/^/log /'
}
stop() {  # wait_s part... -> per part: stopped PID | killed PID | notrunning
  w=$1; shift
  pids=""
  for c in "$@"; do
    p=$(pid_of "$c")
    if ours "$p"; then kill -TERM "$p" 2>/dev/null; pids="$pids $c:$p"
    else echo "notrunning $c"; rm -f "$RD/run/$c.pid"; fi
  done
  i=0
  while [ -n "$pids" ] && [ $i -lt $((w * 10)) ]; do
    left=""
    for cp in $pids; do ours "${cp#*:}" && left="$left $cp"; done
    [ -z "$left" ] && break
    sleep 0.1; i=$((i+1))
  done
  for cp in $pids; do
    c=${cp%%:*}; p=${cp#*:}
    if ours "$p"; then kill -KILL "$p" 2>/dev/null; echo "killed $c $p"; else echo "stopped $c $p"; fi
    rm -f "$RD/run/$c.pid"
  done
}
leftovers() {  # SIGKILL every process whose command line names RD
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    case "$(cmdline_of "$p")" in *"$RD/"*) kill -KILL "$p" 2>/dev/null && echo "leftover $p";; esac
  done
}
"""


def remote_script(host, body):
    return "RD={}\n{}\n{}\n".format(q(host.rd), SH_LIB, body)


# ---- local: secrets and files ---------------------------------------------------

def local_clipper():
    from . import _locate
    from .exceptions import ClipperException
    try:
        return _locate.clipper_bin()
    except ClipperException as e:
        raise StepError(None, "secrets", str(e))


def make_secrets(inv):
    """clipper creds init in data_dir (keeps what is there)."""
    os.makedirs(inv.data_dir, mode=0o700, exist_ok=True)
    mount = inv.nats_hosts[0].rd + "/secrets/nats"
    argv = [local_clipper(), "creds", "init", "--data-dir", inv.data_dir, "--prefix",
            inv.prefix, "--secrets-mount", mount, "--tls-host", inv.tls_name]
    for h in inv.nats_hosts:
        argv += ["--tls-host", h.address]
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=120)
    if p.returncode != 0:
        raise StepError(None, "secrets", "{} failed (exit {}): {}".format(
            " ".join(argv[:3]), p.returncode, _short(p.stderr + p.stdout)))
    # nats-server.auth.conf names its files under the mount: one copy per
    # nats host, for the host's own remote_dir.
    with open(secret_path(inv, "nats", "nats-server.auth.conf")) as f:
        auth = f.read()
    for h in inv.nats_hosts:
        d = secret_path(inv, "hosts", h.name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        path = os.path.join(d, "nats-server.auth.conf")
        text = auth.replace('"{}/'.format(mount), '"{}/secrets/nats/'.format(h.rd))
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def secret_path(inv, *parts):
    return os.path.join(inv.data_dir, *parts)


def host_secret_files(inv, host):
    """[(local path, remote dir, name, mode)] of what host needs."""
    s = host.rd + "/secrets"
    out = [(secret_path(inv, "secrets", "ca.pem"), s, "ca.pem", "644")]
    roles = [r for r in ACTORS if r in host.roles] + ["supervisor"]
    if "manager" in host.roles:
        roles.append("replica")
    for r in roles:
        out.append((secret_path(inv, "secrets", "creds", r + ".creds"), s, r + ".creds", "600"))
    if "nats" in host.roles:
        for f in ("server.pem", "server.key"):
            out.append((secret_path(inv, "nats", f), s + "/nats", f, "600"))
        out.append((auth_conf(inv, host), s + "/nats", "nats-server.auth.conf", "600"))
    return out


def auth_conf(inv, host):
    """nats-server.auth.conf as host's nats-server reads it (make_secrets)."""
    return secret_path(inv, "hosts", host.name, "nats-server.auth.conf")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


# ---- what runs ---------------------------------------------------------------------

def max_payload():
    """The max_payload every nats-server of the product allows (cl_bus.h)."""
    from ._bus import MAX_PAYLOAD
    return MAX_PAYLOAD


def nats_conf(inv, host):
    rd = host.rd
    sec = rd + "/secrets"
    lines = [
        "# Written by clipper_admin.hosts for cluster {} (rewritten by `up`).".format(inv.cluster),
        'server_name: "{}"'.format(host.name),
        'listen: "{}:{}"'.format(host.address, inv.nats_port),
        'http: "{}:{}"'.format(host.address, inv.monitor_port),
        "# TLS for clients and the cluster's accounts (clipper creds init)",
        # (nats-server takes an include's path relative to this file's directory)
        'include "../secrets/nats/nats-server.auth.conf"',
        # A host cut off without a word (no FIN, no RST) is noticed by its
        # peers' pings: every 250 ms, two missed. A write to it blocks a
        # server's other work at most 500 ms (tests/fault/hosts_faults.py,
        # link-cut: with 1 s x 3 and 2 s the whole bus stalled for seconds).
        'ping_interval: "250ms"',
        "ping_max: 2",
        'write_deadline: "500ms"',
        "# inputs and outputs larger than the 1 MiB default (cl_bus.h CL_BUS_MAX_PAYLOAD)",
        "max_payload: {}".format(max_payload()),
        "# upgrade: clients leave a server in lame duck mode for the others",
        'lame_duck_duration: "30s"',
        'lame_duck_grace_period: "2s"',
        "jetstream {",
        '  store_dir: "{}/nats/js"'.format(rd),
    ]
    if host.facts.get("nats_sync_always"):
        lines.append("  # fsync every write (the lazy default lost acknowledged writes in "
                     "Jepsen's 2025 analysis)")
        lines.append("  sync_interval: always")
    lines.append("}")
    if len(inv.nats_hosts) == 3:
        others = [h for h in inv.nats_hosts if h is not host]
        lines += [
            "cluster {",
            '  name: "{}"'.format(inv.cluster),
            '  listen: "{}:{}"'.format(host.address, inv.cluster_port),
            "  routes: [{}]".format(", ".join(
                '"nats-route://{}:{}"'.format(h.address, inv.cluster_port) for h in others)),
            "  # routes over TLS, both ends showing a certificate of the cluster's CA",
            "  tls {",
            '    cert_file: "{}/nats/server.pem"'.format(sec),
            '    key_file: "{}/nats/server.key"'.format(sec),
            '    ca_file: "{}/ca.pem"'.format(sec),
            "    verify: true",
            "    timeout: 2",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def route_peers(routez):
    """The servers (their ids) a nats-server's /routez has routes to, or None
    when there is no answer. Not num_routes: nats-server 2.10 and later keep
    a pool of routes to each peer (pool_size, 3 by default, and one more per
    pinned account), so a complete cluster of 3 shows 8 routes where 2.9
    showed 2; the distinct remote_id are the peers on every version."""
    if not isinstance(routez, dict) or "_status" in routez:
        return None
    return {r.get("remote_id") for r in routez.get("routes") or [] if r.get("remote_id")}


def part_argv(inv, host, part):
    """(argv, inputs digest) of part on host."""
    s = host.rd + "/secrets"
    env = ["env", "CLIPPER_HOST_NAME=" + host.name, "CLIPPER_TLS_NAME=" + inv.tls_name]
    urls = host_nats_urls(inv, host)
    own = urls[0]
    sv = ["--supervisor-creds", s + "/supervisor.creds",
          "--stop-grace-ms", str(SUPERVISOR_GRACE_MS)]
    if host.facts.get("sv_nats"):
        # The supervisor reports to one server (a single URL needs no
        # --tls-name, which it does not take); it learns the others from it.
        sv += ["--supervisor-nats", own, "--supervisor-prefix", inv.prefix,
               "--supervisor-tls-ca", s + "/ca.pem"]
    sec_digest = [sha256_file(secret_path(inv, "secrets", "ca.pem")),
                  sha256_file(secret_path(inv, "secrets", "creds", "supervisor.creds"))]
    if part == "nats":
        conf = host.rd + "/nats/nats.conf"
        nats = [inv.nats_server, "-c", conf, "-P", host.rd + "/run/nats-server.pid"]
        inputs = digest(nats_conf(inv, host),
                        sha256_file(secret_path(inv, "nats", "server.pem")),
                        sha256_file(secret_path(inv, "nats", "server.key")),
                        sha256_file(auth_conf(inv, host)))
        if host.facts.get("exec"):
            own_url = "tls://{}:{}".format(host.address, inv.nats_port)
            argv = env + [inv.clipper, "run", "--supervised", "--supervisor-creds",
                          s + "/supervisor.creds", "--stop-grace-ms", str(SUPERVISOR_GRACE_MS),
                          "--supervisor-nats", own_url, "--supervisor-prefix", inv.prefix,
                          "--supervisor-tls-ca", s + "/ca.pem", "exec", "--name", "nats"] + nats
        else:
            # TODO(exec): this clipper has no `clipper run --supervised exec`;
            # nats-server runs unsupervised until it does (preflight checks).
            argv = env + nats
        return argv, digest(inputs, *sec_digest)
    actor = ["run", "--supervised"] + sv + [part, "--nats", ",".join(urls), "--prefix",
                                            inv.prefix, "--creds", s + "/" + part + ".creds",
                                            "--tls-ca", s + "/ca.pem", "--tls-name",
                                            inv.tls_name, "--state-replicas", str(inv.replicas)]
    sec_digest.append(sha256_file(secret_path(inv, "secrets", "creds", part + ".creds")))
    if part == "frontend":
        actor += ["--http-host", "0.0.0.0", "--http-port", str(host.http_port),
                  "--metrics-port", str(host.metrics_port)] + host.frontend_options
    elif part == "admin":
        actor += ["--http-port", str(host.admin_port)]
    elif part == "manager":
        if host.facts.get("host_name_opt"):
            actor += ["--host-name", host.name]
        actor += ["--replica-creds", s + "/replica.creds", "--replica-tls-ca", s + "/ca.pem",
                  "--log-dir", host.rd + "/logs/replicas"]
        sec_digest.append(sha256_file(secret_path(inv, "secrets", "creds", "replica.creds")))
    return env + [inv.clipper] + actor, digest(*sec_digest)


def want_of(argv, inputs):
    """What <part>.cmd holds: the exact command line, and the digest of the
    files it reads."""
    return shlex.join(argv) + "\n# inputs " + inputs


# ---- the cluster: one run of a command -------------------------------------------

class Run(object):
    def __init__(self, inv, timeout=DEFAULT_TIMEOUT_S):
        self.inv = inv
        self.timeout = timeout
        self.bus = None
        self.t0 = time.monotonic()
        self.pids = {}             # (host name, part) -> supervisor pid, as last seen
        self.drained = set()       # names of the hosts drained (as last seen)

    # -- helpers
    def parallel(self, hosts, fn, report=True):
        """fn(host) for each host at once; returns {name: result}; raises the
        first StepError (in inventory order) after all finished."""
        hosts = list(hosts)
        if not hosts:
            return {}
        results, errors = {}, []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(hosts))) as ex:
            futs = {ex.submit(fn, h): h for h in hosts}
            for f in concurrent.futures.as_completed(futs):
                h = futs[f]
                try:
                    results[h.name] = f.result()
                except StepError as e:
                    errors.append((h.index, e))
                except Exception as e:  # a bug: still name the host
                    errors.append((h.index, StepError(h.name, "internal error",
                                                      "{}: {}".format(type(e).__name__, e))))
        if errors:
            errors.sort(key=lambda x: x[0])
            for _, e in errors[1:] if report else []:
                err(str(e))
            raise errors[0][1]
        return results

    def hosts_with(self, role, hosts=None):
        return [h for h in (hosts if hosts is not None else self.inv.hosts) if role in h.roles]

    def active(self, role):
        """The hosts with role that are not drained."""
        return [h for h in self.hosts_with(role) if h.name not in self.drained]

    # -- preflight
    def preflight(self, hosts):
        def one(h):
            rd = h.remote_dir_raw
            if rd == "~" or rd.startswith("~/"):
                rd_sh = '"$HOME"' + q(rd[1:])
            else:
                rd_sh = q(rd)
            body = ("RD={rd}\n"
                    "case \"$RD\" in /*) ;; *) echo \"fail HOME is not set on the host\"; exit 0;; esac\n"
                    "echo \"rd $RD\"\n"
                    "command -v setsid >/dev/null 2>&1 || echo 'fail setsid (util-linux) is not installed'\n"
                    "CL={clipper}\n"
                    "if ! command -v \"$CL\" >/dev/null 2>&1; then echo \"fail the clipper program $CL is not there (inventory field clipper)\"; exit 0; fi\n"
                    "h=$(\"$CL\" run --supervised --help 2>&1)\n"
                    "case \"$h\" in *'exec --name'*) echo exec;; esac\n"
                    "case \"$h\" in *'--supervisor-nats'*) echo sv_nats;; esac\n"
                    "case \"$(\"$CL\" run manager --help 2>&1)\" in *'--host-name'*) echo host_name_opt;; esac\n"
                    ).format(rd=rd_sh, clipper=q(self.inv.clipper))
            if "nats" in h.roles:
                body += ("N={nats}\n"
                         "if ! command -v \"$N\" >/dev/null 2>&1; then echo \"fail nats-server $N is not there (inventory field nats_server)\"; exit 0; fi\n"
                         "echo \"natsversion $(\"$N\" --version 2>&1 | head -n 1)\"\n"
                         ).format(nats=q(self.inv.nats_server))
            body += ("umask 022\n"
                     "mkdir -p \"$RD/run\" \"$RD/logs/replicas\" \"$RD/nats/js\" || { echo \"fail cannot create $RD\"; exit 0; }\n"
                     "umask 077\n"
                     "mkdir -p \"$RD/secrets/nats\" && chmod 700 \"$RD/secrets\" \"$RD/secrets/nats\" || echo \"fail cannot create $RD/secrets\"\n"
                     "[ -e \"$RD/run/drained\" ] && echo drained\n"
                     "echo ok\n")
            out = ssh_run(self.inv, h, "preflight", body, timeout=60)
            facts = {}
            for line in out.splitlines():
                word, _, rest = line.partition(" ")
                if word == "fail":
                    raise StepError(h.name, "preflight", rest)
                if word == "rd":
                    h.rd = rest.strip().rstrip("/") or "/"
                elif word == "natsversion":
                    facts["nats_version"] = rest.strip()
                elif word in ("exec", "sv_nats", "host_name_opt", "drained"):
                    facts[word] = True
            if "ok" not in out.split():
                raise StepError(h.name, "preflight", "no answer from the check script: " +
                                _short(out))
            if "nats" in h.roles:
                m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", facts.get("nats_version", ""))
                if not m:
                    raise StepError(h.name, "preflight", "cannot tell nats-server's version "
                                    "from {!r}".format(facts.get("nats_version")))
                facts["nats_version_tuple"] = tuple(int(x) for x in m.groups())
                facts["nats_sync_always"] = facts["nats_version_tuple"] >= (2, 10, 0)
            if len(self.inv.nats_hosts) > 1 and not facts.get("sv_nats"):
                raise StepError(h.name, "preflight", "{} on this host has no "
                                "--supervisor-nats (clipper run --supervised --help): with 3 "
                                "nats hosts the supervisors need it; install a newer "
                                "clipper".format(self.inv.clipper))
            h.facts = facts
            return facts
        self.parallel(hosts, one)
        old = [h for h in hosts if "nats" in h.roles and not h.facts.get("nats_sync_always")]
        if old:
            say("warning: {} on {}: JetStream runs without sync_interval: always (fsync of "
                "every write, nats-server 2.10 or later); acknowledged writes can be lost when "
                "several servers lose power at once".format(
                    ", ".join(sorted({h.facts.get("nats_version", "?") for h in old})),
                    ", ".join(h.name for h in old)))
        for h in hosts:
            if not h.facts.get("exec") and "nats" in h.roles:
                say("[{}] nats: warning: this clipper has no `run --supervised exec`; "
                    "nats-server runs without a supervisor".format(h.name))

    # -- secrets and files
    def push_secrets(self, hosts):
        make_secrets(self.inv)

        def one(h):
            files = host_secret_files(self.inv, h)
            listing = " ".join(q(d + "/" + n) for _, d, n, _ in files)
            out = ssh_run(self.inv, h, "secrets", remote_script(
                h, "for f in {}; do if [ -f \"$f\" ]; then echo \"$(stat -c %a \"$f\") "
                   "$(sha256sum < \"$f\" | cut -d' ' -f1) $f\"; fi; done\n".format(listing)))
            have = {}
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 3:
                    have[parts[2]] = (parts[0], parts[1])
            todo = {}
            fix = []
            for local, d, n, mode in files:
                got = have.get(d + "/" + n)
                if got is None or got[1] != sha256_file(local):
                    todo.setdefault(d, []).append(local)
                    fix.append((d + "/" + n, mode))
                elif got[0] != mode:
                    fix.append((d + "/" + n, mode))
            for d, locs in todo.items():
                scp_to(self.inv, h, "secrets", locs, d)
            if fix:
                ssh_run(self.inv, h, "secrets", remote_script(h, "".join(
                    "chmod {} {}\n".format(mode, q(path)) for path, mode in fix)))
            n = sum(len(v) for v in todo.values())
            hsay(h, "secrets", "copied {} file(s)".format(n) if n else "unchanged")
        self.parallel(hosts, one)

    def write_nats_conf(self, hosts):
        def one(h):
            conf = nats_conf(self.inv, h)
            eof = "CLIPPER_EOF_" + hashlib.sha256(conf.encode()).hexdigest()[:12]
            out = ssh_run(self.inv, h, "nats config", remote_script(h, (
                "cat > \"$RD/nats/nats.conf.new\" <<'{eof}'\n{conf}{eof}\n"
                "if cmp -s \"$RD/nats/nats.conf.new\" \"$RD/nats/nats.conf\"; then "
                "rm -f \"$RD/nats/nats.conf.new\"; echo unchanged; else "
                "mv -f \"$RD/nats/nats.conf.new\" \"$RD/nats/nats.conf\"; echo written; fi\n"
                "{nats} -c \"$RD/nats/nats.conf\" -t >/dev/null 2>\"$RD/nats/check.err\" || "
                "{{ echo invalid; cat \"$RD/nats/check.err\"; }}\n").format(
                    eof=eof, conf=conf, nats=q(self.inv.nats_server))))
            if "invalid" in out.split():
                raise StepError(h.name, "nats config", "nats-server refuses {}/nats/nats.conf: "
                                "{}".format(h.rd, _short(out.split("invalid", 1)[1])))
            hsay(h, "nats config", "written" if "written" in out.split() else "unchanged")
        self.parallel(hosts, one)

    # -- parts
    def check_parts(self, host, parts):
        """{part: (state, pid)} of the wanted parts on host."""
        body = ""
        for p in parts:
            argv, inputs = part_argv(self.inv, host, p)
            body += "echo \"{} $(check {} {})\"\n".format(p, p, q(want_of(argv, inputs)))
        out = ssh_run(self.inv, host, "check", remote_script(host, body))
        res = {}
        for line in out.splitlines():
            w = line.split()
            if len(w) >= 2 and w[0] in parts:
                res[w[0]] = (w[1], int(w[2]) if len(w) > 2 and w[2].isdigit() else None)
        return res

    def start_part(self, host, part, note=""):
        argv, inputs = part_argv(self.inv, host, part)
        out = ssh_run(self.inv, host, "start " + part, remote_script(
            host, "start {} {} {}\n".format(q(part), q(want_of(argv, inputs)),
                                            " ".join(q(a) for a in argv))), timeout=60)
        lines = out.splitlines()
        first = lines[0].split() if lines else []
        if first[:1] == ["started"] and len(first) == 2:
            hsay(host, part, "started (pid {}){}".format(first[1], note))
            self.pids[(host.name, part)] = int(first[1])
            return int(first[1])
        log = "\n    ".join(l[4:] for l in lines if l.startswith("log "))
        why = " ".join(first[1:]) if first[:1] == ["fail"] else _short(out)
        raise StepError(host.name, "start " + part, why + ("\n    " + log if log else ""))

    def stop_parts(self, host, parts, step="stop", wait_s=STOP_WAIT_S, quiet=False):
        out = ssh_run(self.inv, host, step, remote_script(
            host, "stop {} {}\n".format(wait_s, " ".join(q(p) for p in parts))),
            timeout=wait_s + 60)
        res = {}
        for p in parts:
            self.pids.pop((host.name, p), None)
        for line in out.splitlines():
            w = line.split()
            if not w:
                continue
            if w[0] == "notrunning" and len(w) == 2:
                res[w[1]] = "not running"
            elif w[0] in ("stopped", "killed") and len(w) == 3:
                res[w[1]] = "{} (pid {}{})".format(w[0], w[2], ", SIGKILL after {} s".format(
                    wait_s) if w[0] == "killed" else "")
        if not quiet:
            for p in parts:
                if p in res:
                    hsay(host, p, res[p])
        return res

    def ensure_parts(self, hosts, part, wait, known=None):
        """Starts part where it is missing and restarts it, one host at a time,
        where its command line changed; wait(hosts) waits until healthy.
        known: {host name: {part: (state, pid)}} checked already."""
        hosts = list(hosts)
        if not hosts:
            return []
        known = known or {}
        states = self.parallel(hosts, lambda h: known[h.name][part] if part in known.get(
            h.name, {}) else self.check_parts(h, [part])[part])
        for h in hosts:
            if states[h.name][1]:
                self.pids[(h.name, part)] = states[h.name][1]
        new = [h for h in hosts if states[h.name][0] in ("absent", "dead")]
        changed = [h for h in hosts if states[h.name][0] == "changed"]
        for h in hosts:
            st, pid = states[h.name]
            if st == "unchanged":
                hsay(h, part, "unchanged (pid {})".format(pid))
        self.parallel(new, lambda h: self.start_part(
            h, part, " (it was not running)" if states[h.name][0] == "dead" else ""))
        if new:
            wait(new)
        for h in changed:
            hsay(h, part, "command line or files changed: restarting")
            self.restart_part(h, part, wait)
        return new + changed

    def restart_part(self, host, part, wait):
        ldm = part == "nats" and self.nats_lame_duck(host)
        res = self.stop_parts(host, [part], step="restart " + part, quiet=ldm)
        if ldm and res.get(part, "not running") != "not running":
            hsay(host, part, res[part])
        self.start_part(host, part)
        wait([host])

    def nats_lame_duck(self, host):
        """Puts nats-server in lame duck mode (its clients move to the other
        servers, nothing in flight is cut) and, the moment it has exited,
        stops its supervisor before that restarts it."""
        if len(self.inv.nats_hosts) < 2:
            return False
        hsay(host, "nats", "lame duck mode: its clients move to the other servers")
        t0 = time.monotonic()
        out = ssh_run(self.inv, host, "nats lame duck", remote_script(host, (
            "p=$(head -n 1 \"$RD/run/nats-server.pid\" 2>/dev/null)\n"
            "if ours \"$p\" && kill -USR2 \"$p\"; then\n"
            "  i=0; while ours \"$p\" && [ $i -lt 800 ]; do sleep 0.05; i=$((i+1)); done\n"
            "  ours \"$p\" && echo timeout\n"
            "  stop 20 nats\n"
            "fi\n")), timeout=120)
        self.pids.pop((host.name, "nats"), None)
        if "timeout" in out.split():
            hsay(host, "nats", "warning: still running 40 s after lame duck mode began")
        hsay(host, "nats", "stopped after its clients moved ({:.1f} s)".format(
            time.monotonic() - t0))
        return True

    # -- readiness
    def http_json(self, host, path, timeout=2.0):
        url = "http://{}:{}{}".format(host.address, self.inv.monitor_port, path)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=timeout) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            try:
                return {"_status": e.code, **json.loads(e.read().decode())}
            except (ValueError, TypeError):
                return {"_status": e.code}
        except (OSError, ValueError):
            return None

    def wait_until(self, host, step, what, cond):
        deadline = time.monotonic() + self.timeout
        last = None
        while True:
            ok, last = cond()
            if ok:
                return last
            if time.monotonic() > deadline:
                raise StepError(host, step, "{} within {:.0f} s{}".format(
                    what, self.timeout, ": {}".format(last) if last else ""))
            time.sleep(0.25)

    def wait_nats(self, hosts):
        t0 = time.monotonic()
        n = len(self.inv.nats_hosts)

        def healthy(h):
            def cond():
                v = self.http_json(h, "/healthz")
                if v is None:
                    return False, "http://{}:{}/healthz does not answer".format(
                        h.address, self.inv.monitor_port)
                return v.get("status") == "ok", "healthz says {}".format(v)
            self.wait_until(h.name, "wait nats", "nats-server did not become healthy", cond)
            hsay(h, "nats", "listening on {}:{}".format(h.address, self.inv.nats_port))
        self.parallel(hosts, healthy)
        if n == 3:
            def formed():
                why, leader, _ = self.nats_cluster()
                return not why, "; ".join(why) or leader
            leader = self.wait_until(None, "wait nats", "the NATS cluster did not form", formed)
            say("nats cluster {}: 3 servers, routes complete, JetStream meta leader {} "
                "({:.1f} s)".format(self.inv.cluster, leader, time.monotonic() - t0))

    def nats_cluster(self):
        """(problems, the JetStream meta leader, {host: peers it has routes
        to or None}) of a NATS cluster of 3, from each server's monitoring
        port."""
        why, leaders, peers_of = [], set(), {}
        for h in self.inv.nats_hosts:
            peers = route_peers(self.http_json(h, "/routez"))
            peers_of[h.name] = None if peers is None else len(peers)
            if peers is None:
                why.append("{}'s /routez does not answer".format(h.name))
            elif len(peers) < 2:
                why.append("{} has routes to {} of the 2 other servers".format(
                    h.name, len(peers)))
            j = self.http_json(h, "/jsz") or {}
            leader = (j.get("meta_cluster") or {}).get("leader")
            if not leader:
                why.append("{} knows no JetStream meta leader".format(h.name))
            leaders.add(leader)
        if not why and len(leaders) != 1:
            why.append("the servers disagree on the meta leader: {}".format(leaders))
        return why, (leaders.pop() if len(leaders) == 1 else None), peers_of

    def connect_bus(self, timeout=None):
        if self.bus is not None and not self.bus.closed:
            return self.bus
        from ._bus import Bus, BusError
        creds = secret_path(self.inv, "secrets", "creds", "operator.creds")
        ca = secret_path(self.inv, "secrets", "ca.pem")
        if not os.path.exists(creds):
            raise StepError(None, "bus", "no operator identity {} (was `up` run with this "
                            "data_dir?)".format(creds))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self.bus = Bus(self.inv.nats_url, prefix=self.inv.prefix, name="clipper-hosts",
                               creds=creds, tls_ca=ca, tls_name=self.inv.tls_name)
                return self.bus
            except BusError as e:
                if time.monotonic() > deadline:
                    raise StepError(None, "bus", "cannot connect to {} as the operator: {}"
                                    .format(self.inv.nats_url, e))
                time.sleep(0.5)

    def gather(self, subject, data=b"", timeout_ms=1000, max_n=64):
        from ._bus import BusError
        bus = self.connect_bus()
        try:
            raw = bus.gather(subject, data, timeout_ms, max_n)
        except BusError:
            return []
        out = []
        for r in raw:
            try:
                out.append(json.loads(r.decode("utf-8")))
            except ValueError:
                pass
        return out

    def admin_ping(self):
        from ._bus import BusError
        try:
            self.connect_bus().admin("ping", b"{}", 3000)
            return True
        except BusError:
            return False

    def supervisors(self, expect_n=None):
        """{(host, pid): status} from <p>.sv.list (waits for expect_n answers,
        by default as many as the supervisors this run knows of)."""
        if expect_n is None:
            expect_n = max(1, len(self.pids))
        return {(s.get("host"), s.get("pid")): s
                for s in self.gather(self.inv.prefix + ".sv.list", b"", 500, expect_n)
                if isinstance(s, dict)}

    def pid_files(self, hosts):
        """{host: {part: pid}} of the parts running (ours) on each host."""
        def one(h):
            out = ssh_run(self.inv, h, "status", remote_script(h, (
                "for f in \"$RD\"/run/*.pid; do [ -e \"$f\" ] || continue; "
                "c=$(basename \"$f\" .pid); [ \"$c\" = nats-server ] && continue; p=$(pid_of \"$c\"); "
                "if ours \"$p\"; then echo \"run $c $p\"; else echo \"dead $c $p\"; fi; done\n"
                "[ -e \"$RD/run/drained\" ] && echo drained; true\n")))
            res = {}
            for line in out.splitlines():
                w = line.split()
                if len(w) == 3:
                    res[w[1]] = int(w[2]) if w[0] == "run" and w[2].isdigit() else None
                elif w == ["drained"]:
                    res["_drained"] = True
            return res
        got = self.parallel(hosts, one)
        for h in hosts:
            for part in ROLES:
                if got[h.name].get(part):
                    self.pids[(h.name, part)] = got[h.name][part]
                else:
                    self.pids.pop((h.name, part), None)
            if got[h.name].get("_drained"):
                self.drained.add(h.name)
            else:
                self.drained.discard(h.name)
        return got

    def wait_supervised(self, hosts, part, pids=None):
        """Waits until each host's supervisor of part reports it running."""
        if not any(h.facts.get("exec") or part != "nats" for h in hosts):
            return
        hosts = [h for h in hosts if part != "nats" or h.facts.get("exec")]
        if pids is None:
            pids = {h.name: self.pids.get((h.name, part)) for h in hosts}
            if not all(pids.values()):
                pids = {n: v.get(part) for n, v in self.pid_files(hosts).items()}

        def cond():
            svs = self.supervisors()
            missing = []
            for h in hosts:
                s = svs.get((h.name, pids.get(h.name)))
                kids = [k for k in (s or {}).get("children", []) if k.get("name") == part]
                if not kids or kids[0].get("state") != "running":
                    missing.append("{} ({})".format(h.name, "no report from its supervisor pid {}"
                                                    .format(pids.get(h.name)) if not kids else
                                                    "state " + str(kids[0].get("state"))))
            return not missing, ", ".join(missing)
        self.wait_until(hosts[0].name if len(hosts) == 1 else None, "wait " + part,
                        "the supervisor of {} did not report it running".format(part), cond)

    def wait_admin(self, hosts):
        self.wait_supervised(hosts, "admin")
        self.wait_until(None, "wait admin", "no admin answered {}.admin.ping".format(
            self.inv.prefix), lambda: (self.admin_ping(), None))
        for h in hosts:
            hsay(h, "admin", "answers {}.admin.ping".format(self.inv.prefix))

    def routers(self):
        n = len(self.active("router"))
        return [r.get("router", {}) for r in self.gather(self.inv.prefix + ".route.stats", b"",
                                                           500, n) if isinstance(r, dict)]

    def wait_routers(self, hosts):
        self.wait_supervised(hosts, "router")

        def cond():
            rs = self.routers()
            seen = {r.get("host") for r in rs}
            missing = [h.name for h in hosts if h.name not in seen]
            leading = [r.get("host") for r in rs if r.get("leading")]
            if missing:
                return False, "no route.stats answer from " + ", ".join(missing)
            if not leading:
                return False, "no router leads yet"
            return True, leading[0]
        leader = self.wait_until(None, "wait router", "the routers did not answer", cond)
        for h in hosts:
            hsay(h, "router", "answers ({})".format("leading" if h.name == leader else "standby"))

    def managers(self):
        n = len(self.active("manager"))
        return {m.get("host"): m for m in self.gather(self.inv.prefix + ".cm.logs", b"{}", 500, n)
                if isinstance(m, dict)}

    def cm_hosts(self):
        """{host: reply} from <p>.cm.hosts, or None when no manager answers it
        (managers without it)."""
        got = self.gather(self.inv.prefix + ".cm.hosts", b"{}", 500,
                          len(self.active("manager")))
        if not got:
            return None
        out = {}
        for r in got:
            rows = r if isinstance(r, list) else r.get("hosts", [r]) if isinstance(r, dict) else []
            for row in rows:
                if isinstance(row, dict) and row.get("host"):
                    out[row["host"]] = row
        return out

    def wait_managers(self, hosts):
        self.wait_supervised(hosts, "manager")

        def cond():
            seen = self.managers()
            missing = [h.name for h in hosts if h.name not in seen]
            return not missing, "no hello (cm.logs answer) from " + ", ".join(missing)
        self.wait_until(None, "wait manager", "the managers did not answer", cond)
        for h in hosts:
            hsay(h, "manager", "says hello")

    def frontends_answering(self):
        return len(self.gather("$SRV.PING.clipper-frontend", b"", 500,
                               len(self.active("frontend"))))

    def wait_frontends(self, hosts):
        self.wait_supervised(hosts, "frontend")
        want = len(self.active("frontend"))

        def cond():
            n = self.frontends_answering()
            return n >= want, "{} of {} frontends answer $SRV.PING".format(n, want)
        self.wait_until(None, "wait frontend", "the frontends did not answer", cond)
        for h in hosts:
            hsay(h, "frontend", "serves http://{}:{}".format(h.address, h.http_port))

    def waiter(self, part):
        return {"nats": self.wait_nats_part, "admin": self.wait_admin,
                "router": self.wait_routers, "manager": self.wait_managers,
                "frontend": self.wait_frontends}[part]

    # -- health and summary
    def health(self, hosts=None):
        """(problems, rows, extra) of the cluster: bus, admin, supervisors,
        managers, routers, frontends; no problems when healthy. Drained
        hosts are expected to run nothing."""
        hosts = list(hosts or self.inv.hosts)
        problems = []
        pids = self.pid_files(hosts)
        drained = [h.name for h in hosts if pids[h.name].get("_drained")]
        live = [h for h in hosts if h.name not in drained]
        rows = {}
        for h in hosts:
            for part in h.roles:
                pid = pids[h.name].get(part)
                rows[(h.name, part)] = {"pid": pid, "alive": pid is not None, "state": None,
                                        "restarts": None}
                if h.name in drained:
                    rows[(h.name, part)]["state"] = "drained" if pid is None else None
        extra = {"drained": drained, "routers": [], "cm_hosts": None}
        if not any(r["pid"] for r in rows.values()):
            return ["nothing of cluster {} runs".format(self.inv.cluster)], rows, extra
        try:
            self.connect_bus(timeout=10)
        except StepError as e:
            return ["bus: {}".format(e.msg)], rows, extra
        if not self.admin_ping():
            problems.append("admin: no answer on {}.admin.ping".format(self.inv.prefix))
        svs = self.supervisors()
        for h in hosts:
            for part in h.roles:
                row = rows[(h.name, part)]
                pid = row["pid"]
                if pid is None:
                    if h.name not in drained:
                        problems.append("[{}] {}: not running".format(h.name, part))
                    continue
                if part == "nats" and not h.facts.get("exec"):
                    continue
                s = svs.get((h.name, pid))
                kids = [k for k in (s or {}).get("children", []) if k.get("name") == part]
                if kids:
                    row["state"] = kids[0].get("state")
                    row["restarts"] = kids[0].get("restarts")
                    row["child_pid"] = kids[0].get("pid")
                if row["state"] != "running":
                    problems.append("[{}] {}: its supervisor (pid {}) {}".format(
                        h.name, part, pid, "reports " + str(row["state"]) if kids
                        else "does not answer {}.sv.list".format(self.inv.prefix)))
        if len(self.inv.nats_hosts) == 3:
            why, leader, peers_of = self.nats_cluster()
            problems += ["nats: " + w for w in why]
            extra["meta_leader"] = leader
            for name, n in peers_of.items():
                if (name, "nats") in rows:
                    rows[(name, "nats")]["route_peers"] = n
                    rows[(name, "nats")]["meta_leader"] = name == leader
        mans = self.managers()
        for h in self.hosts_with("manager", live):
            if h.name not in mans:
                problems.append("[{}] manager: no hello (no answer on {}.cm.logs)".format(
                    h.name, self.inv.prefix))
            else:
                rows[(h.name, "manager")]["hello"] = True
        routers = self.routers()
        for r in routers:
            key = (r.get("host"), "router")
            if key in rows:
                rows[key]["leading"] = bool(r.get("leading"))
        if not any(r.get("leading") for r in routers):
            problems.append("router: none leads (answers on {}.route.stats: {})".format(
                self.inv.prefix, len(routers)))
        extra["routers"] = routers
        extra["cm_hosts"] = self.cm_hosts()
        for name, row in (extra["cm_hosts"] or {}).items():
            if (name, "manager") in rows:
                rows[(name, "manager")]["replicas"] = replica_count(row)
                rows[(name, "manager")]["draining"] = bool(row.get("draining"))
        return problems, rows, extra

    def summary(self, rows, title):
        lines = [title,
                 "  {:<12} {:<16} {:<9} {:>8}  {}".format("HOST", "ADDRESS", "PART", "PID",
                                                          "STATE")]
        for h in self.inv.hosts:
            for part in h.roles:
                r = rows.get((h.name, part))
                if r is None:
                    continue
                state = r.get("state") or ("running (unsupervised)" if r.get("alive")
                                           else "not running")
                if part == "nats" and r.get("route_peers") is not None:
                    state += ", routes to {} of 2{}".format(
                        r["route_peers"], ", JetStream meta leader" if r.get("meta_leader")
                        else "")
                if part == "router" and "leading" in r:
                    state += ", leading" if r["leading"] else ", standby"
                if part == "manager" and "replicas" in r:
                    state += ", {} replica(s){}".format(r["replicas"],
                                                        ", draining" if r.get("draining") else "")
                if r.get("restarts"):
                    state += ", {} restart(s)".format(r["restarts"])
                lines.append("  {:<12} {:<16} {:<9} {:>8}  {}".format(
                    h.name, h.address, part, r.get("pid") or "-", state))
        fe = ["http://{}:{}".format(h.address, h.http_port) for h in self.active("frontend")]
        lines.append("  NATS {} (prefix {}, JetStream R{})".format(self.inv.nats_url,
                                                                    self.inv.prefix,
                                                                    self.inv.replicas))
        lines.append("  queries: " + " ".join(fe))
        say("\n".join(lines))

    def write_cluster_json(self):
        creds = secret_path(self.inv, "secrets", "creds", "operator.creds")
        ca = secret_path(self.inv, "secrets", "ca.pem")
        info = {
            "cluster": self.inv.cluster,
            "nats_url": self.inv.nats_url,
            "prefix": self.inv.prefix,
            "creds": creds,
            "tls_ca": ca,
            "tls_name": self.inv.tls_name,
            "local_container_manager": {
                "cluster_name": self.inv.cluster, "nats_url": self.inv.nats_url,
                "prefix": self.inv.prefix, "creds": creds, "tls_ca": ca,
                "tls_name": self.inv.tls_name},
            "query": ["{}:{}".format(h.address, h.http_port) for h in self.hosts_with("frontend")],
            "hosts": {h.name: {"address": h.address, "roles": h.roles} for h in self.inv.hosts},
        }
        path = secret_path(self.inv, "cluster.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
        return path

    def close(self):
        if self.bus is not None:
            try:
                self.bus.close()
            except Exception:
                pass
            self.bus = None

    # -- commands
    def bring_up(self, hosts, check_all=True):
        """Preflight, secrets, nats, then the actors in order, on hosts."""
        self.preflight(hosts)
        self.push_secrets(hosts)
        nats = self.hosts_with("nats", hosts)
        if nats:
            self.write_nats_conf(nats)
        self.parallel(hosts, lambda h: ssh_run(self.inv, h, "undrain", remote_script(
            h, "rm -f \"$RD/run/drained\"\n")))
        self.drained.difference_update(h.name for h in hosts)
        known = self.parallel(hosts, lambda h: self.check_parts(h, h.roles))
        for part in START_ORDER:
            ph = self.hosts_with(part, hosts)
            if not ph:
                continue
            if part == "nats":
                started = self.ensure_parts(ph, "nats", self.wait_nats_part, known)
                if not started:
                    self.wait_nats(ph)  # running already: still check
            else:
                if self.bus is None:
                    self.connect_bus()
                self.ensure_parts(ph, part, self.waiter(part), known)
        problems = []
        deadline = time.monotonic() + min(self.timeout, 60)
        while True:
            problems, rows, _ = self.health(self.inv.hosts if check_all else hosts)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return problems, rows

    def drain_manager(self, h, drain=True):
        """Asks the manager of h to hand its replicas to the others
        (<p>.cm.drain) and waits until it runs none."""
        from ._bus import BusError, BusTimeout, NoResponders
        p = self.inv.prefix
        try:
            reply = self.connect_bus().request(
                p + ".cm.drain", json.dumps({"host": h.name, "drain": drain}).encode(), 10000)
        except NoResponders:
            raise StepError(h.name, "drain", "no manager answers {}.cm.drain (this clipper's "
                            "managers cannot drain a host)".format(p))
        except BusTimeout:
            raise StepError(h.name, "drain", "the manager of {} did not answer {}.cm.drain "
                            "(is it running? `status` tells)".format(h.name, p))
        except BusError as e:
            raise StepError(h.name, "drain", "{}.cm.drain: {}".format(p, e))
        try:
            r = json.loads(reply.decode())
        except ValueError:
            r = {}
        if isinstance(r, dict) and r.get("error"):
            raise StepError(h.name, "drain", "{}.cm.drain: {}".format(p, r["error"]))
        if not drain:
            return
        hsay(h, "manager", "draining: its replicas move to the other hosts")

        def cond():
            hosts = self.cm_hosts()
            if hosts is None:
                return False, "no manager answers {}.cm.hosts".format(p)
            row = hosts.get(h.name)
            if row is None:
                return False, "the manager of {} does not answer {}.cm.hosts".format(h.name, p)
            n = replica_count(row)
            return n == 0, "{} replica(s) left on {}".format(n, h.name)
        self.wait_until(h.name, "drain", "its replicas did not move", cond)
        hsay(h, "manager", "runs no replica now")

    def wait_manager_share(self, h):
        """Waits until h's manager runs its share of every version, ready."""
        def cond():
            row = (self.cm_hosts() or {}).get(h.name)
            if row is None:
                return False, "the manager of {} does not answer {}.cm.hosts".format(
                    h.name, self.inv.prefix)
            short = ["{}:{} {}/{}".format(v.get("model"), v.get("version"), v.get("ready"),
                                          v.get("share"))
                     for v in row.get("versions") or []
                     if isinstance(v, dict) and (v.get("ready") or 0) < (v.get("share") or 0)]
            return not short, "ready/share " + ", ".join(short)
        self.wait_until(h.name, "wait manager", "its replicas did not come back", cond)

    def wait_nats_part(self, hosts):
        self.wait_nats(hosts)
        self.wait_supervised(hosts, "nats")


# ---- commands ------------------------------------------------------------------

def cmd_up(run, args):
    inv = run.inv
    problems, rows = run.bring_up(inv.hosts)
    path = run.write_cluster_json()
    took = time.monotonic() - run.t0
    run.summary(rows, "cluster {}: {} host(s), {}".format(
        inv.cluster, len(inv.hosts), "healthy" if not problems else "NOT healthy"))
    say("  client: {}".format(path))
    if problems:
        for p in problems:
            say("problem: " + p)
        raise StepError(None, "health check", "{} problem(s) after up; see above".format(
            len(problems)))
    say("up: done in {:.1f} s".format(took))


def cmd_status(run, args):
    inv = run.inv
    # No preflight (it creates directories): resolve remote_dir only.
    resolve_dirs(run, inv.hosts)
    problems, rows, extra = run.health(inv.hosts)
    if args.json:
        print(json.dumps({
            "cluster": inv.cluster, "healthy": not problems, "problems": problems,
            "parts": [dict(host=h, part=p, **r) for (h, p), r in rows.items()],
            "drained": extra.get("drained"), "routers": extra.get("routers"),
            "cm_hosts": extra.get("cm_hosts"), "meta_leader": extra.get("meta_leader"),
        }, indent=2, default=str))
    else:
        run.summary(rows, "cluster {}: {}".format(inv.cluster,
                                                  "healthy" if not problems else "NOT healthy"))
        for p in problems:
            say("problem: " + p)
    return 0 if not problems else 1


def resolve_dirs(run, hosts):
    """Sets h.rd (remote_dir made absolute on the host) without creating
    anything; also learns whether clipper has exec mode."""
    def one(h):
        rd = h.remote_dir_raw
        rd_sh = ('"$HOME"' + q(rd[1:])) if (rd == "~" or rd.startswith("~/")) else q(rd)
        out = ssh_run(run.inv, h, "connect", "RD={}\necho \"rd $RD\"\n"
                      "case \"$({} run --supervised --help 2>&1)\" in *'exec --name'*) echo exec;; esac\n"
                      .format(rd_sh, q(run.inv.clipper)), timeout=60)
        for line in out.splitlines():
            if line.startswith("rd "):
                h.rd = line[3:].strip().rstrip("/") or "/"
            elif line.strip() == "exec":
                h.facts["exec"] = True
        if not h.rd:
            raise StepError(h.name, "connect", "no answer from the host")
    run.parallel(hosts, one)


def cmd_down(run, args):
    """Stops frontends, then the other actors, then nats-server, on every
    host it reaches; then SIGKILLs whatever of remote_dir still runs. A host
    it cannot reach is reported (exit 1) after the others are down."""
    inv = run.inv
    failed = {}

    def each(hosts, fn):
        todo = [h for h in hosts if h.name not in failed]
        try:
            run.parallel(todo, fn, report=False)
        except StepError:
            pass
        # parallel() raised the first error only: find every failed host
        for h in todo:
            err = getattr(h, "_error", None)
            if err is not None:
                failed[h.name] = err

    def guarded(fn):
        def g(h):
            try:
                h._error = None
                return fn(h)
            except StepError as e:
                h._error = e
                raise
        return g

    def resolve(h):
        resolve_dirs(run, [h])
    each(inv.hosts, guarded(resolve))
    for parts in (("frontend",), ("router", "manager", "admin"), ("nats",)):
        def one(h, parts=parts):
            res = run.stop_parts(h, list(parts), quiet=True)
            for p in parts:
                # also parts a host runs though the inventory no longer gives it
                if p in h.roles or res.get(p, "not running") != "not running":
                    hsay(h, p, res.get(p, "not running"))
        each(inv.hosts, guarded(one))

    def leftovers(h):
        out = ssh_run(inv, h, "leftovers", remote_script(
            h, "leftovers\nrm -f \"$RD\"/run/*.pid\n"))
        pids = [l.split()[1] for l in out.splitlines() if l.startswith("leftover ")]
        if pids:
            hsay(h, "down", "killed {} leftover process(es): {}".format(len(pids), " ".join(pids)))
    each(inv.hosts, guarded(leftovers))
    if failed:
        for e in failed.values():
            err(str(e))
        raise StepError(", ".join(failed), "down", "{} host(s) not reached: the others are "
                        "down".format(len(failed)))
    say("down: done in {:.1f} s".format(time.monotonic() - run.t0))


def cmd_add_host(run, args):
    inv = run.inv
    h = inv.by_name.get(args.name)
    if h is None:
        raise InventoryError("{}: no such host in {} (add its [[hosts]] entry first)".format(
            args.name, inv.path))
    if "nats" in h.roles:
        raise StepError(h.name, "add-host", "it has role nats, and the NATS cluster's "
                        "membership is fixed at `up`: a nats host cannot be added")
    others = [x for x in inv.hosts if x is not h]
    resolve_dirs(run, inv.hosts)
    run.pid_files(others)
    run.connect_bus()
    if not run.admin_ping():
        raise StepError(None, "add-host", "the cluster does not answer ({}.admin.ping): run "
                        "`up` first".format(inv.prefix))
    problems, rows = run.bring_up([h], check_all=True)
    run.write_cluster_json()
    run.summary(rows, "cluster {} with {}: {}".format(inv.cluster, h.name,
                                                      "healthy" if not problems else "NOT healthy"))
    if problems:
        for p in problems:
            say("problem: " + p)
        raise StepError(h.name, "health check", "{} problem(s) after add-host".format(
            len(problems)))
    say("add-host {}: done in {:.1f} s".format(h.name, time.monotonic() - run.t0))


def cmd_drain(run, args):
    inv = run.inv
    h = inv.by_name.get(args.name)
    if h is None:
        raise InventoryError("{}: no such host in {}".format(args.name, inv.path))
    if "nats" in h.roles:
        raise StepError(h.name, "drain", "it runs nats, and the NATS cluster's membership is "
                        "fixed at `up` (the others keep counting it for their majority): a nats "
                        "host cannot be drained; `down` and `up` the cluster to change it")
    resolve_dirs(run, inv.hosts)
    pids = run.pid_files(inv.hosts)
    for role in ACTORS:
        if role in h.roles and not any(role in x.roles and not pids[x.name].get("_drained")
                                       for x in inv.hosts if x is not h):
            raise StepError(h.name, "drain", "it is the only host (not drained) with role {}: "
                            "add another first".format(role))
    run.connect_bus()
    if "manager" in h.roles:
        if pids[h.name].get("manager"):
            run.drain_manager(h)
        else:
            hsay(h, "manager", "not running: no replicas to move")
    for parts in (("frontend",), ("router",), ("manager", "admin")):
        mine = [p for p in parts if p in h.roles]
        if mine:
            run.stop_parts(h, mine, step="drain")
    ssh_run(inv, h, "drain", remote_script(h, "mkdir -p \"$RD/run\" && : > \"$RD/run/drained\"\n"))
    say("drain {}: done in {:.1f} s (delete its [[hosts]] entry to remove it; `add-host {}` "
        "brings it back)".format(h.name, time.monotonic() - run.t0, h.name))


def replica_count(row):
    """Replicas a manager runs, from its <p>.cm.hosts answer."""
    return sum(int(v.get("running") or 0) for v in row.get("versions") or []
               if isinstance(v, dict))


def cmd_upgrade(run, args):
    inv = run.inv
    run.preflight(inv.hosts)
    run.push_secrets(inv.hosts)
    nats = run.hosts_with("nats")
    run.write_nats_conf(nats)
    run.connect_bus()
    problems, _, _ = run.health(inv.hosts)
    for name in sorted(run.drained):
        say("[{}] drained: left as it is".format(name))
    if problems:
        for p in problems:
            say("problem: " + p)
        raise StepError(None, "upgrade", "the cluster is not healthy; fix it (`up`) before a "
                        "rolling upgrade")
    # Frontends first, one at a time: the others serve meanwhile (NATS
    # clients through the queue group, HTTP clients through the load
    # balancer, which checks each frontend).
    fronts = run.active("frontend")
    for h in fronts:
        if len(fronts) == 1:
            say("[{}] frontend: warning: the only frontend; queries wait while it restarts"
                .format(h.name))
        run.restart_part(h, "frontend", run.wait_frontends)
    managers = run.active("manager")
    for h in inv.hosts:
        if h.name in run.drained:
            continue
        for part in START_ORDER:
            if part not in h.roles or part == "frontend":
                continue
            if part == "manager" and len(managers) > 1:
                # Its replicas move to the other hosts first (a manager that
                # stops stops its replicas), and come back after.
                run.drain_manager(h)
                run.restart_part(h, part, run.waiter(part))
                run.wait_manager_share(h)
            else:
                run.restart_part(h, part, run.waiter(part))
    deadline = time.monotonic() + min(run.timeout, 60)
    while True:
        problems, rows, _ = run.health(inv.hosts)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    run.summary(rows, "cluster {} upgraded: {}".format(inv.cluster,
                                                       "healthy" if not problems else "NOT healthy"))
    if problems:
        for p in problems:
            say("problem: " + p)
        raise StepError(None, "health check", "{} problem(s) after upgrade".format(len(problems)))
    say("upgrade: done in {:.1f} s".format(time.monotonic() - run.t0))


COMMANDS = {"up": cmd_up, "status": cmd_status, "down": cmd_down, "add-host": cmd_add_host,
            "drain": cmd_drain, "upgrade": cmd_upgrade}


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m clipper_admin.hosts",
        description="A Clipper cluster on several hosts, over SSH, from a TOML inventory "
                    "(see the module's docstring: pydoc clipper_admin.hosts).")
    ap.add_argument("command", choices=sorted(COMMANDS))
    ap.add_argument("inventory", help="the inventory file (TOML)")
    ap.add_argument("name", nargs="?", help="add-host, drain: the host's name")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                    help="limit of each wait, in seconds (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="status: print JSON")
    args = ap.parse_args(argv)
    if args.command in ("add-host", "drain") and not args.name:
        ap.error("{} needs the host's NAME".format(args.command))
    if args.command not in ("add-host", "drain") and args.name:
        ap.error("{} takes no host name".format(args.command))
    try:
        inv = load_inventory(args.inventory)
    except InventoryError as e:
        sys.stderr.write("error: {}: {}\n".format(args.inventory, e))
        return 2
    run = Run(inv, timeout=args.timeout)
    try:
        rc = COMMANDS[args.command](run, args)
        return rc or 0
    except InventoryError as e:
        sys.stderr.write("error: {}: {}\n".format(args.inventory, e))
        return 2
    except StepError as e:
        err(str(e))
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    finally:
        run.close()


if __name__ == "__main__":
    sys.exit(main())
