"""The credential CLI: keygen, anchors, issue, delegate, inspect, verify, revoke.

Happy paths run in-process through `typer.testing.CliRunner`; the error-path
contract (one line, non-zero exit, never a traceback) is also checked through
a real `python -m warrant.cli` subprocess, since that is what users run.
"""

from __future__ import annotations

import base64
import json
import os
import random
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import click
import pytest
import typer.main
from click.testing import CliRunner, Result

from warrant.cli import app
from warrant.cli.authority import decode_blob, fmt_time, parse_time
from warrant.core import keys
from warrant.core.anchors import TrustStore
from warrant.core.constants import CLOCK_SKEW
from warrant.core.credential import Credential, Link, encode_body, signed_message
from warrant.core.revocation import RevocationList
from warrant.core.rights import Grant

NOW = int(time.time())
ALICE_EXPIRES = NOW + 3600
ALICE_NOT_BEFORE = NOW - 600
BOB_EXPIRES = NOW + 1800

runner = CliRunner()
# typer.testing.CliRunner rebuilds the click command on every call (~15 ms); the
# byte-flipping tests below run hundreds of commands, so build it once and drive
# it with click's runner (typer vendors click, hence the cast; behaviour is the same).
command = cast(click.Command, typer.main.get_command(app))


def cli(*args: object) -> Result:
    """Invoke the app in-process; an exception other than an exit is a test failure."""
    result = runner.invoke(command, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"unhandled {result.exception!r}\n{result.output}")
    return result


def ok(*args: object) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {lines!r}"
    assert "Traceback" not in text
    return lines[0]


def failure(*args: object, code: int | None = None) -> str:
    """Run a command expected to fail; return its one output line."""
    result = cli(*args)
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    return one_line(result.output)


@dataclass
class World:
    dir: Path
    anchor: Path  # acme.prod anchor secret key (anchor.pub beside it)
    alice: Path
    bob: Path
    carol: Path
    anchors: Path
    alice_cred: Path  # root credential held by alice
    bob_cred: Path  # alice -> bob delegation

    def pub(self, key: Path) -> Path:
        return key.with_name(key.name + ".pub")


@pytest.fixture
def world(tmp_path: Path) -> World:
    for name in ("anchor", "alice", "bob", "carol"):
        ok("keygen", tmp_path / name)
    w = World(
        tmp_path,
        tmp_path / "anchor",
        tmp_path / "alice",
        tmp_path / "bob",
        tmp_path / "carol",
        tmp_path / "anchors.yaml",
        tmp_path / "alice.cred",
        tmp_path / "bob.cred",
    )
    ok("anchors", "add", w.anchors, "--scope", "acme.prod", "--key", w.pub(w.anchor))
    ok(
        "issue", "--anchor-key", w.anchor, "--scope", "acme.prod", "--holder", w.pub(w.alice),
        "--op", "orders.*", "--dst", "orders:8443", "--expires", ALICE_EXPIRES,
        "--not-before", ALICE_NOT_BEFORE, "--max-hops", 4, "--rate", 100,
        "--allow-domain", "acme.net", "--allow-domain", "partner.net",
        "--forbid-domain", "evil.net", "-o", w.alice_cred,
    )  # fmt: skip
    ok(
        "delegate", w.alice_cred, "--key", w.alice, "--to", w.pub(w.bob),
        "--op", "orders.read", "--expires", BOB_EXPIRES, "-o", w.bob_cred,
    )  # fmt: skip
    return w


