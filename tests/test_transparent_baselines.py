"""The baselines transparent mode is measured against, with real programs (issue 11).

One four-namespace topology (tests/transparent_helpers.py: client workload, node A,
node B, server workload) carries every baseline: plain routing with the kernel's
offloads, plain routing with transparent mode's offloads and MTU, VXLAN node to node
(Cilium's tunnel) and wireguard-go node to node.  For each: the first TCP connect,
before any other traffic of the case, has no SYN retransmission and stays below TCP's
initial RTO; curl fetches a file from `python3 -m http.server`; iperf3 TCP and UDP
(1 s) run; every one of them moved the counters of its path (the uplink, and the
tunnel device for a tunnel), so a baseline that silently took another route fails.
Last, bench/transparent.py --smoke runs and its last line is the JSON it promises.

Needs root and the Debian programs scripts/setup.sh installs (ethtool, iperf3, curl,
wireguard-go, wireguard-tools); skipped with the reason otherwise.  As root with them
installed, any failure fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transparent_helpers as th

BENCH = Path(__file__).resolve().parent.parent / "bench" / "transparent.py"
CASES = ["plain", "plain_offloads", "vxlan", "vxlan_offloads", "wireguard_go"]
BENCH_KEYS = ["tcp_throughput_ratio_vs_vxlan", "tcp_throughput_ratio_vs_wireguard_go",
              "tcp_rr_ratio_vs_plain", "first_syn_retransmits", "vxlan_tcp_throughput_ratio_vs_plain",
              "wireguard_go_tcp_throughput_ratio_vs_plain"]  # fmt: skip


def _skip_unless_able() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, veths, tun devices (CI runs as root)")
    if missing := th.missing_tools():  # as root (CI) a broken setup fails, never skips
        pytest.fail(f"as root these must be installed (scripts/setup.sh): {', '.join(missing)}")


class Lab:
    def __init__(self, topo: th.Topology, cases: dict[str, th.Case], www: Path) -> None:
        self.topo, self.cases, self.www = topo, cases, www

    def use(self, name: str) -> th.Case:
        case = self.cases[name]
        self.topo.set_offloads(case.offloads)
        return case

    def path(self, case: th.Case) -> list[int]:
        """Bytes node A sent and received on the uplink and on the case's tunnel device."""
        return [self.topo.uplink_packets("bytes"), self.topo.tunnel_packets(case, "bytes")]

    def assert_path_moved(self, case: th.Case, before: list[int], at_least: int) -> None:
        after = self.path(case)
        assert after[0] - before[0] >= at_least, (
            f"{case.name}: uplink moved {after[0] - before[0]} < {at_least} bytes"
        )
        if case.device is not None:
            moved = after[1] - before[1]
            assert moved >= at_least, f"{case.name}: {case.device} moved {moved} < {at_least}"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    _skip_unless_able()
    with th.topology("ttb") as topo:
        www = th.start_servers(topo, topo.server)
        cases = [th.plain(topo), th.plain_offloads(topo), th.vxlan(topo), th.vxlan_offloads(topo),
                 th.wireguard_go(topo)]  # fmt: skip
        yield Lab(topo, {c.name: c for c in cases}, www)


@pytest.mark.parametrize("name", CASES)
def test_first_connect_has_no_syn_retransmission(lab: Lab, name: str) -> None:
    """Runs first for every case (module order): the connect meets an empty neighbour
    table, and for wireguard-go no handshake yet; none of it may cost a SYN."""
    case = lab.use(name)
    before = lab.path(case)
    result = th.connect_times(lab.topo.client, case.server_addr, 3)
    assert result["first_syn_retransmits"] == 0, result
    assert result["syn_retransmits"] == 0, result
    assert result["first_s"] < th.INITIAL_RTO_S, result
    lab.assert_path_moved(case, before, 3 * 40)  # three SYNs of >= 40 bytes at least


@pytest.mark.parametrize("name", CASES)
def test_curl_fetches_from_http_server(lab: Lab, name: str) -> None:
    case = lab.use(name)
    body = os.urandom(200_000)  # several full-size segments, so MTU or offload faults show
    (lab.www / f"{name}.bin").write_bytes(body)
    before = lab.path(case)
    assert th.curl(lab.topo.client, case.server_addr, f"{name}.bin") == body
    lab.assert_path_moved(case, before, len(body))


@pytest.mark.parametrize("name", CASES)
def test_iperf3_tcp(lab: Lab, name: str) -> None:
    case = lab.use(name)
    before = lab.path(case)
    result = th.iperf3_tcp(lab.topo.client, case.server_addr, 1)
    assert result["bits_per_second"] > 10e6, result  # far below any case here; 0 = broken path
    lab.assert_path_moved(case, before, int(result["bits_per_second"] / 8 * 0.5))


