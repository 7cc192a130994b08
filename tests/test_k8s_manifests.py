"""deploy/kubernetes/: every manifest against the Kubernetes API models, the CRD against the
structural-schema rules, and WarrantPolicy documents against the CRD's OpenAPI v3 schema.

No cluster is available here: the models are the `kubernetes` Python client's (pydantic
models generated from the API's OpenAPI spec), which check field types and required fields;
a round trip through them finds misspelled fields (the client drops unknown ones).  The CRD
schema is applied with jsonschema (Draft 4 semantics, as OpenAPI v3.0 schemas use), and held
to the same verdicts as src/warrant/integration/crd_policy.py on a corpus of valid and invalid documents.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from warrant.core.admission import PolicyError
from warrant.integration import crd_policy

kubernetes = pytest.importorskip("kubernetes", reason="pip install -e '.[k8s]'")
from kubernetes import client  # noqa: E402

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes"
API = client.ApiClient()


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def all_manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "example-policy.yaml"):
            continue
        out += [(f"{path.name}:{d['kind']}/{d['metadata']['name']}", d) for d in docs(path.name)]
    return out


MANIFESTS = all_manifests()
CRD = docs("crd-warrantpolicy.yaml")[0]
CRD_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
CRD_VALIDATOR = jsonschema.Draft4Validator(CRD_SCHEMA)


def model_name(doc: dict[str, Any]) -> str:
    version = doc["apiVersion"].split("/")[-1]
    return f"{version[0].upper()}{version[1:]}{doc['kind']}"


def round_trip(doc: dict[str, Any]) -> Any:
    obj = API.deserialize(json.dumps(doc), model_name(doc), "application/json")
    return API.sanitize_for_serialization(obj)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: not a field of the API model" for k in a if k not in b]
        out += [f"{path}.{k}: added" for k in b if k not in a]
        for k in a.keys() & b.keys():
            out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} became {b!r}"]


# ---- every manifest against the API models ------------------------------------------------
def test_the_expected_objects_are_there() -> None:
    kinds = sorted(d["kind"] for _, d in MANIFESTS)
    assert kinds == sorted(["Namespace", "CustomResourceDefinition", "CustomResourceDefinition",
                            "ServiceAccount", "ClusterRole",
                            "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "ConfigMap",
                            "DaemonSet"])  # fmt: skip


@pytest.mark.parametrize(("name", "doc"), MANIFESTS, ids=[n for n, _ in MANIFESTS])
def test_manifest_matches_the_api_model(name: str, doc: dict[str, Any]) -> None:
    assert hasattr(client, model_name(doc)), f"{name}: no API model {model_name(doc)}"
    assert differences(doc, round_trip(doc)) == []


def test_round_trip_catches_a_misspelled_field() -> None:
    ds = copy.deepcopy(docs("daemonset.yaml")[0])
    ds["spec"]["template"]["spec"]["hostNetwrok"] = True
    assert differences(ds, round_trip(ds)) == [
        ".spec.template.spec.hostNetwrok: not a field of the API model"
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),  # required
        lambda d: d["spec"]["template"]["spec"].update(hostNetwork="yes"),  # wrong type
        lambda d: d["spec"].pop("selector"),
    ],
)
def test_models_reject_broken_daemonsets(mutate: Any) -> None:
    ds = copy.deepcopy(docs("daemonset.yaml")[0])
    mutate(ds)
    with pytest.raises(Exception, match="validation error"):
        round_trip(ds)


# ---- the DaemonSet does what the agent needs --------------------------------------------------
def agent_pod() -> dict[str, Any]:
    return docs("daemonset.yaml")[0]["spec"]["template"]["spec"]


def test_daemonset_host_network_bpf_privileges_and_bpffs() -> None:
    pod = agent_pod()
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    agent = pod["containers"][0]
    sc = agent["securityContext"]
    # exactly these (tests/test_agent_restart_caps.py restarts the agent with them): no SYS_ADMIN
    assert sorted(sc["capabilities"]["add"]) == ["BPF", "NET_ADMIN", "PERFMON", "SYS_RESOURCE"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["bpf-maps"]["mountPath"] == "/sys/fs/bpf"
    assert mounts["bpf-maps"]["mountPropagation"] == "HostToContainer"
    assert volumes["bpf-maps"]["hostPath"]["path"] == "/sys/fs/bpf"
    assert set(mounts) == set(volumes)
    assert {"operator": "Exists"} in pod["tolerations"]  # every node, tainted or not
    assert pod["priorityClassName"] == "system-node-critical"


def test_daemonset_apparmor_selinux_like_cilium() -> None:
    ds = docs("daemonset.yaml")[0]
    pod = ds["spec"]["template"]
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert sc["appArmorProfile"] == {"type": "Unconfined"}
    assert sc["seccompProfile"] == {"type": "Unconfined"}
    assert sc["seLinuxOptions"]["type"] == "spc_t"
    names = [c["name"] for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]]
    for name in names:  # the annotation for clusters before 1.30
        assert (
            pod["metadata"]["annotations"][f"container.apparmor.security.beta.kubernetes.io/{name}"]
            == "unconfined"
        )


def test_bpffs_init_container_mounts_with_bidirectional_propagation() -> None:
    pod = agent_pod()
    (init,) = pod["initContainers"]
    assert init["name"] == "mount-bpf-fs" and init["securityContext"]["privileged"] is True
    (mount,) = init["volumeMounts"]
    assert mount == {
        "name": "bpf-maps",
        "mountPath": "/sys/fs/bpf",
        "mountPropagation": "Bidirectional",
    }
    script = " ".join(init["command"] + init["args"])
    assert "mount -t bpf bpf /sys/fs/bpf" in script
    assert init["image"] == pod["containers"][0]["image"]


def test_probes_use_the_agents_healthz() -> None:
    agent = agent_pod()["containers"][0]
    args = dict(a.split("=", 1) for a in agent["args"][1:])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = agent[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert str(get["port"]) == args["--health-port"] and get["host"] == args["--health-addr"]


def test_daemonset_takes_policy_from_the_api_and_finds_its_interface() -> None:
    agent = agent_pod()["containers"][0]
    args = dict(a.split("=", 1) for a in agent["args"][1:])
    env = {e["name"]: e for e in agent["env"]}
    assert args["--policy-source"] == "k8s" and "--policy" not in args
    assert args["--iface"] == "$(WARRANT_IFACE)" and env["WARRANT_IFACE"]["value"] == "auto"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    mounts = {m["mountPath"] for m in agent["volumeMounts"]}
    assert args["--revocations"] in mounts and args["--anchors-dir"] in mounts


def test_daemonset_image_is_the_one_the_build_script_makes() -> None:
    import tomllib

    version = tomllib.loads((DEPLOY.parent.parent / "pyproject.toml").read_text())["project"][
        "version"
    ]
    assert agent_pod()["containers"][0]["image"] == f"localhost/warrant:{version}"
    script = (DEPLOY.parent.parent / "scripts" / "build-image.sh").read_text()
    assert 'IMAGE="localhost/warrant:${VERSION}"' in script


def test_daemonset_references_resolve() -> None:
    pod = agent_pod()
    by_kind: dict[str, set[str]] = {}
    for _, d in MANIFESTS:
        by_kind.setdefault(d["kind"], set()).add(d["metadata"]["name"])
    assert pod["serviceAccountName"] in by_kind["ServiceAccount"]
    for v in pod["volumes"]:
        if "configMap" in v:
            assert v["configMap"]["name"] in by_kind["ConfigMap"]
        if "secret" in v:  # created by the operator (the receiver key), never shipped
            assert v["secret"]["secretName"] == "warrant-receiver-key"
    agent = pod["containers"][0]
    metrics = next(p for p in agent["ports"] if p["name"] == "metrics")
    from warrant.cli.observe import DEFAULT_STORE
    from warrant.integration.metrics import DEFAULT_PORT

    assert metrics["containerPort"] == DEFAULT_PORT
    assert f"--metrics-port={DEFAULT_PORT}" in agent["args"]
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["WARRANT_FLOW_STORE"] == DEFAULT_STORE
    namespaces = {d["metadata"].get("namespace") for _, d in MANIFESTS} - {None}
    assert namespaces == by_kind["Namespace"]


def test_rbac_grants_what_the_agent_reads_and_no_more() -> None:
    cluster_role = next(d for _, d in MANIFESTS if d["kind"] == "ClusterRole")
    names = CRD["spec"]["names"]
    grant = next(r for r in cluster_role["rules"] if r["resources"] == [names["plural"]])
    assert grant["apiGroups"] == [CRD["spec"]["group"]]
    assert set(grant["verbs"]) == {
        "list",
        "watch",
    }  # tests/test_kube_watch.py: exactly what is used
    for rule in cluster_role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert not {"create", "delete"} & set(rule["verbs"]) or rule["resources"] == ["events"]
    binding = next(d for _, d in MANIFESTS if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == agent_pod()["serviceAccountName"]


# ---- the CRD -----------------------------------------------------------------------------------
def test_crd_names_are_consistent_with_the_converter() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["group"] == crd_policy.GROUP and spec["names"]["kind"] == crd_policy.KIND
    version = spec["versions"][0]
    assert version["name"] == crd_policy.VERSION and version["served"] and version["storage"]


_FORBIDDEN = {"$ref", "definitions", "$schema", "id", "patternProperties", "dependencies"}
_JUNCTORS = ("anyOf", "allOf", "oneOf", "not")


def structural_problems(node: Any, path: str = "", in_junctor: bool = False) -> list[str]:
    """The apiserver's structural-schema rules that matter for this CRD (a subset)."""
    if not isinstance(node, dict):
        return []
    out = [f"{path}: {k} is not allowed in a CRD schema" for k in _FORBIDDEN & set(node)]
    special = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if in_junctor:
        bad = {"type", "properties", "additionalProperties", "default", "nullable", "description"}
        if not (set(node) == {"type"} and path.endswith(("anyOf[0]", "anyOf[1]"))):
            out += [f"{path}: {k} inside a junctor" for k in bad & set(node)]
    elif "type" not in node and not special:
        out.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        out.append(f"{path}: properties and additionalProperties together")
    for k, v in node.get("properties", {}).items():
        out += structural_problems(v, f"{path}.{k}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out += structural_problems(node[key], f"{path}.{key}")
    for j in _JUNCTORS:
        branches = node.get(j)
        for i, b in enumerate(
            branches if isinstance(branches, list) else [branches] if branches else []
        ):
            out += structural_problems(b, f"{path}.{j}[{i}]", in_junctor=True)
    return out


def test_crd_schema_is_structural() -> None:
    assert structural_problems(CRD_SCHEMA) == []
    assert structural_problems(WW_SCHEMA) == []


def test_structural_lint_can_fail() -> None:
    broken = copy.deepcopy(CRD_SCHEMA)
    broken["properties"]["spec"]["properties"]["ingress"]["items"] = {"$ref": "#/definitions/rule"}
    broken["properties"]["spec"]["properties"]["limits"].pop("type")
    problems = structural_problems(broken)
    assert any("$ref" in p for p in problems) and any("limits: no type" in p for p in problems)


def test_crd_schema_is_a_valid_schema() -> None:
    jsonschema.Draft4Validator.check_schema(CRD_SCHEMA)
    jsonschema.Draft4Validator.check_schema(WW_SCHEMA)


# ---- WarrantPolicy documents: CRD schema and converter agree -------------------------------------
EXAMPLES = docs("example-policy.yaml")
CM_POLICIES = [
    d for d in yaml.safe_load_all(docs("configmap-policies.yaml")[0]["data"]["policy.yaml"]) if d
]


@pytest.mark.parametrize("doc", EXAMPLES + CM_POLICIES, ids=lambda d: d["metadata"]["name"])
def test_example_policies_validate_against_the_crd(doc: dict[str, Any]) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in CRD_VALIDATOR.iter_errors(doc)]
    assert errors == []


