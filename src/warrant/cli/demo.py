"""CLI: `warrant demo`, the main job on the embedded default world."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..demo import runner as demo
from ..integration.flowstore import FlowStore


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        user_space: bool = typer.Option(
            True,
            "--user-space/--kernel",
            help="User space on loopback (no root), or the kernel (XDP) in the namespace lab (root).",
        ),
        no_live: bool = typer.Option(False, "--no-live", help="Print the table once at the end."),
        flows: Annotated[
            Path | None,
            typer.Option(
                "--flows",
                metavar="DB",
                help="Also keep every flow record in this store (for `warrant observe`).",
                readable=False,
            ),
        ] = None,
    ) -> None:
        """Run the scripted scenario: governed traffic, attacks, and why each verdict fell."""
        console = Console()
        live = not no_live and console.is_terminal
        runner = demo.run_user_space if user_space else demo.run_kernel
        result = asyncio.run(runner(console, live=live))
        if flows is not None:
            with FlowStore(flows) as store:
                store.add_many(result.flows)
            console.print(
                f"{len(result.flows)} flow records in {flows}: warrant observe --store {flows}"
            )
        raise typer.Exit(0 if result.passed else 1)
