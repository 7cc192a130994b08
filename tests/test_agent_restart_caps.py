"""An agent restart under exactly the DaemonSet's capabilities keeps enforcing and its sessions.

The capabilities are read from deploy/kubernetes/daemonset.yaml and the agent is started
with them as its bounding set (`setpriv`, as a container runtime does for
`capabilities: {drop: [ALL], add: [...]}` with runAsUser 0): no CAP_SYS_ADMIN.  In a
network namespace: the agent attaches, a session opens and its DATA is admitted in the
kernel; the agent is killed (SIGKILL: a crash, nothing cleaned up) with its XDP program
still attached; a second agent under the same capabilities adopts the attached program
(before this fix it crash-looped: reading the attached program's name needs
CAP_SYS_ADMIN), reopens the pinned maps, and the session's next DATA is admitted by the
kernel with no new INIT.  /healthz answers 200 with every check ok, and 503 naming the
program once the program is detached from under it.

A capability of the DaemonSet this sandbox itself lacks cannot be granted here; the test
says which (CAP_SYS_RESOURCE is missing in the CI sandbox: it lifts RLIMIT_MEMLOCK on
kernels before 5.11, and this kernel accounts BPF memory to the memory cgroup instead).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netns_helpers import (
    AgentProc,
    lab_options,
    require_tools,
    run,
    skip_unless_datapath,
    veth_topology,
)
from warrant.core.constants import Reason, Verdict

pytestmark = pytest.mark.root

PORT = 4433
A_ADDR, B_ADDR = "10.79.0.1", "10.79.0.2"
SPORT = 40200
DAEMONSET = Path(__file__).parent.parent / "deploy" / "kubernetes" / "daemonset.yaml"
CAP_NUMBERS = {"NET_ADMIN": 12, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39}


def daemonset_caps() -> list[str]:
    ds = next(d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d)
    agent = ds["spec"]["template"]["spec"]["containers"][0]
    caps = agent["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"]
    return list(caps["add"])


def grantable(caps: list[str]) -> tuple[list[str], list[str]]:
    """(caps this process can pass on, caps it lacks itself)."""
    with open("/proc/self/status") as f:
        bnd = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    have = [c for c in caps if bnd >> CAP_NUMBERS[c] & 1]
    return have, [c for c in caps if c not in have]


class CappedAgent(AgentProc):
    """AgentProc, started in namespace b with only `caps` (bounding, permitted, effective)."""

    def __init__(self, topo: dict[str, str], tmp: Path, caps: list[str], *args: str) -> None:
        setpriv = shutil.which("setpriv") or "setpriv"
        bounding = ",".join(["-all", *(f"+{c.lower()}" for c in caps)])
        cmd = ["nsenter", f"--net=/run/netns/{topo['b']}", setpriv, f"--bounding-set={bounding}",
               "--inh-caps=-all", "--", sys.executable, "-m", "warrant.cli", "agent",
               "--iface", topo["vb"], "--port", str(PORT), "--host", B_ADDR,
               "--pin-root", topo["pin_root"], "--flows", "", "--health-port", "0", *args]  # fmt: skip
        self.err = tmp / f"agent-{time.monotonic_ns()}.err"
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        self.lines: list[dict[str, Any]] = []
        self._partial = b""

    def capabilities(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    skip_unless_datapath(pyroute2=True)
    require_tools("setpriv")  # util-linux: part of every Debian system
    with veth_topology(ns_prefix="wr", veth_prefix="wrv", pin_prefix="warrant-restart-test",
                       a_addr=A_ADDR, b_addr=B_ADDR) as names:  # fmt: skip
        yield names


def healthz(ns: str, url: str) -> tuple[int, dict[str, Any]]:
    from warrant.demo.topology import entered

    with entered(ns):
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def admitted(pin_root: str) -> int:
    from warrant.datapath.loader import MapView

    view = MapView.pinned(pin_root)
    try:
        return view.counters().get((Verdict.ADMIT, Reason.OK), (0, 0))[0]
    finally:
        view.close()


def wait_admitted(pin_root: str, n: int, timeout: float = 5.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end and admitted(pin_root) < n:
        time.sleep(0.05)
    return admitted(pin_root)


def test_restart_under_the_daemonset_capabilities_keeps_sessions(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from warrant.datapath import libbpf
    from warrant.datapath.lab import Lab
    from warrant.demo.topology import entered

    caps, missing = grantable(daemonset_caps())
    assert "SYS_ADMIN" not in caps
    if missing:
        print(f"not grantable in this sandbox (the agent runs without): {missing}")
    expected = sum(1 << CAP_NUMBERS[c] for c in caps)
    lab = Lab(time.time(), ports=(PORT,), relays=0)
    options = lab_options(lab, tmp_path)
    with entered(topo["a"]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((A_ADDR, SPORT))
    dst = (B_ADDR, PORT)
    first = CappedAgent(topo, tmp_path, caps, *options)
    try:
        first.wait_for("attached")
        assert first.capabilities() == expected  # exactly the DaemonSet's, nothing more
        sender = lab.sender()
        sock.sendto(sender.open(b"hello", time.time()), dst)
        first.wait_for("installed")
        base = admitted(topo["pin_root"])
        sock.sendto(sender.seal(b"one"), dst)
        assert wait_admitted(topo["pin_root"], base + 1) == base + 1
        url = str(first.wait_for("health")["url"])
        code, body = healthz(topo["b"], url)
        assert code == 200, body
    finally:
        first.proc.send_signal(signal.SIGKILL)  # a crash: nothing detached, nothing cleaned
        first.proc.wait(10)
    with entered(topo["b"]):
        ifindex = socket.if_nametoindex(topo["vb"])
        assert libbpf.xdp_query_id(ifindex) != 0  # the crashed agent's program still runs

    second = CappedAgent(topo, tmp_path, caps, *options)
    try:
        attached = second.wait_for("attached")
        assert attached["reused_sessions"] == 1
        assert second.capabilities() == expected
        before = admitted(topo["pin_root"])
        sock.sendto(sender.seal(b"two"), dst)  # the same session: no INIT in between
        assert wait_admitted(topo["pin_root"], before + 1) == before + 1
        second.read(0.5)
        assert not [x for x in second.lines if x.get("agent") == "installed"]  # no new opening

        url = str(second.wait_for("health")["url"])
        end = time.monotonic() + 10
        code, body = healthz(topo["b"], url)
        while code != 200 and time.monotonic() < end:  # the loop check needs one round
            time.sleep(0.2)
            code, body = healthz(topo["b"], url)
        assert code == 200, body
        assert set(body["checks"]) == {"program", "maps", "secrets", "policy", "loop"}
        assert all(c["ok"] for c in body["checks"].values())

        # the probe reflects the datapath: without the program it fails, naming why
        run("ip", "-n", topo["b"], "link", "set", "dev", topo["vb"], "xdp", "off")
        code, body = healthz(topo["b"], url)
        assert code == 503 and body["checks"]["program"]["ok"] is False
        assert body["checks"]["maps"]["ok"] is True
        # and without the session-secrets pin (what a restart resumes sessions from)
        os.unlink(f"{topo['pin_root']}/warrant_session_secrets")
        code, body = healthz(topo["b"], url)
        assert code == 503 and not body["checks"]["secrets"]["ok"], body
        assert "warrant_session_secrets is not pinned" in body["checks"]["secrets"]["detail"]
    finally:
        second.stop()
        sock.close()
        err = second.err.read_text()
        assert "Traceback" not in err, err
    assert os.path.exists(f"{topo['pin_root']}/warrant_sessions")


def test_a_foreign_xdp_program_is_refused_without_cap_sys_admin(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Fail closed: under the DaemonSet's capabilities the agent cannot read a foreign
    program's name, and a program it did not pin is never replaced."""
    from warrant.datapath import libbpf
    from warrant.datapath.build import build
    from warrant.datapath.lab import Lab
    from warrant.demo.topology import entered

    caps, _ = grantable(daemonset_caps())
    lab = Lab(time.time(), ports=(PORT,), relays=0)
    obj = libbpf.BpfObject(str(build("baseline_pass")))  # stands in for Cilium's program
    obj.load()
    try:
        with entered(topo["b"]):
            ifindex = socket.if_nametoindex(topo["vb"])
            libbpf.xdp_attach(ifindex, obj.program_fd("baseline_pass"))
            foreign = libbpf.xdp_query_id(ifindex)
        agent = CappedAgent(topo, tmp_path, caps, *lab_options(lab, tmp_path))
        try:
            assert agent.proc.wait(30) != 0
        finally:
            agent.stop()
        err = agent.err.read_text()
        assert "name unreadable without CAP_SYS_ADMIN" in err and "refusing to replace" in err
        with entered(topo["b"]):
            assert libbpf.xdp_query_id(ifindex) == foreign  # still the other owner's
    finally:
        obj.close()
