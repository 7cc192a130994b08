"""Generate vectors/packets.json: packet-level test vectors (SPEC.md sections 3, 5, 6, 7, 8).

    python3 tools/vectors_packets.py          # write the file
    python3 tools/vectors_packets.py --check  # exit 1 if the committed file is stale

Three parts:

* `kdf` and `mac`: key ids, session ids, transcripts, session keys, hop keys,
  cookies, SipHash-2-4-128 header MACs, SipHash-2-4-64 hop MACs and
  ChaCha20-Poly1305 seals, computed here from the SPEC's definitions with
  hashlib's BLAKE2b and libsodium's primitives, not through `warrant.core.kdf` or
  `warrant.core.mac`: an independent statement of the derivations.
* `encodings`: REJECT and COOKIE packets from their fields.
* `cases`: each a receiver setup and an ordered list of datagrams fed to one
  `Receiver`, with the verdict, reason, admitted payload and reply each must
  get.  INITs are built by `warrant.core.sender.Sender` and `warrant.core.hop.Relay` (and
  checked here against the independent derivations); DATA packets and hop
  records are built here byte by byte.  Every expectation is *declared* by the
  case and the generator fails unless the reference receiver agrees, so the file
  states what SPEC 6 requires, not whatever the code happens to do.

Every DATA packet also carries `kernel`: the reason SPEC 6.1 steps 1-7 reach
(what the eBPF datapath decides; OK means "passed to user space") and `same`,
true when the kernel's reason is the receiver's.  The kernel records the
sequence number after step 7, before the payload is authenticated; user space
records it once the payload authenticated (a RATE_LIMITED packet included), so
after a packet the kernel passed but whose payload failed (BAD_PAYLOAD_AUTH)
the two windows differ and so may later reasons; those packets say so.

Everything is deterministic: keys from fixed seeds, fixed times, and random
draws from SHAKE-256 streams (draw i of n bytes from stream L is the first n
bytes of SHAKE-256("warrant/vectors/packets/v1/" + L + "/" + str(i))).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import nacl.bindings
import nacl.signing

import vectorlib
from vectorlib import b2b, key_id
from warrant.core import keys
from warrant.core.admission import Policy
from warrant.core.constants import SEQ_LIMIT, Kind, Reason, Verdict
from warrant.core.credential import Credential, Link, delegate, encode_body, issue, signed_message
from warrant.core.errors import WarrantError
from warrant.core.hop import Relay
from warrant.core.receiver import Claim, Outcome, Receiver
from warrant.core.revocation import RevocationList, RevocationStore
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender
from warrant.core.wire import CookiePacket, InitPacket, RejectPacket

OUTPUT = vectorlib.ROOT / "vectors" / "packets.json"

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
STARTED = NOW - 3600
PORT = 8443
SRC = ("10.0.0.1", 40000)
PREFIX = "warrant/vectors/packets/v1/"
SCOPE_A, SCOPE_B = "acme.prod", "partner.prod"
RELAY_DOMAINS = {"relay-a": "a.net", "relay-b": "b.net", "relay-c": "c.net", "relay-d": "d.net"}

# SPEC 6.1: what the kernel decides (steps 1-7), and the steps only user space runs.
DATA_REASONS = [
    "TRUNCATED", "UNKNOWN_VERSION", "UNKNOWN_KIND", "MALFORMED", "UNKNOWN_SESSION",
    "SESSION_EXPIRED", "PORT_MISMATCH", "BAD_MAC", "HOP_CHAIN_BROKEN", "REPLAY", "TOO_OLD",
    "SEQ_EXHAUSTED", "RATE_LIMITED", "BAD_PAYLOAD_AUTH", "OK",
]  # fmt: skip
INIT_REASONS = [
    "TRUNCATED", "UNKNOWN_VERSION", "MALFORMED", "WRONG_RECEIVER", "NOT_YET_VALID",
    "TOO_OLD", "BAD_SESSION_ID", "REPLAY", "COOKIE_REQUIRED", "BAD_COOKIE", "RATE_LIMITED",
    "WRONG_SCOPE", "UNKNOWN_ANCHOR", "BAD_SIGNATURE", "ESCALATION", "REVOKED", "EXPIRED",
    "BAD_HOLDER_PROOF", "PORT_MISMATCH", "OPERATION_NOT_GRANTED", "DESTINATION_NOT_GRANTED",
    "HOP_CHAIN_BROKEN", "UNTRUSTED_RELAY", "TOO_MANY_HOPS", "FORBIDDEN_DOMAIN",
    "DOMAIN_NOT_ALLOWED", "REQUIRED_DOMAIN_MISSING", "POLICY_DENIED", "BAD_PAYLOAD_AUTH",
    "SESSION_TABLE_FULL", "OK",
]  # fmt: skip


# ---- deterministic material ----------------------------------------------------------------------
KEY_LABELS = (
    "anchor-a", "anchor-b", "receiver", "other-receiver", "alice", "bob", "mallory",
    "relay-a", "relay-b", "relay-c", "relay-d", "relay-evil",
)  # fmt: skip
M = vectorlib.Material(PREFIX, KEY_LABELS)
K = M.keys
seed, pub, x_public, x_secret, Stream = M.seed, M.pub, M.x_public, M.x_secret, M.stream


# ---- SPEC 5, independently: BLAKE2b (hashlib), X25519 and SipHash (libsodium) ------------------------
def x25519(secret: bytes, public: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult(secret, public)


def x25519_base(secret: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_base(secret)


def derive_sid(eph_public: bytes, receiver_id: bytes, credential: bytes) -> bytes:
    return b2b(eph_public + receiver_id + credential, 8, b"warrant1-sid")


def transcript(signed_region: bytes, holder_sig: bytes) -> bytes:
    return b2b(signed_region + holder_sig, 32, b"warrant1-th")


def session_keys(shared: bytes, th: bytes) -> tuple[bytes, bytes]:
    return b2b(th, 16, b"warrant1-kmac", key=shared), b2b(th, 32, b"warrant1-kaead", key=shared)


def hop_key(relay: str, receiver: str, sid: bytes) -> bytes:
    shared = x25519(x_secret(relay), x_public(receiver))
    return b2b(sid, 16, b"warrant1-khop", key=shared)


def header_mac(k_mac: bytes, sid: bytes, seq: int) -> bytes:
    return nacl.bindings.crypto_shorthash_siphashx24(
        bytes([1, Kind.DATA, 0, 0]) + sid + struct.pack(">Q", seq), k_mac
    )


def hop_mac(k_hop: bytes, prev: bytes, tag: bytes, index: int) -> bytes:
    return nacl.bindings.crypto_shorthash_siphash24(prev[:8] + tag + bytes([index]), k_hop)


def aead_seal(key: bytes, seq: int, plaintext: bytes) -> bytes:
    nonce = bytes(4) + struct.pack(">Q", seq)
    return nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, None, nonce, key)


def signed_region(init: bytes) -> tuple[bytes, bytes]:
    """(signed region, holder signature) of an encoded INIT (SPEC 3.2)."""
    cred_len, claim_len = struct.unpack_from(">HH", init, 56)
    end = 68 + cred_len + claim_len
    return init[:2] + b"\x00\x00" + init[4:end], init[end : end + 64]


@dataclass(frozen=True)
class Keys:
    """A session's secrets as its sender and receiver derive them (SPEC 5.2)."""

    sid: bytes
    mac: bytes
    aead: bytes
    path: tuple[str, ...] = ()  # relay labels, in order
    receiver: str = "receiver"


