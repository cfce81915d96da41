"""Failover, switchover and rejoin decisions, from live node states: who may be promoted,
and every refusal, before anything is touched."""

from __future__ import annotations

import pytest

from pgcluster.errors import ClusterStateError
from pgcluster.model import failover
from pgcluster.model.failover import SwitchoverLimits
from pgcluster.model.topology import decide
from tests.unit.helpers import cluster

ALL = {"db1", "db2", "db3"}
PRIMARY = {"running": True, "in_recovery": False, "data": True, "standby_signal": False,
           "current_lsn": "0/5000000"}


def standby(receive: str = "0/5000000", replay: str | None = None, sender: str = "10.0.0.1",
            status: str = "streaming") -> dict:
    return {"running": True, "in_recovery": True, "data": True, "standby_signal": True,
            "receive_lsn": receive, "replay_lsn": replay or receive, "receiver_status": status,
            "sender_host": sender,
            "primary_conninfo": f"host={sender} port=5432 user=replicator"}


def healthy(**overrides: dict) -> dict:
    return {"db1": PRIMARY, "db2": standby(), "db3": standby(), **overrides}


def lost_primary(**overrides: dict) -> dict:
    """db1 is down (its container stopped: unreachable), the replicas no longer stream."""
    return {"db2": standby(status="", sender=""), "db3": standby(status="", sender=""),
            **overrides}


def topology(live: dict):
    return decide(cluster(), live)


# ------------------------------------------------------------------------------ failover


def test_failover_promotes_the_standby_and_repoints_the_read_only_replica() -> None:
    plan = failover.plan_failover(topology(lost_primary()), {"db2", "db3"})
    assert plan.old_primary.name == "db1" and plan.new_primary.name == "db2"
    assert [n.name for n in plan.followers] == ["db3"]
    assert [n.name for n in plan.unreachable] == ["db1"] and plan.fence is False


def test_failover_refuses_a_primary_that_accepts_writes_unless_forced() -> None:
    with pytest.raises(ClusterStateError, match=r"accepts writes.*switchover"):
        failover.plan_failover(topology(healthy()), ALL)
    plan = failover.plan_failover(topology(healthy()), ALL, force=True)
    assert plan.fence is True and plan.new_primary.name == "db2"


def test_failover_never_promotes_the_read_only_replica() -> None:
    with pytest.raises(ClusterStateError, match="read-only replica"):
        failover.plan_failover(topology(lost_primary()), {"db2", "db3"}, target_name="db3")


def test_failover_refuses_a_target_that_is_not_a_running_standby() -> None:
    live = lost_primary(db2={**standby(status="", sender=""), "running": False})
    with pytest.raises(ClusterStateError, match="not a reachable, running standby"):
        failover.plan_failover(topology(live), {"db2", "db3"}, target_name="db2")
    with pytest.raises(ClusterStateError, match="no standby can be promoted"):
        failover.plan_failover(topology(live), {"db2", "db3"})


# ---------------------------------------------------------------------------- switchover


def test_switchover_moves_the_primary_and_the_old_one_follows() -> None:
    plan = failover.plan_switchover(topology(healthy()), ALL, "db2")
    assert plan.new_primary.name == "db2"
    assert [n.name for n in plan.followers] == ["db3", "db1"]


@pytest.mark.parametrize(("target", "live", "reachable", "message"), [
    ("db2", lost_primary(), {"db2", "db3"}, "not a running primary"),
    (None, healthy(), ALL, "needs a target"),
    ("db1", healthy(), ALL, "already the primary"),
    ("db3", healthy(), ALL, "read-only replica"),
    ("db2", healthy(db2=standby(status="catchup")), ALL, "not streaming from db1"),
])
def test_switchover_refusals(target: str | None, live: dict, reachable: set[str],
                             message: str) -> None:
    with pytest.raises(ClusterStateError, match=message):
        failover.plan_switchover(topology(live), reachable, target)


def test_switchover_gates_on_lag_and_long_transactions_unless_forced() -> None:
    behind = healthy(db2=standby(receive="0/4000000"))
    with pytest.raises(ClusterStateError, match="replays 16777216 bytes behind"):
        failover.plan_switchover(topology(behind), ALL, "db2",
                                 limits=SwitchoverLimits(max_lag_bytes=1024))
    with pytest.raises(ClusterStateError, match=r"2 transaction.*up to 75s"):
        failover.plan_switchover(topology(healthy()), ALL, "db2", long_transactions=(2, 75))
    plan = failover.plan_switchover(topology(behind), ALL, "db2", force=True,
                                    limits=SwitchoverLimits(max_lag_bytes=1024),
                                    long_transactions=(2, 75))
    assert plan.new_primary.name == "db2"


def test_long_transactions_are_read_as_count_and_longest() -> None:
    assert failover.parse_long_transactions([["3", "120"]]) == (3, 120)
    assert failover.parse_long_transactions(None) == (0, 0)
    assert "interval '60 seconds'" in failover.long_transactions_sql(60)


# -------------------------------------------------------------------------------- rejoin


def test_rejoin_brings_back_a_reachable_node_under_a_running_primary() -> None:
    live = healthy(db1={**PRIMARY, "running": False}, db2=PRIMARY)
    assert failover.plan_rejoin(topology(live), ALL, "db1").name == "db1"


