"""Cascading replicas: `upstream` in host data, where each replica streams from now
(promoted and lost upstreams), the slots each node should hold, the orphans, and the
validation of what may cascade from what."""

from __future__ import annotations

from typing import Any

import pytest

from pgcluster.control.preflight import validate_inventory
from pgcluster.model import validation
from pgcluster.model.cluster import (
    Cluster,
    HostEntry,
    Node,
    UnknownNode,
    orphaned_slots,
    role_of,
)
from tests.unit.helpers import SCHEMA, entry, lab_named_cascade, three_nodes


def node(name: str, role: str, number: int, **data: Any) -> HostEntry:
    return entry(name, role, node_address=f"10.0.0.{number}", **data)


def chain() -> Cluster:
    """db1 the primary; db2 a standby of it; db3 a standby of db2; db4 a readonly of db3
    (depth 3 below the primary); db5 a readonly of the primary; db-far a readonly of db4."""
    return Cluster.from_entries([
        node("db1", "primary", 1),
        node("db2", "standby", 2),
        node("db3", "standby", 3, upstream="db2"),
        node("db4", "readonly", 4, upstream="db3"),
        node("db5", "readonly", 5),
        node("db-far", "readonly", 6, upstream="db4"),
    ])


def names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


def problems(entries: list[HostEntry]) -> list[str]:
    return validation.problems(entries, SCHEMA)


def only_problem(entries: list[HostEntry]) -> str:
    found = problems(entries)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------------------ the model

def test_upstream_comes_from_host_data() -> None:
    cluster = chain()
    assert [n.upstream for n in cluster.nodes] == [None, None, "db2", "db3", None, "db4"]
    assert Cluster.from_entries(three_nodes()).nodes[2].upstream is None


def test_upstream_of_and_downstream_of() -> None:
    cluster = chain()
    db1, db2, db3, db4, db5, far = cluster.nodes
    assert cluster.upstream_of(db1) is None and cluster.upstream_of(db2) is None
    assert cluster.upstream_of(db3) == db2 and cluster.upstream_of(far) == db4
    assert names(cluster.downstream_of(db2)) == ["db3"]
    assert names(cluster.downstream_of(db4)) == ["db-far"]
    # Only the inventory's cascade: the primary's own replicas have no upstream.
    assert cluster.downstream_of(db1) == [] and cluster.downstream_of(db5) == []


def test_upstream_of_an_unknown_node_raises() -> None:
    cluster = Cluster.from_entries([node("db1", "primary", 1),
                                    node("db2", "readonly", 2, upstream="db9")])
    with pytest.raises(UnknownNode, match="'db9', is not a node of this inventory"):
        cluster.upstream_of(cluster.nodes[1])


def test_source_follows_the_inventory_when_nothing_is_lost() -> None:
    cluster = chain()
    db1, *replicas = cluster.nodes
    assert [cluster.source(n, db1).name for n in replicas] == ["db1", "db2", "db3", "db1",
                                                                "db4"]


def test_source_of_the_primary_is_refused() -> None:
    cluster = chain()
    with pytest.raises(ValueError, match="streams from no one"):
        cluster.source(cluster.nodes[0], cluster.nodes[0])


def test_a_lost_upstream_is_skipped_for_its_own_source() -> None:
    cluster = chain()
    db1, db2, db3, db4, _, far = cluster.nodes
    assert cluster.source(db4, db1, lost=["db3"]) == db2
    # Two lost in a row: up the chain to the first that serves, else the primary.
    assert cluster.source(far, db1, lost=["db4", "db3"]) == db2
    assert cluster.source(far, db1, lost=["db4", "db3", "db2"]) == db1
    assert cluster.source(db3, db1, lost=["db2"]) == db1
    # Lost nodes below or beside the chain change nothing.
    assert cluster.source(db4, db1, lost=["db-far", "db5"]) == db3


def test_lost_may_name_inventory_hosts() -> None:
    cluster = lab_named_cascade()
    a, b, c = cluster.nodes
    assert cluster.source(c, a) == b
    assert cluster.source(c, a, lost=["@lab/pg-b"]) == a


