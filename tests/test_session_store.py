"""One SessionStore, two backends: the memory table and the kernel's pinned maps.

Every behaviour test runs against both (`store` is parametrized).  The kernel
backend needs root and bpf(): without root it is skipped with the reason; under
root a failure to build or load the program fails the test.  Also here: the
per-holder quota regression (SPEC 8.1) through real INITs, the bounded
tombstones with their opening floor, and the replay-window converter between
the Python ring (64 x 64 bits) and the kernel's (128 tagged 32-bit slots).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from warrant.core import credential
from warrant.core.constants import CLOCK_SKEW, INIT_MAX_AGE, REPLAY_WINDOW, Reason, Verdict
from warrant.core.replay import ReplayWindow
from warrant.core.session import Session, SessionStore, SessionTable, default_holder_quota

NOW = 1_800_000_000.0


def _holder(name: str) -> bytes:
    return name.encode().ljust(32, b"\0")


def _session(n: int, holder: str, expires: float = NOW + 600) -> Session:
    window = ReplayWindow()
    window.update(0)
    return Session(
        session_id=n.to_bytes(8, "little"), mac_key=bytes([n % 256]) * 16, aead_key=b"k" * 32,
        chain=SimpleNamespace(holder=_holder(holder)),  # type: ignore[arg-type]
        operation="op.x", service="svc", port=4433, path=[], opened=NOW, expires=expires,
        stamp=NOW - n / 1000, window=window,
    )  # fmt: skip


@pytest.fixture(params=["memory", "kernel"])
def make(request: pytest.FixtureRequest) -> Iterator[Any]:
    """make(capacity, quota) -> a fresh store of the parametrized backend."""
    if request.param == "memory":
        yield lambda capacity, quota=None: SessionTable(capacity, quota)
        return
    if os.geteuid() != 0:
        pytest.skip("kernel backend needs root and bpf() (CI runs as root)")
    from warrant.datapath.kernel_store import KernelSessionStore
    from warrant.datapath.loader import Datapath

    dp = Datapath.open(pin_root=None)  # under root a build or load failure fails here
    dp.set_time(NOW)
    try:
        yield lambda capacity, quota=None: KernelSessionStore(dp, capacity, quota)
    finally:
        dp.close()


def _in_kernel(store: SessionStore, sid: bytes) -> bool | None:
    """Whether the kernel map has the session (None for the memory backend)."""
    dp = getattr(store, "dp", None)
    return None if dp is None else dp.session(sid) is not None


def test_install_lookup_remove_and_tombstone(make: Any) -> None:
    store = make(8)
    s = _session(1, "x")
    assert store.add(s, NOW) is Reason.OK
    assert store.get(s.session_id) is s and len(store) == 1 and list(store) == [s]
    assert _in_kernel(store, s.session_id) in (None, True)
    dp = getattr(store, "dp", None)
    if dp is not None:  # the MAC key lives in the kernel only
        assert s.mac_key == b"" and bytes(dp.session(s.session_id).k_mac) == b"\x01" * 16
    store.remove(s.session_id, NOW)
    assert store.get(s.session_id) is None and len(store) == 0
    assert _in_kernel(store, s.session_id) in (None, False)
    assert store.seen(s.session_id)  # its INIT cannot reopen it while it is fresh
    store.expire(NOW + INIT_MAX_AGE)
    assert store.seen(s.session_id)
    store.expire(NOW + 10 * (INIT_MAX_AGE + CLOCK_SKEW))  # long stale: the tombstone went
    assert not store.seen(s.session_id)


def test_holder_quota_refuses_only_that_holder(make: Any) -> None:
    store = make(64, 3)
    for i in range(3):
        assert store.add(_session(i + 1, "x"), NOW) is Reason.OK
    assert store.add(_session(10, "x"), NOW) is Reason.SESSION_TABLE_FULL
    assert store.holder_count(_holder("x")) == 3
    assert store.add(_session(20, "y"), NOW) is Reason.OK  # another holder is unaffected


def test_full_table_evicts_the_oldest_of_the_largest_holder(make: Any) -> None:
    store = make(4, 3)
    xs = [_session(i + 1, "x") for i in range(3)]
    for s in xs:
        assert store.add(s, NOW) is Reason.OK
    assert store.add(_session(10, "z"), NOW) is Reason.OK  # the table is now full
    y = _session(20, "y")
    assert store.add(y, NOW) is Reason.OK
    assert store.get(xs[0].session_id) is None  # x's oldest made room
    assert _in_kernel(store, xs[0].session_id) in (None, False)
    assert store.seen(xs[0].session_id)  # and its INIT stays refused
    assert [store.get(s.session_id) is not None for s in xs[1:]] == [True, True]
    assert len(store) == 4 and store.holder_count(_holder("y")) == 1


def test_expire_and_end_where_delete_through_the_store(make: Any) -> None:
    store = make(8)
    short, long_, doomed = _session(1, "x", NOW + 5), _session(2, "x"), _session(3, "y")
    for s in (short, long_, doomed):
        assert store.add(s, NOW) is Reason.OK
    assert store.expire(NOW + 5) == [short]
    assert _in_kernel(store, short.session_id) in (None, False)
    assert store.end_where(lambda s: s.holder == _holder("y"), NOW + 5) == [doomed]
    assert _in_kernel(store, doomed.session_id) in (None, False)
    assert [s.session_id for s in store] == [long_.session_id]
    assert store.holder_count(_holder("y")) == 0


def test_tombstones_are_bounded_and_raise_the_floor(make: Any) -> None:
    store = make(4, 4)
    for i in range(10):
        s = _session(i + 1, f"h{i}")
        assert store.add(s, NOW) is Reason.OK
        store.remove(s.session_id, NOW)
    assert store.tombstones() == 4  # never more than the capacity
    # The six dropped early: the floor is the newest of their INIT stamps, so those
    # INITs (and anything stamped before) are refused TOO_OLD by the receiver.
    assert store.opening_floor() == max(_session(i + 1, "-").stamp for i in range(6))
    assert store.seen((10).to_bytes(8, "little"))


def _kernel_forgets(dp: Any, sid: bytes) -> None:
    """What the kernel does to a session it expires (bpf/session.h warrant_session_remove)."""
    from warrant.datapath import libbpf
    from warrant.datapath.loader import sid_key, slot_of

    key, v = sid_key(sid), dp.session(sid)
    assert v is not None
    if v.sid == key.value:  # in its slot: the id is cleared
        v.sid = 0
        libbpf.map_update(dp.fd["warrant_session_slots"], slot_of(key), v)
    else:
        assert libbpf.map_delete(dp.fd["warrant_sessions"], key)


def test_kernel_removal_is_the_truth() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    from warrant.datapath.kernel_store import KernelSessionStore
    from warrant.datapath.loader import Datapath

    with Datapath.open(pin_root=None) as dp:
        dp.set_time(NOW)
        other = _session(7, "old")
        dp.install_session(other)  # an earlier agent's entry: no Python side
        store = KernelSessionStore(dp, 2)
        assert store.orphans() == 1 and len(store) == 1 and store.seen(other.session_id)
        s = _session(1, "x")
        assert store.add(s, NOW) is Reason.OK
        assert store.add(_session(2, "y"), NOW) is Reason.OK  # full: the orphan went first
        assert store.orphans() == 0 and dp.session(other.session_id) is None
        _kernel_forgets(dp, s.session_id)
        assert store.get(s.session_id) is None and store.seen(s.session_id)
        assert store.holder_count(_holder("x")) == 0


def test_default_quota() -> None:
    assert default_holder_quota(65536) == 1024
    assert default_holder_quota(100) == 16
    assert default_holder_quota(2) == 2  # never above the table
    assert default_holder_quota(100, 5) == 5


# ---- through the receiver: SPEC 8.1 regression ----------------------------------------------
def test_one_holder_filling_its_quota_leaves_room_for_others() -> None:
    from warrant.core.receiver import Claim
    from warrant.core.sender import Sender
    from warrant.datapath.lab import SCOPE, SERVICE, Lab, pub, seeded

    lab = Lab(NOW, relays=0)
    lab.receiver.sessions.set_holder_quota(4)

    def sender(holder: Any) -> Sender:
        cred = credential.issue(lab.anchor, SCOPE, pub(holder), _grant(lab)).encode()
        return Sender(holder, cred, pub(lab.receiver_key), Claim("op.x", SERVICE, 4433),
                      random=lab.random)  # fmt: skip

    x, y = seeded("holder-x"), seeded("holder-y")
    reasons = []
    for i in range(6):
        out = lab.receiver.handle(sender(x).open(b"hi", NOW), ("10.0.0.1", 1000 + i), 4433, NOW)
        reasons.append(out.reason)
    assert reasons == [Reason.OK] * 4 + [Reason.SESSION_TABLE_FULL] * 2
    out = lab.receiver.handle(sender(y).open(b"hi", NOW), ("10.0.0.2", 1), 4433, NOW)
    assert (out.verdict, out.reason) == (Verdict.ADMIT, Reason.OK)


def _grant(lab: Any) -> Any:
    from warrant.core.rights import Destination, Grant
    from warrant.datapath.lab import SERVICE

    return Grant(operations=("*",), destinations=(Destination(SERVICE, 4433, 4433),),
                 not_before=int(NOW) - 3600, expires=int(NOW) + 86400)  # fmt: skip


# ---- the replay-window converter (loader.ReplayValue) ----------------------------------------
@pytest.mark.parametrize("seed", range(20))
def test_window_converter_round_trips(seed: int) -> None:
    from warrant.datapath.loader import ReplayValue

    rng = random.Random(seed)
    w = ReplayWindow()
    top = rng.randrange(0, 1 << 20)
    for _ in range(rng.randrange(1, 300)):
        w.update(max(0, top - rng.randrange(0, REPLAY_WINDOW + 200)))
        if rng.random() < 0.05:
            top += rng.randrange(1, 5000)
            w.update(top)
    back_top, words = ReplayValue.from_window(w.top, list(w.words)).to_window()
    assert back_top == w.top
    # Equal on every number the window can still judge: same verdict for each.
    restored = ReplayWindow()
    restored.top, restored.words = back_top, words
    for seq in range(max(0, w.top - REPLAY_WINDOW - 70), w.top + 70):
        assert restored.check(seq) == w.check(seq), seq


def test_refresh_rewrites_the_entry_and_keeps_the_window(make: Any) -> None:
    store = make(8)
    s = _session(1, "x")
    assert store.add(s, NOW) is Reason.OK
    moved = ReplayWindow()  # the Python copy differs from the window installed in the kernel
    moved.update(5000)
    s.window, s.expires = moved, NOW + 42
    store.refresh(s)
    assert store.get(s.session_id) is s
    dp = getattr(store, "dp", None)
    if dp is not None:
        assert dp.session(s.session_id).expires_ns == dp.kernel_ns(NOW + 42)
        assert dp.window(s.session_id)[0] == 0  # the kernel's window is never rewritten


def test_policy_reload_reevaluates_sessions_through_the_store(make: Any) -> None:
    from warrant.core.admission import Policy
    from warrant.core.anchors import Anchor, TrustStore
    from warrant.core.receiver import Receiver
    from warrant.datapath.lab import Lab

    lab = Lab(NOW, relays=0)
    rx = Receiver(lab.receiver_key, lab.receiver.policy, started_at=NOW - 1,
                  sessions=make(64))  # fmt: skip
    sender = lab.sender()
    assert rx.handle(sender.open(b"hi", NOW), ("10.0.0.1", 1), 4433, NOW).reason is Reason.OK
    sid = sender.session_id
    assert sid is not None
    model = lab.receiver.policy.model

    def policy(not_after: int | None, *, trusted: bool = True) -> Policy:
        trust = TrustStore()
        if trusted:
            trust.add(Anchor(lab.trust.scopes()[0], lab.anchor.verify_key.encode(),
                             not_after=not_after))  # fmt: skip
        return Policy(model, trust)

    assert rx.set_policy(policy(None), NOW + 1) == []  # same anchor: the session stays
    assert rx.set_policy(policy(int(NOW) + 100), NOW + 1) == []
    s = rx.sessions.get(sid)
    assert s is not None and s.expires == NOW + 100 + CLOCK_SKEW  # ends with its anchor
    dp = getattr(rx.sessions, "dp", None)
    if dp is not None:
        assert dp.session(sid).expires_ns == dp.kernel_ns(NOW + 100 + CLOCK_SKEW)
    ended = rx.set_policy(policy(None, trusted=False), NOW + 2)
    assert [(e.session.session_id, e.reason) for e in ended] == [(sid, Reason.WRONG_SCOPE)]
    assert rx.sessions.get(sid) is None and _in_kernel(rx.sessions, sid) in (None, False)


def test_policy_reload_ends_what_a_new_deny_rule_selects_through_the_store(make: Any) -> None:
    from warrant.core.admission import Policy, Rule
    from warrant.core.receiver import Receiver
    from warrant.datapath.lab import Lab

    lab = Lab(NOW, relays=0)
    rx = Receiver(lab.receiver_key, lab.receiver.policy, started_at=NOW - 1,
                  sessions=make(64))  # fmt: skip
    sender = lab.sender()
    assert rx.handle(sender.open(b"hi", NOW), ("10.0.0.1", 1), 4433, NOW).reason is Reason.OK
    sid = sender.session_id
    s = rx.sessions.get(sid)  # type: ignore[arg-type]
    assert s is not None and _in_kernel(rx.sessions, s.session_id) in (None, True)
    model = lab.receiver.policy.model
    other = model.model_copy(update={"deny": [Rule(name="not-that", operations=["x.y"])]})
    assert rx.set_policy(Policy(other, lab.trust), NOW + 1) == []  # selects nothing live
    denying = model.model_copy(update={"deny": [Rule(name="no", operations=[s.operation])]})
    ended = rx.set_policy(Policy(denying, lab.trust), NOW + 1)
    assert [(e.session, e.reason, e.detail) for e in ended] == [
        (s, Reason.POLICY_DENIED, "denied by rule 'no'")
    ]
    assert rx.sessions.get(s.session_id) is None and len(rx.sessions) == 0
    assert _in_kernel(rx.sessions, s.session_id) in (None, False)
    dp = getattr(rx.sessions, "dp", None)
    if dp is not None:
        assert dp.record(s.session_id) is None  # its resumption record went with it


@pytest.mark.parametrize("seed", range(5))
def test_window_installed_in_the_kernel_judges_as_the_python_one(seed: int) -> None:
    """The converter through a real map: install a session whose window has history, read
    the kernel's back, and every number the window can still judge gets the same verdict."""
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    from warrant.datapath.kernel_store import KernelSessionStore
    from warrant.datapath.loader import Datapath

    rng = random.Random(seed)
    s = _session(seed + 1, "x")
    top = rng.randrange(1, 1 << 30)
    for _ in range(200):
        s.window.update(max(0, top - rng.randrange(0, REPLAY_WINDOW + 100)))
    s.window.update(top)
    with Datapath.open(pin_root=None) as dp:
        dp.set_time(NOW)
        store = KernelSessionStore(dp, 8)
        assert store.add(s, NOW) is Reason.OK
        got = dp.window(s.session_id)
        assert got is not None
        kernel = ReplayWindow()
        kernel.top, kernel.words = got
        for seq in range(top - REPLAY_WINDOW - 70, top + 70):
            assert kernel.check(seq) == s.window.check(seq), seq


