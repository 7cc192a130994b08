"""`warrant demo`: the whole idea, end to end, on this machine.

A scripted scenario: workloads of domain A send governed traffic to a
receiving node of domain B, some through the partner relay; attackers try
forgery, escalation, replay, wrong scope, spliced hops and a reused IP
address.  Every step states the verdict and reason it expects; the demo shows
each flow as it is decided and exits non-zero if any verdict differs.

Two modes run the same script:

* user space (`--user-space`, the default): real UDP on loopback, the
  receiving node is the sans-I/O `Receiver` behind a socket, the relay is the
  project's relay shell.  No root needed.
* kernel (`--kernel`, root): the lab's network namespaces; the receiving node
  enforces in XDP on both of its interfaces with the agent beside it; DATA
  verdicts are taken in the kernel (drops never reach user space, they come
  back as ring-buffer events) and session openings in the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..core import credential
from ..core.constants import MAX_DATAGRAM, Reason, Verdict
from ..core.credential import Credential, Link, encode_body, signed_message
from ..core.hop import Relay
from ..core.receiver import Claim, Outcome, Receiver
from ..core.revocation import RevocationList, RevocationStore
from ..core.rights import Grant
from ..core.sender import Sender
from ..integration import flow
from ..shells.relay import RelayServer
from . import topology
from .scenario import BILLING_PORT, ORDERS_PORT, RELAY_DOMAIN, SCOPE, World, pub

Address = tuple[str, int]
DEMO_PIN_ROOT = "/sys/fs/bpf/warrant-demo"
LOOPBACK_ADDR = {
    "web-1": "127.0.0.11",
    "web-2": "127.0.0.12",
    "web-2 (moved)": "127.0.0.14",
    "batch-1": "127.0.0.13",
    "mallory": "127.0.0.66",
}


@dataclass
class Step:
    actor: str
    what: str
    expect: Reason
    verdict: Reason | None = None
    outcome: Outcome | None = None
    source: str = ""
    where: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == self.expect


@dataclass
class DemoResult:
    mode: str
    steps: list[Step] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    handle_ns: list[int] = field(default_factory=list)
    kernel_cost_ns: float | None = None
    kernel_counters: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)


Judged = tuple[Outcome, Address, Address, str]  # outcome, source, destination, where decided


@dataclass
class Net:
    """Where the scenario's parties are."""

    relay: Address  # where workloads send to go through the partner relay
    orders: Address  # the orders service, directly
    billing: Address
    source: Callable[[str, bool], str]  # (actor, via relay?) -> the actor's address
    ns_a: str | None = None  # namespace of domain A's workloads (None: this one)


class Scenario:
    def __init__(
        self,
        net: Net,
        result: DemoResult,
        judged: asyncio.Queue[Judged],
        on_step: Callable[[Step], None],
    ) -> None:
        self.net, self.result, self.judged, self.on_step = net, result, judged, on_step
        self.sockets: dict[tuple[str, bool], socket.socket] = {}
        self.alias: dict[str, str] = {}

    def sock(self, actor: str, via_relay: bool) -> socket.socket:
        key = (actor, via_relay)
        s = self.sockets.get(key)
        if s is None:
            with topology.entered(self.net.ns_a):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((self.net.source(self.alias.get(actor, actor), via_relay), 0))
            s.setblocking(False)
            self.sockets[key] = s
        return s

    def close(self, actor: str) -> None:
        for key in [k for k in self.sockets if k[0] == actor]:
            self.sockets.pop(key).close()

    def close_all(self) -> None:
        for key in list(self.sockets):
            self.sockets.pop(key).close()

    async def send(
        self, actor: str, packet: bytes, to: Address, what: str, expect: Reason
    ) -> Outcome:
        self.sock(actor, to == self.net.relay).sendto(packet, to)
        out, source, _, where = await asyncio.wait_for(self.judged.get(), timeout=5.0)
        step = Step(actor, what, expect, out.reason, out, source[0], where)
        self.result.steps.append(step)
        self.on_step(step)
        return out

    async def replies(self, actor: str, sender: Sender, wait: float = 0.3) -> list[bytes]:
        """Hand REJECT/COOKIE replies to this workload's sender; return what it sends back."""
        out: list[bytes] = []
        deadline = time.monotonic() + wait
        while not out and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            for (name, _), s in list(self.sockets.items()):
                while name == actor:
                    try:
                        data = s.recv(MAX_DATAGRAM)
                    except BlockingIOError:
                        break
                    answer = sender.handle(data, time.time())
                    if answer is not None:
                        out.append(answer)
        return out


