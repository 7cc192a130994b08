"""Attack tests for the credential layer: one section per security property (BRIEF.md).

Every test plays the attacker of the threat model (holds a narrow credential and
its own keys, can rewrite bytes, cannot sign as an anchor or an honest holder)
and asserts the exact reason code the verifier drops the credential with.
"""

from __future__ import annotations

import dataclasses
import hashlib

import cbor2
import nacl.signing
import pytest

from credential_helpers import forge_link, trust
from warrant.core import keys
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import CLOCK_SKEW, SIG_CONTEXT_REVOCATION, Reason
from warrant.core.credential import (
    Credential,
    Link,
    Verifier,
    delegate,
    encode_body,
    issue,
    signed_message,
)
from warrant.core.errors import WarrantError
from warrant.core.revocation import RevocationList
from warrant.core.rights import Destination, Grant

NOW = 1_800_000_000
SCOPE_A = "acme.prod"
SCOPE_B = "partner.prod"
ZERO = bytes(32)


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-attack/" + label.encode()).digest())


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


ANCHOR_A, ANCHOR_B = key("anchor-a"), key("anchor-b")
ALICE, BOB, CAROL, DAVE = key("alice"), key("bob"), key("carol"), key("dave")
MALLORY = key("mallory")  # the attacker's own key

ROOT_GRANT = Grant(
    operations=("orders.read", "orders.list.*"),
    destinations=(Destination("orders", 8000, 8099),),
    not_before=NOW - 3600,
    expires=NOW + 3600,
    max_hops=3,
    allowed_domains=("a.net", "b.net"),
    required_domains=("a.net",),
    forbidden_domains=("evil.net",),
    rate=50,
)


def make_root(
    signer: nacl.signing.SigningKey,
    scope: str,
    anchor_id: bytes,
    holder: bytes,
    grant: Grant = ROOT_GRANT,
) -> Credential:
    """A root link naming any scope and anchor id, signed by any key."""
    body = encode_body(scope, anchor_id, holder, grant)
    sig = signer.sign(signed_message(ZERO, body)).signature
    return Credential((Link.decode(body, sig, root=True),))


def encode_links(links: list[tuple[bytes, bytes]]) -> bytes:
    items: list[object] = [1]
    for body, sig in links:
        items += [body, sig]
    return cbor2.dumps(items, canonical=True)


def honest_chain() -> tuple[Credential, Credential, Credential]:
    c1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), ROOT_GRANT)
    c2 = delegate(c1, ALICE, pub(BOB), Grant(operations=("orders.read",)))
    c3 = delegate(c2, BOB, pub(CAROL), Grant(max_hops=2))
    return c1, c2, c3


def reason(v: Verifier, cred: Credential | bytes, now: float = NOW) -> Reason:
    data = cred.encode() if isinstance(cred, Credential) else cred
    try:
        v.verify(data, now)
    except WarrantError as exc:
        return exc.reason
    return Reason.OK


def verifier_a() -> Verifier:
    return Verifier(trust((SCOPE_A, ANCHOR_A), (SCOPE_B, ANCHOR_B)))


def test_honest_chain_is_admitted() -> None:
    """The baseline every attack below departs from."""
    v = verifier_a()
    for c in honest_chain():
        assert reason(v, c) is Reason.OK


# ---- P1 forgery -------------------------------------------------------------------------------
def test_p1_self_signed_root_claiming_the_scope() -> None:
    """Mallory acts as her own anchor for scope A."""
    forged = make_root(MALLORY, SCOPE_A, keys.anchor_id(pub(MALLORY)), pub(MALLORY))
    assert reason(verifier_a(), forged) is Reason.UNKNOWN_ANCHOR


def test_p1_root_naming_the_real_anchor_signed_by_another_key() -> None:
    forged = make_root(MALLORY, SCOPE_A, keys.anchor_id(pub(ANCHOR_A)), pub(MALLORY))
    assert reason(verifier_a(), forged) is Reason.BAD_SIGNATURE
    # ... and a longer forged chain fails at the same root link.
    longer = forge_link(forged, MALLORY, pub(BOB), Grant())
    assert reason(verifier_a(), longer) is Reason.BAD_SIGNATURE


