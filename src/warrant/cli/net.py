"""CLI: `warrant listen` and `warrant send` over UDP.

`listen` prints one line per admitted payload with the authority it arrived
under; `-v` adds a line per drop with its reason code, and per session opening
without a payload.  `--json` prints flow records instead, in Hubble's flow shape
only; `--payload` adds each admitted payload to its record as a `payload` field,
which is not part of that shape.  `--flows FILE` appends every flow record, admitted
or dropped, to FILE as JSON lines.  `--metrics HOST:PORT` serves Prometheus
metrics on http://HOST:PORT/metrics (port 0: any free port; the URL goes to stderr).

`send` opens a session (the first packet carries the credential and the first
payload) and sends MESSAGE (its words joined by spaces, or standard input with
`-`) `--count` times; it answers COOKIE and REJECT replies as they come.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from ..core import keys
from ..core.admission import Policy
from ..core.constants import MAX_DATAGRAM, Verdict
from ..core.credential import Credential
from ..core.errors import WarrantError
from ..core.receiver import Authority, Claim, Outcome, Receiver
from ..core.sender import Sender
from ..integration import flow
from ..integration.crd_policy import load_any
from ..integration.metrics import Metrics, MetricsServer, start_metrics_server
from ..integration.revocations import RevocationWatcher
from ..shells.endpoint import FlowFile, Listener, Message, connect, listen
from ..shells.endpoint import log as listen_log
from . import options
from .authority import load_public_key, load_secret_key, read_blob
from .options import ReceiverKeyOpt, RevocationsDirOpt

P = ParamSpec("P")
R = TypeVar("R")

MAX_PAYLOAD_SHOWN = 512  # characters of payload printed per line


def _fail(line: str) -> NoReturn:
    typer.echo("error " + " ".join(line.split()), err=True)
    raise typer.Exit(2)


def _guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """One line on stderr and exit 2 for every failure the user can cause."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except WarrantError as exc:
            _fail(f"{exc.reason.name} ({int(exc.reason)}): {exc.detail}")
        except (ValueError, OSError) as exc:
            _fail(str(exc))

    return wrapper


