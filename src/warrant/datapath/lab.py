"""A deterministic little world for datapath tests and benchmarks.

One anchor, one receiver, holders and relays (one trust domain each) from
seeded keys; sessions opened by real INITs through real relays and admitted
by the real Python `Receiver`.  Randomness (ephemeral keys) comes from a
seeded generator so every run produces the same bytes.
"""

from __future__ import annotations

import hashlib
import random as _random
from collections.abc import Callable
from dataclasses import dataclass

import nacl.signing

from ..core import credential, keys
from ..core.admission import Limits, Policy, PolicyModel
from ..core.anchors import Anchor, TrustStore
from ..core.constants import Verdict
from ..core.hop import Relay
from ..core.receiver import Claim, Receiver
from ..core.rights import Destination, Grant
from ..core.sender import Sender
from ..core.session import Session

SCOPE = "dp.lab"
SERVICE = "svc"


def seeded(name: str) -> nacl.signing.SigningKey:
    return keys.from_seed(
        hashlib.blake2b(b"warrant-dp-lab:" + name.encode(), digest_size=32).digest()
    )


def seeded_random(seed: int) -> Callable[[int], bytes]:
    rng = _random.Random(seed)
    return lambda n: rng.randbytes(n)


def pub(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


@dataclass
class Flow:
    """An open session: the sender, the relays its packets cross, the receiver's Session."""

    sender: Sender
    relays: list[Relay]
    session: Session

    def data(self, payload: bytes) -> bytes:
        """A fresh DATA packet, through every relay on the path."""
        packet = self.sender.seal(payload)
        for r in self.relays:
            packet = r.forward(packet)
        return packet


class Lab:
    def __init__(self, now: float, ports: tuple[int, ...] = (4433,), relays: int = 4,
                 seed: int = 1) -> None:  # fmt: skip
        self.now = now
        self.ports = ports
        self.anchor = seeded("anchor")
        self.receiver_key = seeded("receiver")
        self.holder = seeded("holder")
        self.relay_keys = [seeded(f"relay-{i}") for i in range(relays)]
        self.domains = [f"d{i}.lab" for i in range(relays)]
        self.random = seeded_random(seed)
        grant = Grant(
            operations=("*",),
            destinations=tuple(Destination(SERVICE, p, p) for p in ports),
            not_before=int(now) - 3600,
            expires=int(now) + 86400,
            max_hops=8,
        )
        self.credential = credential.issue(self.anchor, SCOPE, pub(self.holder), grant).encode()
        self.trust = trust = TrustStore()
        trust.add(Anchor(SCOPE, pub(self.anchor)))
        for key, domain in zip(self.relay_keys, self.domains, strict=True):
            trust.add_relay(domain, pub(key))
        model = PolicyModel(
            anchors={},
            default="allow",
            limits=Limits(init_rate_per_source=1e9, init_burst=1e9, load_threshold=1e9),
        )
        self.receiver = Receiver(
            self.receiver_key, Policy(model, trust), started_at=now - 1, random=self.random
        )

    def policy_yaml(self) -> str:
        """The receiver's policy as a file `warrant agent --policy` reads."""
        import yaml

        text: str = yaml.safe_dump({
            "anchors": self.trust.to_mapping(),
            "default": "allow",
            "limits": {"init_rate_per_source": 1000, "init_burst": 1000, "load_threshold": 1000},
        })  # fmt: skip
        return text

    def sender(self, port: int | None = None) -> Sender:
        """A sender of the lab's holder, straight to the receiver."""
        return Sender(
            self.holder, self.credential, pub(self.receiver_key),
            Claim("op.x", SERVICE, self.ports[0] if port is None else port), random=self.random,
        )  # fmt: skip

    def open(self, hops: int = 0, port: int | None = None, now: float | None = None) -> Flow:
        """A session through the first `hops` relays, admitted by the Python receiver."""
        now = self.now if now is None else now
        port = self.ports[0] if port is None else port
        rpub = pub(self.receiver_key)
        path = self.relay_keys[:hops]
        relays = []
        for i, key in enumerate(path):
            nxt = pub(path[i + 1]) if i + 1 < len(path) else rpub
            relays.append(Relay(key, self.domains[i], nxt, rpub))
        sender = Sender(
            self.holder, self.credential, rpub, Claim("op.x", SERVICE, port),
            next_hop_public=pub(path[0]) if path else None, random=self.random,
        )  # fmt: skip
        packet = sender.open(b"hello", now)
        for r in relays:
            packet = r.forward(packet)
        out = self.receiver.handle(packet, ("10.0.0.1", 40000), port, now)
        if out.verdict != Verdict.ADMIT or sender.session_id is None:
            raise RuntimeError(f"lab session refused: {out.reason.name} {out.detail}")
        session = self.receiver.sessions.get(sender.session_id)
        assert session is not None
        return Flow(sender, relays, session)
