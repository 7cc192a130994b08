"""Prometheus metrics for the agent and `warrant listen`: what Hubble's metrics say, for Warrant.

    metrics = Metrics()
    metrics.track(sessions=lambda: len(receiver.sessions),
                  queue_depth=lambda: listener.init_queue_depth())
    listener = await listen(host, port, receiver, on_flow=metrics.flow_sink(FlowSink(store)))
    server = start_metrics_server(9971, metrics=metrics)     # GET /metrics

Series (names follow Prometheus conventions; `reason` is Warrant's reason name,
`drop_reason` Hubble's DropReason name or the Warrant name where none fits):

    warrant_verdicts_total{verdict, reason, drop_reason, kind}   counter
    warrant_sessions_open                                        gauge
    warrant_slowpath_queue_depth                                 gauge
    warrant_packet_cost_seconds{kind}                            histogram
    warrant_datapath_verdicts_total{reason}                      counter (from the kernel's map)

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

from ..core.constants import REASONS
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
        self._datapath = _DatapathCollector()
        self.registry.register(self._datapath)

    # ---- counting --------------------------------------------------------------------------
    def observe_outcome(self, outcome: Outcome, cost: float | None = None) -> None:
        """Count one verdict from the receiver's Outcome (and its cost in seconds, if known)."""
        info = REASONS[outcome.reason]
        verdict = flow.verdict_name(outcome.verdict)
        drop = "" if verdict == "FORWARDED" else (info.hubble or info.name)
        self.verdicts.labels(verdict, outcome.reason.name, drop, outcome.kind).inc()
        if cost is not None:
            self.cost.labels(outcome.kind).observe(cost)

    def observe_flow(self, rec: Mapping[str, Any]) -> None:
        """Count one verdict from a flow record (what `on_flow` receives)."""
        self.verdicts.labels(
            str(rec.get("verdict", "")),
            flow.reason_of(dict(rec)),
            str(rec.get("drop_reason_desc", "")),
            str(rec.get("kind", "")),
        ).inc()

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

    def track_datapath(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Expose the kernel's per-reason counters (reason name -> packets) as a counter."""
        self._datapath.source = counts


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


class _DatapathCollector(Collector):
    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] | None = None

    def describe(self) -> Iterable[Any]:
        return [self._family()]

    def collect(self) -> Iterator[Any]:
        fam = self._family()
        if self.source is not None:
            try:
                counts = dict(self.source())
            except Exception:  # a scrape must not fail because the map went away
                counts = {}
            for reason, n in sorted(counts.items()):
                fam.add_metric([reason], float(n))
        yield fam

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            f"{NAMESPACE}_datapath_verdicts",
            "Packets judged in the kernel datapath, by reason (read from its counters map).",
            labels=["reason"],
        )


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
