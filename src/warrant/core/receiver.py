"""The receiver: decides every packet locally, from its bytes and session soft state.

Sans-I/O: `Receiver.handle(packet, source, dst_port, now)` returns an
`Outcome` (verdict, reason, the admitted payload with its authority, and an
optional reply to send back).  No sockets, clocks or globals; randomness is
injected.  The order of checks is normative (SPEC.md section 6) because the
kernel datapath must reach the same reason for the same packet.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import cbor2
import nacl.exceptions
import nacl.signing
import nacl.utils

from . import keys
from .admission import Policy
from .constants import (
    CLOCK_SKEW,
    INIT_MAX_AGE,
    MAX_DATAGRAM,
    SESSION_MAX_LIFETIME,
    SIG_CONTEXT_INIT,
    Kind,
    Reason,
    Verdict,
)
from .cookie import CookieJar
from .credential import VerifiedChain, Verifier
from .errors import WarrantError
from .hop import PathHop, verify_data_hops, verify_statements
from .kdf import session_id as derive_session_id
from .kdf import session_keys, transcript, x25519
from .mac import equal, header_mac, open_sealed
from .ratelimit import KeyedLimiter, RateMeter, TokenBucket
from .revocation import RevocationStore
from .rights import Rights, check_operation_name, check_service_name
from .session import Session, SessionStore, SessionTable
from .wire import DataPacket, InitPacket, RejectPacket, peek_kind

Address = tuple[str, int]


@dataclass(frozen=True)
class Claim:
    """What an INIT asks to do: an operation on a service at a port."""

    operation: str
    service: str
    port: int

    def encode(self) -> bytes:
        return cbor2.dumps([self.operation, self.service, self.port], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> Claim:
        try:
            op, service, port = cbor2.loads(data)
            claim = cls(op, service, port)
        except Exception:
            raise WarrantError(
                Reason.MALFORMED, "claim must be [operation, service, port]"
            ) from None
        if (
            not isinstance(op, str)
            or not isinstance(service, str)
            or not isinstance(port, int)
            or isinstance(port, bool)
            or not 0 <= port <= 65535
            or claim.encode() != data
        ):
            raise WarrantError(Reason.MALFORMED, "claim must be [operation, service, port]")
        check_operation_name(op)  # a name, never a pattern: the credential's patterns match it
        check_service_name(service)  # printable, no `*`: it reaches logs and policy rules
        return claim


@dataclass(frozen=True)
class Authority:
    """The authority an admitted payload arrived under; handed to the application."""

    scope: str
    issuer: str  # anchor id, hex
    holder: str  # holder key id, hex
    chain_digest: str
    depth: int
    operation: str
    service: str
    port: int
    hops: tuple[tuple[str, str], ...]  # (domain, relay key id hex) in path order
    expires: int
    rule: str | None
    session_id: str
    # The chain's link ids (hex, root first) and effective rights: for flow records and audit.
    link_ids: tuple[str, ...] = ()
    rights: Rights | None = None

    @classmethod
    def of(cls, s: Session) -> Authority:
        return cls(
            scope=s.chain.scope,
            issuer=s.chain.anchor.anchor_id.hex(),
            holder=keys.key_id(s.chain.holder).hex(),
            chain_digest=s.chain.chain_digest.hex(),
            depth=s.chain.depth,
            operation=s.operation,
            service=s.service,
            port=s.port,
            hops=tuple((h.domain, h.tag.hex()) for h in s.path),
            expires=s.chain.rights.expires,
            rule=s.rule,
            session_id=s.session_id.hex(),
            link_ids=tuple(i.hex() for i in s.chain.link_ids),
            rights=s.chain.rights,
        )


@dataclass
class Outcome:
    verdict: Verdict
    reason: Reason
    kind: str
    size: int
    detail: str = ""
    payload: bytes | None = None
    authority: Authority | None = None
    reply: bytes | None = None
    session_id: bytes | None = None
    seq: int | None = None


@dataclass(frozen=True)
class Ended:
    """A live session a policy reload ended, and why the new policy refuses it."""

    session: Session
    reason: Reason
    detail: str


@dataclass
class ReceiverStats:
    by_reason: dict[Reason, int] = field(default_factory=dict)

    def count(self, reason: Reason) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1


class Receiver:
    def __init__(
        self,
        key: nacl.signing.SigningKey,
        policy: Policy,
        *,
        started_at: float,
        revocations: RevocationStore | None = None,
        random: Callable[[int], bytes] = nacl.utils.random,
        reject_rate: float = 10.0,
        sessions: SessionStore | None = None,
    ) -> None:
        """`sessions`: where sessions live (default: a memory table sized by the policy;
        the agent passes the kernel-map store)."""
        self.key = key
        self.public = bytes(key.verify_key)
        self.key_id = keys.key_id(self.public)
        self._x_secret = keys.x25519_secret(key)
        self.policy = policy
        self.started_at = started_at
        self.verifier = Verifier(policy.trust, revocations)
        limits = policy.limits
        self.sessions: SessionStore = (
            sessions
            if sessions is not None
            else SessionTable(limits.max_sessions, limits.max_sessions_per_holder)
        )
        self.cookies = CookieJar(self.public, random)
        self._init_meter = RateMeter()
        self._init_limiter = KeyedLimiter(limits.init_rate_per_source, limits.init_burst)
        self._reject_limiter = KeyedLimiter(reject_rate, reject_rate)
        self.stats = ReceiverStats()

    # ---- entry point ---------------------------------------------------------------------
    def handle(self, packet: bytes, source: Address, dst_port: int, now: float) -> Outcome:
        try:
            kind = peek_kind(packet)
            if kind == Kind.DATA:
                out = self._data(packet, source, dst_port, now)
            elif kind == Kind.INIT:
                out = self._init(packet, source, dst_port, now)
            else:
                raise WarrantError(Reason.UNKNOWN_KIND, f"{kind.name} is not for a receiver")
        except WarrantError as exc:
            out = Outcome(Verdict.DROP, exc.reason, _kind_name(packet), len(packet), exc.detail)
        self.stats.count(out.reason)
        return out

    def set_policy(self, policy: Policy, now: float) -> list[Ended]:
        """Adopt a new policy; the live sessions it ended, each with its reason.

        Every live session is judged again as its opening was (SPEC 6.2 step 12: anchor,
        deny and allow rules, path constraints): one the new policy refuses ends through
        the store (with the kernel backend its map entry goes, so its next DATA is
        dropped there), whatever admitted it before.  The others keep their keys,
        windows and rule, and end sooner if their anchor now expires sooner.  The trust
        store, the opening limits and the per-holder quota follow the new policy; the
        session table keeps its size."""
        self.policy = policy
        self.verifier.trust = policy.trust
        self.verifier.clear_cache()  # cached prefixes were checked against the old anchors
        limits = policy.limits
        self._init_limiter = KeyedLimiter(limits.init_rate_per_source, limits.init_burst)
        self.sessions.set_holder_quota(limits.max_sessions_per_holder)
        why: dict[bytes, WarrantError] = {}

        def refused(s: Session) -> bool:
            try:
                _judge_again(s, policy)
            except WarrantError as exc:
                why[s.session_id] = exc
                return True
            return False

        ended = self.sessions.end_where(refused, now)
        for s in self.sessions:  # an anchor's validity may have shrunk, and with it the session's
            anchor = policy.trust.find(s.chain.scope, s.chain.anchor.anchor_id)
            if anchor.not_after is not None and anchor.not_after + CLOCK_SKEW < s.expires:
                s.expires = anchor.not_after + CLOCK_SKEW
                self.sessions.refresh(s)
        return [Ended(s, why[s.session_id].reason, why[s.session_id].detail) for s in ended]

    def under_load(self, now: float) -> bool:
        return self._init_meter.rate(now) >= self.policy.limits.load_threshold

    def revoke(self, revocations: RevocationStore, now: float) -> list[Session]:
        """Install new revocation lists and end, through the store, every live session
        they now revoke."""
        self.verifier.revocations = revocations

        def revoked(s: Session) -> bool:
            try:
                revocations.check(s.chain.scope, s.chain.link_ids, s.chain.keys())
            except WarrantError:
                return True
            return False

        return self.sessions.end_where(revoked, now)

    # ---- DATA: the per-packet fast path (the kernel mirrors steps 1-7) ---------------------
    def check_data_header(
        self, packet: bytes, dst_port: int, now: float
    ) -> tuple[Reason, DataPacket | None, Session | None]:
        """Steps the kernel also runs.  Does not update the replay window."""
        data = DataPacket.decode(packet)
        s = self.sessions.get(data.session_id)
        if s is None:
            return Reason.UNKNOWN_SESSION, data, None
        if now >= s.expires:
            return Reason.SESSION_EXPIRED, data, s
        if dst_port != s.port:
            return Reason.PORT_MISMATCH, data, s
        # Bytes [0, 20) with hop_count zeroed are DataPacket.mac_input(sid, seq): the flags
        # byte is covered (SPEC 3.1), so a known flag set on the wire (INNER_IP, for a
        # transparent session this receiver does not hold) fails the MAC.
        if not equal(_header_mac(s.mac_key, packet[:2] + b"\0" + packet[3:20]), data.mac):
            return Reason.BAD_MAC, data, s
        if data.hops or s.path:
            reason = verify_data_hops(data.hops, data.mac, s.path)
            if reason != Reason.OK:
                return reason, data, s
        return s.window.check(data.seq), data, s

    def admitted_data(self, packet: bytes, source: Address, now: float) -> Outcome:
        """A DATA packet the kernel admitted (steps 1-7 judged and its sequence number
        recorded there): only the payload is opened and the credential's rate applied,
        after authentication, so forged payloads cannot spend the allowance.  A session
        the store lacks (installed by an earlier agent: its AEAD key is gone) is removed
        and answered like an unknown one."""
        if not self.sessions.kernel_judged:
            raise ValueError("admitted_data is for stores whose DATA the kernel judges")
        data = DataPacket.decode(packet)
        sid = data.session_id
        s = self.sessions.admitted(sid)
        if s is None:
            self.sessions.remove(sid, now)
            out = Outcome(Verdict.DROP, Reason.UNKNOWN_SESSION, "DATA", len(packet),
                          "sender must resend its credential", session_id=sid, seq=data.seq)  # fmt: skip
            out.reply = self._reject(Reason.UNKNOWN_SESSION, sid, source, now)
            return out
        out = Outcome(Verdict.DROP, Reason.OK, "DATA", len(packet), authority=s.authority,
                      session_id=sid, seq=data.seq)  # fmt: skip
        payload = _open_sealed(s.aead_key, data.seq, data.ciphertext)
        if payload is None:
            out.reason, out.detail = Reason.BAD_PAYLOAD_AUTH, "payload does not authenticate"
        elif s.bucket is not None and not s.bucket.take(now):
            out.reason = Reason.RATE_LIMITED
        else:
            s.packets += 1
            s.bytes += len(payload)
            out.verdict, out.payload = Verdict.ADMIT, payload
        return out

    def _data(self, packet: bytes, source: Address, dst_port: int, now: float) -> Outcome:
        if self.sessions.kernel_judged:  # the live window is the kernel's: never judge here
            raise WarrantError(Reason.UNKNOWN_KIND, "DATA is judged in the kernel here")
        reason, data, s = self.check_data_header(packet, dst_port, now)
        assert data is not None
        if reason is Reason.OK:  # the admit path first; s is the session
            assert s is not None
            payload = _open_sealed(s.aead_key, data.seq, data.ciphertext)
            if payload is None:  # not recorded: a corrupted copy racing ahead of the
                return Outcome(  # genuine packet must not make it a REPLAY (SPEC 6.3)
                    Verdict.DROP, Reason.BAD_PAYLOAD_AUTH, "DATA", len(packet),
                    "payload does not authenticate", authority=s.authority,
                    session_id=data.session_id, seq=data.seq,
                )  # fmt: skip
            # Authentic from here: recorded whatever the rate decides, so no copy of it can
            # spend the allowance later; only authenticated payloads spend it (SPEC 6.1).
            s.window.update(data.seq)
            if s.bucket is not None and not s.bucket.take(now):
                return Outcome(
                    Verdict.DROP, Reason.RATE_LIMITED, "DATA", len(packet),
                    authority=s.authority, session_id=data.session_id, seq=data.seq,
                )  # fmt: skip
            s.packets += 1
            s.bytes += len(payload)
            return Outcome(
                Verdict.ADMIT, Reason.OK, "DATA", len(packet), payload=payload,
                authority=s.authority, session_id=data.session_id, seq=data.seq,
            )  # fmt: skip
        out = Outcome(
            Verdict.DROP, reason, "DATA", len(packet), session_id=data.session_id, seq=data.seq
        )
        if reason in (Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED):
            if s is not None:
                self.sessions.remove(s.session_id, now)
            out.detail = "sender must resend its credential"
            out.reply = self._reject(reason, data.session_id, source, now)
            return out
        if s is not None:
            out.authority = s.authority
        return out

    def _reject(self, reason: Reason, sid: bytes, source: Address, now: float) -> bytes | None:
        if not self._reject_limiter.take(source[0], now):
            return None
        return RejectPacket(reason, sid).encode()

    # ---- INIT: once per session, the slow path ---------------------------------------------
    def _init(self, packet: bytes, source: Address, dst_port: int, now: float) -> Outcome:
        init = InitPacket.decode(packet)
        out = Outcome(
            Verdict.DROP, Reason.OK, "INIT", len(packet), session_id=init.session_id, seq=0
        )
        try:
            return self._open(init, out, source, dst_port, now)
        except WarrantError as exc:  # every step of _open refuses by raising
            out.reason, out.detail = exc.reason, exc.detail
            return out

    def _open(
        self, init: InitPacket, out: Outcome, source: Address, dst_port: int, now: float
    ) -> Outcome:
        """SPEC 6.2 steps 2-14, one method per step group; each refuses by raising."""
        self._check_receiver(init)  # step 2
        self._check_freshness(init, out, source, now)  # steps 3-5
        self._check_load(init, out, source, now)  # steps 6-7
        chain = self._verify_chain(init, now)  # steps 8-9
        claim = self._authorize_claim(init, chain, dst_port)  # step 10
        th = transcript(init.signed_region(), init.holder_sig)
        path = verify_statements(init, th, self.key_id, self._x_secret, self.policy.trust)  # 11
        rule = self._apply_policy(chain, claim, path)  # step 12
        session, payload = self._derive_session(init, th, chain, claim, path, rule, now)  # 13
        self._install(session, payload, now)  # step 14
        out.verdict, out.payload, out.authority = Verdict.ADMIT, payload, session.authority
        return out

    def _check_receiver(self, init: InitPacket) -> None:
        if init.receiver_id != self.key_id:
            raise WarrantError(
                Reason.WRONG_RECEIVER, f"addressed to key id {init.receiver_id.hex()}"
            )

    def _check_freshness(self, init: InitPacket, out: Outcome, source: Address, now: float) -> None:
        """Timestamp window, session id derivation, and not a replay of a known opening."""
        ts = init.timestamp_ms / 1000.0
        if ts > now + CLOCK_SKEW:
            raise WarrantError(Reason.NOT_YET_VALID, "session opening stamped in the future")
        if ts < now - INIT_MAX_AGE - CLOCK_SKEW:
            raise WarrantError(Reason.TOO_OLD, "stale session opening")
        if ts < self.started_at or ts <= self.sessions.opening_floor():
            out.reply = self._reject(Reason.TOO_OLD, init.session_id, source, now)
            raise WarrantError(Reason.TOO_OLD, "session opening predates this receiver's state")
        if derive_session_id(init.eph_public, init.receiver_id, init.credential) != init.session_id:
            raise WarrantError(Reason.BAD_SESSION_ID)
        if self.sessions.seen(init.session_id):
            raise WarrantError(Reason.REPLAY, "session already opened")

    def _check_load(self, init: InitPacket, out: Outcome, source: Address, now: float) -> None:
        """Cookie, then the per-source opening rate: both before any signature.

        A cookie MAC that is present is always checked, under load or not: a field
        nobody judged would be admitted as if it meant something (SPEC 8)."""
        self._init_meter.add(now)
        if init.cookie_mac is not None or self.under_load(now):
            verdict = self.cookies.check(source, init.cookie_region(), init.cookie_mac, now)
            if verdict != Reason.OK:
                out.reply = self.cookies.reply(
                    source, init.session_id, init.eph_public, now
                ).encode()
                raise WarrantError(verdict, "answer the cookie")
        if not self._init_limiter.take(source[0], now):
            raise WarrantError(Reason.RATE_LIMITED, "too many session openings from this source")

    def _verify_chain(self, init: InitPacket, now: float) -> VerifiedChain:
        """The credential (SPEC 4.4), then proof that the sender holds its final key."""
        chain = self.verifier.verify(init.credential, now)
        try:
            nacl.signing.VerifyKey(chain.holder).verify(
                SIG_CONTEXT_INIT + init.signed_region(), init.holder_sig
            )
        except (nacl.exceptions.BadSignatureError, ValueError):
            raise WarrantError(Reason.BAD_HOLDER_PROOF) from None
        return chain

    def _authorize_claim(self, init: InitPacket, chain: VerifiedChain, dst_port: int) -> Claim:
        claim = Claim.decode(init.claim)
        if claim.port != dst_port:
            raise WarrantError(
                Reason.PORT_MISMATCH, f"claims port {claim.port}, sent to {dst_port}"
            )
        if not chain.rights.grants_operation(claim.operation):
            raise WarrantError(Reason.OPERATION_NOT_GRANTED, f"{claim.operation!r} not granted")
        if not chain.rights.grants_destination(claim.service, claim.port):
            raise WarrantError(
                Reason.DESTINATION_NOT_GRANTED, f"{claim.service}:{claim.port} not granted"
            )
        return claim

    def _apply_policy(self, chain: VerifiedChain, claim: Claim, path: list[PathHop]) -> str | None:
        """The receiver's policy and path constraints; the matching rule's name."""
        return _decide(self.policy, chain, claim.operation, claim.service, claim.port, path)

    def _derive_session(
        self,
        init: InitPacket,
        th: bytes,
        chain: VerifiedChain,
        claim: Claim,
        path: list[PathHop],
        rule: str | None,
        now: float,
    ) -> tuple[Session, bytes | None]:
        """Session keys from the ephemeral exchange; the first payload opened under them."""
        ks = session_keys(x25519(self._x_secret, init.eph_public), th)
        payload = open_sealed(ks.aead, 0, init.ciphertext) if init.ciphertext else None
        session = Session(
            session_id=init.session_id,
            mac_key=ks.mac,
            aead_key=ks.aead,
            chain=chain,
            operation=claim.operation,
            service=claim.service,
            port=claim.port,
            path=path,
            opened=now,
            stamp=init.timestamp_ms / 1000.0,
            expires=min(
                now + SESSION_MAX_LIFETIME,
                chain.rights.expires + CLOCK_SKEW,
                float("inf")
                if chain.anchor.not_after is None
                else chain.anchor.not_after + CLOCK_SKEW,
            ),
            rule=rule,
            credential=init.credential,
            bucket=(  # burst of one second's worth; rate 0 admits no DATA at all
                TokenBucket(chain.rights.rate, float(chain.rights.rate), now)
                if chain.rights.rate is not None
                else None
            ),
        )
        return session, payload

    def _install(self, session: Session, payload: bytes | None, now: float) -> None:
        """Into the table with seq 0 (the INIT's payload) already seen."""
        session.window.update(0)
        if self.sessions.add(session, now) is not Reason.OK:
            raise WarrantError(
                Reason.SESSION_TABLE_FULL,
                f"holder has {self.sessions.holder_count(session.holder)} sessions "
                f"(quota {self.sessions.holder_quota})",
            )
        session.authority = Authority.of(session)
        if payload is not None:
            session.packets, session.bytes = 1, len(payload)


def _judge_again(s: Session, policy: Policy) -> None:
    """Raise WarrantError if `policy` would refuse the session's opening now (its anchor
    and the policy's rules; the chain and the claim were verified at opening)."""
    anchor = policy.trust.find(s.chain.scope, s.chain.anchor.anchor_id)
    if anchor.public != s.chain.anchor.public:
        raise WarrantError(Reason.UNKNOWN_ANCHOR, f"anchor {anchor.anchor_id.hex()} has a new key")
    _decide(policy, s.chain, s.operation, s.service, s.port, s.path)


def _decide(policy: Policy, chain: VerifiedChain, operation: str, service: str, port: int,
            path: list[PathHop]) -> str | None:  # fmt: skip
    """The policy's rules and path constraints for this authority: the admitting rule's
    name, or WarrantError with the refusal."""
    domains = [h.domain for h in path]
    decision = policy.decide(chain.scope, chain.anchor.anchor_id.hex(), operation, service, port,
                             domains, chain.rights)  # fmt: skip
    if decision.reason != Reason.OK:
        raise WarrantError(decision.reason, decision.detail)
    return decision.rule


def _kind_name(packet: bytes) -> str:
    try:
        return Kind(packet[1]).name
    except (IndexError, ValueError):
        return "UNKNOWN"


# ---- the DATA fast path's primitives -------------------------------------------------------
# The same libsodium functions as mac.header_mac and mac.open_sealed, called through
# PyNaCl's cffi module with per-thread scratch buffers: the bindings' argument checks
# and allocations cost more than SipHash and ChaCha20-Poly1305 on a small packet.
try:
    import threading

    from nacl._sodium import ffi as _ffi
    from nacl._sodium import lib as _lib

    class _Scratch(threading.local):
        def __init__(self) -> None:
            self.mac = _ffi.new("unsigned char[]", 16)
            self.mac_view = _ffi.buffer(self.mac)
            self.plain = _ffi.new("unsigned char[]", MAX_DATAGRAM)
            self.plain_view = _ffi.buffer(self.plain)
            self.plain_len = _ffi.new("unsigned long long *")

    _scratch = _Scratch()
    _siphashx24 = _lib.crypto_shorthash_siphashx24
    _aead_open = _lib.crypto_aead_chacha20poly1305_ietf_decrypt
    _NULL = _ffi.NULL
    _NONCE = struct.Struct(">4xQ").pack

    def _header_mac(key: bytes, mac_input: bytes) -> bytes:
        if len(key) != 16:  # libsodium reads 16 key bytes: let the checked binding refuse
            return header_mac(key, mac_input)
        sc = _scratch
        _siphashx24(sc.mac, mac_input, len(mac_input), key)
        return bytes(sc.mac_view)

    def _open_sealed(key: bytes, seq: int, ciphertext: bytes) -> bytes | None:
        """The payload, or None when it does not authenticate (mac.open_sealed's refusal)."""
        sc = _scratch
        if len(ciphertext) > MAX_DATAGRAM or len(key) != 32:
            return _open_sealed_slow(key, seq, ciphertext)
        if _aead_open(
            sc.plain, sc.plain_len, _NULL, ciphertext, len(ciphertext), _NULL, 0, _NONCE(seq), key
        ):
            return None
        payload: bytes = sc.plain_view[: sc.plain_len[0]]
        return payload

except ImportError:  # pragma: no cover - PyNaCl without its cffi module
    _header_mac = header_mac

    def _open_sealed(key: bytes, seq: int, ciphertext: bytes) -> bytes | None:
        return _open_sealed_slow(key, seq, ciphertext)


def _open_sealed_slow(key: bytes, seq: int, ciphertext: bytes) -> bytes | None:
    try:
        return open_sealed(key, seq, ciphertext)
    except WarrantError:
        return None
