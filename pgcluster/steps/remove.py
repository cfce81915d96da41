"""Retire a database node (`pgcluster remove NODE`): stop it for good, and free what the
others kept for it. Its data directory stays where it is: nothing is deleted.

The command then runs the cluster deploy without it (`--exclude` the host, `--data
removed_node=NODE`), which renders pg_hba.conf, the start guard's peers, HAProxy's and
Prometheus' targets as they are once the node has left the inventory; the user deletes it
from the inventory last, and the next deploy changes nothing.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import systemd

from pgcluster.errors import ClusterStateError
from pgcluster.model.cluster import Node
from pgcluster.model.layout import Layout
from pgcluster.model.topology import Topology
from pgcluster.operations import files as content
from pgcluster.operations import postgres as operations
from pgcluster.operations import promotion
from pgcluster.operations.conditional import only_if
from pgcluster.operations.files import Content


def plan(topology: Topology) -> Node:
    """The node to retire, or why not: never the primary, nor a node others stream from
    or a synchronous standby (the inventory must stop naming it first)."""
    name = str(host.data.get("remove_node") or "")
    if not name:
        raise ClusterStateError("remove needs the node to retire: pgcluster remove NODE")
    cluster = topology.cluster
    node = cluster.find(name)
    if topology.is_primary(node.host):
        others = [n.name for n in topology.replicas if n.promotable]
        raise ClusterStateError(
            f"{node.name} is the primary: move the role first (`pgcluster switchover --to "
            f"{others[0] if others else 'NODE'}`), then remove it")
    if node.role == "primary":
        raise ClusterStateError(
            f"{node.name} is in the inventory's `primary` group (the live primary is "
            f"{topology.primary.name}): move {topology.primary.name} to `primary` and "
            f"{node.name} to `standby` in the inventory to match the live cluster, then "
            "remove it")
    downstream = cluster.downstream_of(node)
    if downstream:
        names = ", ".join(n.name for n in downstream)
        raise ClusterStateError(
            f"{names} stream{'s' if len(downstream) == 1 else ''} from {node.name} "
            f"(upstream = \"{node.name}\"): give {'it' if len(downstream) == 1 else 'them'} "
            "another upstream (or none) in the inventory and run the deploy, then remove "
            f"{node.name}")
    if node.name in (host.data.get("synchronous_standbys") or []):
        raise ClusterStateError(
            f"{node.name} is in synchronous_standbys: take it out of that list in group "
            "data and run the deploy (commits would otherwise wait for a node that is "
            "gone), then remove it")
    return node


def retire(topology: Topology, node: Node, engine: str) -> None:
    """Stop the node's server and keep it from starting again (Patroni too: it would
    rejoin the cluster); then, on the node it streamed from, drop its slot."""
    layout = Layout.from_data(host.data.dict())
    port = int(host.data.get("postgresql_port", 5432))
    here = host.name == node.host
    if engine == "patroni":
        only_if(here, systemd.service, name=f"Stop and disable Patroni on {node.name}",
                service="patroni", running=False, enabled=False)
    only_if(here, promotion.stop_server, name=f"Stop PostgreSQL on {node.name}",
            layout=layout, port=port)
    # Debian's systemd generator starts every cluster whose start.conf says auto at boot
    # (`systemctl disable` cannot undo a generated unit): manual keeps it down, while
    # `pg_ctlcluster 15 main start` still works for whoever wants to look at its data.
    start_conf = only_if(
        here, content.contents, name=f"{node.name} no longer starts at boot (start.conf)",
        files=[Content(f"{layout.conf_dir}/start.conf",
                       "# Retired by `pgcluster remove`: not started at boot.\nmanual\n",
                       "644", "postgres", "postgres")])
    systemd.daemon_reload(name="Reload systemd units (Debian's generator)",
                          _if=start_conf.did_change)
    only_if(here, systemd.service, name=f"{layout.service} stays down on {node.name}",
            service=layout.service, running=False, enabled=False)
    source = topology.source(node, lost=topology.lost - {node.host})
    only_if(engine == "manual" and host.name == source.host, operations.drop_slot,
            name=f"Drop {node.name}'s replication slot {node.slot} on {source.name}",
            slot=node.slot, port=port)
