"""The kernel is the data path, and revocation reaches it, with `warrant agent` in a netns.

(a) An agent-enforced session carries admitted DATA with no Python per-packet
    check: the agent's closing stats show zero DATA judged by the Python
    receiver, every DATA datagram only opened (AEAD), as many as the kernel's
    ADMIT counter moved, and each payload delivered.
(b) A signed revocation list dropped into the watched directory removes the
    revoked credential's session from the kernel map at once: its next DATA is
    dropped in the kernel (the UNKNOWN_SESSION counter moves), another
    credential's session keeps flowing, a new INIT of the revoked credential is
    refused REVOKED, and garbage or rolled-back lists are refused with a reason
    while the loaded set stays.
(c) `warrant listen` and `warrant relay` take --revocations DIR (no root needed).

Needs root, iproute2, nsenter and bpf() for (a) and (b); skipped otherwise.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netns_helpers import AgentProc, lab_options, run, skip_unless_datapath, veth_topology
from warrant.core import credential, keys
from warrant.core.constants import Reason, Verdict
from warrant.core.receiver import Claim
from warrant.core.revocation import RevocationList
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.datapath.lab import SCOPE, SERVICE, Lab, pub, seeded

PORT = 4437
A_ADDR, B_ADDR = "10.79.0.1", "10.79.0.2"


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    skip_unless_datapath()
    with veth_topology(ns_prefix="wk", veth_prefix="wkv", pin_prefix="warrant-kstore-test",
                       a_addr=A_ADDR, b_addr=B_ADDR) as names:  # fmt: skip
        yield names


def _sender(
    lab: Lab, holder_name: str, port: int = PORT, next_hop: bytes | None = None
) -> tuple[Sender, bytes]:
    """A sender of a holder of its own, with a credential from the lab's anchor."""
    holder = seeded(holder_name)
    grant = Grant(operations=("*",), destinations=(Destination(SERVICE, port, port),),
                  not_before=int(lab.now) - 3600, expires=int(lab.now) + 86400)  # fmt: skip
    cred = credential.issue(lab.anchor, SCOPE, pub(holder), grant).encode()
    claim = Claim("op.x", SERVICE, port)
    return Sender(holder, cred, pub(lab.receiver_key), claim, next_hop_public=next_hop), cred


def _revocation(lab: Lab, cred: bytes, serial: int) -> bytes:
    link = credential.Credential.decode(cred).link_ids()[-1]
    return RevocationList.sign(lab.anchor, SCOPE, serial, link_ids=[link]).encode()


def _drop_into(directory: Path, name: str, data: bytes) -> None:
    """Write then rename: the watcher never reads half a file (it skips dot files)."""
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(data)
    os.rename(tmp, directory / name)


def _kernel(pin_root: str) -> dict[tuple[Verdict, Reason], int]:
    from warrant.datapath.loader import MapView

    view = MapView.pinned(pin_root)
    try:
        return {k: packets for k, (packets, _) in view.counters().items()}
    finally:
        for fd in view.fd.values():
            os.close(fd)


def _in_kernel(pin_root: str, sid: bytes) -> bool:
    from warrant.datapath.loader import MapView

    view = MapView.pinned(pin_root)
    try:
        return view.session(sid) is not None
    finally:
        for fd in view.fd.values():
            os.close(fd)


def _socket_lines(agent: AgentProc, sid: bytes, kind: str) -> list[dict[str, Any]]:
    return [r for r in agent.lines
            if r.get("agent") == "socket" and r["kind"] == kind and r["session_id"] == sid.hex()]  # fmt: skip


