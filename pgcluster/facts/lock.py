"""The operation lock a node holds, if any (pgcluster.model.lock)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from pgcluster.model.lock import LOCK_FILE, LockRecord


class OperationLock(FactBase):
    """The LockRecord in the node's lock file, or None when no operation holds it."""

    def command(self, path: str = LOCK_FILE) -> str:
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output: list[str]) -> LockRecord | None:
        return LockRecord.parse("\n".join(output))

    def default(self) -> None:
        return None
