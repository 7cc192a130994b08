"""Generate vectors/hops.json: test vectors for hop history (SPEC.md section 7).

    python3 tools/vectors_hops.py          # write the file
    python3 tools/vectors_hops.py --check  # exit 1 if the committed file is stale

One session from `holder` to `receiver` through two relays, relay-a (domain
a.net) then relay-b (b.net), step by step:

* `keys`: Ed25519 seeds, public keys, X25519 forms and key ids (SPEC 5.1);
* `hop_keys`: each relay's static-static X25519 secret with the receiver and
  its per-session hop key (SPEC 5.3);
* `statements`: each hop statement's transcript, signed message, signature and
  encoding (SPEC 7.1);
* `init`: the INIT as the sender sends it and after each relay;
* `data`: a DATA packet as sent and after each relay, with each hop record's
  chaining input and tag (SPEC 7.2);
* `relay_cases`: what `hop.Relay.forward` must output, or the reason it refuses;
* `init_cases` / `data_cases`: INIT and DATA datagrams (valid and tampered)
  with the reason a receiver configured by `receiver` must give;
* `path_cases`: path constraints (credential rights and receiver policy) over
  lists of domains, with the reason (SPEC 6.2 step 12).

The derivations are written here from SPEC.md (BLAKE2b with hashlib, X25519
and SipHash with libsodium), independently of `warrant.core.kdf`, `warrant.core.mac` and
`warrant.core.hop`; the generator asserts that `hop.Relay` produces the same bytes.
Senders come from `warrant.core.sender` with a seeded random stream (draw i of n
bytes = SHAKE-256(PREFIX + name + '/' + str(i))[:n]).  Everything is
deterministic (fixed seeds, fixed `now`, deterministic Ed25519), so the output
is reproducible byte for byte.  `tests/test_vectors_hops.py` replays it.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

import nacl.bindings
import nacl.signing

import vectorlib
from vectorlib import b2b, key_id
from warrant.core import credential, keys
from warrant.core.constants import Kind
from warrant.core.errors import WarrantError
from warrant.core.hop import Relay
from warrant.core.receiver import Claim
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender

OUTPUT = vectorlib.ROOT / "vectors" / "hops.json"

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
PREFIX = "warrant/vectors/hops/v1/"
HOP_CONTEXT = b"warrant/v1/hop\x00\x00"
SCOPE = "acme.prod"
PORT = 8443
PATH = ("relay-a", "relay-b")
DOMAINS = {"relay-a": "a.net", "relay-b": "b.net", "relay-c": "c.net", "mallory": "b.net"}
# transit domain -> relays trusted for it; relay-c serves two domains; mallory none
TRUSTED = {"a.net": ["relay-a"], "b.net": ["relay-b"], "c.net": ["relay-c"], "d.net": ["relay-c"]}

KEY_LABELS = (
    "anchor",
    "holder",
    "receiver",
    "other-receiver",
    "relay-a",
    "relay-b",
    "relay-c",
    "mallory",
)


# ---- keys ---------------------------------------------------------------------------------------
M = vectorlib.Material(PREFIX, KEY_LABELS)
K = M.keys
seed, pub, x_public, x_secret, Stream = M.seed, M.pub, M.x_public, M.x_secret, M.stream


# ---- SPEC 5 and 7, independently ----------------------------------------------------------------
def hop_shared(relay: str, receiver: str = "receiver") -> bytes:
    return nacl.bindings.crypto_scalarmult(x_secret(relay), x_public(receiver))


def hop_key(relay: str, sid: bytes, receiver: str = "receiver") -> bytes:
    return b2b(sid, 16, b"warrant1-khop", key=hop_shared(relay, receiver))


def hop_mac(k_hop: bytes, prev: bytes, tag: bytes, index: int) -> bytes:
    return nacl.bindings.crypto_shorthash_siphash24(prev[:8] + tag + bytes([index]), k_hop)


def init_parts(init: bytes) -> tuple[bytes, bytes, int]:
    """(signed region, holder signature, offset of the first hop statement) of an INIT."""
    cred_len, claim_len, payload_len = struct.unpack_from(">HHH", init, 56)
    end = 68 + cred_len + claim_len
    cookie = 16 if init[3] & 1 else 0
    return (
        init[:2] + b"\x00\x00" + init[4:end],
        init[end : end + 64],
        end + 64 + payload_len + cookie,
    )


def transcript(init: bytes) -> bytes:
    region, sig, _ = init_parts(init)
    return b2b(region + sig, 32, b"warrant1-th")


def statement(
    init: bytes, index: int, prev_sig: bytes, relay: str, next_hop: bytes, domain: str
) -> dict[str, bytes]:
    """Relay `relay`'s statement number `index` for this INIT (SPEC 7.1)."""
    d = domain.encode()
    part = pub(relay) + next_hop + bytes([len(d)]) + d
    message = HOP_CONTEXT + transcript(init) + bytes([index]) + prev_sig + part
    sig = K[relay].sign(message).signature
    return {"part": part, "message": message, "signature": sig, "encoded": part + sig}


