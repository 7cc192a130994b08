"""The datapath agent: user space for the kernel's fast path.

The kernel decides every DATA packet (SPEC 6.1 steps 1-7) and passes INITs up.
The agent owns the Warrant port's UDP socket.  On it arrive, by plain socket
delivery, the INITs (the kernel passes them) and the DATA packets the kernel
admitted.  The agent's `Receiver` keeps its sessions in a `KernelSessionStore`:
the pinned session map is the one session table, so an admitted INIT is a
session written into the kernel's maps, and expiry, revocation and policy
re-evaluation delete kernel entries through the same store.  A DATA packet on
the socket is not judged again (`Receiver.admitted_data`): its payload is
opened (AEAD) and handed on with its authority.  Only DATA that can have passed
the program is: a datagram that arrived on an interface the program does not
run on (IP_PKTINFO, IPV6_PKTINFO), or from this host itself over loopback (a
local source address), was judged by nobody and is dropped (UNPARSED_FRAME).
Each port has an IPv4 and an IPv6 socket (`open_sockets`; the kernel judges
both families alike); a reply leaves by the socket its datagram came in on.  Why
plain socket delivery rather than a ring buffer or AF_XDP: INITs are rare
(one per session), large (a credential chain of up to 4 KiB) and need a reply
path (REJECT, COOKIE) from the Warrant port; the socket gives all three with no
copy code in the kernel, and the kernel has already dropped everything that
is not an INIT or an admitted packet of a live session, so the socket only
sees work the agent must do anyway.

Observability: every verdict becomes a Hubble-shaped flow record
(`warrant.integration.flow.record`): user-space verdicts as they happen, kernel drops from
the ring buffer (`kernel_outcomes`, drained every MAINTENANCE_S).  Records go
to a `FlowStore` (`warrant observe --store PATH` reads it) and are counted in
`Metrics` (Prometheus), each when the Agent is given one.  Admitted DATA is
recorded once, by user space, when it reaches the socket; kernel admit events
(a sample) are not turned into records, so nothing is counted twice.

Revocation: with a `RevocationWatcher` (`--revocations DIR`) the agent reloads
the signed lists when the directory changes; the sessions they revoke leave the
kernel map at once, so their next DATA is dropped in the kernel
(UNKNOWN_SESSION, with a REJECT), and new INITs of a revoked credential are
refused REVOKED.

State: maps are pinned (loader.PIN_ROOT), the program stays attached when the
agent dies, and a restarted agent reopens the same maps: enforcement never
stops.  Sessions survive too: the store keeps each session's resumption record
(AEAD key, credential, claim, path) in a pinned kernel map, and a restarted
agent adopts the kernel's sessions from them (`KernelSessionStore.adopt`: the
chain verified again), so their next DATA is opened and delivered.  A session
that cannot be adopted is removed: its sender gets UNKNOWN_SESSION with a
REJECT and opens a new session (SPEC 6.4).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import json
import select
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import nacl.signing

from ..core.admission import Policy, PolicyError
from ..core.constants import MAX_DATAGRAM, OFF_SEQ, OFF_SESSION_ID, Kind, Reason, Verdict
from ..core.receiver import Outcome, Receiver
from ..integration import flow
from ..integration.crd_policy import PolicySource
from ..integration.flowstore import FlowSink, FlowStore
from ..integration.metrics import Metrics
from ..integration.revocations import RevocationWatcher
from .kernel_store import KernelSessionStore
from .loader import PIN_ROOT, Datapath, Event

MAINTENANCE_S = 0.2  # expire sessions and drain kernel events this often
KERNEL_SYNC_S = 5.0  # reconcile with the whole session map this often (~16 us per entry)
IP_PKTINFO = 8  # linux/in.h (the socket module does not export it)
_PKTINFO_SPACE = socket.CMSG_SPACE(20)  # struct in6_pktinfo, the larger of the two
# IPv6 missing from this host (no module, disabled): the agent serves IPv4 alone
_NO_IPV6 = frozenset({errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT})
_ANY = frozenset({"", "0.0.0.0", "::"})  # --host values that mean every address of both families
KERNEL_DETAIL = "dropped in the kernel"
# Reasons the kernel gives after it parsed a DATA header: the event's session id and
# sequence number are the packet's (before that, they are zero and mean nothing).
_AFTER_PARSE = frozenset({
    Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED, Reason.PORT_MISMATCH, Reason.RATE_LIMITED,
    Reason.BAD_MAC, Reason.HOP_CHAIN_BROKEN, Reason.REPLAY, Reason.TOO_OLD,
})  # fmt: skip

_KERNEL_LOST = frozenset({Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED})
Address = tuple[str, int]
# a datagram's source as recvmsg gives it: IPv6 adds flowinfo and scope id (a link-local
# peer is answered through its scope)
Source = tuple[str, int] | tuple[str, int, int, int]
KernelOutcome = tuple[Outcome, Address, Address]


@dataclass
class AgentStats:
    datagrams: int = 0
    installed: int = 0
    delivered: int = 0
    data_judged: int = 0  # DATA run through the Python receiver's checks: stays 0
    data_opened: int = 0  # kernel-admitted DATA whose payload was opened here
    data_unenforced: int = 0  # DATA that arrived where the datapath does not run: dropped
    revoked: int = 0
    policy_ended: int = 0  # live sessions a reloaded policy refused
    expired: int = 0
    kernel_events: int = 0
    kernel_drops: int = 0
    flows: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Agent:
    def __init__(
        self,
        key: nacl.signing.SigningKey,
        policy: Policy,
        ifindex: int,
        ports: Iterable[int],
        *,
        host: str = "0.0.0.0",
        attach: str = "xdp",
        xdp_mode: str = "auto",
        pin_root: str = PIN_ROOT,
        out: TextIO = sys.stdout,
        events: bool = False,
        deliver: Callable[[Outcome, tuple[str, int]], None] | None = None,
        flows: FlowStore | None = None,
        metrics: Metrics | None = None,
        node: str = "",
        policy_watcher: PolicySource | None = None,
        revocations: RevocationWatcher | None = None,
    ) -> None:
        """`flows`: write a flow record for every verdict into this store; `metrics`: count
        every verdict there and expose sessions and the kernel's counters; `node`: the
        records' `node_name`.  All three are optional (None: no records, no metrics)."""
        self.ports = sorted(set(ports))
        if not self.ports:
            raise ValueError("at least one Warrant port is needed")
        self.dp = Datapath.open(pin_root=pin_root)
        limits = policy.limits
        self.store = KernelSessionStore(self.dp, limits.max_sessions,
                                        limits.max_sessions_per_holder)  # fmt: skip
        self.receiver = Receiver(key, policy, started_at=time.time(), sessions=self.store)
        self.dp.set_ports(self.ports)
        self.dp.set_time(None)  # live kernel clock: keeps running when the agent is gone
        # Interfaces the program runs on: DATA arriving anywhere else (another interface,
        # loopback) was judged by nobody and is dropped, never just opened.
        self.enforced: set[int] = set()
        self.enforce(ifindex, attach, xdp_mode)
        self._next_sync = 0.0
        self.out = out
        self._local_addresses: set[str] = set()
        self._local_error = False
        self._read_local_addresses()
        self.socks = open_sockets(host, self.ports, lambda why: self._emit("warning", warning=why))
        self.events = events
        self.deliver = deliver
        self.stats = AgentStats()
        self.node = node
        self.flow_store = flows
        self._sink = FlowSink(flows) if flows is not None else None
        self.metrics = metrics
        self.policy_watcher = policy_watcher
        self.revocations = revocations
        if metrics is not None:
            metrics.track(sessions=lambda: len(self.receiver.sessions), queue_depth=lambda: 0)
            metrics.track_datapath(self.dp.counters)
        self._reload_revocations()  # before the first INIT is judged, and before adoption
        # sessions an earlier agent opened: resumed from their kernel records (re-verified
        # under this policy and these revocation lists), the others removed
        adopted, refused = self.store.adopt(self.receiver.verifier.verify, time.time())
        # and judged by this policy's rules as a reload would (deny, allow, path): the
        # records re-verify the chain only
        for e in self.receiver.set_policy(self.receiver.policy, time.time()):
            adopted.remove(e.session)
            refused[e.session.session_id] = f"policy: {e.reason.name}"
        self._emit("attached", ifindex=ifindex, mode=attach, ports=self.ports, pin_root=pin_root,
                   reused_sessions=len(adopted),
                   dropped_sessions={sid.hex(): why for sid, why in refused.items()})  # fmt: skip

    def _emit(self, what: str, **fields: Any) -> None:
        self.out.write(json.dumps({"agent": what, "time": round(time.time(), 3), **fields}) + "\n")
        self.out.flush()

    def _bypassed(self, host: str, ifindex: int | None) -> str:
        """Why a DATA datagram cannot have passed the datapath ('' when it did): it arrived
        on an interface the program does not run on, or it was sent from this host (over
        loopback, whatever interface the kernel then reports: remote packets with a local
        source address are dropped by the kernel as martians, so a local source means a
        local sender)."""
        if ifindex not in self.enforced:
            return f"DATA on ifindex {ifindex}, where the datapath does not run"
        if host.split("%", 1)[0] in self._local_addresses:  # a link-local source has %scope
            return f"DATA from this host ({host}) over loopback, not through the datapath"
        return ""

    def _read_local_addresses(self) -> None:
        """This namespace's local addresses, IPv4 and IPv6, refreshed at every maintenance
        tick.  No /proc/net/if_inet6 means IPv6 is off here: no IPv6 address is local."""
        try:
            local = local_ipv4(Path("/proc/net/fib_trie").read_text())
            with contextlib.suppress(FileNotFoundError):
                local |= local_ipv6(Path("/proc/net/if_inet6").read_text())
        except OSError as exc:
            if not self._local_error:
                self._emit("error", error=f"cannot read local addresses: {exc}; DATA sent from "
                           "this host over loopback cannot be told apart")  # fmt: skip
            self._local_error = True
            return
        self._local_addresses = local | {"::1"}

    def enforce(self, ifindex: int, attach: str = "xdp", xdp_mode: str = "auto") -> None:
        """Attach the program to one more interface; DATA arriving there is the kernel's."""
        if attach == "tc":
            self.dp.attach_tc(ifindex)
        else:
            self.dp.attach_xdp(ifindex, xdp_mode)
        self.enforced.add(ifindex)

    # ---- one datagram ----------------------------------------------------------------------
    @staticmethod
    def receive(sock: socket.socket) -> tuple[bytes, Source, int | None]:
        """One datagram: (data, source, ingress ifindex or None when the kernel gave none).
        Raises BlockingIOError when there is none."""
        data, anc, _, source = sock.recvmsg(MAX_DATAGRAM, _PKTINFO_SPACE)
        ifindex = None
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 4:
                ifindex = int.from_bytes(value[:4], sys.byteorder)  # struct in_pktinfo
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 20:
                # struct in6_pktinfo: the 16-byte destination address, then the ifindex
                ifindex = int.from_bytes(value[16:20], sys.byteorder)
        return data, source, ifindex

    def handle(self, sock: socket.socket, data: bytes, source: Source,
               ifindex: int | None = None) -> Outcome:  # fmt: skip
        """Judge one datagram; `ifindex`: the interface it arrived on (`receive`)."""
        port = sock.getsockname()[1]
        now = time.time()
        started = time.perf_counter()
        peer: Address = (source[0], source[1])  # what the receiver keys cookies and limits on
        is_data = len(data) > 1 and data[1] == Kind.DATA
        bypass = self._bypassed(peer[0], ifindex) if is_data else ""
        if bypass:  # nobody judged it, so it is refused (never just opened)
            out = Outcome(Verdict.DROP, Reason.UNPARSED_FRAME, "DATA", len(data), bypass)
            if len(data) >= OFF_SEQ + 8:  # the ids it claims, unchecked, for the record
                out.session_id = data[OFF_SESSION_ID:OFF_SEQ]
                out.seq = int.from_bytes(data[OFF_SEQ : OFF_SEQ + 8], "big")
            self.stats.data_unenforced += 1
        elif is_data:  # the kernel admitted (and counted) it: open, no re-check
            out = self.receiver.admitted_data(data, peer, now)
            self.stats.data_opened += 1
        else:
            out = self.receiver.handle(data, peer, port, now)
            self.stats.data_judged += out.kind == Kind.DATA.name
        cost = time.perf_counter() - started
        self.stats.datagrams += 1
        self.stats.by_reason[out.reason.name] = self.stats.by_reason.get(out.reason.name, 0) + 1
        self._emit(
            "socket", kind=out.kind, verdict=out.verdict.name, reason=out.reason.name,
            session_id=out.session_id.hex() if out.session_id else None, seq=out.seq,
            source=_host_port(peer), port=port,
        )  # fmt: skip
        # the kernel counted it admitted; a drop here (payload fails to open) is user space's
        counted = is_data and not bypass and out.verdict == Verdict.ADMIT
        self.record(out, peer, (sock.getsockname()[0], port), now, cost, in_kernel=counted)
        if out.reply is not None:  # the socket it came in on: the family, and the scope, fit
            sock.sendto(out.reply, source)
        if out.verdict != Verdict.ADMIT or out.session_id is None:
            return out
        if out.kind == Kind.INIT.name:  # the store wrote it into the kernel's maps
            session = self.store.admitted(out.session_id)
            if session is not None:
                self.stats.installed += 1
                self._emit("installed", session_id=session.session_id.hex(), port=session.port,
                           hops=len(session.path), expires=session.expires)  # fmt: skip
        if out.payload is not None:
            self.stats.delivered += 1
            if self.deliver is not None:
                self.deliver(out, peer)
        return out

    # ---- housekeeping ------------------------------------------------------------------------
    def maintain(self) -> None:
        now = time.time()
        self._read_local_addresses()
        self._reload_policy()
        self._reload_revocations()
        ended = self.store.expire(now)
        if now >= self._next_sync:  # a pass over the kernel map: seldom
            ended += self.store.sync(now)  # the kernel's own removals, and orphans
            self._next_sync = now + KERNEL_SYNC_S
        for s in ended:
            self.stats.expired += 1
            self._emit("expired", session_id=s.session_id.hex())
        self.kernel_outcomes()
        if self._sink is not None:
            self._sink.flush()

    def _reload_policy(self) -> None:
        """Adopt a changed policy: live sessions it refuses leave the kernel map now (their
        next DATA is dropped there), the others stay.  An invalid file leaves the running
        policy in force."""
        if self.policy_watcher is None:
            return
        try:
            policy = self.policy_watcher.poll()
        except PolicyError as exc:
            self._emit("policy-error", error=str(exc), kept="previous policy")
            return
        if policy is not None:
            ended = self.receiver.set_policy(policy, time.time())
            self.stats.policy_ended += len(ended)
            self._emit("policy-reloaded", path=str(self.policy_watcher.path),
                       rules=len(policy.model.rules), sessions=len(self.receiver.sessions),
                       ended=[e.session.session_id.hex() for e in ended],
                       why={e.session.session_id.hex(): f"{e.reason.name}: {e.detail}"
                            if e.detail else e.reason.name for e in ended})  # fmt: skip

    def _reload_revocations(self) -> None:
        """Adopt changed revocation lists: their sessions leave the kernel map now.  A
        refused list is reported and the previous lists stay in force."""
        if self.revocations is None:
            return
        store, errors = self.revocations.poll()
        for error in errors:
            self._emit("revocation-error", error=error, kept="previous lists")
        if store is None:
            return
        ended = self.receiver.revoke(store, time.time())
        self.stats.revoked += len(ended)
        self._emit("revocations-loaded", directory=str(self.revocations.directory),
                   lists=len(store.lists), ended=[s.session_id.hex() for s in ended])  # fmt: skip

    # ---- kernel verdicts -----------------------------------------------------------------------
    def kernel_outcomes(self) -> list[KernelOutcome]:
        """Drain the kernel's events and turn every drop into an `Outcome`, with the source
        and destination (address, port) of its packet.  Each is also recorded (flow store,
        metrics) like a user-space verdict.  Admit events (a sample) and PASS events are
        drained but not returned: admitted packets are opened, and recorded, when they
        reach the socket.  A drop for a session the kernel no longer has (UNKNOWN_SESSION,
        SESSION_EXPIRED) ends the Python side of that session now, not at the next sync."""
        evs = self.dp.events()
        self.stats.kernel_events += len(evs)
        out: list[KernelOutcome] = []
        for ev in evs:
            if self.events:
                self._emit("kernel", **_event_fields(ev))
            if ev.verdict != Verdict.DROP:
                continue
            o = self.kernel_outcome(ev)
            source = (ev.source_ip, ev.sport)
            dest = (ev.destination_ip, ev.dport)
            when = self.dp.wall_time(ev.time_ns) if ev.time_ns else time.time()
            self.record(o, source, dest, when, in_kernel=True)
            out.append((o, source, dest))
            if o.authority is not None and ev.reason in _KERNEL_LOST:
                assert o.session_id is not None
                if self.store.get(o.session_id) is None:  # one map lookup: gone, forgotten
                    self.stats.expired += 1
                    self._emit("expired", session_id=o.session_id.hex())
        self.stats.kernel_drops += len(out)
        return out

    def kernel_outcome(self, ev: Event) -> Outcome:
        """The Outcome of one kernel drop event (with the authority of its session, when
        this agent's receiver knows the session)."""
        parsed = ev.kind == Kind.DATA and ev.reason in _AFTER_PARSE
        sid = ev.session_id if parsed else None
        session = self.store.admitted(sid) if sid is not None else None
        return Outcome(
            Verdict.DROP, ev.reason, ev.kind_name, ev.length, KERNEL_DETAIL,
            authority=session.authority if session is not None else None,
            session_id=sid, seq=ev.seq if parsed else None,
        )  # fmt: skip

    def record(self, out: Outcome, source: Address, dest: Address, now: float,
               cost: float | None = None, *, in_kernel: bool = False) -> None:  # fmt: skip
        """One verdict into the flow store and the metrics (whichever the agent has);
        `cost`: seconds user space spent judging it (the packet_cost histogram)."""
        if self.metrics is not None:
            # a verdict the kernel made is in its counters map already: not counted again
            self.metrics.observe_outcome(out, cost, in_kernel=in_kernel)
        if self._sink is not None:
            self._sink(flow.record(out, source, dest, now, self.node))
            self.stats.flows += 1

    def _kernel_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (_, reason), (packets, _) in self.dp.counters().items():
            counts[reason.name] = counts.get(reason.name, 0) + packets
        return counts

    def run(self, duration: float | None = None) -> None:
        end = None if duration is None else time.monotonic() + duration
        next_maintenance = 0.0
        while end is None or time.monotonic() < end:
            ready, _, _ = select.select(self.socks, [], [], MAINTENANCE_S)
            for sock in ready:
                try:
                    data, source, ifindex = self.receive(sock)
                except BlockingIOError:
                    continue
                self.handle(sock, data, source, ifindex)
            if time.monotonic() >= next_maintenance:
                self.maintain()
                next_maintenance = time.monotonic() + MAINTENANCE_S

    def close(self, detach: bool = False, ifindex: int | None = None, attach: str = "xdp") -> None:
        """Close sockets; enforcement stays unless detach=True."""
        with contextlib.suppress(Exception):  # the last kernel verdicts into the store
            self.kernel_outcomes()
        self._emit("stats", datagrams=self.stats.datagrams, data_judged=self.stats.data_judged,
                   data_opened=self.stats.data_opened, delivered=self.stats.delivered,
                   data_unenforced=self.stats.data_unenforced,
                   installed=self.stats.installed, revoked=self.stats.revoked,
                   receiver_by_reason={r.name: n for r, n in self.receiver.stats.by_reason.items()},
                   kernel=self._kernel_counts())  # fmt: skip
        if self._sink is not None:
            self._sink.flush()
        for s in self.socks:
            s.close()
        if detach and ifindex is not None:
            if attach == "tc":
                # its own pin root: the tcx link is found there without CAP_SYS_ADMIN
                Datapath.detach_tc(ifindex, self.dp.pin_root or PIN_ROOT)
            else:
                Datapath.detach_xdp(ifindex)
        self.dp.close()


