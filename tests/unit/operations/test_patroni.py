"""The Patroni engine's operations, facts in and commands out: what each yields on a node in
each state, and that a node already right gets no command (a re-run changes nothing)."""

from __future__ import annotations

import subprocess

import pytest

from pgcluster.facts.patroni import EtcdHealth, HaServices, PatroniMembers, PendingSettings
from pgcluster.facts.postgres import PgNode
from pgcluster.model.layout import Layout
from pgcluster.model.patroni import parse_members
from pgcluster.operations import patroni
from tests.unit.fakes import FakeHost, run_operation, sql, text

LAYOUT = Layout(15, "main")
PRIMARY = {"running": True, "in_recovery": False, "data": True}
STANDBY = {"running": True, "in_recovery": True, "data": True}
DEBIAN = {"postgresql": {"active": True, "enabled": True},
          "patroni": {"active": False, "enabled": False}}
HANDED_OVER = {"postgresql": {"active": False, "enabled": False},
               "patroni": {"active": True, "enabled": True}}
LEADER = parse_members('[{"Member": "db1", "Host": "10.0.0.1", "Role": "Leader", '
                       '"State": "running", "TL": 1}]')


def run(monkeypatch: pytest.MonkeyPatch, on: FakeHost, op, **kwargs) -> list:
    return run_operation(monkeypatch, patroni, on, op, **kwargs)


def test_debian_hands_a_running_primary_over_after_resetting_a_failover_override(
        monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={HaServices: DEBIAN, PgNode: PRIMARY})
    commands = run(monkeypatch, on, patroni.hand_over_from_debian, layout=LAYOUT)
    assert sql(commands) == ["ALTER SYSTEM RESET synchronous_standby_names"]
    assert text(commands).splitlines()[-2:] == [
        "systemctl stop postgresql@15-main", "systemctl disable --quiet postgresql@15-main"]


def test_a_standby_is_handed_over_without_sql_and_a_handed_over_node_gets_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    standby = FakeHost(facts={HaServices: DEBIAN, PgNode: STANDBY})
    assert sql(run(monkeypatch, standby, patroni.hand_over_from_debian, layout=LAYOUT)) == []
    done = FakeHost(facts={HaServices: HANDED_OVER, PgNode: PRIMARY})
    assert run(monkeypatch, done, patroni.hand_over_from_debian, layout=LAYOUT) == []
    assert done.noops and "Patroni manages PostgreSQL" in done.noops[0]


def test_waits_end_at_once_when_already_true(monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={EtcdHealth: True, PatroniMembers: LEADER})
    assert run(monkeypatch, on, patroni.wait_for_etcd, endpoints="https://10.0.0.1:2379",
               tls=("ca", "crt", "key")) == []
    assert run(monkeypatch, on, patroni.wait_for_leader, member="db1") == []
    waiting = run(monkeypatch, on, patroni.wait_for_leader, member="db2", timeout=7)
    assert "seq 7" in text(waiting) and "db2 is not the leader after 7s" in text(waiting)


def test_waiting_for_etcd_asks_the_endpoints_with_the_certificate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    off = FakeHost(facts={EtcdHealth: False})
    waiting = text(run(monkeypatch, off, patroni.wait_for_etcd,
                       endpoints="https://10.0.0.1:2379,https://10.0.0.2:2379",
                       tls=("/ca.crt", "/n.crt", "/n.key"), timeout=5))
    assert "seq 5" in waiting
    assert "--endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379" in waiting
    assert "--cacert=/ca.crt --cert=/n.crt --key=/n.key" in waiting
    # A linearizable read, which needs a quorum, through whichever endpoint answers.
    assert "get --keys-only" in waiting
    assert "etcd does not answer at https://10.0.0.1:2379,https://10.0.0.2:2379" in waiting


def test_member_service_changes_only_what_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={HaServices: HANDED_OVER})
    assert run(monkeypatch, on, patroni.member_service, layout=LAYOUT, running=True) == []
    assert text(run(monkeypatch, on, patroni.member_service, layout=LAYOUT,
                    running=False)) == "systemctl stop patroni"


