"""Faults without a network (time is a parameter): state loss, clock skew, a full table.

* The receiver loses all state (process restart): each sender's next DATA draws
  a REJECT, one INIT re-opens, traffic resumes; nothing sent before the restart
  is admitted after it (DATA or INIT replays).
* Clock skew (SPEC CLOCK_SKEW = 30 s): a sender clock off by up to the
  tolerance is accepted, by one millisecond more is refused, for INIT
  timestamps, credential not-before/expiry and anchor validity; a session ends
  at its credential's expiry plus the tolerance.
* A full session table: a holder at its quota is refused SESSION_TABLE_FULL,
  other holders still open, and when the whole table is full a newcomer evicts
  the flooding holder's oldest session, never another holder's.
"""

from __future__ import annotations

import hashlib
import json

import nacl.signing
import pytest

from warrant.core import credential, keys
from warrant.core.admission import Policy
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import CLOCK_SKEW, INIT_MAX_AGE, Kind, Reason, Verdict
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.core.wire import peek_kind

NOW = 1_800_000_000.0
PORT = 8443
ANCHOR = keys.from_seed(b"\x21" * 32)
RECV = keys.from_seed(b"\x23" * 32)
SRC = ("10.2.0.1", 5000)


def _key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(label.encode()).digest())


def _policy(
    *, anchor_nbf: int | None = None, anchor_naf: int | None = None, **limits: int
) -> Policy:
    trust = TrustStore()
    trust.add(Anchor("acme.prod", bytes(ANCHOR.verify_key), anchor_nbf, anchor_naf))
    doc = {
        "anchors": trust.to_mapping(),
        "default": "allow",
        "limits": {"init_rate_per_source": 10000, "init_burst": 10000, **limits},
    }
    return Policy.from_text(json.dumps(doc))


def _sender(
    holder: nacl.signing.SigningKey, *, nbf: int | None = None, exp: int = int(NOW) + 3600
) -> Sender:
    grant = Grant(operations=("orders.*",), destinations=(Destination("orders", PORT, PORT),),
                  not_before=nbf, expires=exp)  # fmt: skip
    cred = credential.issue(ANCHOR, "acme.prod", bytes(holder.verify_key), grant)
    return Sender(
        holder, cred.encode(), bytes(RECV.verify_key), Claim("orders.get", "orders", PORT)
    )


def _rx(policy: Policy | None = None, started_at: float = NOW - 100) -> Receiver:
    return Receiver(RECV, policy or _policy(), started_at=started_at)


# ---- the receiver loses all state ---------------------------------------------------------
def test_receiver_state_loss_costs_one_init_and_admits_nothing_old() -> None:
    rx = _rx()
    senders = [_sender(_key(f"holder-{i}")) for i in range(3)]
    old: list[bytes] = []
    for i, tx in enumerate(senders):
        init = tx.open(b"hi", NOW)
        assert rx.handle(init, (SRC[0], 5000 + i), PORT, NOW).verdict == Verdict.ADMIT
        old.append(init)
        for n in range(3):
            p = tx.seal(b"x%d" % n)
            old.append(p)
            assert rx.handle(p, (SRC[0], 5000 + i), PORT, NOW).verdict == Verdict.ADMIT

    later = NOW + 5
    rx = _rx(started_at=later)  # the process restarted: no sessions, new cookie secret
    for packet in old:  # nothing from before the restart is admitted after it
        out = rx.handle(packet, ("10.9.9.9", 1), PORT, later)  # (its own REJECT allowance)
        assert out.verdict == Verdict.DROP, out
        assert out.reason in (Reason.UNKNOWN_SESSION, Reason.TOO_OLD), out
    for i, tx in enumerate(senders):
        src = (f"10.2.1.{i}", 6000)
        opens = tx.opens
        out = rx.handle(tx.seal(b"after"), src, PORT, later)
        assert (out.verdict, out.reason) == (Verdict.DROP, Reason.UNKNOWN_SESSION)
        assert out.reply is not None
        reopen = tx.handle(out.reply, later)
        assert reopen is not None and peek_kind(reopen) == Kind.INIT and tx.opens == opens + 1
        assert rx.handle(reopen, src, PORT, later).verdict == Verdict.ADMIT
        out = rx.handle(tx.seal(b"resumed"), src, PORT, later)
        assert (out.verdict, out.payload) == (Verdict.ADMIT, b"resumed")
    assert len(rx.sessions) == len(senders)


# ---- clock skew ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (0.0, Reason.OK),
        (CLOCK_SKEW, Reason.OK),  # sender clock ahead by the whole tolerance
        (CLOCK_SKEW + 0.001, Reason.NOT_YET_VALID),
        (-(INIT_MAX_AGE + CLOCK_SKEW), Reason.OK),  # as old as an INIT may be
        (-(INIT_MAX_AGE + CLOCK_SKEW) - 0.001, Reason.TOO_OLD),
    ],
)
def test_init_timestamp_skew(offset: float, reason: Reason) -> None:
    rx = _rx(started_at=NOW - 1000)
    tx = _sender(_key("skew"))
    init = tx.open(None, NOW + offset)  # the sender's clock is off by `offset`
    out = rx.handle(init, SRC, PORT, NOW)
    assert out.reason == reason, out
    assert (out.verdict == Verdict.ADMIT) == (reason == Reason.OK)


