"""A slice of the fault table across hosts (tests/fault/hosts_faults.py):
the host-kill and link-cut rows, short. A 3-host cluster on the multi-host harness's
network namespaces (clipper_admin.hosts up over ssh), a closure with one
replica per host, open-loop load from the client namespace, then every
process of h3 killed (its nats-server, frontend, manager, replica, sshd).

Targets, with the bounds this machine keeps (2 CPUs shared by every host):
no query lost outside [fault - SLO, fault + 0.2 s] (those inside may have
been inside h3's frontend or nats-server), predictions back within 2 s of the
kill, the state intact, and h3 rejoined once its sshd is restarted and
`hosts up` is run again (its manager in cm.hosts, the NATS routes complete,
its frontend answering). Needs root, iproute2, openssh-server (skips
without them), the clipper program, clipper-bench and nats-server: the
cluster one (tests/hosts/netns_hosts.py cluster_nats_server: env
CLIPPER_CLUSTER_NATS_SERVER, else the v2.14.10 .ci/setup builds, else
Debian's), given to the suite as its NATS_SERVER.
"""
import json
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import clipper_bin_or_skip

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "fault", "hosts_faults.py")
sys.path.insert(0, os.path.join(HERE, "..", "hosts"))
import netns_hosts as nh  # noqa: E402

RATE, SECONDS, FAULT_AT, SLO_MS = 200, 12, 5, 100


def run_row(name, *extra):
    """Runs the suite on one row with --check; its result (a dict)."""
    try:
        nh.check_requirements()
    except nh.HarnessUnavailable as e:
        pytest.skip(str(e))
    clipper = clipper_bin_or_skip()
    nats_server = nh.cluster_nats_server()
    if nats_server is None:
        pytest.skip("nats-server is not installed")
    print("nats-server: {}".format(nats_server))
    bench = os.path.join(os.path.dirname(clipper), "..", "..", "tests", "bench",
                         "clipper-bench")
    assert os.access(bench, os.X_OK), bench
    out = os.path.join(tempfile.mkdtemp(prefix="hosts-faults-"), name + ".json")
    r = subprocess.run([sys.executable, SUITE, "--bench", bench, "--rows", name,
                        "--rate", str(RATE), "--seconds", str(SECONDS), "--fault-at",
                        str(FAULT_AT), "--slo-ms", str(SLO_MS), "--json", out, "--check"]
                       + list(extra),
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, NATS_SERVER=nats_server))
    print(r.stdout[-4000:])
    sys.stderr.write(r.stderr[-3000:])
    assert os.path.exists(out), (r.returncode, r.stderr[-3000:])
    rows = json.load(open(out))
    assert [row["row"] for row in rows] == [name], rows
    row = rows[0]
    assert "error" not in row, row
    row["returncode"] = r.returncode
    return row


def test_link_cut_row():
    """h3's link down 3 s (no FIN, no RST: the other servers learn it only
    by their pings), the client on another server: every query is answered,
    the queries that went down the dead route before it closed by the
    client's resend, and h3 rejoins by itself when its link returns."""
    row = run_row("link-cut", "--cut-s", "3")
    assert row["sent"] == RATE * SECONDS, row
    assert row["client_on"] == "other" and row["bench_server"] != "h3", row
    assert row["errors"] == 0, row
    assert row["never_answered"] == 0, row
    assert row["predictions"] + row["late"] + row["defaults"] == row["sent"], row
    assert row["predictions"] >= 0.9 * row["sent"], row
    assert row["state_intact"] and row["correct_prediction"], row
    assert row["rejoined"], row
    assert row["placement_after"] == {"h1": [1, 1], "h2": [1, 1], "h3": [1, 1]}, row
    assert row["ok"] and row["returncode"] == 0, row


def test_host_kill_row():
    row = run_row("host-kill")
    # Every query scheduled is in the timeline, and nearly all got a prediction.
    assert row["sent"] == RATE * SECONDS, row
    assert row["errors"] == 0, row
    assert row["never_answered"] == row["never_in_window"], \
        "queries lost outside [fault - SLO, fault + 0.2 s]: {}".format(row)
    # What a dead frontend or server can hold: at most the SLO's worth of
    # one third of the load (one frontend of three), and a margin.
    assert row["never_in_window"] <= RATE * (SLO_MS / 1000.0 + 0.2) / 3 + 10, row
    assert row["predictions"] + row["late"] + row["defaults"] + row["errors"] + \
        row["never_answered"] == row["sent"], row
    assert row["predictions"] >= 0.97 * row["sent"], row
    assert row["resume_s"] <= 2.0, row
    assert row["state_intact"], row
    assert row["rejoined"], row
    assert row["placement_after"] == {"h1": [1, 1], "h2": [1, 1], "h3": [1, 1]}, row
    assert row["ok"] and row["returncode"] == 0, row
