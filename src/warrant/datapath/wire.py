"""Frames around Warrant packets: the part of bpf/wire.h that is not the DATA header.

`parse_frame` is the Python statement of the kernel's frame policy (which
frames are Warrant traffic at all, and which Warrant frames are dropped unjudged
or malformed; SPEC 3, "What is Warrant traffic"); `udp_frame` builds
Ethernet/IPv4 or IPv6/UDP frames for tests, benchmarks and the veth test.  The DATA header itself is parsed by `warrant.core.wire`, the reference.
"""

from __future__ import annotations

import struct
from collections.abc import Container
from dataclasses import dataclass

from ..core.constants import (
    DP_MAX_IPV6_EXT,
    DP_MAX_VLAN_TAGS,
    DP_PARSE_HORIZON,
    DP_REJECT_TTL,
    Reason,
)
from ..core.wire import RejectPacket

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
IPV4_HLEN = 20
IPV6_HLEN = 40
UDP_HLEN = 8
IPPROTO_UDP = 17
IPPROTO_TCP = 6
IP_MF = 0x2000
IP_OFFSET = 0x1FFF
IP6_FRAG_OFFSET = 0xFFF8
NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_DEST = 0, 43, 44, 60
IPV6_WALKED = frozenset({NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_DEST})
VLAN_TAGS = (ETH_P_8021Q, ETH_P_8021AD)


@dataclass(frozen=True)
class Frame:
    """Where the Warrant packet sits in a frame, as the kernel sees it."""

    payload: bytes
    saddr: bytes  # 4 bytes (IPv4) or 16 (IPv6)
    daddr: bytes
    sport: int
    dport: int
    l3: int = ETH_HLEN  # offset of the IP header (18, 22 after VLAN tags)
    ip_len: int = 0  # the IP packet's length by its header

    @property
    def ipv6(self) -> bool:
        return len(self.saddr) == 16


def parse_frame(frame: bytes, ports: Container[int]) -> tuple[Reason, Frame | None]:
    """OK with the Warrant packet, NOT_WARRANT (pass), or the reason to drop it
    (UNPARSED_FRAME, FRAGMENTED, MALFORMED); see bpf/wire.h.  The frame after a drop
    reason is None.  Merged frames (GRO/GSO) are the caller's to judge: `merged`."""
    n = len(frame)
    if n < ETH_HLEN:
        return Reason.NOT_WARRANT, None
    (proto,) = struct.unpack_from(">H", frame, 12)
    off = ETH_HLEN
    for _ in range(DP_MAX_VLAN_TAGS):
        if proto not in VLAN_TAGS:
            break
        if n < off + 4:
            return Reason.NOT_WARRANT, None
        (proto,) = struct.unpack_from(">H", frame, off + 2)
        off += 4
    if proto in VLAN_TAGS:  # a deeper stack may hide a Warrant port
        return Reason.UNPARSED_FRAME, None
    if proto == ETH_P_IP:
        return _parse_ipv4(frame, off, ports)
    if proto == ETH_P_IPV6:
        return _parse_ipv6(frame, off, ports)
    return Reason.NOT_WARRANT, None


def _udp_reachable(n: int, udp: int) -> Reason:
    if udp + UDP_HLEN > n:
        return Reason.NOT_WARRANT  # no such datagram: the stack drops it too
    if udp + UDP_HLEN > DP_PARSE_HORIZON:
        return Reason.UNPARSED_FRAME
    return Reason.OK