def verify_json(*args: object) -> tuple[int, dict[str, object]]:
    result = cli("verify", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


# ---- the walk-through ----------------------------------------------------------------
def test_walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = ok("keygen", "acme-anchor").stdout
    anchor_pub = keys.load_public(Path("acme-anchor.pub"))
    assert keys.encode_public(anchor_pub) in out
    assert keys.anchor_id(anchor_pub).hex() in out
    ok("keygen", "alice")
    ok("keygen", "bob")

    out = ok(
        "anchors", "add", "anchors.yaml", "--scope", "acme.prod", "--key", "acme-anchor.pub"
    ).stdout
    assert "added anchor" in out and "acme.prod" in out
    out = ok("anchors", "show", "anchors.yaml").stdout
    assert "acme.prod" in out and keys.anchor_id(anchor_pub).hex() in out

    out = ok(
        "issue", "--anchor-key", "acme-anchor", "--scope", "acme.prod", "--holder", "alice.pub",
        "--op", "orders.*", "--dst", "orders:8443", "--expires", "1h", "-o", "alice.cred",
    ).stdout  # fmt: skip
    assert out.startswith("issued alice.cred: scope acme.prod, 1 link")
    assert Path("alice.cred").read_bytes()[:1] == b"\x83"  # raw CBOR: [1, body, sig]

    out = ok(
        "delegate", "alice.cred", "--key", "alice", "--to", "bob.pub",
        "--op", "orders.read", "--expires", "30m", "-o", "bob.cred",
    ).stdout  # fmt: skip
    assert out.startswith("delegated bob.cred: scope acme.prod, 2 links")

    out = ok("inspect", "bob.cred").stdout
    cred = Credential.decode(Path("bob.cred").read_bytes())
    for link_id in cred.link_ids():
        assert link_id.hex() in out
    assert cred.chain_digest.hex() in out
    assert "orders.read" in out and "orders:8443" in out

    line = one_line(ok("verify", "bob.cred", "--anchors", "anchors.yaml").stdout)
    assert line.startswith("VALID: scope acme.prod, depth 2")
    line = one_line(
        ok(
            "verify", "bob.cred", "--anchors", "anchors.yaml", "--op", "orders.read",
            "--dst", "orders:8443",
        ).stdout
    )  # fmt: skip
    assert line.startswith("VALID for orders.read on orders:8443")


# ---- keygen ----------------------------------------------------------------------------
def test_keygen_files_modes_and_overwrite(tmp_path: Path) -> None:
    sec, pub = tmp_path / "k", tmp_path / "k.pub"
    ok("keygen", sec)
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600
    assert sec.read_text().startswith(keys.SECRET_PREFIX)
    first = keys.load_public(pub)
    assert bytes(keys.load_secret(sec).verify_key) == first

    line = failure("keygen", sec, code=2)
    assert "already exists" in line and "--force" in line
    assert keys.load_public(pub) == first

    sec.chmod(0o644)
    ok("keygen", sec, "--force")
    assert keys.load_public(pub) != first
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600


def test_keygen_refuses_when_only_the_public_file_exists(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("precious\n")
    assert "already exists" in failure("keygen", tmp_path / "k", code=2)
    assert not (tmp_path / "k").exists()


# ---- anchors ----------------------------------------------------------------------------
def test_anchors_add_update_relay_and_show(world: World) -> None:
    anchor_pub = keys.load_public(world.pub(world.anchor))
    out = ok(
        "anchors", "add", world.anchors, "--scope", "acme.prod", "--key", world.pub(world.anchor),
        "--not-before", "2026-01-01T00:00:00Z", "--not-after", "2030-01-01",
    ).stdout  # fmt: skip
    assert out.startswith("updated anchor")
    ok("anchors", "add", world.anchors, "--scope", "acme.dev", "--key", world.pub(world.carol))
    ok(
        "anchors",
        "add-relay",
        world.anchors,
        "--domain",
        "partner.net",
        "--key",
        world.pub(world.bob),
    )

    store = TrustStore.load(world.anchors)
    assert store.scopes() == ["acme.dev", "acme.prod"]
    [prod] = store.anchors["acme.prod"]  # updated in place, not duplicated
    assert prod.public == anchor_pub
    assert prod.not_before == 1767225600 and prod.not_after == 1893456000
    assert store.relay_domain(keys.load_public(world.pub(world.bob))) == "partner.net"

    out = ok("anchors", "show", world.anchors).stdout
    for text in ("acme.prod", "acme.dev", keys.anchor_id(anchor_pub).hex(), "partner.net"):
        assert text in out
    assert "2026-01-01T00:00:00Z" in out


def test_anchors_add_accepts_an_inline_key_and_a_blank_file(world: World) -> None:
    blank = world.dir / "blank.yaml"
    blank.write_text("\n")
    inline = keys.load_public(world.pub(world.carol))
    ok("anchors", "add", blank, "--scope", "x.y", "--key", keys.encode_public(inline))
    assert TrustStore.load(blank).anchors["x.y"][0].public == inline


def test_anchors_add_rejects_inverted_validity(world: World) -> None:
    line = failure(
        "anchors", "add", world.anchors, "--scope", "acme.prod", "--key", world.pub(world.anchor),
        "--not-before", "2030-01-01", "--not-after", "2029-01-01", code=2,
    )  # fmt: skip
    assert "--not-before is after --not-after" in line


# ---- issue / delegate ------------------------------------------------------------------------
def test_issue_requires_operations_and_destinations(world: World) -> None:
    base = ("issue", "--anchor-key", world.anchor, "--scope", "acme.prod",
            "--holder", world.pub(world.bob), "--expires", "1h", "-o", world.dir / "x.cred")  # fmt: skip
    assert "--op is required" in failure(*base, "--dst", "orders:1", code=2)
    assert "--dst is required" in failure(*base, "--op", "orders.read", code=2)
    assert not (world.dir / "x.cred").exists()


@pytest.mark.parametrize(
    "widening",
    [
        ["--op", "billing.read"],
        ["--op", "*"],
        ["--dst", "orders:1-65535"],
        ["--dst", "billing:8443"],
        ["--expires", "7d"],
        ["--not-before", str(ALICE_NOT_BEFORE - 1)],
        ["--max-hops", "5"],
        ["--rate", "101"],
        ["--allow-domain", "other.net"],
    ],
)
def test_delegation_that_widens_is_refused_with_escalation(
    world: World, widening: list[str]
) -> None:
    out_path = world.dir / "wide.cred"
    line = failure(
        "delegate", world.alice_cred, "--key", world.alice, "--to", world.pub(world.carol),
        *widening, "-o", out_path, code=2,
    )  # fmt: skip
    assert line.startswith("error ESCALATION (7): delegation widens")
    assert not out_path.exists()


def test_delegation_from_the_wrong_key_is_refused(world: World) -> None:
    line = failure(
        "delegate", world.alice_cred, "--key", world.carol, "--to", world.pub(world.carol),
        "-o", world.dir / "x.cred", code=2,
    )  # fmt: skip
    assert "BAD_SIGNATURE (5)" in line


def test_delegation_adds_to_required_and_forbidden_domains(world: World) -> None:
    out_path = world.dir / "carol.cred"
    ok(
        "delegate", world.bob_cred, "--key", world.bob, "--to", world.pub(world.carol),
        "--forbid-domain", "other.net", "--require-domain", "acme.net", "-o", out_path,
    )  # fmt: skip
    code, obj = verify_json(out_path, "--anchors", world.anchors)
    assert code == 0
    rights = obj["rights"]
    assert isinstance(rights, dict)
    assert rights["forbidden_domains"] == ["evil.net", "other.net"]
    assert rights["required_domains"] == ["acme.net"]
    assert rights["allowed_domains"] == ["acme.net", "partner.net"]
    assert rights["max_hops"] == 4 and rights["rate"] == 100


def test_delegation_beyond_the_depth_limit_is_not_written(world: World) -> None:
    parent, holder = world.alice_cred, world.alice
    for i in range(7):  # depth 2 .. 8
        key = world.dir / f"k{i}"
        ok("keygen", key)
        child = world.dir / f"d{i}.cred"
        ok("delegate", parent, "--key", holder, "--to", world.pub(key), "-o", child)
        parent, holder = child, key
    assert ok("verify", parent, "--anchors", world.anchors).stdout.startswith("VALID")
    too_deep = world.dir / "too-deep.cred"
    line = failure(
        "delegate", parent, "--key", holder, "--to", world.pub(world.bob), "-o", too_deep, code=2
    )
    assert "MALFORMED (1): chain already has the maximum of" in line
    assert not too_deep.exists()


def test_base64_output_and_transparent_input(world: World) -> None:
    b64 = world.dir / "alice.b64"
    ok(
        "issue", "--anchor-key", world.anchor, "--scope", "acme.prod",
        "--holder", world.pub(world.alice), "--op", "orders.*", "--dst", "orders:8443",
        "--expires", "1h", "-o", b64, "--base64",
    )  # fmt: skip
    text = b64.read_text()
    assert text.isascii() and text.endswith("\n")
    raw = base64.b64decode(text)
    assert Credential.decode(raw).scope == "acme.prod"

    assert ok("verify", b64, "--anchors", world.anchors).stdout.startswith("VALID")
    assert "orders.*" in ok("inspect", b64).stdout
    child = world.dir / "bob-from-b64.cred"
    ok("delegate", b64, "--key", world.alice, "--to", world.pub(world.bob), "-o", child)
    assert ok("verify", child, "--anchors", world.anchors).stdout.startswith("VALID")

    # Wrapped, URL-safe and unpadded variants of the same bytes are all read.
    wrapped = "\n".join(text[i : i + 40] for i in range(0, len(text), 40))
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    for variant in (wrapped, urlsafe):
        assert decode_blob(variant.encode(), "credential") == raw


# ---- inspect ---------------------------------------------------------------------------------
def test_inspect_table(world: World) -> None:
    out = ok("inspect", world.bob_cred).stdout
    cred = Credential.decode(world.bob_cred.read_bytes())
    assert "scope acme.prod, 2 links" in out
    assert f"anchor {cred.anchor_id.hex()}" in out
    assert f"key {keys.key_id(cred.holder).hex()}" in out
    for link_id in cred.link_ids():
        assert link_id.hex() in out
    assert "Effective rights" in out and "evil.net" in out
    assert cred.chain_digest.hex() in out


def test_inspect_json(world: World) -> None:
    obj = json.loads(ok("inspect", world.bob_cred, "--json").stdout)
    cred = Credential.decode(world.bob_cred.read_bytes())
    assert obj["type"] == "credential"
    assert obj["scope"] == "acme.prod" and obj["depth"] == 2
    assert obj["chain_digest"] == cred.chain_digest.hex()
    assert [link["link_id"] for link in obj["links"]] == [i.hex() for i in cred.link_ids()]
    assert obj["links"][0]["issuer_anchor_id"] == cred.anchor_id.hex()
    assert obj["links"][1]["issuer_key_id"] == keys.key_id(cred.links[0].holder).hex()
    assert obj["links"][1]["stated"] == {"operations": ["orders.read"], "expires": BOB_EXPIRES}
    assert obj["effective_rights"]["operations"] == ["orders.read"]
    assert obj["effective_rights"]["not_before"] == ALICE_NOT_BEFORE
    assert base64.b64decode(obj["base64"]) == world.bob_cred.read_bytes()


def test_inspect_recognises_a_revocation_list(world: World) -> None:
    rl = world.dir / "r.rl"
    cred = Credential.decode(world.bob_cred.read_bytes())
    link_id = cred.link_ids()[1].hex()
    ok(
        "revoke", "--anchor-key", world.anchor, "--scope", "acme.prod", "--link-id", link_id,
        "--key", world.pub(world.carol), "--serial", 7, "-o", rl,
    )  # fmt: skip
    out = ok("inspect", rl).stdout
    assert "Revocation list" in out and "serial 7" in out and link_id in out
    obj = json.loads(ok("inspect", rl, "--json").stdout)
    assert obj["type"] == "revocation_list" and obj["link_ids"] == [link_id]
    assert obj["keys"] == [keys.encode_public(keys.load_public(world.pub(world.carol)))]


# ---- verify ----------------------------------------------------------------------------------
def test_verify_json_when_valid(world: World) -> None:
    code, obj = verify_json(world.bob_cred, "--anchors", world.anchors)
    cred = Credential.decode(world.bob_cred.read_bytes())
    assert code == 0
    assert obj["valid"] is True and obj["reason"] == "OK" and obj["code"] == 0
    assert obj["detail"]
    assert obj["scope"] == "acme.prod"
    assert obj["holder"] == keys.encode_public(keys.load_public(world.pub(world.bob)))
    assert obj["chain_digest"] == cred.chain_digest.hex()
    assert obj["link_ids"] == [i.hex() for i in cred.link_ids()]
    rights = obj["rights"]
    assert isinstance(rights, dict)
    assert rights["operations"] == ["orders.read"]
    assert rights["destinations"] == ["orders:8443"]
    assert rights["expires"] == BOB_EXPIRES


def test_verify_json_when_invalid(world: World) -> None:
    code, obj = verify_json(world.bob_cred, "--anchors", world.anchors, "--at", BOB_EXPIRES + 3600)
    assert code == 1
    assert obj["valid"] is False
    assert obj["reason"] == "EXPIRED" and obj["code"] == 8
    assert str(BOB_EXPIRES) in str(obj["detail"])
    assert "rights" not in obj


@pytest.mark.parametrize(
    ("op", "dst", "reason"),
    [
        ("orders.read", "orders:8443", None),
        ("orders.write", "orders:8443", "OPERATION_NOT_GRANTED (21)"),
        ("orders.read", "orders:9000", "DESTINATION_NOT_GRANTED (22)"),
        ("orders.read", "billing:8443", "DESTINATION_NOT_GRANTED (22)"),
        ("orders.read", "orders", "DESTINATION_NOT_GRANTED (22)"),  # every port: too wide
    ],
)
def test_verify_checks_operation_and_destination(
    world: World, op: str, dst: str, reason: str | None
) -> None:
    result = cli("verify", world.bob_cred, "--anchors", world.anchors, "--op", op, "--dst", dst)
    line = one_line(result.output)
    if reason is None:
        assert result.exit_code == 0 and line.startswith("VALID")
    else:
        assert result.exit_code == 1 and line.startswith(f"INVALID {reason}: ")


def test_verify_rejects_a_bad_op_or_dst_argument(world: World) -> None:
    args = ("verify", world.bob_cred, "--anchors", world.anchors)
    assert "bad operation pattern" in failure(*args, "--op", "Orders!", code=2)
    assert "bad port range" in failure(*args, "--dst", "orders:70000", code=2)


def test_wrong_scope(world: World) -> None:
    staging = world.dir / "staging.yaml"
    ok("anchors", "add", staging, "--scope", "acme.staging", "--key", world.pub(world.anchor))
    line = failure("verify", world.bob_cred, "--anchors", staging, code=1)
    assert line.startswith("INVALID WRONG_SCOPE (10): ")
    # The same anchors file, but only another scope admitted on the command line.
    line = failure(
        "verify", world.bob_cred, "--anchors", world.anchors, "--scope", "acme.dev", code=1
    )
    assert line.startswith("INVALID WRONG_SCOPE (10): ")
    code, obj = verify_json(world.bob_cred, "--anchors", staging)
    assert (code, obj["reason"], obj["code"]) == (1, "WRONG_SCOPE", 10)


def test_unknown_anchor_for_the_scope(world: World) -> None:
    other = world.dir / "other.yaml"
    ok("anchors", "add", other, "--scope", "acme.prod", "--key", world.pub(world.carol))
    line = failure("verify", world.bob_cred, "--anchors", other, code=1)
    assert line.startswith("INVALID UNKNOWN_ANCHOR (6): ")


def test_revoke_link_then_verify(world: World) -> None:
    rl = world.dir / "r1.rl"
    root_link = Credential.decode(world.alice_cred.read_bytes()).link_ids()[0].hex()
    out = ok(
        "revoke", "--anchor-key", world.anchor, "--scope", "acme.prod",
        "--link-id", root_link, "--serial", 1, "-o", rl,
    ).stdout  # fmt: skip
    assert "serial 1" in out
    for cred in (world.alice_cred, world.bob_cred):  # a revoked link revokes its delegations
        line = failure("verify", cred, "--anchors", world.anchors, "--revocations", rl, code=1)
        assert line.startswith("INVALID REVOKED (11): ")
    code, obj = verify_json(world.bob_cred, "--anchors", world.anchors, "--revocations", rl)
    assert (code, obj["reason"], obj["code"]) == (1, "REVOKED", 11)


def test_revoke_key_then_verify_and_serials(world: World) -> None:
    by_key = world.dir / "r2.rl"
    empty_newer = world.dir / "r3.rl"
    common = ("--anchor-key", world.anchor, "--scope", "acme.prod")
    ok("revoke", *common, "--key", world.pub(world.bob), "--serial", 2, "-o", by_key, "--base64")
    ok("revoke", *common, "--serial", 3, "-o", empty_newer)
    anchors = ("--anchors", world.anchors)
    line = failure("verify", world.bob_cred, *anchors, "--revocations", by_key, code=1)
    assert line == "INVALID REVOKED (11): a key of this chain is revoked"
    assert ok("verify", world.alice_cred, *anchors, "--revocations", by_key).stdout.startswith(
        "VALID"
    )
    # A newer list replaces an older one, whatever the order they are given in.
    for order in ((by_key, empty_newer), (empty_newer, by_key)):
        rls = [a for path in order for a in ("--revocations", path)]
        assert ok("verify", world.bob_cred, *anchors, *rls).stdout.startswith("VALID")


def test_a_large_revocation_list_is_read(world: World) -> None:
    big = world.dir / "big.rl"
    link_ids = [i.to_bytes(16, "big") for i in range(6000)]  # about 100 KiB
    link_ids.append(Credential.decode(world.bob_cred.read_bytes()).link_ids()[-1])
    big.write_bytes(
        RevocationList.sign(keys.load_secret(world.anchor), "acme.prod", 4, link_ids).encode()
    )
    assert big.stat().st_size > 64 * 1024
    line = failure("verify", world.bob_cred, "--anchors", world.anchors, "--revocations", big)
    assert line.startswith("INVALID REVOKED (11)")
    assert ok("verify", world.alice_cred, "--anchors", world.anchors, "--revocations", big)


def test_revocation_list_from_another_key_is_refused(world: World) -> None:
    forged = world.dir / "forged.rl"
    ok("revoke", "--anchor-key", world.carol, "--scope", "acme.prod", "--serial", 9, "-o", forged)
    line = failure(
        "verify", world.bob_cred, "--anchors", world.anchors, "--revocations", forged, code=2
    )
    assert "UNKNOWN_ANCHOR (6)" in line and "forged.rl" in line


def test_expired_and_not_yet_valid(world: World) -> None:
    args = ("verify", world.bob_cred, "--anchors", world.anchors)
    assert ok(*args, "--at", BOB_EXPIRES + CLOCK_SKEW).stdout.startswith("VALID")
    line = failure(*args, "--at", BOB_EXPIRES + CLOCK_SKEW + 1, code=1)
    assert line == f"INVALID EXPIRED (8): credential expired at {BOB_EXPIRES}"
    iso = datetime.fromtimestamp(BOB_EXPIRES + 86400, UTC).isoformat()
    assert failure(*args, "--at", iso, code=1).startswith("INVALID EXPIRED (8)")
    assert failure(*args, "--at", "2d", code=1).startswith("INVALID EXPIRED (8)")
    line = failure(*args, "--at", ALICE_NOT_BEFORE - CLOCK_SKEW - 1, code=1)
    assert line.startswith("INVALID NOT_YET_VALID (9)")
    assert ok(*args, "--at", ALICE_NOT_BEFORE - 1, "--skew", 1).stdout.startswith("VALID")


def test_expired_anchor(world: World) -> None:
    ok(
        "anchors", "add", world.anchors, "--scope", "acme.prod", "--key", world.pub(world.anchor),
        "--not-after", NOW - 3600,
    )  # fmt: skip
    line = failure("verify", world.bob_cred, "--anchors", world.anchors, code=1)
    assert line == "INVALID EXPIRED (8): trust anchor expired"
    assert "(expired)" in ok("anchors", "show", world.anchors).stdout


def test_a_chain_that_widens_is_refused_by_verify_and_flagged_by_inspect(world: World) -> None:
    # Built by hand: the CLI's delegate refuses to produce such a chain.
    parent = Credential.decode(world.alice_cred.read_bytes())
    carol = keys.load_public(world.pub(world.carol))
    body = encode_body(None, None, carol, Grant(operations=("billing.read",)))
    sig = keys.load_secret(world.alice).sign(signed_message(parent.chain_digest, body)).signature
    forged = world.dir / "forged.cred"
    forged.write_bytes(Credential((*parent.links, Link.decode(body, sig, root=False))).encode())

    line = failure("verify", forged, "--anchors", world.anchors, code=1)
    assert line.startswith("INVALID ESCALATION (7): delegation widens operations")
    result = cli("inspect", forged)
    assert result.exit_code == 1
    assert "billing.read" in result.stdout  # still shows what the link claims
    assert one_line(result.stderr).startswith("error ESCALATION (7)")
    result = cli("inspect", forged, "--json")
    obj = json.loads(result.stdout)
    assert result.exit_code == 1
    assert obj["effective_rights"] is None and obj["error"]["reason"] == "ESCALATION"


# ---- tampering and truncation --------------------------------------------------------------------
def test_every_single_byte_change_is_refused(world: World) -> None:
    good = world.bob_cred.read_bytes()
    bad = world.dir / "tampered.cred"
    seen = set()
    for i in range(len(good)):
        for flip in (0x01, 0x80):
            bad.write_bytes(good[:i] + bytes([good[i] ^ flip]) + good[i + 1 :])
            result = cli("verify", bad, "--anchors", world.anchors)
            line = one_line(result.output)
            assert result.exit_code in (1, 2), (i, line)
            assert not line.startswith("VALID"), (i, line)
            seen.add(line.split(" (")[0].split()[-1])
    assert {"MALFORMED", "BAD_SIGNATURE"} <= seen


def test_every_truncation_is_refused(world: World) -> None:
    good = world.bob_cred.read_bytes()
    short = world.dir / "short.cred"
    for n in range(1, len(good)):
        short.write_bytes(good[:n])
        for args in (("verify", short, "--anchors", world.anchors), ("inspect", short)):
            line = failure(*args, code=1)
            assert "MALFORMED (1)" in line, (n, line)


def test_random_mutations_never_crash(world: World) -> None:
    rng = random.Random(1234)
    good = world.bob_cred.read_bytes()
    target = world.dir / "fuzz.cred"
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(data))
            if op == 0:
                data[pos] = rng.randrange(256)
            elif op == 1:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        target.write_bytes(bytes(data))
        for args in (("verify", target, "--anchors", world.anchors), ("inspect", target)):
            result = cli(*args)  # raises on any unhandled exception
            if result.exit_code != 0:
                # inspect still shows what it decoded, then the one error line on stderr
                one_line(result.stderr if args[0] == "inspect" else result.output)


# ---- times --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", 1_000_000 + 1800),
        ("1h", 1_000_000 + 3600),
        ("7d", 1_000_000 + 7 * 86400),
        ("1h30m", 1_000_000 + 5400),
        ("2w", 1_000_000 + 14 * 86400),
        ("+45s", 1_000_045),
        ("-1d", 1_000_000 - 86400),
        ("now", 1_000_000),
        ("1767225600", 1767225600),
        ("2026-01-01T00:00:00Z", 1767225600),
        ("2026-01-01T01:00:00+01:00", 1767225600),
        ("2026-01-01T00:00:00", 1767225600),  # no zone: UTC
        ("2026-01-01", 1767225600),
    ],
)
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text, 1_000_000.5) == expected


