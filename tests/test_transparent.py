"""Transparent mode (SPEC 13): the reference against vectors/transparent.json, and the
kernel (BPF_PROG_TEST_RUN) against both, ingress (warrant_tc) and egress
(transparent_egress.c).  Kernel tests skip without root; as root a program that does
not build or load fails."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from warrant.core.constants import TP_EG_ENCAP, TP_EG_PUNT, TP_EG_SPOOFED, Reason, Verdict
from warrant.datapath import libbpf
from warrant.datapath import wire as dpwire
from warrant.datapath.transparent import (
    KERNEL_SEQ_START,
    Binding,
    BindingValue,
    EgressKey,
    EgressSession,
    PeerValue,
    RouteKey,
    WorkloadValue,
    _ip_u32,
    _sid_u64,
    check_transparent,
    judge_transparent,
    transparent_data,
    transparent_train,
)

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "transparent.json").read_text())
K_MAC = bytes.fromhex(VECTORS["k_mac_hex"])
SID = bytes.fromhex(VECTORS["session_id_hex"])
PORT = 4433
T0 = 1_800_000_000.0
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7


def _binding(ifindex: int = 1) -> Binding:
    return Binding(**VECTORS["binding"], ifindex=ifindex)


def test_reference_matches_vectors() -> None:
    trains = 0
    for case in VECTORS["cases"]:
        packet = bytes.fromhex(case["packet_hex"])
        got, first, count = judge_transparent(packet, K_MAC, _binding(), case.get("gso_size", 0))
        assert got.name == case["reason"], case["note"]
        assert check_transparent(packet, K_MAC, _binding(), case.get("gso_size", 0)) == got
        if got == Reason.OK:
            assert (first, count) == (case.get("first", 0), case.get("count", 1)), case["note"]
        trains += case["note"].startswith("train:")
    assert trains >= 15


def test_reference_can_fail() -> None:
    """Without the binding, transparent packets meet the ordinary MAC: BAD_MAC."""
    case = VECTORS["cases"][0]
    assert check_transparent(bytes.fromhex(case["packet_hex"]), K_MAC, None) == Reason.BAD_MAC


def _root_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: loads eBPF programs (CI runs as root)")


@pytest.fixture
def dp():  # type: ignore[no-untyped-def]
    _root_or_skip()
    from warrant.datapath.lab import Lab
    from warrant.datapath.loader import Datapath

    try:
        d = Datapath.open(pin_root=None)
    except Exception as exc:
        pytest.fail(f"as root the eBPF datapath must build and load: {exc}", pytrace=False)
    d.set_ports([PORT])
    d.set_config(admit_sample=1, pass_events=True, budget=False)
    d.set_time(T0)
    lab = Lab(T0, ports=(PORT,))
    s = dataclasses.replace(lab.open().session, session_id=SID, mac_key=K_MAC)
    d.install_session(s)
    b = _binding()
    libbpf.map_update(d.obj.map_fd("warrant_tp_bindings"), ctypes.c_uint64(_sid_u64(SID)),
                      BindingValue(_ip_u32(b.inner_src), _ip_u32(b.inner_dst), b.proto, 0,
                                   b.port_lo, b.port_hi, 0, b.ifindex))  # fmt: skip
    try:
        yield d
    finally:
        d.close()


@pytest.mark.parametrize("hook", ["tc", "xdp"])
def test_kernel_matches_vectors(dp, hook: str) -> None:  # type: ignore[no-untyped-def]
    """Same reason as the vectors (and the reference); at TC an admitted packet leaves
    decapsulated (Ethernet + the inner packet) by redirect to the bound veth.  Cases with
    a gso_size (a whole segment train in one skb) run at TC only (XDP sees no skb); a
    test run's skb has a GSO size but no GSO type, which the kernel will not shrink, so
    their delivery is left to the namespace tests (tests/test_transparent_netns.py)."""
    prog = dp.tc_fd if hook == "tc" else dp.xdp_fd
    runner = libbpf.TestRunner(prog, 4096, data_out=True)
    admitted = 0
    cases = [c for c in VECTORS["cases"] if hook == "tc" or not c.get("gso_size")]
    for case in cases:
        packet = bytes.fromhex(case["packet_hex"])
        frame = dpwire.udp_frame(packet, PORT)
        gso = case.get("gso_size", 0)
        ctx = libbpf.skb_ctx(case.get("count", 2) if gso else 0, gso) if hook == "tc" else None
        retval, _ = runner.run(frame, ctx=ctx)
        (ev,) = dp.events()
        want = Reason[case["reason"]]
        assert ev.reason == want, case["note"]
        assert (ev.verdict == Verdict.ADMIT) == (want == Reason.OK), case["note"]
        if want == Reason.OK:
            admitted += 1
            if hook == "tc" and not gso:
                assert retval == TC_ACT_REDIRECT, case["note"]
                inner_at = 44 if case["note"].startswith("train:") else 36
                assert runner.output() == frame[:14] + packet[inner_at:], case["note"]
        elif hook == "tc":
            assert retval == TC_ACT_SHOT, case["note"]
    reasons = [c["reason"] for c in cases]
    assert admitted == reasons.count("OK") >= 3
    counted = dp.counters()
    for reason in ("INNER_SOURCE_MISMATCH", "INNER_NOT_GRANTED", "BAD_MAC"):
        assert counted[(Verdict.DROP, Reason[reason])][0] == reasons.count(reason), reason


def test_kernel_without_binding_is_bad_mac(dp) -> None:  # type: ignore[no-untyped-def]
    """The flag alone grants nothing: an unbound session's MAC refuses the packet."""
    libbpf.map_delete(dp.obj.map_fd("warrant_tp_bindings"), ctypes.c_uint64(_sid_u64(SID)))
    frame = dpwire.udp_frame(bytes.fromhex(VECTORS["cases"][0]["packet_hex"]), PORT)
    retval, _ = libbpf.TestRunner(dp.tc_fd).run(frame, ctx=libbpf.skb_ctx())
    (ev,) = dp.events()
    assert (ev.verdict, ev.reason, retval) == (Verdict.DROP, Reason.BAD_MAC, TC_ACT_SHOT)


