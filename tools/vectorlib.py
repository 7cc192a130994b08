"""What the vector generators (tools/vectors_*.py) share.

* `Material`: a generator's deterministic keys and random streams, all named
  under the generator's prefix (e.g. "warrant/vectors/hops/v1/"): the Ed25519
  key `label` has the seed SHA-256(prefix + label); draw i of n bytes from the
  stream `name` is SHAKE-256(prefix + name + '/' + str(i))[:n].
* `b2b` and `key_id`: BLAKE2b with hashlib, written from SPEC.md 5, not through
  `warrant.core.kdf`.
* `render` and `write_or_check`: the JSON text of a document and the command
  line of every generator (write the file, or `--check` that it is current).

A generator imports this module from its own folder (`python3 tools/vectors_x.py`
puts tools/ on sys.path; tests that load a generator by path add it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.signing

from warrant.core import keys

ROOT = Path(__file__).resolve().parent.parent


class Stream:
    """The SHAKE-256 random stream `name` under `prefix`; remembers what it handed out."""

    def __init__(self, prefix: str, name: str) -> None:
        self.prefix, self.name = prefix, name
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(f"{self.prefix}{self.name}/{len(self.draws)}".encode()).digest(n)
        self.draws.append(out)
        return out


class Material:
    """The Ed25519 keys `labels` and the random streams of one generator."""

    def __init__(self, prefix: str, labels: Sequence[str]) -> None:
        self.prefix = prefix
        self.labels = tuple(labels)
        self.keys: dict[str, nacl.signing.SigningKey] = {
            label: keys.from_seed(self.seed(label)) for label in self.labels
        }

    def seed(self, label: str) -> bytes:
        return hashlib.sha256((self.prefix + label).encode()).digest()

    def pub(self, label: str) -> bytes:
        return bytes(self.keys[label].verify_key)

    def x_public(self, label: str) -> bytes:
        return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(self.pub(label))

    def x_secret(self, label: str) -> bytes:
        return nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(
            bytes(self.keys[label]) + self.pub(label)
        )

    def stream(self, name: str) -> Stream:
        return Stream(self.prefix, name)

    def keys_json(self) -> list[dict[str, str]]:
        """The `keys` list of a vector file: label, seed and public key of each key."""
        return [
            {
                "label": label,
                "seed_hex": self.seed(label).hex(),
                "public_hex": self.pub(label).hex(),
            }
            for label in self.labels
        ]


def b2b(data: bytes, size: int, person: bytes, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, digest_size=size, key=key, person=person).digest()


def key_id(public: bytes) -> bytes:
    return b2b(public, 4, b"warrant1-kid")


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def write_or_check(
    argv: Sequence[str],
    output: Path,
    text: str,
    generator: str,
    summary: Callable[[dict[str, Any]], str] | None = None,
) -> int:
    """With `--check` in argv: 1 (and a message) if `output` is not `text`, else 0.
    Otherwise write `text` to `output` and say so, with `summary(document)` if given.
    `generator` is the generator's file (its `__file__`), named in the messages."""
    script = Path(generator).resolve().relative_to(ROOT)
    if "--check" in argv:
        if not output.exists() or output.read_text() != text:
            print(f"{output.relative_to(ROOT)} is stale: run python3 {script}")
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    extra = f" ({summary(json.loads(text))})" if summary is not None else ""
    print(f"wrote {output.relative_to(ROOT)}{extra}")
    return 0
