"""Cascading replicas in the plans: the live topology's lost nodes, sources, downstreams
and depths; the failover and switchover plans' sources once the new primary is up; the
Patroni tags, the cluster without a retired node, the lab's `upstream`; and the steps'
decisions (re-pointing a cascade, what `pgcluster remove` refuses)."""

from __future__ import annotations

from typing import Any

import pytest

from pgcluster.control.preflight import validate_inventory
from pgcluster.errors import ClusterStateError
from pgcluster.lab.definition import load_lab
from pgcluster.model import failover
from pgcluster.model.cluster import Cluster, HostEntry, Node, UnknownNode
from pgcluster.model.patroni import patroni_tags
from pgcluster.model.topology import Topology, decide
from pgcluster.steps import remove
from pgcluster.steps.replicas import repoint
from tests.unit.fakes import FakeHost
from tests.unit.helpers import ALL, SECRETS, entry, lab_named_cascade

DATA = {**ALL, **SECRETS}


def node(name: str, role: str, number: int, **data: Any) -> HostEntry:
    return entry(name, role, node_address=f"10.0.0.{number}", **data)


def five(*extra: HostEntry, **data: Any) -> Cluster:
    """db1 the primary; db2 and db3 standbys; db4 a readonly of the primary; db5 a readonly
    that cascades from db3."""
    return Cluster.from_entries([
        node("db1", "primary", 1, **data),
        node("db2", "standby", 2, **data),
        node("db3", "standby", 3, **data),
        node("db4", "readonly", 4, **data),
        node("db5", "readonly", 5, upstream="db3", **data),
        *extra,
    ])


def chain() -> Cluster:
    """db1 <- db2 <- db3 <- db4: a standby of the primary, a standby of it, a readonly of
    that (depth 3); db5 a readonly whose upstream is the primary itself."""
    return Cluster.from_entries([
        node("db1", "primary", 1),
        node("db2", "standby", 2),
        node("db3", "standby", 3, upstream="db2"),
        node("db4", "readonly", 4, upstream="db3"),
        node("db5", "readonly", 5, upstream="db1"),
    ])


PRIMARY = {"running": True, "in_recovery": False, "data": True, "standby_signal": False,
           "current_lsn": "0/5000000", "timeline": "1"}


def standby(follows: int, receive: str = "0/5000000", streaming: bool = True) -> dict:
    """A running standby whose primary_conninfo names 10.0.0.<follows>; its WAL receiver
    streams from there, or (streaming=False) has lost it."""
    address = f"10.0.0.{follows}"
    return {"running": True, "in_recovery": True, "data": True, "standby_signal": True,
            "receive_lsn": receive, "replay_lsn": receive,
            "receiver_status": "streaming" if streaming else "",
            "sender_host": address if streaming else "",
            "primary_conninfo": f"host={address} port=5432 user=replicator"}


STOPPED_STANDBY = {"running": False, "in_recovery": False, "data": True,
                   "standby_signal": True}
EMPTY = {"running": False, "in_recovery": False, "data": False, "standby_signal": False}


def healthy_five() -> dict[str, dict]:
    return {"db1": PRIMARY, "db2": standby(1), "db3": standby(1), "db4": standby(1),
            "db5": standby(3)}


def names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


def by_name(topology: Topology) -> dict[str, Node]:
    return {n.name: n for n in topology.cluster.nodes}


# ------------------------------------------------------------------------ the topology

def test_lost_is_the_nodes_without_live_state() -> None:
    live = {"db1": PRIMARY, "db2": standby(1), "db3": STOPPED_STANDBY, "db4": EMPTY}
    topology = decide(five(), live)
    # db5 answered nothing; db3 (stopped, with data) and db4 (no data yet) answered.
    assert topology.lost == {"db5"}
    n = by_name(topology)
    # A stopped upstream is not skipped: the deploy starts it.
    assert topology.source(n["db5"]) == n["db3"]
    assert decide(five(), healthy_five()).lost == set()


