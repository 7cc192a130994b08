"""Property tests for the wire codec, the receiver and the replay window (P10, P3, P4).

* Decoders given random bytes, or valid packets mutated, raise nothing but WarrantError.
* `Receiver.handle` never raises, whatever it is given; it returns an Outcome, and
  a mutated packet is never admitted unless it carries exactly the original's
  session, sequence number and payload.
* The kernel's share of DATA processing (`check_data_header`, SPEC 6.1 steps 1-7)
  agrees with the full receiver on every mutated DATA packet.
* encode/decode round trips for all four packet kinds.
* The ring-bitmap replay window makes the same decisions as a set-based model of
  SPEC 6.3.

The coverage-guided counterpart is fuzz/fuzz_wire.py (atheris; not run in CI).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import random
from collections.abc import Callable

import nacl.bindings
import nacl.signing
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from warrant.core import keys
from warrant.core.admission import Policy
from warrant.core.constants import (
    COOKIE_LEN,
    COOKIE_NONCE_LEN,
    MAX_HOPS,
    REPLAY_WINDOW,
    SEQ_LIMIT,
    SIG_CONTEXT_INIT,
    Kind,
    Reason,
    Verdict,
)
from warrant.core.cookie import cookie_mac
from warrant.core.credential import issue
from warrant.core.errors import WarrantError
from warrant.core.hop import Relay
from warrant.core.kdf import session_id as derive_session_id
from warrant.core.receiver import Claim, Outcome, Receiver
from warrant.core.replay import ReplayWindow
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.core.wire import (
    CookiePacket,
    DataPacket,
    HopRecord,
    HopStatement,
    InitPacket,
    RejectPacket,
    peek_kind,
)

# Local runs explore new examples each time; CI replays a fixed set (a failure there is
# reproducible from the log), so an unrelated change never meets a fresh counterexample.
CI = bool(os.environ.get("CI"))
FUZZ = settings(
    deadline=None, max_examples=200, derandomize=CI, suppress_health_check=[HealthCheck.too_slow]
)
CHEAP = settings(deadline=None, max_examples=200, derandomize=CI)

NOW = 1_800_000_000.0
PORT = 8443
SRC = ("10.0.0.1", 40000)


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-fuzz/" + label.encode()).digest())


def rng(label: str) -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: hashlib.shake_256(f"{label}/{next(counter)}".encode()).digest(n)


ANCHOR, RX, ALICE = key("anchor"), key("receiver"), key("alice")
RX_PUB = bytes(RX.verify_key)
RELAYS = [key("relay-a"), key("relay-b")]
DOMAINS = ["a.net", "b.net"]
CRED = issue(
    ANCHOR,
    "acme.prod",
    bytes(ALICE.verify_key),
    Grant(
        operations=("orders.*",),
        destinations=(Destination("orders", PORT, PORT),),
        not_before=int(NOW) - 3600,
        expires=int(NOW) + 3600,
    ),
).encode()
CLAIM = Claim("orders.read", "orders", PORT)
POLICY_TEXT = json.dumps(
    {
        "anchors": {
            "scopes": {"acme.prod": {"anchors": [keys.encode_public(bytes(ANCHOR.verify_key))]}},
            "relays": {
                d: [keys.encode_public(bytes(k.verify_key))]
                for d, k in zip(DOMAINS, RELAYS, strict=True)
            },
        },
        "default": "allow",
        "limits": {"init_rate_per_source": 1e9, "init_burst": 1e9, "load_threshold": 1e9},
    }
)
POLICY = Policy.from_text(POLICY_TEXT)


def path() -> list[Relay]:
    pubs = [bytes(k.verify_key) for k in RELAYS]
    return [
        Relay(RELAYS[0], DOMAINS[0], pubs[1], RX_PUB),
        Relay(RELAYS[1], DOMAINS[1], RX_PUB, RX_PUB),
    ]


def through(packet: bytes, relays: list[Relay]) -> bytes:
    for r in relays:
        packet = r.forward(packet)
    return packet


@dataclasses.dataclass(frozen=True)
class Corpus:
    admitted_inits: tuple[bytes, ...]  # opened on every fresh receiver
    pending: tuple[bytes, ...]  # valid packets the fresh receiver has not seen
    other: tuple[bytes, ...]  # REJECT and COOKIE: valid, but not for a receiver
    genuine: frozenset[tuple[bytes, int, bytes | None]]  # (sid, seq, payload) a packet may carry

    @property
    def packets(self) -> tuple[bytes, ...]:
        return self.admitted_inits + self.pending + self.other


def build_corpus() -> Corpus:
    relays = path()
    direct = Sender(ALICE, CRED, RX_PUB, CLAIM, random=rng("direct"))
    relayed = Sender(
        ALICE, CRED, RX_PUB, CLAIM, next_hop_public=relays[0].public, random=rng("relayed")
    )
    fresh = Sender(ALICE, CRED, RX_PUB, CLAIM, random=rng("fresh"))
    empty = Sender(ALICE, CRED, RX_PUB, CLAIM, random=rng("empty"))
    inits = (direct.open(b"first", NOW), through(relayed.open(b"hop", NOW), relays))
    genuine: set[tuple[bytes, int, bytes | None]] = set()
    pending = [fresh.open(b"pending", NOW), empty.open(None, NOW)]
    assert fresh.session_id is not None and empty.session_id is not None
    genuine |= {(fresh.session_id, 0, b"pending"), (empty.session_id, 0, None)}
    # The same INIT with a cookie MAC (ignored when the receiver is not under load).
    init = InitPacket.decode(pending[0])
    with_cookie = dataclasses.replace(
        init, cookie_mac=cookie_mac(b"\x01" * 16, init.cookie_region()), raw=b""
    )
    pending.append(with_cookie.encode())
    for i in range(1, 3):
        payload = b"data %d" % i
        pending.append(direct.seal(payload))
        pending.append(through(relayed.seal(payload), relays))
        for s in (direct, relayed):
            assert s.session_id is not None
            genuine.add((s.session_id, i, payload))
    other = (
        RejectPacket(Reason.UNKNOWN_SESSION, b"\x01" * 8, 1000).encode(),
        CookiePacket(b"\x02" * 8, b"\x03" * 24, b"\x04" * 32).encode(),
    )
    return Corpus(inits, tuple(pending), other, frozenset(genuine))


CORPUS = build_corpus()


def fresh_receiver() -> Receiver:
    rx = Receiver(RX, POLICY, started_at=NOW - 3600, random=rng("receiver"))
    for packet in CORPUS.admitted_inits:
        assert rx.handle(packet, SRC, PORT, NOW).verdict == Verdict.ADMIT
    return rx


def test_corpus_is_valid() -> None:
    rx = fresh_receiver()
    for packet in CORPUS.pending:
        assert rx.handle(packet, SRC, PORT, NOW).reason in (Reason.OK, Reason.REPLAY)


# ---- mutation strategies -----------------------------------------------------------------------
INTERESTING_BYTES = [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 0x7F, 0x80, 0xFE, 0xFF]
INTERESTING_U16 = [0, 1, 15, 16, 17, 64, 255, 256, 4096, 0x7FFF, 0x8000, 0xFFFF]


@st.composite
def mutations(draw: st.DrawFn, corpus: tuple[bytes, ...] = CORPUS.packets) -> tuple[bytes, bytes]:
    """(original, mutated): a valid packet with one to four random edits."""
    original = draw(st.sampled_from(corpus))
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "u16", "insert", "delete", "truncate", "extend"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from(INTERESTING_BYTES) | st.integers(0, 255))
        elif op == "u16" and len(data) >= 2:
            at = min(at, len(data) - 2)
            data[at : at + 2] = draw(st.sampled_from(INTERESTING_U16)).to_bytes(2, "big")
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[at:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=80))
    return original, bytes(data)


def plausible_headers() -> st.SearchStrategy[bytes]:
    """Random bytes behind a header that passes the first checks, to reach deeper code."""
    return st.builds(
        lambda kind, hops, flags, body: bytes([1, kind, hops, flags]) + body,
        st.sampled_from([int(k) for k in Kind]),
        st.integers(0, MAX_HOPS + 1),
        st.sampled_from([0, 0, 1, 2]),
        st.binary(max_size=500),
    )


ANY_BYTES = st.binary(max_size=600) | plausible_headers()
DECODERS: list[Callable[[bytes], object]] = [
    peek_kind,
    DataPacket.decode,
    InitPacket.decode,
    RejectPacket.decode,
    CookiePacket.decode,
]


def decode_all(packet: bytes) -> None:
    for decode in DECODERS:
        try:
            decode(packet)
        except WarrantError as exc:
            assert exc.reason in (
                Reason.TRUNCATED,
                Reason.MALFORMED,
                Reason.UNKNOWN_VERSION,
                Reason.UNKNOWN_KIND,
            )


# ---- decoders ------------------------------------------------------------------------------------
@CHEAP
@given(ANY_BYTES)
@example(b"")
@example(b"\x01\x01\x08\x01" + bytes(64) + b"\xff" * 8)
def test_decoders_raise_only_warrant_error_on_random_bytes(packet: bytes) -> None:
    decode_all(packet)


@CHEAP
@given(mutations())
def test_decoders_raise_only_warrant_error_on_mutated_packets(pair: tuple[bytes, bytes]) -> None:
    decode_all(pair[1])


@CHEAP
@given(mutations())
def test_decoded_packets_reencode_to_the_same_bytes(pair: tuple[bytes, bytes]) -> None:
    """Whatever decodes has exactly one encoding (no malleability in the codec itself)."""
    packet = pair[1]
    for cls in (DataPacket, InitPacket, RejectPacket, CookiePacket):
        try:
            decoded = cls.decode(packet)  # type: ignore[attr-defined]
        except WarrantError:
            continue
        assert decoded.encode() == packet


# ---- the receiver ---------------------------------------------------------------------------------
def check_outcome(out: Outcome, packet: bytes) -> None:
    assert isinstance(out, Outcome)
    assert out.size == len(packet)
    if out.verdict == Verdict.ADMIT:
        assert out.reason == Reason.OK and out.authority is not None
    else:
        assert out.verdict == Verdict.DROP and out.reason != Reason.OK and out.payload is None
    if out.reply is not None:
        assert len(out.reply) <= len(packet)


@FUZZ
@given(ANY_BYTES, st.integers(0, 65535), st.floats(NOW - 1000, NOW + 1000))
def test_receiver_never_raises_on_random_bytes(packet: bytes, port: int, now: float) -> None:
    rx = fresh_receiver()
    out = rx.handle(packet, SRC, port, now)
    check_outcome(out, packet)
    assert out.verdict == Verdict.DROP


@FUZZ
@given(mutations())
def test_receiver_never_admits_a_mutation_with_other_content(pair: tuple[bytes, bytes]) -> None:
    original, mutated = pair
    rx = fresh_receiver()
    out = rx.handle(mutated, SRC, PORT, NOW)
    check_outcome(out, mutated)
    if out.verdict == Verdict.ADMIT:
        # Only an edit the protocol ignores may pass (e.g. a cookie MAC when not under
        # load), and then the receiver admits exactly what the sender sent.
        assert out.session_id is not None and out.seq is not None
        assert (out.session_id, out.seq, out.payload) in CORPUS.genuine
        assert original in CORPUS.pending


@FUZZ
@given(mutations(tuple(p for p in CORPUS.pending if p[1] == Kind.DATA)))
def test_kernel_steps_agree_with_the_receiver(pair: tuple[bytes, bytes]) -> None:
    """check_data_header (SPEC 6.1 steps 1-7) reaches the receiver's reason, or OK for 8-10."""
    mutated = pair[1]
    if mutated[1:2] != bytes([Kind.DATA]):
        return  # an edit turned it into another kind: the kernel hands those to user space
    rx = fresh_receiver()
    try:
        kernel, _, _ = rx.check_data_header(mutated, PORT, NOW)
    except WarrantError as exc:
        kernel = exc.reason
    out = rx.handle(mutated, SRC, PORT, NOW)
    if kernel == Reason.OK:
        assert out.reason in (Reason.OK, Reason.RATE_LIMITED, Reason.BAD_PAYLOAD_AUTH)
    else:
        assert out.reason == kernel


