"""The asyncio relay shell (`warrant.shells.relay`) and `warrant relay`, over loopback.

Sans-I/O hop checks are covered with the receiver; here: what the shell
forwards, what it drops (and counts), how replies find their way back, that
its reply map stays bounded, and the CLI's contract (ready line, JSON counters
on SIGTERM, one-line errors).  The namespace tests (`test_relay_netns.py`)
run the same relay between real hosts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warrant.core import credential, keys
from warrant.core.admission import Policy, PolicyModel
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import OFF_HOPS, Kind, Reason, Verdict
from warrant.core.hop import Relay
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.core.wire import CookiePacket, DataPacket, InitPacket, RejectPacket
from warrant.shells.relay import (
    NO_ROUTE,
    SEND_ERROR,
    WRONG_DIRECTION,
    RelayCore,
    RelayServer,
    make_relay,
    parse_hostport,
)

SCOPE = "acme.prod"
PORT = 8443


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-relay-test/" + label.encode()).digest())


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


ANCHOR, HOLDER, RECEIVER = key("anchor"), key("holder"), key("receiver")
RELAY_A, RELAY_B, MALLORY = key("relay-a"), key("relay-b"), key("mallory")


@dataclass
class World:
    now: float = field(default_factory=time.time)
    port: int = PORT

    def credential(self) -> bytes:
        grant = Grant(
            operations=("orders.*",),
            destinations=(Destination("orders", 0, 65535),),
            not_before=int(self.now) - 3600,
            expires=int(self.now) + 3600,
        )
        return credential.issue(ANCHOR, SCOPE, pub(HOLDER), grant).encode()

    def policy(self) -> Policy:
        trust = TrustStore()
        trust.add(Anchor(SCOPE, pub(ANCHOR)))
        trust.add_relay("a.net", pub(RELAY_A))
        trust.add_relay("b.net", pub(RELAY_B))
        return Policy(PolicyModel.model_validate({"anchors": {}, "default": "allow"}), trust)

    def receiver(self) -> Receiver:
        return Receiver(RECEIVER, self.policy(), started_at=self.now - 10)

    def sender(self, first_hop: nacl.signing.SigningKey | None = RELAY_A) -> Sender:
        return Sender(
            HOLDER,
            self.credential(),
            pub(RECEIVER),
            Claim("orders.read", "orders", self.port),
            next_hop_public=pub(first_hop) if first_hop is not None else None,
        )


def relay_a(next_hop: nacl.signing.SigningKey = RECEIVER) -> Relay:
    return make_relay(RELAY_A, "a.net", pub(RECEIVER), pub(next_hop))


# ---- the core, without sockets ---------------------------------------------------------
def test_forwards_init_and_data_with_a_hop_appended() -> None:
    w = World()
    core = RelayCore(relay_a())
    s = w.sender()
    init = s.open(b"hello", w.now)
    out = core.from_sender(init, ("10.0.0.1", 5000))
    assert out is not None
    assert len(InitPacket.decode(out).statements) == 1
    data = s.seal(b"more")
    out_data = core.from_sender(data, ("10.0.0.1", 5000))
    assert out_data is not None and len(out_data) == len(data) + 12
    assert DataPacket.decode(out_data).hops[0].relay_tag == keys.key_id(pub(RELAY_A))
    assert out_data[OFF_HOPS + 12 :] == data[OFF_HOPS:]  # ciphertext untouched
    assert core.stats.forwarded == {"INIT": 1, "DATA": 1}
    assert core.stats.dropped == {}
    # and the receiver admits exactly that, with the hop in the authority
    r = w.receiver()
    first = r.handle(out, ("10.0.0.9", 7000), PORT, w.now)
    second = r.handle(out_data, ("10.0.0.9", 7000), PORT, w.now)
    assert (first.verdict, second.verdict) == (Verdict.ADMIT, Verdict.ADMIT), (first, second)
    assert second.payload == b"more"
    assert second.authority is not None
    assert second.authority.hops == (("a.net", keys.key_id(pub(RELAY_A)).hex()),)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"", Reason.TRUNCATED.name),
        (b"\x01\x02", Reason.TRUNCATED.name),
        (b"\x07\x02\x00\x00" + bytes(60), Reason.UNKNOWN_VERSION.name),
        (b"\x01\x09\x00\x00" + bytes(60), Reason.UNKNOWN_KIND.name),
        (b"\x01\x02\x00\x00" + bytes(20), Reason.TRUNCATED.name),  # DATA cut short
        (b"\x01\x02\x09\x00" + bytes(200), Reason.MALFORMED.name),  # 9 hops
        (b"\x01\x02\x00\x01" + bytes(60), Reason.MALFORMED.name),  # unknown DATA flag
        (b"\x01\x02\x08\x00" + bytes(36 + 8 * 12 + 16), Reason.TOO_MANY_HOPS.name),
        (RejectPacket(Reason.UNKNOWN_SESSION, bytes(8)).encode(), WRONG_DIRECTION),
    ],
)
def test_drops_from_the_sender_side_are_counted_by_reason(packet: bytes, reason: str) -> None:
    core = RelayCore(relay_a())
    assert core.from_sender(packet, ("10.0.0.1", 5000)) is None
    assert core.stats.dropped == {reason: 1}
    assert core.stats.forwarded == {"INIT": 0, "DATA": 0}
    assert len(core) == 0  # a dropped packet never creates a reply route


def test_init_not_addressed_to_this_relay_is_dropped() -> None:
    w = World()
    core = RelayCore(relay_a())
    direct = w.sender(first_hop=None).open(b"x", w.now)  # names the receiver as next hop
    assert core.from_sender(direct, ("10.0.0.1", 5000)) is None
    other = RelayCore(make_relay(RELAY_A, "a.net", pub(MALLORY)))  # serves another receiver
    assert other.from_sender(w.sender().open(b"x", w.now), ("10.0.0.1", 5000)) is None
    assert core.stats.dropped == {"HOP_CHAIN_BROKEN": 1}
    assert other.stats.dropped == {"WRONG_RECEIVER": 1}


def test_replies_are_routed_to_the_sender_of_their_session() -> None:
    w = World()
    core = RelayCore(relay_a())
    s1, s2 = w.sender(), w.sender()
    core.from_sender(s1.open(b"1", w.now), ("10.0.0.1", 5001))
    core.from_sender(s2.open(b"2", w.now), ("10.0.0.2", 5002))
    assert s1.session_id is not None and s2.session_id is not None
    reject = RejectPacket(Reason.UNKNOWN_SESSION, s2.session_id).encode()
    assert core.from_forward(reject) == (reject, ("10.0.0.2", 5002))
    cookie = CookiePacket(s1.session_id, bytes(24), bytes(32)).encode()
    assert core.from_forward(cookie) == (cookie, ("10.0.0.1", 5001))
    # a sender that moved (P11): replies follow its latest address
    core.from_sender(s1.seal(b"moved"), ("10.0.0.7", 6000))
    assert core.route(s1.session_id) == ("10.0.0.7", 6000)
    assert core.stats.replies == {"REJECT": 1, "COOKIE": 1}


def test_session_openings_are_metered_per_source_data_never() -> None:
    w = World()
    clock = [100.0]
    core = RelayCore(relay_a(), init_rate=1.0, clock=lambda: clock[0])  # burst 2
    s = w.sender()
    a, b = ("10.0.0.1", 5000), ("10.0.0.2", 5000)
    results = [core.from_sender(s.open(None, w.now), a) is not None for _ in range(3)]
    assert results == [True, True, False]
    assert core.from_sender(w.sender().open(None, w.now), b) is not None  # another source
    assert all(core.from_sender(s.seal(b"d"), a) is not None for _ in range(50))
    clock[0] += 1.0
    assert core.from_sender(s.open(None, w.now), a) is not None  # refilled
    assert core.stats.dropped == {"RATE_LIMITED": 1}
    assert core.stats.forwarded == {"INIT": 4, "DATA": 50}
    unlimited = RelayCore(relay_a(), init_rate=None)
    assert all(unlimited.from_sender(s.open(None, w.now), a) for _ in range(500))
    with pytest.raises(ValueError):
        RelayCore(relay_a(), init_rate=0)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (RejectPacket(Reason.UNKNOWN_SESSION, b"unknown!").encode(), NO_ROUTE),
        (RejectPacket(Reason.UNKNOWN_SESSION, b"unknown!").encode() + b"x", "MALFORMED"),
        (RejectPacket(Reason.UNKNOWN_SESSION, b"unknown!").encode()[:15], "TRUNCATED"),
        (CookiePacket(b"unknown!", bytes(24), bytes(32)).encode()[:-1], "TRUNCATED"),
        (b"\x01\x02\x00\x00" + bytes(60), WRONG_DIRECTION),  # DATA from upstream
        (b"\x02\x03\x00\x00" + bytes(12), "UNKNOWN_VERSION"),
        (b"\x01", "TRUNCATED"),
    ],
)
def test_bad_replies_are_dropped(packet: bytes, reason: str) -> None:
    core = RelayCore(relay_a())
    assert core.from_forward(packet) is None
    assert core.stats.dropped == {reason: 1}


def test_reply_map_is_bounded_and_forgets_the_least_recently_used() -> None:
    w = World()
    core = RelayCore(relay_a(), max_sessions=3)
    senders = [w.sender() for _ in range(4)]
    for i, s in enumerate(senders[:3]):
        core.from_sender(s.open(None, w.now), ("10.0.0.1", 5000 + i))
    core.from_sender(senders[0].seal(b"keep me"), ("10.0.0.1", 5000))  # refresh session 0
    core.from_sender(senders[3].open(None, w.now), ("10.0.0.1", 5003))  # evicts session 1
    assert len(core) == 3
    assert [core.route(s.session_id or b"") is not None for s in senders] == [
        True,
        False,
        True,
        True,
    ]
    with pytest.raises(ValueError):
        RelayCore(relay_a(), max_sessions=0)


def test_relay_output_is_what_the_sans_io_relay_produces() -> None:
    w = World()
    s = w.sender()
    init, data = s.open(b"a", w.now), None
    data = s.seal(b"b")
    core, ref = RelayCore(relay_a()), relay_a()
    assert core.from_sender(init, ("h", 1)) == ref.forward(init)
    assert core.from_sender(data, ("h", 1)) == ref.forward(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8443", ("::1", 8443)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["", "80", "host:", ":80", "h:65536", "h:x", "::1:80", "[::1]80"])
def test_parse_hostport_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(text, "--listen")


# ---- the asyncio shell over loopback ---------------------------------------------------
class UdpReceiver(asyncio.DatagramProtocol):
    """The sans-I/O receiver on a loopback socket, recording every outcome."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.outcomes: list[Any] = []
        self.arrived = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        out = self.receiver.handle(data, (addr[0], addr[1]), self.port, time.time())
        self.outcomes.append(out)
        if out.reply is not None and self.transport is not None:
            self.transport.sendto(out.reply, addr)
        self.arrived.set()


