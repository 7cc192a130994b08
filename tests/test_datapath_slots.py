"""Session slots (bpf/session.h): a session lives in slot sid & 65535, or in the hash map
when its slot is taken; either way the kernel finds it, and a session never lives twice.

Sessions here are built by hand with chosen ids (two share a slot); their DATA packets
carry real header MACs.  Needs root and bpf(); skipped otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from warrant.core.constants import AEAD_TAG_LEN, Reason, Verdict
from warrant.core.mac import header_mac
from warrant.core.replay import ReplayWindow
from warrant.core.session import Session
from warrant.core.wire import DataPacket

pytestmark = pytest.mark.root

NOW = 1_800_000_000.0
PORT = 4433
XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3
A = 5  # slot 5
B = 5 + (1 << 16)  # slot 5 too: goes to the hash map


def _session(n: int, expires: float = NOW + 600) -> Session:
    window = ReplayWindow()
    window.update(0)
    return Session(
        session_id=n.to_bytes(8, "little"), mac_key=bytes([n % 251 + 1]) * 16,
        aead_key=b"k" * 32, chain=None,  # type: ignore[arg-type]
        operation="op.x", service="svc", port=PORT, path=[], opened=NOW, expires=expires,
        stamp=NOW, window=window,
    )  # fmt: skip


@pytest.fixture
def dp() -> Iterator[object]:
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    from warrant.datapath.loader import Datapath

    with Datapath.open(pin_root=None) as d:  # under root a build or load failure fails
        d.set_ports([PORT])
        d.set_time(NOW)
        d.set_reject_bucket(1 << 62)  # no REJECTs: unknown sessions are plain drops
        yield d


def _run(dp: object, s: Session, seq: int) -> tuple[int, Verdict, Reason]:
    """One DATA packet of s through the XDP program: its action and the counter it moved."""
    from warrant.datapath import libbpf
    from warrant.datapath.wire import udp_frame

    sid = s.session_id
    mac = header_mac(s.mac_key, DataPacket.mac_input(sid, seq))
    frame = udp_frame(DataPacket(sid, seq, mac, (), bytes(AEAD_TAG_LEN + 8)).encode(), PORT)
    before = dp.counters()  # type: ignore[attr-defined]
    retval, _ = libbpf.TestRunner(dp.xdp_fd).run(frame)  # type: ignore[attr-defined]
    after = dp.counters()  # type: ignore[attr-defined]
    moved = [k for k in after if after[k][0] != before.get(k, (0, 0))[0]]
    assert len(moved) == 1, moved
    return retval, moved[0][0], moved[0][1]


def test_sessions_sharing_a_slot_are_both_found(dp) -> None:  # type: ignore[no-untyped-def]
    a, b = _session(A), _session(B)
    dp.install_session(a)
    dp.install_session(b)
    assert sorted(dp.session_ids()) == sorted([a.session_id, b.session_id])
    assert dp.session(a.session_id).sid == A  # in the slot
    assert dp.session(b.session_id).sid == 0  # in the hash map
    assert _run(dp, a, 1) == (XDP_PASS, Verdict.ADMIT, Reason.OK)
    assert _run(dp, b, 1) == (XDP_PASS, Verdict.ADMIT, Reason.OK)
    assert _run(dp, b, 1) == (XDP_DROP, Verdict.DROP, Reason.REPLAY)
    dp.remove_session(a.session_id)
    assert _run(dp, a, 2) == (XDP_DROP, Verdict.DROP, Reason.UNKNOWN_SESSION)
    assert _run(dp, b, 2) == (XDP_PASS, Verdict.ADMIT, Reason.OK)
    assert dp.session_ids() == [b.session_id]


def test_a_hashed_session_stays_in_the_hash_when_its_slot_frees(dp) -> None:  # type: ignore[no-untyped-def]
    """Moving it into the freed slot would leave its hash entry behind: once the kernel
    expired the slot's copy, the old entry (with its old, longer expiry) would admit."""
    a, b = _session(A), _session(B)
    dp.install_session(a)
    dp.install_session(b)
    dp.remove_session(a.session_id)
    assert dp.set_session_expiry(b.session_id, NOW + 1)  # shortened
    assert dp.session_ids() == [b.session_id]
    assert _run(dp, b, 1) == (XDP_PASS, Verdict.ADMIT, Reason.OK)
    dp.set_time(NOW + 2)
    assert _run(dp, b, 2) == (XDP_DROP, Verdict.DROP, Reason.SESSION_EXPIRED)
    assert _run(dp, b, 3) == (XDP_DROP, Verdict.DROP, Reason.UNKNOWN_SESSION)
    assert dp.session_ids() == []


def test_a_slot_the_kernel_expired_is_not_listed(dp) -> None:  # type: ignore[no-untyped-def]
    a = _session(A, expires=NOW + 1)
    dp.install_session(a)
    dp.set_time(NOW + 2)
    assert _run(dp, a, 1) == (XDP_DROP, Verdict.DROP, Reason.SESSION_EXPIRED)
    assert dp.session(a.session_id) is None and dp.session_ids() == []
    dp.remove_session(a.session_id)  # user space catches up: the slot is free again
    dp.set_time(NOW)
    b = _session(B)
    dp.install_session(b)
    assert dp.session(b.session_id).sid == B  # the freed slot took it


def test_pinned_maps_reopened_find_slots_and_hash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    from warrant.datapath.loader import Datapath, MapView

    root = f"/sys/fs/bpf/wslots-{os.getpid()}"
    a, b, c = _session(A), _session(B), _session(7)
    try:
        with Datapath.open(pin_root=root) as d:
            d.set_time(NOW)
            for s in (a, b, c):
                d.install_session(s)
        want = sorted(s.session_id for s in (a, b, c))
        with Datapath.open(pin_root=root) as d:
            assert sorted(d.session_ids()) == want
            view = MapView.pinned(root)
            assert sorted(view.session_ids()) == want
            assert view.window(b.session_id) is not None
            d.remove_session(a.session_id)
            d.install_session(_session(A + (2 << 16)))  # slot 5 free again: taken
            assert d.session((A + (2 << 16)).to_bytes(8, "little")).sid == A + (2 << 16)
            assert sorted(d.session_ids()) == sorted(
                [b.session_id, c.session_id, (A + (2 << 16)).to_bytes(8, "little")]
            )
    finally:
        Datapath.unpin(root)
