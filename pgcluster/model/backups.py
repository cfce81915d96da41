"""The backup repository as data: what is on the disk, what the registry says, which backup
a restore starts from, and recovery targets. Pure functions, unit-tested without hosts; the
work on the nodes is done by the scripts in pgcluster/node/ (backup-full, backup-incr,
backup-retention, backup-verify, restore-backup).

Repository layout under backup_root (group_data):
    full/<YYYYMMDDTHHMMSSZ>/   base.tar.gz, pg_wal.tar.gz, backup_manifest, backup.info
    full/.inprogress-<ts>/     a backup being written (or an interrupted one)
    incr/<YYYYMMDD>/           <WAL file>.gz and SHA256SUMS: the WAL archived that day
    wal_archive/               archive_command's segments and timeline history files
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pgcluster.errors import ConfigError
from pgcluster.model import pgbackrest
from pgcluster.model.wal import parse_lsn

# Scripts installed on every node (pgcluster/node/<name>.sh -> SCRIPTS_DIR/<name>).
SCRIPTS = ("backup-full", "backup-incr", "backup-retention", "backup-verify", "restore-backup",
           "pgbackrest-job")
BACKUP_KINDS = ("full", "incr", "verify", "retention")
# Written as the registry table's comment; a different value makes the deploy apply
# templates/sql/backups.sql.j2 again (it creates what is missing and widens the kind check).
REGISTRY_VERSION = "pgcluster backup registry v2"
REGISTRY_TABLE = "pgcluster.backups"

STAMP_RE = re.compile(r"^\d{8}T\d{6}Z$")
# How a user may name a full backup: its directory (full/<stamp>) or its label.
BACKUP_NAME_RE = re.compile(r"(?:full/|pgcluster-full-)?\d{8}T\d{6}Z")
PGBACKREST_NAME_RE = pgbackrest.NAME_RE  # its labels, latest, repo<N>/...
RECOVERY_ACTIONS = ("promote", "pause")


def check_backup_name(name: str) -> str:
    """A backup name given to a command, checked before any script sees it: latest, a
    full backup's directory name or its label. ConfigError otherwise."""
    if name == "latest" or BACKUP_NAME_RE.fullmatch(name) or PGBACKREST_NAME_RE.fullmatch(name):
        return name
    raise ConfigError(
        f"backup {name!r} is not a backup name: use latest, a full backup's directory "
        "(20260131T020000Z or full/20260131T020000Z) or its label "
        "(pgcluster-full-20260131T020000Z), or with pgBackRest its label (20260131-020000F, "
        "20260131-020000F_20260201-023000I) or repo2/<label>; `pgcluster backup list` "
        "shows them"
    )


def is_pgbackrest_name(name: str) -> bool:
    """A name of pgBackRest's backups (latest is both engines')."""
    return bool(PGBACKREST_NAME_RE.fullmatch(name))


# ------------------------------------------------------------------------------ the disk


def stamp_time(stamp: str) -> datetime:
    """full/<stamp> -> its UTC time."""
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def parse_info(text: str | Iterable[str]) -> dict[str, str]:
    """A backup.info (key=value lines) as a dict; never evaluated as shell."""
    lines = text.splitlines() if isinstance(text, str) else text
    info: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key and key not in info:
            info[key] = value
    return info


@dataclass
class FullBackup:
    name: str  # the directory under full/: the UTC timestamp it was started at
    size: int = 0
    info: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(STAMP_RE.match(self.name)) and bool(self.info.get("start_wal"))

    @property
    def in_progress(self) -> bool:
        return self.name.startswith(".inprogress-")

    @property
    def label(self) -> str:
        return self.info.get("label", "")

    @property
    def finished_at(self) -> datetime | None:
        value = self.info.get("finished_at")
        return datetime.fromisoformat(value) if value else None

    @property
    def stop_lsn(self) -> str:
        return self.info.get("stop_lsn", "")


@dataclass
class IncrBackup:
    name: str  # incr/<YYYYMMDD>
    files: int = 0
    size: int = 0


