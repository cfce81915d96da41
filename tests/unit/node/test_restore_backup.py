"""restore-backup: the refusals (a running server without --force, a data directory that is
a mount point, bad arguments), the success path (recovery settings, recovery.signal, the
report) and the rollback of a failed attempt (the previous data directory back, the attempt
kept). The fake server "recovers" as the test's on-start hook says."""

from __future__ import annotations

import io
import shutil
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
                                        "start_lsn=0/4000028\nstop_lsn=0/4000100\n"
                                        "start_wal=000000010000000000000004\n"
                                        "wal_segment_size=16777216\n")
    # What pg_waldump finds in the backup's own last segment (pg_wal.tar.gz).
    records(node, "000000010000000000000004", "0/4000028", "0/40000D8", "0/4000100")
    return backup


def records(node: FakeNode, segment: str, *lsns: str) -> None:
    """pg_waldump's lines for `segment`: one record at each LSN."""
    lines, prev = [], "0/0"
    for lsn in lsns:
        high, low = lsn.split("/")
        lines.append(f"rmgr: XLOG        len (rec/tot):     24/    24, tx:          0, lsn: "
                     f"{high}/{int(low, 16):08X}, prev {prev}, desc: SWITCH")
        prev = lsn
    (node.state / "waldump").mkdir(exist_ok=True)
    (node.state / "waldump" / segment).write_text("".join(f"{line}\n" for line in lines))


def archived(node: FakeNode, *names: str) -> None:
    for name in names:
        (node.archive / name).write_bytes(b"w")


def history(node: FakeNode, timeline: int, *parents: tuple[int, str]) -> None:
    """TIMELINE.history in the archive: its parents and where it left each one."""
    (node.archive / f"{timeline:08X}.history").write_text("".join(
        f"{parent}\t{switch}\tno recovery target specified\n" for parent, switch in parents))