def test_a_cascade_keeps_streaming_from_its_promoted_upstream() -> None:
    cluster = chain()
    db1, db2, db3, db4, db5, far = cluster.nodes
    # db2 promoted: db3 streams from it, now the primary; the rest of the chain stays.
    assert cluster.source(db3, db2) == db2
    assert cluster.source(db4, db2) == db3 and cluster.source(far, db2) == db4
    # The old primary, back as a replica, and db5 stream from the new primary.
    assert cluster.source(db1, db2) == db2 and cluster.source(db5, db2) == db2
    # db3 promoted (its own upstream is ignored while it is primary): db4 streams from it,
    # db2 from it too (db2 has no upstream).
    assert cluster.source(db4, db3) == db3 and cluster.source(db2, db3) == db3


def test_a_promoted_node_in_the_middle_of_a_lost_chain() -> None:
    cluster = chain()
    _, db2, db3, db4, _, far = cluster.nodes
    # db3 promoted while db4 is lost: db-far skips db4 to db4's source, the primary db3.
    assert cluster.source(far, db3, lost=["db4"]) == db3
    # db2 promoted, db1 (the old primary) and db3 lost: db4 goes to db2.
    assert cluster.source(db4, db2, lost=["db1", "db3"]) == db2


def test_source_never_returns_the_node_itself_even_on_a_cycle() -> None:
    # Validation refuses cycles; source still ends, at the primary.
    cluster = Cluster.from_entries([
        node("db1", "primary", 1),
        node("db2", "readonly", 2, upstream="db3"),
        node("db3", "readonly", 3, upstream="db2"),
    ])
    db1, db2, db3 = cluster.nodes
    assert cluster.source(db2, db1) == db3
    assert cluster.source(db2, db1, lost=["db3"]) == db1
    self_upstream = Cluster.from_entries([node("db1", "primary", 1),
                                          node("db2", "readonly", 2, upstream="db2")])
    assert self_upstream.source(self_upstream.nodes[1], self_upstream.nodes[0]).name == "db1"


def test_expected_slots() -> None:
    cluster = chain()
    db1 = cluster.nodes[0]
    expected = {n.name: cluster.expected_slots(n, db1) for n in cluster.nodes}
    assert expected == {"db1": ["db2", "db5"], "db2": ["db3"], "db3": ["db4"],
                        "db4": ["db_far"], "db5": [], "db-far": []}


def test_expected_slots_with_a_lost_upstream() -> None:
    cluster = chain()
    db1, db2, db3, *_ = cluster.nodes
    lost = ["db3"]
    # db4 re-pointed to db2; db3 itself keeps its slot on db2 (it needs that WAL back).
    assert cluster.expected_slots(db2, db1, lost) == ["db3", "db4"]
    assert cluster.expected_slots(db3, db1, lost) == []
    assert cluster.expected_slots(db1, db1, lost) == ["db2", "db5"]


def test_expected_slots_after_a_promotion() -> None:
    cluster = chain()
    db1, db2, db3, *_ = cluster.nodes
    # db2 promoted: the old primary and db5 need their slots there, beside db3's.
    assert cluster.expected_slots(db2, db2) == ["db1", "db3", "db5"]
    assert cluster.expected_slots(db1, db2) == []
    assert cluster.expected_slots(db3, db2) == ["db4"]


def test_every_replica_has_exactly_one_expected_slot() -> None:
    cluster = chain()
    for primary in cluster.nodes[:3]:
        for lost in ((), ("db3",), ("db2", "db4")):
            slots = [s for n in cluster.nodes for s in cluster.expected_slots(n, primary, lost)]
            replicas = [n.slot for n in cluster.nodes if n != primary]
            assert sorted(slots) == sorted(replicas), (primary.name, lost)


def test_orphaned_slots() -> None:
    known = ["db1", "db2", "db3", "db4"]
    # db9 was removed from the inventory; db4 now streams from another node.
    assert orphaned_slots(["db4", "db9", "db2", "db3"], ["db2", "db3"], known) == [
        "db4", "db9"]
    assert orphaned_slots(["db2"], ["db2", "db3"], known) == []  # a missing one is no orphan
    assert orphaned_slots([], [], known) == []
    assert orphaned_slots(["zz", "aa", "aa"], [], []) == ["aa", "zz"]  # sorted, once each


