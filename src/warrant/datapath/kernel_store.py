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

Surviving the agent: `add` also writes the session's resumption record into the
pinned `warrant_session_secrets` map (loader.put_record; no program reads it):
the AEAD key, the credential's bytes, the claim's operation and service, each
relay's domain and key, the opening and INIT times and the policy rule, as
deterministic CBOR.  The record holds nothing the session map holds (expiry,
port, hop tags, MAC and hop keys, replay window): those are read from the
kernel's entry, the one truth for them.  Every removal through the store (and
`Datapath.remove_session`) deletes the record after the entry.

Entries an earlier agent installed ("orphans": pinned maps outlive the agent)
have no Python side until `adopt` rebuilds it from their records: the credential
is verified again under the receiver's trust store and revocation lists (so
an agent restarted with a changed policy or new revocations does not resume what
they refuse), the claim is checked against the re-verified rights, and the rate
bucket starts full.  An orphan that cannot be adopted (no whole record, expired,
refused) is removed: its next DATA is dropped in the kernel as UNKNOWN_SESSION
with a REJECT.  Orphans not (yet) adopted count against the capacity, are
evicted first when the table is full, and are removed when their lifetime ends.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import cbor2

from ..core.constants import Reason
from ..core.credential import VerifiedChain
from ..core.errors import WarrantError
from ..core.hop import PathHop
from ..core.ratelimit import TokenBucket
from ..core.receiver import Authority
from ..core.session import Session, SessionIndex, default_holder_quota
from . import libbpf
from .loader import Datapath, SessionValue

RECORD_VERSION = 1
Verify = Callable[[bytes, float], VerifiedChain]  # the receiver's Verifier.verify


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
            self.dp.drop_record(sid)
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
            self.dp.put_record(session.session_id, encode_record(session))
        except (libbpf.BpfError, ValueError):  # never admit what the kernel cannot keep
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
        self.dp.sweep_records(in_kernel)  # ended by the kernel, or left by a crash
        kernel_now = self.dp.kernel_now()
        for sid in list(self._orphans):
            v = self.dp.session(sid)
            if v is None or kernel_now >= v.expires_ns:
                self._remove_orphan(sid)
        self.purge(now)
        return gone

    def adopt(self, verify: Verify, now: float) -> tuple[list[Session], dict[bytes, str]]:
        """Resume the orphans from their records (see the module docstring); the sessions
        adopted, and the orphans removed with why.  Run it before the first DATA is opened."""
        adopted: list[Session] = []
        refused: dict[bytes, str] = {}
        kernel_now = self.dp.kernel_now()
        for sid in sorted(self._orphans):
            v = self.dp.session(sid)
            blob = self.dp.record(sid)
            why = ""
            if v is None or kernel_now >= v.expires_ns:
                why = "expired"
            elif blob is None:
                why = "no resumption record"
            else:
                try:
                    s = decode_record(sid, blob, v, self.dp.wall_time(v.expires_ns), verify, now)
                except WarrantError as exc:
                    why = f"{exc.reason.name}: {exc.detail}" if exc.detail else exc.reason.name
                except ValueError as exc:
                    why = f"bad resumption record: {exc}"
            self._orphans.discard(sid)
            if why:
                self.dp.remove_session(sid)
                refused[sid] = why
                continue
            self.insert(s)
            adopted.append(s)
        self.dp.sweep_records(set(self.dp.session_ids()))  # left by a crash mid-remove
        return adopted, refused

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


def encode_record(s: Session) -> bytes:
    """A session's resumption record: deterministic CBOR of what the kernel entry lacks."""
    hops = [[h.domain, h.relay_public] for h in s.path]
    return _canonical([RECORD_VERSION, s.aead_key, s.credential, s.operation, s.service, hops,
                       s.opened, s.stamp, s.rule])  # fmt: skip


def decode_record(sid: bytes, blob: bytes, v: SessionValue, expires: float, verify: Verify,
                  now: float) -> Session:  # fmt: skip
    """The Session a record and its kernel entry describe, its chain verified again at
    `now` (WarrantError when refused) and its claim checked against the chain's rights;
    ValueError for a record that is not one."""
    try:
        fields: Any = cbor2.loads(blob)
    except Exception as exc:
        raise ValueError("not CBOR") from exc
    if not isinstance(fields, list) or len(fields) != 9 or fields[0] != RECORD_VERSION:
        raise ValueError("not a version 1 record")
    _, aead_key, credential, operation, service, hops, opened, stamp, rule = fields
    if not (isinstance(aead_key, bytes) and len(aead_key) == 32 and isinstance(credential, bytes)
            and isinstance(operation, str) and isinstance(service, str)
            and isinstance(hops, list) and len(hops) == v.hop_count
            and all(isinstance(h, list) and len(h) == 2 and isinstance(h[0], str)
                    and isinstance(h[1], bytes) for h in hops)
            and isinstance(opened, float | int) and isinstance(stamp, float | int)
            and (rule is None or isinstance(rule, str))
            and _canonical(fields) == blob):  # fmt: skip
        raise ValueError("malformed record")
    chain = verify(credential, now)
    if not chain.rights.grants_operation(operation):
        raise WarrantError(Reason.OPERATION_NOT_GRANTED, f"{operation!r} not granted")
    if not chain.rights.grants_destination(service, int(v.port)):
        raise WarrantError(Reason.DESTINATION_NOT_GRANTED, f"{service}:{v.port} not granted")
    rate = chain.rights.rate
    s = Session(
        session_id=sid, mac_key=b"", aead_key=aead_key, chain=chain, operation=operation,
        service=service, port=int(v.port),
        path=[PathHop(d, rp, bytes(v.hops[i].tag), b"") for i, (d, rp) in enumerate(hops)],
        opened=float(opened), expires=expires, stamp=float(stamp), rule=rule,
        credential=credential,
        bucket=TokenBucket(rate, float(rate), now) if rate is not None else None,
    )  # fmt: skip
    s.authority = Authority.of(s)
    return s


def _canonical(fields: list[Any]) -> bytes:
    return cbor2.dumps(fields, canonical=True)
