"""The Observer gRPC server, driven by a gRPC client built from the observer.proto stubs on
127.0.0.1 (port 0): GetFlows with number/first/follow, whitelist/blacklist filters,
since/until; ServerStatus; UNIMPLEMENTED for what it does not serve; INVALID_ARGUMENT
for filters it cannot apply; and `warrant observe --serve` as a process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from test_flow_schema import DST, NOW, OUTCOMES
from warrant import __version__
from warrant.integration import flow
from warrant.integration.flowstore import FlowStore
from warrant.integration.observer import ObserverServer
from warrant.integration.proto.flow import flow_pb2
from warrant.integration.proto.observer import observer_pb2, observer_pb2_grpc
from warrant.integration.proto.warrantflow import extension_pb2

PEERS = [  # (outcome, source)
    ("data-admit", ("10.0.0.7", 40000)),
    ("data-replay", ("10.0.0.7", 40001)),
    ("data-bad-mac", ("10.0.1.5", 53)),
    ("data-unknown-session", ("192.168.9.9", 40000)),
    ("init-admit", ("fd00::7", 8443)),
]
FF = flow_pb2.FlowFilter


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FlowStore]:
    s = FlowStore(tmp_path / "flows.db", max_age=None, max_rows=1000)
    for i, (name, src) in enumerate(PEERS):
        s.add(flow.record(OUTCOMES[name], src, DST, NOW + i, "node-1"))
    yield s
    s.close()


@pytest.fixture
def server(store: FlowStore) -> Iterator[ObserverServer]:
    srv = ObserverServer.start(str(store.path), "127.0.0.1:0", max_flows=1000, poll_interval=0.02)
    yield srv
    srv.stop()


@pytest.fixture
def stub(server: ObserverServer) -> Iterator[Any]:
    with grpc.insecure_channel(server.address) as channel:
        yield observer_pb2_grpc.ObserverStub(channel)


def get(stub: Any, **request: Any) -> list[observer_pb2.GetFlowsResponse]:
    return list(stub.GetFlows(observer_pb2.GetFlowsRequest(**request), timeout=10))


def sources(responses: list[observer_pb2.GetFlowsResponse]) -> list[str]:
    return [r.flow.IP.source for r in responses]


ALL = [s for _, (s, _) in PEERS]


def test_get_flows_sends_hubble_flows_with_the_warrant_extension(stub: Any) -> None:
    got = get(stub)
    assert sources(got) == ALL
    for r in got:
        assert r.node_name == "node-1" and r.time == r.flow.time
        # what the server sent is, field for field, the record in the store
        assert r.flow.l4.UDP.destination_port == 8443 and r.flow.Type == flow_pb2.L3_L4
    bad_mac = got[2].flow
    assert bad_mac.verdict == flow_pb2.DROPPED
    assert bad_mac.drop_reason_desc == flow_pb2.DROP_REASON_UNKNOWN
    ext = extension_pb2.FlowExtension()
    assert bad_mac.extensions.Unpack(ext)
    assert ext.reason == "BAD_MAC" and ext.authority.scope == "acme.prod"
    assert got[3].flow.drop_reason_desc == flow_pb2.AUTH_REQUIRED


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"number": 2}, ALL[-2:]),
        ({"number": 2, "first": True}, ALL[:2]),
        ({"number": 100}, ALL),
        ({"whitelist": [FF(verdict=[flow_pb2.DROPPED])]}, ALL[1:4]),
        ({"whitelist": [FF(source_ip=["10.0.0.0/16"])]}, ALL[:3]),
        ({"whitelist": [FF(source_ip=["10.0.1.5"]), FF(ip_version=[flow_pb2.IPv6])]},
            ["10.0.1.5", "fd00::7"]),  # any whitelist filter
        ({"whitelist": [FF(source_ip=["10.0.0.7"], verdict=[flow_pb2.FORWARDED])]},
            ["10.0.0.7"]),  # all fields of one filter
        ({"whitelist": [FF(destination_ip=["10.0.0.9/32"], destination_port=["8443"])]}, ALL),
        ({"whitelist": [FF(source_port=["53", "8443"])]}, ["10.0.1.5", "fd00::7"]),
        ({"whitelist": [FF(protocol=["UDP"])]}, ALL),
        ({"whitelist": [FF(protocol=["tcp"])]}, []),
        ({"whitelist": [FF(traffic_direction=[flow_pb2.INGRESS])]}, ALL),
        ({"whitelist": [FF(node_name=["node-*"])]}, ALL),
        ({"whitelist": [FF(node_name=["other-*"])]}, []),
        ({"blacklist": [FF(verdict=[flow_pb2.FORWARDED])]}, ALL[1:4]),
        ({"blacklist": [FF(source_ip=["10.0.0.0/8"]), FF(ip_version=[flow_pb2.IPv6])]},
            ["192.168.9.9"]),  # any blacklist filter excludes
        ({"whitelist": [FF(verdict=[flow_pb2.DROPPED])],
          "blacklist": [FF(source_port=["40000"])]}, ["10.0.0.7", "10.0.1.5"]),
        ({"whitelist": [FF(verdict=[flow_pb2.DROPPED])], "number": 1}, ["192.168.9.9"]),
    ],
)  # fmt: skip
def test_get_flows_filters(stub: Any, request_: dict[str, Any], expected: list[str]) -> None:
    assert sources(get(stub, **request_)) == expected


def test_since_until(stub: Any) -> None:
    def stamp(t: float) -> Any:
        msg = observer_pb2.GetFlowsRequest().since
        msg.FromNanoseconds(int(t * 1e9))
        return msg

    assert sources(get(stub, since=stamp(NOW + 3))) == ALL[3:]
    assert sources(get(stub, until=stamp(NOW + 1))) == ALL[:2]
    got = get(stub, since=stamp(NOW + 1), until=stamp(NOW + 3),
              whitelist=[FF(verdict=[flow_pb2.DROPPED])])  # fmt: skip
    assert sources(got) == ALL[1:4]


def test_follow_streams_new_flows_and_stops_on_cancel(stub: Any, store: FlowStore) -> None:
    call = stub.GetFlows(observer_pb2.GetFlowsRequest(
        number=1, follow=True, whitelist=[FF(verdict=[flow_pb2.DROPPED])]), timeout=20)  # fmt: skip
    got: list[str] = []
    done = threading.Event()

    def read() -> None:
        try:
            for r in call:
                got.append(r.flow.IP.source)
                if len(got) == 3:
                    break
        finally:
            done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    store.add(flow.record(OUTCOMES["data-admit"], ("10.9.9.1", 1), DST, NOW + 10, "n"))  # filtered
    store.add(flow.record(OUTCOMES["data-bad-mac"], ("10.9.9.2", 2), DST, NOW + 11, "n"))
    store.add(flow.record(OUTCOMES["data-replay"], ("10.9.9.3", 3), DST, NOW + 12, "n"))
    assert done.wait(10), got
    assert got == ["192.168.9.9", "10.9.9.2", "10.9.9.3"]
    call.cancel()


def test_server_status(stub: Any, store: FlowStore) -> None:
    status = stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
    assert (status.num_flows, status.max_flows, status.seen_flows) == (5, 1000, 5)
    assert status.uptime_ns > 0 and status.version == f"warrant {__version__}"
    store.add(flow.record(OUTCOMES["data-admit"], ("10.9.9.1", 1), DST, NOW + 10, "n"))
    later = stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
    assert (later.num_flows, later.seen_flows) == (6, 6) and later.uptime_ns > status.uptime_ns


def test_unimplemented_rpcs(server: ObserverServer, stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.GetNodes(observer_pb2.GetNodesRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # Hubble's other RPCs (not declared here) reach the server by their method path
    with grpc.insecure_channel(server.address) as channel:
        events = channel.unary_stream("/observer.Observer/GetAgentEvents",
                                      request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)  # fmt: skip
        with pytest.raises(grpc.RpcError) as err:
            list(events(b"", timeout=5))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _with_unknown_field(msg: Message, number: int, value: bytes) -> bytes:
    """`msg` serialized with one more length-delimited field `number` (a field of Cilium's
    message that this server's proto does not declare, e.g. FlowFilter.source_pod = 2)."""
    key = bytes([(number << 3) | 2])
    return msg.SerializeToString() + key + bytes([len(value)]) + value


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"first": True, "follow": True}, "first cannot be combined with follow"),
        ({"whitelist": [FF(source_ip=["10.0.0.300"])]}, "not an IP address"),
        ({"blacklist": [FF(destination_port=["http"])]}, "not a number"),
        ({"whitelist": [FF(source_port=["70000"])]}, "out of range"),
    ],
)
def test_filters_it_cannot_apply_are_refused(
    stub: Any, request_: dict[str, Any], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        get(stub, **request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in str(err.value.details())


@pytest.mark.parametrize("where", ["whitelist", "blacklist", "request"])
def test_an_unknown_filter_field_is_refused_not_ignored(server: ObserverServer, where: str) -> None:
    # source_pod (FlowFilter field 2) in Hubble's proto: this server cannot apply it, so it
    # must not answer as if it were absent (that would send flows the client excluded)
    if where == "request":
        raw = _with_unknown_field(observer_pb2.GetFlowsRequest(), 10, b"\x0a\x01x")  # field_mask
    else:
        number = 6 if where == "whitelist" else 5
        flt = _with_unknown_field(FF(), 2, b"kube-system/")
        raw = observer_pb2.GetFlowsRequest().SerializeToString()
        raw += bytes([(number << 3) | 2, len(flt)]) + flt
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_stream("/observer.Observer/GetFlows",
                                    request_serializer=lambda b: b,
                                    response_deserializer=observer_pb2.GetFlowsResponse.FromString)  # fmt: skip
        with pytest.raises(grpc.RpcError) as err:
            list(call(raw, timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not implement" in str(err.value.details())


def test_records_that_are_not_hubble_flows_are_skipped(server: ObserverServer, stub: Any,
                                                       store: FlowStore) -> None:  # fmt: skip
    old = flow.record(OUTCOMES["data-admit"], ("10.9.9.9", 1), DST, NOW + 20, "n")
    old["reason"] = "OK"  # a record of an older Warrant: a field Hubble's Flow does not have
    store.add(old)
    assert sources(get(stub)) == ALL
    assert server.service.skipped == 1


def test_the_wire_flow_is_the_json_record(stub: Any, store: FlowStore) -> None:
    rows = store.query()
    for row, r in zip(rows, get(stub), strict=True):
        assert flow.to_dict(r.flow) == row.record
        assert json_format.MessageToDict(r, preserving_proto_field_name=True) == (
            flow.get_flows_response(row.record)
        )


def test_warrant_observe_serve(store: FlowStore, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "warrant.cli", "observe", "--serve", "127.0.0.1:0",
         "--store", str(store.path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = json.loads(proc.stderr.readline())
        assert line["observer"] == "listening"
        with grpc.insecure_channel(line["address"]) as channel:
            got = get(observer_pb2_grpc.ObserverStub(channel), number=1)
        assert sources(got) == ALL[-1:]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_on_a_bad_address_is_one_line(store: FlowStore) -> None:
    with socket.socket() as taken:  # a port another program listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        proc = subprocess.run(
            [sys.executable, "-m", "warrant.cli", "observe", "--serve", address,
             "--store", str(store.path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"cannot listen on {address}" in proc.stderr and "Traceback" not in proc.stderr
