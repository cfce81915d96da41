"""restore-backup: the refusals (a running server without --force, a data directory that is
a mount point, bad arguments), the success path (recovery settings, recovery.signal, the
report) and the rollback of a failed attempt (the previous data directory back, the attempt
kept). The fake server "recovers" as the test's on-start hook says."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.unit.node.conftest import FakeNode

STAMP = "20260130T020000Z"
LABEL = f"pgcluster-full-{STAMP}"


def tar_gz(path: Path, files: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    path.write_bytes(buffer.getvalue())


def a_backup(node: FakeNode) -> Path:
    backup = node.full / STAMP
    backup.mkdir()
    tar_gz(backup / "base.tar.gz", {"PG_VERSION": b"15\n", "restored": b"from the backup",
                                    "postgresql.auto.conf": b"work_mem = '8MB'\n",
                                    "standby.signal": b""})
    tar_gz(backup / "pg_wal.tar.gz", {"000000010000000000000004": b"wal"})
    (backup / "backup.info").write_text(f"kind=full\nlabel={LABEL}\ntimeline=1\n"
                                        "start_wal=000000010000000000000004\n")
    return backup


def recovers(node: FakeNode, state: str = "primary") -> None:
    """The fake server, once started, recovers to its target and says so in its log."""
    log = ["LOG:  starting archive recovery",
           "LOG:  recovery stopping before commit of transaction 750, time 2026-01-30 09:59:00+00",
           "LOG:  redo done at 0/5000100 system usage: CPU: user: 0.00 s"]
    lines = "".join(f"2026-01-30 10:00:01 UTC [9] {line}\n" for line in log)
    node.flag("on-start", f"cat >>{node.pg_log} <<'LOG'\n{lines}LOG\n")
    node.answer("then 'recovery:'", f'[ -e "$FAKE_STATE/running" ] && echo {state}')
    node.answer("pg_last_wal_replay_lsn", "echo '0/5000100|2026-01-30 09:58:00+00'")
    node.answer(r"pg_walfile_name\(pg_current_wal_lsn", "echo 2")
    node.answer("pg_control_checkpoint", "echo 1")


def fails(node: FakeNode, message: str) -> None:
    """The fake server, started on the restored data, stops with `message` in its log (and
    starts again, as the previous data directory's server would)."""
    node.flag("on-start", f"""rm -f "$FAKE_STATE/on-start" "$FAKE_STATE/running"
rm -f "$DATA_DIR/postmaster.pid"
echo '2026-01-30 10:00:01 UTC [9] {message}' >>{node.pg_log}
exit 1""")


def previous_data(node: FakeNode) -> None:
    node.data_dir(**{"previous": "the data before"})


def restore(node: FakeNode, *args: str):
    return node.run("restore-backup", f"full/{STAMP}", *args)


def test_a_running_server_is_refused_without_force(node: FakeNode) -> None:
    a_backup(node)
    previous_data(node)
    node.running()
    result = restore(node)
    assert result.returncode == 2
    assert ("refusing: " f"{node.data} holds a running server on db1. Name this node "
            "explicitly (pgcluster restore --force-node db1)") in result.stderr
    assert (node.data / "previous").exists() and node.calls("systemctl") == []


def test_a_data_directory_that_is_a_mount_point_is_refused(node: FakeNode) -> None:
    a_backup(node)
    previous_data(node)
    node.flag("mounts", f"{node.data}\n")
    result = restore(node)
    assert result.returncode == 1
    assert f"{node.data} is a mount point and cannot be moved aside" in result.stderr
    assert (node.data / "previous").exists() and node.calls("systemctl") == []


@pytest.mark.parametrize("args, complaint", [
    ([], "usage: restore-backup BACKUP"),
    ([f"full/{STAMP}", "--time", "x", "--lsn", "0/1"], "one recovery target only"),
    ([f"full/{STAMP}", "--action", "shutdown"], "--action promote or pause"),
    ([f"full/{STAMP}", "--timeline", "newest"], "bad --timeline newest"),
    ([f"full/{STAMP}", "--lsn", "5000060"], "bad LSN '5000060' (like 0/5000060)"),
    ([f"full/{STAMP}", "--what"], "usage: restore-backup BACKUP"),
])
def test_bad_arguments_are_refused_before_anything(node: FakeNode, args: list[str],
                                                   complaint: str) -> None:
    a_backup(node)
    result = node.run("restore-backup", *args)
    assert result.returncode == 64 and complaint in result.stderr
    assert node.calls() == []


def test_only_root_restores(node: FakeNode) -> None:
    result = node.run("restore-backup", STAMP, env={"FAKE_USER": "postgres"})
    assert result.returncode == 1 and "run me as root" in result.stderr


def test_an_incomplete_backup_is_refused(node: FakeNode) -> None:
    (a_backup(node) / "pg_wal.tar.gz").unlink()
    previous_data(node)
    result = restore(node)
    assert result.returncode == 1
    assert "is not a complete backup: pg_wal.tar.gz is missing" in result.stderr
    assert (node.data / "previous").exists()


def test_a_restore_to_the_end_of_the_archive(node: FakeNode) -> None:
    a_backup(node)
    previous_data(node)
    recovers(node)
    result = restore(node)
    assert result.returncode == 0, result.stderr
    # The previous data directory is kept aside, never deleted.
    aside, = node.data.parent.glob("main.before-restore-*")
    assert (aside / "previous").read_text() == "the data before"
    assert (node.data / "restored").read_text() == "from the backup"
    assert (node.data / "pg_wal" / "000000010000000000000004").exists()
    # Recovery settings after the backup's own, and recovery.signal (its standby.signal gone).
    auto = (node.data / "postgresql.auto.conf").read_text().splitlines()
    assert auto[0] == "work_mem = '8MB'"
    assert auto[1].startswith(f"# pgcluster restore of full/{STAMP} (")
    assert auto[2:] == [f"restore_command = '{node.scripts}/restore-wal %f %p'",
                        "recovery_target_timeline = 'latest'"]
    assert (node.data / "recovery.signal").exists()
    assert not (node.data / "standby.signal").exists()
    assert [c.user for c in node.calls("tar")] == [] and {
        c.args[3] for c in node.calls("runuser")} >= {"tar", "touch"}
    assert ["enable", "--quiet", "postgresql@15-main"] in [c.args for c in node.calls("systemctl")]
    # Promoted: the recovery settings are reset, the restore is in the registry.
    asked = [c.input for c in node.queries()]
    for setting in ("recovery_target_time", "recovery_target_lsn", "recovery_target_name",
                    "recovery_target_action", "recovery_target_timeline", "restore_command"):
        assert f"alter system reset {setting}" in asked
    registry = next(c for c in node.queries() if "'restore'" in c.input)
    assert {f"label={LABEL}", "node=db1", f"path=full/{STAMP}", "tli=2", "lsn=0/5000100"} <= set(
        registry.args)
    report = dict(line.split("=", 1) for line in (node.log_dir / "last-restore").read_text()
                  .splitlines())
    assert report | {"finished_at": "", "unpack_seconds": "", "recovery_seconds": "",
                     "total_seconds": ""} == {
        "node": "db1", "backup": f"full/{STAMP}", "label": LABEL,
        "target": "latest (end of the archive)", "timeline_requested": "latest",
        "action": "promote", "reached_lsn": "0/5000100", "reached_timeline": "2",
        "last_transaction": "2026-01-30 09:58:00+00",
        "postgresql_says": "recovery stopping before commit of transaction 750, time "
                           "2026-01-30 09:59:00+00",
        "outcome": "promoted: a primary on timeline 2", "previous_data": str(aside),
        "finished_at": "", "unpack_seconds": "", "recovery_seconds": "", "total_seconds": ""}
    assert result.stdout == (node.log_dir / "last-restore").read_text()
    restore_log = node.log("restore.log")
    assert f"restoring full/{STAMP} ({LABEL}) onto db1, target latest" in restore_log
    assert "reached LSN 0/5000100 on timeline 2" in restore_log


def test_a_restore_to_a_time_then_pause(node: FakeNode) -> None:
    a_backup(node)
    recovers(node, state="recovery:paused")
    result = restore(node, "--time", "2026-01-30 09:59:00+00", "--action", "pause",
                     "--timeline", "current")
    assert result.returncode == 0, result.stderr
    auto = (node.data / "postgresql.auto.conf").read_text().splitlines()
    assert auto[-3:] == ["recovery_target_timeline = 'current'",
                         "recovery_target_time = '2026-01-30 09:59:00+00'",
                         "recovery_target_action = 'pause'"]
    assert not any("alter system reset" in c.input for c in node.queries())
    assert "outcome=paused at the target, still in recovery on timeline 1" in result.stdout
    assert "previous_data=\n" in result.stdout  # there was none


def test_force_stops_the_running_server_first(node: FakeNode) -> None:
    a_backup(node)
    previous_data(node)
    node.running()
    recovers(node)
    result = restore(node, "--force")
    assert result.returncode == 0, result.stderr
    assert [c.args[0] for c in node.calls("systemctl")] == ["stop", "enable", "start"]
    assert "stopping the running server (postgresql@15-main), as requested by name" in (
        node.log("restore.log"))


def test_a_failed_recovery_rolls_back(node: FakeNode) -> None:
    a_backup(node)
    previous_data(node)
    node.running()
    fails(node, 'FATAL:  could not locate required checkpoint record')
    result = restore(node, "--force")
    assert result.returncode == 1
    assert "FATAL:  could not locate required checkpoint record" in result.stderr
    assert "FAILED: the server is not running: recovery stopped with an error" in result.stderr
    # The previous data directory is back, the attempt kept aside, its server started again.
    assert (node.data / "previous").read_text() == "the data before"
    attempt, = node.data.parent.glob("main.failed-restore-*")
    assert (attempt / "restored").exists() and (attempt / "recovery.signal").exists()
    assert list(node.data.parent.glob("main.before-restore-*")) == []
    assert [c.args[0] for c in node.calls("systemctl")] == ["stop", "enable", "start", "stop",
                                                            "start"]
    log = node.log("restore.log")
    assert f"the failed attempt is kept in {attempt}" in log
    assert f"restore FAILED: the previous data directory is back in {node.data}" in log
    assert "its server is running again" in log
    assert not (node.log_dir / "last-restore").exists()


def test_a_recovery_that_never_ends_fails_after_the_timeout(node: FakeNode) -> None:
    a_backup(node)
    node.settings(RESTORE_TIMEOUT=5)
    node.answer("then 'recovery:'", "echo recovery:not paused")
    result = restore(node)
    assert result.returncode == 1
    assert ("FAILED: recovery did not reach its target within 5s (state: recovery:not paused)"
            in result.stderr)
    attempt, = node.data.parent.glob("main.failed-restore-*")
    assert "restore FAILED: " f"{node.data} is empty" in node.log("restore.log")
    assert not node.data.exists() and attempt.is_dir()


BAD_NAMES = ["../../etc", "full/../20260130T020000Z", "20260130", "full/", "",
             "pgcluster-incr-20260130T020000Z", "latest; rm -rf /", "20260130T020000Z/.."]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_backup_name_is_refused_before_anything(node: FakeNode, name: str) -> None:
    a_backup(node)
    previous_data(node)
    result = node.run("restore-backup", name)
    assert result.returncode == 64
    assert "names no full backup: use latest, YYYYMMDDTHHMMSSZ, full/YYYYMMDDTHHMMSSZ or " \
           "pgcluster-full-YYYYMMDDTHHMMSSZ" in result.stderr
    assert node.calls() == [] and (node.data / "previous").exists()


@pytest.mark.parametrize("name", [STAMP, LABEL, "latest"])
def test_a_backup_by_timestamp_label_or_latest(node: FakeNode, name: str) -> None:
    a_backup(node)
    older = node.full / "20260101T020000Z"
    older.mkdir()
    recovers(node)
    result = node.run("restore-backup", name)
    assert result.returncode == 0, result.stderr
    assert f"backup=full/{STAMP}\n" in result.stdout


def test_latest_without_any_backup(node: FakeNode) -> None:
    result = node.run("restore-backup", "latest")
    assert result.returncode == 1 and "no full backup in" in result.stderr
