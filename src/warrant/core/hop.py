"""Hop history: relays append provable records; receivers check continuity.

Once per session, each relay appends to the INIT a signed *hop statement*:
its key, the key id of the next hop it forwards to, and its domain, signed
over the session transcript, its index and the previous statement's
signature.  The INIT's own `next_hop` field (signed by the holder) names the
first hop.  So every record names its successor and signs over its
predecessor: removing, reordering, inserting or splicing a statement breaks
the chain, and cutting off the tail leaves a record whose successor is not
the receiver.

On DATA packets each relay appends a 12-byte record: its 4-byte key id and
an 8-byte SipHash-2-4 tag chained over the previous tag (the origin MAC for
the first hop), keyed by a per-session hop key both relay and receiver
derive from static-static X25519 and the session id.  The receiver pins the
path the INIT proved and checks every DATA packet against it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from . import keys
from .anchors import TrustStore
from .constants import (
    AEAD_TAG_LEN,
    HOP_MAC_LEN,
    HOP_RECORD_LEN,
    KNOWN_DATA_FLAGS,
    MAX_HOPS,
    OFF_HOP_COUNT,
    OFF_HOPS,
    OFF_MAC,
    OFF_SESSION_ID,
    SESSION_ID_LEN,
    SIG_CONTEXT_HOP,
    Kind,
    Reason,
)
from .errors import WarrantError
from .kdf import hop_key, transcript, x25519
from .mac import equal, hop_mac
from .rights import Rights
from .wire import HopRecord, HopStatement, InitPacket, peek_kind


@dataclass(frozen=True)
class PathHop:
    """One relay on a session's proven path, as the receiver pins it."""

    domain: str
    relay_public: bytes
    tag: bytes
    key: bytes  # per-session hop key


def statement_message(th: bytes, index: int, prev_sig: bytes, signed_part: bytes) -> bytes:
    return SIG_CONTEXT_HOP + th + bytes([index]) + prev_sig + signed_part


def verify_statements(
    init: InitPacket,
    th: bytes,
    receiver_id: bytes,
    receiver_x_secret: bytes,
    trust: TrustStore,
) -> list[PathHop]:
    """Check the INIT's hop statements; return the pinned path or raise."""
    expected, prev_sig, path = init.next_hop, b"", []
    for i, st in enumerate(init.statements):
        if keys.key_id(st.relay_public) != expected:
            raise WarrantError(
                Reason.HOP_CHAIN_BROKEN, f"hop {i} is not the hop its predecessor named"
            )
        msg = statement_message(
            th, i, prev_sig, st.signed_part(st.relay_public, st.next_hop, st.domain)
        )
        try:
            nacl.signing.VerifyKey(st.relay_public).verify(msg, st.signature)
        except (nacl.exceptions.BadSignatureError, ValueError):
            raise WarrantError(
                Reason.HOP_CHAIN_BROKEN, f"hop {i} statement does not verify"
            ) from None
        if st.relay_public not in trust.relays.get(st.domain, ()):
            raise WarrantError(
                Reason.UNTRUSTED_RELAY, f"relay {i} not trusted for domain {st.domain!r}"
            )
        shared = x25519(receiver_x_secret, keys.x25519_public(st.relay_public))
        path.append(PathHop(st.domain, st.relay_public, expected, hop_key(shared, init.session_id)))
        expected, prev_sig = st.next_hop, st.signature
    if expected != receiver_id:
        raise WarrantError(Reason.HOP_CHAIN_BROKEN, "last hop does not lead to this receiver")
    return path


def check_path(
    domains: Sequence[str],
    rights: Rights,
    max_hops: int | None = None,
    via: Sequence[str] = (),
    not_via: Sequence[str] = (),
) -> None:
    """Path constraints from the credential and, optionally, the receiver's policy."""
    limit = rights.max_hops if max_hops is None else min(rights.max_hops, max_hops)
    if len(domains) > limit:
        raise WarrantError(Reason.TOO_MANY_HOPS, f"{len(domains)} hops, at most {limit} allowed")
    crossed = set(domains)
    for d in domains:
        if d in rights.forbidden_domains or d in not_via:
            raise WarrantError(Reason.FORBIDDEN_DOMAIN, f"crossed forbidden domain {d!r}")
        if rights.allowed_domains is not None and d not in rights.allowed_domains:
            raise WarrantError(Reason.DOMAIN_NOT_ALLOWED, f"domain {d!r} is not allowed")
    for d in (*rights.required_domains, *via):
        if d not in crossed:
            raise WarrantError(Reason.REQUIRED_DOMAIN_MISSING, f"did not cross {d!r}")


