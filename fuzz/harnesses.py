"""The parser contracts that fuzz/fuzz_*.py drive with atheris (and tests replay).

One target per parser that reads untrusted input.  Each `check_*` takes the
fuzzer's bytes and either returns (the parser accepted or refused in the
declared way) or raises something else, which atheris reports as a crash:

    packets     every packet decoder: a value or WarrantError with a parse reason
    credential  Credential.decode: a value that re-encodes to the input, or WarrantError;
                then Verifier.verify against the vectors' anchors: a chain or WarrantError
    claim       Claim.decode: a value that re-encodes to the input, or MALFORMED;
                an accepted service holds no control character (it reaches logs)
    revocation  RevocationList.decode and RevocationStore.load: a value or WarrantError
    anchors     TrustStore.load of an anchor file: a store or ValueError
    policy      Policy.from_text (admission file): a policy or a one-line PolicyError
    crd         crd_policy.load_text + to_policy (WarrantPolicy CRD): a policy or a
                one-line PolicyError
    receiver    fuzz_wire.test_one_input: decoders and a live Receiver (see fuzz_wire.py)
    transparent transparent-mode DATA and segment trains (SPEC 13): judge_transparent for
                the vectors' session and binding, the first byte choosing a GSO size: a
                reason, and an admitted train's places within its descriptor; the
                agent's checksum completion keeps every input's length

A refusal must carry a reason: a WarrantError's reason is a Reason other than
OK, a ValueError's message is one non-empty line.

Seeds (`seeds(name)`) come from vectors/*.json and deploy/kubernetes; the
committed corpus in fuzz/corpus/<name>/ is generated from them by
`python3 fuzz/run_all.py --write-seeds`, and fuzz/corpus/<name>/regress-* files
are inputs that once crashed a parser (tests/test_fuzz_smoke.py replays them).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "fuzz"))

import yaml  # noqa: E402

from warrant.core.admission import Policy, PolicyError  # noqa: E402
from warrant.core.anchors import TrustStore  # noqa: E402
from warrant.core.constants import Reason  # noqa: E402
from warrant.core.credential import Credential, Verifier  # noqa: E402
from warrant.core.errors import WarrantError  # noqa: E402
from warrant.core.receiver import Claim  # noqa: E402
from warrant.core.revocation import RevocationList, RevocationStore  # noqa: E402
from warrant.core.wire import (  # noqa: E402
    CookiePacket,
    DataPacket,
    InitPacket,
    RejectPacket,
    peek_kind,
)
from warrant.datapath.transparent import (  # noqa: E402
    Binding,
    complete_checksum,
    judge_transparent,
)
from warrant.integration import crd_policy  # noqa: E402

VECTORS = ROOT / "vectors"
PARSE_REASONS = {Reason.TRUNCATED, Reason.MALFORMED, Reason.UNKNOWN_VERSION, Reason.UNKNOWN_KIND}
DECODERS: tuple[Callable[[bytes], Any], ...] = (
    peek_kind,
    DataPacket.decode,
    InitPacket.decode,
    RejectPacket.decode,
    CookiePacket.decode,
)
# Anchor files a fuzzed policy may name (`anchors: <path>`) resolve in here.
_WORKDIR = Path(tempfile.mkdtemp(prefix=f"warrant-fuzz-{os.getpid()}-"))
atexit.register(shutil.rmtree, _WORKDIR, ignore_errors=True)


def _refusal(exc: WarrantError, allowed: set[Reason] | None = None) -> None:
    assert isinstance(exc.reason, Reason) and exc.reason != Reason.OK, exc
    assert exc.detail, exc
    if allowed is not None:
        assert exc.reason in allowed, exc


def _one_line(exc: ValueError) -> None:
    text = str(exc)
    assert text and "\n" not in text, repr(text)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# ---- targets ---------------------------------------------------------------------
def check_packets(data: bytes) -> None:
    for decode in DECODERS:
        try:
            decode(data)
        except WarrantError as exc:
            _refusal(exc, PARSE_REASONS)


_CRED_CASE: list[tuple[Verifier, float]] = []


def _cred_verifier() -> tuple[Verifier, float]:
    if not _CRED_CASE:
        doc = json.loads((VECTORS / "credentials.json").read_text())
        trust = TrustStore()
        for case in doc["cases"]:  # every anchor the vectors use, in one store
            for scope, body in case["anchors"]["scopes"].items():
                for a in TrustStore.from_mapping({"scopes": {scope: body}}).anchors[scope]:
                    if all(b.public != a.public for b in trust.anchors.get(scope, [])):
                        trust.add(a)
        _CRED_CASE.append((Verifier(trust), float(doc["now"])))
    return _CRED_CASE[0]


def check_credential(data: bytes) -> None:
    try:
        cred = Credential.decode(data)
    except WarrantError as exc:
        _refusal(exc, {Reason.MALFORMED, Reason.UNKNOWN_VERSION})
        return
    assert cred.encode() == data, "accepted a credential that is not in its one encoding"
    verifier, now = _cred_verifier()
    verifier.clear_cache()
    try:
        chain = verifier.verify(data, now)
    except WarrantError as exc:
        _refusal(exc)
        return
    assert chain.rights.not_before <= chain.rights.expires


def check_claim(data: bytes) -> None:
    try:
        claim = Claim.decode(data)
    except WarrantError as exc:
        _refusal(exc, {Reason.MALFORMED})
        return
    assert claim.encode() == data
    assert claim.service.isprintable() and claim.operation.isprintable(), claim


def check_revocation(data: bytes) -> None:
    try:
        rl = RevocationList.decode(data)
    except WarrantError as exc:
        _refusal(exc, {Reason.MALFORMED})
        return
    assert RevocationList.decode(rl.encode()).body == rl.body
    trust, _ = _cred_verifier()
    try:
        RevocationStore().load(data, trust.trust)
    except WarrantError as exc:
        _refusal(exc)


def check_anchors(data: bytes) -> None:
    path = _WORKDIR / "anchors.yaml"
    path.write_bytes(data)
    try:
        store = TrustStore.load(path)
    except ValueError as exc:
        _one_line(exc)
        return
    # What was accepted survives its own file format.
    assert TrustStore.from_mapping(yaml.safe_load(yaml.safe_dump(store.to_mapping()))).to_mapping()


def check_policy(data: bytes) -> None:
    try:
        Policy.from_text(_text(data), "<fuzz>", _WORKDIR)
    except PolicyError as exc:
        _one_line(exc)


def check_crd(data: bytes) -> None:
    try:
        docs = crd_policy.load_text(_text(data), "<fuzz>")
        crd_policy.to_policy(docs, base=_WORKDIR)
    except PolicyError as exc:
        _one_line(exc)


_TP_CASE: list[tuple[bytes, Any]] = []


def check_transparent(data: bytes) -> None:
    if not _TP_CASE:
        doc = json.loads((VECTORS / "transparent.json").read_text())
        _TP_CASE.append((bytes.fromhex(doc["k_mac_hex"]), Binding(**doc["binding"], ifindex=1)))
    k_mac, binding = _TP_CASE[0]
    gso, packet = (data[0] * 8 if data else 0), data[1:]
    if len(packet) < 36:  # the datapath parses the header first (wire.h): not this target's
        return
    reason, first, count = judge_transparent(packet, k_mac, binding, gso)
    assert isinstance(reason, Reason)
    if reason == Reason.OK and packet[3] & 0x08:
        segs = packet[42]
        assert count >= 1 and first + count <= segs, (first, count, segs)
        assert count == 1 or gso, "a whole train outside a GSO frame"
    assert len(complete_checksum(packet)) == len(packet)


def check_receiver(data: bytes) -> None:
    import fuzz_wire

    fuzz_wire.test_one_input(data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "packets": check_packets,
    "credential": check_credential,
    "claim": check_claim,
    "revocation": check_revocation,
    "anchors": check_anchors,
    "policy": check_policy,
    "crd": check_crd,
    "receiver": check_receiver,
    "transparent": check_transparent,
}


# ---- seeds -----------------------------------------------------------------------
def _packet_vectors() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / "packets.json").read_text())
    return doc


def _datagrams() -> Iterator[bytes]:
    for case in _packet_vectors()["cases"]:
        for p in case["packets"]:
            yield bytes.fromhex(p["hex"])


def seeds(name: str) -> Iterator[bytes]:
    creds = json.loads((VECTORS / "credentials.json").read_text())["cases"]
    if name == "packets":
        yield from _datagrams()
    elif name == "credential":
        for case in creds:
            if case["kind"] == "credential":
                yield bytes.fromhex(case["input_hex"])
    elif name == "claim":
        for packet in _datagrams():
            try:
                yield InitPacket.decode(packet).claim
            except WarrantError:
                continue
    elif name == "revocation":
        for case in creds:
            for rl in case["revocations_hex"]:
                yield bytes.fromhex(rl)
    elif name == "anchors":
        for case in _packet_vectors()["cases"]:
            yield yaml.safe_dump(case["receiver"]["policy"]["anchors"]).encode()
        for case in creds:
            yield yaml.safe_dump(case["anchors"]).encode()
    elif name == "policy":
        for case in _packet_vectors()["cases"]:
            policy = case["receiver"]["policy"]
            yield yaml.safe_dump(policy).encode()
            yield json.dumps(policy).encode()
    elif name == "crd":
        kube = ROOT / "deploy" / "kubernetes"
        yield (kube / "example-policy.yaml").read_bytes()
        yield yaml.safe_load((kube / "configmap-policies.yaml").read_text())["data"][
            "policy.yaml"
        ].encode()
    elif name == "transparent":
        for case in json.loads((VECTORS / "transparent.json").read_text())["cases"]:
            yield bytes([case.get("gso_size", 0) // 8]) + bytes.fromhex(case["packet_hex"])
    elif name == "receiver":
        import fuzz_wire

        yield from fuzz_wire.seed_inputs()
    else:
        raise KeyError(name)


def corpus_dir(name: str) -> Path:
    return ROOT / "fuzz" / "corpus" / name


def unique_seeds(name: str) -> list[bytes]:
    out: dict[bytes, None] = {}
    for blob in seeds(name):
        out.setdefault(blob, None)
    return list(out)


def replay(name: str, paths: list[Path]) -> int:
    check = TARGETS[name]
    for p in paths:
        check(p.read_bytes())
    return len(paths)
