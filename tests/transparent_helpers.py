"""Namespace topologies and real-program measurements for transparent mode (issue 11).

Shared by tests/test_transparent_baselines.py and bench/transparent.py.  A `Topology`
has the shape of transparent mode's pair (docs/transparent.md, and of Cilium's pods
on two nodes): a client workload namespace attached by a veth to node A, node A and
node B joined by an uplink veth, and the server workload attached by a veth to node B;
the nodes route.  Every name carries the process id, so runs side by side never collide,
and everything started or created is undone when the `topology()` block exits (also on
failure, and at interpreter exit as a last resort).

The baselines coexist in one topology, each with its own pair of workload subnets, so
they interleave without reconfiguration; each is a `Case`:

  plain           10.201.x  routed over the uplink, the offloads the kernel gave the veths
  plain_offloads  10.204.x  same, with transparent mode's offloads and MTU (the workload
                            veths get `TRANSPARENT_OFFLOADS` while it runs; route MTU 1436)
  vxlan           10.202.x  node to node over VXLAN on the uplink (Cilium's tunnel: VNI 42,
                            UDP 8472), route MTU 1450 as Cilium sets for tunnel mode
  vxlan_offloads  10.205.x  the same VXLAN with transparent mode's offloads and MTU
  wireguard_go    10.203.x  node to node over wireguard-go (user-space WireGuard, Debian's
                            package), route MTU 1420 (WireGuard's default)

Client workload x.1.2, server workload x.2.2.  Each tunnel case names the device (in
node A) whose packet counter must move when traffic goes through it (`tunnel_packets`),
so a measurement can assert its path.

Run as a script, this file is the TCP request/response and connect-time program that
runs inside the namespaces (`rr-serve`, `rr`, `connect`): Python's sockets only, so it
starts the same in any namespace.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
# Programs the baselines run; scripts/setup.sh installs them (Debian packages).
TOOLS = ("ip", "ss", "ethtool", "iperf3", "curl", "wireguard-go", "wg")
# What transparent mode sets on a workload's veth (docs/transparent.md: TSO, GSO and
# tx checksum offload off, so every wire packet gets its own Warrant header; MTU 1436).
TRANSPARENT_OFFLOADS = {"tso": "off", "gso": "off", "tx": "off"}
TRANSPARENT_MTU = 1436
_FEATURE = {"tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
            "gro": "generic-receive-offload", "tx": "tx-checksumming"}  # fmt: skip

HTTP_PORT, IPERF_PORT, RR_PORT = 8080, 5201, 5300
UPLINK = ("192.168.250.1", "192.168.250.2")
VXLAN_NODES = ("10.210.0.1", "10.210.0.2")
WG_NODES = ("10.211.0.1", "10.211.0.2")
# TCP's initial retransmission timeout (RFC 6298): a connect slower than this lost a SYN.
INITIAL_RTO_S = 1.0

_pending: list[Callable[[], None]] = []


def _run_pending() -> None:
    while _pending:
        with contextlib.suppress(Exception):
            _pending.pop()()


atexit.register(_run_pending)


def missing_tools() -> list[str]:
    """The programs of `TOOLS` not on PATH (plus /dev/net/tun for wireguard-go)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun")
    return missing


@dataclass
class Case:
    """One way of carrying the client workload's traffic to the server workload."""

    name: str
    client_addr: str
    server_addr: str  # the address the client dials
    offloads: dict[str, str] = field(default_factory=dict)  # set on the workload veths
    device: str | None = None  # tunnel device in node A the traffic must go through
    device_ns: str | None = None


