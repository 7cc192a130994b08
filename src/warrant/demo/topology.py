"""The multi-domain lab: network namespaces for domain A, the partner relay and domain B.

    warrant-a (domain A: workloads)  --a-p/p-a 10.77.1.0/24--  warrant-p (partner.net relay)
    warrant-p                         --p-b/b-p 10.77.2.0/24--  warrant-b (receiving node)
    warrant-a                         --a-b/b-a 10.77.3.0/24--  warrant-b   (direct path)

Each workload of domain A has its own addresses (10.77.1.x towards the relay,
10.77.3.x towards domain B), so a departed workload's address can be reused by
another.  The receiving node enforces on b-p and b-a.  Built with iproute2;
`up` is idempotent (an existing lab is removed first), a failure half-way
removes what was made, and `down` removes everything it can find.
Only addresses inside these namespaces are ever used.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

PREFIX = "warrant-"
NS_A, NS_P, NS_B = f"{PREFIX}a", f"{PREFIX}p", f"{PREFIX}b"
NAMESPACES = (NS_A, NS_P, NS_B)


@dataclass(frozen=True)
class Link:
    ns1: str
    if1: str
    addr1: str
    ns2: str
    if2: str
    addr2: str


LINKS = (
    Link(NS_A, "a-p", "10.77.1.1/24", NS_P, "p-a", "10.77.1.2/24"),
    Link(NS_P, "p-b", "10.77.2.1/24", NS_B, "b-p", "10.77.2.2/24"),
    Link(NS_A, "a-b", "10.77.3.1/24", NS_B, "b-a", "10.77.3.2/24"),
)
RELAY_IN = "10.77.1.2"  # relay's address facing domain A
RELAY_OUT = "10.77.2.1"
NODE_FROM_RELAY = "10.77.2.2"  # receiving node's addresses
NODE_DIRECT = "10.77.3.2"
ENFORCED_INTERFACES = ("b-p", "b-a")
WORKLOAD_HOSTS = {"web-1": 11, "web-2": 12, "web-2 (moved)": 14, "batch-1": 13, "mallory": 66}


def workload_addresses(name: str) -> tuple[str, str]:
    """(address towards the relay, address towards domain B) of a workload."""
    host = WORKLOAD_HOSTS[name]
    return f"10.77.1.{host}", f"10.77.3.{host}"


class LabError(OSError):
    """The lab cannot be built or inspected; the CLI prints it as one line."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (network namespaces, XDP); "
            "run `warrant demo --user-space` for the same scenario on loopback"
        )


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(("-n", ns) if ns else ()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()}")
    return proc


def existing() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n in NAMESPACES]


def down() -> list[str]:
    """Remove the lab's namespaces (their veths go with them).  Returns what was removed."""
    require_root()
    removed = []
    for ns in existing():
        _ip("netns", "del", ns, check=False)
        removed.append(ns)
    return removed


def up() -> None:
    require_root()
    down()
    try:
        for ns in NAMESPACES:
            _ip("netns", "add", ns)
            _ip("link", "set", "lo", "up", ns=ns)
        for link in LINKS:
            _ip("link", "add", link.if1, "netns", link.ns1, "type", "veth",
                "peer", "name", link.if2, "netns", link.ns2)  # fmt: skip
            for ns, ifname, addr in (
                (link.ns1, link.if1, link.addr1),
                (link.ns2, link.if2, link.addr2),
            ):
                _ip("addr", "add", addr, "dev", ifname, ns=ns)
                _ip("link", "set", ifname, "up", ns=ns)
        for name in WORKLOAD_HOSTS:
            to_relay, to_b = workload_addresses(name)
            _ip("addr", "add", f"{to_relay}/24", "dev", "a-p", ns=NS_A, check=False)
            _ip("addr", "add", f"{to_b}/24", "dev", "a-b", ns=NS_A, check=False)
    except BaseException:
        down()
        raise


def status() -> dict[str, list[str]]:
    """Namespace -> its interfaces with addresses (empty when the lab is down)."""
    out: dict[str, list[str]] = {}
    for ns in existing():
        lines = _ip("-brief", "addr", ns=ns, check=False).stdout.splitlines()
        out[ns] = [" ".join(line.split()) for line in lines if not line.startswith("lo ")]
    return out


@contextlib.contextmanager
def entered(ns: str | None) -> Iterator[None]:
    """Run the block in namespace `ns` (this thread only); sockets made there stay there.

    None means "stay where we are"."""
    if ns is None:
        yield
        return
    from pyroute2 import netns

    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()
