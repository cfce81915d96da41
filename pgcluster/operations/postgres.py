"""pyinfra operations for PostgreSQL state that pyinfra's own postgres module cannot keep
idempotent: roles with verified passwords, the seed schema, slots, replica clones, and
reload-or-restart on configuration changes.

Each operation reads live facts and yields nothing when the node is already right. pyinfra
calls an operation once when planning and again when executing, so the facts it reads at
execution time see what earlier operations of the same run have done.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, operation

from pgcluster.control import scram
from pgcluster.facts.postgres import PgQuery, node_state, psql_command, server_up_test
from pgcluster.model.cluster import orphaned_slots
from pgcluster.model.conninfo import value as conninfo_value
from pgcluster.model.layout import SCRIPTS_DIR, UPLOAD_DIR, Layout
from pgcluster.model.sql import ident, literal
from pgcluster.model.wal import NODE_LSN_SQL
from pgcluster.operations.conditional import refuse
from pgcluster.operations.files import private_upload


def _query(sql: str, database: str = "postgres", port: int = 5432) -> list[list[str]] | None:
    return host.get_fact(PgQuery, sql=sql, database=database, port=port)


# ------------------------------------------------------------------- secrets on nodes


def _psql_private(sql: str, name: str, port: int = 5432) -> Iterator[FileUploadCommand | str]:
    """Run SQL that carries a secret (a password verifier) as postgres: from a private file
    on stdin, never on a command line (ps shows those to every user), with statement
    logging off for this session whatever the server's settings, so it is not logged
    either (not even when it fails)."""
    path = f"{UPLOAD_DIR}/{name}.sql"
    quiet = ("SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\n"
             "SET log_min_duration_statement = -1;\n")
    yield from private_upload(f"{quiet}{sql};\n", path)
    yield f"{psql_command(port=port, stdin=path, rows=False)}; rc=$?; rm -f {path}; exit $rc"


@operation()
def initdb(layout: Layout, encoding: str, locale: str, checksums: bool, port: int = 5432):
    """Create the primary's data directory when there is none. Never touches existing data."""
    node = node_state(host)
    if node.get("data"):
        host.noop(f"{layout.data_dir} holds a data directory")
        return
    if node.get("data_dir_nonempty"):
        yield from refuse(host,
            f"{layout.data_dir} is not empty but holds no PostgreSQL data directory: "
            "inspect it and move it away; pgcluster does not delete unknown data"
        )
        return
    options = [f"--encoding={encoding}", f"--locale={locale}", "--auth-local=peer",
               "--auth-host=scram-sha-256"]
    if checksums:
        options.append("--data-checksums")
    yield f"install -d -o postgres -g postgres -m 0700 {layout.data_dir}"
    yield (
        f"cd / && runuser -u postgres -- {layout.bin_dir}/initdb --pgdata={layout.data_dir} "
        + " ".join(options)
    )
    # The cluster's configuration lives in /etc/postgresql (rendered by pgcluster); the
    # copies initdb leaves in the data directory would only mislead (and be cloned).
    yield (
        f"rm -f {layout.data_dir}/postgresql.conf {layout.data_dir}/pg_hba.conf "
        f"{layout.data_dir}/pg_ident.conf"
    )


PENDING_RESTART = "select string_agg(name, ', ') from pg_settings where pending_restart"


@operation()
def apply_config(layout: Layout, port: int = 5432, restart: bool = True):
    """Reload a running server; restart it only if a changed setting needs a restart (and
    `restart`: under Patroni, Patroni restarts it, one node at a time).

    PostgreSQL itself says which settings wait for a restart (pg_settings.pending_restart
    after the reload), so no list of restart-only parameters is kept here.
    """
    ask = lambda sql: psql_command(sql, "postgres", port)  # noqa: E731
    yield "\n".join(
        [
            f"if {server_up_test(port)}; then",
            f"  before=$({ask('select pg_conf_load_time()')})",
            f"  pg_ctlcluster {layout.version} {layout.cluster} reload",
            "  for _ in $(seq 50); do",
            f"    [ \"$({ask('select pg_conf_load_time()')})\" != \"$before\" ] && break",
            "    sleep 0.2",
            "  done",
            f"  pending=$({ask(PENDING_RESTART)})",
            '  if [ -n "$pending" ]; then',
            '    echo "restart needed for: $pending" >&2',
            f"    systemctl restart {layout.service}" if restart else
            '    echo "Patroni restarts it (pending restart)" >&2',
            "  fi",
            "fi",
        ]
    )