def test_p1_link_signed_by_someone_other_than_the_holder() -> None:
    """Alice holds c1; Mallory signs a delegation from it to herself."""
    c1, c2, _ = honest_chain()
    assert reason(verifier_a(), forge_link(c1, MALLORY, pub(MALLORY), Grant())) is (
        Reason.BAD_SIGNATURE
    )
    # Bob (the holder of link 2) signing link 2 itself is just as wrong.
    assert reason(verifier_a(), forge_link(c1, BOB, pub(MALLORY), Grant())) is (
        Reason.BAD_SIGNATURE
    )
    # Alice signing link 3 of a chain Bob holds.
    assert reason(verifier_a(), forge_link(c2, ALICE, pub(MALLORY), Grant())) is (
        Reason.BAD_SIGNATURE
    )


def test_p1_link_spliced_from_another_chain_with_the_same_holders() -> None:
    """Two chains anchor -> Alice -> Bob; link 2 of one moved onto the other."""
    x1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), ROOT_GRANT)
    y1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), dataclasses.replace(ROOT_GRANT, rate=10))
    x2 = delegate(x1, ALICE, pub(BOB), Grant(operations=("orders.read",)))
    y2 = delegate(y1, ALICE, pub(BOB), Grant())  # same holders, wider operations
    v = verifier_a()
    assert reason(v, x2) is Reason.OK and reason(v, y2) is Reason.OK
    spliced = encode_links(
        [(x1.links[0].body, x1.links[0].signature), (y2.links[1].body, y2.links[1].signature)]
    )
    assert reason(v, spliced) is Reason.BAD_SIGNATURE
    assert reason(verifier_a(), spliced) is Reason.BAD_SIGNATURE  # cold cache too
    # A link moved one position down (into a chain one link longer) fails too.
    x3 = delegate(x2, BOB, pub(ALICE), Grant())
    moved = encode_links(
        [(link.body, link.signature) for link in x3.links]
        + [(x2.links[1].body, x2.links[1].signature)]
    )
    assert reason(v, moved) is Reason.BAD_SIGNATURE


def test_p1_anchor_id_of_another_scopes_anchor() -> None:
    """B's anchor issues a credential claiming scope A (B is trusted, but only for B)."""
    forged = issue(ANCHOR_B, SCOPE_A, pub(MALLORY), ROOT_GRANT)
    assert forged.anchor_id == keys.anchor_id(pub(ANCHOR_B))
    assert reason(verifier_a(), forged) is Reason.UNKNOWN_ANCHOR


def test_p1_tampered_body_without_resigning() -> None:
    """The holder of a narrow link rewrites it (canonically) to widen it; signature breaks."""
    _, c2, _ = honest_chain()
    wide = encode_body(None, None, pub(BOB), Grant(operations=("orders.read", "orders.list.*")))
    tampered = encode_links(
        [(c2.links[0].body, c2.links[0].signature), (wide, c2.links[1].signature)]
    )
    assert Credential.decode(tampered)  # well formed: only the signature is wrong
    assert reason(verifier_a(), tampered) is Reason.BAD_SIGNATURE
    # Rewriting the root's holder to Mallory.
    body = encode_body(SCOPE_A, keys.anchor_id(pub(ANCHOR_A)), pub(MALLORY), ROOT_GRANT)
    assert reason(verifier_a(), encode_links([(body, c2.links[0].signature)])) is (
        Reason.BAD_SIGNATURE
    )


def test_p1_small_order_holder_key_cannot_be_extended() -> None:
    """A delegation to the identity point: the 'trivial' signature (R=identity, S=0) fails."""
    c1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), ROOT_GRANT)
    identity = bytes([1]) + bytes(31)
    c2 = delegate(c1, ALICE, identity, Grant())
    body = encode_body(None, None, pub(MALLORY), Grant())
    trivial = encode_links(
        [(link.body, link.signature) for link in c2.links] + [(body, identity + bytes(32))]
    )
    assert reason(verifier_a(), trivial) is Reason.BAD_SIGNATURE


def test_p1_dropping_the_root_link() -> None:
    """Presenting link 2 alone (it names no scope or anchor) does not parse as a chain."""
    _, c2, _ = honest_chain()
    alone = encode_links([(c2.links[1].body, c2.links[1].signature)])
    assert reason(verifier_a(), alone) is Reason.MALFORMED


