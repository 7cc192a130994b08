"""CLI option declarations: an option several commands take is declared once, in
src/warrant/cli/options.py, and reads the same wherever it appears.

Commands still word their own help where it differs; what is shared is the option's
shape (names, metavar, bounds, file handling).  cli/workload.py is outside this rule.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import typer.main

from warrant.cli import app

CLI = Path(__file__).parent.parent / "src/warrant/cli"
MODULES = ("agent", "net", "observe", "policy", "relay", "authority", "lab", "demo")
# options taken by more than one command: their declarations live in options.py only
SHARED = {
    "--key", "--anchor-key", "--policy", "--revocations", "--port", "--from-port", "--to-port",
    "--json", "--verbose", "--output", "--anchors", "--anchors-dir", "--scope", "--dst",
    "--receiver-key", "--via-key", "--next-hop-key", "--holder", "--to", "--expires",
    "--not-before", "--not-after", "--require-domain", "--forbid-domain", "--allow-domain",
    "--labels", "--op", "--max-hops", "--rate", "--out", "--base64", "-v",
}  # fmt: skip
# one command's own option that shares only its name with the shared one
OWN = {
    ("net", "--op"): "the operation claimed (a name), not a pattern",
    ("net", "--to"): "the receiver's HOST:PORT, not a key",
    ("observe", "--scope"): "a flow filter",
    ("authority", "--op"): "verify's one required operation (OP)",
    ("authority", "--revocations"): "verify's list files (RL), not a watched directory",
}


def _declared(module: str) -> list[str]:
    """The first name of every typer.Option(...) the module's source declares."""
    tree = ast.parse((CLI / f"{module}.py").read_text())
    names = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "Option" and node.args
                and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            names.append(str(node.args[0].value))
    return names


@pytest.mark.parametrize("module", MODULES)
def test_shared_options_are_declared_in_options_py_only(module: str) -> None:
    dup = {n for n in _declared(module) if n in SHARED and (module, n) not in OWN}
    assert not dup, sorted(dup)


def _params() -> dict[tuple[str, str], Any]:
    """(command path, first option name) -> the click parameter."""
    out: dict[tuple[str, str], Any] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        for p in cmd.params:
            for opt in p.opts:
                out[(" ".join(path), opt)] = p

    walk(typer.main.get_command(app), [])
    return out


def test_one_option_reads_the_same_in_every_command() -> None:
    params = _params()
    agent, listen = params[("agent", "--key")], params[("listen", "--key")]
    assert (agent.help, agent.metavar) == (listen.help, listen.metavar)
    assert agent.help == "Receiver secret key file." and agent.metavar == "SEC"
    agent, listen = params[("agent", "--revocations")], params[("listen", "--revocations")]
    assert (
        (agent.help, agent.metavar)
        == (listen.help, listen.metavar)
        == ("Directory of signed revocation lists, reloaded when it changes.", "DIR")
    )
    for cmd in ("inspect", "verify"):
        assert params[(cmd, "--json")].help == "Print one JSON object."
    # a secret key is a SEC file, a public key PUB, wherever the option is taken
    for (cmd, opt), p in params.items():
        if opt in ("--receiver-key", "--via-key", "--next-hop-key", "--holder"):
            assert p.metavar == "PUB", (cmd, opt)
        if opt == "--anchor-key" or (opt == "--key" and cmd in ("agent", "listen", "send",
                                                                  "relay", "delegate")):  # fmt: skip
            assert p.metavar == "SEC", (cmd, opt)
        if opt.endswith("port") and cmd in ("agent", "listen", "observe"):
            assert p.max == 65535, (cmd, opt)
