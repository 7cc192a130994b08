"""The agent's observability against real traffic: kernel verdicts become flow records.

`warrant agent` runs in namespace B with a flow store and a metrics port; a
sender in namespace A (a socket made in A by this process) opens a session,
sends valid DATA and attacks (forged MAC, replay, unknown session, malformed).
Then `warrant observe --store PATH -o json` must list the kernel's drops with
their reasons ("dropped in the kernel", with the session's authority where the
agent knows the session) and the admitted flows with their authority, and
/metrics must count both.  On the way, the unknown session is answered by a
REJECT built in the kernel (SPEC 6.1 step 2), received by the sender over the
veth; and a session the kernel lost costs one retransmission: the sender's
next DATA draws a REJECT, it opens again, and its DATA is admitted.

Needs root, iproute2, nsenter, pyroute2 and bpf(); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from flow_helpers import flat
from netns_helpers import AgentProc, lab_options, skip_unless_datapath, veth_topology
from warrant.core.constants import Kind, Reason, Verdict
from warrant.integration.proto.observer import observer_pb2

pytestmark = pytest.mark.root

PORT = 4433
A_ADDR, B_ADDR = "10.78.0.1", "10.78.0.2"
SPORT = 40100


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    skip_unless_datapath(pyroute2=True)
    with veth_topology(ns_prefix="wg", veth_prefix="wgv", pin_prefix="warrant-agent-test",
                       a_addr=A_ADDR, b_addr=B_ADDR) as names:  # fmt: skip
        yield names


@contextlib.contextmanager
def _xdp_pass_on(ns: str, dev: str) -> Iterator[None]:
    """An XDP_PASS program on the sender's veth end: veth delivers XDP_TX frames (the
    kernel's REJECTs) only to a peer with NAPI, which an XDP program turns on."""
    from warrant.datapath import libbpf
    from warrant.datapath.build import build
    from warrant.demo.topology import entered

    obj = libbpf.BpfObject(str(build("baseline_pass")))
    obj.load()
    with entered(ns):
        ifindex = socket.if_nametoindex(dev)
        libbpf.xdp_attach(ifindex, obj.program_fd("baseline_pass"))
    try:
        yield
    finally:
        obj.close()


def _recv_all(sock: socket.socket, timeout: float) -> list[bytes]:
    out = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([sock], [], [], 0.05)
        if r:
            out.append(sock.recv(65535))
    return out


def _observe(store: Path, *args: str) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "warrant.cli", "observe", "--store", str(store),
                           "-o", "json", "--all", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    for line in lines:  # each a Hubble GetFlowsResponse: strict protobuf parse
        json_format.Parse(line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=False)
    return [flat(json.loads(line)) for line in lines]


