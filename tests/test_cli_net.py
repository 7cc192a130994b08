"""`warrant listen` and `warrant send` as processes over loopback, and their one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from typer.testing import CliRunner

from warrant.cli import app
from warrant.core import keys
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.credential import Credential, Link, delegate, encode_body, issue, signed_message
from warrant.core.rights import Destination, Grant
from warrant.integration import flow

SCOPE = "acme.prod"
CLI = [sys.executable, "-m", "warrant.cli"]


class World:
    """Key, anchor, credential and policy files in a directory, as an operator has them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        now = int(time.time())
        names = ("anchor", "alice", "bob", "rx", "mallory")
        self.key: dict[str, nacl.signing.SigningKey] = {n: keys.generate() for n in names}
        for name, k in self.key.items():
            (root / name).write_text(keys.encode_secret(k) + "\n")
            (root / f"{name}.pub").write_text(keys.encode_public(self.pub(name)) + "\n")
        store = TrustStore()
        store.add(Anchor(SCOPE, self.pub("anchor")))
        store.dump(root / "anchors.yaml")
        grant = Grant(
            operations=("orders.*",),
            destinations=(Destination("orders", 1024, 65535),),
            expires=now + 3600,
        )
        alice = issue(self.key["anchor"], SCOPE, self.pub("alice"), grant)
        bob = delegate(
            alice, self.key["alice"], self.pub("bob"), Grant(operations=("orders.write",))
        )
        (root / "bob.cred").write_bytes(bob.encode())
        # Mallory signs a root link naming the real anchor of the scope (P1 forgery).
        body = encode_body(SCOPE, keys.anchor_id(self.pub("anchor")), self.pub("mallory"), grant)
        sig = self.key["mallory"].sign(signed_message(bytes(32), body)).signature
        forged = Credential((Link.decode(body, sig, root=True),))
        (root / "forged.cred").write_bytes(forged.encode())
        (root / "policy.yaml").write_text(
            "anchors: anchors.yaml\n"
            "default: deny\n"
            "rules:\n"
            "  - name: orders-writers\n"
            '    operations: ["orders.*"]\n'
            "    services: [orders]\n"
        )

    def pub(self, name: str) -> bytes:
        return bytes(self.key[name].verify_key)

    def path(self, name: str) -> str:
        return str(self.root / name)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def start_listen(world: World, *args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [*CLI, "listen", "--key", world.path("rx"), "--policy", world.path("policy.yaml"),
         "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listening on 127.0.0.1:PORT (...)"
    if not line.startswith("listening on "):
        proc.kill()
        raise AssertionError(f"listen did not start: {line}{proc.stderr.read()}")
    port = int(line.split()[2].rsplit(":", 1)[1])
    return proc, port


def send(world: World, port: int, *args: str, key: str = "bob", cred: str = "bob.cred",
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [*CLI, "send", "--key", world.path(key), "--cred", world.path(cred),
         "--to", f"127.0.0.1:{port}", "--receiver-key", world.path("rx.pub"),
         "--service", "orders", "--wait", "0.2", *args],
        capture_output=True, text=True, timeout=60, input=stdin,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str], flows: Path | None = None, n: int = 0) -> tuple[str, str]:
    """SIGTERM, once the flow file holds `n` records (every verdict is then printed)."""
    deadline = time.monotonic() + 20
    while flows is not None and time.monotonic() < deadline:
        if flows.exists() and len(flows.read_text().splitlines()) >= n:
            break
        time.sleep(0.05)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return out, err


def reason_of(rec: dict[str, Any]) -> str:
    return flow.reason_of(rec)


def test_listen_shows_the_admitted_payload_and_the_forged_drop(world: World) -> None:
    flows = Path(world.path("flows.jsonl"))
    proc, port = start_listen(world, "-v", "--flows", str(flows))
    try:
        ok = send(world, port, "--op", "orders.write", "hello", "warrant")
        forged = send(
            world, port, "--op", "orders.write", "forged", key="mallory", cred="forged.cred"
        )
    finally:
        out, _ = stop(proc, flows, 2)
    assert ok.returncode == 0 and ok.stdout.startswith("sent 1 payload to 127.0.0.1:"), ok.stderr
    assert forged.returncode == 0, forged.stderr  # the sender cannot know; the receiver drops
    lines = out.splitlines()
    admitted = [line for line in lines if line.startswith("ADMIT")]
    dropped = [line for line in lines if line.startswith("DROP")]
    assert len(admitted) == 1 and len(dropped) == 1, out
    holder = keys.key_id(world.pub("bob")).hex()
    for part in ("scope=acme.prod", "op=orders.write", f"dst=orders:{port}", f"holder={holder}",
                 "depth=2", "hops=-", "rule=orders-writers", 'seq=0 "hello warrant"'):  # fmt: skip
        assert part in admitted[0], admitted[0]
    assert " INIT BAD_SIGNATURE (5) " in dropped[0], dropped[0]
    assert '"forged"' not in out  # the forged payload never reaches the application
    records = [json.loads(x) for x in flows.read_text().splitlines()]
    assert [reason_of(r) for r in records] == ["OK", "BAD_SIGNATURE"]
    for r in records:  # Hubble flows: strict protobuf parse, exactly protobuf's JSON
        assert flow.to_dict(flow.to_message(r)) == r


def test_send_count_and_stdin_and_json_output_with_payload(world: World) -> None:
    proc, port = start_listen(world, "--json", "--payload", "--count", "4")
    try:
        many = send(world, port, "--op", "orders.write", "--count", "3", "--interval", "0.01", "x")
        piped = send(world, port, "--op", "orders.write", "-", stdin='{"id": 7}\n')
        out, err = proc.communicate(timeout=20)  # --count 4: exits by itself
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert many.returncode == 0 and "sent 3 payloads" in many.stdout and "1 INIT" in many.stdout
    assert piped.returncode == 0, piped.stderr
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["payload"] for r in records] == [{"text": "x"}] * 3 + [{"text": '{"id": 7}\n'}]
    assert all(reason_of(r) == "OK" for r in records)


