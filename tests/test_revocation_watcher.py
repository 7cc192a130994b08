"""`--revocations DIR`: the watched directory of signed revocation lists.

The set only grows; anything that is not a newer list signed by a trusted anchor of its
scope is refused with its reason and changes nothing (no root needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warrant.core import credential, keys
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import Reason
from warrant.core.errors import WarrantError
from warrant.core.revocation import RevocationList
from warrant.core.rights import Destination, Grant
from warrant.integration.revocations import RevocationWatcher

NOW = 1_800_000_000
SCOPE = "acme.prod"
ANCHOR, OTHER, HOLDER = (keys.from_seed(bytes([i]) * 32) for i in (21, 22, 23))


def _trust() -> TrustStore:
    trust = TrustStore()
    trust.add(Anchor(SCOPE, bytes(ANCHOR.verify_key)))
    return trust


def _link() -> bytes:
    grant = Grant(operations=("x.*",), destinations=(Destination("svc", 1, 1),), expires=NOW + 60)
    cred = credential.issue(ANCHOR, SCOPE, bytes(HOLDER.verify_key), grant)
    return cred.link_ids()[-1]


def _write(directory: Path, name: str, data: bytes, bump: int) -> None:
    path = directory / name
    path.write_bytes(data)
    st = path.stat()  # a distinct mtime per write, whatever the filesystem's resolution
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def _revoked(store: object, link: bytes) -> bool:
    try:
        store.check(SCOPE, [link], [])  # type: ignore[attr-defined]
    except WarrantError as exc:
        return exc.reason == Reason.REVOKED
    return False


def test_lists_load_grow_and_refusals_keep_the_previous_set(tmp_path: Path) -> None:
    link = _link()
    w = RevocationWatcher(tmp_path, _trust)
    assert w.poll() == (None, [])  # empty directory: nothing new
    _write(tmp_path, "a.rl", RevocationList.sign(ANCHOR, SCOPE, 2, link_ids=[link]).encode(), 1)
    store, errors = w.poll()
    assert store is not None and errors == [] and _revoked(store, link)
    assert w.poll() == (None, [])  # unchanged directory

    # a rollback, a list by a key that is no anchor, and garbage: each refused, set kept
    _write(tmp_path, "a.rl", RevocationList.sign(ANCHOR, SCOPE, 1).encode(), 2)
    _write(tmp_path, "forged.rl", RevocationList.sign(OTHER, SCOPE, 9).encode(), 2)
    _write(tmp_path, "junk.rl", b"\x00\x01", 2)
    store, errors = w.poll()
    assert store is None and _revoked(w.store, link)
    assert len(errors) == 3, errors
    assert any("a.rl: serial 1 is not above the loaded 2 (rollback refused)" in e for e in errors)
    assert any(e.startswith("forged.rl: UNKNOWN_ANCHOR") for e in errors)
    assert any(e.startswith("junk.rl: MALFORMED") for e in errors)

    # removing every file un-revokes nothing
    for f in tmp_path.iterdir():
        f.unlink()
    assert w.poll() == (None, []) and _revoked(w.store, link)

    # a newer list replaces the older one of its anchor (here: revoking nothing more)
    _write(tmp_path, "b.rl", RevocationList.sign(ANCHOR, SCOPE, 3).encode(), 3)
    store, errors = w.poll()
    assert store is not None and errors == [] and not _revoked(store, link)


def test_bad_signature_is_refused(tmp_path: Path) -> None:
    rl = RevocationList.sign(ANCHOR, SCOPE, 1, link_ids=[_link()])
    forged = RevocationList(rl.scope, rl.anchor_id, rl.serial, rl.link_ids, rl.keys, rl.body,
                            bytes(64)).encode()  # fmt: skip
    _write(tmp_path, "x.rl", forged, 1)
    store, errors = RevocationWatcher(tmp_path, _trust).poll()
    assert store is None and errors == ["x.rl: BAD_SIGNATURE: revocation list signature"]


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        RevocationWatcher(tmp_path / "missing", _trust)