def _escalated(world: World) -> bytes:
    """web-2 (holds orders.read) signs a delegation to mallory that widens it to orders.*."""
    parent = world.web2_cred
    body = encode_body(None, None, pub(world.mallory), Grant(operations=("orders.*",)))
    sig = world.web2.sign(signed_message(parent.digests()[-1], body)).signature
    return Credential((*parent.links, Link.decode(body, sig, root=False))).encode()


async def script(sc: Scenario, w: World, revoke: Callable[[RevocationStore], None]) -> None:
    """The scenario.  `revoke` installs a revocation store at the receiving node."""
    net, now = sc.net, time.time
    recv_pub, relay_pub = pub(w.receiver), pub(w.relay)
    op_port = net.orders[1]

    # 1. web-1 writes orders through the partner relay: its first packet carries payload.
    web1 = Sender(w.web1, w.web1_cred.encode(), recv_pub, Claim("orders.write", "orders", op_port),
                  next_hop_public=relay_pub)  # fmt: skip
    await sc.send("web-1", web1.send(b"order #1001", now()), net.relay,
                  "opens session via partner relay, 0-RTT payload", Reason.OK)  # fmt: skip
    for i in range(3):
        await sc.send("web-1", web1.send(f"order #{1002 + i}".encode(), now()), net.relay,
                      "DATA via relay", Reason.OK)  # fmt: skip

    # 2. web-2 reads orders directly.
    web2 = Sender(w.web2, w.web2_cred.encode(), recv_pub, Claim("orders.read", "orders", op_port))
    await sc.send("web-2", web2.send(b"GET /orders", now()), net.orders,
                  "opens session directly", Reason.OK)  # fmt: skip
    web2_data = web2.send(b"GET /orders/1001", now())
    await sc.send("web-2", web2_data, net.orders, "DATA", Reason.OK)

    # 3. Attacks.
    await sc.send("mallory", web2_data, net.orders, "replays web-2's packet", Reason.REPLAY)
    forged = credential.issue(w.mallory_anchor, SCOPE, pub(w.mallory), w.team_cred.links[0].grant)
    m = Sender(w.mallory, forged.encode(), recv_pub, Claim("orders.write", "orders", op_port))
    await sc.send("mallory", m.send(b"DROP TABLE", now()), net.orders,
                  "forged anchor claiming acme.prod", Reason.UNKNOWN_ANCHOR)  # fmt: skip
    m = Sender(w.mallory, _escalated(w), recv_pub, Claim("orders.write", "orders", op_port))
    await sc.send("mallory", m.send(b"widen me", now()), net.orders,
                  "escalated delegation from web-2", Reason.ESCALATION)  # fmt: skip
    other = credential.issue(
        w.mallory_anchor, "mallory.corp", pub(w.mallory), w.team_cred.links[0].grant
    )
    m = Sender(w.mallory, other.encode(), recv_pub, Claim("orders.write", "orders", op_port))
    await sc.send("mallory", m.send(b"hi", now()), net.orders,
                  "credential of an untrusted scope", Reason.WRONG_SCOPE)  # fmt: skip
    b1 = Sender(
        w.batch1, w.batch1_cred.encode(), recv_pub, Claim("billing.read", "billing", net.billing[1])
    )
    await sc.send("batch-1", b1.send(b"report", now()), net.billing,
                  "expired credential", Reason.EXPIRED)  # fmt: skip
    direct = Sender(
        w.web1, w.web1_cred.encode(), recv_pub, Claim("orders.write", "orders", op_port)
    )
    await sc.send("web-1", direct.send(b"skip the relay", now()), net.orders,
                  "bypasses the required relay", Reason.REQUIRED_DOMAIN_MISSING)  # fmt: skip
    # Hop records are deterministic: the same relay key yields what the real relay appends.
    relay = Relay(w.relay, RELAY_DOMAIN, recv_pub, recv_pub)
    a, b = relay.forward(web1.seal(b"a")), relay.forward(web1.seal(b"b"))
    spliced = b[:36] + a[36:48] + b[48:]  # the hop record of packet a inside packet b
    await sc.send("mallory", spliced, net.orders, "splices a hop record", Reason.HOP_CHAIN_BROKEN)
    await sc.send("web-2", web2.seal(b"to the wrong port"), net.billing,
                  "session used on another port", Reason.PORT_MISMATCH)  # fmt: skip

    # 4. Churn: web-2 leaves; mallory gets its IP address; web-2 comes back elsewhere.
    sc.close("web-2")
    sc.alias["mallory-as-web-2"] = "web-2"
    stolen = bytearray(web2.seal(b"I am web-2 now"))
    stolen[20] ^= 1  # mallory has web-2's address but not its session key
    await sc.send("mallory-as-web-2", bytes(stolen), net.orders,
                  "reused IP of web-2, no key", Reason.BAD_MAC)  # fmt: skip
    thief = Sender(
        w.mallory, w.web2_cred.encode(), recv_pub, Claim("orders.read", "orders", op_port)
    )
    await sc.send("mallory-as-web-2", thief.send(b"hi", now()), net.orders,
                  "reused IP + stolen credential", Reason.BAD_HOLDER_PROOF)  # fmt: skip
    await sc.send("web-2 (moved)", web2.seal(b"GET /orders/1002"), net.orders,
                  "web-2 on a new IP, same session", Reason.OK)  # fmt: skip

    # 5. Revocation travels offline: web-2's link is revoked; its session ends.
    rl = RevocationList.sign(w.anchor, SCOPE, 1, link_ids=[w.web2_cred.link_ids()[-1]])
    store = RevocationStore()
    store.load(rl.encode(), w.trust())
    revoke(store)
    await sc.send("web-2 (moved)", web2.seal(b"GET /orders/1003"), net.orders,
                  "after revocation: session ended", Reason.UNKNOWN_SESSION)  # fmt: skip
    reopen = await sc.replies("web-2 (moved)", web2)  # the REJECT asks for the credential again
    if not reopen:  # no REJECT came back: the application retries on its own
        reopen = [web2.open(None, now())]
    await sc.send("web-2 (moved)", reopen[0], net.orders,
                  "re-opens with revoked credential", Reason.REVOKED)  # fmt: skip
    await sc.send("web-1", web1.send(b"order #1005", now()), net.relay,
                  "web-1 unaffected", Reason.OK)  # fmt: skip