def test_kernel_judges_data_and_revocation_drops_the_next_packet(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from warrant.demo.topology import entered

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    rdir = tmp_path / "revocations"
    rdir.mkdir()
    with entered(topo["a"]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((A_ADDR, 40200))
    agent = AgentProc(topo, tmp_path, B_ADDR, PORT, *lab_options(lab, tmp_path), "--flows", "",
                      "--revocations", str(rdir))  # fmt: skip
    dst = (B_ADDR, PORT)
    pin = topo["pin_root"]
    try:
        agent.wait_for("attached")
        doomed, doomed_cred = _sender(lab, "doomed")
        kept, _ = _sender(lab, "kept")
        for s in (doomed, kept):
            sock.sendto(s.open(b"hello", time.time()), dst)
        agent.wait_for("installed", n=2)
        before = _kernel(pin)

        # (a) admitted DATA: judged in the kernel, only opened in Python
        for i in range(1, 21):
            sock.sendto(doomed.seal(f"d{i}".encode()), dst)
            if i % 4 == 0:
                captured = kept.seal(f"k{i}".encode())
                sock.sendto(captured, dst)
            time.sleep(0.002)
        agent.read(1.0)
        admitted = _kernel(pin).get((Verdict.ADMIT, Reason.OK), 0) - before.get(
            (Verdict.ADMIT, Reason.OK), 0
        )
        assert admitted == 25
        opened = _socket_lines(agent, doomed.session_id, "DATA")
        assert [(r["seq"], r["reason"]) for r in opened] == [(i, "OK") for i in range(1, 21)]
        assert len(_socket_lines(agent, kept.session_id, "DATA")) == 5

        # a replay that bypasses the datapath (sent from B itself: loopback, no XDP) is
        # refused, never opened: only DATA from an enforced interface is the kernel's
        with entered(topo["b"]):
            local = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        local.sendto(captured, dst)
        local.close()
        agent.read(0.5)
        bypass = _socket_lines(agent, kept.session_id, "DATA")[-1]
        assert (bypass["seq"], bypass["verdict"], bypass["reason"]) == (5, "DROP", "UNPARSED_FRAME")

        # (b) revocation: garbage refused with a reason, then the real list
        _drop_into(rdir, "garbage.rl", b"not a revocation list")
        err = agent.wait_for("revocation-error")
        assert "garbage.rl: MALFORMED" in err["error"] and err["kept"] == "previous lists"
        (rdir / "garbage.rl").unlink()  # else it is reported again at every change
        _drop_into(rdir, "doomed.rl", _revocation(lab, doomed_cred, 2))
        loaded = agent.wait_for("revocations-loaded")
        assert loaded["ended"] == [doomed.session_id.hex()]
        assert not _in_kernel(pin, doomed.session_id)  # left the kernel map at once
        assert _in_kernel(pin, kept.session_id)

        before = _kernel(pin)
        sock.sendto(doomed.seal(b"after revocation"), dst)
        sock.sendto(kept.seal(b"still flowing"), dst)
        again, _ = _sender(lab, "doomed")  # the same credential cannot open a new session
        sock.sendto(again.open(b"reopen", time.time()), dst)
        agent.read(1.0)
        after = _kernel(pin)
        moved = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert moved.get((Verdict.DROP, Reason.UNKNOWN_SESSION)) == 1  # in the kernel
        assert moved.get((Verdict.ADMIT, Reason.OK)) == 1  # kept's packet
        assert len(_socket_lines(agent, doomed.session_id, "DATA")) == 20  # never reached
        assert _socket_lines(agent, kept.session_id, "DATA")[-1]["reason"] == "OK"
        assert [r["reason"] for r in _socket_lines(agent, again.session_id, "INIT")] == ["REVOKED"]

        # a replay that reaches B on an interface without the program: refused too
        tag = f"{os.getpid() % 100000}"
        xa, xb = f"wkxa{tag}", f"wkxb{tag}"
        run("ip", "link", "add", xa, "netns", topo["a"], "type", "veth", "peer", "name", xb,
            "netns", topo["b"])  # fmt: skip
        for ns, dev, addr in ((topo["a"], xa, "10.81.0.1/24"), (topo["b"], xb, "10.81.0.2/24")):
            run("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", topo["a"], "route", "add", f"{B_ADDR}/32", "dev", xa)
        seen = len(_socket_lines(agent, kept.session_id, "DATA"))
        sock.sendto(captured, dst)  # leaves A through xa now, arrives on xb
        agent.read(0.5)
        (other,) = _socket_lines(agent, kept.session_id, "DATA")[seen:]
        assert (other["source"], other["verdict"], other["reason"]) == (
            f"{A_ADDR}:40200", "DROP", "UNPARSED_FRAME")  # fmt: skip

        # a rollback (lower serial) is refused and the loaded list stays in force
        _drop_into(rdir, "doomed.rl", _revocation(lab, doomed_cred, 1))
        err = agent.wait_for("revocation-error", n=2)
        assert "rollback refused" in err["error"]
    finally:
        agent.stop()
        agent.read(0.5)
        sock.close()
    (stats,) = [r for r in agent.lines if r.get("agent") == "stats"]
    assert stats["data_judged"] == 0  # no DATA went through the Python receiver's checks
    assert stats["data_unenforced"] == 2  # the loopback and the other-interface replays
    assert stats["data_opened"] == 26 and stats["delivered"] == 26 + 2  # + the INIT payloads
    assert stats["receiver_by_reason"] == {"OK": 2, "REVOKED": 1}  # INITs only
    assert stats["kernel"]["OK"] >= 26


# ---- (c) listen and relay ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_until(proc: subprocess.Popen[bytes], stream: Any, needle: str, timeout: float) -> str:
    """What `stream` said until `needle` appeared (raw fd reads: no buffered line can hide
    from select)."""
    seen = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and needle.encode() not in seen:
        r, _, _ = select.select([stream], [], [], 0.1)
        if r:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk and proc.poll() is not None:
                break
            seen += chunk
    return seen.decode()


def test_listen_takes_revocations(tmp_path: Path) -> None:
    port = _free_port()
    lab = Lab(time.time(), ports=(port,), relays=0)
    rdir = tmp_path / "rl"
    rdir.mkdir()
    doomed, doomed_cred = _sender(lab, "doomed", port)
    ok, _ = _sender(lab, "fine", port)
    (rdir / "bad.rl").write_bytes(b"\xa0")
    (rdir / "doomed.rl").write_bytes(_revocation(lab, doomed_cred, 1))
    proc = subprocess.Popen(
        [sys.executable, "-m", "warrant.cli", "listen", *lab_options(lab, tmp_path), "--port",
         str(port), "--revocations", str(rdir), "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None and proc.stdout is not None
        err = _read_until(proc, proc.stderr, "listening on", 20)
        assert "bad.rl: MALFORMED" in err and "1 list(s)" in err, err
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(doomed.open(b"x", time.time()), ("127.0.0.1", port))
            s.sendto(ok.open(b"y", time.time()), ("127.0.0.1", port))
        out = _read_until(proc, proc.stdout, "ADMIT", 20)
        assert "INIT REVOKED" in out and "ADMIT" in out, out
    finally:
        proc.terminate()
        proc.wait(10)


def test_relay_takes_revocations(tmp_path: Path) -> None:
    listen_port, forward_port = _free_port(), _free_port()
    lab = Lab(time.time(), ports=(forward_port,), relays=1)
    rdir = tmp_path / "rl"
    rdir.mkdir()
    anchors = tmp_path / "anchors.yaml"
    lab.trust.dump(anchors)
    relay_key = tmp_path / "relay.sec"
    relay_key.write_text(keys.encode_secret(lab.relay_keys[0]) + "\n")
    hop = pub(lab.relay_keys[0])
    doomed, doomed_cred = _sender(lab, "doomed", forward_port, hop)
    ok, _ = _sender(lab, "fine", forward_port, hop)
    (rdir / "doomed.rl").write_bytes(_revocation(lab, doomed_cred, 1))
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", forward_port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "warrant.cli", "relay", "--listen", f"127.0.0.1:{listen_port}",
         "--forward", f"127.0.0.1:{forward_port}", "--domain", lab.domains[0],
         "--key", str(relay_key), "--receiver-key", keys.encode_public(pub(lab.receiver_key)),
         "--revocations", str(rdir), "--anchors", str(anchors), "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        err = _read_until(proc, proc.stderr, "1 list(s)", 20)
        assert "revocation lists loaded" in err, err
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(doomed.open(b"x", time.time()), ("127.0.0.1", listen_port))
            s.sendto(ok.open(b"y", time.time()), ("127.0.0.1", listen_port))
        err += _read_until(proc, proc.stderr, "REVOKED", 10)
        assert "dropped REVOKED" in err, err
        receiver.settimeout(5)
        forwarded = receiver.recv(65535)
        assert forwarded[4:12] == ok.session_id  # only the unrevoked INIT went on
        receiver.settimeout(0.5)
        with pytest.raises(TimeoutError):
            receiver.recv(65535)
    finally:
        proc.terminate()
        proc.wait(10)
        receiver.close()


def test_holder_quota_and_eviction_in_the_kernel(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SPEC 8.1 with the kernel as the table: a holder at its quota is refused
    SESSION_TABLE_FULL while another holder opens; a full table evicts the largest
    holder's oldest session from the kernel map, whose next DATA the kernel drops."""
    import yaml

    from warrant.demo.topology import entered

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    options = lab_options(lab, tmp_path)
    policy_file = Path(options[options.index("--policy") + 1])
    policy = yaml.safe_load(policy_file.read_text())
    policy["limits"].update(max_sessions=4, max_sessions_per_holder=3)
    policy_file.write_text(yaml.safe_dump(policy))
    with entered(topo["a"]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((A_ADDR, 40300))
    agent = AgentProc(topo, tmp_path, B_ADDR, PORT, *options, "--flows", "")
    dst, pin = (B_ADDR, PORT), topo["pin_root"]
    try:
        agent.wait_for("attached")
        xs = [_sender(lab, "x")[0] for _ in range(4)]
        for s in xs:
            sock.sendto(s.open(b"x", time.time()), dst)
            time.sleep(0.05)
        agent.wait_for("installed", n=3)
        agent.read(0.5)
        reasons = [_socket_lines(agent, s.session_id, "INIT")[0]["reason"] for s in xs]
        assert reasons == ["OK", "OK", "OK", "SESSION_TABLE_FULL"]
        z, _ = _sender(lab, "z")
        sock.sendto(z.open(b"z", time.time()), dst)
        agent.wait_for("installed", n=4)  # another holder is not refused; the table is full
        y, _ = _sender(lab, "y")
        sock.sendto(y.open(b"y", time.time()), dst)
        agent.wait_for("installed", n=5)  # ... and still opens: x's oldest made room
        assert not _in_kernel(pin, xs[0].session_id)
        assert all(_in_kernel(pin, s.session_id) for s in (xs[1], xs[2], z, y))
        before = _kernel(pin)
        sock.sendto(xs[0].seal(b"evicted"), dst)
        sock.sendto(y.seal(b"fine"), dst)
        agent.read(0.5)
        after = _kernel(pin)
        moved = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert moved.get((Verdict.DROP, Reason.UNKNOWN_SESSION)) == 1
        assert moved.get((Verdict.ADMIT, Reason.OK)) == 1
    finally:
        agent.stop()
        sock.close()
