"""Hop history between real hosts: sender, relays and receiver in network namespaces (P6).

The module creates three namespaces joined by veth pairs, with addresses it
assigns (10.77.1.0/24 sender-relay, 10.77.2.0/24 relay-receiver; no route
leads anywhere else), and removes them afterwards, also on failure:

    sender ns                relay ns                                 receiver ns
    10.77.1.1  --veth--  10.77.1.2  relays (warrant relay, CLI)
                         10.77.2.1  tamperer T (a Python function)  --veth--  10.77.2.2:8443

Honest relays are the real CLI (`ip netns exec ... warrant relay`), started
once per module.  The receiver is the asyncio endpoint (`warrant.shells.endpoint`)
when it exists, else the sans-I/O `Receiver` on a plain UDP socket; it runs in
a thread that entered the receiver namespace, with a policy per test.  The
tamperer T sits in the relay namespace behind the relays of most paths and
rewrites packets of one chosen session (by default it passes everything).
Every drop is checked by its reason in the receiver's flow records; every
tampered packet is bracketed by untouched packets of the same session that
are admitted, so the tampering, and nothing else, is what is refused.

Relays (all listening on 10.77.1.2):

    port  key      domain    next hop   forwards to
    7000  A        a.net     receiver   receiver (no tamperer)
    7001  A        a.net     receiver   T
    7002  A        a.net     B          7003
    7003  B        b.net     receiver   T
    7004  E        evil.net  receiver   T        (trusted, but forbidden by some credentials)
    7005  Mallory  b.net     receiver   T        (not trusted by the receiver)
    7006  A        a.net     Mallory    7005
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import hashlib
import json
import os
import queue
import secrets
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nacl.signing
import pytest

from flow_helpers import flat
from warrant.core import credential, keys
from warrant.core.admission import Policy, PolicyModel
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import OFF_HOPS, Kind, Reason
from warrant.core.hop import Relay, statement_message
from warrant.core.kdf import session_id as derive_session_id
from warrant.core.kdf import transcript
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.core.wire import CookiePacket, HopStatement, InitPacket, RejectPacket
from warrant.integration import flow

try:
    from warrant.shells import endpoint
except ImportError:  # the endpoint lands separately; the sans-I/O fallback covers until then
    endpoint = None  # type: ignore[assignment]

pytestmark = [pytest.mark.root, pytest.mark.slow]

SCOPE = "acme.prod"
PORT = 8443
SND_IP, RLY_IP, RLY_IP2, RCV_IP = "10.77.1.1", "10.77.1.2", "10.77.2.1", "10.77.2.2"
T_PORT = 7100
TIMEOUT = 5.0
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-netns/" + label.encode()).digest())


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


ANCHOR, TEAM, HOLDER, RECEIVER = key("anchor"), key("team"), key("holder"), key("receiver")
RELAY_A, RELAY_B, RELAY_E, MALLORY = key("a"), key("b"), key("e"), key("mallory")
TAG = {name: keys.key_id(pub(k)) for name, k in [("A", RELAY_A), ("B", RELAY_B), ("E", RELAY_E)]}

# name -> (listen port, key, domain, next hop key, forward address)
RELAYS: dict[str, tuple[int, nacl.signing.SigningKey, str, nacl.signing.SigningKey, str]] = {
    "a-direct": (7000, RELAY_A, "a.net", RECEIVER, f"{RCV_IP}:{PORT}"),
    "a": (7001, RELAY_A, "a.net", RECEIVER, f"{RLY_IP}:{T_PORT}"),
    "a-to-b": (7002, RELAY_A, "a.net", RELAY_B, f"{RLY_IP}:7003"),
    "b": (7003, RELAY_B, "b.net", RECEIVER, f"{RLY_IP}:{T_PORT}"),
    "e": (7004, RELAY_E, "evil.net", RECEIVER, f"{RLY_IP}:{T_PORT}"),
    "mallory": (7005, MALLORY, "b.net", RECEIVER, f"{RLY_IP}:{T_PORT}"),
    "a-to-mallory": (7006, RELAY_A, "a.net", MALLORY, f"{RLY_IP}:7005"),
}
# A path is named by its first relay: the sender sends there and names that relay's key.
PATHS = {
    "a-direct": ["a.net"],
    "a": ["a.net"],
    "ab": ["a.net", "b.net"],
    "e": ["evil.net"],
}
FIRST = {"a-direct": "a-direct", "a": "a", "ab": "a-to-b", "e": "e", "am": "a-to-mallory"}


# ---- namespaces ------------------------------------------------------------------------
def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run as root / in CI as root)"
    if shutil.which("ip") is None:
        return "iproute2 `ip` is not installed"
    probe = f"wrprobe{secrets.token_hex(3)}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"`ip netns add` is unavailable here: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(name: str) -> None:
    """Move the calling thread (only) into namespace `name`."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a short-lived thread inside `name`; sockets it makes stay there."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            enter_netns(name)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def udp_socket(
    ns: str, bind: tuple[str, int], connect: tuple[str, int] | None = None
) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(bind)
        if connect is not None:
            s.connect(connect)
        return s

    return in_netns(ns, make)


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Namespaces:
    sender: str
    relay: str
    receiver: str

    def all(self) -> list[str]:
        return [self.sender, self.relay, self.receiver]


