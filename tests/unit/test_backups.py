"""Backups without Docker: the rendered scripts (retention's choices run for real on a
directory tree), the repository model, recovery targets and backup selection, restore
parameters and refusals, the registry/disk comparison."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgcluster import TEMPLATES_DIR
from pgcluster.backups import (
    FullBackup,
    IncrBackup,
    Repository,
    format_lsn,
    mismatches,
    parse_lsn,
    parse_repository,
    recovery_target,
    repository_command,
    select_backup,
    wal_file_name,
)
from pgcluster.errors import ClusterStateError, ConfigError
from pgcluster.render import context, render
from pgcluster.steps.restore import check, request_from, target_node
from pgcluster.topology import decide
from tests.unit.helpers import ALL, cluster

SCRIPTS = ["backup-full", "backup-incr", "backup-retention", "backup-verify", "restore-backup"]


def rendered(template: str, **data) -> str:
    c = cluster(**data)
    return render(template, context({**ALL, **data}, c.node("db1"), c))


def repo_data(root: Path, **extra) -> dict:
    return {"backup_root": str(root), "backup_full_dir": str(root / "full"),
            "backup_incr_dir": str(root / "incr"), "wal_archive_dir": str(root / "wal_archive"),
            "backup_log_dir": str(root / "log"), **extra}


# ------------------------------------------------------------------------------ templates


@pytest.mark.parametrize("script", [*SCRIPTS, "restore-wal"])
def test_scripts_are_valid_bash_and_deterministic(tmp_path: Path, script: str) -> None:
    text = rendered(f"scripts/{script}.j2")
    assert text == rendered(f"scripts/{script}.j2")
    path = tmp_path / script
    path.write_text(text)
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_no_template_opens_a_jinja_comment_by_accident() -> None:
    # "${#array[@]}" in bash would start a Jinja comment and silently drop script lines.
    for template in (TEMPLATES_DIR / "scripts").glob("*.j2"):
        assert "{#" not in template.read_text(), template.name


def test_full_backup_is_tar_gzip6_with_manifest_and_streamed_wal() -> None:
    text = rendered("scripts/backup-full.j2")
    assert "--format=tar --compress=gzip:6 --wal-method=stream" in text
    assert "--checkpoint=fast --label=\"$label\" --manifest-checksums=CRC32C" in text
    assert 'work="$full_dir/.inprogress-$stamp"' in text and 'mv "$work" "$final"' in text
    assert "require_primary" in text and "take_lock" in text
    assert "--compress=gzip:9" in rendered("scripts/backup-full.j2", backup_compress_level=9)
    assert "--checkpoint=spread" in rendered("scripts/backup-full.j2", backup_checkpoint="spread")


def test_cron_runs_every_job_as_postgres_on_its_schedule() -> None:
    text = rendered("cron/pgcluster.j2")
    entries = [line.split() for line in text.splitlines()
               if line and line[0].isdigit()]
    assert [(e[:5], e[5], e[6]) for e in entries] == [
        (["0", "2", "*", "*", "0"], "postgres", "/usr/local/lib/pgcluster/backup-full"),
        (["30", "2", "*", "*", "*"], "postgres", "/usr/local/lib/pgcluster/backup-incr"),
        (["0", "4", "*", "*", "*"], "postgres", "/usr/local/lib/pgcluster/backup-retention"),
        (["0", "5", "*", "*", "*"], "postgres", "/usr/local/lib/pgcluster/backup-verify"),
    ]
    text = rendered("cron/pgcluster.j2", backup_verify_schedule="",
                    backup_full_schedule="5 1 * * 6")
    assert "# backup-verify: disabled" in text
    assert "5 1 * * 6           postgres  /usr/local/lib/pgcluster/backup-full" in text


def test_registry_sql_creates_only_what_is_missing() -> None:
    c = cluster()
    sql = render("sql/backups.sql.j2", {**context(ALL, c.node("db1"), c),
                                        "registry_version": "v-test"})
    assert "CREATE SCHEMA IF NOT EXISTS pgcluster" in sql
    assert "CREATE TABLE IF NOT EXISTS pgcluster.backups" in sql
    assert "COMMENT ON TABLE pgcluster.backups IS 'v-test'" in sql
    assert "DROP" not in sql.upper() and "DELETE" not in sql.upper()


def test_wal_position_helpers_in_bash_match_python(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.write_text(rendered("scripts/backup-lib.j2"))
    out = subprocess.run(
        ["bash", "-c", f"source {lib}; echo $(wal_name 1 0/7000028 16777216) "
         "$(wal_name 3 1A/FF000000 16777216) $(segment_lsn 00000001000000000000000B 16777216) "
         "$(segment_lsn 00000001000000000000000B 16777216 end) $(lsn_int 1/10)"],
        capture_output=True, text=True, check=True).stdout.split()
    assert out == [wal_file_name(1, "0/7000028"), wal_file_name(3, "1A/FF000000"),
                   "0/B000000", "0/C000000", str(parse_lsn("1/10"))]
    assert out[:2] == ["000000010000000000000007", "000000030000001A000000FF"]


# ------------------------------------------------------------------------ restore-wal


def test_restore_wal_falls_back_to_the_newest_incremental_copy(tmp_path: Path) -> None:
    script = tmp_path / "restore-wal"
    script.write_text(rendered("scripts/restore-wal.j2", **repo_data(tmp_path)))
    script.chmod(0o755)
    (tmp_path / "wal_archive").mkdir()
    (tmp_path / "wal_archive" / "A").write_bytes(b"from the archive")
    for day, content in (("20260101", b"older copy"), ("20260102", b"newer copy")):
        (tmp_path / "incr" / day).mkdir(parents=True)
        (tmp_path / "incr" / day / "B.gz").write_bytes(gzip.compress(content))

    def fetch(name: str) -> tuple[int, bytes | None]:
        out = tmp_path / "out"
        out.unlink(missing_ok=True)
        rc = subprocess.run([script, name, out], capture_output=True).returncode
        return rc, out.read_bytes() if out.exists() else None

    assert fetch("A") == (0, b"from the archive")
    assert fetch("B") == (0, b"newer copy")
    assert fetch("C")[0] == 1


# -------------------------------------------------------------------------- retention


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


def plan(root: Path, *args: str, days: int = 7) -> subprocess.CompletedProcess:
    script = root / "backup-retention"
    if not script.exists():
        script.write_text(rendered("scripts/backup-retention.j2",
                                   **repo_data(root, backup_retention_days=days)))
        script.chmod(0o755)
    return subprocess.run([script, "--plan", *args], capture_output=True, text=True)


def seg(position: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{0:08X}{position:08X}"


NOW = ["--now", "2026-01-31 00:00:00 UTC"]  # 7-day window: from 2026-01-24 00:00


def test_retention_keeps_the_window_and_the_wal_its_oldest_backup_needs(tmp_path: Path) -> None:
    fulls = {"20260101T020000Z": seg(0x0A), "20260111T020000Z": seg(0x14),
             "20260122T020000Z": seg(0x1E), "20260125T020000Z": seg(0x28),
             "20260130T020000Z": seg(0x32)}
    wal = [seg(p) for p in range(0x01, 0x40)] + [
        "00000002.history", f"{seg(0x1D)}.partial", f"{seg(0x1D)}.00000028.backup",
        f"{seg(0x1E)}.00000028.backup", seg(0x1D, timeline=2), seg(0x1E, timeline=2),
        "README"]
    incr = {"20260101": [], "20260110": [f"{seg(p)}.gz" for p in range(0x10, 0x14)],
            "20260123": [f"{seg(0x1D)}.gz", f"{seg(0x1E)}.gz"], "20260130": []}
    make_tree(tmp_path, fulls, wal, incr)
    (tmp_path / "full" / ".inprogress-20260130T030000Z").mkdir()
    stale = tmp_path / "wal_archive" / f".{seg(0x3F)}.123.tmp"
    stale.write_bytes(b"t")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    (tmp_path / "wal_archive" / ".fresh.456.tmp").write_bytes(b"t")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    result = plan(tmp_path, *NOW)
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
    # A plan removes nothing.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                  if p.name != "backup-retention") == before


def test_retention_never_removes_the_newest_full_backup(tmp_path: Path) -> None:
    make_tree(tmp_path, {"20250101T020000Z": seg(0x05), "20250201T020000Z": seg(0x09)},
              [seg(p) for p in range(1, 12)], {})
    result = plan(tmp_path, *NOW, "--days", "0")
    assert result.returncode == 0, result.stderr
    assert "keep full 20250201T020000Z" in result.stdout.splitlines()
    assert "remove full 20250101T020000Z" in result.stdout.splitlines()
    assert f"remove wal {seg(0x09)}" not in result.stdout
    assert f"remove wal {seg(0x08)}" in result.stdout


def test_retention_without_backups_keeps_the_whole_archive(tmp_path: Path) -> None:
    make_tree(tmp_path, {}, [seg(p) for p in range(1, 5)], {})
    (tmp_path / "full").mkdir()
    result = plan(tmp_path, *NOW)
    assert result.returncode == 0
    assert "remove" not in result.stdout
    assert "whole WAL archive is kept" in result.stderr


def test_retention_without_a_start_segment_removes_no_wal(tmp_path: Path) -> None:
    make_tree(tmp_path, {"20260130T020000Z": "garbage"}, [seg(1)], {})
    result = plan(tmp_path, *NOW)
    assert result.returncode == 1
    assert "no valid start_wal" in result.stderr and "remove wal" not in result.stdout


def test_retention_rejects_a_bad_window(tmp_path: Path) -> None:
    make_tree(tmp_path, {}, [], {})
    result = plan(tmp_path, "--days", "seven")
    assert result.returncode != 0 and "whole number" in result.stderr


# ---------------------------------------------------------------- repository and registry


def test_lsn_and_wal_file_names() -> None:
    assert parse_lsn("0/7000028") == 0x7000028
    assert format_lsn(parse_lsn("1A/FF000028")) == "1A/FF000028"
    assert wal_file_name(1, "0/7000028") == "000000010000000000000007"
    assert wal_file_name(2, "1/0") == "000000020000000100000000"
    with pytest.raises(ValueError):
        parse_lsn("7000028")


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


# ------------------------------------------------------------------- restore parameters


def test_restore_parameters_from_data_or_environment() -> None:
    req = request_from({"restore_time": "2026-01-20 12:00:00+00", "restore_node": "db1"},
                       env={"PGCLUSTER_RESTORE_NODE": "db2", "PGCLUSTER_RESTORE_ACTION": "pause"})
    assert (req.target.kind, req.node, req.action, req.timeline, req.backup) == (
        "time", "db1", "pause", "latest", "latest")
    with pytest.raises(ConfigError, match="restore action"):
        request_from({"restore_action": "shutdown"}, env={})
    with pytest.raises(ConfigError, match="restore timeline"):
        request_from({"restore_timeline": "newest"}, env={})
    assert request_from({"restore_name": 12}, env={}).target.value == "12"


PRIMARY = {"running": True, "in_recovery": False, "data": True, "standby_signal": False}
STANDBY = {"running": True, "in_recovery": True, "data": True, "standby_signal": True}
STOPPED = {"running": False, "in_recovery": False, "data": True, "standby_signal": False}


def test_restore_refuses_running_servers_and_second_primaries() -> None:
    topology = decide(cluster(), {"db1": PRIMARY, "db2": STANDBY, "db3": STANDBY})
    with pytest.raises(ConfigError, match="name the node to restore onto"):
        target_node(topology, request_from({}, env={}))
    node, forced = target_node(topology, request_from({"restore_node": "standby"}, env={}))
    assert (node.host, forced) == ("db2", False)
    with pytest.raises(ClusterStateError, match="refusing: db2 runs a PostgreSQL server"):
        check(topology, node, forced)
    node, forced = target_node(topology, request_from({"restore_force_node": "db2"}, env={}))
    with pytest.raises(ClusterStateError, match="db1 is the running primary"):
        check(topology, node, forced)
    # The primary itself, named: allowed (the whole cluster goes back in time).
    node, forced = target_node(topology, request_from({"restore_force_node": "db1"}, env={}))
    check(topology, node, forced)
    with pytest.raises(ConfigError, match="is not the restore's node"):
        target_node(topology, request_from({"restore_node": "db1", "restore_force_node": "db2"},
                                           env={}))
    # A stopped node with no running primary elsewhere needs no forcing.
    topology = decide(cluster(), {"db1": STOPPED, "db2": STANDBY, "db3": STANDBY})
    node, forced = target_node(topology, request_from({"restore_node": "db1"}, env={}))
    check(topology, node, forced)
