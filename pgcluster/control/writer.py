"""A continuous writer for failover drills, tests and benchmarks.

It commits one numbered row at a time through a multi-host connection string with
target_session_attrs=read-write, so it always finds the current primary by itself, and
remembers exactly which rows PostgreSQL acknowledged. After a failover or switchover,
`missing()` lists acknowledged rows that are not on the new primary: data loss.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import psycopg

from pgcluster.model.conninfo import tls_options

TABLE = "proyecto.drill_writes"


def conninfo(ports: list[int], user: str, password: str, *, sslrootcert: str | Path,
             dbname: str = "proyecto_db", host: str = "127.0.0.1") -> str:
    """Every port on `host`, over TLS with the cluster CA (the only way in); the password
    stays in this process, never on a command line."""
    tls = " ".join(f"{k}={v}" for k, v in tls_options(sslrootcert).items())
    return (f"host={','.join([host] * len(ports))} port={','.join(map(str, ports))} "
            f"user={user} password={password} dbname={dbname} {tls} "
            "target_session_attrs=read-write connect_timeout=2")


@dataclass
class Writer:
    dsn: str
    interval: float = 0.01
    table: str = TABLE  # another table lets two writers run side by side
    acknowledged: list[tuple[int, float, str]] = field(default_factory=list)  # id, time, port
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def prepare(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"create table if not exists {self.table} (id bigint primary key, "
                         "at timestamptz not null default clock_timestamp(), "
                         "written_on text not null default "
                         # Through PgBouncer (a Unix socket) there is no server address.
                         "coalesce(inet_server_addr()::text, current_setting('cluster_name')))")
            conn.execute(f"truncate {self.table}")

    def start(self, prepare: bool = True) -> Writer:
        """Start writing; `prepare` (re)creates the table first, which needs a role that
        may create and truncate it (else the caller made it)."""
        if prepare:
            self.prepare()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        next_id = 1
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute(f"insert into {self.table} (id) values (%s)", (next_id,))
                self.acknowledged.append((next_id, time.time(), str(conn.info.port)))
            except psycopg.Error:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            next_id += 1
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def first_ack_after(self, moment: float, port: str | None = None) -> float | None:
        for _, at, via in self.acknowledged:
            if at >= moment and (port is None or via == port):
                return at
        return None

    def outage_after(self, moment: float) -> tuple[float, float] | None:
        """The longest pause between two acknowledged commits from a second before
        `moment` on: (the last commit before it, the first after it). The first after it
        is the new primary's: an ack right after a fault can still be the old one's."""
        acks = [at for _, at, _ in self.acknowledged if at >= moment - 1]
        return max(pairwise(acks), key=lambda pair: pair[1] - pair[0], default=None)

    def missing(self) -> list[int]:
        """Acknowledged ids absent from the current primary (call after stop())."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            present = {row[0] for row in conn.execute(f"select id from {self.table}")}
        return [i for i, _, _ in self.acknowledged if i not in present]