def session_of(
    init: bytes, eph_secret: bytes, receiver: str = "receiver", path: Sequence[str] = ()
) -> Keys:
    region, sig = signed_region(init)
    shared = x25519(eph_secret, x_public(receiver))
    k_mac, k_aead = session_keys(shared, transcript(region, sig))
    return Keys(init[4:12], k_mac, k_aead, tuple(path), receiver)


def data_packet(
    ks: Keys,
    seq: int,
    payload: bytes,
    *,
    hops: Sequence[str] | None = None,
    aead_key: bytes | None = None,
) -> bytes:
    """A DATA packet built from SPEC 3.1 and 7.2, with hop records for `hops` (default: the path)."""
    relays = ks.path if hops is None else hops
    mac = header_mac(ks.mac, ks.sid, seq)
    records, prev = b"", mac
    for i, relay in enumerate(relays):
        tag = key_id(pub(relay))
        prev = hop_mac(hop_key(relay, ks.receiver, ks.sid), prev, tag, i)
        records += tag + prev
    head = bytes([1, Kind.DATA, len(relays), 0]) + ks.sid + struct.pack(">Q", seq) + mac
    return head + records + aead_seal(aead_key or ks.aead, seq, payload)


# ---- credentials, claims, policies -------------------------------------------------------------------
GRANT = Grant(
    operations=("orders.*",),
    destinations=(Destination("orders", PORT, PORT),),
    not_before=NOW - 3600,
    expires=NOW + 3600,
)
CLAIM = Claim("orders.read", "orders", PORT)


def cred(**changes: Any) -> bytes:
    holder = changes.pop("holder", "alice")
    scope = changes.pop("scope", SCOPE_A)
    anchor = changes.pop("anchor", "anchor-a")
    return issue(K[anchor], scope, pub(holder), replace(GRANT, **changes)).encode()


ALICE = cred()


def forged_root(signer: str, anchor: str) -> bytes:
    body = encode_body(SCOPE_A, keys.anchor_id(pub(anchor)), pub("mallory"), GRANT)
    sig = K[signer].sign(signed_message(bytes(32), body)).signature
    return Credential((Link.decode(body, sig, root=True),)).encode()


def escalated() -> bytes:
    """Alice delegates to Bob a link that widens her operations (delegate() would refuse)."""
    parent = Credential.decode(cred(operations=("orders.read",)))
    body = encode_body(None, None, pub("bob"), Grant(operations=("orders.*",)))
    sig = K["alice"].sign(signed_message(parent.chain_digest, body)).signature
    return Credential((*parent.links, Link.decode(body, sig, root=False))).encode()


def anchors_mapping(scopes: Sequence[tuple[str, str]] = ((SCOPE_A, "anchor-a"),)) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scope, label in scopes:
        out.setdefault(scope, {"anchors": []})["anchors"].append(keys.encode_public(pub(label)))
    return {
        "scopes": out,
        "relays": {d: [keys.encode_public(pub(r))] for r, d in RELAY_DOMAINS.items()},
    }


def policy(
    default: str = "allow", rules: Sequence[dict[str, Any]] = (), **limits: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {"anchors": anchors_mapping(), "default": default}
    if rules:
        doc["rules"] = list(rules)
    if limits:
        doc["limits"] = limits
    return doc


# ---- cases -------------------------------------------------------------------------------------------
def kernel_steps(rx: Receiver, packet: bytes, port: int, now: float) -> Reason:
    """SPEC 6.1 steps 1-7 on the kernel's state; records seq after step 7, like the kernel."""
    try:
        reason, data, s = rx.check_data_header(packet, port, now)
    except WarrantError as exc:
        return exc.reason
    if reason == Reason.SESSION_EXPIRED and data is not None:
        rx.sessions.remove(data.session_id, now)
    if reason == Reason.OK and s is not None and data is not None:
        s.window.update(data.seq)
    return reason


@dataclass
class Case:
    name: str
    description: str
    policy: dict[str, Any] = field(default_factory=policy)
    started_at: int = STARTED
    revocations: list[bytes] = field(default_factory=list)
    receiver: str = "receiver"
    packets: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rx = self._receiver()
        self.kernel = self._receiver()  # the kernel's view: same sessions, its own windows
        self.senders: dict[str, tuple[Sender, vectorlib.Stream]] = {}

    def _receiver(self) -> Receiver:
        pol = Policy.from_text(json.dumps(self.policy), f"<{self.name}>")
        store = RevocationStore()
        for rl in self.revocations:
            store.load(rl, pol.trust)
        return Receiver(
            K[self.receiver],
            pol,
            started_at=self.started_at,
            revocations=store,
            random=Stream(f"receiver/{self.name}"),
        )

    def sender(
        self,
        label: str,
        *,
        holder: str = "alice",
        credential: bytes = ALICE,
        claim: Claim = CLAIM,
        path: Sequence[str] = (),
        receiver: str = "receiver",
    ) -> Sender:
        stream = Stream(f"sender/{self.name}/{label}")
        s = Sender(
            K[holder],
            credential,
            pub(receiver),
            claim,
            next_hop_public=pub(path[0]) if path else None,
            random=stream,
        )
        self.senders[label] = (s, stream)
        return s

    def open(
        self,
        label: str,
        payload: bytes | None,
        *,
        path: Sequence[str] = (),
        now: float = NOW,
        **kw: Any,
    ) -> tuple[bytes, Keys, bytes]:
        """An INIT from a new sender `label`, through `path`: (packet, session keys, eph secret)."""
        s = self.sender(label, path=path, **kw)
        packet = relay(s.open(payload, now), path, kw.get("receiver", "receiver"))
        eph = self.senders[label][1].draws[-1]
        ks = session_of(packet, eph, kw.get("receiver", "receiver"), path)
        # The independent derivations agree with the implementation's sender.
        assert (
            ks.sid
            == s.session_id
            == derive_sid(packet[24:56], packet[12:16], InitPacket.decode(packet).credential)
        )
        return packet, ks, eph

    def send(
        self,
        packet: bytes,
        expect: str,
        note: str,
        *,
        source: tuple[str, int] = SRC,
        port: int = PORT,
        now: float = NOW,
        payload: bytes | None = None,
        eph_secret: bytes | None = None,
        reply: str | None = None,
    ) -> Outcome:
        is_init = len(packet) >= 4 and packet[0] == 1 and packet[1] == Kind.INIT
        if is_init:  # the kernel passes INITs up; user space installs the session
            kernel = None
            self.kernel.handle(packet, source, port, now)
        else:  # everything else sent to a Warrant port the kernel decides itself
            kernel = kernel_steps(self.kernel, packet, port, now)
        out = self.rx.handle(packet, source, port, now)
        where = f"{self.name}#{len(self.packets)} ({note})"
        assert out.reason.name == expect, (
            f"{where}: expected {expect}, got {out.reason.name}: {out.detail}"
        )
        assert (out.verdict == Verdict.ADMIT) == (expect == "OK"), where
        if expect == "OK":
            assert out.payload == payload, f"{where}: payload {out.payload!r}"
        got_reply = None if out.reply is None else Kind(out.reply[1]).name
        assert got_reply == reply, f"{where}: reply {got_reply}, expected {reply}"
        entry: dict[str, Any] = {
            "note": note,
            "hex": packet.hex(),
            "source": list(source),
            "dst_port": port,
            "now": now,
        }
        if eph_secret is not None:
            entry["eph_secret_hex"] = eph_secret.hex()
        entry["expect"] = {
            "verdict": out.verdict.name,
            "reason": out.reason.name,
            "payload_hex": None if out.payload is None else out.payload.hex(),
            "reply_hex": None if out.reply is None else out.reply.hex(),
        }
        if kernel is not None:
            entry["kernel"] = {"reason": kernel.name, "same": kernel == out.reason}
        self.packets.append(entry)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "receiver": {
                "key": self.receiver,
                "started_at": self.started_at,
                "random": f"receiver/{self.name}",
                "policy": self.policy,
                "revocations_hex": [rl.hex() for rl in self.revocations],
            },
            "packets": self.packets,
        }


