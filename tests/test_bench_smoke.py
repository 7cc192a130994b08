"""Smoke tests for bench/credentials.py (sizes, no timing) and bench/datapath.py.

Benchmarks are not tests; these only keep the scripts from rotting.  The datapath
bench asserts its own basis on every call (the XDP action, each case's kernel
counter moving by exactly `repeat`, the driver's cursor); here it runs --quick
under root and its last line must be the JSON it promises.  Its figures are not
checked against the targets: on a shared machine they are noise-bound.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "credentials.py"
DATAPATH = BENCH.parent / "datapath.py"
HEADLINE = ["admit_1hop_vs_lpm", "admit_4hop_vs_lpm", "unknown_vs_lpm", "malformed_vs_lpm",
            "replay_vs_lpm"]  # fmt: skip


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warrant_bench_credentials", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_bench_imports_and_measures_sizes() -> None:
    bench = _load()
    sizes = bench.measure_sizes()
    assert sorted(sizes) == [1, 2, 3]
    for depth, row in sizes.items():
        # Every link carries at least its Ed25519 signature and holder key.
        assert row["warrant"] > row["floor"] == 96 * depth
    assert sizes[1]["warrant"] < sizes[2]["warrant"] < sizes[3]["warrant"]


def test_bench_compares_with_biscuit_when_installed() -> None:
    pytest.importorskip("biscuit_auth")
    bench = _load()
    sizes = bench.measure_sizes()
    for row in sizes.values():
        assert row["biscuit"] > 0
        assert row["biscuit_b64"] > row["biscuit"]


@pytest.mark.root
def test_datapath_bench_quick_prints_its_json() -> None:
    if os.geteuid() != 0:
        pytest.skip("bench/datapath.py loads eBPF programs: needs root")
    proc = subprocess.run(
        [sys.executable, str(DATAPATH), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(out)[: len(HEADLINE)] == HEADLINE  # ratios first
    for key in HEADLINE:
        assert 0 < out[key] < 20, (key, out[key])
    assert out["repeat"] >= 100_000
    assert out["lpm_baseline_ns"] > out["xdp_pass_ns"] > 0
