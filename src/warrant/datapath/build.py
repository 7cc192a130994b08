"""Find or compile the eBPF objects: from a checkout's bpf/, or from the installed package.

Two layouts:

  * a checkout (bpf/ and tools/ beside src/): bpf/*.c is compiled into build/*.o when an
    object is missing or older than its sources.  Every header in bpf/ counts as a source
    of every object, so editing one header rebuilds all of them; the constants header is
    regenerated first from src/warrant/core/constants.py so C and Python cannot drift.
  * an installed wheel: setup.py copied bpf/*.c|h into warrant/datapath/bpf/ and, when
    the wheel was built where clang was, a prebuilt object beside them.  With clang at
    run time the packaged sources are compiled into a cache outside the package (which
    may be read-only): $WARRANT_CACHE_DIR, else $XDG_CACHE_HOME/warrant, else
    /var/cache/warrant for root and ~/.cache/warrant otherwise.  Without clang the
    prebuilt object is used as it is.  The program reads packet bytes only (no kernel
    structures), so one object loads on every kernel the loader supports.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BPF_DIR = ROOT / "bpf"
BUILD_DIR = ROOT / "build"
PACKAGE_BPF_DIR = Path(__file__).resolve().parent / "bpf"
OBJECTS = ("warrant_xdp", "baseline_pass", "baseline_lpm", "transparent_egress")
# -mcpu=v3: BPF atomics with fetch (cmpxchg) for the lock-free replay window (bpf/replay.h)
CFLAGS = ["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
          "-I/usr/include/x86_64-linux-gnu"]  # fmt: skip


class BuildError(RuntimeError):
    pass


def in_checkout() -> bool:
    """Whether this module runs from a source checkout (bpf/ and its generator present)."""
    return (BPF_DIR / "warrant_xdp.c").exists() and (ROOT / "tools" / "gen_constants.py").exists()


def cache_dir() -> Path:
    """Where objects compiled from the packaged sources go (never inside the package)."""
    explicit = os.environ.get("WARRANT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "warrant"
    if os.geteuid() == 0:
        return Path("/var/cache/warrant")
    return Path.home() / ".cache" / "warrant"


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


def compile_object(src: Path, out: Path, clang: str) -> Path:
    """clang src -> out, through a per-process temporary (concurrent builds never share one)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".o.{os.getpid()}.tmp")
    proc = subprocess.run(
        [clang, *CFLAGS, "-c", str(src), "-o", str(tmp)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"clang failed for {src.name}:\n{proc.stderr}")
    tmp.replace(out)
    return out


def _fresh(out: Path, src_dir: Path) -> bool:
    """A checkout's object is fresh when newer than its source and every header."""
    deps = [src_dir / f"{out.stem}.c", *src_dir.glob("*.h")]
    return out.exists() and out.stat().st_mtime >= max(p.stat().st_mtime for p in deps)


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def object_path(name: str) -> Path:
    """Where `build(name)` leaves its object in this layout.  In the package's cache the
    name carries a digest of the sources, so two installed versions never share one."""
    if in_checkout():
        return BUILD_DIR / f"{name}.o"
    if shutil.which("clang") is None:
        return PACKAGE_BPF_DIR / f"{name}.o"
    deps = [PACKAGE_BPF_DIR / f"{name}.c", *PACKAGE_BPF_DIR.glob("*.h")]
    return cache_dir() / f"{name}-{_digest(deps)}.o"


def build(name: str, force: bool = False) -> Path:
    """The object for bpf/<name>.c: compiled if stale (checkout, or package with clang),
    else the package's prebuilt one."""
    if in_checkout() and (BPF_DIR / f"{name}.c").exists():
        src_dir = BPF_DIR
        _constants_header()
    elif (PACKAGE_BPF_DIR / f"{name}.c").exists():
        src_dir = PACKAGE_BPF_DIR
    else:
        raise BuildError(
            f"no datapath source for {name!r}: neither {BPF_DIR} (a checkout) nor "
            f"{PACKAGE_BPF_DIR} (an installed wheel) has {name}.c"
        )
    src = src_dir / f"{name}.c"
    clang = shutil.which("clang")
    if clang is None:
        prebuilt = PACKAGE_BPF_DIR / f"{name}.o"
        if src_dir == PACKAGE_BPF_DIR and prebuilt.exists():
            return prebuilt
        where = "this checkout" if src_dir == BPF_DIR else "the installed package (no prebuilt)"
        raise BuildError(
            f"clang not found and {where} has no {name}.o to use: install clang "
            "(scripts/setup.sh), or a wheel built where clang was present"
        )
    out = object_path(name)
    if not force and (out.exists() if src_dir == PACKAGE_BPF_DIR else _fresh(out, src_dir)):
        return out
    return compile_object(src, out, clang)


def build_all(force: bool = False) -> list[Path]:
    src_dir = BPF_DIR if in_checkout() else PACKAGE_BPF_DIR
    return [build(n, force) for n in OBJECTS if (src_dir / f"{n}.c").exists()]