def test_kernel_store_session_through_relays_is_admitted_by_the_kernel() -> None:
    """A two-hop session opened by a receiver on the kernel store: the kernel admits its
    DATA with the hop keys it holds, though the Python side kept none, and refuses a
    replay of it."""
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    import socket

    from warrant.core.receiver import Receiver
    from warrant.datapath import libbpf
    from warrant.datapath.kernel_store import KernelSessionStore
    from warrant.datapath.lab import Lab
    from warrant.datapath.loader import Datapath
    from warrant.datapath.wire import udp_frame

    lab = Lab(NOW, relays=2)
    with Datapath.open(pin_root=None) as dp:
        dp.set_ports(lab.ports)
        dp.set_time(NOW)
        dp.set_config(admit_sample=1, budget=False)
        lab.receiver = Receiver(lab.receiver_key, lab.receiver.policy, started_at=NOW - 1,
                                sessions=KernelSessionStore(dp, 64))  # fmt: skip
        flow = lab.open(hops=2)
        assert [h.key for h in flow.session.path] == [b"", b""] and flow.session.mac_key == b""
        packet = flow.data(b"through two relays")
        frame = udp_frame(packet, lab.ports[0], src=socket.inet_aton("10.0.0.1"))
        run = libbpf.TestRunner(dp.xdp_fd, 8192)
        reasons = []
        for _ in range(2):
            run.run(frame)
            (ev,) = [e for e in dp.events() if e.kind == 2]
            reasons.append((ev.verdict, ev.reason))
    assert reasons == [(Verdict.ADMIT, Reason.OK), (Verdict.DROP, Reason.REPLAY)]


