"""WarrantPolicy: receiver policy as a Kubernetes custom resource, or as a plain YAML file.

A WarrantPolicy reads like a CiliumNetworkPolicy whose peers are authorities
instead of labelled endpoints:

    apiVersion: warrant.dev/v1alpha1
    kind: WarrantPolicy
    metadata: {name: orders, namespace: shop}
    spec:
      endpointSelector: {matchLabels: {app: orders}}   # which receivers this governs
      anchors: acme-anchors.yaml                       # trust anchors (file or ConfigMap key)
      ingress:                                         # allow (Cilium: ingress[].fromEndpoints)
        - fromAuthority:
            - scopes: [acme.prod]
              operations: ["orders.*"]
              maxHops: 2
              notVia: [evil.net]
          toPorts:
            - ports: [{port: "8443", protocol: UDP}]
      ingressDeny:                                     # deny, wins over every allow
        - fromAuthority:
            - scopes: [partner.prod]
              operations: ["orders.write"]

The same document is applied with kubectl (the CRD in deploy/kubernetes/ has
the full OpenAPI v3 schema) and read by `warrant policy check|compile FILE`
and the agent outside Kubernetes.  `to_policy` compiles the documents that
select an endpoint into the existing `admission.Policy`:

  * each `ingress[i].fromAuthority[j]` becomes one allow rule, named
    `<namespace>/<name>/ingress/<i>/<j>`, with the ports of `ingress[i].toPorts`;
  * each `ingressDeny[i].fromAuthority[j]` becomes one deny rule (checked first);
  * an empty selector `{}` in fromAuthority selects any verified authority;
  * `enableDefaultDeny.ingress` (default true, as in Cilium) sets `default: deny`;
  * allow rules are evaluated in document order and the first match decides
    (admission semantics; Cilium unions its allow rules instead: see docs/cilium.md).

Every error names the file and the line to fix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..core import yamlsafe
from ..core.admission import Limits, Policy, PolicyError, PolicyModel, Rule, _check_all, _line_of
from ..core.anchors import TrustStore, check_scope
from ..core.constants import MAX_HOPS
from ..core.rights import check_domain, check_operation_pattern

GROUP = "warrant.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "WarrantPolicy"
MAX_DOCUMENT = 1024 * 1024

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_PORT = re.compile(
    r"^(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})$"
)
_ISSUER = re.compile(r"^[0-9a-f]{16}$")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ---- the document model (mirrors deploy/kubernetes/crd-warrantpolicy.yaml) --------------------
class LabelSelectorRequirement(_M):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if len(v) > 316 or not _LABEL_KEY.match(v):
            raise ValueError(f"{v!r} is not a valid label key")
        return v

    @model_validator(mode="after")
    def _values(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs a non-empty values list")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def selects(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


class LabelSelector(_M):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions"
    )

    @field_validator("match_labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if len(key) > 316 or not _LABEL_KEY.match(key):
                raise ValueError(f"{key!r} is not a valid label key")
            if not _LABEL_VALUE.match(value):
                raise ValueError(f"{value!r} is not a valid label value")
        return v

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes label-selector semantics; the empty selector selects everything."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.selects(labels) for r in self.match_expressions
        )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for r in self.match_expressions:
            vals = f" ({','.join(r.values)})" if r.values else ""
            parts.append(f"{r.key} {r.operator}{vals}")
        return ", ".join(parts) or "(all endpoints)"


class FromAuthority(_M):
    """Selects verified authorities; every given field must match, values within one OR."""

    scopes: list[str] | None = None
    issuers: list[str] | None = None
    operations: list[str] | None = None
    services: list[str] | None = None
    max_hops: int | None = Field(default=None, alias="maxHops", ge=0, le=MAX_HOPS)
    via: list[str] = Field(default_factory=list)
    not_via: list[str] = Field(default_factory=list, alias="notVia")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str] | None) -> list[str] | None:
        _check_all(v or [], check_scope)
        return v

    @field_validator("issuers")
    @classmethod
    def _issuers(cls, v: list[str] | None) -> list[str] | None:
        for i in v or []:
            if not _ISSUER.match(i):
                raise ValueError(f"issuer {i!r} must be a 16-hex-digit anchor id (lower case)")
        return v

    @field_validator("operations")
    @classmethod
    def _operations(cls, v: list[str] | None) -> list[str] | None:
        _check_all(v or [], check_operation_pattern)
        return v

    @field_validator("services", "via", "not_via")
    @classmethod
    def _domains(cls, v: list[str] | None) -> list[str] | None:
        _check_all(v or [], check_domain)
        return v


class PortProtocol(_M):
    port: int | str
    end_port: int | None = Field(default=None, alias="endPort", ge=0, le=65535)
    protocol: Literal["UDP", "ANY"] | None = None

    @field_validator("port")
    @classmethod
    def _port(cls, v: int | str) -> int | str:
        if isinstance(v, bool):
            raise ValueError("port must be a number")
        if isinstance(v, int):
            if not 0 <= v <= 65535:
                raise ValueError(f"port {v} out of range 0-65535")
        elif not _PORT.match(v):
            raise ValueError(f"port {v!r} must be a number 0-65535 (named ports are not supported)")
        return v

    @model_validator(mode="after")
    def _range(self) -> PortProtocol:
        if self.end_port is not None and self.end_port < int(self.port):
            raise ValueError(f"endPort {self.end_port} is below port {self.port}")
        return self

    def numbers(self) -> range:
        lo = int(self.port)
        return range(lo, (self.end_port if self.end_port is not None else lo) + 1)


class PortRule(_M):
    ports: list[PortProtocol] = Field(min_length=1)


class IngressRule(_M):
    from_authority: list[FromAuthority] = Field(alias="fromAuthority", min_length=1)
    to_ports: list[PortRule] = Field(default_factory=list, alias="toPorts")

    def port_list(self) -> list[int] | None:
        if not self.to_ports:
            return None
        ports: set[int] = set()
        for rule in self.to_ports:
            for p in rule.ports:
                ports.update(p.numbers())
        return sorted(ports)


class DefaultDeny(_M):
    ingress: bool = True
    egress: bool = True  # accepted for symmetry with Cilium; Warrant governs ingress only


class PolicyLimits(_M):
    init_rate_per_source: float | int | None = Field(default=None, alias="initRatePerSource", gt=0)
    init_burst: float | int | None = Field(default=None, alias="initBurst", gt=0)
    load_threshold: float | int | None = Field(default=None, alias="loadThreshold", gt=0)
    max_sessions: int | None = Field(default=None, alias="maxSessions", gt=0)
    max_sessions_per_holder: int | None = Field(default=None, alias="maxSessionsPerHolder", gt=0)

    def to_limits(self) -> Limits:
        given = {
            k: v
            for k, v in (
                ("init_rate_per_source", self.init_rate_per_source),
                ("init_burst", self.init_burst),
                ("load_threshold", self.load_threshold),
                ("max_sessions", self.max_sessions),
                ("max_sessions_per_holder", self.max_sessions_per_holder),
            )
            if v is not None
        }
        return Limits.model_validate(given)


class Spec(_M):
    description: str | None = None
    endpoint_selector: LabelSelector = Field(alias="endpointSelector")
    anchors: str | dict[str, Any] | None = None
    trusted_scopes: list[str] | None = Field(default=None, alias="trustedScopes")
    enable_default_deny: DefaultDeny = Field(default_factory=DefaultDeny, alias="enableDefaultDeny")
    ingress: list[IngressRule] = Field(default_factory=list)
    ingress_deny: list[IngressRule] = Field(default_factory=list, alias="ingressDeny")
    limits: PolicyLimits | None = None

    @field_validator("trusted_scopes")
    @classmethod
    def _scopes(cls, v: list[str] | None) -> list[str] | None:
        _check_all(v or [], check_scope)
        return v

    @field_validator("anchors")
    @classmethod
    def _anchors(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(v, str) and not v.strip():
            raise ValueError("anchors must name a file")
        return v

    @model_validator(mode="after")
    def _some_rule(self) -> Spec:
        if "ingress" not in self.model_fields_set and "ingress_deny" not in self.model_fields_set:
            raise ValueError("needs ingress or ingressDeny (an empty list is allowed)")
        return self


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)  # labels, uid, ... pass
    name: str = Field(max_length=253)
    namespace: str | None = Field(default=None, max_length=63)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _DNS_SUBDOMAIN.match(v):
            raise ValueError(f"{v!r} is not a DNS subdomain name (lower case, digits, '-', '.')")
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and not _DNS_LABEL.match(v):
            raise ValueError(f"{v!r} is not a valid namespace name")
        return v


class WarrantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    api_version: Literal["warrant.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["WarrantPolicy"]
    metadata: Metadata
    spec: Spec
    status: dict[str, Any] | None = None  # as `kubectl get -o yaml` prints it; ignored

    @property
    def ref(self) -> str:
        ns = self.metadata.namespace
        return f"{ns}/{self.metadata.name}" if ns else self.metadata.name


# ---- loading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Document:
    policy: WarrantPolicy
    source: str
    index: int  # position in the YAML stream
    line: int  # line of the document's first key
    node: Any  # the composed YAML node, for line numbers


def load_text(text: str, source: str = "<policy>") -> list[Document]:
    """Parse and validate every WarrantPolicy in a YAML stream (`---` separated)."""
    if len(text) > MAX_DOCUMENT:
        raise PolicyError(f"{source}: larger than {MAX_DOCUMENT} bytes")
    try:
        nodes = list(yamlsafe.compose_all(text))
        datas = list(yamlsafe.load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError(f"{source}{at}: not valid YAML ({problem})") from None
    docs: list[Document] = []
    for index, (node, data) in enumerate(zip(nodes, datas, strict=True)):
        if data is None:
            continue  # an empty document (a trailing `---`)
        line = node.start_mark.line + 1 if node is not None else 1
        if not isinstance(data, dict):
            raise PolicyError(f"{source}:{line}: a WarrantPolicy must be a mapping")
        if data.get("kind") != KIND:
            got = data.get("kind")
            raise PolicyError(
                f"{source}:{_line_of(node, ('kind',))}: kind: expected {KIND}, got {got!r}"
            )
        try:
            policy = WarrantPolicy.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(_describe(exc, node, source)) from None
        docs.append(Document(policy, source, index, line, node))
    if not docs:
        raise PolicyError(f"{source}: no WarrantPolicy document")
    seen: dict[str, int] = {}
    for d in docs:
        if d.policy.ref in seen:
            raise PolicyError(
                f"{source}:{d.line}: WarrantPolicy {d.policy.ref!r} is defined twice "
                f"(first at line {seen[d.policy.ref]})"
            )
        seen[d.policy.ref] = d.line
    return docs


def load_file(path: Path) -> list[Document]:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_DOCUMENT + 1)
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8 text") from None
    return load_text(text, str(path))


_UNION_TAGS = {"int", "str", "float", "bool", "dict[str,any]", "list[str]", "none"}


def _describe(exc: ValidationError, node: Any, source: str) -> str:
    errors = exc.errors()
    # a misspelled key shows as "extra" and as "missing": the extra one names the typo
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(
        p for p in first["loc"] if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p))
    )
    where = ".".join(str(p) for p in loc) or "top level"
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{source}:{_line_of(node, loc)}: {where}: {msg}"


# ---- compiling ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledRule:
    action: str  # "allow" or "deny"
    rule: Rule
    origin: str  # "<ref> spec.ingress[0].fromAuthority[1]"
    line: int


@dataclass(frozen=True)
class Compiled:
    model: PolicyModel
    rules: list[CompiledRule]  # evaluation order: deny rules first, then allow rules
    selected: list[Document]
    skipped: list[Document]  # documents whose endpointSelector did not select the labels
    anchors_source: str


def compile_documents(
    docs: Sequence[Document],
    *,
    labels: Mapping[str, str] | None = None,
    anchors: str | dict[str, Any] | None = None,
) -> Compiled:
    """The admission model for the documents that select `labels` (all documents if None).

    `anchors` overrides the documents' `spec.anchors` (the agent in Kubernetes
    passes its mounted anchor ConfigMap)."""
    selected = [
        d for d in docs if labels is None or d.policy.spec.endpoint_selector.selects(labels)
    ]
    skipped = [d for d in docs if d not in selected]
    if not selected:
        shown = ", ".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "(none)"
        raise PolicyError(
            f"{docs[0].source}: no WarrantPolicy selects an endpoint with labels {shown}"
        )
    src = selected[0].source
    allow: list[CompiledRule] = []
    deny: list[CompiledRule] = []
    for d in selected:
        spec = d.policy.spec
        for field, key, out, action in (
            (spec.ingress, "ingress", allow, "allow"),
            (spec.ingress_deny, "ingressDeny", deny, "deny"),
        ):
            for i, ing in enumerate(field):
                ports = ing.port_list()
                for j, fa in enumerate(ing.from_authority):
                    rule = Rule(
                        name=f"{d.policy.ref}/{key}/{i}/{j}",
                        scopes=fa.scopes,
                        issuers=fa.issuers,
                        operations=fa.operations if fa.operations is not None else ["*"],
                        services=fa.services,
                        ports=ports,
                        max_hops=fa.max_hops,
                        via=fa.via,
                        not_via=fa.not_via,
                    )
                    line = _line_of(d.node, ("spec", key, i, "fromAuthority", j))
                    origin = f"{d.policy.ref} spec.{key}[{i}].fromAuthority[{j}]"
                    out.append(CompiledRule(action, rule, origin, line))

    chosen_anchors, anchors_source = _agree(
        selected, "anchors", lambda s: s.anchors, override=anchors
    )
    if chosen_anchors is None:
        raise PolicyError(
            f"{src}:{selected[0].line}: spec.anchors: needed (a file of trust anchors, or "
            "--anchors / the agent's anchor ConfigMap)"
        )
    limits, _ = _agree(selected, "limits", lambda s: s.limits)
    # a policy without trustedScopes trusts every anchored scope, so the union is "all"
    scopes: list[str] | None = None
    if all(d.policy.spec.trusted_scopes is not None for d in selected):
        scopes = sorted({s for d in selected for s in d.policy.spec.trusted_scopes or []})
    default_deny = any(d.policy.spec.enable_default_deny.ingress for d in selected)
    model = PolicyModel(
        anchors=chosen_anchors,
        scopes=scopes,
        default="deny" if default_deny else "allow",
        rules=[r.rule for r in allow],
        deny=[r.rule for r in deny],
        limits=limits.to_limits() if limits is not None else Limits(),
    )
    return Compiled(model, [*deny, *allow], selected, skipped, anchors_source)


def _agree(docs: Sequence[Document], name: str, get: Any, override: Any = None) -> tuple[Any, str]:
    if override is not None:
        return override, "given on the command line"
    value, origin = None, ""
    for d in docs:
        v = get(d.policy.spec)
        if v is None:
            continue
        if value is not None and v != value:
            line = _line_of(d.node, ("spec", name))
            raise PolicyError(
                f"{d.source}:{line}: spec.{name}: {d.policy.ref} disagrees with {origin}; "
                f"policies that select the same endpoint must name the same {name}"
            )
        if value is None:
            value, origin = v, f"{d.policy.ref} (line {_line_of(d.node, ('spec', name))})"
    return value, origin


def to_policy(
    docs: Sequence[Document],
    *,
    labels: Mapping[str, str] | None = None,
    anchors: str | dict[str, Any] | None = None,
    base: Path | None = None,
) -> Policy:
    """A ready `admission.Policy`; a relative anchors file is read from `base`."""
    compiled = compile_documents(docs, labels=labels, anchors=anchors)
    return policy_of(compiled, base)


def policy_of(compiled: Compiled, base: Path | None = None) -> Policy:
    model = compiled.model
    src = compiled.selected[0].source
    if isinstance(model.anchors, str):
        path = Path(model.anchors)
        if not path.is_absolute():
            path = (base or Path(".")) / path
        try:
            trust = TrustStore.load(path)
        except (ValueError, OSError) as exc:
            raise PolicyError(f"{src}: spec.anchors: {exc}") from None
    else:
        try:
            trust = TrustStore.from_mapping(model.anchors, f"{src} spec.anchors")
        except ValueError as exc:
            raise PolicyError(str(exc)) from None
    for s in model.scopes or []:
        if s not in trust.anchors:
            raise PolicyError(f"{src}: spec.trustedScopes: scope {s!r} has no anchors")
    return Policy(model, trust)


def load_policy(
    path: Path,
    *,
    labels: Mapping[str, str] | None = None,
    anchors: str | dict[str, Any] | None = None,
    anchors_dir: Path | None = None,
) -> Policy:
    """Read a WarrantPolicy file and compile it; relative anchor files are resolved against
    `anchors_dir` (the agent's mounted ConfigMap) or the policy file's directory."""
    docs = load_file(path)
    return to_policy(docs, labels=labels, anchors=anchors, base=anchors_dir or path.parent)


def load_any(
    path: Path,
    *,
    labels: Mapping[str, str] | None = None,
    anchors_dir: Path | None = None,
) -> Policy:
    """A policy file in either format: WarrantPolicy documents or a plain admission file.

    What the agent and `warrant listen` call to accept both."""
    try:
        with path.open("rb") as fh:
            head = fh.read(MAX_DOCUMENT + 1).decode("utf-8", errors="replace")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
    if is_warrant_policy(head):
        return load_policy(path, labels=labels, anchors_dir=anchors_dir)
    return Policy.from_text(head, str(path), anchors_dir or path.parent)


def is_warrant_policy(text: str) -> bool:
    """Whether a YAML text looks like WarrantPolicy documents (vs. a plain admission file)."""
    try:
        for data in yamlsafe.load_all(text):
            if isinstance(data, dict):
                return data.get("kind") == KIND
    except yaml.YAMLError:
        return False
    return False


def admission_yaml(compiled: Compiled) -> str:
    """The equivalent plain admission policy file (src/warrant/core/admission.py's format)."""
    data = compiled.model.model_dump(mode="json", exclude_defaults=False)
    for section in ("rules", "deny"):
        data[section] = [
            {k: v for k, v in rule.items() if v not in (None, [])} for rule in data[section]
        ]
    if not data["deny"]:
        del data["deny"]
    if data["scopes"] is None:
        del data["scopes"]
    return str(yaml.safe_dump(data, sort_keys=False))


class PolicySource(Protocol):
    """Where the agent's policy comes from: a file (PolicyWatcher) or the Kubernetes API
    (kube_watch.KubePolicySource).  `poll()` returns a new Policy, None for no change, or
    raises PolicyError once for a change that does not load (the policy in force stays);
    `path` names the source in the agent's log; `last_poll` is when poll() last ran
    (time.monotonic(), 0.0 before the first: /healthz's main-loop check)."""

    @property
    def path(self) -> Path | str: ...

    last_poll: float

    def poll(self) -> Policy | None: ...


class PolicyWatcher:
    """Reloads a policy file when it changes (either format), keeping the last good one.

    `poll()` returns the new Policy when the file changed and loads; None when it did not
    change; and raises PolicyError (the old policy stays in force) when it changed into
    something invalid, once per change."""

    def __init__(self, path: Path, *, anchors_dir: Path | None = None) -> None:
        self.path, self.anchors_dir = path, anchors_dir
        self._stamp = self._read_stamp()
        self.last_poll = 0.0

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self) -> Policy | None:
        self.last_poll = time.monotonic()
        stamp = self._read_stamp()
        if stamp == self._stamp or stamp is None:
            return None
        self._stamp = stamp
        return load_any(self.path, anchors_dir=self.anchors_dir)
