"""Segment trains (SPEC 13.7): the kernel (warrant_tc, BPF_PROG_TEST_RUN) and the Python
reference (judge_transparent) judge the same mutated trains alike, reason for reason.

Each case is a random TCP train (payload, segment size, flags, TCP sequence number),
sent whole in a GSO frame or cut into one of its segments, then mutated in one field a
placement or inner check reads (TCP sequence number, flags, lengths, addresses, ports,
descriptor fields, the header's flags, the GSO size) and, for most cases, stamped again with the session's
key, as a buggy or compromised sender would: so the placement and inner checks decide,
not only the MAC.  Every case has its own sequence numbers and a clock tick of its own
(the session's bad-MAC bucket refills), so neither replay nor that bucket decides.
Root only (loads eBPF); as root a program that does not build or load fails."""

from __future__ import annotations

import ctypes
import dataclasses
import os
import random
import socket
import struct

import pytest

from warrant.core.constants import Reason, Verdict
from warrant.datapath import libbpf
from warrant.datapath import wire as dpwire
from warrant.datapath.transparent import (
    Binding,
    BindingValue,
    _ip_u32,
    _sid_u64,
    judge_transparent,
    train_mac,
    transparent_train,
)

PORT = 4433
T0 = 1_800_000_000.0
K_MAC = bytes(range(40, 56))
SID = bytes.fromhex("7472616e64696666")
BINDING = Binding("10.201.1.2", "10.201.2.2", 6, 8000, 8000, 1)
CASES = 600


def _inner(rng: random.Random, payload: int, flags: int) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", rng.randrange(1024, 65536), 8000, rng.getrandbits(32),
                      rng.getrandbits(32), 0x50, flags, rng.getrandbits(16), 0, 0)  # fmt: skip
    return dpwire.ipv4_header(socket.inet_aton(BINDING.inner_src),
                              socket.inet_aton(BINDING.inner_dst), 20 + payload,
                              proto=6) + tcp + rng.randbytes(payload)  # fmt: skip


