"""Generate vectors/credentials.json: test vectors for credentials (SPEC.md section 4).

    python3 tools/vectors_credentials.py          # write the file
    python3 tools/vectors_credentials.py --check  # exit 1 if the committed file is stale

Links, chains and revocation lists are encoded here directly from SPEC.md
(deterministic CBOR, BLAKE2b chaining, Ed25519), not through
`warrant.core.credential`, so the file is an independent statement of the format.
Only key derivation comes from `warrant.core.keys`.  Everything is deterministic
(fixed seeds, fixed `now`, Ed25519 signatures are deterministic), so the output
is reproducible byte for byte.  `tests/test_vectors_credentials.py` runs every
case through `warrant.core.credential.Verifier` and checks that this script
reproduces the committed file.
"""

from __future__ import annotations

import base64
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2
import nacl.hashlib
import nacl.signing

import vectorlib

OUTPUT = vectorlib.ROOT / "vectors" / "credentials.json"

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
SKEW = 30  # CLOCK_SKEW, SPEC.md 4.4
PREFIX = "warrant/vectors/credentials/v1/"
LINK_CONTEXT = b"warrant/v1/link\x00"
REVOKE_CONTEXT = b"warrant/v1/revoke"
MAX_HOPS = 8

SCOPE_A = "acme.prod"
SCOPE_B = "partner.prod"

Grant = dict[str, Any]  # field name -> value, JSON-shaped; absent = inherited


# ---- keys ------------------------------------------------------------------------------------
KEY_LABELS = ("anchor-a", "anchor-a2", "anchor-b", "alice", "bob", "carol", "dave", "mallory")
M = vectorlib.Material(PREFIX, KEY_LABELS)
K = M.keys
seed, pub = M.seed, M.pub


def anchor_id(public: bytes) -> bytes:
    return nacl.hashlib.blake2b(public, digest_size=8, person=b"warrant1-kid").digest()


# ---- encoding (SPEC.md 4.1, 4.2, 4.5) -------------------------------------------------------
FIELD_KEYS = {
    "operations": 3,
    "destinations": 4,
    "not_before": 5,
    "expires": 6,
    "max_hops": 7,
    "allowed_domains": 8,
    "required_domains": 9,
    "forbidden_domains": 10,
    "rate": 11,
}
LIST_FIELDS = ("operations", "allowed_domains", "required_domains", "forbidden_domains")


def canonical_destinations(dsts: list[list[Any]]) -> list[list[Any]]:
    """[service, lo, hi] triples, sorted and deduplicated."""
    triples = sorted({(d[0], d[1], d[-1]) for d in dsts})
    return [list(t) for t in triples]


def link_body(
    holder: bytes, grant: Grant, scope: str | None = None, anchor: bytes | None = None
) -> bytes:
    m: dict[int, Any] = {2: holder}
    if scope is not None:
        m[0] = scope
    if anchor is not None:
        m[1] = anchor
    for name, value in grant.items():
        if name == "destinations":
            value = [
                [s, lo] if lo == hi else [s, lo, hi] for s, lo, hi in canonical_destinations(value)
            ]
        elif name in LIST_FIELDS:
            value = sorted(set(value))
        m[FIELD_KEYS[name]] = value
    return cbor2.dumps(m, canonical=True)


def next_digest(prev: bytes, body: bytes, sig: bytes) -> bytes:
    h = nacl.hashlib.blake2b(digest_size=32, person=b"warrant1-chain")
    h.update(prev + struct.pack(">H", len(body)) + body + sig)
    return h.digest()


@dataclass(frozen=True)
class Chain:
    links: tuple[tuple[bytes, bytes], ...]  # (body, signature)
    grants: tuple[Grant, ...]

    @property
    def digests(self) -> list[bytes]:
        out, d = [], bytes(32)
        for body, sig in self.links:
            d = next_digest(d, body, sig)
            out.append(d)
        return out

    @property
    def link_ids(self) -> list[bytes]:
        return [d[:16] for d in self.digests]

    def encode(self, version: int = 1) -> bytes:
        items: list[Any] = [version]
        for body, sig in self.links:
            items += [body, sig]
        return cbor2.dumps(items, canonical=True)

    def extend(self, signer: str, holder: str, grant: Grant) -> Chain:
        """Append a link signed by `signer` (no narrowing check: vectors need bad links)."""
        body = link_body(pub(holder), grant)
        prev = self.digests[-1]
        sig = K[signer].sign(LINK_CONTEXT + prev + body).signature
        return Chain((*self.links, (body, sig)), (*self.grants, grant))


