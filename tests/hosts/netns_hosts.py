#!/usr/bin/env python3
"""Real hosts for multi-host tests and benchmarks: Linux network namespaces
on a bridge, each running Debian's OpenSSH sshd.

    python3 tests/hosts/netns_hosts.py up --hosts 3 --dir DIR [--name TAG] [--subnet 10.x.y.0/24]
    python3 tests/hosts/netns_hosts.py status --dir DIR
    python3 tests/hosts/netns_hosts.py down --dir DIR
    python3 tests/hosts/netns_hosts.py ssh --dir DIR h1 -- hostname -I
    (and kill-host, restart-sshd, link, netem, netem-clear, exec: see --help)

From Python (stdlib only; tests put tests/hosts on sys.path):

    with Hosts(3) as hs:                      # or hs = Hosts(3); hs.up() ... hs.down()
        hs.ssh("h1", "hostname -I")           # ssh from the client namespace
        hs.kill_host("h2"); hs.restart_sshd("h2")

What it builds (TAG: 1-8 lowercase letters/digits, default nh + 4 random hex):
  * bridge TAG-br in the root namespace, address 10.X.Y.1/24 (a private /24
    derived from the tag, skipping any network the root namespace already
    routes; --subnet chooses it),
  * namespaces TAG-h1..TAG-hN (addresses .11, .12, ...) and TAG-client (.100),
    each with loopback up and one veth, eth0 inside, TAG-h<i>b / TAG-cb on
    the bridge,
  * in each host namespace /usr/sbin/sshd -f DIR/h<i>/sshd_config
    -E DIR/h<i>/sshd.log, listening on its address port 22, its own ed25519
    host key, root login with the one client key DIR/id_ed25519 only,
  * DIR/ssh_config (aliases h1..hN, also matching the addresses) with
    DIR/known_hosts filled from the host keys, so that
        ip netns exec TAG-client ssh -F DIR/ssh_config h1 CMD
    works with StrictHostKeyChecking yes; the same from the root namespace
    and from inside any host (ssh h1 'ssh -F DIR/ssh_config h2 CMD'),
  * DIR/hosts.json describing all of it (down and status read it).

The hosts share the machine's filesystem: they differ by network (own
namespace and address), by process set (`ip netns pids`, which kill_host
kills) and by working directory (DIR/h<i>/root), not by filesystem. sshd sets
HOME to that directory (SetEnv HOME=..., with NETNS_HOST and NETNS_HOST_ADDR),
so `cd ~` and ~/paths are per host; the session still starts in /root, the
account's home. Everything runs as root.

Firewall: bridged IPv4 goes through the root namespace's iptables FORWARD
chain when br_netfilter is loaded and net.bridge.bridge-nf-call-iptables is 1
(podman and Kubernetes need that, so this harness never changes the sysctl).
In that case `up` inserts one rule at the top of FORWARD,
    -i TAG-br -o TAG-br -m comment --comment netns-hosts:TAG -j ACCEPT
so a DROP policy (Docker's) cannot cut the hosts off, and `down` removes it.
A native nftables table whose forward chain drops would still drop; sshd
readiness is checked across the bridge, so `up` then fails, saying so.

Faults: kill_host (SIGKILL every process in the namespace, sshd included),
restart_sshd, link (veths down/up), netem/netem_clear (delay and loss on the
host's eth0, egress: `tc qdisc ... netem` inside the namespace; on a kernel
without sch_netem (the VM this was written on has none), the same through an
iptables NFQUEUE rule in the namespace and a small verdict daemon, this
module's `_nfqueue` subcommand, which holds its queue socket in the host's
namespace but itself lives in the root namespace so kill_host leaves the link
as it was; DIR/h<i>/netem.pid, killed by netem_clear and down).
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import dataclasses
import errno
import ipaddress
import json
import os
import random
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

# exec is left out so that `import *` does not hide the builtin (use netns_hosts.exec)
__all__ = ["Hosts", "Host", "HarnessError", "HarnessUnavailable", "check_requirements",
           "up", "down", "status", "kill_host", "restart_sshd", "link", "netem",
           "netem_clear", "ssh", "cluster_nats_server"]

SSHD = "/usr/sbin/sshd"
COMMENT_PREFIX = "netns-hosts:"
MAX_HOSTS = 88                       # .11 .. .99; .100 is the client
HOST_BASE, CLIENT_OCTET, BRIDGE_OCTET = 10, 100, 1
TAG_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
SSH_PORT = 22


class HarnessUnavailable(RuntimeError):
    """This machine cannot run the harness (not root, a program missing)."""


class HarnessError(RuntimeError):
    """The harness failed (a host that did not come up, a bad argument)."""


# The nats-server that clusters on these hosts run (clipper_admin.hosts'
# inventory field nats_server): 2.10 or later, for JetStream's
# sync_interval: always and for noticing a cut route by its pings
# (docs/operation.md); .ci/setup builds it here from the Go module proxy.
# Single-host tests keep Debian's (env NATS_SERVER).
CLUSTER_NATS_SERVER_ENV = "CLIPPER_CLUSTER_NATS_SERVER"
CLUSTER_NATS_SERVER = "/usr/local/lib/clipper/nats-server-2.14.10/nats-server"


def cluster_nats_server():
    """The nats-server for a cluster on these hosts: env
    CLIPPER_CLUSTER_NATS_SERVER (it must be there when set), else the one
    .ci/setup builds (CLUSTER_NATS_SERVER), else env NATS_SERVER, nats-server
    on PATH, /usr/sbin/nats-server; None when there is none."""
    want = os.environ.get(CLUSTER_NATS_SERVER_ENV)
    if want:
        if not os.access(want, os.X_OK):
            raise HarnessError("{}={} is not an executable file".format(
                CLUSTER_NATS_SERVER_ENV, want))
        return want
    for c in (CLUSTER_NATS_SERVER, os.environ.get("NATS_SERVER"), shutil.which("nats-server"),
              "/usr/sbin/nats-server"):
        if c and os.access(c, os.X_OK):
            return c
    return None


# --------------------------------------------------------------------------
# small helpers

def _run(argv, check=True, input=None, timeout=30, ns=None):
    """Runs argv (in network namespace ns if given), returns CompletedProcess."""
    if ns:
        argv = ["ip", "netns", "exec", ns] + list(argv)
    p = subprocess.run(argv, input=input, capture_output=True, text=True,
                       timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise HarnessError("{} failed (exit {}): {}".format(
            shlex.join(argv), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def _ip_batch(lines, ns=None):
    if not lines:
        return
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    _run(argv, input="\n".join(lines) + "\n")


def _netns_list():
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _links():
    """Names of the links of the root namespace."""
    p = _run(["ip", "-j", "link", "show"], check=False)
    try:
        return [l["ifname"] for l in json.loads(p.stdout or "[]")]
    except ValueError:
        return []


def _link_state(name, ns=None):
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-j", "link", "show", "dev", name]
    p = _run(argv, check=False)
    if p.returncode != 0:
        return None
    try:
        l = json.loads(p.stdout)[0]
    except (ValueError, IndexError):
        return None
    return {"up": "UP" in l.get("flags", []), "operstate": l.get("operstate")}


def _proc_state(pid):
    """The state letter of process pid, None when there is none."""
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _alive(pid):
    return bool(pid) and _proc_state(pid) not in (None, "Z", "X")


def _cmdline(pid):
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _ns_inode(ns):
    try:
        return os.stat("/run/netns/" + ns).st_ino
    except OSError:
        return None


def _pid_netns_inode(pid):
    try:
        link = os.readlink("/proc/{}/ns/net".format(pid))   # net:[4026532...]
        return int(link[link.index("[") + 1:-1])
    except (OSError, ValueError):
        return None


def _ns_pids(ns):
    p = _run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit() and int(x) != os.getpid()]


def _kill_ns_processes(ns, deadline_s=5.0):
    """SIGKILLs every process in namespace ns until none is left; returns the pids."""
    killed = []
    deadline = time.monotonic() + deadline_s
    while True:
        pids = [p for p in _ns_pids(ns) if _alive(p)]
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise HarnessError("processes {} of namespace {} survive SIGKILL".format(pids, ns))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def _read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return "({}: {})".format(path, e.strerror)
    return "\n".join(lines[-n:]) or "({} is empty)".format(path)


def _bridge_nf_call_iptables():
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return False     # br_netfilter not loaded: bridged frames skip iptables


def _used_networks():
    nets = []
    p = _run(["ip", "-4", "-j", "route", "show", "table", "all"], check=False)
    try:
        routes = json.loads(p.stdout or "[]")
    except ValueError:
        routes = []
    for r in routes:
        dst = r.get("dst")
        if not dst or dst == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            pass
    return nets


def _parse_subnet(subnet):
    s = str(subnet)
    if "/" not in s:
        s = s.rstrip(".")
        if s.count(".") == 2:
            s += ".0"
        s += "/24"
    net = ipaddress.ip_network(s, strict=False)
    if net.version != 4 or net.prefixlen != 24 or not net.is_private:
        raise HarnessError("subnet must be a private IPv4 /24 such as 10.213.7.0/24, not " + str(subnet))
    return net


def _pick_subnet(tag):
    """A /24 in 10.200.0.0 - 10.243.255.0 from the tag's hash, skipping networks
    the root namespace already has a route to."""
    used = _used_networks()
    span = 44 * 256
    h = zlib.crc32(tag.encode())
    for i in range(span):
        k = (h + i) % span
        net = ipaddress.ip_network("10.{}.{}.0/24".format(200 + k // 256, k % 256))
        if not any(net.overlaps(u) for u in used):
            return net
    raise HarnessError("no free /24 in 10.200.0.0/14")


def check_requirements():
    """Raises HarnessUnavailable naming what this machine lacks."""
    missing = []
    if os.geteuid() != 0:
        raise HarnessUnavailable("netns_hosts needs root (network namespaces, sshd on port 22)")
    for prog, pkg in (("ip", "iproute2"), ("tc", "iproute2"), ("ssh", "openssh-client"),
                      ("ssh-keygen", "openssh-client")):
        if not shutil.which(prog):
            missing.append("{} (package {})".format(prog, pkg))
    if not os.access(SSHD, os.X_OK):
        missing.append("{} (package openssh-server)".format(SSHD))
    if missing:
        raise HarnessUnavailable("netns_hosts: missing " + ", ".join(missing))
    try:
        import pwd
        pwd.getpwnam("sshd")
    except KeyError:
        raise HarnessUnavailable("netns_hosts: no user 'sshd' (sshd's privilege separation "
                                 "user; package openssh-server creates it)")
    try:
        with open("/etc/shadow") as f:
            for line in f:
                fields = line.split(":")
                if fields[0] == "root" and fields[1].startswith("!"):
                    raise HarnessUnavailable(
                        "netns_hosts: root's account is locked ('!' in /etc/shadow); sshd with "
                        "UsePAM no refuses a locked account even for key logins "
                        "(usermod -p '*' root unlocks it without a password)")
    except OSError:
        pass


# --------------------------------------------------------------------------
# the readiness probe, run inside the client namespace

_PROBE = r"""
import json, socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
port = int(sys.argv[2])
pending = list(sys.argv[3:])
res = {a: "not tried" for a in pending}
while pending:
    for a in list(pending):
        try:
            with socket.create_connection((a, port), timeout=0.5) as s:
                s.settimeout(2)
                banner = s.recv(64)
            if banner.startswith(b"SSH-"):
                res[a] = "ok"
                pending.remove(a)
            else:
                res[a] = "no SSH banner: %r" % banner
        except OSError as e:
            res[a] = "%s: %s" % (type(e).__name__, e)
    if not pending or time.monotonic() > deadline:
        break
    time.sleep(0.03)