def create_namespaces(ns: Namespaces) -> None:
    for name in ns.all():
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
    ip(
        "-n",
        ns.sender,
        "link",
        "add",
        "s0",
        "type",
        "veth",
        "peer",
        "name",
        "r0",
        "netns",
        ns.relay,
    )
    ip(
        "-n",
        ns.relay,
        "link",
        "add",
        "r1",
        "type",
        "veth",
        "peer",
        "name",
        "v0",
        "netns",
        ns.receiver,
    )
    for name, dev, addr in [
        (ns.sender, "s0", f"{SND_IP}/24"),
        (ns.relay, "r0", f"{RLY_IP}/24"),
        (ns.relay, "r1", f"{RLY_IP2}/24"),
        (ns.receiver, "v0", f"{RCV_IP}/24"),
    ]:
        ip("-n", name, "addr", "add", addr, "dev", dev)
        ip("-n", name, "link", "set", dev, "up")


def delete_namespaces(ns: Namespaces) -> None:
    for name in ns.all():
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


# ---- the honest relays: the real CLI in the relay namespace ---------------------------------
RelaySpec = tuple[int, nacl.signing.SigningKey, str, nacl.signing.SigningKey, str]


class RelayProcess:
    def __init__(
        self, ns: str, name: str, keydir: Path, spec: RelaySpec | None = None, verbose: bool = False
    ) -> None:
        port, k, domain, next_hop, forward = spec or RELAYS[name]
        secret = keydir / f"{name}.sec"
        secret.write_text(keys.encode_secret(k) + "\n")
        args = [
            "ip", "netns", "exec", ns, sys.executable, "-c",
            "from warrant.cli import main; main()", "relay",
            "--listen", f"{RLY_IP}:{port}", "--forward", forward, "--domain", domain,
            "--key", str(secret), "--receiver-key", keys.encode_public(pub(RECEIVER)),
            "--next-hop-key", keys.encode_public(pub(next_hop)),
        ]  # fmt: skip
        if verbose:
            args.append("-v")
        self.name = name
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "listening on" in line:
                return
        raise RuntimeError(f"relay {self.name} did not start (exit {self.proc.poll()})")

    def stop(self) -> dict[str, Any]:
        """SIGTERM; the counters the relay prints on exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = (out or "").strip().splitlines()
        return json.loads(lines[-1]) if lines else {}


# ---- the tamperer: a Python function in the relay namespace ------------------------------
Rewrite = Callable[[bytes], list[bytes]]


class Tamperer:
    """Forwards 10.77.1.2:7100 -> receiver, passing every datagram through `rewrite`.

    Replies from the receiver go back to whichever relay sent that session.
    """

    def __init__(self, ns: str) -> None:
        self.listen = udp_socket(ns, (RLY_IP, T_PORT))
        self.forward = udp_socket(ns, (RLY_IP2, 0), (RCV_IP, PORT))
        self.rewrite: Rewrite | None = None
        self.seen: list[bytes] = []  # everything that arrived, before rewriting
        self._back: dict[bytes, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listen, selectors.EVENT_READ)
        sel.register(self.forward, selectors.EVENT_READ)
        while not self._stop.is_set():
            for k, _ in sel.select(0.05):
                try:
                    if k.fileobj is self.listen:
                        data, addr = self.listen.recvfrom(65535)
                        self.seen.append(data)
                        self._back[data[4:12]] = addr
                        rewrite = self.rewrite
                        for out in rewrite(data) if rewrite else [data]:
                            self.forward.send(out)
                    else:
                        data = self.forward.recv(65535)
                        dest = self._back.get(data[4:12])
                        if dest is not None:
                            self.listen.sendto(data, dest)
                except OSError:
                    pass  # e.g. ICMP unreachable while no receiver is bound between tests
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listen.close()
        self.forward.close()


# ---- the receiver: a thread inside the receiver namespace ----------------------------------
class ReceiverNode:
    """The receiver on 10.77.2.2:8443; collects flow records and admitted messages."""

    def __init__(self, ns: str, receiver: Receiver) -> None:
        self.receiver = receiver
        self.flows: list[dict[str, Any]] = []
        self.messages: list[Any] = []  # (payload, authority)
        self.cond = threading.Condition()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, args=(ns,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"receiver did not start: {self._error!r}")

    # called on the receiver's loop
    def _flow(self, rec: dict[str, Any]) -> None:
        with self.cond:
            self.flows.append(rec)
            self.cond.notify_all()

    def _message(self, payload: bytes, authority: Any) -> None:
        with self.cond:
            self.messages.append((payload, authority))
            self.cond.notify_all()

    def _main(self, ns: str) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        closers: list[Callable[[], None]] = []
        try:
            enter_netns(ns)
            if endpoint is not None:
                listener = loop.run_until_complete(
                    endpoint.listen(RCV_IP, PORT, self.receiver, on_flow=self._flow)
                )
                closers.append(listener.close)

                async def consume() -> None:
                    async for msg in listener:
                        self._message(msg.payload, msg.authority)

                self._consumer = loop.create_task(consume())
            else:
                transport, _ = loop.run_until_complete(
                    loop.create_datagram_endpoint(
                        lambda: _SansIoProtocol(self), local_addr=(RCV_IP, PORT)
                    )
                )
                closers.append(transport.close)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for close in closers:
                close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def mark(self) -> int:
        with self.cond:
            return len(self.flows)

    def wait_flow(
        self, sid: bytes, seq: int, timeout: float = TIMEOUT, since: int | None = None
    ) -> dict[str, Any]:
        want = sid.hex()
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for rec in self.flows[since or 0 :]:
                    if flow_field(rec, "session_id") == want and flow_field(rec, "seq") == seq:
                        return rec
                    # An INIT refused by an exception inside the receiver (hop statements,
                    # credential checks) gets a record without its session id: match it by
                    # kind, after `since` (tests send one opening at a time).
                    if (
                        seq == 0
                        and since is not None
                        and flow_field(rec, "kind") == "INIT"
                        and flow_field(rec, "session_id") is None
                    ):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (flow_field(r, "session_id"), flow_field(r, "seq"), flow_reason(r))
                        for r in self.flows
                    ]
                    raise AssertionError(f"no flow record for {want} seq {seq}; saw {seen}")
                self.cond.wait(left)

    def reason(self, sid: bytes, seq: int, since: int | None = None) -> str:
        return flow_reason(self.wait_flow(sid, seq, since=since))


class _SansIoProtocol(asyncio.DatagramProtocol):
    """Fallback receiver shell: the sans-I/O Receiver on a plain UDP socket."""

    def __init__(self, node: ReceiverNode) -> None:
        self.node = node
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.time()
        out = self.node.receiver.handle(data, (addr[0], addr[1]), PORT, now)
        if out.reply is not None and self.transport is not None:
            self.transport.sendto(out.reply, addr)
        if out.payload is not None and out.authority is not None:
            self.node._message(out.payload, out.authority)
        self.node._flow(flow.record(out, (addr[0], addr[1]), (RCV_IP, PORT), now))


def flow_field(rec: dict[str, Any], name: str) -> Any:
    """A field of a flow record: Hubble's, or of its Warrant extension or authority."""
    rec = flat(rec)
    if name in rec:
        return rec[name]
    auth = rec.get("authority")
    return auth.get(name) if isinstance(auth, dict) else None


