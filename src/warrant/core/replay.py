"""Anti-replay sliding window (RFC 6479 ring bitmap, as WireGuard uses).

A ring of 64 words of 64 bits.  A sequence number is fresh when it is newer
than anything seen, or at most REPLAY_WINDOW (4032) behind the newest and not
yet seen, and below SEQ_LIMIT.  `check` does not change state: the receiver
updates the window only after the header MAC authenticated the sequence
number, so forged packets cannot move it.
"""

from __future__ import annotations

from .constants import REPLAY_RING_BITS, REPLAY_WINDOW, REPLAY_WORD_BITS, SEQ_LIMIT, Reason

_WORDS = REPLAY_RING_BITS // REPLAY_WORD_BITS
_MASK = (1 << REPLAY_WORD_BITS) - 1


class ReplayWindow:
    __slots__ = ("top", "words")

    def __init__(self) -> None:
        self.top = -1  # newest sequence number accepted; -1 before the first
        self.words = [0] * _WORDS

    def check(self, seq: int) -> Reason:
        if seq >= SEQ_LIMIT:  # so top never reaches 2**64 - 1, past which nothing is fresh
            return Reason.SEQ_EXHAUSTED
        if seq > self.top:
            return Reason.OK
        if self.top - seq >= REPLAY_WINDOW:
            return Reason.TOO_OLD
        word = self.words[(seq >> 6) % _WORDS]
        return Reason.REPLAY if word >> (seq & 63) & 1 else Reason.OK

    def update(self, seq: int) -> Reason:
        """Check and, when fresh, record `seq`."""
        verdict = self.check(seq)
        if verdict != Reason.OK:
            return verdict
        index = seq >> 6
        if seq > self.top:
            current = self.top >> 6 if self.top >= 0 else -1
            for i in range(1, min(index - current, _WORDS) + 1):
                self.words[(current + i) % _WORDS] = 0
            self.top = seq
        self.words[index % _WORDS] |= 1 << (seq & 63)
        self.words[index % _WORDS] &= _MASK
        return Reason.OK