BASE = EXAMPLES[0]


def variant(path: str, value: Any) -> dict[str, Any]:
    """BASE with one field set (value None: deleted).  Path: dotted, ints index lists."""
    doc = copy.deepcopy(BASE)
    parts: list[Any] = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = doc
    for p in parts[:-1]:
        node = node[p]
    if value is None:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return doc


FA = "spec.ingress.0.fromAuthority.0"
PORT0 = "spec.ingress.0.toPorts.0.ports.0"
# (id, document, valid) -- both the CRD schema and the converter must give this verdict
CORPUS: list[tuple[str, dict[str, Any], bool]] = [
    ("base", BASE, True),
    ("billing", EXAMPLES[1], True),
    ("port as integer", variant(f"{PORT0}.port", 8443), True),
    ("protocol ANY", variant(f"{PORT0}.protocol", "ANY"), True),
    ("no toPorts", variant("spec.ingress.0.toPorts", None), True),
    ("empty selector selects any authority", variant("spec.ingress.0.fromAuthority", [{}]), True),
    ("only ingressDeny", variant("spec.ingress", None), True),
    ("empty ingress list", variant("spec.ingress", []), True),
    ("select all endpoints", variant("spec.endpointSelector", {}), True),
    ("inline anchors", variant("spec.anchors", {"scopes": {}}), True),
    ("missing spec", variant("spec", None), False),
    ("missing endpointSelector", variant("spec.endpointSelector", None), False),
    (
        "neither ingress nor ingressDeny",
        variant(
            "spec", {k: v for k, v in BASE["spec"].items() if k not in ("ingress", "ingressDeny")}
        ),
        False,
    ),
    ("misspelled fromAuthority", variant("spec.ingress.0", {"fromAuthorty": [{}]}), False),
    ("empty fromAuthority", variant("spec.ingress.0.fromAuthority", []), False),
    ("maxHops too large", variant(f"{FA}.maxHops", 9), False),
    ("maxHops negative", variant(f"{FA}.maxHops", -1), False),
    ("maxHops a string", variant(f"{FA}.maxHops", "2"), False),
    ("scope upper case", variant(f"{FA}.scopes", ["Acme"]), False),
    ("issuer not hex", variant(f"{FA}.issuers", ["xyz"]), False),
    ("operation pattern bad", variant(f"{FA}.operations", ["orders.*.read"]), False),
    ("via bad domain", variant(f"{FA}.via", ["-bad"]), False),
    ("scopes not a list", variant(f"{FA}.scopes", "acme.prod"), False),
    ("port too large", variant(f"{PORT0}.port", "70000"), False),
    ("named port", variant(f"{PORT0}.port", "https"), False),
    ("port integer too large", variant(f"{PORT0}.port", 70000), False),
    ("protocol TCP", variant(f"{PORT0}.protocol", "TCP"), False),
    ("ports empty", variant("spec.ingress.0.toPorts.0.ports", []), False),
    (
        "selector operator bad",
        variant("spec.endpointSelector", {"matchExpressions": [{"key": "app", "operator": "Has"}]}),
        False,
    ),
    ("per-holder quota", variant("spec.limits.maxSessionsPerHolder", 8), True),
    ("per-holder quota zero", variant("spec.limits.maxSessionsPerHolder", 0), False),
    ("limits zero", variant("spec.limits.maxSessions", 0), False),
    ("limits negative rate", variant("spec.limits.initRatePerSource", -1), False),
    ("enableDefaultDeny not bool", variant("spec.enableDefaultDeny", {"ingress": "no"}), False),
]
# Stricter in the converter than the CRD's schema can say (the apiserver would accept these; the
# agent and `warrant policy check` refuse them with a line number).
CONVERTER_ONLY: list[tuple[str, dict[str, Any]]] = [
    (
        "In without values",
        variant("spec.endpointSelector", {"matchExpressions": [{"key": "app", "operator": "In"}]}),
    ),
    (
        "Exists with values",
        variant(
            "spec.endpointSelector",
            {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]},
        ),
    ),
    ("endPort below port", variant(f"{PORT0}.endPort", 10)),
    ("unknown spec field", variant("spec.egress", [])),
    ("bad metadata name", variant("metadata.name", "Orders_Ingress")),
]


