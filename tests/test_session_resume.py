"""Sessions survive the agent: resumption records in the pinned warrant_session_secrets map.

A receiver on the kernel store opens real sessions (through relays); the maps are
closed and reopened from their pins, as a restarted agent does, and a new store
adopts the kernel's sessions from their records: the chain verified again, the
payload key back, the authority as before.  Also: adoption refuses revoked and
untrusted chains, broken and missing records (each removed from the kernel with
its reason); every removal through the store deletes the record; the map is a
root-only bpffs pin, not a file.

Needs root and bpf(); skipped otherwise (under root a build or load failure fails).
Pin roots carry the prefix warrant-hres and this process's id.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from typing import Any

import pytest

from warrant.core.constants import Reason, Verdict

NOW = 1_800_000_000.0
pytestmark = pytest.mark.root


@pytest.fixture
def pin_root() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf() (CI runs as root)")
    from warrant.datapath.loader import Datapath

    root = f"/sys/fs/bpf/warrant-hres-{os.getpid()}"
    Datapath.unpin(root)
    try:
        yield root
    finally:
        Datapath.unpin(root)


def _receiver(lab: Any, dp: Any, revocations: Any = None, policy: Any = None) -> Any:
    from warrant.core.receiver import Receiver
    from warrant.datapath.kernel_store import KernelSessionStore

    return Receiver(lab.receiver_key, policy or lab.receiver.policy, started_at=NOW - 1,
                    revocations=revocations, sessions=KernelSessionStore(dp, 64))  # fmt: skip


def _open_lab(pin_root: str, hops: int = 2) -> tuple[Any, Any]:
    """A lab whose receiver keeps its sessions in pinned kernel maps, and its datapath."""
    from warrant.datapath.lab import Lab
    from warrant.datapath.loader import Datapath

    lab = Lab(NOW, relays=hops)
    dp = Datapath.open(pin_root=pin_root)
    dp.set_ports(lab.ports)
    dp.set_time(NOW)
    dp.set_config(admit_sample=1, budget=False)
    lab.receiver = _receiver(lab, dp)
    return lab, dp


def test_a_restarted_store_adopts_the_session_and_opens_its_data(pin_root: str) -> None:
    from warrant.datapath import libbpf
    from warrant.datapath.loader import SECRETS_MAP, Datapath
    from warrant.datapath.wire import udp_frame

    lab, dp = _open_lab(pin_root)
    try:
        flow = lab.open(hops=2)
        before = flow.session
        assert dp.record(before.session_id) is not None
    finally:
        dp.close()  # the agent is gone; the pins stay

    pin = f"{pin_root}/{SECRETS_MAP}"
    assert stat.S_IMODE(os.stat(pin).st_mode) == 0o600  # root-only
    with open("/proc/mounts") as f:  # kernel memory behind a bpffs pin, not a file
        assert any(line.split()[2] == "bpf" and pin.startswith(line.split()[1]) for line in f)

    with Datapath.open(pin_root=pin_root) as dp:
        receiver = _receiver(lab, dp)
        adopted, refused = receiver.sessions.adopt(receiver.verifier.verify, NOW)
        assert refused == {} and [s.session_id for s in adopted] == [before.session_id]
        s = receiver.sessions.admitted(before.session_id)
        assert s is not None and s.aead_key == before.aead_key
        assert s.authority == before.authority  # scope, chain, claim, hops, rule: the same
        assert s.expires == pytest.approx(before.expires, abs=1e-6)
        assert (s.opened, s.stamp, s.port) == (before.opened, before.stamp, before.port)
        assert [(h.domain, h.tag) for h in s.path] == [(h.domain, h.tag) for h in before.path]
        assert receiver.sessions.holder_count(s.holder) == 1 and len(receiver.sessions) == 1
        # the kernel (reopened maps) admits the next packet, and the adopted key opens it
        packet = flow.data(b"after the restart")
        frame = udp_frame(packet, lab.ports[0], src=socket.inet_aton("10.0.0.1"))
        libbpf.TestRunner(dp.xdp_fd, 8192).run(frame)
        assert [(e.verdict, e.reason) for e in dp.events() if e.kind == 2] == [
            (Verdict.ADMIT, Reason.OK)
        ]
        out = receiver.admitted_data(packet, ("10.0.0.1", 40000), NOW)
        assert (out.verdict, out.reason, out.payload) == (Verdict.ADMIT, Reason.OK,
                                                          b"after the restart")  # fmt: skip
        assert out.authority == before.authority


def test_adoption_refuses_revoked_and_untrusted_chains(pin_root: str) -> None:
    from warrant.core.admission import Policy
    from warrant.core.anchors import TrustStore
    from warrant.core.revocation import RevocationList, RevocationStore
    from warrant.datapath.lab import SCOPE
    from warrant.datapath.loader import Datapath

    lab, dp = _open_lab(pin_root, hops=0)
    try:
        s1, s2 = lab.open().session, lab.open().session
    finally:
        dp.close()
    with Datapath.open(pin_root=pin_root) as dp:  # restarted under a list revoking the chain
        lists = RevocationStore()
        lists.load(RevocationList.sign(lab.anchor, SCOPE, 1, link_ids=s1.chain.link_ids[-1:]),
                   lab.trust)  # fmt: skip
        receiver = _receiver(lab, dp, revocations=lists)
        adopted, refused = receiver.sessions.adopt(receiver.verifier.verify, NOW)
        assert adopted == [] and set(refused) == {s1.session_id, s2.session_id}
        assert all(why.startswith("REVOKED") for why in refused.values()), refused
        for s in (s1, s2):  # gone from the kernel, records too: their DATA is UNKNOWN_SESSION
            assert dp.session(s.session_id) is None and dp.record(s.session_id) is None
        assert len(receiver.sessions) == 0

    lab, dp = _open_lab(pin_root, hops=0)
    try:
        s3 = lab.open().session
    finally:
        dp.close()
    with Datapath.open(pin_root=pin_root) as dp:  # restarted with the anchor no longer trusted
        untrusted = Policy(lab.receiver.policy.model, TrustStore())
        receiver = _receiver(lab, dp, policy=untrusted)
        adopted, refused = receiver.sessions.adopt(receiver.verifier.verify, NOW)
        assert adopted == [] and list(refused) == [s3.session_id], refused
        assert dp.session(s3.session_id) is None and dp.record(s3.session_id) is None


def test_broken_or_missing_records_are_not_adopted(pin_root: str) -> None:
    from warrant.datapath import libbpf
    from warrant.datapath.loader import Datapath, RecordKey, RecordPart, sid_key

    lab, dp = _open_lab(pin_root, hops=0)
    try:
        garbage, missing, torn, good = (lab.open().session for _ in range(4))
        dp.put_record(garbage.session_id, b"\xa1\x01\x02")  # CBOR, not a record
        dp.drop_record(missing.session_id)
        # a record whose part 0 claims two parts, the second absent (a torn write)
        part = RecordPart()
        libbpf.map_lookup(dp.secrets_fd, RecordKey(sid_key(torn.session_id).value, 0), part)
        part.length = 2000
        libbpf.map_update(dp.secrets_fd, RecordKey(sid_key(torn.session_id).value, 0), part)
    finally:
        dp.close()
    with Datapath.open(pin_root=pin_root) as dp:
        receiver = _receiver(lab, dp)
        adopted, refused = receiver.sessions.adopt(receiver.verifier.verify, NOW)
        assert [s.session_id for s in adopted] == [good.session_id]
        assert refused[garbage.session_id].startswith("bad resumption record")
        assert refused[missing.session_id] == "no resumption record"
        assert refused[torn.session_id] == "no resumption record"
        for s in (garbage, missing, torn):
            assert dp.session(s.session_id) is None


def test_every_removal_through_the_store_deletes_the_record(pin_root: str) -> None:
    from warrant.datapath import libbpf
    from warrant.datapath.loader import RECORD_PART, Datapath, RecordKey, sid_key

    lab, dp = _open_lab(pin_root, hops=0)
    try:
        store = lab.receiver.sessions
        removed, expired, ended, forgotten, kept = (lab.open().session for _ in range(5))
        store.remove(removed.session_id, NOW)
        expired.expires = NOW + 1
        store.refresh(expired)
        assert [s.session_id for s in store.expire(NOW + 1)] == [expired.session_id]
        assert [s.session_id for s in store.end_where(lambda s: s is ended, NOW)] == [
            ended.session_id
        ]
        _kernel_removes(dp, forgotten.session_id)  # the kernel expires it on its own
        assert [s.session_id for s in store.sync(NOW)] == [forgotten.session_id]
        for s in (removed, expired, ended, forgotten):
            assert dp.record(s.session_id) is None, s.session_id
        assert dp.record(kept.session_id) is not None
        assert dp.record_ids() == {kept.session_id}
        # a record left by a crash between entry and record removal is swept at adoption
        dp.put_record(b"\x77" * 8, b"left behind")
        # and the second part of a record whose part 0 was deleted (a crash mid-delete)
        dp.put_record(b"\x78" * 8, b"y" * (RECORD_PART + 1))
        libbpf.map_delete(dp.secrets_fd, RecordKey(sid_key(b"\x78" * 8).value, 0))
        assert dp.record(b"\x78" * 8) is None
        assert dp.record_ids() == {kept.session_id, b"\x77" * 8, b"\x78" * 8}
    finally:
        dp.close()
    with Datapath.open(pin_root=pin_root) as dp:
        receiver = _receiver(lab, dp)
        adopted, _ = receiver.sessions.adopt(receiver.verifier.verify, NOW)
        assert [s.session_id for s in adopted] == [kept.session_id]
        assert dp.record_ids() == {kept.session_id}


def test_records_span_parts_and_are_bounded(pin_root: str) -> None:
    from warrant.datapath.loader import RECORD_MAX_PARTS, RECORD_PART

    lab, dp = _open_lab(pin_root, hops=0)
    try:
        sid = b"\x01" * 8
        for size in (1, RECORD_PART, RECORD_PART + 1, RECORD_PART * RECORD_MAX_PARTS):
            blob = os.urandom(size)
            dp.put_record(sid, blob)
            assert dp.record(sid) == blob, size
            dp.drop_record(sid)
            assert dp.record(sid) is None and sid not in dp.record_ids()
        with pytest.raises(ValueError):
            dp.put_record(sid, b"x" * (RECORD_PART * RECORD_MAX_PARTS + 1))
        # a session whose record cannot be kept is not admitted: nothing in the kernel
        s = lab.open().session
        lab.receiver.sessions.remove(s.session_id, NOW)
        s.session_id, s.credential = b"\x02" * 8, b"c" * (RECORD_PART * RECORD_MAX_PARTS)
        assert lab.receiver.sessions.add(s, NOW) is Reason.SESSION_TABLE_FULL
        assert dp.session(s.session_id) is None and dp.record(s.session_id) is None
    finally:
        dp.close()


def _kernel_removes(dp: Any, sid: bytes) -> None:
    """What bpf/session.h does to a session it expires: the entry goes, nothing else."""
    from warrant.datapath import libbpf
    from warrant.datapath.loader import sid_key, slot_of

    key, v = sid_key(sid), dp.session(sid)
    assert v is not None
    if v.sid == key.value:
        v.sid = 0
        libbpf.map_update(dp.fd["warrant_session_slots"], slot_of(key), v)
    else:
        libbpf.map_delete(dp.fd["warrant_sessions"], key)
    assert dp.session(sid) is None
