"""Smoke test for bench/reliability.py in its --smoke mode (tiny sizes, no fault tests,
nothing written): the floods, the session table and the report run, and the figures that
must hold at any size hold (the session survives every flood, nothing unadmitted is
delivered, the table stays at its capacity past it).  The --quick run takes about a minute
on a quiet machine, so CI runs this lighter mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "reliability.py"


def test_reliability_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in ("fuzz_execs", "crashes_open", "admitted_loss_under_open_flood",
                "unadmitted_passed", "sessions_max_tested"):  # fmt: skip
        assert key in summary, key
    assert next(iter(summary)) == "admitted_loss_under_open_flood"  # fractions first
    assert summary["unadmitted_passed"] == 0
    assert summary["sessions_max_tested"] == 5000
    assert summary["python_table_size_after_overflow"] == 5000
    assert summary["admitted_loss_baseline"] < 0.05
    assert "## What was lost" in proc.stdout and "## Not covered" in proc.stdout
