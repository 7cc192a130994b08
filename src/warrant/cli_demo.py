"""CLI: `warrant demo`, the main job on the embedded default world."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from . import demo


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        user_space: bool = typer.Option(
            True,
            "--user-space/--kernel",
            help="Run on loopback in user space (no root, no XDP).",
        ),
        no_live: bool = typer.Option(False, "--no-live", help="Print the table once at the end."),
    ) -> None:
        """Run the scripted scenario: governed traffic, attacks, and why each verdict fell."""
        console = Console()
        if not user_space:
            raise typer.BadParameter("the kernel (XDP) mode is not available yet; use --user-space")
        result = asyncio.run(demo.run_user_space(console, live=not no_live and console.is_terminal))
        raise typer.Exit(0 if result.passed else 1)
