"""Wire codec: exact, bounded parsing and building of the four packet kinds.

Pure functions over bytes.  Parsing checks lengths before every read and
raises WarrantError with the reason the SPEC assigns (TRUNCATED,
UNKNOWN_VERSION, UNKNOWN_KIND, MALFORMED).  Layouts: SPEC.md section 3.
All integers are big-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .constants import (
    AEAD_TAG_LEN,
    COMMON_HEADER_LEN,
    COOKIE_LEN,
    COOKIE_NONCE_LEN,
    COOKIE_PACKET_LEN,
    DATA_HEADER_LEN,
    DATA_MAC_INPUT_LEN,
    FLAG_DATA_INNER_IP,
    FLAG_DATA_TRAIN,
    FLAG_INIT_COOKIE,
    HOP_RECORD_LEN,
    INIT_FIXED_LEN,
    KEY_ID_LEN,
    KNOWN_DATA_FLAGS,
    KNOWN_INIT_FLAGS,
    MAX_HOPS,
    OFF_HOP_COUNT,
    OFF_HOPS,
    PUBKEY_LEN,
    REJECT_LEN,
    SESSION_ID_LEN,
    SIGNATURE_LEN,
    VERSION,
    Kind,
    Reason,
)
from .errors import WarrantError

_DATA_HEAD = struct.Struct(">BBBB8sQ16s")  # version kind hops flags sid seq mac
_INIT_HEAD = struct.Struct(">BBBB8s4sQ32sHHHH4s")
_REJECT = struct.Struct(">BBBB8sI")
_HOP = struct.Struct(">4s8s")
_KIND_DATA = int(Kind.DATA)

assert _DATA_HEAD.size == DATA_HEADER_LEN
assert _INIT_HEAD.size == INIT_FIXED_LEN
assert _REJECT.size == REJECT_LEN
assert _HOP.size == HOP_RECORD_LEN


def _truncated(what: str) -> WarrantError:
    return WarrantError(Reason.TRUNCATED, what)


def _malformed(what: str) -> WarrantError:
    return WarrantError(Reason.MALFORMED, what)


def peek_kind(packet: bytes) -> Kind:
    """Version and kind of any packet; the first check every parser makes."""
    if len(packet) < COMMON_HEADER_LEN:
        raise _truncated(f"{len(packet)} bytes is shorter than the common header")
    if packet[0] != VERSION:
        raise WarrantError(Reason.UNKNOWN_VERSION, f"version {packet[0]}")
    try:
        return Kind(packet[1])
    except ValueError:
        raise WarrantError(Reason.UNKNOWN_KIND, f"kind {packet[1]}") from None


def masked(region: bytes) -> bytes:
    """Copy of a packet prefix with hop_count and flags zeroed (what senders sign and MAC)."""
    return region[:2] + b"\x00\x00" + region[4:]


# ---- DATA ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HopRecord:
    relay_tag: bytes  # key id of the relay (4 bytes)
    mac: bytes  # 8 bytes, chained

    def encode(self) -> bytes:
        return self.relay_tag + self.mac


@dataclass(frozen=True)
class DataPacket:
    session_id: bytes
    seq: int
    mac: bytes
    hops: tuple[HopRecord, ...]
    ciphertext: bytes
    flags: int = 0

    @staticmethod
    def mac_input(session_id: bytes, seq: int, flags: int = 0) -> bytes:
        """Bytes [0, 20) of the header with hop_count zero: what the origin MAC covers."""
        return _DATA_HEAD.pack(VERSION, Kind.DATA, 0, flags, session_id, seq, b"")[
            :DATA_MAC_INPUT_LEN
        ]

    def encode(self) -> bytes:
        head = _DATA_HEAD.pack(
            VERSION, Kind.DATA, len(self.hops), self.flags, self.session_id, self.seq, self.mac
        )
        return head + b"".join(h.encode() for h in self.hops) + self.ciphertext

    @classmethod
    def decode(cls, packet: bytes) -> DataPacket:
        # Hot path (every DATA packet): same checks, order, reasons and messages as
        # peek_kind followed by the DATA checks, with the common case tested first.
        if (
            len(packet) < COMMON_HEADER_LEN or packet[0] != VERSION or packet[1] != _KIND_DATA
        ) and peek_kind(packet) != Kind.DATA:
            raise WarrantError(Reason.UNKNOWN_KIND, "not a DATA packet")
        hop_count, flags = packet[OFF_HOP_COUNT], packet[3]
        if hop_count > MAX_HOPS:
            raise _malformed(f"hop count {hop_count} above the wire maximum {MAX_HOPS}")
        if flags & ~KNOWN_DATA_FLAGS:
            raise _malformed(f"unknown DATA flags {flags:#04x}")
        if flags & FLAG_DATA_TRAIN and not flags & FLAG_DATA_INNER_IP:
            raise _malformed("DATA flag TRAIN without INNER_IP")
        need = DATA_HEADER_LEN + hop_count * HOP_RECORD_LEN + AEAD_TAG_LEN
        if len(packet) < need:
            raise _truncated(f"DATA with {hop_count} hops needs {need} bytes, got {len(packet)}")
        _, _, _, _, sid, seq, mac = _DATA_HEAD.unpack_from(packet)
        if hop_count:
            hops = tuple(
                HopRecord(*_HOP.unpack_from(packet, OFF_HOPS + i * HOP_RECORD_LEN))
                for i in range(hop_count)
            )
            body = packet[DATA_HEADER_LEN + hop_count * HOP_RECORD_LEN :]
        else:
            hops, body = (), packet[DATA_HEADER_LEN:]
        # The dataclass is frozen; filling __dict__ directly builds the same object as
        # cls(sid, seq, mac, hops, body, flags) without six object.__setattr__ calls.
        obj = object.__new__(cls)
        obj.__dict__.update(
            session_id=sid, seq=seq, mac=mac, hops=hops, ciphertext=body, flags=flags
        )
        return obj


# ---- INIT ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HopStatement:
    """A relay's signed, once-per-session statement that it carries this session."""

    relay_public: bytes
    next_hop: bytes  # key id of the relay or receiver it forwards to
    domain: str
    signature: bytes

    def encode(self) -> bytes:
        d = self.domain.encode()
        return self.relay_public + self.next_hop + bytes([len(d)]) + d + self.signature

    @staticmethod
    def signed_part(relay_public: bytes, next_hop: bytes, domain: str) -> bytes:
        d = domain.encode()
        return relay_public + next_hop + bytes([len(d)]) + d


