"""Issue 13: under root, a datapath that cannot be built or loaded fails the kernel tests.

CI runs as root; a clang, verifier or bpf() failure that became a skip let CI stay green
with the datapath untested.  These tests simulate the failure (so they mean the same as
root and as a user) and hold every test file to the rule.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import netns_helpers
import test_datapath_differential
from warrant.datapath import loader

TESTS = Path(__file__).resolve().parent


def _broken_open(*args: object, **kwargs: object) -> loader.Datapath:
    raise RuntimeError("clang: error: unknown argument (simulated build failure)")


@pytest.mark.parametrize(
    "check",
    [
        netns_helpers.require_datapath,
        netns_helpers.skip_unless_datapath,
        test_datapath_differential._datapath_or_skip,
    ],
)
def test_as_root_a_build_failure_fails(monkeypatch: pytest.MonkeyPatch, check: object) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(loader.Datapath, "open", _broken_open)
    monkeypatch.setattr(netns_helpers.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(pytest.fail.Exception, match="simulated build failure"):
        check()  # type: ignore[operator]


@pytest.mark.parametrize(
    "check",
    [
        netns_helpers.require_datapath,
        netns_helpers.skip_unless_datapath,
        test_datapath_differential._datapath_or_skip,
    ],
)
def test_without_root_the_kernel_tests_skip(monkeypatch: pytest.MonkeyPatch, check: object) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(loader.Datapath, "open", _broken_open)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        check()  # type: ignore[operator]


def _skips_on_any_exception(tree: ast.AST) -> list[int]:
    """Lines of `except Exception`/`BaseException`/bare handlers whose body skips."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ExceptHandler):
            continue
        broad = node.type is None or (
            isinstance(node.type, ast.Name) and node.type.id in ("Exception", "BaseException")
        )
        skips = any(
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "skip"
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "pytest"
            for stmt in node.body
            for n in ast.walk(stmt)
        )
        if broad and skips:
            lines.append(node.lineno)
    return lines


def test_no_test_turns_any_exception_into_a_skip() -> None:
    offenders = {
        path.name: lines
        for path in sorted(TESTS.glob("*.py"))
        if (lines := _skips_on_any_exception(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}, "catch the specific absence (ImportError, no tool), or fail"


def test_the_scan_finds_the_old_pattern() -> None:
    old = "try:\n    load()\nexcept Exception as exc:\n    pytest.skip(f'unavailable: {exc}')\n"
    assert _skips_on_any_exception(ast.parse(old)) == [3]
    narrow = "try:\n    import x\nexcept ImportError:\n    pytest.skip('no x')\n"
    assert _skips_on_any_exception(ast.parse(narrow)) == []
