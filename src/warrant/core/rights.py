"""Rights carried by a delegation link, and the rule that a link may only narrow.

A link states a *grant*: every field optional, an omitted field inherits its
parent's value.  The root link must state operations, destinations and
expiry.  `narrow(parent, grant)` returns the effective rights of the child or
raises ESCALATION naming the first widened right: the verifier rejects a
widening outright rather than silently intersecting it away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .constants import MAX_HOPS, Reason
from .errors import WarrantError

_LABEL = r"[a-z0-9][a-z0-9_-]{0,62}"
# fullmatch, not match with ^...$: "$" would also accept a trailing newline.
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_PATTERN = re.compile(rf"\*|{_LABEL}(\.{_LABEL})*(\.\*)?")
_SERVICE = re.compile(r"\*|[a-z0-9][a-z0-9.-]{0,62}")
_DOMAIN = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
_PORTS = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")
_INT63 = 2**63
_T = TypeVar("_T")


def built(cls: type[_T], fields: dict[str, Any]) -> _T:
    """A frozen dataclass instance from its complete field dict, without calling __init__.

    The generated __init__ of a frozen dataclass pays one object.__setattr__ per field
    (about 2 us for nine fields here); verifying a never-seen chain builds several such
    objects per link.  Callers run the class's own checks first and pass every field.
    """
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    return obj


def check_operation_name(op: str) -> str:
    if not _NAME.fullmatch(op):
        raise WarrantError(Reason.MALFORMED, f"bad operation name {op!r}")
    return op


def check_operation_pattern(pattern: str) -> str:
    if not _PATTERN.fullmatch(pattern):
        raise WarrantError(Reason.MALFORMED, f"bad operation pattern {pattern!r}")
    return pattern


def check_domain(domain: str) -> str:
    if not _DOMAIN.fullmatch(domain):
        raise WarrantError(Reason.MALFORMED, f"bad domain name {domain!r}")
    return domain


def check_service_name(service: str) -> str:
    """A concrete service, as a claim names it: a destination's service grammar, not `*`."""
    if service == "*" or not _SERVICE.fullmatch(service):
        raise WarrantError(Reason.MALFORMED, f"bad service name {service!r}")
    return service


def pattern_covers(parent: str, child: str) -> bool:
    """True when every operation matched by `child` is matched by `parent`.

    `*` matches everything; `a.b.*` matches names strictly below `a.b`
    (`a.b.c`, `a.b.c.d`) and patterns below it; a plain name matches itself.
    """
    if parent == "*":
        return True
    if parent.endswith(".*"):
        stem = parent[:-1]  # keeps the trailing dot
        return child.startswith(stem) and child != stem
    return parent == child


def operation_granted(patterns: tuple[str, ...], op: str) -> bool:
    return any(pattern_covers(p, op) for p in patterns)


@dataclass(frozen=True, order=True)
class Destination:
    """A service name (or `*`) and an inclusive port range."""

    service: str
    port_lo: int
    port_hi: int

    def __post_init__(self) -> None:
        _check_destination(self.service, self.port_lo, self.port_hi)

    def covers(self, other: Destination) -> bool:
        return (self.service in ("*", other.service)) and (
            self.port_lo <= other.port_lo and other.port_hi <= self.port_hi
        )

    def admits(self, service: str, port: int) -> bool:
        return self.service in ("*", service) and self.port_lo <= port <= self.port_hi

    @classmethod
    def parse(cls, text: str) -> Destination:
        """`service:port`, `service:lo-hi`, `service` (any port) or `*:port`."""
        service, colon, ports = text.partition(":")
        if not colon:
            return cls(service, 0, 65535)
        m = _PORTS.fullmatch(ports)  # a typo must not silently widen to "any port"
        if m is None:
            raise WarrantError(
                Reason.MALFORMED,
                f"bad destination {text!r}: expected service:port or service:lo-hi",
            )
        lo = int(m.group(1))
        return cls(service, lo, int(m.group(2) or lo))

    def __str__(self) -> str:
        if (self.port_lo, self.port_hi) == (0, 65535):
            return self.service
        if self.port_lo == self.port_hi:
            return f"{self.service}:{self.port_lo}"
        return f"{self.service}:{self.port_lo}-{self.port_hi}"


def _check_destination(service: str, port_lo: int, port_hi: int) -> None:
    if not _SERVICE.fullmatch(service):
        raise WarrantError(Reason.MALFORMED, f"bad service name {service!r}")
    if not (0 <= port_lo <= port_hi <= 65535):
        raise WarrantError(Reason.MALFORMED, f"bad port range {port_lo}-{port_hi}")