def open_sockets(
    host: str, ports: Iterable[int], warn: Callable[[str], None]
) -> list[socket.socket]:
    """The Warrant ports' sockets, each reporting its datagrams' ingress interface.
    `host`: an IPv4 literal or name binds IPv4 only, an IPv6 literal IPv6 only, and a
    wildcard ("0.0.0.0", the default, "::" or "") both families, each port twice: IPv4
    "0.0.0.0" and IPv6 "::" (IPV6_V6ONLY, so the two share the port).  With a wildcard,
    IPv6 missing from the host leaves IPv4 alone, said once through `warn`; any other
    failure raises."""
    if host in _ANY:
        binds = [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]
    else:
        try:
            v6 = ipaddress.ip_address(host).version == 6
        except ValueError:  # a name: resolved for IPv4, as the agent always did
            v6 = False
        binds = [(socket.AF_INET6 if v6 else socket.AF_INET, host)]
    socks: list[socket.socket] = []
    try:
        for port in ports:
            for family, address in list(binds):
                try:
                    socks.append(_bound(family, address, port))
                except OSError as exc:
                    if len(binds) == 1 or family != socket.AF_INET6 or exc.errno not in _NO_IPV6:
                        raise
                    binds.remove((family, address))
                    warn(f"no IPv6 here ({exc.strerror}): the Warrant ports are served over "
                         "IPv4 only")  # fmt: skip
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _bound(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # IPv4 has its own socket
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)  # ingress ifindex
        else:
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)  # each datagram's ingress ifindex
        s.bind((host, port))
    except BaseException:
        s.close()
        raise
    return s


