"""The comparison at the heart of the restore drill: the primary's content as of a restore
point, the restored copy's content, and what differs between them.

A restore drill proves that a backup restores to exactly what the primary held. It makes a
restore point, restores the newest backup up to it on a scratch node and compares every
table of every database: `fingerprint_at_restore_point` reads the primary as of the
restore point while applications keep writing, `fingerprint` reads the restored copy,
`differences` names the tables that differ and `differing_rows` the rows.

A fingerprint is a table's row count and an order-independent checksum of its rows' text
(see TableFingerprint), so both sides are compared without moving the data; only for a
table that differs are its rows read, to say which.

What is compared: every permanent ordinary table (and partition) outside pg_catalog,
information_schema and the TOAST and temporary schemas, in every database that accepts
connections but template0 and template1. Unlogged and temporary tables are not in a
backup (a restore has them empty or not at all), nor are materialized views (derived),
foreign tables (elsewhere), sequences (not transactional) or large objects (in
pg_catalog); partitioned tables hold no rows of their own, so their partitions are the
tables compared. A database's absence counts as having no tables: an empty database
cannot differ.

The connections come from a `connect(dbname)` callable that opens a connection to one
database of one server (the caller knows hosts, ports, TLS and passwords; this module only
SQL). It needs a superuser on the primary (pg_create_restore_point, LOCK on every table)
and read access to every table on the restored copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal

import psycopg
from psycopg import errors, sql

from pgcluster.errors import ClusterStateError

Connect = Callable[[str], psycopg.Connection]
Fingerprints = dict[str, dict[str, "TableFingerprint"]]  # database -> "schema.table" -> ...

# Every database but the two templates of initdb (template0 refuses connections anyway).
DATABASES_SQL = """
select datname from pg_database
where datallowconn and datname not in ('template0', 'template1')
order by datname
"""

# The tables a physical backup restores with their content (see the module docstring), in
# oid order: a stable order to lock them in. relkind 'p' (partitioned) is locked, so that
# no writer routes rows through it, but holds no rows to fingerprint.
TABLES_SQL = """
select n.nspname, c.relname, c.relkind::text
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and c.relpersistence = 'p'
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp_'
order by c.oid
"""

# A table by its "schema.table" key, as the fingerprints name it.
TABLE_SQL = """
select c.oid, n.nspname, c.relname
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname || '.' || c.relname = %s
"""

PRIMARY_KEY_SQL = """
select a.attname
from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
where i.indrelid = %s and i.indisprimary
order by array_position(i.indkey::int2[], a.attnum)
"""

# The text of a value depends on a few settings (dates, time zone, intervals, floats,
# bytea, money, regclass names resolved through search_path): both sides of a comparison
# read with the same ones, whatever the server, the database or the role configure.
OUTPUT_SETTINGS = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "pg_catalog",
}

# A database whose table list moves under the lock (a table created or dropped between
# listing and locking it) is tried again; more than this many times is an error.
LOCK_ATTEMPTS = 3


@dataclass(frozen=True)
class TableFingerprint:
    """A table's content in two values: how many rows, and the sum of a 64-bit hash of
    each row's text (the first 16 hex digits of md5(row::text) as a signed integer,
    summed as numeric so that it never overflows).

    A sum does not depend on the order the rows are read in, so two copies with their rows
    in different places (a restore, a VACUUM FULL) agree, and equal rows count as often as
    they occur. The text of a row (PostgreSQL's output of the composite value, as
    `select t::text` shows it) is defined for every type, including those without an
    equality operator (json, point, xml), and is the same on both sides of a physical
    restore of the same major version: the same bytes read by the same output functions
    with the same settings (OUTPUT_SETTINGS). It is a check against accidents (a missing
    WAL file, a torn page, a wrong restore target), not against someone crafting rows
    with colliding hashes.
    """

    rows: int
    checksum: str


@dataclass(frozen=True)
class TableDifference:
    """One table whose content differs: `expected` is the primary's fingerprint as of the
    restore point, `actual` the restored copy's; None where the table is absent."""

    database: str
    table: str  # "schema.table"
    expected: TableFingerprint | None
    actual: TableFingerprint | None

    @property
    def kind(self) -> Literal["missing", "extra", "rows", "checksum"]:
        """missing: not in the restored copy; extra: only there; rows: another row count;
        checksum: as many rows, other content."""
        if self.actual is None:
            return "missing"
        if self.expected is None:
            return "extra"
        return "rows" if self.expected.rows != self.actual.rows else "checksum"

    def describe(self) -> str:
        """One line for a report or an error message."""
        where = f"{self.database}: {self.table}"
        if self.expected is None or self.actual is None:
            side = "restored copy" if self.actual is None else "primary"
            return f"{where}: missing on the {side}"
        if self.kind == "rows":
            return f"{where}: {self.expected.rows} rows expected, {self.actual.rows} restored"
        return (f"{where}: {self.expected.rows} rows on both sides but the content differs "
                f"(checksum {self.expected.checksum} expected, {self.actual.checksum} "
                "restored)")


