"""Receiver admission policy (SPEC.md section 9, src/warrant/core/admission.py).

Two halves: the YAML loader, whose every refusal must name the file and the line
an operator has to fix; and rule evaluation, where the first rule whose filters
all match decides and its path constraints apply on top of the credential's.
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import nacl.signing
import pytest

from warrant.core import keys
from warrant.core.admission import Policy, PolicyError
from warrant.core.constants import Reason
from warrant.core.rights import Destination, Rights

T = 1_800_000_000


def key(label: str) -> nacl.signing.SigningKey:
    return keys.from_seed(hashlib.sha256(b"warrant-admission/" + label.encode()).digest())


ANCHOR_A, ANCHOR_B, RELAY = key("anchor-a"), key("anchor-b"), key("relay")
A_PUB = keys.encode_public(bytes(ANCHOR_A.verify_key))
B_PUB = keys.encode_public(bytes(ANCHOR_B.verify_key))
A_ID = keys.anchor_id(bytes(ANCHOR_A.verify_key)).hex()
B_ID = keys.anchor_id(bytes(ANCHOR_B.verify_key)).hex()
INLINE_ANCHORS = f"anchors: {{scopes: {{acme.prod: {{anchors: ['{A_PUB}']}}}}}}"


def load(text: str, base: Path | None = None) -> Policy:
    return Policy.from_text(textwrap.dedent(text).lstrip("\n"), "policy.yaml", base)


def error(text: str, base: Path | None = None) -> str:
    with pytest.raises(PolicyError) as info:
        load(text, base)
    return str(info.value)


# ---- the loader: line-numbered errors -------------------------------------------------------
def test_unknown_top_level_key() -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        default: deny
        defualt: allow
        """
    )
    assert msg.startswith("policy.yaml:3: defualt:"), msg
    assert "Extra inputs" in msg


def test_unknown_key_in_a_rule() -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        rules:
          - name: first
            services: [orders]
          - name: second
            servces: [orders]
        """
    )
    assert msg.startswith("policy.yaml:6: rules.1.servces:"), msg


def test_unknown_key_in_limits() -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        limits:
          init_rate: 5
        """
    )
    assert msg.startswith("policy.yaml:3: limits.init_rate:"), msg


@pytest.mark.parametrize(
    ("body", "line", "where"),
    [
        ("default: maybe", 2, "default"),
        ("rules: {a: 1}", 2, "rules"),
        ("scopes: acme.prod", 2, "scopes"),
        ("rules:\n  - name: a\n    ports: [8443, abc]", 4, "rules.0.ports.1"),
        ("rules:\n  - name: a\n    operations: orders.read", 4, "rules.0.operations"),
        ("rules:\n  - name: a\n    services: [8443]", 4, "rules.0.services.0"),
        ("rules:\n  - name: 7", 3, "rules.0.name"),
        ("rules:\n  - max_hops: two", 3, "rules.0.max_hops"),
        ("limits:\n  max_sessions: lots", 3, "limits.max_sessions"),
        ("anchors: [1, 2]", 1, "anchors"),
    ],
    ids=[
        "default-literal",
        "rules-not-a-list",
        "scopes-not-a-list",
        "port-not-int",
        "operations-not-a-list",
        "service-not-str",
        "name-not-str",
        "max-hops-not-int",
        "limit-not-int",
        "anchors-not-a-mapping",
    ],
)
def test_bad_type(body: str, line: int, where: str) -> None:
    head = "" if body.startswith("anchors") else INLINE_ANCHORS + "\n"
    msg = raw_error(head + body)
    assert msg.startswith(f"policy.yaml:{line}: {where}"), msg


def raw_error(text: str) -> str:
    with pytest.raises(PolicyError) as info:
        Policy.from_text(text, "policy.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        "rules:\n  - ports: [yes]",  # YAML 1.1 boolean, was silently port 1
        "rules:\n  - ports: ['8443']",  # a string is not a port
        "rules:\n  - max_hops: 2.5",
        "rules:\n  - max_hops: true",
        "limits:\n  init_burst: true",
        "limits:\n  max_sessions: '100'",
    ],
    ids=["port-yes", "port-string", "hops-float", "hops-bool", "burst-bool", "sessions-string"],
)
def test_no_silent_coercion(body: str) -> None:
    """A policy is security configuration: a value of the wrong type is refused, not coerced."""
    msg = raw_error(INLINE_ANCHORS + "\n" + body)
    assert msg.startswith("policy.yaml:"), msg


