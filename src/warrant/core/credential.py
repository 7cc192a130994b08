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

import functools
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cbor2
import nacl.bindings
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
from .rights import (
    Destination,
    Grant,
    Rights,
    built,
    make_destination,
    make_grant,
    narrow,
    root_rights,
)

CREDENTIAL_VERSION = 1

# Link map keys (small integers keep the encoding short).
K_SCOPE, K_ANCHOR, K_HOLDER, K_OPS, K_DSTS = 0, 1, 2, 3, 4
K_NBF, K_EXP, K_HOPS, K_ALLOWED, K_REQUIRED, K_FORBIDDEN, K_RATE = 5, 6, 7, 8, 9, 10, 11
_ZERO_DIGEST = bytes(CHAIN_DIGEST_LEN)
_LINK_KEYS = frozenset(range(K_SCOPE, K_RATE + 1))
_U16 = struct.Struct(">H").pack

# Decoding is a pure function of the bytes, so decoded links and credentials are
# memoised on their exact bytes (bounded LRU; failures are never cached).  A
# credential arrives once per session and a delegation extends a known prefix,
# so repeat decodes are the common case.  Worst case memory: about
# _CREDENTIAL_CACHE_SIZE * 2 * MAX_CREDENTIAL_LEN + _LINK_CACHE_SIZE * MAX_CREDENTIAL_LEN.
_CREDENTIAL_CACHE_SIZE = 1024
_LINK_CACHE_SIZE = 2048


def _malformed(detail: str) -> WarrantError:
    return WarrantError(Reason.MALFORMED, detail)


