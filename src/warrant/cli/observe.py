"""CLI: `warrant observe`, Hubble's `observe` for Warrant flows.

Reads the agent's flow store (`--store`, SQLite) or a JSON-lines flow file
(`--input`, `-` for stdin: what `warrant listen --flows` writes, or `-o json`
output of this command), filters, and prints:

    warrant observe --verdict DROPPED --since 5m
    warrant observe --reason BAD_MAC --reason REPLAY -o table
    warrant observe --scope acme.prod --operation orders.read --from-domain partner.net -f
    warrant observe --from-ip 10.0.0.0/24 --not --port 8443 --first 100
    warrant observe --last 1000 -o jsonl > flows.jsonl      # export

Hubble's filters work as in `hubble observe`: `--from-ip/--to-ip` (an address or a
CIDR), `--port` (either port), `--from-port/--to-port`, `--protocol` (udp, tcp),
and `--not`, which negates the filter right after it (`--not --from-ip 10.0.0.7`); the
negated filters together describe the flows left out (a flow is left out when it
matches all of them).  Several values of one filter are OR-ed, different filters
AND-ed.

Output formats: `compact` (one line per flow, Hubble's compact layout), `table`, and
`json`, `jsonpb`, `jsonl` (all three the same: one observer.GetFlowsResponse per line
in protobuf's JSON mapping, as `hubble observe -o jsonpb` prints; `warrant observe
--input` reads it back).  Without `--last`, `--first`, `--since` or `--all`, the last
20 flows are shown, as Hubble does.

`--serve ADDR` (e.g. 127.0.0.1:4245) serves the store over Hubble's Observer gRPC API
instead (GetFlows with its filters and follow, ServerStatus) until interrupted; a
Hubble client filters there.  Exit codes: 0 success, 2 bad option or unreadable store.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand

from ..core.constants import Reason
from ..integration import flow
from ..integration.flowstore import FlowFilter, FlowStore, FlowStoreError, StoredFlow
from . import options

DEFAULT_STORE = os.environ.get("WARRANT_FLOW_STORE", "/var/run/warrant/flows.db")
DEFAULT_LAST = 20
FORMATS = ("compact", "table", "json", "jsonpb", "jsonl")
JSON_FORMATS = ("json", "jsonpb", "jsonl")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _fail(line: str) -> NoReturn:
    typer.secho(f"error: {line}", fg="red", err=True)
    raise typer.Exit(2)


def parse_since(text: str, now: float) -> float:
    """`30s`, `5m`, `2h`, `1d` ago; an RFC 3339 time; or Unix seconds."""
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return flow.parse_time(text)
    except ValueError:
        _fail(f"{text!r} is neither a duration (30s, 5m, 2h, 1d) nor an RFC 3339 time")


def _check_choice(values: list[str], allowed: Iterable[str], what: str) -> list[str]:
    allowed = set(allowed)
    out = []
    for v in values:
        if v.upper() not in allowed:
            _fail(f"unknown {what} {v!r}; one of: {', '.join(sorted(allowed))}")
        out.append(v.upper())
    return out


REASON_NAMES = {r.name for r in Reason} | set(flow.HUBBLE_DROP_REASONS) | {"ERROR"}
KINDS = ("INIT", "DATA", "UNKNOWN")
PROTOCOLS = ("udp", "tcp")

# `--not` applies to the option right after it: the command line is rewritten
# `--not --from-ip X` -> `--not from-ip=X` before click parses it.
NEGATABLE = (
    "verdict", "reason", "scope", "operation", "from-domain", "kind",
    "from-ip", "to-ip", "port", "from-port", "to-port", "protocol",
)  # fmt: skip


class ObserveCommand(TyperCommand):
    """`warrant observe` with Hubble's order-dependent `--not`."""

    # ctx is click's Context: typer's own (vendored) click in new typers, click in old ones
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        out: list[str] = []
        it = iter(args)
        for arg in it:
            if arg == "--":
                out += [arg, *it]
                break
            if arg != "--not":
                out.append(arg)
                continue
            nxt = next(it, "")
            name, eq, value = nxt.removeprefix("--").partition("=")
            if not nxt.startswith("--") or name not in NEGATABLE:
                raise typer.BadParameter(
                    f"must be followed by a filter option ({', '.join('--' + n for n in NEGATABLE)})",
                    ctx,
                    param_hint="--not",
                )
            if not eq:
                value = next(it, None)  # type: ignore[assignment]
                if value is None:
                    raise typer.BadParameter(f"--{name} needs a value", ctx, param_hint="--not")
            out += ["--not", f"{name}={value}"]
        return super().parse_args(ctx, out)


