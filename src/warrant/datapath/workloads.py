"""The transparent-mode workload registry (SPEC 13): what the node agent serves.

Per workload: its host-side veth, IPv4 address, and either the holder key and credential
its traffic leaves with (sending side) or the service it serves and the inner
protocol/ports it accepts (receiving side), or both.  Two sources give the agent the same
`Workload` list: the JSON file `warrant workload add|list|remove` keeps (`RegistryFile`)
and WarrantWorkload objects of the Kubernetes API (integration/kube_workloads.py).  Both
validate with `check_workload`, so a workload refused by one is refused by the other for
the same one-line reason.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import nacl.signing

from ..core import credential as cred_mod
from ..core import keys
from ..core.constants import TP_CLAIM_OPERATION
from ..core.errors import WarrantError

PROTOS = {"icmp": socket.IPPROTO_ICMP, "tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}


def parse_allow(text: str) -> tuple[int, int, int]:
    """`tcp/80`, `udp/5000-5010`, `icmp` -> (protocol, port_lo, port_hi)."""
    name, _, ports = text.partition("/")
    if name not in PROTOS:
        raise ValueError(f"allow {text!r}: protocol must be one of {', '.join(PROTOS)}")
    proto = PROTOS[name]
    if proto == socket.IPPROTO_ICMP:
        if ports:
            raise ValueError(f"allow {text!r}: icmp takes no port")
        return proto, 0, 0
    lo_s, _, hi_s = ports.partition("-")
    try:
        lo, hi = int(lo_s), int(hi_s or lo_s)
    except ValueError:
        raise ValueError(f"allow {text!r}: expected {name}/PORT or {name}/LO-HI") from None
    if not 0 < lo <= hi <= 65535:
        raise ValueError(f"allow {text!r}: ports must satisfy 0 < LO <= HI <= 65535")
    return proto, lo, hi


class RegistryError(ValueError):
    pass


@dataclass
class Workload:
    name: str
    veth: str
    address: str
    key: str | None = None  # holder secret key file (sending side)
    credential: str | None = None  # credential file, raw CBOR or base64 (sending side)
    service: str | None = None  # service this workload serves (receiving side)
    allow: list[str] = field(default_factory=list)  # inner proto/ports it accepts

    def holder(self) -> tuple[nacl.signing.SigningKey, bytes] | None:
        """Holder key and credential bytes, or None when the workload has no credential."""
        if self.key is None or self.credential is None:
            return None
        key = keys.load_secret(Path(self.key))
        return key, credential_bytes(Path(self.credential))


def credential_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"credential {path}: {exc.strerror}") from None
    stripped = data.strip()
    if stripped and all(chr(c).isalnum() or chr(c) in "+/=-_" for c in stripped):
        data = base64.urlsafe_b64decode(
            stripped.replace(b"+", b"-").replace(b"/", b"_") + b"=" * (-len(stripped) % 4)
        )
    return data


def load_registry(path: Path) -> list[Workload]:
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text())
        return [Workload(**w) for w in raw["workloads"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"registry {path} does not parse: {exc}") from None


def save_registry(path: Path, workloads: list[Workload]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"workloads": [asdict(w) for w in workloads]}, indent=2) + "\n")
    os.replace(tmp, path)


def check_workload(w: Workload, current: list[Workload]) -> None:
    """RegistryError unless `w` may join `current`: a duplicate name or veth, an address
    that is not IPv4, unreadable or mismatched key/credential files, bad allow entries."""
    if any(x.name == w.name for x in current):
        raise RegistryError(f"workload {w.name!r} is already registered")
    if any(x.veth == w.veth for x in current):
        raise RegistryError(f"veth {w.veth!r} is already registered")
    try:
        if not isinstance(ipaddress.ip_address(w.address), ipaddress.IPv4Address):
            raise ValueError
    except ValueError:
        raise RegistryError(f"address {w.address!r}: an IPv4 address is required") from None
    if (w.key is None) != (w.credential is None):
        raise RegistryError("--key and --credential go together")
    if w.key is not None and w.credential is not None:
        try:
            key = keys.load_secret(Path(w.key))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"key {w.key}: {exc}") from None
        try:
            cred = cred_mod.Credential.decode(credential_bytes(Path(w.credential)))
        except WarrantError as exc:
            raise RegistryError(f"credential {w.credential}: {exc.detail}") from None
        if cred.holder != bytes(key.verify_key):
            raise RegistryError(f"credential {w.credential}: its holder is not key {w.key}")
    for a in w.allow:
        try:
            parse_allow(a)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
    if w.allow and w.service is None:
        raise RegistryError("--allow needs --service (what the workload serves)")


def add_workload(path: Path, w: Workload) -> None:
    """Validate and append (check_workload)."""
    current = load_registry(path)
    check_workload(w, current)
    save_registry(path, [*current, w])


def delegate_workload(
    node_credential: bytes,
    node_key: nacl.signing.SigningKey,
    service: str,
    port: int,
    lifetime: int = 86400,
    now: float | None = None,
) -> tuple[nacl.signing.SigningKey, bytes]:
    """A fresh holder key for a workload and a credential the node delegates to it from
    its own: operation `ip` on `service` at `port` only, for at most `lifetime` seconds
    (never past the node credential).  ESCALATION when the node's credential does not
    grant that much (core.credential.delegate checks the narrowing)."""
    from ..core.rights import Destination, Grant

    parent = cred_mod.Credential.decode(node_credential)
    expires = int(time.time() if now is None else now) + lifetime
    expires = min(expires, cred_mod.effective_rights(parent.links).expires)
    key = keys.generate()
    grant = Grant(operations=(TP_CLAIM_OPERATION,),
                  destinations=(Destination(service, port, port),), expires=expires)  # fmt: skip
    return key, cred_mod.delegate(parent, node_key, bytes(key.verify_key), grant).encode()


def remove_workload(path: Path, name: str) -> None:
    current = load_registry(path)
    kept = [w for w in current if w.name != name]
    if len(kept) == len(current):
        raise RegistryError(f"no workload {name!r} in {path}")
    save_registry(path, kept)


# ---- sources: where the agent takes its registry from --------------------------------
class RegistrySource(Protocol):
    origin: str  # "file" or "kube", for logs and `warrant workload list`
    refusals: int  # registries (file) or objects (kube) refused so far

    def poll(self) -> list[Workload] | None:
        """The whole registry when it changed since the last poll, else None;
        RegistryError when it changed into something unusable (the agent keeps its own)."""
        ...

    def close(self) -> None: ...


_UNSEEN = (-1, -1)


class RegistryFile:
    """The JSON file as a source: changes are seen by its mtime and size."""

    origin = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.refusals = 0
        self._stamp: tuple[int, int] | None = _UNSEEN

    def poll(self) -> list[Workload] | None:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            return load_registry(self.path)
        except RegistryError:
            self.refusals += 1
            raise

    def close(self) -> None:
        pass