# ---- egress -------------------------------------------------------------------------
_SKB_IFINDEX = 40  # struct __sk_buff.ifindex


def _skb_ctx_on(ifindex: int) -> bytes:
    ctx = bytearray(libbpf.skb_ctx())
    struct.pack_into("<I", ctx, _SKB_IFINDEX, ifindex)
    return bytes(ctx)


def _ipv4(src: str, dst: str, body: bytes) -> bytes:
    return dpwire.ipv4_header(socket.inet_aton(src), socket.inet_aton(dst), len(body),
                              proto=6) + body  # fmt: skip


@pytest.fixture
def egress():  # type: ignore[no-untyped-def]
    _root_or_skip()
    from warrant.datapath.build import build

    libbpf.silence()
    try:
        obj = libbpf.BpfObject(str(build("transparent_egress")))
        obj.load()
    except Exception as exc:
        pytest.fail(f"as root the egress program must build and load: {exc}", pytrace=False)
    lo = socket.if_nametoindex("lo")
    libbpf.map_update(obj.map_fd("warrant_tp_workloads"), ctypes.c_uint32(lo),
                      WorkloadValue(_ip_u32("10.201.1.2"), 0))  # fmt: skip
    libbpf.map_update(obj.map_fd("warrant_tp_routes"),
                      RouteKey(24, _ip_u32("10.201.2.0")),
                      PeerValue(_ip_u32("192.168.250.2"), _ip_u32("192.168.250.1"), 4600, 4601,
                                lo))  # fmt: skip
    try:
        yield obj, lo
    finally:
        obj.close()


