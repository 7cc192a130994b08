"""`warrant demo` runs as a test: every scripted step must get its expected verdict, in both modes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from flow_helpers import flat
from warrant.demo import runner as demo
from warrant.demo import topology

EXPECTED_REASONS = ("REPLAY", "UNKNOWN_ANCHOR", "ESCALATION", "WRONG_SCOPE", "HOP_CHAIN_BROKEN",
                    "BAD_MAC", "BAD_HOLDER_PROOF", "REVOKED", "PORT_MISMATCH", "EXPIRED")  # fmt: skip


def _demo(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warrant.cli", "demo", "--no-live", *flags],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "COLUMNS": "220"},
    )  # fmt: skip


def _observe(store: Path, *args: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "warrant.cli", "observe", "--store", str(store), "-o", "jsonl", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [flat(json.loads(line)) for line in proc.stdout.splitlines() if line.strip()]


def test_demo_user_space_all_steps_expected(tmp_path: Path) -> None:
    store = tmp_path / "flows.db"
    proc = _demo("--user-space", "--flows", str(store))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "20/20 steps gave the expected verdict" in proc.stdout
    for reason in EXPECTED_REASONS:
        assert reason in proc.stdout
    flows = _observe(store)
    assert len(flows) == 20
    replay = _observe(store, "--reason", "REPLAY")
    assert len(replay) == 1 and replay[0]["verdict"] == "DROPPED"


def test_demo_steps_are_checked_not_assumed() -> None:
    """A step whose expectation is wrong must fail the demo (the check can fail)."""
    result = demo.DemoResult("user space")
    result.steps.append(demo.Step("x", "y", expect=demo.Reason.OK, verdict=demo.Reason.REPLAY))
    assert not result.passed
    assert not demo.DemoResult("empty").passed


def test_kernel_mode_without_root_refuses_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(topology.LabError, match="--user-space"):
        asyncio.run(demo.run_kernel(Console(file=open(os.devnull, "w")), live=False))  # noqa: SIM115


@pytest.mark.root
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root, netns and bpf; CI runs as root",
)
def test_demo_kernel_all_steps_expected_and_leaves_nothing_behind(tmp_path: Path) -> None:
    store = tmp_path / "flows.db"
    proc = _demo("--kernel", "--flows", str(store))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert "20/20 steps gave the expected verdict" in proc.stdout
    assert "kernel (XDP):" in proc.stdout
    for reason in EXPECTED_REASONS:
        assert reason in proc.stdout
    # Kernel drops really are decided in the kernel.
    kernel_rows = [line for line in proc.stdout.splitlines() if "│ kernel" in line]
    assert any("REPLAY" in line for line in kernel_rows)
    assert any("BAD_MAC" in line for line in kernel_rows)
    assert topology.existing() == []
    assert not os.path.exists(demo.DEMO_PIN_ROOT)
    # `warrant observe` reads the kernel's verdicts like any other flow.
    kernel = [f for f in _observe(store, "--verdict", "DROPPED") if "kernel" in f.get("detail", "")]
    assert {f["reason"] for f in kernel} >= {
        "REPLAY",
        "BAD_MAC",
        "HOP_CHAIN_BROKEN",
        "PORT_MISMATCH",
    }
