"""Signed revocation lists: offline objects that revoke link ids and keys.

A list is the CBOR array [body, signature].  The body is the deterministic CBOR
array [1, scope, anchor_id, serial, [link ids], [keys]]; the signature is the
anchor's Ed25519 signature over SIG_CONTEXT_REVOCATION || body.  A list
replaces an earlier one from the same anchor only when its serial is higher,
so replaying an old list cannot un-revoke anything.  Revoking a link id
revokes every chain that contains that link (and so every delegation made
from it); revoking a key revokes every chain in which it signs or holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cbor2
import nacl.exceptions
import nacl.signing

from . import keys
from .anchors import TrustStore, check_scope
from .constants import ANCHOR_ID_LEN, LINK_ID_LEN, PUBKEY_LEN, SIG_CONTEXT_REVOCATION, Reason
from .errors import WarrantError

REVOCATION_VERSION = 1


@dataclass(frozen=True)
class RevocationList:
    scope: str
    anchor_id: bytes
    serial: int
    link_ids: frozenset[bytes]
    keys: frozenset[bytes]
    body: bytes = b""
    signature: bytes = b""

    def encode(self) -> bytes:
        return cbor2.dumps([self.body, self.signature], canonical=True)

    @staticmethod
    def body_bytes(
        scope: str,
        anchor_id: bytes,
        serial: int,
        link_ids: Iterable[bytes],
        revoked: Iterable[bytes],
    ) -> bytes:
        return cbor2.dumps(
            [
                REVOCATION_VERSION,
                scope,
                anchor_id,
                serial,
                sorted(set(link_ids)),
                sorted(set(revoked)),
            ],
            canonical=True,
        )

    @classmethod
    def sign(
        cls,
        anchor_key: nacl.signing.SigningKey,
        scope: str,
        serial: int,
        link_ids: Iterable[bytes] = (),
        revoked_keys: Iterable[bytes] = (),
    ) -> RevocationList:
        check_scope(scope)
        ids, ks = frozenset(link_ids), frozenset(revoked_keys)
        aid = keys.anchor_id(bytes(anchor_key.verify_key))
        body = cls.body_bytes(scope, aid, serial, ids, ks)
        sig = anchor_key.sign(SIG_CONTEXT_REVOCATION + body).signature
        return cls(scope, aid, serial, ids, ks, body, sig)

    @classmethod
    def decode(cls, data: bytes) -> RevocationList:
        def bad(detail: str) -> WarrantError:
            return WarrantError(Reason.MALFORMED, f"revocation list: {detail}")

        try:
            outer = cbor2.loads(data)
            if not (isinstance(outer, list) and len(outer) == 2):
                raise bad("expected [body, signature]")
            body, sig = outer
            if not isinstance(body, bytes) or not isinstance(sig, bytes):
                raise bad("body and signature must be byte strings")
            inner: Any = cbor2.loads(body)
        except WarrantError:
            raise
        except Exception:
            raise bad("not CBOR") from None
        if not (isinstance(inner, list) and len(inner) == 6 and inner[0] == REVOCATION_VERSION):
            raise bad("unknown layout or version")
        _, scope, aid, serial, ids, ks = inner
        if not (
            isinstance(scope, str)
            and isinstance(aid, bytes)
            and len(aid) == ANCHOR_ID_LEN
            and type(serial) is int
            and serial >= 0
            and isinstance(ids, list)
            and all(isinstance(i, bytes) and len(i) == LINK_ID_LEN for i in ids)
            and isinstance(ks, list)
            and all(isinstance(k, bytes) and len(k) == PUBKEY_LEN for k in ks)
        ):
            raise bad("field types")
        try:
            check_scope(scope)
        except WarrantError:
            raise bad(f"bad scope name {scope!r}") from None
        if cls.body_bytes(scope, aid, serial, ids, ks) != body:
            raise bad("not in deterministic encoding")
        return cls(scope, aid, serial, frozenset(ids), frozenset(ks), body, sig)


@dataclass
class RevocationStore:
    """The newest verified list per (scope, anchor), merged for lookups."""

    lists: dict[tuple[str, bytes], RevocationList] = field(default_factory=dict)
    _ids: dict[str, set[bytes]] = field(default_factory=dict)
    _keys: dict[str, set[bytes]] = field(default_factory=dict)

    def load(self, rl: RevocationList | bytes, trust: TrustStore) -> bool:
        """Verify and install a list; False when an equal or newer one is already loaded."""
        if isinstance(rl, bytes):
            rl = RevocationList.decode(rl)
        anchor = trust.find(rl.scope, rl.anchor_id)
        try:
            nacl.signing.VerifyKey(anchor.public).verify(
                SIG_CONTEXT_REVOCATION + rl.body, rl.signature
            )
        except (nacl.exceptions.BadSignatureError, ValueError):
            raise WarrantError(Reason.BAD_SIGNATURE, "revocation list signature") from None
        slot = (rl.scope, rl.anchor_id)
        current = self.lists.get(slot)
        if current is not None and current.serial >= rl.serial:
            return False
        self.lists[slot] = rl
        self._rebuild(rl.scope)
        return True

    def _rebuild(self, scope: str) -> None:
        ids: set[bytes] = set()
        ks: set[bytes] = set()
        for (s, _), rl in self.lists.items():
            if s == scope:
                ids |= rl.link_ids
                ks |= rl.keys
        self._ids[scope], self._keys[scope] = ids, ks

    def check(self, scope: str, link_ids: Iterable[bytes], chain_keys: Iterable[bytes]) -> None:
        ids, ks = self._ids.get(scope), self._keys.get(scope)
        if ids and any(i in ids for i in link_ids):
            raise WarrantError(Reason.REVOKED, "a link of this chain is revoked")
        if ks and any(k in ks for k in chain_keys):
            raise WarrantError(Reason.REVOKED, "a key of this chain is revoked")
