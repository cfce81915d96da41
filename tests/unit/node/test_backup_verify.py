"""backup-verify: unpack, pg_verifybackup, a continuous archive from the backup's start; the
result on the backup's registry row; quiet on a standby."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.unit.node.conftest import FakeNode

STAMP = "20260130T020000Z"


def tar_gz(path: Path, files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    path.write_bytes(buffer.getvalue())


def a_backup(node: FakeNode, stamp: str = STAMP, start_wal: str = "000000010000000000000004"
             ) -> Path:
    backup = node.full / stamp
    backup.mkdir(parents=True)
    tar_gz(backup / "base.tar.gz", {"PG_VERSION": b"15\n"})
    tar_gz(backup / "pg_wal.tar.gz", {start_wal: b"wal"})
    (backup / "backup_manifest").write_text('{ "Files": [ { "Path": "PG_VERSION", "Size": 3 } ] }')
    (backup / "backup.info").write_text(f"kind=full\nlabel=pgcluster-full-{stamp}\n"
                                        f"start_wal={start_wal}\nwal_segment_size=16777216\n")
    return backup


def archive(node: FakeNode, *positions: int, timeline: int = 1) -> None:
    for position in positions:
        (node.archive / f"{timeline:08X}00000000{position:08X}").write_bytes(b"w")


def verify_status(node: FakeNode) -> list[str]:
    return [a for c in node.queries() if "verify_status" in c.input for a in c.args
            if a.startswith("st=")]


def test_a_good_backup_is_verified_and_recorded(node: FakeNode) -> None:
    node.running()
    a_backup(node, "20260101T020000Z")
    a_backup(node)
    archive(node, 4, 5)
    archive(node, 6, timeline=2)  # a failover continues the same positions
    result = node.run("backup-verify")  # latest: the newest
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"full/{STAMP} verified\n"
    call, = node.calls("pg_verifybackup")
    assert call.args[0] == f"--manifest-path={node.full / STAMP}/backup_manifest"
    assert call.args[1].startswith(f"{node.repo}/.verify/verify-")
    assert not Path(call.args[1]).exists()  # unpacked, checked, cleaned up
    assert verify_status(node) == ["st=ok"]
    assert f"label=pgcluster-full-{STAMP}" in node.queries()[-1].args
    assert "archive continuous from 000000010000000000000004" in node.log()


def test_a_backup_by_name_or_full_name(node: FakeNode) -> None:
    node.running()
    a_backup(node)
    archive(node, 4)
    for name in (STAMP, f"full/{STAMP}"):
        assert node.run("backup-verify", name).returncode == 0


def test_gaps_in_the_archive_fail_the_backup(node: FakeNode) -> None:
    node.running()
    a_backup(node)
    archive(node, 4, 5, 8, 0xA)
    result = node.run("backup-verify")
    assert result.returncode == 1
    assert result.stdout == f"full/{STAMP} FAILED verification\n"
    assert ("the WAL archive has gaps after this backup (segment positions "
            "0000000000000006..0000000000000007 0000000000000009..0000000000000009)") in (
                result.stderr)
    assert verify_status(node) == ["st=failed"]


def test_a_damaged_backup_fails(node: FakeNode) -> None:
    node.running()
    backup = a_backup(node)
    archive(node, 4)
    (backup / "pg_wal.tar.gz").write_bytes(b"not gzip at all")
    result = node.run("backup-verify")
    assert result.returncode == 1
    assert "FAILED: full/20260130T020000Z: pg_wal.tar.gz does not unpack" in result.stderr
    assert node.calls("pg_verifybackup") == []


def test_pg_verifybackup_has_the_last_word(node: FakeNode) -> None:
    node.running()
    a_backup(node)
    archive(node, 4)
    node.flag("verify-fails", 'pg_verifybackup: error: "PG_VERSION" has size 4 on disk but '
                              "size 3 in the manifest\n")
    result = node.run("backup-verify")
    assert result.returncode == 1
    assert 'pg_verifybackup: pg_verifybackup: error: "PG_VERSION" has size 4' in result.stderr


def test_missing_files_and_start_segment(node: FakeNode) -> None:
    node.running()
    (a_backup(node) / "backup_manifest").unlink()
    node.settings(BACKUP_ARCHIVE_WAIT=2)
    result = node.run("backup-verify")
    assert result.returncode == 1
    assert "backup_manifest is missing or empty" in result.stderr
    assert "the archive lacks the backup's start segment 000000010000000000000004" in (
        result.stderr)


def test_nothing_to_verify(node: FakeNode) -> None:
    node.running()
    result = node.run("backup-verify")
    assert result.returncode == 1 and "no full backup in" in result.stderr
    result = node.run("backup-verify", "20250101T000000Z")
    assert result.returncode == 1 and "no backup" in result.stderr


def test_a_standby_does_nothing_quietly(node: FakeNode) -> None:
    node.running(primary=False)
    a_backup(node)
    result = node.run("backup-verify")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert "not the primary (in recovery): nothing to do" in node.log()
    assert node.calls("pg_verifybackup") == []


BAD_NAMES = ["../../etc", "full/../20260130T020000Z", "20260130", "full/", "",
             "pgcluster-incr-20260130T020000Z", "latest; rm -rf /", "20260130T020000Z/.."]


def test_a_backup_by_its_label(node: FakeNode) -> None:
    node.running()
    a_backup(node)
    archive(node, 4)
    result = node.run("backup-verify", f"pgcluster-full-{STAMP}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"full/{STAMP} verified\n"


def test_a_bad_backup_name_is_refused_before_anything(node: FakeNode) -> None:
    node.running()
    a_backup(node)
    for name in BAD_NAMES:
        result = node.run("backup-verify", name)
        assert result.returncode == 64, name
        assert result.stderr == (
            f"backup-verify: backup '{name}' names no full backup: use latest, "
            "YYYYMMDDTHHMMSSZ, full/YYYYMMDDTHHMMSSZ or pgcluster-full-YYYYMMDDTHHMMSSZ\n")
    assert node.calls() == []
