"""`warrant` command line: one Typer app; each concern registers its commands.

Every failure the user can cause ends as one red line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

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

app = typer.Typer(
    name="warrant",
    help="Warrant: packets that carry their own authority.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

cli_authority.register(app)
cli_net.register(app)
cli_relay.register(app)
cli_agent.register(app)
cli_demo.register(app)
cli_lab.register(app)
cli_observe.register(app)
cli_policy.register(app)


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
