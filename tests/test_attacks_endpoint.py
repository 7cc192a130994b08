"""Attack tests for the protocol core: one section per security property (BRIEF.md P1-P11).

Everything is sans-I/O: packets are bytes handed to `Receiver.handle(packet,
source, dst_port, now)`, which returns an `Outcome`.  Keys come from fixed
seeds and every random draw from a seeded stream, so each test is a
deterministic replay.  Each test plays the attacker of the threat model (sends
arbitrary bytes from any address, observes and replays, runs a relay, holds a
legitimate narrow credential, reuses addresses, floods) and asserts the DROP
verdict *and* the exact reason code of SPEC.md section 6.

The credential layer on its own is covered by tests/test_attacks_credentials.py;
here credentials only matter as they arrive inside INIT packets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import nacl.bindings
import nacl.signing
import pytest

from warrant.core import keys
from warrant.core.admission import Policy
from warrant.core.constants import (
    CLOCK_SKEW,
    COOKIE_PACKET_LEN,
    DATA_HEADER_LEN,
    FLAG_DATA_INNER_IP,
    FLAG_INIT_COOKIE,
    HOP_RECORD_LEN,
    INIT_FIXED_LEN,
    INIT_MAX_AGE,
    MAX_HOPS,
    OFF_INIT_CLAIM_LEN,
    OFF_INIT_CRED_LEN,
    OFF_INIT_EPH_PUB,
    OFF_INIT_NEXT_HOP,
    OFF_INIT_PAYLOAD_LEN,
    OFF_INIT_RECEIVER_ID,
    OFF_INIT_RESERVED,
    OFF_INIT_TIMESTAMP,
    OFF_MAC,
    OFF_SEQ,
    OFF_SESSION_ID,
    REJECT_LEN,
    REPLAY_WINDOW,
    SEQ_LIMIT,
    SESSION_MAX_LIFETIME,
    SIG_CONTEXT_INIT,
    SIGNATURE_LEN,
    Kind,
    Reason,
    Verdict,
)
from warrant.core.cookie import cookie_mac
from warrant.core.credential import Credential, Link, delegate, encode_body, issue, signed_message
from warrant.core.errors import WarrantError
from warrant.core.hop import Relay, statement_message
from warrant.core.kdf import SessionKeys, session_keys, transcript, x25519
from warrant.core.kdf import session_id as derive_session_id
from warrant.core.mac import header_mac, hop_mac, seal
from warrant.core.receiver import Claim, Outcome, Receiver
from warrant.core.revocation import RevocationList, RevocationStore
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.core.wire import (
    CookiePacket,
    DataPacket,
    HopRecord,
    HopStatement,
    InitPacket,
    RejectPacket,
)

# ---- the cast ----------------------------------------------------------------------------
NOW = 1_800_000_000.0
T = int(NOW)
STARTED = NOW - 3600.0
PORT = 8443
SCOPE_A, SCOPE_B = "acme.prod", "partner.prod"
SRC: tuple[str, int] = ("10.0.0.1", 40000)


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-endpoint/" + label.encode()).digest())


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


def rng(label: str) -> Callable[[int], bytes]:
    """A deterministic stand-in for nacl.utils.random: SHAKE-256 over label and counter."""
    counter = itertools.count()

    def draw(n: int) -> bytes:
        return hashlib.shake_256(f"{label}/{next(counter)}".encode()).digest(n)

    return draw


ANCHOR_A, ANCHOR_B = key("anchor-a"), key("anchor-b")
RX, OTHER_RX = key("receiver"), key("other-receiver")
ALICE, BOB, MALLORY = key("alice"), key("bob"), key("mallory")
RX_PUB, RX_ID = pub(RX), keys.key_id(pub(RX))
DOMAINS = ("a.net", "b.net", "c.net", "d.net", "e.net", "f.net", "g.net", "h.net")
RELAY_KEYS = [key(f"relay-{d}") for d in DOMAINS]
EVIL_RELAY = key("relay-evil")  # configured nowhere

GRANT = Grant(
    operations=("orders.*",),
    destinations=(Destination("orders", PORT, PORT),),
    not_before=T - 3600,
    expires=T + 3600,
)
CRED = issue(ANCHOR_A, SCOPE_A, pub(ALICE), GRANT).encode()
CLAIM = Claim("orders.read", "orders", PORT)


def anchors_mapping(
    anchors: Sequence[tuple[str, nacl.signing.SigningKey]] = ((SCOPE_A, ANCHOR_A),),
    relays: dict[str, list[nacl.signing.SigningKey]] | None = None,
) -> dict[str, Any]:
    scopes: dict[str, Any] = {}
    for scope, k in anchors:
        scopes.setdefault(scope, {"anchors": []})["anchors"].append(keys.encode_public(pub(k)))
    if relays is None:
        relays = {d: [k] for d, k in zip(DOMAINS, RELAY_KEYS, strict=True)}
    return {
        "scopes": scopes,
        "relays": {d: [keys.encode_public(pub(k)) for k in ks] for d, ks in relays.items()},
    }


def policy(
    *,
    anchors: Sequence[tuple[str, nacl.signing.SigningKey]] = ((SCOPE_A, ANCHOR_A),),
    relays: dict[str, list[nacl.signing.SigningKey]] | None = None,
    scopes: list[str] | None = None,
    default: str = "allow",
    rules: Sequence[dict[str, Any]] = (),
    **limits: float,
) -> Policy:
    doc: dict[str, Any] = {
        "anchors": anchors_mapping(anchors, relays),
        "default": default,
        "rules": list(rules),
        "limits": limits,
    }
    if scopes is not None:
        doc["scopes"] = scopes
    return Policy.from_text(json.dumps(doc), "<test policy>")


NO_LIMITS: dict[str, float] = {
    "init_rate_per_source": 1e9,
    "init_burst": 1e9,
    "load_threshold": 1e9,
}


def receiver(
    pol: Policy | None = None,
    *,
    started_at: float = STARTED,
    revocations: RevocationStore | None = None,
    signing_key: nacl.signing.SigningKey = RX,
) -> Receiver:
    return Receiver(
        signing_key,
        pol if pol is not None else policy(),
        started_at=started_at,
        revocations=revocations,
        random=rng("receiver"),
    )


def sender(
    cred: bytes = CRED,
    holder: nacl.signing.SigningKey = ALICE,
    claim: Claim = CLAIM,
    *,
    next_hop: bytes | None = None,
    seed: str = "sender",
) -> Sender:
    return Sender(holder, cred, RX_PUB, claim, next_hop_public=next_hop, random=rng(seed))


def judge(
    rx: Receiver,
    packet: bytes,
    *,
    source: tuple[str, int] = SRC,
    port: int = PORT,
    now: float = NOW,
) -> Outcome:
    """Hand one datagram to the receiver and check the invariants every outcome obeys."""
    out = rx.handle(packet, source, port, now)
    assert isinstance(out, Outcome)
    if out.verdict == Verdict.ADMIT:
        assert out.reason == Reason.OK and out.authority is not None and out.reply is None
    else:
        assert out.verdict == Verdict.DROP and out.reason != Reason.OK
        assert out.payload is None
    if out.reply is not None:  # no amplification, and only the replies SPEC 3.3/3.4 allow
        assert len(out.reply) <= len(packet)
        if out.reply[1] == Kind.REJECT:
            reject = RejectPacket.decode(out.reply)
            assert reject.reason == out.reason
            assert out.reason in (Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED, Reason.TOO_OLD)
        else:
            assert out.reply[1] == Kind.COOKIE
            assert out.reason in (Reason.COOKIE_REQUIRED, Reason.BAD_COOKIE)
    return out


def admitted(out: Outcome, payload: bytes | None = None) -> Outcome:
    assert (out.verdict, out.reason) == (Verdict.ADMIT, Reason.OK), out.detail
    if payload is not None:
        assert out.payload == payload
    return out


def dropped(out: Outcome, reason: Reason) -> Outcome:
    assert (out.verdict, out.reason) == (Verdict.DROP, reason), (out.reason.name, out.detail)
    return out


# ---- building packets by hand (what an attacker can do) ------------------------------------
@dataclasses.dataclass
class Opened:
    """An INIT built by hand, with the secrets its builder holds."""

    packet: bytes
    init: InitPacket
    keys: SessionKeys

    @property
    def sid(self) -> bytes:
        return self.init.session_id

    def data(self, seq: int, payload: bytes = b"data") -> bytes:
        return make_data(self.sid, seq, self.keys, payload)


def x25519_base(secret: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_base(secret)


def build_init(
    *,
    holder: nacl.signing.SigningKey = ALICE,
    cred: bytes = CRED,
    claim: bytes | Claim = CLAIM,
    eph_secret: bytes | None = None,
    eph_public: bytes | None = None,
    ts_ms: int | None = None,
    receiver_id: bytes = RX_ID,
    next_hop: bytes = RX_ID,
    payload: bytes | None = b"hello",
    receiver_public: bytes = RX_PUB,
    sid: bytes | None = None,
) -> Opened:
    """An INIT exactly as Sender.open builds it, with every field under the caller's control."""
    if eph_secret is None:
        eph_secret = hashlib.sha256(b"eph/" + (cred + bytes(claim_bytes(claim)))).digest()
    eph = eph_public if eph_public is not None else x25519_base(eph_secret)
    ts = int(NOW * 1000) if ts_ms is None else ts_ms
    session = sid if sid is not None else derive_session_id(eph, receiver_id, cred)
    c = claim_bytes(claim)
    placeholder = b"" if payload is None else bytes(len(payload) + 16)
    unsigned = InitPacket(session, receiver_id, ts, eph, next_hop, cred, c, b"", placeholder)
    sig = holder.sign(SIG_CONTEXT_INIT + unsigned.signed_region()).signature
    th = transcript(unsigned.signed_region(), sig)
    try:
        ks = session_keys(x25519(eph_secret, keys.x25519_public(receiver_public)), th)
    except Exception:  # a low-order eph_public: the builder holds no usable keys
        ks = SessionKeys(bytes(16), bytes(32))
    ct = seal(ks.aead, 0, payload) if payload is not None else b""
    init = InitPacket(session, receiver_id, ts, eph, next_hop, cred, c, sig, ct)
    return Opened(init.encode(), init, ks)


def claim_bytes(claim: bytes | Claim) -> bytes:
    return claim.encode() if isinstance(claim, Claim) else claim


