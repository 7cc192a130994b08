"""Regression tests for issue 13's receiver defects, each asserting the reason code.

* the credential rate is spent only by authenticated payloads (SPEC 6.1 steps 8-10);
* a key holder cannot lock a session at seq 2^64-1 (SEQ_LIMIT, SPEC 6.3);
* a cookie MAC that is present is checked off load too (SPEC 6.2 step 6);
* a claim's service is a service name (SPEC 6.2 step 10);
* tombstones, the token bucket's burst and cookie epochs at their exact boundaries.
"""

from __future__ import annotations

import dataclasses
import json

import cbor2
import pytest

from warrant.core import credential, keys
from warrant.core.admission import Policy
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import (
    CLOCK_SKEW,
    COOKIE_SECRET_LIFETIME,
    INIT_MAX_AGE,
    SEQ_LIMIT,
    Kind,
    Reason,
    Verdict,
)
from warrant.core.cookie import CookieJar, cookie_mac
from warrant.core.errors import WarrantError
from warrant.core.mac import header_mac, seal
from warrant.core.ratelimit import TokenBucket
from warrant.core.receiver import Claim, Outcome, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import REKEY_AFTER_SEQ, Sender
from warrant.core.wire import DataPacket, InitPacket

NOW = 1_800_000_000.0
PORT = 8443
SRC = ("10.0.0.1", 40000)
ANCHOR, HOLDER, RECV = (keys.from_seed(bytes([i]) * 32) for i in (11, 12, 13))


def policy(**limits: int) -> Policy:
    trust = TrustStore()
    trust.add(Anchor("acme.prod", bytes(ANCHOR.verify_key)))
    doc = {"anchors": trust.to_mapping(), "default": "allow"}
    if limits:
        doc["limits"] = limits
    return Policy.from_text(json.dumps(doc))


def setup(rate: int | None = None, service: str = "*", **limits: int) -> tuple[Receiver, Sender]:
    grant = Grant(operations=("orders.*",), destinations=(Destination(service, PORT, PORT),),
                  expires=int(NOW) + 3600, rate=rate)  # fmt: skip
    cred = credential.issue(ANCHOR, "acme.prod", bytes(HOLDER.verify_key), grant)
    rx = Receiver(RECV, policy(**limits), started_at=NOW - 10)
    tx = Sender(
        HOLDER, cred.encode(), bytes(RECV.verify_key), Claim("orders.write", "orders", PORT)
    )
    return rx, tx


def judge(rx: Receiver, packet: bytes, now: float = NOW) -> Outcome:
    return rx.handle(packet, SRC, PORT, now)


def opened(rx: Receiver, tx: Sender, now: float = NOW) -> None:
    out = judge(rx, tx.open(None, now), now)
    assert (out.verdict, out.reason) == (Verdict.ADMIT, Reason.OK), out.detail


def data(tx: Sender, seq: int, payload: bytes) -> bytes:
    """A DATA packet at any seq, as a holder of the session keys can make it."""
    assert tx.session_id is not None
    mac = header_mac(tx._mac_key, DataPacket.mac_input(tx.session_id, seq))
    return DataPacket(tx.session_id, seq, mac, (), seal(tx._aead_key, seq, payload)).encode()


def corrupt(packet: bytes) -> bytes:
    return packet[:-1] + bytes([packet[-1] ^ 1])


# ---- 1. the rate is spent only by authenticated payloads -------------------------------------
def test_corrupted_copies_of_a_captured_packet_do_not_drain_the_rate() -> None:
    rx, tx = setup(rate=2)
    opened(rx, tx)
    assert judge(rx, tx.seal(b"1")).reason == Reason.OK
    assert judge(rx, tx.seal(b"2")).reason == Reason.OK
    captured = tx.seal(b"3")
    assert judge(rx, captured).reason == Reason.RATE_LIMITED
    later = NOW + 1  # the bucket is full again (burst 2)
    for _ in range(50):  # an attacker resends captured headers with garbage payloads:
        # the rate-limited packet was authentic, so recorded: a REPLAY before any AEAD;
        assert judge(rx, corrupt(captured), later).reason == Reason.REPLAY
        # a packet not yet received (the attacker overtakes it): its payload fails first.
        assert judge(rx, corrupt(tx.seal(b"fresh")), later).reason == Reason.BAD_PAYLOAD_AUTH
    assert judge(rx, captured, later).reason == Reason.REPLAY
    # The genuine sender's next packets still find the whole allowance.
    assert [judge(rx, tx.seal(b"g"), later).reason for _ in range(3)] == [
        Reason.OK,
        Reason.OK,
        Reason.RATE_LIMITED,
    ]


