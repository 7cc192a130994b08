"""The kernel-map backend of `SessionStore`: the pinned session map is the truth.

A session exists when, and only when, the kernel's `warrant_sessions` map has
its entry: `add` writes it (with the replay window converted by
`ReplayValue.from_window`, the one documented converter between the two window
layouts), `remove`, `expire` and `end_where` delete it, and a session the kernel
removed on its own (SESSION_EXPIRED at step 3) is forgotten the next time it is
looked up or at the next `sync` (a pass over the map, which the agent runs every
few seconds; `expire` only touches the sessions it ends).  The kernel judges every DATA packet; the
Python side keeps only what the map cannot hold, by session id: the verified
chain (for revocation and policy re-evaluation), the AEAD key (to open admitted
payloads) and the authority (for flow records), with the per-holder accounting
of `SessionIndex`, so the full-table policy is the memory backend's.  The MAC
and hop keys are cleared from the Python session once the kernel has them.

Entries an earlier agent installed ("orphans": pinned maps outlive the agent)
have no Python side.  They count against the capacity, are evicted first when
the table is full, and are removed when their lifetime ends.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

from ..core.constants import Reason
from ..core.session import Session, SessionIndex, default_holder_quota
from . import libbpf
from .loader import Datapath


class KernelSessionStore(SessionIndex):
    kernel_judged = True

    def __init__(self, dp: Datapath, capacity: int, holder_quota: int | None = None) -> None:
        """`capacity`: the policy's max_sessions, capped at the map's max_entries."""
        self.dp = dp
        self._policy_quota = holder_quota
        super().__init__(min(capacity, dp.session_capacity()), holder_quota)
        self._orphans: set[bytes] = set(dp.session_ids())

    # ---- lookups ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.live) + len(self._orphans)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self.live.values()))

    def orphans(self) -> int:
        return len(self._orphans)

    def get(self, sid: bytes) -> Session | None:
        """The session if the kernel still has it (one map lookup)."""
        s = self.live.get(sid)
        if s is not None and self.dp.session(sid) is None:
            self.delete(sid, time.time())  # the kernel ended it (SESSION_EXPIRED)
            return None
        return s

    def admitted(self, sid: bytes) -> Session | None:
        """The session of a DATA packet the kernel has just admitted: no map lookup, the
        kernel's admit was one."""
        return self.live.get(sid)

    def seen(self, sid: bytes) -> bool:
        return super().seen(sid) or sid in self._orphans

    def opening_floor(self) -> float:
        return self.floor

    # ---- writes ------------------------------------------------------------------------------
    def add(self, session: Session, now: float) -> Reason:
        reason, victim = self.admit(session)
        if reason is not Reason.OK or len(self) >= self.capacity:
            self.expire(now)  # ended sessions make room before anyone is evicted
            reason, victim = self.admit(session)
        if reason is not Reason.OK:
            return reason
        if len(self) >= self.capacity:  # admit() names a victim unless orphans fill it
            if self._orphans:  # undeliverable here (no AEAD key): they go first
                self._remove_orphan(next(iter(self._orphans)))
            elif victim is not None:
                self.remove(victim.session_id, now)
        try:
            self.dp.install_session(session)
        except libbpf.BpfError:  # map full or failing: never admit what the kernel lacks
            self.dp.remove_session(session.session_id)
            return Reason.SESSION_TABLE_FULL
        # The kernel holds the MAC and hop keys now; the Python side keeps none of them.
        session.mac_key = b""
        session.path = [dataclasses.replace(h, key=b"") for h in session.path]
        self.insert(session)
        return Reason.OK

    def refresh(self, session: Session) -> None:
        """Write the session's expiry into its kernel entry (the only field that changes
        after opening); keys, hops and the replay window stay as the kernel has them."""
        if session.session_id in self.live:
            self.dp.set_session_expiry(session.session_id, session.expires)
            self.reschedule(session)

    def remove(self, sid: bytes, now: float) -> None:
        self.dp.remove_session(sid)
        self.delete(sid, now)
        self._orphans.discard(sid)

    def _remove_orphan(self, sid: bytes) -> None:
        self.dp.remove_session(sid)
        self._orphans.discard(sid)

    def expire(self, now: float) -> list[Session]:
        """End the sessions whose lifetime is over (O(ended), no pass over the map)."""
        gone = self.due(now)
        for s in gone:
            self.remove(s.session_id, now)
        self.purge(now)
        return gone

    def sync(self, now: float) -> list[Session]:
        """Reconcile with the kernel map (a pass over it: call it seldom): forget sessions
        the kernel ended itself, and remove orphans whose lifetime is over; the sessions
        forgotten."""
        in_kernel = set(self.dp.session_ids())
        gone = []
        for sid in [sid for sid in self.live if sid not in in_kernel]:
            s = self.delete(sid, now)
            if s is not None:
                gone.append(s)
        self._orphans &= in_kernel
        kernel_now = self.dp.kernel_now()
        for sid in list(self._orphans):
            v = self.dp.session(sid)
            if v is None or kernel_now >= v.expires_ns:
                self._remove_orphan(sid)
        self.purge(now)
        return gone

    def end_where(self, ended: Callable[[Session], bool], now: float) -> list[Session]:
        gone = [s for s in self.live.values() if ended(s)]
        for s in gone:
            self.remove(s.session_id, now)
        self.purge(now)
        return gone

    def set_holder_quota(self, quota: int | None) -> None:
        self.holder_quota = default_holder_quota(self.capacity, quota)

    def clear(self) -> None:
        for sid in [*self.live, *self._orphans]:
            self.dp.remove_session(sid)
        self._orphans.clear()
        super().clear()
