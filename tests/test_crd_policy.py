"""WarrantPolicy -> admission.Policy: the compiled rules, line-numbered errors, the CLI, and a
receiver enforcing a compiled policy (allow, deny, default deny) on real packets."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from test_flow_schema import NOW, SRC, make_world
from warrant.cli import app
from warrant.cli.policy import port_ranges
from warrant.core import keys
from warrant.core.admission import Policy, PolicyError
from warrant.core.constants import Reason
from warrant.core.receiver import Receiver
from warrant.integration.crd_policy import compile_documents, load_text, to_policy

runner = CliRunner()
ANCHOR_ID = "5c1d6b1c1f3f0a9e"

POLICY = """\
apiVersion: warrant.dev/v1alpha1
kind: WarrantPolicy
metadata:
  name: orders
  namespace: shop
spec:
  endpointSelector:
    matchLabels: {app: orders}
  anchors: anchors.yaml
  ingress:
    - fromAuthority:
        - scopes: [acme.prod]
          operations: ["orders.*"]
          maxHops: 2
        - scopes: [partner.prod]
          operations: ["orders.read"]
          via: [partner.net]
      toPorts:
        - ports:
            - {port: "8443", protocol: UDP}
            - {port: 9000, endPort: 9002}
    - fromAuthority:
        - {}
      toPorts:
        - ports: [{port: "7000"}]
  ingressDeny:
    - fromAuthority:
        - operations: ["orders.write"]
          via: [partner.net]
---
apiVersion: warrant.dev/v1alpha1
kind: WarrantPolicy
metadata:
  name: health
  namespace: shop
spec:
  endpointSelector:
    matchExpressions:
      - {key: tier, operator: Exists}
  ingress:
    - fromAuthority:
        - operations: [health]
