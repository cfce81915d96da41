"""pgBackRest on the primary: its stanza in every repository, created once."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation

from pgcluster.facts.backups import PgbackrestInfo
from pgcluster.model import pgbackrest


@operation()
def stanza(stanza: str):
    """stanza-create where a repository lacks the stanza, then `check` (a WAL segment
    archived and found in every repository): nothing when every repository has it."""
    info = host.get_fact(PgbackrestInfo, stanza=stanza,
                         io_timeout=int(host.data.get("pgbackrest_info_io_timeout", 60)))
    if info is not None and info.repo_status and all(
            status in pgbackrest.STANZA_PRESENT for status in info.repo_status.values()):
        return
    quoted = shlex.quote(stanza)
    yield (f"cd / && runuser -u postgres -- pgbackrest --stanza={quoted} stanza-create "
           f"&& runuser -u postgres -- pgbackrest --stanza={quoted} check")