def test_kernel_drops_and_admits_become_flow_records(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from warrant.core.wire import RejectPacket
    from warrant.datapath import libbpf
    from warrant.datapath.lab import SCOPE, Lab
    from warrant.datapath.loader import MapView, sid_key, slot_of
    from warrant.demo.topology import entered

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    store = tmp_path / "flows.db"
    with _xdp_pass_on(topo["a"], topo["va"]):
        with entered(topo["a"]):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((A_ADDR, SPORT))
        agent = AgentProc(topo, tmp_path, B_ADDR, PORT, *lab_options(lab, tmp_path),
                          "--flows", str(store), "--metrics-port", "0", "--node", "node-b")  # fmt: skip
        try:
            agent.wait_for("attached")
            url = str(agent.wait_for("metrics")["url"])
            sender = lab.sender()
            dst = (B_ADDR, PORT)
            sock.sendto(sender.open(b"hello", time.time()), dst)
            agent.wait_for("installed")

            valid = [sender.seal(f"payload {i}".encode()) for i in range(1, 4)]  # seq 1..3
            forged = bytearray(sender.seal(b"forged"))  # seq 4
            forged[25] ^= 0x10
            unknown = bytearray(valid[0])
            unknown[4:12] = b"\x5a" * 8
            malformed = bytearray(valid[1])
            malformed[3] = 0x40
            for p in [*valid, bytes(forged), valid[0], bytes(unknown), bytes(malformed)]:
                sock.sendto(p, dst)
                time.sleep(0.005)
            replies = _recv_all(sock, 1.0)
            # the kernel answered the unknown session, and only it, with a REJECT
            assert [RejectPacket.decode(r) for r in replies] == [
                RejectPacket(Reason.UNKNOWN_SESSION, b"\x5a" * 8)
            ]

            # ---- the kernel loses the session: one retransmission recovers ---------------
            # as the kernel forgets a session (bpf/session.h): its slot's id cleared, or
            # its entry deleted from the hash when it lives there
            view = MapView.pinned(topo["pin_root"])
            key, value = sid_key(sender.session_id), view.session(sender.session_id)
            assert value is not None
            if value.sid == key.value:
                value.sid = 0
                libbpf.map_update(view.fd["warrant_session_slots"], slot_of(key), value)
            else:
                assert libbpf.map_delete(view.fd["warrant_sessions"], key)
            for fd in view.fd.values():
                os.close(fd)
            old_sid = sender.session_id
            sock.sendto(sender.seal(b"after the loss"), dst)
            (reply,) = _recv_all(sock, 1.0)
            assert RejectPacket.decode(reply) == RejectPacket(Reason.UNKNOWN_SESSION, old_sid)
            reopen = sender.handle(reply, time.time() + 2)  # past the sender's re-open pacing
            assert reopen is not None and reopen[1] == Kind.INIT
            sock.sendto(reopen, dst)
            agent.wait_for("installed", n=2)
            sock.sendto(sender.seal(b"recovered"), dst)
            agent.read(1.2)  # the agent drains kernel events every 200 ms
            admitted = [
                r for r in agent.lines if r.get("agent") == "socket" and r["kind"] == "DATA"
            ]
            assert [(r["session_id"], r["seq"]) for r in admitted][-1] == (
                sender.session_id.hex(),
                1,
            )

            with entered(topo["b"]):
                metrics = urllib.request.urlopen(url, timeout=10).read().decode()
        finally:
            agent.stop()
            sock.close()

    flows = _observe(store)
    kernel = [f for f in flows if f.get("detail") == "dropped in the kernel"]
    by_reason = {f["reason"]: f for f in kernel}
    assert sorted(f["reason"] for f in kernel) == sorted(
        ["BAD_MAC", "REPLAY", "UNKNOWN_SESSION", "MALFORMED", "UNKNOWN_SESSION"]
    ), [f["Summary"] for f in flows]
    for f in kernel:
        assert f["verdict"] == "DROPPED" and f["node_name"] == "node-b"
        assert f["IP"] == {"source": A_ADDR, "destination": B_ADDR, "ipVersion": "IPv4"}
        assert f["l4"] == {"UDP": {"source_port": SPORT, "destination_port": PORT}}
    # drops of a session the agent knows carry its authority; the others cannot
    for reason, seq in (("BAD_MAC", 4), ("REPLAY", 1)):
        f = by_reason[reason]
        assert f["session_id"] == old_sid.hex() and f["seq"] == seq
        assert f["authority"]["scope"] == SCOPE and f["authority"]["reason"] == reason
    assert "authority" not in by_reason["MALFORMED"] and "session_id" not in by_reason["MALFORMED"]
    assert by_reason["UNKNOWN_SESSION"]["drop_reason_desc"] == "AUTH_REQUIRED"

    forwarded = [f for f in flows if f["verdict"] == "FORWARDED"]
    assert sorted((f["kind"], f.get("seq")) for f in forwarded) == [
        ("DATA", 1), ("DATA", 1), ("DATA", 2), ("DATA", 3), ("INIT", 0), ("INIT", 0)
    ]  # fmt: skip
    for f in forwarded:
        assert f["authority"]["scope"] == SCOPE and f["authority"]["operation"]
    # filters work on the agent's store like on any other
    assert {f["reason"] for f in _observe(store, "--reason", "BAD_MAC")} == {"BAD_MAC"}

    # kernel drops are counted once, from the kernel's map (not again as user-space verdicts)
    drop_counts = [s for fam in text_string_to_metric_families(metrics) for s in fam.samples
                   if s.name == "warrant_drop_count_total"]  # fmt: skip
    kernel_drops = Counter({s.labels["reason"]: int(s.value) for s in drop_counts
                            if s.labels["datapath"] == "kernel"})  # fmt: skip
    assert kernel_drops == Counter(f["reason"] for f in kernel)  # one count per kernel drop
    # every dropped packet, wherever judged, is one flow record and one count
    assert sum(s.value for s in drop_counts) == len([f for f in flows if f["verdict"] == "DROPPED"])
    assert 'verdict="DROPPED",reason="BAD_MAC"' not in metrics
    assert 'warrant_datapath_verdicts_total{reason="UNKNOWN_SESSION"} 2.0' in metrics
    # the kernel lost the first session: the kernel map is the one table, so only the
    # reopened session is open (the agent forgot the lost one at its next sweep)
    assert "warrant_sessions_open 1.0" in metrics


def test_policy_reload_ends_the_sessions_it_now_refuses(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Rewriting the policy file judges the live sessions again: one the new policy
    refuses leaves the kernel map at the reload (`policy-reloaded` names it and why), so
    the kernel drops its next DATA; new openings follow the new policy."""
    import yaml

    from warrant.datapath.lab import Lab
    from warrant.demo.topology import entered

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    with entered(topo["a"]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((A_ADDR, SPORT + 1))
    options = lab_options(lab, tmp_path)
    policy_file = Path(options[options.index("--policy") + 1])
    agent = AgentProc(topo, tmp_path, B_ADDR, PORT, *options, "--flows", "")
    try:
        agent.wait_for("attached")
        dst = (B_ADDR, PORT)
        before = lab.sender()
        sock.sendto(before.open(b"hello", time.time()), dst)
        agent.wait_for("installed")

        denying = yaml.safe_load(policy_file.read_text())
        denying["default"] = "deny"  # no rules: nothing is admitted any more
        _replace(policy_file, yaml.safe_dump(denying))
        reloaded = agent.wait_for("policy-reloaded")
        sid = before.session_id.hex()
        assert reloaded["ended"] == [sid] and reloaded["sessions"] == 0
        assert reloaded["why"] == {sid: "POLICY_DENIED: no rule admits this"}

        unknown = (Verdict.DROP, Reason.UNKNOWN_SESSION)
        dropped = _kernel_count(topo["pin_root"], unknown)
        sock.sendto(before.seal(b"no longer admitted"), dst)
        after = lab.sender()
        sock.sendto(after.open(b"too late", time.time()), dst)
        agent.read(1.0)
        assert _kernel_count(topo["pin_root"], unknown) == dropped + 1  # dropped in the kernel
        seen = {
            (r["kind"], r["session_id"]): r["reason"]
            for r in agent.lines
            if r.get("agent") == "socket"
        }
        assert ("DATA", sid) not in seen  # it never reached the agent's socket
        assert seen[("INIT", after.session_id.hex())] == "POLICY_DENIED"

        _replace(policy_file, "rules: [oops")  # broken: reported, old policy kept
        assert "not valid YAML" in str(agent.wait_for("policy-error")["error"])
    finally:
        agent.stop()
        sock.close()


def _kernel_count(pin_root: str, key: tuple[Verdict, Reason]) -> int:
    from warrant.datapath.loader import MapView

    view = MapView.pinned(pin_root)
    try:
        return view.counters().get(key, (0, 0))[0]
    finally:
        view.close()


def _replace(path: Path, text: str) -> None:
    """Write `path` in one step, as a ConfigMap update does: the agent's reload must not
    race a half-written file (an empty read is a different, also-refused, policy)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
