"""Asyncio relay shell: a UDP forwarder around the sans-I/O `hop.Relay`.

The shell owns two sockets.  The *listen* socket faces senders (or the
previous relay): every Warrant INIT or DATA packet that arrives there goes
through `hop.Relay.forward`, which appends this relay's hop statement or hop
record, and leaves on the *forward* socket, connected to the next hop.  The
forward socket only ever expects replies (REJECT, COOKIE): the shell routes
each back to whoever sent packets of that session, from a small bounded map
session id -> sender address (least recently used entries go first).

Everything `hop.Relay.forward` refuses, and everything that is not a
Warrant packet travelling in the right direction, is dropped and counted by
reason.  The relay holds no session state beyond that map and the hop-key
cache inside `hop.Relay`; losing either costs nothing but a recomputation
(or one unanswered REJECT, which the sender's next INIT repairs).

Notes on addresses.  The receiver sees every session arriving through this
relay from the forward socket's address, so per-source limits at the
receiver (session openings, REJECTs, cookies) apply to the relay as a whole.
The reply route of a session follows the latest address its packets came
from, so a sender that moves keeps getting its REJECTs (P11).  The relay
cannot authenticate DATA, so whoever knows a session id (an on-path
observer) can point that route at itself and divert the session's REJECT and
COOKIE replies; both are unauthenticated hints that an on-path attacker can
suppress anyway, and they never change a verdict.

The shell is sans-I/O at its core (`RelayCore`) and thin around it
(`RelayServer`); `warrant relay` (cli_relay.py) runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nacl.signing

from ..core.anchors import TrustStore
from ..core.constants import (
    COMMON_HEADER_LEN,
    COOKIE_PACKET_LEN,
    MAX_DATAGRAM,
    OFF_SESSION_ID,
    REJECT_LEN,
    SESSION_ID_LEN,
    VERSION,
    Kind,
    Reason,
)
from ..core.credential import Credential
from ..core.errors import WarrantError
from ..core.hop import Relay
from ..core.ratelimit import KeyedLimiter
from ..core.revocation import RevocationStore
from ..core.wire import InitPacket
from ..integration.revocations import RevocationWatcher
from .endpoint import resolve_udp

log = logging.getLogger("warrant.shells.relay")

Address = tuple[Any, ...]  # (host, port) for IPv4, (host, port, flow, scope) for IPv6

DEFAULT_MAX_SESSIONS = 65536
DEFAULT_INIT_RATE = 200.0  # session openings per second per source address (burst: twice that)
BATCH = 256  # datagrams read per wakeup on the batched path
RCVBUF = 4 << 20  # requested listen-socket receive buffer (the kernel caps it at rmem_max)
_REPLY_LEN = {Kind.REJECT: REJECT_LEN, Kind.COOKIE: COOKIE_PACKET_LEN}
_INIT = int(Kind.INIT)
_REQUESTS = {_INIT: "INIT", int(Kind.DATA): "DATA"}  # kinds relayed towards the receiver


@dataclass
class RelayStats:
    """Counters a running relay keeps; `as_dict` is what the CLI prints on exit."""

    forwarded: dict[str, int] = field(default_factory=lambda: {"INIT": 0, "DATA": 0})
    replies: dict[str, int] = field(default_factory=lambda: {"REJECT": 0, "COOKIE": 0})
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, what: str) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "forwarded": dict(self.forwarded),
            "replies": dict(self.replies),
            "dropped": dict(sorted(self.dropped.items())),
        }


# Drop labels that are not protocol reason codes (the rest are `Reason` names).
NO_ROUTE = "NO_REPLY_ROUTE"  # a reply for a session this relay has not carried (or forgot)
WRONG_DIRECTION = "WRONG_DIRECTION"  # a reply arriving from a sender, or a request from upstream
SEND_ERROR = "SEND_ERROR"  # the OS refused to send (ICMP unreachable and similar)


class RelayCore:
    """The relay's decisions, without sockets: what to forward, which replies go where."""

    def __init__(
        self,
        relay: Relay,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        *,
        init_rate: float | None = DEFAULT_INIT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if init_rate is not None and init_rate <= 0:
            raise ValueError("init_rate must be positive (or None for no limit)")
        self.relay = relay
        self.max_sessions = max_sessions
        self.stats = RelayStats()
        self._senders: OrderedDict[bytes, Address] = OrderedDict()
        # Each INIT costs this relay an Ed25519 signature: openings are metered per source
        # address before any work is done (DATA is never metered).
        self._init_limiter = (
            KeyedLimiter(init_rate, 2 * init_rate) if init_rate is not None else None
        )
        self._clock = clock
        # With revocation lists (`--revocations DIR`): each carried session's chain
        # (scope, link ids, keys), bounded like the reply routes, and the sessions the
        # lists revoke, whose packets are no longer forwarded.
        self.revocations: RevocationStore | None = None
        self.trust: TrustStore | None = None
        self._chains: OrderedDict[bytes, tuple[str, list[bytes], list[bytes]]] = OrderedDict()
        self._revoked: OrderedDict[bytes, None] = OrderedDict()

    def set_revocations(self, revocations: RevocationStore, trust: TrustStore) -> int:
        """Refuse INITs of revoked credentials from now on, and the packets of carried
        sessions the lists revoke; how many carried sessions that ends."""
        self.revocations, self.trust = revocations, trust
        ended = 0
        for sid, (scope, ids, ks) in list(self._chains.items()):
            try:
                revocations.check(scope, ids, ks)
            except WarrantError:
                del self._chains[sid]
                self._senders.pop(sid, None)
                self._revoked[sid] = None
                ended += 1
        while len(self._revoked) > self.max_sessions:
            self._revoked.popitem(last=False)
        return ended

    def _check_revoked(self, packet: bytes, sid: bytes) -> None:
        if sid in self._revoked:
            raise WarrantError(Reason.REVOKED, "session of a revoked credential")
        if packet[1] != _INIT or self.revocations is None or self.trust is None:
            return
        cred = Credential.decode(InitPacket.decode(packet).credential)
        ks = [link.holder for link in cred.links]
        with contextlib.suppress(WarrantError):  # an unknown anchor is the receiver's call
            ks.append(self.trust.find(cred.scope, cred.anchor_id).public)
        self.revocations.check(cred.scope, cred.link_ids(), ks)
        self._chains[sid] = (cred.scope, cred.link_ids(), ks)
        self._chains.move_to_end(sid)
        if len(self._chains) > self.max_sessions:
            self._chains.popitem(last=False)

    def from_sender(self, packet: bytes, source: Address) -> bytes | None:
        """A datagram from the listen side: the packet to forward, or None (dropped)."""
        if len(packet) < COMMON_HEADER_LEN or packet[0] != VERSION or packet[1] not in _REQUESTS:
            self._refuse(packet, source)
            return None
        sid = packet[OFF_SESSION_ID : OFF_SESSION_ID + SESSION_ID_LEN]
        if (
            packet[1] == _INIT
            and self._init_limiter is not None
            and not self._init_limiter.take(source[0], self._clock())
        ):
            self._drop(Reason.RATE_LIMITED.name, source, "too many session openings")
            return None
        try:
            if self.revocations is not None:  # after the INIT meter: decoding costs
                self._check_revoked(packet, sid)
            out = self.relay.forward(packet)
        except WarrantError as exc:
            self._drop(exc.reason.name, source, exc.detail)
            return None
        senders = self._senders
        if senders.get(sid) == source:
            senders.move_to_end(sid)
        else:
            senders[sid] = source
            senders.move_to_end(sid)
            if len(senders) > self.max_sessions:
                senders.popitem(last=False)
        self.stats.forwarded[_REQUESTS[packet[1]]] += 1
        return out

    def _refuse(self, packet: bytes, source: Address) -> None:
        kind = self._kind(packet, source)
        if kind is not None:
            self._drop(WRONG_DIRECTION, source, f"{kind.name} from the sender side")

    def from_forward(self, packet: bytes) -> tuple[bytes, Address] | None:
        """A datagram from the forward side: (reply, sender address), or None (dropped)."""
        kind = self._kind(packet, None)
        if kind is None:
            return None
        if kind not in _REPLY_LEN:
            self._drop(WRONG_DIRECTION, None, f"{kind.name} from the forward side")
            return None
        if len(packet) != _REPLY_LEN[kind]:
            reason = Reason.TRUNCATED if len(packet) < _REPLY_LEN[kind] else Reason.MALFORMED
            self._drop(reason.name, None, f"{kind.name} of {len(packet)} bytes")
            return None
        sid = packet[OFF_SESSION_ID : OFF_SESSION_ID + SESSION_ID_LEN]
        dest = self._senders.get(sid)
        if dest is None:
            self._drop(NO_ROUTE, None, f"{kind.name} for unknown session {sid.hex()}")
            return None
        self.stats.replies[kind.name] += 1
        return packet, dest

    def route(self, session_id: bytes) -> Address | None:
        return self._senders.get(session_id)

    def __len__(self) -> int:
        return len(self._senders)

    def _kind(self, packet: bytes, source: Address | None) -> Kind | None:
        if len(packet) < COMMON_HEADER_LEN:
            self._drop(Reason.TRUNCATED.name, source, f"{len(packet)} bytes")
            return None
        if packet[0] != VERSION:
            self._drop(Reason.UNKNOWN_VERSION.name, source, f"version {packet[0]}")
            return None
        try:
            return Kind(packet[1])
        except ValueError:
            self._drop(Reason.UNKNOWN_KIND.name, source, f"kind {packet[1]}")
            return None

    def _drop(self, what: str, source: Address | None, detail: str) -> None:
        self.stats.drop(what)
        if log.isEnabledFor(logging.DEBUG):
            where = f" from {_fmt(source[0], source[1])}" if source else " from the forward side"
            log.debug("dropped %s%s: %s", what, where, detail)


class _Listen(asyncio.DatagramProtocol):
    """Portable path (loops without readiness callbacks): one datagram per callback."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        out = self.server.core.from_sender(data, addr)
        if out is not None:
            self.server.send_forward(out)

    def error_received(self, exc: Exception) -> None:
        self.server.core.stats.drop(SEND_ERROR)
        log.debug("listen socket: %s", exc)


class _Forward(asyncio.DatagramProtocol):
    def __init__(self, server: RelayServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        routed = self.server.core.from_forward(data)
        if routed is not None:
            self.server.send_back(*routed)

    def error_received(self, exc: Exception) -> None:
        # On a connected UDP socket this is typically ICMP port unreachable from the next hop.
        self.server.core.stats.drop(SEND_ERROR)
        log.debug("forward socket: %s", exc)


class RelayServer:
    """A running relay: `await RelayServer.start(...)`, then `close()`.

    On selector event loops the relay registers its own readers and drains up
    to `BATCH` datagrams per wakeup (asyncio's datagram transport reads one
    per loop iteration, which costs more than the relay's own work); sends are
    non-blocking and a datagram the socket refuses is dropped and counted
    (`SEND_ERROR`), as a router drops on a full queue.  Elsewhere it falls
    back to `asyncio.DatagramProtocol` transports.
    """

    def __init__(self, core: RelayCore, lsock: socket.socket, fsock: socket.socket) -> None:
        self.core = core
        self._lsock = lsock
        self._fsock = fsock
        self._loop = asyncio.get_running_loop()
        self._readers = False
        self._listen: asyncio.DatagramTransport | None = None
        self._forward: asyncio.DatagramTransport | None = None
        self._closed = False

    @classmethod
    async def start(
        cls,
        relay: Relay,
        listen: tuple[str, int],
        forward: tuple[str, int],
        *,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        init_rate: float | None = DEFAULT_INIT_RATE,
        listen_sock: socket.socket | None = None,
        forward_sock: socket.socket | None = None,
        batch: bool = True,
    ) -> RelayServer:
        """Bind the listen socket and connect the forward socket (or adopt given sockets)."""
        loop = asyncio.get_running_loop()
        core = RelayCore(relay, max_sessions, init_rate=init_rate)
        owned: list[socket.socket] = []
        try:
            if forward_sock is None:
                family, addr = await resolve_udp(*forward)
                forward_sock = socket.socket(family, socket.SOCK_DGRAM)
                owned.append(forward_sock)
                forward_sock.connect(addr)
            if listen_sock is None:
                family, addr = await resolve_udp(*listen)
                listen_sock = socket.socket(family, socket.SOCK_DGRAM)
                owned.append(listen_sock)
                with contextlib.suppress(OSError):
                    listen_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                listen_sock.bind(addr)
            for sock in (listen_sock, forward_sock):
                sock.setblocking(False)
            server = cls(core, listen_sock, forward_sock)
            if batch and _has_readers(loop, listen_sock):
                loop.add_reader(listen_sock.fileno(), server._drain_listen)
                loop.add_reader(forward_sock.fileno(), server._drain_forward)
                server._readers = True
            else:
                server._forward, _ = await loop.create_datagram_endpoint(
                    lambda: _Forward(server), sock=forward_sock
                )
                server._listen, _ = await loop.create_datagram_endpoint(
                    lambda: _Listen(server), sock=listen_sock
                )
            return server
        except BaseException:
            for sock in owned:
                sock.close()
            raise

    # ---- batched path -------------------------------------------------------------------
    def _drain_listen(self) -> None:
        recvfrom, send = self._lsock.recvfrom, self._fsock.send
        from_sender, stats = self.core.from_sender, self.core.stats
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                stats.drop(SEND_ERROR)
                log.debug("listen socket: %s", exc)
                return
            out = from_sender(data, addr)
            if out is not None:
                try:
                    send(out)
                except OSError as exc:
                    stats.drop(SEND_ERROR)
                    log.debug("forward socket: %s", exc)

    def _drain_forward(self) -> None:
        recv, sendto = self._fsock.recv, self._lsock.sendto
        from_forward, stats = self.core.from_forward, self.core.stats
        for _ in range(BATCH):
            try:
                data = recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable from the next hop
                stats.drop(SEND_ERROR)
                log.debug("forward socket: %s", exc)
                continue
            routed = from_forward(data)
            if routed is not None:
                try:
                    sendto(*routed)
                except OSError as exc:
                    stats.drop(SEND_ERROR)
                    log.debug("listen socket: %s", exc)

    # ---- either path ----------------------------------------------------------------------
    @property
    def listen_address(self) -> Address:
        return tuple(self._lsock.getsockname())

    @property
    def forward_address(self) -> Address:
        return tuple(self._fsock.getpeername())

    @property
    def stats(self) -> RelayStats:
        return self.core.stats

    def send_forward(self, packet: bytes) -> None:
        if self._forward is not None:
            self._forward.sendto(packet)
            return
        try:
            self._fsock.send(packet)
        except OSError:
            self.core.stats.drop(SEND_ERROR)

    def send_back(self, packet: bytes, dest: Address) -> None:
        if self._listen is not None:
            self._listen.sendto(packet, dest)
            return
        try:
            self._lsock.sendto(packet, dest)
        except OSError:
            self.core.stats.drop(SEND_ERROR)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._readers:
            for sock in (self._lsock, self._fsock):
                with contextlib.suppress(ValueError, OSError):
                    self._loop.remove_reader(sock.fileno())
        for t in (self._listen, self._forward):
            if t is not None:
                t.close()  # closes its socket
        if self._listen is None:
            self._lsock.close()
        if self._forward is None:
            self._fsock.close()


def _has_readers(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bool:
    try:
        loop.add_reader(sock.fileno(), lambda: None)
    except NotImplementedError:  # e.g. the proactor loop
        return False
    loop.remove_reader(sock.fileno())
    return True


def make_relay(
    key: nacl.signing.SigningKey,
    domain: str,
    receiver_public: bytes,
    next_hop_public: bytes | None = None,
) -> Relay:
    """The sans-I/O relay; the next hop defaults to the receiver itself."""
    return Relay(key, domain, next_hop_public or receiver_public, receiver_public)


def describe(server: RelayServer) -> str:
    relay = server.core.relay
    host, port = server.listen_address[:2]
    fhost, fport = server.forward_address[:2]
    return (
        f"relay {relay.tag.hex()} ({relay.domain}) listening on {_fmt(host, port)}, "
        f"forwarding to {_fmt(fhost, fport)} (next hop {relay.next_hop.hex()}, "
        f"receiver {relay.receiver_id.hex()})"
    )


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_hostport(text: str, option: str = "address") -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> (host, port)."""
    value = text.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{option}: expected [HOST]:PORT, got {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{option}: expected HOST:PORT, got {text!r}")
    if not host or not port_text.isdecimal() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{option}: expected HOST:PORT with a port 0..65535, got {text!r}")
    return host, int(port_text)


async def run(
    relay: Relay,
    listen: tuple[str, int],
    forward: tuple[str, int],
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    init_rate: float | None = DEFAULT_INIT_RATE,
    ready: Callable[[RelayServer], None] | None = None,
    stop: asyncio.Event | None = None,
    revocations: RevocationWatcher | None = None,
    trust: TrustStore | None = None,
) -> RelayStats:
    """Serve until `stop` is set (or the task is cancelled); return the counters.
    `revocations` (with the `trust` store its lists are signed under): loaded before the
    first packet and reloaded every REVOCATION_POLL_S."""
    server = await RelayServer.start(
        relay, listen, forward, max_sessions=max_sessions, init_rate=init_rate
    )
    poller = None
    try:
        if revocations is not None:
            if trust is None:
                raise ValueError("revocation lists need the trust store that signs them")
            reload_revocations(server.core, revocations, trust)
            poller = asyncio.create_task(_poll_revocations(server.core, revocations, trust))
        if ready is not None:
            ready(server)
        await (stop or asyncio.Event()).wait()
    finally:
        if poller is not None:
            poller.cancel()
        server.close()
    return server.stats


REVOCATION_POLL_S = 1.0


def reload_revocations(core: RelayCore, watcher: RevocationWatcher, trust: TrustStore) -> None:
    """Adopt changed lists (a refused list is logged; the previous lists stay)."""
    store, errors = watcher.poll()
    for error in errors:
        log.warning("revocation list refused, previous lists kept: %s", error)
    if store is not None:
        ended = core.set_revocations(store, trust)
        log.info("revocation lists loaded from %s: %d list(s), %d session(s) ended",
                 watcher.directory, len(store.lists), ended)  # fmt: skip


async def _poll_revocations(core: RelayCore, watcher: RevocationWatcher, trust: TrustStore) -> None:
    while True:
        await asyncio.sleep(REVOCATION_POLL_S)
        reload_revocations(core, watcher, trust)


__all__ = [
    "NO_ROUTE",
    "SEND_ERROR",
    "WRONG_DIRECTION",
    "RelayCore",
    "RelayServer",
    "RelayStats",
    "describe",
    "make_relay",
    "parse_hostport",
    "run",
]
