"""Command-line conventions: --version, -h on every command, shell completion, colour only
on a terminal (and never under NO_COLOR), and `warrant listen --metrics`."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from typing import Any

import pytest
import typer.main
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from test_cli_net import CLI, World, send, world  # noqa: F401 - `world` is a fixture
from warrant import __version__
from warrant.cli import app

runner = CliRunner()
ANSI = "\x1b["


def commands() -> list[list[str]]:
    """Every command path of the app, e.g. ["observe"], ["policy", "check"]."""
    out: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if not subs:
            out.append(path)
            return
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_version_is_the_package_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"warrant {__version__}"
    proc = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == f"warrant {__version__}"


@pytest.mark.parametrize("path", commands(), ids=" ".join)
def test_h_is_help_on_every_command(path: list[str]) -> None:
    short = runner.invoke(app, [*path, "-h"], env={"COLUMNS": "200"})
    long = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert short.exit_code == long.exit_code == 0, short.output
    assert "Usage:" in short.stdout and short.stdout == long.stdout


def test_every_command_is_there() -> None:
    names = {" ".join(p) for p in commands()}
    assert {"observe", "listen", "send", "agent"} <= names


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    res = runner.invoke(app, ["--show-completion", shell], prog_name="warrant")
    assert res.exit_code == 0, res.output
    assert "complete" in res.stdout.lower() and "_WARRANT_COMPLETE" in res.stdout.upper()
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in top.stdout and "--show-completion" in top.stdout


def test_colour_only_when_asked_and_never_under_no_color() -> None:
    bad = ["observe", "--input", os.devnull, "--verdict", "NOPE"]
    coloured = runner.invoke(app, bad, color=True)
    assert coloured.exit_code == 2 and ANSI in coloured.stderr  # a terminal gets colour
    plain = runner.invoke(app, bad, color=False)  # not a terminal: no escape codes
    assert plain.exit_code == 2 and ANSI not in plain.stderr and "unknown verdict" in plain.stderr
    no_color = runner.invoke(app, bad, color=True, env={"NO_COLOR": "1"})
    assert no_color.exit_code == 2 and ANSI not in no_color.stderr
    proc = subprocess.run([*CLI, *bad], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and ANSI not in proc.stderr and ANSI not in proc.stdout


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip


def total(data: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in data.items() if n == name)


def test_listen_metrics(world: World) -> None:  # noqa: F811 - the fixture
    proc = subprocess.Popen(
        [*CLI, "listen", "--key", world.path("rx"), "--policy", world.path("policy.yaml"),
         "--port", "0", "--metrics", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        url = port = None
        for _ in range(2):
            line = proc.stderr.readline()
            if line.startswith("metrics on "):
                url = line.split()[2]
            elif line.startswith("listening on "):
                port = int(line.split()[2].rsplit(":", 1)[1])
        assert url and port, "listen did not start"
        before = scrape(url)
        assert total(before, "warrant_drop_count_total") == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x01\x02", ("127.0.0.1", port))  # TRUNCATED: dropped
        assert send(world, port, "--op", "orders.write", "hello").returncode == 0  # admitted
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = scrape(url)
            if total(after, "warrant_forward_count_total") >= 1 and total(
                after, "warrant_drop_count_total"
            ):
                break
            time.sleep(0.05)
        labels = (("datapath", "user"), ("direction", "INGRESS"), ("drop_reason",
                  "INVALID_PACKET_DROPPED"), ("reason", "TRUNCATED"))  # fmt: skip
        assert after[("warrant_drop_count_total", labels)] == 1
        assert after[("warrant_drop_bytes_total", labels)] == 2
        assert total(after, "warrant_drop_count_total") == 1  # counted once, by one exporter
        assert total(after, "warrant_forward_count_total") == 1
        assert total(after, "warrant_forward_bytes_total") > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("bad", ["9971", "localhost:http", "127.0.0.1:70000"])
def test_listen_metrics_bad_address_is_one_line(world: World, bad: str) -> None:  # noqa: F811
    proc = subprocess.run(
        [*CLI, "listen", "--key", world.path("rx"), "--policy", world.path("policy.yaml"),
         "--port", "0", "--metrics", bad],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--metrics takes HOST:PORT" in proc.stderr and "Traceback" not in proc.stderr
