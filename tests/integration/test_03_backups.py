"""Backups that restore, on the live test lab: the schedule on every node, jobs that act only
on the primary, full and incremental backups in the registry, point-in-time restores onto
the lab's scratch node checked row by row, refusals, retention, verification, and failures
that show (archive command, full volume, failing archiver).

Runs after the read-only checks and the re-runs (test_01, test_02). The scratch node it
creates is removed with the lab (`pgcluster destroy`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgcluster.lab.definition import Lab
from pgcluster.model.backups import REGISTRY_VERSION
from tests.conftest import REPO, run_pyinfra
from tests.integration.conftest import LAB_ENV, connect, node_host, query, wait_for

NODES = ["primary", "standby", "readonly"]
SCRIPTS = "/usr/local/lib/pgcluster"
JOBS = ("backup-full", "backup-incr", "backup-retention", "backup-verify")
TABLE = "public.pitr_check"


def pgcluster(*args: str, env: dict[str, str] | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m pgcluster ARGS` against the test lab, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "pgcluster", *args], cwd=REPO,
                          env={**os.environ, **LAB_ENV, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, check=False)


def ops_query(node, sql: str) -> list[tuple]:
    """A query on the maintenance database, where the registry lives."""
    with connect(node, dbname="postgres") as conn:
        return conn.execute(sql).fetchall()


def registry(lab: Lab, where: str = "true") -> list[tuple]:
    return ops_query(lab.node("primary"), "select id, kind, label, path, status, size_bytes, "
                 "start_lsn::text, stop_lsn::text, start_wal, verify_status, detail "
                 f"from pgcluster.backups where {where} order by id")


def full_backups(lab: Lab) -> list[str]:
    out = node_host(lab.node("primary")).check_output("ls -1 /backups/full")
    return sorted(n for n in out.split() if re.fullmatch(r"\d{8}T\d{6}Z", n))


def rows(node, dbname: str = "proyecto_db") -> list[int]:
    with connect(node, dbname=dbname) as conn:
        return [r[0] for r in conn.execute(f"select id from {TABLE} order by id")]


def archived(lab: Lab, segment: str) -> bool:
    return node_host(lab.node("primary")).file(f"/backups/wal_archive/{segment}").exists


def switch_and_archive(lab: Lab) -> str:
    with connect(lab.node("primary")) as conn:
        segment = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()[0]
    wait_for(lambda: archived(lab, segment), timeout=30, what=f"{segment} archived")
    return segment


# ------------------------------------------------------------------- schedule and registry


@pytest.mark.parametrize("role", NODES)
def test_cron_schedule_and_scripts_on_every_node(lab: Lab, role: str) -> None:
    host = node_host(lab.node(role))
    cron = host.file("/etc/cron.d/pgcluster")
    assert (cron.user, cron.group, cron.mode) == ("root", "root", 0o644)
    entries = [line.split() for line in cron.content_string.splitlines()
               if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert {e[6].rsplit("/", 1)[-1] for e in entries} == set(JOBS)
    assert all(e[5] == "postgres" and len(e) >= 7 for e in entries)
    schedules = {e[6].rsplit("/", 1)[-1]: " ".join(e[:5]) for e in entries}
    assert schedules["backup-full"] == "0 2 * * 0"  # weekly (group_data)
    assert schedules["backup-incr"] == "30 2 * * *"  # daily
    assert host.service("cron").is_running and host.service("cron").is_enabled
    for script in (*JOBS, "restore-backup"):
        assert host.file(f"{SCRIPTS}/{script}").mode == 0o755, script


def test_registry_table_is_on_the_primary_and_replicated(lab: Lab) -> None:
    sql = "select obj_description('pgcluster.backups'::regclass, 'pg_class')"
    for role in NODES:
        assert ops_query(lab.node(role), sql) == [(REGISTRY_VERSION,)], role


@pytest.mark.parametrize("role", ["standby", "readonly"])
def test_backup_job_on_a_replica_does_nothing(lab: Lab, role: str) -> None:
    before_dirs, before_rows = full_backups(lab), registry(lab)
    host = node_host(lab.node(role))
    for job in JOBS:
        result = host.run(f"{SCRIPTS}/{job}")
        assert result.rc == 0, (job, result.stderr)
        assert result.stdout == "" and result.stderr == "", f"{job} is not quiet on a replica"
    assert "not the primary" in host.check_output("tail -n 1 /var/log/pgcluster/backup.log")
    assert full_backups(lab) == before_dirs
    assert registry(lab) == before_rows


def test_backup_deploy_takes_a_full_backup_on_the_primary(lab: Lab) -> None:
    before = set(full_backups(lab))
    result = run_pyinfra("inventory/docker.py", "deploys/backup.py", env=LAB_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    new = sorted(set(full_backups(lab)) - before)
    assert len(new) == 1
    files = node_host(lab.node("primary")).check_output(f"ls /backups/full/{new[0]}").split()
    assert sorted(files) == ["backup.info", "backup_manifest", "base.tar.gz", "pg_wal.tar.gz"]
    (row,) = registry(lab, f"path = 'full/{new[0]}'")
    _, kind, label, _, status, size, start_lsn, stop_lsn, start_wal, _, _ = row
    assert (kind, status, label) == ("full", "ok", f"pgcluster-full-{new[0]}")
    assert size > 0 and start_lsn and stop_lsn and re.fullmatch(r"[0-9A-F]{24}", start_wal)


# ------------------------------------------------------------------ point-in-time restores


@pytest.fixture(scope="module")
def pitr(lab: Lab) -> dict[str, Any]:
    """Rows before a full backup, rows after it up to a noted time / LSN / restore point,
    and rows after that; everything archived."""
    point = f"pitr-check-{uuid.uuid4().hex[:8]}"
    with connect(lab.node("primary")) as conn:
        conn.execute(f"drop table if exists {TABLE}")
        conn.execute(f"create table {TABLE} (id int primary key, phase text not null)")
        conn.execute(f"insert into {TABLE} select i, 'before backup' from generate_series(1, 5) i")
    result = pgcluster("backup", "full")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with connect(lab.node("primary")) as conn:
        conn.execute(f"insert into {TABLE} select i, 'after backup' from generate_series(6, 10) i")
        noted_time, noted_lsn = conn.execute(
            "select clock_timestamp(), pg_current_wal_lsn()::text").fetchone()
        conn.execute("select pg_create_restore_point(%s)", (point,))
        time.sleep(1.2)  # commits after the noted time are clearly after it
        conn.execute(f"insert into {TABLE} select i, 'after the point' "
                     "from generate_series(11, 15) i")
    switch_and_archive(lab)
    return {"time": noted_time.isoformat(), "lsn": noted_lsn, "name": point,
            "until_point": list(range(1, 11)), "all": list(range(1, 16))}


def restore_onto_scratch(lab: Lab, *target: str) -> subprocess.CompletedProcess:
    # Named explicitly: the scratch node may be running from an earlier restore.
    result = pgcluster("restore", *target, "--force-node", lab.scratch.name)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def test_restore_to_a_time_then_to_the_latest_point(lab: Lab, pitr: dict[str, Any]) -> None:
    result = restore_onto_scratch(lab, "--time", pitr["time"])
    assert rows(lab.scratch) == pitr["until_point"]
    # The node says which point it reached: in the command's output and on the node.
    assert "reached:" in result.stdout
    assert "recovery stopping before commit" in result.stdout
    report = node_host(lab.scratch).check_output("cat /var/log/pgcluster/last-restore")
    assert "target=time '" in report and "reached_lsn=" in report
    assert query(lab.scratch, "select pg_is_in_recovery()") == [(False,)]
    restored = ops_query(lab.scratch, "select detail from pgcluster.backups where kind = 'restore' "
                     "order by id desc limit 1")
    assert restored and "recovery stopping before commit" in restored[0][0]
    # The scratch node never archives into the cluster's archive.
    assert query(lab.scratch, "show archive_mode") == [("off",)]

    restore_onto_scratch(lab)  # no target: the end of the archive
    assert rows(lab.scratch) == pitr["all"]


@pytest.mark.parametrize("kind", ["lsn", "name"])
def test_restore_to_an_lsn_and_to_a_restore_point(lab: Lab, pitr: dict[str, Any],
                                                  kind: str) -> None:
    result = restore_onto_scratch(lab, f"--{kind}", pitr[kind])
    assert rows(lab.scratch) == pitr["until_point"]
    assert "recovery stopping" in result.stdout


def test_restore_refuses_a_node_with_a_running_server(lab: Lab, pitr: dict[str, Any]) -> None:
    started = query(lab.scratch, "select pg_postmaster_start_time()")
    host = node_host(lab.scratch)
    asides = host.check_output("ls -d /var/lib/postgresql/15/main.before-restore-* | wc -l")
    result = pgcluster("restore")  # the scratch node runs: not named, so refused
    assert result.returncode != 0
    assert "refusing" in result.stdout + result.stderr
    assert query(lab.scratch, "select pg_postmaster_start_time()") == started
    assert host.check_output("ls -d /var/lib/postgresql/15/main.before-restore-* | wc -l") \
        == asides
    # A cluster node: its server runs; named, the running primary still forbids it.
    for args in (["--node", "standby"], ["--force-node", lab.node("standby").name]):
        result = pgcluster("restore", *args, "--yes")
        assert result.returncode != 0 and "refusing" in result.stdout + result.stderr, args
    assert query(lab.node("standby"), "select pg_is_in_recovery()") == [(True,)]


def test_a_failed_restore_puts_the_previous_data_back(lab: Lab, pitr: dict[str, Any]) -> None:
    before = rows(lab.scratch)
    result = pgcluster("restore", "--name", f"no-such-point-{uuid.uuid4().hex[:6]}",
                       "--force-node", lab.scratch.name)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "recovery ended before configured recovery target was reached" in output
    assert "restore FAILED: the previous data directory is back" in output
    assert "its server is running again" in output
    wait_for(lambda: rows(lab.scratch) == before, timeout=30, what="the previous data served")
    host = node_host(lab.scratch)
    assert host.check_output("ls -d /var/lib/postgresql/15/main.failed-restore-* | wc -l") != "0"


def test_previous_data_directories_are_kept(lab: Lab, pitr: dict[str, Any]) -> None:
    asides = node_host(lab.scratch).check_output(
        "ls -d /var/lib/postgresql/15/main.before-restore-*").split()
    assert len(asides) >= 3  # every forced restore moved the previous one aside


def test_a_restore_to_the_latest_point_proves_it_reached_the_end_of_the_archive(
        lab: Lab, pitr: dict[str, Any]) -> None:
    """A segment missing from the middle of the archive, or damaged, is a failed restore,
    never a promoted node that silently stopped early (before the incrementals copy the
    archive: restore-wal would find the segment there)."""
    primary = lab.node("primary")
    table = "public.archive_end_check"
    with connect(primary) as conn:
        conn.execute(f"drop table if exists {table}")
        conn.execute(f"create table {table} (id int)")
        conn.execute(f"insert into {table} select generate_series(1, 5)")
    gap = switch_and_archive(lab)
    with connect(primary) as conn:
        conn.execute(f"insert into {table} select generate_series(6, 10)")
    switch_and_archive(lab)
    host = node_host(primary)
    aside = f"/backups/test-aside-{uuid.uuid4().hex[:6]}"
    for damage in (f"mv /backups/wal_archive/{gap} {aside}/",
                   f"cp -p /backups/wal_archive/{gap} {aside}/ && printf 'garbage!' | dd "
                   f"of=/backups/wal_archive/{gap} bs=1 seek=200 conv=notrunc 2>/dev/null"):
        host.check_output(f"install -d -o postgres {aside} && {damage}")
        try:
            result = pgcluster("restore", "--force-node", lab.scratch.name)
        finally:
            host.check_output(f"mv -f {aside}/{gap} /backups/wal_archive/{gap} && rmdir {aside}")
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert "recovery ended before configured recovery target was reached" in output, \
            output[-3000:]
        assert "restore FAILED" in output
    restore_onto_scratch(lab)
    with connect(lab.scratch) as conn:
        assert [r[0] for r in conn.execute(f"select id from {table} order by 1")] == \
            list(range(1, 11))


# --------------------------------------------------------------- archive, incr, verify, list


def test_archive_command_refuses_different_content_and_accepts_identical(lab: Lab) -> None:
    host = node_host(lab.node("primary"))
    segment = switch_and_archive(lab)
    archived_file = f"/backups/wal_archive/{segment}"
    digest = host.check_output(f"sha256sum {archived_file}").split()[0]
    copy = f"/tmp/{segment}"
    as_postgres = "runuser -u postgres --"
    host.check_output(f"cp {archived_file} {copy} && chown postgres {copy}")
    same = host.run(f"{as_postgres} {SCRIPTS}/archive-wal {copy} {segment}")
    assert same.rc == 0, same.stderr
    host.check_output(f"printf 'X' | dd of={copy} bs=1 seek=4096 conv=notrunc status=none")
    different = host.run(f"{as_postgres} {SCRIPTS}/archive-wal {copy} {segment}")
    assert different.rc == 1
    assert "refusing to overwrite" in different.stderr
    assert host.check_output(f"sha256sum {archived_file}").split()[0] == digest
    host.run(f"rm -f {copy}")


def test_incremental_collects_the_archived_wal(lab: Lab, pitr: dict[str, Any]) -> None:
    segment = switch_and_archive(lab)
    result = pgcluster("backup", "incr")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    day = datetime.now(UTC).strftime("%Y%m%d")
    host = node_host(lab.node("primary"))
    assert host.file(f"/backups/incr/{day}/{segment}.gz").exists
    # Every copy is the archived file: gunzip them and check SHA256SUMS.
    check = host.run(f"cd /backups/incr/{day} && tmp=$(mktemp -d) && for f in *.gz; do "
                     "gzip -dc $f > $tmp/${f%.gz}; done && cd $tmp && sha256sum --quiet -c "
                     f"/backups/incr/{day}/SHA256SUMS; rc=$?; rm -rf $tmp; exit $rc")
    assert check.rc == 0, check.stdout + check.stderr
    last = registry(lab, "kind = 'incr'")[-1]
    assert last[4] == "ok" and last[3] == f"incr/{day}" and last[6] and last[7]


def _copy_backup(lab: Lab, source: str, name: str) -> None:
    """A copy of a full backup under another name and label (not in the registry)."""
    node_host(lab.node("primary")).check_output(
        f"cp -a /backups/full/{source} /backups/full/{name} && "
        f"sed -i 's/^label=.*/label=copy-{name}/' /backups/full/{name}/backup.info")


def test_verify_passes_and_catches_a_flipped_byte(lab: Lab, pitr: dict[str, Any]) -> None:
    newest = full_backups(lab)[-1]
    result = pgcluster("backup", "verify", newest)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert registry(lab, f"path = 'full/{newest}'")[0][9] == "ok"

    host = node_host(lab.node("primary"))
    stamp = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y%m%dT%H%M%SZ")
    flipped = {f"{stamp[:-3]}01Z": "base.tar.gz", f"{stamp[:-3]}02Z": "a file inside"}
    try:
        for name, where in flipped.items():
            _copy_backup(lab, newest, name)
            if where == "base.tar.gz":  # one byte in the middle of the compressed archive
                host.check_output(
                    f"f=/backups/full/{name}/base.tar.gz; off=$(( $(stat -c %s $f) / 2 )); "
                    "b=$(dd if=$f bs=1 skip=$off count=1 status=none | od -An -tu1); "
                    "printf \"\\\\$(printf %o $(( (b ^ 1) & 255 )))\" | "
                    "dd of=$f bs=1 seek=$off conv=notrunc status=none")
            else:  # a valid archive whose PG_VERSION no longer matches the manifest
                host.check_output(
                    f"cd /backups/full/{name} && t=$(mktemp -d) && tar -xzf base.tar.gz -C $t "
                    "&& printf '16\\n' > $t/PG_VERSION && tar -czf base.tar.gz -C $t . "
                    "&& rm -rf $t")
            check = host.run(f"{SCRIPTS}/backup-verify {name}")
            assert check.rc == 1, (where, check.stdout, check.stderr)
            assert "FAILED" in check.stdout + check.stderr, where
            if where == "a file inside":
                assert "pg_verifybackup" in check.stderr and "PG_VERSION" in check.stderr

        # The copies are on disk but not in the registry: list flags it and exits 1.
        listing = pgcluster("backup", "list")
        assert listing.returncode == 1, listing.stdout
        assert "MISMATCH" in listing.stdout
        assert f"full/{next(iter(flipped))}: on disk but not in the registry" in listing.stdout
    finally:
        host.run(" ; ".join(f"rm -rf /backups/full/{name}" for name in flipped))
    listing = pgcluster("backup", "list", "--json")
    assert listing.returncode == 0, listing.stdout[-3000:] + listing.stderr[-3000:]
    state = json.loads(listing.stdout)
    assert state["mismatches"] == [] and state["archiver"]["failing"] is False


# ---------------------------------------------------------------------------- retention


def test_retention_removes_old_backups_and_keeps_the_wal_they_need(lab: Lab,
                                                                   pitr: dict[str, Any]) -> None:
    host = node_host(lab.node("primary"))
    segments = sorted(s for s in host.check_output("ls -1 /backups/wal_archive").split()
                      if re.fullmatch(r"[0-9A-F]{24}", s))
    real_backups = full_backups(lab)
    assert len(segments) > 3 and real_backups
    now = datetime.now(UTC)
    # Backups taken 20, 10 and 3 days ago (directory names in the past), needing the first
    # three archived segments; an incremental of 20 days ago.
    fakes = {(now - timedelta(days=age)).strftime("%Y%m%dT%H%M%SZ"): segments[i]
             for i, age in enumerate((20, 10, 3))}
    old_day = (now - timedelta(days=20)).strftime("%Y%m%d")
    for name, start_wal in fakes.items():
        host.check_output(
            f"install -d -o postgres -g postgres -m 700 /backups/full/{name} && printf "
            f"'kind=full\\nlabel=old-{name}\\nstart_wal={start_wal}\\nwal_segment_size=16777216\\n"
            f"finished_at={name}\\n' > /backups/full/{name}/backup.info")
    host.check_output(
        f"install -d -o postgres -g postgres /backups/incr/{old_day} && gzip -c "
        f"/backups/wal_archive/{segments[0]} > /backups/incr/{old_day}/{segments[0]}.gz")
    twenty, ten, three = fakes
    try:
        plan = host.run(f"{SCRIPTS}/backup-retention --plan")
        assert plan.rc == 0, plan.stderr
        assert f"remove full {twenty}" in plan.stdout
        assert host.file(f"/backups/full/{twenty}").exists, "--plan must not remove anything"

        result = pgcluster("backup", "retention")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        left = set(full_backups(lab))
        assert twenty not in left  # older than the window, and not the window's start
        assert {ten, three} <= left  # ten: the newest before the window (restores day -7)
        assert set(real_backups) <= left
        remaining = set(host.check_output("ls -1 /backups/wal_archive").split())
        assert segments[0] not in remaining  # only the oldest kept backup's start counts
        assert set(segments[1:]) <= remaining, "a segment a kept backup needs was removed"
        assert not host.file(f"/backups/incr/{old_day}").exists

        # The newest full backup is never removed, even with a zero-day window.
        plan = host.run(f"{SCRIPTS}/backup-retention --plan --days 0")
        assert plan.rc == 0, plan.stderr
        kept = re.findall(r"^keep full (\S+)$", plan.stdout, re.MULTILINE)
        assert kept == [sorted(left)[-1]]
    finally:
        host.run(f"rm -rf /backups/full/{ten} /backups/full/{three} /backups/full/{twenty} "
                 f"/backups/incr/{old_day}")


# ---------------------------------------------------------------------- failures that show


def test_a_full_volume_stops_a_full_backup_with_a_clear_error(lab: Lab) -> None:
    before = full_backups(lab)
    host = node_host(lab.node("primary"))
    # As if the volume were nearly full: demand far more room than any disk has.
    result = host.run(f"PGCLUSTER_BACKUP_SPACE_FACTOR=1000000 {SCRIPTS}/backup-full")
    assert result.rc == 1
    assert "not enough free space in /backups" in result.stderr
    assert full_backups(lab) == before
    assert host.check_output("ls -a /backups/full | grep -c inprogress || true") == "0"
    last = registry(lab, "kind = 'full'")[-1]
    assert last[4] == "failed" and "not enough free space" in last[10]


def test_a_failing_archive_shows_in_exit_codes_and_status(lab: Lab) -> None:
    host = node_host(lab.node("primary"))
    primary = lab.node("primary")
    failed_before = query(primary, "select failed_count from pg_stat_archiver")[0][0]
    host.check_output("chmod 0500 /backups/wal_archive")  # archive-wal can no longer write
    try:
        with connect(primary) as conn:
            conn.execute("select pg_switch_wal()")
        wait_for(lambda: query(primary, "select failed_count from pg_stat_archiver")[0][0]
                 > failed_before, timeout=30, what="the archiver to report a failure")
        result = host.run(f"{SCRIPTS}/backup-incr")
        assert result.rc == 1
        assert "WAL archiving is failing" in result.stderr
        listing = pgcluster("backup", "list")
        assert listing.returncode == 1 and "WAL archiver: FAILING" in listing.stdout
    finally:
        host.check_output("chmod 0750 /backups/wal_archive")
    segment = switch_and_archive(lab)  # wakes the archiver: the backlog goes out
    assert archived(lab, segment)
    wait_for(lambda: not query(primary, "select last_failed_time > last_archived_time "
                               "from pg_stat_archiver")[0][0], timeout=60,
             what="the archiver healthy again")
    # Leave the statistics as a fresh cluster has them (test_01 checks failed_count = 0).
    query(primary, "select pg_stat_reset_shared('archiver')")
