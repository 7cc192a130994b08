"""Two network namespaces joined by a veth, with `warrant agent` in one of them.

Shared by test_datapath_agent.py and test_datapath_veth.py.  Each test module names
its own namespaces, veth ends and pin root (prefixes below), and every name carries
the test process's id, so runs side by side and the two modules never collide.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from warrant.core import keys


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def in_ns(ns: str, *cmd: str) -> list[str]:
    """`cmd` run inside network namespace `ns`."""
    return ["nsenter", f"--net=/run/netns/{ns}", *cmd]


def skip_unless_datapath(*, pyroute2: bool = False) -> None:
    """Skip the test, with the reason, unless root, iproute2 and nsenter (and pyroute2 if
    asked) are there; then require the eBPF datapath (`require_datapath`)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and eBPF (CI runs as root)")
    require_tools("ip", "nsenter")
    if pyroute2 and importlib.util.find_spec("pyroute2") is None:
        pytest.fail("as root pyroute2 must be installed (scripts/setup.sh, extra 'net')")
    require_datapath()


def require_tools(*tools: str) -> None:
    """As root (CI), a tool scripts/setup.sh installs must be there: missing, the test
    fails instead of skipping, so a broken setup cannot turn the suite green."""
    if missing := [t for t in tools if shutil.which(t) is None]:
        pytest.fail(f"as root these must be installed (scripts/setup.sh): {', '.join(missing)}")


def require_datapath() -> None:
    """Skip without root; as root, FAIL when the eBPF program cannot be built or loaded
    (no clang, a verifier rejection, no bpf()): CI runs as root, and a broken datapath
    must not turn into a green skip."""
    if os.geteuid() != 0:
        pytest.skip("needs root: loads eBPF programs (CI runs as root)")
    try:
        from warrant.datapath.loader import Datapath

        Datapath.open(pin_root=None).close()
    except Exception as exc:
        pytest.fail(f"as root the eBPF datapath must build and load: {exc}", pytrace=False)


@contextlib.contextmanager
def veth_topology(
    *, ns_prefix: str, veth_prefix: str, pin_prefix: str, a_addr: str, b_addr: str
) -> Iterator[dict[str, str]]:
    """Namespaces a and b (`{ns_prefix}a{pid}`, `{ns_prefix}b{pid}`) joined by veth ends
    va and vb with a_addr/24 and b_addr/24; removed afterwards with the pin root, also
    on failure."""
    tag = f"{os.getpid() % 100000}"
    a, b = f"{ns_prefix}a{tag}", f"{ns_prefix}b{tag}"
    va, vb = f"{veth_prefix}a{tag}", f"{veth_prefix}b{tag}"
    pin_root = f"/sys/fs/bpf/{pin_prefix}-{tag}"
    run("ip", "netns", "add", a)
    run("ip", "netns", "add", b)
    try:
        run("ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b)
        for ns, dev, addr in ((a, va, a_addr), (b, vb, b_addr)):
            run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        yield {"a": a, "b": b, "va": va, "vb": vb, "pin_root": pin_root}
    finally:
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)
        from warrant.datapath.loader import Datapath

        Datapath.unpin(pin_root)


def lab_options(lab: Any, tmp: Path) -> list[str]:
    """The receiver key and policy of a `warrant.datapath.lab.Lab`, written under `tmp`,
    as the agent's --key and --policy options."""
    key_file = tmp / "receiver.sec"
    key_file.write_text(keys.encode_secret(lab.receiver_key) + "\n")
    policy_file = tmp / "policy.yaml"
    policy_file.write_text(lab.policy_yaml())
    return ["--policy", str(policy_file), "--key", str(key_file)]


class AgentProc:
    """`warrant agent` on veth end vb in namespace b, its JSON lines collected."""

    def __init__(self, topo: dict[str, str], tmp: Path, host: str, port: int, *args: str) -> None:
        cmd = in_ns(topo["b"], sys.executable, "-m", "warrant.cli", "agent", "--iface", topo["vb"],
                    "--port", str(port), "--host", host, "--pin-root", topo["pin_root"], *args)  # fmt: skip
        self.err = tmp / "agent.err"
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        self.lines: list[dict[str, Any]] = []
        self._partial = b""

    def read(self, timeout: float) -> None:
        """Collect the agent's JSON lines for `timeout` seconds (raw fd reads: no buffering
        hides a line from select)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.05)
            if not r:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._partial += chunk
            *done, self._partial = self._partial.split(b"\n")
            self.lines.extend(json.loads(line) for line in done if line.strip())

    def wait_for(self, what: str, n: int = 1, timeout: float = 20.0) -> dict[str, Any]:
        """The n-th line the agent reported as `what`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = [rec for rec in self.lines if rec.get("agent") == what]
            if len(found) >= n:
                return found[n - 1]
            if self.proc.poll() is not None:
                break
            self.read(0.1)
        raise AssertionError(f"agent never reported {what!r} x{n}; stderr:\n"
                             f"{self.err.read_text()}\nlines: {self.lines}")  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
