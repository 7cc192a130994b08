"""Session lifetime and rate follow the verified authority exactly."""

from __future__ import annotations

import json

from warrant.core import credential, keys
from warrant.core.admission import Policy
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import CLOCK_SKEW, Reason, Verdict
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender

NOW = 1_800_000_000.0
ANCHOR, HOLDER, RECV = (keys.from_seed(bytes([i]) * 32) for i in (1, 2, 3))


def _setup(rate: int | None = None, anchor_not_after: int | None = None) -> tuple[Receiver, Sender]:
    grant = Grant(operations=("orders.*",), destinations=(Destination("orders", 8443, 8443),),
                  expires=int(NOW) + 3600, rate=rate)  # fmt: skip
    cred = credential.issue(ANCHOR, "acme.prod", bytes(HOLDER.verify_key), grant)
    trust = TrustStore()
    trust.add(Anchor("acme.prod", bytes(ANCHOR.verify_key), None, anchor_not_after))
    policy = Policy.from_text(f"anchors: {json.dumps(trust.to_mapping())}\ndefault: allow\n")
    rx = Receiver(RECV, policy, started_at=NOW - 10)
    tx = Sender(
        HOLDER, cred.encode(), bytes(RECV.verify_key), Claim("orders.write", "orders", 8443)
    )
    return rx, tx


def test_rate_zero_admits_no_data() -> None:
    rx, tx = _setup(rate=0)
    assert rx.handle(tx.open(None, NOW), ("10.0.0.1", 1), 8443, NOW).verdict == Verdict.ADMIT
    out = rx.handle(tx.seal(b"x"), ("10.0.0.1", 1), 8443, NOW)
    assert (out.verdict, out.reason) == (Verdict.DROP, Reason.RATE_LIMITED)


def test_rate_limits_per_second() -> None:
    rx, tx = _setup(rate=5)
    rx.handle(tx.open(None, NOW), ("10.0.0.1", 1), 8443, NOW)
    verdicts = [rx.handle(tx.seal(b"x"), ("10.0.0.1", 1), 8443, NOW).reason for _ in range(8)]
    assert verdicts.count(Reason.OK) == 5 and verdicts.count(Reason.RATE_LIMITED) == 3
    assert rx.handle(tx.seal(b"x"), ("10.0.0.1", 1), 8443, NOW + 1).reason == Reason.OK


def test_anchor_expiry_ends_the_session() -> None:
    rx, tx = _setup(anchor_not_after=int(NOW) + 100)
    rx.handle(tx.open(None, NOW), ("10.0.0.1", 1), 8443, NOW)
    assert (
        rx.handle(tx.seal(b"x"), ("10.0.0.1", 1), 8443, NOW + 100 + CLOCK_SKEW - 1).reason
        == Reason.OK
    )
    late = rx.handle(tx.seal(b"x"), ("10.0.0.1", 1), 8443, NOW + 100 + CLOCK_SKEW)
    assert late.reason == Reason.SESSION_EXPIRED
