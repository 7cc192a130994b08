"""The one exception type the core raises: a refusal with its reason code."""

from __future__ import annotations

from .constants import Reason


class WarrantError(Exception):
    """A check failed.  `reason` is the wire reason code; `detail` is one human line."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = Reason(reason)
        self.detail = detail or self.reason.name.lower().replace("_", " ")
        super().__init__(f"{self.reason.name}: {self.detail}")
