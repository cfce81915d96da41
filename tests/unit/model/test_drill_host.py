"""The inventory's `drill` host: outside the cluster (no node, no service of the cluster
deploy's), one at most, and where restores outside the cluster go (control/scratch.py)."""

from __future__ import annotations

from typing import Any

import pytest

from pgcluster.control import scratch
from pgcluster.errors import ConfigError
from pgcluster.model import validation
from pgcluster.model.cluster import Cluster, HostEntry, is_service_host
from tests.unit.helpers import SCHEMA, entry, three_nodes


def drill_entry(name: str = "drill1", *groups: str, **data: Any) -> HostEntry:
    made = entry(name, None, node_address="10.0.0.30", **data)
    return HostEntry(made.name, ("drill", *groups), made.data)


def problems(entries: list[HostEntry]) -> list[str]:
    return validation.problems(entries, SCHEMA)


def test_the_drill_host_is_no_node_of_the_cluster_but_its_own() -> None:
    entries = [*three_nodes(), drill_entry(postgresql_port=5440)]
    cluster = Cluster.from_entries(entries)
    assert [n.name for n in cluster.nodes] == ["db1", "db2", "db3"]
    drill = cluster.drill_host
    assert drill is not None
    assert (drill.name, drill.role, drill.address, drill.port) == ("drill1", "drill",
                                                                  "10.0.0.30", 5440)
    # A service host: every deploy's database steps leave it alone (live.database_node).
    assert is_service_host(entries[-1])
    assert problems(entries) == []
    assert Cluster.from_entries(three_nodes()).drill_host is None


def test_one_drill_host_at_most() -> None:
    second = HostEntry("drill2", ("drill",), {**drill_entry().data, "node_address": "10.0.0.31"})
    found = problems([*three_nodes(), drill_entry(), second])
    assert ("the inventory group `drill` has 2 hosts (drill1, drill2): restore drills use one; "
            "keep one") in found


def test_a_node_of_the_cluster_cannot_be_the_drill_host() -> None:
    nodes = three_nodes()
    nodes[2] = HostEntry("db3", ("readonly", "drill"), nodes[2].data)
    found = problems(nodes)
    assert any(p.startswith("host db3 is in the group `drill` and in `readonly`: a restore "
                            "drill replaces the drill host's data directory") for p in found), \
        found


def test_the_drill_host_needs_an_address_and_a_name_of_its_own() -> None:
    bare = HostEntry("drill_box", ("drill",),
                     {k: v for k, v in drill_entry().data.items() if k != "node_address"})
    assert any(p.startswith("drill host drill_box has no node_address (nor ssh_hostname)")
               for p in problems([*three_nodes(), bare]))
    twin = drill_entry("drill1", node_name="db2")
    assert ("drill host drill1 has the node name 'db2' of the node db2: give it a node_name of "
            "its own") in problems([*three_nodes(), twin])


def test_restores_outside_the_cluster_go_to_the_drill_host_else_the_lab_s_scratch_node(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with_drill = Cluster.from_entries([*three_nodes(), drill_entry()])
    without = Cluster.from_entries(three_nodes())
    clusters = {"inventory/prod.py": with_drill, "inventory/docker.py": without,
                "inventory/other.py": without}
    monkeypatch.setattr(scratch, "inventory_cluster", lambda inventory, env: clusters[inventory])
    target = scratch.scratch_target("inventory/prod.py")
    assert (target.name, target.inventory, target.env, target.drill_host) == (
        "drill1", "inventory/drill_host.py", {"PGCLUSTER_DRILL_INVENTORY": "inventory/prod.py"},
        True)
    assert target.where.address == "10.0.0.30"
    lab = scratch.scratch_target("inventory/docker.py")
    assert (lab.name.endswith("-scratch"), lab.inventory, lab.drill_host) == (
        True, "inventory/scratch.py", False)
    with pytest.raises(ConfigError, match=r"inventory/other\.py has no `drill` host and is not "
                                          "the Docker lab"):
        scratch.scratch_target("inventory/other.py")