def parse_hostport(text: str, option: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdecimal() or not 0 < int(port) < 65536:
        raise ValueError(f"{option}: expected HOST:PORT, got {text!r}")
    return host, int(port)


# ---- rendering ------------------------------------------------------------------------
# Every string a peer chose (claim, credential, hop domains, refusal details, payload) is
# printed escaped: a newline or control character in it must not forge a log line.
def escape(text: str) -> str:
    """Printable ASCII kept (backslash doubled); anything else as its Python escape."""
    return "".join(
        c if " " <= c <= "~" and c != "\\" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def show_payload(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        shown = "hex:" + payload[: MAX_PAYLOAD_SHOWN // 2].hex()
    else:  # JSON escapes controls; separators such as U+2028 and U+0085 too, here
        shown = "".join(
            c if c.isprintable() else json.dumps(c)[1:-1]
            for c in json.dumps(text[:MAX_PAYLOAD_SHOWN], ensure_ascii=False)
        )
    if len(shown) > MAX_PAYLOAD_SHOWN or len(payload) > MAX_PAYLOAD_SHOWN:
        shown += f" ({len(payload)} bytes)"
    return shown


def show_authority(a: Authority) -> str:
    hops = ",".join(f"{escape(domain)}/{escape(relay)}" for domain, relay in a.hops) or "-"
    return (
        f"scope={escape(a.scope)} op={escape(a.operation)} dst={escape(a.service)}:{a.port} "
        f"holder={a.holder} issuer={a.issuer} depth={a.depth} hops={hops} "
        f"rule={escape(a.rule or '-')}"
    )


def show_source(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def admitted_line(msg: Message) -> str:
    return (
        f"ADMIT {show_source(msg.source)} {show_authority(msg.authority)} "
        f"session={msg.authority.session_id} seq={msg.seq} {show_payload(msg.payload)}"
    )


def outcome_line(out: Outcome, source: tuple[str, int]) -> str | None:
    """The `-v` line for a verdict that delivers no payload (None for delivered ones)."""
    if out.verdict == Verdict.ADMIT:
        if out.payload is not None or out.authority is None:
            return None
        return f"OPEN  {show_source(source)} {show_authority(out.authority)} session={out.authority.session_id}"
    sid = out.session_id.hex() if out.session_id else "-"
    line = (
        f"DROP  {show_source(source)} {out.kind} {out.reason.name} ({int(out.reason)}) "
        f"session={sid}"
    )
    return f"{line}: {escape(out.detail)}" if out.detail else line


# ---- listen -----------------------------------------------------------------------------
@_guarded
def listen_cmd(
    key: ReceiverKeyOpt,
    policy: Annotated[Path, options.policy_file("Admission policy file.")],
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, options.port("UDP port (0: any free port).")] = 8443,
    verbose: Annotated[
        bool, options.verbose("Also show drops (with reason) and openings.")
    ] = False,
    flows: Annotated[
        Path | None,
        typer.Option(
            "--flows", metavar="FILE", help="Append every flow record (JSON lines).", readable=False
        ),
    ] = None,
    as_json: Annotated[
        bool, options.json_flag("Print flow records (JSON lines) instead of text.")
    ] = False,
    with_payload: Annotated[
        bool,
        typer.Option(
            "--payload",
            help="With --json: add each admitted payload as a `payload` field "
            "({text: ...} or {base64: ...}; not part of Hubble's flow shape).",
        ),
    ] = False,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Exit after N admitted payloads.")
    ] = None,
    node: Annotated[str, typer.Option("--node", help="node_name in flow records.")] = "",
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            metavar="HOST:PORT",
            help="Serve Prometheus metrics on http://HOST:PORT/metrics (port 0: any).",
        ),
    ] = None,
    revocations: RevocationsDirOpt = None,
) -> None:
    """Receive Warrant traffic: print each admitted payload with its authority."""
    if with_payload and not as_json:
        raise ValueError("--payload goes with --json (text lines always show the payload)")
    receiver_key = load_secret_key(key, "--key")
    pol = load_any(policy)
    watcher = RevocationWatcher(revocations, lambda: pol.trust) if revocations else None
    if watcher is not None:  # reloads and refusals go to stderr, one line each
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        listen_log.addHandler(handler)
        listen_log.setLevel(logging.INFO)
        listen_log.propagate = False
    server = _start_metrics(metrics) if metrics is not None else None
    try:
        asyncio.run(
            _listen(receiver_key, pol, host, port, verbose, flows, as_json, count, node, watcher,
                    server.metrics if server is not None else None, with_payload)
        )  # fmt: skip
    finally:
        if server is not None:
            server.server.close()


@dataclasses.dataclass
class _Served:
    metrics: Metrics
    server: MetricsServer


def _start_metrics(address: str) -> _Served:
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"--metrics takes HOST:PORT, not {address!r}")
    m = Metrics()
    server = start_metrics_server(int(port_text), host.strip("[]") or "127.0.0.1", metrics=m)
    typer.echo(f"metrics on {server.url}", err=True)
    return _Served(m, server)


async def _listen(
    key: Any,
    policy: Policy,
    host: str,
    port: int,
    verbose: bool,
    flows: Path | None,
    as_json: bool,
    count: int | None,
    node: str,
    revocations: RevocationWatcher | None = None,
    metrics: Metrics | None = None,
    with_payload: bool = False,
) -> None:
    # On the millisecond, as INIT timestamps are: an INIT stamped in the first millisecond
    # after the start is not older than the receiver's state.
    receiver = Receiver(key, policy, started_at=int(time.time() * 1000) / 1000)
    sink = FlowFile(flows) if flows is not None else None
    on_flow = metrics.flow_sink(sink) if metrics is not None else sink
    if metrics is not None:
        metrics.track(sessions=lambda: len(receiver.sessions))

    def on_outcome(out: Outcome, source: tuple[str, int]) -> None:
        delivered = out.verdict == Verdict.ADMIT and out.payload is not None
        if as_json:
            if delivered or verbose:
                rec = flow.record(out, source, listener.address, time.time(), node)
                if with_payload and out.payload is not None:
                    rec["payload"] = _payload_json(out.payload)
                typer.echo(flow.to_json(rec))
        elif verbose:
            line = outcome_line(out, source)
            if line is not None:
                typer.echo(line)

    try:
        listener: Listener = await listen(
            host, port, receiver,
            on_flow=on_flow,
            on_outcome=on_outcome if (verbose or as_json) else None,
            node=node,
            revocations=revocations,
        )  # fmt: skip
    except OSError as exc:
        if sink is not None:
            sink.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, listener.close)
    bound = show_source(listener.address)
    scopes = ",".join(policy.trust.scopes()) or "none"
    typer.echo(
        f"listening on {bound} (receiver key id {keys.key_id(receiver.public).hex()}, "
        f"scopes {scopes})",
        err=True,
    )
    seen = 0
    try:
        async for msg in listener:
            if not as_json:  # --json printed the record as the verdict was made
                typer.echo(admitted_line(msg))
            seen += 1
            if count is not None and seen >= count:
                break
    finally:
        listener.close()
        if sink is not None:
            sink.close()