# ---- P2 escalation ----------------------------------------------------------------------------
# Each grant widens exactly one right of ROOT_GRANT (the parent Mallory was delegated).
ESCALATIONS = {
    "operation-new-name": Grant(operations=("orders.write",)),
    "operation-parent-of-pattern": Grant(operations=("orders.list",)),
    "operation-wildcard": Grant(operations=("*",)),
    "operation-sibling-pattern": Grant(operations=("orders.*",)),
    "destination-service": Grant(destinations=(Destination("billing", 8000, 8000),)),
    "destination-any-service": Grant(destinations=(Destination("*", 8000, 8000),)),
    "port-below-range": Grant(destinations=(Destination("orders", 7999, 8010),)),
    "port-above-range": Grant(destinations=(Destination("orders", 8090, 8100),)),
    "port-all": Grant(destinations=(Destination("orders", 0, 65535),)),
    "not-before-earlier": Grant(not_before=NOW - 3601),
    "expiry-later": Grant(expires=NOW + 3601),
    "max-hops": Grant(max_hops=4),
    "allowed-domains-added": Grant(allowed_domains=("a.net", "b.net", "c.net")),
    "required-domains-dropped": Grant(required_domains=()),
    "required-domains-swapped": Grant(required_domains=("b.net",)),
    "forbidden-domains-dropped": Grant(forbidden_domains=()),
    "rate": Grant(rate=51),
}


@pytest.mark.parametrize("grant", ESCALATIONS.values(), ids=ESCALATIONS.keys())
def test_p2_escalation_by_a_legitimate_holder(grant: Grant) -> None:
    """Mallory holds a legitimate narrow-ish credential and signs a wider delegation herself."""
    c1 = issue(ANCHOR_A, SCOPE_A, pub(MALLORY), ROOT_GRANT)
    with pytest.raises(WarrantError) as exc:
        delegate(c1, MALLORY, pub(DAVE), grant)
    assert exc.value.reason is Reason.ESCALATION
    forged = forge_link(c1, MALLORY, pub(DAVE), grant)
    assert reason(verifier_a(), forged) is Reason.ESCALATION


@pytest.mark.parametrize("grant", ESCALATIONS.values(), ids=ESCALATIONS.keys())
def test_p2_escalation_deep_in_the_chain(grant: Grant) -> None:
    """Link 3 widens link 2 (link 2 only inherits); verified through a warm prefix cache."""
    c1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), ROOT_GRANT)
    c2 = delegate(c1, ALICE, pub(MALLORY), Grant())
    v = verifier_a()
    assert reason(v, c2) is Reason.OK
    assert reason(v, forge_link(c2, MALLORY, pub(DAVE), grant)) is Reason.ESCALATION
    assert v.cache_hits >= 1


def test_p2_regaining_what_an_intermediate_link_removed() -> None:
    c1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), ROOT_GRANT)
    c2 = delegate(c1, ALICE, pub(MALLORY), Grant(operations=("orders.read",), rate=5))
    for grant in (Grant(operations=("orders.list.x",)), Grant(rate=6)):
        assert reason(verifier_a(), forge_link(c2, MALLORY, pub(DAVE), grant)) is (
            Reason.ESCALATION
        )


# ---- P5 time ----------------------------------------------------------------------------------
def test_p5_expired() -> None:
    _, _, c3 = honest_chain()
    assert reason(verifier_a(), c3, NOW + 3600 + CLOCK_SKEW + 1) is Reason.EXPIRED
    assert reason(verifier_a(), c3, NOW + 10 * 86400) is Reason.EXPIRED


def test_p5_not_yet_valid() -> None:
    _, _, c3 = honest_chain()
    assert reason(verifier_a(), c3, NOW - 3600 - CLOCK_SKEW - 1) is Reason.NOT_YET_VALID


def test_p5_beyond_skew_but_not_within() -> None:
    _, _, c3 = honest_chain()
    v = verifier_a()
    assert reason(v, c3, NOW + 3600 + CLOCK_SKEW) is Reason.OK
    assert reason(v, c3, NOW + 3600 + CLOCK_SKEW + 0.5) is Reason.EXPIRED
    assert reason(v, c3, NOW - 3600 - CLOCK_SKEW) is Reason.OK
    assert reason(v, c3, NOW - 3600 - CLOCK_SKEW - 0.5) is Reason.NOT_YET_VALID


def test_p5_intermediate_link_expiry_binds_the_whole_chain() -> None:
    """Link 2 expires early; link 3 inherits that (it cannot outlive its parent)."""
    c1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), ROOT_GRANT)
    c2 = delegate(c1, ALICE, pub(BOB), Grant(expires=NOW - 600))
    c3 = delegate(c2, BOB, pub(CAROL), Grant())
    assert reason(verifier_a(), c3) is Reason.EXPIRED
    assert reason(verifier_a(), c1) is Reason.OK