def split_statements(init: bytes) -> tuple[bytes, list[bytes]]:
    """(INIT up to its statements, the encoded statements)."""
    _, _, off = init_parts(init)
    head, out = init[:off], []
    for _ in range(init[2]):
        dlen = init[off + 36]
        end = off + 37 + dlen + 64
        out.append(init[off:end])
        off = end
    assert off == len(init)
    return head, out


def with_statements(init: bytes, statements: list[bytes]) -> bytes:
    head, _ = split_statements(init)
    return head[:2] + bytes([len(statements)]) + head[3:] + b"".join(statements)


def append_statement(init: bytes, relay: str, next_hop: bytes, domain: str) -> bytes:
    """What an honest relay does: sign, append, increment hop_count."""
    _, sts = split_statements(init)
    prev_sig = sts[-1][-64:] if sts else b""
    st = statement(init, len(sts), prev_sig, relay, next_hop, domain)
    return with_statements(init, [*sts, st["encoded"]])


def records(packet: bytes) -> list[bytes]:
    return [packet[36 + 12 * i : 48 + 12 * i] for i in range(packet[2])]


def with_records(packet: bytes, recs: list[bytes]) -> bytes:
    body = packet[36 + 12 * packet[2] :]
    return packet[:2] + bytes([len(recs)]) + packet[3:36] + b"".join(recs) + body


def append_record(packet: bytes, relay: str, receiver: str = "receiver") -> bytes:
    recs = records(packet)
    prev = recs[-1][4:] if recs else packet[20:28]
    tag = key_id(pub(relay))
    mac = hop_mac(hop_key(relay, packet[4:12], receiver), prev, tag, len(recs))
    return with_records(packet, [*recs, tag + mac])


def flip(packet: bytes, offset: int, mask: int = 1) -> bytes:
    return packet[:offset] + bytes([packet[offset] ^ mask]) + packet[offset + 1 :]


# ---- the session -----------------------------------------------------------------------------------
def make_credential(**narrow: Any) -> bytes:
    grant = Grant(
        operations=("orders.*",),
        destinations=(Destination("orders", PORT, PORT),),
        not_before=NOW - 3600,
        expires=NOW + 86400,
        **narrow,
    )
    return credential.issue(K["anchor"], SCOPE, pub("holder"), grant).encode()


def make_sender(name: str, first_hop: str | None = "relay-a", cred: bytes | None = None) -> Sender:
    return Sender(
        K["holder"],
        cred or make_credential(),
        pub("receiver"),
        Claim("orders.write", "orders", PORT),
        next_hop_public=pub(first_hop) if first_hop else None,
        random=Stream(name),
    )


def sans_io(label: str, next_hop: str) -> Relay:
    return Relay(K[label], DOMAINS[label], pub(next_hop), pub("receiver"))


def honest_path(init: bytes, path: tuple[str, ...] = PATH) -> list[bytes]:
    """The INIT after each relay of `path`, checked against hop.Relay."""
    out, cur = [], init
    for i, relay in enumerate(path):
        nxt = path[i + 1] if i + 1 < len(path) else "receiver"
        expected = append_statement(cur, relay, key_id(pub(nxt)), DOMAINS[relay])
        assert sans_io(relay, nxt).forward(cur) == expected, f"hop.Relay disagrees at {relay}"
        out.append(expected)
        cur = expected
    return out