def make_data(
    sid: bytes, seq: int, ks: SessionKeys, payload: bytes = b"data", *, aead: bytes | None = None
) -> bytes:
    mac = header_mac(ks.mac, DataPacket.mac_input(sid, seq))
    return DataPacket(sid, seq, mac, (), seal(aead or ks.aead, seq, payload)).encode()


def with_statements(packet: bytes, statements: Sequence[HopStatement]) -> bytes:
    """The same INIT with its hop statements replaced (hop_count follows)."""
    init = InitPacket.decode(packet)
    return dataclasses.replace(init, statements=tuple(statements), raw=b"").encode()


def with_hops(packet: bytes, hops: Sequence[HopRecord]) -> bytes:
    data = DataPacket.decode(packet)
    return dataclasses.replace(data, hops=tuple(hops)).encode()


def flip(packet: bytes, offset: int, bit: int) -> bytes:
    out = bytearray(packet)
    out[offset] ^= 1 << bit
    return bytes(out)


def bit_flips(packet: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    for offset in range(start, len(packet) if end is None else end):
        for bit in range(8):
            yield offset, flip(packet, offset, bit)


def relays(n: int, *, first: int = 0, receiver_public: bytes = RX_PUB) -> list[Relay]:
    """A chain of n trusted relays, relay i in DOMAINS[first + i], the last forwarding to RX."""
    ks = RELAY_KEYS[first : first + n]
    out = []
    for i, k in enumerate(ks):
        nxt = pub(ks[i + 1]) if i + 1 < n else receiver_public
        out.append(Relay(k, DOMAINS[first + i], nxt, receiver_public))
    return out


def through(packet: bytes, path: Sequence[Relay]) -> bytes:
    for relay in path:
        packet = relay.forward(packet)
    return packet


def open_session(
    rx: Receiver, s: Sender | None = None, path: Sequence[Relay] = (), payload: bytes = b"hello"
) -> Sender:
    s = s or sender(next_hop=path[0].public if path else None)
    admitted(judge(rx, through(s.open(payload, NOW), path)), payload)
    return s


def test_hand_built_init_matches_sender() -> None:
    """The attacker's builder is byte-identical to Sender.open (so attacks start from real packets)."""
    s = sender(seed="same")
    packet = s.open(b"hello", NOW)
    eph_secret = rng("same")(32)
    assert build_init(eph_secret=eph_secret).packet == packet


def test_honest_session_is_admitted_with_its_authority() -> None:
    rx = receiver()
    s = sender()
    out = admitted(judge(rx, s.open(b"first", NOW)), b"first")
    assert out.authority is not None
    assert (out.authority.scope, out.authority.operation, out.authority.port) == (
        SCOPE_A,
        "orders.read",
        PORT,
    )
    assert out.authority.holder == keys.key_id(pub(ALICE)).hex()
    for i in range(1, 4):
        admitted(judge(rx, s.seal(b"m%d" % i), now=NOW + i), b"m%d" % i)
    admitted(judge(rx, s.open(None, NOW + 5), now=NOW + 5))  # INIT without payload
    assert len(rx.sessions) == 2


# =========================================================================================
# P1 forgery: a credential not chained to an anchor of its scope, or not held by the sender
# =========================================================================================
def forged_root(signer: nacl.signing.SigningKey, anchor_public: bytes, holder: bytes) -> bytes:
    body = encode_body(SCOPE_A, keys.anchor_id(anchor_public), holder, GRANT)
    sig = signer.sign(signed_message(bytes(32), body)).signature
    return Credential((Link.decode(body, sig, root=True),)).encode()


def forged_link(
    parent: bytes, signer: nacl.signing.SigningKey, holder: bytes, grant: Grant
) -> bytes:
    """Append a link signed by `signer`, bypassing delegate()'s attenuation check."""
    cred = Credential.decode(parent)
    body = encode_body(None, None, holder, grant)
    sig = signer.sign(signed_message(cred.chain_digest, body)).signature
    return Credential((*cred.links, Link.decode(body, sig, root=False))).encode()


@pytest.mark.parametrize(
    ("cred", "reason"),
    [
        # Mallory signs a root naming the real anchor's id: the signature does not verify.
        (forged_root(MALLORY, pub(ANCHOR_A), pub(MALLORY)), Reason.BAD_SIGNATURE),
        # Mallory anchors a chain in her own key: not an anchor of acme.prod.
        (forged_root(MALLORY, pub(MALLORY), pub(MALLORY)), Reason.UNKNOWN_ANCHOR),
        # An anchor of another scope cannot issue for acme.prod (federation is configuration).
        (forged_root(ANCHOR_B, pub(ANCHOR_B), pub(MALLORY)), Reason.UNKNOWN_ANCHOR),
        # A link delegated by someone who does not hold the parent.
        (forged_link(CRED, MALLORY, pub(MALLORY), Grant()), Reason.BAD_SIGNATURE),
    ],
    ids=["root-signed-by-mallory", "mallory-as-anchor", "anchor-of-other-scope", "bad-link-sig"],
)
def test_p1_forged_chain_in_init(cred: bytes, reason: Reason) -> None:
    rx = receiver(policy(anchors=((SCOPE_A, ANCHOR_A), (SCOPE_B, ANCHOR_B))))
    dropped(judge(rx, build_init(holder=MALLORY, cred=cred).packet), reason)
    assert len(rx.sessions) == 0


def test_p1_init_signed_by_someone_not_holding_the_credential_key() -> None:
    rx = receiver()
    # Mallory presents Alice's credential and signs the INIT with her own key.
    dropped(judge(rx, build_init(holder=MALLORY, cred=CRED).packet), Reason.BAD_HOLDER_PROOF)
    # Bob holds a delegation from Alice; he cannot use Alice's own credential either.
    dropped(judge(rx, build_init(holder=BOB, cred=CRED).packet), Reason.BAD_HOLDER_PROOF)


def test_p1_stolen_credential_replayed_with_attackers_ephemeral_key() -> None:
    rx = receiver()
    honest = sender().open(b"alice", NOW)
    init = InitPacket.decode(honest)
    # Mallory copies credential, claim and holder signature, swaps in her own ephemeral
    # key (so that she could derive the session keys) and fixes the session id.
    eph = x25519_base(b"\x11" * 32)
    sid = derive_session_id(eph, RX_ID, init.credential)
    stolen = dataclasses.replace(init, eph_public=eph, session_id=sid, raw=b"").encode()
    dropped(judge(rx, stolen), Reason.BAD_HOLDER_PROOF)
    # Without fixing the session id the INIT does not even reach the signature check.
    lazy = dataclasses.replace(init, eph_public=eph, raw=b"").encode()
    dropped(judge(rx, lazy), Reason.BAD_SESSION_ID)
    # Signing with her own key instead: still not the credential's holder.
    dropped(
        judge(rx, build_init(holder=MALLORY, eph_secret=b"\x11" * 32).packet),
        Reason.BAD_HOLDER_PROOF,
    )
    admitted(judge(rx, honest), b"alice")  # the honest INIT is untouched by all this


# =========================================================================================
# P2 escalation: widening delegations, operations and destinations not granted
# =========================================================================================
ROOT_WITH_LIMITS = issue(
    ANCHOR_A,
    SCOPE_A,
    pub(ALICE),
    Grant(
        operations=("orders.*",),
        destinations=(Destination("orders", 8000, 8999),),
        not_before=T - 3600,
        expires=T + 3600,
        max_hops=2,
        allowed_domains=("a.net", "b.net"),
        required_domains=("a.net",),
        forbidden_domains=("evil.net",),
        rate=100,
    ),
).encode()


@pytest.mark.parametrize(
    "grant",
    [
        Grant(operations=("*",)),
        Grant(operations=("payments.write",)),
        Grant(destinations=(Destination("orders", 8000, 9000),)),
        Grant(destinations=(Destination("*", PORT, PORT),)),
        Grant(not_before=T - 7200),
        Grant(expires=T + 7200),
        Grant(max_hops=3),
        Grant(allowed_domains=("a.net", "b.net", "c.net")),
        Grant(required_domains=()),
        Grant(forbidden_domains=()),
        Grant(rate=101),
    ],
    ids=[
        "ops-star",
        "ops-other",
        "port-range",
        "any-service",
        "not-before",
        "expiry",
        "max-hops",
        "allowed-domains",
        "required-domains",
        "forbidden-domains",
        "rate",
    ],
)
def test_p2_escalated_delegation_inside_init(grant: Grant) -> None:
    """Alice signs Bob a link wider than her own: the receiver refuses the whole INIT."""
    cred = forged_link(ROOT_WITH_LIMITS, ALICE, pub(BOB), grant)
    rx = receiver()
    dropped(judge(rx, build_init(holder=BOB, cred=cred).packet), Reason.ESCALATION)


def test_p2_honest_narrow_delegation_is_admitted_with_narrow_rights() -> None:
    narrow = delegate(
        Credential.decode(CRED), ALICE, pub(BOB), Grant(operations=("orders.read",))
    ).encode()
    rx = receiver()
    out = admitted(judge(rx, build_init(holder=BOB, cred=narrow).packet))
    assert out.authority is not None and out.authority.depth == 2
    # The narrowed right is enforced: Bob may not write, though Alice may.
    write = Claim("orders.write", "orders", PORT)
    dropped(
        judge(rx, build_init(holder=BOB, cred=narrow, claim=write).packet),
        Reason.OPERATION_NOT_GRANTED,
    )
    admitted(judge(rx, build_init(holder=ALICE, claim=write).packet))


@pytest.mark.parametrize(
    ("claim", "port", "reason"),
    [
        (Claim("payments.write", "orders", PORT), PORT, Reason.OPERATION_NOT_GRANTED),
        (Claim("orders", "orders", PORT), PORT, Reason.OPERATION_NOT_GRANTED),  # `a.*` excludes `a`
        (Claim("orders.read", "billing", PORT), PORT, Reason.DESTINATION_NOT_GRANTED),
        (Claim("orders.read", "orders", 9000), 9000, Reason.DESTINATION_NOT_GRANTED),
        (Claim("orders.read", "orders", PORT), 9000, Reason.PORT_MISMATCH),
        (Claim("orders.read", "orders", 9000), PORT, Reason.PORT_MISMATCH),
    ],
    ids=["operation", "operation-stem", "service", "port", "claim-vs-udp-port", "udp-vs-claim"],
)
def test_p2_operation_or_destination_not_granted(claim: Claim, port: int, reason: Reason) -> None:
    rx = receiver()
    dropped(judge(rx, build_init(claim=claim).packet, port=port), reason)


def test_p2_data_is_bound_to_the_claimed_port() -> None:
    rx = receiver()
    s = open_session(rx)
    packet = s.seal(b"x")
    dropped(judge(rx, packet, port=PORT + 1), Reason.PORT_MISMATCH)
    admitted(judge(rx, packet), b"x")


def test_p2_credential_rate_limits_data() -> None:
    cred = issue(ANCHOR_A, SCOPE_A, pub(ALICE), dataclasses.replace(GRANT, rate=3)).encode()
    rx = receiver()
    s = open_session(rx, sender(cred))
    for i in range(3):
        admitted(judge(rx, s.seal(b"%d" % i)))
    limited = s.seal(b"over")
    dropped(judge(rx, limited), Reason.RATE_LIMITED)
    # Authentic, so recorded (SPEC 6.3): a copy cannot spend the next second's allowance.
    dropped(judge(rx, limited, now=NOW + 1), Reason.REPLAY)
    admitted(judge(rx, s.seal(b"next"), now=NOW + 1), b"next")


# =========================================================================================
# P3 binding: no accepted DATA without the session key; every bit is authenticated
# =========================================================================================
def data_flip_reason(offset: int, n_hops: int) -> set[Reason]:
    """What a single bit flip at `offset` of a DATA packet with n hops must be dropped for."""
    hops_end = DATA_HEADER_LEN + HOP_RECORD_LEN * n_hops
    if offset == 0:
        return {Reason.UNKNOWN_VERSION}
    if offset == 1:
        return {Reason.UNKNOWN_KIND}
    if offset == 2:  # hop_count: outside the origin MAC, guarded by the hop chain and parser
        return {Reason.HOP_CHAIN_BROKEN, Reason.TRUNCATED, Reason.MALFORMED}
    if offset == 3:  # unknown flags: MALFORMED; INNER_IP is known but covered by the MAC
        return {Reason.MALFORMED, Reason.BAD_MAC}
    if OFF_SESSION_ID <= offset < OFF_SEQ:
        return {Reason.UNKNOWN_SESSION}
    if OFF_SEQ <= offset < DATA_HEADER_LEN:  # seq and the MAC itself: the MAC region
        return {Reason.BAD_MAC}
    if offset < hops_end:
        return {Reason.HOP_CHAIN_BROKEN}
    return {Reason.BAD_PAYLOAD_AUTH}


@pytest.mark.parametrize("n_hops", [0, 2])
def test_p3_bit_flip_in_every_byte_of_data(n_hops: int) -> None:
    rx = receiver()
    path = relays(n_hops)
    s = open_session(rx, path=path)
    genuine = through(s.seal(b"the payload: forty bytes of it, exactly."), path)
    seen: dict[Reason, int] = {}
    for offset, mutated in bit_flips(genuine):
        out = judge(rx, mutated)
        assert out.verdict == Verdict.DROP, f"flip at byte {offset} admitted"
        assert out.reason in data_flip_reason(offset, n_hops), (offset, out.reason.name)
        seen[out.reason] = seen.get(out.reason, 0) + 1
    # the MAC region, plus the INNER_IP flag bit (known, so parsed, but MAC-covered)
    assert seen[Reason.BAD_MAC] == 8 * (DATA_HEADER_LEN - OFF_SEQ) + 1
    assert seen[Reason.BAD_PAYLOAD_AUTH] == 8 * (40 + 16)
    # None of the 8 * len forgeries moved the replay window: the genuine packet still passes.
    admitted(judge(rx, genuine), b"the payload: forty bytes of it, exactly.")


def test_p3_transparent_flag_on_an_ordinary_session_fails_the_mac_in_the_kernel() -> None:
    """SPEC 1.5: the flags byte is MAC-covered in the kernel too.  INNER_IP set on a
    captured ordinary DATA packet (a known flag, so it parses) is BAD_MAC, not admitted."""
    import socket

    from netns_helpers import require_datapath

    require_datapath()
    from warrant.datapath import libbpf
    from warrant.datapath.loader import Datapath
    from warrant.datapath.wire import udp_frame

    rx = receiver()
    s = open_session(rx)
    session = rx.sessions.get(s.session_id)
    assert session is not None
    genuine = s.seal(b"payload")
    forged = flip(genuine, 3, FLAG_DATA_INNER_IP.bit_length() - 1)
    got = []
    with Datapath.open(pin_root=None) as dp:
        dp.set_ports([PORT])
        dp.set_time(NOW)
        dp.set_config(admit_sample=1, pass_events=True, budget=False)
        dp.install_session(session)
        run = libbpf.TestRunner(dp.xdp_fd, 2048)
        for packet in (forged, genuine):
            run.run(udp_frame(packet, PORT, sport=4000, src=socket.inet_aton("10.0.0.1")))
            (ev,) = dp.events()
            got.append((ev.verdict, ev.reason))
    assert got == [(Verdict.DROP, Reason.BAD_MAC), (Verdict.ADMIT, Reason.OK)]


def test_p3_data_header_flips_match_the_kernel_steps() -> None:
    """check_data_header (SPEC 6.1 steps 1-7, what the kernel runs) reaches the same reasons."""
    rx = receiver()
    s = open_session(rx)
    genuine = s.seal(b"payload")
    for offset, mutated in bit_flips(genuine, 4, DATA_HEADER_LEN):
        reason, _, _ = rx.check_data_header(mutated, PORT, NOW)
        assert reason == judge(rx, mutated).reason, offset


def init_flip_reasons(init: InitPacket, offset: int) -> set[Reason]:
    cred_end = INIT_FIXED_LEN + len(init.credential)
    claim_end = cred_end + len(init.claim)
    sig_end = claim_end + SIGNATURE_LEN
    lengths = {Reason.TRUNCATED, Reason.MALFORMED}
    if offset == 0:
        return {Reason.UNKNOWN_VERSION}
    if offset == 1:
        return {Reason.UNKNOWN_KIND}
    if offset in (2, 3):  # hop_count, flags
        return lengths
    if OFF_SESSION_ID <= offset < OFF_INIT_RECEIVER_ID:
        return {Reason.BAD_SESSION_ID}
    if OFF_INIT_RECEIVER_ID <= offset < OFF_INIT_TIMESTAMP:
        return {Reason.WRONG_RECEIVER}
    if OFF_INIT_TIMESTAMP <= offset < OFF_INIT_EPH_PUB:
        return {Reason.NOT_YET_VALID, Reason.TOO_OLD, Reason.BAD_HOLDER_PROOF}
    if OFF_INIT_EPH_PUB <= offset < OFF_INIT_CRED_LEN:
        return {Reason.BAD_SESSION_ID}
    if OFF_INIT_CRED_LEN <= offset < OFF_INIT_RESERVED:
        return lengths
    if OFF_INIT_RESERVED <= offset < OFF_INIT_NEXT_HOP:
        return {Reason.MALFORMED}
    if OFF_INIT_NEXT_HOP <= offset < INIT_FIXED_LEN:
        return {Reason.BAD_HOLDER_PROOF}
    if offset < cred_end:  # the session id covers every credential byte
        return {Reason.BAD_SESSION_ID}
    if offset < sig_end:  # claim and holder signature
        return {Reason.BAD_HOLDER_PROOF}
    if offset < sig_end + len(init.ciphertext):
        return {Reason.BAD_PAYLOAD_AUTH}
    # hop statements: relay key, next hop, domain length, domain, signature
    return {Reason.HOP_CHAIN_BROKEN, Reason.UNTRUSTED_RELAY, Reason.MALFORMED, Reason.TRUNCATED}


@pytest.mark.parametrize("n_hops", [0, 2])
def test_p3_bit_flip_in_every_byte_of_init(n_hops: int) -> None:
    rx = receiver(policy(**NO_LIMITS))
    path = relays(n_hops)
    s = sender(next_hop=path[0].public if path else None)
    genuine = through(s.open(b"first payload", NOW), path)
    init = InitPacket.decode(genuine)
    seen: set[Reason] = set()
    for offset, mutated in bit_flips(genuine):
        out = judge(rx, mutated)
        assert out.verdict == Verdict.DROP, f"flip at byte {offset} admitted"
        assert out.reason in init_flip_reasons(init, offset), (offset, out.reason.name)
        seen.add(out.reason)
    assert len(rx.sessions) == 0
    assert {Reason.BAD_SESSION_ID, Reason.BAD_HOLDER_PROOF, Reason.BAD_PAYLOAD_AUTH} <= seen
    if n_hops:
        assert Reason.HOP_CHAIN_BROKEN in seen
    admitted(judge(rx, genuine), b"first payload")


def test_p3_bit_flip_in_every_byte_of_an_init_with_cookie() -> None:
    """Under load the cookie MAC covers signed region, signature and payload (SPEC 8)."""
    rx = receiver(policy(load_threshold=1, init_rate_per_source=1e9, init_burst=1e9))
    s = sender()
    out = dropped(judge(rx, s.open(b"first payload", NOW)), Reason.COOKIE_REQUIRED)
    assert out.reply is not None
    genuine = s.handle(out.reply, NOW)
    assert genuine is not None
    init = InitPacket.decode(genuine)
    cookie_at = len(genuine) - 16
    for offset, mutated in bit_flips(genuine):
        out = judge(rx, mutated)
        assert out.verdict == Verdict.DROP, f"flip at byte {offset} admitted"
        if offset >= cookie_at:
            assert out.reason == Reason.BAD_COOKIE
        else:
            base = init_flip_reasons(init, offset)
            if base & {Reason.BAD_HOLDER_PROOF, Reason.BAD_PAYLOAD_AUTH}:
                base = (base - {Reason.BAD_HOLDER_PROOF, Reason.BAD_PAYLOAD_AUTH}) | {
                    Reason.BAD_COOKIE
                }
            assert out.reason in base, (offset, out.reason.name)
    admitted(judge(rx, genuine), b"first payload")


def test_p3_cookie_mac_is_checked_even_when_not_under_load() -> None:
    """SPEC 6.2 step 6: a cookie MAC that is present is checked, under load or not.

    Random cookie bytes are refused (BAD_COOKIE) with a COOKIE reply, so a sender whose
    cookie went stale recovers in one round trip; the refusal opens nothing, and the
    same INIT without the cookie is then admitted.
    """
    rx = receiver()
    assert not rx.under_load(NOW)
    opened = build_init()
    garbage = dataclasses.replace(opened.init, cookie_mac=b"\xee" * 16).encode()
    out = dropped(judge(rx, garbage), Reason.BAD_COOKIE)
    assert out.reply is not None and out.reply[1] == Kind.COOKIE
    admitted(judge(rx, opened.packet), b"hello")


def test_p3_data_sealed_with_another_sessions_key() -> None:
    rx = receiver()
    one = build_init(eph_secret=b"\x01" * 32)
    two = build_init(eph_secret=b"\x02" * 32)
    admitted(judge(rx, one.packet))
    admitted(judge(rx, two.packet))
    assert one.keys != two.keys
    # Session one's id, MAC computed with session two's key.
    dropped(judge(rx, make_data(one.sid, 1, two.keys)), Reason.BAD_MAC)
    # Session one's header (valid MAC), payload sealed under session two's AEAD key.
    dropped(judge(rx, make_data(one.sid, 1, one.keys, aead=two.keys.aead)), Reason.BAD_PAYLOAD_AUTH)
    # A genuine packet of session two relabelled as session one.
    relabelled = bytearray(two.data(1))
    relabelled[OFF_SESSION_ID:OFF_SEQ] = one.sid
    dropped(judge(rx, bytes(relabelled)), Reason.BAD_MAC)
    # A payload moved to another sequence number of the same session (nonce = seq).
    moved = DataPacket.decode(one.data(2, b"two"))
    header = DataPacket.decode(one.data(3, b"six"))
    spliced = dataclasses.replace(header, ciphertext=moved.ciphertext).encode()
    dropped(judge(rx, spliced), Reason.BAD_PAYLOAD_AUTH)
    admitted(judge(rx, one.data(1, b"ok")), b"ok")
    admitted(judge(rx, two.data(1, b"ok")), b"ok")


def test_p3_attacker_without_keys_cannot_produce_accepted_data() -> None:
    rx = receiver()
    victim = build_init()
    admitted(judge(rx, victim.packet))
    # Every key the attacker can compute from public material yields BAD_MAC.
    guesses = [
        SessionKeys(bytes(16), bytes(32)),
        build_init(eph_secret=b"\x66" * 32).keys,  # her own ephemeral key, same credential
        SessionKeys(victim.sid * 2, victim.sid * 4),
    ]
    for ks in guesses:
        for seq in (1, 2, 2**63):
            dropped(judge(rx, make_data(victim.sid, seq, ks)), Reason.BAD_MAC)


# =========================================================================================
# P4 replay: per-session sliding window; replayed INITs give no usable session
# =========================================================================================
def test_p4_same_seq_twice_is_replay() -> None:
    rx = receiver()
    s = open_session(rx)
    packet = s.seal(b"once")
    admitted(judge(rx, packet), b"once")
    dropped(judge(rx, packet), Reason.REPLAY)
    dropped(judge(rx, packet, now=NOW + 100, source=("192.0.2.7", 1)), Reason.REPLAY)


def test_p4_seq_zero_is_the_inits_payload() -> None:
    rx = receiver()
    opened = build_init()
    admitted(judge(rx, opened.packet))
    dropped(judge(rx, opened.data(0)), Reason.REPLAY)


def test_p4_window_edges() -> None:
    rx = receiver()
    opened = build_init()
    admitted(judge(rx, opened.packet))
    top = 5000
    admitted(judge(rx, opened.data(top)))
    dropped(judge(rx, opened.data(top - REPLAY_WINDOW)), Reason.TOO_OLD)
    dropped(judge(rx, opened.data(1)), Reason.TOO_OLD)
    admitted(judge(rx, opened.data(top - REPLAY_WINDOW + 1)))  # the oldest fresh number
    dropped(judge(rx, opened.data(top - REPLAY_WINDOW + 1)), Reason.REPLAY)
    # A jump far ahead: everything behind the new window is TOO_OLD, including old `top`.
    admitted(judge(rx, opened.data(SEQ_LIMIT - 1)))  # the highest usable number
    dropped(judge(rx, opened.data(top)), Reason.TOO_OLD)
    dropped(judge(rx, opened.data(SEQ_LIMIT - 1)), Reason.REPLAY)
    for seq in (SEQ_LIMIT, 2**64 - 1):
        dropped(judge(rx, opened.data(seq)), Reason.SEQ_EXHAUSTED)


def test_p4_out_of_order_within_window_is_admitted_once() -> None:
    rx = receiver()
    opened = build_init()
    admitted(judge(rx, opened.packet))
    order = [5, 3, 4, 1, 2, 100, 50, 99, 4000, 64, 128, 63, 4033, 65]
    for seq in order:
        admitted(judge(rx, opened.data(seq, b"%d" % seq)), b"%d" % seq)
    top = max(order)
    for seq in order:  # 4033 - 1 = 4032 is behind the window by then
        expected = Reason.REPLAY if top - seq < REPLAY_WINDOW else Reason.TOO_OLD
        dropped(judge(rx, opened.data(seq)), expected)
    assert top - 1 == REPLAY_WINDOW


def test_p4_forged_packets_do_not_move_the_window() -> None:
    rx = receiver()
    opened = build_init()
    admitted(judge(rx, opened.packet))
    forged = make_data(opened.sid, 10**9, SessionKeys(bytes(16), bytes(32)))
    dropped(judge(rx, forged), Reason.BAD_MAC)
    # Valid header, payload tampered on the path: the window is not updated either.
    tampered = flip(opened.data(7), -1, 0)
    dropped(judge(rx, tampered), Reason.BAD_PAYLOAD_AUTH)
    admitted(judge(rx, opened.data(7)))
    admitted(judge(rx, opened.data(1)))


def test_p4_replayed_init_is_refused_and_gives_no_usable_session() -> None:
    rx = receiver()
    opened = build_init()
    admitted(judge(rx, opened.packet), b"hello")
    out = dropped(judge(rx, opened.packet, source=("203.0.113.9", 999)), Reason.REPLAY)
    assert out.reply is None
    # Even had the receiver never seen it, replaying an INIT opens a session only its
    # sender can use: the attacker lacks the ephemeral secret, so no DATA of hers passes.
    fresh = receiver()
    admitted(judge(fresh, opened.packet, source=("203.0.113.9", 999)))
    attacker_keys = build_init(eph_secret=b"\x66" * 32).keys
    for seq in (1, 2, 1000):
        dropped(judge(fresh, make_data(opened.sid, seq, attacker_keys)), Reason.BAD_MAC)
    admitted(judge(fresh, opened.data(1, b"sender")), b"sender")


def test_p4_replayed_init_after_session_end_hits_the_tombstone() -> None:
    cred = issue(ANCHOR_A, SCOPE_A, pub(ALICE), dataclasses.replace(GRANT, expires=T + 10)).encode()
    rx = receiver()
    opened = build_init(cred=cred)
    admitted(judge(rx, opened.packet))
    dropped(judge(rx, opened.data(1), now=NOW + 40), Reason.SESSION_EXPIRED)
    assert len(rx.sessions) == 0
    dropped(judge(rx, opened.packet, now=NOW + 40), Reason.REPLAY)


def test_p4_init_replayed_after_receiver_restart() -> None:
    s = sender()
    packet = s.open(b"once only", NOW)
    admitted(judge(receiver(), packet), b"once only")
    restarted = receiver(started_at=NOW + 5)  # the session table is gone
    out = dropped(judge(restarted, packet, now=NOW + 10), Reason.TOO_OLD)
    assert out.payload is None
    assert out.reply is not None and RejectPacket.decode(out.reply).reason == Reason.TOO_OLD
    # Losing state costs the honest sender one INIT, never a wrong verdict.
    reopen = s.handle(out.reply, NOW + 10)
    assert reopen is not None
    admitted(judge(restarted, reopen, now=NOW + 10))
    admitted(judge(restarted, s.seal(b"after"), now=NOW + 11), b"after")


def test_p4_data_after_restart_asks_for_the_credential_again() -> None:
    s = sender()
    admitted(judge(receiver(), s.open(None, NOW)))
    restarted = receiver(started_at=NOW + 1)
    out = dropped(judge(restarted, s.seal(b"lost"), now=NOW + 2), Reason.UNKNOWN_SESSION)
    assert out.reply is not None
    reopen = s.handle(out.reply, NOW + 2)
    assert reopen is not None
    admitted(judge(restarted, reopen, now=NOW + 2))
    admitted(judge(restarted, s.seal(b"again"), now=NOW + 3), b"again")


def test_p4_stale_init() -> None:
    rx = receiver()
    limit = INIT_MAX_AGE + CLOCK_SKEW
    stale = build_init(ts_ms=int((NOW - limit) * 1000) - 1).packet
    out = dropped(judge(rx, stale), Reason.TOO_OLD)
    assert out.reply is None  # stale, not "predates my state": no REJECT
    admitted(judge(rx, build_init(ts_ms=int((NOW - limit) * 1000)).packet))


# =========================================================================================
# P5 time: expiry and not-before with CLOCK_SKEW; INIT freshness; session lifetime
# =========================================================================================
@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (NOW + 3600 + CLOCK_SKEW + 1, Reason.EXPIRED),
        (NOW + 3600 + CLOCK_SKEW, Reason.OK),
        (NOW - 3600 - CLOCK_SKEW - 1, Reason.NOT_YET_VALID),
        (NOW - 3600 - CLOCK_SKEW, Reason.OK),
    ],
    ids=["expired", "expiry-within-skew", "not-yet-valid", "not-before-within-skew"],
)
def test_p5_credential_validity_window(now: float, reason: Reason) -> None:
    rx = receiver(started_at=now - 3600)
    out = judge(rx, build_init(ts_ms=int(now * 1000)).packet, now=now)
    assert out.reason == reason, out.detail


