"""Property tests (hypothesis) for credentials: integrity, monotone narrowing, round trips.

The narrowing oracle below is written independently of `warrant.core.rights`: it
judges rights by what they *admit* over a finite universe of operation names,
services, ports and domains, not by re-running `narrow`.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, replace
from typing import Any

import hypothesis.strategies as st
import nacl.signing
import pytest
from hypothesis import HealthCheck, event, given, settings

from credential_helpers import forge_link
from warrant.core import keys
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import MAX_HOPS, Reason
from warrant.core.credential import (
    Credential,
    Link,
    Verifier,
    delegate,
    effective_rights,
    encode_body,
    issue,
)
from warrant.core.errors import WarrantError
from warrant.core.rights import Destination, Grant, Rights, pattern_covers

NOW = 1_800_000_000
SCOPE = "acme.prod"
FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-prop/" + label.encode()).digest())


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


ANCHOR = key("anchor")
HOLDERS = [key(f"holder-{i}") for i in range(6)]


def trust() -> TrustStore:
    store = TrustStore()
    store.add(Anchor(SCOPE, pub(ANCHOR)))
    return store


# ---- the finite universe and an independent oracle ------------------------------------------
LABELS = ("a", "ab", "b")  # "a" is a string prefix of "ab", not a label prefix
NAMES = [".".join(p) for n in range(1, 5) for p in itertools.product(LABELS, repeat=n)]
SERVICES = ("web", "db", "api")
BASE_PORTS = (0, 1, 80, 443, 8080, 65535)  # range ends are drawn from these
PORTS = tuple(sorted({p + d for p in BASE_PORTS for d in (-1, 0, 1) if 0 <= p + d <= 65535}))
DOMAINS = ("a.net", "b.net", "c.net", "d.net")


def op_matches(pattern: str, name: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        prefix = pattern[:-2].split(".")
        parts = name.split(".")
        return len(parts) > len(prefix) and parts[: len(prefix)] == prefix
    return pattern == name


@dataclass(frozen=True)
class Admits:
    """What a set of rights lets through, as finite sets (None: everything)."""

    ops: frozenset[str]
    dests: frozenset[tuple[str, int]]
    not_before: int
    expires: int
    max_hops: int
    allowed: frozenset[str] | None
    required: frozenset[str]
    forbidden: frozenset[str]
    rate: int | None

    @classmethod
    def of(cls, r: Rights) -> Admits:
        return cls(
            ops=frozenset(n for n in NAMES if any(op_matches(p, n) for p in r.operations)),
            dests=frozenset(
                (s, port)
                for s in SERVICES
                for port in PORTS
                if any(
                    d.service in ("*", s) and d.port_lo <= port <= d.port_hi for d in r.destinations
                )
            ),
            not_before=r.not_before,
            expires=r.expires,
            max_hops=r.max_hops,
            allowed=None if r.allowed_domains is None else frozenset(r.allowed_domains),
            required=frozenset(r.required_domains),
            forbidden=frozenset(r.forbidden_domains),
            rate=r.rate,
        )

    def within(self, parent: Admits) -> list[str]:
        """Names of the fields on which self admits more than parent."""
        wider = []
        if not self.ops <= parent.ops:
            wider.append("operations")
        if not self.dests <= parent.dests:
            wider.append("destinations")
        if self.not_before < parent.not_before:
            wider.append("not_before")
        if self.expires > parent.expires:
            wider.append("expires")
        if self.max_hops > parent.max_hops:
            wider.append("max_hops")
        if parent.allowed is not None and (
            self.allowed is None or not self.allowed <= parent.allowed
        ):
            wider.append("allowed_domains")
        if not parent.required <= self.required:
            wider.append("required_domains")
        if not parent.forbidden <= self.forbidden:
            wider.append("forbidden_domains")
        if parent.rate is not None and (self.rate is None or self.rate > parent.rate):
            wider.append("rate")
        return wider


# ---- strategies -----------------------------------------------------------------------------
names = st.lists(st.sampled_from(LABELS), min_size=1, max_size=3).map(".".join)
patterns = st.one_of(st.just("*"), names, names.map(lambda n: n + ".*"))
port_ranges = st.tuples(st.sampled_from(BASE_PORTS), st.sampled_from(BASE_PORTS)).map(sorted)
destinations = st.builds(
    lambda s, pr: Destination(s, pr[0], pr[1]),
    st.sampled_from(("*", *SERVICES)),
    port_ranges,
)
domain_sets = st.lists(st.sampled_from(DOMAINS), max_size=3, unique=True).map(tuple)
times = st.integers(min_value=NOW - 7200, max_value=NOW + 7200)


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), strategy)


def grants(root: bool) -> st.SearchStrategy[Grant]:
    ops = st.lists(patterns, min_size=1, max_size=3).map(tuple)
    dsts = st.lists(destinations, min_size=1, max_size=3).map(tuple)
    exp = times.map(lambda t: t + 3 * 3600)
    return st.builds(
        Grant,
        operations=ops if root else maybe(ops),
        destinations=dsts if root else maybe(dsts),
        not_before=maybe(times),
        expires=exp if root else maybe(exp),
        max_hops=maybe(st.integers(0, MAX_HOPS)),
        allowed_domains=maybe(domain_sets),
        required_domains=maybe(domain_sets),
        forbidden_domains=maybe(domain_sets),
        rate=maybe(st.integers(0, 200)),
    )


LIST_FIELDS = (
    "operations",
    "destinations",
    "allowed_domains",
    "required_domains",
    "forbidden_domains",
)


def normalised(g: Grant) -> Grant:
    """What a grant decodes back to: list fields deduplicated and sorted."""
    lists = {f: tuple(sorted(set(getattr(g, f)))) for f in LIST_FIELDS if getattr(g, f) is not None}
    return replace(g, **lists)


def verify_in_window(v: Verifier, cred: Credential) -> Rights:
    """Verify at the start of the chain's own time window (time is tested elsewhere)."""
    at = effective_rights(cred.links).not_before
    return v.verify(cred.encode(), at).rights