def test_p5_anchor_outside_its_window() -> None:
    _, _, c3 = honest_chain()
    late = TrustStore()
    late.add(Anchor(SCOPE_A, pub(ANCHOR_A), not_after=NOW - CLOCK_SKEW - 1))
    assert reason(Verifier(late), c3) is Reason.EXPIRED
    early = TrustStore()
    early.add(Anchor(SCOPE_A, pub(ANCHOR_A), not_before=NOW + CLOCK_SKEW + 1))
    assert reason(Verifier(early), c3) is Reason.NOT_YET_VALID


# ---- P7 scope ---------------------------------------------------------------------------------
def test_p7_scope_a_credential_where_only_b_is_trusted() -> None:
    _, _, c3 = honest_chain()
    only_b = Verifier(trust((SCOPE_B, ANCHOR_B)))
    assert reason(only_b, c3) is Reason.WRONG_SCOPE
    # The same through restricted_to on a store that trusts both.
    both = trust((SCOPE_A, ANCHOR_A), (SCOPE_B, ANCHOR_B))
    assert reason(Verifier(both), c3) is Reason.OK
    assert reason(Verifier(both.restricted_to([SCOPE_B])), c3) is Reason.WRONG_SCOPE


def test_p7_same_anchor_key_listed_under_b_only() -> None:
    """A's anchor key is trusted, but for scope B: its scope-A credentials are not admitted."""
    _, _, c3 = honest_chain()
    b_only = Verifier(trust((SCOPE_B, ANCHOR_A)))
    assert reason(b_only, c3) is Reason.WRONG_SCOPE  # scope A not configured at all
    b_and_other_a = Verifier(trust((SCOPE_B, ANCHOR_A), (SCOPE_A, ANCHOR_B)))
    assert reason(b_and_other_a, c3) is Reason.UNKNOWN_ANCHOR  # A configured, other anchor


def test_p7_scope_is_signed_and_cannot_be_rewritten() -> None:
    """Rewriting the root's scope from A to B (where the anchor is trusted) breaks the signature."""
    c1, _, _ = honest_chain()
    body = encode_body(SCOPE_B, keys.anchor_id(pub(ANCHOR_A)), pub(ALICE), ROOT_GRANT)
    rewritten = encode_links([(body, c1.links[0].signature)])
    assert reason(Verifier(trust((SCOPE_B, ANCHOR_A))), rewritten) is Reason.BAD_SIGNATURE


# ---- P8 revocation ----------------------------------------------------------------------------
def revoked_verifier(**kw: list[bytes]) -> Verifier:
    v = verifier_a()
    rl = RevocationList.sign(ANCHOR_A, SCOPE_A, 1, **kw)
    assert v.revocations.load(rl.encode(), v.trust) is True  # travels as bytes
    return v


def test_p8_revoked_root_link() -> None:
    c1, c2, c3 = honest_chain()
    sibling = delegate(c1, ALICE, pub(DAVE), Grant())
    v = revoked_verifier(link_ids=[c1.link_ids()[0]])
    for c in (c1, c2, c3, sibling):
        assert reason(v, c) is Reason.REVOKED


def test_p8_revoked_middle_link_revokes_all_delegations_from_it() -> None:
    c1, c2, c3 = honest_chain()
    other3 = delegate(c2, BOB, pub(DAVE), Grant(rate=1))
    v = revoked_verifier(link_ids=[c2.link_ids()[1]])
    assert reason(v, c2) is Reason.REVOKED
    assert reason(v, c3) is Reason.REVOKED
    assert reason(v, other3) is Reason.REVOKED
    assert reason(v, c1) is Reason.OK  # the parent stays valid
    assert reason(v, delegate(c1, ALICE, pub(DAVE), Grant())) is Reason.OK


def test_p8_revoked_holder_key() -> None:
    c1, c2, c3 = honest_chain()
    v = revoked_verifier(revoked_keys=[pub(BOB)])
    assert reason(v, c2) is Reason.REVOKED  # Bob holds
    assert reason(v, c3) is Reason.REVOKED  # Bob signs
    assert reason(v, c1) is Reason.OK
    # Bob's key anywhere in any chain, even one freshly issued to him.
    assert reason(v, issue(ANCHOR_A, SCOPE_A, pub(BOB), ROOT_GRANT)) is Reason.REVOKED


def test_p8_revoked_anchor_key() -> None:
    c1, c2, c3 = honest_chain()
    v = revoked_verifier(revoked_keys=[pub(ANCHOR_A)])
    for c in (c1, c2, c3):
        assert reason(v, c) is Reason.REVOKED


