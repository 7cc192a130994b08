"""Every flow record the project emits validates against schemas/flow.schema.json.

The records come from a real receiver (INIT and DATA through two relays, replays,
tampering, unknown sessions, forged credentials) and from every reason code with
and without a verified authority; the schema itself must reject broken records.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import nacl.signing
import pytest

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

SCHEMA = json.loads((Path(__file__).parent.parent / "schemas" / "flow.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
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


def validate(rec: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(rec), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    # and it survives JSON lines unchanged
    assert json.loads(flow.to_json(rec)) == rec


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
    assert (rec["reason"], rec["kind"]) == ("OK", "DATA")
    auth = rec["authority"]
    assert auth["reason"] == "OK" and auth["rule"] == "orders"
    assert auth["scope"] == "acme.prod" and auth["operation"] == "orders.read"
    assert [h["domain"] for h in auth["hops"]] == ["a.net", "b.net"]
    assert [h["index"] for h in auth["hops"]] == [0, 1]
    assert auth["expires"] == flow.rfc3339(NOW + 3600)
    assert len(auth["chain_digest"]) == 64
    assert "warrant:scope=acme.prod" in rec["source"]["labels"]
    assert rec["source"]["identity"] == flow.IDENTITY_UNKNOWN


def test_drop_reasons_use_hubble_names_and_numbers() -> None:
    rec = flow.record(OUTCOMES["data-unknown-session"], SRC, DST, NOW)
    assert (rec["verdict"], rec["drop_reason_desc"], rec["drop_reason"]) == (
        "DROPPED", "AUTH_REQUIRED", 189)  # fmt: skip
    assert rec["reason"] == "UNKNOWN_SESSION" and "authority" not in rec
    rec = flow.record(OUTCOMES["init-unknown-anchor"], SRC, DST, NOW)
    assert (rec["drop_reason_desc"], rec["drop_reason"]) == ("INVALID_IDENTITY", 171)
    rec = flow.record(OUTCOMES["truncated"], SRC, DST, NOW)
    assert (rec["drop_reason_desc"], rec["drop_reason"]) == ("INVALID_PACKET_DROPPED", 134)
    rec = flow.record(OUTCOMES["data-bad-mac"], SRC, DST, NOW)
    assert rec["drop_reason_desc"] == "BAD_MAC" and "drop_reason" not in rec  # Warrant-specific
    # the session's authority, which the packet claimed
    assert rec["authority"]["reason"] == "BAD_MAC"
    assert rec["event_type"] == {"type": flow.EVENT_DROP, "sub_type": 0}


def test_hubble_column_names_are_real_drop_reasons() -> None:
    hubble_names = set(SCHEMA["properties"]["drop_reason_desc"]["anyOf"][0]["enum"])
    expected_numbers = {"POLICY_DENIED": 133, "INVALID_PACKET_DROPPED": 134,
                        "CT_MAP_INSERTION_FAILED": 155, "INVALID_IDENTITY": 171,
                        "POLICY_DENY": 181, "AUTH_REQUIRED": 189}  # fmt: skip
    for name, number in expected_numbers.items():
        assert flow.HUBBLE_DROP_REASONS[name] == number
    for info in REASONS.values():
        if info.hubble:
            assert info.hubble in hubble_names, info
            assert info.hubble in flow.HUBBLE_DROP_REASONS, info


def test_schema_knows_every_warrant_reason() -> None:
    warrant_names = set(SCHEMA["properties"]["drop_reason_desc"]["anyOf"][1]["enum"])
    assert warrant_names == {r.name for r in Reason if r != Reason.OK}
    names = {r.name for r in Reason}
    assert set(SCHEMA["$defs"]["authority"]["properties"]["reason"]["enum"]) == names
    assert set(SCHEMA["properties"]["reason"]["enum"]) == names | {"ERROR"}


# ---- every reason, with and without authority, every verdict ----------------------------------
@pytest.mark.parametrize("with_authority", [True, False])
@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.name)
def test_every_reason_validates(reason: Reason, with_authority: bool) -> None:
    rec = flow.record(synthetic(reason, with_authority), SRC, DST, NOW, "n")
    validate(rec)
    assert rec["reason"] == reason.name and rec["reason_code"] == int(reason)
    assert ("authority" in rec) == with_authority
    if with_authority:
        assert rec["authority"]["reason"] == reason.name
    if reason not in (Reason.OK, Reason.NOT_WARRANT):
        assert rec["verdict"] == "DROPPED"
        assert rec["drop_reason_desc"] == (REASONS[reason].hubble or reason.name)


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
    assert rec["time"] == "2027-01-15T08:00:00.250000Z"
    assert flow.timestamp_of(rec) == NOW + 0.25


def test_get_flows_response_wraps_like_hubble() -> None:
    rec = flow.record(synthetic(Reason.OK, True), SRC, DST, NOW, "node-7")
    wrapped = flow.get_flows_response(rec)
    assert wrapped == {"flow": rec, "node_name": "node-7", "time": rec["time"]}


# ---- the schema can fail -------------------------------------------------------------------------
def admitted() -> dict[str, Any]:
    return flow.record(OUTCOMES["data-admit"], SRC, DST, NOW)


@pytest.mark.parametrize("field", sorted(SCHEMA["required"]))
def test_schema_rejects_missing_required_field(field: str) -> None:
    rec = admitted()
    del rec[field]
    assert not VALIDATOR.is_valid(rec)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(verdict="ALLOWED"),  # not a Hubble verdict
        lambda r: r.update(verdict="DROPPED"),  # a drop without drop_reason_desc
        lambda r: r.update(drop_reason_desc="POLICY_DENIED"),  # a reason on a forwarded flow
        lambda r: r.update(dropReasonDesc="POLICY_DENIED"),  # camelCase is not the proto name
        lambda r: r["IP"].update(ipVersion="4"),
        lambda r: r["l4"].update(TCP={"source_port": 1, "destination_port": 2}),  # two protocols
        lambda r: r["l4"]["UDP"].update(destination_port=70000),
        lambda r: r["authority"].pop("scope"),  # verified authority without a scope
        lambda r: r["authority"]["hops"].append({"domain": "x.net"}),
        lambda r: r["authority"].update(reason="NOPE"),
        lambda r: r.update(reason="NOPE"),
        lambda r: r.pop("reason"),
        lambda r: r.update(time="yesterday"),
        lambda r: r["source"].update(labels=["no-source-prefix"]),
    ],
)
def test_schema_rejects_broken_records(mutate: Any) -> None:
    rec = copy.deepcopy(admitted())
    assert VALIDATOR.is_valid(rec)
    mutate(rec)
    assert not VALIDATOR.is_valid(rec)


def test_authority_must_be_complete_when_present() -> None:
    rec = flow.record(OUTCOMES["truncated"], SRC, DST, NOW)
    assert VALIDATOR.is_valid(rec)
    rec["authority"] = {"scope": "acme.prod", "reason": "TRUNCATED"}
    assert not VALIDATOR.is_valid(rec)


def test_authority_is_a_dataclass_the_record_fully_covers() -> None:
    # a new Authority field must be considered for the record (and the schema)
    fields = {f.name for f in dataclasses.fields(Authority)}
    rec = flow.record(OUTCOMES["init-admit"], SRC, DST, NOW)
    assert fields <= set(rec["authority"])
    assert fields <= set(SCHEMA["$defs"]["authority"]["properties"])


def test_fast_rfc3339_equals_datetime_formatting() -> None:
    import datetime as dt
    import random

    from warrant.integration.flow import rfc3339

    rng = random.Random(7)
    for i in range(20000):
        t = (
            rng.uniform(0, 4e9)
            if i % 2
            else rng.randrange(0, 4 * 10**15) / 1e6 + rng.choice([0, 5e-7])
        )
        assert rfc3339(t) == dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
