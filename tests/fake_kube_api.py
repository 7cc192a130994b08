"""A local stand-in for the Kubernetes API server: list, watch and status PATCH, on the wire.

It speaks what the `kubernetes` client sends and expects, for the collections the agents
use: WarrantPolicies (cluster-wide list/watch, PATCH of the status subresource), ConfigMaps
of one namespace (list/watch with a label selector), WarrantWorkloads (cluster-wide
list/watch) and Secrets (get by name).

  * list: a JSON List object with `metadata.resourceVersion`;
  * watch (`?watch=true&resourceVersion=N`): a chunked stream of one JSON line per event,
    `{"type": "ADDED|MODIFIED|DELETED", "object": ...}`, from the events after N, then the
    new ones as they happen, until `timeoutSeconds` or `drop_watches()`;
  * a watch from a version older than the retained history (`compact()`) gets the API's
    `{"type": "ERROR", "object": Status{code: 410, reason: Expired}}` line, as a real server
    does when etcd has compacted past it;
  * PATCH .../status with a JSON merge patch changes `status` only and emits MODIFIED.

Every request is recorded as (verb, group, resource, namespace, name) in `requests`, with
the verb named as RBAC names it, so a test can hold the agent's ClusterRole to exactly the
verbs used.  This is a test double, not an apiserver: no auth, no field validation.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

POLICIES = ("warrant.dev", "v1alpha1", "warrantpolicies")
CONFIGMAPS = ("", "v1", "configmaps")
WORKLOADS = ("warrant.dev", "v1alpha1", "warrantworkloads")
SECRETS = ("", "v1", "secrets")


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


class FakeKubeAPI:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.rv = 100
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, resource, type, obj)
        self.oldest = self.rv  # watches from before this get 410 Gone
        self.requests: list[tuple[str, str, str, str | None, str | None]] = []
        self.patches: list[tuple[str, str, dict[str, Any]]] = []  # (namespace, name, body)
        self._generation = 0  # bumped by drop_watches(): open streams end
        self.streaming = 0  # watch streams open now
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.drop_watches()
        self.server.shutdown()
        self.server.server_close()

    # ---- what a test does to the cluster -----------------------------------------------------
    def _emit(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((self.rv, resource, kind, copy.deepcopy(obj)))
        self.lock.notify_all()

    def apply(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (ADDED or MODIFIED); generation moves with spec."""
        with self.lock:
            meta = obj.setdefault("metadata", {})
            key = (resource, meta.get("namespace", ""), meta["name"])
            old = self.objects.get(key)
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("uid", f"uid-{meta['name']}")
            meta["generation"] = (old["metadata"]["generation"] + 1) if old else 1
            if old is not None and "status" in old:
                obj["status"] = old["status"]  # the main resource does not write status
            self.objects[key] = copy.deepcopy(obj)
            self._emit(resource, "MODIFIED" if old else "ADDED", obj)
            return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self.lock:
            obj = self.objects.pop((resource, namespace, name))
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._emit(resource, "DELETED", obj)

    def compact(self) -> None:
        """Forget the event history: a watch resuming from an older version gets 410 Gone."""
        with self.lock:
            self.rv += 1  # the revision counter moves on past the compaction, as etcd's does
            self.oldest = self.rv
            self.events.clear()

    def drop_watches(self) -> None:
        """Close every open watch stream (a disconnect, as an apiserver restart causes)."""
        with self.lock:
            self._generation += 1
            self.lock.notify_all()

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.objects[(resource, namespace, name)])

    def verbs(self) -> set[tuple[str, str, str]]:
        """(apiGroup, resource, verb) of every request so far, as RBAC rules name them."""
        return {(g, r, v) for v, g, r, _, _ in self.requests}

    def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError("condition not reached in time")

    # ---- the HTTP side ---------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _route(self) -> tuple[str, str, str, str | None, str | None, str | None]:
                """(group, version, resource, namespace, name, subresource) of the path."""
                parts = urlparse(self.path).path.strip("/").split("/")
                if parts[0] == "api":
                    group, version, rest = "", parts[1], parts[2:]
                else:
                    group, version, rest = parts[1], parts[2], parts[3:]
                ns = None
                if rest and rest[0] == "namespaces" and len(rest) >= 3:
                    ns, rest = rest[1], rest[2:]
                resource = rest[0]
                name = rest[1] if len(rest) > 1 else None
                sub = rest[2] if len(rest) > 2 else None
                return group, version, resource, ns, name, sub

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> dict[str, Any]:
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": message, "reason": reason, "code": code}  # fmt: skip

            def _selected(self, resource: str, ns: str | None, query: dict[str, list[str]],
                          obj: dict[str, Any]) -> bool:  # fmt: skip
                if ns is not None and obj["metadata"].get("namespace") != ns:
                    return False
                for sel in query.get("labelSelector", []):
                    for term in sel.split(","):
                        k, _, v = term.partition("=")
                        if obj["metadata"].get("labels", {}).get(k) != v:
                            return False
                return True

            def do_GET(self) -> None:
                group, _version, resource, ns, name, _ = self._route()
                query = parse_qs(urlparse(self.path).query)
                watching = query.get("watch", ["false"])[0] in ("true", "1")
                verb = "get" if name else "watch" if watching else "list"
                api.requests.append((verb, group, resource, ns, name))
                if name is not None:
                    with api.lock:
                        obj = api.objects.get((resource, ns or "", name))
                    if obj is None:
                        self._json(404, self._status(404, "NotFound", f"{name} not found"))
                    else:
                        self._json(200, obj)
                    return
                if not watching:
                    with api.lock:
                        items = [copy.deepcopy(o) for (r, _, _), o in sorted(api.objects.items())
                                 if r == resource and self._selected(resource, ns, query, o)]  # fmt: skip
                        rv = str(api.rv)
                    self._json(200, {"kind": "List", "apiVersion": "v1", "items": items,
                                     "metadata": {"resourceVersion": rv}})  # fmt: skip
                    return
                self._watch(resource, ns, query)

            def _watch(self, resource: str, ns: str | None, query: dict[str, list[str]]) -> None:
                since = int(query.get("resourceVersion", ["0"])[0] or 0)
                timeout = float(query.get("timeoutSeconds", ["30"])[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def line(event: dict[str, Any]) -> None:
                    data = json.dumps(event).encode() + b"\n"
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                end = time.monotonic() + timeout
                try:
                    with api.lock:
                        generation = api._generation
                        if since < api.oldest:
                            gone = self._status(410, "Expired",
                                                f"too old resource version: {since} ({api.oldest})")  # fmt: skip
                            line({"type": "ERROR", "object": gone})
                            return
                        api.streaming += 1
                        try:
                            while time.monotonic() < end and api._generation == generation:
                                for rv, r, kind, obj in api.events:
                                    if (
                                        rv > since
                                        and r == resource
                                        and self._selected(r, ns, query, obj)
                                    ):
                                        line({"type": kind, "object": obj})
                                since = api.rv
                                api.lock.wait(min(0.2, max(0.0, end - time.monotonic())))
                        finally:
                            api.streaming -= 1
                finally:
                    try:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                    except OSError:
                        pass
                    self.close_connection = True

            def do_PATCH(self) -> None:
                group, _version, resource, ns, name, sub = self._route()
                resource_name = f"{resource}/{sub}" if sub else resource
                api.requests.append(("patch", group, resource_name, ns, name))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                ctype = self.headers.get("Content-Type", "")
                if ctype != "application/merge-patch+json" or sub != "status" or name is None:
                    self._json(415, self._status(415, "UnsupportedMediaType", ctype))
                    return
                with api.lock:
                    obj = api.objects.get((resource, ns or "", name))
                    if obj is None:
                        self._json(404, self._status(404, "NotFound", f"{name} not found"))
                        return
                    api.patches.append((ns or "", name, body))
                    _merge(obj.setdefault("status", {}), body.get("status", {}))
                    api.rv += 1
                    obj["metadata"]["resourceVersion"] = str(api.rv)
                    api._emit(resource, "MODIFIED", obj)
                    out = copy.deepcopy(obj)
                self._json(200, out)

        return Handler
