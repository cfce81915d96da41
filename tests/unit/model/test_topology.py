"""Who is primary, decided from live node states; split brain refused (tolerated only to
stop nodes)."""

from __future__ import annotations

import pytest

from pgcluster.errors import ClusterStateError
from pgcluster.model.topology import decide, refuse_empty_primary
from tests.unit.helpers import cluster

PRIMARY = {"running": True, "in_recovery": False, "data": True, "standby_signal": False}


def test_stop_tolerates_split_brain_but_nothing_else_does() -> None:
    live = {"db1": PRIMARY, "db2": PRIMARY, "db3": {}}
    with pytest.raises(ClusterStateError):
        decide(cluster(), live)
    topology = decide(cluster(), live, strict=False)
    assert topology.primary.host == "db1" and "split brain" in topology.notes[0]


STANDBY = {"running": True, "in_recovery": True, "data": True, "standby_signal": True}


EMPTY = {"running": False, "in_recovery": False, "data": False, "standby_signal": False}


STOPPED_PRIMARY = {**PRIMARY, "running": False}


def test_new_cluster_takes_the_inventory_primary() -> None:
    topology = decide(cluster(), {"db1": EMPTY, "db2": EMPTY, "db3": EMPTY})
    assert topology.primary.host == "db1"
    assert [n.host for n in topology.replicas] == ["db2", "db3"]
    assert topology.notes == []


def test_live_primary_wins_over_the_inventory_after_a_failover() -> None:
    topology = decide(cluster(), {"db1": EMPTY, "db2": PRIMARY, "db3": STANDBY})
    assert topology.primary.host == "db2"
    assert [n.host for n in topology.replicas] == ["db1", "db3"]
    assert "live primary is db2" in topology.notes[0]


def test_split_brain_is_refused() -> None:
    with pytest.raises(ClusterStateError, match="split brain: db1 and db2 both accept writes"):
        decide(cluster(), {"db1": PRIMARY, "db2": PRIMARY, "db3": STANDBY})


def test_stopped_primary_is_still_the_primary() -> None:
    topology = decide(cluster(), {"db1": STOPPED_PRIMARY, "db2": STANDBY, "db3": STANDBY})
    assert topology.primary.host == "db1"


def test_two_stopped_primaries_are_ambiguous() -> None:
    with pytest.raises(ClusterStateError, match="no primary is running"):
        decide(cluster(), {"db1": STOPPED_PRIMARY, "db2": STOPPED_PRIMARY, "db3": STANDBY})


def test_lost_primary_is_the_one_the_replicas_follow() -> None:
    # After a failover db2 is primary; now db2 is lost: db1 and db3 still follow it.
    follows_db2 = {**STANDBY, "primary_conninfo": "host=10.0.0.2 port=5432 user=replicator"}
    topology = decide(cluster(), {"db1": follows_db2, "db3": follows_db2})
    assert topology.primary.host == "db2"
    assert [n.host for n in topology.replicas] == ["db1", "db3"]


def test_no_empty_primary_over_nodes_that_hold_the_clusters_data() -> None:
    stopped_standby = {**STANDBY, "running": False, "system_identifier": "7301"}
    for replicas in ({"db2": STANDBY, "db3": STANDBY}, {"db2": EMPTY, "db3": stopped_standby}):
        topology = decide(cluster(), {"db1": EMPTY, **replicas})
        with pytest.raises(ClusterStateError, match="never creates an empty primary") as caught:
            refuse_empty_primary(topology)
        assert "pgcluster failover --to" in str(caught.value)
        assert "pgcluster restore --node db1" in str(caught.value)
    assert "system identifier 7301" in str(caught.value)


def test_initdb_only_when_every_node_answers_and_is_empty() -> None:
    refuse_empty_primary(decide(cluster(), {"db1": EMPTY, "db2": EMPTY, "db3": EMPTY}))
    refuse_empty_primary(decide(cluster(), {"db1": PRIMARY, "db2": EMPTY, "db3": EMPTY}))
    with pytest.raises(ClusterStateError, match="db3 cannot be reached"):
        refuse_empty_primary(decide(cluster(), {"db1": EMPTY, "db2": EMPTY}))