def test_p8_replayed_old_list_does_not_unrevoke() -> None:
    _, c2, _ = honest_chain()
    v = verifier_a()
    old = RevocationList.sign(ANCHOR_A, SCOPE_A, 1).encode()
    new = RevocationList.sign(ANCHOR_A, SCOPE_A, 2, link_ids=[c2.link_ids()[1]]).encode()
    assert v.revocations.load(new, v.trust) is True
    assert v.revocations.load(old, v.trust) is False
    assert reason(v, c2) is Reason.REVOKED


def test_p8_forged_list_cannot_revoke_or_unrevoke() -> None:
    _, c2, _ = honest_chain()
    v = verifier_a()
    v.revocations.load(
        RevocationList.sign(ANCHOR_A, SCOPE_A, 1, link_ids=[c2.link_ids()[1]]), v.trust
    )
    real = RevocationList.sign(ANCHOR_A, SCOPE_A, 99)  # an empty list with a high serial...
    forged = cbor2.dumps([real.body, MALLORY.sign(SIG_CONTEXT_REVOCATION + real.body).signature])
    with pytest.raises(WarrantError) as exc:  # ...signed by Mallory
        v.revocations.load(forged, v.trust)
    assert exc.value.reason is Reason.BAD_SIGNATURE
    assert reason(v, c2) is Reason.REVOKED


def test_p8_revocation_checked_on_cached_chains() -> None:
    _, c2, c3 = honest_chain()
    v = verifier_a()
    assert reason(v, c3) is Reason.OK
    rl = RevocationList.sign(ANCHOR_A, SCOPE_A, 1, link_ids=[c2.link_ids()[1]])
    v.revocations.load(rl, v.trust)
    assert reason(v, c3) is Reason.REVOKED


# ---- P10 malformed ----------------------------------------------------------------------------
def test_p10_every_truncation_of_a_depth3_credential() -> None:
    _, _, c3 = honest_chain()
    data = c3.encode()
    v = verifier_a()
    assert reason(v, data) is Reason.OK
    seen = set()
    for n in range(len(data)):
        try:
            v.verify(data[:n], NOW)
        except WarrantError as exc:
            assert exc.reason in (Reason.MALFORMED, Reason.UNKNOWN_VERSION), (n, exc)
            seen.add(exc.reason)
        else:
            pytest.fail(f"truncation to {n} bytes accepted")
    assert Reason.MALFORMED in seen


def _root_parts() -> tuple[bytes, bytes]:
    c1 = issue(ANCHOR_A, SCOPE_A, pub(ALICE), ROOT_GRANT)
    return c1.links[0].body, c1.links[0].signature


def _resigned(body: bytes) -> bytes:
    """A one-link credential whose (non-canonical) root body is validly signed by the anchor."""
    sig = ANCHOR_A.sign(signed_message(ZERO, body)).signature
    return b"\x83\x01" + cbor2.dumps(body) + cbor2.dumps(sig)


def _root_map() -> dict[int, object]:
    m: dict[int, object] = cbor2.loads(_root_parts()[0])
    return m


def _encode_map_reversed(m: dict[int, object]) -> bytes:
    """Map with keys in descending order (canonical order is ascending)."""
    out = bytes([0xA0 + len(m)])
    for k in sorted(m, reverse=True):
        out += cbor2.dumps(k) + cbor2.dumps(m[k], canonical=True)
    return out


