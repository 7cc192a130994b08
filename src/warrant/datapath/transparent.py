"""Transparent mode (SPEC 13): unmodified programs in a workload speak Warrant.

A *workload* is a network namespace attached to its node by a veth.  The node's agent
keeps a registry of workloads (host-side veth, address, holder key and credential; on
the receiving side the service it serves and the inner protocol/ports it accepts).

Sending node: `bpf/transparent_egress.c` on each registered workload veth encapsulates
the workload's IPv4 packets for a peer's prefix as transparent DATA in the kernel; a
packet with no live session is punted to this agent, which opens the session with an
INIT carrying that packet as its 0-RTT payload and installs the egress session.

Receiving node: `bpf/warrant_xdp.c` (TC on the uplink) judges DATA as always, then, for a
session bound here as transparent, checks the inner packet (`encap.h`) and delivers it
to the destination workload's veth.  This agent judges INITs with the core `Receiver`
(kernel session store), binds the session (inner source = the first packet's source,
destination = the registered workload serving the claim's service, protocol/ports =
that workload's `allow`), and delivers the INIT's first packet itself.

Also here: the Python reference of the transparent MAC and inner checks (`tp_mac`,
`inner_check`, `check_transparent`) that tests hold the kernel to, and `setup_pair`,
the two-node namespace topology tests and bench/transparent.py run on.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nacl.signing

from ..core import credential as cred_mod
from ..core import keys
from ..core.admission import Policy
from ..core.constants import (
    AEAD_TAG_LEN,
    DATA_HEADER_LEN,
    DP_REJECT_BURST,
    DP_REJECT_RATE,
    FLAG_DATA_INNER_IP,
    FLAG_DATA_TRAIN,
    INIT_FIXED_LEN,
    SESSION_MAX_LIFETIME,
    TP_CLAIM_OPERATION,
    TP_EG_ENCAP,
    TP_EG_ERROR,
    TP_EG_GSO,
    TP_EG_MALFORMED,
    TP_EG_PUNT,
    TP_EG_PUNT_LOST,
    TP_EG_SPOOFED,
    TP_EG_TOO_BIG,
    TP_EG_TRAIN,
    TP_ENCAP_OVERHEAD,
    TP_EPHEMERAL_MIN,
    TP_INNER_MIN,
    TP_MAC_INNER_LEN,
    TP_TRAIN_DESC_LEN,
    TP_TRAIN_MAX_SEGS,
    TP_TRAIN_OVERHEAD,
    VERSION,
    Kind,
    Reason,
    Verdict,
)
from ..core.errors import WarrantError
from ..core.mac import header_mac
from ..core.ratelimit import TokenBucket
from ..core.receiver import Claim, Receiver
from ..core.sender import REOPEN_MARGIN, Sender
from ..core.wire import RejectPacket, peek_kind
from ..integration.revocations import RevocationWatcher
from . import libbpf
from .workloads import (
    RegistryError,
    RegistryFile,
    RegistrySource,
    Workload,
    add_workload,
    parse_allow,
)

if TYPE_CHECKING:
    from .loader import Event

_log = logging.getLogger("warrant.transparent")

EGRESS_OUTCOMES = {
    TP_EG_ENCAP: "ENCAP", TP_EG_PUNT: "PUNT", TP_EG_PUNT_LOST: "PUNT_LOST",
    TP_EG_SPOOFED: "SPOOFED", TP_EG_GSO: "GSO", TP_EG_TOO_BIG: "TOO_BIG",
    TP_EG_MALFORMED: "MALFORMED", TP_EG_ERROR: "ERROR",
    TP_EG_TRAIN: "TRAIN",
}  # fmt: skip
# Seqs below this are the agent's own (punted packets that raced the egress install);
# the kernel's counter starts here, so the two never hand out the same number.
KERNEL_SEQ_START = 1 << 20
PROBE_DELAY = 0.02  # s between a probe INIT and the DATA that follows it (binding time)
# s after an INIT during which a REJECT for its session is taken for DATA that outran it
REJECT_GRACE = 0.5
# trains mode: the workload's largest super-packet, so that it and the 72 bytes in front
# fit one outer IPv4 datagram (65535)
TP_TRAIN_GSO_MAX_SIZE = 65535 - TP_TRAIN_OVERHEAD


# ---- reference: MAC and inner checks (bpf/encap.h) ------------------------------------
def tp_mac(k_mac: bytes, header20: bytes, inner: bytes) -> bytes:
    """SipHash-2-4-128 over header bytes [0,20) with hop_count 0 (flags kept) and the
    carried inner packet's first 40 bytes (SPEC 13.1)."""
    if len(inner) < TP_MAC_INNER_LEN:
        raise WarrantError(Reason.INNER_NOT_GRANTED, "inner packet carried in under 40 bytes")
    head = header20[:2] + b"\0" + header20[3:20]
    return header_mac(k_mac, head + inner[:TP_MAC_INNER_LEN])


def _ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def complete_checksum(inner: bytes) -> bytes:
    """The inner IPv4 packet with its TCP or UDP checksum computed in full.  A workload
    with transmit checksum offload (trains mode, SPEC 13.7) hands over packets whose
    checksum is only the pseudo-header part until a device completes it; a punted packet
    leaves through the agent, where no device will.  A complete checksum comes out as it
    went in; fragments and anything not TCP/UDP over IPv4 without options are returned
    unchanged."""
    if len(inner) < 20 or inner[0] != 0x45:
        return inner
    tot = struct.unpack_from(">H", inner, 2)[0]
    proto, frag = inner[9], struct.unpack_from(">H", inner, 6)[0] & 0x3FFF
    at = {socket.IPPROTO_TCP: 16, socket.IPPROTO_UDP: 6}.get(proto)
    if at is None or frag or not 20 + at + 2 <= tot <= len(inner):
        return inner
    seg = bytearray(inner[20:tot])
    seg[at : at + 2] = b"\0\0"
    pseudo = inner[12:20] + struct.pack(">BBH", 0, proto, len(seg))
    csum = ~_ones_sum(pseudo + bytes(seg)) & 0xFFFF
    if proto == socket.IPPROTO_UDP and csum == 0:
        csum = 0xFFFF  # RFC 768: zero means "no checksum"
    struct.pack_into(">H", seg, at, csum)
    return inner[:20] + bytes(seg) + inner[tot:]


def padded(inner: bytes) -> bytes:
    """The inner packet as carried: zero-padded to 40 bytes when shorter (SPEC 13.1)."""
    return inner + bytes(max(0, TP_MAC_INNER_LEN - len(inner)))


def transparent_data(session_id: bytes, seq: int, k_mac: bytes, inner: bytes) -> bytes:
    """A transparent DATA packet carrying `inner` (what the egress program builds)."""
    head = struct.pack(">BBBB8sQ", VERSION, Kind.DATA, 0, FLAG_DATA_INNER_IP, session_id, seq)
    carried = padded(inner)
    return head + tp_mac(k_mac, head, carried) + carried


