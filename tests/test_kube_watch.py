"""WarrantPolicies and revocation lists from the Kubernetes API, against tests/fake_kube_api.py.

The `kubernetes` client talks HTTP to a local server that speaks the API's list/watch wire
format (no cluster is used anywhere in this repository).  Checked: the first list, watch
ADDED/MODIFIED/DELETED, resuming after a dropped connection without a new list, a new
list after 410 Gone, status conditions written through the status subresource (Ready or
Invalid with the converter's message), the old version of an object kept in force when
its new one is invalid, revocation ConfigMaps mirrored into the revocations directory, and
the agent's ClusterRole/Role granting exactly the verbs the code used.
"""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kubernetes", reason="pip install -e '.[k8s]'")
from kubernetes import client

from fake_kube_api import CONFIGMAPS, FakeKubeAPI
from warrant.core.admission import Policy, PolicyError
from warrant.integration import kube_watch

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes"
PLURAL = "warrantpolicies"


def example(i: int = 0) -> dict[str, Any]:
    return copy.deepcopy(list(yaml.safe_load_all((DEPLOY / "example-policy.yaml").read_text()))[i])


@pytest.fixture
def anchors_dir(tmp_path: Path) -> Path:
    cm = yaml.safe_load((DEPLOY / "configmap-anchors.yaml").read_text())
    d = tmp_path / "anchors"
    d.mkdir()
    for key, text in cm["data"].items():
        (d / key).write_text(text)
    return d


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    fake = FakeKubeAPI()
    yield fake
    fake.close()


class Source:
    """A started KubePolicySource with its log lines, stopped afterwards."""

    def __init__(self, api: FakeKubeAPI, anchors_dir: Path, **kw: Any) -> None:
        conf = client.Configuration(host=api.url)
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.src = kube_watch.KubePolicySource(
            client.ApiClient(conf), anchors_dir=anchors_dir, node="node-a",
            log=lambda what, **f: self.lines.append((what, f)), watch_timeout=5, backoff=0.1, **kw,
        )  # fmt: skip
        self.src.start()

    def next_policy(self, timeout: float = 10.0) -> Policy:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p = self.src.poll()
            if p is not None:
                return p
            time.sleep(0.02)
        raise AssertionError(f"no policy; log: {self.lines}")


@pytest.fixture
def source(api: FakeKubeAPI, anchors_dir: Path) -> Iterator[Source]:
    s = Source(api, anchors_dir)
    assert s.src.wait_synced(10)
    assert not s.next_policy().model.rules  # the empty cluster's: nothing admitted
    yield s
    s.src.stop()


def rules(p: Policy) -> list[str]:
    return [r.name for r in p.model.rules]


def ready(api: FakeKubeAPI, ns: str, name: str) -> dict[str, Any] | None:
    status = api.get(PLURAL, ns, name).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)


def test_empty_cluster_admits_nothing_then_list_watch_add_modify_delete(api: FakeKubeAPI, anchors_dir: Path) -> None:  # fmt: skip
    s = Source(api, anchors_dir)
    try:
        assert s.src.wait_synced(10)
        empty = s.next_policy()
        assert empty.model.default == "deny" and not empty.model.rules and not empty.trust.anchors
        assert s.src.health()[0]

        orders = api.apply(PLURAL, example(0))
        p = s.next_policy()
        assert rules(p) == ["shop/orders-ingress/ingress/0/0", "shop/orders-ingress/ingress/1/0"]
        api.wait(lambda: (ready(api, "shop", "orders-ingress") or {}).get("status") == "True")
        cond = ready(api, "shop", "orders-ingress")
        assert cond is not None and cond["reason"] == "Applied"
        assert cond["observedGeneration"] == orders["metadata"]["generation"]
        node = api.get(PLURAL, "shop", "orders-ingress")["status"]["nodes"]["node-a"]
        assert node["ok"] is True

        changed = example(0)
        changed["spec"]["ingress"] = changed["spec"]["ingress"][:1]
        api.apply(PLURAL, changed)
        assert rules(s.next_policy()) == ["shop/orders-ingress/ingress/0/0"]

        api.apply(PLURAL, example(1))
        assert len(rules(s.next_policy())) == 2  # orders' one rule and billing's

        api.delete(PLURAL, "shop", "orders-ingress")
        assert all(not r.startswith("shop/orders-ingress") for r in rules(s.next_policy()))
        api.delete(PLURAL, *(lambda m: (m["namespace"], m["name"]))(example(1)["metadata"]))
        assert not s.next_policy().model.rules  # none left: nothing is admitted
        lw = s.src.watches[0]
        assert lw.lists == 1  # all of it over one list and its watch
    finally:
        s.src.stop()


