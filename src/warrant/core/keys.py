"""Ed25519 identities, their X25519 form, key ids and the text format of key files.

One Ed25519 key pair per principal serves both roles: it signs (credentials,
holder proofs, hop statements) and, converted to X25519 with libsodium's
birational map, it is the static Diffie-Hellman key that senders and relays
derive session and hop keys against.  This is the conversion libsodium
documents for exactly this use; it spares operators a second key file.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.hashlib
import nacl.signing

from .constants import ANCHOR_ID_LEN, KEY_ID_LEN, PERSON_KEY_ID, PUBKEY_LEN

PUBLIC_PREFIX = "warrant-pub:"
SECRET_PREFIX = "warrant-sec:"


class KeyFormatError(ValueError):
    """A key file or key string is not a Warrant key."""


def key_digest(public: bytes, size: int) -> bytes:
    return nacl.hashlib.blake2b(public, digest_size=size, person=PERSON_KEY_ID).digest()


def key_id(public: bytes) -> bytes:
    """4-byte id that names a receiver or relay key on the wire."""
    return key_digest(public, KEY_ID_LEN)


def anchor_id(public: bytes) -> bytes:
    """8-byte id that names a trust anchor in a credential's root link."""
    return key_digest(public, ANCHOR_ID_LEN)


def x25519_public(ed_public: bytes) -> bytes:
    return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed_public)


def x25519_secret(signing_key: nacl.signing.SigningKey) -> bytes:
    return nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(
        bytes(signing_key) + bytes(signing_key.verify_key)
    )


def generate() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def from_seed(seed: bytes) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(seed)


def encode_public(public: bytes) -> str:
    return PUBLIC_PREFIX + base64.b64encode(public).decode()


def encode_secret(key: nacl.signing.SigningKey) -> str:
    return SECRET_PREFIX + base64.b64encode(bytes(key)).decode()


def _decode(text: str, prefix: str, what: str) -> bytes:
    text = text.strip()
    if not text.startswith(prefix):
        raise KeyFormatError(f"not a Warrant {what} key (expected it to start with {prefix!r})")
    try:
        raw = base64.b64decode(text[len(prefix) :], validate=True)
    except binascii.Error as exc:
        raise KeyFormatError(f"{what} key is not valid base64") from exc
    if len(raw) != PUBKEY_LEN:
        raise KeyFormatError(f"{what} key must be {PUBKEY_LEN} bytes, got {len(raw)}")
    return raw


def decode_public(text: str) -> bytes:
    raw = _decode(text, PUBLIC_PREFIX, "public")
    try:
        nacl.signing.VerifyKey(raw)
        x25519_public(raw)
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise KeyFormatError("public key is not a valid Ed25519 point") from exc
    return raw


def decode_secret(text: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(_decode(text, SECRET_PREFIX, "secret"))


MAX_FILE_LEN = 1 << 20  # key, anchor and policy files are small; refuse anything huge


def read_text(path: Path, what: str) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_LEN + 1)
        if len(data) > MAX_FILE_LEN:
            raise KeyFormatError(f"{what} file {path} is larger than {MAX_FILE_LEN} bytes")
        return data.decode()
    except FileNotFoundError:
        raise KeyFormatError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFormatError(f"cannot read {what} file {path}: {exc}") from None


def load_secret(path: Path) -> nacl.signing.SigningKey:
    return decode_secret(read_text(path, "secret key"))


def load_public(path: Path) -> bytes:
    """Read a public key file; a secret key file is accepted and its public half used."""
    text = read_text(path, "public key").strip()
    if text.startswith(SECRET_PREFIX):
        return bytes(decode_secret(text).verify_key)
    return decode_public(text)
