"""Issue 13: CLI defects.

* A file that exists but cannot be read gives one line (`error cannot read ... <path>:
  <reason>`) and exit 2, never click's multi-line usage box.  Click tested readability
  itself (`os.access`, which always says yes to root, so CI never saw the box); now no
  file parameter asks click to, and the shared readers report the failure.  The failure is
  simulated (EACCES from `os.access` and `open` for that one path) so the tests mean the
  same as root and as a user; as a user the file is also really `chmod 000`.
* `warrant listen` escapes every peer-derived string, so no newline or control character
  from a packet can forge a log line.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from warrant.cli import app
from warrant.cli.net import escape, outcome_line, show_authority, show_payload
from warrant.core.constants import Reason, Verdict
from warrant.core.receiver import Authority, Outcome

runner = CliRunner()


def warrant(cwd: Path, *args: str) -> Any:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, list(args))
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    for args in (
        ["keygen", "anchor"],
        ["keygen", "holder"],
        ["keygen", "rx"],
        ["anchors", "add", "anchors.yaml", "--scope", "acme.prod", "--key", "anchor.pub"],
        ["issue", "--anchor-key", "anchor", "--scope", "acme.prod", "--holder", "holder.pub",
         "--expires", "1h", "--op", "orders.*", "--dst", "orders:8443", "-o", "cred"],
    ):  # fmt: skip
        result = warrant(d, *args)
        assert result.exit_code == 0, (args, result.output)
    (d / "revoked.rl").write_bytes(b"\x82\x40\x40")
    (d / "policy.yaml").write_text("default: allow\n")
    return d


def _same(a: Any, b: Path) -> bool:
    try:
        return Path(os.fsdecode(a)).resolve() == b.resolve()
    except (TypeError, ValueError):
        return False


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """unreadable(path): `path` exists, but reading it fails with EACCES (as chmod 000
    does to a user)."""
    chmodded: list[Path] = []

    def make(path: Path) -> None:
        real_access, real_open, real_os_open = os.access, io.open, os.open

        def access(p: Any, mode: int, *a: Any, **k: Any) -> bool:
            return False if _same(p, path) else real_access(p, mode, *a, **k)

        def deny(p: Any) -> None:
            if _same(p, path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))

        def fake_open(p: Any, *a: Any, **k: Any) -> Any:
            deny(p)
            return real_open(p, *a, **k)

        def fake_os_open(p: Any, *a: Any, **k: Any) -> int:
            deny(p)
            return real_os_open(p, *a, **k)

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        if os.geteuid() != 0:
            path.chmod(0)
            chmodded.append(path)

    yield make
    for p in chmodded:
        p.chmod(0o600)


CASES: dict[str, tuple[str, list[str]]] = {
    # name: (the unreadable file, the command line)
    "verify CRED": ("cred", ["verify", "cred", "--anchors", "anchors.yaml"]),
    "verify --anchors": ("anchors.yaml", ["verify", "cred", "--anchors", "anchors.yaml"]),
    "verify --revocations": (
        "revoked.rl",
        ["verify", "cred", "--anchors", "anchors.yaml", "--revocations", "revoked.rl"],
    ),
    "inspect CRED": ("cred", ["inspect", "cred"]),
    "delegate CRED": ("cred", ["delegate", "cred", "--key", "holder", "--to", "rx.pub", "-o", "d"]),
    "delegate --key": ("holder", ["delegate", "cred", "--key", "holder", "--to", "rx.pub", "-o", "d"]),
    "delegate --to": ("rx.pub", ["delegate", "cred", "--key", "holder", "--to", "rx.pub", "-o", "d"]),
    "issue --anchor-key": ("anchor", ["issue", "--anchor-key", "anchor", "--scope", "acme.prod",
                           "--holder", "holder.pub", "--expires", "1h", "--op", "orders.*",
                           "--dst", "orders:8443", "-o", "c2"]),
    "issue --holder": ("holder.pub", ["issue", "--anchor-key", "anchor", "--scope", "acme.prod",
                       "--holder", "holder.pub", "--expires", "1h", "--op", "orders.*",
                       "--dst", "orders:8443", "-o", "c2"]),
    "anchors show": ("anchors.yaml", ["anchors", "show", "anchors.yaml"]),
    "listen --key": ("rx", ["listen", "--key", "rx", "--policy", "policy.yaml", "--port", "1"]),
    "send --cred": ("cred", ["send", "--key", "holder", "--cred", "cred", "--to", "127.0.0.1:9",
                    "--receiver-key", "rx.pub", "--op", "orders.read", "--service", "orders",
                    "hello"]),
    "policy check": ("policy.yaml", ["policy", "check", "policy.yaml"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_unreadable_file_is_one_line_and_exit_2(
    world: Path, unreadable: Callable[[Path], None], case: str
) -> None:
    name, args = CASES[case]
    unreadable(world / name)
    result = warrant(world, *args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    # `warrant policy` keeps its own convention (exit 1, "error:"); the others exit 2.
    assert result.exit_code == (1 if args[0] == "policy" else 2), result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error"), lines[0]
    assert "cannot read" in lines[0] and name in lines[0], lines[0]
    assert "Permission denied" in lines[0], lines[0]
    assert "Usage" not in result.output and "Traceback" not in result.output


def test_a_directory_given_as_a_file_is_one_line(world: Path) -> None:
    (world / "adir").mkdir(exist_ok=True)
    result = warrant(world, "verify", "adir", "--anchors", "anchors.yaml")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error cannot read credential file adir: Is a directory"
    ]


def _commands(cmd: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    yield prefix, cmd
    if hasattr(cmd, "commands"):  # a group (typer carries its own click)
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{prefix} {name}".strip())


def test_no_file_parameter_asks_for_readability_before_reading() -> None:
    """Every Path parameter of every command (new ones must follow): readable=False, so
    an unreadable file reaches the command's reader and its one line."""
    paths = {
        (name, p.name): p.type_descriptor.parameter_info.readable
        for name, cmd in _commands(typer.main.get_command(app))
        for p in cmd.params
        if "Path" in repr(p.type_descriptor.annotation)
    }
    assert len(paths) >= 25, paths
    assert [k for k, readable in paths.items() if readable] == []