@dataclass
class Topology:
    client: str  # client workload namespace
    node_a: str
    node_b: str
    server: str  # server workload namespace
    tag: str
    workdir: Path
    # (namespace, device) of both ends of both workload veths
    workload_veths: list[tuple[str, str]] = field(default_factory=list)
    uplink: tuple[str, str] = ("", "")  # uplink device names in node A and node B
    defaults: dict[str, str] = field(default_factory=dict)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    # -- running things in the namespaces -------------------------------------------
    def sh(self, ns: str, *cmd: str, timeout: float = 30.0, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """`cmd` run to completion inside namespace `ns`; raises with its stderr on failure."""
        proc = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True,
                              text=True, timeout=timeout, input=input)  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {ns}: exit {proc.returncode}: "
                               f"{proc.stderr.strip() or proc.stdout.strip()}")  # fmt: skip
        return proc

    def spawn(
        self, ns: str, *cmd: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """A long-running `cmd` in `ns`, stopped at teardown (`ip netns exec` execs into the
        program, so the pid is the program's); its output goes to a log in `workdir`."""
        log = open(self.workdir / f"{Path(cmd[0]).name}-{len(self._undo)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})  # fmt: skip

        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
            log.close()

        self.on_teardown(stop)
        return proc

    def on_teardown(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)
        _pending.append(undo)

    def teardown(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            with contextlib.suppress(ValueError):
                _pending.remove(undo)
            with contextlib.suppress(Exception):
                undo()

    # -- offloads and counters --------------------------------------------------------
    def offloads(self, ns: str, dev: str) -> dict[str, str]:
        """The `_FEATURE` offloads of `dev` as ethtool reports them ("on"/"off")."""
        out = self.sh(ns, "ethtool", "-k", dev).stdout
        found: dict[str, str] = {}
        for short, long in _FEATURE.items():
            for line in out.splitlines():
                if line.startswith(long + ":"):
                    found[short] = line.split(":", 1)[1].split()[0]
        return found

    def set_offloads(self, wanted: dict[str, str]) -> None:
        """Every workload veth end set to `wanted`, the rest to the kernel's defaults; read
        back and checked (ethtool may refuse a combination without failing)."""
        settings = {**self.defaults, **wanted}
        for ns, dev in self.workload_veths:
            if self.offloads(ns, dev) == settings:
                continue
            self.sh(ns, "ethtool", "-K", dev, *[x for k, v in settings.items() for x in (k, v)])
            got = self.offloads(ns, dev)
            if got != settings:
                raise RuntimeError(f"{dev} offloads {got}, asked {settings}")

    def link_stats(self, ns: str, dev: str) -> dict[str, int]:
        """tx/rx packets and bytes of `dev` in `ns` (a GSO super-packet counts once on a
        veth, so with offloads on only bytes say how much went through)."""
        out = subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        stats = json.loads(out)[0]["stats64"]
        return {"tx": int(stats["tx"]["packets"]), "rx": int(stats["rx"]["packets"]),
                "tx_bytes": int(stats["tx"]["bytes"]), "rx_bytes": int(stats["rx"]["bytes"]),
                "bytes": int(stats["tx"]["bytes"]) + int(stats["rx"]["bytes"])}  # fmt: skip

    def tunnel_packets(self, case: Case, unit: str = "tx") -> int:
        """Packets (`unit` "tx") node A sent through the case's tunnel device, or bytes
        ("tx_bytes"; "bytes": both directions), 0 without one."""
        if case.device is None or case.device_ns is None:
            return 0
        return self.link_stats(case.device_ns, case.device)[unit]

    def uplink_packets(self, unit: str = "tx") -> int:
        """Packets or bytes node A sent on the uplink (every case's traffic crosses it)."""
        return self.link_stats(self.node_a, self.uplink[0])[unit]


@contextlib.contextmanager
def topology(prefix: str) -> Iterator[Topology]:
    """Namespaces `{prefix}{c,a,b,s}{pid}` (client workload, node A, node B, server
    workload) wired as the module docstring says, no case set up yet; all undone on exit."""
    tag = f"{os.getpid() % 100000}"
    nss = [f"{prefix}{role}{tag}" for role in "cabs"]
    workdir = Path(tempfile.mkdtemp(prefix=f"warrant-{prefix}-"))
    topo = Topology(nss[0], nss[1], nss[2], nss[3], tag=tag, workdir=workdir)
    topo.on_teardown(lambda: shutil.rmtree(workdir, ignore_errors=True))
    try:
        for ns in nss:
            _ip("netns", "add", ns)
            topo.on_teardown(functools.partial(_ip, "netns", "del", ns))
            _ip("-n", ns, "link", "set", "lo", "up")
        for node in (topo.node_a, topo.node_b):
            topo.sh(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # workload veths: the workload's end and the host-side end (Cilium's lxc device)
        wc, lc, ws, ls = (f"{n}{tag}" for n in ("wc", "lc", "ws", "ls"))
        _veth(topo.client, wc, topo.node_a, lc)
        _veth(topo.server, ws, topo.node_b, ls)
        topo.workload_veths = [
            (topo.client, wc),
            (topo.node_a, lc),
            (topo.server, ws),
            (topo.node_b, ls),
        ]
        topo.uplink = (f"ua{tag}", f"ub{tag}")
        _veth(topo.node_a, topo.uplink[0], topo.node_b, topo.uplink[1])
        _ip("-n", topo.node_a, "addr", "add", f"{UPLINK[0]}/30", "dev", topo.uplink[0])
        _ip("-n", topo.node_b, "addr", "add", f"{UPLINK[1]}/30", "dev", topo.uplink[1])
        topo.defaults = topo.offloads(topo.client, wc)
        yield topo
    finally:
        topo.teardown()


def _veth(ns1: str, dev1: str, ns2: str, dev2: str) -> None:
    _ip("link", "add", dev1, "netns", ns1, "type", "veth", "peer", "name", dev2, "netns", ns2)
    _ip("-n", ns1, "link", "set", dev1, "up")
    _ip("-n", ns2, "link", "set", dev2, "up")


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _workload_subnets(
    topo: Topology, net: int, mtu: int, a_via: str, b_via: str
) -> tuple[str, str]:
    """Client 10.{net}.1.2/24 and server 10.{net}.2.2/24 on the workload veths, gateways
    .1 on the host-side ends; the workloads route to each other at `mtu` (so TCP's MSS
    fits the case's path), node A reaches the server's subnet via `a_via` and node B the
    client's via `b_via`."""
    client, server = f"10.{net}.1.2", f"10.{net}.2.2"
    (_, wc), (_, lc), (_, ws), (_, ls) = topo.workload_veths
    for ns, dev, addr in ((topo.client, wc, client), (topo.node_a, lc, f"10.{net}.1.1"),
                          (topo.server, ws, server), (topo.node_b, ls, f"10.{net}.2.1")):  # fmt: skip
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
    _ip(
        "-n",
        topo.client,
        "route",
        "add",
        f"10.{net}.2.0/24",
        "via",
        f"10.{net}.1.1",
        "src",
        client,
        "mtu",
        str(mtu),
    )
    _ip(
        "-n",
        topo.server,
        "route",
        "add",
        f"10.{net}.1.0/24",
        "via",
        f"10.{net}.2.1",
        "src",
        server,
        "mtu",
        str(mtu),
    )
    _ip("-n", topo.node_a, "route", "add", f"10.{net}.2.0/24", "via", a_via)
    _ip("-n", topo.node_b, "route", "add", f"10.{net}.1.0/24", "via", b_via)
    return client, server


# -- baselines -------------------------------------------------------------------------
def plain(topo: Topology) -> Case:
    """Routed over the uplink, the veths as the kernel made them."""
    client, server = _workload_subnets(topo, 201, 1500, UPLINK[1], UPLINK[0])
    return Case("plain", client, server, dict(topo.defaults))


def plain_offloads(topo: Topology) -> Case:
    """Routed over the uplink with transparent mode's offloads and MTU."""
    client, server = _workload_subnets(topo, 204, TRANSPARENT_MTU, UPLINK[1], UPLINK[0])
    return Case("plain_offloads", client, server, dict(TRANSPARENT_OFFLOADS))


def vxlan(topo: Topology) -> Case:
    """Node A to node B over VXLAN (VNI 42, UDP 8472, Cilium's tunnel port) on the uplink."""
    dev = _vxlan_device(topo)
    client, server = _workload_subnets(topo, 202, 1450, VXLAN_NODES[1], VXLAN_NODES[0])
    return Case("vxlan", client, server, dict(topo.defaults), dev, topo.node_a)


def vxlan_offloads(topo: Topology) -> Case:
    """The same VXLAN with transparent mode's offloads and MTU on the workload veths: the
    kernel's tunnel at the segmentation transparent mode has (one wire packet per MSS)."""
    dev = _vxlan_device(topo)
    client, server = _workload_subnets(topo, 205, TRANSPARENT_MTU, VXLAN_NODES[1], VXLAN_NODES[0])
    return Case(
        "vxlan_offloads",
        client,
        server,
        dict(TRANSPARENT_OFFLOADS),
        dev,
        topo.node_a,
    )


def _vxlan_device(topo: Topology) -> str:
    """The VXLAN device of nodes A and B, made on first use."""
    dev = f"vx{topo.tag}"
    if _link_exists(topo.node_a, dev):
        return dev
    ends = ((topo.node_a, topo.uplink[0], UPLINK[0], UPLINK[1], VXLAN_NODES[0]),
            (topo.node_b, topo.uplink[1], UPLINK[1], UPLINK[0], VXLAN_NODES[1]))  # fmt: skip
    for ns, under, local, remote, inner in ends:
        _ip("-n", ns, "link", "add", dev, "type", "vxlan", "id", "42", "local", local,
            "remote", remote, "dstport", "8472", "dev", under)  # fmt: skip
        _ip("-n", ns, "addr", "add", f"{inner}/24", "dev", dev)
        _ip("-n", ns, "link", "set", dev, "up")
    return dev


def wireguard_go(topo: Topology) -> Case:
    """Node A to node B over wireguard-go on the uplink.

    Device names are unique per process on the whole host, not only per namespace:
    wireguard-go's control socket is /var/run/wireguard/<name>.sock, outside any netns."""
    devs = (f"wga{topo.tag}", f"wgb{topo.tag}")
    nodes = (topo.node_a, topo.node_b)
    workload_nets = ("10.203.1.0/24", "10.203.2.0/24")
    secrets = [subprocess.run(["wg", "genkey"], check=True, capture_output=True, text=True).stdout
               for _ in nodes]  # fmt: skip
    publics = [subprocess.run(["wg", "pubkey"], check=True, capture_output=True, text=True,
                              input=s).stdout.strip() for s in secrets]  # fmt: skip
    for ns, dev in zip(nodes, devs, strict=True):
        proc = topo.spawn(ns, "wireguard-go", dev, env={"WG_PROCESS_FOREGROUND": "1"})
        _wait(functools.partial(_link_exists, ns, dev), 5.0, f"wireguard-go made no {dev}", proc)
    for i, (ns, dev) in enumerate(zip(nodes, devs, strict=True)):
        peer = 1 - i
        topo.sh(ns, "wg", "set", dev, "private-key", "/dev/stdin", "listen-port", "51820",
                "peer", publics[peer], "allowed-ips", f"{WG_NODES[peer]}/32,{workload_nets[peer]}",
                "endpoint", f"{UPLINK[peer]}:51820", input=secrets[i])  # fmt: skip
        _ip("-n", ns, "addr", "add", f"{WG_NODES[i]}/24", "dev", dev)
        _ip("-n", ns, "link", "set", dev, "up")
    client, server = _workload_subnets(topo, 203, 1420, WG_NODES[1], WG_NODES[0])
    return Case("wireguard_go", client, server, dict(topo.defaults), devs[0], topo.node_a)


def _link_exists(ns: str, dev: str) -> bool:
    return (
        subprocess.run(["ip", "-n", ns, "link", "show", "dev", dev], capture_output=True).returncode
        == 0
    )


def _wait(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > end or (proc is not None and proc.poll() is not None):
            raise RuntimeError(what + ("" if proc is None else f" (exit {proc.poll()})"))
        time.sleep(0.05)


# -- servers (in the server namespace) --------------------------------------------------
def listening(topo: Topology, ns: str, port: int) -> bool:
    return bool(topo.sh(ns, "ss", "-Hltn", f"sport = :{port}").stdout.strip())


def start_servers(topo: Topology, ns: str) -> Path:
    """`python3 -m http.server`, `iperf3 -s` and the request/response server in namespace
    `ns` (the server workload of `topo` or of another pair), on every address, stopped
    with `topo`; returns the directory http.server serves."""
    root = topo.workdir / f"www-{ns}"
    root.mkdir(exist_ok=True)
    topo.spawn(ns, "python3", "-m", "http.server", str(HTTP_PORT), "--bind", "0.0.0.0",
               "--directory", str(root))  # fmt: skip
    topo.spawn(ns, "iperf3", "-s", "-p", str(IPERF_PORT))
    topo.spawn(ns, sys.executable, str(SCRIPT), "rr-serve", str(RR_PORT))
    for port in (HTTP_PORT, IPERF_PORT, RR_PORT):
        _wait(
            functools.partial(listening, topo, ns, port), 10.0, f"nothing listens on {port} in {ns}"
        )
    return root


# -- clients (run in the client workload namespace `ns`) ----------------------------------
def _in(ns: str, *cmd: str, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {ns}: exit {proc.returncode}: "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")  # fmt: skip
    return proc


def curl(ns: str, addr: str, path: str) -> bytes:
    """The body curl fetches from http.server at `addr`."""
    proc = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "--fail",
                           "--max-time", "5", f"http://{addr}:{HTTP_PORT}/{path}"],
                          capture_output=True, timeout=15)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"curl {addr}: exit {proc.returncode}: {proc.stderr.decode().strip()}")
    return proc.stdout


def _iperf3(ns: str, addr: str, seconds: int, *extra: str) -> dict[str, Any]:
    # whole seconds: iperf3 3.12 reads -t as an integer, and "-t 0.5" is 0 = run forever
    if not isinstance(seconds, int) or seconds < 1:
        raise ValueError(f"iperf3 duration must be whole seconds >= 1, not {seconds!r}")
    out = subprocess.run(["ip", "netns", "exec", ns, "iperf3", "-c", addr, "-p", str(IPERF_PORT), "-J",
                          "-t", str(seconds), *extra], capture_output=True, text=True, timeout=seconds + 20)  # fmt: skip
    try:
        result: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"iperf3 -c {addr}: exit {out.returncode}: {out.stderr.strip()}"
        ) from None
    if "error" in result:
        raise RuntimeError(f"iperf3 -c {addr}: {result['error']}")
    return result


def iperf3_tcp(ns: str, addr: str, seconds: int = 1) -> dict[str, float]:
    """TCP goodput the server received (bits/s) and the sender's retransmitted segments."""
    end = _iperf3(ns, addr, seconds)["end"]
    return {"bits_per_second": float(end["sum_received"]["bits_per_second"]),
            "retransmits": float(end["sum_sent"].get("retransmits", 0))}  # fmt: skip


def iperf3_udp(ns: str, addr: str, seconds: int = 1, bitrate: str = "200M") -> dict[str, float]:
    """UDP at `bitrate`: what the server received (bits/s), packets and loss."""
    end = _iperf3(ns, addr, seconds, "-u", "-b", bitrate, "-l", "1200")["end"]
    summary = end["sum"]
    return {"bits_per_second": float(summary["bits_per_second"]), "packets": float(summary["packets"]),
            "lost_percent": float(summary["lost_percent"])}  # fmt: skip


def tcp_rr(ns: str, addr: str, rounds: int) -> float:
    """1-byte request/response round trips per second over one TCP connection."""
    out = _in(ns, sys.executable, str(SCRIPT), "rr", addr, str(RR_PORT), str(rounds), timeout=60)
    return float(json.loads(out.stdout)["per_second"])


def connect_times(ns: str, addr: str, count: int) -> dict[str, Any]:
    """`count` fresh TCP connects: each one's time (s) and the client namespace's SYN
    retransmissions over them (TcpExt TCPSynRetrans)."""
    out = _in(
        ns, sys.executable, str(SCRIPT), "connect", addr, str(RR_PORT), str(count), timeout=60
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- the in-namespace programs -----------------------------------------------------------
def _netstat(group: str, name: str) -> int:
    """A counter of /proc/net/netstat (per network namespace): header line, value line."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for head, vals in zip(lines[::2], lines[1::2], strict=True):
        if head.startswith(group + ":"):
            return int(dict(zip(head.split()[1:], vals.split()[1:], strict=True))[name])
    raise KeyError(f"{group} {name}")


def _serve(port: int) -> None:
    srv = socket.create_server(("0.0.0.0", port), backlog=128)

    def echo(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def _rr(host: str, port: int, rounds: int) -> dict[str, float]:
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(min(100, rounds)):  # warm-up: ARP, tunnel handshakes, sessions
            s.sendall(b"x")
            s.recv(1)
        start = time.perf_counter()
        for _ in range(rounds):
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise RuntimeError("request/response: short reply")
        elapsed = time.perf_counter() - start
    return {"rounds": rounds, "seconds": elapsed, "per_second": rounds / elapsed}


def _connect(host: str, port: int, count: int) -> dict[str, Any]:
    counts = [_netstat("TcpExt", "TCPSynRetrans")]
    times = []
    for _ in range(count):
        start = time.perf_counter()
        s = socket.create_connection((host, port), timeout=10)
        times.append(time.perf_counter() - start)
        s.close()
        counts.append(_netstat("TcpExt", "TCPSynRetrans"))
    return {"seconds": times, "first_s": times[0], "median_s": statistics.median(times),
            "first_syn_retransmits": counts[1] - counts[0],
            "syn_retransmits": counts[-1] - counts[0]}  # fmt: skip


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "rr-serve":
        _serve(int(args[0]))
    elif command == "rr":
        print(json.dumps(_rr(args[0], int(args[1]), int(args[2]))))
    elif command == "connect":
        print(json.dumps(_connect(args[0], int(args[1]), int(args[2]))))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
