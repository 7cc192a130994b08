"""CLI: keys, anchors, issuing, delegating, inspecting, verifying and revoking credentials.

Exit codes: 0 success (for `verify`: the credential is valid), 1 `verify` or
`inspect` found the credential invalid (the line names the reason code), 2 the
input could not be used (missing or unreadable file, malformed key, bad time
string, bad option value).  Every failure is one line; no traceback.

Credential and revocation-list files are raw CBOR; `--base64` writes base64
text instead.  Every command that reads one accepts either form.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import cbor2
import nacl.signing
import typer
import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core import keys, yamlsafe
from ..core.anchors import Anchor, TrustStore, check_scope
from ..core.constants import CLOCK_SKEW, LINK_ID_LEN, REASONS, Reason
from ..core.credential import Credential, Link, Verifier, delegate, effective_rights, issue
from ..core.errors import WarrantError
from ..core.revocation import RevocationList, RevocationStore
from ..core.rights import Destination, Grant, Rights, check_operation_pattern
from . import options
from .options import (
    AllowOpt,
    AnchorKeyOpt,
    Base64Opt,
    DstsOpt,
    ForbidOpt,
    JsonObjectOpt,
    MaxHopsOpt,
    NotBeforeOpt,
    OpsOpt,
    OutOpt,
    RateOpt,
    RequireOpt,
    RootDstsOpt,
    RootOpsOpt,
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_INVALID = 1
EXIT_INPUT = 2
MAX_INPUT_FILE = 64 * 1024  # far above any credential (4 KiB raw), text or raw
MAX_REVOCATION_FILE = 16 * 1024 * 1024  # lists grow with every revoked link or key
MAX_KEY_FILE = 4096
MAX_ANCHOR_FILE = 8 * 1024 * 1024
_MAX_TIME = 2**63 - 1
_LAST_PRINTABLE_TIME = 253402300799  # 9999-12-31T23:59:59Z


# ---- failure handling ------------------------------------------------------------
def _fail(line: str, code: int = EXIT_INPUT) -> NoReturn:
    line = " ".join(line.split())  # some library messages span lines; ours never do
    err.print(f"[red]error[/red] {escape(line)}", soft_wrap=True)
    raise typer.Exit(code)


def _reason_line(exc: WarrantError) -> str:
    return f"{exc.reason.name} ({int(exc.reason)}): {exc.detail}"


def _reason_json(reason: Reason, detail: str) -> dict[str, Any]:
    """A reason in `--json` output: its name, its code and the detail."""
    return {"reason": reason.name, "code": int(reason), "detail": detail}


def _guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Same contract as `warrant.cli.main`, applied per command: one red line, exit 2.

    Handled here as well so the line never wraps (rich wraps at the terminal
    width), markup in file names is not interpreted, and the commands behave
    the same under `typer.testing.CliRunner` as from the shell.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except WarrantError as exc:
            _fail(_reason_line(exc))
        except (ValueError, OSError) as exc:
            _fail(str(exc))

    return wrapper


# ---- times -----------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([+-]?)((?:\d+[smhdw])+)")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")


def parse_time(text: str, now: float, option: str = "time") -> int:
    """Unix seconds from `30m` / `1h30m` / `-2d` (relative to now), `now`, unix seconds or ISO 8601.

    ISO 8601 without a zone is read as UTC.
    """
    value = text.strip()
    result: int | None = None
    if value == "now":
        result = int(now)
    elif value.isdecimal():
        result = int(value)
    elif m := _DURATION.fullmatch(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(m.group(2)))
        result = int(now) + (-seconds if m.group(1) == "-" else seconds)
    else:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            result = None
        else:
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            result = int(dt.timestamp())
    if result is None:
        raise ValueError(
            f"{option}: bad time {text!r} (use a duration such as 30m, 1h or 7d, "
            "unix seconds, or ISO 8601 such as 2026-11-20T10:00:00Z)"
        )
    if not 0 <= result <= _MAX_TIME:
        raise ValueError(f"{option}: time {text!r} is out of range")
    return result


def fmt_time(t: int | None) -> str:
    if t is None:
        return "-"
    if not 0 <= t <= _LAST_PRINTABLE_TIME:
        return str(t)
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _opt_time(text: str | None, now: float, option: str) -> int | None:
    return None if text is None else parse_time(text, now, option)


# ---- files and keys -----------------------------------------------------------------
_B64_ALPHABET = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=\r\n\t "
)


def read_limited(path: Path, what: str, limit: int = MAX_INPUT_FILE) -> bytes:
    """At most `limit` bytes of a file, or one clear error (never reads /dev/zero forever)."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ValueError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ValueError(f"{what} file {path} is too large (over {limit} bytes)")
    return data


