"""The transparent agent's workload registry from WarrantWorkload objects of the Kubernetes API.

`TransparentAgent` with `workloads_from_kube` (a kubeconfig file or "in-cluster") takes its
registry from here instead of the JSON file; `poll()` hands it the whole list when it
changed, through the same reload path as the file (datapath/workloads.py:RegistrySource).

One WarrantWorkload (deploy/kubernetes/crd-warrantworkload.yaml) is one `Workload`, named
`<namespace>/<name>`, taken by the agent of the node its `spec.nodeName` names.  The holder
key and the credential are never in the object: `spec.holderKeyRef` and
`spec.credentialRef` name a key of a Secret of the object's own namespace (so a namespace's
objects can only use that namespace's Secrets).  The agent reads each named Secret (get,
by name: RBAC cannot narrow list/watch of Secrets to the ones named), writes its bytes into
a private directory (mode 0700, files 0600, named by their content so that a new version
never overwrites a file the agent is reading) and validates the result with
`check_workload`, the function `warrant workload add` uses: same checks, same one-line
reasons, prefixed with the object.

Fail closed: an object that does not validate (a missing Secret or key, a credential whose
holder is not the key, a veth another object has, ...) is left out of the registry whole,
with its reason logged and counted; the agent serves what validates now, nothing older.  A
transient failure (the API does not answer a Secret read) changes nothing: the list in
force stays and the read is retried after a back-off.  Secrets are read again every
`resync` seconds (rotation; a Secret created after its workload), as well as on every
WarrantWorkload event.  Objects are listed and watched with kube_watch.ListWatch (resume
after a dropped watch, list again after 410 Gone).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..datapath.workloads import RegistryError, Workload, check_workload
from . import crd_policy
from .kube_watch import ListWatch

PLURAL = "warrantworkloads"
SPEC_FIELDS = {"nodeName", "veth", "address", "holderKeyRef", "credentialRef", "service", "allow"}
KIND = "WarrantWorkload"
SYNC_S = 10.0  # how long the agent waits for the first list before it starts without it
_logger = logging.getLogger("warrant.kube_workloads")


def _log(what: str, **fields: Any) -> None:
    level = logging.WARNING if "error" in what or "refused" in what else logging.INFO
    _logger.log(level, "%s", json.dumps({"agent": what, **fields}))


class _Transient(Exception):
    """The API did not answer: judge nothing, keep the list in force, retry."""


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class KubeWorkloadSource:
    """WarrantWorkloads of one node -> `Workload` list; `poll()` as RegistrySource."""

    origin = "kube"

    def __init__(self, api_client: Any, *, node: str, directory: Path | None = None,
                 log: Any = _log, watch_timeout: int = 300, backoff: float = 1.0,
                 resync: float = 30.0) -> None:  # fmt: skip
        from kubernetes import client

        self.node = node
        self.log = log
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.own_directory = directory is None
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="warrant-workloads-"))
        self.directory = directory
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self.backoff, self.resync = backoff, resync
        self.objects: dict[str, dict[str, Any]] = {}  # ref -> object, this node's only
        self.workloads: list[Workload] = []  # what validated at the last judgement
        self.refused: dict[str, str] = {}  # ref -> why it is not in the registry
        self.refusals = 0  # refusals logged (one per object and reason)
        self.synced = threading.Event()  # the first list has been judged
        self._lock = threading.Lock()  # objects, _pending: never held across a request
        self._judging = threading.Lock()  # one judgement at a time (Secret reads, files)
        self._pending: list[Workload] | None = None
        self._handed: list[Workload] = []  # the agent's list: its files stay
        self._retry = False
        self.error = ""  # the last transient failure
        self._names: dict[str, str] = {}  # file written -> the Secret key it holds
        self._stop = threading.Event()
        self.watch = ListWatch(
            PLURAL,
            self.custom.list_cluster_custom_object,
            (crd_policy.GROUP, crd_policy.VERSION, PLURAL),
            {},
            on_list=self._on_list,
            on_event=self._on_event,
            log=log,
            watch_timeout=watch_timeout,
            backoff=backoff,
        )
        self._resync_thread = threading.Thread(target=self._resync_loop, daemon=True,
                                               name="kube-workloads-resync")  # fmt: skip

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.watch.start()
        self._resync_thread.start()

    def close(self) -> None:
        self._stop.set()
        self.watch.stop()
        if self.own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def wait_synced(self, timeout: float) -> bool:
        return self.synced.wait(timeout)

    def poll(self) -> list[Workload] | None:
        """The registry when it changed since the last poll (the agent's thread); files no
        list handed out any more refers to are removed here, where nothing reads them."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._handed = pending
        if self._judging.acquire(blocking=False):  # else files being written: next time
            try:
                keep = {p for w in self._handed for p in (w.key, w.credential) if p}
                for f in self.directory.iterdir():
                    if str(f) not in keep:
                        with contextlib.suppress(FileNotFoundError):
                            f.unlink()
            finally:
                self._judging.release()
        return pending

    def list_once(self) -> None:
        """One list judged, no watch (`warrant workload list --from-kube`); ValueError when
        the API does not answer."""
        try:
            resp: Any = self.custom.list_cluster_custom_object(
                crd_policy.GROUP, crd_policy.VERSION, PLURAL, _preload_content=False,
                _request_timeout=30)  # fmt: skip
            items = list(json.loads(resp.data).get("items") or [])
        except Exception as exc:
            raise ValueError(f"{PLURAL}: {type(exc).__name__}: {exc}") from None
        self._on_list(items)
        if self._retry:
            raise ValueError(f"{PLURAL}: {self.error}")

    def describe(self, path: str | None) -> str | None:
        """A file this source wrote, named as the Secret key it holds."""
        return None if path is None else self._names.get(path, path)

    # ---- events ------------------------------------------------------------------------
    def _mine(self, obj: dict[str, Any]) -> bool:
        spec = obj.get("spec")
        return isinstance(spec, dict) and spec.get("nodeName") == self.node

    def _on_list(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self.objects = {_ref(o): o for o in items if self._mine(o)}
        self._judge()
        self.synced.set()

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        ref = _ref(obj)
        with self._lock:
            if kind == "DELETED" or (kind == "MODIFIED" and not self._mine(obj)):
                if self.objects.pop(ref, None) is None:
                    return
            elif kind in ("ADDED", "MODIFIED") and self._mine(obj):
                self.objects[ref] = obj
            else:
                return
        self._judge()

    def _resync_loop(self) -> None:
        while not self._stop.wait(self.backoff if self._retry else self.resync):
            if self.synced.is_set():
                self._judge()

    # ---- judgement ---------------------------------------------------------------------
    def _judge(self) -> None:
        """Every object of this node, in name order (the first of two claiming a veth
        wins): resolved, validated, and the list published if it changed."""
        with self._judging:
            with self._lock:
                objects = dict(self.objects)
            accepted: list[Workload] = []
            refused: dict[str, str] = {}
            self._names.clear()
            try:
                for ref in sorted(objects):
                    try:
                        w = self._workload(ref, objects[ref])
                        try:
                            check_workload(w, accepted)
                        except RegistryError as exc:
                            raise RegistryError(self._readable(str(exc), ref)) from None
                        accepted.append(w)
                    except RegistryError as exc:
                        refused[ref] = str(exc)
            except _Transient as exc:
                self._retry, self.error = True, str(exc)
                self.log("kube-workloads-error", error=str(exc), retry_in=self.backoff)
                return
            self._retry = False
            for ref, reason in refused.items():
                if self.refused.get(ref) != reason:
                    self.refusals += 1
                    self.log("kube-workload-refused", workload=ref, reason=reason)
            self.refused = refused
            if accepted != self.workloads or not self.synced.is_set():
                self.workloads = accepted
                with self._lock:
                    self._pending = list(accepted)
                self.log("kube-workloads", workloads=[w.name for w in accepted],
                         refused=sorted(refused))  # fmt: skip

    def _workload(self, ref: str, obj: dict[str, Any]) -> Workload:
        """The object as a Workload, its Secrets written as files; RegistryError (refused)
        or _Transient."""
        spec = obj.get("spec") or {}
        unknown = sorted(set(spec) - SPEC_FIELDS)
        if unknown:  # the apiserver prunes them; say so rather than ignore a typo
            raise RegistryError(f"{ref}: spec.{unknown[0]}: not a field of {KIND}")
        veth, address = spec.get("veth"), spec.get("address")
        service, allow = spec.get("service"), spec.get("allow", [])
        if not isinstance(veth, str) or not veth:
            raise RegistryError(f"{ref}: spec.veth is required")
        if not isinstance(address, str):
            raise RegistryError(f"{ref}: spec.address is required")
        if service is not None and not isinstance(service, str):
            raise RegistryError(f"{ref}: spec.service must be a string")
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise RegistryError(f"{ref}: spec.allow must be a list of strings")
        namespace = ref.split("/", 1)[0]
        key = self._secret_file(ref, namespace, spec.get("holderKeyRef"), "holderKeyRef", ".sec")
        cred = self._secret_file(ref, namespace, spec.get("credentialRef"), "credentialRef",
                                 ".cred")  # fmt: skip
        return Workload(ref, veth, address, key, cred, service, list(allow))

    def _secret_file(self, ref: str, namespace: str, sel: Any, field: str,
                     suffix: str) -> str | None:  # fmt: skip
        if sel is None:
            return None
        if not isinstance(sel, dict) or not all(
            isinstance(sel.get(k), str) for k in ("name", "key")
        ):
            raise RegistryError(f"{ref}: spec.{field} needs a Secret name and key")  # fmt: skip
        name, key = sel["name"], sel["key"]
        data = self._read_secret(ref, namespace, name).get(key)
        if not isinstance(data, str):
            raise RegistryError(f"{ref}: Secret {namespace}/{name} has no key {key!r}")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RegistryError(
                f"{ref}: Secret {namespace}/{name} key {key!r} is not base64"
            ) from None
        digest = hashlib.sha256(raw).hexdigest()[:16]
        path = self.directory / f"{namespace}.{ref.split('/', 1)[1]}.{digest}{suffix}"
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".")
            with os.fdopen(fd, "wb") as f:  # mkstemp: mode 0600
                f.write(raw)
            os.replace(tmp, path)
        self._names[str(path)] = f"Secret {namespace}/{name} key {key!r}"
        return str(path)

    def _read_secret(self, ref: str, namespace: str, name: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            resp: Any = self.core.read_namespaced_secret(name, namespace, _preload_content=False,
                                                    _request_timeout=30)  # fmt: skip
            data: dict[str, Any] = json.loads(resp.data).get("data") or {}
        except ApiException as exc:
            if exc.status in (403, 404):  # an answer about this Secret: refuse the object
                what = "not found" if exc.status == 404 else "not readable by the agent (403)"
                raise RegistryError(f"{ref}: Secret {namespace}/{name} {what}") from None
            raise _Transient(f"Secret {namespace}/{name}: {exc.status} {exc.reason}") from None
        except Exception as exc:  # no answer (connection, timeout, a bad body)
            raise _Transient(f"Secret {namespace}/{name}: {type(exc).__name__}: {exc}") from None
        return data

    def _readable(self, reason: str, ref: str) -> str:
        """check_workload's reason with our file paths named as the Secrets they hold."""
        for path, name in self._names.items():
            reason = reason.replace(path, name)
        return f"{ref}: {reason}"


def api_client(kubeconfig: str) -> Any:
    """An API client from a kubeconfig file, or the pod's service account ("in-cluster")."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise ValueError(
            "workloads from the Kubernetes API need the kubernetes client "
            "(pip install 'warrant[k8s]')"
        ) from None
    conf = client.Configuration()
    if kubeconfig == "in-cluster":
        config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=conf)  # type: ignore[no-untyped-call]
    return client.ApiClient(conf)


def open_source(kubeconfig: str, node: str) -> KubeWorkloadSource:
    """Started, and synced when the API answers within SYNC_S (else the agent starts with
    no workload and takes them when the first list comes)."""
    source = KubeWorkloadSource(api_client(kubeconfig), node=node or socket.gethostname())
    source.start()
    source.wait_synced(SYNC_S)
    return source
