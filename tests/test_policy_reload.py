"""A policy reload changes who may open sessions next, never drops admitted sessions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from warrant.core import credential, keys
from warrant.core.admission import PolicyError
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import Reason, Verdict
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.integration.crd_policy import PolicyWatcher, load_any

NOW = 1_800_000_000.0
ANCHOR, HOLDER, RECV = (keys.from_seed(bytes([i]) * 32) for i in (11, 12, 13))
SRC = ("10.0.0.9", 4000)


def _policy_text(ops: str) -> str:
    trust = TrustStore()
    trust.add(Anchor("acme.prod", bytes(ANCHOR.verify_key)))
    return f"anchors: {json.dumps(trust.to_mapping())}\nrules:\n  - name: r\n    operations: [{ops!r}]\n"


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def _sender() -> Sender:
    grant = Grant(operations=("orders.*",), destinations=(Destination("orders", 8443, 8443),),
                  expires=int(NOW) + 3600)  # fmt: skip
    cred = credential.issue(ANCHOR, "acme.prod", bytes(HOLDER.verify_key), grant).encode()
    return Sender(HOLDER, cred, bytes(RECV.verify_key), Claim("orders.write", "orders", 8443))


def test_reload_keeps_sessions_and_applies_to_new_openings(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.write"), 0)
    watcher = PolicyWatcher(path)
    rx = Receiver(RECV, load_any(path), started_at=NOW - 10)
    alive = _sender()
    assert rx.handle(alive.open(b"first", NOW), SRC, 8443, NOW).verdict == Verdict.ADMIT
    assert watcher.poll() is None  # unchanged file: nothing to do

    _write(path, _policy_text("billing.read"), 1)  # orders.write no longer admitted
    new = watcher.poll()
    assert new is not None
    rx.set_policy(new, NOW + 1)
    assert rx.handle(alive.seal(b"still here"), SRC, 8443, NOW + 1).verdict == Verdict.ADMIT
    fresh = _sender()
    out = rx.handle(fresh.open(b"new session", NOW + 1), SRC, 8443, NOW + 1)
    assert (out.verdict, out.reason) == (Verdict.DROP, Reason.POLICY_DENIED)


def test_invalid_reload_is_reported_once_and_the_old_policy_stays(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.write"), 0)
    watcher = PolicyWatcher(path)
    _write(path, "anchors: {}\nrules: [{bogus: 1}]\n", 1)
    with pytest.raises(PolicyError):
        watcher.poll()
    assert watcher.poll() is None  # reported once per change, not on every poll
