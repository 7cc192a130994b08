#!/usr/bin/env python3
"""User-space receiver throughput: Warrant's asyncio endpoint against plain asyncio UDP.

    python3 bench/endpoint.py            # about 2 minutes
    python3 bench/endpoint.py --quick    # within 60 s

Over loopback.  A sender process sends pre-built datagrams with `sendmmsg`
(ctypes; one system call per 64 datagrams) while the receiving process's event
loop is blocked, until the receiver's socket buffer is full (4 MiB requested,
about 10,000 datagrams); then the receiver runs and the time it takes to drain
the buffer is measured.  The sender is idle during the drain: it is not the
bottleneck and takes no CPU from the receiver (on this kind of VM, a Python or
sendmmsg sender cannot outrun a plain batched receiver, so a concurrent blast
would measure the sender).  Every pass runs every receiver once, in turn
(interleaved), so machine noise falls on all alike; the table gives the minimum
and median packets per second over the passes, and each ratio is the median
over passes of (Warrant / plain) measured in the same pass.

Receivers:
  plain (protocol)   asyncio DatagramProtocol that counts datagrams: one datagram
                     per event-loop iteration, as asyncio's transport reads them;
  plain (batched)    a reader callback that drains up to 256 datagrams per wakeup
                     (recvfrom_into one buffer, copy out) and counts them: the same
                     I/O as Warrant's listener, so the ratio against it is the cost
                     of verification and delivery to the application;
  warrant            `warrant.shells.endpoint.listen` (batched, INITs steered to their own
                     socket), a fresh `Receiver` per pass with the session already
                     installed, and an application task that takes every admitted
                     payload (`async for msg in listener`); no flow sink unless
                     the case says "+flows" (records to /dev/null as JSON lines);
  warrant (protocol) the same through asyncio.DatagramProtocol (batch=False).

Cases (DATA, 0 hops, 64-byte payload, 116-byte datagrams): admit (every
packet once, fresh sequence numbers), bad MAC, unknown session, replay (packets
already admitted), malformed (an unknown flag bit).

Also measured, without sockets: the sans-I/O cost per packet of
`Receiver.handle` for each case, and session openings per second (INIT with a
depth-2 chain: parse, session id, chain verification, holder proof, claim,
policy, X25519 and key derivation, install), cold (verifier caches cleared
before each INIT) and warm (the chain's links cached, as for a sender that
reopens).

What limits the user-space receiver is CPython itself: the admit path runs
about 60 lines of Python per packet (parse into a dataclass, session lookup,
SipHash-128 and ChaCha20-Poly1305 through cffi, replay window, the Outcome and
the application's Message), i.e. several microseconds where the plain batched
receiver spends one `recvfrom`.  Per-packet verification at line rate is the
kernel datapath's job (bench/datapath.py); this receiver is the reference.

The last line is JSON: ratios first, then absolute figures.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import ctypes
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nacl.signing

from warrant.core import credential, keys
from warrant.core.admission import Policy
from warrant.core.constants import Reason
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.shells.endpoint import FlowFile, listen

PAYLOAD = b"p" * 64
SRC = ("127.0.0.1", 40000)
CHUNK = 64  # datagrams per sendmmsg call
RCVBUF = 4 << 20


# ---- the world --------------------------------------------------------------------------
def _key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-bench-endpoint/" + label.encode()).digest())


ANCHOR, ALICE, BOB, RX = (_key(n) for n in ("anchor", "alice", "bob", "rx"))


def _pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


def make_policy() -> Policy:
    anchor = keys.encode_public(_pub(ANCHOR))
    return Policy.from_text(
        f"anchors: {{scopes: {{acme.prod: {{anchors: ['{anchor}']}}}}}}\n"
        "default: deny\n"
        "rules: [{name: writers, operations: ['orders.*'], services: [orders]}]\n"
        # Measure verification, not the per-source limiter or the cookie threshold.
        "limits: {init_rate_per_source: 1000000000, init_burst: 1000000000,"
        " load_threshold: 1000000000}\n"
    )


def make_credential(now: float) -> bytes:
    root = credential.issue(
        ANCHOR,
        "acme.prod",
        _pub(ALICE),
        Grant(
            operations=("orders.*",),
            destinations=(Destination("orders", 1, 65535),),
            expires=int(now) + 3600,
        ),
    )
    return credential.delegate(root, ALICE, _pub(BOB), Grant(operations=("orders.write",))).encode()


@dataclass
class Packets:
    """Pre-built datagrams for one session on one port."""

    port: int
    cred: bytes
    opened_at: float
    init: bytes
    admit: list[bytes]  # seq 1..n
    cases: dict[str, list[bytes]] = field(default_factory=dict)  # drop cases, cycled

    def receiver(self, *, replayed: int = 0) -> Receiver:
        """A fresh receiver with the session installed (and `replayed` packets admitted)."""
        rx = Receiver(RX, make_policy(), started_at=self.opened_at - 1)
        out = rx.handle(self.init, SRC, self.port, self.opened_at + 0.001)
        assert out.reason == Reason.OK, out
        for p in self.admit[:replayed]:
            assert rx.handle(p, SRC, self.port, self.opened_at + 0.002).reason == Reason.OK
        return rx


def build(port: int, n_admit: int) -> Packets:
    now = time.time()
    cred = make_credential(now)
    sender = Sender(BOB, cred, _pub(RX), Claim("orders.write", "orders", port))
    init = sender.send(PAYLOAD, now)
    admit = [sender.seal(PAYLOAD) for _ in range(n_admit)]
    pk = Packets(port, cred, now, init, admit)
    ring = admit[:4000]
    bad_mac = []
    unknown = []
    malformed = []
    for i, p in enumerate(ring):
        b = bytearray(p)
        b[20 + i % 16] ^= 1 << (i % 8)
        bad_mac.append(bytes(b))
        u = bytearray(p)
        u[4:12] = hashlib.blake2b(b"%d" % i, digest_size=8).digest()
        unknown.append(bytes(u))
        m = bytearray(p)
        m[3] = 0x40
        malformed.append(bytes(m))
    pk.cases = {
        "bad MAC": bad_mac,
        "unknown session": unknown,
        "replay": ring,
        "malformed": malformed,
    }
    return pk


# ---- the blaster (another process) ------------------------------------------------------
class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_MMSG_WORDS = 8  # struct mmsghdr on 64-bit Linux: msghdr (56 bytes) + len (4) + padding


class Batch:
    """Datagrams laid out for sendmmsg: one buffer, one iovec and one mmsghdr each."""

    def __init__(self, packets: list[bytes]) -> None:
        self.n = len(packets)
        self.blob = ctypes.create_string_buffer(b"".join(packets))
        base = ctypes.addressof(self.blob)
        iov = array.array("Q")
        off = 0
        for p in packets:
            iov.append(base + off)
            iov.append(len(p))
            off += len(p)
        self.iov = iov
        iov_base = iov.buffer_info()[0]
        msgs = array.array("Q", bytes(8 * _MMSG_WORDS * self.n))
        for i in range(self.n):
            msgs[i * _MMSG_WORDS + 2] = iov_base + 16 * i  # msg_iov
            msgs[i * _MMSG_WORDS + 3] = 1  # msg_iovlen
        self.msgs = msgs
        self.addr = msgs.buffer_info()[0]


def _blaster(pipe: multiprocessing.connection.Connection, sets: dict[str, list[bytes]]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    sendmmsg = getattr(libc, "sendmmsg", None)
    batches = {name: Batch(p) for name, p in sets.items()} if sendmmsg else {}
    pipe.send("ready")
    socks: dict[int, socket.socket] = {}
    while True:
        cmd = pipe.recv()
        if cmd is None:
            return
        name, port, start, count = cmd
        s = socks.get(port)
        if s is None:
            s = socks[port] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.connect(("127.0.0.1", port))
        packets = sets[name]
        sent, i, t0 = 0, start % len(packets), time.perf_counter()
        while sent < count:
            k = min(CHUNK, len(packets) - i, count - sent)
            if sendmmsg:
                n = max(0, sendmmsg(s.fileno(), ctypes.c_void_p(batches[name].addr + 64 * i), k, 0))
            else:
                n = 0
                for p in packets[i : i + k]:
                    try:
                        s.send(p)
                        n += 1
                    except OSError:
                        break
            n = max(n, 1)  # an error (e.g. ECONNREFUSED) skips the datagram
            sent += n
            i = (i + n) % len(packets)
        pipe.send((sent, time.perf_counter() - t0))


class Blaster:
    """The sending process: `fill` sends `count` datagrams of a set as fast as it can."""

    def __init__(self, sets: dict[str, list[bytes]]) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_blaster, args=(child, sets), daemon=True)
        self.proc.start()
        assert self.pipe.recv() == "ready"
        self.has_sendmmsg = hasattr(ctypes.CDLL(None), "sendmmsg")
        self.sent = 0
        self.seconds = 0.0

    def fill(self, name: str, port: int, start: int, count: int) -> None:
        """Blocks the caller (and its event loop, so nothing is read) until all are sent."""
        self.pipe.send((name, port, start, count))
        sent, seconds = self.pipe.recv()
        self.sent += sent
        self.seconds += seconds

    def close(self) -> None:
        self.pipe.send(None)
        self.proc.join(5)


# ---- receivers -------------------------------------------------------------------------
def _plain_socket(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.bind(("127.0.0.1", port))
    s.setblocking(False)
    return s


class _Counting(asyncio.DatagramProtocol):
    n = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.n += 1


async def plain_protocol(port: int) -> tuple[Callable[[], int], Callable[[], None]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Counting, sock=_plain_socket(port))
    return (lambda: proto.n), transport.close


async def plain_batched(port: int) -> tuple[Callable[[], int], Callable[[], None]]:
    loop = asyncio.get_running_loop()
    sock = _plain_socket(port)
    count = [0]
    recv_into = sock.recvfrom_into
    buf = bytearray(65535)
    view = memoryview(buf)

    def drain() -> None:  # the listener's I/O exactly: receive into one buffer, copy out
        n = 0
        try:
            while n < 256:
                size, _ = recv_into(buf)
                view[:size].tobytes()
                n += 1
        except BlockingIOError:
            pass
        count[0] += n

    loop.add_reader(sock.fileno(), drain)

    def close() -> None:
        loop.remove_reader(sock.fileno())
        sock.close()

    return (lambda: count[0]), close


async def warrant_receiver(
    port: int, rx: Receiver, *, batch: bool = True, flows: bool = False
) -> tuple[Callable[[], int], Callable[[], None]]:
    sink = FlowFile(os.devnull) if flows else None
    listener = await listen("127.0.0.1", port, rx, batch=batch, on_flow=sink)
    taken = [0]

    async def app() -> None:
        async for _ in listener:
            taken[0] += 1

    task = asyncio.get_running_loop().create_task(app())

    def close() -> None:
        listener.close()
        task.cancel()
        if sink is not None:
            sink.close()

    return (lambda: listener.stats.datagrams), close


# ---- one measurement --------------------------------------------------------------------
@dataclass
class Config:
    name: str  # table row
    case: str  # packet set
    make: Callable[[], Any]  # -> awaitable (count, close)
    expect: Reason | None = None  # the verdict every packet must get (checked)
    rx: Receiver | None = None
    queued: float = 0.0  # datagrams per fill the socket buffer held (last measurement)


async def measure(blaster: Blaster, cfg: Config, port: int, fill: int, cycles: int) -> float:
    """Fill the receiver's socket buffer while its event loop is blocked, then time the drain.

    The sender is idle while the receiver drains, so it cannot be the bottleneck and
    takes no CPU from it.  One warm-up cycle, then `cycles` timed ones; the rate is
    the datagrams processed over the time from the first to the last one processed.
    """
    count, close = await cfg.make()
    done, seconds, offset = 0, 0.0, 0
    try:
        for cycle in range(cycles + 1):
            await asyncio.sleep(0.005)
            c0 = count()
            n = fill if cycle else min(fill, 2000)  # a short warm-up fill first
            blaster.fill(cfg.case, port, offset, n)  # the loop is blocked meanwhile
            offset += n
            t0 = time.perf_counter()
            last_c, last_t = c0, t0
            while True:
                await asyncio.sleep(0.001)
                c, t = count(), time.perf_counter()
                if c != last_c:
                    last_c, last_t = c, t
                elif t - last_t > 0.05:
                    break
            if cycle:
                done += last_c - c0
                seconds += last_t - t0
    finally:
        close()
        await asyncio.sleep(0.02)  # let transports close before the port is bound again
    if cfg.expect is not None and cfg.rx is not None:
        reasons = cfg.rx.stats.by_reason
        wrong = {r.name: n for r, n in reasons.items() if r not in (cfg.expect, Reason.OK)}
        if wrong or reasons.get(cfg.expect, 0) == 0:
            raise RuntimeError(f"{cfg.name}: unexpected verdicts {wrong} / {dict(reasons)}")
    cfg.queued = done / cycles
    return done / seconds


# ---- sans-I/O -------------------------------------------------------------------------
def sansio_us(pk: Packets, packets: list[bytes], replayed: int, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        rx = pk.receiver(replayed=replayed)
        handle, port, now = rx.handle, pk.port, pk.opened_at + 1
        t = time.perf_counter()
        for p in packets:
            handle(p, SRC, port, now)
        best = min(best, (time.perf_counter() - t) / len(packets) * 1e6)
    return best


def session_opens(port: int, n: int, cold: bool) -> float:
    now = time.time()
    cred = make_credential(now)
    claim = Claim("orders.write", "orders", port)
    inits = [Sender(BOB, cred, _pub(RX), claim).send(PAYLOAD, now) for _ in range(n)]
    rx = Receiver(RX, make_policy(), started_at=now - 1)
    rx.handle(Sender(BOB, cred, _pub(RX), claim).send(PAYLOAD, now), SRC, port, now)  # warm
    t_total = 0.0
    for p in inits:
        if cold:
            rx.verifier.clear_cache()
            credential.clear_decode_cache()
        t = time.perf_counter()
        out = rx.handle(p, SRC, port, now + 0.01)
        t_total += time.perf_counter() - t
        assert out.reason == Reason.OK, out
    return n / t_total


# ---- main -------------------------------------------------------------------------------
def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    fill, cycles, passes = args.fill, args.cycles, args.passes
    n_admit = fill * cycles + 2000  # fresh sequence numbers for every fill of a measurement
    log(f"building {n_admit:,} DATA packets ...")
    pk = build(port, n_admit)
    blaster = Blaster({"admit": pk.admit, **pk.cases})

    def warrant(case: str, expect: Reason, replayed: int = 0, **kw: Any) -> Config:
        cfg = Config(f"warrant {case}", case, lambda: None, expect=expect)

        async def make() -> Any:
            cfg.rx = pk.receiver(replayed=replayed)
            return await warrant_receiver(port, cfg.rx, **kw)

        cfg.make = make
        return cfg

    configs = [
        Config("plain (protocol)", "admit", lambda: plain_protocol(port)),
        Config("plain (batched)", "admit", lambda: plain_batched(port)),
        warrant("admit", Reason.OK),
        warrant("bad MAC", Reason.BAD_MAC),
        warrant("unknown session", Reason.UNKNOWN_SESSION),
        warrant("replay", Reason.REPLAY, replayed=4000),
        warrant("malformed", Reason.MALFORMED),
    ]
    protocol = warrant("admit", Reason.OK, batch=False)
    protocol.name = "warrant admit (protocol)"
    flows = warrant("admit", Reason.OK, flows=True)
    flows.name = "warrant admit +flows"
    configs += [protocol, flows]
    results: dict[str, list[float]] = {c.name: [] for c in configs}
    for i in range(passes):
        for cfg in configs:
            results[cfg.name].append(await measure(blaster, cfg, port, fill, cycles))
        log(f"pass {i + 1}/{passes}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()))
    blaster.close()

    reps = 2 if args.quick else 5
    n_sans = min(len(pk.admit), 3000 if args.quick else 20000)
    sans = {
        "admit": sansio_us(pk, pk.admit[:n_sans], 0, reps),
        "bad MAC": sansio_us(pk, pk.cases["bad MAC"], 0, reps),
        "unknown session": sansio_us(pk, pk.cases["unknown session"], 0, reps),
        "replay": sansio_us(pk, pk.cases["replay"], 4000, reps),
        "malformed": sansio_us(pk, pk.cases["malformed"], 0, reps),
    }
    n_open = 60 if args.quick else 400
    opens_cold = session_opens(port, n_open, cold=True)
    opens_warm = session_opens(port, n_open, cold=False)
    return {
        "results": results,
        "sans": sans,
        "opens_cold": opens_cold,
        "opens_warm": opens_warm,
        "queued": {c.name: c.queued for c in configs},
        "sender_pps": blaster.sent / blaster.seconds,
        "sendmmsg": blaster.has_sendmmsg,
        "passes": passes,
        "fill": fill,
        "cycles": cycles,
    }


def paired_ratio(results: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(results[a], results[b], strict=True))


def report(r: dict[str, Any]) -> dict[str, Any]:
    res, sans = r["results"], r["sans"]
    base, proto = "plain (batched)", "plain (protocol)"
    rows = [
        ("plain (protocol)", None),
        ("plain (batched)", None),
        ("warrant admit", "admit"),
        ("warrant admit (protocol)", "admit"),
        ("warrant admit +flows", "admit"),
        ("warrant bad MAC", "bad MAC"),
        ("warrant unknown session", "unknown session"),
        ("warrant replay", "replay"),
        ("warrant malformed", "malformed"),
    ]
    queued = min(r["queued"].values())
    print(
        f"\nloopback UDP, 116-byte DATA datagrams; per measurement {r['cycles']} fills of "
        f"{r['fill']:,} sent ({'sendmmsg' if r['sendmmsg'] else 'send'}, "
        f"{r['sender_pps']:,.0f} pps) of which the socket buffer held >= {queued:,.0f}, "
        f"drained and timed; {r['passes']} interleaved passes"
    )
    print(f"{'receiver':<27}{'pps min':>11}{'pps median':>12}{'vs batched':>12}{'vs protocol':>13}"
          f"{'sans-I/O us':>13}")  # fmt: skip
    for name, case in rows:
        v = res[name]
        ratio = paired_ratio(res, name, base)
        ratio_p = paired_ratio(res, name, proto)
        s = f"{sans[case]:.2f}" if case else "-"
        print(f"{name:<27}{min(v):>11,.0f}{statistics.median(v):>12,.0f}{ratio:>11.2f}x"
              f"{ratio_p:>12.2f}x{s:>13}")  # fmt: skip
    print(
        f"session openings (depth-2 chain, verify + install): "
        f"{r['opens_cold']:,.0f}/s cold caches, {r['opens_warm']:,.0f}/s warm"
    )
    med = {name: statistics.median(v) for name, v in res.items()}
    key = {
        "warrant admit": "admit",
        "warrant bad MAC": "bad_mac",
        "warrant unknown session": "unknown_session",
        "warrant replay": "replay",
        "warrant malformed": "malformed",
    }
    out: dict[str, Any] = {
        "admit_pps_ratio_vs_plain": round(paired_ratio(res, "warrant admit", base), 3),
        "session_opens_per_s": round(r["opens_cold"], 1),
        "admit_pps_ratio_vs_plain_protocol": round(paired_ratio(res, "warrant admit", proto), 3),
        "admit_flows_pps_ratio_vs_plain": round(paired_ratio(res, "warrant admit +flows", base), 3),
        "admit_protocol_pps_ratio_vs_plain_protocol": round(
            paired_ratio(res, "warrant admit (protocol)", proto), 3
        ),
    }
    for name, k in key.items():
        if k != "admit":
            out[f"{k}_pps_ratio_vs_plain"] = round(paired_ratio(res, name, base), 3)
    out["session_opens_per_s_warm"] = round(r["opens_warm"], 1)
    out["plain_batched_pps"] = round(med[base])
    out["plain_protocol_pps"] = round(med[proto])
    for name, k in key.items():
        out[f"{k}_pps"] = round(med[name])
    out["admit_protocol_pps"] = round(med["warrant admit (protocol)"])
    out["admit_flows_pps"] = round(med["warrant admit +flows"])
    for case, us in sans.items():
        out[f"sansio_{case.replace(' ', '_').lower()}_us"] = round(us, 3)
    out["passes"] = r["passes"]
    out["datagrams_per_fill"] = round(queued)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter passes; within 60 s")
    ap.add_argument("--passes", type=int, default=None)
    ap.add_argument("--fill", type=int, default=None, help="datagrams sent per fill")
    ap.add_argument("--cycles", type=int, default=None, help="timed fills per measurement")
    args = ap.parse_args()
    if args.passes is None:
        args.passes = 3 if args.quick else 7
    if args.fill is None:
        args.fill = 6000 if args.quick else 12000
    if args.cycles is None:
        args.cycles = 2 if args.quick else 4
    result = asyncio.run(run(args))
    print(json.dumps(report(result)))


if __name__ == "__main__":
    main()