class UdpSender(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


async def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 20))


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "protocol"])
def test_relay_shell_end_to_end_over_loopback(batch: bool) -> None:
    """sender -> relay A -> relay B -> receiver; replies come back the same way."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        w = World()
        rx = UdpReceiver(w.receiver())
        rt, _ = await loop.create_datagram_endpoint(lambda: rx, local_addr=("127.0.0.1", 0))
        w.port = rx.port
        rb = await RelayServer.start(
            make_relay(RELAY_B, "b.net", pub(RECEIVER)),
            ("127.0.0.1", 0),
            ("127.0.0.1", w.port),
            batch=batch,
        )
        ra = await RelayServer.start(
            make_relay(RELAY_A, "a.net", pub(RECEIVER), pub(RELAY_B)),
            ("127.0.0.1", 0),
            rb.listen_address[:2],
            batch=batch,
        )
        tx = UdpSender()
        tx_t, _ = await loop.create_datagram_endpoint(lambda: tx, remote_addr=ra.listen_address[:2])
        try:
            s = w.sender()
            tx_t.sendto(s.open(b"first", time.time()))
            for i in range(5):
                tx_t.sendto(s.seal(b"data %d" % i))
            await wait_for(lambda: len(rx.outcomes) == 6)
            assert [o.reason for o in rx.outcomes] == [Reason.OK] * 6
            hops = rx.outcomes[-1].authority.hops
            assert [d for d, _ in hops] == ["a.net", "b.net"]
            assert ra.stats.forwarded == rb.stats.forwarded == {"INIT": 1, "DATA": 5}

            # The receiver loses its state: the REJECT travels back through both relays.
            rx.receiver.sessions = w.receiver().sessions
            tx_t.sendto(s.seal(b"after restart"))
            reply = await asyncio.wait_for(tx.replies.get(), 3)
            assert RejectPacket.decode(reply).reason == Reason.UNKNOWN_SESSION
            assert rb.stats.replies["REJECT"] == ra.stats.replies["REJECT"] == 1
            again = s.handle(reply, time.time())  # the sender answers with a fresh INIT
            assert again is not None and again[1] == Kind.INIT
            tx_t.sendto(again)
            await wait_for(lambda: len(rx.outcomes) == 8)
            assert rx.outcomes[-1].verdict == Verdict.ADMIT
        finally:
            for t in (tx_t, rt):
                t.close()
            ra.close()
            rb.close()

    run(body)


def test_relay_shell_counts_what_it_drops() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        w = World()
        rx = UdpReceiver(w.receiver())
        rt, _ = await loop.create_datagram_endpoint(lambda: rx, local_addr=("127.0.0.1", 0))
        w.port = rx.port
        ra = await RelayServer.start(relay_a(), ("127.0.0.1", 0), ("127.0.0.1", rx.port))
        tx = UdpSender()
        tx_t, _ = await loop.create_datagram_endpoint(lambda: tx, remote_addr=ra.listen_address[:2])
        try:
            tx_t.sendto(b"not warrant at all")
            tx_t.sendto(w.sender(first_hop=None).open(b"x", time.time()))  # names the receiver
            tx_t.sendto(RejectPacket(Reason.UNKNOWN_SESSION, bytes(8)).encode())
            tx_t.sendto(w.sender().open(b"ok", time.time()))
            await wait_for(lambda: len(rx.outcomes) == 1)
            await wait_for(lambda: sum(ra.stats.dropped.values()) == 3)
            assert ra.stats.dropped == {
                "HOP_CHAIN_BROKEN": 1,
                "UNKNOWN_VERSION": 1,
                WRONG_DIRECTION: 1,
            }
            assert rx.outcomes[0].verdict == Verdict.ADMIT
        finally:
            for t in (tx_t, rt):
                t.close()
            ra.close()

    run(body)


def test_listen_address_in_use_is_an_oserror() -> None:
    async def body() -> None:
        a = await RelayServer.start(relay_a(), ("127.0.0.1", 0), ("127.0.0.1", 9))
        try:
            with pytest.raises(OSError):
                await RelayServer.start(relay_a(), a.listen_address[:2], ("127.0.0.1", 9))
        finally:
            a.close()

    run(body)


# ---- the CLI -----------------------------------------------------------------------------
def _write_keys(tmp: Path) -> dict[str, str]:
    (tmp / "relay.sec").write_text(keys.encode_secret(RELAY_A) + "\n")
    (tmp / "receiver.pub").write_text(keys.encode_public(pub(RECEIVER)) + "\n")
    return {"key": str(tmp / "relay.sec"), "receiver": str(tmp / "receiver.pub")}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from warrant.cli import main; main()", *args]


def test_cli_relays_and_prints_counters_on_sigterm(tmp_path: Path) -> None:
    import socket

    paths = _write_keys(tmp_path)
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_sock.bind(("127.0.0.1", 0))
    rx_sock.settimeout(5)
    rx_port = rx_sock.getsockname()[1]
    proc = subprocess.Popen(
        _cli(
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            f"127.0.0.1:{rx_port}",
            "--domain",
            "a.net",
            "--key",
            paths["key"],
            "--receiver-key",
            keys.encode_public(pub(RECEIVER)),
            "-v",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stderr is not None
        ready = proc.stderr.readline()
        assert "listening on 127.0.0.1:" in ready, ready
        port = int(ready.split("listening on 127.0.0.1:")[1].split(",")[0])
        w = World(port=rx_port)
        s = w.sender()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.connect(("127.0.0.1", port))
        tx.send(s.open(b"via cli", time.time()))
        tx.send(b"\x01\x02\x00")  # truncated: dropped and logged
        got, _ = rx_sock.recvfrom(65535)
        r = w.receiver()
        out = r.handle(got, ("127.0.0.1", 1), rx_port, time.time())
        assert out.verdict == Verdict.ADMIT and out.payload == b"via cli"
        assert proc.stderr.readline().startswith("dropped TRUNCATED from 127.0.0.1:")
        tx.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=10)
        rx_sock.close()
    assert proc.returncode == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["forwarded"] == {"INIT": 1, "DATA": 0}
    assert summary["dropped"] == {"TRUNCATED": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--listen": "nowhere"}, "--listen: expected HOST:PORT"),
        ({"--domain": "Not A Domain!"}, "domain"),
        ({"--key": "/nonexistent/relay.sec"}, "not found"),
        ({"--receiver-key": "warrant-pub:AAAA"}, "--receiver-key"),
        ({"--listen": "192.0.2.1:9"}, "cannot serve"),  # not a local address
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    paths = _write_keys(tmp_path)
    opts = {
        "--listen": "127.0.0.1:0",
        "--forward": "127.0.0.1:9",
        "--domain": "a.net",
        "--key": paths["key"],
        "--receiver-key": paths["receiver"],
        **change,
    }
    args = [x for kv in opts.items() for x in kv]
    done = subprocess.run(
        _cli("relay", *args),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error ") and message in lines[0], lines[0]


def test_unreachable_next_hop_is_counted_not_fatal() -> None:
    """ICMP port unreachable from the next hop: counted as SEND_ERROR, the relay goes on."""

    async def body() -> None:
        import socket

        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()
        probe.close()  # nobody listens there now
        w = World()
        ra = await RelayServer.start(relay_a(), ("127.0.0.1", 0), dead)
        loop = asyncio.get_running_loop()
        tx_t, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=ra.listen_address[:2]
        )
        try:
            s = w.sender()
            tx_t.sendto(s.open(b"x", time.time()))
            for _ in range(5):
                await asyncio.sleep(0.02)
                tx_t.sendto(s.seal(b"y"))
            await wait_for(lambda: ra.stats.forwarded["DATA"] == 5)
            await wait_for(lambda: ra.stats.dropped.get(SEND_ERROR, 0) >= 1)
        finally:
            tx_t.close()
            ra.close()

    run(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_relay_core_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    core = RelayCore(relay_a())
    out = core.from_sender(data, ("10.0.0.1", 1))
    assert out is None or len(out) > len(data)
    assert core.from_forward(data) is None  # no session was ever carried
    assert sum(core.stats.dropped.values()) + sum(core.stats.forwarded.values()) >= 1


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255))
def test_relay_core_never_raises_on_mutated_packets(pos: int, value: int) -> None:
    w = World(now=1_800_000_000)
    s = w.sender()
    core = RelayCore(relay_a())
    for packet in (s.open(b"payload", w.now), s.seal(b"data")):
        if pos < len(packet):
            packet = packet[:pos] + bytes([value]) + packet[pos + 1 :]
        out = core.from_sender(packet, ("10.0.0.1", 1))
        assert out is None or out[2] == packet[2] + 1
