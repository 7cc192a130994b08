"""An agent upgraded over pinned state: the ports, session filter, clock and configuration
were ordinary one-entry array maps and are the program's global data now (bpf/wire.h,
session.h, verdict.h), which libbpf creates with other flags and would refuse to reuse.
The loader replaces those pins and removes pins no map uses any more; pinned sessions
survive, and their DATA is admitted by the new program.  Needs root and bpf().
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from warrant.core.constants import AEAD_TAG_LEN, Reason, Verdict
from warrant.core.mac import header_mac
from warrant.core.replay import ReplayWindow
from warrant.core.session import Session
from warrant.core.wire import DataPacket

pytestmark = pytest.mark.root

NOW = 1_800_000_000.0
PORT = 4433
XDP_DROP, XDP_PASS = 1, 2
BPF_MAP_TYPE_ARRAY = 2


@pytest.fixture
def pin_root() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root and bpf()")
    from warrant.datapath.loader import Datapath, mount_bpffs

    mount_bpffs()
    root = f"/sys/fs/bpf/warrant-test-upgrade-{os.getpid()}"
    yield root
    Datapath.unpin(root)


def _session() -> Session:
    window = ReplayWindow()
    window.update(0)
    return Session(
        session_id=bytes(range(1, 9)), mac_key=b"m" * 16, aead_key=b"k" * 32,
        chain=None,  # type: ignore[arg-type]
        operation="op.x", service="svc", port=PORT, path=[], opened=NOW, expires=NOW + 600,
        stamp=NOW, window=window,
    )  # fmt: skip


def _frame(s: Session, seq: int) -> bytes:
    from warrant.datapath.wire import udp_frame

    mac = header_mac(s.mac_key, DataPacket.mac_input(s.session_id, seq))
    return udp_frame(DataPacket(s.session_id, seq, mac, (), bytes(AEAD_TAG_LEN)).encode(), PORT)


def test_upgrade_replaces_old_map_pins_and_keeps_sessions(pin_root: str) -> None:
    from warrant.datapath import libbpf
    from warrant.datapath.loader import GLOBAL_DATA, STALE_PINS, Datapath

    s = _session()
    with Datapath.open(pin_root=pin_root) as dp:
        dp.set_time(NOW)  # expiries are installed on the clock in force
        dp.install_session(s)
        value_sizes = {name: dp.obj.map_sizes(sec)[1] for name, sec in GLOBAL_DATA.items()}
    # What the previous agent left: each global-data pin an ordinary array map (no
    # BPF_F_MMAPABLE, the ports and filter empty), plus pins of maps since removed.
    for name, size in value_sizes.items():
        os.unlink(f"{pin_root}/{name}")
        fd = libbpf.map_create(name[:15], BPF_MAP_TYPE_ARRAY, 4, size, 1)
        try:
            libbpf.obj_pin(fd, f"{pin_root}/{name}")
        finally:
            os.close(fd)
    for name in STALE_PINS:
        fd = libbpf.map_create(name[:15], BPF_MAP_TYPE_ARRAY, 4, 8, 1)
        libbpf.obj_pin(fd, f"{pin_root}/{name}")
        os.close(fd)

    with Datapath.open(pin_root=pin_root) as dp:  # libbpf would refuse the old pins
        for name in GLOBAL_DATA:
            fd = libbpf.obj_get(f"{pin_root}/{name}")
            try:
                assert libbpf.map_flags(fd) & libbpf.BPF_F_MMAPABLE, name
            finally:
                os.close(fd)
        for name in STALE_PINS:
            assert not Path(pin_root, name).exists()
        assert dp.session_ids() == [s.session_id]
        assert dp.set_ports([PORT]) is None and dp.ports() == {PORT}
        dp.set_time(NOW)  # the clock map is new too: live until frozen again
        runner = libbpf.TestRunner(dp.xdp_fd)
        before = dp.counters()
        assert runner.run(_frame(s, 1))[0] == XDP_PASS  # the filter was rebuilt: found
        assert runner.run(_frame(s, 1))[0] == XDP_DROP
        after = dp.counters()
        moved = {k: after[k][0] - before.get(k, (0, 0))[0] for k in after}
        assert moved[(Verdict.ADMIT, Reason.OK)] == 1
        assert moved[(Verdict.DROP, Reason.REPLAY)] == 1
        # the configuration map started from the program's default: one admit in 64
        cfg = ctypes.c_uint64()
        libbpf.map_lookup(dp.fd["warrant_config"], ctypes.c_uint32(0), cfg)
        assert cfg.value & 0xFFFFFFFF == 63
