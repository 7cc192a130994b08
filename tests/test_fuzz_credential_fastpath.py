"""Differential tests for the credential fast paths (cold verification cost, issue 13).

* `Credential._decode` reads the outer array straight from its bytes and falls back to
  the general CBOR decoder for anything else: on valid credentials and on random
  mutations of them both must give the same result (the same links, or a refusal).
* `root_rights(grant)` builds the root link's rights directly; it must equal
  `narrow(_UNIVERSE, grant)`, the general rule it shortcuts, for every grant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warrant.core import credential, keys
from warrant.core.credential import Credential
from warrant.core.errors import WarrantError
from warrant.core.rights import _UNIVERSE, Destination, Grant, narrow, root_rights

ANCHOR = keys.from_seed(hashlib.sha256(b"fastpath/anchor").digest())
HOLDERS = [keys.from_seed(hashlib.sha256(b"fastpath/%d" % i).digest()) for i in range(4)]
ROOT = Grant(
    operations=("orders.*", "read.x"),
    destinations=(Destination("orders", 8000, 8099), Destination("db", 5432, 5432)),
    not_before=1_700_000_000,
    expires=1_900_000_000,
    max_hops=3,
    allowed_domains=("a.net", "b.net"),
    required_domains=("a.net",),
    rate=100,
)


def _chain(depth: int) -> bytes:
    cred = credential.issue(ANCHOR, "acme.prod", bytes(HOLDERS[0].verify_key), ROOT)
    for i in range(1, depth):
        cred = credential.delegate(
            cred, HOLDERS[i - 1], bytes(HOLDERS[i].verify_key), Grant(operations=("orders.*",))
        )
    return cred.encode()


CHAINS = [_chain(d) for d in (1, 2, 3)]


Result = tuple[object, ...]


def _outcome(decode: Callable[[bytes], Credential], data: bytes) -> Result:
    try:
        cred = decode(data)
    except WarrantError as exc:
        return ("refused", exc.reason)
    return tuple((link.body, link.signature) for link in cred.links)


def _both(data: bytes) -> tuple[Result, Result]:
    credential.clear_decode_cache()
    return _outcome(Credential._decode, data), _outcome(Credential._decode_general, data)


@pytest.mark.parametrize("data", CHAINS)
def test_fast_and_general_decoders_agree_on_valid_chains(data: bytes) -> None:
    fast, general = _both(data)
    assert fast == general and fast[0] != "refused"


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(CHAINS) - 1),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 10_000),
    tail=st.binary(max_size=3),
)
def test_fast_and_general_decoders_agree_on_mutations(
    which: int, edits: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    data = bytearray(CHAINS[which])
    for pos, value in edits:
        data[pos % len(data)] = value
    mutated = bytes(data[: max(1, cut % (len(data) + 1))]) + tail
    fast, general = _both(mutated)
    # The general decoder names a reason; the fast path may only refuse where it refuses.
    assert (fast[0] == "refused") == (general[0] == "refused"), (fast, general)
    if fast[0] != "refused":
        assert fast == general


def test_non_canonical_outer_arrays_are_refused() -> None:
    items = cbor2.loads(CHAINS[1])
    long_header = b"\x98" + bytes([len(items)]) + CHAINS[1][1:]  # array length in 2 bytes
    indefinite = b"\x9f" + CHAINS[1][1:] + b"\xff"
    for data in (long_header, indefinite, CHAINS[1] + b"\x00"):
        fast, general = _both(data)
        assert fast[0] == general[0] == "refused", (fast, general)


_grants = st.builds(
    Grant,
    operations=st.lists(st.sampled_from(["*", "orders.*", "read.x"]), min_size=1, max_size=3).map(
        tuple
    ),
    destinations=st.lists(
        st.builds(
            lambda s, lo, span: Destination(s, lo, min(65535, lo + span)),
            st.sampled_from(["*", "orders", "db"]),
            st.integers(0, 65535),
            st.integers(0, 100),
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
    not_before=st.none() | st.integers(0, 2**63 - 1),
    expires=st.integers(0, 2**63 - 1),
    max_hops=st.none() | st.integers(0, 8),
    allowed_domains=st.none() | st.lists(st.sampled_from(["a.net", "b.net"])).map(tuple),
    required_domains=st.none() | st.lists(st.sampled_from(["a.net"])).map(tuple),
    forbidden_domains=st.none() | st.lists(st.sampled_from(["evil.net"])).map(tuple),
    rate=st.none() | st.integers(0, 2**63 - 1),
)


@settings(max_examples=300, deadline=None)
@given(grant=_grants)
def test_root_rights_is_narrowing_the_universe(grant: Grant) -> None:
    def run(f: object) -> object:
        try:
            return f(grant)  # type: ignore[operator]
        except WarrantError as exc:
            return ("refused", exc.reason)

    assert run(root_rights) == run(lambda g: narrow(_UNIVERSE, g))
