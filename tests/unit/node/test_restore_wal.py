"""restore-wal, PostgreSQL's restore_command: the archive first, then the incremental
backups' copies, newest first; a missing file is a quiet failure."""

from __future__ import annotations

import gzip
import subprocess

from tests.unit.node.conftest import FakeNode


def test_restore_wal_falls_back_to_the_newest_incremental_copy(node: FakeNode) -> None:
    (node.archive / "A").write_bytes(b"from the archive")
    for day, content in (("20260101", b"older copy"), ("20260102", b"newer copy")):
        (node.incr / day).mkdir(parents=True)
        (node.incr / day / "B.gz").write_bytes(gzip.compress(content))

    def fetch(name: str) -> tuple[int, bytes | None]:
        out = node.root / "out"
        out.unlink(missing_ok=True)
        rc = node.run("restore-wal", name, str(out)).returncode
        return rc, out.read_bytes() if out.exists() else None

    assert fetch("A") == (0, b"from the archive")
    assert fetch("B") == (0, b"newer copy")
    assert fetch("C")[0] == 1


def test_a_missing_file_is_a_quiet_failure(node: FakeNode) -> None:
    result = node.run("restore-wal", "00000002.history", str(node.root / "out"))
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")


HISTORY = "1\t0/54775D8\tno recovery target specified\n"
SEGMENT = 16 * 1024 * 1024


def test_a_standby_is_not_given_what_a_lost_primary_archived_past_the_promotion(
        node: FakeNode) -> None:
    """Timeline 2 left timeline 1 at 0/54775D8, inside segment 5: the lost primary's full
    segment 5 and its segment 6 of timeline 1 are in no surviving history; segment 4 is, and
    so is everything of timeline 2."""
    node.data_dir(standby=True)
    node.running(primary=False)
    (node.archive / "00000002.history").write_text(HISTORY)
    for name in ("000000010000000000000004", "000000010000000000000005",
                 "000000010000000000000006", "000000020000000000000005"):
        (node.archive / name).write_bytes(name.encode().ljust(SEGMENT, b"\0"))
    out = node.root / "out"

    def fetch(name: str) -> subprocess.CompletedProcess[str]:
        out.unlink(missing_ok=True)
        return node.run("restore-wal", name, str(out))

    for name in ("000000010000000000000004", "000000020000000000000005"):
        assert fetch(name).returncode == 0, name
        assert out.read_bytes()[:24] == name.encode()
    assert fetch("00000002.history").returncode == 0 and out.read_text() == HISTORY
    for name in ("000000010000000000000005", "000000010000000000000006"):
        result = fetch(name)
        assert result.returncode == 1 and not out.exists(), name
        assert "00000002.history says timeline 1 ended at 0/54775D8" in result.stderr


def test_a_switch_point_on_a_segment_boundary_leaves_the_whole_segment_before_it(
        node: FakeNode) -> None:
    node.data_dir(standby=True)
    node.running(primary=False)
    (node.archive / "00000002.history").write_text("1\t0/6000000\tno recovery target\n")
    (node.archive / "00000003.history").write_text(
        "1\t0/6000000\tno recovery target\n2\t0/8000028\tno recovery target\n")
    for name in ("000000010000000000000005", "000000010000000000000006",
                 "000000020000000000000007", "000000020000000000000008"):
        (node.archive / name).write_bytes(b"x" * SEGMENT)
    codes = {name: node.run("restore-wal", name, str(node.root / name)).returncode
             for name in ("000000010000000000000005", "000000010000000000000006",
                          "000000020000000000000007", "000000020000000000000008")}
    assert codes == {"000000010000000000000005": 0, "000000010000000000000006": 1,
                     "000000020000000000000007": 0, "000000020000000000000008": 1}


def test_a_restore_outside_standby_mode_or_pg_rewind_may_take_any_branch(
        node: FakeNode) -> None:
    """A restore (recovery.signal) may be aimed at another branch; pg_rewind runs
    restore_command on a stopped standby and needs its own WAL past the fork."""
    (node.archive / "00000002.history").write_text(HISTORY)
    (node.archive / "000000010000000000000006").write_bytes(b"x" * SEGMENT)

    def code() -> int:
        return node.run("restore-wal", "000000010000000000000006",
                        str(node.root / "out")).returncode

    node.data_dir(standby=False)
    node.running(primary=False)
    assert code() == 0
    (node.data / "postmaster.pid").unlink()
    node.data_dir(standby=True)
    assert code() == 0  # stopped: pg_rewind
    node.running(primary=False)
    assert code() == 1