def relay(packet: bytes, path: Sequence[str], receiver: str = "receiver") -> bytes:
    labels = list(path)
    for i, label in enumerate(labels):
        nxt = labels[i + 1] if i + 1 < len(labels) else receiver
        r = Relay(K[label], RELAY_DOMAINS.get(label, "evil.net"), pub(nxt), pub(receiver))
        packet = r.forward(packet)
    return packet


def edit(packet: bytes, offset: int, value: bytes) -> bytes:
    return packet[:offset] + value + packet[offset + len(value) :]


def flip(packet: bytes, offset: int, mask: int = 1) -> bytes:
    return edit(packet, offset, bytes([packet[offset] ^ mask]))


def without_statement(init: bytes, index: int) -> bytes:
    d = InitPacket.decode(init)
    statements = d.statements[:index] + d.statements[index + 1 :]
    return replace(d, statements=statements, raw=b"").encode()


def hand_init(
    *,
    holder: str = "alice",
    credential: bytes = ALICE,
    claim: bytes = CLAIM.encode(),
    eph_public: bytes,
    receiver: str = "receiver",
) -> bytes:
    """An INIT with fields no honest Sender produces (SPEC 3.2), no payload."""
    rid = key_id(pub(receiver))
    sid = derive_sid(eph_public, rid, credential)
    unsigned = InitPacket(sid, rid, NOW * 1000, eph_public, rid, credential, claim, b"", b"")
    sig = K[holder].sign(b"warrant/v1/init\x00" + unsigned.signed_region()).signature
    return replace(unsigned, holder_sig=sig).encode()


def case_direct() -> Case:
    c = Case(
        "direct-session",
        "INIT with a payload, then DATA with no hops: fresh, replayed, out of order.",
    )
    init, ks, eph = c.open("s", b"hello")
    c.send(init, "OK", "INIT carrying the first payload (seq 0)", payload=b"hello", eph_secret=eph)
    c.send(data_packet(ks, 1, b"one"), "OK", "DATA seq 1", payload=b"one")
    c.send(data_packet(ks, 2, b"two"), "OK", "DATA seq 2", payload=b"two")
    c.send(data_packet(ks, 1, b"one"), "REPLAY", "DATA seq 1 again")
    c.send(data_packet(ks, 4, b"four"), "OK", "DATA seq 4 (out of order)", payload=b"four")
    c.send(
        data_packet(ks, 3, b"three"), "OK", "DATA seq 3 (late, within the window)", payload=b"three"
    )
    c.send(data_packet(ks, 0, b"zero"), "REPLAY", "DATA seq 0: reserved for the INIT's payload")
    c.send(
        data_packet(ks, 5, b""), "OK", "DATA seq 5, empty payload (16-byte tag only)", payload=b""
    )
    c.send(init, "REPLAY", "the INIT replayed")
    c.send(
        data_packet(ks, 6, b"moved"),
        "OK",
        "DATA from another address",
        source=("192.0.2.7", 1234),
        payload=b"moved",
    )
    return c


def case_no_payload() -> Case:
    c = Case("init-without-payload", "INIT with payload_len 0, then DATA.")
    init, ks, eph = c.open("s", None)
    c.send(init, "OK", "INIT without payload", eph_secret=eph)
    c.send(data_packet(ks, 1, b"first data"), "OK", "DATA seq 1", payload=b"first data")
    return c


def case_one_hop() -> Case:
    c = Case(
        "one-hop",
        "A session through relay-a (domain a.net): INIT with one hop statement, DATA with one hop record.",
    )
    init, ks, eph = c.open("s", b"via a", path=["relay-a"])
    c.send(init, "OK", "INIT through relay-a", payload=b"via a", eph_secret=eph)
    genuine = relay(c.senders["s"][0].seal(b"one"), ["relay-a"])
    assert genuine == data_packet(ks, 1, b"one")  # Relay.forward matches SPEC 7.2 as built here
    c.send(genuine, "OK", "DATA with relay-a's record", payload=b"one")
    c.send(data_packet(ks, 2, b"x", hops=[]), "HOP_CHAIN_BROKEN", "DATA without the hop record")
    c.send(flip(data_packet(ks, 2, b"x"), 36 + 4 + 7), "HOP_CHAIN_BROKEN", "hop MAC flipped")
    c.send(
        data_packet(ks, 2, b"x", hops=["relay-b"]),
        "HOP_CHAIN_BROKEN",
        "a record by another (trusted) relay",
    )
    c.send(
        data_packet(ks, 2, b"x", hops=["relay-a", "relay-a"]),
        "HOP_CHAIN_BROKEN",
        "record duplicated",
    )
    c.send(data_packet(ks, 2, b"two"), "OK", "DATA seq 2 with the right record", payload=b"two")
    return c