@operation()
def role(
    role: str,
    password: str,
    superuser: bool = False,
    replication: bool = False,
    login: bool = True,
    port: int = 5432,
):
    """A role with these attributes and this password (checked against its SCRAM verifier;
    only a verifier, never the password, is sent to the server, and never on a command
    line: see _psql_private). Roles never get CREATEDB, CREATEROLE or BYPASSRLS: the
    superuser, if any, needs none of them, and no other role should have them."""
    rows = _query(
        "select rolsuper, rolreplication, rolcanlogin, rolcreatedb, rolcreaterole, "
        f"rolbypassrls, coalesce(rolpassword, '') from pg_authid where rolname = {literal(role)}",
        port=port,
    )
    wanted = {"SUPERUSER": superuser, "REPLICATION": replication, "LOGIN": login,
              "CREATEDB": False, "CREATEROLE": False, "BYPASSRLS": False}
    if not rows:
        attributes = " ".join(k if v else f"NO{k}" for k, v in wanted.items())
        sql = f"CREATE ROLE {ident(role)} {attributes} PASSWORD {literal(scram.verifier(password))}"
        yield from _psql_private(sql, f"role-{role}", port=port)
        return
    current = dict(zip(wanted, (value == "t" for value in rows[0][:6]), strict=True))
    changes = [k if v else f"NO{k}" for k, v in wanted.items() if current[k] != v]
    if not scram.matches(rows[0][6], password):
        changes.append(f"PASSWORD {literal(scram.verifier(password))}")
    if not changes:
        host.noop(f"role {role} has its attributes and password")
        return
    yield from _psql_private(f"ALTER ROLE {ident(role)} {' '.join(changes)}",
                             f"role-{role}", port=port)


@operation()
def grant_execute(role: str, functions: list[str], port: int = 5432):
    """EXECUTE on these functions (signatures like 'pg_catalog.pg_ls_dir(text, boolean,
    boolean)') for the role, granted only where it is missing."""
    checks = ", ".join(
        f"has_function_privilege({literal(role)}, {literal(f)}, 'EXECUTE')" for f in functions
    )
    rows = _query(f"select {checks}", port=port)
    if rows and all(value == "t" for value in rows[0]):
        host.noop(f"{role} may execute {len(functions)} functions")
        return
    for function in functions:
        yield psql_command(f"GRANT EXECUTE ON FUNCTION {function} TO {ident(role)}", port=port)


@operation()
def grant_role(role: str, member_of: str, port: int = 5432):
    rows = _query(f"select pg_has_role({literal(role)}, {literal(member_of)}, 'MEMBER')",
                  port=port)
    if rows and rows[0][0] == "t":
        host.noop(f"{role} is a member of {member_of}")
        return
    yield psql_command(f"GRANT {ident(member_of)} TO {ident(role)}", port=port)


@operation()
def grant_select(role: str, table: str, database: str, port: int = 5432):
    """USAGE on a table's schema and SELECT on the table (schema.table), granted only where
    missing."""
    schema = table.split(".", 1)[0]
    rows = _query(f"select has_schema_privilege({literal(role)}, {literal(schema)}, 'USAGE'), "
                  f"has_table_privilege({literal(role)}, {literal(table)}, 'SELECT')",
                  database=database, port=port)
    if rows and rows[0] == ["t", "t"]:
        host.noop(f"{role} may read {table}")
        return
    yield psql_command(f"GRANT USAGE ON SCHEMA {ident(schema)} TO {ident(role)}", database,
                       port)
    yield psql_command(f"GRANT SELECT ON {'.'.join(ident(p) for p in table.split('.'))} TO "
                       f"{ident(role)}", database, port)


@operation()
def database(database: str, owner: str, encoding: str = "UTF8", port: int = 5432):
    rows = _query(f"select 1 from pg_database where datname = {literal(database)}", port=port)
    if rows:
        host.noop(f"database {database} exists")
        return
    yield psql_command(
        f"CREATE DATABASE {ident(database)} OWNER {ident(owner)} ENCODING {literal(encoding)} "
        "TEMPLATE template0",
        port=port,
    )