print(json.dumps(res))
"""


def _probe(ns, addrs, deadline_s):
    """{addr: "ok" | error} for a TCP connect + SSH banner on addr:22 from ns."""
    if not addrs:
        return {}
    p = _run([sys.executable, "-c", _PROBE, str(deadline_s), str(SSH_PORT)] + list(addrs),
             ns=ns, check=False, timeout=deadline_s + 30)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {a: "probe failed: " + p.stderr.strip() for a in addrs}


# --------------------------------------------------------------------------
# NFQUEUE delay/loss, for kernels without sch_netem

CLONE_NEWNET = 0x40000000
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 4
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_DROP, NF_ACCEPT = 0, 1
NFQUEUE_NUM = 0
SO_RCVBUFFORCE = 33


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def _nla(atype, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * ((4 - n % 4) % 4)


def _nfq_msg(mtype, flags, seq, queue, attrs, family=socket.AF_UNSPEC):
    body = struct.pack("=BBH", family, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | mtype,
                       NLM_F_REQUEST | flags, seq, 0) + body


def _nfq_verdict(queue, pid, verdict):
    return _nfq_msg(NFQNL_MSG_VERDICT, 0, 0, queue,
                    [_nla(NFQA_VERDICT_HDR, struct.pack(">II", verdict, pid))])


def _nfq_open(ns, queue):
    """A netfilter queue socket bound to queue `queue` of namespace ns; the
    calling thread is back in its own namespace when this returns."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))
    msgs = [
        [_nla(NFQA_CFG_CMD, struct.pack(">BxH", NFQNL_CFG_CMD_BIND, 0))],
        [_nla(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META)),
         _nla(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", 20000)),
         _nla(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_GSO)),
         _nla(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_GSO))],
    ]
    for seq, attrs in enumerate(msgs, 1):
        s.send(_nfq_msg(NFQNL_MSG_CONFIG, NLM_F_ACK, seq, queue, attrs))
        data = s.recv(4096)
        _, mtype, _, _, _ = struct.unpack_from("=IHHII", data)
        if mtype == NLMSG_ERROR:
            err = struct.unpack_from("=i", data, 16)[0]
            if err:
                raise OSError(-err, "nfqueue config: " + os.strerror(-err))
    return s