def data_path(packet: bytes, path: tuple[str, ...] = PATH) -> list[bytes]:
    out, cur = [], packet
    for i, relay in enumerate(path):
        nxt = path[i + 1] if i + 1 < len(path) else "receiver"
        expected = append_record(cur, relay)
        assert sans_io(relay, nxt).forward(cur) == expected, f"hop.Relay disagrees at {relay}"
        out.append(expected)
        cur = expected
    return out


def hx(b: bytes) -> str:
    return b.hex()


# ---- sections ------------------------------------------------------------------------------------------
def keys_section() -> list[dict[str, str]]:
    return [
        {
            "label": label,
            "seed_hex": hx(seed(label)),
            "public_hex": hx(pub(label)),
            "x25519_public_hex": hx(x_public(label)),
            "key_id_hex": hx(key_id(pub(label))),
        }
        for label in KEY_LABELS
    ]


def receiver_section() -> dict[str, Any]:
    return {
        "key": "receiver",
        "started_at": NOW - 60,
        "port": PORT,
        "policy": {
            "anchors": {
                "scopes": {SCOPE: {"anchors": [{"key": keys.encode_public(pub("anchor"))}]}},
                "relays": {
                    d: [keys.encode_public(pub(r)) for r in rs] for d, rs in TRUSTED.items()
                },
            },
            "default": "allow",
        },
    }