def test_invalid_policy_gets_an_invalid_condition_and_the_old_version_stays(api: FakeKubeAPI, source: Source) -> None:  # fmt: skip
    api.apply(PLURAL, example(0))
    before = rules(source.next_policy())
    bad = example(0)
    bad["spec"]["endpointSelector"] = {"matchExpressions": [{"key": "app", "operator": "In"}]}
    bad["spec"]["ingress"] = bad["spec"]["ingress"][:1]
    api.apply(PLURAL, bad)
    assert rules(source.next_policy()) == before  # the old version, not the invalid one
    api.wait(lambda: (ready(api, "shop", "orders-ingress") or {}).get("status") == "False")
    cond = ready(api, "shop", "orders-ingress")
    assert cond is not None and cond["reason"] == "Invalid"
    assert "needs a non-empty values list" in cond["message"]
    assert "previous version stays in force" in cond["message"]
    assert cond["observedGeneration"] == 2
    # the status went through the status subresource, as a JSON merge patch
    assert ("warrant.dev", "warrantpolicies/status", "patch") in api.verbs()
    ns, name, body = api.patches[-1]
    assert (ns, name) == ("shop", "orders-ingress") and set(body) == {"status"}
    # a policy that never converted is not applied, the others are
    other = example(1)
    other["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["endPort"] = 1
    api.apply(PLURAL, other)
    assert rules(source.next_policy()) == before  # not applied
    assert ("kube-policy", {"in_force": ["shop/orders-ingress"],
            "invalid": ["shop/billing-ingress", "shop/orders-ingress"]}) in source.lines  # fmt: skip
    name1 = other["metadata"]["name"]
    api.wait(
        lambda: (ready(api, other["metadata"]["namespace"], name1) or {}).get("reason") == "Invalid"
    )


def test_policies_that_do_not_compile_together_keep_the_policy_in_force(api: FakeKubeAPI, source: Source) -> None:  # fmt: skip
    api.apply(PLURAL, example(0))
    before = source.next_policy()
    clash = example(0)
    clash["metadata"]["name"] = "orders-clash"
    clash["spec"]["anchors"] = "other-anchors.yaml"  # policies of one endpoint must agree
    api.apply(PLURAL, clash)
    with pytest.raises(PolicyError, match="disagrees"):
        source.next_policy()
    assert source.src.poll() is None  # reported once; `before` stays in force in the agent
    api.wait(lambda: (ready(api, "shop", "orders-clash") or {}).get("reason") == "Invalid")
    assert (ready(api, "shop", "orders-ingress") or {}).get("status") == "True"
    assert rules(before)


def test_dropped_watch_resumes_without_a_new_list(api: FakeKubeAPI, source: Source) -> None:
    lw = source.src.watches[0]
    api.wait(lambda: api.streaming >= 1)
    api.drop_watches()
    api.apply(PLURAL, example(0))  # while the agent is reconnecting
    assert rules(source.next_policy())
    assert lw.lists == 1 and lw.watches >= 2
    watches = [r for r in api.requests if r[0] == "watch" and r[2] == PLURAL]
    assert len(watches) >= 2


def test_410_gone_lists_again(api: FakeKubeAPI, source: Source) -> None:
    lw = source.src.watches[0]
    api.wait(lambda: api.streaming >= 1)
    api.apply(PLURAL, example(0))
    source.next_policy()
    api.compact()  # the agent's resourceVersion is gone from the history
    api.drop_watches()
    api.apply(PLURAL, example(1))
    api.wait(lambda: lw.lists >= 2)
    assert any(what == "kube-relist" for what, _ in source.lines)
    assert len(rules(source.next_policy())) == 3  # the relist brought both policies
    lists = [r for r in api.requests if r[0] == "list" and r[2] == PLURAL]
    assert len(lists) == 2


def test_api_unreachable_is_unhealthy_and_retried(anchors_dir: Path) -> None:
    fake = FakeKubeAPI()
    url = fake.url
    fake.close()  # nothing listens there any more
    conf = client.Configuration(host=url)
    lines: list[str] = []
    src = kube_watch.KubePolicySource(client.ApiClient(conf), anchors_dir=anchors_dir,
                                      node="n", log=lambda what, **f: lines.append(what),
                                      backoff=0.05)  # fmt: skip
    src.start()
    try:
        time.sleep(0.5)
        assert not src.wait_synced(0) and src.poll() is None
        assert src.health() == (False, "WarrantPolicies not listed yet")
        assert lines.count("kube-error") >= 2  # retried with back-off
    finally:
        src.stop()


def rev_cm(name: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "warrant-system",
                         "labels": {kube_watch.REVOCATION_LABEL: "true"}},
            "binaryData": {k: base64.b64encode(v).decode() for k, v in files.items()}}  # fmt: skip