@pytest.mark.parametrize("name", CASES)
def test_iperf3_udp(lab: Lab, name: str) -> None:
    case = lab.use(name)
    before = lab.path(case)
    result = th.iperf3_udp(lab.topo.client, case.server_addr, 1, bitrate="20M")
    assert result["packets"] >= 1000, result  # 20 Mbit/s of 1200-byte datagrams for 1 s
    assert result["lost_percent"] < 5.0, result  # a shared machine drops a few, not most
    lab.assert_path_moved(case, before, int(result["packets"]) * 1200)


def test_bench_smoke_prints_its_json() -> None:
    _skip_unless_able()
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    keys = list(result)
    assert keys[:3] == BENCH_KEYS[:3], "ratios first, the headline three in order"
    assert all("_ratio_" in k for k in keys[: keys.index("first_syn_retransmits")]), keys
    for key in BENCH_KEYS:
        assert key in result
    for key in (
        "vxlan_tcp_throughput_ratio_vs_plain",
        "wireguard_go_tcp_throughput_ratio_vs_plain",
    ):
        assert isinstance(result[key], float) and result[key] > 0, result
    if result["warrant"] == "available":
        assert result["first_syn_retransmits"] == 0, result
        assert all(isinstance(result[k], float) for k in BENCH_KEYS[:3]), result
    else:  # never a fabricated figure when transparent mode could not run
        assert result["warrant"].startswith("not available: "), result
        assert all(result[k] is None for k in BENCH_KEYS[:4]), result


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warrant_bench_transparent", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_bench_reports_null_ratios_when_warrant_is_not_available(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No root needed: the report of a run whose transparent pair could not be set up
    names the reason and gives null for every ratio involving it, while the baselines'
    own ratios are computed from their figures."""
    bench = _load_bench()

    def row(name: str, gbit: list[float], rr: list[float]) -> Any:
        r = bench.Row(name, "ns", "10.0.0.1", lambda: None, list)
        r.tcp_bps, r.rr = [g * 1e9 for g in gbit], rr
        r.connect = {"first_s": 0.002, "median_s": 0.001, "first_syn_retransmits": 0}
        return r

    rows = [row("plain", [10.0, 16.0], [30000.0, 20000.0]), row("plain_offloads", [2.0], [25000.0]),
            row("vxlan", [8.0, 12.0], [15000.0]), row("vxlan_offloads", [1.5], [14000.0]),
            row("wireguard_go", [0.3], [3000.0]),
            bench.Row("warrant", "", "", lambda: None, list, False, "ImportError: no setup_pair")]  # fmt: skip
    bench.report(rows, 2, 1, 100, 3, 1.0)
    out = capsys.readouterr().out.splitlines()
    assert ["warrant", "not available: ImportError: no setup_pair"] in [
        line.split(None, 1) for line in out
    ]
    result = json.loads(out[-1])
    assert result["warrant"] == "not available: ImportError: no setup_pair"
    assert [result[k] for k in BENCH_KEYS[:4]] == [None, None, None, None]
    assert result["tcp_throughput_ratio_vs_vxlan_offloads"] is None
    # the per-packet row was not run at all here: its figures are null too, and said so
    assert result["per_packet_tcp_throughput_ratio_vs_vxlan"] is None
    assert result["warrant_per_packet"] == "not available: not run"
    assert result["vxlan_tcp_throughput_ratio_vs_plain"] == 0.75  # max 12 / max 16
    assert result["wireguard_go_tcp_rr_ratio_vs_plain"] == 0.1  # 3000 / max 30000
    assert result["tcp_rr_per_s_median"]["plain"] == 25000


def test_bench_transparent_failing_mid_run_becomes_not_available() -> None:
    """Transparent mode breaking during a pass drops its partial figures and names the
    stage; a baseline breaking ends the run (no report without its baseline)."""
    bench = _load_bench()

    def broken() -> None:
        raise RuntimeError("iperf3 -c 10.201.2.2: connection refused")

    warrant = bench.Row("warrant", "ns", "10.201.2.2", lambda: None, list)
    warrant.tcp_bps, warrant.rr = [1e9], [20000.0]
    bench._guarded(warrant, "pass 2", broken)
    assert not warrant.available
    assert (
        warrant.reason == "failed in pass 2: RuntimeError: iperf3 -c 10.201.2.2: connection refused"
    )
    assert (warrant.tcp_bps, warrant.rr, warrant.connect) == ([], [], {})
    plain = bench.Row("plain", "ns", "10.201.2.2", lambda: None, list)
    with pytest.raises(RuntimeError, match="connection refused"):
        bench._guarded(plain, "pass 1", broken)
