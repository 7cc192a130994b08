"""CLI: `warrant agent`, the user-space half of the kernel datapath.

    warrant agent --iface eth0 --policy policy.yaml --key receiver.sec --port 8443

Loads the eBPF program (building it if needed), pins its maps under
/sys/fs/bpf/warrant, attaches it to the interface (XDP, or TC ingress with
--tc), then receives session openings on the Warrant port(s) and installs
admitted sessions into the kernel.  Prints one JSON line per thing it does.
Killing the agent leaves enforcement in place; `--detach` on exit removes it.

Every verdict, the kernel's drops included, becomes a flow record in the flow
store `--flows PATH` (SQLite; default /var/run/warrant/flows.db, or
$WARRANT_FLOW_STORE: the same default `warrant observe` reads, so the two
commands meet without options; `--flows ''` turns records off).
`--metrics-port N` serves Prometheus metrics on /metrics (off by default).
`--revocations DIR`: signed revocation lists, reloaded when the directory
changes; a revoked credential's sessions leave the kernel map at once.

In Kubernetes (deploy/kubernetes/daemonset.yaml): `--iface auto` enforces on the
interface of the default route; `--policy-source k8s` takes the policy from the
WarrantPolicy objects of the API server instead of `--policy FILE` (list+watch,
status conditions written back; with `--revocations DIR`, the ConfigMaps of the
agent's namespace labelled warrant.dev/revocation-list=true are mirrored into DIR;
see integration/kube_watch.py); `--health-port N` serves /healthz, 200 only while
the program is attached, the maps pinned (the session-secrets map with its layout), a
policy in force and the loop running.
See docs/datapath.md.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..core import keys
from ..datapath.loader import MAPS
from ..integration.crd_policy import PolicySource, PolicyWatcher, load_any
from ..integration.healthz import Check, Health, HealthServer, agent_checks
from ..integration.kube_watch import KubePolicySource, deny_all
from . import options
from .observe import DEFAULT_STORE
from .options import ReceiverKeyOpt, RevocationsDirOpt


def agent_cmd(
    iface: Annotated[
        str, typer.Option("--iface", help="Interface to enforce on; 'auto': the default route's.")
    ],
    key: ReceiverKeyOpt,
    port: Annotated[list[int] | None, options.port("Warrant UDP port (repeat).", low=1)] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address the Warrant sockets bind: '0.0.0.0' (or '::') every address, "
            "IPv4 and IPv6 (IPv4 alone, with a warning, where IPv6 is off); an IPv4 "
            "address or a name: IPv4 only; an IPv6 address: IPv6 only.",
        ),
    ] = "0.0.0.0",
    tc: Annotated[bool, typer.Option("--tc", help="Attach at TC ingress instead of XDP.")] = False,
    xdp_mode: Annotated[str, typer.Option("--xdp-mode", help="auto, native or generic.")] = "auto",
    pin_root: Annotated[str, typer.Option("--pin-root", help="bpffs directory for the maps.")] = (
        "/sys/fs/bpf/warrant"
    ),
    events: Annotated[bool, typer.Option("--events", help="Print kernel verdict events.")] = False,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Exit after this many seconds.")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Remove the program on exit.")] = False,
    flows: Annotated[
        str,
        typer.Option(
            "--flows",
            metavar="PATH",
            envvar="WARRANT_FLOW_STORE",
            help="Flow store (SQLite) for every verdict; '' for none.",
        ),
    ] = DEFAULT_STORE,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus /metrics on this port (0: any free port).",
        ),
    ] = None,
    metrics_addr: Annotated[
        str, typer.Option("--metrics-addr", help="Address the metrics endpoint binds.")
    ] = "0.0.0.0",
    node: Annotated[
        str | None, typer.Option("--node", help="node_name in flow records (default: hostname).")
    ] = None,
    anchors_dir: Annotated[
        Path | None,
        options.anchors_dir(
            "Where the policy's relative anchor file is read (default: beside it)."
        ),
    ] = None,
    revocations: RevocationsDirOpt = None,
    policy: Annotated[Path | None, options.policy_file("Admission policy (file mode).")] = None,
    policy_source: Annotated[
        str,
        typer.Option(
            "--policy-source",
            help="'file' (--policy) or 'k8s' (WarrantPolicy objects via the API).",
        ),
    ] = "file",
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig", help="k8s mode: kubeconfig file (default: in-cluster).", readable=False
        ),
    ] = None,
    kube_namespace: Annotated[
        str | None,
        typer.Option(
            "--kube-namespace",
            envvar="POD_NAMESPACE",
            help="k8s mode: the namespace of the revocation-list ConfigMaps.",
        ),
    ] = None,
    health_port: Annotated[
        int | None,
        typer.Option("--health-port", min=0, max=65535, help="Serve /healthz on this port."),
    ] = None,
    health_addr: Annotated[
        str, typer.Option("--health-addr", help="Address the /healthz endpoint binds.")
    ] = "0.0.0.0",
) -> None:
    """Enforce Warrant in the kernel on IFACE and admit sessions from user space."""
    from ..datapath.agent import Agent
    from ..integration.flowstore import FlowStore
    from ..integration.metrics import Metrics, start_metrics_server
    from ..integration.revocations import RevocationWatcher

    if iface == "auto":
        iface = default_route_interface()
    try:
        ifindex = socket.if_nametoindex(iface)
    except OSError:
        raise ValueError(f"no interface {iface!r}") from None
    receiver_key = keys.load_secret(key)
    node_name = node if node is not None else socket.gethostname()
    watcher: PolicySource
    if policy_source == "k8s":
        source = _kube_source(kubeconfig, anchors_dir, node_name, kube_namespace, revocations)
        # until the first list is applied nothing is admitted (and /healthz says why)
        pol = (source.poll() if source.wait_synced(KUBE_SYNC_S) else None) or deny_all()
        watcher = source
    elif policy_source == "file":
        if policy is None:
            raise ValueError("--policy FILE is needed (or --policy-source k8s)")
        pol = load_any(policy, anchors_dir=anchors_dir)
        watcher = PolicyWatcher(policy, anchors_dir=anchors_dir)
    else:
        raise ValueError(f"--policy-source: 'file' or 'k8s', not {policy_source!r}")
    mode = "tc" if tc else "xdp"
    agent: Agent | None = None  # the lists are checked against the trust store in force
    rwatch = (
        RevocationWatcher(revocations, lambda: (agent.receiver.policy if agent else pol).trust)
        if revocations is not None
        else None
    )
    store = FlowStore(flows) if flows else None
    metrics = Metrics() if metrics_port is not None else None
    agent = Agent(receiver_key, pol, ifindex, port or [8443], host=host, attach=mode,
                  xdp_mode=xdp_mode, pin_root=pin_root, events=events, flows=store,
                  metrics=metrics, node=node_name, policy_watcher=watcher,
                  revocations=rwatch)  # fmt: skip
    server = None
    if metrics is not None and metrics_port is not None:
        server = start_metrics_server(metrics_port, metrics_addr, metrics=metrics)
        print(json.dumps({"agent": "metrics", "url": server.url}), flush=True)
    if store is not None:
        print(json.dumps({"agent": "flows", "store": str(store.path)}), flush=True)
    health_server = None
    if health_port is not None:
        health = Health()
        agent_checks(health, agent.dp, ifindex, mode, pin_root, MAPS, watcher,
                     _policy_check(watcher))  # fmt: skip
        health_server = HealthServer(health, health_port, health_addr)
        print(json.dumps({"agent": "health", "url": health_server.url}), flush=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        agent.run(duration)
    except KeyboardInterrupt:
        pass
    finally:
        agent.close(detach=detach, ifindex=ifindex, attach=mode)
        if isinstance(watcher, KubePolicySource):
            watcher.stop()
        if health_server is not None:
            health_server.close()
        if server is not None:
            server.close()
        if store is not None:
            store.close()
        print(f"agent stopped: {agent.stats}", file=sys.stderr)


KUBE_SYNC_S = 10.0  # how long the agent waits for the first WarrantPolicy list


def _kube_source(kubeconfig: Path | None, anchors_dir: Path | None, node: str,
                 namespace: str | None, revocations: Path | None) -> KubePolicySource:  # fmt: skip
    try:
        from kubernetes import client, config
    except ImportError:
        raise ValueError(
            "--policy-source k8s needs the kubernetes client (pip install 'warrant[k8s]')"
        ) from None
    conf = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
    source = KubePolicySource(client.ApiClient(conf), anchors_dir=anchors_dir, node=node,
                              namespace=namespace, revocations_dir=revocations)  # fmt: skip
    source.start()
    return source


def _policy_check(source: PolicySource) -> Check:
    if isinstance(source, KubePolicySource):
        return source.health
    return lambda: (True, f"policy from {source.path}")


def default_route_interface(route_table: Path = Path("/proc/net/route")) -> str:
    """The interface of the IPv4 default route with the lowest metric (`--iface auto`)."""
    best: tuple[int, str] | None = None
    for line in route_table.read_text().splitlines()[1:]:
        f = line.split()
        # Iface Destination Gateway Flags RefCnt Use Metric Mask ...; RTF_UP = 0x1
        default = len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000"
        if default and int(f[3], 16) & 1 and (best is None or int(f[6]) < best[0]):
            best = (int(f[6]), f[0])
    if best is None:
        raise ValueError("--iface auto: no IPv4 default route (name the interface)")
    return best[1]


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_cmd)
