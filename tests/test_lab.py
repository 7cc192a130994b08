"""`warrant lab`: the namespace topology comes up, carries UDP only where it should, and goes away."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from warrant.demo import topology

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 (network namespaces); CI runs as root",
)


def _warrant(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warrant.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_lab_refuses_without_root_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(topology.LabError, match="--user-space"):
        topology.up()


@pytest.mark.root
@needs_root
def test_lab_up_status_udp_down() -> None:
    try:
        assert _warrant("lab", "up").returncode == 0
        assert _warrant("lab", "up").returncode == 0, "up must be idempotent"
        assert sorted(topology.existing()) == sorted(topology.NAMESPACES)
        status = _warrant("lab", "status")
        assert status.returncode == 0 and "10.77.3.2" in status.stdout
        recv = (
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('10.77.3.2', 7777)); s.settimeout(5); d, a = s.recvfrom(100); print(a[0], d.decode())"
        )
        server = subprocess.Popen(["ip", "netns", "exec", topology.NS_B, sys.executable, "-c", recv],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        send = (
            "import socket, time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('10.77.3.12', 0));\nfor _ in range(20): s.sendto(b'hi', ('10.77.3.2', 7777)); time.sleep(0.05)"
        )
        subprocess.run(
            ["ip", "netns", "exec", topology.NS_A, sys.executable, "-c", send],
            timeout=30,
            check=True,
        )
        out, _ = server.communicate(timeout=10)
        assert out.split() == ["10.77.3.12", "hi"]
    finally:
        down = _warrant("lab", "down")
        assert down.returncode == 0
    assert topology.existing() == []
    assert _warrant("lab", "status").returncode == 1