def test_a_bad_payload_is_not_recorded_so_the_genuine_packet_still_passes() -> None:
    rx, tx = setup()
    opened(rx, tx)
    genuine = tx.seal(b"payload")
    assert judge(rx, corrupt(genuine)).reason == Reason.BAD_PAYLOAD_AUTH
    out = judge(rx, genuine)
    assert (out.reason, out.payload) == (Reason.OK, b"payload")
    assert judge(rx, genuine).reason == Reason.REPLAY


# ---- 3. the sequence limit --------------------------------------------------------------------
def test_a_key_holder_jumping_to_2_64_minus_1_cannot_lock_the_session() -> None:
    rx, tx = setup()
    opened(rx, tx)
    assert judge(rx, data(tx, 1, b"a")).reason == Reason.OK
    for seq in (2**64 - 1, 2**64 - 2, SEQ_LIMIT):
        out = judge(rx, data(tx, seq, b"lock"))
        assert (out.verdict, out.reason) == (Verdict.DROP, Reason.SEQ_EXHAUSTED)
        assert out.reply is None
    # Nothing moved: the session's genuine packets are still admitted, in order.
    for seq in (2, 3, 4100):
        assert judge(rx, data(tx, seq, b"g")).reason == Reason.OK
    assert judge(rx, data(tx, SEQ_LIMIT - 1, b"last")).reason == Reason.OK


def test_the_kernel_share_refuses_the_limit_after_the_mac() -> None:
    rx, tx = setup()
    opened(rx, tx)
    reason, _, _ = rx.check_data_header(data(tx, SEQ_LIMIT, b"x"), PORT, NOW)
    assert reason == Reason.SEQ_EXHAUSTED
    forged = bytearray(data(tx, SEQ_LIMIT, b"x"))
    forged[20] ^= 1  # a bad MAC is still BAD_MAC: the limit is judged at step 7
    assert rx.check_data_header(bytes(forged), PORT, NOW)[0] == Reason.BAD_MAC


def test_the_sender_never_seals_at_the_limit_and_rekeys_long_before() -> None:
    _, tx = setup()
    tx.open(None, NOW)
    tx._seq = SEQ_LIMIT - 2
    assert DataPacket.decode(tx.seal(b"x")).seq == SEQ_LIMIT - 1
    with pytest.raises(WarrantError) as exc:
        tx.seal(b"y")
    assert exc.value.reason == Reason.SEQ_EXHAUSTED
    tx._seq = REKEY_AFTER_SEQ - 1
    assert tx.send(b"z", NOW + 1)[1] == Kind.DATA  # seq REKEY_AFTER_SEQ itself is sealed
    assert tx.send(b"z", NOW + 1)[1] == Kind.INIT  # then a fresh session
    assert tx._seq == 0


# ---- 4. a present cookie MAC is always checked ------------------------------------------------
def test_random_cookie_bytes_are_refused_off_load_and_the_sender_recovers() -> None:
    rx, tx = setup()
    assert not rx.under_load(NOW)
    init = InitPacket.decode(tx.open(b"hello", NOW))
    forged = dataclasses.replace(init, cookie_mac=bytes(range(16)), raw=b"").encode()
    out = judge(rx, forged)
    assert (out.verdict, out.reason) == (Verdict.DROP, Reason.BAD_COOKIE)
    assert out.reply is not None and out.reply[1] == Kind.COOKIE
    # The COOKIE reply gives the sender a valid cookie: its resent INIT is admitted.
    again = tx.handle(out.reply, NOW)
    assert again is not None and again[3] == 1
    out = judge(rx, again)
    assert (out.verdict, out.reason, out.payload) == (Verdict.ADMIT, Reason.OK, b"hello")


# ---- 5. the claim's service -------------------------------------------------------------------
BAD_SERVICES = [
    "orders\nADMIT 10.0.0.9:1 scope=acme.prod",
    "orders\r",
    "orders\x1b[31m",
    "Orders",
    "orders svc",
    "*",
    "",
    "-orders",
    "ordérs",
    "a" * 64,
]


@pytest.mark.parametrize("service", BAD_SERVICES)
def test_claim_service_outside_the_grammar_is_malformed(service: str) -> None:
    raw = cbor2.dumps(["orders.write", service, PORT], canonical=True)
    with pytest.raises(WarrantError) as exc:
        Claim.decode(raw)
    assert exc.value.reason == Reason.MALFORMED
    # And through the receiver, with a credential granting every service.
    rx, _ = setup(service="*")
    tx = Sender(
        HOLDER, _any_service_cred(), bytes(RECV.verify_key), Claim("orders.write", service, PORT)
    )
    out = judge(rx, tx.open(b"x", NOW))
    assert (out.verdict, out.reason) == (Verdict.DROP, Reason.MALFORMED)


@pytest.mark.parametrize("service", ["orders", "a", "web-1.prod", "0", "a" * 63])
def test_claim_service_names_are_admitted(service: str) -> None:
    raw = Claim("orders.write", service, PORT).encode()
    assert Claim.decode(raw).service == service
    rx, _ = setup(service="*")
    tx = Sender(
        HOLDER, _any_service_cred(), bytes(RECV.verify_key), Claim("orders.write", service, PORT)
    )
    assert judge(rx, tx.open(b"x", NOW)).reason == Reason.OK


