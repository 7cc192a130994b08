"""The agent image: Containerfile and scripts/build-image.sh.

In CI: `build-image.sh --check` (no build) holds the Containerfile to what the script puts in
the build context, the base it makes and the image the DaemonSet runs, and fails when one
of them drifts.  The full build (debootstrap of Debian 12, wheels, podman or buildah) takes
minutes and needs the network to Debian's mirror, so it runs only when asked:
WARRANT_IMAGE_BUILD=1 (as root, with debootstrap and podman or buildah installed); it builds
from a copy of the tree and checks, in the image's file system, `warrant --version` and that
the packaged prebuilt program loads with the DaemonSet's capabilities (no clang in the image).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"localhost/warrant:{VERSION}"


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(root / "scripts" / "build-image.sh"), "--check"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_containerfile_matches_the_build_script() -> None:
    proc = check(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"check: ok ({IMAGE} from localhost/warrant-base:bookworm)" in proc.stdout


def _mini_tree(dest: Path) -> None:
    for rel in ("Containerfile", "pyproject.toml", "setup.py", "scripts/build-image.sh",
                "bpf/warrant_xdp.c", "deploy/kubernetes/daemonset.yaml"):  # fmt: skip
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("Containerfile", "COPY wheels/ /tmp/wheels/", "COPY dist/ /tmp/wheels/"),
         "the context holds wheels/ only"),
        (("Containerfile", 'ENTRYPOINT ["warrant", "agent"]', 'ENTRYPOINT ["warrant"]'),
         "ENTRYPOINT is not warrant agent"),
        (("Containerfile", "--no-index --find-links /tmp/wheels", "--find-links /tmp/wheels"),
         "install from the copied wheels only"),
        (("deploy/kubernetes/daemonset.yaml", f"image: {IMAGE}", "image: ghcr.io/x/warrant:1"),
         f"the DaemonSet does not run {IMAGE}"),
    ],
)  # fmt: skip
def test_check_fails_when_they_drift(tmp_path: Path, edit: tuple[str, str, str], message: str) -> None:  # fmt: skip
    _mini_tree(tmp_path)
    rel, old, new = edit
    text = (tmp_path / rel).read_text()
    assert old in text
    (tmp_path / rel).write_text(text.replace(old, new))
    proc = check(tmp_path)
    assert proc.returncode != 0 and message in proc.stdout, proc.stdout


def _tool() -> str | None:
    return shutil.which("podman") or shutil.which("buildah")


@pytest.mark.slow
@pytest.mark.root
def test_image_builds_and_loads_the_program(tmp_path: Path) -> None:
    if os.environ.get("WARRANT_IMAGE_BUILD") != "1":
        pytest.skip("a full image build takes minutes and Debian's mirror: WARRANT_IMAGE_BUILD=1")
    if os.geteuid() != 0 or shutil.which("debootstrap") is None or _tool() is None:
        pytest.skip("needs root, debootstrap and podman or buildah")
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns(".git", "build", "__pycache__", "*.egg-info", ".*_cache")
    shutil.copytree(REPO, tree, ignore=ignore)
    proc = subprocess.run(["bash", "scripts/build-image.sh"], cwd=tree, capture_output=True,
                          text=True, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tree / "build" / "image" / f"warrant-{VERSION}.oci.tar").stat().st_size > 10_000_000
    if shutil.which("podman") is None:
        return  # buildah builds; mounting the image's file system below uses podman
    # The image's own file system, entered with chroot: this sandbox's crun cannot start
    # containers (it may not raise RLIMIT_NOFILE without CAP_SYS_RESOURCE, and refuses
    # hybrid cgroups), so the runtime's part (namespaces, cgroups) is not exercised here.
    root = subprocess.run(["podman", "image", "mount", IMAGE], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    try:
        load = ("from warrant.datapath.loader import Datapath; dp = Datapath.open(pin_root=None); "
                "print(dp.obj.path)")  # fmt: skip
        script = (f'mount --bind /proc "{root}/proc" && mount --bind /sys "{root}/sys" && '
                  f'chroot "{root}" /usr/bin/env -i PATH=/opt/warrant/bin:/usr/bin:/bin '
                  "warrant --version && "
                  f'chroot "{root}" /usr/bin/setpriv --bounding-set=-all,+bpf,+perfmon,+net_admin '
                  f"--inh-caps=-all -- /opt/warrant/bin/python3 -c '{load}'")  # fmt: skip
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        subprocess.run(["podman", "image", "unmount", IMAGE], capture_output=True)
    assert out.returncode == 0, out.stderr
    version, obj = out.stdout.split()[-3:-1], out.stdout.split()[-1]
    assert version == ["warrant", VERSION]
    assert obj == "/opt/warrant/lib/python3.11/site-packages/warrant/datapath/bpf/warrant_xdp.o"
