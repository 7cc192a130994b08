"""Option declarations the `warrant` commands share: each option's shape is defined once.

An option's names, metavar, bounds and file handling are fixed here; where commands word
its help for their own use, the command passes that help, so what users read stays
specific to the command.  Options declared identically by several commands are aliases
(`ReceiverKeyOpt`, ...).  Files are opened by the commands themselves, with their own
one-line errors: `readable=False` keeps click from opening them first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

TIME_HELP = "30m, 1h, 7d (from now), unix seconds or ISO 8601"
REVOCATIONS_HELP = "Directory of signed revocation lists, reloaded when it changes."


def secret_key(help: str, *decls: str) -> Any:
    """A secret key file (`--key` unless named otherwise)."""
    return typer.Option(*(decls or ("--key",)), metavar="SEC", help=help, readable=False)


def public_key(decl: str, help: str) -> Any:
    """A public key: a file or the key itself."""
    return typer.Option(decl, metavar="PUB", help=help)


def policy_file(help: str) -> Any:
    return typer.Option("--policy", metavar="POLICY.yaml", help=help, readable=False)


def anchors_file(help: str) -> Any:
    return typer.Option("--anchors", metavar="FILE", help=help, readable=False)


def anchors_dir(help: str) -> Any:
    return typer.Option("--anchors-dir", metavar="DIR", help=help, readable=False)


def revocations_dir(help: str = REVOCATIONS_HELP) -> Any:
    return typer.Option("--revocations", metavar="DIR", help=help, readable=False)


def port(help: str, decl: str = "--port", *, low: int = 0) -> Any:
    """A UDP port number (from `low`; 0 means "any free port" where a command binds)."""
    return typer.Option(decl, min=low, max=65535, help=help)


def json_flag(help: str) -> Any:
    return typer.Option("--json", help=help)


def verbose(help: str) -> Any:
    return typer.Option("-v", "--verbose", help=help)


def output_format(help: str) -> Any:
    """`-o`: the command's output format (its help lists the choices)."""
    return typer.Option("--output", "-o", help=help)


def scope(help: str) -> Any:
    return typer.Option("--scope", metavar="SCOPE", help=help)


def time_option(decl: str, help: str = TIME_HELP) -> Any:
    return typer.Option(decl, metavar="TIME", help=help)


def domains(decl: str, help: str) -> Any:
    """A transit domain (repeatable where the parameter is a list)."""
    return typer.Option(decl, metavar="DOMAIN", help=help)


def destinations(help: str) -> Any:
    return typer.Option("--dst", metavar="SVC:PORT", help=help)


# ---- declared alike by several commands --------------------------------------------------
ReceiverKeyOpt = Annotated[Path, secret_key("Receiver secret key file.")]
RevocationsDirOpt = Annotated[Path | None, revocations_dir()]
JsonObjectOpt = Annotated[bool, json_flag("Print one JSON object.")]

# ---- `warrant policy check` and `compile` --------------------------------------------------
LabelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--labels",
        "-l",
        metavar="K=V[,K=V]",
        help="The endpoint's labels: keep only policies whose endpointSelector selects them.",
    ),
]
PolicyAnchorsDirOpt = Annotated[
    Path | None,
    anchors_dir(
        "Resolve spec.anchors here (the agent's anchor ConfigMap mount) instead of next to FILE."
    ),
]

# ---- `warrant issue`, `delegate` and `revoke` ----------------------------------------------
OpsOpt = Annotated[
    list[str] | None,
    typer.Option("--op", metavar="PATTERN", help="Operation or pattern (orders.*); repeat."),
]
RootOpsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--op", metavar="PATTERN", help="Operation or pattern (orders.*); repeat; required."
    ),
]
DstsOpt = Annotated[
    list[str] | None, destinations("Destination svc:port, svc:lo-hi or svc; repeat.")
]
RootDstsOpt = Annotated[
    list[str] | None, destinations("svc:port, svc:lo-hi or svc; repeat; required.")
]
NotBeforeOpt = Annotated[str | None, time_option("--not-before", "Start of validity.")]
MaxHopsOpt = Annotated[
    int | None,
    typer.Option("--max-hops", metavar="N", min=0, help="Most relay hops a packet may cross."),
]
AllowOpt = Annotated[
    list[str] | None, domains("--allow-domain", "Only these transit domains; repeat.")
]
RequireOpt = Annotated[
    list[str] | None, domains("--require-domain", "Transit domain that must be crossed.")
]
ForbidOpt = Annotated[
    list[str] | None, domains("--forbid-domain", "Transit domain never to cross.")
]
RateOpt = Annotated[
    int | None, typer.Option("--rate", metavar="PPS", min=0, help="Packets per second.")
]
OutOpt = Annotated[
    Path, typer.Option("-o", "--out", metavar="FILE", help="Output file.", readable=False)
]
AnchorKeyOpt = Annotated[Path, secret_key("Anchor secret key file.", "--anchor-key")]
Base64Opt = Annotated[bool, typer.Option("--base64", help="Write base64 text instead of raw CBOR.")]
