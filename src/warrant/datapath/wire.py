"""Frames around Warrant packets: the part of bpf/wire.h that is not the DATA header.

`parse_frame` is the Python statement of the kernel's frame policy (which
frames are Warrant traffic at all, and which Warrant frames are malformed);
`udp_frame` builds Ethernet/IPv4/UDP frames for tests, benchmarks and the veth
test.  The DATA header itself is parsed by `warrant.core.wire`, the reference.
"""

from __future__ import annotations

import struct
from collections.abc import Container
from dataclasses import dataclass

from ..core.constants import DP_REJECT_TTL, Reason
from ..core.wire import RejectPacket

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
IPV4_HLEN = 20
UDP_HLEN = 8
IPPROTO_UDP = 17
IPPROTO_TCP = 6
IP_MF = 0x2000
IP_OFFSET = 0x1FFF


@dataclass(frozen=True)
class Frame:
    """Where the Warrant packet sits in a frame, as the kernel sees it."""

    payload: bytes
    saddr: bytes
    daddr: bytes
    sport: int
    dport: int
    l3: int = ETH_HLEN  # offset of the IPv4 header (18 after a VLAN tag)


def parse_frame(frame: bytes, ports: Container[int]) -> tuple[Reason, Frame | None]:
    """OK with the Warrant packet, NOT_WARRANT (pass) or MALFORMED (drop); see bpf/wire.h."""
    n = len(frame)
    if n < ETH_HLEN:
        return Reason.NOT_WARRANT, None
    (proto,) = struct.unpack_from(">H", frame, 12)
    off = ETH_HLEN
    if proto in (ETH_P_8021Q, ETH_P_8021AD):
        if n < off + 4:
            return Reason.NOT_WARRANT, None
        (proto,) = struct.unpack_from(">H", frame, off + 2)
        off += 4
    if proto != ETH_P_IP or n < off + IPV4_HLEN:
        return Reason.NOT_WARRANT, None
    version, ihl, ip_proto = frame[off] >> 4, frame[off] & 0x0F, frame[off + 9]
    if version != 4 or ihl < 5 or ip_proto != IPPROTO_UDP:
        return Reason.NOT_WARRANT, None
    tot, frag = struct.unpack_from(">H2xH", frame, off + 2)
    if frag & IP_OFFSET:
        return Reason.NOT_WARRANT, None
    udp = off + ihl * 4
    if n < udp + UDP_HLEN:
        return Reason.NOT_WARRANT, None
    sport, dport, ulen = struct.unpack_from(">HHH", frame, udp)
    if dport not in ports:
        return Reason.NOT_WARRANT, None
    if ihl != 5 or frag & IP_MF:
        return Reason.MALFORMED, None
    if tot < IPV4_HLEN + UDP_HLEN or off + tot > n:
        return Reason.MALFORMED, None
    if ulen < UDP_HLEN or ulen > tot - IPV4_HLEN:
        return Reason.MALFORMED, None
    start = udp + UDP_HLEN
    saddr, daddr = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
    return Reason.OK, Frame(frame[start : udp + ulen], saddr, daddr, sport, dport, off)


def reject_frame(frame: bytes, f: Frame, reject: RejectPacket) -> bytes:
    """The frame the kernel turns `frame` into when it answers it with `reject`
    (bpf/reject.h): Ethernet addresses swapped (a VLAN tag kept), IPv4 addresses
    swapped, total length 44, TTL DP_REJECT_TTL, header checksum recomputed (TOS, id
    and flags kept), UDP ports swapped, length 24, checksum 0, then the REJECT."""
    off = f.l3
    eth = frame[6:12] + frame[0:6] + frame[12:off]
    ip = bytearray(frame[off : off + IPV4_HLEN])
    body = reject.encode()
    struct.pack_into(">H", ip, 2, IPV4_HLEN + UDP_HLEN + len(body))
    ip[8] = DP_REJECT_TTL
    ip[10:12] = b"\0\0"
    ip[12:16], ip[16:20] = f.daddr, f.saddr
    struct.pack_into(">H", ip, 10, _checksum(bytes(ip)))
    udp = struct.pack(">HHHH", f.dport, f.sport, UDP_HLEN + len(body), 0)
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
    length = UDP_HLEN + len(payload)
    pseudo = src + dst + struct.pack(">BBH", 0, IPPROTO_UDP, length)
    head = struct.pack(">HHHH", sport, dport, length, 0)
    csum = _checksum(pseudo + head + payload) or 0xFFFF
    return struct.pack(">HHHH", sport, dport, length, csum) + payload


def ethernet(
    payload: bytes,
    proto: int = ETH_P_IP,
    dst_mac: bytes = b"\x02\x00\x00\x00\x00\x02",
    src_mac: bytes = b"\x02\x00\x00\x00\x00\x01",
    vlan: int | None = None,
) -> bytes:
    tag = b"" if vlan is None else struct.pack(">HH", ETH_P_8021Q, vlan)
    return dst_mac + src_mac + tag + struct.pack(">H", proto) + payload


def udp_frame(
    payload: bytes,
    dport: int,
    sport: int = 40000,
    src: bytes = b"\x0a\x00\x00\x01",
    dst: bytes = b"\x0a\x00\x00\x02",
    vlan: int | None = None,
) -> bytes:
    """A well-formed Ethernet/IPv4/UDP frame carrying `payload`."""
    udp = udp_datagram(src, dst, sport, dport, payload)
    return ethernet(ipv4_header(src, dst, len(udp)) + udp, vlan=vlan)