@pytest.mark.parametrize(
    ("receiver_now", "reason"),
    [
        (NOW + 100, Reason.OK),
        (NOW + 100 + CLOCK_SKEW, Reason.OK),
        (NOW + 100 + CLOCK_SKEW + 1, Reason.EXPIRED),
    ],
)
def test_credential_expiry_skew(receiver_now: float, reason: Reason) -> None:
    rx = _rx(started_at=NOW - 1000)
    tx = _sender(_key("exp"), exp=int(NOW) + 100)
    out = rx.handle(tx.open(None, receiver_now), SRC, PORT, receiver_now)
    assert out.reason == reason, out


@pytest.mark.parametrize(
    ("receiver_now", "reason"),
    [
        (NOW, Reason.OK),
        (NOW - CLOCK_SKEW, Reason.OK),  # receiver clock behind by the tolerance
        (NOW - CLOCK_SKEW - 1, Reason.NOT_YET_VALID),
    ],
)
def test_credential_not_before_skew(receiver_now: float, reason: Reason) -> None:
    rx = _rx(started_at=NOW - 1000)
    tx = _sender(_key("nbf"), nbf=int(NOW))
    out = rx.handle(tx.open(None, receiver_now), SRC, PORT, receiver_now)
    assert out.reason == reason, out


@pytest.mark.parametrize(
    ("receiver_now", "reason"),
    [
        (NOW + 50 + CLOCK_SKEW, Reason.OK),
        (NOW + 50 + CLOCK_SKEW + 1, Reason.EXPIRED),
        (NOW - 50 - CLOCK_SKEW, Reason.OK),
        (NOW - 50 - CLOCK_SKEW - 1, Reason.NOT_YET_VALID),
    ],
)
def test_anchor_validity_skew(receiver_now: float, reason: Reason) -> None:
    policy = _policy(anchor_nbf=int(NOW) - 50, anchor_naf=int(NOW) + 50)
    rx = _rx(policy, started_at=NOW - 1000)
    tx = _sender(_key("anchor"), exp=int(NOW) + 3600)
    out = rx.handle(tx.open(None, receiver_now), SRC, PORT, receiver_now)
    assert out.reason == reason, out


def test_session_ends_at_credential_expiry_plus_skew() -> None:
    rx = _rx(started_at=NOW - 1000)
    tx = _sender(_key("end"), exp=int(NOW) + 60)
    assert rx.handle(tx.open(None, NOW), SRC, PORT, NOW).verdict == Verdict.ADMIT
    last_ok = NOW + 60 + CLOCK_SKEW - 0.001
    assert rx.handle(tx.seal(b"a"), SRC, PORT, last_ok).reason == Reason.OK
    out = rx.handle(tx.seal(b"b"), SRC, PORT, NOW + 60 + CLOCK_SKEW)
    assert (out.verdict, out.reason) == (Verdict.DROP, Reason.SESSION_EXPIRED)


# ---- a full session table ----------------------------------------------------------------
def test_full_table_quota_and_eviction() -> None:
    capacity, quota = 8, 5
    rx = _rx(_policy(max_sessions=capacity, max_sessions_per_holder=quota))
    flooder, others = _key("flooder"), [_key(f"other-{i}") for i in range(4)]

    flood = [_sender(flooder) for _ in range(quota + 3)]
    verdicts = [rx.handle(tx.open(None, NOW), SRC, PORT, NOW).reason for tx in flood]
    assert verdicts == [Reason.OK] * quota + [Reason.SESSION_TABLE_FULL] * 3
    assert rx.sessions.holder_count(bytes(flooder.verify_key)) == quota

    # Other holders still open; once the table is full, each newcomer evicts the
    # flooder's oldest session (the holder with the most), never another holder's.
    opened = []
    for i, key in enumerate(others):
        tx = _sender(key)
        assert rx.handle(tx.open(None, NOW + i), SRC, PORT, NOW + i).verdict == Verdict.ADMIT
        opened.append(tx)
    assert len(rx.sessions) == capacity
    assert rx.sessions.holder_count(bytes(flooder.verify_key)) == capacity - len(others)
    for tx in opened:  # every other holder's session is still live
        assert rx.handle(tx.seal(b"ok"), SRC, PORT, NOW + 10).verdict == Verdict.ADMIT
    evicted = flood[: quota - (capacity - len(others))]
    for tx in evicted:  # the flooder's oldest went first
        out = rx.handle(tx.seal(b"gone"), SRC, PORT, NOW + 10)
        assert out.reason == Reason.UNKNOWN_SESSION, out
