"""`warrant demo`: the whole idea, end to end, on this machine.

A scripted scenario over real UDP on loopback (user-space mode): workloads of
domain A send governed traffic to a receiving node of domain B, some through
the partner relay; attackers try forgery, escalation, replay, wrong scope,
spliced hops and a reused IP address.  Every step states the verdict and
reason it expects; the demo shows each flow as it is decided and exits
non-zero if any verdict differs from the expectation.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import credential, flow
from .constants import Reason, Verdict
from .credential import Credential, Link, encode_body, signed_message
from .hop import Relay
from .receiver import Claim, Outcome, Receiver
from .revocation import RevocationList, RevocationStore
from .rights import Grant
from .scenario import RELAY_DOMAIN, SCOPE, World, pub
from .sender import Sender

HOST = "127.0.0.1"
ADDR = {
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

    @property
    def ok(self) -> bool:
        return self.verdict == self.expect


@dataclass
class DemoResult:
    steps: list[Step] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    handle_ns: list[int] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.ok for s in self.steps)


class _ReceiverProtocol(asyncio.DatagramProtocol):
    """Receiving node: every datagram goes through the sans-I/O receiver."""

    def __init__(
        self, receiver: Receiver, port: int, result: DemoResult, outcomes: asyncio.Queue[tuple[Outcome, str]]
    ) -> None:
        self.receiver, self.port, self.result, self.outcomes = receiver, port, result, outcomes
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.time()
        t0 = time.perf_counter_ns()
        out: Outcome = self.receiver.handle(data, addr, self.port, now)
        self.result.handle_ns.append(time.perf_counter_ns() - t0)
        if out.reply is not None and self.transport is not None:
            self.transport.sendto(out.reply, addr)
        self.result.flows.append(flow.record(out, addr, (HOST, self.port), now, node="vault"))
        self.result.outcomes.append(out)
        self.outcomes.put_nowait((out, addr[0]))


class _RelayProtocol(asyncio.DatagramProtocol):
    """Partner relay: appends its hop and forwards to the receiving node."""

    def __init__(self, relay: Relay, forward: Callable[[], tuple[str, int]]) -> None:
        self.relay, self.forward = relay, forward
        self.transport: asyncio.DatagramTransport | None = None
        self.tamper: Callable[[bytes], bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.relay.forward(data)
        if self.tamper is not None:
            out = self.tamper(out)
        assert self.transport is not None
        self.transport.sendto(out, self.forward())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _escalated(world: World) -> bytes:
    """web-2 (holds orders.read) signs a delegation to mallory that widens it to orders.*."""
    parent = world.web2_cred
    body = encode_body(None, None, pub(world.mallory), Grant(operations=("orders.*",)))
    sig = world.web2.sign(signed_message(parent.digests()[-1], body)).signature
    return Credential((*parent.links, Link.decode(body, sig, root=False))).encode()


class Scenario:
    def __init__(self, world: World, result: DemoResult, on_step: Callable[[Step], None]) -> None:
        self.w, self.result, self.on_step = world, result, on_step
        self.sockets: dict[str, socket.socket] = {}
        self.addr = dict(ADDR)

    def sock(self, actor: str) -> socket.socket:
        s = self.sockets.get(actor)
        if s is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((self.addr[actor], 0))
            s.setblocking(False)
            self.sockets[actor] = s
        return s

    def close(self, actor: str) -> None:
        s = self.sockets.pop(actor, None)
        if s is not None:
            s.close()

    def close_all(self) -> None:
        for actor in list(self.sockets):
            self.close(actor)

    async def send(
        self,
        outcomes: asyncio.Queue[tuple[Outcome, str]],
        actor: str,
        packet: bytes,
        to: tuple[str, int],
        what: str,
        expect: Reason,
    ) -> Outcome:
        self.sock(actor).sendto(packet, to)
        out, source = await asyncio.wait_for(outcomes.get(), timeout=5.0)
        step = Step(actor, what, expect, out.reason, out, source)
        self.result.steps.append(step)
        self.on_step(step)
        return out

    def answer_replies(self, actor: str, sender: Sender) -> list[bytes]:
        """Hand REJECT/COOKIE replies to this workload's sender; return what it sends back."""
        out, s = [], self.sockets.get(actor)
        while s is not None:
            try:
                data = s.recv(2048)
            except BlockingIOError:
                break
            answer = sender.handle(data, time.time())
            if answer is not None:
                out.append(answer)
        return out


