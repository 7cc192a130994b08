"""Churn experiment: does authority in the packet go stale when workloads churn?

Domain A runs a set of pods.  Pods are destroyed and recreated at a fixed rate;
the IPAM hands a freed address to the next new pod (LIFO, as a small pool
does), so addresses are recycled quickly.  Some pods are authorised to write
orders on the receiver, the others are not.  Every live pod sends traffic.

The same packets are judged twice, in one run, on one simulated clock:

* **Warrant**: the real sans-I/O `Receiver` (real Ed25519, X25519, SipHash,
  AEAD).  Each pod has its own key and credential; a recreated pod opens a
  session with its first packet.
* **IP identity** (modelled on Cilium): source IP -> identity through an
  ipcache that a control loop updates after a propagation delay drawn
  uniformly from [0, --delay-max] seconds (users report 0 to 10 s), in order
  per address; identity -> allow through the policy.  An address with no
  entry is dropped (as `world`).

Ground truth is the sending pod's role.  A *false allow* admits a packet of an
unauthorised pod; a *false drop* refuses one of an authorised pod.

This is a discrete-event simulation: time is simulated, the Warrant verdicts
come from the real receiver code, the IP-identity enforcer is a model (its
map and delay are what the text above says, nothing more).

    python3 bench/churn.py            # 120 s simulated, plot to out/churn.{png,svg}
    python3 bench/churn.py --quick    # 30 s simulated
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing

from warrant.core import credential, keys
from warrant.core.admission import Policy
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.constants import Verdict
from warrant.core.receiver import Claim, Receiver
from warrant.core.rights import Destination, Grant
from warrant.core.sender import Sender

PORT = 8443
SCOPE = "acme.prod"


@dataclass
class Pod:
    name: str
    ip: str
    authorised: bool
    sender: Sender


@dataclass
class Counts:
    false_allows: int = 0
    false_drops: int = 0
    packets: int = 0
    per_second: dict[str, dict[int, int]] = field(
        default_factory=lambda: {"false_allows": {}, "false_drops": {}}
    )

    def wrong(self, t: float, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.per_second[kind][int(t)] = self.per_second[kind].get(int(t), 0) + 1


class IpIdentityEnforcer:
    """Source IP -> identity (ipcache) -> policy, updated by a delayed control loop."""

    def __init__(self, rng: random.Random, delay_max: float) -> None:
        self.rng, self.delay_max = rng, delay_max
        self.ipcache: dict[str, str] = {}
        self._pending: list[tuple[float, int, str, str | None]] = []
        self._last_apply: dict[str, float] = {}
        self._seq = 0

    def event(self, now: float, ip: str, identity: str | None) -> None:
        apply_at = max(now + self.rng.uniform(0, self.delay_max), self._last_apply.get(ip, 0.0))
        self._last_apply[ip] = apply_at
        self._seq += 1
        heapq.heappush(self._pending, (apply_at, self._seq, ip, identity))

    def advance(self, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, _, ip, identity = heapq.heappop(self._pending)
            if identity is None:
                self.ipcache.pop(ip, None)
            else:
                self.ipcache[ip] = identity

    def allows(self, ip: str) -> bool:
        return self.ipcache.get(ip) == "orders-writer"


def seeded(name: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.blake2b(name.encode(), digest_size=32).digest())


def run(args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    t0 = 1_800_000_000.0  # simulated clock start
    anchor, team, receiver_key = seeded("anchor"), seeded("team"), seeded("receiver")
    grant_root = Grant(
        operations=("orders.*", "batch.*"),
        destinations=(Destination("orders", PORT, PORT),),
        expires=int(t0) + 86400,
        not_before=int(t0) - 3600,
    )
    team_cred = credential.issue(anchor, SCOPE, bytes(team.verify_key), grant_root)
    trust = TrustStore()
    trust.add(Anchor(SCOPE, bytes(anchor.verify_key)))
    policy = Policy.from_text(
        f"anchors: {json.dumps(trust.to_mapping())}\n"
        "rules:\n  - name: writers\n    operations: ['orders.write']\n"
        f"    ports: [{PORT}]\n"
        "limits: {init_rate_per_source: 1000, init_burst: 1000, load_threshold: 100000}\n"
    )
    receiver = Receiver(receiver_key, policy, started_at=t0 - 1, random=lambda n: rng.randbytes(n))
    recv_pub = bytes(receiver_key.verify_key)
    enforcer = IpIdentityEnforcer(rng, args.delay_max)

    free_ips = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(args.ip_pool)]
    rng.shuffle(free_ips)
    pods: list[Pod] = []
    serial = 0

    def create(now: float) -> None:
        nonlocal serial
        serial += 1
        authorised = rng.random() < args.authorised_share
        key = seeded(f"pod-{serial}")
        op = "orders.write" if authorised else "batch.run"
        cred = credential.delegate(
            team_cred, team, bytes(key.verify_key), Grant(operations=(op,))
        ).encode()
        sender = Sender(key, cred, recv_pub, Claim("orders.write", "orders", PORT),
                        random=lambda n: rng.randbytes(n))  # fmt: skip
        ip = free_ips.pop()  # LIFO: the most recently freed address is reused first
        pods.append(Pod(f"pod-{serial}", ip, authorised, sender))
        enforcer.event(now, ip, "orders-writer" if authorised else "batch")

    def destroy(now: float) -> None:
        pod = pods.pop(rng.randrange(len(pods)))
        free_ips.append(pod.ip)
        enforcer.event(now, pod.ip, None)

    for _ in range(args.pods):
        create(t0 - 30)  # the initial pods have long been propagated
    enforcer.advance(t0)

    warrant, ipid = Counts(), Counts()
    dt = 1.0 / args.rate
    next_churn = t0 + rng.expovariate(args.churn_rate)
    now = t0
    end = t0 + args.duration
    while now < end:
        while next_churn <= now:
            destroy(next_churn)
            create(next_churn)
            next_churn += rng.expovariate(args.churn_rate)
        enforcer.advance(now)
        for pod in pods:
            at = now + rng.uniform(0, dt)
            packet = pod.sender.send(b"order", at)
            out = receiver.handle(packet, (pod.ip, 40000), PORT, at)
            w_allow = out.verdict == Verdict.ADMIT
            i_allow = enforcer.allows(pod.ip)
            for counts, allowed in ((warrant, w_allow), (ipid, i_allow)):
                counts.packets += 1
                if allowed and not pod.authorised:
                    counts.wrong(at - t0, "false_allows")
                elif not allowed and pod.authorised:
                    counts.wrong(at - t0, "false_drops")
        now += dt

    result = {
        "warrant_false_allows": warrant.false_allows,
        "warrant_false_drops": warrant.false_drops,
        "ipid_false_allows": ipid.false_allows,
        "ipid_false_drops": ipid.false_drops,
        "packets_per_enforcer": warrant.packets,
        "ipid_wrong_share": round((ipid.false_allows + ipid.false_drops) / max(1, ipid.packets), 5),
        "warrant_wrong_share": round(
            (warrant.false_allows + warrant.false_drops) / max(1, warrant.packets), 5
        ),
        "pod_recreations": serial - args.pods,
    }
    table(result, args)
    plot(warrant, ipid, args)
    return result


def table(r: dict[str, float], args: argparse.Namespace) -> None:
    print(
        f"churn: {args.pods} pods, {args.ip_pool}-address pool, {args.churn_rate}/s recreations, "
        f"propagation delay U[0,{args.delay_max}] s, {args.rate} pkt/s per pod, "
        f"{args.duration} s simulated, seed {args.seed}"
    )
    print(
        f"{'enforcer':<14}{'packets':>10}{'false allows':>14}{'false drops':>13}{'wrong share':>13}"
    )
    for name, fa, fd, share in (
        ("Warrant", r["warrant_false_allows"], r["warrant_false_drops"], r["warrant_wrong_share"]),
        ("IP identity", r["ipid_false_allows"], r["ipid_false_drops"], r["ipid_wrong_share"]),
    ):
        print(f"{name:<14}{r['packets_per_enforcer']:>10}{fa:>14}{fd:>13}{share:>13.4%}")


def plot(warrant: Counts, ipid: Counts, args: argparse.Namespace) -> None:
    if args.no_plot:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = list(range(int(args.duration) + 1))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for counts, name, colour in (
        (ipid, "IP identity", "tab:red"),
        (warrant, "Warrant", "tab:green"),
    ):
        for kind, style in (("false_allows", "-"), ("false_drops", ":")):
            series = counts.per_second[kind]
            ax.plot(seconds, [series.get(s, 0) for s in seconds], style, color=colour,
                    label=f"{name}: {kind.replace('_', ' ')}")  # fmt: skip
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("wrong verdicts per second")
    ax.set_title(
        f"Churn: {args.churn_rate} pod recreations/s, recycled IPs, delay U[0,{args.delay_max}] s"
    )
    ax.legend(fontsize="small", ncols=2)
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(out / f"churn.{ext}", dpi=110)
    print(f"plot: {out / 'churn.png'}, {out / 'churn.svg'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="30 s simulated (finishes well within 60 s)"
    )
    p.add_argument("--pods", type=int, default=40)
    p.add_argument("--ip-pool", type=int, default=48)
    p.add_argument("--churn-rate", type=float, default=2.0, help="pod recreations per second")
    p.add_argument(
        "--delay-max", type=float, default=10.0, help="ipcache propagation delay bound (s)"
    )
    p.add_argument("--rate", type=float, default=10.0, help="packets per second per pod")
    p.add_argument("--authorised-share", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=120.0, help="simulated seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="out")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 30.0)
    if args.ip_pool < args.pods + 1:
        p.error("--ip-pool must exceed --pods so a recreated pod can get an address")
    started = time.perf_counter()
    result = run(args)
    result["wall_seconds"] = round(time.perf_counter() - started, 2)
    warrant_wrong = result["warrant_false_allows"] + result["warrant_false_drops"]
    ipid_wrong = result["ipid_false_allows"] + result["ipid_false_drops"]
    ratios = {
        "warrant_wrong_ratio_vs_ipid": round(warrant_wrong / ipid_wrong, 4) if ipid_wrong else None
    }
    print(json.dumps({**ratios, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
