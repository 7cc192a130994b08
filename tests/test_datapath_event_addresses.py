"""Kernel events carry the frame's addresses in either family: 4 bytes for IPv4, 16 for
IPv6 (read from the IPv6 header when the event is emitted, bpf/verdict.h), with ports,
reason, kind and sequence number, through XDP and TC, VLAN tags or not.

Frames run through BPF_PROG_TEST_RUN with the event budget lifted.  Needs root and bpf();
skipped otherwise, and as root a datapath that cannot load fails the test.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterator

import pytest

from warrant.core.constants import AEAD_TAG_LEN, Kind, Reason, Verdict
from warrant.core.wire import DataPacket
from warrant.datapath import wire as dpwire

pytestmark = pytest.mark.root

NOW = 1_800_000_000.0
PORT, SPORT = 4433, 41234
SRC4, DST4 = bytes([10, 1, 2, 3]), bytes([10, 4, 5, 6])
SRC6 = bytes.fromhex("fd00000000000000000000000000beef")
DST6 = bytes.fromhex("20010db8000000000000000000000042")
QINQ = ((dpwire.ETH_P_8021AD, 100), (dpwire.ETH_P_8021Q, 7))
SID = bytes.fromhex("0123456789abcdef")  # no such session: UNKNOWN_SESSION
SEQ = 77
XDP_DROP, XDP_TX, TC_ACT_SHOT, TC_ACT_REDIRECT = 1, 3, 2, 7


@pytest.fixture
def dp() -> Iterator[object]:
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    from warrant.datapath.loader import Datapath

    with Datapath.open(pin_root=None) as d:  # under root a build or load failure fails
        d.set_ports([PORT])
        d.set_time(NOW)
        d.set_reject_bucket(1 << 62)  # no REJECTs: unknown sessions are plain drops
        d.set_config(budget=False)
        yield d


def _data() -> bytes:
    return DataPacket(SID, SEQ, bytes(16), (), bytes(AEAD_TAG_LEN + 8)).encode()


def _fragmented6(src: bytes, dst: bytes) -> bytes:
    """DATA behind an IPv6 Fragment header (offset 0, more fragments): FRAGMENTED."""
    udp = dpwire.udp_datagram(src, dst, SPORT, PORT, _data())
    frag = struct.pack(">BBHI", 17, 0, 1, 0x1234)  # next header UDP, offset 0, M set
    ip6 = dpwire.ipv6_header(src, dst, len(frag) + len(udp), nexthdr=44)
    return dpwire.ethernet(ip6 + frag + udp, dpwire.ETH_P_IPV6)


def _one_event(dp, prog_fd: int, frame: bytes) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    from warrant.datapath import libbpf

    retval, _ = libbpf.TestRunner(prog_fd, 4096, data_out=True).run(frame)
    (ev,) = dp.events()
    return retval, ev


@pytest.mark.parametrize("prog", ["xdp", "tc"])
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("tags", [(), QINQ], ids=["untagged", "qinq"])
def test_a_dropped_data_packet_carries_its_addresses(dp, prog, family, tags) -> None:  # type: ignore[no-untyped-def]
    src, dst = (SRC4, DST4) if family == 4 else (SRC6, DST6)
    frame = dpwire.udp_frame(_data(), PORT, sport=SPORT, src=src, dst=dst, tags=tags)
    retval, ev = _one_event(dp, dp.xdp_fd if prog == "xdp" else dp.tc_fd, frame)
    assert retval == (XDP_DROP if prog == "xdp" else TC_ACT_SHOT)
    assert (ev.verdict, ev.reason, ev.kind) == (Verdict.DROP, Reason.UNKNOWN_SESSION, Kind.DATA)
    assert (ev.session_id, ev.seq, ev.length) == (SID, SEQ, len(_data()))
    assert (ev.saddr, ev.daddr, ev.sport, ev.dport) == (src, dst, SPORT, PORT)
    assert ev.source_ip == str(ipaddress.ip_address(src))
    assert ev.destination_ip == str(ipaddress.ip_address(dst))


@pytest.mark.parametrize("prog", ["xdp", "tc"])
def test_an_ipv6_parse_drop_carries_its_addresses(dp, prog) -> None:  # type: ignore[no-untyped-def]
    """A drop decided by the frame parse (no session read): the addresses and both ports
    all the same."""
    _, ev = _one_event(dp, dp.xdp_fd if prog == "xdp" else dp.tc_fd, _fragmented6(SRC6, DST6))
    assert (ev.verdict, ev.reason) == (Verdict.DROP, Reason.FRAGMENTED)
    assert (ev.source_ip, ev.destination_ip) == ("fd00::beef", "2001:db8::42")
    assert (ev.sport, ev.dport) == (SPORT, PORT)


def _bad_udp_length(frame: bytes, udp_off: int) -> bytes:
    """The frame with its UDP length one short of the IP payload: MALFORMED in the parse."""
    (ulen,) = struct.unpack_from(">H", frame, udp_off + 4)
    return frame[: udp_off + 4] + struct.pack(">H", ulen - 1) + frame[udp_off + 6 :]


@pytest.mark.parametrize("prog", ["xdp", "tc"])
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("tags", [(), QINQ], ids=["untagged", "qinq"])
def test_a_parse_drop_names_the_senders_port(dp, prog, family, tags) -> None:  # type: ignore[no-untyped-def]
    """A UDP length that disagrees with the IP length is refused by the frame parse, before
    any DATA field is read; its event still names the source port (untagged IPv4 takes the
    parse's fast path, the others the walk)."""
    src, dst = (SRC4, DST4) if family == 4 else (SRC6, DST6)
    frame = dpwire.udp_frame(_data(), PORT, sport=SPORT, src=src, dst=dst, tags=tags)
    udp_off = 14 + 4 * len(tags) + (20 if family == 4 else 40)
    _, ev = _one_event(
        dp, dp.xdp_fd if prog == "xdp" else dp.tc_fd, _bad_udp_length(frame, udp_off)
    )
    assert (ev.verdict, ev.reason) == (Verdict.DROP, Reason.MALFORMED)
    assert (ev.saddr, ev.daddr, ev.sport, ev.dport) == (src, dst, SPORT, PORT)


@pytest.mark.parametrize("prog", ["xdp", "tc"])
def test_an_event_answered_by_a_reject_keeps_the_frames_own_addresses(dp, prog) -> None:  # type: ignore[no-untyped-def]
    """The frame becomes the REJECT (addresses swapped) after its event was written."""
    dp.set_reject_bucket(0)  # a full bucket: this drop is answered
    frame = dpwire.udp_frame(_data(), PORT, sport=SPORT, src=SRC6, dst=DST6)
    retval, ev = _one_event(dp, dp.xdp_fd if prog == "xdp" else dp.tc_fd, frame)
    assert retval == (XDP_TX if prog == "xdp" else TC_ACT_REDIRECT)
    assert dp.rejects_sent() == 1
    assert (ev.saddr, ev.daddr, ev.reason) == (SRC6, DST6, Reason.UNKNOWN_SESSION)
