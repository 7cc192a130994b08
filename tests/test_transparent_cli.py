"""`warrant workload add|list|remove` (transparent-mode registry, SPEC 13): what it
stores and every refusal as one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from warrant.core import credential, keys
from warrant.core.rights import Destination, Grant
from warrant.datapath.workloads import load_registry


def _warrant(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warrant.cli", *args], capture_output=True,
                          text=True)  # fmt: skip


def _holder(tmp: Path, name: str, holder: bytes | None = None) -> tuple[Path, Path]:
    anchor, hk = keys.generate(), keys.generate()
    now = int(time.time())
    grant = Grant(operations=("ip",), destinations=(Destination("server", 4600, 4600),),
                  not_before=now - 60, expires=now + 3600, max_hops=0)  # fmt: skip
    cred = credential.issue(anchor, "tp.test", holder or bytes(hk.verify_key), grant)
    (tmp / f"{name}.sec").write_text(keys.encode_secret(hk) + "\n")
    (tmp / f"{name}.cred").write_bytes(cred.encode())
    return tmp / f"{name}.sec", tmp / f"{name}.cred"


def test_add_list_remove(tmp_path: Path) -> None:
    reg = str(tmp_path / "reg.json")
    key, cred = _holder(tmp_path, "client")
    r = _warrant("workload", "add", "client", "--registry", reg, "--veth", "lxc1",
                 "--address", "10.201.1.2", "--key", str(key), "--credential", str(cred))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = _warrant("workload", "add", "server", "--registry", reg, "--veth", "lxc2",
                 "--address", "10.201.2.2", "--service", "server", "--allow", "tcp/8000",
                 "--allow", "icmp")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (client, server) = load_registry(Path(reg))
    assert (client.veth, client.address, client.key) == ("lxc1", "10.201.1.2", str(key))
    assert (server.service, server.allow) == ("server", ["tcp/8000", "icmp"])
    listed = _warrant("workload", "list", "--registry", reg).stdout
    assert "client\tlxc1\t10.201.1.2" in listed and "allow=tcp/8000,icmp" in listed
    assert _warrant("workload", "remove", "client", "--registry", reg).returncode == 0
    assert [w.name for w in load_registry(Path(reg))] == ["server"]


def test_refusals(tmp_path: Path) -> None:
    reg = str(tmp_path / "reg.json")
    key, cred = _holder(tmp_path, "a")
    _, foreign = _holder(tmp_path, "b", holder=bytes(keys.generate().verify_key))
    assert _warrant("workload", "add", "a", "--registry", reg, "--veth", "lxc1",
                    "--address", "10.0.0.1").returncode == 0  # fmt: skip
    cases = [
        (["a", "--veth", "lxc9", "--address", "10.0.0.9"], "already registered"),
        (["b", "--veth", "lxc1", "--address", "10.0.0.9"], "veth 'lxc1' is already"),
        (["c", "--veth", "lxc3", "--address", "fd00::1"], "IPv4 address is required"),
        (["d", "--veth", "lxc4", "--address", "10.0.0.4", "--key", str(key)], "go together"),
        (["e", "--veth", "lxc5", "--address", "10.0.0.5", "--key", str(key), "--credential",
          str(foreign)], "its holder is not key"),
        (["f", "--veth", "lxc6", "--address", "10.0.0.6", "--key", "/nonexistent",
          "--credential", str(cred)], "not found"),
        (["g", "--veth", "lxc7", "--address", "10.0.0.7", "--service", "s", "--allow",
          "tcp/0"], "0 < LO <= HI"),
        (["h", "--veth", "lxc8", "--address", "10.0.0.8", "--allow", "tcp/80"], "needs --service"),
    ]  # fmt: skip
    for args, message in cases:
        r = _warrant("workload", "add", *args[:1], "--registry", reg, *args[1:])
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _warrant("workload", "remove", "zz", "--registry", reg)
    assert r.returncode == 2 and "no workload 'zz'" in r.stderr
    assert [w.name for w in load_registry(Path(reg))] == ["a"]


def test_delegate_from_a_node_credential(tmp_path: Path) -> None:
    """The node's credential grants `ip` on two services; the workload gets a fresh key
    and a depth-2 credential narrowed to one service and port, held by that key.  A
    service the node credential does not grant is an ESCALATION, and nothing is added."""
    reg = tmp_path / "reg.json"
    anchor, node = keys.generate(), keys.generate()
    now = int(time.time())
    grant = Grant(operations=("ip",), destinations=(Destination("server", 4600, 4600),
                  Destination("db", 4600, 4600)), not_before=now - 60, expires=now + 7200,
                  max_hops=0)  # fmt: skip
    (tmp_path / "node.sec").write_text(keys.encode_secret(node) + "\n")
    (tmp_path / "node.cred").write_bytes(
        credential.issue(anchor, "tp.test", bytes(node.verify_key), grant).encode()
    )
    base = ["--registry", str(reg), "--delegate-from", str(tmp_path / "node.cred"),
            "--node-key", str(tmp_path / "node.sec")]  # fmt: skip
    r = _warrant("workload", "add", "web", "--veth", "lxc1", "--address", "10.0.0.1", *base,
                 "--dst", "server:4600", "--lifetime", "600")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (w,) = load_registry(reg)
    wkey = keys.load_secret(Path(w.key or ""))
    cred = credential.Credential.decode(Path(w.credential or "").read_bytes())
    assert cred.holder == bytes(wkey.verify_key) != bytes(node.verify_key)
    assert len(cred.links) == 2
    rights = credential.effective_rights(cred.links)
    assert rights.operations == ("ip",)
    assert [(d.service, d.port_lo, d.port_hi) for d in rights.destinations] == [
        ("server", 4600, 4600)
    ]
    assert rights.expires <= now + 600 + 5
    assert oct(Path(w.key or "").stat().st_mode & 0o777) == "0o600"
    r = _warrant("workload", "add", "evil", "--veth", "lxc2", "--address", "10.0.0.2", *base,
                 "--dst", "payments:4600")  # fmt: skip
    assert r.returncode == 2 and "ESCALATION" in r.stderr, r.stderr
    assert [x.name for x in load_registry(reg)] == ["web"]
