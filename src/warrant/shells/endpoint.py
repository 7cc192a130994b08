"""Asyncio shell: the sans-I/O `Receiver` and `Sender` on UDP sockets.

    listener = await listen("127.0.0.1", 8443, receiver, on_flow=records.append)
    async for msg in listener:          # only admitted payloads ever arrive here
        use(msg.payload, msg.authority, msg.source)

    conn = await connect("127.0.0.1", 8443, sender)
    await conn.send(b"hello")           # INIT first, DATA after; REJECT/COOKIE handled

The core decides everything (`Receiver.handle`, `Sender.handle`).  This module
moves bytes, reads the clock (`time.time()`, handed to the core as `now`),
sends replies (REJECT, COOKIE) back to their source, turns every verdict into
exactly one flow record (`warrant.integration.flow.record`) when a flow sink is given, and
expires sessions once a second.

Batching.  Python has no `recvmmsg`, and asyncio's datagram transport reads one
datagram per event-loop iteration.  On selector loops the listener registers
its own reader instead, which drains up to `BATCH` datagrams per wakeup with
one clock read per batch, receiving into one buffer and copying each datagram
out (`recvfrom(65507)` allocates 64 KiB per datagram, which costs more than the
protocol's checks).  `bench/endpoint.py` measures both paths; `batch=False`
selects the portable `asyncio.DatagramProtocol` one.

Session openings never starve DATA (P9).  On Linux the listener binds two
sockets to its port with SO_REUSEPORT and a six-instruction classic BPF
program (SO_ATTACH_REUSEPORT_CBPF) that steers version-1 INITs to the second
one: a flood of openings fills that socket's buffer, never the one DATA waits
in.  (A plain bind probes the port first, so a port in use is refused as
usual; a process of the same user could still join the group, as it could
also attach a debugger.)  INITs are read only as fast as they are verified (a bounded backlog,
handed to the core in slices of `INIT_SLICE` between reads), so the excess of a
flood is dropped by the kernel at no user-space cost.  Where the steering
program cannot be attached, one socket carries everything and INITs beyond the
backlog are dropped by the shell with `RATE_LIMITED` ("session-opening backlog
full"), with a flow record like every other verdict.

Order.  A sender may put DATA right behind its INIT.  Every batch of DATA first
pulls the INITs already waiting into the backlog; a DATA packet whose own INIT
is in the backlog waits for it (at most `HOLD_MAX` per session and `HOLD_BYTES`
in all) instead of being refused with UNKNOWN_SESSION.

Backpressure.  Admitted payloads wait for the application in a queue of at
most `max_pending`; when it is full the listener stops reading (the kernel
socket buffers absorb, then drop) until the application has taken half.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from ..core.constants import MAX_DATAGRAM, VERSION, Kind, Reason, Verdict
from ..core.errors import WarrantError
from ..core.receiver import Authority, Outcome, Receiver
from ..core.sender import Sender
from ..integration import flow
from ..integration.revocations import RevocationWatcher

Address = tuple[str, int]
FlowSink = Callable[[dict[str, Any]], None]
OutcomeHook = Callable[[Outcome, Address], None]

BATCH = 256  # datagrams read per wakeup on the batched path
INIT_SLICE = 8  # INITs handed to the core per event-loop iteration
INIT_BACKLOG = 256  # INITs read and waiting for verification
HOLD_MAX = 256  # DATA packets held behind their own queued INIT, per session
HOLD_BYTES = 1 << 20  # and in all
MAX_PENDING = 8192  # admitted payloads waiting for the application
EXPIRE_INTERVAL = 1.0  # seconds between session-table sweeps (and revocation reloads)
log = logging.getLogger("warrant.listen")
RCVBUF = 4 << 20  # requested socket receive buffer (the kernel caps it at rmem_max)

_INIT = int(Kind.INIT)
_ADMIT = Verdict.ADMIT
_message = tuple.__new__  # Message(*fields) without the NamedTuple's Python-level __new__


class Message(NamedTuple):
    """An admitted payload and the authority it arrived under."""

    payload: bytes
    authority: Authority
    source: Address
    seq: int


@dataclass
class ListenerStats:
    datagrams: int = 0  # handed to the core or shed
    delivered: int = 0  # admitted payloads queued for the application
    replies: int = 0  # REJECT and COOKIE datagrams sent
    reply_errors: int = 0  # replies the socket refused (full buffer, unreachable)
    shed: int = 0  # INITs dropped because the backlog was full
    paused: int = 0  # times reading stopped because the application fell behind


class FlowFile:
    """A flow sink writing JSON lines to a file (flushed per batch of records)."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        if isinstance(target, (str, Path)):
            self._file: IO[str] = open(target, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self._file, self._owned = target, False

    def __call__(self, record: dict[str, Any]) -> None:
        self._file.write(flow.to_json(record) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()


class Listener:
    """Receives datagrams, lets the core judge them, hands admitted payloads to the app.

    Iterate (`async for msg in listener`) or `await listener.receive()`; use
    `close()` (or `async with`) to stop.  Made by `listen()`.
    """

    def __init__(
        self,
        receiver: Receiver,
        sock: socket.socket,
        init_sock: socket.socket | None,
        *,
        on_flow: FlowSink | None,
        on_outcome: OutcomeHook | None,
        node: str,
        max_pending: int,
        init_backlog: int,
        revocations: RevocationWatcher | None = None,
    ) -> None:
        self.receiver = receiver
        self.revocations = revocations
        self.stats = ListenerStats()
        self.node = node
        self.max_pending = max_pending
        self.init_backlog = init_backlog
        self._sock = sock
        self._init_sock = init_sock
        name = sock.getsockname()
        self.address: Address = (name[0], name[1])
        self._port = name[1]
        self._v6 = sock.family == socket.AF_INET6
        self._on_flow = on_flow
        self._on_outcome = on_outcome
        self._loop = asyncio.get_running_loop()
        self._messages: deque[Message] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._inits: deque[tuple[bytes, Address]] = deque()
        self._queued: dict[bytes, int] = {}  # session id -> INITs in the backlog
        self._held: dict[bytes, list[tuple[bytes, Address]]] = {}  # DATA waiting for its INIT
        self._held_bytes = 0
        # One receive buffer, then an exact copy: recvfrom(65507) would allocate 64 KiB
        # per datagram and shrink it, which costs more than all the protocol's checks.
        self._buf = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buf)
        self._init_scheduled = False
        self._transport: asyncio.DatagramTransport | None = None
        self._batched = False
        self._reading = False
        self._reading_inits = False
        self._closed = False
        self._expiry: asyncio.Task[None] | None = None

    @property
    def steered(self) -> bool:
        """True when INITs arrive on their own socket (Linux SO_REUSEPORT steering)."""
        return self._init_sock is not None

    # ---- the application side --------------------------------------------------------
    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Message:
        while not self._messages:
            if self._closed:
                raise StopAsyncIteration
            fut = self._loop.create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
        msg = self._messages.popleft()
        if not self._reading and not self._closed and len(self._messages) <= self.max_pending // 2:
            self._resume()
        return msg

    async def receive(self) -> Message:
        """The next admitted payload; raises EOFError once the listener is closed."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise EOFError("listener closed") from None

    def pending(self) -> int:
        return len(self._messages)

    def close(self) -> None:
        if self._closed:
            return
        self._pause()
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        if self._transport is not None:
            self._transport.close()  # closes the socket
        else:
            self._sock.close()
        if self._init_sock is not None:
            self._init_sock.close()
        self._inits.clear()
        self._queued.clear()
        self._held.clear()
        self._held_bytes = 0
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------
    def _start(self, transport: asyncio.DatagramTransport | None) -> None:
        self._transport = transport
        self._batched = transport is None
        self._resume()
        self._expiry = self._loop.create_task(self._expire_loop())

    def _pause(self) -> None:
        self._pause_inits()
        if not self._reading:
            return
        self._reading = False
        if self._batched:
            self._loop.remove_reader(self._sock.fileno())
        elif self._transport is not None:
            self._transport.pause_reading()  # type: ignore[attr-defined]

    def _resume(self) -> None:
        if self._reading or self._closed:
            return
        self._reading = True
        if self._batched:
            self._loop.add_reader(self._sock.fileno(), self._drain)
        elif self._transport is not None:
            self._transport.resume_reading()  # type: ignore[attr-defined]
        self._resume_inits()

    def _pause_inits(self) -> None:
        if self._reading_inits and self._init_sock is not None:
            self._reading_inits = False
            self._loop.remove_reader(self._init_sock.fileno())

    def _resume_inits(self) -> None:
        if self._init_sock is None or self._reading_inits or not self._reading:
            return
        if len(self._inits) < self.init_backlog:
            self._reading_inits = True
            self._loop.add_reader(self._init_sock.fileno(), self._drain_inits)

    def _drain(self) -> None:
        """Batched path: read until the socket is empty or BATCH datagrams were taken."""
        recv_into = self._sock.recvfrom_into
        buf, view = self._buf, self._view
        route = self._route
        v6 = self._v6
        now = time.time()
        if self._init_sock is not None and self._reading_inits:
            self._pull_inits(now)  # INITs sent before this DATA are queued before it is judged
        # The common case inlined (no INIT, none queued, no hooks): _route and _outcome
        # in a few lines, which is a good part of the shell's cost per packet.
        plain = self._on_flow is None and self._on_outcome is None
        handle, port, messages = self.receiver.handle, self._port, self._messages
        n = fast = delivered = 0
        try:
            while n < BATCH:
                size, addr = recv_into(buf)
                data = view[:size].tobytes()
                n += 1
                if v6:
                    addr = addr[:2]
                if not plain or self._queued or (len(data) > 1 and data[1] == _INIT):
                    route(data, addr, now)
                    continue
                fast += 1
                out = handle(data, addr, port, now)
                if out.reply is not None:
                    self._reply(out.reply, addr)
                if out.payload is not None and out.verdict is _ADMIT:
                    messages.append(_message(Message, (out.payload, out.authority, addr, out.seq)))
                    delivered += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            pass  # e.g. an ICMP error queued on the socket; the next read goes on
        self.stats.datagrams += fast
        self.stats.delivered += delivered
        self._after_batch()

    def _drain_inits(self) -> None:
        """The INIT socket: fill the backlog, no further (the kernel drops the excess)."""
        self._pull_inits(time.time())
        self._after_batch()

    def _pull_inits(self, now: float) -> None:
        sock = self._init_sock
        assert sock is not None
        room = self.init_backlog - len(self._inits)
        recv_into, view = sock.recvfrom_into, self._view
        try:
            for _ in range(room):
                size, addr = recv_into(self._buf)
                self._route(view[:size].tobytes(), addr[:2] if self._v6 else addr, now)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            pass
        if len(self._inits) >= self.init_backlog:
            self._pause_inits()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Unbatched path (`asyncio.DatagramProtocol`): one datagram per loop iteration."""
        self._route(data, (addr[0], addr[1]), time.time())
        self._after_batch()

    def _route(self, data: bytes, addr: Address, now: float) -> None:
        self.stats.datagrams += 1
        if len(data) > 1 and data[1] == _INIT and data[0] == VERSION:
            if len(self._inits) >= self.init_backlog:
                self.stats.shed += 1
                out = Outcome(
                    Verdict.DROP, Reason.RATE_LIMITED, "INIT", len(data),
                    "session-opening backlog full",
                )  # fmt: skip
                self._outcome(out, addr, now)
                return
            self._inits.append((data, addr))
            sid = data[4:12]
            self._queued[sid] = self._queued.get(sid, 0) + 1
            return
        if self._queued and len(data) >= 12:
            # DATA sent right behind its INIT waits for it: no reordering, no lost first packets.
            sid = data[4:12]
            if sid in self._queued and self.receiver.sessions.get(sid) is None:
                held = self._held.setdefault(sid, [])
                if len(held) < HOLD_MAX and self._held_bytes + len(data) <= HOLD_BYTES:
                    held.append((data, addr))
                    self._held_bytes += len(data)
                    return
        self._outcome(self.receiver.handle(data, addr, self._port, now), addr, now)

    def _outcome(self, out: Outcome, addr: Address, now: float) -> None:
        if out.reply is not None:
            self._reply(out.reply, addr)
        if out.payload is not None and out.verdict is _ADMIT:
            assert out.authority is not None and out.seq is not None
            self._messages.append(_message(Message, (out.payload, out.authority, addr, out.seq)))
            self.stats.delivered += 1
        if self._on_flow is not None:
            self._on_flow(flow.record(out, addr, self.address, now, self.node))
        if self._on_outcome is not None:
            self._on_outcome(out, addr)

    def _reply(self, packet: bytes, addr: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(packet, addr)
            self.stats.replies += 1
            return
        try:
            self._sock.sendto(packet, addr)
            self.stats.replies += 1
        except OSError:  # full send buffer or unreachable: replies are best effort
            self.stats.reply_errors += 1

    def _after_batch(self) -> None:
        if self._inits and not self._init_scheduled:
            self._init_scheduled = True
            self._loop.call_soon(self._verify_inits)
        if self._messages:
            self._wake()
            if len(self._messages) >= self.max_pending and self._reading:
                self.stats.paused += 1
                self._pause()
        flush = getattr(self._on_flow, "flush", None)
        if flush is not None:
            flush()

    def _verify_inits(self) -> None:
        """A slice of queued INITs; reads (and DATA) get their turn between slices."""
        self._init_scheduled = False
        if self._closed or len(self._messages) >= self.max_pending:
            return  # resumed by the application taking messages
        now = time.time()
        handle = self.receiver.handle
        for _ in range(min(INIT_SLICE, len(self._inits))):
            data, addr = self._inits.popleft()
            self._outcome(handle(data, addr, self._port, now), addr, now)
            sid = data[4:12]
            left = self._queued[sid] - 1
            if left:
                self._queued[sid] = left
                continue
            del self._queued[sid]
            for held, source in self._held.pop(sid, ()):
                self._held_bytes -= len(held)
                self._outcome(handle(held, source, self._port, now), source, now)
        self._resume_inits()
        self._after_batch()

    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            self.reload_revocations()
            self.receiver.sessions.expire(time.time())
            if self._inits and not self._init_scheduled:  # after a pause
                self._after_batch()

    def reload_revocations(self) -> None:
        """Adopt changed revocation lists (`--revocations DIR`): the sessions they revoke
        end now; a refused list is logged and the previous lists stay in force."""
        if self.revocations is None:
            return
        store, errors = self.revocations.poll()
        for error in errors:
            log.warning("revocation list refused, previous lists kept: %s", error)
        if store is not None:
            ended = self.receiver.revoke(store, time.time())
            log.info("revocation lists loaded from %s: %d list(s), %d session(s) ended",
                     self.revocations.directory, len(store.lists), len(ended))  # fmt: skip


class _ListenerProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.listener.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.listener.stats.reply_errors += 1


async def resolve_udp(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    """Address family and socket address of a UDP destination (first answer)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


# Classic BPF for SO_ATTACH_REUSEPORT_CBPF: the program sees the UDP payload and returns
# the index of the socket (in the order they joined the group) that gets the datagram.
_SO_ATTACH_REUSEPORT_CBPF = 51
_STEER_INITS = [  # (code, jt, jf, k)
    (0x30, 0, 0, 0),  # ldb [0]          A = version (a short packet ends the program: 0)
    (0x15, 0, 3, VERSION),  # jeq #1, next, ret 0
    (0x30, 0, 0, 1),  # ldb [1]          A = kind
    (0x15, 0, 1, _INIT),  # jeq #INIT, next, ret 0
    (0x06, 0, 0, 1),  # ret #1           the INIT socket
    (0x06, 0, 0, 0),  # ret #0           everything else
]


def _steer_inits(sock: socket.socket) -> None:
    code = b"".join(struct.pack("HBBI", *insn) for insn in _STEER_INITS)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxP", len(_STEER_INITS), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, fprog)


def _bind(family: socket.AddressFamily, sockaddr: Any, reuseport: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind(sockaddr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _sockets(
    family: socket.AddressFamily, sockaddr: Any, steer: bool
) -> tuple[socket.socket, socket.socket | None]:
    """The DATA socket and, where INIT steering works, the INIT socket on the same port."""
    if steer and hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux"):
        if sockaddr[1] != 0:
            _bind(family, sockaddr, reuseport=False).close()  # in use? fail as a plain bind would
        main = _bind(family, sockaddr, reuseport=True)
        try:
            bound = main.getsockname()
            second = _bind(family, (sockaddr[0], bound[1], *sockaddr[2:]), reuseport=True)
        except OSError:
            main.close()
            return _bind(family, sockaddr, reuseport=False), None
        try:
            _steer_inits(main)
        except OSError:
            second.close()
            return main, None
        return main, second
    return _bind(family, sockaddr, reuseport=False), None


async def listen(
    host: str,
    port: int,
    receiver: Receiver,
    *,
    on_flow: FlowSink | None = None,
    on_outcome: OutcomeHook | None = None,
    node: str = "",
    batch: bool = True,
    steer: bool = True,
    max_pending: int = MAX_PENDING,
    init_backlog: int = INIT_BACKLOG,
    revocations: RevocationWatcher | None = None,
) -> Listener:
    """Bind a UDP port and serve `receiver` on it.  Port 0 picks a free port.

    `on_flow` receives one flow record (`warrant.integration.flow.record`) per verdict, admitted or
    dropped; `FlowFile(path)` writes them as JSON lines.  `on_outcome` receives the
    core's `Outcome` itself (e.g. to print drops).  Records are built only when a
    sink is given.  `batch=False` reads through `asyncio.DatagramProtocol`, one
    datagram per loop iteration; `steer=False` keeps INITs on the DATA socket.
    `revocations`: signed revocation lists, loaded now and reloaded when they change.
    """
    family, sockaddr = await resolve_udp(host, port)
    loop = asyncio.get_running_loop()
    if batch:
        try:
            probe = socket.socket(family, socket.SOCK_DGRAM)
            try:
                loop.add_reader(probe.fileno(), lambda: None)
                loop.remove_reader(probe.fileno())
            finally:
                probe.close()
        except NotImplementedError:  # e.g. the proactor loop: no readiness callbacks
            batch = False
    sock, init_sock = _sockets(family, sockaddr, steer and batch)
    try:
        listener = Listener(
            receiver, sock, init_sock, on_flow=on_flow, on_outcome=on_outcome, node=node,
            max_pending=max_pending, init_backlog=init_backlog, revocations=revocations,
        )  # fmt: skip
        listener.reload_revocations()  # before the first INIT is judged
        transport: asyncio.DatagramTransport | None = None
        if not batch:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _ListenerProtocol(listener), sock=sock
            )
        listener._start(transport)
        return listener
    except BaseException:
        sock.close()
        if init_sock is not None:
            init_sock.close()
        raise


# ---- the sending side ------------------------------------------------------------------
@dataclass
class ConnectionStats:
    sent: int = 0  # datagrams sent for payloads (INIT or DATA)
    inits: int = 0  # session openings sent (including cookie resends and re-opens)
    cookies: int = 0  # COOKIE replies received
    rejects: int = 0  # REJECT replies received
    answered: int = 0  # datagrams sent in answer to a reply
    bad_replies: int = 0  # replies the sender refused (malformed, wrong session)
    errors: int = 0  # socket errors reported (e.g. nobody listening)


class Connection:
    """A sender's side of a session: `await send(payload)`; replies are handled as they come."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.stats = ConnectionStats()
        self._transport: asyncio.DatagramTransport | None = None
        self._writable = asyncio.Event()
        self._writable.set()

    async def send(self, payload: bytes) -> None:
        packet = self.sender.send(payload, time.time())
        if len(packet) > MAX_DATAGRAM:
            raise ValueError(f"payload too large: the packet would be {len(packet)} bytes")
        await self._writable.wait()
        self._write(packet)
        self.stats.sent += 1
        await asyncio.sleep(0)  # let replies (REJECT, COOKIE) in between sends

    def _write(self, packet: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise OSError("connection is closed")
        if packet[1] == _INIT:
            self.stats.inits += 1
        self._transport.sendto(packet)

    def _reply(self, data: bytes) -> None:
        if len(data) > 1 and data[1] == Kind.COOKIE:
            self.stats.cookies += 1
        elif len(data) > 1 and data[1] == Kind.REJECT:
            self.stats.rejects += 1
        try:
            answer = self.sender.handle(data, time.time())
        except WarrantError:
            self.stats.bad_replies += 1
            return
        if answer is not None and self._transport is not None and not self._transport.is_closing():
            self._write(answer)
            self.stats.answered += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _ConnectionProtocol(asyncio.DatagramProtocol):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.conn._reply(data)

    def error_received(self, exc: Exception) -> None:
        self.conn.stats.errors += 1

    def pause_writing(self) -> None:
        self.conn._writable.clear()

    def resume_writing(self) -> None:
        self.conn._writable.set()


async def connect(
    host: str, port: int, sender: Sender, *, local_addr: Address | None = None
) -> Connection:
    """A UDP socket connected to the receiver (or first relay) at host:port."""
    loop = asyncio.get_running_loop()
    conn = Connection(sender)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _ConnectionProtocol(conn), remote_addr=(host, port), local_addr=local_addr
    )
    conn._transport = transport
    return conn