def read_blob(path: Path, what: str, limit: int = MAX_INPUT_FILE) -> bytes:
    """The bytes of a credential or revocation-list file, raw CBOR or base64 text."""
    data = read_limited(path, what, limit)
    if not data.strip():
        raise ValueError(f"{what} file is empty: {path}")
    return decode_blob(data, what)


def decode_blob(data: bytes, what: str) -> bytes:
    """Raw CBOR is returned as is; base64 (standard or URL-safe, padding optional) decoded.

    Raw encodings always start with a CBOR array header (0x80-0x9f), which is
    never an ASCII character, so the two forms cannot be confused.
    """
    if not set(data) <= _B64_ALPHABET:
        return data
    text = b"".join(data.split())
    if b"-" in text or b"_" in text:
        text = text.replace(b"-", b"+").replace(b"_", b"/")
    text = text.rstrip(b"=")
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WarrantError(Reason.MALFORMED, f"{what} file is text but not valid base64") from None


def write_blob(path: Path, data: bytes, as_base64: bool) -> None:
    payload = base64.b64encode(data) + b"\n" if as_base64 else data
    try:
        path.write_bytes(payload)
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None


def _key_text(path: Path, what: str, option: str) -> str:
    try:
        data = read_limited(path, what, MAX_KEY_FILE)
    except ValueError as exc:
        raise keys.KeyFormatError(f"{option}: {exc}") from None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise keys.KeyFormatError(f"{option} {path}: not a Warrant {what} file") from None


def load_secret_key(path: Path, option: str) -> nacl.signing.SigningKey:
    text = _key_text(path, "secret key", option)
    try:
        return keys.decode_secret(text)
    except keys.KeyFormatError as exc:
        raise keys.KeyFormatError(f"{option} {path}: {exc}") from None


def load_public_key(value: str, option: str) -> bytes:
    """An inline `warrant-pub:` string, or a key file (a secret key file gives its public half)."""
    if value.strip().startswith(keys.PUBLIC_PREFIX):
        try:
            return keys.decode_public(value)
        except keys.KeyFormatError as exc:
            raise keys.KeyFormatError(f"{option}: {exc}") from None
    path = Path(value)
    text = _key_text(path, "public key", option).strip()
    try:
        if text.startswith(keys.SECRET_PREFIX):
            return bytes(keys.decode_secret(text).verify_key)
        return keys.decode_public(text)
    except keys.KeyFormatError as exc:
        raise keys.KeyFormatError(f"{option} {path}: {exc}") from None


def load_trust(path: Path) -> TrustStore:
    """`TrustStore.load` with a bounded read and a one-line YAML error."""
    text = read_limited(path, "anchor", MAX_ANCHOR_FILE).decode("utf-8", errors="replace")
    return _parse_trust(text, path)


def _parse_trust(text: str, path: Path) -> TrustStore:
    try:
        data = yamlsafe.load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: not valid YAML{where}: {exc.problem or exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"{path}: not valid YAML: {type(exc).__name__}") from None
    return TrustStore.from_mapping(data, str(path))


def key_id_hex(public: bytes) -> str:
    return keys.key_id(public).hex()


# ---- rights and grants --------------------------------------------------------------
def _destinations(values: Sequence[str] | None) -> tuple[Destination, ...] | None:
    if not values:
        return None
    return tuple(Destination.parse(v.strip()) for v in values)


def _tuple(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in values) if values else None


def build_grant(
    *,
    ops: Sequence[str] | None,
    dsts: Sequence[str] | None,
    not_before: int | None,
    expires: int | None,
    max_hops: int | None,
    allow: Sequence[str] | None,
    require: Sequence[str] | None,
    forbid: Sequence[str] | None,
    rate: int | None,
) -> Grant:
    return Grant(
        operations=_tuple(ops),
        destinations=_destinations(dsts),
        not_before=not_before,
        expires=expires,
        max_hops=max_hops,
        allowed_domains=_tuple(allow),
        required_domains=_tuple(require),
        forbidden_domains=_tuple(forbid),
        rate=rate,
    )