@pytest.mark.parametrize("port", ["70000", "-1", "65536"])
def test_bad_port(port: str) -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        rules:
          - name: a
            ports: [8443, {port}]
        """
    )
    assert msg.startswith("policy.yaml:4: rules.0.ports.1:"), msg
    assert f"port {port} out of range" in msg


def test_port_bounds_are_inclusive() -> None:
    pol = load(
        f"""
        {INLINE_ANCHORS}
        rules:
          - ports: [0, 65535]
        """
    )
    assert pol.model.rules[0].ports == [0, 65535]


def test_bad_port_in_a_block_list_names_its_own_line() -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        rules:
          - name: a
            ports:
              - 8443
              - 70000
        """
    )
    assert msg.startswith("policy.yaml:6:"), msg


@pytest.mark.parametrize(
    "pattern", ["orders.*.read", "Orders", "", "*.read", "orders.", "orders..read", "a b"]
)
def test_bad_operation_pattern(pattern: str) -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        default: deny
        rules:
          - name: a
            operations: ["orders.*", "{pattern}"]
        """
    )
    assert msg.startswith("policy.yaml:5: rules.0.operations:"), msg
    assert "bad operation pattern" in msg


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("via", "[Bad_Domain]", "bad domain name"),
        ("not_via", "['-x']", "bad domain name"),
        ("issuers", "[abc]", "16-hex-digit anchor id"),
        ("issuers", "[0011223344556677ff]", "16-hex-digit anchor id"),
        ("max_hops", "9", "less than or equal to 8"),
        ("max_hops", "-1", "greater than or equal to 0"),
    ],
)
def test_bad_rule_values(field: str, value: str, detail: str) -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        rules:
          - name: a
          - name: b
            {field}: {value}
        """
    )
    assert msg.startswith(f"policy.yaml:5: rules.1.{field}:"), msg
    assert detail in msg


@pytest.mark.parametrize(
    "limit", ["init_rate_per_source", "init_burst", "load_threshold", "max_sessions"]
)
def test_limits_must_be_positive(limit: str) -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        limits:
          {limit}: 0
        """
    )
    assert msg.startswith(f"policy.yaml:3: limits.{limit}:"), msg


def test_missing_anchors_file(tmp_path: Path) -> None:
    msg = error(
        """
        default: deny
        anchors: nowhere/anchors.yaml
        """,
        tmp_path,
    )
    assert msg.startswith("policy.yaml:2:"), msg
    assert "anchor file not found" in msg and str(tmp_path / "nowhere" / "anchors.yaml") in msg


def test_broken_anchors_file(tmp_path: Path) -> None:
    (tmp_path / "anchors.yaml").write_text("scopes:\n  acme.prod:\n    anchors: []\n")
    msg = error("anchors: anchors.yaml\n", tmp_path)
    assert msg.startswith("policy.yaml:1:"), msg
    assert "non-empty 'anchors' list" in msg


def test_broken_inline_anchors_name_their_line() -> None:
    msg = error(
        """
        default: deny
        anchors:
          scopes:
            acme.prod: {anchors: ["warrant-pub:not-a-key"]}
        """
    )
    assert msg.startswith("policy.yaml:3:"), msg


def test_scope_without_anchors() -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}

        scopes: [acme.prod, partner.prod]
        """
    )
    assert msg.startswith("policy.yaml:3:"), msg
    assert "'partner.prod' has no anchors" in msg


def test_not_yaml() -> None:
    msg = error(
        f"""
        {INLINE_ANCHORS}
        rules: [
          - a
        """
    )
    assert msg.startswith("policy.yaml:") and "not valid YAML" in msg, msg


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_not_a_mapping(text: str) -> None:
    msg = raw_error(text)
    assert msg.startswith("policy.yaml:1: top level:"), msg


def test_missing_anchors_key() -> None:
    msg = raw_error("default: allow\n")
    assert msg.startswith("policy.yaml:1: anchors:"), msg
    assert "Field required" in msg


def test_unreadable_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        Policy.load(tmp_path / "absent.yaml")


