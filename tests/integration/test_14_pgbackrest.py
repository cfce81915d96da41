"""pgBackRest as the backup engine, on a lab of its own (lab/pgbackrest.toml) with a real
object store (SeaweedFS's S3 over HTTPS, pgbr-objectstore): a cluster built with the seed
engine and switched as a user would switch it; full and incremental backups to repo1 (the
shared volume) and repo2 (the object store, encrypted); `backup list` from pgBackRest's own
info; a point-in-time restore from the object store alone after the shared volume's
content is gone; refusals (a different segment under an archived name, a wrong
passphrase); the object store down and back with nothing lost; the old engine's backups
still listed and restorable after the switch; Patroni taking the cluster over with
pgBackRest still archiving and backing up; last, a restore drill that proves pgBackRest's
newest backup under Patroni.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgcluster.lab.definition import Lab
from tests.conftest import changed, run_pyinfra, totals
from tests.integration.conftest import (
    built_lab,
    connect,
    node_host,
    pgcluster_cli,
    query,
    wait_for,
)
from tests.integration.test_13_drills import newest_drill, report_json

LAB = "pgbackrest"
TABLE = "public.pgbr_check"
# Rows written before the seed engine's full backup, the last one it takes before the switch.
BEFORE_SWITCH = "public.pgbr_before_switch"


def cli(lab: Lab, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return pgcluster_cli(lab, *args, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def backrest(lab: Lab, *args: str, node: str = "primary",
             env: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """pgbackrest ARGS as postgres on a node (--stanza=main); env: NAME=value options."""
    return subprocess.run(["docker", "exec", "-u", "postgres",
                           *(f for e in env for f in ("-e", e)), lab.node(node).name,
                           "pgbackrest", "--stanza=main", *args], capture_output=True,
                          text=True, errors="replace", check=False, timeout=600)


def info(lab: Lab) -> dict[str, Any]:
    out = backrest(lab, "--output=json", "info")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def registry(lab: Lab, where: str = "true") -> list[tuple]:
    with connect(lab.node("primary"), dbname="postgres") as conn:
        return conn.execute("select kind, label, path, status, size_bytes, detail from "
                            f"pgcluster.backups where {where} order by id").fetchall()


def rows(node) -> list[int]:
    with connect(node) as conn:
        return [r[0] for r in conn.execute(f"select id from {TABLE} order by id")]


def archived_everywhere(lab: Lab) -> str:
    """Close the current segment and wait until both repositories have it."""
    with connect(lab.node("primary")) as conn:
        segment = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()[0]

    def in_both() -> bool:
        repos = info(lab)["archive"]
        return len(repos) == 2 and all((a.get("max") or "") >= segment for a in repos)

    wait_for(in_both, timeout=60, interval=1, what=f"{segment} in repo1 and repo2")
    return segment


@pytest.fixture(scope="module")
def pgbr_lab() -> Iterator[Lab]:
    """The lab built with the seed engine, one seed full backup taken, then switched."""
    for lab in built_lab(LAB):
        if "BACKUP_ENGINE=pgbackrest" in node_host(lab.node("primary")).check_output(
                "cat /etc/pgcluster/node.env"):  # a lab kept from an earlier run (REUSE)
            yield lab
            return
        with connect(lab.node("primary")) as conn:
            conn.execute(f"create table {BEFORE_SWITCH} as select generate_series(1, 500) id")
        seed = ok(cli(lab, "backup", "full"))
        assert "done: full/" in seed.stdout
        switch = run_pyinfra("inventory/docker.py", "deploys/cluster.py", "--data",
                             "backup_engine=pgbackrest", env={"PGCLUSTER_LAB": lab.source})
        assert switch.returncode == 0, switch.stderr[-4000:]
        yield lab


def test_the_switch_keeps_pgbackrest_and_a_rerun_changes_nothing(pgbr_lab: Lab) -> None:
    for node in pgbr_lab.nodes:
        env = node_host(node).check_output("cat /etc/pgcluster/node.env")
        assert "BACKUP_ENGINE=pgbackrest" in env and "PGBACKREST_REPOS='1 2'" in env, env
    assert query(pgbr_lab.node("primary"), "show archive_command") == [
        ("pgbackrest --stanza=main archive-push %p",)]
    stanza = info(pgbr_lab)
    assert [r["status"]["message"] for r in stanza["repo"]] in (
        ["ok", "ok"], ["no valid backups", "no valid backups"])
    assert {r["key"]: r["cipher"] for r in stanza["repo"]} == {1: "none", 2: "aes-256-cbc"}
    # No --data: the engine the nodes run stays, and nothing changes.
    again = run_pyinfra("inventory/docker.py", "deploys/cluster.py", json_output=True,
                        env={"PGCLUSTER_LAB": pgbr_lab.source})
    assert again.returncode == 0, again.stderr[-3000:]
    assert totals(again)["success"] == 0, changed(again)


@pytest.fixture(scope="module")
def backups(pgbr_lab: Lab) -> dict[str, Any]:
    """A full backup to both repositories, rows, a noted time, more rows, an incremental."""
    with connect(pgbr_lab.node("primary")) as conn:
        conn.execute(f"drop table if exists {TABLE}")
        conn.execute(f"create table {TABLE} (id int primary key, filler text)")
        conn.execute(f"insert into {TABLE} select i, repeat('x', 200) "
                     "from generate_series(1, 20000) i")
    full = ok(cli(pgbr_lab, "backup", "full"))
    # pgBackRest picks a backup for a time target by its stop time in whole seconds, and
    # only one that stopped before the target's second: a later second for the target.
    time.sleep(1.2)
    with connect(pgbr_lab.node("primary")) as conn:
        conn.execute(f"update {TABLE} set filler = repeat('y', 200) where id <= 200")  # 1%
        noted = conn.execute("select clock_timestamp()").fetchone()[0]
        time.sleep(1.2)
        conn.execute(f"insert into {TABLE} select i, 'after' from generate_series(20001, 20010) i")
    incr = ok(cli(pgbr_lab, "backup", "incr"))
    archived_everywhere(pgbr_lab)
    return {"full": full, "incr": incr, "time": noted.isoformat(),
            "until_time": list(range(1, 20001)), "all": list(range(1, 20011))}


def test_full_and_incremental_backups_reach_both_repositories(pgbr_lab: Lab,
                                                             backups: dict[str, Any]) -> None:
    assert "repo1/" in backups["full"].stdout and "repo2/" in backups["full"].stdout, \
        backups["full"].stdout
    kept = info(pgbr_lab)["backup"]
    by_repo = {(b["database"]["repo-key"], b["type"]) for b in kept}
    assert {(1, "full"), (2, "full"), (1, "incr"), (2, "incr")} <= by_repo, by_repo
    rows_ = registry(pgbr_lab, "path like 'repo%'")
    assert {(k, p.split("/")[0], s) for k, _, p, s, _, _ in rows_} >= {
        ("full", "repo1", "ok"), ("full", "repo2", "ok"), ("incr", "repo1", "ok"),
        ("incr", "repo2", "ok")}
    # An incremental after 1% of the rows changed is a small part of a full backup.
    sizes = {(b["database"]["repo-key"], b["type"]): b["info"]["repository"]["delta"]
             for b in kept}
    assert sizes[(1, "incr")] < 0.1 * sizes[(1, "full")], sizes


def test_backup_list_reads_pgbackrests_info_and_agrees_with_the_registry(
        pgbr_lab: Lab, backups: dict[str, Any]) -> None:
    listing = cli(pgbr_lab, "backup", "list", "--json")
    report = json.loads(listing.stdout)
    assert report["engine"] == "pgbackrest" and report["mismatches"] == [], report["mismatches"]
    assert listing.returncode == 0 and report["healthy"]
    labels = {(b["repo"], b["type"]) for b in report["pgbackrest"]["backups"]}
    assert {(1, "full"), (2, "full"), (1, "incr"), (2, "incr")} <= labels
    # The seed engine's backup from before the switch is still listed.
    assert len(report["disk"]["full"]) == 1
    text = cli(pgbr_lab, "backup", "list").stdout
    assert "pgBackRest stanza main: ok" in text and "Registry and disk agree." in text


def test_a_backup_from_before_the_switch_still_restores(pgbr_lab: Lab,
                                                       backups: dict[str, Any]) -> None:
    """The seed engine's backup restores by its own name, with the seed engine on the
    scratch node, even though the cluster now archives with pgBackRest."""
    seed = json.loads(cli(pgbr_lab, "backup", "list", "--json").stdout)["disk"]["full"]
    assert len(seed) == 1, seed
    name = f"full/{seed[0]['name']}"
    restored = ok(cli(pgbr_lab, "restore", "--scratch", "--backup", name, "--force-node",
                      pgbr_lab.scratch.name, timeout=1200))
    assert name in restored.stdout, restored.stdout[-2000:]
    env = node_host(pgbr_lab.scratch).check_output("cat /etc/pgcluster/node.env")
    assert "BACKUP_ENGINE=pg_basebackup" in env, env
    assert query(pgbr_lab.scratch, f"select count(*), max(id) from {BEFORE_SWITCH}") == [
        (500, 500)]
    # Made after the switch: not in the seed engine's archive, so not restored.
    assert query(pgbr_lab.scratch, f"select to_regclass('{TABLE}') is null") == [(True,)]


def test_a_different_segment_under_an_archived_name_is_refused(pgbr_lab: Lab,
                                                              backups: dict[str, Any]) -> None:
    primary = node_host(pgbr_lab.node("primary"))
    archived = query(pgbr_lab.node("primary"),
                     "select last_archived_wal from pg_stat_archiver")[0][0]
    # The archived segment itself, one byte changed past its header: valid, but different.
    forged_file = f"/tmp/forged/{archived}"
    primary.check_output("install -d -o postgres /tmp/forged")
    got = backrest(pgbr_lab, "archive-get", archived, forged_file)
    assert got.returncode == 0, got.stderr
    primary.check_output(f"printf '\\377' | dd of={forged_file} bs=1 seek=1000000 conv=notrunc "
                         "status=none")
    forged = backrest(pgbr_lab, "--no-archive-async", "archive-push", forged_file)
    assert forged.returncode != 0
    assert "already exists in the" in forged.stderr + forged.stdout, forged.stderr


def test_a_wrong_passphrase_fails_clearly(pgbr_lab: Lab, backups: dict[str, Any]) -> None:
    # pgBackRest refuses a passphrase on its command line; the environment overrides the file.
    wrong = backrest(pgbr_lab, "check", env=("PGBACKREST_REPO2_CIPHER_PASS=not-the-passphrase",))
    assert wrong.returncode != 0
    assert "unable to load info file" in wrong.stderr + wrong.stdout, wrong.stderr
    # The same command with the right passphrase (the configuration's) passes.
    assert backrest(pgbr_lab, "check").returncode == 0


def test_the_object_store_down_fails_loudly_keeps_the_wal_and_catches_up(
        pgbr_lab: Lab, backups: dict[str, Any]) -> None:
    store = node_host(pgbr_lab.objectstore)
    primary = pgbr_lab.node("primary")
    before = query(primary, "select failed_count from pg_stat_archiver")[0][0]
    store.check_output("systemctl stop seaweedfs-s3")
    try:
        marker = uuid.uuid4().hex
        with connect(primary) as conn:
            conn.execute(f"insert into {TABLE} values (30000, %s)", (marker,))
            waiting = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()[0]
        wait_for(lambda: query(primary, "select failed_count from pg_stat_archiver")[0][0]
                 > before, timeout=300, interval=2, what="archive-push to fail")
        listing = cli(pgbr_lab, "backup", "list")
        assert listing.returncode != 0 and "FAILING" in listing.stdout, listing.stdout[-2000:]
        status = cli(pgbr_lab, "status")
        assert status.returncode != 0 and "archiv" in status.stdout.lower(), status.stdout
        # PostgreSQL keeps the segment until it is archived.
        assert node_host(primary).file(
            f"/var/lib/postgresql/15/main/pg_wal/archive_status/{waiting}.ready").exists
    finally:
        store.check_output("systemctl start seaweedfs-s3")
    # After three failures in a row PostgreSQL's archiver sleeps up to a minute; a new
    # segment wakes it at once, as the next one a busy primary fills would.
    with connect(primary) as conn:
        conn.execute(f"insert into {TABLE} values (30001, 'wake')")
        conn.execute("select pg_switch_wal()")
    wait_for(lambda: query(primary, "select last_archived_wal >= %s from pg_stat_archiver",
                           (waiting,))[0][0], timeout=300, interval=2,
             what=f"{waiting} archived once the store is back")
    got = backrest(pgbr_lab, "--repo=2", "archive-get", waiting, f"/tmp/{waiting}")
    assert got.returncode == 0, got.stderr
    ok(cli(pgbr_lab, "backup", "list"))


def test_a_point_in_time_restore_from_the_object_store_alone(pgbr_lab: Lab,
                                                             backups: dict[str, Any]) -> None:
    primary = node_host(pgbr_lab.node("primary"))
    # The shared volume loses everything: repo1, and the seed engine's backups and archive.
    primary.check_output("find /backups -mindepth 1 -delete")
    restored = ok(cli(pgbr_lab, "restore", "--scratch", "--backup", "repo2/latest", "--time",
                      backups["time"], "--force-node", pgbr_lab.scratch.name, timeout=1200))
    assert rows(pgbr_lab.scratch) == backups["until_time"], restored.stdout[-2000:]
    assert "recovery stopping before commit" in restored.stdout
    # The next deploy puts repo1 back: its directory and the stanza in it, then backups.
    repair = run_pyinfra("inventory/docker.py", "deploys/cluster.py",
                         env={"PGCLUSTER_LAB": pgbr_lab.source})
    assert repair.returncode == 0, repair.stderr[-3000:]
    ok(cli(pgbr_lab, "backup", "full"))
    assert [r["status"]["message"] for r in info(pgbr_lab)["repo"]] == ["ok", "ok"]


def test_under_patroni_pgbackrest_archives_and_backs_up_and_a_rerun_changes_nothing(
        pgbr_lab: Lab, backups: dict[str, Any]) -> None:
    """HA=patroni and BACKUP=pgbackrest together: Patroni takes the cluster over in place,
    its PostgreSQL archives with pgBackRest (the same postgresql.conf), a backup lands in
    both repositories, and the deploy after it changes nothing."""
    env = {"PGCLUSTER_LAB": pgbr_lab.source}
    over = run_pyinfra("inventory/docker.py", "deploys/cluster.py", "--data",
                       "ha_engine=patroni", env=env)
    assert over.returncode == 0, over.stderr[-4000:]
    primary = pgbr_lab.node("primary")
    assert node_host(primary).service("patroni").is_running
    assert query(primary, "show archive_command") == [
        ("pgbackrest --stanza=main archive-push %p",)]
    with connect(primary) as conn:
        conn.execute(f"insert into {TABLE} values (40000, 'under patroni')")
    archived_everywhere(pgbr_lab)
    full = ok(cli(pgbr_lab, "backup", "full"))
    assert "repo1/" in full.stdout and "repo2/" in full.stdout, full.stdout
    assert [r["status"]["message"] for r in info(pgbr_lab)["repo"]] == ["ok", "ok"]
    again = run_pyinfra("inventory/docker.py", "deploys/cluster.py", json_output=True, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert totals(again)["success"] == 0, changed(again)


def test_the_restore_drill_proves_a_pgbackrest_backup_under_patroni(
        pgbr_lab: Lab, backups: dict[str, Any], tmp_path: Path) -> None:
    """`pgcluster drill restore` with both engines swapped in: pgBackRest restores its
    newest backup to the drill's restore point on the scratch node, and every table of
    every database is compared with the Patroni leader as of that point."""
    result = cli(pgbr_lab, "drill", "restore", "--yes", "--report", str(tmp_path),
                 timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    data = report_json(tmp_path)
    assert data["passed"], data["reasons"]
    figures = data["figures"]
    assert figures["differing_tables"] == [] and figures["tables_compared"] > 0, figures
    # The scratch node restored with pgBackRest (not the seed engine's archive), and holds
    # the rows written under Patroni just before the last full backup.
    env = node_host(pgbr_lab.scratch).check_output("cat /etc/pgcluster/node.env")
    assert "BACKUP_ENGINE=pgbackrest" in env, env
    assert query(pgbr_lab.scratch, f"select count(*) from {TABLE} where id = 40000") == [(1,)]
    assert newest_drill(pgbr_lab.node("primary"))[:2] == ("ok", figures["restore_point"])
