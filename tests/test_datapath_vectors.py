"""vectors/packets.json through the loaded eBPF program (BPF_PROG_TEST_RUN).

Each case gets a fresh datapath and a Python receiver built from the case's
setup.  INITs go to the Python receiver (user space, as `warrant agent` does);
the kernel must pass them up, and each admitted one is installed into the
maps.  Every other datagram is wrapped in an Ethernet/IPv4/UDP frame (its
source address and destination port) and run through the XDP program with the
kernel clock frozen at the vector's time; the kernel's verdict must be the
vector's `kernel.reason`.  Needs root and bpf(); skipped otherwise.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from netns_helpers import require_datapath
from warrant.core import keys
from warrant.core.admission import Policy
from warrant.core.constants import Kind, Reason, Verdict
from warrant.core.receiver import Receiver
from warrant.core.revocation import RevocationStore
from warrant.datapath.wire import udp_frame

pytestmark = pytest.mark.root

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "packets.json"
DOC: dict[str, Any] = json.loads(VECTORS.read_text()) if VECTORS.exists() else {"cases": []}
HOPS = Path(__file__).resolve().parent.parent / "vectors" / "hops.json"
HDOC: dict[str, Any] = json.loads(HOPS.read_text()) if HOPS.exists() else {"data_cases": []}
PREFIX = "warrant/vectors/packets/v1/"
XDP_PASS, XDP_DROP, XDP_TX = 2, 1, 3
REJECTED = {Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED}  # answered in place (bpf/reject.h)


def _receiver(setup: dict[str, Any]) -> Receiver:
    labels = {k["label"]: keys.from_seed(bytes.fromhex(k["seed_hex"])) for k in DOC["keys"]}
    policy = Policy.from_text(json.dumps(setup["policy"]), "<vector policy>")
    store = RevocationStore()
    for rl in setup["revocations_hex"]:
        assert store.load(bytes.fromhex(rl), policy.trust)
    count = [0]

    def random(n: int) -> bytes:  # the vectors' SHAKE-256 stream
        out = hashlib.shake_256(f"{PREFIX}{setup['random']}/{count[0]}".encode()).digest(n)
        count[0] += 1
        return out

    return Receiver(labels[setup["key"]], policy, started_at=setup["started_at"],
                    revocations=store, random=random)  # fmt: skip


@pytest.fixture(scope="module")
def runner():  # type: ignore[no-untyped-def]
    require_datapath()  # skips without root; as root a build or load failure fails
    from warrant.datapath.loader import Datapath

    return Datapath


@pytest.mark.skipif(not DOC["cases"], reason="vectors/packets.json not present")
@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_vector_case_in_the_kernel(runner, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    from warrant.datapath import libbpf

    user = _receiver(case["receiver"])
    ports = {p["dst_port"] for p in case["packets"]}
    with runner.open(pin_root=None) as dp:
        dp.set_ports(ports)
        dp.set_config(admit_sample=1, pass_events=True, budget=False)
        run = libbpf.TestRunner(dp.xdp_fd, 8192)
        checked = 0
        for i, p in enumerate(case["packets"]):
            packet = bytes.fromhex(p["hex"])
            where = f"{case['name']}#{i} ({p['note']})"
            dp.set_time(p["now"])
            frame = udp_frame(packet, p["dst_port"], sport=p["source"][1],
                              src=socket.inet_aton(p["source"][0]))  # fmt: skip
            retval, _ = run.run(frame)
            (ev,) = dp.events()
            if len(packet) >= 2 and packet[0] == 1 and packet[1] == Kind.INIT:
                assert (retval, ev.verdict, ev.reason) == (XDP_PASS, Verdict.PASS, Reason.OK), where
                out = user.handle(packet, (p["source"][0], p["source"][1]), p["dst_port"], p["now"])
                if out.verdict == Verdict.ADMIT and out.session_id is not None:
                    session = user.sessions.get(out.session_id)
                    assert session is not None, where
                    dp.install_session(session)
                continue
            want = Reason[p["kernel"]["reason"]]
            assert ev.reason == want, f"{where}: kernel {ev.reason.name}, vector {want.name}"
            verdict = Verdict.ADMIT if want == Reason.OK else Verdict.DROP
            assert ev.verdict == verdict, where
            expect = (
                XDP_PASS if verdict == Verdict.ADMIT else XDP_TX if want in REJECTED else XDP_DROP
            )
            assert retval == expect, where
            checked += 1


@pytest.mark.skipif(not HDOC["data_cases"], reason="vectors/hops.json not present")
@pytest.mark.parametrize("case", HDOC["data_cases"], ids=[c["name"] for c in HDOC["data_cases"]])
def test_hop_vector_in_the_kernel(runner, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """vectors/hops.json DATA cases: the session through relay-a and relay-b, installed
    from the Python receiver, then the case's packet through the XDP program."""
    from warrant.datapath import libbpf

    setup = HDOC["receiver"]
    labels = {k["label"]: keys.from_seed(bytes.fromhex(k["seed_hex"])) for k in HDOC["keys"]}
    policy = Policy.from_text(json.dumps(setup["policy"]), "<vector policy>")
    user = Receiver(labels[setup["key"]], policy, started_at=float(setup["started_at"]))
    source = (HDOC["source"][0], HDOC["source"][1])
    now, port = HDOC["now"], setup["port"]
    opened = user.handle(bytes.fromhex(HDOC["init"]["after_hex"][-1]), source, port, now)
    assert opened.verdict == Verdict.ADMIT and opened.session_id is not None
    session = user.sessions.get(opened.session_id)
    assert session is not None and len(session.path) == 2
    with runner.open(pin_root=None) as dp:
        dp.set_ports([port])
        dp.set_time(now)
        dp.set_config(admit_sample=1, pass_events=True, budget=False)
        dp.install_session(session)
        frame = udp_frame(bytes.fromhex(case["packet_hex"]), port, sport=source[1],
                          src=socket.inet_aton(source[0]))  # fmt: skip
        retval, _ = libbpf.TestRunner(dp.xdp_fd, 8192).run(frame)
        (ev,) = dp.events()
    want = Reason[case["expect"]]  # every expectation here is a step 1-7 reason
    assert (ev.reason, ev.verdict) == (want, Verdict.ADMIT if want == Reason.OK else Verdict.DROP)
    assert retval == (XDP_PASS if want == Reason.OK else XDP_TX if want in REJECTED else XDP_DROP)


