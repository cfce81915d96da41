"""What a node's PostgreSQL is right now, read on the node.

Facts never fail a host: a missing package, a stopped server or an absent database are
answers, not errors. Queries run as the postgres OS user over the local socket (peer).
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase, Host

from pgcluster.model.layout import NODE_ENV, SOCKET_DIR, Layout

FIELD_SEP = "\x1f"  # ASCII unit separator: never in names, settings or LSNs
DOWN = "__pgcluster_server_down__"


def psql_command(sql: str | None = None, database: str = "postgres", port: int = 5432, *,
                 file: str | None = None, stdin: str | None = None, rows: bool = True) -> str:
    """The one psql command line pgcluster runs on a node (as pyinfra's make_psql_command):
    as the postgres OS user, from / (no private working directory needed), over the local
    socket (peer), without psqlrc, stopping at the first error. It runs `sql` (-c), a
    `file` on the node (-f) or SQL from a private file on its standard input (`stdin`, so
    a secret never appears on a command line). `rows`: unaligned tuples only, fields
    separated by FIELD_SEP, as facts parse them; otherwise psql's own table output."""
    given = [what for what in (sql, file, stdin) if what is not None]
    if len(given) != 1:
        raise ValueError("psql_command runs exactly one of sql, file or stdin")
    parts = ["cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1"]
    if rows:
        parts.append("-A -t -F \"$(printf '\\037')\"")
    parts.append(f"-h {SOCKET_DIR} -p {int(port)} -d {shlex.quote(database)}")
    if sql is not None:
        parts.append(f"-c {shlex.quote(sql)}")
    elif file is not None:
        parts.append(f"-f {shlex.quote(file)}")
    else:
        parts.append(f"< {shlex.quote(str(stdin))}")
    return " ".join(parts)


def server_up_test(port: int = 5432) -> str:
    return f"[ -S {SOCKET_DIR}/.s.PGSQL.{int(port)} ] && id postgres >/dev/null 2>&1"


def query_command(sql: str, database: str = "postgres", port: int = 5432) -> str:
    """A query's rows, or the DOWN marker when the server is not running (or the database
    does not exist yet)."""
    return (
        f"if {server_up_test(port)}; then "
        f"{psql_command(sql, database, port)} 2>/dev/null || echo {DOWN}; "
        f"else echo {DOWN}; fi"
    )


def query_rows(output: list[str]) -> list[list[str]] | None:
    if output and output[-1] == DOWN:
        return None
    return [line.split(FIELD_SEP) for line in output]


class PgQuery(FactBase):
    """Rows of a query (lists of strings), or None when the server is not running or the
    database does not exist yet."""

    def command(self, sql: str, database: str = "postgres", port: int = 5432) -> str:
        return query_command(sql, database, port)

    def process(self, output: list[str]) -> list[list[str]] | None:
        return query_rows(output)

    def default(self) -> list[list[str]] | None:  # no output at all: an empty result
        return []


UTC_TEXT = "to_char({} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
ARCHIVER_SQL = (
    "select archived_count, coalesce(last_archived_wal, ''), "
    f"coalesce({UTC_TEXT.format('last_archived_time')}, ''), failed_count, "
    f"coalesce(last_failed_wal, ''), coalesce({UTC_TEXT.format('last_failed_time')}, ''), "
    "(last_failed_time is not null and (last_archived_time is null "
    "or last_failed_time > last_archived_time))::text from pg_stat_archiver"
)


class Archiver(FactBase):
    """pg_stat_archiver on the node (times in UTC), with `failing`: the last attempt failed
    after the last success. None when the server is not running."""

    def command(self, port: int = 5432) -> str:
        return query_command(ARCHIVER_SQL, "postgres", port)

    def process(self, output: list[str]) -> dict[str, Any] | None:
        rows = query_rows(output)
        if not rows:
            return None
        row = rows[0]
        return {"archived_count": int(row[0]), "last_archived_wal": row[1] or None,
                "last_archived_time": row[2] or None, "failed_count": int(row[3]),
                "last_failed_wal": row[4] or None, "last_failed_time": row[5] or None,
                "failing": row[6] == "true"}

    def default(self) -> None:
        return None


_NODE_SQL = " union all ".join(
    [
        "select 'running=1'",
        "select 'in_recovery=' || pg_is_in_recovery()::int",
        "select 'system_identifier=' || system_identifier from pg_control_system()",
        "select 'timeline=' || timeline_id from pg_control_checkpoint()",
        "select 'receiver_status=' || status from pg_stat_wal_receiver",
        "select 'receiver_timeline=' || received_tli from pg_stat_wal_receiver",
        "select 'sender_host=' || coalesce(sender_host, '') from pg_stat_wal_receiver",
        "select 'sender_port=' || coalesce(sender_port::text, '') from pg_stat_wal_receiver",
        # Seconds since the primary last sent anything, and how long a live one may stay
        # silent: a replica pings after half of wal_receiver_timeout (milliseconds).
        "select 'receiver_silence=' || extract(epoch from now() - last_msg_receipt_time) "
        "from pg_stat_wal_receiver where last_msg_receipt_time is not null",
        "select 'receiver_timeout_ms=' || setting from pg_settings "
        "where name = 'wal_receiver_timeout'",
        "select 'primary_conninfo=' || current_setting('primary_conninfo')",
        "select 'primary_slot_name=' || current_setting('primary_slot_name')",
        "select 'current_lsn=' || pg_current_wal_lsn() where not pg_is_in_recovery()",
        # A primary's timeline is the one its current WAL file is named after.
        "select 'timeline=' || ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))"
        "::bit(32)::int where not pg_is_in_recovery()",
        "select 'receive_lsn=' || pg_last_wal_receive_lsn() where pg_is_in_recovery()",
        # A standby's timeline: the newest one among its WAL files (the checkpoint's lags).
        "select 'timeline=' || max(('x' || substr(name, 1, 8))::bit(32)::int) "
        "from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$' and pg_is_in_recovery()",
        "select 'replay_lsn=' || pg_last_wal_replay_lsn() where pg_is_in_recovery()",
        "select 'replay_paused=' || pg_is_wal_replay_paused()::int where pg_is_in_recovery()",
        # When a standby last received WAL (streamed or restored from the archive): the
        # newest write in its pg_wal. Unlike the WAL receiver's row, it outlives the
        # connection, which is exactly when a failover needs it.
        "select 'wal_received_at=' || extract(epoch from max(modification)) "
        "from pg_ls_waldir() where pg_is_in_recovery()",
    ]
)


def node_state(target: Host) -> dict[str, Any]:
    """The PgNode fact of a host, read with its own version, cluster and port: the one way
    pgcluster asks what a node's PostgreSQL is. Inside an operation pyinfra reads it again
    when the operation executes, so it sees what earlier steps of the run have done."""
    layout = Layout.from_data(target.data.dict())
    return target.get_fact(PgNode, version=layout.version, cluster=layout.cluster,
                           port=int(target.data.get("postgresql_port", 5432)))


class PgNode(FactBase):
    """The state of the node's cluster: installed, configured, data directory, running,
    role (in recovery or not), system identifier, timeline and WAL receiver."""

    def command(self, version: int = 15, cluster: str = "main", port: int = 5432) -> str:
        layout = Layout(version, cluster)
        data, bindir = layout.data_dir, layout.bin_dir
        return "; ".join(
            [
                f"D={shlex.quote(data)}",
                f"echo installed=$([ -x {bindir}/postgres ] && echo 1 || echo 0)",
                f"echo configured=$([ -f {layout.conf_dir}/postgresql.conf ] && echo 1 || echo 0)",
                'echo data=$([ -f "$D/PG_VERSION" ] && echo 1 || echo 0)',
                'echo data_dir_nonempty=$([ -n "$(ls -A "$D" 2>/dev/null)" ] && echo 1 || echo 0)',
                'echo standby_signal=$([ -f "$D/standby.signal" ] && echo 1 || echo 0)',
                # The backup engine the last deploy set up (node.env is rendered by it).
                f"sed -n \"s/^BACKUP_ENGINE=['\\\"]*\\([a-z_]*\\).*/backup_engine=\\1/p\" "
                f"{NODE_ENV} 2>/dev/null",
                f'if [ -x {bindir}/pg_controldata ] && [ -f "$D/global/pg_control" ]; then '
                f'{bindir}/pg_controldata "$D" 2>/dev/null | sed -n '
                "-e 's/^Database system identifier: *\\(.*\\)/system_identifier=\\1/p' "
                "-e 's/^Database cluster state: *\\(.*\\)/cluster_state=\\1/p' "
                "-e \"s/^Latest checkpoint's TimeLineID: *\\(.*\\)/timeline=\\1/p\" "
                "-e 's/^Latest checkpoint location: *\\(.*\\)/checkpoint_lsn=\\1/p'; fi",
                f"if {server_up_test(port)}; then "
                f"{psql_command(_NODE_SQL, 'postgres', port)} 2>/dev/null "
                "|| echo running=0; else echo running=0; fi",
            ]
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        raw: dict[str, str] = {}
        for line in output:
            key, _, value = line.partition("=")
            raw[key] = value  # later lines (the live server) win over pg_controldata
        flags = ("installed", "configured", "data", "data_dir_nonempty", "standby_signal",
                 "running", "in_recovery")
        state: dict[str, Any] = {key: raw.get(key) == "1" for key in flags}
        for key in ("system_identifier", "cluster_state", "timeline", "receiver_status",
                    "receiver_timeline", "sender_host", "sender_port", "primary_conninfo",
                    "primary_slot_name", "checkpoint_lsn", "current_lsn", "receive_lsn",
                    "replay_lsn", "replay_paused", "wal_received_at", "receiver_silence",
                    "receiver_timeout_ms", "backup_engine"):
            state[key] = raw.get(key) or None
        if not state["running"]:
            # A stopped node's role is what its data directory says.
            state["in_recovery"] = state["standby_signal"]
        return state

    def default(self) -> dict[str, Any]:
        return {}
