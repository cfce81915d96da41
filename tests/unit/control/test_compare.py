"""The restore drill's comparison (pgcluster.control.compare) against a real PostgreSQL 15:
one throwaway server for this module (Debian's binaries, a Unix socket only, in pytest's
temporary directory). Fingerprints cover every user table and only those, change with one
value of any type and not with where rows lie, and differing_rows says which rows differ;
taken at a restore point under concurrent writers, they are exactly what a point-in-time
restore to it holds (checked by restoring one).

Every transaction these tests make compare.py wait for (the writers, the write in flight)
runs in another process, psql, as applications do. It used to run in threads of this
process, which broke under `pytest tests`: the integration conftest imports psycopg
before pyinfra_cli, whose import monkey-patches the standard library for gevent; psycopg
keeps the blocking C wait it chose at its own import, and the threads, now greenlets on
the one OS thread, froze while that wait blocked, so LOCK waited for their commits until
lock_timeout (5 s). A psql holder's commit depends on nothing this process does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgcluster.control.compare import (
    DifferingRow,
    TableDifference,
    TableFingerprint,
    differences,
    differing_rows,
    fingerprint,
    fingerprint_at_restore_point,
    restore_point_snapshots,
)
from pgcluster.errors import ClusterStateError

BIN = Path("/usr/lib/postgresql/15/bin")
AS_ROOT = os.geteuid() == 0
SERVER_USER = "postgres"  # who runs the server when we are root (postgres refuses root)
INSTALL_HINT = "install Debian's PostgreSQL 15 server: apt-get install postgresql-15"
# Generous: they bound how long a broken test hangs, not how fast a loaded machine is.
WAIT = 60.0

# The template every test clones its own databases from (CREATE DATABASE ... TEMPLATE):
# a table with a primary key and values of several types, one without (with duplicate
# rows), one under quoted names with a composite key, a partitioned table, and what must
# not be compared (an unlogged table, a materialized view).
MODEL_SQL = '''
create table public.clientes (id int primary key, nombre text not null, saldo numeric(12,2),
                              datos jsonb, foto bytea);
insert into public.clientes
select g, 'cliente ' || g, g * 10.25, jsonb_build_object('n', g, 'tags', array['a', 'b']),
       decode(md5(g::text), 'hex')
from generate_series(1, 50) g;
create table public.eventos (at timestamptz not null, tipo text, cantidad float8);
insert into public.eventos
select timestamptz '2024-01-01 00:00+00' + g * interval '1 hour',
       case when g % 3 = 0 then 'baja' else 'alta' end, g / 7.0
from generate_series(1, 30) g;
insert into public.eventos select * from public.eventos order by at limit 2;
create schema "Ventas Año";
create table "Ventas Año"."Pedido ""especial""" (cliente int, linea text, total numeric,
                                                 primary key (cliente, linea));
insert into "Ventas Año"."Pedido ""especial"""
select g / 3, 'línea ' || g % 3, g * 1.5 from generate_series(3, 20) g;
create table public.medidas (dia date not null, valor int) partition by range (dia);
create table public.medidas_2024 partition of public.medidas
    for values from ('2024-01-01') to ('2025-01-01');
create table public.medidas_2025 partition of public.medidas
    for values from ('2025-01-01') to ('2026-01-01');
insert into public.medidas select date '2024-06-01' + g, g from generate_series(0, 400) g;
create unlogged table public.cache (k text primary key);
insert into public.cache values ('no se compara');
create materialized view public.resumen as
    select tipo, count(*) from public.eventos group by tipo;
