"""Receiver admission policy: which verified authority may do what, here.

A YAML file, validated with pydantic; every error names its line.

    anchors: anchors.yaml        # trust anchors (path relative to this file)
    scopes: [acme.prod]          # optional: admit only these scopes (default: all anchored)
    default: deny                # verdict when no rule matches: deny | allow
    rules:
      - name: orders-writers
        scopes: [acme.prod]      # optional filters; omitted means any
        issuers: [3f9a...]       # anchor ids (hex)
        operations: ["orders.*"]
        services: [orders]
        ports: [8443]
        max_hops: 2              # path constraints, on top of the credential's own
        via: [partner.net]
        not_via: [evil.net]
    deny:                        # optional: deny rules, checked before every allow rule
      - name: no-partner-writes
        scopes: [partner.prod]
        operations: ["orders.write"]
        via: [partner.net]       # in a deny rule, path fields select: crossed partner.net
    limits:
      init_rate_per_source: 20   # session openings per second per source address
      init_burst: 40
      load_threshold: 200        # openings per second beyond which cookies are required
      max_sessions: 65536
      max_sessions_per_holder: 1024  # default max(16, max_sessions // 64)

Evaluation: a deny rule that selects the packet drops it (POLICY_DENIED),
whatever the allow rules say; deny rules select with the same filters as allow
rules, and their path fields select too: the path crossed every `via` domain,
none of the `not_via` domains, and has at most `max_hops` hops.  Otherwise the
first allow rule whose filters all match decides; its path constraints then
apply (with their own reasons: TOO_MANY_HOPS, FORBIDDEN_DOMAIN, ...).  With no
matching rule, `default` decides.  A policy without `deny` behaves as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import yamlsafe
from .anchors import TrustStore
from .constants import MAX_HOPS, Reason
from .errors import WarrantError
from .hop import check_path
from .rights import check_domain, check_operation_pattern, pattern_covers


class PolicyError(ValueError):
    """A policy file is invalid; the message names file and line."""


def _port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"port {value} out of range")
    return value


def _check_all(values: Sequence[str], check: Callable[[str], object]) -> None:
    """`check` each value; its WarrantError becomes the ValueError pydantic reports."""
    for v in values:
        try:
            check(v)
        except WarrantError as exc:
            raise ValueError(exc.detail) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Rule(_Strict):
    name: str = "rule"
    scopes: list[str] | None = None
    issuers: list[str] | None = None
    operations: list[str] = Field(default_factory=lambda: ["*"])
    services: list[str] | None = None
    ports: list[Annotated[int, AfterValidator(_port)]] | None = None
    max_hops: int | None = Field(default=None, ge=0, le=MAX_HOPS)
    via: list[str] = Field(default_factory=list)
    not_via: list[str] = Field(default_factory=list)

    @field_validator("operations")
    @classmethod
    def _ops(cls, value: list[str]) -> list[str]:
        _check_all(value, check_operation_pattern)
        return value

    @field_validator("via", "not_via")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        _check_all(value, check_domain)
        return value

    @field_validator("issuers")
    @classmethod
    def _issuers(cls, value: list[str] | None) -> list[str] | None:
        for i in value or []:
            try:
                if len(bytes.fromhex(i)) != 8:
                    raise ValueError
            except ValueError:
                raise ValueError(f"issuer {i!r} must be a 16-hex-digit anchor id") from None
        return value

    def matches(self, scope: str, issuer: str, op: str, service: str, port: int) -> bool:
        return (
            (self.scopes is None or scope in self.scopes)
            and (self.issuers is None or issuer in self.issuers)
            and any(pattern_covers(p, op) for p in self.operations)
            and (self.services is None or service in self.services)
            and (self.ports is None or port in self.ports)
        )

    def selects_path(self, domains: Sequence[str]) -> bool:
        """A deny rule's path selector: at most max_hops hops, every `via`, no `not_via`."""
        crossed = set(domains)
        return (
            (self.max_hops is None or len(domains) <= self.max_hops)
            and all(d in crossed for d in self.via)
            and not any(d in crossed for d in self.not_via)
        )


