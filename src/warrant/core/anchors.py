"""Trust anchors per scope: the only roots a verifier accepts.

Federation is configuration: a receiver trusts scope B's credentials because
its anchor file lists B's anchor keys, never because of a runtime handshake.
The file is YAML (or JSON):

    scopes:
      acme.prod:
        anchors:
          - key: "warrant-pub:..."
            not_before: 1767225600   # optional, unix seconds
            not_after: 1798761600    # optional
    relays:                          # optional: relays trusted per transit domain
      partner.net:
        - "warrant-pub:..."
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import keys, yamlsafe
from .constants import Reason
from .errors import WarrantError
from .rights import check_domain

_SCOPE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def check_scope(scope: str) -> str:
    if not scope or len(scope) > 63 or not set(scope) <= _SCOPE_CHARS:
        raise WarrantError(Reason.MALFORMED, f"bad scope name {scope!r}")
    return scope


@dataclass(frozen=True)
class Anchor:
    scope: str
    public: bytes
    not_before: int | None = None
    not_after: int | None = None

    @property
    def anchor_id(self) -> bytes:
        return keys.anchor_id(self.public)


@dataclass
class TrustStore:
    """Scope -> anchors, and transit domain -> trusted relay keys."""

    anchors: dict[str, list[Anchor]] = field(default_factory=dict)
    relays: dict[str, set[bytes]] = field(default_factory=dict)

    def add(self, anchor: Anchor) -> None:
        self.anchors.setdefault(check_scope(anchor.scope), []).append(anchor)

    def add_relay(self, domain: str, public: bytes) -> None:
        self.relays.setdefault(check_domain(domain), set()).add(public)

    def scopes(self) -> list[str]:
        return sorted(self.anchors)

    def find(self, scope: str, anchor_id: bytes) -> Anchor:
        """The anchor of `scope` with this id, or WRONG_SCOPE / UNKNOWN_ANCHOR."""
        if scope not in self.anchors:
            raise WarrantError(Reason.WRONG_SCOPE, f"scope {scope!r} is not trusted here")
        for anchor in self.anchors[scope]:
            if anchor.anchor_id == anchor_id:
                return anchor
        raise WarrantError(
            Reason.UNKNOWN_ANCHOR, f"issuer {anchor_id.hex()} is not an anchor of scope {scope!r}"
        )

    def relay_domain(self, public: bytes) -> str | None:
        for domain, members in self.relays.items():
            if public in members:
                return domain
        return None

    def restricted_to(self, scopes: Iterable[str]) -> TrustStore:
        wanted = set(scopes)
        return TrustStore(
            {s: list(a) for s, a in self.anchors.items() if s in wanted},
            {d: set(r) for d, r in self.relays.items()},
        )

    # ---- file format --------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Any, source: str = "anchors") -> TrustStore:
        if not isinstance(data, Mapping) or "scopes" not in data:
            raise ValueError(f"{source}: expected a mapping with a 'scopes' key")
        store = cls()
        scopes = data["scopes"] or {}
        if not isinstance(scopes, Mapping):
            raise ValueError(f"{source}: 'scopes' must map scope names to anchors")
        for scope, body in scopes.items():
            entries = body.get("anchors") if isinstance(body, Mapping) else None
            if not isinstance(entries, list) or not entries:
                raise ValueError(f"{source}: scope {scope!r} needs a non-empty 'anchors' list")
            for i, entry in enumerate(entries):
                where = f"{source}: scopes.{scope}.anchors[{i}]"
                if isinstance(entry, str):
                    entry = {"key": entry}
                if not isinstance(entry, Mapping) or "key" not in entry:
                    raise ValueError(f"{where}: needs a 'key'")
                try:
                    public = keys.decode_public(str(entry["key"]))
                    check_scope(str(scope))
                except (keys.KeyFormatError, WarrantError) as exc:
                    raise ValueError(f"{where}: {exc}") from None
                nbf, naf = entry.get("not_before"), entry.get("not_after")
                for name, value in (("not_before", nbf), ("not_after", naf)):
                    if value is not None and type(value) is not int:
                        raise ValueError(f"{where}: {name} must be unix seconds")
                if nbf is not None and naf is not None and nbf > naf:
                    raise ValueError(f"{where}: not_before is after not_after")
                if any(a.public == public for a in store.anchors.get(str(scope), [])):
                    raise ValueError(f"{where}: key listed twice in scope {scope!r}")
                store.add(Anchor(str(scope), public, nbf, naf))
        relays = data.get("relays") or {}
        if not isinstance(relays, Mapping):
            raise ValueError(f"{source}: 'relays' must map domains to key lists")
        for domain, members in relays.items():
            if not isinstance(members, list):
                raise ValueError(f"{source}: relays.{domain} must be a list of keys")
            for key_text in members:
                try:
                    store.add_relay(str(domain), keys.decode_public(str(key_text)))
                except (keys.KeyFormatError, WarrantError) as exc:
                    raise ValueError(f"{source}: relays.{domain}: {exc}") from None
        return store

    def to_mapping(self) -> dict[str, Any]:
        scopes: dict[str, Any] = {}
        for scope, anchors in sorted(self.anchors.items()):
            out = []
            for a in anchors:
                entry: dict[str, Any] = {"key": keys.encode_public(a.public)}
                if a.not_before is not None:
                    entry["not_before"] = a.not_before
                if a.not_after is not None:
                    entry["not_after"] = a.not_after
                out.append(entry)
            scopes[scope] = {"anchors": out}
        data: dict[str, Any] = {"scopes": scopes}
        if self.relays:
            data["relays"] = {
                d: sorted(keys.encode_public(k) for k in ks)
                for d, ks in sorted(self.relays.items())
            }
        return data

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        text = keys.read_text(path, "anchor")
        try:
            data = yamlsafe.load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ValueError(f"{path}{at}: not valid YAML ({problem})") from None
        return cls.from_mapping(data, str(path))

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_mapping(), sort_keys=False))