def case_four_hops() -> Case:
    path = ["relay-a", "relay-b", "relay-c", "relay-d"]
    c = Case("four-hops", "A session through four relays; hop records removed, reordered, spliced.")
    init, ks, eph = c.open("s", b"via 4", path=path)
    c.send(init, "OK", "INIT through four relays", payload=b"via 4", eph_secret=eph)
    c.send(data_packet(ks, 1, b"one"), "OK", "DATA with four records", payload=b"one")
    two = data_packet(ks, 2, b"two")
    swapped = two[:36] + two[48:60] + two[36:48] + two[60:]
    c.send(swapped, "HOP_CHAIN_BROKEN", "records 0 and 1 swapped")
    spliced = two[:36] + data_packet(ks, 1, b"one")[36:84] + two[84:]
    c.send(spliced, "HOP_CHAIN_BROKEN", "records spliced from DATA seq 1")
    c.send(data_packet(ks, 2, b"two", hops=path[:3]), "HOP_CHAIN_BROKEN", "last record cut off")
    c.send(data_packet(ks, 2, b"two", hops=path[1:]), "HOP_CHAIN_BROKEN", "first record cut off")
    c.send(two, "OK", "DATA seq 2 intact", payload=b"two")
    c.send(
        without_statement(init, 1),
        "REPLAY",
        "the INIT replayed with statement 1 removed: step 5 first",
    )
    return c


def case_data_parse() -> Case:
    c = Case(
        "data-parse", "DATA packets refused by the parser (SPEC 3, 6.1 step 1); no session needed."
    )
    sid = bytes.fromhex("0102030405060708")
    header = bytes([1, 2, 0, 0]) + sid + struct.pack(">Q", 1) + bytes(16)
    good_len = header + bytes(16)
    c.send(b"", "TRUNCATED", "empty datagram")
    c.send(b"\x01\x02\x00", "TRUNCATED", "3 bytes: shorter than the common header")
    c.send(header, "TRUNCATED", "36-byte header without the 16-byte tag")
    c.send(good_len[:-1], "TRUNCATED", "51 bytes")
    c.send(edit(good_len, 2, b"\x02"), "TRUNCATED", "hop_count 2 but no room for the records")
    c.send(edit(good_len, 0, b"\x02"), "UNKNOWN_VERSION", "version 2")
    c.send(edit(good_len, 0, b"\x00"), "UNKNOWN_VERSION", "version 0")
    c.send(b"\x02\x02\x00", "TRUNCATED", "3 bytes with version 2: length is checked first")
    c.send(edit(good_len, 1, b"\x00"), "UNKNOWN_KIND", "kind 0")
    c.send(edit(good_len, 1, b"\x05"), "UNKNOWN_KIND", "kind 5")
    c.send(edit(good_len, 1, b"\xff"), "UNKNOWN_KIND", "kind 255")
    c.send(
        RejectPacket(Reason.UNKNOWN_SESSION, sid).encode(),
        "UNKNOWN_KIND",
        "a REJECT sent to a receiver",
    )
    c.send(
        CookiePacket(sid, bytes(24), bytes(32)).encode(),
        "UNKNOWN_KIND",
        "a COOKIE sent to a receiver",
    )
    c.send(edit(good_len, 3, b"\x01"), "MALFORMED", "flags 0x01")
    c.send(edit(good_len, 3, b"\x80"), "MALFORMED", "flags 0x80")
    c.send(
        edit(good_len, 3, b"\x80")[:20],
        "MALFORMED",
        "flags 0x80 in a 20-byte packet: flags before length",
    )
    c.send(edit(good_len, 2, b"\x09"), "MALFORMED", "hop_count 9 > MAX_HOPS")
    c.send(
        edit(good_len, 2, b"\xff")[:10],
        "MALFORMED",
        "hop_count 255 in a 10-byte packet: hop count before length",
    )
    c.send(good_len, "UNKNOWN_SESSION", "well formed, unknown session: REJECT", reply="REJECT")
    return c


def case_data_session() -> Case:
    c = Case("data-session-checks", "SPEC 6.1 steps 2-10 on one direct session.")
    init, ks, eph = c.open("s", b"hi")
    c.send(init, "OK", "INIT", payload=b"hi", eph_secret=eph)
    other = replace(ks, sid=bytes.fromhex("ffeeddccbbaa9988"))
    c.send(
        data_packet(other, 1, b"x"),
        "UNKNOWN_SESSION",
        "unknown session id: REJECT asks for the credential",
        reply="REJECT",
    )
    c.send(data_packet(ks, 1, b"one"), "PORT_MISMATCH", "sent to another UDP port", port=PORT + 1)
    c.send(flip(data_packet(ks, 1, b"one"), 19), "BAD_MAC", "seq changed (last byte)")
    c.send(flip(data_packet(ks, 1, b"one"), 20), "BAD_MAC", "MAC byte 0 flipped")
    c.send(flip(data_packet(ks, 1, b"one"), 35, 0x80), "BAD_MAC", "MAC byte 15 flipped")
    foreign = Keys(ks.sid, b"\x00" * 16, ks.aead)
    c.send(data_packet(foreign, 1, b"one"), "BAD_MAC", "MAC under another key")
    c.send(
        data_packet(ks, 1, b"one", hops=["relay-a"]),
        "HOP_CHAIN_BROKEN",
        "a relay's record on a direct session",
    )
    c.send(data_packet(ks, 1, b"one"), "OK", "DATA seq 1", payload=b"one")
    c.send(data_packet(ks, 1, b"one"), "REPLAY", "seq 1 again")
    c.send(data_packet(ks, 5000, b"far"), "OK", "seq 5000", payload=b"far")
    c.send(data_packet(ks, 968, b"old"), "TOO_OLD", "seq 968: 5000 - 968 = 4032, behind the window")
    c.send(data_packet(ks, 969, b"edge"), "OK", "seq 969: the oldest fresh number", payload=b"edge")
    c.send(data_packet(ks, 969, b"edge"), "REPLAY", "seq 969 again")
    tampered = flip(data_packet(ks, 5001, b"pay"), -1)
    c.send(
        tampered,
        "BAD_PAYLOAD_AUTH",
        "payload tag flipped: the kernel passes it (it has no payload key)",
    )
    c.send(
        data_packet(ks, 5001, b"pay"),
        "OK",
        "the genuine seq 5001: user space never recorded it; the kernel did (after step 7)",
        payload=b"pay",
    )
    c.send(
        data_packet(ks, 5002, b"x", aead_key=bytes(32)),
        "BAD_PAYLOAD_AUTH",
        "payload sealed under another key",
    )
    c.send(data_packet(ks, SEQ_LIMIT, b"lim"), "SEQ_EXHAUSTED", "seq 2^63 = SEQ_LIMIT")
    c.send(data_packet(ks, 2**64 - 1, b"max"), "SEQ_EXHAUSTED", "seq 2^64-1: nothing moved")
    c.send(data_packet(ks, 5003, b"on"), "OK", "the session goes on", payload=b"on")
    c.send(data_packet(ks, SEQ_LIMIT - 1, b"top"), "OK", "seq 2^63-1, the last", payload=b"top")
    c.send(
        data_packet(ks, 6000, b"late"), "TOO_OLD", "everything before 2^63-1-4031 is now too old"
    )
    end = NOW + 600
    c.send(
        data_packet(ks, 7000, b"x"),
        "SESSION_EXPIRED",
        "SESSION_MAX_LIFETIME (600 s) after opening: REJECT",
        now=end,
        reply="REJECT",
    )
    c.send(
        data_packet(ks, 7001, b"x"),
        "UNKNOWN_SESSION",
        "the expired session was removed",
        now=end,
        reply="REJECT",
    )
    return c