@pytest.mark.parametrize(("output", "ok"), [
    ('Successfully switched over to "db2"', True),
    ("Switchover failed, details: 503, Switchover failed", False),
    ("Error: db9 is not the leader of cluster pgcluster", False),
])
def test_a_patronictl_change_fails_on_its_words_not_only_its_status(output: str,
                                                                      ok: bool) -> None:
    """patronictl 3.0.2 exits 0 when the REST API refused: the command checks its output
    (run here for real, with a stand-in patronictl that prints and exits 0)."""
    fake = f"printf '%s\\n' {output!r}"
    (command,) = list(patroni.patronictl_change._inner(command=fake, what="switch over"))
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            check=False)
    assert (result.returncode == 0) is ok, result.stderr
    assert output in result.stdout
    if not ok:
        assert "patronictl did not switch over" in result.stderr


# ------------------------------------------------------------------ rolling restarts
CLUSTER = parse_members(
    '[{"Member": "db1", "Host": "10.0.0.1", "Role": "Leader", "State": "running", "TL": 2, '
    '"Pending restart": "*"}, '
    '{"Member": "db2", "Host": "10.0.0.2", "Role": "Replica", "State": "running", "TL": 2, '
    '"Lag in MB": 0}, '
    '{"Member": "db3", "Host": "10.0.0.3", "Role": "Replica", "State": "running", "TL": 2, '
    '"Lag in MB": 0, "Pending restart": "*", "Tags": {"nofailover": true}}]')


def test_a_replica_is_restarted_only_when_a_setting_waits_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = FakeHost(facts={PatroniMembers: CLUSTER, PendingSettings: []})
    assert run(monkeypatch, quiet, patroni.restart_replica_if_pending, scope="pg",
               member="db2") == []
    assert quiet.noops == ["db2 waits for no restart"]
    # pgcluster's own file: pg_settings says so, though Patroni has not flagged it.
    by_file = FakeHost(facts={PatroniMembers: CLUSTER, PendingSettings: ["shared_buffers"]})
    commands = text(run(monkeypatch, by_file, patroni.restart_replica_if_pending, scope="pg",
                        member="db2"))
    assert "restarting db2 for: setting shared_buffers" in commands
    assert "patronictl -c /etc/patroni/config.yml restart pg db2 --force" in commands
    assert "'Success: restart on member db2'" in commands  # 3.0.2 exits 0 on failure too
    # Patroni's flag (a DCS parameter), on the read-only replica.
    flagged = FakeHost(facts={PatroniMembers: CLUSTER, PendingSettings: []})
    assert "restart pg db3 --force" in text(run(
        monkeypatch, flagged, patroni.restart_replica_if_pending, scope="pg", member="db3"))
    # The leader is never restarted by the replicas' step.
    leader = FakeHost(facts={PatroniMembers: CLUSTER, PendingSettings: ["shared_buffers"]})
    assert run(monkeypatch, leader, patroni.restart_replica_if_pending, scope="pg",
               member="db1") == []


def test_a_leader_waiting_for_a_restart_hands_over_to_a_promotable_replica_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    on = FakeHost(facts={PatroniMembers: CLUSTER, PendingSettings: []})
    commands = text(run(monkeypatch, on, patroni.hand_over_and_restart_if_pending,
                        scope="pg", member="db1"))
    # db3 is nofailover: the switchover goes to db2, then db1 restarts only if still pending.
    assert "db1 hands over to db2, then restarts as a replica" in commands
    assert "switchover --leader db1 --candidate db2 --force" in commands
    assert commands.index("switchover") < commands.index("restart pg db1 --force")
    assert "db2 the leader" in commands and "db1 streaming from db2" in commands


def test_a_leader_with_nothing_pending_or_nobody_to_take_over(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settled = parse_members(
        '[{"Member": "db1", "Host": "10.0.0.1", "Role": "Leader", "State": "running", '
        '"TL": 2}]')
    quiet = FakeHost(facts={PatroniMembers: settled, PendingSettings: []})
    assert run(monkeypatch, quiet, patroni.hand_over_and_restart_if_pending, scope="pg",
               member="db1") == []
    alone = FakeHost(facts={PatroniMembers: settled, PendingSettings: ["shared_buffers"]})
    commands = text(run(monkeypatch, alone, patroni.hand_over_and_restart_if_pending,
                        scope="pg", member="db1"))
    assert "no replica can take over from db1: restarting it in place" in commands
    assert "switchover" not in commands and "restart pg db1 --force" in commands
