"""Who is primary right now, read from the nodes, not assumed from the inventory.

After a failover the inventory still names the old primary; a re-run of the deploy must
follow the live cluster instead of wrecking it. Two nodes accepting writes stop every
changing command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgcluster.errors import ClusterStateError
from pgcluster.model.cluster import Cluster, Node
from pgcluster.model.conninfo import value as conninfo_value


@dataclass
class Topology:
    cluster: Cluster
    primary: Node
    live: dict[str, dict[str, Any]]  # host name -> PgNode fact
    notes: list[str] = field(default_factory=list)
    # The backup engine of this run (pgcluster.model.pgbackrest.decide_engine), set with the
    # live state: "pg_basebackup" or "pgbackrest".
    backup_engine: str = "pg_basebackup"

    @property
    def replicas(self) -> list[Node]:
        return [n for n in self.cluster.nodes if n.host != self.primary.host]

    def is_primary(self, host_name: str) -> bool:
        return self.primary.host == host_name

    # ------------------------------------------------------------ cascading replication

    @property
    def lost(self) -> set[str]:
        """The nodes a cascade cannot stream from now: those out of reach (no live state).
        A reachable node whose server is stopped is not lost: the deploy starts it (and a
        node with no data yet is being built: its cascade is cloned from it once it runs,
        replicas.clone), and a command that does not start it (rejoin) re-points past it
        only when it is out of reach."""
        return {n.host for n in self.cluster.nodes if n.host not in self.live}

    def source(self, node: Node, lost: set[str] | None = None) -> Node:
        """The node a replica streams from now (Cluster.source with this run's live
        primary and lost nodes)."""
        return self.cluster.source(node, self.primary, self.lost if lost is None else lost)

    def downstream(self, node: Node, lost: set[str] | None = None) -> list[Node]:
        """The replicas that stream from `node` now, in inventory order."""
        return self.cluster.streaming_from(node, self.primary,
                                           self.lost if lost is None else lost)

    def depth(self, node: Node) -> int:
        """Hops from the primary: 0 for it, 1 for a replica of it, 2 for a cascade of
        that, ... (validation refuses cycles; a chain is never longer than the nodes)."""
        hops = 0
        while node.host != self.primary.host and hops <= len(self.cluster.nodes):
            node = self.source(node)
            hops += 1
        return hops


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
        primary = (stopped_primaries[0] if stopped_primaries
                   else _followed(cluster, live) or cluster.inventory_primary)
    if primary.host != cluster.inventory_primary.host:
        notes.append(
            f"the inventory names {cluster.inventory_primary.name} as primary but the live "
            f"primary is {primary.name}; keeping the live topology (update the inventory's "
            "groups to match it)"
        )
    return Topology(cluster, primary, {k: dict(v) for k, v in live.items()}, notes)


def _followed(cluster: Cluster, live: Mapping[str, Mapping[str, Any]]) -> Node | None:
    """When no node that answers is a primary, the primary is the node the replicas follow
    (their primary_conninfo), typically a lost one; None for a cluster not built yet."""
    hosts = Counter(
        conninfo_value(state.get("primary_conninfo"), "host")
        for state in live.values() if state.get("running") and state.get("in_recovery")
    )
    for address, _ in hosts.most_common():
        for node in cluster.nodes:
            if node.address == address:
                return node
    return None


def refuse_empty_primary(topology: Topology) -> None:
    """initdb only for a brand-new cluster: never an empty primary next to nodes that hold
    the cluster's data (a replica, a stopped node), nor while a node that might is out of
    reach. Raises ClusterStateError saying how to promote or restore instead."""
    primary = topology.primary
    if topology.live.get(primary.host, {}).get("data"):
        return
    holders = [n for n in topology.cluster.nodes
               if n.host != primary.host and topology.live.get(n.host, {}).get("data")]
    if holders:
        names = ", ".join(n.name for n in holders)
        systems = sorted({str(topology.live[n.host].get("system_identifier"))
                          for n in holders if topology.live[n.host].get("system_identifier")})
        raise ClusterStateError(
            f"{primary.name} has no data directory, but {names} hold"
            f"{'s' if len(holders) == 1 else ''} the cluster's data"
            + (f" (system identifier {', '.join(systems)})" if systems else "")
            + ": pgcluster never creates an empty primary over them. Make one of them the "
            f"primary (`pgcluster failover --to {holders[0].name}`, then `pgcluster rejoin "
            f"{primary.name}` clones it), or restore a backup onto {primary.name} "
            f"(`pgcluster restore --node {primary.name}`). initdb runs only when every node "
            "is empty: a brand-new cluster."
        )
    unknown = [n.name for n in topology.cluster.nodes if n.host not in topology.live]
    if unknown:
        raise ClusterStateError(
            f"{primary.name} has no data directory and {', '.join(unknown)} cannot be "
            "reached, so pgcluster cannot tell whether the cluster's data is there: it "
            "creates a new cluster (initdb) only when every node answers and none holds "
            "data. Bring them back, then run the deploy again."
        )