def test_lost_names_inventory_hosts() -> None:
    cluster = lab_named_cascade()
    a, b, c = cluster.nodes
    up = decide(cluster, {"@lab/pg-a": PRIMARY, "@lab/pg-b": standby(1),
                          "@lab/pg-c": standby(2)})
    assert up.lost == set() and up.source(c) == b and up.depth(c) == 2
    gone = decide(cluster, {"@lab/pg-a": PRIMARY, "@lab/pg-c": standby(2, streaming=False)})
    assert gone.lost == {"@lab/pg-b"}
    assert gone.source(c) == a and gone.depth(c) == 1
    assert gone.downstream(a) == [b, c] and gone.downstream(b) == []


def test_source_follows_the_upstream_and_skips_a_lost_one() -> None:
    topology = decide(five(), healthy_five())
    n = by_name(topology)
    assert {name: topology.source(n[name]).name for name in ("db2", "db3", "db4", "db5")} == {
        "db2": "db1", "db3": "db1", "db4": "db1", "db5": "db3"}
    # db3 out of reach: its cascade streams from the primary meanwhile.
    live = healthy_five()
    del live["db3"]
    past = decide(five(), live)
    assert past.lost == {"db3"}
    assert past.source(n["db5"]) == n["db1"]
    # An explicit `lost` overrides the run's.
    assert past.source(n["db5"], lost=set()) == n["db3"]
    assert topology.source(n["db5"], lost={"db3"}) == n["db1"]


def test_a_cascade_whose_upstream_is_the_live_primary_streams_from_it() -> None:
    # After a failover to db3 (db1 gone): db3 is the live primary, db5's upstream.
    live = {"db2": standby(3), "db3": PRIMARY, "db4": standby(3), "db5": standby(3)}
    topology = decide(five(), live)
    n = by_name(topology)
    assert topology.primary == n["db3"]
    assert topology.source(n["db5"]) == n["db3"] and topology.depth(n["db5"]) == 1
    assert names(topology.downstream(n["db3"])) == ["db1", "db2", "db4", "db5"]
    assert topology.lost == {"db1"}


def test_downstream() -> None:
    topology = decide(five(), healthy_five())
    n = by_name(topology)
    assert names(topology.downstream(n["db1"])) == ["db2", "db3", "db4"]
    assert names(topology.downstream(n["db3"])) == ["db5"]
    assert topology.downstream(n["db2"]) == [] and topology.downstream(n["db5"]) == []
    # db3 lost: its cascade moves to the primary; db3 itself stays the primary's.
    live = healthy_five()
    del live["db3"]
    past = decide(five(), live)
    assert names(past.downstream(n["db1"])) == ["db2", "db3", "db4", "db5"]
    assert past.downstream(n["db3"]) == []
    assert names(past.downstream(n["db3"], lost=set())) == ["db5"]


def test_depth() -> None:
    cluster = chain()
    live = {"db1": PRIMARY, "db2": standby(1), "db3": standby(2), "db4": standby(3),
            "db5": standby(1)}
    topology = decide(cluster, live)
    assert {n.name: topology.depth(n) for n in cluster.nodes} == {
        "db1": 0, "db2": 1, "db3": 2, "db4": 3, "db5": 1}
    # db3 lost: db4 skips it to db2 (db3 itself is still counted below db2).
    del live["db3"]
    past = decide(cluster, live)
    assert {n.name: past.depth(n) for n in cluster.nodes} == {
        "db1": 0, "db2": 1, "db3": 2, "db4": 2, "db5": 1}
    # db2 lost as well: db4 goes up the chain to the primary.
    del live["db2"]
    both = decide(cluster, live)
    assert {n.name: both.depth(n) for n in cluster.nodes} == {
        "db1": 0, "db2": 1, "db3": 1, "db4": 1, "db5": 1}


