"""start-guard, ExecStartPre of the PostgreSQL unit: a node that would start as a primary
asks its peers first, over TLS replication connections, and stays down when one of them is
on a newer timeline of the same cluster or is its running primary, and when none of them
answers (fail closed), unless it is started deliberately (the one-shot override)."""

from __future__ import annotations

import pytest

from pgcluster.model.topology import decide
from pgcluster.steps.configure import first_start
from tests.unit.helpers import cluster
from tests.unit.node.conftest import SYSTEM_ID, FakeNode

PEERS = ("10.0.0.1", "10.0.0.3")  # db2's


@pytest.fixture
def db2(make_node) -> FakeNode:
    node = make_node("db2")
    node.data_dir()
    return node


def peer(node: FakeNode, address: str, system: str = SYSTEM_ID, timeline: int = 1,
         standby: bool = True) -> None:
    """The peer answers IDENTIFY_SYSTEM, then SHOW in_hot_standby."""
    node.answer(f"host={address.replace('.', '[.]')} ",
                f"echo '{system}|{timeline}|0/9000000|'; echo {'on' if standby else 'off'}")


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
    assert all(c.input == "IDENTIFY_SYSTEM\nSHOW in_hot_standby" and c.user == "postgres"
               for c in asked)
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


def test_a_running_primary_of_this_cluster_keeps_it_down(db2: FakeNode) -> None:
    # The failover's new primary has not written a new timeline's first checkpoint yet, or
    # a primary was promoted by hand: the same timeline, but a primary already runs.
    peer(db2, PEERS[0], timeline=1, standby=True)
    peer(db2, PEERS[1], timeline=1, standby=False)
    result = db2.run("start-guard")
    assert result.returncode == 1
    assert result.stderr == (
        "start-guard: 10.0.0.3 is a running primary of this cluster (timeline 1); this node "
        "stopped as a primary on timeline 1. Not starting it as a second primary: run "
        "'pgcluster rejoin db2'.\n")


def test_unreachable_peers_keep_it_down_and_name_the_deliberate_start(db2: FakeNode) -> None:
    db2.settings(START_GUARD_WAIT=0)
    for address in PEERS:
        unreachable(db2, address)
    result = db2.run("start-guard")
    assert result.returncode == 1
    assert result.stderr == (
        "start-guard: no other node of this cluster (10.0.0.1:5432, 10.0.0.3:5432) answered "
        "within 0s, so nothing confirms that none of them is the primary: db2 stays down. If "
        "it must be the primary, start it deliberately: pgcluster start db2 --as-primary\n")


def test_it_asks_again_until_the_wait_is_over(db2: FakeNode) -> None:
    # Each wait really takes a second, so the rounds do not depend on how busy the machine is.
    db2.settings(START_GUARD_WAIT=3)
    db2.fake("sleep", "/bin/sleep 1")
    for address in PEERS:
        unreachable(db2, address)
    assert db2.run("start-guard").returncode == 1
    rounds = len(db2.calls("psql")) // 2
    assert rounds > 1 and len(db2.calls("sleep")) == rounds - 1
    assert {tuple(c.args) for c in db2.calls("sleep")} == {("2",)}


def test_the_first_peer_that_answers_confirms(db2: FakeNode) -> None:
    # The standby answers from the third round on (it was still starting up).
    db2.answer("host=10[.]0[.]0[.]1 ", f"""n=$(cat "$FAKE_STATE/asked" 2>/dev/null || echo 0)
echo $((n + 1)) >"$FAKE_STATE/asked"
[ "$n" -ge 2 ] || exit 2
echo '{SYSTEM_ID}|1|0/9000000|'; echo on""")
    unreachable(db2, PEERS[1])
    result = db2.run("start-guard")
    assert result.returncode == 0, result.stderr
    assert len(db2.calls("sleep")) == 2


def test_a_peer_of_another_cluster_confirms_nothing(db2: FakeNode) -> None:
    db2.settings(START_GUARD_WAIT=0)
    peer(db2, PEERS[0], system="7399999999999999999", timeline=1, standby=False)
    unreachable(db2, PEERS[1])
    result = db2.run("start-guard")
    assert result.returncode == 1 and "db2 stays down" in result.stderr


def test_a_peer_without_a_clear_answer_confirms_nothing(db2: FakeNode) -> None:
    db2.settings(START_GUARD_WAIT=0)
    db2.answer("host=10[.]0[.]0[.]1 ", f"echo '{SYSTEM_ID}|1|0/9000000|'")  # no SHOW answer
    unreachable(db2, PEERS[1])
    assert db2.run("start-guard").returncode == 1


def test_an_unreadable_pg_control_keeps_it_down(db2: FakeNode) -> None:
    db2.flag("controldata-fails")
    peer(db2, PEERS[0])
    result = db2.run("start-guard")
    assert result.returncode == 1
    assert "pg_controldata cannot read" in result.stderr
    assert "pgcluster start db2 --as-primary" in result.stderr
    assert db2.calls("psql") == []


def test_a_node_without_peers_starts(db2: FakeNode) -> None:
    db2.settings(PEERS="")
    assert db2.run("start-guard").returncode == 0
    assert db2.calls("psql") == []


def test_the_override_starts_it_once_and_is_consumed(db2: FakeNode) -> None:
    for address in PEERS:
        unreachable(db2, address)
    db2.override.parent.mkdir(parents=True)
    db2.override.touch()
    result = db2.run("start-guard")
    assert result.returncode == 0, result.stderr
    assert not db2.override.exists()
    assert ("start-guard: starting db2 as a primary without its peers' confirmation, as asked "
            "(pgcluster start db2 --as-primary;") in result.stderr
    event, = db2.log("events.log").splitlines()
    assert event.endswith("Z start-as-primary db2 started as a primary without its peers' "
                          "confirmation (pgcluster start db2 --as-primary)")
    assert db2.calls("psql") == []
    db2.settings(START_GUARD_WAIT=0)
    assert db2.run("start-guard").returncode == 1  # once only


def test_a_standby_consumes_the_override_too(db2: FakeNode) -> None:
    (db2.data / "standby.signal").touch()
    db2.override.parent.mkdir(parents=True)
    db2.override.touch()
    assert db2.run("start-guard").returncode == 0
    assert not db2.override.exists()


def test_only_a_new_clusters_primary_gets_the_override_from_the_deploy() -> None:
    c = cluster()
    fresh = {"db1": {}, "db2": {}, "db3": {}}
    assert [first_start(decide(c, fresh), h) for h in ("db1", "db2", "db3")] == [
        True, False, False]
    built = {"db1": {"data": True}, "db2": {"data": True, "standby_signal": True}, "db3": {}}
    assert not any(first_start(decide(c, built), h) for h in ("db1", "db2", "db3"))