def test_revocation_configmaps_mirror_into_the_directory(api: FakeKubeAPI, anchors_dir: Path, tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "revocations"
    api.apply(CONFIGMAPS[2], rev_cm("acme", {"list.wrl": b"\x82first"}))
    unlabelled = rev_cm("other", {"x.wrl": b"nope"})
    unlabelled["metadata"]["labels"] = {}
    api.apply(CONFIGMAPS[2], unlabelled)
    s = Source(api, anchors_dir, namespace="warrant-system", revocations_dir=out)
    try:
        api.wait(lambda: (out / "acme.list.wrl").exists())
        assert (out / "acme.list.wrl").read_bytes() == b"\x82first"
        assert not (out / "other.x.wrl").exists()  # only labelled ConfigMaps
        api.apply(CONFIGMAPS[2], rev_cm("acme", {"list.wrl": b"\x82second", "b.wrl": b"\x82b"}))
        api.wait(lambda: (out / "acme.b.wrl").exists())
        assert (out / "acme.list.wrl").read_bytes() == b"\x82second"
        api.apply(CONFIGMAPS[2], rev_cm("acme", {"b.wrl": b"\x82b"}))
        api.wait(lambda: not (out / "acme.list.wrl").exists())
        api.delete(CONFIGMAPS[2], "warrant-system", "acme")
        api.wait(lambda: not (out / "acme.b.wrl").exists())
        assert sorted(p.name for p in out.iterdir()) == []
        q = [r for r in api.requests if r[2] == "configmaps"]
        assert {r[3] for r in q} == {"warrant-system"}  # never cluster-wide
    finally:
        s.src.stop()


def test_rbac_grants_exactly_the_verbs_used(api: FakeKubeAPI, anchors_dir: Path, tmp_path: Path) -> None:  # fmt: skip
    s = Source(api, anchors_dir, namespace="warrant-system", revocations_dir=tmp_path / "r")
    try:
        api.apply(PLURAL, example(0))
        s.next_policy()
        api.wait(lambda: ready(api, "shop", "orders-ingress") is not None)
        api.apply(CONFIGMAPS[2], rev_cm("acme", {"l.wrl": b"x"}))
        api.wait(lambda: (tmp_path / "r" / "acme.l.wrl").exists())
        api.wait(lambda: api.streaming >= 2)  # both watches open: the steady state
    finally:
        s.src.stop()
    used = api.verbs()
    docs = [d for d in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()) if d]
    granted: set[tuple[str, str, str]] = set()
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role"):
            for rule in d["rules"]:
                assert "resourceNames" not in rule  # list/watch cannot be limited by name
                granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"]
                            for v in rule["verbs"]}  # fmt: skip
    # the transparent agent's grants: tests/test_kube_workloads.py holds those to its use
    granted = {(g, r, v) for g, r, v in granted if r not in ("warrantworkloads", "secrets")}
    assert used == granted
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == "warrant-system"  # ConfigMaps: one namespace only
    assert {r for _, r, _ in used if r == "configmaps"} and all(
        rule["resources"] != ["configmaps"]
        for d in docs if d["kind"] == "ClusterRole" for rule in d["rules"]
    )  # fmt: skip


def test_last_transition_time_moves_only_when_ready_changes(monkeypatch: pytest.MonkeyPatch, anchors_dir: Path) -> None:  # fmt: skip
    src = kube_watch.KubePolicySource(client.ApiClient(client.Configuration(host="http://x")),
                                      anchors_dir=anchors_dir, node="n")  # fmt: skip
    bodies: list[dict[str, Any]] = []

    class Custom:
        def patch_namespaced_custom_object_status(self, *args: Any, **kw: Any) -> None:
            bodies.append(args[5])

    src.custom = Custom()  # type: ignore[assignment]
    clock = iter(f"2026-01-01T00:00:0{i}Z" for i in range(10))
    monkeypatch.setattr(kube_watch.time, "strftime", lambda *_: next(clock))
    judged = kube_watch._Judged
    for v in (judged(True, "Applied", "ok", 1), judged(True, "Applied", "ok", 2),
              judged(False, "Invalid", "bad", 3), judged(False, "Invalid", "worse", 4)):  # fmt: skip
        src._write_status("ns/p", v)
    times = [b["status"]["conditions"][0]["lastTransitionTime"] for b in bodies]
    updated = [b["status"]["nodes"]["n"]["lastUpdated"] for b in bodies]
    assert times == ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z",
                     "2026-01-01T00:00:02Z", "2026-01-01T00:00:02Z"]  # fmt: skip
    assert updated == [f"2026-01-01T00:00:0{i}Z" for i in range(4)]
    src._write_status("ns/p", judged(False, "Invalid", "worse", 4))
    assert len(bodies) == 4  # an unchanged verdict is not written again