def flow_reason(rec: dict[str, Any]) -> str:
    return str(flow_field(rec, "reason"))


# ---- credentials, policies and senders -----------------------------------------------------
def make_credential(now: float, **narrow: Any) -> bytes:
    """anchor -> team (orders.*) -> holder (orders.read, plus `narrow` path constraints)."""
    team = credential.issue(
        ANCHOR,
        SCOPE,
        pub(TEAM),
        Grant(
            operations=("orders.*",),
            destinations=(Destination("orders", PORT, PORT),),
            not_before=int(now) - 3600,
            expires=int(now) + 3600,
        ),
    )
    grant = Grant(operations=("orders.read",), **narrow)
    return credential.delegate(team, TEAM, pub(HOLDER), grant).encode()


def make_policy(rule: dict[str, Any] | None = None, **limits: Any) -> Policy:
    trust = TrustStore()
    trust.add(Anchor(SCOPE, pub(ANCHOR)))
    for domain, k in [("a.net", RELAY_A), ("b.net", RELAY_B), ("evil.net", RELAY_E)]:
        trust.add_relay(domain, pub(k))
    model: dict[str, Any] = {"anchors": {}, "default": "allow"}
    if rule is not None:
        model.update(default="deny", rules=[{"name": "orders", **rule}])
    if limits:
        model["limits"] = limits
    return Policy(PolicyModel.model_validate(model), trust)


