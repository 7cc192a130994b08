#!/usr/bin/env python3
"""Cost of a Hubble flow record: Warrant's per-packet `flow.record` against building the
same flow.Flow message with protobuf and printing it with `json_format.MessageToDict`.

    python3 bench/flow_records.py            # about 20 s
    python3 bench/flow_records.py --quick

`flow.record` writes the dict of protobuf's JSON mapping directly (it runs for every
packet the endpoint or agent judges); the baseline is the obvious implementation
(protobuf message, then MessageToDict).  Both must give the same record (checked
before timing, uuid aside).  Also timed: the Observer server's per-flow cost
(`flow.response_message`: record -> GetFlowsResponse, strict; the direct path for
records of Warrant's own shape) and a Hubble client's (strict `json_format.Parse` of
one `-o jsonpb` line).

Cases: an admitted DATA packet with its authority (two hops) and a dropped one (REPLAY).
Every pass runs every variant once, in turn (interleaved); the table gives the minimum
and median microseconds per record over the passes, and each ratio is the median over
passes of (variant / baseline) in the same pass.  The last line is one JSON object,
ratios first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from warrant.core.constants import REASONS, Reason, Verdict
from warrant.core.receiver import Authority, Outcome
from warrant.core.rights import Destination, Rights
from warrant.integration import flow
from warrant.integration.proto.flow import flow_pb2
from warrant.integration.proto.observer import observer_pb2
from warrant.integration.proto.warrantflow import extension_pb2

SRC, DST, NOW, NODE = ("10.0.0.7", 40000), ("10.0.0.9", 8443), 1_800_000_000.25, "node-1"
RIGHTS = Rights(("orders.*",), (Destination("orders", 8443, 8443),), 1_799_999_000,
                1_800_003_600, max_hops=3, forbidden_domains=("evil.net",))  # fmt: skip
AUTHORITY = Authority(
    "acme.prod", "ab" * 16, "cd" * 16, "ef" * 32, 2, "orders.read", "orders", 8443,
    (("a.net", "11" * 8), ("b.net", "22" * 8)), 1_800_003_600, "orders", "01" * 16,
    ("aa" * 16, "bb" * 16), RIGHTS,
)  # fmt: skip
CASES = {
    "admit": Outcome(Verdict.ADMIT, Reason.OK, "DATA", 116, authority=AUTHORITY,
                     session_id=bytes(range(16)), seq=5),
    "replay": Outcome(Verdict.DROP, Reason.REPLAY, "DATA", 116, authority=AUTHORITY,
                      session_id=bytes(range(16)), seq=5),
}  # fmt: skip


def protobuf_record(out: Outcome) -> dict[str, Any]:
    """The baseline: the flow as a protobuf message, printed by protobuf."""
    f = flow_pb2.Flow(
        uuid="00000000-0000-4000-8000-000000000000",
        verdict=flow_pb2.Verdict.Value(flow.verdict_name(out.verdict)),
        Type=flow_pb2.L3_L4,
        node_name=NODE,
        traffic_direction=flow_pb2.INGRESS,
        Summary=flow.summary(out),
    )
    f.time.FromMicroseconds(round(NOW * 1e6))
    if out.verdict == Verdict.DROP:
        code = flow.HUBBLE_DROP_REASONS.get(REASONS[out.reason].hubble, 0)
        f.drop_reason = code
        f.drop_reason_desc = code  # type: ignore[assignment]
        f.event_type.type, f.event_type.sub_type = flow.EVENT_DROP, code
    else:
        f.event_type.type = flow.EVENT_TRACE
    f.IP.source, f.IP.destination, f.IP.ipVersion = SRC[0], DST[0], flow_pb2.IPv4
    f.l4.UDP.source_port, f.l4.UDP.destination_port = SRC[1], DST[1]
    a = out.authority
    assert a is not None
    f.source.labels.extend(flow.source_labels(a))
    f.destination.labels.extend(flow.destination_labels(a))
    f.is_reply.value = False
    ext = extension_pb2.FlowExtension(
        reason=out.reason.name, reason_code=int(out.reason), reason_desc=REASONS[out.reason].summary,
        kind=out.kind, bytes=out.size, session_id=(out.session_id or b"").hex(), seq=out.seq,
    )  # fmt: skip
    auth = ext.authority
    auth.scope, auth.issuer, auth.holder, auth.operation = a.scope, a.issuer, a.holder, a.operation
    auth.service, auth.port, auth.chain_digest, auth.depth = (
        a.service,
        a.port,
        a.chain_digest,
        a.depth,
    )
    for i, (domain, relay) in enumerate(a.hops):
        auth.hops.add(index=i, domain=domain, relay=relay)
    auth.expires.FromSeconds(a.expires)
    auth.rule, auth.session_id, auth.reason = a.rule or "", a.session_id, out.reason.name
    auth.link_ids.extend(a.link_ids)
    r = auth.rights
    r.operations.extend(RIGHTS.operations)
    r.destinations.extend(f"{d.service}:{d.port_lo}" for d in RIGHTS.destinations)
    r.not_before.FromSeconds(RIGHTS.not_before)
    r.expires.FromSeconds(RIGHTS.expires)
    r.max_hops, r.any_domain = RIGHTS.max_hops, True
    r.forbidden_domains.extend(RIGHTS.forbidden_domains)
    f.extensions.Pack(ext)
    out_dict: dict[str, Any] = json_format.MessageToDict(f, preserving_proto_field_name=True)
    return out_dict


def variants(out: Outcome) -> dict[str, Callable[[], object]]:
    rec = flow.record(out, SRC, DST, NOW, NODE)
    line = flow.to_json(flow.get_flows_response(rec))
    return {
        "protobuf + MessageToDict (baseline)": lambda: protobuf_record(out),
        "flow.record": lambda: flow.record(out, SRC, DST, NOW, NODE),
        "response_message (gRPC server)": lambda: flow.response_message(rec),
        "strict Parse of a jsonpb line (client)": lambda: json_format.Parse(
            line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=False
        ),
    }


def timed(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    passes, n = (3, 300) if args.quick else (7, 1500)
    results: dict[tuple[str, str], list[float]] = {}
    calls = 0
    for out in CASES.values():
        ours, theirs = flow.record(out, SRC, DST, NOW, NODE), protobuf_record(out)
        ours["uuid"] = theirs["uuid"]
        assert ours == theirs, (ours, theirs)  # the same record, or the comparison means nothing
    for _ in range(passes):
        for case, out in CASES.items():
            for name, fn in variants(out).items():
                results.setdefault((case, name), []).append(timed(fn, n))
                calls += n
    assert calls == passes * n * len(CASES) * 4  # every variant ran every pass
    base = "protobuf + MessageToDict (baseline)"
    print(f"{'case':8} {'variant':42} {'min us':>9} {'median us':>10} {'/ baseline':>11}")
    ratios: dict[str, float] = {}
    for (case, name), xs in results.items():
        paired = [x / b for x, b in zip(xs, results[(case, base)], strict=True)]
        ratio = statistics.median(paired)
        key = name.split(" ")[0].replace(".", "_").lower()
        if name != base:
            ratios[f"{case}_{key}_ratio_vs_protobuf"] = round(ratio, 3)
        print(f"{case:8} {name:42} {min(xs):9.2f} {statistics.median(xs):10.2f} {ratio:11.3f}")
    figures = {f"{case}_{name.split(' ')[0].replace('.', '_').lower()}_us_min": round(min(xs), 2)
               for (case, name), xs in results.items()}  # fmt: skip
    print(json.dumps({**ratios, **figures, "passes": passes, "records_per_pass": n}))


if __name__ == "__main__":
    main()
