"""Token buckets keyed by anything, with time as a parameter (no clocks inside)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def take(self, now: float, cost: float = 1.0) -> bool:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class KeyedLimiter:
    """One bucket per key, bounded by evicting the least recently used keys."""

    def __init__(self, rate: float, burst: float, max_keys: int = 65536) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)


class RateMeter:
    """Events per second over a sliding one-second window (two half-buckets)."""

    def __init__(self) -> None:
        self._slot = 0
        self._counts = [0, 0]

    def add(self, now: float) -> None:
        self._advance(now)
        self._counts[self._slot % 2] += 1

    def rate(self, now: float) -> float:
        self._advance(now)
        return float(self._counts[0] + self._counts[1])

    def _advance(self, now: float) -> None:
        slot = int(now * 2)
        if slot != self._slot:
            if slot - self._slot >= 2:
                self._counts = [0, 0]
            else:
                self._counts[slot % 2] = 0
            self._slot = slot