def test_orphaned_slots_on_a_re_pointed_cascade() -> None:
    cluster = chain()
    db1, db2, *_ = cluster.nodes
    known = [n.slot for n in cluster.nodes]
    # db3 was lost, db4 streamed from db2 meanwhile; db3 is back: db4's slot on db2 goes.
    assert orphaned_slots(["db3", "db4"], cluster.expected_slots(db2, db1), known) == ["db4"]
    # A lost replica's slot is never an orphan on its source.
    assert orphaned_slots(["db3"], cluster.expected_slots(db2, db1, ["db3"]), known) == []


# ------------------------------------------------------------------------------ validation

def test_a_valid_cascade() -> None:
    entries = [node("db1", "primary", 1), node("db2", "standby", 2),
               node("db3", "standby", 3, upstream="db2"),
               node("db4", "readonly", 4, upstream="db3"),
               node("db5", "readonly", 5, upstream="db4"),
               node("db6", "readonly", 6, upstream="db1")]  # the primary: allowed
    cluster = validate_inventory(entries)
    assert [n.upstream for n in cluster.nodes] == [None, None, "db2", "db3", "db4", "db1"]


def test_any_number_of_standbys_and_readonly_replicas() -> None:
    # Seven replicas cloned at once hold 14 connections on the primary: the default 10
    # senders are refused, with the number to set.
    senders = {"max_wal_senders": 14}
    entries = [node("db1", "primary", 1, **senders),
               *(node(f"db{i}", "standby", i, **senders) for i in range(2, 5)),
               *(node(f"db{i}", "readonly", i, **senders) for i in range(5, 9))]
    assert problems(entries) == []
    fewer = [node(e.name, role_of(e)[0], i + 1) for i, e in enumerate(entries)]
    assert "max_wal_senders = 10 on db1 is too low for 7 replicas cloned at once (two " \
           "connections each): set it to at least 14" in problems(fewer)


def test_upstream_that_names_no_node() -> None:
    nodes = three_nodes()
    nodes[2] = node("db3", "readonly", 3, upstream="db9")
    assert only_problem(nodes) == (
        "upstream on db3 names db9, not a database node of this cluster (db1, db2, db3): set "
        "it to the node_name of the node db3 should stream from, or remove it to stream from "
        "the primary")


def test_upstream_that_names_a_service_host() -> None:
    nodes = [*three_nodes()[:2], node("db3", "readonly", 3, upstream="px"),
             entry("px", "proxy", node_address="10.0.2.1")]
    message = only_problem(nodes)
    assert "names px, not a database node of this cluster (db1, db2, db3; px is a service " \
           "host, which runs no PostgreSQL)" in message


def test_upstream_that_names_an_inventory_host_instead_of_a_node_name() -> None:
    nodes = [*three_nodes()[:2], node("db3", "readonly", 3, upstream="db2"),
             node("host4", "readonly", 4, node_name="db4", upstream="host4")]
    assert "names host4, not a database node of this cluster (db1, db2, db3, db4)" \
        in only_problem(nodes)


def test_upstream_that_is_not_a_node_name_is_refused_by_its_type() -> None:
    nodes = three_nodes()
    nodes[2] = node("db3", "readonly", 3, upstream="db.2")
    assert only_problem(nodes).startswith(
        "upstream = 'db.2' on db3 is not a valid node name")


def test_upstream_on_itself() -> None:
    nodes = three_nodes()
    nodes[2] = node("db3", "readonly", 3, upstream="db3")
    assert only_problem(nodes) == (
        "upstream on db3 names db3 itself: a replica streams from another node; name that "
        "node, or remove upstream to stream from the primary")


def test_upstream_on_the_primary() -> None:
    nodes = three_nodes()
    nodes[0] = node("db1", "primary", 1, upstream="db2")
    message = only_problem(nodes)
    assert message.startswith("upstream on db1 names db2, but db1 is the primary, which "
                              "streams from no one: remove upstream from its data")