def _any_service_cred() -> bytes:
    grant = Grant(operations=("orders.*",), destinations=(Destination("*", PORT, PORT),),
                  expires=int(NOW) + 3600)  # fmt: skip
    return credential.issue(ANCHOR, "acme.prod", bytes(HOLDER.verify_key), grant).encode()


# ---- 9. boundaries the unit tests left to chance ----------------------------------------------
def _ended_session(rx: Receiver, stamp: float, now: float) -> tuple[bytes, bytes]:
    """An INIT stamped `stamp` admitted at `now`, its session ended at once: (INIT, sid)."""
    _, tx = setup()
    init = tx.open(b"once", stamp)
    out = judge(rx, init, now)
    assert out.reason == Reason.OK and out.session_id is not None
    rx.sessions.remove(out.session_id, now)
    return init, out.session_id


def _purge_at(rx: Receiver, now: float) -> None:
    """End another session at `now`: ending one purges stale tombstones."""
    _, other = _ended_session(rx, now, now)
    assert other


@pytest.mark.parametrize("clock_ahead", [0.0, CLOCK_SKEW])
def test_a_replayed_init_meets_its_tombstone_as_long_as_it_is_fresh(clock_ahead: float) -> None:
    """The INIT is fresh up to and including stamp + INIT_MAX_AGE + CLOCK_SKEW; its stamp
    may be CLOCK_SKEW ahead of the receiver.  Its tombstone must last that long."""
    rx, _ = setup()
    stamp = NOW + clock_ahead
    init, _ = _ended_session(rx, stamp, NOW)
    last_fresh = stamp + INIT_MAX_AGE + CLOCK_SKEW
    for t in (NOW + INIT_MAX_AGE + 0.5, last_fresh - 0.001, last_fresh):
        _purge_at(rx, t)
        out = judge(rx, init, t)
        assert (out.verdict, out.reason) == (Verdict.DROP, Reason.REPLAY), (t - NOW, out)
    _purge_at(rx, last_fresh + 0.001)
    assert judge(rx, init, last_fresh + 0.001).reason == Reason.TOO_OLD


def test_token_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=5.0, burst=3.0, now=0.0)
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(1000.19)  # 0.95 of a token
    assert bucket.take(1000.2)  # exactly one refilled
    assert not bucket.take(1000.2)


def test_a_session_rate_bursts_to_its_rate_after_idling() -> None:
    rx, tx = setup(rate=3)
    opened(rx, tx)
    idle = NOW + 500  # 500 s of refill would be 1500 tokens without the cap
    assert [judge(rx, tx.seal(b"x"), idle).reason for _ in range(4)] == [Reason.OK] * 3 + [
        Reason.RATE_LIMITED
    ]


def test_a_cookie_lives_through_the_next_epoch_and_no_longer() -> None:
    addr, region = ("10.0.0.1", 40000), b"the INIT's cookie region"
    draws = iter(bytes([i]) * 32 for i in range(1, 100))
    jar = CookieJar(b"\x07" * 32, lambda n: next(draws)[:n])
    epoch = COOKIE_SECRET_LIFETIME
    made_at = 100 * epoch + 5  # epoch N = 100
    mac = cookie_mac(jar.cookie(addr, made_at), region)
    assert jar.check(addr, region, mac, made_at) == Reason.OK
    assert jar.check(addr, region, mac, 101 * epoch) == Reason.OK  # N + 1, first instant
    assert jar.check(addr, region, mac, 102 * epoch - 0.001) == Reason.OK  # N + 1, last
    assert jar.check(addr, region, mac, 102 * epoch) == Reason.BAD_COOKIE  # N + 2


def test_a_cookie_does_not_survive_a_gap_of_two_epochs() -> None:
    addr, region = ("10.0.0.1", 40000), b"region"
    draws = iter(bytes([i]) * 32 for i in range(1, 100))
    jar = CookieJar(b"\x07" * 32, lambda n: next(draws)[:n])
    epoch = COOKIE_SECRET_LIFETIME
    mac = cookie_mac(jar.cookie(addr, 100 * epoch + 5), region)
    # Nothing happened during epoch 101: at 102 both secrets must be new.
    assert jar.check(addr, region, mac, 102 * epoch + 5) == Reason.BAD_COOKIE
    fresh = cookie_mac(jar.cookie(addr, 102 * epoch + 5), region)
    assert jar.check(addr, region, fresh, 102 * epoch + 6) == Reason.OK
    # A cookie from the previous epoch's secret: accepted once, in the epoch after.
    assert jar.check(addr, region, fresh, 103 * epoch) == Reason.OK
    assert jar.check(addr, region, fresh, 104 * epoch) == Reason.BAD_COOKIE
