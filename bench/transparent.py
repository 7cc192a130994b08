"""Transparent mode against the tunnels it replaces, with real programs, in one run.

    sudo python3 bench/transparent.py            # about 3 min
    sudo python3 bench/transparent.py --quick    # within 90 s
    sudo python3 bench/transparent.py --smoke    # one short pass (tests/test_transparent_baselines.py)

Topology (tests/transparent_helpers.py): client workload -- veth -- node A -- uplink
veth -- node B -- veth -- server workload, the shape of transparent mode's pair and of
two Cilium nodes.  The baselines share one such topology; Warrant transparent runs in
the pair `warrant.datapath.transparent.setup_pair` builds, the same shape (its own
namespaces: its TC programs own the workload veths).  Cases:

  plain           routed, default veth offloads (TSO/GSO on), MTU 1500
  plain_offloads  routed, transparent mode's offloads (TSO/GSO/tx-csum off), MTU 1436
  vxlan           node to node over VXLAN (Cilium's tunnel, VNI 42, UDP 8472), MTU 1450
  vxlan_offloads  the same VXLAN with transparent mode's offloads and MTU 1436: the
                  kernel's tunnel at transparent mode's segmentation (one packet per MSS)
  wireguard_go    node to node over wireguard-go (user-space crypto), MTU 1420
  warrant         transparent mode in trains mode (setup_pair(trains=True), SPEC 13.7):
                  workloads keep TSO/GSO, TC egress stamps each TCP super-packet once as
                  a segment train, the kernel ingress checks and decapsulates it whole
  warrant_per_packet  transparent mode with one stamp per MTU-sized packet (workload
                  offloads off, setup_pair(trains=False)); its ratios are prefixed
                  per_packet_

Metrics.  Per case, first: `--connects` fresh TCP connects, the first one before any
other traffic of the case, with the client namespace's TcpExt TCPSynRetrans over them
(first_syn_retransmits = the first connect's).  Then `--passes` interleaved passes (each
pass runs every case, the case order rotated between passes): iperf3 TCP for
`--seconds` s (the server's received goodput) and `--rounds` 1-byte request/response
round trips over one TCP connection.  A case's figure is its MAXIMUM over passes (the
least-disturbed pass: the machine is shared, and noise only ever lowers a rate); the
per-pass figures are printed too.  Every measurement asserts its path: the uplink's
packet counter moved, and for a tunnel the tunnel device's counter moved by at least
the request/response rounds; for Warrant, the egress and ingress programs' counters.

If transparent mode cannot be set up at run time, its row says "not available:
<reason>" and every ratio involving it is null.  The last line is JSON: ratios first
(Warrant's, then the baselines' own against plain), then first_syn_retransmits, then
the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import transparent_helpers as th


@dataclass
class Row:
    name: str
    client_ns: str
    server_addr: str
    prepare: Callable[[], None]  # offloads for this case
    path_packets: Callable[[], list[int]]  # counters of this case's path, each must move
    available: bool = True
    reason: str = ""
    connect: dict[str, Any] = field(default_factory=dict)
    tcp_bps: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    pair: Any = None  # transparent mode's pair (warrant only)
    egress: dict[str, int] | None = None  # its egress outcome counters after the run
    # a counter that must move in every pass (trains mode: super-packets stamped as trains)
    also_moves: Callable[[], int] | None = None


def _baseline_row(topo: th.Topology, case: th.Case) -> Row:
    return Row(case.name, topo.client, case.server_addr, lambda: topo.set_offloads(case.offloads),
               lambda: [topo.uplink_packets(), topo.tunnel_packets(case)] if case.device else [topo.uplink_packets()])  # fmt: skip


def _warrant_row(
    topo: th.Topology, name: str, prefix: str, **options: Any
) -> tuple[Row, Callable[[], None]]:
    """Transparent mode's pair (`setup_pair(**options)`) with the servers in its server
    workload, or a row saying why not (and a no-op close)."""
    try:
        from warrant.datapath.transparent import setup_pair

        pair: Any = setup_pair(
            tag=f"{prefix}{os.getpid() % 100000}", server_port=th.IPERF_PORT, **options
        )
    except Exception as exc:  # any failure to set up is reported, never papered over
        return _unavailable(name, f"{type(exc).__name__}: {exc}"), lambda: None
    try:
        th.start_servers(topo, pair.server_ns)
    except Exception as exc:
        pair.close()
        return _unavailable(name, f"servers: {exc}"), lambda: None

    def path() -> list[int]:
        """Packets node A's egress program encapsulated and node B's ingress admitted."""
        counters = pair.counters()
        admitted = sum(
            n for (verdict, _), n in counters["ingress"].items() if verdict.name == "ADMIT"
        )
        return [int(counters["egress"]["ENCAP"] + counters["egress"]["TRAIN"]), int(admitted)]

    row = Row(name, pair.client_ns, pair.server_ip, lambda: None, path)
    row.pair = pair
    if options.get("trains"):
        row.also_moves = lambda: int(pair.counters()["egress"]["TRAIN"])
    return row, pair.close


def _unavailable(name: str, reason: str) -> Row:
    return Row(name, "", "", lambda: None, list, False, reason)


def _measure(row: Row, seconds: int, rounds: int) -> None:
    row.prepare()
    before = row.path_packets()
    extra = row.also_moves() if row.also_moves else 0
    row.tcp_bps.append(th.iperf3_tcp(row.client_ns, row.server_addr, seconds)["bits_per_second"])
    row.rr.append(th.tcp_rr(row.client_ns, row.server_addr, rounds))
    moved = [b - a for a, b in zip(before, row.path_packets(), strict=True)]
    if min(moved) < rounds:
        raise AssertionError(
            f"{row.name}: its path counters moved by {moved}, fewer than {rounds} rounds"
        )
    if row.also_moves and row.also_moves() == extra:
        raise AssertionError(f"{row.name}: no super-packet was stamped as a train")


def _connects(row: Row, connects: int) -> None:
    row.prepare()
    row.connect = th.connect_times(row.client_ns, row.server_addr, connects)


def _guarded(row: Row, stage: str, step: Callable[[], None]) -> None:
    """A baseline's failure ends the run; transparent mode failing at run time makes its
    row "not available" with the reason, its partial figures dropped (never reported)."""
    if not row.name.startswith("warrant"):
        step()
        return
    try:
        step()
    except Exception as exc:
        row.available, row.reason = False, f"failed in {stage}: {type(exc).__name__}: {exc}"
        row.connect, row.tcp_bps, row.rr = {}, [], []


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 passes of 2 s (within 90 s)")
    mode.add_argument("--smoke", action="store_true", help="1 pass of 1 s (a test of the script)")
    parser.add_argument("--passes", type=int)
    parser.add_argument("--seconds", type=int, help="iperf3 TCP duration per pass (whole s)")
    parser.add_argument("--rounds", type=int, help="request/response rounds per pass")
    parser.add_argument("--connects", type=int, help="fresh connects per case")
    args = parser.parse_args()
    passes, seconds, rounds, connects = (
        (1, 1, 500, 3) if args.smoke else (3, 2, 3000, 5) if args.quick else (5, 4, 10000, 10)
    )
    passes, seconds = args.passes or passes, args.seconds or seconds
    rounds, connects = args.rounds or rounds, args.connects or connects
    if os.geteuid() != 0:
        raise SystemExit("bench/transparent.py needs root (network namespaces, eBPF)")
    if missing := th.missing_tools():
        raise SystemExit(f"missing: {', '.join(missing)} (scripts/setup.sh installs them)")

    started = time.monotonic()
    with th.topology("tb") as topo:
        th.start_servers(topo, topo.server)
        cases = [th.plain(topo), th.plain_offloads(topo), th.vxlan(topo), th.vxlan_offloads(topo),
                 th.wireguard_go(topo)]  # fmt: skip
        rows = [_baseline_row(topo, c) for c in cases]
        warrants = []
        for name, prefix, options in (
            ("warrant", "tb", {"trains": True}),
            ("warrant_per_packet", "tg", {"trains": False}),
        ):
            warrant, close_warrant = _warrant_row(topo, name, prefix, **options)
            topo.on_teardown(close_warrant)
            warrants.append(warrant)
        rows += warrants
        live = [r for r in rows if r.available]
        for row in live:  # the first connect of each case precedes any of its traffic
            _guarded(row, "first connects", functools.partial(_connects, row, connects))
        for p in range(passes):
            for row in [r for r in live[p % len(live) :] + live[: p % len(live)] if r.available]:
                _guarded(row, f"pass {p + 1}", functools.partial(_measure, row, seconds, rounds))
        for warrant in warrants:
            if warrant.available:
                warrant.egress = warrant.pair.counters()["egress"]
    report(rows, passes, seconds, rounds, connects, time.monotonic() - started)


def report(
    rows: list[Row], passes: int, seconds: int, rounds: int, connects: int, took: float
) -> None:
    by = {r.name: r for r in rows}

    def tput(name: str) -> float | None:
        return max(by[name].tcp_bps) if name in by and by[name].tcp_bps else None

    def rr(name: str) -> float | None:
        return max(by[name].rr) if name in by and by[name].rr else None

    def status(name: str) -> str:
        row = by.get(name)
        if row is None:
            return "not available: not run"
        return "available" if row.available else f"not available: {row.reason}"

    print(f"transparent mode vs tunnels: {passes} interleaved passes, iperf3 TCP {seconds} s, "
          f"{rounds} RR rounds, {connects} connects; figure = max over passes ({took:.0f} s)")  # fmt: skip
    print(f"{'case':<18} {'TCP Gbit/s':>10} {'per pass':<24} {'RR/s':>8} {'per pass':<24} "
          f"{'1st conn ms':>11} {'med ms':>7} {'1st SYN rtx':>11}")  # fmt: skip
    for r in rows:
        if not r.available:
            print(f"{r.name:<18} not available: {r.reason}")
            continue
        t, q = tput(r.name), rr(r.name)
        assert t is not None and q is not None
        print(f"{r.name:<18} {t / 1e9:>10.2f} {' '.join(f'{x / 1e9:.2f}' for x in r.tcp_bps):<24} "
              f"{q:>8.0f} {' '.join(f'{x:.0f}' for x in r.rr):<24} {r.connect['first_s'] * 1e3:>11.2f} "
              f"{r.connect['median_s'] * 1e3:>7.2f} {r.connect['first_syn_retransmits']:>11}")  # fmt: skip
    w = by["warrant"]
    result: dict[str, Any] = {
        "tcp_throughput_ratio_vs_vxlan": _ratio(tput("warrant"), tput("vxlan")),
        "tcp_throughput_ratio_vs_wireguard_go": _ratio(tput("warrant"), tput("wireguard_go")),
        "tcp_rr_ratio_vs_plain": _ratio(rr("warrant"), rr("plain")),
        "tcp_throughput_ratio_vs_vxlan_offloads": _ratio(tput("warrant"), tput("vxlan_offloads")),
        "tcp_throughput_ratio_vs_plain_offloads": _ratio(tput("warrant"), tput("plain_offloads")),
        "tcp_throughput_ratio_vs_plain": _ratio(tput("warrant"), tput("plain")),
        "per_packet_tcp_throughput_ratio_vs_vxlan": _ratio(
            tput("warrant_per_packet"), tput("vxlan")
        ),
        "per_packet_tcp_throughput_ratio_vs_vxlan_offloads": _ratio(
            tput("warrant_per_packet"), tput("vxlan_offloads")
        ),
        "per_packet_tcp_throughput_ratio_vs_wireguard_go": _ratio(
            tput("warrant_per_packet"), tput("wireguard_go")
        ),
        "per_packet_tcp_rr_ratio_vs_plain": _ratio(rr("warrant_per_packet"), rr("plain")),
        "vxlan_tcp_throughput_ratio_vs_plain": _ratio(tput("vxlan"), tput("plain")),
        "wireguard_go_tcp_throughput_ratio_vs_plain": _ratio(tput("wireguard_go"), tput("plain")),
        "plain_offloads_tcp_throughput_ratio_vs_plain": _ratio(
            tput("plain_offloads"), tput("plain")
        ),
        "vxlan_offloads_tcp_throughput_ratio_vs_plain_offloads": _ratio(
            tput("vxlan_offloads"), tput("plain_offloads")
        ),
        "vxlan_tcp_rr_ratio_vs_plain": _ratio(rr("vxlan"), rr("plain")),
        "wireguard_go_tcp_rr_ratio_vs_plain": _ratio(rr("wireguard_go"), rr("plain")),
        "first_syn_retransmits": w.connect["first_syn_retransmits"] if w.available else None,
        "per_packet_first_syn_retransmits": by["warrant_per_packet"].connect.get(
            "first_syn_retransmits"
        )
        if "warrant_per_packet" in by
        else None,
        "warrant": status("warrant"),
        "warrant_per_packet": status("warrant_per_packet"),
        "baseline_first_syn_retransmits": {
            r.name: r.connect["first_syn_retransmits"]
            for r in rows
            if r.available and not r.name.startswith("warrant")
        },
        "first_connect_ms": {
            r.name: round(r.connect["first_s"] * 1e3, 3) for r in rows if r.available
        },
        "connect_median_ms": {
            r.name: round(r.connect["median_s"] * 1e3, 3) for r in rows if r.available
        },
        "tcp_gbit_s": {r.name: round(max(r.tcp_bps) / 1e9, 3) for r in rows if r.tcp_bps},
        "tcp_rr_per_s": {r.name: round(max(r.rr)) for r in rows if r.rr},
        "tcp_rr_per_s_median": {r.name: round(statistics.median(r.rr)) for r in rows if r.rr},
        "warrant_egress_counters": w.egress,
        "per_packet_egress_counters": by["warrant_per_packet"].egress
        if "warrant_per_packet" in by
        else None,
        "passes": passes,
        "seconds": seconds,
        "rounds": rounds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