def test_p5_anchor_validity_window() -> None:
    doc = {
        "anchors": {
            "scopes": {
                SCOPE_A: {
                    "anchors": [{"key": keys.encode_public(pub(ANCHOR_A)), "not_after": T - 100}]
                }
            }
        },
        "default": "allow",
    }
    rx = receiver(Policy.from_text(json.dumps(doc)))
    dropped(judge(rx, build_init().packet), Reason.EXPIRED)


@pytest.mark.parametrize(
    ("offset_ms", "reason"),
    [
        (CLOCK_SKEW * 1000 + 1, Reason.NOT_YET_VALID),
        (CLOCK_SKEW * 1000, Reason.OK),
        (-(INIT_MAX_AGE + CLOCK_SKEW) * 1000 - 1, Reason.TOO_OLD),
        (-(INIT_MAX_AGE + CLOCK_SKEW) * 1000, Reason.OK),
    ],
    ids=["future-beyond-skew", "future-within-skew", "past-beyond-max-age", "past-within"],
)
def test_p5_init_timestamp_skew(offset_ms: int, reason: Reason) -> None:
    rx = receiver()
    out = judge(rx, build_init(ts_ms=int(NOW * 1000) + offset_ms).packet)
    assert out.reason == reason, out.detail


def test_p5_session_ends_at_credential_expiry() -> None:
    cred = issue(
        ANCHOR_A, SCOPE_A, pub(ALICE), dataclasses.replace(GRANT, expires=T + 100)
    ).encode()
    rx = receiver()
    s = open_session(rx, sender(cred))
    end = NOW + 100 + CLOCK_SKEW
    admitted(judge(rx, s.seal(b"last"), now=end - 0.001))
    out = dropped(judge(rx, s.seal(b"late"), now=end), Reason.SESSION_EXPIRED)
    assert out.reply is not None and RejectPacket.decode(out.reply).reason == Reason.SESSION_EXPIRED
    dropped(judge(rx, s.seal(b"later"), now=end + 1), Reason.UNKNOWN_SESSION)
    # The sender's answer to the REJECT is a new INIT, refused: the credential is over.
    reopen = s.handle(out.reply, end)
    assert reopen is not None
    dropped(judge(rx, reopen, now=end + 0.5), Reason.EXPIRED)


