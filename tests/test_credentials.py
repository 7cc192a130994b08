"""Unit tests for the credential layer: rights, issue/delegate/verify, anchors, revocation.

Keys come from fixed seeds and `NOW` is fixed, so every test is deterministic.
Attack-shaped tests (one per security property) live in test_attacks_credentials.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from pathlib import Path

import cbor2
import nacl.hashlib
import nacl.signing
import pytest
import yaml

from credential_helpers import forge_link, trust
from warrant.core import keys
from warrant.core.anchors import Anchor, TrustStore, check_scope
from warrant.core.constants import (
    ANCHOR_ID_LEN,
    CHAIN_DIGEST_LEN,
    CLOCK_SKEW,
    LINK_ID_LEN,
    MAX_CHAIN_LINKS,
    MAX_CREDENTIAL_LEN,
    MAX_HOPS,
    PERSON_CHAIN,
    SIG_CONTEXT_LINK,
    SIG_CONTEXT_REVOCATION,
    Reason,
)
from warrant.core.credential import (
    Credential,
    Link,
    Verifier,
    delegate,
    effective_rights,
    encode_body,
    issue,
    signed_message,
)
from warrant.core.errors import WarrantError
from warrant.core.revocation import RevocationList, RevocationStore
from warrant.core.rights import (
    Destination,
    Grant,
    Rights,
    check_operation_pattern,
    narrow,
    operation_granted,
    pattern_covers,
    root_rights,
)

NOW = 1_800_000_000
SCOPE = "acme.prod"
OTHER_SCOPE = "partner.prod"


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-test/" + label.encode()).digest())


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


ANCHOR = key("anchor")
ANCHOR2 = key("anchor-2")
OTHER_ANCHOR = key("other-anchor")
ALICE, BOB, CAROL, DAVE = key("alice"), key("bob"), key("carol"), key("dave")
MALLORY = key("mallory")

ROOT_GRANT = Grant(
    operations=("orders.*", "billing.read"),
    destinations=(Destination("orders", 8000, 8099), Destination("billing", 443, 443)),
    not_before=NOW - 3600,
    expires=NOW + 3600,
    max_hops=4,
    allowed_domains=("a.net", "b.net", "c.net"),
    required_domains=("a.net",),
    forbidden_domains=("evil.net",),
    rate=100,
)
# What a verifier reports: list fields come back in their canonical (sorted) order.
ROOT_RIGHTS = Rights(
    operations=("billing.read", "orders.*"),
    destinations=(Destination("billing", 443, 443), Destination("orders", 8000, 8099)),
    not_before=NOW - 3600,
    expires=NOW + 3600,
    max_hops=4,
    allowed_domains=("a.net", "b.net", "c.net"),
    required_domains=("a.net",),
    forbidden_domains=("evil.net",),
    rate=100,
)
MINIMAL_ROOT = Grant(
    operations=("*",), destinations=(Destination("*", 0, 65535),), expires=NOW + 3600
)


def root(grant: Grant = ROOT_GRANT, holder: bytes | None = None) -> Credential:
    return issue(ANCHOR, SCOPE, pub(ALICE) if holder is None else holder, grant)


def chain(depth: int) -> tuple[Credential, ...]:
    """Credentials of depth 1..depth: anchor -> alice -> bob -> carol -> dave."""
    holders = [ALICE, BOB, CAROL, DAVE]
    out = [root()]
    for i in range(1, depth):
        out.append(delegate(out[-1], holders[i - 1], pub(holders[i]), Grant()))
    return tuple(out)


def verifier(store: TrustStore | None = None, **kw: int) -> Verifier:
    return Verifier(trust((SCOPE, ANCHOR)) if store is None else store, **kw)


def reason_of(v: Verifier, cred: Credential | bytes, now: float = NOW) -> Reason:
    data = cred.encode() if isinstance(cred, Credential) else cred
    try:
        v.verify(data, now)
    except WarrantError as exc:
        return exc.reason
    return Reason.OK


# ---- pattern_covers ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parent", "child", "covered"),
    [
        ("*", "a", True),
        ("*", "a.b.c", True),
        ("*", "a.b.*", True),
        ("*", "*", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", True),
        ("a.*", "a.b.*", True),
        ("a.*", "a.*", True),
        ("a.*", "a", False),
        ("a.*", "ab", False),
        ("a.*", "ab.c", False),
        ("a.*", "b.a", False),
        ("a.*", "*", False),
        ("a.b.*", "a.b.c", True),
        ("a.b.*", "a.b.c.*", True),
        ("a.b.*", "a.b", False),
        ("a.b.*", "a.*", False),
        ("a.b.*", "a.bc", False),
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
        ("a.b", "a.b.*", False),
        ("a.b", "a", False),
        ("a.b", "*", False),
        ("a", "a.*", False),
    ],
)
def test_pattern_covers(parent: str, child: str, covered: bool) -> None:
    assert pattern_covers(parent, child) is covered


def test_operation_granted_and_rights_grants_operation() -> None:
    pats = ("orders.*", "billing.read")
    assert operation_granted(pats, "orders.list")
    assert operation_granted(pats, "billing.read")
    assert not operation_granted(pats, "orders")
    assert not operation_granted(pats, "billing.write")
    assert not operation_granted(pats, "billing")
    assert ROOT_RIGHTS.grants_operation("orders.x.y")
    assert not ROOT_RIGHTS.grants_operation("billing.read.more")


@pytest.mark.parametrize("pattern", ["*", "a", "a.b", "a.b.*", "a-1.b_2.*", "x" * 63])
def test_operation_pattern_accepts(pattern: str) -> None:
    assert check_operation_pattern(pattern) == pattern


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "A",
        "a..b",
        "a.*.b",
        "*.a",
        "a.b*",
        "a.",
        ".a",
        "-a",
        "a.**",
        "x" * 64,
        "a b",
        "a\n",
        "a.b.*\n",
        "*\n",
        "\na",
    ],
)
def test_operation_pattern_rejects(pattern: str) -> None:
    with pytest.raises(WarrantError) as exc:
        Grant(operations=(pattern,))
    assert exc.value.reason is Reason.MALFORMED


# ---- destinations and port ranges ---------------------------------------------------------
@pytest.mark.parametrize(
    ("service", "lo", "hi"),
    [("web\n", 1, 1), ("Web", 1, 1), ("", 1, 1), ("web", 2, 1), ("web", -1, 1), ("web", 0, 65536)],
)
def test_destination_rejects(service: str, lo: int, hi: int) -> None:
    with pytest.raises(WarrantError) as exc:
        Destination(service, lo, hi)
    assert exc.value.reason is Reason.MALFORMED


def test_destination_covers_and_admits() -> None:
    web = Destination("web", 8000, 8099)
    assert web.covers(Destination("web", 8000, 8099))
    assert web.covers(Destination("web", 8050, 8050))
    assert not web.covers(Destination("web", 7999, 8000))
    assert not web.covers(Destination("web", 8099, 8100))
    assert not web.covers(Destination("api", 8050, 8050))
    assert not web.covers(Destination("*", 8050, 8050))
    anyone = Destination("*", 443, 443)
    assert anyone.covers(Destination("web", 443, 443))
    assert anyone.covers(Destination("*", 443, 443))
    assert not anyone.covers(Destination("web", 443, 444))
    assert web.admits("web", 8000) and web.admits("web", 8099)
    assert not web.admits("web", 7999) and not web.admits("web", 8100)
    assert not web.admits("api", 8000)
    assert anyone.admits("whatever", 443) and not anyone.admits("whatever", 80)
    assert ROOT_RIGHTS.grants_destination("billing", 443)
    assert not ROOT_RIGHTS.grants_destination("billing", 8000)


@pytest.mark.parametrize(
    ("text", "dest", "rendered"),
    [
        ("web:80", Destination("web", 80, 80), "web:80"),
        ("web:8000-8099", Destination("web", 8000, 8099), "web:8000-8099"),
        ("web", Destination("web", 0, 65535), "web"),
        ("*:443", Destination("*", 443, 443), "*:443"),
        ("*", Destination("*", 0, 65535), "*"),
    ],
)
def test_destination_parse_and_str(text: str, dest: Destination, rendered: str) -> None:
    assert Destination.parse(text) == dest
    assert str(dest) == rendered
    assert Destination.parse(str(dest)) == dest


@pytest.mark.parametrize(
    "text",
    [
        "web:x",
        "web:90-80",
        "web:65536",
        "web:-1",
        "Web:80",
        ":80",
        "web:1-x",
        "web:",
        "web:80-",
        "web: 80",
        "web:80 ",
        "web:+80",
        "web:1-2-3",
        "web:80\n",
        "web\n:80",
        "web:0x50",
    ],
)
def test_destination_parse_rejects(text: str) -> None:
    with pytest.raises(WarrantError) as exc:
        Destination.parse(text)
    assert exc.value.reason is Reason.MALFORMED


# ---- grants -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"operations": ()},
        {"destinations": ()},
        {"max_hops": MAX_HOPS + 1},
        {"max_hops": -1},
        {"expires": -1},
        {"not_before": 2**63},
        {"rate": -5},
        {"allowed_domains": ("Bad.net",)},
        {"required_domains": ("",)},
        {"forbidden_domains": ("a_b",)},
        {"allowed_domains": ("a.net\n",)},
    ],
)
def test_grant_rejects_bad_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(WarrantError) as exc:
        Grant(**kwargs)  # type: ignore[arg-type]
    assert exc.value.reason is Reason.MALFORMED


# ---- root link ------------------------------------------------------------------------------
def test_root_rights_resolves_defaults() -> None:
    r = root_rights(MINIMAL_ROOT)
    assert r == Rights(
        ("*",), (Destination("*", 0, 65535),), 0, NOW + 3600, MAX_HOPS, None, (), (), None
    )
    assert root_rights(root().links[0].grant) == ROOT_RIGHTS


@pytest.mark.parametrize("missing", ["operations", "destinations", "expires"])
def test_root_link_requires_fields(missing: str) -> None:
    grant = dataclasses.replace(ROOT_GRANT, **{missing: None})
    with pytest.raises(WarrantError) as exc:
        issue(ANCHOR, SCOPE, pub(ALICE), grant)
    assert exc.value.reason is Reason.MALFORMED
    # A root body missing the field, signed by the real anchor, is refused by the verifier too.
    body = encode_body(SCOPE, keys.anchor_id(pub(ANCHOR)), pub(ALICE), grant)
    sig = ANCHOR.sign(signed_message(bytes(32), body)).signature
    cred = Credential((Link.decode(body, sig, root=True),))
    assert reason_of(verifier(), cred) is Reason.MALFORMED


def test_root_link_with_not_before_after_expiry_is_malformed() -> None:
    with pytest.raises(WarrantError) as exc:
        issue(ANCHOR, SCOPE, pub(ALICE), dataclasses.replace(ROOT_GRANT, not_before=NOW + 7200))
    assert exc.value.reason is Reason.MALFORMED


@pytest.mark.parametrize("scope", ["", "Acme", "acme/prod", "a" * 64, "acme prod"])
def test_issue_rejects_bad_scope(scope: str) -> None:
    with pytest.raises(WarrantError) as exc:
        issue(ANCHOR, scope, pub(ALICE), ROOT_GRANT)
    assert exc.value.reason is Reason.MALFORMED


def test_scope_and_anchor_only_in_root_link() -> None:
    c1 = root()
    # A non-root body carrying scope and anchor id.
    body = encode_body(SCOPE, keys.anchor_id(pub(ANCHOR)), pub(BOB), Grant())
    with pytest.raises(WarrantError) as exc:
        Link.decode(body, bytes(64), root=False)
    assert exc.value.reason is Reason.MALFORMED
    # A root body without them.
    with pytest.raises(WarrantError) as exc:
        Link.decode(encode_body(None, None, pub(ALICE), ROOT_GRANT), bytes(64), root=True)
    assert exc.value.reason is Reason.MALFORMED
    # Scope without anchor id.
    body = encode_body(SCOPE, None, pub(ALICE), ROOT_GRANT)
    with pytest.raises(WarrantError) as exc:
        Link.decode(body, bytes(64), root=True)
    assert exc.value.reason is Reason.MALFORMED
    assert c1.links[0].scope == SCOPE


# ---- issue / delegate / verify ---------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_issue_delegate_verify(depth: int) -> None:
    cred = chain(depth)[-1]
    v = verifier()
    vc = v.verify(cred.encode(), NOW)
    holders = [ALICE, BOB, CAROL, DAVE][:depth]
    assert vc.depth == depth
    assert vc.scope == SCOPE
    assert vc.holder == pub(holders[-1])
    assert vc.anchor.public == pub(ANCHOR)
    assert vc.keys() == [pub(ANCHOR), *(pub(h) for h in holders)]
    assert vc.rights == ROOT_RIGHTS  # empty grants inherit everything
    assert vc.chain_digest == cred.chain_digest
    assert len(vc.chain_digest) == CHAIN_DIGEST_LEN
    assert vc.link_ids == tuple(cred.link_ids())
    assert all(len(i) == LINK_ID_LEN for i in vc.link_ids)
    assert len(set(vc.link_ids)) == depth
    # Verifying the object and its encoding gives the same result.
    assert verifier().verify(cred, NOW) == vc


def test_chain_digest_and_signatures_follow_the_spec() -> None:
    """Recompute d_i and check every signature with plain PyNaCl, per the module docstring."""
    cred = chain(3)[-1]
    items = cbor2.loads(cred.encode())
    assert items[0] == 1 and len(items) == 7
    signers = [pub(ANCHOR), pub(ALICE), pub(BOB)]
    d = bytes(32)
    digests = []
    for i in range(3):
        body, sig = items[1 + 2 * i], items[2 + 2 * i]
        nacl.signing.VerifyKey(signers[i]).verify(SIG_CONTEXT_LINK + d + body, sig)
        h = nacl.hashlib.blake2b(digest_size=32, person=PERSON_CHAIN)
        h.update(d + struct.pack(">H", len(body)) + body + sig)
        d = h.digest()
        digests.append(d)
    assert cred.digests() == digests
    assert cred.chain_digest == digests[-1]
    assert cred.link_ids() == [x[:16] for x in digests]
    root_map = cbor2.loads(items[1])
    assert root_map[0] == SCOPE and root_map[1] == keys.anchor_id(pub(ANCHOR))
    assert len(root_map[1]) == ANCHOR_ID_LEN and root_map[2] == pub(ALICE)


def test_encode_decode_round_trip() -> None:
    for cred in chain(3):
        data = cred.encode()
        back = Credential.decode(data)
        assert back == cred
        assert back.encode() == data
        assert back.scope == SCOPE and back.anchor_id == keys.anchor_id(pub(ANCHOR))


def test_body_encoding_is_normalised() -> None:
    """Grants with duplicates or unsorted lists encode to one canonical body."""
    g1 = Grant(
        operations=("b", "a", "a"),
        destinations=(Destination("y", 1, 1), Destination("x", 2, 3)),
        allowed_domains=("z.net", "y.net"),
        expires=5,
    )
    g2 = Grant(
        operations=("a", "b"),
        destinations=(Destination("x", 2, 3), Destination("y", 1, 1)),
        allowed_domains=("y.net", "z.net"),
        expires=5,
    )
    assert encode_body(None, None, pub(BOB), g1) == encode_body(None, None, pub(BOB), g2)
    link = Link.decode(encode_body(None, None, pub(BOB), g1), bytes(64), root=False)
    assert link.grant.operations == ("a", "b")
    assert link.grant.destinations == (Destination("x", 2, 3), Destination("y", 1, 1))


def test_delegate_requires_the_holder_key() -> None:
    with pytest.raises(WarrantError) as exc:
        delegate(root(), BOB, pub(CAROL), Grant())
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_effective_rights_matches_verifier() -> None:
    c1 = root()
    c2 = delegate(c1, ALICE, pub(BOB), Grant(operations=("orders.read",), rate=10))
    c3 = delegate(c2, BOB, pub(CAROL), Grant(max_hops=2))
    want = dataclasses.replace(ROOT_RIGHTS, operations=("orders.read",), rate=10, max_hops=2)
    assert effective_rights(c3.links) == want
    assert verifier().verify(c3.encode(), NOW).rights == want


def test_max_chain_links_is_accepted_and_one_more_is_not() -> None:
    cred = root()
    holder = ALICE
    for i in range(MAX_CHAIN_LINKS - 1):
        nxt = key(f"deep-{i}")
        cred = delegate(cred, holder, pub(nxt), Grant())
        holder = nxt
    assert verifier().verify(cred.encode(), NOW).depth == MAX_CHAIN_LINKS
    deeper = forge_link(cred, holder, pub(MALLORY), Grant())
    with pytest.raises(WarrantError) as exc:
        Credential.decode(deeper.encode())
    assert exc.value.reason is Reason.MALFORMED


def test_delegate_refuses_beyond_max_chain_links() -> None:
    cred = root()
    holder = ALICE
    for i in range(MAX_CHAIN_LINKS - 1):
        nxt = key(f"deep-{i}")
        cred = delegate(cred, holder, pub(nxt), Grant())
        holder = nxt
    with pytest.raises(WarrantError) as exc:
        delegate(cred, holder, pub(MALLORY), Grant())
    assert exc.value.reason is Reason.MALFORMED


def test_verify_object_enforces_max_chain_links() -> None:
    cred = root()
    holder = ALICE
    for i in range(MAX_CHAIN_LINKS):
        nxt = key(f"deep-{i}")
        cred = forge_link(cred, holder, pub(nxt), Grant())
        holder = nxt
    assert len(cred.links) == MAX_CHAIN_LINKS + 1
    assert reason_of(verifier(), cred.encode()) is Reason.MALFORMED
    with pytest.raises(WarrantError) as exc:
        verifier().verify(cred, NOW)
    assert exc.value.reason is Reason.MALFORMED


def test_issue_refuses_oversized_credential() -> None:
    grant = dataclasses.replace(
        MINIMAL_ROOT,
        destinations=tuple(Destination(f"svc-{i}", 1000 + i, 1000 + i) for i in range(8000)),
    )
    with pytest.raises(WarrantError) as exc:
        issue(ANCHOR, SCOPE, pub(ALICE), grant)
    assert exc.value.reason is Reason.MALFORMED


def test_decode_refuses_oversized_input() -> None:
    data = cbor2.dumps([1, b"x" * MAX_CREDENTIAL_LEN, bytes(64)], canonical=True)
    with pytest.raises(WarrantError) as exc:
        Credential.decode(data)
    assert exc.value.reason is Reason.MALFORMED
    assert "longer" in exc.value.detail


# ---- narrowing, field by field ----------------------------------------------------------------
# Each row: field, a narrower value, a wider value (relative to ROOT_GRANT).
NARROWING = [
    ("operations", ("orders.read",), ("orders.read", "billing.write")),
    ("operations", ("orders.eu.*",), ("orders",)),
    ("operations", ("orders.*",), ("*",)),
    ("destinations", (Destination("orders", 8000, 8000),), (Destination("orders", 7999, 8000),)),
    ("destinations", (Destination("orders", 8050, 8099),), (Destination("orders", 8050, 8100),)),
    ("destinations", (Destination("billing", 443, 443),), (Destination("*", 443, 443),)),
    ("destinations", (Destination("billing", 443, 443),), (Destination("admin", 443, 443),)),
    ("not_before", NOW - 60, NOW - 3601),
    ("expires", NOW + 60, NOW + 3601),
    ("max_hops", 2, 5),
    ("allowed_domains", ("a.net",), ("a.net", "d.net")),
    ("required_domains", ("a.net", "b.net"), ()),
    ("required_domains", ("a.net", "b.net"), ("b.net",)),
    ("forbidden_domains", ("evil.net", "worse.net"), ()),
    ("rate", 99, 101),
]
NARROWING_IDS = [f"{f}-{i}" for i, (f, _, _) in enumerate(NARROWING)]


@pytest.mark.parametrize(("field", "narrower", "wider"), NARROWING, ids=NARROWING_IDS)
def test_narrowing_a_field_is_accepted(field: str, narrower: object, wider: object) -> None:
    c2 = delegate(root(), ALICE, pub(BOB), Grant(**{field: narrower}))  # type: ignore[arg-type]
    vc = verifier().verify(c2.encode(), NOW)
    assert getattr(vc.rights, field) == narrower
    # Every other field is inherited from the parent.
    assert dataclasses.replace(vc.rights, **{field: getattr(ROOT_RIGHTS, field)}) == ROOT_RIGHTS


@pytest.mark.parametrize(("field", "narrower", "wider"), NARROWING, ids=NARROWING_IDS)
def test_widening_a_field_is_escalation(field: str, narrower: object, wider: object) -> None:
    grant = Grant(**{field: wider})  # type: ignore[arg-type]
    with pytest.raises(WarrantError) as exc:
        delegate(root(), ALICE, pub(BOB), grant)
    assert exc.value.reason is Reason.ESCALATION
    # The verifier enforces it independently of delegate(): a holder can sign anything.
    assert reason_of(verifier(), forge_link(root(), ALICE, pub(BOB), grant)) is Reason.ESCALATION


@pytest.mark.parametrize(("field", "narrower", "wider"), NARROWING, ids=NARROWING_IDS)
def test_widening_below_a_narrowed_link_is_escalation(
    field: str, narrower: object, wider: object
) -> None:
    """Link 3 may not restore what link 2 removed, even if the root allowed it."""
    c2 = delegate(root(), ALICE, pub(BOB), Grant(**{field: narrower}))  # type: ignore[arg-type]
    c3 = forge_link(c2, BOB, pub(CAROL), Grant(**{field: getattr(ROOT_GRANT, field)}))  # type: ignore[arg-type]
    if getattr(ROOT_GRANT, field) == narrower:
        pytest.skip("narrower equals root")
    assert reason_of(verifier(), c3) is Reason.ESCALATION


def test_omitted_fields_are_inherited_through_the_chain() -> None:
    c2 = delegate(root(), ALICE, pub(BOB), Grant(rate=10, allowed_domains=("a.net",)))
    c3 = delegate(c2, BOB, pub(CAROL), Grant(operations=("orders.read",)))
    c4 = delegate(c3, CAROL, pub(DAVE), Grant())
    r = verifier().verify(c4.encode(), NOW).rights
    assert r.rate == 10
    assert r.allowed_domains == ("a.net",)
    assert r.operations == ("orders.read",)
    assert r.destinations == ROOT_RIGHTS.destinations
    # And link 4 cannot raise the rate link 2 set.
    assert (
        reason_of(verifier(), forge_link(c3, CAROL, pub(DAVE), Grant(rate=11))) is Reason.ESCALATION
    )


def test_unlimited_parent_fields_accept_any_child_value() -> None:
    c2 = delegate(
        root(MINIMAL_ROOT),
        ALICE,
        pub(BOB),
        Grant(rate=1_000_000, allowed_domains=("x.net",), max_hops=MAX_HOPS),
    )
    r = verifier().verify(c2.encode(), NOW).rights
    assert r.rate == 1_000_000 and r.allowed_domains == ("x.net",) and r.max_hops == MAX_HOPS


def test_narrow_time_window_inverted_is_malformed() -> None:
    with pytest.raises(WarrantError) as exc:
        narrow(ROOT_RIGHTS, Grant(not_before=NOW + 100, expires=NOW + 50))
    assert exc.value.reason is Reason.MALFORMED


def test_narrow_operation_patterns_individually() -> None:
    """Each child pattern must sit under one parent pattern (no union reasoning)."""
    parent = dataclasses.replace(ROOT_RIGHTS, operations=("a.b", "a.c"))
    with pytest.raises(WarrantError) as exc:
        narrow(parent, Grant(operations=("a.*",)))
    assert exc.value.reason is Reason.ESCALATION
    assert narrow(parent, Grant(operations=("a.c",))).operations == ("a.c",)


# ---- time and clock skew -----------------------------------------------------------------------
EXP = ROOT_GRANT.expires
NBF = ROOT_GRANT.not_before
assert EXP is not None and NBF is not None


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (NOW, Reason.OK),
        (EXP, Reason.OK),
        (EXP + CLOCK_SKEW, Reason.OK),
        (EXP + CLOCK_SKEW + 0.001, Reason.EXPIRED),
        (EXP + CLOCK_SKEW + 1, Reason.EXPIRED),
        (NBF, Reason.OK),
        (NBF - CLOCK_SKEW, Reason.OK),
        (NBF - CLOCK_SKEW - 0.001, Reason.NOT_YET_VALID),
        (NBF - CLOCK_SKEW - 1, Reason.NOT_YET_VALID),
    ],
)
def test_credential_time_window_with_skew(now: float, reason: Reason) -> None:
    assert CLOCK_SKEW > 0
    assert reason_of(verifier(), chain(2)[-1], now) is reason


def test_narrowed_time_window_of_a_delegation_is_enforced() -> None:
    c2 = delegate(root(), ALICE, pub(BOB), Grant(not_before=NOW + 100, expires=NOW + 200))
    v = verifier()
    assert reason_of(v, c2, NOW + 150) is Reason.OK
    assert reason_of(v, c2, NOW + 200 + CLOCK_SKEW + 1) is Reason.EXPIRED
    assert reason_of(v, c2, NOW + 100 - CLOCK_SKEW - 1) is Reason.NOT_YET_VALID
    assert reason_of(v, root(), NOW) is Reason.OK  # the parent is still valid now


def test_verifier_skew_is_configurable() -> None:
    v = verifier(skew=0)
    cred = root()
    assert reason_of(v, cred, EXP) is Reason.OK
    assert reason_of(v, cred, EXP + 1) is Reason.EXPIRED
    assert reason_of(v, cred, NBF - 1) is Reason.NOT_YET_VALID


@pytest.mark.parametrize(
    ("not_before", "not_after", "now", "reason"),
    [
        (NOW - 10, NOW + 10, NOW, Reason.OK),
        (None, NOW - 10, NOW, Reason.OK),  # within skew
        (None, NOW - CLOCK_SKEW, NOW, Reason.OK),
        (None, NOW - CLOCK_SKEW - 1, NOW, Reason.EXPIRED),
        (NOW + CLOCK_SKEW, None, NOW, Reason.OK),
        (NOW + CLOCK_SKEW + 1, None, NOW, Reason.NOT_YET_VALID),
        (None, None, NOW, Reason.OK),
    ],
)
def test_anchor_validity_window(
    not_before: int | None, not_after: int | None, now: int, reason: Reason
) -> None:
    store = TrustStore()
    store.add(Anchor(SCOPE, pub(ANCHOR), not_before, not_after))
    assert reason_of(Verifier(store), chain(2)[-1], now) is reason


# ---- the prefix cache ---------------------------------------------------------------------------
def test_cache_extension_of_a_verified_prefix_hits() -> None:
    c1, c2, c3 = chain(3)
    v = verifier()
    v.verify(c2.encode(), NOW)
    assert (v.cache_hits, v.cache_misses) == (0, 1)
    vc3 = v.verify(c3.encode(), NOW)
    assert v.cache_hits == 1 and v.cache_misses == 1
    assert vc3 == verifier().verify(c3.encode(), NOW)  # same result as a cold verifier
    v.verify(c3.encode(), NOW)
    v.verify(c1.encode(), NOW)
    assert (v.cache_hits, v.cache_misses) == (3, 1)
    v.clear_cache()
    v.verify(c3.encode(), NOW)
    assert (v.cache_hits, v.cache_misses) == (3, 2)


def test_cache_size_zero_never_hits() -> None:
    v = verifier(cache_size=0)
    c2 = chain(2)[-1]
    v.verify(c2.encode(), NOW)
    v.verify(c2.encode(), NOW)
    assert (v.cache_hits, v.cache_misses) == (0, 2)


def test_cache_does_not_skip_checks_on_new_links() -> None:
    c2 = chain(2)[-1]
    v = verifier()
    v.verify(c2.encode(), NOW)
    # An escalating link on a cached prefix is narrowed against the cached rights.
    assert reason_of(v, forge_link(c2, BOB, pub(CAROL), Grant(rate=101))) is Reason.ESCALATION
    # A link signed by the wrong key on a cached prefix.
    assert reason_of(v, forge_link(c2, MALLORY, pub(CAROL), Grant())) is Reason.BAD_SIGNATURE
    assert v.cache_hits == 2


def test_cached_prefix_rejected_after_anchor_removed() -> None:
    _, c2, c3 = chain(3)
    store = trust((SCOPE, ANCHOR), (SCOPE, ANCHOR2))
    v = Verifier(store)
    v.verify(c2.encode(), NOW)
    store.anchors[SCOPE] = [a for a in store.anchors[SCOPE] if a.public != pub(ANCHOR)]
    assert reason_of(v, c2) is Reason.UNKNOWN_ANCHOR
    assert reason_of(v, c3) is Reason.UNKNOWN_ANCHOR
    del store.anchors[SCOPE]
    assert reason_of(v, c3) is Reason.WRONG_SCOPE


def test_cached_prefix_rejected_after_anchor_replaced_by_new_window() -> None:
    c2 = chain(2)[-1]
    store = trust((SCOPE, ANCHOR))
    v = Verifier(store)
    v.verify(c2.encode(), NOW)
    store.anchors[SCOPE] = [Anchor(SCOPE, pub(ANCHOR), not_after=NOW - 3600)]
    assert reason_of(v, c2) is Reason.EXPIRED


def test_cached_prefix_rejected_after_revocation() -> None:
    c1, c2, c3 = chain(3)
    store = trust((SCOPE, ANCHOR))
    v = Verifier(store)
    v.verify(c2.encode(), NOW)
    v.verify(c3.encode(), NOW)
    rl = RevocationList.sign(ANCHOR, SCOPE, 1, link_ids=[c2.link_ids()[-1]])
    assert v.revocations.load(rl, store)
    assert reason_of(v, c2) is Reason.REVOKED
    assert reason_of(v, c3) is Reason.REVOKED
    assert reason_of(v, c1) is Reason.OK


class _CollidingStore(TrustStore):
    """A store whose lookup answers with a fixed anchor: simulates an 8-byte anchor-id
    collision between two different anchor keys."""

    def __init__(self, answer: Anchor) -> None:
        super().__init__()
        self.answer = answer

    def find(self, scope: str, anchor_id: bytes) -> Anchor:
        return self.answer


def test_cached_prefix_is_only_reused_under_the_same_anchor_key() -> None:
    c2 = chain(2)[-1]
    store = _CollidingStore(Anchor(SCOPE, pub(ANCHOR)))
    v = Verifier(store)
    assert reason_of(v, c2) is Reason.OK
    store.answer = Anchor(SCOPE, pub(MALLORY))  # same id, another key: nothing is reused
    assert reason_of(v, c2) is Reason.BAD_SIGNATURE
    assert reason_of(Verifier(store), c2) is Reason.BAD_SIGNATURE


def test_cached_prefix_rejected_when_expired_later() -> None:
    c2 = chain(2)[-1]
    v = verifier()
    v.verify(c2.encode(), NOW)
    assert reason_of(v, c2, EXP + CLOCK_SKEW + 1) is Reason.EXPIRED


# ---- TrustStore ---------------------------------------------------------------------------------
def sample_store() -> TrustStore:
    store = TrustStore()
    store.add(Anchor(SCOPE, pub(ANCHOR), NOW - 100, NOW + 100))
    store.add(Anchor(SCOPE, pub(ANCHOR2)))
    store.add(Anchor(OTHER_SCOPE, pub(OTHER_ANCHOR), not_after=NOW + 5))
    store.add_relay("partner.net", pub(CAROL))
    store.add_relay("partner.net", pub(DAVE))
    return store


def test_trust_store_yaml_round_trip(tmp_path: Path) -> None:
    store = sample_store()
    path = tmp_path / "anchors.yaml"
    store.dump(path)
    text = path.read_text()
    assert "warrant-pub:" in text and SCOPE in text
    back = TrustStore.load(path)
    assert back.anchors == store.anchors
    assert back.relays == store.relays
    assert back.to_mapping() == store.to_mapping()
    assert back.scopes() == sorted([SCOPE, OTHER_SCOPE])
    assert back.relay_domain(pub(CAROL)) == "partner.net"
    assert back.relay_domain(pub(ALICE)) is None


def test_trust_store_json_and_short_forms(tmp_path: Path) -> None:
    path = tmp_path / "anchors.json"
    path.write_text(json.dumps({"scopes": {SCOPE: {"anchors": [keys.encode_public(pub(ANCHOR))]}}}))
    store = TrustStore.load(path)
    assert store.find(SCOPE, keys.anchor_id(pub(ANCHOR))) == Anchor(SCOPE, pub(ANCHOR))
    assert store.relays == {}


def test_trust_store_secret_key_is_not_an_anchor() -> None:
    data = {"scopes": {SCOPE: {"anchors": [{"key": keys.encode_secret(ANCHOR)}]}}}
    with pytest.raises(ValueError, match="not a Warrant public key"):
        TrustStore.from_mapping(data)


def test_trust_store_find_and_restrict() -> None:
    store = sample_store()
    assert store.find(SCOPE, keys.anchor_id(pub(ANCHOR2))).public == pub(ANCHOR2)
    with pytest.raises(WarrantError) as exc:
        store.find(SCOPE, keys.anchor_id(pub(OTHER_ANCHOR)))
    assert exc.value.reason is Reason.UNKNOWN_ANCHOR
    with pytest.raises(WarrantError) as exc:
        store.find("nobody", keys.anchor_id(pub(ANCHOR)))
    assert exc.value.reason is Reason.WRONG_SCOPE
    only = store.restricted_to([OTHER_SCOPE])
    assert only.scopes() == [OTHER_SCOPE]
    assert only.relays == store.relays
    assert store.scopes() == sorted([SCOPE, OTHER_SCOPE])  # the original is untouched


GOOD_KEY = keys.encode_public(pub(ANCHOR))
IDENTITY_KEY = keys.encode_public(bytes([1]) + bytes(31))  # a small-order point


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "expected a mapping with a 'scopes' key"),
        ([], "expected a mapping with a 'scopes' key"),
        ({"anchors": {}}, "expected a mapping with a 'scopes' key"),
        ({"scopes": ["a"]}, "'scopes' must map scope names"),
        ({"scopes": {SCOPE: None}}, "needs a non-empty 'anchors' list"),
        ({"scopes": {SCOPE: {"anchors": []}}}, "needs a non-empty 'anchors' list"),
        ({"scopes": {SCOPE: {"anchors": [{"nokey": 1}]}}}, r"anchors\[0\]: needs a 'key'"),
        ({"scopes": {SCOPE: {"anchors": ["warrant-pub:AAAA"]}}}, "must be 32 bytes"),
        ({"scopes": {SCOPE: {"anchors": ["ssh-ed25519 AAAA"]}}}, "not a Warrant public key"),
        ({"scopes": {SCOPE: {"anchors": ["warrant-pub:!!!"]}}}, "not valid base64"),
        ({"scopes": {"Bad Scope": {"anchors": [GOOD_KEY]}}}, "bad scope name"),
        (
            {"scopes": {SCOPE: {"anchors": [{"key": GOOD_KEY, "not_after": "soon"}]}}},
            "not_after must be unix seconds",
        ),
        (
            {"scopes": {SCOPE: {"anchors": [{"key": GOOD_KEY, "not_before": 1.5}]}}},
            "not_before must be unix seconds",
        ),
        (
            {"scopes": {SCOPE: {"anchors": [{"key": GOOD_KEY, "not_after": True}]}}},
            "not_after must be unix seconds",
        ),
        (
            {"scopes": {SCOPE: {"anchors": [{"key": GOOD_KEY, "not_before": 5, "not_after": 4}]}}},
            "not_before is after not_after",
        ),
        ({"scopes": {SCOPE: {"anchors": [GOOD_KEY, GOOD_KEY]}}}, "listed twice"),
        ({"scopes": {SCOPE: {"anchors": [IDENTITY_KEY]}}}, "not a valid Ed25519 point"),
        ({"scopes": {}, "relays": ["x"]}, "'relays' must map domains"),
        ({"scopes": {}, "relays": {"partner.net": GOOD_KEY}}, "must be a list of keys"),
        ({"scopes": {}, "relays": {"partner.net": ["nope"]}}, "relays.partner.net"),
        ({"scopes": {}, "relays": {"Bad_Domain": [GOOD_KEY]}}, "bad domain name"),
    ],
)
def test_trust_store_mapping_errors(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrustStore.from_mapping(data, "anchors.yaml")


def test_trust_store_file_errors(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyFormatError, match="not found"):
        TrustStore.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scopes: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        TrustStore.load(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match="'scopes'"):
        TrustStore.load(empty)


def test_trust_store_yaml_is_human_editable(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "scopes": {
                    SCOPE: {
                        "anchors": [{"key": GOOD_KEY, "not_before": NOW - 1, "not_after": NOW + 1}]
                    }
                },
                "relays": {"partner.net": [keys.encode_public(pub(CAROL))]},
            }
        )
    )
    store = TrustStore.load(path)
    assert store.anchors[SCOPE] == [Anchor(SCOPE, pub(ANCHOR), NOW - 1, NOW + 1)]
    assert store.relays == {"partner.net": {pub(CAROL)}}


def test_check_scope() -> None:
    assert check_scope("a.b-c_d") == "a.b-c_d"
    for bad in ("", "A", "a b", "x" * 64, "a/b"):
        with pytest.raises(WarrantError):
            check_scope(bad)


# ---- revocation lists ----------------------------------------------------------------------------
def test_revocation_list_sign_encode_decode() -> None:
    ids = [bytes([i]) * LINK_ID_LEN for i in (3, 1, 2)]
    rl = RevocationList.sign(ANCHOR, SCOPE, 7, link_ids=ids, revoked_keys=[pub(BOB)])
    back = RevocationList.decode(rl.encode())
    assert back == rl
    assert back.serial == 7 and back.scope == SCOPE
    assert back.anchor_id == keys.anchor_id(pub(ANCHOR))
    assert back.link_ids == frozenset(ids) and back.keys == frozenset([pub(BOB)])
    # The body is the documented deterministic array, the signature is the anchor's.
    assert cbor2.loads(back.body) == [1, SCOPE, back.anchor_id, 7, sorted(ids), [pub(BOB)]]
    nacl.signing.VerifyKey(pub(ANCHOR)).verify(SIG_CONTEXT_REVOCATION + back.body, back.signature)


def _rl_bytes(inner: object, sig: bytes = bytes(64)) -> bytes:
    return cbor2.dumps([cbor2.dumps(inner), sig])


AID = keys.anchor_id(pub(ANCHOR))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        cbor2.dumps([b"x"]),
        cbor2.dumps({"a": 1}),
        cbor2.dumps(["body", bytes(64)]),
        cbor2.dumps([b"\xff", bytes(64)]),
        _rl_bytes([2, SCOPE, AID, 1, [], []]),
        _rl_bytes([1, SCOPE, AID, 1, []]),
        _rl_bytes([1, 5, AID, 1, [], []]),
        _rl_bytes([1, SCOPE, AID[:4], 1, [], []]),
        _rl_bytes([1, SCOPE, AID, -1, [], []]),
        _rl_bytes([1, SCOPE, AID, 1, [b"short"], []]),
        _rl_bytes([1, SCOPE, AID, 1, [], [b"short"]]),
        _rl_bytes([1, SCOPE, AID, 1, [bytes([2]) * 16, bytes([1]) * 16], []]),  # unsorted
        _rl_bytes([1, SCOPE, AID, 1, [bytes(16), bytes(16)], []]),  # duplicate
        _rl_bytes([1, SCOPE, AID, True, [], []]),  # boolean serial
        _rl_bytes([1, SCOPE, AID, 1.0, [], []]),
        _rl_bytes([1, "Bad Scope", AID, 1, [], []]),
        _rl_bytes([True, SCOPE, AID, 1, [], []]),
    ],
)
def test_revocation_list_decode_rejects(data: bytes) -> None:
    with pytest.raises(WarrantError) as exc:
        RevocationList.decode(data)
    assert exc.value.reason is Reason.MALFORMED


def test_revocation_store_serial_replay_does_not_unrevoke() -> None:
    c2 = chain(2)[-1]
    store = trust((SCOPE, ANCHOR))
    v = Verifier(store)
    old = RevocationList.sign(ANCHOR, SCOPE, 1)
    new = RevocationList.sign(ANCHOR, SCOPE, 2, link_ids=[c2.link_ids()[-1]])
    assert v.revocations.load(old.encode(), store) is True
    assert reason_of(v, c2) is Reason.OK
    assert v.revocations.load(new.encode(), store) is True
    assert reason_of(v, c2) is Reason.REVOKED
    assert v.revocations.load(old.encode(), store) is False  # replay of the older list
    assert v.revocations.load(new.encode(), store) is False  # same serial again
    same_serial = RevocationList.sign(ANCHOR, SCOPE, 2)
    assert v.revocations.load(same_serial, store) is False
    assert reason_of(v, c2) is Reason.REVOKED
    # A higher serial from the anchor may lift it: the anchor is the authority.
    assert v.revocations.load(RevocationList.sign(ANCHOR, SCOPE, 3), store) is True
    assert reason_of(v, c2) is Reason.OK


def test_revocation_store_merges_lists_of_all_anchors_of_a_scope() -> None:
    c1, c2 = chain(2)
    store = trust((SCOPE, ANCHOR), (SCOPE, ANCHOR2))
    revs = RevocationStore()
    revs.load(RevocationList.sign(ANCHOR, SCOPE, 5, revoked_keys=[pub(CAROL)]), store)
    revs.load(RevocationList.sign(ANCHOR2, SCOPE, 1, link_ids=[c2.link_ids()[-1]]), store)
    v = Verifier(store, revs)
    assert reason_of(v, c2) is Reason.REVOKED
    assert reason_of(v, c1) is Reason.OK
    assert reason_of(v, delegate(c1, ALICE, pub(CAROL), Grant())) is Reason.REVOKED


def test_revocation_list_forged_signature_rejected() -> None:
    store = trust((SCOPE, ANCHOR))
    rl = RevocationList.sign(ANCHOR, SCOPE, 1, link_ids=[bytes(16)])
    forged = RevocationList.decode(
        cbor2.dumps([rl.body, MALLORY.sign(SIG_CONTEXT_REVOCATION + rl.body).signature])
    )
    revs = RevocationStore()
    with pytest.raises(WarrantError) as exc:
        revs.load(forged, store)
    assert exc.value.reason is Reason.BAD_SIGNATURE
    flipped = bytearray(rl.encode())
    flipped[-1] ^= 1
    with pytest.raises(WarrantError) as exc:
        revs.load(bytes(flipped), store)
    assert exc.value.reason is Reason.BAD_SIGNATURE
    assert revs.lists == {}
    # Signed with the link context instead of the revocation context.
    wrong_ctx = cbor2.dumps([rl.body, ANCHOR.sign(SIG_CONTEXT_LINK + rl.body).signature])
    with pytest.raises(WarrantError) as exc:
        revs.load(wrong_ctx, store)
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_revocation_list_from_untrusted_signer() -> None:
    store = trust((SCOPE, ANCHOR))
    revs = RevocationStore()
    with pytest.raises(WarrantError) as exc:
        revs.load(RevocationList.sign(MALLORY, SCOPE, 1), store)
    assert exc.value.reason is Reason.UNKNOWN_ANCHOR
    with pytest.raises(WarrantError) as exc:
        revs.load(RevocationList.sign(ANCHOR, OTHER_SCOPE, 1), store)
    assert exc.value.reason is Reason.WRONG_SCOPE


def test_revocation_is_per_scope() -> None:
    """Scope B's anchor cannot revoke scope A's credentials, even naming their link ids."""
    c2 = chain(2)[-1]
    store = trust((SCOPE, ANCHOR), (OTHER_SCOPE, OTHER_ANCHOR))
    v = Verifier(store)
    v.revocations.load(
        RevocationList.sign(OTHER_ANCHOR, OTHER_SCOPE, 1, c2.link_ids(), [pub(ALICE)]), store
    )
    assert reason_of(v, c2) is Reason.OK
    # Still so once scope A has a list of its own (the merged view is per scope).
    v.revocations.load(RevocationList.sign(ANCHOR, SCOPE, 1, [bytes(16)], [pub(DAVE)]), store)
    assert reason_of(v, c2) is Reason.OK
    assert reason_of(v, delegate(c2, BOB, pub(DAVE), Grant())) is Reason.REVOKED