def test_depth_after_the_middle_of_the_chain_is_promoted() -> None:
    # db2 promoted (db1 gone): db3 streams from it, db4 from db3.
    cluster = chain()
    live = {"db2": PRIMARY, "db3": standby(2), "db4": standby(3), "db5": standby(2)}
    topology = decide(cluster, live)
    assert topology.primary.name == "db2"
    assert {n.name: topology.depth(n) for n in cluster.nodes} == {
        "db1": 1, "db2": 0, "db3": 1, "db4": 2, "db5": 1}


# ------------------------------------------------------------------------------ failover

def lost_primary(**receive: str) -> dict[str, dict]:
    """db1 is down: the standbys of it no longer stream; db5 still streams from db3."""
    lsn = {"db2": "0/4000000", "db3": "0/4000000", "db4": "0/4000000", "db5": "0/4000000",
           **receive}
    return {"db2": standby(1, lsn["db2"], streaming=False),
            "db3": standby(1, lsn["db3"], streaming=False),
            "db4": standby(1, lsn["db4"], streaming=False),
            "db5": standby(3, lsn["db5"])}


def test_failover_to_the_upstream_of_a_cascade() -> None:
    live = lost_primary(db3="0/5000000", db5="0/4800000")
    plan = failover.plan_failover(decide(five(), live), set(live))
    n = by_name(plan.topology)
    assert plan.new_primary == n["db3"] and plan.old_primary == n["db1"]
    assert names(plan.followers) == ["db2", "db4", "db5"]
    assert plan.lost == {"db1"} and names(plan.unreachable) == ["db1"]
    assert {f.name: plan.source(f).name for f in plan.followers} == {
        "db2": "db3", "db4": "db3", "db5": "db3"}
    assert names(plan.downstream(n["db3"])) == ["db2", "db4", "db5"]
    assert plan.downstream(n["db2"]) == [] and plan.downstream(n["db5"]) == []


def test_failover_to_another_standby_keeps_the_cascade_on_its_upstream() -> None:
    live = lost_primary(db2="0/6000000", db3="0/5000000")
    plan = failover.plan_failover(decide(five(), live), set(live))
    n = by_name(plan.topology)
    assert plan.new_primary == n["db2"]
    assert names(plan.followers) == ["db3", "db4", "db5"]
    assert plan.source(n["db5"]) == n["db3"]  # alive: db5 stays its cascade
    assert plan.source(n["db3"]) == n["db2"] and plan.source(n["db4"]) == n["db2"]
    assert names(plan.downstream(n["db2"])) == ["db3", "db4"]
    assert names(plan.downstream(n["db3"])) == ["db5"]
    # The old primary, once back, streams from the new one.
    assert plan.source(n["db1"]) == n["db2"]


def test_failover_with_the_upstream_of_a_cascade_out_of_reach_too() -> None:
    live = lost_primary(db2="0/6000000")
    del live["db3"]
    live["db5"] = standby(3, streaming=False)
    plan = failover.plan_failover(decide(five(), live), set(live))
    n = by_name(plan.topology)
    assert plan.new_primary == n["db2"]
    assert plan.lost == {"db1", "db3"} and names(plan.unreachable) == ["db1", "db3"]
    assert names(plan.followers) == ["db4", "db5"]
    assert plan.source(n["db5"]) == n["db2"]
    assert names(plan.downstream(n["db2"])) == ["db4", "db5"]
    assert plan.downstream(n["db3"]) == []


