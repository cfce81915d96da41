"""The cluster-wide operation lock as data: who holds it, for what, since when.

One change at a time: the cluster deploy, failover, switchover, rejoin, restore and
service control each hold the lock on every node they reach while they change anything.
A second operator (or a second terminal) is refused with who holds it. A holder that died
without releasing it (killed, power loss) leaves a stale lock, which only a named flag
breaks (--break-lock, pyinfra --data break_lock=yes).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

LOCK_FILE = "/var/lib/pgcluster/operation.lock"
_SAFE = re.compile(r"[^\w@.:/+=, -]")  # what a lock field may hold: no quotes, no newlines


@dataclass(frozen=True)
class LockRecord:
    holder: str  # user@control-machine
    pid: int  # the pyinfra process on the control machine
    command: str  # what runs, as the user typed it
    started: str  # UTC, ISO 8601
    token: str  # this run's identity

    def to_text(self) -> str:
        return "".join(f"{key}={_SAFE.sub('_', str(value))}\n" for key, value in (
            ("holder", self.holder), ("pid", self.pid), ("command", self.command),
            ("started", self.started), ("token", self.token)))

    @classmethod
    def parse(cls, text: str) -> LockRecord | None:
        fields = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
        if not fields.get("token"):
            return None
        try:
            pid = int(fields.get("pid", "0"))
        except ValueError:
            pid = 0
        return cls(fields.get("holder", "?"), pid, fields.get("command", "?"),
                   fields.get("started", "?"), fields["token"])

    def describe(self, now: float | None = None) -> str:
        age = ""
        try:
            since = datetime.fromisoformat(self.started).timestamp()
            age = f", {(now if now is not None else time.time()) - since:.0f}s ago"
        except ValueError:
            pass
        return f"`{self.command}` by {self.holder} (pid {self.pid}) since {self.started}{age}"


def new_record(holder: str, pid: int, command: str, token: str,
               now: float | None = None) -> LockRecord:
    started = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return LockRecord(holder, pid, command, started.isoformat(timespec="seconds"), token)


def refusal(node: str, held: LockRecord, now: float | None = None) -> str:
    return (
        f"the cluster is busy: {node} holds the operation lock of {held.describe(now)}. "
        "Wait for it to finish. If that run is gone (killed, or its machine lost), look at "
        "the cluster first (pgcluster status), then break the lock by name: --break-lock "
        "(pyinfra: --data break_lock=yes)."
    )
