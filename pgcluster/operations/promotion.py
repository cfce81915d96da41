"""Operations that change who is primary: fence, promote, follow, rejoin, record.

Like pgcluster.operations, each reads live facts when pyinfra executes it, so it acts on
what the previous steps of the same run did, and does nothing when already done.
"""

from __future__ import annotations

import re
import shlex

from pyinfra import host
from pyinfra.api import operation

from pgcluster.facts.postgres import PgQuery, node_state, psql_command
from pgcluster.model.conninfo import value as conninfo_value
from pgcluster.model.layout import SCRIPTS_DIR, START_OVERRIDE, Layout
from pgcluster.model.sql import literal
from pgcluster.operations.conditional import refuse

EVENTS_LOG = "/var/log/pgcluster/events.log"


@operation()
def stop_server(layout: Layout, port: int = 5432):
    """Stop PostgreSQL (fast shutdown: open transactions are rolled back; everything
    committed, up to the shutdown checkpoint, is sent to the connected standbys first)."""
    if not node_state(host).get("running"):
        host.noop(f"{layout.service} is not running")
        return
    yield f"systemctl stop {layout.service}"


@operation()
def start_server(layout: Layout, port: int = 5432, as_primary: bool = False):
    """Start PostgreSQL; `as_primary` lets the start guard pass once although no peer could
    confirm that no other node is a primary (the operator decided: see start-guard)."""
    node = node_state(host)
    if node.get("running") or not node.get("data"):
        host.noop(f"{layout.service} is running" if node.get("running")
                  else "there is no data directory to start")
        return
    if as_primary:
        yield from allow_start_as_primary._inner()
    yield f"systemctl start {layout.service}"


@operation()
def allow_start_as_primary():
    """The one-shot file that lets start-guard start this node as a primary without a
    peer's confirmation (pgcluster/node/start-guard.sh consumes it). Made by a command:
    /run is a tmpfs, where `docker cp` cannot put a file."""
    yield f"install -D -m 600 /dev/null {shlex.quote(START_OVERRIDE)}"


def _still_running(other_host: str) -> str | None:
    """When executing, why not to promote: the old primary's server still runs (its stop
    failed or did nothing), and promoting would make two primaries. When planning it
    still runs, of course: the step that stops it comes first."""
    if host.state.is_executing and node_state(host.inventory.get_host(other_host)).get("running"):
        return (f"{other_host} is still running: its stop failed or did not take effect, so "
                f"{host.name} is not promoted (two primaries would accept writes). Stop it, "
                "then run the command again.")
    return None


@operation()
def promote(layout: Layout, timeout: int = 60, port: int = 5432, stopped_host: str | None = None):
    """pg_promote() a running standby and forget its upstream (ALTER SYSTEM RESET); never
    while `stopped_host` (the old primary, fenced or stopped by this run) still runs."""
    node = node_state(host)
    if node.get("running") and not node.get("in_recovery"):
        host.noop("already a primary")
        return
    if not node.get("running"):
        yield from refuse(host, f"{host.name}: cannot promote, PostgreSQL is not running there")
        return
    if stopped_host and (why := _still_running(stopped_host)):
        yield from refuse(host, why)
        return
    promoted = psql_command(f"select pg_promote(true, {int(timeout)})", port=port)
    yield f'[ "$({promoted})" = t ] || {{ echo "pg_promote did not finish" >&2; exit 1; }}'
    # The end-of-recovery checkpoint puts the new timeline in pg_control; until it is done,
    # pg_rewind against this node would read the old timeline and rewind the wrong way.
    for sql in ("CHECKPOINT", "ALTER SYSTEM RESET primary_conninfo",
                "ALTER SYSTEM RESET primary_slot_name", "select pg_reload_conf()"):
        yield psql_command(sql, port=port)


@operation()
def wait_received(layout: Layout, lsn_host: str, timeout: int = 60, port: int = 5432):
    """Wait until this standby has received all WAL up to the (stopped) old primary's
    shutdown checkpoint: nothing committed there is lost by promoting here."""
    stopped = node_state(host.inventory.get_host(lsn_host))
    target = stopped.get("checkpoint_lsn")
    if why := _still_running(lsn_host):
        yield from refuse(host, why)
        return
    if not host.state.is_executing:
        host.noop(f"planning: {lsn_host} stops first")
        return
    if not target:
        yield from refuse(host, f"cannot read the shutdown checkpoint of {lsn_host} "
                             "(pg_controldata): not promoting without knowing what to wait for")
        return
    check = psql_command(
        f"select pg_wal_lsn_diff(pg_last_wal_receive_lsn(), {literal(target)}) > 0", port=port
    )
    yield "\n".join([
        f"for _ in $(seq {int(timeout) * 2}); do",
        f'  [ "$({check})" = t ] && exit 0',
        "  sleep 0.5",
        "done",
        f'echo "not all WAL up to {target} arrived within {int(timeout)}s" >&2',
        "exit 1",
    ])