@FUZZ
@given(
    st.binary(max_size=300) | st.sampled_from([CRED, CRED[:-1], CRED + b"\x00"]),
    st.binary(max_size=40),
)
def test_receiver_never_raises_on_signed_garbage(cred: bytes, claim: bytes) -> None:
    """Arbitrary credential and claim bytes behind a valid session id and holder signature."""
    eph = nacl.bindings.crypto_scalarmult_base(hashlib.sha256(cred + claim).digest())
    rid = keys.key_id(RX_PUB)
    sid = derive_session_id(eph, rid, cred)
    unsigned = InitPacket(sid, rid, int(NOW * 1000), eph, rid, cred, claim, b"", b"")
    sig = ALICE.sign(SIG_CONTEXT_INIT + unsigned.signed_region()).signature
    packet = dataclasses.replace(unsigned, holder_sig=sig).encode()
    out = fresh_receiver().handle(packet, SRC, PORT, NOW)
    check_outcome(out, packet)
    if cred != CRED:
        assert out.verdict == Verdict.DROP


# ---- round trips --------------------------------------------------------------------------------
def fixed(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


hop_records = st.builds(HopRecord, fixed(4), fixed(8))
data_packets = st.builds(
    DataPacket,
    session_id=fixed(8),
    seq=st.integers(0, 2**64 - 1),
    mac=fixed(16),
    hops=st.lists(hop_records, max_size=MAX_HOPS).map(tuple),
    ciphertext=st.binary(min_size=16, max_size=200),
)
hop_statements = st.builds(
    HopStatement,
    relay_public=fixed(32),
    next_hop=fixed(4),
    domain=st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=255),
    signature=fixed(64),
)
init_packets = st.builds(
    InitPacket,
    session_id=fixed(8),
    receiver_id=fixed(4),
    timestamp_ms=st.integers(0, 2**64 - 1),
    eph_public=fixed(32),
    next_hop=fixed(4),
    credential=st.binary(max_size=600),
    claim=st.binary(max_size=60),
    holder_sig=fixed(64),
    ciphertext=st.just(b"") | st.binary(min_size=16, max_size=200),
    cookie_mac=st.none() | fixed(COOKIE_LEN),
    statements=st.lists(hop_statements, max_size=MAX_HOPS).map(tuple),
)