@pytest.mark.parametrize("text", ["", "tomorrow", "1y", "1h 30m", "h", "-5", "1.5h", "2026-13-01"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad time"):
        parse_time(text, 1_000_000, "--expires")


def test_parse_time_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_time("-100d", 0, "--at")
    with pytest.raises(ValueError, match="out of range"):
        parse_time("9" * 30, 0, "--at")


def test_fmt_time() -> None:
    assert fmt_time(1767225600) == "2026-01-01T00:00:00Z"
    assert fmt_time(None) == "-"
    assert fmt_time(2**63 - 1) == str(2**63 - 1)


# ---- the error contract, through the real entry point -------------------------------------------------
def run_warrant(cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="40")  # narrow terminal: an error must still be one line
    return subprocess.run(
        [sys.executable, "-m", "warrant.cli", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _bad_inputs(w: World) -> dict[str, tuple[list[object], int, str]]:
    """case id -> (arguments, exit code, text the line must contain)."""
    d = w.dir
    good = w.bob_cred.read_bytes()
    (d / "truncated.cred").write_bytes(good[: len(good) // 2])
    tampered = bytearray(good)
    tampered[-1] ^= 0x01  # last byte of the last signature
    (d / "tampered.cred").write_bytes(bytes(tampered))
    (d / "empty.cred").write_bytes(b"")
    (d / "garbage.key").write_text("this is not a key\n")
    (d / "short.key").write_text(keys.PUBLIC_PREFIX + "AAAA\n")
    (d / "binary.key").write_bytes(bytes(range(256)))
    (d / "not-yaml.yaml").write_text("scopes: [\n  a: : b\n")
    (d / "wrong-shape.yaml").write_text("- just\n- a list\n")
    (d / "a-directory").mkdir()
    (d / "other-scope.yaml").write_text(
        "scopes:\n  acme.dev:\n    anchors:\n      - key: "
        + keys.encode_public(keys.load_public(w.pub(w.anchor)))
        + "\n"
    )
    issue = ["issue", "--anchor-key", w.anchor, "--scope", "acme.prod",
             "--holder", w.pub(w.bob), "--op", "orders.read", "--dst", "orders:8443",
             "--expires", "1h", "-o", d / "new.cred"]  # fmt: skip
    verify = ["verify", w.bob_cred, "--anchors", w.anchors]
    long_name = d / ("a-rather-long-directory-name-" * 3) / "missing.cred"
    return {
        "missing credential (inspect)": (["inspect", d / "nope.cred"], 2, "not found"),
        "missing credential (verify)": (["verify", d / "nope.cred", "--anchors", w.anchors], 2,
                                        "not found"),
        "missing credential, long path": (["inspect", long_name], 2, "missing.cred"),
        "missing anchors file": (["verify", w.bob_cred, "--anchors", d / "nope.yaml"], 2,
                                 "anchor file not found"),
        "missing secret key": ([*issue[:1], "--anchor-key", d / "nope", *issue[3:]], 2,
                               "secret key file not found"),
        "public key used as secret": (["issue", "--anchor-key", w.pub(w.anchor), *issue[3:]], 2,
                                      "not a Warrant secret key"),
        "garbage key file": ([*issue[:5], "--holder", d / "garbage.key", *issue[7:]], 2,
                             "not a Warrant public key"),
        "short key": ([*issue[:5], "--holder", d / "short.key", *issue[7:]], 2, "32 bytes"),
        "binary key file": ([*issue[:5], "--holder", d / "binary.key", *issue[7:]], 2,
                            "binary.key"),
        "truncated credential (verify)": (["verify", d / "truncated.cred", "--anchors", w.anchors],
                                          1, "MALFORMED (1)"),
        "truncated credential (inspect)": (["inspect", d / "truncated.cred"], 1, "MALFORMED (1)"),
        "truncated credential (delegate)": (["delegate", d / "truncated.cred", "--key", w.bob,
                                             "--to", w.pub(w.carol), "-o", d / "x.cred"], 2,
                                            "MALFORMED (1)"),
        "tampered credential": (["verify", d / "tampered.cred", "--anchors", w.anchors], 1,
                                "BAD_SIGNATURE (5)"),
        "empty credential": (["inspect", d / "empty.cred"], 2, "empty"),
        "credential is a directory": (["inspect", d / "a-directory"], 2, "Is a directory"),
        "wrong scope": (["verify", w.bob_cred, "--anchors", d / "other-scope.yaml"], 1,
                        "WRONG_SCOPE (10)"),
        "bad scope name": ([*issue[:3], "--scope", "Acme Prod", *issue[5:]], 2,
                           "bad scope name"),
        "bad time string (issue)": ([*issue[:-4], "--expires", "tomorrow", *issue[-2:]], 2,
                                    "--expires: bad time 'tomorrow'"),
        "bad time string (verify)": ([*verify, "--at", "yesterday-ish"], 2,
                                     "--at: bad time"),
        "bad destination": ([*issue[:9], "--dst", "orders:http", *issue[11:]], 2,
                            "bad destination"),
        "anchors not YAML": (["verify", w.bob_cred, "--anchors", d / "not-yaml.yaml"], 2,
                             "not valid YAML at line"),
        "anchors wrong shape": (["anchors", "show", d / "wrong-shape.yaml"], 2, "'scopes'"),
        "escalation": (["delegate", w.bob_cred, "--key", w.bob, "--to", w.pub(w.carol),
                        "--op", "orders.write", "-o", d / "x.cred"], 2, "ESCALATION (7)"),
        "bad link id": (["revoke", "--anchor-key", w.anchor, "--scope", "acme.prod",
                         "--link-id", "abc", "--serial", "1", "-o", d / "r.rl"], 2, "--link-id"),
        "keygen over existing": (["keygen", w.bob], 2, "already exists"),
        "markup in file name": (["inspect", d / "[/bold]x.cred"], 2, "[/bold]x.cred"),
    }  # fmt: skip


BAD_INPUT_CASES = [
    "missing credential (inspect)",
    "missing credential (verify)",
    "missing credential, long path",
    "missing anchors file",
    "missing secret key",
    "public key used as secret",
    "garbage key file",
    "short key",
    "binary key file",
    "truncated credential (verify)",
    "truncated credential (inspect)",
    "truncated credential (delegate)",
    "tampered credential",
    "empty credential",
    "credential is a directory",
    "wrong scope",
    "bad scope name",
    "bad time string (issue)",
    "bad time string (verify)",
    "bad destination",
    "anchors not YAML",
    "anchors wrong shape",
    "escalation",
    "bad link id",
    "keygen over existing",
    "markup in file name",
]


def test_bad_input_cases_are_all_listed(world: World) -> None:
    assert sorted(_bad_inputs(world)) == sorted(BAD_INPUT_CASES)


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_gives_one_line_and_no_traceback(world: World, case: str) -> None:
    args, code, needle = _bad_inputs(world)[case]
    proc = run_warrant(world.dir, *args)
    output = proc.stdout + proc.stderr
    line = one_line(output)
    assert proc.returncode == code, output
    assert needle in line, line
    if code == 2:
        assert line.startswith("error "), line


def test_usage_errors_exit_non_zero_without_traceback(world: World) -> None:
    proc = run_warrant(world.dir, "issue", "--scope", "acme.prod")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
