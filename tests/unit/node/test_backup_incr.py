"""backup-incr: the WAL archived since the previous incremental, gzip'd with SHA256SUMS, after
the current segment is switched and archived; quiet on a standby."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import time

from tests.unit.node.conftest import FakeNode

SWITCHED = "000000010000000000000007"


def primary(node: FakeNode, archived: bool = True) -> None:
    node.running()
    node.answer("insert into pgcluster.backups", "echo 23")
    node.answer("wal_segment_size", "echo 16777216")
    # pg_switch_wal(): the closed segment reaches the archive (archive-wal's job).
    arrives = f"echo w > {node.archive}/{SWITCHED}; " if archived else ""
    node.answer(r"pg_switch_wal\(\)", f"{arrives}echo {SWITCHED}")


def archived(node: FakeNode, *names: str, age: float = 0) -> None:
    for name in names:
        path = node.archive / name
        path.write_bytes(name.encode() * 100)
        if age:
            os.utime(path, (time.time() - age,) * 2)


def test_the_first_incremental_copies_the_window_and_the_switched_segment(
        node: FakeNode) -> None:
    primary(node)
    archived(node, "000000010000000000000005", "000000010000000000000006")
    archived(node, "000000010000000000000001", age=2 * 86400)  # before the 24-hour window
    result = node.run("backup-incr")
    assert result.returncode == 0, result.stderr
    day = result.stdout.strip().removeprefix("incr/")
    assert re.fullmatch(r"\d{8}", day)
    dest = node.incr / day
    names = ["000000010000000000000005", "000000010000000000000006", SWITCHED]
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [f"{n}.gz" for n in names] + ["SHA256SUMS"])
    for name in names:
        assert gzip.decompress((dest / f"{name}.gz").read_bytes()) == (
            node.archive / name).read_bytes()
    sums = (dest / "SHA256SUMS").read_text().splitlines()
    assert sums == [f"{hashlib.sha256((node.archive / n).read_bytes()).hexdigest()}  {n}"
                    for n in names]
    assert (node.incr / ".last-incremental").exists()
    assert not (node.incr / ".last-incremental.next").exists()
    update = node.queries()[-1]
    assert "status = 'ok'" in update.input
    assert {"id=23", "tli=1", "start=0/5000000", "stop=0/8000000",
            "swal=000000010000000000000005", f"ewal={SWITCHED}",
            f"detail=3 new files of 3 (000000010000000000000005 .. {SWITCHED})"} <= set(
                update.args)


def test_the_next_incremental_takes_what_was_archived_since(node: FakeNode) -> None:
    primary(node)
    archived(node, "000000010000000000000005")
    assert node.run("backup-incr").returncode == 0
    marker = node.incr / ".last-incremental"
    os.utime(marker, (time.time() - 60,) * 2)
    for path in node.archive.iterdir():
        os.utime(path, (time.time() - 120,) * 2)
    archived(node, "000000010000000000000008")
    (node.archive / SWITCHED).unlink()  # switched and archived again
    result = node.run("backup-incr")
    assert result.returncode == 0, result.stderr
    insert = [c for c in node.queries() if "insert into" in c.input][-1]
    assert "kind=incr" in insert.args
    detail = next(a for a in node.queries()[-1].args if a.startswith("detail="))
    assert detail == f"detail=1 new files of 2 ({SWITCHED} .. 000000010000000000000008)"


def test_a_standby_does_nothing_quietly(node: FakeNode) -> None:
    node.running(primary=False)
    result = node.run("backup-incr")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert "not the primary (in recovery): nothing to do" in node.log()
    assert list(node.incr.iterdir()) == []


def test_an_archive_that_does_not_take_the_switched_segment_fails_the_job(
        node: FakeNode) -> None:
    primary(node, archived=False)
    node.settings(BACKUP_ARCHIVE_WAIT=3)
    result = node.run("backup-incr")
    assert result.returncode == 1
    assert (f"FAILED: WAL archiving is failing or stuck: {SWITCHED} is not in {node.archive} "
            "after 3s") in result.stderr
    assert "status = 'failed'" in node.queries()[-1].input
    assert not (node.incr / ".last-incremental.next").exists()


def test_a_failing_archiver_fails_the_job_at_once(node: FakeNode) -> None:
    primary(node, archived=False)
    node.answer("from pg_stat_archiver", "echo '000000010000000000000006 at noon'")
    result = node.run("backup-incr")
    assert result.returncode == 1
    assert "after 0s (last failure: 000000010000000000000006 at noon)" in result.stderr


def test_short_space_is_refused_before_anything_is_copied(node: FakeNode) -> None:
    primary(node)
    archived(node, "000000010000000000000005")
    node.fake("df", "echo 'Filesystem 1-blocks Used Available Capacity Mounted'; "
                    "echo '/dev/x 100 100 10 100% /'")
    result = node.run("backup-incr")
    assert result.returncode == 1
    assert "FAILED: not enough free space in" in result.stderr and "10B free" in result.stderr
    assert list(node.incr.iterdir()) == []
    assert "status = 'failed'" in node.queries()[-1].input
