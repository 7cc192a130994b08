"""Deny rules in admission.Policy (what a WarrantPolicy's ingressDeny compiles to).

A deny rule that selects a packet drops it with POLICY_DENIED before any allow
rule is consulted, also under `default: allow`; its path fields select (crossed
every `via`, none of `not_via`, at most `max_hops` hops).  Policies without
`deny` behave exactly as before.
"""

from __future__ import annotations

import pytest

from test_admission import A_ID, ANCHORS_AB, B_ID, RULES, decide, error, load
from warrant.core.constants import Reason

DENY = f"""
{ANCHORS_AB}
default: allow
rules:
  - name: orders
    operations: ["orders.*"]
deny:
  - name: no-partner-writes
    scopes: [partner.prod]
    operations: ["orders.write"]
  - name: not-via-evil
    via: [evil.net]
  - name: no-long-paths-to-billing
    services: [billing]
    not_via: [a.net]
"""


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, (Reason.OK, "orders")),
        ({"scope": "partner.prod", "issuer": B_ID}, (Reason.OK, "orders")),
        ({"scope": "partner.prod", "issuer": B_ID, "operation": "orders.write"},
            (Reason.POLICY_DENIED, "no-partner-writes")),
        ({"operation": "orders.write"}, (Reason.OK, "orders")),  # acme may write
        ({"domains": ("evil.net",)}, (Reason.POLICY_DENIED, "not-via-evil")),
        ({"domains": ("a.net", "evil.net")}, (Reason.POLICY_DENIED, "not-via-evil")),
        ({"domains": ("a.net",)}, (Reason.OK, "orders")),
        # deny wins over `default: allow` too
        ({"operation": "x.y", "service": "s", "domains": ("evil.net",)},
            (Reason.POLICY_DENIED, "not-via-evil")),
        ({"operation": "x.y", "service": "s"}, (Reason.OK, None)),
        # a `not_via` in a deny rule selects paths that avoided the domain
        ({"operation": "billing.read", "service": "billing"},
            (Reason.POLICY_DENIED, "no-long-paths-to-billing")),
        ({"operation": "billing.read", "service": "billing", "domains": ("a.net",)},
            (Reason.OK, None)),
    ],
)  # fmt: skip
def test_deny_rules(kwargs: dict[str, object], expected: tuple[Reason, str | None]) -> None:
    assert decide(load(DENY), **kwargs) == expected  # type: ignore[arg-type]


def test_deny_max_hops_selects_short_paths() -> None:
    pol = load(
        f"""
        {ANCHORS_AB}
        default: allow
        deny:
          - name: direct-writes
            operations: ["orders.write"]
            max_hops: 0
        """
    )
    assert decide(pol, operation="orders.write") == (Reason.POLICY_DENIED, "direct-writes")
    assert decide(pol, operation="orders.write", domains=("a.net",)) == (Reason.OK, None)


def test_deny_detail_names_the_rule() -> None:
    d = load(DENY).decide("partner.prod", B_ID, "orders.write", "orders", 1, [], None)
    assert d.detail == "denied by rule 'no-partner-writes'"


def test_policy_without_deny_is_unchanged() -> None:
    pol = load(RULES)
    assert pol.model.deny == []
    assert decide(pol) == (Reason.OK, "orders")
    assert decide(pol, scope="partner.prod", issuer=A_ID) == (Reason.POLICY_DENIED, None)


def test_bad_deny_rule_names_its_line() -> None:
    msg = error(
        f"""
        {ANCHORS_AB}
        deny:
          - name: x
            operations: ["orders.*"]
          - name: y
            max_hops: 99
        """
    )
    assert msg.startswith("policy.yaml:6: deny.1.max_hops:"), msg
