"""Hubble's Observer gRPC API over a Warrant flow store.

    server = ObserverServer.start("/var/run/warrant/flows.db", "127.0.0.1:4245")
    ...   # hubble observe --server 127.0.0.1:4245 --verdict DROPPED
    server.stop()

`warrant observe --serve ADDR` runs one.  It reads the store the agent (or `warrant
listen --flows`) writes, read-only, from its own process, and answers:

* `GetFlows`: `number` flows (the last ones, or with `first` the first ones; 0: all the
  store holds), then with `follow` every new one as it is written; `since`/`until`;
  `whitelist` (any filter may match; none: every flow) minus `blacklist` (no filter may
  match).  Filter fields implemented: uuid, source_ip, destination_ip (address or CIDR),
  source_port, destination_port, protocol, verdict, traffic_direction, node_name (glob),
  ip_version.  A request carrying any other FlowFilter field (it arrives as an unknown
  field, since proto/flow/flow.proto declares only these) is refused INVALID_ARGUMENT:
  an unapplied filter would answer with flows the client asked to leave out.  So are
  `first` with `follow` (as Hubble does), an unparsable address and a port out of range.
* `ServerStatus`: num_flows (rows in the store), max_flows (the bound the store was
  written with, given to `start`), seen_flows (flows ever written to the store: its row
  ids are never reused), uptime_ns (of this server), version.
* Every other RPC (GetNodes here; GetAgentEvents, GetDebugEvents, ... which the proto
  does not declare) answers UNIMPLEMENTED.

Records that are not Hubble flows (a store written by an older Warrant) are skipped and
counted in `skipped`, never sent half-formed.  Plaintext gRPC: bind it to loopback or
put it behind something that authenticates; Warrant adds no TLS here.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import json_format, unknown_fields
from google.protobuf.message import Message

from .. import __version__
from . import flow
from .flowstore import DEFAULT_MAX_ROWS, FlowFilter, FlowStore, StoredFlow
from .proto.flow import flow_pb2
from .proto.observer import observer_pb2, observer_pb2_grpc

FOLLOW_BATCH = 1000


class RequestError(ValueError):
    """A GetFlows request this server will not answer as asked (INVALID_ARGUMENT)."""


def _has_unknown(msg: Message) -> bool:
    return len(unknown_fields.UnknownFieldSet(msg)) > 0


def _ports(values: Any) -> tuple[int, ...]:
    out = []
    for v in values:
        try:
            out.append(int(v))
        except ValueError:
            raise RequestError(f"port {v!r} is not a number") from None
    return tuple(out)


def store_filter(f: flow_pb2.FlowFilter) -> FlowFilter:
    """A Hubble FlowFilter as the store's filter; RequestError if it cannot be applied."""
    if _has_unknown(f):
        raise RequestError("the filter sets a FlowFilter field this server does not implement")
    try:
        return FlowFilter(
            uuids=tuple(f.uuid),
            source_ips=tuple(f.source_ip),
            destination_ips=tuple(f.destination_ip),
            source_ports=_ports(f.source_port),
            destination_ports=_ports(f.destination_port),
            protocols=tuple(p.lower() for p in f.protocol),
            verdicts=tuple(flow_pb2.Verdict.Name(v) for v in f.verdict),
            directions=tuple(flow_pb2.TrafficDirection.Name(d) for d in f.traffic_direction),
            node_names=tuple(f.node_name),
            ip_versions=tuple(flow_pb2.IPVersion.Name(v) for v in f.ip_version),
        )
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def request_filters(
    req: observer_pb2.GetFlowsRequest,
) -> tuple[list[FlowFilter], list[FlowFilter]]:
    """(include, exclude) for a GetFlows request, with since/until folded into include."""
    if _has_unknown(req):
        raise RequestError(
            "the request sets a GetFlowsRequest field this server does not implement"
        )
    if req.first and req.follow:
        raise RequestError("first cannot be combined with follow")
    include = [store_filter(f) for f in req.whitelist]
    exclude = [store_filter(f) for f in req.blacklist]
    since = req.since.ToNanoseconds() / 1e9 if req.HasField("since") else None
    until = req.until.ToNanoseconds() / 1e9 if req.HasField("until") else None
    if since is not None or until is not None:
        include = [
            dataclasses.replace(f, since=since, until=until) for f in include or [FlowFilter()]
        ]
    return include, exclude