async def run_user_space(console: Console, *, live: bool = True) -> DemoResult:
    orders_port, billing_port = free_port(), free_port()
    world = World(time.time(), orders_port=orders_port, billing_port=billing_port)
    receiver = Receiver(world.receiver, world.policy(), started_at=time.time() - 1)
    result = DemoResult()
    loop = asyncio.get_running_loop()

    outcomes: asyncio.Queue[tuple[Outcome, str]] = asyncio.Queue()
    orders_t, _ = await loop.create_datagram_endpoint(
        lambda: _ReceiverProtocol(receiver, orders_port, result, outcomes),
        local_addr=(HOST, orders_port),
    )
    billing_t, _ = await loop.create_datagram_endpoint(
        lambda: _ReceiverProtocol(receiver, billing_port, result, outcomes),
        local_addr=(HOST, billing_port),
    )
    relay_core = Relay(world.relay, RELAY_DOMAIN, pub(world.receiver), pub(world.receiver))
    relay_t, relay = await loop.create_datagram_endpoint(
        lambda: _RelayProtocol(relay_core, lambda: (HOST, orders_port)), local_addr=("127.0.0.20", 0)
    )
    relay_addr = relay_t.get_extra_info("sockname")
    orders_addr = (HOST, orders_port)

    table = Table(title="Warrant demo: flows at the receiving node (bank.prod / vault)", expand=True)
    for col in ("#", "from", "what", "kind", "verdict", "reason", "authority", "hops", ""):
        table.add_column(col, overflow="fold")

    def on_step(step: Step) -> None:
        assert step.outcome is not None
        out, auth = step.outcome, step.outcome.authority
        hops = ",".join(domain for domain, _ in auth.hops) if auth else ""
        who = f"{auth.scope} {auth.operation} holder={auth.holder}" if auth else "-"
        admitted = out.verdict == Verdict.ADMIT
        colour = "green" if admitted else "red"
        table.add_row(
            str(len(result.steps)),
            f"{step.actor} {step.source}",
            step.what,
            out.kind,
            f"[{colour}]{'FORWARDED' if admitted else 'DROPPED'}[/{colour}]",
            out.reason.name,
            who,
            hops or "-",
            "[green]✓[/green]" if step.ok else f"[red]✗ expected {step.expect.name}[/red]",
        )

    sc = Scenario(world, result, on_step)
    ctx = Live(table, console=console, refresh_per_second=8) if live else None
    try:
        if ctx is not None:
            ctx.start()
        await _script(sc, world, receiver, outcomes, relay, relay_addr, orders_addr, billing_port)
    finally:
        if ctx is not None:
            ctx.stop()
        sc.close_all()
        for t in (orders_t, billing_t, relay_t):
            t.close()
    if not live:
        console.print(table)
    _summary(console, result, receiver)
    return result


