#!/usr/bin/env python3
"""Run every atheris harness (fuzz/fuzz_<target>.py) until a total execution count is reached.

    python3 fuzz/run_all.py --execs 10000000            # the reliability run (2 processes)
    python3 fuzz/run_all.py --smoke --runs 2000         # each target once, -runs=N (CI smoke)
    python3 fuzz/run_all.py --write-seeds               # regenerate fuzz/corpus/<t>/seed-*

Targets get equal time, not equal executions: work is handed out as chunks of
--chunk seconds of one target, round robin over the targets, to --jobs worker
processes, until the executions counted by libFuzzer (stat::number_of_executed_units)
add up to --execs, and not before every target has had a turn.  Fast parsers (claims, packets) therefore contribute most of
the total; the per-target figures are in the result file.  Each target fuzzes
a private working corpus (under --workdir) seeded from fuzz/corpus/<t>, so the
committed corpus only changes by hand.  Any non-zero libFuzzer exit with an
artifact (crash-*, timeout-*, oom-*) is a crash: copied into <workdir>/crashes and
listed in the result file; `crashes_open` counts distinct crashing inputs.

Prints a progress line per chunk and a summary line; writes --out (JSON), which
bench/reliability.py reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
TARGETS = (
    "packets",
    "credential",
    "claim",
    "revocation",
    "anchors",
    "policy",
    "crd",
    "receiver",
    "transparent",
)
DEFAULT_OUT = FUZZ / "results.json"
_STAT = re.compile(r"^stat::number_of_executed_units:\s*(\d+)", re.M)
_PROGRESS = re.compile(r"^#(\d+)\s", re.M)
_COV = re.compile(r"cov: (\d+) ft: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass
class TargetStats:
    execs: int = 0
    chunks: int = 0
    seconds: float = 0.0
    cov: int = 0
    features: int = 0


@dataclass
class Crash:
    target: str
    artifact: str
    sha1: str
    summary: str


@dataclass
class Run:
    command: str
    jobs: int
    chunk_seconds: float
    execs_goal: int
    started: str
    finished: str = ""
    seconds: float = 0.0
    execs_total: int = 0
    per_target: dict[str, TargetStats] = field(default_factory=dict)
    crashes: list[Crash] = field(default_factory=list)
    crashes_open: int = 0


def script(target: str) -> Path:
    return FUZZ / f"fuzz_{target}.py"


def write_seeds() -> None:
    sys.path.insert(0, str(FUZZ))
    import harnesses

    for t in TARGETS:
        out = harnesses.corpus_dir(t)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("seed-*"):
            old.unlink()
        blobs = harnesses.unique_seeds(t)
        for blob in blobs:
            (out / f"seed-{hashlib.sha1(blob).hexdigest()[:16]}").write_bytes(blob)
        print(f"{t}: {len(blobs)} seeds in {out.relative_to(ROOT)}")


def _summary(log: str) -> str:
    """The exception line of an atheris crash report, or libFuzzer's error line."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Uncaught Python exception" in line:
            for nxt in lines[i + 1 :]:
                if nxt and not nxt.startswith((" ", "Traceback")):
                    return nxt.strip()
    for line in lines:
        if "ERROR: libFuzzer" in line:
            return line.strip()
    return "non-zero exit"


def run_chunk(
    target: str, workdir: Path, flags: list[str], timeout: float
) -> tuple[int, int, int, float, Crash | None]:
    """One libFuzzer process; returns (execs, cov, features, seconds, crash)."""
    corpus = workdir / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = workdir / "crashes"
    crashes.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        str(script(target)),
        str(corpus),
        str(FUZZ / "corpus" / target),
        f"-artifact_prefix={crashes}/{target}-",
        "-print_final_stats=1",
        "-rss_limit_mb=2048",
        "-max_len=4096",
        "-timeout=20",
        *flags,
    ]
    tmp = workdir / "tmp"  # the harnesses' scratch files (libFuzzer exits past atexit)
    tmp.mkdir(exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "TMPDIR": str(tmp)},
    )  # fmt: skip
    seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    stat = _STAT.findall(log)
    progress = _PROGRESS.findall(log)
    execs = int(stat[-1]) if stat else max((int(p) for p in progress), default=0)
    cov = _COV.findall(log)
    c, f = (int(cov[-1][0]), int(cov[-1][1])) if cov else (0, 0)
    crash = None
    if proc.returncode != 0:
        found = _ARTIFACT.findall(log)
        artifact = found[-1] if found else ""
        sha = hashlib.sha1(Path(artifact).read_bytes()).hexdigest() if artifact else ""
        (workdir / f"{target}-{sha[:12] or 'noartifact'}.log").write_text(log)
        crash = Crash(target, artifact, sha, _summary(log))
    return execs, c, f, seconds, crash


