"""Authority credentials: attenuable delegation chains rooted in a trust anchor.

Encoding (SPEC.md section 4): a credential is the deterministic CBOR array

    [1, body_1, sig_1, body_2, sig_2, ...]

where each body is a byte string holding the deterministic CBOR map of one
link, and sig_i is the Ed25519 signature of link i's issuer (the anchor for
link 1, the holder of link i-1 otherwise) over

    SIG_CONTEXT_LINK || d_{i-1} || body_i

with d_0 = 32 zero bytes and d_i = BLAKE2b-256(d_{i-1} || len(body_i) || body_i || sig_i).
d_i binds every link to its whole prefix, so links cannot be spliced between
chains; d_n is the chain digest and d_i[:16] is the id of link i (what
revocation lists name).  Bodies are signed as received and must equal the
re-encoding of what they decode to, so there is exactly one encoding of a
credential and no signature malleability through the encoding.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cbor2
import nacl.exceptions
import nacl.hashlib
import nacl.signing

from . import keys
from .anchors import Anchor, TrustStore, check_scope
from .constants import (
    ANCHOR_ID_LEN,
    CHAIN_DIGEST_LEN,
    CLOCK_SKEW,
    LINK_ID_LEN,
    MAX_CHAIN_LINKS,
    MAX_CREDENTIAL_LEN,
    PERSON_CHAIN,
    PUBKEY_LEN,
    SIG_CONTEXT_LINK,
    SIGNATURE_LEN,
    Reason,
)
from .errors import WarrantError
from .revocation import RevocationStore
from .rights import Destination, Grant, Rights, narrow, root_rights

CREDENTIAL_VERSION = 1

# Link map keys (small integers keep the encoding short).
K_SCOPE, K_ANCHOR, K_HOLDER, K_OPS, K_DSTS = 0, 1, 2, 3, 4
K_NBF, K_EXP, K_HOPS, K_ALLOWED, K_REQUIRED, K_FORBIDDEN, K_RATE = 5, 6, 7, 8, 9, 10, 11
_ZERO_DIGEST = bytes(CHAIN_DIGEST_LEN)


def _malformed(detail: str) -> WarrantError:
    return WarrantError(Reason.MALFORMED, detail)


def _dumps(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


# ---- link bodies ------------------------------------------------------------------
def encode_body(scope: str | None, anchor: bytes | None, holder: bytes, grant: Grant) -> bytes:
    m: dict[int, Any] = {K_HOLDER: holder}
    if scope is not None:
        m[K_SCOPE] = scope
    if anchor is not None:
        m[K_ANCHOR] = anchor
    if grant.operations is not None:
        m[K_OPS] = sorted(set(grant.operations))
    if grant.destinations is not None:
        m[K_DSTS] = [
            [d.service, d.port_lo] if d.port_lo == d.port_hi else [d.service, d.port_lo, d.port_hi]
            for d in sorted(set(grant.destinations))
        ]
    for key, value in (
        (K_NBF, grant.not_before),
        (K_EXP, grant.expires),
        (K_HOPS, grant.max_hops),
        (K_RATE, grant.rate),
    ):
        if value is not None:
            m[key] = value
    for key, group in (
        (K_ALLOWED, grant.allowed_domains),
        (K_REQUIRED, grant.required_domains),
        (K_FORBIDDEN, grant.forbidden_domains),
    ):
        if group is not None:
            m[key] = sorted(set(group))
    return _dumps(m)


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _malformed(f"{what} must be a list of strings")
    return tuple(value)


def _uint(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _malformed(f"{what} must be an unsigned integer")
    return value


def _destinations(value: Any) -> tuple[Destination, ...]:
    if not isinstance(value, list):
        raise _malformed("destinations must be a list")
    out = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) not in (2, 3)
            or not isinstance(item[0], str)
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in item[1:])
        ):
            raise _malformed("destination must be [service, port] or [service, lo, hi]")
        lo = item[1]
        hi = item[2] if len(item) == 3 else lo
        out.append(Destination(item[0], lo, hi))
    return tuple(out)


@dataclass(frozen=True)
class Link:
    body: bytes
    signature: bytes
    holder: bytes
    grant: Grant
    scope: str | None = None
    anchor_id: bytes | None = None

    @classmethod
    def decode(cls, body: bytes, signature: bytes, root: bool) -> Link:
        try:
            m = cbor2.loads(body)
        except Exception as exc:  # cbor2 raises several types on garbage
            raise _malformed(f"link body is not CBOR ({type(exc).__name__})") from None
        if not isinstance(m, dict) or not all(isinstance(k, int) for k in m):
            raise _malformed("link body must be a map with integer keys")
        unknown = set(m) - set(range(K_SCOPE, K_RATE + 1))
        if unknown:
            raise _malformed(f"unknown link field(s) {sorted(unknown)}")
        if root != (K_SCOPE in m) or root != (K_ANCHOR in m):
            raise _malformed("scope and anchor appear in the root link and only there")
        holder = m.get(K_HOLDER)
        if not isinstance(holder, bytes) or len(holder) != PUBKEY_LEN:
            raise _malformed("holder must be a 32-byte key")
        scope = anchor = None
        if root:
            if not isinstance(m[K_SCOPE], str):
                raise _malformed("scope must be a string")
            scope = check_scope(m[K_SCOPE])
            anchor = m[K_ANCHOR]
            if not isinstance(anchor, bytes) or len(anchor) != ANCHOR_ID_LEN:
                raise _malformed("anchor id must be 8 bytes")
        grant = Grant(
            operations=_str_list(m[K_OPS], "operations") if K_OPS in m else None,
            destinations=_destinations(m[K_DSTS]) if K_DSTS in m else None,
            not_before=_uint(m[K_NBF], "not_before") if K_NBF in m else None,
            expires=_uint(m[K_EXP], "expires") if K_EXP in m else None,
            max_hops=_uint(m[K_HOPS], "max_hops") if K_HOPS in m else None,
            allowed_domains=_str_list(m[K_ALLOWED], "allowed") if K_ALLOWED in m else None,
            required_domains=_str_list(m[K_REQUIRED], "required") if K_REQUIRED in m else None,
            forbidden_domains=_str_list(m[K_FORBIDDEN], "forbidden") if K_FORBIDDEN in m else None,
            rate=_uint(m[K_RATE], "rate") if K_RATE in m else None,
        )
        if encode_body(scope, anchor, holder, grant) != body:
            raise _malformed("link body is not in deterministic encoding")
        return cls(body, signature, holder, grant, scope, anchor)


def next_digest(prev: bytes, body: bytes, signature: bytes) -> bytes:
    h = nacl.hashlib.blake2b(digest_size=CHAIN_DIGEST_LEN, person=PERSON_CHAIN)
    h.update(prev)
    h.update(struct.pack(">H", len(body)))
    h.update(body)
    h.update(signature)
    return h.digest()


def signed_message(prev_digest: bytes, body: bytes) -> bytes:
    return SIG_CONTEXT_LINK + prev_digest + body


@dataclass(frozen=True)
class Credential:
    links: tuple[Link, ...]

    @property
    def scope(self) -> str:
        assert self.links[0].scope is not None
        return self.links[0].scope

    @property
    def anchor_id(self) -> bytes:
        assert self.links[0].anchor_id is not None
        return self.links[0].anchor_id

    @property
    def holder(self) -> bytes:
        return self.links[-1].holder

    def digests(self) -> list[bytes]:
        """d_1 .. d_n (see module docstring)."""
        out, d = [], _ZERO_DIGEST
        for link in self.links:
            d = next_digest(d, link.body, link.signature)
            out.append(d)
        return out

    @property
    def chain_digest(self) -> bytes:
        return self.digests()[-1]

    def link_ids(self) -> list[bytes]:
        return [d[:LINK_ID_LEN] for d in self.digests()]

    def encode(self) -> bytes:
        items: list[Any] = [CREDENTIAL_VERSION]
        for link in self.links:
            items += [link.body, link.signature]
        return _dumps(items)

    @classmethod
    def decode(cls, data: bytes) -> Credential:
        if len(data) > MAX_CREDENTIAL_LEN:
            raise _malformed(f"credential longer than {MAX_CREDENTIAL_LEN} bytes")
        try:
            items = cbor2.loads(data)
        except Exception as exc:
            raise _malformed(f"credential is not CBOR ({type(exc).__name__})") from None
        if not isinstance(items, list) or not items:
            raise _malformed("credential must be a CBOR array")
        if items[0] != CREDENTIAL_VERSION or isinstance(items[0], bool):
            raise WarrantError(Reason.UNKNOWN_VERSION, f"credential version {items[0]!r}")
        pairs = items[1:]
        if not pairs or len(pairs) % 2:
            raise _malformed("credential must hold body/signature pairs")
        if len(pairs) // 2 > MAX_CHAIN_LINKS:
            raise _malformed(f"chain deeper than {MAX_CHAIN_LINKS} links")
        links = []
        for i in range(0, len(pairs), 2):
            body, sig = pairs[i], pairs[i + 1]
            if not isinstance(body, bytes) or not isinstance(sig, bytes):
                raise _malformed("link body and signature must be byte strings")
            if len(sig) != SIGNATURE_LEN:
                raise _malformed("signature must be 64 bytes")
            links.append(Link.decode(body, sig, root=(i == 0)))
        cred = cls(tuple(links))
        if cred.encode() != data:
            raise _malformed("credential is not in deterministic encoding")
        return cred


# ---- issuing -----------------------------------------------------------------------
def issue(
    anchor_key: nacl.signing.SigningKey, scope: str, holder: bytes, grant: Grant
) -> Credential:
    """Root link: an anchor grants `grant` to `holder` within `scope`."""
    check_scope(scope)
    root_rights(grant)  # fail early on an incomplete or inconsistent root grant
    body = encode_body(scope, keys.anchor_id(bytes(anchor_key.verify_key)), holder, grant)
    sig = anchor_key.sign(signed_message(_ZERO_DIGEST, body)).signature
    return Credential((Link.decode(body, sig, root=True),))


def delegate(
    parent: Credential, holder_key: nacl.signing.SigningKey, new_holder: bytes, grant: Grant
) -> Credential:
    """Append a narrower link.  Refuses (ESCALATION) a grant that widens the parent."""
    if bytes(holder_key.verify_key) != parent.holder:
        raise WarrantError(Reason.BAD_SIGNATURE, "this key does not hold the parent credential")
    rights = root_rights(parent.links[0].grant)
    for link in parent.links[1:]:
        rights = narrow(rights, link.grant)
    narrow(rights, grant)
    body = encode_body(None, None, new_holder, grant)
    sig = holder_key.sign(signed_message(parent.digests()[-1], body)).signature
    return Credential((*parent.links, Link.decode(body, sig, root=False)))


# ---- verifying ----------------------------------------------------------------------
@dataclass(frozen=True)
class VerifiedChain:
    """What a receiver knows once a chain verified: the authority a packet carries."""

    credential: Credential
    anchor: Anchor
    rights: Rights
    chain_digest: bytes
    link_ids: tuple[bytes, ...]

    @property
    def scope(self) -> str:
        return self.credential.scope

    @property
    def holder(self) -> bytes:
        return self.credential.holder

    @property
    def depth(self) -> int:
        return len(self.credential.links)

    def keys(self) -> list[bytes]:
        return [self.anchor.public, *(link.holder for link in self.credential.links)]


@dataclass(frozen=True)
class _Prefix:
    anchor_public: bytes
    rights: Rights


class Verifier:
    """Checks chains against a trust store and revocation lists at a given time.

    Keeps a bounded cache of verified prefixes keyed by d_i: signatures and
    narrowing of a cached prefix are not checked again, so a chain extending a
    known prefix costs only its new links.  Anchor membership, revocation and
    time are checked on every call, since they change without the chain
    changing.
    """

    def __init__(
        self,
        trust: TrustStore,
        revocations: RevocationStore | None = None,
        *,
        skew: int = CLOCK_SKEW,
        cache_size: int = 4096,
    ) -> None:
        self.trust = trust
        self.revocations = revocations if revocations is not None else RevocationStore()
        self.skew = skew
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, _Prefix] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0

    def clear_cache(self) -> None:
        self._cache.clear()

    def verify(self, credential: Credential | bytes, now: float) -> VerifiedChain:
        cred = credential if isinstance(credential, Credential) else Credential.decode(credential)
        anchor = self.trust.find(cred.scope, cred.anchor_id)
        digests = cred.digests()

        start, rights = 0, None
        for i in range(len(digests) - 1, -1, -1):
            hit = self._cache.get(digests[i])
            if hit is not None and hit.anchor_public == anchor.public:
                self._cache.move_to_end(digests[i])
                start, rights = i + 1, hit.rights
                self.cache_hits += 1
                break
        else:
            self.cache_misses += 1

        signer = anchor.public if start == 0 else cred.links[start - 1].holder
        prev = _ZERO_DIGEST if start == 0 else digests[start - 1]
        for i in range(start, len(cred.links)):
            link = cred.links[i]
            try:
                nacl.signing.VerifyKey(signer).verify(
                    signed_message(prev, link.body), link.signature
                )
            except (nacl.exceptions.BadSignatureError, ValueError):
                raise WarrantError(
                    Reason.BAD_SIGNATURE, f"link {i + 1} signature does not verify"
                ) from None
            rights = root_rights(link.grant) if rights is None else narrow(rights, link.grant)
            self._remember(digests[i], _Prefix(anchor.public, rights))
            signer, prev = link.holder, digests[i]
        assert rights is not None

        link_ids = tuple(d[:LINK_ID_LEN] for d in digests)
        chain = VerifiedChain(cred, anchor, rights, digests[-1], link_ids)
        self.revocations.check(cred.scope, link_ids, chain.keys())
        self._check_time(anchor, rights, now)
        return chain

    def _check_time(self, anchor: Anchor, rights: Rights, now: float) -> None:
        if anchor.not_after is not None and now > anchor.not_after + self.skew:
            raise WarrantError(Reason.EXPIRED, "trust anchor expired")
        if anchor.not_before is not None and now < anchor.not_before - self.skew:
            raise WarrantError(Reason.NOT_YET_VALID, "trust anchor not yet valid")
        if now > rights.expires + self.skew:
            raise WarrantError(Reason.EXPIRED, f"credential expired at {rights.expires}")
        if now < rights.not_before - self.skew:
            raise WarrantError(Reason.NOT_YET_VALID, f"credential valid from {rights.not_before}")

    def _remember(self, digest: bytes, entry: _Prefix) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def effective_rights(links: Sequence[Link]) -> Rights:
    """Rights of a chain without checking signatures (for display and delegation)."""
    rights = root_rights(links[0].grant)
    for link in links[1:]:
        rights = narrow(rights, link.grant)
    return rights
