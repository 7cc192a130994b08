"""CLI: `warrant lab up | down | status`, the multi-domain namespace topology."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ..demo import topology


def register(app: typer.Typer) -> None:
    lab = typer.Typer(
        help="The multi-domain lab in network namespaces (needs root).", no_args_is_help=True
    )
    app.add_typer(lab, name="lab")
    console = Console()

    @lab.command("up")
    def up() -> None:
        """Create the namespaces, veth links and addresses (removes an existing lab first)."""
        topology.up()
        console.print("lab up: " + ", ".join(topology.NAMESPACES))

    @lab.command("down")
    def down() -> None:
        """Remove the lab."""
        removed = topology.down()
        console.print("lab down: " + (", ".join(removed) if removed else "nothing to remove"))

    @lab.command("status")
    def status() -> None:
        """Show the lab's namespaces and addresses."""
        topology.require_root()
        state = topology.status()
        if not state:
            console.print("lab is down")
            raise typer.Exit(1)
        table = Table(title="warrant lab")
        table.add_column("namespace")
        table.add_column("interfaces")
        for ns, lines in state.items():
            table.add_row(ns, "\n".join(lines))
        console.print(table)