def test_load_from_files(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "anchors.yaml").write_text(
        "scopes:\n"
        f"  acme.prod:\n    anchors: ['{A_PUB}']\n"
        f"  partner.prod:\n    anchors: [{{key: '{B_PUB}', not_after: {T}}}]\n"
        f"relays:\n  partner.net: ['{keys.encode_public(bytes(RELAY.verify_key))}']\n"
    )
    path = tmp_path / "conf" / "policy.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            anchors: anchors.yaml          # relative to this file
            scopes: [acme.prod]
            default: deny
            rules:
              - name: orders-writers
                operations: ["orders.*"]
                services: [orders]
                ports: [8443]
                max_hops: 2
                via: [partner.net]
            limits:
              init_rate_per_source: 5
              init_burst: 10
              load_threshold: 100
              max_sessions: 1000
            """
        )
    )
    pol = Policy.load(path)
    assert pol.trust.scopes() == ["acme.prod"]  # `scopes:` restricts the anchors file
    assert pol.trust.relay_domain(bytes(RELAY.verify_key)) == "partner.net"
    assert pol.model.default == "deny" and pol.model.rules[0].name == "orders-writers"
    assert (pol.limits.init_rate_per_source, pol.limits.max_sessions) == (5.0, 1000)


def test_defaults() -> None:
    pol = load(INLINE_ANCHORS)
    assert pol.model.default == "deny" and pol.model.rules == []
    assert pol.trust.scopes() == ["acme.prod"]
    assert (pol.limits.init_rate_per_source, pol.limits.init_burst) == (20.0, 40.0)
    assert (pol.limits.load_threshold, pol.limits.max_sessions) == (200.0, 65536)


# ---- rule evaluation ----------------------------------------------------------------------------
RIGHTS = Rights(
    operations=("*",),
    destinations=(Destination("*", 0, 65535),),
    not_before=0,
    expires=T + 3600,
)

ANCHORS_AB = (
    f"anchors: {{scopes: {{acme.prod: {{anchors: ['{A_PUB}']}}, "
    f"partner.prod: {{anchors: ['{B_PUB}']}}}}}}"
)

RULES = f"""
{ANCHORS_AB}
default: deny
rules:
  - name: partner-readers
    scopes: [partner.prod]
    issuers: [{B_ID}]
    operations: ["orders.read"]
  - name: orders
    scopes: [acme.prod]
    operations: ["orders.*"]
    services: [orders]
    ports: [8443, 8444]
    max_hops: 1
    not_via: [evil.net]
  - name: billing-via-partner
    operations: ["billing.read"]
    services: [billing]
    via: [partner.net]
  - name: catch-all-health
    operations: ["health"]
