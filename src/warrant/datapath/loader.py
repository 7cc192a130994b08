"""Load the Warrant datapath, pin its maps, attach it, and keep its maps in step.

    dp = Datapath.open()                    # builds bpf/ if stale, reuses pinned maps
    dp.set_ports([4433])
    dp.install_session(session)             # a warrant.core.session.Session from the Receiver
    dp.attach_xdp(ifindex)                  # or attach_tc(ifindex)

Maps are pinned under /sys/fs/bpf/warrant (one file per map, named as in the C
source), so that an agent restart neither loses sessions nor stops enforcement:
the attached program keeps its maps, and the next agent reopens the same ones.
Map layouts are in docs/datapath.md; the ctypes structures below must equal
the C structures (checked against the loaded object's value sizes).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import logging
import math
import os
import socket
import struct
import subprocess
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.constants import (
    DP_ADMIT_SAMPLE,
    DP_BAD_MAC_BURST,
    DP_REPLAY_SLOT_BITS,
    HOP_TAG_LEN,
    MAX_HOPS,
    REPLAY_RING_BITS,
    REPLAY_WORD_BITS,
    Kind,
    Reason,
    Verdict,
)
from ..core.session import Session
from . import libbpf
from .build import build

PIN_ROOT = "/sys/fs/bpf/warrant"
MAPS = (
    "warrant_ports",
    "warrant_sessions",
    "warrant_session_slots",
    "warrant_clock",
    "warrant_replay",
    "warrant_counters",
    "warrant_config",
    "warrant_events",
    "warrant_session_filter",
    "warrant_percpu",
    "warrant_tp_bindings",  # transparent sessions' bindings (encap.h): kept over a restart
)
# Global data of the program (bpf/wire.h, session.h, verdict.h): libbpf's map for each
# section, read by the program at a fixed address (no lookup per packet).  Known here by
# the names they had as ordinary maps, which are also their pin names.
GLOBAL_DATA = {
    "warrant_ports": ".bss.warrant_ports",
    "warrant_clock": ".bss.warrant_clock",
    "warrant_config": ".data.warrant_config",
    "warrant_session_filter": ".bss.warrant_session_filter",
}
# Pins an older agent made that this one does not use (removed when the datapath opens).
STALE_PINS = ("warrant_budget", "warrant_reject_bucket")
# What a restarted agent needs to resume a session (AEAD key, credential, claim, path):
# made and pinned by user space, never referenced by a program (see `Datapath.put_record`).
SECRETS_MAP = "warrant_session_secrets"
XDP_PROG_PIN = "warrant_xdp_prog"  # the attached XDP program, pinned: a restart knows it
TCX_LINK_PIN = "tcx_ingress_"  # + ifindex: the pinned tcx link of an interface
_log = logging.getLogger("warrant.datapath")
CONFIG_PASS_EVENTS = 0x1
CONFIG_NO_DROP_EVENTS = 0x2
CONFIG_NO_BUDGET = 0x4
_WORDS = REPLAY_RING_BITS // REPLAY_WORD_BITS
_SLOTS = REPLAY_RING_BITS // DP_REPLAY_SLOT_BITS
_U8 = ctypes.c_uint8
_CLOCK_MONOTONIC_COARSE = 6  # linux/time.h; bpf_ktime_get_coarse_ns reads this clock


class HopKey(ctypes.Structure):
    _fields_ = [("k_hop", _U8 * 16), ("tag", _U8 * HOP_TAG_LEN), ("_pad", _U8 * 4)]


class SessionValue(ctypes.Structure):
    """struct warrant_session (bpf/session.h)."""

    _fields_ = [
        ("k_mac", _U8 * 16),
        ("expires_ns", ctypes.c_uint64),
        ("port", ctypes.c_uint16),
        ("hop_count", _U8),
        ("_pad0", _U8),
        ("bad_mac_tokens", ctypes.c_uint32),
        ("bad_mac_tick", ctypes.c_uint64),
        ("hops", HopKey * MAX_HOPS),
        ("window", ctypes.c_uint32),  # index into warrant_replay (bpf/replay.h)
        ("_pad1", ctypes.c_uint32),
        ("sid", ctypes.c_uint64),  # in warrant_session_slots: the owner's sid_key (0: free)
    ]


class ReplayValue(ctypes.Structure):
    """struct warrant_replay (bpf/replay.h): top and 128 slots of (u32 tag << 32 | 32 bits).

    `from_window` / `to_window` convert from and to the reference's layout
    (src/warrant/core/replay.py: 64 words of 64 bits), so that the same window can be
    installed from a Python session and compared with it."""

    _fields_ = [
        ("top", ctypes.c_uint64),
        ("slots", ctypes.c_uint64 * _SLOTS),
    ]

    @classmethod
    def from_window(cls, top: int, words: list[int]) -> ReplayValue:
        v = cls()
        v.top = top
        for k, word in enumerate(words):
            block = _ref_block(top, k)
            if block < 0:
                continue
            for half in (0, 1):
                index = 2 * block + half
                bits = (word >> (32 * half)) & 0xFFFFFFFF
                v.slots[index % _SLOTS] = ((index & 0xFFFFFFFF) << 32) | bits
        return v

    def to_window(self) -> tuple[int, list[int]]:
        top = int(self.top)
        words = [0] * _WORDS
        for k in range(_WORDS):
            block = _ref_block(top, k)
            if block < 0:
                continue
            for half in (0, 1):
                index = 2 * block + half
                slot = int(self.slots[index % _SLOTS])
                if slot >> 32 == index & 0xFFFFFFFF:
                    words[k] |= (slot & 0xFFFFFFFF) << (32 * half)
        return top, words


def _ref_block(top: int, k: int) -> int:
    """The 64-number block the reference window's word k holds when its newest is top."""
    newest = top >> 6
    return newest - ((newest - k) % _WORDS)


