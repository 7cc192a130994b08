"""Compile bpf/*.c into build/*.o when an object is missing or older than its sources.

The objects are build products (gitignored).  Every header in bpf/ counts as a
source of every object, so editing one header rebuilds all of them; the
constants header is regenerated first from src/warrant/core/constants.py so C and
Python cannot drift.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BPF_DIR = ROOT / "bpf"
BUILD_DIR = ROOT / "build"
OBJECTS = ("warrant_xdp", "baseline_pass", "baseline_lpm")
# -mcpu=v3: BPF atomics with fetch (cmpxchg) for the lock-free replay window (bpf/replay.h)
CFLAGS = ["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
          "-I/usr/include/x86_64-linux-gnu"]  # fmt: skip


class BuildError(RuntimeError):
    pass


def _constants_header() -> None:
    """Rewrite bpf/warrant_constants.h if constants.py changed (same renderer as the tool)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gen_constants", ROOT / "tools" / "gen_constants.py"
    )
    if spec is None or spec.loader is None:  # pragma: no cover - repository layout broken
        raise BuildError("tools/gen_constants.py not found")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.header()
    if not mod.HEADER.exists() or mod.HEADER.read_text() != text:
        mod.HEADER.write_text(text)


def object_path(name: str) -> Path:
    return BUILD_DIR / f"{name}.o"


def build(name: str, force: bool = False) -> Path:
    """Path of build/<name>.o, compiled from bpf/<name>.c if stale."""
    src = BPF_DIR / f"{name}.c"
    out = object_path(name)
    if not src.exists():
        if out.exists():
            return out  # installed without sources: use what is there
        raise BuildError(f"no source {src}")
    _constants_header()
    deps = [src, *BPF_DIR.glob("*.h")]
    if not force and out.exists():
        newest = max(p.stat().st_mtime for p in deps)
        if out.stat().st_mtime >= newest:
            return out
    clang = shutil.which("clang")
    if clang is None:
        raise BuildError("clang not found (run scripts/setup.sh)")
    BUILD_DIR.mkdir(exist_ok=True)
    # A per-process temporary: concurrent builds (parallel test runs) never share one.
    tmp = out.with_suffix(f".o.{os.getpid()}.tmp")
    proc = subprocess.run(
        [clang, *CFLAGS, "-c", str(src), "-o", str(tmp)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BuildError(f"clang failed for {src.name}:\n{proc.stderr}")
    tmp.replace(out)
    return out


def build_all(force: bool = False) -> list[Path]:
    return [build(n, force) for n in OBJECTS if (BPF_DIR / f"{n}.c").exists()]
