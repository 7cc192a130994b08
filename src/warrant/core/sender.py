"""The sender: opens sessions without a round trip and seals payloads.

Sans-I/O: `Sender.send(payload, now)` returns the datagram to put on the
wire (an INIT carrying the payload when no session is open, or when the
current one is near its end of life or of sequence numbers; a DATA packet
otherwise).  `Sender.handle(reply, now)` digests REJECT and COOKIE replies
and returns the datagram to send in answer, if any.
"""

from __future__ import annotations

from collections.abc import Callable

import nacl.bindings
import nacl.signing
import nacl.utils

from . import keys
from .constants import (
    AEAD_TAG_LEN,
    COOKIE_SECRET_LIFETIME,
    SEQ_LIMIT,
    SESSION_MAX_LIFETIME,
    SIG_CONTEXT_INIT,
    Kind,
    Reason,
)
from .cookie import cookie_mac, open_cookie
from .errors import WarrantError
from .kdf import session_id as derive_session_id
from .kdf import session_keys, transcript, x25519
from .mac import header_mac, seal
from .receiver import Claim
from .wire import CookiePacket, DataPacket, InitPacket, RejectPacket, peek_kind

REOPEN_MARGIN = 30.0  # open a fresh session this long before the current one ends
REOPEN_INTERVAL = 1.0  # at most one re-open per second in answer to REJECTs
# Open a fresh session once this many DATA packets were sealed (WireGuard's
# REKEY_AFTER_MESSAGES), far below the receiver's SEQ_LIMIT.
REKEY_AFTER_SEQ = 2**60
_RESEND_REASONS = {Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED, Reason.TOO_OLD}


class Sender:
    def __init__(
        self,
        holder_key: nacl.signing.SigningKey,
        credential: bytes,
        receiver_public: bytes,
        claim: Claim,
        *,
        next_hop_public: bytes | None = None,
        random: Callable[[int], bytes] = nacl.utils.random,
    ) -> None:
        self.holder_key = holder_key
        self.credential = credential
        self.receiver_public = receiver_public
        self.receiver_id = keys.key_id(receiver_public)
        self._receiver_x = keys.x25519_public(receiver_public)
        self.claim = claim
        self.next_hop = keys.key_id(next_hop_public or receiver_public)
        self.random = random
        self.session_id: bytes | None = None
        self._init: InitPacket | None = None
        self._eph_public = b""
        self._mac_key = b""
        self._aead_key = b""
        self._seq = 0
        self._opened = 0.0
        self._last_reopen = float("-inf")
        self._cookie: tuple[bytes, float] | None = None
        self.opens = 0

    # ---- building packets ---------------------------------------------------------------
    def open(self, payload: bytes | None, now: float) -> bytes:
        """A fresh session: new ephemeral key, INIT carrying `payload` (may be None)."""
        eph_secret = self.random(32)
        eph_public = x25519_base(eph_secret)
        sid = derive_session_id(eph_public, self.receiver_id, self.credential)
        claim = self.claim.encode()
        # The header states the sealed payload's length, which is known before sealing.
        placeholder = b"" if payload is None else bytes(len(payload) + AEAD_TAG_LEN)
        unsigned = InitPacket(
            sid, self.receiver_id, int(now * 1000), eph_public, self.next_hop,
            self.credential, claim, b"", placeholder,
        )  # fmt: skip
        sig = self.holder_key.sign(SIG_CONTEXT_INIT + unsigned.signed_region()).signature
        th = transcript(unsigned.signed_region(), sig)
        ks = session_keys(x25519(eph_secret, self._receiver_x), th)
        ct = seal(ks.aead, 0, payload) if payload is not None else b""
        init = InitPacket(
            sid, self.receiver_id, unsigned.timestamp_ms, eph_public, self.next_hop,
            self.credential, claim, sig, ct,
        )  # fmt: skip
        self.session_id, self._eph_public = sid, eph_public
        self._mac_key, self._aead_key = ks.mac, ks.aead
        self._seq, self._opened, self._init = 0, now, init
        self.opens += 1
        return self._with_cookie(init, now).encode()

    def seal(self, payload: bytes) -> bytes:
        """A DATA packet on the open session (call `open` first)."""
        if self.session_id is None:
            raise WarrantError(Reason.UNKNOWN_SESSION, "no session open")
        if self._seq + 1 >= SEQ_LIMIT:  # the receiver would refuse it: never send it
            raise WarrantError(Reason.SEQ_EXHAUSTED, "sequence numbers used up: open a session")
        self._seq += 1
        seq = self._seq
        mac = header_mac(self._mac_key, DataPacket.mac_input(self.session_id, seq))
        return DataPacket(
            self.session_id, seq, mac, (), seal(self._aead_key, seq, payload)
        ).encode()

    def send(self, payload: bytes, now: float) -> bytes:
        if (
            self.session_id is None
            or now - self._opened > SESSION_MAX_LIFETIME - REOPEN_MARGIN
            or self._seq >= REKEY_AFTER_SEQ
        ):
            return self.open(payload, now)
        return self.seal(payload)

    # ---- replies ------------------------------------------------------------------------------
    def handle(self, packet: bytes, now: float) -> bytes | None:
        """React to a REJECT or COOKIE; return a datagram to send, or None."""
        kind = peek_kind(packet)
        if kind == Kind.COOKIE:
            reply = CookiePacket.decode(packet)
            if self._init is None or reply.session_id != self.session_id:
                return None
            self._cookie = (open_cookie(reply, self.receiver_public, self._eph_public), now)
            return self._with_cookie(self._init, now).encode()
        if kind == Kind.REJECT:
            reject = RejectPacket.decode(packet)
            if reject.session_id != self.session_id or reject.reason not in _RESEND_REASONS:
                return None
            if now - self._last_reopen < REOPEN_INTERVAL:
                return None
            self._last_reopen = now
            return self.open(None, now)
        return None

    def _with_cookie(self, init: InitPacket, now: float) -> InitPacket:
        if self._cookie is None or now - self._cookie[1] > COOKIE_SECRET_LIFETIME:
            return init
        mac = cookie_mac(self._cookie[0], init.cookie_region())
        return InitPacket(
            init.session_id, init.receiver_id, init.timestamp_ms, init.eph_public, init.next_hop,
            init.credential, init.claim, init.holder_sig, init.ciphertext, mac,
        )  # fmt: skip


def x25519_base(secret: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_base(secret)
