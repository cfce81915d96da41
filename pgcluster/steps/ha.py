"""Failover, switchover, rejoin and service control, as pyinfra steps.

Each command first makes a plan from the live topology (who is primary, who is reachable,
which standby is furthest ahead) and refuses with a clear message when acting would risk
data: a primary that still accepts writes, a read-only replica as a target, two primaries.
Then every step is planned on every host and is a no-op where it does not apply (see
pgcluster.operations.conditional.only_if), so the steps run in order across hosts.

Parameters come from pyinfra data (`--data failover_target=...`), which is how
`python -m pgcluster failover|switchover|rejoin|stop|start` call these deploys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyinfra import host

from pgcluster.errors import ClusterStateError
from pgcluster.model.cluster import Node
from pgcluster.model.conninfo import primary_conninfo, rewind_conninfo
from pgcluster.model.layout import Layout
from pgcluster.model.topology import Topology
from pgcluster.model.wal import position
from pgcluster.operations import postgres as operations
from pgcluster.operations import promotion
from pgcluster.operations.conditional import only_if
from pgcluster.steps import live


def flag(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "y", "on")


@dataclass
class Plan:
    topology: Topology
    old_primary: Node
    new_primary: Node
    followers: list[Node]  # reachable nodes to re-point at the new primary
    unreachable: list[Node] = field(default_factory=list)
    fence: bool = False  # stop the old primary first (--force on a running primary)


def _reachable(topology: Topology) -> set[str]:
    return {h.name for h in host.state.activated_hosts}


def _accepts_writes(topology: Topology, node: Node) -> bool:
    state = topology.live.get(node.host, {})
    return bool(state.get("running") and not state.get("in_recovery"))


def plan_failover() -> Plan:
    topology = live.topology()
    reachable = _reachable(topology)
    old = topology.primary
    force = flag(host.data.get("force"))
    fence = old.host in reachable and _accepts_writes(topology, old)
    if fence and not force:
        raise ClusterStateError(
            f"{old.name} is running and accepts writes: there is nothing to fail over from. "
            "Use `pgcluster switchover --to NODE` for a planned change without data loss, "
            "or `failover --force` to stop (fence) it and promote anyway."
        )
    candidates = [
        n for n in topology.replicas
        if n.promotable and n.host in reachable
        and topology.live[n.host].get("running") and topology.live[n.host].get("in_recovery")
    ]
    wanted = host.data.get("failover_target")
    if wanted:
        target = topology.cluster.find(str(wanted))
        if not target.promotable:
            raise ClusterStateError(
                f"{target.name} is the read-only replica: it is never promoted. Promote a "
                "standby instead."
            )
        if target not in candidates:
            raise ClusterStateError(
                f"{target.name} cannot be promoted: it is not a reachable, running standby"
            )
    elif candidates:
        # The standby that received the most WAL loses the least.
        target = max(candidates,
                     key=lambda n: position(topology.live[n.host].get("receive_lsn")) or 0)
    else:
        raise ClusterStateError(
            f"no standby can be promoted: none of "
            f"{', '.join(n.name for n in topology.replicas if n.promotable) or 'the nodes'} "
            "is reachable and running in recovery"
        )
    followers = [n for n in topology.replicas
                 if n != target and n != old and n.host in reachable]
    return Plan(
        topology=topology, old_primary=old, new_primary=target, followers=followers,
        unreachable=[n for n in topology.cluster.nodes if n.host not in reachable],
        fence=fence,
    )


def plan_switchover() -> Plan:
    topology = live.topology()
    reachable = _reachable(topology)
    old = topology.primary
    if old.host not in reachable or not _accepts_writes(topology, old):
        raise ClusterStateError(
            f"{old.name} is not a running primary: a switchover needs one. If it failed, "
            "use `pgcluster failover`."
        )
    wanted = host.data.get("switchover_target")
    if not wanted:
        raise ClusterStateError("switchover needs a target: --to NODE")
    target = topology.cluster.find(str(wanted))
    if target == old:
        raise ClusterStateError(f"{target.name} is already the primary")
    if not target.promotable:
        raise ClusterStateError(f"{target.name} is the read-only replica: it is never promoted")
    target_state = topology.live.get(target.host, {})
    if not (target.host in reachable and target_state.get("receiver_status") == "streaming"
            and target_state.get("sender_host") == old.address):
        raise ClusterStateError(f"{target.name} is not streaming from {old.name}")
    if not flag(host.data.get("force")):
        _switchover_gates(topology, old, target)
    others = [n for n in topology.replicas if n != target and n.host in reachable]
    followers = [*others, old]
    return Plan(topology=topology, old_primary=old, new_primary=target, followers=followers,
                unreachable=[n for n in topology.cluster.nodes if n.host not in reachable])


def _switchover_gates(topology: Topology, old: Node, target: Node) -> None:
    from pgcluster.facts.postgres import PgQuery

    old_host = host.inventory.get_host(old.host)
    max_lag = int(host.data.get("switchover_max_lag_bytes", 16 * 1024 * 1024))
    max_xact = int(host.data.get("switchover_max_xact_seconds", 60))
    lag = (position(topology.live[old.host].get("current_lsn")) or 0) - (
        position(topology.live[target.host].get("replay_lsn")) or 0)
    if lag > max_lag:
        raise ClusterStateError(
            f"{target.name} replays {lag} bytes behind {old.name} (limit "
            f"switchover_max_lag_bytes = {max_lag}): wait for it to catch up, or --force"
        )
    rows = old_host.get_fact(
        PgQuery,
        sql="select count(*), coalesce(max(extract(epoch from now() - xact_start))::int, 0) "
            "from pg_stat_activity where backend_type = 'client backend' and xact_start < "
            f"now() - interval '{max_xact} seconds'",
        port=old.port,
    ) or [["0", "0"]]
    if int(rows[0][0]):
        raise ClusterStateError(
            f"{rows[0][0]} transaction(s) on {old.name} have been open for up to "
            f"{rows[0][1]}s (limit switchover_max_xact_seconds = {max_xact}): a switchover "
            "would roll them back. Let them finish, or --force."
        )


def plan_rejoin() -> tuple[Topology, Node]:
    topology = live.topology()
    wanted = host.data.get("rejoin_node")
    if not wanted:
        raise ClusterStateError("rejoin needs the node to bring back: rejoin NODE")
    node = topology.cluster.find(str(wanted))
    primary = topology.primary
    if node == primary:
        raise ClusterStateError(f"{node.name} is the primary: there is nothing to rejoin")
    if primary.host not in _reachable(topology) or not _accepts_writes(topology, primary):
        raise ClusterStateError(
            f"the primary {primary.name} is not running: rejoin needs a running primary "
            "(run `pgcluster failover` first if it is lost)"
        )
    if node.host not in _reachable(topology):
        raise ClusterStateError(
            f"{node.name} is not reachable: start the machine (lab: `pgcluster start "
            f"{node.name}`) so that it can be rejoined"
        )
    return topology, node


# ------------------------------------------------------------------------------- steps


def _layout() -> Layout:
    return Layout.from_data(host.data.dict())


def _port() -> int:
    return int(host.data.get("postgresql_port", 5432))


def _follow(plan_primary: Node, node: Node, here: bool, reclone: bool = False) -> None:
    data = host.data.dict()
    only_if(
        here, promotion.rejoin,
        name=f"Follow {plan_primary.name} (re-point, or pg_rewind when diverged)",
        layout=_layout(),
        conninfo=primary_conninfo(plan_primary, node, data),
        slot=node.slot,
        rewind_conninfo=rewind_conninfo(plan_primary, data),
        primary_host=plan_primary.host,
        reclone=reclone,
        port=_port(),
    )


def _new_primary_duties(plan: Plan, event: str, detail: str) -> None:
    here = host.name == plan.new_primary.host
    data = host.data.dict()
    # First: until it is done, every commit on the new primary waits for a standby.
    only_if(here, promotion.synchronous_override,
            name="Suspend synchronous replication while no synchronous standby can follow",
            followers=[n.name for n in plan.followers], port=_port())
    for node in plan.topology.cluster.nodes:
        if node != plan.new_primary:
            only_if(here, operations.replication_slot,
                    name=f"Replication slot {node.slot} on the new primary",
                    slot=node.slot, port=_port())
    only_if(here, promotion.record_event,
            name=f"Record the {event} in logs_replicacion and the events log",
            event=event, node_name=plan.new_primary.name, detail=detail,
            database=data["database_name"], schema=data["database_schema"], port=_port())


def failover(plan: Plan) -> None:
    me = plan.topology.cluster.node(host.name)
    only_if(host.name == plan.old_primary.host and plan.fence, promotion.stop_server,
            name=f"Fence {plan.old_primary.name}: stop it before promoting",
            layout=_layout(), port=_port())
    only_if(host.name == plan.new_primary.host, promotion.promote,
            name=f"Promote {plan.new_primary.name} (pg_promote)",
            layout=_layout(), timeout=int(host.data.get("promote_timeout", 60)), port=_port())
    lost = plan.old_primary.name + ("" if not plan.fence else " (fenced)")
    _new_primary_duties(plan, "failover",
                        f"promovido {plan.new_primary.name}; primario anterior {lost}")
    _follow(plan.new_primary, me, here=me in plan.followers)
    _wait(plan)


def switchover(plan: Plan) -> None:
    me = plan.topology.cluster.node(host.name)
    only_if(host.name == plan.old_primary.host, promotion.stop_server,
            name=f"Stop {plan.old_primary.name} cleanly (fast shutdown)",
            layout=_layout(), port=_port())
    only_if(host.name == plan.new_primary.host, promotion.wait_received,
            name=f"{plan.new_primary.name} has received all of {plan.old_primary.name}'s WAL",
            layout=_layout(), lsn_host=plan.old_primary.host, port=_port())
    only_if(host.name == plan.new_primary.host, promotion.promote,
            name=f"Promote {plan.new_primary.name} (pg_promote)",
            layout=_layout(), timeout=int(host.data.get("promote_timeout", 60)), port=_port())
    _new_primary_duties(plan, "switchover",
                        f"{plan.old_primary.name} -> {plan.new_primary.name}")
    _follow(plan.new_primary, me, here=me in plan.followers)
    _wait(plan)


def rejoin(topology: Topology, node: Node) -> None:
    me = topology.cluster.node(host.name)
    here_primary = host.name == topology.primary.host
    only_if(here_primary, operations.replication_slot,
            name=f"Replication slot {node.slot} for {node.name}", slot=node.slot, port=_port())
    _follow(topology.primary, me, here=me == node,
            reclone=flag(host.data.get("allow_reclone")))
    only_if(here_primary, promotion.synchronous_override,
            name="Lift a suspension of synchronous replication once its standby is back",
            followers=[n.name for n in topology.replicas], port=_port())
    only_if(here_primary, operations.wait_for_replicas,
            name=f"{node.name} streams from {topology.primary.name}",
            application_names=[node.name],
            timeout=int(host.data.get("replica_wait_timeout", 180)), port=_port())


def _wait(plan: Plan) -> None:
    only_if(host.name == plan.new_primary.host and bool(plan.followers),
            operations.wait_for_replicas,
            name=f"Followers stream from {plan.new_primary.name}",
            application_names=[n.name for n in plan.followers],
            timeout=int(host.data.get("replica_wait_timeout", 180)), port=_port())


def service(topology: Topology, action: str, nodes: list[Node]) -> None:
    """Stop or start PostgreSQL on some nodes: primary first, then the replicas (a stopping
    primary hands its last WAL to the standbys; a starting cluster needs it first)."""
    if action not in ("start", "stop"):
        raise ClusterStateError(f"unknown service action {action!r}: use start or stop")
    op = promotion.start_server if action == "start" else promotion.stop_server
    ordered = [topology.primary] + [n for n in topology.replicas]
    for node in ordered:
        only_if(host.name == node.host and node in nodes, op,
                name=f"{action.capitalize()} PostgreSQL on {node.name}",
                layout=_layout(), port=_port())


def nodes_from_data(topology: Topology) -> list[Node]:
    wanted = str(host.data.get("service_nodes") or "all")
    if wanted == "all":
        return list(topology.cluster.nodes)
    return [topology.cluster.find(name.strip()) for name in wanted.split(",") if name.strip()]