# ---- no sequence of delegations widens a right ----------------------------------------------
# Strategies are built once: building them per draw dominated the run time.
INDEX = st.integers(0, 2**32 - 1)
BOOL = st.booleans()


def narrower_grant(draw: st.DrawFn, parent: Rights) -> Grant:
    """A grant that narrows (or repeats) `parent` on every field it states."""

    def pick(seq: tuple[object, ...] | list[object]) -> Any:
        return seq[draw(INDEX) % len(seq)]

    def between(lo: int, hi: int) -> int:
        return lo + draw(INDEX) % (hi - lo + 1)

    def refine(p: str) -> str:
        if p == "*":
            return str(draw(patterns))
        if p.endswith(".*"):
            how = draw(INDEX) % 3
            if how == 0:
                return p
            suffix = "" if how == 1 else ".*"
            return f"{p[:-2]}.{draw(names)}{suffix}"
        return p

    def sub_destination(d: Destination) -> Destination:
        svc = pick(("*", *SERVICES)) if d.service == "*" else d.service
        inner = [p for p in PORTS if d.port_lo <= p <= d.port_hi] or [d.port_lo]
        a, b = sorted((pick(inner), pick(inner)))
        return Destination(svc, a, b)

    def subset(base: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d for d in base if draw(BOOL))

    def superset(base: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({*base, *draw(domain_sets)}))

    g: dict[str, Any] = {}
    if draw(BOOL):
        g["operations"] = tuple(refine(pick(parent.operations)) for _ in range(between(1, 3)))
    if draw(BOOL):
        g["destinations"] = tuple(
            sub_destination(pick(parent.destinations)) for _ in range(between(1, 3))
        )
    if draw(BOOL):
        g["not_before"] = between(parent.not_before, parent.expires)
    if draw(BOOL):
        g["expires"] = between(g.get("not_before", parent.not_before), parent.expires)
    if draw(BOOL):
        g["max_hops"] = between(0, parent.max_hops)
    if draw(BOOL):
        pa = parent.allowed_domains
        g["allowed_domains"] = draw(domain_sets) if pa is None else subset(pa)
    if draw(BOOL):
        g["required_domains"] = superset(parent.required_domains)
    if draw(BOOL):
        g["forbidden_domains"] = superset(parent.forbidden_domains)
    if draw(BOOL):
        g["rate"] = between(0, 200 if parent.rate is None else parent.rate)
    return Grant(**g)


