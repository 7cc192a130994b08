"""Coverage-guided fuzzing of the wire parsers and the receiver, with atheris (libFuzzer).

Not run in CI: atheris ships wheels for Linux x86-64 and a few CPython versions
only, and fuzzing is open-ended.  tests/test_fuzz_wire.py holds the hypothesis
properties that do run in CI, and exercises this harness's entry point in
replay mode so it cannot rot.

Run it:

    pip install atheris                                   # or build it against a clang with libFuzzer
    python fuzz/fuzz_wire.py --seed-corpus fuzz/corpus    # seeds: every datagram of vectors/packets.json
    python fuzz/fuzz_wire.py fuzz/corpus -max_total_time=600 -rss_limit_mb=4096 -max_len=4096
    python fuzz/fuzz_wire.py crash-0123abcd               # reproduce a crash atheris wrote
    python fuzz/fuzz_wire.py --replay fuzz/corpus/*       # run inputs without atheris (plain Python)

Input format: byte 0 picks a receiver state (the state after every packet of
case `byte % n` of vectors/packets.json, so live sessions, relayed paths and a
loaded cookie jar are all reachable); bytes 1.. are one datagram, given to
every decoder and then to `Receiver.handle` at that case's last time and port.

A crash is any exception other than WarrantError from a decoder, any exception
at all from `Receiver.handle` (it must always return an Outcome), or a broken
invariant: an admitted packet without authority, a reply larger than the
packet that caused it, a drop without a reason.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from warrant.core import keys  # noqa: E402
from warrant.core.admission import Policy  # noqa: E402
from warrant.core.constants import Reason, Verdict  # noqa: E402
from warrant.core.errors import WarrantError  # noqa: E402
from warrant.core.receiver import Outcome, Receiver  # noqa: E402
from warrant.core.revocation import RevocationStore  # noqa: E402
from warrant.core.wire import CookiePacket, DataPacket, InitPacket, RejectPacket, peek_kind  # noqa: E402

VECTORS = ROOT / "vectors" / "packets.json"
PREFIX = "warrant/vectors/packets/v1/"
PARSE_REASONS = {Reason.TRUNCATED, Reason.MALFORMED, Reason.UNKNOWN_VERSION, Reason.UNKNOWN_KIND}
DECODERS = (
    peek_kind,
    DataPacket.decode,
    InitPacket.decode,
    RejectPacket.decode,
    CookiePacket.decode,
)


class Stream:
    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(f"{PREFIX}{self.name}/{self.count}".encode()).digest(n)
        self.count += 1
        return out


class State:
    """A receiver after one vector case, ready to be copied for each input."""

    def __init__(self, case: dict[str, Any], signing_keys: dict[str, Any]) -> None:
        setup = case["receiver"]
        policy = Policy.from_text(json.dumps(setup["policy"]), f"<{case['name']}>")
        store = RevocationStore()
        for rl in setup["revocations_hex"]:
            store.load(bytes.fromhex(rl), policy.trust)
        self.receiver = Receiver(
            signing_keys[setup["key"]],
            policy,
            started_at=setup["started_at"],
            revocations=store,
            random=Stream(setup["random"]),
        )
        last = case["packets"][-1]
        for p in case["packets"]:
            self.receiver.handle(
                bytes.fromhex(p["hex"]), tuple(p["source"]), p["dst_port"], p["now"]
            )
        self.now, self.port, self.source = last["now"], last["dst_port"], tuple(last["source"])


def load_states() -> list[State]:
    doc = json.loads(VECTORS.read_text())
    signing_keys = {k["label"]: keys.from_seed(bytes.fromhex(k["seed_hex"])) for k in doc["keys"]}
    return [State(case, signing_keys) for case in doc["cases"]]


_STATES: list[State] = []


def states() -> list[State]:
    if not _STATES:
        _STATES.extend(load_states())
    return _STATES


def test_one_input(data: bytes) -> None:
    if not data:
        return
    packet = data[1:]
    for decode in DECODERS:
        try:
            decode(packet)
        except WarrantError as exc:
            assert exc.reason in PARSE_REASONS, exc
    pool = states()
    state = pool[data[0] % len(pool)]
    rx = copy.deepcopy(state.receiver)
    out = rx.handle(packet, state.source, state.port, state.now)  # type: ignore[arg-type]
    assert isinstance(out, Outcome)
    if out.verdict == Verdict.ADMIT:
        assert out.reason == Reason.OK and out.authority is not None
    else:
        assert out.verdict == Verdict.DROP and out.reason != Reason.OK and out.payload is None
    if out.reply is not None:
        assert len(out.reply) <= len(packet)


def seed_inputs() -> Iterator[bytes]:
    """Every datagram of the vectors, prefixed with the index of its own case."""
    doc = json.loads(VECTORS.read_text())
    for i, case in enumerate(doc["cases"]):
        for p in case["packets"]:
            yield bytes([i]) + bytes.fromhex(p["hex"])


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--seed-corpus"]:
        out = Path(argv[2])
        out.mkdir(parents=True, exist_ok=True)
        for blob in seed_inputs():
            (out / hashlib.sha1(blob).hexdigest()).write_bytes(blob)
        print(f"wrote seeds to {out}")
        return 0
    if argv[1:2] == ["--replay"]:
        for name in argv[2:]:
            test_one_input(Path(name).read_bytes())
        print(f"{len(argv) - 2} inputs, no crash")
        return 0
    import atheris  # type: ignore[import-not-found]

    states()  # build the receiver states before fuzzing starts
    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