@dataclass
class Client:
    """A sans-I/O Sender on a UDP socket in the sender namespace, aimed at a path."""

    sender: Sender
    sock: socket.socket
    sent: list[bytes] = field(default_factory=list)

    @property
    def sid(self) -> bytes:
        assert self.sender.session_id is not None
        return self.sender.session_id

    def open(self, payload: bytes | None = b"hello") -> bytes:
        return self.send(self.sender.open(payload, time.time()))

    def data(self, payload: bytes) -> bytes:
        return self.send(self.sender.seal(payload))

    def send(self, packet: bytes) -> bytes:
        self.sock.send(packet)
        self.sent.append(packet)
        return packet

    def reply(self, timeout: float = TIMEOUT) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(65535)


@dataclass
class Lab:
    ns: Namespaces
    tamperer: Tamperer
    keydir: Path
    receiver: ReceiverNode | None = None
    clients: list[Client] = field(default_factory=list)

    def start_receiver(self, policy: Policy | None = None) -> ReceiverNode:
        if self.receiver is not None:
            self.receiver.stop()
        r = Receiver(RECEIVER, policy or make_policy(), started_at=time.time() - 5)
        self.receiver = ReceiverNode(self.ns.receiver, r)
        return self.receiver

    def client(self, path: str, cred: bytes | None = None) -> Client:
        port, k, *_ = RELAYS[FIRST[path]]
        sender = Sender(
            HOLDER,
            cred or make_credential(time.time()),
            pub(RECEIVER),
            Claim("orders.read", "orders", PORT),
            next_hop_public=pub(k),
        )
        c = Client(sender, udp_socket(self.ns.sender, (SND_IP, 0), (RLY_IP, port)))
        self.clients.append(c)
        return c

    def tamper(self, fn: Rewrite) -> None:
        self.tamperer.rewrite = fn


@pytest.fixture(scope="module")
def network(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Namespaces, Tamperer, Path]]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    tag = f"wr{os.getpid() % 10000}{secrets.token_hex(2)}"
    ns = Namespaces(f"{tag}-snd", f"{tag}-rly", f"{tag}-rcv")
    keydir = tmp_path_factory.mktemp("relay-keys")
    relays: list[RelayProcess] = []
    tamperer: Tamperer | None = None
    try:
        create_namespaces(ns)
        relays = [RelayProcess(ns.relay, name, keydir) for name in RELAYS]
        for r in relays:
            r.wait_ready()
        tamperer = Tamperer(ns.relay)
        yield ns, tamperer, keydir
    finally:
        if tamperer is not None:
            tamperer.close()
        for r in relays:
            r.stop()
        delete_namespaces(ns)


@pytest.fixture
def lab(network: tuple[Namespaces, Tamperer, Path]) -> Iterator[Lab]:
    ns, tamperer, keydir = network
    tamperer.rewrite = None
    lab = Lab(ns, tamperer, keydir)
    try:
        yield lab
    finally:
        tamperer.rewrite = None
        if lab.receiver is not None:
            lab.receiver.stop()
        for c in lab.clients:
            c.sock.close()


def eventually(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.01)


# ---- packet surgery (what a malicious forwarder can do) ------------------------------------
def seq_of(packet: bytes) -> int:
    return int(struct.unpack_from(">Q", packet, 12)[0])


def records(packet: bytes) -> list[bytes]:
    return [packet[OFF_HOPS + 12 * i : OFF_HOPS + 12 * (i + 1)] for i in range(packet[2])]


def with_records(packet: bytes, recs: list[bytes]) -> bytes:
    body = packet[OFF_HOPS + 12 * packet[2] :]
    return packet[:2] + bytes([len(recs)]) + packet[3:OFF_HOPS] + b"".join(recs) + body


def on_data(sid: bytes, seq: int, fn: Callable[[bytes], bytes | None]) -> Rewrite:
    """Apply `fn` to one DATA packet (session `sid`, number `seq`); pass all others."""

    def rewrite(packet: bytes) -> list[bytes]:
        if packet[1] == Kind.DATA and packet[4:12] == sid and seq_of(packet) == seq:
            out = fn(packet)
            return [] if out is None else [out]
        return [packet]

    return rewrite


def on_init(sid: bytes, fn: Callable[[InitPacket], bytes]) -> Rewrite:
    def rewrite(packet: bytes) -> list[bytes]:
        if packet[1] == Kind.INIT and packet[4:12] == sid:
            return [fn(InitPacket.decode(packet))]
        return [packet]

    return rewrite