def grant_lines(grant: Grant) -> list[str]:
    lines = []
    if grant.operations is not None:
        lines.append("ops " + ", ".join(grant.operations))
    if grant.destinations is not None:
        lines.append("dst " + ", ".join(str(d) for d in grant.destinations))
    if grant.not_before is not None:
        lines.append("not before " + fmt_time(grant.not_before))
    if grant.expires is not None:
        lines.append("expires " + fmt_time(grant.expires))
    if grant.max_hops is not None:
        lines.append(f"max hops {grant.max_hops}")
    if grant.allowed_domains is not None:
        lines.append("allow domains " + ", ".join(grant.allowed_domains))
    if grant.required_domains is not None:
        lines.append("require domains " + ", ".join(grant.required_domains))
    if grant.forbidden_domains is not None:
        lines.append("forbid domains " + ", ".join(grant.forbidden_domains))
    if grant.rate is not None:
        lines.append(f"rate {grant.rate} pps")
    return lines or ["(inherits everything)"]


def grant_json(grant: Grant) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if grant.operations is not None:
        out["operations"] = list(grant.operations)
    if grant.destinations is not None:
        out["destinations"] = [str(d) for d in grant.destinations]
    for name in ("not_before", "expires", "max_hops", "rate"):
        value = getattr(grant, name)
        if value is not None:
            out[name] = value
    for name in ("allowed_domains", "required_domains", "forbidden_domains"):
        value = getattr(grant, name)
        if value is not None:
            out[name] = list(value)
    return out


def rights_json(rights: Rights) -> dict[str, Any]:
    return {
        "operations": list(rights.operations),
        "destinations": [str(d) for d in rights.destinations],
        "not_before": rights.not_before,
        "expires": rights.expires,
        "max_hops": rights.max_hops,
        "allowed_domains": None if rights.allowed_domains is None else list(rights.allowed_domains),
        "required_domains": list(rights.required_domains),
        "forbidden_domains": list(rights.forbidden_domains),
        "rate": rights.rate,
    }


def rights_rows(rights: Rights) -> list[tuple[str, str]]:
    allowed = rights.allowed_domains
    return [
        ("operations", ", ".join(rights.operations)),
        ("destinations", ", ".join(str(d) for d in rights.destinations)),
        ("not before", fmt_time(rights.not_before) if rights.not_before else "-"),
        ("expires", fmt_time(rights.expires)),
        ("max hops", str(rights.max_hops)),
        ("allowed domains", "any" if allowed is None else ", ".join(allowed) or "none"),
        ("required domains", ", ".join(rights.required_domains) or "none"),
        ("forbidden domains", ", ".join(rights.forbidden_domains) or "none"),
        ("rate", "unlimited" if rights.rate is None else f"{rights.rate} pps"),
    ]


def rights_summary(rights: Rights) -> str:
    ops = ",".join(rights.operations)
    dsts = ",".join(str(d) for d in rights.destinations)
    return f"{ops} on {dsts} until {fmt_time(rights.expires)}"


# ---- keygen ---------------------------------------------------------------------
def _create_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


