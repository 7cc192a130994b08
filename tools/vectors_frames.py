"""Generate vectors/frames.json: the datapath's frame policy (SPEC.md 3, "What is Warrant
traffic"), IPv4 and IPv6, as whole Ethernet frames with the verdict each must get.

The frames are built here with struct, from the SPEC, not with warrant.datapath.wire;
every expected verdict and reason is written by hand below.  No session is installed
and the Warrant ports are {4433}: a DATA packet that reaches step 2 is UNKNOWN_SESSION
and is answered in place with a REJECT, whose exact bytes are given (`reply_hex`,
built here too: SPEC 6.1 "REJECT for lost state").  A case's `skb` gives the GSO
segment count and size a TC program sees (a merged skb); cases without it are
judged the same at XDP and TC.

Checked by tests/test_vectors_frames.py (the Python reference, no privileges) and
tests/test_datapath_vectors.py (the eBPF programs, root).

    python3 tools/vectors_frames.py            # write vectors/frames.json
    python3 tools/vectors_frames.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import struct
import sys
from typing import Any

import vectorlib

OUTPUT = vectorlib.ROOT / "vectors" / "frames.json"
PORT, OTHER = 4433, 5353
SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SRC6 = bytes.fromhex("fd00000000000000000000000000000a")
DST6 = bytes.fromhex("fd00000000000000000000000000000b")
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
SID = bytes.fromhex("57415252414e5431")
REJECT_TTL = 64
UNKNOWN_SESSION = 15


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def data_packet(body: int = 16) -> bytes:
    """DATA, no hops: version 1, kind 2, session SID, seq 7, a MAC no key makes, body."""
    return bytes([1, 2, 0, 0]) + SID + struct.pack(">Q", 7) + bytes(range(16)) + bytes(body)


def init_packet() -> bytes:
    return bytes([1, 1, 0, 0]) + bytes(96)  # the kernel passes every INIT up


def udp(src: bytes, dst: bytes, payload: bytes, dport: int = PORT, length: int = 0) -> bytes:
    n = 8 + len(payload)
    if len(src) == 16:
        pseudo = src + dst + struct.pack(">IxxxB", n, 17)
    else:
        pseudo = src + dst + struct.pack(">xBH", 17, n)
    csum = checksum(pseudo + struct.pack(">HHHH", 40000, dport, n, 0) + payload) or 0xFFFF
    return struct.pack(">HHHH", 40000, dport, length or n, csum) + payload


def ipv4(payload: bytes, frag: int = 0, options: bytes = b"", proto: int = 17,
         tot: int = 0) -> bytes:  # fmt: skip
    ihl = 5 + len(options) // 4
    head = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, tot or ihl * 4 + len(payload), 0x1234,
                       frag, 64, proto, 0, SRC4, DST4) + options  # fmt: skip
    return head[:10] + struct.pack(">H", checksum(head)) + head[12:] + payload


def ipv6(payload: bytes, nexthdr: int = 17, plen: int = -1) -> bytes:
    n = len(payload) if plen < 0 else plen
    return struct.pack(">IHBB", 0x60012345, n, nexthdr, 64) + SRC6 + DST6 + payload


def ext(nh: int, length: int = 0) -> bytes:
    """Hop-by-Hop, Routing or Destination Options: (length + 1) * 8 bytes."""
    return bytes([nh, length]) + bytes(6 + 8 * length)


def fragment(nh: int, offset: int, more: bool) -> bytes:
    return struct.pack(">BBHI", nh, 0, offset << 3 | int(more), 0xABCD)


def ether(payload: bytes, proto: int, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    stack = b"".join(struct.pack(">HH", tpid, tci) for tpid, tci in tags)
    return MAC_B + MAC_A + stack + struct.pack(">H", proto) + payload


def reject_reply(frame: bytes, l3: int, v6: bool) -> bytes:
    """The REJECT the kernel makes of `frame` (a DATA from 40000 to PORT, session SID)."""
    body = bytes([1, 3, UNKNOWN_SESSION, 0]) + SID + bytes(4)
    head = MAC_A + MAC_B + frame[12:l3]
    if v6:
        pseudo = DST6 + SRC6 + struct.pack(">IxxxB", 24, 17)
        csum = checksum(pseudo + struct.pack(">HHHH", PORT, 40000, 24, 0) + body) or 0xFFFF
        ip = frame[l3 : l3 + 4] + struct.pack(">HBB", 24, 17, REJECT_TTL) + DST6 + SRC6
        return head + ip + struct.pack(">HHHH", PORT, 40000, 24, csum) + body
    ip = bytearray(frame[l3 : l3 + 20])
    struct.pack_into(">H", ip, 2, 44)
    ip[8], ip[10:12], ip[12:16], ip[16:20] = REJECT_TTL, b"\0\0", DST4, SRC4
    struct.pack_into(">H", ip, 10, checksum(bytes(ip)))
    return head + bytes(ip) + struct.pack(">HHHH", PORT, 40000, 24, 0) + body


V4, V6, Q, AD = 0x0800, 0x86DD, 0x8100, 0x88A8
QINQ = ((AD, 100), (Q, 7))


def cases() -> list[dict[str, Any]]:
    d4 = udp(SRC4, DST4, data_packet())
    d6 = udp(SRC6, DST6, data_packet())
    out: list[dict[str, Any]] = []

    def case(name: str, frame: bytes, verdict: str, reason: str, note: str,
             reply: tuple[int, bool] | None = None, skb: tuple[int, int] | None = None) -> None:  # fmt: skip
        c: dict[str, Any] = {"name": name, "note": note, "frame_hex": frame.hex(),
                             "verdict": verdict, "reason": reason}  # fmt: skip
        if reply is not None:
            c["reply_hex"] = reject_reply(frame, *reply).hex()
        if skb is not None:
            c["skb"] = {"gso_segs": skb[0], "gso_size": skb[1]}
        out.append(c)

    drop, passed = "DROP", "PASS"
    # IPv4
    case("ipv4_data", ether(ipv4(d4), V4), drop, "UNKNOWN_SESSION", "judged; REJECT", (14, False))
    case("ipv4_init", ether(ipv4(udp(SRC4, DST4, init_packet())), V4), passed, "OK",
         "INIT goes to user space")  # fmt: skip
    case("ipv4_other_port", ether(ipv4(udp(SRC4, DST4, data_packet(), OTHER)), V4), passed,
         "NOT_WARRANT", "not a Warrant port")  # fmt: skip
    case("ipv4_padded", ether(ipv4(d4), V4) + bytes(30), drop, "UNKNOWN_SESSION",
         "Ethernet padding: lengths come from the headers", (14, False))  # fmt: skip
    case("ipv4_first_fragment", ether(ipv4(d4, frag=0x2000), V4), drop, "FRAGMENTED",
         "MF set, offset 0")  # fmt: skip
    case("ipv4_later_fragment", ether(ipv4(d4, frag=0x0003), V4), passed, "NOT_WARRANT",
         "offset != 0: no UDP header; its first fragment is dropped")  # fmt: skip
    case("ipv4_options", ether(ipv4(d4, options=b"\x01\x01\x01\x00"), V4), drop, "MALFORMED",
         "IHL 6")  # fmt: skip
    case("ipv4_udp_length_short", ether(ipv4(udp(SRC4, DST4, data_packet(), length=56)), V4),
         drop, "MALFORMED", "UDP length below the IP payload: bytes no check reads")  # fmt: skip
    case("ipv4_total_length_long", ether(ipv4(d4, tot=20 + len(d4) + 1), V4), drop,
         "MALFORMED", "IP total length beyond the frame")  # fmt: skip
    case("vlan_ipv4_data", ether(ipv4(d4), V4, ((Q, 7),)), drop, "UNKNOWN_SESSION",
         "one 802.1Q tag", (18, False))  # fmt: skip
    case("qinq_ipv4_data", ether(ipv4(d4), V4, QINQ), drop, "UNKNOWN_SESSION",
         "802.1ad outer, 802.1Q inner", (22, False))  # fmt: skip
    case("double_8021q_ipv4_data", ether(ipv4(d4), V4, ((Q, 5), (Q, 7))), drop,
         "UNKNOWN_SESSION", "two 802.1Q tags", (22, False))  # fmt: skip
    case("three_tags", ether(ipv4(d4), V4, (*QINQ, (Q, 9))), drop, "UNPARSED_FRAME",
         "a third tag: the datapath does not look behind it")  # fmt: skip
    case("three_tags_other_port",
         ether(ipv4(udp(SRC4, DST4, data_packet(), OTHER)), V4, (*QINQ, (Q, 9))), drop,
         "UNPARSED_FRAME", "the port behind a third tag is not read: dropped all the same")  # fmt: skip
    # IPv6
    case("ipv6_data", ether(ipv6(d6), V6), drop, "UNKNOWN_SESSION", "judged; REJECT with "
         "a UDP checksum", (14, True))  # fmt: skip
    case("ipv6_init", ether(ipv6(udp(SRC6, DST6, init_packet())), V6), passed, "OK",
         "INIT goes to user space")  # fmt: skip
    case("ipv6_other_port", ether(ipv6(udp(SRC6, DST6, data_packet(), OTHER)), V6), passed,
         "NOT_WARRANT", "not a Warrant port")  # fmt: skip
    case("ipv6_padded", ether(ipv6(d6), V6) + bytes(7), drop, "UNKNOWN_SESSION",
         "trailing bytes after the IPv6 payload length", (14, True))  # fmt: skip
    case("qinq_ipv6_data", ether(ipv6(d6), V6, QINQ), drop, "UNKNOWN_SESSION",
         "802.1ad + 802.1Q, IPv6", (22, True))  # fmt: skip
    case("ipv6_hop_by_hop", ether(ipv6(ext(17) + d6, nexthdr=0), V6), drop, "MALFORMED",
         "extension header before UDP to a Warrant port")  # fmt: skip
    case("ipv6_routing_dest", ether(ipv6(ext(60) + ext(17, 1) + d6, nexthdr=43), V6), drop,
         "MALFORMED", "Routing then Destination Options")  # fmt: skip
    case("ipv6_dest_other_port",
         ether(ipv6(ext(17) + udp(SRC6, DST6, data_packet(), OTHER), nexthdr=60), V6),
         passed, "NOT_WARRANT", "walked to UDP: not a Warrant port")  # fmt: skip
    case("ipv6_first_fragment", ether(ipv6(fragment(17, 0, True) + d6, nexthdr=44), V6),
         drop, "FRAGMENTED", "Fragment header, offset 0, M set")  # fmt: skip
    case("ipv6_atomic_fragment", ether(ipv6(fragment(17, 0, False) + d6, nexthdr=44), V6),
         drop, "FRAGMENTED", "Fragment header, offset 0, M clear (RFC 6946)")  # fmt: skip
    case("ipv6_later_fragment", ether(ipv6(fragment(17, 3, False) + d6, nexthdr=44), V6),
         passed, "NOT_WARRANT", "offset != 0: no UDP header")  # fmt: skip
    case("ipv6_hbh_then_fragment",
         ether(ipv6(ext(44) + fragment(17, 0, True) + d6, nexthdr=0), V6), drop,
         "FRAGMENTED", "Hop-by-Hop, then a first fragment")  # fmt: skip
    case("ipv6_five_headers",
         ether(ipv6(ext(60) + ext(60) + ext(60) + ext(60) + ext(17) + d6, nexthdr=60), V6),
         drop, "UNPARSED_FRAME", "a chain longer than DP_MAX_IPV6_EXT (4)")  # fmt: skip
    case("ipv6_four_headers_other_port",
         ether(ipv6(ext(60) + ext(60) + ext(60) + ext(17)
                    + udp(SRC6, DST6, data_packet(), OTHER), nexthdr=60), V6),
         passed, "NOT_WARRANT", "four headers walked to UDP")  # fmt: skip
    case("ipv6_beyond_horizon", ether(ipv6(ext(17, 25) + d6, nexthdr=60), V6), drop,
         "UNPARSED_FRAME", "UDP header ends past DP_PARSE_HORIZON (256)")  # fmt: skip
    case("ipv6_payload_length_long", ether(ipv6(d6, plen=len(d6) + 1), V6), drop, "MALFORMED",
         "payload length beyond the frame")  # fmt: skip
    case("ipv6_udp_length_short", ether(ipv6(udp(SRC6, DST6, data_packet(), length=56)), V6),
         drop, "MALFORMED", "UDP length below the payload length")  # fmt: skip
    case("ipv6_tcp", ether(ipv6(d6, nexthdr=6), V6), passed, "NOT_WARRANT", "not UDP")
    case("ipv6_esp", ether(ipv6(d6, nexthdr=50), V6), passed, "NOT_WARRANT",
         "ESP: not walked; SPEC 3 states what this leaves out")  # fmt: skip
    # merged skbs (TC)
    case("ipv4_gso_two", ether(ipv4(d4), V4), drop, "MERGED_FRAME",
         "TC: gso_segs 2 (GRO or GSO)", skb=(2, 52))  # fmt: skip
    case("ipv6_gso_uncounted", ether(ipv6(d6), V6), drop, "MERGED_FRAME",
         "TC: gso_size set, gso_segs 0 (not yet counted)", skb=(0, 52))  # fmt: skip
    case("ipv4_gso_one", ether(ipv4(d4), V4), drop, "UNKNOWN_SESSION",
         "TC: a single segment is judged", (14, False), skb=(1, 52))  # fmt: skip
    case("ipv4_gso_other_port", ether(ipv4(udp(SRC4, DST4, data_packet(), OTHER)), V4),
         passed, "NOT_WARRANT", "TC: merged, but not Warrant traffic", skb=(8, 52))  # fmt: skip
    return out


def build() -> dict[str, Any]:
    return {
        "description": "Frame policy of the kernel datapath and its Python reference "
        "(SPEC.md 3, 'What is Warrant traffic'; 6.1 REJECT for lost state). Ports: "
        f"[{PORT}]; no session installed. Generated by tools/vectors_frames.py.",
        "ports": [PORT],
        "cases": cases(),
    }


def main(argv: list[str]) -> int:
    return vectorlib.write_or_check(
        argv, OUTPUT, vectorlib.render(build()), __file__,
        lambda doc: f"{len(doc['cases'])} cases",
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv))
