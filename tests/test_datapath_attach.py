"""The loader never silently displaces another XDP program (Cilium's, say) from an interface."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

from warrant.demo import topology

pytestmark = pytest.mark.root


def _require() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("clang") is None:
        pytest.skip("needs root, iproute2 and clang (network namespaces, eBPF); CI runs as root")


def test_foreign_xdp_program_is_not_replaced_unless_asked() -> None:
    _require()
    from warrant.datapath import libbpf
    from warrant.datapath.build import build
    from warrant.datapath.loader import Datapath

    ns = f"wattach{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    foreign = libbpf.BpfObject(str(build("baseline_pass")))
    try:
        foreign.load()
        with topology.entered(ns):
            subprocess.run(
                ["ip", "link", "add", "wa0", "type", "veth", "peer", "name", "wa1"], check=True
            )
            idx = socket.if_nametoindex("wa0")
            libbpf.xdp_attach(idx, foreign.program_fd("baseline_pass"))
            with Datapath.open(pin_root=None) as dp:
                with pytest.raises(libbpf.BpfError, match="baseline_pass"):
                    dp.attach_xdp(idx)
                assert libbpf.prog_name(libbpf.xdp_query_id(idx)) == "baseline_pass"
                dp.attach_xdp(idx, replace_foreign=True)
                assert libbpf.prog_name(libbpf.xdp_query_id(idx)) == "warrant_xdp"
                dp.attach_xdp(idx)  # our own program (an agent restart) is replaced quietly
                assert libbpf.prog_name(libbpf.xdp_query_id(idx)) == "warrant_xdp"
    finally:
        foreign.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
