"""The packet test vectors (vectors/packets.json) against the implementation.

(a) every case is replayed through one `Receiver` built from its setup: each
datagram must get exactly the recorded verdict, reason, payload and reply, and
the kernel's share (SPEC 6.1 steps 1-7 via `check_data_header`, recording the
sequence number after step 7) the recorded kernel reason; (b) the KDF, MAC and
encoding vectors against `warrant.core.kdf`, `warrant.core.mac`, `warrant.core.cookie` and
`warrant.core.wire`; (c) the vectors cover every reason of SPEC 6.1 and 6.2; (d) the
generator tools/vectors_packets.py reproduces the committed file byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest

from vector_helpers import load_generator
from warrant.core import keys
from warrant.core.admission import Policy
from warrant.core.constants import Kind, Reason, Verdict
from warrant.core.cookie import CookieJar, cookie_mac, open_cookie, sealing_key
from warrant.core.errors import WarrantError
from warrant.core.kdf import hop_key, session_id, session_keys, transcript, x25519
from warrant.core.mac import header_mac, hop_mac, open_sealed, seal
from warrant.core.receiver import Receiver
from warrant.core.revocation import RevocationStore
from warrant.core.wire import CookiePacket, DataPacket, InitPacket, RejectPacket

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors" / "packets.json"
DOC: dict[str, Any] = json.loads(VECTORS.read_text())
PREFIX = "warrant/vectors/packets/v1/"
KEYS = {k["label"]: keys.from_seed(bytes.fromhex(k["seed_hex"])) for k in DOC["keys"]}


class Stream:
    """The vectors' random source: draw i of n bytes is SHAKE-256(prefix + name + '/' + i)[:n]."""

    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(f"{PREFIX}{self.name}/{self.count}".encode()).digest(n)
        self.count += 1
        return out


def build_receiver(setup: dict[str, Any]) -> Receiver:
    policy = Policy.from_text(json.dumps(setup["policy"]), "<vector policy>")
    store = RevocationStore()
    for rl in setup["revocations_hex"]:
        assert store.load(bytes.fromhex(rl), policy.trust)
    return Receiver(
        KEYS[setup["key"]],
        policy,
        started_at=setup["started_at"],
        revocations=store,
        random=Stream(setup["random"]),
    )


def kernel_reason(rx: Receiver, packet: bytes, port: int, now: float) -> Reason:
    """SPEC 6.1 steps 1-7 on the kernel's state, recording seq after step 7."""
    try:
        reason, data, s = rx.check_data_header(packet, port, now)
    except WarrantError as exc:
        return exc.reason
    if reason == Reason.SESSION_EXPIRED and data is not None:
        rx.sessions.remove(data.session_id, now)
    if reason == Reason.OK and s is not None and data is not None:
        s.window.update(data.seq)
    return reason


def is_init(packet: bytes) -> bool:
    return len(packet) >= 4 and packet[0] == 1 and packet[1] == Kind.INIT


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_case(case: dict[str, Any]) -> None:
    rx = build_receiver(case["receiver"])
    kernel = build_receiver(case["receiver"])  # same sessions, the kernel's own windows
    for i, p in enumerate(case["packets"]):
        packet = bytes.fromhex(p["hex"])
        source, port, now = (p["source"][0], p["source"][1]), p["dst_port"], p["now"]
        where = f"{case['name']}#{i} ({p['note']})"
        if is_init(packet):
            assert "kernel" not in p, where
            kernel.handle(packet, source, port, now)
        else:
            got = kernel_reason(kernel, packet, port, now)
            assert got.name == p["kernel"]["reason"], where
            assert p["kernel"]["same"] == (p["kernel"]["reason"] == p["expect"]["reason"]), where
        out = rx.handle(packet, source, port, now)
        expect = p["expect"]
        assert out.verdict.name == expect["verdict"], f"{where}: {out.reason.name} {out.detail}"
        assert out.reason.name == expect["reason"], f"{where}: {out.detail}"
        assert (None if out.payload is None else out.payload.hex()) == expect["payload_hex"], where
        assert (None if out.reply is None else out.reply.hex()) == expect["reply_hex"], where
        if "eph_secret_hex" in p:  # the ephemeral key reproduces the session id (SPEC 3.2)
            init = InitPacket.decode(packet)
            eph = x25519_base(bytes.fromhex(p["eph_secret_hex"]))
            assert init.eph_public == eph, where
            assert session_id(eph, init.receiver_id, init.credential) == init.session_id, where


