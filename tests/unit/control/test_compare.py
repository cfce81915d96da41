"""The restore drill's comparison (pgcluster.control.compare) against a real PostgreSQL 15:
a throwaway cluster in a temporary directory, started for this module and stopped after
it. Fingerprints cover every user table and only those, change with one value of any
type, and say which rows differ; taken at a restore point under concurrent writers, they
are exactly what a point-in-time restore to it holds (checked by restoring one)."""

from __future__ import annotations

import os
import pwd
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count, pairwise
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

# The rows a table holding only ids 1..N must have, fingerprinted as compare does.
PREFIX_SQL = """
select count(*), coalesce(sum(('x' || substr(md5(row(g)::text), 1, 16))
                              ::bit(64)::bigint::numeric), 0)::text
from generate_series(1::bigint, %s) g
"""


@dataclass
class Server:
    root: Path
    data: Path
    port: int

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def connect(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                               dbname=dbname, autocommit=True)

    def execute(self, dbname: str, query: str | sql.Composable,
                params: tuple | None = None) -> list:
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def start(self) -> None:
        _run(BIN / "pg_ctl", "-D", self.data, "-l", self.root / f"log-{self.port}",
             "-w", "-t", "30", "start")

    def stop(self) -> None:
        _run(BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    def log(self) -> str:
        path = self.root / f"log-{self.port}"
        return path.read_text()[-3000:] if path.exists() else ""


def _run(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    """A server binary, as the postgres user when we are root (postgres will not run as
    root)."""
    args = [str(c) for c in command]
    if AS_ROOT:
        args = ["runuser", "-u", "postgres", "--", *args]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def _give_to_postgres(*paths: Path) -> None:
    if AS_ROOT:
        for path in paths:
            shutil.chown(path, "postgres", "postgres")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if not (BIN / "postgres").exists() or not (BIN / "initdb").exists():
        pytest.fail(f"these tests run a real PostgreSQL 15 and need its server binaries in "
                    f"{BIN}: install Debian's postgresql-15 (apt-get install postgresql-15)")
    if AS_ROOT:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, these tests start PostgreSQL as the 'postgres' "
                        "user, which does not exist: install Debian's postgresql-15 (it "
                        "creates it) or run the tests as an ordinary user")
    # Short, in /tmp (not pytest's root-only tmp_path), so postgres can use it and the
    # socket path stays under the 107 characters a Unix socket allows.
    root = Path(tempfile.mkdtemp(prefix="pgc-compare-"))
    (root / "sock").mkdir()
    (root / "archive").mkdir()
    _give_to_postgres(root, root / "sock", root / "archive")
    pg = Server(root, root / "data", 5432)
    try:
        _run(BIN / "initdb", "-D", pg.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions")
        with (pg.data / "postgresql.conf").open("a") as conf:
            conf.write(f"""
listen_addresses = ''
unix_socket_directories = '{pg.socket_dir}'
port = {pg.port}
wal_level = replica
fsync = off
archive_mode = on
archive_command = 'test ! -f {root}/archive/%f && cp %p {root}/archive/%f'
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
    for name in made:
        server.execute("postgres", sql.SQL("drop database {} with (force)").format(
            sql.Identifier(name)))


def _by_name(connect: Callable[[str], psycopg.Connection], name: str,
             ) -> Callable[[str], psycopg.Connection]:
    """A connect() that reaches database `name` whatever it is asked for: two clones on
    one server as the two sides of a comparison."""
    return lambda _database: connect(name)


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


def test_deleting_a_row_changes_the_row_count(server: Server,
                                              clone: Callable[[], str]) -> None:
    db = clone()
    before = fingerprint(server.connect, [db])
    server.execute(db, "delete from public.medidas where dia = '2025-01-01'")
    found = differences(before, fingerprint(server.connect, [db]))
    assert [(d.table, d.kind) for d in found] == [("public.medidas_2025", "rows")]
    assert found[0].describe() == (f"{db}: public.medidas_2025: 187 rows expected, "
                                   "186 restored")


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
    assert changed.expected.startswith("(2,\"cliente 2\",20.50,")
    assert changed.actual.startswith("(2,\"cliente 2\",0.00,")
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
    """Threads inserting into `table` (one bigserial column) as fast as they can, each
    transaction held open a moment after its insert so that commits interleave: taken
    without the locks, a snapshot would often see an id committed but not a smaller one
    still in flight."""

    server: Server
    database: str
    table: str = "public.escrituras"
    threads: int = 6
    acks: list[tuple[int, float]] = field(default_factory=list)  # id, monotonic time
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Writers:
        self.server.execute(self.database, f"create table {self.table} "
                                           "(id bigserial primary key)")
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def _run(self) -> None:
        try:
            with self.server.connect(self.database) as conn:
                while not self._stop.is_set():
                    with conn.transaction():
                        row = conn.execute(f"insert into {self.table} default values "
                                           "returning id").fetchone()
                        time.sleep(random.uniform(0.001, 0.005))
                    with self._lock:
                        self.acks.append((row[0], time.monotonic()))
                    time.sleep(0.001)
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(timeout=10)
        assert not self.errors, self.errors

    def longest_pause(self) -> float:
        times = sorted(at for _, at in self.acks)
        return max((b - a for a, b in pairwise(times)), default=0.0)


def _lsn_at_or_before_current(server: Server, lsn: str) -> bool:
    return server.execute("postgres", "select pg_current_wal_lsn() >= %s::pg_lsn",
                          (lsn,))[0][0]


def test_under_concurrent_writers_the_fingerprint_is_an_exact_cut(
        server: Server, clone: Callable[[], str]) -> None:
    db = clone()
    writers = Writers(server, db).start()
    cuts = []
    try:
        time.sleep(0.2)
        # Several cuts: a snapshot taken without the locks shows a gap about a third of
        # the time with these writers, so all of them exact is no accident.
        for n in range(6):
            cuts.append(fingerprint_at_restore_point(server.connect, f"corte-{n}"))
            time.sleep(0.05)
        returned = time.monotonic()
        time.sleep(0.2)
    finally:
        writers.stop()
    for lsn, found in cuts:
        assert _lsn_at_or_before_current(server, lsn)
        assert set(found[db]) == MODEL_TABLES | {"public.escrituras"}
        written = found[db]["public.escrituras"]
        # Exactly ids 1..N: a transaction still in flight at the snapshot would leave a gap.
        expected = server.execute(db, PREFIX_SQL, (written.rows,))[0]
        assert (written.rows, written.checksum) == expected
    counts = [found[db]["public.escrituras"].rows for _, found in cuts]
    assert 0 < counts[0] < counts[-1] < len(writers.acks)  # the writers wrote throughout
    assert any(at > returned for _, at in writers.acks)  # and resumed after the last cut
    assert writers.longest_pause() < 2.0


def test_a_write_in_flight_is_waited_for_and_then_included(
        server: Server, clone: Callable[[], str]) -> None:
    db = clone()
    holder = server.connect(db)
    holder.execute("begin")
    holder.execute("insert into public.clientes (id, nombre) values (500, 'en vuelo')")
    committer = threading.Timer(0.5, lambda: holder.execute("commit"))
    committer.start()
    started = time.monotonic()
    try:
        _, found = fingerprint_at_restore_point(server.connect, "espera", databases=[db])
    finally:
        committer.join()
        holder.close()
    assert time.monotonic() - started >= 0.45
    assert found[db]["public.clientes"].rows == 51


def test_a_lock_that_cannot_be_had_fails_cleanly_and_lets_writers_go(
        server: Server, clone: Callable[[], str]) -> None:
    free, held = clone(), clone()
    holder = server.connect(held)
    holder.execute("begin")
    holder.execute("delete from public.eventos where tipo = 'baja'")
    started = time.monotonic()
    try:
        with pytest.raises(ClusterStateError, match=f"{held}: could not lock"):
            fingerprint_at_restore_point(server.connect, "imposible", databases=[free, held],
                                         lock_timeout="200ms")
        assert time.monotonic() - started < 2.0
        # The first database's locks went with the failure: a writer gets in at once.
        server.execute(free, "set lock_timeout = '1s'; "
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
    _run(BIN / "pg_basebackup", "-h", server.socket_dir, "-p", str(server.port),
         "-U", "postgres", "-D", backup, "-X", "stream", "-c", "fast", "--no-sync")
    writers = Writers(server, db).start()
    try:
        time.sleep(0.2)
        lsn, expected = fingerprint_at_restore_point(server.connect, "simulacro")
        time.sleep(0.2)
    finally:
        writers.stop()
    segment = server.execute("postgres", "select pg_walfile_name(%s::pg_lsn)", (lsn,))[0][0]
    server.execute("postgres", "select pg_switch_wal()")
    deadline = time.monotonic() + 15
    while (server.execute("postgres", "select coalesce(last_archived_wal, '') "
                                      "from pg_stat_archiver")[0][0] < segment):
        assert time.monotonic() < deadline, f"{segment} never archived:\n{server.log()}"
        time.sleep(0.05)

    restored = Server(server.root, backup, server.port + 1)
    with (backup / "postgresql.conf").open("a") as conf:
        conf.write(f"""
port = {restored.port}
archive_mode = off
restore_command = 'cp {server.root}/archive/%f %p'
recovery_target_name = 'simulacro'
recovery_target_action = 'promote'
""")
    (backup / "recovery.signal").touch()
    _give_to_postgres(backup / "recovery.signal")
    restored.start()
    try:
        deadline = time.monotonic() + 20
        while restored.execute("postgres", "select pg_is_in_recovery()")[0][0]:
            assert time.monotonic() < deadline, f"recovery never ended:\n{restored.log()}"
            time.sleep(0.05)
        actual = fingerprint(restored.connect)
        assert differences(expected, actual) == []
        assert actual[db]["public.escrituras"].rows < len(writers.acks)  # not just "all"

        # A broken restore is caught, with the table and the row.
        restored.execute(db, "delete from public.clientes where id = 7")
        found = differences(expected, fingerprint(restored.connect))
        assert [(d.database, d.table, d.kind) for d in found] == [(db, "public.clientes",
                                                                   "rows")]
        diff = differing_rows(server.connect, restored.connect, db, "public.clientes")
        assert [(r.kind, r.key) for r in diff.rows] == [("missing", "7")]
    finally:
        restored.stop()