def _dumps(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _make_chain_hash() -> Callable[[bytes], bytes]:
    """BLAKE2b-256 personalised with PERSON_CHAIN: libsodium's
    crypto_generichash_blake2b_salt_personal.

    PyNaCl's public wrapper spends a few microseconds per call re-checking
    arguments that are constant here (32-byte digest, no key, zero salt, fixed
    person), so the function is called through PyNaCl's own cffi handle, with
    the public wrapper as the fallback when that handle is not where PyNaCl
    keeps it.  Either way the hash is libsodium's.
    """

    def public(data: bytes) -> bytes:
        out: bytes = nacl.bindings.crypto_generichash_blake2b_salt_personal(
            data, digest_size=CHAIN_DIGEST_LEN, person=PERSON_CHAIN
        )
        return out

    try:
        from nacl._sodium import ffi, lib
    except ImportError:  # pragma: no cover - another PyNaCl layout
        return public
    new, buffer, null = ffi.new, ffi.buffer, ffi.NULL
    blake2b = lib.crypto_generichash_blake2b_salt_personal
    salt, person = bytes(16), PERSON_CHAIN.ljust(16, b"\0")
    ctype = f"unsigned char[{CHAIN_DIGEST_LEN}]"

    def direct(data: bytes) -> bytes:
        if type(data) is not bytes:
            return public(data)
        out = new(ctype)
        if blake2b(out, CHAIN_DIGEST_LEN, data, len(data), null, 0, salt, person) != 0:
            raise RuntimeError("crypto_generichash_blake2b_salt_personal failed")
        digest: bytes = buffer(out)[:]
        return digest

    return direct


_chain_hash = _make_chain_hash()


def _make_sign_open() -> Callable[[bytes, bytes], bool]:
    """Ed25519 verify of `signed` (signature || message): libsodium's crypto_sign_open,
    as VerifyKey.verify and nacl.bindings.crypto_sign_open call it.

    Called through PyNaCl's cffi handle for the reason given in _make_chain_hash (the
    public wrapper allocates a length cell and copies the opened message out), with
    the public wrapper as the fallback.
    """

    def public(signed: bytes, key: bytes) -> bool:
        try:
            nacl.bindings.crypto_sign_open(signed, key)
        except nacl.exceptions.BadSignatureError:
            return False
        return True

    try:
        from nacl._sodium import ffi, lib
    except ImportError:  # pragma: no cover - another PyNaCl layout
        return public
    new, null, sign_open = ffi.new, ffi.NULL, lib.crypto_sign_open

    def direct(signed: bytes, key: bytes) -> bool:
        out = new("unsigned char[]", len(signed))
        return bool(sign_open(out, null, signed, len(signed), key) == 0)

    return direct


_sign_open = _make_sign_open()


def _sig_ok(public: bytes, signed: bytes) -> bool:
    """Does `signed` (an Ed25519 signature then the message it signs) verify under `public`?"""
    if type(public) is bytes and len(public) == PUBKEY_LEN and type(signed) is bytes:
        return _sign_open(signed, public)
    # Odd inputs (only from hand-built Link objects): PyNaCl's own checks decide.
    try:
        nacl.signing.VerifyKey(public).verify(signed[SIGNATURE_LEN:], signed[:SIGNATURE_LEN])
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


# ---- link bodies ------------------------------------------------------------------
def encode_body(scope: str | None, anchor: bytes | None, holder: bytes, grant: Grant) -> bytes:
    # Keys go in ascending order, which for integer keys below 24 is the
    # canonical (length-first, bytewise) order.  With every number a plain int
    # no other canonicalisation applies, so cbor2's default encoder yields the
    # canonical bytes without its costly per-key sort; anything else (floats,
    # say) takes the canonical encoder.  Written out field by field: every
    # decoded link is re-encoded to prove its encoding is the deterministic one.
    m: dict[int, Any] = {}
    if scope is not None:
        m[K_SCOPE] = scope
    if anchor is not None:
        m[K_ANCHOR] = anchor
    m[K_HOLDER] = holder
    plain = True
    g = grant
    if g.operations is not None:
        m[K_OPS] = sorted(set(g.operations))
    if g.destinations is not None:
        dsts: list[list[Any]] = []
        for d in sorted(set(g.destinations)):
            lo, hi = d.port_lo, d.port_hi
            if type(lo) is not int or type(hi) is not int:
                plain = False
            dsts.append([d.service, lo] if lo == hi else [d.service, lo, hi])
        m[K_DSTS] = dsts
    if g.not_before is not None:
        plain = plain and type(g.not_before) is int
        m[K_NBF] = g.not_before
    if g.expires is not None:
        plain = plain and type(g.expires) is int
        m[K_EXP] = g.expires
    if g.max_hops is not None:
        plain = plain and type(g.max_hops) is int
        m[K_HOPS] = g.max_hops
    if g.allowed_domains is not None:
        m[K_ALLOWED] = sorted(set(g.allowed_domains))
    if g.required_domains is not None:
        m[K_REQUIRED] = sorted(set(g.required_domains))
    if g.forbidden_domains is not None:
        m[K_FORBIDDEN] = sorted(set(g.forbidden_domains))
    if g.rate is not None:
        plain = plain and type(g.rate) is int
        m[K_RATE] = g.rate
    return cbor2.dumps(m) if plain else _dumps(m)


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    """A list of strings, strictly increasing (the encoder writes sorted(set(...)))."""
    if type(value) is not list:
        raise _malformed(f"{what} must be a list of strings")
    prev = None
    for v in value:
        if type(v) is not str:
            raise _malformed(f"{what} must be a list of strings")
        if prev is not None and not prev < v:
            raise _malformed("link body is not in deterministic encoding")
        prev = v
    return tuple(value)


def _uint(value: Any, what: str) -> int:
    if type(value) is int and value >= 0:  # type(), not isinstance: a bool is no integer here
        return value
    raise _malformed(f"{what} must be an unsigned integer")


def _destinations(value: Any) -> tuple[Destination, ...]:
    """[[service, port] | [service, lo, hi], ...], sorted, distinct, [s, p] for one port."""
    if type(value) is not list:
        raise _malformed("destinations must be a list")
    out = []
    last: list[Any] | None = None
    for item in value:
        if type(item) is not list or type(item[0] if item else None) is not str:
            raise _malformed("destination must be [service, port] or [service, lo, hi]")
        n = len(item)
        lo = item[1] if n > 1 else None
        hi = item[2] if n == 3 else lo
        if n > 3 or type(lo) is not int or type(hi) is not int:
            raise _malformed("destination must be [service, port] or [service, lo, hi]")
        this = [item[0], lo, hi]
        if (n == 3 and lo == hi) or (last is not None and not last < this):
            raise _malformed("link body is not in deterministic encoding")
        last = this
        out.append(make_destination(item[0], lo, hi))
    return tuple(out)


def _split_credential(data: bytes) -> list[bytes] | None:
    """The items after the version of [1, body_1, sig_1, ...] in its deterministic
    encoding, read straight from the bytes; None for anything else.

    Deterministic CBOR of an array of the int 1 and byte strings is one
    shortest-form header per item and nothing more, so this strict reading
    both decodes and proves the encoding (no re-encoding needed).  None sends
    the caller to the general decoder, which names what is wrong.
    """
    n = len(data)
    count = data[0] - 0x80 if n > 2 else 0  # array header, up to 23 items
    if not 3 <= count <= 23 or data[1] != CREDENTIAL_VERSION:
        return None
    pos, out = 2, []
    for _ in range(count - 1):
        if pos >= n:
            return None
        h = data[pos]
        if 0x40 <= h < 0x58:  # byte string, length in the header
            size, pos = h - 0x40, pos + 1
        elif h == 0x58 and pos + 1 < n and data[pos + 1] >= 24:
            size, pos = data[pos + 1], pos + 2
        elif h == 0x59 and pos + 2 < n and data[pos + 1]:
            size, pos = (data[pos + 1] << 8) | data[pos + 2], pos + 3
        else:
            return None
        end = pos + size
        if end > n:
            return None
        out.append(data[pos:end])
        pos = end
    return out if pos == n else None


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
        if cls is Link and type(body) is bytes and type(signature) is bytes:
            return _decode_link_cached(body, signature, root)
        return cls._decode(body, signature, root)

    @classmethod
    def _decode(cls, body: bytes, signature: bytes, root: bool) -> Link:
        # Decoded once with cbor2's C decoder; the deterministic encoding is
        # proven by the checks below (key order, sorted distinct lists,
        # normalised destinations) plus one C re-encode compared with `body`:
        # a CBOR round trip of ints, strings, bytes, lists and maps is the
        # identity, so equal bytes mean `body` is what encode_body writes.
        try:
            m = cbor2.loads(body)
        except Exception as exc:  # cbor2 raises several types on garbage
            raise _malformed(f"link body is not CBOR ({type(exc).__name__})") from None
        if type(m) is not dict:
            raise _malformed("link body must be a map with integer keys")
        prev = -1
        for k in m:  # exact ints (a bool is not a key), known, ascending
            if type(k) is not int or not prev < k <= K_RATE:
                if not isinstance(k, int) or isinstance(k, bool):
                    raise _malformed("link body must be a map with integer keys")
                if k not in _LINK_KEYS:
                    raise _malformed(f"unknown link field {k}")
                raise _malformed("link body is not in deterministic encoding")
            prev = k
        if None in m.values():  # a field is stated or absent, never null
            raise _malformed("link field is null")
        if root != (K_SCOPE in m) or root != (K_ANCHOR in m):
            raise _malformed("scope and anchor appear in the root link and only there")
        holder = m.get(K_HOLDER)
        if type(holder) is not bytes or len(holder) != PUBKEY_LEN:
            raise _malformed("holder must be a 32-byte key")
        scope = anchor = None
        if root:
            if type(m[K_SCOPE]) is not str:
                raise _malformed("scope must be a string")
            scope = check_scope(m[K_SCOPE])
            anchor = m[K_ANCHOR]
            if type(anchor) is not bytes or len(anchor) != ANCHOR_ID_LEN:
                raise _malformed("anchor id must be 8 bytes")
        get = m.get
        ops, dsts, nbf, exp = get(K_OPS), get(K_DSTS), get(K_NBF), get(K_EXP)
        hops, allowed, required = get(K_HOPS), get(K_ALLOWED), get(K_REQUIRED)
        forbidden, rate = get(K_FORBIDDEN), get(K_RATE)
        grant = make_grant(  # positional, in Grant's field order
            None if ops is None else _str_list(ops, "operations"),
            None if dsts is None else _destinations(dsts),
            None if nbf is None else _uint(nbf, "not_before"),
            None if exp is None else _uint(exp, "expires"),
            None if hops is None else _uint(hops, "max_hops"),
            None if allowed is None else _str_list(allowed, "allowed"),
            None if required is None else _str_list(required, "required"),
            None if forbidden is None else _str_list(forbidden, "forbidden"),
            None if rate is None else _uint(rate, "rate"),
        )
        if cbor2.dumps(m) != body:
            raise _malformed("link body is not in deterministic encoding")
        fields = {
            "body": body,
            "signature": signature,
            "holder": holder,
            "grant": grant,
            "scope": scope,
            "anchor_id": anchor,
        }
        return built(cls, fields)  # every field checked above


@functools.lru_cache(maxsize=_LINK_CACHE_SIZE)
def _decode_link_cached(body: bytes, signature: bytes, root: bool) -> Link:
    return Link._decode(body, signature, root)


def next_digest(prev: bytes, body: bytes, signature: bytes) -> bytes:
    if type(prev) is bytes and type(body) is bytes and type(signature) is bytes:
        return _chain_hash(b"".join((prev, _U16(len(body)), body, signature)))
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

    # d_1 .. d_n and the link ids are pure functions of the (immutable) links,
    # so they are computed once per object and kept in the instance dict
    # (functools.cached_property would do, but takes a lock on every access).
    @property
    def _digests(self) -> tuple[bytes, ...]:
        memo: tuple[bytes, ...] | None = self.__dict__.get("_digest_memo")
        if memo is None:
            out, d = [], _ZERO_DIGEST
            for link in self.links:
                # Each link remembers its digest after the last `d` it was hashed with,
                # so a link shared by many chains (a cached prefix link) hashes once.
                known = link.__dict__.get("_digest_memo")
                if known is not None and known[0] == d:
                    d = known[1]
                else:
                    body, sig = link.body, link.signature
                    nd = (
                        _chain_hash(b"".join((d, _U16(len(body)), body, sig)))
                        if type(d) is bytes and type(body) is bytes and type(sig) is bytes
                        else next_digest(d, body, sig)
                    )
                    link.__dict__["_digest_memo"] = (d, nd)
                    d = nd
                out.append(d)
            memo = self.__dict__["_digest_memo"] = tuple(out)
        return memo

    @property
    def _link_ids(self) -> tuple[bytes, ...]:
        memo: tuple[bytes, ...] | None = self.__dict__.get("_link_id_memo")
        if memo is None:
            memo = self.__dict__["_link_id_memo"] = tuple(d[:LINK_ID_LEN] for d in self._digests)
        return memo

    def digests(self) -> list[bytes]:
        """d_1 .. d_n (see module docstring)."""
        return list(self._digests)

    @property
    def chain_digest(self) -> bytes:
        return self._digests[-1]

    def link_ids(self) -> list[bytes]:
        return list(self._link_ids)

    def encode(self) -> bytes:
        items: list[Any] = [CREDENTIAL_VERSION]
        plain = True
        for link in self.links:
            items += [link.body, link.signature]
            plain = plain and type(link.body) is bytes and type(link.signature) is bytes
        # An array of an int and byte strings has one encoding: canonical or not.
        return cbor2.dumps(items) if plain else _dumps(items)

    @classmethod
    def decode(cls, data: bytes) -> Credential:
        if len(data) > MAX_CREDENTIAL_LEN:
            raise _malformed(f"credential longer than {MAX_CREDENTIAL_LEN} bytes")
        if cls is Credential and type(data) is bytes:
            return _decode_credential_cached(data)
        return cls._decode(data)

    @classmethod
    def _decode(cls, data: bytes) -> Credential:
        items = _split_credential(data) if type(data) is bytes else None
        if items is None or len(items) // 2 > MAX_CHAIN_LINKS:
            return cls._decode_general(data)
        links = []
        for i in range(0, len(items), 2):
            if len(items[i + 1]) != SIGNATURE_LEN:
                raise _malformed("signature must be 64 bytes")
            links.append(_decode_link_cached(items[i], items[i + 1], i == 0))
        return cls(tuple(links))

    @classmethod
    def _decode_general(cls, data: bytes) -> Credential:
        """Any CBOR: refuses with the precise reason, accepts only the deterministic encoding."""
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
        # cls(links).encode() == data, without building it: that encoding is
        # cbor2's of [1, body_1, sig_1, ...], so the decoded array re-encodes to
        # it exactly when its first item is the int 1 (not 1.0, a decimal...).
        if type(items[0]) is not int or cbor2.dumps(items) != data:
            raise _malformed("credential is not in deterministic encoding")
        return cls(tuple(links))


@functools.lru_cache(maxsize=_CREDENTIAL_CACHE_SIZE)
def _decode_credential_cached(data: bytes) -> Credential:
    return Credential._decode(data)


def clear_decode_cache() -> None:
    """Forget memoised decodes (benchmarks measuring cold decoding use this)."""
    _decode_credential_cached.cache_clear()
    _decode_link_cached.cache_clear()


# ---- issuing -----------------------------------------------------------------------
def issue(
    anchor_key: nacl.signing.SigningKey, scope: str, holder: bytes, grant: Grant
) -> Credential:
    """Root link: an anchor grants `grant` to `holder` within `scope`."""
    check_scope(scope)
    root_rights(grant)  # fail early on an incomplete or inconsistent root grant
    body = encode_body(scope, keys.anchor_id(bytes(anchor_key.verify_key)), holder, grant)
    _check_size(body, 0)
    sig = anchor_key.sign(signed_message(_ZERO_DIGEST, body)).signature
    return Credential((Link.decode(body, sig, root=True),))


def _check_size(body: bytes, parent_len: int) -> None:
    """Refuse to sign what no verifier would accept (depth is checked by the caller)."""
    if parent_len + len(body) + SIGNATURE_LEN + 8 > MAX_CREDENTIAL_LEN:
        raise _malformed(f"credential would exceed {MAX_CREDENTIAL_LEN} bytes")


def delegate(
    parent: Credential, holder_key: nacl.signing.SigningKey, new_holder: bytes, grant: Grant
) -> Credential:
    """Append a narrower link.  Refuses (ESCALATION) a grant that widens the parent."""
    if bytes(holder_key.verify_key) != parent.holder:
        raise WarrantError(Reason.BAD_SIGNATURE, "this key does not hold the parent credential")
    if len(parent.links) >= MAX_CHAIN_LINKS:
        raise _malformed(f"chain already has the maximum of {MAX_CHAIN_LINKS} links")
    narrow(effective_rights(parent.links), grant)
    body = encode_body(None, None, new_holder, grant)
    _check_size(body, len(parent.encode()))
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


class _Prefix(NamedTuple):
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
        if len(cred.links) > MAX_CHAIN_LINKS:
            raise _malformed(f"chain deeper than {MAX_CHAIN_LINKS} links")
        anchor = _find_anchor(self.trust, cred.scope, cred.anchor_id)
        digests = cred._digests
        links = cred.links
        cache = self._cache

        start, rights = 0, None
        for i in range(len(digests) - 1, -1, -1):
            hit = cache.get(digests[i])
            if hit is not None and hit.anchor_public == anchor.public:
                cache.move_to_end(digests[i])
                start, rights = i + 1, hit.rights
                self.cache_hits += 1
                break
        else:
            self.cache_misses += 1

        signer = anchor.public if start == 0 else links[start - 1].holder
        prev = _ZERO_DIGEST if start == 0 else digests[start - 1]
        for i in range(start, len(links)):
            link = links[i]
            signed = b"".join((link.signature, SIG_CONTEXT_LINK, prev, link.body))
            if len(link.signature) != SIGNATURE_LEN or not _sig_ok(signer, signed):
                raise WarrantError(Reason.BAD_SIGNATURE, f"link {i + 1} signature does not verify")
            rights = root_rights(link.grant) if rights is None else narrow(rights, link.grant)
            cache[digests[i]] = _Prefix(anchor.public, rights)
            cache.move_to_end(digests[i])  # newest last: the LRU order
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
            signer, prev = link.holder, digests[i]
        assert rights is not None

        link_ids = cred._link_ids
        chain = built(  # VerifiedChain(...) without the frozen __init__'s per-field setattr
            VerifiedChain,
            {
                "credential": cred,
                "anchor": anchor,
                "rights": rights,
                "chain_digest": digests[-1],
                "link_ids": link_ids,
            },
        )
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


# Anchor ids are a hash of the anchor key; TrustStore.find recomputes them on
# every call.  _find_anchor applies find's rule (first anchor of the scope whose
# id matches) with the ids memoised, and defers to find for every miss, so the
# answer and every refusal (WRONG_SCOPE, UNKNOWN_ANCHOR) are find's own.
_ANCHOR_IDS: dict[bytes, bytes] = {}


def _anchor_id(public: bytes) -> bytes:
    aid = _ANCHOR_IDS.get(public)
    if aid is None:
        aid = keys.anchor_id(public)
        if len(_ANCHOR_IDS) >= 4096:
            _ANCHOR_IDS.clear()
        _ANCHOR_IDS[public] = aid
    return aid


def _find_anchor(trust: TrustStore, scope: str, anchor_id: bytes) -> Anchor:
    anchors = trust.anchors.get(scope) if type(trust.anchors) is dict else None
    for anchor in anchors or ():
        if type(anchor.public) is not bytes:
            break
        if _anchor_id(anchor.public) == anchor_id:
            return anchor
    return trust.find(scope, anchor_id)


def effective_rights(links: Sequence[Link]) -> Rights:
    """Rights of a chain without checking signatures (for display and delegation)."""
    rights = root_rights(links[0].grant)
    for link in links[1:]:
        rights = narrow(rights, link.grant)
    return rights