@operation()
def seed(sql_file: str, database: str, schema: str, tables: list[str], port: int = 5432):
    """Run the seed SQL once: when any of the seed's tables is missing."""
    names = ", ".join(literal(t) for t in tables)
    rows = _query(
        f"select count(*) from information_schema.tables where table_schema = {literal(schema)} "
        f"and table_name in ({names})",
        database=database,
        port=port,
    )
    if rows and rows[0][0] == str(len(tables)):
        host.noop(f"schema {schema} is seeded")
        return
    yield psql_command(database=database, port=port, file=sql_file, rows=False)


def privileges_check(role: str, database: str, schema: str, owner: str) -> str:
    """SQL answering 't' when the application role has exactly the rights
    templates/sql/privileges.sql.j2 gives it, and PUBLIC none on the database."""
    r, d, n, o = literal(role), literal(database), literal(schema), literal(owner)
    in_schema = f"c.relnamespace = {n}::regnamespace"
    table_rights = " and ".join(f"has_table_privilege({r}, c.oid, '{p}')"
                                for p in ("SELECT", "INSERT", "UPDATE", "DELETE"))

    def defaults(kind: str, count: int) -> str:
        return (f"(select count(distinct a.privilege_type) from pg_default_acl d, "
                f"aclexplode(d.defaclacl) a where d.defaclrole = {o}::regrole and "
                f"d.defaclnamespace = {n}::regnamespace and d.defaclobjtype = '{kind}' "
                f"and a.grantee = {r}::regrole) = {count}")

    return " and ".join([
        f"select has_database_privilege({r}, {d}, 'CONNECT')",
        f"not has_database_privilege({r}, {d}, 'CREATE')",
        "not exists (select 1 from pg_database d, aclexplode(coalesce(d.datacl, "
        f"acldefault('d', d.datdba))) a where d.datname = {d} and a.grantee = 0)",
        f"has_schema_privilege({r}, {n}, 'USAGE')",
        f"not has_schema_privilege({r}, {n}, 'CREATE')",
        f"not exists (select 1 from pg_class c where {in_schema} and c.relkind in ('r', 'p') "
        f"and not ({table_rights}))",
        # (CASE: has_sequence_privilege fails on any other relation; AND may not guard it)
        f"not exists (select 1 from pg_class c where {in_schema} and case when c.relkind = "
        f"'S' then not has_sequence_privilege({r}, c.oid, 'USAGE') else false end)",
        defaults("r", 4),
        defaults("S", 2),
    ])


@operation()
def privileges(sql_file: str, role: str, database: str, schema: str, owner: str,
               port: int = 5432):
    """The application role's rights in the application's database (sql_file), granted
    again whenever they are incomplete (e.g. a table created by another role)."""
    rows = _query(privileges_check(role, database, schema, owner), database=database, port=port)
    if rows and rows[0][0] == "t":
        host.noop(f"{role} has exactly its rights in {database}")
        return
    yield psql_command(database=database, port=port, file=sql_file, rows=False)


@operation()
def follow_conninfo(layout: Layout, conninfo: str, keys: tuple[str, ...], port: int = 5432):
    """A running standby of the primary in `conninfo` uses these connection options (a
    cluster cloned before TLS gets sslmode=verify-full): ALTER SYSTEM and a reload, which
    restarts only the WAL receiver. Standbys of another primary are left to rejoin."""
    node = node_state(host)
    current = node.get("primary_conninfo")
    if not (node.get("running") and node.get("in_recovery") and current):
        host.noop("not a running standby")
        return
    if conninfo_value(current, "host") != conninfo_value(conninfo, "host"):
        host.noop("a standby of another primary: left to rejoin")
        return
    if all(conninfo_value(current, k) == conninfo_value(conninfo, k) for k in keys):
        host.noop("primary_conninfo is as rendered")
        return
    yield psql_command(f"ALTER SYSTEM SET primary_conninfo = {literal(conninfo)}", port=port)
    yield psql_command("select pg_reload_conf()", port=port)


@operation()
def replication_slot(slot: str, port: int = 5432):
    if _query(f"select 1 from pg_replication_slots where slot_name = {literal(slot)}", port=port):
        host.noop(f"slot {slot} exists")
        return
    yield psql_command(
        f"select pg_create_physical_replication_slot({literal(slot)})", port=port
    )


# WAL a slot holds on this node, primary or standby.
_SLOT_HOLDS = f"pg_size_pretty(pg_wal_lsn_diff({NODE_LSN_SQL}, restart_lsn))"


