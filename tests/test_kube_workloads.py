"""The transparent agent's workload registry from WarrantWorkload objects, against
tests/fake_kube_api.py (the `kubernetes` client over HTTP; no cluster).

Checked: add, modify, delete reach `poll()` as whole registries; the holder key and the
credential come from the Secrets named, into files of mode 0600 that go when their
workload goes; an object naming a missing Secret or key, or a credential whose holder is
not the key, is refused with its reason, logged once and counted, and never half-applied
(the others are); every check `warrant workload add` makes gives the same reason here; a
dropped watch resumes without a new list; objects of other nodes are not taken; the agent
applies either source's changes through one reload path; the ClusterRole grants exactly
what the source uses.
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

from fake_kube_api import SECRETS, WORKLOADS, FakeKubeAPI
from warrant.core import credential, keys
from warrant.core.rights import Destination, Grant
from warrant.datapath.workloads import RegistryError, Workload, add_workload
from warrant.integration import kube_workloads

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes"
NS = "shop"


def holder_secret(name: str, holder: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    """A Secret with a fresh holder key and a credential for it (or for `holder`)."""
    anchor, hk = keys.generate(), keys.generate()
    now = int(time.time())
    grant = Grant(operations=("ip",), destinations=(Destination("server", 4600, 4600),),
                  not_before=now - 60, expires=now + 3600, max_hops=0)  # fmt: skip
    cred = credential.issue(anchor, "tp.test", holder or bytes(hk.verify_key), grant).encode()
    key_text = (keys.encode_secret(hk) + "\n").encode()
    data = {"holder.sec": base64.b64encode(key_text).decode(),
            "credential": base64.b64encode(cred).decode()}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "type": "Opaque", "data": data}, cred  # fmt: skip


def ww(name: str, veth: str, address: str, secret: str | None = None, node: str = "node-a",
       **spec: Any) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"nodeName": node, "veth": veth, "address": address, **spec}
    if secret is not None:
        body["holderKeyRef"] = {"name": secret, "key": "holder.sec"}
        body["credentialRef"] = {"name": secret, "key": "credential"}
    return {"apiVersion": "warrant.dev/v1alpha1", "kind": "WarrantWorkload",
            "metadata": {"name": name, "namespace": NS}, "spec": body}  # fmt: skip


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    fake = FakeKubeAPI()
    yield fake
    fake.close()


class Source:
    def __init__(self, api: FakeKubeAPI, tmp: Path, **kw: Any) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.src = kube_workloads.KubeWorkloadSource(
            client.ApiClient(client.Configuration(host=api.url)), node="node-a",
            directory=tmp / "secrets", log=lambda what, **f: self.lines.append((what, f)),
            watch_timeout=5, backoff=0.1, **kw,
        )  # fmt: skip
        self.src.start()
        assert self.src.wait_synced(10)

    def next(self, timeout: float = 10.0) -> list[Workload]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.src.poll()
            if got is not None:
                return got
            time.sleep(0.02)
        raise AssertionError(f"no new registry; log: {self.lines}")

    def refusals(self) -> list[dict[str, Any]]:
        return [f for what, f in self.lines if what == "kube-workload-refused"]


@pytest.fixture
def source(api: FakeKubeAPI, tmp_path: Path) -> Iterator[Source]:
    s = Source(api, tmp_path)
    assert s.next() == []  # the empty cluster: no workload
    yield s
    s.src.close()


def test_add_modify_delete(api: FakeKubeAPI, source: Source) -> None:
    secret, cred = holder_secret("web-holder")
    api.apply(SECRETS[2], secret)
    api.apply(WORKLOADS[2], ww("web", "lxc1", "10.201.1.2", "web-holder"))
    (w,) = source.next()
    assert (w.name, w.veth, w.address, w.service, w.allow) == ("shop/web", "lxc1", "10.201.1.2",
                                                               None, [])  # fmt: skip
    assert w.key is not None and w.credential is not None
    sk, got = w.holder() or (None, b"")
    assert got == cred and sk is not None
    assert credential.Credential.decode(cred).holder == bytes(sk.verify_key)
    for path in (Path(w.key), Path(w.credential)):
        assert path.stat().st_mode & 0o777 == 0o600
    assert Path(w.key).parent.stat().st_mode & 0o777 == 0o700

    api.apply(WORKLOADS[2], ww("web", "lxc1", "10.201.1.9", "web-holder", service="web",
                               allow=["tcp/8080", "icmp"]))  # fmt: skip
    (w2,) = source.next()
    assert (w2.address, w2.service, w2.allow) == ("10.201.1.9", "web", ["tcp/8080", "icmp"])
    assert (w2.key, w2.credential) == (w.key, w.credential)  # same Secret: same files

    rotated, cred2 = holder_secret("web-holder")
    api.apply(SECRETS[2], rotated)
    api.apply(WORKLOADS[2], ww("web", "lxc1", "10.201.1.9", "web-holder"))  # any event re-reads
    (w3,) = source.next()
    assert (w3.holder() or (None, b""))[1] == cred2 and w3.key != w.key
    source.src.poll()
    assert not Path(w.key).exists()  # the rotated-out key's file is gone

    api.delete(WORKLOADS[2], NS, "web")
    assert source.next() == []
    source.src.poll()
    assert list((Path(w3.key)).parent.iterdir()) == []  # no key material left behind
    assert source.src.watch.lists == 1 and source.refusals() == []


def test_missing_secret_and_foreign_credential_are_refused_never_half_applied(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    good, _ = holder_secret("good")
    foreign, _ = holder_secret("foreign", holder=bytes(keys.generate().verify_key))
    nokey = copy.deepcopy(good)
    nokey["metadata"]["name"] = "nokey"
    del nokey["data"]["credential"]
    for s in (good, foreign, nokey):
        api.apply(SECRETS[2], s)
    api.apply(WORKLOADS[2], ww("a-good", "lxc1", "10.0.0.1", "good"))
    api.apply(WORKLOADS[2], ww("b-missing", "lxc2", "10.0.0.2", "absent"))
    api.apply(WORKLOADS[2], ww("c-foreign", "lxc3", "10.0.0.3", "foreign"))
    api.apply(WORKLOADS[2], ww("d-nokey", "lxc4", "10.0.0.4", "nokey"))
    s = Source(api, tmp_path, resync=0.2)
    try:
        assert [w.name for w in s.next()] == ["shop/a-good"]  # the others are not in it at all
        reasons = s.src.refused
        assert reasons["shop/b-missing"] == "shop/b-missing: Secret shop/absent not found"
        assert reasons["shop/c-foreign"] == (
            "shop/c-foreign: credential Secret shop/foreign key 'credential': its holder is not "
            "key Secret shop/foreign key 'holder.sec'"
        )
        assert reasons["shop/d-nokey"] == "shop/d-nokey: Secret shop/nokey has no key 'credential'"
        assert s.src.refusals == 3
        time.sleep(0.6)  # resyncs: the same verdicts are not logged (or counted) again
        assert s.src.refusals == 3 and len(s.refusals()) == 3
        assert {f["workload"] for f in s.refusals()} == set(reasons)
        # the missing Secret appears: the next resync takes the workload
        absent, _ = holder_secret("absent")
        api.apply(SECRETS[2], absent)
        assert [w.name for w in s.next()] == ["shop/a-good", "shop/b-missing"]
        assert ("get", "", "secrets") in {(v, g, r) for v, g, r, _, _ in api.requests}
    finally:
        s.src.close()


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("veth taken", {"veth": "lxc1"}, "veth 'lxc1' is already registered"),
    ("IPv6", {"address": "fd00::1"}, "address 'fd00::1': an IPv4 address is required"),
    ("bad address", {"address": "10.0.0.300"}, "an IPv4 address is required"),
    ("allow port 0", {"service": "s", "allow": ["tcp/0"]}, "0 < LO <= HI <= 65535"),
    ("allow sctp", {"service": "s", "allow": ["sctp/9"]}, "protocol must be one of"),
    ("allow needs service", {"allow": ["tcp/80"]}, "--allow needs --service"),
    ("key without credential", {"credential": None}, "--key and --credential go together"),
]


@pytest.mark.parametrize(("case", "change", "reason"), BAD, ids=[b[0] for b in BAD])
def test_same_checks_and_reasons_as_workload_add(
    api: FakeKubeAPI, tmp_path: Path, case: str, change: dict[str, Any], reason: str
) -> None:
    secret, _ = holder_secret("h")
    api.apply(SECRETS[2], secret)
    api.apply(WORKLOADS[2], ww("a", "lxc1", "10.0.0.1"))
    obj = ww("b", "lxc2", "10.0.0.2", "h")
    fields = {k: v for k, v in change.items() if k != "credential"}
    obj["spec"].update(fields)
    if "credential" in change:
        del obj["spec"]["credentialRef"]
    api.apply(WORKLOADS[2], obj)
    # the same through `warrant workload add`'s function, with files
    reg = tmp_path / "reg.json"
    add_workload(reg, Workload("a", "lxc1", "10.0.0.1"))
    (tmp_path / "h.sec").write_bytes(base64.b64decode(secret["data"]["holder.sec"]))
    (tmp_path / "h.cred").write_bytes(base64.b64decode(secret["data"]["credential"]))
    spec = obj["spec"]
    w = Workload("b", spec["veth"], spec["address"], str(tmp_path / "h.sec"),
                 None if "credential" in change else str(tmp_path / "h.cred"),
                 spec.get("service"), spec.get("allow", []))  # fmt: skip
    with pytest.raises(RegistryError) as file_error:
        add_workload(reg, w)
    s = Source(api, tmp_path)
    try:
        assert [x.name for x in s.next()] == ["shop/a"]
        assert s.src.refused == {"shop/b": f"shop/b: {file_error.value}"}, case
        assert reason in s.src.refused["shop/b"] and "\n" not in s.src.refused["shop/b"]
    finally:
        s.src.close()


def test_spec_shape_refusals(api: FakeKubeAPI, tmp_path: Path) -> None:
    api.apply(WORKLOADS[2], ww("typo", "lxc1", "10.0.0.1", servce="x"))
    api.apply(WORKLOADS[2], ww("noveth", "", "10.0.0.2"))
    api.apply(WORKLOADS[2], ww("badref", "lxc3", "10.0.0.3", holderKeyRef="h",
                               credentialRef={"name": "h"}))  # fmt: skip
    s = Source(api, tmp_path)
    try:
        assert s.next() == []
        assert s.src.refused == {
            "shop/typo": "shop/typo: spec.servce: not a field of WarrantWorkload",
            "shop/noveth": "shop/noveth: spec.veth is required",
            "shop/badref": "shop/badref: spec.holderKeyRef needs a Secret name and key",
        }
    finally:
        s.src.close()


def test_other_nodes_objects_are_not_taken(api: FakeKubeAPI, source: Source) -> None:
    api.apply(WORKLOADS[2], ww("there", "lxc1", "10.0.0.1", node="node-b"))
    api.apply(WORKLOADS[2], ww("here", "lxc1", "10.0.0.2"))  # same veth name, other node
    assert [w.name for w in source.next()] == ["shop/here"]
    moved = ww("here", "lxc1", "10.0.0.2", node="node-b")  # rescheduled away
    api.apply(WORKLOADS[2], moved)
    assert source.next() == []
    assert source.refusals() == []


def test_dropped_watch_resumes_without_a_new_list(api: FakeKubeAPI, source: Source) -> None:
    lw = source.src.watch
    api.wait(lambda: api.streaming >= 1)
    api.drop_watches()
    api.apply(WORKLOADS[2], ww("late", "lxc1", "10.0.0.1"))  # while it reconnects
    assert [w.name for w in source.next()] == ["shop/late"]
    assert lw.lists == 1 and lw.watches >= 2
    assert len([r for r in api.requests if r[0] == "watch" and r[2] == WORKLOADS[2]]) >= 2
    api.compact()
    api.drop_watches()
    api.delete(WORKLOADS[2], NS, "late")
    assert source.next() == []  # 410 Gone: listed again, and the deletion seen
    assert lw.lists == 2


def test_an_api_that_does_not_answer_changes_nothing(api: FakeKubeAPI, tmp_path: Path) -> None:
    secret, _ = holder_secret("h")
    api.apply(SECRETS[2], secret)
    api.apply(WORKLOADS[2], ww("a", "lxc1", "10.0.0.1", "h"))
    s = Source(api, tmp_path, resync=0.1)
    try:
        (w,) = s.next()
        api.close()  # Secret reads fail from now on: not an answer about the Secret
        time.sleep(0.5)
        assert s.src.poll() is None and s.src.workloads == [w] and s.src.refused == {}
        assert any(what == "kube-workloads-error" for what, _ in s.lines)
        assert Path(w.key or "").exists()  # the agent's files stay
    finally:
        s.src.close()


def test_rbac_grants_exactly_what_the_source_uses(api: FakeKubeAPI, source: Source) -> None:
    secret, _ = holder_secret("h")
    api.apply(SECRETS[2], secret)
    api.apply(WORKLOADS[2], ww("a", "lxc1", "10.0.0.1", "h"))
    assert [w.name for w in source.next()] == ["shop/a"]
    api.wait(lambda: api.streaming >= 1)
    used = api.verbs()
    docs = [d for d in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]
               if r in ("warrantworkloads", "secrets")}  # fmt: skip
    assert used == granted == {("warrant.dev", "warrantworkloads", "list"),
                               ("warrant.dev", "warrantworkloads", "watch"), ("", "secrets", "get")}  # fmt: skip


def test_the_agent_reloads_either_source_through_one_path() -> None:
    """TransparentAgent._reload_registry without a kernel: a source's new list is applied,
    RegistryError keeps the list in force, a workload whose veth is not there waits and is
    applied once it is (tried on every reload)."""
    from warrant.datapath.transparent import TransparentAgent

    applied: list[list[str]] = []
    counted: list[str] = []
    lo = Workload("a", "lo", "10.0.0.1")
    gone = Workload("b", "warrantnoveth0", "10.0.0.2")
    answers: list[Any] = [[lo], None, RegistryError("bad"), [lo, gone], None, None, None]

    class Fake:
        origin = "kube"
        refusals = 0

        def poll(self) -> list[Workload] | None:
            a = answers.pop(0)
            if isinstance(a, Exception):
                raise a
            return a  # type: ignore[no-any-return]

    agent = TransparentAgent.__new__(TransparentAgent)
    agent.registry = Fake()  # type: ignore[assignment]
    agent._wanted, agent._missing, agent.stats = None, set(), {}
    agent._apply_registry = lambda ws: applied.append([w.name for w in ws])  # type: ignore[method-assign]
    agent._count = counted.append  # type: ignore[method-assign]
    agent._reload_registry()  # new list
    agent._reload_registry()  # unchanged: nothing applied
    agent._reload_registry()  # unusable: the list in force stays
    assert applied == [["a"]]
    agent._reload_registry()  # b's veth is not here: a applied, b waits
    agent._reload_registry()  # tried again
    assert applied == [["a"], ["a"], ["a"]] and counted == ["workload_no_veth"]
    Fake.refusals = 2
    agent._reload_registry()
    assert agent.stats["registry_refused"] == 2  # the source's count, in the agent's stats
    assert agent._missing == {"warrantnoveth0"}


def test_workload_list_shows_where_each_comes_from(api: FakeKubeAPI, tmp_path: Path) -> None:
    import subprocess
    import sys

    secret, _ = holder_secret("h")
    api.apply(SECRETS[2], secret)
    api.apply(WORKLOADS[2], ww("web", "lxc1", "10.0.0.1", "h", service="web", allow=["tcp/80"]))
    api.apply(WORKLOADS[2], ww("broken", "lxc2", "10.0.0.2", "absent"))
    reg = tmp_path / "reg.json"
    add_workload(reg, Workload("local", "lxc9", "10.0.0.9"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
        "users": [{"name": "u", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
    }))  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "warrant.cli", "workload", "list", "--registry",
                        str(reg), "--from-kube", str(kubeconfig), "--node", "node-a"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "local\tlxc9\t10.0.0.9\t\tfile",
        "shop/web\tlxc1\t10.0.0.1\tcredential=Secret shop/h key 'credential' service=web "
        "allow=tcp/80\tkube",
        "shop/broken\t-\t-\trefused: shop/broken: Secret shop/absent not found\tkube",
    ]
    api.close()
    r = subprocess.run([sys.executable, "-m", "warrant.cli", "workload", "list", "--from-kube",
                        str(kubeconfig), "--node", "node-a"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "warrantworkloads" in r.stderr


@pytest.mark.root
def test_transparent_agent_takes_workloads_from_the_api_live(tmp_path: Path) -> None:
    """Node A's agent restarted with `--workloads-from-kube` (the fake API on its namespace's
    loopback): no WarrantWorkload, the client reaches nothing; its WarrantWorkload applied
    (key and credential in a Secret), curl gets 200; deleted, nothing again; applied with a
    credential that is not its key's, refused and nothing."""
    import os
    import shutil
    import signal
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and eBPF (CI runs as root)")
    for tool in ("ip", "nsenter", "curl", "ethtool"):
        if shutil.which(tool) is None:
            pytest.fail(f"needs {tool} (scripts/setup.sh installs it)")
    from warrant.datapath.transparent import _wait_ready, setup_pair
    from warrant.demo.topology import entered

    p = setup_pair(tag=f"k{os.getpid() % 100000}", governed_replies=False)
    server = subprocess.Popen(["ip", "netns", "exec", p.server_ns, "python3", "-m",
                               "http.server", "8000", "--bind", p.server_ip],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    api = None
    try:
        with entered(p.ns["a"]):
            api = FakeKubeAPI()
        node_a = p.procs[0]  # the file-registry agent: replaced
        node_a.send_signal(signal.SIGTERM)
        node_a.wait(10)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
            "users": [{"name": "u", "user": {"token": "not-checked"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
        }))  # fmt: skip
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{p.ns['a']}", sys.executable, "-m",
             "warrant.datapath.transparent", "agent", "--config", str(p.tmp / "node-a.json"),
             "--workloads-from-kube", str(kubeconfig), "--node", "node-a"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        p.procs.append(proc)
        _wait_ready(proc, "node-a (kube)")
        url = f"http://{p.server_ip}:8000/"

        def curl() -> str:
            r = subprocess.run(["ip", "netns", "exec", p.client_ns, "curl", "-s", "-o",
                                "/dev/null", "-w", "%{http_code}", "--max-time", "2", url],
                               capture_output=True, text=True)  # fmt: skip
            return r.stdout

        def stats() -> dict[str, int]:
            return p.agent_stats("a")

        assert curl() == "000"  # no WarrantWorkload: the client's packets go nowhere
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "client-holder", "namespace": NS},
                  "data": {"holder.sec": base64.b64encode((p.tmp / "client.sec").read_bytes()).decode(),
                           "credential": base64.b64encode((p.tmp / "client.cred").read_bytes()).decode()}}  # fmt: skip
        api.apply(SECRETS[2], secret)
        client_ww = ww("client", f"tp{p.tag}hc", p.client_ip, "client-holder")
        api.apply(WORKLOADS[2], client_ww)
        deadline = time.monotonic() + 10
        while (code := curl()) != "200":
            assert time.monotonic() < deadline, f"no 200 after the WarrantWorkload: {code}"
        assert stats().get("init_sent", 0) >= 1

        api.delete(WORKLOADS[2], NS, "client")
        time.sleep(1.0)  # the agent reloads every 0.2 s
        assert curl() == "000"

        foreign, _ = holder_secret("foreign", holder=bytes(keys.generate().verify_key))
        foreign["data"]["holder.sec"] = secret["data"]["holder.sec"]  # the client's key
        api.apply(SECRETS[2], foreign)
        api.apply(WORKLOADS[2], ww("client", f"tp{p.tag}hc", p.client_ip, "foreign"))
        time.sleep(1.0)
        assert curl() == "000"  # refused: not applied at all
        assert stats()["registry_refused"] == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert "kube-workload-refused" in err and "its holder is not key" in err, err[-2000:]
    finally:
        server.terminate()
        server.wait()
        if api is not None:
            api.close()
        p.close()
