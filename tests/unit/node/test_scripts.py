"""Backups without Docker: the rendered scripts (retention's choices run for real on a
directory tree), the repository model, recovery targets and backup selection, restore
parameters and refusals, the registry/disk comparison."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
from pathlib import Path

import pytest

from pgcluster import TEMPLATES_DIR
from pgcluster.control.templating import render_template, template_context
from pgcluster.model.backups import FullBackup
from pgcluster.model.wal import parse_lsn, wal_file_name
from tests.unit.helpers import ALL, SECRETS, cluster

SCRIPTS = ["backup-full", "backup-incr", "backup-retention", "backup-verify", "restore-backup"]


def repo_data(root: Path, **extra) -> dict:
    return {"backup_root": str(root), "backup_full_dir": str(root / "full"),
            "backup_incr_dir": str(root / "incr"), "wal_archive_dir": str(root / "wal_archive"),
            "backup_log_dir": str(root / "log"), **extra}


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


def backup(name: str, finished: str, stop_lsn: str, label: str = "") -> FullBackup:
    return FullBackup(name, 1, {"label": label or f"pgcluster-full-{name}",
                                "start_wal": seg(1), "finished_at": finished,
                                "stop_lsn": stop_lsn})


@pytest.mark.parametrize("script", ["start-guard", "rejoin-replica"])
def test_ha_scripts_are_valid_bash(tmp_path: Path, script: str) -> None:
    c = cluster()
    path = tmp_path / script
    ctx = template_context({**ALL, **SECRETS}, c.node("db2"), c)
    path.write_text(render_template(f"scripts/{script}.j2", ctx))
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_start_guard_asks_every_other_node() -> None:
    c = cluster()
    ctx = template_context({**ALL, **SECRETS}, c.node("db2"), c)
    text = render_template("scripts/start-guard.j2", ctx)
    assert "10.0.0.1:5432 10.0.0.3:5432" in text and "10.0.0.2:5432" not in text
    assert "IDENTIFY_SYSTEM" in text and "rejoin db2" in text


def rendered(template: str, node: str = "db1", **data) -> str:
    c = cluster(**data)
    entry_data = {**ALL, **data, "admin_password": "a", "replication_password": "r:p\\w",
                  "rewind_password": "rw", "app_password": "ap"}
    return render_template(template, template_context(entry_data, c.node(node), c))


def test_start_guard_checks_its_peers_certificates() -> None:
    guard = rendered("scripts/start-guard.j2")
    assert ("sslmode=verify-full sslrootcert=/etc/postgresql/15/main/tls/ca.crt "
            "channel_binding=require") in guard
    assert "passfile=/var/lib/postgresql/.pgpass" in guard and "password=" not in guard


@pytest.mark.parametrize("script", ["archive-wal", "restore-wal", "clone-replica",
                                    "rejoin-replica", "start-guard"])
def test_scripts_are_valid_bash(tmp_path: Path, script: str) -> None:
    path = tmp_path / script
    path.write_text(rendered(f"scripts/{script}.j2"))
    subprocess.run(["bash", "-n", str(path)], check=True)


def archive_script(tmp_path: Path) -> Path:
    archive = tmp_path / "wal_archive"
    archive.mkdir()
    script = tmp_path / "archive-wal"
    script.write_text(rendered("scripts/archive-wal.j2", wal_archive_dir=str(archive)))
    script.chmod(0o755)
    return script


def test_archive_command_copies_then_refuses_different_content(tmp_path: Path) -> None:
    script = archive_script(tmp_path)
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(b"wal-one" * 1000)
    archived = tmp_path / "wal_archive" / segment.name

    first = subprocess.run([script, segment, segment.name], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert archived.read_bytes() == segment.read_bytes()

    again = subprocess.run([script, segment, segment.name], capture_output=True, text=True)
    assert again.returncode == 0, "an identical re-push must succeed"

    segment.write_bytes(b"different" * 1000)
    clash = subprocess.run([script, segment, segment.name], capture_output=True, text=True)
    assert clash.returncode == 1
    assert "refusing to overwrite" in clash.stderr
    assert archived.read_bytes() == b"wal-one" * 1000
    assert sorted(p.name for p in archived.parent.iterdir()) == [segment.name]


def test_archive_command_fails_when_the_archive_is_missing(tmp_path: Path) -> None:
    script = archive_script(tmp_path)
    (tmp_path / "wal_archive").rmdir()
    segment = tmp_path / "000000010000000000000002"
    segment.write_bytes(b"x")
    result = subprocess.run([script, segment, segment.name], capture_output=True, text=True)
    assert result.returncode != 0