def make_destination(service: str, port_lo: int, port_hi: int) -> Destination:
    """Destination(service, port_lo, port_hi): the same checks, built without __init__."""
    _check_destination(service, port_lo, port_hi)
    return built(Destination, {"service": service, "port_lo": port_lo, "port_hi": port_hi})


@dataclass(frozen=True)
class Grant:
    """What one link states.  None means "inherit from the parent"."""

    operations: tuple[str, ...] | None = None
    destinations: tuple[Destination, ...] | None = None
    not_before: int | None = None
    expires: int | None = None
    max_hops: int | None = None
    allowed_domains: tuple[str, ...] | None = None
    required_domains: tuple[str, ...] | None = None
    forbidden_domains: tuple[str, ...] | None = None
    rate: int | None = None  # packets per second

    def __post_init__(self) -> None:
        _check_grant(
            self.operations,
            self.destinations,
            self.not_before,
            self.expires,
            self.max_hops,
            self.allowed_domains,
            self.required_domains,
            self.forbidden_domains,
            self.rate,
        )


def _check_grant(
    operations: tuple[str, ...] | None,
    destinations: tuple[Destination, ...] | None,
    not_before: int | None,
    expires: int | None,
    max_hops: int | None,
    allowed: tuple[str, ...] | None,
    required: tuple[str, ...] | None,
    forbidden: tuple[str, ...] | None,
    rate: int | None,
) -> None:
    # Written out field by field: every decoded link runs these (through make_grant).
    pattern_ok, domain_ok = _PATTERN.fullmatch, _DOMAIN.fullmatch
    for op in operations or ():
        if not pattern_ok(op):
            check_operation_pattern(op)  # raises, with the message
    for group in (allowed, required, forbidden):
        for d in group or ():
            if not domain_ok(d):
                check_domain(d)
    if not_before is not None and not (0 <= not_before < _INT63):
        raise WarrantError(Reason.MALFORMED, "not_before out of range")
    if expires is not None and not (0 <= expires < _INT63):
        raise WarrantError(Reason.MALFORMED, "expires out of range")
    if rate is not None and not (0 <= rate < _INT63):
        raise WarrantError(Reason.MALFORMED, "rate out of range")
    if max_hops is not None and not (0 <= max_hops <= MAX_HOPS):
        raise WarrantError(Reason.MALFORMED, f"max_hops must be 0..{MAX_HOPS}")
    if operations is not None and not operations:
        raise WarrantError(Reason.MALFORMED, "empty operation list")
    if destinations is not None and not destinations:
        raise WarrantError(Reason.MALFORMED, "empty destination list")


def make_grant(
    operations: tuple[str, ...] | None,
    destinations: tuple[Destination, ...] | None,
    not_before: int | None,
    expires: int | None,
    max_hops: int | None,
    allowed: tuple[str, ...] | None,
    required: tuple[str, ...] | None,
    forbidden: tuple[str, ...] | None,
    rate: int | None,
) -> Grant:
    """Grant(...) with every field given, in field order: the same checks, built without
    __init__ (a decoder builds one per new link)."""
    _check_grant(
        operations, destinations, not_before, expires, max_hops, allowed, required, forbidden, rate
    )
    return built(
        Grant,
        {
            "operations": operations,
            "destinations": destinations,
            "not_before": not_before,
            "expires": expires,
            "max_hops": max_hops,
            "allowed_domains": allowed,
            "required_domains": required,
            "forbidden_domains": forbidden,
            "rate": rate,
        },
    )


@dataclass(frozen=True)
class Rights:
    """Effective rights after a chain of links: every field resolved."""

    operations: tuple[str, ...]
    destinations: tuple[Destination, ...]
    not_before: int
    expires: int
    max_hops: int = MAX_HOPS
    allowed_domains: tuple[str, ...] | None = None  # None: any domain
    required_domains: tuple[str, ...] = field(default=())
    forbidden_domains: tuple[str, ...] = field(default=())
    rate: int | None = None  # None: unlimited

    # Plain loops, not any() over a generator: these run on every authorization and
    # the generator costs more than the tests themselves.
    def grants_operation(self, op: str) -> bool:
        for p in self.operations:  # noqa: SIM110
            if pattern_covers(p, op):
                return True
        return False

    def grants_destination(self, service: str, port: int) -> bool:
        for d in self.destinations:  # noqa: SIM110
            if d.admits(service, port):
                return True
        return False


def _rights(
    operations: tuple[str, ...],
    destinations: tuple[Destination, ...],
    not_before: int,
    expires: int,
    max_hops: int,
    allowed: tuple[str, ...] | None,
    required: tuple[str, ...],
    forbidden: tuple[str, ...],
    rate: int | None,
) -> Rights:
    """Rights(...) with every field given, in field order (Rights has no checks of its
    own), built without __init__: every new link of a chain yields one."""
    return built(
        Rights,
        {
            "operations": operations,
            "destinations": destinations,
            "not_before": not_before,
            "expires": expires,
            "max_hops": max_hops,
            "allowed_domains": allowed,
            "required_domains": required,
            "forbidden_domains": forbidden,
            "rate": rate,
        },
    )


