"""The flow store: an embedded SQLite file of flow records, bounded and queryable.

The agent (or `warrant listen`) writes every verdict's record into it; `warrant
observe` reads it from another process, with Hubble-like filters, and can
follow it as it grows.  Like Hubble's ring buffer it forgets the oldest flows
first: it holds at most `max_rows` records, at most about `max_bytes` of
record JSON, and none older than `max_age` seconds.

    store = FlowStore("/var/run/warrant/flows.db", max_rows=100_000)
    listener = await listen(host, port, receiver, on_flow=FlowSink(store))
    ...
    for row in store.query(FlowFilter(verdicts=("DROPPED",)), last=20):
        print(row.record["Summary"])

SQLite runs in WAL mode, so one writer and any number of readers can share
the file.  The indexed columns (time, verdict, reasons, scope, operation, hop
domains) are derived from the record; the record itself is stored as JSON.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import flow

DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_AGE = 24 * 3600.0
_SEP = "\x1f"  # separates hop domains in the `domains` column
_PRUNE_TO = 0.9  # when a bound is crossed, prune down to 90% of it (amortises the DELETE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    drop_reason_desc TEXT NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    operation TEXT NOT NULL,
    domains TEXT NOT NULL,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_t ON flows (t);
CREATE INDEX IF NOT EXISTS flows_verdict ON flows (verdict, id);
CREATE INDEX IF NOT EXISTS flows_reason ON flows (reason, id);
"""


class FlowStoreError(ValueError):
    """The store cannot be opened or read (the message names the file)."""


