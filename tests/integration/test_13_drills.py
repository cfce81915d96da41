"""`pgcluster drill` on the shared test lab (lab/test.toml; the manual engine, no proxy: the
writer goes through libpq's multi-host string), as an operator runs it.

Each drill's report is checked against what this test observes on its own: the rows in the
drill's table on the primary afterwards (an independent count), the servers' own insert
times (the longest pause between two rows), and this test's clock around the command. The
last test breaks the newest backup on purpose (a table's data file emptied in it) and the
restore drill must fail, naming that table and its missing rows.

The tests run in order; the failover drill leaves the standby as the primary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pgcluster.control.writer import TABLE
from pgcluster.lab.definition import Lab, LabNode
from tests.conftest import REPO
from tests.integration.conftest import connect, node_host, pgcluster_cli, query
from tests.unit.helpers import ALL

PNG = b"\x89PNG\r\n\x1a\n"
DURATION = "12"  # seconds of writes per drill leg: enough for the fault and the recovery


def primary_of(lab: Lab) -> LabNode:
    found = [n for n in lab.nodes if not query(n, "select pg_is_in_recovery()")[0][0]]
    assert len(found) == 1, f"nodes accepting writes: {[n.name for n in found]}"
    return found[0]


def drill(lab: Lab, report: Path, *args: str) -> tuple[subprocess.CompletedProcess, float,
                                                          float]:
    """The command, and this test's clock before and after it."""
    before = time.time()
    result = pgcluster_cli(lab, "drill", *args, "--yes", "--report", str(report),
                           timeout=900)
    return result, before, time.time()


def report(directory: Path, drill_name: str) -> dict[str, Any]:
    """The drill's three files: the JSON read back, the Markdown and the chart checked."""
    for suffix in ("json", "md", "png"):
        assert (directory / f"{drill_name}.{suffix}").is_file(), f"no {drill_name}.{suffix}"
    assert (directory / f"{drill_name}.png").read_bytes()[:8] == PNG
    assert "Verdict" in (directory / f"{drill_name}.md").read_text()
    return json.loads((directory / f"{drill_name}.json").read_text())


def observed(node: LabNode) -> tuple[int, float]:
    """On the primary, independently of the drill: how many of its rows are there, and the
    longest pause between two consecutive ones by the server's own insert times."""
    with connect(node) as conn:
        count = conn.execute(f"select count(*) from {TABLE}").fetchone()[0]
        gap = conn.execute(f"select coalesce(max(gap), 0) from (select extract(epoch from "
                           f"at - lag(at) over (order by at))::float8 as gap from {TABLE}) g"
                           ).fetchone()[0]
    return count, gap


def check_leg(data: dict[str, Any], on: LabNode, before: float, after: float) -> None:
    figures = data["figures"]
    assert figures["lost"] == [], "acknowledged commits lost"
    count, gap = observed(on)
    assert count == figures["commits"], (count, figures["commits"])
    assert figures["commits"] > 100  # 50 commits/s for 12 s: it wrote all along
    # The pause the servers' timestamps show is the pause the writer saw (its acks come a
    # few milliseconds after each insert).
    assert abs(gap - figures["longest_gap"]) < 1.0, (gap, figures["longest_gap"])
    fault = data["events"]["fault"]["epoch"]
    assert before < fault < after
    assert figures["first_write_after_fault"] is not None
    assert fault + figures["first_write_after_fault"] < after


def test_a_switchover_drill_goes_there_and_back_and_reports_what_the_test_counts(
        lab: Lab, tmp_path: Path) -> None:
    primary = primary_of(lab)
    result, before, after = drill(lab, tmp_path, "switchover", "--duration", DURATION)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    there = report(tmp_path, "switchover")
    back = report(tmp_path / "switchover-back", "switchover")
    assert there["passed"] and back["passed"], (there["reasons"], back["reasons"])
    # The way back is the last leg: its rows are what the table holds.
    assert primary_of(lab) == primary, "the drill did not put the roles back"
    check_leg(back, primary, there["events"]["end"]["epoch"], after)
    assert before < there["events"]["fault"]["epoch"] < back["events"]["fault"]["epoch"]
    print(f"switchover drill: first write {there['figures']['first_write_after_fault']:.1f}s "
          f"and {back['figures']['first_write_after_fault']:.1f}s after the fault")