def case_data_rate() -> Case:
    c = Case(
        "data-rate-limited",
        "A credential with rate 2 packets/s: SPEC 6.1 step 8 (user space only).",
    )
    init, ks, eph = c.open("s", None, credential=cred(rate=2))
    c.send(init, "OK", "INIT (rate 2)", eph_secret=eph)
    c.send(data_packet(ks, 1, b"1"), "OK", "first", payload=b"1")
    c.send(data_packet(ks, 2, b"2"), "OK", "second", payload=b"2")
    c.send(data_packet(ks, 3, b"3"), "RATE_LIMITED", "third in the same instant")
    late = NOW + 0.5
    c.send(data_packet(ks, 3, b"3"), "REPLAY", "the same packet 0.5 s later: recorded", now=late)
    for i in range(3):  # a corrupted copy spends no token: the payload is checked first
        c.send(
            flip(data_packet(ks, 4, b"4"), -1),
            "BAD_PAYLOAD_AUTH",
            f"seq 4, payload tag flipped, copy {i + 1}",
            now=late,
        )
    c.send(
        data_packet(ks, 4, b"4"), "OK", "genuine seq 4: the refilled token", now=late, payload=b"4"
    )
    return c


def case_credential_expiry() -> Case:
    c = Case(
        "session-ends-at-credential-expiry", "Session lifetime min(600 s, expiry + CLOCK_SKEW)."
    )
    init, ks, eph = c.open("s", None, credential=cred(expires=NOW + 100))
    c.send(init, "OK", "INIT; credential expires at now + 100", eph_secret=eph)
    c.send(data_packet(ks, 1, b"x"), "OK", "at expiry + 29.5 s", now=NOW + 129.5, payload=b"x")
    c.send(
        data_packet(ks, 2, b"y"),
        "SESSION_EXPIRED",
        "at expiry + 30 s",
        now=NOW + 130,
        reply="REJECT",
    )
    again, _, eph2 = c.open("t", None, credential=cred(expires=NOW + 100), now=NOW + 131)
    c.send(again, "EXPIRED", "a new INIT at expiry + 31 s", now=NOW + 131, eph_secret=eph2)
    return c


def case_init_parse() -> Case:
    c = Case("init-parse", "INIT packets refused by the parser (SPEC 3.2, 6.2 step 1).")
    init, _, _ = c.open("s", b"payload")
    relayed, _, _ = c.open("r", None, path=["relay-a"])
    c.send(init[:4], "TRUNCATED", "common header only")
    c.send(init[:67], "TRUNCATED", "67 bytes: fixed part incomplete")
    c.send(init[:-1], "TRUNCATED", "last byte missing")
    c.send(relayed[:-1], "TRUNCATED", "hop statement cut short")
    c.send(edit(init, 0, b"\x07"), "UNKNOWN_VERSION", "version 7")
    c.send(edit(init, 3, b"\x02"), "MALFORMED", "unknown flag 0x02")
    c.send(edit(init, 3, b"\x01"), "TRUNCATED", "cookie flag set but no cookie MAC")
    c.send(edit(init, 62, b"\x00\x01"), "MALFORMED", "reserved field not zero")
    c.send(edit(init, 2, b"\x09"), "MALFORMED", "hop_count 9")
    c.send(edit(init, 60, b"\x00\x0f"), "MALFORMED", "payload_len 15 (< tag)")
    c.send(init + b"\x00", "MALFORMED", "one trailing byte")
    domain_at = len(relayed) - 64 - len("a.net")
    c.send(edit(relayed, domain_at, b"\xe1"), "MALFORMED", "hop statement domain not ASCII")
    c.send(
        edit(relayed, 2, b"\x00"),
        "MALFORMED",
        "hop_count 0 with a statement present (trailing bytes)",
    )
    return c


