"""Flow records: the one place a verdict becomes an observable record.

Every packet the receiver judges yields one record, a dict ready for JSON
lines.  Its shape is Hubble's: the field names are those of Cilium's
`api/v1/flow/flow.proto` in proto3's JSON mapping (`time`, `uuid`, `verdict`,
`drop_reason`, `drop_reason_desc`, `event_type`, `IP`, `l4`, `source`,
`destination`, `Type`, `node_name`, `traffic_direction`, `is_reply`,
`Summary`), so tools that read Hubble flows by field name read these too.
Warrant adds what Hubble does not have: the exact reason and the packet
(`reason`, `reason_code`, `reason_desc`, `detail`, `kind`, `bytes`,
`session_id`, `seq`) and, once a credential was verified for the packet's
session, the `authority` object: scope, issuer, holder, operation, chain
digest, hops with their domains, credential expiry, the deciding rule and
the reason.  Records without a verified authority have no `authority` (proto3's
JSON mapping omits unset messages too).

Verdicts are Hubble's: FORWARDED, DROPPED, ERROR, AUDIT.  `drop_reason_desc`
is Hubble's DropReason enum name where one fits (`constants.REASONS[...].hubble`,
e.g. POLICY_DENIED 133, AUTH_REQUIRED 189, INVALID_IDENTITY 171) and Warrant's
own reason name otherwise (e.g. BAD_MAC, REPLAY); `drop_reason`, Hubble's
deprecated numeric field, is set only when the name is Hubble's.  `reason`
always carries Warrant's exact reason.

`schemas/flow.schema.json` describes this shape; `tests/test_flow_schema.py`
checks every kind of record against it.
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

from ..core.constants import REASONS, Reason, Verdict
from ..core.receiver import Authority, Outcome

# Hubble's DropReason enum (cilium api/v1/flow/flow.proto), the values Warrant uses.
HUBBLE_DROP_REASONS: dict[str, int] = {
    "DROP_REASON_UNKNOWN": 0,
    "POLICY_DENIED": 133,
    "INVALID_PACKET_DROPPED": 134,
    "CT_MAP_INSERTION_FAILED": 155,
    "INVALID_IDENTITY": 171,
    "POLICY_DENY": 181,
    "AUTH_REQUIRED": 189,
}

# Cilium monitor message types (pkg/monitor/api), carried in `event_type.type`.
EVENT_DROP = 1
EVENT_TRACE = 4
EVENT_POLICY_VERDICT = 5

# Cilium's reserved identity 0 is "unknown".  Warrant never derives an identity from
# an address, so it reports 0 and puts the authority in labels and `authority`.
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
    """The flow record for one receiver verdict.

    `audit=True` reports a drop as AUDIT (policy audit mode: it would have been
    dropped, and was let through).  `local` describes the receiving endpoint.
    """
    info = REASONS[outcome.reason]
    verdict = verdict_name(outcome.verdict)
    if audit and verdict == "DROPPED":
        verdict = "AUDIT"
    rec: dict[str, Any] = {
        "time": rfc3339(now),
        "uuid": flow_uuid or str(uuidlib.uuid4()),
        "verdict": verdict,
    }
    if outcome.verdict == Verdict.DROP:
        rec.update(drop_fields(outcome.reason))
        rec["event_type"] = {"type": EVENT_DROP, "sub_type": rec.get("drop_reason", 0)}
    elif outcome.kind == "INIT":
        rec["event_type"] = {"type": EVENT_POLICY_VERDICT}
    else:
        rec["event_type"] = {"type": EVENT_TRACE}
    rec["IP"] = {
        "source": source[0],
        "destination": destination[0],
        "ipVersion": ip_version(source[0]),
    }
    rec["l4"] = {"UDP": {"source_port": source[1], "destination_port": destination[1]}}
    rec["source"] = _endpoint(IDENTITY_UNKNOWN, "", "", source_labels(outcome.authority))
    lo = local or EndpointInfo()
    rec["destination"] = _endpoint(
        lo.identity, lo.namespace, lo.pod_name, [*lo.labels, *destination_labels(outcome.authority)]
    )
    rec["Type"] = "L3_L4"
    rec["node_name"] = node
    rec["traffic_direction"] = "INGRESS"
    rec["is_reply"] = False
    rec["Summary"] = summary(outcome, verdict)
    # Warrant's extension fields (not in flow.proto): the exact reason and the packet.
    rec["reason"] = outcome.reason.name
    rec["reason_code"] = int(outcome.reason)
    rec["reason_desc"] = info.summary
    if outcome.detail:
        rec["detail"] = outcome.detail
    rec["kind"] = outcome.kind
    rec["bytes"] = outcome.size
    if outcome.session_id is not None:
        rec["session_id"] = outcome.session_id.hex()
    if outcome.seq is not None:
        rec["seq"] = outcome.seq
    if outcome.authority is not None:
        rec["authority"] = dict(_authority_template(outcome.authority, outcome.reason))
    return rec


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
    out = Outcome(Verdict.DROP, Reason.OK, "UNKNOWN", size, detail)
    rec = record(out, source, destination, now, node)
    for k in ("drop_reason", "drop_reason_desc"):
        rec.pop(k, None)
    rec["verdict"] = "ERROR"
    rec["reason"], rec["reason_desc"] = "ERROR", "the packet could not be judged"
    rec["event_type"] = {"type": EVENT_TRACE}
    rec["Summary"] = f"error: {detail}" if detail else "error"
    return rec


def drop_fields(reason: Reason) -> dict[str, Any]:
    """`drop_reason_desc` (and, for Hubble's names, the numeric `drop_reason`)."""
    hubble = REASONS[reason].hubble
    if hubble:
        return {"drop_reason": HUBBLE_DROP_REASONS[hubble], "drop_reason_desc": hubble}
    return {"drop_reason_desc": reason.name}


def authority_object(a: Authority, reason: Reason) -> dict[str, Any]:
    """The verified authority of the packet's session, and the reason it got its verdict."""
    return {
        "scope": a.scope,
        "issuer": a.issuer,
        "holder": a.holder,
        "operation": a.operation,
        "service": a.service,
        "port": a.port,
        "chain_digest": a.chain_digest,
        "depth": a.depth,
        "hops": [
            {"index": i, "domain": domain, "relay": relay}
            for i, (domain, relay) in enumerate(a.hops)
        ],
        "expires": rfc3339(float(a.expires)),
        "rule": a.rule,
        "session_id": a.session_id,
        "reason": reason.name,
    }


@functools.lru_cache(maxsize=4096)
def _authority_template(a: Authority, reason: Reason) -> dict[str, Any]:
    """authority_object, computed once per (session authority, reason): records copy it."""
    return authority_object(a, reason)


def source_labels(a: Authority | None) -> list[str]:
    """Cilium-style `source:key=value` labels derived from the verified authority."""
    if a is None:
        return []
    return [f"warrant:scope={a.scope}", f"warrant:issuer={a.issuer}", f"warrant:holder={a.holder}"]


def destination_labels(a: Authority | None) -> list[str]:
    if a is None:
        return []
    return [f"warrant:service={a.service}"]


def _endpoint(identity: int, namespace: str, pod: str, labels: list[str]) -> dict[str, Any]:
    return {"identity": identity, "namespace": namespace, "labels": labels, "pod_name": pod}


@functools.lru_cache(maxsize=4096)
def ip_version(address: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(address.split("%", 1)[0]).version == 6 else "IPv4"
    except ValueError:
        return "IP_NOT_USED"


def rfc3339(t: float) -> str:
    """A protobuf Timestamp in proto3's JSON mapping: UTC, `Z`, microseconds.

    Rounds like datetime.fromtimestamp (half-even to the microsecond) but formats
    the date part once per second: this runs for every packet's flow record."""
    frac, whole = math.modf(t)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole, us = whole + 1, us - 1_000_000
    elif us < 0:
        whole, us = whole - 1, us + 1_000_000
    return f"{_second(int(whole))}.{us:06d}Z"


@functools.lru_cache(maxsize=8)
def _second(whole: int) -> str:
    return dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(text: str) -> float:
    """Inverse of `rfc3339` (accepts any ISO 8601 form with an offset or `Z`)."""
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def summary(outcome: Outcome, verdict: str | None = None) -> str:
    a = outcome.authority
    if outcome.verdict == Verdict.PASS:
        return "UDP: not Warrant traffic, passed"
    if outcome.verdict == Verdict.ADMIT and a is not None:
        return f"{outcome.kind} admitted: {a.operation} on {a.service}:{a.port} under {a.scope}"
    verb = "audited (would drop)" if verdict == "AUDIT" else "dropped"
    text = f"{outcome.kind} {verb}: {outcome.reason.name}"
    return f"{text} ({outcome.detail})" if outcome.detail else text


# ---- reading records back (observe, metrics, the store) -------------------------------------
def reason_of(rec: dict[str, Any]) -> str:
    """Warrant's reason name for a record ("OK" for admitted packets)."""
    auth = rec.get("authority") or {}
    return str(rec.get("reason") or auth.get("reason") or rec.get("drop_reason_desc") or "OK")


def hop_domains(rec: dict[str, Any]) -> list[str]:
    auth = rec.get("authority") or {}
    return [str(h.get("domain", "")) for h in auth.get("hops") or []]


def timestamp_of(rec: dict[str, Any]) -> float:
    return parse_time(str(rec["time"]))


def get_flows_response(rec: dict[str, Any]) -> dict[str, Any]:
    """The record wrapped as Hubble's observer GetFlowsResponse (what `hubble observe -o json`
    prints: the flow under `flow`, plus `node_name` and `time`)."""
    return {"flow": rec, "node_name": rec.get("node_name", ""), "time": rec.get("time", "")}


def to_json(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":"), sort_keys=False)