@dataclass
class Repository:
    full: list[FullBackup] = field(default_factory=list)
    incr: list[IncrBackup] = field(default_factory=list)
    archive_files: int = 0
    archive_bytes: int = 0
    archive_oldest: str = ""
    archive_newest: str = ""

    @property
    def complete_full(self) -> list[FullBackup]:
        """Complete full backups, oldest first."""
        return sorted((b for b in self.full if b.complete), key=lambda b: b.name)

    def find(self, name: str) -> FullBackup | None:
        """A full backup by directory name (with or without full/) or by label."""
        name = name.removeprefix("full/")
        for backup in self.complete_full:
            if name in (backup.name, backup.label):
                return backup
        return None


def parse_repository(lines: Sequence[str]) -> Repository:
    repo = Repository()
    current: FullBackup | None = None
    for line in lines:
        if line.startswith("@full "):
            parts = line.split()
            current = FullBackup(parts[1], int(parts[2]) if len(parts) > 2 else 0)
            repo.full.append(current)
        elif line.startswith(" ") and current is not None:
            key, _, value = line[1:].partition("=")
            current.info.setdefault(key, value)
        elif line.startswith("@incr "):
            current = None
            _, name, files, size = [*line.split(), "0", "0"][:4]
            repo.incr.append(IncrBackup(name, int(files), int(size)))
        elif line.startswith("@archive "):
            current = None
            parts = [*line.split(), "", "", "", ""]
            repo.archive_files = int(parts[1] or 0)
            repo.archive_bytes = int(parts[2] or 0)
            repo.archive_oldest, repo.archive_newest = parts[3], parts[4]
    return repo


# ----------------------------------------------------------------------- recovery targets


@dataclass(frozen=True)
class RecoveryTarget:
    kind: str  # latest, time, lsn, name
    value: str = ""  # for time: normalised to an explicit UTC offset
    when: datetime | None = None

    @property
    def script_args(self) -> list[str]:
        return [] if self.kind == "latest" else [f"--{self.kind}", self.value]

    def describe(self) -> str:
        return "latest (end of the archive)" if self.kind == "latest" else (
            f"{self.kind} {self.value!r}")


def parse_time(value: str, timezone: str = "UTC") -> datetime:
    """A recovery target time. Without an offset it is in the cluster's `timezone`."""
    text = value.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"recovery target time {value!r} is not a date and time: use ISO 8601, e.g. "
            "'2026-01-31 14:05:00+00' (a time without an offset is read in the cluster's "
            f"timezone, {timezone})"
        ) from exc
    if when.tzinfo is None:
        try:
            when = when.replace(tzinfo=ZoneInfo(timezone))
        except ZoneInfoNotFoundError as exc:
            raise ConfigError(f"unknown timezone {timezone!r} in group data") from exc
    return when


def recovery_target(time: str | None = None, lsn: str | None = None, name: str | None = None,
                    timezone: str = "UTC") -> RecoveryTarget:
    """At most one of time, LSN or restore point name; none means the end of the archive."""
    given = {k: str(v) for k, v in (("time", time), ("lsn", lsn), ("name", name))
             if v not in (None, "")}
    if len(given) > 1:
        raise ConfigError(
            f"choose one recovery target, not {' and '.join(given)}: a time, an LSN or a "
            "restore point name (or none for the end of the archive)"
        )
    if not given:
        return RecoveryTarget("latest")
    kind, value = next(iter(given.items()))
    if kind == "time":
        when = parse_time(value, timezone).astimezone(UTC)
        return RecoveryTarget("time", when.isoformat(sep=" "), when)
    if kind == "lsn":
        try:
            parse_lsn(value)
        except ValueError as exc:
            raise ConfigError(f"recovery target {exc}") from exc
        return RecoveryTarget("lsn", value.upper())
    if len(value) > 63:
        raise ConfigError(f"restore point name {value!r} is longer than 63 characters")
    return RecoveryTarget("name", value)


