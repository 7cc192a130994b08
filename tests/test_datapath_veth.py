"""Real traffic through the kernel datapath: two network namespaces joined by a veth.

The agent (`warrant agent`) runs in namespace B, attaches the XDP program to B's
end of the veth and owns the Warrant port; a sender in namespace A sends a
session opening, valid DATA and attacks (forged MAC, replay, unknown session,
malformed header).  Only admitted datagrams may reach the receiving socket, and
the kernel counters must say why the others did not.  Then the agent is killed
with SIGKILL: the program and its pinned maps stay, and a plain socket bound
in its place still receives only what the kernel admits.

Needs root, iproute2, nsenter and bpf(); skipped otherwise (CI runs as root).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netns_helpers import AgentProc, in_ns, lab_options, skip_unless_datapath, veth_topology
from warrant.core.constants import Reason, Verdict

pytestmark = pytest.mark.root

PORT = 4433
A_ADDR, B_ADDR = "10.77.0.1", "10.77.0.2"

SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{src}", 40000))
for line in sys.stdin:
    host, port, data = line.split()
    s.sendto(bytes.fromhex(data), (host, int(port)))
    time.sleep(0.005)
"""

RECEIVE = """
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{dst}", {port}))
print("bound", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    r, _, _ = select.select([s], [], [], 0.1)
    if r:
        print(s.recv(65535).hex(), flush=True)
"""


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    skip_unless_datapath()
    with veth_topology(ns_prefix="wp", veth_prefix="wv", pin_prefix="warrant-test",
                       a_addr=A_ADDR, b_addr=B_ADDR) as names:  # fmt: skip
        yield names


def _send(topo: dict[str, str], packets: list[tuple[int, bytes]]) -> None:
    lines = "".join(f"{B_ADDR} {port} {p.hex()}\n" for port, p in packets)
    subprocess.run(in_ns(topo["a"], sys.executable, "-c", SEND.format(src=A_ADDR)), input=lines,
                   text=True, check=True, timeout=60)  # fmt: skip


def _counters(pin_root: str) -> dict[tuple[Verdict, Reason], int]:
    from warrant.datapath.loader import MapView

    view = MapView.pinned(pin_root)
    return {k: v[0] for k, v in view.counters().items()}


def test_only_admitted_datagrams_reach_the_socket_and_survive_kill(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from warrant.datapath.lab import Lab

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    agent = AgentProc(topo, tmp_path, B_ADDR, PORT, *lab_options(lab, tmp_path),
                      "--flows", str(tmp_path / "flows.db"))  # fmt: skip
    try:
        agent.wait_for("attached")
        sender = lab.sender()
        init = sender.open(b"hello", time.time())
        _send(topo, [(PORT, init)])
        installed = agent.wait_for("installed")
        assert installed["session_id"] == sender.session_id.hex()

        valid = [sender.seal(f"payload {i}".encode()) for i in range(1, 6)]  # seq 1..5
        forged = bytearray(sender.seal(b"forged"))  # seq 6, MAC broken
        forged[25] ^= 0x10
        unknown = bytearray(valid[0])
        unknown[4:12] = bytes(8)
        malformed = bytearray(valid[1])
        malformed[3] = 0x40
        attacks = [bytes(forged), valid[0], bytes(unknown), bytes(malformed)]
        _send(topo, [(PORT, p) for p in valid + attacks] + [(9, b"not warrant")])
        agent.read(1.5)

        at_socket = [r for r in agent.lines if r.get("agent") == "socket" and r["kind"] == "DATA"]
        assert sorted(r["seq"] for r in at_socket) == [1, 2, 3, 4, 5], at_socket
        assert all(r["verdict"] == "ADMIT" for r in at_socket)
        c = _counters(topo["pin_root"])
        assert c.get((Verdict.ADMIT, Reason.OK)) == 5
        assert c.get((Verdict.PASS, Reason.OK)) == 1  # the INIT, passed up to the agent
        assert c.get((Verdict.DROP, Reason.BAD_MAC)) == 1
        assert c.get((Verdict.DROP, Reason.REPLAY)) == 1
        assert c.get((Verdict.DROP, Reason.UNKNOWN_SESSION)) == 1
        assert c.get((Verdict.DROP, Reason.MALFORMED)) == 1

        # ---- the agent dies: enforcement stays ----------------------------------------------
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        link = subprocess.run(["ip", "-n", topo["b"], "-d", "link", "show", topo["vb"]],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "xdp" in link, link
        recv = subprocess.Popen(
            in_ns(topo["b"], sys.executable, "-c", RECEIVE.format(dst=B_ADDR, port=PORT), "3"),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert recv.stdout is not None
        assert recv.stdout.readline().strip() == "bound"
        later = [sender.seal(f"later {i}".encode()) for i in range(3)]  # seq 7..9
        forged2 = bytearray(sender.seal(b"forged again"))  # seq 10
        forged2[30] ^= 0x01
        _send(topo, [(PORT, p) for p in [*later, bytes(forged2), valid[2], later[0]]])
        out, _ = recv.communicate(timeout=15)
        got = [bytes.fromhex(x) for x in out.split()]
        assert got == later
        c = _counters(topo["pin_root"])
        assert c.get((Verdict.ADMIT, Reason.OK)) == 8
        assert c.get((Verdict.DROP, Reason.BAD_MAC)) == 2
        assert c.get((Verdict.DROP, Reason.REPLAY)) == 3
    finally:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)