@_guarded
def keygen_cmd(
    out_path: Annotated[
        Path, typer.Argument(metavar="OUT", help="Secret key file; OUT.pub too.", readable=False)
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Generate an Ed25519 key pair: OUT (secret, mode 0600) and OUT.pub."""
    pub_path = out_path.with_name(out_path.name + ".pub")
    for p in (out_path, pub_path):
        if p.is_dir():
            raise ValueError(f"{p} is a directory")
        if (p.exists() or p.is_symlink()) and not force:
            raise ValueError(f"{p} already exists (use --force to overwrite)")
    key = keys.generate()
    public = bytes(key.verify_key)
    try:
        for p in (out_path, pub_path):
            if force and (p.exists() or p.is_symlink()):
                p.unlink()
        _create_private(out_path, keys.encode_secret(key) + "\n")
        pub_path.write_text(keys.encode_public(public) + "\n")
    except OSError as exc:
        raise ValueError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
    out.print(f"secret key  {escape(str(out_path))} (mode 0600)", soft_wrap=True)
    out.print(f"public key  {escape(str(pub_path))}", soft_wrap=True)
    out.print(keys.encode_public(public), soft_wrap=True)
    out.print(f"anchor id   {keys.anchor_id(public).hex()}")
    out.print(f"key id      {key_id_hex(public)}")


# ---- anchors ----------------------------------------------------------------------
def _load_or_new(path: Path) -> TrustStore:
    """The anchor file's store; an empty store for a missing or blank file."""
    if not path.exists():
        return TrustStore()
    text = read_limited(path, "anchor", MAX_ANCHOR_FILE).decode("utf-8", errors="replace")
    return _parse_trust(text, path) if text.strip() else TrustStore()


def _save(store: TrustStore, path: Path) -> None:
    text = yaml.safe_dump(store.to_mapping(), sort_keys=False)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None


@_guarded
def anchors_add_cmd(
    file: Annotated[
        Path, typer.Argument(help="Anchor file (YAML); created if missing.", readable=False)
    ],
    scope: Annotated[str, options.scope("Trust scope, e.g. acme.prod.")],
    key: Annotated[str, options.public_key("--key", "Anchor public key file.")],
    not_before: Annotated[str | None, options.time_option("--not-before")] = None,
    not_after: Annotated[str | None, options.time_option("--not-after")] = None,
) -> None:
    """Trust KEY as an anchor of SCOPE (re-adding a key updates its validity)."""
    now = time.time()
    check_scope(scope)
    public = load_public_key(key, "--key")
    nbf = _opt_time(not_before, now, "--not-before")
    naf = _opt_time(not_after, now, "--not-after")
    if nbf is not None and naf is not None and nbf > naf:
        raise ValueError("--not-before is after --not-after")
    store = _load_or_new(file)
    anchor = Anchor(scope, public, nbf, naf)
    existing = store.anchors.get(scope, [])
    replaced = [a for a in existing if a.public == public]
    if replaced:
        store.anchors[scope] = [anchor if a.public == public else a for a in existing]
    else:
        store.add(anchor)
    _save(store, file)
    verb = "updated" if replaced else "added"
    out.print(
        f"{verb} anchor {anchor.anchor_id.hex()} for scope {scope} in {escape(str(file))} "
        f"(valid {_validity(anchor, now)})",
        soft_wrap=True,
    )


@_guarded
def anchors_add_relay_cmd(
    file: Annotated[
        Path, typer.Argument(help="Anchor file (YAML); created if missing.", readable=False)
    ],
    domain: Annotated[str, options.domains("--domain", "Transit domain the relay speaks for.")],
    key: Annotated[str, options.public_key("--key", "Relay public key file.")],
) -> None:
    """Trust KEY as a relay of transit DOMAIN."""
    public = load_public_key(key, "--key")
    store = _load_or_new(file)
    known = public in store.relays.get(domain, set())
    store.add_relay(domain, public)
    _save(store, file)
    what = "already trusted" if known else "added"
    out.print(
        f"{what}: relay {key_id_hex(public)} for domain {domain} in {escape(str(file))}",
        soft_wrap=True,
    )


def _validity(anchor: Anchor, now: float, sep: str = ", ") -> str:
    nbf, naf = anchor.not_before, anchor.not_after
    parts = []
    if nbf is not None:
        parts.append(f"from {fmt_time(nbf)}")
    if naf is not None:
        parts.append(f"until {fmt_time(naf)}")
    if naf is not None and now > naf:
        parts.append("(expired)")
    elif nbf is not None and now < nbf:
        parts.append("(not yet valid)")
    return sep.join(parts) or "always"


@_guarded
def anchors_show_cmd(
    file: Annotated[Path, typer.Argument(help="Anchor file (YAML).", readable=False)],
) -> None:
    """List the anchors of every scope, and the trusted relays."""
    store = load_trust(file)
    now = time.time()
    table = Table(
        title=f"Trust anchors in {escape(str(file))}", box=box.SIMPLE_HEAVY, pad_edge=False
    )
    table.add_column("scope", style="bold", no_wrap=True)
    table.add_column("anchor id", no_wrap=True, min_width=16)
    table.add_column("key", overflow="fold", min_width=12)
    table.add_column("validity", no_wrap=True, min_width=26)
    for scope in store.scopes():
        for a in store.anchors[scope]:
            table.add_row(
                scope, a.anchor_id.hex(), keys.encode_public(a.public), _validity(a, now, "\n")
            )
    if not store.anchors:
        out.print(f"no anchors in {escape(str(file))}")
    else:
        out.print(table)
    if store.relays:
        relays = Table(title="Trusted relays", box=box.SIMPLE_HEAVY)
        relays.add_column("domain", style="bold")
        relays.add_column("key id", no_wrap=True, min_width=8)
        relays.add_column("key", overflow="fold")
        for domain in sorted(store.relays):
            for public in sorted(store.relays[domain]):
                relays.add_row(domain, key_id_hex(public), keys.encode_public(public))
        out.print(relays)


# ---- issue and delegate -------------------------------------------------------------
def _written(verb: str, path: Path, cred: Credential, data: bytes, as_base64: bool) -> None:
    rights = effective_rights(cred.links)
    links = len(cred.links)
    out.print(
        f"{verb} {escape(str(path))}: scope {cred.scope}, {links} link{'s' * (links > 1)}, "
        f"holder {key_id_hex(cred.holder)}, {len(data)} bytes{', written as base64' * as_base64}",
        soft_wrap=True,
    )
    out.print(f"  rights   {escape(rights_summary(rights))}", soft_wrap=True)
    out.print(f"  link id  {cred.link_ids()[-1].hex()}")


def _encode_checked(cred: Credential) -> bytes:
    """Encode, and refuse to write what a verifier would refuse to decode (size, depth)."""
    data = cred.encode()
    try:
        Credential.decode(data)
    except WarrantError as exc:
        raise WarrantError(exc.reason, f"refusing to write: {exc.detail}") from None
    return data


@_guarded
def issue_cmd(
    anchor_key: AnchorKeyOpt,
    scope: Annotated[str, options.scope("Trust scope of the credential.")],
    holder: Annotated[str, options.public_key("--holder", "Holder public key file (or string).")],
    expires: Annotated[str, options.time_option("--expires")],
    out_path: OutOpt,
    ops: RootOpsOpt = None,
    dsts: RootDstsOpt = None,
    not_before: NotBeforeOpt = None,
    max_hops: MaxHopsOpt = None,
    allow: AllowOpt = None,
    require: RequireOpt = None,
    forbid: ForbidOpt = None,
    rate: RateOpt = None,
    as_base64: Base64Opt = False,
) -> None:
    """Issue a root credential: the anchor grants rights to HOLDER within SCOPE."""
    now = time.time()
    if not ops:
        raise ValueError("--op is required (at least one operation, e.g. --op orders.read)")
    if not dsts:
        raise ValueError("--dst is required (at least one destination, e.g. --dst orders:8443)")
    grant = build_grant(
        ops=ops,
        dsts=dsts,
        not_before=_opt_time(not_before, now, "--not-before"),
        expires=parse_time(expires, now, "--expires"),
        max_hops=max_hops,
        allow=allow,
        require=require,
        forbid=forbid,
        rate=rate,
    )
    check_scope(scope)
    key = load_secret_key(anchor_key, "--anchor-key")
    holder_public = load_public_key(holder, "--holder")
    cred = issue(key, scope, holder_public, grant)
    data = _encode_checked(cred)
    write_blob(out_path, data, as_base64)
    _written("issued", out_path, cred, data, as_base64)


def read_credential(path: Path) -> Credential:
    return Credential.decode(read_blob(path, "credential"))


@_guarded
def delegate_cmd(
    cred_path: Annotated[
        Path, typer.Argument(metavar="CRED", help="Parent credential file.", readable=False)
    ],
    key: Annotated[Path, options.secret_key("Secret key of the parent's holder.")],
    to: Annotated[str, options.public_key("--to", "New holder public key file (or string).")],
    out_path: OutOpt,
    ops: OpsOpt = None,
    dsts: DstsOpt = None,
    not_before: NotBeforeOpt = None,
    expires: Annotated[str | None, options.time_option("--expires")] = None,
    max_hops: MaxHopsOpt = None,
    allow: AllowOpt = None,
    require: Annotated[
        list[str] | None,
        options.domains("--require-domain", "Add a transit domain that must be crossed."),
    ] = None,
    forbid: Annotated[
        list[str] | None, options.domains("--forbid-domain", "Add a transit domain to avoid.")
    ] = None,
    rate: RateOpt = None,
    as_base64: Base64Opt = False,
) -> None:
    """Delegate CRED to a new holder, narrowing any right; omitted rights are inherited.

    A delegation may only narrow: widening any right is refused with ESCALATION.
    Required and forbidden domains are added to the parent's.
    """
    now = time.time()
    parent = read_credential(cred_path)
    holder_key = load_secret_key(key, "--key")
    new_holder = load_public_key(to, "--to")
    parent_rights = effective_rights(parent.links)
    grant = build_grant(
        ops=ops,
        dsts=dsts,
        not_before=_opt_time(not_before, now, "--not-before"),
        expires=_opt_time(expires, now, "--expires"),
        max_hops=max_hops,
        allow=allow,
        require=_merged(parent_rights.required_domains, require),
        forbid=_merged(parent_rights.forbidden_domains, forbid),
        rate=rate,
    )
    cred = delegate(parent, holder_key, new_holder, grant)
    data = _encode_checked(cred)
    write_blob(out_path, data, as_base64)
    _written("delegated", out_path, cred, data, as_base64)


def _merged(parent: Iterable[str], extra: Sequence[str] | None) -> list[str] | None:
    if not extra:
        return None
    return sorted(set(parent) | {e.strip() for e in extra})


# ---- inspect --------------------------------------------------------------------------
def _issuer(cred: Credential, i: int) -> str:
    if i == 0:
        return f"anchor {cred.anchor_id.hex()}"
    return f"key {key_id_hex(cred.links[i - 1].holder)}"


def _link_json(cred: Credential, i: int, link: Link, link_id: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"depth": i + 1}
    if i == 0:
        entry["issuer_anchor_id"] = cred.anchor_id.hex()
    else:
        entry["issuer_key_id"] = key_id_hex(cred.links[i - 1].holder)
    entry |= {
        "holder_key_id": key_id_hex(link.holder),
        "holder": keys.encode_public(link.holder),
        "stated": grant_json(link.grant),
        "link_id": link_id.hex(),
    }
    return entry


def _looks_like_revocation_list(data: bytes) -> bool:
    try:
        outer = cbor2.loads(data)
    except Exception:  # any garbage: not a revocation list; the credential path reports it
        return False
    return isinstance(outer, list) and len(outer) == 2 and all(isinstance(x, bytes) for x in outer)


def _inspect_revocation_list(path: Path, data: bytes, as_json: bool) -> None:
    rl = RevocationList.decode(data)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "type": "revocation_list",
                    "scope": rl.scope,
                    "anchor_id": rl.anchor_id.hex(),
                    "serial": rl.serial,
                    "link_ids": sorted(i.hex() for i in rl.link_ids),
                    "keys": sorted(keys.encode_public(k) for k in rl.keys),
                },
                indent=2,
            )
        )
        return
    out.print(
        f"Revocation list {escape(str(path))}: scope {rl.scope}, anchor {rl.anchor_id.hex()}, "
        f"serial {rl.serial} (signature not checked; verify loads it against the anchors)",
        soft_wrap=True,
    )
    table = Table(box=box.SIMPLE_HEAVY)
    table.add_column("revokes")
    table.add_column("value", overflow="fold")
    for i in sorted(rl.link_ids):
        table.add_row("link id", i.hex())
    for k in sorted(rl.keys):
        table.add_row(f"key {key_id_hex(k)}", keys.encode_public(k))
    if rl.link_ids or rl.keys:
        out.print(table)
    else:
        out.print("revokes nothing")


