#!/usr/bin/env python3
"""Endpoints benchmark: what PgBouncer costs and saves, and the write outage an application
sees through the read-write endpoint, on both HA engines, in one run.

    .venv/bin/python bench/endpoints.py [--engine {manual,patroni,both}] [--seconds 20] [--keep]

On its own lab (bench/endpoints-lab.toml: pgepbench-*, 172.27.0.0/16, the proxy container
publishing 36500-36503), rebuilt from scratch for each engine and destroyed at the end
unless --keep. Every client runs on this machine as the application role over TLS
(sslmode=verify-full against 127.0.0.1, the address it dials), through HAProxy:

- throughput: pgbench's select-only script (-S), 8 clients and 2 threads, persistent
  connections, for --seconds, through the pooled read-write endpoint (HAProxy, then
  PgBouncer, then the server's Unix socket) and through the direct one (HAProxy, then
  PostgreSQL): the ratio pooled / direct (target >= 0.9);
- connection rate: the same with -C, a new connection for every transaction (TLS and
  scram-sha-256 each time; PgBouncer keeps its server connections): pooled / direct
  (target >= 3);
- write outage through the read-write endpoint, a writer committing a numbered row every
  10 ms and reconnecting on error: a switchover (`pgcluster switchover --to` the standby),
  then the primary lost (manual: its container stopped and `pgcluster failover`; Patroni:
  its container killed): the time from the fault to the first write acknowledged by the new
  primary, the longest write gap, and acknowledged rows missing afterwards (asynchronous
  replication: a killed primary may take the last ones with it).

Prints the figures and saves them to bench/results/endpoints.json (measured in the same run,
so the ratios compare like with like).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.common import Bench, save  # noqa: E402
from pgcluster.control import secrets  # noqa: E402
from pgcluster.control.writer import TABLE, Writer, conninfo  # noqa: E402
from pgcluster.lab.definition import Lab, load_lab  # noqa: E402

LAB_FILE = REPO / "bench" / "endpoints-lab.toml"
BENCH = Bench(str(LAB_FILE))
RW, RW_DIRECT = 5000, 5002
APP = ("app", secrets.LAB_DEFAULTS["app_password"])
ADMIN = ("admin", secrets.LAB_DEFAULTS["admin_password"])
CA = REPO / "secrets" / "docker" / "tls" / "ca.crt"
DATABASE = "bench"


def dsn(lab: Lab, endpoint: int, database: str = "proyecto_db") -> str:
    # PgBouncer 1.18 offers SCRAM without channel binding; the direct port has it.
    binding = "prefer" if endpoint == RW else "require"
    return (f"host={lab.bind_address} port={lab.published(endpoint)} dbname={database} "
            f"user={APP[0]} password={APP[1]} sslmode=verify-full sslrootcert={CA} "
            f"channel_binding={binding} connect_timeout=3")


def admin(lab: Lab) -> psycopg.Connection:
    """The superuser on whichever node is primary (its own ports: PgBouncer refuses it)."""
    return psycopg.connect(conninfo([n.published_port for n in lab.nodes], *ADMIN,
                                    sslrootcert=CA), autocommit=True)


def build(engine: str) -> None:
    BENCH.destroy()
    BENCH.pyinfra("@local", "deploys/lab.py")
    BENCH.pyinfra("inventory/docker.py", "deploys/cluster.py", "--data", f"ha_engine={engine}")


def pgbench(lab: Lab, endpoint: int, seconds: int, new_connections: bool) -> float:
    """Transactions per second, as pgbench reports them (without the initial connections)."""
    args = ["pgbench", "-n", "-S", "-c", "8", "-j", "2", "-T", str(seconds),
            *(["-C"] if new_connections else []), dsn(lab, endpoint, DATABASE)]
    out = BENCH.run(*args).stdout
    match = re.search(r"tps = ([0-9.]+)", out)
    if not match:
        sys.exit(f"pgbench printed no tps:\n{out[-2000:]}")
    return float(match.group(1))


def pooling(lab: Lab, seconds: int) -> dict[str, Any]:
    with admin(lab) as conn:
        conn.execute(f"create database {DATABASE} owner {APP[0]}")
    BENCH.run("pgbench", "-i", "-s", "10", "-q", dsn(lab, RW_DIRECT, DATABASE))
    # A database made after the deploy: the next deploy gives it PgBouncer's lookup.
    BENCH.pyinfra("inventory/docker.py", "deploys/cluster.py")
    figures: dict[str, Any] = {}
    for mode, new in (("persistent", False), ("new_connection_per_transaction", True)):
        pooled, direct = (pgbench(lab, e, seconds, new) for e in (RW, RW_DIRECT))
        figures[mode] = {"pooled_tps": pooled, "direct_tps": direct,
                         "ratio": round(pooled / direct, 2)}
    return figures


def outage(client: Writer, fault_at: float) -> dict[str, Any]:
    """The writer's longest pause around the fault; its end is the new primary's first
    write (an ack just after the fault can still be the old primary's)."""
    pause = client.outage_after(fault_at)
    if pause is None:
        return {"to_first_write_s": None, "longest_write_gap_s": None}
    return {"to_first_write_s": round(max(pause[1] - fault_at, 0), 2),
            "longest_write_gap_s": round(pause[1] - pause[0], 2)}


def under_writer(lab: Lab, fault: list[list[str]], settle: float = 3) -> dict[str, Any]:
    """Run the fault's commands under a writer through the read-write endpoint."""
    Writer(conninfo([n.published_port for n in lab.nodes], *ADMIN, sslrootcert=CA)).prepare()
    client = Writer(dsn(lab, RW)).start(prepare=False)
    time.sleep(2)
    fault_at = time.time()
    try:
        for command in fault:
            BENCH.run(*command)
        deadline = time.time() + 120
        while client.first_ack_after(time.time() - 0.2) is None and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(settle)
    finally:
        client.stop()
    figures = outage(client, fault_at)
    figures["committed_rows"] = len(client.acknowledged)
    with psycopg.connect(dsn(lab, RW), autocommit=True) as conn:
        present = {row[0] for row in conn.execute(f"select id from {TABLE}")}
    figures["committed_rows_lost"] = sum(1 for i, _, _ in client.acknowledged
                                         if i not in present)
    return figures


def wait_healthy(lab: Lab) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        if BENCH.pgcluster("status", check=False).returncode == 0:
            return
        time.sleep(2)
    sys.exit("the cluster did not get healthy again")


def faults(lab: Lab, engine: str) -> dict[str, Any]:
    standby = lab.node("standby")
    python = [sys.executable, "-m", "pgcluster"]
    figures = {"switchover": under_writer(
        lab, [[*python, "switchover", "--to", standby.name, "--yes"]])}
    wait_healthy(lab)
    # The primary is the standby now: lose it.
    if engine == "manual":
        lost = [["docker", "stop", standby.name], [*python, "failover", "--yes"]]
    else:
        lost = [["docker", "kill", standby.name]]
    figures["primary_lost"] = under_writer(lab, lost)
    figures["primary_lost"]["fault"] = " then ".join(" ".join(c[-3:]) for c in lost)
    BENCH.run("docker", "start", standby.name)
    if engine == "manual":
        BENCH.pgcluster("rejoin", standby.name, "--yes")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("manual", "patroni", "both"), default="both")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    engines = ["manual", "patroni"] if args.engine == "both" else [args.engine]
    lab = load_lab(str(LAB_FILE))
    results: dict[str, Any] = {"engines": engines, "pgbench_seconds": args.seconds}
    try:
        for engine in engines:
            build(engine)
            entry: dict[str, Any] = {}
            if engine == engines[0]:  # PgBouncer's cost does not depend on the engine
                results["pooling"] = pooling(lab, args.seconds)
            entry.update(faults(lab, engine))
            results[engine] = entry
    finally:
        if not args.keep:
            BENCH.destroy()
    saved = save(REPO / "bench" / "results" / "endpoints.json", "endpoints", results)
    pooled = saved["pooling"]
    print(f"\npgbench -S through PgBouncer / direct: {pooled['persistent']['ratio']}x "
          "(target >= 0.9); with a new connection per transaction: "
          f"{pooled['new_connection_per_transaction']['ratio']}x (target >= 3)")
    for engine in engines:
        for fault, f in saved[engine].items():
            print(f"{engine:<8} {fault:<13} first write after {f['to_first_write_s']} s, "
                  f"longest gap {f['longest_write_gap_s']} s, "
                  f"{f['committed_rows_lost']} of {f['committed_rows']} lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