def converter_accepts(doc: dict[str, Any]) -> bool:
    try:
        crd_policy.load_text(yaml.safe_dump(doc), "doc.yaml")
    except PolicyError:
        return False
    return True


@pytest.mark.parametrize(("case", "doc", "valid"), CORPUS, ids=[c[0] for c in CORPUS])
def test_crd_schema_and_converter_agree(case: str, doc: dict[str, Any], valid: bool) -> None:
    assert CRD_VALIDATOR.is_valid(doc) is valid, case
    assert converter_accepts(doc) is valid, case


@pytest.mark.parametrize(("case", "doc"), CONVERTER_ONLY, ids=[c[0] for c in CONVERTER_ONLY])
def test_converter_is_stricter_where_the_schema_cannot_say(case: str, doc: dict[str, Any]) -> None:
    assert not converter_accepts(doc), case


def test_unknown_spec_fields_are_pruned_by_the_apiserver_but_refused_by_the_converter() -> None:
    # Structural schemas prune unknown fields silently in the apiserver; the converter names them.
    doc = variant("spec.egress", [])
    with pytest.raises(PolicyError, match=r"doc.yaml:\d+: spec.egress: Extra inputs"):
        crd_policy.load_text(yaml.safe_dump(doc, sort_keys=False), "doc.yaml")


