"""Prometheus metrics for the agent and `warrant listen`: what Hubble's metrics say, for Warrant.

    metrics = Metrics()
    metrics.track(sessions=lambda: len(receiver.sessions),
                  queue_depth=lambda: listener.init_queue_depth())
    listener = await listen(host, port, receiver, on_flow=metrics.flow_sink(FlowSink(store)))
    server = start_metrics_server(9971, metrics=metrics)     # GET /metrics

Series (names follow Prometheus conventions; `reason` is Warrant's reason name,
`drop_reason` Hubble's DropReason name, empty where none is mapped; `direction` is
INGRESS or EGRESS, as Cilium's drop and forward counters have it; `datapath` says
which side judged the packet, `user` or `kernel`):

    warrant_verdicts_total{verdict, reason, drop_reason, kind}   counter (user space)
    warrant_drop_count_total{reason, drop_reason, direction, datapath}    counter
    warrant_drop_bytes_total{reason, drop_reason, direction, datapath}    counter
    warrant_forward_count_total{direction, datapath}             counter
    warrant_forward_bytes_total{direction, datapath}             counter
    warrant_sessions_open                                        gauge
    warrant_slowpath_queue_depth                                 gauge
    warrant_packet_cost_seconds{kind}                            histogram
    warrant_datapath_verdicts_total{reason}                      counter (the kernel's map)

Each packet is counted once.  A packet the kernel judged is counted from the kernel's
counters map (read at scrape time); when user space later sees it too (a kernel drop
event turned into a flow record, a kernel-admitted DATA opened at the socket), the
caller says so (`in_kernel=True`) and only its cost is observed.  User-space
verdicts come in through `observe_outcome` (the agent) or `flow_sink` (`warrant
listen`), never both for one receiver.

Every metric lives in the Metrics object's own registry, so several receivers in
one process (and tests) never collide.  Counting is O(1) per packet; gauges
are read from callbacks at scrape time, never pushed from the packet path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ..core.constants import REASONS, Reason, Verdict
from ..core.receiver import Outcome
from . import flow

NAMESPACE = "warrant"
# Cilium's agent serves metrics on 9962, its operator on 9963, its Envoy on 9964 and Hubble on
# 9965, all on the host network where this agent also runs: stay clear of them.
DEFAULT_PORT = 9971
# Per-packet cost spans DATA in the kernel (~100 ns) to an INIT's Ed25519 checks (~1 ms).
COST_BUCKETS = (
    1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5,
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2,
)  # fmt: skip

FlowSinkFn = Callable[[dict[str, Any]], None]
# The kernel's counters map: (verdict, reason) -> (packets, bytes).
KernelCounters = Mapping[tuple[Verdict, Reason], tuple[int, int]]
# The XDP and TC programs run where packets arrive.
KERNEL_DIRECTION = "INGRESS"


class Metrics:
    """The agent's metrics in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.verdicts = Counter(
            "verdicts",
            "Packets judged, by verdict and reason.",
            ["verdict", "reason", "drop_reason", "kind"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.sessions = Gauge(
            "sessions_open",
            "Sessions currently open at this receiver.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "slowpath_queue_depth",
            "Session openings (INIT) waiting for signature verification.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.cost = Histogram(
            "packet_cost_seconds",
            "Time to judge one packet, by packet kind.",
            ["kind"],
            buckets=COST_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._packets = _PacketCollector()
        self.registry.register(self._packets)

    # ---- counting --------------------------------------------------------------------------
    def observe_outcome(
        self,
        outcome: Outcome,
        cost: float | None = None,
        *,
        direction: str = "INGRESS",
        in_kernel: bool = False,
    ) -> None:
        """Count one verdict from the receiver's Outcome (and its cost in seconds, if known).

        `in_kernel`: the kernel already judged and counted this packet (its counters map);
        only the cost is observed."""
        if cost is not None:
            self.cost.labels(outcome.kind).observe(cost)
        if in_kernel:
            return
        verdict = flow.verdict_name(outcome.verdict)
        drop = "" if verdict == "FORWARDED" else REASONS[outcome.reason].hubble
        self._count(verdict, outcome.reason.name, drop, outcome.kind, direction, outcome.size)

    def observe_flow(self, rec: Mapping[str, Any]) -> None:
        """Count one verdict from a flow record (what `on_flow` receives)."""
        r = dict(rec)
        self._count(
            str(r.get("verdict", "")),
            flow.reason_of(r),
            str(r.get("drop_reason_desc", "")),
            flow.kind_of(r),
            str(r.get("traffic_direction", "INGRESS")),
            int(flow.extension_of(r).get("bytes", 0)),
        )

    def _count(
        self, verdict: str, reason: str, drop: str, kind: str, direction: str, size: int
    ) -> None:
        self.verdicts.labels(verdict, reason, drop, kind).inc()
        if verdict == "DROPPED":
            self._packets.add(self._packets.drops, (reason, drop, direction, "user"), size)
        elif verdict == "FORWARDED":
            self._packets.add(self._packets.forwards, (direction, "user"), size)

    def flow_sink(self, inner: FlowSinkFn | None = None) -> FlowSinkFn:
        """An `on_flow` callable that counts each record, then hands it to `inner`."""
        return _CountingSink(self, inner)

    # ---- gauges and kernel counters, read at scrape time -------------------------------------
    def track(
        self,
        *,
        sessions: Callable[[], float] | None = None,
        queue_depth: Callable[[], float] | None = None,
    ) -> None:
        """Read the gauges from these callables whenever Prometheus scrapes."""
        if sessions is not None:
            self.sessions.set_function(sessions)
        if queue_depth is not None:
            self.queue_depth.set_function(queue_depth)

    def track_datapath(self, counters: Callable[[], KernelCounters]) -> None:
        """Read the kernel's counters map ((verdict, reason) -> (packets, bytes)) at scrape
        time: per-reason totals, and its drops and admits in the drop/forward families.
        Its PASS verdicts (INITs, other traffic) are judged, and counted, further up."""
        self._packets.source = counters


class _CountingSink:
    def __init__(self, metrics: Metrics, inner: FlowSinkFn | None) -> None:
        self.metrics, self.inner = metrics, inner

    def __call__(self, rec: dict[str, Any]) -> None:
        self.metrics.observe_flow(rec)
        if self.inner is not None:
            self.inner(rec)

    def flush(self) -> None:
        flush = getattr(self.inner, "flush", None)
        if flush is not None:
            flush()


class _PacketCollector(Collector):
    """The drop and forward families: user-space counts kept here, kernel counts read from
    the kernel's map at scrape time (one registry cannot hold a family twice)."""

    def __init__(self) -> None:
        self.source: Callable[[], KernelCounters] | None = None
        self._lock = threading.Lock()
        # labels -> [packets, bytes]
        self.drops: dict[tuple[str, ...], list[int]] = {}
        self.forwards: dict[tuple[str, ...], list[int]] = {}

    def add(
        self, table: dict[tuple[str, ...], list[int]], labels: tuple[str, ...], size: int
    ) -> None:
        with self._lock:
            cell = table.get(labels)
            if cell is None:
                table[labels] = [1, size]
            else:
                cell[0] += 1
                cell[1] += size

    def describe(self) -> Iterable[Any]:
        return list(self._families())

    def collect(self) -> Iterator[Any]:
        verdicts, drops, drop_bytes, fwd, fwd_bytes = self._families()
        with self._lock:
            user = [(drops, drop_bytes, dict(self.drops)), (fwd, fwd_bytes, dict(self.forwards))]
        for count_fam, bytes_fam, table in user:
            for labels, (packets, size) in sorted(table.items()):
                count_fam.add_metric(list(labels), float(packets))
                bytes_fam.add_metric(list(labels), float(size))
        counts: dict[tuple[Verdict, Reason], tuple[int, int]] = {}
        if self.source is not None:
            try:
                counts = dict(self.source())
            except Exception:  # a scrape must not fail because the map went away
                counts = {}
        by_reason: dict[str, int] = {}
        admitted = [0, 0]
        for (verdict, reason), (packets, size) in sorted(counts.items()):
            by_reason[reason.name] = by_reason.get(reason.name, 0) + packets
            if verdict == Verdict.DROP:
                kernel = [reason.name, REASONS[reason].hubble, KERNEL_DIRECTION, "kernel"]
                drops.add_metric(kernel, float(packets))
                drop_bytes.add_metric(kernel, float(size))
            elif verdict == Verdict.ADMIT:
                admitted[0] += packets
                admitted[1] += size
        for name, n in sorted(by_reason.items()):
            verdicts.add_metric([name], float(n))
        if admitted[0]:
            fwd.add_metric([KERNEL_DIRECTION, "kernel"], float(admitted[0]))
            fwd_bytes.add_metric([KERNEL_DIRECTION, "kernel"], float(admitted[1]))
        yield from (verdicts, drops, drop_bytes, fwd, fwd_bytes)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, ...]:
        labels = ["reason", "drop_reason", "direction", "datapath"]

        def fam(name: str, text: str, labels: list[str]) -> CounterMetricFamily:
            return CounterMetricFamily(f"{NAMESPACE}_{name}", text, labels=labels)

        return (
            fam("datapath_verdicts", "Packets judged in the kernel datapath, by reason "
                "(read from its counters map).", ["reason"]),
            fam("drop_count", "Packets dropped, by reason, direction and datapath.", labels),
            fam("drop_bytes", "Bytes of dropped packets, by reason, direction and datapath.",
                labels),
            fam("forward_count", "Packets admitted, by direction and datapath.",
                ["direction", "datapath"]),
            fam("forward_bytes", "Bytes of admitted packets, by direction and datapath.",
                ["direction", "datapath"]),
        )  # fmt: skip


@dataclass
class MetricsServer:
    """A running /metrics endpoint."""

    address: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    port: int = DEFAULT_PORT,
    addr: str = "0.0.0.0",
    *,
    metrics: Metrics | None = None,
    registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Serve `/metrics` on addr:port in a daemon thread.  Port 0 picks a free port."""
    reg = registry or (metrics.registry if metrics is not None else None)
    if reg is None:
        raise ValueError("start_metrics_server needs metrics= or registry=")
    server, thread = start_http_server(port, addr=addr, registry=reg)
    return MetricsServer(addr, int(server.server_port), server, thread)