"""


def decide(
    pol: Policy,
    scope: str = "acme.prod",
    issuer: str = A_ID,
    operation: str = "orders.read",
    service: str = "orders",
    port: int = 8443,
    domains: tuple[str, ...] = (),
    rights: Rights = RIGHTS,
) -> tuple[Reason, str | None]:
    d = pol.decide(scope, issuer, operation, service, port, list(domains), rights)
    return d.reason, d.rule


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, (Reason.OK, "orders")),
        ({"operation": "orders.write"}, (Reason.OK, "orders")),
        ({"operation": "orders"}, (Reason.POLICY_DENIED, None)),  # `orders.*` excludes `orders`
        ({"service": "catalog"}, (Reason.POLICY_DENIED, None)),
        ({"port": 9000}, (Reason.POLICY_DENIED, None)),
        ({"port": 8444}, (Reason.OK, "orders")),
        ({"scope": "partner.prod", "issuer": B_ID}, (Reason.OK, "partner-readers")),
        ({"scope": "partner.prod", "issuer": A_ID}, (Reason.POLICY_DENIED, None)),
        (
            {"scope": "partner.prod", "issuer": B_ID, "operation": "orders.write"},
            (Reason.POLICY_DENIED, None),
        ),
        ({"domains": ("partner.net",)}, (Reason.OK, "orders")),
        ({"domains": ("a.net", "b.net")}, (Reason.TOO_MANY_HOPS, "orders")),
        ({"domains": ("evil.net",)}, (Reason.FORBIDDEN_DOMAIN, "orders")),
        (
            {"operation": "billing.read", "service": "billing", "domains": ("partner.net",)},
            (Reason.OK, "billing-via-partner"),
        ),
        (
            {"operation": "billing.read", "service": "billing"},
            (Reason.REQUIRED_DOMAIN_MISSING, "billing-via-partner"),
        ),
        (
            {"operation": "health", "service": "anything", "port": 1},
            (Reason.OK, "catch-all-health"),
        ),
    ],
)
def test_rule_evaluation(kwargs: dict[str, object], expected: tuple[Reason, str | None]) -> None:
    assert decide(load(RULES), **kwargs) == expected  # type: ignore[arg-type]


def test_first_matching_rule_decides_even_when_its_path_fails() -> None:
    """A later, laxer rule does not rescue a packet the first matching rule refuses."""
    pol = load(
        f"""
        {INLINE_ANCHORS}
        default: allow
        rules:
          - name: strict
            operations: ["orders.*"]
            max_hops: 0
          - name: lax
            operations: ["*"]
        """
    )
    assert decide(pol, domains=("a.net",)) == (Reason.TOO_MANY_HOPS, "strict")
    assert decide(pol) == (Reason.OK, "strict")
    assert decide(pol, operation="billing.read", domains=("a.net",)) == (Reason.OK, "lax")


def test_default_allow_and_deny() -> None:
    allow = load(f"{INLINE_ANCHORS}\ndefault: allow\n")
    deny = load(f"{INLINE_ANCHORS}\ndefault: deny\n")
    assert decide(allow) == (Reason.OK, None)
    assert decide(deny) == (Reason.POLICY_DENIED, None)


def test_credential_path_constraints_apply_without_a_matching_rule() -> None:
    allow = load(f"{INLINE_ANCHORS}\ndefault: allow\n")
    narrow = Rights(
        operations=("*",),
        destinations=(Destination("*", 0, 65535),),
        not_before=0,
        expires=T,
        max_hops=1,
        allowed_domains=("a.net", "b.net"),
        required_domains=("a.net",),
        forbidden_domains=("evil.net",),
    )
    assert decide(allow, rights=narrow, domains=("a.net",)) == (Reason.OK, None)
    assert decide(allow, rights=narrow, domains=("a.net", "b.net")) == (Reason.TOO_MANY_HOPS, None)
    assert decide(allow, rights=narrow, domains=("evil.net",)) == (Reason.FORBIDDEN_DOMAIN, None)
    assert decide(allow, rights=narrow, domains=("c.net",)) == (Reason.DOMAIN_NOT_ALLOWED, None)
    assert decide(allow, rights=narrow, domains=()) == (Reason.REQUIRED_DOMAIN_MISSING, None)
    # Path reasons come before the default: a deny policy still names the path reason.
    deny = load(f"{INLINE_ANCHORS}\ndefault: deny\n")
    assert decide(deny, rights=narrow, domains=("evil.net",)) == (Reason.FORBIDDEN_DOMAIN, None)


def test_rule_constraints_add_to_the_credentials() -> None:
    pol = load(
        f"""
        {INLINE_ANCHORS}
        rules:
          - max_hops: 3
            via: [b.net]
            not_via: [c.net]
        """
    )
    two_hops = Rights(("*",), (Destination("*", 0, 65535),), 0, T, max_hops=2)
    assert decide(pol, rights=two_hops, domains=("a.net", "b.net", "d.net")) == (
        Reason.TOO_MANY_HOPS,
        "rule",
    )
    assert decide(pol, domains=("a.net", "b.net", "d.net")) == (Reason.OK, "rule")
    assert decide(pol, domains=("a.net",)) == (Reason.REQUIRED_DOMAIN_MISSING, "rule")
    assert decide(pol, domains=("b.net", "c.net")) == (Reason.FORBIDDEN_DOMAIN, "rule")
    forbids = Rights(("*",), (Destination("*", 0, 65535),), 0, T, forbidden_domains=("b.net",))
    assert decide(pol, rights=forbids, domains=("b.net",)) == (Reason.FORBIDDEN_DOMAIN, "rule")


def test_policy_scopes_restrict_trust_not_relays() -> None:
    pol = load(f"{ANCHORS_AB}\nscopes: [partner.prod]\n")
    assert pol.trust.scopes() == ["partner.prod"]
    with pytest.raises(Exception) as info:
        pol.trust.find("acme.prod", bytes.fromhex(A_ID))
    assert getattr(info.value, "reason", None) == Reason.WRONG_SCOPE
    assert pol.trust.find("partner.prod", bytes.fromhex(B_ID)).scope == "partner.prod"
