"""The wheel carries the datapath: built, installed into a fresh venv, run outside the checkout.

`pip wheel` builds from a copy of the tree (the shared checkout is never written), a new
venv gets the wheel and its dependencies from this machine's pip configuration, and then,
from a directory outside the checkout with clang hidden from PATH, `warrant --version`
prints pyproject's version and (as root) the installed package loads its prebuilt object
and `warrant agent` attaches it to a veth end in a network namespace.

Also, without a wheel: build.py's choice between a checkout, packaged sources (compiled
into a cache outside the package) and the prebuilt object, and its error when none fits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from warrant.datapath import build

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# ---- build.py's layouts (no wheel needed) ------------------------------------------------------
@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """build.py as if installed: no checkout, the package's bpf/ holding a copy of the sources."""
    pkg = tmp_path / "pkg-bpf"
    pkg.mkdir()
    for src in [*build.BPF_DIR.glob("*.c"), *build.BPF_DIR.glob("*.h")]:
        shutil.copy2(src, pkg / src.name)
    monkeypatch.setattr(build, "BPF_DIR", tmp_path / "no-checkout" / "bpf")
    monkeypatch.setattr(build, "PACKAGE_BPF_DIR", pkg)
    monkeypatch.setenv("WARRANT_CACHE_DIR", str(tmp_path / "cache"))
    return pkg


def test_checkout_is_found_first() -> None:
    assert build.in_checkout()
    assert build.object_path("warrant_xdp") == build.BUILD_DIR / "warrant_xdp.o"


def test_without_clang_the_prebuilt_object_is_used(packaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(build.shutil, "which", lambda _name: None)
    (packaged / "warrant_xdp.o").write_bytes(b"prebuilt")
    assert not build.in_checkout()
    assert build.build("warrant_xdp") == packaged / "warrant_xdp.o"


def test_neither_clang_nor_prebuilt_is_a_clear_error(packaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(build.shutil, "which", lambda _name: None)
    with pytest.raises(build.BuildError, match=r"clang not found and the installed package"):
        build.build("warrant_xdp")


def test_no_sources_anywhere_is_a_clear_error(packaged: Path) -> None:
    with pytest.raises(build.BuildError, match=r"neither .* \(a checkout\) nor .* has nope\.c"):
        build.build("nope")


def test_with_clang_packaged_sources_compile_into_the_cache(packaged: Path, tmp_path: Path) -> None:
    if shutil.which("clang") is None:
        pytest.skip("needs clang")
    packaged.chmod(0o555)  # an installed package may be read-only
    try:
        out = build.build("baseline_pass")
    finally:
        packaged.chmod(0o755)
    assert out.parent == tmp_path / "cache" and out.name.startswith("baseline_pass-")
    assert out.read_bytes()[:4] == b"\x7fELF"
    assert build.build("baseline_pass") == out  # cached: the same file, not rebuilt
    (packaged / "wire.h").write_text((packaged / "wire.h").read_text() + "\n/* changed */\n")
    assert build.build("baseline_pass") != out  # another source, another cache entry


def test_cache_dir_outside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARRANT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert build.cache_dir() == Path("/x/cache/warrant")
    monkeypatch.delenv("XDG_CACHE_HOME")
    expected = Path("/var/cache/warrant") if os.geteuid() == 0 else Path.home() / ".cache/warrant"
    assert build.cache_dir() == expected


def test_one_version_string() -> None:
    import warrant

    assert warrant.__version__ == VERSION
    # the package reads it from its metadata; no second copy is written in the source
    assert not re.search(r"\d+\.\d+\.\d+", (REPO / "src/warrant/__init__.py").read_text())


# ---- the wheel ----------------------------------------------------------------------------------
def _copy_tree(dest: Path) -> None:
    """What `pip wheel` needs, copied: the build never writes into the shared checkout."""
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.o", "*.tmp")
    shutil.copytree(REPO / "bpf", dest / "bpf", ignore=ignore)
    (dest / "tools").mkdir()
    shutil.copy2(REPO / "tools" / "gen_constants.py", dest / "tools" / "gen_constants.py")
    shutil.copytree(REPO / "src" / "warrant", dest / "src" / "warrant", ignore=ignore)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    if shutil.which("clang") is None:
        pytest.skip("needs clang to build the wheel's prebuilt object")
    base = tmp_path_factory.mktemp("wheel")
    tree, dist, venv = base / "tree", base / "dist", base / "venv"
    tree.mkdir()
    _copy_tree(tree)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "-q",
                    "-w", str(dist)], check=True, capture_output=True, timeout=120)  # fmt: skip
    (wheel,) = dist.glob("warrant-*.whl")
    # a venv of its own (no pip in it: this interpreter's pip installs into it, which saves
    # bootstrapping one); dependencies from the machine's pip configuration (its index)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                           "install", "-q", "--no-compile", str(wheel)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    outside = base / "elsewhere"
    outside.mkdir()
    yield {"wheel": wheel, "venv": venv, "cwd": outside}