class RecordKey(ctypes.Structure):
    """Key of warrant_session_secrets: a session's sid_key and the part number."""

    _fields_ = [("sid", ctypes.c_uint64), ("part", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


# bytes of a record per map entry: with its key and the kernel's element header, about 1 KiB
RECORD_PART = 948
RECORD_MAX_PARTS = 8  # a record of a 4 KiB credential through 8 relays takes 7


class RecordPart(ctypes.Structure):
    """Value of warrant_session_secrets: the whole record's length (in every part, so a
    part of another record is told apart) and this part's bytes."""

    _fields_ = [("length", ctypes.c_uint32), ("data", _U8 * RECORD_PART)]


class PortSet(ctypes.Structure):
    """struct warrant_port_set (bpf/wire.h): bit p set when UDP port p is a Warrant port."""

    _fields_ = [("bits", ctypes.c_uint64 * (65536 // 64))]


class FilterValue(ctypes.Structure):
    """struct warrant_session_filter (bpf/session.h): bit (sid & 0xffff) per live session."""

    _fields_ = [("bits", ctypes.c_uint64 * (65536 // 64))]


class ClockValue(ctypes.Structure):
    _fields_ = [("now", ctypes.c_uint64), ("frozen", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


class ConfigValue(ctypes.Structure):
    _fields_ = [("admit_mask", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class PerCpuValue(ctypes.Structure):
    """struct warrant_percpu (bpf/session.h): a CPU's clock and MTU caches, its event
    budget and its REJECT bucket (GCRA), with the counts of what those two withheld."""

    _fields_ = [("jiffies", ctypes.c_uint64), ("now", ctypes.c_uint64),
                ("mtu_jiffies", ctypes.c_uint64), ("mtu_ifindex", ctypes.c_uint32),
                ("mtu_ok", ctypes.c_uint32), ("budget_tick", ctypes.c_uint64),
                ("budget_left", ctypes.c_uint64), ("events_suppressed", ctypes.c_uint64),
                ("reject_tat", ctypes.c_uint64), ("rejects_limited", ctypes.c_uint64)]  # fmt: skip


class MapInfoHead(ctypes.Structure):
    """The leading fields of struct bpf_map_info (linux/bpf.h); the kernel fills a prefix."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32)]  # fmt: skip


class CounterValue(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


# struct warrant_event_record (bpf/verdict.h): addresses of 16 bytes, then the family
_EVENT = struct.Struct("<8sQQ16s16sHHBBBBIB3x")


@dataclass(frozen=True)
class Event:
    """One ring-buffer record: a verdict with its reason and addressing (saddr and daddr
    of 4 bytes for IPv4, 16 for IPv6, in network order)."""

    session_id: bytes
    seq: int
    time_ns: int
    saddr: bytes
    daddr: bytes
    sport: int
    dport: int
    verdict: Verdict
    reason: Reason
    kind: int
    hop_count: int
    length: int

    @classmethod
    def decode(cls, raw: bytes) -> Event:
        sid, seq, t, sa, da, sp, dp, v, r, k, h, n, family = _EVENT.unpack(raw)  # exact size
        if family != 6:
            sa, da = sa[:4], da[:4]
        return cls(sid, seq, t, sa, da, sp, dp, Verdict(v), Reason(r), k, h, n)

    @property
    def source_ip(self) -> str:
        return str(ipaddress.ip_address(self.saddr))

    @property
    def destination_ip(self) -> str:
        return str(ipaddress.ip_address(self.daddr))

    @property
    def kind_name(self) -> str:
        try:
            return Kind(self.kind).name
        except ValueError:
            return "UNKNOWN"


SESSION_SLOTS = 65536  # bpf/session.h WARRANT_SESSION_SLOTS (checked against the map at open)


def slot_of(key: ctypes.c_uint64) -> ctypes.c_uint32:
    """A session's slot in warrant_session_slots (bpf/session.h)."""
    return ctypes.c_uint32(key.value & (SESSION_SLOTS - 1))


def sid_key(session_id: bytes) -> ctypes.c_uint64:
    """Map key of a session: its 8 wire bytes as the kernel loads them (little-endian)."""
    return ctypes.c_uint64(int.from_bytes(session_id, "little"))


def to_kernel_ns(wall: float, offset_ns: int) -> int:
    """A wall-clock time (seconds) on the kernel clock: ceil keeps `now >= expires` exact."""
    return max(0, math.ceil(wall * 1e9) + offset_ns)


def mount_bpffs(root: str = "/sys/fs/bpf") -> None:
    """Mount bpffs at /sys/fs/bpf if it is not (needs root)."""
    with open("/proc/mounts") as f:
        if any(line.split()[1] == root and line.split()[2] == "bpf" for line in f):
            return
    import subprocess

    subprocess.run(["mount", "-t", "bpf", "bpf", root], check=True)


class MapView:
    """Read access to the datapath's maps by file descriptor: counters, sessions, windows,
    events.  `MapView.pinned(root)` opens a running datapath's pinned maps without
    loading anything (tests, `warrant agent` status), and writes nothing."""

    def __init__(self, fds: dict[str, int]) -> None:
        self.fd = fds
        self.ncpus = libbpf.num_possible_cpus()
        self._ring: libbpf.RingBuffer | None = None

    @classmethod
    def pinned(cls, pin_root: str = PIN_ROOT) -> MapView:
        view = cls({name: libbpf.obj_get(f"{pin_root}/{name}") for name in MAPS})
        view._owned = True
        return view

    _owned = False  # the fds are this view's own (pinned()), not a loaded object's

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._owned:
            for fd in self.fd.values():
                os.close(fd)
            self.fd = {}

    def session_ids(self) -> list[bytes]:
        return [*self._hashed_ids(), *self._slot_owners().values()]

    def _hashed_ids(self) -> list[bytes]:
        """Sessions in warrant_sessions (the ones whose slot was taken)."""
        return [
            k.value.to_bytes(8, "little")
            for k in libbpf.map_keys(self.fd["warrant_sessions"], ctypes.c_uint64)
        ]

    def _slot_owners(self) -> dict[int, bytes]:
        """slot -> session id of every taken slot of warrant_session_slots (one batch read)."""
        values = (SessionValue * SESSION_SLOTS)()
        keys = (ctypes.c_uint32 * SESSION_SLOTS)()
        fn = libbpf.lib().bpf_map_lookup_batch
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]  # fmt: skip
        out_batch, count = ctypes.c_uint32(), ctypes.c_uint32(SESSION_SLOTS)
        rc = fn(self.fd["warrant_session_slots"], None, ctypes.byref(out_batch), keys, values,
                ctypes.byref(count), None)  # fmt: skip
        if rc < 0 and -rc != errno.ENOENT and ctypes.get_errno() != errno.ENOENT:
            libbpf.check(rc, "warrant_session_slots batch lookup")
        return {int(keys[i]): int(values[i].sid).to_bytes(8, "little")
                for i in range(count.value) if values[i].sid}  # fmt: skip

    def session_capacity(self) -> int:
        """max_entries of the session map (bpf/session.h WARRANT_MAX_SESSIONS)."""
        return self._max_entries("warrant_sessions")

    def _max_entries(self, name: str) -> int:
        info = MapInfoHead()
        size = ctypes.c_uint(ctypes.sizeof(info))
        libbpf.check(
            libbpf.lib().bpf_obj_get_info_by_fd(
                self.fd[name], ctypes.byref(info), ctypes.byref(size)
            ),
            f"{name} info",
        )
        return int(info.max_entries)

    def session(self, session_id: bytes) -> SessionValue | None:
        """The kernel's value of a session: in its slot, or in warrant_sessions."""
        v, key = SessionValue(), sid_key(session_id)
        slot = self.fd["warrant_session_slots"]
        if libbpf.map_lookup(slot, slot_of(key), v) and v.sid and v.sid == key.value:
            return v
        return v if libbpf.map_lookup(self.fd["warrant_sessions"], key, v) else None

    def window(self, session_id: bytes) -> tuple[int, list[int]] | None:
        """(top, words) of a session's replay window, or None (no such session)."""
        s, w = self.session(session_id), ReplayValue()
        if s is None or not libbpf.map_lookup(
            self.fd["warrant_replay"], ctypes.c_uint32(s.window), w
        ):
            return None
        return w.to_window()

    # ---- observability -----------------------------------------------------------------
    def counters(self) -> dict[tuple[Verdict, Reason], tuple[int, int]]:
        """Non-zero (verdict, reason) -> (packets, bytes), summed over CPUs."""
        out: dict[tuple[Verdict, Reason], tuple[int, int]] = {}
        per_cpu = (CounterValue * self.ncpus)()
        nreasons = len(Reason)
        for verdict in Verdict:
            for reason in Reason:
                slot = ctypes.c_uint32(int(verdict) * nreasons + int(reason))
                libbpf.map_lookup(self.fd["warrant_counters"], slot, per_cpu)
                packets = sum(c.packets for c in per_cpu)
                if packets:
                    out[(verdict, reason)] = (packets, sum(c.bytes for c in per_cpu))
        return out

    def events_lost(self) -> int:
        """Events the ring buffer had no room for (user space drained too slowly)."""
        return self._slot(len(Verdict) * len(Reason))

    def events_suppressed(self) -> int:
        """Events not emitted because a CPU spent its budget for the tick (a flood)."""
        return sum(v.events_suppressed for v in self._percpu())

    def rejects_sent(self) -> int:
        """REJECTs the kernel built in place and sent back (UNKNOWN_SESSION, SESSION_EXPIRED)."""
        return self._slot(len(Verdict) * len(Reason) + 1)

    def rejects_limited(self) -> int:
        """Drops that wanted a REJECT but found their CPU's REJECT bucket empty."""
        return sum(v.rejects_limited for v in self._percpu())

    def _percpu(self) -> ctypes.Array[PerCpuValue]:
        per_cpu = (PerCpuValue * self.ncpus)()
        libbpf.map_lookup(self.fd["warrant_percpu"], ctypes.c_uint32(0), per_cpu)
        return per_cpu

    def _slot(self, slot: int) -> int:
        per_cpu = (CounterValue * self.ncpus)()
        libbpf.map_lookup(self.fd["warrant_counters"], ctypes.c_uint32(slot), per_cpu)
        return sum(c.packets for c in per_cpu)

    def events(self, timeout_ms: int = 0) -> list[Event]:
        """Drain the ring buffer (waiting up to timeout_ms for the first record)."""
        if self._ring is None:
            self._ring = libbpf.RingBuffer(self.fd["warrant_events"])
        raw = self._ring.poll(timeout_ms) if timeout_ms else self._ring.consume()
        # records of another size: left in the pinned ring by the program an upgrade
        # replaced (another layout), not decodable as this one's
        stale = sum(len(r) != _EVENT.size for r in raw)
        if stale:
            _log.warning("skipped %d ring-buffer records of another layout", stale)
        return [Event.decode(r) for r in raw if len(r) == _EVENT.size]


class Datapath(MapView):
    """The loaded program pair (XDP and TC) and the maps they share."""

    def __init__(self, obj: libbpf.BpfObject, pin_root: str | None) -> None:
        super().__init__({name: obj.map_fd(GLOBAL_DATA.get(name, name)) for name in MAPS})
        self.obj = obj
        self.pin_root = pin_root
        self.xdp_fd = obj.program_fd("warrant_xdp")
        self.tc_fd = obj.program_fd("warrant_tc")
        self._offset_ns = 0  # kernel clock minus wall clock, ns
        self._frozen = False
        for name, struct_type in (
            ("warrant_sessions", SessionValue),
            ("warrant_session_slots", SessionValue),
            ("warrant_replay", ReplayValue),
            ("warrant_clock", ClockValue),
            ("warrant_config", ConfigValue),
            ("warrant_counters", CounterValue),
            ("warrant_ports", PortSet),
            ("warrant_session_filter", FilterValue),
            ("warrant_percpu", PerCpuValue),
        ):
            _, vsize = obj.map_sizes(GLOBAL_DATA.get(name, name))
            if vsize != ctypes.sizeof(struct_type):
                raise libbpf.BpfError(
                    22, f"{name}: value is {vsize} bytes in C, {ctypes.sizeof(struct_type)} here"
                )
        if self._max_entries("warrant_session_slots") != SESSION_SLOTS:
            raise libbpf.BpfError(22, "warrant_session_slots: WARRANT_SESSION_SLOTS differs")
        self._filter_counts: dict[int, int] = {}
        self._installed: set[bytes] = set()
        self._slots: dict[bytes, int] = {}  # sessions placed in warrant_session_slots
        self._slots_taken: set[int] = set()
        # sessions in warrant_sessions stay there: a copy in a slot freed later would
        # leave the hash entry behind, found again once the slot's copy is gone
        self._hashed: set[bytes] = set()
        self._links: list[int] = []  # tcx link fds not pinned (pin_root None)
        # replay window indices (bpf/replay.h): never used ones first, then freed ones in
        # the order they were freed, so a freed index is reused as late as possible
        self._windows: dict[bytes, int] = {}
        self._fresh_window: int | None = 0
        self._free_windows: deque[int] = deque()
        self.secrets_fd = _open_secrets(pin_root, self.session_capacity() * RECORD_MAX_PARTS)

    # ---- lifecycle ---------------------------------------------------------------------
    @classmethod
    def open(cls, pin_root: str | None = PIN_ROOT, obj_path: str | None = None) -> Datapath:
        """Build if stale, open, reuse or create pinned maps, load.

        pin_root=None gives private, unpinned maps (tests).  Fresh maps get the
        default configuration and the live clock; reused maps keep theirs."""
        path = obj_path or str(build("warrant_xdp"))
        libbpf.silence()
        obj = libbpf.BpfObject(path)
        fresh = True
        if pin_root is not None:
            mount_bpffs()
            os.makedirs(pin_root, exist_ok=True)
            fresh = not Path(pin_root, "warrant_sessions").exists()
            _remove_stale_pins(pin_root)
            for name in MAPS:
                obj.set_pin_path(GLOBAL_DATA.get(name, name), f"{pin_root}/{name}")
        try:
            obj.load()
        except libbpf.BpfError:
            obj.close()
            raise
        dp = cls(obj, pin_root)
        if not fresh:
            dp._slots = {sid: slot for slot, sid in dp._slot_owners().items()}
            dp._slots_taken = set(dp._slots.values())
            dp._hashed = set(dp._hashed_ids())
        dp._rebuild_filter()
        dp._rebuild_windows()
        if fresh:
            dp.set_config()
            dp.set_time(None)
        else:
            dp._frozen = bool(dp._clock().frozen)
            if dp._frozen:
                dp._offset_ns = 0
            else:
                dp._offset_ns = _mono_coarse_ns() - time.time_ns()
        return dp

    def close(self) -> None:
        for link in self._links:  # unpinned tcx links: the attachment ends with them
            os.close(link)
        self._links = []
        super().close()
        os.close(self.secrets_fd)
        self.obj.close()

    def __enter__(self) -> Datapath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def unpin(pin_root: str = PIN_ROOT) -> None:
        """Remove pinned maps (enforcement state) under pin_root, and the pinned tcx links
        (`attach_tc`): a link whose pin was its last reference is detached with it, so TC
        enforcement through such a link ends here too, as enforcement state does."""
        links = [p.name for p in Path(pin_root).glob(f"{TCX_LINK_PIN}*")]
        for name in (*MAPS, SECRETS_MAP, XDP_PROG_PIN, *STALE_PINS, *links):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{pin_root}/{name}")
        with contextlib.suppress(OSError):
            os.rmdir(pin_root)

    # ---- attach ------------------------------------------------------------------------
    def attach_xdp(self, ifindex: int, mode: str = "auto", *, replace_foreign: bool = False) -> str:
        """Attach; mode 'native', 'generic' or 'auto'.  Returns the mode used.

        'auto' tries native (driver) XDP and, when the driver refuses it (no XDP support,
        an MTU it cannot serve in one buffer: the program is not `xdp.frags`, see
        docs/datapath.md), generic XDP, and logs that it did.

        An earlier Warrant program on the interface is replaced (an agent restart).  Another
        program (Cilium's, say) is not, unless `replace_foreign`: an interface has one XDP
        program, and silently displacing another datapath would break the node.

        The earlier Warrant program is recognised by its id: the program attached last is
        pinned at <pin_root>/warrant_xdp_prog, and opening that pin needs no more than the
        agent has.  Reading a foreign id's name (BPF_PROG_GET_FD_BY_ID) needs CAP_SYS_ADMIN,
        which the DaemonSet does not grant; it is only tried when the pin does not match."""
        tries = {"auto": ("native", "generic"), "native": ("native",),
                 "generic": ("generic",)}[mode]  # fmt: skip
        current = libbpf.xdp_query_id(ifindex)
        if current and not replace_foreign and current != self._pinned_xdp_id():
            try:
                name = libbpf.prog_name(current)
            except libbpf.BpfError as exc:
                if exc.errno != errno.EPERM:
                    raise
                name = "(name unreadable without CAP_SYS_ADMIN)"
            if name != "warrant_xdp":
                raise libbpf.BpfError(
                    errno.EBUSY,
                    f"ifindex {ifindex} already runs XDP program {name!r} (id {current}), not "
                    f"the one pinned under {self.pin_root}; refusing to replace it "
                    "(use --tc to enforce at TC ingress beside it)",
                )
        used = self._xdp_attach_mode(ifindex, tries)
        if self.pin_root is not None:
            pin = f"{self.pin_root}/{XDP_PROG_PIN}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pin)
            libbpf.check(libbpf.lib().bpf_obj_pin(self.xdp_fd, pin.encode()), f"pin {pin}")
        return used

    def _xdp_attach_mode(self, ifindex: int, tries: tuple[str, ...]) -> str:
        flags = {"native": libbpf.XDP_FLAGS_DRV_MODE, "generic": libbpf.XDP_FLAGS_SKB_MODE}
        for i, name in enumerate(tries):
            try:
                libbpf.xdp_attach(ifindex, self.xdp_fd, flags[name])
            except libbpf.BpfError as exc:
                if i + 1 == len(tries) and name == "native":
                    raise libbpf.BpfError(
                        exc.errno,
                        f"{exc}: native XDP refused (no driver XDP, or an MTU that needs "
                        "multi-buffer frames: the program is not xdp.frags, docs/datapath.md); "
                        "use generic mode or --tc",
                    ) from exc
                if i + 1 == len(tries):
                    raise
                _log.warning("ifindex %d refused %s XDP (%s); attaching in %s mode, which "
                             "cannot see GRO/GSO merges within the MTU (--tc can)",
                             ifindex, name, exc, tries[i + 1])  # fmt: skip
                continue
            return name
        raise AssertionError("unreachable: no XDP mode to try")

    def _pinned_xdp_id(self) -> int:
        """Id of the XDP program an agent with this pin root attached last (0: none)."""
        if self.pin_root is None or not os.path.exists(f"{self.pin_root}/{XDP_PROG_PIN}"):
            return 0
        fd = libbpf.obj_get(f"{self.pin_root}/{XDP_PROG_PIN}")
        try:
            return libbpf.prog_id(fd)
        finally:
            os.close(fd)

    def attached(self, ifindex: int, mode: str = "xdp") -> bool:
        """Whether this object's program is the one running on the interface now."""
        if mode == "tc":
            mine = libbpf.prog_id(self.tc_fd)
            with contextlib.suppress(libbpf.BpfError):  # no tcx before Linux 6.6
                if mine in libbpf.tcx_query(ifindex):
                    return True
            return mine in _clsact_warrant(ifindex).values()
        return libbpf.xdp_query_id(ifindex) == libbpf.prog_id(self.xdp_fd)

    @staticmethod
    def detach_xdp(ifindex: int) -> None:
        libbpf.xdp_detach(ifindex, 0)

    def attach_tc(self, ifindex: int, *, tcx: bool = True) -> str:
        """Attach at TC ingress beside whatever else runs there (Cilium, say); returns how.

        tcx (Linux 6.6+): a BPF link placed first in the ingress chain (BPF_F_BEFORE);
        other owners' programs stay attached and run after it, since the program passes
        what it does not drop with TC_ACT_UNSPEC ("next").  The link is pinned beside the
        maps, and an agent restart swaps the program behind it in place.  Without tcx: a
        clsact cls_bpf filter with Warrant's own handle at the lowest priority no other
        filter uses; only a filter of our own is ever replaced.  tcx=False goes straight to
        clsact (kernels without tcx; tests of that path)."""
        if tcx:
            try:
                self._attach_tcx(ifindex)
                return "tcx"
            except libbpf.BpfError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                _log.warning("ifindex %d: no tcx (%s); attaching a clsact filter", ifindex, exc)
        ours = _clsact_warrant(ifindex)
        if ours:
            priority = min(ours)
        else:
            taken = libbpf.tc_priorities(socket.if_indextoname(ifindex))
            priority = min(set(range(1, len(taken) + 2)) - taken)
            if taken and priority > min(taken):
                _log.warning("ifindex %d: TC filters at priorities %s run before Warrant's "
                             "(%d); a verdict of theirs ends the chain before ours",
                             ifindex, sorted(taken), priority)  # fmt: skip
        libbpf.tc_attach(ifindex, self.tc_fd, priority)
        return f"clsact priority {priority}"

    def _attach_tcx(self, ifindex: int) -> None:
        if self.pin_root is None:  # detached when this object closes
            self._links.append(libbpf.tcx_attach(ifindex, self.tc_fd, libbpf.BPF_F_BEFORE))
            return
        libbpf.tcx_attach_pinned(ifindex, self.tc_fd, f"{self.pin_root}/{TCX_LINK_PIN}{ifindex}")

    @staticmethod
    def detach_tc(ifindex: int, pin_root: str = PIN_ROOT) -> None:
        """Remove Warrant's TC attachment from the interface (tcx link or clsact filter)."""
        pin = f"{pin_root}/{TCX_LINK_PIN}{ifindex}"
        if os.path.exists(pin):
            link = libbpf.obj_get(pin)
            try:
                libbpf.link_detach(link)
            finally:
                os.close(link)
            os.unlink(pin)
        # links pinned under another root, or held by a live process: found by program name
        # (reading it needs CAP_SYS_ADMIN; without it only the pin above is found)
        with contextlib.suppress(libbpf.BpfError):
            for prog, link_id in libbpf.tcx_query_links(ifindex):
                if link_id and libbpf.prog_name(prog) == "warrant_tc":
                    link = libbpf.link_fd_by_id(link_id)
                    try:
                        libbpf.link_detach(link)
                    finally:
                        os.close(link)
        for priority in _clsact_warrant(ifindex):
            libbpf.tc_detach(ifindex, priority)

    # ---- configuration -----------------------------------------------------------------
    def set_ports(self, ports: Iterable[int]) -> None:
        """Which UDP destination ports are Warrant ports (replaces the whole set at once)."""
        value = PortSet()
        for p in ports:
            if not 0 <= int(p) <= 0xFFFF:
                raise ValueError(f"port {p} out of range")
            value.bits[int(p) >> 6] |= 1 << (int(p) & 63)
        libbpf.map_update(self.fd["warrant_ports"], ctypes.c_uint32(0), value)

    def ports(self) -> set[int]:
        value = PortSet()
        libbpf.map_lookup(self.fd["warrant_ports"], ctypes.c_uint32(0), value)
        return {w * 64 + b for w, word in enumerate(value.bits) for b in range(64) if word >> b & 1}

    def set_config(self, admit_sample: int = DP_ADMIT_SAMPLE, pass_events: bool = False,
                   drop_events: bool = True, budget: bool = True) -> None:  # fmt: skip
        """Events: one admit in `admit_sample` (a power of two; 0 for none), every drop
        unless drop_events=False, PASS verdicts when pass_events; budget=False lifts
        the per-CPU event budget (tests that need one event per frame)."""
        if admit_sample and admit_sample & (admit_sample - 1):
            raise ValueError("admit_sample must be a power of two")
        mask = admit_sample - 1 if admit_sample else 0xFFFFFFFF
        flags = (
            (CONFIG_PASS_EVENTS if pass_events else 0)
            | (0 if drop_events else CONFIG_NO_DROP_EVENTS)
            | (0 if budget else CONFIG_NO_BUDGET)
        )
        libbpf.map_update(self.fd["warrant_config"], ctypes.c_uint32(0), ConfigValue(mask, flags))

    def set_time(self, now: float | None) -> None:
        """Freeze the kernel clock at wall time `now` (seconds), or None for the live clock.

        Live: the kernel reads bpf_ktime_get_coarse_ns() and expiries are converted
        onto that clock at install time, so time keeps running without an agent."""
        if now is None:
            self._frozen, self._offset_ns = False, _mono_coarse_ns() - time.time_ns()
            value = ClockValue(0, 0)
        else:
            self._frozen, self._offset_ns = True, 0
            value = ClockValue(to_kernel_ns(now, 0), 1)
        libbpf.map_update(self.fd["warrant_clock"], ctypes.c_uint32(0), value)

    def set_reject_bucket(self, tat_ns: int) -> None:
        """Set every CPU's REJECT bucket (bpf/reject.h) to theoretical arrival time tat_ns
        (kernel clock): 0 is a full bucket, a time far ahead an empty one (benchmarks)."""
        value = self._percpu()
        for v in value:
            v.reject_tat = tat_ns
        libbpf.map_update(self.fd["warrant_percpu"], ctypes.c_uint32(0), value)

    def _clock(self) -> ClockValue:
        value = ClockValue()
        libbpf.map_lookup(self.fd["warrant_clock"], ctypes.c_uint32(0), value)
        return value

    def kernel_ns(self, wall: float) -> int:
        return to_kernel_ns(wall, self._offset_ns)

    def wall_time(self, kernel_ns: int) -> float:
        """A kernel clock reading (an event's time) as wall-clock seconds."""
        return (kernel_ns - self._offset_ns) / 1e9

    def kernel_now(self) -> int:
        """The kernel clock's current reading (ns), as the program sees it."""
        clock = self._clock()
        return int(clock.now) if clock.frozen else _mono_coarse_ns()

    def expire(self) -> list[bytes]:
        """Remove every installed session whose lifetime is over; their ids."""
        now = self.kernel_now()
        ended = []
        for sid in self.session_ids():
            v = self.session(sid)
            if v is not None and now >= v.expires_ns:
                self.remove_session(sid)
                ended.append(sid)
        return ended

    # ---- sessions ----------------------------------------------------------------------
    def session_value(self, s: Session) -> SessionValue:
        if len(s.path) > MAX_HOPS:
            raise ValueError(f"{len(s.path)} hops above MAX_HOPS")
        v = SessionValue()
        v.k_mac[:] = list(s.mac_key)
        v.expires_ns = self.kernel_ns(s.expires)
        v.port = s.port
        v.hop_count = len(s.path)
        v.bad_mac_tokens = DP_BAD_MAC_BURST
        v.bad_mac_tick = 0
        for i, hop in enumerate(s.path):
            v.hops[i].tag[:] = list(hop.tag)
            v.hops[i].k_hop[:] = list(hop.key)
        return v

    def session_ids(self) -> list[bytes]:
        """Installed sessions the kernel still has (it removes expired ones itself)."""
        placed = [sid for sid in self._slots if self._slot_holds(sid)]
        return [*self._hashed_ids(), *placed]

    def _slot_holds(self, sid: bytes) -> bool:
        v = SessionValue()
        key = sid_key(sid)
        return libbpf.map_lookup(self.fd["warrant_session_slots"], slot_of(key), v) and (
            v.sid == key.value
        )

    def _write_session(self, session_id: bytes, value: SessionValue) -> None:
        """Write a session's value where it lives: its slot when it has one or the slot is
        free (bpf/session.h: a slot is written with sid 0, or with the sid it holds, so
        the kernel never reads one session's id over another's fields), else the hash."""
        key = sid_key(session_id)
        slot = slot_of(key)
        fd = self.fd["warrant_session_slots"]
        if session_id not in self._slots:
            if key.value == 0 or slot.value in self._slots_taken or session_id in self._hashed:
                value.sid = 0
                libbpf.map_update(self.fd["warrant_sessions"], key, value)
                self._hashed.add(session_id)
                return
            value.sid = 0
            libbpf.map_update(fd, slot, value)  # the fields first, under no session's id
            self._slots[session_id] = slot.value
            self._slots_taken.add(slot.value)
        value.sid = key.value
        libbpf.map_update(fd, slot, value)

    def install_session(self, s: Session) -> None:
        """Install or refresh a session.  The replay window is written once, from the
        session's window, when the session gets its window index; a refresh keeps the
        index and never rewrites the window (it must not reset it)."""
        if s.window.top < 0:
            raise ValueError("a session's window records seq 0 at opening (SPEC 6.2 step 14)")
        index = self._windows.get(s.session_id)
        if index is None:
            w = ReplayValue.from_window(s.window.top, list(s.window.words))
            index = self._new_window(w)
            self._windows[s.session_id] = index
        if s.session_id not in self._installed:  # filter first: no false negatives
            self._installed.add(s.session_id)
            self._filter_add(s.session_id, +1)
        value = self.session_value(s)
        value.window = index
        self._write_session(s.session_id, value)

    def _new_window(self, w: ReplayValue) -> int:
        """A free window index, with w written into it."""
        fd = self.fd["warrant_replay"]
        if self._fresh_window is not None:
            index = self._fresh_window
            try:
                libbpf.map_update(fd, ctypes.c_uint32(index), w)
                self._fresh_window += 1
                return index
            except libbpf.BpfError as exc:
                if exc.errno != errno.E2BIG:  # past max_entries: reuse freed ones from now
                    raise
                self._fresh_window = None
        if not self._free_windows:
            raise libbpf.BpfError(errno.ENOSPC, "every replay window index is in use")
        index = self._free_windows.popleft()
        libbpf.map_update(fd, ctypes.c_uint32(index), w)
        return index

    def set_session_expiry(self, session_id: bytes, expires: float) -> bool:
        """Rewrite an installed session's expiry (wall time, seconds); False if it is gone.
        Keys, hops and window stay as the kernel has them."""
        v = self.session(session_id)
        if v is None:
            return False
        v.expires_ns = self.kernel_ns(expires)
        self._write_session(session_id, v)
        return True

    def remove_session(self, session_id: bytes) -> None:
        key = sid_key(session_id)
        libbpf.map_delete(self.fd["warrant_sessions"], key)
        self._hashed.discard(session_id)
        if self._slots.pop(session_id, None) is not None:
            self._slots_taken.discard(slot_of(key).value)
            v = SessionValue()
            fd = self.fd["warrant_session_slots"]
            if libbpf.map_lookup(fd, slot_of(key), v) and v.sid == key.value:
                v.sid = 0  # the same fields under no id: the slot is free
                libbpf.map_update(fd, slot_of(key), v)
        index = self._windows.pop(session_id, None)
        if index is not None:  # after the session is gone: no new packet finds the index
            self._free_windows.append(index)
        if session_id in self._installed:  # the kernel may have removed it already
            self._installed.discard(session_id)
            self._filter_add(session_id, -1)
        self.drop_record(session_id)  # after the entry: no DATA is admitted without it

    # ---- resumption records (warrant_session_secrets) ----------------------------------------
    def put_record(self, session_id: bytes, record: bytes) -> None:
        """Keep a session's resumption record (an opaque blob; kernel_store.py encodes it)
        in kernel memory that outlives the agent.  Parts after the first are written first,
        so a record whose part 0 is there is whole.  ValueError above RECORD_MAX_PARTS."""
        parts = [record[i : i + RECORD_PART] for i in range(0, len(record), RECORD_PART)]
        if not parts or len(parts) > RECORD_MAX_PARTS:
            raise ValueError(f"a session record of {len(record)} bytes does not fit")
        key = sid_key(session_id).value
        for n in range(len(parts) - 1, -1, -1):
            value = RecordPart(len(record))
            ctypes.memmove(value.data, parts[n], len(parts[n]))
            libbpf.map_update(self.secrets_fd, RecordKey(key, n), value)

    def record(self, session_id: bytes) -> bytes | None:
        """A session's resumption record, or None (none, or not whole)."""
        key, value = sid_key(session_id).value, RecordPart()
        if not libbpf.map_lookup(self.secrets_fd, RecordKey(key, 0), value):
            return None
        length = int(value.length)
        count = -(-length // RECORD_PART)
        if not 0 < count <= RECORD_MAX_PARTS:
            return None
        out = bytearray(bytes(value.data))
        for n in range(1, count):
            if not libbpf.map_lookup(self.secrets_fd, RecordKey(key, n), value) or (
                value.length != length
            ):
                return None
            out += bytes(value.data)
        return bytes(out[:length])

    def drop_record(self, session_id: bytes) -> None:
        """Delete a session's record (part 0 first: a half-deleted record is not whole).
        Parts left without their part 0 (a crash mid-delete) belong to no session in the
        kernel: `sweep_records` deletes them."""
        key, value = sid_key(session_id).value, RecordPart()
        if not libbpf.map_lookup(self.secrets_fd, RecordKey(key, 0), value):
            return
        for n in range(min(RECORD_MAX_PARTS, max(1, -(-int(value.length) // RECORD_PART)))):
            libbpf.map_delete(self.secrets_fd, RecordKey(key, n))

    def record_ids(self) -> set[bytes]:
        """Sessions with (a part of) a record (a pass over the map: seldom)."""
        return {
            int(k.sid).to_bytes(8, "little") for k in libbpf.map_keys(self.secrets_fd, RecordKey)
        }

    def sweep_records(self, live: set[bytes]) -> int:
        """Delete every record part of a session not in `live` (records the kernel's own
        expiry or a crash left behind; a pass over the map: seldom); how many parts."""
        gone = [k for k in libbpf.map_keys(self.secrets_fd, RecordKey)
                if int(k.sid).to_bytes(8, "little") not in live]  # fmt: skip
        for k in gone:
            libbpf.map_delete(self.secrets_fd, k)
        return len(gone)

    # ---- presence filter (bpf/session.h) -------------------------------------------------
    @staticmethod
    def _filter_bit(session_id: bytes) -> int:
        return int.from_bytes(session_id[:2], "little")

    def _filter_add(self, session_id: bytes, delta: int) -> None:
        bit = self._filter_bit(session_id)
        n = self._filter_counts.get(bit, 0) + delta
        if n > 0:
            self._filter_counts[bit] = n
        else:
            self._filter_counts.pop(bit, None)
        if (n > 0) != (n - delta > 0):
            self._write_filter()

    def _write_filter(self) -> None:
        value = FilterValue()
        for bit in self._filter_counts:
            value.bits[bit >> 6] |= 1 << (bit & 63)
        libbpf.map_update(self.fd["warrant_session_filter"], ctypes.c_uint32(0), value)

    def _rebuild_filter(self) -> None:
        """Recount from the session map (after reopening pinned maps)."""
        self._installed = set(self.session_ids())
        self._filter_counts = {}
        for sid in self._installed:
            bit = self._filter_bit(sid)
            self._filter_counts[bit] = self._filter_counts.get(bit, 0) + 1
        self._write_filter()

    def _rebuild_windows(self) -> None:
        """Window indices from the session map (after reopening pinned maps): the ones
        live sessions hold are taken, the ones below them free."""
        self._windows = {}
        for sid in self._installed:
            v = self.session(sid)
            if v is not None:
                self._windows[sid] = int(v.window)
        top = max(self._windows.values(), default=-1) + 1
        self._fresh_window = top
        self._free_windows = deque(sorted(set(range(top)) - set(self._windows.values())))


def _remove_stale_pins(pin_root: str) -> None:
    """Unlink pins an older agent left that this program cannot reuse: maps it no longer
    has, and the ordinary one-entry arrays that are global data now (libbpf would refuse
    to reuse them: other flags).  Their content is rebuilt: the session filter from the
    session map, the ports by the agent; configuration and clock start from the defaults."""
    for name in STALE_PINS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{pin_root}/{name}")
            _log.info("removed the unused pin %s/%s", pin_root, name)
    for name in GLOBAL_DATA:
        path = f"{pin_root}/{name}"
        if not os.path.exists(path):
            continue
        fd = libbpf.obj_get(path)
        try:
            stale = not libbpf.map_flags(fd) & libbpf.BPF_F_MMAPABLE
        finally:
            os.close(fd)
        if stale:
            os.unlink(path)
            _log.info("replaced %s: an ordinary map before, the program's global data now", path)


def _open_secrets(pin_root: str | None, max_entries: int) -> int:
    """The fd of warrant_session_secrets: the pinned one, or a new one pinned (root-only:
    bpffs pins are 0600, set again here), or an unpinned one without a pin root.  A hash
    map without preallocation: only the records written take kernel memory."""
    pin = None if pin_root is None else f"{pin_root}/{SECRETS_MAP}"
    if pin is not None and os.path.exists(pin):
        fd = libbpf.obj_get(pin)
        info = MapInfoHead()
        size = ctypes.c_uint(ctypes.sizeof(info))
        libbpf.check(libbpf.lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info),
                                                         ctypes.byref(size)), SECRETS_MAP)  # fmt: skip
        if (info.key_size, info.value_size) != (ctypes.sizeof(RecordKey),
                                                ctypes.sizeof(RecordPart)):  # fmt: skip
            os.close(fd)
            raise libbpf.BpfError(errno.EINVAL, f"{pin}: another layout (remove it: unpin)")
        return fd
    fd = libbpf.map_create(SECRETS_MAP, libbpf.BPF_MAP_TYPE_HASH, ctypes.sizeof(RecordKey),
                           ctypes.sizeof(RecordPart), max_entries,
                           libbpf.BPF_F_NO_PREALLOC | libbpf.BPF_F_RDONLY_PROG)  # fmt: skip
    if pin is not None:
        try:
            libbpf.obj_pin(fd, pin)
            os.chmod(pin, 0o600)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _clsact_warrant(ifindex: int) -> dict[int, int]:
    """priority -> program id of every clsact ingress filter with Warrant's handle."""
    try:
        taken = libbpf.tc_priorities(socket.if_indextoname(ifindex))
    except (OSError, subprocess.CalledProcessError):
        return {}
    found = {p: libbpf.tc_query_id(ifindex, priority=p) for p in taken}
    return {p: i for p, i in found.items() if i}


def _mono_coarse_ns() -> int:
    return time.clock_gettime_ns(_CLOCK_MONOTONIC_COARSE)
