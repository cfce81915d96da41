#!/usr/bin/env python3
"""pgBackRest benchmark: pgBackRest's backups against the seed engine's, on the same data.

Full backup time and size with the seed engine (pg_basebackup, gzip 6) and with pgBackRest
(lz4 and zst, process-max = the node's cores) in the same run, the size of an incremental
after 1% of the rows change, and the time to restore.

    .venv/bin/python bench/pgbackrest.py [--scale 30] [--runs 2] [--keep]

Uses its own lab (bench/pgbackrest-lab.toml: pgbrbench-*, 172.18.0.0/16; one primary and
the object store), destroyed before and after, so no other lab is touched. Steps: build the
lab and deploy with the seed engine; pgbench -i -s SCALE (about 15 MB per scale unit); RUNS
x backup-full (fast checkpoint, pg_basebackup tar + gzip:6 + manifest + streamed WAL), its
size the du of its full/<stamp>; switch the cluster as a user would (deploy with --data
backup_engine=pgbackrest); then, for lz4 and zst, RUNS x `pgbackrest --repo=1 --type=full`
(repo1 only: disk against disk, as the seed engine's), its size the backup's repository
delta in `pgbackrest info`. Throughput is the data directory's size without pg_wal's
contents over the elapsed time measured inside the node, for every engine. Then 1% of
pgbench_accounts' rows change (every hundredth aid) and `pgbackrest --repo=1 --type=incr`
(lz4) is sized the same way; restore repo1/latest (that incremental, its full and the WAL)
onto the lab's scratch node with `pgcluster restore` and check the rows and the balances.
Targets: pgBackRest full >= 2 x the seed engine's throughput; an incremental <= 10% of a
full (lz4). Prints the figures and saves them to bench/results/pgbackrest.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import Bench, save  # noqa: E402
from pgcluster.lab.definition import load_lab  # noqa: E402

LAB_FILE = REPO / "bench" / "pgbackrest-lab.toml"
BENCH = Bench(str(LAB_FILE))
run = BENCH.run
RESULTS = REPO / "bench" / "results" / "pgbackrest.json"
DATA_DIR = "/var/lib/postgresql/15/main"
STANZA = "main"
COMPRESS_TYPES = ("lz4", "zst")
THROUGHPUT_GOAL = 2.0  # pgBackRest full / seed engine full, MB/s
INCR_GOAL = 0.10  # incremental after 1% of the rows / full (lz4), repository bytes


node_sh = BENCH.node_sh


def psql(container: str, sql: str, db: str = "bench") -> str:
    return node_sh(container, f"cd / && psql -XAtq -d {db} -c \"{sql}\"", user="postgres")


def elapsed_inside(container: str, script: str, user: str = "root") -> float:
    """Seconds a shell script takes, measured inside the node (no docker exec overhead);
    the script must succeed (its last error lines are shown when it does not)."""
    err = f"/tmp/pgbrbench-{user}.err"  # one per user: /tmp is sticky (protected_regular)
    out = node_sh(container, "s=$(date +%s%N); { " + script + f"; }} >/dev/null 2>{err}; "
                  "rc=$?; e=$(date +%s%N); echo $(( (e - s) / 1000000 )) $rc", user=user)
    millis, rc = out.splitlines()[-1].split()
    if rc != "0":
        why = node_sh(container, f"tail -n 5 {err}", user=user)
        sys.exit(f"failed (exit {rc}) in {container}: {script}\n{why}")
    return int(millis) / 1000


subnet_free = BENCH.subnet_free


def pgbackrest(*args: str) -> str:
    """The command line of pgbackrest ARGS on repo1, as postgres runs it (cwd /)."""
    return f"cd / && pgbackrest --stanza={STANZA} --repo=1 {' '.join(args)}"


def newest_backup(container: str) -> dict[str, Any]:
    """repo1's newest backup as `pgbackrest info` describes it."""
    stanzas = json.loads(node_sh(container, pgbackrest("--output=json", "info"),
                                 user="postgres"))
    backups = stanzas[0].get("backup", []) if stanzas else []
    if not backups:
        sys.exit(f"pgbackrest reports no backup in repo1 on {container}")
    return backups[-1]