def _ports(values: list[int] | None) -> tuple[int, ...]:
    return tuple(values or ())


def build_filter(
    *,
    verdict: list[str] | None = None,
    reason: list[str] | None = None,
    scope: list[str] | None = None,
    operation: list[str] | None = None,
    from_domain: list[str] | None = None,
    kind: list[str] | None = None,
    from_ip: list[str] | None = None,
    to_ip: list[str] | None = None,
    port: list[int] | None = None,
    from_port: list[int] | None = None,
    to_port: list[int] | None = None,
    protocol: list[str] | None = None,
    since: float | None = None,
    until: float | None = None,
) -> FlowFilter:
    """One FlowFilter from the command's filter options (bad values end the command)."""
    for p in protocol or ():
        if p.lower() not in PROTOCOLS:
            _fail(f"unknown protocol {p!r}; one of: {', '.join(PROTOCOLS)}")
    try:
        return FlowFilter(
            verdicts=_check_choice(verdict or [], flow.VERDICTS, "verdict"),
            reasons=_check_choice(reason or [], REASON_NAMES, "reason"),
            scopes=tuple(scope or ()),
            operations=tuple(operation or ()),
            from_domains=tuple(from_domain or ()),
            kinds=_check_choice(kind or [], KINDS, "kind"),
            source_ips=tuple(from_ip or ()),
            destination_ips=tuple(to_ip or ()),
            ports=_ports(port),
            source_ports=_ports(from_port),
            destination_ports=_ports(to_port),
            protocols=tuple(p.lower() for p in protocol or ()),
            since=since,
            until=until,
        )
    except ValueError as exc:
        _fail(str(exc))


def negated_filter(items: list[str]) -> FlowFilter | None:
    """The filter of the `--not` options (None when there are none)."""
    if not items:
        return None
    fields: dict[str, Any] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in NEGATABLE:
            _fail(f"--not cannot negate --{name}")
        if name.endswith("port"):
            try:
                fields.setdefault(name.replace("-", "_"), []).append(int(value))
            except ValueError:
                _fail(f"--{name} takes a port number, not {value!r}")
        else:
            fields.setdefault(name.replace("-", "_"), []).append(value)
    return build_filter(**fields)


