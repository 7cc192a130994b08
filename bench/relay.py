"""Relay benchmark: forwarding rate of the Warrant relay, and per-hop verification cost.

    python3 bench/relay.py            # more packets and runs
    python3 bench/relay.py --quick    # within 60 s

1. **Forwarding rate over loopback.**  Four forwarders, each in its own
   process, forward the same pre-built DATA packets (64-byte payload, a real
   session) to a sink:

   * `warrant`       the relay shell (`warrant.shells.relay.RelayServer`, asyncio,
                     draining up to BATCH datagrams per wakeup), appending a
                     hop record to every packet;
   * `plain`         a plain Python UDP forwarder with the same I/O design
                     (asyncio loop, own reader, same batch), forwarding bytes
                     unchanged: the ratio against it is the cost of Warrant's
                     work (parse, hop key lookup, one SipHash, reply map);
   * `warrant-loop`  `RelayCore` (the shell's decisions) in a blocking
                     recvfrom/sendto loop;
   * `plain-loop`    a blocking recvfrom/sendto loop forwarding unchanged, the
                     simplest and fastest Python forwarder there is.

   Method: the forwarder binds its socket with a receive buffer large enough
   for the whole batch (SO_RCVBUFFORCE when root, no sysctl change), the
   batch is sent into it while it waits, then it is told to go and times
   itself from its first datagram to its last; the blaster's CPU time is
   therefore not in the figure.  Passes are interleaved (plain, warrant,
   plain-loop, warrant-loop, repeated) and the table shows min and median of
   the runs; ratios use medians.  A run that lost packets (buffer too small)
   is reported with its count.

2. **Per-hop verification cost at the receiver** (sans-I/O): the
   `Receiver.check_data_header` of a DATA packet that crossed 0, 1, 2, 4 and 8
   relays (steps 1-7 of SPEC 6.1, what the kernel also runs), best of several
   repeats interleaved across hop counts; the per-hop cost is the
   least-squares slope.  Also: the relay's
   own `hop.Relay.forward` per DATA packet, and the INIT-time cost per hop
   statement (`hop.verify_statements`: one Ed25519 verification and one X25519
   per hop).

The last line is JSON: ratios first (`relay_pps_ratio_vs_plain`, ...), then
`per_hop_verify_us`, then the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import nacl.signing

from warrant.core import credential, keys
from warrant.core.admission import Policy, PolicyModel
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import MAX_DATAGRAM, Reason
from warrant.core.hop import Relay, verify_statements
from warrant.core.kdf import transcript
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.core.wire import InitPacket
from warrant.shells.relay import BATCH, RelayCore, RelayServer, make_relay

PORT = 8443
SCOPE = "bench.prod"
PAYLOAD = bytes(64)
BUF = 64 << 20  # receive buffer for a whole batch
HOPS = (0, 1, 2, 4, 8)
FORWARDERS = ("plain", "warrant", "plain-loop", "warrant-loop")


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-bench-relay/" + label.encode()).digest())


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


ANCHOR, HOLDER, RECEIVER = key("anchor"), key("holder"), key("receiver")
RELAYS = [key(f"relay-{i}") for i in range(8)]


def big_buffer(sock: socket.socket, option: int) -> int:
    """Ask for BUF bytes; SO_*BUFFORCE (root) ignores rmem_max/wmem_max. Returns what we got."""
    # Linux values; Python 3.11 does not name them.
    force = (
        getattr(socket, "SO_RCVBUFFORCE", 33)
        if option == socket.SO_RCVBUF
        else getattr(socket, "SO_SNDBUFFORCE", 32)
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, BUF)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, BUF)
    return sock.getsockopt(socket.SOL_SOCKET, option)


# ---- a world: credential, receiver, relays ---------------------------------------------------
def world(now: float, hops: int) -> tuple[Receiver, Sender, list[Relay]]:
    trust = TrustStore()
    trust.add(Anchor(SCOPE, pub(ANCHOR)))
    for i, k in enumerate(RELAYS):
        trust.add_relay(f"d{i}.net", pub(k))
    policy = Policy(PolicyModel.model_validate({"anchors": {}, "default": "allow"}), trust)
    grant = Grant(
        operations=("orders.*",),
        destinations=(Destination("orders", PORT, PORT),),
        not_before=int(now) - 60,
        expires=int(now) + 3600,
    )
    cred = credential.issue(ANCHOR, SCOPE, pub(HOLDER), grant).encode()
    path = RELAYS[:hops]
    relays = [
        Relay(k, f"d{i}.net", pub(path[i + 1]) if i + 1 < hops else pub(RECEIVER), pub(RECEIVER))
        for i, k in enumerate(path)
    ]
    sender = Sender(
        HOLDER,
        cred,
        pub(RECEIVER),
        Claim("orders.write", "orders", PORT),
        next_hop_public=pub(path[0]) if path else None,
    )
    return Receiver(RECEIVER, policy, started_at=now - 1), sender, relays


def through(relays: list[Relay], packet: bytes) -> bytes:
    for r in relays:
        packet = r.forward(packet)
    return packet


def packets(n: int) -> tuple[list[bytes], Relay]:
    """n DATA packets of one session, as a sender emits them (no hops yet), and relay 0."""
    now = time.time()
    _, sender, relays = world(now, 1)
    sender.open(None, now)
    return [sender.seal(PAYLOAD) for _ in range(n)], relays[0]


# ---- forwarders (each runs in its own process) -----------------------------------------------
def _forwarder(kind: str, sink: tuple[str, int], n: int, conn: Connection) -> None:
    lsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got = big_buffer(lsock, socket.SO_RCVBUF)
    lsock.bind(("127.0.0.1", 0))
    fsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffer(fsock, socket.SO_SNDBUF)
    fsock.connect(sink)
    relay = make_relay(RELAYS[0], "d0.net", pub(RECEIVER))
    conn.send((lsock.getsockname()[1], got))
    conn.recv()  # go
    if kind.endswith("loop"):
        result = _blocking(kind, lsock, fsock, relay, n)
    else:
        result = asyncio.run(_asyncio(kind, lsock, fsock, relay, n))
    conn.send(result)


def _blocking(
    kind: str, lsock: socket.socket, fsock: socket.socket, relay: Relay, n: int
) -> tuple[int, float]:
    lsock.settimeout(0.5)
    recvfrom, send = lsock.recvfrom, fsock.send
    core = RelayCore(relay) if kind == "warrant-loop" else None
    count, t0 = 0, 0.0
    try:
        data, addr = recvfrom(65535)
        t0 = time.perf_counter()
        while True:
            if core is None:
                send(data)
            else:
                out = core.from_sender(data, addr)
                if out is not None:
                    send(out)
            count += 1
            if count == n:
                break
            data, addr = recvfrom(65535)
    except TimeoutError:
        pass
    return count, time.perf_counter() - t0


async def _asyncio(
    kind: str, lsock: socket.socket, fsock: socket.socket, relay: Relay, n: int
) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"count": 0, "t0": 0.0, "t1": 0.0}

    def tick() -> None:
        c = state["count"] = state["count"] + 1
        if c == 1:
            state["t0"] = time.perf_counter()
        if c == n:
            state["t1"] = time.perf_counter()
            if not done.done():
                done.set_result(None)

    closer: Callable[[], None]
    if kind == "warrant":
        server = await RelayServer.start(
            relay, ("", 0), ("", 0), listen_sock=lsock, forward_sock=fsock
        )
        decide = server.core.from_sender

        def counted(data: bytes, addr: Any) -> bytes | None:
            out = decide(data, addr)
            tick()
            return out

        server.core.from_sender = counted  # type: ignore[method-assign]
        closer = server.close
    else:
        # The same I/O design as the relay shell: own reader, drain a batch per wakeup.
        lsock.setblocking(False)
        fsock.setblocking(False)
        recvfrom, send = lsock.recvfrom, fsock.send

        def drain() -> None:
            for _ in range(BATCH):
                try:
                    data, _addr = recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                tick()
                with contextlib.suppress(OSError):
                    send(data)

        loop.add_reader(lsock.fileno(), drain)

        def closer() -> None:
            loop.remove_reader(lsock.fileno())
            lsock.close()
            fsock.close()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done, 30)
    if not state["t1"]:
        await asyncio.sleep(0.5)  # lost packets: report what arrived
        state["t1"] = time.perf_counter()
    closer()
    return int(state["count"]), state["t1"] - state["t0"]


def one_pass(kind: str, batch: list[bytes]) -> dict[str, Any]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffer(sink, socket.SO_RCVBUF)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_forwarder, args=(kind, sink.getsockname(), len(batch), child))
    proc.start()
    try:
        port, rcvbuf = parent.recv()
        blaster = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        big_buffer(blaster, socket.SO_SNDBUF)
        blaster.connect(("127.0.0.1", port))
        for p in batch:
            blaster.send(p)
        blaster.close()
        parent.send("go")
        count, elapsed = parent.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    delivered = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            sink.recv(65535)
            delivered += 1
    sink.close()
    return {
        "kind": kind,
        "forwarded": count,
        "delivered": delivered,
        "pps": count / elapsed if elapsed > 0 else 0.0,
        "rcvbuf": rcvbuf,
    }


def forwarding(runs: int, n: int) -> dict[str, list[dict[str, Any]]]:
    batch, _ = packets(n)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in FORWARDERS}
    one_pass("plain", batch[: min(n, 2000)])  # warm up (page cache, imports)
    for _ in range(runs):
        for kind in FORWARDERS:
            out[kind].append(one_pass(kind, batch))
    return out


# ---- sans-I/O costs ------------------------------------------------------------------------------
def per_call(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of `number` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def verification(number: int, repeat: int) -> dict[str, Any]:
    """Per-call costs by hop count; repeats interleave the hop counts, best of each is kept."""
    now = time.time()
    data_fns: dict[int, Callable[[], object]] = {}
    init_fns: dict[int, Callable[[], object]] = {}
    for h in HOPS:
        receiver, sender, relays = world(now, h)
        init = through(relays, sender.open(None, now))
        out = receiver.handle(init, ("127.0.0.1", 1), PORT, now)
        if out.reason != Reason.OK:
            raise SystemExit(f"bench setup: INIT through {h} hops refused: {out.reason.name}")
        packet = through(relays, sender.seal(PAYLOAD))
        reason, _, _ = receiver.check_data_header(packet, PORT, now)
        if reason != Reason.OK:
            raise SystemExit(f"bench setup: DATA through {h} hops refused: {reason.name}")
        data_fns[h] = functools.partial(receiver.check_data_header, packet, PORT, now)
        parsed = InitPacket.decode(init)
        th = transcript(parsed.signed_region(), parsed.holder_sig)
        init_fns[h] = functools.partial(
            verify_statements,
            parsed,
            th,
            receiver.key_id,
            receiver._x_secret,
            receiver.policy.trust,
        )
    batch, relay = packets(256)
    it = itertools.cycle(batch)
    data_s = dict.fromkeys(HOPS, float("inf"))
    init_s = dict.fromkeys(HOPS, float("inf"))
    fwd = float("inf")
    for _ in range(repeat):
        for h in HOPS:
            data_s[h] = min(data_s[h], per_call(data_fns[h], number))
            init_s[h] = min(init_s[h], per_call(init_fns[h], max(10, number // 200)))
        fwd = min(fwd, per_call(lambda: relay.forward(next(it)), number))
    xs = [float(h) for h in HOPS]
    return {
        "check_data_header_us": {h: data_s[h] * 1e6 for h in HOPS},
        "per_hop_verify_ns": slope(xs, [data_s[h] * 1e9 for h in HOPS]),
        "init_statements_us": {h: init_s[h] * 1e6 for h in HOPS},
        "init_per_hop_us": slope(xs, [init_s[h] * 1e6 for h in HOPS]),
        "relay_forward_us": fwd * 1e6,
    }


# ---- report -------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer packets and runs: within 60 s")
    ap.add_argument("--runs", type=int, help="interleaved passes per forwarder")
    ap.add_argument("--packets", type=int, help="packets per pass")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    n = args.packets or (20000 if args.quick else 60000)
    number, repeat = (3000, 15) if args.quick else (20000, 25)

    t0 = time.perf_counter()
    fw = forwarding(runs, n)
    ver = verification(number, repeat)

    med = {k: statistics.median(r["pps"] for r in fw[k]) for k in FORWARDERS}
    low = {k: min(r["pps"] for r in fw[k]) for k in FORWARDERS}
    lost = {k: sum(n - r["forwarded"] for r in fw[k]) for k in FORWARDERS}
    rcvbuf = fw["warrant"][0]["rcvbuf"]
    print(f"Relay forwarding over loopback: {runs} interleaved runs of {n} DATA packets")
    print(
        f"(64-byte payload; forwarder receive buffer {rcvbuf >> 20} MiB; python {sys.version.split()[0]},"
    )
    print(f" {os.cpu_count()} CPUs)\n")
    print(f"{'forwarder':<14} {'min pps':>10} {'median pps':>11} {'us/pkt':>7} {'lost':>6}")
    for k in FORWARDERS:
        print(f"{k:<14} {low[k]:>10,.0f} {med[k]:>11,.0f} {1e6 / med[k]:>7.2f} {lost[k]:>6}")
    print()
    print("Receiver check_data_header (SPEC 6.1 steps 1-7) by hops crossed, sans-I/O:")
    print(f"{'hops':>4} {'DATA us':>8} {'INIT statements us':>19}")
    for h in HOPS:
        print(
            f"{h:>4} {ver['check_data_header_us'][h]:>8.2f} {ver['init_statements_us'][h]:>19.1f}"
        )
    print(
        f"\nper hop: DATA {ver['per_hop_verify_ns']:.0f} ns (slope), "
        f"INIT {ver['init_per_hop_us']:.1f} us; relay forward() {ver['relay_forward_us']:.2f} us"
    )
    print(f"elapsed {time.perf_counter() - t0:.1f} s")
    summary = {
        "relay_pps_ratio_vs_plain": round(med["warrant"] / med["plain"], 3),
        "relay_pps_ratio_vs_plain_loop": round(med["warrant"] / med["plain-loop"], 3),
        "relay_loop_pps_ratio_vs_plain_loop": round(med["warrant-loop"] / med["plain-loop"], 3),
        "per_hop_verify_us": round(ver["per_hop_verify_ns"] / 1000, 4),
        "per_hop_verify_ns": round(ver["per_hop_verify_ns"], 1),
        "check_data_header_us": {
            str(h): round(v, 3) for h, v in ver["check_data_header_us"].items()
        },
        "init_per_hop_us": round(ver["init_per_hop_us"], 1),
        "relay_forward_us": round(ver["relay_forward_us"], 3),
        "relay_pps": round(med["warrant"]),
        "plain_pps": round(med["plain"]),
        "relay_loop_pps": round(med["warrant-loop"]),
        "plain_loop_pps": round(med["plain-loop"]),
        "relay_pps_min": round(low["warrant"]),
        "plain_pps_min": round(low["plain"]),
        "packets_lost": sum(lost.values()),
        "runs": runs,
        "packets_per_run": n,
        "quick": bool(args.quick),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