@CHEAP
@given(data_packets)
def test_data_round_trip(packet: DataPacket) -> None:
    wire = packet.encode()
    assert DataPacket.decode(wire) == packet
    assert peek_kind(wire) == Kind.DATA


@CHEAP
@given(init_packets)
def test_init_round_trip(packet: InitPacket) -> None:
    wire = packet.encode()
    decoded = InitPacket.decode(wire)
    assert decoded == dataclasses.replace(packet, raw=wire)
    assert decoded.encode() == wire
    assert decoded.signed_region() == packet.signed_region()  # hop_count and flags masked


@CHEAP
@given(st.sampled_from(list(Reason)), fixed(8), st.integers(0, 2**32 - 1))
def test_reject_round_trip(reason: Reason, sid: bytes, retry: int) -> None:
    packet = RejectPacket(reason, sid, retry)
    assert RejectPacket.decode(packet.encode()) == packet


@CHEAP
@given(fixed(8), fixed(COOKIE_NONCE_LEN), fixed(COOKIE_LEN + 16))
def test_cookie_round_trip(sid: bytes, nonce: bytes, sealed: bytes) -> None:
    packet = CookiePacket(sid, nonce, sealed)
    assert CookiePacket.decode(packet.encode()) == packet


# ---- the replay window against a model of SPEC 6.3 ------------------------------------------------
class WindowModel:
    """SPEC 6.3 in terms of a set: fresh if below SEQ_LIMIT and newer than top, or within
    4032 and unseen."""

    def __init__(self) -> None:
        self.top = -1
        self.seen: set[int] = set()

    def check(self, seq: int) -> Reason:
        if seq >= SEQ_LIMIT:
            return Reason.SEQ_EXHAUSTED
        if seq > self.top:
            return Reason.OK
        if self.top - seq >= REPLAY_WINDOW:
            return Reason.TOO_OLD
        return Reason.REPLAY if seq in self.seen else Reason.OK

    def update(self, seq: int) -> Reason:
        verdict = self.check(seq)
        if verdict == Reason.OK:
            self.seen.add(seq)
            self.top = max(self.top, seq)
        return verdict


