"""Prometheus metrics: count verdicts, read gauges at scrape time, serve /metrics on 127.0.0.1."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_flow_schema import DST, NOW, OUTCOMES, SRC
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
    m.track_datapath(lambda: {"BAD_MAC": 41, "OK": 1000})

    data = scrape(server)
    total = "warrant_verdicts_total"
    fwd = {"verdict": "FORWARDED", "reason": "OK", "drop_reason": ""}
    assert sample(data, total, **fwd, kind="INIT") == 1
    assert sample(data, total, **fwd, kind="DATA") == 1
    assert sample(data, total, verdict="DROPPED", reason="REPLAY", drop_reason="REPLAY",
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
                  drop_reason="BAD_MAC", kind="DATA") == 1  # fmt: skip


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


def test_grafana_dashboard_queries_only_metrics_we_export() -> None:
    board = json.loads(DASHBOARD.read_text())
    exported = {"warrant_verdicts_total", "warrant_sessions_open", "warrant_slowpath_queue_depth",
                "warrant_packet_cost_seconds_bucket", "warrant_datapath_verdicts_total"}  # fmt: skip
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"warrant_[a-z_]+", e)}
    assert used == exported
    assert board["uid"] and board["title"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"] if "targets" in p)