def _drop_when_inactive(slot: str, port: int, wait: int, busy: str) -> str:
    """Shell: drop the slot once nothing streams from it (a stopped or re-pointed replica's
    walsender may take a moment to go), waiting up to `wait` seconds; `busy` runs instead
    when it is still active then."""
    active = psql_command(f"select active from pg_replication_slots where slot_name = "
                          f"{literal(slot)}", port=port)
    drop = psql_command(f"select pg_drop_replication_slot(slot_name) from "
                        f"pg_replication_slots where slot_name = {literal(slot)}", port=port)
    return "\n".join([
        f"for _ in $(seq {int(wait)}); do",
        f'  [ "$({active})" = t ] || break',
        "  sleep 1",
        "done",
        f'if [ "$({active})" = t ]; then {busy}; else {drop} >/dev/null; fi',
    ])


@operation()
def orphan_slots(expected: list[str], known: list[str], policy: str = "warn",
                 port: int = 5432):
    """Physical slots on this node that no node of the inventory streams from here
    (pgcluster.model.cluster.orphaned_slots). Each retains WAL for no one, so none is left
    silently. A node's of the inventory that now streams from another (a cascade moved
    past a lost upstream, then back) is pgcluster's own: dropped. One named after no node
    (a removed node's, or one made by hand) is dropped with policy "drop", else kept and
    warned about with the SQL that drops it. A slot something still streams from is only
    dropped once that stops, within seconds (a replica just re-pointed), else warned."""
    rows = _query("select slot_name, coalesce(" + _SLOT_HOLDS + ", '?') from "
                  "pg_replication_slots where slot_type = 'physical' and not temporary",
                  port=port)
    if rows is None:
        host.noop("PostgreSQL is not running")
        return
    holds = dict((name, size) for name, size in rows)
    orphans = orphaned_slots(holds, expected, known)
    dropped = [slot for slot in orphans if slot in known or policy == "drop"]
    for slot in orphans:
        if slot not in dropped:
            logger.warning(
                f"pgcluster: {host.name}: replication slot {slot} is no node's of the "
                f"inventory (a removed node's?) and retains {holds[slot]} of WAL; drop it "
                f"with `select pg_drop_replication_slot('{slot}')`, or set orphan_slots = "
                "\"drop\" (docs/replicas.md)")
    if not dropped:
        host.noop(f"orphan slots kept: {', '.join(orphans)}" if orphans
                  else "every replication slot here serves a node of the inventory")
        return
    for slot in dropped:
        yield _drop_when_inactive(slot, port, 15, f'echo "pgcluster: slot {slot} is no '
                                  f'node\'s here but something streams from it: kept" >&2')


@operation()
def drop_slot(slot: str, port: int = 5432, wait: int = 30):
    """Drop a physical replication slot once nothing streams from it (a stopped or
    re-pointed replica's walsender may take a moment to go); refused if it stays active."""
    if not _query(f"select 1 from pg_replication_slots where slot_name = {literal(slot)}",
                  port=port):
        host.noop(f"no slot {slot}")
        return
    yield _drop_when_inactive(slot, port, wait, f'echo "slot {slot} is still in use after '
                              f'{int(wait)}s: something streams from it" >&2; exit 1')


@operation()
def clone_replica(layout: Layout, conninfo: str, slot: str, port: int = 5432):
    """Make this node a streaming replica of the primary `conninfo` names, when it is not
    one already."""
    primary_address = conninfo_value(conninfo, "host")
    node = node_state(host)
    if node.get("running"):
        following = conninfo_value(node.get("primary_conninfo"), "host")
        if not node.get("in_recovery"):
            yield from refuse(host,
                f"{host.name} runs as a primary; refusing to make it a replica of "
                f"{primary_address}. If it is a failed old primary, stop it and run "
                "`pgcluster rejoin`."
            )
            return
        if following == primary_address:
            host.noop(f"already a replica of {primary_address}")
            return
        yield from refuse(host,
            f"{host.name} is a running standby of {following or 'nothing'}, not of the "
            f"primary {primary_address}: re-point it with `pgcluster rejoin`, not a re-clone"
        )
        return
    yield f"{SCRIPTS_DIR}/clone-replica {shlex.quote(conninfo)} {shlex.quote(slot)}"


