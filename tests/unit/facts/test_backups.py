"""The repository listing a node runs, parsed into the repository model."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pgcluster.facts.backups import repository_command
from pgcluster.model.backups import (
    FullBackup,
    Repository,
    parse_repository,
)


def make_tree(root: Path, fulls: dict[str, str], wal: list[str], incr: dict[str, list[str]]
              ) -> None:
    for name, start_wal in fulls.items():
        directory = root / "full" / name
        directory.mkdir(parents=True)
        (directory / "backup.info").write_text(
            f"kind=full\nlabel=pgcluster-full-{name}\nstart_wal={start_wal}\n")
    (root / "wal_archive").mkdir(parents=True)
    for name in wal:
        (root / "wal_archive" / name).write_bytes(b"w")
    for day, files in incr.items():
        (root / "incr" / day).mkdir(parents=True)
        for name in files:
            (root / "incr" / day / name).write_bytes(b"g")


def seg(position: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{0:08X}{position:08X}"


def test_repository_listing_runs_and_parses(tmp_path: Path) -> None:
    make_tree(tmp_path, {"20260130T020000Z": seg(0x32)}, [seg(0x31), seg(0x32), "x.history"],
              {"20260130": [f"{seg(0x32)}.gz"]})
    (tmp_path / "full" / "20260130T020000Z" / "backup.info").write_text(
        "kind=full\nlabel=L\nstart_wal=" + seg(0x32) + "\nfinished_at=2026-01-30T02:00:09Z\n"
        "stop_lsn=0/32000100\n")
    (tmp_path / "full" / ".inprogress-20260131T020000Z").mkdir()
    command = repository_command(str(tmp_path / "full"), str(tmp_path / "incr"),
                                 str(tmp_path / "wal_archive"))
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    repo = parse_repository(out.stdout.splitlines())
    assert [b.name for b in repo.complete_full] == ["20260130T020000Z"]
    assert repo.full[0].label == "L" and repo.full[0].stop_lsn == "0/32000100"
    assert any(b.in_progress for b in repo.full)
    assert [(i.name, i.files) for i in repo.incr] == [("20260130", 1)]
    assert (repo.archive_files, repo.archive_oldest, repo.archive_newest) == (
        3, seg(0x31), seg(0x32))
    assert repo.find("full/20260130T020000Z") is repo.find("L") is repo.full[0]
    # An absent repository is an empty one, not an error.
    out = subprocess.run(["bash", "-c", repository_command("/nope/f", "/nope/i", "/nope/a")],
                         capture_output=True, text=True, check=True)
    assert parse_repository(out.stdout.splitlines()) == Repository()


def backup(name: str, finished: str, stop_lsn: str, label: str = "") -> FullBackup:
    return FullBackup(name, 1, {"label": label or f"pgcluster-full-{name}",
                                "start_wal": seg(1), "finished_at": finished,
                                "stop_lsn": stop_lsn})
