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
from ..integration.crd_policy import PolicyWatcher, load_any
from .observe import DEFAULT_STORE


def agent_cmd(
    iface: Annotated[str, typer.Option("--iface", help="Interface to enforce on.")],
    policy: Annotated[
        Path, typer.Option("--policy", metavar="POLICY.yaml", help="Admission policy.")
    ],
    key: Annotated[Path, typer.Option("--key", metavar="SEC", help="Receiver secret key file.")],
    port: Annotated[
        list[int] | None,
        typer.Option("--port", min=1, max=65535, help="Warrant UDP port (repeat)."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address the Warrant sockets bind.")
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
        typer.Option(
            "--anchors-dir",
            metavar="DIR",
            help="Where the policy's relative anchor file is read (default: beside it).",
        ),
    ] = None,
    revocations: Annotated[
        Path | None,
        typer.Option(
            "--revocations",
            metavar="DIR",
            help="Directory of signed revocation lists, reloaded when it changes.",
        ),
    ] = None,
) -> None:
    """Enforce Warrant in the kernel on IFACE and admit sessions from user space."""
    from ..datapath.agent import Agent
    from ..integration.flowstore import FlowStore
    from ..integration.metrics import Metrics, start_metrics_server
    from ..integration.revocations import RevocationWatcher

    try:
        ifindex = socket.if_nametoindex(iface)
    except OSError:
        raise ValueError(f"no interface {iface!r}") from None
    receiver_key = keys.load_secret(key)
    pol = load_any(policy, anchors_dir=anchors_dir)
    watcher = PolicyWatcher(policy, anchors_dir=anchors_dir)
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
                  metrics=metrics, node=node if node is not None else socket.gethostname(),
                  policy_watcher=watcher, revocations=rwatch)  # fmt: skip
    server = None
    if metrics is not None and metrics_port is not None:
        server = start_metrics_server(metrics_port, metrics_addr, metrics=metrics)
        print(json.dumps({"agent": "metrics", "url": server.url}), flush=True)
    if store is not None:
        print(json.dumps({"agent": "flows", "store": str(store.path)}), flush=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        agent.run(duration)
    except KeyboardInterrupt:
        pass
    finally:
        agent.close(detach=detach, ifindex=ifindex, attach=mode)
        if server is not None:
            server.close()
        if store is not None:
            store.close()
        print(f"agent stopped: {agent.stats}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_cmd)