class _Stop(Exception):
    pass


def _nfqueue_main(ns, delay_ms, loss_pct, log, queue=NFQUEUE_NUM):
    """The verdict daemon: every packet queued in ns is accepted delay_ms after
    it arrived, or dropped with probability loss_pct%. Prints "ready PID" once
    bound, from a process detached from the caller; then writes to log."""
    s = _nfq_open(ns, queue)
    ino = _ns_inode(ns)
    if os.fork():
        os._exit(0)
    os.setsid()
    sys.stdout.write("ready {}\n".format(os.getpid()))
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    logfd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(logfd, 2)

    def stop(*_):
        raise _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = delay_ms / 1000.0
    rng = random.Random()
    pending = collections.deque()          # (due, packet id)
    s.setblocking(False)
    last_check = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            out = []
            while pending and pending[0][0] <= now:
                out.append(_nfq_verdict(queue, pending.popleft()[1], NF_ACCEPT))
            if out:
                s.send(b"".join(out))
            if now - last_check > 1.0:
                last_check = now
                if _ns_inode(ns) != ino:
                    return                  # the namespace is gone
            timeout = max(0.0, pending[0][0] - now) if pending else 1.0
            r, _, _ = select.select([s], [], [], timeout)
            if not r:
                continue
            out = []
            while True:
                try:
                    data = s.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.ENOBUFS:
                        continue
                    raise
                arrived = time.monotonic()
                off = 0
                while off + 16 <= len(data):
                    mlen, mtype = struct.unpack_from("=IH", data, off)
                    if mlen < 16:
                        break
                    if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        a = off + 20
                        while a + 4 <= off + mlen:
                            alen, atype = struct.unpack_from("=HH", data, a)
                            if alen < 4:
                                break
                            if atype & 0x7fff == NFQA_PACKET_HDR:
                                pid = struct.unpack_from(">I", data, a + 4)[0]
                                if loss_pct > 0 and rng.random() * 100.0 < loss_pct:
                                    out.append(_nfq_verdict(queue, pid, NF_DROP))
                                elif delay <= 0:
                                    out.append(_nfq_verdict(queue, pid, NF_ACCEPT))
                                else:
                                    pending.append((arrived + delay, pid))
                                break
                            a += (alen + 3) & ~3
                    off += (mlen + 3) & ~3
            if out:
                s.send(b"".join(out))
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        s.setblocking(True)
        out = [_nfq_verdict(queue, pid, NF_ACCEPT) for _, pid in pending]
        for i in range(0, len(out), 256):
            s.send(b"".join(out[i:i + 256]))


# --------------------------------------------------------------------------
# the hosts

@dataclasses.dataclass
class Host:
    name: str                 # h1 (the ssh alias), or client
    netns: str                # TAG-h1
    addr: str                 # 10.X.Y.11
    veth_host: str            # eth0, inside netns
    veth_bridge: str          # TAG-h1b, on the bridge
    dir: str = ""             # DIR/h1: sshd_config, keys, logs
    root: str = ""            # DIR/h1/root: the host's working area (HOME over ssh)
    sshd_config: str = ""
    sshd_log: str = ""
    sshd_pidfile: str = ""
    host_key: str = ""
    sshd_pid: int | None = None
    netem: dict | None = None