class Limits(_Strict):
    init_rate_per_source: float = Field(default=20.0, gt=0)
    init_burst: float = Field(default=40.0, gt=0)
    load_threshold: float = Field(default=200.0, gt=0)
    max_sessions: int = Field(default=65536, gt=0)
    # live sessions per holder key (SPEC 8.1); None: max(16, max_sessions // 64)
    max_sessions_per_holder: int | None = Field(default=None, gt=0)


class PolicyModel(_Strict):
    anchors: str | dict[str, Any]
    scopes: list[str] | None = None
    default: Literal["deny", "allow"] = "deny"
    rules: list[Rule] = Field(default_factory=list)
    deny: list[Rule] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)


@dataclass(frozen=True)
class Decision:
    reason: Reason
    rule: str | None
    detail: str = ""


class Policy:
    """A validated policy plus the trust store it names."""

    def __init__(self, model: PolicyModel, trust: TrustStore) -> None:
        self.model = model
        self.trust = trust.restricted_to(model.scopes) if model.scopes is not None else trust
        self.limits = model.limits

    @classmethod
    def from_text(cls, text: str, source: str = "<policy>", base: Path | None = None) -> Policy:
        try:
            root = yamlsafe.compose(text)
            data = yamlsafe.load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}" if mark is not None else ""
            raise PolicyError(f"{source}{at}: not valid YAML") from None
        try:
            model = PolicyModel.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            line = _line_of(root, first["loc"])
            where = ".".join(str(p) for p in first["loc"]) or "top level"
            raise PolicyError(f"{source}:{line}: {where}: {first['msg']}") from None
        if isinstance(model.anchors, str):
            path = (base or Path(".")) / model.anchors
            try:
                trust = TrustStore.load(path)
            except (ValueError, OSError) as exc:
                raise PolicyError(f"{source}:{_line_of(root, ('anchors',))}: {exc}") from None
        else:
            try:
                trust = TrustStore.from_mapping(model.anchors, f"{source} anchors")
            except ValueError as exc:
                raise PolicyError(f"{source}:{_line_of(root, ('anchors',))}: {exc}") from None
        for s in model.scopes or []:
            if s not in trust.anchors:
                raise PolicyError(
                    f"{source}:{_line_of(root, ('scopes',))}: scope {s!r} has no anchors"
                )
        return cls(model, trust)

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            text = path.read_text()
        except OSError as exc:
            raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
        return cls.from_text(text, str(path), path.parent)

    def decide(
        self,
        scope: str,
        issuer: str,
        operation: str,
        service: str,
        port: int,
        domains: Sequence[str],
        rights: Any,
    ) -> Decision:
        """POLICY_DENIED, a path reason, or OK with the deciding rule's name."""
        for rule in self.model.deny:
            if rule.matches(scope, issuer, operation, service, port) and rule.selects_path(domains):
                return Decision(Reason.POLICY_DENIED, rule.name, f"denied by rule {rule.name!r}")
        for rule in self.model.rules:
            if rule.matches(scope, issuer, operation, service, port):
                try:
                    check_path(domains, rights, rule.max_hops, rule.via, rule.not_via)
                except WarrantError as exc:
                    return Decision(exc.reason, rule.name, exc.detail)
                return Decision(Reason.OK, rule.name)
        try:
            check_path(domains, rights)
        except WarrantError as exc:
            return Decision(exc.reason, None, exc.detail)
        if self.model.default == "allow":
            return Decision(Reason.OK, None, "default allow")
        return Decision(Reason.POLICY_DENIED, None, "no rule admits this")


def _line_of(node: Any, loc: Sequence[Any]) -> int:
    """Line (1-based) of the YAML node at `loc`, or of the deepest parent that exists."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(part)), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line