class ObserverService(observer_pb2_grpc.ObserverServicer):
    def __init__(self, store: FlowStore, *, max_flows: int, poll_interval: float = 0.2) -> None:
        self.store = store
        self.max_flows = max_flows
        self.poll_interval = poll_interval
        self.started = time.monotonic_ns()
        self.skipped = 0

    def GetFlows(
        self, request: observer_pb2.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[observer_pb2.GetFlowsResponse]:
        try:
            include, exclude = request_filters(request)
        except RequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        stop = threading.Event()
        context.add_callback(stop.set)
        head = self.store.last_id()
        number = request.number or None
        if request.first:
            rows = self.store.query(include, exclude=exclude, first=number, after_id=0)
        else:
            rows = self.store.query(include, exclude=exclude, last=number)
            rows = [r for r in rows if r.id <= head]
        yield from self._responses(rows)
        if not request.follow:
            return
        after = head
        while not stop.is_set() and context.is_active():
            head = self.store.last_id()
            batch = self.store.query(include, exclude=exclude, after_id=after, first=FOLLOW_BATCH)
            if batch:
                after = batch[-1].id
                yield from self._responses(batch)
            if len(batch) < FOLLOW_BATCH:
                # every flow up to `head` was looked at: skip past the unmatched ones
                after = max(after, head)
                stop.wait(self.poll_interval)

    def _responses(self, rows: list[StoredFlow]) -> Iterator[observer_pb2.GetFlowsResponse]:
        for row in rows:
            try:
                yield flow.response_message(row.record)
            except (json_format.ParseError, KeyError, TypeError, ValueError):
                self.skipped += 1

    def ServerStatus(
        self, request: observer_pb2.ServerStatusRequest, context: grpc.ServicerContext
    ) -> observer_pb2.ServerStatusResponse:
        stats = self.store.stats()
        return observer_pb2.ServerStatusResponse(
            num_flows=stats.rows,
            max_flows=self.max_flows,
            seen_flows=self.store.last_id(),
            uptime_ns=time.monotonic_ns() - self.started,
            version=f"warrant {__version__}",
        )


@dataclasses.dataclass
class ObserverServer:
    """A running Observer gRPC server (`address` with the port actually bound)."""

    address: str
    service: ObserverService
    _server: grpc.Server

    @classmethod
    def start(
        cls,
        store: str | FlowStore,
        address: str = "127.0.0.1:4245",
        *,
        max_flows: int = DEFAULT_MAX_ROWS,
        poll_interval: float = 0.2,
        workers: int = 8,
    ) -> ObserverServer:
        """Serve `store` (a path, opened read-only, or an open FlowStore) on `address`
        (host:port; port 0 picks a free one).  Each following client holds a worker."""
        db = store if isinstance(store, FlowStore) else FlowStore(store, readonly=True)
        service = ObserverService(db, max_flows=max_flows, poll_interval=poll_interval)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        add_servicer: Callable[[ObserverService, grpc.Server], None] = (
            observer_pb2_grpc.add_ObserverServicer_to_server  # generated without annotations
        )
        add_servicer(service, server)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ValueError(f"cannot listen on {address}: {exc}") from None
        if not port:
            raise ValueError(f"cannot listen on {address}")
        server.start()
        host = address.rsplit(":", 1)[0]
        return cls(f"{host}:{port}", service, server)

    def wait(self) -> None:
        self._server.wait_for_termination()

    def stop(self, grace: float = 1.0) -> None:
        self._server.stop(grace).wait()