def root_link(
    signer: str, holder: str, grant: Grant, scope: str = SCOPE_A, anchor: str | None = None
) -> Chain:
    """Root link naming `anchor`'s id (default: the signer's) in `scope`."""
    aid = anchor_id(pub(anchor or signer))
    body = link_body(pub(holder), grant, scope, aid)
    sig = K[signer].sign(LINK_CONTEXT + bytes(32) + body).signature
    return Chain(((body, sig),), (grant,))


def signed_root(body: bytes, signer: str = "anchor-a") -> bytes:
    """A one-link credential around an arbitrary root body, validly signed."""
    sig = K[signer].sign(LINK_CONTEXT + bytes(32) + body).signature
    return b"\x83\x01" + cbor2.dumps(body) + cbor2.dumps(sig)


def revocation_list(
    signer: str,
    scope: str,
    serial: int,
    link_ids: Sequence[bytes] = (),
    revoked: Sequence[bytes] = (),
) -> bytes:
    body = cbor2.dumps(
        [1, scope, anchor_id(pub(signer)), serial, sorted(set(link_ids)), sorted(set(revoked))],
        canonical=True,
    )
    sig = K[signer].sign(REVOKE_CONTEXT + body).signature
    return cbor2.dumps([body, sig], canonical=True)


def effective_rights(grants: tuple[Grant, ...]) -> dict[str, Any]:
    """Rights of a *valid* chain: each link's stated fields override, the rest inherit."""
    rights: dict[str, Any] = {
        "operations": None,
        "destinations": None,
        "not_before": 0,
        "expires": None,
        "max_hops": MAX_HOPS,
        "allowed_domains": None,
        "required_domains": [],
        "forbidden_domains": [],
        "rate": None,
    }
    for grant in grants:
        for name, value in grant.items():
            if name == "destinations":
                value = canonical_destinations(value)
            elif name in LIST_FIELDS:
                value = sorted(set(value))
            rights[name] = value
    return rights


# ---- trust stores ---------------------------------------------------------------------------
def anchors(*entries: tuple[str, str] | tuple[str, str, dict[str, int]]) -> dict[str, Any]:
    """The anchor file (YAML or JSON) as a mapping: (scope, key label[, window])."""
    scopes: dict[str, Any] = {}
    for entry in entries:
        scope, label = entry[0], entry[1]
        item: dict[str, Any] = {"key": "warrant-pub:" + base64.b64encode(pub(label)).decode()}
        if len(entry) == 3:
            item.update(entry[2])
        scopes.setdefault(scope, {"anchors": []})["anchors"].append(item)
    return {"scopes": scopes}


TRUST_A = anchors((SCOPE_A, "anchor-a"))
TRUST_AB = anchors((SCOPE_A, "anchor-a"), (SCOPE_B, "anchor-b"))

# ---- the chains the cases start from -----------------------------------------------------------
ROOT_GRANT: Grant = {
    "operations": ["orders.*", "billing.read"],
    "destinations": [["orders", 8000, 8099], ["billing", 443, 443]],
    "not_before": NOW - 3600,
    "expires": NOW + 86400,
    "max_hops": 4,
    "allowed_domains": ["a.net", "b.net", "c.net"],
    "required_domains": ["a.net"],
    "forbidden_domains": ["evil.net"],
    "rate": 100,
}
LINK2_GRANT: Grant = {"operations": ["orders.read", "orders.list.*"], "rate": 50}
LINK3_GRANT: Grant = {
    "destinations": [["orders", 8080, 8080]],
    "expires": NOW + 3600,
    "max_hops": 2,
    "allowed_domains": ["a.net", "b.net"],
    "required_domains": ["a.net", "b.net"],
    "forbidden_domains": ["evil.net", "worse.net"],
}
MINIMAL_ROOT: Grant = {
    "operations": ["*"],
    "destinations": [["*", 0, 65535]],
    "expires": NOW + 600,
}

C1 = root_link("anchor-a", "alice", ROOT_GRANT)
C2 = C1.extend("alice", "bob", LINK2_GRANT)
C3 = C2.extend("bob", "carol", LINK3_GRANT)


