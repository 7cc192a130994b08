"""Smoke test for bench/credentials.py: it imports and measures sizes (no timing).

Benchmarks are not tests; this only keeps the script from rotting.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "credentials.py"


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