@dataclass(frozen=True)
class InitPacket:
    session_id: bytes
    receiver_id: bytes
    timestamp_ms: int
    eph_public: bytes
    next_hop: bytes
    credential: bytes
    claim: bytes
    holder_sig: bytes
    ciphertext: bytes  # first payload, AEAD-sealed; empty when none
    cookie_mac: bytes | None = None
    statements: tuple[HopStatement, ...] = ()
    raw: bytes = b""  # the packet as received (empty when built locally)

    def header(self) -> bytes:
        return _INIT_HEAD.pack(
            VERSION,
            Kind.INIT,
            len(self.statements),
            FLAG_INIT_COOKIE if self.cookie_mac is not None else 0,
            self.session_id,
            self.receiver_id,
            self.timestamp_ms,
            self.eph_public,
            len(self.credential),
            len(self.claim),
            len(self.ciphertext),
            0,
            self.next_hop,
        )

    def signed_region(self) -> bytes:
        """Header (hop_count and flags zeroed), credential and claim: what the holder signs."""
        return masked(self.header()) + self.credential + self.claim

    def cookie_region(self) -> bytes:
        """Everything the cookie MAC covers: signed region, holder signature, payload."""
        return self.signed_region() + self.holder_sig + self.ciphertext

    def encode(self) -> bytes:
        out = self.header() + self.credential + self.claim + self.holder_sig + self.ciphertext
        if self.cookie_mac is not None:
            out += self.cookie_mac
        return out + b"".join(s.encode() for s in self.statements)

    @classmethod
    def decode(cls, packet: bytes) -> InitPacket:
        if peek_kind(packet) != Kind.INIT:
            raise WarrantError(Reason.UNKNOWN_KIND, "not an INIT packet")
        if len(packet) < INIT_FIXED_LEN:
            raise _truncated(f"INIT needs at least {INIT_FIXED_LEN} bytes, got {len(packet)}")
        (_, _, hop_count, flags, sid, rid, ts, eph, cred_len, claim_len, payload_len, reserved,
         next_hop) = _INIT_HEAD.unpack_from(packet)  # fmt: skip
        if flags & ~KNOWN_INIT_FLAGS:
            raise _malformed(f"unknown INIT flags {flags:#04x}")
        if reserved:
            raise _malformed("reserved field is not zero")
        if hop_count > MAX_HOPS:
            raise _malformed(f"hop count {hop_count} above the wire maximum {MAX_HOPS}")
        if payload_len and payload_len < AEAD_TAG_LEN:
            raise _malformed("payload shorter than its authentication tag")
        has_cookie = bool(flags & FLAG_INIT_COOKIE)
        fixed_end = (
            INIT_FIXED_LEN + cred_len + claim_len + SIGNATURE_LEN + payload_len
            + (COOKIE_LEN if has_cookie else 0)
        )  # fmt: skip
        if len(packet) < fixed_end:
            raise _truncated(f"INIT lengths need {fixed_end} bytes, got {len(packet)}")
        off = INIT_FIXED_LEN
        cred = packet[off : off + cred_len]
        off += cred_len
        claim = packet[off : off + claim_len]
        off += claim_len
        sig = packet[off : off + SIGNATURE_LEN]
        off += SIGNATURE_LEN
        ct = packet[off : off + payload_len]
        off += payload_len
        cookie = None
        if has_cookie:
            cookie = packet[off : off + COOKIE_LEN]
            off += COOKIE_LEN
        statements = []
        for i in range(hop_count):
            head = PUBKEY_LEN + KEY_ID_LEN + 1
            if len(packet) < off + head:
                raise _truncated(f"hop statement {i} cut short")
            dlen = packet[off + head - 1]
            end = off + head + dlen + SIGNATURE_LEN
            if len(packet) < end:
                raise _truncated(f"hop statement {i} cut short")
            try:
                domain = packet[off + head : off + head + dlen].decode("ascii")
            except UnicodeDecodeError:
                raise _malformed(f"hop statement {i} domain is not ASCII") from None
            statements.append(
                HopStatement(
                    packet[off : off + PUBKEY_LEN],
                    packet[off + PUBKEY_LEN : off + PUBKEY_LEN + KEY_ID_LEN],
                    domain,
                    packet[end - SIGNATURE_LEN : end],
                )
            )
            off = end
        if off != len(packet):
            raise _malformed(f"{len(packet) - off} trailing bytes after INIT")
        return cls(
            sid, rid, ts, eph, next_hop, cred, claim, sig, ct, cookie, tuple(statements), packet
        )


