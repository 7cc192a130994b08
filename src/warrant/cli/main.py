"""`warrant` command line: one Typer app; each concern registers its commands.

Every failure the user can cause ends as one red line on stderr and a
non-zero exit code, never a traceback.  Conventions: `warrant --version`; `-h` and
`--help` on every command; `warrant --install-completion` / `--show-completion` for
bash, zsh, fish and PowerShell; colour only on a terminal, and never when NO_COLOR is
set (https://no-color.org).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..core.errors import WarrantError
from ..core.keys import KeyFormatError
from . import agent as cli_agent
from . import authority as cli_authority
from . import demo as cli_demo
from . import lab as cli_lab
from . import net as cli_net
from . import observe as cli_observe
from . import policy as cli_policy
from . import relay as cli_relay
from . import workload as cli_workload

app = typer.Typer(
    name="warrant",
    help="Warrant: packets that carry their own authority.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Rich colours only a terminal and honours NO_COLOR itself.
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"warrant {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Warrant: packets that carry their own authority."""
    if os.environ.get("NO_COLOR"):
        ctx.color = False  # click's own styling (typer.secho) follows NO_COLOR too


cli_authority.register(app)
cli_net.register(app)
cli_relay.register(app)
cli_agent.register(app)
cli_demo.register(app)
cli_lab.register(app)
cli_observe.register(app)
cli_policy.register(app)
cli_workload.register(app)


def _fail(message: str) -> None:
    """One line on stderr, whatever the message holds, then exit 2."""
    err.print(f"[red]error[/red] {escape(' '.join(message.split()))}", soft_wrap=True)
    sys.exit(2)


def main() -> None:
    try:
        app()
    except WarrantError as exc:
        _fail(f"{exc.reason.name} ({int(exc.reason)}): {exc.detail}")
    except (KeyFormatError, ValueError, OSError) as exc:
        _fail(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
