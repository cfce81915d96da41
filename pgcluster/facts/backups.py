"""The backup repository as a node sees it: full/, incr/ and wal_archive/ under backup_root,
listed read-only and parsed into pgcluster.model.backups.Repository."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase

from pgcluster.model import pgbackrest
from pgcluster.model.backups import Repository, parse_repository


def repository_command(full_dir: str, incr_dir: str, archive_dir: str) -> str:
    """Shell that lists the repository for parse_repository (run on a node; read-only)."""
    return "; ".join(
        [
            f"F={full_dir}; I={incr_dir}; A={archive_dir}",
            'for d in "$F"/*/ "$F"/.inprogress-*/; do [ -d "$d" ] || continue; '
            'echo "@full $(basename "$d") $(du -sb "$d" | cut -f1)"; '
            '[ -f "$d/backup.info" ] && sed "s/^/ /" "$d/backup.info"; done',
            'for d in "$I"/*/; do [ -d "$d" ] || continue; '
            'echo "@incr $(basename "$d") $(find "$d" -maxdepth 1 -name "*.gz" | wc -l) '
            '$(du -sb "$d" | cut -f1)"; done',
            'if [ -d "$A" ]; then S=$(ls "$A" | grep -E "^[0-9A-F]{24}$" | sort); '
            'echo "@archive $(find "$A" -maxdepth 1 -type f ! -name ".*" | wc -l) '
            '$(du -sb "$A" | cut -f1) $(echo "$S" | head -n 1) $(echo "$S" | tail -n 1)"; fi',
            "true",
        ]
    )


class BackupRepository(FactBase):
    """The backup repository as this node sees it (full/, incr/, wal_archive/ under
    backup_root): a pgcluster.model.backups.Repository. Read-only; an absent directory is
    empty."""

    def command(self, full_dir: str, incr_dir: str, archive_dir: str) -> str:
        return repository_command(full_dir, incr_dir, archive_dir)

    def process(self, output: list[str]) -> Repository:
        return parse_repository(output)

    def default(self) -> Repository:
        return Repository()


class WalArchive(FactBase):
    """The WAL archive's newest segment (by position: the furthest WAL the primary is known
    to have written) and when the archive last received a file; None when it holds no
    segment."""

    def command(self, archive_dir: str) -> str:
        quoted = shlex.quote(archive_dir)
        return (f"find {quoted} -maxdepth 1 -type f -printf '%T@ %f\\n' 2>/dev/null | "
                "awk 'length($2) == 24 && $2 ~ /^[0-9A-F]+$/ && substr($2, 9) > substr(n, 9) "
                "{ n = $2 } $1 > t { t = $1 } END { if (n != \"\") print n, t }'")

    def process(self, output: list[str]) -> dict[str, Any] | None:
        if not output or not output[0].strip():
            return None
        newest, last = output[0].split()
        return {"newest_segment": newest, "last_file_at": float(last)}

    def default(self) -> None:
        return None


class PgbackrestInfo(FactBase):
    """`pgbackrest info --output=json` of the stanza, as postgres, parsed
    (pgcluster.model.pgbackrest.StanzaInfo); None where pgBackRest is not installed or
    configured, or knows no such stanza. `io_timeout`: seconds without an answer before a
    repository counts as unreachable (pgBackRest tries four times; its default, 60 s, would
    keep `backup list` waiting four minutes for an object store that is down)."""

    def command(self, stanza: str, io_timeout: int = 60) -> str:
        return (f"if command -v pgbackrest >/dev/null && [ -r {pgbackrest.CONFIG_FILE} ]; then "
                f"cd / && runuser -u postgres -- pgbackrest --stanza={shlex.quote(stanza)} "
                f"--io-timeout={int(io_timeout)} --output=json info 2>/dev/null; fi; true")

    def process(self, output: list[str]) -> pgbackrest.StanzaInfo | None:
        text = "\n".join(output).strip()
        if not text:
            return None
        try:
            stanzas = json.loads(text, strict=False)
        except ValueError:
            return None
        name = stanzas[0].get("name") if stanzas else None
        return pgbackrest.parse_info(text, name) if name else None

    def default(self) -> None:
        return None
