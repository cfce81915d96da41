"""lib.sh, sourced as the scripts source it: the settings, logging, running as postgres,
psql, quoting, WAL positions, the lock and the registry row of a backup job."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from pgcluster import NODE_DIR
from pgcluster.model.conninfo import quote
from pgcluster.model.wal import parse_lsn, wal_file_name
from tests.unit.node.conftest import FakeNode


def lib(node: FakeNode, code: str, script: str = "backup-full",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`code` run by bash after sourcing lib.sh, as if it were `script` (its $0)."""
    program = node.root / script
    program.write_text(f"#!/bin/bash\nset -euo pipefail\nPGCLUSTER_LIB={NODE_DIR}\n"
                       f'. "$PGCLUSTER_LIB/lib.sh"\n{code}\n')
    program.chmod(0o755)
    return subprocess.run([str(program)], capture_output=True, text=True, check=False,
                          env={"PATH": f"{node.bin}:/usr/bin:/bin",
                               "PGCLUSTER_ENV": str(node.env_file),
                               "FAKE_STATE": str(node.state), "FAKE_CALLS": str(node.calls_dir),
                               **(env or {})})


def test_wal_position_helpers_in_bash_match_python(node: FakeNode) -> None:
    out = lib(node, "echo $(wal_name 1 0/7000028 16777216) "
              "$(wal_name 3 1A/FF000000 16777216) $(segment_lsn 00000001000000000000000B 16777216) "
              "$(segment_lsn 00000001000000000000000B 16777216 end) $(lsn_int 1/10)").stdout.split()
    assert out == [wal_file_name(1, "0/7000028"), wal_file_name(3, "1A/FF000000"),
                   "0/B000000", "0/C000000", str(parse_lsn("1/10"))]
    assert out[:2] == ["000000010000000000000007", "000000030000001A000000FF"]


def test_segment_numbers_and_positions_ignore_the_timeline(node: FakeNode) -> None:
    out = lib(node, "echo $(segment_number 000000020000000100000003 16777216) "
              "$(segment_position 000000020000000100000003) $(int_lsn 4294967312)").stdout.split()
    assert out == [str(256 + 3), "0000000100000003", "1/10"]


@pytest.mark.parametrize("value", ["abc", "", "a b", "it's", "back\\slash", "x'y z\\"])
def test_conninfo_value_quotes_as_python_does(node: FakeNode, value: str) -> None:
    assert lib(node, f"conninfo_value {shlex.quote(value)}").stdout == quote(value)


def test_sql_literal_doubles_quotes(node: FakeNode) -> None:
    assert lib(node, "sql_literal \"it's a 'test'\"").stdout == "'it''s a ''test'''"


def test_the_settings_come_from_node_env_and_a_missing_one_is_named(node: FakeNode) -> None:
    assert lib(node, 'echo "$NODE_NAME $PG_PORT $PEERS"').stdout == (
        "db1 5432 10.0.0.2:5432 10.0.0.3:5432\n")
    node.env_file.write_text(node.env_file.read_text().replace("RESTORE_TIMEOUT=", "#"))
    result = lib(node, "echo reached")
    assert result.returncode == 1 and "reached" not in result.stdout
    assert f"{node.env_file} has no RESTORE_TIMEOUT: run the cluster deploy" in result.stderr


def test_a_missing_node_env_stops_the_script(node: FakeNode) -> None:
    node.env_file.unlink()
    result = lib(node, "echo reached")
    assert result.returncode == 1 and "reached" not in result.stdout
    assert f"cannot read {node.env_file}" in result.stderr


def test_sourcing_the_library_writes_nothing(node: FakeNode) -> None:
    before = set(node.root.rglob("*"))
    lib(node, "true", script="archive-wal")
    assert set(node.root.rglob("*")) - before == {node.root / "archive-wal"}


def test_log_lines_carry_their_time_in_the_log_file_only_when_there_is_one(
        node: FakeNode) -> None:
    result = lib(node, 'log "to the caller"; log_file=$BACKUP_LOG_DIR/x.log; log "kept"; '
                 'note "quiet"', script="clone-replica")
    lines = result.stderr.splitlines()
    assert lines[0] == "clone-replica[db1]: to the caller"
    assert lines[1].endswith("Z clone-replica[db1]: kept") and len(lines) == 2
    kept = node.log("x.log").splitlines()
    assert kept[0] == lines[1] and kept[1].endswith("Z clone-replica[db1]: quiet")


def test_as_postgres_switches_from_root_and_not_from_postgres(node: FakeNode) -> None:
    lib(node, "as_postgres pg_ctlcluster 15 main status || true")
    lib(node, "as_postgres pg_ctlcluster 15 main status || true", env={"FAKE_USER": "postgres"})
    runuser, = node.calls("runuser")
    assert runuser.args[:3] == ["-u", "postgres", "--"]
    assert [c.user for c in node.calls("pg_ctlcluster")] == ["postgres", "postgres"]


def test_sql_asks_the_local_server_with_safe_variables(node: FakeNode) -> None:
    node.answer("select 1", "echo one")
    result = lib(node, "sql 'select 1 where :'\"'\"'v'\"'\"' is not null' v=\"it's\"")
    assert result.stdout == "one\n"
    call, = node.calls("psql")
    assert call.args == ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                         str(node.root / "run"), "-p", "5432", "-d", "postgres", "-v", "v=it's"]
    assert call.input == "select 1 where :'v' is not null" and call.user == "postgres"


