"""WAL positions: LSNs as numbers and back, and the segment file an LSN lives in.

The one LSN parser of pgcluster (the node scripts have their shell twin in lib.sh).
"""

from __future__ import annotations

import re

LSN_RE = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
SEGMENT_SIZE = 16 * 1024 * 1024  # PostgreSQL's default wal_segment_size
# This node's WAL position in SQL, on a primary or a standby (pg_current_wal_lsn() fails in
# recovery: a standby's is what it received, or replayed from the archive).
NODE_LSN_SQL = ("case when pg_is_in_recovery() then "
                "coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) "
                "else pg_current_wal_lsn() end")


def parse_lsn(lsn: str) -> int:
    """'16/B374D848' -> its position; ValueError for anything that is not an LSN."""
    if not LSN_RE.match(lsn or ""):
        raise ValueError(f"{lsn!r} is not an LSN (like 0/5000060)")
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def position(lsn: str | None) -> int:
    """An LSN a fact reported, as a number for comparisons; 0 when there is none."""
    return parse_lsn(lsn) if lsn else 0


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def wal_file_name(timeline: int, lsn: str, segment_size: int = SEGMENT_SIZE) -> str:
    """The WAL segment file holding an LSN (PostgreSQL's XLogFileName)."""
    segment = parse_lsn(lsn) // segment_size
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segment // per_id:08X}{segment % per_id:08X}"


def segment_end(name: str, segment_size: int = SEGMENT_SIZE) -> int:
    """Where a WAL segment file ends: the position just after its last byte."""
    if not re.fullmatch(r"[0-9A-F]{24}", name):
        raise ValueError(f"{name!r} is not a WAL segment file name")
    per_id = 0x100000000 // segment_size
    segment = int(name[8:16], 16) * per_id + int(name[16:24], 16)
    return (segment + 1) * segment_size