def test_p5_session_lifetime_is_bounded() -> None:
    rx = receiver()
    s = open_session(rx)
    admitted(judge(rx, s.seal(b"x"), now=NOW + SESSION_MAX_LIFETIME - 1))
    dropped(judge(rx, s.seal(b"y"), now=NOW + SESSION_MAX_LIFETIME), Reason.SESSION_EXPIRED)


# =========================================================================================
# P6 hop continuity: statements and records; path constraints
# =========================================================================================
@pytest.mark.parametrize("n", [1, 2, 4, MAX_HOPS])
def test_p6_relayed_session_is_admitted_with_its_path(n: int) -> None:
    rx = receiver()
    path = relays(n)
    s = open_session(rx, path=path)
    out = admitted(judge(rx, through(s.seal(b"via"), path)), b"via")
    assert out.authority is not None
    assert [d for d, _ in out.authority.hops] == list(DOMAINS[:n])
    assert [t for _, t in out.authority.hops] == [r.tag.hex() for r in path]


def relayed_init(n: int = 3, eph: bytes = b"\x01" * 32) -> tuple[bytes, list[HopStatement]]:
    path = relays(n)
    packet = through(build_init(eph_secret=eph, next_hop=path[0].tag).packet, path)
    return packet, list(InitPacket.decode(packet).statements)


