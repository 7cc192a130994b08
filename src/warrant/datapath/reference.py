"""The verdict the kernel datapath must reach for a frame, computed by the Python reference.

The kernel runs SPEC 6.1 steps 1-7 (`Receiver.check_data_header`) and records
the sequence number after step 7; around them it adds what only a datapath
needs, each stated here so that differential tests compare whole frames:

  * frame policy (`warrant.datapath.wire.parse_frame`): not Warrant traffic
    passes as NOT_WARRANT; a frame the kernel cannot read to its UDP port is
    UNPARSED_FRAME, a fragment to a Warrant port FRAGMENTED, a malformed one
    MALFORMED, several datagrams merged into one (GRO/GSO; `wire.merged`, from what
    the attach point reports) MERGED_FRAME: all dropped;
  * INIT passes to user space (PASS, OK): chains are verified there (SPEC 6.2);
  * an expired session is removed (as `Receiver._data` does);
  * the per-session bad-MAC token bucket (bpf/verdict.h) in front of step 5;
  * the REJECT the kernel sends for UNKNOWN_SESSION and SESSION_EXPIRED (bpf/reject.h),
    rate-limited per CPU: `KernelVerdict.reply` is the frame the kernel must emit.
    The kernel's bucket is per CPU, so a caller comparing replies runs every frame
    on one CPU (the differential test pins itself).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from ..core.constants import (
    DP_BAD_MAC_BURST,
    DP_BAD_MAC_REFILL,
    DP_CLOCK_TICK_SHIFT,
    DP_REJECT_BURST,
    DP_REJECT_RATE,
    Kind,
    Reason,
    Verdict,
)
from ..core.errors import WarrantError
from ..core.receiver import Receiver
from ..core.wire import RejectPacket, peek_kind
from .loader import to_kernel_ns
from .wire import merged, parse_frame, reject_frame

REJECT_REASONS = frozenset({Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED})
_REJECT_INTERVAL_NS = 1_000_000_000 // DP_REJECT_RATE

# Reasons check_data_header decides before the kernel reaches its bad-MAC bucket.
_BEFORE_BUCKET = {Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED, Reason.PORT_MISMATCH}


@dataclass
class _Bucket:
    tokens: int = DP_BAD_MAC_BURST
    tick: int = 0

    def allowed(self, tick: int) -> bool:
        if tick != self.tick:
            if tick < self.tick or tick - self.tick >= DP_BAD_MAC_BURST:
                tokens = DP_BAD_MAC_BURST
            else:
                tokens = self.tokens + (tick - self.tick) * DP_BAD_MAC_REFILL
            self.tokens, self.tick = min(tokens, DP_BAD_MAC_BURST), tick
        return self.tokens != 0

    def charge(self) -> None:
        if self.tokens:
            self.tokens -= 1


@dataclass
class RejectBucket:
    """bpf/reject.h's per-CPU GCRA: DP_REJECT_RATE per second, bursts of DP_REJECT_BURST."""

    tat: int = 0  # kernel clock ns

    def allowed(self, now_ns: int) -> bool:
        tat = max(self.tat, now_ns)
        if tat - now_ns > (DP_REJECT_BURST - 1) * _REJECT_INTERVAL_NS:
            return False
        self.tat = tat + _REJECT_INTERVAL_NS
        return True


@dataclass(frozen=True)
class KernelVerdict:
    verdict: Verdict
    reason: Reason
    kind: int = 0
    session_id: bytes = b""
    seq: int = 0
    reply: bytes | None = None  # the REJECT frame the kernel sends back, if any


class KernelReference:
    """Decides frames like bpf/warrant_xdp.c, from a Python `Receiver`'s sessions.

    The kernel clock is frozen at `now` for each decision (the loader's
    `set_time(now)`), so expiries and bucket ticks use `to_kernel_ns(now, 0)`."""

    def __init__(self, receiver: Receiver, ports: Container[int]) -> None:
        self.receiver = receiver
        self.ports = ports
        self._buckets: dict[bytes, _Bucket] = {}
        self.rejects = RejectBucket()

    def forget(self, session_id: bytes) -> None:
        """A session (re)installed into the kernel starts with a full bucket."""
        self._buckets.pop(session_id, None)

    def decide(
        self,
        frame: bytes,
        now: float,
        *,
        gso_segs: int = 1,
        gso_size: int = 0,
        mtu: int | None = None,
    ) -> KernelVerdict:
        """The kernel's verdict on `frame`.  TC reports the skb's gso_segs and gso_size;
        XDP the ingress device's `mtu` (see `wire.merged`)."""
        reason, f = parse_frame(frame, self.ports)
        if reason == Reason.NOT_WARRANT:
            return KernelVerdict(Verdict.PASS, reason)
        if f is None:
            return KernelVerdict(Verdict.DROP, reason)
        if merged(f, gso_segs, gso_size, mtu):
            return KernelVerdict(Verdict.DROP, Reason.MERGED_FRAME)
        packet = f.payload
        try:
            kind = peek_kind(packet)
        except WarrantError as exc:
            unknown_kind = exc.reason == Reason.UNKNOWN_KIND
            return KernelVerdict(Verdict.DROP, exc.reason, packet[1] if unknown_kind else 0)
        if kind == Kind.INIT:
            return KernelVerdict(Verdict.PASS, Reason.OK, kind)
        if kind != Kind.DATA:
            return KernelVerdict(Verdict.DROP, Reason.UNKNOWN_KIND, kind)
        try:
            reason, data, s = self.receiver.check_data_header(packet, f.dport, now)
        except WarrantError as exc:
            return KernelVerdict(Verdict.DROP, exc.reason, kind)
        assert data is not None
        k, sid, seq = int(kind), data.session_id, data.seq
        if reason == Reason.SESSION_EXPIRED:
            self.receiver.sessions.remove(data.session_id, now)
            self.forget(data.session_id)
        if reason not in _BEFORE_BUCKET:
            bucket = self._buckets.setdefault(data.session_id, _Bucket())
            if not bucket.allowed(to_kernel_ns(now, 0) >> DP_CLOCK_TICK_SHIFT):
                return KernelVerdict(Verdict.DROP, Reason.RATE_LIMITED, k, sid, seq)
            if reason == Reason.BAD_MAC:
                bucket.charge()
        if reason in REJECT_REASONS:
            reply = None
            if self.rejects.allowed(to_kernel_ns(now, 0)):
                assert f is not None
                reply = reject_frame(frame, f, RejectPacket(reason, sid))
            return KernelVerdict(Verdict.DROP, reason, k, sid, seq, reply)
        if reason != Reason.OK:
            return KernelVerdict(Verdict.DROP, reason, k, sid, seq)
        assert s is not None
        s.window.update(data.seq)
        return KernelVerdict(Verdict.ADMIT, Reason.OK, k, sid, seq)