@dataclass(frozen=True)
class FlowFilter:
    """Every given field must match (AND); several values in one field are OR-ed.

    `reasons` match Warrant's reason (BAD_MAC) or Hubble's drop_reason_desc
    (POLICY_DENIED).  `from_domains` match flows whose proven hop path crossed
    the domain.  `since` / `until` are Unix times.  The rest are Hubble's flow filters:
    `source_ips` / `destination_ips` an address or a CIDR, `ports` either port,
    `protocols` the L4 protocol (udp, tcp), `node_names` a name or a glob (`k8s-*`),
    `ip_versions` IPv4 / IPv6, `directions` INGRESS / EGRESS.
    """

    verdicts: Sequence[str] = ()
    reasons: Sequence[str] = ()
    scopes: Sequence[str] = ()
    operations: Sequence[str] = ()
    from_domains: Sequence[str] = ()
    kinds: Sequence[str] = ()
    since: float | None = None
    until: float | None = None
    uuids: Sequence[str] = ()
    source_ips: Sequence[str] = ()
    destination_ips: Sequence[str] = ()
    ports: Sequence[int] = ()
    source_ports: Sequence[int] = ()
    destination_ports: Sequence[int] = ()
    protocols: Sequence[str] = ()
    node_names: Sequence[str] = ()
    ip_versions: Sequence[str] = ()
    directions: Sequence[str] = ()

    def __post_init__(self) -> None:
        for value in (*self.source_ips, *self.destination_ips):
            try:
                _network(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or CIDR") from None
        for port in (*self.ports, *self.source_ports, *self.destination_ports):
            if not 0 <= int(port) <= 65535:
                raise ValueError(f"port {port} is out of range")

    def sql(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []

        def any_of(column: str, values: Sequence[Any], upper: bool = True) -> None:
            if values:
                vals = [v.upper() if upper and isinstance(v, str) else v for v in values]
                clauses.append(f"{column} IN ({','.join('?' * len(vals))})")
                args.extend(vals)

        def each(template: str, values: Sequence[Any]) -> None:
            if values:
                clauses.append("(" + " OR ".join(template for _ in values) + ")")
                args.extend(values)

        any_of("verdict", self.verdicts)
        if self.reasons:
            vals = [r.upper() for r in self.reasons]
            marks = ",".join("?" * len(vals))
            clauses.append(f"(reason IN ({marks}) OR drop_reason_desc IN ({marks}))")
            args.extend(vals + vals)
        any_of("scope", self.scopes, upper=False)
        any_of("operation", self.operations, upper=False)
        any_of("kind", self.kinds)
        if self.from_domains:
            ors = " OR ".join("instr(domains, ?) > 0" for _ in self.from_domains)
            clauses.append(f"({ors})")
            args.extend(f"{_SEP}{d}{_SEP}" for d in self.from_domains)
        if self.since is not None:
            clauses.append("t >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("t <= ?")
            args.append(self.until)
        any_of("json_extract(record, '$.uuid')", self.uuids, upper=False)
        each("warrant_ip_in(source, ?)", self.source_ips)
        each("warrant_ip_in(json_extract(record, '$.IP.destination'), ?)", self.destination_ips)
        sport, dport = _PORT.format(side="source"), _PORT.format(side="destination")
        any_of(sport, [int(p) for p in self.source_ports])
        any_of(dport, [int(p) for p in self.destination_ports])
        each(f"(? IN ({sport}, {dport}))", [int(p) for p in self.ports])
        each(
            "json_type(record, '$.l4.' || ?) IS NOT NULL",
            [_L4.get(p.lower(), "-") for p in self.protocols],
        )
        each("coalesce(json_extract(record, '$.node_name'), '') GLOB ?", self.node_names)
        any_of(
            "coalesce(json_extract(record, '$.IP.ipVersion'), 'IP_NOT_USED')",
            self.ip_versions,
            upper=False,
        )
        any_of("json_extract(record, '$.traffic_direction')", self.directions)
        return (" AND ".join(clauses) or "1"), args


# The L4 port of a record, whichever protocol it has (SQL over the record's JSON).
_PORT = (
    "coalesce(json_extract(record, '$.l4.UDP.{side}_port'), "
    "json_extract(record, '$.l4.TCP.{side}_port'), 0)"
)
# Hubble's protocol filter names -> flow.Layer4 field names.
_L4 = {"udp": "UDP", "tcp": "TCP"}


def where(
    include: Sequence[FlowFilter] = (), exclude: Sequence[FlowFilter] = ()
) -> tuple[str, list[Any]]:
    """Hubble's whitelist/blacklist: any include filter matches (none given: all flows) and
    no exclude filter matches."""
    clauses: list[str] = []
    args: list[Any] = []
    if include:
        parts = [f.sql() for f in include]
        clauses.append("(" + " OR ".join(f"({sql})" for sql, _ in parts) + ")")
        args.extend(a for _, values in parts for a in values)
    if exclude:
        parts = [f.sql() for f in exclude]
        clauses.append("NOT (" + " OR ".join(f"({sql})" for sql, _ in parts) + ")")
        args.extend(a for _, values in parts for a in values)
    return (" AND ".join(clauses) or "1"), args


@functools.lru_cache(maxsize=256)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text.strip(), strict=False)


def _ip_in(address: str | None, net: str) -> int:
    """SQLite function: is `address` the address or inside the CIDR `net`?"""
    if not address:
        return 0
    try:
        return int(ipaddress.ip_address(address.split("%", 1)[0]) in _network(net))
    except ValueError:
        return 0


@dataclass(frozen=True)
class StoredFlow:
    id: int
    record: dict[str, Any]


@dataclass(frozen=True)
class StoreStats:
    rows: int
    bytes: int
    oldest: float | None
    newest: float | None
    pruned: int


class FlowStore:
    """A bounded SQLite flow store.  Safe to share between threads of one process."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float | None = DEFAULT_MAX_AGE,
        readonly: bool = False,
        clock: Any = time.time,
    ) -> None:
        if max_rows <= 0 or max_bytes <= 0 or (max_age is not None and max_age <= 0):
            raise ValueError("flow store bounds must be positive")
        self.path = Path(path)
        self.max_rows, self.max_bytes, self.max_age = max_rows, max_bytes, max_age
        self.readonly = readonly
        self._clock = clock
        self._lock = threading.Lock()
        self.pruned = 0
        try:
            if readonly:
                if not self.path.exists():
                    raise FlowStoreError(f"no flow store at {self.path}")
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
                self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._db.executescript(_SCHEMA)
                self._db.commit()
            self._db.create_function("warrant_ip_in", 2, _ip_in, deterministic=True)
            row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM flows").fetchone()
        except sqlite3.DatabaseError as exc:
            raise FlowStoreError(f"{self.path}: not a Warrant flow store ({exc})") from None
        self._rows, self._bytes = int(row[0]), int(row[1])
        self._last_age_prune = float("-inf")

    # ---- writing -------------------------------------------------------------------------
    def add(self, record: dict[str, Any]) -> int:
        """Store one flow record; returns its id.  Prunes when a bound is crossed."""
        return self.add_many([record])[-1]

    def add_many(self, records: Iterable[dict[str, Any]]) -> list[int]:
        if self.readonly:
            raise FlowStoreError(f"{self.path} is open read-only")
        rows = [_row(r) for r in records]
        ids: list[int] = []
        with self._lock:
            cur = self._db.cursor()
            for row in rows:
                cur.execute(
                    "INSERT INTO flows (t, verdict, reason, drop_reason_desc, kind, scope, "
                    "operation, domains, source, size, record) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    row,
                )
                ids.append(int(cur.lastrowid or 0))
                self._rows += 1
                self._bytes += int(row[9])
            self._prune_locked()
            self._db.commit()
        return ids

    def _prune_locked(self) -> None:
        deleted = 0
        now = self._clock()
        if self.max_age is not None and now - self._last_age_prune >= 1.0:
            self._last_age_prune = now
            deleted += self._delete("DELETE FROM flows WHERE t < ?", (now - self.max_age,))
        if self._rows > self.max_rows:
            keep = max(1, int(self.max_rows * _PRUNE_TO))
            deleted += self._delete(
                "DELETE FROM flows WHERE id <= (SELECT id FROM flows ORDER BY id DESC "
                "LIMIT 1 OFFSET ?)",
                (keep,),
            )
        if self._bytes > self.max_bytes:
            target = int(self.max_bytes * _PRUNE_TO)
            # newest-first running total; delete everything older than where it crosses target
            cut = self._db.execute(
                "SELECT id FROM (SELECT id, sum(size) OVER (ORDER BY id DESC) AS total "
                "FROM flows) WHERE total > ? ORDER BY id DESC LIMIT 1",
                (target,),
            ).fetchone()
            if cut is not None:
                deleted += self._delete("DELETE FROM flows WHERE id <= ?", (cut[0],))
        if deleted:
            self.pruned += deleted
            row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM flows").fetchone()
            self._rows, self._bytes = int(row[0]), int(row[1])
            self._db.execute("PRAGMA incremental_vacuum")

    def _delete(self, sql: str, args: tuple[Any, ...]) -> int:
        return int(self._db.execute(sql, args).rowcount or 0)

    # ---- reading -------------------------------------------------------------------------
    def query(
        self,
        flt: FlowFilter | Sequence[FlowFilter] | None = None,
        *,
        exclude: Sequence[FlowFilter] = (),
        last: int | None = None,
        first: int | None = None,
        after_id: int = 0,
    ) -> list[StoredFlow]:
        """Matching flows, oldest first.  `last=N`: only the newest N of them.

        `flt`: one filter, or several of which any may match (Hubble's whitelist);
        `exclude`: flows matching any of these are left out (Hubble's blacklist)."""
        include = [flt] if isinstance(flt, FlowFilter) else list(flt or ())
        cond, args = where(include, exclude)
        sql = f"SELECT id, record FROM flows WHERE id > ? AND {cond}"
        params: list[Any] = [after_id, *args]
        if last is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
            params.append(last)
        else:
            sql += " ORDER BY id"
            if first is not None:
                sql += " LIMIT ?"
                params.append(first)
        with self._lock:
            try:
                rows = self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise FlowStoreError(f"{self.path}: {exc}") from None
        return [StoredFlow(int(i), json.loads(text)) for i, text in rows]

    def follow(
        self,
        flt: FlowFilter | Sequence[FlowFilter] | None = None,
        *,
        exclude: Sequence[FlowFilter] = (),
        after_id: int = 0,
        interval: float = 0.2,
        stop: threading.Event | None = None,
    ) -> Iterator[StoredFlow]:
        """Yield matching flows as they arrive (polls; `stop` ends it)."""
        while stop is None or not stop.is_set():
            batch = self.query(flt, exclude=exclude, after_id=after_id, first=1000)
            for row in batch:
                after_id = row.id
                yield row
            if not batch:
                if stop is not None:
                    stop.wait(interval)
                else:
                    time.sleep(interval)

    def last_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()
        return int(row[0])

    def stats(self) -> StoreStats:
        with self._lock:
            row = self._db.execute(
                "SELECT count(*), coalesce(sum(size), 0), min(t), max(t) FROM flows"
            ).fetchone()
        return StoreStats(int(row[0]), int(row[1]), row[2], row[3], self.pruned)

    def export_jsonl(self, out: IO[str], flt: FlowFilter | None = None) -> int:
        """Write matching flow records as JSON lines, oldest first; returns how many."""
        n, after = 0, 0
        while True:
            batch = self.query(flt, after_id=after, first=5000)
            if not batch:
                return n
            for row in batch:
                out.write(flow.to_json(row.record) + "\n")
            n += len(batch)
            after = batch[-1].id

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> FlowStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FlowSink:
    """An `on_flow` callable for the endpoint: each record goes into a FlowStore.

        listener = await listen(host, port, receiver, on_flow=FlowSink(FlowStore(path)))

    Records are written in one transaction per `batch` records, when the oldest
    pending record is `max_delay` seconds old, and on `flush()` (the endpoint
    calls it after every batch of datagrams it reads), so the per-packet cost is
    a list append.  A store failure is counted in `errors`, never raised into
    the packet path.
    """

    def __init__(
        self,
        store: FlowStore,
        batch: int = 256,
        max_delay: float = 0.5,
        clock: Any = time.monotonic,
    ) -> None:
        self.store = store
        self.batch = max(1, batch)
        self.max_delay = max_delay
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._first = 0.0
        self.errors = 0
        self.written = 0

    def __call__(self, record: dict[str, Any]) -> None:
        if not self._pending:
            self._first = self._clock()
        self._pending.append(record)
        if len(self._pending) >= self.batch or self._clock() - self._first >= self.max_delay:
            self.flush()

    def close(self) -> None:
        self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            self.store.add_many(pending)
            self.written += len(pending)
        except (sqlite3.Error, FlowStoreError, TypeError, ValueError):
            self.errors += len(pending)


def _row(rec: dict[str, Any]) -> tuple[Any, ...]:
    text = json.dumps(rec, separators=(",", ":"))
    try:
        t = flow.timestamp_of(rec)
    except (KeyError, ValueError):
        t = time.time()
    auth = flow.authority_of(rec)
    domains = flow.hop_domains(rec)
    ip = rec.get("IP") or {}
    return (
        t,
        str(rec.get("verdict", "")),
        flow.reason_of(rec),
        str(rec.get("drop_reason_desc", "")),
        flow.kind_of(rec),
        str(auth.get("scope", "")),
        str(auth.get("operation", "")),
        (_SEP + _SEP.join(domains) + _SEP) if domains else "",
        str(ip.get("source", "")),
        len(text),
        text,
    )
