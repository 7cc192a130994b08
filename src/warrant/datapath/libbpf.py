"""A small ctypes binding to libbpf.so.1: exactly what the loader, tests and bench use.

Every call that fails raises `BpfError` with the errno libbpf reported.  libbpf
1.x returns negative error codes (or NULL with errno set); both are handled here
so callers never see raw return codes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Callable
from typing import Any

c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_uint = ctypes.c_uint32
c_char_p = ctypes.c_char_p
c_size_t = ctypes.c_size_t

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_REPLACE = 1 << 4
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_TC_INGRESS = 1
BPF_TC_EGRESS = 2
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_XDP = 6


class BpfError(OSError):
    pass


class TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (libbpf 1.1, bpf.h)."""

    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint),
        ("data_size_out", c_uint),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint),
        ("ctx_size_out", c_uint),
        ("retval", c_uint),
        ("repeat", c_int),
        ("duration", c_uint),
        ("flags", c_uint),
        ("cpu", c_uint),
        ("batch_size", c_uint),
    ]


class TcHook(ctypes.Structure):
    """struct bpf_tc_hook."""

    _fields_ = [("sz", c_size_t), ("ifindex", c_int), ("attach_point", c_int), ("parent", c_uint)]


class TcOpts(ctypes.Structure):
    """struct bpf_tc_opts."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint),
        ("prog_id", c_uint),
        ("handle", c_uint),
        ("priority", c_uint),
    ]


SampleFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        return ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError:
        return ctypes.CDLL(name, use_errno=True)


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """The loaded libbpf, with argument and result types declared once."""
    global _lib
    if _lib is not None:
        return _lib
    lb = _load()
    sig: dict[str, tuple[Any, list[Any]]] = {
        "bpf_object__open_file": (c_void_p, [c_char_p, c_void_p]),
        "bpf_object__load": (c_int, [c_void_p]),
        "bpf_object__close": (None, [c_void_p]),
        "bpf_object__find_program_by_name": (c_void_p, [c_void_p, c_char_p]),
        "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
        "bpf_object__next_map": (c_void_p, [c_void_p, c_void_p]),
        "bpf_map__name": (c_char_p, [c_void_p]),
        "bpf_map__fd": (c_int, [c_void_p]),
        "bpf_map__value_size": (c_uint, [c_void_p]),
        "bpf_map__key_size": (c_uint, [c_void_p]),
        "bpf_map__set_pin_path": (c_int, [c_void_p, c_char_p]),
        "bpf_map__reuse_fd": (c_int, [c_void_p, c_int]),
        "bpf_program__fd": (c_int, [c_void_p]),
        "bpf_prog_test_run_opts": (c_int, [c_int, ctypes.POINTER(TestRunOpts)]),
        "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, ctypes.c_uint64]),
        "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
        "bpf_map_lookup_elem_flags": (c_int, [c_int, c_void_p, c_void_p, ctypes.c_uint64]),
        "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
        "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
        "bpf_obj_pin": (c_int, [c_int, c_char_p]),
        "bpf_obj_get": (c_int, [c_char_p]),
        "bpf_xdp_attach": (c_int, [c_int, c_int, c_uint, c_void_p]),
        "bpf_xdp_detach": (c_int, [c_int, c_uint, c_void_p]),
        "bpf_xdp_query_id": (c_int, [c_int, c_int, ctypes.POINTER(c_uint)]),
        "bpf_prog_get_fd_by_id": (c_int, [c_uint]),
        "bpf_obj_get_info_by_fd": (c_int, [c_int, c_void_p, ctypes.POINTER(c_uint)]),
        "bpf_tc_hook_create": (c_int, [ctypes.POINTER(TcHook)]),
        "bpf_tc_hook_destroy": (c_int, [ctypes.POINTER(TcHook)]),
        "bpf_tc_attach": (c_int, [ctypes.POINTER(TcHook), ctypes.POINTER(TcOpts)]),
        "bpf_tc_detach": (c_int, [ctypes.POINTER(TcHook), ctypes.POINTER(TcOpts)]),
        "bpf_tc_query": (c_int, [ctypes.POINTER(TcHook), ctypes.POINTER(TcOpts)]),
        "ring_buffer__new": (c_void_p, [c_int, SampleFn, c_void_p, c_void_p]),
        "ring_buffer__poll": (c_int, [c_void_p, c_int]),
        "ring_buffer__consume": (c_int, [c_void_p]),
        "ring_buffer__free": (None, [c_void_p]),
        "libbpf_num_possible_cpus": (c_int, []),
        "libbpf_set_print": (c_void_p, [c_void_p]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lb, name)
        fn.restype, fn.argtypes = res, args
    _lib = lb
    return lb


def check(rc: int, what: str) -> int:
    """Raise BpfError for a negative libbpf return code; return rc otherwise."""
    if rc < 0:
        code = -rc if rc != -1 else (ctypes.get_errno() or errno.EPERM)
        raise BpfError(code, f"{what}: {os.strerror(code)}")
    return rc


def check_ptr(ptr: int | None, what: str) -> int:
    if not ptr:
        code = ctypes.get_errno() or errno.EINVAL
        raise BpfError(code, f"{what}: {os.strerror(code)}")
    return ptr


def num_possible_cpus() -> int:
    return check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


# ---- objects -----------------------------------------------------------------------------
class BpfObject:
    """An opened (and, after `load`, loaded) ELF object."""

    def __init__(self, path: str) -> None:
        self._obj: int | None = check_ptr(
            lib().bpf_object__open_file(path.encode(), None), f"open {path}"
        )
        self.path = path

    @property
    def handle(self) -> int:
        if self._obj is None:
            raise BpfError(errno.EBADF, "object closed")
        return self._obj

    def maps(self) -> dict[str, int]:
        """Map name -> libbpf map handle (valid until close)."""
        out: dict[str, int] = {}
        m = lib().bpf_object__next_map(self.handle, None)
        while m:
            out[lib().bpf_map__name(m).decode()] = m
            m = lib().bpf_object__next_map(self.handle, m)
        return out

    def set_pin_path(self, map_name: str, path: str) -> None:
        m = check_ptr(lib().bpf_object__find_map_by_name(self.handle, map_name.encode()), map_name)
        check(lib().bpf_map__set_pin_path(m, path.encode()), f"pin path {map_name}")

    def load(self) -> None:
        check(lib().bpf_object__load(self.handle), f"load {self.path}")

    def program_fd(self, name: str) -> int:
        p = check_ptr(lib().bpf_object__find_program_by_name(self.handle, name.encode()), name)
        return check(lib().bpf_program__fd(p), f"fd of {name}")

    def map_fd(self, name: str) -> int:
        m = check_ptr(lib().bpf_object__find_map_by_name(self.handle, name.encode()), name)
        return check(lib().bpf_map__fd(m), f"fd of {name}")

    def map_sizes(self, name: str) -> tuple[int, int]:
        m = check_ptr(lib().bpf_object__find_map_by_name(self.handle, name.encode()), name)
        return int(lib().bpf_map__key_size(m)), int(lib().bpf_map__value_size(m))

    def close(self) -> None:
        if self._obj is not None:
            lib().bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- maps ----------------------------------------------------------------------------------
def map_update(fd: int, key: Any, value: Any, flags: int = BPF_ANY) -> None:
    check(
        lib().bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), flags), "map update"
    )


def map_lookup(fd: int, key: Any, value: Any) -> bool:
    """Fill `value`; False when the key is absent."""
    rc = lib().bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value))
    if rc < 0 and (ctypes.get_errno() == errno.ENOENT or rc == -errno.ENOENT):
        return False
    check(rc, "map lookup")
    return True


def map_delete(fd: int, key: Any) -> bool:
    rc = lib().bpf_map_delete_elem(fd, ctypes.byref(key))
    if rc < 0 and (ctypes.get_errno() == errno.ENOENT or rc == -errno.ENOENT):
        return False
    check(rc, "map delete")
    return True


def map_keys(fd: int, key_type: type[ctypes._SimpleCData[Any]] | Any) -> list[Any]:
    keys = []
    prev = None
    while True:
        nxt = key_type()
        rc = lib().bpf_map_get_next_key(
            fd, ctypes.byref(prev) if prev is not None else None, ctypes.byref(nxt)
        )
        if rc < 0:
            break
        keys.append(nxt)
        prev = nxt
    return keys


def obj_get(path: str) -> int:
    return check(lib().bpf_obj_get(path.encode()), f"open pinned {path}")


BPF_F_MMAPABLE = 1 << 10  # uapi: what libbpf creates global-data (.bss/.data) maps with


def map_flags(fd: int) -> int:
    """A map's creation flags (struct bpf_map_info: type, id, key_size, value_size,
    max_entries, map_flags: six __u32)."""
    info = ctypes.create_string_buffer(128)
    size = c_uint(len(info))
    check(lib().bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)), "BPF map info")
    return int.from_bytes(info.raw[20:24], "little")


# ---- programs ------------------------------------------------------------------------------
class TestRunner:
    """Reusable BPF_PROG_TEST_RUN for many packets: one ctypes setup, one call each.

    With `data_out=True` the kernel copies the frame back after the run (what a
    program that rewrites its packet, e.g. into a REJECT, would transmit): `output()`."""

    def __init__(self, prog_fd: int, max_len: int = 2048, data_out: bool = False) -> None:
        self.prog_fd = prog_fd
        self._buf = ctypes.create_string_buffer(max_len)
        self._opts = TestRunOpts()
        self._opts.sz = ctypes.sizeof(TestRunOpts)
        self._opts.data_in = ctypes.cast(self._buf, c_void_p)
        self._out = ctypes.create_string_buffer(max_len + 256) if data_out else None
        if self._out is not None:
            self._opts.data_out = ctypes.cast(self._out, c_void_p)
        self._run = lib().bpf_prog_test_run_opts
        self._ref = ctypes.byref(self._opts)
        self.max_len = max_len
        self._ctx: ctypes.Array[ctypes.c_char] | None = None  # kept alive across the call

    def run(self, data: bytes, repeat: int = 1, ctx: bytes | None = None) -> tuple[int, int]:
        """Run the program on `data`; `ctx` is its context as the kernel takes it in
        (`skb_ctx` for TC, `xdp_ctx` for XDP), or None for the defaults."""
        n = len(data)
        if n > self.max_len:
            raise ValueError(f"frame of {n} bytes above {self.max_len}")
        ctypes.memmove(self._buf, data, n)
        self._opts.data_size_in = n
        self._ctx = None if ctx is None else ctypes.create_string_buffer(ctx, len(ctx))
        self._opts.ctx_in = None if self._ctx is None else ctypes.cast(self._ctx, c_void_p)
        self._opts.ctx_size_in = 0 if ctx is None else len(ctx)
        # the kernel writes the output size back; with a buffer, it is the buffer's size
        self._opts.data_size_out = len(self._out) if self._out is not None else 0
        self._opts.repeat = repeat
        rc = self._run(self.prog_fd, self._ref)
        if rc < 0:
            check(rc, "BPF_PROG_TEST_RUN")
        return self._opts.retval, self._opts.duration

    def output(self) -> bytes:
        """The frame as the program left it after the last run (needs data_out=True)."""
        if self._out is None:
            raise ValueError("TestRunner(data_out=True) keeps the output frame")
        return self._out.raw[: self._opts.data_size_out]


# struct __sk_buff (linux/bpf.h): the fields BPF_PROG_TEST_RUN takes from user space
_SKB_CTX_LEN, _SKB_GSO_SEGS, _SKB_GSO_SIZE = 192, 164, 176
_XDP_CTX_LEN = 24  # struct xdp_md


def skb_ctx(gso_segs: int = 0, gso_size: int = 0) -> bytes:
    """A TC test-run context: the skb's GSO segment count and size (a merged skb)."""
    ctx = bytearray(_SKB_CTX_LEN)
    struct.pack_into("<I", ctx, _SKB_GSO_SEGS, gso_segs)
    struct.pack_into("<I", ctx, _SKB_GSO_SIZE, gso_size)
    return bytes(ctx)