def test_listen_json_is_strictly_the_flow_shape(world: World) -> None:
    """`--json` without `--payload`: Hubble's flow JSON and nothing else (no `payload`)."""
    proc, port = start_listen(world, "--json", "-v", "--count", "1")
    try:
        forged = send(
            world, port, "--op", "orders.write", "forged", key="mallory", cred="forged.cred"
        )
        ok = send(world, port, "--op", "orders.write", "hello")
        out, err = proc.communicate(timeout=20)  # --count 1: exits by itself
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and ok.returncode == 0 and forged.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [reason_of(r) for r in records] == ["BAD_SIGNATURE", "OK"]
    for r in records:  # strict protobuf parse: an unknown field such as `payload` fails it
        assert "payload" not in r
        assert flow.to_dict(flow.to_message(r)) == r


def test_payload_without_json_is_a_usage_error(world: World) -> None:
    line = one_line_error(["listen", "--key", world.path("rx"), "--policy",
                           world.path("policy.yaml"), "--payload"])  # fmt: skip
    assert "--payload goes with --json" in line


def test_listen_without_v_hides_drops(world: World) -> None:
    flows = Path(world.path("flows.jsonl"))
    proc, port = start_listen(world, "--flows", str(flows))
    try:
        send(world, port, "--op", "orders.read", "not granted")  # Bob may only write
        send(world, port, "--op", "orders.write", "granted")
    finally:
        out, _ = stop(proc, flows, 2)
    assert [line.split()[0] for line in out.splitlines()] == ["ADMIT"]
    assert '"granted"' in out and "not granted" not in out


# ---- one-line errors ------------------------------------------------------------------------
runner = CliRunner()


def one_line_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error "), result.output
    return lines[0]


def test_bad_policy_file_names_its_line(world: World) -> None:
    bad = Path(world.path("bad.yaml"))
    bad.write_text("anchors: anchors.yaml\nrules:\n  - name: x\n    prots: [1]\n")
    line = one_line_error(["listen", "--key", world.path("rx"), "--policy", str(bad)])
    assert f"{bad}:4:" in line and "prots" in line


def test_send_input_errors_are_one_line(world: World) -> None:
    base = ["send", "--key", world.path("bob"), "--cred", world.path("bob.cred"),
            "--receiver-key", world.path("rx.pub"), "--op", "orders.write", "--service", "orders"]  # fmt: skip
    assert "--to" in one_line_error([*base, "--to", "localhost", "x"])
    assert "--via" in one_line_error([*base, "--to", "127.0.0.1:9", "--via", "127.0.0.1:8", "x"])
    missing = one_line_error(
        [*base[:4], world.path("nope.cred"), *base[5:], "--to", "127.0.0.1:9", "x"]
    )
    assert "nope.cred" in missing
    bad_cred = Path(world.path("junk.cred"))
    bad_cred.write_bytes(b"\xa1\x00\x00")
    assert "MALFORMED" in one_line_error(
        [*base[:4], str(bad_cred), *base[5:], "--to", "127.0.0.1:9", "x"]
    )


def test_listen_on_a_busy_port_is_one_line(world: World) -> None:
    proc, port = start_listen(world)
    try:
        line = one_line_error(["listen", "--key", world.path("rx"), "--policy",
                               world.path("policy.yaml"), "--port", str(port)])  # fmt: skip
    finally:
        stop(proc)
    assert f"cannot listen on 127.0.0.1:{port}" in line