@dataclass(frozen=True)
class DifferingRow:
    """A row that differs, as text. `key` is its primary key as text ("42", or "(1,a)" for
    a key of several columns); None for a table without one, where `copies` says how many
    more copies of this exact row one side has than the other."""

    kind: Literal["missing", "extra", "changed"]
    key: str | None
    expected: str | None  # the row on the expected side (None when it is extra)
    actual: str | None  # the row on the actual side (None when it is missing)
    copies: int = 1


@dataclass(frozen=True)
class RowDiff:
    """Which rows of a table differ. The counts cover the whole table; `rows` shows the
    first `limit` of them (in key order, or in hash order without a primary key) and
    `truncated` says whether there are more."""

    database: str
    table: str
    primary_key: tuple[str, ...]  # its columns; () when the table has no primary key
    missing: int  # rows only on the expected side (copies, without a primary key)
    extra: int  # rows only on the actual side
    changed: int  # keys on both sides with other content (always 0 without a primary key)
    rows: tuple[DifferingRow, ...] = field(default=())
    truncated: bool = False

    @property
    def same(self) -> bool:
        return not (self.missing or self.extra or self.changed)


@dataclass
class RestorePoint:
    """A restore point and, per database, a connection whose open transaction sees exactly
    the content that a restore to that point must have (see restore_point_snapshots)."""

    name: str
    lsn: str
    snapshots: dict[str, psycopg.Connection]
    tables: dict[str, list[tuple[str, str]]]  # database -> (schema, table) to fingerprint

    def fingerprints(self) -> Fingerprints:
        """Every table's fingerprint in its snapshot; any number of times, as long as the
        snapshots are open."""
        return {database: _fingerprint_tables(conn, self.tables[database])
                for database, conn in self.snapshots.items()}


