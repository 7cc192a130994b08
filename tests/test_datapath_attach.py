"""The loader never silently displaces another XDP program (Cilium's, say) from an interface."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

import netns_helpers
from warrant.demo import topology

pytestmark = pytest.mark.root


def _require() -> None:
    # Not clang: as root, a datapath that cannot be built must fail the test, not skip it.
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (network namespaces, eBPF); CI runs as root")


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


def _send_udp(ns: str, dst: str, port: int, count: int) -> None:
    code = (f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for _ in range({count}): s.sendto(b'x' * 40, ({dst!r}, {port}))")  # fmt: skip
    subprocess.run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", code], check=True)


def _foreign_counter():  # type: ignore[no-untyped-def]
    import ctypes

    from warrant.datapath import libbpf
    from warrant.datapath.build import build

    obj = libbpf.BpfObject(str(build("tc_counter_test")))
    obj.load()

    def count() -> int:
        v = ctypes.c_uint64()
        libbpf.map_lookup(obj.map_fd("seen"), ctypes.c_uint32(0), v)
        return int(v.value)

    return obj, count


def _tc_runs(ifindex: int, prog_id: int, path: str) -> bool:
    from warrant.datapath import libbpf

    if path == "tcx":
        return prog_id in libbpf.tcx_query(ifindex)
    return libbpf.tc_query_id(ifindex, priority=2) == prog_id


@pytest.mark.parametrize("path", ["tcx", "clsact"])
def test_tc_attach_keeps_another_owners_program_running(path: str) -> None:
    """Beside Cilium: another owner's TC ingress program (a counter standing in for
    cil_from_netdev) stays attached, and both run on every packet.  tcx: Warrant's link
    goes first (BPF_F_BEFORE) and, since Warrant passes what it does not drop as
    TC_ACT_UNSPEC, the other runs after it.  clsact (kernels without tcx; forced here
    with tcx=False): the other owner's filter holds priority 1, handle 1 (where Cilium's
    legacy filter sits), Warrant takes the free priority 2 and never replaces it; the
    other runs first and, returning TC_ACT_UNSPEC, lets Warrant's run."""
    netns_helpers.skip_unless_datapath()
    from warrant.core.constants import Reason, Verdict
    from warrant.datapath import libbpf
    from warrant.datapath.loader import Datapath

    foreign, count = _foreign_counter()
    foreign_id = libbpf.prog_id(foreign.program_fd("tc_counter"))
    link = -1
    try:
        with (
            netns_helpers.veth_topology(
                ns_prefix="wtcx",
                veth_prefix="wtx",
                pin_prefix="wtcx",
                a_addr="10.77.0.1",
                b_addr="10.77.0.2",
            ) as t,  # fmt: skip
            topology.entered(t["b"]),
        ):
            idx = socket.if_nametoindex(t["vb"])
            if path == "tcx":
                try:
                    link = libbpf.tcx_attach(idx, foreign.program_fd("tc_counter"), 0)
                except libbpf.BpfError as exc:
                    pytest.skip(f"no tcx on this kernel ({exc}); the clsact case covers it")
            else:
                libbpf.tc_attach(idx, foreign.program_fd("tc_counter"), 1, handle=1)
            with Datapath.open(pin_root=t["pin_root"]) as dp:
                dp.set_ports([4433])
                how = dp.attach_tc(idx, tcx=path == "tcx")
                assert how == ("tcx" if path == "tcx" else "clsact priority 2"), how
                mine = libbpf.prog_id(dp.tc_fd)
                assert _tc_runs(idx, mine, path)
                if path == "tcx":
                    assert libbpf.tcx_query(idx) == [mine, foreign_id]
                else:
                    assert libbpf.tc_query_id(idx, 1, 1) == foreign_id  # not replaced
                # an agent restart: the same place, no EEXIST, nothing duplicated
                assert dp.attach_tc(idx, tcx=path == "tcx") == how
                before = count()
                _send_udp(t["a"], "10.77.0.2", 9999, 20)
                _send_udp(t["a"], "10.77.0.2", 4433, 5)  # Warrant port, not Warrant: dropped
                passed = dp.counters().get((Verdict.PASS, Reason.NOT_WARRANT), (0, 0))[0]
                dropped = sum(n for (v, _), (n, _) in dp.counters().items() if v == Verdict.DROP)
                assert passed >= 20 and dropped >= 5
                assert count() - before >= 20  # the other program ran on every packet
                Datapath.detach_tc(idx, t["pin_root"])
                assert not _tc_runs(idx, mine, path)
            if path == "tcx":
                assert libbpf.tcx_query(idx) == [foreign_id]
                # a link held open by a process (no pin) is found by its program's name
                with Datapath.open(pin_root=None) as other:
                    assert other.attach_tc(idx) == "tcx"
                    Datapath.detach_tc(idx, "/sys/fs/bpf/wtcx-none")
                    assert libbpf.tcx_query(idx) == [foreign_id]
            else:
                assert libbpf.tc_query_id(idx, 1, 1) == foreign_id
    finally:
        if link >= 0:
            os.close(link)
        foreign.close()


def test_xdp_auto_falls_back_to_generic_when_native_is_refused() -> None:
    """A device without native XDP (loopback has no driver XDP) gets the program in
    generic mode, and attach_xdp says so; a veth (native XDP) keeps native."""
    _require()
    from warrant.datapath import libbpf
    from warrant.datapath.loader import Datapath

    ns = f"wxdpgen{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with topology.entered(ns), Datapath.open(pin_root=None) as dp:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            lo = socket.if_nametoindex("lo")
            with pytest.raises(libbpf.BpfError, match=r"not xdp\.frags"):
                dp.attach_xdp(lo, "native")
            assert dp.attach_xdp(lo) == "generic"
            assert libbpf.xdp_query_id(lo, libbpf.XDP_FLAGS_SKB_MODE) == libbpf.prog_id(dp.xdp_fd)
            subprocess.run(["ip", "link", "add", "wg0", "type", "veth", "peer", "name", "wg1"],
                           check=True)  # fmt: skip
            assert dp.attach_xdp(socket.if_nametoindex("wg0")) == "native"
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