@dataclass(frozen=True)
class Binding:
    """What the receiver bound at INIT for a transparent session (encap.h)."""

    inner_src: str
    inner_dst: str
    proto: int
    port_lo: int
    port_hi: int
    ifindex: int


def inner_check(b: Binding, inner: bytes) -> Reason:
    """The inner packet against the binding, in encap.h's order."""
    if len(inner) < TP_MAC_INNER_LEN or inner[0] != 0x45:
        return Reason.INNER_NOT_GRANTED
    tot = struct.unpack_from(">H", inner, 2)[0]
    if tot < TP_INNER_MIN or len(inner) != max(tot, TP_MAC_INNER_LEN):
        return Reason.INNER_NOT_GRANTED
    if inner[12:16] != socket.inet_aton(b.inner_src):
        return Reason.INNER_SOURCE_MISMATCH
    if inner[16:20] != socket.inet_aton(b.inner_dst) or inner[9] != b.proto:
        return Reason.INNER_NOT_GRANTED
    if b.proto not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return Reason.OK
    if struct.unpack_from(">H", inner, 6)[0] & 0x3FFF:
        return Reason.INNER_NOT_GRANTED
    dport = struct.unpack_from(">H", inner, 22)[0]
    return Reason.OK if b.port_lo <= dport <= b.port_hi else Reason.INNER_NOT_GRANTED


# ---- reference: segment trains (SPEC 13.7, bpf/encap.h) ---------------------------------
_TRAIN = struct.Struct(">IHBB")  # seq0, mss, segs, TCP flags
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80


def train_template(inner: bytes, seq0: int, flags: int) -> bytes:
    """The inner packet's first 40 bytes as the train MAC covers them: fields that
    segmentation or checksum offload change zeroed, TCP sequence number and flags those of
    segment 0 of the train."""
    t = bytearray(padded(inner)[:TP_MAC_INNER_LEN])
    t[2:6] = bytes(4)  # total length, identification
    t[10:12] = bytes(2)  # header checksum
    if t[9] == socket.IPPROTO_TCP:
        struct.pack_into(">I", t, 24, seq0)
        t[33] = flags
        t[36:38] = bytes(2)
    elif t[9] == socket.IPPROTO_UDP:
        t[24:28] = bytes(4)  # length, checksum
    return bytes(t)


def train_mac(k_mac: bytes, header20: bytes, desc: bytes, inner: bytes) -> bytes:
    """SipHash-2-4-128 over header bytes [0,20) (hop_count 0), the descriptor and the
    template (SPEC 13.7)."""
    seq0, _, _, flags = _TRAIN.unpack(desc)
    head = header20[:2] + b"\0" + header20[3:20]
    return header_mac(k_mac, head + desc + train_template(inner, seq0, flags))


def train_place(desc: bytes, inner: bytes, gso_size: int = 0) -> tuple[int, int] | None:
    """(first, count): the wire packets of the train this inner packet is, or None when
    no segmentation of the described train makes it (encap.h warrant_tp_train_place)."""
    seq0, mss, segs, full = _TRAIN.unpack(desc)
    if segs == 0 or len(inner) < TP_MAC_INNER_LEN:
        return None
    if inner[9] != socket.IPPROTO_TCP:
        return (0, 1) if (segs, mss, seq0, full) == (1, 0, 0, 0) else None
    tot, thl = struct.unpack_from(">H", inner, 2)[0], (inner[32] >> 4) * 4
    if thl < 20 or tot < 20 + thl:
        return None
    payload = tot - 20 - thl
    off = (struct.unpack_from(">I", inner, 24)[0] - seq0) & 0xFFFFFFFF
    f = inner[33]
    if segs == 1:
        return (0, 1) if mss == 0 and off == 0 and f == full else None
    if mss == 0:
        return None
    if gso_size:
        whole = gso_size == mss and off == 0 and f == full
        return (0, segs) if whole and (segs - 1) * mss < payload <= segs * mss else None
    if off % mss or off // mss >= segs:
        return None
    i = off // mss
    want = full
    if i < segs - 1:
        want &= ~(_FIN | _PSH)
        if payload != mss:
            return None
    elif not 0 < payload <= mss:
        return None
    return (i, 1) if f == want or (i > 0 and f == want & ~_CWR) else None