def _env(venv: Path) -> dict[str, str]:
    """PATH with the venv only: no clang, no checkout on sys.path."""
    path = str(venv / "bin")
    assert shutil.which("clang", path=path) is None
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PATH": path, "WARRANT_CACHE_DIR": str(venv / "cache")}


def test_wheel_carries_sources_and_the_prebuilt_object(installed: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    bpf = {n.rsplit("/", 1)[1] for n in names if n.startswith("warrant/datapath/bpf/")}
    sources = {p.name for p in [*(REPO / "bpf").glob("*.c"), *(REPO / "bpf").glob("*.h")]}
    assert sources <= bpf
    assert "warrant_xdp.o" in bpf


def test_installed_warrant_version_outside_the_checkout(installed: dict[str, Path]) -> None:
    proc = subprocess.run(["warrant", "--version"], cwd=installed["cwd"], env=_env(installed["venv"]),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert VERSION in proc.stdout


LOAD = """
import json, warrant
from warrant.datapath import build
from warrant.datapath.loader import Datapath
dp = Datapath.open(pin_root=None)
print(json.dumps({"object": dp.obj.path, "module": warrant.__file__,
                  "checkout": build.in_checkout(), "prog_fd": dp.xdp_fd}))
dp.close()
"""


@pytest.mark.root
def test_installed_package_loads_its_prebuilt_object_without_clang(installed: dict[str, Path]) -> None:  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("needs root: loading an eBPF program")
    proc = subprocess.run([str(installed["venv"] / "bin" / "python"), "-c", LOAD],
                          cwd=installed["cwd"], env=_env(installed["venv"]),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    site = str(installed["venv"])
    assert got["module"].startswith(site) and not got["checkout"]
    assert got["object"].startswith(site) and got["object"].endswith(
        "warrant/datapath/bpf/warrant_xdp.o"
    )
    assert got["prog_fd"] > 0


@pytest.mark.root
def test_installed_agent_attaches_in_a_namespace(installed: dict[str, Path], tmp_path: Path) -> None:  # fmt: skip
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("needs root, ip and nsenter: a network namespace")
    from warrant.core import keys
    from warrant.datapath.lab import Lab

    lab = Lab(time.time(), ports=(4433,), relays=0)
    (tmp_path / "receiver.sec").write_text(keys.encode_secret(lab.receiver_key) + "\n")
    (tmp_path / "policy.yaml").write_text(lab.policy_yaml())
    tag = os.getpid() % 100000
    ns, pin_root = f"whl{tag}", f"/sys/fs/bpf/warrant-wheel-{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "-n", ns, "link", "add", "wd0", "type", "veth", "peer", "name", "wd1"],
            check=True,
        )
        subprocess.run(["ip", "-n", ns, "link", "set", "wd0", "up"], check=True)
        cmd = [shutil.which("nsenter") or "nsenter", f"--net=/run/netns/{ns}",
               str(installed["venv"] / "bin" / "warrant"), "agent", "--iface", "wd0",
               "--policy", str(tmp_path / "policy.yaml"), "--key", str(tmp_path / "receiver.sec"),
               "--port", "4433", "--pin-root", pin_root, "--flows", "", "--duration", "0.5",
               "--detach"]  # fmt: skip
        proc = subprocess.run(cmd, cwd=installed["cwd"], env=_env(installed["venv"]),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        attached = next(x for x in lines if x.get("agent") == "attached")
        assert attached["mode"] == "xdp" and attached["pin_root"] == pin_root
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        from warrant.datapath.loader import Datapath

        Datapath.unpin(pin_root)
