"""The hop-history test vectors (vectors/hops.json) against the implementation.

(a) keys, hop keys, hop statements and hop records against `warrant.core.keys`,
`warrant.core.kdf`, `warrant.core.hop`, `warrant.core.mac` and `warrant.core.wire`; (b) every relay
case through `hop.Relay.forward`; (c) every INIT and DATA case through a fresh
`Receiver`; (d) every path case through `hop.check_path`; (e) the vectors
cover every hop reason; (f) tools/vectors_hops.py reproduces the committed
file byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from vector_helpers import load_generator
from warrant.core import keys
from warrant.core.admission import Policy, PolicyModel
from warrant.core.anchors import TrustStore
from warrant.core.constants import Reason, Verdict
from warrant.core.errors import WarrantError
from warrant.core.hop import Relay, check_path, statement_message, verify_statements
from warrant.core.kdf import hop_key, transcript, x25519
from warrant.core.mac import hop_mac
from warrant.core.receiver import Receiver
from warrant.core.rights import Destination, Rights
from warrant.core.wire import DataPacket, HopStatement, InitPacket

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors" / "hops.json"
DOC: dict[str, Any] = json.loads(VECTORS.read_text())
PREFIX = "warrant/vectors/hops/v1/"
KEYS = {k["label"]: keys.from_seed(bytes.fromhex(k["seed_hex"])) for k in DOC["keys"]}
NOW = float(DOC["now"])
SOURCE = (DOC["source"][0], DOC["source"][1])
PORT = DOC["receiver"]["port"]
HOP_REASONS = {
    "HOP_CHAIN_BROKEN",
    "UNTRUSTED_RELAY",
    "TOO_MANY_HOPS",
    "FORBIDDEN_DOMAIN",
    "REQUIRED_DOMAIN_MISSING",
    "DOMAIN_NOT_ALLOWED",
}


def pub(label: str) -> bytes:
    return bytes(KEYS[label].verify_key)


def key(label: str) -> nacl.signing.SigningKey:
    return KEYS[label]


def receiver(rule: dict[str, Any] | None = None) -> Receiver:
    setup = DOC["receiver"]
    model: dict[str, Any] = dict(setup["policy"])
    if rule is not None:
        model.update(default="deny", rules=[{"name": "case", **rule}])
    trust = TrustStore.from_mapping(model["anchors"], "vectors")
    policy = Policy(PolicyModel.model_validate(model), trust)
    return Receiver(key(setup["key"]), policy, started_at=float(setup["started_at"]))


def b(h: str) -> bytes:
    return bytes.fromhex(h)


# ---- (a) derivations ---------------------------------------------------------------------------
@pytest.mark.parametrize("entry", DOC["keys"], ids=lambda e: e["label"])
def test_keys(entry: dict[str, str]) -> None:
    assert b(entry["seed_hex"]) == hashlib.sha256((PREFIX + entry["label"]).encode()).digest()
    public = pub(entry["label"])
    assert public.hex() == entry["public_hex"]
    assert keys.x25519_public(public).hex() == entry["x25519_public_hex"]
    assert keys.key_id(public).hex() == entry["key_id_hex"]


@pytest.mark.parametrize("entry", DOC["hop_keys"], ids=lambda e: e["relay"])
def test_hop_keys_from_both_sides(entry: dict[str, str]) -> None:
    relay, rcv = key(entry["relay"]), key(entry["receiver"])
    from_relay = x25519(keys.x25519_secret(relay), keys.x25519_public(pub(entry["receiver"])))
    from_receiver = x25519(keys.x25519_secret(rcv), keys.x25519_public(pub(entry["relay"])))
    assert from_relay == from_receiver == b(entry["shared_hex"])
    assert hop_key(from_relay, b(entry["session_id_hex"])).hex() == entry["hop_key_hex"]


def test_statements() -> None:
    sent = InitPacket.decode(b(DOC["init"]["sent_hex"]))
    th = transcript(sent.signed_region(), sent.holder_sig)
    assert th.hex() == DOC["session"]["transcript_hex"]
    final = InitPacket.decode(b(DOC["init"]["after_hex"][-1]))
    assert len(final.statements) == len(DOC["statements"])
    for st, entry in zip(final.statements, DOC["statements"], strict=True):
        assert entry["th_hex"] == th.hex()
        part = HopStatement.signed_part(st.relay_public, st.next_hop, st.domain)
        assert part.hex() == entry["signed_part_hex"]
        msg = statement_message(th, entry["index"], b(entry["prev_signature_hex"]), part)
        assert msg.hex() == entry["message_hex"]
        nacl.signing.VerifyKey(pub(entry["relay"])).verify(msg, st.signature)
        assert st.signature.hex() == entry["signature_hex"]
        assert st.encode().hex() == entry["encoded_hex"]
        assert (st.domain, st.next_hop.hex()) == (entry["domain"], entry["next_hop_hex"])
    # the statements start where the INIT's fixed part ends
    off = DOC["init"]["statements_offset"]
    assert b(DOC["init"]["after_hex"][-1])[off:].hex() == "".join(
        e["encoded_hex"] for e in DOC["statements"]
    )
    # and the receiver pins exactly this path
    r = receiver()
    path = verify_statements(final, th, r.key_id, keys.x25519_secret(r.key), r.policy.trust)
    assert [(h.domain, h.key.hex()) for h in path] == [
        (DOC["statements"][i]["domain"], k["hop_key_hex"]) for i, k in enumerate(DOC["hop_keys"])
    ]


def test_records() -> None:
    data = DOC["data"]
    final = DataPacket.decode(b(data["after_hex"][-1]))
    assert final.mac.hex() == data["origin_mac_hex"]
    hop_keys = {k["relay"]: b(k["hop_key_hex"]) for k in DOC["hop_keys"]}
    prev = final.mac
    for rec, entry in zip(final.hops, data["records"], strict=True):
        assert b(entry["prev_hex"]) == prev[:8]
        assert (prev[:8] + rec.relay_tag + bytes([entry["index"]])).hex() == entry["input_hex"]
        mac = hop_mac(hop_keys[entry["relay"]], prev, rec.relay_tag, entry["index"])
        assert mac.hex() == entry["hop_mac_hex"] == rec.mac.hex()
        raw = b(data["after_hex"][-1])
        assert raw[entry["offset"] : entry["offset"] + 12].hex() == entry["record_hex"]
        prev = rec.mac
    # relays touch nothing but hop_count and the records
    sent = b(data["sent_hex"])
    for i, after in enumerate(data["after_hex"]):
        raw = b(after)
        assert raw[2] == i + 1
        assert raw[:2] + raw[3:36] == sent[:2] + sent[3:36]
        assert raw[36 + 12 * (i + 1) :] == sent[36:]


# ---- (b) relays -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", DOC["relay_cases"], ids=lambda c: c["name"])
def test_relay_case(case: dict[str, str]) -> None:
    relay = Relay(key(case["relay"]), case["domain"], pub(case["next_hop"]), pub("receiver"))
    if "output_hex" in case:
        assert relay.forward(b(case["input_hex"])).hex() == case["output_hex"]
    else:
        with pytest.raises(WarrantError) as exc:
            relay.forward(b(case["input_hex"]))
        assert exc.value.reason.name == case["reason"]


# ---- (c) receivers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", DOC["init_cases"], ids=lambda c: c["name"])
def test_init_case(case: dict[str, Any]) -> None:
    out = receiver(case.get("rule")).handle(b(case["packet_hex"]), SOURCE, PORT, NOW)
    assert out.reason.name == case["expect"], out.detail
    assert (out.verdict == Verdict.ADMIT) == (case["expect"] == "OK")


def test_admitted_init_carries_the_path() -> None:
    out = receiver().handle(b(DOC["init"]["after_hex"][-1]), SOURCE, PORT, NOW)
    assert out.authority is not None
    assert out.authority.hops == tuple(
        (s["domain"], keys.key_id(pub(s["relay"])).hex()) for s in DOC["statements"]
    )


@pytest.mark.parametrize("case", DOC["data_cases"], ids=lambda c: c["name"])
def test_data_case(case: dict[str, str]) -> None:
    r = receiver()
    opened = r.handle(b(DOC["init"]["after_hex"][-1]), SOURCE, PORT, NOW)
    assert opened.reason == Reason.OK
    out = r.handle(b(case["packet_hex"]), SOURCE, PORT, NOW)
    assert out.reason.name == case["expect"], out.detail
    if case["expect"] == "OK":
        assert out.payload == b(DOC["data"]["payload_hex"])


# ---- (d) path constraints -----------------------------------------------------------------------
@pytest.mark.parametrize("case", DOC["path_cases"], ids=lambda c: "-".join(c["domains"]) or "none")
def test_path_case(case: dict[str, Any]) -> None:
    cred = case["credential"]
    allowed = cred.get("allowed_domains")
    rights = Rights(
        operations=("*",),
        destinations=(Destination("*", 0, 65535),),
        not_before=0,
        expires=2**40,
        max_hops=cred.get("max_hops", 8),
        allowed_domains=tuple(allowed) if allowed is not None else None,
        required_domains=tuple(cred.get("required_domains", ())),
        forbidden_domains=tuple(cred.get("forbidden_domains", ())),
    )
    pol = case["policy"]
    try:
        check_path(
            case["domains"], rights, pol.get("max_hops"), pol.get("via", ()), pol.get("not_via", ())
        )
        got = "OK"
    except WarrantError as exc:
        got = exc.reason.name
    assert got == case["expect"]


# ---- (e) coverage and (f) reproducibility --------------------------------------------------------
def test_vectors_cover_every_hop_reason() -> None:
    seen = {c["expect"] for c in DOC["init_cases"] + DOC["data_cases"]}
    seen |= {c["expect"] for c in DOC["path_cases"]}
    assert seen >= HOP_REASONS
    kinds = {c["name"] for c in DOC["data_cases"]}
    for attack in (
        "removed-last",
        "reordered",
        "duplicated",
        "inserted-untrusted",
        "spliced-session",
    ):
        assert attack in kinds
        assert attack in {c["name"] for c in DOC["init_cases"]} or attack == "spliced-session"


def test_generator_reproduces_the_file() -> None:
    assert load_generator("vectors_hops").render() == VECTORS.read_text()


def test_spec_worked_example_matches_the_vectors() -> None:
    """Every hex value and offset in SPEC.md 7.5 comes from these vectors."""
    spec = (ROOT / "SPEC.md").read_text()
    section = spec.split("### 7.5 Worked example", 1)[1].split("\n## ", 1)[0]
    values = set(re.findall(r"`([0-9a-f]{8,32})`", section))
    assert len(values) >= 10
    final_init = DOC["init"]["after_hex"][-1]
    final_data = DOC["data"]["after_hex"][-1]
    known = json.dumps(DOC)
    for v in values:
        assert v in known, f"SPEC 7.5 value {v} is not in vectors/hops.json"
    data = b(final_data)
    assert (len(b(DOC["init"]["sent_hex"])), len(b(final_init)), len(data)) == (348, 560, 90)
    assert data[36:40].hex() == "bf551f4e" and data[52:60].hex() == "c3f47d255498b903"
    off = DOC["init"]["statements_offset"]
    assert b(final_init)[off + 32 : off + 36].hex() == "bc90b6fd"
    assert b(final_init)[off + 106 + 32 : off + 106 + 36].hex() == "2a42053c"
