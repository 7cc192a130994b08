"""CLI: `warrant relay`, a forwarder that appends provable hops.

    warrant relay --listen 0.0.0.0:7000 --forward 10.0.2.2:8443 \\
        --domain partner.net --key relay.sec --receiver-key receiver.pub \\
        [--next-hop-key next.pub] [-v]

It prints one line on stderr when it is ready, logs every drop with its
reason under `-v`, and on SIGTERM or Ctrl-C prints its counters as one JSON
object on stdout and exits 0.  Bad input is one red line on stderr, exit 2.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ..core.anchors import TrustStore
from ..core.errors import WarrantError
from ..core.keys import KeyFormatError
from ..core.rights import check_domain
from ..integration.revocations import RevocationWatcher
from ..shells.relay import (
    DEFAULT_INIT_RATE,
    DEFAULT_MAX_SESSIONS,
    RelayServer,
    describe,
    make_relay,
    parse_hostport,
    run,
)
from ..shells.relay import log as relay_log
from . import options

err = Console(stderr=True, highlight=False)


def _fail(line: str) -> typer.Exit:
    err.print(f"[red]error[/red] {escape(' '.join(line.split()))}", soft_wrap=True)
    return typer.Exit(2)


def relay_command(
    listen: Annotated[
        str, typer.Option("--listen", metavar="HOST:PORT", help="Address senders send to.")
    ],
    forward: Annotated[
        str,
        typer.Option("--forward", metavar="HOST:PORT", help="Next relay or the receiver."),
    ],
    domain: Annotated[str, typer.Option("--domain", help="Transit domain this relay speaks for.")],
    key: Annotated[Path, options.secret_key("This relay's secret key file.")],
    receiver_key: Annotated[
        str, options.public_key("--receiver-key", "Receiver public key file (or string).")
    ],
    next_hop_key: Annotated[
        str | None,
        options.public_key(
            "--next-hop-key",
            "Public key of the next relay (file or string); default: the receiver.",
        ),
    ] = None,
    max_sessions: Annotated[
        int,
        typer.Option("--max-sessions", min=1, help="Sessions whose replies are routed back."),
    ] = DEFAULT_MAX_SESSIONS,
    init_rate: Annotated[
        float,
        typer.Option(
            "--init-rate",
            min=0,
            metavar="PER_S",
            help="Session openings per second per source address (0: no limit).",
        ),
    ] = DEFAULT_INIT_RATE,
    verbose: Annotated[bool, options.verbose("Log every drop.")] = False,
    revocations: Annotated[
        Path | None,
        options.revocations_dir(
            "Directory of signed revocation lists, reloaded when it changes: "
            "revoked credentials' INITs and sessions are not forwarded (needs --anchors)."
        ),
    ] = None,
    anchors: Annotated[
        Path | None, options.anchors_file("Trust anchors that sign the revocation lists.")
    ] = None,
) -> None:
    """Forward Warrant packets, appending this relay's hop; route replies back."""
    from .authority import load_public_key, load_secret_key

    try:
        listen_addr = parse_hostport(listen, "--listen")
        forward_addr = parse_hostport(forward, "--forward")
        check_domain(domain)
        secret = load_secret_key(key, "--key")
        receiver = load_public_key(receiver_key, "--receiver-key")
        next_hop = load_public_key(next_hop_key, "--next-hop-key") if next_hop_key else None
        relay = make_relay(secret, domain, receiver, next_hop)
        if revocations is not None and anchors is None:
            raise ValueError("--revocations needs --anchors (the lists' signers)")
        trust = TrustStore.load(anchors) if anchors is not None else None
        watcher = (
            RevocationWatcher(revocations, lambda: trust or TrustStore())
            if revocations is not None
            else None
        )
    except WarrantError as exc:
        raise _fail(f"{exc.reason.name} ({int(exc.reason)}): {exc.detail}") from None
    except (KeyFormatError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    relay_log.addHandler(handler)
    relay_log.setLevel(logging.DEBUG if verbose else logging.INFO)
    relay_log.propagate = False

    async def main() -> dict[str, object]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(server: RelayServer) -> None:
            print(describe(server), file=sys.stderr, flush=True)

        stats = await run(
            relay,
            listen_addr,
            forward_addr,
            max_sessions=max_sessions,
            init_rate=init_rate or None,
            ready=ready,
            stop=stop,
            revocations=watcher,
            trust=trust,
        )
        return stats.as_dict()

    try:
        summary = asyncio.run(main())
    except OSError as exc:
        raise _fail(f"cannot serve: {exc.strerror or exc}") from None
    print(json.dumps(summary, separators=(",", ":")), flush=True)


def register(app: typer.Typer) -> None:
    app.command("relay")(relay_command)
