"""`warrant agent --policy-source k8s` end to end, against the local fake API server.

The agent runs in a network namespace as the DaemonSet runs it (policy from the API, a
kubeconfig here instead of the in-cluster account, `--iface auto` on the default route's
interface), with tests/fake_kube_api.py listening
on that namespace's loopback.  A WarrantPolicy applied there admits the lab's session
(kernel-admitted DATA), its status says Ready for the node; replacing it by one that
denies the lab's scope refuses a new opening while the live session keeps its opening's
rule; deleting it leaves nothing trusted, and the session's next DATA is dropped in the
kernel; /healthz is 200 throughout.  No real cluster is involved.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kubernetes", reason="pip install -e '.[k8s]'")

from fake_kube_api import FakeKubeAPI
from netns_helpers import AgentProc, run, skip_unless_datapath, veth_topology
from warrant.core import keys
from warrant.core.constants import Reason, Verdict

pytestmark = pytest.mark.root

PORT = 4433
A_ADDR, B_ADDR = "10.80.0.1", "10.80.0.2"
SPORT = 40300


@pytest.fixture
def topo() -> Iterator[dict[str, str]]:
    skip_unless_datapath(pyroute2=True)
    with veth_topology(ns_prefix="wk", veth_prefix="wkv", pin_prefix="warrant-kube-test",
                       a_addr=A_ADDR, b_addr=B_ADDR) as names:  # fmt: skip
        yield names


def lab_policy(lab: Any, allow: bool) -> dict[str, Any]:
    """A WarrantPolicy for the lab's receiver: admit its scope, or deny it."""
    rule = {"fromAuthority": [{"scopes": ["dp.lab"], "operations": ["op.*"]}]}
    spec: dict[str, Any] = {
        "endpointSelector": {},
        "anchors": lab.trust.to_mapping(),
        "limits": {"initRatePerSource": 1000, "initBurst": 1000, "loadThreshold": 1000},
    }
    if allow:
        spec["ingress"] = [
            {**rule, "toPorts": [{"ports": [{"port": str(PORT), "protocol": "UDP"}]}]}
        ]
    else:
        spec["ingressDeny"] = [rule]
    return {"apiVersion": "warrant.dev/v1alpha1", "kind": "WarrantPolicy",
            "metadata": {"name": "lab", "namespace": "default"}, "spec": spec}  # fmt: skip


def kernel_counts(pin_root: str) -> dict[tuple[Verdict, Reason], int]:
    from warrant.datapath.loader import MapView

    view = MapView.pinned(pin_root)
    try:
        return {k: v[0] for k, v in view.counters().items()}
    finally:
        view.close()


def wait_count(pin_root: str, key: tuple[Verdict, Reason], n: int) -> int:
    end = time.monotonic() + 5
    while time.monotonic() < end and kernel_counts(pin_root).get(key, 0) < n:
        time.sleep(0.05)
    return kernel_counts(pin_root).get(key, 0)


def test_agent_takes_its_policy_from_warrantpolicy_objects(topo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from warrant.datapath.lab import Lab
    from warrant.demo.topology import entered

    lab = Lab(time.time(), ports=(PORT,), relays=0)
    with entered(topo["b"]):
        api = FakeKubeAPI()  # listens on namespace b's loopback, where the agent is
    with entered(topo["a"]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((A_ADDR, SPORT))
    key = tmp_path / "receiver.sec"
    key.write_text(keys.encode_secret(lab.receiver_key) + "\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
        "users": [{"name": "agent", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "agent"}}],
    }))  # fmt: skip
    api.apply("warrantpolicies", lab_policy(lab, allow=True))
    run("ip", "-n", topo["b"], "route", "add", "default", "via", A_ADDR)
    # as in the DaemonSet, the interface is the default route's: `--iface auto`
    agent = AgentProc({**topo, "vb": "auto"}, tmp_path, B_ADDR, PORT, "--policy-source", "k8s", "--kubeconfig",
                      str(kubeconfig), "--key", str(key), "--flows", "", "--node", "node-b",
                      "--health-port", "0", "--anchors-dir", str(tmp_path))  # fmt: skip
    pin_root = topo["pin_root"]
    admit = (Verdict.ADMIT, Reason.OK)
    try:
        assert agent.wait_for("kube-policy")["in_force"] == ["default/lab"]
        attached = agent.wait_for("attached")
        with entered(topo["b"]):
            assert attached["ifindex"] == socket.if_nametoindex(topo["vb"])
        sender = lab.sender()
        dst = (B_ADDR, PORT)
        sock.sendto(sender.open(b"hello", time.time()), dst)
        agent.wait_for("installed")
        base = kernel_counts(pin_root).get(admit, 0)
        sock.sendto(sender.seal(b"one"), dst)
        assert wait_count(pin_root, admit, base + 1) == base + 1
        api.wait(lambda: api.get("warrantpolicies", "default", "lab").get("status") is not None)
        status = api.get("warrantpolicies", "default", "lab")["status"]
        assert status["conditions"][0]["status"] == "True"
        assert status["nodes"]["node-b"]["ok"] is True

        url = str(agent.wait_for("health")["url"])
        with entered(topo["b"]), urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"

        # kubectl apply of a policy that denies the lab: openings are refused, and the live
        # session, judged again (Receiver.set_policy), ends in the kernel
        api.apply("warrantpolicies", lab_policy(lab, allow=False))
        reloaded = agent.wait_for("policy-reloaded")
        sid = sender.session_id.hex()
        assert reloaded["path"] == "k8s:warrantpolicies.warrant.dev" and reloaded["ended"] == [sid]
        assert reloaded["why"][sid].startswith("POLICY_DENIED")
        refused = lab.sender()
        sock.sendto(refused.open(b"again", time.time()), dst)
        agent.read(1.0)
        inits = [x for x in agent.lines if x.get("agent") == "socket" and x["kind"] == "INIT"]
        assert inits[-1]["verdict"] == "DROP" and inits[-1]["reason"] == "POLICY_DENIED"
        assert len([x for x in agent.lines if x.get("agent") == "installed"]) == 1
        unknown = (Verdict.DROP, Reason.UNKNOWN_SESSION)
        before = kernel_counts(pin_root).get(unknown, 0)
        sock.sendto(sender.seal(b"two"), dst)
        assert wait_count(pin_root, unknown, before + 1) == before + 1

        # kubectl delete: no WarrantPolicy left, nothing trusted, nothing live to end
        api.delete("warrantpolicies", "default", "lab")
        emptied = agent.wait_for("policy-reloaded", n=2)
        assert emptied["rules"] == 0 and emptied["ended"] == []
        with entered(topo["b"]), urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200  # no policy objects is a state, not a fault: deny all
    finally:
        agent.stop()
        sock.close()
        api.close()
    verbs = api.verbs()
    assert ("warrant.dev", "warrantpolicies", "list") in verbs
    assert ("warrant.dev", "warrantpolicies", "watch") in verbs
    assert ("warrant.dev", "warrantpolicies/status", "patch") in verbs