def _egress_counts(obj: Any) -> dict[int, int]:
    ncpu = libbpf.num_possible_cpus()
    out = {}
    for slot in (TP_EG_ENCAP, TP_EG_PUNT, TP_EG_SPOOFED):
        v = (ctypes.c_uint64 * ncpu)()
        libbpf.map_lookup(obj.map_fd("warrant_tp_egress_counters"), ctypes.c_uint32(slot), v)
        out[slot] = sum(v)
    return out


def _tcp(dport: int) -> bytes:
    return struct.pack(">HHIIBBHHH", 43210, dport, 7, 0, 0x50, 0x02, 64240, 0, 0) + bytes(20)


def test_egress_punts_then_encapsulates(egress) -> None:  # type: ignore[no-untyped-def]
    """No session: the packet goes to the punt ring whole.  With one: the frame leaves as
    outer IPv4/UDP + the DATA packet the reference builds (same MAC), seq from the
    session's counter; a spoofed source is dropped and counted."""
    obj, lo = egress
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    inner = _ipv4("10.201.1.2", "10.201.2.2", _tcp(8000))
    runner = libbpf.TestRunner(obj.program_fd("warrant_tp_egress"), 4096, data_out=True)
    ring = libbpf.RingBuffer(obj.map_fd("warrant_tp_punts"))
    try:
        retval, _ = runner.run(eth + inner, ctx=_skb_ctx_on(lo))
        assert retval == TC_ACT_SHOT
        (punt,) = ring.consume()
        ifindex, length = struct.unpack_from("<II", punt)
        assert (ifindex, punt[16 : 16 + length]) == (lo, inner)
    finally:
        ring.close()

    sess = EgressSession(_sid_u64(SID), (ctypes.c_uint8 * 16)(*K_MAC), KERNEL_SEQ_START,
                         2**63)  # fmt: skip
    libbpf.map_update(obj.map_fd("warrant_tp_egress_sessions"),
                      EgressKey(lo, _ip_u32("10.201.2.2"), 8000, 6, 0), sess)  # fmt: skip
    for i in range(2):
        retval, _ = runner.run(eth + inner, ctx=_skb_ctx_on(lo))
        assert retval == TC_ACT_REDIRECT
        out = runner.output()
        want = transparent_data(SID, KERNEL_SEQ_START + i, K_MAC, inner)
        assert out[14 + 28 :] == want
        ip, udp = out[14:34], out[34:42]
        assert ip[12:20] == socket.inet_aton("192.168.250.1") + socket.inet_aton("192.168.250.2")
        assert struct.unpack(">HHH", udp[:6]) == (4601, 4600, 8 + len(want))
        assert dpwire._checksum(ip) == 0  # a valid header sums to 0xffff

    # shorter than the 40 bytes the MAC covers: zero-padded on the wire, length kept
    short = _ipv4("10.201.1.2", "10.201.2.2", _tcp(8000)[:16])
    retval, _ = runner.run(eth + short, ctx=_skb_ctx_on(lo))
    assert retval == TC_ACT_REDIRECT
    assert runner.output()[14 + 28 :] == transparent_data(SID, KERNEL_SEQ_START + 2, K_MAC, short)
    assert runner.output()[14 + 28 + 36 :] == short + bytes(4)

    spoofed = _ipv4("10.201.3.2", "10.201.2.2", _tcp(8000))
    retval, _ = runner.run(eth + spoofed, ctx=_skb_ctx_on(lo))
    assert retval == TC_ACT_SHOT
    assert _egress_counts(obj) == {TP_EG_ENCAP: 3, TP_EG_PUNT: 1, TP_EG_SPOOFED: 1}