'''
MODEL_TABLES = {"public.clientes", "public.eventos", 'Ventas Año.Pedido "especial"',
                "public.medidas_2024", "public.medidas_2025"}

# The rows a table holding only ids 1..N must have, fingerprinted as compare does (written
# out here, so that a change to compare's formula shows).
PREFIX_SQL = """
select count(*), coalesce(sum(('x' || substr(md5(row(g)::text), 1, 16))
                              ::bit(64)::bigint::numeric), 0)::text
from generate_series(1::bigint, %s) g
"""

# A writer: one row per transaction, each held open a moment after its insert so that
# commits interleave (a snapshot taken without the locks would see an id committed while
# a smaller one is still in flight), until the test lets go of the advisory lock GATE. In
# one DO block, which commits as it loops, so the server writes with no help from here.
GATE = 4217
WRITER_SQL = f"""
do $$
begin
  while not pg_try_advisory_lock_shared({GATE}) loop
    insert into public.escrituras default values;
    perform pg_sleep(0.001 + random() * 0.004);
    commit;
    perform pg_sleep(0.001);
  end loop;
end $$
"""

# A write in flight that commits only once a LOCK ... IN SHARE MODE queues behind it: the
# order of events is fixed by the server, not by how fast anything runs on this machine.
HOLDER_SQL = """
begin;
insert into public.clientes (id, nombre) values (500, 'en vuelo');
do $$
declare
  deadline timestamptz := clock_timestamp() + interval '120 s';
begin
  while not exists (select 1 from pg_locks
                    where locktype = 'relation' and relation = 'public.clientes'::regclass
                      and database = (select oid from pg_database
                                      where datname = current_database())
                      and mode = 'ShareLock' and not granted) loop
    if clock_timestamp() > deadline then
      raise exception 'no LOCK IN SHARE MODE came to wait for this write';
    end if;
    perform pg_sleep(0.01);
  end loop;
end $$;
commit;
"""


@dataclass
class Server:
    root: Path
    data: Path
    port: int  # with listen_addresses = '' only the socket's file name: no TCP port

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / f"log-{self.port}"

    def connect(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                               dbname=dbname, autocommit=True)

    def execute(self, dbname: str, query: str | sql.Composable,
                params: tuple | None = None) -> list:
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def psql(self, dbname: str, script: str, name: str) -> subprocess.Popen[str]:
        """A client of its own (not of this process) running `script` in one go."""
        return subprocess.Popen(
            [str(BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
             str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", dbname,
             "-c", script],
            env={**os.environ, "PGAPPNAME": name}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def start(self) -> None:
        _let_server_user_reach(self.root)
        _run(BIN / "pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "120",
             "start", what=self)

    def stop(self) -> None:
        """A fast shutdown signalled from here: pg_ctl, as the server user, would need a
        path into pytest's directories, which another pytest session starting meanwhile
        makes private again (it resets pytest-of-<user> to 0700)."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if not _alive(pid):
                    return
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _run(*command: str | Path, what: Server | None = None) -> None:
    """A server binary, as the server user when we are root."""
    args = [str(c) for c in command]
    if AS_ROOT:
        args = ["runuser", "-u", SERVER_USER, "--", *args]
    result = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
    if result.returncode != 0:
        log = f"\nserver log:\n{what.log()}" if what is not None else ""
        pytest.fail(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}{log}")


def _let_server_user_reach(root: Path) -> None:
    """pytest makes its directories 0700 for their owner, root here: the server user may
    search (not list) the two above ours, and owns ours. Done again before each server
    start, since a pytest session starting meanwhile resets pytest-of-root to 0700."""
    if not AS_ROOT:
        return
    basetemp = root.parent
    # Only pytest's own: a --basetemp's parent is the user's business.
    ours = [basetemp.parent] if basetemp.parent.name.startswith("pytest-of-") else []
    for directory in [*ours, basetemp]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    probe = subprocess.run(["runuser", "-u", SERVER_USER, "--", "test", "-w", str(root)],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail(f"the {SERVER_USER} user cannot reach {root}; give pytest a --basetemp "
                    "under a directory it can search")


def _chown_tree(top: Path) -> None:
    if AS_ROOT:
        for directory, _, files in os.walk(top):
            shutil.chown(directory, SERVER_USER, SERVER_USER)
            for name in files:
                shutil.chown(Path(directory) / name, SERVER_USER, SERVER_USER)


def _sessions(server: Server, databases: list[str] | None = None) -> list[tuple]:
    return server.execute("postgres", """
        select datname, pid, application_name, state, backend_xid::text, left(query, 120)
        from pg_stat_activity
        where backend_type = 'client backend' and pid <> pg_backend_pid()
          and (%s::text[] is null or datname = any(%s::text[]))
        """, (databases, databases))


def _wait_for_no_sessions(server: Server, databases: list[str] | None = None) -> None:
    """Every client a test opened is gone, so none can hold a lock or a snapshot into the
    next test. Waited for: the server ends a session after the client has closed it."""
    deadline = time.monotonic() + WAIT
    while left := _sessions(server, databases):
        if time.monotonic() > deadline:
            pytest.fail(f"sessions left behind by the test: {left}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    missing = [name for name in ("initdb", "pg_ctl", "postgres", "psql", "pg_basebackup")
               if not (BIN / name).exists()]
    if missing:
        pytest.fail(f"these tests run a real PostgreSQL 15 and need {', '.join(missing)} in "
                    f"{BIN}: {INSTALL_HINT} (.ci/run does)")
    if AS_ROOT:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(f"running as root, these tests start PostgreSQL as the "
                        f"'{SERVER_USER}' user, which does not exist: {INSTALL_HINT} (it "
                        "creates the user), or run the tests as an ordinary user")
    root = tmp_path_factory.mktemp("pg")
    pg = Server(root, root / "data", 5432)
    if len(str(pg.socket_dir / ".s.PGSQL.54320")) > 107:  # sun_path's limit
        pytest.fail(f"{pg.socket_dir} is too long for a Unix socket; give pytest a "
                    "shorter --basetemp")
    for directory in (pg.socket_dir, root / "archive"):
        directory.mkdir()
    _chown_tree(root)
    _let_server_user_reach(root)
    try:
        _run(BIN / "initdb", "-D", pg.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions")
        # archive_command and (in the restored copy) restore_command run in the data
        # directory: relative paths keep working if pytest-of-root turns private again.
        # No autovacuum: its SHARE UPDATE EXCLUSIVE locks would delay LOCK IN SHARE MODE
        # (until deadlock_timeout cancels it) and its sessions in modelo can make CREATE
        # DATABASE ... TEMPLATE modelo refuse. Commit timestamps: when the writers wrote.
        with (pg.data / "postgresql.conf").open("a") as conf:
            conf.write(f"""
listen_addresses = ''
unix_socket_directories = '{pg.socket_dir}'
port = {pg.port}
wal_level = replica
fsync = off
archive_mode = on
archive_command = 'test ! -f ../archive/%f && cp %p ../archive/%f'
autovacuum = off
track_commit_timestamp = on
log_lock_waits = on
""")
        pg.start()
        with pg.connect("postgres") as conn:
            conn.execute("create database modelo")
        with pg.connect("modelo") as conn:
            conn.execute(MODEL_SQL)
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_session_left_behind(server: Server) -> Iterator[None]:
    yield
    _wait_for_no_sessions(server)


_names = count(1)


@pytest.fixture
def clone(server: Server) -> Iterator[Callable[[], str]]:
    """New databases copied from the model, for a test to change as it likes; dropped
    after it, so that the cluster-wide tests read (and back up) only a few."""
    made: list[str] = []

    def make() -> str:
        made.append(f"copia_{next(_names)}")
        # FILE_COPY: a copy of the files, not 8 MB of WAL to archive and replay per clone.
        server.execute("postgres", sql.SQL("create database {} template modelo "
                                           "strategy file_copy").format(
            sql.Identifier(made[-1])))
        return made[-1]

    yield make
    # Checked before the drop, whose FORCE would end a forgotten session unnoticed.
    if made:
        _wait_for_no_sessions(server, made)
    for name in made:
        server.execute("postgres", sql.SQL("drop database {} with (force)").format(
            sql.Identifier(name)))


def _by_name(connect: Callable[[str], psycopg.Connection], name: str,
             ) -> Callable[[str], psycopg.Connection]:
    """A connect() that reaches database `name` whatever it is asked for: two clones on
    one server as the two sides of a comparison."""
    return lambda _database: connect(name)


def _wait_for(condition: Callable[[], bool], what: str, server: Server) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WAIT:.0f} s; server log:\n{server.log()}")
        time.sleep(0.02)


def _finish(process: subprocess.Popen[str], what: str) -> None:
    """A psql client's end: it must succeed, and must not outlive the test."""
    try:
        out, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"{what} still running after {WAIT:.0f} s")
    assert process.returncode == 0, f"{what} failed: {out}{err}"


def _server_now(server: Server) -> float:
    return server.execute("postgres", "select extract(epoch from clock_timestamp())"
                                      "::float8")[0][0]


# --- fingerprints ------------------------------------------------------------------------


def test_fingerprints_cover_every_user_table_of_every_database(server: Server) -> None:
    server.execute("postgres", "create database dos")
    try:
        server.execute("dos", "create schema ventas; create table ventas.pedidos "
                              "(id bigint primary key, total numeric, etiquetas text[]); "
                              "insert into ventas.pedidos values (1, 9.99, '{a,b}'), "
                              "(2, 0, null)")
        found = fingerprint(server.connect)
        assert set(found) == {"postgres", "modelo", "dos"}  # not template0 nor template1
        assert found["postgres"] == {}
        # Not the unlogged table, the materialized view or the partitioned parent.
        assert set(found["modelo"]) == MODEL_TABLES
        assert set(found["dos"]) == {"ventas.pedidos"}
        assert found["dos"]["ventas.pedidos"].rows == 2
        rows = {table: fp.rows for table, fp in found["modelo"].items()}
        assert rows == {"public.clientes": 50, "public.eventos": 32,
                        'Ventas Año.Pedido "especial"': 18, "public.medidas_2024": 214,
                        "public.medidas_2025": 187}
        assert set(fingerprint(server.connect, exclude=["dos"])) == {"postgres", "modelo"}
        assert fingerprint(server.connect, ["dos"]) == {"dos": found["dos"]}
    finally:
        server.execute("postgres", "drop database dos with (force)")


def test_the_checksum_does_not_depend_on_the_readers_settings(
        server: Server, clone: Callable[[], str]) -> None:
    db = clone()
    before = fingerprint(server.connect, [db])
    # What a role, a database or a client's PGOPTIONS may set, and changes values' text.
    server.execute("postgres", sql.SQL(
        "alter database {} set timezone = 'America/Santiago'; "
        "alter database {} set datestyle = 'SQL, DMY'; "
        "alter database {} set extra_float_digits = 0; "
        "alter database {} set bytea_output = 'escape'").format(*[sql.Identifier(db)] * 4))
    assert server.execute(db, "select current_setting('TimeZone')") == [("America/Santiago",)]
    assert fingerprint(server.connect, [db]) == before


def test_the_checksum_is_of_the_content_not_of_where_rows_lie(server: Server,
                                                             clone: Callable[[], str]) -> None:
    db = clone()
    server.execute(db, "create table public.al_reves as "
                       "select * from public.clientes order by id desc")
    first = fingerprint(server.connect, [db])[db]
    assert first["public.al_reves"] == first["public.clientes"]
    # The same rows in other places on disk (and, for al_reves, in the opposite order).
    assert (server.execute(db, "select min(ctid) from public.al_reves where id = 1")
            != server.execute(db, "select min(ctid) from public.clientes where id = 1"))
    server.execute(db, "update public.clientes set saldo = saldo where id <= 25")
    server.execute(db, "vacuum full public.clientes")
    assert fingerprint(server.connect, [db])[db] == first
    assert first["public.clientes"] != first["public.eventos"]


@pytest.mark.parametrize("change", [
    "nombre = 'otro nombre'",                         # text
    "saldo = saldo + 0.01",                           # numeric
    "datos = jsonb_set(datos, '{n}', '0')",           # jsonb
    "foto = decode('00', 'hex')",                     # bytea
])
def test_changing_one_value_changes_only_that_tables_checksum(
        server: Server, clone: Callable[[], str], change: str) -> None:
    db = clone()
    before = fingerprint(server.connect, [db])
    server.execute(db, f"update public.clientes set {change} where id = 17")
    after = fingerprint(server.connect, [db])
    found = differences(before, after)
    assert [(d.database, d.table, d.kind) for d in found] == [(db, "public.clientes",
                                                               "checksum")]
    assert found[0].expected == before[db]["public.clientes"]
    assert found[0].actual == after[db]["public.clientes"]
    assert found[0].expected.rows == found[0].actual.rows == 50
    assert found[0].describe().startswith(f"{db}: public.clientes: 50 rows on both sides "
                                          "but the content differs")


def test_deleting_a_row_changes_the_row_count(server: Server,
                                              clone: Callable[[], str]) -> None:
    db = clone()
    before = fingerprint(server.connect, [db])
    server.execute(db, "delete from public.medidas where dia = '2025-01-01'")
    found = differences(before, fingerprint(server.connect, [db]))
    assert [(d.table, d.kind) for d in found] == [("public.medidas_2025", "rows")]
    assert found[0].describe() == (f"{db}: public.medidas_2025: 187 rows expected, "
                                   "186 restored")


def test_a_table_on_one_side_only_is_reported_missing_or_extra(
        server: Server, clone: Callable[[], str]) -> None:
    primary, restored = clone(), clone()
    server.execute(restored, "drop table public.medidas_2025; "
                             "create table public.nueva (x int); insert into public.nueva "
                             "values (1)")
    # Both clones as the same database, as the primary and its restored copy would be.
    expected = {"app": fingerprint(server.connect, [primary])[primary]}
    actual = {"app": fingerprint(server.connect, [restored])[restored]}
    found = differences(expected, actual)
    assert [(d.table, d.kind) for d in found] == [("public.medidas_2025", "missing"),
                                                  ("public.nueva", "extra")]
    assert [d.describe() for d in found] == [
        "app: public.medidas_2025: missing on the restored copy",
        "app: public.nueva: missing on the primary"]
    assert found[0].expected == expected["app"]["public.medidas_2025"]
    assert found[1].expected is None and found[1].actual is not None
    assert found[1].actual.rows == 1


def test_differences_name_tables_and_databases_missing_on_either_side() -> None:
    one, two = TableFingerprint(3, "123"), TableFingerprint(3, "-5")
    expected = {"a": {"s.t": one, "s.u": one}, "b": {"s.v": one}, "e": {}}
    actual = {"a": {"s.t": one, "s.w": two}, "c": {"s.x": two}}
    assert differences(expected, actual) == [
        TableDifference("a", "s.u", one, None),
        TableDifference("a", "s.w", None, two),
        TableDifference("b", "s.v", one, None),
        TableDifference("c", "s.x", None, two),
    ]
    assert [d.kind for d in differences(expected, actual)] == ["missing", "extra",
                                                               "missing", "extra"]
    assert differences(expected, expected) == []
    assert differences({"a": {"s.t": one}}, {"a": {"s.t": two}})[0].kind == "checksum"


# --- differing rows ----------------------------------------------------------------------


def test_differing_rows_names_the_changed_missing_and_extra_keys(
        server: Server, clone: Callable[[], str]) -> None:
    primary, restored = clone(), clone()
    server.execute(restored, "update public.clientes set saldo = 0 where id = 2; "
                             "delete from public.clientes where id = 3; "
                             "insert into public.clientes (id, nombre) values (99, 'nuevo')")
    diff = differing_rows(_by_name(server.connect, primary), _by_name(server.connect, restored),
                          "proyecto_db", "public.clientes")
    assert (diff.primary_key, diff.missing, diff.extra, diff.changed) == (("id",), 1, 1, 1)
    assert [(r.kind, r.key) for r in diff.rows] == [("changed", "2"), ("missing", "3"),
                                                    ("extra", "99")]
    changed, missing, extra = diff.rows
    assert (changed.expected or "").startswith("(2,\"cliente 2\",20.50,")
    assert (changed.actual or "").startswith("(2,\"cliente 2\",0.00,")
    assert (missing.expected or "").startswith("(3,") and missing.actual is None
    assert extra == DifferingRow("extra", "99", None, '(99,nuevo,,,)')
    assert not diff.truncated and not diff.same


def test_differing_rows_matches_a_composite_key_under_quoted_names(
        server: Server, clone: Callable[[], str]) -> None:
    primary, restored = clone(), clone()
    table = sql.Identifier("Ventas Año", 'Pedido "especial"')
    server.execute(restored, sql.SQL("update {} set total = -1 where cliente = 2 "
                                     "and linea = 'línea 1'").format(table))
    diff = differing_rows(_by_name(server.connect, primary), _by_name(server.connect, restored),
                          primary, 'Ventas Año.Pedido "especial"')
    assert diff.primary_key == ("cliente", "linea")
    assert diff.rows == (DifferingRow("changed", '(2,"línea 1")', '(2,"línea 1",10.5)',
                                      '(2,"línea 1",-1)'),)
    same = differing_rows(_by_name(server.connect, primary), _by_name(server.connect, primary),
                          primary, 'Ventas Año.Pedido "especial"')
    assert same.same and same.rows == ()


def test_differing_rows_without_a_primary_key_compares_rows_as_a_multiset(
        server: Server, clone: Callable[[], str]) -> None:
    primary, restored = clone(), clone()
    # One of the two copies of the first hour's row goes, both of the second's, and a row
    # appears that the primary never had.
    server.execute(restored, """
        delete from public.eventos where ctid = (select min(ctid) from public.eventos
                                                 where at = '2024-01-01 01:00+00');
        delete from public.eventos where at = '2024-01-01 02:00+00';
        insert into public.eventos values ('2030-01-01 00:00+00', 'nuevo', 1);
    """)
    diff = differing_rows(_by_name(server.connect, primary), _by_name(server.connect, restored),
                          primary, "public.eventos")
    assert (diff.primary_key, diff.missing, diff.extra, diff.changed) == ((), 3, 1, 0)
    rows = sorted((r.kind, r.copies, r.expected or r.actual) for r in diff.rows)
    assert rows == [("extra", 1, '("2030-01-01 00:00:00+00",nuevo,1)'),
                    ("missing", 1, '("2024-01-01 01:00:00+00",alta,0.14285714285714285)'),
                    ("missing", 2, '("2024-01-01 02:00:00+00",alta,0.2857142857142857)')]
    assert all(r.key is None for r in diff.rows)


def test_differing_rows_shows_at_most_limit_rows_and_counts_them_all(
        server: Server, clone: Callable[[], str]) -> None:
    primary, restored = clone(), clone()
    server.execute(restored, "insert into public.clientes (id, nombre) "
                             "select g, 'extra' from generate_series(100, 129) g")
    diff = differing_rows(_by_name(server.connect, primary), _by_name(server.connect, restored),
                          primary, "public.clientes", limit=5)
    assert (diff.extra, len(diff.rows), diff.truncated) == (30, 5, True)
    assert [r.key for r in diff.rows] == ["100", "101", "102", "103", "104"]


def test_differing_rows_compares_a_table_absent_on_one_side_as_empty(
        server: Server, clone: Callable[[], str]) -> None:
    primary, restored = clone(), clone()
    server.execute(restored, "drop table public.clientes")
    diff = differing_rows(_by_name(server.connect, primary), _by_name(server.connect, restored),
                          primary, "public.clientes", limit=3)
    assert (diff.missing, diff.extra, diff.changed, diff.truncated) == (50, 0, 0, True)
    assert [(r.kind, r.key) for r in diff.rows] == [("missing", "1"), ("missing", "10"),
                                                    ("missing", "11")]  # in text order
    backwards = differing_rows(_by_name(server.connect, restored),
                               _by_name(server.connect, primary), primary, "public.clientes")
    assert (backwards.primary_key, backwards.extra) == (("id",), 50)
    with pytest.raises(LookupError, match=r"no table public\.nada"):
        differing_rows(server.connect, server.connect, primary, "public.nada")


def test_differing_rows_reads_the_expected_side_in_the_restore_points_snapshot(
        server: Server, clone: Callable[[], str]) -> None:
    db = clone()
    with restore_point_snapshots(server.connect, "antes-del-alta", databases=[db]) as point:
        server.execute(db, "insert into public.clientes (id, nombre) values (1000, 'después')")
        assert point.fingerprints()[db]["public.clientes"].rows == 50  # still as it was
        then = differing_rows(server.connect, server.connect, db, "public.clientes",
                              expected=point.snapshots[db])
        assert [(r.kind, r.key) for r in then.rows] == [("extra", "1000")]
        with server.connect(db) as idle, pytest.raises(ValueError, match="inside the "
                                                                      "transaction"):
            differing_rows(server.connect, server.connect, db, "public.clientes",
                           expected=idle)
    assert differing_rows(server.connect, server.connect, db, "public.clientes").same


# --- at a restore point, with writers ----------------------------------------------------


@dataclass
class Writers:
    """`count` psql clients inserting into public.escrituras (one bigserial column) as
    fast as WRITER_SQL goes, for as long as `_gate` holds the advisory lock GATE."""

    server: Server
    database: str
    count: int = 6
    _gate: psycopg.Connection | None = None
    _clients: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self) -> Writers:
        self.server.execute(self.database, "create table public.escrituras "
                                           "(id bigserial primary key)")
        self._gate = self.server.connect(self.database)
        self._gate.execute("select pg_advisory_lock(%s)", (GATE,))
        self._clients = [self.server.psql(self.database, WRITER_SQL, f"escritor-{n}")
                         for n in range(self.count)]
        # Under way, every one of them, before any cut.
        self.wait_for_more_than(10 * self.count)
        _wait_for(lambda: len(self.server.execute(self.database, """
            select distinct application_name from pg_stat_activity
            where application_name like 'escritor-%' and state = 'active'
            """)) == self.count, "the writers never all ran", self.server)
        return self

    def rows(self) -> int:
        return self.server.execute(self.database,
                                   "select count(*) from public.escrituras")[0][0]

    def wait_for_more_than(self, rows: int) -> None:
        _wait_for(lambda: self.rows() > rows, f"the writers never went past {rows} rows",
                  self.server)

    def commits_after(self, moment: float) -> int:
        return self.server.execute(self.database, """
            select count(*) from public.escrituras
            where pg_xact_commit_timestamp(xmin) > to_timestamp(%s)
            """, (moment,))[0][0]

    def stop(self) -> None:
        if self._gate is not None:
            self._gate.close()  # releases GATE: each writer leaves its loop
        for n, client in enumerate(self._clients):
            _finish(client, f"writer {n}")


def _assert_exactly_ids_up_to_its_count(server: Server, found: TableFingerprint) -> None:
    # Exactly ids 1..N: a transaction still in flight at the snapshot would leave a gap.
    exact = tuple(server.execute("postgres", PREFIX_SQL, (found.rows,))[0])
    assert (found.rows, found.checksum) == exact, "not ids 1..N: not a cut between commits"


def test_without_the_locks_a_snapshot_of_these_writers_shows_gaps(
        server: Server, clone: Callable[[], str]) -> None:
    """The control for the test after it: a plain snapshot, which compare does not take,
    catches these writers between an id committed and a smaller one still in flight, so
    an exact cut there is no accident of timing."""
    db = clone()
    writers = Writers(server, db).start()
    gaps = 0
    try:
        for _ in range(40):
            rows, highest = server.execute(db, "select count(*), max(id) "
                                               "from public.escrituras")[0]
            gaps += rows != highest
            if gaps >= 3:
                break
    finally:
        writers.stop()
    assert gaps >= 3


def test_under_concurrent_writers_the_fingerprint_is_an_exact_cut(
        server: Server, clone: Callable[[], str]) -> None:
    db = clone()
    writers = Writers(server, db).start()
    counts = []
    try:
        # Eleven cuts with the last: a plain snapshot shows a gap about a third of the
        # time with these writers, so all of them exact is no accident.
        for n in range(10):
            with restore_point_snapshots(server.connect, f"corte-{n}") as point:
                lsn = point.lsn
                cut = point.fingerprints()
                counts.append(cut[db]["public.escrituras"].rows)
                # The locks went at the restore point, not at the end of the block: the
                # writers commit again while the snapshots are still open...
                writers.wait_for_more_than(counts[-1])
                # ...which still read the cut, not what was written since.
                assert point.fingerprints() == cut
            assert server.execute("postgres", "select pg_current_wal_lsn() >= %s::pg_lsn",
                                  (lsn,)) == [(True,)]
            assert set(cut) == {"postgres", "modelo", db}
            assert set(cut[db]) == MODEL_TABLES | {"public.escrituras"}
            _assert_exactly_ids_up_to_its_count(server, cut[db]["public.escrituras"])
        _, last = fingerprint_at_restore_point(server.connect, "corte-final")
        returned = _server_now(server)
        _assert_exactly_ids_up_to_its_count(server, last[db]["public.escrituras"])
        counts.append(last[db]["public.escrituras"].rows)
        # The writers resume after the call, too.
        _wait_for(lambda: writers.commits_after(returned) > 0,
                  "no write committed after fingerprint_at_restore_point returned", server)
    finally:
        writers.stop()
    assert counts == sorted(set(counts)) and counts[0] > 0  # written throughout
    assert counts[-1] < writers.rows()


def test_a_write_in_flight_is_waited_for_and_then_included(
        server: Server, clone: Callable[[], str]) -> None:
    db = clone()
    holder = server.psql(db, HOLDER_SQL, "en-vuelo")
    try:
        # Its insert holds the table before compare comes: else LOCK would be first.
        _wait_for(lambda: server.execute(db, """
            select count(*) from pg_locks l join pg_stat_activity a using (pid)
            where a.application_name = 'en-vuelo' and l.granted
              and l.relation = 'public.clientes'::regclass and l.mode = 'RowExclusiveLock'
            """) == [(1,)], "the write in flight never started", server)
        _, found = fingerprint_at_restore_point(server.connect, "espera", databases=[db])
    finally:
        # It committed only after compare's LOCK had queued behind it.
        _finish(holder, "the write in flight")
    assert found[db]["public.clientes"].rows == 51
    assert found == fingerprint(server.connect, [db])  # the write, and nothing else


def test_a_lock_that_cannot_be_had_fails_cleanly_and_lets_writers_go(
        server: Server, clone: Callable[[], str]) -> None:
    free, held = clone(), clone()
    holder = server.connect(held)
    holder.execute("begin")
    holder.execute("delete from public.eventos where tipo = 'baja'")
    started = time.monotonic()
    try:
        with pytest.raises(ClusterStateError,
                           match=f"{held}: could not lock .* lock_timeout=200ms"):
            fingerprint_at_restore_point(server.connect, "imposible", databases=[free, held],
                                         lock_timeout="200ms")
        # Well short of the default lock_timeout of 5 s: the one given was used.
        assert time.monotonic() - started < 4.0
        # The first database's locks went with the failure: a writer gets in (a leaked
        # SHARE lock would make it wait for ever).
        server.execute(free, "set lock_timeout = '10s'; "
                             "insert into public.clientes (id, nombre) values (600, 'libre')")
    finally:
        holder.execute("rollback")
        holder.close()


def test_a_restore_point_name_postgresql_would_refuse_fails_before_locking() -> None:
    def connect(_database: str) -> psycopg.Connection:
        raise AssertionError("connected")
    with pytest.raises(ValueError, match="longer than 63 bytes"):
        fingerprint_at_restore_point(connect, "ñ" * 32)


def test_a_restore_to_the_restore_point_has_exactly_the_fingerprinted_content(
        server: Server, clone: Callable[[], str]) -> None:
    """The drill in miniature: a base backup, writers, the restore point taken under them,
    writers going on after it; a point-in-time restore of the backup to the restore point
    must fingerprint exactly as fingerprint_at_restore_point said."""
    db = clone()
    backup = server.root / "restored"
    # As root, which needs no path into pytest's directories; handed over below.
    subprocess.run([str(BIN / "pg_basebackup"), "-h", str(server.socket_dir), "-p",
                    str(server.port), "-U", "postgres", "-D", str(backup), "-X", "stream",
                    "-c", "fast", "--no-sync"], check=True, capture_output=True,
                   timeout=180)
    writers = Writers(server, db).start()
    try:
        lsn, expected = fingerprint_at_restore_point(server.connect, "simulacro")
        writers.wait_for_more_than(expected[db]["public.escrituras"].rows)
    finally:
        writers.stop()
    written = writers.rows()
    segment = server.execute("postgres", "select pg_walfile_name(%s::pg_lsn)", (lsn,))[0][0]
    server.execute("postgres", "select pg_switch_wal()")
    _wait_for(lambda: server.execute("postgres", "select coalesce(last_archived_wal, '') "
                                                 "from pg_stat_archiver")[0][0] >= segment,
              f"{segment} never archived", server)

    restored = Server(server.root, backup, server.port + 1)
    # Paused at the target: a standby there, then promoted.
    with (backup / "postgresql.conf").open("a") as conf:
        conf.write(f"""
port = {restored.port}
archive_mode = off
restore_command = 'cp ../archive/%f %p'
recovery_target_name = 'simulacro'
recovery_target_action = 'pause'
""")
    (backup / "recovery.signal").touch()
    _chown_tree(backup)
    restored.start()
    try:
        _wait_for(lambda: restored.execute("postgres", "select pg_get_wal_replay_pause_state()")
                  == [("paused",)], "recovery never paused at the restore point", restored)
        actual = fingerprint(restored.connect)
        assert differences(expected, actual) == []
        assert actual[db]["public.escrituras"].rows < written  # not just "all"
        # The restore point is the primary's to make.
        with pytest.raises(ClusterStateError, match="in recovery"):
            fingerprint_at_restore_point(restored.connect, "en-el-standby")

        restored.execute("postgres", "select pg_wal_replay_resume()")
        _wait_for(lambda: restored.execute("postgres", "select pg_is_in_recovery()")
                  == [(False,)], "the restored copy never left recovery", restored)
        assert fingerprint(restored.connect) == actual
        # A broken restore is caught, with the table and the row.
        restored.execute(db, "delete from public.clientes where id = 7")
        found = differences(expected, fingerprint(restored.connect))
        assert [(d.database, d.table, d.kind) for d in found] == [(db, "public.clientes",
                                                                   "rows")]
        diff = differing_rows(server.connect, restored.connect, db, "public.clientes")
        assert [(r.kind, r.key) for r in diff.rows] == [("missing", "7")]
        _wait_for_no_sessions(restored)
    finally:
        restored.stop()
