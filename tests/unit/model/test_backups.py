"""The backup repository as data: which backup a restore starts from, recovery targets, and
where the registry and the disk disagree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pgcluster.errors import ConfigError
from pgcluster.model.backups import (
    FullBackup,
    IncrBackup,
    Repository,
    check_backup_name,
    mismatches,
    recovery_target,
    select_backup,
)


def seg(position: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{0:08X}{position:08X}"


def backup(name: str, finished: str, stop_lsn: str, label: str = "") -> FullBackup:
    return FullBackup(name, 1, {"label": label or f"pgcluster-full-{name}",
                                "start_wal": seg(1), "finished_at": finished,
                                "stop_lsn": stop_lsn})


REPO = Repository(full=[
    backup("20260110T020000Z", "2026-01-10T02:05:00Z", "0/10000100"),
    backup("20260117T020000Z", "2026-01-17T02:05:00Z", "0/20000100"),
    backup("20260124T020000Z", "2026-01-24T02:05:00Z", "0/30000100"),
])


def test_the_restore_starts_from_the_newest_backup_before_the_target() -> None:
    assert select_backup(REPO, recovery_target()).name == "20260124T020000Z"
    target = recovery_target(time="2026-01-20 12:00:00+00")
    assert select_backup(REPO, target).name == "20260117T020000Z"
    # A backup still running at the target cannot be rolled back to it.
    target = recovery_target(time="2026-01-17 02:03:00+00")
    assert select_backup(REPO, target).name == "20260110T020000Z"
    assert select_backup(REPO, recovery_target(lsn="0/25000000")).name == "20260117T020000Z"
    assert select_backup(REPO, recovery_target(name="x")).name == "20260124T020000Z"
    assert select_backup(REPO, recovery_target(), "pgcluster-full-20260110T020000Z").name \
        == "20260110T020000Z"


def test_impossible_restores_are_explained() -> None:
    with pytest.raises(ConfigError, match="no full backup ended before the target"):
        select_backup(REPO, recovery_target(time="2026-01-01 00:00:00+00"))
    with pytest.raises(ConfigError, match="ended after the target"):
        select_backup(REPO, recovery_target(time="2026-01-20 00:00:00+00"), "20260124T020000Z")
    with pytest.raises(ConfigError, match="no full backup 'nope'"):
        select_backup(REPO, recovery_target(), "nope")
    with pytest.raises(ConfigError, match="no complete full backup"):
        select_backup(Repository(), recovery_target())


def test_recovery_targets() -> None:
    assert recovery_target().kind == "latest" and recovery_target().script_args == []
    target = recovery_target(time="2026-07-01 12:00:00", timezone="Europe/Madrid")
    assert target.value == "2026-07-01 10:00:00+00:00"  # explicit UTC for PostgreSQL
    assert target.when == datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert recovery_target(lsn="0/5000abc").script_args == ["--lsn", "0/5000ABC"]
    assert recovery_target(name="antes").script_args == ["--name", "antes"]
    with pytest.raises(ConfigError, match="choose one recovery target, not time and lsn"):
        recovery_target(time="2026-01-01", lsn="0/1")
    with pytest.raises(ConfigError, match="not a date and time"):
        recovery_target(time="yesterday")
    with pytest.raises(ConfigError, match="not an LSN"):
        recovery_target(lsn="5000060")


def test_registry_and_disk_mismatches() -> None:
    repo = Repository(
        full=[backup("20260124T020000Z", "x", "0/1"), backup("20260125T020000Z", "x", "0/2"),
              FullBackup("20260126T020000Z", 1, {})],
        incr=[IncrBackup("20260124"), IncrBackup("20260125")])
    rows = [
        {"kind": "full", "label": "pgcluster-full-20260124T020000Z",
         "path": "full/20260124T020000Z", "status": "ok", "removed_at": ""},
        {"kind": "full", "label": "pgcluster-full-20260101T020000Z",
         "path": "full/20260101T020000Z", "status": "ok", "removed_at": ""},
        {"kind": "full", "label": "pgcluster-full-20260102T020000Z",
         "path": "full/20260102T020000Z", "status": "ok", "removed_at": "2026-01-20"},
        {"kind": "full", "label": "pgcluster-full-20260103T020000Z",
         "path": "full/20260103T020000Z", "status": "failed", "removed_at": ""},
        {"kind": "incr", "path": "incr/20260124", "status": "ok", "removed_at": ""},
        {"kind": "incr", "path": "incr/20260120", "status": "ok", "removed_at": ""},
    ]
    found = {(f.name, f.problem) for f in mismatches(rows, repo)}
    assert found == {
        ("full/20260101T020000Z", "registered as ok but missing on disk"),
        ("full/20260125T020000Z", "on disk but not in the registry"),
        ("full/20260126T020000Z", "not a complete pgcluster backup (no backup.info)"),
        ("incr/20260120", "registered as ok but missing on disk"),
        ("incr/20260125", "on disk but not in the registry"),
    }
    assert mismatches(rows[:1] + rows[2:4] + rows[4:5],
                      Repository(full=repo.full[:1], incr=repo.incr[:1])) == []


@pytest.mark.parametrize("name", ["latest", "20260131T020000Z", "full/20260131T020000Z",
                                  "pgcluster-full-20260131T020000Z"])
def test_backup_names_a_user_may_give(name: str) -> None:
    assert check_backup_name(name) == name


@pytest.mark.parametrize("name", ["../../etc", "20260131T020000Z; rm -rf /", "$(id)",
                                  "full/latest", "2026-01-31", "20260131T020000Z\n", ""])
def test_anything_else_is_refused_before_a_script_sees_it(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a backup name"):
        check_backup_name(name)
