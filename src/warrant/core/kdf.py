"""Key derivation: session ids, transcript hashes, session keys and hop keys.

All derivations are BLAKE2b (libsodium) with a distinct 16-byte
personalisation per purpose, so no two derivations can collide by
construction.  The Diffie-Hellman inputs are X25519 (libsodium
crypto_scalarmult); an all-zero shared secret (a low-order peer point) is
refused as MALFORMED.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.hashlib

from .constants import (
    PERSON_AEAD_KEY,
    PERSON_HOP_KEY,
    PERSON_MAC_KEY,
    PERSON_SESSION_ID,
    PERSON_TRANSCRIPT,
    SESSION_ID_LEN,
    Reason,
)
from .errors import WarrantError


def blake2b(data: bytes, size: int, person: bytes, key: bytes = b"") -> bytes:
    return nacl.hashlib.blake2b(data, digest_size=size, key=key, person=person).digest()


def x25519(secret: bytes, public: bytes) -> bytes:
    try:
        return nacl.bindings.crypto_scalarmult(secret, public)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError, TypeError):
        raise WarrantError(Reason.MALFORMED, "X25519 with a low-order or invalid point") from None


def session_id(eph_public: bytes, receiver_id: bytes, credential: bytes) -> bytes:
    """8 bytes naming a session, bound to the ephemeral key, receiver and whole credential.

    The credential encoding is unique (deterministic CBOR), so hashing its bytes
    binds the chain without decoding it: the check runs before any parsing work.
    """
    return blake2b(eph_public + receiver_id + credential, SESSION_ID_LEN, PERSON_SESSION_ID)


def transcript(signed_region: bytes, holder_sig: bytes) -> bytes:
    """th: hash of everything the holder signed plus the signature."""
    return blake2b(signed_region + holder_sig, 32, PERSON_TRANSCRIPT)


@dataclass(frozen=True)
class SessionKeys:
    mac: bytes  # 16 bytes, SipHash key for the per-packet header MAC
    aead: bytes  # 32 bytes, ChaCha20-Poly1305 key for payloads


def session_keys(shared: bytes, th: bytes) -> SessionKeys:
    return SessionKeys(
        mac=blake2b(th, 16, PERSON_MAC_KEY, key=shared),
        aead=blake2b(th, 32, PERSON_AEAD_KEY, key=shared),
    )


def hop_key(relay_receiver_shared: bytes, sid: bytes) -> bytes:
    """16-byte SipHash key a relay and the receiver both derive, without a round trip."""
    return blake2b(sid, 16, PERSON_HOP_KEY, key=relay_receiver_shared)