# ---- segment trains (SPEC 13.7) ---------------------------------------------------------
def _train_inner(tcp_seq: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", 43210, 8000, tcp_seq, 1, 0x50, flags, 501, 0, 0)
    return _ipv4("10.201.1.2", "10.201.2.2", tcp + payload)


def _cut(inner: bytes, mss: int) -> list[bytes]:
    """The segments Linux's TCP GSO makes of `inner` (IPv4 + 20-byte TCP header)."""
    seq, flags = struct.unpack_from(">I", inner, 24)[0], inner[33]
    payload = inner[40:]
    n = -(-len(payload) // mss)
    out = []
    for i in range(n):
        f = flags if i == n - 1 else flags & ~0x09
        out.append(_train_inner(seq + i * mss, f if i == 0 else f & ~0x80,
                                payload[i * mss : (i + 1) * mss]))  # fmt: skip
    return out


def test_kernel_train_replay_is_per_wire_packet(dp) -> None:  # type: ignore[no-untyped-def]
    """A whole train records every wire packet's number: the same train again, or any
    of its segments cut from it, is REPLAY; a train's segments admitted one by one make
    the whole train REPLAY; a segment placed at another index of its train fails the
    MAC (BAD_MAC).  The reference agrees on every packet (judge_transparent)."""
    tc = libbpf.TestRunner(dp.tc_fd)
    whole = _train_inner(9000, 0x18, bytes(range(250)))
    seq = 1 << 30

    def run(packet: bytes, gso: int) -> Reason:
        ctx = libbpf.skb_ctx(3, gso) if gso else libbpf.skb_ctx()
        tc.run(dpwire.udp_frame(packet, PORT), ctx=ctx)
        (ev,) = dp.events()
        return Reason(ev.reason)

    a = transparent_train(SID, seq, K_MAC, whole, gso_size=100)
    assert judge_transparent(a, K_MAC, _binding(), 100) == (Reason.OK, 0, 3)
    assert run(a, 100) == Reason.OK
    assert run(a, 100) == Reason.REPLAY
    head = a[:44]
    for piece in _cut(whole, 100):
        assert judge_transparent(head + piece, K_MAC, _binding())[0] == Reason.OK
        assert run(head + piece, 0) == Reason.REPLAY

    b = transparent_train(SID, seq + 3, K_MAC, whole, gso_size=100)
    pieces = _cut(whole, 100)
    moved = pieces[1][:24] + struct.pack(">I", 9000 + 200) + pieces[1][28:]  # index 1 -> 2
    assert run(b[:44] + moved, 0) == Reason.BAD_MAC
    for piece in pieces:
        assert run(b[:44] + piece, 0) == Reason.OK
    assert run(b, 100) == Reason.REPLAY


def test_egress_trains_mode_stamps_as_the_reference(egress) -> None:  # type: ignore[no-untyped-def]
    """Trains mode, one unsegmented packet: the egress program's DATA is the reference's
    transparent_train() byte for byte (train of one, TRAIN flag, descriptor, MAC over the
    template), so a partial checksum (offload) never enters the MAC."""
    from warrant.datapath.transparent import TP_TRAINS

    obj, lo = egress
    libbpf.map_update(obj.map_fd("warrant_tp_workloads"), ctypes.c_uint32(lo),
                      WorkloadValue(_ip_u32("10.201.1.2"), TP_TRAINS))  # fmt: skip
    sess = EgressSession(_sid_u64(SID), (ctypes.c_uint8 * 16)(*K_MAC), KERNEL_SEQ_START,
                         2**63)  # fmt: skip
    libbpf.map_update(obj.map_fd("warrant_tp_egress_sessions"),
                      EgressKey(lo, _ip_u32("10.201.2.2"), 8000, 6, 0), sess)  # fmt: skip
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    runner = libbpf.TestRunner(obj.program_fd("warrant_tp_egress"), 4096, data_out=True)
    inner = _train_inner(777, 0x18, b"hello, trains")
    retval, _ = runner.run(eth + inner, ctx=_skb_ctx_on(lo))
    assert retval == TC_ACT_REDIRECT
    out = runner.output()
    want = transparent_train(SID, KERNEL_SEQ_START, K_MAC, inner)
    assert out[14 + 28 :] == want
    assert struct.unpack(">H", out[14 + 2 : 14 + 4])[0] == 72 + len(inner)
    assert judge_transparent(want, K_MAC, _binding()) == (Reason.OK, 0, 1)


def test_complete_checksum_fills_offloaded_checksums() -> None:
    """A punted packet from a workload with checksum offload carries only the
    pseudo-header part: the agent completes it (the one's-complement sum over pseudo
    header and segment then checks out), a complete checksum is left as it was, and a
    fragment or a headers-only punt is not touched."""
    from warrant.datapath.transparent import complete_checksum

    def verifies(pkt: bytes) -> bool:
        seg = pkt[20:]
        data = pkt[12:20] + struct.pack(">BBH", 0, pkt[9], len(seg)) + seg
        data += b"\0" * (len(data) % 2)
        total = sum(struct.unpack(f">{len(data) // 2}H", data))
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        return total == 0xFFFF

    tcp = _train_inner(123456, 0x18, b"offloaded payload, odd length")
    udp_body = struct.pack(">HHHH", 5000, 8000, 8 + 5, 0xABCD) + b"hello"
    udp = dpwire.ipv4_header(socket.inet_aton("10.201.1.2"), socket.inet_aton("10.201.2.2"),
                             len(udp_body), proto=17) + udp_body  # fmt: skip
    for pkt in (tcp, udp):
        assert not verifies(pkt)
        done = complete_checksum(pkt)
        assert verifies(done) and done[:20] == pkt[:20] and len(done) == len(pkt)
        assert complete_checksum(done) == done
    assert complete_checksum(tcp[:40]) == tcp[:40]  # headers only: total length says more
    frag = tcp[:6] + b"\x20\x00" + tcp[8:]  # MF set
    assert complete_checksum(frag) == frag


def test_kernel_enforces_the_credential_rate_per_wire_packet(dp) -> None:  # type: ignore[no-untyped-def]
    """Step 10 in the kernel for a transparent session (SPEC 13.4): rate 4/s as the
    receiver's TokenBucket(4, 4), each wire packet one token, a whole train as many as
    its segments; refused packets are RATE_LIMITED (their numbers recorded: sent again
    they are REPLAY).  Rate 0 admits nothing."""
    from warrant.datapath.transparent import rate_interval_ns

    def bind(rate: float | None) -> None:
        b = _binding()
        libbpf.map_update(dp.obj.map_fd("warrant_tp_bindings"), ctypes.c_uint64(_sid_u64(SID)),
                          BindingValue(_ip_u32(b.inner_src), _ip_u32(b.inner_dst), b.proto, 0,
                                       b.port_lo, b.port_hi, 0, b.ifindex, 0,
                                       rate_interval_ns(rate), 0))  # fmt: skip

    tc = libbpf.TestRunner(dp.tc_fd)
    seq = [1 << 33]

    def send(segments: int = 1) -> Reason:
        payload = bytes(100 * segments)
        inner = _train_inner(1000, 0x18, payload)
        seq[0] += 256
        packet = transparent_train(SID, seq[0], K_MAC, inner, gso_size=100 if segments > 1 else 0)
        ctx = libbpf.skb_ctx(segments, 100) if segments > 1 else libbpf.skb_ctx()
        tc.run(dpwire.udp_frame(packet, PORT), ctx=ctx)
        (ev,) = dp.events()
        return Reason(ev.reason)

    bind(4)
    assert [send() for _ in range(5)] == [Reason.OK] * 4 + [Reason.RATE_LIMITED]
    dp.set_time(T0 + 0.6)  # 2.4 tokens
    assert [send(3), send(), send(), send()] == [
        Reason.RATE_LIMITED, Reason.OK, Reason.OK, Reason.RATE_LIMITED,
    ]  # fmt: skip
    dp.set_time(T0 + 2.0)  # full again: 4
    assert [send(3), send(), send()] == [Reason.OK, Reason.OK, Reason.RATE_LIMITED]
    bind(0)
    dp.set_time(T0 + 5.0)
    assert send() == Reason.RATE_LIMITED
    bind(None)
    assert [send() for _ in range(10)] == [Reason.OK] * 10
    assert rate_interval_ns(None) == 0 and rate_interval_ns(0) > 10**9
    assert rate_interval_ns(4) == 250_000_000