def test_failover_loses_the_old_primary_a_switchover_keeps_it() -> None:
    """db6 cascades from the primary itself: after a failover it streams from the new
    primary; after a switchover from the old one, now a standby that serves WAL."""
    db6 = node("db6", "readonly", 6, upstream="db1")
    live = {**lost_primary(db2="0/6000000"), "db6": standby(1, streaming=False)}
    failed = failover.plan_failover(decide(five(db6), live), set(live))
    n = by_name(failed.topology)
    assert failed.lost == {"db1"}
    assert failed.source(n["db6"]) == n["db2"]
    assert failed.downstream(n["db1"]) == []

    healthy = {**healthy_five(), "db2": {**standby(1), "current_lsn": "0/5000000"},
               "db6": standby(1)}
    moved = failover.plan_switchover(decide(five(db6), healthy), set(healthy), "db2")
    assert moved.lost == set() and moved.unreachable == []
    assert names(moved.followers) == ["db3", "db4", "db5", "db6", "db1"]
    assert moved.source(n["db6"]) == n["db1"] and moved.source(n["db1"]) == n["db2"]
    assert moved.source(n["db5"]) == n["db3"]
    assert names(moved.downstream(n["db1"])) == ["db6"]
    assert names(moved.downstream(n["db2"])) == ["db3", "db4", "db1"]


def test_switchover_to_the_upstream_of_a_cascade() -> None:
    live = healthy_five()
    plan = failover.plan_switchover(decide(five(), live), set(live), "db3")
    n = by_name(plan.topology)
    assert plan.lost == set()
    assert names(plan.followers) == ["db2", "db4", "db5", "db1"]
    assert {f.name: plan.source(f).name for f in plan.followers} == {
        "db2": "db3", "db4": "db3", "db5": "db3", "db1": "db3"}
    assert names(plan.downstream(n["db3"])) == ["db2", "db4", "db5", "db1"]


def test_a_switchover_loses_only_the_unreachable() -> None:
    live = healthy_five()
    del live["db3"]
    plan = failover.plan_switchover(decide(five(), live), set(live), "db2")
    n = by_name(plan.topology)
    assert plan.lost == {"db3"} and names(plan.unreachable) == ["db3"]
    assert names(plan.followers) == ["db4", "db5", "db1"]
    assert plan.source(n["db5"]) == n["db2"]  # past its lost upstream


# ---------------------------------------------------------------------------- patroni

def test_patroni_tags_of_a_cascade() -> None:
    cluster = Cluster.from_entries([
        node("db1", "primary", 1), node("db2", "standby", 2),
        node("db3", "standby", 3, upstream="db2"),
        node("db4", "readonly", 4, upstream="db3"),
    ])
    db1, db2, db3, db4 = cluster.nodes
    assert patroni_tags(DATA, db3) == {"nofailover": False, "noloadbalance": False,
                                       "clonefrom": False, "nosync": True,
                                       "replicatefrom": "db2"}
    assert patroni_tags(DATA, db4)["replicatefrom"] == "db3"
    assert patroni_tags(DATA, db4)["nosync"] is True
    # Named in synchronous_standbys (validation refuses that with an upstream): still nosync.
    assert patroni_tags({**DATA, "synchronous_standbys": ["db3"]}, db3)["nosync"] is True
    for plain in (db1, db2):
        assert "replicatefrom" not in patroni_tags(DATA, plain)
    assert patroni_tags(DATA, db2)["nosync"] is False


# ------------------------------------------------------------------ the cluster without

def test_cluster_without_a_node() -> None:
    cluster = five(entry("px", "proxy", node_address="10.0.2.1"),
                   entry("mon", "monitor", node_address="10.0.2.2"),
                   entry("s3", "objectstore", node_address="10.0.2.3"),
                   entry("e1", "etcd", node_address="10.0.2.4"))
    rest = cluster.without("db4")
    assert names(list(rest.nodes)) == ["db1", "db2", "db3", "db5"]
    assert not rest.is_node("db4")
    assert (rest.proxy_hosts, rest.monitor_hosts, rest.objectstore_hosts, rest.etcd_hosts) == (
        cluster.proxy_hosts, cluster.monitor_hosts, cluster.objectstore_hosts,
        cluster.etcd_hosts)
    assert [h.name for h in rest.proxy_hosts] == ["px"] and rest.etcd_hosts
    assert len(cluster.nodes) == 5  # the cluster itself is unchanged
    with pytest.raises(UnknownNode, match="no node named 'db9'"):
        cluster.without("db9")


