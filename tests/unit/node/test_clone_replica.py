"""clone-replica: refuses whatever could be data (a running server, a primary's directory, a
standby of another cluster, anything else); otherwise clones into a temporary directory
swapped into place, starts the standby and waits until it streams."""

from __future__ import annotations

from tests.unit.node.conftest import SYSTEM_ID, FakeNode

CONNINFO = ("host=10.0.0.1 port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass "
            "application_name=db2 sslmode=verify-full")
SLOT = "pgcluster_db2"


def primary_answers(node: FakeNode, system_id: str = SYSTEM_ID) -> None:
    node.answer("replication=true", f"echo '{system_id}|1|0/3000060|'")
    node.answer("pg_stat_wal_receiver", '[ -e "$FAKE_STATE/running" ] && echo streaming')


def clone(node: FakeNode):
    return node.run("clone-replica", CONNINFO, SLOT)


def untouched(node: FakeNode) -> None:
    assert node.calls("pg_basebackup") == [] and node.calls("systemctl") == []


def test_a_running_server_is_refused(node: FakeNode) -> None:
    node.data_dir(standby=True)
    node.running(primary=False)
    result = clone(node)
    assert result.returncode == 2
    assert "refusing" in result.stderr and "running server" in result.stderr
    assert (node.data / "PG_VERSION").exists()
    untouched(node)


def test_a_primary_data_directory_is_refused(node: FakeNode) -> None:
    node.data_dir()
    result = clone(node)
    assert result.returncode == 2
    assert "holds a primary's data (no standby.signal); it is never wiped" in result.stderr
    assert (node.data / "PG_VERSION").exists()
    untouched(node)


def test_a_standby_of_another_cluster_is_refused(node: FakeNode) -> None:
    node.data_dir(standby=True)
    primary_answers(node, system_id="7399999999999999999")
    result = clone(node)
    assert result.returncode == 2
    assert (f"a standby of another cluster (system {SYSTEM_ID}, primary has "
            "7399999999999999999)") in result.stderr
    untouched(node)
    ask, = node.calls("psql")
    dbname = ask.args[ask.args.index("-d") + 1]
    assert dbname == f"{CONNINFO} dbname=replication replication=true"
    assert ask.input == "IDENTIFY_SYSTEM" and ask.user == "postgres"


def test_a_directory_that_is_not_postgresql_is_refused(node: FakeNode) -> None:
    node.data.mkdir()
    (node.data / "notes.txt").write_text("mine")
    result = clone(node)
    assert result.returncode == 2
    assert "is not empty but holds no PostgreSQL data directory; inspect it" in result.stderr
    assert (node.data / "notes.txt").read_text() == "mine"
    untouched(node)


def test_a_stopped_standby_of_this_primary_is_started(node: FakeNode) -> None:
    node.data_dir(standby=True)
    primary_answers(node)
    result = clone(node)
    assert result.returncode == 0, result.stderr
    assert "already holds a standby of this primary; starting it" in result.stderr
    assert node.calls("pg_basebackup") == []
    assert [c.args for c in node.calls("systemctl")] == [["start", "postgresql@15-main"]]


def test_a_clone_goes_through_a_temporary_directory_swapped_into_place(node: FakeNode) -> None:
    primary_answers(node)
    node.data.mkdir()  # empty, as Debian's packaging may leave it
    leftover = node.data.parent / "main.pgcluster-clone"
    leftover.mkdir()
    (leftover / "half").touch()
    result = clone(node)
    assert result.returncode == 0, result.stderr
    call, = node.calls("pg_basebackup")
    assert call.user == "postgres"
    assert call.args == [f"--pgdata={leftover}", f"--dbname={CONNINFO}", "--write-recovery-conf",
                         "--wal-method=stream", f"--slot={SLOT}", "--checkpoint=fast",
                         "--no-password"]
    assert (node.data / "standby.signal").exists() and not leftover.exists()
    assert not (node.data / "half").exists()  # an interrupted clone never served anything
    names = [c.name for c in node.calls() if c.name in ("pg_basebackup", "systemctl", "psql")]
    assert names[:2] == ["pg_basebackup", "systemctl"] and names[-1] == "psql"
    assert f"streaming ({CONNINFO})" in result.stderr
    assert result.stderr.startswith("clone-replica[db1]: pg_basebackup (")


def test_a_clone_that_never_streams_fails(node: FakeNode) -> None:
    node.answer("pg_stat_wal_receiver", "echo starting")
    node.settings(REPLICA_WAIT_TIMEOUT=2)
    result = clone(node)
    assert result.returncode == 1
    assert (f"not streaming after 2s (wal receiver: starting); see {node.pg_log}"
            in result.stderr)


def test_a_failed_pg_basebackup_leaves_the_data_directory_alone(node: FakeNode) -> None:
    node.flag("basebackup-fails", "pg_basebackup: error: could not connect\n")
    result = clone(node)
    assert result.returncode == 1
    assert not node.data.exists() and node.calls("systemctl") == []


def test_a_data_directory_that_is_a_mount_point_is_cloned_into(node: FakeNode) -> None:
    # A volume mounted on the data directory cannot be swapped for another directory: the
    # clone would end up inside it. pg_basebackup writes into it directly.
    primary_answers(node)
    node.data.mkdir()
    node.flag("mounts", f"{node.data}\n")
    result = clone(node)
    assert result.returncode == 0, result.stderr
    call, = node.calls("pg_basebackup")
    assert call.args[0] == f"--pgdata={node.data}" and call.user == "postgres"
    assert not (node.data.parent / "main.pgcluster-clone").exists()
    assert (node.data / "standby.signal").exists() and (node.data / "PG_VERSION").exists()
    assert sorted(p.name for p in node.data.parent.iterdir()) == ["main"]
    # The root of a fresh filesystem is root's: postgres gets it, private, before cloning.
    assert ["postgres:postgres", str(node.data)] in [c.args for c in node.calls("chown")]
    assert node.data.stat().st_mode & 0o777 == 0o700
    assert [c.args for c in node.calls("systemctl")] == [["start", "postgresql@15-main"]]


def test_a_mount_point_with_other_content_is_still_refused(node: FakeNode) -> None:
    node.data.mkdir()
    (node.data / "lost+found").mkdir()
    node.flag("mounts", f"{node.data}\n")
    result = clone(node)
    assert result.returncode == 2
    assert "is not empty but holds no PostgreSQL data directory; inspect it" in result.stderr
    untouched(node)
