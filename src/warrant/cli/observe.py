"""CLI: `warrant observe`, Hubble's `observe` for Warrant flows.

Reads the agent's flow store (`--store`, SQLite) or a JSON-lines flow file
(`--input`, `-` for stdin: what `warrant listen --flows` writes, or `-o json`
output of this command), filters, and prints:

    warrant observe --verdict DROPPED --since 5m
    warrant observe --reason BAD_MAC --reason REPLAY -o table
    warrant observe --scope acme.prod --operation orders.read --from-domain partner.net -f
    warrant observe --last 1000 -o jsonl > flows.jsonl      # export

Output formats: `compact` (one line per flow, Hubble's compact layout), `table`,
`json` (Hubble's GetFlowsResponse per line: the flow under `flow`, as
`hubble observe -o json` prints), `jsonl` (the bare flow records, the export
format).  Without `--last`, `--since` or `--all`, the last 20 flows are shown,
as Hubble does.  Exit codes: 0 success, 2 bad option or unreadable store.
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

from ..core.constants import Reason
from ..integration import flow
from ..integration.flowstore import FlowFilter, FlowStore, FlowStoreError, StoredFlow

DEFAULT_STORE = os.environ.get("WARRANT_FLOW_STORE", "/var/run/warrant/flows.db")
DEFAULT_LAST = 20
FORMATS = ("compact", "table", "json", "jsonl")
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
    a = rec.get("authority")
    if not a:
        return "-"
    return f"{a.get('scope')} {a.get('operation')} holder={a.get('holder')}"


def _hops(rec: dict[str, Any]) -> str:
    return ",".join(flow.hop_domains(rec)) or "-"


def compact(rec: dict[str, Any]) -> str:
    verdict = rec.get("verdict", "?")
    a = rec.get("authority")
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
    parts.append(f"(UDP {rec.get('kind', '?')})")
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
            str(rec.get("kind", "?")),
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
    if fmt == "json":
        return flow.to_json(flow.get_flows_response(rec))
    if fmt == "jsonl":
        return flow.to_json(rec)
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
    since: Annotated[
        str | None, typer.Option("--since", help="Only flows since: 30s, 5m, 2h, 1d or RFC 3339.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only flows until: a duration ago or RFC 3339.")
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", min=0, help="Only the last N matching flows.")
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Every matching flow.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing flows as they arrive.")
    ] = False,
    output: Annotated[
        str, typer.Option("--output", "-o", help="compact | table | json | jsonl")
    ] = "compact",
    interval: Annotated[
        float, typer.Option("--interval", min=0.01, help="Follow: poll interval (s).", hidden=True)
    ] = 0.2,
) -> None:
    """Show Warrant flows, Hubble-style: every verdict with its reason and its authority."""
    if output not in FORMATS:
        _fail(f"-o must be one of {', '.join(FORMATS)}")
    now = time.time()
    flt = FlowFilter(
        verdicts=_check_choice(verdict or [], flow.VERDICTS, "verdict"),
        reasons=_check_choice(reason or [], REASON_NAMES, "reason"),
        scopes=tuple(scope or ()),
        operations=tuple(operation or ()),
        from_domains=tuple(from_domain or ()),
        kinds=_check_choice(kind or [], KINDS, "kind"),
        since=parse_since(since, now) if since else None,
        until=parse_since(until, now) if until else None,
    )
    if last is None and not show_all and since is None:
        last = DEFAULT_LAST
    if show_all:
        last = None

    feed: _FileFeed | None = None
    try:
        if input_file is not None:
            db = FlowStore(":memory:", max_rows=10_000_000, max_bytes=2**40, max_age=None)
            feed = _FileFeed(input_file, db)
            feed.poll()
        else:
            db = FlowStore(store, readonly=True)
        head = db.last_id()
        rows = db.query(flt, last=last)
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
    for row in _follow(db, flt, after, interval, feed):
        _emit([row], output)


def _follow(
    db: FlowStore, flt: FlowFilter, after: int, interval: float, feed: _FileFeed | None
) -> Iterator[StoredFlow]:
    stop = threading.Event()
    while not stop.is_set():
        if feed is not None:
            feed.poll()
        batch = db.query(flt, after_id=after, first=1000)
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
    app.command("observe")(observe_command)