# ---- the example files work as plain files outside Kubernetes ------------------------------------
def test_example_policy_checks_with_the_anchor_configmap(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from warrant.cli import app

    anchors = docs("configmap-anchors.yaml")[0]["data"]
    for key, text in anchors.items():
        (tmp_path / key).write_text(text)
    runner = CliRunner()
    for target in (DEPLOY / "example-policy.yaml",):
        res = runner.invoke(app, ["policy", "check", str(target), "--anchors-dir", str(tmp_path)])
        assert res.exit_code == 0, res.output
        assert res.stdout.startswith("ok:")
    cm = tmp_path / "cm-policy.yaml"
    cm.write_text(docs("configmap-policies.yaml")[0]["data"]["policy.yaml"])
    res = runner.invoke(app, ["policy", "check", str(cm), "--anchors-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output


def test_configmap_policy_is_the_example_orders_policy_trimmed() -> None:
    cm = CM_POLICIES[0]
    assert cm["metadata"] == BASE["metadata"]
    assert cm["spec"]["endpointSelector"] == BASE["spec"]["endpointSelector"]


def test_daemonset_uses_only_flags_the_agent_takes() -> None:
    import typer.main

    from warrant.cli import app

    agent = typer.main.get_command(app).commands["agent"]  # type: ignore[attr-defined]
    known = {opt for p in agent.params for opt in p.opts}
    ds = docs("daemonset.yaml")[0]
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "agent"
    used = {a.split("=", 1)[0] for a in args[1:] if a.startswith("--")}
    assert used and used <= known, used - known


# ---- WarrantWorkload: CRD schema and the agent's validation agree ---------------------------
WW_CRD = docs("crd-warrantworkload.yaml")[0]
WW_SCHEMA = WW_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
WW_VALIDATOR = jsonschema.Draft4Validator(WW_SCHEMA)


def test_workload_crd_names_are_consistent_with_the_source() -> None:
    from warrant.integration import kube_workloads

    spec = WW_CRD["spec"]
    assert WW_CRD["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["names"]["plural"] == kube_workloads.PLURAL
    assert spec["names"]["kind"] == kube_workloads.KIND and spec["group"] == crd_policy.GROUP
    version = spec["versions"][0]
    assert version["name"] == crd_policy.VERSION and version["served"] and version["storage"]
    fields = set(WW_SCHEMA["properties"]["spec"]["properties"])
    assert fields == kube_workloads.SPEC_FIELDS
    assert "subresources" not in version  # nothing writes a status


def ww(**spec: Any) -> dict[str, Any]:
    body = {"nodeName": "n", "veth": "lxc1", "address": "10.0.0.1", **spec}
    return {"apiVersion": "warrant.dev/v1alpha1", "kind": "WarrantWorkload",
            "metadata": {"name": "w", "namespace": "shop"},
            "spec": {k: v for k, v in body.items() if v is not None}}  # fmt: skip


def source_accepts(doc: dict[str, Any], tmp: Path) -> bool:
    """The agent's verdict (no Secret named: no API request is made)."""
    from warrant.integration.kube_workloads import KubeWorkloadSource

    src = KubeWorkloadSource(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")),
                             node="n", directory=tmp)  # fmt: skip
    src._on_list([doc])
    return "shop/w" not in src.refused and [w.name for w in src.workloads] == ["shop/w"]


WW_CORPUS: list[tuple[str, dict[str, Any], bool]] = [
    ("receiving side", ww(service="web", allow=["tcp/8443", "udp/5000-5010", "icmp"]), True),
    ("no allow", ww(), True),
    ("no veth", ww(veth=None), False),
    ("empty veth", ww(veth=""), False),
    ("no address", ww(address=None), False),
    ("IPv6 address", ww(address="fd00::1"), False),
    ("allow sctp", ww(service="web", allow=["sctp/9"]), False),
    ("allow not a list", ww(service="web", allow="tcp/80"), False),
    ("service not a string", ww(service=7), False),
]
# Stricter in the agent than the schema says (the apiserver accepts these; the agent refuses
# them with `warrant workload add`'s reason).
WW_AGENT_ONLY: list[tuple[str, dict[str, Any]]] = [
    ("address out of range", ww(address="10.0.0.300")),
    ("allow port 0", ww(service="web", allow=["tcp/0"])),
    ("allow port too large", ww(service="web", allow=["tcp/70000"])),
    ("allow range reversed", ww(service="web", allow=["tcp/90-80"])),
    ("allow without service", ww(allow=["tcp/80"])),
    ("key without credential", ww(holderKeyRef={"name": "h", "key": "k"})),
]


@pytest.mark.parametrize(("case", "doc", "valid"), WW_CORPUS, ids=[c[0] for c in WW_CORPUS])
def test_workload_schema_and_agent_agree(case: str, doc: dict[str, Any], valid: bool,
                                         tmp_path: Path) -> None:  # fmt: skip
    assert WW_VALIDATOR.is_valid(doc) is valid, case
    assert source_accepts(doc, tmp_path) is valid, case


@pytest.mark.parametrize(("case", "doc"), WW_AGENT_ONLY, ids=[c[0] for c in WW_AGENT_ONLY])
def test_agent_is_stricter_where_the_workload_schema_cannot_say(case: str, doc: dict[str, Any],
                                                                tmp_path: Path) -> None:  # fmt: skip
    assert WW_VALIDATOR.is_valid(doc), case
    assert not source_accepts(doc, tmp_path), case