@contextmanager
def restore_point_snapshots(connect: Connect, name: str, *,
                            databases: Iterable[str] | None = None,
                            exclude: Iterable[str] = (), lock_timeout: str = "5s",
                            maintenance_db: str = "postgres") -> Iterator[RestorePoint]:
    """Make the restore point `name` on the primary and hold, per database, a snapshot of
    exactly the content a restore to it must have, even while applications write; the
    snapshots stay open until the block exits (for differing_rows' `expected`).

    How, per database (`databases`, by default every one that accepts connections but
    template0 and template1; never those in `exclude`): a first connection begins a REPEATABLE
    READ transaction, locks every table IN SHARE MODE and exports its snapshot
    (pg_export_snapshot); a second begins REPEATABLE READ READ ONLY, takes ACCESS SHARE
    locks on the same tables and imports that snapshot (SET TRANSACTION SNAPSHOT). With
    every database locked and snapshotted, pg_create_restore_point(name) writes the
    restore point (one WAL record for the whole cluster), and only then do the first
    connections commit, so that writers resume.

    Why it is exact. SHARE conflicts with ROW EXCLUSIVE, the lock every INSERT, UPDATE,
    DELETE, MERGE and COPY FROM takes on its table until its transaction ends: LOCK waits
    for the writers that hold it to end, and makes new ones wait until it is released.
    A transaction releases its locks only after its commit record is in the WAL and it has
    left the proc array (also when it waits for a synchronous standby, still holding its
    locks), so the snapshot, taken once every lock is held, sees every transaction that
    wrote these tables and committed so far: all with commit records before the restore
    point, which is written later. No transaction can write them between the snapshot and
    the restore point, since the locks are held until after it: every transaction not in
    the snapshot commits after the restore point, so a restore to it does not have it
    either. A database locked first just waits longer for the restore point; its content
    cannot move meanwhile. The second connection's ACCESS SHARE locks, taken before the
    SHARE locks and held until the block exits, keep a TRUNCATE, DROP or ALTER TABLE (none
    of them MVCC-safe) from changing what the snapshot reads later.

    What it costs. Writes to user tables wait while the SHARE locks are held: normally a
    few milliseconds, from the first database's LOCK to the restore point. A write
    transaction already running when LOCK comes delays it (and the writers queued behind
    it) up to `lock_timeout`, after which this fails with ClusterStateError and writers
    resume; a prepared transaction (pg_prepared_xacts) always does. A writer holding
    one table while it waits for another that LOCK already holds can make the deadlock
    detector cancel one of the two, normally LOCK (tried again here). DDL that needs ACCESS
    EXCLUSIVE (DROP, TRUNCATE, most ALTER TABLE, VACUUM FULL, CLUSTER) waits until the
    block exits, and queues later readers and writers of that table behind it. The open
    snapshots hold back VACUUM's horizon on the primary for as long as the block lasts, so
    keep it short. Two connections per database (plus one to `maintenance_db`) and locks
    on every table: many thousands of tables may need a larger max_locks_per_transaction.

    What it cannot see: a table or database created (and committed) in the milliseconds
    between its database's snapshot and the restore point is in the restore but not in the
    fingerprints; `differences` reports it as extra, and a drill run again passes.
    """
    if len(name.encode()) > 63:
        raise ValueError(f"restore point name {name!r} is longer than 63 bytes")
    maintenance = _connect(connect, maintenance_db)
    lockers: list[psycopg.Connection] = []
    snapshots: dict[str, psycopg.Connection] = {}
    tables: dict[str, list[tuple[str, str]]] = {}
    try:
        _check_can_make_restore_points(maintenance)
        skip = set(exclude)
        if databases is None:
            databases = [row[0] for row in maintenance.execute(DATABASES_SQL)]
        for database in [d for d in databases if d not in skip]:
            locker, reader, names = _lock_and_snapshot(connect, database, lock_timeout)
            lockers.append(locker)
            snapshots[database] = reader
            tables[database] = names
        row = maintenance.execute("select pg_create_restore_point(%s)::text",
                                  (name,)).fetchone()
        assert row is not None
        lsn = row[0]
        for locker in lockers:
            locker.execute("commit")
        _close(lockers)
        lockers = []
        yield RestorePoint(name, lsn, snapshots, tables)
    finally:
        _close([*lockers, *snapshots.values(), maintenance])


def fingerprint_at_restore_point(connect: Connect, name: str, *,
                                 databases: Iterable[str] | None = None,
                                 exclude: Iterable[str] = (), lock_timeout: str = "5s",
                                 maintenance_db: str = "postgres",
                                 ) -> tuple[str, Fingerprints]:
    """Make the restore point `name` on the primary and return its LSN (as text) with the
    fingerprint of every table of every database (database -> "schema.table" ->
    TableFingerprint) exactly as a restore to that point must have them, while
    applications keep writing. `connect(dbname)` opens a connection to the primary.

    The method, why it is exact and what it costs are restore_point_snapshots'; the
    snapshots are released as soon as the fingerprints are computed (which takes as long
    as reading every table, without blocking writers).
    """
    with restore_point_snapshots(connect, name, databases=databases, exclude=exclude,
                                 lock_timeout=lock_timeout,
                                 maintenance_db=maintenance_db) as point:
        return point.lsn, point.fingerprints()


