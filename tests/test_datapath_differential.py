"""Differential tests: the eBPF datapath against the Python reference, packet by packet.

Every generated frame goes through BPF_PROG_TEST_RUN on the loaded program and
through `KernelReference` (the Python `Receiver.check_data_header` plus the
frame policy); verdict and reason must agree on every frame and the replay
windows must evolve identically.  Seeded: a failure prints the seed, the
packet index and the frame in hex.  Needs root and bpf(); skipped otherwise.
"""

from __future__ import annotations

import errno
import os
import random
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from warrant.core.constants import (
    AEAD_TAG_LEN,
    DP_BAD_MAC_BURST,
    MAX_HOPS,
    REPLAY_WINDOW,
    VERSION,
    Kind,
    Reason,
    Verdict,
)
from warrant.core.mac import header_mac
from warrant.core.wire import DataPacket, RejectPacket
from warrant.datapath import wire as dpwire
from warrant.datapath.lab import Flow, Lab
from warrant.datapath.reference import REJECT_REASONS, KernelReference, KernelVerdict

pytestmark = pytest.mark.root

PORT, OTHER_WARRANT_PORT, PLAIN_PORT = 4433, 4434, 5353
SRC6, DST6 = (
    bytes.fromhex("fd000000000000000000000000000001"),
    bytes.fromhex("fd00" + "00" * 13 + "02"),
)
QINQ = ((dpwire.ETH_P_8021AD, 100), (dpwire.ETH_P_8021Q, 7))
XDP_ACTION = {Verdict.ADMIT: 2, Verdict.PASS: 2, Verdict.DROP: 1}  # XDP_PASS, XDP_DROP
TC_NEXT = 0xFFFFFFFF  # TC_ACT_UNSPEC (-1): the next filter or tcx program runs
TC_ACTION = {Verdict.ADMIT: TC_NEXT, Verdict.PASS: TC_NEXT, Verdict.DROP: 2}  # TC_ACT_SHOT
XDP_TX, TC_ACT_REDIRECT = 3, 7  # a drop answered with a REJECT built in place
REPLY_ACTION = {id(XDP_ACTION): XDP_TX, id(TC_ACTION): TC_ACT_REDIRECT}
SEED = int(os.environ.get("WARRANT_DP_SEED", "20261130"))
T0 = 1_800_000_000


def _datapath_or_skip():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root: loads eBPF programs (CI runs as root)")
    try:
        from warrant.datapath.loader import Datapath

        return Datapath.open(pin_root=None)
    except Exception as exc:  # no clang, a verifier rejection, no bpf(): as root, a failure
        pytest.fail(f"as root the eBPF datapath must build and load: {exc}", pytrace=False)


@pytest.fixture
def dp():  # type: ignore[no-untyped-def]
    d = _datapath_or_skip()
    d.set_ports([PORT, OTHER_WARRANT_PORT])
    # one event per frame, so that every reason is visible
    d.set_config(admit_sample=1, pass_events=True, budget=False)
    # The REJECT bucket is per CPU and BPF_PROG_TEST_RUN runs on the caller's CPU: one
    # CPU for the whole test, so that the reference's single bucket is the kernel's.
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        yield d
    finally:
        os.sched_setaffinity(0, cpus)
        d.close()


# ---- packet generation -------------------------------------------------------------------
def data_packet(flow: Flow, seq: int, body: bytes) -> bytes:
    """A DATA packet with any sequence number, MACed with the session key, through the relays."""
    sid, key = flow.session.session_id, flow.session.mac_key
    mac = header_mac(key, DataPacket.mac_input(sid, seq))
    packet = DataPacket(sid, seq, mac, (), body).encode()
    for r in flow.relays:
        packet = r.forward(packet)
    return packet


def frame_with(packet: bytes, dport: int = PORT, **kw: object) -> bytes:
    return dpwire.udp_frame(packet, dport, **kw)  # type: ignore[arg-type]


@dataclass
class World:
    lab: Lab
    flows: list[Flow]
    doomed: list[Flow]  # sessions that expire during the run
    victim: Flow  # target of bad-MAC floods (its bucket runs dry)
    now: float
    seqs: dict[bytes, int] = field(default_factory=dict)
    sent: list[tuple[Flow, bytes]] = field(default_factory=list)  # packets already sent


def make_world(dp, seed: int, ref_ports: set[int]) -> tuple[World, KernelReference]:  # type: ignore[no-untyped-def]
    lab = Lab(T0, ports=(PORT, OTHER_WARRANT_PORT), relays=MAX_HOPS, seed=seed)
    flows = [lab.open(h) for h in (0, 0, 1, 1, 2, 4, 4, 8)]
    flows.append(lab.open(1, port=OTHER_WARRANT_PORT))
    doomed = [lab.open(h) for h in (0, 1, 4)]
    victim = lab.open(1)
    for i, f in enumerate(doomed):
        f.session.expires = T0 + 5 + 15 * i + 0.5  # expire while packets are flowing
    dp.set_time(T0)  # before installing: expiries are converted onto the kernel clock
    for f in [*flows, *doomed, victim]:
        dp.install_session(f.session)
    ref = KernelReference(lab.receiver, ref_ports)
    return World(lab, flows, doomed, victim, T0), ref