def _parse_ipv4(frame: bytes, off: int, ports: Container[int]) -> tuple[Reason, Frame | None]:
    n = len(frame)
    if n < off + IPV4_HLEN:
        return Reason.NOT_WARRANT, None
    version, ihl, ip_proto = frame[off] >> 4, frame[off] & 0x0F, frame[off + 9]
    if version != 4 or ihl < 5 or ip_proto != IPPROTO_UDP:
        return Reason.NOT_WARRANT, None
    tot, frag = struct.unpack_from(">H2xH", frame, off + 2)
    if frag & IP_OFFSET:
        return Reason.NOT_WARRANT, None
    udp = off + ihl * 4
    reach = _udp_reachable(n, udp)
    if reach != Reason.OK:
        return reach, None
    sport, dport, ulen = struct.unpack_from(">HHH", frame, udp)
    if dport not in ports:
        return Reason.NOT_WARRANT, None
    if frag & IP_MF:
        return Reason.FRAGMENTED, None
    if ihl != 5 or tot < IPV4_HLEN or off + tot > n:
        return Reason.MALFORMED, None
    if tot - IPV4_HLEN < UDP_HLEN or ulen != tot - IPV4_HLEN:
        return Reason.MALFORMED, None
    saddr, daddr = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
    payload = frame[udp + UDP_HLEN : udp + ulen]
    return Reason.OK, Frame(payload, saddr, daddr, sport, dport, off, tot)


def _parse_ipv6(frame: bytes, off: int, ports: Container[int]) -> tuple[Reason, Frame | None]:
    n = len(frame)
    if n < off + IPV6_HLEN or frame[off] >> 4 != 6:
        return Reason.NOT_WARRANT, None
    (plen,) = struct.unpack_from(">H", frame, off + 4)
    nh = frame[off + 6]
    udp = off + IPV6_HLEN
    ext = 0
    fragment = False
    for _ in range(DP_MAX_IPV6_EXT):
        if nh not in IPV6_WALKED:
            break
        if udp + 8 > n:
            return Reason.NOT_WARRANT, None
        if udp + 8 > DP_PARSE_HORIZON:
            return Reason.UNPARSED_FRAME, None
        if nh == NEXTHDR_FRAGMENT:
            (frag,) = struct.unpack_from(">H", frame, udp + 2)
            if frag & IP6_FRAG_OFFSET:
                return Reason.NOT_WARRANT, None  # as IPv4: no UDP header in it
            fragment = True
            nh, udp = frame[udp], udp + 8
        else:
            nh, udp = frame[udp], udp + (frame[udp + 1] + 1) * 8
        ext += 1
    if nh in IPV6_WALKED:  # a longer chain: UDP may lie behind it
        return Reason.UNPARSED_FRAME, None
    if nh != IPPROTO_UDP:
        return Reason.NOT_WARRANT, None
    reach = _udp_reachable(n, udp)
    if reach != Reason.OK:
        return reach, None
    sport, dport, ulen = struct.unpack_from(">HHH", frame, udp)
    if dport not in ports:
        return Reason.NOT_WARRANT, None
    if fragment:
        return Reason.FRAGMENTED, None
    if ext or off + IPV6_HLEN + plen > n or plen < UDP_HLEN or ulen != plen:
        return Reason.MALFORMED, None
    saddr, daddr = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
    payload = frame[udp + UDP_HLEN : udp + ulen]
    return Reason.OK, Frame(payload, saddr, daddr, sport, dport, off, IPV6_HLEN + plen)


def merged(f: Frame, gso_segs: int = 1, gso_size: int = 0, mtu: int | None = None) -> bool:
    """Whether a parsed Warrant frame is several datagrams merged into one (MERGED_FRAME).

    At TC the skb says so (gso_size set and gso_segs other than 1; 0 means not yet
    counted); at XDP (mtu given: the ingress device's) only an IP length above the MTU
    gives it away."""
    if mtu is not None:
        return f.ip_len > mtu
    return bool(gso_size) and gso_segs != 1


