"""`/healthz`: whether the agent's datapath is in force, for Kubernetes' probes.

    GET /healthz  ->  200 {"status": "ok", "checks": {...}}  or  503 {"status": "failing", ...}

Each check answers (ok, detail); the endpoint is 200 only when every check is ok, and a
check that raises counts as failing, with the exception as its detail (fail closed).  The
agent registers (`agent_checks`):

  * program: this agent's program is the one attached to the interface now (XDP: the
    interface's program id; TC: our filter's program id);
  * maps: every map is pinned under the pin root (what a restarted agent reopens);
  * policy: a policy is in force (file mode: loaded at start, kept on a bad reload;
    Kubernetes mode: the first list applied, and the API answering);
  * loop: the agent's main loop polled its policy source in the last LOOP_STALE_S.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
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


def agent_checks(health: Health, dp: _Datapath, ifindex: int, mode: str, pin_root: str,
                 maps: tuple[str, ...], source: _Source,
                 policy: Callable[[], tuple[bool, str]]) -> None:  # fmt: skip
    """Register the agent's checks (see the module docstring)."""

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
    health.add("policy", policy)
    health.add("loop", loop)