@_guarded
def inspect_cmd(
    cred_path: Annotated[
        Path, typer.Argument(metavar="CRED", help="Credential file.", readable=False)
    ],
    as_json: JsonObjectOpt = False,
) -> None:
    """Decode a credential: every link, the effective rights and the chain digest.

    Signatures are not checked here; use `warrant verify`.  A revocation list
    file is recognised and listed too.
    """
    data = read_blob(cred_path, "credential", MAX_REVOCATION_FILE)
    try:
        if _looks_like_revocation_list(data):
            _inspect_revocation_list(cred_path, data, as_json)
            return
        cred = Credential.decode(data)
    except WarrantError as exc:
        _fail(_reason_line(exc), EXIT_INVALID)
    link_ids = cred.link_ids()
    problem: WarrantError | None = None
    rights: Rights | None = None
    try:
        rights = effective_rights(cred.links)
    except WarrantError as exc:
        problem = exc

    if as_json:
        obj: dict[str, Any] = {
            "type": "credential",
            "scope": cred.scope,
            "anchor_id": cred.anchor_id.hex(),
            "depth": len(cred.links),
            "size": len(data),
            "holder": keys.encode_public(cred.holder),
            "holder_key_id": key_id_hex(cred.holder),
            "links": [
                _link_json(cred, i, link, lid)
                for i, (link, lid) in enumerate(zip(cred.links, link_ids, strict=True))
            ],
            "effective_rights": None if rights is None else rights_json(rights),
            "chain_digest": cred.chain_digest.hex(),
            "base64": base64.b64encode(data).decode(),
        }
        if problem is not None:
            obj["error"] = _reason_json(problem.reason, problem.detail)
        typer.echo(json.dumps(obj, indent=2))
    else:
        depth = len(cred.links)
        out.print(
            f"Credential {escape(str(cred_path))}: scope [bold]{cred.scope}[/bold], "
            f"{depth} link{'s' * (depth > 1)}, {len(data)} bytes",
            soft_wrap=True,
        )
        table = Table(box=box.SIMPLE_HEAVY)
        table.add_column("depth", justify="right")
        table.add_column("issuer → holder, link id", no_wrap=True)
        table.add_column("rights stated")
        for i, (link, lid) in enumerate(zip(cred.links, link_ids, strict=True)):
            table.add_row(
                str(i + 1),
                f"{_issuer(cred, i)}\n→ key {key_id_hex(link.holder)}\n{lid.hex()}",
                escape("\n".join(grant_lines(link.grant))),
                end_section=True,
            )
        out.print(table)
        if rights is not None:
            eff = Table(title="Effective rights", box=box.SIMPLE_HEAVY, show_header=False)
            eff.add_column("right", style="bold")
            eff.add_column("value")
            for name, value in rights_rows(rights):
                eff.add_row(name, escape(value))
            out.print(eff)
        out.print(f"holder        {keys.encode_public(cred.holder)}", soft_wrap=True)
        out.print(f"chain digest  {cred.chain_digest.hex()}", soft_wrap=True)
    if problem is not None:
        _fail(_reason_line(problem), EXIT_INVALID)


