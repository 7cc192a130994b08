"""`warrant workload add|list|remove`: the transparent-mode workload registry (SPEC 13).

The registry is a JSON file the node agent reads (`warrant.datapath.transparent`): per
workload its host-side veth, IPv4 address, and either the holder key and credential its
traffic leaves with (sending side) or the service it serves and the inner protocol/ports
it accepts (receiving side), or both.  Every refusal (duplicate name or veth, bad
address, unreadable key, a credential whose holder is not the key, a bad --allow) is one
line on stderr and exit code 2 (warrant.cli.main)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from ..core import keys
from ..datapath.workloads import (
    Workload,
    add_workload,
    credential_bytes,
    delegate_workload,
    load_registry,
    remove_workload,
)

workload_app = typer.Typer(
    name="workload",
    help="Register workloads (namespace + veth) for transparent mode.",
    no_args_is_help=True,
)

RegistryOpt = Annotated[
    Path,
    typer.Option(
        "--registry", metavar="FILE", help="Registry file (JSON) the agent reads.", readable=False
    ),
]


@workload_app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="Workload name (unique).")],
    registry: RegistryOpt,
    veth: Annotated[str, typer.Option("--veth", help="Host-side veth of the workload.")],
    address: Annotated[str, typer.Option("--address", help="The workload's IPv4 address.")],
    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="SEC", help="Holder secret key file.", readable=False),
    ] = None,
    credential: Annotated[
        Path | None,
        typer.Option("--credential", metavar="CRED", help="Credential file.", readable=False),
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Service this workload serves.")
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Inner protocol/ports accepted: tcp/80, udp/5000-5010, icmp."),
    ] = None,
    delegate_from: Annotated[
        Path | None,
        typer.Option(
            "--delegate-from",
            metavar="CRED",
            help="Node credential to delegate the workload's credential from.",
            readable=False,
        ),
    ] = None,
    node_key: Annotated[
        Path | None,
        typer.Option(
            "--node-key", metavar="SEC", help="Holder key of --delegate-from.", readable=False
        ),
    ] = None,
    dst: Annotated[
        str | None,
        typer.Option(
            "--dst",
            metavar="SVC:PORT",
            help="With --delegate-from: the one service and Warrant port granted.",
        ),
    ] = None,
    lifetime: Annotated[
        int, typer.Option("--lifetime", help="With --delegate-from: validity in seconds.")
    ] = 86400,
) -> None:
    """Add a workload to the registry.  With --delegate-from, a fresh holder key and a
    credential attenuated from the node's (operation ip, one service and port) are
    written beside the registry as NAME.sec (mode 0600) and NAME.cred."""
    if delegate_from is not None:
        if node_key is None or dst is None or key is not None or credential is not None:
            raise ValueError(
                "--delegate-from needs --node-key and --dst, and no --key/--credential"
            )
        service, _, port_s = dst.partition(":")
        if not port_s.isdigit():
            raise ValueError(f"--dst {dst!r}: expected SERVICE:PORT")
        wkey, cred = delegate_workload(
            credential_bytes(delegate_from),
            keys.load_secret(node_key),
            service,
            int(port_s),
            lifetime,
        )
        key, credential = registry.with_name(f"{name}.sec"), registry.with_name(f"{name}.cred")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(keys.encode_secret(wkey) + "\n")
        credential.write_bytes(cred)
    add_workload(
        registry,
        Workload(name, veth, address, None if key is None else str(key),
                 None if credential is None else str(credential), service, list(allow or [])),
    )  # fmt: skip
    typer.echo(f"added {name} ({veth}, {address}) to {registry}")


def _row(w: Workload, credential: str | None, origin: str) -> str:
    side = []
    if credential:
        side.append(f"credential={credential}")
    if w.service:
        side.append(f"service={w.service} allow={','.join(w.allow) or '-'}")
    return f"{w.name}\t{w.veth}\t{w.address}\t{' '.join(side)}\t{origin}"


@workload_app.command("list")
def list_cmd(
    registry: Annotated[
        Path | None,
        typer.Option("--registry", metavar="FILE", help="Registry file (JSON).", readable=False),
    ] = None,
    from_kube: Annotated[
        str | None,
        typer.Option(
            "--from-kube",
            metavar="KUBECONFIG|in-cluster",
            help="Also the WarrantWorkloads of --node, validated as the agent does.",
        ),
    ] = None,
    node: Annotated[
        str | None, typer.Option("--node", help="With --from-kube: the node (default: this host).")
    ] = None,
) -> None:
    """List the registered workloads; the last column says where each comes from (file or
    kube; a WarrantWorkload the agent would refuse is listed with its reason)."""
    if registry is None and from_kube is None:
        raise ValueError("--registry FILE and/or --from-kube KUBECONFIG|in-cluster")
    if registry is not None:
        for w in load_registry(registry):
            typer.echo(_row(w, w.credential, "file"))
    if from_kube is not None:
        from ..integration.kube_workloads import KubeWorkloadSource, api_client

        src = KubeWorkloadSource(api_client(from_kube), node=node or socket.gethostname())
        try:
            src.list_once()
            for w in src.workloads:
                typer.echo(_row(w, src.describe(w.credential), "kube"))
            for ref, reason in sorted(src.refused.items()):
                typer.echo(f"{ref}\t-\t-\trefused: {reason}\tkube")
        finally:
            src.close()


@workload_app.command("remove")
def remove_cmd(
    name: Annotated[str, typer.Argument(help="Workload name.")], registry: RegistryOpt
) -> None:
    """Remove a workload from the registry."""
    remove_workload(registry, name)
    typer.echo(f"removed {name} from {registry}")


def register(app: typer.Typer) -> None:
    app.add_typer(workload_app, name="workload")