def xdp_ctx(frame_len: int, ingress_ifindex: int) -> bytes:
    """An XDP test-run context: the frame arrives on `ingress_ifindex` (its rx queue 0),
    so that helpers such as bpf_check_mtu see that device (in the caller's netns)."""
    return struct.pack("<IIIIII", 0, frame_len, 0, ingress_ifindex, 0, 0)  # data, data_end, meta


def xdp_attach(ifindex: int, prog_fd: int, flags: int = 0) -> None:
    check(lib().bpf_xdp_attach(ifindex, prog_fd, flags, None), f"XDP attach to ifindex {ifindex}")


def xdp_detach(ifindex: int, flags: int = 0) -> None:
    check(lib().bpf_xdp_detach(ifindex, flags, None), f"XDP detach from ifindex {ifindex}")


def xdp_query_id(ifindex: int, flags: int = 0) -> int:
    pid = c_uint(0)
    check(lib().bpf_xdp_query_id(ifindex, flags, ctypes.byref(pid)), "XDP query")
    return int(pid.value)


_PROG_INFO_NAME = slice(64, 80)  # struct bpf_prog_info: char name[BPF_OBJ_NAME_LEN] at offset 64


def prog_name(prog_id: int) -> str:
    """The name of a loaded BPF program, from its id (bpf_prog_info.name)."""
    fd = check(lib().bpf_prog_get_fd_by_id(prog_id), f"BPF program {prog_id}")
    try:
        info = ctypes.create_string_buffer(256)
        size = c_uint(len(info))
        check(lib().bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)), "BPF program info")
        return info.raw[_PROG_INFO_NAME].split(b"\0", 1)[0].decode(errors="replace")
    finally:
        os.close(fd)