@pytest.mark.parametrize(("node", "live", "reachable", "message"), [
    (None, healthy(), ALL, "needs the node"),
    ("db1", healthy(), ALL, "is the primary"),
    ("db2", lost_primary(), {"db2", "db3"}, "not running: rejoin needs a running primary"),
    ("db3", healthy(), {"db1", "db2"}, "db3 is not reachable"),
])
def test_rejoin_refusals(node: str | None, live: dict, reachable: set[str],
                         message: str) -> None:
    with pytest.raises(ClusterStateError, match=message):
        failover.plan_rejoin(topology(live), reachable, node)


# ----------------------------------------------------------------- unreachable is not dead


def test_a_replica_streaming_from_an_unreachable_primary_proves_it_alive() -> None:
    live = {"db2": standby(), "db3": standby()}  # both still stream from db1 (10.0.0.1)
    for force in (False, True):
        with pytest.raises(ClusterStateError, match="db2 and db3 still stream WAL from db1"):
            failover.plan_failover(topology(live), {"db2", "db3"}, force=force)


@pytest.mark.parametrize(("silence", "timeout_ms", "heard"), [
    ("3.2", "15000", True),  # within the ping interval: the primary answered lately
    ("12.4", "15000", True),  # 7.5 s ping + 5 s margin
    ("12.6", "15000", False),  # a live primary would have answered the ping by now
    ("400", "0", True),  # wal_receiver_timeout = 0: no pings, so silence proves nothing
    (None, "15000", True),  # unknown: the doubt goes to refusing
])
def test_a_stream_proves_life_only_while_the_primary_answers(silence: str | None,
                                                             timeout_ms: str,
                                                             heard: bool) -> None:
    live = {**standby(), "receiver_timeout_ms": timeout_ms}
    if silence is not None:
        live["receiver_silence"] = silence
    assert failover.hears_from(live, "10.0.0.1") is heard
    assert failover.hears_from(live, "10.0.0.9") is False  # streams from someone else


def test_replicas_of_a_killed_primary_no_longer_hold_the_failover_back() -> None:
    silent = {**standby(), "receiver_silence": "20", "receiver_timeout_ms": "15000"}
    plan = failover.plan_failover(topology({"db2": silent, "db3": silent}), {"db2", "db3"})
    assert plan.new_primary.name == "db2"


def test_the_target_furthest_behind_the_known_end_of_wal_is_refused_unless_forced() -> None:
    live = lost_primary(db2=standby(receive="0/3000000", status=""),
                        db3=standby(receive="0/5000000", status=""))
    with pytest.raises(ClusterStateError) as caught:
        failover.plan_failover(topology(live), {"db2", "db3"}, target_name="db2",
                               limits=failover.FailoverLimits(max_lag_bytes=1024 * 1024))
    assert "db2 has WAL up to 0/3000000, 33554432 bytes behind" in str(caught.value)
    assert "(db3)" in str(caught.value) and "failover_max_lag_bytes" in str(caught.value)
    plan = failover.plan_failover(topology(live), {"db2", "db3"}, target_name="db2",
                                  force=True)
    assert plan.evidence is not None and plan.evidence.lag_bytes == 0x2000000


def test_the_end_of_the_archive_counts_and_so_does_wal_replayed_from_it() -> None:
    archive = failover.ArchiveState("000000010000000000000007", 2000.0)  # ends at 0/8000000
    live = lost_primary(db2=standby(receive="0/5000000", status=""))
    with pytest.raises(ClusterStateError, match=r"furthest known position 0/8000000 \(the end"):
        failover.plan_failover(topology(live), {"db2", "db3"}, archive=archive)
    caught_up = lost_primary(db2=standby(receive="0/5000000", replay="0/8000028", status=""))
    plan = failover.plan_failover(topology(caught_up), {"db2", "db3"}, archive=archive)
    assert plan.new_primary.name == "db2" and plan.evidence.lag_bytes == 0


def test_a_target_that_stopped_receiving_long_before_the_cluster_did_is_refused() -> None:
    archive = failover.ArchiveState("000000010000000000000004", 10_000.0)
    stale = {**standby(status=""), "wal_received_at": "4000.5"}
    live = lost_primary(db2=stale, db3={**standby(status=""), "wal_received_at": "9990"})
    with pytest.raises(ClusterStateError, match="stopped receiving WAL more than") as caught:
        failover.plan_failover(topology(live), {"db2", "db3"}, archive=archive, now=10_030.0,
                               limits=failover.FailoverLimits(max_receive_gap=600))
    assert "last received WAL 6030s ago, 6000s before the cluster's last" in str(caught.value)
    # The whole cluster idle as long: nothing was missed.
    idle = lost_primary(db2=stale, db3={**standby(status=""), "wal_received_at": "4000"})
    old_archive = failover.ArchiveState("000000010000000000000004", 3900.0)
    plan = failover.plan_failover(topology(idle), {"db2", "db3"}, archive=old_archive,
                                  now=10_030.0, limits=failover.FailoverLimits(max_receive_gap=600))
    assert plan.evidence.receive_gap == 0.0
