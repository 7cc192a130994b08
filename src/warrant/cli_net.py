"""CLI: listen, send and demo over UDP."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Placeholder until the endpoint commands land (issue 3)."""
