"""Restore a full backup plus archived WAL onto one node of the inventory: to the end of the
archive, or to a time, an LSN or a named restore point (deploys/restore.py).

Everything that could refuse is decided while planning, before any host is touched:
which node, whether it may be stopped, that no other node is a running primary, and which
backup to start from. The node then runs restore-backup (pgcluster/node/), which moves
the old data directory aside (never deletes it), unpacks the backup, recovers and reports
the point it reached.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy

from pgcluster.errors import ClusterStateError, ConfigError
from pgcluster.facts.backups import BackupRepository
from pgcluster.facts.patroni import HaServices
from pgcluster.model.backups import (
    RECOVERY_ACTIONS,
    RecoveryTarget,
    check_backup_name,
    is_pgbackrest_name,
    recovery_target,
    select_backup,
)
from pgcluster.model.cluster import Node
from pgcluster.model.layout import Layout
from pgcluster.model.topology import Topology
from pgcluster.operations import jobs, patroni
from pgcluster.operations.conditional import only_if

# Parameters: --data restore_<key>=... on the pyinfra command line, or PGCLUSTER_RESTORE_<KEY>.
KEYS = ("backup", "time", "lsn", "name", "timeline", "action", "node", "force_node")


@dataclass(frozen=True)
class RestoreRequest:
    target: RecoveryTarget
    backup: str = "latest"
    timeline: str = "latest"
    action: str = "promote"
    node: str | None = None
    force_node: str | None = None


def request_from(data: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> RestoreRequest:
    """Read the restore's parameters from host data (--data), else the environment."""
    def get(key: str) -> str | None:
        value = data.get(f"restore_{key}")
        if value in (None, ""):
            value = env.get(f"PGCLUSTER_RESTORE_{key.upper()}")
        return None if value in (None, "") else str(value)

    values = {key: get(key) for key in KEYS}
    target = recovery_target(values["time"], values["lsn"], values["name"],
                             timezone=str(data.get("timezone", "UTC")))
    timeline = values["timeline"] or "latest"
    if not re.fullmatch(r"latest|current|\d+", timeline):
        raise ConfigError(f"restore timeline {timeline!r}: use latest, current or a number")
    action = values["action"] or "promote"
    if action not in RECOVERY_ACTIONS:
        raise ConfigError(f"restore action {action!r}: use {' or '.join(RECOVERY_ACTIONS)}")
    return RestoreRequest(target=target, backup=check_backup_name(values["backup"] or "latest"),
                          timeline=timeline, action=action, node=values["node"],
                          force_node=values["force_node"])


def engine_for(topology: Topology, req: RestoreRequest) -> None:
    """A backup named as pgBackRest's (its label, repo<N>/...) is restored by pgBackRest,
    on whatever node: the scratch node, for one, was never deployed with the cluster's
    engine. A seed engine's backup (full/<stamp>, one taken before a switch to pgBackRest)
    is restored by the seed engine, whose archive holds its WAL. latest is the engine's the
    cluster runs."""
    if req.backup != "latest":
        topology.backup_engine = ("pgbackrest" if is_pgbackrest_name(req.backup)
                                  else "pg_basebackup")


def target_node(topology: Topology, req: RestoreRequest) -> tuple[Node, bool]:
    """The node to restore onto, and whether the user named it to be forced."""
    cluster = topology.cluster
    # An unknown name raises UnknownNode, a ConfigError saying which nodes there are.
    node = cluster.find(req.node or req.force_node) if (req.node or req.force_node) else None
    forced = cluster.find(req.force_node) if req.force_node else None
    if node is None:
        if len(cluster.nodes) != 1:
            raise ConfigError(
                "name the node to restore onto: --data restore_node=NAME (pgcluster restore "
                "--node NAME), or restore onto the lab's scratch node (pgcluster restore "
                "--scratch)"
            )
        node = cluster.nodes[0]
    if forced is not None and forced.host != node.host:
        raise ConfigError(f"--force-node {req.force_node} is not the restore's node {node.name}")
    return node, forced is not None