def with_statements(init: InitPacket, statements: list[HopStatement]) -> bytes:
    return dataclasses.replace(init, statements=tuple(statements), raw=b"").encode()


def forged_statement(
    init: InitPacket, index: int, prev_sig: bytes, domain: str, signer: nacl.signing.SigningKey
) -> HopStatement:
    """A statement Mallory signs correctly, with her own key, for this very session."""
    th = transcript(init.signed_region(), init.holder_sig)
    part = HopStatement.signed_part(pub(signer), keys.key_id(pub(RECEIVER)), domain)
    sig = signer.sign(statement_message(th, index, prev_sig, part)).signature
    return HopStatement(pub(signer), keys.key_id(pub(RECEIVER)), domain, sig)


def open_session(lab: Lab, path: str, cred: bytes | None = None) -> Client:
    """Open a session on `path` and check it is admitted, with DATA seq 1 as a control."""
    rx = lab.receiver
    assert rx is not None
    c = lab.client(path, cred)
    c.open()
    assert rx.reason(c.sid, 0) == "OK"
    c.data(b"control before")
    assert rx.reason(c.sid, 1) == "OK"
    return c


# ---- admitted through trusted relays -------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "relays"), [("a-direct", ["A"]), ("a", ["A"]), ("ab", ["A", "B"])]
)
def test_admitted_through_trusted_relays(lab: Lab, path: str, relays: list[str]) -> None:
    rx = lab.start_receiver()
    c = lab.client(path)
    c.open(b"first payload, in the INIT")
    for i in range(1, 4):
        c.data(b"payload %d" % i)
    for seq in range(4):
        rec = rx.wait_flow(c.sid, seq)
        assert flow_reason(rec) == "OK" and rec["verdict"] == "FORWARDED"
    with rx.cond:
        assert rx.cond.wait_for(lambda: len(rx.messages) == 4, TIMEOUT)
        payloads = [p for p, _ in rx.messages]
        authority = rx.messages[-1][1]
    assert payloads == [b"first payload, in the INIT", b"payload 1", b"payload 2", b"payload 3"]
    # the application sees the path it came through, in order
    assert list(authority.hops) == [
        (d, TAG[r].hex()) for d, r in zip(PATHS[path], relays, strict=True)
    ]
    assert authority.operation == "orders.read" and authority.scope == SCOPE
    hops = flow_field(rx.wait_flow(c.sid, 3), "authority")
    if isinstance(hops, dict):  # flow records name the hops too
        assert [h["domain"] for h in hops["hops"]] == PATHS[path]


# ---- hop records on DATA: removed, reordered, duplicated, inserted, spliced ---------------
def _remove_last(p: bytes) -> bytes:
    return with_records(p, records(p)[:-1])


def _remove_first(p: bytes) -> bytes:
    return with_records(p, records(p)[1:])


def _reorder(p: bytes) -> bytes:
    return with_records(p, records(p)[::-1])


def _duplicate(p: bytes) -> bytes:
    r = records(p)
    return with_records(p, [*r, r[-1]])


def _duplicate_in_place(p: bytes) -> bytes:
    r = records(p)
    return with_records(p, [r[0], r[0]])


def _untrusted_insert(p: bytes) -> bytes:
    # Mallory runs the real relay code with her own key: a well-formed, correctly keyed record.
    return Relay(MALLORY, "b.net", pub(RECEIVER), pub(RECEIVER)).forward(p)


def _untrusted_replace(p: bytes) -> bytes:
    # ...or replaces B's record with hers, to pose as the second hop.
    return Relay(MALLORY, "b.net", pub(RECEIVER), pub(RECEIVER)).forward(
        with_records(p, records(p)[:-1])
    )


def _hop_count_only(p: bytes) -> bytes:
    return p[:2] + bytes([p[2] - 1]) + p[3:]