# ---- presentation -------------------------------------------------------------------------
def flow_table(result: DemoResult) -> tuple[Table, Callable[[Step], None]]:
    table = Table(title=f"Warrant demo ({result.mode}): flows at the receiving node", expand=True)
    for col in (
        "#",
        "from",
        "what",
        "kind",
        "decided",
        "verdict",
        "reason",
        "authority",
        "hops",
        "",
    ):
        table.add_column(col, overflow="fold")

    def on_step(step: Step) -> None:
        assert step.outcome is not None
        out, auth = step.outcome, step.outcome.authority
        hops = ",".join(domain for domain, _ in auth.hops) if auth else ""
        who = f"{auth.scope} {auth.operation} holder={auth.holder}" if auth else "-"
        admitted = out.verdict == Verdict.ADMIT
        colour = "green" if admitted else "red"
        table.add_row(
            str(len(result.steps)), f"{step.actor} {step.source}", step.what, out.kind, step.where,
            f"[{colour}]{'FORWARDED' if admitted else 'DROPPED'}[/{colour}]", out.reason.name,
            who, hops or "-",
            "[green]✓[/green]" if step.ok else f"[red]✗ expected {step.expect.name}[/red]",
        )  # fmt: skip

    return table, on_step


def summary(console: Console, result: DemoResult) -> None:
    verdicts = Counter(
        ("FORWARDED" if o.verdict == Verdict.ADMIT else "DROPPED", o.reason.name)
        for o in result.outcomes
    )
    t = Table(title="Summary: verdicts by reason")
    for col, justify in (("verdict", "left"), ("reason", "left"), ("packets", "right")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for (v, r), n in sorted(verdicts.items()):
        t.add_row(v, r, str(n))
    console.print(t)
    if result.kernel_cost_ns is not None:
        console.print(
            f"kernel (XDP): {sum(result.kernel_counters.values())} frames judged, "
            f"{result.kernel_cost_ns:.0f} ns per frame on average (kernel BPF run-time stats)"
        )
    data_ns = sorted(
        n for n, o in zip(result.handle_ns, result.outcomes, strict=False) if o.kind == "DATA"
    )
    if data_ns and result.mode == "user space":
        console.print(
            f"user-space receiver: median DATA decision {data_ns[len(data_ns) // 2] / 1000:.1f} µs"
        )
    ok = sum(s.ok for s in result.steps)
    colour = "green" if result.passed else "red"
    console.print(f"[{colour}]{ok}/{len(result.steps)} steps gave the expected verdict[/{colour}]")


async def _run(
    result: DemoResult, console: Console, live: bool, body: Callable[..., Any]
) -> DemoResult:
    table, on_step = flow_table(result)
    ctx = Live(table, console=console, refresh_per_second=8) if live else contextlib.nullcontext()
    with ctx:
        await body(on_step)
    if not live:
        console.print(table)
    summary(console, result)
    return result


def _record(result: DemoResult, judged: asyncio.Queue[Judged], item: Judged, now: float) -> None:
    out, source, destination, _ = item
    result.flows.append(flow.record(out, source, destination, now, node="vault"))
    result.outcomes.append(out)
    judged.put_nowait(item)


# ---- user-space mode ----------------------------------------------------------------------
class _ReceiverProtocol(asyncio.DatagramProtocol):
    """Receiving node in user space: every datagram goes through the sans-I/O receiver."""

    def __init__(
        self, receiver: Receiver, port: int, result: DemoResult, judged: asyncio.Queue[Judged]
    ) -> None:
        self.receiver, self.port, self.result, self.judged = receiver, port, result, judged
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        now = time.time()
        t0 = time.perf_counter_ns()
        out = self.receiver.handle(data, addr, self.port, now)
        self.result.handle_ns.append(time.perf_counter_ns() - t0)
        if out.reply is not None and self.transport is not None:
            self.transport.sendto(out.reply, addr)
        _record(self.result, self.judged, (out, addr, ("127.0.0.1", self.port), "user space"), now)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_user_space(console: Console, *, live: bool = True) -> DemoResult:
    orders_port, billing_port = _free_port(), _free_port()
    world = World(time.time(), orders_port=orders_port, billing_port=billing_port)
    receiver = Receiver(world.receiver, world.policy(), started_at=time.time() - 1)
    result = DemoResult("user space")
    judged: asyncio.Queue[Judged] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    transports = []
    for port in (orders_port, billing_port):
        protocol = _ReceiverProtocol(receiver, port, result, judged)
        t, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=("127.0.0.1", port))  # noqa: B023 - awaited at once
        transports.append(t)
    relay = await RelayServer.start(
        Relay(world.relay, RELAY_DOMAIN, pub(world.receiver), pub(world.receiver)),
        ("127.0.0.20", 0),
        ("127.0.0.1", orders_port),
    )
    net = Net(
        relay=relay.listen_address[:2],
        orders=("127.0.0.1", orders_port),
        billing=("127.0.0.1", billing_port),
        source=lambda actor, _via: LOOPBACK_ADDR[actor],
    )

    def revoke(store: RevocationStore) -> None:
        receiver.revoke(store, time.time())

    async def body(on_step: Callable[[Step], None]) -> None:
        sc = Scenario(net, result, judged, on_step)
        try:
            await script(sc, world, revoke)
        finally:
            sc.close_all()
            relay.close()
            for t in transports:
                t.close()

    return await _run(result, console, live, body)