def test_cluster_without_a_node_by_its_inventory_host() -> None:
    cluster = Cluster.from_entries([
        HostEntry("@lab/pg-a", ("primary",), {"node_address": "10.0.0.1"}),
        HostEntry("@lab/pg-b", ("standby",), {"node_address": "10.0.0.2"}),
    ])
    assert names(list(cluster.without("@lab/pg-b").nodes)) == ["pg-a"]
    assert names(list(cluster.without("pg-b").nodes)) == ["pg-a"]


def test_the_inventory_primary_is_not_removed_while_the_inventory_says_primary() -> None:
    """After a failover to db2 the inventory still names db1 primary: removing db1 would
    leave a cluster with no node in `primary`, so the inventory must be brought in line
    with the live cluster first."""
    live = {"db1": standby(2), "db2": PRIMARY, "db3": standby(2), "db4": standby(2),
            "db5": standby(3)}
    topology = decide(five(), live)
    assert topology.primary.name == "db2"
    with pytest.raises(ClusterStateError, match="in the inventory's `primary` group"):
        remove_plan(topology, remove_node="db1")


# -------------------------------------------------------------------------------- the lab

def test_the_wide_lab_has_a_cascade() -> None:
    lab = load_lab("wide")
    cascade = lab.node("pgwide-readonly2")
    assert cascade.upstream == "pgwide-standby2"
    assert lab.host_data(cascade)["upstream"] == "pgwide-standby2"
    for other in lab.nodes:
        if other != cascade:
            assert other.upstream is None and "upstream" not in lab.host_data(other)
    # The inventory built from it validates, and the cascade streams from its upstream.
    cluster = validate_inventory(
        HostEntry(f"@lab/{n.name}", (n.role,), {**DATA, **lab.host_data(n)})
        for n in lab.nodes)
    primary, upstream, mine = (cluster.find(f"pgwide-{x}")
                               for x in ("primary", "standby2", "readonly2"))
    assert cluster.source(mine, primary) == upstream
    assert cluster.source(mine, upstream) == upstream  # promoted: still its cascade
    assert cluster.expected_slots(upstream, primary) == ["pgwide_readonly2"]


def test_a_lab_file_node_with_an_upstream(tmp_path) -> None:
    text = (load_lab.__globals__["LAB_DIR"] / "seed.toml").read_text()
    marker = 'name = "postgresql-readonly"'
    assert marker in text
    path = tmp_path / "cascade.toml"
    path.write_text(text.replace(marker, f'{marker}\nupstream = "postgresql-standby"'))
    lab = load_lab(str(path))
    assert lab.host_data(lab.node("readonly"))["upstream"] == "postgresql-standby"
    assert "upstream" not in lab.host_data(lab.node("standby"))
    assert "upstream" not in load_lab("seed").host_data(load_lab("seed").node("readonly"))


# ------------------------------------------------------------- re-pointing a cascade

def test_repoint_only_a_running_cascade_that_follows_another_node_than_its_source() -> None:
    # db3 is back, db5 still follows the primary (it went there while db3 was lost).
    live = {**healthy_five(), "db5": standby(1)}
    topology = decide(five(), live)
    n = by_name(topology)
    assert topology.source(n["db5"]) == n["db3"]
    assert repoint(topology, n["db5"]) is True
    # Following its source: nothing to do.
    assert repoint(decide(five(), healthy_five()), n["db5"]) is False
    # No upstream: never moved by a deploy, even following another node.
    odd = decide(five(), {**healthy_five(), "db4": standby(3)})
    assert repoint(odd, n["db4"]) is False
    # Not running (or not a standby, or no conninfo to read): nothing to re-point.
    for state in (STOPPED_STANDBY, EMPTY, {**standby(1), "running": False},
                  {**standby(1), "primary_conninfo": None}):
        assert repoint(decide(five(), {**healthy_five(), "db5": state}), n["db5"]) is False
    # Unreachable: no live state at all.
    gone = healthy_five()
    del gone["db5"]
    assert repoint(decide(five(), gone), n["db5"]) is False


