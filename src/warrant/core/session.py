"""Session soft state: what a receiver learned from a verified INIT.

Losing this state (restart, eviction) costs the sender one INIT, never a
wrong verdict: an unknown session id is refused with UNKNOWN_SESSION and a
REJECT that asks for the credential again.  Ended sessions leave a
tombstone for INIT_MAX_AGE so their INIT cannot be replayed to reopen them.

`SessionStore` is the one interface the receiver keeps sessions through:
install (`add`), lookup (`get`, `seen`), `refresh`, `remove`, `expire`, and
`end_where` (revocation and policy re-evaluation).  Two backends implement it:
`SessionTable` here (memory: the Python receiver judges DATA) and
`warrant.datapath.kernel_store.KernelSessionStore` (the pinned kernel maps are
the truth and the kernel judges DATA).  Both share `SessionIndex`, so the
admission of a session into a full table (SPEC 8.1) is decided by one piece of
code:

- a holder (the chain's final holder key) has at most `holder_quota` live
  sessions; its next opening is refused with SESSION_TABLE_FULL;
- when the whole table is full, an opening by a holder under its quota evicts
  the oldest session of the holder with the most sessions (ties: the holder
  that reached that count first), so a flood by one holder costs only that
  holder its sessions;
- tombstones are bounded by the table's capacity: when one must go before its
  time, the opening floor rises to its INIT's timestamp, and openings stamped
  at or before the floor are refused TOO_OLD (its INIT can never come back).
"""

from __future__ import annotations

import builtins
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .constants import CLOCK_SKEW, INIT_MAX_AGE, Reason
from .credential import VerifiedChain
from .hop import PathHop
from .ratelimit import TokenBucket
from .replay import ReplayWindow

HOLDER_QUOTA_MIN = 16
HOLDER_QUOTA_SHARE = 64  # default quota: a 64th of the table, at least HOLDER_QUOTA_MIN


def default_holder_quota(capacity: int, configured: int | None = None) -> int:
    """The per-holder quota of a table of `capacity` sessions (never above the capacity)."""
    quota = configured if configured is not None else max(HOLDER_QUOTA_MIN,
                                                          capacity // HOLDER_QUOTA_SHARE)  # fmt: skip
    return max(1, min(quota, capacity))


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
    stamp: float  # the INIT's timestamp (seconds): raises the opening floor if evicted early
    rule: str | None = None
    # The INIT's credential bytes: the kernel store keeps them so that a restarted agent
    # verifies the chain again before it resumes the session.
    credential: bytes = b""
    # With the memory backend the receiver's window; with the kernel backend the window
    # at opening, converted into the kernel map at install (the kernel's is the live one).
    window: ReplayWindow = field(default_factory=ReplayWindow)
    bucket: TokenBucket | None = None
    authority: Any = None  # receiver.Authority, computed once at opening
    packets: int = 0
    bytes: int = 0

    @property
    def holder(self) -> builtins.bytes:  # `bytes` is a field name here
        return self.chain.holder


class SessionStore(Protocol):
    """Where a receiver's sessions live (see the module docstring)."""

    capacity: int
    holder_quota: int
    # True when DATA is judged in front of the receiver (the kernel): the stored window
    # is then not the live one and the Python receiver must not judge DATA itself.
    kernel_judged: bool

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Session]: ...
    def get(self, sid: bytes) -> Session | None: ...
    def admitted(self, sid: bytes) -> Session | None: ...
    def seen(self, sid: bytes) -> bool: ...
    def opening_floor(self) -> float: ...
    def holder_count(self, holder: bytes) -> int: ...
    def add(self, session: Session, now: float) -> Reason: ...
    def refresh(self, session: Session) -> None: ...
    def remove(self, sid: bytes, now: float) -> None: ...
    def expire(self, now: float) -> list[Session]: ...
    def end_where(self, ended: Callable[[Session], bool], now: float) -> list[Session]: ...
    def set_holder_quota(self, quota: int | None) -> None: ...
    def clear(self) -> None: ...


