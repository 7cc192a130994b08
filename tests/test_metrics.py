"""Prometheus metrics: count verdicts, drops and forwards (direction, bytes) once per packet,
read gauges and the kernel's counters at scrape time, serve /metrics on 127.0.0.1."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_flow_schema import DST, NOW, OUTCOMES, SRC
from warrant.core.constants import Reason, Verdict
from warrant.datapath.agent import Agent, AgentStats
from warrant.datapath.loader import Event
from warrant.integration import flow
from warrant.integration.metrics import Metrics, MetricsServer, start_metrics_server

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "warrant.json"


@pytest.fixture
def served() -> Iterator[tuple[Metrics, MetricsServer]]:
    m = Metrics()
    server = start_metrics_server(0, "127.0.0.1", metrics=m)
    try:
        yield m, server
    finally:
        server.close()


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.url, timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(
    data: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return data.get((name, tuple(sorted(labels.items()))), 0.0)


def test_scrape_counts_verdicts_gauges_and_cost(served: tuple[Metrics, MetricsServer]) -> None:
    m, server = served
    m.observe_outcome(OUTCOMES["init-admit"], cost=0.0008)
    m.observe_outcome(OUTCOMES["data-admit"], cost=2e-6)
    m.observe_outcome(OUTCOMES["data-replay"], cost=1e-6)
    m.observe_outcome(OUTCOMES["data-unknown-session"])
    sessions, depth = [3], [7]
    m.track(sessions=lambda: sessions[0], queue_depth=lambda: depth[0])
    m.track_datapath(lambda: {(Verdict.DROP, Reason.BAD_MAC): (41, 4100),
                              (Verdict.ADMIT, Reason.OK): (1000, 90_000)})  # fmt: skip

    data = scrape(server)
    total = "warrant_verdicts_total"
    fwd = {"verdict": "FORWARDED", "reason": "OK", "drop_reason": ""}
    assert sample(data, total, **fwd, kind="INIT") == 1
    assert sample(data, total, **fwd, kind="DATA") == 1
    assert sample(data, total, verdict="DROPPED", reason="REPLAY", drop_reason="",
                  kind="DATA") == 1  # fmt: skip
    assert sample(data, total, verdict="DROPPED", reason="UNKNOWN_SESSION",
                  drop_reason="AUTH_REQUIRED", kind="DATA") == 1  # fmt: skip
    assert sample(data, "warrant_sessions_open") == 3
    assert sample(data, "warrant_slowpath_queue_depth") == 7
    assert sample(data, "warrant_packet_cost_seconds_count", kind="DATA") == 2
    assert sample(data, "warrant_packet_cost_seconds_count", kind="INIT") == 1
    assert sample(data, "warrant_packet_cost_seconds_bucket", kind="DATA", le="2.5e-06") == 2
    assert sample(data, "warrant_packet_cost_seconds_bucket", kind="DATA", le="1e-06") == 1
    assert sample(data, "warrant_datapath_verdicts_total", reason="BAD_MAC") == 41
    kernel = {"direction": "INGRESS", "datapath": "kernel"}
    assert sample(data, "warrant_drop_count_total", reason="BAD_MAC", drop_reason="",
                  **kernel) == 41  # fmt: skip
    assert sample(data, "warrant_drop_bytes_total", reason="BAD_MAC", drop_reason="",
                  **kernel) == 4100  # fmt: skip
    assert sample(data, "warrant_forward_count_total", **kernel) == 1000
    assert sample(data, "warrant_forward_bytes_total", **kernel) == 90_000
    user = {"direction": "INGRESS", "datapath": "user"}
    assert sample(data, "warrant_drop_count_total", reason="UNKNOWN_SESSION",
                  drop_reason="AUTH_REQUIRED", **user) == 1  # fmt: skip
    assert sample(data, "warrant_forward_count_total", **user) == 2
    size = OUTCOMES["init-admit"].size + OUTCOMES["data-admit"].size
    assert sample(data, "warrant_forward_bytes_total", **user) == size

    sessions[0], depth[0] = 5, 0  # gauges are read at scrape time
    data = scrape(server)
    assert sample(data, "warrant_sessions_open") == 5
    assert sample(data, "warrant_slowpath_queue_depth") == 0


def test_flow_sink_counts_and_forwards(served: tuple[Metrics, MetricsServer]) -> None:
    m, server = served
    seen: list[dict[str, object]] = []
    sink = m.flow_sink(seen.append)
    for name in ("data-admit", "data-bad-mac", "init-unknown-anchor"):
        sink(flow.record(OUTCOMES[name], SRC, DST, NOW))
    assert len(seen) == 3
    data = scrape(server)
    assert sample(data, "warrant_verdicts_total", verdict="DROPPED", reason="UNKNOWN_ANCHOR",
                  drop_reason="INVALID_IDENTITY", kind="INIT") == 1  # fmt: skip
    assert sample(data, "warrant_verdicts_total", verdict="DROPPED", reason="BAD_MAC",
                  drop_reason="", kind="DATA") == 1  # fmt: skip
    assert sample(data, "warrant_drop_bytes_total", reason="BAD_MAC", drop_reason="",
                  direction="INGRESS", datapath="user") == OUTCOMES["data-bad-mac"].size  # fmt: skip


def test_a_failing_datapath_source_does_not_break_the_scrape(
    served: tuple[Metrics, MetricsServer],
) -> None:
    m, server = served
    m.observe_outcome(OUTCOMES["data-admit"])

    def broken() -> dict[str, int]:
        raise OSError("map gone")

    m.track_datapath(broken)
    data = scrape(server)
    assert sample(data, "warrant_verdicts_total", verdict="FORWARDED", reason="OK",
                  drop_reason="", kind="DATA") == 1  # fmt: skip
    assert not [k for k in data if k[0] == "warrant_datapath_verdicts_total"]


def test_two_metrics_objects_do_not_collide() -> None:
    a, b = Metrics(), Metrics()
    a.observe_outcome(OUTCOMES["data-admit"])
    assert b.verdicts.labels("FORWARDED", "OK", "", "DATA")._value.get() == 0


def test_grafana_dashboard_queries_only_metrics_we_export(
    served: tuple[Metrics, MetricsServer],
) -> None:
    """Every series the dashboard asks for is one a live scrape has (after one admit, one
    drop and a kernel counters source): a renamed metric cannot leave a panel empty."""
    m, server = served
    m.observe_outcome(OUTCOMES["init-admit"], cost=0.0008)
    m.observe_outcome(OUTCOMES["data-admit"], cost=2e-6)
    m.observe_outcome(OUTCOMES["data-replay"], cost=1e-6)
    kernel = FakeDatapath()
    kernel.drop(Reason.BAD_MAC, 80)
    kernel.counts[(Verdict.ADMIT, Reason.OK)] = (1, 90)
    m.track_datapath(kernel.counters)
    m.track(sessions=lambda: 1, queue_depth=lambda: 0)
    exported = {name for name, _ in scrape(server)}
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"warrant_[a-z_]+", e)}
    assert used and used <= exported, used - exported
    # the headline rates come from the once-per-packet families, not user space's verdicts
    assert {"warrant_forward_count_total", "warrant_drop_count_total"} <= used
    assert board["uid"] and board["title"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"] if "targets" in p)


# ---- each packet counted once ------------------------------------------------------------------
def drops(data: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    """Every dropped packet any exporter reports, summed over all label sets."""
    return sum(v for (name, _), v in data.items() if name == "warrant_drop_count_total")


class FakeDatapath:
    """The kernel side of one dropped packet: its counters map slot and its ring-buffer event."""

    def __init__(self) -> None:
        self.counts: dict[tuple[Verdict, Reason], tuple[int, int]] = {}
        self.pending: list[Event] = []

    def drop(self, reason: Reason, length: int) -> None:
        packets, size = self.counts.get((Verdict.DROP, reason), (0, 0))
        self.counts[(Verdict.DROP, reason)] = (packets + 1, size + length)
        self.pending.append(Event(bytes(8), 0, 0, bytes([10, 0, 0, 7]), bytes([10, 0, 0, 9]),
                                  40000, 8443, Verdict.DROP, reason, 2, 0, length))  # fmt: skip

    def counters(self) -> dict[tuple[Verdict, Reason], tuple[int, int]]:
        return dict(self.counts)

    def events(self) -> list[Event]:
        out, self.pending = self.pending, []
        return out


class NoSessions:
    def admitted(self, session_id: bytes) -> None:
        return None


def kernel_agent(metrics: Metrics, dp: FakeDatapath, sink: Any) -> Agent:
    """The agent's own recording code (kernel_outcomes -> record) over a fake datapath: no
    BPF needed to check what it counts."""
    agent = object.__new__(Agent)
    agent.dp, agent.metrics, agent._sink, agent.node = dp, metrics, sink, "n"  # type: ignore[assignment]
    agent.stats, agent.events, agent.store = AgentStats(), False, NoSessions()  # type: ignore[assignment]
    metrics.track_datapath(dp.counters)
    return agent


def test_one_kernel_drop_moves_the_drop_counters_by_exactly_one(
    served: tuple[Metrics, MetricsServer],
) -> None:
    m, server = served
    records: list[dict[str, Any]] = []
    dp = FakeDatapath()
    agent = kernel_agent(m, dp, records.append)
    before = scrape(server)
    dp.drop(Reason.BAD_MAC, 96)  # the kernel counts it in its map and reports the event ...
    out = agent.kernel_outcomes()  # ... which the agent turns into a flow record
    assert [o.reason for o, _, _ in out] == [Reason.BAD_MAC] and len(records) == 1
    after = scrape(server)
    assert drops(after) - drops(before) == 1
    assert sample(after, "warrant_drop_bytes_total", reason="BAD_MAC", drop_reason="",
                  direction="INGRESS", datapath="kernel") == 96  # fmt: skip
    assert not [k for k in after if k[0] == "warrant_verdicts_total"]  # not again in user space


@pytest.mark.parametrize("path", ["observe_outcome", "flow_sink"])
def test_one_user_space_drop_moves_the_drop_counters_by_exactly_one(
    served: tuple[Metrics, MetricsServer], path: str
) -> None:
    m, server = served
    seen: list[dict[str, Any]] = []
    before = drops(scrape(server))
    if path == "observe_outcome":  # the agent's way
        m.observe_outcome(OUTCOMES["data-replay"], cost=1e-6)
    else:  # `warrant listen --metrics`'s way: the counting flow sink
        m.flow_sink(seen.append)(flow.record(OUTCOMES["data-replay"], SRC, DST, NOW))
    data = scrape(server)
    assert drops(data) - before == 1
    assert sample(data, "warrant_drop_count_total", reason="REPLAY", drop_reason="",
                  direction="INGRESS", datapath="user") == 1  # fmt: skip


def test_kernel_admitted_data_is_counted_by_the_kernel_only(
    served: tuple[Metrics, MetricsServer],
) -> None:
    m, server = served
    m.track_datapath(lambda: {(Verdict.ADMIT, Reason.OK): (1, 120)})
    m.observe_outcome(OUTCOMES["data-admit"], cost=3e-6, in_kernel=True)  # opened at the socket
    data = scrape(server)
    forwards = sum(v for (n, _), v in data.items() if n == "warrant_forward_count_total")
    assert forwards == 1
    assert sample(data, "warrant_packet_cost_seconds_count", kind="DATA") == 1