def _noncanonical_cases() -> dict[str, bytes]:
    body, sig = _root_parts()
    canon = b"\x83\x01" + cbor2.dumps(body) + cbor2.dumps(sig)
    m = _root_map()
    assert canon == encode_links([(body, sig)])
    expires, ops = m[6], m[3]
    assert isinstance(expires, int) and isinstance(ops, list) and len(ops) == 2
    bigger_int = body.replace(cbor2.dumps(expires), b"\x1b" + expires.to_bytes(8, "big"))
    assert bigger_int != body
    return {
        "outer-version-non-minimal": b"\x83\x18\x01" + cbor2.dumps(body) + cbor2.dumps(sig),
        "outer-indefinite-array": b"\x9f\x01" + cbor2.dumps(body) + cbor2.dumps(sig) + b"\xff",
        "outer-trailing-byte": canon + b"\x00",
        "outer-trailing-item": canon + cbor2.dumps(1),
        "outer-body-length-non-minimal": (
            b"\x83\x01\x59" + len(body).to_bytes(2, "big") + body + cbor2.dumps(sig)
        ),
        "outer-signature-indefinite-bytes": (
            b"\x83\x01" + cbor2.dumps(body) + b"\x5f" + cbor2.dumps(sig) + b"\xff"
        ),
        "outer-extra-element": b"\x84\x01" + cbor2.dumps(body) + cbor2.dumps(sig) + b"\x00",
        "outer-tagged": b"\xd8\x18" + canon,
        "body-unsorted-map": _resigned(_encode_map_reversed(m)),
        "body-non-minimal-int": _resigned(bigger_int),
        "body-indefinite-map": _resigned(b"\xbf" + body[1:] + b"\xff"),
        "body-indefinite-ops-array": _resigned(
            body.replace(cbor2.dumps(ops), b"\x9f" + cbor2.dumps(ops)[1:] + b"\xff")
        ),
        "body-unknown-key": _resigned(cbor2.dumps({**m, 12: 1}, canonical=True)),
        "body-unknown-negative-key": _resigned(cbor2.dumps({**m, -1: 1}, canonical=True)),
        "body-text-key": _resigned(cbor2.dumps({**m, "x": 1}, canonical=True)),
        "body-duplicate-operation": _resigned(
            cbor2.dumps({**m, 3: ["orders.read", "orders.read"]}, canonical=True)
        ),
        "body-unsorted-operations": _resigned(
            cbor2.dumps({**m, 3: list(reversed(ops))}, canonical=True)
        ),
        "body-single-port-as-range": _resigned(
            cbor2.dumps({**m, 4: [["orders", 8000, 8000]]}, canonical=True)
        ),
        "body-float-expiry": _resigned(cbor2.dumps({**m, 6: float(expires)}, canonical=True)),
        "body-bool-max-hops": _resigned(cbor2.dumps({**m, 7: True}, canonical=True)),
        "body-trailing-byte": _resigned(body + b"\x00"),
        "body-not-a-map": _resigned(cbor2.dumps(list(m.items()), canonical=True)),
    }


NONCANONICAL = _noncanonical_cases()


@pytest.mark.parametrize("data", NONCANONICAL.values(), ids=NONCANONICAL.keys())
def test_p10_non_canonical_encodings_are_malformed(data: bytes) -> None:
    assert reason(verifier_a(), data) is Reason.MALFORMED


def test_p10_non_canonical_cases_differ_only_in_encoding() -> None:
    """Guard against vacuous cases: most decode (leniently) to the canonical meaning."""
    body, sig = _root_parts()
    canon_items = [1, body, sig]
    same_meaning = [
        "outer-version-non-minimal",
        "outer-indefinite-array",
        "outer-body-length-non-minimal",
        "outer-signature-indefinite-bytes",
    ]
    for name in same_meaning:
        assert cbor2.loads(NONCANONICAL[name]) == canon_items, name
    for name in ("body-unsorted-map", "body-non-minimal-int", "body-indefinite-map"):
        items = cbor2.loads(NONCANONICAL[name])
        assert items[1] != body and cbor2.loads(items[1]) == cbor2.loads(body), name


def test_p10_unknown_version() -> None:
    body, sig = _root_parts()
    for version in (0, 2, 255, 2**32):
        data = cbor2.dumps([version, body, sig], canonical=True)
        assert reason(verifier_a(), data) is Reason.UNKNOWN_VERSION


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x80",
        b"\x81\x01",
        cbor2.dumps({1: 2}),
        cbor2.dumps([1, b"body"]),
        cbor2.dumps([1, b"body", b"short-sig"]),
        cbor2.dumps([1, "text", bytes(64)]),
        bytes.fromhex("d81c81d81d00"),  # a self-referencing array
        b"\x81" * 3000 + b"\x00",  # deep nesting
        b"\x9f" * 100,
        b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # huge byte-string length
        b"\xff" * 64,
    ],
)
def test_p10_garbage_is_malformed(data: bytes) -> None:
    with pytest.raises(WarrantError) as exc:
        verifier_a().verify(data, NOW)
    assert exc.value.reason in (Reason.MALFORMED, Reason.UNKNOWN_VERSION)


def test_p10_reordered_links_are_malformed() -> None:
    _, c2, _ = honest_chain()
    swapped = encode_links(
        [(c2.links[1].body, c2.links[1].signature), (c2.links[0].body, c2.links[0].signature)]
    )
    assert reason(verifier_a(), swapped) is Reason.MALFORMED
