"""Who is primary right now, read from the nodes, not assumed from the inventory.

After a failover the inventory still names the old primary; a re-run of the deploy must
follow the live cluster instead of wrecking it. Two nodes accepting writes stop every
changing command.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gevent.lock
from pyinfra import logger
from pyinfra.api import Host, Inventory, State

from pgcluster.errors import ClusterStateError
from pgcluster.facts import PgNode
from pgcluster.layout import Layout
from pgcluster.model import Cluster, HostEntry, Node


@dataclass
class Topology:
    cluster: Cluster
    primary: Node
    live: dict[str, dict[str, Any]]  # host name -> PgNode fact
    notes: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> list[Node]:
        return [n for n in self.cluster.nodes if n.host != self.primary.host]

    def is_primary(self, host_name: str) -> bool:
        return self.primary.host == host_name


def cluster_of(inventory: Inventory) -> Cluster:
    return Cluster.from_entries(
        HostEntry(h.name, tuple(h.groups), h.data.dict()) for h in inventory
    )


def decide(cluster: Cluster, live: Mapping[str, Mapping[str, Any]],
           strict: bool = True) -> Topology:
    """Pick the primary from live node states (pure: unit-tested without hosts).

    With strict=False (stopping nodes, the way out of a split brain) two running primaries
    are reported in the notes instead of refused, and the inventory's primary is taken."""
    running_primaries = [
        n for n in cluster.nodes
        if live.get(n.host, {}).get("running") and not live[n.host].get("in_recovery")
    ]
    notes: list[str] = []
    if len(running_primaries) > 1 and not strict:
        names = " and ".join(n.name for n in running_primaries)
        return Topology(cluster, cluster.inventory_primary, {k: dict(v) for k, v in live.items()},
                        [f"split brain: {names} both accept writes"])
    if len(running_primaries) > 1:
        names = " and ".join(n.name for n in running_primaries)
        raise ClusterStateError(
            f"split brain: {names} both accept writes. pgcluster changes nothing until one "
            "of them is stopped and rejoined as a standby (compare their timelines and "
            "the rows each has taken before choosing)."
        )
    if running_primaries:
        primary = running_primaries[0]
    else:
        stopped_primaries = [
            n for n in cluster.nodes
            if live.get(n.host, {}).get("data") and not live[n.host].get("standby_signal")
        ]
        if len(stopped_primaries) > 1:
            names = " and ".join(n.name for n in stopped_primaries)
            raise ClusterStateError(
                f"no primary is running and {names} all hold a primary's data directory: "
                "start the node that is the current primary, then run the deploy again"
            )
        primary = stopped_primaries[0] if stopped_primaries else cluster.inventory_primary
    if primary.host != cluster.inventory_primary.host:
        notes.append(
            f"the inventory names {cluster.inventory_primary.name} as primary but the live "
            f"primary is {primary.name}; keeping the live topology (update the inventory's "
            "groups to match it)"
        )
    return Topology(cluster, primary, {k: dict(v) for k, v in live.items()}, notes)


_cache: weakref.WeakKeyDictionary[State, Topology] = weakref.WeakKeyDictionary()
_lock = gevent.lock.RLock()


def current(state: State, strict: bool = True) -> Topology:
    """The live topology for this run, read once from every host and shared by all."""
    with _lock:
        if state not in _cache:
            live = {h.name: _node_state(h) for h in state.inventory.iter_activated_hosts()}
            topology = decide(cluster_of(state.inventory), live, strict=strict)
            for note in topology.notes:
                logger.warning(f"pgcluster: {note}")
            _cache[state] = topology
        return _cache[state]


def _node_state(h: Host) -> dict[str, Any]:
    layout = Layout.from_data(h.data.dict())
    return h.get_fact(PgNode, version=layout.version, cluster=layout.cluster,
                      port=int(h.data.get("postgresql_port", 5432)))
