"""Packaging hook: the wheel carries the eBPF datapath.

Everything else about the package is in pyproject.toml.  `build_py` copies bpf/*.c and
bpf/*.h into warrant/datapath/bpf/ and, when clang is present, compiles the objects
there too, so that an installed `warrant agent` finds its program without a checkout
(src/warrant/datapath/build.py: sources in the package, prebuilt object when the node
has no clang).  bpf/warrant_constants.h is copied as committed: tools/gen_constants.py
needs the package importable, which an isolated build has not.  Editable installs use the checkout's bpf/ in place.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _datapath_build() -> Any:
    """src/warrant/datapath/build.py on its own (stdlib only; the package is not built yet)."""
    spec = importlib.util.spec_from_file_location(
        "warrant_datapath_build", ROOT / "src" / "warrant" / "datapath" / "build.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class BuildPyWithDatapath(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        bpf = ROOT / "bpf"
        if not (bpf / "warrant_xdp.c").exists():
            raise SystemExit("setup.py: bpf/warrant_xdp.c missing; the wheel needs the datapath")
        dp = _datapath_build()
        out = Path(self.build_lib) / "warrant" / "datapath" / "bpf"
        out.mkdir(parents=True, exist_ok=True)
        for src in sorted([*bpf.glob("*.c"), *bpf.glob("*.h")]):
            shutil.copy2(src, out / src.name)
        clang = shutil.which("clang")
        if clang is None:
            print("setup.py: clang not found; the wheel carries sources only (no prebuilt object)")
            return
        for name in dp.OBJECTS:
            if (out / f"{name}.c").exists():
                dp.compile_object(out / f"{name}.c", out / f"{name}.o", clang)


setup(cmdclass={"build_py": BuildPyWithDatapath})