def prog_id(prog_fd: int) -> int:
    """The id of a program we hold an fd for (bpf_prog_info.id).  Unlike `prog_name` on a
    foreign id, this needs no CAP_SYS_ADMIN: BPF_PROG_GET_FD_BY_ID does, OBJ_GET_INFO
    on our own fd does not."""
    info = ctypes.create_string_buffer(256)
    size = c_uint(len(info))
    check(lib().bpf_obj_get_info_by_fd(prog_fd, info, ctypes.byref(size)), "BPF program info")
    return int.from_bytes(info.raw[4:8], "little")  # struct bpf_prog_info: __u32 type, id


# ---- tcx (Linux 6.6+): BPF links on the TC ingress hook, ordered among other owners' -------
# libbpf 1.1 (Debian 12) predates its tcx API, so these go through bpf(2) directly.
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
BPF_PROG_QUERY, BPF_LINK_CREATE, BPF_LINK_UPDATE, BPF_LINK_DETACH = 16, 28, 29, 34
BPF_LINK_GET_FD_BY_ID = 30
BPF_TCX_INGRESS = 46
BPF_F_BEFORE, BPF_F_AFTER = 1 << 3, 1 << 4


def _bpf(cmd: int, attr: bytearray) -> int:
    """bpf(cmd, attr): the result (an fd for LINK_CREATE), or BpfError with errno."""
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise BpfError(errno.ENOSYS, f"bpf(2) number unknown on {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    rc = int(libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr))))
    if rc < 0:
        code = ctypes.get_errno()
        raise BpfError(code, f"bpf({cmd}): {os.strerror(code)}")
    return rc


def tcx_attach_pinned(ifindex: int, prog_fd: int, pin: str) -> None:
    """prog_fd on ifindex's tcx ingress through a link pinned at `pin`, so the attachment
    outlives this process: a link already pinned there gets prog_fd swapped in (no gap);
    a pin whose link died with its device is replaced by a new link."""
    if os.path.exists(pin):
        link = obj_get(pin)
        try:
            link_update(link, prog_fd)
            return
        except BpfError as exc:
            if exc.errno != errno.ENOLINK:
                raise
            os.unlink(pin)
        finally:
            os.close(link)
    link = tcx_attach(ifindex, prog_fd, BPF_F_BEFORE)
    try:
        obj_pin(link, pin)
    finally:
        os.close(link)


def tcx_attach(ifindex: int, prog_fd: int, flags: int = BPF_F_BEFORE, relative_fd: int = 0) -> int:
    """Attach prog_fd to ifindex's tcx ingress as a BPF link; its fd (the attachment lives
    while the link is open or pinned).  BPF_F_BEFORE with no relative: first of all
    programs there; other owners' programs stay attached.  EINVAL from a kernel before
    6.6 (no tcx)."""
    attr = bytearray(64)  # union bpf_attr, link_create
    struct.pack_into("<IIII", attr, 0, prog_fd, ifindex, BPF_TCX_INGRESS, flags)
    struct.pack_into("<IQ", attr, 16, relative_fd, 0)  # tcx.relative_fd, expected_revision
    return _bpf(BPF_LINK_CREATE, attr)


def link_update(link_fd: int, prog_fd: int) -> None:
    """Swap the program behind a link in place (an agent restart keeps its position)."""
    attr = bytearray(16)
    struct.pack_into("<III", attr, 0, link_fd, prog_fd, 0)
    _bpf(BPF_LINK_UPDATE, attr)


def link_detach(link_fd: int) -> None:
    attr = bytearray(8)
    struct.pack_into("<I", attr, 0, link_fd)
    _bpf(BPF_LINK_DETACH, attr)


def tcx_query(ifindex: int) -> list[int]:
    """Ids of the programs on ifindex's tcx ingress, in the order they run."""
    return [prog for prog, _ in tcx_query_links(ifindex)]


def tcx_query_links(ifindex: int) -> list[tuple[int, int]]:
    """(program id, link id) of each attachment on ifindex's tcx ingress, in run order
    (link id 0: attached without a link)."""
    ids, links = (c_uint * 64)(), (c_uint * 64)()
    attr = bytearray(72)  # union bpf_attr, query
    struct.pack_into("<II", attr, 0, ifindex, BPF_TCX_INGRESS)
    struct.pack_into("<QI", attr, 16, ctypes.addressof(ids), len(ids))  # prog_ids, count
    struct.pack_into("<Q", attr, 40, ctypes.addressof(links))  # link_ids
    _bpf(BPF_PROG_QUERY, attr)
    (count,) = struct.unpack_from("<I", attr, 24)
    return [(int(ids[i]), int(links[i])) for i in range(count)]


def link_fd_by_id(link_id: int) -> int:
    attr = bytearray(12)
    struct.pack_into("<I", attr, 0, link_id)
    return _bpf(BPF_LINK_GET_FD_BY_ID, attr)


BPF_MAP_CREATE, BPF_MAP_TYPE_HASH = 0, 1
BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG = 1 << 0, 1 << 7


def map_create(name: str, map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0) -> int:  # fmt: skip
    """A new map made from user space (no program object); its fd."""
    attr = bytearray(48)  # union bpf_attr, map_create: up to map_name
    struct.pack_into("<IIIII", attr, 0, map_type, key_size, value_size, max_entries, flags)
    struct.pack_into("16s", attr, 28, name.encode()[:15])
    return _bpf(BPF_MAP_CREATE, attr)


def obj_pin(fd: int, path: str) -> None:
    check(lib().bpf_obj_pin(fd, path.encode()), f"pin {path}")


def _tc_hook(ifindex: int) -> TcHook:
    hook = TcHook()
    hook.sz = ctypes.sizeof(TcHook)
    hook.ifindex = ifindex
    hook.attach_point = BPF_TC_INGRESS
    return hook


WARRANT_TC_HANDLE = 0x5741  # "WA": the cls_bpf handle that marks Warrant's own filter


def _tc_opts(handle: int, priority: int, prog_fd: int = 0, flags: int = 0) -> TcOpts:
    opts = TcOpts()
    opts.sz = ctypes.sizeof(TcOpts)
    opts.prog_fd, opts.flags, opts.handle, opts.priority = prog_fd, flags, handle, priority
    return opts


def tc_query_id(ifindex: int, handle: int = WARRANT_TC_HANDLE, priority: int = 1) -> int:
    """The id of the program in the TC ingress filter (handle, priority), 0 when none."""
    hook = _tc_hook(ifindex)
    opts = _tc_opts(handle, priority)
    rc = lib().bpf_tc_query(ctypes.byref(hook), ctypes.byref(opts))
    if rc == -errno.ENOENT or rc == -errno.EINVAL:  # no filter there, or no clsact qdisc
        return 0
    check(rc, "tc query")
    return int(opts.prog_id)


def tc_priorities(ifname: str) -> set[int]:
    """Priorities of every TC ingress filter on the interface, whoever owns them (iproute2:
    libbpf cannot list filters it did not make)."""
    import re
    import subprocess

    out = subprocess.run(["tc", "filter", "show", "dev", ifname, "ingress"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {int(p) for p in re.findall(r"\bpref (\d+)\b", out)}


def tc_attach(ifindex: int, prog_fd: int, priority: int, handle: int = WARRANT_TC_HANDLE) -> None:
    """Attach to clsact ingress at (`priority`, `handle`) (the clsact qdisc is created if
    needed).  BPF_TC_F_REPLACE only when that slot already holds Warrant's own filter;
    otherwise the kernel refuses (EEXIST) rather than replace anyone's."""
    hook = _tc_hook(ifindex)
    rc = lib().bpf_tc_hook_create(ctypes.byref(hook))
    if rc < 0 and rc != -errno.EEXIST:
        check(rc, "tc hook create")
    current = tc_query_id(ifindex, handle, priority)
    if current and prog_name(current) != "warrant_tc":
        raise BpfError(errno.EEXIST, f"TC filter {priority}:{handle:#x} is not ours")
    opts = _tc_opts(handle, priority, prog_fd, 1 if current else 0)  # 1: REPLACE
    check(lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)), "tc attach")


def tc_detach(ifindex: int, priority: int, handle: int = WARRANT_TC_HANDLE) -> None:
    hook = _tc_hook(ifindex)
    opts = _tc_opts(handle, priority)
    check(lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts)), "tc detach")


