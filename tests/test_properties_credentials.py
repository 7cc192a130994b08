"""Property tests (hypothesis) for credentials: integrity, monotone narrowing, round trips.

The narrowing oracle below is written independently of `warrant.rights`: it
judges rights by what they *admit* over a finite universe of operation names,
services, ports and domains, not by re-running `narrow`.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, replace

import hypothesis.strategies as st
import nacl.signing
import pytest
from hypothesis import HealthCheck, event, given, settings

from warrant import keys
from warrant.anchors import Anchor, TrustStore
from warrant.constants import MAX_HOPS, Reason
from warrant.credential import (
    Credential,
    Link,
    Verifier,
    delegate,
    effective_rights,
    encode_body,
    issue,
    signed_message,
)
from warrant.errors import WarrantError
from warrant.rights import Destination, Grant, Rights

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
LABELS = ("a", "b", "c")
NAMES = [".".join(p) for n in range(1, 5) for p in itertools.product(LABELS, repeat=n)]
SERVICES = ("web", "db", "api")
PORTS = (0, 1, 79, 80, 81, 442, 443, 444, 8079, 8080, 8081, 65534, 65535)
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
port_ranges = st.tuples(st.sampled_from(PORTS), st.sampled_from(PORTS)).map(sorted)
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


def forge_link(
    parent: Credential, signer: nacl.signing.SigningKey, holder: bytes, grant: Grant
) -> Credential:
    body = encode_body(None, None, holder, grant)
    sig = signer.sign(signed_message(parent.chain_digest, body)).signature
    return Credential((*parent.links, Link.decode(body, sig, root=False)))


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
def narrower_grant(draw: st.DrawFn, parent: Rights) -> Grant:
    """A grant that narrows (or repeats) `parent` on every field it states."""

    def field(strategy: st.SearchStrategy[object]) -> object:
        return draw(st.one_of(st.none(), strategy))

    def refine(p: str) -> st.SearchStrategy[str]:
        if p == "*":
            return patterns
        if p.endswith(".*"):
            stem = p[:-2]
            return st.one_of(
                st.just(p),
                names.map(lambda n: f"{stem}.{n}"),
                names.map(lambda n: f"{stem}.{n}.*"),
            )
        return st.just(p)

    def sub_destination(d: Destination) -> st.SearchStrategy[Destination]:
        svc = st.sampled_from(("*", *SERVICES)) if d.service == "*" else st.just(d.service)
        inner = [p for p in PORTS if d.port_lo <= p <= d.port_hi] or [d.port_lo]
        rng = st.tuples(st.sampled_from(inner), st.sampled_from(inner)).map(sorted)
        return st.builds(lambda s, r: Destination(s, r[0], r[1]), svc, rng)

    def superset(base: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
        return domain_sets.map(lambda d: tuple(sorted({*base, *d})))

    ops = st.lists(st.sampled_from(parent.operations).flatmap(refine), min_size=1, max_size=3)
    dsts = st.lists(
        st.sampled_from(parent.destinations).flatmap(sub_destination), min_size=1, max_size=3
    )
    nbf = draw(st.one_of(st.none(), st.integers(parent.not_before, parent.expires)))
    lo = parent.not_before if nbf is None else nbf
    if parent.allowed_domains is None:
        allowed: st.SearchStrategy[tuple[str, ...]] = domain_sets
    elif parent.allowed_domains:
        allowed = st.lists(st.sampled_from(parent.allowed_domains), unique=True).map(tuple)
    else:
        allowed = st.just(())
    rate_max = 200 if parent.rate is None else parent.rate
    return Grant(
        operations=field(ops.map(tuple)),  # type: ignore[arg-type]
        destinations=field(dsts.map(tuple)),  # type: ignore[arg-type]
        not_before=nbf,
        expires=field(st.integers(lo, parent.expires)),  # type: ignore[arg-type]
        max_hops=field(st.integers(0, parent.max_hops)),  # type: ignore[arg-type]
        allowed_domains=field(allowed),  # type: ignore[arg-type]
        required_domains=field(superset(parent.required_domains)),  # type: ignore[arg-type]
        forbidden_domains=field(superset(parent.forbidden_domains)),  # type: ignore[arg-type]
        rate=field(st.integers(0, rate_max)),  # type: ignore[arg-type]
    )


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


@st.composite
def step_grants(draw: st.DrawFn, parent: Rights) -> Grant:
    """Fully random, or narrowing except for one randomly re-drawn field."""
    if draw(st.booleans()):
        return draw(grants(root=False))
    grant = narrower_grant(draw, parent)
    name = draw(st.sampled_from(sorted(RANDOM_FIELD)))
    return replace(grant, **{name: draw(RANDOM_FIELD[name])})


def issue_or_skip(root_grant: Grant) -> Credential | None:
    try:
        return issue(ANCHOR, SCOPE, pub(HOLDERS[0]), root_grant)
    except WarrantError as exc:
        assert exc.reason is Reason.MALFORMED  # not-before after expiry
        return None


@settings(FAST, max_examples=80)
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


@FAST
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
