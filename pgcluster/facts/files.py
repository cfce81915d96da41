"""What is at a group of paths on a node (kind, owner, mode, content hash), read with one
command: pgcluster.operations.files checks thirty paths in one round trip with it."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from pyinfra.api import FactBase


@dataclass(frozen=True)
class PathState:
    """What is at a path: kind f (file), d (directory), o (anything else, links included)
    or - (nothing); owner, group and octal mode; sha1 of a file's content."""

    kind: str
    user: str = ""
    group: str = ""
    mode: str = ""
    sha1: str = ""

    @classmethod
    def parse(cls, line: str) -> PathState:
        return cls(*line.split())

    def owned(self, user: str, group: str, mode: str) -> bool:
        return (self.user, self.group) == (user, group) and int(self.mode, 8) == int(mode, 8)


class PathStates(FactBase):
    """The PathState of each path, in order, read with one command."""

    def command(self, paths: Sequence[str]) -> str:
        quoted = " ".join(shlex.quote(path) for path in paths)
        owner = "$(stat -L -c '%U %G %a' \"$p\")"
        # A link to a directory counts as the directory (a /backups mount point may be
        # one); a link where a file belongs does not.
        return (
            f"for p in {quoted}; do "
            f'if [ -f "$p" ] && [ ! -L "$p" ]; then '
            f'echo "f {owner} $(sha1sum < "$p" | cut -c1-40)"; '
            f'elif [ -d "$p" ]; then echo "d {owner}"; '
            'elif [ -e "$p" ] || [ -L "$p" ]; then echo o; '
            "else echo -; fi; done"
        )

    def process(self, output: list[str]) -> list[PathState]:
        return [PathState.parse(line) for line in output]


class MountPoint(FactBase):
    """Whether a path is a mount point (false for a path that does not exist)."""

    def command(self, path: str) -> str:
        return f"mountpoint -q {shlex.quote(path)} && echo yes || echo no"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "yes"
