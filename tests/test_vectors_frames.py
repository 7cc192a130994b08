"""vectors/frames.json against the Python reference of the kernel's frame policy.

The same file runs through the eBPF programs in tests/test_datapath_vectors.py; here
no privileges are needed.  The expected verdicts were written by hand in
tools/vectors_frames.py, and its frames are built there without warrant.datapath.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from vector_helpers import ROOT, load_generator
from warrant.core.constants import Reason, Verdict
from warrant.datapath.lab import Lab
from warrant.datapath.reference import KernelReference

DOC: dict[str, Any] = json.loads((ROOT / "vectors" / "frames.json").read_text())
T0 = 1_800_000_000


def test_frames_json_is_current() -> None:
    gen = load_generator("vectors_frames")
    assert gen.main(["vectors_frames.py", "--check"]) == 0


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_reference_decides_each_frame_as_the_vector_says(case: dict[str, Any]) -> None:
    ref = KernelReference(Lab(T0).receiver, set(DOC["ports"]))
    skb = case.get("skb", {})
    got = ref.decide(bytes.fromhex(case["frame_hex"]), T0, **skb)
    assert (got.verdict, got.reason) == (Verdict[case["verdict"]], Reason[case["reason"]])
    reply = got.reply.hex() if got.reply is not None else None
    assert reply == case.get("reply_hex")


def test_vectors_cover_every_frame_reason() -> None:
    reasons = {c["reason"] for c in DOC["cases"]}
    assert {"NOT_WARRANT", "UNPARSED_FRAME", "FRAGMENTED", "MALFORMED", "MERGED_FRAME",
            "UNKNOWN_SESSION", "OK"} <= reasons  # fmt: skip
    assert any(c.get("reply_hex") and "86dd" in c["frame_hex"][24:40] for c in DOC["cases"])