@pytest.mark.parametrize(
    "tamper",
    [
        _remove_last,
        _remove_first,
        _reorder,
        _duplicate,
        _duplicate_in_place,
        _untrusted_insert,
        _untrusted_replace,
        _hop_count_only,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_tampered_hop_records_are_dropped(lab: Lab, tamper: Callable[[bytes], bytes]) -> None:
    rx = lab.start_receiver()
    c = open_session(lab, "ab")
    lab.tamper(on_data(c.sid, 2, tamper))
    c.data(b"tampered")
    c.data(b"control after")
    assert rx.reason(c.sid, 2) == "HOP_CHAIN_BROKEN"
    assert rx.reason(c.sid, 3) == "OK"  # the session goes on; only the tampered packet is lost


def test_hop_records_spliced_from_another_session_are_dropped(lab: Lab) -> None:
    rx = lab.start_receiver()
    other = open_session(lab, "ab")
    victim = open_session(lab, "ab")
    # Take the records from the other session's latest DATA packet that crossed T.
    donor = next(
        p for p in reversed(lab.tamperer.seen) if p[1] == Kind.DATA and p[4:12] == other.sid
    )
    stolen = records(donor)
    assert len(stolen) == 2
    lab.tamper(on_data(victim.sid, 2, lambda p: with_records(p, stolen)))
    victim.data(b"spliced")
    victim.data(b"control after")
    assert rx.reason(victim.sid, 2) == "HOP_CHAIN_BROKEN"
    assert rx.reason(victim.sid, 3) == "OK"


def test_hop_records_spliced_from_another_packet_are_dropped(lab: Lab) -> None:
    rx = lab.start_receiver()
    c = open_session(lab, "ab")
    donor = next(p for p in reversed(lab.tamperer.seen) if p[4:12] == c.sid and p[1] == Kind.DATA)
    assert seq_of(donor) == 1
    lab.tamper(on_data(c.sid, 2, lambda p: with_records(p, records(donor))))
    c.data(b"spliced from seq 1")
    c.data(b"control after")
    assert rx.reason(c.sid, 2) == "HOP_CHAIN_BROKEN"
    assert rx.reason(c.sid, 3) == "OK"


# ---- hop statements on INIT -----------------------------------------------------------------
def _st_remove_last(i: InitPacket) -> bytes:
    return with_statements(i, list(i.statements[:-1]))


def _st_remove_first(i: InitPacket) -> bytes:
    return with_statements(i, list(i.statements[1:]))


def _st_reorder(i: InitPacket) -> bytes:
    return with_statements(i, list(i.statements[::-1]))


def _st_duplicate(i: InitPacket) -> bytes:
    return with_statements(i, [*i.statements, i.statements[-1]])


def _st_untrusted_append(i: InitPacket) -> bytes:
    st = forged_statement(i, len(i.statements), i.statements[-1].signature, "b.net", MALLORY)
    return with_statements(i, [*i.statements, st])


def _st_untrusted_replace(i: InitPacket) -> bytes:
    st = forged_statement(i, 1, i.statements[0].signature, "b.net", MALLORY)
    return with_statements(i, [i.statements[0], st])


def _st_domain_rewritten(i: InitPacket) -> bytes:
    # B's statement, claiming another (trusted) domain: the signature no longer verifies.
    st = dataclasses.replace(i.statements[-1], domain="a.net")
    return with_statements(i, [*i.statements[:-1], st])


@pytest.mark.parametrize(
    "tamper",
    [
        _st_remove_last,
        _st_remove_first,
        _st_reorder,
        _st_duplicate,
        _st_untrusted_append,
        _st_untrusted_replace,
        _st_domain_rewritten,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_tampered_hop_statements_are_dropped(
    lab: Lab, tamper: Callable[[InitPacket], bytes]
) -> None:
    rx = lab.start_receiver()
    open_session(lab, "ab")  # the same path, untouched, is admitted
    c = lab.client("ab")
    init = c.sender.open(b"x", time.time())
    lab.tamper(on_init(c.sid, tamper))
    mark = rx.mark()
    c.send(init)
    assert rx.reason(c.sid, 0, since=mark) == "HOP_CHAIN_BROKEN"
    c.data(b"after the refused opening")
    assert rx.reason(c.sid, 1) == "UNKNOWN_SESSION"


def test_hop_statement_spliced_from_another_session_is_dropped(lab: Lab) -> None:
    rx = lab.start_receiver()
    donor = lab.client("ab")
    donor.open()
    assert rx.reason(donor.sid, 0) == "OK"
    donor_init = InitPacket.decode(
        next(p for p in lab.tamperer.seen if p[1] == Kind.INIT and p[4:12] == donor.sid)
    )
    c = lab.client("ab")
    init = c.sender.open(b"x", time.time())
    lab.tamper(
        on_init(c.sid, lambda i: with_statements(i, [i.statements[0], donor_init.statements[1]]))
    )
    mark = rx.mark()
    c.send(init)
    assert rx.reason(c.sid, 0, since=mark) == "HOP_CHAIN_BROKEN"


# ---- relays the receiver does not trust -------------------------------------------------------
def test_untrusted_relay_on_the_named_path_is_dropped(lab: Lab) -> None:
    """A sends on to Mallory (a protocol-abiding relay, the real CLI) claiming b.net."""
    rx = lab.start_receiver()
    c = lab.client("am")
    c.open()
    assert rx.reason(c.sid, 0, since=0) == "UNTRUSTED_RELAY"
    c.data(b"x")
    assert rx.reason(c.sid, 1) == "UNKNOWN_SESSION"


# ---- path constraints ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "narrow", "rule", "expected"),
    [
        ("ab", {"max_hops": 1}, None, "TOO_MANY_HOPS"),
        ("a", {"max_hops": 1}, None, "OK"),
        ("ab", {}, {"max_hops": 1}, "TOO_MANY_HOPS"),
        ("a", {"required_domains": ("b.net",)}, None, "REQUIRED_DOMAIN_MISSING"),
        ("ab", {"required_domains": ("b.net",)}, None, "OK"),
        ("a", {}, {"via": ["b.net"]}, "REQUIRED_DOMAIN_MISSING"),
        ("ab", {}, {"via": ["b.net"]}, "OK"),
        ("e", {"forbidden_domains": ("evil.net",)}, None, "FORBIDDEN_DOMAIN"),
        ("a", {"forbidden_domains": ("evil.net",)}, None, "OK"),
        ("ab", {}, {"not_via": ["b.net"]}, "FORBIDDEN_DOMAIN"),
        ("ab", {"allowed_domains": ("a.net",)}, None, "DOMAIN_NOT_ALLOWED"),
    ],
)
def test_path_constraints(
    lab: Lab, path: str, narrow: dict[str, Any], rule: dict[str, Any] | None, expected: str
) -> None:
    rx = lab.start_receiver(make_policy(rule))
    c = lab.client(path, make_credential(time.time(), **narrow))
    c.open()
    assert rx.reason(c.sid, 0, since=0) == expected
    c.data(b"next")
    assert rx.reason(c.sid, 1) == ("OK" if expected == "OK" else "UNKNOWN_SESSION")


# ---- a malicious relay can neither widen authority nor forge the sender's MAC ------------
def _widen_claim(i: InitPacket) -> bytes:
    # The holder may read; the relay asks for write (the team link grants orders.*).
    claim = Claim("orders.write", "orders", PORT).encode()
    return dataclasses.replace(i, claim=claim, raw=b"").encode()


def _strip_link(i: InitPacket, fix_session_id: bool) -> bytes:
    # Drop the holder's narrowing link: what is left grants orders.* to the team key.
    parsed = credential.Credential.decode(i.credential)
    wider = credential.Credential(parsed.links[:-1]).encode()
    sid = derive_session_id(i.eph_public, i.receiver_id, wider) if fix_session_id else i.session_id
    return dataclasses.replace(i, credential=wider, session_id=sid, raw=b"").encode()


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_widen_claim, "BAD_HOLDER_PROOF"),
        (lambda i: _strip_link(i, True), "BAD_HOLDER_PROOF"),
        (lambda i: _strip_link(i, False), "BAD_SESSION_ID"),
    ],
    ids=["claim-widened", "link-stripped", "link-stripped-same-sid"],
)
def test_malicious_relay_cannot_widen_authority(
    lab: Lab, tamper: Callable[[InitPacket], bytes], expected: str
) -> None:
    rx = lab.start_receiver()
    c = lab.client("ab")
    init = c.sender.open(b"x", time.time())
    forged: list[bytes] = []

    def rewrite(packet: bytes) -> list[bytes]:
        out = on_init(c.sid, tamper)(packet)
        forged.extend(p for p in out if p != packet)
        return out

    lab.tamper(rewrite)
    c.send(init)
    eventually(lambda: bool(forged), "the tamperer did not see the INIT")
    sid = forged[0][4:12]  # the session id the receiver sees
    assert rx.reason(sid, 0, since=0) == expected
    assert not rx.messages  # nothing reached the application
    # The untouched opening, sent again, is admitted with the holder's own (narrow) rights.
    lab.tamper(lambda p: [p])
    c2 = open_session(lab, "ab")
    assert rx.messages[-1][1].operation == "orders.read"
    assert c2.sid != sid