def test_a_failover_drill_passes_and_leaves_every_node_streaming(
        lab: Lab, tmp_path: Path) -> None:
    old = primary_of(lab)
    result, before, after = drill(lab, tmp_path, "failover", "--duration", DURATION)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = report(tmp_path, "failover")
    assert data["passed"], data["reasons"]
    new = primary_of(lab)
    assert new != old and new.role == "standby", "the read-only replica was promoted"
    check_leg(data, new, before, after)
    assert data["figures"]["first_write_after_fault"] <= ALL["drill_max_rto_seconds"]
    # Healthy again: the old primary rejoined, both replicas stream from the new one.
    streaming = {row[0] for row in query(new, "select application_name from "
                                              "pg_stat_replication where state = 'streaming'")}
    assert streaming == {n.name for n in lab.nodes} - {new.name}
    print(f"failover drill: first write {data['figures']['first_write_after_fault']:.1f}s "
          f"after the fault, every replica streaming after "
          f"{data['figures']['time_to_recovered']:.1f}s")


def test_a_restore_drill_compares_every_table_and_passes(lab: Lab, tmp_path: Path) -> None:
    result, _, _ = drill(lab, tmp_path, "restore")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = report_json(tmp_path)
    assert data["passed"], data["reasons"]
    figures = data["figures"]
    assert figures["differing_tables"] == []
    # Every permanent table of every database, as this test counts them itself.
    databases = [r[0] for r in query(primary_of(lab), "select datname from pg_database "
                                                      "where datallowconn and not datistemplate")]
    tables = 0
    for database in databases:
        with connect(primary_of(lab), dbname=database) as conn:
            tables += conn.execute(
                "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.relkind = 'r' and c.relpersistence = 'p' and n.nspname not in "
                "('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'"
            ).fetchone()[0]
    assert (figures["tables_compared"], figures["databases_compared"]) == \
        (tables, len(databases)), (tables, databases)
    # Its verdict is in the registry, and status shows it as the last proven restore.
    assert newest_drill(primary_of(lab))[:2] == ("ok", figures["restore_point"])
    status = pgcluster_cli(lab, "status")
    assert "last proven restore: " in status.stdout and ", passed (" in status.stdout, \
        status.stdout[-2000:]


def newest_drill(primary: LabNode) -> tuple[str, str, str]:
    """The newest `drill` row of the registry: status, label, detail."""
    with connect(primary, dbname=ALL["backup_registry_database"]) as conn:
        row = conn.execute("select status, label, detail from pgcluster.backups where kind = "
                           "'drill' order by started_at desc, id desc limit 1").fetchone()
    assert row, "no drill row"
    return row


def report_json(directory: Path) -> dict[str, Any]:
    """The restore drill writes no chart (no writer): its JSON and Markdown only."""
    assert (directory / "restore.md").is_file()
    return json.loads((directory / "restore.json").read_text())


def newest_full_path(primary: LabNode) -> str:
    with connect(primary, dbname=ALL["backup_registry_database"]) as conn:
        row = conn.execute("select path from pgcluster.backups where kind = 'full' and "
                           "status = 'ok' and removed_at is null "
                           "order by finished_at desc limit 1").fetchone()
    assert row, "no full backup"
    return f"{ALL['backup_root']}/{row[0]}"


# Empties one file inside a backup's base.tar.gz, as a backup that lost it would be.
EMPTY_IN_TAR = """set -e
cd "$1"
rm -rf /tmp/broken && mkdir /tmp/broken
tar -xzf base.tar.gz -C /tmp/broken
test -s "/tmp/broken/$2"
: > "/tmp/broken/$2"
tar -czf base.tar.gz.new -C /tmp/broken .
mv base.tar.gz.new base.tar.gz
rm -rf /tmp/broken
"""


