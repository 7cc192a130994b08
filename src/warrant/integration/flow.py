"""Flow records: the one place a verdict becomes an observable record, as a Hubble Flow.

Every packet the receiver judges yields one `flow.Flow` message (Hubble's flow API,
`proto/flow/flow.proto`), built by `message()`.  `record()` gives the same flow as a dict
in protobuf's JSON mapping with the proto field names (what `hubble observe -o jsonpb`
prints and `json_format.Parse` reads back): zero values omitted, enums by name,
timestamps in RFC 3339.  The dict is what the endpoint's `on_flow`, the flow store and
`warrant observe` pass around; `to_message()` turns it back into the message (the
Observer gRPC server sends those).

Hubble's fields hold only values Hubble defines.  `verdict` is FORWARDED, DROPPED, ERROR
or AUDIT.  `drop_reason_desc` is the DropReason Warrant's reason maps to
(`constants.REASONS[r].hubble`, e.g. POLICY_DENIED, AUTH_REQUIRED, INVALID_IDENTITY);
a reason with no mapping leaves it DROP_REASON_UNKNOWN (omitted in JSON).  Warrant's own
part travels in `extensions`, a `google.protobuf.Any` holding a
`warrant.flow.v1.FlowExtension` (`proto/warrantflow/extension.proto`): the exact reason
(name, code, summary, detail), the packet kind, size, session id and sequence number, and
once a credential was verified for the packet's session, the `authority` (scope, issuer,
holder, operation, destination, chain digest and depth, hops with their domains and relay
tags, expiry, deciding rule).  In JSON it reads

    "extensions": {"@type": "type.googleapis.com/warrant.flow.v1.FlowExtension",
                   "reason": "REPLAY", "reason_code": 13, "kind": "DATA", ...}

A consumer that does not know that type still parses the binary message (an Any is bytes);
a JSON parser needs the type registered (importing this module registers it).
`tests/test_flow_schema.py` parses every kind of record strictly into
`observer.GetFlowsResponse`.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import math
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from ..core.constants import REASONS, Reason, Verdict
from ..core.receiver import Authority, Outcome
from ..core.rights import Rights
from .proto.flow import flow_pb2
from .proto.observer import observer_pb2
from .proto.warrantflow import extension_pb2

EXTENSION_TYPE_URL = "type.googleapis.com/" + extension_pb2.FlowExtension.DESCRIPTOR.full_name

# Hubble's DropReason names Warrant maps to, from the compiled enum (name -> number).
HUBBLE_DROP_REASONS: dict[str, int] = {
    v.name: v.number for v in flow_pb2.DropReason.DESCRIPTOR.values if v.number
}

# Cilium monitor message types (pkg/monitor/api), carried in `event_type.type`.
EVENT_DROP = 1
EVENT_TRACE = 4
EVENT_POLICY_VERDICT = 5

# Cilium's reserved identity 0 is "unknown".  Warrant never derives an identity from
# an address, so it reports 0 and puts the authority in labels and the extension.
IDENTITY_UNKNOWN = 0

VERDICTS = ("FORWARDED", "DROPPED", "ERROR", "AUDIT")
_VERDICT_NAMES = {Verdict.ADMIT: "FORWARDED", Verdict.DROP: "DROPPED", Verdict.PASS: "FORWARDED"}


@dataclass(frozen=True)
class EndpointInfo:
    """What a record may say about the local (destination) endpoint, e.g. from the
    Kubernetes downward API.  All optional; defaults say nothing."""

    namespace: str = ""
    pod_name: str = ""
    labels: tuple[str, ...] = field(default_factory=tuple)
    identity: int = IDENTITY_UNKNOWN


def record(
    outcome: Outcome,
    source: tuple[str, int],
    destination: tuple[str, int],
    now: float,
    node: str = "",
    *,
    audit: bool = False,
    local: EndpointInfo | None = None,
    flow_uuid: str | None = None,
) -> dict[str, Any]:
    """The Hubble Flow for one receiver verdict (received: INGRESS, UDP), as a dict in
    protobuf's JSON mapping.

    Built as a dict, not through the message: this runs for every packet and
    `json_format.MessageToDict` costs some 400 us a flow, this some 10 us.  The
    conformance test holds it to `to_dict(to_message(rec)) == rec` for every kind of
    record, i.e. exactly what protobuf would print.  `audit=True` reports a drop as AUDIT
    (policy audit mode: it would have been dropped, and was let through).  `local`
    describes the receiving endpoint.
    """
    verdict = verdict_name(outcome.verdict)
    if audit and verdict == "DROPPED":
        verdict = "AUDIT"
    rec: dict[str, Any] = {
        "time": rfc3339(now),
        "uuid": flow_uuid or str(uuidlib.uuid4()),
        "verdict": verdict,
    }
    if outcome.verdict == Verdict.DROP:
        hubble = REASONS[outcome.reason].hubble
        code = HUBBLE_DROP_REASONS.get(hubble, 0)
        if code:
            rec["drop_reason"] = code
            rec["drop_reason_desc"] = hubble
            rec["event_type"] = {"type": EVENT_DROP, "sub_type": code}
        else:
            rec["event_type"] = {"type": EVENT_DROP}
    elif outcome.kind == "INIT":
        rec["event_type"] = {"type": EVENT_POLICY_VERDICT}
    else:
        rec["event_type"] = {"type": EVENT_TRACE}
    # Zero values are left out, as the JSON mapping does (written out: this is per packet).
    ip = {"source": source[0], "destination": destination[0]}
    version = ip_version(source[0])
    if version:
        ip["ipVersion"] = version
    rec["IP"] = ip
    udp = {}
    if source[1]:
        udp["source_port"] = source[1]
    if destination[1]:
        udp["destination_port"] = destination[1]
    rec["l4"] = {"UDP": udp}
    a = outcome.authority
    rec["source"] = {"labels": source_labels(a)} if a is not None else {}
    rec["destination"] = _destination(local, a)
    rec["Type"] = "L3_L4"
    if node:
        rec["node_name"] = node
    rec["traffic_direction"] = "INGRESS"
    rec["is_reply"] = False
    rec["Summary"] = summary(outcome, verdict)
    rec["extensions"] = extension(outcome)
    return rec


def message(
    outcome: Outcome,
    source: tuple[str, int],
    destination: tuple[str, int],
    now: float,
    node: str = "",
    **kw: Any,
) -> flow_pb2.Flow:
    """`record(...)` as the flow.Flow message."""
    return to_message(record(outcome, source, destination, now, node, **kw))


def extension(outcome: Outcome, reason: str | None = None) -> dict[str, Any]:
    """Warrant's part of the flow (a FlowExtension in an Any, JSON mapping): the exact
    reason, the packet and the verified authority."""
    ext: dict[str, Any] = {
        "@type": EXTENSION_TYPE_URL,
        "reason": reason or outcome.reason.name,
    }
    if outcome.reason:
        ext["reason_code"] = int(outcome.reason)
    ext["reason_desc"] = REASONS[outcome.reason].summary
    if outcome.detail:
        ext["detail"] = outcome.detail
    if outcome.kind:
        ext["kind"] = outcome.kind
    if outcome.size:
        ext["bytes"] = outcome.size
    if outcome.session_id:
        ext["session_id"] = outcome.session_id.hex()
    if outcome.seq is not None:
        ext["seq"] = str(outcome.seq)  # uint64: a string in the JSON mapping
    if outcome.authority is not None:
        ext["authority"] = dict(_authority(outcome.authority, outcome.reason))
    return ext


@functools.lru_cache(maxsize=4096)
def _authority(a: Authority, reason: Reason) -> dict[str, Any]:
    """The session's verified authority and this packet's reason, computed once per pair
    (records of one session share it); zero values omitted like the JSON mapping does."""
    hops = []
    for i, (domain, relay) in enumerate(a.hops):
        hop: dict[str, Any] = {"index": i} if i else {}
        hop.update(_nonempty(domain=domain, relay=relay))
        hops.append(hop)
    out = _nonempty(
        scope=a.scope,
        issuer=a.issuer,
        holder=a.holder,
        operation=a.operation,
        service=a.service,
        port=a.port,
        chain_digest=a.chain_digest,
        depth=a.depth,
        hops=hops,
    )
    out["expires"] = rfc3339(float(a.expires))
    out.update(_nonempty(rule=a.rule or "", session_id=a.session_id, reason=reason.name))
    if a.link_ids:
        out["link_ids"] = list(a.link_ids)
    if a.rights is not None:
        out["rights"] = _rights(a.rights)
    return out


def _rights(r: Rights) -> dict[str, Any]:
    """A chain's effective rights as the extension's Rights message (JSON mapping)."""
    out = _nonempty(
        operations=list(r.operations),
        destinations=[
            f"{d.service}:{d.port_lo}" if d.port_lo == d.port_hi
            else f"{d.service}:{d.port_lo}-{d.port_hi}"
            for d in r.destinations
        ],
    )  # fmt: skip
    out["not_before"] = rfc3339(float(r.not_before))
    out["expires"] = rfc3339(float(r.expires))
    out.update(
        _nonempty(
            max_hops=r.max_hops,
            any_domain=r.allowed_domains is None,
            allowed_domains=list(r.allowed_domains or ()),
            required_domains=list(r.required_domains),
            forbidden_domains=list(r.forbidden_domains),
            rate=r.rate or 0,
        )
    )
    return out


def _nonempty(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v}


def _destination(local: EndpointInfo | None, a: Authority | None) -> dict[str, Any]:
    labels = destination_labels(a)
    if local is None:
        return {"labels": labels} if labels else {}
    return _nonempty(
        identity=local.identity,
        namespace=local.namespace,
        labels=[*local.labels, *labels],
        pod_name=local.pod_name,
    )


def verdict_name(verdict: Verdict) -> str:
    """Hubble's verdict name for a receiver verdict."""
    return _VERDICT_NAMES[verdict]