def _seq_rewritten(p: bytes) -> bytes:
    return p[:12] + struct.pack(">Q", 1000) + p[20:]


def _mac_flipped(p: bytes) -> bytes:
    return p[:20] + bytes([p[20] ^ 1]) + p[21:]


def _fabricated(p: bytes) -> bytes:
    # A fresh packet for the session: new seq, made-up MAC and ciphertext, and the
    # relay's own perfectly valid hop record on top (Mallory relaying for herself).
    head = p[:4] + p[4:12] + struct.pack(">Q", 77) + secrets.token_bytes(16)
    return head + b"".join(records(p)) + secrets.token_bytes(32)


def _payload_flipped(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] ^ 0x80])


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_seq_rewritten, "BAD_MAC"),
        (_mac_flipped, "BAD_MAC"),
        (_fabricated, "BAD_MAC"),
        (_payload_flipped, "BAD_PAYLOAD_AUTH"),
    ],
    ids=lambda x: x.__name__.strip("_") if callable(x) else x,
)
def test_malicious_relay_cannot_forge_the_senders_mac(
    lab: Lab, tamper: Callable[[bytes], bytes], expected: str
) -> None:
    rx = lab.start_receiver()
    c = open_session(lab, "ab")
    lab.tamper(on_data(c.sid, 2, tamper))
    c.data(b"tampered")
    c.data(b"control after")
    seq = {_seq_rewritten: 1000, _fabricated: 77}.get(tamper, 2)
    assert rx.reason(c.sid, seq) == expected
    assert rx.reason(c.sid, 3) == "OK"
    with rx.cond:
        assert rx.cond.wait_for(lambda: len(rx.messages) == 3, TIMEOUT)
        assert [p for p, _ in rx.messages] == [b"hello", b"control before", b"control after"]