class SessionIndex:
    """Live sessions by id and by holder, tombstones, and the full-table policy.

    Every operation is O(1) or O(log n) except `end_where` (a pass over live sessions):
    holders are bucketed by their session count, so the holder with the most sessions
    is found without a scan, and a heap orders sessions by expiry, so `due` touches only
    the sessions it ends (removed or rescheduled sessions leave stale heap entries,
    skipped when popped and compacted away when they outnumber the live ones)."""

    def __init__(self, capacity: int, holder_quota: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("a session table holds at least one session")
        self.capacity = capacity
        self.holder_quota = default_holder_quota(capacity, holder_quota)
        self.live: dict[bytes, Session] = {}  # insertion order is opening order
        self._by_holder: dict[bytes, dict[bytes, None]] = {}  # holder -> its sids, oldest first
        self._with_count: dict[int, dict[bytes, None]] = {}  # n -> holders with n sessions
        self._top = 0  # the largest session count of any holder
        # Ended sessions' ids -> (until, INIT stamp), oldest first: every entry lives the
        # same time, so insertion order is expiry order and purging from the front is enough.
        self._tombstones: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self.floor = float("-inf")
        self._expiry: list[tuple[float, bytes]] = []  # (expires, sid), a heap

    # ---- lookups ---------------------------------------------------------------------------
    def seen(self, sid: bytes) -> bool:
        return sid in self.live or sid in self._tombstones

    def holder_count(self, holder: bytes) -> int:
        return len(self._by_holder.get(holder, ()))

    def holders(self) -> int:
        return len(self._by_holder)

    def tombstones(self) -> int:
        return len(self._tombstones)

    # ---- admission into a full table (SPEC 8.1) ---------------------------------------------
    def admit(self, session: Session) -> tuple[Reason, Session | None]:
        """OK and the session to evict first (or None), or SESSION_TABLE_FULL."""
        if self.holder_count(session.holder) >= self.holder_quota:
            return Reason.SESSION_TABLE_FULL, None
        if len(self.live) < self.capacity:
            return Reason.OK, None
        largest = next(iter(self._with_count[self._top]))
        return Reason.OK, self.live[next(iter(self._by_holder[largest]))]

    def insert(self, session: Session) -> None:
        sid, holder = session.session_id, session.holder
        self.live[sid] = session
        self.reschedule(session)
        sids = self._by_holder.setdefault(holder, {})
        self._move(holder, len(sids), len(sids) + 1)
        sids[sid] = None

    def delete(self, sid: bytes, now: float) -> Session | None:
        """Forget a live session and leave its tombstone; the session, or None."""
        s = self.live.pop(sid, None)
        if s is None:
            return None
        sids = self._by_holder[s.holder]
        del sids[sid]
        self._move(s.holder, len(sids) + 1, len(sids))
        if not sids:
            del self._by_holder[s.holder]
        # Its INIT stays fresh until stamp + INIT_MAX_AGE + CLOCK_SKEW (inclusive), and the
        # stamp may lie up to CLOCK_SKEW after the opening, which is no later than now.
        self._tombstones[sid] = (now + INIT_MAX_AGE + 2 * CLOCK_SKEW, s.stamp)
        self.purge(now)
        return s

    def reschedule(self, session: Session) -> None:
        """Order the session by its (new) expiry."""
        heapq.heappush(self._expiry, (session.expires, session.session_id))
        if len(self._expiry) > 2 * len(self.live) + 64:
            self._expiry = [(s.expires, sid) for sid, s in self.live.items()]
            heapq.heapify(self._expiry)

    def due(self, now: float) -> list[Session]:
        """The live sessions whose lifetime is over (each once), taken off the heap."""
        out: dict[bytes, Session] = {}
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires, sid = heapq.heappop(heap)
            s = self.live.get(sid)
            if s is not None and s.expires == expires:
                out[sid] = s
        return list(out.values())

    def _move(self, holder: bytes, old: int, new: int) -> None:
        if old:
            bucket = self._with_count[old]
            del bucket[holder]
            if not bucket:
                del self._with_count[old]
        if new:
            self._with_count.setdefault(new, {})[holder] = None
        self._top = max(self._top, new)
        while self._top and self._top not in self._with_count:
            self._top -= 1

    def purge(self, now: float) -> None:
        """Drop tombstones whose INIT can no longer be fresh, and any beyond the capacity
        (raising the opening floor past their INIT)."""
        tombs = self._tombstones
        while tombs:
            sid, (until, stamp) = next(iter(tombs.items()))
            if until >= now and len(tombs) <= self.capacity:
                break
            del tombs[sid]
            if until >= now:
                self.floor = max(self.floor, stamp)

    def clear(self) -> None:
        self.live.clear()
        self._by_holder.clear()
        self._with_count.clear()
        self._top = 0
        self._tombstones.clear()
        self._expiry.clear()


class SessionTable(SessionIndex):
    """The memory backend: the receiver's own table (the Python receiver judges DATA)."""

    kernel_judged = False

    def __len__(self) -> int:
        return len(self.live)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self.live.values()))

    def get(self, sid: bytes) -> Session | None:
        return self.live.get(sid)

    def admitted(self, sid: bytes) -> Session | None:
        return self.live.get(sid)

    def opening_floor(self) -> float:
        return self.floor

    def add(self, session: Session, now: float) -> Reason:
        reason, victim = self.admit(session)
        if reason is not Reason.OK or victim is not None:
            self.expire(now)  # ended sessions make room before anyone is evicted
            reason, victim = self.admit(session)
        if reason is not Reason.OK:
            return reason
        if victim is not None:
            self.remove(victim.session_id, now)
        self.insert(session)
        return Reason.OK

    def refresh(self, session: Session) -> None:
        """The stored object is the session: only its place in the expiry order moves."""
        if session.session_id in self.live:
            self.reschedule(session)

    def remove(self, sid: bytes, now: float) -> None:
        self.delete(sid, now)

    def expire(self, now: float) -> list[Session]:
        gone = self.due(now)
        for s in gone:
            self.delete(s.session_id, now)
        self.purge(now)
        return gone

    def end_where(self, ended: Callable[[Session], bool], now: float) -> list[Session]:
        gone = [s for s in self.live.values() if ended(s)]
        for s in gone:
            self.delete(s.session_id, now)
        self.purge(now)
        return gone

    def set_holder_quota(self, quota: int | None) -> None:
        self.holder_quota = default_holder_quota(self.capacity, quota)