def error_record(
    source: tuple[str, int],
    destination: tuple[str, int],
    now: float,
    node: str = "",
    detail: str = "",
    size: int = 0,
) -> dict[str, Any]:
    """An ERROR flow: the packet could not be judged (an internal failure, never a verdict)."""
    out = Outcome(Verdict.ADMIT, Reason.OK, "UNKNOWN", size, detail)
    rec = record(out, source, destination, now, node)
    rec["verdict"] = "ERROR"
    rec["event_type"] = {"type": EVENT_TRACE}
    rec["Summary"] = f"error: {detail}" if detail else "error"
    ext = extension(out, reason="ERROR")
    ext["reason_desc"] = "the packet could not be judged"
    rec["extensions"] = ext
    return rec


def source_labels(a: Authority | None) -> list[str]:
    """Cilium-style `source:key=value` labels derived from the verified authority."""
    if a is None:
        return []
    return [f"warrant:scope={a.scope}", f"warrant:issuer={a.issuer}", f"warrant:holder={a.holder}"]


def destination_labels(a: Authority | None) -> list[str]:
    if a is None:
        return []
    return [f"warrant:service={a.service}"]


@functools.lru_cache(maxsize=4096)
def ip_version(address: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(address.split("%", 1)[0]).version == 6 else "IPv4"
    except ValueError:
        return ""  # IP_NOT_USED: the enum's zero, omitted


def summary(outcome: Outcome, verdict: str | None = None) -> str:
    a = outcome.authority
    if outcome.verdict == Verdict.PASS:
        return "UDP: not Warrant traffic, passed"
    if outcome.verdict == Verdict.ADMIT and a is not None:
        return f"{outcome.kind} admitted: {a.operation} on {a.service}:{a.port} under {a.scope}"
    verb = "audited (would drop)" if verdict == "AUDIT" else "dropped"
    text = f"{outcome.kind} {verb}: {outcome.reason.name}"
    return f"{text} ({outcome.detail})" if outcome.detail else text


# ---- protobuf <-> dict ---------------------------------------------------------------------------
def to_dict(msg: flow_pb2.Flow) -> dict[str, Any]:
    """A Flow in protobuf's JSON mapping with proto field names (zero values omitted)."""
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def to_message(rec: dict[str, Any]) -> flow_pb2.Flow:
    """A flow record back into the Flow message; strict: an unknown field or enum value
    raises json_format.ParseError.

    Records in the exact shape `record()` writes take a direct path (protobuf's JSON parser
    costs some 0.5 ms a flow, too slow for an Observer stream); anything else, or anything
    the direct path is unsure of, goes through `json_format.ParseDict`, which decides."""
    try:
        return _direct(rec)
    except _Unsure:
        pass
    msg = flow_pb2.Flow()
    json_format.ParseDict(rec, msg, ignore_unknown_fields=False)
    return msg


class _Unsure(Exception):
    """The direct path does not vouch for this record: let protobuf's parser judge it."""


_FLOW_KEYS = frozenset({
    "time", "uuid", "verdict", "drop_reason", "drop_reason_desc", "event_type", "IP", "l4",
    "source", "destination", "Type", "node_name", "traffic_direction", "is_reply", "Summary",
    "extensions",
})  # fmt: skip
_IP_KEYS = frozenset({"source", "destination", "ipVersion"})
_PORT_KEYS = frozenset({"source_port", "destination_port"})
_ENDPOINT_KEYS = frozenset({"identity", "namespace", "labels", "pod_name"})
_EVENT_KEYS = frozenset({"type", "sub_type"})
_EXT_KEYS = frozenset({
    "@type", "reason", "reason_code", "reason_desc", "detail", "kind", "bytes", "session_id",
    "seq", "authority",
})  # fmt: skip
_AUTH_KEYS = frozenset({
    "scope", "issuer", "holder", "operation", "service", "port", "chain_digest", "depth", "hops",
    "expires", "rule", "session_id", "reason", "link_ids", "rights",
})  # fmt: skip
_RIGHTS_KEYS = frozenset({
    "operations", "destinations", "not_before", "expires", "max_hops", "any_domain",
    "allowed_domains", "required_domains", "forbidden_domains", "rate",
})  # fmt: skip
_RIGHTS_LISTS = ("operations", "destinations", "allowed_domains", "required_domains",
                 "forbidden_domains")  # fmt: skip
_HOP_KEYS = frozenset({"index", "domain", "relay"})
_U32 = 2**32


def _obj(value: Any, keys: frozenset[str]) -> dict[str, Any]:
    if type(value) is not dict or not value.keys() <= keys:
        raise _Unsure
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Unsure
    return value


def _u32(value: Any) -> int:
    if type(value) is not int or not 0 <= value < _U32:
        raise _Unsure
    return value


def _i32(value: Any) -> int:
    if type(value) is not int or not -(2**31) <= value < 2**31:
        raise _Unsure
    return value


def _enum(enum: Any, value: Any) -> int:
    try:
        return int(enum.Value(_str(value)))
    except ValueError:
        raise _Unsure from None


def _stamp(target: Any, value: Any) -> None:
    target.SetInParent()  # present even at the epoch, as the parser makes it
    target.seconds, target.nanos = _stamp_parts(_str(value))


@functools.lru_cache(maxsize=4096)  # expiry stamps repeat for every flow of a session
def _stamp_parts(text: str) -> tuple[int, int]:
    stamp = Timestamp()
    try:
        stamp.FromJsonString(text)  # protobuf's own (strict) reading of the JSON form
    except ValueError:
        raise _Unsure from None
    return stamp.seconds, stamp.nanos


def _direct(rec: dict[str, Any]) -> flow_pb2.Flow:
    r = _obj(rec, _FLOW_KEYS)
    f = flow_pb2.Flow()
    if "time" in r:
        _stamp(f.time, r["time"])
    for name in ("uuid", "node_name", "Summary"):
        if name in r:
            setattr(f, name, _str(r[name]))
    if "verdict" in r:
        f.verdict = _enum(flow_pb2.Verdict, r["verdict"])  # type: ignore[assignment]
    if "drop_reason" in r:
        f.drop_reason = _u32(r["drop_reason"])
    if "drop_reason_desc" in r:
        f.drop_reason_desc = _enum(flow_pb2.DropReason, r["drop_reason_desc"])  # type: ignore[assignment]
    if "Type" in r:
        f.Type = _enum(flow_pb2.FlowType, r["Type"])  # type: ignore[assignment]
    if "traffic_direction" in r:
        f.traffic_direction = _enum(flow_pb2.TrafficDirection, r["traffic_direction"])  # type: ignore[assignment]
    if "event_type" in r:
        ev = _obj(r["event_type"], _EVENT_KEYS)
        f.event_type.SetInParent()
        f.event_type.type = _i32(ev.get("type", 0))
        f.event_type.sub_type = _i32(ev.get("sub_type", 0))
    if "IP" in r:
        ip = _obj(r["IP"], _IP_KEYS)
        f.IP.SetInParent()
        f.IP.source, f.IP.destination = _str(ip.get("source", "")), _str(ip.get("destination", ""))
        if "ipVersion" in ip:
            f.IP.ipVersion = _enum(flow_pb2.IPVersion, ip["ipVersion"])  # type: ignore[assignment]
    if "l4" in r:
        l4 = _obj(r["l4"], frozenset({"UDP"}))
        f.l4.SetInParent()
        if "UDP" in l4:
            udp = _obj(l4["UDP"], _PORT_KEYS)
            f.l4.UDP.SetInParent()
            f.l4.UDP.source_port = _u32(udp.get("source_port", 0))
            f.l4.UDP.destination_port = _u32(udp.get("destination_port", 0))
    for side in ("source", "destination"):
        if side in r:
            ep = _obj(r[side], _ENDPOINT_KEYS)
            target = getattr(f, side)
            target.SetInParent()
            target.identity = _u32(ep.get("identity", 0))
            target.namespace, target.pod_name = (
                _str(ep.get("namespace", "")),
                _str(ep.get("pod_name", "")),
            )
            labels = ep.get("labels", [])
            if type(labels) is not list:
                raise _Unsure
            target.labels.extend(_str(x) for x in labels)
    if "is_reply" in r:
        if type(r["is_reply"]) is not bool:
            raise _Unsure
        f.is_reply.value = r["is_reply"]
    if "extensions" in r:
        f.extensions.Pack(_direct_extension(r["extensions"]))
    return f


def _direct_extension(value: Any) -> extension_pb2.FlowExtension:
    e = _obj(value, _EXT_KEYS)
    if e.get("@type") != EXTENSION_TYPE_URL:
        raise _Unsure
    ext = extension_pb2.FlowExtension()
    for name in ("reason", "reason_desc", "detail", "kind", "session_id"):
        if name in e:
            setattr(ext, name, _str(e[name]))
    ext.reason_code, ext.bytes = _u32(e.get("reason_code", 0)), _u32(e.get("bytes", 0))
    if "seq" in e:
        seq = _str(e["seq"])
        if not (seq.isascii() and seq.isdigit()) or len(seq) > 20 or int(seq) >= 2**64:
            raise _Unsure
        ext.seq = int(seq)
    if "authority" in e:
        a = _obj(e["authority"], _AUTH_KEYS)
        auth = ext.authority
        auth.SetInParent()
        for name in ("scope", "issuer", "holder", "operation", "service", "chain_digest", "rule",
                     "session_id", "reason"):  # fmt: skip
            if name in a:
                setattr(auth, name, _str(a[name]))
        auth.port, auth.depth = _u32(a.get("port", 0)), _u32(a.get("depth", 0))
        if "expires" in a:
            _stamp(auth.expires, a["expires"])
        hops = a.get("hops", [])
        if type(hops) is not list:
            raise _Unsure
        for item in hops:
            h = _obj(item, _HOP_KEYS)
            auth.hops.add(index=_u32(h.get("index", 0)), domain=_str(h.get("domain", "")),
                          relay=_str(h.get("relay", "")))  # fmt: skip
        auth.link_ids.extend(_strs(a.get("link_ids", [])))
        if "rights" in a:
            r = _obj(a["rights"], _RIGHTS_KEYS)
            rights = auth.rights
            rights.SetInParent()
            for name in _RIGHTS_LISTS:
                getattr(rights, name).extend(_strs(r.get(name, [])))
            for name in ("not_before", "expires"):
                if name in r:
                    _stamp(getattr(rights, name), r[name])
            rights.max_hops, rights.rate = _u32(r.get("max_hops", 0)), _u32(r.get("rate", 0))
            any_domain = r.get("any_domain", False)
            if type(any_domain) is not bool:
                raise _Unsure
            rights.any_domain = any_domain
    return ext


def _strs(value: Any) -> list[str]:
    if type(value) is not list:
        raise _Unsure
    return [_str(x) for x in value]


def get_flows_response(rec: dict[str, Any]) -> dict[str, Any]:
    """The record wrapped as Hubble's observer GetFlowsResponse (what `hubble observe -o json`
    prints: the flow under `flow`, plus `node_name` and `time`), zero values omitted."""
    out: dict[str, Any] = {"flow": rec}
    if rec.get("node_name"):
        out["node_name"] = rec["node_name"]
    if "time" in rec:
        out["time"] = rec["time"]
    return out


def response_message(rec: dict[str, Any]) -> observer_pb2.GetFlowsResponse:
    """The record as the observer.GetFlowsResponse the Observer server streams (strict)."""
    f = to_message(rec)
    msg = observer_pb2.GetFlowsResponse(flow=f, node_name=f.node_name)
    if f.HasField("time"):
        msg.time.CopyFrom(f.time)
    return msg


def to_json(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":"), sort_keys=False)


