"""/healthz (integration/healthz.py) and `--iface auto`, without a datapath.

The datapath-backed checks run for real in tests/test_agent_restart_caps.py (200 with a
program attached, 503 naming the program once it is detached)."""

from __future__ import annotations

import ctypes
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from warrant.cli.agent import default_route_interface
from warrant.integration.healthz import (
    Health,
    HealthServer,
    MapShape,
    agent_checks,
    pinned_map_check,
    pinned_map_shape,
    secrets_map,
)

SECRETS, SECRETS_SHAPE = secrets_map()


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class FakeDatapath:
    def __init__(self) -> None:
        self.on = True

    def attached(self, ifindex: int, mode: str = "xdp") -> bool:
        return self.on


class FakeSource:
    last_poll = 0.0


class FakePins:
    """The shape of each pinned map, by path (a path not here is not a BPF map)."""

    def __init__(self) -> None:
        self.shapes: dict[str, MapShape] = {}

    def __call__(self, path: str) -> MapShape:
        if path not in self.shapes:
            raise OSError(1, "Operation not permitted")
        return self.shapes[path]


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    for m in ("a", "b", SECRETS):
        (tmp_path / m).write_text("")
    pins = FakePins()
    pins.shapes[f"{tmp_path}/{SECRETS}"] = SECRETS_SHAPE
    dp, src, health = FakeDatapath(), FakeSource(), Health()
    policy = {"ok": (True, "policy in force")}
    agent_checks(health, dp, 7, "xdp", str(tmp_path), ("a", "b"), src, lambda: policy["ok"],
                 inspect=pins)  # fmt: skip
    server = HealthServer(health, 0, "127.0.0.1")
    yield server, dp, src, policy, tmp_path, pins
    server.close()


def test_every_check_ok_is_200_and_each_failure_is_503_with_its_reason(served) -> None:  # type: ignore[no-untyped-def]
    server, dp, src, policy, pins, _ = served
    code, body = get(server.url)
    assert code == 503 and body["checks"]["loop"]["ok"] is False  # the loop never ran yet
    src.last_poll = time.monotonic()
    code, body = get(server.url)
    assert code == 200 and body["status"] == "ok", body
    dp.on = False
    code, body = get(server.url)
    assert code == 503 and "not the one attached" in body["checks"]["program"]["detail"]
    dp.on = True
    (pins / "b").unlink()
    code, body = get(server.url)
    assert code == 503 and body["checks"]["maps"]["detail"].endswith(": b")
    (pins / "b").write_text("")
    policy["ok"] = (False, "WarrantPolicies not listed yet")
    assert get(server.url)[0] == 503
    policy["ok"] = (True, "ok")
    src.last_poll = time.monotonic() - 60
    assert get(server.url)[0] == 503  # a stuck main loop


def test_the_session_secrets_pin_missing_or_of_another_shape_is_503(served) -> None:  # type: ignore[no-untyped-def]
    server, _, src, _, root, pins = served
    src.last_poll = time.monotonic()
    assert get(server.url)[0] == 200
    path = f"{root}/{SECRETS}"
    pins.shapes[path] = MapShape(2, SECRETS_SHAPE.key_size, SECRETS_SHAPE.value_size)  # an array
    code, body = get(server.url)
    detail = body["checks"]["secrets"]["detail"]
    assert code == 503 and "wrong layout: map type 2" in detail, body
    pins.shapes[path] = MapShape(SECRETS_SHAPE.type, 16, SECRETS_SHAPE.value_size + 8)
    code, body = get(server.url)
    assert (
        code == 503
        and f"value {SECRETS_SHAPE.value_size + 8} B" in body["checks"]["secrets"]["detail"]
    )
    del pins.shapes[path]  # a file there, but not a map
    code, body = get(server.url)
    assert code == 503 and "not a BPF map" in body["checks"]["secrets"]["detail"]
    os.unlink(path)
    code, body = get(server.url)
    assert code == 503
    assert body["checks"]["secrets"]["detail"] == f"{SECRETS} is not pinned under {root}"
    assert all(c["ok"] for n, c in body["checks"].items() if n != "secrets")  # that one alone


def test_the_secrets_check_reads_real_pins() -> None:
    """The kernel's own answer (root): the agent's shape passes, an array map does not."""
    if os.geteuid() != 0 or not os.path.isdir("/sys/fs/bpf"):
        pytest.skip("needs root and bpffs")
    from warrant.datapath import libbpf

    root = f"/sys/fs/bpf/warrant-healthz-{os.getpid()}"
    os.mkdir(root)
    made: list[int] = []
    try:
        check = pinned_map_check(root, SECRETS, SECRETS_SHAPE)
        assert check() == (False, f"{SECRETS} is not pinned under {root}")
        fd = libbpf.map_create(SECRETS, libbpf.BPF_MAP_TYPE_HASH, SECRETS_SHAPE.key_size,
                               SECRETS_SHAPE.value_size, 16, libbpf.BPF_F_NO_PREALLOC)  # fmt: skip
        made.append(fd)
        libbpf.obj_pin(fd, f"{root}/{SECRETS}")
        assert pinned_map_shape(f"{root}/{SECRETS}") == SECRETS_SHAPE
        assert check()[0] is True
        os.unlink(f"{root}/{SECRETS}")
        fd = libbpf.map_create(SECRETS, 2, ctypes.sizeof(ctypes.c_uint32), 8, 16)  # an array
        made.append(fd)
        libbpf.obj_pin(fd, f"{root}/{SECRETS}")
        ok, detail = check()
        assert not ok and "wrong layout: map type 2, key 4 B, value 8 B" in detail, detail
    finally:
        for fd in made:
            os.close(fd)
        for name in os.listdir(root):
            os.unlink(f"{root}/{name}")
        os.rmdir(root)


def test_a_check_that_raises_fails_closed() -> None:
    health = Health()
    health.add("boom", lambda: (_ for _ in ()).throw(OSError(1, "EPERM")))
    ok, checks = health.report()
    assert not ok and "EPERM" in checks["boom"]["detail"]
    assert Health().report()[0] is False  # nothing checked is not healthy


def test_other_paths_are_404(served) -> None:  # type: ignore[no-untyped-def]
    server = served[0]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(server.url.replace("/healthz", "/metrics"), timeout=5)
    assert exc.value.code == 404


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0100A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth2\t00000000\t010300C0\t0002\t0\t0\t0\t00000000\t0\t0\t0
cilium_host\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0
"""


def test_iface_auto_is_the_default_route_with_the_lowest_metric(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTES)
    assert default_route_interface(table) == "eth0"  # eth2's route is down (no RTF_UP)
    table.write_text(ROUTES.splitlines()[0] + "\n" + ROUTES.splitlines()[4] + "\n")
    with pytest.raises(ValueError, match="no IPv4 default route"):
        default_route_interface(table)
