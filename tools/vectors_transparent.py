"""Generate vectors/transparent.json: transparent-mode DATA (SPEC.md 13.1, 13.4, 13.7).

Built here from the SPEC with struct and libsodium's SipHash-2-4-128, not with
warrant.datapath.transparent; every expected reason is written by hand below.  Each case
is a Warrant DATA packet (UDP payload) for one session (`k_mac`, `session_id`) bound as
transparent (`binding`), with the reason steps 5 and 5a give it.  Segment-train cases
(13.7) also give `gso_size` (the segment size of a TC skb that holds the whole train; 0:
one wire packet) and, when admitted, the wire packets of the train the packet is
(`first`, `count`: sequence numbers seq+first .. seq+first+count-1 are recorded).

Checked by tests/test_transparent.py: the Python reference (no privileges) and the eBPF
program (root, BPF_PROG_TEST_RUN, frames around these packets).

    python3 tools/vectors_transparent.py            # write vectors/transparent.json
    python3 tools/vectors_transparent.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import struct
import sys
from typing import Any

import nacl.bindings

import vectorlib

OUTPUT = vectorlib.ROOT / "vectors" / "transparent.json"
K_MAC = bytes(range(16, 32))
SID = bytes.fromhex("5452414e53504152")
FLAG_INNER_IP = 0x04
FLAG_TRAIN = 0x08
SRC, DST, OTHER = bytes([10, 201, 1, 2]), bytes([10, 201, 2, 2]), bytes([10, 201, 3, 2])
BINDING = {"inner_src": "10.201.1.2", "inner_dst": "10.201.2.2", "proto": 6,
           "port_lo": 8000, "port_hi": 8000}  # fmt: skip


def checksum(data: bytes) -> int:
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: bytes, dst: bytes, proto: int, body: bytes, *, frag: int = 0x4000,
         options: bytes = b"", tot: int | None = None) -> bytes:  # fmt: skip
    ihl = 5 + len(options) // 4
    length = 4 * ihl + len(body) if tot is None else tot
    h = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, length, 1, frag, 64, proto, 0, src, dst)
    h += options
    h = h[:10] + struct.pack(">H", checksum(h)) + h[12:]
    return h + body


def tcp(dport: int, payload: bytes = b"") -> bytes:
    # ports, seq, ack, data offset 5, SYN, window, checksum (not verified here), urgent
    return struct.pack(">HHIIBBHHH", 43210, dport, 1000, 0, 0x50, 0x02, 64240, 0, 0) + payload


def udp(dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", 43210, dport, 8 + len(payload), 0) + payload


_SEQ = [1048576]  # each packet its own number: the kernel records the admitted ones


def data(inner: bytes, *, hops: int = 0, mac_inner: bytes | None = None,
         flags: int = FLAG_INNER_IP) -> bytes:  # fmt: skip
    seq = _SEQ[0]
    _SEQ[0] += 1
    head = struct.pack(">BBBB8sQ", 1, 2, hops, flags, SID, seq)
    covered = inner if mac_inner is None else mac_inner
    mac_in = head[:2] + b"\0" + head[3:20] + covered[:40]
    mac = nacl.bindings.crypto_shorthash_siphashx24(mac_in, K_MAC)
    return head + mac + inner


def tcp_seg(seq: int, flags: int, payload: bytes, dport: int = 8000) -> bytes:
    return struct.pack(">HHIIBBHHH", 43210, dport, seq, 77, 0x50, flags, 501, 0xBEEF, 0) + payload


def train_packet(inner: bytes, seq0: int, mss: int, segs: int, tflags: int, *,
                 mac_inner: bytes | None = None, seq: int | None = None) -> bytes:  # fmt: skip
    """A train DATA packet: descriptor, MAC over header ‖ descriptor ‖ template (13.7)."""
    if seq is None:
        seq = _SEQ[0]
        _SEQ[0] += max(segs, 1)
    head = struct.pack(">BBBB8sQ", 1, 2, 0, FLAG_INNER_IP | FLAG_TRAIN, SID, seq)
    desc = struct.pack(">IHBB", seq0, mss, segs, tflags)
    t = bytearray((inner if mac_inner is None else mac_inner)[:40])
    t[2:6], t[10:12] = bytes(4), bytes(2)  # IPv4 total length, identification, checksum
    if t[9] == 6:
        t[24:28], t[33], t[36:38] = struct.pack(">I", seq0), tflags, bytes(2)
    elif t[9] == 17:
        t[24:28] = bytes(4)
    mac_in = head[:2] + b"\0" + head[3:20] + desc + bytes(t)
    mac = nacl.bindings.crypto_shorthash_siphashx24(mac_in, K_MAC)
    return head + mac + desc + inner


def train_cases() -> list[tuple[str, bytes, str, int, int, int]]:
    """(note, packet, reason, gso_size, first, count).  One train: segment size 100, a
    250-byte TCP payload (segments of 100, 100, 50), flags ACK|PSH, seq0 5000."""
    ack, psh, fin, cwr = 0x10, 0x08, 0x01, 0x80
    body = bytes(range(250))

    def seg(i: int, flags: int, size: int | None = None, dport: int = 8000,
            src: bytes = SRC, seq: int | None = None) -> bytes:  # fmt: skip
        part = body[100 * i : 100 * i + 100] if size is None else bytes(size)
        tcp_seq = 5000 + 100 * i if seq is None else seq
        return ipv4(src, DST, 6, tcp_seg(tcp_seq, flags, part, dport))

    whole = ipv4(SRC, DST, 6, tcp_seg(5000, ack | psh, body))
    # fmt: off
    cases = [
        ("train: the whole 3-segment train in one skb (gso_size = its segment size)",
         train_packet(whole, 5000, 100, 3, ack | psh), "OK", 100, 0, 3),
    ]
    s1 = _SEQ[0]  # a second train of the same shape, sent cut into its segments
    _SEQ[0] += 3
    cases += [
        ("train: segment 0 (PSH cleared: not the last)",
         train_packet(seg(0, ack), 5000, 100, 3, ack | psh, seq=s1), "OK", 0, 0, 1),
        ("train: segment 2, the last (50 bytes, PSH kept)",
         train_packet(seg(2, ack | psh, 50), 5000, 100, 3, ack | psh, seq=s1), "OK", 0, 2, 1),
        ("train: segment 1, its checksum completed by a device after the MAC (not covered)",
         train_packet(seg(1, ack)[:36] + b"\x12\x34" + seg(1, ack)[38:], 5000, 100, 3,
                      ack | psh, seq=s1),
         "OK", 0, 1, 1),
        ("train: segment 1 with PSH set (only the last segment keeps it)",
         train_packet(seg(1, ack | psh), 5000, 100, 3, ack | psh), "BAD_MAC", 0, 0, 0),
        ("train: the last segment with FIN added after the MAC",
         train_packet(seg(2, ack | psh | fin, 50), 5000, 100, 3, ack | psh), "BAD_MAC", 0, 0, 0),
        ("train: a TCP sequence number between two segments",
         train_packet(seg(1, ack, seq=5050), 5000, 100, 3, ack | psh), "BAD_MAC", 0, 0, 0),
        ("train: a segment beyond the train (index 3 of 3)",
         train_packet(seg(3, ack | psh, 50), 5000, 100, 3, ack | psh), "BAD_MAC", 0, 0, 0),
        ("train: a middle segment shorter than the segment size",
         train_packet(seg(1, ack, 99), 5000, 100, 3, ack | psh), "BAD_MAC", 0, 0, 0),
        ("train: destination port re-written after the MAC",
         train_packet(seg(0, ack, dport=8001), 5000, 100, 3, ack | psh, mac_inner=seg(0, ack)),
         "BAD_MAC", 0, 0, 0),
        ("train: descriptor segment size changed after the MAC",
         (lambda p: p[:40] + struct.pack(">H", 50) + p[42:])(
             train_packet(seg(0, ack), 5000, 100, 3, ack | psh)),
         "BAD_MAC", 0, 0, 0),
        ("train: the whole train, gso_size not the descriptor's segment size",
         train_packet(whole, 5000, 100, 3, ack | psh), "BAD_MAC", 50, 0, 0),
        ("train: CWR cleared on a later segment (as segmentation does)",
         train_packet(seg(2, ack | psh, 50), 5000, 100, 3, ack | psh | cwr), "OK", 0, 2, 1),
        ("train: a train of one unsegmented packet (segment size 0)",
         train_packet(seg(0, ack | psh), 5000, 0, 1, ack | psh), "OK", 0, 0, 1),
        ("train: zero segments", train_packet(seg(0, ack), 5000, 0, 0, ack), "BAD_MAC", 0, 0, 0),
        ("train: another workload's source, MACed by the session's key",
         train_packet(seg(0, ack, src=OTHER), 5000, 100, 3, ack | psh),
         "INNER_SOURCE_MISMATCH", 0, 0, 0),
        ("train: UDP as a train of one (length and checksum not covered)",
         train_packet(ipv4(SRC, DST, 17, udp(8000, bytes(32))), 0, 0, 1, 0),
         "INNER_NOT_GRANTED", 0, 0, 0),
        ("ordinary transparent DATA in a merged skb: several datagrams, one judged",
         data(ipv4(SRC, DST, 6, tcp(8000, bytes(20)))), "MERGED_FRAME", 100, 0, 0),
        ("the train flag without INNER_IP",
         (lambda p: p[:3] + bytes([FLAG_TRAIN]) + p[4:])(
             train_packet(seg(0, ack), 5000, 100, 3, ack | psh)),
         "MALFORMED", 0, 0, 0),
    ]
    # fmt: on
    return cases


def build() -> dict[str, Any]:
    syn = ipv4(SRC, DST, 6, tcp(8000, bytes(20)))
    cases: list[tuple[str, bytes, str]] = [
        ("TCP to the bound destination and port", syn, "OK"),
        (
            "bytes beyond the first 40 of the inner packet changed after the MAC: not covered "
            "(SPEC 13.1, payload integrity is the encryption layer's)",
            data(syn[:-1] + b"\x01", mac_inner=syn),
            "OK",
        ),
        (
            "inner source re-written after the MAC",
            data(ipv4(OTHER, DST, 6, tcp(8000, bytes(20))), mac_inner=syn),
            "BAD_MAC",
        ),
        (
            "inner destination port re-written after the MAC",
            data(ipv4(SRC, DST, 6, tcp(8001, bytes(20))), mac_inner=syn),
            "BAD_MAC",
        ),
        (
            "another workload's source, MACed by the session's key",
            ipv4(OTHER, DST, 6, tcp(8000, bytes(20))),
            "INNER_SOURCE_MISMATCH",
        ),
        (
            "destination not the bound workload",
            ipv4(SRC, OTHER, 6, tcp(8000, bytes(20))),
            "INNER_NOT_GRANTED",
        ),
        (
            "port outside the bound range",
            ipv4(SRC, DST, 6, tcp(22, bytes(20))),
            "INNER_NOT_GRANTED",
        ),
        (
            "protocol not the bound one",
            ipv4(SRC, DST, 17, udp(8000, bytes(32))),
            "INNER_NOT_GRANTED",
        ),
        (
            "inner IPv4 options",
            ipv4(SRC, DST, 6, tcp(8000, bytes(20)), options=bytes(4)),
            "INNER_NOT_GRANTED",
        ),
        (
            "inner IPv4 total length not the inner packet's length",
            ipv4(SRC, DST, 6, tcp(8000, bytes(20)), tot=61),
            "INNER_NOT_GRANTED",
        ),
        (
            "inner first fragment (MF)",
            ipv4(SRC, DST, 6, tcp(8000, bytes(20)), frag=0x2000),
            "INNER_NOT_GRANTED",
        ),
        (
            "a 36-byte inner packet carried unpadded (it must be zero-padded to 40)",
            ipv4(SRC, DST, 6, tcp(8000)[:16]),
            "INNER_NOT_GRANTED",
        ),
        (
            "a 36-byte inner packet zero-padded to 40 (total length 36 kept; the receiving "
            "stack trims the padding)",
            ipv4(SRC, DST, 6, tcp(8000)[:16]) + bytes(4),
            "OK",
        ),
        (
            "a 22-byte inner packet padded to 40: below the 24 bytes that hold the ports",
            ipv4(SRC, DST, 6, tcp(8000)[:2]) + bytes(18),
            "INNER_NOT_GRANTED",
        ),
        (
            "a 36-byte inner packet padded to 44 bytes (only up to 40 is padding)",
            ipv4(SRC, DST, 6, tcp(8000)[:16]) + bytes(8),
            "INNER_NOT_GRANTED",
        ),
        ("the flag with a hop count", data(syn, hops=1) + bytes(12), "MALFORMED"),
    ]
    out: list[dict[str, Any]] = []
    for note, inner_or_packet, reason in cases:
        packet = inner_or_packet if inner_or_packet[:2] == b"\x01\x02" else data(inner_or_packet)
        out.append({"note": note, "packet_hex": packet.hex(), "reason": reason})
    for note, packet, reason, gso_size, first, count in train_cases():
        case: dict[str, Any] = {"note": note, "packet_hex": packet.hex(), "reason": reason,
                                "gso_size": gso_size}  # fmt: skip
        if reason == "OK":
            case |= {"first": first, "count": count}
        out.append(case)
    return {
        "description": "Transparent DATA (SPEC 13.1, 13.4): steps 5 and 5a for a session "
        "bound as transparent. Packets are UDP payloads; MAC = SipHash-2-4-128(k_mac, "
        "bytes [0,20) with hop_count 0 || inner[0,40)); for a segment train (flag 0x08, "
        "SPEC 13.7) SipHash-2-4-128(k_mac, bytes [0,20) with hop_count 0 || descriptor || "
        "template of inner[0,40)).",
        "k_mac_hex": K_MAC.hex(),
        "session_id_hex": SID.hex(),
        "binding": BINDING,
        "cases": out,
    }


def main(argv: list[str]) -> int:
    text = vectorlib.render(build())
    return vectorlib.write_or_check(argv, OUTPUT, text, __file__,
                                    lambda d: f"{len(d['cases'])} cases")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