# ---- verify --------------------------------------------------------------------------
def _check_request(rights: Rights, op: str | None, dst: str | None) -> None:
    if op is not None and not rights.grants_operation(check_operation_pattern(op.strip())):
        raise WarrantError(Reason.OPERATION_NOT_GRANTED, f"operation {op!r} is not granted")
    if dst is not None:
        wanted = Destination.parse(dst.strip())
        if not any(d.covers(wanted) for d in rights.destinations):
            raise WarrantError(
                Reason.DESTINATION_NOT_GRANTED, f"destination {dst!r} is not granted"
            )


@_guarded
def verify_cmd(
    cred_path: Annotated[
        Path, typer.Argument(metavar="CRED", help="Credential file.", readable=False)
    ],
    anchors: Annotated[Path, options.anchors_file("Anchor file.")],
    revocations: Annotated[
        list[Path] | None,
        typer.Option(
            "--revocations", metavar="RL", help="Signed revocation list; repeat.", readable=False
        ),
    ] = None,
    at: Annotated[
        str | None, options.time_option("--at", "Verify as of TIME (default now).")
    ] = None,
    scopes: Annotated[
        list[str] | None, options.scope("Admit only this scope (repeat); default every scope.")
    ] = None,
    op: Annotated[
        str | None, typer.Option("--op", metavar="OP", help="Also require this operation.")
    ] = None,
    dst: Annotated[str | None, options.destinations("Also require this destination.")] = None,
    skew: Annotated[
        int,
        typer.Option("--skew", metavar="SECONDS", min=0, help="Clock-skew tolerance in seconds."),
    ] = CLOCK_SKEW,
    as_json: JsonObjectOpt = False,
) -> None:
    """Verify CRED against trust anchors and revocation lists.

    Exit 0 when valid, 1 when invalid (the line names the reason code), 2 when
    the input cannot be used.
    """
    now = time.time()
    when = now if at is None else parse_time(at, now, "--at")
    if op is not None:
        check_operation_pattern(op.strip())
    if dst is not None:
        Destination.parse(dst.strip())
    trust = load_trust(anchors)
    if scopes:
        trust = trust.restricted_to(check_scope(s) for s in scopes)
    store = RevocationStore()
    for rl_path in revocations or ():
        try:
            store.load(read_blob(rl_path, "revocation list", MAX_REVOCATION_FILE), trust)
        except WarrantError as exc:
            raise ValueError(f"revocation list {rl_path}: {_reason_line(exc)}") from None
    data = read_blob(cred_path, "credential")

    try:
        chain = Verifier(trust, store, skew=skew).verify(data, when)
        _check_request(chain.rights, op, dst)
    except WarrantError as exc:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "valid": False,
                        **_reason_json(exc.reason, exc.detail),
                        "at": int(when),
                    },
                    indent=2,
                )
            )
        else:
            out.print(f"[red]INVALID[/red] {escape(_reason_line(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None

    if as_json:
        typer.echo(
            json.dumps(
                {
                    "valid": True,
                    **_reason_json(Reason.OK, REASONS[Reason.OK].summary),
                    "at": int(when),
                    "scope": chain.scope,
                    "anchor_id": chain.anchor.anchor_id.hex(),
                    "holder": keys.encode_public(chain.holder),
                    "holder_key_id": key_id_hex(chain.holder),
                    "depth": chain.depth,
                    "rights": rights_json(chain.rights),
                    "chain_digest": chain.chain_digest.hex(),
                    "link_ids": [i.hex() for i in chain.link_ids],
                    "checked": {"op": op, "dst": dst},
                },
                indent=2,
            )
        )
        return
    asked = ""
    if op is not None or dst is not None:
        asked = " for " + " on ".join(x for x in (op, dst) if x is not None)
    out.print(
        f"[green]VALID[/green]{escape(asked)}: scope {chain.scope}, depth {chain.depth}, "
        f"holder {key_id_hex(chain.holder)}, {escape(rights_summary(chain.rights))}, "
        f"digest {chain.chain_digest.hex()[:16]}",
        soft_wrap=True,
    )


# ---- revoke ---------------------------------------------------------------------------
def _link_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"--link-id {text!r} is not hex") from None
    if len(raw) != LINK_ID_LEN:
        raise ValueError(
            f"--link-id {text!r}: a link id is {LINK_ID_LEN} bytes ({2 * LINK_ID_LEN} hex digits)"
        )
    return raw