# ---- kernel mode ----------------------------------------------------------------------------
async def run_kernel(console: Console, *, live: bool = True) -> DemoResult:
    """The same script in the lab: XDP on the receiving node, agent beside it (needs root)."""
    from ..datapath.agent import Agent
    from ..datapath.loader import Datapath

    topology.require_root()
    console.print(
        "setting up the lab (namespaces warrant-a, warrant-p, warrant-b) and loading XDP…"
    )
    topology.up()
    result = DemoResult("kernel")
    judged: asyncio.Queue[Judged] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    world = World(time.time(), orders_port=ORDERS_PORT, billing_port=BILLING_PORT)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the agent's JSON log is not wanted here
    agent: Agent | None = None
    relay: RelayServer | None = None
    ifindex: dict[str, int] = {}
    try:
        Datapath.unpin(DEMO_PIN_ROOT)  # never inherit sessions from an earlier run
        with topology.entered(topology.NS_B):
            ifindex = {name: socket.if_nametoindex(name) for name in topology.ENFORCED_INTERFACES}
            agent = Agent(world.receiver, world.policy(), ifindex["b-a"], [ORDERS_PORT, BILLING_PORT],
                          out=devnull, pin_root=DEMO_PIN_ROOT)  # fmt: skip
            agent.enforce(ifindex["b-p"])  # DATA arriving there is the kernel's too
            agent.dp.set_config(admit_sample=0)  # admitted DATA is reported by the agent itself
        agent.receiver.started_at = time.time() - 1
        with topology.entered(topology.NS_P):
            lsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            lsock.bind((topology.RELAY_IN, 7000))
            fsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            fsock.connect((topology.NODE_FROM_RELAY, ORDERS_PORT))
        relay = await RelayServer.start(
            Relay(world.relay, RELAY_DOMAIN, pub(world.receiver), pub(world.receiver)),
            (topology.RELAY_IN, 7000), (topology.NODE_FROM_RELAY, ORDERS_PORT),
            listen_sock=lsock, forward_sock=fsock,
        )  # fmt: skip
        _serve_agent(agent, loop, result, judged)
        events = loop.create_task(_kernel_events(agent, result, judged))
        net = Net(
            relay=(topology.RELAY_IN, 7000),
            orders=(topology.NODE_DIRECT, ORDERS_PORT),
            billing=(topology.NODE_DIRECT, BILLING_PORT),
            source=lambda actor, via: topology.workload_addresses(actor)[0 if via else 1],
            ns_a=topology.NS_A,
        )

        def revoke(store: RevocationStore) -> None:
            assert agent is not None
            for s in agent.receiver.revoke(store, time.time()):
                agent.dp.remove_session(s.session_id)

        async def body(on_step: Callable[[Step], None]) -> None:
            sc = Scenario(net, result, judged, on_step)
            with _bpf_stats():
                try:
                    await script(sc, world, revoke)
                finally:
                    sc.close_all()
                    events.cancel()
                    assert agent is not None
                    result.kernel_counters = {
                        f"{v.name}/{r.name}": n for (v, r), (n, _) in agent.dp.counters().items()
                    }
                    result.kernel_cost_ns = _xdp_cost_ns()

        return await _run(result, console, live, body)
    finally:
        if relay is not None:
            relay.close()
        if agent is not None:
            for s in agent.socks:
                loop.remove_reader(s.fileno())
            with topology.entered(topology.NS_B):
                agent.close()
                for idx in ifindex.values():
                    Datapath.detach_xdp(idx)
        Datapath.unpin(DEMO_PIN_ROOT)
        topology.down()
        devnull.close()


