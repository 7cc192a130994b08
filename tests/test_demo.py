"""`warrant demo --user-space` runs as a test: every scripted step must get its expected verdict."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_demo_user_space_all_steps_expected() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "warrant.cli", "demo", "--user-space", "--no-live"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "steps gave the expected verdict" in proc.stdout
    for reason in ("REPLAY", "UNKNOWN_ANCHOR", "ESCALATION", "WRONG_SCOPE", "HOP_CHAIN_BROKEN",
                   "BAD_MAC", "BAD_HOLDER_PROOF", "REVOKED"):  # fmt: skip
        assert reason in proc.stdout


@pytest.mark.parametrize("flag", ["--kernel"])
def test_demo_kernel_mode_refuses_clearly_until_available(flag: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "warrant.cli", "demo", flag],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