@_guarded
def revoke_cmd(
    anchor_key: AnchorKeyOpt,
    scope: Annotated[str, options.scope("Scope the list applies to.")],
    serial: Annotated[
        int, typer.Option("--serial", metavar="N", min=0, help="Higher serials replace lower ones.")
    ],
    out_path: OutOpt,
    link_ids: Annotated[
        list[str] | None,
        typer.Option("--link-id", metavar="HEX", help="Link id to revoke (see inspect); repeat."),
    ] = None,
    revoked_keys: Annotated[
        list[str] | None, options.public_key("--key", "Public key to revoke; repeat.")
    ] = None,
    as_base64: Base64Opt = False,
) -> None:
    """Write a signed revocation list (it replaces the anchor's lists with lower serials)."""
    check_scope(scope)
    if serial >= 2**63:
        raise ValueError("--serial is out of range")
    ids = [_link_id(t) for t in link_ids or ()]
    pubs = [load_public_key(k, "--key") for k in revoked_keys or ()]
    key = load_secret_key(anchor_key, "--anchor-key")
    rl = RevocationList.sign(key, scope, serial, ids, pubs)
    data = rl.encode()
    write_blob(out_path, data, as_base64)
    out.print(
        f"wrote revocation list {escape(str(out_path))}: scope {scope}, "
        f"anchor {rl.anchor_id.hex()}, serial {serial}, "
        f"{len(rl.link_ids)} link id(s), {len(rl.keys)} key(s)",
        soft_wrap=True,
    )


# ---- registration --------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    """Add the authority commands to the `warrant` app."""
    app.command("keygen")(keygen_cmd)
    anchors_app = typer.Typer(
        help="Trust anchors per scope, and trusted relays (YAML file).", no_args_is_help=True
    )
    anchors_app.command("add")(anchors_add_cmd)
    anchors_app.command("add-relay")(anchors_add_relay_cmd)
    anchors_app.command("show")(anchors_show_cmd)
    app.add_typer(anchors_app, name="anchors")
    app.command("issue")(issue_cmd)
    app.command("delegate")(delegate_cmd)
    app.command("inspect")(inspect_cmd)
    app.command("verify")(verify_cmd)
    app.command("revoke")(revoke_cmd)