# ---- rendering -------------------------------------------------------------------------------
def _stamp(rec: dict[str, Any]) -> str:
    try:
        t = flow.timestamp_of(rec)
    except (KeyError, ValueError):
        return str(rec.get("time", "?"))
    return time.strftime("%b %d %H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}"


def _addr(rec: dict[str, Any], side: str) -> str:
    ip = (rec.get("IP") or {}).get(side, "?")
    l4 = rec.get("l4") or {}
    proto: dict[str, Any] = next(iter(l4.values()), {}) if l4 else {}
    port = proto.get(f"{side}_port")
    host = f"[{ip}]" if ":" in str(ip) else str(ip)
    return f"{host}:{port}" if port is not None else host


def _who(rec: dict[str, Any]) -> str:
    a = flow.authority_of(rec)
    if not a:
        return "-"
    return f"{a.get('scope')} {a.get('operation')} holder={a.get('holder')}"


def _hops(rec: dict[str, Any]) -> str:
    return ",".join(flow.hop_domains(rec)) or "-"


def compact(rec: dict[str, Any]) -> str:
    verdict = rec.get("verdict", "?")
    a = flow.authority_of(rec)
    src, dst = _addr(rec, "source"), _addr(rec, "destination")
    parts = [f"{_stamp(rec)}:", src]
    if a:
        parts.append(f"({a.get('scope')} holder={a.get('holder')})")
    parts += ["->", dst]
    if a:
        parts.append(f"{a.get('operation')} on {a.get('service')}:{a.get('port')}")
        if a.get("hops"):
            parts.append(f"via {_hops(rec)}")
    desc = rec.get("drop_reason_desc")
    reason = flow.reason_of(rec)
    if desc and desc != reason:
        parts.append(f"{desc}/{reason}")
    elif verdict != "FORWARDED":
        parts.append(reason)
    parts.append(str(verdict))
    proto = flow.ports_of(rec)[0].upper() or "?"
    parts.append(f"({proto} {flow.kind_of(rec) or '?'})")
    return " ".join(parts)


TABLE_COLUMNS = (
    ("TIMESTAMP", 19), ("SOURCE", 21), ("DESTINATION", 21), ("KIND", 7), ("VERDICT", 9),
    ("REASON", 23), ("AUTHORITY", 44), ("HOPS", 16), ("SUMMARY", 0),
)  # fmt: skip


def table_header() -> str:
    return _table_line([name for name, _ in TABLE_COLUMNS])


def table_row(rec: dict[str, Any]) -> str:
    return _table_line(
        [
            _stamp(rec),
            _addr(rec, "source"),
            _addr(rec, "destination"),
            flow.kind_of(rec) or "?",
            str(rec.get("verdict", "?")),
            flow.reason_of(rec),
            _who(rec),
            _hops(rec),
            str(rec.get("Summary", "")),
        ]
    )


def _table_line(cells: list[str]) -> str:
    out = []
    for (_, width), cell in zip(TABLE_COLUMNS, cells, strict=True):
        out.append(cell.ljust(width) if width else cell)
    return "  ".join(out).rstrip()


def render(rec: dict[str, Any], fmt: str) -> str:
    if fmt in JSON_FORMATS:
        return flow.to_json(flow.get_flows_response(rec))
    if fmt == "table":
        return table_row(rec)
    return compact(rec)


# ---- reading JSON-lines input ------------------------------------------------------------------
def parse_line(line: str) -> dict[str, Any] | None:
    """A flow record from one JSON line (a bare flow or a GetFlowsResponse); None if not one."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("flow"), dict):
        obj = obj["flow"]
    if not isinstance(obj, dict) or "verdict" not in obj or "time" not in obj:
        return None
    return obj


class _FileFeed:
    """Loads a JSON-lines file into an in-memory store; `poll()` picks up appended lines."""

    def __init__(self, source: str, store: FlowStore) -> None:
        self.store = store
        self.skipped = 0
        self._stdin = source == "-"
        self._fh: IO[str]
        if self._stdin:
            self._fh = sys.stdin
        else:
            try:
                self._fh = Path(source).open(encoding="utf-8", errors="replace")  # noqa: SIM115
            except OSError as exc:
                raise FlowStoreError(f"cannot read {source}: {exc.strerror}") from None
        self._partial = ""

    def poll(self) -> None:
        batch = []
        while True:
            line = self._fh.readline()
            if not line:
                break
            if not line.endswith("\n") and not self._stdin:
                self._partial += line  # a writer is mid-line: finish it next poll
                break
            line, self._partial = self._partial + line, ""
            rec = parse_line(line)
            if rec is None:
                if line.strip():
                    self.skipped += 1
                continue
            batch.append(rec)
        if batch:
            self.store.add_many(batch)


# ---- the command -------------------------------------------------------------------------------
def observe_command(
    store: Annotated[
        str,
        typer.Option(
            "--store",
            metavar="PATH",
            help="Flow store (SQLite) the agent writes.",
            envvar="WARRANT_FLOW_STORE",
        ),
    ] = DEFAULT_STORE,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input",
            metavar="FILE",
            help="Read JSON-lines flows from FILE ('-': stdin) instead of a store.",
        ),
    ] = None,
    verdict: Annotated[
        list[str] | None,
        typer.Option("--verdict", help="FORWARDED, DROPPED, ERROR or AUDIT (repeatable)."),
    ] = None,
    reason: Annotated[
        list[str] | None,
        typer.Option(
            "--reason",
            help="Warrant reason (BAD_MAC) or Hubble drop reason (POLICY_DENIED) (repeatable).",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Trust scope (repeatable).")
    ] = None,
    operation: Annotated[
        list[str] | None, typer.Option("--operation", help="Operation (repeatable).")
    ] = None,
    from_domain: Annotated[
        list[str] | None,
        typer.Option("--from-domain", help="Flows whose proven path crossed this domain."),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Packet kind: INIT or DATA.")
    ] = None,
    from_ip: Annotated[
        list[str] | None,
        typer.Option("--from-ip", help="Source address or CIDR (repeatable)."),
    ] = None,
    to_ip: Annotated[
        list[str] | None,
        typer.Option("--to-ip", help="Destination address or CIDR (repeatable)."),
    ] = None,
    port: Annotated[list[int] | None, options.port("Source or destination port.")] = None,
    from_port: Annotated[list[int] | None, options.port("Source port.", "--from-port")] = None,
    to_port: Annotated[list[int] | None, options.port("Destination port.", "--to-port")] = None,
    protocol: Annotated[
        list[str] | None, typer.Option("--protocol", help="L4 protocol: udp or tcp.")
    ] = None,
    not_filter: Annotated[
        list[str] | None,
        typer.Option(
            "--not",
            metavar="--FILTER VALUE",
            help="Negate the filter option that follows: --not --from-ip 10.0.0.7.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only flows since: 30s, 5m, 2h, 1d or RFC 3339.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only flows until: a duration ago or RFC 3339.")
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", min=0, help="Only the last N matching flows.")
    ] = None,
    first: Annotated[
        int | None, typer.Option("--first", min=0, help="Only the first N matching flows.")
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Every matching flow.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing flows as they arrive.")
    ] = False,
    output: Annotated[
        str, options.output_format("compact | table | json | jsonpb | jsonl")
    ] = "compact",
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve",
            metavar="ADDR",
            help="Serve the store over Hubble's Observer gRPC API on ADDR (127.0.0.1:4245).",
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.01, help="Follow: poll interval (s).", hidden=True)
    ] = 0.2,
) -> None:
    """Show Warrant flows, Hubble-style: every verdict with its reason and its authority."""
    if output not in FORMATS:
        _fail(f"-o must be one of {', '.join(FORMATS)}")
    if first is not None and (last is not None or follow):
        _fail("--first cannot be combined with --last or --follow")
    now = time.time()
    flt = build_filter(
        verdict=verdict, reason=reason, scope=scope, operation=operation,
        from_domain=from_domain, kind=kind, from_ip=from_ip, to_ip=to_ip, port=port,
        from_port=from_port, to_port=to_port, protocol=protocol,
        since=parse_since(since, now) if since else None,
        until=parse_since(until, now) if until else None,
    )  # fmt: skip
    negated = negated_filter(not_filter or [])
    exclude = [negated] if negated is not None else []
    if serve is not None:
        filters = (verdict, reason, scope, operation, from_domain, kind, from_ip, to_ip, port,
                   from_port, to_port, protocol, not_filter, since, until)  # fmt: skip
        if input_file is not None or any(filters):
            _fail("--serve takes no filters and no --input: Hubble clients send their filters")
        _serve(store, serve, interval)
        return
    if last is None and first is None and not show_all and since is None:
        last = DEFAULT_LAST
    if show_all:
        last = first = None

    feed: _FileFeed | None = None
    try:
        if input_file is not None:
            db = FlowStore(":memory:", max_rows=10_000_000, max_bytes=2**40, max_age=None)
            feed = _FileFeed(input_file, db)
            feed.poll()
        else:
            db = FlowStore(store, readonly=True)
        head = db.last_id()
        rows = db.query(flt, exclude=exclude, last=last, first=first)
    except FlowStoreError as exc:
        _fail(str(exc))

    if output == "table":
        typer.echo(table_header())
    after = max(head, rows[-1].id if rows else 0)
    _emit(rows, output)
    if not follow:
        if feed is not None and feed.skipped:
            typer.echo(f"skipped {feed.skipped} lines that are not flow records", err=True)
        return
    for row in _follow(db, flt, exclude, after, interval, feed):
        _emit([row], output)


def _serve(store: str, address: str, interval: float) -> None:
    from ..integration.observer import ObserverServer

    try:
        server = ObserverServer.start(store, address, poll_interval=interval)
    except (FlowStoreError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"observer": "listening", "address": server.address}), err=True)
    try:
        server.wait()
    finally:
        server.stop()


def _follow(
    db: FlowStore,
    flt: FlowFilter,
    exclude: list[FlowFilter],
    after: int,
    interval: float,
    feed: _FileFeed | None,
) -> Iterator[StoredFlow]:
    stop = threading.Event()
    while not stop.is_set():
        if feed is not None:
            feed.poll()
        batch = db.query(flt, exclude=exclude, after_id=after, first=1000)
        for row in batch:
            after = row.id
            yield row
        if not batch:
            stop.wait(interval)


def _emit(rows: list[StoredFlow], fmt: str) -> None:
    for row in rows:
        typer.echo(render(row.record, fmt))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("observe", cls=ObserveCommand)(observe_command)