def test_repoint_a_cascade_whose_upstream_is_lost() -> None:
    live = healthy_five()
    del live["db3"]
    live["db5"] = standby(3, streaming=False)  # still waits for db3
    topology = decide(five(), live)
    n = by_name(topology)
    assert topology.source(n["db5"]) == n["db1"]
    assert repoint(topology, n["db5"]) is True
    # Already moved to the primary meanwhile: nothing to do.
    assert repoint(decide(five(), {**live, "db5": standby(1)}), n["db5"]) is False


# -------------------------------------------------------------- what remove refuses

def remove_plan(topology: Topology, monkeypatch: pytest.MonkeyPatch | None = None,
                **data: Any) -> Node:
    fake = FakeHost("db1", data={**DATA, **data})
    if monkeypatch is not None:
        monkeypatch.setattr(remove, "host", fake)
        return remove.plan(topology)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(remove, "host", fake)
        return remove.plan(topology)


def test_remove_needs_a_node(monkeypatch: pytest.MonkeyPatch) -> None:
    topology = decide(five(), healthy_five())
    with pytest.raises(ClusterStateError, match="remove needs the node to retire"):
        remove_plan(topology, monkeypatch)
    with pytest.raises(ClusterStateError, match="remove needs the node to retire"):
        remove_plan(topology, monkeypatch, remove_node="")
    with pytest.raises(UnknownNode, match="no node named 'db9'"):
        remove_plan(topology, monkeypatch, remove_node="db9")


def test_remove_refuses_the_live_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClusterStateError) as caught:
        remove_plan(decide(five(), healthy_five()), monkeypatch, remove_node="db1")
    message = str(caught.value)
    assert "db1 is the primary" in message and "switchover" in message
    assert "`pgcluster switchover --to db2`" in message
    # After a failover the live primary is refused, whatever the inventory says.
    live = {"db2": standby(3), "db3": PRIMARY, "db4": standby(3), "db5": standby(3)}
    with pytest.raises(ClusterStateError, match="db3 is the primary"):
        remove_plan(decide(five(), live), monkeypatch, remove_node="db3")


def test_remove_refuses_a_node_others_cascade_from(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClusterStateError) as caught:
        remove_plan(decide(five(), healthy_five()), monkeypatch, remove_node="db3")
    assert str(caught.value).startswith(
        'db5 streams from db3 (upstream = "db3"): give it another upstream')
    db6 = node("db6", "readonly", 6, upstream="db3")
    live = {**healthy_five(), "db6": standby(3)}
    with pytest.raises(ClusterStateError, match=r"db5, db6 stream from db3 .*give them"):
        remove_plan(decide(five(db6), live), monkeypatch, remove_node="db3")


def test_remove_refuses_a_synchronous_standby(monkeypatch: pytest.MonkeyPatch) -> None:
    topology = decide(five(), healthy_five())
    with pytest.raises(ClusterStateError,
                       match="db2 is in synchronous_standbys: take it out of that list"):
        remove_plan(topology, monkeypatch, remove_node="db2", synchronous_standbys=["db2"])
    assert remove_plan(topology, monkeypatch, remove_node="db2",
                       synchronous_standbys=["db3"]).name == "db2"


def test_remove_a_plain_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    topology = decide(five(), healthy_five())
    retired = remove_plan(topology, monkeypatch, remove_node="db4")
    assert retired == by_name(topology)["db4"]
    # The end of a cascade too (nothing streams from it).
    assert remove_plan(topology, monkeypatch, remove_node="db5").name == "db5"
    # A node out of reach may be retired as well.
    live = healthy_five()
    del live["db4"]
    assert remove_plan(decide(five(), live), monkeypatch, remove_node="db4").name == "db4"
