"""start-guard, ExecStartPre of the PostgreSQL unit: a node that would start as a primary
asks its peers first, over TLS replication connections, and stays down when one of them is
on a newer timeline of the same cluster."""

from __future__ import annotations

import pytest

from tests.unit.node.conftest import SYSTEM_ID, FakeNode

PEERS = ("10.0.0.1", "10.0.0.3")  # db2's


@pytest.fixture
def db2(make_node) -> FakeNode:
    node = make_node("db2")
    node.data_dir()
    return node


def peer(node: FakeNode, address: str, system: str = SYSTEM_ID, timeline: int = 1) -> None:
    node.answer(f"host={address.replace('.', '[.]')} ",
                f"echo '{system}|{timeline}|0/9000000|'")


def unreachable(node: FakeNode, address: str) -> None:
    node.answer(f"host={address.replace('.', '[.]')} ",
                "echo 'psql: error: connection to server failed' >&2; exit 2")


def test_start_guard_asks_every_other_node(db2: FakeNode) -> None:
    assert "PEERS='10.0.0.1:5432 10.0.0.3:5432'\n" in db2.env_file.read_text()
    for address in PEERS:
        peer(db2, address)
    result = db2.run("start-guard")
    assert result.returncode == 0, result.stderr
    asked = db2.calls("psql")
    assert [c.args[c.args.index("-d") + 1].split()[:2] for c in asked] == [
        ["host=10.0.0.1", "port=5432"], ["host=10.0.0.3", "port=5432"]]
    assert all(c.input == "IDENTIFY_SYSTEM" and c.user == "postgres" for c in asked)
    assert "10.0.0.2" not in " ".join(a for c in asked for a in c.args)


def test_start_guard_checks_its_peers_certificates(db2: FakeNode) -> None:
    peer(db2, PEERS[0])
    db2.run("start-guard")
    conninfo = next(c.args[c.args.index("-d") + 1] for c in db2.calls("psql"))
    assert ("sslmode=verify-full sslrootcert=/etc/postgresql/15/main/tls/ca.crt "
            "channel_binding=require") in conninfo
    assert "passfile=/var/lib/postgresql/.pgpass" in conninfo and "password=" not in conninfo
    assert conninfo.endswith("dbname=replication replication=true connect_timeout=3")
    assert "user=replicator " in conninfo
    runuser = db2.calls("runuser")[0]
    assert runuser.args[3:5] == ["timeout", "10"]  # a peer that hangs cannot hold the start
    assert "password" not in db2.env_file.read_text().lower().replace("passwords stay", "")


def test_a_peer_on_a_newer_timeline_keeps_an_old_primary_down(db2: FakeNode) -> None:
    db2.flag("timeline", "3")
    peer(db2, PEERS[0], timeline=3)
    peer(db2, PEERS[1], timeline=4)
    result = db2.run("start-guard")
    assert result.returncode == 1
    assert result.stderr == (
        "start-guard: 10.0.0.3 is on timeline 4; this node stopped as a primary on timeline 3. "
        "Not starting it as a second primary: run 'pgcluster rejoin db2'.\n")


def test_peers_on_the_same_timeline_let_it_start(db2: FakeNode) -> None:
    for address in PEERS:
        peer(db2, address, timeline=1)
    assert db2.run("start-guard").returncode == 0


def test_a_peer_of_another_cluster_is_ignored(db2: FakeNode) -> None:
    peer(db2, PEERS[0], system="7399999999999999999", timeline=9)
    peer(db2, PEERS[1])
    assert db2.run("start-guard").returncode == 0


@pytest.mark.parametrize("signal", ["standby.signal", "recovery.signal"])
def test_standbys_and_restores_start_without_asking(db2: FakeNode, signal: str) -> None:
    (db2.data / signal).touch()
    peer(db2, PEERS[0], timeline=9)
    assert db2.run("start-guard").returncode == 0
    assert db2.calls("psql") == [] and db2.calls("pg_controldata") == []


def test_a_data_directory_without_pg_control_starts_as_before(db2: FakeNode) -> None:
    (db2.data / "global" / "pg_control").unlink()
    assert db2.run("start-guard").returncode == 0
    assert db2.calls("psql") == []


def test_unreachable_peers_never_block_a_start(db2: FakeNode) -> None:
    for address in PEERS:
        unreachable(db2, address)
    assert db2.run("start-guard").returncode == 0


def test_an_unreadable_pg_control_does_not_block_a_start(db2: FakeNode) -> None:
    db2.flag("controldata-fails")
    assert db2.run("start-guard").returncode == 0
    assert db2.calls("psql") == []