def fingerprint(connect: Connect, databases: Iterable[str] | None = None, *,
                exclude: Iterable[str] = (),
                maintenance_db: str = "postgres") -> Fingerprints:
    """Every table's fingerprint on a server that is not changing (the restored copy):
    one REPEATABLE READ READ ONLY transaction per database, so each database is read
    consistently even if something does write. `databases` defaults to every database
    that accepts connections but template0, template1 and `exclude`."""
    skip = set(exclude)
    if databases is None:
        with _connect(connect, maintenance_db) as conn:
            databases = [row[0] for row in conn.execute(DATABASES_SQL)]
    result: Fingerprints = {}
    for database in databases:
        if database in skip:
            continue
        with _connect(connect, database) as conn:
            _begin_read_only(conn)
            names = [(schema, table) for schema, table, kind in _tables(conn) if kind == "r"]
            result[database] = _fingerprint_tables(conn, names)
            conn.execute("commit")
    return result


def differences(expected: Fingerprints, actual: Fingerprints) -> list[TableDifference]:
    """The tables that differ, sorted by database and table: missing on either side, or
    with another row count or checksum, each with both fingerprints. Empty: the same."""
    found = []
    for database in sorted(expected.keys() | actual.keys()):
        mine, theirs = expected.get(database, {}), actual.get(database, {})
        for table in sorted(mine.keys() | theirs.keys()):
            if mine.get(table) != theirs.get(table):
                found.append(TableDifference(database, table, mine.get(table),
                                             theirs.get(table)))
    return found


def differing_rows(connect_expected: Connect, connect_actual: Connect, database: str,
                   table: str, limit: int = 20, *,
                   expected: psycopg.Connection | None = None) -> RowDiff:
    """Which rows of `table` ("schema.table", as the fingerprints name it) in `database`
    differ between the expected side (the primary) and the actual side (the restored
    copy), for a table that `differences` reported.

    With a primary key, rows are matched by key: keys only on the expected side are
    missing, only on the actual side extra, on both with another md5 of the row's text
    changed. Without one, the rows are compared as multisets of their md5, and a row counts
    as missing or extra as many times as one side has more copies of it. Both sides are
    read ordered (by the key's text, or the hash, in the "C" collation, an order Python
    reproduces) and merged as they stream, so no side is held in memory; the first
    `limit` differing rows are then read again to show them.

    `expected`, when given, is a connection in an open transaction to read the expected
    side in, instead of a new one from `connect_expected`: RestorePoint.snapshots[database],
    to compare the restored copy with the primary as of the restore point rather than as
    it is now. A table absent on one side compares as empty there.
    """
    if expected is not None and (expected.info.transaction_status
                                 != psycopg.pq.TransactionStatus.INTRANS):
        raise ValueError("expected must be a connection inside the transaction holding the "
                         "snapshot to read (RestorePoint.snapshots[database])")
    own_expected = _connect(connect_expected, database) if expected is None else None
    exp = expected if expected is not None else own_expected
    assert exp is not None
    act = _connect(connect_actual, database)
    try:
        if own_expected is not None:
            _begin_read_only(own_expected)
        else:
            _set_output_settings(exp)
        _begin_read_only(act)
        exp_oid, act_oid = _find_table(exp, table), _find_table(act, table)
        oid, conn = (exp_oid, exp) if exp_oid is not None else (act_oid, act)
        if oid is None:
            raise LookupError(f"{database}: no table {table} on either side")
        columns = tuple(row[0] for row in conn.execute(PRIMARY_KEY_SQL, (oid,)))
        if columns:
            diff = _rows_by_key(exp, exp_oid, act, act_oid, table, columns, limit)
        else:
            diff = _rows_by_hash(exp, exp_oid, act, act_oid, table, limit)
        if own_expected is not None:
            own_expected.execute("commit")
        act.execute("commit")
    finally:
        _close([act, *([own_expected] if own_expected is not None else [])])
    return RowDiff(database, table, columns, *diff)


