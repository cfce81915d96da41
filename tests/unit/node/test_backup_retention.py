"""backup-retention: its choices run for real on a repository tree (--plan prints them and
changes nothing); a real run removes them and marks the registry, on the primary only."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.unit.node.conftest import FakeNode


def make_tree(root: Path, fulls: dict[str, str], wal: list[str], incr: dict[str, list[str]]
              ) -> None:
    for name, start_wal in fulls.items():
        directory = root / "full" / name
        directory.mkdir(parents=True)
        (directory / "backup.info").write_text(
            f"kind=full\nlabel=pgcluster-full-{name}\nstart_wal={start_wal}\n")
    (root / "wal_archive").mkdir(parents=True, exist_ok=True)
    for name in wal:
        (root / "wal_archive" / name).write_bytes(b"w")
    for day, files in incr.items():
        (root / "incr" / day).mkdir(parents=True)
        for name in files:
            (root / "incr" / day / name).write_bytes(b"g")


def plan(node: FakeNode, *args: str, days: int = 7) -> subprocess.CompletedProcess:
    node.settings(BACKUP_RETENTION_DAYS=days)
    return node.run("backup-retention", "--plan", *args)


def seg(position: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{0:08X}{position:08X}"


NOW = ["--now", "2026-01-31 00:00:00 UTC"]  # 7-day window: from 2026-01-24 00:00


def window_tree(node: FakeNode) -> Path:
    fulls = {"20260101T020000Z": seg(0x0A), "20260111T020000Z": seg(0x14),
             "20260122T020000Z": seg(0x1E), "20260125T020000Z": seg(0x28),
             "20260130T020000Z": seg(0x32)}
    wal = [seg(p) for p in range(0x01, 0x40)] + [
        "00000002.history", f"{seg(0x1D)}.partial", f"{seg(0x1D)}.00000028.backup",
        f"{seg(0x1E)}.00000028.backup", seg(0x1D, timeline=2), seg(0x1E, timeline=2),
        "README"]
    incr = {"20260101": [], "20260110": [f"{seg(p)}.gz" for p in range(0x10, 0x14)],
            "20260123": [f"{seg(0x1D)}.gz", f"{seg(0x1E)}.gz"], "20260130": []}
    make_tree(node.repo, fulls, wal, incr)
    (node.full / ".inprogress-20260130T030000Z").mkdir()
    stale = node.archive / f".{seg(0x3F)}.123.tmp"
    stale.write_bytes(b"t")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    (node.archive / ".fresh.456.tmp").write_bytes(b"t")
    return stale


def test_retention_keeps_the_window_and_the_wal_its_oldest_backup_needs(node: FakeNode) -> None:
    stale = window_tree(node)
    before = sorted(p.relative_to(node.repo) for p in node.repo.rglob("*"))

    result = plan(node, *NOW)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    removed = {tuple(line.split()[1:]) for line in lines if line.startswith("remove ")}
    kept = [line.split()[2] for line in lines if line.startswith("keep full ")]
    # 20260122 is the newest backup before the window: restoring to 2026-01-24 starts there.
    assert kept == ["20260122T020000Z", "20260125T020000Z", "20260130T020000Z"]
    assert {n for k, n in removed if k == "full"} == {"20260101T020000Z", "20260111T020000Z"}
    assert ("partial", "full/.inprogress-20260130T030000Z") in removed
    removed_wal = {n for k, n in removed if k == "wal"}
    assert removed_wal == {seg(p) for p in range(0x01, 0x1E)} | {
        f"{seg(0x1D)}.partial", f"{seg(0x1D)}.00000028.backup", seg(0x1D, timeline=2),
        stale.name}
    assert f"keep wal from {seg(0x1E)}" in lines
    assert {n for k, n in removed if k == "incr"} == {"20260101", "20260110"}
    # A plan removes nothing, and asks nothing of the database.
    assert sorted(p.relative_to(node.repo) for p in node.repo.rglob("*")
                  if p.name != "backup-retention") == before
    assert node.calls("psql") == [] and node.calls("runuser") == []


def test_retention_never_removes_the_newest_full_backup(node: FakeNode) -> None:
    make_tree(node.repo, {"20250101T020000Z": seg(0x05), "20250201T020000Z": seg(0x09)},
              [seg(p) for p in range(1, 12)], {})
    result = plan(node, *NOW, "--days", "0")
    assert result.returncode == 0, result.stderr
    assert "keep full 20250201T020000Z" in result.stdout.splitlines()
    assert "remove full 20250101T020000Z" in result.stdout.splitlines()
    assert f"remove wal {seg(0x09)}" not in result.stdout
    assert f"remove wal {seg(0x08)}" in result.stdout


def test_retention_without_backups_keeps_the_whole_archive(node: FakeNode) -> None:
    make_tree(node.repo, {}, [seg(p) for p in range(1, 5)], {})
    (node.repo / "full").mkdir(exist_ok=True)
    result = plan(node, *NOW)
    assert result.returncode == 0
    assert "remove" not in result.stdout
    assert "whole WAL archive is kept" in result.stderr


def test_retention_without_a_start_segment_removes_no_wal(node: FakeNode) -> None:
    make_tree(node.repo, {"20260130T020000Z": "garbage"}, [seg(1)], {})
    result = plan(node, *NOW)
    assert result.returncode == 1
    assert "no valid start_wal" in result.stderr and "remove wal" not in result.stdout


def test_retention_rejects_a_bad_window(node: FakeNode) -> None:
    make_tree(node.repo, {}, [], {})
    result = plan(node, "--days", "seven")
    assert result.returncode != 0 and "whole number" in result.stderr


def test_retention_rejects_an_unknown_option(node: FakeNode) -> None:
    result = node.run("backup-retention", "--everything")
    assert result.returncode == 64 and "usage: backup-retention" in result.stderr


def test_retention_on_a_standby_does_nothing_quietly(node: FakeNode) -> None:
    window_tree(node)
    before = sorted(node.repo.rglob("*"))
    node.running(primary=False)
    result = node.run("backup-retention", *NOW)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert "not the primary (in recovery): nothing to do" in node.log()
    assert sorted(node.repo.rglob("*")) == before


def test_retention_removes_what_it_plans_and_marks_the_registry(node: FakeNode) -> None:
    stale = window_tree(node)
    node.running()
    planned = plan(node, *NOW).stdout
    result = node.run("backup-retention", *NOW)
    assert result.returncode == 0, result.stderr
    assert result.stdout == planned
    for line in planned.splitlines():
        kind, _, name = line.partition(" ")[2].partition(" ")
        if line.startswith("remove "):
            where = {"full": node.full, "incr": node.incr, "wal": node.archive,
                     "partial": node.repo}[kind]
            assert not (where / name).exists(), line
    assert (node.full / "20260122T020000Z").is_dir() and (node.archive / seg(0x1E)).exists()
    assert not stale.exists() and (node.archive / "00000002.history").exists()
    marks = [c for c in node.queries() if "removed_at = now()" in (c.input or "")]
    assert sorted(a for c in marks for a in c.args if a.startswith(("label=", "path="))) == [
        "label=pgcluster-full-20260101T020000Z", "label=pgcluster-full-20260111T020000Z",
        "path=incr/20260101", "path=incr/20260110"]
    assert "done: window 7 days; kept 3 full backups (oldest full/20260122T020000Z" in node.log()
    # It ran as postgres (cron's user) and held the repository's lock alone.
    assert node.calls("runuser")[0].args[:3] == ["-u", "postgres", "--"]
    assert (node.repo / ".pgcluster-backup.lock").exists()


def test_the_wal_boundary_is_the_lowest_start_of_every_kept_backup(node: FakeNode) -> None:
    # After a restore of the primary (to a point before the previous backups), the cluster
    # goes on from there on timeline 2: its newest backup starts below the positions of the
    # older ones, on another timeline. Its WAL must stay, whatever their order in time.
    fulls = {"20260101T020000Z": seg(0x0A), "20260122T020000Z": seg(0x1E),
             "20260125T020000Z": seg(0x28), "20260130T020000Z": seg(0x15, timeline=2)}
    wal = ([seg(p) for p in range(0x01, 0x30)] + [seg(p, timeline=2) for p in range(0x14, 0x18)]
           + ["00000002.history"])
    incr = {"20260110": [f"{seg(p)}.gz" for p in range(0x10, 0x14)],
            "20260120": [f"{seg(p)}.gz" for p in range(0x14, 0x17)]}
    make_tree(node.repo, fulls, wal, incr)
    result = plan(node, *NOW)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[2] for line in lines if line.startswith("keep full ")] == [
        "20260122T020000Z", "20260125T020000Z", "20260130T020000Z"]
    assert f"keep wal from {seg(0x15, timeline=2)}" in lines
    removed_wal = {line.split()[2] for line in lines if line.startswith("remove wal ")}
    assert removed_wal == {seg(p) for p in range(0x01, 0x15)} | {seg(0x14, timeline=2)}
    removed_incr = {line.split()[2] for line in lines if line.startswith("remove incr ")}
    assert removed_incr == {"20260110"}


def test_every_kept_backup_needs_a_valid_start_segment(node: FakeNode) -> None:
    make_tree(node.repo, {"20260125T020000Z": seg(0x28), "20260130T020000Z": "garbage"},
              [seg(1)], {})
    result = plan(node, *NOW)
    assert result.returncode == 1
    assert "full/20260130T020000Z/backup.info has no valid start_wal ('garbage')" in (
        result.stderr)
    assert "remove wal" not in result.stdout
