"""CLI: `warrant relay`, a forwarder that appends provable hops."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Placeholder until the relay command lands (issue 4)."""