# --- the restore point's locks and snapshots --------------------------------------------


class _TablesMoved(Exception):
    """The list of tables changed between listing and locking them."""


def _lock_and_snapshot(connect: Connect, database: str, lock_timeout: str,
                       ) -> tuple[psycopg.Connection, psycopg.Connection, list[tuple[str, str]]]:
    """One database locked and snapshotted: (the locking connection, still in its
    transaction; the reading one, in the imported snapshot; the tables to fingerprint)."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        locker = _connect(connect, database)
        reader = _connect(connect, database)
        try:
            # Listed outside the transactions: the first query of a REPEATABLE READ
            # transaction takes its snapshot, which must come after the locks.
            listed = _tables(locker)
            names = sql.SQL(", ").join(sql.SQL("only {}").format(_identifier(s, t))
                                       for s, t, _ in listed)
            _begin_read_only(reader)
            _set(reader, {"lock_timeout": lock_timeout,
                          "idle_in_transaction_session_timeout": "0"})
            if listed:
                reader.execute(sql.SQL("lock table {} in access share mode").format(names))
            locker.execute("begin isolation level repeatable read")
            # Per lock waited for: statement_timeout bounds the LOCK of many tables too.
            _set(locker, {"lock_timeout": lock_timeout, "statement_timeout": lock_timeout})
            if listed:
                locker.execute(sql.SQL("lock table {} in share mode").format(names))
            row = locker.execute("select pg_export_snapshot()").fetchone()
            assert row is not None
            if _tables(locker) != listed:  # in the snapshot now: created meanwhile?
                raise _TablesMoved
            reader.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(row[0])))
            return locker, reader, [(schema, table) for schema, table, kind in listed
                                    if kind == "r"]
        except (_TablesMoved, errors.UndefinedTable, errors.DeadlockDetected):
            _close([locker, reader])
            if attempt == LOCK_ATTEMPTS:
                raise ClusterStateError(
                    f"{database}: its tables kept changing (or deadlocking with writers) "
                    f"while they were being locked, {LOCK_ATTEMPTS} times; "
                    "run the drill again when DDL has settled") from None
        except (errors.LockNotAvailable, errors.QueryCanceled) as exc:
            _close([locker, reader])
            raise ClusterStateError(
                f"{database}: could not lock its tables within lock_timeout={lock_timeout}: "
                "a long write transaction, DDL or a prepared transaction (pg_prepared_xacts) "
                "holds them; try again, or with a larger lock_timeout") from exc
        except BaseException:
            _close([locker, reader])
            raise
    raise AssertionError("unreachable")


def _check_can_make_restore_points(conn: psycopg.Connection) -> None:
    """What would make pg_create_restore_point fail, checked before any table is locked:
    a server in recovery (a standby: the restore point is the primary's to make), or
    wal_level = minimal (no WAL for a restore to follow)."""
    row = conn.execute("select pg_is_in_recovery(), current_setting('wal_level')").fetchone()
    assert row is not None
    if row[0]:
        raise ClusterStateError("this server is in recovery: restore points are made on the "
                                "primary")
    if row[1] == "minimal":
        raise ClusterStateError("wal_level is minimal: no restore point can be made "
                                "(it must be replica or logical)")


# --- reading tables ---------------------------------------------------------------------


def _fingerprint_tables(conn: psycopg.Connection, tables: list[tuple[str, str]],
                        ) -> dict[str, TableFingerprint]:
    """The fingerprints of these (schema, table), read in `conn`'s open transaction."""
    result = {}
    for schema, table in sorted(tables):
        query = sql.SQL(
            "select count(*), coalesce(sum(('x' || substr(md5(t.*::text), 1, 16))"
            "::bit(64)::bigint::numeric), 0)::text from only {} t"
        ).format(_identifier(schema, table))
        row = conn.execute(query).fetchone()
        assert row is not None
        result[_key(schema, table)] = TableFingerprint(rows=row[0], checksum=row[1])
    return dict(sorted(result.items()))


def _rows_by_key(exp: psycopg.Connection, exp_oid: int | None, act: psycopg.Connection,
                 act_oid: int | None, table: str, columns: tuple[str, ...], limit: int,
                 ) -> tuple[int, int, int, tuple[DifferingRow, ...], bool]:
    """missing, extra, changed, the rows shown and whether there are more, matched by the
    primary key's text."""
    if len(columns) == 1:
        key = sql.SQL("t.{}::text").format(sql.Identifier(columns[0]))
    else:
        key = sql.SQL("row({})::text").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns))

    def stream(conn: psycopg.Connection, oid: int | None) -> Iterator[tuple[str, str]]:
        if oid is None:
            return iter(())
        query = sql.SQL("select {key} collate \"C\" as k, md5(t.*::text) from only {table} t "
                        "order by k").format(key=key, table=_table_by_oid(conn, oid))
        return _ascending(conn.cursor().stream(query), table)

    counts = {"missing": 0, "extra": 0, "changed": 0}
    shown: list[tuple[str, str]] = []
    for k, mine, theirs in _merge(stream(exp, exp_oid), stream(act, act_oid)):
        if mine == theirs:
            continue
        kind = "extra" if mine is None else "missing" if theirs is None else "changed"
        counts[kind] += 1
        if len(shown) <= limit:  # one more than shown: whether there are more
            shown.append((kind, k))
    more = len(shown) > limit
    shown = shown[:limit]

    def texts(conn: psycopg.Connection, oid: int | None) -> dict[str, str]:
        if oid is None or not shown:
            return {}
        query = sql.SQL("select {key}, t.*::text from only {table} t where {key} = any(%s)"
                        ).format(key=key, table=_table_by_oid(conn, oid))
        return dict(conn.execute(query, ([k for _, k in shown],)).fetchall())

    mine_texts, their_texts = texts(exp, exp_oid), texts(act, act_oid)
    rows = tuple(DifferingRow(kind, k, mine_texts.get(k) if kind != "extra" else None,
                              their_texts.get(k) if kind != "missing" else None)
                 for kind, k in shown)
    return counts["missing"], counts["extra"], counts["changed"], rows, more