def build() -> dict[str, Any]:
    sender = make_sender("session")
    sent = sender.open(b"first payload", NOW)
    sid = sent[4:12]
    inits = honest_path(sent)
    final_init = inits[-1]
    th = transcript(sent)

    # statements, step by step
    st_out, prev_sig = [], b""
    for i, relay in enumerate(PATH):
        nxt = PATH[i + 1] if i + 1 < len(PATH) else "receiver"
        st = statement(sent, i, prev_sig, relay, key_id(pub(nxt)), DOMAINS[relay])
        st_out.append(
            {
                "index": i,
                "relay": relay,
                "domain": DOMAINS[relay],
                "next_hop": nxt,
                "next_hop_hex": hx(key_id(pub(nxt))),
                "th_hex": hx(th),
                "prev_signature_hex": hx(prev_sig),
                "signed_part_hex": hx(st["part"]),
                "message_hex": hx(st["message"]),
                "signature_hex": hx(st["signature"]),
                "encoded_hex": hx(st["encoded"]),
            }
        )
        prev_sig = st["signature"]
    _, final_sts = split_statements(final_init)
    assert [hx(s) for s in final_sts] == [s["encoded_hex"] for s in st_out]

    # DATA, record by record
    data1 = sender.seal(b"second payload")
    data2 = sender.seal(b"third payload")
    datas = data_path(data1)
    rec_out, prev = [], data1[20:28]
    for i, relay in enumerate(PATH):
        tag = key_id(pub(relay))
        k = hop_key(relay, sid)
        mac = hop_mac(k, prev, tag, i)
        rec_out.append(
            {
                "index": i,
                "relay": relay,
                "offset": 36 + 12 * i,
                "prev_hex": hx(prev[:8]),
                "input_hex": hx(prev[:8] + tag + bytes([i])),
                "hop_mac_hex": hx(mac),
                "record_hex": hx(tag + mac),
            }
        )
        prev = mac
    assert records(datas[-1]) == [bytes.fromhex(r["record_hex"]) for r in rec_out]

    # a second session on the same path, for splicing
    other = make_sender("other-session")
    other_init = honest_path(other.open(b"other", NOW))[-1]
    other_data = data_path(other.seal(b"other data"))[-1]
    d2 = data_path(data2)[-1]

    # ---- INIT cases
    sts = final_sts

    def forged(
        index: int, prev: bytes, signer: str, domain: str, next_hop: str = "receiver"
    ) -> bytes:
        return statement(sent, index, prev, signer, key_id(pub(next_hop)), domain)["encoded"]

    def via_mallory() -> bytes:
        # relay-a honestly names mallory as its next hop; mallory is a protocol-abiding relay.
        s = make_sender("via-mallory")
        a = append_statement(s.open(b"m", NOW), "relay-a", key_id(pub("mallory")), "a.net")
        return append_statement(a, "mallory", key_id(pub("receiver")), "b.net")

    def second_domain() -> bytes:
        # relay-c is trusted for c.net and for d.net, and states the second one.
        s = make_sender("second-domain", first_hop="relay-c")
        return append_statement(s.open(b"2", NOW), "relay-c", key_id(pub("receiver")), "d.net")

    def wrong_domain() -> bytes:
        # relay-a signs a statement claiming b.net, a domain it is not trusted for.
        s = make_sender("wrong-domain")
        return append_statement(s.open(b"w", NOW), "relay-a", key_id(pub("receiver")), "b.net")

    def with_credential(name: str, **narrow: Any) -> bytes:
        s = make_sender(name, cred=make_credential(**narrow))
        return honest_path(s.open(b"c", NOW))[-1]

    def three_hops(name: str) -> bytes:
        s = make_sender(name)
        return honest_path(s.open(b"3", NOW), ("relay-a", "relay-b", "relay-c"))[-1]

    _, other_sts = split_statements(other_init)
    init_cases: list[tuple[str, str, bytes, str, dict[str, Any] | None]] = [
        ("valid", "INIT through relay-a then relay-b", final_init, "OK", None),
        ("direct", "INIT sent straight to the receiver, no statements", make_sender("direct", None).open(b"d", NOW), "OK", None),
        ("three-hops", "INIT through relay-a, relay-b, relay-c", three_hops("three"), "OK", None),
        ("removed-last", "relay-b's statement removed: the chain ends at a hop naming relay-b", with_statements(final_init, sts[:1]), "HOP_CHAIN_BROKEN", None),
        ("removed-first", "relay-a's statement removed: relay-b is not the hop the INIT names", with_statements(final_init, sts[1:]), "HOP_CHAIN_BROKEN", None),
        ("all-removed", "every statement removed: the INIT names relay-a, not the receiver", with_statements(final_init, []), "HOP_CHAIN_BROKEN", None),
        ("reordered", "statements swapped", with_statements(final_init, sts[::-1]), "HOP_CHAIN_BROKEN", None),
        ("duplicated", "relay-b's statement twice", with_statements(final_init, [*sts, sts[-1]]), "HOP_CHAIN_BROKEN", None),
        ("inserted-untrusted", "mallory appends her own correctly signed statement", with_statements(final_init, [*sts, forged(2, sts[-1][-64:], "mallory", "b.net")]), "HOP_CHAIN_BROKEN", None),
        ("replaced-untrusted", "mallory replaces relay-b's statement with hers (index 1, chained)", with_statements(final_init, [sts[0], forged(1, sts[0][-64:], "mallory", "b.net")]), "HOP_CHAIN_BROKEN", None),
        ("inserted-trusted", "relay-c's valid-looking statement inserted between relay-a and relay-b", with_statements(final_init, [sts[0], forged(1, sts[0][-64:], "relay-c", "c.net", "relay-b"), sts[1]]), "HOP_CHAIN_BROKEN", None),
        ("spliced", "relay-b's statement taken from another session on the same path", with_statements(final_init, [sts[0], other_sts[1]]), "HOP_CHAIN_BROKEN", None),
        ("signature-flipped", "a bit of relay-b's signature flipped", flip(final_init, len(final_init) - 1), "HOP_CHAIN_BROKEN", None),
        ("domain-altered", "relay-a's domain rewritten a.net -> b.net after signing", with_statements(final_init, [sts[0][:37] + b"b" + sts[0][38:], sts[1]]), "HOP_CHAIN_BROKEN", None),
        ("next-hop-altered", "relay-b's next hop rewritten after signing", with_statements(final_init, [sts[0], flip(sts[1], 33)]), "HOP_CHAIN_BROKEN", None),
        ("untrusted-relay", "relay-a names mallory, who appends a valid statement claiming b.net", via_mallory(), "UNTRUSTED_RELAY", None),
        ("wrong-domain", "relay-a claims b.net, a domain it is not trusted for", wrong_domain(), "UNTRUSTED_RELAY", None),
        ("second-domain", "relay-c, trusted for c.net and d.net, states d.net", second_domain(), "OK", None),
        ("hop-count-low", "hop_count 1 with two statements: trailing bytes", final_init[:2] + b"\x01" + final_init[3:], "MALFORMED", None),
        ("hop-count-high", "hop_count 3 with two statements", final_init[:2] + b"\x03" + final_init[3:], "TRUNCATED", None),
        ("domain-not-ascii", "relay-a's domain byte 0xff", with_statements(final_init, [sts[0][:37] + b"\xff" + sts[0][38:], sts[1]]), "MALFORMED", None),
        ("credential-max-hops", "the credential allows one hop; two were crossed", with_credential("max-hops", max_hops=1), "TOO_MANY_HOPS", None),
        ("credential-forbidden", "the credential forbids b.net", with_credential("forbidden", forbidden_domains=("b.net",)), "FORBIDDEN_DOMAIN", None),
        ("credential-required", "the credential requires c.net", with_credential("required", required_domains=("c.net",)), "REQUIRED_DOMAIN_MISSING", None),
        ("credential-allowed", "the credential allows only a.net", with_credential("allowed", allowed_domains=("a.net",)), "DOMAIN_NOT_ALLOWED", None),
        ("policy-max-hops", "the receiver's rule allows one hop", final_init, "TOO_MANY_HOPS", {"max_hops": 1}),
        ("policy-via", "the receiver's rule requires via c.net", final_init, "REQUIRED_DOMAIN_MISSING", {"via": ["c.net"]}),
        ("policy-via-ok", "the receiver's rule requires via b.net", final_init, "OK", {"via": ["b.net"]}),
        ("policy-not-via", "the receiver's rule forbids a.net", final_init, "FORBIDDEN_DOMAIN", {"not_via": ["a.net"]}),
    ]  # fmt: skip

    # ---- DATA cases (on the valid session: the receiver first admits `init.after[-1]`)
    r0, r1 = records(datas[-1])
    final = datas[-1]
    mallory_rec = append_record(final, "mallory")
    data_cases: list[tuple[str, str, bytes, str]] = [
        ("valid", "DATA seq 1 through relay-a then relay-b", final, "OK"),
        ("no-records", "both records removed", with_records(final, []), "HOP_CHAIN_BROKEN"),
        ("removed-last", "relay-b's record removed", with_records(final, [r0]), "HOP_CHAIN_BROKEN"),
        ("removed-first", "relay-a's record removed", with_records(final, [r1]), "HOP_CHAIN_BROKEN"),
        ("reordered", "records swapped", with_records(final, [r1, r0]), "HOP_CHAIN_BROKEN"),
        ("duplicated", "relay-b's record twice", with_records(final, [r0, r1, r1]), "HOP_CHAIN_BROKEN"),
        ("duplicated-in-place", "relay-a's record in both places", with_records(final, [r0, r0]), "HOP_CHAIN_BROKEN"),
        ("inserted-untrusted", "mallory appends a record with her own, correct, hop key", mallory_rec, "HOP_CHAIN_BROKEN"),
        ("spliced-packet", "records of seq 2 on the packet of seq 1", with_records(final, records(d2)), "HOP_CHAIN_BROKEN"),
        ("spliced-session", "records of another session on the same path", with_records(final, records(other_data)), "HOP_CHAIN_BROKEN"),
        ("tag-altered", "relay-b's key id altered", flip(final, 48), "HOP_CHAIN_BROKEN"),
        ("mac-flipped", "a bit of relay-a's hop MAC flipped", flip(final, 40), "HOP_CHAIN_BROKEN"),
        ("wrong-index", "relay-b's tag computed with index 0", with_records(final, [r0, r1[:4] + hop_mac(hop_key("relay-b", sid), r0[4:], r1[:4], 0)]), "HOP_CHAIN_BROKEN"),
        ("hop-count-high", "hop_count 3: the ciphertext's first 12 bytes read as a record", final[:2] + b"\x03" + final[3:], "HOP_CHAIN_BROKEN"),
        ("hop-count-9", "hop_count above the wire maximum", final[:2] + b"\x09" + final[3:], "MALFORMED"),
    ]  # fmt: skip

    # ---- relay cases
    eight = (
        bytes([1, Kind.DATA, 8, 0])
        + sid
        + struct.pack(">Q", 5)
        + bytes(16)
        + bytes(8 * 12)
        + bytes(16)
    )
    relay_cases: list[tuple[str, str, str, str, bytes, bytes | str]] = [
        ("init-relay-a", "relay-a", "relay-b", "the sender's INIT, addressed to relay-a", sent, inits[0]),
        ("init-relay-b", "relay-b", "receiver", "the INIT after relay-a", inits[0], inits[1]),
        ("data-relay-a", "relay-a", "relay-b", "DATA seq 1 as sent", data1, datas[0]),
        ("data-relay-b", "relay-b", "receiver", "DATA seq 1 after relay-a", datas[0], datas[1]),
        ("init-not-addressed", "relay-b", "receiver", "the sender's INIT names relay-a, not relay-b", sent, "HOP_CHAIN_BROKEN"),
        ("init-other-receiver", "relay-a", "relay-b", "an INIT for another receiver", Sender(K["holder"], make_credential(), pub("other-receiver"), Claim("orders.write", "orders", PORT), next_hop_public=pub("relay-a"), random=Stream("other-receiver")).open(None, NOW), "WRONG_RECEIVER"),
        ("data-eight-hops", "relay-a", "relay-b", "DATA that already carries 8 records", eight, "TOO_MANY_HOPS"),
        ("data-truncated", "relay-a", "relay-b", "DATA shorter than its header", data1[:30], "TRUNCATED"),
        ("reject-unchanged", "relay-a", "relay-b", "REJECT travels back unchanged", bytes([1, 3, 15, 0]) + sid + bytes(4), bytes([1, 3, 15, 0]) + sid + bytes(4)),
    ]  # fmt: skip
    # the relay-level refusals, checked against hop.Relay
    for _, relay, nxt, _, inp, exp in relay_cases:
        r = Relay(K[relay], DOMAINS[relay], pub(nxt), pub("receiver"))
        try:
            got: bytes | str = r.forward(inp)
        except WarrantError as exc:
            got = exc.reason.name
        assert got == exp, (relay, got, exp)

    # ---- path cases (check_path): credential rights and the receiver's rule
    path_cases: list[tuple[list[str], dict[str, Any], dict[str, Any], str]] = [
        ([], {}, {}, "OK"),
        (["a.net", "b.net"], {}, {}, "OK"),
        (["a.net", "b.net"], {"max_hops": 1}, {}, "TOO_MANY_HOPS"),
        (["a.net", "b.net"], {"max_hops": 2}, {"max_hops": 1}, "TOO_MANY_HOPS"),
        (["a.net"], {"max_hops": 0}, {}, "TOO_MANY_HOPS"),
        (["a.net", "b.net"], {"forbidden_domains": ["b.net"]}, {}, "FORBIDDEN_DOMAIN"),
        (["a.net", "b.net"], {}, {"not_via": ["a.net"]}, "FORBIDDEN_DOMAIN"),
        (["a.net", "b.net"], {"allowed_domains": ["a.net"]}, {}, "DOMAIN_NOT_ALLOWED"),
        (["a.net", "b.net"], {"allowed_domains": ["a.net", "b.net"]}, {}, "OK"),
        (["a.net"], {"required_domains": ["b.net"]}, {}, "REQUIRED_DOMAIN_MISSING"),
        (["a.net"], {}, {"via": ["b.net"]}, "REQUIRED_DOMAIN_MISSING"),
        (["b.net", "a.net"], {"required_domains": ["b.net"]}, {"via": ["a.net"]}, "OK"),
        (["a.net", "b.net", "c.net"], {"max_hops": 2, "forbidden_domains": ["c.net"]}, {}, "TOO_MANY_HOPS"),
        (["a.net", "c.net"], {"forbidden_domains": ["c.net"], "allowed_domains": ["a.net"]}, {}, "FORBIDDEN_DOMAIN"),
        (["a.net", "c.net"], {"forbidden_domains": ["c.net"], "allowed_domains": ["b.net"]}, {}, "DOMAIN_NOT_ALLOWED"),
        (["a.net", "c.net"], {"allowed_domains": ["a.net", "c.net"]}, {"not_via": ["c.net"], "max_hops": 2}, "FORBIDDEN_DOMAIN"),
    ]  # fmt: skip

    return {
        "version": 1,
        "description": (
            "Warrant hop-history test vectors (SPEC.md section 7). Keys: Ed25519 from the 32-byte "
            f"seeds SHA-256('{PREFIX}' + label). One session from holder to receiver through "
            "relay-a (a.net) then relay-b (b.net): hop keys (5.3), hop statements (7.1), the INIT "
            "and a DATA packet after each relay with each hop record's input and tag (7.2). "
            "Senders draw randomness from the stream named in `random`: draw i of n bytes = "
            f"SHAKE-256('{PREFIX}' + name + '/' + str(i))[:n]. `relay_cases`: hop.Relay(key, "
            "domain, next hop, receiver).forward(input) must give `output_hex` or refuse with "
            "`reason`. `init_cases`: a fresh receiver built from `receiver` (its policy "
            "mapping, plus the case's `rule` as the only rule with default deny when given) "
            "handles `packet_hex` from `source` at `now` on `receiver.port`; `expect` is the "
            "reason. `data_cases`: a fresh receiver first admits `init.after_hex[-1]`, then "
            "handles `packet_hex`. `path_cases`: check_path(domains, rights with the "
            "credential's constraints, policy max_hops, via, not_via). Generated by "
            "tools/vectors_hops.py."
        ),
        "now": NOW,
        "source": ["10.0.2.1", 40000],
        "keys": keys_section(),
        "receiver": receiver_section(),
        "session": {
            "random": "session",
            "credential_hex": hx(make_credential()),
            "claim": ["orders.write", "orders", PORT],
            "session_id_hex": hx(sid),
            "transcript_hex": hx(th),
            "path": list(PATH),
        },
        "hop_keys": [
            {
                "relay": relay,
                "receiver": "receiver",
                "session_id_hex": hx(sid),
                "shared_hex": hx(hop_shared(relay)),
                "hop_key_hex": hx(hop_key(relay, sid)),
            }
            for relay in PATH
        ],
        "statements": st_out,
        "init": {
            "sent_hex": hx(sent),
            "statements_offset": init_parts(sent)[2],
            "after_hex": [hx(p) for p in inits],
        },
        "data": {
            "seq": 1,
            "payload_hex": hx(b"second payload"),
            "sent_hex": hx(data1),
            "origin_mac_hex": hx(data1[20:36]),
            "records": rec_out,
            "after_hex": [hx(p) for p in datas],
        },
        "relay_cases": [
            {
                "name": name,
                "relay": relay,
                "domain": DOMAINS[relay],
                "next_hop": nxt,
                "description": desc,
                "input_hex": hx(inp),
                **({"output_hex": hx(exp)} if isinstance(exp, bytes) else {"reason": exp}),
            }
            for name, relay, nxt, desc, inp, exp in relay_cases
        ],
        "init_cases": [
            {
                "name": name,
                "description": desc,
                "packet_hex": hx(packet),
                **({"rule": rule} if rule is not None else {}),
                "expect": reason,
            }
            for name, desc, packet, reason, rule in init_cases
        ],
        "data_cases": [
            {"name": name, "description": desc, "packet_hex": hx(packet), "expect": reason}
            for name, desc, packet, reason in data_cases
        ],
        "path_cases": [
            {"domains": domains, "credential": cred, "policy": pol, "expect": reason}
            for domains, cred, pol, reason in path_cases
        ],
    }


def render() -> str:
    return vectorlib.render(build())


def main(argv: list[str]) -> int:
    return vectorlib.write_or_check(argv, OUTPUT, render(), __file__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