def reject_frame(frame: bytes, f: Frame, reject: RejectPacket) -> bytes:
    """The frame the kernel turns `frame` into when it answers it with `reject`
    (bpf/reject.h): Ethernet addresses swapped (VLAN tags kept), IP addresses swapped,
    UDP ports swapped and length 24, then the REJECT.  IPv4: total length 44, TTL
    DP_REJECT_TTL, header checksum recomputed (TOS, id and flags kept), UDP checksum 0.
    IPv6: payload length 24, hop limit DP_REJECT_TTL (traffic class, flow label kept),
    UDP checksum over the pseudo-header (never 0)."""
    off = f.l3
    eth = frame[6:12] + frame[0:6] + frame[12:off]
    body = reject.encode()
    ulen = UDP_HLEN + len(body)
    if f.ipv6:
        ip6 = bytearray(frame[off : off + IPV6_HLEN])
        struct.pack_into(">H", ip6, 4, ulen)
        ip6[7] = DP_REJECT_TTL
        ip6[8:24], ip6[24:40] = f.daddr, f.saddr
        pseudo = f.daddr + f.saddr + struct.pack(">IxxxB", ulen, IPPROTO_UDP)
        head = struct.pack(">HHHH", f.dport, f.sport, ulen, 0)
        csum = _checksum(pseudo + head + body) or 0xFFFF
        return eth + bytes(ip6) + struct.pack(">HHHH", f.dport, f.sport, ulen, csum) + body
    ip = bytearray(frame[off : off + IPV4_HLEN])
    struct.pack_into(">H", ip, 2, IPV4_HLEN + ulen)
    ip[8] = DP_REJECT_TTL
    ip[10:12] = b"\0\0"
    ip[12:16], ip[16:20] = f.daddr, f.saddr
    struct.pack_into(">H", ip, 10, _checksum(bytes(ip)))
    udp = struct.pack(">HHHH", f.dport, f.sport, ulen, 0)
    return eth + bytes(ip) + udp + body


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_header(
    src: bytes,
    dst: bytes,
    payload_len: int,
    proto: int = IPPROTO_UDP,
    ident: int = 0,
    frag: int = 0,
    ttl: int = 64,
    options: bytes = b"",
) -> bytes:
    ihl = 5 + len(options) // 4
    head = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + payload_len, ident, frag, ttl,
                       proto, 0, src, dst) + options  # fmt: skip
    csum = _checksum(head)
    return head[:10] + struct.pack(">H", csum) + head[12:]


def udp_datagram(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header and payload, checksummed over the IPv4 or IPv6 pseudo-header."""
    length = UDP_HLEN + len(payload)
    if len(src) == 16:
        pseudo = src + dst + struct.pack(">IxxxB", length, IPPROTO_UDP)
    else:
        pseudo = src + dst + struct.pack(">BBH", 0, IPPROTO_UDP, length)
    head = struct.pack(">HHHH", sport, dport, length, 0)
    csum = _checksum(pseudo + head + payload) or 0xFFFF
    return struct.pack(">HHHH", sport, dport, length, csum) + payload


def ipv6_header(
    src: bytes, dst: bytes, payload_len: int, nexthdr: int = IPPROTO_UDP, hop_limit: int = 64,
    flow: int = 0,
) -> bytes:  # fmt: skip
    return struct.pack(">IHBB16s16s", 0x60000000 | flow, payload_len, nexthdr, hop_limit, src, dst)


def ethernet(
    payload: bytes,
    proto: int = ETH_P_IP,
    dst_mac: bytes = b"\x02\x00\x00\x00\x00\x02",
    src_mac: bytes = b"\x02\x00\x00\x00\x00\x01",
    vlan: int | None = None,
    tags: tuple[tuple[int, int], ...] = (),
) -> bytes:
    """An Ethernet frame; `vlan` is one 802.1Q tag, `tags` any stack of (TPID, TCI)."""
    stack = tags if vlan is None else ((ETH_P_8021Q, vlan), *tags)
    tag = b"".join(struct.pack(">HH", tpid, tci) for tpid, tci in stack)
    return dst_mac + src_mac + tag + struct.pack(">H", proto) + payload


def udp_frame(
    payload: bytes,
    dport: int,
    sport: int = 40000,
    src: bytes = b"\x0a\x00\x00\x01",
    dst: bytes = b"\x0a\x00\x00\x02",
    vlan: int | None = None,
    tags: tuple[tuple[int, int], ...] = (),
) -> bytes:
    """A well-formed Ethernet/IPv4/UDP frame carrying `payload` (IPv6 when the
    addresses are 16 bytes)."""
    udp = udp_datagram(src, dst, sport, dport, payload)
    if len(src) == 16:
        return ethernet(ipv6_header(src, dst, len(udp)) + udp, ETH_P_IPV6, vlan=vlan, tags=tags)
    return ethernet(ipv4_header(src, dst, len(udp)) + udp, vlan=vlan, tags=tags)
