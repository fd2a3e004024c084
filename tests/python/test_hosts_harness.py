"""The multi-host harness (tests/hosts/netns_hosts.py): network namespaces on
a bridge, each a host running Debian's sshd, a client namespace, and the fault
helpers. Needs root, iproute2 and openssh-server (skips without them); the
ping test also iputils-ping (.ci/setup installs all of them)."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "..", "hosts", "netns_hosts.py")
sys.path.insert(0, os.path.dirname(HARNESS))
import netns_hosts as nh  # noqa: E402


def require():
    try:
        nh.check_requirements()
    except nh.HarnessUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def hs():
    require()
    hosts = nh.Hosts(2)
    hosts.up()
    try:
        yield hosts
    finally:
        hosts.down()
        assert leftovers(hosts) == []


def ns_inode(ns):
    return os.stat("/run/netns/" + ns).st_ino


def pid_ns_inode(pid):
    link = os.readlink("/proc/{}/ns/net".format(pid))
    return int(re.fullmatch(r"net:\[(\d+)\]", link).group(1))


def alive(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def leftovers(hosts):
    """What of hosts' tag is still there: namespaces, links, firewall rules,
    processes whose command line names its directory."""
    left = ["netns " + n for n in nh._netns_list() if n.startswith(hosts.tag + "-")]
    left += ["link " + l for l in nh._links() if l.startswith(hosts.tag + "-")]
    if shutil.which("iptables"):
        rules = subprocess.run(["iptables", "-w", "5", "-S", "FORWARD"], capture_output=True,
                               text=True).stdout
        left += [r for r in rules.splitlines() if "netns-hosts:" + hosts.tag in r]
    needle = hosts.dir.encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit() and alive(int(pid)):
            try:
                with open("/proc/{}/cmdline".format(pid), "rb") as f:
                    if needle in f.read():
                        left.append("process {}".format(pid))
            except OSError:
                pass
    return left


def rtt_avg(hosts, h):
    p = hosts.exec("client", ["ping", "-n", "-c", "3", "-i", "0.2", hosts[h].addr], timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"= [\d.]+/([\d.]+)/", p.stdout)
    assert m, p.stdout
    return float(m.group(1))


def test_up_two_hosts(hs):
    assert hs.names == ["h1", "h2"]
    h1, h2 = hs["h1"], hs["h2"]
    assert len({h1.addr, h2.addr, hs.client.addr, hs.bridge["addr"]}) == 4
    assert h1.netns == hs.tag + "-h1" and hs.client.netns == hs.tag + "-client"
    assert len(hs.bridge["name"]) <= 15
    for h in (h1, h2):
        # sshd runs inside its host's namespace, and only there
        assert alive(h.sshd_pid) and pid_ns_inode(h.sshd_pid) == ns_inode(h.netns)
        assert os.path.isdir(h.root)
    st = hs.status()
    assert st["ok"], st
    loaded = nh.Hosts.load(hs.dir)
    assert [h.addr for h in loaded.hosts] == [h1.addr, h2.addr]
    assert loaded.ssh_config == hs.ssh_config and loaded.state == "up"


def test_ssh_from_client_sees_own_address(hs):
    h1, h2 = hs["h1"], hs["h2"]
    for via in ("client", "root"):
        p = hs.ssh("h1", "ip -4 -o addr show; echo host=$NETNS_HOST home=$HOME", via=via)
        assert p.returncode == 0, p.stderr
        assert h1.addr + "/" in p.stdout and h2.addr + "/" not in p.stdout
        assert "host=h1 home=" + h1.root in p.stdout
    p = hs.ssh("h2", "hostname -I")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [h2.addr]


def test_host_to_host_ssh(hs):
    h1, h2 = hs["h1"], hs["h2"]
    p = hs.ssh("h1", "ssh -F {} h2 'echo host=$NETNS_HOST; hostname -I'".format(hs.ssh_config))
    assert p.returncode == 0, p.stderr
    assert "host=h2" in p.stdout and h2.addr in p.stdout.split()
    # ...and h2's sshd saw it come from h1's address
    with open(h2.sshd_log) as f:
        assert "Accepted publickey for root from {} ".format(h1.addr) in f.read()


def test_kill_host_and_restart_sshd(hs):
    h1, h2 = hs["h1"], hs["h2"]
    p = hs.ssh("h1", "sleep 1000 >/dev/null 2>&1 </dev/null & echo $!", check=True)
    pid = int(p.stdout.strip())
    assert alive(pid)
    assert pid_ns_inode(pid) == ns_inode(h1.netns) != ns_inode(h2.netns)
    sshd = h1.sshd_pid
    killed = hs.kill_host("h1")
    assert pid in killed and sshd in killed
    assert not alive(pid) and not alive(sshd)
    assert hs.exec("h1", ["true"]).returncode == 0   # the network stays, empty of processes
    assert hs.ssh("h1", "true").returncode == 255
    assert hs.ssh("h2", "true").returncode == 0      # the other host is untouched
    new = hs.restart_sshd("h1")
    assert new != sshd and alive(new) and pid_ns_inode(new) == ns_inode(h1.netns)
    p = hs.ssh("h1", "hostname -I")
    assert p.returncode == 0 and p.stdout.split() == [h1.addr], p.stderr


def test_link_down_and_up(hs):
    try:
        hs.link("h2", "down")
        t0 = time.monotonic()
        p = hs.ssh("h2", "true")
        took = time.monotonic() - t0
        assert p.returncode == 255, p.stdout
        assert took < 3 + 1.5, took                    # ConnectTimeout 3
        assert hs.ssh("h1", "true").returncode == 0
    finally:
        hs.link("h2", "up")
    p = hs.ssh("h2", "hostname -I")
    assert p.returncode == 0 and p.stdout.split() == [hs["h2"].addr], p.stderr


def test_netem_delay(hs):
    if not shutil.which("ping"):
        pytest.skip("ping is not installed (package iputils-ping)")
    base = rtt_avg(hs, "h1")
    try:
        info = hs.netem("h1", 50, 0)
        assert info["delay_ms"] == 50
        delayed = rtt_avg(hs, "h1")
        assert delayed >= base + 40, (base, delayed)
        assert rtt_avg(hs, "h2") < base + 10           # only h1's link
        assert hs.ssh("h1", "true").returncode == 0
        hs.kill_host("h1")                              # the link keeps its delay
        assert rtt_avg(hs, "h1") >= base + 40
    finally:
        hs.netem_clear("h1")
        hs.restart_sshd("h1")
    assert rtt_avg(hs, "h1") < base + 10
    assert hs["h1"].netem is None


def test_two_harnesses_and_down(hs, tmp_path):
    """A second harness beside the first (its own tag and /24), with a delay,
    processes started over ssh and directly; down leaves nothing of it, twice."""
    other = nh.Hosts(2, base_dir=str(tmp_path / "hosts"))
    direct = None
    try:
        other.up()
        assert other.tag != hs.tag and other.subnet != hs.subnet
        assert other.ssh("h2", "hostname -I").stdout.split() == [other["h2"].addr]
        assert hs.ssh("h2", "hostname -I").stdout.split() == [hs["h2"].addr]
        other.netem("h1", 5, 0)
        other.ssh("h1", "sleep 1000 >/dev/null 2>&1 </dev/null &", check=True)
        direct = other.popen("h2", ["sleep", "1000"])
        assert leftovers(other) != []
    finally:
        other.down()
    assert direct.wait(timeout=5) == -9
    assert leftovers(other) == []
    other.down()                                        # idempotent
    nh.down(other.dir)
    assert leftovers(other) == []
    assert not other.status()["ok"]
    assert hs.status()["ok"]                            # the first one is untouched


def test_failed_up_says_why_and_cleans_up(tmp_path):
    require()
    bad = nh.Hosts(1, base_dir=str(tmp_path / "bad"), sshd="/bin/false", ready_timeout=2)
    with pytest.raises(nh.HarnessError) as e:
        bad.up()
    msg = str(e.value)
    assert "h1" in msg and bad["h1"].addr in msg and "sshd.log" in msg, msg
    assert leftovers(bad) == []


def test_cli(tmp_path):
    require()
    d = str(tmp_path / "cli")

    def cli(*args, **kw):
        return subprocess.run([sys.executable, HARNESS] + list(args), capture_output=True,
                              text=True, timeout=120, **kw)
    p = cli("up", "--hosts", "1", "--dir", d)
    try:
        assert p.returncode == 0, p.stderr
        hosts = nh.Hosts.load(d)
        assert cli("status", "--dir", d).returncode == 0
        p = cli("ssh", "--dir", d, "h1", "--", "hostname", "-I")
        assert p.returncode == 0 and p.stdout.split() == [hosts["h1"].addr], p.stderr
        p = subprocess.run(["ip", "netns", "exec", hosts.client.netns,
                            "ssh", "-F", os.path.join(d, "ssh_config"), "h1", "echo", "ok"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout.strip() == "ok", p.stderr
        assert cli("kill-host", "--dir", d, "h1").returncode == 0
        assert cli("status", "--dir", d).returncode == 1
        assert cli("restart-sshd", "--dir", d, "h1").returncode == 0
        assert cli("status", "--dir", d).returncode == 0
        p = cli("exec", "--dir", d, "h1", "--", "ip", "-4", "-o", "addr", "show", "eth0")
        assert hosts["h1"].addr + "/24" in p.stdout
    finally:
        assert cli("down", "--dir", d).returncode == 0
    assert leftovers(hosts) == []
    assert cli("down", "--dir", d).returncode == 0
    assert cli("status", "--dir", d).returncode == 1