def case_init_checks() -> Case:
    c = Case(
        "init-checks", "SPEC 6.2 steps 2-14, one failing step at a time, then the genuine INIT."
    )
    rid = key_id(pub("receiver"))
    wrong, _, _ = c.open("wrong-receiver", None, receiver="other-receiver")
    c.send(wrong, "WRONG_RECEIVER", "addressed to other-receiver")
    future, _, _ = c.open("future", None, now=NOW + 30.001)
    c.send(future, "NOT_YET_VALID", "timestamp 30.001 s ahead (beyond CLOCK_SKEW)")
    ahead, _, eph = c.open("ahead", None, now=NOW + 30)
    c.send(ahead, "OK", "timestamp exactly 30 s ahead", eph_secret=eph)
    stale, _, _ = c.open("stale", None, now=NOW - 90.001)
    c.send(stale, "TOO_OLD", "timestamp 90.001 s old (INIT_MAX_AGE + CLOCK_SKEW): no REJECT")
    aged, _, eph = c.open("aged", None, now=NOW - 90)
    c.send(aged, "OK", "timestamp exactly 90 s old", eph_secret=eph)
    good, _, good_eph = c.open("good", b"payload")
    c.send(flip(good, 4), "BAD_SESSION_ID", "session id byte 0 flipped")
    c.send(flip(good, 30), "BAD_SESSION_ID", "eph_pub changed: session id no longer matches")
    c.send(flip(good, 100), "BAD_SESSION_ID", "a credential byte changed")
    cases = [
        (
            "scope-b",
            cred(scope=SCOPE_B, anchor="anchor-b"),
            "WRONG_SCOPE",
            "credential of partner.prod",
        ),
        (
            "anchor-b",
            cred(anchor="anchor-b"),
            "UNKNOWN_ANCHOR",
            "acme.prod credential rooted in partner's anchor",
        ),
        (
            "forged",
            forged_root("mallory", "anchor-a"),
            "BAD_SIGNATURE",
            "root naming anchor-a, signed by mallory",
        ),
        ("escalated", escalated(), "ESCALATION", "delegation widening orders.read to orders.*"),
        ("expired", cred(expires=NOW - 31, not_before=NOW - 3600), "EXPIRED", "expired 31 s ago"),
        ("early", cred(not_before=NOW + 31), "NOT_YET_VALID", "valid from 31 s ahead"),
    ]
    for label, credential, reason, note in cases:
        holder = "bob" if label == "escalated" else "mallory" if label == "forged" else "alice"
        packet, _, _ = c.open(label, None, credential=credential, holder=holder)
        c.send(packet, reason, note)
    garbage = b"\x82\x01\x40"
    c.send(
        hand_init(credential=garbage, eph_public=x25519_base(b"\x01" * 32)),
        "MALFORMED",
        "credential [1, h''] behind a valid session id",
    )
    c.send(
        hand_init(credential=b"\x83\x02\x40\x40", eph_public=x25519_base(b"\x02" * 32)),
        "UNKNOWN_VERSION",
        "credential version 2",
    )
    theft, _, _ = c.open("theft", None, holder="mallory")
    c.send(theft, "BAD_HOLDER_PROOF", "alice's credential, INIT signed by mallory")
    c.send(
        flip(good, len(good) - len(b"payload") - 16 - 1),
        "BAD_HOLDER_PROOF",
        "holder signature flipped",
    )
    c.send(
        hand_init(claim=b"\x82\x01\x02", eph_public=x25519_base(b"\x03" * 32)),
        "MALFORMED",
        "claim [1, 2]",
    )
    for i, service in enumerate(["orders\nADMIT forged", "*", "Orders", ""]):
        c.send(
            hand_init(
                claim=Claim("orders.read", service, PORT).encode(),
                eph_public=x25519_base(bytes([0x10 + i]) * 32),
            ),
            "MALFORMED",
            f"claim service {service!r}: not a service name (SPEC 6.2 step 10)",
        )
    c.send(good, "PORT_MISMATCH", "claims 8443, sent to 9000", port=9000)
    op, _, _ = c.open("op", None, claim=Claim("payments.write", "orders", PORT))
    c.send(op, "OPERATION_NOT_GRANTED", "payments.write")
    dst, _, _ = c.open("dst", None, claim=Claim("orders.read", "billing", PORT))
    c.send(dst, "DESTINATION_NOT_GRANTED", "service billing")
    relayed, _, _ = c.open("relayed", None, path=["relay-a", "relay-b"])
    c.send(without_statement(relayed, 0), "HOP_CHAIN_BROKEN", "first hop statement removed")
    c.send(
        without_statement(relayed, 1),
        "HOP_CHAIN_BROKEN",
        "tail cut off: last next_hop is relay-b, not us",
    )
    evil, _, _ = c.open("evil", None, path=["relay-a", "relay-evil"])
    c.send(evil, "UNTRUSTED_RELAY", "relay-evil is trusted for no domain")
    hops, _, _ = c.open("hops", None, path=["relay-a", "relay-b"], credential=cred(max_hops=1))
    c.send(hops, "TOO_MANY_HOPS", "credential max_hops 1, two relays")
    forbidden, _, _ = c.open(
        "forbidden", None, path=["relay-b"], credential=cred(forbidden_domains=("b.net",))
    )
    c.send(forbidden, "FORBIDDEN_DOMAIN", "credential forbids b.net")
    allowed, _, _ = c.open(
        "allowed", None, path=["relay-c"], credential=cred(allowed_domains=("a.net",))
    )
    c.send(allowed, "DOMAIN_NOT_ALLOWED", "credential allows a.net only; crossed c.net")
    required, _, _ = c.open("required", None, credential=cred(required_domains=("a.net",)))
    c.send(required, "REQUIRED_DOMAIN_MISSING", "credential requires a.net; sent directly")
    c.send(flip(good, len(good) - 1), "BAD_PAYLOAD_AUTH", "first payload's tag flipped")
    c.send(
        hand_init(eph_public=bytes(32)),
        "MALFORMED",
        "low-order ephemeral key (X25519 result all zeros)",
    )
    c.send(good, "OK", "the genuine INIT", payload=b"payload", eph_secret=good_eph)
    c.send(good, "REPLAY", "the genuine INIT again")
    assert rid == good[12:16]
    return c


def case_policy() -> Case:
    rules = [
        {
            "name": "readers",
            "operations": ["orders.read"],
            "services": ["orders"],
            "ports": [PORT],
            "max_hops": 1,
            "not_via": ["c.net"],
        },
        {"name": "writers", "operations": ["orders.write"], "via": ["a.net"]},
    ]
    c = Case(
        "init-policy",
        "Receiver policy (SPEC 9): default deny, two rules with path constraints.",
        policy=policy("deny", rules),
    )
    ok, _, eph = c.open("ok", None, path=["relay-a"])
    c.send(ok, "OK", "orders.read through a.net: rule readers", eph_secret=eph)
    two, _, _ = c.open("two", None, path=["relay-a", "relay-b"])
    c.send(two, "TOO_MANY_HOPS", "rule readers allows one hop")
    via_c, _, _ = c.open("via-c", None, path=["relay-c"])
    c.send(via_c, "FORBIDDEN_DOMAIN", "rule readers: not via c.net")
    direct_write, _, _ = c.open("write", None, claim=Claim("orders.write", "orders", PORT))
    c.send(direct_write, "REQUIRED_DOMAIN_MISSING", "rule writers: via a.net")
    other_op, _, _ = c.open("list", None, claim=Claim("orders.list", "orders", PORT))
    c.send(other_op, "POLICY_DENIED", "no rule admits orders.list; default deny")
    return c


def case_revoked() -> Case:
    link_id = Credential.decode(ALICE).link_ids()[0]
    rl = RevocationList.sign(K["anchor-a"], SCOPE_A, 1, link_ids=[link_id]).encode()
    c = Case(
        "init-revoked",
        "A signed revocation list naming alice's root link is loaded.",
        revocations=[rl],
    )
    init, _, _ = c.open("s", None)
    c.send(init, "REVOKED", "alice's credential")
    bob = delegate(
        Credential.decode(ALICE), K["alice"], pub("bob"), Grant(operations=("orders.read",))
    ).encode()
    derived, _, _ = c.open("bob", None, holder="bob", credential=bob)
    c.send(derived, "REVOKED", "bob's delegation from the revoked link")
    return c


