"""Merged and non-linear skbs in a real namespace pair, at TC ingress.

A sender in namespace a uses UDP_SEGMENT (UDP GSO): several equal-size datagrams go
down as one skb, cross the veth unsegmented (veth carries GSO_UDP_L4) and reach the
TC program on the far end as one skb with gso_segs > 1, as a GRO-merged train would.
Judged on its first header, a genuine first DATA packet would carry the rest past
the kernel check; the datapath drops the skb as MERGED_FRAME.  The same packets sent
one by one are admitted.  A single datagram sent with UDP_SEGMENT set is not merged
but is built with its payload in page fragments (only the headers linear): the TC
program's pull makes it readable and it is judged (admitted), not passed.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

import netns_helpers
from warrant.core.constants import AEAD_TAG_LEN, Reason, Verdict
from warrant.datapath.lab import Lab

pytestmark = pytest.mark.root

PORT = 4433
UDP_SEGMENT = 103  # linux/udp.h


def _send(ns: str, dst: str, packets: list[bytes], gso: int) -> None:
    """From namespace ns: the packets concatenated in one sendmsg with UDP_SEGMENT = gso
    (0: one sendto each)."""
    code = (
        "import socket, sys\n"
        "data = [bytes.fromhex(h) for h in sys.argv[3:]]\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "gso = int(sys.argv[2])\n"
        "if gso:\n"
        f"    s.setsockopt(socket.IPPROTO_UDP, {UDP_SEGMENT}, gso)\n"
        f"    s.sendto(b''.join(data), (sys.argv[1], {PORT}))\n"
        "else:\n"
        f"    [s.sendto(d, (sys.argv[1], {PORT})) for d in data]\n"
    )
    subprocess.run(
        netns_helpers.in_ns(ns, sys.executable, "-c", code, dst, str(gso), *(p.hex() for p in packets)),
        check=True,
    )  # fmt: skip


def test_gso_train_is_dropped_and_single_paged_datagram_is_judged() -> None:
    netns_helpers.skip_unless_datapath()
    from warrant.datapath.loader import Datapath
    from warrant.demo import topology

    lab = Lab(1_800_000_000, ports=(PORT,), seed=31)
    flow = lab.open(0)
    with (
        netns_helpers.veth_topology(
            ns_prefix="wgso",
            veth_prefix="wgs",
            pin_prefix="wgso",
            a_addr="10.78.0.1",
            b_addr="10.78.0.2",
        ) as t,  # fmt: skip
        Datapath.open(pin_root=None) as dp,
    ):
        dp.set_ports([PORT])
        dp.set_time(lab.now)
        dp.install_session(flow.session)
        with topology.entered(t["b"]):
            idx = socket.if_nametoindex(t["vb"])
            assert dp.attach_tc(idx) in ("tcx", "clsact priority 1")

        def counts() -> dict[tuple[Verdict, Reason], int]:
            return {k: n for k, (n, _) in dp.counters().items()}

        def fresh(n: int) -> list[bytes]:
            return [flow.data(bytes(200 - AEAD_TAG_LEN)) for _ in range(n)]

        train = fresh(3)
        size = len(train[0])
        _send(t["a"], "10.78.0.2", train, size)  # one skb, three datagrams
        c = counts()
        assert c.get((Verdict.DROP, Reason.MERGED_FRAME)) == 1, c
        assert (Verdict.ADMIT, Reason.OK) not in c, c
        _send(t["a"], "10.78.0.2", train, 0)  # the same three, one by one: judged each
        c = counts()
        assert c.get((Verdict.ADMIT, Reason.OK)) == 3, c
        _send(t["a"], "10.78.0.2", fresh(1), size)  # one datagram, payload in page frags
        c = counts()
        assert c.get((Verdict.ADMIT, Reason.OK)) == 4, c
        assert c.get((Verdict.DROP, Reason.MERGED_FRAME)) == 1, c


def test_generic_xdp_sees_merged_frames_only_above_the_mtu() -> None:
    """Generic XDP runs on the skb, after GRO, and gets no GSO count: a merged train is
    seen as one long datagram.  Above the device MTU it is dropped as MERGED_FRAME;
    a train that fits within the MTU is judged on its first packet only, and the
    datagrams behind it pass unjudged (the limit docs/datapath.md states: use TC, or
    native XDP, which never sees merged frames)."""
    netns_helpers.skip_unless_datapath()
    from warrant.datapath.loader import Datapath
    from warrant.demo import topology

    lab = Lab(1_800_000_000, ports=(PORT,), seed=32)
    flow = lab.open(0)
    with (
        netns_helpers.veth_topology(
            ns_prefix="wgx",
            veth_prefix="wgx",
            pin_prefix="wgx",
            a_addr="10.79.0.1",
            b_addr="10.79.0.2",
        ) as t,  # fmt: skip
        Datapath.open(pin_root=None) as dp,
    ):
        dp.set_ports([PORT])
        dp.set_time(lab.now)
        dp.install_session(flow.session)
        with topology.entered(t["b"]):
            assert dp.attach_xdp(socket.if_nametoindex(t["vb"]), "generic") == "generic"

        def counts() -> dict[tuple[Verdict, Reason], int]:
            return {k: n for k, (n, _) in dp.counters().items()}

        big = [flow.data(bytes(1000)) for _ in range(3)]  # 3 x 1064 bytes: above 1500
        _send(t["a"], "10.79.0.2", big, len(big[0]))
        c = counts()
        assert c.get((Verdict.DROP, Reason.MERGED_FRAME)) == 1, c
        small = [flow.data(bytes(100)) for _ in range(3)]  # 3 x 164 bytes: within the MTU
        _send(t["a"], "10.79.0.2", small, len(small[0]))
        c = counts()
        assert c.get((Verdict.ADMIT, Reason.OK)) == 1, c  # one verdict for three datagrams