@pytest.mark.parametrize(
    "edit",
    [
        lambda st: st[1:],  # first removed
        lambda st: [st[0], st[2]],  # middle removed
        lambda st: st[:2],  # tail cut off
        lambda st: [],  # all removed
        lambda st: [st[1], st[0], st[2]],  # reordered
        lambda st: [st[0], st[2], st[1]],
        lambda st: [st[0], st[0], st[1], st[2]],  # duplicated
        lambda st: [*st, st[2]],
    ],
    ids=[
        "drop-first",
        "drop-middle",
        "cut-tail",
        "drop-all",
        "swap-01",
        "swap-12",
        "dup-0",
        "dup-last",
    ],
)
def test_p6_init_hop_statements_edited(
    edit: Callable[[list[HopStatement]], list[HopStatement]],
) -> None:
    packet, statements = relayed_init()
    rx = receiver()
    dropped(judge(rx, with_statements(packet, edit(statements))), Reason.HOP_CHAIN_BROKEN)
    admitted(judge(rx, packet))


def test_p6_statement_spliced_from_another_session() -> None:
    packet, statements = relayed_init(eph=b"\x01" * 32)
    _, other = relayed_init(eph=b"\x02" * 32)  # same relays, another session
    rx = receiver()
    for i in range(3):
        spliced = list(statements)
        spliced[i] = other[i]
        dropped(judge(rx, with_statements(packet, spliced)), Reason.HOP_CHAIN_BROKEN)
    admitted(judge(rx, packet))


def test_p6_statement_inserted_by_an_untrusted_relay() -> None:
    rx = receiver()
    # Mallory's relay appends a well-signed statement after the last trusted relay; that
    # relay named the receiver as its successor, not Mallory.  (Relay.forward refuses an
    # INIT not addressed to it, so Mallory appends by hand.)
    packet, statements = relayed_init(2)
    init = InitPacket.decode(packet)
    th = transcript(init.signed_region(), init.holder_sig)
    part = HopStatement.signed_part(pub(EVIL_RELAY), RX_ID, "evil.net")
    sig = EVIL_RELAY.sign(statement_message(th, 2, statements[-1].signature, part)).signature
    evil_statement = HopStatement(pub(EVIL_RELAY), RX_ID, "evil.net", sig)
    dropped(
        judge(rx, with_statements(packet, [*statements, evil_statement])), Reason.HOP_CHAIN_BROKEN
    )
    # Inserted in the middle: its predecessor named someone else.
    dropped(
        judge(rx, with_statements(packet, [statements[0], evil_statement, statements[1]])),
        Reason.HOP_CHAIN_BROKEN,
    )
    # A trusted relay that forwards to Mallory's relay (misrouting): Mallory's statement
    # is well formed and named by its predecessor, but her key is trusted for no domain.
    first = Relay(RELAY_KEYS[0], DOMAINS[0], pub(EVIL_RELAY), RX_PUB)
    evil = Relay(EVIL_RELAY, "evil.net", RX_PUB, RX_PUB)
    via_evil = evil.forward(first.forward(build_init(next_hop=first.tag).packet))
    dropped(judge(rx, via_evil), Reason.UNTRUSTED_RELAY)
    # A trusted relay claiming a domain it is not trusted for.
    liar = Relay(RELAY_KEYS[0], DOMAINS[1], RX_PUB, RX_PUB)
    dropped(judge(rx, liar.forward(build_init(next_hop=liar.tag).packet)), Reason.UNTRUSTED_RELAY)
    admitted(judge(rx, packet))


def test_p6_relay_trusted_for_two_domains_may_claim_either() -> None:
    """SPEC 7.1: the relay key must be configured as trusted for the *stated* domain."""
    both = {"a.net": [RELAY_KEYS[0]], "b.net": [RELAY_KEYS[0]]}
    rx = receiver(policy(relays=both))
    for domain in ("a.net", "b.net"):
        relay = Relay(RELAY_KEYS[0], domain, RX_PUB, RX_PUB)
        out = admitted(
            judge(
                rx,
                relay.forward(
                    build_init(next_hop=relay.tag, eph_secret=domain.encode() * 4).packet
                ),
            )
        )
        assert out.authority is not None and out.authority.hops[0][0] == domain


def relayed_session(rx: Receiver, n: int = 3, seed: str = "sender") -> tuple[Sender, list[Relay]]:
    path = relays(n)
    s = open_session(rx, sender(next_hop=path[0].public, seed=seed), path=path)
    return s, path


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h[1:],
        lambda h: [h[0], h[2]],
        lambda h: h[:2],
        lambda h: [],
        lambda h: [h[1], h[0], h[2]],
        lambda h: [h[0], h[2], h[1]],
        lambda h: [h[0], h[0], h[1], h[2]],
        lambda h: [*h, h[2]],
        lambda h: [h[0], HopRecord(h[1].relay_tag, bytes(8)), h[2]],
        lambda h: [h[0], HopRecord(keys.key_id(pub(EVIL_RELAY)), h[1].mac), h[2]],
    ],
    ids=[
        "drop-first",
        "drop-middle",
        "cut-tail",
        "drop-all",
        "swap-01",
        "swap-12",
        "dup-0",
        "dup-last",
        "zero-mac",
        "retagged",
    ],
)
def test_p6_data_hop_records_edited(edit: Callable[[list[HopRecord]], list[HopRecord]]) -> None:
    rx = receiver()
    s, path = relayed_session(rx)
    packet = through(s.seal(b"p"), path)
    hops = list(DataPacket.decode(packet).hops)
    dropped(judge(rx, with_hops(packet, edit(hops))), Reason.HOP_CHAIN_BROKEN)
    admitted(judge(rx, packet), b"p")


def test_p6_data_hop_records_spliced_from_another_packet_or_session() -> None:
    rx = receiver()
    s, path = relayed_session(rx)
    t, _ = relayed_session(rx, seed="other-sender")  # same relays, another session
    first = through(s.seal(b"1"), path)
    second = through(s.seal(b"2"), path)
    other = through(t.seal(b"1"), path)
    hops_first = DataPacket.decode(first).hops
    hops_other = DataPacket.decode(other).hops
    dropped(judge(rx, with_hops(second, hops_first)), Reason.HOP_CHAIN_BROKEN)
    dropped(judge(rx, with_hops(first, hops_other)), Reason.HOP_CHAIN_BROKEN)
    mixed = [hops_first[0], *DataPacket.decode(second).hops[1:]]
    dropped(judge(rx, with_hops(second, mixed)), Reason.HOP_CHAIN_BROKEN)
    admitted(judge(rx, first))
    admitted(judge(rx, second))
    admitted(judge(rx, other))


def test_p6_data_bypassing_or_adding_relays() -> None:
    rx = receiver()
    s, path = relayed_session(rx, 2)
    dropped(judge(rx, s.seal(b"direct")), Reason.HOP_CHAIN_BROKEN)  # relays skipped
    dropped(judge(rx, path[1].forward(s.seal(b"skip"))), Reason.HOP_CHAIN_BROKEN)
    evil = Relay(EVIL_RELAY, "evil.net", RX_PUB, RX_PUB)
    dropped(judge(rx, evil.forward(through(s.seal(b"extra"), path))), Reason.HOP_CHAIN_BROKEN)
    direct = open_session(rx, sender(seed="direct"))
    dropped(judge(rx, path[0].forward(direct.seal(b"x"))), Reason.HOP_CHAIN_BROKEN)
    admitted(judge(rx, through(s.seal(b"ok"), path)), b"ok")