EDGES = [
    -REPLAY_WINDOW - 1,
    -REPLAY_WINDOW,
    -REPLAY_WINDOW + 1,
    -4096,
    -64,
    -63,
    -1,
    0,
    1,
    63,
    64,
    4032,
    4096,
    8192,
]


window_ops = st.lists(
    st.tuples(
        st.sampled_from(EDGES) | st.integers(-4200, 300),  # relative to the current top
        st.none() | st.integers(0, 2**64 - 1),  # occasionally an absolute number
        st.booleans(),  # check only, or check and record
    ),
    min_size=1,
    max_size=80,
)


@settings(deadline=None, max_examples=300, derandomize=CI)
@given(window_ops)
def test_replay_window_matches_model(ops: list[tuple[int, int | None, bool]]) -> None:
    window, model = ReplayWindow(), WindowModel()
    for i, (delta, absolute, check_only) in enumerate(ops):
        seq = absolute if absolute is not None and i % 4 == 0 else max(0, model.top + delta)
        if check_only:
            top, words = window.top, list(window.words)
            assert window.check(seq) == model.check(seq), seq
            assert (window.top, window.words) == (top, words)  # check never changes state
        else:
            assert window.update(seq) == model.update(seq), seq
        assert window.top == model.top


@pytest.mark.parametrize("seed", range(6))
def test_replay_window_long_random_runs(seed: int) -> None:
    r = random.Random(seed)
    window, model = ReplayWindow(), WindowModel()
    spread = [8, 100, 4100, 10000, 64, 5000][seed]
    for _ in range(20000):
        seq = max(0, model.top + r.randint(-spread, max(1, spread // 8)))
        assert window.update(seq) == model.update(seq), seq
    assert window.top == model.top


# ---- the sender-side parsers: exact layouts of REJECT and COOKIE (SPEC 3.3, 3.4) -------------------
def test_reject_and_cookie_layouts() -> None:
    reject = RejectPacket(Reason.SESSION_EXPIRED, b"\x11" * 8, 0x01020304).encode()
    assert reject == b"\x01\x03\x1c\x00" + b"\x11" * 8 + b"\x01\x02\x03\x04"
    cookie = CookiePacket(b"\x11" * 8, b"\x22" * 24, b"\x33" * 32).encode()
    assert cookie == b"\x01\x04\x00\x00" + b"\x11" * 8 + b"\x22" * 24 + b"\x33" * 32
    for packet, cls in ((reject, RejectPacket), (cookie, CookiePacket)):
        for length in range(len(packet)):
            with pytest.raises(WarrantError) as info:
                cls.decode(packet[:length])  # type: ignore[attr-defined]
            assert info.value.reason == Reason.TRUNCATED
        for bad in (packet + b"\x00", packet[:3] + b"\x01" + packet[4:]):  # trailing; flags
            with pytest.raises(WarrantError) as info:
                cls.decode(bad)  # type: ignore[attr-defined]
            assert info.value.reason == Reason.MALFORMED
    with pytest.raises(WarrantError) as info:
        CookiePacket.decode(cookie[:2] + b"\x01" + cookie[3:])  # byte 2 is 0 in a COOKIE
    assert info.value.reason == Reason.MALFORMED
    with pytest.raises(WarrantError) as info:
        RejectPacket.decode(reject[:2] + b"\xfe" + reject[3:])  # no such reason code
    assert info.value.reason == Reason.MALFORMED


# ---- the atheris harness (fuzz/fuzz_wire.py) in replay mode: it must not rot ------------------------
def test_atheris_harness_replays_its_seed_corpus() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "fuzz" / "fuzz_wire.py"
    spec = importlib.util.spec_from_file_location("fuzz_wire_harness", path)
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    seeds = list(harness.seed_inputs())
    assert len(seeds) > 100
    for blob in seeds[::3]:
        harness.test_one_input(blob)
        harness.test_one_input(blob[:1] + blob[1:][::-1])
    harness.test_one_input(b"")
    harness.test_one_input(b"\x00")
