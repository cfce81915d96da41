"""First step of every cluster deploy: validate, then read the live topology."""

from __future__ import annotations

from pyinfra import host, inventory

from pgcluster.model import HostEntry
from pgcluster.topology import Topology, current
from pgcluster.validate import check


def cluster(strict: bool = True) -> Topology:
    """Validate the whole inventory (again: any inventory may be used, not only ours),
    then read who is primary from the nodes. Raises before any operation is planned;
    split brain too, unless strict=False (only for stopping nodes)."""
    check(HostEntry(h.name, tuple(h.groups), h.data.dict()) for h in inventory)
    return current(host.state, strict=strict)


def this_node(topology: Topology):
    return topology.cluster.node(host.name)