"""


def compile_(text: str = POLICY, labels: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return compile_documents(load_text(text, "p.yaml"), labels=labels)


# ---- compiling ------------------------------------------------------------------------------
def test_rules_in_evaluation_order_with_provenance() -> None:
    c = compile_()
    assert [(r.action, r.rule.name) for r in c.rules] == [
        ("deny", "shop/orders/ingressDeny/0/0"),
        ("allow", "shop/orders/ingress/0/0"),
        ("allow", "shop/orders/ingress/0/1"),
        ("allow", "shop/orders/ingress/1/0"),
        ("allow", "shop/health/ingress/0/0"),
    ]
    assert [r.line for r in c.rules] == [28, 12, 15, 23, 42]
    first = c.model.rules[0]
    assert first.scopes == ["acme.prod"] and first.operations == ["orders.*"]
    assert first.ports == [8443, 9000, 9001, 9002] and first.max_hops == 2
    second = c.model.rules[1]
    assert second.via == ["partner.net"] and second.max_hops is None
    any_authority = c.model.rules[2]
    assert any_authority.scopes is None and any_authority.operations == ["*"]
    assert any_authority.ports == [7000]
    assert c.model.rules[3].ports is None  # no toPorts: any port
    assert c.model.deny[0].via == ["partner.net"]
    assert c.model.default == "deny" and c.model.anchors == "anchors.yaml"


def test_endpoint_selector_picks_documents() -> None:
    c = compile_(labels={"app": "orders"})
    assert [d.policy.ref for d in c.selected] == ["shop/orders"]
    assert [d.policy.ref for d in c.skipped] == ["shop/health"]
    c = compile_(labels={"app": "orders", "tier": "web"})
    assert len(c.selected) == 2
    with pytest.raises(PolicyError, match="no WarrantPolicy selects an endpoint with labels app=x"):
        compile_(labels={"app": "x"})


def test_default_deny_can_be_disabled_like_cilium() -> None:
    text = POLICY.split("---")[0].replace("  anchors: anchors.yaml\n",
                                           "  anchors: anchors.yaml\n  enableDefaultDeny: {ingress: false}\n")  # fmt: skip
    assert compile_(text).model.default == "allow"


def test_limits_reach_the_policy_including_the_per_holder_quota() -> None:
    text = POLICY.split("---")[0].replace(
        "  anchors: anchors.yaml\n",
        "  anchors: anchors.yaml\n  limits: {maxSessions: 4096, maxSessionsPerHolder: 8}\n",
    )
    limits = compile_(text).model.limits
    assert (limits.max_sessions, limits.max_sessions_per_holder) == (4096, 8)
    assert compile_().model.limits.max_sessions_per_holder is None  # SPEC 8.1 default applies


def test_anchors_must_agree_and_exist() -> None:
    other = POLICY.replace("name: health\n  namespace: shop\nspec:\n",
                           "name: health\n  namespace: shop\nspec:\n  anchors: other.yaml\n")  # fmt: skip
    with pytest.raises(PolicyError, match=r"p.yaml:\d+: spec.anchors: shop/health disagrees"):
        compile_(other)
    no_anchors = POLICY.replace("  anchors: anchors.yaml\n", "")
    with pytest.raises(PolicyError, match=r"p.yaml:1: spec.anchors: needed"):
        compile_(no_anchors)
    c = compile_documents(load_text(no_anchors, "p.yaml"), anchors="mounted.yaml")
    assert c.model.anchors == "mounted.yaml"


def test_port_ranges_text() -> None:
    assert port_ranges([8443, 9000, 9001, 9002]) == "8443,9000-9002/udp"
    assert port_ranges(None) == "*"


# ---- errors name the line --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("maxHops: 2", "maxHops: 12", "p.yaml:14: spec.ingress.0.fromAuthority.0.maxHops:"),
        ("via: [partner.net]\n      toPorts", "via: [Partner]\n      toPorts",
         "p.yaml:17: spec.ingress.0.fromAuthority.1.via: bad domain name 'Partner'"),
        ('{port: "8443", protocol: UDP}', '{port: "8443", protocol: TCP}',
         "p.yaml:20: spec.ingress.0.toPorts.0.ports.0.protocol:"),
        ('{port: "7000"}', '{port: "http"}', "p.yaml:25: spec.ingress.1.toPorts.0.ports.0.port: port 'http'"),
        ("fromAuthority:\n        - {}", "fromAuthorty:\n        - {}", "p.yaml:23: spec.ingress.1.fromAuthorty: Extra inputs"),
        ("{key: tier, operator: Exists}", "{key: tier, operator: In}", "p.yaml:39: spec.endpointSelector.matchExpressions.0: operator In needs"),
        ("operations: [health]", "operations: [Health]", "p.yaml:42: spec.ingress.0.fromAuthority.0.operations: bad operation pattern"),
        ("apiVersion: warrant.dev/v1alpha1\nkind: WarrantPolicy\nmetadata:\n  name: health",
         "apiVersion: warrant.dev/v2\nkind: WarrantPolicy\nmetadata:\n  name: health", "p.yaml:31: apiVersion:"),
        ("  name: health\n", "  name: orders\n", "p.yaml:31: WarrantPolicy 'shop/orders' is defined twice (first at line 1)"),
        ("  endpointSelector:\n    matchLabels: {app: orders}\n", "", "p.yaml:7: spec.endpointSelector: Field required"),
        ("kind: WarrantPolicy\nmetadata:\n  name: health", "kind: CiliumNetworkPolicy\nmetadata:\n  name: health",
         "p.yaml:32: kind: expected WarrantPolicy, got 'CiliumNetworkPolicy'"),
        ("maxHops: 2", "maxHops: [2", "p.yaml:15: not valid YAML"),
    ],
)  # fmt: skip
def test_errors_name_file_and_line(old: str, new: str, expected: str) -> None:
    assert old in POLICY
    with pytest.raises(PolicyError) as info:
        compile_(POLICY.replace(old, new, 1))
    assert str(info.value).startswith(expected), str(info.value)


def test_no_documents() -> None:
    with pytest.raises(PolicyError, match="no WarrantPolicy document"):
        load_text("---\n", "p.yaml")


# ---- a receiver enforcing a compiled policy -------------------------------------------------
def world_policy(tmp_path: Path, text: str) -> tuple[Policy, object]:
    w = make_world()
    (tmp_path / "anchors.yaml").write_text(yaml.safe_dump(w.receiver.policy.trust.to_mapping()))
    return to_policy(load_text(text, "p.yaml"), base=tmp_path), w


ORDERS = """\
apiVersion: warrant.dev/v1alpha1
kind: WarrantPolicy
metadata: {name: orders}
spec:
  endpointSelector: {}
  anchors: anchors.yaml
  ingress:
    - fromAuthority:
        - scopes: [acme.prod]
          operations: ["orders.*"]
      toPorts:
        - ports: [{port: "8443"}]
  ingressDeny:
    - fromAuthority:
        - via: [b.net]