async def _script(
    sc: Scenario,
    w: World,
    receiver: Receiver,
    outcomes: asyncio.Queue[tuple[Outcome, str]],
    relay: _RelayProtocol,
    relay_addr: tuple[str, int],
    orders_addr: tuple[str, int],
    billing_port: int,
) -> None:
    now = time.time
    recv_pub, relay_pub = pub(w.receiver), pub(w.relay)
    op_port = orders_addr[1]

    # 1. web-1 writes orders through the partner relay: first packet carries payload.
    web1 = Sender(w.web1, w.web1_cred.encode(), recv_pub, Claim("orders.write", "orders", op_port),
                  next_hop_public=relay_pub)  # fmt: skip
    await sc.send(outcomes, "web-1", web1.send(b"order #1001", now()), relay_addr,
                  "opens session via partner relay, 0-RTT payload", Reason.OK)  # fmt: skip
    captured_relayed: list[bytes] = []

    def capture(packet: bytes) -> bytes:
        captured_relayed.append(packet)
        return packet

    relay.tamper = capture
    for i in range(3):
        await sc.send(outcomes, "web-1", web1.send(f"order #{1002 + i}".encode(), now()), relay_addr,
                      "DATA via relay", Reason.OK)  # fmt: skip
    relay.tamper = None

    # 2. web-2 reads orders directly.
    web2 = Sender(w.web2, w.web2_cred.encode(), recv_pub, Claim("orders.read", "orders", op_port))
    await sc.send(outcomes, "web-2", web2.send(b"GET /orders", now()), orders_addr,
                  "opens session directly", Reason.OK)  # fmt: skip
    web2_data = web2.send(b"GET /orders/1001", now())
    await sc.send(outcomes, "web-2", web2_data, orders_addr, "DATA", Reason.OK)

    # 3. Attacks.
    await sc.send(outcomes, "mallory", web2_data, orders_addr, "replays web-2's packet", Reason.REPLAY)
    forged = credential.issue(w.mallory_anchor, SCOPE, pub(w.mallory), w.team_cred.links[0].grant)
    m = Sender(w.mallory, forged.encode(), recv_pub, Claim("orders.write", "orders", op_port))
    await sc.send(outcomes, "mallory", m.send(b"DROP TABLE", now()), orders_addr,
                  "forged anchor claiming acme.prod", Reason.UNKNOWN_ANCHOR)  # fmt: skip
    m = Sender(w.mallory, _escalated(w), recv_pub, Claim("orders.write", "orders", op_port))
    await sc.send(outcomes, "mallory", m.send(b"widen me", now()), orders_addr,
                  "escalated delegation from web-2", Reason.ESCALATION)  # fmt: skip
    other = credential.issue(w.mallory_anchor, "mallory.corp", pub(w.mallory), w.team_cred.links[0].grant)
    m = Sender(w.mallory, other.encode(), recv_pub, Claim("orders.write", "orders", op_port))
    await sc.send(outcomes, "mallory", m.send(b"hi", now()), orders_addr,
                  "credential of an untrusted scope", Reason.WRONG_SCOPE)  # fmt: skip
    b1 = Sender(w.batch1, w.batch1_cred.encode(), recv_pub, Claim("billing.read", "billing", billing_port))
    await sc.send(outcomes, "batch-1", b1.send(b"report", now()), (orders_addr[0], billing_port),
                  "expired credential", Reason.EXPIRED)  # fmt: skip
    direct = Sender(w.web1, w.web1_cred.encode(), recv_pub, Claim("orders.write", "orders", op_port))
    await sc.send(outcomes, "web-1", direct.send(b"skip the relay", now()), orders_addr,
                  "bypasses the required relay", Reason.REQUIRED_DOMAIN_MISSING)  # fmt: skip
    if len(captured_relayed) >= 2:
        a, b = captured_relayed[0], captured_relayed[1]
        spliced = b[:36] + a[36:48] + b[48:]  # hop record of packet a into packet b
        await sc.send(outcomes, "mallory", spliced, orders_addr, "splices a hop record", Reason.HOP_CHAIN_BROKEN)
    await sc.send(outcomes, "web-2", web2.seal(b"to the wrong port"), (orders_addr[0], billing_port),
                  "session used on another port", Reason.PORT_MISMATCH)  # fmt: skip

    # 4. Churn: web-2 leaves; mallory gets its IP address; web-2 comes back elsewhere.
    sc.close("web-2")
    sc.addr["mallory-as-web-2"] = sc.addr["web-2"]
    stolen = bytearray(web2.seal(b"I am web-2 now"))
    stolen[20] ^= 1  # mallory has web-2's address but not its session key
    await sc.send(outcomes, "mallory-as-web-2", bytes(stolen), orders_addr,
                  "reused IP of web-2, no key", Reason.BAD_MAC)  # fmt: skip
    thief = Sender(w.mallory, w.web2_cred.encode(), recv_pub, Claim("orders.read", "orders", op_port))
    await sc.send(outcomes, "mallory-as-web-2", thief.send(b"hi", now()), orders_addr,
                  "reused IP + stolen credential", Reason.BAD_HOLDER_PROOF)  # fmt: skip
    await sc.send(outcomes, "web-2 (moved)", web2.seal(b"GET /orders/1002"), orders_addr,
                  "web-2 on a new IP, same session", Reason.OK)  # fmt: skip

    # 5. Revocation travels offline: web-2's link is revoked; its session ends.
    rl = RevocationList.sign(w.anchor, SCOPE, 1, link_ids=[w.web2_cred.link_ids()[-1]])
    store = RevocationStore()
    store.load(rl.encode(), receiver.policy.trust)
    receiver.revoke(store, now())
    await sc.send(outcomes, "web-2 (moved)", web2.seal(b"GET /orders/1003"), orders_addr,
                  "after revocation: session ended", Reason.UNKNOWN_SESSION)  # fmt: skip
    await asyncio.sleep(0.05)
    for reopen in sc.answer_replies("web-2 (moved)", web2):  # the REJECT asks for the credential
        await sc.send(outcomes, "web-2 (moved)", reopen, orders_addr,
                      "re-opens with revoked credential", Reason.REVOKED)  # fmt: skip
    await sc.send(outcomes, "web-1", web1.send(b"order #1005", now()), relay_addr,
                  "web-1 unaffected", Reason.OK)  # fmt: skip


def _summary(console: Console, result: DemoResult, receiver: Receiver) -> None:
    verdicts = Counter(
        ("FORWARDED" if o.verdict == Verdict.ADMIT else "DROPPED", o.reason.name)
        for o in result.outcomes
    )
    t = Table(title="Summary: verdicts by reason")
    t.add_column("verdict")
    t.add_column("reason")
    t.add_column("packets", justify="right")
    for (v, r), n in sorted(verdicts.items()):
        t.add_row(v, r, str(n))
    console.print(t)
    ns = sorted(result.handle_ns)
    data_ns = sorted(
        n for n, o in zip(result.handle_ns, result.outcomes, strict=True) if o.kind == "DATA"
    )
    median = data_ns[len(data_ns) // 2] / 1000 if data_ns else 0.0
    console.print(
        f"user-space receiver: {len(ns)} packets judged; median DATA decision {median:.1f} µs "
        f"(includes Python overhead; the kernel datapath is measured by bench/datapath.py)"
    )
    ok = sum(s.ok for s in result.steps)
    colour = "green" if result.passed else "red"
    console.print(f"[{colour}]{ok}/{len(result.steps)} steps gave the expected verdict[/{colour}]")