FRAMES = Path(__file__).resolve().parent.parent / "vectors" / "frames.json"
FDOC: dict[str, Any] = json.loads(FRAMES.read_text()) if FRAMES.exists() else {"cases": []}
TC_OK, TC_SHOT, TC_REDIRECT = 0xFFFFFFFF, 2, 7  # TC_ACT_UNSPEC: "next"


@pytest.mark.skipif(not FDOC["cases"], reason="vectors/frames.json not present")
def test_frame_vectors_in_the_kernel(runner) -> None:  # type: ignore[no-untyped-def]
    """vectors/frames.json (IPv4, IPv6, VLAN stacks, fragments, merged skbs) through XDP
    and TC: verdict, reason and the bytes of each REJECT built in place.  Cases with an
    `skb` (GSO count and size) run at TC only: XDP has no skb."""
    from warrant.datapath import libbpf

    with runner.open(pin_root=None) as dp:
        dp.set_ports(FDOC["ports"])
        dp.set_time(1_800_000_000)
        dp.set_config(admit_sample=1, pass_events=True, budget=False)
        xdp = libbpf.TestRunner(dp.xdp_fd, 4096, data_out=True)
        tc = libbpf.TestRunner(dp.tc_fd, 4096, data_out=True)
        for case in FDOC["cases"]:
            frame = bytes.fromhex(case["frame_hex"])
            verdict, reason = Verdict[case["verdict"]], Reason[case["reason"]]
            reply = bytes.fromhex(case["reply_hex"]) if "reply_hex" in case else None
            skb = case.get("skb")
            runs = [(tc, libbpf.skb_ctx(**skb), TC_SHOT, TC_REDIRECT, TC_OK)] if skb else [
                (xdp, None, XDP_DROP, XDP_TX, XDP_PASS), (tc, None, TC_SHOT, TC_REDIRECT, TC_OK)]  # fmt: skip
            for run, ctx, drop, tx, ok in runs:
                where = f"{case['name']} ({case['note']}) at {'TC' if run is tc else 'XDP'}"
                retval, _ = run.run(frame, ctx=ctx)
                (ev,) = dp.events()
                assert (ev.verdict, ev.reason) == (verdict, reason), where
                if reply is not None:
                    assert retval == tx and run.output() == reply, where
                else:
                    assert retval == (drop if verdict == Verdict.DROP else ok), where