def select_backup(repo: Repository, target: RecoveryTarget, wanted: str | None = None
                  ) -> FullBackup:
    """The full backup a restore starts from: the one asked for, else the newest one that
    ended before the target (a time or LSN), else the newest."""
    backups = repo.complete_full
    if not backups:
        raise ConfigError("there is no complete full backup in the repository: take one "
                          "first (pgcluster backup full)")
    if wanted and wanted != "latest":
        chosen = repo.find(wanted)
        if chosen is None:
            known = ", ".join(b.name for b in backups)
            raise ConfigError(f"no full backup {wanted!r}; the repository has: {known}")
        candidates = [chosen]
    else:
        candidates = list(reversed(backups))
    for backup in candidates:
        if target.kind == "time" and target.when is not None:
            finished = backup.finished_at
            if finished is None or finished >= target.when:
                continue
        if (target.kind == "lsn" and backup.stop_lsn
                and parse_lsn(backup.stop_lsn) > parse_lsn(target.value)):
            continue
        return backup
    if wanted and wanted != "latest":
        raise ConfigError(
            f"full backup {candidates[0].name} ended after the target {target.describe()}: a "
            "backup can only be rolled forward; choose an older backup"
        )
    oldest = backups[0]
    raise ConfigError(
        f"no full backup ended before the target {target.describe()}; the oldest one, "
        f"{oldest.name}, ended at {oldest.info.get('finished_at', '?')} "
        f"(LSN {oldest.stop_lsn or '?'})"
    )


# --------------------------------------------------------------- registry against the disk


@dataclass(frozen=True)
class Finding:
    kind: str
    name: str
    problem: str


def mismatches(registry: Sequence[Mapping[str, Any]], repo: Repository,
               pgbackrest_labels: Mapping[int, set[str]] | None = None) -> list[Finding]:
    """Where the registry (rows of pgcluster.backups) and the disk disagree; with
    pgbackrest_labels (repository number -> the labels `pgbackrest info` lists), where the
    registry and pgBackRest's repositories disagree too."""
    found: list[Finding] = []
    on_disk_full = {b.name: b for b in repo.complete_full}
    incr_on_disk = {f"incr/{i.name}" for i in repo.incr}
    registered_full = set()
    registered_incr = set()
    registered_pgbackrest: dict[int, set[str]] = {}
    for row in registry:
        kind, path, status = row.get("kind"), row.get("path") or "", row.get("status")
        removed = bool(row.get("removed_at"))
        pgbackrest = re.fullmatch(r"repo(\d+)/(.+)", path) if kind in ("full", "incr") else None
        if pgbackrest:
            number, label = int(pgbackrest.group(1)), pgbackrest.group(2)
            if status == "ok":
                registered_pgbackrest.setdefault(number, set()).add(label)
            if pgbackrest_labels is None:
                continue
            present = label in pgbackrest_labels.get(number, set())
            if status == "ok" and not removed and not present:
                found.append(Finding(kind, path, "registered as ok but pgBackRest does not "
                                     f"list it in repo{number}"))
            if removed and present:
                found.append(Finding(kind, path, "marked removed but pgBackRest still lists it"))
            continue
        if kind == "full":
            registered_full.add(row.get("label"))
            present = path.removeprefix("full/") in on_disk_full
            if status == "ok" and not removed and not present:
                found.append(Finding("full", path, "registered as ok but missing on disk"))
            if removed and present:
                found.append(Finding("full", path, "marked removed but still on disk"))
            if status == "running" and present:
                found.append(Finding("full", path, "on disk but its registry row never "
                                     "finished (still 'running')"))
        elif kind == "incr":
            registered_incr.add(path)
            if status == "ok" and not removed and path not in incr_on_disk:
                found.append(Finding("incr", path, "registered as ok but missing on disk"))
    for name, backup in sorted(on_disk_full.items()):
        if backup.label not in registered_full:
            found.append(Finding("full", f"full/{name}", "on disk but not in the registry"))
    for path in sorted(incr_on_disk - registered_incr):
        found.append(Finding("incr", path, "on disk but not in the registry"))
    for backup in repo.full:
        if not backup.complete and not backup.in_progress:
            found.append(Finding("full", f"full/{backup.name}",
                                 "not a complete pgcluster backup (no backup.info)"))
    for number, labels in sorted((pgbackrest_labels or {}).items()):
        for label in sorted(labels - registered_pgbackrest.get(number, set())):
            found.append(Finding("full" if label.endswith("F") else "incr",
                                 f"repo{number}/{label}",
                                 "in pgBackRest's repository but not in the registry"))
    return found