class Hosts:
    """N hosts and a client in network namespaces (see the module docstring).

    Hosts(n, tag=None, subnet=None, base_dir=None): base_dir is DIR (a fresh
    temporary directory, removed by down(), when None). Use as a context
    manager or call up()/down(). Hosts.load(DIR) attaches to hosts that
    `netns_hosts.py up` (or another process) made.
    """

    def __init__(self, n=2, tag=None, subnet=None, base_dir=None, sshd=SSHD,
                 ready_timeout=10.0):
        if not 1 <= int(n) <= MAX_HOSTS:
            raise HarnessError("n must be 1..{}".format(MAX_HOSTS))
        if tag is not None and not TAG_RE.match(tag):
            raise HarnessError("tag must be 1-8 lowercase letters and digits, starting "
                               "with a letter, not " + repr(tag))
        self.n = int(n)
        self.tag = tag
        self._subnet_arg = subnet
        self.subnet = None
        self._own_dir = base_dir is None
        self.dir = os.path.abspath(base_dir) if base_dir else None
        self.sshd = sshd
        self.ready_timeout = ready_timeout
        self.hosts: list[Host] = []
        self.client: Host | None = None
        self.bridge = {}
        self.firewall = []
        self.state = "new"

    # ---- paths
    @property
    def json_path(self):
        return os.path.join(self.dir, "hosts.json")

    @property
    def ssh_config(self):
        return os.path.join(self.dir, "ssh_config")

    @property
    def key(self):
        return os.path.join(self.dir, "id_ed25519")

    @property
    def known_hosts(self):
        return os.path.join(self.dir, "known_hosts")

    @property
    def authorized_keys(self):
        return os.path.join(self.dir, "authorized_keys")

    @property
    def names(self):
        return [h.name for h in self.hosts]

    def __getitem__(self, h):
        return self.host(h)

    def host(self, h):
        """The Host for 'h1', 1, 'TAG-h1', an address, or 'client'."""
        if isinstance(h, Host):
            return h
        if isinstance(h, int):
            h = "h{}".format(h)
        for x in self.hosts + ([self.client] if self.client else []):
            if h in (x.name, x.netns, x.addr):
                return x
        raise HarnessError("no host {!r} (hosts: {})".format(h, ", ".join(self.names)))

    # ---- persistence
    def to_dict(self):
        return {
            "version": 1, "tag": self.tag, "dir": self.dir, "state": self.state,
            "subnet": str(self.subnet) if self.subnet else None, "own_dir": self._own_dir,
            "bridge": self.bridge,
            "hosts": [dataclasses.asdict(h) for h in self.hosts],
            "client": dataclasses.asdict(self.client) if self.client else None,
            "ssh_config": self.ssh_config, "key": self.key, "known_hosts": self.known_hosts,
            "authorized_keys": self.authorized_keys, "firewall": self.firewall,
            "sshd": self.sshd,
        }

    def save(self):
        tmp = self.json_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, self.json_path)

    @classmethod
    def load(cls, base_dir):
        path = os.path.join(os.path.abspath(base_dir), "hosts.json")
        try:
            with open(path) as f:
                d = json.load(f)
        except FileNotFoundError:
            raise HarnessError("no {} (was `up` run with this --dir?)".format(path))
        hs = cls(max(1, len(d.get("hosts") or [])), tag=d["tag"], subnet=d.get("subnet"),
                 base_dir=d.get("dir") or base_dir, sshd=d.get("sshd") or SSHD)
        hs._own_dir = bool(d.get("own_dir"))
        hs.subnet = ipaddress.ip_network(d["subnet"]) if d.get("subnet") else None
        hs.bridge = d.get("bridge") or {}
        hs.hosts = [Host(**h) for h in d.get("hosts") or []]
        hs.client = Host(**d["client"]) if d.get("client") else None
        hs.firewall = d.get("firewall") or []
        hs.state = d.get("state", "unknown")
        return hs

    # ---- context manager
    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    # ---- up
    def _plan(self):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="netns-hosts-")
        if re.search(r"\s", self.dir):
            raise HarnessError("DIR must not contain whitespace: " + repr(self.dir))
        os.makedirs(self.dir, exist_ok=True)
        existing = set(_netns_list())
        links = set(_links())

        def in_use(tag):
            return (tag + "-br") in links or any(_tag_netns_re(tag).match(x) for x in existing)
        if self.tag is None:
            for _ in range(100):
                t = "nh{:04x}".format(random.getrandbits(16))
                if not in_use(t):
                    self.tag = t
                    break
        elif in_use(self.tag):
            raise HarnessError("tag {} is in use (namespaces or bridge {}-br exist; "
                               "`down` them first)".format(self.tag, self.tag))
        self.subnet = _parse_subnet(self._subnet_arg) if self._subnet_arg else _pick_subnet(self.tag)
        if self._subnet_arg:
            clash = [str(u) for u in _used_networks() if self.subnet.overlaps(u)]
            if clash:
                raise HarnessError("subnet {} overlaps routes of the root namespace: {}".format(
                    self.subnet, ", ".join(clash)))
        base = self.subnet.network_address
        self.bridge = {"name": self.tag + "-br", "addr": str(base + BRIDGE_OCTET),
                       "prefixlen": self.subnet.prefixlen}
        self.hosts = []
        for i in range(1, self.n + 1):
            d = os.path.join(self.dir, "h{}".format(i))
            self.hosts.append(Host(
                name="h{}".format(i), netns="{}-h{}".format(self.tag, i),
                addr=str(base + HOST_BASE + i), veth_host="eth0",
                veth_bridge="{}-h{}b".format(self.tag, i), dir=d, root=os.path.join(d, "root"),
                sshd_config=os.path.join(d, "sshd_config"), sshd_log=os.path.join(d, "sshd.log"),
                sshd_pidfile=os.path.join(d, "sshd.pid"),
                host_key=os.path.join(d, "ssh_host_ed25519_key")))
        self.client = Host(name="client", netns=self.tag + "-client",
                           addr=str(base + CLIENT_OCTET), veth_host="eth0",
                           veth_bridge=self.tag + "-cb", dir=os.path.join(self.dir, "client"),
                           root=os.path.join(self.dir, "client", "root"))
        self.firewall = []
        self.state = "creating"
        self.save()                    # from here on, down() can undo a half-made set

    def _keys(self):
        for h in self.hosts + [self.client]:
            os.makedirs(h.root, exist_ok=True)
        procs = []
        todo = [(self.key, "netns-hosts client")] + [(h.host_key, "netns-hosts " + h.name)
                                                     for h in self.hosts]
        for path, comment in todo:
            if not (os.path.exists(path) and os.path.exists(path + ".pub")):
                for p in (path, path + ".pub"):
                    if os.path.exists(p):
                        os.unlink(p)
                procs.append((path, subprocess.Popen(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        for path, p in procs:
            out = p.communicate()[0]
            if p.returncode != 0:
                raise HarnessError("ssh-keygen for {} failed: {}".format(path, out.decode().strip()))
        with open(self.key + ".pub") as f:
            _write(self.authorized_keys, f.read())
        lines = []
        for h in self.hosts:
            with open(h.host_key + ".pub") as f:
                ktype, kdata = f.read().split()[:2]
            lines.append("{},{} {} {}\n".format(h.name, h.addr, ktype, kdata))
        _write(self.known_hosts, "".join(lines))

    def _configs(self):
        for h in self.hosts:
            _write(h.sshd_config, "\n".join([
                "# netns_hosts: sshd of host {} (tag {}), network namespace {}".format(
                    h.name, self.tag, h.netns),
                "ListenAddress {}:{}".format(h.addr, SSH_PORT),
                "HostKey " + h.host_key,
                "PidFile " + h.sshd_pidfile,
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "AuthorizedKeysFile " + self.authorized_keys,
                "# DIR may sit under /tmp (world-writable), which StrictModes refuses",
                "StrictModes no",
                "# no AcceptEnv: the client's environment is not passed",
                "PrintMotd no",
                "Subsystem sftp internal-sftp",
                "SetEnv HOME={} NETNS_HOST={} NETNS_HOST_ADDR={}".format(h.root, h.name, h.addr),
                ""]))
        entries = ["# netns_hosts tag {}: ssh -F {} h1 CMD".format(self.tag, self.ssh_config)]
        for h in self.hosts:
            entries += ["Host {} {}".format(h.name, h.addr), "  HostName " + h.addr]
        entries += [
            "Host *",
            "  User root",
            "  Port {}".format(SSH_PORT),
            "  IdentityFile " + self.key,
            "  IdentitiesOnly yes",
            "  UserKnownHostsFile " + self.known_hosts,
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  UpdateHostKeys no",
            "  CheckHostIP no",
            "  BatchMode yes",
            "  ConnectTimeout 3",
            "  ControlMaster no",
            "  ControlPath none",
            "  LogLevel ERROR",
            ""]
        _write(self.ssh_config, "\n".join(entries))

    def _network(self):
        br, prefix = self.bridge["name"], self.bridge["prefixlen"]
        if _bridge_nf_call_iptables() and shutil.which("iptables"):
            rule = ["-i", br, "-o", br, "-m", "comment", "--comment",
                    COMMENT_PREFIX + self.tag, "-j", "ACCEPT"]
            self.firewall.append({"tool": "iptables", "table": "filter", "chain": "FORWARD",
                                  "rule": rule})
            self.save()
            _run(["iptables", "-w", "5", "-t", "filter", "-I", "FORWARD", "1"] + rule)
        root = ["link add {} type bridge".format(br),
                "addr add {}/{} dev {}".format(self.bridge["addr"], prefix, br),
                "link set {} up".format(br)]
        everyone = self.hosts + [self.client]
        for h in everyone:
            root += ["netns add " + h.netns,
                     "link add {} type veth peer name {} netns {}".format(
                         h.veth_bridge, h.veth_host, h.netns),
                     "link set {} master {} up".format(h.veth_bridge, br)]
        _ip_batch(root)
        for h in everyone:
            _ip_batch(["link set lo up",
                       "addr add {}/{} dev {}".format(h.addr, prefix, h.veth_host),
                       "link set {} up".format(h.veth_host)], ns=h.netns)

    def _start_sshd(self, hosts):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege separation dir
        procs = []
        for h in hosts:
            os.makedirs(h.root, exist_ok=True)
            if os.path.exists(h.sshd_pidfile):
                os.unlink(h.sshd_pidfile)
            with open(h.sshd_log, "a") as log:
                log.write("--- netns_hosts: starting sshd {}\n".format(time.strftime("%F %T")))
            procs.append((h, subprocess.Popen(
                ["ip", "netns", "exec", h.netns, self.sshd, "-f", h.sshd_config, "-E", h.sshd_log],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        early = {}
        for h, p in procs:
            out = p.communicate(timeout=30)[0].decode(errors="replace").strip()
            if p.returncode != 0:
                early[h.name] = "sshd exited with {}{}".format(p.returncode, ": " + out if out else "")
        self._wait_ready(hosts, early)

    def _wait_ready(self, hosts, early=None):
        early = dict(early or {})
        waiting = [h for h in hosts if h.name not in early]
        res = _probe(self.client.netns, [h.addr for h in waiting], self.ready_timeout)
        failed = []
        for h in hosts:
            why = early.get(h.name) or (None if res.get(h.addr) == "ok" else res.get(h.addr))
            pid = _read_pidfile(h.sshd_pidfile)
            if why is None and not pid:
                why = "no pid file " + h.sshd_pidfile
            if why:
                failed.append("{} ({} in {}): {}\n  {} (last lines):\n    {}".format(
                    h.name, h.addr, h.netns, why, h.sshd_log,
                    _tail(h.sshd_log).replace("\n", "\n    ")))
            else:
                h.sshd_pid = pid
        if failed:
            hint = ""
            if any("timed out" in f or "No route" in f for f in failed):
                hint = ("\n(connections from {} time out: check the FORWARD rules of "
                        "iptables/nftables for bridge {})".format(self.client.netns,
                                                                 self.bridge["name"]))
            raise HarnessError("sshd did not come up on {} host(s):\n{}{}".format(
                len(failed), "\n".join(failed), hint))

    def up(self):
        """Creates everything; on failure undoes it and raises HarnessError."""
        check_requirements()
        if self.state == "up":
            return self
        self._plan()                  # raises before creating anything (tag in use, ...)
        try:
            self._keys()
            self._configs()
            self._network()
            self._start_sshd(self.hosts)
            self.state = "up"
            self.save()
        except BaseException:
            try:
                self.down()
            except Exception as e:                 # keep the first error
                sys.stderr.write("netns_hosts: cleanup after failed up: {}\n".format(e))
            raise
        return self

    # ---- down
    def down(self):
        """Kills every process of the namespaces, deletes them, the veths, the
        bridge and the firewall rule. Idempotent; works on a half-made set."""
        if self.tag is None:
            return
        errors = []
        for h in self.hosts + ([self.client] if self.client else []):
            try:
                _stop_nfqueue(h)
            except Exception as e:
                errors.append(str(e))
        ns_re = _tag_netns_re(self.tag)
        names = {h.netns for h in self.hosts + ([self.client] if self.client else [])}
        present = set(_netns_list())
        for ns in sorted((names & present) | {x for x in present if ns_re.match(x)}):
            try:
                _kill_ns_processes(ns)
            except HarnessError as e:
                errors.append(str(e))
            p = _run(["ip", "netns", "del", ns], check=False)
            if p.returncode != 0 and ns in _netns_list():
                errors.append("ip netns del {}: {}".format(ns, p.stderr.strip()))
        link_re = re.compile(r"^{}-(br|h\d+b|cb)$".format(re.escape(self.tag)))
        ours = {h.veth_bridge for h in self.hosts + ([self.client] if self.client else [])}
        ours.add(self.tag + "-br")
        for l in _links():
            if l in ours or link_re.match(l):
                p = _run(["ip", "link", "del", l], check=False)
                if p.returncode != 0 and l in _links():
                    errors.append("ip link del {}: {}".format(l, p.stderr.strip()))
        errors += _remove_firewall(self.tag, self.firewall)
        for h in self.hosts:
            h.sshd_pid = None
            h.netem = None
        if self.dir and os.path.isdir(self.dir):
            self.state = "down"
            self.save()
            if self._own_dir and not os.environ.get("NETNS_HOSTS_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise HarnessError("down left things behind:\n  " + "\n  ".join(errors))

    # ---- status
    def status(self):
        """A dict: per host whether its namespace, veths, sshd and port 22 (from
        the client namespace) are there; "ok" is True when all are."""
        present = set(_netns_list())
        out = {"tag": self.tag, "dir": self.dir, "state": self.state,
               "subnet": str(self.subnet) if self.subnet else None,
               "bridge": dict(self.bridge, present=_link_state(self.bridge.get("name", "")) is not None),
               "hosts": {}, "client": None, "firewall": []}
        reach = {}
        if self.client and self.client.netns in present:
            reach = _probe(self.client.netns, [h.addr for h in self.hosts if h.netns in present], 1.0)
        ok = out["bridge"]["present"]
        for h in self.hosts:
            pid = _read_pidfile(h.sshd_pidfile)
            sshd_ok = bool(pid) and _alive(pid) and _pid_netns_inode(pid) == _ns_inode(h.netns)
            st = {"netns": h.netns, "addr": h.addr, "netns_present": h.netns in present,
                  "veth_bridge": _link_state(h.veth_bridge),
                  "veth_host": _link_state(h.veth_host, h.netns) if h.netns in present else None,
                  "sshd_pid": pid if sshd_ok else None, "ssh_port": reach.get(h.addr, "not tried"),
                  "netem": h.netem,
                  "processes": len(_ns_pids(h.netns)) if h.netns in present else 0}
            st["ok"] = bool(st["netns_present"] and sshd_ok and st["ssh_port"] == "ok"
                            and st["veth_bridge"] and st["veth_bridge"]["up"]
                            and st["veth_host"] and st["veth_host"]["up"])
            ok = ok and st["ok"]
            out["hosts"][h.name] = st
        if self.client:
            out["client"] = {"netns": self.client.netns, "addr": self.client.addr,
                             "netns_present": self.client.netns in present}
            ok = ok and out["client"]["netns_present"]
        for f in self.firewall:
            p = _run([f["tool"], "-w", "5", "-t", f["table"], "-C", f["chain"]] + f["rule"], check=False)
            out["firewall"].append({"rule": " ".join(f["rule"]), "present": p.returncode == 0})
            ok = ok and p.returncode == 0
        out["ok"] = bool(ok and self.hosts)
        return out

    # ---- faults and commands
    def kill_host(self, h):
        """SIGKILLs every process in h's namespace (sshd and all it started);
        returns their pids. The network stays; restart_sshd brings ssh back."""
        h = self.host(h)
        pids = _kill_ns_processes(h.netns)
        h.sshd_pid = None
        self.save()
        return pids

    def restart_sshd(self, h):
        """Starts h's sshd unless it runs, and waits until it answers."""
        h = self.host(h)
        pid = _read_pidfile(h.sshd_pidfile)
        if pid and _alive(pid) and _pid_netns_inode(pid) == _ns_inode(h.netns):
            h.sshd_pid = pid
        else:
            self._start_sshd([h])
        self.save()
        return h.sshd_pid

    def link(self, h, state, side="both"):
        """Sets h's link up or down: side 'bridge' (TAG-h<i>b, the switch port),
        'host' (eth0 in the namespace) or 'both'."""
        h = self.host(h)
        if state not in ("up", "down"):
            raise HarnessError("link state must be up or down, not " + repr(state))
        if side not in ("both", "bridge", "host"):
            raise HarnessError("side must be both, bridge or host, not " + repr(side))
        if side in ("both", "host"):
            _run(["ip", "-n", h.netns, "link", "set", h.veth_host, state])
        if side in ("both", "bridge"):
            _run(["ip", "link", "set", h.veth_bridge, state])

    def netem(self, h, delay_ms, loss_pct=0.0):
        """Delays (ms) and drops (percent) what h sends on eth0: tc netem in
        h's namespace, or NFQUEUE when the kernel has no netem."""
        h = self.host(h)
        delay_ms, loss_pct = float(delay_ms), float(loss_pct)
        if delay_ms < 0 or not 0 <= loss_pct <= 100:
            raise HarnessError("delay_ms must be >= 0 and loss_pct 0..100")
        p = _run(["tc", "-n", h.netns, "qdisc", "replace", "dev", h.veth_host, "root", "netem",
                  "delay", "{:g}ms".format(delay_ms), "loss", "{:g}%".format(loss_pct)], check=False)
        if p.returncode == 0:
            _stop_nfqueue(h)
            h.netem = {"method": "tc", "delay_ms": delay_ms, "loss_pct": loss_pct}
        elif "unknown" in p.stderr.lower() or "not supported" in p.stderr.lower():
            h.netem = _start_nfqueue(h, delay_ms, loss_pct)
        else:
            raise HarnessError("tc qdisc replace ... netem in {}: {}".format(h.netns, p.stderr.strip()))
        self.save()
        return h.netem

    def netem_clear(self, h):
        h = self.host(h)
        _run(["tc", "-n", h.netns, "qdisc", "del", "dev", h.veth_host, "root"], check=False)
        _stop_nfqueue(h)
        h.netem = None
        self.save()

    def exec(self, h, argv, check=False, timeout=60, input=None):
        """Runs argv (a list, or a string for sh -c) in h's namespace directly
        (ip netns exec, no ssh); returns a CompletedProcess with text output."""
        h = self.host(h)
        if isinstance(argv, str):
            argv = ["sh", "-c", argv]
        return _run(list(argv), ns=h.netns, check=check, timeout=timeout, input=input)

    def popen(self, h, argv, **kw):
        """subprocess.Popen of argv in h's namespace (kill_host kills it)."""
        h = self.host(h)
        if isinstance(argv, str):
            argv = ["sh", "-c", argv]
        return subprocess.Popen(["ip", "netns", "exec", h.netns] + list(argv), **kw)

    def ssh_argv(self, h, cmd=None, via="client"):
        """The argv that runs cmd (a string, or a list shell-quoted) on h over
        ssh, from via: 'client', 'root' (the root namespace) or a host."""
        h = self.host(h)
        if h is self.client:
            raise HarnessError("the client runs no sshd")
        argv = ["ssh", "-F", self.ssh_config, h.name]
        if cmd is not None:
            argv += ["--", cmd if isinstance(cmd, str) else shlex.join(cmd)]
        if via == "root":
            return argv
        return ["ip", "netns", "exec", self.host(via).netns] + argv

    def ssh(self, h, cmd, via="client", check=False, timeout=60, input=None):
        """Runs cmd on h over ssh (from the client namespace by default);
        returns a CompletedProcess with text output."""
        return _run(self.ssh_argv(h, cmd, via), check=check, timeout=timeout, input=input)


def _tag_netns_re(tag):
    return re.compile(r"^{}-(h\d+|client)$".format(re.escape(tag)))


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _remove_firewall(tag, recorded):
    """Deletes the recorded rules and any other FORWARD rule commented with the tag."""
    errors = []
    if not shutil.which("iptables"):
        return errors
    rules = [r["rule"] for r in recorded if r.get("tool") == "iptables"]
    p = _run(["iptables", "-w", "5", "-t", "filter", "-S", "FORWARD"], check=False)
    for line in p.stdout.splitlines():
        if COMMENT_PREFIX + tag in line and line.startswith("-A FORWARD "):
            words = shlex.split(line)[2:]
            if words not in rules:
                rules.append(words)
    for rule in rules:
        for _ in range(20):                     # every copy of it
            if _run(["iptables", "-w", "5", "-t", "filter", "-D", "FORWARD"] + rule,
                    check=False).returncode != 0:
                break
    p = _run(["iptables", "-w", "5", "-t", "filter", "-S", "FORWARD"], check=False)
    left = [l for l in p.stdout.splitlines() if (COMMENT_PREFIX + tag) in l]
    if left:
        errors.append("iptables rules left: " + "; ".join(left))
    return errors


def _nfqueue_rule(h):
    return ["OUTPUT", "-o", h.veth_host, "-m", "comment", "--comment", "netns-hosts-netem",
            "-j", "NFQUEUE", "--queue-num", str(NFQUEUE_NUM), "--queue-bypass"]


def _nfqueue_pidfile(h):
    return os.path.join(h.dir, "netem.pid")


def _start_nfqueue(h, delay_ms, loss_pct):
    _stop_nfqueue(h, keep_rule=True)
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_nfqueue", h.netns,
                          "{:g}".format(delay_ms), "{:g}".format(loss_pct),
                          os.path.join(h.dir, "netem.log")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    err = ""
    if not line.startswith("ready "):
        err = p.stderr.read()
    p.wait(timeout=10)
    p.stdout.close()
    p.stderr.close()
    if not line.startswith("ready "):
        raise HarnessError("the NFQUEUE delay daemon for {} did not start: {}".format(
            h.netns, (line + err).strip()))
    pid = int(line.split()[1])
    _write(_nfqueue_pidfile(h), "{}\n".format(pid))
    rule = _nfqueue_rule(h)
    if _run(["iptables", "-w", "5", "-C"] + rule, ns=h.netns, check=False).returncode != 0:
        _run(["iptables", "-w", "5", "-A"] + rule, ns=h.netns)
    return {"method": "nfqueue", "delay_ms": delay_ms, "loss_pct": loss_pct, "pid": pid}


def _stop_nfqueue(h, keep_rule=False):
    if not keep_rule and _ns_inode(h.netns) and shutil.which("iptables"):
        for _ in range(5):
            if _run(["iptables", "-w", "5", "-D"] + _nfqueue_rule(h), ns=h.netns,
                    check=False).returncode != 0:
                break
    pidfile = _nfqueue_pidfile(h)
    pid = _read_pidfile(pidfile)
    if pid and _alive(pid):
        cmd = _cmdline(pid)
        if b"_nfqueue" in cmd and h.netns.encode() in cmd:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    if os.path.exists(pidfile):
        os.unlink(pidfile)


# --------------------------------------------------------------------------
# module-level API: each takes a Hosts or a DIR

def _hs(x):
    return x if isinstance(x, Hosts) else Hosts.load(x)


def up(n=2, base_dir=None, tag=None, subnet=None, **kw):
    return Hosts(n, tag=tag, subnet=subnet, base_dir=base_dir, **kw).up()


def down(hosts):
    """Tears down the hosts of a Hosts or a DIR; nothing to do without hosts.json."""
    if not isinstance(hosts, Hosts) and not os.path.exists(os.path.join(hosts, "hosts.json")):
        return
    _hs(hosts).down()


def status(hosts):
    return _hs(hosts).status()


def kill_host(hosts, h):
    return _hs(hosts).kill_host(h)


def restart_sshd(hosts, h):
    return _hs(hosts).restart_sshd(h)


def link(hosts, h, state, side="both"):
    return _hs(hosts).link(h, state, side)


def netem(hosts, h, delay_ms, loss_pct=0.0):
    return _hs(hosts).netem(h, delay_ms, loss_pct)


def netem_clear(hosts, h):
    return _hs(hosts).netem_clear(h)


def exec(hosts, h, argv, **kw):          # noqa: A001 (the brief's name)
    return _hs(hosts).exec(h, argv, **kw)


def ssh(hosts, h, cmd, via="client", **kw):
    return _hs(hosts).ssh(h, cmd, via=via, **kw)


# --------------------------------------------------------------------------
# command line

def _main(argv=None):
    ap = argparse.ArgumentParser(prog="netns_hosts.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def cmd(name, help, host=False):
        p = sub.add_parser(name, help=help)
        p.add_argument("--dir", required=True, help="the harness directory (hosts.json)")
        if host:
            p.add_argument("host", help="h1, h2, ... (or client where it makes sense)")
        return p
    p = cmd("up", "create the hosts")
    p.add_argument("--hosts", type=int, default=2)
    p.add_argument("--name", help="the tag (1-8 of [a-z0-9]); default: hosts.json's, or random")
    p.add_argument("--subnet", help="a private /24, e.g. 10.213.7.0/24 (default from the tag)")
    p.add_argument("--ready-timeout", type=float, default=10.0)
    cmd("down", "tear everything down (idempotent)")
    cmd("status", "print the state as JSON; exit 0 when every host is fine")
    cmd("kill-host", "SIGKILL every process of a host, sshd included", host=True)
    cmd("restart-sshd", "start a host's sshd again", host=True)
    p = cmd("link", "set a host's link up or down", host=True)
    p.add_argument("state", choices=["up", "down"])
    p.add_argument("--side", choices=["both", "bridge", "host"], default="both")
    p = cmd("netem", "delay/drop what a host sends", host=True)
    p.add_argument("delay_ms", type=float)
    p.add_argument("loss_pct", type=float, nargs="?", default=0.0)
    cmd("netem-clear", "remove a host's delay/loss", host=True)
    p = cmd("exec", "run a command in a host's namespace (no ssh)", host=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = cmd("ssh", "run a command on a host over ssh", host=True)
    p.add_argument("--via", default="client", help="client (default), root or a host")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_nfqueue":
        _nfqueue_main(argv[1], float(argv[2]), float(argv[3]), argv[4])
        return 0
    a = ap.parse_args(argv)
    try:
        if a.cmd == "up":
            tag, subnet = a.name, a.subnet
            if os.path.exists(os.path.join(a.dir, "hosts.json")):
                old = Hosts.load(a.dir)
                if old.state in ("up", "creating"):
                    raise HarnessError("{} is {} (tag {}): run down first".format(
                        a.dir, old.state, old.tag))
                tag = tag or old.tag
                subnet = subnet or (str(old.subnet) if old.subnet and not a.name else None)
            t0 = time.monotonic()
            hs = Hosts(a.hosts, tag=tag, subnet=subnet, base_dir=a.dir,
                       ready_timeout=a.ready_timeout).up()
            print("netns_hosts: tag {} up in {:.2f} s, bridge {} {}/24, DIR {}".format(
                hs.tag, time.monotonic() - t0, hs.bridge["name"], hs.bridge["addr"], hs.dir))
            for h in hs.hosts:
                print("  {:4} {:15} netns {:14} sshd pid {}".format(h.name, h.addr, h.netns, h.sshd_pid))
            print("  client {} netns {}".format(hs.client.addr, hs.client.netns))
            print("  ip netns exec {} ssh -F {} h1 hostname".format(hs.client.netns, hs.ssh_config))
            return 0
        if a.cmd == "down":
            down(a.dir)
            return 0
        if a.cmd == "status":
            if not os.path.exists(os.path.join(a.dir, "hosts.json")):
                print(json.dumps({"ok": False, "error": "no hosts.json in " + a.dir}))
                return 2
            st = status(a.dir)
            print(json.dumps(st, indent=2))
            return 0 if st["ok"] else 1
        hs = Hosts.load(a.dir)
        if a.cmd == "kill-host":
            print(" ".join(map(str, hs.kill_host(a.host))))
        elif a.cmd == "restart-sshd":
            print(hs.restart_sshd(a.host))
        elif a.cmd == "link":
            hs.link(a.host, a.state, a.side)
        elif a.cmd == "netem":
            print(json.dumps(hs.netem(a.host, a.delay_ms, a.loss_pct)))
        elif a.cmd == "netem-clear":
            hs.netem_clear(a.host)
        elif a.cmd in ("exec", "ssh"):
            rest = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
            if not rest:
                raise HarnessError("no command given")
            if a.cmd == "exec":
                argv = ["ip", "netns", "exec", hs.host(a.host).netns] + rest
            else:
                argv = hs.ssh_argv(a.host, rest[0] if len(rest) == 1 else shlex.join(rest), a.via)
            return subprocess.call(argv)
        return 0
    except (HarnessError, HarnessUnavailable) as e:
        print("netns_hosts: error: {}".format(e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main())
