"""CLI: keys, anchors, issuing, delegating, inspecting, verifying and revoking credentials."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Placeholder until the authority commands land (issue 2)."""
