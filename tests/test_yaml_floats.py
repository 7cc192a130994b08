"""YAML 1.2 floats in policies: `1e-09` and `2e3` are numbers, not strings.

PyYAML alone resolves by YAML 1.1, where an exponent float needs a dot and a signed
exponent; a policy written `load_threshold: 1e-09` was refused as "not a float".
Every YAML the project loads goes through src/warrant/core/yamlsafe.py.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from test_admission import INLINE_ANCHORS
from warrant.core import yamlsafe
from warrant.core.admission import Policy
from warrant.integration.crd_policy import compile_documents, load_text


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-09", 1e-09), ("2e3", 2000.0), ("-2E+3", -2000.0), (".5e3", 500.0), ("1.e3", 1000.0),
     ("1.0e-3", 0.001), ("+7e0", 7.0)],
)  # fmt: skip
def test_exponent_floats_are_floats(text: str, value: float) -> None:
    got = yamlsafe.load(f"v: {text}")["v"]
    assert type(got) is float and got == value


@pytest.mark.parametrize("text", ["'1e3'", "1e", "e3", "1e3x", "0x1e3", "1.2.3", "1e-"])
def test_what_is_not_a_float_stays_what_it_was(text: str) -> None:
    got = yamlsafe.load(f"v: {text}")["v"]
    assert not isinstance(got, float), got


def test_the_loader_stays_safe() -> None:
    import yaml

    with pytest.raises(yaml.constructor.ConstructorError):
        yamlsafe.load("!!python/object/apply:os.system ['true']")


def test_admission_policy_limits_in_exponent_form() -> None:
    policy = Policy.from_text(
        textwrap.dedent(f"""\
            {INLINE_ANCHORS}
            limits:
              load_threshold: 1e-09
              init_rate_per_source: 2e3
              init_burst: 5E+1
            """),
        "policy.yaml",
    )
    lim = policy.limits
    assert (lim.load_threshold, lim.init_rate_per_source, lim.init_burst) == (1e-09, 2000.0, 50.0)


def test_warrant_policy_limits_in_exponent_form() -> None:
    text = textwrap.dedent("""\
        apiVersion: warrant.dev/v1alpha1
        kind: WarrantPolicy
        metadata: {name: orders, namespace: shop}
        spec:
          endpointSelector: {matchLabels: {app: orders}}
          anchors: anchors.yaml
          limits: {loadThreshold: 2e3}
          ingress:
            - fromAuthority: [{operations: [health]}]
        """)
    limits = compile_documents(load_text(text, "p.yaml")).model.limits
    assert limits.load_threshold == 2000.0


def test_no_module_loads_yaml_another_way() -> None:
    """Every YAML the project reads resolves alike: only yamlsafe.py calls PyYAML's loaders."""
    src = Path(__file__).parent.parent / "src/warrant"
    loader = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|compose)(_all)?\(")
    others = [str(p.relative_to(src)) for p in sorted(src.rglob("*.py"))
              if p.name != "yamlsafe.py" and loader.search(p.read_text())]  # fmt: skip
    assert others == []