narrower_grants = st.composite(narrower_grant)

# One random (often wider) value per field, to perturb an otherwise narrowing grant.
RANDOM_FIELD: dict[str, st.SearchStrategy[object]] = {
    "operations": st.lists(patterns, min_size=1, max_size=3).map(tuple),
    "destinations": st.lists(destinations, min_size=1, max_size=3).map(tuple),
    "not_before": times,
    "expires": times.map(lambda t: t + 3 * 3600),
    "max_hops": st.integers(0, MAX_HOPS),
    "allowed_domains": domain_sets,
    "required_domains": domain_sets,
    "forbidden_domains": domain_sets,
    "rate": st.integers(0, 200),
}


RANDOM_STEP = grants(root=False)
FIELD_NAMES = st.sampled_from(sorted(RANDOM_FIELD))


def widened_value(draw: st.DrawFn, parent: Rights, name: str) -> object | None:
    """A value for field `name` just past the parent's (None when it cannot be widened)."""

    def pick(seq: tuple[Any, ...]) -> Any:
        return seq[draw(INDEX) % len(seq)]

    if name == "operations":
        p = pick(parent.operations)
        if p == "*":
            return None
        stem = p.removesuffix(".*")
        labels = stem.split(".")
        options = ["*", stem if p.endswith(".*") else p + ".*"]
        if labels[-1] == "a":  # "a" is a string prefix of the label "ab"
            cousin = ".".join([*labels[:-1], "ab"])
            options.append(cousin + ".b" if p.endswith(".*") else cousin)
        if len(labels) > 1:
            options.append(".".join(labels[:-1]) + ".*")
        return (pick(tuple(options)),)
    if name == "destinations":
        d = pick(parent.destinations)
        options = []
        if d.port_lo > 0:
            options.append(Destination(d.service, d.port_lo - 1, d.port_hi))
        if d.port_hi < 65535:
            options.append(Destination(d.service, d.port_lo, d.port_hi + 1))
        if d.service != "*":
            options.append(Destination("*", d.port_lo, d.port_hi))
            options.append(Destination(pick(SERVICES), d.port_lo, d.port_hi))
        return (pick(tuple(options)),) if options else None
    if name == "not_before":
        return parent.not_before - 1 if parent.not_before > 0 else None
    if name == "expires":
        return parent.expires + 1
    if name == "max_hops":
        return parent.max_hops + 1 if parent.max_hops < MAX_HOPS else None
    if name == "allowed_domains":
        pa = parent.allowed_domains
        extra = [d for d in DOMAINS if pa is not None and d not in pa]
        return (*pa, pick(tuple(extra))) if pa is not None and extra else None
    if name in ("required_domains", "forbidden_domains"):
        current: tuple[str, ...] = getattr(parent, name)
        if not current:
            return None
        drop = pick(current)
        return tuple(d for d in current if d != drop)
    assert name == "rate"
    return parent.rate + 1 if parent.rate is not None else None


@st.composite
def step_grants(draw: st.DrawFn, parent: Rights) -> Grant:
    """Fully random; narrowing but for one random field; or narrowing but for one field
    widened just past the parent's value."""
    mode = draw(INDEX) % 3
    if mode == 0:
        return draw(RANDOM_STEP)
    grant = narrower_grant(draw, parent)
    name = draw(FIELD_NAMES)
    if mode == 1:
        return replace(grant, **{name: draw(RANDOM_FIELD[name])})
    value = widened_value(draw, parent, name)
    for _ in range(3):  # some rights cannot be widened (e.g. "*"); try another field
        if value is not None:
            break
        name = draw(FIELD_NAMES)
        value = widened_value(draw, parent, name)
    if value is None:
        return grant
    if name == "expires" and grant.not_before is not None:
        grant = replace(grant, not_before=None)
    event(f"minimal widening of {name}")
    return replace(grant, **{name: value})