def generate(w: World, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """(category, frame) forever; every category the brief lists, weighted toward valid."""
    cats = [
        ("valid", 40), ("mutated", 14), ("truncated", 1), ("replayed", 6), ("wrong_port", 3),
        ("unknown_session", 4), ("expired", 3), ("window", 8), ("non_warrant", 6),
        ("frame", 5), ("header", 5), ("hop_splice", 3), ("bad_mac_flood", 1), ("init", 1),
        ("frame6", 5), ("vlan_stack", 2),
    ]  # fmt: skip
    names = [c for c, _ in cats]
    weights = [wt for _, wt in cats]
    while True:
        cat = rng.choices(names, weights)[0]
        for frame in _make(cat, w, rng):
            yield cat, frame


def _next_seq(w: World, f: Flow, step: int = 1) -> int:
    sid = f.session.session_id
    w.seqs[sid] = w.seqs.get(sid, 0) + step
    return w.seqs[sid]


def _body(rng: random.Random) -> bytes:
    return rng.randbytes(AEAD_TAG_LEN + rng.choice((0, 1, 7, 64, 300)))


def _valid(w: World, rng: random.Random, flows: list[Flow] | None = None) -> tuple[Flow, bytes]:
    f = rng.choice(flows or w.flows)
    packet = data_packet(f, _next_seq(w, f, rng.choice((1, 1, 1, 2, 5))), _body(rng))
    w.sent.append((f, packet))
    if len(w.sent) > 5000:
        del w.sent[:1000]
    return f, packet


def _addressing(rng: random.Random) -> dict[str, object]:
    """IPv4 or IPv6, untagged, one VLAN tag or QinQ: the same packet in any framing."""
    kw: dict[str, object] = {}
    if rng.random() < 0.3:
        kw.update(src=SRC6, dst=DST6)
    k = rng.random()
    if k < 0.05:
        kw["vlan"] = 7
    elif k < 0.1:
        kw["tags"] = QINQ
    return kw


def _ext(nh: int, kind: int, length: int = 0, frag: int = 0) -> bytes:
    """An IPv6 extension header of `kind` (walked: 0, 43, 60; 44 Fragment) before `nh`."""
    if kind == dpwire.NEXTHDR_FRAGMENT:
        return struct.pack(">BBHI", nh, 0, frag, 0x1234)
    return bytes([nh, length]) + bytes(6 + 8 * length)


def _frame6(p: bytes, port: int, rng: random.Random) -> bytes:
    """IPv6 framing odd in one way: extension headers, fragments, lengths, chains."""
    udp = dpwire.udp_datagram(SRC6, DST6, 40000, port, p)
    k = rng.randrange(9)
    if k <= 2:  # one to DP_MAX_IPV6_EXT + 1 extension headers, some of them fragments
        kinds = [rng.choice((0, 43, 60, 44)) for _ in range(rng.randrange(1, 6))]
        chain, nh = b"", dpwire.IPPROTO_UDP
        for kind in reversed(kinds):
            frag = rng.choice((0, 1, 8, 0x100 | 1)) if kind == 44 else 0
            chain = _ext(nh, kind, rng.choice((0, 0, 1, 3)), frag) + chain
            nh = kind
        ip = dpwire.ipv6_header(SRC6, DST6, len(chain) + len(udp), nexthdr=nh)
        return dpwire.ethernet(ip + chain + udp, dpwire.ETH_P_IPV6)
    if k == 3:  # a Destination Options header so long the UDP header is past the horizon
        chain = _ext(dpwire.IPPROTO_UDP, 60, rng.choice((24, 25, 26, 30)))
        ip = dpwire.ipv6_header(SRC6, DST6, len(chain) + len(udp), nexthdr=60)
        return dpwire.ethernet(ip + chain + udp, dpwire.ETH_P_IPV6)
    good = bytearray(dpwire.ethernet(dpwire.ipv6_header(SRC6, DST6, len(udp)) + udp,
                                     dpwire.ETH_P_IPV6))  # fmt: skip
    if k == 4:  # payload length wrong
        struct.pack_into(">H", good, 18, rng.choice((0, 7, 8, len(udp) - 1, len(udp) + 1,
                                                     rng.randrange(65536))))  # fmt: skip
    elif k == 5:  # UDP length wrong
        struct.pack_into(">H", good, 58, rng.choice((0, 8, len(udp) - 1, len(udp) + 1)))
    elif k == 6:  # cut short, or padded
        if rng.random() < 0.5:
            return bytes(good[: rng.randrange(14, len(good))])
        return bytes(good) + bytes(rng.randrange(1, 40))
    elif k == 7:  # not UDP, or not version 6
        if rng.random() < 0.5:
            good[20] = rng.choice((6, 58, 59, 50, 51))
        else:
            good[14] = (rng.choice((4, 5, 7)) << 4) | (good[14] & 0x0F)
    return bytes(good)


def _make(cat: str, w: World, rng: random.Random) -> list[bytes]:
    if cat == "valid":
        f, p = _valid(w, rng)
        return [frame_with(p, f.session.port, **_addressing(rng))]
    if cat == "frame6":
        f, p = _valid(w, rng)
        return [_frame6(p, f.session.port, rng)]
    if cat == "vlan_stack":  # three tags, or tags cut short: a deeper stack is unjudged
        f, p = _valid(w, rng)
        k = rng.randrange(3)
        if k == 0:
            return [frame_with(p, f.session.port, tags=(*QINQ, (dpwire.ETH_P_8021Q, 9)))]
        if k == 1:
            return [frame_with(p, rng.choice((f.session.port, PLAIN_PORT)),
                               tags=((dpwire.ETH_P_8021AD, 1),) * 3)]  # fmt: skip
        return [frame_with(p, f.session.port, tags=QINQ)[: rng.randrange(14, 26)]]
    if cat == "mutated":
        f, p = _valid(w, rng)
        b = bytearray(p)
        for _ in range(rng.choice((1, 1, 2, 8))):
            i = rng.randrange(min(len(b), 36 + 12 * len(f.relays) + 4))
            b[i] ^= 1 << rng.randrange(8)
        return [frame_with(bytes(b), f.session.port)]
    if cat == "truncated":  # every length up to the minimum DATA packet and a little beyond
        f, p = _valid(w, rng)
        end = 36 + 12 * len(f.relays) + AEAD_TAG_LEN
        return [frame_with(p[:n], f.session.port) for n in range(end + 1)]
    if cat == "replayed":
        if not w.sent:
            return []
        f, p = rng.choice(w.sent[-200:])
        return [frame_with(p, f.session.port)]
    if cat == "wrong_port":
        f, p = _valid(w, rng)
        other = OTHER_WARRANT_PORT if f.session.port == PORT else PORT
        return [frame_with(p, rng.choice((other, PLAIN_PORT)))]
    if cat == "unknown_session":
        f = rng.choice(w.flows)
        sid = rng.randbytes(8)
        seq = rng.randrange(1, 1 << 64)
        mac = header_mac(f.session.mac_key, DataPacket.mac_input(sid, seq))
        hops = rng.randrange(0, MAX_HOPS + 1)
        p = DataPacket(sid, seq, mac, (), b"").encode()[:36]
        p = p[:2] + bytes([hops]) + p[3:] + rng.randbytes(12 * hops) + _body(rng)
        return [frame_with(p, **_addressing(rng))]
    if cat == "expired":
        f = rng.choice(w.doomed)
        p = data_packet(f, _next_seq(w, f), _body(rng))
        return [frame_with(p, f.session.port, **_addressing(rng))]
    if cat == "window":
        f = rng.choice(w.flows)
        sid = f.session.session_id
        top = w.seqs.get(sid, 0)
        choice = rng.randrange(6)
        if choice == 0:  # far ahead: clears the whole ring
            seq = _next_seq(w, f, rng.choice((64, 4095, 4096, 4097, 10_000, 1 << 20)))
        elif choice == 1:  # exactly at the edge of the window
            seq = max(0, top - REPLAY_WINDOW + rng.choice((-1, 0, 1)))
        elif choice == 2:  # far behind
            seq = max(0, top - rng.randrange(REPLAY_WINDOW, 3 * REPLAY_WINDOW))
        elif choice == 3:  # inside the window: fresh or seen
            seq = max(0, top - rng.randrange(0, 200))
        elif choice == 4:  # seq 0 (recorded by the INIT)
            seq = 0
        else:  # near the top of the u64 range
            seq = _next_seq(w, f, 0) if top > (1 << 63) else top
        return [frame_with(data_packet(f, seq, _body(rng)), f.session.port)]
    if cat == "non_warrant":
        payload = rng.randbytes(rng.randrange(0, 80))
        k = rng.randrange(6)
        if k == 0:
            return [frame_with(payload, PLAIN_PORT)]
        if k == 1:  # TCP to the Warrant port
            ip = dpwire.ipv4_header(b"\x0a\0\0\1", b"\x0a\0\0\2", 20 + len(payload), proto=6)
            return [dpwire.ethernet(ip + struct.pack(">HHIIHHHH", 1, PORT, 0, 0, 0x5000, 0, 0, 0)
                                    + payload)]  # fmt: skip
        if k == 2:  # IPv6, ARP, raw ethertypes
            proto = rng.choice((dpwire.ETH_P_IPV6, 0x0806, 0x88CC))
            return [dpwire.ethernet(payload, proto=proto)]
        if k == 3:  # non-first fragment of a datagram to the Warrant port
            udp = dpwire.udp_datagram(b"\x0a\0\0\1", b"\x0a\0\0\2", 1, PORT, payload)
            ip = dpwire.ipv4_header(
                b"\x0a\0\0\1", b"\x0a\0\0\2", len(udp), frag=rng.randrange(1, 100)
            )
            return [dpwire.ethernet(ip + udp)]
        if k == 4:  # runt frames
            return [bytes(rng.randrange(14, 60))]
        return [frame_with(payload, rng.randrange(1, 65536))]
    if cat == "frame":  # Warrant port, odd IPv4/UDP framing
        f, p = _valid(w, rng)
        good = frame_with(p, f.session.port)
        b = bytearray(good)
        k = rng.randrange(6)
        if k == 0:  # IP options
            udp = good[34:]
            ip = dpwire.ipv4_header(b"\x0a\0\0\1", b"\x0a\0\0\2", len(udp), options=b"\x01" * 4)
            return [dpwire.ethernet(ip + udp)]
        if k == 1:  # first fragment (MF)
            ip = dpwire.ipv4_header(b"\x0a\0\0\1", b"\x0a\0\0\2", len(good) - 34, frag=0x2000)
            return [dpwire.ethernet(ip + good[34:])]
        if k == 2:  # UDP length wrong (short, long, tiny)
            struct.pack_into(">H", b, 38, rng.choice((0, 7, 8, 9, len(good) - 34 + 1,
                                                      rng.randrange(65536))))  # fmt: skip
        elif k == 3:  # IP total length wrong
            struct.pack_into(">H", b, 16, rng.choice((0, 27, 28, len(good) - 14 + 1,
                                                      rng.randrange(65536))))  # fmt: skip
        elif k == 4:  # frame cut short below the IP length
            return [bytes(b[: rng.randrange(14, len(b))])]
        else:  # Ethernet padding after the datagram: lengths still decide
            return [bytes(b) + bytes(rng.randrange(1, 40))]
        return [bytes(b)]
    if cat == "header":  # version, kind, flags, hop count
        f, p = _valid(w, rng)
        b = bytearray(p)
        k = rng.randrange(5)
        if k == 0:
            b[0] = rng.choice((0, 2, 255))
        elif k == 1:
            b[1] = rng.choice((0, int(Kind.REJECT), int(Kind.COOKIE), 5, 255))
        elif k == 2:
            b[3] = 1 << rng.randrange(8)
        elif k == 3:
            b[2] = rng.randrange(0, 256)
        else:
            b = b[: rng.randrange(0, 4)]
        return [frame_with(bytes(b), f.session.port)]
    if cat == "hop_splice":  # records from another session or position
        hopped = [f for f in w.flows if len(f.relays) >= 2]
        f, p = _valid(w, rng, hopped)
        _, q = _valid(w, rng, hopped)
        b = bytearray(p)
        k = rng.randrange(4)
        if k == 0:  # swap two records
            i, j = 36, 48
            b[i : i + 12], b[j : j + 12] = p[j : j + 12], p[i : i + 12]
        elif k == 1:  # splice the first record of another packet
            b[36:48] = q[36:48]
        elif k == 2:  # drop the last record
            n = b[2]
            del b[36 + 12 * (n - 1) : 36 + 12 * n]
            b[2] = n - 1
        else:  # duplicate the first record
            b[36:36] = p[36:48]
            b[2] += 1
        return [frame_with(bytes(b), f.session.port)]
    if cat == "bad_mac_flood":
        f = w.victim if rng.random() < 0.9 else rng.choice(w.flows)
        out = []
        for _ in range(rng.randrange(1, DP_BAD_MAC_BURST + 20)):
            p = bytearray(data_packet(f, _next_seq(w, f), _body(rng)))
            p[20 + rng.randrange(16)] ^= 1 << rng.randrange(8)
            out.append(frame_with(bytes(p), f.session.port))
        out.append(frame_with(data_packet(f, _next_seq(w, f), _body(rng)), f.session.port))
        return out
    if cat == "init":
        hdr = bytes([VERSION, Kind.INIT, 0, 0])
        return [frame_with(hdr + rng.randbytes(rng.randrange(0, 200)), PORT)]
    raise AssertionError(cat)


# ---- running -------------------------------------------------------------------------------
def _describe(seed: int, index: int, cat: str, frame: bytes, want: KernelVerdict,
              got: tuple[int, object]) -> str:  # fmt: skip
    return (
        f"seed={seed} packet #{index} ({cat}): reference {want.verdict.name}/{want.reason.name}, "
        f"kernel {got}\nframe {frame.hex()}\nreproduce: WARRANT_DP_SEED={seed} "
        "python3 -m pytest tests/test_datapath_differential.py"
    )


def run_differential(dp, prog_fd: int, actions: dict[Verdict, int], seed: int, total: int,
                     batch: int = 1000) -> Counter[tuple[str, str]]:  # type: ignore[no-untyped-def]  # fmt: skip
    from warrant.datapath import libbpf

    rng = random.Random(seed)
    w, ref = make_world(dp, seed, {PORT, OTHER_WARRANT_PORT})
    dp.set_time(w.now)
    runner = libbpf.TestRunner(prog_fd, 4096, data_out=True)
    # XDP test runs arrive on this netns's loopback: bpf_check_mtu sees its MTU
    mtu = _lo_mtu() if actions is XDP_ACTION else None
    stream = generate(w, rng)
    seen: Counter[tuple[str, str]] = Counter()
    done = 0
    while done < total:
        pending: list[tuple[int, str, bytes, KernelVerdict, int]] = []
        for _ in range(batch):
            cat, frame = next(stream)
            try:
                retval, _ = runner.run(frame)
            except libbpf.BpfError as exc:
                # BPF_PROG_TEST_RUN builds no skb for some runts (TC); nothing was decided
                if exc.errno != errno.EINVAL or actions is not TC_ACTION:
                    raise
                seen[(cat, "refused by test run")] += 1
                continue
            want = ref.decide(frame, w.now, mtu=mtu)
            if want.reply is not None:  # the kernel must have sent exactly this REJECT
                got_frame = runner.output()
                if retval != REPLY_ACTION[id(actions)] or got_frame != want.reply:
                    raise AssertionError(
                        _describe(seed, done, cat, frame, want, (retval, "reply")) +
                        f"\nreply: kernel {got_frame.hex()}\n     reference {want.reply.hex()}"
                    )  # fmt: skip
                seen[(cat, "REJECT sent")] += 1
                retval = actions[Verdict.DROP]  # the DATA itself is dropped
            elif want.verdict == Verdict.DROP and want.reason in REJECT_REASONS:
                seen[(cat, "REJECT limited")] += 1
            pending.append((done, cat, frame, want, retval))
            done += 1
        events = dp.events()
        assert len(events) == len(pending), (
            f"seed={seed}: {len(events)} events for {len(pending)} frames (lost {dp.events_lost()})"
        )
        for (index, cat, frame, want, retval), ev in zip(pending, events, strict=True):
            got = (retval, (ev.verdict.name, ev.reason.name))
            if retval != actions[want.verdict] or (ev.verdict, ev.reason) != (
                want.verdict,
                want.reason,
            ):
                raise AssertionError(_describe(seed, index, cat, frame, want, got))
            if want.session_id and ev.session_id != want.session_id:
                raise AssertionError(_describe(seed, index, cat, frame, want, got))
            seen[(cat, want.reason.name)] += 1
        check_state(dp, w, seed, done)
        # time moves on: sessions in `doomed` expire along the way, bucket ticks refill
        w.now += rng.choice((0, 0.25, 1, 2, 3))
        dp.set_time(w.now)
    return seen


def _lo_mtu() -> int:
    with open("/sys/class/net/lo/mtu") as f:
        return int(f.read())


def check_state(dp, w: World, seed: int, done: int) -> None:  # type: ignore[no-untyped-def]
    """Same live sessions, and identical replay windows, in the kernel and the reference."""
    for f in w.flows + w.doomed:
        sid = f.session.session_id
        live = w.lab.receiver.sessions.get(sid) is not None
        kernel = dp.window(sid)
        assert (kernel is not None) == live, (
            f"seed={seed} after {done}: session {sid.hex()} live={live}"
        )
        if kernel is not None:
            top, words = kernel
            assert (top, words) == (f.session.window.top, f.session.window.words), (
                f"seed={seed} after {done}: window of {sid.hex()} differs "
                f"(kernel top {top}, reference top {f.session.window.top})"
            )


def test_xdp_matches_reference_on_100k_generated_frames(dp) -> None:  # type: ignore[no-untyped-def]
    total = int(os.environ.get("WARRANT_DP_PACKETS", "100000"))
    seen = run_differential(dp, dp.xdp_fd, XDP_ACTION, SEED, total)
    reasons: Counter[str] = Counter()
    for (_, r), n in seen.items():
        reasons[r] += n
    replies = {r: reasons.pop(r) for r in ("REJECT sent", "REJECT limited") if r in reasons}
    print(f"\n{sum(reasons.values())} frames, seed {SEED}; by reason: {dict(reasons)}; "
          f"replies: {replies}")  # fmt: skip
    # both sides of the REJECT rate limit were reached, and the kernel counted them
    assert replies.get("REJECT sent", 0) > 0 and replies.get("REJECT limited", 0) > 0, replies
    assert dp.rejects_sent() == replies["REJECT sent"]
    assert dp.rejects_limited() == replies["REJECT limited"]
    # the generator must actually reach every reason the datapath can give
    for r in ("OK", "NOT_WARRANT", "TRUNCATED", "UNKNOWN_VERSION", "UNKNOWN_KIND", "MALFORMED",
              "UNKNOWN_SESSION", "SESSION_EXPIRED", "PORT_MISMATCH", "BAD_MAC",
              "HOP_CHAIN_BROKEN", "REPLAY", "TOO_OLD", "RATE_LIMITED", "FRAGMENTED",
              "UNPARSED_FRAME"):  # fmt: skip
        assert reasons[r] > 0, f"no frame reached {r}"


def test_tc_matches_reference(dp) -> None:  # type: ignore[no-untyped-def]
    seen = run_differential(dp, dp.tc_fd, TC_ACTION, SEED + 1, 20000)
    assert sum(n for (_, r), n in seen.items() if not r.startswith("REJECT")) >= 20000
    assert sum(n for (_, r), n in seen.items() if r == "REJECT sent") > 0


def test_counters_match_events(dp) -> None:  # type: ignore[no-untyped-def]
    seen = run_differential(dp, dp.xdp_fd, XDP_ACTION, SEED + 2, 3000)
    by_reason = Counter()  # type: ignore[var-annotated]
    for (_, r), n in seen.items():
        if not r.startswith("REJECT"):
            by_reason[r] += n
    counters = dp.counters()
    got = Counter()  # type: ignore[var-annotated]
    for (_, reason), (packets, _) in counters.items():
        got[reason.name] += packets
    assert got == by_reason


def test_differential_can_fail(dp) -> None:  # type: ignore[no-untyped-def]
    """A reference that disagrees (a session the kernel does not have) is caught."""
    from warrant.datapath import libbpf

    lab = Lab(T0, seed=5)
    f = lab.open(1)  # in the reference only: never installed into the kernel
    dp.set_time(T0)
    frame = frame_with(data_packet(f, 1, bytes(AEAD_TAG_LEN)))
    want = KernelReference(lab.receiver, {PORT}).decide(frame, T0)
    retval, _ = libbpf.TestRunner(dp.xdp_fd).run(frame)
    (ev,) = dp.events()
    assert (want.verdict, want.reason) == (Verdict.ADMIT, Reason.OK)
    assert (ev.verdict, ev.reason, retval) == (Verdict.DROP, Reason.UNKNOWN_SESSION, XDP_TX)


def _ip_checksum_ok(header: bytes) -> bool:
    total = sum(struct.unpack(">10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@pytest.mark.parametrize("vlan", [None, 7])
def test_lost_session_is_answered_with_a_reject_built_in_place(dp, vlan) -> None:  # type: ignore[no-untyped-def]
    """SPEC 6.1 steps 2-3 in the kernel: DATA of an unknown or expired session comes back
    as RejectPacket(reason, session_id), addressed to its sender, from XDP and from TC;
    the DATA's own verdict stays DROP with its reason."""
    from warrant.core.constants import DP_REJECT_TTL, REJECT_LEN
    from warrant.datapath import libbpf

    lab = Lab(T0, seed=11)
    lost = lab.open(1)  # the kernel never had it (an agent restart, an eviction)
    doomed = lab.open(0)
    src, dst = b"\x0a\x00\x00\x09", b"\x0a\x00\x00\x02"
    programs = ((dp.xdp_fd, XDP_TX), (dp.tc_fd, TC_ACT_REDIRECT))
    for i, (prog_fd, action) in enumerate(programs):
        base = T0 + 10 * i  # the kernel clock only moves forward
        doomed.session.expires = base + 1
        dp.set_time(base)
        dp.install_session(doomed.session)
        for flow, reason, now in ((lost, Reason.UNKNOWN_SESSION, base),
                                  (doomed, Reason.SESSION_EXPIRED, base + 2)):  # fmt: skip
            dp.set_time(now)
            packet = data_packet(flow, 3, bytes(AEAD_TAG_LEN + 40))
            frame = frame_with(packet, sport=41000, src=src, dst=dst, vlan=vlan)
            runner = libbpf.TestRunner(prog_fd, 4096, data_out=True)
            retval, _ = runner.run(frame)
            (ev,) = dp.events()
            assert (ev.verdict, ev.reason) == (Verdict.DROP, reason)
            assert retval == action
            out = runner.output()
            l3 = 18 if vlan else 14
            assert len(out) == l3 + 20 + 8 + REJECT_LEN < len(frame)
            assert out[0:6] == frame[6:12] and out[6:12] == frame[0:6]  # MACs swapped
            assert out[12:l3] == frame[12:l3]  # ethertype, VLAN tag
            ip, udp = out[l3 : l3 + 20], out[l3 + 20 : l3 + 28]
            assert ip[12:16] == dst and ip[16:20] == src and ip[8] == DP_REJECT_TTL
            assert struct.unpack(">H", ip[2:4])[0] == 44 and _ip_checksum_ok(ip)
            assert struct.unpack(">HHHH", udp) == (PORT, 41000, 24, 0)
            assert out[l3 + 28 :] == RejectPacket(reason, flow.session.session_id).encode()
            assert RejectPacket.decode(out[l3 + 28 :]) == RejectPacket(
                reason, flow.session.session_id
            )
    assert dp.rejects_sent() == 4


def test_kernel_rejects_are_rate_limited_per_cpu(dp) -> None:  # type: ignore[no-untyped-def]
    """DP_REJECT_BURST back to back, then silence until the clock gives a token back."""
    from warrant.core.constants import DP_REJECT_BURST, DP_REJECT_RATE
    from warrant.datapath import libbpf

    lab = Lab(T0, seed=12)
    lost = lab.open(0)
    dp.set_time(T0)
    runner = libbpf.TestRunner(dp.xdp_fd, 4096, data_out=True)
    actions = []
    for seq in range(1, DP_REJECT_BURST + 4):
        actions.append(runner.run(frame_with(data_packet(lost, seq, bytes(AEAD_TAG_LEN))))[0])
    assert actions == [XDP_TX] * DP_REJECT_BURST + [1] * 3
    assert (dp.rejects_sent(), dp.rejects_limited()) == (DP_REJECT_BURST, 3)
    dp.set_time(T0 + 1.5 / DP_REJECT_RATE)  # 1.5 intervals later: one more token
    assert runner.run(frame_with(data_packet(lost, 100, bytes(AEAD_TAG_LEN))))[0] == XDP_TX
    assert runner.run(frame_with(data_packet(lost, 101, bytes(AEAD_TAG_LEN))))[0] == 1
    counters = dp.counters()
    assert counters[(Verdict.DROP, Reason.UNKNOWN_SESSION)][0] == DP_REJECT_BURST + 5


def test_event_budget_counts_the_events_it_withholds(dp) -> None:  # type: ignore[no-untyped-def]
    """The deployed configuration: every drop wants an event, at most DP_EVENT_BUDGET per
    CPU per clock tick.  Beyond it every frame is still counted and the withheld events
    are counted too (warrant_percpu); a later tick writes events again."""
    from warrant.core.constants import DP_CLOCK_TICK_SHIFT, DP_EVENT_BUDGET
    from warrant.datapath import libbpf

    dp.set_config()
    dp.set_time(T0)
    bad = bytearray(data_packet(Lab(T0, seed=13).open(0), 1, bytes(AEAD_TAG_LEN)))
    bad[3] = 0x80  # an undefined flag: MALFORMED
    frame = frame_with(bytes(bad))
    runner = libbpf.TestRunner(dp.xdp_fd)
    extra = 10
    assert runner.run(frame, DP_EVENT_BUDGET + extra)[0] == 1  # XDP_DROP
    events = dp.events()
    assert len(events) == DP_EVENT_BUDGET
    assert {(e.verdict, e.reason) for e in events} == {(Verdict.DROP, Reason.MALFORMED)}
    assert dp.events_suppressed() == extra
    assert dp.counters()[(Verdict.DROP, Reason.MALFORMED)][0] == DP_EVENT_BUDGET + extra
    dp.set_time(T0 + 2 * 2**DP_CLOCK_TICK_SHIFT / 1e9)  # a later tick: a fresh budget
    assert runner.run(frame)[0] == 1
    assert len(dp.events()) == 1 and dp.events_suppressed() == extra


def test_window_admits_each_number_once_across_cpus(dp) -> None:  # type: ignore[no-untyped-def]
    """The lock-free window (bpf/replay.h) under real concurrency: processes pinned to
    different CPUs run the same DATA packets in the same shuffled order through
    BPF_PROG_TEST_RUN, so that the CPUs race for the same numbers and slots.  Every
    sequence number must be admitted exactly once in all: the admit counter equals
    the number of distinct numbers (all are within the window of each other, so none
    is TOO_OLD).  Can fail: a window written with plain stores instead of
    compare-and-exchange was caught (6002 admits for 6000 numbers) in one run of three
    with 3 rounds; the race window is a few ns, so a pass is evidence, not proof (the
    argument is in bpf/replay.h)."""
    from warrant.datapath import libbpf

    cpus = sorted(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))[:4]
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    lab = Lab(T0, seed=13)
    flows = [lab.open(0), lab.open(1)]
    dp.set_time(T0)
    dp.set_config(admit_sample=0, drop_events=False)  # counters only
    for f in flows:
        dp.install_session(f.session)
    per_round = 3000
    rounds = 8
    for rnd in range(rounds):  # later rounds re-tag slots while other CPUs read them
        seqs = range(rnd * per_round + 1, (rnd + 1) * per_round + 1)
        frames = [frame_with(data_packet(f, s, bytes(AEAD_TAG_LEN))) for f in flows for s in seqs]
        random.Random(rnd).shuffle(frames)
        # processes, not threads: threads would take turns on the GIL between runs
        go_r, go_w = os.pipe()
        children = []
        for cpu in cpus:
            pid = os.fork()
            if pid == 0:  # child: pinned, waits for the start, hammers, exits
                code = 1
                try:
                    os.sched_setaffinity(0, {cpu})
                    runner = libbpf.TestRunner(dp.xdp_fd, 4096)
                    os.read(go_r, 1)
                    for fr in frames:
                        runner.run(fr)
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
        os.write(go_w, b"x" * len(cpus))
        for pid in children:
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        os.close(go_r)
        os.close(go_w)
        counters = dp.counters()
        admitted = counters[(Verdict.ADMIT, Reason.OK)][0]
        replays = counters[(Verdict.DROP, Reason.REPLAY)][0]
        distinct = len(flows) * (rnd + 1) * per_round
        assert admitted == distinct, f"round {rnd}: {admitted} admits for {distinct} numbers"
        assert admitted + replays == distinct * len(cpus)
    # and the window holds exactly what was admitted, in the reference's layout
    last = rounds * per_round
    for f in flows:
        ref = f.session.window
        for s in range(1, last + 1):
            ref.update(s)
        assert dp.window(f.session.session_id) == (ref.top, ref.words)


def _udp6_checksum_ok(ip6: bytes, udp: bytes) -> bool:
    pseudo = ip6[8:40] + struct.pack(">IxxxB", len(udp), 17)
    data = pseudo + udp + (b"\0" if len(udp) % 2 else b"")
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF and udp[6:8] != b"\0\0"


@pytest.mark.parametrize("tags", [(), QINQ])
def test_lost_session_over_ipv6_is_answered_with_a_checksummed_reject(dp, tags) -> None:  # type: ignore[no-untyped-def]
    """Over IPv6 the REJECT built in place carries a UDP checksum (zero is not allowed,
    RFC 8200 8.1), swaps the addresses and keeps VLAN tags; XDP and TC."""
    from warrant.core.constants import DP_REJECT_TTL, REJECT_LEN
    from warrant.datapath import libbpf

    lab = Lab(T0, seed=21)
    lost = lab.open(1)
    lab.receiver.sessions.remove(lost.session.session_id, T0)  # lost on both sides
    ref = KernelReference(lab.receiver, {PORT})
    dp.set_time(T0)
    l3 = 14 + 4 * len(tags)
    for prog_fd, action in ((dp.xdp_fd, XDP_TX), (dp.tc_fd, TC_ACT_REDIRECT)):
        for seq in (3, 4):
            frame = frame_with(data_packet(lost, seq, bytes(AEAD_TAG_LEN + seq)), sport=41000,
                               src=SRC6, dst=DST6, tags=tags)  # fmt: skip
            runner = libbpf.TestRunner(prog_fd, 4096, data_out=True)
            retval, _ = runner.run(frame)
            (ev,) = dp.events()
            assert (ev.verdict, ev.reason, retval) == (Verdict.DROP, Reason.UNKNOWN_SESSION, action)
            out = runner.output()
            assert out == ref.decide(frame, T0).reply
            assert len(out) == l3 + 40 + 8 + REJECT_LEN < len(frame)
            assert out[0:6] == frame[6:12] and out[12:l3] == frame[12:l3]
            ip6, udp = out[l3 : l3 + 40], out[l3 + 40 :]
            assert ip6[8:24] == DST6 and ip6[24:40] == SRC6 and ip6[7] == DP_REJECT_TTL
            assert struct.unpack(">H", ip6[4:6])[0] == 24 and ip6[6] == 17
            assert struct.unpack(">HHH", udp[:6]) == (PORT, 41000, 24)
            assert _udp6_checksum_ok(ip6, udp)
            assert udp[8:] == RejectPacket(Reason.UNKNOWN_SESSION, lost.session.session_id).encode()


@pytest.mark.parametrize("v6", [False, True])
def test_merged_skb_at_tc_is_dropped(dp, v6) -> None:  # type: ignore[no-untyped-def]
    """Attack: a train of DATA packets merged by GRO (or sent as one GSO skb) whose first
    datagram is genuine.  Judged on its first header only, the rest would ride along: TC
    sees gso_segs > 1 and drops the skb as MERGED_FRAME; a single-segment skb is judged."""
    from warrant.datapath import libbpf

    lab = Lab(T0, seed=22)
    flow = lab.open(0)
    dp.set_time(T0)
    dp.install_session(flow.session)
    ref = KernelReference(lab.receiver, {PORT})
    addr = {"src": SRC6, "dst": DST6} if v6 else {}
    runner = libbpf.TestRunner(dp.tc_fd, 4096)
    cases = [(2, 100, Reason.MERGED_FRAME), (0, 100, Reason.MERGED_FRAME),  # 0: not counted
             (45, 1200, Reason.MERGED_FRAME), (1, 100, Reason.OK), (7, 0, Reason.OK)]  # fmt: skip
    for seq, (segs, size, reason) in enumerate(cases, start=1):
        frame = frame_with(data_packet(flow, seq, bytes(AEAD_TAG_LEN + 200)), **addr)  # type: ignore[arg-type]
        retval, _ = runner.run(frame, ctx=libbpf.skb_ctx(segs, size))
        (ev,) = dp.events()
        want = ref.decide(frame, T0, gso_segs=segs, gso_size=size)
        assert (ev.reason, want.reason) == (reason, reason), (segs, size)
        assert retval == TC_ACTION[want.verdict]
    assert dp.counters()[(Verdict.DROP, Reason.MERGED_FRAME)][0] == 3


def test_merged_frame_at_xdp_is_caught_by_the_mtu(dp) -> None:  # type: ignore[no-untyped-def]
    """Generic XDP runs after GRO and sees no GSO count: a merged frame shows only as an
    IP length above the ingress device's MTU.  BPF_PROG_TEST_RUN with ingress_ifindex
    runs the program as if the frame arrived on a device (here a veth, MTU 1280, in a
    namespace of this test); a merge that fits within the MTU is not detectable."""
    import shutil
    import socket
    import subprocess

    from warrant.datapath import libbpf
    from warrant.demo import topology

    if shutil.which("ip") is None:
        pytest.skip("needs iproute2")
    lab = Lab(T0, seed=23)
    flow = lab.open(0)
    dp.set_time(T0)
    dp.install_session(flow.session)
    ref = KernelReference(lab.receiver, {PORT})
    runner = libbpf.TestRunner(dp.xdp_fd, 4096)
    ns = f"wdiffmtu{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with topology.entered(ns):
            subprocess.run(["ip", "link", "add", "wdm0", "type", "veth", "peer", "name", "wdm1"],
                           check=True)  # fmt: skip
            subprocess.run(["ip", "link", "set", "wdm0", "mtu", "1280", "up"], check=True)
            idx = socket.if_nametoindex("wdm0")
            got = []
            # DATA of 36 + body bytes; over IPv6 the last is exactly the MTU (allowed)
            for seq, body in ((1, 1300), (2, 1200), (3, 1280 - 48 - 36)):
                for v6 in (False, True):
                    addr = {"src": SRC6, "dst": DST6} if v6 else {}
                    frame = frame_with(data_packet(flow, 2 * seq + v6, bytes(body)), **addr)  # type: ignore[arg-type]
                    retval, _ = runner.run(frame, ctx=libbpf.xdp_ctx(len(frame), idx))
                    (ev,) = dp.events()
                    want = ref.decide(frame, T0, mtu=1280)
                    assert (ev.verdict, ev.reason) == (want.verdict, want.reason)
                    assert retval == XDP_ACTION[want.verdict]
                    got.append(ev.reason)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    # 1300 + headers is above 1280 for both; 1200 + 48 (v6) + 52 is too; the last fits
    assert got == [Reason.MERGED_FRAME, Reason.MERGED_FRAME, Reason.OK, Reason.MERGED_FRAME,
                   Reason.OK, Reason.OK], got  # fmt: skip