def test_a_broken_backup_fails_the_restore_drill_with_the_table_and_rows(
        lab: Lab, tmp_path: Path) -> None:
    primary = primary_of(lab)
    with connect(primary) as conn:
        conn.execute("drop table if exists proyecto.drill_victim")
        conn.execute("create table proyecto.drill_victim (id int primary key, note text)")
        conn.execute("insert into proyecto.drill_victim "
                     "select g, 'row ' || g from generate_series(1, 20) g")
        relation = conn.execute("select pg_relation_filepath('proyecto.drill_victim')"
                                ).fetchone()[0]
        conn.execute("checkpoint")
    backup = pgcluster_cli(lab, "backup", "full")
    assert backup.returncode == 0, backup.stdout[-2000:] + backup.stderr[-2000:]
    broken = node_host(primary).run("bash -c %s _ %s %s", EMPTY_IN_TAR,
                                    newest_full_path(primary), relation)
    assert broken.rc == 0, broken.stderr
    try:
        result, _, _ = drill(lab, tmp_path, "restore")
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
        data = report_json(tmp_path)
        assert not data["passed"]
        differing = data["figures"]["differing_tables"]
        assert [d["table"] for d in differing] == ["proyecto.drill_victim"], differing
        victim = differing[0]
        assert victim["expected"]["rows"] == 20 and victim["actual"]["rows"] == 0, victim
        assert victim["rows"]["missing"] == 20, victim
        assert "proyecto.drill_victim" in result.stdout
        # Recorded as failed: status is unhealthy until a drill passes again.
        state, _, detail = newest_drill(primary)
        assert state == "failed" and "proyecto.drill_victim" in detail, detail
        status = pgcluster_cli(lab, "status")
        assert status.returncode == 1 and "the last restore drill (" in status.stdout, \
            status.stdout[-2000:]
    finally:
        # A good newest backup again for whatever comes next.
        with connect(primary) as conn:
            conn.execute("drop table if exists proyecto.drill_victim")
        again = pgcluster_cli(lab, "backup", "full")
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


def test_the_scheduled_restore_drill_is_a_cron_job_that_proves_the_backups(
        lab: Lab, tmp_path: Path) -> None:
    """`drill schedule` writes the cron job; its command, run as cron would run it, drills
    a restore that passes, and status is healthy again after the broken backup's drill."""
    cron = tmp_path / "cron.d"
    cron.mkdir()
    env = {**os.environ, "PGCLUSTER_CRON_DIR": str(cron), "PGCLUSTER_LAB": lab.source}
    scheduled = subprocess.run([sys.executable, "-m", "pgcluster", "drill", "schedule"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert scheduled.returncode == 0, scheduled.stderr
    job = next(cron.iterdir())
    line = job.read_text().splitlines()[-1]
    minute, hour, dom, month, dow, user, command = line.split(None, 6)
    assert (minute, hour, dom, month, dow, user) == ("30", "4", "*", "*", "6", "root")
    before = newest_drill(primary_of(lab))
    # As cron runs it: sh, cron's PATH, nothing of this environment but what it sets.
    ran = subprocess.run(["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=1200)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    after = newest_drill(primary_of(lab))
    assert after != before and after[0] == "ok", after
    status = pgcluster_cli(lab, "status")
    assert status.returncode == 0 and ", passed (" in status.stdout, status.stdout[-2000:]
    unscheduled = subprocess.run([sys.executable, "-m", "pgcluster", "drill", "unschedule"],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert unscheduled.returncode == 0 and not job.exists(), unscheduled.stdout


@pytest.mark.parametrize("args, message", [
    (("failover", "--duration", "3"), "--duration"),
    (("switchover", "--rate", "0"), "--rate"),
])
def test_bad_options_are_refused_before_anything_is_touched(
        lab: Lab, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    primary = primary_of(lab)
    result, _, _ = drill(lab, tmp_path, *args)
    assert result.returncode == 2 and message in result.stdout + result.stderr
    assert primary_of(lab) == primary and not list(tmp_path.iterdir())
