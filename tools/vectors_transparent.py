"""Generate vectors/transparent.json: transparent-mode DATA (SPEC.md 13.1, 13.4).

Built here from the SPEC with struct and libsodium's SipHash-2-4-128, not with
warrant.datapath.transparent; every expected reason is written by hand below.  Each case
is a Warrant DATA packet (UDP payload) for one session (`k_mac`, `session_id`) bound as
transparent (`binding`), with the reason steps 5 and 5a give it.

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
    out = []
    for note, inner_or_packet, reason in cases:
        packet = inner_or_packet if inner_or_packet[:2] == b"\x01\x02" else data(inner_or_packet)
        out.append({"note": note, "packet_hex": packet.hex(), "reason": reason})
    return {
        "description": "Transparent DATA (SPEC 13.1, 13.4): steps 5 and 5a for a session "
        "bound as transparent. Packets are UDP payloads; MAC = SipHash-2-4-128(k_mac, "
        "bytes [0,20) with hop_count 0 || inner[0,40)).",
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
