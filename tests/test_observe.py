"""The flow store and `warrant observe`: filters (Warrant's and Hubble's, with --not),
bounds, export, follow, and a real listener; every JSON line it prints is a strict
observer.GetFlowsResponse."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from typer.testing import CliRunner

from flow_helpers import flat
from test_flow_schema import NOW, OUTCOMES, SRC, make_world, strict
from warrant.cli import app
from warrant.cli.observe import parse_line, parse_since
from warrant.core.constants import Reason, Verdict
from warrant.core.receiver import Outcome
from warrant.integration import flow
from warrant.integration.flowstore import FlowFilter, FlowSink, FlowStore, FlowStoreError
from warrant.integration.proto.observer import observer_pb2

DST = ("10.0.0.9", 8443)
runner = CliRunner()


def rec(name: str, t: float = NOW, src: tuple[str, int] = SRC) -> dict[str, Any]:
    return flow.record(OUTCOMES[name], src, DST, t, "node-1")


def reasons(rows: list[Any]) -> list[str]:
    return [flow.reason_of(r.record) for r in rows]


@pytest.fixture
def store(tmp_path: Path) -> FlowStore:
    s = FlowStore(tmp_path / "flows.db", max_age=None)
    for i, name in enumerate(sorted(OUTCOMES)):
        s.add(rec(name, NOW + i))
    return s


def observe(*args: str) -> Any:
    return runner.invoke(app, ["observe", *args], catch_exceptions=False)


# ---- the store -----------------------------------------------------------------------------
def test_query_returns_everything_oldest_first(store: FlowStore) -> None:
    rows = store.query()
    assert len(rows) == len(OUTCOMES)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert rows[0].record == rec(sorted(OUTCOMES)[0], NOW) | {"uuid": rows[0].record["uuid"]}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (FlowFilter(verdicts=("FORWARDED",)), {"OK"}),
        (FlowFilter(verdicts=("dropped",)), {"BAD_MAC", "HOP_CHAIN_BROKEN", "PORT_MISMATCH",
            "REPLAY", "UNKNOWN_SESSION", "UNKNOWN_ANCHOR", "TRUNCATED", "UNKNOWN_KIND"}),
        (FlowFilter(reasons=("BAD_MAC", "replay")), {"BAD_MAC", "REPLAY"}),
        (FlowFilter(reasons=("INVALID_PACKET_DROPPED",)), {"TRUNCATED", "UNKNOWN_KIND"}),
        (FlowFilter(reasons=("AUTH_REQUIRED",)), {"UNKNOWN_SESSION"}),
        (FlowFilter(scopes=("acme.prod",), verdicts=("DROPPED",)),
            {"BAD_MAC", "HOP_CHAIN_BROKEN", "PORT_MISMATCH", "REPLAY"}),
        (FlowFilter(scopes=("other.prod",)), set()),
        (FlowFilter(operations=("orders.read",), reasons=("OK",)), {"OK"}),
        (FlowFilter(from_domains=("b.net",), verdicts=("DROPPED",)),
            {"BAD_MAC", "HOP_CHAIN_BROKEN", "PORT_MISMATCH", "REPLAY"}),
        (FlowFilter(from_domains=("a",)), set()),  # whole domains only, not substrings
        (FlowFilter(kinds=("INIT",)), {"OK", "UNKNOWN_ANCHOR"}),
    ],
)  # fmt: skip
def test_filters(store: FlowStore, flt: FlowFilter, expected: set[str]) -> None:
    assert set(reasons(store.query(flt))) == expected


def test_since_until_and_last(store: FlowStore) -> None:
    names = sorted(OUTCOMES)
    assert reasons(store.query(FlowFilter(since=NOW + 8))) == [
        OUTCOMES[n].reason.name for n in names[8:]
    ]
    assert len(store.query(FlowFilter(until=NOW + 1))) == 2
    last = store.query(last=3)
    assert [r.record["time"] for r in last] == [flow.rfc3339(NOW + i) for i in (7, 8, 9)]
    assert len(store.query(FlowFilter(verdicts=("FORWARDED",)), last=1)) == 1
    assert store.query(after_id=store.last_id()) == []


def test_bounded_by_rows_keeps_the_newest(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "f.db", max_rows=100, max_age=None)
    r = rec("data-admit")
    for i in range(1000):
        s.add(r | {"seq": i})
        assert s.stats().rows <= 100
    rows = s.query(FlowFilter(), first=1000)
    assert rows[-1].record["seq"] == 999
    assert [x.record["seq"] for x in rows] == list(range(1000 - len(rows), 1000))
    assert s.stats().pruned == 1000 - len(rows)


def test_bounded_by_size(tmp_path: Path) -> None:
    one = len(json.dumps(rec("data-admit"), separators=(",", ":")))
    s = FlowStore(tmp_path / "f.db", max_bytes=50 * one, max_age=None)
    s.add_many([rec("data-admit") for _ in range(500)])
    st = s.stats()
    assert st.bytes <= 50 * one and 0 < st.rows <= 50
    s.close()
    # the file does not grow without bound either (freed pages are reused or vacuumed)
    s = FlowStore(tmp_path / "f.db", max_bytes=50 * one, max_age=None)
    for _ in range(20):
        s.add_many([rec("data-admit") for _ in range(100)])
    size = os.path.getsize(tmp_path / "f.db")
    assert size < 2_000_000


def test_retention_by_age(tmp_path: Path) -> None:
    clock = [NOW]
    s = FlowStore(tmp_path / "f.db", max_age=60, clock=lambda: clock[0])
    s.add(rec("data-admit", NOW - 120))  # already too old
    s.add(rec("data-admit", NOW - 30))
    clock[0] = NOW + 2
    s.add(rec("data-admit", NOW + 1))
    assert [r.record["time"] for r in s.query()] == [flow.rfc3339(NOW - 30), flow.rfc3339(NOW + 1)]


def test_reopen_keeps_rows_and_counters(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "f.db", max_rows=10, max_age=None)
    s.add_many([rec("data-admit")] * 8)
    s.close()
    s = FlowStore(tmp_path / "f.db", max_rows=10, max_age=None)
    s.add_many([rec("data-admit")] * 8)
    assert s.stats().rows <= 10


def test_export_jsonl_validates_and_round_trips(store: FlowStore) -> None:
    buf = io.StringIO()
    assert store.export_jsonl(buf) == len(OUTCOMES)
    lines = buf.getvalue().splitlines()
    for line in lines:
        strict(json.loads(line))
    assert [json.loads(x) for x in lines] == [r.record for r in store.query()]
    buf = io.StringIO()
    assert store.export_jsonl(buf, FlowFilter(reasons=("REPLAY",))) == 1


def test_readonly_store_refuses_writes_and_missing_files(tmp_path: Path, store: FlowStore) -> None:
    ro = FlowStore(store.path, readonly=True)
    assert len(ro.query()) == len(OUTCOMES)
    with pytest.raises(FlowStoreError):
        ro.add(rec("data-admit"))
    with pytest.raises(FlowStoreError, match="no flow store"):
        FlowStore(tmp_path / "missing.db", readonly=True)
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(FlowStoreError, match="not a Warrant flow store"):
        FlowStore(tmp_path / "junk.db")


def test_reader_sees_writer_while_it_writes(tmp_path: Path) -> None:
    w = FlowStore(tmp_path / "f.db", max_age=None)
    w.add(rec("data-admit"))
    r = FlowStore(tmp_path / "f.db", readonly=True)
    assert len(r.query()) == 1
    w.add(rec("data-replay"))
    assert reasons(r.query()) == ["OK", "REPLAY"]


def test_bad_bounds_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FlowStore(tmp_path / "f.db", max_rows=0)


# ---- the sink ------------------------------------------------------------------------------
def test_sink_batches_and_flushes(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "f.db", max_age=None)
    clock = [0.0]
    sink = FlowSink(s, batch=3, max_delay=10, clock=lambda: clock[0])
    sink(rec("data-admit"))
    sink(rec("data-admit"))
    assert s.stats().rows == 0
    sink(rec("data-admit"))
    assert s.stats().rows == 3
    sink(rec("data-replay"))
    clock[0] = 11
    sink(rec("data-replay"))  # the oldest pending record is now too old: write both
    assert s.stats().rows == 5
    sink(rec("data-admit"))
    sink.flush()
    assert s.stats().rows == 6 and sink.written == 6 and sink.errors == 0


def test_sink_never_raises_into_the_packet_path(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "f.db")
    sink = FlowSink(s, batch=1)
    s.close()
    sink(rec("data-admit"))
    assert sink.errors == 1


def test_listener_writes_its_flows_into_the_store(tmp_path: Path) -> None:
    """A real UDP listener with FlowSink as on_flow; then `warrant observe` reads them."""
    from warrant.shells.endpoint import listen

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    w = make_world(time.time(), port)
    store = FlowStore(tmp_path / "flows.db", max_age=None)

    async def run() -> None:
        listener = await listen("127.0.0.1", port, w.receiver, on_flow=FlowSink(store), node="n1")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        now = time.time()
        for packet in (
            w.direct_sender.open(b"first", now),  # admitted
            w.direct_sender.seal(b"second"),  # admitted
            w.sender.open(b"x", now),  # skipped its relays: the hop chain does not lead here
            b"\x01\x02",  # truncated
        ):
            sock.sendto(packet, ("127.0.0.1", port))
            await asyncio.sleep(0.05)
        for _ in range(200):
            if store.stats().rows >= 4:
                break
            await asyncio.sleep(0.01)
        got = [m.payload async for m in _take(listener, 2)]
        assert got == [b"first", b"second"]
        listener.close()
        sock.close()

    asyncio.run(run())
    rows = store.query()
    assert {r.record["node_name"] for r in rows} == {"n1"}
    got = reasons(rows)
    assert got == ["OK", "OK", "HOP_CHAIN_BROKEN", "TRUNCATED"], got
    assert flow.authority_of(rows[1].record)["scope"] == "acme.prod"
    for row in rows:
        strict(row.record)
    res = observe("--store", str(store.path), "-o", "jsonl", "--reason", "TRUNCATED")
    assert res.exit_code == 0
    assert [flat(json.loads(x))["reason"] for x in res.stdout.splitlines()] == ["TRUNCATED"]


async def _take(listener: Any, n: int) -> Any:
    for _ in range(n):
        yield await asyncio.wait_for(listener.receive(), 5)


# ---- the command ---------------------------------------------------------------------------
def test_observe_compact_default(store: FlowStore) -> None:
    res = observe("--store", str(store.path))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == len(OUTCOMES)
    admitted = [x for x in lines if "FORWARDED" in x]
    assert len(admitted) == 2
    assert all("acme.prod" in x and "orders.read" in x and "via a.net,b.net" in x for x in admitted)
    assert any("AUTH_REQUIRED/UNKNOWN_SESSION DROPPED" in x for x in lines)


def test_observe_default_is_the_last_twenty(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "f.db", max_age=None)
    s.add_many([rec("data-admit", NOW + i) for i in range(30)])
    res = observe("--store", str(s.path), "-o", "jsonl")
    times = [json.loads(x)["time"] for x in res.stdout.splitlines()]
    assert times == [flow.rfc3339(NOW + i) for i in range(10, 30)]
    res = observe("--store", str(s.path), "-o", "jsonl", "--all")
    assert len(res.stdout.splitlines()) == 30
    res = observe("--store", str(s.path), "-o", "jsonl", "--last", "2")
    assert len(res.stdout.splitlines()) == 2


def test_observe_json_is_hubble_get_flows_response(store: FlowStore) -> None:
    res = observe("--store", str(store.path), "-o", "json", "--verdict", "DROPPED")
    assert res.exit_code == 0
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == len(OUTCOMES) - 2
    for line, obj in zip(res.stdout.splitlines(), lines, strict=True):
        assert set(obj) == {"flow", "node_name", "time"}
        msg = json_format.Parse(line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=False)
        assert flow.to_dict(msg.flow) == obj["flow"]
        assert obj["flow"]["verdict"] == "DROPPED"


@pytest.mark.parametrize("fmt", ["json", "jsonpb", "jsonl"])
def test_observe_json_formats_all_print_get_flows_responses(store: FlowStore, fmt: str) -> None:
    res = observe("--store", str(store.path), "-o", fmt, "--all")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == len(OUTCOMES)
    for line in lines:
        msg = json_format.Parse(line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=False)
        assert msg.HasField("flow") and msg.node_name == "node-1"
        assert json.loads(line) == flow.get_flows_response(flow.to_dict(msg.flow))


def test_observe_table(store: FlowStore) -> None:
    res = observe("--store", str(store.path), "-o", "table", "--scope", "acme.prod")
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["TIMESTAMP", "SOURCE", "DESTINATION"]
    assert len(lines) == 1 + 6
    assert all("acme.prod orders.read" in x for x in lines[1:])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--reason", "BAD_MAC"], ["BAD_MAC"]),
        (["--reason", "policy_denied"], ["PORT_MISMATCH"]),
        (["--verdict", "FORWARDED", "--kind", "DATA"], ["OK"]),
        (["--operation", "orders.read", "--verdict", "DROPPED", "--reason", "REPLAY"], ["REPLAY"]),
        (["--from-domain", "a.net", "--reason", "HOP_CHAIN_BROKEN"], ["HOP_CHAIN_BROKEN"]),
        (["--since", flow.rfc3339(NOW + 9)], ["UNKNOWN_KIND"]),
        (["--since", str(NOW + 9)], ["UNKNOWN_KIND"]),
    ],
)
def test_observe_filters(store: FlowStore, args: list[str], expected: list[str]) -> None:
    res = observe("--store", str(store.path), "-o", "jsonl", *args)
    assert res.exit_code == 0, res.output
    assert [flat(json.loads(x))["reason"] for x in res.stdout.splitlines()] == expected


def test_observe_since_duration(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "f.db", max_age=None)
    now = time.time()
    s.add(rec("data-admit", now - 3600))
    s.add(rec("data-replay", now - 5))
    res = observe("--store", str(s.path), "-o", "jsonl", "--since", "1m")
    assert [flat(json.loads(x))["reason"] for x in res.stdout.splitlines()] == ["REPLAY"]


def test_observe_reads_jsonl_input_both_shapes(tmp_path: Path, store: FlowStore) -> None:
    bare = tmp_path / "flows.jsonl"
    with bare.open("w") as fh:
        store.export_jsonl(fh)
        fh.write("listening on 127.0.0.1:8443\n")  # not a flow: skipped, counted
    res = observe("--input", str(bare), "-o", "json", "--reason", "REPLAY")
    assert res.exit_code == 0
    wrapped = tmp_path / "wrapped.jsonl"
    wrapped.write_text(res.stdout)
    res2 = observe("--input", str(wrapped), "-o", "jsonl")
    assert [flat(json.loads(x))["reason"] for x in res2.stdout.splitlines()] == ["REPLAY"]
    res3 = observe("--input", str(bare), "-o", "jsonl", "--all")
    assert "skipped 1 lines" in res3.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "/nonexistent/flows.db"], "no flow store"),
        (["--verdict", "ALLOWED"], "unknown verdict 'ALLOWED'"),
        (["--reason", "NOPE"], "unknown reason 'NOPE'"),
        (["--since", "yesterday"], "neither a duration"),
        (["-o", "yaml"], "-o must be one of"),
        (["--input", "/nonexistent.jsonl"], "cannot read"),
    ],
)
def test_observe_errors_are_one_line(store: FlowStore, args: list[str], message: str) -> None:
    full = ["--store", str(store.path), *args] if args[0] != "--store" else args
    res = observe(*full)
    assert res.exit_code == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


def test_parse_since_units() -> None:
    assert parse_since("30s", 1000.0) == 970.0
    assert parse_since("2m", 1000.0) == 880.0
    assert parse_since("1h", 10_000.0) == 6400.0
    assert parse_since("1d", 100_000.0) == 13_600.0
    assert parse_since("1970-01-01T00:00:10Z", 0) == 10.0


def test_parse_line_shapes() -> None:
    r = rec("data-admit")
    assert parse_line(json.dumps(r)) == r
    assert parse_line(json.dumps(flow.get_flows_response(r))) == r
    assert parse_line("not json") is None
    assert parse_line('{"hello": 1}') is None


def test_observe_follow_prints_new_flows(tmp_path: Path) -> None:
    """`-f` against a store another process keeps writing into."""
    s = FlowStore(tmp_path / "f.db", max_age=None)
    s.add(rec("data-admit", NOW))
    proc = subprocess.Popen(
        [sys.executable, "-m", "warrant.cli", "observe", "--store", str(s.path), "-f",
         "-o", "jsonl", "--verdict", "DROPPED", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        s.add(rec("data-replay", NOW + 1))
        s.add(rec("data-admit", NOW + 2))  # filtered out
        s.add(rec("data-bad-mac", NOW + 3))
        assert proc.stdout is not None
        got = [flat(json.loads(proc.stdout.readline()))["reason"] for _ in range(2)]
        assert got == ["REPLAY", "BAD_MAC"]
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_every_reason_can_be_stored_and_found(tmp_path: Path) -> None:
    s = FlowStore(tmp_path / "f.db", max_age=None)
    authority = OUTCOMES["init-admit"].authority
    for r in Reason:
        if r in (Reason.OK, Reason.NOT_WARRANT):
            continue
        s.add(flow.record(Outcome(Verdict.DROP, r, "DATA", 1, authority=authority), SRC, DST,
                          NOW))  # fmt: skip
    for r in Reason:
        if r in (Reason.OK, Reason.NOT_WARRANT):
            continue
        found = reasons(s.query(FlowFilter(reasons=(r.name,))))
        if r.name in flow.HUBBLE_DROP_REASONS:  # POLICY_DENIED: Warrant's and Hubble's name
            assert r.name in found and len(found) > 1
        else:
            assert found == [r.name]


# ---- Hubble's filters --------------------------------------------------------------------------
PEERS = [  # (outcome, source)
    ("data-admit", ("10.0.0.7", 40000)),
    ("data-replay", ("10.0.0.7", 40001)),
    ("data-bad-mac", ("10.0.1.5", 53)),
    ("data-unknown-session", ("192.168.9.9", 40000)),
    ("data-admit", ("fd00::7", 8443)),
]


@pytest.fixture
def peers(tmp_path: Path) -> FlowStore:
    s = FlowStore(tmp_path / "peers.db", max_age=None)
    for i, (name, src) in enumerate(PEERS):
        s.add(flow.record(OUTCOMES[name], src, DST, NOW + i, "node-1"))
    return s


def sources(rows: list[Any]) -> list[str]:
    return [r.record["IP"]["source"] for r in rows]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (FlowFilter(source_ips=("10.0.0.7",)), ["10.0.0.7", "10.0.0.7"]),
        (FlowFilter(source_ips=("10.0.0.0/16",)), ["10.0.0.7", "10.0.0.7", "10.0.1.5"]),
        (FlowFilter(source_ips=("fd00::/64", "192.168.0.0/16")), ["192.168.9.9", "fd00::7"]),
        (FlowFilter(destination_ips=("10.0.0.9",)), [s for _, (s, _) in PEERS]),
        (FlowFilter(destination_ips=("10.0.0.8/32",)), []),
        (FlowFilter(ports=(53,)), ["10.0.1.5"]),
        (FlowFilter(ports=(8443,)), [s for _, (s, _) in PEERS]),  # every destination port
        (FlowFilter(source_ports=(8443,)), ["fd00::7"]),
        (FlowFilter(source_ports=(40000,), verdicts=("DROPPED",)), ["192.168.9.9"]),
        (FlowFilter(destination_ports=(40000,)), []),
        (FlowFilter(protocols=("udp",)), [s for _, (s, _) in PEERS]),
        (FlowFilter(protocols=("tcp",)), []),
        (FlowFilter(protocols=("http",)), []),
        (FlowFilter(ip_versions=("IPv6",)), ["fd00::7"]),
        (FlowFilter(node_names=("node-*",)), [s for _, (s, _) in PEERS]),
        (FlowFilter(node_names=("other",)), []),
        (FlowFilter(directions=("EGRESS",)), []),
    ],
)  # fmt: skip
def test_hubble_filters_in_the_store(
    peers: FlowStore, flt: FlowFilter, expected: list[str]
) -> None:
    assert sources(peers.query(flt)) == expected


def test_whitelist_any_blacklist_none(peers: FlowStore) -> None:
    include = [FlowFilter(source_ips=("10.0.1.5",)), FlowFilter(ip_versions=("IPv6",))]
    assert sources(peers.query(include)) == ["10.0.1.5", "fd00::7"]
    exclude = [FlowFilter(verdicts=("FORWARDED",)), FlowFilter(ports=(53,))]
    assert sources(peers.query(exclude=exclude)) == ["10.0.0.7", "192.168.9.9"]
    assert sources(peers.query(include, exclude=exclude)) == []


@pytest.mark.parametrize("bad", [FlowFilter, "10.0.0.300", "10.0.0.0/33", "host.example"])
def test_bad_ip_filters_are_refused(bad: Any) -> None:
    if bad is FlowFilter:
        with pytest.raises(ValueError, match="out of range"):
            FlowFilter(ports=(70000,))
        return
    with pytest.raises(ValueError, match="not an IP address"):
        FlowFilter(source_ips=(bad,))


def _sources(res: Any) -> list[str]:
    assert res.exit_code == 0, res.output
    return [json.loads(x)["flow"]["IP"]["source"] for x in res.stdout.splitlines()]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from-ip", "10.0.0.0/24"], ["10.0.0.7", "10.0.0.7"]),
        (["--from-ip", "10.0.1.5", "--from-ip", "fd00::7"], ["10.0.1.5", "fd00::7"]),
        (["--to-ip", "10.0.0.9", "--port", "53"], ["10.0.1.5"]),
        (["--from-port", "40000"], ["10.0.0.7", "192.168.9.9"]),
        (["--to-port", "8443", "--verdict", "DROPPED"], ["10.0.0.7", "10.0.1.5", "192.168.9.9"]),
        (["--protocol", "UDP", "--from-ip", "192.168.0.0/16"], ["192.168.9.9"]),
        (["--protocol", "tcp"], []),
        # --not negates the next filter only
        (["--not", "--from-ip", "10.0.0.0/8"], ["192.168.9.9", "fd00::7"]),
        (["--not", "--from-ip=10.0.0.0/8", "--verdict", "DROPPED"], ["192.168.9.9"]),
        (["--verdict", "DROPPED", "--not", "--reason", "REPLAY"], ["10.0.1.5", "192.168.9.9"]),
        # two negated filters leave out the flows matching both (Hubble's one blacklist filter)
        (["--not", "--from-ip", "10.0.0.7", "--not", "--verdict", "FORWARDED"],
            ["10.0.0.7", "10.0.1.5", "192.168.9.9", "fd00::7"]),
        (["--not", "--port", "40000", "--not", "--port", "53"], ["10.0.0.7", "fd00::7"]),
        (["--first", "2"], ["10.0.0.7", "10.0.0.7"]),
        (["--first", "1", "--verdict", "DROPPED", "--not", "--reason", "REPLAY"], ["10.0.1.5"]),
        (["--last", "1"], ["fd00::7"]),
    ],
)  # fmt: skip
def test_observe_hubble_filters(peers: FlowStore, args: list[str], expected: list[str]) -> None:
    assert _sources(observe("--store", str(peers.path), "-o", "jsonpb", *args)) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-ip", "10.0.0.300"], "not an IP address or CIDR"),
        (["--not", "--to-ip", "nope"], "not an IP address or CIDR"),
        (["--protocol", "sctp"], "unknown protocol 'sctp'"),
        (["--first", "2", "--follow"], "--first cannot be combined"),
        (["--first", "2", "--last", "1"], "--first cannot be combined"),
        (["--not", "--since", "5m"], "must be followed by a filter option"),
        (["--not"], "must be followed by a filter option"),
        (["--not", "--from-ip"], "--from-ip needs a value"),
        (["--serve", "127.0.0.1:0", "--verdict", "DROPPED"], "--serve takes no filters"),
    ],
)
def test_observe_hubble_filter_errors(peers: FlowStore, args: list[str], message: str) -> None:
    res = observe("--store", str(peers.path), *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.output
