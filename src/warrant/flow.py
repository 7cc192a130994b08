"""Flow records: the one place a verdict becomes an observable record.

Every packet the receiver judges yields one record (a dict ready for JSON
lines).  The shape follows Hubble's flow.proto field names where they exist
(time, verdict, IP, l4, Type, traffic_direction, Summary) and adds the
authority as a first-class object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from .constants import REASONS, Reason, Verdict
from .receiver import Outcome

_VERDICT_NAMES = {Verdict.ADMIT: "FORWARDED", Verdict.DROP: "DROPPED", Verdict.PASS: "FORWARDED"}


def record(
    outcome: Outcome,
    source: tuple[str, int],
    destination: tuple[str, int],
    now: float,
    node: str = "",
) -> dict[str, Any]:
    info = REASONS[outcome.reason]
    authority: dict[str, Any] | None = None
    if outcome.authority is not None:
        authority = dataclasses.asdict(outcome.authority)
        authority["hops"] = [{"domain": d, "relay": r} for d, r in outcome.authority.hops]
    ip_version = "IPv6" if ":" in source[0] else "IPv4"
    rec: dict[str, Any] = {
        "time": dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z"),
        "verdict": _VERDICT_NAMES[outcome.verdict],
        "drop_reason_desc": "" if outcome.verdict == Verdict.ADMIT else (info.hubble or info.name),
        "reason": outcome.reason.name,
        "reason_code": int(outcome.reason),
        "kind": outcome.kind,
        "IP": {"source": source[0], "destination": destination[0], "ipVersion": ip_version},
        "l4": {"UDP": {"source_port": source[1], "destination_port": destination[1]}},
        "Type": "L3_L4",
        "node_name": node,
        "traffic_direction": "INGRESS",
        "is_reply": False,
        "bytes": outcome.size,
        "session_id": outcome.session_id.hex() if outcome.session_id else None,
        "seq": outcome.seq,
        "authority": authority,
        "Summary": summary(outcome),
    }
    return rec


def summary(outcome: Outcome) -> str:
    if outcome.verdict == Verdict.ADMIT and outcome.authority is not None:
        a = outcome.authority
        return f"{outcome.kind} admitted: {a.operation} on {a.service}:{a.port} under {a.scope}"
    text = f"{outcome.kind} dropped: {outcome.reason.name}"
    return f"{text} ({outcome.detail})" if outcome.detail else text


def to_json(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":"), sort_keys=False)


def reason_name(code: int) -> str:
    return Reason(code).name
