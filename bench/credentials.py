#!/usr/bin/env python3
"""Credential size and verify+authorize time: Warrant vs Biscuit (vs Macaroons).

    python3 bench/credentials.py            # full run (a few minutes)
    python3 bench/credentials.py --quick    # under a minute

Equal rights.  Every contender is built from the same Warrant grants (below):
the root link's rights become Biscuit's authority block and the Macaroon's
first caveats, each delegation becomes one Biscuit attenuation block and a
further group of caveats.  Operation patterns, destinations (service + port
range) and the not-before/expiry window are checks that the authorizer
evaluates against the request; max hops, allowed/required/forbidden domains
and rate are stated as facts (Biscuit) or caveats (Macaroon) and carried, as
Warrant carries them for the per-packet path checks that none of the three
evaluates here.  A chain of depth d is Warrant's root link plus d-1
delegations, Biscuit's authority block plus d-1 attenuation blocks (one
signature per level on both sides), a macaroon with d caveat groups.  Before
timing, a probe grid of requests and times checks that all three give the same
verdicts, so "equal rights" is tested, not asserted.

Measured per call, minimum over passes (median also printed); every pass runs
every contender once, in turn, so machine noise falls on all of them alike.
  - Warrant: ``Verifier.verify(bytes, now)`` then ``rights.grants_operation``
    and ``rights.grants_destination``, from a fresh bytes object (decode
    included):
      cold         prefix cache and decode caches cleared before each call;
      warm         whole chain cached (the steady state of a live session);
      warm-prefix  prefix cached, last link never seen (a fresh delegation per
                   call, issued beforehand); at depth 1 there is no prefix, so
                   this is a never-seen root link with warm verifier state.
  - Biscuit (biscuit-python): ``Biscuit.from_bytes(bytes, root)`` (parse and
    verify every block signature) then ``authorizer.authorize()`` from an
    authorizer builder prepared once with the request and policy (generous to
    Biscuit: no datalog parsing in the timed call).  biscuit-python keeps no
    cache, so one figure serves as its cold, warm and warm-prefix.
  - Macaroon (pymacaroons, reference only: verifying needs the root secret):
    deserialize from base64 and verify with a general caveat checker.
  - ed25519 floor: d libsodium verifies of the chain's own link signatures.

The last line printed is one JSON object: ratios first (Warrant / Biscuit),
then absolute figures (microseconds, bytes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings
import nacl.signing

from warrant.core import credential as wc
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.errors import WarrantError
from warrant.core.rights import Destination, Grant

ba: Any  # the optional contenders: None when not installed
pymacaroons: Any
try:
    import biscuit_auth as ba
except ImportError:  # pragma: no cover - optional bench dependency
    ba = None
try:
    import pymacaroons as _pymacaroons
    from pymacaroons.serializers import BinarySerializer

    pymacaroons = _pymacaroons
except ImportError:  # pragma: no cover - optional bench dependency
    pymacaroons = None

# ---- the scenario ------------------------------------------------------------------
SCOPE = "acme.prod"
DAY = 86400
NBF = 1767225600  # 2026-01-01T00:00:00Z
EXP = 1988150400  # 2033-01-01T00:00:00Z
NOW = 1796040000  # 2026-11-30T12:00:00Z
REQUEST = ("read.orders.list", "db", 5432)  # operation, service, port
DEPTHS = (1, 2, 3)

ROOT_GRANT = Grant(
    operations=("read.*", "write.logs"),
    destinations=(Destination("db", 5432, 5432), Destination("cache", 6379, 6380)),
    not_before=NBF,
    expires=EXP,
    max_hops=4,
    allowed_domains=("a.net", "b.net", "c.net"),
    required_domains=("a.net",),
    forbidden_domains=("evil.net",),
    rate=1000,
)
DELEGATIONS = (
    Grant(
        operations=("read.*",),
        destinations=(Destination("db", 5432, 5432),),
        expires=EXP - DAY,
    ),
    Grant(operations=("read.orders.*",), expires=EXP - 2 * DAY),
)
# (operation, service, port, time): the grid on which all contenders must agree.
PROBES = [
    (op, svc, port, t)
    for op in ("read.orders.list", "read.users", "write.logs", "delete.all")
    for svc, port in (("db", 5432), ("db", 5433), ("cache", 6379), ("web", 80))
    for t in (NOW, NBF - DAY, EXP - DAY // 2, EXP + DAY)
]

SIZE_FLOOR_PER_LINK = 64 + 32  # Ed25519 signature + holder key


def _key(n: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes([n]) * 32)


ANCHOR_KEY = _key(1)
HOLDER_KEYS = [_key(10 + i) for i in range(len(DELEGATIONS) + 1)]


# ---- Warrant -------------------------------------------------------------------------
def warrant_chain(depth: int) -> wc.Credential:
    cred = wc.issue(ANCHOR_KEY, SCOPE, bytes(HOLDER_KEYS[0].verify_key), ROOT_GRANT)
    for i in range(depth - 1):
        nxt = bytes(HOLDER_KEYS[i + 1].verify_key)
        cred = wc.delegate(cred, HOLDER_KEYS[i], nxt, DELEGATIONS[i])
    return cred


def warrant_fresh_leaves(depth: int, count: int) -> list[bytes]:
    """`count` chains sharing the depth-1 prefix, each with a last link never seen."""
    out = []
    prefix = warrant_chain(depth - 1) if depth > 1 else None
    for n in range(count):
        holder = bytes(nacl.signing.SigningKey(n.to_bytes(8, "big") * 4).verify_key)
        if prefix is None:
            cred = wc.issue(ANCHOR_KEY, SCOPE, holder, ROOT_GRANT)
        else:
            cred = wc.delegate(prefix, HOLDER_KEYS[depth - 2], holder, DELEGATIONS[depth - 2])
        out.append(cred.encode())
    return out


def warrant_trust() -> TrustStore:
    trust = TrustStore()
    trust.add(Anchor(SCOPE, bytes(ANCHOR_KEY.verify_key)))
    return trust


def warrant_authorize(
    verifier: wc.Verifier,
    data: bytes,
    op: str = REQUEST[0],
    svc: str = REQUEST[1],
    port: int = REQUEST[2],
    now: int = NOW,
) -> None:
    rights = verifier.verify(data, now).rights
    if not (rights.grants_operation(op) and rights.grants_destination(svc, port)):
        raise PermissionError("request not granted")


def warrant_allows(data: bytes, op: str, svc: str, port: int, now: int) -> bool:
    try:
        warrant_authorize(wc.Verifier(warrant_trust()), data, op, svc, port, now)
    except (WarrantError, PermissionError):
        return False
    return True


# ---- Biscuit -------------------------------------------------------------------------
def _rfc3339(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _q(s: str) -> str:
    return json.dumps(s)


def biscuit_block(grant: Grant) -> str:
    """The datalog stating exactly what `grant` states (see module docstring)."""
    lines = []
    if grant.operations is not None:
        alts = []
        for p in grant.operations:
            if p == "*":
                alts.append("operation($op)")
            elif p.endswith(".*"):
                alts.append(f"operation($op), $op.starts_with({_q(p[:-1])})")
            else:
                alts.append(f"operation($op), $op == {_q(p)}")
        lines.append("check if " + " or ".join(alts) + ";")
    if grant.destinations is not None:
        alts = []
        for d in grant.destinations:
            conds = ["destination($s, $p)"]
            if d.service != "*":
                conds.append(f"$s == {_q(d.service)}")
            if d.port_lo == d.port_hi:
                conds.append(f"$p == {d.port_lo}")
            else:
                conds += [f"$p >= {d.port_lo}", f"$p <= {d.port_hi}"]
            alts.append(", ".join(conds))
        lines.append("check if " + " or ".join(alts) + ";")
    window = []
    if grant.not_before is not None:
        window.append(f"$t >= {_rfc3339(grant.not_before)}")
    if grant.expires is not None:
        window.append(f"$t <= {_rfc3339(grant.expires)}")
    if window:
        lines.append("check if time($t), " + ", ".join(window) + ";")
    if grant.max_hops is not None:
        lines.append(f"max_hops({grant.max_hops});")
    for name, group in (
        ("allowed_domain", grant.allowed_domains),
        ("required_domain", grant.required_domains),
        ("forbidden_domain", grant.forbidden_domains),
    ):
        for domain in group or ():
            lines.append(f"{name}({_q(domain)});")
    if grant.rate is not None:
        lines.append(f"rate({grant.rate});")
    return "\n".join(lines)


@dataclass
class BiscuitSide:
    root: Any
    tokens: dict[int, bytes] = field(default_factory=dict)
    b64: dict[int, str] = field(default_factory=dict)


def biscuit_side() -> BiscuitSide:
    assert ba is not None
    root = ba.KeyPair()
    side = BiscuitSide(root)
    token = ba.BiscuitBuilder(biscuit_block(ROOT_GRANT)).build(root.private_key)
    for depth in DEPTHS:
        if depth > 1:
            token = token.append(ba.BlockBuilder(biscuit_block(DELEGATIONS[depth - 2])))
        side.tokens[depth] = bytes(token.to_bytes())
        side.b64[depth] = token.to_base64()
    return side


def biscuit_authorizer(op: str, svc: str, port: int, now: int) -> Any:
    assert ba is not None
    builder = ba.AuthorizerBuilder(
        f"operation({_q(op)}); destination({_q(svc)}, {port}); time({_rfc3339(now)});"
        " allow if true;"
    )
    # The default 1 ms budget can trip on a busy machine; a verdict must not.
    limits = builder.limits()
    limits.max_time = dt.timedelta(seconds=1)
    builder.set_limits(limits)
    return builder


def biscuit_authorize(side: BiscuitSide, builder: Any, data: bytes) -> None:
    assert ba is not None
    token = ba.Biscuit.from_bytes(data, side.root.public_key)
    builder.build(token).authorize()


def biscuit_allows(side: BiscuitSide, data: bytes, op: str, svc: str, port: int, now: int) -> bool:
    assert ba is not None
    try:
        biscuit_authorize(side, biscuit_authorizer(op, svc, port, now), data)
    except ba.AuthorizationError:
        return False
    return True


# ---- Macaroons (reference: verification needs the root secret) -----------------------
MACAROON_SECRET = b"\x07" * 32


def macaroon_caveats(grant: Grant) -> list[str]:
    out = []
    if grant.operations is not None:
        out.append("op " + " ".join(grant.operations))
    if grant.destinations is not None:
        out.append("dst " + " ".join(str(d) for d in grant.destinations))
    if grant.not_before is not None:
        out.append(f"nbf {grant.not_before}")
    if grant.expires is not None:
        out.append(f"exp {grant.expires}")
    if grant.max_hops is not None:
        out.append(f"hops {grant.max_hops}")
    for name, group in (
        ("allowed", grant.allowed_domains),
        ("required", grant.required_domains),
        ("forbidden", grant.forbidden_domains),
    ):
        if group is not None:
            out.append(f"{name} " + " ".join(group))
    if grant.rate is not None:
        out.append(f"rate {grant.rate}")
    return out


def macaroon_tokens() -> dict[int, tuple[bytes, str]]:
    """Depth -> (raw v2 binary, base64 as it travels)."""
    assert pymacaroons is not None
    m = pymacaroons.Macaroon(
        location="warrant-bench",
        identifier="root",
        key=MACAROON_SECRET,
        version=pymacaroons.MACAROON_V2,
    )
    out = {}
    for depth in DEPTHS:
        grant = ROOT_GRANT if depth == 1 else DELEGATIONS[depth - 2]
        for caveat in macaroon_caveats(grant):
            m.add_first_party_caveat(caveat)
        ser = BinarySerializer()
        out[depth] = (bytes(ser.serialize_raw(m)), ser.serialize(m))
    return out


def macaroon_checker(op: str, svc: str, port: int, now: int) -> Callable[[str], bool]:
    def check(caveat: str) -> bool:
        kind, _, rest = caveat.partition(" ")
        if kind == "op":
            return any(_pattern_covers(p, op) for p in rest.split())
        if kind == "dst":
            return any(Destination.parse(d).admits(svc, port) for d in rest.split())
        if kind == "nbf":
            return now >= int(rest)
        if kind == "exp":
            return now <= int(rest)
        return kind in ("hops", "allowed", "required", "forbidden", "rate")  # carried

    return check


def _pattern_covers(pattern: str, op: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return op.startswith(pattern[:-1]) and op != pattern[:-1]
    return pattern == op


def macaroon_verifier(op: str, svc: str, port: int, now: int) -> Any:
    assert pymacaroons is not None
    v = pymacaroons.Verifier()
    v.satisfy_general(macaroon_checker(op, svc, port, now))
    return v


def macaroon_authorize(verifier: Any, b64: str) -> None:
    assert pymacaroons is not None
    m = pymacaroons.Macaroon.deserialize(b64)
    verifier.verify(m, MACAROON_SECRET)


def macaroon_allows(b64: str, op: str, svc: str, port: int, now: int) -> bool:
    assert pymacaroons is not None
    try:
        macaroon_authorize(macaroon_verifier(op, svc, port, now), b64)
    except pymacaroons.exceptions.MacaroonInvalidSignatureException:
        return False
    except pymacaroons.exceptions.MacaroonUnmetCaveatException:
        return False
    return True


# ---- sizes ---------------------------------------------------------------------------
def measure_sizes(side: BiscuitSide | None = None) -> dict[int, dict[str, int]]:
    """Encoded sizes per depth (bytes).  No timing: cheap enough for a smoke test."""
    if side is None and ba is not None:
        side = biscuit_side()
    macs = macaroon_tokens() if pymacaroons is not None else {}
    out: dict[int, dict[str, int]] = {}
    for depth in DEPTHS:
        row = {
            "warrant": len(warrant_chain(depth).encode()),
            "floor": SIZE_FLOOR_PER_LINK * depth,
        }
        if side is not None:
            row["biscuit"] = len(side.tokens[depth])
            row["biscuit_b64"] = len(side.b64[depth])
        if depth in macs:
            row["macaroon"] = len(macs[depth][0])
            row["macaroon_b64"] = len(macs[depth][1])
        out[depth] = row
    return out


# ---- timing --------------------------------------------------------------------------
def fresh_copies(data: Any, n: int) -> list[Any]:
    """Distinct objects with equal content, as packets off the wire would be."""
    if isinstance(data, bytes):
        return [bytes(bytearray(data)) for _ in range(n)]
    return ["".join(list(data)) for _ in range(n)]


@dataclass
class Case:
    """One contender at one depth.  `run(k)` returns the mean microseconds per call."""

    name: str
    depth: int
    run: Callable[[int], float]
    samples: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def batch(fn: Callable[[Any], Any], items: list[Any]) -> float:
    t0 = time.perf_counter_ns()
    for x in items:
        fn(x)
    return (time.perf_counter_ns() - t0) / len(items) / 1000


def each(fn: Callable[[Any], Any], items: list[Any], before: Callable[[], None]) -> float:
    total = 0
    for x in items:
        before()
        t0 = time.perf_counter_ns()
        fn(x)
        total += time.perf_counter_ns() - t0
    return total / len(items) / 1000


def build_cases(k: int, passes: int, side: BiscuitSide | None) -> list[Case]:
    cases: list[Case] = []
    macs = macaroon_tokens() if pymacaroons is not None else {}
    for depth in DEPTHS:
        cred = warrant_chain(depth)
        data = cred.encode()
        trust = warrant_trust()

        cold_v = wc.Verifier(trust)

        def clear(v: wc.Verifier = cold_v) -> None:
            v.clear_cache()
            wc.clear_decode_cache()

        def cold(k: int, v: wc.Verifier = cold_v, data: bytes = data, clear: Any = clear) -> float:
            return each(lambda x: warrant_authorize(v, x), fresh_copies(data, k), clear)

        warm_v = wc.Verifier(trust)
        warrant_authorize(warm_v, data)

        def warm(k: int, v: wc.Verifier = warm_v, data: bytes = data) -> float:
            return batch(lambda x: warrant_authorize(v, x), fresh_copies(data, k))

        wp_v = wc.Verifier(trust)
        if depth > 1:
            warrant_authorize(wp_v, warrant_chain(depth - 1).encode(), now=NOW)
        leaves = iter(warrant_fresh_leaves(depth, k * passes + k))

        def warm_prefix(k: int, v: wc.Verifier = wp_v, leaves: Iterator[bytes] = leaves) -> float:
            return batch(lambda x: warrant_authorize(v, x), [next(leaves) for _ in range(k)])

        pk = bytes(ANCHOR_KEY.verify_key)
        sigs, prev, signer = [], bytes(32), pk
        for link, digest in zip(cred.links, cred.digests(), strict=True):
            sigs.append((link.signature + wc.signed_message(prev, link.body), signer))
            prev, signer = digest, link.holder

        def floor(k: int, sigs: list[tuple[bytes, bytes]] = sigs) -> float:
            def verify_all(_: Any) -> None:
                for sm, key in sigs:
                    nacl.bindings.crypto_sign_open(sm, key)

            return batch(verify_all, list(range(k)))

        cases += [
            Case("warrant cold", depth, cold),
            Case("warrant warm", depth, warm),
            Case("warrant warm-prefix", depth, warm_prefix),
            Case("ed25519 floor", depth, floor),
        ]
        if side is not None:
            builder = biscuit_authorizer(*REQUEST, NOW)

            def biscuit(k: int, token: bytes = side.tokens[depth], builder: Any = builder) -> float:
                assert side is not None
                return batch(lambda x: biscuit_authorize(side, builder, x), fresh_copies(token, k))

            cases.append(Case("biscuit", depth, biscuit))
        if depth in macs:
            mv = macaroon_verifier(*REQUEST, NOW)

            def macaroon(k: int, b64: str = macs[depth][1], mv: Any = mv) -> float:
                return batch(lambda s: macaroon_authorize(mv, s), fresh_copies(b64, k))

            cases.append(Case("macaroon (root secret)", depth, macaroon))
    return cases


def check_equal_rights(side: BiscuitSide | None) -> int:
    """Every contender gives the same verdict on every probe; returns the probe count."""
    macs = macaroon_tokens() if pymacaroons is not None else {}
    n = 0
    for depth in DEPTHS:
        data = warrant_chain(depth).encode()
        for probe in PROBES:
            verdicts = {"warrant": warrant_allows(data, *probe)}
            if side is not None:
                verdicts["biscuit"] = biscuit_allows(side, side.tokens[depth], *probe)
            if depth in macs:
                verdicts["macaroon"] = macaroon_allows(macs[depth][1], *probe)
            if len(set(verdicts.values())) != 1:
                raise SystemExit(f"rights differ at depth {depth} on {probe}: {verdicts}")
            n += 1
        if not warrant_allows(data, *REQUEST, NOW):
            raise SystemExit(f"the benchmark request is refused at depth {depth}")
    return n


def run_passes(cases: list[Case], k: int, passes: int, deadline: float) -> int:
    done = 0
    gc.collect()
    gc.disable()
    try:
        for p in range(passes):
            order = cases if p % 2 == 0 else cases[::-1]
            for case in order:
                case.samples.append(case.run(k))
            done += 1
            if time.monotonic() > deadline:
                break
    finally:
        gc.enable()
    return done


# ---- report --------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def summary(cases: list[Case], sizes: dict[int, dict[str, int]]) -> dict[str, Any]:
    by = {(c.name, c.depth): c for c in cases}
    have_biscuit = ("biscuit", DEPTHS[0]) in by
    out: dict[str, Any] = {}
    if have_biscuit:
        for depth in DEPTHS:
            b = by["biscuit", depth].best
            out[f"size_ratio_vs_biscuit_depth{depth}"] = _ratio(
                sizes[depth]["warrant"], sizes[depth]["biscuit"]
            )
            out[f"cold_verify_ratio_vs_biscuit_depth{depth}"] = _ratio(
                by["warrant cold", depth].best, b
            )
            out[f"warm_verify_ratio_vs_biscuit_depth{depth}"] = _ratio(
                by["warrant warm", depth].best, b
            )
            out[f"warm_prefix_verify_ratio_vs_biscuit_depth{depth}"] = _ratio(
                by["warrant warm-prefix", depth].best, b
            )
    for depth in DEPTHS:  # same passes, same calls per pass: min over min
        out[f"cold_verify_ratio_vs_ed25519_floor_depth{depth}"] = _ratio(
            by["warrant cold", depth].best, by["ed25519 floor", depth].best
        )
    for depth in DEPTHS:
        for key, value in sizes[depth].items():
            out[f"{key}_bytes_depth{depth}"] = value
        for c in cases:
            if c.depth == depth:
                slug = c.name.split(" (")[0].replace(" ", "_").replace("-", "_")
                out[f"{slug}_us_depth{depth}"] = round(c.best, 2)
                out[f"{slug}_median_us_depth{depth}"] = round(c.median, 2)
    return out


def print_tables(cases: list[Case], sizes: dict[int, dict[str, int]], passes: int, k: int) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        have_rich = True
    except ImportError:  # pragma: no cover
        have_rich = False

    size_cols = ["warrant", "floor", "biscuit", "biscuit_b64", "macaroon", "macaroon_b64"]
    size_rows = [
        [str(d)]
        + [str(sizes[d].get(c, "-")) for c in size_cols]
        + [
            f"{sizes[d]['warrant'] / sizes[d]['biscuit']:.2f}x" if "biscuit" in sizes[d] else "-",
            f"{sizes[d]['warrant'] - sizes[d]['floor']}",
        ]
        for d in DEPTHS
    ]
    size_head = ["depth", *[f"{c} B" for c in size_cols], "vs biscuit", "above floor B"]

    bis = {c.depth: c.best for c in cases if c.name == "biscuit"}
    time_head = ["depth", "contender", "min µs", "median µs", "vs biscuit"]
    time_rows = [
        [
            str(c.depth),
            c.name,
            f"{c.best:.1f}",
            f"{c.median:.1f}",
            f"{c.best / bis[c.depth]:.2f}x" if c.depth in bis else "-",
        ]
        for c in sorted(cases, key=lambda c: c.depth)
    ]
    title = f"verify + authorize, {passes} passes x {k} calls, min and median of pass means"
    if have_rich:
        console = Console(width=130)
        for head, rows, name in (
            (size_head, size_rows, "encoded size (raw bytes unless _b64)"),
            (time_head, time_rows, title),
        ):
            table = Table(title=name)
            for h in head:
                table.add_column(h, justify="right" if h != "contender" else "left")
            for row in rows:
                table.add_row(*row)
            console.print(table)
    else:  # pragma: no cover
        for head, rows, name in (
            (size_head, size_rows, "encoded size"),
            (time_head, time_rows, title),
        ):
            print(name)
            print("  ".join(head))
            for row in rows:
                print("  ".join(row))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer passes; under a minute")
    ap.add_argument("--passes", type=int, help="passes over all contenders")
    ap.add_argument("--calls", type=int, help="calls per contender per pass")
    args = ap.parse_args(argv)
    start = time.monotonic()
    passes = args.passes or (200 if args.quick else 300)
    k = args.calls or (20 if args.quick else 40)
    budget = 40.0 if args.quick else 1800.0

    if ba is None:
        print("biscuit-python is not installed: pip install -e '.[bench]'", file=sys.stderr)
    side = biscuit_side() if ba is not None else None
    probes = check_equal_rights(side)
    sizes = measure_sizes(side)
    cases = build_cases(k, passes, side)
    done = run_passes(cases, k, passes, start + budget)

    print(
        f"equal rights: {probes} probe requests (operation x destination x time, depths "
        f"{DEPTHS[0]}-{DEPTHS[-1]}) give the same verdict from every contender"
    )
    print_tables(cases, sizes, done, k)
    print(
        "depth d = Warrant root link + d-1 delegations = Biscuit authority block + d-1 "
        "attenuation blocks (one signature per level).  warm-prefix at depth 1 is a never-seen "
        "root link.  Biscuit keeps no cache: one figure serves as its cold, warm and warm-prefix."
    )
    print(
        f"size floor: {SIZE_FLOOR_PER_LINK} B per link (Ed25519 signature 64 + holder key 32); "
        f"run took {time.monotonic() - start:.1f} s"
    )
    print(json.dumps(summary(cases, sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