def test_p6_malicious_trusted_relay_can_neither_widen_nor_forge() -> None:
    rx = receiver()
    s, path = relayed_session(rx, 1)
    relay_key, relay = RELAY_KEYS[0], path[0]
    # INIT: the relay rewrites the claim (say, to an operation it prefers) and signs its
    # own statement over the result: the holder's signature no longer verifies.
    t = sender(next_hop=relay.public, seed="victim")
    init = InitPacket.decode(t.open(b"hi", NOW))
    wider = dataclasses.replace(
        init, claim=Claim("orders.delete", "orders", PORT).encode(), raw=b""
    )
    dropped(judge(rx, relay.forward(wider.encode())), Reason.BAD_HOLDER_PROOF)
    # It substitutes a wider credential it holds (its own, issued by the anchor): the session
    # id no longer matches, and fixing it breaks the holder proof.
    own = issue(
        ANCHOR_A,
        SCOPE_A,
        pub(relay_key),
        Grant(operations=("*",), destinations=(Destination("*", 0, 65535),), expires=T + 3600),
    ).encode()
    swapped = dataclasses.replace(init, credential=own, raw=b"")
    dropped(judge(rx, relay.forward(swapped.encode())), Reason.BAD_SESSION_ID)
    fixed = dataclasses.replace(swapped, session_id=derive_session_id(init.eph_public, RX_ID, own))
    dropped(judge(rx, relay.forward(fixed.encode())), Reason.BAD_HOLDER_PROOF)
    admitted(judge(rx, relay.forward(init.raw)), b"hi")
    # DATA: it alters the seq or the payload and appends a perfectly valid hop record
    # over what it forwards; the sender's MAC or AEAD tag still catches it.
    packet = s.seal(b"pay 10")
    bumped = bytearray(packet)
    bumped[OFF_SEQ + 7] ^= 0x40
    dropped(judge(rx, relay.forward(bytes(bumped))), Reason.BAD_MAC)
    repaid = bytearray(packet)
    repaid[-17] ^= 0x01
    dropped(judge(rx, relay.forward(bytes(repaid))), Reason.BAD_PAYLOAD_AUTH)
    # It replaces the sender's MAC with one of its own making (it has the hop key, not k_mac).
    data = DataPacket.decode(packet)
    own_mac = hop_mac(bytes(16), data.mac, relay.tag, 0) * 2
    dropped(
        judge(rx, relay.forward(dataclasses.replace(data, mac=own_mac).encode())), Reason.BAD_MAC
    )
    admitted(judge(rx, relay.forward(packet)), b"pay 10")


def constrained_cred(**rights: Any) -> bytes:
    return issue(ANCHOR_A, SCOPE_A, pub(ALICE), dataclasses.replace(GRANT, **rights)).encode()


@pytest.mark.parametrize(
    ("rights", "rules", "n", "reason"),
    [
        ({"max_hops": 1}, [], 2, Reason.TOO_MANY_HOPS),
        ({"max_hops": 0}, [], 1, Reason.TOO_MANY_HOPS),
        ({"max_hops": 2}, [], 2, Reason.OK),
        ({}, [{"max_hops": 1}], 2, Reason.TOO_MANY_HOPS),
        ({"max_hops": 3}, [{"max_hops": 2}], 3, Reason.TOO_MANY_HOPS),
        ({"forbidden_domains": ("b.net",)}, [], 2, Reason.FORBIDDEN_DOMAIN),
        ({}, [{"not_via": ["b.net"]}], 2, Reason.FORBIDDEN_DOMAIN),
        ({"allowed_domains": ("a.net",)}, [], 2, Reason.DOMAIN_NOT_ALLOWED),
        ({"allowed_domains": ("a.net", "b.net")}, [], 2, Reason.OK),
        ({"required_domains": ("c.net",)}, [], 2, Reason.REQUIRED_DOMAIN_MISSING),
        ({"required_domains": ("a.net",)}, [], 0, Reason.REQUIRED_DOMAIN_MISSING),
        ({"required_domains": ("b.net",)}, [], 2, Reason.OK),
        ({}, [{"via": ["c.net"]}], 2, Reason.REQUIRED_DOMAIN_MISSING),
        ({}, [{"via": ["a.net"]}], 2, Reason.OK),
    ],
)
def test_p6_path_constraints(
    rights: dict[str, Any], rules: list[dict[str, Any]], n: int, reason: Reason
) -> None:
    rx = receiver(policy(rules=rules))
    path = relays(n)
    nxt = path[0].tag if path else RX_ID
    out = judge(rx, through(build_init(cred=constrained_cred(**rights), next_hop=nxt).packet, path))
    assert out.reason == reason, out.detail


def test_p6_wire_hop_limit() -> None:
    rx = receiver()
    path = relays(MAX_HOPS)
    packet = through(build_init(next_hop=path[0].tag).packet, path)
    admitted(judge(rx, packet))
    ninth = Relay(EVIL_RELAY, "evil.net", RX_PUB, RX_PUB)
    with pytest.raises(Exception, match="hop limit"):
        ninth.forward(packet)
    too_many = bytearray(packet)
    too_many[2] = MAX_HOPS + 1
    dropped(judge(rx, bytes(too_many)), Reason.MALFORMED)


# =========================================================================================
# P7 scope
# =========================================================================================
def cred_of(scope: str, anchor: nacl.signing.SigningKey) -> bytes:
    return issue(anchor, scope, pub(ALICE), GRANT).encode()


def test_p7_credential_of_an_untrusted_scope() -> None:
    rx = receiver()  # trusts acme.prod only
    dropped(judge(rx, build_init(cred=cred_of(SCOPE_B, ANCHOR_B)).packet), Reason.WRONG_SCOPE)
    # A scope that is trusted here, but named in a chain rooted in the other scope's anchor.
    dropped(judge(rx, build_init(cred=cred_of(SCOPE_A, ANCHOR_B)).packet), Reason.UNKNOWN_ANCHOR)


def test_p7_policy_scopes_restriction() -> None:
    both = ((SCOPE_A, ANCHOR_A), (SCOPE_B, ANCHOR_B))
    rx = receiver(policy(anchors=both, scopes=[SCOPE_A]))
    dropped(judge(rx, build_init(cred=cred_of(SCOPE_B, ANCHOR_B)).packet), Reason.WRONG_SCOPE)
    admitted(judge(rx, build_init(cred=cred_of(SCOPE_A, ANCHOR_A)).packet))
    federated = receiver(policy(anchors=both))  # federation: listing B's anchor is all it takes
    admitted(judge(federated, build_init(cred=cred_of(SCOPE_B, ANCHOR_B)).packet))


def test_p7_rule_scope_filter_with_default_deny() -> None:
    both = ((SCOPE_A, ANCHOR_A), (SCOPE_B, ANCHOR_B))
    rx = receiver(policy(anchors=both, default="deny", rules=[{"name": "a", "scopes": [SCOPE_A]}]))
    dropped(judge(rx, build_init(cred=cred_of(SCOPE_B, ANCHOR_B)).packet), Reason.POLICY_DENIED)
    out = admitted(judge(rx, build_init(cred=cred_of(SCOPE_A, ANCHOR_A)).packet))
    assert out.authority is not None and out.authority.rule == "a"


def test_p7_init_for_another_receiver() -> None:
    rx = receiver()
    other = keys.key_id(pub(OTHER_RX))
    dropped(judge(rx, build_init(receiver_id=other, next_hop=other).packet), Reason.WRONG_RECEIVER)
    # Addressed to us but keyed for the other receiver: the keys do not match ours, so
    # the first payload fails to open.
    crossed = build_init(receiver_public=pub(OTHER_RX))
    dropped(judge(rx, crossed.packet), Reason.BAD_PAYLOAD_AUTH)


# =========================================================================================
# P8 revocation
# =========================================================================================
def revocations(**kwargs: Any) -> RevocationStore:
    store = RevocationStore()
    rl = RevocationList.sign(ANCHOR_A, SCOPE_A, kwargs.pop("serial", 1), **kwargs)
    assert store.load(rl.encode(), policy().trust)
    return store


def test_p8_revoked_credential_refused() -> None:
    link_id = Credential.decode(CRED).link_ids()[0]
    for store in (revocations(link_ids=[link_id]), revocations(revoked_keys=[pub(ALICE)])):
        rx = receiver(revocations=store)
        dropped(judge(rx, build_init().packet), Reason.REVOKED)


def test_p8_revoking_a_delegator_revokes_the_delegation() -> None:
    bobs = delegate(
        Credential.decode(CRED), ALICE, pub(BOB), Grant(operations=("orders.read",))
    ).encode()
    rx = receiver(revocations=revocations(revoked_keys=[pub(ALICE)]))
    dropped(judge(rx, build_init(holder=BOB, cred=bobs).packet), Reason.REVOKED)
    rx = receiver(revocations=revocations(revoked_keys=[pub(BOB)]))
    dropped(judge(rx, build_init(holder=BOB, cred=bobs).packet), Reason.REVOKED)
    admitted(judge(rx, build_init(holder=ALICE).packet))  # Alice's own chain is unaffected


def test_p8_revoke_ends_live_sessions() -> None:
    rx = receiver()
    s = open_session(rx)
    bobs = delegate(
        Credential.decode(CRED), ALICE, pub(BOB), Grant(operations=("orders.read",))
    ).encode()
    bob = open_session(rx, sender(bobs, BOB, seed="bob"))
    admitted(judge(rx, s.seal(b"before")))
    ended = rx.revoke(revocations(revoked_keys=[pub(BOB)]), NOW + 1)
    assert [e.session_id for e in ended] == [bob.session_id]
    out = dropped(judge(rx, bob.seal(b"after"), now=NOW + 2), Reason.UNKNOWN_SESSION)
    assert out.reply is not None
    reopen = bob.handle(out.reply, NOW + 2)
    assert reopen is not None
    dropped(judge(rx, reopen, now=NOW + 2), Reason.REVOKED)
    admitted(judge(rx, s.seal(b"alice goes on"), now=NOW + 2))
    # A later list revoking Alice's root link ends hers too, and an older list cannot undo it.
    link_id = Credential.decode(CRED).link_ids()[0]
    newer = revocations(serial=2, link_ids=[link_id], revoked_keys=[pub(BOB)])
    assert len(rx.revoke(newer, NOW + 3)) == 1
    dropped(judge(rx, s.seal(b"gone"), now=NOW + 3), Reason.UNKNOWN_SESSION)
    older = RevocationList.sign(ANCHOR_A, SCOPE_A, 1, revoked_keys=[pub(BOB)])
    assert not newer.load(older.encode(), policy().trust)
    dropped(judge(rx, build_init().packet, now=NOW + 4), Reason.REVOKED)


