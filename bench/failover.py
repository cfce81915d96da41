#!/usr/bin/env python3
"""Failover benchmark: a continuous writer, the primary killed, `pgcluster failover`.

    .venv/bin/python bench/failover.py [--keep]

On its own lab (lab/bench.toml, rebuilt from scratch and destroyed afterwards) it measures,
with a writer committing a numbered row every 10 ms through a multi-host connection string
(target_session_attrs=read-write, so it finds the primary by itself):

- failover (asynchronous replication, primary container killed): time from the failover
  command to the first write accepted on the new primary (goal <= 5 s), to the read-only
  replica streaming from it (goal <= 15 s), committed rows lost, and the writer's gap
  between the last row committed on the old timeline and the first on the new;
- rejoin of the old primary (pg_rewind): duration;
- switchover under the writer: duration, write gap, committed rows lost (goal 0);
- failover with synchronous replication on (synchronous_standbys = the standby and the
  primary): committed rows lost (goal 0).

Prints the figures and saves them to bench/results/failover.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.common import Bench, save  # noqa: E402
from pgcluster.control import secrets  # noqa: E402
from pgcluster.control.writer import Writer, conninfo  # noqa: E402
from pgcluster.lab.definition import Lab, load_lab  # noqa: E402
from pgcluster.model.conninfo import tls_options  # noqa: E402

BENCH = Bench("bench")
run, pgcluster = BENCH.run, BENCH.pgcluster
RESULTS = REPO / "bench" / "results" / "failover.json"
ADMIN = ("admin", "admin123")
LAB_CA = secrets.inventory_dir("tls", inventory="docker") / "ca.crt"  # made by the deploy


def pyinfra(*args: str) -> subprocess.CompletedProcess:
    return BENCH.pyinfra(*args)[1]


def follows(lab: Lab, role: str, primary_role: str) -> bool:
    try:
        with psycopg.connect(host="127.0.0.1", port=lab.node(role).published_port,
                             user=ADMIN[0], password=ADMIN[1], dbname="postgres",
                             connect_timeout=2, autocommit=True,
                             **tls_options(LAB_CA)) as conn:
            row = conn.execute("select status, sender_host from pg_stat_wal_receiver").fetchone()
    except psycopg.Error:
        return False
    return bool(row) and row[0] == "streaming" and row[1] == lab.node(primary_role).address


def wait_until(check, timeout: float = 120) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.1)
    return None


def gap(writer: Writer, after: float) -> float | None:
    """The longest time without an acknowledged commit, from just before `after` on: how
    long writes were unavailable (the writer tries every 10 ms)."""
    times = [at for _, at, _ in writer.acknowledged if at >= after - 1]
    return round(max(b - a for a, b in pairwise(times)), 3) if len(times) > 1 else None


def failover_run(lab: Lab, label: str) -> dict:
    old, new = lab.node("primary"), lab.node("standby")
    writer = Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                             sslrootcert=LAB_CA)).start()
    time.sleep(3)
    killed = time.time()
    run("docker", "kill", old.name)
    started = time.time()
    result = pgcluster("failover", "--yes")
    finished = time.time()
    readonly_at = wait_until(lambda: follows(lab, "readonly", "standby"))
    time.sleep(2)
    writer.stop()
    first_write = writer.first_ack_after(started, str(new.published_port))
    figures = {
        "replication": label,
        "failover_command_s": round(finished - started, 2),
        "to_first_write_on_new_primary_s": round(first_write - started, 2) if first_write else None,
        "to_readonly_streaming_from_new_primary_s":
            round(readonly_at - started, 2) if readonly_at else None,
        "committed_rows": len(writer.acknowledged),
        "committed_rows_lost": len(writer.missing()),
        "write_gap_s": gap(writer, killed),
        "writer_errors": writer.failures,
        "command_exit": result.returncode,
    }
    run("docker", "start", old.name)
    started = time.time()
    pgcluster("rejoin", old.name, "--yes")
    figures["rejoin_s"] = round(time.time() - started, 2)
    return figures


def switchover_run(lab: Lab, to_role: str) -> dict:
    target = lab.node(to_role)
    writer = Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                             sslrootcert=LAB_CA)).start()
    time.sleep(3)
    started = time.time()
    pgcluster("switchover", "--to", target.name, "--yes")
    finished = time.time()
    time.sleep(2)
    writer.stop()
    return {"to": target.name, "switchover_command_s": round(finished - started, 2),
            "write_gap_s": gap(writer, started), "committed_rows": len(writer.acknowledged),
            "committed_rows_lost": len(writer.missing())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()
    lab = load_lab("bench")
    pgcluster("destroy", "--yes", check=False)
    pyinfra("@local", "deploys/lab.py")
    pyinfra("inventory/docker.py", "deploys/cluster.py")

    results: dict = {}
    results["failover_async"] = failover_run(lab, "asynchronous")
    # Back to the inventory's layout, then a planned switchover away and back.
    results["switchover"] = [switchover_run(lab, "primary"), switchover_run(lab, "standby")]
    switchover_run(lab, "primary")
    sync = json.dumps([lab.node("standby").name, lab.node("primary").name])
    pyinfra("inventory/docker.py", "deploys/cluster.py", "--data", f"synchronous_standbys={sync}")
    results["failover_sync"] = failover_run(lab, "synchronous (FIRST 1 standby)")
    if not args.keep:
        pgcluster("destroy", "--yes", check=False)

    goals = {"to_first_write_on_new_primary_s": 5, "to_readonly_streaming_from_new_primary_s": 15}
    results["goals"] = goals
    save(RESULTS, "failover", results)
    print(f"\nsaved to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