def case_restart() -> Case:
    c = Case(
        "receiver-restart",
        "The receiver's state began at now + 5: INITs stamped before are refused with a REJECT.",
        started_at=NOW + 5,
    )
    old, ks, _ = c.open("s", b"once")
    c.send(
        old,
        "TOO_OLD",
        "INIT stamped before the receiver's state: REJECT",
        now=NOW + 10,
        reply="REJECT",
    )
    c.send(
        data_packet(ks, 1, b"x"),
        "UNKNOWN_SESSION",
        "DATA of a session from before the restart",
        now=NOW + 10,
        reply="REJECT",
    )
    new, _, eph = c.open("t", b"again", now=NOW + 10)
    c.send(new, "OK", "a fresh INIT", now=NOW + 10, payload=b"again", eph_secret=eph)
    return c


def case_init_rate() -> Case:
    c = Case(
        "init-rate-limited",
        "Session openings per source: rate 1/s, burst 2.",
        policy=policy(init_rate_per_source=1, init_burst=2),
    )
    for i in range(2):
        p, _, eph = c.open(f"s{i}", None)
        c.send(p, "OK", f"opening {i + 1}", eph_secret=eph)
    third, _, eph = c.open("s2", None)
    c.send(third, "RATE_LIMITED", "third opening from 10.0.0.1 in the same instant")
    c.send(third, "RATE_LIMITED", "same address, another port", source=(SRC[0], 1))
    c.send(
        third,
        "OK",
        "the same INIT from another address",
        source=("10.0.0.2", 40000),
        eph_secret=eph,
    )
    fourth, _, eph = c.open("s3", None, now=NOW + 1)
    c.send(fourth, "OK", "one second later", now=NOW + 1, eph_secret=eph)
    return c


def case_cookie() -> Case:
    c = Case(
        "cookie-under-load",
        "load_threshold 2: the second opening in a second needs a cookie (SPEC 8).",
        policy=policy(load_threshold=2),
    )
    first, _, eph = c.open("first", None)
    c.send(first, "OK", "opening 1", eph_secret=eph)
    second, ks, eph = c.open("second", b"loaded")
    out = c.send(
        second,
        "COOKIE_REQUIRED",
        "opening 2: answered with a COOKIE",
        reply="COOKIE",
        eph_secret=eph,
    )
    assert out.reply is not None
    s = c.senders["second"][0]
    with_cookie = s.handle(out.reply, NOW + 0.01)
    assert with_cookie is not None
    c.send(
        flip(with_cookie, len(with_cookie) - 1),
        "BAD_COOKIE",
        "cookie MAC flipped",
        now=NOW + 0.01,
        reply="COOKIE",
    )
    c.send(
        with_cookie,
        "BAD_COOKIE",
        "the right cookie MAC from another address",
        source=("10.0.0.9", 40000),
        now=NOW + 0.01,
        reply="COOKIE",
    )
    c.send(
        with_cookie,
        "OK",
        "the INIT resent with the cookie MAC (flag 0x01)",
        now=NOW + 0.01,
        payload=b"loaded",
    )
    c.send(
        data_packet(ks, 1, b"d"), "OK", "DATA never needs a cookie", now=NOW + 0.02, payload=b"d"
    )
    return c


def case_cookie_off_load() -> Case:
    c = Case(
        "cookie-off-load",
        "A cookie MAC present is checked even when not under load (SPEC 6.2 step 6).",
    )
    init, _, eph = c.open("s", b"hi")
    garbage = replace(InitPacket.decode(init), cookie_mac=b"\xee" * 16, raw=b"").encode()
    c.send(garbage, "BAD_COOKIE", "random cookie bytes, flag 0x01", reply="COOKIE")
    c.send(init, "OK", "the same INIT without a cookie", eph_secret=eph, payload=b"hi")
    return c


def case_table_full() -> Case:
    c = Case("session-table-full", "max_sessions 1.", policy=policy(max_sessions=1))
    first, _, eph = c.open("first", None)
    c.send(first, "OK", "first session", eph_secret=eph)
    second, _, _ = c.open("second", None)
    c.send(second, "SESSION_TABLE_FULL", "no room for a second")
    return c


CASES: list[Callable[[], Case]] = [
    case_direct,
    case_no_payload,
    case_one_hop,
    case_four_hops,
    case_data_parse,
    case_data_session,
    case_data_rate,
    case_credential_expiry,
    case_init_parse,
    case_init_checks,
    case_policy,
    case_revoked,
    case_restart,
    case_init_rate,
    case_cookie,
    case_cookie_off_load,
    case_table_full,
]


# ---- KDF, MAC and encoding vectors ------------------------------------------------------------------
def kdf_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for label in KEY_LABELS:
        out.append(
            {
                "name": f"key-id/{label}",
                "function": "key_id",
                "public_hex": pub(label).hex(),
                "key_id_hex": key_id(pub(label)).hex(),
                "anchor_id_hex": b2b(pub(label), 8, b"warrant1-kid").hex(),
                "x25519_public_hex": x_public(label).hex(),
            }
        )
    # A whole session opening: every intermediate value.
    stream = Stream("kdf/sender")
    s = Sender(K["alice"], ALICE, pub("receiver"), CLAIM, random=stream)
    init = s.open(b"hello", NOW)
    eph_secret = stream.draws[0]
    eph_public = x25519_base(eph_secret)
    region, sig = signed_region(init)
    shared = x25519(eph_secret, x_public("receiver"))
    assert shared == x25519(x_secret("receiver"), eph_public)
    th = transcript(region, sig)
    k_mac, k_aead = session_keys(shared, th)
    rid = key_id(pub("receiver"))
    sid = derive_sid(eph_public, rid, ALICE)
    out.append(
        {
            "name": "session/alice-to-receiver",
            "function": "session",
            "eph_secret_hex": eph_secret.hex(),
            "eph_public_hex": eph_public.hex(),
            "receiver_public_hex": pub("receiver").hex(),
            "receiver_x25519_public_hex": x_public("receiver").hex(),
            "receiver_id_hex": rid.hex(),
            "credential_hex": ALICE.hex(),
            "session_id_hex": sid.hex(),
            "init_hex": init.hex(),
            "signed_region_hex": region.hex(),
            "holder_sig_hex": sig.hex(),
            "shared_hex": shared.hex(),
            "transcript_hex": th.hex(),
            "k_mac_hex": k_mac.hex(),
            "k_aead_hex": k_aead.hex(),
        }
    )
    for relay_label in ("relay-a", "relay-d"):
        relay_shared = x25519(x_secret(relay_label), x_public("receiver"))
        assert relay_shared == x25519(x_secret("receiver"), x_public(relay_label))
        out.append(
            {
                "name": f"hop-key/{relay_label}",
                "function": "hop_key",
                "relay_public_hex": pub(relay_label).hex(),
                "relay_x25519_public_hex": x_public(relay_label).hex(),
                "receiver_public_hex": pub("receiver").hex(),
                "session_id_hex": sid.hex(),
                "shared_hex": relay_shared.hex(),
                "k_hop_hex": hop_key(relay_label, "receiver", sid).hex(),
            }
        )
    secret = hashlib.sha256(b"cookie secret").digest()
    for address in (("10.0.0.1", 40000), ("2001:db8::7", 443)):
        cookie = b2b(
            address[0].encode() + struct.pack(">H", address[1]), 16, b"warrant1-cookie", key=secret
        )
        out.append(
            {
                "name": f"cookie/{address[0]}",
                "function": "cookie",
                "secret_hex": secret.hex(),
                "address": list(address),
                "cookie_hex": cookie.hex(),
                "sealing_key_hex": b2b(pub("receiver") + eph_public, 32, b"warrant1-ckey").hex(),
                "receiver_public_hex": pub("receiver").hex(),
                "eph_public_hex": eph_public.hex(),
                "cookie_region_hex": (region + sig + init[len(region) + 64 :]).hex(),
                "cookie_mac_hex": b2b(
                    region + sig + init[len(region) + 64 :], 16, b"warrant1-cookie", key=cookie
                ).hex(),
            }
        )
    return out