# =========================================================================================
# P9 exhaustion: per-source rate limits, cookies under load, bounded session table
# =========================================================================================
def many_inits(n: int, prefix: str = "flood") -> list[bytes]:
    return [
        build_init(eph_secret=hashlib.sha256(f"{prefix}{i}".encode()).digest()).packet
        for i in range(n)
    ]


def test_p9_openings_rate_limited_per_source() -> None:
    rx = receiver(policy(init_rate_per_source=20, init_burst=5))
    packets = many_inits(8)
    for p in packets[:5]:
        admitted(judge(rx, p))
    dropped(judge(rx, packets[5]), Reason.RATE_LIMITED)
    admitted(judge(rx, packets[5], source=("10.0.0.2", 40000)))  # another source is unaffected
    later = NOW + 0.0625  # 20/s refills 1.25 tokens in 62.5 ms
    admitted(judge(rx, packets[6], now=later))
    dropped(judge(rx, packets[7], now=later), Reason.RATE_LIMITED)
    # The source port does not matter: the limit is per address.
    dropped(judge(rx, packets[7], source=(SRC[0], 1), now=later), Reason.RATE_LIMITED)


def test_p9_cookie_under_load_round_trip() -> None:
    rx = receiver(policy(load_threshold=3))
    for p in many_inits(2):
        admitted(judge(rx, p, source=("10.1.0.1", 1)))
    s = sender()
    first = s.open(b"under load", NOW)
    out = dropped(judge(rx, first), Reason.COOKIE_REQUIRED)
    assert out.reply is not None and len(out.reply) == COOKIE_PACKET_LEN
    cookie = CookiePacket.decode(out.reply)
    assert cookie.session_id == s.session_id
    again = s.handle(out.reply, NOW + 0.01)
    assert again is not None and again[3] == FLAG_INIT_COOKIE
    admitted(judge(rx, again, now=NOW + 0.01), b"under load")
    admitted(judge(rx, s.seal(b"data never needs a cookie"), now=NOW + 0.02))


def test_p9_bad_cookie() -> None:
    rx = receiver(policy(load_threshold=1))
    s = sender()
    out = dropped(judge(rx, s.open(b"x", NOW)), Reason.COOKIE_REQUIRED)
    assert out.reply is not None
    with_cookie = s.handle(out.reply, NOW)
    assert with_cookie is not None
    # A flipped cookie MAC.
    dropped(judge(rx, flip(with_cookie, len(with_cookie) - 1, 0)), Reason.BAD_COOKIE)
    # The right MAC from another address: spoofed sources never see their cookie.
    dropped(judge(rx, with_cookie, source=("10.6.6.6", SRC[1])), Reason.BAD_COOKIE)
    dropped(judge(rx, with_cookie, source=(SRC[0], SRC[1] + 1)), Reason.BAD_COOKIE)
    # A cookie MAC for another INIT (the cookie covers the whole opening).
    init = InitPacket.decode(with_cookie)
    other = InitPacket.decode(build_init(eph_secret=b"\x07" * 32).packet)
    moved = dataclasses.replace(other, cookie_mac=init.cookie_mac, raw=b"").encode()
    dropped(judge(rx, moved), Reason.BAD_COOKIE)
    admitted(judge(rx, with_cookie), b"x")
    # A cookie is good in its secret's epoch and the next, not after.
    late = NOW + 2 * 120
    dropped(judge(rx, build_init(ts_ms=int(late * 1000)).packet, now=late), Reason.COOKIE_REQUIRED)
    old_cookie = rx.cookies.cookie(SRC, late)  # handed out at `late`: valid for two epochs
    later = late + 2 * 120
    for when, reason in ((late + 120, Reason.OK), (later, Reason.BAD_COOKIE)):
        fresh = build_init(ts_ms=int(when * 1000), eph_secret=str(when).encode().ljust(32, b"."))
        init_ = dataclasses.replace(
            fresh.init, cookie_mac=cookie_mac(old_cookie, fresh.init.cookie_region())
        )
        dropped(
            judge(rx, build_init(ts_ms=int(when * 1000), eph_secret=b"\x0a" * 32).packet, now=when),
            Reason.COOKIE_REQUIRED,
        )  # still under load
        assert judge(rx, init_.encode(), now=when).reason == reason


def test_p9_flood_costs_no_signature_checks_and_data_flows() -> None:
    threshold = 10
    rx = receiver(policy(load_threshold=threshold))
    s = open_session(rx)  # one opening already on the meter
    flood = many_inits(300, "f")
    verifications = rx.verifier.cache_hits + rx.verifier.cache_misses
    reasons: dict[Reason, int] = {}
    for i, packet in enumerate(flood):
        src = (f"198.51.100.{i % 250}", 1000 + i)
        out = judge(rx, packet, source=src, now=NOW + i / 1000)
        reasons[out.reason] = reasons.get(out.reason, 0) + 1
        if i % 50 == 0:  # admitted traffic is decided independently of the flood
            admitted(judge(rx, s.seal(b"%d" % i), now=NOW + i / 1000))
    # Below the threshold openings proceed; from it on each is answered with a cookie
    # before any public-key work is spent on it.
    admitted_floods = threshold - 2
    assert reasons == {Reason.OK: admitted_floods, Reason.COOKIE_REQUIRED: 300 - admitted_floods}
    assert rx.verifier.cache_hits + rx.verifier.cache_misses - verifications == admitted_floods
    # A replayed copy of the flood is refused before it is even metered.
    dropped(judge(rx, flood[0], now=NOW + 0.4), Reason.REPLAY)


def test_p9_session_table_full() -> None:
    rx = receiver(policy(max_sessions=2, **NO_LIMITS))
    a, b, c = many_inits(3, "table")
    admitted(judge(rx, a))
    admitted(judge(rx, b))
    dropped(judge(rx, c), Reason.SESSION_TABLE_FULL)
    assert len(rx.sessions) == 2
    # Once the live sessions are over, their slots are reclaimed.
    late = NOW + SESSION_MAX_LIFETIME
    admitted(
        judge(rx, build_init(ts_ms=int(late * 1000), eph_secret=b"\x09" * 32).packet, now=late)
    )


def test_p9_tombstones_do_not_accumulate() -> None:
    rx = receiver()
    for i in range(25):
        opened_at = NOW + 100 * i
        s = sender(seed=f"cycle-{i}")
        admitted(judge(rx, s.open(None, opened_at), now=opened_at))
        end = opened_at + SESSION_MAX_LIFETIME
        dropped(judge(rx, s.seal(b"late"), now=end), Reason.SESSION_EXPIRED)
    # Tombstones outlive their session by INIT_MAX_AGE + CLOCK_SKEW (90 s): at most one or
    # two can still be due by now; the other 23 are dead weight.
    assert len(rx.sessions._tombstones) <= 2


def test_p9_rejects_are_rate_limited_per_source() -> None:
    rx = receiver()
    stray = make_data(b"\x00" * 8, 1, SessionKeys(bytes(16), bytes(32)))
    replies = [judge(rx, stray).reply for _ in range(12)]
    assert sum(r is not None for r in replies) == 10
    assert all(len(r) == REJECT_LEN for r in replies if r is not None)
    assert judge(rx, stray, source=("10.0.0.3", 1)).reply is not None


def test_p9_sender_answers_spoofed_rejects_at_most_once_per_second() -> None:
    """REJECT is unauthenticated (SPEC 3.3): its only effect is one new INIT per second."""
    s = sender()
    s.open(b"x", NOW)
    sid = s.session_id
    assert sid is not None
    assert s.handle(RejectPacket(Reason.UNKNOWN_SESSION, b"\x00" * 8).encode(), NOW) is None
    assert s.handle(RejectPacket(Reason.BAD_MAC, sid).encode(), NOW) is None  # not a resend reason
    answers = [
        s.handle(RejectPacket(Reason.UNKNOWN_SESSION, s.session_id or b"").encode(), NOW + i / 100)
        for i in range(100)
    ]
    assert sum(a is not None for a in answers) == 1
    assert s.opens == 2 and s.session_id != sid
    # A REJECT naming the session it replaced is stale and ignored.
    assert s.handle(RejectPacket(Reason.UNKNOWN_SESSION, sid).encode(), NOW + 5) is None


def test_p9_forged_cookie_reply_changes_nothing_at_the_sender() -> None:
    s = sender()
    init = s.open(b"x", NOW)
    assert s.session_id is not None
    forged = CookiePacket(s.session_id, b"\x01" * 24, b"\x02" * 32).encode()
    with pytest.raises(WarrantError) as info:
        s.handle(forged, NOW)
    assert info.value.reason == Reason.BAD_COOKIE
    # A genuine COOKIE for another INIT (another ephemeral key) does not open either.
    rx = receiver(policy(load_threshold=1))
    other = sender(seed="other")
    out = dropped(judge(rx, other.open(b"y", NOW)), Reason.COOKIE_REQUIRED)
    assert out.reply is not None
    assert s.handle(out.reply, NOW) is None  # names another session id
    relabelled = CookiePacket.decode(out.reply)
    with pytest.raises(WarrantError):
        s.handle(dataclasses.replace(relabelled, session_id=s.session_id).encode(), NOW)
    assert s.open(b"x", NOW)[3] == 0 and init[3] == 0  # no cookie MAC was ever adopted


# =========================================================================================
# P10 malformed
# =========================================================================================
def test_p10_truncated_data_at_every_length() -> None:
    rx = receiver()
    for n in (0, 2):
        path = relays(n)
        s = open_session(
            rx, sender(next_hop=path[0].public if path else None, seed=f"t{n}"), path=path
        )
        packet = through(s.seal(b"0123456789"), path)
        minimum = DATA_HEADER_LEN + HOP_RECORD_LEN * n + 16
        for length in range(len(packet)):
            out = judge(rx, packet[:length])
            expected = Reason.TRUNCATED if length < minimum else Reason.BAD_PAYLOAD_AUTH
            dropped(out, expected)
            assert out.reply is None
        admitted(judge(rx, packet), b"0123456789")


