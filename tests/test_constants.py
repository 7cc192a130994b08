"""The C header and SPEC's reason table are generated from constants.py and must not drift."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from warrant.core import constants as c

ROOT = Path(__file__).resolve().parent.parent


def test_generated_files_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_constants.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_header_values_equal_python() -> None:
    text = (ROOT / "bpf" / "warrant_constants.h").read_text()
    defined = dict(re.findall(r"#define WARRANT_(\w+) (\d+)", text))
    for reason in c.Reason:
        assert int(defined[f"REASON_{reason.name}"]) == int(reason)
    for kind in c.Kind:
        assert int(defined[f"KIND_{kind.name}"]) == int(kind)
    assert int(defined["DATA_HEADER_LEN"]) == c.DATA_HEADER_LEN == c.OFF_HOPS
    assert int(defined["REPLAY_WINDOW"]) == c.REPLAY_WINDOW


def test_every_reason_is_documented() -> None:
    assert set(c.REASONS) == set(c.Reason)
    spec = (ROOT / "SPEC.md").read_text()
    for reason in c.Reason:
        assert f"`{reason.name}`" in spec


def test_layout_arithmetic() -> None:
    assert c.DATA_HEADER_LEN == c.COMMON_HEADER_LEN + c.SESSION_ID_LEN + c.SEQ_LEN + c.MAC_LEN
    assert c.HOP_RECORD_LEN == c.HOP_TAG_LEN + c.HOP_MAC_LEN
    assert c.DATA_HEADER_LEN <= 40, "governance header budget is 40 bytes"
    assert c.REPLAY_WINDOW >= 2048