def check_patroni(topology: Topology, engine: str) -> None:
    """Under Patroni, an in-place restore takes the whole cluster back in time: Patroni must
    be stopped on every node first (pgcluster stop), or a replica's Patroni, seeing no
    leader, would promote it while the restore runs, and the cluster's state in the DCS
    (leader, last position, history) would refuse the restored node as too far behind."""
    if engine != "patroni":
        return
    running = []
    for target in host.state.inventory.iter_activated_hosts():
        layout = Layout.from_data(target.data.dict())
        services = target.get_fact(HaServices, postgresql_service=layout.service)
        if (services.get("patroni") or {}).get("active"):
            running.append(topology.cluster.node(target.name).name)
    if running:
        raise ClusterStateError(
            f"refusing: Patroni runs on {', '.join(sorted(running))}. An in-place restore of a "
            "Patroni cluster takes the whole cluster back in time: stop it first (pgcluster "
            "stop: Patroni on every node, the leader last), restore, then pgcluster start (the "
            "others rejoin the restored node by pg_rewind, or with pgcluster rejoin NODE "
            "--reclone). To look at the past without touching the cluster: pgcluster restore "
            "--scratch")


def check(topology: Topology, node: Node, forced: bool) -> None:
    """Refuse what would lose or split data, before anything is touched."""
    # A second primary first: naming the node (--force-node) would not change that.
    others = [n for n in topology.cluster.nodes if n.host != node.host
              and topology.live.get(n.host, {}).get("running")
              and not topology.live[n.host].get("in_recovery")]
    if others:
        raise ClusterStateError(
            f"refusing: {others[0].name} is the running primary; a restored {node.name} would be "
            "a second primary (split brain). Stop it first if the whole cluster is to go back "
            "in time, or restore onto a scratch node (pgcluster restore --scratch) to look at "
            "the past without touching the cluster"
        )
    live = topology.live.get(node.host, {})
    if live.get("running") and not forced:
        raise ClusterStateError(
            f"refusing: {node.name} runs a PostgreSQL server. Restoring stops it and moves its "
            f"data directory aside (never deleted): name it explicitly to go on "
            f"(pgcluster restore --force-node {node.name}; pyinfra --data "
            f"restore_force_node={node.name})"
        )


@deploy("Restore a backup")
def restore(topology: Topology, req: RestoreRequest, engine: str = "manual") -> None:
    data = host.data.dict()
    layout = Layout.from_data(data)
    node, forced = target_node(topology, req)
    here = host.name == node.host
    check(topology, node, forced)
    backup_name = ""
    pgbackrest = topology.backup_engine == "pgbackrest" and (
        req.backup == "latest" or is_pgbackrest_name(req.backup))
    if here and pgbackrest:
        backup_name = req.backup  # pgBackRest chooses among its repositories (restore-backup)
        logger.info(f"pgcluster: restoring pgBackRest's {req.backup} backup onto {node.name}, "
                    f"target {req.target.describe()}, then {req.action}")
    elif here:
        repo = host.get_fact(BackupRepository, full_dir=data["backup_full_dir"],
                             incr_dir=data["backup_incr_dir"],
                             archive_dir=data["wal_archive_dir"])
        chosen = select_backup(repo, req.target, req.backup)
        backup_name = chosen.name
        logger.info(
            f"pgcluster: restoring full/{chosen.name} ({chosen.label}, ended "
            f"{chosen.info.get('finished_at')}) onto {node.name}, target "
            f"{req.target.describe()}, then {req.action}"
        )
    only_if(
        here, jobs.restore_backup,
        name=f"Restore a full backup onto {node.name} (target {req.target.describe()})",
        layout=layout,
        backup=backup_name,
        target_args=req.target.script_args,
        timeline=req.timeline,
        action=req.action,
        force=forced,
        port=int(data["postgresql_port"]),
        timeout=int(data["restore_timeout"]) + 600,
    )
    if engine == "patroni":
        _to_patroni(node, here, data, layout)


def _to_patroni(node: Node, here: bool, data: dict, layout: Layout) -> None:
    """The restored node, a primary under Debian's unit, handed to Patroni as a new
    cluster history: the DCS's old state removed, then Patroni takes the running server
    over (as in a take-over of a manual cluster) and leads. The other nodes stay stopped
    until the operator starts them."""
    scope = str(data["patroni_scope"])
    only_if(here, patroni.forget_cluster, name=f"Remove the Patroni cluster {scope} from the "
            "DCS (its leader, positions and history are the past's)", scope=scope)
    only_if(here, patroni.hand_over_from_debian,
            name=f"Debian's {layout.service} hands the restored server over to Patroni",
            layout=layout, port=int(data["postgresql_port"]))
    only_if(here, patroni.member_service, name=f"Patroni runs on {node.name}", layout=layout,
            running=True)
    only_if(here, patroni.wait_for_leader, name=f"{node.name} leads the restored cluster",
            member=node.name)
