"""`warrant agent` serves Warrant over IPv6 beside IPv4, on the same port.

Namespaces A and B joined by a veth carry IPv6 addresses (and the IPv4 ones the
shared topology gives them); the agent runs in B with its default --host, so each
Warrant port has an IPv4 and an IPv6 socket.  A sender in A opens a session over
IPv6 and its DATA is admitted in the kernel and opened by the agent; a DATA with a
broken MAC is dropped in the kernel and never reaches the agent; a stale INIT is
answered by the agent (a REJECT, out of its IPv6 socket); DATA sent from inside B
over IPv6 loopback, which no program judged, is refused as a bypass.  Once with
generic XDP and once at TC ingress.

Needs root, iproute2, nsenter and bpf(); skipped otherwise (CI runs as root).
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netns_helpers import AgentProc, lab_options, run, skip_unless_datapath, veth_topology
from warrant.core.constants import Reason, Verdict

pytestmark = pytest.mark.root

PORT = 4435
A_ADDR, B_ADDR = "10.79.0.1", "10.79.0.2"
A6, B6 = "fd00:79::1", "fd00:79::2"
SPORT = 40200


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    skip_unless_datapath()
    with veth_topology(ns_prefix="w6", veth_prefix="w6v", pin_prefix="warrant-agent6-test",
                       a_addr=A_ADDR, b_addr=B_ADDR) as names:  # fmt: skip
        for ns, dev, addr in ((names["a"], names["va"], A6), (names["b"], names["vb"], B6)):
            # nodad: usable at once, not after duplicate address detection
            run("ip", "-n", ns, "-6", "addr", "add", f"{addr}/64", "dev", dev, "nodad")
        yield names


def _counts(pin_root: str) -> dict[tuple[Verdict, Reason], int]:
    from warrant.datapath.loader import MapView

    view = MapView.pinned(pin_root)
    try:
        return {k: v[0] for k, v in view.counters().items()}
    finally:
        view.close()


def _recv(sock: socket.socket, timeout: float) -> list[bytes]:
    out = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([sock], [], [], 0.05)
        if r:
            out.append(sock.recv(65535))
    return out


def _socket_lines(agent: AgentProc, kind: str) -> list[dict[str, object]]:
    return [r for r in agent.lines if r.get("agent") == "socket" and r["kind"] == kind]


@pytest.mark.parametrize("attach", [["--xdp-mode", "generic"], ["--tc"]], ids=["xdp", "tc"])
def test_session_over_ipv6_through_the_agent(topo, tmp_path: Path, attach: list[str]) -> None:  # type: ignore[no-untyped-def]
    from warrant.core.wire import RejectPacket
    from warrant.datapath.lab import Lab
    from warrant.demo.topology import entered

    before_agent = time.time() - 5  # an INIT stamped before the agent started: stale to it
    lab = Lab(time.time(), ports=(PORT,), relays=0)
    with entered(topo["a"]):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.bind((A6, SPORT))
        sock4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock4.bind((A_ADDR, SPORT))
    with entered(topo["b"]):
        local = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    agent = AgentProc(topo, tmp_path, "0.0.0.0", PORT, *lab_options(lab, tmp_path),
                      "--flows", "", *attach)  # fmt: skip
    try:
        agent.wait_for("attached")
        assert not [r for r in agent.lines if r.get("agent") in ("warning", "error")], agent.lines
        dst = (B6, PORT)

        # ---- a session opened over IPv6; its DATA admitted in the kernel, opened here -----
        sender = lab.sender()
        sock.sendto(sender.open(b"hello", time.time()), dst)
        installed = agent.wait_for("installed")
        assert installed["session_id"] == sender.session_id.hex()
        (init,) = _socket_lines(agent, "INIT")
        assert (init["verdict"], init["source"]) == ("ADMIT", f"[{A6}]:{SPORT}")

        admitted = (Verdict.ADMIT, Reason.OK)
        bad_mac = (Verdict.DROP, Reason.BAD_MAC)
        c0 = _counts(topo["pin_root"])
        sock.sendto(sender.seal(b"payload 1"), dst)  # seq 1
        agent.read(1.0)
        (data,) = _socket_lines(agent, "DATA")
        assert (data["verdict"], data["reason"], data["seq"]) == ("ADMIT", "OK", 1)
        c1 = _counts(topo["pin_root"])
        assert c1.get(admitted, 0) == c0.get(admitted, 0) + 1

        # ---- a broken MAC over IPv6: dropped in the kernel, nothing reaches the agent ------
        forged = bytearray(sender.seal(b"forged"))  # seq 2
        forged[25] ^= 0x10
        sock.sendto(bytes(forged), dst)
        agent.read(1.0)
        c2 = _counts(topo["pin_root"])
        assert c2.get(bad_mac, 0) == c1.get(bad_mac, 0) + 1
        assert c2.get(admitted, 0) == c1.get(admitted, 0)
        assert len(_socket_lines(agent, "DATA")) == 1

        # ---- the agent's own reply leaves by its IPv6 socket --------------------------------
        stale = lab.sender()
        sock.sendto(stale.open(b"stale", before_agent), dst)
        replies = [RejectPacket.decode(r) for r in _recv(sock, 1.0)]
        assert replies == [RejectPacket(Reason.TOO_OLD, stale.session_id)]

        # ---- the same port over IPv4, beside it ---------------------------------------------
        v4 = lab.sender()
        sock4.sendto(v4.open(b"hello over IPv4", time.time()), (B_ADDR, PORT))
        assert agent.wait_for("installed", n=2)["session_id"] == v4.session_id.hex()

        # ---- DATA from inside B over IPv6 loopback: judged by nobody, refused ---------------
        for target in (B6, "::1"):
            local.sendto(sender.seal(f"around the datapath to {target}".encode()), (target, PORT))
        agent.read(1.0)
        bypassed = [r for r in _socket_lines(agent, "DATA") if r["verdict"] == "DROP"]
        assert [(r["reason"], r["seq"]) for r in bypassed] == [
            ("UNPARSED_FRAME", 3), ("UNPARSED_FRAME", 4)
        ], agent.lines  # fmt: skip
        assert [str(r["source"]).rsplit(":", 1)[0] for r in bypassed] == [f"[{B6}]", "[::1]"]
    finally:
        agent.stop()
        for s in (sock, sock4, local):
            s.close()
    agent.read(1.0)
    (stats,) = [r for r in agent.lines if r.get("agent") == "stats"]
    assert stats["data_unenforced"] == 2 and stats["data_judged"] == 0
    assert stats["data_opened"] == 1
