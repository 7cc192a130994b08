"""Stateful tests (hypothesis RuleBasedStateMachine) against simple models.

* Sessions, through the public Sender/Receiver API: open, send, replay, time
  passing (expiry), revocation, receiver restart (all soft state lost) and
  recovery.  Safety: a DATA packet is admitted only on a session the model
  holds live, at most once per (session, sequence number), with the payload
  sent; nothing replayed is ever admitted; a revoked holder opens nothing.
  Liveness: a fresh packet on a live session is admitted; after a restart or
  expiry the sender recovers with exactly one INIT (answering the REJECT).
* The replay window against a set of seen sequence numbers and the window
  bound (SPEC 6.3), reason for reason.
* Cookies: a cookie made in epoch e is accepted in epochs e and e+1 only, for
  its own address only; under load an INIT without a valid cookie MAC is never
  admitted and a sender that answers the COOKIE reply is; a cookie MAC of
  random bytes is refused whether or not the receiver is under load.

Runtime is bounded (max_examples x stateful_step_count); together well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

import nacl.signing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from warrant.core import credential, keys
from warrant.core.admission import Policy
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import (
    COOKIE_SECRET_LIFETIME,
    REPLAY_WINDOW,
    SEQ_LIMIT,
    SESSION_MAX_LIFETIME,
    Kind,
    Reason,
    Verdict,
)
from warrant.core.cookie import CookieJar, cookie_mac
from warrant.core.receiver import Claim, Receiver
from warrant.core.replay import ReplayWindow
from warrant.core.revocation import RevocationList, RevocationStore
from warrant.core.rights import Destination, Grant
from warrant.core.sender import REOPEN_INTERVAL, Sender
from warrant.core.wire import InitPacket, peek_kind

CI = bool(os.environ.get("CI"))
NOW = 1_800_000_000.0
PORT = 8443
ANCHOR = keys.from_seed(b"\x01" * 32)
RECV = keys.from_seed(b"\x03" * 32)
HOLDERS = {name: keys.from_seed(bytes([0x10 + i]) * 32) for i, name in enumerate("ab")}
SOURCES = {name: (f"10.0.0.{i + 1}", 40000 + i) for i, name in enumerate("ab")}


def _policy(load_threshold: float = 1e9) -> Policy:
    trust = TrustStore()
    trust.add(Anchor("acme.prod", bytes(ANCHOR.verify_key)))
    doc = {
        "anchors": trust.to_mapping(),
        "default": "allow",
        "limits": {
            "init_rate_per_source": 1000,
            "init_burst": 1000,
            "load_threshold": load_threshold,
        },
    }
    return Policy.from_text(json.dumps(doc))


def _credential(holder: nacl.signing.SigningKey) -> bytes:
    grant = Grant(
        operations=("orders.*",),
        destinations=(Destination("orders", PORT, PORT),),
        expires=int(NOW) + 10 * 86400,
    )
    return credential.issue(ANCHOR, "acme.prod", bytes(holder.verify_key), grant).encode()


CREDS = {name: _credential(key) for name, key in HOLDERS.items()}


def _sender(name: str, salt: int) -> Sender:
    counter = [0]

    def random(n: int) -> bytes:  # deterministic: hypothesis must be able to replay a run
        counter[0] += 1
        return hashlib.shake_256(f"{name}/{salt}/{counter[0]}".encode()).digest(n)

    return Sender(
        HOLDERS[name],
        CREDS[name],
        bytes(RECV.verify_key),
        Claim("orders.write", "orders", PORT),
        random=random,
    )


def _rx_random(salt: int) -> Callable[[int], bytes]:
    counter = [0]

    def random(n: int) -> bytes:
        counter[0] += 1
        return hashlib.shake_256(f"rx/{salt}/{counter[0]}".encode()).digest(n)

    return random


class SessionMachine(RuleBasedStateMachine):
    """One receiver, two holders; the model is which session id each holder has live."""

    @initialize()
    def setup(self) -> None:
        self.now = NOW
        self.restarts = 0
        self.policy = _policy()
        self.revocations = RevocationStore()
        self.serial = 0
        self.revoked: set[str] = set()
        self.rx = self._receiver()
        self.tx = {name: _sender(name, 0) for name in HOLDERS}
        self.live: dict[str, tuple[bytes, float] | None] = dict.fromkeys(HOLDERS)
        self.sent: list[bytes] = []
        self.admitted: set[tuple[bytes, int]] = set()
        self.last_reopen: dict[str, float] = dict.fromkeys(HOLDERS, float("-inf"))

    def _receiver(self) -> Receiver:
        return Receiver(
            RECV,
            self.policy,
            started_at=self.now,
            revocations=self.revocations,
            random=_rx_random(self.restarts),
        )

    def _alive(self, name: str) -> bool:
        entry = self.live[name]
        return entry is not None and self.now < entry[1] + SESSION_MAX_LIFETIME

    def _handle(self, name: str, packet: bytes) -> Verdict:
        out = self.rx.handle(packet, SOURCES[name], PORT, self.now)
        if out.verdict == Verdict.ADMIT and peek_kind(packet) == Kind.DATA:
            key = (out.session_id, out.seq)
            assert key not in self.admitted, f"admitted twice: {key}"
            self.admitted.add(key)  # type: ignore[arg-type]
        self.last = out
        return out.verdict

    @rule(name=st.sampled_from(sorted(HOLDERS)))
    def open(self, name: str) -> None:
        init = self.tx[name].open(None, self.now)
        self.sent.append(init)
        verdict = self._handle(name, init)
        if name in self.revoked:
            assert (verdict, self.last.reason) == (Verdict.DROP, Reason.REVOKED)
            return
        assert verdict == Verdict.ADMIT, self.last
        self.live[name] = (self.tx[name].session_id, self.now)  # type: ignore[assignment]

    @precondition(lambda self: any(t.session_id for t in self.tx.values()))
    @rule(name=st.sampled_from(sorted(HOLDERS)), payload=st.binary(max_size=16))
    def send(self, name: str, payload: bytes) -> None:
        tx = self.tx[name]
        if tx.session_id is None:
            return
        packet = tx.seal(payload)
        self.sent.append(packet)
        live = self._alive(name) and self.live[name][0] == tx.session_id  # type: ignore[index]
        verdict = self._handle(name, packet)
        if live:
            assert verdict == Verdict.ADMIT and self.last.payload == payload, self.last
            return
        assert verdict == Verdict.DROP, self.last
        if name in self.revoked or self.last.reply is None:
            return
        # The session is gone (restart, expiry): the REJECT costs the sender one INIT.
        again = tx.handle(self.last.reply, self.now)
        if self.now - self.last_reopen[name] < REOPEN_INTERVAL:
            assert again is None
            return
        assert again is not None and peek_kind(again) == Kind.INIT
        self.last_reopen[name] = self.now
        self.sent.append(again)
        assert self._handle(name, again) == Verdict.ADMIT, self.last
        self.live[name] = (tx.session_id, self.now)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        packet = data.draw(st.sampled_from(self.sent))
        name = data.draw(st.sampled_from(sorted(HOLDERS)))
        assert self._handle(name, packet) == Verdict.DROP, self.last

    @rule(dt=st.sampled_from([0.25, 1.5, 45.0, SESSION_MAX_LIFETIME + 1.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(name=st.sampled_from(sorted(HOLDERS)))
    def revoke(self, name: str) -> None:
        self.revoked.add(name)
        self.serial += 1
        rl = RevocationList.sign(
            ANCHOR,
            "acme.prod",
            self.serial,
            revoked_keys=[bytes(HOLDERS[n].verify_key) for n in sorted(self.revoked)],
        )
        assert self.revocations.load(rl, self.policy.trust)
        ended = self.rx.revoke(self.revocations, self.now)
        revoked_keys = {bytes(HOLDERS[n].verify_key) for n in self.revoked}
        assert all(s.holder in revoked_keys for s in ended)
        self.live[name] = None

    @rule()
    def restart(self) -> None:
        """The receiver process restarts: every session and cookie secret is gone.

        A restart takes time (a second here): INITs sent before it are stamped before
        `started_at`; one stamped in the very millisecond the new process starts would pass."""
        self.restarts += 1
        self.now += 1.0
        self.rx = self._receiver()
        self.live = dict.fromkeys(HOLDERS)

    @invariant()
    def table_matches_model(self) -> None:
        if not hasattr(self, "rx"):
            return
        live_ids = {s.session_id for s in self.rx.sessions}
        for name, entry in self.live.items():
            if entry is not None and self._alive(name):
                assert entry[0] in live_ids, name
            if name in self.revoked:
                holder = bytes(HOLDERS[name].verify_key)
                assert not any(s.holder == holder for s in self.rx.sessions)


TestSessions = SessionMachine.TestCase
TestSessions.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---- replay window -------------------------------------------------------------------
class ReplayMachine(RuleBasedStateMachine):
    """ReplayWindow against the set model of SPEC 6.3."""

    def __init__(self) -> None:
        super().__init__()
        self.window = ReplayWindow()
        self.seen: set[int] = set()
        self.top = -1

    def expected(self, seq: int) -> Reason:
        if seq >= SEQ_LIMIT:
            return Reason.SEQ_EXHAUSTED
        if seq > self.top:
            return Reason.OK
        if self.top - seq >= REPLAY_WINDOW:
            return Reason.TOO_OLD
        return Reason.REPLAY if seq in self.seen else Reason.OK

    def _seq(self, data: st.DataObject) -> int:
        base = max(self.top, 0)
        return data.draw(
            st.one_of(
                st.integers(max(0, base - REPLAY_WINDOW - 70), base + 70),
                st.integers(base, base + 5 * 4096),
                st.sampled_from(sorted(self.seen) or [0]),
                st.integers(SEQ_LIMIT - 3, SEQ_LIMIT + 3),
                st.integers(0, 2**64 - 1),
            )
        )

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        seq = self._seq(data)
        want = self.expected(seq)
        assert self.window.check(seq) == want, seq
        assert self.window.update(seq) == want, seq
        if want == Reason.OK:
            self.seen.add(seq)
            self.top = max(self.top, seq)

    @rule(data=st.data())
    def check_only(self, data: st.DataObject) -> None:
        seq = self._seq(data)
        assert self.window.check(seq) == self.expected(seq), seq

    @invariant()
    def top_matches(self) -> None:
        assert self.window.top == self.top


TestReplayWindow = ReplayMachine.TestCase
TestReplayWindow.settings = settings(
    max_examples=60, stateful_step_count=60, deadline=None, derandomize=CI
)


# ---- cookies -------------------------------------------------------------------------
ADDRS = [("10.1.0.1", 1000), ("10.1.0.2", 1000), ("10.1.0.1", 1001)]


class CookieMachine(RuleBasedStateMachine):
    """CookieJar epochs, and a Receiver switched between load and no load."""

    @initialize()
    def setup(self) -> None:
        self.now = NOW + 7.0
        self.jar = CookieJar(bytes(RECV.verify_key), _rx_random(99))
        self.issued: list[tuple[tuple[str, int], bytes, int]] = []
        self.loaded = False
        self.rx = Receiver(RECV, _policy(), started_at=NOW, random=_rx_random(7))
        self.salt = 0

    def epoch(self) -> int:
        return int(self.now // COOKIE_SECRET_LIFETIME)

    @rule(dt=st.sampled_from([1.0, 30.0, COOKIE_SECRET_LIFETIME, 2.5 * COOKIE_SECRET_LIFETIME]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(addr=st.sampled_from(ADDRS))
    def issue(self, addr: tuple[str, int]) -> None:
        self.issued.append((addr, self.jar.cookie(addr, self.now), self.epoch()))

    @precondition(lambda self: bool(self.issued))
    @rule(data=st.data(), region=st.binary(min_size=1, max_size=32))
    def check(self, data: st.DataObject, region: bytes) -> None:
        addr, cookie, made = data.draw(st.sampled_from(self.issued))
        at = data.draw(st.sampled_from(ADDRS))
        got = self.jar.check(at, region, cookie_mac(cookie, region), self.now)
        fresh = self.epoch() - made in (0, 1) and at == addr
        assert got == (Reason.OK if fresh else Reason.BAD_COOKIE), (addr, at, made, self.epoch())

    @rule(on=st.booleans())
    def load(self, on: bool) -> None:
        self.loaded = on
        self.rx.set_policy(_policy(load_threshold=0.001 if on else 1e9), self.now)

    @rule(name=st.sampled_from(sorted(HOLDERS)), answer=st.booleans())
    def open(self, name: str, answer: bool) -> None:
        self.salt += 1
        tx = _sender(name, 1000 + self.salt)
        out = self.rx.handle(tx.open(None, self.now), SOURCES[name], PORT, self.now)
        if not self.loaded:
            assert out.verdict == Verdict.ADMIT, out
            return
        assert (out.verdict, out.reason) == (Verdict.DROP, Reason.COOKIE_REQUIRED), out
        assert out.reply is not None and peek_kind(out.reply) == Kind.COOKIE
        if answer:
            retry = tx.handle(out.reply, self.now)
            assert retry is not None
            assert self.rx.handle(retry, SOURCES[name], PORT, self.now).verdict == Verdict.ADMIT

    @rule(name=st.sampled_from(sorted(HOLDERS)), junk=st.binary(min_size=16, max_size=16))
    def random_cookie(self, name: str, junk: bytes) -> None:
        """An INIT whose cookie MAC is random bytes: refused, loaded or not (issue 13)."""
        self.salt += 1
        tx = _sender(name, 5000 + self.salt)
        init = InitPacket.decode(tx.open(None, self.now))
        forged = InitPacket(
            init.session_id, init.receiver_id, init.timestamp_ms, init.eph_public,
            init.next_hop, init.credential, init.claim, init.holder_sig, init.ciphertext,
            cookie_mac=junk,
        )  # fmt: skip
        out = self.rx.handle(forged.encode(), SOURCES[name], PORT, self.now)
        assert (out.verdict, out.reason) == (Verdict.DROP, Reason.BAD_COOKIE), out


TestCookies = CookieMachine.TestCase
TestCookies.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.too_slow],
)