def test_p10_truncated_init_at_every_length() -> None:
    rx = receiver()
    path = relays(2)
    direct = build_init(eph_secret=b"\x01" * 32).packet
    relayed = through(build_init(eph_secret=b"\x02" * 32, next_hop=path[0].tag).packet, path)
    for packet in (direct, relayed):
        for length in range(len(packet)):
            dropped(judge(rx, packet[:length]), Reason.TRUNCATED)
        dropped(judge(rx, packet + b"\x00"), Reason.MALFORMED)  # trailing bytes
        admitted(judge(rx, packet))


@pytest.mark.parametrize("kind", ["init", "data"])
def test_p10_unknown_version_is_never_answered(kind: str) -> None:
    rx = receiver()
    packet = (
        build_init().packet
        if kind == "init"
        else make_data(b"\x01" * 8, 1, SessionKeys(bytes(16), bytes(32)))
    )
    for version in range(256):
        if version == 1:
            continue
        out = dropped(judge(rx, bytes([version]) + packet[1:]), Reason.UNKNOWN_VERSION)
        assert out.reply is None


def test_p10_unknown_kind() -> None:
    rx = receiver()
    packet = build_init().packet
    for kind in [0, *range(3, 256)]:  # REJECT and COOKIE travel to senders, not receivers
        dropped(judge(rx, packet[:1] + bytes([kind]) + packet[2:]), Reason.UNKNOWN_KIND)
    dropped(judge(rx, RejectPacket(Reason.UNKNOWN_SESSION, bytes(8)).encode()), Reason.UNKNOWN_KIND)
    dropped(judge(rx, CookiePacket(bytes(8), bytes(24), bytes(32)).encode()), Reason.UNKNOWN_KIND)


def test_p10_unknown_flags_reserved_and_hop_count() -> None:
    rx = receiver()
    s = open_session(rx)
    data = s.seal(b"x")
    init = build_init().packet
    for bit in range(8):
        # INNER_IP is a known flag (transparent mode) but the header MAC covers the flags
        # byte: set on an ordinary session it fails the MAC; every other bit is unknown
        known = 1 << bit == FLAG_DATA_INNER_IP
        dropped(judge(rx, flip(data, 3, bit)), Reason.BAD_MAC if known else Reason.MALFORMED)
        if 1 << bit != FLAG_INIT_COOKIE:
            dropped(judge(rx, flip(init, 3, bit)), Reason.MALFORMED)
    for value in (1, 0x80, 0xFFFF):
        bad = bytearray(init)
        bad[OFF_INIT_RESERVED : OFF_INIT_RESERVED + 2] = value.to_bytes(2, "big")
        dropped(judge(rx, bytes(bad)), Reason.MALFORMED)
    for count in range(MAX_HOPS + 1, 256):
        dropped(judge(rx, data[:2] + bytes([count]) + data[3:]), Reason.MALFORMED)
        dropped(judge(rx, init[:2] + bytes([count]) + init[3:]), Reason.MALFORMED)
    # An INIT claiming a payload shorter than its tag.
    for plen in range(1, 16):
        bad = bytearray(init)
        bad[OFF_INIT_PAYLOAD_LEN : OFF_INIT_PAYLOAD_LEN + 2] = plen.to_bytes(2, "big")
        dropped(judge(rx, bytes(bad)), Reason.MALFORMED)
    # Lengths pointing past the end.
    for off in (OFF_INIT_CRED_LEN, OFF_INIT_CLAIM_LEN, OFF_INIT_PAYLOAD_LEN):
        bad = bytearray(init)
        bad[off : off + 2] = b"\xff\xff"
        dropped(judge(rx, bytes(bad)), Reason.TRUNCATED)
    admitted(judge(rx, init))
    admitted(judge(rx, data))


def test_p10_malformed_fields_behind_valid_signatures() -> None:
    """An attacker holding a credential signs garbage: each field still has its reason."""
    rx = receiver()
    for claim in (
        b"",
        b"\x80",
        b"\xa0",
        b"\x83\x01\x02\x03",
        Claim("orders.read", "orders", PORT).encode() + b"\x00",
    ):
        dropped(judge(rx, build_init(claim=claim).packet), Reason.MALFORMED)
    # Non-canonical CBOR for the claim (a 2-byte integer where 1 byte would do).
    noncanon = b"\x83" + b"\x6borders.read" + b"\x66orders" + b"\x1a\x00\x00\x20\xfb"
    dropped(judge(rx, build_init(claim=noncanon).packet), Reason.MALFORMED)
    # A garbage credential with a correct session id reaches the credential decoder.
    for cred in (b"", b"\x00" * 40, b"\x82\x01\x40", b"\x83\x01\x40\x40", CRED[:-1]):
        dropped(judge(rx, build_init(cred=cred).packet), Reason.MALFORMED)
    dropped(judge(rx, build_init(cred=b"\x83\x02\x40\x40").packet), Reason.UNKNOWN_VERSION)
    # A low-order ephemeral point (SPEC 2: all-zero X25519 result is MALFORMED).
    dropped(judge(rx, build_init(eph_public=bytes(32)).packet), Reason.MALFORMED)
    # A hop statement domain that is not ASCII.
    path = relays(1)
    relayed = bytearray(through(build_init(next_hop=path[0].tag).packet, path))
    domain_at = len(relayed) - SIGNATURE_LEN - len(DOMAINS[0])
    relayed[domain_at] = 0xE9
    dropped(judge(rx, bytes(relayed)), Reason.MALFORMED)


def test_p10_bad_session_id() -> None:
    rx = receiver()
    dropped(judge(rx, build_init(sid=bytes(8)).packet), Reason.BAD_SESSION_ID)


@pytest.mark.parametrize("length", [0, 1, 3, 4, 16, 35, 36, 51, 52, 68, 200])
def test_p10_zero_filled_and_junk(length: int) -> None:
    rx = receiver()
    for fill in (b"\x00", b"\xff", b"\x01", b"\x01\x02"):
        out = judge(rx, (fill * length)[:length])
        assert out.verdict == Verdict.DROP


def test_p10_every_parsed_init_drop_names_its_session() -> None:
    """Flow records name the session of every INIT that parsed, whatever step refused it."""
    rx = receiver()
    path = relays(1)
    drops = [
        build_init(holder=MALLORY),  # BAD_HOLDER_PROOF (decided inline)
        build_init(cred=cred_of(SCOPE_B, ANCHOR_B)),  # WRONG_SCOPE (raised by the verifier)
        build_init(claim=b"\x80"),  # MALFORMED claim
    ]
    packets = [o.packet for o in drops]
    packets.append(
        through(build_init(next_hop=path[0].tag, eph_secret=b"\x04" * 32).packet, path)[:-1]
        + b"\x00"
    )
    packets.append(flip(build_init(eph_secret=b"\x05" * 32).packet, -1, 0))  # BAD_PAYLOAD_AUTH
    for packet in packets:
        out = judge(rx, packet)
        assert out.verdict == Verdict.DROP
        assert (out.session_id, out.seq) == (packet[OFF_SESSION_ID:OFF_SEQ], 0), out.reason.name


# =========================================================================================
# P11 churn: authority is bound to keys, never to addresses
# =========================================================================================
def test_p11_source_address_changes_mid_session() -> None:
    rx = receiver()
    s = open_session(rx)
    for i, src in enumerate([("10.0.0.1", 40000), ("10.9.9.9", 6000), ("2001:db8::7", 443)]):
        packet = s.seal(b"%d" % i)
        out = admitted(judge(rx, packet, source=src), b"%d" % i)
        assert out.authority is not None and out.authority.holder == keys.key_id(pub(ALICE)).hex()
        dropped(judge(rx, packet, source=("10.0.0.1", 40000)), Reason.REPLAY)


def test_p11_verdicts_do_not_depend_on_addresses() -> None:
    """The same packets, each from a different address: identical verdicts, reasons, payloads."""
    s = sender()
    opened = build_init(eph_secret=b"\x05" * 32)
    packets = [
        s.open(b"init", NOW),
        s.seal(b"one"),
        s.seal(b"two"),
        opened.packet,
        opened.data(3, b"three"),
        opened.data(3, b"three"),
        flip(s.seal(b"four"), OFF_MAC, 0),
        make_data(opened.sid, 9, SessionKeys(bytes(16), bytes(32))),
        s.seal(b"five")[:40],
    ]
    runs = []
    for addresses in (
        [SRC] * len(packets),
        [(f"10.{i}.0.1", 1000 + i) for i in range(len(packets))],
        [(f"2001:db8::{i}", 5) for i in range(len(packets))],
    ):
        rx = receiver()
        runs.append(
            [
                (o.verdict, o.reason, o.payload)
                for o in (judge(rx, p, source=a) for p, a in zip(packets, addresses, strict=True))
            ]
        )
    assert runs[0] == runs[1] == runs[2]
    assert [r for _, r, _ in runs[0]] == [
        Reason.OK, Reason.OK, Reason.OK, Reason.OK, Reason.OK, Reason.REPLAY,
        Reason.BAD_MAC, Reason.BAD_MAC, Reason.TRUNCATED,
    ]  # fmt: skip


def test_p11_recycled_address_gets_nothing() -> None:
    rx = receiver()
    s = open_session(rx)
    admitted(judge(rx, s.seal(b"alice")))
    # Alice's pod is gone; Mallory's workload now has 10.0.0.1.
    assert s.session_id is not None
    opened_by_mallory = build_init(holder=MALLORY, eph_secret=b"\x66" * 32)
    dropped(judge(rx, make_data(s.session_id, 2, opened_by_mallory.keys)), Reason.BAD_MAC)
    dropped(judge(rx, opened_by_mallory.packet), Reason.BAD_HOLDER_PROOF)
    # Mallory holds a narrow credential of her own: her authority is hers, not Alice's.
    mallorys = issue(ANCHOR_A, SCOPE_A, pub(MALLORY), Grant(
        operations=("catalog.read",), destinations=(Destination("catalog", PORT, PORT),),
        expires=T + 3600,
    )).encode()  # fmt: skip
    dropped(
        judge(rx, build_init(holder=MALLORY, cred=mallorys).packet), Reason.OPERATION_NOT_GRANTED
    )
    out = admitted(
        judge(
            rx,
            build_init(
                holder=MALLORY, cred=mallorys, claim=Claim("catalog.read", "catalog", PORT)
            ).packet,
        )
    )
    assert out.authority is not None and out.authority.holder == keys.key_id(pub(MALLORY)).hex()
    # Alice, from her new address, carries on.
    admitted(judge(rx, s.seal(b"moved"), source=("10.0.7.7", 40000)), b"moved")
