"""The `warrant` command line (one Typer app; each concern registers its commands)."""

from .main import app, main

__all__ = ["app", "main"]
