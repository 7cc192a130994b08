"""Every flow record the project emits is a Hubble flow: protobuf's JSON mapping of
flow.Flow, parsed strictly (no unknown field, no unknown enum value) inside an
observer.GetFlowsResponse, and exactly what protobuf itself prints for that message.

The records come from a real receiver (INIT and DATA through two relays, replays,
tampering, unknown sessions, forged credentials) and from every reason code with
and without a verified authority; the strict parse itself must reject broken records.
(schemas/flow.schema.json, the JSON schema this file used to check, is replaced by the
proto files in src/warrant/integration/proto.)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

import nacl.signing
import pytest
from google.protobuf import json_format

from warrant.core import keys
from warrant.core.admission import Policy, PolicyModel, Rule
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import REASONS, Reason, Verdict
from warrant.core.credential import issue
from warrant.core.hop import Relay
from warrant.core.receiver import Authority, Claim, Outcome, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.integration import flow
from warrant.integration.proto.flow import flow_pb2
from warrant.integration.proto.observer import observer_pb2
from warrant.integration.proto.warrantflow import extension_pb2

NOW = 1_800_000_000.0
SRC, DST = ("10.0.0.7", 40000), ("10.0.0.9", 8443)


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-flow/" + label.encode()).digest())


@dataclasses.dataclass
class World:
    receiver: Receiver
    sender: Sender
    relays: list[Relay]
    forged_sender: Sender
    direct_sender: Sender  # no relays on its path

    def through(self, packet: bytes) -> bytes:
        for r in self.relays:
            packet = r.forward(packet)
        return packet


def make_world(now: float = NOW, port: int = 8443) -> World:
    anchor, holder, recv, mallory = key("anchor"), key("holder"), key("receiver"), key("mallory")
    relay_a, relay_b = key("relay-a"), key("relay-b")
    trust = TrustStore()
    trust.add(Anchor("acme.prod", bytes(anchor.verify_key)))
    trust.add_relay("a.net", bytes(relay_a.verify_key))
    trust.add_relay("b.net", bytes(relay_b.verify_key))
    policy = Policy(
        PolicyModel(anchors={}, rules=[Rule(name="orders", operations=["orders.*"])]), trust
    )
    receiver = Receiver(recv, policy, started_at=now - 10)
    rpub = bytes(recv.verify_key)
    grant = Grant(
        operations=("orders.read",),
        destinations=(Destination("orders", port, port),),
        not_before=int(now) - 60,
        expires=int(now) + 3600,
        max_hops=3,
    )
    cred = issue(anchor, "acme.prod", bytes(holder.verify_key), grant).encode()
    claim = Claim("orders.read", "orders", port)
    sender = Sender(holder, cred, rpub, claim, next_hop_public=bytes(relay_a.verify_key))
    relays = [
        Relay(relay_a, "a.net", bytes(relay_b.verify_key), rpub),
        Relay(relay_b, "b.net", rpub, rpub),
    ]
    forged = issue(mallory, "acme.prod", bytes(holder.verify_key), grant).encode()
    forged_sender = Sender(holder, forged, rpub, claim)
    direct = Sender(holder, cred, rpub, claim)
    return World(receiver, sender, relays, forged_sender, direct)


def receiver_outcomes() -> dict[str, Outcome]:
    """Real outcomes from a receiver, keyed by what happened."""
    w = make_world()
    out: dict[str, Outcome] = {}
    out["init-admit"] = w.receiver.handle(w.through(w.sender.open(b"hello", NOW)), SRC, 8443, NOW)
    data = w.through(w.sender.seal(b"more"))
    out["data-admit"] = w.receiver.handle(data, SRC, 8443, NOW + 1)
    out["data-replay"] = w.receiver.handle(data, SRC, 8443, NOW + 2)
    tampered = bytearray(w.through(w.sender.seal(b"x")))
    tampered[25] ^= 1  # inside the MAC
    out["data-bad-mac"] = w.receiver.handle(bytes(tampered), SRC, 8443, NOW + 3)
    out["data-port-mismatch"] = w.receiver.handle(w.through(w.sender.seal(b"y")), SRC, 9999, NOW)
    unhopped = w.sender.seal(b"z")  # skipped the relays: hop records missing
    out["data-hops-missing"] = w.receiver.handle(unhopped, SRC, 8443, NOW + 4)
    out["init-unknown-anchor"] = w.receiver.handle(w.forged_sender.open(b"", NOW), SRC, 8443, NOW)
    fresh = make_world()
    out["data-unknown-session"] = fresh.receiver.handle(data, SRC, 8443, NOW)
    out["truncated"] = w.receiver.handle(b"\x01\x02", SRC, 8443, NOW)
    out["unknown-kind"] = w.receiver.handle(b"\x01\x09" + bytes(40), SRC, 8443, NOW)
    return out


OUTCOMES = receiver_outcomes()
AUTHORITY = OUTCOMES["init-admit"].authority


def synthetic(reason: Reason, with_authority: bool) -> Outcome:
    verdict = Verdict.ADMIT if reason == Reason.OK else Verdict.DROP
    if reason == Reason.NOT_WARRANT:
        verdict = Verdict.PASS
    return Outcome(
        verdict, reason, "DATA", 120, "detail text",
        authority=AUTHORITY if with_authority else None,
        session_id=bytes(8) if with_authority else None,
        seq=7 if with_authority else None,
    )  # fmt: skip


def strict(rec: dict[str, Any]) -> observer_pb2.GetFlowsResponse:
    """The record as a Hubble client reads it: one JSON line, parsed strictly into an
    observer.GetFlowsResponse."""
    line = flow.to_json(flow.get_flows_response(rec))
    return json_format.Parse(line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=False)


def validate(rec: dict[str, Any]) -> None:
    msg = strict(rec)
    # exactly protobuf's own JSON mapping of that message: nothing extra, no zero values
    assert flow.to_dict(msg.flow) == rec
    assert json.loads(flow.to_json(rec)) == rec
    assert msg.flow.extensions.TypeName() == "warrant.flow.v1.FlowExtension"
    ext = extension_pb2.FlowExtension()
    assert msg.flow.extensions.Unpack(ext)
    assert ext.reason == flow.reason_of(rec)
    # a drop names an existing DropReason or none (the enum's zero), never a Warrant name
    assert flow_pb2.DropReason.Name(
        msg.flow.drop_reason_desc
    ) in flow.HUBBLE_DROP_REASONS.keys() | {"DROP_REASON_UNKNOWN"}
    if rec["verdict"] in ("FORWARDED", "ERROR"):  # DROPPED and AUDIT may name one
        assert "drop_reason_desc" not in rec and "drop_reason" not in rec


def ext(rec: dict[str, Any]) -> dict[str, Any]:
    return flow.extension_of(rec)


# ---- the records the receiver really produces ------------------------------------------------
def test_receiver_scenario_reached_the_reasons_it_claims() -> None:
    got = {name: o.reason for name, o in OUTCOMES.items()}
    assert got == {
        "init-admit": Reason.OK,
        "data-admit": Reason.OK,
        "data-replay": Reason.REPLAY,
        "data-bad-mac": Reason.BAD_MAC,
        "data-port-mismatch": Reason.PORT_MISMATCH,
        "data-hops-missing": Reason.HOP_CHAIN_BROKEN,
        "init-unknown-anchor": Reason.UNKNOWN_ANCHOR,
        "data-unknown-session": Reason.UNKNOWN_SESSION,
        "truncated": Reason.TRUNCATED,
        "unknown-kind": Reason.UNKNOWN_KIND,
    }


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_receiver_records_validate(name: str) -> None:
    rec = flow.record(OUTCOMES[name], SRC, DST, NOW, node="node-1")
    validate(rec)


def test_admitted_record_carries_authority_and_hops() -> None:
    rec = flow.record(OUTCOMES["data-admit"], SRC, DST, NOW, node="node-1")
    assert rec["verdict"] == "FORWARDED"
    assert "drop_reason_desc" not in rec and "drop_reason" not in rec
    assert rec["IP"] == {"source": "10.0.0.7", "destination": "10.0.0.9", "ipVersion": "IPv4"}
    assert rec["l4"] == {"UDP": {"source_port": 40000, "destination_port": 8443}}
    assert rec["traffic_direction"] == "INGRESS" and rec["Type"] == "L3_L4"
    assert rec["is_reply"] is False and rec["node_name"] == "node-1"
    assert (ext(rec)["reason"], ext(rec)["kind"]) == ("OK", "DATA")
    auth = ext(rec)["authority"]
    assert auth["reason"] == "OK" and auth["rule"] == "orders"
    assert auth["scope"] == "acme.prod" and auth["operation"] == "orders.read"
    assert [h["domain"] for h in auth["hops"]] == ["a.net", "b.net"]
    hops = strict(rec).flow
    unpacked = extension_pb2.FlowExtension()
    hops.extensions.Unpack(unpacked)
    assert [h.index for h in unpacked.authority.hops] == [0, 1]  # 0 is omitted in JSON
    assert auth["expires"] == flow.rfc3339(NOW + 3600)
    assert len(auth["chain_digest"]) == 64
    assert len(auth["link_ids"]) == auth.get("depth", 1) and all(auth["link_ids"])
    rights = auth["rights"]  # what the chain grants, not just what this packet claimed
    assert rights["operations"] == ["orders.read"] and rights["destinations"] == ["orders:8443"]
    assert rights["max_hops"] == 3 and rights["any_domain"] is True
    assert rights["expires"] == flow.rfc3339(NOW + 3600)
    assert rights["not_before"] == flow.rfc3339(NOW - 60)
    assert "rate" not in rights  # unlimited: 0, omitted
    assert "warrant:scope=acme.prod" in rec["source"]["labels"]
    assert "identity" not in rec["source"]  # 0, Cilium's "unknown", omitted


def test_drop_reasons_use_hubble_names_and_numbers() -> None:
    rec = flow.record(OUTCOMES["data-unknown-session"], SRC, DST, NOW)
    assert (rec["verdict"], rec["drop_reason_desc"], rec["drop_reason"]) == (
        "DROPPED", "AUTH_REQUIRED", 189)  # fmt: skip
    assert rec["event_type"] == {"type": flow.EVENT_DROP, "sub_type": 189}
    assert ext(rec)["reason"] == "UNKNOWN_SESSION" and "authority" not in ext(rec)
    rec = flow.record(OUTCOMES["init-unknown-anchor"], SRC, DST, NOW)
    assert (rec["drop_reason_desc"], rec["drop_reason"]) == ("INVALID_IDENTITY", 171)
    rec = flow.record(OUTCOMES["truncated"], SRC, DST, NOW)
    assert (rec["drop_reason_desc"], rec["drop_reason"]) == ("INVALID_PACKET_DROPPED", 134)


def test_warrant_only_reasons_go_to_the_extension_not_to_hubble_fields() -> None:
    rec = flow.record(OUTCOMES["data-bad-mac"], SRC, DST, NOW)
    validate(rec)
    # BAD_MAC has no DropReason: Hubble's fields say DROPPED, reason unknown (omitted) ...
    assert "drop_reason_desc" not in rec and "drop_reason" not in rec
    assert rec["event_type"] == {"type": flow.EVENT_DROP}
    # ... and the extension says exactly what happened, with the claimed session's authority
    assert (ext(rec)["reason"], ext(rec)["reason_code"]) == ("BAD_MAC", int(Reason.BAD_MAC))
    assert ext(rec)["authority"]["reason"] == "BAD_MAC"
    assert ext(rec)["@type"] == flow.EXTENSION_TYPE_URL


def test_hubble_column_names_are_real_drop_reasons() -> None:
    # the constants' Hubble column (also SPEC's reason table) names DropReason values only
    enum = {v.name: v.number for v in flow_pb2.DropReason.DESCRIPTOR.values}
    expected_numbers = {"POLICY_DENIED": 133, "INVALID_PACKET_DROPPED": 134,
                        "CT_MAP_INSERTION_FAILED": 155, "INVALID_IDENTITY": 171,
                        "POLICY_DENY": 181, "AUTH_REQUIRED": 189}  # fmt: skip
    for name, number in expected_numbers.items():
        assert enum[name] == number == flow.HUBBLE_DROP_REASONS[name]
    for info in REASONS.values():
        if info.hubble:
            assert info.hubble in enum, info


# ---- every reason, with and without authority, every verdict ----------------------------------
@pytest.mark.parametrize("with_authority", [True, False])
@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.name)
def test_every_reason_validates(reason: Reason, with_authority: bool) -> None:
    rec = flow.record(synthetic(reason, with_authority), SRC, DST, NOW, "n")
    validate(rec)
    assert ext(rec)["reason"] == reason.name
    assert ext(rec).get("reason_code", 0) == int(reason)
    assert ("authority" in ext(rec)) == with_authority
    if with_authority:
        assert ext(rec)["authority"]["reason"] == reason.name
        assert ext(rec)["seq"] == "7"  # uint64: a string in the JSON mapping
    if reason not in (Reason.OK, Reason.NOT_WARRANT):
        assert rec["verdict"] == "DROPPED"
        assert rec.get("drop_reason_desc", "") == REASONS[reason].hubble


@pytest.mark.parametrize("reason", [Reason.POLICY_DENIED, Reason.BAD_MAC], ids=lambda r: r.name)
def test_audit_records_validate(reason: Reason) -> None:
    rec = flow.record(synthetic(reason, True), SRC, DST, NOW, audit=True)
    validate(rec)
    assert rec["verdict"] == "AUDIT" and "would drop" in rec["Summary"]


def test_audit_does_not_touch_admitted_flows() -> None:
    rec = flow.record(synthetic(Reason.OK, True), SRC, DST, NOW, audit=True)
    assert rec["verdict"] == "FORWARDED"


def test_error_record_validates() -> None:
    rec = flow.error_record(SRC, DST, NOW, "n", "receiver raised KeyError")
    validate(rec)
    assert rec["verdict"] == "ERROR" and "drop_reason_desc" not in rec
    assert ext(rec)["reason"] == "ERROR" and "reason_code" not in ext(rec)


def test_ipv6_and_local_endpoint() -> None:
    local = flow.EndpointInfo(namespace="shop", pod_name="orders-0", labels=("k8s:app=orders",))
    out = synthetic(Reason.OK, True)
    rec = flow.record(out, ("fd00::7", 1), ("fd00::9", 8443), NOW, local=local)
    validate(rec)
    assert rec["IP"]["ipVersion"] == "IPv6"
    assert rec["destination"]["namespace"] == "shop"
    assert rec["destination"]["pod_name"] == "orders-0"
    assert rec["destination"]["labels"][0] == "k8s:app=orders"


def test_time_round_trips() -> None:
    rec = flow.record(synthetic(Reason.OK, True), SRC, DST, NOW + 0.25)
    assert rec["time"] == "2027-01-15T08:00:00.250Z"  # as Timestamp.ToJsonString prints it
    assert flow.timestamp_of(rec) == NOW + 0.25
    assert strict(rec).flow.time.ToNanoseconds() == int(NOW * 1e9) + 250_000_000


def test_get_flows_response_wraps_like_hubble() -> None:
    rec = flow.record(synthetic(Reason.OK, True), SRC, DST, NOW, "node-7")
    wrapped = flow.get_flows_response(rec)
    assert wrapped == {"flow": rec, "node_name": "node-7", "time": rec["time"]}
    assert strict(rec).node_name == "node-7"
    anonymous = flow.record(synthetic(Reason.OK, True), SRC, DST, NOW)
    assert "node_name" not in flow.get_flows_response(anonymous)  # "" is omitted too


# ---- the strict parse can fail ------------------------------------------------------------------
def admitted() -> dict[str, Any]:
    return flow.record(OUTCOMES["data-admit"], SRC, DST, NOW)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(verdict="ALLOWED"),  # not a Hubble verdict
        lambda r: r.update(drop_reason_desc="BAD_MAC"),  # a Warrant name in Hubble's enum
        lambda r: r.update(drop_reason_desc="REPLAY"),
        lambda r: r.update(reason="BAD_MAC"),  # Warrant's old top-level fields
        lambda r: r.update(authority={"scope": "acme.prod"}),
        lambda r: r.update(kind="DATA"),
        lambda r: r.update(drop_reason_descr="POLICY_DENIED"),  # no such field
        lambda r: r["IP"].update(ipVersion="IPv5"),
        lambda r: r["l4"]["UDP"].update(destination_port=2**32),  # not a uint32
        lambda r: r["l4"]["UDP"].update(destination_port=-1),
        lambda r: r.update(time="yesterday"),
        lambda r: r["extensions"].update(reason_text="x"),  # unknown extension field
        lambda r: r["extensions"].update({"@type": "type.googleapis.com/warrant.Nope"}),
    ],
)
def test_strict_parse_rejects_broken_records(mutate: Any) -> None:
    rec = copy.deepcopy(admitted())
    strict(rec)
    mutate(rec)
    with pytest.raises(json_format.ParseError):
        strict(rec)


def test_authority_is_a_dataclass_the_record_fully_covers() -> None:
    # a new Authority field must be considered for the record (and the schema)
    fields = {f.name for f in dataclasses.fields(Authority)}
    rec = flow.record(OUTCOMES["init-admit"], SRC, DST, NOW)
    assert fields <= set(ext(rec)["authority"])
    assert fields <= {f.name for f in extension_pb2.Authority.DESCRIPTOR.fields}


def test_fast_rfc3339_equals_datetime_formatting() -> None:
    import datetime as dt
    import random

    from google.protobuf.timestamp_pb2 import Timestamp

    from warrant.integration.flow import rfc3339

    rng = random.Random(7)
    for i in range(20000):
        t = (
            rng.uniform(0, 4e9)
            if i % 2
            else rng.randrange(0, 4 * 10**15) / 1e6 + rng.choice([0, 5e-7])
        )
        stamp = Timestamp()
        stamp.FromDatetime(dt.datetime.fromtimestamp(t, dt.UTC))  # microseconds, like rfc3339
        assert rfc3339(t) == stamp.ToJsonString()


# ---- the direct record -> message path agrees with protobuf's parser --------------------------
def slow(rec: dict[str, Any]) -> flow_pb2.Flow:
    msg = flow_pb2.Flow()
    json_format.ParseDict(rec, msg, ignore_unknown_fields=False)
    return msg


def corpus() -> list[dict[str, Any]]:
    local = flow.EndpointInfo(namespace="shop", pod_name="orders-0", labels=("k8s:app=orders",))
    recs = [flow.record(o, SRC, DST, NOW + 0.123456, "n") for o in OUTCOMES.values()]
    recs += [flow.record(synthetic(r, w), ("fd00::1", 0), DST, NOW, local=local if w else None)
             for r in Reason for w in (True, False)]  # fmt: skip
    recs.append(flow.error_record(("not-an-ip", 1), DST, NOW, "", "boom"))
    recs.append(flow.record(synthetic(Reason.OK, False), SRC, DST, 0.0))  # the epoch itself
    recs.append(flow.record(synthetic(Reason.BAD_MAC, True), SRC, DST, NOW, audit=True))
    return recs


def test_direct_path_gives_protobufs_message_for_every_record() -> None:
    for rec in corpus():
        direct = flow._direct(rec)  # the record() shape never needs the fallback
        assert direct == slow(rec)
        assert flow.to_dict(direct) == rec
        assert flow.response_message(rec) == strict(rec)


MUTATIONS = [
    lambda r: r.update(drop_reason=True),  # a bool where a number goes
    lambda r: r.update(drop_reason="133"),  # protobuf takes numeric strings: the fallback does
    lambda r: r.update(drop_reason=2**32),
    lambda r: r.update(drop_reason=-1),
    lambda r: r.update(drop_reason=1.0),
    lambda r: r.update(uuid=5),
    lambda r: r.update(verdict=2),  # an enum by number
    lambda r: r.update(verdict="forwarded"),
    lambda r: r.update(time="2027-01-15T08:00:00"),  # no zone
    lambda r: r.update(time="2027-01-15T08:00:00+01:00"),
    lambda r: r.update(is_reply=1),
    lambda r: r.update(is_reply=None),
    lambda r: r.update(node_name=None),
    lambda r: r.update(IP=[]),
    lambda r: r["IP"].update(ipVersion=1),
    lambda r: r["l4"].update(TCP={"source_port": 1}),
    lambda r: r["l4"].update(UDP={"sourcePort": 1}),  # the JSON name spelling
    lambda r: r["source"].update(labels=[1]),
    lambda r: r["source"].update(labels="warrant:scope=x"),
    lambda r: r["destination"].update(identity=-5),
    lambda r: r["event_type"].update(type=2**31),
    lambda r: r["extensions"].update(seq="\u0663"),  # a digit, not an ASCII one
    lambda r: r["extensions"].update(seq="18446744073709551616"),
    lambda r: r["extensions"].update(seq=5),
    lambda r: r["extensions"].update(reasonCode=3),
    lambda r: r["extensions"].update(bytes="116"),
    lambda r: r["extensions"].update({"@type": "type.googleapis.com/warrant.Nope"}),
    lambda r: r["extensions"]["authority"].update(expires="tomorrow"),
    lambda r: r["extensions"]["authority"]["hops"].append({"domain": 5}),
    lambda r: r["extensions"]["authority"].update(hops={}),
    lambda r: r["extensions"]["authority"].update(port=70000),
    lambda r: r["extensions"]["authority"].update(link_ids="ab"),
    lambda r: r["extensions"]["authority"]["rights"].update(any_domain="yes"),
    lambda r: r["extensions"]["authority"]["rights"].update(operations=["a", 1]),
    lambda r: r["extensions"]["authority"]["rights"].update(not_before=0),
    lambda r: r["extensions"]["authority"]["rights"].update(grants="all"),
    lambda r: r.update(reason="OK"),
]


@pytest.mark.parametrize("mutate", MUTATIONS)
def test_direct_path_defers_to_protobuf_on_anything_else(mutate: Any) -> None:
    rec = copy.deepcopy(flow.record(OUTCOMES["data-admit"], SRC, DST, NOW, "n"))
    mutate(rec)
    try:
        expected = slow(rec)
    except json_format.ParseError:
        with pytest.raises(json_format.ParseError):
            flow.to_message(rec)
        return
    assert flow.to_message(rec) == expected