def recovery_settings(node: FakeNode) -> list[str]:
    auto = (node.data / "postgresql.auto.conf").read_text().splitlines()
    return auto[auto.index(next(line for line in auto if line.startswith("# pgcluster"))) + 1:]


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
    # "latest" is a target too: the last record of the WAL there is, so that recovery must
    # reach it (here: the backup's own, nothing archived since), on the timeline it is on.
    assert auto[2:] == [f"restore_command = '{node.scripts}/restore-wal %f %p'",
                        "recovery_target_timeline = '1'",
                        "recovery_target_lsn = '0/4000100'",
                        "recovery_target_inclusive = 'on'",
                        "recovery_target_action = 'promote'"]
    waldump, = node.calls("pg_waldump")
    assert waldump.user == "postgres"
    assert waldump.args == [str(node.data / "pg_wal" / "000000010000000000000004")]
    assert (node.data / "recovery.signal").exists()
    assert not (node.data / "standby.signal").exists()
    assert [c.user for c in node.calls("tar")] == [] and {
        c.args[3] for c in node.calls("runuser")} >= {"tar", "touch"}
    assert ["enable", "--quiet", "postgresql@15-main"] in [c.args for c in node.calls("systemctl")]
    # Promoted: the recovery settings are reset, the restore is in the registry.
    asked = [c.input for c in node.queries()]
    for setting in ("recovery_target_time", "recovery_target_lsn", "recovery_target_name",
                    "recovery_target_action", "recovery_target_inclusive",
                    "recovery_target_timeline", "restore_command"):
        assert f"alter system reset {setting}" in asked
    registry = next(c for c in node.queries() if "'restore'" in c.input)
    assert {f"label={LABEL}", "node=db1", f"path=full/{STAMP}", "tli=2", "lsn=0/5000100"} <= set(
        registry.args)
    report = dict(line.split("=", 1) for line in (node.log_dir / "last-restore").read_text()
                  .splitlines())
    assert report | {"finished_at": "", "unpack_seconds": "", "recovery_seconds": "",
                     "total_seconds": ""} == {
        "node": "db1", "backup": f"full/{STAMP}", "label": LABEL,
        "target": "latest (end of the archive: LSN 0/4000100, the last record of "
                  "000000010000000000000004 on timeline 1)", "timeline_requested": "latest",
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
    assert ("the end of the archive is LSN 0/4000100, the last record of "
            "000000010000000000000004 on timeline 1") in restore_log


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


def test_latest_is_the_last_record_of_the_archive_on_the_backups_timeline(
        node: FakeNode) -> None:
    a_backup(node)
    archived(node, "000000010000000000000004", "000000010000000000000005",
             "000000010000000000000005.partial", "000000010000000000000004.00000028.backup")
    records(node, "000000010000000000000005", "0/5000028", "0/5000090", "0/5000138")
    recovers(node)
    result = restore(node)
    assert result.returncode == 0, result.stderr
    assert "recovery_target_lsn = '0/5000138'" in recovery_settings(node)
    waldump, = node.calls("pg_waldump")
    assert waldump.args == [str(node.archive / "000000010000000000000005")]  # the archive's
    assert ("target=latest (end of the archive: LSN 0/5000138, the last record of "
            "000000010000000000000005 on timeline 1)") in result.stdout


def test_latest_follows_the_newest_timeline_that_descends_from_the_backup(
        node: FakeNode) -> None:
    a_backup(node)
    archived(node, "000000010000000000000005", "000000020000000000000005",
             "000000030000000000000009", "000000040000000000000006")
    history(node, 2, (1, "0/5800000"))
    history(node, 3, (1, "0/3000000"))  # left timeline 1 before the backup: not its future
    history(node, 4, (1, "0/5800000"), (2, "0/6100000"))
    history(node, 5, (2, "0/5900000"))  # an ancestor without the backup's timeline
    records(node, "000000040000000000000006", "0/6100028", "0/6200000")
    recovers(node)
    result = restore(node)
    assert result.returncode == 0, result.stderr
    assert recovery_settings(node)[1:3] == ["recovery_target_timeline = '4'",
                                            "recovery_target_lsn = '0/6200000'"]
    assert "the last record of 000000040000000000000006 on timeline 4" in result.stdout
    assert "timeline_requested=latest\n" in result.stdout


def test_a_timeline_without_segments_yet_ends_on_its_parent_before_it_branched(
        node: FakeNode) -> None:
    # Just promoted: 00000002.history is archived, its first segment not yet. Timeline 1
    # goes on past the switch in the archive (the old primary archived it before it died).
    a_backup(node)
    archived(node, "000000010000000000000005", "000000010000000000000006",
             "000000010000000000000007")
    history(node, 2, (1, "0/6000000"))
    records(node, "000000010000000000000005", "0/5000028", "0/5FFFF80")
    recovers(node)
    result = restore(node)
    assert result.returncode == 0, result.stderr
    assert recovery_settings(node)[1:3] == ["recovery_target_timeline = '2'",
                                            "recovery_target_lsn = '0/5FFFF80'"]
    assert "recovery to timeline 2 must reach it" in node.log("restore.log")
    waldump, = node.calls("pg_waldump")
    assert waldump.args == ["--end=0/6000000", str(node.archive / "000000010000000000000005")]


def test_the_current_timeline_and_an_explicit_one(node: FakeNode) -> None:
    a_backup(node)
    archived(node, "000000010000000000000005", "000000020000000000000006")
    history(node, 2, (1, "0/5800000"))
    records(node, "000000010000000000000005", "0/5000028")
    records(node, "000000020000000000000006", "0/6000028")
    recovers(node)
    assert restore(node, "--timeline", "current").returncode == 0
    assert recovery_settings(node)[1:3] == ["recovery_target_timeline = '1'",
                                            "recovery_target_lsn = '0/5000028'"]
    for path in node.data.parent.iterdir():
        shutil.rmtree(path)
    assert restore(node, "--timeline", "2").returncode == 0
    assert recovery_settings(node)[1:3] == ["recovery_target_timeline = '2'",
                                            "recovery_target_lsn = '0/6000028'"]


def test_an_unreadable_last_segment_fails_before_the_server_starts(node: FakeNode) -> None:
    a_backup(node)
    previous_data(node)
    archived(node, "000000010000000000000005")  # pg_waldump finds no record in it
    result = restore(node)
    assert result.returncode == 1
    assert (f"FAILED: the end of the archive cannot be proved: pg_waldump reads no record in "
            f"{node.archive}/000000010000000000000005") in result.stderr
    assert ["start", "postgresql@15-main"] not in [c.args for c in node.calls("systemctl")]
    assert (node.data / "previous").exists()  # rolled back
    assert "restore FAILED: the previous data directory is back" in node.log("restore.log")


def test_a_missing_segment_before_the_end_is_a_failed_restore(node: FakeNode) -> None:
    a_backup(node)
    previous_data(node)
    archived(node, "000000010000000000000004", "000000010000000000000006")
    records(node, "000000010000000000000006", "0/6000028", "0/6000100")
    stops_short(node, 'LOG:  restored log file "000000010000000000000004" from archive',
                "LOG:  redo done at 0/4000100 system usage: CPU: user: 0.00 s")
    result = restore(node)
    assert result.returncode == 1
    assert ("FAILED: recovery ended at LSN 0/4000100, before the end of the archive (LSN "
            "0/6000100, the last record of 000000010000000000000006 on timeline 1): segment "
            "000000010000000000000005 is missing or unreadable (the last one restored was "
            "000000010000000000000004)") in result.stderr
    # Never a promoted node reporting success: rolled back, nothing reset, no report.
    assert (node.data / "previous").exists()
    attempt, = node.data.parent.glob("main.failed-restore-*")
    assert (attempt / "recovery.signal").exists()
    assert not any("alter system reset" in (c.input or "") for c in node.queries())
    assert not (node.log_dir / "last-restore").exists()
    assert "FAILED: recovery ended at LSN 0/4000100" in node.log("restore.log")


def test_a_corrupt_segment_is_named(node: FakeNode) -> None:
    a_backup(node)
    archived(node, "000000010000000000000004", "000000010000000000000005")
    records(node, "000000010000000000000005", "0/5000028")
    stops_short(node, 'LOG:  restored log file "000000010000000000000004" from archive',
                "LOG:  invalid resource manager ID 114 at 0/407A118",
                "LOG:  redo done at 0/407A0D8 system usage: CPU: user: 0.00 s")
    result = restore(node)
    assert result.returncode == 1
    assert ("segment 000000010000000000000004 is missing or unreadable (PostgreSQL: invalid "
            "resource manager ID 114 at 0/407A118)") in result.stderr


@pytest.mark.parametrize("kind, value", [("time", "2027-01-01 00:00:00+00"),
                                         ("lsn", "0/9000000"), ("name", "before-upgrade")])
def test_a_target_that_is_not_reached_is_a_failed_restore(node: FakeNode, kind: str,
                                                          value: str) -> None:
    a_backup(node)
    previous_data(node)
    stops_short(node, "LOG:  redo done at 0/4000100 system usage: CPU: user: 0.00 s")
    result = restore(node, f"--{kind}", value)
    assert result.returncode == 1
    assert (f"FAILED: recovery ended at LSN 0/4000100, before reaching the target {kind} "
            f"'{value}': the archive holds no WAL up to it") in result.stderr
    assert node.calls("pg_waldump") == []  # its own target: no end of the archive to prove
    assert (node.data / "previous").exists()


def stops_short(node: FakeNode, *lines: str) -> None:
    """The fake server, started on the restored data, ends recovery before its target."""
    text = "".join(f"2026-01-30 10:00:01 UTC [9] {line}\n" for line in (
        *lines, "FATAL:  recovery ended before configured recovery target was reached"))
    node.flag("on-start", f"""rm -f "$FAKE_STATE/on-start" "$FAKE_STATE/running"
rm -f "$DATA_DIR/postmaster.pid"
cat >>{node.pg_log} <<'LOG'
{text}LOG
exit 1""")
