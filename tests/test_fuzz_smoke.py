"""CI smoke run of the atheris harnesses (fuzz/) and replay of the kept crash inputs.

* every target's seed corpus passes its contract in plain Python (no atheris);
* every fuzz/corpus/<t>/regress-* input (an input that once crashed a parser)
  passes its contract: the fix stays fixed;
* `fuzz/run_all.py --smoke` runs each target under atheris for a few thousand
  executions with no crash;
* the harness contracts can fail: a parser that raises a foreign exception, or
  refuses with a multi-line message, is reported as a crash.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import harnesses  # noqa: E402


def _run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warrant_fuzz_run_all", FUZZ / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target", sorted(harnesses.TARGETS))
def test_seed_corpus_passes_its_contract(target: str) -> None:
    files = sorted(harnesses.corpus_dir(target).glob("seed-*"))
    assert files, f"no seeds for {target}: python3 fuzz/run_all.py --write-seeds"
    assert harnesses.replay(target, files) == len(files)


def test_crash_regressions_stay_fixed() -> None:
    regress = sorted(FUZZ.glob("corpus/*/regress-*"))
    for path in regress:
        harnesses.replay(path.parent.name, [path])


def test_run_all_targets_have_harness_scripts() -> None:
    run_all = _run_all()
    assert set(run_all.TARGETS) == set(harnesses.TARGETS)
    for t in run_all.TARGETS:
        assert run_all.script(t).is_file(), t


def test_contract_catches_a_foreign_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(data: bytes) -> None:
        raise IndexError("parser bug")

    monkeypatch.setattr(harnesses.Claim, "decode", boom)
    with pytest.raises(IndexError):
        harnesses.check_claim(b"\x83")


def test_contract_catches_a_multiline_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    def usage_box(text: str, source: str, base: Path) -> None:
        raise harnesses.PolicyError("line one\nline two")

    monkeypatch.setattr(harnesses.Policy, "from_text", usage_box)
    with pytest.raises(AssertionError):
        harnesses.check_policy(b"default: allow\n")


def test_contract_catches_a_non_canonical_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    seed = bytes.fromhex(
        next(c for c in harnesses.json.loads((harnesses.VECTORS / "credentials.json").read_text())[
            "cases"] if c["expect"]["valid"])["input_hex"]
    )  # fmt: skip
    cred = harnesses.Credential.decode(seed)
    monkeypatch.setattr(harnesses.Credential, "decode", lambda data: cred)
    with pytest.raises(AssertionError, match="one encoding"):
        harnesses.check_credential(seed + b"\x00")


def test_atheris_smoke_run(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is in the dev extra: pip install -e '.[dev]'")
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "run_all.py"), "--smoke", "--runs", "2000", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["crashes"] == [] and doc["crashes_open"] == 0
    for target, stats in doc["per_target"].items():
        assert stats["execs"] >= 200, (target, stats)  # the target really ran under libFuzzer
        assert stats["cov"] > 0, (target, stats)
