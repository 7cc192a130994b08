"""The credential test vectors (vectors/credentials.json) against the implementation.

(a) every case goes through `Verifier` with its own anchors, revocation lists and
time, and must give exactly the expected outcome; (b) the generator
tools/vectors_credentials.py reproduces the committed file byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vector_helpers import load_generator
from warrant.core.anchors import TrustStore
from warrant.core.constants import Reason
from warrant.core.credential import Verifier
from warrant.core.errors import WarrantError
from warrant.core.revocation import RevocationStore
from warrant.core.rights import Rights

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors" / "credentials.json"
DOC = json.loads(VECTORS.read_text())
CASES: list[dict[str, Any]] = DOC["cases"]
RIGHT_FIELDS = [
    "operations",
    "destinations",
    "not_before",
    "expires",
    "max_hops",
    "allowed_domains",
    "required_domains",
    "forbidden_domains",
    "rate",
]


def rights_json(r: Rights) -> dict[str, Any]:
    def lst(v: tuple[str, ...] | None) -> list[str] | None:
        return None if v is None else list(v)

    return {
        "operations": list(r.operations),
        "destinations": [[d.service, d.port_lo, d.port_hi] for d in r.destinations],
        "not_before": r.not_before,
        "expires": r.expires,
        "max_hops": r.max_hops,
        "allowed_domains": lst(r.allowed_domains),
        "required_domains": list(r.required_domains),
        "forbidden_domains": list(r.forbidden_domains),
        "rate": r.rate,
    }


def run_case(c: dict[str, Any]) -> tuple[Reason, Any]:
    trust = TrustStore.from_mapping(c["anchors"], c["name"])
    revocations = RevocationStore()
    for rl in c["revocations_hex"]:
        revocations.load(bytes.fromhex(rl), trust)
    try:
        chain = Verifier(trust, revocations).verify(bytes.fromhex(c["input_hex"]), c["now"])
    except WarrantError as exc:
        return exc.reason, None
    return Reason.OK, chain


def test_document_shape() -> None:
    assert DOC["version"] == 1
    assert isinstance(DOC["description"], str) and DOC["description"]
    assert len(CASES) >= 50
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))
    for c in CASES:
        assert set(c) == {
            "name", "kind", "description", "input_hex", "anchors", "revocations_hex", "now",
            "expect",
        }, c["name"]  # fmt: skip
        assert c["kind"] == "credential"
        assert isinstance(c["now"], int)
        assert c["expect"]["valid"] is (c["expect"]["reason"] == "OK")
        assert c["expect"]["reason"] in Reason.__members__
        assert c["description"] and "\n" not in c["description"]


def test_vectors_cover_every_required_class() -> None:
    reasons = {c["expect"]["reason"] for c in CASES}
    assert reasons >= {
        "OK", "BAD_SIGNATURE", "UNKNOWN_ANCHOR", "ESCALATION", "EXPIRED", "NOT_YET_VALID",
        "WRONG_SCOPE", "REVOKED", "MALFORMED", "UNKNOWN_VERSION",
    }  # fmt: skip
    widened = {c["expect"].get("widens") for c in CASES if c["expect"]["reason"] == "ESCALATION"}
    assert widened == set(RIGHT_FIELDS)
    depths = {c["expect"]["depth"] for c in CASES if c["expect"]["valid"]}
    assert {1, 2, 3} <= depths
    prefixes = ("forged", "escalated", "expired", "not-yet-valid", "wrong-scope",
                "unknown-anchor", "revoked", "truncated", "bit-flipped", "non-canonical")  # fmt: skip
    for prefix in prefixes:
        assert any(c["name"].startswith(prefix) for c in CASES), prefix
    assert all(c["revocations_hex"] for c in CASES if c["name"].startswith("revoked"))


@pytest.mark.parametrize("c", CASES, ids=[c["name"] for c in CASES])
def test_vector(c: dict[str, Any]) -> None:
    reason, chain = run_case(c)
    expect = c["expect"]
    assert reason.name == expect["reason"]
    if not expect["valid"]:
        return
    assert chain.scope == expect["scope"]
    assert chain.depth == expect["depth"]
    assert chain.holder.hex() == expect["holder"]
    assert chain.chain_digest.hex() == expect["chain_digest"]
    assert [i.hex() for i in chain.link_ids] == expect["link_ids"]
    assert rights_json(chain.rights) == expect["rights"]


def test_generator_reproduces_the_committed_file() -> None:
    gen = load_generator("vectors_credentials")
    assert gen.render() == VECTORS.read_text(), (
        "vectors/credentials.json is stale: run python3 tools/vectors_credentials.py"
    )
    assert gen.main(["--check"]) == 0
