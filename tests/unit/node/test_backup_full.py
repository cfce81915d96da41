"""backup-full: pg_basebackup into .inprogress-<stamp>, renamed when complete, with its
backup.info and registry row; quiet on a standby; refusals before anything is written."""

from __future__ import annotations

import re

from tests.unit.node.conftest import FakeNode


def primary(node: FakeNode, database_bytes: int = 1000) -> None:
    node.running()
    node.answer("insert into pgcluster.backups", "echo 17")
    node.answer("pg_database_size", f"echo {database_bytes}")
    node.answer("wal_segment_size", "echo 16777216")
    node.answer("system_identifier", "echo 7300000000000000001")


def basebackup(node: FakeNode) -> list[str]:
    call, = node.calls("pg_basebackup")
    return call.args


def test_full_backup_is_tar_gzip6_with_manifest_and_streamed_wal(node: FakeNode) -> None:
    primary(node)
    result = node.run("backup-full")
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip()
    assert re.fullmatch(r"full/\d{8}T\d{6}Z", name)
    stamp = name.removeprefix("full/")
    args = " ".join(basebackup(node))
    assert "--format=tar --compress=gzip:6 --wal-method=stream" in args
    assert f"--checkpoint=fast --label=pgcluster-full-{stamp} --manifest-checksums=CRC32C" in args
    # Written under .inprogress-<stamp>, renamed when complete.
    assert f"--pgdata={node.full}/.inprogress-{stamp} " in args
    assert sorted(p.name for p in node.full.iterdir()) == [stamp]
    assert {p.name for p in (node.full / stamp).iterdir()} == {
        "base.tar.gz", "pg_wal.tar.gz", "backup_manifest", "backup.info"}
    # require_primary, then take_lock: as postgres, holding the repository's lock.
    assert [c.user for c in node.calls("pg_basebackup")] == ["postgres"]
    assert (node.repo / ".pgcluster-backup.lock").exists()
    assert node.queries()[0].input == "select pg_is_in_recovery()"


def test_compression_and_checkpoint_come_from_the_settings(node: FakeNode) -> None:
    primary(node)
    node.settings(BACKUP_COMPRESS_LEVEL=9, BACKUP_CHECKPOINT="spread")
    assert node.run("backup-full").returncode == 0
    args = basebackup(node)
    assert "--compress=gzip:9" in args and "--checkpoint=spread" in args
    info = next(node.full.glob("*/backup.info")).read_text()
    assert "compression=gzip:9\n" in info


def test_backup_info_and_the_registry_row(node: FakeNode) -> None:
    primary(node)
    node.flag("backup-range", '"Timeline": 3, "Start-LSN": "1/A2000028", "End-LSN": "1/A3000100"')
    stamp = node.run("backup-full").stdout.strip().removeprefix("full/")
    info = dict(line.split("=", 1) for line in
                (node.full / stamp / "backup.info").read_text().splitlines())
    assert info | {"started_at": "", "finished_at": "", "size_bytes": ""} == {
        "kind": "full", "label": f"pgcluster-full-{stamp}", "node": "db1", "started_at": "",
        "finished_at": "", "timeline": "3", "start_lsn": "1/A2000028", "stop_lsn": "1/A3000100",
        "start_wal": "0000000300000001000000A2", "stop_wal": "0000000300000001000000A3",
        "wal_segment_size": "16777216", "size_bytes": "", "database_bytes": "1000",
        "system_identifier": "7300000000000000001", "postgresql_version": "15",
        "compression": "gzip:6"}
    insert = next(c for c in node.queries() if "insert into" in c.input)
    assert {"kind=full", f"label=pgcluster-full-{stamp}", "node=db1",
            f"path=full/{stamp}"} <= set(insert.args)
    update = node.queries()[-2]  # then the archiver's health
    assert "status = 'ok'" in update.input
    assert {"id=17", "tli=3", "start=1/A2000028", "stop=1/A3000100",
            "swal=0000000300000001000000A2", "ewal=0000000300000001000000A3",
            f"size={info['size_bytes']}"} <= set(update.args)
    assert f"done: full/{stamp} (pgcluster-full-{stamp})" in node.log()


def test_a_standby_does_nothing_quietly(node: FakeNode) -> None:
    node.running(primary=False)
    result = node.run("backup-full")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert node.log().splitlines()[-1].endswith(
        "backup-full[db1]: not the primary (in recovery): nothing to do")
    assert node.calls("pg_basebackup") == [] and list(node.full.iterdir()) == []


def test_a_node_without_a_server_does_nothing_quietly(node: FakeNode) -> None:
    result = node.run("backup-full")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert "PostgreSQL is not running here, so this is not the primary" in node.log()


def test_short_space_is_refused_before_anything_is_written(node: FakeNode) -> None:
    primary(node, database_bytes=10**18)
    result = node.run("backup-full")
    assert result.returncode == 1
    assert "FAILED: not enough free space in" in result.stderr
    assert "backup_free_space_factor 1.0" in result.stderr
    assert node.calls("pg_basebackup") == [] and list(node.full.iterdir()) == []
    failed = node.queries()[-1]
    assert "status = 'failed'" in failed.input and "id=17" in failed.args
    # A one-run override of the factor.
    result = node.run("backup-full", env={"PGCLUSTER_BACKUP_SPACE_FACTOR": "0"})
    assert result.returncode == 0, result.stderr


def test_a_failed_pg_basebackup_leaves_nothing_and_says_why(node: FakeNode) -> None:
    primary(node)
    node.flag("basebackup-fails", "pg_basebackup: error: could not connect to server\n")
    result = node.run("backup-full")
    assert result.returncode == 1
    assert "FAILED: pg_basebackup failed (exit 1): pg_basebackup: error: could not connect" in (
        result.stderr)
    assert list(node.full.iterdir()) == []
    assert "could not connect to server" in node.log()  # its output is kept in backup.log
    assert "status = 'failed'" in node.queries()[-1].input


def test_a_failing_archiver_fails_the_job_after_a_complete_backup(node: FakeNode) -> None:
    primary(node)
    node.answer("from pg_stat_archiver", "echo '000000010000000000000009 at yesterday'")
    result = node.run("backup-full")
    assert result.returncode == 2
    assert "ERROR: WAL archiving is failing: 000000010000000000000009 at yesterday" in (
        result.stderr)
    assert len(list(node.full.iterdir())) == 1  # the backup is complete and kept
    assert not any("status = 'failed'" in c.input for c in node.queries())


def test_a_missing_repository_is_a_failure(node: FakeNode) -> None:
    primary(node)
    node.full.rmdir()
    result = node.run("backup-full")
    assert result.returncode == 1
    assert "does not exist (run the cluster deploy)" in result.stderr


def test_a_manifest_without_wal_ranges_is_a_named_failure(node: FakeNode) -> None:
    primary(node)
    node.flag("backup-range", "")
    result = node.run("backup-full")
    assert result.returncode == 1
    assert "FAILED: no WAL-Ranges in" in result.stderr and "interrupted" not in result.stderr
    assert list(node.full.iterdir()) == []
    assert "status = 'failed'" in node.queries()[-1].input
