"""`warrant listen` and `warrant send` over IPv6 loopback (::1): the protocol does not depend
on the address family (SPEC 3, "IPv6"), and the CLI's sockets take either."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from warrant.core import keys
from warrant.core.anchors import Anchor, TrustStore
from warrant.core.credential import issue
from warrant.core.rights import Destination, Grant

CLI = [sys.executable, "-m", "warrant.cli"]
SCOPE = "acme.prod"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")


def _files(root: Path) -> None:
    """Keys, anchors, a credential for 'bob' and a policy, as an operator has them."""
    k = {n: keys.generate() for n in ("anchor", "bob", "rx")}
    for name, key in k.items():
        (root / name).write_text(keys.encode_secret(key) + "\n")
        (root / f"{name}.pub").write_text(keys.encode_public(bytes(key.verify_key)) + "\n")
    store = TrustStore()
    store.add(Anchor(SCOPE, bytes(k["anchor"].verify_key)))
    store.dump(root / "anchors.yaml")
    grant = Grant(operations=("orders.*",), destinations=(Destination("orders", 1024, 65535),),
                  expires=int(time.time()) + 3600)  # fmt: skip
    (root / "bob.cred").write_bytes(issue(k["anchor"], SCOPE, bytes(k["bob"].verify_key),
                                          grant).encode())  # fmt: skip
    (root / "policy.yaml").write_text(
        'anchors: anchors.yaml\ndefault: deny\nrules:\n  - name: w\n    operations: ["orders.*"]\n'
        "    services: [orders]\n"
    )


def test_listen_and_send_over_ipv6_loopback(tmp_path: Path) -> None:
    _files(tmp_path)
    p = lambda name: str(tmp_path / name)  # noqa: E731
    flows = tmp_path / "flows.jsonl"
    proc = subprocess.Popen(
        [*CLI, "listen", "--key", p("rx"), "--policy", p("policy.yaml"), "--host", "::1",
         "--port", "0", "--flows", str(flows)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("listening on "), line + proc.stderr.read()
        port = int(line.split()[2].rsplit(":", 1)[1])
        sent = subprocess.run(
            [*CLI, "send", "--key", p("bob"), "--cred", p("bob.cred"), "--to", f"[::1]:{port}",
             "--receiver-key", p("rx.pub"), "--service", "orders", "--op", "orders.write",
             "--wait", "0.2", "--count", "3", "--interval", "0.01", "hello over v6"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if flows.exists() and len(flows.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
    finally:
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    admitted = [line for line in out.splitlines() if line.startswith("ADMIT")]
    assert len(admitted) == 3 and all("hello over v6" in line for line in admitted), out
    assert sent.stdout.startswith(f"sent 3 payloads to [::1]:{port} "), sent.stdout
    records = [json.loads(x) for x in flows.read_text().splitlines()]
    assert [r["verdict"] for r in records] == ["FORWARDED"] * len(records) and len(records) >= 3
    assert {r["IP"]["source"] for r in records} == {"::1"}
    assert {r["IP"]["ipVersion"] for r in records} == {"IPv6"}
