"""The cold-verification shortcuts of issue 13 (item 6) against what they replace.

* `make_destination` / `make_grant` build without the frozen dataclass __init__; they
  must give objects equal to (same hash, repr, fields) the constructors' own, and refuse
  exactly what the constructors refuse, with the same reason and message.
* Decoded links, root_rights / narrow and verified chains are built the same way: equal
  to constructor-built objects, and usable by dataclasses.replace.
* Rights.grants_operation / grants_destination (plain loops) agree with the rules they
  apply (pattern_covers, Destination.admits).
* Signatures are checked through libsodium's crypto_sign_open directly: every flipped
  bit of signature or body and every wrong-length signature is BAD_SIGNATURE.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credential_helpers import trust
from warrant.core import credential, keys
from warrant.core.constants import MAX_HOPS, Reason
from warrant.core.credential import Credential, Link, Verifier
from warrant.core.errors import WarrantError
from warrant.core.rights import (
    Destination,
    Grant,
    Rights,
    make_destination,
    make_grant,
    narrow,
    pattern_covers,
    root_rights,
)

ANCHOR = keys.from_seed(hashlib.sha256(b"fast-construction/anchor").digest())
HOLDERS = [keys.from_seed(hashlib.sha256(b"fast-construction/%d" % i).digest()) for i in range(3)]
SCOPE = "acme.prod"
NOW = 1_800_000_000
ROOT = Grant(
    operations=("read.*", "write.logs"),
    destinations=(Destination("cache", 6379, 6380), Destination("db", 5432, 5432)),
    not_before=1_700_000_000,
    expires=1_900_000_000,
    max_hops=4,
    allowed_domains=("a.net", "b.net"),
    required_domains=("a.net",),
    forbidden_domains=("evil.net",),
    rate=1000,
)
LEAF = Grant(operations=("read.orders.*",), destinations=(Destination("db", 5432, 5432),))

# Names from an alphabet mixing valid and invalid characters, so both outcomes occur.
NAMES = st.text(alphabet="ab.-_*Z \n", min_size=0, max_size=6)
INTS = st.one_of(st.integers(-3, 70_000), st.just(2**63 - 1), st.just(2**63))


def _outcome(build: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", build(*args)
    except WarrantError as exc:
        return "refused", (exc.reason, exc.detail)


def _same_object(a: object, b: object) -> None:
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b)
    assert type(a) is type(b) and vars(a) == vars(b)


@settings(max_examples=300, deadline=None)
@given(service=NAMES, lo=INTS, hi=INTS)
def test_make_destination_is_the_constructor(service: str, lo: int, hi: int) -> None:
    fast, slow = _outcome(make_destination, service, lo, hi), _outcome(Destination, service, lo, hi)
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        _same_object(fast[1], slow[1])
    else:
        assert fast[1] == slow[1]


_OPTIONAL_NAMES = st.one_of(st.none(), st.lists(NAMES, max_size=3).map(tuple))
_OPTIONAL_INT = st.one_of(st.none(), INTS)


@settings(max_examples=300, deadline=None)
@given(
    ops=_OPTIONAL_NAMES,
    dsts=st.one_of(
        st.none(), st.just(()), st.just((Destination("db", 1, 2), Destination("*", 0, 9)))
    ),
    nbf=_OPTIONAL_INT,
    exp=_OPTIONAL_INT,
    hops=st.one_of(st.none(), st.integers(-1, MAX_HOPS + 1)),
    allowed=_OPTIONAL_NAMES,
    required=_OPTIONAL_NAMES,
    forbidden=_OPTIONAL_NAMES,
    rate=_OPTIONAL_INT,
)
def test_make_grant_is_the_constructor(*_: Any, **fields: Any) -> None:
    args = tuple(fields.values())
    fast, slow = _outcome(make_grant, *args), _outcome(Grant, *args)
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        _same_object(fast[1], slow[1])
        assert dataclasses.replace(fast[1]) == slow[1]
    else:
        assert fast[1] == slow[1]


def _chain(depth: int) -> Credential:
    cred = credential.issue(ANCHOR, SCOPE, bytes(HOLDERS[0].verify_key), ROOT)
    for i in range(1, depth):
        cred = credential.delegate(cred, HOLDERS[i - 1], bytes(HOLDERS[i].verify_key), LEAF)
    return cred


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_decoded_and_verified_objects_equal_constructed_ones(depth: int) -> None:
    credential.clear_decode_cache()
    data = _chain(depth).encode()
    chain = Verifier(trust((SCOPE, ANCHOR))).verify(data, NOW)
    for link in chain.credential.links:
        g = link.grant
        rebuilt = Link(
            link.body,
            link.signature,
            link.holder,
            Grant(*(getattr(g, f.name) for f in dataclasses.fields(Grant))),
            link.scope,
            link.anchor_id,
        )
        assert link == rebuilt and hash(link) == hash(rebuilt) and repr(link) == repr(rebuilt)
        for d in g.destinations or ():
            _same_object(d, Destination(d.service, d.port_lo, d.port_hi))
    r = chain.rights
    _same_object(r, Rights(*(getattr(r, f.name) for f in dataclasses.fields(Rights))))
    assert dataclasses.replace(chain) == chain and chain.depth == depth


@settings(max_examples=200, deadline=None)
@given(grant=st.sampled_from([LEAF, Grant(rate=5), Grant(expires=1_850_000_000), Grant()]))
def test_narrowed_rights_equal_constructed_ones(grant: Grant) -> None:
    parent = root_rights(ROOT)
    _same_object(parent, Rights(*(getattr(parent, f.name) for f in dataclasses.fields(Rights))))
    child = narrow(parent, grant)
    _same_object(child, Rights(*(getattr(child, f.name) for f in dataclasses.fields(Rights))))


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(
        st.sampled_from(["*", "read.*", "read.orders.*", "write.logs", "read"]), min_size=1
    ),
    op=st.sampled_from(["read", "read.x", "read.orders", "read.orders.list", "write.logs", "a"]),
    dsts=st.lists(
        st.builds(
            Destination,
            st.sampled_from(["*", "db", "cache"]),
            st.integers(0, 10),
            st.just(10),
        ),
        min_size=1,
    ),
    service=st.sampled_from(["db", "cache", "web"]),
    port=st.integers(0, 12),
)
def test_grants_agree_with_the_rules(
    patterns: list[str], op: str, dsts: list[Destination], service: str, port: int
) -> None:
    r = dataclasses.replace(root_rights(ROOT), operations=tuple(patterns), destinations=tuple(dsts))
    assert r.grants_operation(op) == any(pattern_covers(p, op) for p in patterns)
    assert r.grants_destination(service, port) == any(d.admits(service, port) for d in dsts)


def _verify(cred: Credential) -> Reason:
    credential.clear_decode_cache()
    try:
        Verifier(trust((SCOPE, ANCHOR))).verify(cred, NOW)
    except WarrantError as exc:
        return exc.reason
    return Reason.OK


def test_every_flipped_signature_bit_is_refused() -> None:
    cred = _chain(2)
    assert _verify(cred) is Reason.OK
    for i in range(2):
        link = cred.links[i]
        for bit in range(8 * len(link.signature)):
            sig = bytearray(link.signature)
            sig[bit // 8] ^= 1 << (bit % 8)
            bad = dataclasses.replace(link, signature=bytes(sig))
            links = list(cred.links)
            links[i] = bad
            assert _verify(Credential(tuple(links))) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("size", [0, 1, 63, 65, 128])
def test_a_signature_of_the_wrong_length_is_refused(size: int) -> None:
    cred = _chain(2)
    sig = (cred.links[1].signature * 2)[:size]
    links = (cred.links[0], dataclasses.replace(cred.links[1], signature=sig))
    assert _verify(Credential(links)) is Reason.BAD_SIGNATURE