def test_a_bounded_psql_runs_under_timeout(node: FakeNode) -> None:
    lib(node, "psql_timeout=10; run_psql -d 'host=x' -c IDENTIFY_SYSTEM")
    runuser, = node.calls("runuser")
    assert runuser.args[3:6] == ["timeout", "10", "psql"]


def test_wait_streaming_says_what_the_receiver_did(node: FakeNode) -> None:
    node.answer("pg_stat_wal_receiver", "echo waiting")
    result = lib(node, 'wait_streaming 3 "see the log" || echo failed', script="clone-replica")
    assert result.stdout == "failed\n"
    assert "not streaming after 3s (wal receiver: waiting); see the log" in result.stderr
    assert len(node.calls("sleep")) == 3
    node.answer("pg_stat_wal_receiver", "echo streaming")
    assert lib(node, "wait_streaming 3 && echo ok").stdout == "ok\n"


def test_require_primary_lets_the_primary_through_and_notes_the_others(node: FakeNode) -> None:
    code = "backup_job_init; require_primary; echo primary"
    assert lib(node, code).stdout == ""  # no server
    assert "PostgreSQL is not running here" in node.log()
    node.running(primary=False)
    result = lib(node, code)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert node.log().splitlines()[-1].endswith("backup-full[db1]: not the primary (in "
                                                 "recovery): nothing to do")
    node.running(primary=True)
    assert lib(node, code).stdout == "primary\n"


def test_the_lock_file_belongs_to_postgres_and_is_held(node: FakeNode) -> None:
    result = lib(node, "backup_job_init; take_lock exclusive; echo locked; "
                 'flock --nonblock "$lock_file" true || echo busy')
    assert result.stdout == "locked\nbusy\n", result.stderr
    install, = node.calls("install")
    assert install.args == ["-m", "0600", "-o", "postgres", "-g", "postgres", "/dev/null",
                            str(node.repo / ".pgcluster-backup.lock")]


def test_the_registry_row_of_a_failed_job(node: FakeNode) -> None:
    node.answer("insert into pgcluster.backups", "echo 41")
    partial = node.root / "partial"
    partial.mkdir()
    temp = node.root / "temp"
    temp.touch()
    result = lib(node, f"backup_job_init; job_temp=({temp}); job_partial={partial}; "
                 "trap backup_job_exit EXIT; registry_start full label-1 full/x; "
                 'failure="it broke"; exit 0')
    assert result.returncode == 1
    assert "FAILED: it broke" in result.stderr and "FAILED: it broke" in node.log()
    assert not partial.exists() and not temp.exists()
    insert, update = node.queries()
    assert "'running'" in insert.input and {"kind=full", "label=label-1", "node=db1",
                                           "path=full/x"} <= set(insert.args)
    assert "status = 'failed'" in update.input
    assert {"id=41", "detail=it broke"} <= set(update.args)


def test_the_registry_row_of_a_finished_job(node: FakeNode) -> None:
    node.answer("insert into pgcluster.backups", "echo 42")
    result = lib(node, "backup_job_init; trap backup_job_exit EXIT; "
                 "registry_start incr l incr/20260101; job_finished=1; "
                 "registry_ok 10 2 0/1000000 0/2000000 A B 'what it holds'")
    assert result.returncode == 0, result.stderr
    _, update = node.queries()
    assert "status = 'ok'" in update.input
    assert {"id=42", "size=10", "tli=2", "start=0/1000000", "stop=0/2000000", "swal=A",
            "ewal=B", "detail=what it holds"} <= set(update.args)


def test_a_registry_that_cannot_be_written_never_stops_a_backup(node: FakeNode) -> None:
    node.answer("insert into pgcluster.backups", "exit 2")
    result = lib(node, "backup_job_init; registry_start full l full/x; "
                 'registry_ok 1 1 0/1 0/2 A B; echo "went on [$registry_id]"')
    assert result.stdout == "went on []\n"
    assert "could not record the backup in the registry" in result.stderr
    assert len(node.queries()) == 1


def test_the_lock_file_is_open_for_writing_as_flock_on_nfs_needs(node: FakeNode) -> None:
    # On NFSv4 flock is emulated with fcntl locks, which need the file open for writing.
    node.fake("flock", """flags=$(awk '/^flags:/ { print $2 }' /proc/$$/fdinfo/9)
if (( (8#$flags & 3) == 0 )); then
    echo "flock: fd 9 is open read-only (flags $flags)" >&2
    exit 1
fi""")
    result = lib(node, "backup_job_init; take_lock exclusive; echo locked; take_lock shared; "
                 "echo shared")
    assert result.stdout == "locked\nshared\n", result.stderr
    assert [c.args for c in node.calls("flock")] == [["--wait", "3600", "9"],
                                                     ["--shared", "--wait", "3600", "9"]]
    # Still postgres' file, and opening it for writing changed nothing in it.
    assert (node.repo / ".pgcluster-backup.lock").read_bytes() == b""
    assert len(node.calls("install")) == 1