def transparent_train(session_id: bytes, seq: int, k_mac: bytes, inner: bytes,
                      gso_size: int = 0) -> bytes:  # fmt: skip
    """A train DATA packet carrying `inner` (what the egress program builds in trains
    mode): a TCP super-packet of segment size gso_size, or one packet (gso_size 0)."""
    seq0 = flags = mss = 0
    segs = 1
    if inner[9] == socket.IPPROTO_TCP:
        seq0, flags = struct.unpack_from(">I", inner, 24)[0], inner[33]
        if gso_size:
            payload = len(inner) - 20 - (inner[32] >> 4) * 4
            segs = -(-payload // gso_size)
            mss = gso_size if segs > 1 else 0
    desc = _TRAIN.pack(seq0, mss, segs, flags)
    head = struct.pack(">BBBB8sQ", VERSION, Kind.DATA, 0,
                       FLAG_DATA_INNER_IP | FLAG_DATA_TRAIN, session_id, seq)  # fmt: skip
    return head + train_mac(k_mac, head, desc, inner) + desc + inner


def check_transparent(packet: bytes, k_mac: bytes, binding: Binding | None,
                      gso_size: int = 0) -> Reason:  # fmt: skip
    """Steps 5 and 5a of a transparent DATA packet whose session (k_mac) was found, as the
    kernel runs them: no binding -> the ordinary MAC (flags covered) decides; else hop
    count 0, the transparent MAC (a train's, 13.7), then the inner checks.  gso_size: the
    segment size of a TC skb that holds several wire packets; only a whole train may."""
    return judge_transparent(packet, k_mac, binding, gso_size)[0]


def judge_transparent(packet: bytes, k_mac: bytes, binding: Binding | None,
                      gso_size: int = 0) -> tuple[Reason, int, int]:  # fmt: skip
    """check_transparent's reason and the wire packets (first, count) of the train the
    packet is, relative to its sequence number (0, 1 for anything but a train)."""
    flags = packet[3]
    both = FLAG_DATA_TRAIN | FLAG_DATA_INNER_IP
    # a merged frame is refused before its DATA header is parsed, unless it may be a train
    if gso_size and flags & both != both:
        return Reason.MERGED_FRAME, 0, 1
    if flags & FLAG_DATA_TRAIN and not flags & FLAG_DATA_INNER_IP:
        return Reason.MALFORMED, 0, 1
    is_train = binding is not None and flags & FLAG_DATA_TRAIN
    if gso_size and not is_train:
        return Reason.MERGED_FRAME, 0, 1
    if not is_train:
        return _check_one(packet, k_mac, binding), 0, 1
    assert binding is not None
    if packet[2]:
        return Reason.MALFORMED, 0, 1
    desc = packet[DATA_HEADER_LEN : DATA_HEADER_LEN + TP_TRAIN_DESC_LEN]
    inner = packet[DATA_HEADER_LEN + TP_TRAIN_DESC_LEN :]
    if len(desc) < TP_TRAIN_DESC_LEN or len(inner) < TP_MAC_INNER_LEN:
        return Reason.INNER_NOT_GRANTED, 0, 1
    place = train_place(desc, inner, gso_size)
    if place is None or train_mac(k_mac, packet[:20], desc, inner) != packet[20:36]:
        return Reason.BAD_MAC, 0, 1
    return inner_check(binding, inner), place[0], place[1]


def _check_one(packet: bytes, k_mac: bytes, binding: Binding | None) -> Reason:
    inner = packet[DATA_HEADER_LEN:]
    mac = packet[20:36]
    if binding is None or not packet[3] & FLAG_DATA_INNER_IP:
        ok = header_mac(k_mac, packet[:2] + b"\0" + packet[3:20]) == mac
        return Reason.OK if ok else Reason.BAD_MAC
    if packet[2]:
        return Reason.MALFORMED
    if len(inner) < TP_MAC_INNER_LEN:
        return Reason.INNER_NOT_GRANTED
    if tp_mac(k_mac, packet[:20], inner) != mac:
        return Reason.BAD_MAC
    return inner_check(binding, inner)


# ---- kernel map layouts (bpf/encap.h, bpf/transparent_egress.c) ------------------------
class BindingValue(ctypes.Structure):
    _fields_ = [
        ("inner_src", ctypes.c_uint32), ("inner_dst", ctypes.c_uint32),
        ("proto", ctypes.c_uint8), ("_pad0", ctypes.c_uint8),
        ("port_lo", ctypes.c_uint16), ("port_hi", ctypes.c_uint16), ("_pad1", ctypes.c_uint16),
        ("ifindex", ctypes.c_uint32), ("_pad2", ctypes.c_uint32),
        ("rate_interval_ns", ctypes.c_uint64), ("rate_tat", ctypes.c_uint64),
    ]  # fmt: skip


RATE_WINDOW_NS = 1_000_000_000  # encap.h: the kernel's rate bucket holds one second's worth


def rate_interval_ns(rate: float | None) -> int:
    """A credential's packet rate as the kernel's GCRA interval (encap.h warrant_tp_rate):
    0 for no rate, more than RATE_WINDOW_NS for a rate that admits nothing (0, or below
    one packet a second, as the receiver's TokenBucket(rate, rate) never holds a token)."""
    if rate is None:
        return 0
    if rate < 1:
        return 2**64 - 1
    return max(1, int(RATE_WINDOW_NS / rate))


class WorkloadValue(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


TP_TRAINS = 0x4  # WorkloadValue.flags: trains mode (transparent_egress.c)


class RouteKey(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint32)]


class PeerValue(ctypes.Structure):
    _fields_ = [
        ("node_addr", ctypes.c_uint32), ("local_addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16), ("sport", ctypes.c_uint16), ("uplink", ctypes.c_uint32),
    ]  # fmt: skip


class EgressKey(ctypes.Structure):
    _fields_ = [
        ("ifindex", ctypes.c_uint32), ("daddr", ctypes.c_uint32),  # inner destination
        ("dport", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("_pad", ctypes.c_uint8),
    ]  # fmt: skip


# (veth ifindex, inner destination, protocol, destination port): one session each
FlowKey = tuple[int, str, int, int]


def _flow_key(ifindex: int, inner: bytes) -> FlowKey:
    proto = inner[9]
    dport = struct.unpack_from(">H", inner, 22)[0] if proto in (6, 17) else 0
    return ifindex, socket.inet_ntoa(inner[16:20]), proto, min(dport, TP_EPHEMERAL_MIN)


def _egress_key(k: FlowKey) -> EgressKey:
    return EgressKey(k[0], _ip_u32(k[1]), k[3], k[2], 0)


class EgressSession(ctypes.Structure):
    _fields_ = [
        ("sid", ctypes.c_uint64), ("k_mac", ctypes.c_uint8 * 16),
        ("next_seq", ctypes.c_uint64), ("expires_ns", ctypes.c_uint64),
    ]  # fmt: skip


# ifindex, len, node_addr (network order), port, headers_only (a super-packet's first 40
# bytes: open the session with a probe, deliver nothing; transparent_egress.c)
_PUNT_HEAD = struct.Struct("<IIIHH")


def _ip_u32(addr: str) -> int:
    """An IPv4 address as the u32 the kernel stores in network order."""
    value: int = struct.unpack("<I", socket.inet_aton(addr))[0]
    return value


def _sid_u64(sid: bytes) -> int:
    value: int = struct.unpack("<Q", sid)[0]
    return value


_CLOCK_MONOTONIC_COARSE = 6  # Linux; the egress program's bpf_ktime_get_coarse_ns()


def _mono_coarse_ns() -> int:
    return time.clock_gettime_ns(_CLOCK_MONOTONIC_COARSE)


# ---- the node agent -----------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    prefix: str  # destination workloads behind the peer, e.g. "10.201.2.0/24"
    node_addr: str  # the peer node's Warrant address
    port: int  # its Warrant port
    receiver_public: str  # its receiver key, keys.encode_public
    service: str  # the claim's service for this peer


@dataclass
class AgentConfig:
    pin_root: str
    port: int
    local_addr: str
    uplink: str
    key: str  # node receiver secret key file
    policy: str  # receiver policy file
    registry: str
    peers: list[dict[str, Any]] = field(default_factory=list)
    stats: str = ""  # file the agent rewrites with its counters every second ("" = none)
    revocations: str = ""  # directory of revocation lists, reloaded on change ("" = none)
    # Trains mode (SPEC 13.7): workloads keep TSO/GSO and checksum offload; each packet
    # leaves stamped as a segment train, a TCP super-packet once for all its segments.
    trains: bool = False
    # The registry from WarrantWorkload objects of the Kubernetes API instead of the file:
    # a kubeconfig file or "in-cluster" ("" = the file `registry`); `node`: this node's
    # name, the spec.nodeName of the objects it takes.
    workloads_from_kube: str = ""
    node: str = ""


class TransparentAgent:
    """One node: egress for its registered workloads, ingress for transparent sessions."""

    def __init__(self, cfg: AgentConfig) -> None:
        from .kernel_store import KernelSessionStore
        from .loader import Datapath

        self.cfg = cfg
        self.peers = [Peer(**p) for p in cfg.peers]
        self.registry = self._open_registry()
        self.by_ifindex: dict[int, Workload] = {}
        self.dp = Datapath.open(pin_root=cfg.pin_root)
        self.uplink = socket.if_nametoindex(cfg.uplink)
        self.dp.set_ports([cfg.port])
        self.dp.attach_tc(self.uplink)
        self.bindings_fd = self.dp.obj.map_fd("warrant_tp_bindings")
        policy = Policy.load(Path(cfg.policy))
        self.store = KernelSessionStore(self.dp, policy.limits.max_sessions)
        self.receiver = Receiver(
            keys.load_secret(Path(cfg.key)), policy, started_at=time.time(), sessions=self.store
        )
        # bindings pinned by an agent before a restart: still ours to remove when they end
        self.bound: set[bytes] = {
            struct.pack("<Q", k.value) for k in libbpf.map_keys(self.bindings_fd, ctypes.c_uint64)
        }
        self.revocations = (
            RevocationWatcher(Path(cfg.revocations), lambda: self.receiver.policy.trust)
            if cfg.revocations
            else None
        )
        self._reload_revocations()
        # egress side
        libbpf.silence()
        from .build import build

        self.eg = libbpf.BpfObject(str(build("transparent_egress")))
        self.eg.set_pin_path("warrant_tp_egress_counters",
                             f"{cfg.pin_root}/warrant_tp_egress_counters")  # fmt: skip
        # pinned: a restarted agent finds its workloads' sessions (keys and counters) and
        # the kernel goes on stamping with them, no new INIT (SPEC 13.2)
        self.eg.set_pin_path("warrant_tp_egress_sessions",
                             f"{cfg.pin_root}/warrant_tp_egress_sessions")  # fmt: skip
        self.eg.load()
        self.eg_fd = self.eg.program_fd("warrant_tp_egress")
        self.senders: dict[FlowKey, Sender] = {}
        self.own_seq: dict[bytes, int] = {}
        self.opened_at: dict[bytes, float] = {}  # egress sessions younger than REJECT_GRACE
        # DATA that follows a probe INIT: (due, packet, destination)
        self.pending: list[tuple[float, bytes, tuple[str, int]]] = []
        self.mtu = _mtu(cfg.uplink)
        self.attached: set[int] = set()
        self.addresses: dict[int, str] = {}  # last address each veth was registered with
        self.stats: dict[str, int] = {}
        self._missing: set[str] = set()  # veths of registered workloads not (yet) here
        # sessions an earlier agent opened (a restart): resumed from their kernel records,
        # re-verified under this policy and these revocation lists; the others removed,
        # their bindings with them at the first _unbind_ended
        adopted, refused = self.store.adopt(self.receiver.verifier.verify, time.time())
        ended = self.receiver.set_policy(self.receiver.policy, time.time())  # rules too
        self.stats.update(sessions_adopted=len(adopted) - len(ended),
                          sessions_refused=len(refused) + len(ended))  # fmt: skip
        self._wanted = self.registry.poll()  # a file that does not parse stops the start
        self._apply_wanted()
        for p in self.peers:
            net = ipaddress.ip_network(p.prefix)
            libbpf.map_update(
                self.eg.map_fd("warrant_tp_routes"),
                RouteKey(net.prefixlen, _ip_u32(str(net.network_address))),
                PeerValue(_ip_u32(p.node_addr), _ip_u32(cfg.local_addr), p.port, cfg.port + 1,
                          self.uplink),
            )  # fmt: skip
        self.punts = libbpf.RingBuffer(self.eg.map_fd("warrant_tp_punts"))
        # Two sockets: INITs arrive at the Warrant port; this node's own sessions are sent
        # from port + 1, where REJECTs and COOKIEs come back (at the Warrant port this
        # node's datapath refuses them: UNKNOWN_KIND, SPEC 3).
        self.reject_bucket = TokenBucket(DP_REJECT_RATE, DP_REJECT_BURST, time.monotonic())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((cfg.local_addr, cfg.port))
        self.sock.setblocking(False)
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out.bind((cfg.local_addr, cfg.port + 1))
        self.out.setblocking(False)
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1
        self._write_stats()

    # ---- egress: a punted first packet -> INIT -------------------------------------------
    def on_punt(self, raw: bytes, now: float) -> None:
        ifindex, length, node_u32, port, headers_only = _PUNT_HEAD.unpack_from(raw)
        inner = raw[_PUNT_HEAD.size : _PUNT_HEAD.size + length]
        node_addr = socket.inet_ntoa(struct.pack("<I", node_u32))
        w = self.by_ifindex.get(ifindex)
        peer = next((p for p in self.peers if p.node_addr == node_addr and p.port == port), None)
        holder = w.holder() if w is not None else None
        if w is None or peer is None or holder is None:
            self._count("punt_no_credential")  # no authority: the packet goes nowhere
            return
        inner = complete_checksum(inner)
        # one session per workload and destination: the receiver binds one destination
        key = _flow_key(ifindex, inner)
        sender = self.senders.get(key)
        ek = _egress_key(key)
        es = EgressSession()
        live = libbpf.map_lookup(self.eg.map_fd("warrant_tp_egress_sessions"), ek, es)
        if (
            sender is not None
            and sender.session_id is not None
            and live
            and (es.expires_ns > _mono_coarse_ns())
        ):
            if headers_only:  # the session is open again: TCP resends the data
                return
            # punted before the egress session was installed: send it on that session
            sid = sender.session_id
            seq = self.own_seq.get(sid, 1)
            if seq < KERNEL_SEQ_START:
                self.own_seq[sid] = seq + 1
                pkt = transparent_data(sid, seq, bytes(es.k_mac), inner)
                self.out.sendto(pkt, (node_addr, port))
                self._count("punt_sent_as_data")
            return
        sender = Sender(holder[0], holder[1], keys.decode_public(peer.receiver_public),
                        Claim(TP_CLAIM_OPERATION, peer.service, peer.port))  # fmt: skip
        self.senders[key] = sender
        # The INIT must fit the uplink MTU unfragmented (receivers refuse fragments): a
        # packet too big to ride in it is announced by its first 40 bytes (the receiver
        # binds from them and delivers nothing) and follows as DATA once bound (SPEC 13.2).
        # A super-packet's headers (trains mode, 13.7) open the session the same way; the
        # kernel dropped its data, which TCP sends again.
        init_len = 28 + INIT_FIXED_LEN + len(holder[1]) + 64 + AEAD_TAG_LEN + 32 + len(inner)
        probe = bool(headers_only) or init_len > self.mtu
        init = sender.open(inner[:TP_MAC_INNER_LEN] if probe else inner, now)
        self.out.sendto(init, (node_addr, port))
        assert sender.session_id is not None
        sid = sender.session_id
        lifetime = SESSION_MAX_LIFETIME - REOPEN_MARGIN
        k_mac = sender._mac_key  # the kernel stamps the session's DATA: it needs the key
        if probe and headers_only:
            self._count("init_probe_headers")
        elif probe:
            self.own_seq[sid] = 2
            data = transparent_data(sid, 1, k_mac, inner)
            self.pending.append((time.monotonic() + PROBE_DELAY, data, (node_addr, port)))
            self._count("init_probe")
        value = EgressSession(_sid_u64(sid), (ctypes.c_uint8 * 16)(*k_mac), KERNEL_SEQ_START,
                              _mono_coarse_ns() + int(lifetime * 1e9))  # fmt: skip
        libbpf.map_update(self.eg.map_fd("warrant_tp_egress_sessions"), ek, value)
        now_mono = time.monotonic()
        self.opened_at = {s: t for s, t in self.opened_at.items() if now_mono - t < REJECT_GRACE}
        self.opened_at[sid] = now_mono
        self._count("init_sent")

    def on_reject(self, packet: bytes) -> None:
        """A REJECT for lost state: drop the egress session; the next packet opens anew.
        Not for a session opened less than REJECT_GRACE ago: its DATA outran its INIT
        (the receiver had not installed it yet), and reopening would only race again
        (and hand the workload a fresh rate bucket with every new session)."""
        rej = RejectPacket.decode(packet)
        opened = self.opened_at.get(rej.session_id)
        if opened is not None and time.monotonic() - opened < REJECT_GRACE:
            self._count("reject_young_ignored")
            return
        for key, s in list(self.senders.items()):
            if s.session_id == rej.session_id:
                del self.senders[key]
        # by the map, not the senders: a session opened before a restart has none here
        fd = self.eg.map_fd("warrant_tp_egress_sessions")
        for ek in libbpf.map_keys(fd, EgressKey):
            es = EgressSession()
            if libbpf.map_lookup(fd, ek, es) and es.sid == _sid_u64(rej.session_id):
                libbpf.map_delete(fd, ek)
                self._count("reject")

    def on_cookie(self, packet: bytes) -> None:
        """A receiver under load asks for a cookie: resend that INIT (with its payload)."""
        for s in self.senders.values():
            again = s.handle(packet, time.time())
            if again is not None:
                peer = next(p for p in self.peers if keys.key_id(
                    keys.decode_public(p.receiver_public)) == s.receiver_id)  # fmt: skip
                self.out.sendto(again, (peer.node_addr, peer.port))
                self._count("init_resent_with_cookie")
                return

    # ---- ingress: an INIT -> bind, deliver the first packet ----------------------------
    def on_init(self, packet: bytes, source: tuple[str, int], now: float) -> None:
        out = self.receiver.handle(packet, source, self.cfg.port, now)
        if out.verdict != Verdict.ADMIT or out.session_id is None:
            self._count(f"init_{out.reason.name}")
            return
        sid = out.session_id
        reason, binding = self._bind(out.authority, out.payload)
        if binding is None:
            self.store.remove(sid, now)  # admitted by the credential, not by this node
            self._count(f"init_{reason.name}")
            return
        session = self.store.get(sid)
        rate = session.bucket.rate if session is not None and session.bucket else None
        libbpf.map_update(self.bindings_fd, ctypes.c_uint64(_sid_u64(sid)), BindingValue(
            _ip_u32(binding.inner_src), _ip_u32(binding.inner_dst), binding.proto, 0,
            binding.port_lo, binding.port_hi, 0, binding.ifindex, 0,
            rate_interval_ns(rate), 0))  # fmt: skip
        self.bound.add(sid)
        assert out.payload is not None
        if struct.unpack_from(">H", out.payload, 2)[0] == len(out.payload):
            self.raw.sendto(out.payload, (binding.inner_dst, 0))
        self._count("init_bound")

    def _bind(self, authority: Any, payload: bytes | None) -> tuple[Reason, Binding | None]:
        if authority is None or authority.operation != TP_CLAIM_OPERATION or not payload:
            return Reason.INNER_NOT_GRANTED, None
        if len(payload) < TP_INNER_MIN or payload[0] != 0x45:
            return Reason.INNER_NOT_GRANTED, None
        # judged as carried (padded to 40); a probe (the first 40 bytes of a packet too
        # big for the INIT) by its headers as if whole; only a whole packet is delivered
        tot = struct.unpack_from(">H", payload, 2)[0]
        if tot > len(payload) == TP_MAC_INNER_LEN:
            payload = payload[:2] + struct.pack(">H", len(payload)) + payload[4:]
        payload = padded(payload)
        src, dst = socket.inet_ntoa(payload[12:16]), socket.inet_ntoa(payload[16:20])
        for ifindex, w in self.by_ifindex.items():
            if w.address != dst or w.service != authority.service:
                continue
            for a in w.allow:
                proto, lo, hi = parse_allow(a)
                b = Binding(src, dst, proto, lo, hi, ifindex)
                if inner_check(b, payload) == Reason.OK:
                    return Reason.OK, b
        return Reason.INNER_NOT_GRANTED, None

    def _open_registry(self) -> RegistrySource:
        if not self.cfg.workloads_from_kube:
            return RegistryFile(Path(self.cfg.registry))
        from ..integration.kube_workloads import open_source

        return open_source(self.cfg.workloads_from_kube, self.cfg.node)

    def _apply_registry(self, workloads: list[Workload]) -> None:
        """Attach to new senders' veths and (re)write their addresses.  A workload whose
        address changed keeps its authority (key, credential): its egress sessions end,
        so its next packet opens a session that binds the new address (SPEC 13.3)."""
        by_ifindex = {socket.if_nametoindex(w.veth): w for w in workloads}
        for ifindex, w in by_ifindex.items():
            # an entry removed and added again between two reloads is a move too
            old = self.addresses.get(ifindex)
            if old is not None and old != w.address:
                self._end_egress(ifindex)
                self._count("workload_moved")
            self.addresses[ifindex] = w.address
            if w.key is None:  # receiving-side workload only
                continue
            flags = TP_TRAINS if self.cfg.trains else 0
            libbpf.map_update(self.eg.map_fd("warrant_tp_workloads"), ctypes.c_uint32(ifindex),
                              WorkloadValue(_ip_u32(w.address), flags))  # fmt: skip
            if ifindex not in self.attached:
                self._attach_egress(ifindex)
                self.attached.add(ifindex)
        for ifindex in set(self.by_ifindex) - set(by_ifindex):  # removed: not ours any more
            libbpf.map_delete(self.eg.map_fd("warrant_tp_workloads"), ctypes.c_uint32(ifindex))
            self._end_egress(ifindex)
            self._detach_egress(ifindex)
            self.attached.discard(ifindex)
        self.by_ifindex = by_ifindex

    def _egress_pin(self, ifindex: int) -> str:
        return f"{self.cfg.pin_root}/tcx_egress_{ifindex}"

    def _attach_egress(self, ifindex: int) -> None:
        """The egress program on a workload's veth through a pinned tcx link: it outlives
        this agent (a restarted one swaps its own program in), so a workload's packets
        keep leaving stamped with its pinned sessions while no agent runs."""
        libbpf.tcx_attach_pinned(ifindex, self.eg_fd, self._egress_pin(ifindex))

    def _detach_egress(self, ifindex: int) -> None:
        pin = self._egress_pin(ifindex)
        if not os.path.exists(pin):
            return
        link = libbpf.obj_get(pin)
        try:
            with contextlib.suppress(libbpf.BpfError):  # already gone with its veth
                libbpf.link_detach(link)
        finally:
            os.close(link)
        os.unlink(pin)

    def _end_egress(self, ifindex: int) -> None:
        for key in [k for k in self.senders if k[0] == ifindex]:
            libbpf.map_delete(self.eg.map_fd("warrant_tp_egress_sessions"), _egress_key(key))
            del self.senders[key]

    def _reload_registry(self) -> None:
        """Either source (file, Kubernetes API): additions, removals and moves live."""
        try:
            workloads = self.registry.poll()
        except RegistryError as exc:
            _log.warning("%s (previous registry kept)", exc)
            return
        finally:
            self.stats["registry_refused"] = self.registry.refusals
        if workloads is not None:
            self._wanted = workloads
        self._apply_wanted()

    def _apply_wanted(self) -> None:
        """Apply the registry's workloads whose veth exists here; the others wait (a pod's
        veth may come after its registration) and are tried again on every reload."""
        if self._wanted is None:
            return
        present, missing = [], set()
        for w in self._wanted:
            try:
                socket.if_nametoindex(w.veth)
                present.append(w)
            except OSError:
                missing.add(w.veth)
        if missing - self._missing:
            _log.warning("%s registry: no veth %s here yet", self.registry.origin,
                         ", ".join(sorted(missing - self._missing)))  # fmt: skip
            self._count("workload_no_veth")
        self._missing = missing
        self._apply_registry(present)
        if not missing:
            self._wanted = None

    def _reload_revocations(self) -> None:
        """Changed lists end their sessions in the kernel now (the store removes them);
        the bindings follow in _unbind_ended.  The peer's next DATA meets UNKNOWN_SESSION
        and a REJECT, its agent re-opens, and the INIT is refused (REVOKED)."""
        if self.revocations is None:
            return
        store, errors = self.revocations.poll()
        for error in errors:
            _log.warning("revocations: %s (previous lists kept)", error)
        if store is not None:
            for _ in self.receiver.revoke(store, time.time()):
                self._count("revoked")
            self._unbind_ended(time.time())

    def _unbind_ended(self, now: float) -> None:
        self.store.expire(now)
        for sid in list(self.bound):
            if self.store.get(sid) is None:
                libbpf.map_delete(self.bindings_fd, ctypes.c_uint64(_sid_u64(sid)))
                self.bound.discard(sid)

    # ---- loop ----------------------------------------------------------------------
    def step(self, timeout_ms: int) -> None:
        now = time.monotonic()
        for item in [p for p in self.pending if p[0] <= now]:
            self.pending.remove(item)
            self.out.sendto(item[1], item[2])
        for raw in self.punts.poll(timeout_ms):
            self.on_punt(raw, time.time())
        for packet, source in _drain(self.sock):
            if _kind(packet) == Kind.INIT:
                self.on_init(packet, source, time.time())
            # DATA reaching this socket is not delivered into workloads (SPEC 13.4)
        for packet, _ in _drain(self.out):
            kind = _kind(packet)
            if kind == Kind.REJECT:
                self.on_reject(packet)
            elif kind == Kind.COOKIE:
                self.on_cookie(packet)
        for ev in self.dp.events():
            self.on_drop_event(ev, now)

    def on_drop_event(self, ev: Event, now: float) -> None:
        """The REJECT for lost state (SPEC 6.1 steps 2-3) that the kernel does not cut from
        a segment train's frame (13.7: checksum offload pins its bytes), sent from this
        agent's Warrant port to where the DATA came from, at the kernel's REJECT rate.
        Answers every such drop the event budget lets through, so a sender may also get
        the kernel's REJECT for an ordinary frame: a second one for the same session id
        is a no-op for it."""
        # IPv4 only: this socket is AF_INET, as transparent mode's outer packets are
        # (warrant_tp_deliver decapsulates no other), so an IPv6 event is not answered
        if (ev.verdict != Verdict.DROP or ev.kind != Kind.DATA
                or ev.reason not in (Reason.UNKNOWN_SESSION, Reason.SESSION_EXPIRED)
                or len(ev.saddr) != 4 or ev.saddr == bytes(4)
                or not self.reject_bucket.take(now)):  # fmt: skip
            return
        reject = RejectPacket(ev.reason, ev.session_id).encode()
        self.sock.sendto(reject, (ev.source_ip, ev.sport))
        self._count("reject_sent")

    def run(self, stop: list[bool]) -> None:
        last = 0.0
        while not stop[0]:
            self.step(5)
            if time.monotonic() - last > 0.2:
                last = time.monotonic()
                self._reload_revocations()
                self._reload_registry()
                self._unbind_ended(time.time())
                self._write_stats()

    def _write_stats(self) -> None:
        if self.cfg.stats:
            tmp = self.cfg.stats + ".tmp"
            Path(tmp).write_text(json.dumps(self.stats))
            os.replace(tmp, self.cfg.stats)

    def close(self) -> None:
        self.registry.close()
        self.punts.close()
        self.eg.close()
        self.sock.close()
        self.out.close()
        self.raw.close()
        self.dp.close()


def _mtu(ifname: str) -> int:
    """The interface's MTU (SIOCGIFMTU), in this network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = fcntl.ioctl(s, 0x8921, struct.pack("16si", ifname.encode(), 0))
    mtu: int = struct.unpack("16si", req)[1]
    return mtu


def _drain(sock: socket.socket) -> Iterator[tuple[bytes, tuple[str, int]]]:
    while True:
        try:
            yield sock.recvfrom(65535)
        except BlockingIOError:
            return


def _kind(packet: bytes) -> Kind | None:
    try:
        return peek_kind(packet)
    except WarrantError:
        return None


def egress_counters(pin_root: str) -> dict[str, int]:
    """The egress program's outcome counters (summed over CPUs), from the pinned map."""
    fd = libbpf.obj_get(f"{pin_root}/warrant_tp_egress_counters")
    try:
        ncpu = libbpf.num_possible_cpus()
        out = {}
        for slot, name in EGRESS_OUTCOMES.items():
            values = (ctypes.c_uint64 * ncpu)()
            libbpf.map_lookup(fd, ctypes.c_uint32(slot), values)
            out[name] = int(sum(values))
        return out
    finally:
        os.close(fd)


def ingress_counters(pin_root: str) -> dict[tuple[Verdict, Reason], int]:
    from .loader import MapView

    view = MapView.pinned(pin_root)
    try:
        return {k: v[0] for k, v in view.counters().items()}
    finally:
        view.close()


# ---- two-node namespace topology ---------------------------------------------------------
SERVICE = "server"
CLIENT_SERVICE = "client"  # what the client workload serves: its replies' destinations
SCOPE = "tp.lab"
UPLINK_MTU = 1500


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")


@dataclass
class TransparentPair:
    tag: str
    ns: dict[str, str]
    tmp: Path
    pin_a: str
    pin_b: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    client_ns: str = ""
    client2_ns: str = ""
    server_ns: str = ""
    server_ip: str = "10.201.2.2"
    client_ip: str = "10.201.1.2"
    client2_ip: str = "10.201.3.2"
    port: int = 4600
    trains: bool = True  # trains mode (SPEC 13.7) or one stamp per MTU-sized packet
    anchor_key: nacl.signing.SigningKey | None = None
    revoked: list[bytes] = field(default_factory=list)

    def revoke(self, workload: str) -> None:
        """Revoke `workload`'s credential ("client", "client2", "server"): a signed list
        (next serial) written into both agents' revocation directories."""
        from ..core.revocation import RevocationList

        assert self.anchor_key is not None
        cred = cred_mod.Credential.decode((self.tmp / f"{workload}.cred").read_bytes())
        self.revoked.append(cred.link_ids()[-1])
        rl = RevocationList.sign(self.anchor_key, SCOPE, len(self.revoked), self.revoked)
        for node in ("a", "b"):
            tmp = self.tmp / f"revocations-{node}" / ".list.tmp"
            tmp.write_bytes(rl.encode())
            os.replace(tmp, self.tmp / f"revocations-{node}" / "anchor.rl")

    def counters(self) -> dict[str, Any]:
        """ingress/egress: the client-to-server direction (node B's TC program, node A's
        egress programs); ingress_a/egress_b: the replies' (governed_replies)."""
        return {
            "ingress": ingress_counters(self.pin_b), "egress": egress_counters(self.pin_a),
            "ingress_a": ingress_counters(self.pin_a), "egress_b": egress_counters(self.pin_b),
        }  # fmt: skip

    def start_agent(self, node: str) -> subprocess.Popen[str]:
        """Start node `node`'s ("a" or "b") agent from its config file; returns once it
        is ready."""
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.ns[node]}", sys.executable, "-m",
             "warrant.datapath.transparent", "agent", "--config",
             str(self.tmp / f"node-{node}.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _wait_ready(proc, f"node-{node}")
        return proc

    def kill_agent(self, node: str) -> None:
        """kill -9 node `node`'s agent (fault tests); restart_agent starts it again."""
        proc = self.procs[0 if node == "a" else 1]
        proc.kill()
        proc.wait()

    def restart_agent(self, node: str) -> None:
        if self.procs[0 if node == "a" else 1].poll() is None:
            self.kill_agent(node)
        self.procs[0 if node == "a" else 1] = self.start_agent(node)

    def agent_stats(self, node: str) -> dict[str, int]:
        """The agent's own counters (`node`: "a" or "b"): INITs sent, bound, refused by
        reason, punts without a credential."""
        path = self.tmp / f"node-{node}.stats.json"
        stats: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        return stats

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        from .loader import Datapath

        for pin in (self.pin_a, self.pin_b):
            Datapath.unpin(pin)
            # this pair's own pin root: what is left is ours (egress counters, tcx links)
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(pin):
                    os.unlink(f"{pin}/{name}")
            with contextlib.suppress(OSError):
                os.rmdir(pin)
        shutil.rmtree(self.tmp, ignore_errors=True)


def setup_pair(tag: str, server_port: int = 8000, *, second_client: bool = False,
               allow: tuple[str, ...] = ("tcp/1-65535", "udp/1-65535", "icmp"),
               port: int = 4600, governed_replies: bool = True,
               trains: bool = True, client_rate: int | None = None) -> TransparentPair:  # fmt: skip
    """Namespaces: nodes A and B (uplink veth), client workload(s) on A, server workload on
    B; both node agents started (`python3 -m warrant.datapath.transparent agent`).
    `allow`: what the server workload accepts (inner protocol/ports).  server_port is
    informational (the caller runs its server on it).  `client_rate`: the client's credential
    grants this many packets per second (None: no rate)."""
    del server_port
    from ..core.anchors import Anchor, TrustStore
    from ..core.rights import Destination, Grant

    t = tag
    ns = {"a": f"tp{t}-A", "b": f"tp{t}-B", "c": f"tp{t}-c", "s": f"tp{t}-s"}
    if second_client:
        ns["c2"] = f"tp{t}-c2"
    tmp = Path(tempfile.mkdtemp(prefix=f"warrant-tp-{t}-"))
    pair = TransparentPair(t, ns, tmp, f"/sys/fs/bpf/warrant-tp-{t}-a",
                           f"/sys/fs/bpf/warrant-tp-{t}-b", port=port)  # fmt: skip
    pair.client_ns, pair.server_ns, pair.client2_ns = ns["c"], ns["s"], ns.get("c2", "")
    pair.trains = trains
    try:
        for n in ns.values():
            _run("ip", "netns", "add", n)
            _run("ip", "-n", n, "link", "set", "lo", "up")
        up_a, up_b = f"tp{t}ua", f"tp{t}ub"
        _run("ip", "link", "add", up_a, "netns", ns["a"], "type", "veth", "peer", "name", up_b,
             "netns", ns["b"])  # fmt: skip
        for n, dev, addr in ((ns["a"], up_a, "192.168.250.1"), (ns["b"], up_b, "192.168.250.2")):
            _run("ip", "-n", n, "addr", "add", f"{addr}/30", "dev", dev)
            _run("ip", "-n", n, "link", "set", dev, "mtu", str(UPLINK_MTU), "up")
            _run("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        wl = [("c", ns["a"], "10.201.1")] + ([("c2", ns["a"], "10.201.3")] if second_client else [])
        wl.append(("s", ns["b"], "10.201.2"))
        host: dict[str, str] = {}
        for key, node, net in wl:
            h = f"tp{t}h{key}"
            host[key] = h
            _run("ip", "link", "add", h, "netns", node, "type", "veth", "peer", "name", "eth0",
                 "netns", ns[key])  # fmt: skip
            _run("ip", "-n", node, "addr", "add", f"{net}.1/24", "dev", h)
            _run("ip", "-n", node, "link", "set", h, "up")
            _run("ip", "-n", ns[key], "addr", "add", f"{net}.2/24", "dev", "eth0")
            mtu = str(UPLINK_MTU - (TP_TRAIN_OVERHEAD if trains else TP_ENCAP_OVERHEAD))
            _run("ip", "-n", ns[key], "link", "set", "eth0", "mtu", mtu, "up")
            _run("ip", "-n", ns[key], "route", "add", "default", "via", f"{net}.1")
            if trains:
                # TSO/GSO and checksum offload kept; UDP GSO segmented by the workload's
                # own stack (only TCP makes trains); super-packets that fit one outer
                # datagram and a one-byte segment count (SPEC 13.7)
                _run("ip", "netns", "exec", ns[key], "ethtool", "-K", "eth0",
                     "tx-udp-segmentation", "off")  # fmt: skip
                _run("ip", "-n", ns[key], "link", "set", "eth0", "gso_max_size",
                     str(TP_TRAIN_GSO_MAX_SIZE), "gso_max_segs", str(TP_TRAIN_MAX_SEGS))  # fmt: skip
                continue
            # one Warrant header per wire packet, full inner checksums (SPEC 13.5)
            for n, dev in ((ns[key], "eth0"), (node, h)):
                _run("ip", "netns", "exec", n, "ethtool", "-K", dev, "tso", "off", "gso", "off",
                     "tx", "off")  # fmt: skip
        if not governed_replies:  # the server's replies come back as plain routed IP
            _run("ip", "-n", ns["b"], "route", "add", "10.201.0.0/16", "via", "192.168.250.1")

        anchor, node_a, node_b = keys.generate(), keys.generate(), keys.generate()
        pair.anchor_key = anchor
        now = int(time.time())
        trust = TrustStore()
        trust.add(Anchor(SCOPE, bytes(anchor.verify_key)))
        import yaml

        policy = tmp / "policy.yaml"
        policy.write_text(yaml.safe_dump({
            "anchors": trust.to_mapping(), "default": "allow",
            "limits": {"init_rate_per_source": 1000, "init_burst": 1000, "load_threshold": 1000},
        }))  # fmt: skip
        for name, nk in (("node-a", node_a), ("node-b", node_b)):
            (tmp / f"{name}.sec").write_text(keys.encode_secret(nk) + "\n")

        def holder(name: str, service: str, rate: int | None = None) -> tuple[str, str]:
            hk = keys.generate()
            grant = Grant(operations=(TP_CLAIM_OPERATION,),
                          destinations=(Destination(service, port, port),),
                          not_before=now - 3600, expires=now + 86400, max_hops=0,
                          rate=rate)  # fmt: skip
            cred = cred_mod.issue(anchor, SCOPE, bytes(hk.verify_key), grant).encode()
            (tmp / f"{name}.sec").write_text(keys.encode_secret(hk) + "\n")
            (tmp / f"{name}.cred").write_bytes(cred)
            return str(tmp / f"{name}.sec"), str(tmp / f"{name}.cred")

        reg_a, reg_b = tmp / "registry-a.json", tmp / "registry-b.json"
        k, c = holder("client", SERVICE, client_rate)
        # governed replies: the client serves its replies' destination ports, the server
        # sends them under a credential of its own for service CLIENT_SERVICE
        c_service = CLIENT_SERVICE if governed_replies else None
        c_allow = list(allow) if governed_replies else []
        add_workload(reg_a, Workload("client", host["c"], "10.201.1.2", k, c, c_service, c_allow))
        if second_client:  # its credential grants another service only
            k, c = holder("client2", "other")
            add_workload(reg_a, Workload("client2", host["c2"], "10.201.3.2", k, c))
        sk, sc = holder("server", CLIENT_SERVICE) if governed_replies else (None, None)
        add_workload(reg_b, Workload("server", host["s"], "10.201.2.2", sk, sc, service=SERVICE,
                                     allow=list(allow)))  # fmt: skip
        peer_b = {"prefix": "10.201.2.0/24", "node_addr": "192.168.250.2", "port": port,
                  "receiver_public": keys.encode_public(bytes(node_b.verify_key)),
                  "service": SERVICE}  # fmt: skip
        peer_a = {"prefix": "10.201.1.0/24", "node_addr": "192.168.250.1", "port": port,
                  "receiver_public": keys.encode_public(bytes(node_a.verify_key)),
                  "service": CLIENT_SERVICE}  # fmt: skip
        for name, _node, pin, addr, up, reg, peers in (
            ("node-a", ns["a"], pair.pin_a, "192.168.250.1", up_a, reg_a, [peer_b]),
            (
                "node-b",
                ns["b"],
                pair.pin_b,
                "192.168.250.2",
                up_b,
                reg_b,
                [peer_a] if governed_replies else [],
            ),
        ):
            revocations = tmp / f"revocations-{name[-1]}"
            revocations.mkdir()
            cfg = AgentConfig(pin, port, addr, up, str(tmp / f"{name}.sec"), str(policy),
                              str(reg), peers, str(tmp / f"{name}.stats.json"),
                              str(revocations), trains=trains)  # fmt: skip
            (tmp / f"{name}.json").write_text(json.dumps(asdict(cfg)))
            pair.procs.append(pair.start_agent(name[-1]))
        return pair
    except BaseException:
        pair.close()
        raise


def _wait_ready(proc: subprocess.Popen[str], name: str, timeout: float = 30.0) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if '"ready"' not in line:
        err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        raise RuntimeError(f"{name} agent did not start: {line!r} {err[-2000:]}")


@contextlib.contextmanager
def pair(tag: str, **kw: Any) -> Iterator[TransparentPair]:
    p = setup_pair(tag, **kw)
    try:
        yield p
    finally:
        p.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m warrant.datapath.transparent")
    sub = ap.add_subparsers(dest="cmd", required=True)
    agent = sub.add_parser("agent", help="run a transparent-mode node agent")
    agent.add_argument("--config", required=True, type=Path)
    agent.add_argument("--workloads-from-kube", metavar="KUBECONFIG|in-cluster",
                       help="registry from WarrantWorkload objects instead of the file")  # fmt: skip
    agent.add_argument("--node", help="this node's name (WarrantWorkload spec.nodeName)")
    args = ap.parse_args(argv)
    cfg = AgentConfig(**json.loads(args.config.read_text()))
    cfg.workloads_from_kube = args.workloads_from_kube or cfg.workloads_from_kube
    cfg.node = args.node or cfg.node
    a = TransparentAgent(cfg)
    stop = [False]

    def _stop(*_: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(json.dumps({"ready": True, "links": len(a.attached)}), flush=True)
    try:
        a.run(stop)
    finally:
        print(json.dumps({"stats": a.stats}), flush=True)
        a.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