def timed_backup(container: str, kind: str, compress: str, cores: int) -> tuple[float, dict]:
    seconds = elapsed_inside(container, pgbackrest(
        f"--type={kind}", f"--compress-type={compress}", f"--process-max={cores}", "backup"),
        user="postgres")
    backup = newest_backup(container)
    if backup["type"] != kind:
        sys.exit(f"the newest backup in repo1 is {backup['label']} ({backup['type']}), "
                 f"not the {kind} just taken")
    return seconds, backup


def target_line(ok: bool, label: str, value: float, goal: str) -> str:
    return f"  {label:<44} {value:>8.2f}  {goal:<8} {'pass' if ok else 'FAIL'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale (30 ~ 450 MB)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each method (default 2)")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()
    lab = load_lab(str(LAB_FILE))
    if not subnet_free(lab.subnet, lab.network):
        sys.exit(f"another Docker network uses {lab.subnet}: edit {LAB_FILE}")
    primary, scratch = lab.node("primary").name, lab.scratch.name
    figures: dict[str, Any] = {"scale": args.scale, "runs": args.runs}

    BENCH.destroy()
    try:
        build, _ = BENCH.pyinfra("@local", "deploys/lab.py")
        deploy, _ = BENCH.pyinfra("inventory/docker.py", "deploys/cluster.py")
        figures["lab_build_s"] = round(build + deploy, 1)
        node_sh(primary, "cd / && createdb bench", user="postgres")
        figures["pgbench_init_s"] = round(elapsed_inside(
            primary, f"cd / && pgbench -i -q -s {args.scale} bench 2>&1", user="postgres"), 1)
        psql(primary, "checkpoint")
        rows = int(psql(primary, "select count(*) from pgbench_accounts"))
        figures["pgbench_accounts_rows"] = rows
        figures["database_bytes"] = int(psql(primary, "select pg_database_size('bench')"))
        # What both engines copy: the data directory without pg_wal's contents (bench/backup.py).
        wal_bytes = int(node_sh(primary, f"du -sb {DATA_DIR}/pg_wal | cut -f1"))
        data_bytes = int(node_sh(primary, f"du -sb {DATA_DIR} | cut -f1")) - wal_bytes
        figures["data_dir_bytes_without_pg_wal"] = data_bytes
        mb = data_bytes / 1e6

        seed_s, seed_sizes = [], []
        for _ in range(args.runs):
            seed_s.append(elapsed_inside(primary, "/usr/local/lib/pgcluster/backup-full"))
            newest = node_sh(primary, "ls -1 /backups/full | grep -E '^[0-9]{8}T' | tail -n 1")
            seed_sizes.append(int(node_sh(primary, f"du -sb /backups/full/{newest} | cut -f1")))
        seed_rate = mb / statistics.median(seed_s)
        figures.update({"seed_gzip6_s": [round(s, 1) for s in seed_s],
                        "seed_gzip6_MBps": round(seed_rate, 1),
                        "seed_gzip6_bytes": seed_sizes[-1]})

        switch, _ = BENCH.pyinfra("inventory/docker.py", "deploys/cluster.py", "--data",
                                  "backup_engine=pgbackrest")
        figures["switch_deploy_s"] = round(switch, 1)
        cores = int(node_sh(primary, "nproc"))
        figures["pgbackrest_process_max"] = cores
        full_bytes: dict[str, int] = {}
        for compress in COMPRESS_TYPES:
            times, sizes = [], []
            for _ in range(args.runs):
                seconds, backup = timed_backup(primary, "full", compress, cores)
                times.append(seconds)
                sizes.append(int(backup["info"]["repository"]["delta"]))
            rate = mb / statistics.median(times)
            full_bytes[compress] = sizes[-1]
            figures.update({f"pgbackrest_{compress}_s": [round(s, 1) for s in times],
                            f"pgbackrest_{compress}_MBps": round(rate, 1),
                            f"pgbackrest_{compress}_bytes": sizes[-1],
                            f"pgbackrest_{compress}_throughput_ratio": round(rate / seed_rate, 2),
                            "pgbackrest_db_bytes_it_saw": int(backup["info"]["size"])})

        figures["rows_changed"] = int(psql(primary, "with u as (update pgbench_accounts set "
                                           "abalance = abalance + 1 where aid % 100 = 0 "
                                           "returning 1) select count(*) from u"))
        incr_s, incr = timed_backup(primary, "incr", "lz4", cores)
        incr_bytes = int(incr["info"]["repository"]["delta"])
        figures.update({"pgbackrest_incr_s": round(incr_s, 1),
                        "pgbackrest_incr_bytes": incr_bytes,
                        "pgbackrest_incr_label": incr["label"],
                        "incr_to_full_lz4": round(incr_bytes / full_bytes["lz4"], 3)})

        balances = psql(primary, "select count(*), sum(abalance) from pgbench_accounts")
        start = time.monotonic()
        BENCH.pgcluster("restore", "--scratch", "--backup", "repo1/latest", "--force-node",
                        scratch)
        cli_wall = time.monotonic() - start
        report = dict(line.partition("=")[::2] for line in node_sh(
            scratch, "cat /var/log/pgcluster/last-restore").splitlines())
        restored = psql(scratch, "select count(*), sum(abalance) from pgbench_accounts")
        figures.update({
            "restore_backup": report["backup"],
            "restore_unpack_s": int(report["unpack_seconds"]),
            "restore_recovery_s": int(report["recovery_seconds"]),
            "restore_on_node_s": int(report["total_seconds"]),
            "restore_cli_wall_s_incl_scratch_creation_and_install": round(cli_wall, 1),
            "restore_rows_correct": restored == balances,
        })
        if restored != balances:
            sys.exit(f"restored rows|balances {restored} differ from the primary's {balances}")
    finally:
        if not args.keep:
            BENCH.destroy()

    figures.update({"throughput_ratio_goal": THROUGHPUT_GOAL, "incr_to_full_goal": INCR_GOAL})
    save(RESULTS, "pgbackrest", figures)
    checks = [(figures[f"pgbackrest_{c}_throughput_ratio"] >= THROUGHPUT_GOAL,
               f"pgbackrest full {c} / seed gzip 6 throughput",
               figures[f"pgbackrest_{c}_throughput_ratio"], f">= {THROUGHPUT_GOAL:g}")
              for c in COMPRESS_TYPES]
    checks.append((figures["incr_to_full_lz4"] <= INCR_GOAL, "incremental (1% rows) / full lz4",
                   figures["incr_to_full_lz4"], f"<= {INCR_GOAL:g}"))
    print(f"\n  {'seed gzip 6':<44} {figures['seed_gzip6_MBps']:>8.1f}  MB/s  "
          f"{figures['seed_gzip6_bytes'] / 1e6:.0f} MB")
    for c in COMPRESS_TYPES:
        print(f"  {'pgbackrest full ' + c:<44} {figures[f'pgbackrest_{c}_MBps']:>8.1f}  MB/s  "
              f"{figures[f'pgbackrest_{c}_bytes'] / 1e6:.0f} MB")
    print(f"  {'pgbackrest incr lz4':<44} {figures['pgbackrest_incr_s']:>8.1f}  s     "
          f"{incr_bytes / 1e6:.0f} MB")
    print(f"  {'restore repo1/latest on the node':<44} {figures['restore_on_node_s']:>8}  s\n")
    for check in checks:
        print(target_line(*check))
    ok = all(passed for passed, *_ in checks) and figures["restore_rows_correct"]
    print(f"\n{'within' if ok else 'OUTSIDE'} the targets; saved to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