def verify_data_hops(
    hops: Sequence[HopRecord], origin_mac: bytes, path: Sequence[PathHop]
) -> Reason:
    if len(hops) != len(path):
        return Reason.HOP_CHAIN_BROKEN
    prev = origin_mac
    for i, (rec, hop) in enumerate(zip(hops, path, strict=True)):
        if rec.relay_tag != hop.tag or not equal(hop_mac(hop.key, prev, rec.relay_tag, i), rec.mac):
            return Reason.HOP_CHAIN_BROKEN
        prev = rec.mac
    return Reason.OK


class Relay:
    """Sans-I/O relay: takes a packet, returns it with this relay's hop appended."""

    def __init__(
        self,
        key: nacl.signing.SigningKey,
        domain: str,
        next_hop_public: bytes,
        receiver_public: bytes,
        cache_size: int = 65536,
    ) -> None:
        self.key = key
        self.public = bytes(key.verify_key)
        self.tag = keys.key_id(self.public)
        self.domain = domain
        self.next_hop = keys.key_id(next_hop_public)
        self.receiver_id = keys.key_id(receiver_public)
        self._shared = x25519(keys.x25519_secret(key), keys.x25519_public(receiver_public))
        self._hop_keys: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_size = cache_size

    def forward(self, packet: bytes) -> bytes:
        kind = peek_kind(packet)
        if kind == Kind.INIT:
            return self._forward_init(packet)
        if kind == Kind.DATA:
            return self._forward_data(packet)
        return packet  # REJECT and COOKIE travel back unchanged

    def _forward_init(self, packet: bytes) -> bytes:
        init = InitPacket.decode(packet)
        if init.receiver_id != self.receiver_id:
            raise WarrantError(
                Reason.WRONG_RECEIVER, "INIT is for a receiver this relay does not serve"
            )
        if len(init.statements) >= MAX_HOPS:
            raise WarrantError(Reason.TOO_MANY_HOPS, "hop limit of the wire format reached")
        expected = init.statements[-1].next_hop if init.statements else init.next_hop
        if expected != self.tag:
            raise WarrantError(Reason.HOP_CHAIN_BROKEN, "INIT was not addressed to this relay")
        th = transcript(init.signed_region(), init.holder_sig)
        prev_sig = init.statements[-1].signature if init.statements else b""
        part = HopStatement.signed_part(self.public, self.next_hop, self.domain)
        sig = self.key.sign(statement_message(th, len(init.statements), prev_sig, part)).signature
        st = HopStatement(self.public, self.next_hop, self.domain, sig)
        out = bytearray(packet + st.encode())
        out[2] = len(init.statements) + 1
        return bytes(out)

    def _forward_data(self, packet: bytes) -> bytes:
        # The same checks as DataPacket.decode, without building objects or copying the
        # payload: this is the relay's per-packet path.
        n, flags = packet[OFF_HOP_COUNT], packet[3]
        if n > MAX_HOPS:
            raise WarrantError(Reason.MALFORMED, f"hop count {n} above the wire maximum {MAX_HOPS}")
        if flags & ~KNOWN_DATA_FLAGS:
            raise WarrantError(Reason.MALFORMED, f"unknown DATA flags {flags:#04x}")
        cut = OFF_HOPS + HOP_RECORD_LEN * n
        if len(packet) < cut + AEAD_TAG_LEN:
            raise WarrantError(
                Reason.TRUNCATED, f"DATA with {n} hops needs {cut + AEAD_TAG_LEN} bytes"
            )
        if n >= MAX_HOPS:
            raise WarrantError(Reason.TOO_MANY_HOPS, "hop limit of the wire format reached")
        sid = packet[OFF_SESSION_ID : OFF_SESSION_ID + SESSION_ID_LEN]
        key = self._hop_keys.get(sid)
        if key is None:
            key = hop_key(self._shared, sid)
            self._hop_keys[sid] = key
            if len(self._hop_keys) > self._cache_size:
                self._hop_keys.popitem(last=False)
        prev = packet[cut - HOP_MAC_LEN : cut] if n else packet[OFF_MAC : OFF_MAC + HOP_MAC_LEN]
        record = self.tag + hop_mac(key, prev, self.tag, n)
        return b"".join((packet[:2], bytes((n + 1,)), packet[3:cut], record, packet[cut:]))