def _escalation(what: str) -> WarrantError:
    return WarrantError(Reason.ESCALATION, f"delegation widens {what}")


# The rights a root link narrows: everything, for all time.
_UNIVERSE = Rights(
    operations=("*",),
    destinations=(Destination("*", 0, 65535),),
    not_before=0,
    expires=_INT63 - 1,
)


def root_rights(grant: Grant) -> Rights:
    """narrow(_UNIVERSE, grant), built directly: a Grant's own checks already keep every
    field inside the universe (any operation and destination, times in 0..2**63-1, at
    most MAX_HOPS, any domain, no rate limit), so only the window's order is left."""
    ops, dsts, expires = grant.operations, grant.destinations, grant.expires
    if ops is None or dsts is None or expires is None:
        raise WarrantError(
            Reason.MALFORMED, "root link must state operations, destinations, expiry"
        )
    not_before = 0 if grant.not_before is None else grant.not_before
    if not_before > expires:
        raise WarrantError(Reason.MALFORMED, "not-before is after expiry")
    return _rights(
        ops,
        dsts,
        not_before,
        expires,
        MAX_HOPS if grant.max_hops is None else grant.max_hops,
        grant.allowed_domains,
        () if grant.required_domains is None else grant.required_domains,
        () if grant.forbidden_domains is None else grant.forbidden_domains,
        grant.rate,
    )


def narrow(parent: Rights, grant: Grant) -> Rights:
    """Apply a child's grant to its parent's rights; raise ESCALATION on any widening.

    Checks run in field order and the first widened right is the one named.
    The result is built once (not field by field): this runs on every link a
    verifier has not seen before.  A grant that states nothing returns `parent`.
    """
    operations = parent.operations
    destinations = parent.destinations
    not_before = parent.not_before
    expires = parent.expires
    max_hops = parent.max_hops
    allowed = parent.allowed_domains
    required = parent.required_domains
    forbidden = parent.forbidden_domains
    rate = parent.rate
    changed = False
    if grant.operations is not None:
        if "*" not in parent.operations:  # "*" covers every operation
            for op in grant.operations:
                for p in parent.operations:
                    if pattern_covers(p, op):
                        break
                else:
                    raise _escalation(f"operations ({op!r} not under {list(parent.operations)})")
        operations, changed = grant.operations, True
    if grant.destinations is not None:
        for d in grant.destinations:
            for pd in parent.destinations:
                if (pd.service == "*" or pd.service == d.service) and (
                    pd.port_lo <= d.port_lo and d.port_hi <= pd.port_hi
                ):  # pd.covers(d), inline: this runs for every new link
                    break
            else:
                raise _escalation(f"destinations ({d} not within parent)")
        destinations, changed = grant.destinations, True
    if grant.not_before is not None:
        if grant.not_before < parent.not_before:
            raise _escalation("time window (not-before earlier than parent)")
        not_before, changed = grant.not_before, True
    if grant.expires is not None:
        if grant.expires > parent.expires:
            raise _escalation("time window (expiry later than parent)")
        expires, changed = grant.expires, True
    if grant.max_hops is not None:
        if grant.max_hops > parent.max_hops:
            raise _escalation("max hops")
        max_hops, changed = grant.max_hops, True
    if grant.allowed_domains is not None:
        if parent.allowed_domains is not None and not set(grant.allowed_domains) <= set(
            parent.allowed_domains
        ):
            raise _escalation("allowed domains")
        allowed, changed = grant.allowed_domains, True
    if grant.required_domains is not None:
        if parent.required_domains and not set(parent.required_domains) <= set(
            grant.required_domains
        ):
            raise _escalation("required domains (drops a requirement)")
        required, changed = grant.required_domains, True
    if grant.forbidden_domains is not None:
        if parent.forbidden_domains and not set(parent.forbidden_domains) <= set(
            grant.forbidden_domains
        ):
            raise _escalation("forbidden domains (drops a prohibition)")
        forbidden, changed = grant.forbidden_domains, True
    if grant.rate is not None:
        if parent.rate is not None and grant.rate > parent.rate:
            raise _escalation("rate")
        rate, changed = grant.rate, True
    if not_before > expires:
        raise WarrantError(Reason.MALFORMED, "not-before is after expiry")
    if not changed:
        return parent
    return _rights(
        operations,
        destinations,
        not_before,
        expires,
        max_hops,
        allowed,
        required,
        forbidden,
        rate,
    )