def _payload_json(payload: bytes) -> dict[str, str]:
    try:
        return {"text": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(payload).decode()}


# ---- send -------------------------------------------------------------------------------
@_guarded
def send_cmd(
    message: Annotated[
        list[str], typer.Argument(metavar="MESSAGE...", help="Payload words, or - for stdin.")
    ],
    key: Annotated[Path, options.secret_key("Holder secret key file.")],
    cred: Annotated[
        Path, typer.Option("--cred", metavar="CRED", help="Credential file.", readable=False)
    ],
    to: Annotated[str, typer.Option("--to", metavar="HOST:PORT", help="The receiver.")],
    receiver_key: Annotated[str, options.public_key("--receiver-key", "Receiver public key file.")],
    op: Annotated[str, typer.Option("--op", help="Operation claimed, e.g. orders.write.")],
    service: Annotated[str, typer.Option("--service", help="Service claimed, e.g. orders.")],
    via: Annotated[
        str | None, typer.Option("--via", metavar="HOST:PORT", help="First relay.")
    ] = None,
    via_key: Annotated[
        str | None, options.public_key("--via-key", "First relay's public key.")
    ] = None,
    count: Annotated[int, typer.Option("--count", min=1, help="Times to send MESSAGE.")] = 1,
    interval: Annotated[
        float, typer.Option("--interval", min=0.0, help="Seconds between sends.")
    ] = 0.0,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0.0, help="Seconds to answer replies after the last send."),
    ] = 0.3,
) -> None:
    """Send MESSAGE to a Warrant receiver under a credential."""
    if (via is None) != (via_key is None):
        raise ValueError("--via and --via-key go together")
    host, port = parse_hostport(to, "--to")
    dest = parse_hostport(via, "--via") if via is not None else (host, port)
    holder = load_secret_key(key, "--key")
    credential = read_blob(cred, "credential")
    Credential.decode(credential)  # refuse a malformed file here, not at the receiver
    receiver_public = load_public_key(receiver_key, "--receiver-key")
    via_public = load_public_key(via_key, "--via-key") if via_key is not None else None
    if message == ["-"]:
        payload = sys.stdin.buffer.read(MAX_DATAGRAM + 1)
    else:
        payload = " ".join(message).encode()
    if len(payload) > MAX_DATAGRAM:
        raise ValueError(f"payload too large (a datagram holds at most {MAX_DATAGRAM} bytes)")
    sender = Sender(
        holder, credential, receiver_public, Claim(op, service, port), next_hop_public=via_public
    )
    asyncio.run(_send(sender, dest, payload, count, interval, wait))


async def _send(
    sender: Sender,
    dest: tuple[str, int],
    payload: bytes,
    count: int,
    interval: float,
    wait: float,
) -> None:
    conn = await connect(dest[0], dest[1], sender)
    try:
        for i in range(count):
            if i and interval:
                await asyncio.sleep(interval)
            await conn.send(payload)
        await asyncio.sleep(wait)
    finally:
        conn.close()
    st = conn.stats
    sid = sender.session_id.hex() if sender.session_id else "-"
    line = (
        f"sent {st.sent} payload{'s' * (st.sent != 1)} to {show_source(dest)} "
        f"(session {sid}; {st.inits} INIT, {st.cookies} COOKIE and {st.rejects} REJECT)"
    )
    if st.errors:
        line += f"; {st.errors} socket errors (is anything listening there?)"
    typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("listen")(listen_cmd)
    app.command("send")(send_cmd)