def issue_or_skip(root_grant: Grant) -> Credential | None:
    try:
        return issue(ANCHOR, SCOPE, pub(HOLDERS[0]), root_grant)
    except WarrantError as exc:
        assert exc.reason is Reason.MALFORMED  # not-before after expiry
        return None


@settings(FAST, max_examples=150)
@given(root_grant=grants(root=True), data=st.data())
def test_random_delegations_never_widen(root_grant: Grant, data: st.DataObject) -> None:
    """Either delegate() refuses (and so does the verifier) or every right stays within."""
    cred = issue_or_skip(root_grant)
    if cred is None:
        return
    v = Verifier(trust())
    rights = verify_in_window(v, cred)
    root_admits = Admits.of(rights)
    depth = 1
    for _ in range(4):
        grant = data.draw(step_grants(rights), label=f"grant for link {depth + 1}")
        holder, nxt = HOLDERS[depth - 1], HOLDERS[depth]
        try:
            child_cred = delegate(cred, holder, pub(nxt), grant)
        except WarrantError as exc:
            assert exc.reason in (Reason.ESCALATION, Reason.MALFORMED)
            event(f"refused: {exc.reason.name}")
            # The verifier refuses the same link when the holder signs it anyway.
            forged = forge_link(cred, holder, pub(nxt), grant)
            with pytest.raises(WarrantError) as vexc:
                v.verify(forged.encode(), NOW)
            assert vexc.value.reason is exc.reason
            continue
        child = verify_in_window(v, child_cred)
        event(f"accepted at depth {depth + 1}")
        assert Admits.of(child).within(Admits.of(rights)) == [], (grant, child)
        assert Admits.of(child).within(root_admits) == []
        rights, cred, depth = child, child_cred, depth + 1


@settings(FAST, max_examples=100)
@given(root_grant=grants(root=True), data=st.data())
def test_narrowing_delegations_are_always_accepted(root_grant: Grant, data: st.DataObject) -> None:
    """The converse: a grant that only narrows is never refused, and its values take effect."""
    cred = issue_or_skip(root_grant)
    if cred is None:
        return
    v = Verifier(trust())
    rights = verify_in_window(v, cred)
    for i in range(3):
        parent = rights
        grant = data.draw(narrower_grants(parent))
        cred = delegate(cred, HOLDERS[i], pub(HOLDERS[i + 1]), grant)
        child = verify_in_window(v, cred)
        stated = normalised(grant)
        for name in Grant.__dataclass_fields__:
            value = getattr(stated, name)
            assert getattr(child, name) == (getattr(parent, name) if value is None else value)
        assert Admits.of(child).within(Admits.of(parent)) == []
        rights = child


# ---- the single-right rules against the oracle, exhaustively -----------------------------------
ALL_PATTERNS = ["*"] + [
    ".".join(p) for n in range(1, 4) for p in itertools.product(LABELS, repeat=n)
]
ALL_PATTERNS += [p + ".*" for p in ALL_PATTERNS[1:]]
ALL_DESTINATIONS = [
    Destination(s, lo, hi)
    for s in ("*", "web", "db")
    for lo in BASE_PORTS
    for hi in BASE_PORTS
    if lo <= hi
]


def test_pattern_covers_is_semantic_inclusion() -> None:
    """pattern_covers(p, c) exactly when every name c matches, p matches (all pattern pairs)."""
    matched = {p: frozenset(n for n in NAMES if op_matches(p, n)) for p in ALL_PATTERNS}
    assert all(matched.values())  # every pattern matches something in the universe
    wrong = [
        (p, c)
        for p in ALL_PATTERNS
        for c in ALL_PATTERNS
        if pattern_covers(p, c) != (matched[c] <= matched[p])
    ]
    assert wrong == []
    assert len(ALL_PATTERNS) ** 2 > 6000


