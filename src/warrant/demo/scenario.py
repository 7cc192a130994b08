"""The embedded default world: two trust domains, a partner relay, workloads, services.

Built from fixed seeds so every run of the demo and the lab shows the same keys,
credentials and verdicts; only the timestamps move.

    acme.prod  (domain A)  workloads web-1, web-2, batch-1; anchor "acme-root"
    partner.net            relay P, trusted by the receiver for that domain
    bank.prod  (domain B)  receiving node "vault" with services orders:8443, billing:9443

web-1 holds orders.write on orders:8443, delegated acme-root -> platform team -> web-1,
and must come through partner.net (required via-domain, at most 2 hops).
web-2 holds orders.read, delegated the same way, direct path allowed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nacl.signing

from ..core import credential, keys
from ..core.admission import Policy
from ..core.anchors import Anchor, TrustStore
from ..core.rights import Destination, Grant

SCOPE = "acme.prod"
RELAY_DOMAIN = "partner.net"
ORDERS_PORT = 8443
BILLING_PORT = 9443


def seeded_key(name: str) -> nacl.signing.SigningKey:
    return keys.from_seed(
        hashlib.blake2b(b"warrant-demo:" + name.encode(), digest_size=32).digest()
    )


@dataclass
class World:
    now: float
    orders_port: int = ORDERS_PORT
    billing_port: int = BILLING_PORT
    anchor: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("acme-root"))
    team: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("platform-team"))
    web1: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("web-1"))
    web2: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("web-2"))
    batch1: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("batch-1"))
    relay: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("partner-relay"))
    rogue_relay: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("rogue-relay"))
    receiver: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("vault"))
    mallory: nacl.signing.SigningKey = field(default_factory=lambda: seeded_key("mallory"))
    mallory_anchor: nacl.signing.SigningKey = field(
        default_factory=lambda: seeded_key("mallory-root")
    )

    def __post_init__(self) -> None:
        day = int(self.now) + 86400
        team_grant = Grant(
            operations=("orders.*", "billing.read"),
            destinations=(
                Destination("orders", self.orders_port, self.orders_port),
                Destination("billing", self.billing_port, self.billing_port),
            ),
            not_before=int(self.now) - 3600,
            expires=day,
            max_hops=2,
            rate=5000,
        )
        self.team_cred = credential.issue(self.anchor, SCOPE, pub(self.team), team_grant)
        self.web1_cred = credential.delegate(
            self.team_cred,
            self.team,
            pub(self.web1),
            Grant(
                operations=("orders.write",),
                destinations=(Destination("orders", self.orders_port, self.orders_port),),
                required_domains=(RELAY_DOMAIN,),
            ),
        )
        self.web2_cred = credential.delegate(
            self.team_cred,
            self.team,
            pub(self.web2),
            Grant(operations=("orders.read",), max_hops=0),
        )
        self.batch1_cred = credential.delegate(
            self.team_cred,
            self.team,
            pub(self.batch1),
            Grant(operations=("billing.read",), expires=int(self.now) - 120),
        )

    def trust(self) -> TrustStore:
        store = TrustStore()
        store.add(Anchor(SCOPE, pub(self.anchor)))
        store.add_relay(RELAY_DOMAIN, pub(self.relay))
        return store

    def policy_text(self) -> str:
        import json

        anchors = json.dumps(self.trust().to_mapping())
        return (
            f"anchors: {anchors}\n"
            "default: deny\n"
            "rules:\n"
            "  - name: orders\n"
            '    operations: ["orders.*"]\n'
            "    services: [orders]\n"
            f"    ports: [{self.orders_port}]\n"
            "    max_hops: 2\n"
            "  - name: billing-read\n"
            '    operations: ["billing.read"]\n'
            "    services: [billing]\n"
            f"    ports: [{self.billing_port}]\n"
            "limits:\n"
            "  init_rate_per_source: 50\n"
            "  init_burst: 50\n"
            "  load_threshold: 500\n"
        )

    def policy(self) -> Policy:
        return Policy.from_text(self.policy_text(), "<demo policy>")


def pub(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)