def _rows_by_hash(exp: psycopg.Connection, exp_oid: int | None, act: psycopg.Connection,
                  act_oid: int | None, table: str, limit: int,
                  ) -> tuple[int, int, int, tuple[DifferingRow, ...], bool]:
    """missing, extra, 0, the rows shown and whether there are more, for a table without a
    primary key: the multisets of md5(row::text) compared."""

    def stream(conn: psycopg.Connection, oid: int | None) -> Iterator[tuple[str, int]]:
        if oid is None:
            return iter(())
        query = sql.SQL("select md5(t.*::text) collate \"C\" as h, count(*) from only {} t "
                        "group by h order by h").format(_table_by_oid(conn, oid))
        return _ascending(conn.cursor().stream(query), table)

    missing = extra = 0
    shown: list[tuple[str, str, int]] = []
    for h, mine, theirs in _merge(stream(exp, exp_oid), stream(act, act_oid)):
        surplus = (mine or 0) - (theirs or 0)
        if surplus:
            if surplus > 0:
                missing += surplus
            else:
                extra -= surplus
            if len(shown) <= limit:
                shown.append(("missing" if surplus > 0 else "extra", h, abs(surplus)))
    more = len(shown) > limit
    shown = shown[:limit]

    def texts(conn: psycopg.Connection, oid: int | None, kind: str) -> dict[str, str]:
        wanted = [h for k, h, _ in shown if k == kind]
        if oid is None or not wanted:
            return {}
        query = sql.SQL("select distinct on (1) md5(t.*::text), t.*::text from only {} t "
                        "where md5(t.*::text) = any(%s)").format(_table_by_oid(conn, oid))
        return dict(conn.execute(query, (wanted,)).fetchall())

    mine_texts, their_texts = texts(exp, exp_oid, "missing"), texts(act, act_oid, "extra")
    rows = tuple(DifferingRow(kind, None, mine_texts.get(h) if kind == "missing" else None,
                              their_texts.get(h) if kind == "extra" else None, copies)
                 for kind, h, copies in shown)
    return missing, extra, 0, rows, more