def test_destination_covers_is_semantic_inclusion() -> None:
    def admitted(d: Destination) -> frozenset[tuple[str, int]]:
        return frozenset(
            (s, p)
            for s in SERVICES
            for p in PORTS
            if d.service in ("*", s) and d.port_lo <= p <= d.port_hi
        )

    sets = {d: admitted(d) for d in ALL_DESTINATIONS}
    wrong = [
        (p, c)
        for p in ALL_DESTINATIONS
        for c in ALL_DESTINATIONS
        if p.covers(c) != (sets[c] <= sets[p])
    ]
    assert wrong == []


# ---- integrity: any single-bit flip is rejected ---------------------------------------------
def _chains() -> list[Credential]:
    c1 = issue(
        ANCHOR,
        SCOPE,
        pub(HOLDERS[0]),
        Grant(
            operations=("a.*", "b.c"),
            destinations=(Destination("web", 80, 80), Destination("db", 5432, 5439)),
            not_before=NOW - 60,
            expires=NOW + 3600,
            max_hops=4,
            allowed_domains=("a.net", "b.net"),
            required_domains=("a.net",),
            forbidden_domains=("d.net",),
            rate=100,
        ),
    )
    c2 = delegate(c1, HOLDERS[0], pub(HOLDERS[1]), Grant(operations=("a.b.*",), rate=10))
    c3 = delegate(c2, HOLDERS[1], pub(HOLDERS[2]), Grant(max_hops=1, expires=NOW + 600))
    return [c1, c2, c3]


CHAINS = _chains()
ENCODED = [c.encode() for c in CHAINS]


def assert_flip_rejected(v: Verifier, data: bytes, bit: int) -> None:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        v.verify(bytes(flipped), NOW)
    except WarrantError as exc:
        assert exc.reason in (
            Reason.MALFORMED,
            Reason.UNKNOWN_VERSION,
            Reason.BAD_SIGNATURE,
            Reason.UNKNOWN_ANCHOR,
            Reason.WRONG_SCOPE,
        ), (bit, exc)
    else:
        pytest.fail(f"bit {bit} flipped and the credential was still accepted")


def test_unflipped_chains_verify() -> None:
    v = Verifier(trust())
    for data in ENCODED:
        v.verify(data, NOW)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_any_single_bit_flip_is_rejected(data: st.DataObject) -> None:
    depth = data.draw(st.integers(1, 3), label="depth")
    encoded = ENCODED[depth - 1]
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1), label="bit")
    assert_flip_rejected(Verifier(trust()), encoded, bit)


def test_every_bit_flip_of_a_depth2_credential_is_rejected() -> None:
    """Exhaustive, through a warm verifier whose cache holds the genuine chain."""
    v = Verifier(trust())
    encoded = ENCODED[1]
    v.verify(encoded, NOW)
    for bit in range(len(encoded) * 8):
        assert_flip_rejected(v, encoded, bit)
    v.verify(encoded, NOW)  # the cache was not poisoned
    assert v.cache_hits > 0


# ---- round trips ------------------------------------------------------------------------------
@FAST
@given(grant=grants(root=True))
def test_root_grant_round_trip(grant: Grant) -> None:
    try:
        cred = issue(ANCHOR, SCOPE, pub(HOLDERS[0]), grant)
    except WarrantError as exc:
        assert exc.reason is Reason.MALFORMED
        assert grant.not_before is not None and grant.expires is not None
        assert grant.not_before > grant.expires
        return
    data = cred.encode()
    back = Credential.decode(data)
    assert back == cred
    assert back.encode() == data
    assert back.links[0].grant == normalised(grant)
    assert back.holder == pub(HOLDERS[0]) and back.scope == SCOPE


@FAST
@given(grant=grants(root=False))
def test_link_grant_round_trip(grant: Grant) -> None:
    body = encode_body(None, None, pub(HOLDERS[1]), grant)
    link = Link.decode(body, bytes(64), root=False)
    assert link.grant == normalised(grant)
    assert encode_body(None, None, link.holder, link.grant) == body
    # Inside a whole credential too (the verifier is not involved: no narrowing check).
    cred = forge_link(CHAINS[0], HOLDERS[0], pub(HOLDERS[1]), grant)
    assert Credential.decode(cred.encode()) == cred