# ---- replies travel back through the relays ------------------------------------------------
def test_reject_travels_back_and_the_sender_reopens(lab: Lab) -> None:
    rx = lab.start_receiver()
    c = open_session(lab, "ab")
    rx = lab.start_receiver()  # the receiver restarts: its sessions are gone
    c.data(b"after restart")
    assert rx.reason(c.sid, 2) == "UNKNOWN_SESSION"
    reply = c.reply()  # through T, relay B, relay A, back to the sender namespace
    assert RejectPacket.decode(reply).reason == Reason.UNKNOWN_SESSION
    again = c.sender.handle(reply, time.time())
    assert again is not None and again[1] == Kind.INIT
    c.send(again)
    assert rx.reason(c.sid, 0) == "OK"


def test_cookie_travels_back_and_the_retry_is_admitted(lab: Lab) -> None:
    rx = lab.start_receiver(make_policy(load_threshold=1))  # every opening needs a cookie
    c = lab.client("ab")
    c.open(b"under load")
    assert rx.reason(c.sid, 0) == "COOKIE_REQUIRED"
    reply = c.reply()
    assert CookiePacket.decode(reply).session_id == c.sid
    retry = c.sender.handle(reply, time.time())
    assert retry is not None
    c.send(retry)

    def admitted() -> bool:
        with rx.cond:
            return any(
                flow_field(r, "session_id") == c.sid.hex() and flow_reason(r) == "OK"
                for r in rx.flows
            )

    eventually(admitted, "the INIT with its cookie was not admitted")
    with rx.cond:
        assert rx.cond.wait_for(lambda: rx.messages, TIMEOUT)
        assert rx.messages[0][0] == b"under load"


# ---- the relay drops what it must not forward, and counts it ------------------------------
def test_relay_drops_and_counts(lab: Lab) -> None:
    rx = lab.start_receiver()
    port = 7050
    spec = (port, RELAY_A, "a.net", RECEIVER, f"{RCV_IP}:{PORT}")
    relay = RelayProcess(lab.ns.relay, "counting", lab.keydir, spec, verbose=True)
    try:
        relay.wait_ready()
        sock = udp_socket(lab.ns.sender, (SND_IP, 0), (RLY_IP, port))
        direct = Sender(
            HOLDER,
            make_credential(time.time()),
            pub(RECEIVER),
            Claim("orders.read", "orders", PORT),
        )  # names the receiver as its next hop, not relay A
        sock.send(direct.open(b"x", time.time()))
        sock.send(b"\x01\x02\x00\x00" + bytes(20))  # DATA cut short
        sock.send(b"GET / HTTP/1.1\r\n\r\n")
        good = Sender(
            HOLDER,
            make_credential(time.time()),
            pub(RECEIVER),
            Claim("orders.read", "orders", PORT),
            next_hop_public=pub(RELAY_A),
        )
        sock.send(good.open(b"ok", time.time()))
        assert good.session_id is not None
        assert rx.reason(good.session_id, 0) == "OK"
        sock.close()
    finally:
        stats = relay.stop()
    assert stats["forwarded"] == {"INIT": 1, "DATA": 0}
    assert stats["dropped"] == {"HOP_CHAIN_BROKEN": 1, "TRUNCATED": 1, "UNKNOWN_VERSION": 1}
    assert direct.session_id is not None
    with rx.cond:  # nothing the relay dropped reached the receiver
        assert all(flow_field(r, "session_id") != direct.session_id.hex() for r in rx.flows)
    logged = []
    with contextlib.suppress(queue.Empty):
        while True:
            logged.append(relay.lines.get_nowait())
    assert any(line.startswith("dropped HOP_CHAIN_BROKEN from 10.77.1.1:") for line in logged)