def test_expiry_follows_refresh_and_the_heap_stays_bounded(make: Any) -> None:
    store = make(8, 8)
    sooner, later = _session(1, "x"), _session(2, "x", NOW + 5)
    for s in (sooner, later):
        assert store.add(s, NOW) is Reason.OK
    sooner.expires, later.expires = NOW + 10, NOW + 50
    store.refresh(sooner)
    store.refresh(later)
    assert store.expire(NOW + 5) == []  # later's old expiry no longer counts
    assert store.expire(NOW + 10) == [sooner]
    assert store.expire(NOW + 50) == [later]
    for i in range(1000):  # churn: removed sessions leave stale heap entries behind
        s = _session(100 + i, f"h{i % 3}")
        assert store.add(s, NOW) is Reason.OK
        store.remove(s.session_id, NOW)
    assert len(store._expiry) <= 2 * len(store) + 64 + 1


def test_sync_forgets_what_the_kernel_removed() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    from warrant.datapath.kernel_store import KernelSessionStore
    from warrant.datapath.loader import Datapath

    with Datapath.open(pin_root=None) as dp:
        dp.set_time(NOW)
        store = KernelSessionStore(dp, 8)
        gone, kept = _session(1, "x"), _session(2, "x")
        for s in (gone, kept):
            assert store.add(s, NOW) is Reason.OK
        orphan = _session(3, "old", NOW - 1)  # an earlier agent's, already expired
        dp.install_session(orphan)
        store = KernelSessionStore(dp, 8)  # a restarted agent: all three are orphans
        assert store.orphans() == 3
        assert store.add(_session(4, "y"), NOW) is Reason.OK
        _kernel_forgets(dp, (4).to_bytes(8, "little"))
        assert [s.session_id for s in store.sync(NOW)] == [(4).to_bytes(8, "little")]
        assert store.orphans() == 2 and dp.session(orphan.session_id) is None
        assert len(store) == 2  # the two live orphans
