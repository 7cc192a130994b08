"""WarrantPolicies and revocation lists from the Kubernetes API (`warrant agent --policy-source k8s`).

Two list+watch loops, each in a thread, with the `kubernetes` client:

  * WarrantPolicy objects, cluster-wide (group/version/plural of
    deploy/kubernetes/crd-warrantpolicy.yaml).  Every change recompiles the set through
    the same converter as the file mode (crd_policy: object -> Document -> Policy, anchor
    files resolved in --anchors-dir) and hands the result to the agent's main loop via
    `poll()`, the interface of crd_policy.PolicyWatcher.  Each object gets a status
    through the status subresource (JSON merge patch): `status.conditions` holds one
    condition of type Ready (True, reason Applied; or False, reason Invalid, with the
    converter's message) and `status.nodes.<node>` the same verdict for this node, so that
    the agents of several nodes do not overwrite each other's.
  * ConfigMaps of the agent's namespace labelled `warrant.dev/revocation-list=true`: every
    `binaryData` entry is one signed revocation list (core/revocation.py, CBOR), mirrored
    into the agent's `--revocations DIR` as `<configmap>.<key>`, where the directory's
    watcher verifies and loads it like any file there.

Fail closed: an object that does not convert is not applied (an earlier good version of it
stays in force); when the set does not compile as a whole (say, two policies name
different anchors) the previous policy stays in force and the changed objects are marked
Invalid; until the first list has been applied, and with no WarrantPolicy at all, the
agent admits nothing (`deny_all()`).

Watching follows the API's rules: list (resourceVersion R), watch from R, on every event
move R; a watch that ends (server timeout, dropped connection) resumes from R after a
back-off; `410 Gone` (R compacted away) means list again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.admission import Policy, PolicyError, PolicyModel
from ..core.anchors import TrustStore
from . import crd_policy

PLURAL = "warrantpolicies"
REVOCATION_LABEL = "warrant.dev/revocation-list"
SOURCE = f"k8s:{PLURAL}.{crd_policy.GROUP}"
Log = Callable[..., None]


def deny_all() -> Policy:
    """No rule and no anchor: every opening is refused."""
    return Policy(PolicyModel(anchors={"scopes": {}}, default="deny"), TrustStore())


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _version(obj: dict[str, Any]) -> str:
    """What identifies a version of a policy: its generation, which moves with the spec and
    not with status writes (resourceVersion moves with both)."""
    meta = obj.get("metadata") or {}
    return str(meta.get("generation") or meta.get("resourceVersion", ""))


def _print_log(what: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"agent": what, "time": round(time.time(), 3), **fields}) + "\n")
    sys.stdout.flush()


class ListWatch:
    """List, then watch from the list's resourceVersion; resume or relist as the API says."""

    def __init__(self, name: str, list_fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], *, on_list: Callable[[list[dict[str, Any]]], None],
                 on_event: Callable[[str, dict[str, Any]], None], log: Log,
                 watch_timeout: int = 300, backoff: float = 1.0) -> None:  # fmt: skip
        self.name, self.list_fn, self.args, self.kwargs = name, list_fn, args, kwargs
        self.on_list, self.on_event, self.log = on_list, on_event, log
        self.watch_timeout, self.backoff = watch_timeout, backoff
        self.resource_version: str | None = None
        self.lists = 0  # lists done (the first, and one per 410 Gone)
        self.watches = 0  # watch requests opened
        self.last_contact = 0.0  # monotonic time of the last successful response
        self._stop = threading.Event()
        self._watch: Any = None
        self.thread = threading.Thread(target=self._run, name=f"kube-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    resp = self.list_fn(*self.args, **self.kwargs, _preload_content=False,
                                        _request_timeout=30)  # fmt: skip
                    data = json.loads(resp.data)
                    self.last_contact = time.monotonic()
                    self.lists += 1
                    self.on_list(list(data.get("items") or []))
                    self.resource_version = str(data["metadata"]["resourceVersion"])
                self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                self.watches += 1
                stream = self._watch.stream(self.list_fn, *self.args, **self.kwargs,
                                            resource_version=self.resource_version,
                                            timeout_seconds=self.watch_timeout,
                                            allow_watch_bookmarks=True,
                                            _request_timeout=(10, self.watch_timeout + 30))  # fmt: skip
                for event in stream:
                    self.last_contact = time.monotonic()
                    obj = event.get("raw_object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if event["type"] != "BOOKMARK":
                        self.on_event(event["type"], obj)
                    if rv:
                        self.resource_version = str(rv)
                    if self._stop.is_set():
                        break
                self.last_contact = time.monotonic()  # the server ended the watch in time
            except ApiException as exc:
                if exc.status == 410:
                    self.log("kube-relist", resource=self.name, reason=str(exc.reason))
                    self.resource_version = None
                    continue
                self.log("kube-error", resource=self.name, status=exc.status,
                         reason=str(exc.reason), retry_in=self.backoff)  # fmt: skip
                self._stop.wait(self.backoff)
            except Exception as exc:  # a dropped connection, a bad response: resume from R
                self.log("kube-error", resource=self.name, error=f"{type(exc).__name__}: {exc}",
                         retry_in=self.backoff)  # fmt: skip
                self._stop.wait(self.backoff)


@dataclass
class _Judged:
    ready: bool
    reason: str
    message: str
    generation: int | None


@dataclass
class PolicyState:
    """The WarrantPolicy objects seen, the version of each in force, and the verdicts."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per object: its last version that converted (_version, document)
    good: dict[str, tuple[str, crd_policy.Document]] = field(default_factory=dict)
    in_force: dict[str, str] = field(default_factory=dict)  # object -> _version enforced
    errors: dict[str, str] = field(
        default_factory=dict
    )  # object -> why its current is not in force


class KubePolicySource:
    """The agent's policy from WarrantPolicy objects; `poll()` like crd_policy.PolicyWatcher."""

    path = SOURCE

    def __init__(self, api_client: Any, *, anchors_dir: Path | None, node: str,
                 namespace: str | None = None, revocations_dir: Path | None = None,
                 log: Log = _print_log, watch_timeout: int = 300, backoff: float = 1.0) -> None:  # fmt: skip
        from kubernetes import client

        self.anchors_dir = anchors_dir
        self.node = node
        self.log = log
        self.custom = client.CustomObjectsApi(api_client)
        self.state = PolicyState()
        self._lock = threading.Lock()
        self._pending: Policy | PolicyError | None = None
        self._written: dict[str, tuple[bool, str, str, int | None]] = {}
        self._transitions: dict[str, tuple[bool, str]] = {}  # ref -> (ready, when it became so)
        self.synced = threading.Event()  # the first list has been judged
        self.status_errors = 0
        self.last_poll = 0.0
        self.watches = [
            ListWatch(
                "warrantpolicies",
                self.custom.list_cluster_custom_object,
                (crd_policy.GROUP, crd_policy.VERSION, PLURAL),
                {},
                on_list=self._on_list,
                on_event=self._on_event,
                log=log,
                watch_timeout=watch_timeout,
                backoff=backoff,
            )
        ]
        self.revocations: RevocationMirror | None = None
        if revocations_dir is not None:
            if not namespace:
                raise ValueError(
                    "revocation ConfigMaps need the agent's namespace (--kube-namespace)"
                )
            self.revocations = RevocationMirror(revocations_dir, log)
            core = client.CoreV1Api(api_client)
            self.watches.append(
                ListWatch(
                    "configmaps",
                    core.list_namespaced_config_map,
                    (namespace,),
                    {"label_selector": f"{REVOCATION_LABEL}=true"},
                    on_list=self.revocations.replace,
                    on_event=self.revocations.event,
                    log=log,
                    watch_timeout=watch_timeout,
                    backoff=backoff,
                )
            )

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for w in self.watches:
            w.start()

    def stop(self) -> None:
        for w in self.watches:
            w.stop()

    def wait_synced(self, timeout: float) -> bool:
        return self.synced.wait(timeout)

    def poll(self) -> Policy | None:
        """The new Policy when the set changed and compiled (objects that do not convert left
        out, or in their last good version); PolicyError, once, when the set changed into
        one that does not compile as a whole (the policy in force stays)."""
        self.last_poll = time.monotonic()
        with self._lock:
            pending, self._pending = self._pending, None
        if isinstance(pending, PolicyError):
            raise pending
        return pending

    def health(self) -> tuple[bool, str]:
        """Healthy once the first list is applied and while no watch has lost contact for
        longer than its timeout allows."""
        if not self.synced.is_set():
            return False, "WarrantPolicies not listed yet"
        now = time.monotonic()
        for w in self.watches:
            if now - w.last_contact > w.watch_timeout + 60:
                return False, f"no answer from the API for {w.name} in {now - w.last_contact:.0f} s"
        n = len(self.state.in_force)
        return (
            True,
            f"{n} WarrantPolicies in force, resourceVersion {self.watches[0].resource_version}",
        )

    # ---- events ------------------------------------------------------------------------------
    def _on_list(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self.state.objects = {_ref(o): o for o in items}
            for gone in set(self.state.good) - set(self.state.objects):
                del self.state.good[gone]
        self._recompute()
        self.synced.set()

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        ref = _ref(obj)
        with self._lock:
            if kind == "DELETED":
                self.state.objects.pop(ref, None)
                self.state.good.pop(ref, None)
                self._written.pop(ref, None)
                self._transitions.pop(ref, None)
            elif kind in ("ADDED", "MODIFIED"):
                old = self.state.objects.get(ref)
                self.state.objects[ref] = obj
                if old is not None and old.get("spec") == obj.get("spec"):
                    return  # a status write (ours or another node's): nothing to judge
            else:
                return
        self._recompute()

    def _recompute(self) -> None:
        with self._lock:
            st = self.state
            errors: dict[str, str] = {}
            for ref, obj in st.objects.items():
                rv = _version(obj)
                if ref in st.good and st.good[ref][0] == rv:
                    continue
                try:
                    (doc,) = crd_policy.load_text(json.dumps(obj), f"k8s {ref}")
                    st.good[ref] = (rv, doc)
                except (PolicyError, ValueError) as exc:
                    kept = "; its previous version stays in force" if ref in st.good else ""
                    errors[ref] = f"{exc}{kept}"
            docs = [st.good[r][1] for r in sorted(st.good)]
            try:
                policy = (crd_policy.to_policy(docs, base=self.anchors_dir)
                          if docs else deny_all())  # fmt: skip
            except PolicyError as exc:
                for ref in st.objects:
                    good = st.good.get(ref)
                    if ref not in errors and (good is None or st.in_force.get(ref) != good[0]):
                        errors[ref] = f"not applied: the policies together do not compile: {exc}"
                st.errors = errors
                self._pending = PolicyError(f"{SOURCE}: {exc}; the policy in force stays")
                self.log("kube-policy-error", error=str(exc))
            else:
                st.in_force = {ref: st.good[ref][0] for ref in sorted(st.good)}
                st.errors = errors
                self._pending = policy
                self.log("kube-policy", in_force=sorted(st.in_force), invalid=sorted(errors))
            verdicts = {ref: self._judge(ref, obj) for ref, obj in st.objects.items()}
        for ref, verdict in verdicts.items():
            self._write_status(ref, verdict)

    def _judge(self, ref: str, obj: dict[str, Any]) -> _Judged:
        generation = (obj.get("metadata") or {}).get("generation")
        if ref in self.state.errors:
            return _Judged(False, "Invalid", self.state.errors[ref], generation)
        return _Judged(True, "Applied", f"enforced by the agent on {self.node}", generation)

    def _write_status(self, ref: str, v: _Judged) -> None:
        key = (v.ready, v.reason, v.message, v.generation)
        if self._written.get(ref) == key:
            return
        namespace, name = ref.split("/", 1)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready_before, since = self._transitions.get(ref, (not v.ready, now))
        since = since if ready_before == v.ready else now  # the time the status last changed
        condition: dict[str, Any] = {
            "type": "Ready",
            "status": "True" if v.ready else "False",
            "reason": v.reason,
            "message": v.message[:32768],
            "lastTransitionTime": since,
        }
        if v.generation is not None:
            condition["observedGeneration"] = v.generation
        node = {"ok": v.ready, "reason": v.reason, "message": v.message[:4096], "lastUpdated": now}
        body = {"status": {"conditions": [condition], "nodes": {self.node: node}}}
        try:
            self.custom.patch_namespaced_custom_object_status(
                crd_policy.GROUP,
                crd_policy.VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=30,
            )
        except Exception as exc:  # the status is a report: enforcement does not wait for it
            self.status_errors += 1
            self.log("kube-status-error", policy=ref, error=f"{type(exc).__name__}: {exc}")
            return
        self._written[ref] = key
        self._transitions[ref] = (v.ready, since)


class RevocationMirror:
    """Revocation-list ConfigMaps -> files in the agent's --revocations directory."""

    def __init__(self, directory: Path, log: Log) -> None:
        self.directory = directory
        self.log = log
        self._files: dict[str, set[str]] = {}  # configmap name -> files written for it
        directory.mkdir(parents=True, exist_ok=True)

    def replace(self, items: list[dict[str, Any]]) -> None:
        names = {(o.get("metadata") or {}).get("name", "") for o in items}
        for gone in set(self._files) - names:
            self._remove(gone)
        for obj in items:
            self.event("ADDED", obj)

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if not name or "/" in name:
            return
        if kind == "DELETED":
            self._remove(name)
            return
        wanted: dict[str, bytes] = {}
        for key, value in (obj.get("binaryData") or {}).items():
            if "/" in key or key.startswith("."):
                continue
            try:
                wanted[f"{name}.{key}"] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                self.log("kube-revocation-error", configmap=name, key=key, error="not base64")
        for stale in self._files.get(name, set()) - set(wanted):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / stale).unlink()
        for fname, data in wanted.items():
            path = self.directory / fname
            if path.exists() and path.read_bytes() == data:
                continue
            tmp = self.directory / f".{fname}.{os.getpid()}.tmp"  # dot files are not read
            tmp.write_bytes(data)
            tmp.replace(path)
            self.log("kube-revocation", configmap=name, file=fname, bytes=len(data))
        self._files[name] = set(wanted)

    def _remove(self, name: str) -> None:
        for fname in self._files.pop(name, set()):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / fname).unlink()