def _cut(inner: bytes, mss: int, i: int) -> bytes:
    """Segment i of `inner` as Linux's TCP GSO cuts it."""
    seq, flags = struct.unpack_from(">I", inner, 24)[0], inner[33]
    body = inner[40:]
    n = -(-len(body) // mss)
    f = flags if i == n - 1 else flags & ~0x09
    f = f if i == 0 else f & ~0x80
    part = body[i * mss : (i + 1) * mss]
    tcp = bytearray(inner[20:40])
    struct.pack_into(">I", tcp, 4, (seq + i * mss) & 0xFFFFFFFF)
    tcp[13] = f
    ip = bytearray(inner[:20])
    struct.pack_into(">H", ip, 2, 40 + len(part))
    return bytes(ip) + bytes(tcp) + part


def _mutate(rng: random.Random, packet: bytearray, gso: int) -> int:
    """One field changed in place; returns the GSO size to judge with."""
    inner = 44
    what = rng.randrange(12)
    if what == 0:  # TCP sequence number
        struct.pack_into(">I", packet, inner + 24,
                         (struct.unpack_from(">I", packet, inner + 24)[0]
                          + rng.choice([-1, 1, 50, 100, 1388, -1388, 1 << 31])) & 0xFFFFFFFF)  # fmt: skip
    elif what == 1:  # TCP flags
        packet[inner + 33] ^= rng.choice([0x01, 0x02, 0x04, 0x08, 0x80, 0x40])
    elif what == 2:  # IPv4 total length
        struct.pack_into(">H", packet, inner + 2,
                         max(0, struct.unpack_from(">H", packet, inner + 2)[0]
                             + rng.choice([-1, 1, -40])))  # fmt: skip
    elif what == 3:  # truncate the payload (lengths kept consistent)
        cut = rng.randrange(1, 60)
        if len(packet) - cut > inner + 40:
            del packet[-cut:]
            struct.pack_into(">H", packet, inner + 2, len(packet) - inner)
    elif what == 4:  # descriptor: seq0, mss, segs, flags
        at = rng.choice([36, 40, 41, 42, 43])
        packet[at] ^= 1 << rng.randrange(8)
    elif what == 5:  # the GSO size
        return rng.choice([0, gso + 1, max(1, gso - 1), 536]) if gso else rng.choice([0, 100])
    elif what == 6:  # inner source / destination / port / protocol
        at = rng.choice([inner + 12, inner + 16, inner + 22, inner + 9])
        packet[at] ^= 1 << rng.randrange(8)
    elif what == 7:  # data offset
        packet[inner + 32] = rng.choice([0x40, 0x60, 0xF0])
    elif what == 8:  # checksums, IPv4 id: not covered, must not matter
        packet[inner + rng.choice([4, 5, 10, 11, 36, 37])] ^= 0xFF
    elif what == 10:  # the TRAIN flag off: ordinary transparent DATA
        packet[3] &= ~0x08
    elif what == 11:  # TRAIN without INNER_IP
        packet[3] = 0x08
    # what == 9: unchanged
    return gso


@pytest.fixture
def dp():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root: loads eBPF programs (CI runs as root)")
    from warrant.datapath.lab import Lab
    from warrant.datapath.loader import Datapath

    try:
        d = Datapath.open(pin_root=None)
    except Exception as exc:
        pytest.fail(f"as root the eBPF datapath must build and load: {exc}", pytrace=False)
    d.set_ports([PORT])
    d.set_config(admit_sample=1, pass_events=True, budget=False)
    d.set_time(T0)
    s = dataclasses.replace(Lab(T0, ports=(PORT,)).open().session, session_id=SID, mac_key=K_MAC)
    d.install_session(s)
    libbpf.map_update(d.obj.map_fd("warrant_tp_bindings"), ctypes.c_uint64(_sid_u64(SID)),
                      BindingValue(_ip_u32(BINDING.inner_src), _ip_u32(BINDING.inner_dst), 6, 0,
                                   8000, 8000, 0, 1))  # fmt: skip
    try:
        yield d
    finally:
        d.close()


def test_kernel_and_reference_agree_on_mutated_trains(dp) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(20261202)
    tc = libbpf.TestRunner(dp.tc_fd, 4096)
    seen: dict[Reason, int] = {}
    for n in range(CASES):
        mss = rng.choice([100, 536, 1388])
        payload = rng.randrange(1, min(4 * mss, 2800))  # a test-run frame fits a page
        inner = _inner(rng, payload, rng.choice([0x10, 0x18, 0x19, 0x98, 0x11]))
        seq = (1 << 32) + 300 * n  # own numbers: replay never decides here
        whole = transparent_train(SID, seq, K_MAC, inner, gso_size=mss)
        segs = whole[42]
        if segs > 1 and rng.random() < 0.6:
            packet = bytearray(whole[:44] + _cut(inner, mss, rng.randrange(segs)))
            gso = 0
        else:
            packet, gso = bytearray(whole), (mss if segs > 1 else 0)
        gso = _mutate(rng, packet, gso)
        if rng.random() < 0.75:  # stamped again: placement and inner checks decide
            packet[20:36] = train_mac(K_MAC, bytes(packet[:20]), bytes(packet[36:44]),
                                      bytes(packet[44:]))  # fmt: skip
        want, _, _ = judge_transparent(bytes(packet), K_MAC, BINDING, gso)
        dp.set_time(T0 + n * 0.5)  # a new clock tick: the bad-MAC bucket refills (not modelled)
        ctx = libbpf.skb_ctx(max(segs, 2), gso) if gso else libbpf.skb_ctx()
        tc.run(dpwire.udp_frame(bytes(packet), PORT), ctx=ctx)
        (ev,) = dp.events()
        assert (ev.verdict, Reason(ev.reason)) == (
            Verdict.ADMIT if want == Reason.OK else Verdict.DROP,
            want,
        ), f"case {n}: mss {mss} gso {gso} packet {bytes(packet[:88]).hex()}"
        seen[want] = seen.get(want, 0) + 1
    # the mutations reach every outcome the train checks have
    for reason in (Reason.OK, Reason.BAD_MAC, Reason.INNER_NOT_GRANTED,
                   Reason.INNER_SOURCE_MISMATCH, Reason.MERGED_FRAME, Reason.MALFORMED):  # fmt: skip
        assert seen.get(reason, 0) >= 5, seen