@operation()
def wait_for_replicas(application_names: list[str], timeout: int = 180, port: int = 5432,
                      explain: str | None = None):
    """Wait until pg_stat_replication on this (primary) node shows every replica streaming.
    On a timeout, what pg_stat_replication does show, and the output of `explain` (a
    command: under Patroni, its members' states), to say where to look."""
    rows = _query("select application_name, state from pg_stat_replication", port=port) or []
    streaming = {name for name, state in rows if state == "streaming"}
    missing = [name for name in application_names if name not in streaming]
    if not missing:
        host.noop(f"{', '.join(application_names)} stream")
        return
    sql = "select coalesce(string_agg(application_name, ' ' order by 1), '') " \
          "from pg_stat_replication where state = 'streaming'"
    wanted = " ".join(shlex.quote(n) for n in application_names)
    seen = "select application_name, client_addr, state from pg_stat_replication order by 1"
    yield "\n".join(
        [
            f"for _ in $(seq {int(timeout)}); do",
            f"  now=\" $({psql_command(sql, port=port)}) \"",
            "  missing=''",
            f"  for name in {wanted}; do",
            '    case "$now" in *" $name "*) ;; *) missing="$missing $name";; esac',
            "  done",
            '  [ -z "$missing" ] && exit 0',
            "  sleep 1",
            "done",
            f'echo "not streaming after {int(timeout)}s:$missing" >&2',
            "echo 'pg_stat_replication on this node:' >&2",
            f"{psql_command(seen, port=port, rows=False)} >&2",
            *([f"{explain} >&2"] if explain else []),
            "exit 1",
        ]
    )


@operation()
def backup_registry(sql_file: str, database: str, version: str, port: int = 5432):
    """The backup registry table (pgcluster.backups), created once from sql_file; its
    comment carries the version, so an unchanged registry is no change."""
    rows = _query(
        "select coalesce(obj_description(to_regclass('pgcluster.backups'), 'pg_class'), '')",
        database=database,
        port=port,
    )
    if rows and rows[0] and rows[0][0] == version:
        host.noop(f"{version} in place")
        return
    yield psql_command(database=database, port=port, file=sql_file, rows=False)


# ------------------------------------------------------------------ PgBouncer's lookup


@operation()
def login_role(role: str, port: int = 5432):
    """A role that logs in with no password at all (peer, over the local socket only: see
    pg_hba.conf) and has no other attribute."""
    rows = _query("select rolcanlogin, rolsuper, rolreplication, rolcreatedb, rolcreaterole, "
                  f"rolbypassrls, rolpassword is null from pg_authid where rolname = "
                  f"{literal(role)}", port=port)
    wanted = ["t", "f", "f", "f", "f", "f", "t"]
    attributes = ("LOGIN NOSUPERUSER NOREPLICATION NOCREATEDB NOCREATEROLE NOBYPASSRLS "
                  "PASSWORD NULL")
    if rows and rows[0] == wanted:
        host.noop(f"role {role} logs in, by peer only, and may do nothing else")
        return
    verb = "ALTER" if rows else "CREATE"
    yield psql_command(f"{verb} ROLE {ident(role)} {attributes}", port=port)


def auth_lookup_check(role: str, digest: str) -> str:
    """SQL answering 't' in a database where pgbouncer.get_auth(text) is exactly
    templates/sql/pgbouncer.sql.j2's (its body's md5), SECURITY DEFINER, executable by
    `role` and by no one else, and `role` may connect."""
    r = literal(role)
    return ("select coalesce((select p.prosecdef and md5(p.prosrc) = "
            f"{literal(digest)} and p.proacl is not null and not exists (select 1 from "
            "aclexplode(p.proacl) a where a.grantee = 0) and has_function_privilege("
            f"{r}, p.oid, 'EXECUTE') from pg_proc p where p.oid = "
            "to_regprocedure('pgbouncer.get_auth(text)')), false) and "
            f"has_database_privilege({r}, current_database(), 'CONNECT')")


@operation()
def auth_lookup(sql_file: str, role: str, digest: str, databases: list[str], port: int = 5432):
    """PgBouncer's verifier lookup (sql_file) in each database clients may use: the ones
    given and every other that accepts connections, made again where it differs."""
    found = _query("select datname from pg_database where datallowconn and not datistemplate "
                   "order by datname", port=port) or []
    names = list(dict.fromkeys([*databases, *(row[0] for row in found)]))
    missing = [db for db in names
               if (_query(auth_lookup_check(role, digest), database=db, port=port) or [[""]])
               [0][0] != "t"]
    if not missing:
        host.noop(f"PgBouncer's lookup is in {', '.join(names)}")
        return
    for database in missing:
        yield psql_command(database=database, port=port, file=sql_file, rows=False)