def test_upstream_in_group_data_reaches_the_primary_and_the_upstream() -> None:
    found = problems(three_nodes(upstream="db2"))
    assert len(found) == 2, found
    assert found[0].startswith("upstream on db1 names db2, but db1 is the primary")
    assert found[1].startswith("upstream on db2 names db2 itself")


def test_a_cycle_is_named_once() -> None:
    entries = [node("db1", "primary", 1), node("db2", "standby", 2),
               node("db3", "readonly", 3, upstream="db5"),
               node("db4", "readonly", 4, upstream="db3"),
               node("db5", "readonly", 5, upstream="db4"),
               node("db6", "readonly", 6, upstream="db4")]  # hangs off the cycle
    assert only_problem(entries) == (
        "upstream makes a cycle, db3 -> db5 -> db4 -> db3: every chain of upstreams must end "
        "at the primary; remove upstream from one of these nodes")


def test_two_cycles() -> None:
    entries = [node("db1", "primary", 1),
               node("db2", "standby", 2, upstream="db3"),
               node("db3", "standby", 3, upstream="db2"),
               node("db4", "readonly", 4, upstream="db5"),
               node("db5", "readonly", 5, upstream="db4")]
    found = problems(entries)
    assert [m.split(":")[0] for m in found] == ["upstream makes a cycle, db2 -> db3 -> db2",
                                                "upstream makes a cycle, db4 -> db5 -> db4"]


def test_a_chain_through_the_primary_is_no_cycle() -> None:
    # db1's upstream is refused on its own; db2 -> db1 ends at the primary.
    entries = [node("db1", "primary", 1, upstream="db2"),
               node("db2", "standby", 2, upstream="db1"), node("db3", "readonly", 3)]
    found = problems(entries)
    assert len(found) == 1 and "db1 is the primary" in found[0], found


def test_a_standby_cascades_only_from_a_promotable_node() -> None:
    nodes = three_nodes()
    nodes[1] = node("db2", "standby", 2, upstream="db3")
    assert only_problem(nodes) == (
        "upstream on db2 names the readonly replica db3, but db2 is a standby, which a "
        "failover may promote: a standby cascades only from the primary or another standby, "
        "so that the chain a failover may promote stays among promotable nodes; name a "
        "standby, remove upstream, or make db2 readonly")


@pytest.mark.parametrize(("role", "upstream"), [("standby", "db2"), ("standby", "db1"),
                                                ("readonly", "db2"), ("readonly", "db3"),
                                                ("readonly", "db1")])
def test_what_may_cascade_from_what(role: str, upstream: str) -> None:
    entries = [*three_nodes(), node("db4", role, 4, upstream=upstream)]
    assert problems(entries) == []


def test_a_synchronous_standby_streams_from_the_primary() -> None:
    entries = [node("db1", "primary", 1, synchronous_standbys=["db2", "db4"]),
               node("db2", "standby", 2, synchronous_standbys=["db1", "db4"]),
               node("db3", "readonly", 3),
               node("db4", "standby", 4, upstream="db2")]
    assert only_problem(entries) == (
        "db4 is in synchronous_standbys and has the upstream db2: a synchronous standby must "
        "stream from the primary (whichever node that is), which waits for it to confirm "
        "each commit; remove upstream on db4, or take db4 out of synchronous_standbys")
    entries[3] = node("db4", "standby", 4)
    assert problems(entries) == []


def test_the_senders_bound_counts_every_replica_on_every_node() -> None:
    # A cascading upstream needs senders too: the bound, two per replica (a new cluster
    # clones them at once), holds on every node.
    entries = [node("db1", "primary", 1), node("db2", "standby", 2),
               node("db3", "readonly", 3, upstream="db2", max_wal_senders=5),
               node("db4", "readonly", 4, upstream="db2")]
    found = problems(entries)
    assert any(m.startswith("max_wal_senders = 5 on db3 is too low for 3 replicas cloned "
                            "at once (two connections each): set it to at least 6")
               for m in found), found
