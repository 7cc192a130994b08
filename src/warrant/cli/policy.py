"""CLI: `warrant policy check FILE` and `warrant policy compile FILE`.

FILE holds WarrantPolicy documents (the CRD's YAML, one or more, `---`
separated) or a plain admission policy (src/warrant/core/admission.py's format).

    warrant policy check deploy/kubernetes/example-policy.yaml
    warrant policy compile deploy/kubernetes/example-policy.yaml --labels app=orders
    warrant policy compile policy.yaml -o yaml > admission.yaml   # for `warrant listen --policy`

`check` validates everything, including the anchors file the policy names, and
prints one summary line; every error is one line naming the file and the line
to fix.  `compile` shows the rules in the order the receiver evaluates them
(deny rules first), and what the kernel datapath receives.  Exit codes: 0 valid,
1 invalid (the line says why), 2 bad option.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ..core.admission import Policy, PolicyError, Rule
from ..integration import crd_policy
from . import options
from .options import LabelsOpt, PolicyAnchorsDirOpt

EXIT_INVALID = 1
EXIT_USAGE = 2

policy_app = typer.Typer(
    name="policy",
    help="Check and compile receiver policies (WarrantPolicy CRD or plain admission YAML).",
    no_args_is_help=True,
)

DATAPATH_NOTE = (
    "datapath: policy is applied in user space, when a session's INIT is verified and again "
    "to every live session when the policy is reloaded (a session it now refuses leaves the "
    "kernel map); each admitted session becomes one entry of the kernel's warrant_sessions "
    "map (session id -> MAC key, expiry, port, pinned hops). No policy entries are "
    "installed in the kernel; DATA packets are checked against their session only."
)


def _fail(line: str, code: int = EXIT_INVALID) -> NoReturn:
    typer.secho(f"error: {' '.join(line.split())}", fg="red", err=True)
    raise typer.Exit(code)


def parse_labels(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    labels: dict[str, str] = {}
    for item in values:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            key, eq, value = part.partition("=")
            if not eq or not key:
                _fail(f"--labels wants key=value pairs, got {part!r}", EXIT_USAGE)
            labels[key.strip()] = value.strip()
    return labels


def _read(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(crd_policy.MAX_DOCUMENT + 1)
    except OSError as exc:
        _fail(f"cannot read policy {path}: {exc.strerror}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{path}: not UTF-8 text")


def _compile(
    path: Path, labels: dict[str, str] | None, anchors_dir: Path | None
) -> tuple[crd_policy.Compiled | None, Policy]:
    text = _read(path)
    try:
        if crd_policy.is_warrant_policy(text):
            docs = crd_policy.load_text(text, str(path))
            compiled = crd_policy.compile_documents(docs, labels=labels)
            return compiled, crd_policy.policy_of(compiled, anchors_dir or path.parent)
        return None, Policy.from_text(text, str(path), anchors_dir or path.parent)
    except PolicyError as exc:
        _fail(str(exc))


def check_command(
    file: Annotated[
        Path, typer.Argument(help="WarrantPolicy YAML or admission policy YAML.", readable=False)
    ],
    labels: LabelsOpt = None,
    anchors_dir: PolicyAnchorsDirOpt = None,
) -> None:
    """Validate a policy file; errors name the file and line."""
    compiled, policy = _compile(file, parse_labels(labels), anchors_dir)
    model = policy.model
    scopes = ", ".join(policy.trust.scopes()) or "none"
    rules = f"{len(model.rules)} allow rule(s), {len(model.deny)} deny rule(s)"
    if compiled is None:
        typer.echo(f"ok: {file}: admission policy: {rules}, default {model.default}; "
                   f"anchored scopes: {scopes}")  # fmt: skip
        return
    refs = ", ".join(d.policy.ref for d in compiled.selected)
    typer.echo(
        f"ok: {file}: {len(compiled.selected)} WarrantPolicy ({refs}): {rules}, "
        f"default {model.default}; anchored scopes: {scopes}"
    )
    for d in compiled.skipped:
        typer.echo(f"  not selected: {d.policy.ref} (line {d.line}): endpointSelector "
                   f"{d.policy.spec.endpoint_selector.describe()}")  # fmt: skip


def compile_command(
    file: Annotated[
        Path, typer.Argument(help="WarrantPolicy YAML or admission policy YAML.", readable=False)
    ],
    labels: LabelsOpt = None,
    anchors_dir: PolicyAnchorsDirOpt = None,
    output: Annotated[str, options.output_format("table | yaml (admission file) | json")] = "table",
) -> None:
    """Show the rules a policy compiles to, in evaluation order, and the datapath entries."""
    if output not in ("table", "yaml", "json"):
        _fail("-o must be one of table, yaml, json", EXIT_USAGE)
    compiled, policy = _compile(file, parse_labels(labels), anchors_dir)
    rows = _rows(compiled, policy)
    if output == "yaml":
        if compiled is not None:
            typer.echo(crd_policy.admission_yaml(compiled), nl=False)
        else:
            typer.echo(file.read_text(), nl=False)
        return
    if output == "json":
        typer.echo(json.dumps(_json(compiled, policy, rows), indent=2))
        return
    _table(compiled, policy, rows)


# ---- rendering -------------------------------------------------------------------------------
def _rows(compiled: crd_policy.Compiled | None, policy: Policy) -> list[dict[str, Any]]:
    if compiled is not None:
        return [
            {"action": r.action, "origin": r.origin, "line": r.line, **_rule(r.rule)}
            for r in compiled.rules
        ]
    m = policy.model
    return [{"action": "deny", "origin": "deny", "line": None, **_rule(r)} for r in m.deny] + [
        {"action": "allow", "origin": "rules", "line": None, **_rule(r)} for r in m.rules
    ]


def _rule(r: Rule) -> dict[str, Any]:
    return {
        "name": r.name,
        "scopes": r.scopes,
        "issuers": r.issuers,
        "operations": r.operations,
        "services": r.services,
        "ports": r.ports,
        "max_hops": r.max_hops,
        "via": r.via,
        "not_via": r.not_via,
    }


def port_ranges(ports: list[int] | None) -> str:
    if ports is None:
        return "*"
    out: list[str] = []
    start = prev = None
    for p in sorted(ports):
        if start is None:
            start = prev = p
        elif prev is not None and p == prev + 1:
            prev = p
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = p
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out) + "/udp"


def _list(v: list[str] | None) -> str:
    return "*" if v is None else ",".join(v)


def _path(row: dict[str, Any]) -> str:
    parts = []
    if row["max_hops"] is not None:
        parts.append(f"maxHops {row['max_hops']}")
    if row["via"]:
        parts.append(f"via {','.join(row['via'])}")
    if row["not_via"]:
        parts.append(f"notVia {','.join(row['not_via'])}")
    return "; ".join(parts) or "-"


def _table(
    compiled: crd_policy.Compiled | None, policy: Policy, rows: list[dict[str, Any]]
) -> None:
    m = policy.model
    if compiled is not None:
        for d in compiled.selected:
            typer.echo(f"policy: {d.policy.ref} (line {d.line}) selects "
                       f"{d.policy.spec.endpoint_selector.describe()}")  # fmt: skip
        for d in compiled.skipped:
            typer.echo(f"skipped: {d.policy.ref} (line {d.line}): its endpointSelector does not "
                       "select these labels")  # fmt: skip
        typer.echo(f"anchors: {_anchors_text(m.anchors)} ({compiled.anchors_source})")
    relays = ", ".join(sorted(policy.trust.relays)) or "none"
    typer.echo(
        f"trust: scopes {', '.join(policy.trust.scopes()) or 'none'}; relay domains {relays}"
    )
    lim = m.limits
    typer.echo(
        f"default: {m.default}   limits: {lim.init_rate_per_source:g} INIT/s per source "
        f"(burst {lim.init_burst:g}), cookies above {lim.load_threshold:g} INIT/s, "
        f"{lim.max_sessions} sessions"
    )
    header = ("#", "ACTION", "RULE", "SCOPES", "ISSUERS", "OPERATIONS", "SERVICES", "PORTS", "PATH")
    cells = [
        (
            str(i + 1),
            r["action"],
            r["name"],
            _list(r["scopes"]),
            _list(r["issuers"]),
            _list(r["operations"]),
            _list(r["services"]),
            port_ranges(r["ports"]),
            _path(r),
        )
        for i, r in enumerate(rows)
    ]
    widths = [max(len(c[k]) for c in [header, *cells]) for k in range(len(header))]
    for c in [header, *cells]:
        typer.echo("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
    if not rows:
        typer.echo("(no rules: every packet gets the default)")
    typer.echo("evaluation: deny rules first (any match drops, POLICY_DENIED); then the first "
               "matching allow rule decides and its path constraints apply; else the default.")  # fmt: skip
    typer.echo(DATAPATH_NOTE)


def _anchors_text(anchors: Any) -> str:
    return anchors if isinstance(anchors, str) else "inline"


def _json(
    compiled: crd_policy.Compiled | None, policy: Policy, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    m = policy.model
    return {
        "format": "WarrantPolicy" if compiled is not None else "admission",
        "policies": [d.policy.ref for d in compiled.selected] if compiled else [],
        "skipped": [d.policy.ref for d in compiled.skipped] if compiled else [],
        "default": m.default,
        "trusted_scopes": m.scopes,
        "anchored_scopes": policy.trust.scopes(),
        "relay_domains": sorted(policy.trust.relays),
        "limits": m.limits.model_dump(),
        "rules": rows,
        "datapath": {
            "policy_entries": 0,
            "per_admitted_session": "warrant_sessions[session_id] = "
            "{k_mac, expires_ns, port, hop_count, hops[]}",
            "note": DATAPATH_NOTE,
        },
    }


policy_app.command("check")(check_command)
policy_app.command("compile")(compile_command)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
