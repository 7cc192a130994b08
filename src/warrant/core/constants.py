"""Wire constants: the single source of truth for Python and the eBPF datapath.

`tools/gen_constants.py` renders this module into `bpf/warrant_constants.h`;
a test fails when the two disagree.  Change numbers here only, and bump
`VERSION` when a change alters bytes on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

VERSION = 1


class Kind(IntEnum):
    """Packet kinds (byte 1 of every Warrant packet)."""

    INIT = 1  # session opening: credential chain, ephemeral key, first payload
    DATA = 2  # compact session reference, sequence number, MAC, hop records
    REJECT = 3  # receiver -> sender: why a packet was refused, resend advice
    COOKIE = 4  # receiver -> sender under load: prove your address first


class Verdict(IntEnum):
    ADMIT = 0
    DROP = 1
    PASS = 2  # not Warrant traffic: not ours to judge


# ---- sizes (bytes) -------------------------------------------------------
COMMON_HEADER_LEN = 4  # version, kind, hop_count, flags
SESSION_ID_LEN = 8
SEQ_LEN = 8
MAC_LEN = 16  # SipHash-2-4 with 128-bit output
DATA_MAC_INPUT_LEN = 20  # bytes [0, 20) of a DATA packet, hop_count zeroed
DATA_HEADER_LEN = 36  # governance header of a DATA packet, before hop records
HOP_RECORD_LEN = 12
HOP_TAG_LEN = 4
HOP_MAC_LEN = 8  # SipHash-2-4 with 64-bit output
MAX_HOPS = 8
AEAD_TAG_LEN = 16
KEY_ID_LEN = 4  # receiver key id in INIT
ANCHOR_ID_LEN = 8  # anchor key id in a credential's root link
PUBKEY_LEN = 32
SIGNATURE_LEN = 64
COOKIE_LEN = 16
COOKIE_NONCE_LEN = 24
INIT_FIXED_LEN = 68
REJECT_LEN = 16
HOP_STATEMENT_MIN_LEN = 32 + 4 + 1 + 1 + 64  # key, next hop id, domain length, domain, sig
INIT_SIGNED_MASK = (2, 3)  # hop_count and flags are zeroed in signed/MACed copies
COOKIE_PACKET_LEN = 12 + COOKIE_NONCE_LEN + COOKIE_LEN + AEAD_TAG_LEN  # 68
CHAIN_DIGEST_LEN = 32
LINK_ID_LEN = 16
MAX_CHAIN_LINKS = 8
MAX_CREDENTIAL_LEN = 4096
MAX_DATAGRAM = 65507

# ---- DATA packet offsets ---------------------------------------------------
OFF_VERSION = 0
OFF_KIND = 1
OFF_HOP_COUNT = 2
OFF_FLAGS = 3
OFF_SESSION_ID = 4
OFF_SEQ = 12
OFF_MAC = 20
OFF_HOPS = 36

# ---- INIT packet offsets ---------------------------------------------------
OFF_INIT_RECEIVER_ID = 12
OFF_INIT_TIMESTAMP = 16
OFF_INIT_EPH_PUB = 24
OFF_INIT_CRED_LEN = 56
OFF_INIT_CLAIM_LEN = 58
OFF_INIT_PAYLOAD_LEN = 60
OFF_INIT_RESERVED = 62
OFF_INIT_NEXT_HOP = 64

# ---- flags -----------------------------------------------------------------
FLAG_INIT_COOKIE = 0x01  # INIT carries a cookie MAC after the payload
KNOWN_INIT_FLAGS = FLAG_INIT_COOKIE
# DATA flag: the payload is an inner IPv4 packet in clear, the header MAC also covers the
# inner packet's first TP_MAC_INNER_LEN bytes (transparent mode, SPEC 13); hop_count must
# be 0.  Every DATA MAC covers the flags byte, so on a session not bound as transparent
# the flag fails the MAC (SPEC 1.5).  0x04: 0x01, 0x40 and 0x80 stay unknown-flag
# examples in vectors and tests.
FLAG_DATA_INNER_IP = 0x04
# DATA flag, with INNER_IP only: a segment train (SPEC 13.7).  A train descriptor
# (TP_TRAIN_DESC_LEN bytes) follows the header, and the MAC covers a template of the
# inner headers that every segment of the train reproduces, so one stamp on a GSO/TSO
# super-packet authenticates each wire packet it is later cut into.
FLAG_DATA_TRAIN = 0x08
KNOWN_DATA_FLAGS = FLAG_DATA_INNER_IP | FLAG_DATA_TRAIN
TP_MAC_INNER_LEN = 40  # inner IPv4 header (20, no options) + first 20 transport bytes
TP_MAC_INPUT_LEN = DATA_MAC_INPUT_LEN + TP_MAC_INNER_LEN
# shortest inner packet carried: IPv4 header and the transport ports; one shorter than
# TP_MAC_INNER_LEN travels zero-padded to it (its IPv4 total length kept)
TP_INNER_MIN = 24
TP_ENCAP_OVERHEAD = 20 + 8 + DATA_HEADER_LEN  # outer IPv4 + UDP + DATA header: 64 bytes
# train descriptor: inner TCP sequence number of segment 0 (4), segment payload size
# (2), segments (1), the super-packet's TCP flags (1); all big-endian
TP_TRAIN_DESC_LEN = 8
TP_TRAIN_OVERHEAD = TP_ENCAP_OVERHEAD + TP_TRAIN_DESC_LEN  # 72 bytes per wire packet
TP_TRAIN_MAC_INPUT_LEN = TP_MAC_INPUT_LEN + TP_TRAIN_DESC_LEN
TP_TRAIN_MAX_SEGS = 255  # the descriptor's segment count is one byte
TP_CLAIM_OPERATION = "ip"  # claim operation of an INIT that opens a transparent session
# destination ports from here up (Linux's ephemeral range starts at 32768) share one
# egress session per (workload, destination, protocol): replies to clients' ephemeral
# ports would otherwise open a session per connection
TP_EPHEMERAL_MIN = 32768
TP_PUNT_MAX = 1500  # largest inner packet the egress program hands to the agent
# egress program outcomes (bpf/transparent_egress.c counters, datapath/transparent.py)
TP_EG_ENCAP = 0  # encapsulated on the workload's session, sent to the peer node
TP_EG_PUNT = 1  # no live session: handed to the agent (it travels in the INIT)
TP_EG_PUNT_LOST = 2  # no live session and the punt ring was full: dropped
TP_EG_SPOOFED = 3  # inner source is not the workload's registered address: dropped
TP_EG_GSO = 4  # a GSO/TSO super-packet: dropped (one Warrant header per wire packet)
TP_EG_TOO_BIG = 5  # inner packet above TP_PUNT_MAX (MTU - TP_ENCAP_OVERHEAD): dropped
TP_EG_MALFORMED = 6  # not IPv4 without options, or lengths inconsistent: dropped
TP_EG_ERROR = 7  # a helper failed (room, store): dropped
TP_EG_TRAIN = 8  # a GSO/TSO super-packet stamped once as a segment train (SPEC 13.7)
TP_EG_COUNT = 9

# ---- replay window -----------------------------------------------------------
REPLAY_RING_BITS = 4096  # bitmap ring of 64 words of 64 bits
REPLAY_WORD_BITS = 64
REPLAY_WINDOW = REPLAY_RING_BITS - REPLAY_WORD_BITS  # 4032 packets behind the newest
# DATA sequence numbers at or above this are refused (SEQ_EXHAUSTED), as WireGuard's
# REJECT_AFTER_MESSAGES: the window's top can never reach 2**64 - 1, where nothing newer
# exists, and the sender opens a new session long before (sender.REKEY_AFTER_SEQ).
# 2**63 also keeps every valid sequence number a non-negative signed 64-bit integer.
SEQ_LIMIT = 2**63

# ---- time (seconds) --------------------------------------------------------
CLOCK_SKEW = 30  # tolerance on not-before / expiry and on INIT timestamps
INIT_MAX_AGE = 60  # an INIT older than this (after skew) is refused as stale
SESSION_MAX_LIFETIME = 600  # sessions end sooner if the credential expires first
COOKIE_SECRET_LIFETIME = 120

# ---- kernel datapath (bpf/, src/warrant/datapath/) ----------------------------------
DP_CLOCK_TICK_SHIFT = 30  # bad-MAC bucket refills per tick of 2**30 ns (about 1.07 s)
DP_BAD_MAC_BURST = 64  # per session: header MACs that may fail before failures are limited
DP_BAD_MAC_REFILL = 64  # tokens added back per tick
DP_ADMIT_SAMPLE = 64  # default: one admitted DATA packet in this many becomes an event (2**k)
DP_EVENT_BUDGET = 4096  # ring-buffer events per CPU per tick; beyond, floods are only counted
DP_REPLAY_SLOT_BITS = 32  # kernel window: 4096 bits as 128 slots of (u32 tag, 32 bits), lock-free
DP_REJECT_RATE = 1000  # kernel REJECTs (SPEC 6.1 steps 2-3) per second per CPU; beyond, silent drop
DP_REJECT_BURST = 64  # kernel REJECTs a CPU may send back to back before the rate applies
DP_REJECT_TTL = 64  # IPv4 TTL (IPv6 hop limit) of a REJECT the kernel builds in place
DP_MAX_VLAN_TAGS = 2  # 802.1Q / 802.1ad tags parsed in front of IP; a deeper stack is dropped
DP_MAX_IPV6_EXT = 4  # IPv6 extension headers walked to find UDP; a longer chain is dropped
DP_PARSE_HORIZON = 256  # the UDP header must end within this many bytes of the frame's start

# ---- key derivation personalisations (BLAKE2b "person", 16 bytes max) -----------
PERSON_SESSION_ID = b"warrant1-sid"
PERSON_TRANSCRIPT = b"warrant1-th"
PERSON_MAC_KEY = b"warrant1-kmac"
PERSON_AEAD_KEY = b"warrant1-kaead"
PERSON_HOP_KEY = b"warrant1-khop"
PERSON_KEY_ID = b"warrant1-kid"
PERSON_CHAIN = b"warrant1-chain"
PERSON_LINK = b"warrant1-link"
PERSON_COOKIE = b"warrant1-cookie"
PERSON_COOKIE_KEY = b"warrant1-ckey"
SIG_CONTEXT_LINK = b"warrant/v1/link\x00"
SIG_CONTEXT_INIT = b"warrant/v1/init\x00"
SIG_CONTEXT_HOP = b"warrant/v1/hop\x00\x00"
SIG_CONTEXT_REVOCATION = b"warrant/v1/revoke"


@dataclass(frozen=True)
class ReasonInfo:
    code: int
    name: str
    summary: str
    properties: tuple[str, ...] = ()
    # Hubble's DropReason enum name (cilium api/v1/flow/flow.proto) when one fits; empty when
    # the reason is Warrant-specific and flow records carry the Warrant name instead.
    hubble: str = ""


class Reason(IntEnum):
    """Why a packet got its verdict.  One byte on the wire (REJECT) and in the kernel."""

    OK = 0
    MALFORMED = 1
    TRUNCATED = 2
    UNKNOWN_VERSION = 3
    UNKNOWN_KIND = 4
    BAD_SIGNATURE = 5
    UNKNOWN_ANCHOR = 6
    ESCALATION = 7
    EXPIRED = 8
    NOT_YET_VALID = 9
    WRONG_SCOPE = 10
    REVOKED = 11
    BAD_MAC = 12
    REPLAY = 13
    TOO_OLD = 14
    UNKNOWN_SESSION = 15
    HOP_CHAIN_BROKEN = 16
    TOO_MANY_HOPS = 17
    FORBIDDEN_DOMAIN = 18
    REQUIRED_DOMAIN_MISSING = 19
    POLICY_DENIED = 20
    OPERATION_NOT_GRANTED = 21
    DESTINATION_NOT_GRANTED = 22
    RATE_LIMITED = 23
    COOKIE_REQUIRED = 24
    BAD_HOLDER_PROOF = 25
    WRONG_RECEIVER = 26
    BAD_PAYLOAD_AUTH = 27
    SESSION_EXPIRED = 28
    NOT_WARRANT = 29
    UNTRUSTED_RELAY = 30
    BAD_COOKIE = 31
    BAD_SESSION_ID = 32
    DOMAIN_NOT_ALLOWED = 33
    PORT_MISMATCH = 34
    SESSION_TABLE_FULL = 35
    MERGED_FRAME = 36
    FRAGMENTED = 37
    UNPARSED_FRAME = 38
    SEQ_EXHAUSTED = 39
    INNER_SOURCE_MISMATCH = 40
    INNER_NOT_GRANTED = 41


REASONS: dict[Reason, ReasonInfo] = {
    r: ReasonInfo(int(r), r.name, s, p, h)
    for r, s, p, h in [
        (Reason.OK, "admitted", (), ""),
        (
            Reason.MALFORMED,
            "packet or credential does not parse",
            ("P10",),
            "INVALID_PACKET_DROPPED",
        ),
        (
            Reason.TRUNCATED,
            "packet shorter than its lengths claim",
            ("P10",),
            "INVALID_PACKET_DROPPED",
        ),
        (
            Reason.UNKNOWN_VERSION,
            "unsupported protocol version",
            ("P10",),
            "INVALID_PACKET_DROPPED",
        ),
        (Reason.UNKNOWN_KIND, "unknown packet kind", ("P10",), "INVALID_PACKET_DROPPED"),
        (
            Reason.BAD_SIGNATURE,
            "a delegation signature does not verify",
            ("P1",),
            "INVALID_IDENTITY",
        ),
        (
            Reason.UNKNOWN_ANCHOR,
            "chain not rooted in an anchor of its scope",
            ("P1",),
            "INVALID_IDENTITY",
        ),
        (
            Reason.ESCALATION,
            "a delegation widens a right of its parent",
            ("P2",),
            "INVALID_IDENTITY",
        ),
        (Reason.EXPIRED, "credential or anchor expired", ("P5",), ""),
        (Reason.NOT_YET_VALID, "credential or anchor not yet valid", ("P5",), ""),
        (Reason.WRONG_SCOPE, "trust scope not admitted here", ("P7",), "POLICY_DENIED"),
        (Reason.REVOKED, "credential or key revoked", ("P8",), ""),
        (Reason.BAD_MAC, "per-packet MAC does not verify", ("P3",), ""),
        (Reason.REPLAY, "sequence number already seen", ("P4",), ""),
        (Reason.TOO_OLD, "behind the replay window or stale session opening", ("P4",), ""),
        (
            Reason.UNKNOWN_SESSION,
            "no session for this reference; resend the credential",
            ("P11",),
            "AUTH_REQUIRED",
        ),
        (
            Reason.HOP_CHAIN_BROKEN,
            "hop records removed, reordered, inserted or spliced",
            ("P6",),
            "",
        ),
        (Reason.TOO_MANY_HOPS, "more hops than allowed", ("P6",), "POLICY_DENIED"),
        (Reason.FORBIDDEN_DOMAIN, "crossed a forbidden domain", ("P6",), "POLICY_DENIED"),
        (
            Reason.REQUIRED_DOMAIN_MISSING,
            "did not cross a required domain",
            ("P6",),
            "POLICY_DENIED",
        ),
        (Reason.POLICY_DENIED, "receiver policy does not admit this", (), "POLICY_DENIED"),
        (
            Reason.OPERATION_NOT_GRANTED,
            "credential does not grant the operation",
            ("P2",),
            "POLICY_DENIED",
        ),
        (
            Reason.DESTINATION_NOT_GRANTED,
            "credential does not grant the destination",
            ("P2",),
            "POLICY_DENIED",
        ),
        (Reason.RATE_LIMITED, "rate limit exceeded", ("P9",), ""),
        (Reason.COOKIE_REQUIRED, "receiver under load: cookie required", ("P9",), ""),
        (
            Reason.BAD_HOLDER_PROOF,
            "sender does not hold the credential's key",
            ("P1",),
            "INVALID_IDENTITY",
        ),
        (Reason.WRONG_RECEIVER, "session opening addressed to another receiver key", (), ""),
        (Reason.BAD_PAYLOAD_AUTH, "payload authentication failed", ("P3",), ""),
        (Reason.SESSION_EXPIRED, "session lifetime over; open a new one", ("P5",), "AUTH_REQUIRED"),
        (Reason.NOT_WARRANT, "not Warrant traffic", (), ""),
        (Reason.UNTRUSTED_RELAY, "relay not trusted for its domain", ("P6", "P7"), ""),
        (Reason.BAD_COOKIE, "cookie MAC does not verify", ("P9",), ""),
        (
            Reason.BAD_SESSION_ID,
            "session id does not match the opening packet",
            ("P10",),
            "INVALID_PACKET_DROPPED",
        ),
        (
            Reason.DOMAIN_NOT_ALLOWED,
            "crossed a domain outside the allowed set",
            ("P6",),
            "POLICY_DENIED",
        ),
        (
            Reason.PORT_MISMATCH,
            "session used against another destination port",
            ("P11",),
            "POLICY_DENIED",
        ),
        (
            Reason.SESSION_TABLE_FULL,
            "no room for another session",
            ("P9",),
            "CT_MAP_INSERTION_FAILED",
        ),
        (
            Reason.MERGED_FRAME,
            "several datagrams merged into one frame (GRO/GSO): not judged one by one",
            ("P10",),
            "INVALID_PACKET_DROPPED",
        ),
        (
            Reason.FRAGMENTED,
            "IP fragment of a datagram to a Warrant port",
            ("P10",),
            "INVALID_PACKET_DROPPED",
        ),
        (
            Reason.UNPARSED_FRAME,
            "frame headers the datapath cannot read to the UDP port: dropped unjudged",
            ("P10",),
            "INVALID_PACKET_DROPPED",
        ),
        (
            Reason.SEQ_EXHAUSTED,
            "sequence number at or above SEQ_LIMIT; open a new session",
            ("P4",),
            "",
        ),
        (
            Reason.INNER_SOURCE_MISMATCH,
            "transparent DATA whose inner source is not the address its INIT bound",
            ("P1",),
            "",
        ),
        (
            Reason.INNER_NOT_GRANTED,
            "transparent DATA whose inner destination, protocol or port the session's grant does not cover, or an inner packet not IPv4 without options",
            ("P1",),
            "POLICY_DENIED",
        ),
    ]
}