def fuzz(args: argparse.Namespace) -> Run:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="warrant-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    targets = args.targets.split(",") if args.targets else list(TARGETS)
    run = Run(
        command=" ".join(["python3", "fuzz/run_all.py", *sys.argv[1:]]),
        jobs=args.jobs,
        chunk_seconds=args.chunk,
        execs_goal=args.execs,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        per_target={t: TargetStats() for t in targets},
    )
    lock = threading.Lock()
    turn = [0]
    busy: set[str] = set()
    t_start = time.monotonic()
    deadline = t_start + args.max_seconds if args.max_seconds else None

    def next_target() -> str | None:
        with lock:
            # the goal ends the run only once every target has had a turn: the fast
            # parsers alone would otherwise reach it (and a target go unfuzzed)
            first_round = turn[0] < len(targets)
            goal_met = run.execs_total >= args.execs and not first_round
            if goal_met or (deadline and time.monotonic() > deadline):
                return None
            for _ in targets:  # a target's working corpus is used by one process at a time
                t = targets[turn[0] % len(targets)]
                turn[0] += 1
                if t not in busy:
                    busy.add(t)
                    return t
            return None

    def worker() -> None:
        while (t := next_target()) is not None:
            execs, cov, feat, secs, crash = run_chunk(
                t, workdir, [f"-max_total_time={int(args.chunk)}"], args.chunk * 4 + 120
            )
            with lock:
                busy.discard(t)
                s = run.per_target[t]
                s.execs += execs
                s.chunks += 1
                s.seconds += secs
                s.cov, s.features = max(s.cov, cov), max(s.features, feat)
                run.execs_total += execs
                if crash is not None:
                    run.crashes.append(crash)
                print(
                    f"[{time.monotonic() - t_start:7.0f}s] {t:10s} +{execs:>9,} execs "
                    f"(cov {cov}) total {run.execs_total:>11,} / {args.execs:,}"
                    + (f"  CRASH {crash.summary}" if crash else ""),
                    flush=True,
                )

    with ThreadPoolExecutor(args.jobs) as pool:
        for _ in range(args.jobs):
            pool.submit(worker)
    return finish(run, t_start)


def smoke(args: argparse.Namespace) -> Run:
    """Each target once with -runs=N (slow YAML parsers get N/10): the CI smoke run."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="warrant-fuzz-smoke-"))
    targets = args.targets.split(",") if args.targets else list(TARGETS)
    run = Run(
        command=" ".join(["python3", "fuzz/run_all.py", *sys.argv[1:]]),
        jobs=args.jobs,
        chunk_seconds=0,
        execs_goal=0,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        per_target={t: TargetStats() for t in targets},
    )
    t_start = time.monotonic()
    slow = {"anchors", "policy", "crd", "receiver"}

    def one(t: str) -> None:
        runs = max(1, args.runs // 10) if t in slow else args.runs
        execs, cov, feat, secs, crash = run_chunk(t, workdir, [f"-runs={runs}", "-seed=1"], 300)
        s = run.per_target[t]
        s.execs, s.chunks, s.seconds, s.cov, s.features = execs, 1, secs, cov, feat
        if crash is not None:
            run.crashes.append(crash)
        print(f"{t:10s} {execs:>8,} execs in {secs:5.1f} s (cov {cov})", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, targets))
    run.execs_total = sum(s.execs for s in run.per_target.values())
    shutil.rmtree(workdir, ignore_errors=True)
    return finish(run, t_start)


def finish(run: Run, t_start: float) -> Run:
    run.seconds = round(time.monotonic() - t_start, 1)
    run.finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run.crashes_open = len({c.sha1 or c.summary for c in run.crashes})
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--execs", type=int, default=10_000_000, help="total executions to reach")
    ap.add_argument("--jobs", type=int, default=2, help="fuzzing processes at a time")
    ap.add_argument("--chunk", type=float, default=60.0, help="seconds per target per turn")
    ap.add_argument("--max-seconds", type=float, default=0, help="stop handing out chunks after")
    ap.add_argument("--targets", help=f"comma-separated subset of {','.join(TARGETS)}")
    ap.add_argument("--workdir", help="working corpora and crash artifacts (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help=f"result JSON (default {DEFAULT_OUT})")
    ap.add_argument("--smoke", action="store_true", help="each target once with -runs")
    ap.add_argument("--runs", type=int, default=2000, help="-runs per target with --smoke")
    ap.add_argument("--write-seeds", action="store_true", help="regenerate the seed corpus")
    args = ap.parse_args(argv)
    if args.write_seeds:
        write_seeds()
        return 0
    run = smoke(args) if args.smoke else fuzz(args)
    out = args.out or (None if args.smoke else DEFAULT_OUT)
    doc = asdict(run)
    if out is not None:
        out.write_text(json.dumps(doc, indent=1) + "\n")
    print(
        f"summary: {run.execs_total:,} executions over {len(run.per_target)} targets in "
        f"{run.seconds:.0f} s, {len(run.crashes)} crashing runs, "
        f"{run.crashes_open} distinct crashing inputs" + (f"; results in {out}" if out else "")
    )
    for c in run.crashes:
        print(f"  crash {c.target}: {c.summary} ({c.artifact})")
    print(
        json.dumps(
            {
                "fuzz_execs": run.execs_total,
                "crashes_open": run.crashes_open,
                "seconds": run.seconds,
            }
        )
    )
    return 1 if run.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