# ---- cases -------------------------------------------------------------------------------------
def case(
    name: str,
    description: str,
    data: bytes,
    *,
    reason: str,
    trust: dict[str, Any] = TRUST_A,
    revocations: tuple[bytes, ...] = (),
    now: int = NOW,
    chain: Chain | None = None,
    scope: str = SCOPE_A,
    holder: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    expect: dict[str, Any] = {"valid": reason == "OK", "reason": reason, **extra}
    if reason == "OK":
        assert chain is not None and holder is not None
        expect.update(
            scope=scope,
            depth=len(chain.links),
            holder=pub(holder).hex(),
            chain_digest=chain.digests[-1].hex(),
            link_ids=[i.hex() for i in chain.link_ids],
            rights=effective_rights(chain.grants),
        )
    return {
        "name": name,
        "kind": "credential",
        "description": description,
        "input_hex": data.hex(),
        "anchors": trust,
        "revocations_hex": [r.hex() for r in revocations],
        "now": now,
        "expect": expect,
    }


def valid_cases() -> list[dict[str, Any]]:
    minimal = root_link("anchor-a", "alice", MINIMAL_ROOT)
    by_a2 = root_link("anchor-a2", "bob", MINIMAL_ROOT)
    in_b = root_link("anchor-b", "dave", MINIMAL_ROOT, scope=SCOPE_B)
    deep = C1
    for i in range(7):
        holders = ["alice", "bob", "carol", "dave"]
        deep = deep.extend(holders[i % 4], holders[(i + 1) % 4], {})
    return [
        case("valid-depth-1", "root link only: anchor-a grants alice every field", C1.encode(),
             reason="OK", chain=C1, holder="alice"),
        case("valid-depth-2", "alice narrows operations and rate for bob", C2.encode(),
             reason="OK", chain=C2, holder="bob"),
        case("valid-depth-3", "bob narrows destination, expiry, hops and domains for carol",
             C3.encode(), reason="OK", chain=C3, holder="carol"),
        case("valid-minimal-root", "root with only the required fields; the rest defaults",
             minimal.encode(), reason="OK", chain=minimal, holder="alice"),
        case("valid-depth-8", "the deepest chain allowed (MAX_CHAIN_LINKS), empty grants",
             deep.encode(), reason="OK", chain=deep, holder="dave"),
        case("valid-at-expiry-plus-skew", "now = expiry + CLOCK_SKEW is still accepted",
             C3.encode(), now=NOW + 3600 + SKEW, reason="OK", chain=C3, holder="carol"),
        case("valid-at-not-before-minus-skew", "now = not-before - CLOCK_SKEW is accepted",
             C2.encode(), now=NOW - 3600 - SKEW, reason="OK", chain=C2, holder="bob"),
        case("valid-anchor-window", "the anchor's validity window contains now", C2.encode(),
             trust=anchors((SCOPE_A, "anchor-a", {"not_before": NOW - 10, "not_after": NOW + 10})),
             reason="OK", chain=C2, holder="bob"),
        case("valid-second-anchor", "scope with two anchors; signed by the second", by_a2.encode(),
             trust=anchors((SCOPE_A, "anchor-a"), (SCOPE_A, "anchor-a2")), reason="OK",
             chain=by_a2, holder="bob"),
        case("valid-federated-scope", "a partner scope admitted by configuration", in_b.encode(),
             trust=TRUST_AB, reason="OK", chain=in_b, scope=SCOPE_B, holder="dave"),
        case("valid-unrelated-revocation", "a loaded list revokes other links and keys only",
             C3.encode(), revocations=(revocation_list(
                 "anchor-a", SCOPE_A, 1, [bytes(16)], [pub("mallory")]),),
             reason="OK", chain=C3, holder="carol"),
    ]  # fmt: skip


def forgery_cases() -> list[dict[str, Any]]:
    self_signed = root_link("mallory", "mallory", ROOT_GRANT)
    wrong_key = root_link("mallory", "mallory", ROOT_GRANT, anchor="anchor-a")
    x2 = C1.extend("alice", "bob", {"operations": ["orders.read"]})
    y1 = root_link("anchor-a", "alice", {**ROOT_GRANT, "rate": 10})
    y2 = y1.extend("alice", "bob", {})
    spliced = Chain((x2.links[0], y2.links[1]), (x2.grants[0], y2.grants[1]))
    tampered_body = link_body(pub("bob"), {"operations": ["orders.*"], "rate": 50})
    tampered = Chain((C2.links[0], (tampered_body, C2.links[1][1])), C2.grants)
    return [
        case("forged-self-signed-root", "mallory acts as her own anchor for the scope",
             self_signed.encode(), reason="UNKNOWN_ANCHOR"),
        case("forged-root-signature", "root names anchor-a's id but mallory signed it",
             wrong_key.encode(), reason="BAD_SIGNATURE"),
        case("forged-link-signature", "link 2 signed by mallory instead of holder alice",
             C1.extend("mallory", "mallory", {}).encode(), reason="BAD_SIGNATURE"),
        case("forged-link-by-grandchild", "link 3 signed by alice, who does not hold link 2",
             C2.extend("alice", "mallory", {}).encode(), reason="BAD_SIGNATURE"),
        case("forged-spliced-link", "link 2 of another chain with the same holders spliced in",
             spliced.encode(), reason="BAD_SIGNATURE"),
        case("forged-tampered-body", "link 2 rewritten wider (canonically) without re-signing",
             tampered.encode(), reason="BAD_SIGNATURE"),
        case("forged-other-scope-anchor", "anchor-b (trusted for scope B) issues for scope A",
             root_link("anchor-b", "mallory", ROOT_GRANT).encode(), trust=TRUST_AB,
             reason="UNKNOWN_ANCHOR"),
    ]  # fmt: skip


ESCALATIONS: list[tuple[str, str, Grant]] = [
    ("operations", "a new operation outside the parent's patterns", {"operations": ["admin.*"]}),
    ("operations", "`orders` is not under `orders.*`", {"operations": ["orders"]}),
    ("destinations", "another service", {"destinations": [["admin", 443, 443]]}),
    ("destinations", "any service (`*`) under a named one", {"destinations": [["*", 443, 443]]}),
    ("destinations", "port range one past the parent's", {"destinations": [["orders", 8000, 8100]]}),
    ("not_before", "not-before one second earlier", {"not_before": NOW - 3601}),
    ("expires", "expiry one second later", {"expires": NOW + 86401}),
    ("max_hops", "one more hop", {"max_hops": 5}),
    ("allowed_domains", "adds an allowed domain", {"allowed_domains": ["a.net", "d.net"]}),
    ("required_domains", "drops the required domain", {"required_domains": []}),
    ("forbidden_domains", "drops the forbidden domain", {"forbidden_domains": []}),
    ("rate", "rate one higher", {"rate": 101}),
]  # fmt: skip


def escalation_cases() -> list[dict[str, Any]]:
    out = []
    for i, (field, what, grant) in enumerate(ESCALATIONS):
        name = f"escalated-{field.replace('_', '-')}-{i}"
        out.append(case(name, f"link 2 (signed by the holder) widens {field}: {what}",
                        C1.extend("alice", "bob", grant).encode(), reason="ESCALATION",
                        widens=field))  # fmt: skip
    out += [
        case("escalated-deep-operations", "link 3 regains an operation link 2 removed",
             C2.extend("bob", "carol", {"operations": ["orders.write"]}).encode(),
             reason="ESCALATION", widens="operations"),
        case("escalated-deep-rate", "link 3 raises the rate link 2 lowered",
             C2.extend("bob", "carol", {"rate": 51}).encode(), reason="ESCALATION",
             widens="rate"),
    ]  # fmt: skip
    return out


def time_cases() -> list[dict[str, Any]]:
    early = C1.extend("alice", "bob", {"expires": NOW - 600})
    return [
        case("expired", "long past the expiry", C3.encode(), now=NOW + 86400, reason="EXPIRED"),
        case("expired-beyond-skew", "one second past expiry + CLOCK_SKEW", C3.encode(),
             now=NOW + 3600 + SKEW + 1, reason="EXPIRED"),
        case("expired-intermediate-link", "link 2 expired; link 3 inherits its expiry",
             early.extend("bob", "carol", {}).encode(), reason="EXPIRED"),
        case("not-yet-valid", "one second before not-before - CLOCK_SKEW", C2.encode(),
             now=NOW - 3600 - SKEW - 1, reason="NOT_YET_VALID"),
        case("anchor-expired", "the anchor's not_after (plus skew) has passed", C2.encode(),
             trust=anchors((SCOPE_A, "anchor-a", {"not_after": NOW - SKEW - 1})),
             reason="EXPIRED"),
        case("anchor-not-yet-valid", "the anchor's not_before (minus skew) is ahead", C2.encode(),
             trust=anchors((SCOPE_A, "anchor-a", {"not_before": NOW + SKEW + 1})),
             reason="NOT_YET_VALID"),
    ]  # fmt: skip


def scope_cases() -> list[dict[str, Any]]:
    return [
        case("wrong-scope", "scope A credential where only scope B is trusted", C2.encode(),
             trust=anchors((SCOPE_B, "anchor-b")), reason="WRONG_SCOPE"),
        case("wrong-scope-same-key", "anchor-a's key is trusted, but for scope B only",
             C2.encode(), trust=anchors((SCOPE_B, "anchor-a")), reason="WRONG_SCOPE"),
        case("unknown-anchor", "scope A is trusted through another anchor only", C2.encode(),
             trust=anchors((SCOPE_A, "anchor-a2"), (SCOPE_B, "anchor-a")),
             reason="UNKNOWN_ANCHOR"),
    ]  # fmt: skip


def revocation_cases() -> list[dict[str, Any]]:
    ids = C3.link_ids
    sibling = C2.extend("bob", "dave", {"rate": 1})
    return [
        case("revoked-root-link", "the root link's id is revoked", C3.encode(),
             revocations=(revocation_list("anchor-a", SCOPE_A, 1, [ids[0]]),), reason="REVOKED"),
        case("revoked-middle-link", "link 2 revoked: every delegation made from it falls",
             sibling.encode(), revocations=(revocation_list("anchor-a", SCOPE_A, 1, [ids[1]]),),
             reason="REVOKED"),
        case("revoked-holder-key", "bob's key is revoked (he signs link 3)", C3.encode(),
             revocations=(revocation_list("anchor-a", SCOPE_A, 1, revoked=[pub("bob")]),),
             reason="REVOKED"),
        case("revoked-anchor-key", "the anchor revokes its own key", C1.encode(),
             revocations=(revocation_list("anchor-a", SCOPE_A, 1, revoked=[pub("anchor-a")]),),
             reason="REVOKED"),
        case("revoked-replay-older-list", "serial 2 revokes link 2; replaying serial 1 after it "
             "does not un-revoke", C2.encode(),
             revocations=(revocation_list("anchor-a", SCOPE_A, 2, [ids[1]]),
                          revocation_list("anchor-a", SCOPE_A, 1)), reason="REVOKED"),
    ]  # fmt: skip


def flip(data: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(data)
    out[byte] ^= 1 << bit
    return bytes(out)


def malformed_cases() -> list[dict[str, Any]]:
    data = C3.encode()
    body = C1.links[0][0]
    canon = C1.encode()
    m = cbor2.loads(body)
    unsorted = bytes([0xA0 + len(m)]) + b"".join(
        cbor2.dumps(k) + cbor2.dumps(m[k], canonical=True) for k in sorted(m, reverse=True)
    )
    exp = cbor2.dumps(ROOT_GRANT["expires"])
    sig_at = len(data) - 64  # the last signature's bytes
    holder_at = data.index(pub("alice"))
    scope_at = data.index(SCOPE_A.encode())
    too_deep = C3
    for i in range(6):
        holders = ["carol", "dave"]
        too_deep = too_deep.extend(holders[i % 2], holders[(i + 1) % 2], {})
    no_expiry = {k: v for k, v in ROOT_GRANT.items() if k != "expires"}
    c = case
    return [
        *[c(f"truncated-{n}", f"depth-3 credential cut to {n} of {len(data)} bytes", data[:n],
            reason="MALFORMED") for n in (0, 1, 2, len(data) // 2, len(data) - 1)],
        c("bit-flipped-version", "version 1 flipped to 3", flip(data, 1, 1),
          reason="UNKNOWN_VERSION"),
        c("bit-flipped-array-header", "outer array length 7 flipped to 5", flip(data, 0, 1),
          reason="MALFORMED"),
        c("bit-flipped-last-signature", "one bit of link 3's signature", flip(data, sig_at + 5, 0),
          reason="BAD_SIGNATURE"),
        c("bit-flipped-root-holder", "one bit of the root link's holder key",
          flip(data, holder_at + 3, 4), reason="BAD_SIGNATURE"),
        c("bit-flipped-scope", "one bit of the scope name: acme -> ccme", flip(data, scope_at, 1),
          reason="WRONG_SCOPE"),
        c("unknown-version", "version 2", C1.encode(version=2), reason="UNKNOWN_VERSION"),
        c("non-canonical-version-int", "version as a 2-byte integer",
          b"\x83\x18\x01" + canon[2:], reason="MALFORMED"),
        c("non-canonical-indefinite-array", "outer array of indefinite length",
          b"\x9f" + canon[1:] + b"\xff", reason="MALFORMED"),
        c("non-canonical-trailing-byte", "a zero byte after the credential", canon + b"\x00",
          reason="MALFORMED"),
        c("non-canonical-unsorted-map", "root body keys in descending order (signed)",
          signed_root(unsorted), reason="MALFORMED"),
        c("non-canonical-integer", "expiry as an 8-byte integer in the root body (signed)",
          signed_root(body.replace(exp, b"\x1b" + ROOT_GRANT["expires"].to_bytes(8, "big"))),
          reason="MALFORMED"),
        c("non-canonical-indefinite-map", "root body map of indefinite length (signed)",
          signed_root(b"\xbf" + body[1:] + b"\xff"), reason="MALFORMED"),
        c("non-canonical-unknown-key", "root body with an unknown key 12 (signed)",
          signed_root(cbor2.dumps({**m, 12: 0}, canonical=True)), reason="MALFORMED"),
        c("non-canonical-duplicate-key", "root body with the holder key twice (signed)",
          signed_root(bytes([body[0] + 1]) + body[1:] + cbor2.dumps(2) + cbor2.dumps(pub("mallory"))),
          reason="MALFORMED"),
        c("non-canonical-single-port-range", "destination [s, p, p] instead of [s, p] (signed)",
          signed_root(cbor2.dumps({**m, 4: [["billing", 443, 443], ["orders", 8000, 8099]]},
                                  canonical=True)), reason="MALFORMED"),
        c("malformed-root-missing-expiry", "a root link must state an expiry (signed)",
          root_link("anchor-a", "alice", no_expiry).encode(), reason="MALFORMED"),
        c("malformed-time-window-inverted", "root not-before after its expiry (signed)",
          root_link("anchor-a", "alice", {**ROOT_GRANT, "not_before": NOW + 86401}).encode(),
          reason="MALFORMED"),
        c("malformed-too-deep", "nine links, one more than MAX_CHAIN_LINKS", too_deep.encode(),
          reason="MALFORMED"),
        c("malformed-scope-in-link-2", "a non-root link naming scope and anchor",
          Chain((*C1.links, _scoped_link2()), ()).encode(), reason="MALFORMED"),
    ]  # fmt: skip


def _scoped_link2() -> tuple[bytes, bytes]:
    body = link_body(pub("bob"), {}, SCOPE_A, anchor_id(pub("anchor-a")))
    sig = K["alice"].sign(LINK_CONTEXT + C1.digests[-1] + body).signature
    return body, sig


SECTIONS: list[Callable[[], list[dict[str, Any]]]] = [
    valid_cases,
    forgery_cases,
    escalation_cases,
    time_cases,
    scope_cases,
    revocation_cases,
    malformed_cases,
]


def build() -> dict[str, Any]:
    cases = [c for section in SECTIONS for c in section()]
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return {
        "version": 1,
        "description": (
            "Warrant credential test vectors (SPEC.md section 4). For each case: build the "
            "trust store from `anchors` (the anchor file as a mapping), load every "
            "`revocations_hex` list in order, then verify `input_hex` at time `now` (Unix "
            f"seconds) with CLOCK_SKEW={SKEW}. `expect.valid` says whether it must be accepted; "
            "`expect.reason` is the reason name (OK when valid). Valid cases also give the "
            "scope, depth, final holder, chain digest d_n, link ids d_i[0:16] and the effective "
            "rights (destinations as [service, lo, hi]). Keys are Ed25519 from the 32-byte "
            "seeds SHA-256('warrant/vectors/credentials/v1/' + label) listed in `keys`. "
            "Generated by tools/vectors_credentials.py."
        ),
        "now": NOW,
        "keys": M.keys_json(),
        "cases": cases,
    }


def render() -> str:
    return vectorlib.render(build())


def main(argv: list[str]) -> int:
    return vectorlib.write_or_check(
        argv, OUTPUT, render(), __file__, lambda doc: f"{len(doc['cases'])} cases"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