def local_ipv4(fib_trie: str) -> set[str]:
    """The local IPv4 addresses in /proc/net/fib_trie (the kernel's LOCAL routes)."""
    return {
        prev.split("|--")[1].strip()
        for prev, line in itertools.pairwise(fib_trie.splitlines())
        if line.strip() == "/32 host LOCAL" and "|--" in prev
    }


def local_ipv6(if_inet6: str) -> set[str]:
    """The IPv6 addresses in /proc/net/if_inet6 (32 hex digits first on each line), in the
    form a socket reports a source address in (compressed, lower case, no scope)."""
    out = set()
    for fields in map(str.split, if_inet6.splitlines()):
        if fields and len(fields[0]) == 32:
            with contextlib.suppress(ValueError):  # not hex: not an address line
                out.add(ipaddress.IPv6Address(int(fields[0], 16)).compressed)
    return out


def _host_port(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _event_fields(ev: Event) -> dict[str, Any]:
    return {
        "verdict": ev.verdict.name,
        "reason": ev.reason.name,
        "kind": ev.kind_name,
        "session_id": ev.session_id.hex(),
        "seq": ev.seq,
        "source": _host_port((ev.source_ip, ev.sport)),
        "destination": _host_port((ev.destination_ip, ev.dport)),
        "hops": ev.hop_count,
        "length": ev.length,
    }