def _serve_agent(
    agent: Any, loop: asyncio.AbstractEventLoop, result: DemoResult, judged: asyncio.Queue[Judged]
) -> None:
    """Datagrams the kernel let through (INITs, admitted DATA) go to the agent."""
    for sock in agent.socks:
        sock.setblocking(False)

        def ready(sock: socket.socket = sock) -> None:
            while True:
                try:
                    data, source, ifindex = agent.receive(sock)
                except BlockingIOError:
                    return
                out = agent.handle(sock, data, source, ifindex)
                dest = (topology.NODE_DIRECT, sock.getsockname()[1])
                _record(result, judged, (out, source, dest, "agent"), time.time())

        loop.add_reader(sock.fileno(), ready)


async def _kernel_events(agent: Any, result: DemoResult, judged: asyncio.Queue[Judged]) -> None:
    """Kernel drops arrive as ring-buffer events; they become outcomes like any other."""
    while True:
        for ev in agent.dp.events():
            if ev.verdict != Verdict.DROP:
                continue
            session = agent.receiver.sessions.get(ev.session_id)
            out = Outcome(
                Verdict.DROP, ev.reason, ev.kind_name, ev.length, "dropped in the kernel (XDP)",
                authority=session.authority if session is not None else None,
                session_id=ev.session_id, seq=ev.seq,
            )  # fmt: skip
            source = (ev.source_ip, ev.sport)
            dest = (ev.destination_ip, ev.dport)
            _record(result, judged, (out, source, dest, "kernel"), time.time())
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def _bpf_stats() -> Iterator[None]:
    """Turn on the kernel's BPF run-time statistics for the demo, then restore them."""
    path = "/proc/sys/kernel/bpf_stats_enabled"
    try:
        with open(path) as f:
            before = f.read().strip()
        with open(path, "w") as f:
            f.write("1")
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError), open(path, "w") as f:
            f.write(before)


def _xdp_cost_ns() -> float | None:
    """Average run time per invocation of the attached XDP program (bpftool, BPF stats)."""
    try:
        out = subprocess.run(
            ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=10
        )
        progs = json.loads(out.stdout or "[]")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    for p in progs:
        if p.get("name") == "warrant_xdp" and p.get("run_cnt"):
            return float(p["run_time_ns"]) / float(p["run_cnt"])
    return None
