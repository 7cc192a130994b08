"""Fault: `warrant agent` killed with SIGKILL while a session's traffic flows.

The XDP program and its pinned maps outlive the agent, so the kernel keeps
enforcing with no user space at all:
  * the admitted session's DATA keeps passing (a stand-in UDP socket on the
    agent's port receives every valid packet sent after the kill);
  * nothing unadmitted passes: forged-MAC, replayed and unknown-session DATA
    sent in the same stream never reach the socket.
Then the agent restarts on the same pin root and keeps the session: it adopts
the kernel's session from its pinned resumption record (no new INIT) and opens
and delivers the session's next DATA, while forged-MAC, replayed and
unknown-session DATA are still dropped in the kernel with their reasons.

Needs root, iproute2, nsenter, pyroute2 and bpf(); skipped otherwise (a datapath
that fails to build or load under root fails the test through Datapath.open).
Names carry the prefix gf/gfv/warrant-gfault and this process's id.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netns_helpers import AgentProc, lab_options, skip_unless_datapath, veth_topology

pytestmark = pytest.mark.root

PORT = 4471
A_ADDR, B_ADDR = "10.79.0.1", "10.79.0.2"
SPORT = 40171


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    skip_unless_datapath(pyroute2=True)
    with veth_topology(ns_prefix="gf", veth_prefix="gfv", pin_prefix="warrant-gfault",
                       a_addr=A_ADDR, b_addr=B_ADDR) as names:  # fmt: skip
        yield names


def _drain(sock: socket.socket, timeout: float) -> list[bytes]:
    out = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([sock], [], [], 0.05)
        if r:
            out.append(sock.recv(65535))
    return out


def test_agent_kill9_kernel_keeps_enforcing_and_restart_keeps_session(
    topo: dict[str, str], tmp_path: Path
) -> None:
    from warrant.datapath.lab import Lab
    from warrant.datapath.loader import MapView
    from warrant.demo.topology import entered

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    with entered(topo["a"]):
        tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx_sock.bind((A_ADDR, SPORT))
    dst = (B_ADDR, PORT)
    options = lab_options(lab, tmp_path)
    agent = AgentProc(topo, tmp_path, B_ADDR, PORT, *options)
    restarted: AgentProc | None = None
    stand_in: socket.socket | None = None
    try:
        agent.wait_for("attached")
        sender = lab.sender()
        tx_sock.sendto(sender.open(b"hello", time.time()), dst)
        agent.wait_for("installed")
        sid = sender.session_id
        assert sid is not None
        before = [sender.seal(f"before {i}".encode()) for i in range(5)]
        for p in before:
            tx_sock.sendto(p, dst)
        agent.read(0.5)

        # ---- kill -9: no user space left ------------------------------------------------------
        os.kill(agent.proc.pid, signal.SIGKILL)
        agent.proc.wait(10)
        view = MapView.pinned(topo["pin_root"])  # read-only: opens the pins, loads nothing
        try:
            assert view.session(sid) is not None, "the kernel lost the session"
        finally:
            view.close()
        with entered(topo["b"]):
            stand_in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stand_in.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            stand_in.bind((B_ADDR, PORT))

        valid, bad = [], []
        for i in range(40):
            p = sender.seal(f"after {i}".encode())
            valid.append(p)
            tx_sock.sendto(p, dst)
            if i % 4 == 0:  # unadmitted packets interleaved with the flow
                forged = bytearray(sender.seal(b"forged"))
                forged[25] ^= 0x01  # header MAC
                unknown = bytearray(p)
                unknown[4:12] = b"\x6b" * 8
                for q in (bytes(forged), before[i // 4 % len(before)], p, bytes(unknown)):
                    bad.append(q)
                    tx_sock.sendto(q, dst)
        got = _drain(stand_in, 1.5)
        stand_in.close()
        stand_in = None
        assert sorted(got) == sorted(valid), (
            f"{len(got)} received, {len(set(got) & set(valid))} of {len(valid)} valid, "
            f"{len(set(got) - set(valid))} unadmitted"
        )
        # every bad packet differs from each valid one, except the replays of `p` itself
        # (the second copy): the count above already proves only one copy passed.
        assert not set(got) - set(valid)

        # ---- restart on the same pins: the session is kept ------------------------------------
        restarted = AgentProc(topo, tmp_path, B_ADDR, PORT, *options, "--events")
        attached = restarted.wait_for("attached")
        assert attached["reused_sessions"] >= 1, attached
        later = sender.seal(b"after the restart")
        tx_sock.sendto(later, dst)
        deadline = time.monotonic() + 5
        seq = len(before) + len(valid) + len(bad) // 4 + 1  # every seal above took one seq
        while time.monotonic() < deadline:
            restarted.read(0.2)
            data = [
                r for r in restarted.lines
                if r.get("agent") == "socket" and r.get("session_id") == sid.hex()
            ]  # fmt: skip
            if data:
                break
        assert data, f"restarted agent never saw the session's DATA: {restarted.lines}"
        # opened with the adopted AEAD key and delivered: ADMIT carries the payload
        assert [(d["verdict"], d["reason"], d["seq"]) for d in data] == [("ADMIT", "OK", seq)]
        assert not [r for r in restarted.lines if r.get("agent") == "installed"]  # no INIT

        # ---- after the restart, still nothing unadmitted passes -------------------------------
        forged = bytearray(sender.seal(b"forged after"))
        forged[25] ^= 0x01  # header MAC
        unknown = bytearray(sender.seal(b"unknown after"))
        unknown[4:12] = b"\x6b" * 8
        for q in (bytes(forged), later, bytes(unknown)):  # `later` again: a replay
            tx_sock.sendto(q, dst)
        final = sender.seal(b"still open")  # seq + 3: forged and unknown took one each
        tx_sock.sendto(final, dst)
        want = {"BAD_MAC", "REPLAY", "UNKNOWN_SESSION"}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            restarted.read(0.2)
            kernel = {r["reason"] for r in restarted.lines if r.get("agent") == "kernel"
                      and r.get("verdict") == "DROP"}  # fmt: skip
            data = [r for r in restarted.lines
                    if r.get("agent") == "socket" and r.get("kind") == "DATA"]  # fmt: skip
            if want <= kernel and len(data) >= 2:
                break
        assert want <= kernel, kernel
        # only the genuine packets reached user space, and both were delivered
        assert [(d["verdict"], d["seq"]) for d in data] == [("ADMIT", seq), ("ADMIT", seq + 3)]
    finally:
        if stand_in is not None:
            stand_in.close()
        agent.stop()
        if restarted is not None:
            restarted.stop()
        tx_sock.close()


def test_agent_restart_under_a_denying_policy_ends_the_adopted_session(
    topo: dict[str, str], tmp_path: Path
) -> None:
    """An agent restarted with a policy that now refuses a session (default deny, no
    rule) does not resume it from its kernel record: the record re-verifies only the
    chain, the policy's rules are applied as a reload applies them.  The session is
    listed as dropped with its policy reason and its next DATA is refused in the kernel
    (UNKNOWN_SESSION), never delivered."""
    import yaml

    from warrant.datapath.lab import Lab

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    from warrant.demo.topology import entered

    with entered(topo["a"]):
        tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx_sock.bind((A_ADDR, SPORT))
    dst = (B_ADDR, PORT)
    options = lab_options(lab, tmp_path)
    agent = AgentProc(topo, tmp_path, B_ADDR, PORT, *options)
    restarted: AgentProc | None = None
    try:
        agent.wait_for("attached")
        sender = lab.sender()
        tx_sock.sendto(sender.open(b"hello", time.time()), dst)
        agent.wait_for("installed")
        sid = sender.session_id
        assert sid is not None
        os.kill(agent.proc.pid, signal.SIGKILL)
        agent.proc.wait(10)
        policy = yaml.safe_load(lab.policy_yaml())
        policy["default"] = "deny"
        (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
        restarted = AgentProc(topo, tmp_path, B_ADDR, PORT, *options, "--events")
        attached = restarted.wait_for("attached")
        assert attached["reused_sessions"] == 0, attached
        assert attached["dropped_sessions"][sid.hex()].startswith("policy: "), attached
        tx_sock.sendto(sender.seal(b"after the restart"), dst)
        deadline = time.monotonic() + 5
        drops: list[str] = []
        while time.monotonic() < deadline and "UNKNOWN_SESSION" not in drops:
            restarted.read(0.2)
            drops = [r["reason"] for r in restarted.lines
                     if r.get("agent") == "kernel" and r.get("verdict") == "DROP"]  # fmt: skip
        assert "UNKNOWN_SESSION" in drops, restarted.lines
        assert not [r for r in restarted.lines
                    if r.get("agent") == "socket" and r.get("kind") == "DATA"]  # fmt: skip
    finally:
        agent.stop()
        if restarted is not None:
            restarted.stop()
        tx_sock.close()
