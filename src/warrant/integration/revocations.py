"""A directory of signed revocation lists, reloaded when it changes.

`warrant agent`, `warrant listen` and `warrant relay` take `--revocations DIR`.
Every regular file in DIR is read as one revocation list (core/revocation.py)
and verified against the trust store in force.  A loaded list is never dropped,
only replaced by a list of its (scope, anchor) with a higher serial (the
anchor's own newer decision); a file that is removed, unreadable, unsigned,
badly signed, from an unknown anchor, or older (a rollback) changes nothing:
the previous lists stay in force and the refusal is reported with its reason,
once per change of the directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ..core.anchors import TrustStore
from ..core.errors import WarrantError
from ..core.revocation import RevocationList, RevocationStore

_Stamp = tuple[tuple[str, int, int], ...]


class RevocationWatcher:
    """`poll()` returns (the new store or None when nothing new was accepted, refusals)."""

    def __init__(self, directory: Path, trust: Callable[[], TrustStore]) -> None:
        if not directory.is_dir():
            raise ValueError(f"--revocations: {directory} is not a directory")
        self.directory = directory
        self._trust = trust
        self.store = RevocationStore()
        self._stamp: _Stamp | None = None

    def _read_stamp(self) -> _Stamp:
        out = []
        with os.scandir(self.directory) as it:
            for entry in it:
                if entry.is_file() and not entry.name.startswith("."):
                    st = entry.stat()
                    out.append((entry.name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(out))

    def poll(self) -> tuple[RevocationStore | None, list[str]]:
        try:
            stamp = self._read_stamp()
        except OSError as exc:
            return None, [f"{self.directory}: {exc.strerror or exc}; previous lists kept"]
        if stamp == self._stamp:
            return None, []
        self._stamp = stamp
        trust = self._trust()
        store = RevocationStore()
        for rl in self.store.lists.values():  # never dropped (checked again: trust moves)
            # an anchor no longer trusted: nothing it signed is admitted anyway
            with contextlib.suppress(WarrantError):
                store.load(rl, trust)
        changed, errors = False, []
        for name, _, _ in stamp:
            try:
                rl = RevocationList.decode((self.directory / name).read_bytes())
                current = store.lists.get((rl.scope, rl.anchor_id))
                if current is not None and current.serial == rl.serial and current.body == rl.body:
                    continue  # already in force
                if store.load(rl, trust):
                    changed = True
                    continue
                assert current is not None  # load() refuses only an equal or newer serial
                errors.append(f"{name}: serial {rl.serial} is not above the loaded "
                              f"{current.serial} (rollback refused)")  # fmt: skip
            except WarrantError as exc:
                errors.append(f"{name}: {exc.reason.name}: {exc.detail}")
            except OSError as exc:
                errors.append(f"{name}: {exc.strerror or exc}")
        if not changed:
            return None, errors
        self.store = store
        return store, errors