@operation()
def rejoin(layout: Layout, conninfo: str, slot: str, rewind_conninfo: str, primary_host: str,
           reclone: bool = False, port: int = 5432, keep_slots: tuple[str, ...] = ()):
    """Make this node a streaming replica of the primary in `conninfo` (re-point, restart
    as standby, pg_rewind, or with `reclone` a fresh clone): see rejoin-replica."""
    node = node_state(host)
    primary = conninfo_value(conninfo, "host")
    following = conninfo_value(node.get("primary_conninfo"), "host")
    if node.get("running") and node.get("in_recovery") and following == primary:
        host.noop(f"already a standby streaming from {primary}")
        return
    # Read when executing: a promotion earlier in this run has just changed it.
    timeline = node_state(host.inventory.get_host(primary_host)).get("timeline")
    if not timeline:
        yield from refuse(host, f"cannot read the primary's timeline on {primary_host}")
        return
    args = [conninfo, slot, rewind_conninfo, str(timeline), *(["--reclone"] if reclone else [])]
    keep = f"KEEP_SLOTS={shlex.quote(' '.join(keep_slots))} " if keep_slots else ""
    yield f"{keep}{SCRIPTS_DIR}/rejoin-replica " + " ".join(shlex.quote(a) for a in args)


def synchronous_names(setting: str | None) -> list[str]:
    """Standby names in a synchronous_standby_names value ('FIRST 1 ("a", b)', 'a, b', '*')."""
    if not setting or not setting.strip():
        return []
    inner = re.search(r"\((.*)\)", setting)
    text = inner.group(1) if inner else setting
    return [name.strip().strip('"') for name in text.split(",") if name.strip()]


@operation()
def synchronous_override(followers: list[str], port: int = 5432):
    """Keep a (new) primary writable: when none of its synchronous standbys is among the
    nodes that will follow it, suspend synchronous replication (ALTER SYSTEM SET ... = '');
    when one of them follows again, lift that override. Decided on the live settings."""
    rows = host.get_fact(
        PgQuery,
        sql="select sourcefile like '%postgresql.auto.conf', setting from pg_file_settings "
            "where name = 'synchronous_standby_names' and error is null order by seqno",
        port=port,
    )
    if rows is None:
        host.noop("PostgreSQL is not running")
        return
    configured = [setting for auto, setting in rows if auto == "f"]
    overridden = any(auto == "t" for auto, _ in rows)
    wanted = synchronous_names(configured[-1] if configured else "")
    if not wanted:
        host.noop("asynchronous replication (synchronous_standbys is empty)")
        return
    available = bool(set(wanted) & set(followers)) or "*" in wanted
    if available and overridden:
        sql = "ALTER SYSTEM RESET synchronous_standby_names"
    elif not available and not overridden:
        sql = "ALTER SYSTEM SET synchronous_standby_names = ''"
    else:
        host.noop("synchronous replication already as it must be")
        return
    yield psql_command(sql, port=port)
    yield psql_command("select pg_reload_conf()", port=port)


@operation()
def record_event(event: str, node_name: str, detail: str, database: str, schema: str,
                 port: int = 5432):
    """One row in <schema>.logs_replicacion and one line in the node's events log."""
    # Local commit: recording an event must never wait for a synchronous standby.
    sql = (f"set synchronous_commit = local; insert into {schema}.logs_replicacion "
           f"(evento, nodo, detalle) values "
           f"({literal(event)}, {literal(node_name)}, {literal(detail)})")
    yield psql_command(sql, database=database, port=port)
    line = shlex.quote(f"{event} {node_name} {detail}")
    yield (f"install -d -m 755 {EVENTS_LOG.rsplit('/', 1)[0]} && "
           f"echo \"$(date -u +%Y-%m-%dT%H:%M:%SZ) \"{line} >> {EVENTS_LOG}")
