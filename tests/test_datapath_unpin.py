"""Datapath.unpin removes the tcx link pins with the maps: the pin root goes, and the link,
whose last reference the pin was, is detached (its program leaves the interface)."""

from __future__ import annotations

import os
import socket
import time

import pytest

import netns_helpers
from warrant.demo import topology

pytestmark = pytest.mark.root


def test_unpin_removes_a_tcx_link_pin_and_the_pin_root() -> None:
    netns_helpers.skip_unless_datapath()
    from warrant.datapath import libbpf
    from warrant.datapath.loader import TCX_LINK_PIN, Datapath

    with (
        netns_helpers.veth_topology(
            ns_prefix="wunp",
            veth_prefix="wun",
            pin_prefix="wunpin",
            a_addr="10.78.0.1",
            b_addr="10.78.0.2",
        ) as t,
        topology.entered(t["b"]),
    ):
        root = t["pin_root"]
        idx = socket.if_nametoindex(t["vb"])
        with Datapath.open(pin_root=root) as dp:
            how = dp.attach_tc(idx)
            if how != "tcx":
                pytest.skip(f"no tcx on this kernel ({how}): no link to pin")
            mine = libbpf.prog_id(dp.tc_fd)
        pin = f"{root}/{TCX_LINK_PIN}{idx}"
        assert os.path.exists(pin) and mine in libbpf.tcx_query(idx)  # the pin holds it
        Datapath.unpin(root)
        assert not os.path.exists(root)
        deadline = time.monotonic() + 5  # the kernel frees a link from a work queue
        while mine in libbpf.tcx_query(idx) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mine not in libbpf.tcx_query(idx)
