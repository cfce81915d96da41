"""On every other node: clone it from its source (the live primary, or for a cascading
replica its `upstream`) when it is not already its replica, keep it enabled, then wait on
every node until the replicas that stream from it do, and deal with slots no node needs.

Every step is planned on every host (a no-op where it does not apply); see
pgcluster.operations.conditional.only_if for why.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import systemd

from pgcluster.model.cluster import Node
from pgcluster.model.conninfo import primary_conninfo, rewind_conninfo
from pgcluster.model.conninfo import value as conninfo_value
from pgcluster.model.layout import Layout
from pgcluster.model.patroni import patronictl
from pgcluster.model.topology import Topology
from pgcluster.operations import postgres as operations
from pgcluster.operations import promotion
from pgcluster.operations.conditional import only_if

# The primary_conninfo options a running replica must have as pgcluster renders them.
FOLLOW_KEYS = ("host", "port", "user", "passfile", "application_name", "sslmode", "sslrootcert",
               "channel_binding")


def repoint(topology: Topology, node: Node) -> bool:
    """Whether a cascading replica runs as a standby of another node than its source: its
    upstream came back, or was lost and it still waits for it. Only a node of a cascade
    (one with an `upstream`) is moved by a deploy; any other standby of the wrong node is
    refused by the clone and left to `pgcluster rejoin`, as before cascades."""
    state = topology.live.get(node.host, {})
    if node.upstream is None or not (state.get("running") and state.get("in_recovery")):
        return False
    following = conninfo_value(state.get("primary_conninfo"), "host")
    return following is not None and following != topology.source(node).address


@deploy("Clone the replicas")
def clone(topology: Topology) -> None:
    data = host.data.dict()
    layout = Layout.from_data(data)
    port = int(data["postgresql_port"])
    me = topology.cluster.node(host.name)
    replica = not topology.is_primary(host.name)
    source = topology.source(me) if replica else me
    moved = replica and repoint(topology, me)
    # One level of the cascade after the other: a replica of a replica is cloned from its
    # upstream once that one runs, with its slot made there first (the primary's slots are
    # made with the primary: steps.primary).
    levels = max((topology.depth(n) for n in topology.replicas), default=1)
    for level in range(1, levels + 1):
        if level > 1:
            for child in topology.replicas:
                if topology.depth(child) == level:
                    parent = topology.source(child)
                    only_if(host.name == parent.host, operations.replication_slot,
                            name=f"Replication slot {child.slot} for {child.name} on its "
                                 f"upstream {parent.name}",
                            slot=child.slot, port=port)
        here = replica and not moved and topology.depth(me) == level
        only_if(
            here, operations.clone_replica,
            name=(f"Clone replicas from {topology.primary.name} (pg_basebackup) where needed"
                  if level == 1 else
                  f"Clone the cascading replicas of level {level} from their upstream"),
            layout=layout,
            conninfo=primary_conninfo(source, me, data),
            slot=me.slot,
            port=port,
        )
        only_if(
            here, systemd.service,
            name=f"Start and enable {layout.service} on replicas"
                 + ("" if level == 1 else f" (level {level})"),
            service=layout.service,
            running=True,
            enabled=True,
        )
    # Its slot on the source is made above (a cascade's level) or with the primary's.
    only_if(
        moved, promotion.rejoin,
        name="Cascading replicas stream from their source (their upstream, or past a lost one)",
        layout=layout,
        conninfo=primary_conninfo(source, me, data),
        slot=me.slot,
        rewind_conninfo=rewind_conninfo(source, data),
        primary_host=source.host,
        port=port,
        keep_slots=tuple(n.slot for n in topology.downstream(me)),
    )
    # Replicas cloned before TLS (or before any change of these options) are re-pointed.
    only_if(
        replica, operations.follow_conninfo,
        name=f"Replicas reach {topology.primary.name} over TLS (verify-full)",
        layout=layout,
        conninfo=primary_conninfo(source, me, data),
        keys=FOLLOW_KEYS,
        port=port,
    )


@deploy("Wait for streaming replication")
def wait(topology: Topology, engine: str = "manual") -> None:
    me = topology.cluster.node(host.name)
    followers = topology.downstream(me)
    only_if(
        bool(followers), operations.wait_for_replicas,
        name="Every replica streams from its source (the primary, or its upstream)",
        application_names=[r.name for r in followers],
        timeout=int(host.data.get("replica_wait_timeout", 180)),
        port=int(host.data.get("postgresql_port", 5432)),
        # Patroni makes the replicas: its view says which one is stuck, and why.
        explain=patronictl("list") if engine == "patroni" else None,
    )
    # Slots no node streams from retain WAL until the disk fills: never left silently.
    # Patroni keeps its own (it drops the slots of members that left).
    only_if(
        engine == "manual", operations.orphan_slots,
        name="Replication slots that no node of the inventory needs here",
        expected=topology.cluster.expected_slots(me, topology.primary, topology.lost),
        known=[n.slot for n in topology.cluster.nodes],
        policy=str(host.data.get("orphan_slots", "warn")),
        port=int(host.data.get("postgresql_port", 5432)),
    )