# ---- time ----------------------------------------------------------------------------------------
def rfc3339(t: float) -> str:
    """A protobuf Timestamp in protobuf's JSON mapping (what Timestamp.ToJsonString prints:
    UTC, `Z`, no fraction, or 3 or 6 digits), to the microsecond.

    Rounds like datetime.fromtimestamp (half-even to the microsecond) but formats
    the date part once per second."""
    frac, whole = math.modf(t)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole, us = whole + 1, us - 1_000_000
    elif us < 0:
        whole, us = whole - 1, us + 1_000_000
    if not us:
        return f"{_second(int(whole))}Z"
    if not us % 1000:
        return f"{_second(int(whole))}.{us // 1000:03d}Z"
    return f"{_second(int(whole))}.{us:06d}Z"


@functools.lru_cache(maxsize=8)
def _second(whole: int) -> str:
    return dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(text: str) -> float:
    """A Unix time from RFC 3339 (any ISO 8601 form with an offset or `Z`; protobuf's
    nanosecond fractions are cut to microseconds)."""
    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail}"
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


# ---- reading records back (observe, metrics, the store) -------------------------------------
def extension_of(rec: dict[str, Any]) -> dict[str, Any]:
    """The Warrant extension of a record ({} when it has none)."""
    ext = rec.get("extensions")
    if isinstance(ext, dict) and ext.get("@type") == EXTENSION_TYPE_URL:
        return ext
    return {}


def authority_of(rec: dict[str, Any]) -> dict[str, Any]:
    auth = extension_of(rec).get("authority")
    return auth if isinstance(auth, dict) else {}


def reason_of(rec: dict[str, Any]) -> str:
    """Warrant's reason name for a record ("OK" for admitted packets)."""
    return str(extension_of(rec).get("reason") or rec.get("drop_reason_desc") or "OK")


def kind_of(rec: dict[str, Any]) -> str:
    return str(extension_of(rec).get("kind") or "")


def hop_domains(rec: dict[str, Any]) -> list[str]:
    return [str(h.get("domain", "")) for h in authority_of(rec).get("hops") or []]


def timestamp_of(rec: dict[str, Any]) -> float:
    return parse_time(str(rec["time"]))


def ports_of(rec: dict[str, Any]) -> tuple[str, int | None, int | None]:
    """(protocol name as Hubble's filters spell it, source port, destination port)."""
    for name, body in (rec.get("l4") or {}).items():
        if isinstance(body, dict):
            return name.lower(), body.get("source_port"), body.get("destination_port")
    return "", None, None