# ---- warrant listen prints peer-derived strings escaped -------------------------------------
def test_escape_keeps_one_line_and_is_reversible_for_printable_text() -> None:
    assert escape("orders.read") == "orders.read"
    assert escape("a\nADMIT x") == "a\\nADMIT x"
    assert escape("\r\x1b[31m\t\x00") == "\\r\\x1b[31m\\t\\x00"
    assert escape("back\\slash") == "back\\\\slash"
    assert escape("ünï\u2028") == "\\xfcn\\xef\\u2028"
    for text in ("a\nb", "\x85", "\u2028", "\u2029", "x\x0by"):
        assert len(escape(text).splitlines()) == 1
        assert escape(text).isprintable() and escape(text).isascii()


def _authority(**fields: Any) -> Authority:
    base: dict[str, Any] = dict(
        scope="acme.prod", issuer="ab" * 8, holder="cd" * 4, chain_digest="00" * 32, depth=1,
        operation="orders.read", service="orders", port=8443, hops=(), expires=0, rule=None,
        session_id="ef" * 8,
    )  # fmt: skip
    base.update(fields)
    return Authority(**base)


def test_listen_lines_escape_every_peer_derived_field() -> None:
    forged = "x\nADMIT 10.0.0.9:1 scope=acme.prod op=orders.write"
    a = _authority(
        scope=forged, operation=forged, service=forged, hops=((forged, "00"),), rule=forged
    )
    line = show_authority(a)
    assert "\n" not in line and "\\nADMIT" in line
    out = Outcome(Verdict.DROP, Reason.MALFORMED, "INIT", 10, detail=f"claim {forged}")
    dropped = outcome_line(out, ("10.0.0.1", 1))
    assert dropped is not None and "\n" not in dropped and "\\nADMIT" in dropped


def test_payload_text_stays_on_one_line() -> None:
    for text in ("a\nb", "a\u2028b", "a\x85b", "a\rb\x1b[2J"):
        shown = show_payload(text.encode())
        assert len(shown.splitlines()) == 1 and shown.isprintable(), shown
    assert show_payload("héllo".encode()) == '"héllo"'  # printable text is left alone