# ---- ring buffer ---------------------------------------------------------------------------
class RingBuffer:
    """libbpf ring_buffer over one BPF_MAP_TYPE_RINGBUF; `consume` returns raw records."""

    def __init__(self, map_fd: int) -> None:
        self._pending: list[bytes] = []

        def _cb(_ctx: int | None, data: int | None, size: int) -> int:
            self._pending.append(ctypes.string_at(data or 0, size))
            return 0

        self._cb = SampleFn(_cb)  # keep a reference: libbpf calls it later
        self._rb: int | None = check_ptr(
            lib().ring_buffer__new(map_fd, self._cb, None, None), "ring_buffer__new"
        )

    def consume(self) -> list[bytes]:
        if self._rb is None:
            return []
        check(lib().ring_buffer__consume(self._rb), "ring_buffer__consume")
        out, self._pending = self._pending, []
        return out

    def poll(self, timeout_ms: int) -> list[bytes]:
        if self._rb is None:
            return []
        rc = lib().ring_buffer__poll(self._rb, timeout_ms)
        if rc < 0 and rc != -errno.EINTR:
            check(rc, "ring_buffer__poll")
        out, self._pending = self._pending, []
        return out

    def close(self) -> None:
        if self._rb is not None:
            lib().ring_buffer__free(self._rb)
            self._rb = None


def silence() -> None:
    """Stop libbpf printing warnings to stderr (errors still raise)."""
    lib().libbpf_set_print(None)


SampleCallback = Callable[[bytes], None]