# ---- REJECT and COOKIE -----------------------------------------------------------------
@dataclass(frozen=True)
class RejectPacket:
    reason: Reason
    session_id: bytes
    retry_after_ms: int = 0

    def encode(self) -> bytes:
        return _REJECT.pack(
            VERSION, Kind.REJECT, int(self.reason), 0, self.session_id, self.retry_after_ms
        )

    @classmethod
    def decode(cls, packet: bytes) -> RejectPacket:
        if peek_kind(packet) != Kind.REJECT:
            raise WarrantError(Reason.UNKNOWN_KIND, "not a REJECT packet")
        if len(packet) < REJECT_LEN:
            raise _truncated(f"REJECT is {REJECT_LEN} bytes, got {len(packet)}")
        if len(packet) > REJECT_LEN:
            raise _malformed(f"{len(packet) - REJECT_LEN} trailing bytes after REJECT")
        _, _, reason, flags, sid, retry = _REJECT.unpack(packet)
        if flags:
            raise _malformed(f"unknown REJECT flags {flags:#04x}")
        try:
            return cls(Reason(reason), sid, retry)
        except ValueError:
            raise _malformed(f"unknown reason {reason}") from None


@dataclass(frozen=True)
class CookiePacket:
    session_id: bytes
    nonce: bytes
    sealed_cookie: bytes  # cookie (16) + AEAD tag (16)

    def encode(self) -> bytes:
        return (
            bytes([VERSION, Kind.COOKIE, 0, 0]) + self.session_id + self.nonce + self.sealed_cookie
        )

    @classmethod
    def decode(cls, packet: bytes) -> CookiePacket:
        if peek_kind(packet) != Kind.COOKIE:
            raise WarrantError(Reason.UNKNOWN_KIND, "not a COOKIE packet")
        if len(packet) < COOKIE_PACKET_LEN:
            raise _truncated(f"COOKIE is {COOKIE_PACKET_LEN} bytes, got {len(packet)}")
        if len(packet) > COOKIE_PACKET_LEN or packet[2] or packet[3]:
            raise _malformed("COOKIE with trailing bytes or non-zero reserved bytes")
        sid = packet[4 : 4 + SESSION_ID_LEN]
        nonce = packet[12 : 12 + COOKIE_NONCE_LEN]
        return cls(sid, nonce, packet[12 + COOKIE_NONCE_LEN :])