def x25519_base(secret: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_base(secret)


def test_every_reason_of_spec_6_has_a_vector() -> None:
    gen = load_generator("vectors_packets")
    packets = [p for c in DOC["cases"] for p in c["packets"]]
    kernel_judged = {p["expect"]["reason"] for p in packets if "kernel" in p}
    inits = {p["expect"]["reason"] for p in packets if "kernel" not in p}
    assert set(gen.DATA_REASONS) <= kernel_judged
    assert set(gen.INIT_REASONS) <= inits
    # ... and each DATA reason of steps 1-7 at least once as the kernel's own verdict.
    kernel_reasons = {
        p["kernel"]["reason"] for p in packets if "kernel" in p and p["kernel"]["same"]
    }
    steps_1_to_7 = set(gen.DATA_REASONS) - {"RATE_LIMITED", "BAD_PAYLOAD_AUTH"}
    assert steps_1_to_7 <= kernel_reasons
    assert all(r in Reason.__members__ for r in kernel_judged | inits)


def test_hop_counts_covered() -> None:
    hops = {
        bytes.fromhex(p["hex"])[2]
        for c in DOC["cases"]
        for p in c["packets"]
        if p["expect"]["verdict"] == "ADMIT" and bytes.fromhex(p["hex"])[1] == Kind.DATA
    }
    assert {0, 1, 4} <= hops
    payloads = [
        p["expect"]["payload_hex"]
        for c in DOC["cases"]
        for p in c["packets"]
        if p["expect"]["verdict"] == "ADMIT" and bytes.fromhex(p["hex"])[1] == Kind.INIT
    ]
    assert None in payloads and any(payloads)  # INIT with and without a first payload


# ---- derivations -------------------------------------------------------------------------------
def h(v: str) -> bytes:
    return bytes.fromhex(v)


@pytest.mark.parametrize("vec", DOC["kdf"], ids=[v["name"] for v in DOC["kdf"]])
def test_kdf(vec: dict[str, Any]) -> None:
    f = vec["function"]
    if f == "key_id":
        public = h(vec["public_hex"])
        assert keys.key_id(public).hex() == vec["key_id_hex"]
        assert keys.anchor_id(public).hex() == vec["anchor_id_hex"]
        assert keys.x25519_public(public).hex() == vec["x25519_public_hex"]
    elif f == "session":
        eph = h(vec["eph_public_hex"])
        assert x25519_base(h(vec["eph_secret_hex"])) == eph
        assert (
            session_id(eph, h(vec["receiver_id_hex"]), h(vec["credential_hex"])).hex()
            == vec["session_id_hex"]
        )
        init = InitPacket.decode(h(vec["init_hex"]))
        assert init.signed_region().hex() == vec["signed_region_hex"]
        assert init.holder_sig.hex() == vec["holder_sig_hex"]
        th = transcript(init.signed_region(), init.holder_sig)
        assert th.hex() == vec["transcript_hex"]
        receiver = next(
            k for k in KEYS.values() if bytes(k.verify_key) == h(vec["receiver_public_hex"])
        )
        shared = x25519(keys.x25519_secret(receiver), eph)
        assert shared.hex() == vec["shared_hex"]
        assert x25519(h(vec["eph_secret_hex"]), h(vec["receiver_x25519_public_hex"])) == shared
        ks = session_keys(shared, th)
        assert (ks.mac.hex(), ks.aead.hex()) == (vec["k_mac_hex"], vec["k_aead_hex"])
        assert open_sealed(ks.aead, 0, init.ciphertext) == b"hello"
    elif f == "hop_key":
        relay = next(k for k in KEYS.values() if bytes(k.verify_key) == h(vec["relay_public_hex"]))
        receiver = next(
            k for k in KEYS.values() if bytes(k.verify_key) == h(vec["receiver_public_hex"])
        )
        shared = x25519(
            keys.x25519_secret(relay), keys.x25519_public(h(vec["receiver_public_hex"]))
        )
        assert shared == x25519(keys.x25519_secret(receiver), h(vec["relay_x25519_public_hex"]))
        assert shared.hex() == vec["shared_hex"]
        assert hop_key(shared, h(vec["session_id_hex"])).hex() == vec["k_hop_hex"]
    elif f == "cookie":
        jar = CookieJar(h(vec["receiver_public_hex"]), lambda n: h(vec["secret_hex"])[:n])
        cookie = jar.cookie((vec["address"][0], vec["address"][1]), 0.0)
        assert cookie.hex() == vec["cookie_hex"]
        assert (
            sealing_key(h(vec["receiver_public_hex"]), h(vec["eph_public_hex"])).hex()
            == vec["sealing_key_hex"]
        )
        assert cookie_mac(cookie, h(vec["cookie_region_hex"])).hex() == vec["cookie_mac_hex"]
    else:
        pytest.fail(f"unknown function {f}")


@pytest.mark.parametrize("vec", DOC["mac"], ids=[v["name"] for v in DOC["mac"]])
def test_mac(vec: dict[str, Any]) -> None:
    f = vec["function"]
    if f == "siphash-2-4-128":
        mac_input = DataPacket.mac_input(h(vec["session_id_hex"]), vec["seq"])
        assert mac_input.hex() == vec["input_hex"]
        assert header_mac(h(vec["key_hex"]), mac_input).hex() == vec["mac_hex"]
    elif f == "siphash-2-4-64":
        got = hop_mac(h(vec["key_hex"]), h(vec["prev_hex"]), h(vec["relay_tag_hex"]), vec["index"])
        assert got.hex() == vec["mac_hex"]
    elif f == "chacha20-poly1305-ietf":
        ct = seal(h(vec["key_hex"]), vec["seq"], h(vec["plaintext_hex"]))
        assert ct.hex() == vec["ciphertext_hex"]
        assert open_sealed(h(vec["key_hex"]), vec["seq"], ct) == h(vec["plaintext_hex"])
    else:
        pytest.fail(f"unknown function {f}")


@pytest.mark.parametrize("vec", DOC["encodings"], ids=[v["name"] for v in DOC["encodings"]])
def test_encodings(vec: dict[str, Any]) -> None:
    wire = h(vec["hex"])
    if vec["kind"] == "REJECT":
        packet = RejectPacket(
            Reason[vec["reason"]], h(vec["session_id_hex"]), vec["retry_after_ms"]
        )
        assert RejectPacket.decode(wire) == packet
    else:
        packet = CookiePacket(
            h(vec["session_id_hex"]), h(vec["nonce_hex"]), h(vec["sealed_cookie_hex"])
        )  # type: ignore[assignment]
        assert CookiePacket.decode(wire) == packet
    assert packet.encode() == wire


def test_admitted_data_decodes_to_its_layout() -> None:
    """Every admitted DATA packet parses per SPEC 3.1 and its header MAC input is bytes [0, 20)."""
    for case in DOC["cases"]:
        for p in case["packets"]:
            packet = h(p["hex"])
            if p["expect"]["verdict"] != "ADMIT" or packet[1] != Kind.DATA:
                continue
            data = DataPacket.decode(packet)
            masked = packet[:2] + b"\x00" + packet[3:20]
            assert DataPacket.mac_input(data.session_id, data.seq) == masked
            assert len(packet) == 36 + 12 * len(data.hops) + len(h(p["expect"]["payload_hex"])) + 16


def test_cookie_replies_open_to_the_cookie_of_their_source() -> None:
    """SPEC 3.4 and 8: the COOKIE opens under BLAKE2b-256(receiver key || eph_pub) with the session
    id as associated data, to BLAKE2b-128(key = secret, source IP || port); the secret is the first
    draw of the case's random stream (the receiver's first cookie epoch)."""
    checked = 0
    for case in DOC["cases"]:
        secret = Stream(case["receiver"]["random"])(32)
        receiver_public = bytes(KEYS[case["receiver"]["key"]].verify_key)
        inits = {}
        for p in case["packets"]:
            packet = h(p["hex"])
            if is_init(packet) and p["expect"]["reason"] in ("OK", "COOKIE_REQUIRED", "BAD_COOKIE"):
                init = InitPacket.decode(packet)
                inits[init.session_id] = init
            reply = p["expect"]["reply_hex"]
            if reply is None or h(reply)[1] != Kind.COOKIE:
                continue
            cookie_packet = CookiePacket.decode(h(reply))
            init = inits[cookie_packet.session_id]
            opened = open_cookie(cookie_packet, receiver_public, init.eph_public)
            address = p["source"][0].encode() + p["source"][1].to_bytes(2, "big")
            expected = hashlib.blake2b(
                address, digest_size=16, key=secret, person=b"warrant1-cookie"
            ).digest()
            assert opened == expected, p["note"]
            checked += 1
    assert checked >= 3


def test_generator_reproduces_the_committed_file() -> None:
    assert load_generator("vectors_packets").render() == VECTORS.read_text(), (
        "vectors/packets.json is stale: run python3 tools/vectors_packets.py"
    )


def test_verdict_names() -> None:
    for case in DOC["cases"]:
        for p in case["packets"]:
            assert p["expect"]["verdict"] in (Verdict.ADMIT.name, Verdict.DROP.name)
