"""WireGuard-style cookies: under load, prove you own your source address first.

The receiver's cookie for an address is BLAKE2b-128 keyed by a secret that
rotates every COOKIE_SECRET_LIFETIME seconds, over the source IP and port.
It travels back sealed (XChaCha20-Poly1305) under a key only the initiator
of that INIT can derive (its ephemeral key and the receiver's public key),
bound to the INIT's session id.  The initiator then resends the INIT with a
cookie MAC: BLAKE2b-128 keyed by the cookie over the INIT's cookie region.
Checking that costs one BLAKE2b, far less than an Ed25519 verification, and a
spoofed source never sees its cookie.  Secrets are drawn from an injected
random source so the core stays deterministic under test.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import nacl.bindings
import nacl.exceptions

from .constants import (
    COOKIE_LEN,
    COOKIE_NONCE_LEN,
    COOKIE_SECRET_LIFETIME,
    PERSON_COOKIE,
    PERSON_COOKIE_KEY,
    Reason,
)
from .errors import WarrantError
from .kdf import blake2b
from .mac import equal
from .wire import CookiePacket


def address_bytes(addr: tuple[str, int]) -> bytes:
    return addr[0].encode() + struct.pack(">H", addr[1])


def sealing_key(receiver_public: bytes, eph_public: bytes) -> bytes:
    return blake2b(receiver_public + eph_public, 32, PERSON_COOKIE_KEY)


def cookie_mac(cookie: bytes, region: bytes) -> bytes:
    return blake2b(region, COOKIE_LEN, PERSON_COOKIE, key=cookie)


class CookieJar:
    """Receiver side: makes and checks cookies; the secret rotates with time."""

    def __init__(self, receiver_public: bytes, random: Callable[[int], bytes]) -> None:
        self.receiver_public = receiver_public
        self.random = random
        self._secret = random(32)
        self._previous = self._secret
        self._epoch: int | None = None

    def _rotate(self, now: float) -> None:
        epoch = int(now // COOKIE_SECRET_LIFETIME)
        if self._epoch is None:
            self._epoch = epoch
        elif epoch != self._epoch:
            self._previous = self._secret if epoch == self._epoch + 1 else self.random(32)
            self._secret = self.random(32)
            self._epoch = epoch

    def cookie(self, addr: tuple[str, int], now: float, previous: bool = False) -> bytes:
        self._rotate(now)
        secret = self._previous if previous else self._secret
        return blake2b(address_bytes(addr), COOKIE_LEN, PERSON_COOKIE, key=secret)

    def reply(
        self, addr: tuple[str, int], session_id: bytes, eph_public: bytes, now: float
    ) -> CookiePacket:
        nonce = self.random(COOKIE_NONCE_LEN)
        sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            self.cookie(addr, now), session_id, nonce, sealing_key(self.receiver_public, eph_public)
        )
        return CookiePacket(session_id, nonce, sealed)

    def check(self, addr: tuple[str, int], region: bytes, mac: bytes | None, now: float) -> Reason:
        """OK when `mac` is a valid cookie MAC for this address (current or previous secret)."""
        if mac is None:
            return Reason.COOKIE_REQUIRED
        for previous in (False, True):
            if equal(cookie_mac(self.cookie(addr, now, previous), region), mac):
                return Reason.OK
        return Reason.BAD_COOKIE


def open_cookie(packet: CookiePacket, receiver_public: bytes, eph_public: bytes) -> bytes:
    """Sender side: recover the cookie from a COOKIE reply to our INIT."""
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            packet.sealed_cookie,
            packet.session_id,
            packet.nonce,
            sealing_key(receiver_public, eph_public),
        )
    except nacl.exceptions.CryptoError:
        raise WarrantError(Reason.BAD_COOKIE, "cookie reply does not authenticate") from None
