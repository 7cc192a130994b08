"""`/healthz`: whether the agent's datapath is in force, for Kubernetes' probes.

    GET /healthz  ->  200 {"status": "ok", "checks": {...}}  or  503 {"status": "failing", ...}

Each check answers (ok, detail); the endpoint is 200 only when every check is ok, and a
check that raises counts as failing, with the exception as its detail (fail closed).  The
agent registers (`agent_checks`):

  * program: this agent's program is the one attached to the interface now (XDP: the
    interface's program id; TC: our filter's program id);
  * maps: every map is pinned under the pin root (what a restarted agent reopens);
  * secrets: the session-secrets map (each session's resumption record, made and pinned
    by user space, so no program load would notice it gone) is pinned and is a hash map
    of this agent's key and value sizes: without it a restart loses every live session;
  * policy: a policy is in force (file mode: loaded at start, kept on a bad reload;
    Kubernetes mode: the first list applied, and the API answering);
  * loop: the agent's main loop polled its policy source in the last LOOP_STALE_S.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

Check = Callable[[], tuple[bool, str]]
LOOP_STALE_S = 10.0


class Health:
    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def report(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, Any]] = {}
        for name, check in self.checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # a check that cannot answer is a failing check
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            out[name] = {"ok": bool(ok), "detail": detail}
        return bool(out) and all(c["ok"] for c in out.values()), out


class HealthServer:
    """/healthz on a ThreadingHTTPServer in a daemon thread."""

    def __init__(self, health: Health, port: int, addr: str = "0.0.0.0") -> None:
        self.health = health
        self._server = ThreadingHTTPServer((addr, port), self._handler())
        self._server.daemon_threads = True
        bound = self._server.server_address[1]
        self.url = f"http://{addr}:{bound}/healthz"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        health = self.health

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/healthz":
                    self.send_error(404)
                    return
                ok, checks = health.report()
                body = json.dumps({"status": "ok" if ok else "failing", "checks": checks})
                data = body.encode() + b"\n"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


class _Datapath(Protocol):
    def attached(self, ifindex: int, mode: str = "xdp") -> bool: ...


class _Source(Protocol):
    last_poll: float


@dataclass(frozen=True)
class MapShape:
    """What a pinned map must be: its BPF map type and its key and value sizes."""

    type: int
    key_size: int
    value_size: int

    def __str__(self) -> str:
        return f"map type {self.type}, key {self.key_size} B, value {self.value_size} B"


def pinned_map_shape(path: str) -> MapShape:
    """The shape of the map pinned at `path` (BpfError, an OSError, if it is none)."""
    from ..datapath import libbpf
    from ..datapath.loader import MapInfoHead

    fd = libbpf.obj_get(path)
    try:
        info = MapInfoHead()
        size = ctypes.c_uint(ctypes.sizeof(info))
        rc = libbpf.lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
        libbpf.check(rc, f"info of {path}")
    finally:
        os.close(fd)
    return MapShape(info.type, info.key_size, info.value_size)


def secrets_map() -> tuple[str, MapShape]:
    """The session-secrets map's pin name and the shape the datapath makes it with."""
    from ..datapath import libbpf
    from ..datapath.loader import SECRETS_MAP, RecordKey, RecordPart

    return SECRETS_MAP, MapShape(
        libbpf.BPF_MAP_TYPE_HASH, ctypes.sizeof(RecordKey), ctypes.sizeof(RecordPart)
    )


def pinned_map_check(pin_root: str, name: str, want: MapShape,
                     inspect: Callable[[str], MapShape] = pinned_map_shape) -> Check:  # fmt: skip
    """A check that `name` is pinned under `pin_root` with the shape `want`."""
    path = f"{pin_root}/{name}"

    def check() -> tuple[bool, str]:
        if not os.path.lexists(path):
            return False, f"{name} is not pinned under {pin_root}"
        try:
            got = inspect(path)
        except OSError as exc:
            return False, f"{path} is not a BPF map this agent can open ({exc})"
        if got != want:
            return False, f"{path} has the wrong layout: {got}; expected {want}"
        return True, f"{name} pinned ({want})"

    return check


def agent_checks(health: Health, dp: _Datapath, ifindex: int, mode: str, pin_root: str,
                 maps: tuple[str, ...], source: _Source,
                 policy: Callable[[], tuple[bool, str]],
                 inspect: Callable[[str], MapShape] = pinned_map_shape) -> None:  # fmt: skip
    """Register the agent's checks (see the module docstring); `inspect` reads a pin."""

    def program() -> tuple[bool, str]:
        if dp.attached(ifindex, mode):
            return True, f"attached ({mode}) to ifindex {ifindex}"
        return False, f"this agent's program is not the one attached ({mode}) to ifindex {ifindex}"

    def pinned() -> tuple[bool, str]:
        missing = [m for m in maps if not os.path.exists(f"{pin_root}/{m}")]
        if missing:
            return False, f"not pinned under {pin_root}: {', '.join(missing)}"
        return True, f"{len(maps)} maps pinned under {pin_root}"

    def loop() -> tuple[bool, str]:
        age = time.monotonic() - source.last_poll
        if source.last_poll == 0.0 or age > LOOP_STALE_S:
            return False, "the agent's main loop has not run lately"
        return True, f"main loop ran {age:.1f} s ago"

    health.add("program", program)
    health.add("maps", pinned)
    health.add("secrets", pinned_map_check(pin_root, *secrets_map(), inspect))
    health.add("policy", policy)
    health.add("loop", loop)
