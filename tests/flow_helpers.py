"""Reading Hubble-shaped flow records in tests: `flat(rec)` lifts Warrant's extension
(reason, kind, detail, session_id, seq, authority) next to Hubble's fields, so a test
asserts `flat(rec)["reason"]` rather than digging through `extensions`."""

from __future__ import annotations

from typing import Any

from warrant.integration import flow


def flat(rec: dict[str, Any]) -> dict[str, Any]:
    """The record (or a GetFlowsResponse holding one) with its Warrant extension lifted to
    the top level; `seq` as an int (the JSON mapping writes uint64 as a string)."""
    if isinstance(rec.get("flow"), dict):
        rec = rec["flow"]
    ext = {k: v for k, v in flow.extension_of(rec).items() if k != "@type"}
    if "seq" in ext:
        ext["seq"] = int(ext["seq"])
    ext.setdefault("reason", flow.reason_of(rec))
    return {**{k: v for k, v in rec.items() if k != "extensions"}, **ext}