def mac_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    key = bytes(range(16))
    sid = bytes.fromhex("0011223344556677")
    for seq in (0, 1, 255, 2**32, 2**64 - 1):
        mac_input = bytes([1, 2, 0, 0]) + sid + struct.pack(">Q", seq)
        out.append(
            {
                "name": f"header-mac/seq-{seq}",
                "function": "siphash-2-4-128",
                "key_hex": key.hex(),
                "session_id_hex": sid.hex(),
                "seq": seq,
                "input_hex": mac_input.hex(),
                "mac_hex": header_mac(key, sid, seq).hex(),
            }
        )
    prev = header_mac(key, sid, 1)
    for index in range(3):
        k_hop = hashlib.sha256(b"hop key %d" % index).digest()[:16]
        tag = key_id(pub(f"relay-{'abc'[index]}"))
        mac = hop_mac(k_hop, prev, tag, index)
        out.append(
            {
                "name": f"hop-mac/{index}",
                "function": "siphash-2-4-64",
                "key_hex": k_hop.hex(),
                "prev_hex": prev[:8].hex(),
                "relay_tag_hex": tag.hex(),
                "index": index,
                "input_hex": (prev[:8] + tag + bytes([index])).hex(),
                "mac_hex": mac.hex(),
            }
        )
        prev = mac
    aead = bytes(range(32))
    for seq, plaintext in ((0, b""), (1, b"hello"), (2**64 - 1, bytes(range(64)))):
        out.append(
            {
                "name": f"aead/seq-{seq}",
                "function": "chacha20-poly1305-ietf",
                "key_hex": aead.hex(),
                "seq": seq,
                "nonce_hex": (bytes(4) + struct.pack(">Q", seq)).hex(),
                "plaintext_hex": plaintext.hex(),
                "ciphertext_hex": aead_seal(aead, seq, plaintext).hex(),
            }
        )
    return out


def encoding_vectors() -> list[dict[str, Any]]:
    sid = bytes.fromhex("8899aabbccddeeff")
    out: list[dict[str, Any]] = []
    for reason, retry in (
        (Reason.UNKNOWN_SESSION, 0),
        (Reason.SESSION_EXPIRED, 1000),
        (Reason.TOO_OLD, 2**32 - 1),
    ):
        wire = bytes([1, Kind.REJECT, reason, 0]) + sid + struct.pack(">I", retry)
        assert RejectPacket(reason, sid, retry).encode() == wire
        out.append({"name": f"reject/{reason.name}", "kind": "REJECT", "reason": reason.name,
                    "session_id_hex": sid.hex(), "retry_after_ms": retry, "hex": wire.hex()})  # fmt: skip
    nonce, sealed = bytes(range(24)), bytes(range(100, 132))
    wire = bytes([1, Kind.COOKIE, 0, 0]) + sid + nonce + sealed
    assert CookiePacket(sid, nonce, sealed).encode() == wire
    out.append({"name": "cookie", "kind": "COOKIE", "session_id_hex": sid.hex(), "nonce_hex": nonce.hex(),
                "sealed_cookie_hex": sealed.hex(), "hex": wire.hex()})  # fmt: skip
    return out


def build() -> dict[str, Any]:
    cases = [make().to_json() for make in CASES]
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    packets = [p for c in cases for p in c["packets"]]
    for what, wanted, reasons in (
        ("DATA", DATA_REASONS, {p["expect"]["reason"] for p in packets if "kernel" in p}),
        ("INIT", INIT_REASONS, {p["expect"]["reason"] for p in packets if "kernel" not in p}),
    ):
        missing = [r for r in wanted if r not in reasons]
        assert not missing, f"{what}: no vector for {missing}"
    return {
        "version": 1,
        "description": (
            "Warrant packet test vectors (SPEC.md sections 3, 5-8). `keys`: Ed25519 keys from the "
            "32-byte seeds SHA-256('warrant/vectors/packets/v1/' + label). `kdf` and `mac`: "
            "derivations and MACs from their inputs. `encodings`: REJECT and COOKIE from their "
            "fields. `cases`: build one Receiver per case from `receiver` (key label, started_at, "
            "the policy mapping as a policy file, the revocation lists in order, and the random "
            "stream named `random`: draw i of n bytes = SHAKE-256('warrant/vectors/packets/v1/' + "
            "name + '/' + str(i))[:n]), then hand it each datagram in order with its source "
            "address, UDP destination port and time (Unix seconds). `expect` gives the verdict, "
            "reason, admitted payload and reply. Every packet but an INIT (which the kernel "
            "passes to user space) gives `kernel`: the reason of SPEC 6.1 steps 1-7 on the kernel's state (sessions installed by user space, the kernel's own "
            "replay window, updated after step 7) and `same`: whether it is the receiver's reason. "
            "The datapath's own bad-MAC bucket (outside SPEC 6.1) never fills here: no case sends "
            "more than 8 bad MACs per session. INITs built by a Sender give `eph_secret_hex`. "
            "Generated by tools/vectors_packets.py."
        ),
        "now": NOW,
        "keys": M.keys_json(),
        "kdf": kdf_vectors(),
        "mac": mac_vectors(),
        "encodings": encoding_vectors(),
        "cases": cases,
    }


def render() -> str:
    return vectorlib.render(build())


def _summary(doc: dict[str, Any]) -> str:
    packets = sum(len(c["packets"]) for c in doc["cases"])
    return f"{len(doc['cases'])} cases, {packets} packets"


def main(argv: list[str]) -> int:
    return vectorlib.write_or_check(argv, OUTPUT, render(), __file__, _summary)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
