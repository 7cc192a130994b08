"""A policy reload judges new openings and every live session under the new policy.

A live session the new policy refuses (its operation no longer allowed, a deny rule
that now selects it, its anchor removed) ends at the reload, through the one
SessionStore: with the memory backend its next DATA is UNKNOWN_SESSION at the
receiver, with the kernel backend its map entry is gone and the kernel drops its next
DATA.  Sessions the new policy still admits keep flowing.
"""

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


def _policy_text(ops: str, deny: str = "", anchored: bool = True) -> str:
    trust = TrustStore()
    if anchored:
        trust.add(Anchor("acme.prod", bytes(ANCHOR.verify_key)))
    else:  # the scope stays, with another anchor
        trust.add(Anchor("acme.prod", bytes(HOLDER.verify_key)))
    text = f"anchors: {json.dumps(trust.to_mapping())}\nrules:\n  - name: r\n    operations: [{ops!r}]\n"
    if deny:
        text += f"deny:\n  - name: no-{deny}\n    operations: [{deny!r}]\n"
    return text


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def _sender(op: str = "orders.write") -> Sender:
    grant = Grant(operations=("orders.*",), destinations=(Destination("orders", 8443, 8443),),
                  expires=int(NOW) + 3600)  # fmt: skip
    cred = credential.issue(ANCHOR, "acme.prod", bytes(HOLDER.verify_key), grant).encode()
    return Sender(HOLDER, cred, bytes(RECV.verify_key), Claim(op, "orders", 8443))


def _opened(rx: Receiver, op: str) -> Sender:
    s = _sender(op)
    assert rx.handle(s.open(b"first", NOW), SRC, 8443, NOW).verdict == Verdict.ADMIT
    return s


def test_reload_ends_the_sessions_it_now_refuses_and_applies_to_new_openings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.*"), 0)
    watcher = PolicyWatcher(path)
    rx = Receiver(RECV, load_any(path), started_at=NOW - 10)
    writer, reader = _opened(rx, "orders.write"), _opened(rx, "orders.read")
    assert watcher.poll() is None  # unchanged file: nothing to do

    _write(path, _policy_text("orders.read"), 1)  # orders.write no longer admitted
    new = watcher.poll()
    assert new is not None
    ended = rx.set_policy(new, NOW + 1)
    assert [(e.session.session_id, e.reason) for e in ended] == [
        (writer.session_id, Reason.POLICY_DENIED)
    ]
    assert ended[0].detail == "no rule admits this"
    out = rx.handle(writer.seal(b"after the reload"), SRC, 8443, NOW + 1)
    assert (out.verdict, out.reason) == (Verdict.DROP, Reason.UNKNOWN_SESSION)
    assert out.reply is not None  # a REJECT: the sender learns to open again
    assert rx.handle(reader.seal(b"still here"), SRC, 8443, NOW + 1).verdict == Verdict.ADMIT
    out = rx.handle(_sender().open(b"new session", NOW + 1), SRC, 8443, NOW + 1)
    assert (out.verdict, out.reason) == (Verdict.DROP, Reason.POLICY_DENIED)


def test_an_added_deny_rule_ends_the_sessions_it_selects(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.*"), 0)
    rx = Receiver(RECV, load_any(path), started_at=NOW - 10)
    writer, reader = _opened(rx, "orders.write"), _opened(rx, "orders.read")
    _write(path, _policy_text("orders.*", deny="orders.write"), 1)
    ended = rx.set_policy(load_any(path), NOW + 1)
    assert [(e.session.session_id, e.reason, e.detail) for e in ended] == [
        (writer.session_id, Reason.POLICY_DENIED, "denied by rule 'no-orders.write'")
    ]
    assert rx.sessions.get(writer.session_id) is None and len(rx.sessions) == 1
    out = rx.handle(writer.seal(b"x"), SRC, 8443, NOW + 1)
    assert out.reason == Reason.UNKNOWN_SESSION
    assert rx.handle(reader.seal(b"y"), SRC, 8443, NOW + 1).verdict == Verdict.ADMIT


def test_a_removed_anchor_ends_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.*"), 0)
    rx = Receiver(RECV, load_any(path), started_at=NOW - 10)
    s = _opened(rx, "orders.write")
    _write(path, _policy_text("orders.*", anchored=False), 1)
    ended = rx.set_policy(load_any(path), NOW + 1)
    assert [(e.session.session_id, e.reason) for e in ended] == [
        (s.session_id, Reason.UNKNOWN_ANCHOR)
    ]
    assert rx.handle(s.seal(b"x"), SRC, 8443, NOW + 1).reason == Reason.UNKNOWN_SESSION


def test_a_policy_that_still_admits_ends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.*"), 0)
    rx = Receiver(RECV, load_any(path), started_at=NOW - 10)
    s = _opened(rx, "orders.write")
    _write(path, _policy_text("orders.write", deny="orders.read"), 1)
    assert rx.set_policy(load_any(path), NOW + 1) == []
    assert rx.handle(s.seal(b"x"), SRC, 8443, NOW + 1).verdict == Verdict.ADMIT


def test_the_kernel_drops_the_next_data_of_a_now_denied_session(tmp_path: Path) -> None:
    """Kernel backend: the reload removes the session's map entry, so the program drops
    its next DATA (UNKNOWN_SESSION); the still-admitted session's DATA passes."""
    import socket

    from netns_helpers import require_datapath

    require_datapath()
    from warrant.datapath import libbpf
    from warrant.datapath.kernel_store import KernelSessionStore
    from warrant.datapath.loader import Datapath
    from warrant.datapath.wire import udp_frame

    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.*"), 0)
    policy = load_any(path)
    with Datapath.open(pin_root=None) as dp:
        dp.set_ports([8443])
        dp.set_time(NOW + 1)
        dp.set_config(admit_sample=1, pass_events=True, budget=False)
        store = KernelSessionStore(dp, policy.limits.max_sessions)
        rx = Receiver(RECV, policy, started_at=NOW - 10, sessions=store)
        writer, reader = _opened(rx, "orders.write"), _opened(rx, "orders.read")
        run = libbpf.TestRunner(dp.xdp_fd, 2048)

        def kernel(packet: bytes) -> tuple[Verdict, Reason]:
            run.run(udp_frame(packet, 8443, sport=4000, src=socket.inet_aton(SRC[0])))
            (ev,) = dp.events()
            return ev.verdict, ev.reason

        assert kernel(writer.seal(b"before")) == (Verdict.ADMIT, Reason.OK)
        _write(path, _policy_text("orders.*", deny="orders.write"), 1)
        ended = rx.set_policy(load_any(path), NOW + 1)
        assert [e.session.session_id for e in ended] == [writer.session_id]
        assert dp.session(writer.session_id) is None and dp.record(writer.session_id) is None
        assert kernel(writer.seal(b"after")) == (Verdict.DROP, Reason.UNKNOWN_SESSION)
        assert kernel(reader.seal(b"still")) == (Verdict.ADMIT, Reason.OK)


def test_invalid_reload_is_reported_once_and_the_old_policy_stays(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, _policy_text("orders.write"), 0)
    watcher = PolicyWatcher(path)
    _write(path, "anchors: {}\nrules: [{bogus: 1}]\n", 1)
    with pytest.raises(PolicyError):
        watcher.poll()
    assert watcher.poll() is None  # reported once per change, not on every poll
