#!/usr/bin/env python3
"""Backup benchmark: full backup throughput against `tar | gzip -6` of the same data
directory in the same run, and the time to restore a ~1 GB pgbench database to a point in
time.

    .venv/bin/python bench/backup.py [--scale 70] [--runs 3] [--keep]

Uses its own one-node lab (bench/backup-lab.toml: pgbkbench-*, 172.25.0.0/16), destroyed
before and after, so no other lab is touched. Steps: build the lab and deploy; pgbench -i
-s SCALE (about 15 MB per scale unit); then, alternating so both see the same page cache,
RUNS x `tar -cf - DATADIR | gzip -6` (the same files pg_basebackup reads: without
pg_wal's contents) and RUNS x backup-full (the script cron runs: fast
checkpoint, pg_basebackup tar + gzip:6 + manifest + streamed WAL, registry); throughput is
the data directory's size over the elapsed time, measured inside the node. Then writes
(pgbench), a marker row, the noted time, more writes and a second marker; restore to the
noted time onto the lab's scratch node with `pgcluster restore --time` and check that
exactly the first marker is there. Targets (issue 3): backup throughput >= 0.7 x tar|gzip.
Prints the figures and saves them to bench/results/backup.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import Bench, save  # noqa: E402
from pgcluster.lab.definition import load_lab  # noqa: E402

LAB_FILE = REPO / "bench" / "backup-lab.toml"
BENCH = Bench(str(LAB_FILE))
run = BENCH.run
RESULTS = REPO / "bench" / "results" / "backup.json"
DATA_DIR = "/var/lib/postgresql/15/main"


node_sh = BENCH.node_sh


def psql(container: str, sql: str, db: str = "bench") -> str:
    return node_sh(container, f"cd / && psql -XAtq -d {db} -c \"{sql}\"", user="postgres")


def elapsed_inside(container: str, script: str, user: str = "root") -> float:
    """Seconds a shell script takes, measured inside the node (no docker exec overhead);
    the script must succeed."""
    out = node_sh(container, "s=$(date +%s%N); { " + script + "; } >/dev/null; rc=$?; "
                  "e=$(date +%s%N); echo $(( (e - s) / 1000000 )) $rc", user=user)
    millis, rc = out.splitlines()[-1].split()
    if rc != "0":
        sys.exit(f"failed (exit {rc}) in {container}: {script}")
    return int(millis) / 1000


subnet_free = BENCH.subnet_free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 ~ 1 GB)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each method (default 3)")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()
    lab = load_lab(str(LAB_FILE))
    if not subnet_free(lab.subnet, lab.network):
        sys.exit(f"another Docker network uses {lab.subnet}: edit {LAB_FILE}")
    primary = lab.node("primary").name
    figures: dict = {"scale": args.scale}

    BENCH.destroy()
    try:
        build, _ = BENCH.pyinfra("@local", "deploys/lab.py")
        deploy, _ = BENCH.pyinfra("inventory/docker.py", "deploys/cluster.py")
        figures["lab_build_s"] = round(build + deploy, 1)
        node_sh(primary, "cd / && createdb bench", user="postgres")
        figures["pgbench_init_s"] = round(elapsed_inside(
            primary, f"cd / && pgbench -i -q -s {args.scale} bench 2>&1", user="postgres"), 1)
        psql(primary, "checkpoint")
        figures["pgbench_accounts_rows"] = int(psql(primary,
                                                    "select count(*) from pgbench_accounts"))
        figures["database_bytes"] = int(psql(primary, "select pg_database_size('bench')"))
        # The file set pg_basebackup copies: the data directory without pg_wal's contents
        # (the backup streams only the WAL it needs). tar reads exactly the same files.
        wal_bytes = int(node_sh(primary, f"du -sb {DATA_DIR}/pg_wal | cut -f1"))
        data_bytes = int(node_sh(primary, f"du -sb {DATA_DIR} | cut -f1")) - wal_bytes
        figures["data_dir_bytes_without_pg_wal"] = data_bytes
        figures["pg_wal_bytes"] = wal_bytes

        tar_s, backup_s, tar_sizes, backup_sizes = [], [], [], []
        for _ in range(args.runs):
            tar_s.append(elapsed_inside(
                primary, f"cd {DATA_DIR} && (tar --exclude='./pg_wal/*' -cf - . 2>/dev/null "
                "|| true) | gzip -6 > /backups/bench-tar.tar.gz"))
            tar_sizes.append(int(node_sh(primary, "stat -c %s /backups/bench-tar.tar.gz")))
            node_sh(primary, "rm -f /backups/bench-tar.tar.gz")
            backup_s.append(elapsed_inside(
                primary, "/usr/local/lib/pgcluster/backup-full 2>/dev/null"))
            newest = node_sh(primary, "ls -1 /backups/full | grep -E '^[0-9]{8}T' | tail -n 1")
            backup_sizes.append(int(node_sh(primary, f"du -sb /backups/full/{newest} | cut -f1")))
        mb = data_bytes / 1e6
        tar_rate = mb / statistics.median(tar_s)
        backup_rate = mb / statistics.median(backup_s)
        figures.update({
            "tar_gzip6_s": [round(s, 1) for s in tar_s],
            "tar_gzip6_MBps": round(tar_rate, 1),
            "tar_gzip6_bytes": tar_sizes[-1],
            "backup_full_s": [round(s, 1) for s in backup_s],
            "backup_full_MBps": round(backup_rate, 1),
            "backup_full_bytes": backup_sizes[-1],
            "throughput_ratio": round(backup_rate / tar_rate, 2),
            "throughput_ratio_goal": 0.7,
        })

        # Writes after the backup, a noted time between two markers, then restore to it.
        psql(primary, "create table marker (id int primary key, at timestamptz "
             "default clock_timestamp())")
        node_sh(primary, "cd / && pgbench -n -c 2 -T 20 bench >/dev/null 2>&1", user="postgres")
        psql(primary, "insert into marker (id) values (1)")
        noted = psql(primary, "select clock_timestamp()")
        time.sleep(1.2)
        psql(primary, "insert into marker (id) values (2)")
        node_sh(primary, "cd / && pgbench -n -c 2 -T 10 bench >/dev/null 2>&1", user="postgres")
        segment = psql(primary, "select pg_walfile_name(pg_switch_wal())")
        node_sh(primary, f"for i in $(seq 60); do [ -f /backups/wal_archive/{segment} ] && "
                "exit 0; sleep 1; done; exit 1")
        wal_after = psql(primary, "select pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(),"
                         " (select stop_lsn from pgcluster.backups where kind = 'full' and "
                         "status = 'ok' order by id desc limit 1)))", db="postgres")
        start = time.monotonic()
        restore = BENCH.pgcluster("restore", "--time", noted)
        cli_wall = time.monotonic() - start
        report = dict(line.partition("=")[::2] for line in node_sh(
            lab.scratch.name, "cat /var/log/pgcluster/last-restore").splitlines())
        markers = node_sh(lab.scratch.name, "cd / && psql -XAtq -d bench -c "
                          "'select array_agg(id order by id) from marker'", user="postgres")
        figures.update({
            "restore_target_time": noted,
            "restore_wal_replayed_after_backup": wal_after,
            "restore_unpack_s": int(report["unpack_seconds"]),
            "restore_recovery_s": int(report["recovery_seconds"]),
            "restore_on_node_s": int(report["total_seconds"]),
            "restore_cli_wall_s_incl_scratch_creation_and_install": round(cli_wall, 1),
            "restore_reached": f"{report['reached_lsn']} on timeline {report['reached_timeline']}",
            "restore_postgresql_says": report["postgresql_says"],
            "restore_rows_correct": markers == "{1}",
        })
        if "reached:" not in restore.stdout or markers != "{1}":
            sys.exit(f"restore to {noted} did not give exactly marker 1: {markers}")
    finally:
        if not args.keep:
            BENCH.destroy()

    save(RESULTS, "backup", figures)
    ok = figures["throughput_ratio"] >= 0.7 and figures["restore_rows_correct"]
    print(f"\n{'within' if ok else 'OUTSIDE'} the target (backup >= 0.7 x tar|gzip -6); "
          f"saved to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
