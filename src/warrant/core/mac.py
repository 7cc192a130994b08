"""Per-packet MACs (SipHash-2-4, libsodium) and payload sealing (ChaCha20-Poly1305-IETF).

The header MAC is what the kernel checks on every DATA packet: SipHash-2-4
with a 128-bit tag over the 20-byte header prefix.  Hop records carry a
64-bit SipHash-2-4 tag chained over the previous tag.  Payloads are sealed
end to end with the session's AEAD key; the nonce is the sequence number,
so a payload cannot be moved to another packet.
"""

from __future__ import annotations

import hmac
import struct

import nacl.bindings
import nacl.exceptions

from .constants import HOP_MAC_LEN, Reason
from .errors import WarrantError

_NONCE = struct.Struct(">4xQ")


def header_mac(key: bytes, mac_input: bytes) -> bytes:
    return nacl.bindings.crypto_shorthash_siphashx24(mac_input, key)


def hop_mac(key: bytes, prev_tag: bytes, relay_tag: bytes, index: int) -> bytes:
    """Tag of hop `index`: chained over the previous tag (the origin MAC's first 8 bytes)."""
    return nacl.bindings.crypto_shorthash_siphash24(
        prev_tag[:HOP_MAC_LEN] + relay_tag + bytes([index]), key
    )


def equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def seal(key: bytes, seq: int, plaintext: bytes) -> bytes:
    return nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
        plaintext, None, _NONCE.pack(seq), key
    )


def open_sealed(key: bytes, seq: int, ciphertext: bytes) -> bytes:
    try:
        return nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
            ciphertext, None, _NONCE.pack(seq), key
        )
    except nacl.exceptions.CryptoError:
        raise WarrantError(Reason.BAD_PAYLOAD_AUTH, "payload does not authenticate") from None