def _merge(left: Iterator[tuple[str, object]], right: Iterator[tuple[str, object]],
           ) -> Iterator[tuple[str, object | None, object | None]]:
    """A full outer join of two streams ascending by key: (key, left value or None, right
    value or None)."""
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield a[0], a[1], None
            a = next(left, None)
        elif a is None or b[0] < a[0]:
            yield b[0], None, b[1]
            b = next(right, None)
        else:
            yield a[0], a[1], b[1]
            a, b = next(left, None), next(right, None)


def _ascending(rows: Iterable[tuple], table: str) -> Iterator[tuple]:
    """The rows, checked to ascend in Python's order as they do in the server's "C"
    collation (they do for UTF-8 and single-byte encodings): a merge of streams that
    disagree on the order would report equal rows as missing and extra."""
    previous = None
    for row in rows:
        if previous is not None and row[0] <= previous:
            raise RuntimeError(f"{table}: the server's order of {row[0]!r} after "
                               f"{previous!r} is not Python's; cannot compare by merge")
        previous = row[0]
        yield row


# --- small helpers ----------------------------------------------------------------------


def _connect(connect: Connect, database: str) -> psycopg.Connection:
    """A connection from the caller's factory, in autocommit: the transactions here are
    begun explicitly, with their isolation level, and the snapshot follows the first
    statement that needs one, not one that psycopg would begin on its own."""
    conn = connect(database)
    conn.autocommit = True
    return conn


def _begin_read_only(conn: psycopg.Connection) -> None:
    """A REPEATABLE READ READ ONLY transaction (one snapshot for all it reads), with the
    settings that make values' text the same everywhere."""
    conn.execute("begin isolation level repeatable read read only")
    _set_output_settings(conn)


def _set_output_settings(conn: psycopg.Connection) -> None:
    _set(conn, OUTPUT_SETTINGS)


def _set(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    """SET LOCAL, for the open transaction only (SET takes no snapshot)."""
    for setting, value in settings.items():
        conn.execute(sql.SQL("set local {} = {}").format(sql.Identifier(setting),
                                                          sql.Literal(value)))


def _tables(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return [(row[0], row[1], row[2]) for row in conn.execute(TABLES_SQL)]


def _find_table(conn: psycopg.Connection, table: str) -> int | None:
    """The oid of the table named by its key; an error when the key is ambiguous (a dot
    in a schema or table name: "a.b" . "c" and "a" . "b.c")."""
    found = conn.execute(TABLE_SQL, (table,)).fetchall()
    if len(found) > 1:
        raise LookupError(f"{table} names {len(found)} tables; rename one to compare them")
    return found[0][0] if found else None


def _table_by_oid(conn: psycopg.Connection, oid: int) -> sql.Composable:
    row = conn.execute("select n.nspname, c.relname from pg_class c join pg_namespace n "
                       "on n.oid = c.relnamespace where c.oid = %s", (oid,)).fetchone()
    assert row is not None
    return _identifier(row[0], row[1])


def _identifier(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _key(schema: str, table: str) -> str:
    """How the fingerprints name a table: "schema.table", unquoted, for people to read."""
    return f"{schema}.{table}"


def _close(connections: Iterable[psycopg.Connection | None]) -> None:
    """Close them all, whatever state each is in (closing rolls back an open transaction);
    a broken one must not keep the others, and their locks, open."""
    for conn in connections:
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()
