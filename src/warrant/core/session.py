"""Session soft state: what a receiver learned from a verified INIT.

Losing this table (restart, eviction) costs the sender one INIT, never a
wrong verdict: an unknown session id is refused with UNKNOWN_SESSION and a
REJECT that asks for the credential again.  Ended sessions leave a
tombstone for INIT_MAX_AGE so their INIT cannot be replayed to reopen them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .constants import CLOCK_SKEW, INIT_MAX_AGE
from .credential import VerifiedChain
from .hop import PathHop
from .ratelimit import TokenBucket
from .replay import ReplayWindow


@dataclass
class Session:
    session_id: bytes
    mac_key: bytes
    aead_key: bytes
    chain: VerifiedChain
    operation: str
    service: str
    port: int
    path: list[PathHop]
    opened: float
    expires: float
    rule: str | None = None
    window: ReplayWindow = field(default_factory=ReplayWindow)
    bucket: TokenBucket | None = None
    authority: Any = None  # receiver.Authority, computed once at opening
    packets: int = 0
    bytes: int = 0


class SessionTable:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._live: OrderedDict[bytes, Session] = OrderedDict()
        # Ended sessions' ids, oldest first: every entry lives the same time, so insertion
        # order is expiry order and purging from the front is enough.
        self._tombstones: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._live.values()))

    def get(self, sid: bytes) -> Session | None:
        return self._live.get(sid)

    def seen(self, sid: bytes) -> bool:
        return sid in self._live or sid in self._tombstones

    def add(self, session: Session, now: float) -> bool:
        if len(self._live) >= self.max_sessions:
            self.expire(now)
            if len(self._live) >= self.max_sessions:
                return False
        self._live[session.session_id] = session
        return True

    def remove(self, sid: bytes, now: float) -> None:
        if self._live.pop(sid, None) is not None:
            self._tombstones[sid] = now + INIT_MAX_AGE + CLOCK_SKEW
        self._purge(now)

    def _purge(self, now: float) -> None:
        tombs = self._tombstones
        while tombs:
            sid, until = next(iter(tombs.items()))
            if until > now:
                break
            del tombs[sid]

    def expire(self, now: float) -> list[Session]:
        ended = [s for s in self._live.values() if s.expires <= now]
        for s in ended:
            self.remove(s.session_id, now)
        self._purge(now)
        return ended

    def clear(self) -> None:
        self._live.clear()
        self._tombstones.clear()