"""


def run(tmp_path: Path, text: str) -> tuple[Reason, Reason]:
    """(direct INIT, INIT through a.net and b.net) under the compiled policy."""
    policy, w = world_policy(tmp_path, text)
    rx = Receiver(w.receiver.key, policy, started_at=NOW - 10)  # type: ignore[attr-defined]
    direct = rx.handle(w.direct_sender.open(b"x", NOW), SRC, 8443, NOW)  # type: ignore[attr-defined]
    relayed = rx.handle(w.through(w.sender.open(b"y", NOW)), SRC, 8443, NOW)  # type: ignore[attr-defined]
    return direct.reason, relayed.reason


def test_receiver_enforces_allow_and_deny(tmp_path: Path) -> None:
    direct, relayed = run(tmp_path, ORDERS)
    assert direct == Reason.OK
    assert relayed == Reason.POLICY_DENIED  # the deny rule: came via b.net


def test_receiver_default_deny_when_no_rule_matches(tmp_path: Path) -> None:
    text = ORDERS.replace('operations: ["orders.*"]', 'operations: ["billing.*"]')
    assert run(tmp_path, text) == (Reason.POLICY_DENIED, Reason.POLICY_DENIED)


def test_receiver_port_rule(tmp_path: Path) -> None:
    text = ORDERS.replace('port: "8443"', 'port: "9443"')
    assert run(tmp_path, text)[0] == Reason.POLICY_DENIED


def test_receiver_without_deny_admits_the_relayed_path(tmp_path: Path) -> None:
    text = ORDERS.split("  ingressDeny:")[0]
    assert run(tmp_path, text) == (Reason.OK, Reason.OK)


# ---- the CLI ---------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path: Path) -> Path:
    world_policy(tmp_path, ORDERS)
    (tmp_path / "policy.yaml").write_text(ORDERS)
    (tmp_path / "multi.yaml").write_text(POLICY)
    return tmp_path


def test_check_ok(files: Path) -> None:
    res = runner.invoke(app, ["policy", "check", str(files / "policy.yaml")])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"ok: {files / 'policy.yaml'}: 1 WarrantPolicy (orders): "
                                 "1 allow rule(s), 1 deny rule(s), default deny")  # fmt: skip


def test_check_reports_the_line(files: Path) -> None:
    bad = files / "bad.yaml"
    bad.write_text(ORDERS.replace('port: "8443"', 'port: "99999"'))
    res = runner.invoke(app, ["policy", "check", str(bad)])
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: {bad}:12: spec.ingress.0.toPorts.0.ports.0.port: port '99999' must be a number "
        "0-65535 (named ports are not supported)"
    )


def test_check_missing_anchors_file(files: Path) -> None:
    (files / "anchors.yaml").unlink()
    res = runner.invoke(app, ["policy", "check", str(files / "policy.yaml")])
    assert res.exit_code == 1 and "spec.anchors" in res.stderr and "anchors.yaml" in res.stderr


def test_check_unreadable_file(tmp_path: Path) -> None:
    res = runner.invoke(app, ["policy", "check", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 1 and "cannot read policy" in res.stderr


def test_check_accepts_plain_admission_files(files: Path) -> None:
    plain = files / "admission.yaml"
    plain.write_text("anchors: anchors.yaml\nrules:\n  - name: r\n    operations: ['orders.*']\n")
    res = runner.invoke(app, ["policy", "check", str(plain)])
    assert res.exit_code == 0 and "admission policy: 1 allow rule(s)" in res.stdout


def test_compile_table(files: Path) -> None:
    res = runner.invoke(app, ["policy", "compile", str(files / "policy.yaml")])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "1  deny    orders/ingressDeny/0/0" in out
    assert "2  allow   orders/ingress/0/0" in out and "8443/udp" in out
    assert "warrant_sessions" in out and "No policy entries are installed in the kernel" in out


def test_compile_yaml_is_a_loadable_admission_policy(files: Path) -> None:
    res = runner.invoke(app, ["policy", "compile", str(files / "policy.yaml"), "-o", "yaml"])
    assert res.exit_code == 0, res.output
    out = files / "compiled.yaml"
    out.write_text(res.stdout)
    pol = Policy.load(out)
    assert [r.name for r in pol.model.rules] == ["orders/ingress/0/0"]
    assert [r.name for r in pol.model.deny] == ["orders/ingressDeny/0/0"]
    d = pol.decide("acme.prod", "00" * 8, "orders.read", "orders", 8443, ["b.net"], None)
    assert d.reason == Reason.POLICY_DENIED and d.rule == "orders/ingressDeny/0/0"


def test_compile_json_and_labels(files: Path) -> None:
    multi = files / "multi.yaml"
    res = runner.invoke(app, ["policy", "compile", str(multi), "-o", "json", "-l", "app=orders"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["policies"] == ["shop/orders"] and data["skipped"] == ["shop/health"]
    assert data["datapath"]["policy_entries"] == 0
    assert [r["action"] for r in data["rules"]] == ["deny", "allow", "allow", "allow"]
    res = runner.invoke(app, ["policy", "compile", str(multi), "-l", "nokeyvalue"])
    assert res.exit_code == 2 and "key=value" in res.stderr


def test_anchor_key_format_matches_the_configmap() -> None:
    # the example anchors are real Ed25519 public keys in the anchors file format
    cm = yaml.safe_load((Path(__file__).parent.parent / "deploy/kubernetes/configmap-anchors.yaml")
                        .read_text())  # fmt: skip
    data = yaml.safe_load(cm["data"]["anchors.yaml"])
    for scope in data["scopes"].values():
        for a in scope["anchors"]:
            assert len(keys.decode_public(a["key"])) == 32


def test_documentation_example_in_the_module_docstring_compiles() -> None:
    import warrant.integration.crd_policy as mod

    doc = mod.__doc__ or ""
    text = textwrap.dedent(doc.split("\n\n", 2)[2].split("\n\n")[0])
    c = compile_documents(load_text(text, "doc"))
    assert [r.action for r in c.rules] == ["deny", "allow"]


def test_load_any_takes_both_formats(files: Path) -> None:
    from warrant.integration.crd_policy import load_any

    plain = files / "admission.yaml"
    plain.write_text("anchors: anchors.yaml\nrules:\n  - name: r\n    operations: ['orders.*']\n")
    assert [r.name for r in load_any(plain).model.rules] == ["r"]
    crd = load_any(files / "policy.yaml")
    assert [r.name for r in crd.model.deny] == ["orders/ingressDeny/0/0"]
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_any(files / "missing.yaml")
